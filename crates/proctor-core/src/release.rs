//! The release of results: what of a finished job may leave the host, and in what form.
//!
//! Per the policy's release rules: no release below `min_samples` ok samples (checked against
//! the noised count under DP), and no metric reported by fewer; figures on a grid relative to
//! each metric's declared range (`10^-decimals` of `R = max - min`, see
//! [`Accumulator`]), so nothing a release can say grows with the range the guest chose; and,
//! when `dp_epsilon` is set, the Laplace mechanism over everything that depends on model
//! outputs, drawn exactly on that grid ([`crate::noise`]). Every function here is total: no
//! declaration the host accepts and no tally makes it panic or produce a NaN.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metric::MetricSpec;
use crate::noise::{self, Scale, Uniform};
use crate::outcome::{OutcomeTally, SampleCounts};
use crate::policy::Policy;
use crate::stats::{Accumulator, MetricSummary, grid_steps, t975};

/// The reason of a release withheld for too few ok samples: one fixed text, since the count
/// itself is in the report.
pub const WITHHELD_REASON: &str = "fewer ok samples than the policy's min_samples";

/// The reason of a private release refused at the end for a noise scale out of bounds (a job
/// is refused before it runs for this; this only guards a caller that skipped the check).
pub const SCALE_REASON: &str = "a noise scale is above the safe bound";

/// What the vendor bills: model calls and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    /// The metrics are in the report.
    Released,
    /// The metrics were held back; `reason` says why.
    Withheld,
}

/// The noise mechanism applied to the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// No noise.
    None,
    /// The Laplace mechanism (DESIGN.md, "Release of results").
    Laplace,
}

/// How the aggregates were released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Metrics held back because fewer than `min_samples` ok samples reported them (by the
    /// noised `n` under DP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld_metrics: Vec<String>,
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

/// Why a private release cannot be made: a noise scale beyond the safe bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReleaseError {
    /// The noise on `quantity` would need more than [`noise::MAX_SCALE_STEPS`] grid steps.
    #[error(
        "the noise on `{quantity}` would need a scale of {steps:.3e} grid steps, above the safe bound of 2^40; raise release.dp_epsilon or lower release.decimals, the number of metrics or the query limits"
    )]
    ScaleTooLarge {
        /// The noised quantity, as in `release.noise` (e.g. `metrics.accuracy.sum`).
        quantity: String,
        /// The scale it would need.
        steps: f64,
    },
}

/// The noise scales of a private release, each in grid steps of its quantity.
#[derive(Debug, Clone)]
struct Scales {
    samples: Scale,
    /// Per metric: n, sum, sum of squares.
    metrics: Vec<[Scale; 3]>,
    /// Queries, input tokens, output tokens.
    usage: [Scale; 3],
}

/// The most usage `samples` samples can be billed under `policy`, as the host tallies it
/// (every reported token count clamped to its query's worst case).
pub fn usage_caps(policy: &Policy, samples: u64) -> Usage {
    let q = &policy.queries;
    let queries = samples.saturating_mul(q.max_per_sample);
    let input = q.worst_case_tokens_per_query().saturating_sub(q.max_tokens);
    Usage {
        queries,
        input_tokens: queries.saturating_mul(input),
        output_tokens: queries.saturating_mul(q.max_tokens),
    }
}

/// One sample's largest move of each usage figure: its queries, and their worst-case tokens.
fn usage_sensitivity(policy: &Policy) -> [u128; 3] {
    let caps = usage_caps(policy, 1);
    [caps.queries, caps.input_tokens, caps.output_tokens].map(u128::from)
}

