//! The transparency log in SQL: a [`NodeStore`] over a write transaction and one over a
//! read-only connection, the entry rows, and the helpers the server calls.
//!
//! Invariant: appends take the head row lock before reading anything of the tree (PostgreSQL
//! `SELECT ... FROM log_head ... FOR UPDATE`; SQLite: the transaction is `BEGIN IMMEDIATE`, so
//! it already excludes every other writer), and the entry row, the new subtree hashes and the
//! new head commit together. Two appenders, also in two server processes on one PostgreSQL,
//! therefore queue one behind the other: the log cannot fork, and a rolled-back transaction
//! leaves neither an entry nor a node.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use proctor_attest::log::{self as attest_log, LogError, NodeStore, TreeHead};
use proctor_attest::merkle::{Hash, NodeId};
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Row};

use crate::error::{Result, SignError, StoreError};
use crate::ids::JobId;
use crate::rows::{parse_id, timestamp, to_i64, to_u64};
use crate::store::{Backend, Store, Tx};
use crate::text_enum::text_enum;
use crate::time::Timestamp;

/// What a log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A job's pre-registration, written when it was accepted.
    Accepted,
    /// A job's signed result (whatever its status), written when it ended.
    Result,
}

text_enum!(
    EntryKind,
    "entry kind",
    Accepted = "accepted",
    Result = "result"
);

/// A stored log entry.
#[derive(Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its index in the log.
    pub index: u64,
    /// What it records.
    pub kind: EntryKind,
    /// The job it is about.
    pub job: JobId,
    /// The DSSE envelope, byte for byte the leaf.
    pub envelope: Vec<u8>,
    /// When it was appended.
    pub created_at: Timestamp,
}

impl fmt::Debug for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogEntry")
            .field("index", &self.index)
            .field("kind", &self.kind)
            .field("job", &self.job)
            .field("envelope_bytes", &self.envelope.len())
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Where an entry being appended will go: what the signer writes into its statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSlot {
    /// The index the entry will take.
    pub index: u64,
    /// The database's clock while the head lock is held (the stored time of the entry, and of
    /// the job's end for a result).
    pub at: Timestamp,
}

/// Why the SQL node store failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlLogError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A node the tree should have is missing, or a stored value does not decode.
    #[error("corrupt log: {0}")]
    Corrupt(&'static str),
}

impl From<LogError<SqlLogError>> for StoreError {
    fn from(err: LogError<SqlLogError>) -> StoreError {
        match err {
            LogError::Store(SqlLogError::Database(e)) => StoreError::Database(e),
            LogError::Store(SqlLogError::Corrupt(what)) => StoreError::Corrupt(what),
            LogError::BeyondHead { .. } => StoreError::NotFound("tree size"),
            LogError::Plan(proctor_attest::plan::PlanError::LeafOutOfRange { .. }) => {
                StoreError::NotFound("log entry")
            }
            LogError::Plan(proctor_attest::plan::PlanError::SizesOutOfOrder { .. }) => {
                StoreError::Invalid("tree sizes (old > new)")
            }
            LogError::Plan(_) => StoreError::Corrupt("log plan"),
            LogError::UnexpectedIndex { .. } => {
                StoreError::Corrupt("log head moved under its lock")
            }
        }
    }
}

/// The log's size; with `lock`, also the head row lock (see the module docs).
async fn head_size(conn: &mut AnyConnection, lock: Option<Backend>) -> Result<u64, SqlLogError> {
    let sql = match lock {
        Some(backend) => backend.sql("SELECT size FROM log_head WHERE id = 1 {for_update}"),
        None => "SELECT size FROM log_head WHERE id = 1".to_owned(),
    };
    let size: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *conn).await?;
    u64::try_from(size).map_err(|_| SqlLogError::Corrupt("log size"))
}

async fn read_nodes(conn: &mut AnyConnection, ids: &[NodeId]) -> Result<Vec<Hash>, SqlLogError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One query for the whole batch (at most ~128 ids: the plans are logarithmic).
    let mut sql = String::from("SELECT level, idx, hash FROM log_nodes WHERE ");
    for i in 0..ids.len() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!(
            "(level = ${} AND idx = ${})",
            2 * i + 1,
            2 * i + 2
        ));
    }
    let mut query = sqlx::query(&sql);
    for id in ids {
        let index = i64::try_from(id.index).map_err(|_| SqlLogError::Corrupt("node index"))?;
        query = query.bind(i64::from(id.level)).bind(index);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let level: i64 = row.try_get("level")?;
        let idx: i64 = row.try_get("idx")?;
        let hash: Vec<u8> = row.try_get("hash")?;
        let hash: Hash = hash
            .try_into()
            .map_err(|_| SqlLogError::Corrupt("node hash length"))?;
        found.insert((level, idx), hash);
    }
    ids.iter()
        .map(|id| {
            let index = i64::try_from(id.index).map_err(|_| SqlLogError::Corrupt("node index"))?;
            found
                .get(&(i64::from(id.level), index))
                .copied()
                .ok_or(SqlLogError::Corrupt("missing subtree node"))
        })
        .collect()
}

