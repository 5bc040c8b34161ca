//! Dataset exposure: how often a dataset's bytes went to jobs on each vendor's models, the jobs
//! and the samples they were to dispatch, so a result on a private test set can say how many
//! times the vendor may have seen it already.
//!
//! Counted when a job is accepted ([`Tx::expose`], called by
//! [`Store::submit_job_under`](crate::Store::submit_job_under)), in the transaction that writes
//! its pre-registration, which states the exposure before it: the count and the statement
//! cannot disagree, and two acceptances over one dataset and vendor are serialized on its row
//! (PostgreSQL: the upsert's row lock; SQLite: the immediate transaction). Why at acceptance
//! and not at the end: a job's end, and how many samples it got through before a budget
//! stopped it, can depend on what the model said (tokens used); the samples it was accepted
//! to dispatch cannot. So a job that fails, is cancelled or is rejected still counts in full:
//! the count never under-states what the vendor may have seen.
//!
//! Keyed by the dataset's digest, not its owner: every evaluator who uploaded the same bytes
//! adds to one count, and each of them sees it ([`Store::exposure_of`]). Lock order: grant,
//! pair ledger, model ledger, job, dataset exposure, log head.

use proctor_attest::Exposure;
use proctor_core::Sha256Digest;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::{AccountId, JobId};
use crate::jobs::Job;
use crate::rows::{parse_id, timestamp, to_i64, to_u64};
use crate::store::{Store, Tx};
use crate::time::Timestamp;

/// A dataset's exposure to one vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorExposure {
    /// The vendor account whose models the jobs ran on.
    pub vendor: AccountId,
    /// Its name.
    pub vendor_name: String,
    /// The jobs accepted over the dataset on its models, and their samples.
    pub exposure: Exposure,
    /// When the last of them was accepted.
    pub updated_at: Timestamp,
}

impl Tx {
    /// Counts `job` (just enqueued in this transaction) as an exposure of its dataset to its
    /// model's vendor: one job and its `total` samples. Returns the exposure before it, which
    /// its pre-registration states.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the job's model does not exist; [`StoreError::Invalid`]
    /// for a count beyond 2^63; [`StoreError::Database`].
    pub async fn expose(&mut self, job: &Job) -> Result<Exposure> {
        let items = to_i64(job.total, "sample total")?;
        // `WHERE` after the `SELECT` also keeps SQLite from reading `ON CONFLICT` as a join.
        let sql = self.backend.sql(
            "INSERT INTO dataset_exposure (dataset_digest, vendor_id, jobs, items, updated_at) \
             SELECT $1, m.owner_id, 1, $3, {now} FROM models m WHERE m.id = $2 \
             ON CONFLICT (dataset_digest, vendor_id) DO UPDATE SET \
             jobs = dataset_exposure.jobs + 1, items = dataset_exposure.items + excluded.items, \
             updated_at = excluded.updated_at \
             RETURNING jobs, items",
        );
        let row = sqlx::query(&sql)
            .bind(job.dataset.to_hex())
            .bind(job.model.to_string())
            .bind(items)
            .fetch_optional(&mut *self.inner)
            .await?
            .ok_or(StoreError::NotFound("model"))?;
        let after = Exposure {
            jobs: to_u64(row.try_get("jobs")?, "exposure jobs")?,
            items: to_u64(row.try_get("items")?, "exposure items")?,
        };
        Ok(Exposure {
            jobs: after.jobs.saturating_sub(1),
            items: after.items.saturating_sub(job.total),
        })
    }
}

impl Store {
    /// The exposure of `job`'s dataset to its model's vendor before it, recounted from the jobs
    /// whose pre-registrations precede its own (log index `accepted_index`): what
    /// [`Tx::expose`] would have returned when it was accepted. For jobs accepted before
    /// exposure was counted (a `job-accepted/v2` entry states none), whose result must state
    /// one; the migration that began the counts summed the same rows.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the job does not exist; [`StoreError::Invalid`] for a
    /// log index beyond 2^63; [`StoreError::Database`].
    pub async fn exposure_before(&self, job: JobId, accepted_index: u64) -> Result<Exposure> {
        let of_job = sqlx::query(
            "SELECT j.dataset_digest, m.owner_id FROM jobs j JOIN models m ON m.id = j.model_id \
             WHERE j.id = $1",
        )
        .bind(job.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("job"))?;
        let dataset: String = of_job.try_get("dataset_digest")?;
        let vendor: String = of_job.try_get("owner_id")?;
        // PostgreSQL sums BIGINT into NUMERIC: cast back so both backends read an i64.
        let row = sqlx::query(
            "SELECT COUNT(*) AS jobs, CAST(COALESCE(SUM(j.progress_total), 0) AS BIGINT) AS items \
             FROM jobs j JOIN models m ON m.id = j.model_id \
             JOIN log_entries e ON e.job_id = j.id AND e.kind = 'accepted' \
             WHERE j.dataset_digest = $1 AND m.owner_id = $2 AND e.log_index < $3",
        )
        .bind(dataset)
        .bind(vendor)
        .bind(to_i64(accepted_index, "log index")?)
        .fetch_one(&self.pool)
        .await?;
        Ok(Exposure {
            jobs: to_u64(row.try_get("jobs")?, "exposure jobs")?,
            items: to_u64(row.try_get("items")?, "exposure items")?,
        })
    }

    /// The exposure of the dataset `digest` to each vendor it went to, by vendor name, if
    /// `owner` holds the dataset (`None` otherwise, as for a dataset that does not exist).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn exposure_of(
        &self,
        owner: AccountId,
        digest: &Sha256Digest,
    ) -> Result<Option<Vec<VendorExposure>>> {
        if !self.owns_dataset(owner, digest).await? {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT x.vendor_id, a.name, x.jobs, x.items, x.updated_at \
             FROM dataset_exposure x JOIN accounts a ON a.id = x.vendor_id \
             WHERE x.dataset_digest = $1 ORDER BY a.name",
        )
        .bind(digest.to_hex())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VendorExposure {
                    vendor: parse_id(row, "vendor_id")?,
                    vendor_name: row.try_get("name")?,
                    exposure: Exposure {
                        jobs: to_u64(row.try_get("jobs")?, "exposure jobs")?,
                        items: to_u64(row.try_get("items")?, "exposure items")?,
                    },
                    updated_at: timestamp(row, "updated_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}
