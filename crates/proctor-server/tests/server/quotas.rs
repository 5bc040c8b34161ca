//! Per-account quotas: an account that would take more than its share is refused with 429
//! `quota_exceeded`, and another account is not affected.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, TestDb, TestServer, code};

async fn upload(s: &TestServer, token: &str, bytes: &[u8]) -> anyhow::Result<(StatusCode, String)> {
    let (status, body) = s
        .call(
            "POST",
            "/v1/datasets",
            Some(token),
            Body::Bytes(bytes.to_vec()),
        )
        .await?;
    Ok((status, code(&body).to_owned()))
}

/// Every upload attempt counts, a refused one too (it cost a parse, or a compile).
#[tokio::test]
async fn uploads_past_the_hourly_quota_are_refused_before_their_body() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start_with(&db, 0, |c| c.quotas.uploads_per_hour = 3).await?;
    let (_, busy) = s.account("busy", "evaluator", Some("academic")).await?;
    let (_, other) = s.account("other", "evaluator", Some("academic")).await?;
    assert_eq!(
        upload(&s, &busy, b"{\"a\": 1}\n").await?.0,
        StatusCode::CREATED
    );
    assert_eq!(
        upload(&s, &busy, b"not json\n").await?,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_dataset".into())
    );
    let (status, _) = s
        .call(
            "POST",
            "/v1/evals",
            Some(&busy),
            Body::Bytes(b"\0asm".to_vec()),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        upload(&s, &busy, b"{\"a\": 2}\n").await?,
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded".into())
    );
    assert_eq!(
        upload(&s, &other, b"{\"a\": 2}\n").await?.0,
        StatusCode::CREATED
    );
    s.stop().await;
    db.cleanup().await
}

/// What an account holds is bounded; what it holds already can be uploaded again.
#[tokio::test]
async fn an_upload_past_the_storage_quota_is_refused() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start_with(&db, 0, |c| c.quotas.stored_bytes = 100).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let first = format!("{{\"q\": \"{}\"}}\n", "x".repeat(50));
    let second = format!("{{\"q\": \"{}\"}}\n", "y".repeat(50));
    assert_eq!(
        upload(&s, &evaluator, first.as_bytes()).await?.0,
        StatusCode::CREATED
    );
    assert_eq!(
        upload(&s, &evaluator, second.as_bytes()).await?,
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded".into())
    );
    assert_eq!(
        upload(&s, &evaluator, first.as_bytes()).await?.0,
        StatusCode::OK
    );
    s.stop().await;
    db.cleanup().await
}

/// An evaluator's jobs queued or running are bounded; another evaluator submits as usual.
#[tokio::test]
async fn a_job_past_the_unfinished_jobs_quota_is_refused() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    // No workers: submitted jobs stay queued.
    let s = TestServer::start_with(&db, 0, |c| c.quotas.unfinished_jobs = 2).await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, busy) = s.account("busy", "evaluator", Some("academic")).await?;
    let (_, other) = s.account("other", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    for _ in 0..2 {
        let (status, job) = s.submit_arith(&busy, &model).await?;
        assert_eq!(status, StatusCode::CREATED, "{job}");
    }
    let (status, refused) = s.submit_arith(&busy, &model).await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
        "{refused}"
    );
    let (status, job) = s.submit_arith(&other, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    s.stop().await;
    db.cleanup().await
}

/// The time an account's eval uploads spent compiling is bounded per hour; once spent, the
/// next eval upload is refused before it is compiled, datasets and other accounts unaffected.
#[tokio::test]
async fn eval_uploads_past_the_hourly_compile_time_are_refused() -> anyhow::Result<()> {
    use proctor_evals::examples::ARITH_WASM;
    use proctor_evals::test_guests::LOOP_FOREVER;

    let db = TestDb::sqlite()?;
    // Any compile takes more than a millisecond.
    let s = TestServer::start_with(&db, 0, |c| {
        c.quotas.compile_per_hour = std::time::Duration::from_millis(1);
    })
    .await?;
    let (_, busy) = s.account("busy", "evaluator", Some("academic")).await?;
    let (_, other) = s.account("other", "evaluator", Some("academic")).await?;
    let eval = async |token: &str, wasm: &[u8]| {
        s.call("POST", "/v1/evals", Some(token), Body::Bytes(wasm.to_vec()))
            .await
            .map(|(status, body)| (status, code(&body).to_owned()))
    };
    assert_eq!(eval(&busy, ARITH_WASM).await?.0, StatusCode::CREATED);
    assert_eq!(
        eval(&busy, LOOP_FOREVER).await?,
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded".into())
    );
    assert_eq!(
        upload(&s, &busy, b"{\"a\": 1}\n").await?.0,
        StatusCode::CREATED,
        "datasets are not compiled"
    );
    assert_eq!(eval(&other, LOOP_FOREVER).await?.0, StatusCode::CREATED);
    s.stop().await;
    db.cleanup().await
}
