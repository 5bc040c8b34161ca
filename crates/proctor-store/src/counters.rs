//! A grant's counters: queries and tokens used and reserved, over its life and per UTC day,
//! and the check that more fits its budgets.
//!
//! The caller holds the grant's row lock ([`crate::grants::lock_grant`]) from the check to the
//! write, so the room it saw is still there when it counts.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Budget, Result, StoreError};
use crate::grants::Budgets;
use crate::ids::GrantId;
use crate::rows::to_u64;
use crate::store::Tx;

/// Adds a worst case to a used + reserved count and checks it against a limit; an overflow
/// counts as over.
fn fits(used: i64, reserved: i64, wanted: i64, limit: Option<u64>) -> Result<bool> {
    let Some(limit) = limit else {
        return Ok(true);
    };
    let after = used
        .checked_add(reserved)
        .and_then(|n| n.checked_add(wanted));
    Ok(match after {
        Some(after) => to_u64(after, "grant usage")? <= limit,
        None => false,
    })
}

/// The four counters of a grant or of one of its days.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) queries_used: i64,
    pub(crate) tokens_used: i64,
    pub(crate) queries_reserved: i64,
    pub(crate) tokens_reserved: i64,
}

/// A row's [`COUNTER_COLUMNS`].
pub(crate) fn counters(row: &AnyRow) -> Result<Counters> {
    Ok(Counters {
        queries_used: row.try_get("queries_used")?,
        tokens_used: row.try_get("tokens_used")?,
        queries_reserved: row.try_get("queries_reserved")?,
        tokens_reserved: row.try_get("tokens_reserved")?,
    })
}

/// The counter columns, named alike in `grants` (the grant's life) and `grant_days` (a day).
pub(crate) const COUNTER_COLUMNS: &str =
    "queries_used, tokens_used, queries_reserved, tokens_reserved";

/// Checks that `queries` and `tokens` more fit every daily (`today`) and total budget.
pub(crate) fn check_room(
    budgets: &Budgets,
    today: &Counters,
    total: &Counters,
    queries: i64,
    tokens: i64,
) -> Result<()> {
    let checks = [
        (
            Budget::QueriesPerDay,
            today.queries_used,
            today.queries_reserved,
            queries,
            budgets.queries_per_day,
        ),
        (
            Budget::TokensPerDay,
            today.tokens_used,
            today.tokens_reserved,
            tokens,
            budgets.tokens_per_day,
        ),
        (
            Budget::QueriesTotal,
            total.queries_used,
            total.queries_reserved,
            queries,
            budgets.queries_total,
        ),
        (
            Budget::TokensTotal,
            total.tokens_used,
            total.tokens_reserved,
            tokens,
            budgets.tokens_total,
        ),
    ];
    for (budget, used, reserved, wanted, limit) in checks {
        if !fits(used, reserved, wanted, limit)? {
            return Err(StoreError::BudgetExhausted(budget));
        }
    }
    Ok(())
}

/// Adds to the grant's and the day's reserved counts (the day's row exists already). The
/// caller holds the grant's lock and checked the room.
pub(crate) async fn add_reserved(
    tx: &mut Tx,
    grant: GrantId,
    day: i64,
    queries: i64,
    tokens: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE grants SET queries_reserved = queries_reserved + $2, \
         tokens_reserved = tokens_reserved + $3 WHERE id = $1",
    )
    .bind(grant.to_string())
    .bind(queries)
    .bind(tokens)
    .execute(&mut *tx.inner)
    .await?;
    sqlx::query(
        "UPDATE grant_days SET queries_reserved = queries_reserved + $3, \
         tokens_reserved = tokens_reserved + $4 WHERE grant_id = $1 AND day = $2",
    )
    .bind(grant.to_string())
    .bind(day)
    .bind(queries)
    .bind(tokens)
    .execute(&mut *tx.inner)
    .await?;
    Ok(())
}

/// How many queries and tokens more fit every daily (`today`) and total budget (`None`:
/// unlimited). The caller holds the grant's lock.
pub(crate) fn room(budgets: &Budgets, today: &Counters, total: &Counters) -> Room {
    let left = |limit: Option<u64>, used: i64, reserved: i64| {
        limit.map(|limit| {
            let taken = used.saturating_add(reserved).max(0).unsigned_abs();
            limit.saturating_sub(taken)
        })
    };
    let least = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    };
    Room {
        queries: least(
            left(
                budgets.queries_per_day,
                today.queries_used,
                today.queries_reserved,
            ),
            left(
                budgets.queries_total,
                total.queries_used,
                total.queries_reserved,
            ),
        ),
        tokens: least(
            left(
                budgets.tokens_per_day,
                today.tokens_used,
                today.tokens_reserved,
            ),
            left(
                budgets.tokens_total,
                total.tokens_used,
                total.tokens_reserved,
            ),
        ),
    }
}

/// What more fits a grant's budgets now (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Room {
    pub(crate) queries: Option<u64>,
    pub(crate) tokens: Option<u64>,
}

/// Moves counts off the grant's and the day's reserved totals: `done` (queries, worst-case
/// tokens) leave `reserved`, and `used` (queries, tokens as billed) are added to `used`. The
/// caller holds the grant's lock.
pub(crate) async fn unreserve(
    tx: &mut Tx,
    grant: GrantId,
    day: i64,
    done: (i64, i64),
    used: (i64, i64),
) -> Result<()> {
    const SET: &str = "queries_reserved = queries_reserved - $2, \
        tokens_reserved = tokens_reserved - $3, queries_used = queries_used + $4, \
        tokens_used = tokens_used + $5";
    sqlx::query(&format!("UPDATE grants SET {SET} WHERE id = $1"))
        .bind(grant.to_string())
        .bind(done.0)
        .bind(done.1)
        .bind(used.0)
        .bind(used.1)
        .execute(&mut *tx.inner)
        .await?;
    sqlx::query(&format!(
        "UPDATE grant_days SET {SET} WHERE grant_id = $1 AND day = $6"
    ))
    .bind(grant.to_string())
    .bind(done.0)
    .bind(done.1)
    .bind(used.0)
    .bind(used.1)
    .bind(day)
    .execute(&mut *tx.inner)
    .await?;
    Ok(())
}
