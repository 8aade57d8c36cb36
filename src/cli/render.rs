//! `loa render` — Render a session offline to a WAV file.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa render`.
#[derive(Debug, Args)]
pub struct RenderArgs {}

/// Run `loa render`.
pub fn run(_args: RenderArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loa render` is not built yet")
}
