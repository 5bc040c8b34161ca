//! The two hostile declarations of issue 11 through the real binary: `test-guests/wide-range`
//! (one metric over `[0, 1e150]`, sample `i` reporting `2^(440 + i)` for a right answer, so
//! `mean × n` would spell every answer in binary) releases nothing that decodes, and
//! `test-guests/huge-range` (a metric over `[-1e308, 1e308]`, whose width overflows, never
//! reported) is refused with one clear line by `proctor run` and with a 422 by `proctor serve`,
//! which then runs the next job as if nothing happened.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proctor_evals::examples::{ARITH_JSONL, ARITH_WASM};
use proctor_evals::test_guests::{HUGE_RANGE, WIDE_RANGE};
use serde_json::{Value, json};

fn proctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(args)
        .env(
            "PROCTOR_CACHE_DIR",
            std::env::temp_dir().join("proctor-cli-test-cache"),
        )
        .output()
        .expect("running proctor")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writing a test file");
    path.to_string_lossy().into_owned()
}

/// The wide-range attack's 50 items: item `i` asks `What is {i} + 1000?`.
fn wide_items() -> String {
    (0..50)
        .map(|i| format!("{{\"a\": {i}, \"b\": 1000}}\n"))
        .collect()
}

#[test]
fn proctor_run_refuses_a_metric_whose_width_overflows_with_exit_2_and_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = write(dir.path(), "huge-range.wasm", HUGE_RANGE);
    let jsonl = write(dir.path(), "items.jsonl", wide_items().as_bytes());
    // Under strict it used to panic in 3 runs out of 4: run it more often than that.
    for policy in ["strict", "strict", "strict", "strict", "standard"] {
        let out = proctor(&[
            "run",
            &wasm,
            "--dataset",
            &jsonl,
            "--model",
            "builtin:arith",
            "--policy",
            policy,
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{policy}: {stderr}");
        assert!(out.stdout.is_empty(), "{policy}: nothing on stdout");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("`huge`"), "names the metric: {stderr}");
        assert!(stderr.contains("finite"), "says why: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Clear: the bounds short (1e308, not 309 digits), the cause said once.
        assert!(stderr.len() < 400, "{} bytes: {stderr}", stderr.len());
    }
}

/// Reads `mean × n` of the wide-range report as the attacker would: the sum of `2^(440 + i)`
/// over the samples answered right, bit `i` for sample `i`.
fn decode(metric: &Value) -> Option<u64> {
    let sum = metric["mean"].as_f64()? * metric["n"].as_f64()?;
    let bits = (sum / 2f64.powi(440)).round();
    ((0.0..=((1u64 << 50) - 1) as f64).contains(&bits)).then_some(bits as u64)
}

#[test]
fn proctor_run_of_a_metric_over_0_to_1e150_releases_no_sum_the_answers_decode_from() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = write(dir.path(), "wide-range.wasm", WIDE_RANGE);
    let jsonl = write(dir.path(), "items.jsonl", wide_items().as_bytes());
    // builtin:arith answers every item right: the secret is 50 one bits.
    let all_right = (1u64 << 50) - 1;
    for policy in ["standard", "strict", "strict", "strict"] {
        let out = proctor(&[
            "run",
            &wasm,
            "--dataset",
            &jsonl,
            "--model",
            "builtin:arith",
            "--policy",
            policy,
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{policy}: {stderr}");
        let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        let Some(bits) = report["metrics"].get("bits") else {
            // Withheld (strict counts the ok samples with noise against its 50): nothing out.
            let withheld = report["release"]["status"] == "withheld"
                || report["release"]["withheld_metrics"]
                    .as_array()
                    .is_some_and(|names| names.iter().any(|name| name == "bits"));
            assert!(withheld, "{report}");
            continue;
        };
        // On the range-relative grid: 10^decimals + 1 values, whatever the range.
        let decimals = report["release"]["decimals"].as_i64().expect("decimals");
        let steps = 10f64.powi(i32::try_from(decimals).expect("small"));
        let mean = bits["mean"].as_f64().expect("a mean");
        let k = mean / 1e150 * steps;
        assert!(
            (k - k.round()).abs() < 1e-6,
            "{policy}: mean {mean} off the grid"
        );
        assert_ne!(
            decode(bits),
            Some(all_right),
            "{policy}: the answers decode from mean × n: {report}"
        );
    }
}

/// A `proctor serve` child on a free loopback port with its own data directory; killed on drop.
struct ServeChild {
    child: Child,
    base: String,
    admin: String,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl ServeChild {
    fn start() -> ServeChild {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_proctor"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("PROCTOR_DATABASE_URL")
            .env_remove("PROCTOR_CREDENTIAL_KEY")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting proctor serve");
        let stderr = child.stderr.take().expect("piped stderr");
        // The reader thread keeps draining stderr, so the child never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("serve: {line}");
                let _ = tx.send(line);
            }
        });
        let (mut admin, mut base) = (None, None);
        let mut previous = String::new();
        while admin.is_none() || base.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("proctor serve printed its token and address");
            if previous.contains("token is shown once") {
                admin = Some(line.trim().to_owned());
            }
            if let Some(url) = line.split("listening on ").nth(1) {
                base = Some(url.trim().to_owned());
            }
            previous = line;
        }
        ServeChild {
            child,
            base: base.expect("address"),
            admin: admin.expect("admin token"),
            http: reqwest::Client::new(),
            _data: data,
        }
    }

    /// Sends a request with `token`; a JSON body as JSON, bytes as an octet stream. Returns
    /// the status and the body as JSON (a string when it is not JSON).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Result<Value, &[u8]>>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        request = match body {
            Some(Ok(json)) => request
                .header("content-type", "application/json")
                .body(json.to_string()),
            Some(Err(bytes)) => request
                .header("content-type", "application/octet-stream")
                .body(bytes.to_vec()),
            None => request,
        };
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn post(&self, path: &str, token: &str, body: Result<Value, &[u8]>) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    /// An account with a token, made by the admin.
    async fn account(&self, name: &str, role: &str, tier: Option<&str>) -> String {
        let mut body = json!({"name": name, "role": role});
        if let Some(tier) = tier {
            body["tier"] = tier.into();
        }
        let (status, account) = self.post("/v1/accounts", &self.admin, Ok(body)).await;
        assert_eq!(status, 201, "{account}");
        let id = account["id"].as_str().expect("an account id");
        let (status, token) = self
            .post(
                &format!("/v1/accounts/{id}/tokens"),
                &self.admin,
                Ok(json!({"label": "test"})),
            )
            .await;
        assert_eq!(status, 201, "{token}");
        token["token"].as_str().expect("a token").to_owned()
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proctor_serve_refuses_a_metric_whose_width_overflows_and_then_runs_the_next_job() {
    let mut server = ServeChild::start();
    let vendor = server.account("acme", "vendor", None).await;
    let evaluator = server.account("uni", "evaluator", Some("academic")).await;
    let (status, model) = server
        .post(
            "/v1/models",
            &vendor,
            Ok(json!({"name": "arith", "version": "1",
                      "config": {"adapter": "builtin", "model": "arith"}})),
        )
        .await;
    assert_eq!(status, 201, "{model}");
    let model = model["id"].as_str().expect("a model id").to_owned();
    let (status, grant) = server
        .post(
            "/v1/grants",
            &vendor,
            Ok(json!({"model": model, "grantee": {"tier": "academic"},
                      "policy": "strict", "budgets": {"epsilon_total": 4.0}})),
        )
        .await;
    assert_eq!(status, 201, "{grant}");

    // Two of them used to stop a default server: try more than that.
    for _ in 0..3 {
        let (status, refused) = server.post("/v1/evals", &evaluator, Err(HUGE_RANGE)).await;
        assert_eq!(status, 422, "{refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("`huge`"), "names the metric: {refused}");
        assert!(message.contains("finite"), "says why: {refused}");
    }
    // Refused, so never stored: a job of it is refused too.
    let (status, dataset) = server
        .post("/v1/datasets", &evaluator, Err(ARITH_JSONL.as_bytes()))
        .await;
    assert!(matches!(status, 200 | 201), "{dataset}");
    let dataset = dataset["id"].as_str().expect("a dataset id").to_owned();
    let huge = proctor_core::Sha256Digest::of(HUGE_RANGE).to_hex();
    let (status, refused) = server
        .post(
            "/v1/jobs",
            &evaluator,
            Ok(json!({"eval": huge, "dataset": dataset, "model": model})),
        )
        .await;
    assert_eq!(status, 404, "{refused}");

    // The same server, its worker untouched, runs the arithmetic example to its end.
    let (status, eval) = server.post("/v1/evals", &evaluator, Err(ARITH_WASM)).await;
    assert!(matches!(status, 200 | 201), "{eval}");
    let (status, job) = server
        .post(
            "/v1/jobs",
            &evaluator,
            Ok(json!({"eval": eval["id"], "dataset": dataset, "model": model})),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let job = job["id"].as_str().expect("a job id").to_owned();
    let started = Instant::now();
    let view = loop {
        let (status, view) = server.get(&format!("/v1/jobs/{job}"), &evaluator).await;
        assert_eq!(status, 200, "{view}");
        if !matches!(view["status"].as_str(), Some("queued" | "running")) {
            break view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stuck: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view["status"], "succeeded", "{view}");
    let (status, result) = server
        .get(&format!("/v1/jobs/{job}/result"), &evaluator)
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result["report"]["release"]["status"], "released",
        "{result}"
    );
    assert!(
        server
            .child
            .try_wait()
            .expect("the child's state")
            .is_none(),
        "the server process is still running"
    );
}
