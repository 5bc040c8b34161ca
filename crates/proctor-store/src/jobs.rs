//! Jobs and the queue: submission with pre-registration, progress, exactly-once finish,
//! cancellation; claims with leases and their renewal are in [`crate::claims`].
//!
//! The life of a job: [`Store::submit_job`] (or [`Tx::enqueue`] plus [`Tx::append_entry`] in
//! the caller's transaction) writes the job `queued` together with its pre-registration entry.
//! A worker [`Store::claim`]s it: `running`, `attempts + 1`, a lease that the worker
//! [`Store::renew`]s while it runs. A worker that dies stops renewing; when the lease expires
//! the job is claimable again. [`Store::finish`] writes the final status and the result entry
//! in one transaction, only while the caller holds an unexpired lease, and a unique index
//! allows one result entry per job: so a job ends once, with one result entry, whatever
//! crashes happen. A claim past `max_attempts`, or of a job whose cancellation was asked for,
//! hands the job out with a [`Disposition`] telling the worker to finish it at once (failed
//! with a reason, or cancelled) instead of running it: the result entry is signed by the
//! server, so ending a job always goes through a worker's [`Store::finish`].
//!
//! Every time above is the database's clock, which leases need. Beside them a job keeps the
//! *server's* clock (`clock_*`, injectable, so tests are deterministic): when it was submitted
//! ([`Store::note_clock_created`]), first claimed ([`Store::claim_at`]) and the end its worker
//! waited for ([`Store::finish_at`]). The server shows a job whose policy has a time grid only
//! those, on the grid, so nothing its evaluator sees of time depends on when its samples ended.

use std::fmt;

use proctor_core::digest::Sha256Digest;
use proctor_core::identity::ModelIdentity;
use proctor_core::job_end::{EndStatus, JobEnd};
use proctor_core::release::Usage;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, SignError, StoreError, classify};
use crate::ids::{AccountId, JobId, ModelId};
use crate::log::{EntryKind, LogEntry, LogSlot};
use crate::rows::{opt_timestamp, parse_id, parse_text, timestamp, to_i64, to_u64};
use crate::store::{Store, Tx};
use crate::text_enum::text_enum;
use crate::time::Timestamp;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker holds (or held, until its lease expires) the job.
    Running,
    /// Ran to its end.
    Succeeded,
    /// Could not run to its end.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Its grant was revoked.
    Revoked,
}

text_enum!(
    JobStatus,
    "job status",
    Queued = "queued",
    Running = "running",
    Succeeded = "succeeded",
    Failed = "failed",
    Cancelled = "cancelled",
    Revoked = "revoked",
);

impl JobStatus {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        self.end().is_some()
    }

    /// The final status, once the job has ended.
    pub fn end(self) -> Option<EndStatus> {
        match self {
            JobStatus::Queued | JobStatus::Running => None,
            JobStatus::Succeeded => Some(EndStatus::Succeeded),
            JobStatus::Failed => Some(EndStatus::Failed),
            JobStatus::Cancelled => Some(EndStatus::Cancelled),
            JobStatus::Revoked => Some(EndStatus::Revoked),
        }
    }
}

impl From<EndStatus> for JobStatus {
    fn from(end: EndStatus) -> JobStatus {
        match end {
            EndStatus::Succeeded => JobStatus::Succeeded,
            EndStatus::Failed => JobStatus::Failed,
            EndStatus::Cancelled => JobStatus::Cancelled,
            EndStatus::Revoked => JobStatus::Revoked,
        }
    }
}

/// A job to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The evaluator that submits it.
    pub evaluator: AccountId,
    /// The eval component.
    pub eval: Sha256Digest,
    /// The dataset.
    pub dataset: Sha256Digest,
    /// The model under test.
    pub model: ModelId,
    /// The policy's name.
    pub policy_name: String,
    /// The effective policy, canonical JSON (RFC 8785).
    pub policy_json: String,
    /// sha256 of `policy_json`.
    pub policy_digest: Sha256Digest,
    /// Samples in flight.
    pub concurrency: u32,
    /// The job's random seed.
    pub seed: u64,
    /// Samples to run (for progress).
    pub total: u64,
}

/// Who holds a running job, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The worker's id, as it gave it to [`Store::claim`].
    pub owner: String,
    /// When the lease runs out (database clock).
    pub expires_at: Timestamp,
}

