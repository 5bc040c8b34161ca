//! A server that dies mid-job: its lease expires, a restarted server takes the job up, and the
//! job ends exactly once, with one result entry, in a log that stayed consistent.

use std::time::{Duration, Instant};

use proctor_attest::Checkpoint;
use proctor_attest::proof::ConsistencyProof;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, TestDb, TestServer, str_of};

const LEASE: Duration = Duration::from_secs(2);

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
    first.stop().await;

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
        assert!(
            job["reason"]
                .as_str()
                .is_some_and(|r| r.contains("1 attempts")),
            "{job}"
        );
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
