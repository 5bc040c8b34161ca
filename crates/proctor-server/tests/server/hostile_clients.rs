//! Hostile clients against what every request touches: made-up methods and paths, bodies
//! that stall, uploads without a token or beyond the service's capacity.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Body, TestDb, TestServer};

/// Made-up methods and paths must not grow `/metrics`: each would be a new series, kept
/// forever, and no token is needed to send them.
#[tokio::test]
async fn made_up_methods_and_paths_leave_metrics_the_same_size() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let hostile = async |i: usize| -> anyhow::Result<()> {
        let method = format!("FOO{i}");
        let (status, _) = s
            .call_raw(&method, &format!("/v1/jobs/{i}"), None, Body::None)
            .await?;
        assert!(status.is_client_error(), "{method}: {status}");
        let (status, _) = s
            .call_raw("GET", &format!("/nowhere/{i}"), None, Body::None)
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        Ok(())
    };
    // The first round makes whatever series such requests make at all.
    for i in 0..5 {
        hostile(i).await?;
    }
    // And a read of the page counts itself.
    s.call_raw("GET", "/metrics", None, Body::None).await?;
    let (_, before) = s.call_raw("GET", "/metrics", None, Body::None).await?;
    for i in 5..300 {
        hostile(i).await?;
    }
    let (_, after) = s.call_raw("GET", "/metrics", None, Body::None).await?;
    let series = |page: &[u8]| {
        String::from_utf8_lossy(page)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name).to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (before, after) = (series(&before), series(&after));
    assert_eq!(before, after, "new series: {:?}", after.difference(&before));
    assert!(
        !after.iter().any(|l| l.contains("FOO")),
        "a made-up method became a label: {after:?}"
    );
    s.stop().await;
    db.cleanup().await
}

/// Sends a request's head and the first `sent` bytes of a body of `length`, then stalls;
/// returns the connection and the first answer within `within` (`None`: nothing came).
async fn stalled_post(
    s: &TestServer,
    path: &str,
    token: Option<&str>,
    (length, sent): (usize, usize),
    within: Duration,
) -> anyhow::Result<(TcpStream, Option<String>)> {
    let addr = s.base.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&vec![b' '; sent]).await?;
    let mut answer = vec![0u8; 4096];
    let answer = match tokio::time::timeout(within, conn.read(&mut answer)).await {
        Ok(read) => Some(String::from_utf8_lossy(&answer[..read?]).into_owned()),
        Err(_) => None,
    };
    Ok((conn, answer))
}

/// Uploads are refused from their head: a client without a token (or of another role) that
/// stalls after a few bytes of a large body gets its 401 (403) at once. It used to get it
/// only after the whole body, which the server held meanwhile.
#[tokio::test]
async fn a_stalled_upload_without_a_token_is_refused_before_its_body() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    for (path, token, want) in [
        ("/v1/datasets", None, "HTTP/1.1 401"),
        ("/v1/evals", None, "HTTP/1.1 401"),
        ("/v1/evals", Some(s.admin.as_str()), "HTTP/1.1 403"),
    ] {
        let (_conn, answer) =
            stalled_post(&s, path, token, (1 << 20, 4096), Duration::from_secs(5)).await?;
        let answer = answer.ok_or_else(|| anyhow::anyhow!("{path}: no answer while stalled"))?;
        assert!(answer.starts_with(want), "{path}: {answer}");
    }
    s.stop().await;
    db.cleanup().await
}

/// A refused upload's body is read and dropped, so a client that sends it all reads its 401
/// on a connection that stays usable: the next request on it is served.
#[tokio::test]
async fn a_refused_upload_leaves_its_connection_usable() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let addr = s.base.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await?;
    let body = vec![b'{'; 512 << 10];
    let head = format!(
        "POST /v1/datasets HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&body).await?;
    conn.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&said).contains("\"status\"") {
            let n = conn.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "closed after: {}", String::from_utf8_lossy(&said));
            said.extend_from_slice(&buf[..n]);
        }
        Ok(())
    })
    .await;
    let said = String::from_utf8_lossy(&said);
    read.map_err(|_| anyhow::anyhow!("no second answer: {said}"))??;
    assert!(said.starts_with("HTTP/1.1 401"), "{said}");
    assert!(said.contains("HTTP/1.1 200"), "{said}");
    s.stop().await;
    db.cleanup().await
}

