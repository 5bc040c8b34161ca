//! The router without a socket: `app(state)` answered through `oneshot`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use proctor_server::{Config, Server};
use tower::ServiceExt;

use crate::common::TestDb;

async fn send(
    server: &Server,
    req: Request<Body>,
) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    let resp = server.router().oneshot(req).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
}

#[tokio::test]
async fn errors_share_one_json_shape_without_a_socket() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let data = tempfile::tempdir()?;
    let mut config = Config::new(&db.url, data.path());
    config.workers = 0;
    config.credential_key = Some([1; 32]);
    config.engine = proctor_sandbox::EngineSettings::for_policy(&proctor_core::Policy::standard());
    let server = Server::start(config).await?;
    let admin = server.admin_token.clone().unwrap_or_default();

    let (status, body) = send(&server, Request::get("/healthz").body(Body::empty())?).await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    let cases = [
        (
            Request::get("/v1/me").body(Body::empty())?,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            Request::get("/v1/me")
                .header(header::AUTHORIZATION, "Basic abc")
                .body(Body::empty())?,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            Request::get("/nowhere").body(Body::empty())?,
            StatusCode::NOT_FOUND,
            "no_route",
        ),
        (
            Request::post("/v1/accounts")
                .header(header::AUTHORIZATION, format!("bearer {admin}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"name\": "))?,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Request::post("/v1/accounts")
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    "{\"name\": \"x\", \"role\": \"vendor\", \"extra\": 1}",
                ))?,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Request::get("/v1/log/proof/inclusion?index=x").body(Body::empty())?,
            StatusCode::BAD_REQUEST,
            "malformed_query",
        ),
        (
            Request::get("/v1/log/proof/inclusion?index=0").body(Body::empty())?,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // A caller of the wrong role is refused before its body is parsed.
        (
            Request::post("/v1/jobs")
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{"))?,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    for (req, want, code) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, body) = send(&server, req).await?;
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{what}: {body}");
    }
    server.shutdown().await;
    db.cleanup().await
}
