//! A vendor's API key, kept out of every log line and error message.
//!
//! The value leaves this type only as an HTTP header marked sensitive (so the HTTP stack's own
//! debug output redacts it too), sent to the configured endpoint and nowhere else.

use std::fmt;

/// An API key. `Debug` and `Display` print `<redacted>`; there is no way to print the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// Wraps a key, e.g. one the service decrypted from its store.
    pub fn new(value: impl Into<String>) -> Credential {
        Credential(value.into())
    }

    /// The key itself, for building the request header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_never_prints_its_value() {
        let key = Credential::new("sk-very-secret");
        assert_eq!(format!("{key}"), "<redacted>");
        assert_eq!(format!("{key:?}"), "Credential(<redacted>)");
        assert_eq!(format!("{:?}", Some(&key)), "Some(Credential(<redacted>))");
    }
}
