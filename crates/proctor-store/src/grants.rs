//! Grants: which evaluators may run jobs on a vendor's model, under which policy, budgets,
//! approval mode and expiry; job acceptance against a grant (jobs per day, holds, and the
//! evaluator's ledger on the model, [`crate::ledger`]); the vendor's approval of jobs;
//! revocation.
//!
//! A grant names either a tier (academic, auditor, regulator: never commercial) or one
//! evaluator account. [`Store::grant_for`] picks the grant that covers an evaluator now: an
//! active grant naming the account first, else an active grant for its tier. Metering of model
//! queries against the grant's budgets is in [`crate::metering`].
//!
//! Every change of a grant's counters (jobs, epsilon, queries, tokens) happens while its row is
//! locked (PostgreSQL `SELECT ... FOR UPDATE`; SQLite: the `BEGIN IMMEDIATE` transaction, which
//! excludes every other writer), and the check against the budget is made under the same lock,
//! so concurrent servers cannot both see room for the last unit. Epsilon and leakage bits are
//! kept per (evaluator, model) across grants, in [`crate::ledger`]'s rows, which acceptance
//! locks after the grant's. Lock order: a grant's row, then the pair's ledger row, then the
//! model's ledger row, then a job's row, then the log head.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::accounts::{Role, Tier, opt_timestamp, parse_id, parse_text, text_enum, timestamp};
use crate::error::{Result, SignError, StoreError};
use crate::ids::{AccountId, GrantId, JobId, ModelId};
use crate::jobs::{JOB_COLUMNS, Job, JobStatus, NewJob, Outcome, end_job, job_from_row, lock_job};
use crate::ledger::{
    Spend, bits_limit_millis, charge, epsilon_total_micros, micros_to_epsilon, millis_to_bits,
};
use crate::log::{EntryKind, LogEntry, LogSlot};
use crate::metering::{add_reserved, check_room, counters, release_hold_locked};
use crate::store::{Store, Tx, to_i64, to_u64};
use crate::time::Timestamp;

/// Milliseconds in a day: daily budgets count per UTC day of the database's clock.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Who a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grantee {
    /// Every evaluator of this tier. Never [`Tier::Commercial`]: commercial evaluators get
    /// access only by name.
    Tier(Tier),
    /// One evaluator account, of any tier.
    Account(AccountId),
}

/// Whether a grant's jobs run at once or wait for the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalMode {
    /// Jobs are queued when accepted.
    Auto,
    /// Jobs wait until the vendor approves them ([`Store::approve_job`]).
    Manual,
}

text_enum!(
    ApprovalMode,
    "approval mode",
    Auto = "auto",
    Manual = "manual"
);

/// Where a job under a grant stands with its vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Approval {
    /// Its grant needs no approval.
    Auto,
    /// Waiting for the vendor: the job is `queued` but no worker claims it.
    Pending,
    /// The vendor approved it.
    Approved,
    /// The vendor rejected it (the job ended, cancelled, with a result entry).
    Rejected,
}

text_enum!(
    Approval,
    "approval",
    Auto = "auto",
    Pending = "pending",
    Approved = "approved",
    Rejected = "rejected"
);

/// Why no grant covers an evaluator, a job or a query ([`StoreError::NoGrant`], HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No grant names the evaluator or its tier for this model.
    NotGranted,
    /// The evaluator is commercial and no grant names its account.
    CommercialTier,
    /// The grant that covered it has expired.
    Expired,
    /// The grant that covered it was revoked.
    Revoked,
    /// The account is not an evaluator.
    NotAnEvaluator,
    /// The job is not (or not yet) approved under this grant.
    NotApproved,
}

text_enum!(
    Refusal,
    "refusal",
    NotGranted = "not-granted",
    CommercialTier = "commercial-tier",
    Expired = "expired",
    Revoked = "revoked",
    NotAnEvaluator = "not-an-evaluator",
    NotApproved = "not-approved"
);

impl Refusal {
    /// A sentence for the API's error message.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotGranted => "no grant gives this evaluator access to the model",
            Refusal::CommercialTier => {
                "commercial evaluators need a grant that names their account"
            }
            Refusal::Expired => "the grant has expired",
            Refusal::Revoked => "the grant was revoked",
            Refusal::NotAnEvaluator => "only evaluator accounts can be granted access",
            Refusal::NotApproved => "the job is not approved under this grant",
        }
    }
}

/// Which budget of a grant ran out ([`StoreError::BudgetExhausted`], HTTP 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// Jobs accepted today.
    JobsPerDay,
    /// Queries today.
    QueriesPerDay,
    /// Tokens today.
    TokensPerDay,
    /// Queries over the grant's life.
    QueriesTotal,
    /// Tokens over the grant's life.
    TokensTotal,
    /// The evaluator's epsilon ledger on the model (differential privacy), against the grant's
    /// `epsilon_total`.
    Epsilon,
    /// The job's leakage bound is above the grant's `bits_per_job`.
    BitsPerJob,
    /// The evaluator's leakage ledger on the model, against the grant's `bits_total`.
    BitsTotal,
    /// The model-wide epsilon cap its vendor set across all evaluators.
    ModelEpsilon,
    /// The model-wide leakage cap (bits) its vendor set across all evaluators.
    ModelBits,
    /// The worst case a DP job held at acceptance is used up (its caller's worst case was
    /// wrong: the hold is never topped up from the grant, so samples stay independent).
    JobWorstCase,
}

