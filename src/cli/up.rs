//! `loa up` — bring the whole system up on this host: the collector and one station per schedule,
//! all on loopback, as child processes of this same binary, plus a demo station that airs a short
//! chime at the top of every minute, day and night, so a newcomer sees an airing within a minute.
//!
//! **Invariant:** `loa up` writes only what it rewrites on every start (the demo's schedule and
//! chime) and what it creates once and then reuses (each station's key pair, the admin token, the
//! stations' entries in the collector's registry); the children own everything else (journals,
//! database). On SIGINT/SIGTERM it forwards SIGTERM to the stations first, then to the
//! collector, waits for each to exit, and exits 0 only if every child exited 0 — so a Ctrl-C
//! loses nothing the daemons would not lose on a `systemctl stop`.
//!
//! Layout under `--var` (default: `$LOA_HOME`, else `var/`; the one layout of [`crate::layout`],
//! which every other subcommand defaults to, so they work after `loa up` without flags):
//! - `collector.toml`, `collector.db` — the collector's registry and database;
//! - `collector.url` — where the collector listens (it writes this itself);
//! - `admin-token` — the bearer token of the collector's admin API (mode 0600);
//! - `station/<id>/` — each station's data directory (key pair, journal, shipper state);
//! - `air/<id>/<start time>.wav` — what each station aired, when there is no sound card;
//! - `demo-schedules/demo.toml`, `demo-audio/ident.wav` — the demo station.
//!
//! The children's command lines and the files they read are built in ONE place, the
//! `children` module below (marked "MERGE POINT"), so they can follow the daemons' flags.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::collector::registry::{RawStation, upsert_file};
use crate::keys;
use crate::layout::{AIR_DIR, Chosen, Layout, STATIONS_DIR};
use crate::schedule::{self, AudioCatalog, Station};

/// Default collector port on 127.0.0.1 (a stable dashboard URL between runs).
pub const DEFAULT_PORT: u16 = 8080;
/// How long a child gets between SIGTERM and SIGKILL: the station's fade, journal flush and last
/// shipment fit well inside (the systemd units allow the same, `TimeoutStopSec=30s`).
pub const DEFAULT_STOP_GRACE_SECS: u64 = 30;
/// How long the collector may take to start listening.
pub const DEFAULT_COLLECTOR_START_SECS: u64 = 20;
/// How far ahead the start banner looks for each station's next airing: the one horizon of
/// [`schedule::next_airing`].
pub const NEXT_AIRING_HORIZON_DAYS: i64 = schedule::NEXT_AIRING_HORIZON_DAYS;
/// Length of the generated admin token, in random bytes (hex-encoded: twice as many characters).
pub const ADMIN_TOKEN_BYTES: usize = 24;

/// Arguments of `loa up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory of station schedules (one `<station-id>.toml` each). Default: `schedules`.
    #[arg(long)]
    pub schedules: Option<PathBuf>,
    /// Audio root the schedules' file names are relative to. Default: `audio`.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// Directory for all state (database, journals, keys, WAV output). Created if missing.
    /// Default: `$LOA_HOME`, else `var` (docs/operations.md, "The state layout").
    #[arg(long)]
    pub var: Option<PathBuf>,
    /// Collector port on 127.0.0.1.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Where stations play: the sound card, WAV files under var/air/<station>/, or auto-detect.
    #[arg(long, value_enum, default_value_t = OutputChoice::Auto)]
    pub output: OutputChoice,
    /// Do not run the demo station (the chime every minute).
    #[arg(long)]
    pub no_demo: bool,
    /// Seconds each child gets to exit after SIGTERM before it is killed.
    #[arg(long, default_value_t = DEFAULT_STOP_GRACE_SECS)]
    pub stop_grace_secs: u64,
}

/// Where the stations' audio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputChoice {
    /// The sound card if one is present and its default device opens, else WAV files.
    Auto,
    /// The default sound device.
    Device,
    /// WAV files under var/air/<station>/.
    Wav,
}

/// The chosen output for this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Device,
    /// WAV files under this directory, one subdirectory per station.
    Wav(PathBuf),
}

/// One station `loa up` runs.
#[derive(Debug)]
struct UpStation {
    station: Station,
    catalog: AudioCatalog,
    /// The schedule file, registered with the collector for "planned" (`None`: the demo, which
    /// is a test signal, not a plan to measure compliance against).
    planned_by: Option<PathBuf>,
    schedules_dir: PathBuf,
    audio_dir: PathBuf,
    data_dir: PathBuf,
}

