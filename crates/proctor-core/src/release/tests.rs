//! The release's tests: totality, the grid, the noise and what is withheld.

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
