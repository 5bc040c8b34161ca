//! Identity alerts: a model answered unlike its fingerprint.
//!
//! Two subjects, each written in the transaction of the fact it reports, so an alert exists
//! exactly when its fact does (a crash between them cannot drop one):
//!
//! - **a check** whose verdict is `changed` (before or after a job, or scheduled), written
//!   with the check ([`Store::record_identity_check`]), for the model's vendor only: the
//!   vendor reads every check's figures already;
//! - **a job** whose result attests `changed`, written in the transaction that ends the job
//!   ([`Outcome::identity`](crate::Outcome)), for the vendor and the job's evaluator. The
//!   evaluator can read it exactly when it can read the job's end and its attestation, which
//!   state the same figures: the alert adds nothing to what the job released.
//!
//! Each party acknowledges its own; neither sees when the other did.

use proctor_core::IdentityVerdict;
use proctor_core::identity::{IdentityTest, ModelIdentity};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError};
use crate::identity::{CheckKind, IdentityCheck};
use crate::ids::{AccountId, IdentityAlertId, JobId, ModelId};
use crate::jobs::Job;
use crate::rows::{opt_timestamp, opt_u64, parse_id, timestamp, to_i64, to_u64};
use crate::store::{Store, Tx};
use crate::time::Timestamp;

/// What an identity alert reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityAlertSubject {
    /// One check's verdict.
    Check {
        /// The check's id.
        check: String,
        /// When it ran.
        kind: CheckKind,
        /// The job it ran for, if any.
        job: Option<JobId>,
    },
    /// A job's attested verdict (both its checks together).
    Job {
        /// The job.
        job: JobId,
        /// Its evaluator.
        evaluator: AccountId,
    },
}

/// An identity alert as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityAlert {
    /// Its id.
    pub id: IdentityAlertId,
    /// The model.
    pub model: ModelId,
    /// The model's vendor.
    pub vendor: AccountId,
    /// What it reports.
    pub subject: IdentityAlertSubject,
    /// The figures of the check, or of the job as attested (the verdict is `changed`).
    pub identity: ModelIdentity,
    /// When it was raised.
    pub created_at: Timestamp,
    /// When the vendor acknowledged it.
    pub vendor_acknowledged_at: Option<Timestamp>,
    /// When the job's evaluator acknowledged it (a job's alert only).
    pub evaluator_acknowledged_at: Option<Timestamp>,
}

/// Who reads identity alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityAlertReader {
    /// A vendor: every alert on its models.
    Vendor(AccountId),
    /// An evaluator: the alerts on its jobs' results.
    Evaluator(AccountId),
    /// An admin: every alert (and acknowledges none).
    Admin,
}

const COLUMNS: &str = "a.id, a.model_id, a.vendor_id, a.check_id, a.job_id, a.evaluator_id, \
    a.queries, a.mismatches, a.p_value_e4, a.created_at, a.vendor_acknowledged_at, \
    a.evaluator_acknowledged_at, c.kind AS check_kind, c.job_id AS check_job_id";
const FROM: &str = "identity_alerts a LEFT JOIN identity_checks c ON c.id = a.check_id";

fn alert_from_row(row: &AnyRow) -> Result<IdentityAlert> {
    let check: Option<String> = row.try_get("check_id")?;
    let job: Option<String> = row.try_get("job_id")?;
    let subject = match (check, job) {
        (Some(check), None) => {
            let kind: String = row.try_get("check_kind")?;
            let check_job: Option<String> = row.try_get("check_job_id")?;
            IdentityAlertSubject::Check {
                check,
                kind: kind
                    .parse()
                    .map_err(|_| StoreError::Corrupt("identity_checks.kind"))?,
                job: check_job
                    .map(|j| j.parse())
                    .transpose()
                    .map_err(|_| StoreError::Corrupt("identity_checks.job_id"))?,
            }
        }
        (None, Some(job)) => IdentityAlertSubject::Job {
            job: job
                .parse()
                .map_err(|_| StoreError::Corrupt("identity_alerts.job_id"))?,
            evaluator: parse_id(row, "evaluator_id")?,
        },
        _ => return Err(StoreError::Corrupt("identity_alerts.subject")),
    };
    Ok(IdentityAlert {
        id: parse_id(row, "id")?,
        model: parse_id(row, "model_id")?,
        vendor: parse_id(row, "vendor_id")?,
        subject,
        identity: ModelIdentity {
            test: IdentityTest::BorderBinomial,
            queries: to_u64(row.try_get("queries")?, "identity_alerts.queries")?,
            mismatches: to_u64(row.try_get("mismatches")?, "identity_alerts.mismatches")?,
            p_value: opt_u64(row, "p_value_e4")?.map(|e4| e4 as f64 / 10_000.0),
            verdict: IdentityVerdict::Changed,
        },
        created_at: timestamp(row, "created_at")?,
        vendor_acknowledged_at: opt_timestamp(row, "vendor_acknowledged_at")?,
        evaluator_acknowledged_at: opt_timestamp(row, "evaluator_acknowledged_at")?,
    })
}

