//! The vendor's approval of jobs under a manual grant: where a job stands with its vendor,
//! the jobs waiting, approving and rejecting.
//!
//! A job waiting for approval is `queued` with approval `pending` in `job_grants`;
//! [`Store::claim`] never hands it out, and [`Store::reserve_query`] refuses its queries. A
//! rejected job ends cancelled with its result entry and gives its hold back, in one
//! transaction. Lock order: the grant's row, then the job's, then the log head.

use crate::error::{Result, SignError, StoreError};
use crate::grants::lock_grant_of_job;
use crate::holds::release_hold_locked;
use crate::ids::{AccountId, JobId};
use crate::jobs::{JOB_COLUMNS, Job, JobStatus, Outcome, end_job, job_from_row, lock_job};
use crate::log::{LogEntry, LogSlot};
use crate::rows::{parse_id, parse_text};
use crate::store::{Store, Tx};
use crate::text_enum::text_enum;

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

/// Records the vendor's decision on a job the caller found pending (under the job's lock).
async fn decide(tx: &mut Tx, job: JobId, decision: Approval) -> Result<()> {
    let sql = tx.backend.sql(
        "UPDATE job_grants SET approval = $2, decided_at = {now} \
         WHERE job_id = $1 AND approval = 'pending'",
    );
    sqlx::query(&sql)
        .bind(job.to_string())
        .bind(decision.as_str())
        .execute(&mut *tx.inner)
        .await?;
    Ok(())
}

impl Store {
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
    /// [`StoreError::InvalidState`] when it is not waiting (approved, rejected, ended);
    /// [`StoreError::GrantInactive`] when its grant expired or was revoked meanwhile.
    pub async fn approve_job(&self, vendor: AccountId, job: JobId) -> Result<Job> {
        self.transaction(async |tx| {
            let grant = lock_grant_of_job(tx, job)
                .await?
                .ok_or(StoreError::NotFound("job"))?;
            let current = Store::pending_job(tx, vendor, job, "approving").await?;
            // Approval lets the job run under its grant; one that stopped covering anything
            // cannot give that. The vendor may still reject the job.
            if let Some(reason) = grant.inactive_reason(tx.now().await?) {
                return Err(StoreError::GrantInactive {
                    job: job.to_string(),
                    reason,
                });
            }
            decide(tx, job, Approval::Approved).await?;
            Ok(current)
        })
        .await
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
        self.transaction(async |tx| {
            // The grant's lock first (the lock order), since the job's hold goes back to it.
            lock_grant_of_job(tx, job)
                .await?
                .ok_or(StoreError::NotFound("job"))?;
            let current = Store::pending_job(tx, vendor, job, "rejecting").await?;
            decide(tx, job, Approval::Rejected).await?;
            let outcome = Outcome {
                status: JobStatus::Cancelled,
                reason: Some(format!("the vendor rejected the job: {reason}")),
                report: None,
                identity: None,
            };
            let ended = end_job(tx, current, &outcome, sign).await?;
            release_hold_locked(tx, job).await?;
            Ok(ended)
        })
        .await
    }
}