/// A job as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Who submitted it.
    pub evaluator: AccountId,
    /// The eval component.
    pub eval: Sha256Digest,
    /// The dataset.
    pub dataset: Sha256Digest,
    /// The model under test.
    pub model: ModelId,
    /// The policy's name.
    pub policy_name: String,
    /// The effective policy, canonical JSON.
    pub policy_json: String,
    /// sha256 of the policy's canonical JSON.
    pub policy_digest: Sha256Digest,
    /// Samples in flight.
    pub concurrency: u32,
    /// The job's random seed.
    pub seed: u64,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Someone asked to cancel it while it ran; the worker sees it on [`Store::renew`].
    pub cancel_requested: bool,
    /// Samples processed so far.
    pub done: u64,
    /// Samples in all.
    pub total: u64,
    /// Claims so far (a claim after a lease expired counts again).
    pub attempts: u32,
    /// Set while running.
    pub lease: Option<Lease>,
    /// The released report, JSON text, once it succeeded.
    pub report: Option<String>,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When it was first claimed.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// When it was submitted, by the server's clock (`None`: not noted).
    pub clock_created_at: Option<Timestamp>,
    /// When it was first claimed, by the claiming server's clock.
    pub clock_started_at: Option<Timestamp>,
    /// When it ended, by the server's clock: the (padded) end its worker waited for.
    pub clock_finished_at: Option<Timestamp>,
}

impl fmt::Debug for Job {
    // The policy JSON and the report are long; the rest says what a log line needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("attempts", &self.attempts)
            .field("lease", &self.lease)
            .field("cancel_requested", &self.cancel_requested)
            .field("done", &self.done)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// What a worker is to do with a job it claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Run it.
    Run,
    /// Its cancellation was asked for while an earlier worker held it: finish it as
    /// [`JobStatus::Cancelled`] without running it.
    Cancel,
    /// It has been claimed more than `max_attempts` times (every earlier worker's lease
    /// expired): finish it as [`JobStatus::Failed`] with this reason, without running it.
    GiveUp {
        /// The reason to record and attest.
        reason: String,
    },
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The job, `running`, with the caller's lease.
    pub job: Job,
    /// What to do with it.
    pub disposition: Disposition,
}

/// The state of a renewed lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// The new expiry.
    pub expires_at: Timestamp,
    /// Someone asked to cancel the job: stop and [`Store::finish`] it as cancelled.
    pub cancel_requested: bool,
}

/// A job's end as its row stores it, for [`Store::finish`]: the columns of a
/// [`JobEnd`] ([`Outcome::of`]), which is what the server ends a job with.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// A terminal status.
    pub status: JobStatus,
    /// Why, for anything but success.
    pub reason: Option<String>,
    /// The released report, JSON text.
    pub report: Option<String>,
    /// The model's identity as the report attests it: a `changed` verdict raises the job's
    /// identity alert in the transaction that ends it (`Tx::raise_job_alert`).
    pub identity: Option<ModelIdentity>,
}

impl Outcome {
    /// The row of a job that ends as `end`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the report does not serialize.
    pub fn of(end: &JobEnd) -> Result<Outcome> {
        Ok(Outcome {
            status: end.status().into(),
            reason: end.reason_text().map(String::from),
            report: end
                .report_json()
                .map_err(|_| StoreError::Invalid("job report"))?,
            identity: end.report().map(|r| r.model_identity),
        })
    }
}

/// What [`Store::cancel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The job was queued: it is now cancelled, with its result entry.
    Now(Job, LogEntry),
    /// The job is running: its worker will see the request on its next renewal (or the
    /// next claimer, if the worker died) and finish it as cancelled.
    Requested(Job),
}

pub(crate) const JOB_COLUMNS: &str = "id, evaluator_id, eval_digest, dataset_digest, model_id, \
    policy_name, policy_json, policy_digest, concurrency, seed, status, reason, cancel_requested, \
    progress_done, progress_total, attempts, lease_owner, lease_expires_at, report, created_at, \
    started_at, finished_at, clock_created_at, clock_started_at, clock_finished_at";

