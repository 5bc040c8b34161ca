//! Sending one model request over HTTP, politely and robustly: the shared client and limits of
//! a model, one attempt, and the retry loop around it.
//!
//! The rules, in one place:
//! - Each attempt is bounded by `timeout_s`. The whole call is bounded by
//!   `max_attempts × timeout_s`, waits between attempts included and time queued behind the
//!   model's own concurrency and rate limits excluded (that queue is Proctor's politeness, not
//!   the endpoint's slowness, and the sample timeout bounds it). So the defaults (60 s × 4)
//!   fit inside the standard policy's 300 s sample timeout. A wait that would end past the
//!   deadline ends the call at once, and the last attempt gets only what is left.
//! - Retried: 408, 425, 429, every 5xx, a connection that fails or hangs, and a 2xx whose body
//!   is not the protocol's shape (malformed JSON, no choices). That last one is treated like a
//!   5xx: a truncated body or a misbehaving proxy is the usual cause, and if the endpoint
//!   keeps doing it the call still ends, as `unavailable`, after `max_attempts`.
//! - Not retried: every other 4xx (the same request would get the same answer) and any 3xx.
//!   Redirects are never followed, so the credential goes to the configured endpoint only and
//!   no answer can point a request past the host rules (`hosts.rs`); both become `rejected`
//!   with a host-written message.
//! - Under the service's host rules the client resolves names through `resolver.rs`, which
//!   drops refused addresses: such a request fails as `unavailable` without connecting.
//! - Waits: `Retry-After` (seconds or an HTTP date) or `retry-after-ms` when the endpoint sends
//!   one, capped at [`MAX_RETRY_AFTER`]; otherwise exponential backoff from [`BACKOFF_BASE`]
//!   with equal jitter, capped at [`MAX_BACKOFF`]. A `Retry-After` pauses every request to
//!   the model, not only this one.
//! - Nothing from the endpoint's body is logged or put in an error: an error body can echo
//!   the prompt. The credential travels in a header marked sensitive.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use proctor_core::ModelError;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

use crate::error::ConfigError;
use crate::hosts::HostPolicy;
use crate::limits::Limits;
use crate::resolver::{AddressesRefused, GuardedResolver};

/// First backoff; doubled on each further failure.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest backoff between two attempts when the endpoint named no wait.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Longest wait Proctor honours from `Retry-After`: past a minute, the sample is better off
/// failing as `unavailable` than holding its slot.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Largest response body read; a chat completion is far smaller.
const MAX_BODY_BYTES: usize = 8 << 20;
/// Time allowed to open a connection (the attempt's own timeout still applies if shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an attempt may take and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Bound on one attempt.
    pub(crate) timeout: Duration,
    /// Attempts before the call fails as `unavailable`; at least 1.
    pub(crate) max_attempts: u32,
}

/// What identifies a model's shared client and limits: two configurations that agree on all of
/// it share them, so every job in the process is counted against the same limits. The limits
/// are part of the key, so a changed limit applies to jobs built after the change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SharedKey {
    /// The full request URL.
    pub(crate) url: String,
    /// The model name at the endpoint.
    pub(crate) model: String,
    /// SHA-256 of the credential: vendors' limits are per key, and the key itself is not kept
    /// in the map.
    pub(crate) credential: Option<[u8; 32]>,
    /// In-flight requests allowed.
    pub(crate) max_concurrency: u32,
    /// Request starts allowed per minute.
    pub(crate) requests_per_minute: Option<u32>,
    /// The host rules the client connects under.
    pub(crate) hosts: HostPolicy,
}

/// The pooled client and the limits of one model, shared by all jobs in the process.
#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    limits: Limits,
}

/// Live shared entries. Weak, so a model no job uses any more frees its connections.
static SHARED: LazyLock<Mutex<HashMap<SharedKey, Weak<Shared>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn shared_for(key: SharedKey, url: &reqwest::Url) -> Result<Arc<Shared>, ConfigError> {
    let mut map = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(live) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(live);
    }
    map.retain(|_, entry| entry.strong_count() > 0);
    let mut builder = reqwest::Client::builder()
        // Following a redirect could carry the credential to another host, or the request
        // to one the host rules refuse.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .user_agent(concat!("proctor/", env!("CARGO_PKG_VERSION")));
    if key.hosts.guards_resolution_for(url) {
        // One client serves one URL, so the resolver may judge addresses by its port.
        builder = builder.dns_resolver(Arc::new(GuardedResolver::new(
            key.hosts.clone(),
            url.port_or_known_default(),
        )));
    }
    let client = builder
        .build()
        .map_err(|e| ConfigError::Client(e.without_url().to_string()))?;
    let shared = Arc::new(Shared {
        client,
        limits: Limits::new(key.max_concurrency, key.requests_per_minute),
    });
    map.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}

