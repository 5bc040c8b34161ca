//! Model identity: the stated test that says whether the model answering a job is the one
//! registered under its name, and the figures of it that results carry.
//!
//! At registration the service fingerprints the model on a private probe set
//! ([`crate::identity_probes`]): for each probe, a keyed hash of its temperature-0 answer.
//! A check sends the probes again and counts the answers whose hash differs (`mismatches` of
//! `queries`). Under the null hypothesis (the same model) each probe mismatches with
//! probability at most [`NULL_RATE`] (the model's temperature-0 answers are stable up to the
//! serving noise of a real endpoint; registration measures it and marks a model whose probes
//! are less stable than that `unstable`, never checked). The test is one-sided and exact:
//!
//! `p_value = P(X >= mismatches)`, `X ~ Binomial(queries, NULL_RATE)`, rounded **up** to the
//! grid of `10^-4` (so never below the exact tail), and the verdict is `changed` when
//! `p_value <= ALPHA`. Mismatches of probes with different rates are a Poisson-binomial
//! count, whose upper tail is at most the binomial one at the mean rate (Hoeffding 1956), so
//! the false-positive rate is at most [`ALPHA`] per test whatever each probe's own rate.
//!
//! The tail is summed term by term with IEEE additions, multiplications and divisions only
//! (correctly rounded everywhere, no `exp` or `ln`), so a figure is the same bytes on every
//! platform and a verifier can recompute it from the counts.
//!
//! What a job's evaluator sees ([`ModelIdentity`]) is a function of the job's mismatch count
//! alone: `not_checked`, or one of `JOB_QUERIES + 1` counts, so it carries at most
//! `log2(JOB_QUERIES + 2)` bits ([`crate::leakage::IDENTITY_CHANNEL`]).

use serde::{Deserialize, Serialize};

/// Probes in a fingerprint; a check sends each once.
pub const PROBES: u64 = 32;

/// Queries one check sends.
pub const CHECK_QUERIES: u64 = PROBES;

/// Queries a job's checks send: one check right before its first sample, one right after
/// its last.
pub const JOB_QUERIES: u64 = 2 * CHECK_QUERIES;

/// The test's null mismatch rate per probe: 1 in 50.
pub const NULL_RATE: f64 = 0.02;

/// The test's level: a `changed` verdict needs `p_value <= ALPHA`.
pub const ALPHA: f64 = 0.001;

/// The level at which registration calls a model's measured mismatch rate above
/// [`NULL_RATE`] (the model is then `unstable`: its checks could not hold [`ALPHA`]).
pub const UNSTABLE_ALPHA: f64 = 0.05;

/// The grid p-values are rounded up to.
const P_GRID: f64 = 10_000.0;

/// Which test produced the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum IdentityTest {
    /// The one-sided exact binomial test of the module docs: border probes at temperature 0,
    /// null rate [`NULL_RATE`], level [`ALPHA`], p-values rounded up to `10^-4`.
    #[serde(rename = "border-binomial/v1")]
    BorderBinomial,
}

/// What the test concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityVerdict {
    /// The answers agree with the fingerprint (`p_value > ALPHA`).
    Same,
    /// They do not: the model answering is not the one fingerprinted (`p_value <= ALPHA`).
    Changed,
    /// No check ran: the model has no ready fingerprint, a probe query failed, or the job
    /// ran outside the service (`proctor run`).
    NotChecked,
}

impl IdentityVerdict {
    /// The verdict's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityVerdict::Same => "same",
            IdentityVerdict::Changed => "changed",
            IdentityVerdict::NotChecked => "not_checked",
        }
    }

    /// The verdict named `text`.
    pub fn of_text(text: &str) -> Option<IdentityVerdict> {
        [
            IdentityVerdict::Same,
            IdentityVerdict::Changed,
            IdentityVerdict::NotChecked,
        ]
        .into_iter()
        .find(|v| v.as_str() == text)
    }
}

/// The counts of a check (or of a job's two checks together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckCounts {
    /// Probe queries sent.
    pub queries: u64,
    /// Answers whose hash differed from the fingerprint's.
    pub mismatches: u64,
}

impl CheckCounts {
    /// Both checks' counts together.
    pub fn plus(self, other: CheckCounts) -> CheckCounts {
        CheckCounts {
            queries: self.queries + other.queries,
            mismatches: self.mismatches + other.mismatches,
        }
    }
}

/// A model's identity as a result states it: `{test, queries, mismatches, p_value, verdict}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelIdentity {
    /// The test.
    pub test: IdentityTest,
    /// Probe queries the checks sent (0 when not checked).
    pub queries: u64,
    /// Answers that differed from the fingerprint.
    pub mismatches: u64,
    /// The test's p-value, rounded up to `10^-4`; null when not checked.
    pub p_value: Option<f64>,
    /// The verdict.
    pub verdict: IdentityVerdict,
}

impl Default for ModelIdentity {
    fn default() -> ModelIdentity {
        ModelIdentity::not_checked()
    }
}

impl ModelIdentity {
    /// No check ran.
    pub fn not_checked() -> ModelIdentity {
        ModelIdentity {
            test: IdentityTest::BorderBinomial,
            queries: 0,
            mismatches: 0,
            p_value: None,
            verdict: IdentityVerdict::NotChecked,
        }
    }

