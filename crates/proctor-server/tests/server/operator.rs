//! The operator (an admin) cancels any job: a queued one at once, a running one at its next
//! sample; either way the job ends `cancelled` and its signed result says the operator did it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, TestDb, TestServer, str_of};

const BY_OPERATOR: &str = "cancelled by the service's operator";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_cancels_any_job_and_its_attestation_says_so() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 1).await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s
        .builtin_model(&vendor, "slow", "arith?latency_ms=3000")
        .await?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    // The first job runs (one worker, slow model); the second waits in the queue.
    let (_, running) = s.submit_arith(&evaluator, &model).await?;
    let (_, queued) = s.submit_arith(&evaluator, &model).await?;
    let (running, queued) = (str_of(&running, "id")?, str_of(&queued, "id")?);
    s.wait_job(&evaluator, &running, Duration::from_secs(30), |view| {
        view["status"] == "running"
    })
    .await?;
    let cancel = async |job: &str, token: &str| {
        s.call(
            "POST",
            &format!("/v1/admin/jobs/{job}/cancel"),
            Some(token),
            Body::None,
        )
        .await
    };
    // Only an admin may; the evaluator that owns the job uses its own route.
    let (status, _) = cancel(&queued, &evaluator).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, view) = cancel(&queued, &s.admin).await?;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["status"].as_str(), view["reason"].as_str()),
        (Some("cancelled"), Some(BY_OPERATOR))
    );
    let (status, view) = cancel(&running, &s.admin).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let ended = s
        .wait_ended(&evaluator, &running, Duration::from_secs(60))
        .await?;
    assert_eq!(
        (ended["status"].as_str(), ended["reason"].as_str()),
        (Some("cancelled"), Some(BY_OPERATOR)),
        "{ended}"
    );
    for job in [&queued, &running] {
        let statement = s.result_statement(job).await?;
        assert_eq!(statement["predicate"]["status"], "cancelled", "{statement}");
        assert_eq!(statement["predicate"]["reason"], BY_OPERATOR, "{statement}");
    }
    let (status, again) = cancel(&running, &s.admin).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    s.stop().await;
    db.cleanup().await
}
