//! The health probe: whether the database takes a write now, and (SQLite) whether the file at
//! its path is still the one the store opened.
//!
//! A read is no test: it answers while every write fails (a full disk, a read-only file,
//! connections that cannot start a transaction), and an orchestrator that trusts it keeps a
//! replica that refuses every job. So the probe commits one write transaction, of the same
//! kind as every other (`BEGIN IMMEDIATE` on SQLite), rewriting the single row of
//! `health_probe`.

use std::time::{Duration, Instant};

use crate::error::{Fault, Result};
use crate::store::Store;

/// How long a probe's result is reused by [`Store::health`]: `/healthz` needs no token, and
/// without this every request to it would be a write transaction.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);

impl Store {
    /// Probes the database now: checks that the SQLite file at the store's path is the one it
    /// opened, then commits a write of one row.
    ///
    /// # Errors
    ///
    /// The [`Fault`] found: [`Fault::FileMissing`], [`Fault::FileReplaced`] or
    /// [`Fault::FileUnreadable`] before anything is written, else [`Fault::WriteFailed`].
    pub async fn probe(&self) -> Result<(), Fault> {
        if let Some(file) = &self.file {
            file.check()?;
        }
        let sql = self.backend.sql(
            "INSERT INTO health_probe (id, probed_at) VALUES (1, {now}) \
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        );
        self.transaction(async |tx| {
            sqlx::query(&sql).execute(&mut *tx.inner).await?;
            Ok(())
        })
        .await
        .map_err(|e| Fault::WriteFailed(e.to_string()))
    }

    /// [`Store::probe`], or the result of the last probe when it ended less than
    /// [`PROBE_REUSE`] ago. Concurrent callers that find no recent result each probe.
    ///
    /// # Errors
    ///
    /// As [`Store::probe`].
    pub async fn health(&self) -> Result<(), Fault> {
        let recent = self
            .last_probe
            .lock()
            .ok()
            .and_then(|last| last.clone())
            .filter(|(at, _)| at.elapsed() < PROBE_REUSE);
        if let Some((_, found)) = recent {
            return found;
        }
        let found = self.probe().await;
        if let Ok(mut last) = self.last_probe.lock() {
            *last = Some((Instant::now(), found.clone()));
        }
        found
    }
}
