//! Raw model text never persists: after a job whose model answers with a distinctive string
//! (and fails some requests with that string in its error bodies), the string is nowhere in
//! the database, the data directory, the API's answers to any party, or the service's logs
//! (captured at debug level, trace for Proctor's own crates).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

use crate::common::{Body, TestDb, TestServer, arith_sum, str_of};

/// What the model says, beside the sum: no table, log line or response may hold it.
const SECRET: &str = "Zebra-Quartz-7f3a harmonica";

/// Every log line of this test binary, from the moment the first test asks for it.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,proctor_server=trace,proctor_sandbox=trace,proctor_models=trace,\
                 proctor_store=trace,proctor_core=trace",
            ))
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test sets a global subscriber");
        logs
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Calls(AtomicU64);

/// An OpenAI-compatible endpoint that answers the sum followed by the secret; every 7th
/// request is refused (400) and every 11th fails (500), each with the secret in its error
/// body, so error paths are exercised too.
async fn chat(
    State(calls): State<Arc<Calls>>,
    Json(request): Json<Value>,
) -> (AxumStatus, Json<Value>) {
    let n = calls.0.fetch_add(1, Ordering::SeqCst) + 1;
    if n % 7 == 0 {
        return (
            AxumStatus::BAD_REQUEST,
            Json(json!({"error": {"message": format!("cannot answer: {SECRET}")}})),
        );
    }
    if n % 11 == 0 {
        return (
            AxumStatus::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": format!("overloaded: {SECRET}")}})),
        );
    }
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
            "choices": [{"index": 0, "message": {"role": "assistant",
                         "content": format!("{sum}. {SECRET}")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4}
        })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_table_file_response_or_log_line_holds_the_models_text() -> anyhow::Result<()> {
    let logs = captured_logs();
    let calls = Arc::new(Calls::default());
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/v1", listener.local_addr()?);
    let mock = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    for db in TestDb::all().await? {
        let data = tempfile::tempdir()?;
        let s = TestServer::start_at(&db, data.path(), 1, Duration::from_secs(6), 3).await?;
        let answered = calls.0.load(Ordering::SeqCst);
        let seen = run_and_collect(&s, &endpoint)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        s.stop().await;
        assert!(
            calls.0.load(Ordering::SeqCst) >= answered + 500,
            "the model answered every sample"
        );

        let mut stored = scan_dir(data.path())?;
        stored.extend(database_text(&db).await?);
        // The scans see what is there: the model's registered name is stored.
        assert!(contains(&stored, b"hosted-mock"), "the scan reads the data");
        assert!(
            !contains(&stored, SECRET.as_bytes()),
            "the model's text was stored ({})",
            db.label
        );
        assert!(
            !contains(&seen, SECRET.as_bytes()),
            "an API answer holds the model's text"
        );
        db.cleanup().await?;
    }
    mock.abort();
    let logs = logs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(
        contains(&logs, b"job ended"),
        "the capture holds the service's log"
    );
    assert!(
        !contains(&logs, SECRET.as_bytes()),
        "a log line holds the model's text"
    );
    Ok(())
}

/// Runs the arith job against the mock; returns every API answer any party got about it.
async fn run_and_collect(s: &TestServer, endpoint: &str) -> anyhow::Result<Vec<u8>> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let (status, model) = s
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(json!({
                "name": "hosted-mock", "version": "1",
                "config": {"adapter": "openai", "model": "mock-1", "base_url": endpoint,
                           "max_attempts": 1}
            })),
        )
        .await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{model}");
    let model = str_of(&model, "id")?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{job}");
    let job = str_of(&job, "id")?;
    let ended = s
        .wait_ended(&evaluator, &job, Duration::from_secs(60))
        .await?;
    anyhow::ensure!(ended["status"] == "succeeded", "{ended}");
    let mut seen = Vec::new();
    for (path, token) in [
        (format!("/v1/jobs/{job}"), Some(&evaluator)),
        (format!("/v1/jobs/{job}/result"), Some(&evaluator)),
        ("/v1/jobs".to_owned(), Some(&evaluator)),
        (format!("/v1/attestations/{job}"), None),
        ("/v1/log/entries".to_owned(), None),
        ("/v1/usage".to_owned(), Some(&vendor)),
        ("/metrics".to_owned(), None),
    ] {
        let (status, body) = s
            .call_raw("GET", &path, token.map(String::as_str), Body::None)
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status}");
        seen.extend(body);
    }
    // The result shows the errors happened (counted), not what they said.
    let (_, result) = s
        .call(
            "GET",
            &format!("/v1/jobs/{job}/result"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    let failed = &result["report"]["samples"]["failed"];
    anyhow::ensure!(
        failed["model-unavailable"].as_u64().unwrap_or(0) > 0,
        "{result}"
    );
    Ok(seen)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, concatenated (the SQLite database, its WAL, keys, the compile
/// cache).
fn scan_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            bytes.extend(scan_dir(&path)?);
        } else {
            bytes.extend(std::fs::read(&path)?);
        }
    }
    Ok(bytes)
}

/// The database's contents: SQLite's files, or every PostgreSQL table's rows as text.
async fn database_text(db: &TestDb) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = &db.sqlite_path {
        let dir = path.parent().ok_or_else(|| anyhow::anyhow!("no parent"))?;
        return scan_dir(dir);
    }
    let mut conn = PgConnection::connect(&db.url).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await?;
    anyhow::ensure!(tables.len() > 5, "{tables:?}");
    let mut text = Vec::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT t::text AS row FROM \"{table}\" t"))
            .fetch_all(&mut conn)
            .await?;
        for row in rows {
            let row: String = row.try_get("row")?;
            text.extend(row.into_bytes());
        }
    }
    conn.close().await?;
    Ok(text)
}
