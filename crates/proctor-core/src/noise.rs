//! Noise for the differentially private release: exact discrete Laplace noise on the release
//! grid.
//!
//! Floating-point Laplace sampling leaks: the set of doubles a sampler can return, and how
//! often, depends on the value it is added to, so the low bits of a release can tell two
//! neighbouring inputs apart (Mironov, "On significance of the least significant bits for
//! differential privacy", CCS 2012). Here every noised quantity is an integer number of grid
//! steps (1 for counts, `10^-decimals` of the range for sums), the noise scale is an exact
//! rational number of steps ([`Scale`], made from the epsilon's exact binary value), and the
//! noise is drawn exactly, in integer arithmetic, from `P(X = k) ∝ exp(-|k| / t)`: Canonne,
//! Kamath and Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020,
//! arXiv:2004.00010), Algorithm 1 (Bernoulli(exp(-γ)) for rational γ) and Algorithm 2 (discrete
//! Laplace with rational scale), as OpenDP implements them (`sample_bernoulli_exp`,
//! `sample_geometric_exp_fast` and `sample_discrete_laplace` in
//! `rust/src/traits/samplers/cks20`). No float is used on the sampling path and nothing
//! saturates: all arithmetic is in u128, checked, and a draw whose magnitude would not fit an
//! i128 is redrawn, which truncates the distribution at `|k| > i128::MAX` and needs a geometric
//! draw of at least 2^86, probability below `exp(-2^86)`, at any scale [`Scale::new`] accepts.
//!
//! The caller supplies uniform 64-bit words (the host uses a CSPRNG; tests a fixed seed), so
//! this module does no I/O. The variance and 95% quantile helpers are f64: they describe the
//! noise for the report and are post-processing, not part of the draw.

/// A source of uniform 64-bit words.
pub type Uniform<'a> = &'a mut dyn FnMut() -> u64;

/// The largest noise scale, in grid steps, that [`Scale::new`] accepts, so that the draw and
/// the figures derived from it stay far from overflow; a job needing more is refused before
/// it runs.
pub const MAX_SCALE_STEPS: u64 = 1 << 40;

/// A noise scale as an exact positive rational number of grid steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    // In lowest terms and both at least 1, so equal scales compare equal.
    num: u128,
    den: u128,
}

/// Why a noise scale was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ScaleError {
    /// The scale is above [`MAX_SCALE_STEPS`].
    #[error(
        "the noise scale would be {steps:e} grid steps, above the largest supported, 2^40: \
         raise epsilon or lower the sensitivity"
    )]
    TooLarge {
        /// The refused scale in grid steps, approximately (infinite when it overflows f64).
        steps: f64,
    },
    /// Epsilon is not finite and above zero, the sensitivity is zero, or the exact scale does
    /// not fit 128-bit integers (which only happens below one grid step).
    #[error(
        "the noise scale must be a positive number of grid steps: epsilon finite and above \
         zero, sensitivity above zero, and the scale's exact value within 128-bit integers"
    )]
    Invalid,
}

