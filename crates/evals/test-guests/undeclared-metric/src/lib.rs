//! Reports a metric it never declared on even samples.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "undeclared-metric",
            "1.0.0",
            vec![Metric::new("ok", "the sample completed", 0.0, 1.0)],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        if index % 2 == 0 {
            scores::report("smuggled", 1.0);
        }
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
