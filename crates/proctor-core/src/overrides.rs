//! A grant's policy overrides: a vendor names a shipped policy and may tighten any of its
//! keys, never loosen one. The tightened policy keeps the file's name and gets its own digest
//! (the digest covers every key), so an attestation tells the two apart.
//!
//! "Tighter" per key: limits and query rules no higher; `wasi` from `inert` to `none` only;
//! `min_samples` no lower; `decimals` and `max_metrics` no higher (fewer digits and fewer
//! metrics release less); `dp_epsilon` no higher than the file's, or any valid epsilon when the
//! file has none (adding noise only protects more; it then needs a `time_grid_s`);
//! `time_grid_s` no finer, or any valid grid when the file has none.

use serde::{Deserialize, Serialize};

use crate::policy::{Policy, PolicyError, WasiMode};

/// Overrides of a policy's keys, in the shape of a policy file without `name` (JSON or TOML).
/// Unknown keys are errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverrides {
    /// `wasi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasi: Option<WasiMode>,
    /// `[limits]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsOverrides>,
    /// `[queries]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<QueriesOverrides>,
    /// `[release]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseOverrides>,
}

/// Overrides of `[limits]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverrides {
    /// `limits.fuel_per_sample`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_sample: Option<u64>,
    /// `limits.memory_mib`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// `limits.table_elements`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_elements: Option<u64>,
    /// `limits.sample_timeout_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_timeout_s: Option<f64>,
    /// `limits.max_concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u64>,
}

/// Overrides of `[queries]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueriesOverrides {
    /// `queries.max_per_sample`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_sample: Option<u64>,
    /// `queries.max_prompt_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prompt_bytes: Option<u64>,
    /// `queries.max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

/// Overrides of `[release]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseOverrides {
    /// `release.min_samples`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u64>,
    /// `release.decimals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u64>,
    /// `release.max_metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_metrics: Option<u64>,
    /// `release.dp_epsilon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp_epsilon: Option<f64>,
    /// `release.time_grid_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_grid_s: Option<f64>,
}

impl PolicyOverrides {
    /// Parses overrides from JSON text (as a grant stores them).
    ///
    /// # Errors
    ///
    /// [`PolicyError::Syntax`] naming an unknown key or a value of the wrong type.
    pub fn from_json(text: &str) -> Result<PolicyOverrides, PolicyError> {
        serde_json::from_str(text).map_err(|e| PolicyError::Syntax(format!("overrides: {e}")))
    }

    /// The overrides as compact JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("overrides hold only numbers and enum names")
    }
}

/// Why an override may not apply: it loosens its key.
fn loosens(key: &'static str, problem: String) -> PolicyError {
    PolicyError::Loosens { key, problem }
}

fn at_most<T: PartialOrd + Copy + std::fmt::Display>(
    key: &'static str,
    slot: &mut T,
    value: Option<T>,
) -> Result<(), PolicyError> {
    if let Some(v) = value {
        // NaN compares as unordered and is refused with the rest.
        if v.partial_cmp(slot)
            .is_none_or(|o| o == std::cmp::Ordering::Greater)
        {
            return Err(loosens(
                key,
                format!("would be {v}; the policy allows at most {slot}"),
            ));
        }
        *slot = v;
    }
    Ok(())
}

