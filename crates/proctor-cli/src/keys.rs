//! `proctor keys`: generate and show the service's signing keys.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCommand {}

pub fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
