//! The head this service last vouched for: the last tree head it signed a checkpoint of or
//! appended an entry to, kept in a file beside its key, outside the database, and the check
//! that the database's log still extends it before the service signs anything about the log.
//!
//! Why outside the database: a database can be restored from a backup, replaced or deleted,
//! and the key cannot tell. Without this file the service would sign a second, different
//! checkpoint for a size it had signed before (a fork), and the lost jobs' attestations would
//! name indices that then hold other entries. With it, a database whose log is shorter than
//! the remembered head, or whose tree at the remembered size has another root, is refused:
//! at start ([`crate::StartError::Log`]) and while running (503 `log_fork`), until an operator
//! recovers deliberately (`proctor log rotate`, [`crate::rotation`]).
//!
//! The file ([`LOG_HEAD_FILE`]) holds a C2SP checkpoint of the head signed by the service
//! key, so it says which log (origin) and key it is about and cannot be edited unnoticed. It
//! is written atomically (a temporary file in the same directory, fsync, rename, fsync of the
//! directory) and only forward: a head that does not extend it is refused, never written, and
//! a write never replaces a larger head (servers that share a data directory take a file lock
//! around it).
//!
//! Invariants:
//! - The file is written before the checkpoint it vouches for is returned, so the service
//!   never handed out a head it does not remember.
//! - Updates are serialized in-process (one async mutex); a database ahead of the file (another
//!   server on the same PostgreSQL appended) is fine when its tree at the remembered size has
//!   the remembered root.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use proctor_attest::log::{self as attest_log, LogError, NodeStore};
use proctor_attest::merkle::Hash;
use proctor_attest::{Checkpoint, SigningKey, TreeHead, VerifyingKey};
use proctor_store::Store;

/// The remembered head's file in the data directory.
pub const LOG_HEAD_FILE: &str = "log-head.checkpoint";
/// The lock file that serializes writers of [`LOG_HEAD_FILE`] across processes.
const LOCK_FILE: &str = "log-head.lock";

/// The database's log does not extend the head this service vouched for: signing anything
/// about it now would fork the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogFork {
    /// The database's log is shorter than the remembered head.
    #[error(
        "the database's log has {db} entries but this service signed a checkpoint of {vouched} \
         entries (root {}): the database was restored or replaced; refusing to sign a fork. \
         See `proctor log rotate`",
        b64(.root)
    )]
    Behind {
        /// The database's size.
        db: u64,
        /// The remembered size.
        vouched: u64,
        /// The remembered root.
        root: Hash,
    },
    /// The database's tree at the remembered size has another root.
    #[error(
        "the database's log has {db} entries whose first {vouched} have root {}, but this \
         service signed a checkpoint of {vouched} entries with root {}: the database was \
         replaced; refusing to sign a fork. See `proctor log rotate`",
        b64(.db_root), b64(.root)
    )]
    Diverged {
        /// The database's size.
        db: u64,
        /// The remembered size.
        vouched: u64,
        /// The database's root at the remembered size.
        db_root: Hash,
        /// The remembered root.
        root: Hash,
    },
}

impl LogFork {
    /// The database's size and the remembered one.
    pub fn sizes(&self) -> (u64, u64) {
        match *self {
            LogFork::Behind { db, vouched, .. } | LogFork::Diverged { db, vouched, .. } => {
                (db, vouched)
            }
        }
    }
}

