//! `/v1/evals` and `/v1/datasets`: an evaluator uploads an eval component or a JSONL dataset
//! as raw bytes (`application/octet-stream`), validated before anything is stored, and lists
//! and reads its own, and a dataset's exposure to each vendor (`/v1/datasets/{id}/exposure`). Both are content-addressed: the id is the sha256 of the bytes, so
//! uploading the same bytes again answers the stored one.

use proctor_core::MetricSpec;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An eval as the API shows it: its digest and what its `describe` declared at upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvalView {
    /// The eval's id: its sha256, which jobs name it by.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub id: String,
    /// sha256 of the component's bytes (the same as `id`).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
    /// The name `describe` declared.
    pub name: String,
    /// The version `describe` declared.
    pub version: String,
    /// The metrics `describe` declared.
    pub metrics: Vec<MetricSpec>,
    /// The component's size in bytes.
    pub size: u64,
    /// RFC 3339: when the evaluator first uploaded it.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A dataset as the API shows it (never its lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetView {
    /// The dataset's id: its sha256, which jobs name it by.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub id: String,
    /// sha256 of the dataset's bytes (the same as `id`).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
    /// Its lines: the samples a job over it runs.
    pub items: u64,
    /// Its size in bytes.
    pub size: u64,
    /// RFC 3339: when the evaluator first uploaded it.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A dataset's exposure to one vendor: the jobs accepted over its bytes on the vendor's models,
/// by any evaluator who uploaded the same bytes, and the samples they were to dispatch.
/// Counted at acceptance, so a job that failed or was cancelled counts in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExposureView {
    /// The vendor's account name.
    pub vendor: String,
    /// Jobs accepted over the dataset on the vendor's models.
    pub jobs: u64,
    /// The samples those jobs were to dispatch: items handed to an eval that may send them to
    /// the vendor's model.
    pub items: u64,
    /// RFC 3339: when the last of those jobs was accepted.
    #[schema(format = DateTime)]
    pub updated_at: String,
}
