//! A job's acceptance under a grant: what it takes (jobs per day, a DP job's worst-case hold,
//! its epsilon and leakage bits from the (evaluator, model) ledger, [`crate::ledger`]), where
//! it stands under the grant afterwards, and submission, which writes the job, its acceptance
//! and its pre-registration in one transaction.
//!
//! Acceptance locks the grant's row, then the pair's ledger row, then the model's; every check
//! comes before any write, so a refused job writes nothing. A DP job is checked against the
//! worst cases of every DP job of its grant (the holds taken at acceptance), never against what
//! they really used, so whether a job is accepted tells its evaluator nothing of earlier jobs'
//! model outputs. Lock order: grant, pair ledger, model ledger, job, dataset exposure
//! ([`crate::exposure`]), log head.

use std::collections::HashMap;

use proctor_attest::Exposure;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::accounts::{Role, Tier};
use crate::approval::Approval;
use crate::counters::{add_reserved, check_room, counters};
use crate::error::{Budget, Refusal, Result, SignError, StoreError, classify};
use crate::grants::{ApprovalMode, Grantee, lock_grant};
use crate::holds::Hold;
use crate::ids::{AccountId, GrantId, JobId, ModelId};
use crate::jobs::{Job, NewJob};
use crate::ledger::{Spend, charge};
use crate::log::{EntryKind, LogEntry, LogSlot};
use crate::rows::{opt_text, parse_id, parse_text, to_i64, to_u64};
use crate::store::{Store, Tx};
use crate::units::{DAY_MS, micros_to_epsilon, millis_to_bits};

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
        let spend = Spend::of(demand.epsilon, demand.bits)?;
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
        let tier: Option<Tier> = opt_text(&row, "tier")?;
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
            .map_err(|e| classify(e, "job's grant", "job"))?;
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
        .map_err(|e| classify(e, "job's grant", "job"))?;
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
    /// Submits a job under a grant: the job row, its acceptance under the grant
    /// ([`Tx::reserve_job`]), its dataset's exposure to the model's vendor ([`Tx::expose`])
    /// and its pre-registration entry commit together or not at all. `sign` gets the job, the
    /// exposure before it and the slot its entry takes.
    ///
    /// # Errors
    ///
    /// As [`Tx::enqueue`], [`Tx::reserve_job`], [`Tx::expose`] and [`Tx::append_entry`]; a
    /// refused job writes nothing.
    pub async fn submit_job_under<F>(
        &self,
        grant: GrantId,
        demand: &JobDemand,
        job: &NewJob,
        sign: F,
    ) -> Result<(Job, JobGrant, LogEntry)>
    where
        F: FnOnce(&Job, Exposure, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        self.transaction(async |tx| {
            let queued = tx.enqueue(job).await?;
            let accepted = tx.reserve_job(grant, queued.id, demand).await?;
            let exposure = tx.expose(&queued).await?;
            let entry = tx
                .append_entry(EntryKind::Accepted, queued.id, |slot| {
                    sign(&queued, exposure, slot)
                })
                .await?;
            Ok((queued, accepted, entry))
        })
        .await
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
    pub async fn job_grants_of(&self, evaluator: AccountId) -> Result<HashMap<JobId, JobGrant>> {
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
}
