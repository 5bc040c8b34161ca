//! Model identity canaries: each model's fingerprint (its sealed probe secret and what
//! registration measured) and the history of its identity checks, with their figures only.
//!
//! No probe text and no model answer is ever stored: a fingerprint holds candidate indexes and
//! keyed hashes of answers ([`proctor_core::identity_probes`]), a check its counts, p-value
//! and verdict. The secret is stored as the bytes the server sealed, like a credential.
//!
//! A fingerprint is measured by one server at a time: [`Store::claim_fingerprint`] takes a
//! model's row with a conditional update (a claim older than the caller's `stale` is taken
//! over, so a server that died mid-measurement does not leave the model `fingerprinting`
//! forever), and [`Store::finish_fingerprint`] writes the result only while the claim holds.
//! A check whose verdict is `changed` raises its alert in the same transaction
//! (`Tx::raise_check_alert`, in the identity alerts module).

use std::time::Duration;

use proctor_core::IdentityVerdict;
use proctor_core::identity::{IdentityTest, ModelIdentity};
use proctor_core::identity_probes::{Fingerprint, Probe};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError, classify};
use crate::ids::{JobId, ModelId};
use crate::rows::{millis, opt_text, opt_timestamp, opt_u64, parse_id, timestamp, to_i64, to_u64};
use crate::store::Store;
use crate::text_enum::text_enum;
use crate::time::Timestamp;

/// Where a model's fingerprint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintState {
    /// Being measured (or waiting for a server to measure it).
    Fingerprinting,
    /// Measured: checks run against it.
    Ready,
    /// Measured, but too few probes were stable, or the serving noise is above the test's
    /// null rate: never checked.
    Unstable,
    /// A query failed while measuring; measured again later.
    Failed,
}

text_enum!(
    FingerprintState,
    "fingerprint state",
    Fingerprinting = "fingerprinting",
    Ready = "ready",
    Unstable = "unstable",
    Failed = "failed",
);

/// When a check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Right before a job's first sample.
    BeforeJob,
    /// Right after a job's last sample.
    AfterJob,
    /// On the service's schedule, outside any job.
    Scheduled,
}

text_enum!(
    CheckKind,
    "identity check kind",
    BeforeJob = "before-job",
    AfterJob = "after-job",
    Scheduled = "scheduled",
);

/// A model's fingerprint row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFingerprint {
    /// The model.
    pub model: ModelId,
    /// Where it stands.
    pub state: FingerprintState,
    /// The probe secret, as the server sealed it.
    pub sealed_secret: Vec<u8>,
    /// What registration measured, once it did.
    pub fingerprint: Option<Fingerprint>,
    /// Queries the measurements sent, failed attempts included.
    pub queries: u64,
    /// When the model was enrolled.
    pub created_at: Timestamp,
    /// When the last measurement ended.
    pub measured_at: Option<Timestamp>,
}

/// One identity check as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityCheck {
    /// The check's id.
    pub id: String,
    /// The model checked.
    pub model: ModelId,
    /// The job it was run for, if any.
    pub job: Option<JobId>,
    /// When it ran.
    pub kind: CheckKind,
    /// Its figures.
    pub identity: ModelIdentity,
    /// When it was recorded.
    pub created_at: Timestamp,
}

const FINGERPRINT_COLUMNS: &str = "model_id, state, secret, probes, border_found, null_queries, \
     null_mismatches, queries, created_at, measured_at";
const CHECK_COLUMNS: &str =
    "id, model_id, job_id, kind, queries, mismatches, p_value_e4, verdict, created_at";

fn fingerprint_from_row(row: &AnyRow) -> Result<StoredFingerprint> {
    let probes: Option<String> = row.try_get("probes")?;
    let fingerprint = match probes {
        Some(json) => Some(Fingerprint {
            probes: decode_probes(&json).ok_or(StoreError::Corrupt("probes"))?,
            border_found: opt_u64(row, "border_found")?.unwrap_or(0),
            null_queries: opt_u64(row, "null_queries")?.unwrap_or(0),
            null_mismatches: opt_u64(row, "null_mismatches")?.unwrap_or(0),
            queries: to_u64(row.try_get("queries")?, "queries")?,
        }),
        None => None,
    };
    Ok(StoredFingerprint {
        model: parse_id(row, "model_id")?,
        state: row
            .try_get::<String, _>("state")?
            .parse()
            .map_err(|_| StoreError::Corrupt("state"))?,
        sealed_secret: row.try_get("secret")?,
        fingerprint,
        queries: to_u64(row.try_get("queries")?, "queries")?,
        created_at: timestamp(row, "created_at")?,
        measured_at: opt_timestamp(row, "measured_at")?,
    })
}

