//! The one state layout: where the collector's registry and database, the admin token, each
//! station's data directory (key pair, journal, shipper position) and the WAV output live, and
//! where schedules and audio are read from — the same for `loa up`, the packaged services and
//! every subcommand's defaults, so a command run right after `loa up` (or on an installed box)
//! finds everything without flags.
//!
//! **Invariant:** every default path of every subcommand comes from a [`Layout`]; no other
//! module spells `var/` or `/var/lib/loa`. Which state directory is in force is decided by one
//! rule ([`Layout::resolve`]), in this order:
//!
//! 1. `$LOA_HOME`, when set (and not empty);
//! 2. `./var`, when it holds loa state (a working directory `loa up` ran in: a registry,
//!    database or `station/` directory — so the system's `/var` seen from `/` never counts);
//! 3. `/var/lib/loa`, when it is a directory (a box where `packaging/install.sh` ran);
//! 4. otherwise `./var` (created by whoever writes first).
//!
//! `loa up` skips step 3: it always keeps its state beside the working directory (or in
//! `$LOA_HOME`). With the system state directory, schedules are read from `/etc/loa/schedules`
//! and audio from `/var/lib/loa/audio` (what the packaged units pass); otherwise from
//! `./schedules` and `./audio`.
//!
//! Inside the state directory (docs/operations.md, "The state layout"):
//! `collector.toml` (registry), `collector.db` (database), `collector.url` (where the collector
//! last listened, written by it at start), `admin-token`, `collector/` (the centre key, `collector/centre-key`), `station/<id>/`,
//! `air/<id>/`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Environment variable naming the state directory explicitly.
pub const LOA_HOME_ENV: &str = "LOA_HOME";
/// State directory beside the working directory (`loa up`, development).
pub const LOCAL_STATE_DIR: &str = "var";
/// State directory of an installed box (the units' `StateDirectory=loa`).
pub const SYSTEM_STATE_DIR: &str = "/var/lib/loa";
/// Schedules of an installed box (`/etc/loa/schedules/<id>.toml`).
pub const SYSTEM_SCHEDULES_DIR: &str = "/etc/loa/schedules";
/// Audio root of an installed box.
pub const SYSTEM_AUDIO_DIR: &str = "/var/lib/loa/audio";
/// Schedules beside the working directory (`schedules/<id>.toml`, as in the repository).
pub const LOCAL_SCHEDULES_DIR: &str = "schedules";
/// Audio root beside the working directory.
pub const LOCAL_AUDIO_DIR: &str = "audio";
/// Collector URL when none is given and none is recorded: the collector's default listen
/// address (`loa collector`, `loa up` and the packaged unit all default to port 8080).
pub const DEFAULT_COLLECTOR_URL: &str = "http://127.0.0.1:8080";

/// File names inside the state directory.
pub const REGISTRY_FILE: &str = "collector.toml";
pub const DATABASE_FILE: &str = "collector.db";
pub const COLLECTOR_URL_FILE: &str = "collector.url";
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// A personal API token for the commands on this host (`loa status`), made by `loa up` for its
/// demo admin (mode 0600).
pub const API_TOKEN_FILE: &str = "api-token";
pub const STATIONS_DIR: &str = "station";
/// The collector's own files besides its database (the centre key, later the content library
/// and managed schedules).
pub const COLLECTOR_DIR: &str = "collector";
/// The centre's signing key, inside [`COLLECTOR_DIR`] (`centre::key`; mode 0600).
pub const CENTRE_KEY_FILE: &str = "centre-key";
/// Inside [`COLLECTOR_DIR`]: the content library (`library/content/…`, `library/tree/…`).
pub const LIBRARY_DIR: &str = "library";
/// Inside [`COLLECTOR_DIR`]: each centre-managed station's active schedule (`<id>.toml`).
pub const MANAGED_SCHEDULES_DIR: &str = "schedules";
pub const AIR_DIR: &str = "air";
/// The station box's own configuration, written by `loa enrol` (id, collector URLs, data dir).
pub const STATION_CONFIG_FILE: &str = "station.toml";

/// Why this state directory was chosen (said in error messages, so a wrong guess is visible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// `$LOA_HOME`.
    Env,
    /// `./var` exists.
    LocalExisting,
    /// `/var/lib/loa` exists.
    System,
    /// Nothing found: `./var`.
    LocalNew,
    /// Given on the command line (`loa up --var`).
    Flag,
}

