//! A real server on an ephemeral loopback port, over a temporary SQLite file or a fresh
//! PostgreSQL database per test (when `PROCTOR_TEST_POSTGRES_URL` is set), and a client.
//!
//! The server's clock is a [`FixedClock`] at [`FIXED_NOW`] unless a test gives its own: a job
//! under a policy with a time grid (`strict`) then shows the same grid times in every run, and
//! its padded end comes at once instead of up to a minute later.

use std::sync::Arc;
use std::time::Duration;

use proctor_core::Policy;
use proctor_sandbox::EngineSettings;
use proctor_server::clock::{Clock, FixedClock};
use proctor_server::{BodyLimits, Config, Server};
use proctor_store::Timestamp;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

pub const POSTGRES_ENV: &str = "PROCTOR_TEST_POSTGRES_URL";

/// The limits the tests run with: small enough to exceed cheaply.
pub const LIMITS: BodyLimits = BodyLimits {
    component: 8 << 20,
    dataset: 1 << 20,
    json: 64 << 10,
    read_timeout: Duration::from_secs(30),
    concurrent_uploads: 4,
};

/// What a test server's fixed clock reads: 2030-01-01T00:00:00Z, a point of every grid the
/// shipped policies use.
pub const FIXED_NOW: Timestamp = Timestamp(1_893_456_000_000);

/// [`FIXED_NOW`] as the API prints it.
pub const FIXED_NOW_TEXT: &str = "2030-01-01T00:00:00.000Z";

/// The clock a test server runs on unless the test gives its own.
pub fn fixed_clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock(FIXED_NOW))
}

/// One database to run a test on.
pub struct TestDb {
    pub url: String,
    pub label: &'static str,
    /// The SQLite file, to scan its bytes.
    pub sqlite_path: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// SQLite, and PostgreSQL when configured.
    pub async fn all() -> anyhow::Result<Vec<TestDb>> {
        let mut dbs = vec![TestDb::sqlite()?];
        if let Ok(admin) = std::env::var(POSTGRES_ENV) {
            dbs.push(TestDb::postgres(&admin).await?);
        }
        Ok(dbs)
    }

