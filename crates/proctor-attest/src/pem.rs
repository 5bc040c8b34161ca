//! PEM armour (RFC 7468): base64 DER between `-----BEGIN LABEL-----` and `-----END LABEL-----`.
//!
//! Hand-written because it is twenty lines: the key files hold one block each, and what is
//! inside is checked by [`crate::keys`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why a text is not the PEM block that was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// No `-----BEGIN ...-----` line at all.
    #[error("not a PEM file: no \"-----BEGIN\" line")]
    NoBegin,
    /// A block of another kind (an RSA or EC key in its own format, an encrypted key, ...).
    #[error("a PEM block labelled {found:?} where {expected:?} was expected")]
    WrongLabel {
        /// The label wanted.
        expected: String,
        /// The label found.
        found: String,
    },
    /// The file ends before the `-----END ...-----` line (a truncated file).
    #[error("the PEM block has no \"-----END {0}-----\" line (truncated file?)")]
    NoEnd(String),
    /// The body is not base64.
    #[error("the PEM body is not base64: {0}")]
    Base64(String),
}

/// Wraps `der` in a PEM block with 64-character lines, ending in a newline.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // The body is ASCII, so slicing it at any byte offset is on a char boundary.
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first PEM block of `text`, which must be labelled `label`. Text before
/// the block (explanatory text, as RFC 7468 allows) and after it is ignored; CRLF line ends are
/// accepted.
pub fn decode(text: &str, label: &str) -> Result<Vec<u8>, PemError> {
    let mut lines = text.lines().map(str::trim);
    let found = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
        })
        .ok_or(PemError::NoBegin)?;
    if found != label {
        return Err(PemError::WrongLabel {
            expected: label.to_owned(),
            found: found.to_owned(),
        });
    }
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines {
        if line == end {
            return STANDARD
                .decode(body.as_bytes())
                .map_err(|e| PemError::Base64(e.to_string()));
        }
        body.push_str(line);
    }
    Err(PemError::NoEnd(label.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_round_trips_with_64_character_lines() {
        let der: Vec<u8> = (0..=255).collect();
        let text = encode("TEST", &der);
        assert!(text.lines().all(|l| l.len() <= 64));
        assert_eq!(decode(&text, "TEST").unwrap(), der);
        assert_eq!(decode(&text.replace('\n', "\r\n"), "TEST").unwrap(), der);
    }

    #[test]
    fn a_wrong_label_a_missing_end_and_bad_base64_are_named() {
        let text = encode("RSA PRIVATE KEY", b"x");
        assert!(matches!(
            decode(&text, "PRIVATE KEY"),
            Err(PemError::WrongLabel { .. })
        ));
        let truncated = &encode("PRIVATE KEY", &[7; 48])[..40];
        assert_eq!(
            decode(truncated, "PRIVATE KEY"),
            Err(PemError::NoEnd("PRIVATE KEY".into()))
        );
        assert_eq!(decode("hello", "PRIVATE KEY"), Err(PemError::NoBegin));
        let bad = "-----BEGIN X-----\n!!!!\n-----END X-----\n";
        assert!(matches!(decode(bad, "X"), Err(PemError::Base64(_))));
    }
}