/// Where things are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The state directory.
    pub state: PathBuf,
    /// Directory of station schedules (`<id>.toml`).
    pub schedules: PathBuf,
    /// Audio root the schedules' file names are relative to.
    pub audio: PathBuf,
    pub chosen: Chosen,
}

impl Layout {
    /// The layout in force for this process (environment and file system, see the module doc).
    pub fn detect() -> Self {
        Self::resolve(
            std::env::var_os(LOA_HOME_ENV),
            holds_state(Path::new(LOCAL_STATE_DIR)),
            Path::new(SYSTEM_STATE_DIR).is_dir(),
        )
    }

    /// The layout of `loa up`: `$LOA_HOME` or `./var`, never the system directory.
    pub fn for_up() -> Self {
        Self::resolve(
            std::env::var_os(LOA_HOME_ENV),
            holds_state(Path::new(LOCAL_STATE_DIR)),
            false,
        )
    }

    /// The rule itself, from what [`Layout::detect`] observed.
    pub fn resolve(home: Option<OsString>, local_exists: bool, system_exists: bool) -> Self {
        match home.filter(|h| !h.is_empty()) {
            Some(h) => Self::at(PathBuf::from(h), Chosen::Env),
            None if local_exists => Self::at(LOCAL_STATE_DIR.into(), Chosen::LocalExisting),
            None if system_exists => Self::at(SYSTEM_STATE_DIR.into(), Chosen::System),
            None => Self::at(LOCAL_STATE_DIR.into(), Chosen::LocalNew),
        }
    }

    /// The layout with state directory `state`; schedules and audio follow it (the system
    /// directories for `/var/lib/loa`, else the working directory's).
    pub fn at(state: PathBuf, chosen: Chosen) -> Self {
        let system = state == Path::new(SYSTEM_STATE_DIR);
        let (schedules, audio) = if system {
            (SYSTEM_SCHEDULES_DIR, SYSTEM_AUDIO_DIR)
        } else {
            (LOCAL_SCHEDULES_DIR, LOCAL_AUDIO_DIR)
        };
        Self {
            state,
            schedules: schedules.into(),
            audio: audio.into(),
            chosen,
        }
    }

    /// The collector's station registry.
    pub fn registry(&self) -> PathBuf {
        self.state.join(REGISTRY_FILE)
    }

    /// The collector's database.
    pub fn database(&self) -> PathBuf {
        self.state.join(DATABASE_FILE)
    }

    /// Where the collector records the URL it listens on.
    pub fn collector_url_file(&self) -> PathBuf {
        self.state.join(COLLECTOR_URL_FILE)
    }

    /// The admin API's bearer token.
    pub fn admin_token(&self) -> PathBuf {
        self.state.join(ADMIN_TOKEN_FILE)
    }

    /// The personal API token `loa status` sends by default.
    pub fn api_token(&self) -> PathBuf {
        self.state.join(API_TOKEN_FILE)
    }

    /// The centre's Ed25519 signing key (`<state>/collector/centre-key`, mode 0600; its
    /// rotation announcements and old secrets lie beside it, see `centre::key`).
    pub fn centre_key(&self) -> PathBuf {
        self.state.join(COLLECTOR_DIR).join(CENTRE_KEY_FILE)
    }

    /// The data directory of station `id` (key pair, journal, shipper position).
    pub fn station_dir(&self, id: &str) -> PathBuf {
        self.state.join(STATIONS_DIR).join(id)
    }

    /// The collector's content library (`collector/library/`; its audio tree is `tree/`).
    pub fn library_dir(&self) -> PathBuf {
        self.state.join(COLLECTOR_DIR).join(LIBRARY_DIR)
    }

    /// The active schedules of centre-managed stations (`collector/schedules/<id>.toml`),
    /// written by the collector when a version is published (`collector::versions`).
    pub fn managed_schedules_dir(&self) -> PathBuf {
        self.state.join(COLLECTOR_DIR).join(MANAGED_SCHEDULES_DIR)
    }

    /// The station box's configuration (`loa enrol` writes it; `loa station` reads it when no
    /// `--station` is given).
    pub fn station_config(&self) -> PathBuf {
        self.state.join(STATION_CONFIG_FILE)
    }

    /// Root of the WAV output (`air/<id>/`).
    pub fn air_dir(&self) -> PathBuf {
        self.state.join(AIR_DIR)
    }