text_enum!(
    Budget,
    "budget",
    JobsPerDay = "jobs-per-day",
    QueriesPerDay = "queries-per-day",
    TokensPerDay = "tokens-per-day",
    QueriesTotal = "queries-total",
    TokensTotal = "tokens-total",
    Epsilon = "epsilon",
    BitsPerJob = "bits-per-job",
    BitsTotal = "bits-total",
    ModelEpsilon = "model-epsilon",
    ModelBits = "model-bits",
    JobWorstCase = "job-worst-case",
);

impl Budget {
    /// A sentence for the API's error message.
    pub fn message(self) -> &'static str {
        match self {
            Budget::JobsPerDay => "no more jobs today",
            Budget::QueriesPerDay => "no more queries today",
            Budget::TokensPerDay => "no more tokens today",
            Budget::QueriesTotal => "no more queries",
            Budget::TokensTotal => "no more tokens",
            Budget::Epsilon => {
                "the privacy budget (epsilon_total) of this evaluator on this model would be \
                 overspent"
            }
            Budget::BitsPerJob => "the job's leakage bound is above the grant's bits_per_job",
            Budget::BitsTotal => {
                "the leakage budget (bits_total) of this evaluator on this model would be \
                 overspent"
            }
            Budget::ModelEpsilon => {
                "the model-wide privacy cap (epsilon_total across all evaluators, set by its \
                 vendor) would be overspent"
            }
            Budget::ModelBits => {
                "the model-wide leakage cap (bits_total across all evaluators, set by its \
                 vendor) would be overspent"
            }
            Budget::JobWorstCase => "the job's reserved worst case is used up",
        }
    }
}

/// A grant's budgets; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Budgets {
    /// Jobs accepted per UTC day.
    pub jobs_per_day: Option<u64>,
    /// Model queries per UTC day.
    pub queries_per_day: Option<u64>,
    /// Tokens (in + out) per UTC day.
    pub tokens_per_day: Option<u64>,
    /// Model queries over the grant's life.
    pub queries_total: Option<u64>,
    /// Tokens (in + out) over the grant's life.
    pub tokens_total: Option<u64>,
    /// The most epsilon the evaluator may have spent on the model, across all its grants, for
    /// a DP job under this grant to be accepted; kept to millionths (rounded down). For a tier
    /// grant it applies to each evaluator of the tier (the model-wide cap,
    /// [`crate::ModelCaps`], bounds them together). Required for DP jobs: without it a grant
    /// accepts none.
    pub epsilon_total: Option<f64>,
    /// The largest leakage bound (bits) a job under this grant may have, kept to thousandths
    /// (rounded down).
    pub bits_per_job: Option<f64>,
    /// The most leakage (bits, summed over job bounds) the evaluator may have spent on the
    /// model, across all its grants, for a job under this grant to be accepted; as
    /// `epsilon_total`.
    pub bits_total: Option<f64>,
}

/// A grant to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGrant {
    /// The vendor; must own `model`.
    pub vendor: AccountId,
    /// The model.
    pub model: ModelId,
    /// Who may use it.
    pub grantee: Grantee,
    /// A policy shipped in `sandbox-policies/`.
    pub policy_name: String,
    /// Tightening overrides, a JSON object. The server checks that they never loosen the
    /// named policy (`proctor_core::Policy`); the store keeps them as given.
    pub policy_overrides: String,
    /// Budgets.
    pub budgets: Budgets,
    /// Whether jobs wait for the vendor.
    pub approval: ApprovalMode,
    /// When it stops covering anything (database clock); `None` for never.
    pub expires_at: Option<Timestamp>,
}

/// A grant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Its id.
    pub id: GrantId,
    /// The vendor that made it.
    pub vendor: AccountId,
    /// The model.
    pub model: ModelId,
    /// Who may use it.
    pub grantee: Grantee,
    /// The policy's name.
    pub policy_name: String,
    /// Tightening overrides, JSON.
    pub policy_overrides: String,
    /// Budgets.
    pub budgets: Budgets,
    /// Whether jobs wait for the vendor.
    pub approval: ApprovalMode,
    /// When it stops covering anything.
    pub expires_at: Option<Timestamp>,
    /// When the vendor revoked it.
    pub revoked_at: Option<Timestamp>,
    /// When it was made.
    pub created_at: Timestamp,
}

impl Grant {
    /// Why it does not cover anything at `now`, if it does not.
    pub fn inactive_reason(&self, now: Timestamp) -> Option<Refusal> {
        if self.revoked_at.is_some() {
            Some(Refusal::Revoked)
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some(Refusal::Expired)
        } else {
            None
        }
    }
}

/// Queries and tokens held for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hold {
    /// Queries.
    pub queries: u64,
    /// Tokens (in + out; per query the worst case the caller reserves).
    pub tokens: u64,
}

