//! Recurses without bound on even samples: the stack limit must end it.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "deep-recursion",
            "1.0.0",
            vec![Metric::new("ok", "the sample completed", 0.0, 1.0)],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        if index % 2 == 0 {
            scores::report("ok", (deep(u64::MAX - index as u64) & 1) as f64);
        }
        scores::report("ok", 1.0);
        Ok(())
    }
}

/// Uses its callee's result twice, so the compiler cannot turn the recursion into a loop.
fn deep(n: u64) -> u64 {
    if n == 0 {
        return 1;
    }
    let a = deep(n - 1);
    a ^ (a << 1) ^ n
}

proctor_guest::export_eval!(Guest);
