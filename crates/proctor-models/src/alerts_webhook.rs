//! Usage alerts' webhooks: a vendor's URL, checked by the same host rules as a model's
//! `base_url` ([`HostPolicy`]: public hosts over https unless the operator allows more, and
//! every address a name resolves to checked when connecting, so a name cannot rebind to the
//! service's own network), and one signed POST to it.
//!
//! The signature is HMAC-SHA256 under the webhook's secret over `"{t}.{body}"`, `t` the Unix
//! time in seconds, sent as `Proctor-Signature: t={t},v1={hex}`: a receiver recomputes it,
//! compares in constant time and refuses a `t` far from its clock, so a captured delivery
//! cannot be replayed later. Redirects are not followed (one could lead to a refused host).

use std::sync::Arc;
use std::time::Duration;

use ring::hmac;

use crate::hosts::{HostPolicy, HostRefused};
use crate::resolver::GuardedResolver;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "proctor-signature";
/// How long one delivery may take, connection included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why a webhook URL is refused or a delivery failed. Carries no secret.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not an http(s) URL.
    #[error("webhook: not an http or https URL")]
    NotHttp,
    /// Longer than [`MAX_URL_LEN`].
    #[error("webhook: the URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    /// The host rules refuse its host.
    #[error("webhook: {0}")]
    Host(#[from] HostRefused),
    /// The request could not be sent, or got no answer in time.
    #[error("webhook: the request failed: {0}")]
    Failed(String),
    /// The receiver answered with a status other than 2xx.
    #[error("webhook: the receiver answered {0}")]
    Status(u16),
}

/// Parses and checks a webhook URL against `hosts`.
///
/// # Errors
///
/// [`WebhookError::NotHttp`], [`WebhookError::TooLong`], [`WebhookError::Host`].
pub fn check_webhook_url(hosts: &HostPolicy, text: &str) -> Result<url::Url, WebhookError> {
    if text.len() > MAX_URL_LEN {
        return Err(WebhookError::TooLong);
    }
    let url = url::Url::parse(text).map_err(|_| WebhookError::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookError::NotHttp);
    }
    hosts.check_url(&url)?;
    Ok(url)
}

/// The `Proctor-Signature` value of `body` sent at `t` (Unix seconds) under `secret`.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex_lower(ctx.sign().as_ref()))
}

/// Whether `header` is a valid signature of `body` under `secret` (in constant time), and
/// its time.
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8]) -> Option<u64> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = decode_hex(value),
            _ => {}
        }
    }
    let (t, v1) = (t?, v1?);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = t.to_string().into_bytes();
    message.push(b'.');
    message.extend_from_slice(body);
    hmac::verify(&key, &message, &v1).ok().map(|()| t)
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// POSTs `body` (JSON) to `url`, signed at `t` under `secret`, under `hosts`; `Ok` on a 2xx
/// answer.
///
/// # Errors
///
/// A refused URL, a failed request or a non-2xx status ([`WebhookError`]).
pub async fn deliver(
    hosts: &HostPolicy,
    url: &str,
    secret: &[u8],
    t: u64,
    body: Vec<u8>,
) -> Result<(), WebhookError> {
    let url = check_webhook_url(hosts, url)?;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DELIVERY_TIMEOUT)
        .user_agent(concat!("proctor/", env!("CARGO_PKG_VERSION")));
    if hosts.guards_resolution_for(&url) {
        builder = builder.dns_resolver(Arc::new(GuardedResolver::new(
            hosts.clone(),
            url.port_or_known_default(),
        )));
    }
    let client = builder
        .build()
        .map_err(|e| WebhookError::Failed(e.without_url().to_string()))?;
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(secret, t, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| WebhookError::Failed(e.without_url().to_string()))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(WebhookError::Status(status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_or_secret_does_not() {
        let header = signature(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(
            verify_signature(b"secret", &header, b"{\"a\":1}"),
            Some(1_700_000_000)
        );
        assert_eq!(verify_signature(b"secret", &header, b"{\"a\":2}"), None);
        assert_eq!(verify_signature(b"other", &header, b"{\"a\":1}"), None);
    }

    #[test]
    fn the_service_rules_refuse_a_loopback_or_plain_http_webhook() {
        let rules = HostPolicy::service();
        assert!(matches!(
            check_webhook_url(&rules, "https://127.0.0.1/hook"),
            Err(WebhookError::Host(_))
        ));
        assert!(matches!(
            check_webhook_url(&rules, "http://example.com/hook"),
            Err(WebhookError::Host(_))
        ));
        assert!(matches!(
            check_webhook_url(&rules, "ftp://example.com/hook"),
            Err(WebhookError::NotHttp)
        ));
        assert!(check_webhook_url(&rules, "https://example.com/hook").is_ok());
    }
}
