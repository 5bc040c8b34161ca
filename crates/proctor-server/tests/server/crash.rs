//! A server that dies mid-job: its lease expires, a restarted server takes the job up, and the
//! job ends exactly once, with one result entry, in a log that stayed consistent. And panics:
//! a model that panics ends its samples, a panic while a job is driven ends the job, and
//! neither takes the worker down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use proctor_attest::Checkpoint;
use proctor_attest::proof::ConsistencyProof;
use proctor_core::{Completion, CompletionRequest, Model, ModelDescriptor, ModelError};
use proctor_models::{ConfigError, Credential, HostPolicy, ModelConfig};
use proctor_server::clock::Clock;
use proctor_server::{BuildModel, ConfiguredModels};
use proctor_store::Timestamp;
use reqwest::StatusCode;
use serde_json::json;

use proctor_server::attest::Reason;

use crate::common::{Body, FIXED_NOW, TestDb, TestServer, str_of};

/// Short, so the second server takes the job up soon after the crash, but with room: a
/// renewal every third of it that stalls past the lease on a busy machine loses the lease,
/// and a third attempt would run (CI saw one with two seconds).
const LEASE: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_server_died_is_finished_once_by_the_next_server() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        crash_and_restart(&db, 3)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        db.cleanup().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_past_its_attempts_fails_with_a_signed_reason() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        crash_and_restart(&db, 1)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        db.cleanup().await?;
    }
    Ok(())
}

/// Runs a slow job, crashes its server mid-job, and starts another with `max_attempts`: with
/// room for a second attempt the job succeeds, without it fails; either way exactly once.
async fn crash_and_restart(db: &TestDb, max_attempts: u32) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let first = TestServer::start_at(db, data.path(), 1, LEASE, max_attempts).await?;
    let admin = first.admin.clone();
    anyhow::ensure!(!admin.is_empty(), "the first start creates the admin");
    let (_, vendor) = first.account("acme", "vendor", None).await?;
    let (_, evaluator) = first.account("lab", "evaluator", Some("academic")).await?;
    let (_, model) = first
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(json!({
                "name": "slow", "version": "1",
                "config": {"adapter": "builtin", "model": "arith?latency_ms=1500"}
            })),
        )
        .await?;
    first
        .grant(
            &vendor,
            &str_of(&model, "id")?,
            json!({"tier": "academic"}),
            json!({}),
        )
        .await?;
    let (status, job) = first
        .submit_arith(&evaluator, &str_of(&model, "id")?)
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let path = format!("/v1/jobs/{}", str_of(&job, "id")?);
    let started = Instant::now();
    loop {
        let (_, job) = first
            .call("GET", &path, Some(&evaluator), Body::None)
            .await?;
        if job["status"] == "running" {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "never ran: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, before) = first
        .call_raw("GET", "/v1/log/checkpoint", None, Body::None)
        .await?;

    // The crash: the worker is dropped mid-job, nothing is finished or released.
    first.crash().await;

    let second = TestServer::start_at(db, data.path(), 1, LEASE, max_attempts).await?;
    assert!(
        second.admin.is_empty(),
        "an admin exists: no second bootstrap"
    );
    let job = loop {
        let (status, job) = second
            .call("GET", &path, Some(&evaluator), Body::None)
            .await?;
        assert_eq!(status, StatusCode::OK, "{job}");
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            break job;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(90), "stuck: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["attempts"], 2, "{job}");
    if max_attempts >= 2 {
        assert_eq!(job["status"], "succeeded", "{job}");
    } else {
        assert_eq!(job["status"], "failed", "{job}");
        // A fixed text: which worker died, and how often, stays in the service's log.
        assert_eq!(job["reason"], Reason::Internal.text(), "{job}");
        let (_, attestation) = second
            .call(
                "GET",
                &format!("/v1/attestations/{}", str_of(&job, "id")?),
                None,
                Body::None,
            )
            .await?;
        let envelope: serde_json::Value = serde_json::from_str(&str_of(&attestation, "envelope")?)?;
        let payload =
            crate::end_to_end::base64_decode(envelope["payload"].as_str().unwrap_or_default())?;
        let statement: serde_json::Value = serde_json::from_slice(&payload)?;
        assert_eq!(statement["predicate"]["status"], "failed", "{statement}");
        assert_eq!(
            statement["predicate"]["reason"],
            Reason::Internal.text(),
            "{statement}"
        );
        assert_eq!(
            statement["predicate"]["release"],
            serde_json::Value::Null,
            "{statement}"
        );
    }
    let (_, entries) = second
        .call("GET", "/v1/log/entries", None, Body::None)
        .await?;
    let kinds: Vec<_> = entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["accepted", "result"], "one result entry");

    // The log before the crash is a prefix of the log after it.
    let (_, pem) = second
        .call_raw("GET", "/v1/public-key", None, Body::None)
        .await?;
    let key = proctor_attest::VerifyingKey::from_pem(&String::from_utf8(pem)?)?;
    let old = Checkpoint::open(&before, &key)?;
    let (_, after) = second
        .call_raw("GET", "/v1/log/checkpoint", None, Body::None)
        .await?;
    let new = Checkpoint::open(&after, &key)?;
    let (_, proof) = second
        .call_raw(
            "GET",
            &format!(
                "/v1/log/proof/consistency?old={}&new={}",
                old.size, new.size
            ),
            None,
            Body::None,
        )
        .await?;
    ConsistencyProof::from_json(&proof)?.verify(&old.root, &new.root)?;
    second.stop().await;
    Ok(())
}

/// A clock whose first wait panics: a panic in the midst of driving a job (here, while its
/// end is padded to the grid), where no sample can catch it.
#[derive(Debug, Default)]
struct PanicsOnce {
    fired: AtomicBool,
}

#[async_trait]
impl Clock for PanicsOnce {
    fn now(&self) -> Timestamp {
        FIXED_NOW
    }

    async fn wait_until(&self, _at: Timestamp) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            panic!("the clock broke");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_while_driving_a_job_ends_it_failed_and_the_worker_runs_the_next_job()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start_with(&db, 1, |config| {
            config.clock = Arc::new(PanicsOnce::default());
        })
        .await?;
        driving_panics(&server)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn driving_panics(s: &TestServer) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    // strict has a time grid, so each job's end is padded on the clock.
    s.grant(
        &vendor,
        &model,
        json!({"tier": "academic"}),
        json!({"policy": "strict", "budgets": {"epsilon_total": 10.0}}),
    )
    .await?;
    let (_, first) = s.submit_arith(&evaluator, &model).await?;
    let first = str_of(&first, "id")?;
    let (_, second) = s.submit_arith(&evaluator, &model).await?;
    let second = str_of(&second, "id")?;
    let ended = s
        .wait_ended(&evaluator, &first, Duration::from_secs(60))
        .await?;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["reason"], Reason::Internal.text(), "{ended}");
    let statement = s.result_statement(&first).await?;
    let predicate = &statement["predicate"];
    assert_eq!(predicate["status"], "failed", "{statement}");
    assert_eq!(predicate["reason"], Reason::Internal.text(), "{statement}");
    assert!(predicate["leakage"]["bits_max"].is_number(), "{statement}");
    // The one worker lived on and took the next job.
    let ended = s
        .wait_ended(&evaluator, &second, Duration::from_secs(60))
        .await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    Ok(())
}

