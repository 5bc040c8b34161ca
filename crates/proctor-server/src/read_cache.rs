//! What the public reads keep in memory, so that a regulator's or a mirror's load costs the
//! database little: the log's entries, roots and proofs at fixed sizes, which never change, and
//! the current head with its signed checkpoint, shared by the requests that arrive together.
//!
//! Invariants:
//! - Only what cannot change is kept: an entry (the log is append-only; a job's entry of a
//!   kind is written once), a root and a proof at given sizes. An absent entry is never
//!   kept, since it may be appended the next moment.
//! - The head is never older than the request: a request is answered from a check of the
//!   database's log ([`LogGuard::vouch`](crate::log_guard::LogGuard::vouch)) that *began after
//!   it arrived*. Requests that arrive while one check runs wait for it and share the next one,
//!   so under load one check serves a batch instead of one check per request (they were
//!   serialized on the guard's lock before), and an entry appended before a request arrived
//!   is always in its checkpoint.
//! - A checkpoint is signed once per head: Ed25519 signatures are deterministic, so the kept
//!   note is byte for byte the one a new signature would give.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use proctor_attest::merkle::Hash;
use proctor_attest::{Checkpoint, TreeHead};
use proctor_store::{EntryKind, JobId, LogEntry};

use crate::error::{ApiError, ApiResult};
use crate::state::App;

/// Entries kept, by index and by job (a few KiB each).
const ENTRIES: usize = 4096;
/// Proofs kept, by index or old size and tree size (a few hundred bytes each).
const PROOFS: usize = 4096;

/// A head checked against the database, with its signed checkpoint.
#[derive(Debug, Clone)]
pub struct SignedHead {
    /// The head.
    pub head: TreeHead,
    /// Its C2SP checkpoint, signed by the service key.
    pub checkpoint: Arc<str>,
}

/// The last check of the head, and which one it was.
struct Checked {
    /// Its number among the checks begun ([`ReadCache::begun`]).
    number: u64,
    signed: SignedHead,
}

/// Which proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ProofKey {
    /// Of entry `index` in the tree of `size`.
    Inclusion { index: u64, size: u64 },
    /// From the tree of `old` to the tree of `new`.
    Consistency { old: u64, new: u64 },
    /// The root of the tree of `size` (one hash).
    Root { size: u64 },
}

/// The public reads' memory; one per service process.
pub struct ReadCache {
    /// Checks of the head begun so far.
    begun: AtomicU64,
    /// The last check that succeeded; its lock is held while a check runs.
    last: tokio::sync::Mutex<Option<Checked>>,
    by_index: Mutex<LruCache<u64, Arc<LogEntry>>>,
    by_job: Mutex<LruCache<(JobId, EntryKind), Arc<LogEntry>>>,
    proofs: Mutex<LruCache<ProofKey, Arc<[Hash]>>>,
}

impl Default for ReadCache {
    fn default() -> ReadCache {
        let entries = NonZeroUsize::new(ENTRIES).unwrap_or(NonZeroUsize::MIN);
        let proofs = NonZeroUsize::new(PROOFS).unwrap_or(NonZeroUsize::MIN);
        ReadCache {
            begun: AtomicU64::new(0),
            last: tokio::sync::Mutex::new(None),
            by_index: Mutex::new(LruCache::new(entries)),
            by_job: Mutex::new(LruCache::new(entries)),
            proofs: Mutex::new(LruCache::new(proofs)),
        }
    }
}

impl ReadCache {
    /// The database's head, checked by the log guard after this call began (so it holds
    /// every entry appended before), and its signed checkpoint.
    ///
    /// # Errors
    ///
    /// 503 `log_fork` (and what else the guard's check fails with); a 500 when signing fails.
    pub async fn head(&self, app: &App) -> ApiResult<SignedHead> {
        let arrived = self.begun.load(Ordering::SeqCst);
        let mut last = self.last.lock().await;
        if let Some(checked) = last.as_ref()
            && checked.number > arrived
        {
            return Ok(checked.signed.clone());
        }
        let number = self.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let head = app.log_guard.vouch(&app.store, &app.key).await?;
        let checkpoint = match last.as_ref() {
            Some(checked) if checked.signed.head == head => checked.signed.checkpoint.clone(),
            _ => Checkpoint::new(&app.config.origin, head)
                .sign(&app.key)
                .map_err(|e| ApiError::internal("signing a checkpoint", &e))?
                .into(),
        };
        let signed = SignedHead { head, checkpoint };
        *last = Some(Checked {
            number,
            signed: signed.clone(),
        });
        Ok(signed)
    }

    /// The entry at `index`.
    ///
    /// # Errors
    ///
    /// 404 when the log has none there; a store error.
    pub async fn entry(&self, app: &App, index: u64) -> ApiResult<Arc<LogEntry>> {
        if let Some(entry) = lock(&self.by_index).get(&index) {
            return Ok(entry.clone());
        }
        let entry = Arc::new(app.store.log_entry(index).await?);
        self.keep(&entry);
        Ok(entry)
    }

    /// `job`'s entry of `kind`, if it has one.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn job_entry(
        &self,
        app: &App,
        job: JobId,
        kind: EntryKind,
    ) -> ApiResult<Option<Arc<LogEntry>>> {
        if let Some(entry) = lock(&self.by_job).get(&(job, kind)) {
            return Ok(Some(entry.clone()));
        }
        let Some(entry) = app.store.job_entry(job, kind).await? else {
            return Ok(None);
        };
        let entry = Arc::new(entry);
        self.keep(&entry);
        Ok(Some(entry))
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    ///
    /// # Errors
    ///
    /// 404 for an index or size beyond the log; a store error.
    pub async fn inclusion_proof(
        &self,
        app: &App,
        index: u64,
        size: u64,
    ) -> ApiResult<Arc<[Hash]>> {
        let key = ProofKey::Inclusion { index, size };
        if let Some(hashes) = lock(&self.proofs).get(&key) {
            return Ok(hashes.clone());
        }
        let hashes: Arc<[Hash]> = app.store.inclusion_proof(index, size).await?.into();
        lock(&self.proofs).put(key, hashes.clone());
        Ok(hashes)
    }

    /// The consistency proof from the tree of `old` entries to the tree of `new`.
    ///
    /// # Errors
    ///
    /// 404 for a size beyond the log, 422 when `old > new`; a store error.
    pub async fn consistency_proof(&self, app: &App, old: u64, new: u64) -> ApiResult<Arc<[Hash]>> {
        let key = ProofKey::Consistency { old, new };
        if let Some(hashes) = lock(&self.proofs).get(&key) {
            return Ok(hashes.clone());
        }
        let hashes: Arc<[Hash]> = app.store.consistency_proof(old, new).await?.into();
        lock(&self.proofs).put(key, hashes.clone());
        Ok(hashes)
    }

    /// The root hash of the tree of `size` entries.
    ///
    /// # Errors
    ///
    /// 404 for a size beyond the log; a store error.
    pub async fn root_at(&self, app: &App, size: u64) -> ApiResult<Hash> {
        let key = ProofKey::Root { size };
        if let Some(&[root]) = lock(&self.proofs).get(&key).map(|h| &**h) {
            return Ok(root);
        }
        let root = app.store.root_at(size).await?;
        lock(&self.proofs).put(key, Arc::new([root]));
        Ok(root)
    }

    fn keep(&self, entry: &Arc<LogEntry>) {
        lock(&self.by_index).put(entry.index, entry.clone());
        lock(&self.by_job).put((entry.job, entry.kind), entry.clone());
    }
}

/// A cache's lock; one poisoned by a panic elsewhere still holds only whole values.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
