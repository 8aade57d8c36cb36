//! `loa check` — Validate schedule files like `nginx -t`.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa check`.
#[derive(Debug, Args)]
pub struct CheckArgs {}

/// Run `loa check`.
pub fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa check` is not built yet")
}