/// The scales of a private release under `policy` for `metrics`, or `None` without DP.
///
/// Epsilon is split evenly over `k = 1 + 3·metrics + 3` groups (basic composition), so each
/// quantity of sensitivity `Δ` (in its grid steps) gets noise of scale `Δ·k/ε`:
/// - the outcome counts: one sample moves two of them by one, `Δ = 2` (L1);
/// - per metric: `n` (`Δ = 1`), the sum and the sum of squares (each `Δ = 10^decimals`: one
///   sample's grid point, whatever the declared range);
/// - usage: queries (`Δ = max_per_sample`), input and output tokens (`max_per_sample` times a
///   query's worst case).
///
/// # Errors
///
/// [`ReleaseError::ScaleTooLarge`] when a scale exceeds [`noise::MAX_SCALE_STEPS`].
fn scales(policy: &Policy, metrics: &[MetricSpec]) -> Result<Option<Scales>, ReleaseError> {
    let Some(epsilon) = policy.release.dp_epsilon else {
        return Ok(None);
    };
    let groups = (1 + 3 * metrics.len() + 3) as u128;
    let steps = u128::from(grid_steps(policy.release.decimals));
    let scale = |quantity: &dyn Fn() -> String, sensitivity: u128| {
        let wanted = sensitivity.saturating_mul(groups);
        Scale::new(wanted, epsilon).map_err(|_| ReleaseError::ScaleTooLarge {
            quantity: quantity(),
            steps: wanted as f64 / epsilon,
        })
    };
    let samples = scale(&|| "samples".to_owned(), 2)?;
    let mut per_metric = Vec::with_capacity(metrics.len());
    for spec in metrics {
        let named = |what: &str| format!("metrics.{}.{what}", spec.name);
        per_metric.push([
            scale(&|| named("n"), 1)?,
            scale(&|| named("sum"), steps)?,
            scale(&|| named("sum_sq"), steps)?,
        ]);
    }
    let [q, i, o] = usage_sensitivity(policy);
    let usage = [
        scale(&|| "usage.queries".to_owned(), q)?,
        scale(&|| "usage.input_tokens".to_owned(), i)?,
        scale(&|| "usage.output_tokens".to_owned(), o)?,
    ];
    Ok(Some(Scales {
        samples,
        metrics: per_metric,
        usage,
    }))
}

/// Checks, before a job runs, that a private release under `policy` for `metrics` can be made:
/// every noise scale within [`noise::MAX_SCALE_STEPS`] grid steps. Nothing here depends on the
/// declared ranges, only on their number, the decimals, the query limits and epsilon.
///
/// # Errors
///
/// [`ReleaseError::ScaleTooLarge`] naming the first quantity out of bounds.
pub fn check_scales(policy: &Policy, metrics: &[MetricSpec]) -> Result<(), ReleaseError> {
    scales(policy, metrics).map(drop)
}

impl Scales {
    /// The scales as `release.noise` states them, in the units of each quantity (counts and
    /// tokens; sums in units of the normalized value, so `1` is the metric's whole range).
    fn stated(&self, metrics: &[MetricSpec], steps: u64) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        out.insert("samples".to_owned(), self.samples.as_f64());
        for (spec, [n, sum, sum_sq]) in metrics.iter().zip(&self.metrics) {
            let per_unit = steps as f64;
            out.insert(format!("metrics.{}.n", spec.name), n.as_f64());
            out.insert(
                format!("metrics.{}.sum", spec.name),
                sum.as_f64() / per_unit,
            );
            out.insert(
                format!("metrics.{}.sum_sq", spec.name),
                sum_sq.as_f64() / per_unit,
            );
        }
        for (name, scale) in ["usage.queries", "usage.input_tokens", "usage.output_tokens"]
            .into_iter()
            .zip(self.usage)
        {
            out.insert(name.to_owned(), scale.as_f64());
        }
        out
    }

    fn noise_usage(&self, usage: Usage, caps: Usage, noise: Uniform<'_>) -> Usage {
        let [q, i, o] = self.usage;
        Usage {
            queries: noise::noised_count(usage.queries.min(caps.queries), q, caps.queries, noise),
            input_tokens: noise::noised_count(
                usage.input_tokens.min(caps.input_tokens),
                i,
                caps.input_tokens,
                noise,
            ),
            output_tokens: noise::noised_count(
                usage.output_tokens.min(caps.output_tokens),
                o,
                caps.output_tokens,
                noise,
            ),
        }
    }
}

