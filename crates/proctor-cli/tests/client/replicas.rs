//! Three `proctor serve` replicas on one PostgreSQL, under faults (issue 12): 300 jobs
//! across them under three grants (two with budgets that run out), one replica killed with
//! SIGKILL mid-way and another stopped with SIGTERM (it drains and hands its jobs back). Every
//! job ends exactly once with one result entry; no grant is overspent by one query or token;
//! every query the endpoint answered is counted (a killed replica's open blocks at their worst
//! case); and every checkpoint any replica served is consistent with every other.
//!
//! It needs PostgreSQL (`PROCTOR_TEST_POSTGRES_URL`, which CI sets); without it, it says so
//! and passes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use proctor_attest::{Checkpoint, ConsistencyProof, VerifyingKey};
use proctor_evals::examples::ARITH_WASM;
use serde_json::{Value, json};

use crate::serve_child::ServeChild;

const JOBS: usize = 300;
const ITEMS: u64 = 40;
/// Tokens the endpoint reports per request: 7 in, 1 out.
const TOKENS_PER_QUERY: u64 = 8;

/// What the endpoint answered, per API key.
#[derive(Default)]
struct Answered {
    by_key: Mutex<HashMap<String, (u64, u64)>>,
}

/// An OpenAI-compatible endpoint that answers `What is A + B?` after a few milliseconds and
/// counts what it answered per API key (one key per model, so per grant).
async fn endpoint() -> (String, Arc<Answered>) {
    let answered = Arc::new(Answered::default());
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(answer))
        .with_state(answered.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), answered)
}

async fn answer(
    State(answered): State<Arc<Answered>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(25)).await;
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start_matches("Bearer ")
        .to_owned();
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let numbers: Vec<i64> = prompt
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let sum: i64 = numbers.iter().take(2).sum();
    {
        let mut by_key = answered
            .by_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = by_key.entry(key).or_default();
        counts.0 += 1;
        counts.1 += TOKENS_PER_QUERY;
    }
    Json(json!({
        "id": "c", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": sum.to_string()},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}
    }))
}

/// A fresh PostgreSQL database, dropped at the end.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    fn create(admin: &str) -> PgDb {
        let name = format!("proctor_replicas_{}", std::process::id());
        psql(admin, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(admin, &format!("CREATE DATABASE {name}"));
        let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
        let (server, _) = base.rsplit_once('/').expect("a database path");
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        PgDb {
            admin: admin.to_owned(),
            url: format!("{server}/{name}{query}"),
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-qc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Api {
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        base: &str,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            // A replica that was killed.
            Err(_) => (0, Value::Null),
        }
    }

    async fn upload(&self, base: &str, path: &str, token: &str, bytes: Vec<u8>) -> String {
        let resp = self
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let body: Value = resp.json().await.expect("upload JSON");
        body["id"].as_str().expect("an id").to_owned()
    }

    async fn checkpoint(&self, base: &str) -> Option<Vec<u8>> {
        let resp = self
            .http
            .get(format!("{base}/v1/log/checkpoint"))
            .send()
            .await
            .ok()?;
        resp.status().is_success().then_some(())?;
        Some(resp.bytes().await.ok()?.to_vec())
    }
}

