//! `add-checkpoint` without HTTP: parse, verify the log's signature and the consistency proof
//! against the latest checkpoint the witness cosigned, persist, cosign.
//!
//! The checks, in the spec's order (c2sp.org/tlog-witness v1.0.0), each with its answer:
//!
//! | the request | answer |
//! | --- | --- |
//! | not an add-checkpoint body, not a checkpoint, extension lines, a size past 2^63 - 1 | 400 |
//! | an origin the witness does not know | 404 |
//! | no signature by a trusted key of the log, or one that fails | 403 |
//! | an old size above the checkpoint's size | 400 |
//! | an old size that is not the size the witness last cosigned (0 if none) | 409, body `<size>\n`, `text/x.tlog.size` |
//! | an old size equal to the checkpoint's, with another root than the one cosigned | 409 (v1.0.0; later drafts say 422), the same body |
//! | size 0 without the empty tree's root, a proof with old size 0, a proof that does not verify | 422 |
//! | otherwise | 200, one `cosignature/v1` line |
//!
//! Evidence ([`crate::evidence`]) is kept for each refused checkpoint that the log signed and
//! that contradicts the cosigned one: the same size with another root (whatever old size came
//! with it), or a proof from the cosigned size that fails.
//!
//! The stored size changes only by a compare-and-swap ([`WitnessStore::swap`]); a request
//! that loses the race is checked again against what won, so concurrent requests never roll
//! the size back and the answer is the one it would have had arriving second.

use std::time::{SystemTime, UNIX_EPOCH};

use proctor_attest::merkle::empty_root;
use proctor_attest::note::{self, SignedNote};
use proctor_attest::proof::verify_consistency;
use proctor_attest::{
    Checkpoint, CheckpointError, CosignatureError, ProofError, SigningKey, Vkey, cosignature,
};

use crate::evidence::{Evidence, Reason};
use crate::logs::{KnownLogs, LogKey, SignatureError};
use crate::request::{AddCheckpoint, RequestError};
use crate::store::{Latest, StoreError, WitnessStore};

/// The largest tree size the witness stores (SQLite integers are signed).
pub const MAX_TREE_SIZE: u64 = i64::MAX as u64;

/// Compare-and-swap attempts before a request is answered 503: each lost one means another
/// request for the same log won in between, so more than a few means a storm.
const SWAP_ATTEMPTS: usize = 8;

