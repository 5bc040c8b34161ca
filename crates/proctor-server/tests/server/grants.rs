//! Grants over real HTTP: who a grant covers and until when, manual approval, budgets that
//! hold under concurrency and across two servers, revocation of a running job, the
//! `min_samples` refusal and the epsilon ledger.

use std::time::{Duration, Instant, SystemTime};

use proctor_evals::examples::ARITH_WASM;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Body, TestDb, TestServer, code, str_of};

/// Runs `test` on every database, on a fresh server with `workers` workers.
macro_rules! on_every_db {
    ($workers:expr, $test:ident) => {{
        for db in TestDb::all().await? {
            let server = TestServer::start(&db, $workers).await?;
            $test(&server, &db)
                .await
                .map_err(|e| e.context(format!("on {}", db.label)))?;
            server.stop().await;
            db.cleanup().await?;
        }
        Ok(())
    }};
}

/// Runs `test` on every database, on two servers sharing it (and their data directory, so
/// one service key), with `one` and `two` workers.
macro_rules! on_two_servers {
    ($one:expr, $two:expr, $test:ident) => {{
        for db in TestDb::all().await? {
            let data = tempfile::tempdir()?;
            let lease = Duration::from_secs(6);
            let one = TestServer::start_at(&db, data.path(), $one, lease, 3).await?;
            let two = TestServer::start_at(&db, data.path(), $two, lease, 3).await?;
            $test(&one, &two)
                .await
                .map_err(|e| e.context(format!("on {}", db.label)))?;
            one.stop().await;
            two.stop().await;
            db.cleanup().await?;
        }
        Ok(())
    }};
}

fn rfc3339_in(delay: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() + delay).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_covers_its_tier_or_its_account_until_it_expires_and_commercial_only_by_name()
-> anyhow::Result<()> {
    on_every_db!(0, grant_conditions)
}

