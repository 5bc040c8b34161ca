//! A server that drains (SIGTERM, [`proctor_server::Server::drain`]): past its deadline the job
//! it runs stops, gives back what its meter leased and goes back to the queue without spending
//! an attempt, and the next server takes it up at once instead of after the lease.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, TestDb, TestServer, str_of};

/// Longer than the test may take: nothing here waits for a lease to expire.
const LEASE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_server_hands_its_running_job_back_and_the_next_server_finishes_it_at_once()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        hand_back(&db)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        db.cleanup().await?;
    }
    Ok(())
}

async fn hand_back(db: &TestDb) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    // One attempt only: a handed-back job that spent it would fail on the next server.
    let first = TestServer::start_at(db, data.path(), 1, LEASE, 1).await?;
    let (_, vendor) = first.account("acme", "vendor", None).await?;
    let (_, evaluator) = first.account("lab", "evaluator", Some("academic")).await?;
    let model = first
        .builtin_model(&vendor, "slow", "arith?latency_ms=100")
        .await?;
    let grant = first
        .grant(
            &vendor,
            &model,
            json!({"tier": "academic"}),
            json!({"budgets": {"queries_total": 100_000},
                   "overrides": {"limits": {"max_concurrency": 8}}}),
        )
        .await?;
    let grant = str_of(&grant, "id")?;
    let (status, job) = first.submit_arith(&evaluator, &model).await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job = str_of(&job, "id")?;
    first.wait_progress(&evaluator, &job).await?;

    // Drained with no time left: the job is handed back, its block's rest returned.
    let stopped = Instant::now();
    first.stop().await;
    let second = TestServer::start_at(db, data.path(), 1, LEASE, 1).await?;
    let ended = second
        .wait_ended(&evaluator, &job, Duration::from_secs(60))
        .await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(
        ended["attempts"], 1,
        "the handed-back attempt is not spent: {ended}"
    );
    let took = stopped.elapsed();
    assert!(took < LEASE / 2, "taken up after {took:?}, not at once");

    // Both attempts' queries are counted, exactly, and nothing stays held.
    let (status, budget) = second
        .call(
            "GET",
            &format!("/v1/grants/{grant}/budget"),
            Some(&vendor),
            Body::None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{budget}");
    assert_eq!(budget["queries_total"]["reserved"], 0, "{budget}");
    let (_, usage) = second
        .call("GET", "/v1/usage", Some(&vendor), Body::None)
        .await?;
    assert_eq!(usage["total"]["in_flight"], 0, "{usage}");
    let queries = usage["total"]["queries"].as_u64().unwrap_or(0);
    assert_eq!(budget["queries_total"]["used"], queries, "{budget} {usage}");
    // The first attempt's queries were made and count: more than one run's 500.
    assert!(queries > 500, "{usage}");
    second.stop().await;
    Ok(())
}