    pub fn sqlite() -> anyhow::Result<TestDb> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("proctor.db");
        Ok(TestDb {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            label: "sqlite",
            sqlite_path: Some(path.clone()),
            _dir: Some(dir),
            pg: None,
        })
    }

    async fn postgres(admin: &str) -> anyhow::Result<TestDb> {
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin, String::new()),
        };
        let (server, _) = base
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("{POSTGRES_ENV} has no database path"))?;
        let name = format!("proctor_server_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(admin).await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        conn.close().await?;
        Ok(TestDb {
            url: format!("{server}/{name}{query}"),
            label: "postgres",
            sqlite_path: None,
            _dir: None,
            pg: Some((admin.to_owned(), name)),
        })
    }

    /// Drops the PostgreSQL database (SQLite's directory goes with `self`).
    pub async fn cleanup(self) -> anyhow::Result<()> {
        if let Some((admin, name)) = &self.pg {
            let mut conn = PgConnection::connect(admin).await?;
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// A request body.
pub enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}

/// A running server and a client for it.
pub struct TestServer {
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    server: Option<Server>,
    serving: tokio::task::JoinHandle<()>,
    _data: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server with `workers` workers on `db`, with a data directory of its own.
    pub async fn start(db: &TestDb, workers: usize) -> anyhow::Result<TestServer> {
        TestServer::start_with(db, workers, |_| {}).await
    }

    /// [`TestServer::start`], with `configure` changing the configuration first (the clock,
    /// the models).
    pub async fn start_with(
        db: &TestDb,
        workers: usize,
        configure: impl FnOnce(&mut Config),
    ) -> anyhow::Result<TestServer> {
        let data = tempfile::tempdir()?;
        let mut server = TestServer::start_configured(
            db,
            data.path(),
            workers,
            (Duration::from_secs(6), 3),
            configure,
        )
        .await?;
        anyhow::ensure!(
            !server.admin.is_empty(),
            "a fresh database creates the first admin"
        );
        server._data = Some(data);
        Ok(server)
    }

    /// Starts a server on `db` with the data directory `data` (kept by the caller, so a
    /// restarted server has the same keys). `admin` is empty unless this start created it.
    pub async fn start_at(
        db: &TestDb,
        data: &std::path::Path,
        workers: usize,
        lease: Duration,
        max_attempts: u32,
    ) -> anyhow::Result<TestServer> {
        TestServer::start_configured(db, data, workers, (lease, max_attempts), |_| {}).await
    }

    /// [`TestServer::start_at`] with `configure` changing the configuration first.
    pub async fn start_configured(
        db: &TestDb,
        data: &std::path::Path,
        workers: usize,
        (lease, max_attempts): (Duration, u32),
        configure: impl FnOnce(&mut Config),
    ) -> anyhow::Result<TestServer> {
        let mut config = Config::new(&db.url, data);
        config.max_attempts = max_attempts;
        config.workers = workers;
        config.poll_interval = Duration::from_millis(50);
        config.progress_interval = Duration::from_millis(100);
        config.lease = lease;
        config.limits = LIMITS;
        // Tests upload and submit more than an account's default hourly share; the quota
        // tests set their own.
        config.quotas.uploads_per_hour = 100_000;
        config.credential_key = Some([42; 32]);
        // Sized for the shipped policies, not for every policy core allows: tests run many
        // servers in one process.
        config.engine = EngineSettings::for_policy(&Policy::standard());
        config.clock = fixed_clock();
        config.model_hosts = proctor_models::HostPolicy::service_allowing("127.0.0.1")?;
        // Off unless a test turns it on: a fingerprint sends hundreds of probe queries to a
        // test's mock endpoint, and jobs 64 more.
        config.identity.enabled = false;
        configure(&mut config);
        let server = Server::start(config).await?;
        let admin = server.admin_token.clone().unwrap_or_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let router = server.router();
        let connections = server.state.config.connections;
        let serving = tokio::spawn(proctor_server::serve(
            listener,
            router,
            connections,
            std::future::pending(),
        ));
        Ok(TestServer {
            base,
            admin,
            client: reqwest::Client::new(),
            server: Some(server),
            serving,
            _data: None,
        })
    }

    /// The running server's store, for tests that put things in it directly.
    pub fn store(&self) -> &proctor_store::Store {
        &self
            .server
            .as_ref()
            .expect("the server runs until stop")
            .state
            .store
    }

    pub async fn stop(mut self) {
        self.serving.abort();
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Stops as a crash would ([`Server::abort`]): running jobs are left to their leases.
    pub async fn crash(mut self) {
        self.serving.abort();
        if let Some(server) = self.server.take() {
            server.abort().await;
        }
    }

    /// Sends a request; returns the status and the body (JSON when it parses, else a
    /// string).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let (status, bytes) = self.call_raw(method, path, token, body).await?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Bytes(b) => req
                .header("content-type", "application/octet-stream")
                .body(b),
        };
        let resp = req.send().await?;
        let status = resp.status();
        Ok((status, resp.bytes().await?.to_vec()))
    }

    /// Creates an account and returns its id and a token.
    pub async fn account(
        &self,
        name: &str,
        role: &str,
        tier: Option<&str>,
    ) -> anyhow::Result<(String, String)> {
        let mut body = serde_json::json!({"name": name, "role": role});
        if let Some(tier) = tier {
            body["tier"] = tier.into();
        }
        let (status, account) = self
            .call("POST", "/v1/accounts", Some(&self.admin), Body::Json(body))
            .await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {account}");
        let id = str_of(&account, "id")?;
        let (status, token) = self
            .call(
                "POST",
                &format!("/v1/accounts/{id}/tokens"),
                Some(&self.admin),
                Body::Json(serde_json::json!({"label": "test"})),
            )
            .await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {token}");
        Ok((id, str_of(&token, "token")?))
    }
}

impl TestServer {
    /// `vendor` grants `grantee` (`{"tier": ..}` or `{"account": ..}`) access to `model`,
    /// with the fields of `extra` (policy, overrides, budgets, approval, expiry) added.
    pub async fn grant(
        &self,
        vendor: &str,
        model: &str,
        grantee: Value,
        extra: Value,
    ) -> anyhow::Result<Value> {
        let mut body = serde_json::json!({"model": model, "grantee": grantee});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, grant) = self
            .call("POST", "/v1/grants", Some(vendor), Body::Json(body))
            .await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {grant}");
        Ok(grant)
    }

    /// Uploads the arithmetic example and its dataset as `evaluator` and submits a job of them
    /// against `model`; returns the submission's status and body.
    pub async fn submit_arith(
        &self,
        evaluator: &str,
        model: &str,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let (eval, dataset) = self
            .upload(
                evaluator,
                proctor_evals::examples::ARITH_WASM,
                proctor_evals::examples::ARITH_JSONL,
            )
            .await?;
        let body = serde_json::json!({"eval": eval, "dataset": dataset, "model": model});
        self.call("POST", "/v1/jobs", Some(evaluator), Body::Json(body))
            .await
    }

    /// Uploads an eval component and a dataset as `evaluator`: their ids.
    pub async fn upload(
        &self,
        evaluator: &str,
        wasm: &[u8],
        jsonl: &str,
    ) -> anyhow::Result<(String, String)> {
        let (status, eval) = self
            .call(
                "POST",
                "/v1/evals",
                Some(evaluator),
                Body::Bytes(wasm.to_vec()),
            )
            .await?;
        anyhow::ensure!(status.is_success(), "{status} {eval}");
        let (status, dataset) = self
            .call(
                "POST",
                "/v1/datasets",
                Some(evaluator),
                Body::Bytes(jsonl.as_bytes().to_vec()),
            )
            .await?;
        anyhow::ensure!(status.is_success(), "{status} {dataset}");
        Ok((str_of(&eval, "id")?, str_of(&dataset, "id")?))
    }
}

