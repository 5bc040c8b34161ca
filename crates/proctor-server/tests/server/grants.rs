//! Grants over real HTTP: who a grant covers and until when, manual approval, budgets that
//! hold under concurrency and across two servers, revocation of a running job, the
//! `min_samples` refusal, the ledger per (evaluator, model) with its model-wide caps, bits
//! caps, and the evaluator's output-independent budget view under DP.

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
        // The reason is one of a fixed set of texts (which budget ran out would depend on
        // model outputs); the vendor's budget view below says which.
        assert!(
            ended["reason"]
                .as_str()
                .is_some_and(|r| r.contains("budget ran out")),
            "the job says a budget ran out: {ended}"
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
    // Each job's submission time, for the web view's usage chart.
    for job in usage["by_job"].as_array().into_iter().flatten() {
        let at = job["created_at"].as_str().unwrap_or("");
        assert!(
            humantime::parse_rfc3339(at).is_ok(),
            "created_at {at:?} in {job}"
        );
    }
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
            .is_some_and(|r| r.contains("withheld")),
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
    // The DP jobs hold their worst case from acceptance on: 500 samples x 4 queries each. The
    // evaluator sees that worst case, not the exact count.
    assert_eq!(budget["figures"], "worst-case", "{budget}");
    assert_eq!(
        budget["queries_total"],
        json!({"limit": null, "worst_case": 2 * 500 * 4, "remaining": null}),
        "{budget}"
    );
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
    let queries_then = job_queries(one, &vendor, &job).await?;
    let ended = two
        .wait_ended(&evaluator, &job, Duration::from_secs(30))
        .await?;
    let took = revoked_at.elapsed();
    assert_eq!(ended["status"], "revoked", "{ended}");
    // The other server's job draws from a block it leased, without asking the database; its
    // meter checks the grant at least every 250 ms, so the job stops within a second
    // (`meter::STOP_BOUND`), well before its next lease renewal (every 2 s).
    assert!(took < Duration::from_millis(1500), "stopped after {took:?}");
    // Queries after the revocation: at most a second's worth at 8 in flight and 200 ms each
    // (40), those in flight (8) and what the last batch had not written yet.
    let after = job_queries(one, &vendor, &job).await? - queries_then;
    assert!(after <= 60, "{after} queries after the revocation");
    let (_, usage) = one
        .call("GET", "/v1/usage", Some(&vendor), Body::None)
        .await?;
    assert_eq!(usage["total"]["in_flight"], 0, "{usage}");
    let statement = one.result_statement(&job).await?;
    assert_eq!(statement["predicate"]["status"], "revoked", "{statement}");
    assert_eq!(statement["predicate"]["metrics"], json!({}), "{statement}");
    Ok(())
}

/// The queries `job` settled so far, in its vendor's usage view.
async fn job_queries(s: &TestServer, vendor: &str, job: &str) -> anyhow::Result<u64> {
    let (status, usage) = s.call("GET", "/v1/usage", Some(vendor), Body::None).await?;
    anyhow::ensure!(status == StatusCode::OK, "{status} {usage}");
    Ok(usage["by_job"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["job"] == job))
        .and_then(|j| j["queries"].as_u64())
        .unwrap_or(0))
}

/// The log's size, from its public checkpoint listing.
async fn log_entries(s: &TestServer) -> anyhow::Result<Value> {
    let (status, entries) = s.call("GET", "/v1/log/entries", None, Body::None).await?;
    anyhow::ensure!(status == StatusCode::OK, "{status} {entries}");
    Ok(entries)
}

/// How many jobs `evaluator` has.
async fn job_count(s: &TestServer, evaluator: &str) -> anyhow::Result<usize> {
    let (status, jobs) = s
        .call("GET", "/v1/jobs", Some(evaluator), Body::None)
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "{status} {jobs}");
    Ok(jobs.as_array().map_or(0, Vec::len))
}

