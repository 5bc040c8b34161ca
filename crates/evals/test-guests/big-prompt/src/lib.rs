//! Sends a prompt over the policy's size on even samples: the host must reject it unsent.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "big-prompt",
            "1.0.0",
            vec![Metric::new("ok", "the sample completed", 0.0, 1.0),
                Metric::new("rejected", "the oversized prompt was rejected", 0.0, 1.0)],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        if index % 2 == 0 {
            let ask = [proctor_guest::Message::user("x".repeat(1 << 20))];
            let refused = matches!(
                proctor_guest::model::complete(&ask, &proctor_guest::Params::default()),
                Err(proctor_guest::QueryError::Rejected(_))
            );
            scores::report("rejected", if refused { 1.0 } else { 0.0 });
        }
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
