//! The server's configuration (read once, at start) and the state every handler and worker
//! shares: the store, the sandbox, the service key, the credential sealer and the metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proctor_attest::SigningKey;
use proctor_core::Model;
use proctor_models::{ConfigError, Credential, HostPolicy, ModelConfig};
use proctor_sandbox::{CancellationToken, CompileCache, EngineSettings, Sandbox};
use proctor_store::Store;
use proctor_store::accounts::TokenSecret;
use tokio::sync::Semaphore;

use crate::clock::{Clock, SystemClock};
use crate::identity::IdentityConfig;
use crate::log_guard::LogGuard;
use crate::metrics::Metrics;
use crate::quotas::{CompileTime, Quotas, UploadAttempts};
use crate::read_cache::ReadCache;
use crate::routes::tiles::TileCache;
use crate::running::RunningJobs;
use crate::sealing::CredentialSealer;
use crate::serving::ConnectionLimits;
use crate::startup::StartError;
use crate::witnessing::Witnessing;

/// The environment variable that may hold the credential key (64 hex digits).
pub const CREDENTIAL_KEY_ENV: &str = "PROCTOR_CREDENTIAL_KEY";
/// The environment variable that may hold the first admin's token (`pct_` and 64 hex digits).
pub const ADMIN_TOKEN_ENV: &str = "PROCTOR_ADMIN_TOKEN";
/// The log's origin when none is configured. tlog-tiles asks for the log's URL prefix without
/// its scheme (`proctor.example.org/log`, the tiles being at `https://proctor.example.org/log/`):
/// an operator sets it with `proctor serve --origin` when the service first starts.
pub const DEFAULT_ORIGIN: &str = "proctor.local/log";
/// The service key's file in the data directory (PKCS#8 PEM, mode 0600).
pub const SERVICE_KEY_FILE: &str = "service-key.pem";
/// The credential key's file in the data directory, when the environment does not give one.
pub const CREDENTIAL_KEY_FILE: &str = "credential.key";

/// Request body limits, per kind of route, and how long a body may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// An eval component upload.
    pub component: usize,
    /// A dataset upload.
    pub dataset: usize,
    /// Any JSON body.
    pub json: usize,
    /// How long a whole body may take to arrive, once the caller is known; a body that is
    /// later is refused (408) and what came of it is dropped.
    pub read_timeout: Duration,
    /// Uploads whose bodies this process reads (or whose components it compiles) at once:
    /// what uploads can make it hold is this many times the largest limit. One more is
    /// refused (503) without its body being read.
    pub concurrent_uploads: usize,
}

impl Default for BodyLimits {
    fn default() -> BodyLimits {
        BodyLimits {
            component: 64 << 20,
            dataset: 256 << 20,
            json: 1 << 20,
            // 256 MiB in two minutes is 2.2 MB/s; an operator with slower evaluators raises it.
            read_timeout: Duration::from_secs(120),
            concurrent_uploads: 4,
        }
    }
}

/// Everything the server reads at start; nothing is read from the environment afterwards.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Holds the service key, the head it last signed ([`crate::log_guard::LOG_HEAD_FILE`]),
    /// the credential key (if not from the environment) and the compile cache.
    pub data_dir: PathBuf,
    /// The log's origin line in checkpoints; the one the remembered head names (a new one
    /// only through `proctor log rotate`).
    pub origin: String,
    /// Worker tasks in this process (0: an API-only replica).
    pub workers: usize,
    /// How long a claim holds a job before another worker may take it; renewed every third.
    pub lease: Duration,
    /// Claims of one job before it fails (each earlier worker died).
    pub max_attempts: u32,
    /// How long an idle worker waits before looking for work again.
    pub poll_interval: Duration,
    /// How often a running job's progress is written.
    pub progress_interval: Duration,
    /// Request body limits.
    pub limits: BodyLimits,
    /// Connection limits and the header timeout of [`crate::serving::serve`].
    pub connections: ConnectionLimits,
    /// What each account may hold and do.
    pub quotas: Quotas,
    /// Most lines a dataset may have.
    pub max_dataset_lines: usize,
    /// What the sandbox's pool is sized for; [`EngineSettings::service`] admits every policy
    /// within core's bounds.
    pub engine: EngineSettings,
    /// The credential key (32 bytes) when given from outside, e.g. from
    /// [`CREDENTIAL_KEY_ENV`]; `None`: the key file in the data directory (created if absent).
    pub credential_key: Option<[u8; 32]>,
    /// An admin token given from outside, e.g. from [`ADMIN_TOKEN_ENV`]: at start, an admin
    /// whose token it is exists (created if need be), and no token is generated.
    pub admin_token: Option<TokenSecret>,
    /// What the times an evaluator sees are read from, and what a worker waits on to pad a
    /// job's end to its policy's time grid ([`crate::clock`]); the system clock but in tests.
    pub clock: Arc<dyn Clock>,
    /// Builds the model a job calls from its registration ([`ConfiguredModels`] but in tests).
    pub models: Arc<dyn BuildModel>,
    /// The endpoints models may be called at, checked when a model is registered, when it is
    /// built for a job and when a connection is opened: [`HostPolicy::service`] (public hosts
    /// over https) unless the operator allows more (`proctor serve --allow-model-hosts`).
    pub model_hosts: HostPolicy,
    /// The witnesses asked to cosign the log's checkpoints and the quorum that makes one
    /// cosigned ([`crate::witnessing`]); none by default.
    pub witnessing: Witnessing,
    /// Model identity canaries ([`crate::identity`]); on by default.
    pub identity: IdentityConfig,
}

