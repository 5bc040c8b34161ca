//! A local endpoint that speaks OpenAI's Chat Completions or Anthropic's Messages as the
//! providers document them, and misbehaves on cue: each request takes the next reply from a
//! script, and the last one repeats. It records what arrived and the most requests it ever had
//! in flight.

#![allow(dead_code)] // Each test binary uses its own part of this.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use proctor_core::{CompletionRequest, Message, Params, Role};
use serde_json::{Value, json};

/// Which protocol the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

/// What the endpoint does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answers `What is A + B?` with the sum (else `OK`), with usage.
    Answer,
    /// Answers, but with no `usage` object.
    AnswerWithoutUsage,
    /// An error status in the provider's error shape, with `Retry-After` when given.
    Status(u16, Option<&'static str>),
    /// Never answers.
    Hang,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with JSON of the wrong shape (OpenAI: no choices; Anthropic: no content).
    Empty,
    /// The provider's way of declining.
    Refusal,
    /// A redirect to another URL.
    Redirect(String),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

struct Inner {
    dialect: Dialect,
    key: Option<String>,
    delay: Duration,
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running fake endpoint.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

/// Counts a request in flight until dropped (also when a hung request's connection goes away).
struct InFlight<'a>(&'a Inner);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Endpoint {
    /// Starts an endpoint on a loopback port. `key`: the credential it demands, if any;
    /// `delay`: how long each answer takes.
    pub async fn start(
        dialect: Dialect,
        key: Option<&str>,
        delay: Duration,
        script: Vec<Reply>,
    ) -> Endpoint {
        let inner = Arc::new(Inner {
            dialect,
            key: key.map(str::to_owned),
            delay,
            script: Mutex::new(script.into()),
            seen: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/v1/messages", post(handle))
            .fallback(any(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Endpoint { addr, inner }
    }

    /// The `base_url` as each provider's SDK takes it.
    pub fn base_url(&self) -> String {
        match self.inner.dialect {
            Dialect::OpenAi => format!("http://{}/v1", self.addr),
            Dialect::Anthropic => format!("http://{}", self.addr),
        }
    }

    /// A configuration for this endpoint, with extra TOML lines.
    pub fn config(&self, extra: &str) -> proctor_models::ModelConfig {
        let adapter = match self.inner.dialect {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
        };
        let text = format!(
            "adapter = \"{adapter}\"\nbase_url = \"{}\"\nmodel = \"test-model\"\n{extra}\n",
            self.base_url()
        );
        proctor_models::ModelConfig::from_toml(&text).expect("a valid configuration")
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.inner.seen.lock().expect("lock").len()
    }

    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(&inner);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.seen.lock().expect("lock").push(Seen {
        at: Instant::now(),
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let expected_path = match inner.dialect {
        Dialect::OpenAi => "/v1/chat/completions",
        Dialect::Anthropic => "/v1/messages",
    };
    if uri.path() != expected_path {
        return error(inner.dialect, 404, "not_found_error", "no such path", None);
    }
    if let Some(refusal) = check_headers(&inner, &headers) {
        return refusal;
    }
    let reply = {
        let mut script = inner.script.lock().expect("lock");
        if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        }
    }
    .unwrap_or(Reply::Answer);
    if !inner.delay.is_zero() {
        tokio::time::sleep(inner.delay).await;
    }
    match reply {
        Reply::Answer => answer(inner.dialect, &body, true),
        Reply::AnswerWithoutUsage => answer(inner.dialect, &body, false),
        Reply::Status(code, retry_after) => {
            let kind = match code {
                429 => "rate_limit_error",
                529 => "overloaded_error",
                c if c >= 500 => "api_error",
                _ => "invalid_request_error",
            };
            error(inner.dialect, code, kind, "scripted failure", retry_after)
        }
        Reply::Hang => std::future::pending().await,
        Reply::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"id\": \"chatcmpl-1\", \"choices\": [",
        )
            .into_response(),
        Reply::Empty => {
            let body = match inner.dialect {
                Dialect::OpenAi => json!({"id": "chatcmpl-1", "object": "chat.completion",
                    "created": 1_700_000_000, "model": "test-model-2025", "choices": []}),
                Dialect::Anthropic => json!({"id": "msg_1", "type": "message",
                    "role": "assistant", "model": "test-model-2025"}),
            };
            axum::Json(body).into_response()
        }
        Reply::Refusal => refusal(inner.dialect, &body),
        Reply::Redirect(to) => {
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)], "").into_response()
        }
    }
}

/// As the providers do: OpenAI wants `Authorization: Bearer`, Anthropic `x-api-key` and an
/// `anthropic-version`.
fn check_headers(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("content-type") != Some("application/json") {
        return Some(error(
            inner.dialect,
            400,
            "invalid_request_error",
            "content-type",
            None,
        ));
    }
    match inner.dialect {
        Dialect::OpenAi => {
            if let Some(key) = &inner.key
                && text("authorization") != Some(&format!("Bearer {key}"))
            {
                return Some(error(
                    inner.dialect,
                    401,
                    "invalid_api_key",
                    "bad key",
                    None,
                ));
            }
        }
        Dialect::Anthropic => {
            if text("anthropic-version") != Some("2023-06-01") {
                return Some(error(
                    inner.dialect,
                    400,
                    "invalid_request_error",
                    "version",
                    None,
                ));
            }
            if let Some(key) = &inner.key
                && text("x-api-key") != Some(key.as_str())
            {
                return Some(error(
                    inner.dialect,
                    401,
                    "authentication_error",
                    "bad key",
                    None,
                ));
            }
        }
    }
    None
}

fn error(
    dialect: Dialect,
    code: u16,
    kind: &str,
    message: &str,
    retry_after: Option<&'static str>,
) -> Response {
    let body = match dialect {
        Dialect::OpenAi => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Dialect::Anthropic => {
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    let mut response = (
        StatusCode::from_u16(code).expect("a status"),
        axum::Json(body),
    )
        .into_response();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(value));
    }
    response
}

/// The last user message's text, in either dialect's request.
fn last_user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// `What is A + B?` → the sum; anything else → `OK`.
pub fn arith(question: &str) -> String {
    let numbers: Vec<i64> = question
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .filter_map(|w| w.parse().ok())
        .collect();
    match (question.contains('+'), numbers.as_slice()) {
        (true, [a, b, ..]) => (a + b).to_string(),
        _ => "OK".to_owned(),
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn answer(dialect: Dialect, request: &Value, with_usage: bool) -> Response {
    let question = last_user(request);
    let text = arith(&question);
    let input: u64 = request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .map(words)
        .sum::<u64>()
        + request["system"].as_str().map_or(0, words);
    let mut body = match dialect {
        Dialect::OpenAi => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "test-model-2025-01-01", "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input, "completion_tokens": 1, "total_tokens": input + 1}
        }),
        Dialect::Anthropic => json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "model": "test-model-2025-01-01",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": 1}
        }),
    };
    if !with_usage && let Some(object) = body.as_object_mut() {
        object.remove("usage");
    }
    axum::Json(body).into_response()
}

fn refusal(dialect: Dialect, _request: &Value) -> Response {
    let body = match dialect {
        Dialect::OpenAi => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "test-model-2025-01-01",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "refusal": "I'm sorry, I can't help with that."}, "logprobs": null,
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
        }),
        Dialect::Anthropic => json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "model": "test-model-2025-01-01", "content": [],
            "stop_reason": "refusal", "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 0}
        }),
    };
    axum::Json(body).into_response()
}

/// `What is a + b?` as the arithmetic example eval asks it.
pub fn question(a: i64, b: i64) -> CompletionRequest {
    CompletionRequest {
        messages: vec![Message {
            role: Role::User,
            content: format!("What is {a} + {b}?"),
        }],
        params: Params {
            max_tokens: 16,
            temperature: Some(0.0),
            stop: Vec::new(),
        },
    }
}