/// Run `loa up`.
pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot locate the running loa binary")?;
    let layout = match &args.var {
        Some(v) => Layout::at(v.clone(), Chosen::Flag),
        None => Layout::for_up(),
    };
    let schedules_arg = args.schedules.clone().unwrap_or(layout.schedules.clone());
    let audio_arg = args.audio.clone().unwrap_or(layout.audio.clone());
    for dir in ["", STATIONS_DIR, AIR_DIR, "demo-schedules", "demo-audio"] {
        let d = layout.state.join(dir);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let var = abs(&layout.state)?;
    let lay = Layout::at(var.clone(), layout.chosen);
    let now = SystemClock.now();

    // 1. Every schedule must be valid before anything starts (exit 2 like `loa check`).
    let mut stations = Vec::new();
    let mut bad = 0usize;
    if schedules_arg.is_dir() {
        let schedules_dir = abs(&schedules_arg)?;
        let audio_dir = abs(&audio_arg)?;
        for (path, loaded) in schedule::load_dir(&schedules_dir, &audio_dir, now.date_naive()) {
            match loaded {
                Ok((station, catalog)) => stations.push(UpStation {
                    data_dir: lay.station_dir(&station.id),
                    station,
                    catalog,
                    planned_by: Some(path),
                    schedules_dir: schedules_dir.clone(),
                    audio_dir: audio_dir.clone(),
                }),
                Err(errors) => {
                    bad += errors.0.len();
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                }
            }
        }
    } else {
        eprintln!(
            "loa up: no schedules directory at {} — running the demo station only",
            schedules_arg.display()
        );
    }
    if bad > 0 {
        eprintln!("loa up: {bad} schedule error(s); fix them (`loa check` lists them) and retry");
        return Ok(ExitCode::from(2));
    }

    // 2. The demo station, rewritten on every start.
    if !args.no_demo {
        let (station, catalog) = write_demo(&var, now)?;
        let data_dir = lay.station_dir(&station.id);
        forget_downtime(&data_dir)?;
        stations.push(UpStation {
            data_dir,
            planned_by: None,
            schedules_dir: var.join("demo-schedules"),
            audio_dir: var.join("demo-audio"),
            station,
            catalog,
        });
    }
    if stations.is_empty() {
        bail!(
            "no station to run: {} holds no schedule and --no-demo was given",
            schedules_arg.display()
        );
    }
    let mut ids: Vec<&str> = stations.iter().map(|s| s.station.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "two schedules define station id {:?}; ids must be unique",
            w[0]
        );
    }

    // 3. Output, said loudly.
    let (output, why) = choose_output(args.output, &var);
    match &output {
        Output::Device => banner(&format!(
            "AUDIO OUTPUT: SOUND CARD — stations play out loud ({why})"
        )),
        Output::Wav(dir) => banner(&format!(
            "AUDIO OUTPUT: NO SOUND CARD — stations write WAV files under {}/<station>/ ({why})",
            dir.display()
        )),
    }

    // 4. The port must be free, or the collector would die at once with a less clear message.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    drop(
        TcpListener::bind(addr)
            .with_context(|| format!("port {addr} is in use: stop what uses it or pass --port"))?,
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let launch = Launch {
        exe,
        var,
        output,
        addr,
        grace: Duration::from_secs(args.stop_grace_secs),
    };
    let all_clean = runtime.block_on(async move {
        let signals = watch_signals()?;
        launch.run(stations, signals).await
    })?;
    Ok(if all_clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Everything decided before children start.
struct Launch {
    exe: PathBuf,
    var: PathBuf,
    output: Output,
    addr: SocketAddr,
    grace: Duration,
}

impl Launch {
    /// Keys, registry, children; runs until the first signal counted by `signals` or a child
    /// exits; a second signal kills what is still stopping. True when every child exited 0
    /// after being asked to stop.
    async fn run(
        self,
        stations: Vec<UpStation>,
        signals: tokio::sync::watch::Receiver<u32>,
    ) -> anyhow::Result<bool> {
        let Launch {
            exe,
            var,
            output,
            addr,
            grace,
        } = self;
        // Keys (made on first run) and the stations' entries in the collector's registry. Other
        // entries (stations enrolled by hand with `loa register` or the admin API) are kept.
        let lay = Layout::at(var.clone(), Chosen::Flag);
        let config_path = lay.registry();
        for s in &stations {
            let (public_key, made) = ensure_key(&s.data_dir)?;
            if made {
                println!(
                    "loa up: made a key pair for station {} in {}",
                    s.station.id,
                    s.data_dir.display()
                );
            }
            let created = upsert_file(&config_path, &registration(s, public_key))
                .with_context(|| format!("cannot register station {}", s.station.id))?;
            if created {
                println!(
                    "loa up: registered station {} with the collector ({})",
                    s.station.id,
                    config_path.display()
                );
            }
        }
        let token_file = ensure_admin_token(&var)?;

        // Children.
        let collector_url = format!("http://{addr}");
        let collector = ChildSpec {
            name: "collector".into(),
            program: exe.clone(),
            args: children::collector_args(addr, &lay.database(), &config_path, &token_file),
            stop_order: 1,
        };
        let run_stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut station_specs = Vec::new();
        for s in &stations {
            std::fs::create_dir_all(&s.data_dir)
                .with_context(|| format!("cannot create {}", s.data_dir.display()))?;
            let out = match &output {
                Output::Device => children::OutputArg::Device,
                Output::Wav(dir) => {
                    let d = dir.join(&s.station.id);
                    std::fs::create_dir_all(&d)
                        .with_context(|| format!("cannot create {}", d.display()))?;
                    children::OutputArg::Wav(d.join(format!("{run_stamp}.wav")))
                }
            };
            station_specs.push(ChildSpec {
                name: format!("station {}", s.station.id),
                program: exe.clone(),
                args: children::station_args(
                    &s.station.id,
                    &s.schedules_dir,
                    &s.audio_dir,
                    &s.data_dir,
                    &collector_url,
                    &out,
                ),
                stop_order: 0,
            });
        }
        let shutdown = signal_count(signals.clone(), 1);
        tokio::pin!(shutdown);
        let mut sup = Supervisor::default();
        // The collector first: stations would otherwise start with their first shipments refused.
        let started = async {
            sup.start(&collector)?;
            wait_for_port(
                &mut sup,
                addr,
                Duration::from_secs(DEFAULT_COLLECTOR_START_SECS),
            )
            .await?;
            for spec in &station_specs {
                sup.start(spec)?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = started {
            eprintln!("loa up: {e:#}");
            sup.stop(grace, signal_count(signals.clone(), 2)).await;
            return Ok(false);
        }

        banner(&format!("DASHBOARD: {collector_url}/"));
        print!("{}", advice(&var, &token_file, Utc::now()));
        print_next_airings(&stations, SystemClock.now());
        println!("Ctrl-C stops everything cleanly.");

        let ended = tokio::select! {
            _ = &mut shutdown => None,
            exited = sup.next_exit() => exited,
        };
        let mut clean = true;
        if let Some((name, status)) = ended {
            eprintln!("loa up: {name} exited on its own ({status}); stopping everything");
            clean = false;
        } else {
            println!("loa up: stopping stations, then the collector…");
        }
        let report = sup.stop(grace, signal_count(signals.clone(), 2)).await;
        for (name, status) in &report {
            println!("  {name}: {status}");
        }
        let all_clean = clean && report.iter().all(|(_, s)| s.clean());
        println!(
            "loa up: {}",
            if all_clean {
                "everything stopped cleanly"
            } else {
                "stopped, not cleanly (see above)"
            }
        );
        Ok(all_clean)
    }
}

/// The registry entry of a station `loa up` runs.
fn registration(s: &UpStation, public_key: String) -> RawStation {
    RawStation {
        id: s.station.id.clone(),
        name: s.station.name.clone(),
        area_code: s.station.area_code.clone(),
        public_key,
        schedule: s.planned_by.clone(),
        audio_root: s.planned_by.as_ref().map(|_| s.audio_dir.clone()),
    }
}

/// MERGE POINT — everything `loa up` assumes about the other subcommands' flags and files.
/// Adjust here (and only here) when `loa station` or `loa collector` change.
pub mod children {
    use std::ffi::OsString;
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};

    /// File name of the demo schedule inside `var/demo-schedules/` (`<station id>.toml`).
    pub const DEMO_SCHEDULE_FILE: &str = "demo.toml";
    /// File name of the demo chime inside `var/demo-audio/`.
    pub const DEMO_IDENT_FILE: &str = "ident.wav";
    /// Station id of the demo station.
    pub const DEMO_STATION_ID: &str = "demo";
    /// The station daemon's "last seen running" mark in its data directory: after downtime the
    /// daemon journals every occurrence since this mark as missed. For the demo that would be
    /// one record per minute `loa up` was not running, so `loa up` removes the demo's mark
    /// before starting it.
    pub const STATION_ALIVE_FILE: &str = crate::station::ALIVE_FILE;

    /// `loa collector --listen ADDR --db DB --config CONFIG --admin-token-file TOKEN`.
    pub fn collector_args(
        listen: SocketAddr,
        db: &Path,
        config: &Path,
        admin_token_file: &Path,
    ) -> Vec<OsString> {
        vec![
            "collector".into(),
            "--listen".into(),
            listen.to_string().into(),
            "--db".into(),
            db.into(),
            "--config".into(),
            config.into(),
            "--admin-token-file".into(),
            admin_token_file.into(),
        ]
    }

    /// What `--output` a station gets.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum OutputArg {
        Device,
        /// One WAV file of exactly what aired (`wav:PATH`).
        Wav(PathBuf),
    }

    /// `loa station --station ID --schedules DIR --audio DIR --data DIR --collector URL --output O`
    /// (the station reads `DIR/ID.toml`).
    pub fn station_args(
        id: &str,
        schedules: &Path,
        audio: &Path,
        data: &Path,
        collector_url: &str,
        output: &OutputArg,
    ) -> Vec<OsString> {
        let output: OsString = match output {
            OutputArg::Device => "device".into(),
            OutputArg::Wav(file) => {
                let mut o = OsString::from("wav:");
                o.push(file);
                o
            }
        };
        vec![
            "station".into(),
            "--station".into(),
            id.into(),
            "--schedules".into(),
            schedules.into(),
            "--audio".into(),
            audio.into(),
            "--data".into(),
            data.into(),
            "--collector".into(),
            collector_url.into(),
            "--output".into(),
            output,
        ]
    }

    /// The demo station's schedule file (format of `docs/schedules.md`): the chime at the top of
    /// every minute, day and night. It has no quiet hours on purpose: it is a test signal on
    /// the machine running `loa up`, not a loudspeaker over a street (see docs/operations.md).
    pub fn demo_schedule(timezone: &str) -> String {
        format!(
            r#"# Demo station written by `loa up` on every start (var/demo-schedules/demo.toml).
# A 2-second chime at the top of every minute, day and night, so a newcomer sees an airing reach
# the collector within a minute of `loa up`, whatever the hour. Not a real station: a real
# loudspeaker station keeps quiet hours (see schedules/). `loa up --no-demo` turns it off.
id = "{DEMO_STATION_ID}"
name = "Trạm thử nghiệm (loa up demo)"
kind = "ward"
area_code = "00000"
timezone = "{timezone}"
quiet_hours = []
max_session_minutes = 1

[[programs]]
id = "ident"
title = "Nhạc hiệu thử nghiệm"
category = "ident"
file = "{DEMO_IDENT_FILE}"

[[slots]]
id = "demo-ident"
cron = "* * * * *"
program = "ident"
play = ["program:ident"]
priority = "normal"
start = "soft"
grace_secs = 30
max_minutes = 1
"#
        )
    }
}

/// `path` made absolute against the current directory (children may run elsewhere one day).
fn abs(path: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(path).with_context(|| format!("cannot find {}", path.display()))
}

/// What to type next, as it works when typed: the subcommands find this `loa up`'s state by
/// themselves when run from this directory (else the advice sets `LOA_HOME`), and a `loa` on
/// PATH is checked for (with the install command when there is none).
fn advice(var: &Path, token_file: &Path, now: DateTime<Utc>) -> String {
    let found = std::fs::canonicalize(Layout::detect().state).ok();
    let env = if found.as_deref() == Some(var) {
        String::new()
    } else {
        format!("LOA_HOME={} ", var.display())
    };
    let month = now
        .with_timezone(&crate::collector::status::report_offset())
        .format("%Y-%m");
    let mut out = format!(
        "In a terminal, from this directory:\n  \
         {env}loa status                      # the station table\n  \
         {env}loa export --month {month} --format xlsx --out report.xlsx\n  \
         {env}loa keygen --station ID         # then `loa register --station ID --public-key KEY` (docs/operations.md §3)\n\
         Admin API token (enrol more stations): {}\n",
        token_file.display()
    );
    if !on_path("loa") {
        out.push_str(
            "(`loa` is not on PATH yet: `cargo install --locked --path .` installs it into \
             ~/.cargo/bin; or type target/release/loa)\n",
        );
    }
    out
}

/// Whether an executable named `name` is in a directory of `$PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn banner(text: &str) {
    let line = "=".repeat(text.chars().count().min(100) + 4);
    println!("{line}\n= {text} =\n{line}");
}