/// What a job takes from its grant when it is accepted ([`Tx::reserve_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JobDemand {
    /// A DP job's epsilon, spent from the evaluator's ledger on the model.
    pub epsilon: Option<f64>,
    /// The job's leakage bound in bits (`proctor_core::leakage::bound(..).bits_max`), for every
    /// job, DP or not: checked against the grant's `bits_per_job` and spent from the
    /// evaluator's ledger on the model, rounded up to thousandths.
    pub bits: f64,
    /// A DP job's worst case (samples × `max_per_sample` queries, each with its worst-case
    /// tokens), held from the grant's budgets from acceptance on (CONTRACTS.md: "a job
    /// reserves its worst-case grant budget when it is accepted"); its queries then draw
    /// from the hold only. `None`: queries draw from the grant as they come.
    pub hold: Option<Hold>,
}

/// A job's place under a grant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobGrant {
    /// The job.
    pub job: JobId,
    /// The grant it was accepted under.
    pub grant: GrantId,
    /// Where it stands with the vendor.
    pub approval: Approval,
    /// The epsilon it spent from the ledger (DP jobs), in the ledger's resolution.
    pub epsilon: Option<f64>,
    /// The leakage bound it spent from the ledger, in bits, rounded up to thousandths.
    pub bits: f64,
    /// What is left of its hold (`None`: it holds nothing, or the hold went back when it
    /// ended).
    pub hold: Option<Hold>,
}

/// What [`Store::revoke_grant`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Revocation {
    /// The grant, with `revoked_at` set.
    pub grant: Grant,
    /// Jobs that had not started (queued, or waiting for approval): ended now as
    /// [`JobStatus::Revoked`], each with its result entry (and its hold given back).
    pub ended: Vec<(Job, LogEntry)>,
    /// Jobs that were running: flagged `cancel_requested` (reason "grant revoked"), so their
    /// workers see it on the next renewal; the server must also stop them at once, finish
    /// them as [`JobStatus::Revoked`] and release nothing. Their next
    /// [`Store::reserve_query`] is refused.
    pub running: Vec<Job>,
}

/// The reason recorded on jobs ended or flagged by a revocation.
pub const REVOKED_REASON: &str = "the vendor revoked the grant";

const JOB_GRANT_COLUMNS: &str = "g.job_id, g.grant_id, g.approval, g.hold_queries, \
    g.hold_tokens, g.hold_day, g.hold_released_at, g.bits_milli, l.epsilon_micro";

const JOB_GRANT_FROM: &str = "FROM job_grants g LEFT JOIN epsilon_ledger l ON l.job_id = g.job_id";

fn job_grant_from_row(row: &AnyRow) -> Result<JobGrant> {
    let epsilon: Option<i64> = row.try_get("epsilon_micro")?;
    let hold_day: Option<i64> = row.try_get("hold_day")?;
    let released: Option<i64> = row.try_get("hold_released_at")?;
    let hold = match (hold_day, released) {
        (Some(_), None) => Some(Hold {
            queries: to_u64(row.try_get("hold_queries")?, "hold_queries")?,
            tokens: to_u64(row.try_get("hold_tokens")?, "hold_tokens")?,
        }),
        _ => None,
    };
    Ok(JobGrant {
        job: parse_id(row, "job_id")?,
        grant: parse_id(row, "grant_id")?,
        approval: parse_text(row, "approval")?,
        epsilon: epsilon.map(micros_to_epsilon),
        bits: millis_to_bits(row.try_get("bits_milli")?),
        hold,
    })
}

const GRANT_COLUMNS: &str = "id, vendor_id, model_id, grantee_tier, grantee_account_id, \
    policy_name, policy_overrides, jobs_per_day, queries_per_day, tokens_per_day, queries_total, \
    tokens_total, epsilon_total_micro, bits_per_job_milli, bits_total_milli, approval, \
    expires_at, revoked_at, created_at";

fn opt_u64(row: &AnyRow, column: &'static str) -> Result<Option<u64>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| to_u64(v, column))
        .transpose()
}

fn opt_i64(value: Option<u64>, what: &'static str) -> Result<Option<i64>> {
    value.map(|v| to_i64(v, what)).transpose()
}

fn grant_from_row(row: &AnyRow) -> Result<Grant> {
    let tier: Option<String> = row.try_get("grantee_tier")?;
    let account: Option<String> = row.try_get("grantee_account_id")?;
    let grantee = match (tier, account) {
        (Some(tier), None) => Grantee::Tier(
            tier.parse()
                .map_err(|_| StoreError::Corrupt("grantee_tier"))?,
        ),
        (None, Some(account)) => Grantee::Account(
            account
                .parse()
                .map_err(|_| StoreError::Corrupt("grantee_account_id"))?,
        ),
        _ => return Err(StoreError::Corrupt("grantee")),
    };
    let epsilon: Option<i64> = row.try_get("epsilon_total_micro")?;
    let bits_per_job: Option<i64> = row.try_get("bits_per_job_milli")?;
    let bits_total: Option<i64> = row.try_get("bits_total_milli")?;
    Ok(Grant {
        id: parse_id(row, "id")?,
        vendor: parse_id(row, "vendor_id")?,
        model: parse_id(row, "model_id")?,
        grantee,
        policy_name: row.try_get("policy_name")?,
        policy_overrides: row.try_get("policy_overrides")?,
        budgets: Budgets {
            jobs_per_day: opt_u64(row, "jobs_per_day")?,
            queries_per_day: opt_u64(row, "queries_per_day")?,
            tokens_per_day: opt_u64(row, "tokens_per_day")?,
            queries_total: opt_u64(row, "queries_total")?,
            tokens_total: opt_u64(row, "tokens_total")?,
            epsilon_total: epsilon.map(micros_to_epsilon),
            bits_per_job: bits_per_job.map(millis_to_bits),
            bits_total: bits_total.map(millis_to_bits),
        },
        approval: parse_text(row, "approval")?,
        expires_at: opt_timestamp(row, "expires_at")?,
        revoked_at: opt_timestamp(row, "revoked_at")?,
        created_at: timestamp(row, "created_at")?,
    })
}

