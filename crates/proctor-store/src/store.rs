//! The connection pool, the two backends, migrations and transactions.

use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor};

use crate::error::{Fault, Result, StoreError};
use crate::file_identity::DatabaseFile;
use crate::time::Timestamp;

/// Which database is behind a [`Store`]. The SQL is the same on both except for the clock and
/// the row locks, which this decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one file (WAL, busy timeout, foreign keys) or memory; writers serialized by
    /// `BEGIN IMMEDIATE`.
    Sqlite,
    /// PostgreSQL: row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`).
    Postgres,
}

impl Backend {
    /// The database's clock in milliseconds since the Unix epoch, as an SQL expression.
    pub(crate) fn now_ms(self) -> &'static str {
        match self {
            Backend::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// `FOR UPDATE` where row locks exist. SQLite needs none: its write transactions start
    /// with `BEGIN IMMEDIATE`, which already excludes every other writer.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE",
        }
    }

    /// Replaces `{now}` and `{for_update}` in `sql`.
    pub(crate) fn sql(self, sql: &str) -> String {
        sql.replace("{now}", self.now_ms())
            .replace("{for_update}", self.for_update())
    }
}

/// Proctor's database: a pool of connections to SQLite or PostgreSQL.
///
/// Cheap to clone (the pool is reference-counted); share one per process.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// The SQLite file as it was when the store connected; `None` for memory and PostgreSQL.
    pub(crate) file: Option<Arc<DatabaseFile>>,
    /// The last health probe ([`Store::health`]).
    pub(crate) last_probe: Arc<Mutex<Option<LastProbe>>>,
    /// When a write transaction last failed for want of storage, and how
    /// ([`Store::transaction`]; the probe reads it).
    pub(crate) storage_fault: Arc<Mutex<Option<(Instant, String)>>>,
}

/// When the last health probe ended and what it found.
pub(crate) type LastProbe = (Instant, Result<(), Fault>);

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 30_000;