/// Submits the arith job, expects a refusal 429 `budget_exhausted` whose message contains
/// `names`, and checks that nothing was logged or listed.
async fn refused_before_logging(
    s: &TestServer,
    evaluator: &str,
    model: &str,
    names: &str,
) -> anyhow::Result<()> {
    let entries = log_entries(s).await?;
    let jobs = job_count(s, evaluator).await?;
    let (status, refused) = s.submit_arith(evaluator, model).await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::TOO_MANY_REQUESTS, "budget_exhausted"),
        "{refused}"
    );
    assert!(
        refused.to_string().contains(names),
        "names {names}: {refused}"
    );
    assert_eq!(
        log_entries(s).await?,
        entries,
        "a refused job is not logged"
    );
    assert_eq!(job_count(s, evaluator).await?, jobs, "nor listed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_under_a_dp_policy_without_epsilon_total_is_refused() -> anyhow::Result<()> {
    on_every_db!(0, dp_grant_needs_epsilon_total)
}

async fn dp_grant_needs_epsilon_total(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    for body in [
        json!({"model": model, "grantee": {"tier": "academic"}, "policy": "strict"}),
        json!({"model": model, "grantee": {"tier": "academic"}, "policy": "strict",
               "budgets": {"queries_total": 100, "bits_total": 1000}}),
    ] {
        let (status, refused) = s
            .call("POST", "/v1/grants", Some(&vendor), Body::Json(body))
            .await?;
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::UNPROCESSABLE_ENTITY, "epsilon_total_required"),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("epsilon_total"),
            "the message says what is missing: {refused}"
        );
    }
    for bad in [
        json!({"epsilon_total": 1, "bits_total": -1}),
        json!({"bits_per_job": -0.5}),
    ] {
        let (status, refused) = s
            .call(
                "POST",
                "/v1/grants",
                Some(&vendor),
                Body::Json(json!({"model": model, "grantee": {"tier": "academic"},
                                  "budgets": bad})),
            )
            .await?;
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{refused}"
        );
    }
    // The most private setting is refused, never silently exact: an epsilon so small that its
    // noise scale is beyond the safe bound.
    let (status, refused) = s
        .call(
            "POST",
            "/v1/grants",
            Some(&vendor),
            Body::Json(json!({"model": model, "grantee": {"tier": "academic"},
                              "policy": "strict", "budgets": {"epsilon_total": 1},
                              "overrides": {"release": {"dp_epsilon": 1e-300}}})),
        )
        .await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::UNPROCESSABLE_ENTITY, "noise_scale_too_large"),
        "{refused}"
    );
    let (_, grants) = s
        .call("GET", "/v1/grants", Some(&vendor), Body::None)
        .await?;
    assert_eq!(grants, json!([]));
    // With a total it is made, and shows its caps.
    let grant = s
        .grant(
            &vendor,
            &model,
            json!({"tier": "academic"}),
            json!({"policy": "strict",
                   "budgets": {"epsilon_total": 3, "bits_per_job": 500, "bits_total": 5000}}),
        )
        .await?;
    assert_eq!(
        grant["budgets"],
        json!({"jobs_per_day": null, "queries_per_day": null, "tokens_per_day": null,
               "queries_total": null, "tokens_total": null, "epsilon_total": 3.0,
               "bits_per_job": 500.0, "bits_total": 5000.0, "cpu_seconds_per_job": null}),
        "{grant}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_grant_a_tier_grant_and_a_regrant_draw_from_one_ledger_per_evaluator_and_model()
-> anyhow::Result<()> {
    on_every_db!(0, one_ledger_per_pair)
}

async fn one_ledger_per_pair(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (evaluator_id, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    // strict spends epsilon 1.0 per job; both grants allow 2.5 to each evaluator.
    let strict = |total: f64| json!({"policy": "strict", "budgets": {"epsilon_total": total}});
    let tier = s
        .grant(&vendor, &model, json!({"tier": "academic"}), strict(2.5))
        .await?;
    let named = s
        .grant(
            &vendor,
            &model,
            json!({"account": evaluator_id}),
            strict(2.5),
        )
        .await?;
    let named = str_of(&named, "id")?;
    for _ in 0..2 {
        let (status, job) = s.submit_arith(&evaluator, &model).await?;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        assert_eq!(job["grant"], named.as_str(), "{job}");
    }
    // The account's grant ends; the tier's covers the evaluator now, with the same ledger.
    let (status, revoked) = s
        .call(
            "POST",
            &format!("/v1/grants/{named}/revoke"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    refused_before_logging(s, &evaluator, &model, "epsilon").await?;
    let (_, budget) = s
        .call(
            "GET",
            &format!("/v1/grants/{}/budget", str_of(&tier, "id")?),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert_eq!(
        budget["epsilon"],
        json!({"total": 2.5, "spent": 2.0, "remaining": 0.5}),
        "{budget}"
    );
    assert_eq!(budget["evaluator"], evaluator_id.as_str(), "{budget}");

    // Another evaluator of the tier has a ledger of its own under the tier's grant.
    let (_, colleague) = s.account("uni-2", "evaluator", Some("academic")).await?;
    let (status, job) = s.submit_arith(&colleague, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");

    // A new grant naming the evaluator again keeps what it spent: 2.0 + 1.0 fits 3.0, and
    // then no more.
    let again = s
        .grant(
            &vendor,
            &model,
            json!({"account": evaluator_id}),
            strict(3.0),
        )
        .await?;
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["grant"], again["id"], "{job}");
    refused_before_logging(s, &evaluator, &model, "epsilon").await?;
    // The vendor reads the named evaluator's ledger on an account grant, and what a tier
    // grant's own jobs spent on a tier grant.
    let (_, budget) = s
        .call(
            "GET",
            &format!("/v1/grants/{}/budget", str_of(&again, "id")?),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(budget["figures"], "exact", "{budget}");
    assert_eq!(
        budget["epsilon"],
        json!({"total": 3.0, "spent": 3.0, "remaining": 0.0}),
        "{budget}"
    );
    let (_, budget) = s
        .call(
            "GET",
            &format!("/v1/grants/{}/budget", str_of(&tier, "id")?),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert!(budget.get("evaluator").is_none(), "{budget}");
    assert_eq!(
        budget["epsilon"],
        json!({"total": 2.5, "spent": 1.0, "remaining": null}),
        "{budget}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_wide_cap_its_vendor_sets_refuses_the_job_that_would_pass_it_before_it_is_logged()
-> anyhow::Result<()> {
    on_every_db!(0, model_wide_cap)
}

async fn model_wide_cap(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, rival) = s.account("rival", "vendor", None).await?;
    let (_, first) = s.account("uni", "evaluator", Some("academic")).await?;
    let (_, second) = s.account("uni-2", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(
        &vendor,
        &model,
        json!({"tier": "academic"}),
        json!({"policy": "strict", "budgets": {"epsilon_total": 5}}),
    )
    .await?;
    let path = format!("/v1/models/{model}/ledger");
    let caps = json!({"epsilon_total": 1.5, "bits_total": null});
    for (token, want) in [
        (&rival, StatusCode::NOT_FOUND),
        (&first, StatusCode::FORBIDDEN),
    ] {
        let (status, body) = s
            .call("PUT", &path, Some(token), Body::Json(caps.clone()))
            .await?;
        assert_eq!(status, want, "{body}");
    }
    let (status, bad) = s
        .call(
            "PUT",
            &path,
            Some(&vendor),
            Body::Json(json!({"epsilon_total": -1})),
        )
        .await?;
    assert_eq!(
        (status, code(&bad)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        "{bad}"
    );
    let (status, ledger) = s
        .call("PUT", &path, Some(&vendor), Body::Json(caps.clone()))
        .await?;
    assert_eq!(status, StatusCode::OK, "{ledger}");
    assert_eq!(
        ledger,
        json!({"model": model, "epsilon_total": 1.5, "bits_total": null,
               "epsilon_spent": 0.0, "bits_spent": 0.0})
    );

    let (status, job) = s.submit_arith(&first, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    // The second evaluator's own ledger has room (5); the model's (1.5, 1.0 spent) does not.
    refused_before_logging(s, &second, &model, "model-wide").await?;
    let (_, view) = s
        .call(
            "GET",
            &format!("/v1/models/{model}"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(view["ledger"]["epsilon_spent"], 1.0, "{view}");
    assert_eq!(view["ledger"]["epsilon_total"], 1.5, "{view}");
    let (_, listed) = s
        .call("GET", "/v1/models", Some(&vendor), Body::None)
        .await?;
    assert_eq!(listed[0]["ledger"], view["ledger"], "{listed}");
    let (_, public) = s
        .call(
            "GET",
            &format!("/v1/models/{model}"),
            Some(&second),
            Body::None,
        )
        .await?;
    assert!(public.get("ledger").is_none(), "{public}");

    // A bits cap bounds every job, DP or not; lifting the epsilon cap lets DP jobs in again.
    let (status, _) = s
        .call(
            "PUT",
            &path,
            Some(&vendor),
            Body::Json(json!({"epsilon_total": null, "bits_total": 1})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    refused_before_logging(s, &second, &model, "model-wide leakage").await?;
    let (status, _) = s
        .call("PUT", &path, Some(&vendor), Body::Json(json!({})))
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, job) = s.submit_arith(&second, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    Ok(())
}

/// The arith example's leakage bound under `policy` (500 items, one metric `accuracy`), as
/// the service computes it before a job runs.
fn arith_bits(policy: &str) -> anyhow::Result<f64> {
    let policy = proctor_core::Policy::named(policy)?;
    let accuracy = proctor_core::MetricSpec {
        name: "accuracy".into(),
        description: String::new(),
        min: 0.0,
        max: 1.0,
    };
    Ok(proctor_core::leakage::bound(&policy, &[accuracy], 500).bits_max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_refuses_a_job_whose_bound_is_above_bits_per_job_and_bits_total_accumulates()
-> anyhow::Result<()> {
    on_every_db!(0, bits_caps)
}

async fn bits_caps(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (evaluator_id, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    let bits = arith_bits("standard")?;
    assert!(bits > 10.0, "{bits}");
    let first = s
        .grant(
            &vendor,
            &model,
            json!({"account": evaluator_id}),
            json!({"budgets": {"bits_per_job": bits - 1.0}}),
        )
        .await?;
    refused_before_logging(s, &evaluator, &model, "bits_per_job").await?;
    s.call(
        "POST",
        &format!("/v1/grants/{}/revoke", str_of(&first, "id")?),
        Some(&vendor),
        Body::None,
    )
    .await?;

    // Room for two jobs' bounds, not three.
    let grant = s
        .grant(
            &vendor,
            &model,
            json!({"account": evaluator_id}),
            json!({"budgets": {"bits_per_job": bits + 1.0, "bits_total": 2.5 * bits}}),
        )
        .await?;
    for _ in 0..2 {
        let (status, job) = s.submit_arith(&evaluator, &model).await?;
        assert_eq!(status, StatusCode::CREATED, "{job}");
    }
    refused_before_logging(s, &evaluator, &model, "bits_total").await?;
    let (_, budget) = s
        .call(
            "GET",
            &format!("/v1/grants/{}/budget", str_of(&grant, "id")?),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    // Each job's bound is counted rounded up to thousandths of a bit.
    let counted = 2.0 * (bits * 1000.0).ceil() / 1000.0;
    let spent = budget["bits"]["spent"].as_f64().unwrap_or(0.0);
    assert!((spent - counted).abs() < 1e-6, "{counted} {budget}");
    let per_job = budget["bits"]["per_job"].as_f64().unwrap_or(0.0);
    assert!((per_job - (bits + 1.0)).abs() < 1e-3, "{budget}");
    let remaining = budget["bits"]["remaining"].as_f64().unwrap_or(-1.0);
    assert!(
        (remaining - (2.5 * bits - counted)).abs() < 1e-2,
        "{budget}"
    );
    // Without DP the view is exact.
    assert_eq!(budget["figures"], "exact", "{budget}");
    assert!(budget["queries_total"].get("used").is_some(), "{budget}");
    Ok(())
}

/// Settled queries in a vendor's usage report.
fn settled(usage: &Value) -> u64 {
    usage["total"]["queries"].as_u64().unwrap_or(0)
}

/// Polls the vendor's usage until more than `after` queries are settled.
async fn usage_after(s: &TestServer, vendor: &str, after: u64) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let (status, usage) = s.call("GET", "/v1/usage", Some(vendor), Body::None).await?;
        anyhow::ensure!(status == StatusCode::OK, "{status} {usage}");
        if settled(&usage) > after {
            return Ok(usage);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "no usage: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_dp_the_evaluators_budget_view_stays_byte_identical_while_a_job_runs_and_usage_stays_exact_for_the_vendor()
-> anyhow::Result<()> {
    on_every_db!(1, dp_budget_view)
}

async fn dp_budget_view(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s
        .builtin_model(&vendor, "slow", "arith?latency_ms=100")
        .await?;
    let grant = s
        .grant(
            &vendor,
            &model,
            json!({"tier": "academic"}),
            json!({"policy": "strict",
                   "budgets": {"epsilon_total": 5, "queries_total": 100_000},
                   "overrides": {"limits": {"max_concurrency": 8}}}),
        )
        .await?;
    let budget_path = format!("/v1/grants/{}/budget", str_of(&grant, "id")?);
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job = str_of(&job, "id")?;

    // The vendor's exact usage moves query by query...
    let before = usage_after(s, &vendor, 0).await?;
    let (status, first) = s
        .call_raw("GET", &budget_path, Some(&evaluator), Body::None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    // ...by a few settled queries between the two polls...
    let later = usage_after(s, &vendor, settled(&before) + 8).await?;
    let (status, second) = s
        .call_raw("GET", &budget_path, Some(&evaluator), Body::None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    // ...while the evaluator's view does not move at all, and shows no exact figure.
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second),
        "the evaluator's DP budget view moved while the job ran"
    );
    let view: Value = serde_json::from_slice(&first)?;
    assert_eq!(view["figures"], "worst-case", "{view}");
    for key in [
        "queries_today",
        "tokens_today",
        "queries_total",
        "tokens_total",
    ] {
        let budget = &view[key];
        assert!(
            budget.get("used").is_none() && budget.get("reserved").is_none(),
            "{key} shows exact usage: {view}"
        );
        assert!(
            budget["worst_case"].as_u64().is_some_and(|w| w > 0),
            "{view}"
        );
    }
    assert_eq!(view["queries_total"]["worst_case"], 500 * 4, "{view}");
    assert_eq!(
        view["queries_total"]["remaining"],
        100_000 - 500 * 4,
        "{view}"
    );
    assert_eq!(view["epsilon"]["spent"], 1.0, "{view}");
    assert!(
        view["bits"]["spent"].as_f64().is_some_and(|b| b > 0.0),
        "{view}"
    );
    // The vendor still sees the exact, moving counts, in its usage and its budget view.
    assert!(settled(&later) > settled(&before), "{before} {later}");
    assert!(
        later["total"]["input_tokens"].as_u64().unwrap_or(0) > 0,
        "{later}"
    );
    let (_, exact) = s
        .call("GET", &budget_path, Some(&vendor), Body::None)
        .await?;
    assert_eq!(exact["figures"], "exact", "{exact}");
    assert!(
        exact["queries_total"]["used"]
            .as_u64()
            .is_some_and(|u| u > 0),
        "{exact}"
    );

    let (status, cancelled) = s
        .call(
            "POST",
            &format!("/v1/jobs/{job}/cancel"),
            Some(&evaluator),
            Body::None,
        )
        .await?;
    assert!(status.is_success(), "{status} {cancelled}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_arith_job_under_strict_pre_registers_its_bound_and_a_lower_bits_per_job_refuses_it()
-> anyhow::Result<()> {
    on_every_db!(0, strict_bits)
}

async fn strict_bits(s: &TestServer, _: &TestDb) -> anyhow::Result<()> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (evaluator_id, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    // By hand (proctor-core's leakage tests spell it out): outcome counts 12·log2 501, the
    // metric log2 501 + 4·log2 101, usage log2 2001 + log2(2000·18448 + 1) + log2 512001,
    // status log2 10 (ten endings), the end among 10 grid points log2 10.
    let by_hand = 12.0 * 501f64.log2()
        + 501f64.log2()
        + 4.0 * 101f64.log2()
        + 2001f64.log2()
        + (2000.0f64 * 18_448.0 + 1.0).log2()
        + 512_001f64.log2()
        + 10f64.log2()
        + 10f64.log2();
    let below = s
        .grant(
            &vendor,
            &model,
            json!({"account": evaluator_id}),
            json!({"policy": "strict", "budgets": {"epsilon_total": 5, "bits_per_job": 204}}),
        )
        .await?;
    refused_before_logging(s, &evaluator, &model, "bits_per_job").await?;
    s.call(
        "POST",
        &format!("/v1/grants/{}/revoke", str_of(&below, "id")?),
        Some(&vendor),
        Body::None,
    )
    .await?;
    s.grant(
        &vendor,
        &model,
        json!({"account": evaluator_id}),
        json!({"policy": "strict", "budgets": {"epsilon_total": 5, "bits_per_job": 205}}),
    )
    .await?;
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let entries = log_entries(s).await?;
    let envelope = entries
        .as_array()
        .and_then(|e| e.first())
        .map(|e| str_of(e, "envelope"))
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("no log entry: {entries}"))?;
    let envelope: Value = serde_json::from_slice(&crate::end_to_end::base64_decode(&envelope)?)?;
    let statement: Value = serde_json::from_slice(&crate::end_to_end::base64_decode(
        envelope["payload"].as_str().unwrap_or(""),
    )?)?;
    let predicate = &statement["predicate"];
    assert_eq!(
        statement["predicateType"],
        "https://proctor.dev/attestation/job-accepted/v3"
    );
    let bits = predicate["leakage"]["bits_max"].as_f64().unwrap_or(0.0);
    assert!((bits - by_hand).abs() < 1e-9, "{bits} vs {by_hand}");
    assert_eq!(predicate["leakage"]["excluded"], json!([]));
    Ok(())
}

/// A job waiting for approval under a grant that expires meanwhile cannot be approved (409,
/// `grant_inactive`): approval would let it run under a grant that covers nothing. The vendor
/// can still reject it.
#[tokio::test]
async fn a_job_cannot_be_approved_after_its_grant_expired() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (evaluator_id, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(
        &vendor,
        &model,
        json!({"account": evaluator_id}),
        json!({"approval": "manual", "expires_at": rfc3339_in(Duration::from_secs(2))}),
    )
    .await?;
    let expires = Instant::now() + Duration::from_secs(2);
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job = str_of(&job, "id")?;
    tokio::time::sleep_until((expires + Duration::from_millis(300)).into()).await;
    let (status, refused) = s
        .call(
            "POST",
            &format!("/v1/approvals/{job}/approve"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::CONFLICT, "grant_inactive"),
        "{refused}"
    );
    assert!(refused.to_string().contains("expired"), "{refused}");
    let (status, rejected) = s
        .call(
            "POST",
            &format!("/v1/approvals/{job}/reject"),
            Some(&vendor),
            Body::Json(json!({"reason": "too late"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    s.stop().await;
    db.cleanup().await
}
