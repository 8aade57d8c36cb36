//! `loa export` — Export a month's airing log from the collector database.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa export`.
#[derive(Debug, Args)]
pub struct ExportArgs {}

/// Run `loa export`.
pub fn run(_args: ExportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa export` is not built yet")
}
