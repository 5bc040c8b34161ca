//! The leakage bound: an upper bound, in bits, on what a job's evaluator-visible outputs can
//! carry about the model's outputs, computed before the job runs.
//!
//! Every field an evaluator can read of a job is a channel out of the sandbox. A field that can
//! take `N` distinct values carries at most `log2 N` bits, whatever the guest does, so the sum
//! over every visible field whose value may depend on model outputs bounds the whole job. Each
//! count here follows from the policy, the eval's declaration and the number of samples, all
//! fixed before any model output exists, so the bound is pre-registered with the job.
//!
//! The channels and what each can take (`T` samples, `d` decimals, `q` queries per sample):
//! - `samples`: twelve outcome counts. Exact, they sum to `T`: `C(T + 11, 11)` values. Noised,
//!   each is clamped to `[0, T]` on its own: `(T + 1)^12`.
//! - `metrics.<name>`: `n` in `[0, T]`, and mean, standard error and both interval ends, each on
//!   the range-relative grid of `10^d + 1` points. They are computed from `n`, the sum and the
//!   sum of squares (integers in `[0, T·10^d]`), so a metric carries the smaller of the two
//!   counts.
//! - `usage`: queries in `[0, T·q]`, input and output tokens up to `T·q` times a query's worst
//!   case (the host clamps what an endpoint reports to it before it is tallied).
//! - `status`: the end and its reason, from a fixed set of host-written texts
//!   ([`VISIBLE_ENDINGS`]).
//! - `time`: with `time_grid_s`, a job's visible end lies on the grid counted from its start;
//!   its samples run at most `ceil(T / C) · sample_timeout_s`, so the end takes one of
//!   `ceil(that / grid) + 2` grid points (one more for the output-independent setup before the
//!   samples). Without a grid, times are exact and the channel is [`Channel::Time`] in
//!   `excluded`.
//!
//! Under DP ([`crate::policy::ReleaseRules::is_private`]) the service shows nothing else that
//! depends on outputs: no live progress, no attempts, budget views with worst-case holds only.
//! Without DP those are live and the bound lists them in `excluded`: it never claims a bound
//! that an open channel breaks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::JOB_QUERIES;
use crate::metric::MetricSpec;
use crate::outcome::Outcome;
use crate::policy::Policy;

/// How many (status, reason) pairs a job's end can show its evaluator: `succeeded`;
/// `succeeded` with a budget that ran out; `failed` as withheld, withheld with a budget that
/// ran out, failed to set up, failed internally, stopped past the grant's CPU seconds per
/// job; `cancelled` by its evaluator or by the operator; `revoked`.
pub const VISIBLE_ENDINGS: u32 = 10;

/// A channel the bound does not cover, because the policy leaves it open.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// Times to the millisecond (no `time_grid_s`).
    Time,
    /// Live progress counts while the job runs.
    Progress,
    /// The number of attempts a job took.
    Attempts,
    /// Exact, live query and token counts in the grant's budget view.
    Budget,
}

impl Channel {
    /// The channel's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Time => "time",
            Channel::Progress => "progress",
            Channel::Attempts => "attempts",
            Channel::Budget => "budget",
        }
    }
}

/// A job's leakage bound, as pre-registered and attested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Leakage {
    /// Upper bound, in bits, on what the channels below carry together about model outputs.
    pub bits_max: f64,
    /// Each channel's share of `bits_max`.
    pub channels: BTreeMap<String, f64>,
    /// Channels the policy leaves open, which `bits_max` does not cover.
    pub excluded: Vec<Channel>,
}

/// The name of the channel of a service job's identity figures.
pub const IDENTITY_CHANNEL: &str = "model_identity";

impl Leakage {
    /// The bound with the channel of the service's identity checks added: what the service
    /// pre-registers and attests for every job it runs, checked or not (module docs).
    pub fn with_identity_checks(mut self) -> Leakage {
        self.channels.insert(
            IDENTITY_CHANNEL.to_owned(),
            ((JOB_QUERIES + 2) as f64).log2(),
        );
        self.bits_max = self.channels.values().sum();
        self
    }
}

/// The bound for a job of `samples` samples of an eval declaring `metrics`, under `policy`.
pub fn bound(policy: &Policy, metrics: &[MetricSpec], samples: u64) -> Leakage {
    let t = samples as f64;
    let rules = &policy.release;
    let private = rules.is_private();
    let mut channels = BTreeMap::new();

    let kinds = Outcome::ALL.len() as u64;
    let samples_bits = if private {
        kinds as f64 * log2_count(t)
    } else {
        log2_binomial(samples + kinds - 1, kinds - 1)
    };
    channels.insert("samples".to_owned(), samples_bits);

    let grid_points = 10f64.powi(rules.decimals as i32);
    for spec in metrics {
        let figures = 4.0 * log2_count(grid_points);
        let sums = 2.0 * log2_count(t * grid_points);
        channels.insert(
            format!("metrics.{}", spec.name),
            log2_count(t) + figures.min(sums),
        );
    }

    let q = &policy.queries;
    let queries = t * q.max_per_sample as f64;
    let input = q.worst_case_tokens_per_query().saturating_sub(q.max_tokens) as f64;
    channels.insert(
        "usage".to_owned(),
        log2_count(queries)
            + log2_count(queries * input)
            + log2_count(queries * q.max_tokens as f64),
    );
    channels.insert("status".to_owned(), f64::from(VISIBLE_ENDINGS).log2());

    let mut excluded = Vec::new();
    match rules.time_grid_s {
        Some(grid) => {
            let waves = (samples.div_ceil(policy.limits.max_concurrency.max(1))) as f64;
            let longest = waves * policy.limits.sample_timeout_s;
            channels.insert("time".to_owned(), ((longest / grid).ceil() + 2.0).log2());
        }
        None => excluded.push(Channel::Time),
    }
    if !private {
        excluded.extend([Channel::Progress, Channel::Attempts, Channel::Budget]);
    }
    Leakage {
        bits_max: channels.values().sum(),
        channels,
        excluded,
    }
}

