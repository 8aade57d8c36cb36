//! The station daemon: airs the planned occurrences of one station through the player, records
//! each in the journal, and runs the shipper and the heartbeat.
//!
//! **Invariant:** every planned occurrence the daemon has seen due gets exactly one journal record
//! (aired, partial, failed, missed, preempted or skipped, with a reason) and is never aired twice:
//! the journal's occurrence keys are the memory, checked before each start. Airing never waits for
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

pub mod playout;
pub mod scheduler;
pub mod state;

use crate::clock::Clock;
use crate::journal::{self, Journal, JournalError};
use crate::keys::{self, KeyError};
use crate::reason::ReasonCode;
use crate::schedule::{self, AudioCatalog, PlannedAiring, ScheduleErrors};
use crate::shipper::{self, LiveStatus, Progress, Shipper, ShipperConfig};
use crate::wire::{AiredItem, AiringBrief, AiringRecord, JournalHealth, Outcome, Source};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use playout::{Cue, PlayerEvent, Playout};
use scheduler::{Action, ClockJump, ClockSteps, Context, OnAir};
use state::{Durable, Inflight};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

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
/// Memory is only given back when nothing is due for at least this long, so the pages it
/// drops are not faulted back in on the way to an airing.
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
}

/// Daemon settings (from the command line and the schedule's `[collector]`).
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub station: String,
    pub schedule_path: PathBuf,
    pub audio_root: PathBuf,
    pub data_dir: PathBuf,
    /// Overrides the schedule's `[collector] url`.
    pub collector_url: Option<String>,
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

fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StationError> {
    let io = |source| StationError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        if sync {
            f.sync_all().map_err(io)?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn local(t: DateTime<Utc>, like: &DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t.with_timezone(like.offset())
}

fn source_of(p: &PlannedAiring) -> Source {
    if p.relay.is_some() {
        Source::Relay
    } else {
        Source::File
    }
}

/// A record for an occurrence that did not air (missed/skipped/failed), with its reason's code.
fn unaired_record(
    p: &PlannedAiring,
    outcome: Outcome,
    (code, reason): (ReasonCode, String),
    now: DateTime<Utc>,
) -> AiringRecord {
    AiringRecord {
        v: 0,
        station: String::new(),
        seq: 0,
        occurrence: Some(p.key()),
        slot: Some(p.slot.to_string()),
        program: p.program.as_deref().map(str::to_owned),
        category: p.category.to_string(),
        source: source_of(p),
        scheduled_at: p.at,
        actual_start: None,
        end: None,
        planned_secs: p.planned_secs,
        aired_secs: 0.0,
        start_offset_ms: None,
        outcome,
        reason: Some(reason),
        reason_code: Some(code),
        items: p
            .items
            .iter()
            .map(|i| AiredItem {
                path: i.display().to_string(),
                sha256: String::new(),
                duration_secs: 0.0,
                aired_secs: 0.0,
            })
            .collect(),
        evidence: None,
        relay: None,
        recorded_at: now,
        prev_hash: String::new(),
    }
}

enum Kind {
    Miss,
    Other,
}

struct Airing {
    plan: PlannedAiring,
    key: String,
    started_at: Option<DateTime<Utc>>,
    /// Set when we asked the player to end it, with the reason (code, text) for the record.
    ending: Option<(Outcome, ReasonCode, String)>,
    span: tracing::Span,
}

/// The running daemon.
pub struct Daemon {
    cfg: StationConfig,
    clock: Arc<dyn Clock>,
    station: schedule::Station,
    catalog: AudioCatalog,
    plan: Vec<PlannedAiring>,
    plan_to: DateTime<Utc>,
    /// Start of the first plan window: nothing earlier is ever accounted for by this run.
    floor: DateTime<Utc>,
    journal: Journal,
    player: Box<dyn Playout>,
    on_air: Option<Airing>,
    started_at: DateTime<Utc>,
    down_since: Option<DateTime<Utc>>,
    /// See [`Context::unsure_since`].
    unsure_since: Option<(DateTime<Utc>, String)>,
    jumps: Vec<ClockJump>,
    /// Clock steps seen: a step back moves `floor` and `started_at` back with the clock.
    steps: ClockSteps,
    last_seq_tx: watch::Sender<u64>,
    status_tx: watch::Sender<LiveStatus>,
    schedule_mtime: Option<std::time::SystemTime>,
    output_ok: bool,
    /// Records the journal could not take (disk full, I/O error), oldest first; appended before
    /// anything else as soon as it can. They count as accounted for (never aired twice).
    held: std::collections::VecDeque<AiringRecord>,
    /// Why the journal is not writable, while it is not.
    journal_error: Option<String>,
    /// systemd watchdog proof of life: beaten once per scheduler-loop iteration, and the loop
    /// never sleeps longer than the given bound between beats.
    liveness: Option<(crate::notify::Liveness, std::time::Duration)>,
    /// Free memory is to be given back ([`release_free_memory`]) at the next idle moment:
    /// after start-up, after each airing, after a compaction.
    trim_pending: bool,
    /// Wakes the shipper out of a backoff when the journal is writable again (its ledger may
    /// have failed on the same full disk).
    ship_wake: Option<Arc<tokio::sync::Notify>>,
    /// `state.bin`: the in-flight marker (written by the player's start gate), the held
    /// records and the alive mark, durable on a full disk.
    durable: Durable,
    /// Why the state file could not be written last time, while it cannot.
    state_error: Option<String>,
}

impl Daemon {
    /// Prepare the daemon: validate the schedule (refusing on errors), load the key, open and
    /// recover the journal, account for an airing interrupted by a crash.
    pub fn open(
        cfg: StationConfig,
        clock: Arc<dyn Clock>,
        player: Box<dyn Playout>,
    ) -> Result<Self, StationError> {
        let (station, catalog) = load_schedule(&cfg, clock.now())?;
        Self::open_loaded(cfg, clock, player, station, catalog)
    }

    /// [`Daemon::open`] with the schedule already loaded and validated by [`load_schedule`]
    /// (the command line reads it first for the player's loudness target; the audio is not
    /// probed twice).
    pub fn open_loaded(
        cfg: StationConfig,
        clock: Arc<dyn Clock>,
        player: Box<dyn Playout>,
        station: schedule::Station,
        catalog: AudioCatalog,
    ) -> Result<Self, StationError> {
        let now = clock.now();
        let key = keys::load(&cfg.data_dir)?;
        let (mut journal, recovery) =
            Journal::open(&journal::journal_dir(&cfg.data_dir), &cfg.station, key)?;
        if let Some(t) = &recovery.torn_tail {
            tracing::error!(
                segment = %t.segment.display(), offset = t.offset, cut_bytes = t.cut_bytes,
                kept_in = %t.kept_in.display(),
                "journal had a torn tail ({}); cut off and kept aside", t.reason
            );
        }
        tracing::info!(
            records = recovery.records,
            last_seq = journal.last_seq(),
            "journal open"
        );
        let legacy = recover_inflight(&cfg.data_dir, &mut journal, now)?;
        let (durable, previous) = Durable::open(&cfg.data_dir);
        let (previous, unreadable) = match previous {
            Ok(p) => (p.unwrap_or_default(), None),
            Err(why) => (
                Default::default(),
                Some(format!("state file unreadable: {why}")),
            ),
        };
        // The `alive` file says the station owes for its downtime (`loa up` removes it); its
        // time is the later of the file and the state file's mark (the file cannot be rewritten
        // on a full disk, the state file can).
        let down_since = std::fs::read_to_string(cfg.data_dir.join(ALIVE_FILE))
            .ok()
            .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
            .map(|t| t.with_timezone(&Utc))
            .map(|t| previous.alive.map_or(t, |a| a.max(t)));
        // What the previous run held durably and had not journaled: its held records (oldest
        // first), then the airing it was under when it stopped. Only what the journal lacks.
        let mut recovered: Vec<AiringRecord> = legacy.into_iter().collect();
        for rec in previous.held {
            let key = rec.occurrence.clone().unwrap_or_default();
            if journal.occurrence(&key).is_none()
                && !recovered.iter().any(|r| r.occurrence == rec.occurrence)
            {
                tracing::info!(airing = %key, outcome = ?rec.outcome, "held record recovered from the state file");
                recovered.push(rec);
            }
        }
        if let Some(m) = previous.inflight
            && journal.occurrence(&m.key).is_none()
            && !recovered
                .iter()
                .any(|r| r.occurrence.as_deref() == Some(&m.key))
        {
            let rec = m.crash_record(now);
            tracing::warn!(airing = %m.key, outcome = ?rec.outcome, "{}", rec.reason.as_deref().unwrap_or(""));
            recovered.push(rec);
        }
        {
            let gate = durable.clone();
            player
                .set_start_gate(Arc::new(move |key: &str, at: DateTime<Utc>| {
                    gate.gate(key, at).map_err(|reason| crate::player::Refusal {
                        code: ReasonCode::FailedStateUnwritable,
                        reason,
                    })
                }))
                .map_err(StationError::Player)?;
        }
        let (last_seq_tx, _) = watch::channel(journal.last_seq());
        let (status_tx, _) = watch::channel(LiveStatus {
            output: player.output_name(),
            output_ok: true,
            ..Default::default()
        });
        let schedule_mtime = std::fs::metadata(&cfg.schedule_path)
            .and_then(|m| m.modified())
            .ok();
        // First window: from the last alive mark (capped); on the very first start nothing
        // before now is owed (the station did not exist yet).
        let floor = match down_since {
            Some(t) => t.max(now - Duration::days(MAX_LOOKBACK_DAYS)).min(now),
            None => now,
        };
        // Where the previous run's records may be lost, a missing one proves no downtime.
        let unsure_since = match (unreadable, previous.unkept_since) {
            (Some(why), _) => Some((floor, why)),
            (None, Some(t)) => Some((
                t,
                "more records were held on a full disk than the state file holds".to_string(),
            )),
            (None, None) => None,
        };
        let mut d = Self {
            floor,
            cfg,
            clock,
            station,
            catalog,
            plan: Vec::new(),
            plan_to: now,
            journal,
            player,
            on_air: None,
            started_at: now,
            down_since,
            unsure_since,
            jumps: Vec::new(),
            steps: ClockSteps::default(),
            last_seq_tx,
            status_tx,
            schedule_mtime,
            output_ok: true,
            held: Default::default(),
            journal_error: None,
            liveness: None,
            trim_pending: true,
            ship_wake: None,
            durable,
            state_error: None,
        };
        d.replan(floor, now);
        // The journal may not take them (disk full): held like any other record.
        d.held.extend(recovered);
        d.write_held()?;
        // A full disk must not keep the station off the air.
        if let Err(e) = d.mark_alive(now) {
            tracing::warn!("{e}");
        }
        Ok(d)
    }

    fn replan(&mut self, from: DateTime<Utc>, now: DateTime<Utc>) {
        // Never owe anything from before this run's first window.
        let from = from.max(self.floor);
        let to = now + Duration::hours(PLAN_AHEAD_HOURS);
        let tz = self.station.timezone;
        let d0 = from.with_timezone(&tz).date_naive();
        let d1 = to.with_timezone(&tz).date_naive();
        let mut plan = schedule::expand(&self.station, &self.catalog, d0, d1);
        plan.retain(|p| {
            let at = p.at.with_timezone(&Utc);
            at >= from && at < to
        });
        self.plan = plan;
        self.plan_to = to;
    }

    /// Rewrite the alive mark: in the state file (works on a full disk) and the `alive` file.
    fn mark_alive(&mut self, now: DateTime<Utc>) -> Result<(), StationError> {
        let r = self.durable.mark_alive(now);
        self.note_state(r);
        write_atomic(
            &self.cfg.data_dir.join(ALIVE_FILE),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .as_bytes(),
            false,
        )
    }

    /// Log a state file write's failure once, and its recovery.
    fn note_state(&mut self, r: Result<(), state::StateError>) {
        match r {
            Ok(()) => {
                if self.state_error.take().is_some() {
                    tracing::info!("state file writable again");
                }
            }
            Err(e) => {
                let why = e.to_string();
                if self.state_error.as_deref() != Some(why.as_str()) {
                    tracing::error!(
                        "state file cannot be written ({why}); held records are in memory only \
                         and airings will not start (a marker that cannot be made durable could \
                         let an airing go out twice)"
                    );
                }
                self.state_error = Some(why);
            }
        }
    }

    /// Make the state file agree: `key`'s marker gone (if given), the held records as now.
    fn settle(&mut self, key: Option<&str>) {
        let r = self.durable.settle(key, &self.held);
        self.note_state(r);
    }

    /// Progress counters for the shipper/heartbeat.
    pub fn last_seq(&self) -> watch::Receiver<u64> {
        self.last_seq_tx.subscribe()
    }

    /// Live status for the heartbeat.
    pub fn status(&self) -> watch::Receiver<LiveStatus> {
        self.status_tx.subscribe()
    }

    /// Collector URL and heartbeat period in force.
    pub fn collector(&self) -> Option<(String, u64)> {
        let url = self
            .cfg
            .collector_url
            .clone()
            .or_else(|| self.station.collector.as_ref().map(|c| c.url.clone()))?;
        let hb = self
            .cfg
            .heartbeat_secs
            .or_else(|| {
                self.station
                    .collector
                    .as_ref()
                    .map(|c| u64::from(c.heartbeat_secs))
            })
            .unwrap_or(shipper::DEFAULT_HEARTBEAT_SECS);
        Some((url, hb))
    }

    /// Journal `rec`. When the journal cannot be written (disk full, I/O error) the record is
    /// held in memory, in order, and the error reported (log, heartbeat); airing goes on and the
    /// held records are written as soon as the journal takes them again. `Ok(None)`: held.
    fn append(&mut self, rec: AiringRecord) -> Result<Option<u64>, StationError> {
        self.held.push_back(rec);
        let before = self.journal.last_seq();
        self.write_held()?;
        if self.held.is_empty() {
            Ok(Some(self.journal.last_seq()).filter(|s| *s > before))
        } else {
            Ok(None)
        }
    }

    /// Append the held records, oldest first, until the journal refuses one.
    fn write_held(&mut self) -> Result<(), StationError> {
        let mut written = 0usize;
        while let Some(rec) = self.held.front() {
            match self.journal.append(rec.clone()) {
                Ok(_) => {
                    self.held.pop_front();
                    written += 1;
                }
                Err(JournalError::Io { path, source }) => {
                    let why = format!("{}: {source}", path.display());
                    if self.journal_error.as_deref() != Some(why.as_str()) {
                        tracing::error!(
                            held = self.held.len(),
                            "journal cannot be written ({why}); airing continues and the \
                             records are held in memory until it can (free disk space)"
                        );
                    }
                    self.journal_error = Some(why);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Durable before anything else happens: a held record is in the state file, a written
        // one leaves it.
        self.settle(None);
        if written > 0 {
            let _ = self.last_seq_tx.send(self.journal.last_seq());
            if self.held.is_empty() && self.journal_error.take().is_some() {
                tracing::info!(
                    written,
                    last_seq = self.journal.last_seq(),
                    "journal writable again; held records written"
                );
                if let Some(w) = &self.ship_wake {
                    w.notify_waiters();
                }
            }
        }
        Ok(())
    }

    /// Whether occurrence `key` is accounted for (journaled or held).
    fn accounted(
        journal: &Journal,
        held: &std::collections::VecDeque<AiringRecord>,
        key: &str,
    ) -> bool {
        journal.occurrence(key).is_some()
            || held.iter().any(|r| r.occurrence.as_deref() == Some(key))
    }

    /// Delete journal segments the collector has acknowledged (every record `<= acked`) whose
    /// last record is older than the local history to keep. Age is counted back from the newest
    /// record when the wall clock is ahead of it, so a clock stepped far forward deletes nothing
    /// early. True when something was deleted (memory is worth giving back then).
    fn compact(&mut self, acked: u64, now: DateTime<Utc>) -> bool {
        let newest = self.journal.newest_recorded_at().unwrap_or(now).min(now);
        let cutoff = newest - Duration::days(i64::from(self.cfg.keep_days.max(MIN_KEEP_DAYS)));
        match self.journal.prune(acked, cutoff) {
            Ok(deleted) if !deleted.is_empty() => {
                tracing::info!(
                    segments = deleted.len(),
                    acked,
                    older_than = %cutoff,
                    "journal compacted (acknowledged records older than the local history deleted)"
                );
                true
            }
            Ok(_) => {
                tracing::info!(acked, "journal compaction: nothing to delete");
                false
            }
            Err(e) => {
                tracing::warn!("journal compaction failed: {e}");
                false
            }
        }
    }

    fn reload(&mut self, why: &str) {
        let now = self.clock.now();
        match load_schedule(&self.cfg, now) {
            Ok((st, cat)) => {
                if st.loudness != self.station.loudness {
                    tracing::warn!(
                        "the schedule's loudness target changed; the player keeps the old one \
                         until the station restarts"
                    );
                }
                self.station = st;
                self.catalog = cat;
                self.replan(now - Duration::days(1), now);
                tracing::info!(why, airings = self.plan.len(), "schedule reloaded");
            }
            Err(e) => {
                tracing::error!(
                    why,
                    "schedule reload refused, keeping the running schedule: {e}"
                );
            }
        }
    }

    fn check_schedule_changed(&mut self) {
        let m = std::fs::metadata(&self.cfg.schedule_path)
            .and_then(|m| m.modified())
            .ok();
        if m != self.schedule_mtime {
            self.schedule_mtime = m;
            self.reload("schedule file changed");
        }
    }

    fn publish_status(&self, now: DateTime<Utc>) {
        let brief = |p: &PlannedAiring| AiringBrief {
            slot: Some(p.slot.to_string()),
            program: p.program.as_deref().map(str::to_owned),
            at: p.at,
        };
        // The one next-airing rule (`schedule::next_airing`, also behind `loa up`'s banner): the
        // plan in memory covers the next PLAN_AHEAD_HOURS and is the same expansion, so the rule
        // runs on it, and expands further only when it holds nothing (a sparse schedule).
        let done = |p: &PlannedAiring| Self::accounted(&self.journal, &self.held, &p.key());
        let next = match schedule::first_after(&self.plan, now, done) {
            Some(p) => Some(brief(p)),
            None => schedule::next_airing(&self.station, &self.catalog, now, done)
                .as_ref()
                .map(brief),
        };
        let _ = self.status_tx.send(LiveStatus {
            now_airing: self.on_air.as_ref().map(|a| brief(&a.plan)),
            next_airing: next,
            output: self.player.output_name(),
            output_ok: self.output_ok,
            journal: JournalHealth {
                writable: self.journal_error.is_none(),
                held_records: self.held.len() as u64,
                free_bytes: None,
                error: self.journal_error.clone(),
            },
        });
    }

    fn start(&mut self, p: PlannedAiring, now: DateTime<Utc>) -> Result<(), StationError> {
        let key = p.key();
        let span = tracing::info_span!("airing", airing = %key);
        let at = p.at.with_timezone(&Utc);
        let cue = Cue {
            airing_id: key.clone(),
            items: p
                .items
                .iter()
                .map(|i| self.cfg.audio_root.join(i))
                .collect(),
            max_secs: Some(f64::from(p.max_secs)),
            start_at: at.max(now),
            relay: p.relay.as_deref().cloned(),
        };
        let late_ms = (now - at).num_milliseconds().max(0);
        span.in_scope(|| {
            if late_ms > 0 {
                tracing::warn!(late_ms, "cueing late");
            } else {
                tracing::info!(start_at = %cue.start_at, "cueing");
            }
        });
        let airing = Airing {
            plan: p,
            key: key.clone(),
            started_at: None,
            ending: None,
            span,
        };
        // Only remembered: the player's start gate makes it durable right before the first
        // sample (a crash before that leaves the occurrence airable within its grace).
        self.durable.cued(Inflight {
            key: key.clone(),
            slot: airing.plan.slot.to_string(),
            program: airing.plan.program.as_deref().map(str::to_owned),
            category: airing.plan.category.to_string(),
            source: source_of(&airing.plan),
            scheduled_at: airing.plan.at,
            planned_secs: airing.plan.planned_secs,
            items: airing
                .plan
                .items
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            started_at: None,
            aired_at_least_secs: 0.0,
        });
        if let Err(e) = self.player.cue(cue) {
            self.settle(Some(&key));
            airing
                .span
                .in_scope(|| tracing::error!("player refused the cue: {e}"));
            let rec = unaired_record(
                &airing.plan,
                Outcome::Failed,
                (ReasonCode::FailedPlayer, format!("player: {e}")),
                now,
            );
            self.output_ok = false;
            self.append(rec)?;
            return Err(StationError::Player(e));
        }
        self.on_air = Some(airing);
        Ok(())
    }

    fn on_event(&mut self, ev: PlayerEvent, shutting_down: bool) -> Result<(), StationError> {
        let now = self.clock.now();
        let Some(a) = self.on_air.as_mut() else {
            tracing::debug!(?ev, "event for no airing");
            return Ok(());
        };
        let id = ev.airing_id().to_string();
        if id != a.key {
            tracing::warn!(airing = %id, "event for an airing not on air; ignored");
            return Ok(());
        }
        let span = a.span.clone();
        let _g = span.enter();
        match ev {
            PlayerEvent::Started { at, .. } => {
                a.started_at = Some(at);
                let offset_ms = (at - a.plan.at.with_timezone(&Utc)).num_milliseconds();
                tracing::info!(offset_ms, "on air");
            }
            PlayerEvent::ItemStarted { index, at, .. } => {
                let started = a.started_at.unwrap_or(at);
                let so_far = (at - started).num_milliseconds() as f64 / 1000.0;
                tracing::info!(index, item = ?a.plan.items.get(index), "item started");
                if so_far > 0.0 {
                    self.durable.progress(&id, so_far);
                }
            }
            PlayerEvent::Finished {
                outcome,
                aired_secs,
                items,
                evidence,
                reason,
                reason_code,
                relay,
                ..
            } => {
                let Some(a) = self.on_air.take() else {
                    return Ok(());
                };
                let outcome = outcome.to_wire();
                // A relay's one "item" is the upstream: its story is `relay`.
                let items = if relay.is_some() { Vec::new() } else { items };
                let relay = relay.map(|r| r.evidence);
                if shutting_down && a.started_at.is_none() && outcome != Outcome::Aired {
                    // Never reached the air: leave it to the next run (it may still be in grace).
                    tracing::info!("cue withdrawn before the first sample (shutdown)");
                    self.settle(Some(&a.key));
                    return Ok(());
                }
                // Ended on the daemon's word: its outcome and code, the player's words as detail.
                let (outcome, reason_code, reason) = match (&a.ending, outcome) {
                    (_, Outcome::Aired) => (Outcome::Aired, reason_code, reason),
                    (Some((o, code, why)), _) => (
                        *o,
                        Some(code.clone()),
                        Some(match reason {
                            Some(r) => format!("{why} ({r})"),
                            None => why.clone(),
                        }),
                    ),
                    (None, o) => (o, reason_code, reason),
                };
                let at = a.plan.at;
                let actual = a.started_at;
                let rec = AiringRecord {
                    v: 0,
                    station: String::new(),
                    seq: 0,
                    occurrence: Some(a.key.clone()),
                    slot: Some(a.plan.slot.to_string()),
                    program: a.plan.program.as_deref().map(str::to_owned),
                    category: a.plan.category.to_string(),
                    source: source_of(&a.plan),
                    scheduled_at: at,
                    actual_start: actual.map(|t| local(t, &at)),
                    end: actual.map(|_| local(now, &at)),
                    planned_secs: a.plan.planned_secs,
                    aired_secs: if aired_secs.is_finite() {
                        aired_secs
                    } else {
                        0.0
                    },
                    start_offset_ms: actual
                        .map(|t| (t - at.with_timezone(&Utc)).num_milliseconds()),
                    outcome,
                    reason: reason.clone(),
                    reason_code,
                    items: items
                        .into_iter()
                        .map(|mut i| {
                            // Record paths as written in the schedule (relative to the audio root).
                            if let Ok(rel) = Path::new(&i.path).strip_prefix(&self.cfg.audio_root) {
                                i.path = rel.display().to_string();
                            }
                            i
                        })
                        .collect(),
                    evidence,
                    relay,
                    recorded_at: now,
                    prev_hash: String::new(),
                };
                self.output_ok = outcome != Outcome::Failed;
                let seq = self.append(rec)?.unwrap_or(0);
                // The record is journaled or held (durably): the marker can go.
                self.settle(Some(&a.key));
                self.trim_pending = true;
                tracing::info!(
                    seq,
                    ?outcome,
                    aired_secs,
                    reason = reason.as_deref().unwrap_or(""),
                    "airing recorded"
                );
            }
        }
        Ok(())
    }

    fn decide_and_act(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StationError> {
        let (journal, held) = (&self.journal, &self.held);
        let accounted = |k: &str| Self::accounted(journal, held, k);
        let ctx = Context {
            now,
            started_at: self.started_at,
            down_since: self.down_since,
            unsure_since: self.unsure_since.clone(),
            jumps: self.jumps.clone(),
            lead_ms: playout::lead_ms(&self.plan, &accounted, now, scheduler::DEFAULT_LEAD_MS),
        };
        let on_air = self.on_air.as_ref().map(|a| OnAir::of(&a.plan));
        let decision = scheduler::decide(&self.plan, &accounted, on_air.as_ref(), &ctx);
        for action in decision.actions {
            let action_kind = match &action {
                Action::Miss { .. } => Kind::Miss,
                _ => Kind::Other,
            };
            match action {
                Action::Start { idx } => {
                    let p = self.plan[idx].clone();
                    if let Err(e) = self.start(p, now) {
                        tracing::error!("{e}");
                    }
                }
                Action::Preempt { current, by } => {
                    let p = self.plan[by].clone();
                    if let Some(a) = self.on_air.as_mut() {
                        a.ending = Some((
                            Outcome::Preempted,
                            ReasonCode::PreemptedHigherPriority,
                            format!("preempted by {}", p.key()),
                        ));
                        let _g = a.span.enter();
                        tracing::warn!(by = %p.key(), "preempting");
                        if let Err(e) = self.player.preempt(&current) {
                            tracing::error!("player: {e}");
                        }
                    }
                    // Wait for the preempted airing's Finished before cueing (one on air at a time):
                    // the next pass starts `p` as soon as the air is free.
                }
                Action::Miss { idx, code, reason } | Action::Skip { idx, code, reason } => {
                    let outcome = if matches!(action_kind, Kind::Miss) {
                        Outcome::Missed
                    } else {
                        Outcome::Skipped
                    };
                    let p = self.plan[idx].clone();
                    let span = tracing::info_span!("airing", airing = %p.key());
                    span.in_scope(|| tracing::warn!(?outcome, %reason, "not aired"));
                    self.append(unaired_record(&p, outcome, (code, reason), now))?;
                }
            }
        }
        Ok(decision.wake_at)
    }

    /// Beat `liveness` once per scheduler-loop iteration and never sleep longer than
    /// `max_sleep` between beats (the systemd watchdog is petted only while the loop beats).
    pub fn set_liveness(
        &mut self,
        liveness: crate::notify::Liveness,
        max_sleep: std::time::Duration,
    ) {
        self.liveness = Some((liveness, max_sleep));
    }

    /// Run until `control` says shut down (or closes). Returns after the current airing is
    /// recorded and the shipper had its chance to flush.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<PlayerEvent>,
        mut control: mpsc::Receiver<Control>,
    ) -> Result<(), StationError> {
        let (sd_tx, sd_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut acked_pos: Option<Arc<std::sync::atomic::AtomicU64>> = None;
        if let Some((url, hb_secs)) = self.collector() {
            let mut scfg = ShipperConfig::new(
                &url,
                &self.cfg.station,
                journal::journal_dir(&self.cfg.data_dir),
            );
            scfg.heartbeat_secs = hb_secs;
            self.ship_wake = Some(scfg.wake.clone());
            let (shipper, acked) = Shipper::new(scfg.clone())?;
            acked_pos = Some(acked.clone());
            let progress = Progress {
                last_seq: self.last_seq(),
                acked,
            };
            let key = keys::load(&self.cfg.data_dir)?;
            tasks.push(tokio::spawn(
                shipper
                    .run(self.last_seq(), sd_rx.clone())
                    .instrument(tracing::info_span!("shipper")),
            ));
            tasks.push(tokio::spawn(
                shipper::run_heartbeat(scfg, key, progress, self.status(), sd_rx.clone())
                    .instrument(tracing::info_span!("heartbeat")),
            ));
            tracing::info!(%url, heartbeat_secs = hb_secs, "shipping to collector");
        } else {
            tracing::warn!("no collector configured: records stay in the journal until one is");
        }
        let mut last_wall = self.clock.now();
        let mut last_mono = Instant::now();
        let mut last_alive = last_wall;
        let mut last_reload_check = Instant::now();
        let mut last_compact: Option<Instant> = None;
        // Memory is given back once start-up is over (the shipper's first request, the first
        // heartbeat), then after each airing, at an idle moment (never on the way to an airing).
        let run_started = Instant::now();
        let result: Result<(), StationError> = loop {
            let now = self.clock.now();
            if !self.held.is_empty()
                && let Err(e) = self.write_held()
            {
                break Err(e);
            }
            if let Some(acked) = &acked_pos
                && last_compact.is_none_or(|t| t.elapsed().as_secs() >= COMPACT_CHECK_SECS)
            {
                last_compact = Some(Instant::now());
                let acked = acked.load(std::sync::atomic::Ordering::Relaxed);
                self.trim_pending |= self.compact(acked, now);
            }
            // Clock steps: wall time moving differently from monotonic time.
            let expected = last_wall + Duration::from_std(last_mono.elapsed()).unwrap_or_default();
            let drift = (now - expected).num_milliseconds();
            if drift > CLOCK_STEP_TOLERANCE_MS {
                tracing::warn!(step_ms = drift, "wall clock stepped forward");
                self.jumps.push(ClockJump {
                    from: expected,
                    to: now,
                });
                if self.jumps.len() > 16 {
                    self.jumps.remove(0);
                }
            } else if drift < -CLOCK_STEP_TOLERANCE_MS {
                tracing::warn!(
                    step_ms = drift,
                    "wall clock stepped back; already-journaled occurrences will not air again"
                );
            }
            if drift.abs() > CLOCK_STEP_TOLERANCE_MS {
                // The start-up wall times were read off the clock before the step.
                let shift = self.steps.step(Duration::milliseconds(drift));
                self.floor += shift;
                self.started_at += shift;
            }
            last_wall = now;
            last_mono = Instant::now();
            if now + Duration::hours(PLAN_AHEAD_HOURS / 2) > self.plan_to
                || drift.abs() > CLOCK_STEP_TOLERANCE_MS
            {
                let from = self
                    .plan
                    .first()
                    .map(|p| p.at.with_timezone(&Utc))
                    .unwrap_or(now)
                    .min(now - Duration::days(1));
                let from = from.max(now - Duration::days(MAX_LOOKBACK_DAYS));
                self.replan(from, now);
            }
            if last_reload_check.elapsed().as_secs() >= RELOAD_CHECK_SECS {
                last_reload_check = Instant::now();
                self.check_schedule_changed();
            }
            let wake = match self.decide_and_act(now) {
                Ok(w) => w,
                Err(e) => break Err(e),
            };
            if (now - last_alive).num_seconds().abs() >= ALIVE_SECS {
                last_alive = now;
                if let Err(e) = self.mark_alive(now) {
                    tracing::warn!("{e}");
                }
            }
            self.publish_status(now);
            if self.trim_pending
                && self.on_air.is_none()
                && run_started.elapsed().as_secs() >= TRIM_AFTER_START_SECS
                && wake.is_none_or(|w| (w - now).num_seconds() >= TRIM_MIN_IDLE_SECS)
            {
                self.trim_pending = false;
                release_free_memory();
            }
            let mut sleep_ms = wake
                .map(|w| (w - now).num_milliseconds())
                .unwrap_or(MAX_SLEEP_MS)
                .clamp(0, MAX_SLEEP_MS) as u64;
            if let Some((liveness, max_sleep)) = &self.liveness {
                liveness.beat();
                sleep_ms = sleep_ms.min(max_sleep.as_millis().max(1) as u64);
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => if let Err(e) = self.on_event(ev, false) { break Err(e) },
                    None => break Err(StationError::Player("the player stopped".into())),
                },
                c = control.recv() => match c {
                    Some(Control::Reload) => self.reload("SIGHUP"),
                    Some(Control::Shutdown) | None => break Ok(()),
                },
                _ = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)) => {}
            }
        };
        // Shutdown: fade out, record what aired as partial, flush.
        if let Some(a) = self.on_air.as_mut() {
            a.ending = Some((
                Outcome::Partial,
                ReasonCode::PartialShutdown,
                "station shut down".into(),
            ));
            let key = a.key.clone();
            let _g = a.span.enter();
            tracing::info!("fading out for shutdown");
            if let Err(e) = self.player.stop(&key) {
                tracing::error!("player: {e}");
            }
        }
        let deadline =
            tokio::time::Instant::now() + std::time::Duration::from_secs(SHUTDOWN_WAIT_SECS);
        while self.on_air.is_some() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ev)) => {
                    if let Err(e) = self.on_event(ev, true) {
                        tracing::error!("{e}");
                        break;
                    }
                }
                _ => {
                    tracing::error!(
                        "player did not report the end of the airing; it is left to the next start (in-flight marker kept)"
                    );
                    break;
                }
            }
        }
        self.player.shutdown();
        let _ = self.mark_alive(self.clock.now());
        if !self.held.is_empty() {
            let _ = self.write_held();
        }
        if !self.held.is_empty() {
            let kept = self.durable.held_durably();
            if kept > 0 {
                tracing::warn!(
                    held = kept,
                    "journal still not writable at shutdown: held records kept in the state file; \
                     the next start journals them"
                );
            }
            for rec in self.held.iter().skip(kept) {
                // Last resort: the record goes to the log (journald usually lives elsewhere).
                tracing::error!(
                    record = %serde_json::to_string(rec).unwrap_or_default(),
                    "journal still not writable at shutdown and the record is not in the state \
                     file: record lost from the journal"
                );
            }
        }
        let _ = sd_tx.send(true);
        for t in tasks {
            match tokio::time::timeout(std::time::Duration::from_secs(SHIPPER_FLUSH_SECS), t).await
            {
                Ok(Ok(Err(e))) => tracing::warn!("shipper: {e}"),
                Ok(_) => {}
                Err(_) => tracing::warn!(
                    "shipper still busy at exit; the backlog ships on the next start"
                ),
            }
        }
        tracing::info!(last_seq = self.journal.last_seq(), "station stopped");
        result
    }
}

