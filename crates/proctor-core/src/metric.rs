//! What an eval declares about itself in `describe`: its name, version and metrics.
//!
//! These are the only guest-chosen strings anyone sees, and they are fixed before the guest
//! could see a model output or a dataset item, so they are bounded in length and charset.

use serde::{Deserialize, Serialize};

/// Most metrics `describe` may declare (a policy's `max_metrics` may be lower).
pub const MAX_DECLARED_METRICS: usize = 32;
/// Longest metric description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 256;

/// One declared metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricSpec {
    /// `[a-z][a-z0-9_-]{0,63}`.
    pub name: String,
    /// Printable ASCII, at most 256 bytes.
    pub description: String,
    /// Smallest value; reports below it are clipped.
    pub min: f64,
    /// Largest value; reports above it are clipped.
    pub max: f64,
}

impl MetricSpec {
    /// Clips a finite value to `[min, max]`.
    pub fn clip(&self, value: f64) -> f64 {
        value.clamp(self.min, self.max)
    }

    /// The declared width `max - min`: finite and positive for an accepted declaration.
    pub fn range(&self) -> f64 {
        self.max - self.min
    }

    /// `value` clipped, normalized to `(x - min) / R` in `[0, 1]` and rounded half-to-even to
    /// the grid of `steps` points per unit: an integer in `[0, steps]`. Total for any finite
    /// value of an accepted declaration (a NaN, which the host never passes, lands on 0).
    pub fn grid_point(&self, value: f64, steps: u64) -> u64 {
        let u = ((self.clip(value) - self.min) / self.range()).clamp(0.0, 1.0);
        let k = (u * steps as f64).round_ties_even();
        // `as` maps NaN to 0; the clamp above keeps k in [0, steps].
        (k as u64).min(steps)
    }

    /// A value on the grid as released: `min + R · k / steps`.
    pub fn from_grid(&self, k: u64, steps: u64) -> f64 {
        (self.min + self.range() * (k as f64 / steps as f64)).clamp(self.min, self.max)
    }
}

/// A number as an error shows it: exponent form when `{}` would spell out hundreds of digits.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-6..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// What `describe` returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvalInfo {
    /// 1 to 64 characters of `A-Za-z0-9._-`.
    pub name: String,
    /// 1 to 64 characters of `A-Za-z0-9._+-`.
    pub version: String,
    /// The declared metrics.
    pub metrics: Vec<MetricSpec>,
}

/// Why a `describe` result was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalInfoError {
    /// The eval name is empty, too long or has other characters.
    #[error("eval name {0:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'")]
    BadName(String),
    /// The version is empty, too long or has other characters.
    #[error("eval version {0:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '+', '-'")]
    BadVersion(String),
    /// No metrics declared.
    #[error("the eval declares no metrics")]
    NoMetrics,
    /// Too many metrics.
    #[error("the eval declares {0} metrics; at most {MAX_DECLARED_METRICS} are allowed")]
    TooManyMetrics(usize),
    /// A metric name does not match `[a-z][a-z0-9_-]{{0,63}}`.
    #[error("metric name {0:?} must match [a-z][a-z0-9_-]{{0,63}}")]
    BadMetricName(String),
    /// A metric name is declared twice.
    #[error("metric `{0}` is declared twice")]
    DuplicateMetric(String),
    /// A description is too long or not printable ASCII.
    #[error(
        "the description of metric `{0}` must be at most {MAX_DESCRIPTION_BYTES} bytes of printable ASCII"
    )]
    BadDescription(String),
    /// `min < max`, both finite with a finite width, does not hold.
    #[error(
        "metric `{name}` has min {} and max {}; both must be finite with min < max and a finite max - min",
        short(*.min),
        short(*.max)
    )]
    BadRange {
        /// The metric.
        name: String,
        /// Its declared min.
        min: f64,
        /// Its declared max.
        max: f64,
    },
}

/// The truncated, escaped form of a guest string for an error message.
fn shown(s: &str) -> String {
    s.chars().take(80).collect()
}

/// `[a-z][a-z0-9_-]{0,63}`.
pub fn is_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

