//! Proctor's domain types and pure logic: policies, metric declarations, sample outcomes, the
//! `Model` trait, statistics and the release of results. Nothing here does I/O: no tokio,
//! wasmtime, HTTP or SQL.
#![deny(missing_docs)]

pub mod anomaly;
pub mod dataset;
pub mod digest;
pub mod identity;
pub mod identity_probes;
pub mod job_end;
pub mod leakage;
pub mod metric;
pub mod model;
pub mod noise;
pub mod outcome;
pub mod overrides;
pub mod policy;
pub mod release;
pub mod report;
pub mod stats;
pub mod text;
pub mod usage_profile;

pub use dataset::{Dataset, DatasetError};
pub use digest::Sha256Digest;
pub use identity::{IdentityVerdict, ModelIdentity};
pub use job_end::{EndStatus, JobEnd};
pub use leakage::Leakage;
pub use metric::{EvalInfo, EvalInfoError, MetricSpec};
pub use model::{
    Completion, CompletionRequest, FinishReason, Message, Model, ModelDescriptor, ModelError,
    Params, Role,
};
pub use outcome::{Outcome, OutcomeTally, SampleCounts};
pub use overrides::PolicyOverrides;
pub use policy::{Policy, PolicyError, WasiMode};
pub use release::{Release, Released, Usage, release};
pub use report::{DatasetRef, EvalRef, PolicyRef, RunReport};
pub use stats::{Accumulator, MetricSummary};