impl Policy {
    /// This policy tightened by `overrides`: every key given must be at least as strict as
    /// this policy's, and the result must be a valid policy.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Loosens`] naming the first key that would loosen;
    /// [`PolicyError::OutOfRange`] for a value outside its range (e.g. a zero fuel).
    pub fn tightened(&self, overrides: &PolicyOverrides) -> Result<Policy, PolicyError> {
        let mut p = self.clone();
        if let Some(wasi) = overrides.wasi
            && wasi == WasiMode::Inert
            && p.wasi == WasiMode::None
        {
            return Err(loosens(
                "wasi",
                "would be \"inert\"; the policy allows no WASI (\"none\")".into(),
            ));
        } else if let Some(wasi) = overrides.wasi {
            p.wasi = wasi;
        }
        if let Some(l) = &overrides.limits {
            let t = &mut p.limits;
            at_most(
                "limits.fuel_per_sample",
                &mut t.fuel_per_sample,
                l.fuel_per_sample,
            )?;
            at_most("limits.memory_mib", &mut t.memory_mib, l.memory_mib)?;
            at_most(
                "limits.table_elements",
                &mut t.table_elements,
                l.table_elements,
            )?;
            at_most(
                "limits.sample_timeout_s",
                &mut t.sample_timeout_s,
                l.sample_timeout_s,
            )?;
            at_most(
                "limits.max_concurrency",
                &mut t.max_concurrency,
                l.max_concurrency,
            )?;
        }
        if let Some(q) = &overrides.queries {
            let t = &mut p.queries;
            at_most(
                "queries.max_per_sample",
                &mut t.max_per_sample,
                q.max_per_sample,
            )?;
            at_most(
                "queries.max_prompt_bytes",
                &mut t.max_prompt_bytes,
                q.max_prompt_bytes,
            )?;
            at_most("queries.max_tokens", &mut t.max_tokens, q.max_tokens)?;
        }
        if let Some(r) = &overrides.release {
            let t = &mut p.release;
            if let Some(min) = r.min_samples {
                if min < t.min_samples {
                    return Err(loosens(
                        "release.min_samples",
                        format!(
                            "would be {min}; the policy requires at least {}",
                            t.min_samples
                        ),
                    ));
                }
                t.min_samples = min;
            }
            at_most("release.decimals", &mut t.decimals, r.decimals)?;
            at_most("release.max_metrics", &mut t.max_metrics, r.max_metrics)?;
            if let Some(eps) = r.dp_epsilon {
                match t.dp_epsilon {
                    Some(current)
                        if eps
                            .partial_cmp(&current)
                            .is_none_or(|o| o == std::cmp::Ordering::Greater) =>
                    {
                        return Err(loosens(
                            "release.dp_epsilon",
                            format!("would be {eps}; the policy allows at most {current}"),
                        ));
                    }
                    _ => t.dp_epsilon = Some(eps),
                }
            }
            if let Some(grid) = r.time_grid_s {
                // A coarser grid shows less of a job's duration.
                match t.time_grid_s {
                    Some(current)
                        if grid
                            .partial_cmp(&current)
                            .is_none_or(|o| o == std::cmp::Ordering::Less) =>
                    {
                        return Err(loosens(
                            "release.time_grid_s",
                            format!("would be {grid}; the policy requires at least {current}"),
                        ));
                    }
                    _ => t.time_grid_s = Some(grid),
                }
            }
        }
        p.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(json: &str) -> PolicyOverrides {
        PolicyOverrides::from_json(json).unwrap()
    }

    #[test]
    fn no_overrides_leave_the_policy_and_its_digest_as_they_are() {
        let standard = Policy::standard();
        let same = standard.tightened(&PolicyOverrides::default()).unwrap();
        assert_eq!(same, standard);
        assert_eq!(same.digest(), standard.digest());
    }

    #[test]
    fn tightening_keeps_the_name_and_changes_the_digest() {
        let standard = Policy::standard();
        let tight = standard
            .tightened(&overrides(
                r#"{"wasi":"none","limits":{"fuel_per_sample":1000},
                    "queries":{"max_per_sample":2},"release":{"min_samples":50,"dp_epsilon":0.5,
                    "time_grid_s":120}}"#,
            ))
            .unwrap();
        assert_eq!(tight.name, "standard");
        assert_eq!(tight.wasi, WasiMode::None);
        assert_eq!(tight.limits.fuel_per_sample, 1000);
        assert_eq!(tight.queries.max_per_sample, 2);
        assert_eq!(tight.release.min_samples, 50);
        assert_eq!(tight.release.dp_epsilon, Some(0.5));
        assert_eq!(tight.release.time_grid_s, Some(120.0));
        assert_ne!(tight.digest(), standard.digest());
    }

