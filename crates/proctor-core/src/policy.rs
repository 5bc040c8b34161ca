//! Sandbox policies: the limits, query rules and release rules a job runs under.
//!
//! A policy file (TOML) may leave keys out; they take `standard`'s values. The *effective*
//! policy, every key filled in, is what is digested and attested, so two files that mean the
//! same thing have the same digest.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;

/// `sandbox-policies/standard.toml`, embedded so the binary runs from any directory.
pub const STANDARD_TOML: &str = include_str!("../../../sandbox-policies/standard.toml");
/// `sandbox-policies/strict.toml`.
pub const STRICT_TOML: &str = include_str!("../../../sandbox-policies/strict.toml");

/// The policies shipped with Proctor, by name.
pub const BUILTIN_POLICIES: &[(&str, &str)] =
    &[("standard", STANDARD_TOML), ("strict", STRICT_TOML)];

/// Upper bounds that no policy may exceed: the engine's pooling allocator is sized for them.
pub mod bounds {
    /// Largest `limits.memory_mib`.
    pub const MAX_MEMORY_MIB: u64 = 4096;
    /// Largest `limits.table_elements`.
    pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;
    /// Largest `limits.max_concurrency`.
    pub const MAX_CONCURRENCY: u64 = 1024;
    /// Largest `limits.sample_timeout_s`.
    pub const MAX_SAMPLE_TIMEOUT_S: f64 = 3600.0;
    /// Largest `limits.fuel_per_sample`.
    pub const MAX_FUEL: u64 = 1_000_000_000_000;
    /// Largest `queries.max_per_sample`.
    pub const MAX_QUERIES_PER_SAMPLE: u64 = 1024;
    /// Largest `queries.max_prompt_bytes`.
    pub const MAX_PROMPT_BYTES: u64 = 16 * 1024 * 1024;
    /// Largest `queries.max_tokens`.
    pub const MAX_TOKENS: u64 = 1_000_000;
    /// Largest `release.decimals`.
    pub const MAX_DECIMALS: u64 = 12;
    /// Largest `release.max_metrics` (and the most metrics `describe` may declare).
    pub const MAX_METRICS: u64 = 32;
    /// Largest `release.dp_epsilon`.
    pub const MAX_EPSILON: f64 = 100.0;
    /// Smallest `release.time_grid_s`: finer times carry more of a job's duration.
    pub const MIN_TIME_GRID_S: f64 = 1.0;
    /// Largest `release.time_grid_s` (a day).
    pub const MAX_TIME_GRID_S: f64 = 86_400.0;
}

/// Which WASI a component may link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WasiMode {
    /// Every WASI 0.2 interface is linked as a deny-all shim.
    Inert,
    /// A component that imports any WASI interface is refused.
    None,
}

/// Per-sample sandbox limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Deterministic compute budget per sample (wasmtime fuel).
    pub fuel_per_sample: u64,
    /// Linear memory per instance, in MiB.
    pub memory_mib: u64,
    /// Elements per table.
    pub table_elements: u64,
    /// Wall clock per sample, model waits included.
    pub sample_timeout_s: f64,
    /// Samples in flight per job.
    pub max_concurrency: u64,
}

/// Rules every model query is checked against before it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Queries {
    /// Model calls one sample may make.
    pub max_per_sample: u64,
    /// UTF-8 bytes of all message contents in one request.
    pub max_prompt_bytes: u64,
    /// Ceiling for, and default of, `params.max-tokens`.
    pub max_tokens: u64,
}

impl Queries {
    /// The most tokens one query under these rules can be billed: a full prompt in the most
    /// messages a request may carry, and `max_tokens` out. A DP job holds this per query.
    pub fn worst_case_tokens_per_query(&self) -> u64 {
        crate::model::worst_case_tokens(
            self.max_prompt_bytes,
            crate::model::MAX_MESSAGES,
            self.max_tokens,
        )
    }
}

