//! The station daemon: airs the planned occurrences of one station through the player, records
//! each in the journal, and runs the shipper and the heartbeat.
//!
//! **Invariant:** every planned occurrence the daemon has seen due gets exactly one journal record
//! (aired, partial, failed, missed, preempted or skipped, with a reason) and is never aired twice:
//! the journal's occurrence keys are the memory, checked before each start. (One a bulletin cut
//! has a second record, the whole airing's, when it goes on after the bulletin: the latest
//! record of an occurrence stands.) Airing never waits for
//! the network: the shipper reads the journal on its own.
//!
//! An airing's in-flight marker becomes durable only at the player's start gate, right before
//! its first sample (an airing that cannot make it durable does not start): a crash before that
//! leaves the occurrence airable within its grace, a crash after it is recorded `partial` by the
//! next run and never aired again.
//!
//! Files in the data directory besides `journal/` and the key pair: `state.bin` ([`state`]: the
//! in-flight marker, the records held while the journal cannot be written, the alive mark —
//! preallocated, so it is written on a full disk too), `alive` (the last wall time the daemon was
//! running, rewritten every [`ALIVE_SECS`]; its presence says downtime is owed, and "station was
//! down" reasons start at the later of it and the state's mark) and, from older versions only,
//! `inflight.json` (read once at start).
//!
//! Roles as files, each stating its own invariant: [`daemon`] (the scheduler loop, start-up,
//! shutdown, `loa station`'s wiring of output, signals and systemd), [`inflight`] (the airing on
//! air and the records on their way into the journal), [`liveness`] (the alive mark, heartbeat
//! status, shipper tasks, watchdog), [`scheduler`] (the pure decision), [`playout`] (the
//! station's commands to a player), [`state`] (`state.bin`), [`push`] (the push channel's
//! client: wakes the bulletin intake and the sync agent), [`bulletins`] (the intake of the
//! centre's bulletins and the receipts to it, beside the sync agent), [`bulletin_air`] (airing
//! the bulletins the intake hands over, by `bulletin::airing`'s decision).

pub mod bulletin_air;
pub mod bulletins;
pub mod daemon;
pub mod inflight;
pub mod liveness;
pub mod playout;
pub mod push;
pub mod scheduler;
pub mod state;
pub mod sync;

pub use daemon::{Daemon, Launch, bridge_events, run_station};
pub use liveness::release_free_memory;

use crate::journal::JournalError;
use crate::keys::KeyError;
use crate::schedule::{self, AudioCatalog, ScheduleErrors};
use crate::shipper;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// Longest the scheduler sleeps before re-reading the wall clock (so an NTP step is noticed
/// within this, well inside any grace).
pub const MAX_SLEEP_MS: i64 = 5_000;
/// A difference between wall-clock and monotonic progress above this is a clock step.
pub const CLOCK_STEP_TOLERANCE_MS: i64 = 2_000;
/// How often the `alive` mark is rewritten.
pub const ALIVE_SECS: i64 = 30;
/// How often schedule files are checked for changes.
pub const RELOAD_CHECK_SECS: u64 = 5;
/// How far ahead the plan is expanded.
pub const PLAN_AHEAD_HOURS: i64 = 48;
/// After downtime, occurrences at most this old are accounted for (logged missed); older ones
/// are before the retention of any report anyone will ask for this station.
pub const MAX_LOOKBACK_DAYS: i64 = 31;
/// How long shutdown waits for the player to fade out and report.
pub const SHUTDOWN_WAIT_SECS: u64 = 10;
/// How long shutdown lets the shipper finish the request it is in.
pub const SHIPPER_FLUSH_SECS: u64 = 5;
/// Local history kept after the collector acknowledged it: 35 days, so the whole current month
/// (and the tail of the last) can still be read on the box when the collector is unreachable.
pub const DEFAULT_KEEP_DAYS: u32 = 35;
/// Shortest local history: longer than [`MAX_LOOKBACK_DAYS`], so a record whose segment is
/// compacted can never be needed again to keep an occurrence from being accounted for twice.
pub const MIN_KEEP_DAYS: u32 = MAX_LOOKBACK_DAYS as u32 + 1;
/// When start-up is over and its memory is given back ([`release_free_memory`]).
pub const TRIM_AFTER_START_SECS: u64 = 10;
/// Memory is only given back when nothing is due for at least this long, so trimming never runs
/// on the way to an airing.
pub const TRIM_MIN_IDLE_SECS: i64 = 10;
/// How often acknowledged, old journal segments are compacted (also once at start).
pub const COMPACT_CHECK_SECS: u64 = 3_600;