/// The p-value on the test's grid, so the integer is exact (as the check's row stores it).
fn p_value_e4(identity: &ModelIdentity) -> Option<i64> {
    identity.p_value.map(|p| (p * 10_000.0).round() as i64)
}

impl Tx {
    /// Raises the vendor's alert on `check` when its verdict is `changed`.
    pub(crate) async fn raise_check_alert(&mut self, check: &IdentityCheck) -> Result<()> {
        if check.identity.verdict != IdentityVerdict::Changed {
            return Ok(());
        }
        let sql = self.backend.sql(
            "INSERT INTO identity_alerts (id, model_id, vendor_id, check_id, job_id, \
             evaluator_id, queries, mismatches, p_value_e4, created_at) \
             SELECT $1, m.id, m.owner_id, $2, NULL, NULL, $3, $4, $5, {now} \
             FROM models m WHERE m.id = $6",
        );
        sqlx::query(&sql)
            .bind(IdentityAlertId::new().to_string())
            .bind(&check.id)
            .bind(to_i64(check.identity.queries, "queries")?)
            .bind(to_i64(check.identity.mismatches, "mismatches")?)
            .bind(p_value_e4(&check.identity))
            .bind(check.model.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Raises the alert on `job`'s result when it attests `changed` (once per job).
    pub(crate) async fn raise_job_alert(
        &mut self,
        job: &Job,
        identity: Option<&ModelIdentity>,
    ) -> Result<()> {
        let Some(identity) = identity.filter(|i| i.verdict == IdentityVerdict::Changed) else {
            return Ok(());
        };
        let sql = self.backend.sql(
            "INSERT INTO identity_alerts (id, model_id, vendor_id, check_id, job_id, \
             evaluator_id, queries, mismatches, p_value_e4, created_at) \
             SELECT $1, m.id, m.owner_id, NULL, $2, $3, $4, $5, $6, {now} \
             FROM models m WHERE m.id = $7 ON CONFLICT (job_id) DO NOTHING",
        );
        sqlx::query(&sql)
            .bind(IdentityAlertId::new().to_string())
            .bind(job.id.to_string())
            .bind(job.evaluator.to_string())
            .bind(to_i64(identity.queries, "queries")?)
            .bind(to_i64(identity.mismatches, "mismatches")?)
            .bind(p_value_e4(identity))
            .bind(job.model.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }
}

impl Store {
    /// The identity alerts `reader` may read, newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`], [`StoreError::Database`].
    pub async fn identity_alerts(
        &self,
        reader: IdentityAlertReader,
        limit: u32,
    ) -> Result<Vec<IdentityAlert>> {
        let (filter, account) = match reader {
            IdentityAlertReader::Vendor(id) => ("WHERE a.vendor_id = $1", Some(id)),
            IdentityAlertReader::Evaluator(id) => ("WHERE a.evaluator_id = $1", Some(id)),
            IdentityAlertReader::Admin => ("", None),
        };
        let limit_at = if account.is_some() { "$2" } else { "$1" };
        let sql = format!(
            "SELECT {COLUMNS} FROM {FROM} {filter} ORDER BY a.created_at DESC, a.id \
             LIMIT {limit_at}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(account) = account {
            query = query.bind(account.to_string());
        }
        let query = query.bind(i64::from(limit));
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(alert_from_row).collect()
    }

    /// Acknowledges, for `reader`, an alert it may read (again: keeps the first time). A
    /// vendor's acknowledgement and an evaluator's are kept apart.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown alert or one `reader` may not read, and for an
    /// admin (who acknowledges none); [`StoreError::Database`].
    pub async fn acknowledge_identity_alert(
        &self,
        reader: IdentityAlertReader,
        id: IdentityAlertId,
    ) -> Result<IdentityAlert> {
        let (column, owner, account) = match reader {
            IdentityAlertReader::Vendor(a) => ("vendor_acknowledged_at", "vendor_id", a),
            IdentityAlertReader::Evaluator(a) => ("evaluator_acknowledged_at", "evaluator_id", a),
            IdentityAlertReader::Admin => return Err(StoreError::NotFound("identity alert")),
        };
        let sql = self.backend.sql(&format!(
            "UPDATE identity_alerts SET {column} = COALESCE({column}, {{now}}) \
             WHERE id = $1 AND {owner} = $2"
        ));
        let updated = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(account.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound("identity alert"));
        }
        let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE a.id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        alert_from_row(&row)
    }
}
