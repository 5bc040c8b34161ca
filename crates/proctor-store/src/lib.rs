//! Proctor's storage: SQLite (the embedded default) and PostgreSQL (for several servers), with
//! the same behaviour on both; the job queue with leases; the transparency log in SQL.
//!
//! SQL lives only here. The crate knows `proctor-core` (digests, usage) and `proctor-attest`
//! (the log's [`NodeStore`](proctor_attest::log::NodeStore) and proofs), nothing of HTTP or
//! wasmtime. It never signs: every function that writes a log entry takes a closure from the
//! server that signs with the index the entry will take.
//!
//! # Map
//!
//! | module | holds |
//! | --- | --- |
//! | [`store`] | [`Store::connect`] (migrations applied), [`Store::begin`] → [`Tx`], [`Backend`] |
//! | [`accounts`] | accounts, roles and tiers, API tokens (only their sha256 stored) |
//! | [`artifacts`] | models (credentials as opaque sealed bytes), evals and datasets (content-addressed) |
//! | [`jobs`] | submission, the queue (claim, renew, progress, finish, cancel) |
//! | [`log`] | log entries, the SQL `NodeStore`s, tree head and proofs |
//! | [`error`] | [`StoreError`], one enum for the server to map to HTTP statuses |
//!
//! # How the server uses it
//!
//! ```text
//! let store = Store::connect("sqlite:///var/lib/proctor/proctor.db?mode=rwc").await?;
//! // first start
//! if let Some((admin, token)) = store.bootstrap_admin("admin").await? { print token.secret once }
//! // auth middleware
//! let account = store.account_for_token(bearer).await?.ok_or(401)?;
//! // uploads (validated and described by the server first)
//! let (meta, Upload::Created | Upload::Existing) = store.put_eval(account.id, &bytes, &description).await?;
//! let (meta, _) = store.put_dataset(account.id, &bytes, items).await?;
//! let model = store.register_model(&NewModel { .., credential: Some(sealed) }).await?;
//! // submission: job row + pre-registration entry, one transaction
//! let (job, accepted) = store.submit_job(&new_job, |job, slot| {
//!     Ok(JobAccepted { log_index: slot.index, .. }.into_statement().sign(&key)?.as_bytes().to_vec())
//! }).await?;
//! // a worker loop
//! while let Some(Claimed { job, disposition }) = store.claim(&worker_id, LEASE, MAX_ATTEMPTS).await? {
//!     match disposition {
//!         Disposition::Run => { run, calling store.renew(job.id, &worker_id, LEASE) every LEASE/3
//!                               (stop on LeaseLost; finish as cancelled on cancel_requested) and
//!                               store.record_progress(..) }
//!         Disposition::Cancel => outcome = cancelled,
//!         Disposition::GiveUp { reason } => outcome = failed with reason,
//!     }
//!     store.finish(job.id, &worker_id, &outcome, |ended, slot| sign the EvalResult with
//!                  log_index = slot.index and finished_at = slot.at.to_rfc3339()).await?;
//! }
//! // reads
//! store.tree_head().await?; store.inclusion_proof(i, n).await?; store.consistency_proof(m, n).await?;
//! store.log_entry(i).await?; store.job_entry(job_id, EntryKind::Result).await?;
//! ```
//!
//! # Invariants
//!
//! - Every function that writes several rows does so in one transaction; on SQLite every write
//!   transaction is `BEGIN IMMEDIATE` (the writer lock at once: no deadlock on upgrade).
//! - Log appends take the head row lock first (PostgreSQL `SELECT ... FOR UPDATE` on
//!   `log_head`; SQLite: the immediate transaction), so appends are serialized, also across
//!   server processes on one database, and the log never forks. Lock order: a job's row, then
//!   the log head.
//! - A job has at most one pre-registration and one result entry (a unique index says so too),
//!   and its final status commits together with its result entry, only while the finishing
//!   worker holds an unexpired lease.
//! - Times come from the database's clock ([`Timestamp`], milliseconds), so leases expire by
//!   one clock whatever the servers' clocks say.
//! - A token's secret is never stored, only its sha256; a model's credential is stored as the
//!   sealed bytes the server gives and is returned only by [`Store::model_credential`].
//!
//! # Errors to HTTP
//!
//! See [`StoreError`]: `NotFound` 404, `Conflict` 409, `LeaseLost` and `InvalidState` 409,
//! `Invalid` 422, the rest 500.

pub mod accounts;
pub mod artifacts;
pub mod error;
pub mod ids;
pub mod jobs;
pub mod log;
pub mod store;
pub mod time;

pub use accounts::{Account, NewToken, Role, Tier, TokenInfo};
pub use artifacts::{DatasetMeta, EvalDescription, EvalMeta, Model, NewModel, Upload};
pub use error::{Result, SignError, StoreError};
pub use ids::{AccountId, JobId, ModelId, TokenId};
pub use jobs::{Cancelled, Claimed, Disposition, Job, JobStatus, Lease, NewJob, Outcome, Renewed};
pub use log::{EntryKind, LogEntry, LogReader, LogSlot, SqlLogError};
pub use store::{Backend, Store, Tx};
pub use time::Timestamp;
