//! The `proctor` binary: a thin shell over the library crates.

mod accounts;
mod alerts;
mod client;
mod demo;
mod examples;
mod grants;
mod keys;
mod log_cmd;
mod model_cmd;
mod new_eval;
mod remote;
mod run;
mod serve;
mod verify;
mod witness;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "proctor",
    version,
    about = "Neutral, verifiable evaluation of AI models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A full evaluation in one command, through an embedded service on a loopback port: a
    /// vendor, an evaluator and a regulator run the arithmetic example, fetch its signed and
    /// logged result, and verify the attestation offline.
    Demo(demo::DemoArgs),
    /// Run an eval locally against a model and print its released aggregates.
    Run(run::RunArgs),
    /// Write the example evals and their datasets to a directory.
    Examples(examples::ExamplesArgs),
    /// Manage the service's Ed25519 signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Check a signed attestation offline.
    Verify(verify::VerifyArgs),
    /// Check that a newer checkpoint extends an older one.
    VerifyConsistency(verify::ConsistencyArgs),
    /// Work with model configurations.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    Serve(serve::ServeArgs),
    /// Write new eval projects, and upload eval components to the service.
    #[command(subcommand)]
    Eval(remote::EvalCommand),
    /// Upload datasets to the service; how often each went to each vendor.
    #[command(subcommand)]
    Dataset(remote::DatasetCommand),
    /// Submit jobs to the service and read their results.
    #[command(subcommand)]
    Job(remote::JobCommand),
    /// Fetch attestations from the service.
    #[command(subcommand)]
    Attestation(remote::AttestationCommand),
    /// Read the service's transparency log, or begin a new one (`rotate`, an operator's
    /// recovery).
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Grant evaluators access to your models, revoke it, and read budgets.
    #[command(subcommand)]
    Grant(grants::GrantCommand),
    /// Approve or reject jobs waiting under your manual grants.
    #[command(subcommand)]
    Approval(grants::ApprovalCommand),
    /// The exact, metered usage of your models (vendor).
    Usage(grants::UsageArgs),
    /// Usage alerts on your grants (vendor; an admin: all): list, acknowledge, reinstate a
    /// suspended grant; with --identity, identity alerts on your models or your jobs.
    Alerts(alerts::AlertsArgs),
    /// Create and list accounts, and make and revoke their tokens (admin).
    #[command(subcommand)]
    Account(accounts::AccountCommand),
    /// Run a transparency-log witness (tlog-witness) that cosigns logs' checkpoints.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Run(args) => run::run(args),
        Command::Examples(args) => examples::run(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Verify(args) => verify::run(args),
        Command::VerifyConsistency(args) => verify::run_consistency(args),
        Command::Model(cmd) => model_cmd::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Eval(cmd) => remote::eval(cmd),
        Command::Dataset(cmd) => remote::dataset(cmd),
        Command::Job(cmd) => remote::job(cmd),
        Command::Attestation(cmd) => remote::attestation(cmd),
        Command::Log(cmd) => log_cmd::run(cmd),
        Command::Grant(cmd) => grants::grant(cmd),
        Command::Approval(cmd) => grants::approval(cmd),
        Command::Usage(args) => grants::usage(args),
        Command::Alerts(args) => alerts::run(args),
        Command::Account(cmd) => accounts::run(cmd),
        Command::Witness(cmd) => witness::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
