//! Text that people read or that is signed: names, versions, labels, reasons.
//!
//! Such text may not hold characters that change how the text around them looks while being
//! invisible themselves: Unicode's format characters (general category Cf: bidirectional
//! overrides such as U+202E, zero-width spaces and joiners, U+FEFF, ...), line and paragraph
//! separators (Zl, Zp) and control characters (Cc). A name read back from a signed log entry
//! must look like what was signed, and `evil\u{202E}gpj.exe` does not. A name must also not
//! be blank. Length limits are each caller's.
//!
//! The guest's own strings from `describe` are stricter still (printable ASCII, `metric.rs`).

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a text cannot be shown or signed as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty, or only white space.
    #[error("must not be blank")]
    Blank,
    /// A control character (Cc), line breaks and tabs among them.
    #[error("must not hold the control character {}", code(*.0))]
    Control(char),
    /// An invisible format character (Cf): a bidirectional override, a zero-width character.
    #[error("must not hold the invisible format character {}", code(*.0))]
    Format(char),
    /// A line or paragraph separator (Zl, Zp).
    #[error("must not hold the line or paragraph separator {}", code(*.0))]
    Separator(char),
}

/// `U+202E`: how an error names a character without printing it.
fn code(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Checks that `text` holds no control, format, line or paragraph separator character. The
/// empty text passes (for optional labels and reasons); see [`displayable_name`].
///
/// # Errors
///
/// The first such character, by its category.
pub fn displayable(text: &str) -> Result<(), TextError> {
    for c in text.chars() {
        match c.general_category() {
            GeneralCategory::Control => return Err(TextError::Control(c)),
            GeneralCategory::Format => return Err(TextError::Format(c)),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                return Err(TextError::Separator(c));
            }
            _ => {}
        }
    }
    Ok(())
}

/// [`displayable`], and not blank: a name someone must be able to see.
///
/// # Errors
///
/// [`TextError::Blank`] for the empty text or white space only; else as [`displayable`].
pub fn displayable_name(text: &str) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Blank);
    }
    displayable(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_control_characters_are_refused_by_category() {
        let table = [
            ("a\u{202E}b", Err(TextError::Format('\u{202E}'))),
            ("\u{202A}x", Err(TextError::Format('\u{202A}'))),
            ("x\u{2066}", Err(TextError::Format('\u{2066}'))),
            ("a\u{200B}b", Err(TextError::Format('\u{200B}'))),
            ("a\u{200C}b", Err(TextError::Format('\u{200C}'))),
            ("a\u{200D}b", Err(TextError::Format('\u{200D}'))),
            ("a\u{200E}b", Err(TextError::Format('\u{200E}'))),
            ("a\u{2060}b", Err(TextError::Format('\u{2060}'))),
            ("\u{FEFF}name", Err(TextError::Format('\u{FEFF}'))),
            ("soft\u{AD}hyphen", Err(TextError::Format('\u{AD}'))),
            ("tag\u{E0041}", Err(TextError::Format('\u{E0041}'))),
            ("a\u{2028}b", Err(TextError::Separator('\u{2028}'))),
            ("a\u{2029}b", Err(TextError::Separator('\u{2029}'))),
            ("a\nb", Err(TextError::Control('\n'))),
            ("a\tb", Err(TextError::Control('\t'))),
            ("a\u{85}b", Err(TextError::Control('\u{85}'))),
            ("a\u{7F}", Err(TextError::Control('\u{7F}'))),
            ("gpt-4o mini", Ok(())),
            ("Modèle 三 🦀", Ok(())),
            ("نموذج", Ok(())),
            ("", Ok(())),
        ];
        for (text, expected) in table {
            assert_eq!(displayable(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_name_must_not_be_blank() {
        for blank in ["", " ", "\u{3000}", " \u{A0} "] {
            assert_eq!(displayable_name(blank), Err(TextError::Blank), "{blank:?}");
        }
        assert_eq!(
            displayable_name("\u{200B}"),
            Err(TextError::Format('\u{200B}'))
        );
        assert_eq!(displayable_name(" padded "), Ok(()));
    }

    #[test]
    fn errors_name_the_character_by_its_code_point() {
        assert_eq!(
            TextError::Format('\u{202E}').to_string(),
            "must not hold the invisible format character U+202E"
        );
        assert_eq!(
            TextError::Separator('\u{2028}').to_string(),
            "must not hold the line or paragraph separator U+2028"
        );
        assert_eq!(
            TextError::Format('\u{E0041}').to_string(),
            "must not hold the invisible format character U+E0041"
        );
    }
}
