//! Metering: every model query reserves one query and a worst-case token count from its
//! grant's budgets before the request goes out, and is settled with the tokens the model
//! reported (or released when the request failed); usage reports and remaining budgets.
//!
//! Why it cannot overspend: a reservation checks `used + reserved + wanted <= limit` for every
//! daily and total budget and adds to `reserved` in one transaction that holds the grant's row
//! lock (PostgreSQL `SELECT ... FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` excludes all other
//! writers). Every other change of those counters (settle, release) takes the same lock, and
//! under PostgreSQL's read committed each statement after the lock sees everything committed
//! before it, so no two reservers, in one process or several, both see room for the last unit.
//! A query of a DP job draws from the job's hold alone ([`crate::holds`]), never from the
//! grant's live counters. A settled query replaces its worst case by what the model reported, so settling never adds
//! to the total beyond what was reserved as long as the caller's worst case (max tokens plus
//! the prompt's bound) really bounds the model's count.

use proctor_core::release::Usage;
use sqlx::Row;

use crate::approval::Approval;
use crate::counters::{COUNTER_COLUMNS, Counters, add_reserved, check_room, counters};
use crate::error::{Budget, Refusal, Result, StoreError, classify};
use crate::grants::lock_grant;
use crate::ids::{AccountId, GrantId, JobId, ModelId, ReservationId};
use crate::rows::{parse_id, parse_text, to_i64, to_u64};
use crate::store::{Store, Tx};
use crate::text_enum::text_enum;
use crate::units::{DAY_MS, micros_to_epsilon, millis_to_bits};

/// Budget held for one model query until it is settled or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Its id, for [`Store::settle`] and [`Store::release`].
    pub id: ReservationId,
    /// The grant it counts against.
    pub grant: GrantId,
    /// The job that made the query.
    pub job: JobId,
    /// The worst-case tokens held.
    pub tokens: u64,
}

/// How a settled query was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The reservation.
    pub id: ReservationId,
    /// Tokens in, as the model reported them (the first settle's, if settled twice).
    pub input_tokens: u64,
    /// Tokens out.
    pub output_tokens: u64,
}

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
    /// Settled usage.
    pub usage: Usage,
    /// Queries reserved and not yet settled or released.
    pub in_flight: u64,
}

/// Where a query's reservation stands: held until it ends, once, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReservationState {
    /// The request is in flight; its worst case is counted as reserved.
    Reserved,
    /// The model's reported tokens replaced the worst case, counted as used.
    Settled,
    /// The request failed before the model billed anything; nothing is counted.
    Released,
}

text_enum!(
    ReservationState,
    "reservation state",
    Reserved = "reserved",
    Settled = "settled",
    Released = "released"
);

/// A reservation's row, read while its grant is locked.
struct Held {
    grant: GrantId,
    job: JobId,
    from_hold: bool,
    day: i64,
    tokens: i64,
    state: ReservationState,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
}