/// The way to one model's endpoint: URL, headers (credential included), limits, retry rules.
#[derive(Debug)]
pub(crate) struct Transport {
    shared: Arc<Shared>,
    url: reqwest::Url,
    headers: HeaderMap,
    policy: RetryPolicy,
    /// The model's reference, for log lines.
    label: String,
}

/// How one attempt ended.
enum Attempt<T> {
    Answered(T),
    /// Worth another attempt; `why` is host-written.
    Failed {
        why: String,
        retry_after: Option<Duration>,
    },
    /// The endpoint will not take this request; host-written.
    Refused(String),
}

impl Transport {
    /// A transport to `url` sharing the client and limits of every other transport with `key`.
    pub(crate) fn new(
        key: SharedKey,
        headers: HeaderMap,
        policy: RetryPolicy,
        label: String,
    ) -> Result<Transport, ConfigError> {
        let url = reqwest::Url::parse(&key.url).map_err(|_| ConfigError::Invalid {
            key: "base_url",
            reason: "is not a valid URL".to_owned(),
        })?;
        Ok(Transport {
            shared: shared_for(key, &url)?,
            url,
            headers,
            policy,
            label,
        })
    }

    /// POSTs `body` until `decode` accepts an answer, the endpoint refuses, or the attempts or
    /// the deadline run out (see the module's rules).
    pub(crate) async fn call<T>(
        &self,
        body: Vec<u8>,
        decode: impl Fn(&[u8]) -> Result<T, &'static str>,
    ) -> Result<T, ModelError> {
        let budget = self.policy.timeout * self.policy.max_attempts;
        let mut spent = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let leave = self.shared.limits.acquire().await;
            let allowed = self.policy.timeout.min(budget.saturating_sub(spent));
            let started = Instant::now();
            let outcome = tokio::time::timeout(allowed, self.attempt(body.clone(), &decode)).await;
            drop(leave);
            spent += started.elapsed();
            let (why, retry_after) = match outcome {
                Ok(Attempt::Answered(value)) => return Ok(value),
                Ok(Attempt::Refused(message)) => {
                    tracing::debug!(model = %self.label, attempt, "the endpoint refused a request");
                    return Err(ModelError::Rejected(message));
                }
                Ok(Attempt::Failed { why, retry_after }) => (why, retry_after),
                Err(_) => (format!("no answer within {}", seconds(allowed)), None),
            };
            if attempt >= self.policy.max_attempts {
                tracing::warn!(model = %self.label, attempt, reason = %why, "a model request failed");
                return Err(ModelError::Unavailable(format!(
                    "{why} (after {attempt} attempts)"
                )));
            }
            let wait = retry_after.unwrap_or_else(|| backoff(attempt));
            if spent + wait >= budget {
                tracing::warn!(model = %self.label, attempt, reason = %why, "a model request ran out of time");
                return Err(ModelError::Unavailable(format!(
                    "{why}; a further attempt would pass the request's deadline of {} (after {attempt} attempts)",
                    seconds(budget)
                )));
            }
            tracing::debug!(
                model = %self.label,
                attempt,
                reason = %why,
                wait_ms = wait.as_millis() as u64,
                "retrying a model request"
            );
            if retry_after.is_some() {
                self.shared.limits.pause_until(Instant::now() + wait);
            }
            tokio::time::sleep(wait).await;
            spent += wait;
        }
    }

    async fn attempt<T>(
        &self,
        body: Vec<u8>,
        decode: &impl Fn(&[u8]) -> Result<T, &'static str>,
    ) -> Attempt<T> {
        let sent = self
            .shared
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                let connect = e.is_connect();
                let e = e.without_url();
                tracing::debug!(model = %self.label, error = %chain(&e), "a model request could not be sent");
                let why = if refused_by_host_rules(&e) {
                    "the endpoint's name resolves only to addresses the service does not call"
                } else if connect {
                    "could not connect to the endpoint"
                } else {
                    "the connection failed before the endpoint answered"
                };
                return Attempt::Failed {
                    why: why.to_owned(),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = read_body(response).await;
        if status.is_success() {
            return match body {
                Ok(bytes) => match decode(&bytes) {
                    Ok(value) => Attempt::Answered(value),
                    Err(what) => Attempt::Failed {
                        why: format!("the endpoint's answer was not usable: {what}"),
                        retry_after: None,
                    },
                },
                Err(why) => Attempt::Failed {
                    why: why.to_owned(),
                    retry_after: None,
                },
            };
        }
        if is_retryable(status) {
            return Attempt::Failed {
                why: format!("the endpoint answered HTTP {}", status.as_u16()),
                retry_after,
            };
        }
        Attempt::Refused(refusal(status))
    }
}

