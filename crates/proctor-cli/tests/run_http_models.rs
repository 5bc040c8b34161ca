//! The real binary against a local HTTP endpoint in each dialect: `proctor run` of the
//! arithmetic example eval with `--model-config`, and `proctor model test`.
//!
//! The endpoint answers `What is A + B?` with the sum, counts tokens the way providers report
//! them, and demands the credential the configuration names through `api_key_env`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use proctor_evals::examples;
use serde_json::{Value, json};

mod support;

const KEY_VAR: &str = "PROCTOR_RUN_HTTP_TEST_KEY";
const KEY: &str = "sk-run-http-test";
/// Tokens the endpoint reports per request.
const PROMPT_TOKENS: u64 = 7;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dialect {
    OpenAi,
    Anthropic,
}

#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    first_body: Mutex<Option<Value>>,
}

/// The endpoint in both dialects, with what it saw.
struct Endpoint {
    addr: SocketAddr,
    seen: Arc<Seen>,
    _serving: support::Endpoint,
}

impl Endpoint {
    fn start() -> Endpoint {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route(
                "/v1/chat/completions",
                post(|s: State<Arc<Seen>>, h: HeaderMap, b: axum::body::Bytes| {
                    answer(Dialect::OpenAi, s, h, b)
                }),
            )
            .route(
                "/v1/messages",
                post(|s: State<Arc<Seen>>, h: HeaderMap, b: axum::body::Bytes| {
                    answer(Dialect::Anthropic, s, h, b)
                }),
            )
            .with_state(seen.clone());
        let serving = support::Endpoint::serve(app, 2);
        Endpoint {
            addr: serving.addr,
            seen,
            _serving: serving,
        }
    }

    /// A configuration file for this endpoint in `dialect`, with extra TOML lines.
    fn config(&self, dir: &Path, dialect: Dialect, extra: &str) -> String {
        let (adapter, base_url) = match dialect {
            Dialect::OpenAi => ("openai", format!("http://{}/v1", self.addr)),
            Dialect::Anthropic => ("anthropic", format!("http://{}", self.addr)),
        };
        let path = dir.join(format!("{adapter}.toml"));
        std::fs::write(
            &path,
            format!(
                "adapter = \"{adapter}\"\nbase_url = \"{base_url}\"\nmodel = \"arith-http\"\n\
                 api_key_env = \"{KEY_VAR}\"\n{extra}\n"
            ),
        )
        .expect("config written");
        path.to_str().expect("UTF-8 path").to_owned()
    }
}

async fn answer(
    dialect: Dialect,
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorized = match dialect {
        Dialect::OpenAi => header("authorization") == Some(&format!("Bearer {KEY}")),
        Dialect::Anthropic => {
            header("x-api-key") == Some(KEY) && header("anthropic-version") == Some("2023-06-01")
        }
    };
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"type": "authentication_error", "message": "bad key"}})),
        )
            .into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    seen.first_body
        .lock()
        .expect("lock")
        .get_or_insert_with(|| request.clone());
    let question = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let text = sum(question).map_or_else(|| "I don't know".to_owned(), |s| s.to_string());
    let body = match dialect {
        Dialect::OpenAi => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "arith-http-2025-01-01",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 1,
                "total_tokens": PROMPT_TOKENS + 1}
        }),
        Dialect::Anthropic => json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "model": "arith-http-2025-01-01",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}
        }),
    };
    axum::Json(body).into_response()
}

/// `What is A + B?` → A + B.
fn sum(question: &str) -> Option<i64> {
    let inner = question.strip_prefix("What is ")?.strip_suffix('?')?;
    let (a, b) = inner.split_once(" + ")?;
    a.trim()
        .parse::<i64>()
        .ok()?
        .checked_add(b.trim().parse().ok()?)
}

