//! A witnessed log across processes and implementations: `proctor serve` asks three witnesses
//! to cosign (two `proctor witness` processes and `aics-witness`, a tlog-witness written by
//! others, from PyPI) at a quorum of 2; jobs run, and the cosigned checkpoint carries
//! cosignatures that verify. Then a second server on a copy of the database appends
//! differently (a forked log): every witness that saw the first branch refuses it and serves
//! both checkpoints as evidence.
//!
//! `aics-witness` is found at `$PROCTOR_AICS_WITNESS`, else on `PATH`;
//! `.ci/witness-interop.sh` installs it (pinned) and runs this test with
//! `PROCTOR_REQUIRE_AICS_WITNESS=1`, under which its absence fails the test instead of
//! skipping it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proctor_attest::note::SignedNote;
use proctor_attest::{Checkpoint, SigningKey, VerifyingKey, Vkey, cosignature};
use serde_json::{Value, json};

const ORIGIN: &str = "proctor.test/log";
const REQUIRE_ENV: &str = "PROCTOR_REQUIRE_AICS_WITNESS";
const TOOL_ENV: &str = "PROCTOR_AICS_WITNESS";

/// The `aics-witness` executable, if there is one.
fn aics_witness() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(TOOL_ENV) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("aics-witness"))
        .find(|path| path.is_file())
}

/// A child process killed on drop, whose stderr lines are echoed and kept.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    fn spawn(mut command: Command, label: &'static str) -> Process {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{label}: {line}");
                let _ = tx.send(line);
            }
        });
        Process { child, lines }
    }

    /// The `http://host:port` after "listening on ", and the lines before it.
    fn url(&self) -> (String, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the process printed where it listens");
            if let Some(rest) = line.split("listening on ").nth(1) {
                let url = rest.split_whitespace().next().expect("an address");
                return (url.trim_end_matches('/').to_owned(), before);
            }
            before.push(line);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proctor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proctor"));
    command
        .env_remove("PROCTOR_DATABASE_URL")
        .env_remove("PROCTOR_CREDENTIAL_KEY")
        .env_remove("PROCTOR_ADMIN_TOKEN")
        .env("RUST_LOG", "info");
    command
}

