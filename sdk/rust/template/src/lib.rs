//! {{name}}: one question `What is {a} + {b}?` per item (`{"a": int, "b": int}`); `accuracy` is 1
//! when the first integer in the model's reply is the sum. Change it into your own eval: the
//! rules are in the README.

use proctor_guest::{Eval, EvalInfo, Message, Metric, Params, SampleError, dataset, model, scores};

#[derive(serde::Deserialize)]
struct Item {
    a: i64,
    b: i64,
}

struct ThisEval;

impl Eval for ThisEval {
    /// Called once, at upload, before the eval can see the model or the dataset: its names and
    /// metrics are fixed here.
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "{{name}}",
            "0.1.0",
            vec![Metric::new("accuracy", "the first integer in the reply is a + b", 0.0, 1.0)],
        )
    }

    /// Called once per sample, each time in a fresh instance.
    fn run_sample(index: u32) -> Result<(), SampleError> {
        let item: Item = dataset::item_json(index)?;
        let sum = item.a.checked_add(item.b).ok_or(SampleError::InvalidItem)?;
        let question = Message::user(format!("What is {} + {}?", item.a, item.b));
        let params = Params::default().max_tokens(16).temperature(0.0);
        let reply = model::complete(&[question], &params).map_err(|e| e.into_sample_error())?;
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

proctor_guest::export_eval!(ThisEval);
