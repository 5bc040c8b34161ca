//! The load generator: `connections` keep-alive HTTP/1.1 connections to the service, each
//! sending one request after the other for a while (a closed loop, as `wrk` does), recording
//! every answer's latency. A warm-up first, whose answers are not counted, fills the service's
//! caches and connection pools. Requests go out on hyper's own connections (no pool, no
//! retries), so what is measured is the service and the loopback, with little of the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Request headers beside `Host`.
pub type Headers = Vec<(HeaderName, HeaderValue)>;

/// One route under load.
pub struct Target {
    /// What the table calls it.
    pub route: String,
    /// The path and query.
    pub path: String,
    /// Headers beside `Host` (a bearer token, `If-None-Match`).
    pub headers: Headers,
    /// The status every answer should have.
    pub expect: StatusCode,
}

/// How long, and how hard.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Connections, each with one request in flight.
    pub connections: usize,
    /// Not counted: fills caches and pools.
    pub warmup: Duration,
    /// Counted.
    pub duration: Duration,
}

/// What one route's load measured.
pub struct Figures {
    /// Answers to requests sent in the counted window.
    pub requests: u64,
    /// Of them, answers with another status than expected.
    pub unexpected: u64,
    /// The first such status, to say which.
    pub first_unexpected: Option<StatusCode>,
    /// The counted window.
    pub window: Duration,
    /// Every counted answer's latency, microseconds, sorted.
    latencies: Vec<u32>,
}

impl Figures {
    /// Answers per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    /// The latency below which a share `q` (0 to 1) of the answers came.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        Duration::from_micros(u64::from(self.latencies[rank - 1]))
    }
}

/// What one connection counted.
#[derive(Default)]
struct Tally {
    unexpected: u64,
    first_unexpected: Option<StatusCode>,
    latencies: Vec<u32>,
}

/// Puts `target` under `load` on the service at `addr`.
pub async fn drive(addr: SocketAddr, target: Arc<Target>, load: Load) -> anyhow::Result<Figures> {
    let counted_from = Instant::now() + load.warmup;
    let until = counted_from + load.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..load.connections {
        tasks.spawn(connection(addr, target.clone(), counted_from, until));
    }
    let mut figures = Figures {
        requests: 0,
        unexpected: 0,
        first_unexpected: None,
        window: load.duration,
        latencies: Vec::new(),
    };
    while let Some(tally) = tasks.join_next().await {
        let tally = tally??;
        figures.unexpected += tally.unexpected;
        figures.first_unexpected = figures.first_unexpected.or(tally.first_unexpected);
        figures.latencies.extend(tally.latencies);
    }
    figures.requests = figures.latencies.len() as u64;
    figures.latencies.sort_unstable();
    Ok(figures)
}

/// One connection's loop: a request, its whole answer, the next request.
async fn connection(
    addr: SocketAddr,
    target: Arc<Target>,
    counted_from: Instant,
    until: Instant,
) -> anyhow::Result<Tally> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .context("connecting to the service")?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Drives the connection's I/O; it ends when `sender` is dropped.
    tokio::spawn(conn);
    let host = HeaderValue::from_str(&addr.to_string())?;
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= until {
            return Ok(tally);
        }
        let mut request = Request::get(target.path.as_str())
            .header(HOST, host.clone())
            .body(Empty::<Bytes>::new())?;
        for (name, value) in &target.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        sender
            .ready()
            .await
            .context("the service closed the connection")?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if sent < counted_from {
            continue;
        }
        let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        tally.latencies.push(micros);
        if status != target.expect {
            tally.unexpected += 1;
            tally.first_unexpected.get_or_insert(status);
        }
    }
}