/// Turn an `inflight.json` left by a crash of a version before `state.bin` into a `partial` (it
/// had started) or `failed` record (those versions wrote the marker at the cue, so an unstarted
/// one may have been heard: it is not aired again). Returns the record when the journal cannot
/// be written (disk full), for the caller to hold; the marker then stays until the next start.
fn recover_inflight(
    data_dir: &Path,
    journal: &mut Journal,
    now: DateTime<Utc>,
) -> Result<Option<AiringRecord>, StationError> {
    let path = data_dir.join(INFLIGHT_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let m: Inflight = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(path = %path.display(), "in-flight marker unreadable ({e}); kept as {}.bad", INFLIGHT_FILE);
            let _ = std::fs::rename(&path, path.with_extension("json.bad"));
            return Ok(None);
        }
    };
    if journal.occurrence(&m.key).is_none() {
        let rec = m.crash_record(now);
        tracing::warn!(airing = %m.key, outcome = ?rec.outcome, "{}", rec.reason.as_deref().unwrap_or(""));
        match journal.append(rec.clone()) {
            Ok(_) => {}
            Err(JournalError::Io { .. }) => return Ok(Some(rec)),
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::remove_file(&path).map_err(|source| StationError::Io { path, source })?;
    Ok(None)
}

/// Give memory the idle daemon does not need back to the system, after start-up and after each
/// airing: freed heap (glibc keeps it otherwise), and the resident pages of read-only file
/// mappings (the `loa` binary's code, which runs the whole toolbox at start-up, and shared
/// libraries). Those pages stay in the page cache: code that runs again faults back in with a
/// minor fault (no I/O unless the kernel evicted it anyway). Measured: most of an idle station's
/// RSS was such pages (see docs/station.md). A no-op outside Linux/glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free memory of the allocator; it takes its own locks.
        unsafe {
            libc::malloc_trim(0);
        }
        drop_clean_file_pages();
    }
}

