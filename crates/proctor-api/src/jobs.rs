//! `/v1/jobs`: an evaluator submits a job, reads and lists its jobs, cancels one and reads its
//! released result.

use proctor_core::RunReport;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/jobs`: run an eval over a dataset against a model, under the grant's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The eval's sha256, as its upload answered.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub eval: String,
    /// The dataset's sha256, as its upload answered.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub dataset: String,
    /// The model's id.
    #[schema(format = "uuid")]
    pub model: String,
    /// The grant's policy, named to make sure of it; another name is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker (or for its vendor's approval).
    Queued,
    /// A worker runs it.
    Running,
    /// Ran to its end.
    Succeeded,
    /// Could not run to its end.
    Failed,
    /// Cancelled by its evaluator, or rejected by the vendor.
    Cancelled,
    /// Its grant was revoked.
    Revoked,
}

impl JobStatus {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }

    /// The status as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job of a manual grant stands with its vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Its grant needs no approval.
    Auto,
    /// Waiting for the vendor.
    Pending,
    /// The vendor approved it.
    Approved,
    /// The vendor rejected it.
    Rejected,
}

/// A job as its evaluator sees it: status and progress, never per-sample data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// The job's id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Where it stands.
    pub status: JobStatus,
    /// Why it ended as it did: a fixed text under a private policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The eval's sha256.
    pub eval: String,
    /// The dataset's sha256.
    pub dataset: String,
    /// The model's id.
    #[schema(format = "uuid")]
    pub model: String,
    /// The policy it runs under.
    pub policy: PolicyRefView,
    /// Samples processed.
    pub progress: Progress,
    /// Whether its evaluator asked for it to stop.
    pub cancel_requested: bool,
    /// Claims so far; `null` under a private policy (a crash a guest caused would show).
    pub attempts: Option<u32>,
    /// The grant it was accepted under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    pub grant: Option<String>,
    /// Where a manual grant's job stands with its vendor; `auto` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalState>,
    /// RFC 3339; on the policy's time grid under a private policy.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, once a worker took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// RFC 3339, once it ended; padded to the grid under a private policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

/// A policy by name and the digest of its canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyRefView {
    /// The policy's name.
    pub name: String,
    /// sha256 of its canonical JSON.
    pub sha256: String,
}

/// A job's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// Samples processed; `null` under a private policy until the job has ended, since how
    /// fast samples finish depends on what the model said.
    pub done: Option<u64>,
    /// Samples in the job.
    pub total: u64,
}

/// `GET /v1/jobs?limit=N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListJobs {
    /// How many, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A job's end as its evaluator sees it: the released report (aggregates only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResultView {
    /// The job's id.
    #[schema(format = "uuid")]
    pub job: String,
    /// How it ended.
    pub status: JobStatus,
    /// Why it ended as it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The released report; `null` when the job ended before its release.
    pub report: Option<RunReport>,
}
