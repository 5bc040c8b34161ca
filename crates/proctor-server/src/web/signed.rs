//! Figures as a logged statement states them. The pages read the statement's JSON by path
//! and render each figure as `<span data-path="predicate.samples.total">`; in the browser,
//! `job.js` re-reads the same path from the statement whose signature it has just checked and
//! compares, so a page cannot show a figure the signature does not cover (`data-entry` says
//! which of the job's two entries a figure is from). Both sides format a
//! value one way ([`text`] here, `signedText` in `job.js`).

use maud::{Markup, html};
use proctor_attest::dsse::Envelope;
use proctor_store::{EntryKind, LogEntry};
use serde_json::Value;

/// A logged entry's statement, read from its envelope's payload. The server signed it; the
/// page shows it as the log holds it, and the browser checks the signature.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The entry's index.
    pub index: u64,
    /// What it records: its figures are marked with it (`data-entry`).
    pub kind: EntryKind,
    root: Value,
}

impl Signed {
    /// The statement of `entry`; `None` when its envelope or payload does not parse (the
    /// service wrote it, so that would be a corrupt database; the page then says so).
    pub fn of(entry: &LogEntry) -> Option<Signed> {
        let envelope = Envelope::from_bytes(&entry.envelope).ok()?;
        let root = serde_json::from_slice(envelope.payload_unverified()).ok()?;
        Some(Signed {
            index: entry.index,
            kind: entry.kind,
            root,
        })
    }

    /// The value at a dotted path (`predicate.samples.total`, `predicate.metrics.acc.ci95.0`),
    /// each key in it written by [`segment`].
    pub fn at(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(&self.root, |value, raw| {
            let key = raw.replace("~1", ".").replace("~0", "~");
            match value {
                Value::Object(map) => map.get(&key),
                Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            }
        })
    }

    /// The string at `path`, if it is one.
    pub fn str(&self, path: &str) -> Option<&str> {
        self.at(path).and_then(Value::as_str)
    }

    /// The predicate type's last two segments (`eval-result/v4`).
    pub fn predicate_type(&self) -> &str {
        let full = self.str("predicateType").unwrap_or("");
        let cut = full.rmatch_indices('/').nth(1).map_or(0, |(i, _)| i + 1);
        &full[cut..]
    }

    /// The figure at `path`, marked for the browser's comparison.
    pub fn figure(&self, path: &str) -> Markup {
        html! {
            span data-entry=(self.kind.as_str()) data-path=(path) { (text(self.at(path))) }
        }
    }

    /// The keys of the object at `path`, in order (metric names, noise scales, channels).
    pub fn keys(&self, path: &str) -> Vec<String> {
        match self.at(path) {
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// A key as one segment of a path: metric and channel names are the eval's own and may hold
/// a dot (`metrics.accuracy` is a leakage channel), so `~` and `.` are escaped as JSON
/// Pointer escapes `~`, and `job.js` reads them back the same way.
pub fn segment(key: &str) -> String {
    key.replace('~', "~0").replace('.', "~1")
}

/// How a figure reads: a string as it is, a number in plain decimal notation (shortest digits
/// that read back to the same double, never an exponent), `—` for null or absent, arrays and
/// objects as JSON.
pub fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (None, Some(i), _) => i.to_string(),
            // Rust's `Display` for f64 is the shortest round-trip form without an exponent.
            (None, None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Signed, text};
    use proctor_store::EntryKind;
    use serde_json::json;

    fn signed(root: serde_json::Value) -> Signed {
        Signed {
            index: 0,
            kind: EntryKind::Result,
            root,
        }
    }

    #[test]
    fn paths_reach_objects_and_arrays() {
        let s = signed(
            json!({"predicateType": "https://proctor.dev/attestation/eval-result/v4",
            "predicate": {"metrics": {"acc": {"ci95": [0.25, 0.5]}}, "n": 3}}),
        );
        assert_eq!(text(s.at("predicate.metrics.acc.ci95.1")), "0.5");
        assert_eq!(text(s.at("predicate.n")), "3");
        assert_eq!(text(s.at("predicate.nothing")), "—");
        assert_eq!(text(s.at("predicate.n.deeper")), "—");
        assert_eq!(s.predicate_type(), "eval-result/v4");
        assert_eq!(s.keys("predicate.metrics"), ["acc"]);
    }

    #[test]
    fn numbers_read_as_javascript_reads_them() {
        // What `String(x)` gives in JavaScript, except that no exponent is written.
        for (value, expected) in [
            (json!(1.0), "1"),
            (json!(0.1), "0.1"),
            (json!(0.30000000000000004), "0.30000000000000004"),
            (json!(-2.5), "-2.5"),
            (json!(1e-7), "0.0000001"),
            (json!(12345678), "12345678"),
            (json!(null), "—"),
        ] {
            assert_eq!(text(Some(&value)), expected, "{value}");
        }
    }
}