// ---------------------------------------------------------------------------------------------
// Keys and tokens

/// The station's public key (`keys::public_key_text`) from its key pair in `data_dir`, made
/// there now if it has none (the same files `loa keygen --dir DATA_DIR` writes). True when made.
fn ensure_key(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    let (secret, _) = keys::key_paths(data_dir);
    if secret.exists() {
        let key = keys::load(data_dir)
            .with_context(|| format!("cannot use the station key in {}", data_dir.display()))?;
        return Ok((keys::public_key_text(&key.verifying_key()), false));
    }
    let key = keys::generate(data_dir, false)
        .with_context(|| format!("cannot make a station key in {}", data_dir.display()))?;
    Ok((keys::public_key_text(&key.verifying_key()), true))
}

/// `var/admin-token`: the collector's admin API token, made on first run (mode 0600).
fn ensure_admin_token(var: &Path) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = Layout::at(var.to_path_buf(), Chosen::Flag).admin_token();
    if path.exists() {
        return Ok(path);
    }
    let mut bytes = [0u8; ADMIN_TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random bytes for a token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{token}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Output

/// Resolve `--output`, with the reason to show: `auto` is the sound card when
/// `/proc/asound/cards` lists one and the default device opens, otherwise WAV files.
fn choose_output(choice: OutputChoice, var: &Path) -> (Output, &'static str) {
    let wav = Output::Wav(Layout::at(var.to_path_buf(), Chosen::Flag).air_dir());
    match choice {
        OutputChoice::Wav => (wav, "--output wav"),
        OutputChoice::Device => (Output::Device, "--output device"),
        OutputChoice::Auto => {
            let cards = std::fs::read_to_string("/proc/asound/cards").unwrap_or_default();
            if sound_cards(&cards) == 0 {
                (
                    wav,
                    "/proc/asound/cards lists no card; --output device to force",
                )
            } else if !default_device_opens() {
                (
                    wav,
                    "the default sound device does not open; see `loa devices`",
                )
            } else {
                (Output::Device, "found; --output wav to write files instead")
            }
        }
    }
}

/// How many cards `/proc/asound/cards` lists (lines starting with an index number).
fn sound_cards(proc_asound_cards: &str) -> usize {
    proc_asound_cards
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|t| t.parse::<u32>().is_ok())
        })
        .count()
}