/// The usage of a DP job that ended without a release (failed, cancelled, revoked) as it may
/// be shown to anyone but the vendor: noised with the whole epsilon spent on usage alone
/// (split over its three figures) and clamped to what `samples` samples can be billed. `None`
/// for a policy without DP: usage is shown exactly.
pub fn noised_usage(
    policy: &Policy,
    usage: Usage,
    samples: u64,
    noise: Uniform<'_>,
) -> Option<Usage> {
    let epsilon = policy.release.dp_epsilon?;
    let caps = usage_caps(policy, samples);
    let mut noised = [0u64; 3];
    let truth = [usage.queries, usage.input_tokens, usage.output_tokens];
    let cap = [caps.queries, caps.input_tokens, caps.output_tokens];
    for (((slot, sensitivity), truth), cap) in noised
        .iter_mut()
        .zip(usage_sensitivity(policy))
        .zip(truth)
        .zip(cap)
    {
        // Three groups. A scale out of bounds shows the worst case rather than the truth.
        *slot = match Scale::new(sensitivity.saturating_mul(3), epsilon) {
            Ok(scale) => noise::noised_count(truth.min(cap), scale, cap, noise),
            Err(_) => cap,
        };
    }
    let [queries, input_tokens, output_tokens] = noised;
    Some(Usage {
        queries,
        input_tokens,
        output_tokens,
    })
}

/// One metric's figures as released: on the grid, exact or noised, with the 95% quantiles of
/// the noise on its sum (grid steps) and on its n when noised.
struct Figures {
    n: u64,
    sum: u128,
    sum_sq: u128,
    noise_quantiles: Option<(f64, f64)>,
}

