//! A hostile client without a token against a real `proctor serve` process: what it can make
//! the server hold. A process of its own, so its memory is the server's alone.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::serve_child::ServeChild;

/// The process's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Eight clients without a token start 60 MB uploads, get their 401 at once, go on sending
/// 24 MiB each and stall: the server discards what they send instead of holding it. (It used
/// to read each body whole, up to the route's limit, before looking at the token: the 401
/// came only with the last byte, and eight such clients held 8 × 24 MiB.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_without_a_token_get_401_at_once_and_leave_the_server_memory_flat() {
    let server = ServeChild::start();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    let pid = server.child.id();
    let before = rss_kib(pid);
    let chunk = vec![b'x'; 1 << 20];
    let mut stalled = Vec::new();
    for i in 0..8 {
        let path = if i % 2 == 0 {
            "/v1/evals"
        } else {
            "/v1/datasets"
        };
        let mut conn = TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: 60000000\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.expect("head");
        conn.write_all(&chunk[..4096]).await.expect("first bytes");
        let mut answer = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer while the body is still coming"))
            .expect("read");
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 401"), "{path}: {text}");
        assert!(text.contains("unauthenticated"), "{path}: {text}");
        for _ in 0..24 {
            conn.write_all(&chunk)
                .await
                .expect("the server takes the body");
        }
        stalled.push(conn);
    }
    // What was sent has been read by now (write_all returned); give the reads a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("server RSS: {before} KiB before, {after} KiB after 8 × 24 MiB sent");
    assert!(
        grown_mib < 48,
        "the server's memory grew by {grown_mib} MiB for clients without a token"
    );
    drop(stalled);
}