/// Rules for releasing aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseRules {
    /// No release below this many ok samples.
    pub min_samples: u64,
    /// Released figures are rounded half-to-even to this many decimals.
    pub decimals: u64,
    /// At most this many metrics per eval.
    pub max_metrics: u64,
    /// Differential privacy budget per job; absent means no noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp_epsilon: Option<f64>,
    /// The grid, in seconds, that every time an evaluator sees of a job lies on; a job's end
    /// becomes visible only at the next grid point after it, so its duration shows only to
    /// the grid. Absent: times to the millisecond (and the leakage bound says so). Required
    /// with `dp_epsilon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_grid_s: Option<f64>,
}

impl ReleaseRules {
    /// Whether the release is differentially private: then every evaluator-visible view of a
    /// job is output-independent (no live progress, no attempts, times on the grid).
    pub fn is_private(&self) -> bool {
        self.dp_epsilon.is_some()
    }
}

/// An effective policy: every key set and validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// Which WASI a component may link.
    pub wasi: WasiMode,
    /// Per-sample limits.
    pub limits: Limits,
    /// Query rules.
    pub queries: Queries,
    /// Release rules.
    pub release: ReleaseRules,
}

/// Why a policy was refused. Each names the offending key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The TOML did not parse, or had an unknown key or a value of the wrong type.
    #[error("invalid policy: {0}")]
    Syntax(String),
    /// A value is outside its allowed range.
    #[error("invalid policy: `{key}` {problem}")]
    OutOfRange {
        /// Dotted key, e.g. `limits.memory_mib`.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A grant's override would loosen the policy it tightens.
    #[error("the override of `{key}` loosens the policy: it {problem}")]
    Loosens {
        /// Dotted key, e.g. `limits.memory_mib`.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// `--policy NAME` named no shipped policy.
    #[error(
        "unknown policy `{0}`: shipped policies are `standard` and `strict`, or give a file path"
    )]
    UnknownName(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    name: Option<String>,
    wasi: Option<WasiMode>,
    limits: Option<LimitsFile>,
    queries: Option<QueriesFile>,
    release: Option<ReleaseFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    fuel_per_sample: Option<u64>,
    memory_mib: Option<u64>,
    table_elements: Option<u64>,
    sample_timeout_s: Option<f64>,
    max_concurrency: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueriesFile {
    max_per_sample: Option<u64>,
    max_prompt_bytes: Option<u64>,
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseFile {
    min_samples: Option<u64>,
    decimals: Option<u64>,
    max_metrics: Option<u64>,
    dp_epsilon: Option<f64>,
    time_grid_s: Option<f64>,
}

impl Policy {
    /// The `standard` policy.
    pub fn standard() -> Policy {
        Self::standard_defaults()
    }

    /// The shipped policy with this name.
    pub fn named(name: &str) -> Result<Policy, PolicyError> {
        let (_, text) = BUILTIN_POLICIES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| PolicyError::UnknownName(name.to_owned()))?;
        Self::from_toml(text)
    }

    /// Parses a policy file; keys left out take `standard`'s values.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::Syntax(one_line(&e.to_string())))?;
        let mut policy = Self::standard_defaults();
        if let Some(name) = file.name {
            policy.name = name;
        }
        if let Some(wasi) = file.wasi {
            policy.wasi = wasi;
        }
        if let Some(l) = file.limits {
            let p = &mut policy.limits;
            set(&mut p.fuel_per_sample, l.fuel_per_sample);
            set(&mut p.memory_mib, l.memory_mib);
            set(&mut p.table_elements, l.table_elements);
            set(&mut p.sample_timeout_s, l.sample_timeout_s);
            set(&mut p.max_concurrency, l.max_concurrency);
        }
        if let Some(q) = file.queries {
            let p = &mut policy.queries;
            set(&mut p.max_per_sample, q.max_per_sample);
            set(&mut p.max_prompt_bytes, q.max_prompt_bytes);
            set(&mut p.max_tokens, q.max_tokens);
        }
        if let Some(r) = file.release {
            let p = &mut policy.release;
            set(&mut p.min_samples, r.min_samples);
            set(&mut p.decimals, r.decimals);
            set(&mut p.max_metrics, r.max_metrics);
            p.dp_epsilon = r.dp_epsilon;
            p.time_grid_s = r.time_grid_s;
        }
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every value against its range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        use bounds::*;
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(PolicyError::OutOfRange {
                key: "name",
                problem: "must be 1 to 64 characters of a-z, A-Z, 0-9, '-', '_', '.'".into(),
            });
        }
        let l = &self.limits;
        int_range("limits.fuel_per_sample", l.fuel_per_sample, 1, MAX_FUEL)?;
        int_range("limits.memory_mib", l.memory_mib, 1, MAX_MEMORY_MIB)?;
        int_range(
            "limits.table_elements",
            l.table_elements,
            1,
            MAX_TABLE_ELEMENTS,
        )?;
        if !(l.sample_timeout_s.is_finite()
            && l.sample_timeout_s > 0.0
            && l.sample_timeout_s <= MAX_SAMPLE_TIMEOUT_S)
        {
            return Err(PolicyError::OutOfRange {
                key: "limits.sample_timeout_s",
                problem: format!(
                    "is {}; it must be above 0 and at most {MAX_SAMPLE_TIMEOUT_S}",
                    l.sample_timeout_s
                ),
            });
        }
        int_range(
            "limits.max_concurrency",
            l.max_concurrency,
            1,
            MAX_CONCURRENCY,
        )?;
        let q = &self.queries;
        int_range(
            "queries.max_per_sample",
            q.max_per_sample,
            0,
            MAX_QUERIES_PER_SAMPLE,
        )?;
        int_range(
            "queries.max_prompt_bytes",
            q.max_prompt_bytes,
            1,
            MAX_PROMPT_BYTES,
        )?;
        int_range("queries.max_tokens", q.max_tokens, 1, MAX_TOKENS)?;
        let r = &self.release;
        int_range("release.min_samples", r.min_samples, 1, u64::from(u32::MAX))?;
        int_range("release.decimals", r.decimals, 0, MAX_DECIMALS)?;
        int_range("release.max_metrics", r.max_metrics, 1, MAX_METRICS)?;
        if let Some(eps) = r.dp_epsilon
            && !(eps.is_finite() && eps > 0.0 && eps <= MAX_EPSILON)
        {
            return Err(PolicyError::OutOfRange {
                key: "release.dp_epsilon",
                problem: format!("is {eps}; it must be above 0 and at most {MAX_EPSILON}"),
            });
        }
        if let Some(grid) = r.time_grid_s
            && !(grid.is_finite() && (MIN_TIME_GRID_S..=MAX_TIME_GRID_S).contains(&grid))
        {
            return Err(PolicyError::OutOfRange {
                key: "release.time_grid_s",
                problem: format!(
                    "is {grid}; it must be from {MIN_TIME_GRID_S} to {MAX_TIME_GRID_S}"
                ),
            });
        }
        if r.dp_epsilon.is_some() && r.time_grid_s.is_none() {
            return Err(PolicyError::OutOfRange {
                key: "release.time_grid_s",
                problem: "must be set when `release.dp_epsilon` is: a private release shows \
                          times only on a grid"
                    .into(),
            });
        }
        Ok(())
    }

    /// The canonical JSON form (RFC 8785) that the digest covers.
    pub fn canonical_json(&self) -> String {
        serde_json_canonicalizer::to_string(self)
            .expect("a policy always serializes: it holds only strings and finite numbers")
    }

    /// sha256 of the canonical JSON form.
    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::of(self.canonical_json().as_bytes())
    }

    fn standard_defaults() -> Policy {
        Policy {
            name: "standard".into(),
            wasi: WasiMode::Inert,
            limits: Limits {
                fuel_per_sample: 2_000_000_000,
                memory_mib: 256,
                table_elements: 100_000,
                sample_timeout_s: 300.0,
                max_concurrency: 256,
            },
            queries: Queries {
                max_per_sample: 16,
                max_prompt_bytes: 65_536,
                max_tokens: 1_024,
            },
            release: ReleaseRules {
                min_samples: 10,
                decimals: 4,
                max_metrics: 16,
                dp_epsilon: None,
                time_grid_s: None,
            },
        }
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn int_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), PolicyError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(PolicyError::OutOfRange {
            key,
            problem: format!("is {value}; it must be from {min} to {max}"),
        })
    }
}