/// `log2(n + 1)`: the bits of a value that can be any integer in `[0, n]`.
fn log2_count(n: f64) -> f64 {
    (n + 1.0).log2()
}

/// `log2 C(n, k)`, summed term by term so it stays exact enough for any `n`.
fn log2_binomial(n: u64, k: u64) -> f64 {
    (1..=k)
        .map(|i| ((n - k + i) as f64).log2() - (i as f64).log2())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accuracy() -> MetricSpec {
        MetricSpec {
            name: "accuracy".into(),
            description: String::new(),
            min: 0.0,
            max: 1.0,
        }
    }

    #[test]
    fn channel_names_are_their_json_names() {
        for c in [
            Channel::Time,
            Channel::Progress,
            Channel::Attempts,
            Channel::Budget,
        ] {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::json!(c.as_str())
            );
        }
    }

    #[test]
    fn the_binomial_matches_a_direct_count() {
        // C(10, 3) = 120.
        assert!((log2_binomial(10, 3) - 120f64.log2()).abs() < 1e-12);
        assert_eq!(log2_binomial(5, 0), 0.0);
    }

    #[test]
    fn the_arith_example_under_strict_matches_a_hand_computation() {
        // 500 items, one metric, strict: 2 decimals, 4 queries of at most 16,384 prompt bytes
        // (+ 8 × 256 + 16 template tokens) and 256 tokens out, 64 in flight, 60 s per sample,
        // a 60 s grid.
        let t: f64 = 500.0;
        let samples = 12.0 * (t + 1.0).log2();
        let metric = (t + 1.0).log2() + (4.0 * 101f64.log2()).min(2.0 * (t * 100.0 + 1.0).log2());
        let queries = t * 4.0;
        let input = 16_384.0 + 8.0 * 256.0 + 16.0;
        let usage = (queries + 1.0).log2()
            + (queries * input + 1.0).log2()
            + (queries * 256.0 + 1.0).log2();
        // Ten endings: succeeded, with a budget that ran out, five failures (withheld, withheld
        // with a budget that ran out, setup, internal, past the CPU budget), cancelled by the
        // evaluator or the operator, revoked.
        let status = 10f64.log2();
        // ceil(500 / 64) = 8 waves of at most 60 s: 480 s, 8 grid steps, 10 grid points.
        let time = 10f64.log2();
        let by_hand = samples + metric + usage + status + time;
        assert!((by_hand - 204.9386).abs() < 1e-3, "{by_hand}");
        let b = bound(&Policy::named("strict").unwrap(), &[accuracy()], 500);
        assert!(
            (b.bits_max - by_hand).abs() < 1e-9,
            "{} vs {by_hand}",
            b.bits_max
        );
        assert!((b.channels["time"] - time).abs() < 1e-12);
    }

    #[test]
    fn a_service_job_adds_the_bits_of_its_identity_figures() {
        let local = bound(&Policy::named("strict").unwrap(), &[accuracy()], 500);
        let service = local.clone().with_identity_checks();
        // Not checked, or 0 to 64 mismatches: 66 values.
        assert!((service.channels[IDENTITY_CHANNEL] - 66f64.log2()).abs() < 1e-12);
        assert!((service.bits_max - local.bits_max - 66f64.log2()).abs() < 1e-9);
        assert!(
            (service.bits_max - 210.9830).abs() < 1e-3,
            "{}",
            service.bits_max
        );
        // The same steps give the same bytes: a result restates its pre-registration.
        assert_eq!(service, local.with_identity_checks());
    }

    #[test]
    fn a_policy_with_live_channels_names_them() {
        let b = bound(&Policy::standard(), &[accuracy()], 500);
        assert_eq!(
            b.excluded,
            [
                Channel::Time,
                Channel::Progress,
                Channel::Attempts,
                Channel::Budget
            ]
        );
        assert!(!b.channels.contains_key("time"));
        let strict = bound(&Policy::named("strict").unwrap(), &[accuracy()], 500);
        assert!(strict.excluded.is_empty());
        assert!(strict.channels.contains_key("time"));
    }

    #[test]
    fn the_bound_does_not_grow_with_the_declared_range() {
        let policy = Policy::named("strict").unwrap();
        let mut wide = accuracy();
        wide.max = 1e150;
        assert_eq!(
            bound(&policy, &[accuracy()], 500),
            bound(&policy, &[wide], 500)
        );
    }

    #[test]
    fn more_samples_and_more_metrics_can_carry_more() {
        let policy = Policy::named("strict").unwrap();
        let one = bound(&policy, &[accuracy()], 500).bits_max;
        assert!(bound(&policy, &[accuracy()], 5000).bits_max > one);
        let mut other = accuracy();
        other.name = "other".into();
        assert!(bound(&policy, &[accuracy(), other], 500).bits_max > one);
    }
}
