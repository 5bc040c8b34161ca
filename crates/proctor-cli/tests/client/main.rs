//! The client commands against a real `proctor serve` child process: accounts over HTTP, then
//! every user step through the real binary, ending in `proctor verify` on what
//! `proctor attestation get` wrote.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proctor_evals::examples::{ARITH_JSONL, ARITH_WASM};
use serde_json::{Value, json};

mod hostile;
mod replicas;
mod serve_child;

use serve_child::ServeChild;

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path.to_str().expect("utf-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_step_through_the_cli_ends_in_an_attestation_proctor_verify_accepts() {
    let server = ServeChild::start();
    let vendor = server.account("acme", "vendor", None).await;
    let evaluator = server.account("lab", "evaluator", Some("academic")).await;
    let regulator = server.account("agency", "regulator", None).await;
    let files = tempfile::tempdir().expect("temp dir");
    let dir = files.path();

    let config = write(
        dir,
        "model.toml",
        b"adapter = \"builtin\"\nmodel = \"arith\"\n",
    );
    let model = ok(&server.proctor(
        &vendor,
        &[
            "model",
            "register",
            "--name",
            "arith",
            "--version",
            "2026-01",
            "--config",
            &config,
        ],
    ))
    .trim()
    .to_owned();
    assert!(!model.is_empty());

    let wasm = write(dir, "arith.wasm", ARITH_WASM);
    let jsonl = write(dir, "arith.jsonl", ARITH_JSONL.as_bytes());
    let eval = ok(&server.proctor(&evaluator, &["eval", "upload", &wasm]))
        .trim()
        .to_owned();
    assert_eq!(
        eval,
        proctor_core::Sha256Digest::of(ARITH_WASM).to_hex(),
        "the eval's id is its sha256"
    );
    let dataset = ok(&server.proctor(&evaluator, &["dataset", "upload", &jsonl]))
        .trim()
        .to_owned();

    // The vendor grants academic evaluators access, jobs waiting for its approval.
    let grant = ok(&server.proctor(
        &vendor,
        &[
            "grant",
            "create",
            "--model",
            &model,
            "--tier",
            "academic",
            "--approval",
            "manual",
            "--queries-total",
            "1000",
            "--bits-per-job",
            "100000",
            "--bits-total",
            "1000000",
            "--cpu-seconds-per-job",
            "600",
            "--override",
            "queries.max_per_sample=2",
        ],
    ))
    .trim()
    .to_owned();
    let shown: Value = serde_json::from_str(&ok(
        &server.proctor(&vendor, &["grant", "show", &grant, "--json"])
    ))
    .expect("JSON");
    assert_eq!(shown["budgets"]["cpu_seconds_per_job"], 600, "{shown}");
    // The vendor caps its model across all evaluators; only the vendor may.
    let ledger: Value = serde_json::from_str(&ok(&server.proctor(
        &vendor,
        &[
            "model",
            "ledger",
            &model,
            "--epsilon-total",
            "10",
            "--bits-total",
            "1000000000",
            "--json",
        ],
    )))
    .expect("JSON");
    assert_eq!(
        ledger,
        json!({"model": model, "epsilon_total": 10.0, "bits_total": 1e9,
               "epsilon_spent": 0.0, "bits_spent": 0.0})
    );
    let refused = server.proctor(&evaluator, &["model", "ledger", &model]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let models = ok(&server.proctor(&evaluator, &["model", "list"]));
    assert!(
        models.contains(&model) && models.contains(&grant),
        "{models}"
    );

    // The evaluator waits; the vendor inspects the component and approves.
    let waiting = server.proctor_child(
        &evaluator,
        &[
            "job",
            "submit",
            "--eval",
            &eval,
            "--dataset",
            &dataset,
            "--model",
            &model,
            "--wait",
            "--json",
            "--timeout",
            "120s",
        ],
    );
    let started = std::time::Instant::now();
    let pending = loop {
        let pending: Value = serde_json::from_str(&ok(
            &server.proctor(&vendor, &["approval", "list", "--json"])
        ))
        .expect("JSON");
        if let Some(job) = pending[0]["job"].as_str() {
            assert_eq!(pending[0]["eval"]["name"], "arith", "{pending}");
            break job.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never pending");
        std::thread::sleep(Duration::from_millis(200));
    };
    let inspected = dir.join("inspect.wasm");
    ok(&server.proctor(
        &vendor,
        &[
            "approval",
            "download",
            &pending,
            "--out",
            inspected.to_str().expect("utf-8 path"),
        ],
    ));
    assert!(
        std::fs::read(&inspected).expect("read") == ARITH_WASM,
        "the component as submitted"
    );
    let approved = ok(&server.proctor(&vendor, &["approval", "approve", &pending]));
    assert!(approved.contains("approved"), "{approved}");
    let result = ok(&waiting.wait_with_output().expect("the waiting submit ends"));
    let result: Value = serde_json::from_str(&result).expect("exactly one JSON object");
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["report"]["samples"]["ok"], 500, "{result}");
    assert_eq!(result["report"]["metrics"]["accuracy"]["mean"], 1.0);
    let job = result["job"].as_str().expect("job id").to_owned();

    let status = ok(&server.proctor(&evaluator, &["job", "status", &job]));
    assert!(status.contains("succeeded"), "{status}");
    assert!(status.contains("500/500"), "{status}");
    let table = ok(&server.proctor(&evaluator, &["job", "result", &job]));
    assert!(table.contains("accuracy"), "{table}");

    // The dataset's owner reads how often it went to each vendor: one job, its 500 samples.
    let exposure = ok(&server.proctor(&evaluator, &["dataset", "exposure", &dataset]));
    assert!(
        exposure.starts_with("acme  1 jobs  500 items  last "),
        "{exposure}"
    );
    let exposure: Value = serde_json::from_str(&ok(
        &server.proctor(&evaluator, &["dataset", "exposure", &dataset, "--json"])
    ))
    .expect("JSON");
    assert_eq!(
        (
            &exposure[0]["vendor"],
            &exposure[0]["jobs"],
            &exposure[0]["items"]
        ),
        (&json!("acme"), &json!(1), &json!(500)),
        "{exposure}"
    );
    let refused = server.proctor(&vendor, &["dataset", "exposure", &dataset]);
    assert!(!refused.status.success(), "{refused:?}");

    // The regulator keeps the attestation; `proctor verify` checks it offline.
    let kept = dir.join("kept");
    let kept_str = kept.to_str().expect("utf-8 path");
    ok(&server.proctor(
        &regulator,
        &[
            "attestation",
            "get",
            &job,
            "--out",
            kept_str,
            "--eval",
            &wasm,
            "--dataset",
            &jsonl,
        ],
    ));
    let verify = ok(&server.proctor("", &["verify", kept_str]));
    for check in [
        "signature: ok",
        "subjects: ok",
        "checkpoint: ok",
        "inclusion: ok",
    ] {
        assert!(verify.contains(check), "{check} in {verify}");
    }
    let envelope = std::fs::read(kept.join("attestation.json")).expect("read");
    let raw = reqwest::get(format!("{}/v1/attestations/{job}/envelope", server.base))
        .await
        .expect("GET envelope")
        .bytes()
        .await
        .expect("body");
    assert_eq!(envelope, raw.to_vec(), "the envelope's bytes exactly");
    // Never overwritten.
    let again = server.proctor(&regulator, &["attestation", "get", &job, "--out", kept_str]);
    assert_eq!(again.status.code(), Some(2));

    let checkpoint = ok(&server.proctor("", &["log", "checkpoint"]));
    assert!(
        checkpoint.starts_with("proctor.local/log\n2\n"),
        "{checkpoint}"
    );

    // Budgets as the evaluator sees them; exact usage as the vendor does.
    let budget: Value = serde_json::from_str(&ok(
        &server.proctor(&evaluator, &["grant", "budget", &grant, "--json"])
    ))
    .expect("JSON");
    assert_eq!(
        budget["queries_total"],
        json!({"limit": 1000, "used": 500, "reserved": 0, "remaining": 500}),
        "{budget}"
    );
    assert_eq!(budget["bits"]["per_job"], 100000.0, "{budget}");
    assert!(
        budget["bits"]["spent"].as_f64().is_some_and(|b| b > 0.0),
        "the job's leakage bound is spent: {budget}"
    );
    let table = ok(&server.proctor(&evaluator, &["grant", "budget", &grant]));
    assert!(
        table.contains("queries total") && table.contains("bits"),
        "{table}"
    );
    let usage: Value =
        serde_json::from_str(&ok(&server.proctor(&vendor, &["usage", "--json"]))).expect("JSON");
    assert_eq!(usage["total"]["queries"], 500, "{usage}");
    let table = ok(&server.proctor(&vendor, &["usage"]));
    assert!(table.contains("evaluator lab"), "{table}");

    // Revoked: the next submission is refused, in one line saying why.
    let revoked = ok(&server.proctor(&vendor, &["grant", "revoke", &grant]));
    assert!(revoked.contains("revoked"), "{revoked}");
    let refused = server.proctor(
        &evaluator,
        &[
            "job",
            "submit",
            "--eval",
            &eval,
            "--dataset",
            &dataset,
            "--model",
            &model,
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no_grant") && stderr.contains("revoked"),
        "{stderr}"
    );

    // A bad token: exit 2, one line naming the service's refusal.
    let refused = server.proctor("not-a-token", &["eval", "upload", &wasm]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("401 unauthenticated"), "{stderr}");
    // A wrong role is a refusal too.
    let forbidden = server.proctor(&vendor, &["job", "status", &job]);
    assert_eq!(forbidden.status.code(), Some(2), "{forbidden:?}");
}

#[test]
fn a_server_that_is_not_there_is_a_failure_not_a_refusal() {
    let out = Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(["log", "checkpoint", "--server", "http://127.0.0.1:9"])
        .output()
        .expect("running proctor");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

/// A public GET, as JSON.
async fn get_json(base: &str, path: &str) -> Value {
    let bytes = reqwest::get(format!("{base}{path}"))
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// The `status` line of `proctor job status`.
fn job_status(server: &ServeChild, token: &str, job: &str) -> (String, String) {
    let out = ok(&server.proctor(token, &["job", "status", job]));
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    (field("status"), field("attempts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_job_and_restarted_finishes_it_exactly_once() {
    kill_and_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_server_killed_mid_job_and_restarted_finishes_it_exactly_once() {
    let Ok(admin_url) = std::env::var("PROCTOR_TEST_POSTGRES_URL") else {
        eprintln!("PROCTOR_TEST_POSTGRES_URL is not set: this test needs PostgreSQL (CI sets it)");
        return;
    };
    let name = format!("proctor_cli_crash_{}", std::process::id());
    psql(&admin_url, &format!("CREATE DATABASE {name}"));
    let (server, _) = admin_url.rsplit_once('/').expect("a database path");
    kill_and_restart(Some(&format!("{server}/{name}"))).await;
    psql(&admin_url, &format!("DROP DATABASE {name} WITH (FORCE)"));
}

/// Starts a server (on `database`, else SQLite in its data directory), kills it with SIGKILL
/// while a job runs, restarts it, and checks the job ends once and the log stays consistent.
async fn kill_and_restart(database: Option<&str>) {
    let data = tempfile::tempdir().expect("temp dir");
    let mut lease = vec!["--lease", "2s"];
    if let Some(url) = database {
        lease.extend(["--database", url]);
    }
    let first = ServeChild::start_in(data.path(), &lease, true);
    let vendor = first.account("acme", "vendor", None).await;
    let evaluator = first.account("lab", "evaluator", Some("academic")).await;
    let files = tempfile::tempdir().expect("temp dir");
    let dir = files.path();
    // Slow enough (two waves of 3 s at the standard policy's 256 samples in flight) that the
    // job is still running when the server is killed.
    let config = write(
        dir,
        "slow.toml",
        b"adapter = \"builtin\"\nmodel = \"arith?latency_ms=3000\"\n",
    );
    let model = ok(&first.proctor(
        &vendor,
        &[
            "model",
            "register",
            "--name",
            "slow",
            "--version",
            "1",
            "--config",
            &config,
        ],
    ))
    .trim()
    .to_owned();
    let wasm = write(dir, "arith.wasm", ARITH_WASM);
    let jsonl = write(dir, "arith.jsonl", ARITH_JSONL.as_bytes());
    let eval = ok(&first.proctor(&evaluator, &["eval", "upload", &wasm]))
        .trim()
        .to_owned();
    let dataset = ok(&first.proctor(&evaluator, &["dataset", "upload", &jsonl]))
        .trim()
        .to_owned();
    ok(&first.proctor(
        &vendor,
        &["grant", "create", "--model", &model, "--tier", "academic"],
    ));
    let job = ok(&first.proctor(
        &evaluator,
        &[
            "job",
            "submit",
            "--eval",
            &eval,
            "--dataset",
            &dataset,
            "--model",
            &model,
        ],
    ))
    .trim()
    .to_owned();

    let started = std::time::Instant::now();
    while job_status(&first, &evaluator, &job).0 != "running" {
        assert!(started.elapsed() < Duration::from_secs(60), "never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = ok(&first.proctor("", &["log", "checkpoint"]));
    assert!(before.starts_with("proctor.local/log\n1\n"), "{before}");
    let old = write(dir, "old-checkpoint.txt", before.as_bytes());

    // SIGKILL: no shutdown, no lease released.
    let mut first = first;
    first.child.kill().expect("kill -9");
    first.child.wait().expect("reaped");
    drop(first);

    let second = ServeChild::start_in(data.path(), &lease, false);
    assert!(second.admin.is_empty(), "no second admin on a restart");
    let started = std::time::Instant::now();
    let (status, attempts) = loop {
        let (status, attempts) = job_status(&second, &evaluator, &job);
        if !matches!(status.as_str(), "queued" | "running") {
            break (status, attempts);
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "stuck: {status} {attempts}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, "succeeded");
    assert_eq!(attempts, "2", "claimed again after the lease expired");
    let result: Value = serde_json::from_str(&ok(
        &second.proctor(&evaluator, &["job", "result", &job, "--json"])
    ))
    .expect("JSON");
    assert_eq!(result["report"]["samples"]["total"], 500, "{result}");
    // The killed attempt's queries in flight were settled when the job ended, at their worst
    // case (they may have reached the endpoint): nothing is left reserved.
    let usage: Value =
        serde_json::from_str(&ok(&second.proctor(&vendor, &["usage", "--json"]))).expect("JSON");
    assert_eq!(usage["total"]["in_flight"], 0, "{usage}");
    assert!(
        usage["total"]["queries"].as_u64().unwrap_or(0) >= 500,
        "{usage}"
    );

    // Exactly one result: the log holds the pre-registration and one result entry.
    let entries = get_json(&second.base, "/v1/log/entries").await;
    assert_eq!(entries.as_array().map(Vec::len), Some(2), "{entries}");

    // The log after the crash extends the one before it.
    let new = write(
        dir,
        "new-checkpoint.txt",
        ok(&second.proctor("", &["log", "checkpoint"])).as_bytes(),
    );
    let proof = get_json(&second.base, "/v1/log/proof/consistency?old=1&new=2").await;
    let proof = write(dir, "consistency.json", proof.to_string().as_bytes());
    let key = reqwest::get(format!("{}/v1/public-key", second.base))
        .await
        .expect("GET key")
        .bytes()
        .await
        .expect("body");
    let key = write(dir, "public-key.pem", &key);
    let consistent = ok(&second.proctor(
        "",
        &[
            "verify-consistency",
            &old,
            &new,
            "--proof",
            &proof,
            "--key",
            &key,
        ],
    ));
    assert!(!consistent.contains("FAILED"), "{consistent}");
}

/// An OpenAI-compatible endpoint that answers `What is A + B?` after `latency`, counting every
/// request it receives.
async fn counting_endpoint(latency: Duration) -> (String, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |axum::Json(request): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(latency).await;
                let question = request["messages"][0]["content"].as_str().unwrap_or("");
                let sum: i64 = question
                    .trim_start_matches("What is ")
                    .trim_end_matches('?')
                    .split(" + ")
                    .filter_map(|n| n.trim().parse::<i64>().ok())
                    .sum();
                axum::Json(json!({
                    "model": "mock-1",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": sum.to_string()}}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 1}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}/v1", listener.local_addr().expect("bound"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, count)
}

/// Runs `psql` against the test server's admin database.
fn psql(admin_url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([admin_url, "-qc", sql])
        .output()
        .expect("running psql");
    assert!(out.status.success(), "psql {sql}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_postgres_never_overspend_a_grants_query_budget() {
    const BUDGET: u64 = 150;
    let Ok(admin_url) = std::env::var("PROCTOR_TEST_POSTGRES_URL") else {
        eprintln!("PROCTOR_TEST_POSTGRES_URL is not set: this test needs PostgreSQL (CI sets it)");
        return;
    };
    let name = format!(
        "proctor_cli_replicas_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    psql(&admin_url, &format!("CREATE DATABASE {name}"));
    let (server, _) = admin_url.rsplit_once('/').expect("a database path");
    let database = format!("{server}/{name}");
    let (endpoint, requests) = counting_endpoint(Duration::from_millis(100)).await;

    // Two replicas on one database and one data directory (one service key); one worker
    // each, so two jobs running at once run in two processes.
    let data = tempfile::tempdir().expect("temp dir");
    // The mock endpoint is on loopback, which the service calls only when allowed.
    // Without identity checks: every request the endpoint counts is then a sample's.
    let extra = [
        "--database",
        database.as_str(),
        "--allow-model-hosts",
        "127.0.0.1",
        "--no-identity-checks",
    ];
    let one = ServeChild::start_in(data.path(), &extra, true);
    let two = ServeChild::start_in(data.path(), &extra, false);
    let vendor = one.account("acme", "vendor", None).await;
    let evaluator = one.account("lab", "evaluator", Some("academic")).await;
    let files = tempfile::tempdir().expect("temp dir");
    let dir = files.path();
    let config = write(
        dir,
        "model.toml",
        format!("adapter = \"openai\"\nmodel = \"mock-1\"\nbase_url = \"{endpoint}\"\n").as_bytes(),
    );
    let model = ok(&one.proctor(
        &vendor,
        &[
            "model",
            "register",
            "--name",
            "mock",
            "--version",
            "1",
            "--config",
            &config,
        ],
    ))
    .trim()
    .to_owned();
    let budget = BUDGET.to_string();
    let grant = ok(&two.proctor(
        &vendor,
        &[
            "grant",
            "create",
            "--model",
            &model,
            "--tier",
            "academic",
            "--queries-total",
            &budget,
            "--override",
            "limits.max_concurrency=64",
        ],
    ))
    .trim()
    .to_owned();
    let wasm = write(dir, "arith.wasm", ARITH_WASM);
    let jsonl = write(dir, "arith.jsonl", ARITH_JSONL.as_bytes());
    let eval = ok(&one.proctor(&evaluator, &["eval", "upload", &wasm]))
        .trim()
        .to_owned();
    let dataset = ok(&two.proctor(&evaluator, &["dataset", "upload", &jsonl]))
        .trim()
        .to_owned();
    let submit = [
        "job",
        "submit",
        "--eval",
        &eval,
        "--dataset",
        &dataset,
        "--model",
        &model,
    ];
    let jobs = [
        ok(&one.proctor(&evaluator, &submit)).trim().to_owned(),
        ok(&two.proctor(&evaluator, &submit)).trim().to_owned(),
    ];
    let (mut ok_samples, mut exhausted) = (0, 0);
    for (job, server) in jobs.iter().zip([&one, &two]) {
        let started = std::time::Instant::now();
        let status = loop {
            let (status, _) = job_status(server, &evaluator, job);
            if status != "queued" && status != "running" {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "job {job} is stuck"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(status == "succeeded" || status == "failed", "{status}");
        let out = server.proctor(&evaluator, &["job", "result", job, "--json"]);
        let result: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        // A fixed text (which budget ran out could depend on model outputs); the grant's
        // budget view below shows it is the queries.
        assert!(
            result["reason"]
                .as_str()
                .is_some_and(|r| r.contains("budget ran out")),
            "the job says a budget ran out: {result}"
        );
        let samples = &result["report"]["samples"];
        ok_samples += samples["ok"].as_u64().expect("ok");
        exhausted += samples["failed"]["budget-exhausted"]
            .as_u64()
            .expect("count");
    }
    let answered = requests.load(Ordering::SeqCst);
    eprintln!(
        "budget {BUDGET}: the endpoint received {answered} requests; {ok_samples} samples ok"
    );
    assert_eq!(answered, BUDGET, "requests that reached the endpoint");
    assert_eq!(ok_samples, BUDGET);
    assert_eq!(exhausted, 1000 - BUDGET);
    let usage: Value =
        serde_json::from_str(&ok(&two.proctor(&vendor, &["usage", "--json"]))).expect("JSON");
    assert_eq!(usage["total"]["queries"], BUDGET, "{usage}");
    let budget: Value = serde_json::from_str(&ok(
        &one.proctor(&evaluator, &["grant", "budget", &grant, "--json"])
    ))
    .expect("JSON");
    assert_eq!(budget["queries_total"]["remaining"], 0, "{budget}");

    drop(one);
    drop(two);
    psql(&admin_url, &format!("DROP DATABASE {name} WITH (FORCE)"));
}
