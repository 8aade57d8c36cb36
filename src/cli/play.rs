//! `loa play` — Air files now (or at `--at`) and print the evidence.

use crate::loudness::{self, LoudnessSettings};
use crate::manual::{PlayReport, air_once};
use crate::output::{OutputConfig, Pacing};
use crate::player::{PlayOutcome, PlayerConfig};
use crate::process;
use chrono::{DateTime, Utc};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Loudness options shared by `loa play` and `loa render`.
#[derive(Debug, Clone, Args)]
pub struct LoudnessArgs {
    /// Air items at their own level (no normalisation).
    #[arg(long)]
    pub no_loudness: bool,
    /// Integrated loudness target.
    #[arg(long, default_value_t = loudness::DEFAULT_TARGET_LUFS, allow_hyphen_values = true)]
    pub target_lufs: f64,
    /// True-peak ceiling.
    #[arg(long, default_value_t = loudness::DEFAULT_MAX_TRUE_PEAK_DBTP, allow_hyphen_values = true)]
    pub max_true_peak_dbtp: f64,
    /// Loudness cache directory (default `$XDG_CACHE_HOME/loa` or `~/.cache/loa`).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

impl LoudnessArgs {
    /// The settings these options describe.
    pub fn settings(&self) -> LoudnessSettings {
        LoudnessSettings {
            enabled: !self.no_loudness,
            target_lufs: self.target_lufs,
            max_true_peak_dbtp: self.max_true_peak_dbtp,
            cache_dir: self.cache_dir.clone().or_else(loudness::default_cache_dir),
            ..LoudnessSettings::default()
        }
    }
}

/// Arguments of `loa play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// Audio files (WAV, MP3, Ogg Vorbis, FLAC), aired back to back.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output: `device`, `device:NAME`, `wav:PATH` or `null`.
    #[arg(long, default_value = "device")]
    pub output: String,
    /// Output sample rate (default: the device's).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Output channels (default: the device's).
    #[arg(long)]
    pub channels: Option<u16>,
    /// Start at this instant (RFC 3339) instead of now.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// Hard stop after this many seconds (with a fade).
    #[arg(long)]
    pub max_secs: Option<f64>,
    /// Delay after the output to allow for when placing the first sample (default: the delay the device reports).
    #[arg(long)]
    pub latency_ms: Option<f64>,
    /// How long the sound card callback waits for a late chunk before playing silence (raise it
    /// for unclocked sinks such as ALSA's `file` plugin).
    #[arg(long)]
    pub underrun_wait_ms: Option<u64>,
    /// Print the evidence as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub loudness: LoudnessArgs,
}

/// Print a report (human or JSON) and turn its outcome into an exit code.
pub fn print_report(report: &PlayReport, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        let e = &report.evidence;
        let opt = |x: Option<f64>, unit: &str| {
            x.map(|v| format!("{v:.2} {unit}"))
                .unwrap_or_else(|| "n/a (silence)".into())
        };
        println!("outcome:      {:?}", report.outcome);
        if let Some(r) = &report.reason {
            println!("reason:       {r}");
        }
        println!("scheduled:    {}", report.scheduled_at.to_rfc3339());
        match e.first_sample_at {
            Some(t) => println!(
                "first sample: {} ({:+.1} ms)",
                t.to_rfc3339(),
                report.start_offset_ms.unwrap_or(0.0)
            ),
            None => println!("first sample: none"),
        }
        println!(
            "aired:        {:.3} s ({} frames at {} Hz × {} ch on {})",
            report.aired_secs, e.frames, e.sample_rate, e.channels, e.output
        );
        println!("loudness:     {}", opt(e.integrated_lufs, "LUFS"));
        println!("sample peak:  {}", opt(e.sample_peak_dbfs, "dBFS"));
        println!(
            "silence:      {:.2} s (runs ≥ 2 s below -60 dBFS)",
            e.silence_secs
        );
        for (i, it) in report.items.iter().enumerate() {
            println!(
                "item {}:       {} — {:.3} of {:.3} s, sha256 {}",
                i + 1,
                it.path,
                it.aired_secs,
                it.duration_secs,
                if it.sha256.is_empty() {
                    "-"
                } else {
                    &it.sha256
                }
            );
        }
    }
    // A hard stop at the slot's limit is the plan working; anything else is worth a non-zero exit.
    Ok(match report.outcome {
        PlayOutcome::Complete | PlayOutcome::HardStopped => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// Run `loa play`.
pub fn run(args: PlayArgs) -> anyhow::Result<ExitCode> {
    let output = OutputConfig {
        spec: args.output.clone(),
        sample_rate: args.rate,
        channels: args.channels,
        pacing: Pacing::RealTime,
        latency_ms: args.latency_ms,
        underrun_wait_ms: args.underrun_wait_ms,
        publish: None,
    };
    let config = PlayerConfig::new(output, args.loudness.settings());
    let start_at = args.at.unwrap_or_else(Utc::now);
    // The player's item-started lines (what airs, its format, conversion and downmix) go to
    // stderr; `LOA_LOG` filters as for the station.
    process::init_logging(process::LOG_ENV, process::LogFormat::Text);
    let report = air_once(config, args.files, start_at, args.max_secs)?;
    print_report(&report, args.json)
}
