//! The `loa` command line. **Invariant:** the only module that uses `anyhow`; every subcommand
//! lives in its own file and returns an exit code (0 ok, 1 runtime failure, 2 invalid input).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// loa — airs the broadcast plan on time and proves what aired.
#[derive(Debug, Parser)]
#[command(name = "loa", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version.
    Version,
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("loa {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
