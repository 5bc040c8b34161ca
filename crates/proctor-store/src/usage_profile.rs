//! A grant's usage profile in the database: one row per window of its queries
//! ([`proctor_core::usage_profile::WindowProfile`]: counts, a size histogram, a sketch of keyed
//! prompt hashes, a summary of keyed template hashes; never text).
//!
//! Written with the metering batches ([`Store::meter_with_usage`]), in the transaction that
//! holds the grant's row lock, so the profiles of all the grant's jobs on all servers merge into
//! one row per window without a race and without a write of their own on the query path.
//! Read by the usage monitor, which deletes windows older than the grant's history.

use proctor_core::usage_profile::{DistinctSketch, TemplateSummary, WindowProfile};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::blocks::{Step, Stepped};
use crate::error::{Result, StoreError};
use crate::ids::GrantId;
use crate::rows::{to_i64, to_u64};
use crate::store::{Store, Tx};
use crate::time::Timestamp;

/// One window of time: its length and its start (a multiple of its length since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageWindow {
    /// Its length in seconds.
    pub window_s: u64,
    /// Its start.
    pub start: Timestamp,
}

impl UsageWindow {
    /// The window of `window_s` seconds that holds `at`.
    pub fn holding(window_s: u64, at: Timestamp) -> UsageWindow {
        let len = i64::try_from(window_s.max(1).saturating_mul(1000)).unwrap_or(i64::MAX);
        UsageWindow {
            window_s,
            start: Timestamp(at.0.div_euclid(len) * len),
        }
    }

    /// Its end (exclusive).
    pub fn end(&self) -> Timestamp {
        let len = i64::try_from(self.window_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        Timestamp(self.start.0.saturating_add(len))
    }
}

fn profile_from_row(row: &AnyRow) -> Result<WindowProfile> {
    let sizes: String = row.try_get("sizes")?;
    let prompts: String = row.try_get("prompts")?;
    let templates: String = row.try_get("templates")?;
    Ok(WindowProfile {
        queries: to_u64(row.try_get("queries")?, "usage_windows.queries")?,
        sizes: WindowProfile::parse_sizes(&sizes)
            .ok_or(StoreError::Corrupt("usage_windows.sizes"))?,
        reasoning: to_u64(row.try_get("reasoning")?, "usage_windows.reasoning")?,
        prompts: DistinctSketch::from_hex(&prompts)
            .ok_or(StoreError::Corrupt("usage_windows.prompts"))?,
        templates: TemplateSummary::from_text(&templates)
            .ok_or(StoreError::Corrupt("usage_windows.templates"))?,
    })
}

impl Tx {
    /// Adds `usage` to the grant's windows (the caller holds the grant's lock).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a stored window that does not decode;
    /// [`StoreError::Invalid`] for counts beyond 2^63; [`StoreError::Database`].
    pub(crate) async fn add_usage(
        &mut self,
        grant: GrantId,
        usage: &[(UsageWindow, WindowProfile)],
    ) -> Result<()> {
        for (window, profile) in usage {
            if profile.is_empty() {
                continue;
            }
            let window_s = to_i64(window.window_s, "window length")?;
            let stored = sqlx::query(
                "SELECT queries, sizes, reasoning, prompts, templates FROM usage_windows \
                 WHERE grant_id = $1 AND window_s = $2 AND window_start = $3",
            )
            .bind(grant.to_string())
            .bind(window_s)
            .bind(window.start.0)
            .fetch_optional(&mut *self.inner)
            .await?;
            let mut merged = match &stored {
                Some(row) => profile_from_row(row)?,
                None => WindowProfile::default(),
            };
            merged.merge(profile);
            let sql = self.backend.sql(
                "INSERT INTO usage_windows (grant_id, window_s, window_start, queries, sizes, \
                 reasoning, prompts, templates, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {now}) \
                 ON CONFLICT (grant_id, window_s, window_start) DO UPDATE SET \
                 queries = excluded.queries, sizes = excluded.sizes, \
                 reasoning = excluded.reasoning, prompts = excluded.prompts, \
                 templates = excluded.templates, updated_at = excluded.updated_at",
            );
            sqlx::query(&sql)
                .bind(grant.to_string())
                .bind(window_s)
                .bind(window.start.0)
                .bind(to_i64(merged.queries, "queries")?)
                .bind(merged.sizes_text())
                .bind(to_i64(merged.reasoning, "queries")?)
                .bind(merged.prompts.to_hex())
                .bind(merged.templates.to_text())
                .execute(&mut *self.inner)
                .await?;
        }
        Ok(())
    }
}

impl Store {
    /// [`Store::meter`], adding `usage` to the grant's usage profile in the same transaction.
    ///
    /// # Errors
    ///
    /// As [`Store::meter`]; [`StoreError::Corrupt`] for a stored window that does not decode.
    pub async fn meter_with_usage(
        &self,
        step: Step<'_>,
        usage: &[(UsageWindow, WindowProfile)],
    ) -> Result<Stepped> {
        self.transaction(async |tx| {
            let stepped = crate::blocks::meter_in(tx, step).await?;
            tx.add_usage(step.grant, usage).await?;
            Ok(stepped)
        })
        .await
    }

    /// The grant's windows of `window_s` seconds that start at or after `since`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`], [`StoreError::Database`].
    pub async fn usage_windows(
        &self,
        grant: GrantId,
        window_s: u64,
        since: Timestamp,
    ) -> Result<Vec<(UsageWindow, WindowProfile)>> {
        let rows = sqlx::query(
            "SELECT window_start, queries, sizes, reasoning, prompts, templates \
             FROM usage_windows WHERE grant_id = $1 AND window_s = $2 AND window_start >= $3 \
             ORDER BY window_start",
        )
        .bind(grant.to_string())
        .bind(to_i64(window_s, "window length")?)
        .bind(since.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let window = UsageWindow {
                    window_s,
                    start: Timestamp(row.try_get("window_start")?),
                };
                Ok((window, profile_from_row(row)?))
            })
            .collect()
    }

    /// Deletes the grant's windows that start before `before`, and those of other lengths
    /// than `window_s` (a changed setting starts a new history); returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn forget_usage(
        &self,
        grant: GrantId,
        window_s: u64,
        before: Timestamp,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM usage_windows WHERE grant_id = $1 \
             AND (window_start < $2 OR window_s <> $3)",
        )
        .bind(grant.to_string())
        .bind(before.0)
        .bind(to_i64(window_s, "window length")?)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
