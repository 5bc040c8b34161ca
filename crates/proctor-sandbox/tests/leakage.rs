//! A hostile eval (`test-guests/leak-scores`) tries to carry the model's answer out through
//! what it controls per sample: score values (a byte of the answer), which samples fail (its
//! parity) and which metrics are reported (a bit, as the `flag` metric's count). The evaluator
//! must see only aggregates within the declared bounds, a report whose size does not grow with
//! the samples, and under `strict` (DP) figures that differ between two runs over the very same
//! model outputs.
//!
//! Two more hostile declarations (issue 11): `test-guests/wide-range` declares a metric over
//! `[0, 1e150]` and reports `2^(440 + i)` for a right answer to item `i`, so that `mean × n`
//! would spell out every sample's answer in binary; it must release nothing that decodes.
//! `test-guests/huge-range` declares `[-1e308, 1e308]`, whose width overflows; it must be
//! refused with a clear error, never panic.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use proctor_core::{
    Completion, CompletionRequest, Dataset, FinishReason, Model, ModelDescriptor, ModelError,
    Policy, RunReport,
};
use proctor_evals::test_guests::{HUGE_RANGE, LEAK_SCORES, WIDE_RANGE};
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, Progress, Sandbox,
};
use serde_json::Value;

/// What the model says to every prompt: the text the guest tries to leak.
const SECRET: &str = "ZEBRA-7f3a quartz harmonica";

/// One small-pool engine per test binary, large enough for `strict`.
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let settings = EngineSettings {
                max_concurrent_samples: 64,
                max_memory_mib: 64,
                max_table_elements: 100_000,
            };
            Arc::new(Sandbox::new(settings, CompileCache::disabled()).expect("engine"))
        })
        .clone()
}

struct Secretive;

#[async_trait]
impl Model for Secretive {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:secretive".into(),
            name: "secretive".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, _: CompletionRequest) -> Result<Completion, ModelError> {
        Ok(Completion {
            text: SECRET.into(),
            finish: FinishReason::Stop,
            input_tokens: 7,
            output_tokens: 4,
        })
    }
}

/// A policy without noise: small limits, every metric allowed out.
fn open_policy() -> Policy {
    Policy::from_toml(
        r#"
        name = "open"
        [limits]
        fuel_per_sample = 10_000_000
        memory_mib = 16
        table_elements = 10_000
        sample_timeout_s = 5
        max_concurrency = 16
        [queries]
        max_tokens = 64
        [release]
        min_samples = 10
        max_metrics = 4
        "#,
    )
    .expect("policy")
}

async fn run(policy: Policy, items: usize) -> RunReport {
    let text = "{\"q\": 1}\n".repeat(items);
    run_guest(LEAK_SCORES, policy, &text, Arc::new(Secretive)).await
}

/// Runs `guest` over the JSONL `dataset` against `model` under `policy`, and releases it.
async fn run_guest(
    guest: &[u8],
    policy: Policy,
    dataset: &str,
    model: Arc<dyn Model>,
) -> RunReport {
    let sandbox = sandbox();
    let eval = sandbox.prepare(guest).await.expect("the guest prepares");
    eval.check_policy(&policy).expect("the policy admits it");
    let items = dataset.lines().count();
    let name = policy.name.clone();
    let spec = JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(dataset.as_bytes(), items).expect("dataset")),
        model,
        concurrency: usize::try_from(policy.limits.max_concurrency).unwrap_or(16),
        policy: Arc::new(policy),
        seed: 7,
        samples: None,
    };
    proctor_sandbox::run_and_release(
        &sandbox,
        &spec,
        &name,
        &|_: Progress| {},
        &CancellationToken::new(),
        None,
    )
    .await
    .expect("the job runs")
    .expect("not cancelled")
}

/// Every number in a JSON value, with its path.
fn numbers(v: &Value, path: &str, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Number(n) => out.push((path.to_owned(), n.as_f64().unwrap_or(f64::NAN))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                numbers(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                numbers(item, &format!("{path}.{key}"), out);
            }
        }
        _ => {}
    }
}

