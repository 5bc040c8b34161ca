//! The HTTP listener: how many connections it holds, per client and in all, and how long it
//! waits for a request's head.
//!
//! `axum::serve` sets no timer, so hyper's header-read timeout never fires and a connection
//! that sends half a head (or sits idle between requests) is held for ever: a thousand such
//! connections exhaust the file descriptors and every request fails for everyone. Here each
//! connection is HTTP/1.1 (the service sits behind a TLS-terminating proxy; h2c is not
//! offered) with a header-read timeout that also closes idle keep-alive connections, a
//! client (an IPv4 address, or an IPv6 /64) holds at most `per_client` connections, and the
//! listener holds at most `total`: beyond that it stops accepting, so new connections wait in
//! the kernel's backlog until a slow one times out. Bodies have their own deadline
//! ([`crate::extract`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use proctor_sandbox::CancellationToken;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How the listener treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once; the listener stops accepting at this many.
    pub total: usize,
    /// Connections one client may hold at once; one more is answered 429 and closed.
    pub per_client: usize,
    /// How long a request's head may take to arrive, counted from when the connection is
    /// ready for it: a keep-alive connection idle this long is closed too.
    pub header_timeout: Duration,
    /// How long open connections get to finish their requests at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        // Well under the usual 1024 file descriptors, with room for the database pool, the
        // compile cache and the model endpoints' connections.
        ConnectionLimits {
            total: 512,
            per_client: 64,
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// The answer to a connection over its client's limit, written without waiting on the
/// client: a stable code, as every error body has.
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 92\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"this client holds too many connections\"}}";

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// their requests (up to `limits.drain_timeout`). Accept errors (out of file descriptors,
/// say) are logged and retried after a pause.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.total));
    let clients = Clients::new(limits.per_client);
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and ECONNABORTED are transient; a busy loop on them would spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(client) = clients.admit(peer.ip()) else {
            refuse(stream);
            continue;
        };
        let app = app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, app, limits, stop).await;
            drop(client);
            drop(slot);
        });
    }
    drop(listener);
    stop.cancel();
    // Every connection holds a slot until it is done: all of them back means all are done.
    let all = u32::try_from(limits.total).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.drain_timeout, slots.acquire_many(all)).await;
}

/// One connection, until the client closes it, it times out, or the server stops.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error at shutdown");
    }
}

/// Answers 429 if the socket takes it at once, and closes. Never waits on the client.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(TOO_MANY);
}

/// Connections per client.
#[derive(Clone)]
struct Clients {
    limit: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection of a client; counts until dropped.
struct ClientSlot {
    clients: Clients,
    key: IpAddr,
}

impl Clients {
    fn new(limit: usize) -> Clients {
        Clients {
            limit,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for a connection from `ip`, unless its client holds `limit` already.
    fn admit(&self, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_of(ip);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.clients.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                // The map holds only clients with open connections, so it stays as small as
                // the connection limit.
                held.remove(&self.key);
            }
        }
    }
}

/// Who a connection is counted against: an IPv4 address, or an IPv6 address's /64 (one
/// host usually has a whole /64 to pick addresses from). An IPv4-mapped IPv6 address counts
/// as its IPv4 address.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_response_with_its_length() {
        let text = std::str::from_utf8(TOO_MANY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
    }

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(client_of(a), client_of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_of(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_client_gets_its_limit_and_its_slots_back() {
        let clients = Clients::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let first = clients.admit(ip).unwrap();
        let second = clients.admit(ip).unwrap();
        assert!(clients.admit(ip).is_none());
        assert!(
            clients.admit(other).is_some(),
            "another client is not affected"
        );
        drop(first);
        let third = clients.admit(ip);
        assert!(third.is_some());
        drop((second, third));
        assert!(
            clients.held.lock().unwrap().is_empty(),
            "no client without a connection is kept"
        );
    }
}