pub fn str_of(v: &Value, key: &str) -> anyhow::Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no string `{key}` in {v}"))
}

/// The error code of an error body.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

impl TestServer {
    /// Polls `job` as `evaluator` until `done` holds for its view; fails after `timeout`.
    pub async fn wait_job(
        &self,
        evaluator: &str,
        job: &str,
        timeout: Duration,
        done: fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let started = std::time::Instant::now();
        loop {
            let (status, view) = self
                .call(
                    "GET",
                    &format!("/v1/jobs/{job}"),
                    Some(evaluator),
                    Body::None,
                )
                .await?;
            anyhow::ensure!(status == StatusCode::OK, "{status} {view}");
            if done(&view) {
                return Ok(view);
            }
            anyhow::ensure!(started.elapsed() < timeout, "job stuck: {view}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `job` as `evaluator` until it leaves `queued` and `running`; fails after
    /// `timeout`.
    pub async fn wait_ended(
        &self,
        evaluator: &str,
        job: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        self.wait_job(evaluator, job, timeout, |view| {
            !matches!(view["status"].as_str(), Some("queued" | "running"))
        })
        .await
    }

    /// The in-toto statement of `job`'s result entry (decoded from its DSSE envelope).
    pub async fn result_statement(&self, job: &str) -> anyhow::Result<Value> {
        let (status, attestation) = self
            .call("GET", &format!("/v1/attestations/{job}"), None, Body::None)
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "{status} {attestation}");
        let envelope: Value = serde_json::from_str(&str_of(&attestation, "envelope")?)?;
        let payload = crate::end_to_end::base64_decode(envelope["payload"].as_str().unwrap_or(""))?;
        Ok(serde_json::from_slice(&payload)?)
    }

    /// Registers a built-in model as `vendor`; returns its id.
    pub async fn builtin_model(
        &self,
        vendor: &str,
        name: &str,
        reference: &str,
    ) -> anyhow::Result<String> {
        let (status, model) = self
            .call(
                "POST",
                "/v1/models",
                Some(vendor),
                Body::Json(serde_json::json!({
                    "name": name, "version": "1",
                    "config": {"adapter": "builtin", "model": reference}
                })),
            )
            .await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {model}");
        str_of(&model, "id")
    }
}

/// The sum a model should answer to the arith example's `What is A + B?`.
pub fn arith_sum(question: &str) -> i64 {
    question
        .trim_start_matches("What is ")
        .trim_end_matches('?')
        .split(" + ")
        .filter_map(|n| n.trim().parse::<i64>().ok())
        .sum()
}

impl TestServer {
    /// The log's size, from its public checkpoint (a C2SP note: origin, size, root hash).
    pub async fn log_size(&self) -> anyhow::Result<u64> {
        let (status, bytes) = self
            .call_raw("GET", "/v1/log/checkpoint", None, Body::None)
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "{status}");
        let text = String::from_utf8(bytes)?;
        let size = text
            .lines()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("no size line in {text}"))?;
        Ok(size.parse()?)
    }

    /// The bytes of `job`'s view as `evaluator` reads it.
    pub async fn job_bytes(&self, evaluator: &str, job: &str) -> anyhow::Result<Vec<u8>> {
        let (status, bytes) = self
            .call_raw(
                "GET",
                &format!("/v1/jobs/{job}"),
                Some(evaluator),
                Body::None,
            )
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "{status}");
        Ok(bytes)
    }

    /// Polls `job` as `evaluator` until it has processed a sample.
    pub async fn wait_progress(&self, evaluator: &str, job: &str) -> anyhow::Result<()> {
        self.wait_job(evaluator, job, Duration::from_secs(30), |view| {
            view["progress"]["done"].as_u64().unwrap_or(0) > 0
        })
        .await
        .map(drop)
    }
}
