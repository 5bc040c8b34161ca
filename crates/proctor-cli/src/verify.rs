//! `proctor verify` and `proctor verify-consistency`: offline checks of attestations and logs.

use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct VerifyArgs {}

#[derive(Args)]
pub struct ConsistencyArgs {}

pub fn run(_args: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}

pub fn run_consistency(_args: ConsistencyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
