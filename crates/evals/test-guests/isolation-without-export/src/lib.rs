//! Imports `isolation` but does not export `run-isolated`: a component of neither world, it
//! must be refused at upload.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package evil:half@0.1.0;
            world eval {
                include proctor:eval/eval@0.1.0;
                import proctor:eval/isolation@0.2.0;
            }
        ",
        path: "../../../proctor-sandbox/wit-0.2.0",
        world: "evil:half/eval",
        generate_all,
    });
}

use bindings::proctor::eval0_1_0::types::Metric;
use bindings::proctor::eval0_2_0::isolation::{self, Verdict};
use bindings::{EvalInfo, SampleError};

struct Guest;

impl bindings::Guest for Guest {
    fn describe() -> EvalInfo {
        EvalInfo {
            name: "isolation-without-export".into(),
            version: "1.0.0".into(),
            metrics: vec![Metric { name: "ok".into(), description: String::new(), min: 0.0, max: 1.0 }],
        }
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        let item = bindings::proctor::eval0_1_0::dataset::item(index);
        if isolation::run(&item, 1_000_000) == Verdict::Passed {
            bindings::proctor::eval0_1_0::scores::report("ok", 1.0);
        }
        Ok(())
    }
}

bindings::export!(Guest with_types_in bindings);
