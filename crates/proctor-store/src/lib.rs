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
//! | [`store`] | [`Store::connect`] (migrations applied), [`Store::transaction`] (begin, commit or roll back), [`Store::begin`] → [`Tx`], [`Backend`] |
//! | [`accounts`] | accounts, roles and tiers, API tokens (only their sha256 stored) |
//! | [`artifacts`] | models (credentials as opaque sealed bytes), evals and datasets (content-addressed) |
//! | [`jobs`] | submission, the queue (claim, renew, progress, finish, cancel) |
//! | [`grants`] | grants (tier or account), their budgets, the grant that covers an evaluator ([`Store::grant_for`]), the grant's row lock |
//! | [`acceptance`] | a job's acceptance under a grant ([`Tx::reserve_job`], [`Store::submit_job_under`]): jobs per day, the hold, the ledger; [`JobGrant`] |
//! | [`holds`] | a DP job's worst-case [`Hold`], given back once when the job ends |
//! | [`approval`] | a job's [`Approval`] under a manual grant; the vendor approves or rejects |
//! | [`revocation`] | [`Store::revoke_grant`]: queued jobs end, running ones are flagged |
//! | [`identity`] | model identity canaries: each model's fingerprint (sealed probe secret, probe hashes, measured figures; claimed by one server at a time) and its checks' figures |
//! | [`identity_alerts`] | a model that answered unlike its fingerprint: an alert per changed check (the vendor's) and per job whose result attests changed (the vendor's and the evaluator's), each written with its fact |
//! | [`exposure`] | each dataset's exposure per vendor (jobs and samples), counted at acceptance ([`Tx::expose`]); the owner's view ([`Store::exposure_of`]) |
//! | [`ledger`] | epsilon and leakage bits per (evaluator, model) across grants; the vendor's model-wide caps |
//! | [`blocks`] | reservation blocks a job leases from its grant's budgets (or its hold), settled in batches ([`Store::meter`]); blocks left open counted at their worst case |
//! | [`metering`] | what a grant's budgets stand at, usage reports |
//! | [`cosignatures`] | witnesses' cosignatures of checkpoints and the size each witness last cosigned |
//! | [`log`] | log entries, the SQL `NodeStore`s, tree head and proofs |
//! | [`log_search`] | the log's entries by eval, dataset or model name, newest first: the public log page's search |
//! | [`probe`] | the health probe ([`Store::probe`], [`Store::health`]): a committed write, and the SQLite file still the one opened; the [`Fault`] found |
//! | [`error`] | [`StoreError`], one enum for the server to map to HTTP statuses, the [`Refusal`] and [`Budget`] it names, and the probe's [`Fault`] |
//!
//! Private leaves, imported by the modules above and importing none of them: `rows` (row
//! decoding), `text_enum` (enums kept as text), `units` (the ledgers' integer units, the UTC
//! day), `counters` (a grant's used and reserved counts, the room check), `file_identity` (the
//! SQLite file's device and inode, recorded at connect). No two modules import
//! each other (a unit test, `tidy`, reads the sources and fails on an import cycle).
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
//! // grants (issue 5): the vendor grants, the evaluator submits under the grant that covers it
//! let grant = store.create_grant(&NewGrant { vendor, model, grantee: Grantee::Tier(Tier::Academic), .. }).await?;
//! let grant = store.grant_for(evaluator, model).await?;           // NoGrant(reason) → 403
//! // a DP job spends its epsilon and holds its worst case (samples × max_per_sample queries)
//! // every job spends its leakage bound (bits) from the evaluator's ledger on the model
//! let demand = JobDemand { epsilon: Some(eps), bits, hold: Some(Hold { queries, tokens }) };
//! let (job, job_grant, accepted) = store.submit_job_under(grant.id, &demand, &new_job, sign).await?;
//! // (or tx.enqueue + tx.reserve_job + tx.append_entry in the server's own transaction)
//! // manual grants: store.awaiting_approval(vendor), approve_job(vendor, job), reject_job(.., sign)
//! // a job's model queries: its meter leases blocks and settles batches, one call each
//! let stepped = store.meter(Step { grant, job, batches: &[(block.id, batch)], lease: Some(want) }).await?;
//! // stepped.inactive: revoked or expired, stop; stepped.lease: Ok(block) | Err(BudgetExhausted | NoGrant)
//! // after the job ends: store.abandon_blocks(job.id) counts what a dead attempt left open
//! // after any job ends: store.release_job_hold(job.id) (startup: release_ended_holds())
//! // revocation: ends queued jobs (signed result entries), flags running ones (cancel_requested,
//! // reason REVOKED_REASON) and returns them; their workers finish them as JobStatus::Revoked
//! // (a worker that sees cancel_requested checks store.job_grant(job) → grant.revoked_at)
//! let Revocation { running, .. } = store.revoke_grant(vendor, grant.id, sign).await?;
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
//! // /healthz: a committed write, and the SQLite file still the one opened
//! store.health().await  // Err(Fault::WriteFailed(..) | FileMissing(..) | ..) → 503
//! // reads
//! store.tree_head().await?; store.inclusion_proof(i, n).await?; store.consistency_proof(m, n).await?;
//! store.log_entry(i).await?; store.job_entry(job_id, EntryKind::Result).await?;
//! ```
//!
//! # Invariants
//!
//! - Every function that writes several rows does so in one transaction
//!   ([`Store::transaction`]: commit on `Ok`, rollback at once on an error); on SQLite every
//!   write transaction is `BEGIN IMMEDIATE` (the writer lock at once: no deadlock on upgrade).
//! - No connection goes back to the pool while sqlx still counts a transaction on it (the
//!   pool's `after_release` check closes it): one failed write, a full disk, cannot wedge
//!   later transactions.
//! - Log appends take the head row lock first (PostgreSQL `SELECT ... FOR UPDATE` on
//!   `log_head`; SQLite: the immediate transaction), so appends are serialized, also across
//!   server processes on one database, and the log never forks. Lock order: a job's row, then
//!   the log head.
//! - A job has at most one pre-registration and one result entry (a unique index says so too),
//!   and its final status commits together with its result entry, only while the finishing
//!   worker holds an unexpired lease.
//! - Times come from the database's clock ([`Timestamp`], milliseconds), so leases expire by
//!   one clock whatever the servers' clocks say.
//! - A grant's budgets are checked and counted while its row is locked (PostgreSQL
//!   `FOR UPDATE`; SQLite: the immediate transaction), by every function that changes them, so
//!   reservations never overspend, also across servers. Epsilon and leakage bits are kept per
//!   (evaluator, model) across grants ([`ledger`]): acceptance locks the pair's ledger row
//!   after the grant's, then the model's. Lock order: grant, pair ledger, model ledger, job,
//!   dataset exposure, log head.
//! - A job waiting for its vendor's approval is `queued` with approval `pending` in
//!   `job_grants`; [`Store::claim`] never hands it out.
//! - A token's secret is never stored, only its sha256; a model's credential is stored as the
//!   sealed bytes the server gives and is returned only by [`Store::model_credential`].
//!
//! # Errors to HTTP
//!
//! See [`StoreError`]: `NotFound` 404, `Conflict` 409, `LeaseLost` and `InvalidState` 409,
//! `Invalid` 422, `NoGrant` 403, `BudgetExhausted` 429, the rest 500.

