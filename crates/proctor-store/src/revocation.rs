//! Revocation: a vendor ends a grant at once (or a usage alert suspends it, [`GrantStop`]). Its jobs that had not started end now, each
//! with its signed result entry and its hold given back; its running jobs are flagged for the
//! server to stop; no further job or query is accepted under it.
//!
//! One transaction, holding the grant's row lock first, then each job's (a job claimed since
//! the list was read is seen running, not queued). Lock order: grant, job, log head.

use crate::error::{Result, SignError, StoreError};
use crate::grants::{GRANT_COLUMNS, Grant, grant_from_row, lock_grant};
use crate::holds::release_hold_locked;
use crate::ids::{AccountId, GrantId, JobId};
use crate::jobs::{JOB_COLUMNS, Job, JobStatus, Outcome, end_job, job_from_row, lock_job};
use crate::log::{LogEntry, LogSlot};
use crate::store::Store;

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

/// How [`Store::stop_grant`] stops a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStop {
    /// For good: its vendor revoked it.
    Revoke,
    /// Until its vendor reinstates it ([`Store::reinstate_grant`](crate::Store::reinstate_grant)):
    /// a usage alert suspended it. Its jobs end as a revocation ends them.
    Suspend,
}

/// The reason recorded on jobs ended or flagged by a revocation (or a suspension, which ends
/// them the same way, so the evaluator sees one ending for both).
pub const REVOKED_REASON: &str = "the vendor revoked the grant";

impl Store {
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
        sign: F,
    ) -> Result<Revocation>
    where
        F: FnMut(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        self.stop_grant(vendor, grant, GrantStop::Revoke, sign)
            .await
    }

    /// Revokes or suspends a grant ([`GrantStop`]): the same for its jobs as
    /// [`Store::revoke_grant`]. A suspension of a revoked grant, or of one suspended already,
    /// keeps the grant as it was and ends whatever is left.
    ///
    /// # Errors
    ///
    /// As [`Store::revoke_grant`].
    pub async fn stop_grant<F>(
        &self,
        vendor: AccountId,
        grant: GrantId,
        how: GrantStop,
        mut sign: F,
    ) -> Result<Revocation>
    where
        F: FnMut(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        self.transaction(async |tx| {
            let locked = lock_grant(tx, grant).await?;
            if locked.vendor != vendor {
                return Err(StoreError::NotFound("grant"));
            }
            let set = match how {
                GrantStop::Revoke => "revoked_at = COALESCE(revoked_at, {now})",
                GrantStop::Suspend => {
                    "suspended_at = CASE WHEN revoked_at IS NULL \
                     THEN COALESCE(suspended_at, {now}) ELSE suspended_at END"
                }
            };
            let sql = tx.backend.sql(&format!(
                "UPDATE grants SET {set} WHERE id = $1 RETURNING {GRANT_COLUMNS}"
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
                let current = lock_job(tx, id).await?;
                match current.status {
                    JobStatus::Queued => {
                        let outcome = Outcome {
                            status: JobStatus::Revoked,
                            reason: Some(REVOKED_REASON.to_owned()),
                            report: None,
                            identity: None,
                        };
                        ended.push(end_job(tx, current, &outcome, &mut sign).await?);
                        release_hold_locked(tx, id).await?;
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
        })
        .await
    }
}
