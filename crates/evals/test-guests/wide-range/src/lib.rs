//! The wide-range attack: one metric declared over `[0, 1e150]`, and sample `i` reports
//! `2^(440 + i)` when the model answered the arithmetic question of item `i` right, 0
//! otherwise. With a release that scales with the range, or rounds absolutely, `mean × n` is
//! the sum of those powers of two, and its binary digits are the per-sample answers. The host
//! must release nothing from which they can be read back.

use proctor_guest::{Eval, EvalInfo, Message, Metric, Params, SampleError, dataset, model, scores};

#[derive(serde::Deserialize)]
struct Item {
    a: i64,
    b: i64,
}

/// The exponent of the bit sample 0 sets; sample `i` sets bit `440 + i`.
const FIRST_BIT: u32 = 440;
/// The declared maximum: above `2^(440 + 49)`, so 50 samples' bits fit under it.
const MAX: f64 = 1e150;

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "wide-range",
            "1.0.0",
            vec![Metric::new(
                "bits",
                "2^(440+i) when item i was answered right",
                0.0,
                MAX,
            )],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        let item: Item = dataset::item_json(index)?;
        let sum = item.a.checked_add(item.b).ok_or(SampleError::InvalidItem)?;
        let question = Message::user(format!("What is {} + {}?", item.a, item.b));
        let reply = model::complete(
            &[question],
            &Params::default().max_tokens(16).temperature(0.0),
        )
        .map_err(|e| e.into_sample_error())?;
        let right = first_integer(&reply.text) == Some(sum);
        // Past bit 498 the value exceeds the range and the host clips it; the attack needs 50.
        let exponent = i32::try_from(FIRST_BIT + index.min(64)).unwrap_or(i32::MAX);
        scores::report("bits", if right { 2f64.powi(exponent) } else { 0.0 });
        Ok(())
    }
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