pub mod acceptance;
pub mod accounts;
pub mod alerts;
pub mod approval;
pub mod artifacts;
pub mod blocks;
pub mod claims;
pub mod cosignatures;
mod counters;
pub mod error;
pub mod exposure;
mod file_identity;
pub mod grants;
pub mod holds;
pub mod identity;
pub mod identity_alerts;
pub mod ids;
pub mod jobs;
pub mod ledger;
pub mod log;
pub mod log_search;
pub mod metering;
pub mod probe;
pub mod revocation;
mod rows;
pub mod store;
mod text_enum;
pub mod time;
mod units;
pub mod usage_profile;

#[cfg(test)]
mod tidy;

pub use acceptance::{JobDemand, JobGrant};
pub use accounts::{Account, NewToken, Role, Tier, TokenInfo};
pub use alerts::{Alert, AlertKind, AlertReader, AlertSettings, ClaimedWebhook, NewAlert, Webhook};
pub use approval::Approval;
pub use artifacts::{DatasetMeta, EvalDescription, EvalMeta, Model, NewModel, Upload};
pub use blocks::{Batch, Block, Step, Stepped, Want};
pub use error::{Budget, Fault, Refusal, Result, SignError, StoreError};
pub use exposure::VendorExposure;
pub use grants::{ApprovalMode, Budgets, Grant, Grantee, NewGrant};
pub use holds::Hold;
pub use identity::{CheckKind, FingerprintState, IdentityCheck, StoredFingerprint};
pub use identity_alerts::{IdentityAlert, IdentityAlertReader, IdentityAlertSubject};
pub use ids::{AccountId, AlertId, BlockId, GrantId, IdentityAlertId, JobId, ModelId, TokenId};
pub use jobs::{Cancelled, Claimed, Disposition, Job, JobStatus, Lease, NewJob, Outcome, Renewed};
pub use ledger::{ModelCaps, ModelLedger, PairLedger};
pub use log::{EntryKind, LogEntry, LogReader, LogSlot, SqlLogError};
pub use log_search::EntryFilter;
pub use metering::{BudgetUse, Remaining, UsageRow, WorstCase};
pub use revocation::{GrantStop, REVOKED_REASON, Revocation};
pub use store::{Backend, Store, Tx};
pub use time::Timestamp;
pub use usage_profile::UsageWindow;
