//! `proctor log`: read the service's log (as a client), and `proctor log rotate`, the
//! operator's deliberate recovery when the service refuses to sign a fork.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::remote;
use crate::run::run_to_exit;

#[derive(Subcommand)]
pub enum LogCommand {
    #[command(flatten)]
    Read(remote::LogCommand),
    /// Retire the service key and begin a new log under a new origin (an operator's
    /// recovery from a refused fork).
    ///
    /// The new log starts at the database's current head. For when `proctor serve` refuses
    /// to start because the database's log does not extend the last checkpoint it signed
    /// (restored or replaced), or for a routine key rotation. Stop every server of the data
    /// directory first. The old key, its public key, the last checkpoint it signed and a
    /// rotation note it signs (naming the new origin, key and starting head) are kept in
    /// DATA_DIR/retired/, so earlier attestations stay verifiable. Then start the service with
    /// `--origin NEW_ORIGIN`.
    Rotate(RotateArgs),
}

#[derive(Args)]
pub struct RotateArgs {
    /// The service's data directory (its key and the head it last signed).
    #[arg(long, env = "PROCTOR_DATA_DIR", default_value = "proctor-data")]
    data_dir: PathBuf,
    /// `sqlite://FILE` or `postgres://...`; default: `proctor.db` in the data directory (not
    /// created if missing).
    #[arg(long, env = "PROCTOR_DATABASE_URL")]
    database: Option<String>,
    /// The new log's origin line; must differ from the retired log's.
    #[arg(long, value_name = "NEW_ORIGIN")]
    origin: String,
}

pub fn run(cmd: LogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LogCommand::Read(cmd) => remote::log(cmd),
        LogCommand::Rotate(args) => rotate(args),
    }
}

fn rotate(args: RotateArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(async move {
        let database = args
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("proctor.db").display()));
        let done =
            proctor_server::rotation::rotate(&args.data_dir, &database, &args.origin).await?;
        match &done.retired_head {
            Some(last) => println!(
                "retired key {} of the log `{}` (its last checkpoint: {} entries)",
                done.retired_key, last.origin, last.size
            ),
            None => println!(
                "retired key {} (it had signed no checkpoint)",
                done.retired_key
            ),
        }
        println!(
            "new key {} begins the log `{}` at {} entries",
            done.key, done.origin, done.head.size
        );
        println!(
            "rotation note (signed by the retired key): {}",
            done.note.display()
        );
        println!("start the service with --origin {}", done.origin);
        Ok(())
    })
}
