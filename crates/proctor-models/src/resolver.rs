//! The host rules at connect time: the client's resolver drops every address the rules refuse,
//! so a name that resolves to 127.0.0.1 or 169.254.169.254 — when the model was registered, or
//! only later (DNS rebinding) — is never connected to.
//!
//! Resolution itself is the system's (getaddrinfo on a blocking thread, as reqwest's default
//! resolver does). A lookup that leaves no address fails with [`AddressesRefused`], which the
//! transport reports as the endpoint being unavailable. Literal addresses in a URL are not
//! resolved (the connector dials them directly): [`HostPolicy::check_url`] rules on them when
//! the model is built.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::hosts::HostPolicy;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resolves names for one model's client, keeping only the addresses `policy` admits on
/// `port` (the URL's, so an allowance for one port admits no other).
#[derive(Debug)]
pub(crate) struct GuardedResolver {
    policy: HostPolicy,
    port: Option<u16>,
}

/// Every address a name resolved to is refused by the host rules.
#[derive(Debug, thiserror::Error)]
#[error("every address {host} resolves to is one the service's host rules refuse")]
pub(crate) struct AddressesRefused {
    host: String,
}

impl GuardedResolver {
    pub(crate) fn new(policy: HostPolicy, port: Option<u16>) -> GuardedResolver {
        GuardedResolver { policy, port }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let port = self.port;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) in its place.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = admitted(&policy, port, host, found.into_iter())?;
            Ok::<Addrs, BoxError>(Box::new(kept.into_iter()))
        })
    }
}

/// The addresses of `found` that `policy` admits; an error when there are none.
fn admitted(
    policy: &HostPolicy,
    port: Option<u16>,
    host: String,
    found: impl Iterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, BoxError> {
    let (kept, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
        found.partition(|a| policy.admits_address(a.ip(), port));
    if !refused.is_empty() {
        let refused: Vec<String> = refused.iter().map(|a| a.ip().to_string()).collect();
        tracing::warn!(
            host = %host,
            refused = %refused.join(", "),
            "a model endpoint's name resolved to addresses the host rules refuse; they are not connected to"
        );
        if kept.is_empty() {
            return Err(Box::new(AddressesRefused { host }));
        }
    }
    if kept.is_empty() {
        return Err(format!("{host} resolved to no address").into());
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use proctor_core::ModelError;
    use reqwest::header::HeaderMap;

    use super::*;
    use crate::http::{RetryPolicy, SharedKey, Transport};

    fn at(ips: &[&str]) -> Vec<SocketAddr> {
        ips.iter()
            .map(|ip| SocketAddr::new(ip.parse::<IpAddr>().expect("an address"), 0))
            .collect()
    }

    fn kept(policy: &HostPolicy, port: u16, ips: &[&str]) -> Result<Vec<String>, String> {
        admitted(policy, Some(port), "h.example".into(), at(ips).into_iter())
            .map(|v| v.iter().map(|a| a.ip().to_string()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn refused_addresses_are_dropped_and_a_name_with_none_left_fails() {
        let service = HostPolicy::service();
        assert_eq!(
            kept(
                &service,
                443,
                &[
                    "127.0.0.1",
                    "::ffff:169.254.169.254",
                    "93.184.215.14",
                    "fd00::1"
                ]
            ),
            Ok(vec!["93.184.215.14".to_owned()])
        );
        let none_left = kept(&service, 443, &["127.0.0.1", "::1", "10.0.0.1"]);
        assert_eq!(
            none_left,
            Err(
                "every address h.example resolves to is one the service's host rules refuse"
                    .to_owned()
            )
        );
        assert_eq!(
            kept(&service, 443, &[]),
            Err("h.example resolved to no address".to_owned())
        );
    }

    #[test]
    fn an_allowed_range_admits_resolved_addresses_on_the_allowed_port_only() {
        let policy = HostPolicy::service_allowing("10.0.0.0/8, 192.168.1.5:8000").expect("valid");
        assert_eq!(
            kept(&policy, 443, &["10.1.2.3", "127.0.0.1"]),
            Ok(vec!["10.1.2.3".to_owned()])
        );
        assert_eq!(
            kept(&policy, 8000, &["192.168.1.5"]),
            Ok(vec!["192.168.1.5".to_owned()])
        );
        assert!(kept(&policy, 9000, &["192.168.1.5"]).is_err());
        assert_eq!(
            kept(&HostPolicy::any(), 80, &["127.0.0.1"]),
            Ok(vec!["127.0.0.1".to_owned()])
        );
    }

    #[tokio::test]
    async fn the_system_resolver_s_loopback_answer_for_localhost_is_refused() {
        let resolver = GuardedResolver::new(HostPolicy::service(), Some(443));
        let name: Name = "localhost".parse().expect("a name");
        let err = match resolver.resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(err.is::<AddressesRefused>(), "{err}");
    }

    /// A listener that counts the connections it accepts and closes each at once.
    async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (port, accepted)
    }

    async fn call(url: &str, hosts: HostPolicy) -> ModelError {
        let key = SharedKey {
            url: url.to_owned(),
            model: "m".into(),
            credential: None,
            max_concurrency: 1,
            requests_per_minute: None,
            hosts,
        };
        let policy = RetryPolicy {
            timeout: Duration::from_secs(5),
            max_attempts: 1,
        };
        let transport =
            Transport::new(key, HeaderMap::new(), policy, "test".into()).expect("a transport");
        transport
            .call(b"{}".to_vec(), |_| Ok(()))
            .await
            .expect_err("the mock never answers")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_that_resolves_to_loopback_is_never_connected_to_under_the_service_rules() {
        let (port, accepted) = counting_listener().await;
        // The URL check would refuse `localhost` by name; the transport is built past it here
        // to show the second line of defence, for a name whose loopback answer comes from DNS.
        let url = format!("http://localhost:{port}/v1/chat/completions");
        let err = call(&url, HostPolicy::service()).await;
        assert_eq!(
            err,
            ModelError::Unavailable(
                "the endpoint's name resolves only to addresses the service does not call (after 1 attempts)"
                    .to_owned()
            )
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection was made");
        // The same request on the user's own machine reaches the listener.
        let err = call(&url, HostPolicy::any()).await;
        assert!(matches!(err, ModelError::Unavailable(_)), "{err:?}");
        assert!(
            accepted.load(Ordering::SeqCst) >= 1,
            "the listener was reached"
        );
    }
}