fn b64(hash: &Hash) -> String {
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// Why the remembered head could not be checked or kept.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The database's log does not extend the remembered head.
    #[error(transparent)]
    Fork(#[from] LogFork),
    /// The database's log could not be read.
    #[error("reading the database's log: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The head file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The head file is not a checkpoint of this log signed by this key.
    #[error("{path}: {message}")]
    HeadFile {
        /// The file.
        path: String,
        /// Why it does not do.
        message: String,
    },
}

fn io(path: &Path, source: std::io::Error) -> GuardError {
    GuardError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Checks that `log` extends `vouched` and returns its current head.
///
/// # Errors
///
/// `Ok(Err(fork))` when it does not; `Err` when it cannot be read.
pub async fn extends<S: NodeStore + ?Sized>(
    log: &mut S,
    vouched: TreeHead,
) -> Result<Result<TreeHead, LogFork>, LogError<S::Error>> {
    let head = attest_log::tree_head(log).await?;
    if head.size < vouched.size {
        return Ok(Err(LogFork::Behind {
            db: head.size,
            vouched: vouched.size,
            root: vouched.root,
        }));
    }
    let db_root = if head.size == vouched.size {
        head.root
    } else {
        attest_log::root_at(log, vouched.size).await?
    };
    if db_root != vouched.root {
        return Ok(Err(LogFork::Diverged {
            db: head.size,
            vouched: vouched.size,
            db_root,
            root: vouched.root,
        }));
    }
    Ok(Ok(head))
}

/// Reads the head file: `None` when there is none yet.
///
/// # Errors
///
/// [`GuardError::HeadFile`] when it is not a checkpoint signed by `key` for `origin`.
pub fn read_head(
    path: &Path,
    origin: &str,
    key: &VerifyingKey,
) -> Result<Option<TreeHead>, GuardError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(path, err)),
    };
    let bad = |message: String| GuardError::HeadFile {
        path: path.display().to_string(),
        message,
    };
    let (claimed, _) = Checkpoint::parse_unverified(&bytes)
        .map_err(|e| bad(format!("not a signed checkpoint: {e}")))?;
    if claimed.origin != origin {
        return Err(bad(format!(
            "this service signed the log `{}`, and is now configured with the origin `{origin}`: \
             one key signs one log. Start it with `--origin {}`, or begin a new log with \
             `proctor log rotate`",
            claimed.origin, claimed.origin
        )));
    }
    let checkpoint = Checkpoint::open(&bytes, key).map_err(|e| {
        bad(format!(
            "not signed by the service key {} ({e}): the key was replaced; restore it, or \
             begin a new log with `proctor log rotate`",
            key.key_id()
        ))
    })?;
    Ok(Some(TreeHead {
        size: checkpoint.size,
        root: checkpoint.root,
    }))
}

/// Writes `note` (a signed checkpoint of `size` entries) to `path` atomically, unless the file
/// already holds a larger head (written by another server on this data directory, under the
/// same lock).
///
/// # Errors
///
/// [`GuardError::Io`].
pub fn write_head(path: &Path, size: u64, note: &str) -> Result<(), GuardError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let lock_path = dir.join(LOCK_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let lock = options.open(&lock_path).map_err(|e| io(&lock_path, e))?;
    lock.lock().map_err(|e| io(&lock_path, e))?;
    if let Ok(bytes) = std::fs::read(path)
        && let Ok((on_disk, _)) = Checkpoint::parse_unverified(&bytes)
        && on_disk.size > size
    {
        return Ok(());
    }
    // The temporary file is 0600 from creation, in the same directory so the rename is atomic.
    let mut file = tempfile::Builder::new()
        .prefix(".log-head-")
        .tempfile_in(dir)
        .map_err(|e| io(dir, e))?;
    file.write_all(note.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| io(path, e))?;
    file.persist(path).map_err(|e| io(path, e.error))?;
    // The rename is durable only once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))?;
    Ok(())
}

/// The head this service vouched for, and the one way to move it forward.
#[derive(Debug)]
pub struct LogGuard {
    path: PathBuf,
    origin: String,
    /// Serializes checks and updates, so the remembered head only moves forward.
    turn: tokio::sync::Mutex<()>,
    /// The remembered head, also for the signing closures, which cannot wait.
    vouched: SyncMutex<TreeHead>,
    /// Whether the last check found a fork (so it is logged once, not on every poll).
    forked: AtomicBool,
}

impl LogGuard {
    /// The guard of the log `origin` kept in `data_dir`, checked against `log`: with no head
    /// file yet (a new data directory, or one from before the file existed) the log's current
    /// head is adopted as it is.
    ///
    /// # Errors
    ///
    /// [`GuardError::Fork`] when the log does not extend the remembered head;
    /// [`GuardError::HeadFile`] when the file is of another origin or key.
    pub async fn open<S: NodeStore + ?Sized>(
        data_dir: &Path,
        origin: &str,
        key: &SigningKey,
        log: &mut S,
    ) -> Result<LogGuard, GuardError> {
        let path = data_dir.join(LOG_HEAD_FILE);
        let remembered = read_head(&path, origin, &key.verifying_key())?;
        let start = match remembered {
            Some(head) => head,
            None => {
                let head = attest_log::tree_head(log)
                    .await
                    .map_err(|e| GuardError::Read(Box::new(e)))?;
                tracing::info!(
                    size = head.size,
                    "no remembered log head yet: adopting the database's"
                );
                head
            }
        };
        let guard = LogGuard {
            path,
            origin: origin.to_owned(),
            turn: tokio::sync::Mutex::new(()),
            vouched: SyncMutex::new(start),
            forked: AtomicBool::new(false),
        };
        if remembered.is_none() {
            guard.write(start, key).await?;
        }
        guard.vouch_log(log, key).await?;
        Ok(guard)
    }

