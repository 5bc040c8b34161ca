//! Proctor's claims, made checkable: Ed25519 keys, signed in-toto attestations in DSSE
//! envelopes, the append-only Merkle transparency log with its proofs and signed checkpoints,
//! and the offline checks `proctor verify` runs.
//!
//! # Map
//!
//! - [`keys`]: the service's Ed25519 key pair, its PEM files and its key id.
//! - [`dsse`]: DSSE v1 envelopes, serialized once and kept as bytes (what was signed is what is
//!   stored, served and logged).
//! - [`statement`]: the in-toto Statement v1 and Proctor's two versioned predicates
//!   (job accepted, eval result); every predicate field is documented there.
//! - [`merkle`]: RFC 6962/9162 hashing and the addressing of perfect subtrees.
//! - [`plan`]: which stored subtree hashes an append or a proof needs, and how to put the
//!   answer together; pure, so a SQL store can run it inside its own transaction.
//! - [`log`]: the log over a [`log::NodeStore`]; [`memory::MemoryStore`] keeps it in memory.
//! - [`proof`]: pure verification of inclusion and consistency proofs, and their JSON files.
//! - [`note`] and [`checkpoint`]: C2SP signed notes and the tlog checkpoint inside them;
//!   [`vkey`]: the one-line verifier keys that name a log's or a witness's key;
//!   [`cosignature`]: witnesses' `cosignature/v1` lines on a checkpoint.
//! - [`tiles`]: the log as tlog-tiles (which stored hashes a tile holds, paths, bundles).
//! - [`tlog_proof`] and [`tlog_policy`]: the offline receipt of one entry and the trust
//!   policy (log key, witnesses, quorum) it is checked against.
//! - [`verify`]: the offline checks, one named result per check.
//!
//! # Verifying a result offline
//!
//! What a regulator runs, with the service's public key obtained from the operator out of
//! band (`proctor keys show` prints it with its key id, to compare):
//!
//! ```text
//! proctor verify RESULT_DIR --key service-public-key.pem
//! proctor verify attestation.json --key service-public-key.pem \
//!     --eval eval.wasm --dataset dataset.jsonl \
//!     --checkpoint checkpoint.txt --proof inclusion-proof.json
//! proctor verify-consistency old-checkpoint.txt checkpoint.txt \
//!     --proof consistency-proof.json --key service-public-key.pem
//! ```
//!
//! Each prints one line per check (`signature: ok`, `subjects: ok`, `checkpoint: ok`,
//! `inclusion: ok`, or `<check>: FAILED (<why>)`) and exits 0 only when all pass, 1 when one
//! fails, 2 when an input cannot be read. Any DSSE verifier can check `attestation.json`
//! instead (the key id is the SHA-256 of the public key's DER), and any C2SP note reader the
//! checkpoint; `.ci/attest-interop.sh` does both with independent code.
//!
//! # Invariants
//!
//! - A log leaf is the exact bytes of a signed DSSE envelope, as served; nothing is ever
//!   re-serialized to be verified.
//! - The log stores the hash of every complete perfect subtree and nothing that changes
//!   afterwards, so a proof for any past tree size costs O(log n) stored-hash reads.
//! - One key signs envelopes and checkpoints.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod cosignature;
pub mod dsse;
pub mod earlier;
pub mod keys;
pub mod log;
pub mod memory;
pub mod merkle;
pub mod note;
pub mod pem;
pub mod plan;
pub mod proof;
pub mod statement;
pub mod tiles;
pub mod tlog_policy;
pub mod tlog_proof;
pub mod verify;
pub mod vkey;

mod b64;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use cosignature::{Cosignature, CosignatureError};
pub use dsse::{DsseError, Envelope};
pub use keys::{KeyError, SigningKey, VerifyingKey};
pub use log::{Appended, LogError, NodeStore, TreeHead};
pub use memory::MemoryStore;
pub use merkle::{Hash, NodeId};
pub use proof::{ConsistencyProof, InclusionProof, ProofError};
pub use statement::{EvalResult, Exposure, JobAccepted, JobStatus, Statement};
pub use vkey::{SignatureType, Vkey, VkeyError};
