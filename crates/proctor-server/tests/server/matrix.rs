//! Every route × every role × own or another's resource → the status it must answer; no
//! response leaks another account's data, a credential or a token secret.

use proctor_evals::examples::{ARITH_JSONL, ARITH_WASM};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, TestDb, TestServer, str_of};

const CREDENTIAL: &str = "sk-matrix-secret-4242";

/// Callers, in the order each route is tried: owners last, so a destructive call by an
/// owner (cancel) comes after everyone else was refused.
const CALLERS: [&str; 7] = [
    "anon",
    "admin",
    "vendor2",
    "evaluator2",
    "regulator",
    "vendor",
    "evaluator",
];

/// What a route must answer for each caller (0: not tried).
struct Case {
    method: &'static str,
    path: String,
    /// The body for a caller; the second argument is the HTTP model's id.
    body: fn(&str, &str) -> Body,
    expect: [u16; 7],
}

fn none(_: &str, _: &str) -> Body {
    Body::None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_checks_role_and_ownership() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = TestServer::start(&db, 0).await?;
        matrix(&server, &db)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn matrix(s: &TestServer, db: &TestDb) -> anyhow::Result<()> {
    let (vendor_id, vendor) = s.account("vendor", "vendor", None).await?;
    let (_, vendor2) = s.account("vendor2", "vendor", None).await?;
    let (evaluator_id, evaluator) = s
        .account("evaluator", "evaluator", Some("academic"))
        .await?;
    let (_, evaluator2) = s
        .account("evaluator2", "evaluator", Some("commercial"))
        .await?;
    let (_, regulator) = s.account("regulator", "regulator", None).await?;
    let mut secrets = vec![
        s.admin.clone(),
        vendor.clone(),
        vendor2.clone(),
        evaluator.clone(),
        evaluator2.clone(),
        regulator.clone(),
    ];
    let tokens = [
        None,
        Some(s.admin.clone()),
        Some(vendor2.clone()),
        Some(evaluator2.clone()),
        Some(regulator.clone()),
        Some(vendor.clone()),
        Some(evaluator.clone()),
    ];

    let (status, http_model) = s
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(json!({
                "name": "hosted", "version": "1",
                "config": {"adapter": "openai", "model": "gpt", "base_url": "https://example.invalid/v1"},
                "credential": CREDENTIAL,
            })),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{http_model}");
    assert!(!http_model.to_string().contains(CREDENTIAL));
    assert_eq!(http_model["has_credential"], true);
    let model = str_of(&http_model, "id")?;
    let (_, eval) = s
        .call(
            "POST",
            "/v1/evals",
            Some(&evaluator),
            Body::Bytes(ARITH_WASM.to_vec()),
        )
        .await?;
    let eval = str_of(&eval, "id")?;
    let (_, dataset) = s
        .call(
            "POST",
            "/v1/datasets",
            Some(&evaluator),
            Body::Bytes(ARITH_JSONL.as_bytes().to_vec()),
        )
        .await?;
    let dataset = str_of(&dataset, "id")?;
    let grant = s
        .grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    let grant = str_of(&grant, "id")?;
    let doomed = s
        .grant(&vendor, &model, json!({"tier": "auditor"}), json!({}))
        .await?;
    let doomed = str_of(&doomed, "id")?;
    // Two jobs waiting for the vendor's approval, under a manual grant on a second model.
    let (_, held_model) = s
        .call(
            "POST",
            "/v1/models",
            Some(&vendor),
            Body::Json(json!({
                "name": "held", "version": "1", "config": {"adapter": "builtin", "model": "arith"}
            })),
        )
        .await?;
    let held_model = str_of(&held_model, "id")?;
    s.grant(
        &vendor,
        &held_model,
        json!({"account": evaluator_id}),
        json!({"approval": "manual"}),
    )
    .await?;
    let mut pending = Vec::new();
    for _ in 0..2 {
        let (status, job) = s
            .call(
                "POST",
                "/v1/jobs",
                Some(&evaluator),
                Body::Json(json!({"eval": eval, "dataset": dataset, "model": held_model})),
            )
            .await?;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        assert_eq!(job["approval"], "pending", "{job}");
        pending.push(str_of(&job, "id")?);
    }
    let (to_approve, to_reject) = (pending[0].clone(), pending[1].clone());
    let (status, job) = s
        .call(
            "POST",
            "/v1/jobs",
            Some(&evaluator),
            Body::Json(json!({"eval": eval, "dataset": dataset, "model": model})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job = str_of(&job, "id")?;
    let (spare_id, _) = s.account("spare", "regulator", None).await?;
    let (_, spare_token) = s
        .call(
            "POST",
            &format!("/v1/accounts/{spare_id}/tokens"),
            Some(&s.admin),
            Body::Json(json!({})),
        )
        .await?;
    let spare_token_id = str_of(&spare_token, "id")?;
    secrets.push(str_of(&spare_token, "token")?);
    // A usage alert on the vendor's grant, and a grant an alert suspended.
    let grant_id: proctor_store::GrantId = grant.parse()?;
    let alert = s
        .store()
        .raise_alert(&proctor_store::NewAlert {
            grant: grant_id,
            kind: proctor_store::AlertKind::Reasoning,
            figures: proctor_core::anomaly::Figures {
                current: 1.0,
                baseline: 0.0,
                p_value: Some(1e-12),
                window_queries: 300,
                history_windows: 3,
            },
            window: proctor_store::UsageWindow::holding(3600, proctor_store::Timestamp(0)),
            suspends: false,
        })
        .await?
        .ok_or_else(|| anyhow::anyhow!("the alert was raised"))?
        .id;
    let paused = s
        .grant(&vendor, &model, json!({"tier": "regulator"}), json!({}))
        .await?;
    let paused = str_of(&paused, "id")?;
    s.store()
        .stop_grant(
            vendor_id.parse()?,
            paused.parse()?,
            proctor_store::GrantStop::Suspend,
            |_, _| Err("the grant has no job to end".into()),
        )
        .await?;
    // A scheduled check of the vendor's model that found it changed: the vendor's alert.
    s.store()
        .record_identity_check(
            model.parse()?,
            None,
            proctor_store::CheckKind::Scheduled,
            &proctor_core::ModelIdentity::assess(proctor_core::identity::CheckCounts {
                queries: 64,
                mismatches: 40,
            }),
        )
        .await?;
    let identity_alert = s
        .store()
        .identity_alerts(
            proctor_store::IdentityAlertReader::Vendor(vendor_id.parse()?),
            1,
        )
        .await?
        .first()
        .map(|a| a.id)
        .ok_or_else(|| anyhow::anyhow!("the identity alert was raised"))?;

    let cases = vec![
        Case {
            method: "POST",
            path: "/v1/accounts".into(),
            body: |who, _| Body::Json(json!({"name": format!("new-{who}"), "role": "regulator"})),
            expect: [401, 201, 403, 403, 403, 403, 403],
        },
        Case {
            method: "GET",
            path: "/v1/accounts".into(),
            body: none,
            expect: [401, 200, 403, 403, 403, 403, 403],
        },
        Case {
            method: "GET",
            path: format!("/v1/accounts/{vendor_id}"),
            body: none,
            expect: [401, 200, 403, 403, 403, 403, 403],
        },
        Case {
            method: "GET",
            path: format!("/v1/accounts/{vendor_id}/tokens"),
            body: none,
            expect: [401, 200, 403, 403, 403, 403, 403],
        },
        Case {
            method: "POST",
            path: format!("/v1/accounts/{spare_id}/tokens"),
            body: |_, _| Body::Json(json!({"label": "x"})),
            expect: [401, 201, 403, 403, 403, 403, 403],
        },
        Case {
            method: "DELETE",
            path: format!("/v1/tokens/{spare_token_id}"),
            body: none,
            expect: [401, 204, 403, 403, 403, 403, 403],
        },
        Case {
            method: "GET",
            path: "/v1/me".into(),
            body: none,
            expect: [401, 200, 200, 200, 200, 200, 200],
        },
        Case {
            method: "POST",
            path: "/v1/models".into(),
            body: |who, _| {
                Body::Json(
                    json!({"name": format!("m-{who}"), "version": "1", "config": {"adapter": "builtin", "model": "echo"}}),
                )
            },
            expect: [401, 403, 201, 403, 403, 201, 403],
        },
        Case {
            method: "GET",
            path: "/v1/models".into(),
            body: none,
            expect: [401, 403, 200, 200, 403, 200, 200],
        },
        Case {
            method: "POST",
            path: "/v1/grants".into(),
            body: |_, model| Body::Json(json!({"model": model, "grantee": {"tier": "regulator"}})),
            expect: [401, 403, 404, 403, 403, 201, 403],
        },
        Case {
            method: "GET",
            path: "/v1/grants".into(),
            body: none,
            expect: [401, 403, 200, 200, 403, 200, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/grants/{grant}"),
            body: none,
            expect: [401, 403, 404, 404, 403, 200, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/grants/{grant}/budget"),
            body: none,
            expect: [401, 403, 404, 404, 403, 200, 200],
        },
        Case {
            method: "GET",
            path: "/v1/usage".into(),
            body: none,
            expect: [401, 403, 200, 403, 403, 200, 403],
        },
        Case {
            method: "GET",
            path: "/v1/approvals".into(),
            body: none,
            expect: [401, 403, 200, 403, 403, 200, 403],
        },
        Case {
            method: "GET",
            path: format!("/v1/approvals/{to_approve}/component"),
            body: none,
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "POST",
            path: format!("/v1/approvals/{to_approve}/approve"),
            body: none,
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "POST",
            path: format!("/v1/approvals/{to_reject}/reject"),
            body: |_, _| Body::Json(json!({"reason": "not this week"})),
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "POST",
            path: format!("/v1/approvals/{to_approve}/reject"),
            body: none,
            expect: [401, 403, 404, 403, 403, 409, 403],
        },
        Case {
            method: "POST",
            path: format!("/v1/grants/{doomed}/revoke"),
            body: none,
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "GET",
            path: "/v1/alerts".into(),
            body: none,
            expect: [401, 200, 200, 403, 403, 200, 403],
        },
        Case {
            method: "POST",
            path: format!("/v1/alerts/{alert}/ack"),
            body: none,
            expect: [401, 200, 404, 403, 403, 200, 403],
        },
        Case {
            method: "GET",
            path: format!("/v1/grants/{grant}/alerts"),
            body: none,
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "PUT",
            path: format!("/v1/grants/{grant}/alerts"),
            body: |_, _| Body::Json(json!({"window_s": 600, "suspend": false})),
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "POST",
            path: format!("/v1/grants/{paused}/reinstate"),
            body: none,
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "GET",
            path: "/v1/identity-alerts".into(),
            body: none,
            expect: [401, 200, 200, 200, 403, 200, 200],
        },
        Case {
            method: "POST",
            path: format!("/v1/identity-alerts/{identity_alert}/ack"),
            body: none,
            expect: [401, 403, 404, 404, 403, 200, 404],
        },
        Case {
            method: "GET",
            path: format!("/v1/models/{model}"),
            body: none,
            expect: [401, 200, 404, 200, 200, 200, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/models/{model}/identity"),
            body: none,
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "PUT",
            path: format!("/v1/models/{model}/ledger"),
            body: |_, _| Body::Json(json!({"epsilon_total": 10, "bits_total": null})),
            expect: [401, 403, 404, 403, 403, 200, 403],
        },
        Case {
            method: "POST",
            path: "/v1/evals".into(),
            body: |_, _| Body::Bytes(ARITH_WASM.to_vec()),
            expect: [401, 403, 403, 0, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: "/v1/evals".into(),
            body: none,
            expect: [401, 403, 403, 200, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/evals/{eval}"),
            body: none,
            expect: [401, 403, 403, 404, 403, 403, 200],
        },
        Case {
            method: "POST",
            path: "/v1/datasets".into(),
            body: |_, _| Body::Bytes(ARITH_JSONL.as_bytes().to_vec()),
            expect: [401, 403, 403, 0, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: "/v1/datasets".into(),
            body: none,
            expect: [401, 403, 403, 200, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/datasets/{dataset}"),
            body: none,
            expect: [401, 403, 403, 404, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/datasets/{dataset}/exposure"),
            body: none,
            expect: [401, 403, 403, 404, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: "/v1/jobs".into(),
            body: none,
            expect: [401, 403, 403, 200, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/jobs/{job}"),
            body: none,
            expect: [401, 403, 403, 404, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/jobs/{job}/result"),
            body: none,
            expect: [401, 403, 403, 404, 403, 403, 409],
        },
        Case {
            method: "GET",
            path: format!("/v1/attestations/{job}?kind=accepted"),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "POST",
            path: format!("/v1/jobs/{job}/cancel"),
            body: none,
            expect: [401, 403, 403, 404, 403, 403, 200],
        },
        // The operator may cancel any job; this one has just ended.
        Case {
            method: "POST",
            path: format!("/v1/admin/jobs/{job}/cancel"),
            body: none,
            expect: [401, 409, 403, 403, 403, 403, 403],
        },
        Case {
            method: "GET",
            path: format!("/v1/jobs/{job}/result"),
            body: none,
            expect: [401, 403, 403, 404, 403, 403, 200],
        },
        Case {
            method: "GET",
            path: format!("/v1/attestations/{job}"),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: format!("/v1/attestations/{job}/envelope"),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/v1/log/checkpoint".into(),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/v1/log/entries".into(),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/v1/log/entries/0".into(),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/v1/log/proof/inclusion?index=0".into(),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/v1/log/proof/consistency?old=1".into(),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/v1/public-key".into(),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/healthz".into(),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/metrics".into(),
            body: none,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: "/openapi.json".into(),
            body: none,
            expect: [200; 7],
        },
    ];

    let mut failures = Vec::new();
    for case in &cases {
        for (i, who) in CALLERS.iter().enumerate() {
            let want = case.expect[i];
            if want == 0 {
                continue;
            }
            let (status, bytes) = s
                .call_raw(
                    case.method,
                    &case.path,
                    tokens[i].as_deref(),
                    (case.body)(who, &model),
                )
                .await?;
            let text = String::from_utf8_lossy(&bytes);
            if status.as_u16() != want {
                failures.push(format!(
                    "{} {} as {who}: want {want}, got {status} {text}",
                    case.method, case.path
                ));
            }
            if text.contains(CREDENTIAL) {
                failures.push(format!(
                    "{} {} as {who}: leaks the credential",
                    case.method, case.path
                ));
            }
            for secret in &secrets {
                if text.contains(secret.as_str()) {
                    failures.push(format!(
                        "{} {} as {who}: leaks a token",
                        case.method, case.path
                    ));
                }
            }
            if *who != "vendor" && text.contains("example.invalid") {
                failures.push(format!(
                    "{} {} as {who}: leaks the vendor's endpoint",
                    case.method, case.path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Lists hold only the caller's own.
    let (_, models) = s
        .call("GET", "/v1/models", Some(&vendor2), Body::None)
        .await?;
    assert!(!models.to_string().contains(&model), "{models}");
    let (_, evals) = s
        .call("GET", "/v1/evals", Some(&evaluator2), Body::None)
        .await?;
    assert_eq!(evals, json!([]));
    let (_, datasets) = s
        .call("GET", "/v1/datasets", Some(&evaluator2), Body::None)
        .await?;
    assert_eq!(datasets, json!([]));
    let (_, jobs) = s
        .call("GET", "/v1/jobs", Some(&evaluator2), Body::None)
        .await?;
    assert_eq!(jobs, json!([]));

    // A revoked token no longer authenticates.
    let spare = secrets.last().cloned().unwrap_or_default();
    let (status, _) = s.call("GET", "/v1/me", Some(&spare), Body::None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The credential is sealed at rest.
    if let Some(path) = &db.sqlite_path {
        let mut bytes = std::fs::read(path)?;
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        assert!(
            !bytes
                .windows(CREDENTIAL.len())
                .any(|w| w == CREDENTIAL.as_bytes()),
            "the credential is in the database file in clear"
        );
    }

    // Every path the API description lists is routed.
    let (_, doc) = s.call("GET", "/openapi.json", None, Body::None).await?;
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    assert!(paths.len() >= 25, "{doc}");
    for (path, operations) in &paths {
        let concrete = path.replace("{id}", "0");
        for method in operations.as_object().into_iter().flat_map(|o| o.keys()) {
            let method = method.to_uppercase();
            let (status, body) = s
                .call(&method, &concrete, Some(&s.admin), Body::None)
                .await?;
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED
                    && crate::common::code(&body) != "no_route",
                "{method} {path} is described but not routed: {status} {body}"
            );
        }
    }
    Ok(())
}
