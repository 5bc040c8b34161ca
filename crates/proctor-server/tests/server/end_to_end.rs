//! A vendor, an evaluator and a regulator, end to end: register, upload, submit, run, fetch
//! the result, and check the attestation offline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proctor_attest::VerifyingKey;
use proctor_attest::verify::{AttestationInputs, verify_attestation};
use proctor_core::Sha256Digest;
use proctor_evals::examples::{ARITH_JSONL, ARITH_WASM};
use proctor_server::clock::ManualClock;
use proctor_store::Timestamp;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, FIXED_NOW, FIXED_NOW_TEXT, TestDb, TestServer, str_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_arith_job_runs_to_a_verifiable_attestation() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start(&db, 2).await?;
        one_job(&server)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn one_job(s: &TestServer) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let (_, regulator) = s.account("agency", "regulator", None).await?;

    let (status, model) = s
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(json!({
                "name": "arith", "version": "2026-01",
                "config": {"adapter": "builtin", "model": "arith"}
            })),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    let model_id = str_of(&model, "id")?;
    s.grant(&vendor, &model_id, json!({"tier": "academic"}), json!({}))
        .await?;

    let (status, eval) = s
        .call(
            "POST",
            "/v1/evals",
            Some(&evaluator),
            Body::Bytes(ARITH_WASM.to_vec()),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{eval}");
    assert_eq!(eval["name"], "arith");
    assert_eq!(eval["metrics"][0]["name"], "accuracy");
    let eval_id = str_of(&eval, "id")?;
    assert_eq!(eval_id, Sha256Digest::of(ARITH_WASM).to_hex());

    let (status, dataset) = s
        .call(
            "POST",
            "/v1/datasets",
            Some(&evaluator),
            Body::Bytes(ARITH_JSONL.as_bytes().to_vec()),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{dataset}");
    assert_eq!(dataset["items"], 500);
    let dataset_id = str_of(&dataset, "id")?;

    let (status, job) = s
        .call(
            "POST",
            "/v1/jobs",
            Some(&evaluator),
            Body::Json(json!({"eval": eval_id, "dataset": dataset_id, "model": model_id})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["policy"]["name"], "standard");
    assert_eq!(job["progress"]["total"], 500);
    let job_id = str_of(&job, "id")?;

    // Poll until it ends.
    let started = Instant::now();
    let job = loop {
        let (status, job) = s
            .call(
                "GET",
                &format!("/v1/jobs/{job_id}"),
                Some(&evaluator),
                Body::None,
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{job}");
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            break job;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "job stuck: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    // Not private: live progress, attempts and the database's exact times.
    assert_eq!(job["progress"]["done"], 500, "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_ne!(job["created_at"], crate::common::FIXED_NOW_TEXT, "{job}");

    let (status, result) = s
        .call(
            "GET",
            &format!("/v1/jobs/{job_id}/result"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{result}");
    let report = &result["report"];
    assert_eq!(report["samples"]["total"], 500, "{report}");
    assert_eq!(report["samples"]["ok"], 500, "{report}");
    assert_eq!(report["metrics"]["accuracy"]["mean"], 1.0, "{report}");
    assert_eq!(report["release"]["status"], "released", "{report}");

    // The regulator's side: attestation, checkpoint, proof, key; checked offline.
    let (status, attestation) = s
        .call(
            "GET",
            &format!("/v1/attestations/{job_id}"),
            Some(&regulator),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{attestation}");
    assert_eq!(attestation["log_index"], 1, "{attestation}");
    let (status, raw_envelope) = s
        .call_raw(
            "GET",
            &format!("/v1/attestations/{job_id}/envelope"),
            None,
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let envelope = str_of(&attestation, "envelope")?;
    assert_eq!(envelope.as_bytes(), raw_envelope.as_slice());
    let (status, leaf) = s
        .call_raw("GET", "/v1/log/entries/1", None, Body::None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        leaf, raw_envelope,
        "the attestation is byte for byte the log leaf"
    );
    let (status, pem) = s
        .call_raw("GET", "/v1/public-key", None, Body::None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    let key = VerifyingKey::from_pem(&String::from_utf8(pem)?)?;
    let checkpoint = str_of(&attestation, "checkpoint")?;
    let proof = serde_json::to_vec(&attestation["inclusion_proof"])?;
    let report = verify_attestation(&AttestationInputs {
        envelope: envelope.as_bytes(),
        keys: &[key],
        eval: Some(Sha256Digest::of(ARITH_WASM)),
        dataset: Some(Sha256Digest::of(ARITH_JSONL.as_bytes())),
        checkpoint: Some(checkpoint.as_bytes()),
        inclusion_proof: Some(&proof),
    });
    assert!(report.all_passed(), "{report}");

    // The pre-registration is in the log too, before the result.
    let (status, accepted) = s
        .call(
            "GET",
            &format!("/v1/attestations/{job_id}?kind=accepted"),
            None,
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["log_index"], 0);
    let (status, entries) = s.call("GET", "/v1/log/entries", None, Body::None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entries.as_array().map(Vec::len), Some(2), "{entries}");
    let (status, consistency) = s
        .call(
            "GET",
            "/v1/log/proof/consistency?old=1&new=2",
            None,
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{consistency}");

    let (status, metrics) = s.call_raw("GET", "/metrics", None, Body::None).await?;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics)?;
    assert!(
        metrics.contains("proctor_jobs_total{status=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("proctor_samples_processed_total 500"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_job_cancelled_ends_once_with_a_cancelled_attestation() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start(&db, 1).await?;
        cancel_running(&server)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn cancel_running(s: &TestServer) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let (_, model) = s
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(json!({
                "name": "slow", "version": "1",
                "config": {"adapter": "builtin", "model": "arith?latency_ms=3000"}
            })),
        )
        .await?;
    s.grant(
        &vendor,
        &str_of(&model, "id")?,
        json!({"tier": "academic"}),
        json!({}),
    )
    .await?;
    let (status, job) = s.submit_arith(&evaluator, &str_of(&model, "id")?).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job_id = str_of(&job, "id")?;
    let path = format!("/v1/jobs/{job_id}");
    let started = Instant::now();
    loop {
        let (_, job) = s.call("GET", &path, Some(&evaluator), Body::None).await?;
        if job["status"] == "running" {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "never ran: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, cancelled) = s
        .call(
            "POST",
            &format!("{path}/cancel"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    assert_eq!(cancelled["cancel_requested"], true);
    let job = loop {
        let (_, job) = s.call("GET", &path, Some(&evaluator), Body::None).await?;
        if job["status"] != "running" {
            break job;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "not cancelled: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "cancelled", "{job}");
    let (status, again) = s
        .call(
            "POST",
            &format!("{path}/cancel"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (_, entries) = s.call("GET", "/v1/log/entries", None, Body::None).await?;
    assert_eq!(
        entries.as_array().map(Vec::len),
        Some(2),
        "one accepted, one result"
    );
    let (status, attestation) = s
        .call(
            "GET",
            &format!("/v1/attestations/{job_id}"),
            None,
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{attestation}");
    let envelope: serde_json::Value = serde_json::from_str(&str_of(&attestation, "envelope")?)?;
    let payload = base64_decode(envelope["payload"].as_str().unwrap_or_default())?;
    let statement: serde_json::Value = serde_json::from_slice(&payload)?;
    assert_eq!(statement["predicate"]["status"], "cancelled", "{statement}");
    assert_eq!(
        statement["predicate"]["accepted_log_index"], 0,
        "{statement}"
    );
    Ok(())
}

pub fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}

/// The grid point one minute after [`FIXED_NOW`]: where a strict job started at it ends.
const ONE_MINUTE_ON: &str = "2030-01-01T00:01:00.000Z";

/// Submits the arith example under `strict` (DP, a 60 s time grid) against a built-in arith
/// model answering after `latency_ms`, 16 samples in flight; returns the evaluator's token
/// and the job's id.
async fn private_job(s: &TestServer, latency_ms: u64) -> anyhow::Result<(String, String)> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s
        .builtin_model(&vendor, "arith", &format!("arith?latency_ms={latency_ms}"))
        .await?;
    s.grant(
        &vendor,
        &model,
        json!({"tier": "academic"}),
        json!({"policy": "strict", "budgets": {"epsilon_total": 10.0},
               "overrides": {"limits": {"max_concurrency": 16}}}),
    )
    .await?;
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
    Ok((evaluator, str_of(&job, "id")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_jobs_view_shows_no_progress_or_attempts_and_the_same_bytes_while_it_runs()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start(&db, 1).await?;
        private_views(&server)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn private_views(s: &TestServer) -> anyhow::Result<()> {
    // 500 samples, 16 at a time, 100 ms each: about three seconds of running.
    let (evaluator, job) = private_job(s, 100).await?;
    let started = Instant::now();
    let mut running: Vec<Vec<u8>> = Vec::new();
    loop {
        let bytes = s.job_bytes(&evaluator, &job).await?;
        let view: serde_json::Value = serde_json::from_slice(&bytes)?;
        match view["status"].as_str() {
            Some("queued") => {}
            Some("running") => running.push(bytes),
            _ => break,
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "stuck: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(running.len() >= 3, "polled {} times", running.len());
    assert!(
        running.windows(2).all(|w| w[0] == w[1]),
        "every poll of the running job reads the same bytes"
    );
    let view: serde_json::Value = serde_json::from_slice(&running[0])?;
    assert_eq!(
        view["progress"],
        json!({"done": null, "total": 500}),
        "{view}"
    );
    assert_eq!(view["attempts"], serde_json::Value::Null, "{view}");
    assert_eq!(view["created_at"], FIXED_NOW_TEXT, "{view}");
    assert_eq!(view["started_at"], FIXED_NOW_TEXT, "{view}");
    assert!(view.get("finished_at").is_none(), "{view}");

    // Ended: the count of a job that ran all its samples, the end on the next grid point,
    // and the same times in the pre-registration and the result.
    let ended = s
        .wait_ended(&evaluator, &job, Duration::from_secs(5))
        .await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["progress"]["done"], 500, "{ended}");
    assert_eq!(ended["attempts"], serde_json::Value::Null, "{ended}");
    assert_eq!(ended["finished_at"], ONE_MINUTE_ON, "{ended}");
    let (_, listed) = s
        .call("GET", "/v1/jobs", Some(&evaluator), Body::None)
        .await?;
    assert_eq!(listed[0], ended, "the list shows the same view");
    let result = s.result_statement(&job).await?;
    assert_eq!(
        result["predicate"]["started_at"], FIXED_NOW_TEXT,
        "{result}"
    );
    assert_eq!(
        result["predicate"]["finished_at"], ONE_MINUTE_ON,
        "{result}"
    );
    let (status, accepted) = s
        .call(
            "GET",
            &format!("/v1/attestations/{job}?kind=accepted"),
            None,
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let envelope: serde_json::Value = serde_json::from_str(&str_of(&accepted, "envelope")?)?;
    let payload = base64_decode(envelope["payload"].as_str().unwrap_or_default())?;
    let accepted: serde_json::Value = serde_json::from_slice(&payload)?;
    assert_eq!(
        accepted["predicate"]["accepted_at"], FIXED_NOW_TEXT,
        "{accepted}"
    );
    // The bound was pre-registered, and the result states the same one.
    assert!(
        accepted["predicate"]["leakage"]["bits_max"].is_number(),
        "{accepted}"
    );
    assert_eq!(
        accepted["predicate"]["leakage"], result["predicate"]["leakage"],
        "{result}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_jobs_end_is_not_visible_until_the_clock_passes_its_padded_end()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let clock = ManualClock::new(Timestamp(FIXED_NOW.as_millis() + 5_000));
        // Two workers: had the waiting one let its lease lapse, the other would take the job
        // up again and wait too.
        let server = TestServer::start_with(&db, 2, |config| {
            config.clock = Arc::new(clock.clone());
        })
        .await?;
        padded_end(&server, &clock)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn padded_end(s: &TestServer, clock: &ManualClock) -> anyhow::Result<()> {
    let (evaluator, job) = private_job(s, 0).await?;
    // The samples are done once the worker waits on the clock for the job's padded end.
    let started = Instant::now();
    while clock.waiting() == 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the worker never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let size = s.log_size().await?;
    let held = s.job_bytes(&evaluator, &job).await?;
    let view: serde_json::Value = serde_json::from_slice(&held)?;
    assert_eq!(view["status"], "running", "{view}");
    assert_eq!(view["started_at"], FIXED_NOW_TEXT, "{view}");

    // Longer than a lease (6 s here): the heartbeat keeps it, no other worker takes the job.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(clock.waiting(), 1, "one worker holds the job's end");
    assert_eq!(s.job_bytes(&evaluator, &job).await?, held);

    // A millisecond before the next grid point nothing has moved.
    clock.set(Timestamp(FIXED_NOW.as_millis() + 59_999));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.job_bytes(&evaluator, &job).await?, held);
    assert_eq!(s.log_size().await?, size, "no result entry yet");
    let (_, metrics) = s.call_raw("GET", "/metrics", None, Body::None).await?;
    let metrics = String::from_utf8(metrics)?;
    assert!(
        !metrics.contains("proctor_samples_processed_total 500"),
        "{metrics}"
    );

    clock.set(Timestamp(FIXED_NOW.as_millis() + 60_000));
    let ended = s
        .wait_ended(&evaluator, &job, Duration::from_secs(30))
        .await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["finished_at"], ONE_MINUTE_ON, "{ended}");
    assert_eq!(s.log_size().await?, size + 1);
    let result = s.result_statement(&job).await?;
    assert_eq!(
        result["predicate"]["finished_at"], ONE_MINUTE_ON,
        "{result}"
    );
    // The worker counts the samples once the end is written, a moment after it is visible.
    let counted = Instant::now();
    loop {
        let (_, metrics) = s.call_raw("GET", "/metrics", None, Body::None).await?;
        let metrics = String::from_utf8(metrics)?;
        if metrics.contains("proctor_samples_processed_total 500") {
            break;
        }
        assert!(counted.elapsed() < Duration::from_secs(10), "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
