//! The service calls model endpoints on public hosts over https only, unless its operator
//! allows a host (`--allow-model-hosts`): a vendor cannot point it at the cloud metadata
//! service, loopback or the service's private network. Registration refuses such a
//! `base_url`; the checks at connect time are `proctor-models`' (`resolver.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proctor_models::HostPolicy;
use proctor_store::{NewModel, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Body, TestDb, TestServer, code, str_of};

async fn register(s: &TestServer, vendor: &str, name: &str, base_url: &str) -> (StatusCode, Value) {
    s.call(
        "POST",
        "/v1/models",
        Some(vendor),
        Body::Json(json!({
            "name": name, "version": "1",
            "config": {"adapter": "openai", "model": "m", "base_url": base_url},
        })),
    )
    .await
    .expect("the server answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refuses_endpoints_inside_the_service_network_and_plain_http()
-> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start_with(&db, 0, |config| {
        config.model_hosts = HostPolicy::service();
    })
    .await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let refused = [
        ("http://169.254.169.254/v1", "is a link-local address"),
        ("https://169.254.169.254/v1", "is a link-local address"),
        ("http://10.0.0.1/v1", "is a private address"),
        ("http://[::1]/v1", "is a loopback address"),
        ("https://[::ffff:127.0.0.1]/v1", "is a loopback address"),
        ("http://127.0.0.1:8000/v1", "is a loopback address"),
        (
            "http://localhost:8000/v1",
            "names the service's own machine",
        ),
        ("https://localhost./v1", "names the service's own machine"),
        ("http://example.com/v1", "over https only"),
    ];
    for (i, (url, why)) in refused.iter().enumerate() {
        let (status, body) = register(&s, &vendor, &format!("m{i}"), url).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(code(&body), "model_host_refused", "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{url}: {message}");
        assert!(message.contains("--allow-model-hosts"), "{url}: {message}");
    }
    // An Anthropic endpoint's base_url is checked the same way.
    let (status, body) = s
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(json!({
                "name": "claude", "version": "1",
                "config": {"adapter": "anthropic", "model": "m", "base_url": "http://169.254.169.254"},
            })),
        )
        .await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "model_host_refused"),
        "{body}"
    );
    let (status, body) = register(&s, &vendor, "public", "https://api.example.com/v1").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s.stop().await;
    db.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_operator_allows_is_registered_over_plain_http_on_its_port_only()
-> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start_with(&db, 0, |config| {
        config.model_hosts =
            HostPolicy::service_allowing("10.0.0.1, gpu.internal:8000, fd00::/8").expect("valid");
    })
    .await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    for (i, url) in [
        "http://10.0.0.1/v1",
        "http://10.0.0.1:9000/v1",
        "http://gpu.internal:8000/v1",
        "http://[fd00::7]:8080/v1",
    ]
    .iter()
    .enumerate()
    {
        let (status, body) = register(&s, &vendor, &format!("allowed{i}"), url).await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
    }
    for (i, url) in [
        "http://gpu.internal:8001/v1",
        "http://10.0.0.2/v1",
        "http://169.254.169.254/v1",
    ]
    .iter()
    .enumerate()
    {
        let (status, body) = register(&s, &vendor, &format!("refused{i}"), url).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "model_host_refused"),
            "{url}: {body}"
        );
    }
    s.stop().await;
    db.cleanup().await
}

/// A model stored while its host was allowed (inserted here as the store holds it), run after
/// the operator withdrew the allowance: the worker's build refuses the endpoint, the job fails
/// before it runs, and the endpoint never sees a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_model_whose_host_is_no_longer_allowed_is_never_called() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/v1", listener.local_addr()?);
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let serving = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let db = TestDb::sqlite()?;
    let s = TestServer::start_with(&db, 1, |config| {
        config.model_hosts = HostPolicy::service();
    })
    .await?;
    let (vendor_id, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    // Valid under any rules: the host rule is the only thing the worker's build can refuse.
    let store = Store::connect(&db.url).await?;
    let config = json!({"adapter": "openai", "model": "m", "base_url": endpoint, "version": "1"});
    let model = store
        .register_model(&NewModel {
            owner: vendor_id.parse()?,
            name: "once-allowed".into(),
            version: "1".into(),
            adapter: "openai".into(),
            config: config.to_string(),
            credential: None,
        })
        .await?;
    let model = model.id.to_string();
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let ended = s
        .wait_ended(&evaluator, &str_of(&job, "id")?, Duration::from_secs(60))
        .await?;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(
        ended["reason"]
            .as_str()
            .is_some_and(|r| r.contains("model configuration was refused")),
        "{ended}"
    );
    assert_eq!(ended["progress"]["done"], 0, "{ended}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection was made");
    serving.abort();
    s.stop().await;
    db.cleanup().await
}