/// Reads a grant inside `tx`, locking its row on PostgreSQL (SQLite's transaction is already
/// exclusive). Every change to a grant's counters starts here.
pub(crate) async fn lock_grant(tx: &mut Tx, id: GrantId) -> Result<Grant> {
    let sql = tx.backend.sql(&format!(
        "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1 {{for_update}}"
    ));
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *tx.inner)
        .await?
        .ok_or(StoreError::NotFound("grant"))?;
    grant_from_row(&row)
}

/// Which of `candidates` (the grants of one model naming `account` or its tier) covers the
/// account at `now`: an active account grant first (newest), else an active tier grant.
fn choose(
    account: AccountId,
    tier: Option<Tier>,
    candidates: Vec<Grant>,
    now: Timestamp,
) -> Result<Grant, Refusal> {
    let (named, by_tier): (Vec<Grant>, Vec<Grant>) = candidates
        .into_iter()
        .partition(|g| g.grantee == Grantee::Account(account));
    let mut first_inactive = None;
    for grant in named.into_iter().chain(by_tier) {
        match grant.inactive_reason(now) {
            None => return Ok(grant),
            Some(reason) => {
                first_inactive.get_or_insert(reason);
            }
        }
    }
    Err(match first_inactive {
        Some(reason) => reason,
        None if tier == Some(Tier::Commercial) => Refusal::CommercialTier,
        None => Refusal::NotGranted,
    })
}

