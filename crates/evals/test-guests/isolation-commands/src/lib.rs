//! A proctor:eval@0.2.0 guest whose `run-isolated` takes `code` as a command, some of them
//! hostile, and whose `run-sample` runs the item's commands in isolation and reports how many
//! of each verdict came back. Items: `{"runs": [["loop", 1000000], ["pass", 1000000]]}`, each
//! run a command and the fuel it asks for.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../proctor-sandbox/wit-0.2.0",
        world: "proctor:eval/eval@0.2.0",
        generate_all,
    });
}

use std::sync::atomic::{AtomicU32, Ordering};

use bindings::proctor::eval0_1_0::types::{Message, Metric, Params, Role};
use bindings::proctor::eval0_1_0::{dataset, model, scores};
use bindings::proctor::eval0_2_0::isolation::{self, Verdict};
use bindings::{EvalInfo, SampleError};

/// Each verdict's metric: how many runs of the sample ended so.
const VERDICTS: [(&str, Verdict); 6] = [
    ("passed", Verdict::Passed),
    ("failed", Verdict::Failed),
    ("out-of-fuel", Verdict::OutOfFuel),
    ("out-of-memory", Verdict::OutOfMemory),
    ("timed-out", Verdict::TimedOut),
    ("crashed", Verdict::Crashed),
];

/// Set by `run-sample` before it runs anything: an isolated instance, being fresh, must not
/// see it.
static SAMPLE_RAN: AtomicU32 = AtomicU32::new(0);

struct Guest;

impl bindings::Guest for Guest {
    fn describe() -> EvalInfo {
        EvalInfo {
            name: "isolation-commands".into(),
            version: "1.0.0".into(),
            metrics: VERDICTS
                .iter()
                .map(|(name, _)| Metric {
                    name: (*name).into(),
                    description: "isolated runs that ended so".into(),
                    min: 0.0,
                    max: 100.0,
                })
                .collect(),
        }
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        SAMPLE_RAN.store(1, Ordering::Relaxed);
        let item: serde_json::Value =
            serde_json::from_str(&dataset::item(index)).map_err(|_| SampleError::InvalidItem)?;
        let runs = item["runs"].as_array().ok_or(SampleError::InvalidItem)?;
        let mut counts = [0u32; VERDICTS.len()];
        for run in runs {
            let code = run[0].as_str().ok_or(SampleError::InvalidItem)?;
            let fuel = run[1].as_u64().ok_or(SampleError::InvalidItem)?;
            let verdict = isolation::run(code, fuel);
            let slot = VERDICTS
                .iter()
                .position(|(_, v)| *v == verdict)
                .expect("every verdict has a metric");
            counts[slot] += 1;
        }
        for ((name, _), count) in VERDICTS.iter().zip(counts) {
            scores::report(name, f64::from(count));
        }
        Ok(())
    }

    fn run_isolated(code: String) -> bool {
        match code.as_str() {
            "pass" => true,
            "fail" => false,
            "loop" => {
                let mut n = 1u64;
                loop {
                    n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = Vec::with_capacity(1 << 20);
                    block.push(1u8);
                    hoard.push(block);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => deep(u64::MAX) & 1 == 0,
            "panic" => panic!("the candidate panicked"),
            "call-model" => model::complete(
                &[Message { role: Role::User, content: "leak this".into() }],
                &Params { max_tokens: Some(4), temperature: None, stop: Vec::new() },
            )
            .is_ok(),
            "read-dataset" => !dataset::item(0).is_empty(),
            "report" => {
                scores::report("passed", 64.0);
                true
            }
            "nest" => isolation::run("pass", 1_000_000) == Verdict::Passed,
            // A fresh instance has never run a sample.
            "see-sample" => SAMPLE_RAN.load(Ordering::Relaxed) == 1,
            _ => false,
        }
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

bindings::export!(Guest with_types_in bindings);
