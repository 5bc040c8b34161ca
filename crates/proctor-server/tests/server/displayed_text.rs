//! Text that people read or that is signed into the log refuses Unicode's invisible
//! characters (a bidi override U+202E, a zero-width space U+200B, ...) and blank names, with a
//! 422 that names the field. (`describe`'s strings are refused by `EvalInfo::validate`, whose
//! unit tests cover them: no test guest can choose its names at run time.)

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Body, TestDb, TestServer, code, str_of};

const INVISIBLE: [(char, &str); 2] = [('\u{202E}', "U+202E"), ('\u{200B}', "U+200B")];

fn refused(status: StatusCode, body: &Value, expected_code: &str, field: &str, shown: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(body), expected_code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(field), "names {field}: {message}");
    assert!(message.contains(shown), "names {shown}: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_names_versions_and_endpoint_names_refuse_invisible_characters_and_blanks()
-> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let register = |name: String, version: String, model: String| {
        let body = json!({
            "name": name, "version": version,
            "config": {"adapter": "openai", "model": model, "base_url": "https://api.example.com/v1"},
        });
        let s = &s;
        let vendor = vendor.clone();
        async move {
            s.call("POST", "/v1/models", Some(&vendor), Body::Json(body))
                .await
        }
    };
    for (c, shown) in INVISIBLE {
        let (status, body) = register(format!("gpt{c}txt.exe"), "1".into(), "m".into()).await?;
        refused(status, &body, "invalid_model", "`name`", shown);
        let (status, body) = register("gpt".into(), format!("2026{c}"), "m".into()).await?;
        refused(status, &body, "invalid_model", "`version`", shown);
        let (status, body) = register("gpt".into(), "1".into(), format!("m{c}")).await?;
        refused(status, &body, "invalid_model", "model:", shown);
    }
    let (status, body) = register("   ".into(), "1".into(), "m".into()).await?;
    refused(status, &body, "invalid_model", "`name`", "blank");
    let (status, body) = register("gpt".into(), "\u{3000}".into(), "m".into()).await?;
    refused(status, &body, "invalid_model", "`version`", "blank");
    let (status, body) = register("gpt-4o mini".into(), "2026-01".into(), "m".into()).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s.stop().await;
    db.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_names_and_token_labels_refuse_invisible_characters() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let (id, _) = s.account("acme", "vendor", None).await?;
    for (c, shown) in INVISIBLE {
        let (status, body) = s
            .call(
                "POST",
                "/v1/accounts",
                Some(&s.admin),
                Body::Json(json!({"name": format!("acme{c}"), "role": "vendor"})),
            )
            .await?;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            "{body}"
        );
        let (status, body) = s
            .call(
                "POST",
                &format!("/v1/accounts/{id}/tokens"),
                Some(&s.admin),
                Body::Json(json!({"label": format!("ci{c}deploy")})),
            )
            .await?;
        refused(status, &body, "invalid_label", "`label`", shown);
    }
    // No label at all is still fine.
    let (status, body) = s
        .call(
            "POST",
            &format!("/v1/accounts/{id}/tokens"),
            Some(&s.admin),
            Body::Json(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s.stop().await;
    db.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_reason_for_the_public_log_refuses_invisible_characters() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 1).await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (evaluator_id, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(
        &vendor,
        &model,
        json!({"account": evaluator_id}),
        json!({"approval": "manual"}),
    )
    .await?;
    let (_, job) = s.submit_arith(&evaluator, &model).await?;
    let job = str_of(&job, "id")?;
    let reject = |reason: String| {
        let s = &s;
        let (vendor, job) = (vendor.clone(), job.clone());
        async move {
            s.call(
                "POST",
                &format!("/v1/approvals/{job}/reject"),
                Some(&vendor),
                Body::Json(json!({ "reason": reason })),
            )
            .await
        }
    };
    for (c, shown) in INVISIBLE {
        let (status, body) = reject(format!("unsafe{c} eval")).await?;
        refused(status, &body, "invalid", "`reason`", shown);
    }
    let (status, body) = reject("line\u{2028}break".into()).await?;
    refused(status, &body, "invalid", "`reason`", "U+2028");
    // Refused reasons decided nothing: the job still waits, and a plain reason rejects it.
    let (_, view) = s
        .call(
            "GET",
            &format!("/v1/jobs/{job}"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(view["approval"], "pending", "{view}");
    let (status, body) = reject("asks for too much".into()).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended = s
        .wait_ended(&evaluator, &job, Duration::from_secs(30))
        .await?;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    s.stop().await;
    db.cleanup().await
}