/// toml's messages span several lines (a source excerpt); the CLI prints one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_file_matches_the_built_in_defaults() {
        assert_eq!(Policy::named("standard").unwrap(), Policy::standard());
    }

    #[test]
    fn strict_is_tighter_than_standard_everywhere() {
        let s = Policy::standard();
        let t = Policy::named("strict").unwrap();
        assert_eq!(t.wasi, WasiMode::None);
        assert!(t.limits.fuel_per_sample < s.limits.fuel_per_sample);
        assert!(t.limits.memory_mib < s.limits.memory_mib);
        assert!(t.limits.table_elements < s.limits.table_elements);
        assert!(t.limits.sample_timeout_s < s.limits.sample_timeout_s);
        assert!(t.limits.max_concurrency < s.limits.max_concurrency);
        assert!(t.queries.max_per_sample < s.queries.max_per_sample);
        assert!(t.queries.max_prompt_bytes < s.queries.max_prompt_bytes);
        assert!(t.queries.max_tokens < s.queries.max_tokens);
        assert!(t.release.min_samples > s.release.min_samples);
        assert!(t.release.dp_epsilon.is_some());
    }

    #[test]
    fn keys_left_out_take_standard_values() {
        let p = Policy::from_toml("name = \"tiny\"\n[limits]\nmemory_mib = 16\n").unwrap();
        assert_eq!(p.limits.memory_mib, 16);
        assert_eq!(
            p.limits.fuel_per_sample,
            Policy::standard().limits.fuel_per_sample
        );
        assert_eq!(p.queries, Policy::standard().queries);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let err = Policy::from_toml("[limits]\nmemory_gib = 1\n").unwrap_err();
        assert!(err.to_string().contains("memory_gib"), "{err}");
        let err = Policy::from_toml("colour = \"red\"\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn an_out_of_range_value_is_an_error_naming_the_key() {
        for (toml, key) in [
            ("[limits]\nmemory_mib = 100000\n", "limits.memory_mib"),
            ("[limits]\nfuel_per_sample = 0\n", "limits.fuel_per_sample"),
            (
                "[limits]\nsample_timeout_s = -1.0\n",
                "limits.sample_timeout_s",
            ),
            (
                "[limits]\nmax_concurrency = 5000\n",
                "limits.max_concurrency",
            ),
            ("[queries]\nmax_tokens = 0\n", "queries.max_tokens"),
            ("[release]\ndecimals = 40\n", "release.decimals"),
            ("[release]\nmax_metrics = 33\n", "release.max_metrics"),
            ("[release]\ndp_epsilon = 0.0\n", "release.dp_epsilon"),
            ("name = \"has space\"\n", "name"),
        ] {
            let err = Policy::from_toml(toml).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_naming_the_key() {
        let err = Policy::from_toml("[limits]\nmemory_mib = \"lots\"\n").unwrap_err();
        assert!(err.to_string().contains("memory_mib"), "{err}");
        let err = Policy::from_toml("wasi = \"full\"\n").unwrap_err();
        assert!(
            err.to_string().contains("wasi") || err.to_string().contains("full"),
            "{err}"
        );
    }

    #[test]
    fn the_digest_covers_the_effective_policy() {
        let spelled_out = Policy::from_toml(STANDARD_TOML).unwrap();
        let minimal = Policy::from_toml("name = \"standard\"\n").unwrap();
        assert_eq!(spelled_out.digest(), minimal.digest());
        let tighter =
            Policy::from_toml("name = \"standard\"\n[queries]\nmax_tokens = 10\n").unwrap();
        assert_ne!(tighter.digest(), minimal.digest());
    }

    #[test]
    fn the_canonical_form_sorts_keys_and_writes_numbers_like_javascript() {
        let json = Policy::standard().canonical_json();
        assert!(
            json.starts_with("{\"limits\":{\"fuel_per_sample\":2000000000,"),
            "{json}"
        );
        assert!(json.contains("\"sample_timeout_s\":300,"), "{json}");
    }
}
