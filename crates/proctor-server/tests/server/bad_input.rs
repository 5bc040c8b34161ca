//! Bad input gets a specific error code and stores nothing.

use proctor_evals::examples::{ARITH_JSONL, ARITH_WASM};
use proctor_evals::test_guests;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, LIMITS, TestDb, TestServer, code, str_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_a_specific_code_and_nothing_is_stored() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start(&db, 0).await?;
        bad_input(&server)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn expect(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Body,
    status: StatusCode,
    error_code: &str,
) -> anyhow::Result<serde_json::Value> {
    let (got, value) = s.call(method, path, token, body).await?;
    anyhow::ensure!(
        got == status && code(&value) == error_code,
        "{method} {path}: expected {status} {error_code}, got {got} {value}"
    );
    anyhow::ensure!(
        value["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{method} {path}: no message in {value}"
    );
    Ok(value)
}

async fn bad_input(s: &TestServer) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("auditor")).await?;
    let ev = Some(evaluator.as_str());
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;

    // Components.
    let garbage = b"this is not wasm at all".to_vec();
    expect(
        s,
        "POST",
        "/v1/evals",
        ev,
        Body::Bytes(garbage),
        unprocessable,
        "not_wasm",
    )
    .await?;
    expect(
        s,
        "POST",
        "/v1/evals",
        ev,
        Body::Bytes(Vec::new()),
        unprocessable,
        "empty_component",
    )
    .await?;
    let world = test_guests::OTHER_WORLD.to_vec();
    expect(
        s,
        "POST",
        "/v1/evals",
        ev,
        Body::Bytes(world),
        unprocessable,
        "wrong_world",
    )
    .await?;
    let mut huge = b"\0asm".to_vec();
    huge.resize(LIMITS.component + 1, 0);
    expect(
        s,
        "POST",
        "/v1/evals",
        ev,
        Body::Bytes(huge),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await?;
    let (_, evals) = s.call("GET", "/v1/evals", ev, Body::None).await?;
    assert_eq!(evals, json!([]), "a refused component is not stored");

    // Datasets.
    let bad_line = b"{\"a\": 1, \"b\": 2}\n{\"a\": 3,\n".to_vec();
    let err = expect(
        s,
        "POST",
        "/v1/datasets",
        ev,
        Body::Bytes(bad_line),
        unprocessable,
        "invalid_dataset",
    )
    .await?;
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 2")),
        "{err}"
    );
    expect(
        s,
        "POST",
        "/v1/datasets",
        ev,
        Body::Bytes(Vec::new()),
        unprocessable,
        "invalid_dataset",
    )
    .await?;
    let empty_line = b"1\n\n2\n".to_vec();
    expect(
        s,
        "POST",
        "/v1/datasets",
        ev,
        Body::Bytes(empty_line),
        unprocessable,
        "invalid_dataset",
    )
    .await?;
    let mut big = Vec::new();
    while big.len() <= LIMITS.dataset {
        big.extend_from_slice(b"{\"a\": 1, \"b\": 2}\n");
    }
    expect(
        s,
        "POST",
        "/v1/datasets",
        ev,
        Body::Bytes(big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await?;
    let (_, datasets) = s.call("GET", "/v1/datasets", ev, Body::None).await?;
    assert_eq!(datasets, json!([]), "a refused dataset is not stored");

    // JSON bodies.
    let (status, value) = s
        .client
        .post(format!("{}/v1/jobs", s.base))
        .bearer_auth(&evaluator)
        .header("content-type", "application/json")
        .body("{\"eval\": ")
        .send()
        .await
        .map(|r| (r.status(), r))?;
    let value: serde_json::Value = value.json().await?;
    assert_eq!(
        (status, code(&value)),
        (StatusCode::BAD_REQUEST, "malformed_json"),
        "{value}"
    );
    expect(
        s,
        "POST",
        "/v1/jobs",
        ev,
        Body::Json(json!({"eval": 1})),
        unprocessable,
        "invalid_body",
    )
    .await?;
    let long = "x".repeat(LIMITS.json + 1);
    expect(
        s,
        "POST",
        "/v1/jobs",
        ev,
        Body::Json(json!({"eval": long, "dataset": "", "model": ""})),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await?;
    let (status, value) = s
        .client
        .post(format!("{}/v1/models", s.base))
        .bearer_auth(&vendor)
        .body("{}")
        .send()
        .await
        .map(|r| (r.status(), r))?;
    let value: serde_json::Value = value.json().await?;
    assert_eq!(
        (status, code(&value)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        "{value}"
    );

    // Models.
    let model =
        json!({"name": "m", "version": "1", "config": {"adapter": "builtin", "model": "oracle"}});
    expect(
        s,
        "POST",
        "/v1/models",
        Some(&vendor),
        Body::Json(model),
        unprocessable,
        "invalid_model",
    )
    .await?;
    let model = json!({"name": "m", "version": "1", "config": {
        "adapter": "openai", "model": "gpt", "base_url": "https://example.invalid/v1",
        "api_key_env": "PROCTOR_CREDENTIAL_KEY"}});
    expect(
        s,
        "POST",
        "/v1/models",
        Some(&vendor),
        Body::Json(model),
        unprocessable,
        "invalid_model",
    )
    .await?;
    let (_, models) = s
        .call("GET", "/v1/models", Some(&vendor), Body::None)
        .await?;
    assert_eq!(models, json!([]), "a refused model is not stored");
    let good =
        json!({"name": "m", "version": "1", "config": {"adapter": "builtin", "model": "arith"}});
    let (status, model) = s
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(good.clone()),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    expect(
        s,
        "POST",
        "/v1/models",
        Some(&vendor),
        Body::Json(good),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await?;

    // Duplicate names, unknown ids.
    let dup = json!({"name": "acme", "role": "vendor"});
    expect(
        s,
        "POST",
        "/v1/accounts",
        Some(&s.admin),
        Body::Json(dup),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await?;
    let bad_role = json!({"name": "x", "role": "king"});
    expect(
        s,
        "POST",
        "/v1/accounts",
        Some(&s.admin),
        Body::Json(bad_role),
        unprocessable,
        "invalid_role",
    )
    .await?;
    let no_tier = json!({"name": "x", "role": "evaluator"});
    expect(
        s,
        "POST",
        "/v1/accounts",
        Some(&s.admin),
        Body::Json(no_tier),
        unprocessable,
        "invalid_tier",
    )
    .await?;
    let not_found = StatusCode::NOT_FOUND;
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/v1/jobs/{unknown}"),
        "/v1/jobs/not-a-uuid".to_owned(),
        format!("/v1/evals/{}", "0".repeat(64)),
        format!("/v1/datasets/{}", "0".repeat(64)),
        format!("/v1/models/{unknown}"),
        format!("/v1/attestations/{unknown}"),
    ] {
        let token = if path.contains("models") {
            Some(vendor.as_str())
        } else {
            ev
        };
        expect(s, "GET", &path, token, Body::None, not_found, "not_found").await?;
    }
    expect(
        s,
        "GET",
        "/v1/nowhere",
        ev,
        Body::None,
        not_found,
        "no_route",
    )
    .await?;
    expect(
        s,
        "GET",
        "/v1/log/entries/99",
        None,
        Body::None,
        not_found,
        "not_found",
    )
    .await?;

    // A job naming what does not exist, or an unknown policy, is not submitted.
    let (status, eval) = s
        .call("POST", "/v1/evals", ev, Body::Bytes(ARITH_WASM.to_vec()))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{eval}");
    let (status, dataset) = s
        .call(
            "POST",
            "/v1/datasets",
            ev,
            Body::Bytes(ARITH_JSONL.as_bytes().to_vec()),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{dataset}");
    let (eval, dataset, model) = (
        str_of(&eval, "id")?,
        str_of(&dataset, "id")?,
        str_of(&model, "id")?,
    );
    let job = json!({"eval": eval, "dataset": dataset, "model": unknown.to_string()});
    expect(
        s,
        "POST",
        "/v1/jobs",
        ev,
        Body::Json(job),
        not_found,
        "not_found",
    )
    .await?;
    // No grant yet: refused, naming the refusal.
    let job = json!({"eval": eval, "dataset": dataset, "model": model});
    expect(
        s,
        "POST",
        "/v1/jobs",
        ev,
        Body::Json(job.clone()),
        StatusCode::FORBIDDEN,
        "no_grant",
    )
    .await?;

    // Grants that cannot be made.
    for (body, status, want) in [
        (
            json!({"model": model, "grantee": {"tier": "commercial"}}),
            unprocessable,
            "invalid",
        ),
        (
            json!({"model": model, "grantee": {"tier": "everyone"}}),
            unprocessable,
            "invalid",
        ),
        (
            json!({"model": model, "grantee": {"tier": "auditor"}, "policy": "lenient"}),
            unprocessable,
            "unknown_policy",
        ),
        (
            json!({"model": model, "grantee": {"tier": "auditor"}, "policy": "strict",
                   "overrides": {"queries": {"max_tokens": 100000}}}),
            unprocessable,
            "policy_loosened",
        ),
        (
            json!({"model": model, "grantee": {"tier": "auditor"},
                   "overrides": {"limits": {"fuel": 1}}}),
            unprocessable,
            "invalid_policy",
        ),
        (
            json!({"model": model, "grantee": {"tier": "auditor"},
                   "expires_at": "2001-01-01T00:00:00Z"}),
            unprocessable,
            "invalid",
        ),
        (
            json!({"model": model, "grantee": {"tier": "auditor"}, "approval": "sometimes"}),
            unprocessable,
            "invalid",
        ),
        (
            json!({"model": model, "grantee": {"tier": "auditor"},
                   "budgets": {"queries_total": -1}}),
            unprocessable,
            "invalid_body",
        ),
        (
            json!({"model": unknown.to_string(), "grantee": {"tier": "auditor"}}),
            not_found,
            "not_found",
        ),
        (
            json!({"model": model, "grantee": {"account": unknown.to_string()}}),
            not_found,
            "not_found",
        ),
    ] {
        expect(
            s,
            "POST",
            "/v1/grants",
            Some(&vendor),
            Body::Json(body),
            status,
            want,
        )
        .await?;
    }
    let (_, grants) = s
        .call("GET", "/v1/grants", Some(&vendor), Body::None)
        .await?;
    assert_eq!(grants, json!([]), "a refused grant is not stored");

    // Under a grant, the job may not pick another policy.
    s.grant(&vendor, &model, json!({"tier": "auditor"}), json!({}))
        .await?;
    let mut other = job.clone();
    other["policy"] = "lenient".into();
    expect(
        s,
        "POST",
        "/v1/jobs",
        ev,
        Body::Json(other),
        unprocessable,
        "policy_mismatch",
    )
    .await?;
    let (_, jobs) = s.call("GET", "/v1/jobs", ev, Body::None).await?;
    assert_eq!(jobs, json!([]), "a refused job is not stored");
    let (_, entries) = s.call("GET", "/v1/log/entries", None, Body::None).await?;
    assert_eq!(entries, json!([]), "a refused job is not logged");

    // Authentication.
    expect(
        s,
        "GET",
        "/v1/me",
        None,
        Body::None,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    expect(
        s,
        "GET",
        "/v1/me",
        Some("pct_nonsense"),
        Body::None,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    Ok(())
}
