//! The offline checks of `proctor verify` and `proctor verify-consistency`.
//!
//! Each check has a name and passes or fails with a reason; the caller prints one line per
//! check ([`CheckResult`]'s `Display`: `signature: ok`, `inclusion: FAILED (...)`).
//!
//! - `signature`: the DSSE envelope verifies with a key the verifier holds.
//! - `subjects`: the local eval and dataset files hash to the statement's subjects (and the
//!   subjects agree with the digests in the predicate).
//! - `checkpoint`: the checkpoint is a signed note by the same key.
//! - `inclusion`: the envelope's exact bytes, as a leaf, are in the checkpoint's tree at the
//!   proof's index; the index is the one the statement records for itself.
//! - `old-checkpoint`, `new-checkpoint`, `consistency`: two checkpoints by the key, and the
//!   newer tree extends the older one; two of one size with different roots are a split view.
//! - With a tlog-policy and a `.tlog-proof` receipt ([`verify_receipt`]): `checkpoint` is the
//!   policy's log signature, `witnesses` the policy's quorum of cosignatures, `inclusion` the
//!   receipt's proof; the envelope's key is the policy's log key.
//!
//! A check that needs what another check could not establish fails and says so: a subject is
//! not compared against an unsigned statement, nor a proof against an unsigned checkpoint.

use std::fmt;

use proctor_core::Sha256Digest;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::dsse::{DsseError, Envelope};
use crate::keys::VerifyingKey;
use crate::merkle::leaf_hash;
use crate::proof::{ConsistencyProof, InclusionProof, ProofError, verify_inclusion};
use crate::statement::{DATASET_SUBJECT, EVAL_SUBJECT, PAYLOAD_TYPE, Statement, StatementError};
use crate::tlog_policy::{Policy, PolicyFailure};
use crate::tlog_proof::{TlogProof, TlogProofError};