impl EvalInfo {
    /// Checks every bound on the declaration.
    pub fn validate(&self) -> Result<(), EvalInfoError> {
        let token = |s: &str, extra: &[u8]| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || extra.contains(&b))
        };
        if !token(&self.name, b"") {
            return Err(EvalInfoError::BadName(shown(&self.name)));
        }
        if !token(&self.version, b"+") {
            return Err(EvalInfoError::BadVersion(shown(&self.version)));
        }
        if self.metrics.is_empty() {
            return Err(EvalInfoError::NoMetrics);
        }
        if self.metrics.len() > MAX_DECLARED_METRICS {
            return Err(EvalInfoError::TooManyMetrics(self.metrics.len()));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if !is_metric_name(&m.name) {
                return Err(EvalInfoError::BadMetricName(shown(&m.name)));
            }
            if self.metrics[..i].iter().any(|o| o.name == m.name) {
                return Err(EvalInfoError::DuplicateMetric(m.name.clone()));
            }
            if m.description.len() > MAX_DESCRIPTION_BYTES
                || !m.description.bytes().all(|b| (0x20..0x7f).contains(&b))
            {
                return Err(EvalInfoError::BadDescription(m.name.clone()));
            }
            // The width must be finite too: releases are relative to it, and an infinite one
            // (e.g. [-1e308, 1e308]) turns every figure into NaN.
            if !(m.min.is_finite() && m.max.is_finite() && m.min < m.max && m.range().is_finite()) {
                return Err(EvalInfoError::BadRange {
                    name: m.name.clone(),
                    min: m.min,
                    max: m.max,
                });
            }
        }
        Ok(())
    }

    /// The index of a declared metric.
    pub fn metric_index(&self, name: &str) -> Option<usize> {
        self.metrics.iter().position(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(metrics: Vec<MetricSpec>) -> EvalInfo {
        EvalInfo {
            name: "arith".into(),
            version: "1.0.0".into(),
            metrics,
        }
    }

    fn metric(name: &str, min: f64, max: f64) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            description: "d".into(),
            min,
            max,
        }
    }

    #[test]
    fn a_sound_declaration_passes() {
        info(vec![
            metric("accuracy", 0.0, 1.0),
            metric("f1_score-2", -1.0, 1.0),
        ])
        .validate()
        .unwrap();
    }

    #[test]
    fn bad_metric_names_are_refused() {
        for name in ["", "Accuracy", "1st", "has space", "a.b", &"a".repeat(65)] {
            assert!(matches!(
                info(vec![metric(name, 0.0, 1.0)]).validate(),
                Err(EvalInfoError::BadMetricName(_))
            ));
        }
    }

    #[test]
    fn a_refused_range_is_named_in_a_short_message() {
        let err = info(vec![metric("huge", -1e308, 1e308)])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("-1e308") && err.contains("huge"), "{err}");
        assert!(err.len() < 200, "{err}");
        assert!(short(0.5) == "0.5" && short(0.0) == "0");
    }

    #[test]
    fn ranges_must_be_finite_and_increasing() {
        for (min, max) in [
            (1.0, 0.0),
            (0.0, 0.0),
            (f64::NAN, 1.0),
            (0.0, f64::INFINITY),
            (-1e308, 1e308),
        ] {
            assert!(matches!(
                info(vec![metric("m", min, max)]).validate(),
                Err(EvalInfoError::BadRange { .. })
            ));
        }
    }

    #[test]
    fn duplicates_and_too_many_metrics_are_refused() {
        assert!(matches!(
            info(vec![metric("m", 0.0, 1.0), metric("m", 0.0, 1.0)]).validate(),
            Err(EvalInfoError::DuplicateMetric(_))
        ));
        let many = (0..33)
            .map(|i| metric(&format!("m{i}"), 0.0, 1.0))
            .collect();
        assert!(matches!(
            info(many).validate(),
            Err(EvalInfoError::TooManyMetrics(33))
        ));
        assert!(matches!(
            info(vec![]).validate(),
            Err(EvalInfoError::NoMetrics)
        ));
    }

    #[test]
    fn descriptions_are_bounded_printable_ascii() {
        let mut m = metric("m", 0.0, 1.0);
        m.description = "line\nbreak".into();
        assert!(matches!(
            info(vec![m.clone()]).validate(),
            Err(EvalInfoError::BadDescription(_))
        ));
        m.description = "x".repeat(257);
        assert!(matches!(
            info(vec![m]).validate(),
            Err(EvalInfoError::BadDescription(_))
        ));
    }

    /// `describe`'s strings are printable ASCII, so Unicode's invisible characters (bidi
    /// overrides, zero-width and format characters, line separators) never reach an
    /// attestation; each refusal names its field.
    #[test]
    fn invisible_characters_are_refused_in_every_declared_string() {
        for c in ['\u{202E}', '\u{200B}', '\u{2060}', '\u{FEFF}', '\u{2028}'] {
            let mut i = info(vec![metric("m", 0.0, 1.0)]);
            i.name = format!("arith{c}");
            let err = i.validate().expect_err("name").to_string();
            assert!(err.starts_with("eval name"), "{err}");
            let mut i = info(vec![metric("m", 0.0, 1.0)]);
            i.version = format!("1.0{c}");
            let err = i.validate().expect_err("version").to_string();
            assert!(err.starts_with("eval version"), "{err}");
            let err = info(vec![metric(&format!("m{c}"), 0.0, 1.0)])
                .validate()
                .expect_err("metric name")
                .to_string();
            assert!(err.starts_with("metric name"), "{err}");
            let mut m = metric("m", 0.0, 1.0);
            m.description = format!("right {c}answer");
            let err = info(vec![m])
                .validate()
                .expect_err("description")
                .to_string();
            assert!(err.starts_with("the description of metric `m`"), "{err}");
        }
    }

    #[test]
    fn names_and_versions_are_bounded() {
        let mut i = info(vec![metric("m", 0.0, 1.0)]);
        i.name = "no/slash".into();
        assert!(matches!(i.validate(), Err(EvalInfoError::BadName(_))));
        i.name = "ok".into();
        i.version = String::new();
        assert!(matches!(i.validate(), Err(EvalInfoError::BadVersion(_))));
    }
}
