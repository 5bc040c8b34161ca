//! Metering: what a grant's budgets stand at, and usage reports. Model queries draw from
//! reservation blocks ([`crate::blocks`]) that a job leases from its grant's budgets (or from
//! its hold, [`crate::holds`]) and settles in batches.
//!
//! Why it cannot overspend: a block is leased only after checking `used + reserved + block <=
//! limit` for every daily and total budget, and counted in `reserved`, in one transaction that
//! holds the grant's row lock (PostgreSQL `SELECT ... FOR UPDATE`; SQLite's `BEGIN IMMEDIATE`
//! excludes all other writers). Every other change of those counters (a settlement batch,
//! giving back) takes the same lock, and under PostgreSQL's read committed each statement after
//! the lock sees everything committed before it, so no two leasers, in one process or
//! several, both see room for the last unit. A settled query replaces its worst case by what
//! the model reported, so settling never adds to the total beyond what was leased as long as
//! the caller's worst case (max tokens plus the prompt's bound) really bounds the model's
//! count.

use proctor_core::release::Usage;
use sqlx::Row;

use crate::counters::{COUNTER_COLUMNS, Counters, counters};
use crate::error::Result;
use crate::ids::{AccountId, GrantId, JobId, ModelId};
use crate::rows::{parse_id, timestamp, to_u64};
use crate::store::Store;
use crate::time::Timestamp;
use crate::units::{DAY_MS, micros_to_epsilon, millis_to_bits};

/// One budget's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUse {
    /// The limit; `None` is unlimited.
    pub limit: Option<u64>,
    /// Settled (or, for jobs, accepted).
    pub used: u64,
    /// Held by queries in flight.
    pub reserved: u64,
}

impl BudgetUse {
    /// What is left for new reservations (`None`: unlimited).
    pub fn remaining(&self) -> Option<u64> {
        self.limit
            .map(|l| l.saturating_sub(self.used.saturating_add(self.reserved)))
    }
}

/// A grant's budgets now (today is the database clock's UTC day).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remaining {
    /// The grant.
    pub grant: GrantId,
    /// Days since the Unix epoch (UTC) that the daily figures are for.
    pub day: i64,
    /// Jobs accepted today.
    pub jobs_today: BudgetUse,
    /// Queries today.
    pub queries_today: BudgetUse,
    /// Tokens today.
    pub tokens_today: BudgetUse,
    /// Queries in all.
    pub queries_total: BudgetUse,
    /// Tokens in all.
    pub tokens_total: BudgetUse,
    /// The grant's `epsilon_total` (`None`: unlimited without DP; no DP job with it).
    pub epsilon_total: Option<f64>,
    /// Epsilon spent by the jobs accepted under this grant (the ledger that limits them is the
    /// evaluator's on the model, [`Store::ledger`]).
    pub epsilon_spent: f64,
    /// Leakage bits spent by the jobs accepted under this grant (as `epsilon_spent`).
    pub bits_spent: f64,
    /// The worst cases held by the jobs accepted under this grant, as they were at acceptance.
    pub worst_case: WorstCase,
}

/// What the jobs accepted under a grant held at acceptance (their worst cases,
/// [`Hold`](crate::Hold)), summed: never moved by what their queries did, so it is a figure
/// that does not depend on model outputs (the evaluator's budget view under DP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorstCase {
    /// Queries held by jobs accepted today.
    pub queries_today: u64,
    /// Tokens held by jobs accepted today.
    pub tokens_today: u64,
    /// Queries held by every job accepted under the grant.
    pub queries_total: u64,
    /// Tokens held by every job accepted under the grant.
    pub tokens_total: u64,
}

/// Metered usage of one job, with what a vendor's report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRow {
    /// The grant.
    pub grant: GrantId,
    /// The model.
    pub model: ModelId,
    /// The evaluator.
    pub evaluator: AccountId,
    /// The job.
    pub job: JobId,
    /// When the job was submitted (a usage chart's time axis).
    pub created_at: Timestamp,
    /// Settled usage.
    pub usage: Usage,
    /// Queries leased in the job's blocks and not yet settled or given back: in flight, or
    /// held for the job's next queries (zero once the job has ended and its blocks were
    /// closed).
    pub in_flight: u64,
}