    #[test]
    fn every_loosening_is_refused_naming_its_key() {
        let strict = Policy::named("strict").unwrap();
        for (json, key) in [
            (r#"{"wasi":"inert"}"#, "wasi"),
            (
                r#"{"limits":{"fuel_per_sample":300000000}}"#,
                "limits.fuel_per_sample",
            ),
            (r#"{"limits":{"memory_mib":65}}"#, "limits.memory_mib"),
            (
                r#"{"limits":{"table_elements":20001}}"#,
                "limits.table_elements",
            ),
            (
                r#"{"limits":{"sample_timeout_s":60.5}}"#,
                "limits.sample_timeout_s",
            ),
            (
                r#"{"limits":{"max_concurrency":65}}"#,
                "limits.max_concurrency",
            ),
            (
                r#"{"queries":{"max_per_sample":5}}"#,
                "queries.max_per_sample",
            ),
            (
                r#"{"queries":{"max_prompt_bytes":16385}}"#,
                "queries.max_prompt_bytes",
            ),
            (r#"{"queries":{"max_tokens":257}}"#, "queries.max_tokens"),
            (r#"{"release":{"min_samples":49}}"#, "release.min_samples"),
            (r#"{"release":{"decimals":3}}"#, "release.decimals"),
            (r#"{"release":{"max_metrics":5}}"#, "release.max_metrics"),
            (r#"{"release":{"dp_epsilon":1.5}}"#, "release.dp_epsilon"),
            (r#"{"release":{"time_grid_s":10}}"#, "release.time_grid_s"),
        ] {
            let err = strict.tightened(&overrides(json)).unwrap_err();
            assert!(
                matches!(&err, PolicyError::Loosens { key: k, .. } if *k == key),
                "{json}: {err}"
            );
            assert!(err.to_string().contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn a_policy_without_noise_may_gain_it() {
        let p = Policy::standard()
            .tightened(&overrides(
                r#"{"release":{"dp_epsilon":2.0,"time_grid_s":30}}"#,
            ))
            .unwrap();
        assert_eq!(p.release.dp_epsilon, Some(2.0));
    }

    #[test]
    fn a_tighter_value_out_of_range_is_still_refused() {
        let err = Policy::standard()
            .tightened(&overrides(r#"{"limits":{"fuel_per_sample":0}}"#))
            .unwrap_err();
        assert!(matches!(
            err,
            PolicyError::OutOfRange {
                key: "limits.fuel_per_sample",
                ..
            }
        ));
        let err = Policy::standard()
            .tightened(&overrides(r#"{"release":{"dp_epsilon":-1.0}}"#))
            .unwrap_err();
        assert!(matches!(
            err,
            PolicyError::OutOfRange {
                key: "release.dp_epsilon",
                ..
            }
        ));
    }

    #[test]
    fn unknown_keys_and_nan_are_refused() {
        assert!(PolicyOverrides::from_json(r#"{"limits":{"fuel":1}}"#).is_err());
        assert!(PolicyOverrides::from_json(r#"{"name":"mine"}"#).is_err());
        // JSON has no NaN; a NaN given some other way never passes `<=`.
        let nan = PolicyOverrides {
            limits: Some(LimitsOverrides {
                sample_timeout_s: Some(f64::NAN),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(Policy::standard().tightened(&nan).is_err());
    }

    #[test]
    fn overrides_round_trip_through_json() {
        let o = overrides(r#"{"queries":{"max_tokens":64},"release":{"decimals":2}}"#);
        assert_eq!(
            o.to_json(),
            r#"{"queries":{"max_tokens":64},"release":{"decimals":2}}"#
        );
        assert_eq!(PolicyOverrides::from_json(&o.to_json()).unwrap(), o);
        assert_eq!(PolicyOverrides::default().to_json(), "{}");
    }
}