impl Scale {
    /// `sensitivity_steps / epsilon` grid steps, exactly: epsilon (a finite f64 above zero) is
    /// taken as the exact dyadic rational it stores (`mantissa · 2^exponent`). Refused with
    /// [`ScaleError::TooLarge`] above [`MAX_SCALE_STEPS`], and with [`ScaleError::Invalid`]
    /// for an epsilon that is not finite and positive, a zero sensitivity, or a rational that
    /// does not fit u128.
    pub fn new(sensitivity_steps: u128, epsilon: f64) -> Result<Scale, ScaleError> {
        if !(epsilon.is_finite() && epsilon > 0.0) || sensitivity_steps == 0 {
            return Err(ScaleError::Invalid);
        }
        let too_large = ScaleError::TooLarge {
            steps: sensitivity_steps as f64 / epsilon,
        };
        let (mantissa, exponent) = dyadic(epsilon);
        // Cancel the common factors before building the rational, so that every scale whose
        // lowest terms fit u128 is representable.
        let g = gcd(sensitivity_steps, u128::from(mantissa));
        let (mut sensitivity, mantissa) = (sensitivity_steps / g, u128::from(mantissa) / g);
        let (num, den) = if exponent >= 0 {
            // sensitivity / (mantissa · 2^exponent); the mantissa is odd, so only the
            // sensitivity's factors of two can cancel the power.
            let mut exponent = exponent.unsigned_abs();
            let shift = sensitivity.trailing_zeros().min(exponent);
            sensitivity >>= shift;
            exponent -= shift;
            if exponent > mantissa.leading_zeros() {
                // The denominator passes 2^128 while the numerator cannot: a scale below one
                // step that u128 cannot hold.
                return Err(ScaleError::Invalid);
            }
            (sensitivity, mantissa << exponent)
        } else {
            // sensitivity · 2^-exponent / mantissa, with an odd mantissa below 2^53: a
            // numerator past 2^128 means a scale above 2^75 steps.
            let exponent = exponent.unsigned_abs();
            if exponent > sensitivity.leading_zeros() {
                return Err(too_large);
            }
            (sensitivity << exponent, mantissa)
        };
        // num / den > 2^40 ⇔ num > 2^40 · den; if the product overflows, num cannot exceed it.
        if den
            .checked_mul(u128::from(MAX_SCALE_STEPS))
            .is_some_and(|bound| num > bound)
        {
            return Err(too_large);
        }
        Ok(Scale::ratio(num, den))
    }

    /// `num / den` in lowest terms; both must be at least 1.
    fn ratio(num: u128, den: u128) -> Scale {
        let g = gcd(num, den);
        Scale {
            num: num / g,
            den: den / g,
        }
    }