/// `MADV_DONTNEED` on every private, non-writable mapping of a file that holds no private
/// (copy-on-write) page: dropping such a page loses nothing, the next access maps the file's
/// page again. Mappings with private pages (relocated read-only data) are left alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn drop_clean_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // (start, end, eligible) of the mapping being read; eligibility is settled by its
    // `Anonymous:` line.
    let mut current: Option<(usize, usize, bool)> = None;
    let mut targets = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let eligible = perms.starts_with('r')
                && !perms.contains('w')
                && perms.ends_with('p')
                && path.starts_with('/');
            current = Some((start, end, eligible));
        } else if first == "Anonymous:"
            && let Some((start, end, true)) = current.take()
            && f.next() == Some("0")
        {
            targets.push((start, end));
        }
    }
    for (start, end) in targets {
        // SAFETY: the range is a whole mapping of this process, read-only, private, backed by a
        // file and without private pages: discarding its pages cannot change what it reads.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Bridge the player's blocking event channel into the daemon's async one.
pub fn bridge_events(rx: std::sync::mpsc::Receiver<PlayerEvent>) -> mpsc::Receiver<PlayerEvent> {
    let (tx, arx) = mpsc::channel(256);
    let _ = std::thread::Builder::new()
        .name("loa-events".into())
        .spawn(move || {
            while let Ok(ev) = rx.recv() {
                if tx.blocking_send(ev).is_err() {
                    break;
                }
            }
        });
    arx
}
