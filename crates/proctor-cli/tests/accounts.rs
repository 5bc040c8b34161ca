//! The operator's first steps against a real `proctor serve` child: the first admin's token
//! from `PROCTOR_ADMIN_TOKEN`, then `proctor account create|list` and
//! `proctor account token create|list|revoke` through the real binary.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

const ADMIN_ENV: &str = "PROCTOR_ADMIN_TOKEN";

/// A well-formed token made of one repeated byte.
fn token_of(byte: &str) -> String {
    format!("pct_{}", byte.repeat(32))
}

/// `proctor serve` on a free loopback port over `data`; killed on drop. Every line it writes
/// to stderr is kept.
struct Serve {
    child: Child,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn serve_command(data: &Path, admin_token: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proctor"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "0"])
        .arg("--data-dir")
        .arg(data)
        .env_remove("PROCTOR_DATABASE_URL")
        .env_remove("PROCTOR_CREDENTIAL_KEY")
        .env_remove(ADMIN_ENV)
        .env("RUST_LOG", "info");
    if let Some(token) = admin_token {
        command.env(ADMIN_ENV, token);
    }
    command
}

impl Serve {
    fn start(data: &Path, admin_token: Option<&str>) -> Serve {
        let mut child = serve_command(data, admin_token)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting proctor serve");
        let pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = stderr.clone();
        let (tx, rx) = mpsc::channel();
        // Drains stderr for the child's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("serve: {line}");
                kept.lock().expect("lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("proctor serve printed its address");
            if let Some(url) = line.split("listening on ").nth(1) {
                break url.trim().to_owned();
            }
        };
        Serve {
            child,
            base,
            stderr,
        }
    }

    /// What the server wrote to stderr so far.
    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    /// The proctor binary, talking to this server with `token`.
    fn proctor(&self, token: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_proctor"))
            .args(args)
            .env("PROCTOR_SERVER", &self.base)
            .env("PROCTOR_TOKEN", token)
            .output()
            .expect("running proctor")
    }

    /// `proctor ... --json` that must succeed, parsed.
    fn json(&self, token: &str, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&ok(&self.proctor(token, &args))).expect("one JSON value")
    }

    /// The accounts, as the admin `token` lists them.
    fn accounts(&self, token: &str) -> Vec<Value> {
        let list = self.json(token, &["account", "list"]);
        list.as_array().expect("an array").clone()
    }

    /// The one admin account's id and its tokens.
    fn only_admin(&self, token: &str) -> (String, Vec<Value>) {
        let admins: Vec<Value> = self
            .accounts(token)
            .into_iter()
            .filter(|a| a["role"] == "admin")
            .collect();
        assert_eq!(admins.len(), 1, "exactly one admin: {admins:?}");
        let id = admins[0]["id"].as_str().expect("id").to_owned();
        let tokens = self.json(token, &["account", "token", "list", &id]);
        (id, tokens.as_array().expect("an array").clone())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Exit 2 with one line on stderr containing `needle`.
fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn with_proctor_admin_token_set_the_operator_commands_make_accounts_and_tokens_and_revoke_them() {
    let data = tempfile::tempdir().expect("temp dir");
    let admin = token_of("a1");
    let server = Serve::start(data.path(), Some(&admin));

    // The given token is the admin's; nothing generated is printed, nor the token itself.
    let (admin_id, tokens) = server.only_admin(&admin);
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["label"], "PROCTOR_ADMIN_TOKEN");
    let me = server.json(&admin, &["account", "list"]);
    assert_eq!(me[0]["name"], "admin", "{me}");

    // A vendor with its first token, which works.
    let created = server.json(&admin, &["account", "create", "acme", "--role", "vendor"]);
    assert_eq!(created["account"]["name"], "acme", "{created}");
    assert_eq!(created["account"]["role"], "vendor", "{created}");
    let vendor_id = created["account"]["id"].as_str().expect("id").to_owned();
    let vendor = created["token"]["token"]
        .as_str()
        .expect("the first token's secret")
        .to_owned();
    assert!(vendor.starts_with("pct_"), "{created}");
    ok(&server.proctor(&vendor, &["model", "list"]));

    // The table: the new account, and its first token printed once.
    let table = ok(&server.proctor(
        &admin,
        &[
            "account",
            "create",
            "lab",
            "--role",
            "evaluator",
            "--tier",
            "academic",
        ],
    ));
    assert!(table.contains("evaluator (academic)"), "{table}");
    assert!(table.contains("token     pct_"), "{table}");
    let list = ok(&server.proctor(&admin, &["account", "list"]));
    for needle in ["acme", "vendor", "lab", "evaluator (academic)", &admin_id] {
        assert!(list.contains(needle), "{needle} in {list}");
    }

    // The service's refusals: one line, exit 2.
    refused(
        &server.proctor(
            &admin,
            &["account", "create", "nolab", "--role", "evaluator"],
        ),
        "tier",
    );
    refused(
        &server.proctor(&admin, &["account", "create", "acme", "--role", "vendor"]),
        "409",
    );
    refused(&server.proctor(&vendor, &["account", "list"]), "403");

    // A second token: its secret alone on stdout.
    let second = ok(&server.proctor(
        &admin,
        &["account", "token", "create", &vendor_id, "--name", "ci"],
    ))
    .trim()
    .to_owned();
    assert!(second.starts_with("pct_") && second.len() == 68, "{second}");
    ok(&server.proctor(&second, &["model", "list"]));
    let tokens = server.json(&admin, &["account", "token", "list", &vendor_id]);
    let labels: Vec<&str> = tokens
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["first", "ci"], "{tokens}");

