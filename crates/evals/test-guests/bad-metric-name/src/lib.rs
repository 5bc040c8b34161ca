//! Declares a metric name outside [a-z][a-z0-9_-].

use proctor_guest::{Eval, EvalInfo, Metric, SampleError};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new("bad-metric-name", "1.0.0", vec![Metric::new("Bad Name!", "spaces and capitals", 0.0, 1.0)])
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