/// Applies the policy's release rules to a finished job's tallies. `accumulators[i]` belongs
/// to `specs[i]` and was made with the policy's decimals. `noise` supplies uniform words for
/// the Laplace mechanism (a CSPRNG on the host); it is not called when the policy sets no
/// `dp_epsilon`.
///
/// Under DP (see [`check_scales`] for the scales), `total` is not noised: it is the number of
/// samples run, fixed before any model output; noised counts and each `n` are clamped to it,
/// sums to `n` grid points, usage to its caps (post-processing of public information). Mean,
/// standard error and interval are computed from the noised values only (post-processing).
/// The interval accounts for the noise with the Laplace noise's own quantiles: its half-width
/// (in units of the range) is `t(0.975, n-1) · stderr + (c_sum / steps + mean · c_n) / n`, with
/// `c_sum` and `c_n` the 95% quantiles of the absolute noise on the sum and on `n`; the three
/// terms add, which covers at least as much as each alone.
pub fn release(
    policy: &Policy,
    specs: &[MetricSpec],
    accumulators: &[Accumulator],
    tally: &OutcomeTally,
    usage: Usage,
    noise: Uniform<'_>,
) -> Released {
    let rules = &policy.release;
    let steps = grid_steps(rules.decimals);
    let total = tally.total();
    let caps = usage_caps(policy, total);
    let mut release = Release {
        status: ReleaseStatus::Released,
        reason: None,
        mechanism: Mechanism::None,
        epsilon: None,
        noise: None,
        decimals: rules.decimals,
        min_samples: rules.min_samples,
        withheld_metrics: Vec::new(),
    };
    let empty = Accumulator::new(rules.decimals);
    let acc_of = |i: usize| accumulators.get(i).copied().unwrap_or(empty);
    let (samples, usage, figures) = match scales(policy, specs) {
        Ok(None) => {
            let figures: Vec<Figures> = (0..specs.len())
                .map(|i| {
                    let a = acc_of(i);
                    Figures {
                        n: a.n,
                        sum: a.sum,
                        sum_sq: a.sum_sq,
                        noise_quantiles: None,
                    }
                })
                .collect();
            let usage = Usage {
                queries: usage.queries.min(caps.queries),
                input_tokens: usage.input_tokens.min(caps.input_tokens),
                output_tokens: usage.output_tokens.min(caps.output_tokens),
            };
            (tally.counts(), usage, figures)
        }
        Err(_) => {
            release.status = ReleaseStatus::Withheld;
            release.reason = Some(SCALE_REASON.to_owned());
            release.mechanism = Mechanism::Laplace;
            release.epsilon = rules.dp_epsilon;
            return Released {
                samples: SampleCounts {
                    total,
                    ..SampleCounts::default()
                },
                usage: caps,
                metrics: BTreeMap::new(),
                release,
            };
        }
        Ok(Some(scales)) => {
            let mut samples = tally
                .map_counts(|c| noise::noised_count(c, scales.samples, total, noise))
                .counts();
            samples.total = total;
            let figures = (0..specs.len())
                .zip(&scales.metrics)
                .map(|(i, [n_scale, sum_scale, sq_scale])| {
                    let a = acc_of(i);
                    let n = noise::noised_count(a.n, *n_scale, total, noise);
                    let cap = u128::from(n) * u128::from(steps);
                    Figures {
                        n,
                        sum: noise::noised_steps(a.sum, *sum_scale, cap, noise),
                        sum_sq: noise::noised_steps(a.sum_sq, *sq_scale, cap, noise),
                        noise_quantiles: Some((
                            noise::discrete_laplace_quantile95(sum_scale.as_f64()),
                            noise::discrete_laplace_quantile95(n_scale.as_f64()),
                        )),
                    }
                })
                .collect();
            let usage = scales.noise_usage(usage, caps, noise);
            release.mechanism = Mechanism::Laplace;
            release.epsilon = rules.dp_epsilon;
            release.noise = Some(scales.stated(specs, steps));
            (samples, usage, figures)
        }
    };

    if samples.ok < rules.min_samples {
        release.status = ReleaseStatus::Withheld;
        release.reason = Some(WITHHELD_REASON.to_owned());
        return Released {
            samples,
            usage,
            metrics: BTreeMap::new(),
            release,
        };
    }
    let mut metrics = BTreeMap::new();
    for (spec, f) in specs.iter().zip(&figures) {
        if f.n < rules.min_samples {
            release.withheld_metrics.push(spec.name.clone());
            continue;
        }
        metrics.insert(spec.name.clone(), summarize(spec, steps, f));
    }
    Released {
        samples,
        usage,
        metrics,
        release,
    }
}

/// `a / b` rounded half-to-even, exactly (`b > 0`).
fn div_round_even(a: u128, b: u128) -> u128 {
    let (q, r) = (a / b, a % b);
    match (2 * r).cmp(&b) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
        std::cmp::Ordering::Less => q,
    }
}

/// A normalized value in `[0, 1]` rounded half-to-even to the grid and mapped to the range.
fn on_grid(spec: &MetricSpec, u: f64, steps: u64) -> f64 {
    let k = (u.clamp(0.0, 1.0) * steps as f64).round_ties_even();
    spec.from_grid((k as u64).min(steps), steps)
}

