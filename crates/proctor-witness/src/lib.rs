//! A transparency-log witness (c2sp.org/tlog-witness v1.0.0) for a third party to run beside
//! a Proctor service (or any C2SP log with Ed25519 checkpoints): it verifies each checkpoint's
//! log signature and its consistency with the latest checkpoint it cosigned for that log,
//! keeps that latest checkpoint in SQLite, and cosigns with its own Ed25519 key
//! (c2sp.org/tlog-cosignature, `cosignature/v1`). A log-signed checkpoint that contradicts one
//! it cosigned is refused and both are kept as split-view evidence.
//!
//! # Map
//!
//! | module | holds |
//! | --- | --- |
//! | [`request`] | the `add-checkpoint` body: old size, proof lines, checkpoint |
//! | [`logs`] | the logs it knows: origin and trusted keys; the log-signature check |
//! | [`witness`] | [`Witness::add_checkpoint`]: the spec's checks in order, the compare-and-swap, the cosignature |
//! | [`store`] | [`WitnessStore`]: SQLite, each log's latest cosigned checkpoint, the evidence |
//! | [`evidence`] | what is kept of a split view |
//! | [`http`] | the routes: `POST /add-checkpoint`, `GET /<origin hash>/checkpoint`, `GET /evidence` |
//!
//! # Invariants
//!
//! - A log's stored size never goes back: it changes only by a compare-and-swap on the
//!   (size, root) the new checkpoint was verified against.
//! - Nothing is cosigned that is not persisted first: the cosignature is returned only after
//!   the swap that stores it committed.
//! - Nothing from the network panics: bodies are bounded, parsed strictly, and every failure
//!   is an answer with the spec's status.
#![deny(missing_docs)]

pub mod evidence;
pub mod http;
pub mod logs;
pub mod request;
pub mod store;
pub mod witness;

pub use evidence::{Evidence, Reason};
pub use logs::{KnownLogs, LogKey};
pub use store::WitnessStore;
pub use witness::{Refusal, Witness};
