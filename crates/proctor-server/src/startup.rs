//! Starting the service: the data directory and its keys, the store (migrations applied), the
//! first admin, the sandbox and the workers.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use proctor_attest::SigningKey;
use proctor_sandbox::CancellationToken;
use proctor_store::Store;
use proctor_store::accounts::{AdminToken, TokenSecret};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::task::JoinHandle;

use crate::log_guard::{GuardError, LogGuard};
use crate::metrics::Metrics;
use crate::running::RunningJobs;
use crate::sealing::CredentialSealer;
use crate::state::{App, AppState, CREDENTIAL_KEY_FILE, Config, SERVICE_KEY_FILE};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or a key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The service key file does not hold a usable key.
    #[error("the service key {path} is not a usable Ed25519 PKCS#8 key: {message}")]
    ServiceKey {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The credential key is not 32 bytes (64 hex digits in the environment).
    #[error("the credential key must be 32 bytes (64 hex digits in PROCTOR_CREDENTIAL_KEY)")]
    CredentialKey,
    /// `PROCTOR_ADMIN_TOKEN` is not a token as the service issues them.
    #[error(
        "PROCTOR_ADMIN_TOKEN is not a well-formed token: it must be `pct_` followed by 64 \
         lowercase hex digits (e.g. `pct_$(openssl rand -hex 32)`)"
    )]
    AdminToken,
    /// `PROCTOR_ADMIN_TOKEN` is a token that was revoked.
    #[error("PROCTOR_ADMIN_TOKEN was revoked; set a new value, or unset it")]
    AdminTokenRevoked,
    /// `PROCTOR_ADMIN_TOKEN` is the token of an account that is not an admin.
    #[error("PROCTOR_ADMIN_TOKEN is the token of an account that is not an admin")]
    AdminTokenNotAdmin,
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] proctor_store::StoreError),
    /// The wasm engine could not be set up.
    #[error("sandbox: {0}")]
    Sandbox(proctor_sandbox::SandboxError),
    /// The metrics registry refused a metric (a programming error).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The OS random source failed.
    #[error("the random source failed")]
    Random,
    /// The database's log does not extend the head this service last signed (it was restored
    /// or replaced), or the remembered head is of another origin or key: the service refuses
    /// to sign a fork ([`crate::log_guard`]).
    #[error(transparent)]
    Log(#[from] GuardError),
    /// The witnesses and their quorum do not fit together.
    #[error(transparent)]
    Witnessing(#[from] crate::witnessing::WitnessingError),
}

/// A started service: its state, its workers and the first admin's token (only on the start
/// that created the admin, and only when the configuration gave none).
pub struct Server {
    /// The shared state.
    pub state: AppState,
    /// The first admin's token, shown once; `None` when an admin existed already or
    /// [`Config::admin_token`] was given.
    pub admin_token: Option<String>,
    shutdown: CancellationToken,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens the data directory and the database, creates the first admin if there is none
    /// (with [`Config::admin_token`] as its token when given, which is otherwise added to the
    /// oldest admin if no token has it yet), and starts `config.workers` workers.
    ///
    /// # Errors
    ///
    /// [`StartError`].
    pub async fn start(config: Config) -> Result<Server, StartError> {
        config.witnessing.check()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| io(&config.data_dir, e))?;
        let key = service_key(&config.path(SERVICE_KEY_FILE))?;
        let credential_key = match config.credential_key {
            Some(k) => k,
            None => credential_key_file(&config.path(CREDENTIAL_KEY_FILE))?,
        };
        private_sqlite_file(&config.database_url)?;
        let store = Store::connect(&config.database_url).await?;
        // Before anything is signed: a restored or replaced database stops the start here,
        // with both sizes named.
        let log_guard = {
            let mut log = store.log_reader().await?;
            LogGuard::open(&config.data_dir, &config.origin, &key, &mut log).await?
        };
        let admin_token = match &config.admin_token {
            Some(secret) => {
                adopt_admin_token(&store, secret).await?;
                None
            }
            None => store
                .bootstrap_admin("admin")
                .await?
                .map(|(_, token)| token.secret),
        };
        // What a crash between a job's end and its clean-up left held goes back (or, for a
        // query that may have reached the endpoint, counts at its worst case).
        let holds = store.release_ended_holds().await?;
        let abandoned = store.abandon_blocks_of_ended().await?;
        if holds + abandoned > 0 {
            tracing::info!(holds, abandoned, "settled what ended jobs still held");
        }
        let sandbox = App::sandbox(&config)?;
        let app = Arc::new(App {
            store,
            sandbox,
            key,
            log_guard,
            sealer: CredentialSealer::new(&credential_key),
            metrics: Metrics::new()?,
            running: RunningJobs::default(),
            usage: Arc::new(crate::alerts::UsageMonitor::new(
                proctor_core::usage_profile::UsageKey::derive(&credential_key),
            )),
            hand_back: CancellationToken::new(),
            queue_changed: tokio::sync::Notify::new(),
            uploads: Arc::new(tokio::sync::Semaphore::new(
                config.limits.concurrent_uploads,
            )),
            upload_attempts: Default::default(),
            compile_time: Default::default(),
            reads: Default::default(),
            tiles: Default::default(),
            config,
        });
        let shutdown = CancellationToken::new();
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let mut workers: Vec<JoinHandle<()>> = (0..app.config.workers)
            .map(|n| {
                tokio::spawn(crate::worker::run_worker(
                    app.clone(),
                    format!("{instance}-{n}"),
                    shutdown.clone(),
                ))
            })
            .collect();
        workers.extend(crate::witnessing::spawn(&app, &shutdown));
        workers.extend(crate::alerts::spawn(&app, &shutdown));
        workers.extend(crate::identity::spawn(&app, &shutdown, &instance));
        Ok(Server {
            state: AppState(app),
            admin_token,
            shutdown,
            workers,
        })
    }

    /// The HTTP API.
    pub fn router(&self) -> Router {
        crate::app(self.state.clone())
    }

    /// Stops as a crash would: workers are aborted mid-job, their leases left to expire and
    /// their jobs' reservation blocks open (counted at their worst case once the jobs end
    /// elsewhere). What a killed process leaves, for the tests of recovery.
    pub async fn abort(self) {
        self.shutdown.cancel();
        for worker in self.workers {
            worker.abort();
            let _ = worker.await;
        }
        self.state.store.close().await;
    }

    /// Stops at once: [`Server::drain`] with no time for running jobs, which go back to the
    /// queue.
    pub async fn shutdown(self) {
        self.drain(Duration::ZERO, std::future::pending()).await;
    }

    /// Drains the server: its workers claim no more jobs, and the jobs they run have until
    /// `deadline` to end as they would have. Past it, each running job stops, gives back what
    /// its meter leased and is handed back to the queue without spending an attempt, so the
    /// next claim, on any server, takes it up at once. A worker still busy [`HAND_BACK_GRACE`]
    /// later (writing an end padded to its policy's time grid) is aborted; its lease expires.
    /// Then the store closes. `cut_short` ends the deadline early (a second signal).
    pub async fn drain(self, deadline: Duration, cut_short: impl Future<Output = ()>) {
        self.shutdown.cancel();
        let aborts: Vec<_> = self.workers.iter().map(JoinHandle::abort_handle).collect();
        let mut workers = futures::future::join_all(self.workers);
        let ended = tokio::select! {
            ended = tokio::time::timeout(deadline, &mut workers) => ended.is_ok(),
            () = cut_short => false,
        };
        if !ended {
            tracing::info!(
                ?deadline,
                "draining: handing running jobs back to the queue"
            );
            self.state.hand_back.cancel();
            if tokio::time::timeout(HAND_BACK_GRACE, &mut workers)
                .await
                .is_err()
            {
                tracing::warn!("draining: workers still busy are stopped; their leases expire");
                for worker in aborts {
                    worker.abort();
                }
                workers.await;
            }
        }
        self.state.store.close().await;
    }
}

