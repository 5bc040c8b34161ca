//! Arithmetic: one question `What is {a} + {b}?` per item (`{"a": int, "b": int}`); `accuracy`
//! is 1 when the first integer in the reply is the sum.

use proctor_guest::{dataset, model, scores, Eval, EvalInfo, Message, Metric, Params, SampleError};

#[derive(serde::Deserialize)]
struct Item {
    a: i64,
    b: i64,
}

struct Arith;

impl Eval for Arith {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "arith",
            "1.0.0",
            vec![Metric::new("accuracy", "the first integer in the reply is a + b", 0.0, 1.0)],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        let item: Item = dataset::item_json(index)?;
        let sum = item.a.checked_add(item.b).ok_or(SampleError::InvalidItem)?;
        let question = Message::user(format!("What is {} + {}?", item.a, item.b));
        let reply = model::complete(&[question], &Params::default().max_tokens(16).temperature(0.0))
            .map_err(|e| e.into_sample_error())?;
        let right = first_integer(&reply.text) == Some(sum);
        scores::report("accuracy", if right { 1.0 } else { 0.0 });
        Ok(())
    }
}

/// The first integer in `text`, with its sign if a `-` is right before it.
fn first_integer(text: &str) -> Option<i64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    let value: i64 = digits[..end].parse().ok()?;
    Some(if text[..start].ends_with('-') { -value } else { value })
}

proctor_guest::export_eval!(Arith);
