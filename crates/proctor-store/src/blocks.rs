//! Reservation blocks: a job's model queries draw their budget from blocks it leases from its
//! grant (or from its hold), many queries and their worst-case tokens at a time, so the
//! grant's row lock is taken once per block and once per settlement batch instead of twice
//! per query.
//!
//! One call, [`Store::meter`], does everything a job's meter needs in one transaction under
//! the grant's row lock: it applies the batches of what the queries drawn from the job's
//! blocks came to (settled as the model reported, or given back), says whether the grant
//! still covers the job (revoked, expired), and leases a new block when asked.
//!
//! Why budgets still cannot be overspent, by any number of servers: a block is leased only
//! when `used + reserved + block <= limit` for every daily and total budget, checked and
//! counted under the grant's lock ([`crate::metering`] says why that excludes races); the
//! block's counts stay in `reserved` until they are done, and the meter never draws more from
//! a block than it holds. A batch is applied only while the block still has that much left
//! to be done (a block already counted by [`Store::abandon_blocks`] takes no more), so nothing
//! is counted twice.
//!
//! A block its job left open (the worker died, or its final batch was never written) counts
//! as used at its worst case once the job has ended: its queries may have gone out.

use sqlx::Row;

use crate::approval::Approval;
use crate::counters::{COUNTER_COLUMNS, add_reserved, check_room, counters, room, unreserve};
use crate::error::{Budget, Refusal, Result, StoreError, classify};
use crate::grants::{Grant, lock_grant};
use crate::ids::{BlockId, GrantId, JobId};
use crate::rows::{parse_id, to_i64, to_u64};
use crate::store::{Store, Tx};
use crate::units::DAY_MS;

/// Budget leased to one job, for its queries to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Its id, for the batches that settle what was drawn from it.
    pub id: BlockId,
    /// Queries it holds.
    pub queries: u64,
    /// Worst-case tokens it holds (in + out).
    pub tokens: u64,
}

/// What a lease asks for: up to `queries` and `tokens`, and at least one query with
/// `min_tokens` (the query that needs it now); less than asked when less is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Queries wanted.
    pub queries: u64,
    /// Tokens wanted.
    pub tokens: u64,
    /// The worst case of the query waiting for the block: without room for it, the lease is
    /// refused.
    pub min_tokens: u64,
}

impl Want {
    /// Exactly one query of `tokens` worst-case tokens.
    pub fn one(tokens: u64) -> Want {
        Want {
            queries: 1,
            tokens,
            min_tokens: tokens,
        }
    }
}

/// What the queries drawn from one block came to since its last batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Batch {
    /// Queries the model answered: billed.
    pub settled: u64,
    /// The worst-case tokens those queries drew from the block.
    pub settled_worst: u64,
    /// Input tokens the model reported for them.
    pub input_tokens: u64,
    /// Output tokens the model reported for them.
    pub output_tokens: u64,
    /// Queries given back unbilled: requests that failed before the model billed anything,
    /// and, when the job stops drawing from the block, the rest it never drew.
    pub returned: u64,
    /// The worst-case tokens given back with them.
    pub returned_tokens: u64,
}

impl Batch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Batch::default()
    }

    /// Adds `other` to it (saturating: the meter never draws beyond a block's counts).
    pub fn add(&mut self, other: &Batch) {
        self.settled = self.settled.saturating_add(other.settled);
        self.settled_worst = self.settled_worst.saturating_add(other.settled_worst);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.returned = self.returned.saturating_add(other.returned);
        self.returned_tokens = self.returned_tokens.saturating_add(other.returned_tokens);
    }
}

/// One metering step of a job: batches to apply, and optionally a block to lease.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// The grant the job runs under.
    pub grant: GrantId,
    /// The job.
    pub job: JobId,
    /// What was drawn from each of the job's blocks since their last batch.
    pub batches: &'a [(BlockId, Batch)],
    /// A block to lease, after the batches are applied (so what they give back is room).
    pub lease: Option<Want>,
}

/// What a metering step did.
#[derive(Debug)]
pub struct Stepped {
    /// Why the grant no longer covers the job (revoked, expired), if it does not: the job
    /// must stop drawing. The step's batches were applied all the same.
    pub inactive: Option<Refusal>,
    /// The lease asked for: the block, or why it was refused
    /// ([`StoreError::BudgetExhausted`], [`StoreError::NoGrant`]).
    pub lease: Option<std::result::Result<Block, StoreError>>,
    /// How many of the batches were not applied because their block had been counted in
    /// full already (left open by this job and counted at its worst case).
    pub ignored: usize,
}