#[async_trait]
impl NodeStore for Tx {
    type Error = SqlLogError;

    /// Takes the head row lock (PostgreSQL) and returns the size.
    async fn size(&mut self) -> Result<u64, SqlLogError> {
        head_size(&mut self.inner, Some(self.backend)).await
    }

    async fn nodes(&mut self, ids: &[NodeId]) -> Result<Vec<Hash>, SqlLogError> {
        read_nodes(&mut self.inner, ids).await
    }

    async fn store(&mut self, head: TreeHead, nodes: &[(NodeId, Hash)]) -> Result<(), SqlLogError> {
        // Bounded batches keep the parameter count far below every database's limit.
        for chunk in nodes.chunks(256) {
            let mut sql = String::from("INSERT INTO log_nodes (level, idx, hash) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3));
            }
            let mut query = sqlx::query(&sql);
            for (id, hash) in chunk {
                let index =
                    i64::try_from(id.index).map_err(|_| SqlLogError::Corrupt("node index"))?;
                query = query
                    .bind(i64::from(id.level))
                    .bind(index)
                    .bind(hash.to_vec());
            }
            query.execute(&mut *self.inner).await?;
        }
        let size = i64::try_from(head.size).map_err(|_| SqlLogError::Corrupt("log size"))?;
        sqlx::query("UPDATE log_head SET size = $1, root = $2 WHERE id = 1")
            .bind(size)
            .bind(head.root.to_vec())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }
}

/// A read-only view of the log on one pooled connection, for proofs and heads.
///
/// Takes no lock: stored nodes never change and the size only grows, so a size read first
/// and the nodes read after it always fit together.
pub struct LogReader {
    conn: PoolConnection<Any>,
}

impl fmt::Debug for LogReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader").finish_non_exhaustive()
    }
}

#[async_trait]
impl NodeStore for LogReader {
    type Error = SqlLogError;

    async fn size(&mut self) -> Result<u64, SqlLogError> {
        head_size(&mut self.conn, None).await
    }

    async fn nodes(&mut self, ids: &[NodeId]) -> Result<Vec<Hash>, SqlLogError> {
        read_nodes(&mut self.conn, ids).await
    }

    /// Refused: a reader never writes.
    async fn store(
        &mut self,
        _head: TreeHead,
        _nodes: &[(NodeId, Hash)],
    ) -> Result<(), SqlLogError> {
        Err(SqlLogError::Corrupt("write through a read-only log view"))
    }
}

impl Tx {
    /// Appends one entry inside this transaction, which the caller commits.
    ///
    /// Takes the head lock, reads the database clock, calls `sign` with the [`LogSlot`] the
    /// entry will take (so the signed statement can hold its own index while no other append
    /// can take it), appends the returned envelope bytes as the leaf and inserts the entry
    /// row. Call it after the job row is written or locked (lock order: job, then log head).
    ///
    /// # Errors
    ///
    /// [`StoreError::Sign`] when `sign` fails; [`StoreError::Conflict`] when the job has an
    /// entry of this kind already; [`StoreError::NotFound`] for an unknown job;
    /// [`StoreError::Database`]. On any error the caller must drop or roll back the
    /// transaction.
    pub async fn append_entry<F>(
        &mut self,
        kind: EntryKind,
        job: JobId,
        sign: F,
    ) -> Result<LogEntry>
    where
        F: FnOnce(LogSlot) -> Result<Vec<u8>, SignError>,
    {
        let size = NodeStore::size(self).await.map_err(LogError::Store)?;
        let at = self.now().await?;
        let envelope = sign(LogSlot { index: size, at }).map_err(StoreError::Sign)?;
        let appended = attest_log::append_at(self, size, &envelope).await?;
        let sql = "INSERT INTO log_entries (log_index, kind, job_id, envelope, created_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        sqlx::query(sql)
            .bind(to_i64(appended.index, "log index")?)
            .bind(kind.as_str())
            .bind(job.to_string())
            .bind(envelope.as_slice())
            .bind(at.0)
            .execute(&mut *self.inner)
            .await
            .map_err(|e| crate::error::classify(e, "log entry for this job", "job"))?;
        Ok(LogEntry {
            index: appended.index,
            kind,
            job,
            envelope,
            created_at: at,
        })
    }
}

