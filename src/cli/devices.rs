//! `loa devices` — List audio output devices.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {}

/// Run `loa devices`.
pub fn run(_args: DevicesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa devices` is not built yet")
}
