//! Aggregation of per-sample scores: n, mean, standard error and a 95% t interval.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::metric::MetricSpec;

/// Running sums for one metric over the ok samples that reported it, on the release grid.
///
/// A value is normalized to `u = (x - min) / R` in `[0, 1]` (R = max - min, the guest's
/// choice) and rounded to the grid of `steps` points per unit (`10^decimals`), so a sample
/// adds an integer `k` in `[0, steps]` to the sum and `round(k² / steps)`, also in
/// `[0, steps]`, to the sum of squares. Whatever range the guest declares, one sample moves
/// each sum by at most `steps` grid points and the released figures take a number of values
/// that does not grow with R. Integer sums are exact at any number of samples, so no noise
/// or low bit is lost to floating-point rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accumulator {
    /// Grid points per unit of the normalized value: `10^decimals`.
    pub steps: u64,
    /// Samples that reported the metric.
    pub n: u64,
    /// Sum of each sample's `k`, in grid points.
    pub sum: u128,
    /// Sum of each sample's `round(k² / steps)`, in grid points.
    pub sum_sq: u128,
}

impl Accumulator {
    /// An empty accumulator for a release to `decimals` decimals of the range.
    pub fn new(decimals: u64) -> Accumulator {
        Accumulator {
            steps: grid_steps(decimals),
            n: 0,
            sum: 0,
            sum_sq: 0,
        }
    }

    /// Adds one value of a metric declared as `spec` (clipped to its range first).
    pub fn add(&mut self, spec: &MetricSpec, value: f64) {
        let k = spec.grid_point(value, self.steps);
        let k = u128::from(k);
        let steps = u128::from(self.steps);
        self.n += 1;
        self.sum += k;
        // Rounded half up; k² ≤ steps² < 2^80, far inside u128.
        self.sum_sq += (k * k + steps / 2) / steps;
    }

    /// Merges another accumulator of the same grid (sums commute).
    pub fn merge(&mut self, other: &Accumulator) {
        self.n += other.n;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }
}

/// `10^decimals`, the grid points per unit of a normalized value (decimals ≤ 12 by policy
/// validation; larger values saturate rather than overflow).
pub fn grid_steps(decimals: u64) -> u64 {
    10u64.saturating_pow(u32::try_from(decimals).unwrap_or(u32::MAX))
}

/// One metric's released figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

    #[test]
    fn the_t_quantile_matches_published_tables() {
        // Student's t table, two-sided 95%: df 1 → 12.706, df 10 → 2.228, df 30 → 2.042.
        assert!((t975(1.0) - 12.7062).abs() < 1e-3);
        assert!((t975(10.0) - 2.2281).abs() < 1e-3);
        assert!((t975(30.0) - 2.0423).abs() < 1e-3);
    }

    #[test]
    fn values_land_on_the_grid_relative_to_the_range() {
        let mut acc = Accumulator::new(2);
        let s = spec(10.0, 20.0);
        acc.add(&s, 15.0); // u = 0.5 → 50
        acc.add(&s, 12.345); // u = 0.2345 → 23 (ties to even do not arise here)
        acc.add(&s, 99.0); // clipped to 20 → 100
        acc.add(&s, -5.0); // clipped to 10 → 0
        assert_eq!((acc.n, acc.sum), (4, 173));
        // round(k²/100): 25 + 5 + 100 + 0.
        assert_eq!(acc.sum_sq, 130);
    }

    #[test]
    fn a_wide_range_cannot_carry_more_than_its_grid() {
        let s = spec(0.0, 1e150);
        let mut acc = Accumulator::new(2);
        for i in 0..50 {
            acc.add(&s, 2f64.powi(440 + i));
        }
        // Only values above half a grid step of R register at all: 2^(440+i) ≥ 5e147.
        assert!(acc.sum <= 50 * 100);
        let mut again = Accumulator::new(2);
        for i in 0..50 {
            // Flipping the low-order samples' values changes nothing that is released.
            again.add(&s, if i < 40 { 0.0 } else { 2f64.powi(440 + i) });
        }
        assert_eq!(acc, again);
    }
}
