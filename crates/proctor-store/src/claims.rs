//! Claims with leases, and their renewal: which queued job a worker gets (fair across
//! evaluators, not one queue), and how it keeps it while it runs. See [`crate::jobs`] for the
//! life of a job around them.

use std::time::Duration;

use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::JobId;
use crate::jobs::{Claimed, Disposition, JOB_COLUMNS, Renewed, job_from_row};
use crate::rows::{millis, timestamp};
use crate::store::Store;
use crate::time::Timestamp;

impl Store {
    /// Claims a job that is queued or whose lease expired, for `worker` (any id unique to the
    /// worker, e.g. host, process and task), with a lease of `lease`. `None` when there is
    /// nothing to do. A job waiting for its vendor's approval (see [`Store::approve_job`]) is
    /// never handed out.
    ///
    /// Which job: fair across evaluators, not one queue. The job comes from the evaluator
    /// with the fewest jobs running, then from the one served least recently (whose latest
    /// first claim is oldest; never served comes first), then the oldest job: one evaluator's
    /// long queue holds another's job back by one claim at most.
    ///
    /// Several workers, also in several processes, never get the same job while its lease
    /// runs: PostgreSQL locks the chosen row (`FOR UPDATE SKIP LOCKED`, so claimers pass each
    /// other's rows by), SQLite runs the one `UPDATE ... RETURNING` in an immediate
    /// transaction. See [`Disposition`] for jobs past `max_attempts` or asked to cancel.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`]; [`StoreError::Invalid`] for a lease beyond 2^63 ms.
    pub async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Option<Claimed>> {
        self.claim_at(worker, lease, max_attempts, None).await
    }

    /// [`Store::claim`], noting `clock` (the claiming server's clock) as the job's start on
    /// that clock when this is its first claim.
    ///
    /// # Errors
    ///
    /// As [`Store::claim`].
    pub async fn claim_at(
        &self,
        worker: &str,
        lease: Duration,
        max_attempts: u32,
        clock: Option<Timestamp>,
    ) -> Result<Option<Claimed>> {
        let skip_locked = match self.backend {
            crate::Backend::Sqlite => "",
            crate::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        let sql = self.backend.sql(&format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_expires_at = {{now}} + $2, started_at = COALESCE(started_at, {{now}}), \
             clock_started_at = COALESCE(clock_started_at, $3) \
             WHERE id = (SELECT j.id FROM jobs j \
                 WHERE (j.status = 'queued' AND NOT EXISTS (SELECT 1 FROM job_grants g \
                        WHERE g.job_id = j.id AND g.approval = 'pending')) \
                    OR (j.status = 'running' AND j.lease_expires_at <= {{now}}) \
                 ORDER BY (SELECT COUNT(*) FROM jobs r WHERE r.evaluator_id = j.evaluator_id \
                        AND r.status = 'running' AND r.lease_expires_at > {{now}}), \
                    (SELECT COALESCE(MAX(r.started_at), 0) FROM jobs r \
                        WHERE r.evaluator_id = j.evaluator_id), \
                    j.created_at, j.id LIMIT 1 {skip_locked}) \
             RETURNING {JOB_COLUMNS}"
        ));
        let lease = millis(lease)?;
        let claimed = self
            .transaction(async |tx| {
                let row = sqlx::query(&sql)
                    .bind(worker)
                    .bind(lease)
                    .bind(clock.map(Timestamp::as_millis))
                    .fetch_optional(&mut *tx.inner)
                    .await?;
                row.as_ref().map(job_from_row).transpose()
            })
            .await?;
        let Some(job) = claimed else {
            return Ok(None);
        };
        let disposition = if job.cancel_requested {
            Disposition::Cancel
        } else if job.attempts > max_attempts {
            Disposition::GiveUp {
                reason: format!(
                    "no worker finished the job in {max_attempts} attempts (each worker's lease \
                     expired before it ended)"
                ),
            }
        } else {
            Disposition::Run
        };
        Ok(Some(Claimed { job, disposition }))
    }

    /// Extends `worker`'s lease on a running job to `lease` from now.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the worker does not hold an unexpired lease on the job
    /// (it expired, another worker claimed it, or it ended): the worker must stop.
    pub async fn renew(&self, job: JobId, worker: &str, lease: Duration) -> Result<Renewed> {
        let sql = self.backend.sql(
            "UPDATE jobs SET lease_expires_at = {now} + $3 \
             WHERE id = $1 AND status = 'running' AND lease_owner = $2 \
             AND lease_expires_at > {now} RETURNING lease_expires_at, cancel_requested",
        );
        let row = sqlx::query(&sql)
            .bind(job.to_string())
            .bind(worker)
            .bind(millis(lease)?)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::LeaseLost(job.to_string()))?;
        let cancel: i64 = row.try_get("cancel_requested")?;
        Ok(Renewed {
            expires_at: timestamp(&row, "lease_expires_at")?,
            cancel_requested: cancel != 0,
        })
    }

    /// Gives `worker`'s running job back to the queue at once, as if its lease had expired,
    /// without spending an attempt: a server that drains hands back what it could not finish
    /// in time, and the next claim (on any server) takes it up.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the worker does not hold an unexpired lease on the job.
    pub async fn hand_back(&self, job: JobId, worker: &str) -> Result<()> {
        let sql = self.backend.sql(
            "UPDATE jobs SET lease_expires_at = {now}, attempts = attempts - 1 \
             WHERE id = $1 AND status = 'running' AND lease_owner = $2 \
             AND lease_expires_at > {now} AND attempts > 0",
        );
        let handed = sqlx::query(&sql)
            .bind(job.to_string())
            .bind(worker)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if handed == 0 {
            return Err(StoreError::LeaseLost(job.to_string()));
        }
        Ok(())
    }
}
