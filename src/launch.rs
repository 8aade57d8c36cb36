//! `loa up`'s launch: the whole system on one host — the collector and one station per schedule,
//! all on loopback, as child processes of this same binary under a [`Supervisor`], plus the
//! [`demo`](crate::demo) station that airs a short chime at the top of every minute.
//!
//! **Invariant:** a launch writes only what it rewrites on every start (the demo's schedule and
//! chime) and what it creates once and then reuses (each station's key pair, the admin token, the
//! stations' entries in the collector's registry, the demo admin account on a database with no
//! account and its API token for `loa status`); the children own everything else (journals,
//! records). The demo admin's password is printed once and never stored in clear. On
//! SIGINT/SIGTERM it forwards SIGTERM to the stations first, then to the collector, waits for
//! each to exit, and reports clean only if every child exited 0 — so a Ctrl-C loses nothing the
//! daemons would not lose on a `systemctl stop`.
//!
//! Layout under the state directory (the one layout of [`crate::layout`], which every other
//! subcommand defaults to, so they work after `loa up` without flags):
//! - `collector.toml`, `collector.db` — the collector's registry and database;
//! - `collector.url` — where the collector listens (it writes this itself);
//! - `admin-token` — the bearer token of the collector's admin API (mode 0600; deprecated);
//! - `api-token` — a personal API token of the demo admin, for `loa status` (mode 0600);
//! - `station/<id>/` — each station's data directory (key pair, journal, shipper state);
//! - `air/<id>/<start time>.wav` — what each station aired, when there is no sound card;
//! - `demo-schedules/demo.toml`, `demo-audio/ident.wav` — the demo station.
//!
//! The children's command lines and the files they read are built in ONE place, the
//! [`children`] module below (marked "MERGE POINT"), so they can follow the daemons' flags.

use chrono::{DateTime, Utc};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::collector::registry::{RawStation, RegistryError, upsert_file};
use crate::demo::{self, DEMO_AUDIO_DIR, DEMO_SCHEDULES_DIR, DemoError};
use crate::keys::{self, KeyError};
use crate::layout::{AIR_DIR, Chosen, Layout, STATIONS_DIR};
use crate::schedule::{self, AudioCatalog, Station};
use crate::supervisor::{
    ChildSpec, Supervisor, SupervisorError, signal_count, wait_for_port, watch_signals,
};

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

/// Why the launch could not go on (the children, if any started, are stopped first).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find {path}: {source}")]
    NotFound {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error("no station to run: {schedules} holds no schedule and --no-demo was given")]
    NoStation { schedules: PathBuf },
    #[error("two schedules define station id {0:?}; ids must be unique")]
    DuplicateId(String),
    #[error("port {addr} is in use: stop what uses it or pass --port: {source}")]
    PortInUse {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error("cannot use the station key in {dir}: {source}")]
    Key { dir: PathBuf, source: KeyError },
    #[error("cannot register station {station}: {source}")]
    Register {
        station: String,
        source: RegistryError,
    },
    #[error("admin token: {0}")]
    AdminToken(KeyError),
    #[error("không tạo được tài khoản quản trị thử nghiệm trong {db}: {why}")]
    DemoAdmin { db: PathBuf, why: String },
}

/// Where the stations' audio goes (`loa up --output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What `loa up` was asked to do.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The `loa` binary the children run.
    pub exe: PathBuf,
    /// The state layout (created if missing).
    pub layout: Layout,
    /// Directory of station schedules (one `<station-id>.toml` each).
    pub schedules: PathBuf,
    /// Audio root the schedules' file names are relative to.
    pub audio: PathBuf,
    /// Collector port on 127.0.0.1.
    pub port: u16,
    pub output: OutputChoice,
    /// Run the demo station (the chime every minute).
    pub demo: bool,
    /// How long each child gets to exit after SIGTERM before it is killed.
    pub stop_grace: Duration,
}

/// How a launch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpEnd {
    /// This many schedule errors (printed on stderr); nothing was started.
    InvalidSchedules(usize),
    /// Everything ran and was stopped; clean when every child exited 0 after being asked to stop.
    Stopped { clean: bool },
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

