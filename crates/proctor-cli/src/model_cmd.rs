//! `proctor model`: check a model configuration against its endpoint.
//!
//! `proctor model test --config FILE.toml` sends one tiny request and prints how long it took,
//! why it finished and whether the endpoint counted tokens. Exit 0 when the model answered,
//! 1 when it failed (unavailable or rejected), 2 when the configuration or its credential is
//! unusable and nothing was sent.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use proctor_core::FinishReason;
use proctor_models::{HostPolicy, ModelConfig, ProbeError, ProbeReport};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Send one tiny request and report latency, finish reason and whether usage came back.
    Test(TestArgs),
    /// Register a model with the service (as a vendor): prints its id.
    Register(crate::remote::RegisterArgs),
    /// Your models (vendor), or the models your grants cover (evaluator).
    List(crate::grants::ListArgs),
    /// Cap your model's epsilon and leakage bits across all evaluators (vendor): a job that
    /// would take the model past a cap is refused before it runs.
    Ledger(crate::grants::LedgerArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// The model configuration (TOML): adapter, base_url, model, api_key_env, limits.
    #[arg(long)]
    config: PathBuf,
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Test(args) => test(args),
        ModelCommand::Register(args) => crate::remote::register(args),
        ModelCommand::List(args) => crate::grants::list_models(args),
        ModelCommand::Ledger(args) => crate::grants::model_ledger(args),
    }
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    // Errors returned from here are configuration errors: main prints them and exits 2.
    let path = &args.config;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = ModelConfig::from_toml(&text)
        .with_context(|| format!("model config {}", path.display()))?;
    let credential = config.credential_from_env()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Like `proctor run`, a probe runs on the user's machine, under no host rules.
    match runtime.block_on(config.probe(credential, &HostPolicy::any())) {
        Ok(report) => {
            print!("{}", render(&report));
            Ok(ExitCode::SUCCESS)
        }
        Err(ProbeError::Config(e)) => {
            Err(anyhow::Error::new(e).context(format!("model config {}", path.display())))
        }
        Err(ProbeError::Model(e)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn render(report: &ProbeReport) -> String {
    let finish = match report.finish {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length (the answer hit the token ceiling)",
        FinishReason::Refused => "refused",
        FinishReason::Other => "other",
    };
    let usage = match report.usage {
        Some(u) => format!(
            "reported ({} input tokens, {} output tokens)",
            u.input_tokens, u.output_tokens
        ),
        None => "not reported: token budgets will count 0 for this model".to_owned(),
    };
    format!(
        "model     {}  ({} {})\nlatency   {} ms\nfinish    {finish}\nusage     {usage}\n",
        report.model.reference,
        report.model.name,
        report.model.version,
        report.latency.as_millis(),
    )
}
