//! Declares a metric over `[-1e308, 1e308]`: both ends finite, but the width overflows to
//! infinity. It never reports that metric (an unreported metric once made the release clamp
//! with a NaN bound and panic); it reports `ok = 1` on every sample, so a job of it has
//! something to release. The host must refuse the declaration with a clear error, never panic.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "huge-range",
            "1.0.0",
            vec![
                Metric::new("huge", "declared, never reported", -1e308, 1e308),
                Metric::new("ok", "the sample completed", 0.0, 1.0),
            ],
        )
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
