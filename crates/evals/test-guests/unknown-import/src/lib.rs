//! Imports `evil:exfil/leak` beside the eval world: it must be refused at upload, by name.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package evil:exfil@0.1.0;
            interface leak { send: func(data: string); }
            world evil {
                include proctor:eval/eval@0.1.0;
                import leak;
            }
        ",
        path: "../../../proctor-sandbox/wit",
        world: "evil:exfil/evil",
        generate_all,
    });
}

use bindings::proctor::eval::types::Metric;
use bindings::{EvalInfo, SampleError};

struct Guest;

impl bindings::Guest for Guest {
    fn describe() -> EvalInfo {
        EvalInfo {
            name: "unknown-import".into(),
            version: "1.0.0".into(),
            metrics: vec![Metric { name: "ok".into(), description: String::new(), min: 0.0, max: 1.0 }],
        }
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        bindings::evil::exfil::leak::send(&bindings::proctor::eval::dataset::item(index));
        Ok(())
    }
}

bindings::export!(Guest with_types_in bindings);
