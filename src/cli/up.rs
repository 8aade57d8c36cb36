//! `loa up` — Bring the whole system up on this host (collector + every station).

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa up`.
#[derive(Debug, Args)]
pub struct UpArgs {}

/// Run `loa up`.
pub fn run(_args: UpArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa up` is not built yet")
}