impl Store {
    /// Connects and applies the embedded migrations.
    ///
    /// `url` is `sqlite://PATH?mode=rwc` (created if missing), `sqlite::memory:` (one
    /// connection, gone when the store is dropped) or `postgres://…` (also `postgresql://`).
    /// SQLite runs in WAL mode with a busy timeout and foreign keys on.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnsupportedUrl`], [`StoreError::Database`] when the database cannot be
    /// reached, [`StoreError::Migrate`] when the schema cannot be brought up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, 16).await
    }

    /// [`Store::connect`] with at most `max_connections` pooled connections (a file-backed
    /// SQLite gets at least two, so readers do not wait for a writer; memory gets exactly one,
    /// since each connection would otherwise open its own empty database).
    ///
    /// # Errors
    ///
    /// As [`Store::connect`].
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Store> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.chars().take(40).collect()));
        };
        let memory = backend == Backend::Sqlite && url.contains(":memory:");
        let mut options = AnyPoolOptions::new();
        options = match backend {
            Backend::Sqlite if memory => options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            Backend::Sqlite => options.max_connections(max_connections.max(2)),
            Backend::Postgres => options.max_connections(max_connections.max(1)),
        };
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; the busy timeout makes a
                    // second writer wait instead of failing; foreign keys are off by default in
                    // SQLite and the schema relies on them.
                    conn.execute(
                        format!(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
                        )
                        .as_str(),
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        if !memory {
            // The one in-memory connection holds the whole database: it is never closed.
            options = options.after_release(move |conn, _meta| reusable(conn, backend));
        }
        let pool = options
            .acquire_timeout(Duration::from_secs(60))
            .connect(url)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("../../migrations/sqlite").run(&pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("../../migrations/postgres")
                    .run(&pool)
                    .await?
            }
        }
        let file = if backend == Backend::Sqlite && !memory {
            let options = SqliteConnectOptions::from_str(url)?;
            let file = DatabaseFile::at(options.get_filename()).map_err(sqlx::Error::Io)?;
            Some(Arc::new(file))
        } else {
            None
        };
        Ok(Store {
            pool,
            backend,
            file,
            last_probe: Arc::default(),
            storage_fault: Arc::default(),
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. Everything that writes several rows runs in one; the server
    /// uses one to put a job and its pre-registration log entry in together
    /// ([`Tx::enqueue`], [`Tx::append_entry`]).
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: it takes the database's write lock at once, so two
    /// writers never both read and then fail to upgrade, and log appends are serialized.
    /// Dropping a [`Tx`] without [`Tx::commit`] rolls it back.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            inner,
            backend: self.backend,
        })
    }

    /// Runs `work` in one write transaction ([`Store::begin`]): commits when it returns `Ok`,
    /// rolls back at once when it returns an error, and returns what it returned (or the
    /// commit's failure). Every function of the store that writes several rows goes through
    /// it, so none can forget the rollback: dropping a transaction is not enough, since sqlx
    /// rolls a dropped one back later, from a spawned task, and its row locks outlive the call.
    ///
    /// ```text
    /// store.transaction(async |tx| {
    ///     let grant = lock_grant(tx, id).await?;   // the lock order still holds inside
    ///     ...;
    ///     Ok(grant)
    /// }).await
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the transaction cannot begin or commit; any error of
    /// `work`, after the rollback.
    pub async fn transaction<T>(&self, work: impl AsyncFnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        let result = self.unnoted_transaction(work).await;
        self.note_write(&result);
        result
    }

    /// [`Store::transaction`] without noting how it went for the health probe (the probe's
    /// own write, which must not vouch for the others).
    pub(crate) async fn unnoted_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.begin().await?;
        let result = work(&mut tx).await;
        tx.end(result).await
    }

    /// The database's clock.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn now(&self) -> Result<Timestamp> {
        let sql = format!("SELECT {}", self.backend.now_ms());
        let now: i64 = sqlx::query_scalar(&sql).fetch_one(&self.pool).await?;
        Ok(Timestamp(now))
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The pool's check on each connection that comes back (`after_release`): whether it may be
/// handed out again. One that sqlx still counts inside a transaction is closed (it may hold a
/// real transaction too), and the pool opens a fresh one when it needs one.
///
/// This works around a bug of sqlx 0.8.6, not fixes it. sqlx-sqlite keeps the transaction
/// depth in a counter of its own and lowers it only when its own COMMIT or ROLLBACK succeeds.
/// On a full disk SQLite rolls the transaction back by itself (`sqlite3VdbeHalt`: always when
/// COMMIT's write fails, and when a statement fails with SQLITE_FULL, SQLITE_IOERR or
/// SQLITE_NOMEM outside a statement journal). The ROLLBACK that follows, [`Tx::end`]'s and then
/// the one a dropped `Transaction` queues, fails with "cannot rollback - no transaction is
/// active", so the counter stays at 1. The pool's ping on release does not look at it: the
/// connection went back to the pool, and every later `BEGIN IMMEDIATE` on it failed with
/// "begin_with at non-zero transaction depth", until restart. sqlx issue 3932 (a custom
/// `BEGIN` that ran but whose `Transaction` was never made, on an error or a cancellation)
/// leaves the same counter behind, and is caught here too.
///
/// SQLite's counter is kept by the connection's worker thread, which runs a rollback that a
/// dropped `Transaction` queued only when it gets to it: the ping waits for that, so a rollback
/// that did succeed is counted before the check. PostgreSQL lowers its counter as it queues
/// the rollback (and a ROLLBACK outside a transaction is only a warning there), which is why
/// it recovered by itself; the check guards it all the same, at no cost.
fn reusable(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Pin<Box<dyn Future<Output = sqlx::Result<bool>> + Send + '_>> {
    Box::pin(async move {
        if backend == Backend::Sqlite {
            conn.ping().await?;
        }
        Ok(!conn.is_in_transaction())
    })
}

/// A write transaction (see [`Store::begin`]). Rolled back when dropped uncommitted.
#[derive(Debug)]
pub struct Tx {
    pub(crate) inner: sqlx::Transaction<'static, Any>,
    pub(crate) backend: Backend,
}

impl Tx {
    /// Commits.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`]; nothing of the transaction is then visible.
    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        Ok(())
    }

    /// Rolls back explicitly (dropping does the same, later).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Commits when `result` is `Ok`, rolls back at once when it is an error, and returns
    /// `result` (or the commit's failure: the transaction is then dropped, which queues a
    /// rollback, and the connection goes through the same `after_release` check).
    ///
    /// Why not just drop the transaction on an error: sqlx rolls a dropped transaction back
    /// later, from a spawned task, so its row locks outlive the call for a moment, and a
    /// following `FOR UPDATE SKIP LOCKED` claim would pass the locked job by.
    pub(crate) async fn end<T>(self, result: Result<T>) -> Result<T> {
        match result {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(err) => {
                // The operation's error is what the caller must see. If the rollback fails
                // too (on SQLite: the database already rolled back by itself, after a full
                // disk), the connection comes back to the pool with sqlx still counting a
                // transaction, and the pool's `after_release` check (`reusable`, below)
                // closes it instead of handing it out again.
                let _ = self.rollback().await;
                Err(err)
            }
        }
    }

    /// The database's clock.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn now(&mut self) -> Result<Timestamp> {
        let sql = format!("SELECT {}", self.backend.now_ms());
        let now: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *self.inner).await?;
        Ok(Timestamp(now))
    }
}
