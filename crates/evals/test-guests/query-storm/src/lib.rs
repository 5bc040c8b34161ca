//! Queries the model without end on even samples: the per-sample limit must cut it off.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "query-storm",
            "1.0.0",
            vec![Metric::new("ok", "the sample completed", 0.0, 1.0)],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        if index % 2 == 0 {
            loop {
                let ask = [proctor_guest::Message::user("What is 1 + 1?")];
                proctor_guest::model::complete(&ask, &proctor_guest::Params::default())
                    .map_err(|e| e.into_sample_error())?;
            }
        }
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
