//! Calls the model from `describe`: whatever it saw could ride out in metric names.

use proctor_guest::{Eval, EvalInfo, Message, Metric, Params, SampleError, model};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        let seen = model::complete(&[Message::user("name a metric")], &Params::default())
            .map(|c| c.text)
            .unwrap_or_default();
        EvalInfo::new("describe-calls-model", "1.0.0", vec![Metric::new(seen, "", 0.0, 1.0)])
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
