//! A `proctor serve` child process on a free loopback port, and its admin's first steps.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// A `proctor serve` child on a free loopback port with its own data directory; killed on drop.
pub struct ServeChild {
    pub child: Child,
    pub base: String,
    pub admin: String,
    _data: Option<tempfile::TempDir>,
}

impl ServeChild {
    pub fn start() -> ServeChild {
        let data = tempfile::tempdir().expect("temp dir");
        let mut server = ServeChild::start_in(data.path(), &[], true);
        server._data = Some(data);
        server
    }

    /// Starts `proctor serve` on the data directory `data` (kept by the caller when it is to
    /// outlive this process). `admin` is empty unless `first_start`.
    pub fn start_in(data: &Path, extra: &[&str], first_start: bool) -> ServeChild {
        ServeChild::start_with_workers(data, extra, first_start, 1)
    }

    /// [`ServeChild::start_in`] with `workers` workers.
    pub fn start_with_workers(
        data: &Path,
        extra: &[&str],
        first_start: bool,
        workers: usize,
    ) -> ServeChild {
        let workers = workers.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_proctor"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", &workers])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .env_remove("PROCTOR_DATABASE_URL")
            .env_remove("PROCTOR_CREDENTIAL_KEY")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting proctor serve");
        let stderr = child.stderr.take().expect("piped stderr");
        // The server prints the admin token (on its first start), then the address; the
        // reader thread keeps draining stderr afterwards so the child never blocks on a full
        // pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("serve: {line}");
                let _ = tx.send(line);
            }
        });
        let (mut admin, mut base) = (None, None);
        let mut previous = String::new();
        while (first_start && admin.is_none()) || base.is_none() {
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
            admin: admin.unwrap_or_default(),
            _data: None,
        }
    }

    /// The proctor binary, talking to this server with `token`.
    pub fn proctor(&self, token: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_proctor"))
            .args(args)
            .env("PROCTOR_SERVER", &self.base)
            .env("PROCTOR_TOKEN", token)
            .output()
            .expect("running proctor")
    }

    /// The proctor binary started with `token`, its stdout piped; for a command that waits.
    pub fn proctor_child(&self, token: &str, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_proctor"))
            .args(args)
            .env("PROCTOR_SERVER", &self.base)
            .env("PROCTOR_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running proctor")
    }

    /// Creates an account with a token, over HTTP as the admin.
    pub async fn account(&self, name: &str, role: &str, tier: Option<&str>) -> String {
        let http = reqwest::Client::new();
        let mut body = json!({"name": name, "role": role});
        if let Some(tier) = tier {
            body["tier"] = tier.into();
        }
        let post = |path: String, body: Value| {
            http.post(format!("{}{path}", self.base))
                .bearer_auth(&self.admin)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
        };
        let account: Value = serde_json::from_slice(
            &post("/v1/accounts".into(), body)
                .await
                .expect("POST /v1/accounts")
                .bytes()
                .await
                .expect("body"),
        )
        .expect("account JSON");
        let id = account["id"].as_str().expect("account id");
        let token: Value = serde_json::from_slice(
            &post(
                format!("/v1/accounts/{id}/tokens"),
                json!({"label": "test"}),
            )
            .await
            .expect("POST tokens")
            .bytes()
            .await
            .expect("body"),
        )
        .expect("token JSON");
        token["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
