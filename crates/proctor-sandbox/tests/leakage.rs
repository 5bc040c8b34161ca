//! A hostile eval (`test-guests/leak-scores`) tries to carry the model's answer out through
//! what it controls per sample: score values (a byte of the answer), which samples fail (its
//! parity) and which metrics are reported (a bit, as the `flag` metric's count). The evaluator
//! must see only aggregates within the declared bounds, a report whose size does not grow with
//! the samples, and under `strict` (DP) figures that differ between two runs over the very same
//! model outputs.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use proctor_core::{
    Completion, CompletionRequest, Dataset, FinishReason, Model, ModelDescriptor, ModelError,
    Policy, RunReport,
};
use proctor_evals::test_guests::LEAK_SCORES;
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
    let sandbox = sandbox();
    let eval = sandbox
        .prepare(LEAK_SCORES)
        .await
        .expect("the guest prepares");
    eval.check_policy(&policy).expect("the policy admits it");
    let text = "{\"q\": 1}\n".repeat(items);
    let name = policy.name.clone();
    let spec = JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(text.as_bytes(), items).expect("dataset")),
        model: Arc::new(Secretive),
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
    let first = run(strict.clone(), 400).await;
    let second = run(strict, 400).await;
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
