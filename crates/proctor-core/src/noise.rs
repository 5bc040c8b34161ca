//! Noise for the differentially private release: the discrete Laplace distribution, drawn on
//! the release grid.
//!
//! Naive floating-point Laplace sampling leaks through the low bits of its output (Mironov,
//! "On significance of the least significant bits for differential privacy", CCS 2012). Here
//! every noised quantity is an integer number of grid steps (1 for counts, `10^-decimals` for
//! sums), and the noise is an integer too: the difference of two geometric variables, which is
//! discrete Laplace with `P(X = k) ∝ exp(-|k| / t)` (t = scale / step). The caller supplies the
//! uniform 64-bit words (the host uses a CSPRNG; tests a fixed seed), so this module does no
//! I/O.

/// A source of uniform 64-bit words.
pub type Uniform<'a> = &'a mut dyn FnMut() -> u64;

/// A uniform draw in (0, 1], from 53 random bits.
fn unit(next: Uniform<'_>) -> f64 {
    ((next() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// A geometric draw with `P(G ≥ k) = exp(-k / t)`, by inversion.
fn geometric(t: f64, next: Uniform<'_>) -> i64 {
    let g = (-t * unit(next).ln()).floor();
    // `as` saturates; a draw that large has probability below 2^-53 at any sane scale.
    g as i64
}

/// Discrete Laplace noise with `P(X = k) ∝ exp(-|k| / t)`; zero when `t` is zero.
pub fn discrete_laplace(t: f64, next: Uniform<'_>) -> i64 {
    if t <= 0.0 {
        return 0;
    }
    geometric(t, next).saturating_sub(geometric(t, next))
}

/// The variance of [`discrete_laplace`] at `t`: `2q / (1 - q)²` with `q = exp(-1/t)`.
pub fn discrete_laplace_variance(t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let q = (-1.0 / t).exp();
    2.0 * q / ((1.0 - q) * (1.0 - q))
}

/// A count with Laplace noise of `scale` added, as a non-negative integer.
pub fn noised_count(count: u64, scale: f64, next: Uniform<'_>) -> u64 {
    let noised = i128::from(count) + i128::from(discrete_laplace(scale, next));
    u64::try_from(noised.max(0)).unwrap_or(u64::MAX)
}

/// `value` rounded to the grid of `10^-decimals` with Laplace noise of `scale` added on that
/// grid.
pub fn noised_on_grid(value: f64, scale: f64, decimals: u32, next: Uniform<'_>) -> f64 {
    let steps_per_unit = 10f64.powi(decimals as i32);
    let steps =
        (value * steps_per_unit).round() + discrete_laplace(scale * steps_per_unit, next) as f64;
    steps / steps_per_unit
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SplitMix64: a fixed-seed source for reproducible statistical tests.
    pub(crate) fn seeded(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// P(X ≤ k) of the discrete Laplace at `t`.
    fn cdf(t: f64, k: i64) -> f64 {
        let q = (-1.0 / t).exp();
        if k < 0 {
            q.powi((-k) as i32) / (1.0 + q)
        } else {
            1.0 - q.powi((k + 1) as i32) / (1.0 + q)
        }
    }

    #[test]
    fn the_empirical_distribution_matches_discrete_laplace() {
        // Kolmogorov–Smirnov distance over 200,000 draws with a fixed seed; at α = 0.001 the
        // critical value is 1.95/√n ≈ 0.0044. A sampler off in its scale by 5% fails it.
        let n = 200_000;
        for t in [0.7, 3.0, 25.0] {
            let mut next = seeded(42);
            let mut draws: Vec<i64> = (0..n).map(|_| discrete_laplace(t, &mut next)).collect();
            draws.sort_unstable();
            let (lo, hi) = (draws[0], draws[n - 1]);
            let mut worst: f64 = 0.0;
            let mut i = 0;
            for k in lo..=hi {
                while i < n && draws[i] <= k {
                    i += 1;
                }
                worst = worst.max((i as f64 / n as f64 - cdf(t, k)).abs());
            }
            assert!(worst < 0.0044, "t = {t}: KS distance {worst}");
            let mean = draws.iter().sum::<i64>() as f64 / n as f64;
            let var = draws
                .iter()
                .map(|&x| (x as f64 - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            let expected = discrete_laplace_variance(t);
            assert!(
                (var / expected - 1.0).abs() < 0.03,
                "t = {t}: variance {var} vs {expected}"
            );
            assert!(
                mean.abs() < 4.0 * (expected / n as f64).sqrt(),
                "t = {t}: mean {mean}"
            );
        }
    }

    #[test]
    fn a_wrong_scale_fails_the_same_test() {
        let n = 200_000;
        let mut next = seeded(42);
        let mut draws: Vec<i64> = (0..n).map(|_| discrete_laplace(3.15, &mut next)).collect();
        draws.sort_unstable();
        let mut worst: f64 = 0.0;
        let mut i = 0;
        for k in draws[0]..=draws[n - 1] {
            while i < n && draws[i] <= k {
                i += 1;
            }
            worst = worst.max((i as f64 / n as f64 - cdf(3.0, k)).abs());
        }
        assert!(worst > 0.0044, "the test must be able to fail: {worst}");
    }

    #[test]
    fn noise_lands_on_the_grid_and_counts_stay_non_negative() {
        let mut next = seeded(7);
        for _ in 0..1000 {
            let v = noised_on_grid(12.3456, 0.5, 2, &mut next);
            assert!(((v * 100.0).round() - v * 100.0).abs() < 1e-9, "{v}");
            assert!(noised_count(0, 5.0, &mut next) < 1_000);
        }
        assert_eq!(discrete_laplace(0.0, &mut next), 0);
    }
}
