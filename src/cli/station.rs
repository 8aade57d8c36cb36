//! `loa station` — Run the station daemon.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa station`.
#[derive(Debug, Args)]
pub struct StationArgs {}

/// Run `loa station`.
pub fn run(_args: StationArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa station` is not built yet")
}