impl Tx {
    /// Accepts `job` (just written by [`Tx::enqueue`] in this transaction) under `grant`:
    /// checks that the grant covers the job's evaluator and model and is neither revoked nor
    /// expired, counts the job against the grant's jobs per day, holds its worst case (see
    /// [`JobDemand::hold`]), spends its epsilon (DP jobs) and its leakage bound from the
    /// evaluator's ledger on the model ([`crate::ledger`]: checked against this grant's
    /// `epsilon_total`, `bits_per_job` and `bits_total` and the model-wide caps), and records
    /// the job's approval state (`pending` under a manual grant, so no worker claims it until
    /// the vendor approves).
    ///
    /// Locks the grant's row, then the pair's ledger row, then the model's. Checks come
    /// before writes; on an error the caller drops the transaction, so a refused job writes
    /// nothing (not even the job row). Whether the job's policy needs an epsilon is the
    /// server's decision; a job without one spends no epsilon.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoGrant`] when the grant does not cover the job or is revoked or expired;
    /// [`StoreError::BudgetExhausted`] ([`Budget::JobsPerDay`], the query or token budget the
    /// hold does not fit, then [`Budget::BitsPerJob`], [`Budget::Epsilon`] (also for a DP job
    /// under a grant without `epsilon_total`), [`Budget::BitsTotal`], [`Budget::ModelEpsilon`],
    /// [`Budget::ModelBits`]);
    /// [`StoreError::Invalid`] for an epsilon that is not finite and positive, or bits that
    /// are not finite and 0 or more;
    /// [`StoreError::NotFound`] for an unknown grant or job.
    pub async fn reserve_job(
        &mut self,
        grant: GrantId,
        job: JobId,
        demand: &JobDemand,
    ) -> Result<JobGrant> {
        let spend = Spend::of(demand)?;
        let hold = demand
            .hold
            .map(|h| -> Result<(i64, i64)> {
                Ok((
                    to_i64(h.queries, "held queries")?,
                    to_i64(h.tokens, "held tokens")?,
                ))
            })
            .transpose()?;
        let locked = lock_grant(self, grant).await?;
        let row = sqlx::query(
            "SELECT j.evaluator_id, j.model_id, a.role, a.tier FROM jobs j \
             JOIN accounts a ON a.id = j.evaluator_id WHERE j.id = $1",
        )
        .bind(job.to_string())
        .fetch_optional(&mut *self.inner)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
        let evaluator: AccountId = parse_id(&row, "evaluator_id")?;
        let model: ModelId = parse_id(&row, "model_id")?;
        let role: Role = parse_text(&row, "role")?;
        let tier: Option<String> = row.try_get("tier")?;
        let tier: Option<Tier> = tier.map(|t| t.parse()).transpose()?;
        if role != Role::Evaluator {
            return Err(StoreError::NoGrant(Refusal::NotAnEvaluator));
        }
        let names_evaluator = match locked.grantee {
            Grantee::Account(account) => account == evaluator,
            Grantee::Tier(t) => Some(t) == tier && t != Tier::Commercial,
        };
        if locked.model != model || !names_evaluator {
            return Err(StoreError::NoGrant(Refusal::NotGranted));
        }
        let now = self.now().await?;
        if let Some(reason) = locked.inactive_reason(now) {
            return Err(StoreError::NoGrant(reason));
        }
        let day = now.0.div_euclid(DAY_MS);
        let jobs_today: Option<i64> =
            sqlx::query_scalar("SELECT jobs FROM grant_days WHERE grant_id = $1 AND day = $2")
                .bind(grant.to_string())
                .bind(day)
                .fetch_optional(&mut *self.inner)
                .await?;
        let jobs_today = to_u64(jobs_today.unwrap_or(0), "grant_days.jobs")?;
        if locked
            .budgets
            .jobs_per_day
            .is_some_and(|limit| jobs_today >= limit)
        {
            return Err(StoreError::BudgetExhausted(Budget::JobsPerDay));
        }
        if let Some((queries, tokens)) = hold {
            // A DP job is charged its worst case, and so is every DP job before it, whatever
            // they really used: whether this job fits must not depend on what earlier jobs'
            // model outputs made them spend (the hold of a finished job goes back to the
            // grant's live counters, not to this check).
            let worst = "SELECT CAST(COALESCE(SUM(worst_queries), 0) AS BIGINT) AS queries_used, \
                 CAST(COALESCE(SUM(worst_tokens), 0) AS BIGINT) AS tokens_used, \
                 CAST(0 AS BIGINT) AS queries_reserved, CAST(0 AS BIGINT) AS tokens_reserved \
                 FROM job_grants WHERE grant_id = $1";
            let totals = sqlx::query(worst)
                .bind(grant.to_string())
                .fetch_one(&mut *self.inner)
                .await?;
            let today = sqlx::query(&format!("{worst} AND hold_day = $2"))
                .bind(grant.to_string())
                .bind(day)
                .fetch_one(&mut *self.inner)
                .await?;
            check_room(
                &locked.budgets,
                &counters(&today)?,
                &counters(&totals)?,
                queries,
                tokens,
            )?;
        }
        // The last check, and the ledgers' locks: it counts the spend on the pair's and the
        // model's rows only when it fits both.
        charge(self, evaluator, model, &locked.budgets, spend).await?;

        // Every check passed: write.
        sqlx::query(
            "INSERT INTO grant_days (grant_id, day, jobs) VALUES ($1, $2, 1) \
             ON CONFLICT (grant_id, day) DO UPDATE SET jobs = grant_days.jobs + 1",
        )
        .bind(grant.to_string())
        .bind(day)
        .execute(&mut *self.inner)
        .await?;
        if let Some((queries, tokens)) = hold {
            add_reserved(self, grant, day, queries, tokens).await?;
        }
        // The grant's own record of what its jobs spent (the vendor's view of a tier grant).
        sqlx::query(
            "UPDATE grants SET epsilon_spent_micro = epsilon_spent_micro + $2, \
             bits_spent_milli = bits_spent_milli + $3 WHERE id = $1",
        )
        .bind(grant.to_string())
        .bind(spend.epsilon.unwrap_or(0))
        .bind(spend.bits)
        .execute(&mut *self.inner)
        .await?;
        if let Some(epsilon) = spend.epsilon {
            sqlx::query(
                "INSERT INTO epsilon_ledger (job_id, grant_id, epsilon_micro, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(job.to_string())
            .bind(grant.to_string())
            .bind(epsilon)
            .bind(now.0)
            .execute(&mut *self.inner)
            .await
            .map_err(|e| crate::error::classify(e, "job's grant", "job"))?;
        }
        let approval = match locked.approval {
            ApprovalMode::Auto => Approval::Auto,
            ApprovalMode::Manual => Approval::Pending,
        };
        let (queries, tokens) = hold.unwrap_or((0, 0));
        sqlx::query(
            "INSERT INTO job_grants (job_id, grant_id, approval, hold_queries, hold_tokens, \
             hold_day, worst_queries, worst_tokens, bits_milli, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(job.to_string())
        .bind(grant.to_string())
        .bind(approval.as_str())
        .bind(queries)
        .bind(tokens)
        .bind(hold.map(|_| day))
        .bind(queries)
        .bind(tokens)
        .bind(spend.bits)
        .bind(now.0)
        .execute(&mut *self.inner)
        .await
        .map_err(|e| crate::error::classify(e, "job's grant", "job"))?;
        Ok(JobGrant {
            job,
            grant,
            approval,
            epsilon: spend.epsilon.map(micros_to_epsilon),
            bits: millis_to_bits(spend.bits),
            hold: demand.hold,
        })
    }
}

impl Store {
    /// Creates a grant. The vendor must own the model; an account grantee must be an
    /// evaluator; a tier grantee must not be commercial.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown model, or one the vendor does not own (a vendor
    /// learns nothing of other vendors' models), or an unknown grantee account;
    /// [`StoreError::Invalid`] for a commercial tier, a grantee that is not an evaluator, an
    /// empty policy name or overrides, a budget beyond 2^63 or a bad epsilon or bits limit.
    /// Whether the grant's policy needs an `epsilon_total` (it does under DP) is the server's
    /// check; a DP job under a grant without one is refused at acceptance.
    pub async fn create_grant(&self, grant: &NewGrant) -> Result<Grant> {
        if grant.policy_name.is_empty() {
            return Err(StoreError::Invalid("policy name"));
        }
        if grant.policy_overrides.trim().is_empty() {
            return Err(StoreError::Invalid("policy overrides (a JSON object)"));
        }
        let epsilon = grant
            .budgets
            .epsilon_total
            .map(epsilon_total_micros)
            .transpose()?;
        let bits_per_job = grant
            .budgets
            .bits_per_job
            .map(bits_limit_millis)
            .transpose()?;
        let bits_total = grant
            .budgets
            .bits_total
            .map(bits_limit_millis)
            .transpose()?;
        let mut tx = self.begin().await?;
        let result: Result<Grant> = async {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT owner_id FROM models WHERE id = $1")
                    .bind(grant.model.to_string())
                    .fetch_optional(&mut *tx.inner)
                    .await?;
            if owner != Some(grant.vendor.to_string()) {
                return Err(StoreError::NotFound("model"));
            }
            let (tier, account) = match grant.grantee {
                Grantee::Tier(Tier::Commercial) => {
                    return Err(StoreError::Invalid(
                        "grantee tier (commercial evaluators are granted by account only)",
                    ));
                }
                Grantee::Tier(tier) => (Some(tier.as_str()), None),
                Grantee::Account(account) => {
                    let role: String =
                        sqlx::query_scalar("SELECT role FROM accounts WHERE id = $1")
                            .bind(account.to_string())
                            .fetch_optional(&mut *tx.inner)
                            .await?
                            .ok_or(StoreError::NotFound("grantee account"))?;
                    if role != Role::Evaluator.as_str() {
                        return Err(StoreError::Invalid("grantee (not an evaluator account)"));
                    }
                    (None, Some(account.to_string()))
                }
            };
            let b = &grant.budgets;
            let sql = tx.backend.sql(&format!(
                "INSERT INTO grants (id, vendor_id, model_id, grantee_tier, \
                 grantee_account_id, policy_name, policy_overrides, jobs_per_day, \
                 queries_per_day, tokens_per_day, queries_total, tokens_total, \
                 epsilon_total_micro, bits_per_job_milli, bits_total_milli, approval, \
                 expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, {{now}}) RETURNING {GRANT_COLUMNS}"
            ));
            let row = sqlx::query(&sql)
                .bind(GrantId::new().to_string())
                .bind(grant.vendor.to_string())
                .bind(grant.model.to_string())
                .bind(tier)
                .bind(account)
                .bind(&grant.policy_name)
                .bind(&grant.policy_overrides)
                .bind(opt_i64(b.jobs_per_day, "jobs per day")?)
                .bind(opt_i64(b.queries_per_day, "queries per day")?)
                .bind(opt_i64(b.tokens_per_day, "tokens per day")?)
                .bind(opt_i64(b.queries_total, "queries total")?)
                .bind(opt_i64(b.tokens_total, "tokens total")?)
                .bind(epsilon)
                .bind(bits_per_job)
                .bind(bits_total)
                .bind(grant.approval.as_str())
                .bind(grant.expires_at.map(|t| t.0))
                .fetch_one(&mut *tx.inner)
                .await?;
            let created = grant_from_row(&row)?;
            Ok(created)
        }
        .await;
        tx.end(result).await
    }

    /// A grant by id.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn grant(&self, id: GrantId) -> Result<Grant> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("grant"))?;
        grant_from_row(&row)
    }

    /// The grants a vendor made, newest first (revoked and expired ones included).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn grants_of_vendor(&self, vendor: AccountId) -> Result<Vec<Grant>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE vendor_id = $1 ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(&sql)
            .bind(vendor.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// The grants that name an evaluator or its tier, newest first (revoked and expired ones
    /// included: [`Grant::inactive_reason`] tells).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown account.
    pub async fn grants_for_evaluator(&self, evaluator: AccountId) -> Result<Vec<Grant>> {
        let account = self.account(evaluator).await?;
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE grantee_account_id = $1 \
             OR grantee_tier = $2 ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(&sql)
            .bind(evaluator.to_string())
            .bind(account.tier.map(Tier::as_str))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// For each model an evaluator may use now, the grant its jobs would be accepted under
    /// (as [`Store::grant_for`] chooses), by model id.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown account.
    pub async fn covering_grants(&self, evaluator: AccountId) -> Result<Vec<Grant>> {
        let account = self.account(evaluator).await?;
        let mut by_model: std::collections::BTreeMap<ModelId, Vec<Grant>> = Default::default();
        for grant in self.grants_for_evaluator(evaluator).await? {
            by_model.entry(grant.model).or_default().push(grant);
        }
        let now = self.now().await?;
        Ok(by_model
            .into_values()
            .filter_map(|candidates| choose(evaluator, account.tier, candidates, now).ok())
            .collect())
    }

    /// The grant that covers `evaluator` on `model` now: an active grant naming the account
    /// (newest first), else an active grant for its tier. A revoked account grant does not
    /// hide an active tier grant: revocation ends a grant, not an evaluator's tier.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoGrant`] with the reason: [`Refusal::Revoked`] or [`Refusal::Expired`]
    /// when the grants that named it are all inactive (the account's grant's reason first),
    /// [`Refusal::CommercialTier`] for a commercial evaluator no grant names,
    /// [`Refusal::NotGranted`] otherwise, [`Refusal::NotAnEvaluator`] for other roles;
    /// [`StoreError::NotFound`] for an unknown account.
    pub async fn grant_for(&self, evaluator: AccountId, model: ModelId) -> Result<Grant> {
        let account = self.account(evaluator).await?;
        if account.role != Role::Evaluator {
            return Err(StoreError::NoGrant(Refusal::NotAnEvaluator));
        }
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE model_id = $1 \
             AND (grantee_account_id = $2 OR grantee_tier = $3) ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(&sql)
            .bind(model.to_string())
            .bind(evaluator.to_string())
            .bind(account.tier.map(Tier::as_str))
            .fetch_all(&self.pool)
            .await?;
        let candidates = rows
            .iter()
            .map(grant_from_row)
            .collect::<Result<Vec<_>>>()?;
        let now = self.now().await?;
        choose(evaluator, account.tier, candidates, now).map_err(StoreError::NoGrant)
    }

    /// Submits a job under a grant: the job row, its acceptance under the grant
    /// ([`Tx::reserve_job`]) and its pre-registration entry commit together or not at all.
    ///
    /// # Errors
    ///
    /// As [`Tx::enqueue`], [`Tx::reserve_job`] and [`Tx::append_entry`]; a refused job
    /// writes nothing.
    pub async fn submit_job_under<F>(
        &self,
        grant: GrantId,
        demand: &JobDemand,
        job: &NewJob,
        sign: F,
    ) -> Result<(Job, JobGrant, LogEntry)>
    where
        F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        let mut tx = self.begin().await?;
        let result: Result<(Job, JobGrant, LogEntry)> = async {
            let queued = tx.enqueue(job).await?;
            let accepted = tx.reserve_job(grant, queued.id, demand).await?;
            let entry = tx
                .append_entry(EntryKind::Accepted, queued.id, |slot| sign(&queued, slot))
                .await?;
            Ok((queued, accepted, entry))
        }
        .await;
        tx.end(result).await
    }

    /// The grant a job was accepted under, its approval state and epsilon (`None` for a job
    /// submitted without a grant).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn job_grant(&self, job: JobId) -> Result<Option<JobGrant>> {
        let sql = format!("SELECT {JOB_GRANT_COLUMNS} {JOB_GRANT_FROM} WHERE g.job_id = $1");
        let row = sqlx::query(&sql)
            .bind(job.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_grant_from_row).transpose()
    }

    /// [`Store::job_grant`] of every job of `evaluator` under a grant, in one query.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn job_grants_of(
        &self,
        evaluator: AccountId,
    ) -> Result<std::collections::HashMap<JobId, JobGrant>> {
        let sql = format!(
            "SELECT {JOB_GRANT_COLUMNS} {JOB_GRANT_FROM} JOIN jobs j ON j.id = g.job_id \
             WHERE j.evaluator_id = $1"
        );
        let rows = sqlx::query(&sql)
            .bind(evaluator.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| job_grant_from_row(row).map(|g| (g.job, g)))
            .collect()
    }

