//! `proctor model`: check a model configuration against its endpoint.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum ModelCommand {}

pub fn run(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
