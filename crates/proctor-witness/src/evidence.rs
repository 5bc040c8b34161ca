//! Split-view evidence: a checkpoint that its log really signed (the signature verified) and
//! that contradicts the checkpoint the witness had cosigned. Together the two notes prove the
//! log showed two different trees: anyone holding the log's key can check both signatures,
//! and either two roots for one size or a failing consistency proof between them.

use serde::Serialize;

/// How the refused checkpoint contradicts the cosigned one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// It has the cosigned checkpoint's size and another root.
    SameSizeOtherRoot,
    /// Its consistency proof from the cosigned checkpoint's size does not verify.
    InconsistentProof,
}

impl Reason {
    /// The stored (and served) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SameSizeOtherRoot => "same-size-other-root",
            Reason::InconsistentProof => "inconsistent-proof",
        }
    }

    /// The reason of a stored name.
    pub fn parse(text: &str) -> Option<Reason> {
        [Reason::SameSizeOtherRoot, Reason::InconsistentProof]
            .into_iter()
            .find(|reason| reason.as_str() == text)
    }
}

/// One piece of evidence, as kept and as `GET /evidence` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The log's origin.
    pub origin: String,
    /// How the two checkpoints disagree.
    pub reason: Reason,
    /// The checkpoint the witness had cosigned: the log's signature and the witness's
    /// cosignature.
    pub cosigned: String,
    /// The refused checkpoint, as the log sent it.
    pub refused: String,
    /// The whole add-checkpoint request (old size and proof lines, then the checkpoint).
    pub request: String,
    /// When it arrived (seconds since the Unix epoch).
    pub received_at: u64,
}