    /// The test of `counts`: its p-value and verdict.
    pub fn assess(counts: CheckCounts) -> ModelIdentity {
        if counts.queries == 0 {
            return ModelIdentity::not_checked();
        }
        let p_value = p_value(counts.queries, counts.mismatches.min(counts.queries));
        ModelIdentity {
            test: IdentityTest::BorderBinomial,
            queries: counts.queries,
            mismatches: counts.mismatches,
            p_value: Some(p_value),
            verdict: if p_value <= ALPHA {
                IdentityVerdict::Changed
            } else {
                IdentityVerdict::Same
            },
        }
    }
}

/// The test's p-value for `mismatches` of `queries`: [`binomial_upper_tail`] at
/// [`NULL_RATE`], rounded up to the `10^-4` grid.
pub fn p_value(queries: u64, mismatches: u64) -> f64 {
    let tail = binomial_upper_tail(queries, mismatches, NULL_RATE);
    ((tail * P_GRID).ceil() / P_GRID).clamp(1.0 / P_GRID, 1.0)
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`, `0 <= p < 1`: the upper terms summed from the
/// recurrence `pmf(j + 1) = pmf(j) · (n - j) / (j + 1) · p / (1 - p)`, basic IEEE
/// operations only (see the module docs).
pub fn binomial_upper_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let q = 1.0 - p;
    let mut pmf = 1.0;
    for _ in 0..n {
        pmf *= q;
    }
    let ratio = p / q;
    let mut tail = 0.0;
    for j in 0..n {
        if j >= k {
            tail += pmf;
        }
        pmf = pmf * ((n - j) as f64) / ((j + 1) as f64) * ratio;
    }
    // j = n.
    tail += pmf;
    tail.min(1.0)
}

/// Whether a registration's measured mismatches (`mismatches` of `queries` repeated
/// temperature-0 queries) say the model's rate is above [`NULL_RATE`] at
/// [`UNSTABLE_ALPHA`]: its checks could then flag it on serving noise alone.
pub fn unstable(queries: u64, mismatches: u64) -> bool {
    mismatches > 0 && binomial_upper_tail(queries, mismatches, NULL_RATE) <= UNSTABLE_ALPHA
}

/// The least mismatch count of `queries` that a check flags `changed`.
pub fn threshold(queries: u64) -> u64 {
    (0..=queries)
        .find(|&m| p_value(queries, m) <= ALPHA)
        .unwrap_or(queries + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_matches_a_direct_sum_of_binomial_terms() {
        // Bin(4, 0.5): P(X >= 3) = (4 + 1) / 16.
        assert!((binomial_upper_tail(4, 3, 0.5) - 5.0 / 16.0).abs() < 1e-15);
        assert_eq!(binomial_upper_tail(10, 0, 0.3), 1.0);
        assert_eq!(binomial_upper_tail(10, 11, 0.3), 0.0);
        // Bin(64, 0.02): P(X >= 1) = 1 - 0.98^64.
        let direct = 1.0 - 0.98f64.powi(64);
        assert!((binomial_upper_tail(64, 1, 0.02) - direct).abs() < 1e-12);
    }

    #[test]
    fn p_values_lie_on_the_grid_and_never_below_the_exact_tail() {
        for m in 0..=JOB_QUERIES {
            let p = p_value(JOB_QUERIES, m);
            let tail = binomial_upper_tail(JOB_QUERIES, m, NULL_RATE);
            assert!(p >= tail - 1e-15, "{m}: {p} < {tail}");
            assert!(((p * P_GRID).round() - p * P_GRID).abs() < 1e-6, "{p}");
            assert!((1e-4..=1.0).contains(&p));
        }
    }

    #[test]
    fn the_verdict_turns_at_the_stated_threshold() {
        // Bin(64, 0.02) has mean 1.28: 6 mismatches are at p = 0.0018, 7 at 0.0003; of 32
        // queries, 4 are at 0.0037 and 5 at 0.0005.
        assert_eq!(threshold(JOB_QUERIES), 7);
        assert_eq!(threshold(CHECK_QUERIES), 5);
        let at = |m| {
            ModelIdentity::assess(CheckCounts {
                queries: JOB_QUERIES,
                mismatches: m,
            })
        };
        assert_eq!(at(6).verdict, IdentityVerdict::Same);
        assert_eq!(at(6).p_value, Some(0.0018));
        assert_eq!(at(7).verdict, IdentityVerdict::Changed);
        assert_eq!(at(0).p_value, Some(1.0));
        assert_eq!(
            ModelIdentity::assess(CheckCounts::default()),
            ModelIdentity::not_checked()
        );
    }

    #[test]
    fn the_figures_serialize_as_the_attestation_states_them() {
        let json = serde_json::to_value(ModelIdentity::assess(CheckCounts {
            queries: 64,
            mismatches: 9,
        }))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"test": "border-binomial/v1", "queries": 64, "mismatches": 9,
                               "p_value": 0.0001, "verdict": "changed"})
        );
        assert_eq!(
            serde_json::to_value(ModelIdentity::not_checked()).unwrap()["verdict"],
            "not_checked"
        );
        for v in [
            IdentityVerdict::Same,
            IdentityVerdict::Changed,
            IdentityVerdict::NotChecked,
        ] {
            assert_eq!(IdentityVerdict::of_text(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }

    #[test]
    fn a_registration_with_serving_noise_above_the_null_rate_is_unstable() {
        assert!(!unstable(32, 0));
        assert!(!unstable(32, 1));
        assert!(unstable(32, 3));
    }
}