/// Run `loa up`: validate every schedule, write the demo, choose the output, then launch and
/// supervise the children until a signal (or a child's own exit).
pub fn up(opts: UpOptions) -> Result<UpEnd, LaunchError> {
    let UpOptions {
        exe,
        layout,
        schedules: schedules_arg,
        audio: audio_arg,
        ..
    } = opts.clone();
    for dir in [
        "",
        STATIONS_DIR,
        AIR_DIR,
        DEMO_SCHEDULES_DIR,
        DEMO_AUDIO_DIR,
    ] {
        let d = layout.state.join(dir);
        create_dir(&d)?;
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
        return Ok(UpEnd::InvalidSchedules(bad));
    }

    // 2. The demo station, rewritten on every start.
    if opts.demo {
        let (station, catalog) = demo::write_demo(&var, now)?;
        let data_dir = lay.station_dir(&station.id);
        demo::forget_downtime(&data_dir)?;
        stations.push(UpStation {
            data_dir,
            planned_by: None,
            schedules_dir: var.join(DEMO_SCHEDULES_DIR),
            audio_dir: var.join(DEMO_AUDIO_DIR),
            station,
            catalog,
        });
    }
    if stations.is_empty() {
        return Err(LaunchError::NoStation {
            schedules: schedules_arg,
        });
    }
    let mut ids: Vec<&str> = stations.iter().map(|s| s.station.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(LaunchError::DuplicateId(w[0].to_string()));
    }

    // 3. Output, said loudly.
    let (output, why) = choose_output(opts.output, &var);
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
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, opts.port));
    drop(TcpListener::bind(addr).map_err(|source| LaunchError::PortInUse { addr, source })?);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LaunchError::Runtime)?;
    let launch = Launch {
        exe,
        var,
        output,
        addr,
        grace: opts.stop_grace,
    };
    let clean = runtime.block_on(async move {
        let signals = watch_signals()?;
        launch.run(stations, signals).await
    })?;
    Ok(UpEnd::Stopped { clean })
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
    ) -> Result<bool, LaunchError> {
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
            let (key, made) = keys::ensure(&s.data_dir).map_err(|source| LaunchError::Key {
                dir: s.data_dir.clone(),
                source,
            })?;
            let public_key = keys::public_key_text(&key.verifying_key());
            if made {
                println!(
                    "loa up: made a key pair for station {} in {}",
                    s.station.id,
                    s.data_dir.display()
                );
            }
            let created =
                upsert_file(&config_path, &registration(s, public_key)).map_err(|source| {
                    LaunchError::Register {
                        station: s.station.id.clone(),
                        source,
                    }
                })?;
            if created {
                println!(
                    "loa up: registered station {} with the collector ({})",
                    s.station.id,
                    config_path.display()
                );
            }
        }
        let token_file = lay.admin_token();
        keys::ensure_admin_token(&token_file).map_err(LaunchError::AdminToken)?;
        let demo_password = ensure_demo_admin(&lay.database(), &lay.api_token())?;

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
            create_dir(&s.data_dir)?;
            let out = match &output {
                Output::Device => children::OutputArg::Device,
                Output::Wav(dir) => {
                    let d = dir.join(&s.station.id);
                    create_dir(&d)?;
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
            Ok::<(), SupervisorError>(())
        }
        .await;
        if let Err(e) = started {
            eprintln!("loa up: {e}");
            sup.stop(grace, signal_count(signals.clone(), 2)).await;
            return Ok(false);
        }

        banner(&format!("DASHBOARD: {collector_url}/"));
        print!("{}", login_lines(demo_password.as_deref()));
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

/// MERGE POINT — everything `loa up` assumes about the other subcommands' flags and files
/// (the demo's files are [`crate::demo`]'s). Adjust here (and only here) when `loa station` or
/// `loa collector` change.
pub mod children {
    use std::ffi::OsString;
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};

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
}

