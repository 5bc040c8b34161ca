//! CPU seconds per job, a grant budget: a job whose samples use more CPU time than its grant
//! allows is stopped and ends `failed` with one fixed reason, in its view and its signed
//! result; waiting for the model is not CPU time, so a slow model's job runs to its end.

use std::time::Duration;

use proctor_core::job_end::Reason;
use proctor_evals::test_guests::LOOP_FOREVER;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, TestDb, TestServer, code, str_of};

/// Uploads `wasm` and a dataset of `items` items as `evaluator` and submits a job of them.
async fn submit(
    s: &TestServer,
    evaluator: &str,
    model: &str,
    wasm: &[u8],
    items: usize,
) -> anyhow::Result<String> {
    let jsonl: String = (0..items).map(|i| format!("{{\"i\": {i}}}\n")).collect();
    let (eval, dataset) = s.upload(evaluator, wasm, &jsonl).await?;
    let body = json!({"eval": eval, "dataset": dataset, "model": model});
    let (status, job) = s
        .call("POST", "/v1/jobs", Some(evaluator), Body::Json(body))
        .await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
    str_of(&job, "id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_past_its_grants_cpu_seconds_is_stopped_with_a_fixed_reason() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let s = TestServer::start(&db, 1).await?;
        cpu_budget(&s)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        s.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn cpu_budget(s: &TestServer) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    let (status, refused) = s
        .call(
            "POST",
            "/v1/grants",
            Some(&vendor),
            Body::Json(json!({"model": model, "grantee": {"tier": "academic"},
                              "budgets": {"cpu_seconds_per_job": 0}})),
        )
        .await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        "{refused}"
    );
    let grant = s
        .grant(
            &vendor,
            &model,
            json!({"tier": "academic"}),
            json!({"budgets": {"cpu_seconds_per_job": 1}}),
        )
        .await?;
    assert_eq!(grant["budgets"]["cpu_seconds_per_job"], 1, "{grant}");

    // Sixteen samples, eight of which compute until their fuel (2e9 under `standard`) runs
    // out: most of a CPU second each. Without the budget the job runs them all and ends with
    // its release withheld (too few `ok` samples), a different reason.
    let job = submit(s, &evaluator, &model, LOOP_FOREVER, 16).await?;
    let ended = s
        .wait_ended(&evaluator, &job, Duration::from_secs(120))
        .await?;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["reason"], Reason::CpuBudget.text(), "{ended}");
    let statement = s.result_statement(&job).await?;
    let predicate = &statement["predicate"];
    assert_eq!(predicate["status"], "failed", "{statement}");
    assert_eq!(predicate["reason"], Reason::CpuBudget.text(), "{statement}");
    // Stopped before its end: nothing of its samples is released.
    assert!(predicate["release"].is_null(), "{statement}");
    assert_eq!(predicate["metrics"], json!({}), "{statement}");

    // 500 samples, each waiting 1.5 s for the model: seconds of wall clock,
    // milliseconds of CPU. It runs to its end under the same one-second budget.
    let slow = s
        .builtin_model(&vendor, "slow", "arith?latency_ms=1500")
        .await?;
    s.grant(
        &vendor,
        &slow,
        json!({"tier": "academic"}),
        json!({"budgets": {"cpu_seconds_per_job": 1}}),
    )
    .await?;
    let started = std::time::Instant::now();
    let (status, job) = s.submit_arith(&evaluator, &slow).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let ended = s
        .wait_ended(&evaluator, &str_of(&job, "id")?, Duration::from_secs(120))
        .await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the job took longer than its CPU budget on the wall clock"
    );
    Ok(())
}
