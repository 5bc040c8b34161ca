//! `/v1/grants`: a vendor grants an evaluator tier or account access to one of its models,
//! under a shipped policy tightened by overrides, with budgets, an approval mode and an
//! expiry; it lists, reads and revokes its grants. An evaluator reads the grants that name it
//! and what is left of their budgets.

use proctor_core::{Policy, PolicyOverrides};
use serde::{Deserialize, Serialize};
use utoipa::{PartialSchema as _, ToSchema};

/// Who a grant is for: `{"tier": "academic"}` or `{"account": "<id>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Grantee {
    /// Every evaluator of a tier; commercial evaluators are granted access by account only.
    Tier(String),
    /// One evaluator account, by id.
    Account(String),
}

// Written out because the derive leaves each one-key object open to other keys, which serde
// (`deny_unknown_fields`) refuses.
impl utoipa::PartialSchema for Grantee {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let one_key = |key: &str, value: utoipa::openapi::RefOr<_>, what: &str| {
            ObjectBuilder::new()
                .property(key, value)
                .required(key)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .description(Some(what))
        };
        let account = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::Custom("uuid".into())));
        OneOfBuilder::new()
            .item(one_key(
                "tier",
                utoipa::openapi::Ref::from_schema_name("GrantTier").into(),
                "Every evaluator of a tier; commercial evaluators are granted access by account only.",
            ))
            .item(one_key("account", account.into(), "One evaluator account, by id."))
            .description(Some(
                "Who a grant is for: `{\"tier\": \"academic\"}` or `{\"account\": \"<id>\"}`.",
            ))
            .into()
    }
}

impl ToSchema for Grantee {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((GrantTier::name().into(), GrantTier::schema()));
    }
}

/// The evaluator tiers a grant may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantTier {
    /// Universities and research groups.
    Academic,
    /// Independent auditors.
    Auditor,
    /// Regulators' own evaluation teams.
    Regulator,
}

impl GrantTier {
    /// The tier as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantTier::Academic => "academic",
            GrantTier::Auditor => "auditor",
            GrantTier::Regulator => "regulator",
        }
    }
}

/// Whether a grant's jobs run at once or wait for its vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// Jobs are queued when accepted.
    Auto,
    /// Jobs wait until the vendor approves them (`/v1/approvals`).
    Manual,
}

impl ApprovalMode {
    /// The mode as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Auto => "auto",
            ApprovalMode::Manual => "manual",
        }
    }
}

impl std::fmt::Display for ApprovalMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grant's budgets; each left out (or `null`) is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBudgets {
    /// Jobs accepted per UTC day.
    #[serde(default)]
    pub jobs_per_day: Option<u64>,
    /// Model queries per UTC day.
    #[serde(default)]
    pub queries_per_day: Option<u64>,
    /// Tokens (in + out) per UTC day.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Model queries over the grant's life.
    #[serde(default)]
    pub queries_total: Option<u64>,
    /// Tokens (in + out) over the grant's life.
    #[serde(default)]
    pub tokens_total: Option<u64>,
    /// The most epsilon one evaluator may spend on the model, across all its grants (kept to
    /// millionths); required when the policy releases under differential privacy.
    #[serde(default)]
    pub epsilon_total: Option<f64>,
    /// The largest leakage bound (bits) a job under the grant may have (kept to thousandths).
    #[serde(default)]
    pub bits_per_job: Option<f64>,
    /// The most leakage (bits, summed over job bounds) one evaluator may spend on the model,
    /// across all its grants (kept to thousandths).
    #[serde(default)]
    pub bits_total: Option<f64>,
    /// The most CPU time, in whole seconds, the samples of one job under the grant may use
    /// (measured by the sandbox on the threads running them; waiting for the model does not
    /// count). A job that passes it is stopped and ends `failed` with a fixed reason.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub cpu_seconds_per_job: Option<u64>,
}

/// `POST /v1/grants`: grant access to one of the caller's models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// The model's id.
    #[schema(format = "uuid")]
    pub model: String,
    /// Who the grant is for.
    pub grantee: Grantee,
    /// A shipped policy (`standard` or `strict`); `standard` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Keys of the policy to tighten, in the shape of a policy file without `name`; none
    /// may loosen its key. Checked by the server, which names an unknown or loosening key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PolicyOverrides>)]
    pub overrides: Option<serde_json::Value>,
    /// The budgets; unlimited when left out.
    #[serde(default)]
    pub budgets: GrantBudgets,
    /// `auto` (the default) or `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ApprovalMode>)]
    pub approval: Option<String>,
    /// When the grant stops covering anything: RFC 3339, in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Usage alert settings (`PUT /v1/grants/{id}/alerts` changes them later); the defaults
    /// when left out: tested hourly against a week of history, no suspension, no webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::alerts::AlertSettingsBody>,
}

/// Whether a grant covers anything now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    /// It covers new jobs.
    Active,
    /// Its vendor revoked it.
    Revoked,
    /// Its expiry has passed.
    Expired,
    /// A usage alert suspended it; its vendor may reinstate it.
    Suspended,
}