    /// The jobs under a grant that have not ended (queued, waiting for approval, or running),
    /// oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn unfinished_jobs_of_grant(&self, grant: GrantId) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running') AND id IN \
             (SELECT job_id FROM job_grants WHERE grant_id = $1) ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(grant.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Jobs on the vendor's models waiting for its approval, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn awaiting_approval(&self, vendor: AccountId) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' AND id IN \
             (SELECT g.job_id FROM job_grants g JOIN grants gr ON gr.id = g.grant_id \
             WHERE gr.vendor_id = $1 AND g.approval = 'pending') ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(vendor.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Checks that `job` is a queued job waiting for `vendor`'s approval, in `tx`, with the
    /// job's row locked.
    async fn pending_job(
        tx: &mut Tx,
        vendor: AccountId,
        job: JobId,
        action: &'static str,
    ) -> Result<Job> {
        let row = sqlx::query(
            "SELECT g.approval, gr.vendor_id FROM job_grants g \
             JOIN grants gr ON gr.id = g.grant_id WHERE g.job_id = $1",
        )
        .bind(job.to_string())
        .fetch_optional(&mut *tx.inner)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound("job"));
        };
        let owner: AccountId = parse_id(&row, "vendor_id")?;
        if owner != vendor {
            // Other vendors' jobs do not exist for this vendor.
            return Err(StoreError::NotFound("job"));
        }
        let current = lock_job(tx, job).await?;
        let approval: Approval = parse_text(&row, "approval")?;
        if current.status != JobStatus::Queued {
            return Err(StoreError::InvalidState {
                job: job.to_string(),
                status: current.status.as_str(),
                action,
            });
        }
        if approval != Approval::Pending {
            return Err(StoreError::InvalidState {
                job: job.to_string(),
                status: approval.as_str(),
                action,
            });
        }
        Ok(current)
    }

