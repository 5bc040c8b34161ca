//! Model identity canaries over real HTTP: a model registered as `builtin:lm` is fingerprinted
//! in the background; a job on it is checked before and after; the attestation of a job on a
//! model that swaps its weights mid-job states `changed`, on a stable one `same`; the vendor
//! reads the check history, nobody else does; and no probe text reaches the database.

use std::time::Duration;

use proctor_core::identity_probes::ProbeSecret;
use proctor_server::sealing::CredentialSealer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Body, TestDb, TestServer, str_of};

/// After the registration's measurement (at most 416 queries on its own instance) and within
/// the job's 532 (32 probes, 500 samples) before its check after: the weights change mid-job.
const SWAP_AFTER: u64 = 450;

async fn start(db: &TestDb) -> anyhow::Result<TestServer> {
    TestServer::start_with(db, 2, |config| {
        config.identity.enabled = true;
        config.identity.poll = Duration::from_millis(100);
    })
    .await
}

async fn identity(
    s: &TestServer,
    token: Option<&str>,
    model: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    s.call(
        "GET",
        &format!("/v1/models/{model}/identity"),
        token,
        Body::None,
    )
    .await
}

/// Polls the vendor's view until the fingerprint is measured.
async fn wait_measured(s: &TestServer, vendor: &str, model: &str) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    loop {
        let (status, view) = identity(s, Some(vendor), model).await?;
        anyhow::ensure!(status == StatusCode::OK, "{status} {view}");
        if view["state"] != "fingerprinting" {
            return Ok(view);
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "still {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_on_a_model_swapped_mid_job_attests_changed_and_on_a_stable_one_same()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let server = start(&db).await?;
        swapped_and_stable(&server, &db)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        server.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

async fn swapped_and_stable(s: &TestServer, db: &TestDb) -> anyhow::Result<()> {
    let (vendor_id, vendor) = s.account("acme", "vendor", None).await?;
    let (_, other_vendor) = s.account("rival", "vendor", None).await?;
    let (_, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let stable = s.builtin_model(&vendor, "stable", "lm?weights=7").await?;
    let swapping = s
        .builtin_model(
            &vendor,
            "swapping",
            &format!("lm?weights=7&swap_after={SWAP_AFTER}"),
        )
        .await?;
    for model in [&stable, &swapping] {
        let view = wait_measured(s, &vendor, model).await?;
        assert_eq!(view["state"], "ready", "{view}");
        assert_eq!(view["fingerprint"]["probes"], 32, "{view}");
        assert_eq!(view["latest"], "not_checked", "{view}");
        let queries = view["registration_queries"].as_u64().unwrap_or(0);
        assert!((256..=416).contains(&queries), "{view}");
        s.grant(&vendor, model, json!({"tier": "academic"}), json!({}))
            .await?;
    }

    let mut verdicts = Vec::new();
    for model in [&stable, &swapping] {
        let (status, job) = s.submit_arith(&evaluator, model).await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
        let id = str_of(&job, "id")?;
        let view = s
            .wait_ended(&evaluator, &id, Duration::from_secs(120))
            .await?;
        assert_eq!(view["status"], "succeeded", "{view}");
        let (status, view) = s
            .call(
                "GET",
                &format!("/v1/jobs/{id}/result"),
                Some(&evaluator),
                Body::None,
            )
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "{status} {view}");
        // The evaluator sees the verdict in the job's result; probes are not its usage.
        let seen = &view["report"]["model_identity"];
        assert_eq!(view["report"]["usage"]["queries"], 500, "{view}");
        assert_eq!(seen["queries"], 64, "{view}");
        assert!(
            view["report"]["leakage"]["channels"]["model_identity"].is_number(),
            "{view}"
        );
        let statement = s.result_statement(&id).await?;
        assert_eq!(
            statement["predicateType"],
            "https://proctor.dev/attestation/eval-result/v4"
        );
        assert_eq!(
            &statement["predicate"]["model_identity"], seen,
            "{statement}"
        );
        assert_eq!(
            statement["predicate"]["model_identity"]["test"],
            "border-binomial/v1"
        );
        verdicts.push((id, seen["verdict"].clone()));
    }
    assert_eq!(verdicts[0].1, "same", "the stable model");
    assert_eq!(verdicts[1].1, "changed", "the model that swapped mid-job");

    // The vendor's history: the swapping model's check before the job agreed, the one after
    // did not.
    let (status, view) = identity(s, Some(&vendor), &swapping).await?;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["latest"], "changed", "{view}");
    let checks = view["checks"].as_array().cloned().unwrap_or_default();
    let of_job = |kind: &str| {
        checks
            .iter()
            .find(|c| c["kind"] == kind && c["job"] == verdicts[1].0.as_str())
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        of_job("before-job")["identity"]["verdict"],
        "same",
        "{view}"
    );
    assert_eq!(
        of_job("after-job")["identity"]["verdict"],
        "changed",
        "{view}"
    );
    assert_eq!(of_job("after-job")["identity"]["queries"], 32, "{view}");

    identity_alerts(
        s,
        &vendor,
        &other_vendor,
        &evaluator,
        &swapping,
        &verdicts[1].0,
    )
    .await?;

    // Its owner only.
    let (status, body) = identity(s, Some(&other_vendor), &swapping).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = identity(s, Some(&evaluator), &swapping).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = identity(s, None, &swapping).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    no_probe_text_is_stored(
        s,
        db,
        &vendor_id,
        &[("stable", &stable), ("swapping", &swapping)],
    )
    .await
}

/// The changed verdicts alert: the vendor reads the changed check after the swapping job and
/// the job's attested verdict, the evaluator that job's alone, at the job's visible end and
/// with the figures its result states; nothing for the stable model, nothing for another
/// vendor; each acknowledges its own.
async fn identity_alerts(
    s: &TestServer,
    vendor: &str,
    other_vendor: &str,
    evaluator: &str,
    swapping: &str,
    swapped_job: &str,
) -> anyhow::Result<()> {
    let list = |token: &str| {
        let token = token.to_owned();
        async move {
            let (status, body) = s
                .call("GET", "/v1/identity-alerts", Some(&token), Body::None)
                .await?;
            anyhow::ensure!(status == StatusCode::OK, "{status} {body}");
            Ok::<_, anyhow::Error>(body.as_array().cloned().unwrap_or_default())
        }
    };
    let vendors = list(vendor).await?;
    assert_eq!(vendors.len(), 2, "{vendors:?}");
    assert!(
        vendors.iter().all(|a| a["model"] == swapping),
        "{vendors:?}"
    );
    let check = vendors
        .iter()
        .find(|a| a["subject"] == "check")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(check["check"], "after-job", "{check}");
    assert_eq!(check["job"], swapped_job, "{check}");
    assert_eq!(check["identity"]["verdict"], "changed", "{check}");
    let of_job = vendors
        .iter()
        .find(|a| a["subject"] == "job")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(of_job["job"], swapped_job, "{of_job}");
    assert_eq!(of_job["check"], Value::Null, "{of_job}");

    let (_, result) = s
        .call(
            "GET",
            &format!("/v1/jobs/{swapped_job}/result"),
            Some(evaluator),
            Body::None,
        )
        .await?;
    let (_, job) = s
        .call(
            "GET",
            &format!("/v1/jobs/{swapped_job}"),
            Some(evaluator),
            Body::None,
        )
        .await?;
    let evaluators = list(evaluator).await?;
    assert_eq!(evaluators.len(), 1, "{evaluators:?}");
    let seen = &evaluators[0];
    assert_eq!(seen["id"], of_job["id"], "{seen}");
    assert_eq!(
        seen["identity"], result["report"]["model_identity"],
        "{seen}"
    );
    assert_eq!(seen["at"], job["finished_at"], "{seen} {job}");
    assert_eq!(seen["acknowledged_at"], Value::Null, "{seen}");
    assert!(list(other_vendor).await?.is_empty());

    let id = str_of(seen, "id")?;
    let ack = |token: &str, id: &str| {
        let (token, path) = (token.to_owned(), format!("/v1/identity-alerts/{id}/ack"));
        async move { s.call("POST", &path, Some(&token), Body::None).await }
    };
    let (status, acked) = ack(evaluator, &id).await?;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert!(acked["acknowledged_at"].is_string(), "{acked}");
    let of_job_now = list(vendor)
        .await?
        .into_iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap_or(Value::Null);
    assert_eq!(of_job_now["acknowledged_at"], Value::Null, "{of_job_now}");
    // The check's alert is the vendor's alone; another vendor finds neither.
    let (status, body) = ack(evaluator, &str_of(&check, "id")?).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = ack(other_vendor, &id).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    Ok(())
}

/// Regenerates every probe's text from the model's sealed secret (the test server's credential
/// key is known) and looks for it in the database: in the SQLite file's bytes (and its WAL),
/// or on PostgreSQL in every text the identity tables and the jobs hold.
async fn no_probe_text_is_stored(
    s: &TestServer,
    db: &TestDb,
    vendor_id: &str,
    models: &[(&str, &str)],
) -> anyhow::Result<()> {
    let sealer = CredentialSealer::new(&[42; 32]);
    let mut texts = Vec::new();
    for (name, id) in models {
        let stored = s
            .store()
            .fingerprint(id.parse()?)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{name} is not enrolled"))?;
        let context = format!("proctor model identity secret v1\n{vendor_id}\n{name}");
        let plain = sealer
            .open(&context, &stored.sealed_secret)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let secret = ProbeSecret::from_bytes(plain.as_slice().try_into()?);
        let fingerprint = stored
            .fingerprint
            .ok_or_else(|| anyhow::anyhow!("{name} has no fingerprint"))?;
        for probe in &fingerprint.probes {
            texts.push(secret.prompt(probe.candidate));
        }
    }
    assert_eq!(texts.len(), 64);
    match &db.sqlite_path {
        Some(path) => {
            let mut bytes = std::fs::read(path)?;
            let wal = path.with_extension("db-wal");
            if wal.exists() {
                bytes.extend(std::fs::read(wal)?);
            }
            assert!(bytes.len() > 4096);
            for text in &texts {
                // The digits of a probe's tail alone would match by chance; its words with
                // the tail do not.
                let found = bytes.windows(text.len()).any(|w| w == text.as_bytes());
                assert!(!found, "a probe's text is in the database");
            }
        }
        None => {
            let rows = sqlx::query_scalar::<_, String>(
                "SELECT COALESCE(probes, '') FROM model_fingerprints \
                 UNION ALL SELECT COALESCE(report, '') FROM jobs \
                 UNION ALL SELECT kind || verdict FROM identity_checks",
            )
            .fetch_all(&mut sqlx_connection(db).await?)
            .await?;
            assert!(!rows.is_empty());
            for text in &texts {
                assert!(!rows.iter().any(|r| r.contains(text.as_str())));
            }
        }
    }
    Ok(())
}

async fn sqlx_connection(db: &TestDb) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection;
    Ok(sqlx::PgConnection::connect(&db.url).await?)
}