impl GrantStatus {
    /// The status as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Revoked => "revoked",
            GrantStatus::Expired => "expired",
            GrantStatus::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for GrantStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grant's effective policy: the shipped one tightened by the grant's overrides. Its jobs
/// run under exactly this policy, and their attestations carry its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GrantPolicyView {
    /// The shipped policy's name.
    pub name: String,
    /// sha256 of the effective policy's canonical JSON.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
    /// The effective policy, every key set.
    pub effective: Policy,
}

/// A grant as its vendor and the evaluators it names see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    /// The grant's id.
    #[schema(format = "uuid")]
    pub id: String,
    /// The vendor's account id.
    #[schema(format = "uuid")]
    pub vendor: String,
    /// The model's id.
    #[schema(format = "uuid")]
    pub model: String,
    /// Who the grant is for.
    pub grantee: Grantee,
    /// The policy its jobs run under.
    pub policy: GrantPolicyView,
    /// The overrides the vendor gave (`{}` for none).
    pub overrides: PolicyOverrides,
    /// The budgets; `null` is unlimited.
    pub budgets: GrantBudgets,
    /// Whether its jobs wait for the vendor.
    pub approval: ApprovalMode,
    /// RFC 3339; `null` for no expiry.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// RFC 3339, once revoked; else `null`.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Whether it covers anything now.
    pub status: GrantStatus,
}

/// What a revocation did: new jobs are refused, queued ones ended, running ones stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RevokedView {
    /// The grant, revoked.
    pub grant: GrantView,
    /// Ids of jobs that had not started, ended now as `revoked` (with their result entries).
    pub ended: Vec<String>,
    /// Ids of running jobs, stopping within seconds as `revoked`.
    pub stopping: Vec<String>,
}

/// Which figures a budget view holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetFigures {
    /// Exact counts: settled (`used`) and in flight (`reserved`).
    Exact,
    /// Limits and the worst cases held at acceptance only (the evaluator of a DP grant): no
    /// figure moves with a model's output.
    WorstCase,
}

/// One budget, exactly: what is settled and what is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExactBudget {
    /// The limit; `null` is unlimited.
    pub limit: Option<u64>,
    /// Settled.
    pub used: u64,
    /// Held by jobs in flight.
    pub reserved: u64,
    /// `limit - used - reserved`, never below 0; `null` when unlimited.
    pub remaining: Option<u64>,
}

/// One budget as the evaluator of a DP grant sees it: the worst cases its jobs held at
/// acceptance, which no model output moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorstCaseBudget {
    /// The limit; `null` is unlimited.
    pub limit: Option<u64>,
    /// The worst cases held by the evaluator's jobs when they were accepted.
    pub worst_case: u64,
    /// `limit - worst_case`, never below 0; `null` when unlimited.
    pub remaining: Option<u64>,
}

/// One budget: exact, or worst cases only (as `figures` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BudgetView {
    /// `figures` is `exact`.
    Exact(ExactBudget),
    /// `figures` is `worst-case`.
    WorstCase(WorstCaseBudget),
}

impl BudgetView {
    /// The limit; `None` is unlimited.
    pub fn limit(&self) -> Option<u64> {
        match self {
            BudgetView::Exact(b) => b.limit,
            BudgetView::WorstCase(b) => b.limit,
        }
    }

    /// What is left; `None` when unlimited.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BudgetView::Exact(b) => b.remaining,
            BudgetView::WorstCase(b) => b.remaining,
        }
    }
}

/// The epsilon ledger.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EpsilonBudget {
    /// The grant's `epsilon_total`; `null` when it has none.
    pub total: Option<f64>,
    /// Spent: the evaluator's on the model, or this grant's jobs' (see `evaluator`).
    pub spent: f64,
    /// `total - spent`, never below 0, to millionths; `null` without a total or without an
    /// evaluator.
    pub remaining: Option<f64>,
}

/// The leakage ledger, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BitsBudget {
    /// The grant's `bits_per_job`; `null` when it has none.
    pub per_job: Option<f64>,
    /// The grant's `bits_total`; `null` when it has none.
    pub total: Option<f64>,
    /// Spent: the evaluator's on the model, or this grant's jobs' (see `evaluator`).
    pub spent: f64,
    /// `total - spent`, never below 0, to thousandths; `null` without a total or without an
    /// evaluator.
    pub remaining: Option<f64>,
}

/// A grant's budgets now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RemainingView {
    /// The grant's id.
    #[schema(format = "uuid")]
    pub grant: String,
    /// The UTC day the daily figures are for, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub day: String,
    /// Which figures the query and token budgets hold.
    pub figures: BudgetFigures,
    /// Whose ledger `epsilon` and `bits` show: the evaluator's on the grant's model (across
    /// all its grants). Absent for a tier grant read by its vendor: then they are what this
    /// grant's jobs spent, and `remaining` is `null` (the limits apply to each evaluator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    pub evaluator: Option<String>,
    /// Jobs accepted today: the evaluator's own submissions, so always exact.
    pub jobs_today: ExactBudget,
    /// Model queries today.
    pub queries_today: BudgetView,
    /// Tokens today.
    pub tokens_today: BudgetView,
    /// Model queries over the grant's life.
    pub queries_total: BudgetView,
    /// Tokens over the grant's life.
    pub tokens_total: BudgetView,
    /// The epsilon ledger.
    pub epsilon: EpsilonBudget,
    /// The leakage ledger.
    pub bits: BitsBudget,
}
