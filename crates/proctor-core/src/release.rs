//! The release of results: what of a finished job may leave the host, and in what form.
//!
//! Per the policy's release rules: no release below `min_samples` ok samples (checked against
//! the noised count under DP), figures rounded half-to-even to `decimals`, and, when
//! `dp_epsilon` is set, the Laplace mechanism over everything that depends on model outputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metric::MetricSpec;
use crate::noise::{self, Uniform};
use crate::outcome::{OutcomeTally, SampleCounts};
use crate::policy::Policy;
use crate::stats::{Accumulator, MetricSummary, round_to, summarize, t975};

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

/// Noises usage with epsilon `share` for each of its three quantities; returns the noised
/// usage and the scales. One sample moves queries by at most `max_per_sample`, input tokens by
/// `max_per_sample` times a query's worst-case input (every byte of a full prompt a token, plus
/// the template overhead of the most messages a request may carry), output tokens by
/// `max_per_sample · max_tokens`.
fn noise_usage(
    policy: &Policy,
    usage: Usage,
    share: f64,
    noise: Uniform<'_>,
) -> (Usage, [(&'static str, f64); 3]) {
    let q = &policy.queries;
    let per_sample = q.max_per_sample as f64;
    let input_per_query = q.worst_case_tokens_per_query().saturating_sub(q.max_tokens) as f64;
    let scales = [
        ("usage.queries", per_sample / share),
        ("usage.input_tokens", per_sample * input_per_query / share),
        (
            "usage.output_tokens",
            per_sample * (q.max_tokens as f64) / share,
        ),
    ];
    let noised = Usage {
        queries: noise::noised_count(usage.queries, scales[0].1, noise),
        input_tokens: noise::noised_count(usage.input_tokens, scales[1].1, noise),
        output_tokens: noise::noised_count(usage.output_tokens, scales[2].1, noise),
    };
    (noised, scales)
}

/// The usage of a DP job that ended without a release (failed, cancelled, revoked) as it may
/// be shown to anyone but the vendor: the whole epsilon spent on usage alone, split over its
/// three quantities. `None` for a policy without DP: usage is shown exactly.
pub fn noised_usage(policy: &Policy, usage: Usage, noise: Uniform<'_>) -> Option<Usage> {
    let epsilon = policy.release.dp_epsilon?;
    Some(noise_usage(policy, usage, epsilon / 3.0, noise).0)
}

/// Applies the policy's release rules to a finished job's tallies. `accumulators[i]` belongs
/// to `specs[i]`. `noise` supplies uniform words for the Laplace mechanism (a CSPRNG on the
/// host); it is not called when the policy sets no `dp_epsilon`.
///
/// Under DP (DESIGN.md, "Release of results"), with `k = 1 + 3·metrics + 3` noised groups and
/// epsilon split evenly across them (basic composition), each group gets `ε/k` and noise of
/// scale `Δ/(ε/k)`:
/// - the outcome counts: one sample moves two of them by one, `Δ = 2` (L1);
/// - per metric, on values shifted to `[0, R]`: `n` (`Δ = 1`), the sum (`Δ = R` plus one grid
///   step for rounding to the grid) and the sum of squares (`Δ = R²` plus one step);
/// - usage: queries (`Δ = max_per_sample`), input tokens (`max_per_sample` times a query's
///   worst-case input: a token per prompt byte plus template overhead), output tokens
///   (`max_per_sample · max_tokens`).
///
/// `total` is not noised: it is the number of samples run, fixed before any model output;
/// noised counts and each `n` are clamped to it (post-processing of public information).
/// Mean, standard error and interval are computed from the noised values only
/// (post-processing), means clamped to `[min, max]`. The interval accounts for the noise by
/// the delta method: its half-width is `t(0.975, n-1) · √(stderr² + (Var(noise_sum) +
/// mean_shifted² · Var(noise_n)) / n²)`, with `stderr` the sampling error from the noised sums.
pub fn release(
    policy: &Policy,
    specs: &[MetricSpec],
    accumulators: &[Accumulator],
    tally: &OutcomeTally,
    usage: Usage,
    noise: Uniform<'_>,
) -> Released {
    let rules = &policy.release;
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
    let (samples, usage, figures) = match rules.dp_epsilon {
        None => {
            let figures: Vec<Figures> = accumulators
                .iter()
                .map(|a| Figures {
                    n: a.n,
                    sum: a.sum,
                    sum_sq: a.sum_sq,
                    noise_variance: None,
                })
                .collect();
            (tally.counts(), usage, figures)
        }
        Some(epsilon) => {
            let mut scales = BTreeMap::new();
            let groups = 1 + 3 * specs.len() + 3;
            let share = epsilon / groups as f64;
            let step = 10f64.powi(-(decimals as i32));

            let count_scale = 2.0 / share;
            scales.insert("samples".to_owned(), count_scale);
            // The number of samples run is public: clamping to it is post-processing.
            let total = tally.total();
            let mut samples = tally
                .map_counts(|c| noise::noised_count(c, count_scale, noise).min(total))
                .counts();
            samples.total = total;

            let figures = specs
                .iter()
                .zip(accumulators)
                .map(|(spec, acc)| {
                    let range = spec.max - spec.min;
                    let n_scale = 1.0 / share;
                    let sum_scale = (range + step) / share;
                    let sum_sq_scale = (range * range + step) / share;
                    for (what, scale) in
                        [("n", n_scale), ("sum", sum_scale), ("sum_sq", sum_sq_scale)]
                    {
                        scales.insert(format!("metrics.{}.{what}", spec.name), scale);
                    }
                    let n = noise::noised_count(acc.n, n_scale, noise).min(total);
                    let nf = n as f64;
                    let sum = noise::noised_on_grid(acc.sum, sum_scale, decimals, noise)
                        .clamp(0.0, nf * range);
                    let sum_sq = noise::noised_on_grid(acc.sum_sq, sum_sq_scale, decimals, noise)
                        .clamp(0.0, nf * range * range);
                    let steps = 10f64.powi(decimals as i32);
                    Figures {
                        n,
                        sum,
                        sum_sq,
                        noise_variance: Some((
                            noise::discrete_laplace_variance(sum_scale * steps) / (steps * steps),
                            noise::discrete_laplace_variance(n_scale),
                        )),
                    }
                })
                .collect();

            let (usage, usage_scales) = noise_usage(policy, usage, share, noise);
            for (name, scale) in usage_scales {
                scales.insert(name.to_owned(), scale);
            }
            release.mechanism = Mechanism::Laplace;
            release.epsilon = Some(epsilon);
            release.noise = Some(scales);
            (samples, usage, figures)
        }
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
        .zip(&figures)
        .map(|(spec, f)| {
            let mut s = summarize(spec, f.n, f.sum, f.sum_sq);
            if let (Some((var_sum, var_n)), Some(mean), Some(stderr)) =
                (f.noise_variance, s.mean, s.stderr)
            {
                let nf = f.n as f64;
                let shifted = mean - spec.min;
                let noise_var = (var_sum + shifted * shifted * var_n) / (nf * nf);
                let half = t975(nf - 1.0) * (stderr * stderr + noise_var).sqrt();
                s.ci95 = Some([(mean - half).max(spec.min), (mean + half).min(spec.max)]);
            }
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

/// One metric's sums as released: exact, or noised with the noise's variances (sum, n).
struct Figures {
    n: u64,
    sum: f64,
    sum_sq: f64,
    noise_variance: Option<(f64, f64)>,
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
        let policy = Policy::standard();
        let mut tally = OutcomeTally::default();
        let mut acc = Accumulator::default();
        for _ in 0..9 {
            tally.add(Outcome::Ok);
            acc.add(&accuracy(), 1.0);
        }
        let out = release(
            &policy,
            &[accuracy()],
            &[acc],
            &tally,
            Usage::default(),
            &mut || unreachable!("no DP, no noise"),
        );
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
        let policy = Policy::standard();
        let mut tally = OutcomeTally::default();
        let mut acc = Accumulator::default();
        for i in 0..30 {
            tally.add(Outcome::Ok);
            acc.add(&accuracy(), if i % 3 == 0 { 1.0 } else { 0.0 });
        }
        let out = release(
            &policy,
            &[accuracy()],
            &[acc],
            &tally,
            Usage::default(),
            &mut || unreachable!("no DP, no noise"),
        );
        let m = out.metrics["accuracy"];
        assert_eq!(m.mean, Some(0.3333));
        assert_eq!(out.release.status, ReleaseStatus::Released);
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["release"]["mechanism"], "none");
        assert!(json["release"].get("reason").is_none());
        assert_eq!(json["release"]["epsilon"], serde_json::Value::Null);
    }

    fn dp_job(ok: u64, correct: u64) -> (OutcomeTally, Accumulator) {
        let mut tally = OutcomeTally::default();
        let mut acc = Accumulator::default();
        for i in 0..ok {
            tally.add(Outcome::Ok);
            acc.add(&accuracy(), if i < correct { 1.0 } else { 0.0 });
        }
        for _ in 0..7 {
            tally.add(Outcome::OutOfFuel);
        }
        (tally, acc)
    }

    #[test]
    fn under_dp_the_release_states_its_mechanism_and_every_noise_scale() {
        let policy = Policy::named("strict").unwrap();
        let eps = policy.release.dp_epsilon.unwrap();
        let (tally, acc) = dp_job(500, 400);
        let usage = Usage {
            queries: 500,
            input_tokens: 2500,
            output_tokens: 500,
        };
        let mut next = crate::noise::tests::seeded(1);
        let out = release(&policy, &[accuracy()], &[acc], &tally, usage, &mut next);
        assert_eq!(out.release.mechanism, Mechanism::Laplace);
        assert_eq!(out.release.epsilon, Some(eps));
        let scales = out.release.noise.as_ref().unwrap();
        // 1 metric: 7 groups, each with epsilon / 7.
        assert_eq!(scales["samples"], 2.0 * 7.0 / eps);
        assert_eq!(scales["metrics.accuracy.n"], 7.0 / eps);
        assert!((scales["metrics.accuracy.sum"] - 1.01 * 7.0 / eps).abs() < 1e-9);
        let q = &policy.queries;
        assert_eq!(scales["usage.queries"], q.max_per_sample as f64 * 7.0 / eps);
        // A query's input can be a full prompt plus the template overhead of 256 messages.
        let input = (q.max_prompt_bytes + 8 * 256 + 16) as f64;
        assert_eq!(
            scales["usage.input_tokens"],
            q.max_per_sample as f64 * input * 7.0 / eps
        );
        assert_eq!(scales.len(), 7);
        assert_eq!(
            out.samples.total, 507,
            "the number of samples run is not noised"
        );
        let m = out.metrics["accuracy"];
        let mean = m.mean.unwrap();
        assert!((0.0..=1.0).contains(&mean));
        let [lo, hi] = m.ci95.unwrap();
        assert!(lo <= mean && mean <= hi);
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["release"]["mechanism"], "laplace");
    }

    #[test]
    fn usage_without_a_release_is_noised_only_under_dp() {
        let usage = Usage {
            queries: 1000,
            input_tokens: 50_000,
            output_tokens: 4000,
        };
        let mut next = crate::noise::tests::seeded(3);
        assert_eq!(noised_usage(&Policy::standard(), usage, &mut next), None);
        let strict = Policy::named("strict").unwrap();
        let draws: Vec<Usage> = (0..50)
            .filter_map(|_| noised_usage(&strict, usage, &mut next))
            .collect();
        assert_eq!(draws.len(), 50);
        assert!(draws.iter().any(|u| u.queries != usage.queries));
        assert!(draws.iter().any(|u| u.output_tokens != usage.output_tokens));
        // Scale for queries: max_per_sample / (epsilon / 3) = 12; the draws center on the truth.
        let mean = draws.iter().map(|u| u.queries as f64).sum::<f64>() / 50.0;
        assert!((mean - 1000.0).abs() < 12.0, "{mean}");
    }

    #[test]
    fn two_dp_releases_of_the_same_outputs_differ_and_center_on_the_truth() {
        let policy = Policy::named("strict").unwrap();
        let (tally, acc) = dp_job(500, 400);
        let mut means = Vec::new();
        let mut next = crate::noise::tests::seeded(99);
        for _ in 0..400 {
            let out = release(
                &policy,
                &[accuracy()],
                &[acc],
                &tally,
                Usage::default(),
                &mut next,
            );
            means.push(out.metrics["accuracy"].mean.unwrap());
        }
        assert_ne!(
            means[0], means[1],
            "two runs over the same outputs visibly differ"
        );
        let average = means.iter().sum::<f64>() / means.len() as f64;
        assert!((average - 0.8).abs() < 0.02, "unbiased enough: {average}");
    }

    #[test]
    fn under_dp_min_samples_is_checked_against_the_noised_count() {
        let mut policy = Policy::named("strict").unwrap();
        policy.release.min_samples = 100;
        let (tally, acc) = dp_job(100, 50);
        let mut next = crate::noise::tests::seeded(5);
        let mut withheld = 0;
        for _ in 0..200 {
            let out = release(
                &policy,
                &[accuracy()],
                &[acc],
                &tally,
                Usage::default(),
                &mut next,
            );
            let released = out.release.status == ReleaseStatus::Released;
            assert_eq!(
                released,
                out.samples.ok >= 100,
                "the decision follows the noised count"
            );
            assert_eq!(released, !out.metrics.is_empty());
            withheld += usize::from(!released);
        }
        // Exactly at the threshold, noise withholds about half of the releases.
        assert!((40..160).contains(&withheld), "{withheld} of 200 withheld");
    }
}