/// True when ALSA's default output device opens (and is closed again at once).
fn default_device_opens() -> bool {
    match rodio::DeviceSinkBuilder::from_default_device().and_then(|b| b.open_stream()) {
        Ok(mut sink) => {
            sink.log_on_drop(false);
            true
        }
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Demo station

/// Zone of the demo station (it only changes how its times are shown: it airs every minute).
const DEMO_TIMEZONE: &str = "Asia/Ho_Chi_Minh";

/// Write the demo schedule and chime into `var/` and validate the schedule like any other.
fn write_demo(var: &Path, now: DateTime<Utc>) -> anyhow::Result<(Station, AudioCatalog)> {
    let audio_dir = var.join("demo-audio");
    let ident = audio_dir.join(children::DEMO_IDENT_FILE);
    write_chime(&ident).with_context(|| format!("cannot write {}", ident.display()))?;
    let sched = var
        .join("demo-schedules")
        .join(children::DEMO_SCHEDULE_FILE);
    std::fs::write(&sched, children::demo_schedule(DEMO_TIMEZONE))
        .with_context(|| format!("cannot write {}", sched.display()))?;
    schedule::load(&sched, &audio_dir, now.date_naive()).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        anyhow::anyhow!(
            "the demo schedule {} does not validate (a bug in `loa up`); run with --no-demo",
            sched.display()
        )
    })
}

/// The demo owes nothing for the time `loa up` was not running: remove its "alive" mark so its
/// daemon does not journal a missed chime for every minute of the downtime.
fn forget_downtime(data_dir: &Path) -> anyhow::Result<()> {
    let mark = data_dir.join(children::STATION_ALIVE_FILE);
    match std::fs::remove_file(&mark) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", mark.display())),
    }
}

/// A 2-second three-note chime (G5, E5, C5 with a bell-like decay), 44.1 kHz 16-bit stereo,
/// peaking at about -9 dBFS. Rewritten identically on every start.
fn write_chime(path: &Path) -> Result<(), hound::Error> {
    const RATE: u32 = 44_100;
    const NOTES_HZ: [f64; 3] = [783.99, 659.25, 523.25];
    const NOTE_SECS: f64 = 0.6;
    const TOTAL_SECS: f64 = 2.0;
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    let total = (TOTAL_SECS * f64::from(RATE)) as u32;
    for n in 0..total {
        let t = f64::from(n) / f64::from(RATE);
        let mut v = 0.0;
        for (i, hz) in NOTES_HZ.iter().enumerate() {
            let start = i as f64 * NOTE_SECS;
            if t >= start {
                let dt = t - start;
                let attack = (dt / 0.005).min(1.0);
                v += attack * (-dt * 3.0).exp() * (2.0 * std::f64::consts::PI * hz * dt).sin();
            }
        }
        // Fade the tail to exact silence so the file ends cleanly.
        let tail = ((TOTAL_SECS - t) / 0.05).clamp(0.0, 1.0);
        let s = (v * 0.35 * tail * f64::from(i16::MAX)) as i16;
        w.write_sample(s)?;
        w.write_sample(s)?;
    }
    w.finalize()
}

// ---------------------------------------------------------------------------------------------
// Next airings

/// Each station's next airing after `now` (within [`NEXT_AIRING_HORIZON_DAYS`]), soonest first.
fn next_airings(stations: &[UpStation], now: DateTime<Utc>) -> Vec<schedule::PlannedAiring> {
    // The one rule (`schedule::next_airing`) the stations' heartbeats use too, so the banner,
    // the dashboard and `loa status` name the same airing.
    let mut next: Vec<_> = stations
        .iter()
        .filter_map(|s| schedule::next_airing(&s.station, &s.catalog, now, |_| false))
        .collect();
    next.sort_by_key(|a| a.at);
    next
}

