//! Holds its instance across a model call, with the most memories a component may have:
//! `proctor-evals/build.rs` appends to this crate's component 15 core instances that each
//! define a memory and a table (Rust cannot), so one instance takes four samples' share of
//! the pool.

use proctor_guest::{Eval, EvalInfo, Message, Metric, Params, SampleError, model, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "pool-hog",
            "1.0.0",
            vec![Metric::new("ok", "the sample completed", 0.0, 1.0)],
        )
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        model::complete(&[Message::user("What is 1 + 1?")], &Params::default())
            .map_err(|e| e.into_sample_error())?;
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
