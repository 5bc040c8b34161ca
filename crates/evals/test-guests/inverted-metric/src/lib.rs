//! Declares a metric whose min is above its max.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new("inverted-metric", "1.0.0", vec![Metric::new("upside", "min above max", 1.0, 0.0)])
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
