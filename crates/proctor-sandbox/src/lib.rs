//! The wasmtime sandbox that runs eval components under a policy.
//!
//! An eval is a component of the `proctor:eval@0.1.0` world (`wit/proctor.wit`). The sandbox
//! validates it (a component, of that world, importing nothing else but WASI 0.2), compiles it
//! once (with an on-disk cache), calls `describe` once, and then runs `run-sample(i)` for every
//! sample in a fresh instance from a pooling allocator, many in flight on tokio. Each sample has
//! its own fuel, wall-clock deadline, memory and table limits, and query budget; a trap ends
//! that sample only. Knows nothing of HTTP or SQL.
//!
//! Architecture invariants:
//! - a guest's only capability is `model.complete` through the [`proctor_core::Model`] it was
//!   given; WASI is linked as deny-all shims;
//! - no state survives from one sample to the next: every sample is a new instance;
//! - trap messages and errors are host-written and never hold guest strings.

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
}

mod cache;
mod dev;
mod error;
mod host;
mod job;
mod outcome;
mod sample;
mod sandbox;
mod validate;

pub use cache::CompileCache;
pub use dev::{DEV_STDERR_BYTES, DevOutput, DevSink};
pub use error::SandboxError;
pub use job::{
    JobSpec, JobTotals, Progress, release_totals, run_and_release, run_job, run_job_with,
};
pub use sample::SampleResult;
pub use sandbox::{EngineSettings, PreparedEval, Sandbox};
pub use tokio_util::sync::CancellationToken;
pub use validate::{ImportSurvey, check_header};
