//! Holds: the worst case (queries and tokens) a DP job takes from its grant's budgets at
//! acceptance ([`crate::acceptance`]), which its queries then draw from alone
//! ([`crate::metering`]), and which goes back to the grant once, when the job ends.
//!
//! A hold is counted in the grant's `reserved` totals from acceptance until it is given back,
//! so no other job or query can take what a DP job may need; it is never topped up from the
//! grant, so what one sample's outputs made it spend cannot change whether another's query
//! fits. Giving it back holds the grant's row lock first (the lock order: grant, job).

use sqlx::Row;

use crate::counters::add_reserved;
use crate::error::{Result, StoreError};
use crate::grants::lock_grant_of_job;
use crate::ids::{GrantId, JobId};
use crate::jobs::JobStatus;
use crate::rows::{parse_id, to_u64};
use crate::store::{Store, Tx};

/// Queries and tokens held for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hold {
    /// Queries.
    pub queries: u64,
    /// Tokens (in + out; per query the worst case the caller reserves).
    pub tokens: u64,
}

/// Gives back what is left of a job's hold to its grant, once (the caller holds the grant's
/// lock). `None` when the job holds nothing (no hold, or given back already).
pub(crate) async fn release_hold_locked(tx: &mut Tx, job: JobId) -> Result<Option<Hold>> {
    let row = sqlx::query(
        "SELECT grant_id, hold_queries, hold_tokens, hold_day FROM job_grants \
         WHERE job_id = $1 AND hold_day IS NOT NULL AND hold_released_at IS NULL",
    )
    .bind(job.to_string())
    .fetch_optional(&mut *tx.inner)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let grant: GrantId = parse_id(&row, "grant_id")?;
    let queries: i64 = row.try_get("hold_queries")?;
    let tokens: i64 = row.try_get("hold_tokens")?;
    let day: i64 = row.try_get("hold_day")?;
    add_reserved(tx, grant, day, -queries, -tokens).await?;
    let sql = tx.backend.sql(
        "UPDATE job_grants SET hold_queries = 0, hold_tokens = 0, hold_released_at = {now} \
         WHERE job_id = $1",
    );
    sqlx::query(&sql)
        .bind(job.to_string())
        .execute(&mut *tx.inner)
        .await?;
    Ok(Some(Hold {
        queries: to_u64(queries, "hold_queries")?,
        tokens: to_u64(tokens, "hold_tokens")?,
    }))
}

impl Store {
    /// Gives what is left of an ended job's hold back to its grant (see
    /// [`JobDemand::hold`](crate::JobDemand::hold)). Call it after the job ends (finish,
    /// cancel); revocation and rejection do it themselves, and
    /// [`Store::release_ended_holds`] catches any a crash left behind. Calling it again, or
    /// for a job without a hold, returns `None`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidState`] while the job has not ended; [`StoreError::NotFound`].
    pub async fn release_job_hold(&self, job: JobId) -> Result<Option<Hold>> {
        self.transaction(async |tx| {
            // The grant's lock before anything of the job's (the lock order).
            if lock_grant_of_job(tx, job).await?.is_none() {
                // Not under a grant: nothing held. An unknown job is NotFound.
                self.job(job).await?;
                return Ok(None);
            }
            let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
                .bind(job.to_string())
                .fetch_one(&mut *tx.inner)
                .await?;
            let status: JobStatus = status.parse()?;
            if !status.is_terminal() {
                return Err(StoreError::InvalidState {
                    job: job.to_string(),
                    status: status.as_str(),
                    action: "giving back its hold",
                });
            }
            let released = release_hold_locked(tx, job).await?;
            Ok(released)
        })
        .await
    }

    /// Gives back the holds of every ended job that still has one (a server that crashed
    /// between ending a job and [`Store::release_job_hold`]); returns how many. Run it at
    /// startup and now and then.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn release_ended_holds(&self) -> Result<u64> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT g.job_id FROM job_grants g JOIN jobs j ON j.id = g.job_id \
             WHERE g.hold_day IS NOT NULL AND g.hold_released_at IS NULL \
             AND j.status NOT IN ('queued', 'running')",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut released = 0;
        for id in ids {
            let id: JobId = id.parse().map_err(|_| StoreError::Corrupt("jobs.id"))?;
            if self.release_job_hold(id).await?.is_some() {
                released += 1;
            }
        }
        Ok(released)
    }
}