fn stdout_of(mut command: Command) -> String {
    let out = command.output().expect("running a command");
    assert!(
        out.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// A witness of ours or theirs: its cosigner name, vkey, URL and process.
struct RunningWitness {
    name: String,
    vkey: String,
    url: String,
    _process: Process,
    /// `aics-witness`'s config file (its evidence is read through its CLI).
    aics_config: Option<PathBuf>,
}

fn proctor_witness(dir: &Path, name: &str, log_vkey: &str) -> RunningWitness {
    let key = dir.join(format!("{}.pem", name.replace('/', "_")));
    let mut keys = proctor();
    keys.args(["witness", "keys", "--name", name, "--key"])
        .arg(&key);
    let vkey = stdout_of(keys).trim().to_owned();
    let mut serve = proctor();
    serve
        .args([
            "witness",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
        ])
        .arg("--key")
        .arg(&key)
        .arg("--db")
        .arg(dir.join(format!("{}.db", name.replace('/', "_"))))
        .arg("--log")
        .arg(format!("{ORIGIN}={log_vkey}"));
    let process = Process::spawn(serve, "proctor witness");
    let (url, _) = process.url();
    RunningWitness {
        name: name.to_owned(),
        vkey,
        url,
        _process: process,
        aics_config: None,
    }
}

/// `aics-witness SUBCOMMAND --config CONFIG` (its options follow the subcommand).
fn aics(tool: &Path, subcommand: &str, config: &Path) -> Command {
    let mut command = Command::new(tool);
    command.arg(subcommand).arg("--config").arg(config);
    command
}

fn aics_witness_process(tool: &Path, dir: &Path, name: &str, log_vkey: &str) -> RunningWitness {
    let config = dir.join("aics-witness.json");
    let mut init = Command::new(tool);
    init.args(["init", "--config"])
        .arg(&config)
        .args(["--name", name, "--listen", "127.0.0.1:0"]);
    let vkey = stdout_of(init).trim().to_owned();
    let mut add = aics(tool, "add-log", &config);
    add.args(["--origin", ORIGIN, "--vkey", log_vkey]);
    stdout_of(add);
    let mut serve = Command::new(tool);
    serve.args(["serve", "--config"]).arg(&config);
    let process = Process::spawn(serve, "aics-witness");
    let (url, _) = process.url();
    RunningWitness {
        name: name.to_owned(),
        vkey,
        url,
        _process: process,
        aics_config: Some(config),
    }
}

/// `proctor serve` on `data`, asking `witnesses` at a quorum of 2: the process, its URL and
/// the first admin's token (empty unless this start made the admin).
fn serve(data: &Path, witnesses: &[RunningWitness]) -> (Process, String, String) {
    let mut command = proctor();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .args(["--origin", ORIGIN, "--witness-quorum", "2"])
        .arg("--data-dir")
        .arg(data);
    for w in witnesses {
        command
            .arg("--witness")
            .arg(format!("{}={}@{}", w.name, w.vkey, w.url));
    }
    let process = Process::spawn(command, "proctor serve");
    let (url, before) = process.url();
    let admin = before
        .iter()
        .position(|line| line.contains("token is shown once"))
        .and_then(|at| before.get(at + 1))
        .map_or_else(String::new, |token| token.trim().to_owned());
    (process, url, admin)
}

/// The evaluator's side of the service: accounts, a model under a grant, the example eval.
struct Parties {
    http: reqwest::Client,
    evaluator: String,
    job: Value,
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: String,
    body: Option<reqwest::Body>,
    json: bool,
) -> Value {
    let mut request = http.request(method, &url).bearer_auth(&token);
    if let Some(body) = body {
        let kind = if json {
            "application/json"
        } else {
            "application/octet-stream"
        };
        request = request.header("content-type", kind).body(body);
    }
    let response = request.send().await.expect("a request to the service");
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

impl Parties {
    async fn set_up(base: &str, admin: &str) -> Parties {
        let http = reqwest::Client::new();
        let post = |path: &str, token: &str, body: Value| {
            call(
                &http,
                reqwest::Method::POST,
                format!("{base}{path}"),
                token.to_owned(),
                Some(body.to_string().into()),
                true,
            )
        };
        let mut tokens = Vec::new();
        for (name, role, tier) in [
            ("acme", "vendor", None),
            ("lab", "evaluator", Some("academic")),
        ] {
            let mut body = json!({"name": name, "role": role});
            if let Some(tier) = tier {
                body["tier"] = tier.into();
            }
            let account = post("/v1/accounts", admin, body).await;
            let id = account["id"].as_str().expect("an id").to_owned();
            let token = post(
                &format!("/v1/accounts/{id}/tokens"),
                admin,
                json!({"label": "t"}),
            )
            .await;
            tokens.push(token["token"].as_str().expect("a token").to_owned());
        }
        let (vendor, evaluator) = (tokens[0].clone(), tokens[1].clone());
        let model = post(
            "/v1/models",
            &vendor,
            json!({"name": "arith", "version": "1", "config": {"adapter": "builtin", "model": "arith"}}),
        )
        .await;
        let model = model["id"].as_str().expect("a model id").to_owned();
        post(
            "/v1/grants",
            &vendor,
            json!({"model": model, "grantee": {"tier": "academic"}}),
        )
        .await;
        let upload = |path: &'static str, bytes: Vec<u8>| {
            call(
                &http,
                reqwest::Method::POST,
                format!("{base}{path}"),
                evaluator.clone(),
                Some(bytes.into()),
                false,
            )
        };
        let eval = upload("/v1/evals", proctor_evals::examples::ARITH_WASM.to_vec()).await;
        let dataset = upload(
            "/v1/datasets",
            proctor_evals::examples::ARITH_JSONL.as_bytes().to_vec(),
        )
        .await;
        let job = json!({"eval": eval["id"], "dataset": dataset["id"], "model": model});
        Parties {
            http: reqwest::Client::new(),
            evaluator,
            job,
        }
    }

    /// Runs one job on the service at `base` to its end: two log entries.
    async fn run_job(&self, base: &str) {
        let job = call(
            &self.http,
            reqwest::Method::POST,
            format!("{base}/v1/jobs"),
            self.evaluator.clone(),
            Some(self.job.to_string().into()),
            true,
        )
        .await;
        let id = job["id"].as_str().expect("a job id");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let view = call(
                &self.http,
                reqwest::Method::GET,
                format!("{base}/v1/jobs/{id}"),
                self.evaluator.clone(),
                None,
                true,
            )
            .await;
            match view["status"].as_str() {
                Some("queued" | "running") => {}
                Some("succeeded") => return,
                _ => panic!("the job ended badly: {view}"),
            }
            assert!(Instant::now() < deadline, "the job is stuck: {view}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("a GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// The witnesses whose cosignature on the checkpoint `note` verifies.
fn cosigners<'a>(note: &str, witnesses: &'a [RunningWitness]) -> Vec<&'a str> {
    let Ok(note) = SignedNote::parse(note) else {
        return Vec::new();
    };
    witnesses
        .iter()
        .filter(|w| {
            let vkey = Vkey::parse(&w.vkey).expect("a witness vkey");
            cosignature::verify_note(&note, &vkey).is_ok()
        })
        .map(|w| w.name.as_str())
        .collect()
}

/// Waits until the cosigned checkpoint of the service at `base` has `size` entries and
/// cosignatures of `all` the witnesses; returns it.
async fn cosigned(base: &str, size: u64, witnesses: &[RunningWitness], all: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, note) = get_text(&format!("{base}/v1/log/checkpoint/cosigned")).await;
        if status == 200
            && note.lines().nth(1) == Some(size.to_string().as_str())
            && cosigners(&note, witnesses).len() >= all
        {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of {size} cosigned by {all}: {status} {note}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Copies a stopped service's data directory (its database, keys and remembered head).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The evidence a witness serves: its `/evidence` (ours) or `aics-witness evidence` (theirs),
/// as the refused checkpoints' texts.
async fn refused_checkpoints(tool: &Path, w: &RunningWitness) -> Vec<String> {
    {
        if let Some(config) = &w.aics_config {
            let command = aics(tool, "evidence", config);
            let rows: Value = serde_json::from_str(&stdout_of(command)).expect("evidence JSON");
            return rows
                .as_array()
                .expect("a list")
                .iter()
                .map(|row| row["request"].as_str().unwrap_or("").to_owned())
                .collect();
        }
        let (status, body) = get_text(&format!("{}/evidence", w.url)).await;
        assert_eq!(status, 200, "{body}");
        let list: Value = serde_json::from_str(&body).expect("evidence JSON");
        list["evidence"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| e["refused"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_witnesses_cosign_at_a_quorum_of_two_and_all_refuse_a_fork() {
    let Some(tool) = aics_witness() else {
        assert!(
            std::env::var_os(REQUIRE_ENV).is_none(),
            "{REQUIRE_ENV} is set but aics-witness is not found (set {TOOL_ENV} or PATH)"
        );
        eprintln!(
            "SKIPPED: aics-witness is not installed (pip install aics-witness==0.1.0 into a \
             python3.12 venv and set {TOOL_ENV}; .ci/witness-interop.sh does, and fails \
             without it)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("a");
    std::fs::create_dir_all(&data).expect("mkdir");
    // The service key, made before the service starts so the witnesses can be told it.
    let key = SigningKey::generate().expect("a key");
    std::fs::write(data.join("service-key.pem"), key.to_pkcs8_pem()).expect("write key");
    let log_key: VerifyingKey = key.verifying_key();
    let log_vkey = proctor_attest::note::verifier_key_string(ORIGIN, &log_key);

    let witnesses = vec![
        proctor_witness(dir.path(), "witness.test/one", &log_vkey),
        proctor_witness(dir.path(), "witness.test/two", &log_vkey),
        aics_witness_process(&tool, dir.path(), "witness.test/aics", &log_vkey),
    ];
    let (server, base, admin) = serve(&data, &witnesses);
    assert!(
        !admin.is_empty(),
        "the first start prints the admin's token"
    );
    let parties = Parties::set_up(&base, &admin).await;

    // Jobs run; their checkpoint is cosigned by the quorum, and then by all three.
    parties.run_job(&base).await;
    let note = cosigned(&base, 2, &witnesses, 2).await;
    Checkpoint::open(note.as_bytes(), &log_key).expect("the log's signature");
    parties.run_job(&base).await;
    let note = cosigned(&base, 4, &witnesses, 3).await;
    assert_eq!(cosigners(&note, &witnesses).len(), 3, "{note}");
    drop(server);

    // A copy of the database at 4 entries, then the log goes on to 6.
    let fork_data = dir.path().join("b");
    copy_dir(&data, &fork_data);
    let (server, base, _) = serve(&data, &witnesses);
    parties.run_job(&base).await;
    let first = cosigned(&base, 6, &witnesses, 3).await;
    drop(server);

    // The second server on the copy appends other entries: another tree of 6.
    let (fork, fork_base, _) = serve(&fork_data, &witnesses);
    parties.run_job(&fork_base).await;
    // Its checkpoint of 6 is another tree than the first branch's: what the witnesses get.
    let first_text = first[..first.find("\n\n").expect("a note") + 1].to_owned();
    let forked_size = format!("{ORIGIN}\n6\n");
    // Every witness refuses it and keeps it as evidence.
    let deadline = Instant::now() + Duration::from_secs(60);
    for w in &witnesses {
        loop {
            let refused = refused_checkpoints(&tool, w).await;
            if refused
                .iter()
                .any(|r| r.contains(&forked_size) && !r.contains(&first_text))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} kept no evidence of the fork: {refused:?}",
                w.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The forked server's cosigned checkpoint is still the one from before the fork.
    let (status, still) = get_text(&format!("{fork_base}/v1/log/checkpoint/cosigned")).await;
    assert_eq!(status, 200, "{still}");
    assert_eq!(still.lines().nth(1), Some("4"), "{still}");
    drop(fork);
}
