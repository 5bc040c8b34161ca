//! `proctor serve`: the HTTP service and its workers, on SQLite (a file in the data directory,
//! by default) or PostgreSQL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use proctor_models::HostPolicy;
use proctor_sandbox::CancellationToken;
use proctor_server::quotas::Quotas;
use proctor_server::{BodyLimits, Config, ConnectionLimits, Server};

use crate::run::{Failure, run_to_exit};

#[derive(Args)]
#[command(
    about = "Run the HTTP service and its workers",
    after_help = "The service remembers the last log head it signed in DATA_DIR/log-head.checkpoint, \
beside its key. If the database's log is shorter than that head, or disagrees with it (the \
database was restored from a backup or replaced), the service refuses to start, naming both \
sizes, and a running one answers 503 `log_fork` and signs nothing: signing would fork the log. \
To recover, put the right database back, or begin a new log on purpose with \
`proctor log rotate --data-dir DATA_DIR --origin NEW_ORIGIN` and start with `--origin NEW_ORIGIN`."
)]
pub struct ServeArgs {
    /// `sqlite://FILE?mode=rwc` or `postgres://...`; default: `proctor.db` in the data
    /// directory.
    #[arg(long, env = "PROCTOR_DATABASE_URL")]
    database: Option<String>,
    /// Holds the service key, the credential key and the compile cache.
    #[arg(long, env = "PROCTOR_DATA_DIR", default_value = "proctor-data")]
    data_dir: PathBuf,
    /// The address to listen on.
    #[arg(long, env = "PROCTOR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Worker tasks in this process (0: API only).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The log's origin line in checkpoints; it must be the one the service last signed
    /// (a new one only through `proctor log rotate`).
    #[arg(long, env = "PROCTOR_LOG_ORIGIN", default_value = "proctor.local/log")]
    origin: String,
    /// How long a worker's claim holds a job before another worker (or this server, after a
    /// restart) may take it up: a job whose worker died waits this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    lease: std::time::Duration,
    /// On SIGTERM or Ctrl-C the server stops claiming jobs and gives running ones this long to
    /// end; then (or at a second signal) it hands them back to the queue, returning what their
    /// meters leased, for another server to take up at once, and exits.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain: std::time::Duration,
    /// Connections held at once; beyond them new ones wait in the listen backlog.
    #[arg(long, default_value_t = ConnectionLimits::default().total)]
    max_connections: usize,
    /// Connections one client (an IPv4 address or an IPv6 /64) may hold; one more gets 429.
    #[arg(long, default_value_t = ConnectionLimits::default().per_client)]
    max_client_connections: usize,
    /// How long a request's head may take; a keep-alive connection idle as long is closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: std::time::Duration,
    /// How long a request's whole body may take (408 after it).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    body_timeout: std::time::Duration,
    /// Uploads read (and compiled) at once; one more gets 503 before its body is read.
    #[arg(long, default_value_t = BodyLimits::default().concurrent_uploads)]
    concurrent_uploads: usize,
    /// Bytes of evals and datasets one account may hold.
    #[arg(long, default_value_t = Quotas::default().stored_bytes)]
    quota_stored_bytes: u64,
    /// Upload attempts one account may make in an hour (per server process).
    #[arg(long, default_value_t = Quotas::default().uploads_per_hour)]
    quota_uploads_per_hour: u32,
    /// Jobs one evaluator may have queued or running at once.
    #[arg(long, default_value_t = Quotas::default().unfinished_jobs)]
    quota_unfinished_jobs: u64,
    /// Seconds one account's eval uploads may spend compiling in an hour (per server process).
    #[arg(long, default_value_t = Quotas::default().compile_per_hour.as_secs())]
    quota_compile_seconds_per_hour: u64,
    /// Model endpoints the service may call although its host rules refuse them: a
    /// comma-separated list of host names (`models.internal`), `host:port`, IP addresses
    /// (`10.0.0.5`, `fd00::5`), `ip:port` (`[fd00::5]:8000`) or CIDR ranges (`10.0.0.0/8`).
    /// These are called over http too; every other endpoint must be a public host over https.
    #[arg(
        long,
        env = "PROCTOR_ALLOW_MODEL_HOSTS",
        value_name = "HOSTS",
        value_parser = HostPolicy::service_allowing
    )]
    allow_model_hosts: Option<HostPolicy>,
    /// A witness to ask to cosign each new checkpoint (tlog-witness): NAME=VKEY@URL, the
    /// witness's cosigner vkey and its submission URL. Repeat for more witnesses.
    #[arg(long = "witness", value_name = "NAME=VKEY@URL")]
    witnesses: Vec<proctor_server::witnessing::WitnessEndpoint>,
    /// How many witnesses must cosign a checkpoint before it is served as cosigned
    /// (`/v1/log/checkpoint/cosigned`); default: all of them.
    #[arg(long)]
    witness_quorum: Option<usize>,
    /// Turns the model identity canaries off: no fingerprint at registration (about 416
    /// probe queries per model), no probe queries before and after each job (64) nor on the
    /// schedule; every result then states `model_identity` `not_checked`.
    #[arg(long)]
    no_identity_checks: bool,
    /// How long a model with a ready fingerprint goes without a check before a scheduled one.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    identity_check_every: std::time::Duration,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // A panic's message may quote whatever the code at hand held, model text included: the
    // service reports where it happened, never what it said. (Workers catch panics and end
    // the job with a fixed reason; this only keeps the default hook from printing payloads.)
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map_or_else(|| "an unknown place".to_owned(), ToString::to_string);
        tracing::error!(at = %at, "a task panicked; its message is not logged");
    }));
    run_to_exit(serve(args))
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let database = args.database.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            args.data_dir.join("proctor.db").display()
        )
    });
    let mut config = Config::new(database, &args.data_dir)
        .with_env_credential_key()?
        .with_env_admin_token()?;
    config.workers = args.workers;
    config.origin = args.origin;
    config.lease = args.lease;
    config.limits.read_timeout = args.body_timeout;
    config.limits.concurrent_uploads = args.concurrent_uploads;
    config.quotas = Quotas {
        stored_bytes: args.quota_stored_bytes,
        uploads_per_hour: args.quota_uploads_per_hour,
        unfinished_jobs: args.quota_unfinished_jobs,
        compile_per_hour: Duration::from_secs(args.quota_compile_seconds_per_hour),
    };
    config.connections = ConnectionLimits {
        total: args.max_connections,
        per_client: args.max_client_connections,
        header_timeout: args.header_timeout,
        ..ConnectionLimits::default()
    };
    config.model_hosts = args.allow_model_hosts.unwrap_or_else(HostPolicy::service);
    config.witnessing.quorum = args.witness_quorum.unwrap_or(args.witnesses.len());
    config.witnessing.witnesses = args.witnesses;
    config.identity.enabled = !args.no_identity_checks;
    config.identity.check_every = args.identity_check_every;
    let server = Server::start(config).await?;
    // After the start: a refused start says one line, its reason.
    tracing::info!(rules = %server.state.config.model_hosts, "model endpoints the service may call");
    if server.state.config.origin == proctor_server::state::DEFAULT_ORIGIN {
        // tlog clients, witnesses and policies name the log by its origin, which should be
        // the URL its tiles are served under (`/log/`), without the scheme.
        tracing::info!(
            origin = %server.state.config.origin,
            "the log has the default origin, which names no real host; a public service sets \
             its own (`--origin example.org/log` when served at https://example.org/) when it \
             first starts"
        );
    }
    if let Some(token) = &server.admin_token {
        eprintln!(
            "proctor serve: created the first admin account `admin`; its token is shown once:\n  {token}"
        );
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "proctor serve: listening on http://{}",
        listener
            .local_addr()
            .map_err(|e| Failure::Internal(e.into()))?
    );
    let signals = Signals::listen().map_err(|e| Failure::Internal(e.into()))?;
    let stopping = CancellationToken::new();
    let http = proctor_server::serve(
        listener,
        server.router(),
        server.state.config.connections,
        stopping.clone().cancelled_owned(),
    );
    let drained = async {
        signals.next().await;
        tracing::info!(drain = ?args.drain, "stopping: no more claims; running jobs have until the drain deadline");
        stopping.cancel();
        server.drain(args.drain, signals.next()).await;
    };
    tokio::join!(http, drained);
    Ok(())
}

/// SIGTERM (what Kubernetes and systemd send) and SIGINT (Ctrl-C).
pub(crate) struct Signals {
    #[cfg(unix)]
    term: tokio::sync::Mutex<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(crate) fn listen() -> std::io::Result<Signals> {
        Ok(Signals {
            #[cfg(unix)]
            term: tokio::sync::Mutex::new(tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::terminate(),
            )?),
        })
    }

    /// The next signal.
    pub(crate) async fn next(&self) {
        #[cfg(unix)]
        {
            let mut term = self.term.lock().await;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
