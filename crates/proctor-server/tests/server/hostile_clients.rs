//! A hostile client, without a token, against what every request touches.

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