pub(crate) const ENTRY_COLUMNS: &str = "log_index, kind, job_id, envelope, created_at";

pub(crate) fn entry_from_row(row: &AnyRow) -> Result<LogEntry> {
    let kind: String = row.try_get("kind")?;
    Ok(LogEntry {
        index: to_u64(row.try_get("log_index")?, "log index")?,
        kind: EntryKind::from_str(&kind).map_err(|_| StoreError::Corrupt("entry kind"))?,
        job: parse_id(row, "job_id")?,
        envelope: row.try_get("envelope")?,
        created_at: timestamp(row, "created_at")?,
    })
}

impl Store {
    /// A read-only [`NodeStore`] for `proctor_attest::log` functions.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when no connection can be had.
    pub async fn log_reader(&self) -> Result<LogReader> {
        Ok(LogReader {
            conn: self.pool.acquire().await?,
        })
    }

    /// The current head: size and root hash (for a checkpoint).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn tree_head(&self) -> Result<TreeHead> {
        let mut reader = self.log_reader().await?;
        Ok(attest_log::tree_head(&mut reader).await?)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries, from the leaf up.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an index or size beyond the log.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        let mut reader = self.log_reader().await?;
        Ok(attest_log::inclusion_proof(&mut reader, index, size).await?)
    }

    /// The consistency proof from the tree of `old` entries to the tree of `new` entries.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for a size beyond the log; [`StoreError::Invalid`] when
    /// `old > new`.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        let mut reader = self.log_reader().await?;
        Ok(attest_log::consistency_proof(&mut reader, old, new).await?)
    }

    /// The root hash when the log had `size` entries.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for a size beyond the log.
    pub async fn root_at(&self, size: u64) -> Result<Hash> {
        let mut reader = self.log_reader().await?;
        Ok(attest_log::root_at(&mut reader, size).await?)
    }

    /// The stored subtree hashes at tree `level`, nodes `start .. end`, in order: what a
    /// tlog tile holds (`proctor_attest::tiles`), in one range read of the primary key.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when a node in the range is not stored (beyond the log);
    /// [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn log_nodes(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>> {
        let sql = "SELECT idx, hash FROM log_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 \
                   ORDER BY idx";
        let beyond = |_| StoreError::NotFound("log node");
        let rows = sqlx::query(sql)
            .bind(i64::from(level))
            .bind(to_i64(start, "node index").map_err(beyond)?)
            .bind(to_i64(end, "node index").map_err(beyond)?)
            .fetch_all(&self.pool)
            .await?;
        let mut hashes = Vec::with_capacity(rows.len());
        for (expected, row) in (start..).zip(&rows) {
            if to_u64(row.try_get("idx")?, "node index")? != expected {
                return Err(StoreError::NotFound("log node"));
            }
            let hash: Vec<u8> = row.try_get("hash")?;
            hashes.push(
                hash.try_into()
                    .map_err(|_| StoreError::Corrupt("node hash length"))?,
            );
        }
        if hashes.len() as u64 != end.saturating_sub(start) {
            return Err(StoreError::NotFound("log node"));
        }
        Ok(hashes)
    }

    /// The entry at `index`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn log_entry(&self, index: u64) -> Result<LogEntry> {
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM log_entries WHERE log_index = $1");
        let row = sqlx::query(&sql)
            .bind(to_i64(index, "log index").map_err(|_| StoreError::NotFound("log entry"))?)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("log entry"))?;
        entry_from_row(&row)
    }

    /// Up to `limit` entries from index `start` on, in order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn log_entries(&self, start: u64, limit: u32) -> Result<Vec<LogEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM log_entries WHERE log_index >= $1 \
             ORDER BY log_index LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(to_i64(start, "log index")?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// A job's entry of the given kind, if it has one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn job_entry(&self, job: JobId, kind: EntryKind) -> Result<Option<LogEntry>> {
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM log_entries WHERE job_id = $1 AND kind = $2");
        let row = sqlx::query(&sql)
            .bind(job.to_string())
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(entry_from_row).transpose()
    }
}
