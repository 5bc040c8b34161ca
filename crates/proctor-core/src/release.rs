//! The release of results: what of a finished job may leave the host, and in what form.
//!
//! Per the policy's release rules: no release below `min_samples` ok samples, figures rounded
//! half-to-even to `decimals`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metric::MetricSpec;
use crate::outcome::{OutcomeTally, SampleCounts};
use crate::policy::ReleaseRules;
use crate::stats::{Accumulator, MetricSummary, round_to, summarize};

/// What the vendor bills: model calls and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Model calls that reached the endpoint.
    pub queries: u64,
    /// Prompt tokens, as the endpoint counted them.
    pub input_tokens: u64,
    /// Reply tokens, as the endpoint counted them.
    pub output_tokens: u64,
}

impl Usage {
    /// Adds another usage.
    pub fn add(&mut self, other: &Usage) {
        self.queries += other.queries;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// Whether the aggregates were released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    /// The metrics are in the report.
    Released,
    /// The metrics were held back; `reason` says why.
    Withheld,
}

/// The noise mechanism applied to the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// No noise.
    None,
    /// The Laplace mechanism (DESIGN.md, "Release of results").
    Laplace,
}

/// How the aggregates were released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// Released or withheld.
    pub status: ReleaseStatus,
    /// Why a release was withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The noise mechanism.
    pub mechanism: Mechanism,
    /// The epsilon spent, under DP.
    pub epsilon: Option<f64>,
    /// Each noised quantity's noise scale, under DP.
    pub noise: Option<BTreeMap<String, f64>>,
    /// Decimals the figures were rounded to.
    pub decimals: u64,
    /// The policy's `min_samples`.
    pub min_samples: u64,
}

/// What leaves the host at the end of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Released {
    /// Sample counts by outcome.
    pub samples: SampleCounts,
    /// Usage, as the evaluator may see it.
    pub usage: Usage,
    /// Per-metric figures; empty when withheld.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// How it was released.
    pub release: Release,
}

/// Applies the release rules to a finished job's tallies. `accumulators[i]` belongs to
/// `specs[i]`.
pub fn release(
    rules: &ReleaseRules,
    specs: &[MetricSpec],
    accumulators: &[Accumulator],
    tally: &OutcomeTally,
    usage: Usage,
) -> Released {
    let samples = tally.counts();
    let decimals = u32::try_from(rules.decimals).unwrap_or(u32::MAX);
    let mut release = Release {
        status: ReleaseStatus::Released,
        reason: None,
        mechanism: Mechanism::None,
        epsilon: None,
        noise: None,
        decimals: rules.decimals,
        min_samples: rules.min_samples,
    };
    if samples.ok < rules.min_samples {
        release.status = ReleaseStatus::Withheld;
        release.reason = Some(format!(
            "{} ok samples; the policy releases results from {} on",
            samples.ok, rules.min_samples
        ));
        return Released {
            samples,
            usage,
            metrics: BTreeMap::new(),
            release,
        };
    }
    let metrics = specs
        .iter()
        .zip(accumulators)
        .map(|(spec, acc)| {
            let s = summarize(spec, acc.n, acc.sum, acc.sum_sq);
            let r = |v: f64| round_to(v, decimals);
            let rounded = MetricSummary {
                n: s.n,
                mean: s.mean.map(r),
                stderr: s.stderr.map(r),
                ci95: s.ci95.map(|[lo, hi]| [r(lo), r(hi)]),
            };
            (spec.name.clone(), rounded)
        })
        .collect();
    Released {
        samples,
        usage,
        metrics,
        release,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;
    use crate::policy::Policy;

    fn accuracy() -> MetricSpec {
        MetricSpec {
            name: "accuracy".into(),
            description: String::new(),
            min: 0.0,
            max: 1.0,
        }
    }

    #[test]
    fn below_min_samples_the_metrics_are_withheld_with_a_reason() {
        let rules = Policy::standard().release;
        let mut tally = OutcomeTally::default();
        let mut acc = Accumulator::default();
        for _ in 0..9 {
            tally.add(Outcome::Ok);
            acc.add(&accuracy(), 1.0);
        }
        let out = release(&rules, &[accuracy()], &[acc], &tally, Usage::default());
        assert_eq!(out.release.status, ReleaseStatus::Withheld);
        assert!(
            out.release
                .reason
                .as_deref()
                .unwrap()
                .contains("9 ok samples")
        );
        assert!(out.metrics.is_empty());
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["release"]["status"], "withheld");
        assert_eq!(json["metrics"], serde_json::json!({}));
    }

    #[test]
    fn released_figures_are_rounded_to_the_policys_decimals() {
        let rules = Policy::standard().release;
        let mut tally = OutcomeTally::default();
        let mut acc = Accumulator::default();
        for i in 0..30 {
            tally.add(Outcome::Ok);
            acc.add(&accuracy(), if i % 3 == 0 { 1.0 } else { 0.0 });
        }
        let out = release(&rules, &[accuracy()], &[acc], &tally, Usage::default());
        let m = out.metrics["accuracy"];
        assert_eq!(m.mean, Some(0.3333));
        assert_eq!(out.release.status, ReleaseStatus::Released);
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["release"]["mechanism"], "none");
        assert!(json["release"].get("reason").is_none());
        assert_eq!(json["release"]["epsilon"], serde_json::Value::Null);
    }
}
