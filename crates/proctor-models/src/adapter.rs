//! An HTTP model: a protocol dialect (how requests and answers are spelled) over a
//! [`Transport`] (how they travel). The dialects live in `openai.rs` and `anthropic.rs`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use proctor_core::{Completion, CompletionRequest, Model, ModelDescriptor, ModelError};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::credential::Credential;
use crate::error::ConfigError;
use crate::http::Transport;

/// Longest model version taken from an endpoint's answer; it ends up in attestations.
const MAX_REPORTED_VERSION: usize = 128;

/// How one protocol spells a request and an answer.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// The request URL for a configured `base_url` (validated, no trailing slash).
    fn url(base_url: &str) -> String;

    /// The protocol's headers, the credential's among them.
    fn headers(credential: Option<&Credential>) -> Result<HeaderMap, ConfigError>;

    /// The request body.
    fn encode(&self, model: &str, request: &CompletionRequest) -> Result<Vec<u8>, ModelError>;

    /// Reads a 2xx body; an `Err` says, in host-written words, what was wrong with it.
    fn decode(body: &[u8]) -> Result<Decoded, &'static str>;
}

/// An answer as a dialect read it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    /// The completion handed to the guest.
    pub(crate) completion: Completion,
    /// Whether the endpoint counted tokens (else both counts are 0).
    pub(crate) usage_reported: bool,
    /// The `model` field of the answer, when present.
    pub(crate) model: Option<String>,
}

/// A model behind an HTTP endpoint.
#[derive(Debug)]
pub(crate) struct HttpModel<D> {
    dialect: D,
    transport: Transport,
    model: String,
    reference: String,
    configured_version: Option<String>,
    /// The `model` field of the first answer, used as the version when none is configured.
    reported_version: OnceLock<String>,
    /// Set once the missing usage has been logged, so it is logged once per model.
    warned_no_usage: AtomicBool,
}

impl<D: Dialect> HttpModel<D> {
    pub(crate) fn new(
        dialect: D,
        transport: Transport,
        model: String,
        reference: String,
        configured_version: Option<String>,
    ) -> HttpModel<D> {
        HttpModel {
            dialect,
            transport,
            model,
            reference,
            configured_version,
            reported_version: OnceLock::new(),
            warned_no_usage: AtomicBool::new(false),
        }
    }

    /// One request, answered with what the dialect read from it.
    pub(crate) async fn exchange(
        &self,
        request: &CompletionRequest,
    ) -> Result<Decoded, ModelError> {
        let body = self.dialect.encode(&self.model, request)?;
        let decoded = self.transport.call(body, D::decode).await?;
        if self.configured_version.is_none()
            && let Some(version) = decoded.model.as_deref().and_then(printable)
        {
            let _ = self.reported_version.set(version);
        }
        if !decoded.usage_reported && !self.warned_no_usage.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                model = %self.reference,
                "the endpoint reported no token usage; its requests count 0 tokens"
            );
        }
        Ok(decoded)
    }
}

#[async_trait]
impl<D: Dialect> Model for HttpModel<D> {
    fn descriptor(&self) -> ModelDescriptor {
        let version = self
            .configured_version
            .clone()
            .or_else(|| self.reported_version.get().cloned())
            .unwrap_or_else(|| self.model.clone());
        ModelDescriptor {
            reference: self.reference.clone(),
            name: self.model.clone(),
            version,
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        Ok(self.exchange(&request).await?.completion)
    }
}

/// The endpoint's model name made safe for an attestation: printable ASCII, bounded; `None`
/// when nothing is left.
fn printable(text: &str) -> Option<String> {
    let kept: String = text
        .chars()
        .filter(char::is_ascii_graphic)
        .take(MAX_REPORTED_VERSION)
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// The headers every dialect sends: a JSON body, a JSON answer.
pub(crate) fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let json = HeaderValue::from_static("application/json");
    headers.insert(CONTENT_TYPE, json.clone());
    headers.insert(ACCEPT, json);
    headers
}

/// A token count from the wire, saturated into the guest's `u32`.
pub(crate) fn tokens(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_version_is_kept_printable_and_short() {
        assert_eq!(
            printable("gpt-4o-2024-08-06").as_deref(),
            Some("gpt-4o-2024-08-06")
        );
        assert_eq!(printable("a\u{1b}[31mb c").as_deref(), Some("a[31mbc"));
        assert_eq!(printable(" \n"), None);
        assert_eq!(printable(&"x".repeat(500)).map(|v| v.len()), Some(128));
    }
}
