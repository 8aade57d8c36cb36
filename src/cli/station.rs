//! `loa station` — Run the station daemon.

use crate::notify::{Liveness, Notifier, pet_while_alive, watchdog_interval};
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::process;
use crate::station::{self, Control, Daemon, StationConfig, StationError, playout};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Arguments of `loa station`.
#[derive(Debug, Args)]
pub struct StationArgs {
    /// Station id; its schedule is `<schedules>/<ID>.toml`.
    #[arg(long)]
    pub station: String,
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
    /// Collector base URL (overrides the schedule's `[collector] url`). Without either, the URL
    /// the collector recorded in the state directory (`<state>/collector.url`), if any.
    #[arg(long)]
    pub collector: Option<String>,
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

/// Run `loa station`.
pub fn run(args: StationArgs) -> anyhow::Result<ExitCode> {
    process::init_logging(process::LOG_ENV, args.log_format.into());
    let layout = crate::layout::Layout::detect();
    let data_dir = args
        .data
        .clone()
        .unwrap_or_else(|| layout.station_dir(&args.station));
    let schedules = args
        .schedules
        .clone()
        .unwrap_or_else(|| layout.schedules.clone());
    let data_dir_for_cache = data_dir.clone();
    let mut cfg = StationConfig {
        station: args.station.clone(),
        schedule_path: schedules.join(format!("{}.toml", args.station)),
        audio_root: args.audio.clone().unwrap_or_else(|| layout.audio.clone()),
        data_dir,
        collector_url: args.collector.clone(),
        heartbeat_secs: args.heartbeat_secs,
        keep_days: args.keep_days,
    };
    // The player is set up with the schedule's loudness target, so the schedule is read (and
    // validated) before the output is opened, once: the daemon opens with it.
    let (schedule, catalog) = match station::load_schedule(&cfg, chrono::Utc::now()) {
        Ok(loaded) => loaded,
        Err(e @ (StationError::Schedule { .. } | StationError::WrongStation { .. })) => {
            eprintln!("loa station: refusing to start: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e).context("reading the schedule"),
    };
    // No collector named (flag or schedule): the one the layout's collector recorded, if any
    // (a station started beside `loa up` ships to it without flags).
    if cfg.collector_url.is_none()
        && schedule.collector.is_none()
        && layout.collector_url_file().is_file()
    {
        let (url, from) = layout.collector_url();
        tracing::info!(%url, "collector URL {from}");
        cfg.collector_url = Some(url);
    }
    if let Some(url) = &args.publish
        && let Err(e) = crate::output::publish::publish_url(url)
    {
        eprintln!("loa station: --publish: {e}");
        return Ok(ExitCode::from(2));
    }
    let (player, events): (Box<dyn playout::Playout>, _) = match args.output.as_str() {
        "timer" if args.publish.is_some() => {
            eprintln!("loa station: --publish needs a real output (the timer airs no audio)");
            return Ok(ExitCode::from(2));
        }
        "timer" => {
            let (p, rx) = playout::TimerPlayout::spawn().map_err(|e| anyhow::anyhow!(e))?;
            (Box::new(p), rx)
        }
        spec => {
            let loudness = crate::loudness::LoudnessSettings {
                target_lufs: schedule.loudness.integrated_lufs,
                max_true_peak_dbtp: schedule.loudness.max_true_peak_dbtp,
                cache_dir: Some(data_dir_for_cache.join("loudness")),
                ..Default::default()
            };
            let mut output = crate::output::OutputConfig::new(spec);
            output.publish = args.publish.clone();
            match playout::PlayerPlayout::spawn(output, loudness) {
                Ok((p, rx)) => (Box::new(p), rx),
                Err(e) => {
                    eprintln!("loa station: cannot open output {spec:?}: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    };
    // One thread runs the scheduler, the shipper and the heartbeat: they mostly sleep, the
    // player has its own threads (the first sample is placed there, not here), and journal reads
    // go to the blocking pool. A multi-threaded runtime cost ~1 MB of RSS idle for nothing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        // Signals first: a SIGTERM during start-up must mean "shut down cleanly", not death.
        let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(8);
        let notifier = Notifier::from_env();
        spawn_signals(ctl_tx, notifier.clone())?;
        let mut daemon = Daemon::open_loaded(cfg, Arc::new(SystemClock), player, schedule, catalog)
            .context("starting the station")?;
        // systemd (Type=notify): ready once the schedule, key and journal are open; the
        // watchdog is petted only while the scheduler loop beats (same thread as the pets).
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(watchdog) = watchdog_interval() {
            let liveness = Liveness::new();
            daemon.set_liveness(liveness.clone(), Liveness::max_sleep(watchdog));
            let mut stop_rx = stop_rx.clone();
            tokio::spawn(pet_while_alive(
                notifier.clone(),
                liveness,
                watchdog,
                async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                },
            ));
        }
        if let Err(e) = notifier.ready_with_status(&format!("airing station {}", args.station)) {
            tracing::warn!("systemd notify: {e}");
        }
        let events = station::bridge_events(events);
        let result = daemon.run(events, ctl_rx).await;
        let _ = stop_tx.send(true);
        drop(stop_rx);
        result.context("station daemon")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn spawn_signals(tx: tokio::sync::mpsc::Sender<Control>, notifier: Notifier) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                _ = hup.recv() => Control::Reload,
                _ = term.recv() => Control::Shutdown,
                _ = int.recv() => Control::Shutdown,
            };
            tracing::info!(?c, "signal received");
            if matches!(c, Control::Shutdown)
                && let Err(e) = notifier.stopping()
            {
                tracing::warn!("systemd notify: {e}");
            }
            if tx.send(c).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}