    // Revoking the first token: it is answered 401 (one line, exit 2); the second works on.
    let first_id = tokens[0]["id"].as_str().expect("id");
    let revoked = ok(&server.proctor(&admin, &["account", "token", "revoke", first_id]));
    assert!(revoked.contains(first_id), "{revoked}");
    refused(&server.proctor(&vendor, &["model", "list"]), "401");
    ok(&server.proctor(&second, &["model", "list"]));
    let tokens = server.json(&admin, &["account", "token", "list", &vendor_id]);
    assert!(tokens[0]["revoked_at"].is_string(), "{tokens}");
    assert!(tokens[1].get("revoked_at").is_none(), "{tokens}");
    refused(
        &server.proctor(
            &admin,
            &[
                "account",
                "token",
                "revoke",
                "00000000-0000-0000-0000-000000000000",
            ],
        ),
        "404",
    );

    let log = server.stderr();
    assert!(!log.contains("shown once"), "{log}");
    assert!(
        !log.contains("pct_"),
        "no token in the server's output: {log}"
    );
    assert!(!log.contains(&admin[4..]), "{log}");
}

#[test]
fn restarting_with_the_same_proctor_admin_token_creates_no_second_admin_and_a_new_value_adds_a_token()
 {
    let data = tempfile::tempdir().expect("temp dir");
    let first = token_of("b2");
    let (admin_id, tokens) = Serve::start(data.path(), Some(&first)).only_admin(&first);
    assert_eq!(tokens.len(), 1);

    // The same value again: nothing new.
    let server = Serve::start(data.path(), Some(&first));
    assert_eq!(
        server.only_admin(&first),
        (admin_id.clone(), tokens.clone())
    );
    assert!(!server.stderr().contains("shown once"));
    drop(server);

    // Unset: the admin exists, so nothing is generated; the token works on.
    let server = Serve::start(data.path(), None);
    assert_eq!(server.only_admin(&first).1.len(), 1);
    assert!(!server.stderr().contains("shown once"));
    drop(server);

    // A new value becomes a second token of the same admin; the old one stays valid until
    // it is revoked.
    let second = token_of("c3");
    let server = Serve::start(data.path(), Some(&second));
    let (id, tokens) = server.only_admin(&second);
    assert_eq!(id, admin_id);
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_eq!(server.only_admin(&first).0, admin_id);
    let old = tokens[0]["id"].as_str().expect("id");
    ok(&server.proctor(&second, &["account", "token", "revoke", old]));
    refused(&server.proctor(&first, &["account", "list"]), "401");
    drop(server);

    // A revoked value stays revoked: serve refuses to start with it, in one line.
    let out = serve_command(data.path(), Some(&first))
        .output()
        .expect("running proctor serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("PROCTOR_ADMIN_TOKEN was revoked"),
        "{stderr}"
    );
    assert!(!stderr.contains(&first[4..]), "{stderr}");
}

#[test]
fn a_proctor_admin_token_set_after_the_first_start_joins_the_generated_admin() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = Serve::start(data.path(), None);
    let log = server.stderr();
    let generated = log
        .split("token is shown once:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the generated token")
        .to_owned();
    let (admin_id, _) = server.only_admin(&generated);
    drop(server);

    let given = token_of("d4");
    let server = Serve::start(data.path(), Some(&given));
    let (id, tokens) = server.only_admin(&given);
    assert_eq!(id, admin_id);
    let labels: Vec<&str> = tokens
        .iter()
        .map(|t| t["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["bootstrap", "PROCTOR_ADMIN_TOKEN"]);
    ok(&server.proctor(&generated, &["account", "list"]));
    assert!(!server.stderr().contains("pct_"), "{}", server.stderr());
}

#[test]
fn a_malformed_proctor_admin_token_stops_serve_with_one_line_that_does_not_contain_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let good = token_of("e5");
    let hunter = "hunter2-very-secret-admin-password".to_owned();
    let cases = [
        good[..good.len() - 1].to_owned(),
        format!("{good}0"),
        good.to_uppercase(),
        good.replace("pct_", "pat_"),
        good.replace('e', "g"),
        hunter,
    ];
    for bad in cases {
        let out = serve_command(data.path(), Some(&bad))
            .output()
            .expect("running proctor serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("PROCTOR_ADMIN_TOKEN is not a well-formed token"),
            "{stderr}"
        );
        assert!(!stderr.contains(&bad), "{stderr}");
        assert!(!stderr.contains(&bad[8..20]), "{stderr}");
    }
    // Nothing was started: no database, no keys.
    assert_eq!(std::fs::read_dir(data.path()).expect("dir").count(), 0);
}
