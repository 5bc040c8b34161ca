//! Datasets: JSONL, one JSON value per line, item i is line i.
//!
//! The guest receives a line's text exactly as written (without its line end), so what was
//! hashed is what the guest saw.

use std::ops::Range;

use crate::digest::Sha256Digest;

/// A parsed dataset: the file's text and where each item lies in it.
#[derive(Debug, Clone)]
pub struct Dataset {
    text: String,
    items: Vec<Range<usize>>,
    digest: Sha256Digest,
}

/// Why a dataset was refused. Line numbers count from 1, as editors do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    /// No items at all.
    #[error("the dataset is empty: it needs at least one JSON line")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("the dataset is not UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// An empty line other than a final newline.
    #[error("line {0} is empty: every line must be one JSON value")]
    EmptyLine(usize),
    /// A line that is not one JSON value.
    #[error("line {line} is not one JSON value: {message}")]
    NotJson {
        /// 1-based line.
        line: usize,
        /// serde_json's complaint.
        message: String,
    },
    /// More items than the caller allows.
    #[error("the dataset has more than {0} lines")]
    TooManyLines(usize),
}

impl Dataset {
    /// Parses JSONL. `max_lines` bounds the item count.
    pub fn parse(bytes: &[u8], max_lines: usize) -> Result<Dataset, DatasetError> {
        let digest = Sha256Digest::of(bytes);
        let text =
            std::str::from_utf8(bytes).map_err(|e| DatasetError::NotUtf8(e.valid_up_to()))?;
        let offset = if text.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        let body = &text[offset..];
        if body.is_empty() {
            return Err(DatasetError::Empty);
        }
        let mut items = Vec::new();
        let mut start = offset;
        let mut lines = body.split('\n').peekable();
        let mut number = 0;
        while let Some(raw) = lines.next() {
            number += 1;
            let is_last = lines.peek().is_none();
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let range = start..start + line.len();
            start += raw.len() + 1;
            if line.is_empty() {
                // A final newline leaves one empty piece after it; that is fine.
                if is_last && number > 1 {
                    break;
                }
                return Err(DatasetError::EmptyLine(number));
            }
            if items.len() == max_lines {
                return Err(DatasetError::TooManyLines(max_lines));
            }
            serde_json::from_str::<serde::de::IgnoredAny>(line).map_err(|e| {
                DatasetError::NotJson {
                    line: number,
                    message: e.to_string(),
                }
            })?;
            items.push(range);
        }
        if items.is_empty() {
            return Err(DatasetError::Empty);
        }
        Ok(Dataset {
            text: text.to_owned(),
            items,
            digest,
        })
    }

    /// Items in the dataset.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Never true for a parsed dataset; here for completeness of the collection API.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Item `index`'s text, as written.
    pub fn item(&self, index: usize) -> Option<&str> {
        self.items.get(index).map(|r| &self.text[r.clone()])
    }

    /// sha256 of the file's bytes.
    pub fn digest(&self) -> Sha256Digest {
        self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Dataset, DatasetError> {
        Dataset::parse(s.as_bytes(), 1000)
    }

    #[test]
    fn items_are_lines_as_written() {
        let d = parse("{\"a\": 1}\n[1,2]\n\"x\"\n").unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.item(0), Some("{\"a\": 1}"));
        assert_eq!(d.item(2), Some("\"x\""));
        assert_eq!(d.item(3), None);
    }

    #[test]
    fn a_bom_is_dropped_crlf_is_accepted_and_a_final_newline_is_optional() {
        let d = parse("\u{feff}1\r\n2\r\n").unwrap();
        assert_eq!((d.item(0), d.item(1), d.len()), (Some("1"), Some("2"), 2));
        assert_eq!(parse("1\n2").unwrap().len(), 2);
    }

    #[test]
    fn the_digest_is_of_the_file_bytes() {
        let bytes = "\u{feff}1\r\n";
        assert_eq!(
            parse(bytes).unwrap().digest(),
            Sha256Digest::of(bytes.as_bytes())
        );
    }

    #[test]
    fn bad_lines_are_named_counting_from_one() {
        assert_eq!(parse("1\n\n2\n").unwrap_err(), DatasetError::EmptyLine(2));
        assert!(matches!(
            parse("1\n{oops\n").unwrap_err(),
            DatasetError::NotJson { line: 2, .. }
        ));
        assert!(matches!(
            parse("1 2\n").unwrap_err(),
            DatasetError::NotJson { line: 1, .. }
        ));
        assert_eq!(parse("1\n\n").unwrap_err(), DatasetError::EmptyLine(2));
    }

    #[test]
    fn empty_and_oversized_datasets_are_refused() {
        assert_eq!(parse("").unwrap_err(), DatasetError::Empty);
        assert_eq!(parse("\u{feff}").unwrap_err(), DatasetError::Empty);
        assert_eq!(parse("\n").unwrap_err(), DatasetError::EmptyLine(1));
        assert_eq!(
            Dataset::parse(b"1\n2\n3\n", 2).unwrap_err(),
            DatasetError::TooManyLines(2)
        );
        assert!(matches!(
            Dataset::parse(b"\xff\n", 2).unwrap_err(),
            DatasetError::NotUtf8(0)
        ));
    }
}