/// Why a checkpoint was not cosigned, with the status the spec gives it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The body is not an add-checkpoint request (400).
    #[error("bad request: {0}")]
    Request(#[from] RequestError),
    /// The checkpoint is not one (400).
    #[error("bad request: {0}")]
    Checkpoint(CheckpointError),
    /// The tree is larger than the witness can hold (400).
    #[error("bad request: a tree size above 2^63 - 1")]
    TooLarge,
    /// The origin is not one of the witness's logs (404).
    #[error("unknown log origin")]
    UnknownLog,
    /// The log's signature is missing or fails (403).
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The old size is above the checkpoint's size (400).
    #[error("bad request: the old size {old} is above the checkpoint's size {size}")]
    OldAboveSize {
        /// The old size sent.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The old size is not the size the witness last cosigned, or is and names another root
    /// (409, with `latest` as the body).
    #[error("the witness's latest cosigned checkpoint of this log has size {latest}")]
    Conflict {
        /// The size of the latest checkpoint the witness cosigned (0 if none).
        latest: u64,
    },
    /// The checkpoint is not consistent with the witness's (422).
    #[error("the consistency proof does not verify: {0}")]
    Proof(ProofError),
    /// A size-0 checkpoint without the empty tree's root (422).
    #[error("a checkpoint of size 0 must have the empty tree's root")]
    EmptyRoot,
    /// The database failed (500).
    #[error("the witness's database failed")]
    Store(#[from] StoreError),
    /// Too many concurrent requests for one log changed its state in between (503).
    #[error("the log's state kept changing; retry")]
    Contended,
    /// The cosignature could not be made (500).
    #[error("cosigning failed: {0}")]
    Cosign(CosignatureError),
}

/// A witness: its name and key, the logs it knows, its database.
#[derive(Debug)]
pub struct Witness {
    name: String,
    vkey: Vkey,
    key: SigningKey,
    logs: KnownLogs,
    store: WitnessStore,
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The log-signature lines of `raw` (a signed note) that are by one of `keys`, each with its
/// newline: what the witness keeps beside its own cosignature for monitors.
fn trusted_lines(raw: &str, note: &SignedNote, keys: &[LogKey]) -> String {
    let ids: Vec<(&str, u32)> = keys
        .iter()
        .map(|k| (k.name.as_str(), note::key_id(&k.name, &k.key)))
        .collect();
    raw[note.text.len() + 1..]
        .split_inclusive('\n')
        .zip(&note.signatures)
        .filter(|(_, sig)| ids.contains(&(sig.name.as_str(), sig.key_id)))
        .map(|(line, _)| line)
        .collect()
}

impl Witness {
    /// A witness named `name` (its cosignatures' key name, a schema-less URL) signing with
    /// `key`.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::BadName`] for a name that cannot be a key name.
    pub fn new(
        name: String,
        key: SigningKey,
        logs: KnownLogs,
        store: WitnessStore,
    ) -> Result<Witness, CosignatureError> {
        let vkey = cosignature::vkey(&name, &key.verifying_key())?;
        Ok(Witness {
            name,
            vkey,
            key,
            logs,
            store,
        })
    }

    /// Its cosigner verifier key (`name+keyid+base64(0x04 || key)`), what logs configure.
    pub fn vkey(&self) -> &Vkey {
        &self.vkey
    }

    /// Its store (for the monitoring and evidence reads).
    pub fn store(&self) -> &WitnessStore {
        &self.store
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Handles an add-checkpoint body: the cosignature line(s) to answer 200 with.
    ///
    /// # Errors
    ///
    /// [`Refusal`], whose [`Refusal::status`] is the answer.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<String, Refusal> {
        let request = AddCheckpoint::parse(body)?;
        let (checkpoint, signed) = Checkpoint::parse_unverified(request.checkpoint.as_bytes())
            .map_err(Refusal::Checkpoint)?;
        if checkpoint.size > MAX_TREE_SIZE {
            return Err(Refusal::TooLarge);
        }
        let keys = self
            .logs
            .keys(&checkpoint.origin)
            .ok_or(Refusal::UnknownLog)?;
        KnownLogs::verify(keys, &signed)?;
        if request.old_size > checkpoint.size {
            return Err(Refusal::OldAboveSize {
                old: request.old_size,
                size: checkpoint.size,
            });
        }
        if checkpoint.size == 0 && checkpoint.root != empty_root() {
            return Err(Refusal::EmptyRoot);
        }
        let log_lines = trusted_lines(&request.checkpoint, &signed, keys);
        for _ in 0..SWAP_ATTEMPTS {
            let latest = self.store.latest(&checkpoint.origin).await?;
            self.check(&request, &checkpoint, latest.as_ref(), body)
                .await?;
            let cosigned_at = now();
            let line = cosignature::sign(&signed.text, &self.name, &self.key, cosigned_at)
                .map_err(Refusal::Cosign)?
                .line();
            let new = Latest {
                size: checkpoint.size,
                root: checkpoint.root,
                note: format!("{}\n{log_lines}{line}", signed.text),
                cosigned_at,
            };
            let expected = latest.map(|l| (l.size, l.root));
            if self.store.swap(&checkpoint.origin, expected, &new).await? {
                tracing::info!(
                    origin = %checkpoint.origin,
                    old = request.old_size,
                    size = checkpoint.size,
                    "cosigned"
                );
                return Ok(line);
            }
        }
        Err(Refusal::Contended)
    }

    /// The checks against the latest cosigned checkpoint; keeps evidence of a contradiction.
    async fn check(
        &self,
        request: &AddCheckpoint,
        checkpoint: &Checkpoint,
        latest: Option<&Latest>,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let (held_size, held_root) = latest.map_or((0, empty_root()), |l| (l.size, l.root));
        let contradiction = match latest {
            Some(l) if checkpoint.size == l.size && checkpoint.root != l.root => {
                Some(Reason::SameSizeOtherRoot)
            }
            _ => None,
        };
        let refusal = if request.old_size != held_size || contradiction.is_some() {
            Refusal::Conflict { latest: held_size }
        } else if request.old_size == 0 && !request.proof.is_empty() {
            Refusal::Proof(ProofError::WrongLength {
                expected: 0,
                got: request.proof.len(),
            })
        } else {
            match verify_consistency(
                held_size,
                checkpoint.size,
                &held_root,
                &checkpoint.root,
                &request.proof,
            ) {
                Ok(()) => return Ok(()),
                Err(err) => {
                    if let Some(l) = latest {
                        self.keep(checkpoint, l, Reason::InconsistentProof, request, body)
                            .await;
                    }
                    return Err(Refusal::Proof(err));
                }
            }
        };
        if let (Some(reason), Some(l)) = (contradiction, latest) {
            self.keep(checkpoint, l, reason, request, body).await;
        }
        Err(refusal)
    }

    /// Keeps evidence; a failure to keep it is logged and the refusal stands.
    async fn keep(
        &self,
        checkpoint: &Checkpoint,
        latest: &Latest,
        reason: Reason,
        request: &AddCheckpoint,
        body: &[u8],
    ) {
        tracing::warn!(
            origin = %checkpoint.origin,
            reason = reason.as_str(),
            cosigned = latest.size,
            refused = checkpoint.size,
            "refused a log-signed checkpoint that contradicts the cosigned one: split-view evidence"
        );
        let evidence = Evidence {
            origin: checkpoint.origin.clone(),
            reason,
            cosigned: latest.note.clone(),
            refused: request.checkpoint.clone(),
            request: String::from_utf8_lossy(body).into_owned(),
            received_at: now(),
        };
        match self.store.keep_evidence(&evidence).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(origin = %checkpoint.origin, "evidence kept before, or full")
            }
            Err(err) => tracing::error!(%err, "keeping split-view evidence failed"),
        }
    }
}

impl Refusal {
    /// The HTTP status the spec gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Request(_)
            | Refusal::Checkpoint(_)
            | Refusal::TooLarge
            | Refusal::OldAboveSize { .. } => 400,
            Refusal::Signature(_) => 403,
            Refusal::UnknownLog => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::Proof(_) | Refusal::EmptyRoot => 422,
            Refusal::Store(_) | Refusal::Cosign(_) => 500,
            Refusal::Contended => 503,
        }
    }
}
