//! Slow and greedy clients at the connection level: half-sent heads, idle keep-alive
//! connections, one client holding many connections. Each is closed or refused on time, and
//! a client that behaves is served meanwhile.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use proctor_server::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{TestDb, TestServer};

/// A second loopback address: Linux routes all of 127/8 to the loopback device, so a client
/// bound to it is another client to the server.
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

const LIMITS: ConnectionLimits = ConnectionLimits {
    total: 256,
    per_client: 16,
    header_timeout: Duration::from_secs(1),
    drain_timeout: Duration::from_secs(1),
};

async fn start(db: &TestDb) -> anyhow::Result<(TestServer, String)> {
    let s = TestServer::start_with(db, 0, |c| c.connections = LIMITS).await?;
    let addr = s.base.trim_start_matches("http://").to_owned();
    Ok((s, addr))
}

/// Reads until the server closes the connection (or resets it); what it said before.
async fn until_closed(conn: &mut TcpStream, within: Duration) -> anyhow::Result<String> {
    let mut said = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => said.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    anyhow::ensure!(
        read.is_ok(),
        "the connection was still open after {within:?}"
    );
    Ok(String::from_utf8_lossy(&said).into_owned())
}

/// A GET of `/healthz` from `OTHER_CLIENT`, timed.
async fn healthz_from_other_client(base: &str) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder()
        .local_address(OTHER_CLIENT)
        .build()?;
    let started = Instant::now();
    let resp = client.get(format!("{base}/healthz")).send().await?;
    anyhow::ensure!(resp.status().is_success(), "healthz: {}", resp.status());
    Ok(started.elapsed())
}

/// Slowloris: connections that send half a head and stop are closed once the header timeout
/// passes (they were held for ever), and another client is served meanwhile.
#[tokio::test]
async fn half_sent_heads_are_closed_after_the_header_timeout_while_others_are_served()
-> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let (s, addr) = start(&db).await?;
    let mut slow = Vec::new();
    for _ in 0..LIMITS.per_client {
        let mut conn = TcpStream::connect(&addr).await?;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await?;
        slow.push(conn);
    }
    let took = healthz_from_other_client(&s.base).await?;
    assert!(
        took < Duration::from_secs(5),
        "a behaving client waited {took:?}"
    );
    let started = Instant::now();
    for conn in &mut slow {
        until_closed(conn, Duration::from_secs(10)).await?;
    }
    let closed_after = started.elapsed();
    assert!(
        closed_after < Duration::from_secs(5),
        "the slow connections were closed only after {closed_after:?}"
    );
    // Their slots are free again: the same client is served.
    let resp = s.client.get(format!("{}/healthz", s.base)).send().await?;
    assert!(resp.status().is_success());
    s.stop().await;
    db.cleanup().await
}

/// A keep-alive connection that sits idle after its request is closed after the header
/// timeout, so idle connections cannot pile up either.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let (s, addr) = start(&db).await?;
    let mut conn = TcpStream::connect(&addr).await?;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).await?;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Nothing more is sent; the server closes the connection on its own.
    until_closed(&mut conn, Duration::from_secs(5)).await?;
    s.stop().await;
    db.cleanup().await
}

/// One client may hold `per_client` connections: one more is answered 429 with a stable code
/// and closed at once, while another client is served as usual.
#[tokio::test]
async fn a_client_over_its_connection_limit_gets_429_and_others_are_served() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let (s, addr) = start(&db).await?;
    let mut held = Vec::new();
    for _ in 0..LIMITS.per_client {
        let mut conn = TcpStream::connect(&addr).await?;
        // A well-formed request keeps each connection busy without timing out at once: the
        // head has arrived, and the response is not read.
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        held.push(conn);
    }
    // The server counts a connection when it accepts it: let it accept those first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(&addr).await?;
    let said = until_closed(&mut extra, Duration::from_secs(2)).await?;
    assert!(said.starts_with("HTTP/1.1 429"), "{said:?}");
    assert!(said.contains("too_many_connections"), "{said:?}");
    let took = healthz_from_other_client(&s.base).await?;
    assert!(
        took < Duration::from_secs(5),
        "another client waited {took:?}"
    );
    drop(held);
    s.stop().await;
    db.cleanup().await
}

/// A client's connections count from its address: one bound to another loopback address is
/// another client (the premise of the tests above).
#[tokio::test]
async fn connections_from_another_address_count_against_another_client() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let (s, addr) = start(&db).await?;
    let mut held = Vec::new();
    for _ in 0..LIMITS.per_client {
        let socket = TcpSocket::new_v4()?;
        socket.bind((OTHER_CLIENT, 0).into())?;
        held.push(socket.connect(addr.parse()?).await?);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = s.client.get(format!("{}/healthz", s.base)).send().await?;
    assert!(resp.status().is_success(), "{}", resp.status());
    drop(held);
    s.stop().await;
    db.cleanup().await
}

/// The listener holds at most `total` connections, whoever holds them: beyond that it stops
/// accepting, so one more client waits in the kernel's queue (not answered, not failed) until
/// the header timeout frees a slot, and is then served.
#[tokio::test]
async fn past_the_total_connection_limit_a_new_client_waits_for_a_free_slot() -> anyhow::Result<()>
{
    let db = TestDb::sqlite()?;
    let limits = ConnectionLimits {
        total: 4,
        header_timeout: Duration::from_secs(2),
        ..LIMITS
    };
    let s = TestServer::start_with(&db, 0, |c| c.connections = limits).await?;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..limits.total {
        let mut conn = TcpStream::connect(&addr).await?;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await?;
        slow.push(conn);
    }
    // Let the server accept those first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = healthz_from_other_client(&s.base).await?;
    assert!(
        took >= Duration::from_millis(1000),
        "served after {took:?}, while all {} slots were held",
        limits.total
    );
    assert!(took < Duration::from_secs(6), "waited {took:?}");
    for conn in &mut slow {
        until_closed(conn, Duration::from_secs(5)).await?;
    }
    s.stop().await;
    db.cleanup().await
}
