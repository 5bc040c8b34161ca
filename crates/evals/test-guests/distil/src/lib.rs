//! A distillation-shaped workload, for the usage alerts' tests: every sample sends
//! [`QUERIES`] prompts from one template ("Explain step by step ..."), filled in with its item's
//! text, asking for long answers with no stop sequence, and keeps nothing it is told.

use proctor_guest::{Eval, EvalInfo, Message, Metric, Params, SampleError, dataset, model, scores};

/// Queries per sample.
const QUERIES: u32 = 3;

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "distil",
            "1.0.0",
            vec![Metric::new("ok", "the sample completed", 0.0, 1.0)],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        let item = dataset::item(index);
        for part in 0..QUERIES {
            let ask = [Message::user(format!(
                "Explain step by step, in detail, how this works and show your reasoning \
                 (part {part}): {item}"
            ))];
            model::complete(&ask, &Params::default()).map_err(|e| e.into_sample_error())?;
        }
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
