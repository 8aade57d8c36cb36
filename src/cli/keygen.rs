//! `loa keygen` — Make a station key pair.

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::keys;

/// Arguments of `loa keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Station id the key is for (as in its schedule file).
    #[arg(long)]
    pub station: String,
    /// Station data directory (default: `<state>/station/<station>`, the directory `loa station`
    /// and `loa up` use; see docs/operations.md, "The state layout").
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Replace an existing key (the collector must then be given the new public key).
    #[arg(long)]
    pub force: bool,
}

/// Run `loa keygen`.
pub fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let dir = args
        .dir
        .unwrap_or_else(|| crate::layout::Layout::detect().station_dir(&args.station));
    let key = match keys::generate(&dir, args.force) {
        Ok(k) => k,
        Err(e @ keys::KeyError::Exists { .. }) => {
            eprintln!("loa keygen: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e).context("making the station key"),
    };
    let (secret, public) = keys::key_paths(&dir);
    eprintln!(
        "wrote {} (secret, mode 0600) and {}",
        secret.display(),
        public.display()
    );
    eprintln!("register this line with the collector (`loa register`):");
    println!(
        "{} {}",
        args.station,
        keys::public_key_text(&key.verifying_key())
    );
    Ok(ExitCode::SUCCESS)
}
