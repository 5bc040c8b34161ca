//! The result of a job as `proctor run --json` prints it and the attestation predicate holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::identity::ModelIdentity;
use crate::leakage::Leakage;
use crate::model::ModelDescriptor;
use crate::outcome::SampleCounts;
use crate::release::{Release, Released, Usage};
use crate::stats::MetricSummary;

/// The eval that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvalRef {
    /// As `describe` declared it.
    pub name: String,
    /// As `describe` declared it.
    pub version: String,
    /// sha256 of the component's bytes.
    pub sha256: Sha256Digest,
}

/// The dataset it ran over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DatasetRef {
    /// sha256 of the file's bytes.
    pub sha256: Sha256Digest,
    /// Items in it.
    pub items: u64,
}

/// The policy it ran under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyRef {
    /// The policy's name.
    pub name: String,
    /// sha256 of its canonical JSON form.
    pub sha256: Sha256Digest,
}

/// A job's result: the `--json` object of `proctor run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunReport {
    /// The eval.
    pub eval: EvalRef,
    /// The dataset.
    pub dataset: DatasetRef,
    /// The model under test.
    pub model: ModelDescriptor,
    /// The policy.
    pub policy: PolicyRef,
    /// Sample counts by outcome.
    pub samples: SampleCounts,
    /// Usage.
    pub usage: Usage,
    /// Per-metric figures; empty when withheld.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// How the figures were released.
    pub release: Release,
    /// The bound, fixed before the job ran, on what all of the above can carry about model
    /// outputs.
    pub leakage: Leakage,
    /// Whether the model that answered was the one registered (`crate::identity`): the
    /// service's checks before and after the job; `not_checked` from `proctor run`, which has
    /// no registration to check against (and in reports stored before the field existed).
    #[serde(default)]
    pub model_identity: ModelIdentity,
}

impl RunReport {
    /// Puts a release together with what produced it.
    pub fn new(
        eval: EvalRef,
        dataset: DatasetRef,
        model: ModelDescriptor,
        policy: PolicyRef,
        released: Released,
        leakage: Leakage,
    ) -> RunReport {
        RunReport {
            eval,
            dataset,
            model,
            policy,
            samples: released.samples,
            usage: released.usage,
            metrics: released.metrics,
            release: released.release,
            leakage,
            model_identity: ModelIdentity::not_checked(),
        }
    }
}
