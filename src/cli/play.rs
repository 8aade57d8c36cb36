//! `loa play` — Air files now and print the evidence.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa play`.
#[derive(Debug, Args)]
pub struct PlayArgs {}

/// Run `loa play`.
pub fn run(_args: PlayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa play` is not built yet")
}