/// Builds the model a job calls from its registration, with its opened credential, the job's
/// seed and the service's host rules ([`Config::model_hosts`]). The service builds the
/// configured adapter ([`ConfiguredModels`]); a test may hand in models of its own (one that
/// panics, say) to see how a worker copes.
pub trait BuildModel: Send + Sync + std::fmt::Debug {
    /// The model for `config`, calling only endpoints `hosts` admits.
    ///
    /// # Errors
    ///
    /// The configuration does not validate, or `hosts` refuses its endpoint.
    fn build(
        &self,
        config: &ModelConfig,
        credential: Option<Credential>,
        seed: u64,
        hosts: &HostPolicy,
    ) -> Result<Arc<dyn Model>, ConfigError>;
}

/// The model a registration configures: [`ModelConfig::build`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfiguredModels;

impl BuildModel for ConfiguredModels {
    fn build(
        &self,
        config: &ModelConfig,
        credential: Option<Credential>,
        seed: u64,
        hosts: &HostPolicy,
    ) -> Result<Arc<dyn Model>, ConfigError> {
        config.build(credential, Some(seed), hosts)
    }
}

impl Config {
    /// Defaults for a data directory and a database.
    pub fn new(database_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Config {
        Config {
            database_url: database_url.into(),
            data_dir: data_dir.into(),
            origin: DEFAULT_ORIGIN.into(),
            workers: 2,
            lease: Duration::from_secs(30),
            max_attempts: 3,
            poll_interval: Duration::from_millis(500),
            progress_interval: Duration::from_millis(500),
            limits: BodyLimits::default(),
            connections: ConnectionLimits::default(),
            quotas: Quotas::default(),
            max_dataset_lines: 1_000_000,
            engine: EngineSettings::service(),
            credential_key: None,
            admin_token: None,
            clock: Arc::new(SystemClock),
            models: Arc::new(ConfiguredModels),
            model_hosts: HostPolicy::service(),
            witnessing: Witnessing::default(),
            identity: IdentityConfig::default(),
        }
    }

    /// Reads [`CREDENTIAL_KEY_ENV`] into `credential_key`.
    ///
    /// # Errors
    ///
    /// When it is set but not 64 hex digits (the value is never echoed).
    pub fn with_env_credential_key(mut self) -> Result<Config, StartError> {
        if let Ok(text) = std::env::var(CREDENTIAL_KEY_ENV) {
            let bytes = hex::decode(text.trim()).map_err(|_| StartError::CredentialKey)?;
            self.credential_key = Some(bytes.try_into().map_err(|_| StartError::CredentialKey)?);
        }
        Ok(self)
    }

    /// Reads [`ADMIN_TOKEN_ENV`] into `admin_token`; set but empty is unset.
    ///
    /// # Errors
    ///
    /// When it is set but not a well-formed token (the value is never echoed).
    pub fn with_env_admin_token(mut self) -> Result<Config, StartError> {
        if let Some(value) = std::env::var_os(ADMIN_TOKEN_ENV) {
            let text = value.to_str().ok_or(StartError::AdminToken)?.trim();
            if !text.is_empty() {
                self.admin_token = Some(TokenSecret::parse(text).ok_or(StartError::AdminToken)?);
            }
        }
        Ok(self)
    }

    /// The compile cache's directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        Path::new(&self.data_dir).join(file)
    }
}

/// What handlers and workers share.
pub struct App {
    /// The database.
    pub store: Store,
    /// The wasm sandbox, sized by [`Config::engine`].
    pub sandbox: Arc<Sandbox>,
    /// Signs envelopes and checkpoints.
    pub key: SigningKey,
    /// The head this service last vouched for, checked before anything about the log is
    /// signed.
    pub log_guard: LogGuard,
    /// Seals vendor credentials at rest.
    pub sealer: CredentialSealer,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The jobs this process runs, so a revocation handled here stops them at once.
    pub running: RunningJobs,
    /// The usage monitor: the grants whose usage profile grew, tested for alerts
    /// ([`crate::alerts`]), and the key of the profile's hashes (derived from the credential
    /// key, so every replica hashes alike).
    pub usage: Arc<crate::alerts::UsageMonitor>,
    /// Fires when a draining server's deadline passed ([`crate::startup::Server::drain`]): its
    /// running jobs stop and go back to the queue for another server.
    pub hand_back: CancellationToken,
    /// Wakes this server's idle workers when a job became claimable here (submitted,
    /// approved, handed back), so its claim does not wait for the next poll; other servers'
    /// workers find it at their next poll.
    pub queue_changed: tokio::sync::Notify,
    /// Free upload slots ([`BodyLimits::concurrent_uploads`]).
    pub uploads: Arc<Semaphore>,
    /// Each account's upload attempts in the last hour ([`Quotas::uploads_per_hour`]).
    pub upload_attempts: UploadAttempts,
    /// Each account's compile time in the last hour ([`Quotas::compile_per_hour`]).
    pub compile_time: CompileTime,
    /// What the public reads keep in memory.
    pub reads: ReadCache,
    /// The full tlog tiles served so far ([`crate::routes::tiles`]).
    pub tiles: TileCache,
    /// The configuration, as read at start.
    pub config: Config,
}

impl App {
    /// Builds the sandbox for `config`.
    pub(crate) fn sandbox(config: &Config) -> Result<Arc<Sandbox>, StartError> {
        let cache = CompileCache::in_dir(config.cache_dir());
        Ok(Arc::new(
            Sandbox::new(config.engine, cache).map_err(StartError::Sandbox)?,
        ))
    }
}

/// The handlers' state: cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}