/// A metric's released figures from its grid sums (CONTRACTS.md: n, mean, stderr with n − 1,
/// a t interval clipped to the range; null below n = 1 and n = 2), every figure on the
/// range-relative grid.
fn summarize(spec: &MetricSpec, steps: u64, f: &Figures) -> MetricSummary {
    let mut summary = MetricSummary {
        n: f.n,
        mean: None,
        stderr: None,
        ci95: None,
    };
    if f.n == 0 || steps == 0 {
        return summary;
    }
    let n = u128::from(f.n);
    let mean_k = div_round_even(f.sum, n).min(u128::from(steps));
    summary.mean = Some(spec.from_grid(mean_k as u64, steps));
    if f.n < 2 {
        return summary;
    }
    let per_unit = steps as f64;
    let nf = f.n as f64;
    let sum = f.sum as f64 / per_unit;
    let sum_sq = f.sum_sq as f64 / per_unit;
    let variance = ((sum_sq - sum * sum / nf) / (nf - 1.0)).max(0.0);
    let stderr = (variance / nf).sqrt();
    let mean = mean_k as f64 / per_unit;
    let mut half = t975(nf - 1.0) * stderr;
    if let Some((c_sum, c_n)) = f.noise_quantiles {
        half += (c_sum / per_unit + mean * c_n) / nf;
    }
    // Not finite only if a figure overflowed f64, which integer sums of u64 counts cannot.
    if !half.is_finite() {
        half = 1.0;
    }
    let k = (stderr.clamp(0.0, 1.0) * per_unit).round_ties_even();
    summary.stderr = Some(spec.range() * (k / per_unit));
    summary.ci95 = Some([
        on_grid(spec, mean - half, steps),
        on_grid(spec, mean + half, steps),
    ]);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;
    use crate::policy::Policy;

    fn metric(name: &str, min: f64, max: f64) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            description: String::new(),
            min,
            max,
        }
    }

    fn accuracy() -> MetricSpec {
        metric("accuracy", 0.0, 1.0)
    }

    fn no_noise() -> impl FnMut() -> u64 {
        || unreachable!("no DP, no noise")
    }

    /// `ok` ok samples reporting `value(i)` for `spec`, and `traps` samples out of fuel.
    fn job(
        policy: &Policy,
        spec: &MetricSpec,
        ok: u64,
        traps: u64,
        value: impl Fn(u64) -> f64,
    ) -> (OutcomeTally, Accumulator) {
        let mut tally = OutcomeTally::default();
        let mut acc = Accumulator::new(policy.release.decimals);
        for i in 0..ok {
            tally.add(Outcome::Ok);
            acc.add(spec, value(i));
        }
        for _ in 0..traps {
            tally.add(Outcome::OutOfFuel);
        }
        (tally, acc)
    }

    #[test]
    fn below_min_samples_the_metrics_are_withheld_with_a_fixed_reason() {
        let policy = Policy::standard();
        let (tally, acc) = job(&policy, &accuracy(), 9, 0, |_| 1.0);
        let out = release(
            &policy,
            &[accuracy()],
            &[acc],
            &tally,
            Usage::default(),
            &mut no_noise(),
        );
        assert_eq!(out.release.status, ReleaseStatus::Withheld);
        assert_eq!(out.release.reason.as_deref(), Some(WITHHELD_REASON));
        assert!(out.metrics.is_empty());
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["release"]["status"], "withheld");
        assert_eq!(json["metrics"], serde_json::json!({}));
    }

    #[test]
    fn released_figures_lie_on_the_grid_of_the_range() {
        let policy = Policy::standard();
        let (tally, acc) = job(&policy, &accuracy(), 30, 0, |i| (i % 3 == 0).into());
        let out = release(
            &policy,
            &[accuracy()],
            &[acc],
            &tally,
            Usage::default(),
            &mut no_noise(),
        );
        let m = out.metrics["accuracy"];
        assert_eq!(m.mean, Some(0.3333));
        assert_eq!(out.release.status, ReleaseStatus::Released);
        // The grid is relative: on [0, 255] at 4 decimals a step is 0.0255.
        let byte = metric("byte", 0.0, 255.0);
        let (tally, acc) = job(&policy, &byte, 30, 0, |i| i as f64);
        let out = release(
            &policy,
            &[byte],
            &[acc],
            &tally,
            Usage::default(),
            &mut no_noise(),
        );
        let mean = out.metrics["byte"].mean.unwrap();
        let k = mean / 255.0 * 1e4;
        assert!((k - k.round()).abs() < 1e-6, "{mean} is on the grid");
        assert!((mean - 14.5).abs() < 0.03, "{mean}");
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["release"]["mechanism"], "none");
        assert!(json["release"].get("reason").is_none());
        assert!(json["release"].get("withheld_metrics").is_none());
    }

    #[test]
    fn mean_stderr_and_interval_follow_the_contract() {
        let policy = Policy::standard();
        let spec = metric("m", 0.0, 10.0);
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, 5.0, 5.0];
        let (tally, acc) = job(&policy, &spec, 10, 0, |i| values[i as usize]);
        let out = release(
            &policy,
            &[spec],
            &[acc],
            &tally,
            Usage::default(),
            &mut no_noise(),
        );
        let m = out.metrics["m"];
        assert_eq!(m.n, 10);
        assert_eq!(m.mean, Some(5.0));
        // Sample sd with n - 1: sqrt(32/9); stderr = sd / sqrt(10), on the grid of 0.001.
        let se = (32.0f64 / 9.0).sqrt() / 10f64.sqrt();
        assert!((m.stderr.unwrap() - se).abs() <= 0.0005, "{:?}", m.stderr);
        let half = crate::stats::t975(9.0) * se;
        let [lo, hi] = m.ci95.unwrap();
        assert!((lo - (5.0 - half)).abs() <= 0.0006 && (hi - (5.0 + half)).abs() <= 0.0006);
    }

    #[test]
    fn a_metric_that_few_samples_report_is_withheld_not_released() {
        let policy = Policy::standard();
        let rare = metric("rare", 0.0, 1.0);
        let (tally, common) = job(&policy, &accuracy(), 40, 0, |_| 1.0);
        let mut once = Accumulator::new(policy.release.decimals);
        once.add(&rare, 0.123456);
        let out = release(
            &policy,
            &[accuracy(), rare],
            &[common, once],
            &tally,
            Usage::default(),
            &mut no_noise(),
        );
        assert_eq!(out.release.status, ReleaseStatus::Released);
        assert!(out.metrics.contains_key("accuracy"));
        assert!(
            !out.metrics.contains_key("rare"),
            "one sample's value stays in"
        );
        assert_eq!(out.release.withheld_metrics, ["rare"]);
    }

    #[test]
    fn a_wide_range_releases_nothing_that_decodes_the_per_sample_bits() {
        // The attack of issue 11: sample i reports 2^(440+i) over [0, 1e150] when the model
        // was right, so mean × n would spell out which samples were right.
        let policy = Policy::standard();
        let spec = metric("wide", 0.0, 1e150);
        let release_of = |right: &dyn Fn(u64) -> bool| {
            let (tally, acc) = job(&policy, &spec, 50, 0, |i| {
                if right(i) {
                    2f64.powi(440 + i as i32)
                } else {
                    0.0
                }
            });
            release(
                &policy,
                std::slice::from_ref(&spec),
                &[acc],
                &tally,
                Usage::default(),
                &mut no_noise(),
            )
        };
        let all = release_of(&|_| true);
        // Every sample below the top ones falls under half a grid step of R: flipping them
        // changes nothing released.
        let low_flipped = release_of(&|i| i >= 40 || i % 2 == 0);
        assert_eq!(all, low_flipped);
        let mean = all.metrics["wide"].mean.unwrap();
        let k = mean / 1e150 * 1e4;
        assert!(
            (k - k.round()).abs() < 1e-6,
            "the mean is on the grid: {mean}"
        );
    }

    #[test]
    fn a_declared_metric_that_is_never_reported_neither_panics_nor_releases() {
        for policy in [Policy::standard(), Policy::named("strict").unwrap()] {
            let never = metric("never", -1e300, 1e300);
            let (tally, acc) = job(&policy, &accuracy(), 200, 0, |_| 1.0);
            let out = release(
                &policy,
                &[accuracy(), never],
                &[acc, Accumulator::new(policy.release.decimals)],
                &tally,
                Usage::default(),
                &mut crate::noise::tests::seeded(11),
            );
            assert!(!out.metrics.contains_key("never"));
            assert!(out.release.withheld_metrics.contains(&"never".to_owned()));
        }
    }

    #[test]
    fn under_dp_the_release_states_its_mechanism_and_every_noise_scale() {
        let policy = Policy::named("strict").unwrap();
        let eps = policy.release.dp_epsilon.unwrap();
        let (tally, acc) = job(&policy, &accuracy(), 500, 7, |i| (i < 400).into());
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
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
        assert!(close(scales["samples"], 2.0 * 7.0 / eps));
        assert!(close(scales["metrics.accuracy.n"], 7.0 / eps));
        // One sample moves the sum by at most the whole range: 1 in normalized units.
        assert!(close(scales["metrics.accuracy.sum"], 7.0 / eps));
        assert!(close(scales["metrics.accuracy.sum_sq"], 7.0 / eps));
        let q = &policy.queries;
        assert!(close(
            scales["usage.queries"],
            q.max_per_sample as f64 * 7.0 / eps
        ));
        // A query's input can be a full prompt plus the template overhead of 256 messages.
        let input = (q.max_prompt_bytes + 8 * 256 + 16) as f64;
        assert!(close(
            scales["usage.input_tokens"],
            q.max_per_sample as f64 * input * 7.0 / eps
        ));
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
    fn usage_without_a_release_is_noised_only_under_dp_and_stays_within_its_caps() {
        let usage = Usage {
            queries: 1000,
            input_tokens: 50_000,
            output_tokens: 4000,
        };
        let mut next = crate::noise::tests::seeded(3);
        assert_eq!(
            noised_usage(&Policy::standard(), usage, 1000, &mut next),
            None
        );
        let strict = Policy::named("strict").unwrap();
        let caps = usage_caps(&strict, 1000);
        let draws: Vec<Usage> = (0..50)
            .filter_map(|_| noised_usage(&strict, usage, 1000, &mut next))
            .collect();
        assert_eq!(draws.len(), 50);
        assert!(draws.iter().any(|u| u.queries != usage.queries));
        assert!(draws.iter().any(|u| u.output_tokens != usage.output_tokens));
        assert!(draws.iter().all(|u| u.queries <= caps.queries
            && u.input_tokens <= caps.input_tokens
            && u.output_tokens <= caps.output_tokens));
        // Scale for queries: max_per_sample / (epsilon / 3) = 12; the draws center on the truth.
        let mean = draws.iter().map(|u| u.queries as f64).sum::<f64>() / 50.0;
        assert!((mean - 1000.0).abs() < 12.0, "{mean}");
    }

    #[test]
    fn two_dp_releases_of_the_same_outputs_differ_and_center_on_the_truth() {
        let policy = Policy::named("strict").unwrap();
        let (tally, acc) = job(&policy, &accuracy(), 500, 7, |i| (i < 400).into());
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
        let (tally, acc) = job(&policy, &accuracy(), 100, 7, |i| (i < 50).into());
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
            withheld += usize::from(!released);
        }
        // Exactly at the threshold, noise withholds about half of the releases.
        assert!((40..160).contains(&withheld), "{withheld} of 200 withheld");
    }

    #[test]
    fn a_scale_beyond_the_safe_bound_is_refused_naming_the_quantity() {
        let mut policy = Policy::named("strict").unwrap();
        policy.release.decimals = 12;
        let err = check_scales(&policy, &[accuracy()]).unwrap_err();
        assert!(err.to_string().contains("metrics.accuracy.sum"), "{err}");
        // The most private setting is refused, never silently exact.
        let mut tiny = Policy::named("strict").unwrap();
        tiny.release.dp_epsilon = Some(1e-300);
        assert!(check_scales(&tiny, &[accuracy()]).is_err());
        let (tally, acc) = job(&tiny, &accuracy(), 500, 0, |_| 1.0);
        let out = release(
            &tiny,
            &[accuracy()],
            &[acc],
            &tally,
            Usage::default(),
            &mut crate::noise::tests::seeded(2),
        );
        assert_eq!(out.release.status, ReleaseStatus::Withheld);
        assert!(out.metrics.is_empty());
        assert_eq!(out.samples.ok, 0, "nothing exact is released");
        // Strict as shipped is within the bound for the most metrics it admits.
        let strict = Policy::named("strict").unwrap();
        let four: Vec<MetricSpec> = (0..4).map(|i| metric(&format!("m{i}"), 0.0, 1.0)).collect();
        check_scales(&strict, &four).unwrap();
    }

    /// Random values for the property test below, from a seeded SplitMix64: arbitrary bit
    /// patterns (every finite f64 is as likely as its share of the encodings), plus the edges
    /// that break naive code (zero, huge magnitudes, values around the range).
    struct Cases(Box<dyn FnMut() -> u64>);

    impl Cases {
        fn f64(&mut self) -> f64 {
            match (self.0)() % 6 {
                0 => 0.0,
                1 => f64::MAX / 2.0,
                2 => -f64::MAX / 2.0,
                3 => ((self.0)() % 2_000_001) as f64 - 1_000_000.0,
                _ => loop {
                    let v = f64::from_bits((self.0)());
                    if v.is_finite() {
                        break v;
                    }
                },
            }
        }

        fn below(&mut self, n: u64) -> u64 {
            (self.0)() % n
        }

        /// A declaration the host accepts: finite, min < max, a finite width.
        fn declaration(&mut self) -> MetricSpec {
            loop {
                let (a, b) = (self.f64(), self.f64());
                let (min, max) = if a < b { (a, b) } else { (b, a) };
                let spec = metric("m", min, max);
                if min < max && spec.range().is_finite() {
                    return spec;
                }
            }
        }
    }

    #[test]
    fn release_never_panics_nor_yields_a_nan_for_an_accepted_declaration() {
        let mut cases = Cases(Box::new(crate::noise::tests::seeded(2026)));
        for case in 0..3000 {
            let spec = cases.declaration();
            let private = cases.below(2) == 0;
            let decimals = cases.below(7);
            let mut policy = if private {
                Policy::named("strict").unwrap()
            } else {
                Policy::standard()
            };
            policy.release.decimals = decimals;
            policy.release.min_samples = 1;
            let mut tally = OutcomeTally::default();
            let mut acc = Accumulator::new(decimals);
            for _ in 0..cases.below(60) {
                // Around the range as often as anywhere: clipping is where edges hide.
                let v = match cases.below(3) {
                    0 => spec.min,
                    1 => spec.max,
                    _ => cases.f64(),
                };
                tally.add(Outcome::Ok);
                acc.add(&spec, v);
            }
            for _ in 0..cases.below(20) {
                tally.add(Outcome::Memory);
            }
            let usage = Usage {
                queries: u64::MAX,
                input_tokens: 3,
                output_tokens: u64::MAX,
            };
            let out = release(
                &policy,
                std::slice::from_ref(&spec),
                &[acc],
                &tally,
                usage,
                &mut crate::noise::tests::seeded(case),
            );
            let json = serde_json::to_string(&out).unwrap();
            for m in out.metrics.values() {
                for v in m
                    .mean
                    .iter()
                    .chain(m.stderr.iter())
                    .chain(m.ci95.iter().flatten())
                {
                    assert!(v.is_finite(), "case {case}: {spec:?} {json}");
                }
                if let Some(mean) = m.mean {
                    assert!(spec.min <= mean && mean <= spec.max, "case {case}: {json}");
                }
            }
            let caps = usage_caps(&policy, tally.total());
            assert!(out.usage.queries <= caps.queries, "case {case}: {json}");
        }
    }
}
