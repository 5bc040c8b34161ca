//! `/v1/models/{id}/identity`: a vendor's view of its model's identity canaries: where the
//! fingerprint stands, what registration measured, the stated test, and the history of checks
//! with their figures. Never a probe's text or an answer: the service stores neither.

use proctor_core::{IdentityVerdict, ModelIdentity};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a model's fingerprint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FingerprintStateView {
    /// Being measured: jobs run meanwhile state `not_checked`.
    Fingerprinting,
    /// Measured: every job is checked before and after, and the model on a schedule.
    Ready,
    /// Too few stable probes, or serving noise above the test's null rate: never checked.
    Unstable,
    /// A query failed while measuring; the service measures it again later.
    Failed,
    /// Registered while the service ran without identity checks.
    NotEnrolled,
}

/// When a check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKindView {
    /// Right before a job's first sample.
    BeforeJob,
    /// Right after a job's last sample.
    AfterJob,
    /// On the service's schedule.
    Scheduled,
}

/// The test every check applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IdentityTestView {
    /// `border-binomial/v1`.
    pub name: String,
    /// The null mismatch rate per probe.
    pub null_rate: f64,
    /// The level: `changed` when `p_value <= alpha`.
    pub alpha: f64,
    /// Probe queries per check.
    pub queries_per_check: u64,
    /// Probe queries per job (a check before it and one after).
    pub queries_per_job: u64,
}

/// What registration measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FingerprintView {
    /// Probes kept.
    pub probes: u64,
    /// Of them, border probes (near ties at a low temperature).
    pub border_probes: u64,
    /// Repeated temperature-0 queries of the probes.
    pub null_queries: u64,
    /// How many of them differed from the fingerprint.
    pub null_mismatches: u64,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IdentityCheckView {
    /// When it ran.
    pub kind: CheckKindView,
    /// The job it ran for, if any.
    pub job: Option<String>,
    /// Its figures.
    pub identity: ModelIdentity,
    /// When it was recorded, RFC 3339 UTC.
    pub at: String,
}

/// `GET /v1/models/{id}/identity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelIdentityView {
    /// The model's id.
    pub model: String,
    /// Where its fingerprint stands.
    pub state: FingerprintStateView,
    /// What registration measured, once it did.
    pub fingerprint: Option<FingerprintView>,
    /// Probe queries the service sent to measure it (its own, paid by no grant).
    pub registration_queries: u64,
    /// The test.
    pub test: IdentityTestView,
    /// The verdict of the latest check (`not_checked` before any).
    pub latest: IdentityVerdict,
    /// The latest checks, newest first (at most 100).
    pub checks: Vec<IdentityCheckView>,
}

/// What an identity alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityAlertSubjectView {
    /// One check whose verdict is `changed` (the vendor's alone).
    Check,
    /// A job whose result attests `changed`, both its checks together (the vendor's and the
    /// job's evaluator's).
    Job,
}

/// `GET /v1/identity-alerts`: a model answered unlike its fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IdentityAlertView {
    /// The alert's id.
    pub id: String,
    /// The model.
    pub model: String,
    /// What it reports.
    pub subject: IdentityAlertSubjectView,
    /// When the check ran (a check's alert only).
    pub check: Option<CheckKindView>,
    /// The job: a job's alert's, or the one the check ran for.
    pub job: Option<String>,
    /// The figures: the check's, or the job's as its result attests them (verdict `changed`).
    pub identity: ModelIdentity,
    /// When it was raised, RFC 3339 UTC; to an evaluator, the job's end as the job's view
    /// shows it.
    pub at: String,
    /// When the caller acknowledged it.
    pub acknowledged_at: Option<String>,
}
