//! A 0.1.0 eval that exports `run-isolated` with the wrong type (it returns a string, a way
//! out for whatever the code printed): it must be refused at upload, naming the export.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package evil:isolated@0.1.0;
            world eval {
                include proctor:eval/eval@0.1.0;
                export run-isolated: func(code: string) -> string;
            }
        ",
        path: "../../../proctor-sandbox/wit",
        world: "evil:isolated/eval",
        generate_all,
    });
}

use bindings::proctor::eval::types::Metric;
use bindings::{EvalInfo, SampleError};

struct Guest;

impl bindings::Guest for Guest {
    fn describe() -> EvalInfo {
        EvalInfo {
            name: "isolation-wrong-type".into(),
            version: "1.0.0".into(),
            metrics: vec![Metric { name: "ok".into(), description: String::new(), min: 0.0, max: 1.0 }],
        }
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        bindings::proctor::eval::scores::report("ok", 1.0);
        Ok(())
    }

    fn run_isolated(code: String) -> String {
        code
    }
}

bindings::export!(Guest with_types_in bindings);