/// 408, 425, 429 and 5xx may succeed later; Anthropic's 529 (overloaded) is a 5xx.
fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429) || status.is_server_error()
}

/// The host-written text a guest sees when the endpoint refuses a request.
fn refusal(status: StatusCode) -> String {
    let code = status.as_u16();
    match code {
        300..=399 => format!(
            "the endpoint answered with a redirect (HTTP {code}), which Proctor does not follow; check base_url"
        ),
        401 | 403 => format!("the endpoint refused the credential (HTTP {code})"),
        404 => format!("the endpoint has no such model or path (HTTP {code})"),
        413 => format!("the endpoint refused the request as too large (HTTP {code})"),
        _ => format!("the endpoint refused the request (HTTP {code})"),
    }
}

/// Reads the body, refusing one past [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, &'static str> {
    let hint = response.content_length().unwrap_or(0) as usize;
    let mut body = Vec::with_capacity(hint.min(MAX_BODY_BYTES));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err("the endpoint's answer was larger than 8 MiB");
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err("the connection failed while reading the endpoint's answer"),
        }
    }
}

/// The wait the endpoint asked for: `retry-after-ms` (OpenAI, Azure) when present, else
/// `Retry-After` as seconds or an HTTP date; capped at [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let non_negative = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
    let wait = if let Some(ms) = text("retry-after-ms").and_then(non_negative) {
        Duration::from_secs_f64(ms.min(MAX_RETRY_AFTER.as_secs_f64() * 1000.0) / 1000.0)
    } else {
        let value = text(RETRY_AFTER.as_str())?;
        match non_negative(value) {
            Some(secs) => Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())),
            None => {
                let when = httpdate::parse_http_date(value).ok()?;
                when.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
            }
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Exponential backoff after `failures` failed attempts, with equal jitter: half the step
/// fixed, half random, so that requests that failed together do not return together.
pub(crate) fn backoff(failures: u32) -> Duration {
    let step = BACKOFF_BASE
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = step / 2;
    half + half.mul_f64(unit_random())
}

/// A number in [0, 1) from the OS; jitter needs no more, and a failure to read it costs only
/// the jitter.
fn unit_random() -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Whether the resolver found no address the host rules admit.
fn refused_by_host_rules(e: &reqwest::Error) -> bool {
    use std::error::Error;
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<AddressesRefused>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// An error and its sources on one line.
fn chain(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("test header"));
        }
        map
    }

    #[test]
    fn retry_after_is_read_as_seconds_milliseconds_or_a_date_and_capped() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")])),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3"), ("retry-after-ms", "120")])),
            Some(Duration::from_millis(120))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "86400")])),
            Some(MAX_RETRY_AFTER)
        );
        let in_ten = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
        let wait = retry_after(&headers(&[("retry-after", &in_ten)])).expect("a date");
        assert!(wait > Duration::from_secs(8) && wait <= Duration::from_secs(10));
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(10));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)])),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        for failures in 1..=10 {
            let step = BACKOFF_BASE
                .saturating_mul(1 << (failures - 1))
                .min(MAX_BACKOFF);
            let wait = backoff(failures);
            assert!(
                wait >= step / 2 && wait <= step,
                "{wait:?} after {failures} failures"
            );
        }
        assert!(backoff(u32::MAX) <= MAX_BACKOFF);
    }

    #[test]
    fn only_statuses_that_may_change_are_retried() {
        for code in [408, 425, 429, 500, 502, 503, 504, 529] {
            assert!(
                is_retryable(StatusCode::from_u16(code).expect("status")),
                "{code}"
            );
        }
        for code in [301, 400, 401, 403, 404, 413, 422] {
            assert!(
                !is_retryable(StatusCode::from_u16(code).expect("status")),
                "{code}"
            );
        }
        assert_eq!(
            refusal(StatusCode::BAD_REQUEST),
            "the endpoint refused the request (HTTP 400)"
        );
    }
}
