//! The public reads, no token needed: a job's attestations with what a regulator needs to check
//! them offline, the transparency log (checkpoint, entries, inclusion and consistency proofs),
//! and the service's health.
//!
//! Hashes in proofs are standard base64 (with padding) of 32-byte sha256 values, as in
//! `inclusion-proof.json`; envelopes are DSSE v1 JSON, byte for byte the log's leaves. The
//! checkpoint (a C2SP signed note), the service key (PEM) and `/metrics` are text, not JSON.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Which of a job's two log entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// The pre-registration, logged when the job was accepted.
    Accepted,
    /// The result, logged when the job ended.
    #[default]
    Result,
}

impl EntryKind {
    /// The kind as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Accepted => "accepted",
            EntryKind::Result => "result",
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /v1/attestations/{id}?kind=result|accepted`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttestationQuery {
    /// Which entry of the job; `result` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EntryKind>,
}

/// A job's attestation with what a regulator needs to check it offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttestationView {
    /// The job's id.
    #[schema(format = "uuid")]
    pub job_id: String,
    /// Which of its entries this is.
    pub kind: EntryKind,
    /// The entry's index in the log.
    pub log_index: u64,
    /// The DSSE envelope as JSON text, byte for byte the log leaf (`attestation.json`).
    pub envelope: String,
    /// The signed checkpoint (C2SP signed note) the proof leads to.
    pub checkpoint: String,
    /// The entry's inclusion in the checkpoint's tree.
    pub inclusion_proof: InclusionProofView,
}

/// An entry's inclusion in the tree of a given size (`inclusion-proof.json`).
///
/// Fields in the order the server has always written them (alphabetical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProofView {
    /// The proof's hashes, from the leaf up, base64.
    #[schema(content_encoding = "base64")]
    pub hashes: Vec<String>,
    /// The entry's index.
    pub log_index: u64,
    /// The tree's root hash, base64.
    #[schema(content_encoding = "base64")]
    pub root_hash: String,
    /// The tree's size.
    pub tree_size: u64,
}

/// The tree of `new_size` entries extends the one of `old_size`.
///
/// Fields in the order the server has always written them (alphabetical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProofView {
    /// The proof's hashes, base64.
    #[schema(content_encoding = "base64")]
    pub hashes: Vec<String>,
    /// The newer tree's size.
    pub new_size: u64,
    /// The older tree's size.
    pub old_size: u64,
}

/// `GET /v1/log/entries?start=&limit=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEntries {
    /// The first index; 0 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub start: Option<u64>,
    /// How many, in index order; 100 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A log entry. It has no time of its own: its statement carries the signed times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    /// The entry's index.
    pub index: u64,
    /// Which of its job's entries it is.
    pub kind: EntryKind,
    /// The job's id.
    #[schema(format = "uuid")]
    pub job_id: String,
    /// The leaf bytes (the DSSE envelope), standard base64.
    #[schema(content_encoding = "base64")]
    pub envelope: String,
}

/// `GET /v1/log/proof/inclusion?index=&size=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The entry's index; must be below the tree's size.
    #[param(minimum = 0)]
    pub index: u64,
    /// The tree's size; the current head's when left out. At most the log's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 0)]
    pub size: Option<u64>,
}

/// `GET /v1/log/proof/consistency?old=&new=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree's size; at most `new`.
    #[param(minimum = 0)]
    pub old: u64,
    /// The newer tree's size; the current head's when left out. At most the log's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 0)]
    pub new: Option<u64>,
}

/// A DSSE v1 envelope, as the log holds it:
/// `{"payload", "payloadType", "signatures": [{"keyid", "sig"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseEnvelope {
    /// The statement (in-toto JSON), standard base64.
    #[schema(content_encoding = "base64")]
    pub payload: String,
    /// The payload's type, `application/vnd.in-toto+json`.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Ed25519 signatures over the pre-authentication encoding.
    pub signatures: Vec<DsseSignature>,
}

/// One signature of a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseSignature {
    /// The signer's key id (unsigned: a hint for which key to check with), hex.
    pub keyid: String,
    /// The signature, standard base64.
    #[schema(content_encoding = "base64")]
    pub sig: String,
}

/// Whether the service can do its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The database took a write just now (and, on SQLite, its file is the one the service
    /// opened). Answered with 200.
    Ok,
    /// It did not; `fault` says why. Answered with 503, so an orchestrator replaces the
    /// replica.
    Fault,
}

/// What a health probe found wrong (`status` = `fault`): a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthFault {
    /// The database refused the probe's write: a full disk, a read-only file, an unreachable
    /// database, connections that cannot start a transaction.
    WriteFailed,
    /// No file is at the SQLite database's path any more (deleted or moved away): what the
    /// service writes now is lost when it stops.
    FileMissing,
    /// Another file is at the SQLite database's path (restored or copied over while the
    /// service ran): the service writes a file no one else sees.
    FileReplaced,
    /// The SQLite database's path cannot be examined (permissions, I/O).
    FileUnreadable,
    /// The probe did not end in time: the database stalls, or its write lock is held.
    TimedOut,
}

impl HealthFault {
    /// A sentence for people; the database's own error goes only to the service's log.
    pub fn message(self) -> &'static str {
        match self {
            HealthFault::WriteFailed => "the database refuses writes",
            HealthFault::FileMissing => "the database file is gone from its path",
            HealthFault::FileReplaced => "another file is at the database's path",
            HealthFault::FileUnreadable => "the database file's path cannot be examined",
            HealthFault::TimedOut => "the database did not take a write in time",
        }
    }
}

/// `GET /healthz`: `{"status": "ok"}` with 200, or `{"status": "fault", "fault": CODE,
/// "message": TEXT}` with 503.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `fault` (503).
    pub status: HealthStatus,
    /// What is wrong; present exactly when `status` is `fault`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HealthFault>,
    /// The fault's sentence ([`HealthFault::message`]); present exactly when `fault` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Health {
    /// All is well.
    pub fn ok() -> Health {
        Health {
            status: HealthStatus::Ok,
            fault: None,
            message: None,
        }
    }

    /// `fault` was found.
    pub fn fault(fault: HealthFault) -> Health {
        Health {
            status: HealthStatus::Fault,
            fault: Some(fault),
            message: Some(fault.message().to_owned()),
        }
    }
}
