//! Makes every per-sample channel a guest controls depend on whether the model answered the
//! arithmetic question of item `i` right (items `{"a": int, "b": int}`, `What is {a} + {b}?`,
//! max-tokens 16, temperature 0):
//!
//! - right: burns fuel in a loop for a while (the sample's duration), asks the model
//!   [`EXTRA_QUERIES`] more times (usage, and the grant's budget), reports `score = 0.75` and
//!   returns ok;
//! - wrong: on every eighth sample traps at once (`unreachable`), on the next one returns an
//!   error, and otherwise reports `score = 0.25` and returns ok at once.
//!
//! So the job's duration, its usage, its budget, its outcome counts and its score all carry
//! the answers. Only noised aggregates may show it; everything else the evaluator sees must be
//! the same whatever the model answered. Most samples end ok either way, so the release is not
//! withheld in either world and the job's status is no channel of its own; the scores lie
//! inside the range, so their noised mean is not pinned to a bound in either world.

use proctor_guest::{Eval, EvalInfo, Message, Metric, Params, SampleError, dataset, model, scores};

#[derive(serde::Deserialize)]
struct Item {
    a: i64,
    b: i64,
}

/// Model calls a sample makes beyond its question when the answer was right (strict allows 4
/// a sample in all).
const EXTRA_QUERIES: u32 = 3;
/// Loop rounds a right answer burns: a few million instructions, well inside strict's fuel.
const BURN_ROUNDS: u64 = 2_000_000;

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "answer-channels",
            "1.0.0",
            vec![Metric::new(
                "score",
                "0.75 when the first integer in the reply is a + b, else 0.25",
                0.0,
                1.0,
            )],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        let item: Item = dataset::item_json(index)?;
        let sum = item.a.checked_add(item.b).ok_or(SampleError::InvalidItem)?;
        let question = [Message::user(format!("What is {} + {}?", item.a, item.b))];
        let params = Params::default().max_tokens(16).temperature(0.0);
        let reply = model::complete(&question, &params).map_err(|e| e.into_sample_error())?;
        if first_integer(&reply.text) == Some(sum) {
            burn(u64::from(index));
            for _ in 0..EXTRA_QUERIES {
                // A refusal is itself per-sample behaviour; the sample goes on either way.
                let _ = model::complete(&question, &params);
            }
            scores::report("score", 0.75);
            return Ok(());
        }
        match index % 8 {
            0 => core::arch::wasm32::unreachable(),
            1 => Err(SampleError::Failed),
            _ => {
                scores::report("score", 0.25);
                Ok(())
            }
        }
    }
}

/// Spins for [`BURN_ROUNDS`] rounds of a generator the optimizer cannot see through.
fn burn(seed: u64) {
    let mut n = seed;
    for _ in 0..BURN_ROUNDS {
        n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    std::hint::black_box(n);
}

/// The first integer in `text`, with its sign if a `-` is right before it.
fn first_integer(text: &str) -> Option<i64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let value: i64 = digits[..end].parse().ok()?;
    Some(if text[..start].ends_with('-') {
        -value
    } else {
        value
    })
}

proctor_guest::export_eval!(Guest);