    /// The scale as f64 (for reporting and for variance and quantile figures).
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// A finite positive f64 as `(mantissa, exponent)` with an odd mantissa and
/// `value = mantissa · 2^exponent` exactly.
fn dyadic(value: f64) -> (u64, i32) {
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exponent) = if biased == 0 {
        // Subnormal: no implicit leading bit.
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let zeros = mantissa.trailing_zeros();
    (mantissa >> zeros, exponent + zeros as i32)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A uniform draw from `[0, n)`, `n ≥ 1`, by rejection: draw as many bits as `n - 1` has and
/// retry above it, so there is no modulo bias; each try succeeds with probability above 1/2.
fn uniform_below(n: u128, next: Uniform<'_>) -> u128 {
    if n <= 1 {
        return 0;
    }
    let bits = 128 - (n - 1).leading_zeros();
    let mask = u128::MAX >> (128 - bits);
    loop {
        let word = if bits <= 64 {
            u128::from(next())
        } else {
            (u128::from(next()) << 64) | u128::from(next())
        };
        let x = word & mask;
        if x < n {
            return x;
        }
    }
}

/// Bernoulli(`p / q`) for `p ≤ q`, `q ≥ 1`.
fn bernoulli_ratio(p: u128, q: u128, next: Uniform<'_>) -> bool {
    uniform_below(q, next) < p
}

/// Bernoulli(exp(-γ)) for `γ = p / q ∈ [0, 1]`: CKS20 Algorithm 1's inner loop (OpenDP's
/// `sample_bernoulli_exp1`). Draws `A_k ~ Bernoulli(γ / k)` for k = 1, 2, … until one fails
/// and returns whether that k is odd: `P(k odd) = Σ (-γ)^j / j! = exp(-γ)`.
fn bernoulli_exp1(p: u128, q: u128, next: Uniform<'_>) -> bool {
    let mut k: u128 = 1;
    loop {
        // Bernoulli(γ / k) as Bernoulli(γ) and Bernoulli(1 / k) together: the product of
        // their probabilities, without forming q · k, which may not fit.
        if !(bernoulli_ratio(p, q, next) && bernoulli_ratio(1, k, next)) {
            return k % 2 == 1;
        }
        match k.checked_add(1) {
            Some(k1) => k = k1,
            // Reaching 2^128 has probability 1/(2^128)!; start the trial over rather than
            // wrap, which would flip the parity.
            None => k = 1,
        }
    }
}

/// Bernoulli(exp(-γ)) for rational `γ = p / q ≥ 0`, `q ≥ 1`: CKS20 Algorithm 1 (OpenDP's
/// `sample_bernoulli_exp`): `floor(γ)` Bernoulli(exp(-1)) draws, then one of the
/// fractional part, since `exp(-γ) = exp(-1)^floor(γ) · exp(-(γ - floor(γ)))`.
fn bernoulli_exp(p: u128, q: u128, next: Uniform<'_>) -> bool {
    for _ in 0..p / q {
        if !bernoulli_exp1(1, 1, next) {
            return false;
        }
    }
    bernoulli_exp1(p % q, q, next)
}

/// `floor((b·v + r) / d)` for `b, r < d`, without forming `b·v`, which may not fit u128:
/// Horner over the bits of `v`, keeping the value as `quotient · d + remainder` with the
/// remainder below `d`. The quotient never exceeds `v` (as `b·v + r < d·(v + 1)`), so the
/// checks cannot fail; they are there so that nothing can wrap.
fn mul_add_div_wide(b: u128, v: u128, r: u128, d: u128) -> Option<u128> {
    // (quotient, remainder) + y for y < d: one subtraction of d normalizes, and a carry out
    // of u128 means the true sum is at least d.
    let add = |(quotient, remainder): (u128, u128), y: u128| -> Option<(u128, u128)> {
        let (sum, carry) = remainder.overflowing_add(y);
        if carry || sum >= d {
            Some((quotient.checked_add(1)?, sum.wrapping_sub(d)))
        } else {
            Some((quotient, sum))
        }
    };
    let mut acc = (0u128, 0u128);
    for bit in (0..128 - v.leading_zeros()).rev() {
        acc = add((acc.0.checked_mul(2)?, acc.1), acc.1)?;
        if (v >> bit) & 1 == 1 {
            acc = add(acc, b)?;
        }
    }
    Some(add(acc, r)?.0)
}

/// The magnitude step of CKS20 Algorithm 2 (OpenDP's `sample_geometric_exp_fast` at
/// `den / num`): `floor(X / den)` for `X = U + num·V`, U uniform in `[0, num)` kept with
/// probability `exp(-U / num)`, V geometric with `P(V ≥ v) = exp(-v)`. X is then geometric
/// with `P(X = x) ∝ exp(-x / num)`, and `floor(X / den)` with `P(Y = y) ∝ exp(-y · den / num)`.
/// `None` when a value would not fit, which needs V ≥ 2^86 (see the module doc).
fn geometric_magnitude(scale: Scale, next: Uniform<'_>) -> Option<i128> {
    let Scale { num, den } = scale;
    let u = loop {
        let u = uniform_below(num, next);
        if bernoulli_exp(u, num, next) {
            break u;
        }
    };
    let mut v: u128 = 0;
    while bernoulli_exp1(1, 1, next) {
        v = v.checked_add(1)?;
    }
    // X / den without forming num·V: with num = a·den + b and U = c·den + r (b, r < den),
    // X = (a·V + c)·den + (b·V + r).
    let (a, b) = (num / den, num % den);
    let (c, r) = (u / den, u % den);
    let tail = match b.checked_mul(v).and_then(|bv| bv.checked_add(r)) {
        Some(x) => x / den,
        None => mul_add_div_wide(b, v, r, den)?,
    };
    let y = a.checked_mul(v)?.checked_add(c)?.checked_add(tail)?;
    i128::try_from(y).ok()
}

/// Discrete Laplace noise, `P(X = k) ∝ exp(-|k| / t)` with t = `scale` in steps: CKS20
/// Algorithm 2 (OpenDP's `sample_discrete_laplace`). A fair sign and a geometric magnitude,
/// with "minus zero" rejected so that zero is not counted twice.
pub fn discrete_laplace(scale: Scale, next: Uniform<'_>) -> i128 {
    loop {
        let negative = next() & 1 == 1;
        let Some(magnitude) = geometric_magnitude(scale, next) else {
            continue;
        };
        if !negative {
            return magnitude;
        }
        if magnitude != 0 {
            return -magnitude;
        }
    }
}

/// Variance of the discrete Laplace at scale `t` steps: `2q / (1 - q)²` with `q = exp(-1/t)`,
/// with `1 - q` as `-expm1(-1/t)` so that it keeps its digits at large t (t = 10^12 gives 2t²);
/// zero for `t ≤ 0`.
pub fn discrete_laplace_variance(t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let one_minus_q = -(-1.0 / t).exp_m1();
    2.0 * (-1.0 / t).exp() / (one_minus_q * one_minus_q)
}

/// The smallest integer `c ≥ 0` with `P(|X| ≤ c) ≥ 0.95` for the discrete Laplace at scale
/// `t` steps (the half-width of the 95% interval of the noise); zero for `t ≤ 0`.
///
/// `P(|X| > c) = 2q^(c+1) / (1 + q)`, so `c + 1 ≥ t · ln(40 / (1 + q))`, and
/// `ln(40 / (1 + q)) = ln 20 - ln1p(-(1 - q) / 2)` keeps its digits at large t, where
/// `c ≈ t · ln 20 + 1/2`.
pub fn discrete_laplace_quantile95(t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    if t.is_infinite() {
        return f64::INFINITY;
    }
    let one_minus_q = -(-1.0 / t).exp_m1();
    let tail = |c: f64| 2.0 * (-(c + 1.0) / t).exp() / (2.0 - one_minus_q);
    let bound = t * (20f64.ln() - (-0.5 * one_minus_q).ln_1p());
    let mut c = (bound.ceil() - 1.0).max(0.0);
    // Rounding can put the ceiling one off when the bound is close to an integer: settle it
    // against the tail itself (a step or two at most; bounded, since at huge t `c ± 1 == c`).
    for _ in 0..2 {
        if c > 0.0 && tail(c - 1.0) <= 0.05 {
            c -= 1.0;
        } else if tail(c) > 0.05 {
            c += 1.0;
        }
    }
    c
}

/// A count with noise added, clamped to `[0, cap]` (the cap is public, so clamping is
/// post-processing).
pub fn noised_count(count: u64, scale: Scale, cap: u64, next: Uniform<'_>) -> u64 {
    let noised = noised_steps(u128::from(count), scale, u128::from(cap), next);
    // At most `cap`, so it fits.
    u64::try_from(noised).unwrap_or(cap)
}

/// An integer number of grid steps with noise added, clamped to `[0, cap]`.
pub fn noised_steps(steps: u128, scale: Scale, cap: u128, next: Uniform<'_>) -> u128 {
    let noise = discrete_laplace(scale, next);
    // Saturating is exact here: anything past either end of u128 is past the clamp too.
    let noised = if noise >= 0 {
        steps.saturating_add(noise.unsigned_abs())
    } else {
        steps.saturating_sub(noise.unsigned_abs())
    };
    noised.min(cap)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    use std::time::Instant;

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

    /// `P(X ≤ k)` at scale `t` (the reference, in f64; not the sampler).
    fn cdf(t: f64, k: i128) -> f64 {
        1.0 - upper(t, k)
    }

    /// `P(X > k)` at scale `t`, directly, so the upper tail keeps its relative precision.
    fn upper(t: f64, k: i128) -> f64 {
        let q = (-1.0 / t).exp();
        if k < 0 {
            1.0 - (k as f64 / t).exp() / (1.0 + q)
        } else {
            (-(k as f64 + 1.0) / t).exp() / (1.0 + q)
        }
    }

    /// `P(X = k)` at scale `t`: `(1 - q) / (1 + q) · q^|k|`.
    fn pmf(t: f64, k: i128) -> f64 {
        let q = (-1.0 / t).exp();
        (1.0 - q) / (1.0 + q) * q.powf(k.unsigned_abs() as f64)
    }

    /// Bin upper bounds for a χ² test of `n` draws at scale `t`: the bins are `(-∞, b_0]`,
    /// `(b_0, b_1]`, …, `(b_last, ∞)`. At small scales one bin per integer, with the tails
    /// pooled where a single integer would expect fewer than 5 draws; at large scales, where
    /// single values are sparse, 40 bins of about equal probability by the exact CDF.
    fn bins(t: f64, n: usize) -> Vec<i128> {
        let n = n as f64;
        if t < 1000.0 {
            let mut k: i128 = 0;
            while n * pmf(t, k + 1) >= 5.0 && n * upper(t, k + 1) >= 5.0 {
                k += 1;
            }
            (-k - 1..=k).collect()
        } else {
            let q = (-1.0 / t).exp();
            let mut bounds: Vec<i128> = (1..40)
                .map(|j| {
                    // The smallest k with cdf(k) ≥ p, from the closed form; the test's
                    // expected counts come from the CDF at whatever bounds this gives.
                    let p = f64::from(j) / 40.0;
                    if p <= q / (1.0 + q) {
                        (t * (p * (1.0 + q)).ln()).ceil() as i128
                    } else {
                        ((-t * ((1.0 - p) * (1.0 + q)).ln()).ceil() as i128 - 1).max(0)
                    }
                })
                .collect();
            bounds.dedup();
            bounds
        }
    }

    /// The χ² statistic of `draws` against the discrete Laplace at `t` over `bounds`, with its
    /// critical value at α = 0.001 for `bins - 1` degrees of freedom.
    fn chi_square(draws: &[i128], t: f64, bounds: &[i128]) -> (f64, f64, usize) {
        let n = draws.len() as f64;
        let mut observed = vec![0u64; bounds.len() + 1];
        for &x in draws {
            observed[bounds.partition_point(|&b| b < x)] += 1;
        }
        let mut expected = Vec::with_capacity(observed.len());
        expected.push(cdf(t, bounds[0]));
        for pair in bounds.windows(2) {
            expected.push(if pair[0] >= 0 {
                upper(t, pair[0]) - upper(t, pair[1])
            } else {
                cdf(t, pair[1]) - cdf(t, pair[0])
            });
        }
        expected.push(upper(t, bounds[bounds.len() - 1]));
        let mut statistic = 0.0;
        for (&o, &p) in observed.iter().zip(&expected) {
            let e = n * p;
            assert!(e >= 5.0, "t = {t}: a bin expects {e} draws");
            statistic += (o as f64 - e).powi(2) / e;
        }
        let df = observed.len() - 1;
        let critical = ChiSquared::new(df as f64)
            .expect("df > 0")
            .inverse_cdf(0.999);
        (statistic, critical, df)
    }

    fn draws(scale: Scale, n: usize, seed: u64) -> Vec<i128> {
        let mut next = seeded(seed);
        (0..n).map(|_| discrete_laplace(scale, &mut next)).collect()
    }

    const N: usize = 200_000;

    #[test]
    fn the_empirical_distribution_passes_a_chi_square_test_against_the_exact_pmf() {
        let started = Instant::now();
        let scales = [
            Scale::ratio(7, 10),
            Scale::ratio(3, 1),
            Scale::ratio(25, 1),
            Scale::ratio(1_000_000_000_000, 1),
            // A realistic split epsilon: a 53-bit odd denominator and a ~2^77 numerator.
            Scale::new(1_000_003, 0.1 / 3.0).expect("accepted"),
            // A rational that fills u128: (2^128 - 1) / (2^127 + 1) ≈ 2, where b·V overflows
            // for V ≥ 7 and the wide path runs.
            Scale::ratio(u128::MAX, (1 << 127) + 1),
        ];
        for (i, scale) in scales.into_iter().enumerate() {
            let t = scale.as_f64();
            let draws = draws(scale, N, 42 + i as u64);
            let (statistic, critical, df) = chi_square(&draws, t, &bins(t, N));
            eprintln!("t = {t}: χ² = {statistic:.1}, df = {df}, critical {critical:.1}");
            assert!(
                statistic < critical,
                "t = {t}: χ² = {statistic} with {df} df, critical {critical}"
            );
        }
        eprintln!("χ² test: {:?}", started.elapsed());
    }

    #[test]
    fn the_chi_square_test_fails_for_a_wrong_scale() {
        // 5% off, with both kinds of bins.
        for (drawn, tested) in [
            (Scale::ratio(63, 20), 3.0),
            (Scale::ratio(1_050_000_000_000, 1), 1e12),
        ] {
            let draws = draws(drawn, N, 42);
            let (statistic, critical, df) = chi_square(&draws, tested, &bins(tested, N));
            let t = drawn.as_f64();
            eprintln!(
                "{t} against {tested}: χ² = {statistic:.1}, df = {df}, critical {critical:.1}"
            );
            assert!(
                statistic > critical,
                "the test must be able to fail: χ² = {statistic}, critical {critical}"
            );
        }
    }

    #[test]
    fn no_draw_saturates_up_to_the_largest_accepted_scale() {
        let max = u128::from(MAX_SCALE_STEPS);
        let scales = [
            Scale::new(1, 1.0 / max as f64).expect("exactly 2^40 is accepted"),
            Scale::new(max, 1.0).expect("accepted"),
            // The decimals = 12 sum sensitivity at the smallest epsilon it allows.
            Scale::new(1_000_000_000_000, 0.91).expect("accepted"),
            // A huge sensitivity with a matching huge epsilon: num and den near 2^127.
            Scale::new(3u128.pow(80), 3f64.powi(80) / 1e12).expect("accepted"),
            // The smallest sensitivity with an epsilon near the smallest it allows.
            Scale::new(1, 2f64.powi(-40) * 1.5).expect("accepted"),
        ];
        for (i, scale) in scales.into_iter().enumerate() {
            let t = scale.as_f64();
            assert!(t <= max as f64);
            let draws = draws(scale, 10_000, 7 + i as u64);
            assert!(draws.iter().any(|&x| x != draws[0]), "t = {t}: all equal");
            let n = draws.len() as f64;
            let mean = draws.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = draws
                .iter()
                .map(|&x| (x as f64 - mean).powi(2))
                .sum::<f64>()
                / n;
            assert!(mean.is_finite() && var.is_finite());
            // The mean's sd is √2·t/100; the variance's relative sd about √(5/n) ≈ 0.022.
            assert!((mean / t).abs() < 0.1, "t = {t}: mean {mean}");
            assert!(
                (var / (2.0 * t * t) - 1.0).abs() < 0.15,
                "t = {t}: variance {var}"
            );
        }
    }

    #[test]
    fn scale_new_refuses_a_scale_above_the_bound_and_an_invalid_epsilon() {
        let max = MAX_SCALE_STEPS as f64;
        assert!(matches!(
            Scale::new(1, 1e-300),
            Err(ScaleError::TooLarge { .. })
        ));
        assert!(matches!(
            Scale::new(1, (1.0 / max).next_down()),
            Err(ScaleError::TooLarge { .. })
        ));
        assert!(matches!(
            Scale::new(u128::MAX, 1e-300),
            Err(ScaleError::TooLarge { .. })
        ));
        assert!(matches!(
            Scale::new(1_000_000_000_000, 0.9),
            Err(ScaleError::TooLarge { .. })
        ));
        assert!(matches!(
            Scale::new(1, f64::from_bits(1)),
            Err(ScaleError::TooLarge { steps }) if steps.is_infinite()
        ));
        for epsilon in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, -1.0] {
            assert_eq!(
                Scale::new(1, epsilon),
                Err(ScaleError::Invalid),
                "{epsilon}"
            );
        }
        assert_eq!(Scale::new(0, 1.0), Err(ScaleError::Invalid));
        // 1 / 1e300 is far below one step and its denominator does not fit u128.
        assert_eq!(Scale::new(1, 1e300), Err(ScaleError::Invalid));
        // … but a large power of two cancels against the sensitivity.
        assert_eq!(Scale::new(1 << 100, 2f64.powi(100)), Ok(Scale::ratio(1, 1)));
    }

    #[test]
    fn scale_new_is_exact() {
        assert_eq!(Scale::new(7, 0.5), Ok(Scale::ratio(14, 1)));
        assert_eq!(Scale::new(1, 0.375), Ok(Scale::ratio(8, 3)));
        assert_eq!(Scale::new(6, 0.375), Ok(Scale::ratio(16, 1)));
        assert_eq!(Scale::new(1, 2f64.powi(-40)), Ok(Scale::ratio(1 << 40, 1)));
        assert_eq!(Scale::new(1, 3.0), Ok(Scale::ratio(1, 3)));
        // 0.1 is stored as 3602879701896397 / 2^55.
        assert_eq!(
            Scale::new(1, 0.1),
            Ok(Scale::ratio(1 << 55, 3_602_879_701_896_397))
        );
        assert!((Scale::new(1, 0.1).expect("accepted").as_f64() - 10.0).abs() < 1e-12);
        assert_eq!(Scale::new(1, 1.0), Scale::new(2, 2.0));
    }

    #[test]
    fn noised_counts_and_steps_stay_within_zero_and_the_cap() {
        let mut next = seeded(11);
        let scale = Scale::ratio(5, 1);
        let (mut at_zero, mut at_cap) = (0, 0);
        for _ in 0..10_000 {
            let count = noised_count(2, scale, 10, &mut next);
            assert!(count <= 10);
            at_zero += usize::from(count == 0);
            at_cap += usize::from(count == 10);
            let cap = u128::MAX - 1;
            assert!(noised_steps(u128::MAX - 3, scale, cap, &mut next) <= cap);
        }
        assert!(at_zero > 0 && at_cap > 0, "{at_zero} {at_cap}");
        assert_eq!(
            noised_count(u64::MAX, Scale::ratio(1, 1_000_000), u64::MAX, &mut next),
            u64::MAX
        );
        let huge = Scale::ratio(u128::from(MAX_SCALE_STEPS), 1);
        for _ in 0..1000 {
            assert!(noised_steps(0, huge, 1000, &mut next) <= 1000);
        }
    }

    #[test]
    fn the_variance_and_quantile_match_a_brute_force_sum_and_stay_stable_at_large_scales() {
        for t in [0.7, 3.0, 25.0] {
            let var: f64 = (-2000..=2000).map(|k| (k * k) as f64 * pmf(t, k)).sum();
            let helper = discrete_laplace_variance(t);
            assert!(
                (helper / var - 1.0).abs() < 1e-12,
                "t = {t}: {helper} vs {var}"
            );
            let mut c = 0;
            let mut mass = pmf(t, 0);
            while mass < 0.95 {
                c += 1;
                mass += 2.0 * pmf(t, c);
            }
            assert_eq!(discrete_laplace_quantile95(t), c as f64, "t = {t}");
        }
        // At t = 3: P(|X| > 8) = 2e^-3 / (1 + e^-1/3) ≈ 0.058 and P(|X| > 9) ≈ 0.042.
        assert_eq!(discrete_laplace_quantile95(3.0), 9.0);
        let t = 1e12;
        let var = discrete_laplace_variance(t);
        assert!((var / (2.0 * t * t) - 1.0).abs() < 1e-12, "{var}");
        // c is the ceiling of t·ln 20 + 1/2 - O(1/t), less one.
        let c = discrete_laplace_quantile95(t);
        assert!(
            (c - (t * 20f64.ln() + 0.5).ceil() + 1.0).abs() <= 1.0,
            "{c}"
        );
        assert!((c / (t * 20f64.ln()) - 1.0).abs() < 1e-12, "{c}");
        let max = MAX_SCALE_STEPS as f64;
        assert!(discrete_laplace_quantile95(max) > max * 2.99);
        assert_eq!(discrete_laplace_variance(0.0), 0.0);
        assert_eq!(discrete_laplace_quantile95(0.0), 0.0);
    }

    #[test]
    fn bernoulli_exp_has_probability_exp_minus_gamma() {
        let mut next = seeded(3);
        let n = 100_000;
        for (p, q) in [
            (0, 1),
            (1, 4),
            (1, 1),
            (5, 2),
            (7, 3),
            (u128::MAX - 1, u128::MAX),
        ] {
            let hits = (0..n).filter(|_| bernoulli_exp(p, q, &mut next)).count();
            let expected = (-(p as f64 / q as f64)).exp();
            let sd = (expected * (1.0 - expected) / n as f64).sqrt();
            let observed = hits as f64 / n as f64;
            assert!(
                (observed - expected).abs() <= 5.0 * sd,
                "γ = {p}/{q}: {observed} vs {expected}"
            );
        }
    }

    #[test]
    fn uniform_below_stays_below_and_is_unbiased() {
        let mut next = seeded(5);
        let mut counts = [0u64; 3];
        for _ in 0..30_000 {
            counts[uniform_below(3, &mut next) as usize] += 1;
        }
        // χ² with 2 df; the α = 0.001 critical value is 13.82.
        let statistic: f64 = counts
            .iter()
            .map(|&c| (c as f64 - 10_000.0).powi(2) / 10_000.0)
            .sum();
        assert!(statistic < 13.82, "{counts:?}");
        for n in [1, 2, (1 << 64) + 1, (1 << 127) + 1, u128::MAX] {
            let draws: Vec<u128> = (0..10_000).map(|_| uniform_below(n, &mut next)).collect();
            assert!(draws.iter().all(|&x| x < n));
            if n > 2 {
                let mean = draws.iter().map(|&x| x as f64 / n as f64).sum::<f64>() / 1e4;
                assert!((mean - 0.5).abs() < 0.02, "{n}: {mean}");
            }
        }
    }

    #[test]
    fn the_wide_multiply_and_divide_is_exact() {
        let mut next = seeded(9);
        for _ in 0..10_000 {
            let d = u128::from(next()).max(1);
            let (b, r) = (u128::from(next()) % d, u128::from(next()) % d);
            let v = u128::from(next());
            assert_eq!(mul_add_div_wide(b, v, r, d), Some((b * v + r) / d));
        }
        let d = u128::MAX;
        // (d - 1)·3 + d - 1 = 4d - 4, and (d - 1)·d + d - 1 = d² - 1.
        assert_eq!(mul_add_div_wide(d - 1, 3, d - 1, d), Some(3));
        assert_eq!(mul_add_div_wide(d - 1, d, d - 1, d), Some(d - 1));
        // 2^128 / (2^127 + 1) = 1.
        assert_eq!(mul_add_div_wide(1 << 127, 2, 0, (1 << 127) + 1), Some(1));
        assert_eq!(mul_add_div_wide(5, 0, 3, 7), Some(0));
    }
}
