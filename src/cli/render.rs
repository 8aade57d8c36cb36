//! `loa render` — Render a session offline to a WAV file, as fast as the CPU goes, through the
//! same player, loudness and meter as airing (so the file is exactly what would have aired).

use super::play::{LoudnessArgs, print_report};
use crate::manual::air_once;
use crate::output::{DEFAULT_CHANNELS, DEFAULT_SAMPLE_RATE, OutputConfig, Pacing};
use crate::player::PlayerConfig;
use crate::process;
use chrono::Utc;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `loa render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Audio files (WAV, MP3, Ogg Vorbis, FLAC), rendered back to back.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The WAV file to write (32-bit float).
    #[arg(long)]
    pub out: PathBuf,
    /// Output sample rate.
    #[arg(long, default_value_t = DEFAULT_SAMPLE_RATE)]
    pub rate: u32,
    /// Output channels.
    #[arg(long, default_value_t = DEFAULT_CHANNELS)]
    pub channels: u16,
    /// Cut after this many seconds (with a fade), as a hard stop would.
    #[arg(long)]
    pub max_secs: Option<f64>,
    /// Print the evidence as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub loudness: LoudnessArgs,
}

/// Run `loa render`.
pub fn run(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let output = OutputConfig {
        spec: format!("wav:{}", args.out.display()),
        sample_rate: Some(args.rate),
        channels: Some(args.channels),
        pacing: Pacing::AsFastAsPossible,
        latency_ms: None,
        underrun_wait_ms: None,
        publish: None,
    };
    let config = PlayerConfig::new(output, args.loudness.settings());
    process::init_logging(process::LOG_ENV, process::LogFormat::Text);
    let report = air_once(config, args.files, Utc::now(), args.max_secs)?;
    print_report(&report, args.json)
}
