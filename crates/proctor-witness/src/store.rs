//! The witness's state in SQLite: each log's latest cosigned checkpoint, and the evidence of
//! split views.
//!
//! The latest checkpoint of a log only ever changes by a compare-and-swap on the (size, root)
//! the witness verified the new one against ([`WitnessStore::swap`]): two requests verified
//! against the same state cannot both win, so a slower request for a smaller tree can never
//! roll the stored size back (the race the spec describes). The loser re-reads and is
//! answered as if it had come second.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use proctor_attest::Hash;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, sqlite::SqliteRow};

use crate::evidence::{Evidence, Reason};

/// Most evidence rows kept per log: only a log's own signed checkpoints get there, but a log
/// that signs forks by the thousand must not fill the witness's disk.
pub const MAX_EVIDENCE_PER_LOG: i64 = 1_000;

/// Why the witness's database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be created.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not decode (a foreign or damaged file).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
}

/// A log's latest cosigned checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// Its size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
    /// The note: the checkpoint text, the log's verified signature lines and the witness's
    /// cosignature line.
    pub note: String,
    /// The cosignature's timestamp (seconds since the Unix epoch).
    pub cosigned_at: u64,
}

/// The witness's database.
#[derive(Debug, Clone)]
pub struct WitnessStore {
    pool: SqlitePool,
}

fn to_i64(n: u64) -> i64 {
    // Sizes are checked against i64::MAX before they get here ([`crate::witness`]).
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(what))
}

/// Lowercase hex SHA-256 of an origin: its monitoring path element.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        origin.as_bytes(),
    ))
}

impl WitnessStore {
    /// Opens (creating it, readable by its owner only, when absent) the database at `path` and
    /// applies the schema.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn open(path: &Path) -> Result<WitnessStore, StoreError> {
        create_private(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(WitnessStore { pool })
    }

    /// The latest cosigned checkpoint of `origin`, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn latest(&self, origin: &str) -> Result<Option<Latest>, StoreError> {
        let row = sqlx::query("SELECT size, root, note, cosigned_at FROM logs WHERE origin = ?")
            .bind(origin)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| latest_from_row(&row)).transpose()
    }

    /// The latest cosigned note of the log whose origin hashes to `hash` (lowercase hex).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn latest_note_by_hash(&self, hash: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT note FROM logs WHERE origin_hash = ?")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Replaces the latest checkpoint of `origin` with `new` if it still is `expected`
    /// (`None`: the witness holds none): true when it did.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn swap(
        &self,
        origin: &str,
        expected: Option<(u64, Hash)>,
        new: &Latest,
    ) -> Result<bool, StoreError> {
        let done = match expected {
            None => {
                sqlx::query(
                    "INSERT INTO logs (origin, origin_hash, size, root, note, cosigned_at) \
                     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING",
                )
                .bind(origin)
                .bind(origin_hash(origin))
                .bind(to_i64(new.size))
                .bind(new.root.as_slice())
                .bind(&new.note)
                .bind(to_i64(new.cosigned_at))
                .execute(&self.pool)
                .await?
            }
            Some((size, root)) => {
                sqlx::query(
                    "UPDATE logs SET size = ?, root = ?, note = ?, cosigned_at = ? \
                     WHERE origin = ? AND size = ? AND root = ?",
                )
                .bind(to_i64(new.size))
                .bind(new.root.as_slice())
                .bind(&new.note)
                .bind(to_i64(new.cosigned_at))
                .bind(origin)
                .bind(to_i64(size))
                .bind(root.as_slice())
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// Keeps `evidence`: false when it was kept before (the same refused checkpoint) or the
    /// log's evidence is full ([`MAX_EVIDENCE_PER_LOG`]).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn keep_evidence(&self, evidence: &Evidence) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO evidence (origin, reason, cosigned, refused, request, received_at) \
             SELECT ?, ?, ?, ?, ?, ? \
             WHERE (SELECT COUNT(*) FROM evidence WHERE origin = ?) < ? \
             ON CONFLICT (origin, refused) DO NOTHING",
        )
        .bind(&evidence.origin)
        .bind(evidence.reason.as_str())
        .bind(&evidence.cosigned)
        .bind(&evidence.refused)
        .bind(&evidence.request)
        .bind(to_i64(evidence.received_at))
        .bind(&evidence.origin)
        .bind(MAX_EVIDENCE_PER_LOG)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The evidence kept, newest first, at most `limit` rows.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn evidence(&self, limit: u32) -> Result<Vec<Evidence>, StoreError> {
        let rows = sqlx::query(
            "SELECT origin, reason, cosigned, refused, request, received_at FROM evidence \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let reason: String = row.try_get("reason")?;
                Ok(Evidence {
                    origin: row.try_get("origin")?,
                    reason: Reason::parse(&reason).ok_or(StoreError::Corrupt("evidence.reason"))?,
                    cosigned: row.try_get("cosigned")?,
                    refused: row.try_get("refused")?,
                    request: row.try_get("request")?,
                    received_at: to_u64(row.try_get("received_at")?, "evidence.received_at")?,
                })
            })
            .collect()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn latest_from_row(row: &SqliteRow) -> Result<Latest, StoreError> {
    let root: Vec<u8> = row.try_get("root")?;
    Ok(Latest {
        size: to_u64(row.try_get("size")?, "logs.size")?,
        root: root
            .try_into()
            .map_err(|_| StoreError::Corrupt("logs.root"))?,
        note: row.try_get("note")?,
        cosigned_at: to_u64(row.try_get("cosigned_at")?, "logs.cosigned_at")?,
    })
}

/// Creates the database file readable by its owner only, before SQLite would create it with
/// the umask's mode (its `-wal` and `-shm` files take the mode from it).
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}