/// A block's row, read while its grant is locked.
struct Held {
    grant: GrantId,
    job: JobId,
    day: i64,
    from_hold: bool,
}

async fn read_block(tx: &mut Tx, id: BlockId) -> Result<Held> {
    let row = sqlx::query(
        "SELECT grant_id, job_id, day, from_hold FROM reservation_blocks WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *tx.inner)
    .await?
    .ok_or(StoreError::NotFound("reservation block"))?;
    let from_hold: i64 = row.try_get("from_hold")?;
    Ok(Held {
        grant: parse_id(&row, "grant_id")?,
        job: parse_id(&row, "job_id")?,
        day: row.try_get("day")?,
        from_hold: from_hold != 0,
    })
}

/// A batch's counts as the database holds them.
struct Counts {
    done_queries: i64,
    done_tokens: i64,
    settled: i64,
    settled_worst: i64,
    billed_tokens: i64,
    input: i64,
    output: i64,
    returned: i64,
    returned_tokens: i64,
}

impl Counts {
    fn of(batch: &Batch) -> Result<Counts> {
        let settled = to_i64(batch.settled, "queries")?;
        let settled_worst = to_i64(batch.settled_worst, "tokens")?;
        let input = to_i64(batch.input_tokens, "input tokens")?;
        let output = to_i64(batch.output_tokens, "output tokens")?;
        let returned = to_i64(batch.returned, "queries")?;
        let returned_tokens = to_i64(batch.returned_tokens, "tokens")?;
        let sum = |a: i64, b: i64, what| a.checked_add(b).ok_or(StoreError::Invalid(what));
        Ok(Counts {
            done_queries: sum(settled, returned, "queries")?,
            done_tokens: sum(settled_worst, returned_tokens, "tokens")?,
            billed_tokens: sum(input, output, "tokens")?,
            settled,
            settled_worst,
            input,
            output,
            returned,
            returned_tokens,
        })
    }
}

/// Applies one batch to a block of `grant` and `job` (the caller holds the grant's lock);
/// returns whether it was applied (`false`: the block has less left to be done than the
/// batch names, so it was counted in full already).
async fn apply_batch(
    tx: &mut Tx,
    (grant, job): (GrantId, JobId),
    id: BlockId,
    batch: &Batch,
) -> Result<bool> {
    let held = read_block(tx, id).await?;
    if held.grant != grant || held.job != job {
        return Err(StoreError::Invalid("a batch names a block of another job"));
    }
    let c = Counts::of(batch)?;
    let sql = tx.backend.sql(
        "UPDATE reservation_blocks SET queries_done = queries_done + $2, \
         tokens_done = tokens_done + $3, queries_settled = queries_settled + $4, \
         input_tokens = input_tokens + $5, output_tokens = output_tokens + $6, \
         closed_at = CASE WHEN queries_done + $2 = queries_leased \
         AND tokens_done + $3 = tokens_leased THEN {now} ELSE closed_at END \
         WHERE id = $1 AND queries_done + $2 <= queries_leased \
         AND tokens_done + $3 <= tokens_leased",
    );
    let applied = sqlx::query(&sql)
        .bind(id.to_string())
        .bind(c.done_queries)
        .bind(c.done_tokens)
        .bind(c.settled)
        .bind(c.input)
        .bind(c.output)
        .execute(&mut *tx.inner)
        .await?
        .rows_affected()
        == 1;
    if !applied {
        return Ok(false);
    }
    // What a block from a live hold gives back goes back to the hold (the job keeps its worst
    // case); otherwise, back to the grant.
    let back_to_hold = held.from_hold
        && (c.returned > 0 || c.returned_tokens > 0)
        && sqlx::query(
            "UPDATE job_grants SET hold_queries = hold_queries + $2, \
             hold_tokens = hold_tokens + $3 WHERE job_id = $1 AND hold_released_at IS NULL",
        )
        .bind(job.to_string())
        .bind(c.returned)
        .bind(c.returned_tokens)
        .execute(&mut *tx.inner)
        .await?
        .rows_affected()
            == 1;
    let done = if back_to_hold {
        (c.settled, c.settled_worst)
    } else {
        (c.done_queries, c.done_tokens)
    };
    unreserve(tx, grant, held.day, done, (c.settled, c.billed_tokens)).await?;
    Ok(true)
}

/// Leases a block for `job` under the locked `grant`: from the job's hold when it has one,
/// else from the grant's free budget (`Err` for a refusal).
async fn lease(
    tx: &mut Tx,
    grant: &Grant,
    job: JobId,
    want: Want,
    now: i64,
) -> Result<std::result::Result<Block, StoreError>> {
    let under = sqlx::query(
        "SELECT approval, hold_queries, hold_tokens, hold_day, hold_released_at \
         FROM job_grants WHERE job_id = $1 AND grant_id = $2",
    )
    .bind(job.to_string())
    .bind(grant.id.to_string())
    .fetch_optional(&mut *tx.inner)
    .await?;
    let Some(under) = under else {
        return Ok(Err(StoreError::NoGrant(Refusal::NotGranted)));
    };
    let approval: Approval = crate::rows::parse_text(&under, "approval")?;
    if matches!(approval, Approval::Pending | Approval::Rejected) {
        return Ok(Err(StoreError::NoGrant(Refusal::NotApproved)));
    }
    let min_tokens = to_i64(want.min_tokens, "tokens")?;
    let hold_day: Option<i64> = under.try_get("hold_day")?;
    let released: Option<i64> = under.try_get("hold_released_at")?;
    if let Some(hold_day) = hold_day {
        // A job with a hold draws from it only: what other jobs (or its other samples'
        // outputs) did to the grant cannot change whether its queries fit. A hold given back
        // (the job ended) has nothing left.
        let held_queries: i64 = under.try_get("hold_queries")?;
        let held_tokens: i64 = under.try_get("hold_tokens")?;
        if released.is_some() || held_queries < 1 || held_tokens < min_tokens {
            return Ok(Err(StoreError::BudgetExhausted(Budget::JobWorstCase)));
        }
        let queries = to_i64(want.queries.max(1), "queries")?.min(held_queries);
        let tokens = to_i64(want.tokens.max(want.min_tokens), "tokens")?.min(held_tokens);
        sqlx::query(
            "UPDATE job_grants SET hold_queries = hold_queries - $2, \
             hold_tokens = hold_tokens - $3 WHERE job_id = $1",
        )
        .bind(job.to_string())
        .bind(queries)
        .bind(tokens)
        .execute(&mut *tx.inner)
        .await?;
        // The hold's counts stay in the grant's reserved totals, now as this block's.
        let block =
            insert_block(tx, (grant.id, job), hold_day, (queries, tokens), true, now).await?;
        return Ok(Ok(block));
    }
    let day = now.div_euclid(DAY_MS);
    sqlx::query(
        "INSERT INTO grant_days (grant_id, day) VALUES ($1, $2) \
         ON CONFLICT (grant_id, day) DO NOTHING",
    )
    .bind(grant.id.to_string())
    .bind(day)
    .execute(&mut *tx.inner)
    .await?;
    let today = counters(
        &sqlx::query(&format!(
            "SELECT {COUNTER_COLUMNS} FROM grant_days WHERE grant_id = $1 AND day = $2"
        ))
        .bind(grant.id.to_string())
        .bind(day)
        .fetch_one(&mut *tx.inner)
        .await?,
    )?;
    let total = counters(
        &sqlx::query(&format!(
            "SELECT {COUNTER_COLUMNS} FROM grants WHERE id = $1"
        ))
        .bind(grant.id.to_string())
        .fetch_one(&mut *tx.inner)
        .await?,
    )?;
    // The query waiting for the block must fit; the block is then as large as asked, or as
    // what is left.
    if let Err(refused) = check_room(&grant.budgets, &today, &total, 1, min_tokens) {
        return Ok(Err(refused));
    }
    let left = room(&grant.budgets, &today, &total);
    let queries = left
        .queries
        .map_or(want.queries, |q| q.min(want.queries))
        .max(1);
    let tokens = left
        .tokens
        .map_or(want.tokens, |t| t.min(want.tokens))
        .max(want.min_tokens);
    let (queries, tokens) = (to_i64(queries, "queries")?, to_i64(tokens, "tokens")?);
    add_reserved(tx, grant.id, day, queries, tokens).await?;
    let block = insert_block(tx, (grant.id, job), day, (queries, tokens), false, now).await?;
    Ok(Ok(block))
}

/// Writes a block's row.
async fn insert_block(
    tx: &mut Tx,
    (grant, job): (GrantId, JobId),
    day: i64,
    (queries, tokens): (i64, i64),
    from_hold: bool,
    now: i64,
) -> Result<Block> {
    let id = BlockId::new();
    sqlx::query(
        "INSERT INTO reservation_blocks (id, grant_id, job_id, day, from_hold, queries_leased, \
         tokens_leased, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(grant.to_string())
    .bind(job.to_string())
    .bind(day)
    .bind(i64::from(from_hold))
    .bind(queries)
    .bind(tokens)
    .bind(now)
    .execute(&mut *tx.inner)
    .await
    .map_err(|e| classify(e, "reservation block", "job"))?;
    Ok(Block {
        id,
        queries: to_u64(queries, "queries")?,
        tokens: to_u64(tokens, "tokens")?,
    })
}

/// [`Store::meter`]'s work inside `tx`, which it locks the grant in first.
pub(crate) async fn meter_in(tx: &mut Tx, step: Step<'_>) -> Result<Stepped> {
    let locked = lock_grant(tx, step.grant).await?;
    let now = tx.now().await?;
    let mut ignored = 0;
    for (id, batch) in step.batches {
        if batch.is_empty() {
            continue;
        }
        if !apply_batch(tx, (step.grant, step.job), *id, batch).await? {
            ignored += 1;
        }
    }
    let inactive = locked.inactive_reason(now);
    let lease = match (step.lease, inactive) {
        (None, _) => None,
        (Some(_), Some(reason)) => Some(Err(StoreError::NoGrant(reason))),
        (Some(want), None) => Some(lease(tx, &locked, step.job, want, now.0).await?),
    };
    Ok(Stepped {
        inactive,
        lease,
        ignored,
    })
}

impl Store {
    /// One metering step of `step.job` under `step.grant`, in one transaction under the
    /// grant's row lock: applies the batches, reports whether the grant still covers the job,
    /// and leases a block if asked (refused while the grant does not cover the job, or when
    /// no budget has room for one query of `min_tokens`). Refusals are part of the answer,
    /// never an error: the batches count either way.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown grant or block; [`StoreError::Invalid`] for a
    /// batch naming another job's block or counts beyond 2^63; [`StoreError::Database`].
    pub async fn meter(&self, step: Step<'_>) -> Result<Stepped> {
        self.transaction(async |tx| meter_in(tx, step).await).await
    }

    /// Counts every block `job` left open as used at its worst case, as input tokens: its
    /// queries may have reached the endpoint, so each counts as a query, and never as less
    /// than it could have cost. Returns how many blocks. Call it once the job has ended (a
    /// worker that died, or whose last batch was not written, leaves some).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn abandon_blocks(&self, job: JobId) -> Result<u64> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM reservation_blocks WHERE job_id = $1 AND closed_at IS NULL",
        )
        .bind(job.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut counted = 0;
        for id in ids {
            let id: BlockId = id
                .parse()
                .map_err(|_| StoreError::Corrupt("reservation_blocks.id"))?;
            let closed = self
                .transaction(async |tx| {
                    let first = read_block(tx, id).await?;
                    lock_grant(tx, first.grant).await?;
                    let rest = sqlx::query(
                        "SELECT queries_leased - queries_done AS queries, \
                         tokens_leased - tokens_done AS tokens FROM reservation_blocks \
                         WHERE id = $1 AND closed_at IS NULL",
                    )
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx.inner)
                    .await?;
                    let Some(rest) = rest else {
                        // Closed meanwhile by its own job's last batch.
                        return Ok(false);
                    };
                    let (queries, tokens): (i64, i64) =
                        (rest.try_get("queries")?, rest.try_get("tokens")?);
                    let sql = tx.backend.sql(
                        "UPDATE reservation_blocks SET queries_done = queries_leased, \
                         tokens_done = tokens_leased, queries_settled = queries_settled + $2, \
                         input_tokens = input_tokens + $3, closed_at = {now} WHERE id = $1",
                    );
                    sqlx::query(&sql)
                        .bind(id.to_string())
                        .bind(queries)
                        .bind(tokens)
                        .execute(&mut *tx.inner)
                        .await?;
                    unreserve(
                        tx,
                        first.grant,
                        first.day,
                        (queries, tokens),
                        (queries, tokens),
                    )
                    .await?;
                    Ok(true)
                })
                .await?;
            counted += u64::from(closed);
        }
        Ok(counted)
    }

    /// [`Store::abandon_blocks`] for every ended job that still has an open block (run at
    /// startup: a crash between a job's end and its sweep leaves some); returns how many
    /// blocks.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn abandon_blocks_of_ended(&self) -> Result<u64> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT b.job_id FROM reservation_blocks b JOIN jobs j ON j.id = b.job_id \
             WHERE b.closed_at IS NULL AND j.status NOT IN ('queued', 'running')",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counted = 0;
        for id in ids {
            let id: JobId = id.parse().map_err(|_| StoreError::Corrupt("jobs.id"))?;
            counted += self.abandon_blocks(id).await?;
        }
        Ok(counted)
    }
}