fn copy_keys(from: &Path, to: &Path) {
    for file in [
        proctor_server::state::SERVICE_KEY_FILE,
        proctor_server::state::CREDENTIAL_KEY_FILE,
    ] {
        std::fs::copy(from.join(file), to.join(file)).expect("copying a key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_postgres_survive_a_sigkill_and_a_sigterm_without_a_lost_or_overspent_query()
 {
    let Ok(admin_url) = std::env::var("PROCTOR_TEST_POSTGRES_URL") else {
        eprintln!("skipped: PROCTOR_TEST_POSTGRES_URL is not set (CI sets it)");
        return;
    };
    let db = PgDb::create(&admin_url);
    let (endpoint_url, answered) = endpoint().await;
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect();
    // The third replica drains for 100 ms only: the jobs it runs when it is stopped are handed
    // back to the queue.
    let drains = ["2s", "2s", "100ms"];
    let args = |n: usize| {
        [
            "--database",
            &db.url,
            "--lease",
            "3s",
            "--drain",
            drains[n],
            "--allow-model-hosts",
            "127.0.0.1",
            "--quota-unfinished-jobs",
            "1000",
            "--quota-uploads-per-hour",
            "100000",
            // Identity probes are the service's own queries, which no grant counts: without
            // them every query the endpoint answers is a sample's, to match against the grants.
            "--no-identity-checks",
        ]
    };
    let first = ServeChild::start_with_workers(dirs[0].path(), &args(0), true, 2);
    let mut replicas = vec![first];
    for (n, dir) in dirs.iter().enumerate().skip(1) {
        copy_keys(dirs[0].path(), dir.path());
        replicas.push(ServeChild::start_with_workers(
            dir.path(),
            &args(n),
            false,
            2,
        ));
    }
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let admin = replicas[0].admin.clone();
    let api = Api {
        http: reqwest::Client::new(),
    };

    // A vendor, three evaluators, a model (its own API key) and an account grant each: one
    // without budgets, one whose queries run out, one whose tokens do.
    let vendor = replicas[0].account("acme", "vendor", None).await;
    let budgets = [
        json!({}),
        json!({"queries_total": 1_000}),
        json!({"tokens_total": 14_000}),
    ];
    let mut evaluators = Vec::new();
    let mut grants = Vec::new();
    let dataset: String = (0..ITEMS)
        .map(|i| format!("{{\"a\": {i}, \"b\": {}}}\n", i * 3))
        .collect();
    for (n, budgets) in budgets.iter().enumerate() {
        let (status, model) = api
            .call(
                &bases[0],
                "POST",
                "/v1/models",
                &vendor,
                Some(json!({
                    "name": format!("m{n}"), "version": "1",
                    "config": {"adapter": "openai", "model": format!("m{n}"), "base_url": endpoint_url},
                    "credential": format!("key-{n}"),
                })),
            )
            .await;
        assert_eq!(status, 201, "{model}");
        let evaluator = replicas[0]
            .account(&format!("lab{n}"), "evaluator", Some("academic"))
            .await;
        let (_, me) = api.call(&bases[0], "GET", "/v1/me", &evaluator, None).await;
        let (status, grant) = api
            .call(
                &bases[0],
                "POST",
                "/v1/grants",
                &vendor,
                Some(json!({
                    "model": model["id"], "grantee": {"account": me["id"]}, "budgets": budgets,
                    "overrides": {"limits": {"max_concurrency": 4}},
                })),
            )
            .await;
        assert_eq!(status, 201, "{grant}");
        let eval = api
            .upload(&bases[0], "/v1/evals", &evaluator, ARITH_WASM.to_vec())
            .await;
        let data = api
            .upload(
                &bases[0],
                "/v1/datasets",
                &evaluator,
                dataset.clone().into_bytes(),
            )
            .await;
        grants.push((
            grant["id"].as_str().expect("grant id").to_owned(),
            format!("key-{n}"),
            budgets.clone(),
        ));
        evaluators.push((evaluator, eval, data, model["id"].clone()));
    }

    // 300 jobs, round-robin over evaluators and the live replicas, collecting every checkpoint
    // the live replicas serve on the way; one replica is killed after a third of the jobs were
    // submitted and another stopped after two thirds, while jobs run on both.
    let mut checkpoints: Vec<Vec<u8>> = Vec::new();
    let mut alive = [true, true, true];
    let mut sigterm_exit = None;
    let mut jobs = Vec::new();
    for n in 0..JOBS {
        if n % 10 == 0 {
            for (r, base) in bases.iter().enumerate() {
                if alive[r]
                    && let Some(note) = api.checkpoint(base).await
                {
                    checkpoints.push(note);
                }
            }
        }
        if n == JOBS / 3 {
            // SIGKILL: its jobs keep their leases until they expire, its blocks stay open.
            replicas[1].child.kill().expect("SIGKILL");
            replicas[1].child.wait().expect("reaped");
            alive[1] = false;
            eprintln!("replicas: SIGKILL after {n} jobs submitted");
        }
        if n == 2 * JOBS / 3 {
            let pid = replicas[2].child.id().to_string();
            let term = Command::new("kill").args(["-TERM", &pid]).status();
            assert!(term.is_ok_and(|s| s.success()), "kill -TERM {pid}");
            let stopping = Instant::now();
            let status = replicas[2].child.wait().expect("waited");
            sigterm_exit = Some((status, stopping.elapsed()));
            alive[2] = false;
            eprintln!(
                "replicas: SIGTERM after {n} jobs submitted; exit {status} after {:?}",
                stopping.elapsed()
            );
        }
        let (token, eval, data, model) = &evaluators[n % 3];
        let live: Vec<&String> = bases
            .iter()
            .zip(alive)
            .filter(|(_, a)| *a)
            .map(|(b, _)| b)
            .collect();
        let (status, job) = api
            .call(
                live[n % live.len()],
                "POST",
                "/v1/jobs",
                token,
                Some(json!({"eval": eval, "dataset": data, "model": model})),
            )
            .await;
        assert_eq!(status, 201, "{job}");
        jobs.push((n % 3, job["id"].as_str().expect("job id").to_owned()));
    }
    let started = Instant::now();
    loop {
        if let Some(note) = api.checkpoint(&bases[0]).await {
            checkpoints.push(note);
        }
        let ended = ended_jobs(&api, &bases[0], &evaluators).await;
        if ended == JOBS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {ended} of {JOBS} jobs ended in ten minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(note) = api.checkpoint(&bases[0]).await {
        checkpoints.push(note);
    }
    let (status, drained_in) = sigterm_exit.expect("the SIGTERM replica stopped");
    assert!(
        status.success(),
        "the drained replica exits cleanly: {status}"
    );
    // --drain 100ms, then at most the hand-back grace (10 s) and the store's close.
    assert!(
        drained_in < Duration::from_secs(15),
        "drained in {drained_in:?}"
    );

    // Every job ended once, with one pre-registration and one result entry.
    let mut entries: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut start = 0_u64;
    loop {
        let (status, page) = api
            .call(
                &bases[0],
                "GET",
                &format!("/v1/log/entries?start={start}&limit=1000"),
                &admin,
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        for entry in &page {
            let counts = entries
                .entry(entry["job_id"].as_str().unwrap_or("").to_owned())
                .or_default();
            match entry["kind"].as_str() {
                Some("result") => counts.1 += 1,
                _ => counts.0 += 1,
            }
        }
        start += page.len() as u64;
    }
    assert_eq!(start, 2 * JOBS as u64, "two entries per job, no more");
    for (_, job) in &jobs {
        assert_eq!(entries.get(job), Some(&(1, 1)), "job {job}");
    }
    // The kill hit running jobs: another replica ran them again once their leases expired.
    let mut retried = 0;
    for (n, job) in &jobs {
        let (status, view) = api
            .call(
                &bases[0],
                "GET",
                &format!("/v1/jobs/{job}"),
                &evaluators[*n].0,
                None,
            )
            .await;
        assert_eq!(status, 200, "{view}");
        retried += usize::from(view["attempts"].as_u64().unwrap_or(0) > 1);
    }
    eprintln!("replicas: {retried} jobs ran more than once");
    assert!(retried > 0, "the SIGKILL hit no running job");

    // No grant overspent; every answered query counted.
    let (status, usage) = api.call(&bases[0], "GET", "/v1/usage", &vendor, None).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["total"]["in_flight"], 0, "{usage}");
    let counted = answered
        .by_key
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for (grant, key, budgets) in &grants {
        let (status, budget) = api
            .call(
                &bases[0],
                "GET",
                &format!("/v1/grants/{grant}/budget"),
                &vendor,
                None,
            )
            .await;
        assert_eq!(status, 200, "{budget}");
        let used = |what: &str| budget[what]["used"].as_u64().unwrap_or(0);
        let (queries, tokens) = (used("queries_total"), used("tokens_total"));
        if let Some(limit) = budgets["queries_total"].as_u64() {
            assert!(
                queries <= limit,
                "grant {grant}: {queries} queries of {limit}"
            );
        }
        if let Some(limit) = budgets["tokens_total"].as_u64() {
            assert!(tokens <= limit, "grant {grant}: {tokens} tokens of {limit}");
        }
        let (answered_queries, answered_tokens) = counted.get(key).copied().unwrap_or_default();
        assert!(
            answered_queries <= queries && answered_tokens <= tokens,
            "grant {grant}: the endpoint answered {answered_queries} queries ({answered_tokens} \
             tokens), the grant counted {queries} ({tokens})"
        );
        eprintln!(
            "replicas: grant {key}: endpoint {answered_queries} queries, counted {queries} \
             ({} at worst case for the killed replica's open blocks)",
            queries - answered_queries
        );
    }

    // One log: every checkpoint any replica served is consistent with every larger one.
    let pem = api
        .http
        .get(format!("{}/v1/public-key", bases[0]))
        .send()
        .await
        .expect("GET /v1/public-key")
        .text()
        .await
        .expect("the key's PEM");
    let key = VerifyingKey::from_pem(&pem).expect("the service key");
    let mut heads: BTreeMap<u64, Checkpoint> = BTreeMap::new();
    for note in &checkpoints {
        let checkpoint =
            Checkpoint::open(note, &key).expect("a checkpoint signed by the service key");
        if let Some(seen) = heads.get(&checkpoint.size) {
            assert_eq!(
                seen.root, checkpoint.root,
                "two trees of size {}",
                checkpoint.size
            );
        }
        heads.insert(checkpoint.size, checkpoint);
    }
    let sizes: Vec<u64> = heads.keys().copied().collect();
    let mut proofs = 0;
    for (i, &old) in sizes.iter().enumerate() {
        for &new in &sizes[i + 1..] {
            let (status, proof) = api
                .call(
                    &bases[0],
                    "GET",
                    &format!("/v1/log/proof/consistency?old={old}&new={new}"),
                    &admin,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{proof}");
            let proof = ConsistencyProof::from_json(proof.to_string().as_bytes()).expect("a proof");
            proof
                .verify(&heads[&old].root, &heads[&new].root)
                .unwrap_or_else(|e| panic!("checkpoints {old} and {new} disagree: {e}"));
            proofs += 1;
        }
    }
    eprintln!(
        "replicas: {} checkpoints of {} sizes, {proofs} consistency proofs verified",
        checkpoints.len(),
        sizes.len()
    );
}

/// How many of the evaluators' jobs have ended.
async fn ended_jobs(
    api: &Api,
    base: &str,
    evaluators: &[(String, String, String, Value)],
) -> usize {
    let mut ended = 0;
    for (token, ..) in evaluators {
        let (status, jobs) = api
            .call(base, "GET", "/v1/jobs?limit=1000", token, None)
            .await;
        assert_eq!(status, 200, "{jobs}");
        ended += jobs
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .filter(|j| !matches!(j["status"].as_str(), Some("queued" | "running")))
                    .count()
            })
            .unwrap_or(0);
    }
    ended
}
