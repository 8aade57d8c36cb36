//! `loa keygen` — Make a station key pair.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {}

/// Run `loa keygen`.
pub fn run(_args: KeygenArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa keygen` is not built yet")
}
