//! `loa up` — bring the whole system up on this host: the collector and one station per schedule,
//! all on loopback, as child processes of this same binary, plus a demo station that airs a short
//! chime every minute of the day so a newcomer sees an airing within a minute.
//!
//! **Invariant:** `loa up` owns no state of its own beyond `var/` files it rewrites on every start
//! (collector config, demo schedule and audio, public-key cache); the children own everything else
//! (keys, journals, database). On SIGINT/SIGTERM it forwards SIGTERM to the stations first, then to
//! the collector, waits for each to exit, and exits 0 only if every child exited 0 — so a Ctrl-C
//! loses nothing the daemons would not lose on a `systemctl stop`.
//!
//! Layout under `--var` (default `var/`):
//! - `collector.toml`, `collector.db` — the collector's registry and database;
//! - `station/<id>/` — each station's data directory (key, journal, shipper state);
//! - `air/<id>/` — WAV output when no sound card is present;
//! - `demo-schedules/demo.toml`, `demo-audio/ident.wav` — the demo station;
//! - `up/keys/<id>.pub` — public keys `loa keygen` printed (to register them again next start).
//!
//! The children's command lines and the files they read are built in ONE place, the
//! `children` module below (marked "MERGE POINT"), so they can follow the daemons' flags.

use anyhow::{Context, bail};
use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use clap::{Args, ValueEnum};
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::schedule::{self, AudioCatalog, Station};

/// Default collector port on 127.0.0.1 (a stable dashboard URL between runs).
pub const DEFAULT_PORT: u16 = 8080;
/// Default time zone of the demo station: the samples' zone (Vietnam, no DST).
pub const DEFAULT_DEMO_TIMEZONE: &str = "Asia/Ho_Chi_Minh";
/// `--demo-timezone` value that picks a fixed-offset zone where it is now about noon.
pub const DEMO_TIMEZONE_DAYTIME: &str = "daytime";
/// How long a child gets between SIGTERM and SIGKILL: the station's fade and journal flush fit
/// well inside (the systemd units allow the same, `TimeoutStopSec=30s`).
pub const DEFAULT_STOP_GRACE_SECS: u64 = 30;
/// How long the collector may take to start listening.
pub const DEFAULT_COLLECTOR_START_SECS: u64 = 20;
/// How many upcoming airings the start banner lists.
pub const NEXT_AIRINGS_SHOWN: usize = 8;

/// Arguments of `loa up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory of station schedules (one `<station-id>.toml` each).
    #[arg(long, default_value = "schedules")]
    pub schedules: PathBuf,
    /// Audio root the schedules' file names are relative to.
    #[arg(long, default_value = "audio")]
    pub audio: PathBuf,
    /// Directory for all state (database, journals, keys, WAV output). Created if missing.
    #[arg(long, default_value = "var")]
    pub var: PathBuf,
    /// Collector port on 127.0.0.1.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Where stations play: the sound card, WAV files under var/air/<station>/, or auto-detect.
    #[arg(long, value_enum, default_value_t = OutputChoice::Auto)]
    pub output: OutputChoice,
    /// Do not run the demo station.
    #[arg(long)]
    pub no_demo: bool,
    /// Time zone of the demo station (quiet hours 22:00–05:00 there). `daytime` picks a
    /// fixed-offset zone where it is now around noon, so the demo airs at any hour.
    #[arg(long, default_value = DEFAULT_DEMO_TIMEZONE)]
    pub demo_timezone: String,
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
    schedule_file: PathBuf,
    schedules_dir: PathBuf,
    audio_dir: PathBuf,
    data_dir: PathBuf,
    public_key: String,
}