pub(crate) fn job_from_row(row: &AnyRow) -> Result<Job> {
    let lease_owner: Option<String> = row.try_get("lease_owner")?;
    let lease_expires_at = opt_timestamp(row, "lease_expires_at")?;
    let concurrency: i64 = row.try_get("concurrency")?;
    let attempts: i64 = row.try_get("attempts")?;
    let seed: i64 = row.try_get("seed")?;
    let cancel_requested: i64 = row.try_get("cancel_requested")?;
    Ok(Job {
        id: parse_id(row, "id")?,
        evaluator: parse_id(row, "evaluator_id")?,
        eval: parse_text(row, "eval_digest")?,
        dataset: parse_text(row, "dataset_digest")?,
        model: parse_id(row, "model_id")?,
        policy_name: row.try_get("policy_name")?,
        policy_json: row.try_get("policy_json")?,
        policy_digest: parse_text(row, "policy_digest")?,
        concurrency: u32::try_from(concurrency).map_err(|_| StoreError::Corrupt("concurrency"))?,
        seed: u64::from_ne_bytes(seed.to_ne_bytes()),
        status: parse_text(row, "status")?,
        reason: row.try_get("reason")?,
        cancel_requested: cancel_requested != 0,
        done: to_u64(row.try_get("progress_done")?, "progress")?,
        total: to_u64(row.try_get("progress_total")?, "progress")?,
        attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt("attempts"))?,
        lease: match (lease_owner, lease_expires_at) {
            (Some(owner), Some(expires_at)) => Some(Lease { owner, expires_at }),
            _ => None,
        },
        report: row.try_get("report")?,
        created_at: timestamp(row, "created_at")?,
        started_at: opt_timestamp(row, "started_at")?,
        finished_at: opt_timestamp(row, "finished_at")?,
        clock_created_at: opt_timestamp(row, "clock_created_at")?,
        clock_started_at: opt_timestamp(row, "clock_started_at")?,
        clock_finished_at: opt_timestamp(row, "clock_finished_at")?,
    })
}

/// Reads a job inside `tx`, locking its row on PostgreSQL (SQLite's transaction is already
/// exclusive).
pub(crate) async fn lock_job(tx: &mut Tx, id: JobId) -> Result<Job> {
    let sql = tx.backend.sql(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 {{for_update}}"
    ));
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *tx.inner)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
    job_from_row(&row)
}

/// Writes a job's end and appends its result entry, in `tx`, with no server clock reading
/// (a job that ends before it ran: cancelled, rejected or revoked while queued).
pub(crate) async fn end_job<F>(
    tx: &mut Tx,
    job: Job,
    outcome: &Outcome,
    sign: F,
) -> Result<(Job, LogEntry)>
where
    F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
{
    end_job_at(tx, job, outcome, None, sign).await
}

