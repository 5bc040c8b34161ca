//! Counts samples in a static: if an instance were reused, a later sample would see the count.

use std::sync::atomic::{AtomicU32, Ordering};

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

static SAMPLES: AtomicU32 = AtomicU32::new(0);

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "stateful",
            "1.0.0",
            vec![
                Metric::new("ok", "the sample completed", 0.0, 1.0),
                Metric::new("seen", "this is the first sample this instance ran", 0.0, 1.0),
            ],
        )
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        let before = SAMPLES.fetch_add(1, Ordering::Relaxed);
        scores::report("seen", if before == 0 { 1.0 } else { 0.0 });
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
