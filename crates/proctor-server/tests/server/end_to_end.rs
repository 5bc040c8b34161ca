//! A vendor, an evaluator and a regulator, end to end: register, upload, submit, run, fetch
//! the result, and check the attestation offline.

use std::time::{Duration, Instant};

use proctor_attest::VerifyingKey;
use proctor_attest::verify::{AttestationInputs, verify_attestation};
use proctor_core::Sha256Digest;
use proctor_evals::examples::{ARITH_JSONL, ARITH_WASM};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, TestDb, TestServer, str_of};

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
    assert_eq!(job["progress"]["done"], 500, "{job}");

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
