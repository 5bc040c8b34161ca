//! Aggregation of per-sample scores: n, mean, standard error and a 95% t interval.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::metric::MetricSpec;

/// Running sums for one metric over the ok samples that reported it.
///
/// Values are stored shifted to `[0, max - min]`: this is the form the differential-privacy
/// release noises (one sample moves the sum by at most R and the sum of squares by at most R²),
/// and it keeps the variance computation well conditioned.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accumulator {
    /// Samples that reported the metric.
    pub n: u64,
    /// Sum of `value - min`.
    pub sum: f64,
    /// Sum of `(value - min)²`.
    pub sum_sq: f64,
}

impl Accumulator {
    /// Adds one clipped value of a metric declared as `spec`.
    pub fn add(&mut self, spec: &MetricSpec, value: f64) {
        let shifted = spec.clip(value) - spec.min;
        self.n += 1;
        self.sum += shifted;
        self.sum_sq += shifted * shifted;
    }

    /// Merges another accumulator (sums commute).
    pub fn merge(&mut self, other: &Accumulator) {
        self.n += other.n;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }
}

/// One metric's released figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// Ok samples that reported the metric.
    pub n: u64,
    /// The mean; null when n = 0.
    pub mean: Option<f64>,
    /// s/√n with the n − 1 sample standard deviation; null when n < 2.
    pub stderr: Option<f64>,
    /// mean ± t(0.975, n − 1)·stderr clipped to [min, max]; null when n < 2.
    pub ci95: Option<[f64; 2]>,
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom.
pub fn t975(df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(0.975),
        // df is ≥ 1 wherever this is called; a normal quantile is the limit for large df.
        Err(_) => 1.959_963_984_540_054,
    }
}

/// Summarizes `n`, `sum` and `sum_sq` (shifted by `spec.min`) into the released figures,
/// before rounding. `n` is a float because under DP it is a noised count.
pub fn summarize(spec: &MetricSpec, n: u64, sum: f64, sum_sq: f64) -> MetricSummary {
    let range = spec.max - spec.min;
    if n == 0 {
        return MetricSummary {
            n,
            mean: None,
            stderr: None,
            ci95: None,
        };
    }
    let nf = n as f64;
    let mean_shifted = (sum / nf).clamp(0.0, range);
    let mean = spec.min + mean_shifted;
    if n < 2 {
        return MetricSummary {
            n,
            mean: Some(mean),
            stderr: None,
            ci95: None,
        };
    }
    let variance = ((sum_sq - sum * sum / nf) / (nf - 1.0)).max(0.0);
    let stderr = (variance / nf).sqrt();
    let half = t975(nf - 1.0) * stderr;
    let ci95 = [(mean - half).max(spec.min), (mean + half).min(spec.max)];
    MetricSummary {
        n,
        mean: Some(mean),
        stderr: Some(stderr),
        ci95: Some(ci95),
    }
}

/// Rounds half-to-even to `decimals` places.
pub fn round_to(value: f64, decimals: u32) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    let scaled = value * scale;
    // Values too large to carry that many decimals are already exact at that precision.
    if !scaled.is_finite() || scaled.abs() >= 2f64.powi(52) {
        return value;
    }
    scaled.round_ties_even() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: f64, max: f64) -> MetricSpec {
        MetricSpec {
            name: "m".into(),
            description: String::new(),
            min,
            max,
        }
    }

    fn summary_of(spec: &MetricSpec, values: &[f64]) -> MetricSummary {
        let mut acc = Accumulator::default();
        for v in values {
            acc.add(spec, *v);
        }
        summarize(spec, acc.n, acc.sum, acc.sum_sq)
    }

    #[test]
    fn the_t_quantile_matches_published_tables() {
        // Student's t table, two-sided 95%: df 1 → 12.706, df 10 → 2.228, df 30 → 2.042.
        assert!((t975(1.0) - 12.7062).abs() < 1e-3);
        assert!((t975(10.0) - 2.2281).abs() < 1e-3);
        assert!((t975(30.0) - 2.0423).abs() < 1e-3);
    }

    #[test]
    fn mean_stderr_and_interval_follow_the_contract() {
        let s = spec(0.0, 10.0);
        let m = summary_of(&s, &[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m.n, 8);
        assert!((m.mean.unwrap() - 5.0).abs() < 1e-12);
        // sample sd with n-1: sqrt(32/7)
        let se = (32.0f64 / 7.0).sqrt() / 8f64.sqrt();
        assert!((m.stderr.unwrap() - se).abs() < 1e-12);
        let half = t975(7.0) * se;
        let [lo, hi] = m.ci95.unwrap();
        assert!((lo - (5.0 - half)).abs() < 1e-9 && (hi - (5.0 + half)).abs() < 1e-9);
    }

    #[test]
    fn the_interval_is_clipped_to_the_declared_range() {
        let s = spec(0.0, 1.0);
        let m = summary_of(&s, &[1.0, 1.0, 0.0]);
        let [lo, hi] = m.ci95.unwrap();
        assert_eq!((lo, hi), (0.0, 1.0));
    }

    #[test]
    fn small_n_leaves_figures_null() {
        let s = spec(-1.0, 1.0);
        assert_eq!(
            summary_of(&s, &[]),
            MetricSummary {
                n: 0,
                mean: None,
                stderr: None,
                ci95: None
            }
        );
        let one = summary_of(&s, &[0.5]);
        assert_eq!(
            (one.n, one.mean, one.stderr, one.ci95),
            (1, Some(0.5), None, None)
        );
    }

    #[test]
    fn values_are_clipped_before_they_count() {
        let s = spec(0.0, 1.0);
        let m = summary_of(&s, &[5.0, -3.0]);
        assert_eq!(m.mean, Some(0.5));
    }

    #[test]
    fn rounding_is_half_to_even() {
        assert_eq!(round_to(0.125, 2), 0.12);
        assert_eq!(round_to(0.375, 2), 0.38);
        assert_eq!(round_to(2.5, 0), 2.0);
        assert_eq!(round_to(0.123456, 4), 0.1235);
    }
}