fn proctor(args: &[&str], key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proctor"));
    command.args(args).env_remove(KEY_VAR);
    if let Some(key) = key {
        command.env(KEY_VAR, key);
    }
    command.output().expect("the proctor binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_arithmetic_eval_scores_full_accuracy_against_an_endpoint_in_each_dialect() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let eval = tmp.path().join("arith.wasm");
    let dataset = tmp.path().join("arith.jsonl");
    std::fs::write(&eval, examples::ARITH_WASM).expect("eval written");
    std::fs::write(&dataset, examples::ARITH_JSONL).expect("dataset written");
    let items = examples::ARITH_JSONL.lines().count() as u64;
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let endpoint = Endpoint::start();
        let config = endpoint.config(tmp.path(), dialect, "max_concurrency = 32");
        let out = proctor(
            &[
                "run",
                eval.to_str().expect("UTF-8 path"),
                "--dataset",
                dataset.to_str().expect("UTF-8 path"),
                "--model-config",
                &config,
                "--json",
            ],
            Some(KEY),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{dialect:?}: {}",
            text(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(report["samples"]["total"], items, "{dialect:?}");
        assert_eq!(report["samples"]["ok"], items, "{dialect:?}: {report}");
        assert_eq!(report["metrics"]["accuracy"]["mean"], 1.0, "{dialect:?}");
        assert_eq!(report["metrics"]["accuracy"]["n"], items);
        assert_eq!(
            report["usage"],
            json!({"queries": items, "input_tokens": items * PROMPT_TOKENS, "output_tokens": items}),
            "{dialect:?}"
        );
        let adapter = match dialect {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
        };
        assert_eq!(report["model"]["ref"], format!("{adapter}:arith-http"));
        assert_eq!(report["model"]["version"], "arith-http-2025-01-01");
        assert_eq!(endpoint.seen.requests.load(Ordering::SeqCst) as u64, items);
        let first = endpoint
            .seen
            .first_body
            .lock()
            .expect("lock")
            .clone()
            .expect("a request arrived");
        assert_eq!(first["max_tokens"], 16, "{dialect:?}: {first}");
        assert_eq!(first["temperature"], 0.0);
        assert!(
            first.get("stop").is_none() && first.get("stop_sequences").is_none(),
            "an empty stop list is left out: {first}"
        );
    }
}

#[test]
fn model_test_reports_latency_finish_and_usage_and_exits_by_what_failed() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let endpoint = Endpoint::start();
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let config = endpoint.config(tmp.path(), dialect, "");
        let ok = proctor(&["model", "test", "--config", &config], Some(KEY));
        let stdout = text(&ok.stdout);
        assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
        assert!(stdout.contains("latency   "), "{stdout}");
        assert!(stdout.contains("finish    stop"), "{stdout}");
        assert!(
            stdout.contains("usage     reported (7 input tokens, 1 output tokens)"),
            "{stdout}"
        );
        assert!(stdout.contains("arith-http-2025-01-01"), "{stdout}");

        // The endpoint refuses a wrong key: the model failed, exit 1.
        let refused = proctor(&["model", "test", "--config", &config], Some("sk-wrong"));
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        assert!(
            text(&refused.stderr).contains("refused the credential (HTTP 401)"),
            "{}",
            text(&refused.stderr)
        );
        assert!(!text(&refused.stderr).contains("sk-wrong"));

        // No credential in the environment: the configuration is unusable, exit 2.
        let unset = proctor(&["model", "test", "--config", &config], None);
        assert_eq!(unset.status.code(), Some(2), "{unset:?}");
        assert!(
            text(&unset.stderr).contains(KEY_VAR),
            "{}",
            text(&unset.stderr)
        );
    }
    let bad = endpoint.config(tmp.path(), Dialect::OpenAi, "max_concurrency = 0");
    let out = proctor(&["model", "test", "--config", &bad], Some(KEY));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("max_concurrency: must be between 1 and 4096"),
        "{}",
        text(&out.stderr)
    );
}