fn print_next_airings(stations: &[UpStation], now: DateTime<Utc>) {
    println!("Next airings (station-local time):");
    for a in next_airings(stations, now) {
        let wait = (a.at.with_timezone(&Utc) - now).num_seconds().max(0);
        println!(
            "  {}  {:<22} {:<20} {:<8} in {}",
            a.at.format("%Y-%m-%d %H:%M:%S %:z"),
            a.station,
            a.slot,
            a.category,
            human_secs(wait)
        );
    }
    let quiet: Vec<&str> = stations
        .iter()
        .filter(|s| next_airings(std::slice::from_ref(s), now).is_empty())
        .map(|s| s.station.id.as_str())
        .collect();
    if !quiet.is_empty() {
        println!(
            "  (nothing planned within {NEXT_AIRING_HORIZON_DAYS} days: {})",
            quiet.join(", ")
        );
    }
}

fn human_secs(s: i64) -> String {
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 48 * 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} days {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

// ---------------------------------------------------------------------------------------------
// Supervision

/// A child to run.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Shown as the prefix of every line it prints.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Stopped in ascending order: stations (0) before the collector (1).
    pub stop_order: u8,
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEnd {
    /// Exited by itself with this code (0 is clean).
    Exited(i32),
    /// Killed by this signal.
    Signalled(i32),
    /// Did not exit within the grace period; SIGKILLed.
    KilledAfterGrace,
    /// Its exit status could not be read.
    Unknown(String),
}

impl ChildEnd {
    /// True for exit code 0.
    pub fn clean(&self) -> bool {
        *self == ChildEnd::Exited(0)
    }
}

impl std::fmt::Display for ChildEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildEnd::Exited(0) => write!(f, "exited cleanly"),
            ChildEnd::Exited(c) => write!(f, "exited with code {c}"),
            ChildEnd::Signalled(s) => write!(f, "killed by signal {s}"),
            ChildEnd::KilledAfterGrace => write!(f, "did not stop in time; killed"),
            ChildEnd::Unknown(e) => write!(f, "unknown exit status: {e}"),
        }
    }
}

struct Running {
    name: String,
    pid: i32,
    stop_order: u8,
    ended: Option<ChildEnd>,
}

/// A child's exit as the waiting task reports it: its index in `Supervisor::running`, and how.
type ExitReport = (usize, ChildEnd);

/// Runs children in their own process groups (so a terminal's Ctrl-C reaches only `loa up`,
/// which then stops them in order), forwards their output line by line with a name prefix, and
/// reports exits. Children get SIGTERM if `loa up` itself dies (PR_SET_PDEATHSIG).
pub struct Supervisor {
    running: Vec<Running>,
    exits_tx: tokio::sync::mpsc::UnboundedSender<ExitReport>,
    exits_rx: tokio::sync::mpsc::UnboundedReceiver<ExitReport>,
}

impl Default for Supervisor {
    fn default() -> Self {
        // Unbounded but bounded in practice: at most one message per child ever started.
        let (exits_tx, exits_rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            running: Vec::new(),
            exits_tx,
            exits_rx,
        }
    }
}

impl Supervisor {
    /// Start one child. Must run on the thread that stays alive (PR_SET_PDEATHSIG is per thread):
    /// `loa up` uses a current-thread runtime on the main thread.
    pub fn start(&mut self, spec: &ChildSpec) -> anyhow::Result<()> {
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} ({})", spec.name, spec.program.display()))?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .with_context(|| format!("{} has no process id", spec.name))?;
        let prefix = format!("[{}]", spec.name);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, prefix.clone(), Stream::Stdout));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, prefix, Stream::Stderr));
        }
        let idx = self.running.len();
        let tx = self.exits_tx.clone();
        tokio::spawn(async move {
            let end = match child.wait().await {
                Ok(st) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (st.code(), st.signal()) {
                        (Some(c), _) => ChildEnd::Exited(c),
                        (None, Some(s)) => ChildEnd::Signalled(s),
                        (None, None) => ChildEnd::Unknown(st.to_string()),
                    }
                }
                Err(e) => ChildEnd::Unknown(e.to_string()),
            };
            let _ = tx.send((idx, end));
        });
        self.running.push(Running {
            name: spec.name.clone(),
            pid,
            stop_order: spec.stop_order,
            ended: None,
        });
        Ok(())
    }

    /// The next child to exit (name and how), or pending forever when none runs.
    pub async fn next_exit(&mut self) -> Option<(String, ChildEnd)> {
        if self.running.iter().all(|r| r.ended.is_some()) {
            return std::future::pending().await;
        }
        let (idx, end) = self.exits_rx.recv().await?;
        let r = self.running.get_mut(idx)?;
        r.ended = Some(end.clone());
        Some((r.name.clone(), end))
    }

    /// A child's exit already reported, without waiting.
    fn poll_exit(&mut self) -> Option<(String, ChildEnd)> {
        let (idx, end) = self.exits_rx.try_recv().ok()?;
        let r = self.running.get_mut(idx)?;
        r.ended = Some(end.clone());
        Some((r.name.clone(), end))
    }

    /// SIGTERM every child, group by group in `stop_order`, waiting up to `grace` per group
    /// before SIGKILL. Returns every child's end, in start order.
    /// When `abort` completes (a second Ctrl-C), whatever still runs is SIGKILLed at once.
    pub async fn stop<A>(&mut self, grace: Duration, abort: A) -> Vec<(String, ChildEnd)>
    where
        A: std::future::Future<Output = ()>,
    {
        tokio::pin!(abort);
        let mut aborted = false;
        let mut orders: Vec<u8> = self.running.iter().map(|r| r.stop_order).collect();
        orders.sort_unstable();
        orders.dedup();
        for order in orders {
            for r in self
                .running
                .iter()
                .filter(|r| r.stop_order == order && r.ended.is_none())
            {
                // SAFETY: plain kill(2) on a child we started and have not seen exit.
                unsafe { libc::kill(r.pid, libc::SIGTERM) };
            }
            let mut deadline =
                tokio::time::Instant::now() + if aborted { Duration::ZERO } else { grace };
            let mut killed = Vec::new();
            while self
                .running
                .iter()
                .any(|r| r.stop_order == order && r.ended.is_none())
            {
                let waited = tokio::select! {
                    w = tokio::time::timeout_at(deadline, self.next_exit()) => w,
                    _ = &mut abort, if !aborted => {
                        aborted = true;
                        deadline = tokio::time::Instant::now();
                        continue;
                    }
                };
                match waited {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        for (i, r) in self.running.iter().enumerate() {
                            if r.stop_order == order && r.ended.is_none() && !killed.contains(&i) {
                                // SAFETY: as above.
                                unsafe { libc::kill(r.pid, libc::SIGKILL) };
                                killed.push(i);
                            }
                        }
                        // Reap them (SIGKILL cannot be ignored).
                        while self
                            .running
                            .iter()
                            .any(|r| r.stop_order == order && r.ended.is_none())
                        {
                            if self.next_exit().await.is_none() {
                                break;
                            }
                        }
                    }
                }
            }
            for i in killed {
                if let Some(r) = self.running.get_mut(i) {
                    r.ended = Some(ChildEnd::KilledAfterGrace);
                }
            }
        }
        self.running
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.ended
                        .clone()
                        .unwrap_or_else(|| ChildEnd::Unknown("never reported".into())),
                )
            })
            .collect()
    }
}

