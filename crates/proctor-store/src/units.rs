//! The ledgers' units: epsilon in millionths and bits in thousandths (milli-bits), as
//! integers, so a ledger of many small spends sums exactly; and the UTC day that daily budgets
//! count by.
//!
//! A spend is rounded up and a limit down, so a ledger never under-counts what left. A leaf:
//! it knows only the errors.

use crate::error::{Result, StoreError};

/// Milliseconds in a day: daily budgets count per UTC day of the database's clock.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Epsilon is counted in millionths.
const MICROS_PER_EPSILON: f64 = 1_000_000.0;

/// Bits are counted in thousandths.
const MILLIS_PER_BIT: f64 = 1_000.0;

pub(crate) fn micros_to_epsilon(micros: i64) -> f64 {
    // Exact for every ledger below 2^53 millionths, far beyond any meaningful epsilon.
    micros as f64 / MICROS_PER_EPSILON
}

pub(crate) fn millis_to_bits(millis: i64) -> f64 {
    // Exact below 2^53 milli-bits.
    millis as f64 / MILLIS_PER_BIT
}

/// A limit in units of `1 / per`, rounded down (the ledger never holds more than the vendor
/// granted). The small slack absorbs binary noise such as 0.3 * 1e6 = 299999.99999...
fn limit_units(value: f64, per: f64, what: &'static str) -> Result<i64> {
    let units = (value * per + 1e-3).floor();
    if !value.is_finite() || value < 0.0 || units >= i64::MAX as f64 {
        return Err(StoreError::Invalid(what));
    }
    // In range and integral, checked above.
    Ok(units as i64)
}

/// An epsilon total (grant or model cap) in millionths, rounded down.
pub(crate) fn epsilon_total_micros(epsilon: f64) -> Result<i64> {
    limit_units(epsilon, MICROS_PER_EPSILON, "epsilon budget")
}

/// A bits limit (per job, grant total, model cap) in milli-bits, rounded down.
pub(crate) fn bits_limit_millis(bits: f64) -> Result<i64> {
    limit_units(bits, MILLIS_PER_BIT, "bits budget")
}

/// A job's epsilon in millionths, rounded up (a job never spends less than it will use), at
/// least one.
pub(crate) fn epsilon_spend_micros(epsilon: f64) -> Result<i64> {
    let micros = (epsilon * MICROS_PER_EPSILON - 1e-3).ceil().max(1.0);
    if !epsilon.is_finite() || epsilon <= 0.0 || micros >= i64::MAX as f64 {
        return Err(StoreError::Invalid("epsilon"));
    }
    // In range and integral, checked above.
    Ok(micros as i64)
}

/// A job's leakage bound in milli-bits, rounded up with no slack: the bound is an upper bound,
/// and the ledger must not count less than it.
pub(crate) fn bits_spend_millis(bits: f64) -> Result<i64> {
    let millis = (bits * MILLIS_PER_BIT).ceil();
    if !bits.is_finite() || bits < 0.0 || millis >= i64::MAX as f64 {
        return Err(StoreError::Invalid("leakage bound (bits)"));
    }
    // In range and integral, checked above.
    Ok(millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_sums_exactly_in_millionths() {
        let total = epsilon_total_micros(1.0).ok();
        let spend = epsilon_spend_micros(0.1).ok();
        assert_eq!(total, Some(1_000_000));
        assert_eq!(spend, Some(100_000));
        assert_eq!(epsilon_total_micros(0.3).ok(), Some(300_000));
        assert_eq!(epsilon_spend_micros(0.3).ok(), Some(300_000));
        // Spends round up, totals down.
        assert_eq!(epsilon_spend_micros(1e-9).ok(), Some(1));
        assert_eq!(epsilon_total_micros(2.5e-7).ok(), Some(0));
        assert!(epsilon_spend_micros(f64::NAN).is_err());
        assert!(epsilon_spend_micros(0.0).is_err());
        assert!(epsilon_total_micros(-1.0).is_err());
        assert!(epsilon_total_micros(f64::INFINITY).is_err());
    }

    #[test]
    fn a_jobs_bits_round_up_and_a_bits_limit_rounds_down() {
        assert_eq!(bits_spend_millis(0.0).ok(), Some(0));
        assert_eq!(bits_spend_millis(12.0).ok(), Some(12_000));
        // Never under-counted, however little over a milli-bit it is.
        assert_eq!(bits_spend_millis(12.000_000_1).ok(), Some(12_001));
        assert_eq!(bits_spend_millis(1e-9).ok(), Some(1));
        assert_eq!(bits_limit_millis(12.000_9).ok(), Some(12_000));
        assert_eq!(bits_limit_millis(0.3).ok(), Some(300));
        assert!(bits_spend_millis(f64::NAN).is_err());
        assert!(bits_spend_millis(-1.0).is_err());
        assert!(bits_spend_millis(f64::INFINITY).is_err());
        assert!(bits_limit_millis(-0.5).is_err());
    }
}
