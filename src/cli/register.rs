//! `loa register` — Register (enrol) a station's public key with the collector.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {}

/// Run `loa register`.
pub fn run(_args: RegisterArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa register` is not built yet")
}