/// Which of `loa up`'s own streams a child's stream goes to.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Copy `from` line by line to `loa up`'s `to`, each line prefixed with the child's name.
async fn forward_lines<R>(from: R, prefix: String, to: Stream)
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        match to {
            Stream::Stdout => println!("{prefix} {l}"),
            Stream::Stderr => eprintln!("{prefix} {l}"),
        }
    }
}

/// Wait until `addr` accepts TCP connections, failing early if a child exits meanwhile.
async fn wait_for_port(
    sup: &mut Supervisor,
    addr: SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some((name, end)) = sup.poll_exit() {
            bail!("{name} {end} before it listened on {addr}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the collector did not listen on {addr} within {} s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts SIGINT and SIGTERM received (the first stops everything, a second kills what still
/// runs). Must be called inside the runtime.
fn watch_signals() -> anyhow::Result<tokio::sync::watch::Receiver<u32>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tx.send_modify(|n| *n += 1);
            if *tx.borrow() == 1 {
                eprintln!("loa up: stopping (press Ctrl-C again to kill at once)");
            }
        }
    });
    Ok(rx)
}

/// Completes once `signals` has counted at least `n` (never, if the counter is gone).
async fn signal_count(mut signals: tokio::sync::watch::Receiver<u32>, n: u32) {
    if signals.wait_for(|c| *c >= n).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as ChronoDuration;
    use chrono::TimeZone;

    #[test]
    fn counts_sound_cards() {
        assert_eq!(sound_cards("--- no soundcards ---\n"), 0);
        assert_eq!(sound_cards(""), 0);
        let two = " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n\
                   \x20                     HDA Intel PCH at 0xf7f10000 irq 32\n\
                   \x201 [Device         ]: USB-Audio - USB Audio Device\n\
                   \x20                     C-Media USB Audio Device at usb-0000:00:14.0-2\n";
        assert_eq!(sound_cards(two), 2);
    }

    /// The demo, loaded by the real schedule loader, airs within a minute at every minute of
    /// the day (night included: it has no quiet hours), and its chime ends inside that minute.
    #[test]
    fn demo_airs_within_a_minute_at_any_hour() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for sub in ["demo-schedules", "demo-audio"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        let day = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
        let (station, catalog) = write_demo(dir.path(), day).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(station.id, children::DEMO_STATION_ID);
        assert!(station.quiet_hours.is_empty());
        let demo = UpStation {
            station,
            catalog,
            planned_by: None,
            schedules_dir: dir.path().join("demo-schedules"),
            audio_dir: dir.path().join("demo-audio"),
            data_dir: dir.path().join("station/demo"),
        };
        // Every 7 minutes and 13 seconds through a whole UTC day (all local hours, both zones).
        let mut t = day;
        while t < day + ChronoDuration::days(1) {
            let next = next_airings(std::slice::from_ref(&demo), t);
            let first = next
                .first()
                .unwrap_or_else(|| panic!("{t}: no next airing"));
            let wait = first.at.with_timezone(&Utc) - t;
            // Strictly later (the one next-airing rule): at the top of a minute that minute's
            // chime is airing, not next.
            assert!(
                wait > ChronoDuration::zero() && wait <= ChronoDuration::seconds(60),
                "{t}: next demo airing in {wait}"
            );
            assert!(first.planned_secs > 1.9 && first.planned_secs < 2.1);
            t += ChronoDuration::seconds(7 * 60 + 13);
        }
    }

    #[test]
    fn demo_downtime_mark_is_removed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mark = dir.path().join(children::STATION_ALIVE_FILE);
        std::fs::write(&mark, "2026-11-01T00:00:00Z").unwrap_or_else(|e| panic!("{e}"));
        forget_downtime(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!mark.exists());
        forget_downtime(dir.path()).unwrap_or_else(|e| panic!("no mark is fine: {e:#}"));
    }

    #[test]
    fn keys_are_made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = dir.path().join("station/a");
        let (k1, made1) = ensure_key(&data).unwrap_or_else(|e| panic!("{e:#}"));
        let (k2, made2) = ensure_key(&data).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(made1 && !made2);
        assert_eq!(k1, k2);
        assert!(crate::wire::decode_public_key(&k1).is_ok());
        // A damaged key is an error naming the file, never a silent new key.
        std::fs::write(data.join(keys::SECRET_KEY_FILE), b"short")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = ensure_key(&data).err().map(|e| format!("{e:#}"));
        assert!(
            err.as_deref().is_some_and(|e| e.contains("station.key")),
            "{err:?}"
        );
    }

    #[test]
    fn admin_token_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = ensure_admin_token(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        let t1 = std::fs::read_to_string(&p).unwrap_or_default();
        assert_eq!(t1.trim().len(), ADMIN_TOKEN_BYTES * 2);
        let mode = std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        ensure_admin_token(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(std::fs::read_to_string(&p).unwrap_or_default(), t1);
    }

    #[test]
    fn chime_is_two_seconds_of_real_sound() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("ident.wav");
        write_chime(&p).unwrap_or_else(|e| panic!("{e}"));
        let r = hound::WavReader::open(&p).unwrap_or_else(|e| panic!("{e}"));
        let spec = r.spec();
        let frames = r.duration();
        assert_eq!((spec.channels, spec.sample_rate), (2, 44_100));
        assert_eq!(frames, 88_200);
        let samples: Vec<i16> = r.into_samples::<i16>().filter_map(Result::ok).collect();
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 5_000 && peak < 20_000, "peak {peak}");
        assert_eq!(samples.last().copied(), Some(0), "ends in silence");
    }

    #[test]
    fn station_command_line_is_in_one_place() {
        let args = children::station_args(
            "demo",
            Path::new("/v/demo-schedules"),
            Path::new("/v/demo-audio"),
            Path::new("/v/station/demo"),
            "http://127.0.0.1:8080",
            &children::OutputArg::Wav("/v/air/demo/x.wav".into()),
        );
        let joined: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            joined.join(" "),
            "station --station demo --schedules /v/demo-schedules --audio /v/demo-audio \
             --data /v/station/demo --collector http://127.0.0.1:8080 --output wav:/v/air/demo/x.wav"
        );
    }

    /// The real `loa station` and `loa collector` parsers accept exactly what `children` builds.
    #[test]
    fn children_command_lines_parse_with_the_real_subcommands() {
        use clap::Parser;
        let mut lines: Vec<Vec<OsString>> = [
            children::OutputArg::Device,
            children::OutputArg::Wav("/v/x.wav".into()),
        ]
        .iter()
        .map(|out| {
            let (s, a, d) = (Path::new("/v/s"), Path::new("/v/a"), Path::new("/v/d"));
            children::station_args("demo", s, a, d, "http://127.0.0.1:1", out)
        })
        .collect();
        lines.push(children::collector_args(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
            Path::new("/v/c.db"),
            Path::new("/v/c.toml"),
            Path::new("/v/admin-token"),
        ));
        for args in lines {
            let argv = std::iter::once(OsString::from("loa")).chain(args.iter().cloned());
            if let Err(e) = crate::cli::Cli::try_parse_from(argv) {
                panic!("{args:?}: {e}");
            }
        }
    }

    /// Wait until every file in `files` exists (the shells create one once their traps are set).
    async fn wait_files(files: &[&Path]) {
        for _ in 0..200 {
            if files.iter().all(|f| f.exists()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("children did not start: {files:?}");
    }

    fn sh(name: &str, script: &str, stop_order: u8) -> ChildSpec {
        ChildSpec {
            name: name.into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            stop_order,
        }
    }

    /// Start a child named "stubborn" that ignores SIGTERM, and wait until it runs.
    async fn start_stubborn(sup: &mut Supervisor, dir: &Path) {
        let ready = dir.join("ready");
        sup.start(&sh(
            "stubborn",
            &format!(
                "trap '' TERM; touch {}; while :; do sleep 0.05; done",
                ready.display()
            ),
            0,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        wait_files(&[&ready]).await;
    }

    /// Children that exit 0 on SIGTERM: stopped in order (stations before the collector), all clean.
    #[tokio::test]
    async fn stops_children_in_order_and_reports_clean_exits() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let marker = dir.path().join("station-stopped");
        let m = marker.display();
        let (r1, r2) = (dir.path().join("r1"), dir.path().join("r2"));
        let (r1d, r2d) = (r1.display(), r2.display());
        let mut sup = Supervisor::default();
        // The "collector" exits 0 on TERM only if the "station" was already stopped.
        sup.start(&sh(
            "collector",
            &format!("trap 'test -e {m} && exit 0; exit 9' TERM; touch {r1d}; while :; do sleep 0.05; done"),
            1,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        sup.start(&sh(
            "station a",
            &format!("trap 'touch {m}; exit 0' TERM; touch {r2d}; echo started; while :; do sleep 0.05; done"),
            0,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        wait_files(&[&r1, &r2]).await;
        let report = sup
            .stop(Duration::from_secs(10), std::future::pending())
            .await;
        assert_eq!(
            report,
            vec![
                ("collector".to_string(), ChildEnd::Exited(0)),
                ("station a".to_string(), ChildEnd::Exited(0)),
            ]
        );
    }

    #[tokio::test]
    async fn reports_a_child_that_exits_by_itself_and_kills_one_that_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut sup = Supervisor::default();
        start_stubborn(&mut sup, dir.path()).await;
        sup.start(&sh("crasher", "sleep 0.2; exit 3", 0))
            .unwrap_or_else(|e| panic!("{e}"));
        let first = tokio::time::timeout(Duration::from_secs(10), sup.next_exit()).await;
        assert_eq!(
            first.ok().flatten(),
            Some(("crasher".to_string(), ChildEnd::Exited(3)))
        );
        let report = sup
            .stop(Duration::from_millis(500), std::future::pending())
            .await;
        assert_eq!(
            report,
            vec![
                ("stubborn".to_string(), ChildEnd::KilledAfterGrace),
                ("crasher".to_string(), ChildEnd::Exited(3)),
            ]
        );
        assert!(!report.iter().all(|(_, e)| e.clean()));
    }

    /// A second Ctrl-C while stopping: what still runs is killed at once, not after the grace.
    #[tokio::test]
    async fn abort_kills_at_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut sup = Supervisor::default();
        start_stubborn(&mut sup, dir.path()).await;
        let stop = sup.stop(
            Duration::from_secs(3600),
            tokio::time::sleep(Duration::from_millis(200)),
        );
        let report = tokio::time::timeout(Duration::from_secs(30), stop)
            .await
            .unwrap_or_else(|_| panic!("abort did not cut the hour-long grace"));
        assert_eq!(
            report,
            vec![("stubborn".to_string(), ChildEnd::KilledAfterGrace)]
        );
    }

    fn test_station(id: &str, dir: &Path) -> UpStation {
        UpStation {
            station: Station {
                id: id.into(),
                name: format!("Phường {id}"),
                kind: schedule::StationKind::Ward,
                area_code: "21016".into(),
                timezone: chrono_tz::Asia::Ho_Chi_Minh,
                quiet_hours: vec![],
                max_session_minutes: 60,
                loudness: Default::default(),
                collector: None,
                programs: Default::default(),
                slots: vec![],
                source: dir.join(format!("schedules/{id}.toml")),
            },
            catalog: AudioCatalog::default(),
            planned_by: Some(dir.join(format!("schedules/{id}.toml"))),
            schedules_dir: dir.join("schedules"),
            audio_dir: dir.join("audio"),
            data_dir: dir.join("var/station").join(id),
        }
    }

    /// The whole launch with a stand-in `loa` (a shell script logging its argv): keys made once
    /// and reused, stations registered (a hand-enrolled station kept), collector started and
    /// waited for, stations started with the command lines of `children`, then stopped before
    /// the collector; all clean.
    #[tokio::test]
    async fn launch_with_a_stand_in_loa() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        let (var, log) = (d.join("var"), d.join("log"));
        for sub in ["station", "air"] {
            std::fs::create_dir_all(var.join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::create_dir_all(&log).unwrap_or_else(|e| panic!("{e}"));
        // A station enrolled by hand before: `loa up` must keep it.
        let other_key = crate::wire::encode_public_key(
            &ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key(),
        );
        std::fs::write(
            var.join("collector.toml"),
            format!("[[station]]\nid = \"ward-2\"\npublic_key = \"{other_key}\"\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // The "collector" listens thanks to this test's socket; it exits 0 on SIGTERM only if
        // both stations were stopped before it.
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let exe = d.join("loa");
        let script = format!(
            r#"#!/bin/sh
log='{log}'
echo "$*" >> "$log/argv"
case "$1" in
  collector) trap 'test -e "$log/stopped-a" && test -e "$log/stopped-b" && exit 0; exit 9' TERM
             while :; do sleep 0.05; done ;;
  station) trap 'touch "$log/stopped-$3"; exit 0' TERM; touch "$log/started-$3"
           while :; do sleep 0.05; done ;;
  *) exit 64 ;;
esac
"#,
            log = log.display()
        );
        std::fs::write(&exe, script).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));

        // Plays the part of Ctrl-C: one "signal" once both stations run.
        let signal_when_started = |log: PathBuf| {
            let (tx, rx) = tokio::sync::watch::channel(0u32);
            tokio::spawn(async move {
                for _ in 0..400 {
                    if log.join("started-a").exists() && log.join("started-b").exists() {
                        let _ = tx.send(1);
                        // Keep the sender: a closed counter means "never".
                        return std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // They did not start: stop anyway; the asserts below will say what is missing.
                let _ = tx.send(1);
                std::future::pending::<()>().await
            });
            rx
        };
        let mut keys_seen = Vec::new();
        for round in 0..2 {
            for f in ["started-a", "started-b", "stopped-a", "stopped-b"] {
                let _ = std::fs::remove_file(log.join(f));
            }
            let launch = Launch {
                exe: exe.clone(),
                var: var.clone(),
                output: Output::Wav(var.join("air")),
                addr,
                grace: Duration::from_secs(10),
            };
            let stations = vec![test_station("a", d), test_station("b", d)];
            let clean = launch
                .run(stations, signal_when_started(log.clone()))
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
            assert!(clean, "round {round}: every child exits 0, collector last");
            for f in ["stopped-a", "stopped-b"] {
                assert!(
                    log.join(f).exists(),
                    "round {round}: {f}: stations ran and got SIGTERM"
                );
            }
            let registry = crate::collector::registry::Registry::load(&var.join("collector.toml"))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            let ids: Vec<&str> = registry.stations.keys().map(String::as_str).collect();
            assert_eq!(ids, ["a", "b", "ward-2"], "round {round}");
            keys_seen.push(
                registry
                    .stations
                    .values()
                    .map(|s| s.public_key.clone())
                    .collect::<Vec<_>>(),
            );
            let a = &registry.stations["a"];
            assert_eq!(a.name, "Phường a");
            assert_eq!(
                a.schedule.as_deref(),
                Some(d.join("schedules/a.toml").as_path())
            );
            assert_eq!(a.audio_root.as_deref(), Some(d.join("audio").as_path()));
        }
        assert_eq!(
            keys_seen[0], keys_seen[1],
            "keys are made once, then reused"
        );
        assert_eq!(keys_seen[0][2], other_key);
        assert!(var.join("admin-token").is_file());

        let argv = std::fs::read_to_string(log.join("argv")).unwrap_or_default();
        let v = var.display();
        let collector = format!(
            "collector --listen {addr} --db {v}/collector.db --config {v}/collector.toml \
             --admin-token-file {v}/admin-token"
        );
        assert_eq!(
            argv.lines().filter(|l| *l == collector).count(),
            2,
            "{argv}"
        );
        let station_a = format!(
            "station --station a --schedules {d}/schedules --audio {d}/audio --data {v}/station/a \
             --collector http://{addr} --output wav:{v}/air/a/",
            d = d.display()
        );
        let a_lines: Vec<&str> = argv
            .lines()
            .filter(|l| l.starts_with(&station_a) && l.ends_with(".wav"))
            .collect();
        assert_eq!(a_lines.len(), 2, "{argv}");
        assert!(var.join("air/b").is_dir());
        drop(listener);
    }
}
