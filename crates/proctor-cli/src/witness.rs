//! `proctor witness`: a tlog-witness (c2sp.org/tlog-witness v1.0.0) for a third party to
//! run, and its key. The protocol, the checks and the state are in `proctor-witness`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use proctor_attest::{SigningKey, cosignature};
use proctor_server::ConnectionLimits;
use proctor_witness::{KnownLogs, LogKey, Witness, WitnessStore};

use crate::run::{Failure, run_to_exit};

#[derive(Subcommand)]
pub enum WitnessCommand {
    /// Make the witness's Ed25519 key (PKCS#8 PEM, mode 0600) unless FILE exists, and print
    /// the witness's verifier key (vkey), the line logs configure it with.
    Keys {
        /// The private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The witness's name: the key name of its cosignatures, a schema-less URL such as
        /// `witness.example.org/w1`.
        #[arg(long)]
        name: String,
    },
    /// Serve the witness: `POST /add-checkpoint`, `GET /<sha256(origin)>/checkpoint`,
    /// `GET /evidence`.
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: String,
    /// The SQLite database holding each log's latest cosigned checkpoint and the evidence
    /// (created, mode 0600, if absent). Losing it lets the witness be shown a fork.
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// The witness's private key (`proctor witness keys`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The witness's name, as given to `proctor witness keys`.
    #[arg(long)]
    name: String,
    /// A log to witness: its origin and its key as a signed-note vkey (`proctor keys show`
    /// prints it). Repeat for more logs, or for a second key of one log.
    #[arg(long = "log", value_name = "ORIGIN=VKEY", required = true)]
    logs: Vec<String>,
}

pub fn run(cmd: WitnessCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        WitnessCommand::Keys { key, name } => keys(&key, &name),
        WitnessCommand::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            run_to_exit(serve(args))
        }
    }
}

fn keys(path: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let key = if path.symlink_metadata().is_ok() {
        read_key(path)?
    } else {
        let key = SigningKey::generate()?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::keys::write_new(dir, path, key.to_pkcs8_pem().as_bytes(), 0o600)?;
        eprintln!("wrote {} (keep it secret; back it up)", path.display());
        key
    };
    println!("{}", vkey(name, &key)?);
    Ok(ExitCode::SUCCESS)
}

fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&text).with_context(|| format!("reading {}", path.display()))
}

fn vkey(name: &str, key: &SigningKey) -> anyhow::Result<String> {
    Ok(cosignature::vkey(name, &key.verifying_key())?.to_string())
}

/// `ORIGIN=VKEY`: the origin and the log key it trusts.
fn parse_log(text: &str) -> anyhow::Result<(String, LogKey)> {
    let Some((origin, vkey)) = text.split_once('=') else {
        bail!("--log {text:?}: expected ORIGIN=VKEY");
    };
    if origin.is_empty() {
        bail!("--log {text:?}: the origin is empty");
    }
    let key = LogKey::parse(vkey).with_context(|| format!("--log {origin}"))?;
    Ok((origin.to_owned(), key))
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let key = read_key(&args.key)?;
    let mut logs = KnownLogs::new();
    for text in &args.logs {
        let (origin, log_key) = parse_log(text)?;
        if log_key.key == key.verifying_key() {
            return Err(Failure::Refused(anyhow::anyhow!(
                "--log {origin}: that is the witness's own key"
            )));
        }
        logs.add(origin, log_key);
    }
    let store = WitnessStore::open(&args.db)
        .await
        .with_context(|| format!("opening {}", args.db.display()))?;
    let witness = Arc::new(Witness::new(args.name, key, logs, store.clone())?);
    let vkey = witness.vkey().to_string();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("proctor witness: vkey {vkey}");
    eprintln!(
        "proctor witness: listening on http://{}",
        listener
            .local_addr()
            .map_err(|e| Failure::Internal(e.into()))?
    );
    proctor_server::serve(
        listener,
        proctor_witness::http::router(witness),
        ConnectionLimits::default(),
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await;
    store.close().await;
    Ok(())
}
