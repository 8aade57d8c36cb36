//! `loa station` — Run the station daemon.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

use super::enrol::{StationFile, StationFileError, collector_url};
use crate::process;
use crate::station::{self, Launch, StationConfig, StationError};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Arguments of `loa station`.
#[derive(Debug, Args)]
pub struct StationArgs {
    /// Station id; its schedule is `<schedules>/<ID>.toml`. Default: the id in
    /// `<state>/station.toml`, which `loa enrol` wrote (with the collector URLs and data
    /// directory, which the flags below override).
    #[arg(long)]
    pub station: Option<String>,
    /// Schedules directory (default: `./schedules`, or `/etc/loa/schedules` on an installed box;
    /// see docs/operations.md, "The state layout").
    #[arg(long)]
    pub schedules: Option<PathBuf>,
    /// Audio root the schedule's paths are relative to (default: `./audio`, or
    /// `/var/lib/loa/audio` on an installed box).
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// Data directory (journal, key, ledger); default `<state>/station/<ID>`, where `loa keygen`
    /// and `loa up` put it.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Audio output: `device`, `device:NAME`, `wav:PATH`, `null` (the player's backends), or
    /// `timer` (a silent stand-in that only keeps time and hashes files; no evidence meter).
    #[arg(long, default_value = "device")]
    pub output: String,
    /// Also publish what airs to an Icecast mount, MP3 via the `lame` program (the city side,
    /// for wards to relay): `icecast://source:PASSWORD@HOST:PORT/MOUNT.mp3`.
    #[arg(long, value_name = "URL")]
    pub publish: Option<String>,
    /// Collector base URL; repeat the flag to name several collectors, in order of preference
    /// (`--collector http://a:8080 --collector http://b:8080`): the station fails over between
    /// them (docs/station.md, "Several collectors"). Overrides the schedule's
    /// `[collector] urls`. Default: the list in `<state>/station.toml` (`loa enrol`), else the
    /// schedule's, else the URL the collector recorded in the state directory
    /// (`<state>/collector.url`), if any.
    #[arg(long, value_name = "URL", action = clap::ArgAction::Append, value_parser = collector_url)]
    pub collector: Vec<String>,
    /// Heartbeat period in seconds (overrides the schedule).
    #[arg(long)]
    pub heartbeat_secs: Option<u64>,
    /// Days of acknowledged records kept in the local journal before compaction deletes them
    /// (whole segments; unacknowledged records are never deleted). At least 32.
    #[arg(long, default_value_t = station::DEFAULT_KEEP_DAYS,
          value_parser = clap::value_parser!(u32).range(i64::from(station::MIN_KEEP_DAYS)..))]
    pub keep_days: u32,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl From<LogFormat> for process::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => process::LogFormat::Text,
            LogFormat::Json => process::LogFormat::Json,
        }
    }
}

/// The station this box runs: `--station`, else the configuration `loa enrol` wrote; with
/// that configuration when it is this station's (its collector URLs and data directory, which
/// the flags override).
fn which_station(
    flag: Option<String>,
    config: &std::path::Path,
) -> Result<(String, Option<StationFile>), String> {
    let file = match StationFile::load(config) {
        Ok(f) => Some(f),
        Err(StationFileError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) if flag.is_none() => return Err(e.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the station configuration: --station is given");
            None
        }
    };
    match (flag, file) {
        (Some(id), Some(f)) if f.id == id => Ok((id, Some(f))),
        (Some(id), _) => Ok((id, None)),
        (None, Some(f)) => Ok((f.id.clone(), Some(f))),
        (None, None) => Err(format!(
            "no --station given and no station configuration {} (`loa enrol` writes it); \
             enrol this box with `loa enrol --collector URL --code CODE`, or pass --station ID",
            config.display()
        )),
    }
}

/// Run `loa station`: the arguments resolved against the state layout, then
/// [`station::run_station`].
pub fn run(args: StationArgs) -> anyhow::Result<ExitCode> {
    process::init_logging(process::LOG_ENV, args.log_format.into());
    let layout = crate::layout::Layout::detect();
    let (id, file) = match which_station(args.station, &layout.station_config()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("loa station: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let schedules = args.schedules.unwrap_or_else(|| layout.schedules.clone());
    let (file_collectors, file_data) = match file {
        Some(f) => (f.collectors, f.data_dir),
        None => (Vec::new(), None),
    };
    let data_dir = args
        .data
        .or(file_data)
        .unwrap_or_else(|| layout.station_dir(&id));
    // A centre-managed station (an `active` version in its data directory) airs that version's
    // schedule and audio; the others read schedules/ and audio/ as before.
    let managed = station::sync::managed_paths(&data_dir, &id)
        .with_context(|| format!("station data directory {}", data_dir.display()))?;
    let (schedule_path, audio_root) = match managed {
        Some((schedule, audio)) => {
            tracing::info!(schedule = %schedule.display(), "centre-managed station: airing its active version");
            (schedule, audio)
        }
        None => (
            schedules.join(format!("{id}.toml")),
            args.audio.unwrap_or_else(|| layout.audio.clone()),
        ),
    };
    let launch = Launch {
        cfg: StationConfig {
            schedule_path,
            audio_root,
            data_dir,
            station: id,
            // The flags' URLs, else the whole list station.toml names (checked when read), in
            // its order: the station fails over between them.
            collector_urls: if args.collector.is_empty() {
                file_collectors
            } else {
                args.collector
            },
            heartbeat_secs: args.heartbeat_secs,
            keep_days: args.keep_days,
        },
        output: args.output,
        publish: args.publish,
        recorded_collector: layout
            .collector_url_file()
            .is_file()
            .then(|| layout.collector_url()),
    };
    match station::run_station(launch) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ (StationError::Schedule { .. } | StationError::WrongStation { .. })) => {
            eprintln!("loa station: refusing to start: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) if e.is_refusal() => {
            eprintln!("loa station: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e @ StationError::Output { .. }) => {
            eprintln!("loa station: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("station daemon"),
    }
}
