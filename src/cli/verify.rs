//! `loa verify` — Verify an exported JSON airing log offline.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Run `loa verify`.
pub fn run(_args: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa verify` is not built yet")
}
