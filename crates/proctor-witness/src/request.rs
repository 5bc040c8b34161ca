//! The body of `POST /add-checkpoint` (c2sp.org/tlog-witness v1.0.0):
//!
//! ```text
//! old <size of the previous checkpoint, decimal, no leading zeros>
//! <base64 hash>            zero to 63 consistency proof lines
//!
//! <signed checkpoint note>
//! ```
//!
//! Every line ends in a newline. No header line can be empty, so the first blank line ends
//! the header and everything after it is the checkpoint note. Parsing is strict: canonical
//! decimals, canonical standard base64 of exactly 32 bytes, no line ends but `\n`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proctor_attest::Hash;

/// Most consistency proof lines a client may send (the spec's bound: a proof between two
/// trees of at most 2^64 leaves has fewer).
pub const MAX_PROOF_LINES: usize = 63;

/// A parsed add-checkpoint request; the checkpoint is not yet parsed or verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness holds.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, ending in a newline.
    pub checkpoint: String,
}

/// Why a request body is not an add-checkpoint request (HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not UTF-8.
    #[error("the body is not UTF-8")]
    NotUtf8,
    /// No blank line separates the header from the checkpoint.
    #[error("no empty line between the old size and proof lines and the checkpoint")]
    NoSeparator,
    /// The first line is not `old <size>`.
    #[error("the first line must be `old <size>`, the size in decimal without leading zeros")]
    OldSize,
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("more than 63 consistency proof lines")]
    TooManyProofLines,
    /// A proof line is not the canonical base64 of a 32-byte hash.
    #[error("a consistency proof line is not a base64 SHA-256 hash")]
    ProofLine,
    /// Nothing, or no final newline, after the blank line.
    #[error("the checkpoint is missing or does not end in a newline")]
    Checkpoint,
}

/// A decimal without leading zeros (`0` itself allowed), as the spec writes sizes.
pub fn parse_size(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn parse_hash(line: &str) -> Option<Hash> {
    let bytes = STANDARD.decode(line).ok()?;
    // The engine refuses non-zero trailing bits and missing padding, so this is canonical.
    bytes.try_into().ok()
}

impl AddCheckpoint {
    /// Parses a request body.
    ///
    /// # Errors
    ///
    /// [`RequestError`] naming the first thing that breaks the format.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, RequestError> {
        let body = std::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?;
        let (head, checkpoint) = body.split_once("\n\n").ok_or(RequestError::NoSeparator)?;
        let mut lines = head.split('\n');
        let old_size = lines
            .next()
            .and_then(|line| line.strip_prefix("old "))
            .and_then(parse_size)
            .ok_or(RequestError::OldSize)?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            proof.push(parse_hash(line).ok_or(RequestError::ProofLine)?);
        }
        if checkpoint.is_empty() || !checkpoint.ends_with('\n') {
            return Err(RequestError::Checkpoint);
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The request body: what a log sends.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&STANDARD.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "example.com/log\n2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} example.com/log AAAA\n";

    #[test]
    fn a_request_round_trips() {
        let request = AddCheckpoint {
            old_size: 1,
            proof: vec![[7; 32], [8; 32]],
            checkpoint: NOTE.to_owned(),
        };
        assert_eq!(
            AddCheckpoint::parse(request.to_body().as_bytes()),
            Ok(request)
        );
    }

    #[test]
    fn bodies_that_bend_the_format_are_refused_by_name() {
        let hash = STANDARD.encode([7; 32]);
        let cases = [
            (format!("old 01\n\n{NOTE}"), RequestError::OldSize),
            (format!("old -1\n\n{NOTE}"), RequestError::OldSize),
            (format!("old 1 \n\n{NOTE}"), RequestError::OldSize),
            (format!("Old 1\n\n{NOTE}"), RequestError::OldSize),
            (
                format!("old 18446744073709551616\n\n{NOTE}"),
                RequestError::OldSize,
            ),
            (format!("old 1\r\n\n{NOTE}"), RequestError::OldSize),
            (format!("old 1\n{hash}"), RequestError::NoSeparator),
            (
                format!("old 1\n{}\n\n{NOTE}", &hash[..40]),
                RequestError::ProofLine,
            ),
            (format!("old 1\n{hash} \n\n{NOTE}"), RequestError::ProofLine),
            (
                format!("old 1\n{}\n\n{NOTE}", STANDARD.encode([7; 31])),
                RequestError::ProofLine,
            ),
            ("old 1\n\n".to_owned(), RequestError::Checkpoint),
            (
                format!("old 1\n\n{}", NOTE.trim_end()),
                RequestError::Checkpoint,
            ),
            (
                format!("old 1\n{}\n{NOTE}", vec![hash.as_str(); 64].join("\n")),
                RequestError::TooManyProofLines,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                AddCheckpoint::parse(body.as_bytes()),
                Err(expected),
                "{body:?}"
            );
        }
        assert_eq!(
            AddCheckpoint::parse(b"old 1\n\n\xff\n"),
            Err(RequestError::NotUtf8)
        );
        let at_most = format!("old 1\n{}\n\n{NOTE}", vec![hash.as_str(); 63].join("\n"));
        assert_eq!(
            AddCheckpoint::parse(at_most.as_bytes()).map(|r| r.proof.len()),
            Ok(63)
        );
    }
}
