//! Dataset exposure over real HTTP: three jobs over one dataset, seen in its owner's view
//! (`GET /v1/datasets/{id}/exposure`) and in the third job's attestations; nobody else reads
//! the view.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Body, TestDb, TestServer, str_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_jobs_on_one_dataset_show_in_the_owners_view_and_the_third_jobs_attestation()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start(&db, 2).await?;
        three_jobs(&server)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_account_cannot_read_the_owners_view() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start(&db, 0).await?;
        others_cannot_read(&server)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

/// A vendor, an academic evaluator under a tier grant of its arith model; their tokens and the
/// model's id.
async fn parties(s: &TestServer) -> anyhow::Result<(String, String, String)> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    Ok((vendor, evaluator, model))
}

async fn exposure(
    s: &TestServer,
    token: &str,
    dataset: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    s.call(
        "GET",
        &format!("/v1/datasets/{dataset}/exposure"),
        Some(token),
        Body::None,
    )
    .await
}

async fn three_jobs(s: &TestServer) -> anyhow::Result<()> {
    let (_, evaluator, model) = parties(s).await?;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let (status, job) = s.submit_arith(&evaluator, &model).await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
        s.wait_ended(&evaluator, &str_of(&job, "id")?, Duration::from_secs(60))
            .await?;
        jobs.push(job);
    }
    let dataset = str_of(&jobs[0], "dataset")?;
    let (status, view) = s
        .call(
            "GET",
            &format!("/v1/datasets/{dataset}"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "{status} {view}");
    let items = view["items"].as_u64().unwrap_or(0);
    assert!(items > 0, "{view}");

    let (status, view) = exposure(s, &evaluator, &dataset).await?;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view.as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(
        (&view[0]["vendor"], &view[0]["jobs"], &view[0]["items"]),
        (&json!("acme"), &json!(3), &json!(3 * items)),
        "{view}"
    );

    // The third job's result and its pre-registration state the exposure before it: the two
    // jobs that came first.
    let third = str_of(&jobs[2], "id")?;
    let before = json!({"jobs": 2, "items": 2 * items});
    let result = s.result_statement(&third).await?;
    assert_eq!(
        result["predicateType"],
        "https://proctor.dev/attestation/eval-result/v4"
    );
    assert_eq!(result["predicate"]["exposure"], before, "{result}");
    let accepted = accepted_statement(s, &third).await?;
    assert_eq!(accepted["predicate"]["exposure"], before, "{accepted}");
    let first = accepted_statement(s, &str_of(&jobs[0], "id")?).await?;
    assert_eq!(
        first["predicate"]["exposure"],
        json!({"jobs": 0, "items": 0}),
        "{first}"
    );
    Ok(())
}

/// The job-accepted statement of `job`, from the public log.
async fn accepted_statement(s: &TestServer, job: &str) -> anyhow::Result<Value> {
    let (status, entries) = s.call("GET", "/v1/log/entries", None, Body::None).await?;
    anyhow::ensure!(status == StatusCode::OK, "{status} {entries}");
    for entry in entries.as_array().into_iter().flatten() {
        let envelope: Value = serde_json::from_slice(&crate::end_to_end::base64_decode(&str_of(
            entry, "envelope",
        )?)?)?;
        let statement: Value = serde_json::from_slice(&crate::end_to_end::base64_decode(
            envelope["payload"].as_str().unwrap_or(""),
        )?)?;
        if statement["predicateType"] == "https://proctor.dev/attestation/job-accepted/v3"
            && statement["predicate"]["job_id"] == job
        {
            return Ok(statement);
        }
    }
    anyhow::bail!("no pre-registration of {job} in {entries}")
}

async fn others_cannot_read(s: &TestServer) -> anyhow::Result<()> {
    let (vendor, evaluator, model) = parties(s).await?;
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
    let dataset = str_of(&job, "dataset")?;
    let (status, view) = exposure(s, &evaluator, &dataset).await?;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view[0]["jobs"], 1, "{view}");

    // Another evaluator is told the dataset does not exist, as for `GET /v1/datasets/{id}`;
    // the vendor is no evaluator; nobody without a token reads it.
    let (_, other) = s
        .account("other-lab", "evaluator", Some("academic"))
        .await?;
    let (status, body) = exposure(s, &other, &dataset).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, absent) = exposure(s, &other, &"0".repeat(64)).await?;
    assert_eq!((status, &absent), (StatusCode::NOT_FOUND, &body));
    let (status, body) = exposure(s, &vendor, &dataset).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = s
        .call(
            "GET",
            &format!("/v1/datasets/{dataset}/exposure"),
            None,
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    Ok(())
}