/// [`end_job`], noting `clock_end` (the server's clock) as the job's end. `sign` sees it on
/// the ended job, so the signed end and the stored one agree.
pub(crate) async fn end_job_at<F>(
    tx: &mut Tx,
    job: Job,
    outcome: &Outcome,
    clock_end: Option<Timestamp>,
    sign: F,
) -> Result<(Job, LogEntry)>
where
    F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
{
    let mut ended = job;
    ended.status = outcome.status;
    ended.reason.clone_from(&outcome.reason);
    ended.report.clone_from(&outcome.report);
    ended.lease = None;
    ended.clock_finished_at = clock_end;
    let entry = tx
        .append_entry(EntryKind::Result, ended.id, |slot| {
            ended.finished_at = Some(slot.at);
            sign(&ended, slot)
        })
        .await?;
    sqlx::query(
        "UPDATE jobs SET status = $2, reason = $3, report = $4, finished_at = $5, \
         clock_finished_at = $6, lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(ended.id.to_string())
    .bind(outcome.status.as_str())
    .bind(outcome.reason.as_deref())
    .bind(outcome.report.as_deref())
    .bind(entry.created_at.0)
    .bind(clock_end.map(Timestamp::as_millis))
    .execute(&mut *tx.inner)
    .await?;
    ended.finished_at = Some(entry.created_at);
    tx.raise_job_alert(&ended, outcome.identity.as_ref())
        .await?;
    Ok((ended, entry))
}

impl Tx {
    /// Writes a queued job in this transaction. Append its pre-registration with
    /// [`Tx::append_entry`] (kind [`EntryKind::Accepted`]) before committing, so the job
    /// exists only with its entry; [`Store::submit_job`] does both.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the evaluator, eval, dataset or model does not exist;
    /// [`StoreError::Invalid`] for a total beyond 2^63.
    pub async fn enqueue(&mut self, job: &NewJob) -> Result<Job> {
        let sql = self.backend.sql(&format!(
            "INSERT INTO jobs (id, evaluator_id, eval_digest, dataset_digest, model_id, \
             policy_name, policy_json, policy_digest, concurrency, seed, status, progress_total, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, {{now}}) \
             RETURNING {JOB_COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(JobId::new().to_string())
            .bind(job.evaluator.to_string())
            .bind(job.eval.to_hex())
            .bind(job.dataset.to_hex())
            .bind(job.model.to_string())
            .bind(&job.policy_name)
            .bind(&job.policy_json)
            .bind(job.policy_digest.to_hex())
            .bind(i64::from(job.concurrency))
            // The seed's 64 bits, kept as they are in a signed column.
            .bind(i64::from_ne_bytes(job.seed.to_ne_bytes()))
            .bind(to_i64(job.total, "sample total")?)
            .fetch_one(&mut *self.inner)
            .await
            .map_err(|e| classify(e, "job", "evaluator, eval, dataset or model"))?;
        job_from_row(&row)
    }
}

impl Store {
    /// Submits a job: the job row and its pre-registration entry (signed by `sign`, which
    /// gets the job and the slot its entry will take) commit together or not at all.
    ///
    /// # Errors
    ///
    /// As [`Tx::enqueue`] and [`Tx::append_entry`].
    pub async fn submit_job<F>(&self, job: &NewJob, sign: F) -> Result<(Job, LogEntry)>
    where
        F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        self.transaction(async |tx| {
            let queued = tx.enqueue(job).await?;
            let entry = tx
                .append_entry(EntryKind::Accepted, queued.id, |slot| sign(&queued, slot))
                .await?;
            Ok((queued, entry))
        })
        .await
    }

    /// A job by id.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn job(&self, id: JobId) -> Result<Job> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("job"))?;
        job_from_row(&row)
    }

    /// Notes when a job was submitted by the server's clock, once (a second note changes
    /// nothing). The server notes it right after the submission commits, with the reading its
    /// pre-registration was signed with.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn note_clock_created(&self, job: JobId, at: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET clock_created_at = $2 WHERE id = $1 AND clock_created_at IS NULL",
        )
        .bind(job.to_string())
        .bind(at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many of the evaluator's jobs are queued or running (its queue quota counts them).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn unfinished_jobs_count(&self, evaluator: AccountId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE evaluator_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(evaluator.to_string())
        .fetch_one(&self.pool)
        .await?;
        to_u64(n, "job count")
    }

    /// How many jobs are queued, waiting for a worker (or for their vendor's approval).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn queued_jobs_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        to_u64(n, "job count")
    }

    /// An evaluator's jobs, newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn jobs_of(&self, evaluator: AccountId, limit: u32) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE evaluator_id = $1 \
             ORDER BY created_at DESC, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(evaluator.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Records progress (samples processed) and the usage of the current attempt, while the
    /// worker holds the lease. Usage is the attempt's total so far, not an increment, so a
    /// repeated report changes nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] as for [`Store::renew`].
    pub async fn record_progress(
        &self,
        job: JobId,
        worker: &str,
        done: u64,
        usage: &Usage,
    ) -> Result<()> {
        let sql = self.backend.sql(
            "UPDATE jobs SET progress_done = $3 WHERE id = $1 AND status = 'running' \
             AND lease_owner = $2 AND lease_expires_at > {now}",
        );
        self.transaction(async |tx| {
            let updated = sqlx::query(&sql)
                .bind(job.to_string())
                .bind(worker)
                .bind(to_i64(done, "progress")?)
                .execute(&mut *tx.inner)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::LeaseLost(job.to_string()));
            }
            sqlx::query(
                "INSERT INTO job_usage (job_id, queries, input_tokens, output_tokens) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (job_id) DO UPDATE SET \
                 queries = excluded.queries, input_tokens = excluded.input_tokens, \
                 output_tokens = excluded.output_tokens",
            )
            .bind(job.to_string())
            .bind(to_i64(usage.queries, "usage")?)
            .bind(to_i64(usage.input_tokens, "usage")?)
            .bind(to_i64(usage.output_tokens, "usage")?)
            .execute(&mut *tx.inner)
            .await?;
            Ok(())
        })
        .await
    }

    /// The usage last recorded for a job (`None` before the first report).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn job_usage(&self, job: JobId) -> Result<Option<Usage>> {
        let row = sqlx::query(
            "SELECT queries, input_tokens, output_tokens FROM job_usage WHERE job_id = $1",
        )
        .bind(job.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Usage {
                queries: to_u64(row.try_get("queries")?, "usage")?,
                input_tokens: to_u64(row.try_get("input_tokens")?, "usage")?,
                output_tokens: to_u64(row.try_get("output_tokens")?, "usage")?,
            })
        })
        .transpose()
    }

    /// Ends a job exactly once: in one transaction, checks that `worker` still holds an
    /// unexpired lease, appends the result entry (signed by `sign`, which gets the ended job
    /// and the entry's slot) and writes the final status. A second finish, or a finish
    /// after the lease was lost, writes nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the worker does not hold the lease (the job may have
    /// ended already); [`StoreError::Invalid`] for a non-terminal status;
    /// [`StoreError::NotFound`]; [`StoreError::Sign`].
    pub async fn finish<F>(
        &self,
        job: JobId,
        worker: &str,
        outcome: &Outcome,
        sign: F,
    ) -> Result<(Job, LogEntry)>
    where
        F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        self.finish_at(job, worker, outcome, None, sign).await
    }

    /// [`Store::finish`], noting `clock_end` (the server's clock: the end the worker waited
    /// for) as the job's end on that clock.
    ///
    /// # Errors
    ///
    /// As [`Store::finish`].
    pub async fn finish_at<F>(
        &self,
        job: JobId,
        worker: &str,
        outcome: &Outcome,
        clock_end: Option<Timestamp>,
        sign: F,
    ) -> Result<(Job, LogEntry)>
    where
        F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        if !outcome.status.is_terminal() {
            return Err(StoreError::Invalid("final job status"));
        }
        // Rolled back at once on a refusal: the job's row lock must not outlive the call, or a
        // claim right after would pass the job by.
        self.transaction(async |tx| {
            let current = lock_job(tx, job).await?;
            let now = tx.now().await?;
            let holds = current.status == JobStatus::Running
                && current
                    .lease
                    .as_ref()
                    .is_some_and(|l| l.owner == worker && l.expires_at > now);
            if !holds {
                return Err(StoreError::LeaseLost(job.to_string()));
            }
            end_job_at(tx, current, outcome, clock_end, sign).await
        })
        .await
    }

    /// Cancels a job. A queued job ends at once, with its result entry (signed by `sign`)
    /// and `reason`; a running job is flagged, and its worker finishes it (see
    /// [`Cancelled::Requested`]). Asking again while it runs changes nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidState`] for a job that has ended; [`StoreError::NotFound`];
    /// [`StoreError::Sign`].
    pub async fn cancel<F>(&self, job: JobId, reason: &str, sign: F) -> Result<Cancelled>
    where
        F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        self.cancel_at(job, reason, None, sign).await
    }

    /// [`Store::cancel`], noting `clock` (the server's clock) as the end of a queued job.
    ///
    /// # Errors
    ///
    /// As [`Store::cancel`].
    pub async fn cancel_at<F>(
        &self,
        job: JobId,
        reason: &str,
        clock: Option<Timestamp>,
        sign: F,
    ) -> Result<Cancelled>
    where
        F: FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError>,
    {
        // Rolled back at once on a refusal, as in finish.
        self.transaction(async |tx| {
            let current = lock_job(tx, job).await?;
            match current.status {
                JobStatus::Queued => {
                    let outcome = Outcome {
                        status: JobStatus::Cancelled,
                        reason: Some(reason.to_owned()),
                        report: None,
                        identity: None,
                    };
                    let (ended, entry) = end_job_at(tx, current, &outcome, clock, sign).await?;
                    Ok(Cancelled::Now(ended, entry))
                }
                JobStatus::Running => {
                    sqlx::query(
                        "UPDATE jobs SET cancel_requested = 1, \
                         reason = COALESCE(reason, $2) WHERE id = $1",
                    )
                    .bind(job.to_string())
                    .bind(reason)
                    .execute(&mut *tx.inner)
                    .await?;
                    let mut flagged = current;
                    flagged.cancel_requested = true;
                    flagged.reason.get_or_insert_with(|| reason.to_owned());
                    Ok(Cancelled::Requested(flagged))
                }
                status => Err(StoreError::InvalidState {
                    job: job.to_string(),
                    status: status.as_str(),
                    action: "cancelling",
                }),
            }
        })
        .await
    }
}
