//! `loa plan` — List the planned airings of a station.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {}

/// Run `loa plan`.
pub fn run(_args: PlanArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa plan` is not built yet")
}
