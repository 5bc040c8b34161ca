//! A vendor's credential travels sealed: registered once, never shown, opened only by the
//! worker, and sent to the vendor's endpoint (a local OpenAI-compatible mock here) only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Body, TestDb, TestServer, arith_sum, str_of};

const CREDENTIAL: &str = "sk-e2e-credential-77";

#[derive(Default)]
struct Seen {
    authorized: AtomicU64,
    refused: AtomicU64,
}

/// Answers `What is A + B?` with the sum, for requests that carry the credential.
async fn chat(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> (AxumStatus, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {CREDENTIAL}") {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        return (AxumStatus::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    seen.authorized.fetch_add(1, Ordering::SeqCst);
    let question = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let sum = arith_sum(question);
    (
        AxumStatus::OK,
        Json(json!({
            "model": "mock-1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": sum.to_string()},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1}
        })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sealed_credential_reaches_only_the_vendors_endpoint() -> anyhow::Result<()> {
    let seen = Arc::new(Seen::default());
    let mock = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/v1", listener.local_addr()?);
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, mock).await;
    });
    for db in TestDb::all().await? {
        let server = TestServer::start(&db, 1).await?;
        run_with_credential(&server, &endpoint)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    serving.abort();
    assert_eq!(
        seen.refused.load(Ordering::SeqCst),
        0,
        "every call carried the key"
    );
    assert!(seen.authorized.load(Ordering::SeqCst) >= 500);
    Ok(())
}

async fn run_with_credential(s: &TestServer, endpoint: &str) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("regulator")).await?;
    let (status, model) = s
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(json!({
                "name": "hosted", "version": "2026-02",
                "config": {"adapter": "openai", "model": "mock-1", "base_url": endpoint},
                "credential": CREDENTIAL,
            })),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    s.grant(
        &vendor,
        &str_of(&model, "id")?,
        json!({"tier": "regulator"}),
        json!({}),
    )
    .await?;
    let (status, job) = s.submit_arith(&evaluator, &str_of(&model, "id")?).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let path = format!("/v1/jobs/{}", str_of(&job, "id")?);
    let started = Instant::now();
    let job = loop {
        let (_, job) = s.call("GET", &path, Some(&evaluator), Body::None).await?;
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            break job;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "stuck: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, result) = s
        .call(
            "GET",
            &format!("{path}/result"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    let report = &result["report"];
    assert_eq!(report["metrics"]["accuracy"]["mean"], 1.0, "{report}");
    assert_eq!(report["model"]["version"], "2026-02", "{report}");
    assert_eq!(report["usage"]["queries"], 500, "{report}");
    assert!(!result.to_string().contains(CREDENTIAL));
    Ok(())
}

/// The database file the server creates holds hashed tokens and sealed credentials: it and its
/// write-ahead log are readable by their owner only.
#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_is_created_readable_by_its_owner_only() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let db = TestDb::sqlite()?;
    let path = db.sqlite_path.clone().expect("a file-backed database");
    assert!(!path.exists(), "the server creates it");
    let s = TestServer::start(&db, 0).await?;
    s.account("acme", "vendor", None).await?;
    for file in [path.clone(), path.with_extension("db-wal")] {
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: {mode:o}", file.display());
    }
    s.stop().await;
    db.cleanup().await
}

/// Every file the server writes into its data directory (the service key, the credential key,
/// the last signed head and its lock) is readable by its owner only; the compile cache is a
/// directory of compiled evals, which hold no secret.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directorys_files_are_readable_by_their_owner_only() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let db = TestDb::sqlite()?;
    let data = tempfile::tempdir()?;
    let s = TestServer::start_at(&db, data.path(), 1, Duration::from_secs(6), 3).await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    let (_, job) = s.submit_arith(&evaluator, &model).await?;
    s.wait_ended(&evaluator, &str_of(&job, "id")?, Duration::from_secs(60))
        .await?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(data.path())? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let mode = entry.metadata()?.permissions().mode() & 0o777;
            files.push((entry.file_name().to_string_lossy().into_owned(), mode));
        }
    }
    assert!(files.len() >= 3, "the keys and the head: {files:?}");
    for (name, mode) in &files {
        assert_eq!(*mode, 0o600, "{name}: {mode:o}");
    }
    s.stop().await;
    db.cleanup().await
}
