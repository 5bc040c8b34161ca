//! A hostile client, without a token, against what every request touches.

use std::time::Duration;

use reqwest::StatusCode;

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

/// Uploads are refused from their head: a client without a token that stalls after a few
/// bytes of a large body gets its 401 at once, and the server holds none of the body for it.
#[tokio::test]
async fn a_stalled_upload_without_a_token_is_refused_before_its_body() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let addr = s.base.trim_start_matches("http://").to_owned();
    for (path, token) in [
        ("/v1/datasets", None),
        ("/v1/evals", None),
        ("/v1/evals", Some(s.admin.as_str())),
    ] {
        let mut conn = tokio::net::TcpStream::connect(&addr).await?;
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/octet-stream\r\n\
             Content-Length: 60000000\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(&[0u8; 4096]).await?;
        // The rest of the 60 MB never comes.
        let mut answer = vec![0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut answer)).await;
        let n = read.map_err(|_| anyhow::anyhow!("{path}: no answer while the body stalls"))??;
        let text = String::from_utf8_lossy(&answer[..n]);
        let want = if token.is_some() { "403" } else { "401" };
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want}")),
            "{path}: {text}"
        );
    }
    s.stop().await;
    db.cleanup().await
}
