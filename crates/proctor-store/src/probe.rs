//! The health probe: whether the database takes a write now, and (SQLite) whether the file at
//! its path is still the one the store opened.
//!
//! A read is no test: it answers while every write fails (a full disk, a read-only file,
//! connections that cannot start a transaction), and an orchestrator that trusts it keeps a
//! replica that refuses every job. So the probe commits one write transaction, of the same
//! kind as every other (`BEGIN IMMEDIATE` on SQLite), rewriting the single row of
//! `health_probe`.
//!
//! A small write can still fit where the service's own do not (SQLite rewrites WAL frames it
//! already holds on disk while a job's rows need new pages), so the probe also reports a
//! storage failure of any real write transaction in the last [`STORAGE_FAULT_FRESH`].

use std::time::{Duration, Instant};

use crate::error::{Fault, Result, StoreError};
use crate::store::{Backend, Store};

/// How long a real write's storage failure counts against health when nothing has committed
/// since: while the service is used on a full disk its writes keep it fresh; once they stop,
/// the probe's own write decides.
pub const STORAGE_FAULT_FRESH: Duration = Duration::from_secs(5);

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
        self.unnoted_transaction(async |tx| {
            sqlx::query(&sql).execute(&mut *tx.inner).await?;
            Ok(())
        })
        .await
        .map_err(|e| Fault::WriteFailed(e.to_string()))?;
        let recent = self
            .storage_fault
            .lock()
            .ok()
            .and_then(|fault| fault.clone())
            .filter(|(at, _)| at.elapsed() < STORAGE_FAULT_FRESH);
        match recent {
            Some((_, error)) => Err(Fault::WriteFailed(error)),
            None => Ok(()),
        }
    }

    /// Notes a write transaction's storage failure (full, read-only, I/O) for the probe.
    /// A commit does not clear it: one that wrote nothing new (an idle worker's empty claim)
    /// commits on a full disk too. Other errors (refusals, conflicts) say nothing about the
    /// storage.
    pub(crate) fn note_write<T>(&self, result: &Result<T>) {
        if let Err(StoreError::Database(err)) = result
            && storage_failure(self.backend, err)
            && let Ok(mut fault) = self.storage_fault.lock()
        {
            *fault = Some((Instant::now(), err.to_string()));
        }
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

/// Whether `err` says the database could not store what it was given.
fn storage_failure(backend: Backend, err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return matches!(err, sqlx::Error::Io(_));
    };
    let code = db.code().unwrap_or_default();
    match backend {
        // Primary result codes (extended codes keep them in the low byte): READONLY 8,
        // IOERR 10, FULL 13, CANTOPEN 14.
        Backend::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 8 | 10 | 13 | 14)),
        // SQLSTATE classes 53 (insufficient resources: disk_full 53100) and 58 (system
        // error: io_error 58030), and read_only_sql_transaction 25006.
        Backend::Postgres => code.starts_with("53") || code.starts_with("58") || code == "25006",
    }
}