const INFLIGHT_FILE: &str = "inflight.json";
/// The "last seen running" mark in the data directory: after downtime every occurrence since
/// it is journaled as missed.
pub const ALIVE_FILE: &str = "alive";

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("schedule {path} has errors:\n{}", .errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Schedule {
        path: PathBuf,
        errors: ScheduleErrors,
    },
    #[error("schedule {path} is for station {found}, not {expected}")]
    WrongStation {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("player: {0}")]
    Player(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ship(#[from] shipper::ShipError),
    /// A malformed `--publish` URL (a start-up refusal).
    #[error("--publish: {0}")]
    Publish(String),
    /// A collector URL that is not one (a start-up refusal).
    #[error("collector URLs: {0}")]
    Collectors(#[from] crate::endpoints::EndpointsError),
    /// `--publish` with the timer output (a start-up refusal).
    #[error("--publish needs a real output (the timer airs no audio)")]
    PublishWithoutOutput,
    /// The audio output could not be opened.
    #[error("cannot open output {spec:?}: {reason}")]
    Output { spec: String, reason: String },
    /// The runtime or a signal handler could not be set up.
    #[error("{what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
}

impl StationError {
    /// A refusal to start over the station's configuration (schedule, `--publish`): exit 2.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            StationError::Schedule { .. }
                | StationError::WrongStation { .. }
                | StationError::Publish(_)
                | StationError::PublishWithoutOutput
                | StationError::Collectors(_)
        )
    }
}

/// Daemon settings (from the command line and the schedule's `[collector]`).
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub station: String,
    pub schedule_path: PathBuf,
    pub audio_root: PathBuf,
    pub data_dir: PathBuf,
    /// The collector URLs, in order (`loa station --collector`, repeatable); when not empty
    /// they override the schedule's `[collector] urls` (or `url`). Several: the station's
    /// clients fail over between them ([`crate::endpoints`]).
    pub collector_urls: Vec<String>,
    /// Overrides the schedule's heartbeat period.
    pub heartbeat_secs: Option<u64>,
    /// Days of acknowledged records kept in the local journal (at least [`MIN_KEEP_DAYS`]).
    pub keep_days: u32,
}

/// Commands to a running daemon (from signals or tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the schedule (SIGHUP).
    Reload,
    /// Fade out, record, flush, exit (SIGTERM/SIGINT).
    Shutdown,
}

/// Load and validate the station's schedule.
pub fn load_schedule(
    cfg: &StationConfig,
    now: DateTime<Utc>,
) -> Result<(schedule::Station, AudioCatalog), StationError> {
    // Validity windows are checked against the station-local date; the zone is only known after
    // parsing, and Vietnam's (the default) is used for "today" — one day of slack either way is
    // harmless for a check that bounds open-ended windows.
    let today = now
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .date_naive();
    let (st, cat) =
        schedule::load(&cfg.schedule_path, &cfg.audio_root, today).map_err(|errors| {
            StationError::Schedule {
                path: cfg.schedule_path.clone(),
                errors,
            }
        })?;
    if st.id != cfg.station {
        return Err(StationError::WrongStation {
            path: cfg.schedule_path.clone(),
            expected: cfg.station.clone(),
            found: st.id,
        });
    }
    Ok((st, cat))
}
