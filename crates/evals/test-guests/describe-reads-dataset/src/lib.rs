//! Reads the dataset from `describe`.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, dataset};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        let items = dataset::count();
        EvalInfo::new("describe-reads-dataset", format!("{items}"), vec![Metric::new("ok", "", 0.0, 1.0)])
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