async fn read_reservation(tx: &mut Tx, id: ReservationId) -> Result<Held> {
    let row = sqlx::query(
        "SELECT grant_id, job_id, from_hold, day, tokens_reserved, state, input_tokens, \
         output_tokens FROM query_reservations WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *tx.inner)
    .await?
    .ok_or(StoreError::NotFound("reservation"))?;
    let from_hold: i64 = row.try_get("from_hold")?;
    Ok(Held {
        grant: parse_id(&row, "grant_id")?,
        job: parse_id(&row, "job_id")?,
        from_hold: from_hold != 0,
        day: row.try_get("day")?,
        tokens: row.try_get("tokens_reserved")?,
        state: parse_text(&row, "state")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
    })
}

/// Locks the reservation's grant, then re-reads the reservation: its state changes only under
/// that lock, so what is read now stays true until commit.
async fn lock_reservation(tx: &mut Tx, id: ReservationId) -> Result<Held> {
    let first = read_reservation(tx, id).await?;
    lock_grant(tx, first.grant).await?;
    read_reservation(tx, id).await
}

/// Moves a reservation's counts off `reserved`, onto `used` when it was settled with
/// `tokens_used` tokens, on the grant and on the reservation's day.
async fn unreserve(tx: &mut Tx, held: &Held, settled_tokens: Option<i64>) -> Result<()> {
    let (queries, tokens) = match settled_tokens {
        Some(tokens) => (1_i64, tokens),
        None => (0, 0),
    };
    sqlx::query(
        "UPDATE grants SET queries_reserved = queries_reserved - 1, \
         tokens_reserved = tokens_reserved - $2, queries_used = queries_used + $3, \
         tokens_used = tokens_used + $4 WHERE id = $1",
    )
    .bind(held.grant.to_string())
    .bind(held.tokens)
    .bind(queries)
    .bind(tokens)
    .execute(&mut *tx.inner)
    .await?;
    sqlx::query(
        "UPDATE grant_days SET queries_reserved = queries_reserved - 1, \
         tokens_reserved = tokens_reserved - $3, queries_used = queries_used + $4, \
         tokens_used = tokens_used + $5 WHERE grant_id = $1 AND day = $2",
    )
    .bind(held.grant.to_string())
    .bind(held.day)
    .bind(held.tokens)
    .bind(queries)
    .bind(tokens)
    .execute(&mut *tx.inner)
    .await?;
    Ok(())
}

impl Store {
    /// Reserves one query and `tokens` (the worst case: the request's max tokens plus the
    /// caller's bound on the prompt's tokens) from `grant` for a query of `job`, before the
    /// request goes out. Either every budget has room and all are counted, or nothing is.
    ///
    /// # Errors
    ///
    /// [`StoreError::BudgetExhausted`] naming the first budget without room (the guest gets
    /// `budget-exhausted`); [`StoreError::NoGrant`] when the grant was revoked
    /// ([`Refusal::Revoked`]) or expired, or the job is not approved under it
    /// ([`Refusal::NotApproved`]); [`StoreError::NotFound`] for an unknown grant.
    pub async fn reserve_query(
        &self,
        grant: GrantId,
        job: JobId,
        tokens: u64,
    ) -> Result<Reservation> {
        let wanted = to_i64(tokens, "tokens")?;
        self.transaction(async |tx| {
            let locked = lock_grant(tx, grant).await?;
            let under = sqlx::query(
                "SELECT approval, hold_queries, hold_tokens, hold_day, hold_released_at \
                 FROM job_grants WHERE job_id = $1 AND grant_id = $2",
            )
            .bind(job.to_string())
            .bind(grant.to_string())
            .fetch_optional(&mut *tx.inner)
            .await?
            .ok_or(StoreError::NoGrant(Refusal::NotGranted))?;
            let approval: Approval = parse_text(&under, "approval")?;
            if matches!(approval, Approval::Pending | Approval::Rejected) {
                return Err(StoreError::NoGrant(Refusal::NotApproved));
            }
            let now = tx.now().await?;
            if let Some(reason) = locked.inactive_reason(now) {
                return Err(StoreError::NoGrant(reason));
            }
            let hold_day: Option<i64> = under.try_get("hold_day")?;
            let released: Option<i64> = under.try_get("hold_released_at")?;
            if let Some(hold_day) = hold_day {
                // A job with a hold draws from it only: what other jobs (or its other samples'
                // outputs) did to the grant cannot change whether this query fits. A hold given
                // back (the job ended) has nothing left.
                let held_queries: i64 = under.try_get("hold_queries")?;
                let held_tokens: i64 = under.try_get("hold_tokens")?;
                if released.is_some() || held_queries < 1 || held_tokens < wanted {
                    return Err(StoreError::BudgetExhausted(Budget::JobWorstCase));
                }
                sqlx::query(
                    "UPDATE job_grants SET hold_queries = hold_queries - 1, \
                     hold_tokens = hold_tokens - $2 WHERE job_id = $1",
                )
                .bind(job.to_string())
                .bind(wanted)
                .execute(&mut *tx.inner)
                .await?;
                // The hold's counts stay in the grant's reserved totals, now as this reservation.
                let id = insert_reservation(tx, grant, job, hold_day, wanted, true, now.0).await?;
                return Ok(Reservation {
                    id,
                    grant,
                    job,
                    tokens,
                });
            }
            let day = now.0.div_euclid(DAY_MS);
            sqlx::query(
                "INSERT INTO grant_days (grant_id, day) VALUES ($1, $2) \
                 ON CONFLICT (grant_id, day) DO NOTHING",
            )
            .bind(grant.to_string())
            .bind(day)
            .execute(&mut *tx.inner)
            .await?;
            let today = counters(
                &sqlx::query(&format!(
                    "SELECT {COUNTER_COLUMNS} FROM grant_days WHERE grant_id = $1 AND day = $2"
                ))
                .bind(grant.to_string())
                .bind(day)
                .fetch_one(&mut *tx.inner)
                .await?,
            )?;
            let total = counters(
                &sqlx::query(&format!(
                    "SELECT {COUNTER_COLUMNS} FROM grants WHERE id = $1"
                ))
                .bind(grant.to_string())
                .fetch_one(&mut *tx.inner)
                .await?,
            )?;
            check_room(&locked.budgets, &today, &total, 1, wanted)?;
            add_reserved(tx, grant, day, 1, wanted).await?;
            let id = insert_reservation(tx, grant, job, day, wanted, false, now.0).await?;
            Ok(Reservation {
                id,
                grant,
                job,
                tokens,
            })
        })
        .await
    }

    /// Replaces a reservation by the tokens the model reported: the query counts as used
    /// with `input_tokens + output_tokens` tokens, on the day it was reserved. Settling again
    /// changes nothing and returns the first settlement (a retried call is safe).
    ///
    /// Usage is recorded as reported even when it exceeds the reservation's worst case (the
    /// vendor bills it); the caller's worst case must bound it for budgets to hold.
    ///
    /// # Errors
    ///
    /// [`StoreError::ReservationEnded`] for a released reservation;
    /// [`StoreError::NotFound`]; [`StoreError::Invalid`] for counts beyond 2^63.
    pub async fn settle(
        &self,
        reservation: ReservationId,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Result<Settled> {
        let input = to_i64(input_tokens, "input tokens")?;
        let output = to_i64(output_tokens, "output tokens")?;
        let tokens = input
            .checked_add(output)
            .ok_or(StoreError::Invalid("tokens"))?;
        self.transaction(async |tx| {
            let held = lock_reservation(tx, reservation).await?;
            match held.state {
                ReservationState::Reserved => {}
                ReservationState::Settled => {
                    return Ok(Settled {
                        id: reservation,
                        input_tokens: to_u64(held.input_tokens.unwrap_or(0), "input tokens")?,
                        output_tokens: to_u64(held.output_tokens.unwrap_or(0), "output tokens")?,
                    });
                }
                ended @ ReservationState::Released => {
                    return Err(StoreError::ReservationEnded {
                        id: reservation.to_string(),
                        state: ended.as_str(),
                        action: "settling",
                    });
                }
            }
            unreserve(tx, &held, Some(tokens)).await?;
            let sql = tx.backend.sql(
                "UPDATE query_reservations SET state = 'settled', input_tokens = $2, \
                 output_tokens = $3, ended_at = {now} WHERE id = $1",
            );
            sqlx::query(&sql)
                .bind(reservation.to_string())
                .bind(input)
                .bind(output)
                .execute(&mut *tx.inner)
                .await?;
            Ok(Settled {
                id: reservation,
                input_tokens,
                output_tokens,
            })
        })
        .await
    }

    /// Gives a reservation back when its request failed before the model billed anything.
    /// Releasing again changes nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::ReservationEnded`] for a settled reservation; [`StoreError::NotFound`].
    pub async fn release(&self, reservation: ReservationId) -> Result<()> {
        self.transaction(async |tx| {
            let held = lock_reservation(tx, reservation).await?;
            match held.state {
                ReservationState::Reserved => {}
                ReservationState::Released => {
                    return Ok(());
                }
                ended @ ReservationState::Settled => {
                    return Err(StoreError::ReservationEnded {
                        id: reservation.to_string(),
                        state: ended.as_str(),
                        action: "releasing",
                    });
                }
            }
            // A query drawn from a live hold goes back to the hold (the job keeps its worst case);
            // otherwise, back to the grant.
            let back_to_hold = held.from_hold
                && sqlx::query(
                    "UPDATE job_grants SET hold_queries = hold_queries + 1, \
                     hold_tokens = hold_tokens + $2 WHERE job_id = $1 AND hold_released_at IS NULL",
                )
                .bind(held.job.to_string())
                .bind(held.tokens)
                .execute(&mut *tx.inner)
                .await?
                .rows_affected()
                    == 1;
            if !back_to_hold {
                unreserve(tx, &held, None).await?;
            }
            let sql = tx.backend.sql(
                "UPDATE query_reservations SET state = 'released', ended_at = {now} WHERE id = $1",
            );
            sqlx::query(&sql)
                .bind(reservation.to_string())
                .execute(&mut *tx.inner)
                .await?;
            Ok(())
        })
        .await
    }

    /// Settles every reservation of `job` still held (a worker that died or was stopped with
    /// a request in flight) at its reserved worst case, as input tokens: the request may have
    /// reached the endpoint, so it counts as a query, and never as less than it could have
    /// cost. Returns how many. Call it once the job has ended.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn settle_abandoned(&self, job: JobId) -> Result<u64> {
        let rows = sqlx::query(
            "SELECT id, tokens_reserved FROM query_reservations \
             WHERE job_id = $1 AND state = 'reserved'",
        )
        .bind(job.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut settled = 0;
        for row in rows {
            let id: ReservationId = parse_id(&row, "id")?;
            let tokens: i64 = row.try_get("tokens_reserved")?;
            match self.settle(id, to_u64(tokens, "tokens_reserved")?, 0).await {
                Ok(_) => settled += 1,
                // Settled or released meanwhile by the request's own caller.
                Err(StoreError::ReservationEnded { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(settled)
    }

    /// [`Store::settle_abandoned`] for every ended job that still holds a reservation (run at
    /// startup: a crash between a job's end and its sweep leaves some); returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn settle_abandoned_of_ended(&self) -> Result<u64> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT r.job_id FROM query_reservations r JOIN jobs j ON j.id = r.job_id \
             WHERE r.state = 'reserved' AND j.status NOT IN ('queued', 'running')",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut settled = 0;
        for id in ids {
            let id: JobId = id.parse().map_err(|_| StoreError::Corrupt("jobs.id"))?;
            settled += self.settle_abandoned(id).await?;
        }
        Ok(settled)
    }

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
            "SELECT r.grant_id, j.model_id, j.evaluator_id, r.job_id, \
             CAST(SUM(CASE WHEN r.state = 'settled' THEN 1 ELSE 0 END) AS BIGINT) AS queries, \
             CAST(SUM(COALESCE(r.input_tokens, 0)) AS BIGINT) AS input_tokens, \
             CAST(SUM(COALESCE(r.output_tokens, 0)) AS BIGINT) AS output_tokens, \
             CAST(SUM(CASE WHEN r.state = 'reserved' THEN 1 ELSE 0 END) AS BIGINT) AS in_flight \
             FROM query_reservations r JOIN grants g ON g.id = r.grant_id \
             JOIN jobs j ON j.id = r.job_id WHERE g.vendor_id = $1 \
             GROUP BY r.grant_id, j.model_id, j.evaluator_id, r.job_id \
             ORDER BY MIN(g.created_at), r.grant_id, MIN(r.created_at), r.job_id",
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
            "SELECT CAST(COUNT(*) AS BIGINT) AS queries, \
             CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens \
             FROM query_reservations WHERE job_id = $1 AND state = 'settled'",
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

/// Writes a reservation row.
async fn insert_reservation(
    tx: &mut Tx,
    grant: GrantId,
    job: JobId,
    day: i64,
    tokens: i64,
    from_hold: bool,
    now: i64,
) -> Result<ReservationId> {
    let id = ReservationId::new();
    sqlx::query(
        "INSERT INTO query_reservations (id, grant_id, job_id, day, tokens_reserved, state, \
         from_hold, created_at) VALUES ($1, $2, $3, $4, $5, 'reserved', $6, $7)",
    )
    .bind(id.to_string())
    .bind(grant.to_string())
    .bind(job.to_string())
    .bind(day)
    .bind(tokens)
    .bind(i64::from(from_hold))
    .bind(now)
    .execute(&mut *tx.inner)
    .await
    .map_err(|e| classify(e, "reservation", "job"))?;
    Ok(id)
}