    /// The collector URL to talk to: the one the collector recorded in the state directory,
    /// else [`DEFAULT_COLLECTOR_URL`]. Also says where it came from.
    pub fn collector_url(&self) -> (String, String) {
        let file = self.collector_url_file();
        match std::fs::read_to_string(&file) {
            Ok(text) if text.trim().starts_with("http") => {
                (text.trim().to_string(), format!("from {}", file.display()))
            }
            _ => (
                DEFAULT_COLLECTOR_URL.to_string(),
                format!("the default; {} does not exist", file.display()),
            ),
        }
    }

    /// One phrase saying which state directory this is and why, for messages.
    pub fn describe(&self) -> String {
        let why = match self.chosen {
            Chosen::Env => format!("from ${LOA_HOME_ENV}"),
            Chosen::LocalExisting => "found in the working directory".into(),
            Chosen::System => "the installed system's".into(),
            Chosen::LocalNew => "the default; nothing exists yet".into(),
            Chosen::Flag => "given on the command line".into(),
        };
        format!(
            "state directory {} ({why}; set ${LOA_HOME_ENV} or pass the flag to use another)",
            self.state.display()
        )
    }
}

/// Whether `dir` holds loa state (what any writer of the layout creates first).
pub fn holds_state(dir: &Path) -> bool {
    [
        REGISTRY_FILE,
        DATABASE_FILE,
        STATIONS_DIR,
        COLLECTOR_URL_FILE,
        STATION_CONFIG_FILE,
    ]
    .iter()
    .any(|f| dir.join(f).exists())
}

/// Record the URL a collector listens on in the state directory holding its database, so
/// `loa status` finds it without flags. A wildcard address becomes loopback.
pub fn record_collector_url(state: &Path, addr: std::net::SocketAddr) -> std::io::Result<PathBuf> {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let file = state.join(COLLECTOR_URL_FILE);
    std::fs::write(&file, format!("http://{a}\n"))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_picks_the_state_directory() {
        let check = |home: Option<&str>, local: bool, system: bool, state: &str, chosen: Chosen| {
            let l = Layout::resolve(home.map(OsString::from), local, system);
            assert_eq!((l.state.to_str(), l.chosen), (Some(state), chosen));
        };
        check(Some("/srv/loa"), true, true, "/srv/loa", Chosen::Env);
        check(Some(""), false, true, SYSTEM_STATE_DIR, Chosen::System);
        check(None, true, true, "var", Chosen::LocalExisting);
        check(None, false, true, SYSTEM_STATE_DIR, Chosen::System);
        check(None, false, false, "var", Chosen::LocalNew);
    }

    #[test]
    fn only_a_directory_with_loa_state_counts() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(!holds_state(dir.path()), "an empty (or the system's) /var");
        std::fs::create_dir(dir.path().join(STATIONS_DIR)).unwrap_or_else(|e| panic!("{e}"));
        assert!(holds_state(dir.path()));
    }

    #[test]
    fn paths_follow_the_state_directory() {
        let l = Layout::at("var".into(), Chosen::LocalNew);
        assert_eq!(l.registry(), Path::new("var/collector.toml"));
        assert_eq!(l.database(), Path::new("var/collector.db"));
        assert_eq!(l.admin_token(), Path::new("var/admin-token"));
        assert_eq!(l.centre_key(), Path::new("var/collector/centre-key"));
        assert_eq!(l.station_dir("demo"), Path::new("var/station/demo"));
        assert_eq!(l.air_dir(), Path::new("var/air"));
        assert_eq!(l.station_config(), Path::new("var/station.toml"));
        assert_eq!(
            (l.schedules.as_path(), l.audio.as_path()),
            (Path::new("schedules"), Path::new("audio"))
        );
        let sys = Layout::at(SYSTEM_STATE_DIR.into(), Chosen::System);
        assert_eq!(sys.registry(), Path::new("/var/lib/loa/collector.toml"));
        assert_eq!(sys.station_dir("w"), Path::new("/var/lib/loa/station/w"));
        assert_eq!(
            (sys.schedules.as_path(), sys.audio.as_path()),
            (Path::new(SYSTEM_SCHEDULES_DIR), Path::new(SYSTEM_AUDIO_DIR))
        );
    }

    #[test]
    fn the_collector_url_is_the_recorded_one_else_the_default() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let l = Layout::at(dir.path().to_path_buf(), Chosen::Flag);
        assert_eq!(l.collector_url().0, DEFAULT_COLLECTOR_URL);
        let addr: std::net::SocketAddr = "0.0.0.0:18123".parse().unwrap_or_else(|e| panic!("{e}"));
        record_collector_url(dir.path(), addr).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.collector_url().0, "http://127.0.0.1:18123");
    }
}