    /// Checks the database's log against the remembered head and moves the head to the
    /// database's (written before this returns): what the caller may then sign a checkpoint
    /// of, or append to.
    ///
    /// # Errors
    ///
    /// [`GuardError::Fork`] (logged with both sizes), [`GuardError::Read`],
    /// [`GuardError::Io`].
    pub async fn vouch(&self, store: &Store, key: &SigningKey) -> Result<TreeHead, GuardError> {
        let mut log = store
            .log_reader()
            .await
            .map_err(|e| GuardError::Read(Box::new(e)))?;
        self.vouch_log(&mut log, key).await
    }

    /// [`LogGuard::vouch`] over any log store.
    ///
    /// # Errors
    ///
    /// As [`LogGuard::vouch`].
    pub async fn vouch_log<S: NodeStore + ?Sized>(
        &self,
        log: &mut S,
        key: &SigningKey,
    ) -> Result<TreeHead, GuardError> {
        let _turn = self.turn.lock().await;
        let vouched = self.vouched();
        let head = match extends(log, vouched).await {
            Ok(Ok(head)) => head,
            Ok(Err(fork)) => {
                let (db, remembered) = fork.sizes();
                if !self.forked.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        database_size = db,
                        vouched_size = remembered,
                        %fork,
                        "refusing to sign: the database's log does not extend the head this service signed"
                    );
                }
                return Err(fork.into());
            }
            Err(err) => return Err(GuardError::Read(Box::new(err))),
        };
        if self.forked.swap(false, Ordering::Relaxed) {
            tracing::info!(
                size = head.size,
                "the database's log extends the remembered head again"
            );
        }
        if head != vouched {
            self.write(head, key).await?;
        }
        Ok(head)
    }

    /// Refuses an entry at `index` below the remembered size: the check a signing closure
    /// makes under the log's lock, where it cannot wait on the database or a file.
    ///
    /// # Errors
    ///
    /// [`LogFork::Behind`].
    pub fn admits(&self, index: u64) -> Result<(), LogFork> {
        let vouched = self.vouched();
        if index < vouched.size {
            return Err(LogFork::Behind {
                db: index,
                vouched: vouched.size,
                root: vouched.root,
            });
        }
        Ok(())
    }

    /// Moves the remembered head forward after an append committed; a failure is logged, not
    /// returned: the entry stands, and the next check catches what this one would have.
    pub async fn advance(&self, store: &Store, key: &SigningKey) {
        if let Err(err) = self.vouch(store, key).await {
            tracing::warn!(%err, "moving the remembered log head forward after an append failed");
        }
    }

    /// The remembered head.
    pub fn vouched(&self) -> TreeHead {
        *self
            .vouched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The file it is kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, head: TreeHead, key: &SigningKey) -> Result<(), GuardError> {
        let note =
            signed_head(&self.origin, head, key).map_err(|message| GuardError::HeadFile {
                path: self.path.display().to_string(),
                message,
            })?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_head(&path, head.size, &note))
            .await
            .map_err(|e| io(&self.path, std::io::Error::other(e)))??;
        *self
            .vouched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = head;
        Ok(())
    }
}

/// The checkpoint of `head` for `origin`, signed by `key`.
///
/// # Errors
///
/// When the origin cannot be a key name.
pub fn signed_head(origin: &str, head: TreeHead, key: &SigningKey) -> Result<String, String> {
    Checkpoint::new(origin, head)
        .sign(key)
        .map_err(|e| format!("the origin `{origin}` cannot name a checkpoint: {e}"))
}

#[cfg(test)]
mod tests {
    use proctor_attest::MemoryStore;

    use super::*;

    const ORIGIN: &str = "test.local/log";

    async fn log_of(entries: &[&str]) -> MemoryStore {
        let mut log = MemoryStore::new();
        for entry in entries {
            attest_log::append(&mut log, entry.as_bytes())
                .await
                .unwrap();
        }
        log
    }

    fn key() -> SigningKey {
        SigningKey::from_seed(&[7; 32])
    }