/// Run `loa up`.
pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot locate the running loa binary")?;
    let var = args.var.clone();
    for dir in [
        "",
        "station",
        "air",
        "up/keys",
        "demo-schedules",
        "demo-audio",
    ] {
        let d = var.join(dir);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let var = abs(&var)?;
    let now = SystemClock.now();

    // 1. Every schedule must be valid before anything starts (exit 2 like `loa check`).
    let mut stations = Vec::new();
    let mut bad = 0usize;
    if args.schedules.is_dir() {
        let schedules_dir = abs(&args.schedules)?;
        let audio_dir = abs(&args.audio)?;
        for (path, loaded) in
            schedule::load_dir(&schedules_dir, &audio_dir, chrono::Utc::now().date_naive())
        {
            match loaded {
                Ok((station, catalog)) => stations.push(UpStation {
                    data_dir: var.join("station").join(&station.id),
                    station,
                    catalog,
                    schedule_file: path,
                    schedules_dir: schedules_dir.clone(),
                    audio_dir: audio_dir.clone(),
                    public_key: String::new(),
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
            args.schedules.display()
        );
    }
    if bad > 0 {
        eprintln!("loa up: {bad} schedule error(s); fix them (`loa check` lists them) and retry");
        return Ok(ExitCode::from(2));
    }

    // 2. The demo station, rewritten on every start.
    let mut demo_note = None;
    if !args.no_demo {
        let tz = demo_timezone(&args.demo_timezone, now)?;
        let (station, catalog, note) = write_demo(&var, tz, now)?;
        demo_note = Some(note);
        stations.push(UpStation {
            data_dir: var.join("station").join(&station.id),
            schedule_file: var
                .join("demo-schedules")
                .join(children::DEMO_SCHEDULE_FILE),
            schedules_dir: var.join("demo-schedules"),
            audio_dir: var.join("demo-audio"),
            station,
            catalog,
            public_key: String::new(),
        });
    }
    if stations.is_empty() {
        bail!(
            "no station to run: {} holds no schedule and --no-demo was given",
            args.schedules.display()
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
    let output = choose_output(args.output, &var)?;
    match &output {
        Output::Device => banner("AUDIO OUTPUT: SOUND CARD — stations will play out loud"),
        Output::Wav(dir) => banner(&format!(
            "AUDIO OUTPUT: NO SOUND CARD — stations write WAV files under {}/<station>/",
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
        demo_note,
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
    demo_note: Option<String>,
}

impl Launch {
    /// Keys, registry, children; runs until the first signal counted by `signals` or a child
    /// exits; a second signal kills what is still stopping. True when every child exited 0
    /// after being asked to stop.
    async fn run(
        self,
        mut stations: Vec<UpStation>,
        signals: tokio::sync::watch::Receiver<u32>,
    ) -> anyhow::Result<bool> {
        let Launch {
            exe,
            var,
            output,
            addr,
            grace,
            demo_note,
        } = self;
        // Keys (generated on first run) and the collector's registry.
        for s in &mut stations {
            s.public_key = ensure_key(&exe, &var, &s.station.id, &s.data_dir)?;
        }
        let config_path = var.join("collector.toml");
        let regs: Vec<children::Registration<'_>> = stations
            .iter()
            .map(|s| children::Registration {
                id: &s.station.id,
                name: &s.station.name,
                area_code: &s.station.area_code,
                public_key: &s.public_key,
                schedule: &s.schedule_file,
                audio: &s.audio_dir,
            })
            .collect();
        let config_text = children::collector_config(&regs)?;
        std::fs::write(&config_path, config_text)
            .with_context(|| format!("cannot write {}", config_path.display()))?;

        // Children.
        let collector_url = format!("http://{addr}");
        let mut specs = vec![ChildSpec {
            name: "collector".into(),
            program: exe.clone(),
            args: children::collector_args(addr, &var.join("collector.db"), &config_path),
            stop_order: 1,
        }];
        for s in &stations {
            std::fs::create_dir_all(&s.data_dir)
                .with_context(|| format!("cannot create {}", s.data_dir.display()))?;
            let out = match &output {
                Output::Device => children::OutputArg::Device,
                Output::Wav(dir) => {
                    let d = dir.join(&s.station.id);
                    std::fs::create_dir_all(&d)
                        .with_context(|| format!("cannot create {}", d.display()))?;
                    children::OutputArg::Wav(d)
                }
            };
            specs.push(ChildSpec {
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
        let (collector, stations_specs) = specs.split_at(1);
        sup.start(&collector[0])?;
        if let Err(e) = wait_for_port(
            &mut sup,
            addr,
            Duration::from_secs(DEFAULT_COLLECTOR_START_SECS),
        )
        .await
        {
            eprintln!("loa up: {e:#}");
            sup.stop(grace, signal_count(signals.clone(), 2)).await;
            return Ok(false);
        }
        for spec in stations_specs {
            if let Err(e) = sup.start(spec) {
                eprintln!("loa up: {e:#}");
                sup.stop(grace, signal_count(signals.clone(), 2)).await;
                return Ok(false);
            }
        }

        banner(&format!("DASHBOARD: {collector_url}/"));
        if let Some(note) = &demo_note {
            println!("{note}");
        }
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
        Ok(clean && report.iter().all(|(_, s)| s.clean()))
    }
}

/// MERGE POINT — everything `loa up` assumes about the other subcommands' flags and files.
/// Adjust here (and only here) when `loa station`, `loa collector` and `loa keygen` land.
pub mod children {
    use std::ffi::OsString;
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};

    /// File name of the demo schedule inside `var/demo-schedules/`.
    pub const DEMO_SCHEDULE_FILE: &str = "demo.toml";
    /// File name of the demo chime inside `var/demo-audio/`.
    pub const DEMO_IDENT_FILE: &str = "ident.wav";
    /// Station id of the demo station.
    pub const DEMO_STATION_ID: &str = "demo";

    /// `loa keygen --station ID --dir DIR` (prints the public key, base64).
    pub fn keygen_args(id: &str, dir: &Path) -> Vec<OsString> {
        vec![
            "keygen".into(),
            "--station".into(),
            id.into(),
            "--dir".into(),
            dir.into(),
        ]
    }

    /// `loa collector --listen ADDR --db DB --config CONFIG`.
    pub fn collector_args(listen: SocketAddr, db: &Path, config: &Path) -> Vec<OsString> {
        vec![
            "collector".into(),
            "--listen".into(),
            listen.to_string().into(),
            "--db".into(),
            db.into(),
            "--config".into(),
            config.into(),
        ]
    }

    /// What `--output` a station gets.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum OutputArg {
        Device,
        /// WAV files written into this directory.
        Wav(PathBuf),
    }

    /// `loa station --station ID --schedules DIR --audio DIR --data DIR --collector URL --output O`.
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
            OutputArg::Wav(dir) => {
                let mut o = OsString::from("wav:");
                o.push(dir);
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

    /// One station in the collector's registry.
    #[derive(Debug, serde::Serialize)]
    pub struct Registration<'a> {
        pub id: &'a str,
        pub name: &'a str,
        pub area_code: &'a str,
        pub public_key: &'a str,
        pub schedule: &'a Path,
        pub audio: &'a Path,
    }

    #[derive(serde::Serialize)]
    struct CollectorConfig<'a> {
        station: &'a [Registration<'a>],
    }

    /// The collector's config file: one `[[station]]` table per registered station (the same
    /// facts `loa register` takes: id, name, area code, public key, schedule file).
    pub fn collector_config(stations: &[Registration<'_>]) -> Result<String, toml::ser::Error> {
        let body = toml::to_string(&CollectorConfig { station: stations })?;
        Ok(format!(
            "# Written by `loa up` on every start from schedules/ and the stations' keys.\n\
             # Do not edit: change schedules/ and run `loa up` again.\n\n{body}"
        ))
    }

    /// The demo station's schedule file (format of `docs/schedules.md`): the chime every minute
    /// from 05:00 to 21:59 in `timezone`, quiet hours 22:00–05:00, soft start.
    pub fn demo_schedule(timezone: &str) -> String {
        format!(
            r#"# Demo station written by `loa up` on every start (var/demo-schedules/demo.toml).
# A 2-second chime every minute from 05:00 to 21:59, never inside the quiet hours, so a newcomer
# sees an airing reach the collector within a minute of `loa up`. Not a real station.
id = "{DEMO_STATION_ID}"
name = "Đài thử nghiệm (loa up demo)"
kind = "ward"
area_code = "00000"
timezone = "{timezone}"
quiet_hours = ["22:00-05:00"]
max_session_minutes = 5

[programs.ident]
title = "Nhạc hiệu thử nghiệm"
category = "ident"
file = "{DEMO_IDENT_FILE}"

[[slots]]
id = "demo-ident"
cron = ["* 5-21 * * *"]
program = "ident"
playlist = ["program:ident"]
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

fn banner(text: &str) {
    let line = "=".repeat(text.chars().count().min(100) + 4);
    println!("{line}\n= {text} =\n{line}");
}

// ---------------------------------------------------------------------------------------------
// Keys

/// The station's public key: from `var/up/keys/<id>.pub` when `loa up` made it before, otherwise
/// made now by `loa keygen` (a child process) and cached.
fn ensure_key(exe: &Path, var: &Path, id: &str, data_dir: &Path) -> anyhow::Result<String> {
    let cache = var.join("up/keys").join(format!("{id}.pub"));
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Some(key) = find_public_key(&text)
    {
        return Ok(key);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let out = std::process::Command::new(exe)
        .args(children::keygen_args(id, data_dir))
        .output()
        .with_context(|| format!("cannot run `loa keygen` for station {id}"))?;
    if !out.status.success() {
        bail!(
            "`loa keygen --station {id} --dir {}` failed ({}): {}\n\
             If this station already has a key there, put its public key in {} \
             (or delete {} to start the station afresh).",
            data_dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            cache.display(),
            data_dir.display()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(key) = find_public_key(&stdout) else {
        bail!("`loa keygen` for station {id} printed no public key: {stdout:?}");
    };
    std::fs::write(&cache, format!("{key}\n"))
        .with_context(|| format!("cannot write {}", cache.display()))?;
    println!("loa up: made a key pair for station {id}");
    Ok(key)
}

/// The first whitespace-separated token of `text` that is a valid encoded public key
/// (`wire::decode_public_key`), trimmed of quotes and punctuation around it.
fn find_public_key(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|t| t.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '`')))
        .map(|t| t.strip_prefix("public_key=").unwrap_or(t))
        .find(|t| crate::wire::decode_public_key(t).is_ok())
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// Output

/// Resolve `--output`: `auto` is the sound card when `/proc/asound/cards` lists one and the
/// default device opens, otherwise WAV files.
fn choose_output(choice: OutputChoice, var: &Path) -> anyhow::Result<Output> {
    let wav = Output::Wav(var.join("air"));
    Ok(match choice {
        OutputChoice::Wav => wav,
        OutputChoice::Device => Output::Device,
        OutputChoice::Auto => {
            let cards = std::fs::read_to_string("/proc/asound/cards").unwrap_or_default();
            if sound_cards(&cards) > 0 && default_device_opens() {
                Output::Device
            } else {
                wav
            }
        }
    })
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

/// The demo station's zone: a name, or `daytime` for a fixed-offset zone where it is now
/// between 10:00 and 14:59 (so the demo airs at any hour of the host's day).
fn demo_timezone(arg: &str, now: DateTime<Utc>) -> anyhow::Result<Tz> {
    let name = if arg == DEMO_TIMEZONE_DAYTIME {
        daytime_zone_name(now)
    } else {
        arg.to_string()
    };
    name.parse::<Tz>().map_err(|e| {
        anyhow::anyhow!("--demo-timezone {arg:?}: unknown time zone ({e}); try Asia/Ho_Chi_Minh")
    })
}

/// `Etc/GMT∓N` such that the local hour there is about 12 at `now` (POSIX sign: `Etc/GMT-7` is
/// UTC+7).
fn daytime_zone_name(now: DateTime<Utc>) -> String {
    let mut offset = 12 - now.hour() as i32; // hours east of UTC
    if offset > 14 {
        offset -= 24;
    }
    if offset < -12 {
        offset += 24;
    }
    match offset {
        0 => "Etc/GMT".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// Write the demo schedule and chime into `var/`, validate the schedule like any other, and say
/// when the demo airs next.
fn write_demo(
    var: &Path,
    tz: Tz,
    now: DateTime<Utc>,
) -> anyhow::Result<(Station, AudioCatalog, String)> {
    let audio_dir = var.join("demo-audio");
    let ident = audio_dir.join(children::DEMO_IDENT_FILE);
    write_chime(&ident).with_context(|| format!("cannot write {}", ident.display()))?;
    let sched = var
        .join("demo-schedules")
        .join(children::DEMO_SCHEDULE_FILE);
    std::fs::write(&sched, children::demo_schedule(tz.name()))
        .with_context(|| format!("cannot write {}", sched.display()))?;
    let (station, catalog) = match schedule::load(
        &sched,
        &audio_dir,
        chrono::Utc::now().date_naive(),
    ) {
        Ok(ok) => ok,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            bail!(
                "the demo schedule {} does not validate (a bug in `loa up`); run with --no-demo",
                sched.display()
            );
        }
    };
    let local = now.with_timezone(&tz).time();
    let quiet = schedule::QuietHours {
        start: NaiveTime::from_hms_opt(22, 0, 0).unwrap_or(NaiveTime::MIN),
        end: NaiveTime::from_hms_opt(5, 0, 0).unwrap_or(NaiveTime::MIN),
    };
    let note = if quiet.contains(local) {
        format!(
            "DEMO: it is {} in {} — quiet hours (22:00–05:00), the demo chime waits until 05:00. \
             To watch one now: loa up --demo-timezone {DEMO_TIMEZONE_DAYTIME}",
            local.format("%H:%M"),
            tz.name()
        )
    } else {
        format!(
            "DEMO: station `{}` airs a 2-second chime at the top of every minute (05:00–21:59 {}); \
             watch it arrive on the dashboard.",
            children::DEMO_STATION_ID,
            tz.name()
        )
    };
    Ok((station, catalog, note))
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

fn print_next_airings(stations: &[UpStation], now: DateTime<Utc>) {
    let mut next = Vec::new();
    for s in stations {
        let today = now.with_timezone(&s.station.timezone).date_naive();
        let to = today + ChronoDuration::days(1);
        for a in schedule::expand(&s.station, &s.catalog, today, to) {
            if a.at.with_timezone(&Utc) > now {
                next.push(a);
            }
        }
    }
    next.sort_by_key(|a| a.at.with_timezone(&Utc));
    if next.is_empty() {
        println!("Next airings: none planned for today or tomorrow.");
        return;
    }
    println!("Next airings:");
    for a in next.iter().take(NEXT_AIRINGS_SHOWN) {
        let wait = (a.at.with_timezone(&Utc) - now).num_seconds().max(0);
        println!(
            "  {}  {:<12} {:<20} {:<8} in {}",
            a.at.format("%Y-%m-%d %H:%M:%S %:z"),
            a.station,
            a.slot,
            a.category,
            human_secs(wait)
        );
    }
}

fn human_secs(s: i64) -> String {
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
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

/// Runs children in their own process groups (so a terminal's Ctrl-C reaches only `loa up`,
/// which then stops them in order), forwards their output line by line with a name prefix, and
/// reports exits. Children get SIGTERM if `loa up` itself dies (PR_SET_PDEATHSIG).
#[derive(Default)]
pub struct Supervisor {
    running: Vec<Running>,
    exits: Option<(
        tokio::sync::mpsc::UnboundedSender<(usize, ChildEnd)>,
        tokio::sync::mpsc::UnboundedReceiver<(usize, ChildEnd)>,
    )>,
}

impl Supervisor {
    fn channel(
        &mut self,
    ) -> &mut (
        tokio::sync::mpsc::UnboundedSender<(usize, ChildEnd)>,
        tokio::sync::mpsc::UnboundedReceiver<(usize, ChildEnd)>,
    ) {
        self.exits
            .get_or_insert_with(tokio::sync::mpsc::unbounded_channel)
    }

    /// Start one child. Must run on the thread that stays alive (PR_SET_PDEATHSIG is per thread):
    /// `loa up` uses a current-thread runtime on the main thread.
    pub fn start(&mut self, spec: &ChildSpec) -> anyhow::Result<()> {
        use tokio::io::{AsyncBufReadExt, BufReader};
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
            let prefix = prefix.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    println!("{prefix} {l}");
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let prefix = prefix.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    eprintln!("{prefix} {l}");
                }
            });
        }
        let idx = self.running.len();
        let tx = self.channel().0.clone();
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
        let (idx, end) = self.channel().1.recv().await?;
        let r = self.running.get_mut(idx)?;
        r.ended = Some(end.clone());
        Some((r.name.clone(), end))
    }

    /// A child's exit already reported, without waiting.
    fn poll_exit(&mut self) -> Option<(String, ChildEnd)> {
        let (idx, end) = self.channel().1.try_recv().ok()?;
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

    #[test]
    fn finds_the_public_key_in_keygen_output() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let b64 = crate::wire::encode_public_key(&key);
        let check = |text: String, expected: Option<&str>| {
            assert_eq!(find_public_key(&text).as_deref(), expected, "{text:?}");
        };
        check(format!("{b64}\n"), Some(&b64));
        check(
            format!("wrote var/station/x/station.key\npublic key: {b64}\n"),
            Some(&b64),
        );
        check(format!("public_key = \"{b64}\""), Some(&b64));
        check("no key here\n".into(), None);
        check("QUJD\n".into(), None); // valid base64, not 32 bytes
    }

    #[test]
    fn daytime_zone_is_near_noon() {
        for h in 0..24 {
            let now = Utc.with_ymd_and_hms(2026, 11, 27, h, 30, 0).unwrap();
            let name = daytime_zone_name(now);
            let tz: Tz = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            let local = now.with_timezone(&tz).hour();
            assert!((10..=14).contains(&local), "{h}:30 UTC → {name} {local}h");
        }
        assert!(demo_timezone("Mars/Olympus", Utc::now()).is_err());
        assert_eq!(
            demo_timezone("Asia/Ho_Chi_Minh", Utc::now())
                .map(|t| t.name())
                .ok(),
            Some("Asia/Ho_Chi_Minh")
        );
    }

    #[test]
    fn collector_config_round_trips() {
        let regs = [
            children::Registration {
                id: "phuong-le-hong-phong",
                name: "Đài truyền thanh phường Lê Hồng Phong",
                area_code: "21016",
                public_key: "AAAA\"quoted",
                schedule: Path::new("/x/schedules/p.toml"),
                audio: Path::new("/x/audio"),
            },
            children::Registration {
                id: "demo",
                name: "demo",
                area_code: "00000",
                public_key: "k",
                schedule: Path::new("/x/var/demo-schedules/demo.toml"),
                audio: Path::new("/x/var/demo-audio"),
            },
        ];
        let text = children::collector_config(&regs).unwrap_or_default();
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let st = v
            .get("station")
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default();
        assert_eq!(st.len(), 2);
        assert_eq!(
            st[0].get("name").and_then(|n| n.as_str()),
            Some("Đài truyền thanh phường Lê Hồng Phong")
        );
        assert_eq!(
            st[0].get("public_key").and_then(|n| n.as_str()),
            Some("AAAA\"quoted")
        );
        assert_eq!(
            st[1].get("schedule").and_then(|n| n.as_str()),
            Some("/x/var/demo-schedules/demo.toml")
        );
    }

    #[test]
    fn demo_schedule_is_valid_toml_and_respects_quiet_hours() {
        let text = children::demo_schedule("Asia/Ho_Chi_Minh");
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            v.get("id").and_then(|x| x.as_str()),
            Some(children::DEMO_STATION_ID)
        );
        assert_eq!(
            v.get("timezone").and_then(|x| x.as_str()),
            Some("Asia/Ho_Chi_Minh")
        );
        // Hours 5-21 only: the last chime (21:59 + 2 s) ends before the 22:00 quiet hours.
        assert!(text.contains("cron = [\"* 5-21 * * *\"]"));
        assert!(text.contains("quiet_hours = [\"22:00-05:00\"]"));
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
            &children::OutputArg::Wav("/v/air/demo".into()),
        );
        let joined: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            joined.join(" "),
            "station --station demo --schedules /v/demo-schedules --audio /v/demo-audio \
             --data /v/station/demo --collector http://127.0.0.1:8080 --output wav:/v/air/demo"
        );
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
        let ready = dir.path().join("ready");
        let mut sup = Supervisor::default();
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
        let ready = dir.path().join("ready");
        let mut sup = Supervisor::default();
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
            schedule_file: dir.join(format!("schedules/{id}.toml")),
            schedules_dir: dir.join("schedules"),
            audio_dir: dir.join("audio"),
            data_dir: dir.join("var/station").join(id),
            public_key: String::new(),
        }
    }

    /// The whole launch with a stand-in `loa` (a shell script logging its argv): keys made once
    /// and cached, registry written, collector started and waited for, stations started with
    /// the command lines of `children`, then stopped before the collector; all clean.
    #[tokio::test]
    async fn launch_with_a_stand_in_loa() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        let (var, log) = (d.join("var"), d.join("log"));
        for sub in ["up/keys", "station", "air"] {
            std::fs::create_dir_all(var.join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::create_dir_all(&log).unwrap_or_else(|e| panic!("{e}"));
        let key = crate::wire::encode_public_key(
            &ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key(),
        );
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
  keygen) echo "wrote $5/station.key"; echo "public key: {key}" ;;
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
                demo_note: None,
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
        }

        let argv = std::fs::read_to_string(log.join("argv")).unwrap_or_default();
        let v = var.display();
        let keygens: Vec<&str> = argv.lines().filter(|l| l.starts_with("keygen")).collect();
        assert_eq!(
            keygens,
            vec![
                format!("keygen --station a --dir {v}/station/a"),
                format!("keygen --station b --dir {v}/station/b"),
            ],
            "keys are made once, then cached: {argv}"
        );
        let collector =
            format!("collector --listen {addr} --db {v}/collector.db --config {v}/collector.toml");
        assert_eq!(
            argv.lines().filter(|l| *l == collector).count(),
            2,
            "{argv}"
        );
        let station_a = format!(
            "station --station a --schedules {d}/schedules --audio {d}/audio --data {v}/station/a \
             --collector http://{addr} --output wav:{v}/air/a",
            d = d.display()
        );
        assert_eq!(
            argv.lines().filter(|l| *l == station_a).count(),
            2,
            "{argv}"
        );
        assert!(var.join("air/b").is_dir());

        let config = std::fs::read_to_string(var.join("collector.toml")).unwrap_or_default();
        let parsed: toml::Value = toml::from_str(&config).unwrap_or_else(|e| panic!("{e}"));
        let regs = parsed
            .get("station")
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default();
        assert_eq!(regs.len(), 2, "{config}");
        for r in &regs {
            assert_eq!(
                r.get("public_key").and_then(|k| k.as_str()),
                Some(key.as_str())
            );
        }
        assert_eq!(
            regs[1].get("name").and_then(|n| n.as_str()),
            Some("Phường b")
        );
        drop(listener);
    }
}
