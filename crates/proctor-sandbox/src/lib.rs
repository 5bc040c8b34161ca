//! The wasmtime sandbox that runs eval components under a policy.
//!
//! An eval is a component of the `proctor:eval@0.1.0` world (`wit/proctor.wit`) or of
//! `proctor:eval@0.2.0` (`wit-0.2.0/proctor.wit`: all of 0.1.0 and the `isolation`
//! capability). The sandbox validates it (a component, of one of those worlds, importing
//! nothing else but WASI 0.2), compiles it once (with an on-disk cache), calls `describe` once,
//! and then runs `run-sample(i)` for every sample in a fresh instance from a pooling
//! allocator, many in flight on tokio. Each sample has its own fuel, wall-clock deadline,
//! memory and table limits, and query budget; a trap ends that sample only. Knows nothing of
//! HTTP or SQL.
//!
//! Isolation (0.2.0): `isolation.run(code, fuel)` runs `code` through the component's
//! `run-isolated` export in a fresh instance of the same component, in a store of its own
//! whose `model`, `dataset`, `scores` and `isolation` trap. It runs under fuel taken from the
//! sample's isolation budget (as much again as the sample's own fuel, shared by all of the
//! sample's isolated runs, at least [`RUN_FUEL_FLOOR`] a run), the policy's memory
//! and table limits, and the sample's deadline less a reserve; what comes back is one word, a
//! verdict, never a string of it. A 0.1.0 component is linked and run exactly as before.
//!
//! Architecture invariants:
//! - a guest's only capability is `model.complete` through the [`proctor_core::Model`] it was
//!   given (and, in 0.2.0, running its own code apart); WASI is linked as deny-all shims;
//! - no state survives from one sample to the next: every sample is a new instance, and so is
//!   every isolated run;
//! - trap messages and errors are host-written and never hold guest strings; an isolated run
//!   returns a payload-free verdict to its sample only.

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "eval",
        imports: {
            "proctor:eval/model.complete": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });

    /// `proctor:eval@0.2.0`. Its 0.1.0 interfaces map to the modules above, so one set of
    /// host traits (`host.rs`) serves both worlds and only `isolation` is new.
    pub(crate) mod v2 {
        wasmtime::component::bindgen!({
            path: "wit-0.2.0",
            world: "proctor:eval/eval@0.2.0",
            imports: {
                "proctor:eval/isolation.run": async | trappable,
                default: trappable,
            },
            exports: { default: async },
            with: {
                "proctor:eval@0.1.0": crate::bindings::proctor::eval,
            },
        });
    }
}

mod cache;
mod cpu;
mod dev;
mod error;
mod host;
mod isolation;
mod job;
mod outcome;
mod sample;
mod sandbox;
mod world;

pub use cache::CompileCache;
pub use cpu::CpuBudget;
pub use dev::{DEV_STDERR_BYTES, DevOutput, DevSink};
pub use error::SandboxError;
pub use isolation::RUN_FUEL_FLOOR;
pub use job::{
    JobSpec, JobTotals, Progress, release_totals, run_and_release, run_job, run_job_with,
};
pub use proctor_component::{ComponentError, ImportSurvey, World, check_header};
pub use sample::SampleResult;
pub use sandbox::{EngineSettings, PreparedEval, Sandbox};
pub use tokio_util::sync::CancellationToken;
