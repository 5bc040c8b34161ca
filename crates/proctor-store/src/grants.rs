//! Grants: which evaluators may run jobs on a vendor's model, under which policy, budgets,
//! approval mode and expiry; the grant that covers an evaluator now.
//!
//! A grant names either a tier (academic, auditor, regulator: never commercial) or one
//! evaluator account. [`Store::grant_for`] picks the grant that covers an evaluator now: an
//! active grant naming the account first, else an active grant for its tier. What a job takes
//! from it is in [`crate::acceptance`], its jobs' holds in [`crate::holds`], the vendor's
//! approval in [`crate::approval`], revocation in [`crate::revocation`], and metering of model
//! queries against its budgets in [`crate::metering`].
//!
//! Every change of a grant's counters (jobs, epsilon, queries, tokens, holds) starts with
//! `lock_grant`: it happens while the grant's row is locked (PostgreSQL
//! `SELECT ... FOR UPDATE`; SQLite: the `BEGIN IMMEDIATE` transaction, which excludes every
//! other writer), and the check against the budget is made under the same lock, so concurrent
//! servers cannot both see room for the last unit. Lock order: a grant's row, then the pair's
//! ledger row, then the model's ledger row, then a job's row, then the log head.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::accounts::{Role, Tier};
use crate::error::{Refusal, Result, StoreError};
use crate::ids::{AccountId, GrantId, JobId, ModelId};
use crate::rows::{opt_i64, opt_timestamp, opt_u64, parse_id, parse_text, timestamp};
use crate::store::{Store, Tx};
use crate::text_enum::text_enum;
use crate::time::Timestamp;
use crate::units::{bits_limit_millis, epsilon_total_micros, micros_to_epsilon, millis_to_bits};

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
    /// The most CPU time (whole seconds) the samples of one job may use; a job that passes it
    /// is stopped. Never 0.
    pub cpu_seconds_per_job: Option<u64>,
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
    /// When a usage alert suspended it ([`crate::alerts`]), until its vendor reinstates it.
    pub suspended_at: Option<Timestamp>,
    /// When its vendor last reinstated it after a suspension.
    pub reinstated_at: Option<Timestamp>,
    /// When it was made.
    pub created_at: Timestamp,
}

impl Grant {
    /// Why it does not cover anything at `now`, if it does not.
    pub fn inactive_reason(&self, now: Timestamp) -> Option<Refusal> {
        if self.revoked_at.is_some() {
            Some(Refusal::Revoked)
        } else if self.suspended_at.is_some() {
            Some(Refusal::Suspended)
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some(Refusal::Expired)
        } else {
            None
        }
    }
}

pub(crate) const GRANT_COLUMNS: &str = "id, vendor_id, model_id, grantee_tier, grantee_account_id, \
    policy_name, policy_overrides, jobs_per_day, queries_per_day, tokens_per_day, queries_total, \
    tokens_total, epsilon_total_micro, bits_per_job_milli, bits_total_milli, cpu_seconds_per_job, approval, \
    expires_at, revoked_at, suspended_at, reinstated_at, created_at";

pub(crate) fn grant_from_row(row: &AnyRow) -> Result<Grant> {
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
            cpu_seconds_per_job: opt_u64(row, "cpu_seconds_per_job")?,
        },
        approval: parse_text(row, "approval")?,
        expires_at: opt_timestamp(row, "expires_at")?,
        revoked_at: opt_timestamp(row, "revoked_at")?,
        suspended_at: opt_timestamp(row, "suspended_at")?,
        reinstated_at: opt_timestamp(row, "reinstated_at")?,
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

/// Locks the grant `job` was accepted under, inside `tx`, before anything of the job's (the
/// lock order: grant, then job); `None` for a job under no grant (or no job).
pub(crate) async fn lock_grant_of_job(tx: &mut Tx, job: JobId) -> Result<Option<Grant>> {
    let grant: Option<String> =
        sqlx::query_scalar("SELECT grant_id FROM job_grants WHERE job_id = $1")
            .bind(job.to_string())
            .fetch_optional(&mut *tx.inner)
            .await?;
    let Some(grant) = grant else {
        return Ok(None);
    };
    let grant: GrantId = grant
        .parse()
        .map_err(|_| StoreError::Corrupt("job_grants.grant_id"))?;
    lock_grant(tx, grant).await.map(Some)
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

impl Store {
    /// Creates a grant. The vendor must own the model; an account grantee must be an
    /// evaluator; a tier grantee must not be commercial.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown model, or one the vendor does not own (a vendor
    /// learns nothing of other vendors' models), or an unknown grantee account;
    /// [`StoreError::Invalid`] for a commercial tier, a grantee that is not an evaluator, an
    /// empty policy name or overrides, a budget beyond 2^63, a bad epsilon or bits limit, or 0
    /// CPU seconds per job.
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
        if grant.budgets.cpu_seconds_per_job == Some(0) {
            return Err(StoreError::Invalid("CPU seconds per job (at least 1)"));
        }
        let bits_total = grant
            .budgets
            .bits_total
            .map(bits_limit_millis)
            .transpose()?;
        self.transaction(async |tx| {
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
                 epsilon_total_micro, bits_per_job_milli, bits_total_milli, \
                 cpu_seconds_per_job, approval, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18, {{now}}) RETURNING {GRANT_COLUMNS}"
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
                .bind(opt_i64(b.cpu_seconds_per_job, "CPU seconds per job")?)
                .bind(grant.approval.as_str())
                .bind(grant.expires_at.map(|t| t.0))
                .fetch_one(&mut *tx.inner)
                .await?;
            let created = grant_from_row(&row)?;
            Ok(created)
        })
        .await
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
        let mut by_model: BTreeMap<ModelId, Vec<Grant>> = Default::default();
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
}