/// `path` made absolute against the current directory (children may run elsewhere one day).
fn abs(path: &Path) -> Result<PathBuf, LaunchError> {
    std::fs::canonicalize(path).map_err(|source| LaunchError::NotFound {
        path: path.to_path_buf(),
        source,
    })
}

/// `mkdir -p path`.
fn create_dir(path: &Path) -> Result<(), LaunchError> {
    std::fs::create_dir_all(path).map_err(|source| LaunchError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
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

/// Name of the admin account `loa up` makes on a database with no user yet.
pub const DEMO_ADMIN: &str = "admin";

/// On a database with no user yet, make the admin [`DEMO_ADMIN`] with a generated password
/// (returned, to be printed once: only its hash is kept); and when `api_token` is missing,
/// a personal API token of that admin in it (mode 0600), for `loa status` on this host. Both
/// writes are in the audit log.
fn ensure_demo_admin(db: &Path, api_token: &Path) -> Result<Option<String>, LaunchError> {
    use crate::collector::{accounts, audit};
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail = |why: String| LaunchError::DemoAdmin {
        db: db.to_path_buf(),
        why,
    };
    let mut conn = crate::collector::store::Store::open(db)
        .map_err(|e| fail(e.to_string()))?
        .into_connection();
    let now = Utc::now();
    let log = |conn: &crate::collector::db::Conn, action: &str, target: &str, after: String| {
        audit::record(
            conn,
            &audit::Entry {
                at: now,
                actor: "loa up".into(),
                address: crate::collector::audit::HOST_ADDRESS.into(),
                action: action.into(),
                target: target.into(),
                before: None,
                after: Some(after),
            },
        )
    };
    let mut password = None;
    if !accounts::any_user(&conn).map_err(|e| fail(e.to_string()))? {
        let pw = accounts::generate_password().map_err(|e| fail(e.to_string()))?;
        let u = accounts::add_user(&mut conn, DEMO_ADMIN, accounts::Role::Admin, &[], &pw, now)
            .map_err(|e| fail(e.to_string()))?;
        log(
            &conn,
            audit::action::USER_ADD,
            &u.name,
            crate::collector::pages::describe_user(&u),
        )
        .map_err(|e| fail(e.to_string()))?;
        password = Some(pw);
    }
    if !api_token.exists()
        && let Some(admin) = accounts::find_user(&conn, DEMO_ADMIN)
            .map_err(|e| fail(e.to_string()))?
            .filter(|u| !u.disabled)
    {
        let (secret, id) = accounts::create_token(&conn, &admin, "loa status (loa up)", now)
            .map_err(|e| fail(e.to_string()))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(api_token)
            .map_err(|e| fail(format!("{}: {e}", api_token.display())))?;
        writeln!(f, "{secret}").map_err(|e| fail(format!("{}: {e}", api_token.display())))?;
        log(
            &conn,
            audit::action::TOKEN_CREATE,
            &format!("mã số {id} của {}", admin.name),
            format!(
                "nhãn: loa status (loa up); vai trò: Quản trị; tệp {}",
                api_token.display()
            ),
        )
        .map_err(|e| fail(e.to_string()))?;
    }
    Ok(password)
}

/// The banner's sign-in lines (Vietnamese: office people read them).
fn login_lines(password: Option<&str>) -> String {
    match password {
        Some(pw) => format!(
            "ĐĂNG NHẬP: tên {DEMO_ADMIN}, mật khẩu {pw}\n  (mật khẩu chỉ hiện lần này; đổi ở trang \"Tài khoản của tôi\", \
             hoặc cấp lại bằng `loa user passwd {DEMO_ADMIN}`)\n"
        ),
        None => format!(
            "ĐĂNG NHẬP: bằng tài khoản đã có (tài khoản {DEMO_ADMIN} được tạo ở lần chạy đầu; quên mật khẩu: \
             `loa user passwd {DEMO_ADMIN}`)\n"
        ),
    }
}

fn banner(text: &str) {
    let line = "=".repeat(text.chars().count().min(100) + 4);
    println!("{line}\n= {text} =\n{line}");
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