fn check_from_row(row: &AnyRow) -> Result<IdentityCheck> {
    let verdict: String = row.try_get("verdict")?;
    let p_value = opt_u64(row, "p_value_e4")?.map(|e4| e4 as f64 / 10_000.0);
    Ok(IdentityCheck {
        id: row.try_get("id")?,
        model: parse_id(row, "model_id")?,
        job: opt_text(row, "job_id")?,
        kind: row
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(|_| StoreError::Corrupt("kind"))?,
        identity: ModelIdentity {
            test: IdentityTest::BorderBinomial,
            queries: to_u64(row.try_get("queries")?, "queries")?,
            mismatches: to_u64(row.try_get("mismatches")?, "mismatches")?,
            p_value,
            verdict: IdentityVerdict::of_text(&verdict).ok_or(StoreError::Corrupt("verdict"))?,
        },
        created_at: timestamp(row, "created_at")?,
    })
}

/// Probes as stored: `candidate:b|s:hash` per probe (`b` for a border probe), `;` between.
fn encode_probes(probes: &[Probe]) -> String {
    probes
        .iter()
        .map(|p| {
            let kind = if p.border { "b" } else { "s" };
            format!("{}:{kind}:{}", p.candidate, p.answer)
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn decode_probes(text: &str) -> Option<Vec<Probe>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(';')
        .map(|item| {
            let mut parts = item.split(':');
            let candidate = parts.next()?.parse().ok()?;
            let border = match parts.next()? {
                "b" => true,
                "s" => false,
                _ => return None,
            };
            let answer = parts.next()?;
            let hex_ok = answer.len() == 64 && answer.bytes().all(|b| b.is_ascii_hexdigit());
            (hex_ok && parts.next().is_none()).then(|| Probe {
                candidate,
                answer: answer.to_owned(),
                border,
            })
        })
        .collect()
}

impl Store {
    /// Enrolls `model` for identity checks with its sealed probe secret: its fingerprint is
    /// `fingerprinting` until a server measures it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the model is enrolled already; [`StoreError::Database`].
    pub async fn enroll_fingerprint(&self, model: ModelId, sealed_secret: &[u8]) -> Result<()> {
        let sql = self.backend.sql(
            "INSERT INTO model_fingerprints (model_id, state, secret, queries, created_at) \
             VALUES ($1, 'fingerprinting', $2, 0, {now}) ON CONFLICT (model_id) DO NOTHING",
        );
        let inserted = sqlx::query(&sql)
            .bind(model.to_string())
            .bind(sealed_secret)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict("model fingerprint"));
        }
        Ok(())
    }

    /// Claims a fingerprint to measure for `worker`: `only` when given, else any. Takes one
    /// that is `fingerprinting` and unclaimed or claimed longer than `stale` ago, or `failed`
    /// longer than `stale` ago. Returns the model and its sealed secret.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn claim_fingerprint(
        &self,
        worker: &str,
        only: Option<ModelId>,
        stale: Duration,
    ) -> Result<Option<(ModelId, Vec<u8>)>> {
        let claimable = "((state = 'fingerprinting' AND (claimed_at IS NULL OR claimed_at < {now} - $2)) \
             OR (state = 'failed' AND measured_at < {now} - $2))";
        let which = if only.is_some() {
            "model_id = $3"
        } else {
            "TRUE"
        };
        // The condition is repeated outside the subquery: on PostgreSQL, a row another server
        // claimed meanwhile fails it when the update re-reads the row under its lock.
        let sql = self.backend.sql(&format!(
            "UPDATE model_fingerprints SET state = 'fingerprinting', claimed_by = $1, \
             claimed_at = {{now}} \
             WHERE model_id = (SELECT model_id FROM model_fingerprints \
                               WHERE {claimable} AND {which} ORDER BY created_at LIMIT 1) \
             AND {claimable} RETURNING model_id, secret"
        ));
        let mut query = sqlx::query(&sql).bind(worker).bind(millis(stale)?);
        if let Some(model) = only {
            query = query.bind(model.to_string());
        }
        let Some(row) = query.fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        Ok(Some((parse_id(&row, "model_id")?, row.try_get("secret")?)))
    }

    /// Writes the end of `worker`'s measurement of `model`'s fingerprint: `state`, with what
    /// it measured (`None` when a query failed), adding `queries` to the model's count.
    /// Returns whether the claim still held (else nothing was written).
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a state that is not an end; [`StoreError::Database`].
    pub async fn finish_fingerprint(
        &self,
        model: ModelId,
        worker: &str,
        state: FingerprintState,
        measured: Option<&Fingerprint>,
        queries: u64,
    ) -> Result<bool> {
        if state == FingerprintState::Fingerprinting {
            return Err(StoreError::Invalid("fingerprint state"));
        }
        let probes = measured.map(|f| encode_probes(&f.probes));
        let figure =
            |f: fn(&Fingerprint) -> u64| measured.map(|m| to_i64(f(m), "count")).transpose();
        let sql = self.backend.sql(
            "UPDATE model_fingerprints SET state = $1, probes = $2, border_found = $3, \
             null_queries = $4, null_mismatches = $5, queries = queries + $6, \
             claimed_by = NULL, claimed_at = NULL, measured_at = {now} \
             WHERE model_id = $7 AND claimed_by = $8 AND state = 'fingerprinting'",
        );
        let updated = sqlx::query(&sql)
            .bind(state.as_str())
            .bind(probes)
            .bind(figure(|f| f.border_found)?)
            .bind(figure(|f| f.null_queries)?)
            .bind(figure(|f| f.null_mismatches)?)
            .bind(to_i64(queries, "queries")?)
            .bind(model.to_string())
            .bind(worker)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(updated == 1)
    }

    /// `model`'s fingerprint row, if it is enrolled.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a row that does not decode; [`StoreError::Database`].
    pub async fn fingerprint(&self, model: ModelId) -> Result<Option<StoredFingerprint>> {
        let sql =
            format!("SELECT {FINGERPRINT_COLUMNS} FROM model_fingerprints WHERE model_id = $1");
        sqlx::query(&sql)
            .bind(model.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(fingerprint_from_row)
            .transpose()
    }

    /// Records a check of `model` (for `job`, if any) with its figures.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown model or job; [`StoreError::Database`].
    pub async fn record_identity_check(
        &self,
        model: ModelId,
        job: Option<JobId>,
        kind: CheckKind,
        identity: &ModelIdentity,
    ) -> Result<IdentityCheck> {
        let sql = self.backend.sql(&format!(
            "INSERT INTO identity_checks ({CHECK_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {{now}}) RETURNING {CHECK_COLUMNS}"
        ));
        // On the test's grid, so the integer is exact.
        let p_e4 = identity.p_value.map(|p| (p * 10_000.0).round() as i64);
        self.transaction(async |tx| {
            let row = sqlx::query(&sql)
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(model.to_string())
                .bind(job.map(|j| j.to_string()))
                .bind(kind.as_str())
                .bind(to_i64(identity.queries, "queries")?)
                .bind(to_i64(identity.mismatches, "mismatches")?)
                .bind(p_e4)
                .bind(identity.verdict.as_str())
                .fetch_one(&mut *tx.inner)
                .await
                .map_err(|e| classify(e, "identity check", "model or job"))?;
            let check = check_from_row(&row)?;
            tx.raise_check_alert(&check).await?;
            Ok(check)
        })
        .await
    }

    /// `model`'s checks, newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn identity_checks(&self, model: ModelId, limit: u32) -> Result<Vec<IdentityCheck>> {
        let sql = format!(
            "SELECT {CHECK_COLUMNS} FROM identity_checks WHERE model_id = $1 \
             ORDER BY created_at DESC, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(model.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(check_from_row).collect()
    }

    /// Models with a ready fingerprint and no check, nor measurement, in the last `every`:
    /// due a scheduled check. At most `limit`, the longest-unchecked first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn models_due_for_identity_check(
        &self,
        every: Duration,
        limit: u32,
    ) -> Result<Vec<ModelId>> {
        let sql = self.backend.sql(
            "SELECT f.model_id, COALESCE(MAX(c.created_at), f.measured_at) AS last_at \
             FROM model_fingerprints f LEFT JOIN identity_checks c ON c.model_id = f.model_id \
             WHERE f.state = 'ready' GROUP BY f.model_id, f.measured_at \
             HAVING COALESCE(MAX(c.created_at), f.measured_at) < {now} - $1 \
             ORDER BY last_at LIMIT $2",
        );
        let rows = sqlx::query(&sql)
            .bind(millis(every)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| parse_id(row, "model_id")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_read_back_as_they_were_written() {
        let probes = vec![
            Probe {
                candidate: 3,
                answer: "ab".repeat(32),
                border: true,
            },
            Probe {
                candidate: 60,
                answer: "0f".repeat(32),
                border: false,
            },
        ];
        assert_eq!(decode_probes(&encode_probes(&probes)), Some(probes));
        assert_eq!(decode_probes(""), Some(Vec::new()));
        assert_eq!(decode_probes("3:x:00"), None);
    }
}