/// Builds models as configured, except that a built-in `echo` panics whenever it is asked.
#[derive(Debug)]
struct EchoPanics;

impl BuildModel for EchoPanics {
    fn build(
        &self,
        config: &ModelConfig,
        credential: Option<Credential>,
        seed: u64,
        hosts: &HostPolicy,
    ) -> Result<Arc<dyn Model>, ConfigError> {
        let model = ConfiguredModels.build(config, credential, seed, hosts)?;
        Ok(if config.model == "echo" {
            Arc::new(Panicking(model))
        } else {
            model
        })
    }
}

struct Panicking(Arc<dyn Model>);

#[async_trait]
impl Model for Panicking {
    fn descriptor(&self) -> ModelDescriptor {
        self.0.descriptor()
    }

    async fn complete(&self, _request: CompletionRequest) -> Result<Completion, ModelError> {
        panic!("the adapter broke");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_that_panics_ends_its_samples_other_and_the_worker_runs_the_next_job()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start_with(&db, 1, |config| {
            config.models = Arc::new(EchoPanics);
        })
        .await?;
        model_panics(&server)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn model_panics(s: &TestServer) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let broken = s.builtin_model(&vendor, "broken", "echo").await?;
    let arith = s.builtin_model(&vendor, "arith", "arith").await?;
    for model in [&broken, &arith] {
        s.grant(&vendor, model, json!({"tier": "academic"}), json!({}))
            .await?;
    }
    let (_, first) = s.submit_arith(&evaluator, &broken).await?;
    let first = str_of(&first, "id")?;
    let (_, second) = s.submit_arith(&evaluator, &arith).await?;
    let second = str_of(&second, "id")?;
    // Every sample panicked on the host and counted as `other`; the job itself ran to its end
    // and was withheld (no ok sample), with the fixed reason.
    let ended = s
        .wait_ended(&evaluator, &first, Duration::from_secs(60))
        .await?;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["reason"], Reason::Withheld.text(), "{ended}");
    let (_, result) = s
        .call(
            "GET",
            &format!("/v1/jobs/{first}/result"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    let samples = &result["report"]["samples"];
    assert_eq!(samples["total"], 500, "{result}");
    assert_eq!(samples["trapped"]["other"], 500, "{result}");
    assert!(!result.to_string().contains("broke"), "{result}");
    let ended = s
        .wait_ended(&evaluator, &second, Duration::from_secs(60))
        .await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    Ok(())
}