    /// The vendor approves a job waiting under one of its manual grants: workers may now
    /// claim it.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown job or one on another vendor's model;
    /// [`StoreError::InvalidState`] when it is not waiting (approved, rejected, ended).
    pub async fn approve_job(&self, vendor: AccountId, job: JobId) -> Result<Job> {
        let mut tx = self.begin().await?;
        let result: Result<Job> = async {
            let current = Store::pending_job(&mut tx, vendor, job, "approving").await?;
            let sql = tx.backend.sql(
                "UPDATE job_grants SET approval = 'approved', decided_at = {now} \
                 WHERE job_id = $1 AND approval = 'pending'",
            );
            sqlx::query(&sql)
                .bind(job.to_string())
                .execute(&mut *tx.inner)
                .await?;
            Ok(current)
        }
        .await;
        tx.end(result).await
    }

    /// The vendor rejects a job waiting under one of its manual grants: it ends cancelled,
    /// with `reason` and its result entry (signed by `sign`), so the log shows it never ran.
    ///
    /// # Errors
    ///
    /// As [`Store::approve_job`]; [`StoreError::Sign`].
    pub async fn reject_job<F>(
        &self,
        vendor: AccountId,
        job: JobId,
        reason: &str,
        sign: F,
    ) -> Result<(Job, LogEntry)>
    where
        F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        let mut tx = self.begin().await?;
        let result: Result<(Job, LogEntry)> = async {
            // The grant's lock first (the lock order), since the job's hold goes back to it.
            let grant: Option<String> =
                sqlx::query_scalar("SELECT grant_id FROM job_grants WHERE job_id = $1")
                    .bind(job.to_string())
                    .fetch_optional(&mut *tx.inner)
                    .await?;
            let grant: GrantId = grant
                .ok_or(StoreError::NotFound("job"))?
                .parse()
                .map_err(|_| StoreError::Corrupt("job_grants.grant_id"))?;
            lock_grant(&mut tx, grant).await?;
            let current = Store::pending_job(&mut tx, vendor, job, "rejecting").await?;
            let sql = tx.backend.sql(
                "UPDATE job_grants SET approval = 'rejected', decided_at = {now} \
                 WHERE job_id = $1 AND approval = 'pending'",
            );
            sqlx::query(&sql)
                .bind(job.to_string())
                .execute(&mut *tx.inner)
                .await?;
            let outcome = Outcome {
                status: JobStatus::Cancelled,
                reason: Some(format!("the vendor rejected the job: {reason}")),
                report: None,
            };
            let ended = end_job(&mut tx, current, &outcome, sign).await?;
            release_hold_locked(&mut tx, job).await?;
            Ok(ended)
        }
        .await;
        tx.end(result).await
    }

    /// Revokes a grant at once: no new job or query is accepted under it; its jobs that had
    /// not started end now as [`JobStatus::Revoked`] with their result entries (`sign` signs
    /// each); its running jobs are flagged and returned, for the server to stop (see
    /// [`Revocation::running`]). Revoking again keeps the first time and does the same for
    /// anything left.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown grant or one of another vendor;
    /// [`StoreError::Sign`] (nothing is then written).
    pub async fn revoke_grant<F>(
        &self,
        vendor: AccountId,
        grant: GrantId,
        mut sign: F,
    ) -> Result<Revocation>
    where
        F: FnMut(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        let mut tx = self.begin().await?;
        let result: Result<Revocation> = async {
            let locked = lock_grant(&mut tx, grant).await?;
            if locked.vendor != vendor {
                return Err(StoreError::NotFound("grant"));
            }
            let sql = tx.backend.sql(&format!(
                "UPDATE grants SET revoked_at = COALESCE(revoked_at, {{now}}) WHERE id = $1 \
                 RETURNING {GRANT_COLUMNS}"
            ));
            let row = sqlx::query(&sql)
                .bind(grant.to_string())
                .fetch_one(&mut *tx.inner)
                .await?;
            let revoked = grant_from_row(&row)?;
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT j.id FROM jobs j JOIN job_grants g ON g.job_id = j.id \
                 WHERE g.grant_id = $1 AND j.status IN ('queued', 'running') \
                 ORDER BY j.created_at, j.id",
            )
            .bind(grant.to_string())
            .fetch_all(&mut *tx.inner)
            .await?;
            let mut ended = Vec::new();
            let mut running = Vec::new();
            for id in ids {
                let id: JobId = id.parse().map_err(|_| StoreError::Corrupt("jobs.id"))?;
                // Re-read under the job's lock: a worker may have claimed it since the list was
                // read, and then it is running, not queued.
                let current = lock_job(&mut tx, id).await?;
                match current.status {
                    JobStatus::Queued => {
                        let outcome = Outcome {
                            status: JobStatus::Revoked,
                            reason: Some(REVOKED_REASON.to_owned()),
                            report: None,
                        };
                        ended.push(end_job(&mut tx, current, &outcome, &mut sign).await?);
                        release_hold_locked(&mut tx, id).await?;
                    }
                    JobStatus::Running => {
                        sqlx::query(
                            "UPDATE jobs SET cancel_requested = 1, reason = COALESCE(reason, $2) \
                             WHERE id = $1",
                        )
                        .bind(id.to_string())
                        .bind(REVOKED_REASON)
                        .execute(&mut *tx.inner)
                        .await?;
                        let mut flagged = current;
                        flagged.cancel_requested = true;
                        flagged
                            .reason
                            .get_or_insert_with(|| REVOKED_REASON.to_owned());
                        running.push(flagged);
                    }
                    _ => {}
                }
            }
            Ok(Revocation {
                grant: revoked,
                ended,
                running,
            })
        }
        .await;
        tx.end(result).await
    }
}
