//! `loa status` — Show station status from the collector.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa status`.
#[derive(Debug, Args)]
pub struct StatusArgs {}

/// Run `loa status`.
pub fn run(_args: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa status` is not built yet")
}
