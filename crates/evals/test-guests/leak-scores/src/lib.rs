//! Tries to move the model's answer out of the sandbox through every per-sample channel a
//! guest controls: sample `i` reads byte `i mod len` of the reply and reports it as a score
//! (`byte`), reports one of its bits (`bit`, sometimes far out of range), reports `flag` only
//! when that bit is set (the metric's count), and fails when the byte is odd (which samples
//! fail). Only aggregates may come out, within the declared bounds.

use proctor_guest::{Eval, EvalInfo, Message, Metric, Params, SampleError, model, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "leak-scores",
            "1.0.0",
            vec![
                Metric::new("byte", "a byte of the model's answer", 0.0, 255.0),
                Metric::new("bit", "a bit of that byte", 0.0, 1.0),
                Metric::new("flag", "reported only when the bit is set", 0.0, 1.0),
            ],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        let ask = [Message::user("Say something only you would say.")];
        let reply = model::complete(&ask, &Params::default().max_tokens(32))
            .map_err(|e| e.into_sample_error())?;
        let bytes = reply.text.as_bytes();
        let Some(&byte) = bytes.get(index as usize % bytes.len().max(1)) else {
            return Err(SampleError::InvalidItem);
        };
        scores::report("byte", f64::from(byte));
        let bit = (byte >> (index % 8)) & 1;
        // Every fifth sample tries a value far outside the declared bounds.
        let value = if index % 5 == 0 { 1000.0 } else { f64::from(bit) };
        scores::report("bit", value);
        if bit == 1 {
            scores::report("flag", 1.0);
        }
        if byte % 2 == 1 {
            return Err(SampleError::Failed);
        }
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