/// The name of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The envelope's signature.
    Signature,
    /// Local files against the statement's subjects.
    Subjects,
    /// The checkpoint's signature.
    Checkpoint,
    /// The envelope's inclusion in the checkpoint's tree.
    Inclusion,
    /// The older checkpoint's signature.
    OldCheckpoint,
    /// The newer checkpoint's signature.
    NewCheckpoint,
    /// The newer tree extends the older one.
    Consistency,
    /// The checkpoint's cosignatures meet the policy's quorum.
    Witnesses,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Signature => "signature",
            Check::Subjects => "subjects",
            Check::Checkpoint => "checkpoint",
            Check::Inclusion => "inclusion",
            Check::OldCheckpoint => "old-checkpoint",
            Check::NewCheckpoint => "new-checkpoint",
            Check::Consistency => "consistency",
            Check::Witnesses => "witnesses",
        })
    }
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The envelope is malformed or its signature does not verify.
    #[error(transparent)]
    Envelope(#[from] DsseError),
    /// The envelope does not hold an in-toto statement.
    #[error("payload type {0:?}, expected {PAYLOAD_TYPE:?}")]
    PayloadType(String),
    /// The payload is not an in-toto statement.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// The statement has no single subject of this name.
    #[error("the statement has no single subject named {0:?}")]
    NoSubject(&'static str),
    /// A local file is not the one attested.
    #[error("{name}: the file's sha256 is {local}; the statement attests {attested}")]
    SubjectMismatch {
        /// The subject's name.
        name: &'static str,
        /// The local file's digest.
        local: Sha256Digest,
        /// The statement's digest.
        attested: Sha256Digest,
    },
    /// The statement's subject and its predicate's digest disagree.
    #[error("the statement's {0:?} subject and its predicate's digest disagree")]
    PredicateMismatch(&'static str),
    /// The checkpoint is malformed or its signature does not verify.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The proof does not verify.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The proof does not verify, and the envelope file ends in a newline the service does not
    /// write.
    #[error(
        "{0} (the leaf is the file's exact bytes, and this file ends in a newline: was one added?)"
    )]
    ProofTrailingNewline(ProofError),
    /// The proof file names another tree than the checkpoint.
    #[error(
        "the proof is for a tree of {proof_size} leaves and another root; the checkpoint is of {checkpoint_size}"
    )]
    ProofForAnotherTree {
        /// The proof file's tree size.
        proof_size: u64,
        /// The checkpoint's tree size.
        checkpoint_size: u64,
    },
    /// The consistency proof names other sizes than the checkpoints.
    #[error(
        "the proof is from size {proof_old} to {proof_new}; the checkpoints are of {old} and {new}"
    )]
    ProofForOtherSizes {
        /// The proof's old size.
        proof_old: u64,
        /// The proof's new size.
        proof_new: u64,
        /// The older checkpoint's size.
        old: u64,
        /// The newer checkpoint's size.
        new: u64,
    },
    /// The two checkpoints are of different logs.
    #[error("the checkpoints are of different logs ({0:?} and {1:?})")]
    OtherLog(String, String),
    /// The statement records another log index than the proof's.
    #[error("the statement says it is log entry {attested}; the proof is for entry {proof}")]
    LogIndexMismatch {
        /// The statement's `log_index`.
        attested: u64,
        /// The proof's `log_index`.
        proof: u64,
    },
    /// Two checkpoints of one log and one size with different roots, both validly signed: the
    /// log showed two different trees (a split view). Both files are the evidence.
    #[error(
        "SPLIT VIEW: the log {origin:?} signed two different trees of size {size} (roots {} and {}); \
         keep both checkpoints as evidence",
        crate::b64::encode(.first),
        crate::b64::encode(.second)
    )]
    SplitView {
        /// The log's origin.
        origin: String,
        /// The size both claim.
        size: u64,
        /// The first checkpoint's root.
        first: crate::merkle::Hash,
        /// The second checkpoint's root.
        second: crate::merkle::Hash,
    },
    /// The receipt cannot be read.
    #[error(transparent)]
    Receipt(#[from] TlogProofError),
    /// The checkpoint does not satisfy the policy.
    #[error(transparent)]
    Policy(#[from] PolicyFailure),
    /// A check that rests on another one that failed.
    #[error("not checked: {0}")]
    Untrusted(&'static str),
    /// An input the check needs was not given.
    #[error("{0}")]
    Missing(&'static str),
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// Passed, or why not.
    pub outcome: Result<(), Failure>,
    /// What a passed check found, when there is more to say than "ok" (who cosigned).
    pub note: Option<String>,
}

impl CheckResult {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.outcome.is_ok()
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.outcome, &self.note) {
            (Ok(()), Some(note)) => write!(f, "{}: ok ({note})", self.check),
            (Ok(()), None) => write!(f, "{}: ok", self.check),
            (Err(why), _) => write!(f, "{}: FAILED ({why})", self.check),
        }
    }
}

/// The results of all checks asked for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// One per check.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// Whether every check passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(CheckResult::passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        Ok(())
    }
}

/// What `proctor verify` checks.
#[derive(Debug, Clone, Copy)]
pub struct AttestationInputs<'a> {
    /// The envelope file's bytes, exactly.
    pub envelope: &'a [u8],
    /// The keys to trust.
    pub keys: &'a [VerifyingKey],
    /// The sha256 of a local eval component, to compare with the `eval.wasm` subject.
    pub eval: Option<Sha256Digest>,
    /// The sha256 of a local dataset, to compare with the `dataset.jsonl` subject.
    pub dataset: Option<Sha256Digest>,
    /// A signed checkpoint's bytes.
    pub checkpoint: Option<&'a [u8]>,
    /// An `inclusion-proof.json`'s bytes (needs `checkpoint`).
    pub inclusion_proof: Option<&'a [u8]>,
}

