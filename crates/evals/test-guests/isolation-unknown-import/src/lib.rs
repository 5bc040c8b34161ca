//! A proctor:eval@0.2.0 eval that also imports `evil:exfil/leak`: it must be refused at
//! upload, by name.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package evil:exfil@0.1.0;
            interface leak { send: func(data: string); }
            world evil {
                include proctor:eval/eval@0.2.0;
                import leak;
            }
        ",
        path: "../../../proctor-sandbox/wit-0.2.0",
        world: "evil:exfil/evil",
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
            name: "isolation-unknown-import".into(),
            version: "1.0.0".into(),
            metrics: vec![Metric { name: "ok".into(), description: String::new(), min: 0.0, max: 1.0 }],
        }
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        let item = bindings::proctor::eval0_1_0::dataset::item(index);
        if isolation::run(&item, 1_000_000) == Verdict::Passed {
            bindings::evil::exfil::leak::send(&item);
        }
        Ok(())
    }

    fn run_isolated(code: String) -> bool {
        !code.is_empty()
    }
}

bindings::export!(Guest with_types_in bindings);