/// Whether any 5-character piece of the secret appears in `text`.
fn holds_secret_text(text: &str) -> bool {
    let secret: Vec<char> = SECRET.chars().collect();
    secret
        .windows(5)
        .any(|w| text.contains(&w.iter().collect::<String>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_noise_the_evaluator_gets_clipped_aggregates_of_fixed_size_and_not_the_text() {
    let report = run(open_policy(), 400).await;
    let json = serde_json::to_value(&report).expect("serializes");
    let text = json.to_string();
    assert!(
        !holds_secret_text(&text),
        "the report holds the answer: {text}"
    );

    // Aggregates only: each metric is n, mean, stderr and an interval, nothing per sample.
    for (name, summary) in json["metrics"].as_object().expect("metrics") {
        let keys: Vec<&str> = summary
            .as_object()
            .expect("summary")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["ci95", "mean", "n", "stderr"], "{name}: {summary}");
    }
    // Within the declared bounds: the guest's 1000.0 for `bit` was clipped to 1.
    let bounds = [("byte", 255.0), ("bit", 1.0), ("flag", 1.0)];
    for (name, max) in bounds {
        let m = &report.metrics[name];
        let mean = m.mean.expect("a mean");
        assert!((0.0..=max).contains(&mean), "{name} mean {mean}");
        if let Some([lo, hi]) = m.ci95 {
            assert!(0.0 <= lo && hi <= max, "{name} interval [{lo}, {hi}]");
        }
    }
    // Which samples failed is a count, not a list.
    let samples = &json["samples"];
    assert!(samples["ok"].as_u64().expect("ok") > 0);
    assert!(samples["failed"]["failed"].as_u64().expect("failed") > 0);

    // However many samples carry pieces of the answer, the report has the same numbers: twice
    // the samples give a report of exactly the same shape.
    let mut small = Vec::new();
    numbers(&json, "", &mut small);
    let bigger = serde_json::to_value(run(open_policy(), 800).await).expect("serializes");
    let mut large = Vec::new();
    numbers(&bigger, "", &mut large);
    let paths = |v: &[(String, f64)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(
        paths(&small),
        paths(&large),
        "the report's size is fixed by the policy"
    );
    assert!(small.len() < 60, "{} numbers", small.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_strict_two_runs_over_the_same_outputs_release_different_noised_figures() {
    let strict = Policy::named("strict").expect("strict");
    // Enough samples that even `flag`, reported by about one in six, clears `min_samples`
    // (50) by many noise scales: a metric whose noised n falls below it is withheld.
    let first = run(strict.clone(), 1200).await;
    let second = run(strict, 1200).await;
    for report in [&first, &second] {
        let json = serde_json::to_value(report).expect("serializes");
        assert!(!holds_secret_text(&json.to_string()), "{json}");
        assert_eq!(json["release"]["status"], "released", "{json}");
        assert_eq!(json["release"]["mechanism"], "laplace", "{json}");
        assert_eq!(json["release"]["epsilon"], 1.0, "{json}");
        let noise = json["release"]["noise"].as_object().expect("noise scales");
        assert!(noise.contains_key("metrics.byte.sum"), "{json}");
        assert!(
            noise.values().all(|s| s.as_f64().is_some_and(|s| s > 0.0)),
            "{json}"
        );
        for (name, max) in [("byte", 255.0), ("bit", 1.0), ("flag", 1.0)] {
            let mean = report.metrics[name].mean.expect("a mean");
            assert!((0.0..=max).contains(&mean), "{name} mean {mean} clamped");
        }
    }
    // The model said exactly the same thing to both runs; the released figures differ.
    let means = |r: &RunReport| ["byte", "bit", "flag"].map(|m| r.metrics[m].mean.expect("a mean"));
    eprintln!(
        "strict, same outputs: means {:?} vs {:?}; ok {} vs {}",
        means(&first),
        means(&second),
        first.samples.ok,
        second.samples.ok
    );
    assert_ne!(means(&first), means(&second));
    assert_ne!(
        first.samples, second.samples,
        "the outcome counts are noised too"
    );
}

/// Which of the wide-range guest's 50 items the keyed model answers right: bit `i` for item
/// `i`. Both kinds occur, in no simple pattern.
const ANSWER_BITS: u64 = 0x2_D5A3_96C1_F0E7;
/// The wide-range attack's items: one bit per sample.
const WIDE_ITEMS: u32 = 50;
/// The bit sample 0 sets in the wide-range guest: it reports `2^(440 + i)`.
const FIRST_BIT: i32 = 440;

/// Answers the arithmetic question `What is {i} + 1000?` right when bit `i` of
/// [`ANSWER_BITS`] is set and one too high otherwise: the per-sample secret the wide-range
/// guest tries to spell out in its sum.
struct Keyed;

#[async_trait]
impl Model for Keyed {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:keyed".into(),
            name: "keyed".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        let question = request
            .messages
            .last()
            .map(|m| m.content.as_str())
            .unwrap_or_default();
        let terms: Vec<u64> = question
            .trim_start_matches("What is ")
            .trim_end_matches('?')
            .split(" + ")
            .filter_map(|t| t.trim().parse().ok())
            .collect();
        let (item, sum) = match terms[..] {
            [a, b] => (a, a + b),
            _ => (0, 0),
        };
        let right = item < 64 && (ANSWER_BITS >> item) & 1 == 1;
        Ok(Completion {
            text: (if right { sum } else { sum + 1 }).to_string(),
            finish: FinishReason::Stop,
            input_tokens: 4,
            output_tokens: 1,
        })
    }
}

/// The wide-range guest's dataset: item `i` asks `What is {i} + 1000?`.
fn wide_items() -> String {
    (0..WIDE_ITEMS)
        .map(|i| format!("{{\"a\": {i}, \"b\": 1000}}\n"))
        .collect()
}

/// The attacker's decoder: reads `mean × n` as the sum of `2^(440 + i)` over the samples
/// answered right, and returns bit `i` for sample `i`.
fn decode(mean: f64, n: u64) -> u64 {
    let sum = mean * n as f64;
    let bits = (sum / 2f64.powi(FIRST_BIT)).round();
    let mask = (1u64 << WIDE_ITEMS) - 1;
    if (0.0..=mask as f64).contains(&bits) {
        (bits as u64) & mask
    } else {
        u64::MAX
    }
}

/// Whether `value` lies on the grid of `steps` points per unit of the range `[min, max]`
/// (relative to `min` when `shifted`), as a range-relative release puts it.
fn on_grid(value: f64, min: f64, max: f64, steps: f64, shifted: bool) -> bool {
    let origin = if shifted { min } else { 0.0 };
    let k = (value - origin) / (max - min) * steps;
    (k - k.round()).abs() < 1e-6 && (-0.5..=steps + 0.5).contains(&k)
}

#[test]
fn the_decoder_reads_every_answer_from_the_exact_sum() {
    // What the attack gets from an exact mean and n: the whole secret. The releases below
    // must not give the decoder this.
    let mut sum = 0.0;
    for i in 0..WIDE_ITEMS {
        if (ANSWER_BITS >> i) & 1 == 1 {
            sum += 2f64.powi(FIRST_BIT + i as i32);
        }
    }
    let n = u64::from(WIDE_ITEMS);
    assert_eq!(decode(sum / n as f64, n), ANSWER_BITS);
}

/// Checks a wide-range report: withheld, or every figure on the range-relative grid of
/// `10^decimals` points, so `mean · n / R · 10^decimals` is an integer of at most
/// `log2(10^decimals · n + 1)` bits, and the decoder does not read the answers.
fn assert_wide_range_undecodable(report: &RunReport) {
    let json = serde_json::to_value(report).expect("serializes");
    let Some(figures) = report.metrics.get("bits") else {
        // Withheld: the whole release (too few ok samples), or this metric alone (too few
        // samples reported it, counted with noise).
        let whole = json["release"]["status"] == "withheld";
        let alone = json["release"]["withheld_metrics"]
            .as_array()
            .is_some_and(|names| names.iter().any(|name| name == "bits"));
        assert!(whole || alone, "no figures, and not withheld: {json}");
        return;
    };
    let (min, max) = (0.0, 1e150);
    let steps = 10f64.powi(i32::try_from(report.release.decimals).expect("small"));
    let mean = figures.mean.expect("a mean when released");
    assert!(on_grid(mean, min, max, steps, true), "mean {mean}: {json}");
    if let Some(stderr) = figures.stderr {
        assert!(
            on_grid(stderr, min, max, steps, false),
            "stderr {stderr}: {json}"
        );
    }
    if let Some([lo, hi]) = figures.ci95 {
        for end in [lo, hi] {
            assert!(on_grid(end, min, max, steps, true), "ci95 {end}: {json}");
        }
    }
    let decoded = decode(mean, figures.n);
    assert_ne!(
        decoded, ANSWER_BITS,
        "the answers decode from mean × n: {json}"
    );
    let agreeing = (!(decoded ^ ANSWER_BITS) & ((1u64 << WIDE_ITEMS) - 1)).count_ones();
    eprintln!(
        "{}: mean {mean:e}, n {}, {agreeing} of {WIDE_ITEMS} bits agree",
        report.policy.name, figures.n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_over_0_to_1e150_releases_nothing_the_per_sample_answers_decode_from() {
    // Without noise, at 4 decimals: deterministic, and still 13 bits at most, not 50.
    let report = run_guest(WIDE_RANGE, open_policy(), &wide_items(), Arc::new(Keyed)).await;
    assert_eq!(report.samples.ok, u64::from(WIDE_ITEMS));
    assert_eq!(
        report.release.status,
        proctor_core::release::ReleaseStatus::Released
    );
    assert_wide_range_undecodable(&report);

    // Under strict (DP, 2 decimals), where the issue read all 50 bits in 3 runs out of 3.
    for _ in 0..3 {
        let strict = Policy::named("strict").expect("strict");
        let report = run_guest(WIDE_RANGE, strict, &wide_items(), Arc::new(Keyed)).await;
        assert_eq!(report.samples.total, u64::from(WIDE_ITEMS));
        assert_wide_range_undecodable(&report);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_whose_width_overflows_is_refused_when_prepared_naming_it() {
    // [-1e308, 1e308]: both ends finite, max - min is not. It once panicked the release.
    let refused = sandbox()
        .prepare(HUGE_RANGE)
        .await
        .map(|_| ())
        .expect_err("the declaration is refused");
    let message = refused.to_string();
    assert!(message.contains("`huge`"), "names the metric: {message}");
    assert!(message.contains("finite"), "says why: {message}");
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        message.len() < 300,
        "short, with the bounds as 1e308: {message}"
    );
    // The engine goes on: the next eval prepares and runs.
    let report = run(open_policy(), 20).await;
    assert_eq!(report.samples.total, 20);
}
