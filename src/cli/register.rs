//! `loa register` — Register (enrol) a station's public key with the collector.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::collector::registry::{RawStation, upsert_file};

/// Arguments of `loa register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Registry file to add the station to (created when missing).
    #[arg(long, default_value = "collector.toml")]
    pub config: PathBuf,
    /// Station id (as in its schedule file and records).
    #[arg(long)]
    pub station: String,
    /// The station's public key (base64, printed by `loa keygen`).
    #[arg(long)]
    pub public_key: String,
    /// Display name, e.g. "Phường Lê Hồng Phong".
    #[arg(long)]
    pub name: Option<String>,
    /// Administrative area code (mã đơn vị hành chính).
    #[arg(long)]
    pub area_code: Option<String>,
    /// The station's schedule file (for "planned" in reports).
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    /// Audio root of that schedule (defaults to the schedule's directory).
    #[arg(long)]
    pub audio_root: Option<PathBuf>,
}

/// Run `loa register`.
pub fn run(args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let entry = RawStation {
        id: args.station.clone(),
        name: args.name.unwrap_or_default(),
        area_code: args.area_code.unwrap_or_default(),
        public_key: args.public_key.trim().to_string(),
        schedule: args.schedule,
        audio_root: args.audio_root,
    };
    match upsert_file(&args.config, &entry) {
        Ok(true) => {
            println!(
                "registered station `{}` in {}",
                args.station,
                args.config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            println!(
                "updated station `{}` in {}",
                args.station,
                args.config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("loa register: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
