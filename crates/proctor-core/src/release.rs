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
mod tests;