async fn grant_conditions(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, academic) = s.account("uni", "evaluator", Some("academic")).await?;
    let (_, auditor) = s.account("audit", "evaluator", Some("auditor")).await?;
    let (commercial_id, commercial) = s.account("corp", "evaluator", Some("commercial")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;

    // No grant at all: refused, and the commercial evaluator is told why.
    let (status, refused) = s.submit_arith(&academic, &model).await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "no_grant")
    );
    let (status, refused) = s.submit_arith(&commercial, &model).await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "no_grant")
    );
    assert!(
        refused.to_string().contains("commercial"),
        "the refusal names the reason: {refused}"
    );

    // A tier grant covers that tier only.
    let tier_grant = s
        .grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    let (status, job) = s.submit_arith(&academic, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["grant"], tier_grant["id"], "{job}");
    assert_eq!(job["approval"], "auto", "{job}");
    for other in [&auditor, &commercial] {
        let (status, refused) = s.submit_arith(other, &model).await?;
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::FORBIDDEN, "no_grant"),
            "{refused}"
        );
    }
    // Evaluators see the models their grants cover, and only their grants.
    let (_, models) = s
        .call("GET", "/v1/models", Some(&academic), Body::None)
        .await?;
    assert_eq!(models[0]["id"], model.as_str(), "{models}");
    assert_eq!(models[0]["grant"], tier_grant["id"], "{models}");
    assert!(
        models[0].get("config").is_none(),
        "no configuration: {models}"
    );
    let (_, models) = s
        .call("GET", "/v1/models", Some(&auditor), Body::None)
        .await?;
    assert_eq!(models, json!([]));
    let (_, grants) = s
        .call("GET", "/v1/grants", Some(&auditor), Body::None)
        .await?;
    assert_eq!(grants, json!([]));

    // A grant naming the commercial account covers it.
    let account_grant = s
        .grant(
            &vendor,
            &model,
            json!({"account": commercial_id}),
            json!({}),
        )
        .await?;
    let (status, job) = s.submit_arith(&commercial, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["grant"], account_grant["id"], "{job}");
    let (_, grants) = s
        .call("GET", "/v1/grants", Some(&commercial), Body::None)
        .await?;
    assert_eq!(grants.as_array().map(Vec::len), Some(1), "{grants}");

    // An expiring grant covers until it expires, then refuses, saying so.
    let expiring = s
        .grant(
            &vendor,
            &model,
            json!({"tier": "auditor"}),
            json!({"expires_at": rfc3339_in(Duration::from_secs(3))}),
        )
        .await?;
    assert_eq!(expiring["status"], "active");
    let (status, job) = s.submit_arith(&auditor, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let expires = Instant::now() + Duration::from_secs(3);
    tokio::time::sleep_until((expires + Duration::from_millis(300)).into()).await;
    let (status, refused) = s.submit_arith(&auditor, &model).await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "no_grant"),
        "{refused}"
    );
    assert!(refused.to_string().contains("expired"), "{refused}");
    let (_, view) = s
        .call(
            "GET",
            &format!("/v1/grants/{}", str_of(&expiring, "id")?),
            Some(&auditor),
            Body::None,
        )
        .await?;
    assert_eq!(view["status"], "expired", "{view}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manual_grants_jobs_wait_until_the_vendor_inspects_and_approves_or_rejects_them()
-> anyhow::Result<()> {
    on_every_db!(1, manual_approval)
}

async fn manual_approval(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
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
    let (_, first) = s.submit_arith(&evaluator, &model).await?;
    let (_, second) = s.submit_arith(&evaluator, &model).await?;
    let (first, second) = (str_of(&first, "id")?, str_of(&second, "id")?);

    // A worker is polling, but a pending job is never claimed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, view) = s
        .call(
            "GET",
            &format!("/v1/jobs/{first}"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(
        (view["status"].as_str(), view["approval"].as_str()),
        (Some("queued"), Some("pending")),
        "{view}"
    );
    assert_eq!(view["progress"]["done"], 0);

    // The vendor sees what it is asked to approve, and can read the component itself.
    let (status, pending) = s
        .call("GET", "/v1/approvals", Some(&vendor), Body::None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending.as_array().map(Vec::len), Some(2), "{pending}");
    assert_eq!(pending[0]["job"], first.as_str());
    assert_eq!(pending[0]["eval"]["name"], "arith");
    assert_eq!(pending[0]["eval"]["metrics"][0]["name"], "accuracy");
    assert_eq!(pending[0]["evaluator"]["name"], "uni");
    assert_eq!(pending[0]["dataset"]["items"], 500);
    let (status, bytes) = s
        .call_raw(
            "GET",
            &format!("/v1/approvals/{first}/component"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes == ARITH_WASM, "the component as uploaded");

    let (status, approved) = s
        .call(
            "POST",
            &format!("/v1/approvals/{first}/approve"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approval"], "approved");
    let ended = s
        .wait_ended(&evaluator, &first, Duration::from_secs(60))
        .await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");

    let (status, rejected) = s
        .call(
            "POST",
            &format!("/v1/approvals/{second}/reject"),
            Some(&vendor),
            Body::Json(json!({"reason": "asks for too much"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(
        (rejected["status"].as_str(), rejected["approval"].as_str()),
        (Some("cancelled"), Some("rejected")),
        "{rejected}"
    );
    let statement = s.result_statement(&second).await?;
    assert_eq!(statement["predicate"]["status"], "cancelled", "{statement}");
    assert!(
        statement["predicate"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("asks for too much")),
        "{statement}"
    );
    let (status, again) = s
        .call(
            "POST",
            &format!("/v1/approvals/{second}/approve"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(
        (status, code(&again)),
        (StatusCode::CONFLICT, "invalid_state")
    );
    let (_, pending) = s
        .call("GET", "/v1/approvals", Some(&vendor), Body::None)
        .await?;
    assert_eq!(pending, json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_budget_holds_exactly_under_64_concurrent_samples_on_two_servers()
-> anyhow::Result<()> {
    on_two_servers!(2, 2, budget_on_two_servers)
}

async fn budget_on_two_servers(one: &TestServer, two: &TestServer) -> anyhow::Result<()> {
    const BUDGET: u64 = 150;
    let (_, vendor) = one.account("acme", "vendor", None).await?;
    let (_, evaluator) = one.account("uni", "evaluator", Some("academic")).await?;
    // A little latency, so 64 samples of each job really are in flight together.
    let model = one
        .builtin_model(&vendor, "arith", "arith?latency_ms=20")
        .await?;
    let grant = one
        .grant(
            &vendor,
            &model,
            json!({"tier": "academic"}),
            json!({"budgets": {"queries_total": BUDGET},
                   "overrides": {"limits": {"max_concurrency": 64}}}),
        )
        .await?;
    let grant = str_of(&grant, "id")?;
    // One job through each server; each server's workers may take either.
    let (status, a) = one.submit_arith(&evaluator, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let (status, b) = two.submit_arith(&evaluator, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    let mut ok = 0;
    let mut exhausted = 0;
    for job in [str_of(&a, "id")?, str_of(&b, "id")?] {
        let ended = one
            .wait_ended(&evaluator, &job, Duration::from_secs(120))
            .await?;
        // A job that got fewer than `min_samples` of the budget is withheld (failed).
        assert!(
            matches!(ended["status"].as_str(), Some("succeeded" | "failed")),
            "{ended}"
        );
        assert!(
            ended["reason"]
                .as_str()
                .is_some_and(|r| r.contains("queries-total")),
            "the job says which budget ran out: {ended}"
        );
        let (_, result) = one
            .call(
                "GET",
                &format!("/v1/jobs/{job}/result"),
                Some(&evaluator),
                Body::None,
            )
            .await?;
        let samples = &result["report"]["samples"];
        ok += samples["ok"].as_u64().unwrap_or(0);
        exhausted += samples["failed"]["budget-exhausted"].as_u64().unwrap_or(0);
    }
    // Every arith sample makes one query: exactly the budget's worth succeeded.
    assert_eq!(ok, BUDGET, "ok samples");
    assert_eq!(exhausted, 1000 - BUDGET, "budget-exhausted samples");

    let (status, usage) = one
        .call("GET", "/v1/usage", Some(&vendor), Body::None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["total"]["queries"], BUDGET, "{usage}");
    assert_eq!(usage["total"]["in_flight"], 0, "{usage}");
    assert_eq!(usage["by_grant"][0]["queries"], BUDGET, "{usage}");
    assert_eq!(usage["by_evaluator"][0]["name"], "uni", "{usage}");
    // A job that found the budget spent before its first query made no reservation at all.
    let by_job: u64 = usage["by_job"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| j["queries"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(by_job, BUDGET, "{usage}");
    let (status, budget) = two
        .call(
            "GET",
            &format!("/v1/grants/{grant}/budget"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{budget}");
    assert_eq!(
        budget["queries_total"],
        json!({"limit": BUDGET, "used": BUDGET, "reserved": 0, "remaining": 0}),
        "{budget}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_a_grant_stops_its_running_job_within_seconds_and_releases_nothing()
-> anyhow::Result<()> {
    on_every_db!(1, revoke_running)
}

/// A vendor, an academic evaluator, a model answering after 200 ms and a grant of it to the
/// academic tier at 8 samples in flight: a job that runs for seconds. Returns the vendor's and
/// the evaluator's tokens, the model's id and the grant's id.
async fn slow_grant(s: &TestServer) -> anyhow::Result<(String, String, String, String)> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s
        .builtin_model(&vendor, "slow", "arith?latency_ms=200")
        .await?;
    let grant = s
        .grant(
            &vendor,
            &model,
            json!({"tier": "academic"}),
            json!({"overrides": {"limits": {"max_concurrency": 8}}}),
        )
        .await?;
    let grant = str_of(&grant, "id")?;
    Ok((vendor, evaluator, model, grant))
}

async fn revoke_running(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (vendor, evaluator, model, grant) = slow_grant(s).await?;
    let (_, job) = s.submit_arith(&evaluator, &model).await?;
    let job = str_of(&job, "id")?;
    // A second job that has not started yet: it ends at once.
    let (_, queued) = s.submit_arith(&evaluator, &model).await?;
    let queued = str_of(&queued, "id")?;
    s.wait_progress(&evaluator, &job).await?;

    let (status, revoked) = s
        .call(
            "POST",
            &format!("/v1/grants/{grant}/revoke"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["grant"]["status"], "revoked");
    assert_eq!(revoked["stopping"], json!([job]), "{revoked}");
    assert_eq!(revoked["ended"], json!([queued]), "{revoked}");
    let revoked_at = Instant::now();
    let ended = s
        .wait_ended(&evaluator, &job, Duration::from_secs(30))
        .await?;
    let took = revoked_at.elapsed();
    assert_eq!(ended["status"], "revoked", "{ended}");
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    let done = ended["progress"]["done"].as_u64().unwrap_or(0);
    assert!(done < 500, "it stopped before its end: {ended}");

    // Nothing released: no report for the evaluator, no metrics in the attestation.
    let (status, result) = s
        .call(
            "GET",
            &format!("/v1/jobs/{job}/result"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["status"], "revoked");
    assert_eq!(result["report"], Value::Null, "{result}");
    for id in [&job, &queued] {
        let statement = s.result_statement(id).await?;
        let predicate = &statement["predicate"];
        assert_eq!(predicate["status"], "revoked", "{statement}");
        assert_eq!(predicate["metrics"], json!({}), "{statement}");
        assert!(predicate["release"].is_null(), "{statement}");
    }
    // New jobs are refused with the reason.
    let (status, refused) = s.submit_arith(&evaluator, &model).await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "no_grant")
    );
    assert!(refused.to_string().contains("revoked"), "{refused}");
    let (_, usage) = s
        .call("GET", "/v1/usage", Some(&vendor), Body::None)
        .await?;
    assert_eq!(usage["total"]["in_flight"], 0, "{usage}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_below_min_samples_fails_with_the_reason_attested() -> anyhow::Result<()> {
    on_every_db!(1, min_samples)
}

async fn min_samples(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    // 500 items, and the grant wants more ok samples than that.
    s.grant(
        &vendor,
        &model,
        json!({"tier": "academic"}),
        json!({"overrides": {"release": {"min_samples": 1000}}}),
    )
    .await?;
    let (_, job) = s.submit_arith(&evaluator, &model).await?;
    let job = str_of(&job, "id")?;
    let ended = s
        .wait_ended(&evaluator, &job, Duration::from_secs(60))
        .await?;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(
        ended["reason"]
            .as_str()
            .is_some_and(|r| r.contains("withheld") && r.contains("1000")),
        "{ended}"
    );
    let statement = s.result_statement(&job).await?;
    let predicate = &statement["predicate"];
    assert_eq!(predicate["status"], "failed", "{statement}");
    assert_eq!(predicate["release"]["status"], "withheld", "{statement}");
    assert_eq!(predicate["metrics"], json!({}), "{statement}");
    assert_eq!(predicate["samples"]["total"], 500, "{statement}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_would_overspend_the_epsilon_ledger_is_refused_before_it_runs()
-> anyhow::Result<()> {
    on_every_db!(0, epsilon_ledger)
}

async fn epsilon_ledger(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    // strict spends epsilon 1.0 per job; the ledger holds 2.5.
    let grant = s
        .grant(
            &vendor,
            &model,
            json!({"tier": "academic"}),
            json!({"policy": "strict", "budgets": {"epsilon_total": 2.5}}),
        )
        .await?;
    let grant = str_of(&grant, "id")?;
    for _ in 0..2 {
        let (status, job) = s.submit_arith(&evaluator, &model).await?;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        assert_eq!(job["policy"]["name"], "strict", "{job}");
    }
    let (_, entries_before) = s.call("GET", "/v1/log/entries", None, Body::None).await?;
    let (status, refused) = s.submit_arith(&evaluator, &model).await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::TOO_MANY_REQUESTS, "budget_exhausted"),
        "{refused}"
    );
    assert!(refused.to_string().contains("epsilon"), "{refused}");
    let (_, entries_after) = s.call("GET", "/v1/log/entries", None, Body::None).await?;
    assert_eq!(entries_before, entries_after, "a refused job is not logged");
    let (_, jobs) = s
        .call("GET", "/v1/jobs", Some(&evaluator), Body::None)
        .await?;
    assert_eq!(jobs.as_array().map(Vec::len), Some(2), "{jobs}");
    let (_, budget) = s
        .call(
            "GET",
            &format!("/v1/grants/{grant}/budget"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(
        budget["epsilon"],
        json!({"total": 2.5, "spent": 2.0, "remaining": 0.5}),
        "{budget}"
    );
    // The DP jobs hold their worst case from acceptance on: 500 samples x 4 queries each.
    assert_eq!(budget["queries_total"]["reserved"], 2 * 500 * 4, "{budget}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_on_one_server_stops_the_job_another_server_runs() -> anyhow::Result<()> {
    // `one` runs no workers: the job can only run on `two`.
    on_two_servers!(0, 1, revoke_elsewhere)
}

async fn revoke_elsewhere(one: &TestServer, two: &TestServer) -> anyhow::Result<()> {
    let (vendor, evaluator, model, grant) = slow_grant(one).await?;
    let (_, job) = one.submit_arith(&evaluator, &model).await?;
    let job = str_of(&job, "id")?;
    one.wait_progress(&evaluator, &job).await?;
    let (status, revoked) = one
        .call(
            "POST",
            &format!("/v1/grants/{grant}/revoke"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["stopping"], json!([job]), "{revoked}");
    let revoked_at = Instant::now();
    let ended = two
        .wait_ended(&evaluator, &job, Duration::from_secs(30))
        .await?;
    let took = revoked_at.elapsed();
    assert_eq!(ended["status"], "revoked", "{ended}");
    // The other server learns of it at the job's next query (every 200 ms here), well before
    // its next lease renewal (every 2 s).
    assert!(took < Duration::from_millis(1500), "stopped after {took:?}");
    let statement = one.result_statement(&job).await?;
    assert_eq!(statement["predicate"]["status"], "revoked", "{statement}");
    assert_eq!(statement["predicate"]["metrics"], json!({}), "{statement}");
    Ok(())
}
