//! `proctor-bench`: the real service, started in this process on a loopback port over a fresh
//! database, measured over HTTP the way its users and a load balancer would reach it.
//!
//! - `proctor-bench service`: one job of the arithmetic example per row against
//!   `builtin:arith?latency_ms=L` under a grant whose policy allows C samples in flight, on
//!   SQLite and PostgreSQL, submit to `succeeded`, beside the same job through `proctor run`'s
//!   job loop in this process ([`throughput`]).
//! - `proctor-bench guests`: the arithmetic eval built in Rust, Python and JS side by side,
//!   through the `proctor` binary and in process ([`guests`]).
//! - `proctor-bench read`: a load generator (keep-alive HTTP/1.1 connections) against the
//!   public reads and a job's status, with one job finished and another running ([`read`]).
//!
//! All print Markdown tables to paste into an issue note. The service runs on a runtime of
//! its own (as `proctor serve` would in its own process); the client side runs on another.
//!
//! # Map
//!
//! | module | holds |
//! | --- | --- |
//! | [`database`] | a fresh SQLite file or PostgreSQL database per service, dropped after |
//! | [`service`] | the service on its own runtime and thread, on a loopback port |
//! | [`client`] | a JSON client with a bearer token |
//! | [`parties`] | accounts, models, grants, uploads: what a service needs before a job |
//! | [`jobs`] | submitting a job and waiting for its end |
//! | [`dataset`] | arithmetic datasets of any size |
//! | [`guests`] | `guests`: Rust, Python and JS guests through `proctor run` and in process |
//! | [`local`] | the same job through `proctor run`'s job loop, in process |
//! | [`throughput`] | `service`: the job-throughput table |
//! | [`load`] | the load generator: connections, latencies, percentiles |
//! | [`read`] | `read`: the read-path table |
//! | [`table`] | Markdown tables and the machine's description |

mod client;
mod database;
mod dataset;
mod guests;
mod jobs;
mod load;
mod local;
mod parties;
mod read;
mod service;
mod table;
mod throughput;

use clap::{Parser, Subcommand};

/// The environment variable naming a PostgreSQL server to benchmark on (the tests' own).
const POSTGRES_ENV: &str = "PROCTOR_TEST_POSTGRES_URL";

#[derive(Parser)]
#[command(
    name = "proctor-bench",
    about = "Benchmarks of the real Proctor service over HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Job throughput through the service (SQLite, PostgreSQL) beside `proctor run`.
    Service(throughput::ServiceArgs),
    /// The arithmetic eval in Rust, Python and JS: samples/s through `proctor run` and in
    /// process.
    Guests(guests::GuestsArgs),
    /// Requests per second and latency of the public reads and a job's status.
    Read(read::ReadArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // What the service warns of (a failed request, a job that ended badly) goes to stderr
    // beside the bench's own progress; `RUST_LOG` says more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The client side: the load generator and the bench's own calls. The service gets a
    // runtime of its own (`service`); `guests` builds its own, as `proctor run` does.
    let client = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("bench-client")
            .build()
    };
    match cli.command {
        Command::Service(args) => client()?.block_on(throughput::run(args)),
        Command::Read(args) => client()?.block_on(read::run(args)),
        Command::Guests(args) => guests::run(args),
    }
}