impl Store {
    /// A grant's budgets, what is used and held, and what is left (for the evaluator's view
    /// and the vendor's).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn remaining_budget(&self, grant: GrantId) -> Result<Remaining> {
        let g = self.grant(grant).await?;
        let now = self.now().await?;
        let day = now.0.div_euclid(DAY_MS);
        let total = sqlx::query(&format!(
            "SELECT {COUNTER_COLUMNS}, epsilon_spent_micro, bits_spent_milli FROM grants \
             WHERE id = $1"
        ))
        .bind(grant.to_string())
        .fetch_one(&self.pool)
        .await?;
        let spent: i64 = total.try_get("epsilon_spent_micro")?;
        let bits: i64 = total.try_get("bits_spent_milli")?;
        let total = counters(&total)?;
        let today = sqlx::query(&format!(
            "SELECT jobs, {COUNTER_COLUMNS} FROM grant_days WHERE grant_id = $1 AND day = $2"
        ))
        .bind(grant.to_string())
        .bind(day)
        .fetch_optional(&self.pool)
        .await?;
        let (jobs, today) = match today {
            Some(row) => (row.try_get("jobs")?, counters(&row)?),
            None => (0_i64, Counters::default()),
        };
        let use_of = |limit, used: i64, reserved: i64| -> Result<BudgetUse> {
            Ok(BudgetUse {
                limit,
                used: to_u64(used, "grant usage")?,
                reserved: to_u64(reserved, "grant usage")?,
            })
        };
        let worst = sqlx::query(
            "SELECT CAST(COALESCE(SUM(worst_queries), 0) AS BIGINT) AS queries_total, \
             CAST(COALESCE(SUM(worst_tokens), 0) AS BIGINT) AS tokens_total, \
             CAST(COALESCE(SUM(CASE WHEN hold_day = $2 THEN worst_queries ELSE 0 END), 0) \
             AS BIGINT) AS queries_today, \
             CAST(COALESCE(SUM(CASE WHEN hold_day = $2 THEN worst_tokens ELSE 0 END), 0) \
             AS BIGINT) AS tokens_today FROM job_grants WHERE grant_id = $1",
        )
        .bind(grant.to_string())
        .bind(day)
        .fetch_one(&self.pool)
        .await?;
        let worst_case = WorstCase {
            queries_today: to_u64(worst.try_get("queries_today")?, "worst_queries")?,
            tokens_today: to_u64(worst.try_get("tokens_today")?, "worst_tokens")?,
            queries_total: to_u64(worst.try_get("queries_total")?, "worst_queries")?,
            tokens_total: to_u64(worst.try_get("tokens_total")?, "worst_tokens")?,
        };
        let b = g.budgets;
        Ok(Remaining {
            grant,
            day,
            jobs_today: use_of(b.jobs_per_day, jobs, 0)?,
            queries_today: use_of(
                b.queries_per_day,
                today.queries_used,
                today.queries_reserved,
            )?,
            tokens_today: use_of(b.tokens_per_day, today.tokens_used, today.tokens_reserved)?,
            queries_total: use_of(b.queries_total, total.queries_used, total.queries_reserved)?,
            tokens_total: use_of(b.tokens_total, total.tokens_used, total.tokens_reserved)?,
            epsilon_total: b.epsilon_total,
            epsilon_spent: micros_to_epsilon(spent),
            bits_spent: millis_to_bits(bits),
            worst_case,
        })
    }

    /// Settled usage per job on a vendor's models (with grant, model and evaluator, so the
    /// server sums per grant, evaluator or model), oldest grant first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn usage_report(&self, vendor: AccountId) -> Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT b.grant_id, j.model_id, j.evaluator_id, b.job_id, j.created_at, \
             CAST(SUM(b.queries_settled) AS BIGINT) AS queries, \
             CAST(SUM(b.input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(b.output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(b.queries_leased - b.queries_done) AS BIGINT) AS in_flight \
             FROM reservation_blocks b JOIN grants g ON g.id = b.grant_id \
             JOIN jobs j ON j.id = b.job_id WHERE g.vendor_id = $1 \
             GROUP BY b.grant_id, j.model_id, j.evaluator_id, b.job_id, j.created_at \
             ORDER BY MIN(g.created_at), b.grant_id, MIN(b.created_at), b.job_id",
        )
        .bind(vendor.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UsageRow {
                    grant: parse_id(row, "grant_id")?,
                    model: parse_id(row, "model_id")?,
                    evaluator: parse_id(row, "evaluator_id")?,
                    job: parse_id(row, "job_id")?,
                    created_at: timestamp(row, "created_at")?,
                    usage: Usage {
                        queries: to_u64(row.try_get("queries")?, "usage")?,
                        input_tokens: to_u64(row.try_get("input_tokens")?, "usage")?,
                        output_tokens: to_u64(row.try_get("output_tokens")?, "usage")?,
                    },
                    in_flight: to_u64(row.try_get("in_flight")?, "usage")?,
                })
            })
            .collect()
    }

    /// A job's settled, metered usage (all its attempts), zero before its first query.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn metered_usage(&self, job: JobId) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(queries_settled), 0) AS BIGINT) AS queries, \
             CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens \
             FROM reservation_blocks WHERE job_id = $1",
        )
        .bind(job.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(Usage {
            queries: to_u64(row.try_get("queries")?, "usage")?,
            input_tokens: to_u64(row.try_get("input_tokens")?, "usage")?,
            output_tokens: to_u64(row.try_get("output_tokens")?, "usage")?,
        })
    }
}
