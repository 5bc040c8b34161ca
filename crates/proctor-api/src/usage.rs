//! `/v1/usage`: a vendor's exact, metered usage of its models, per job and summed per grant,
//! evaluator and model. Evaluators never see it; their copy of a DP job's usage is noised in
//! its report.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Queries and tokens settled, and queries still in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageCounters {
    /// Model queries settled.
    pub queries: u64,
    /// Input tokens the models billed.
    pub input_tokens: u64,
    /// Output tokens the models billed.
    pub output_tokens: u64,
    /// Queries leased for jobs and not yet settled or given back: in flight, or held in a
    /// job's reservation block for its next queries; zero for a job that has ended.
    pub in_flight: u64,
}

/// One grant's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantUsage {
    /// The grant's id.
    #[schema(format = "uuid")]
    pub grant: String,
    /// Its counters.
    #[serde(flatten)]
    pub counters: UsageCounters,
}

/// One evaluator's usage of the vendor's models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EvaluatorUsage {
    /// The evaluator's account id.
    #[schema(format = "uuid")]
    pub evaluator: String,
    /// The account's name.
    pub name: String,
    /// Its counters.
    #[serde(flatten)]
    pub counters: UsageCounters,
}

/// One model's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelUsage {
    /// The model's id.
    #[schema(format = "uuid")]
    pub model: String,
    /// The model's name.
    pub name: String,
    /// Its counters.
    #[serde(flatten)]
    pub counters: UsageCounters,
}

/// One job's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobUsage {
    /// The job's id.
    #[schema(format = "uuid")]
    pub job: String,
    /// The grant it ran under.
    #[schema(format = "uuid")]
    pub grant: String,
    /// The model it queried.
    #[schema(format = "uuid")]
    pub model: String,
    /// The evaluator who submitted it.
    #[schema(format = "uuid")]
    pub evaluator: String,
    /// When it was submitted (RFC 3339, UTC).
    #[schema(format = "date-time")]
    pub created_at: String,
    /// Its counters.
    #[serde(flatten)]
    pub counters: UsageCounters,
}

/// `GET /v1/usage`: the vendor's usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    /// Everything, summed.
    pub total: UsageCounters,
    /// Per grant, by id.
    pub by_grant: Vec<GrantUsage>,
    /// Per evaluator, by id.
    pub by_evaluator: Vec<EvaluatorUsage>,
    /// Per model, by id.
    pub by_model: Vec<ModelUsage>,
    /// Per job, as the store lists them.
    pub by_job: Vec<JobUsage>,
}