/// Runs the checks `inputs` ask for: `signature` always, `subjects` when a local file is
/// given, `checkpoint` when a checkpoint is, `inclusion` when a proof is.
pub fn verify_attestation(inputs: &AttestationInputs<'_>) -> Report {
    let mut checks = Vec::new();
    let envelope = Envelope::from_bytes(inputs.envelope);
    let signature = envelope
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|env| env.verify(inputs.keys).map(|v| v.payload));
    checks.push(CheckResult {
        check: Check::Signature,
        outcome: signature.as_ref().map(|_| ()).map_err(|e| e.clone().into()),
        note: None,
    });
    // Only a signed payload is worth reading.
    let statement = match &signature {
        Ok(payload) => statement_of(envelope.as_ref().ok(), payload),
        Err(_) => Err(Failure::Untrusted("the signature did not verify")),
    };

    if inputs.eval.is_some() || inputs.dataset.is_some() {
        let outcome = statement.as_ref().map_err(Clone::clone).and_then(|s| {
            check_subject(s, EVAL_SUBJECT, "eval", inputs.eval)?;
            check_subject(s, DATASET_SUBJECT, "dataset", inputs.dataset)
        });
        checks.push(CheckResult {
            check: Check::Subjects,
            outcome,
            note: None,
        });
    }

    let checkpoint = inputs
        .checkpoint
        .map(|bytes| open_with_any(bytes, inputs.keys));
    if let Some(checkpoint) = &checkpoint {
        checks.push(CheckResult {
            check: Check::Checkpoint,
            outcome: checkpoint
                .as_ref()
                .map(|_| ())
                .map_err(|e| e.clone().into()),
            note: None,
        });
    }

    if let Some(proof) = inputs.inclusion_proof {
        let outcome = match &checkpoint {
            None => Err(Failure::Missing("no checkpoint to check the proof against")),
            Some(Err(_)) => Err(Failure::Untrusted("the checkpoint did not verify")),
            Some(Ok(cp)) => check_inclusion(inputs.envelope, proof, cp, statement.as_ref().ok()),
        };
        checks.push(CheckResult {
            check: Check::Inclusion,
            outcome,
            note: None,
        });
    }
    Report { checks }
}

/// What `proctor verify-consistency` checks: both checkpoints' signatures, then the proof
/// between them. Two checkpoints of one size need no proof: equal roots are consistent, and
/// different ones are a split view ([`Failure::SplitView`]), whatever a proof says.
pub fn verify_consistency(
    old_checkpoint: &[u8],
    new_checkpoint: &[u8],
    proof: Option<&[u8]>,
    keys: &[VerifyingKey],
) -> Report {
    let old = open_with_any(old_checkpoint, keys);
    let new = open_with_any(new_checkpoint, keys);
    let consistency = match (&old, &new) {
        (Ok(old), Ok(new)) => check_consistency(old, new, proof),
        _ => Err(Failure::Untrusted("a checkpoint did not verify")),
    };
    Report {
        checks: vec![
            CheckResult {
                check: Check::OldCheckpoint,
                outcome: old.map(|_| ()).map_err(Into::into),
                note: None,
            },
            CheckResult {
                check: Check::NewCheckpoint,
                outcome: new.map(|_| ()).map_err(Into::into),
                note: None,
            },
            CheckResult {
                check: Check::Consistency,
                outcome: consistency,
                note: None,
            },
        ],
    }
}

/// What `proctor verify --policy` checks: an envelope and its tlog-proof receipt against a
/// tlog-policy, offline.
#[derive(Debug, Clone, Copy)]
pub struct ReceiptInputs<'a> {
    /// The envelope file's bytes, exactly (the log leaf).
    pub envelope: &'a [u8],
    /// The `.tlog-proof` file's bytes.
    pub receipt: &'a [u8],
    /// The trust policy: the log's key, the witnesses, the quorum.
    pub policy: &'a Policy,
    /// The sha256 of a local eval component.
    pub eval: Option<Sha256Digest>,
    /// The sha256 of a local dataset.
    pub dataset: Option<Sha256Digest>,
}

