//! `loa collector` — Run the central collector server.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa collector`.
#[derive(Debug, Args)]
pub struct CollectorArgs {}

/// Run `loa collector`.
pub fn run(_args: CollectorArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa collector` is not built yet")
}