/// How long workers have after their jobs were handed back before they are aborted.
pub const HAND_BACK_GRACE: Duration = Duration::from_secs(10);

/// Makes the given admin token live; logs what it did, never the token.
async fn adopt_admin_token(store: &Store, secret: &TokenSecret) -> Result<(), StartError> {
    match store.ensure_admin_token("admin", secret).await? {
        AdminToken::Present(_) => {}
        AdminToken::Added(account) => tracing::info!(
            account = %account.name,
            "PROCTOR_ADMIN_TOKEN is now a token of this admin; its earlier tokens stay valid until revoked"
        ),
        AdminToken::Created(account) => tracing::info!(
            account = %account.name,
            "created the first admin account with PROCTOR_ADMIN_TOKEN as its token"
        ),
        AdminToken::Revoked => return Err(StartError::AdminTokenRevoked),
        AdminToken::NotAdmin => return Err(StartError::AdminTokenNotAdmin),
    }
    Ok(())
}

fn io(path: &Path, source: std::io::Error) -> StartError {
    StartError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates a SQLite database file that does not exist yet readable by its owner only, before
/// SQLite would create it with the umask's (usually world-readable) mode; its `-wal` and
/// `-shm` files take the same mode from it. The database holds hashed tokens, sealed
/// credentials and every job's released figures. An existing file is left as it is.
fn private_sqlite_file(url: &str) -> Result<(), StartError> {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let path = Path::new(rest.split('?').next().unwrap_or(rest));
    if rest.contains(":memory:") || path.as_os_str().is_empty() || path.exists() {
        return Ok(());
    }
    match write_secret(path, b"") {
        Err(StartError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Writes a new secret file readable by its owner only; refuses to overwrite.
pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io(path, e))?;
    file.write_all(bytes).map_err(|e| io(path, e))?;
    file.sync_all().map_err(|e| io(path, e))
}

fn service_key(path: &Path) -> Result<SigningKey, StartError> {
    if path.exists() {
        return load_service_key(path);
    }
    let key = SigningKey::generate().map_err(|_| StartError::Random)?;
    write_secret(path, key.to_pkcs8_pem().as_bytes())?;
    tracing::info!(key_id = %key.key_id(), "generated the service key");
    Ok(key)
}

/// Reads the service key file.
pub(crate) fn load_service_key(path: &Path) -> Result<SigningKey, StartError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| StartError::ServiceKey {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn credential_key_file(path: &Path) -> Result<[u8; 32], StartError> {
    if path.exists() {
        let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
        return bytes.try_into().map_err(|_| StartError::CredentialKey);
    }
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| StartError::Random)?;
    write_secret(path, &key)?;
    Ok(key)
}