/// A body slower than the body deadline is refused with 408 and a stable code, on an upload
/// and on a JSON route, once the caller is known.
#[tokio::test]
async fn a_body_slower_than_the_deadline_gets_408() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start_with(&db, 0, |c| {
        c.limits.read_timeout = Duration::from_millis(500);
    })
    .await?;
    let (_, evaluator) = s
        .account("slow-eval", "evaluator", Some("academic"))
        .await?;
    for path in ["/v1/datasets", "/v1/jobs"] {
        let (_conn, answer) = stalled_post(
            &s,
            path,
            Some(&evaluator),
            (4096, 10),
            Duration::from_secs(5),
        )
        .await?;
        let answer = answer.ok_or_else(|| anyhow::anyhow!("{path}: no answer"))?;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("body_timeout"), "{path}: {answer}");
    }
    s.stop().await;
    db.cleanup().await
}

/// Uploads beyond the service's concurrent limit are refused (503, `uploads_busy`) before
/// their bodies are read; once a slot is free the next one is taken.
#[tokio::test]
async fn uploads_beyond_the_concurrent_limit_get_503_before_their_body() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start_with(&db, 0, |c| {
        c.limits.concurrent_uploads = 1;
        c.limits.read_timeout = Duration::from_secs(2);
    })
    .await?;
    let (_, evaluator) = s
        .account("busy-eval", "evaluator", Some("academic"))
        .await?;
    // The first upload holds the one slot while its body stalls.
    let (first, nothing) = stalled_post(
        &s,
        "/v1/datasets",
        Some(&evaluator),
        (4096, 10),
        Duration::from_millis(300),
    )
    .await?;
    assert_eq!(nothing, None, "the first upload is still being read");
    let (_conn, answer) = stalled_post(
        &s,
        "/v1/evals",
        Some(&evaluator),
        (1 << 20, 10),
        Duration::from_secs(2),
    )
    .await?;
    let answer = answer.ok_or_else(|| anyhow::anyhow!("no answer to the second upload"))?;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("uploads_busy"), "{answer}");
    // Closing the first one ends its read, which frees the slot.
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = s
        .call(
            "POST",
            "/v1/datasets",
            Some(&evaluator),
            Body::Bytes(b"{\"q\": 1}\n".to_vec()),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s.stop().await;
    db.cleanup().await
}

/// An evaluator probing for another's private dataset by uploading guessed bytes learns
/// nothing: the upload is new to it (201, its own time), as if nobody held those bytes.
#[tokio::test]
async fn an_upload_answers_for_its_uploader_only() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let (_, first) = s.account("holder", "evaluator", Some("academic")).await?;
    let (_, prober) = s.account("prober", "evaluator", Some("academic")).await?;
    let bytes = b"{\"secret\": \"item\"}\n".to_vec();
    let upload = async |token: &str| {
        s.call(
            "POST",
            "/v1/datasets",
            Some(token),
            Body::Bytes(bytes.clone()),
        )
        .await
    };
    let (status, held) = upload(&first).await?;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, probed) = upload(&prober).await?;
    assert_eq!(status, StatusCode::CREATED, "{probed}");
    assert_ne!(
        held["created_at"], probed["created_at"],
        "the prober saw the holder's upload time"
    );
    // Its own second upload is the one it already has.
    let (status, again) = upload(&prober).await?;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["created_at"], probed["created_at"]);
    let id = crate::common::str_of(&probed, "id")?;
    let (status, read) = s
        .call(
            "GET",
            &format!("/v1/datasets/{id}"),
            Some(&prober),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["created_at"], probed["created_at"]);
    s.stop().await;
    db.cleanup().await
}
