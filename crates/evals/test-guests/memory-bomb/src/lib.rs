//! Allocates without end on even samples: the memory limit must end it.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "memory-bomb",
            "1.0.0",
            vec![Metric::new("ok", "the sample completed", 0.0, 1.0)],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        if index % 2 == 0 {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Reserved, not filled: the memory limit, not fuel, must be what stops it.
                let mut block = Vec::with_capacity(1 << 20);
                block.push(index as u8);
                hoard.push(block);
                std::hint::black_box(&hoard);
            }
        }
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