    fn on_disk(dir: &Path) -> TreeHead {
        read_head(&dir.join(LOG_HEAD_FILE), ORIGIN, &key().verifying_key())
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn a_log_that_extends_the_remembered_head_passes_and_one_that_does_not_is_named() {
        let mut five = log_of(&["a", "b", "c", "d", "e"]).await;
        let vouched = attest_log::tree_head(&mut five).await.unwrap();
        assert_eq!(extends(&mut five, vouched).await.unwrap(), Ok(vouched));

        let mut seven = log_of(&["a", "b", "c", "d", "e", "f", "g"]).await;
        assert_eq!(extends(&mut seven, vouched).await.unwrap().unwrap().size, 7);

        let mut three = log_of(&["a", "b", "c"]).await;
        let fork = extends(&mut three, vouched).await.unwrap().unwrap_err();
        assert_eq!(fork.sizes(), (3, 5));
        assert!(
            fork.to_string()
                .contains("has 3 entries but this service signed a checkpoint of 5"),
            "{fork}"
        );

        let mut other = log_of(&["a", "b", "X", "d", "e"]).await;
        assert!(matches!(
            extends(&mut other, vouched).await.unwrap(),
            Err(LogFork::Diverged {
                db: 5,
                vouched: 5,
                ..
            })
        ));
        let mut longer_other = log_of(&["a", "b", "X", "d", "e", "f"]).await;
        assert!(matches!(
            extends(&mut longer_other, vouched).await.unwrap(),
            Err(LogFork::Diverged {
                db: 6,
                vouched: 5,
                ..
            })
        ));
        let mut empty = MemoryStore::new();
        assert!(matches!(
            extends(&mut empty, vouched).await.unwrap(),
            Err(LogFork::Behind {
                db: 0,
                vouched: 5,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn the_head_file_moves_only_forward_and_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let key = key();
        let mut log = log_of(&["a", "b", "c"]).await;
        let guard = LogGuard::open(dir.path(), ORIGIN, &key, &mut log)
            .await
            .unwrap();
        assert_eq!(
            on_disk(dir.path()).size,
            3,
            "a new data directory adopts the log's head"
        );

        attest_log::append(&mut log, b"d").await.unwrap();
        let head = guard.vouch_log(&mut log, &key).await.unwrap();
        assert_eq!((head.size, on_disk(dir.path())), (4, head));

        // A shorter log (a restored backup) and a different one are refused; the file stays.
        let mut restored = log_of(&["a", "b"]).await;
        let err = guard.vouch_log(&mut restored, &key).await.unwrap_err();
        assert!(
            matches!(
                err,
                GuardError::Fork(LogFork::Behind {
                    db: 2,
                    vouched: 4,
                    ..
                })
            ),
            "{err}"
        );
        let mut replaced = log_of(&["a", "b", "c", "X", "e"]).await;
        assert!(guard.vouch_log(&mut replaced, &key).await.is_err());
        assert_eq!(on_disk(dir.path()), head);
        assert_eq!(
            guard.admits(3),
            Err(LogFork::Behind {
                db: 3,
                vouched: 4,
                root: head.root
            })
        );
        assert_eq!(guard.admits(4), Ok(()));

        // A restart reads the file and refuses the same way.
        let err = LogGuard::open(dir.path(), ORIGIN, &key, &mut restored)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("has 2 entries but this service signed a checkpoint of 4"),
            "{err}"
        );

        // Only the head file and its lock are left behind: no temporary file.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [LOG_HEAD_FILE, LOCK_FILE]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(LOG_HEAD_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }

    #[test]
    fn a_write_never_replaces_a_larger_head_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_HEAD_FILE);
        let key = key();
        let at = |size| {
            signed_head(
                ORIGIN,
                TreeHead {
                    size,
                    root: [size as u8; 32],
                },
                &key,
            )
            .unwrap()
        };
        write_head(&path, 9, &at(9)).unwrap();
        write_head(&path, 8, &at(8)).unwrap();
        assert_eq!(on_disk(dir.path()).size, 9);
        write_head(&path, 10, &at(10)).unwrap();
        assert_eq!(on_disk(dir.path()).size, 10);
    }

    #[test]
    fn a_head_file_of_another_origin_or_key_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_HEAD_FILE);
        let head = TreeHead {
            size: 1,
            root: [1; 32],
        };
        write_head(&path, 1, &signed_head(ORIGIN, head, &key()).unwrap()).unwrap();
        let err = read_head(&path, "other.local/log", &key().verifying_key()).unwrap_err();
        assert!(err.to_string().contains("--origin test.local/log"), "{err}");
        let other = SigningKey::from_seed(&[8; 32]);
        let err = read_head(&path, ORIGIN, &other.verifying_key()).unwrap_err();
        assert!(err.to_string().contains("proctor log rotate"), "{err}");
    }

    #[test]
    fn each_rewrite_of_the_head_file_leaves_the_newest_head_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_HEAD_FILE);
        let key = key();
        let rounds = 50u64;
        let started = std::time::Instant::now();
        for size in 1..=rounds {
            let note = signed_head(
                ORIGIN,
                TreeHead {
                    size,
                    root: [1; 32],
                },
                &key,
            )
            .unwrap();
            write_head(&path, size, &note).unwrap();
            assert_eq!(on_disk(dir.path()).size, size);
        }
        // The figure (two fsyncs each) for the operator, not a bound: disks differ.
        let each = started.elapsed() / u32::try_from(rounds).unwrap();
        eprintln!("signing, writing and reading back the head file: {each:?} each");
    }
}