/// Runs `signature` (with the key of the log the receipt names, from the policy: one key signs
/// envelopes and checkpoints), `subjects` when a local file is given, `checkpoint` (the log's
/// signature), `witnesses` (the quorum) and `inclusion` (the envelope's exact bytes at the
/// receipt's index, which the statement records as its own).
pub fn verify_receipt(inputs: &ReceiptInputs<'_>) -> Report {
    let receipt = TlogProof::parse(inputs.receipt);
    let parsed = receipt
        .as_ref()
        .map_err(|e| Failure::Receipt(e.clone()))
        .and_then(|r| Ok(Checkpoint::parse_unverified(r.checkpoint.as_bytes())?));
    // The log key: the one the policy names for the receipt's origin; with an unreadable
    // receipt, any of the policy's logs (the signature check still means something).
    let keys: Vec<VerifyingKey> = match &parsed {
        Ok((checkpoint, _)) => inputs
            .policy
            .log_for(&checkpoint.origin)
            .map(|l| *l.vkey.key())
            .into_iter()
            .collect(),
        Err(_) => inputs.policy.logs().iter().map(|l| *l.vkey.key()).collect(),
    };
    let mut report = verify_attestation(&AttestationInputs {
        envelope: inputs.envelope,
        keys: &keys,
        eval: inputs.eval,
        dataset: inputs.dataset,
        checkpoint: None,
        inclusion_proof: None,
    });
    let statement_index = Envelope::from_bytes(inputs.envelope)
        .ok()
        .and_then(|env| env.verify(&keys).ok().map(|v| v.payload.to_vec()))
        .and_then(|payload| Statement::parse_any(&payload).ok())
        .and_then(|s| s.predicate["log_index"].as_u64());

    let log_signed = parsed.clone().and_then(|(checkpoint, note)| {
        let log = inputs
            .policy
            .log_for(&checkpoint.origin)
            .ok_or_else(|| PolicyFailure::UnknownLog(checkpoint.origin.clone()))?;
        note.verify(log.vkey.name(), log.vkey.key())
            .map_err(PolicyFailure::LogSignature)?;
        Ok(())
    });
    report.checks.push(CheckResult {
        check: Check::Checkpoint,
        outcome: log_signed.clone(),
        note: None,
    });
    let satisfied = match (&receipt, &log_signed) {
        (Ok(r), Ok(())) => inputs
            .policy
            .verify_checkpoint(r.checkpoint.as_bytes())
            .map_err(Failure::from),
        _ => Err(Failure::Untrusted("the checkpoint did not verify")),
    };
    report.checks.push(CheckResult {
        check: Check::Witnesses,
        outcome: satisfied.as_ref().map(|_| ()).map_err(Clone::clone),
        note: satisfied.as_ref().ok().map(|s| {
            let names: Vec<&str> = s.cosigned.iter().map(|(n, _)| n.as_str()).collect();
            format!(
                "cosigned by {} of {}: {}; quorum `{}`",
                names.len(),
                inputs.policy.witnesses().len(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
                inputs.policy.quorum_name()
            )
        }),
    });
    let inclusion = match (&receipt, &satisfied) {
        (Ok(r), Ok(s)) => r
            .verify_inclusion(&leaf_hash(inputs.envelope), s)
            .map_err(Failure::from)
            .and(match statement_index {
                Some(attested) if attested != r.index => Err(Failure::LogIndexMismatch {
                    attested,
                    proof: r.index,
                }),
                _ => Ok(()),
            }),
        _ => Err(Failure::Untrusted(
            "the checkpoint does not satisfy the policy",
        )),
    };
    report.checks.push(CheckResult {
        check: Check::Inclusion,
        outcome: inclusion,
        note: None,
    });
    report
}

fn statement_of(
    envelope: Option<&Envelope>,
    payload: &[u8],
) -> Result<Statement<serde_json::Value>, Failure> {
    let payload_type = envelope.map(Envelope::payload_type).unwrap_or_default();
    if payload_type != PAYLOAD_TYPE {
        return Err(Failure::PayloadType(payload_type.to_owned()));
    }
    Ok(Statement::parse_any(payload)?)
}

fn check_subject(
    statement: &Statement<serde_json::Value>,
    name: &'static str,
    predicate_field: &str,
    local: Option<Sha256Digest>,
) -> Result<(), Failure> {
    let Some(local) = local else {
        return Ok(());
    };
    let attested = statement
        .subject_digest(name)
        .ok_or(Failure::NoSubject(name))?;
    // Proctor's predicates repeat the digests; a statement whose two copies disagree is not
    // one Proctor signed in good order.
    if let Some(claimed) = statement.predicate[predicate_field]["sha256"].as_str()
        && claimed.parse::<Sha256Digest>().ok() != Some(attested)
    {
        return Err(Failure::PredicateMismatch(name));
    }
    if local != attested {
        return Err(Failure::SubjectMismatch {
            name,
            local,
            attested,
        });
    }
    Ok(())
}

fn open_with_any(bytes: &[u8], keys: &[VerifyingKey]) -> Result<Checkpoint, CheckpointError> {
    let mut last = None;
    for key in keys {
        match Checkpoint::open(bytes, key) {
            Ok(checkpoint) => return Ok(checkpoint),
            Err(e) => last = Some(e),
        }
    }
    // With no keys at all, report what the checkpoint itself says, else that nothing signed it.
    Err(
        last.unwrap_or_else(|| match Checkpoint::parse_unverified(bytes) {
            Err(e) => e,
            Ok(_) => CheckpointError::Malformed("no key to verify it with"),
        }),
    )
}

fn check_inclusion(
    envelope: &[u8],
    proof: &[u8],
    checkpoint: &Checkpoint,
    statement: Option<&Statement<serde_json::Value>>,
) -> Result<(), Failure> {
    let proof = InclusionProof::from_json(proof)?;
    if proof.tree_size != checkpoint.size || proof.root_hash != checkpoint.root {
        return Err(Failure::ProofForAnotherTree {
            proof_size: proof.tree_size,
            checkpoint_size: checkpoint.size,
        });
    }
    verify_inclusion(
        proof.log_index,
        checkpoint.size,
        &leaf_hash(envelope),
        &proof.hashes,
        &checkpoint.root,
    )
    .map_err(|e| {
        if envelope.ends_with(b"\n") {
            Failure::ProofTrailingNewline(e)
        } else {
            Failure::Proof(e)
        }
    })?;
    if let Some(attested) = statement.and_then(|s| s.predicate["log_index"].as_u64())
        && attested != proof.log_index
    {
        return Err(Failure::LogIndexMismatch {
            attested,
            proof: proof.log_index,
        });
    }
    Ok(())
}

fn check_consistency(
    old: &Checkpoint,
    new: &Checkpoint,
    proof: Option<&[u8]>,
) -> Result<(), Failure> {
    if old.origin != new.origin {
        return Err(Failure::OtherLog(old.origin.clone(), new.origin.clone()));
    }
    if old.size == new.size && old.root != new.root {
        return Err(Failure::SplitView {
            origin: old.origin.clone(),
            size: old.size,
            first: old.root,
            second: new.root,
        });
    }
    let Some(proof) = proof else {
        if old.size == new.size {
            return Ok(());
        }
        return Err(Failure::Missing(
            "checkpoints of different sizes need a consistency proof (--proof)",
        ));
    };
    let proof = ConsistencyProof::from_json(proof)?;
    if proof.old_size != old.size || proof.new_size != new.size {
        return Err(Failure::ProofForOtherSizes {
            proof_old: proof.old_size,
            proof_new: proof.new_size,
            old: old.size,
            new: new.size,
        });
    }
    proof.verify(&old.root, &new.root)?;
    Ok(())
}
