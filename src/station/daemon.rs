//! The daemon: the scheduler loop that airs the planned occurrences of one station through the
//! player, and its start-up and shutdown.
//!
//! Each pass re-reads the wall clock (noting clock steps), keeps the plan expanded
//! [`super::PLAN_AHEAD_HOURS`] ahead, asks [`super::scheduler::decide`] what to do and does it
//! ([`super::inflight`] cues and records), then sleeps until the next decision, a player event
//! or a command. [`run_station`] is `loa station`: schedule, output, signals, systemd.
//!
//! **Invariant:** the loop never waits on the network or the disk for longer than one journal
//! append, and sleeps at most [`super::MAX_SLEEP_MS`] between passes; at shutdown the airing on
//! air is faded out and recorded before the daemon returns.

use super::inflight::{InFlight, recover_inflight, unaired_record};
use super::liveness;
use super::playout::{self, PlayerEvent, Playout};
use super::scheduler::{self, Action, ClockJump, ClockSteps, Context, OnAir};
use super::state::Durable;
use super::{
    ALIVE_FILE, ALIVE_SECS, CLOCK_STEP_TOLERANCE_MS, COMPACT_CHECK_SECS, Control,
    MAX_LOOKBACK_DAYS, MAX_SLEEP_MS, MIN_KEEP_DAYS, PLAN_AHEAD_HOURS, RELOAD_CHECK_SECS,
    SHIPPER_FLUSH_SECS, SHUTDOWN_WAIT_SECS, StationConfig, StationError, TRIM_AFTER_START_SECS,
    TRIM_MIN_IDLE_SECS, load_schedule,
};

use super::bulletin_air::{self, AiredBulletins, Desk, IntakeEvent};
use super::sync::SwitchRequest;
use crate::clock::Clock;
use crate::endpoints::Endpoints;
use crate::journal::{self, Journal};
use crate::keys;
use crate::reason::ReasonCode;
use crate::schedule::{self, AudioCatalog, PlannedAiring};
use crate::shipper::{self, LiveStatus};
use crate::wire::{AiringBrief, AiringRecord, JournalHealth, Outcome, SyncHealth};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

enum Kind {
    Miss,
    Other,
}

/// The running daemon.
pub struct Daemon {
    pub(super) cfg: StationConfig,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) station: schedule::Station,
    pub(super) catalog: AudioCatalog,
    pub(super) plan: Vec<PlannedAiring>,
    pub(super) plan_to: DateTime<Utc>,
    /// Start of the first plan window: nothing earlier is ever accounted for by this run.
    pub(super) floor: DateTime<Utc>,
    pub(super) player: Box<dyn Playout>,
    /// The airing on air and the records on their way into the journal.
    pub(super) inflight: InFlight,
    pub(super) started_at: DateTime<Utc>,
    pub(super) down_since: Option<DateTime<Utc>>,
    /// See [`Context::unsure_since`].
    pub(super) unsure_since: Option<(DateTime<Utc>, String)>,
    pub(super) jumps: Vec<ClockJump>,
    /// Clock steps seen: a step back moves `floor` and `started_at` back with the clock.
    pub(super) steps: ClockSteps,
    pub(super) status_tx: watch::Sender<LiveStatus>,
    pub(super) schedule_mtime: Option<std::time::SystemTime>,
    /// systemd watchdog proof of life: beaten once per scheduler-loop iteration, and the loop
    /// never sleeps longer than the given bound between beats.
    pub(super) liveness: Option<(crate::notify::Liveness, std::time::Duration)>,
    /// Staged schedule versions `station::sync` asks to switch to ([`Daemon::switch_requests`]).
    pub(super) switch_rx: Option<mpsc::Receiver<SwitchRequest>>,
    /// The newest version asked for, waiting for the air to be free.
    pub(super) pending_switch: Option<SwitchRequest>,
    /// The sync's state for the heartbeat (centre-managed stations).
    pub(super) sync_health: Option<watch::Receiver<SyncHealth>>,
    /// What the collector's heartbeat answers said (`station::sync` watches it for news).
    pub(super) answers: Arc<watch::Sender<shipper::HeartbeatAnswer>>,
    /// The bulletins handed over by the intake, and their airing ([`super::bulletin_air`]).
    pub(super) bulletins: Desk,
    /// The collector URLs every client of the station shares (`None`: no collector named),
    /// made once at open so that all of them fail over together.
    pub(super) collectors: Option<Endpoints>,
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
        let audio_root = cfg.audio_root.clone();
        // Bulletin airings the journal (or a record recovered for it) accounts for.
        let recovered_keys: Vec<String> = recovered
            .iter()
            .filter_map(|r| r.occurrence.clone())
            .collect();
        let bulletins = Desk::new(journal.occurrences().keys().chain(recovered_keys.iter()));
        // The flags' URLs, else the schedule's (checked when it was read).
        let collectors = if !cfg.collector_urls.is_empty() {
            Some(Endpoints::new(&cfg.collector_urls)?)
        } else {
            match &station.collector {
                Some(c) => Some(Endpoints::new(&c.urls)?),
                None => None,
            }
        };
        let mut d = Self {
            collectors,
            floor,
            cfg,
            clock,
            station,
            catalog,
            plan: Vec::new(),
            plan_to: now,
            player,
            inflight: InFlight::new(journal, durable, audio_root),
            started_at: now,
            down_since,
            unsure_since,
            jumps: Vec::new(),
            steps: ClockSteps::default(),
            status_tx,
            schedule_mtime,
            liveness: None,
            switch_rx: None,
            pending_switch: None,
            sync_health: None,
            answers: Arc::new(watch::Sender::new(shipper::HeartbeatAnswer::default())),
            bulletins,
        };
        // The centre's version it opened, if its schedule is one (records name it).
        let versions = super::sync::Store::new(&d.cfg.data_dir);
        d.inflight.schedule_version = versions
            .active()
            .ok()
            .flatten()
            .filter(|n| versions.schedule_path(*n, &d.cfg.station) == d.cfg.schedule_path);
        d.replan(floor, now);
        // The journal may not take them (disk full): held like any other record.
        d.inflight.held.extend(recovered);
        d.inflight.write_held()?;
        // A full disk must not keep the station off the air.
        if let Err(e) = liveness::mark_alive(&mut d.inflight, &d.cfg.data_dir, now) {
            tracing::warn!("{e}");
        }
        Ok(d)
    }

    /// Progress counters for the shipper/heartbeat.
    pub fn last_seq(&self) -> watch::Receiver<u64> {
        self.inflight.last_seq_tx.subscribe()
    }

    /// Live status for the heartbeat.
    pub fn status(&self) -> watch::Receiver<LiveStatus> {
        self.status_tx.subscribe()
    }

    /// The collector URLs (shared by every client) and the heartbeat period in force.
    pub fn collector(&self) -> Option<(Endpoints, u64)> {
        let url = self.collectors.clone()?;
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

    pub(super) fn publish_status(&self, now: DateTime<Utc>) {
        let brief = |p: &PlannedAiring| AiringBrief {
            slot: Some(p.slot.to_string()),
            program: p.program.as_deref().map(str::to_owned),
            at: p.at,
        };
        // The one next-airing rule (`schedule::next_airing`, also behind `loa up`'s banner): the
        // plan in memory covers the next PLAN_AHEAD_HOURS and is the same expansion, so the rule
        // runs on it, and expands further only when it holds nothing (a sparse schedule).
        let done = |p: &PlannedAiring| self.inflight.accounted(&p.key());
        let next = match schedule::first_after(&self.plan, now, done) {
            Some(p) => Some(brief(p)),
            None => schedule::next_airing(&self.station, &self.catalog, now, done)
                .as_ref()
                .map(brief),
        };
        let _ = self.status_tx.send(LiveStatus {
            now_airing: self.inflight.on_air.as_ref().map(|a| brief(&a.plan)),
            next_airing: next,
            output: self.player.output_name(),
            output_ok: self.inflight.output_ok,
            journal: JournalHealth {
                writable: self.inflight.journal_error.is_none(),
                held_records: self.inflight.held.len() as u64,
                free_bytes: None,
                error: self.inflight.journal_error.clone(),
            },
            sync: self.sync_health.as_ref().map(|h| h.borrow().clone()),
        });
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

    /// The channel `station::sync` hands staged versions through, and where it publishes its
    /// state for the heartbeat. A version is switched to only when no airing is in flight.
    pub fn switch_requests(
        &mut self,
        health: watch::Receiver<SyncHealth>,
    ) -> mpsc::Sender<SwitchRequest> {
        let (tx, rx) = mpsc::channel(4);
        self.switch_rx = Some(rx);
        self.sync_health = Some(health);
        tx
    }

    /// What the collector's heartbeat answers say (its latest manifest version for this station,
    /// its current centre key), for `station::sync`.
    pub fn heartbeat_answers(&self) -> watch::Receiver<shipper::HeartbeatAnswer> {
        self.answers.subscribe()
    }

    /// Where the bulletin intake hands the daemon checked bulletins (with their verified audio)
    /// and the centre's cancels; the daemon airs them by the airing rules
    /// ([`crate::bulletin::airing`]).
    pub fn bulletin_intake(&self) -> mpsc::Sender<IntakeEvent> {
        self.bulletins.sender()
    }

    /// The bulletin airings the journal accounts for (filled from the journal at open, noted on
    /// each bulletin record appended): the intake's replay test reads it.
    pub fn aired_bulletins(&self) -> AiredBulletins {
        self.bulletins.aired()
    }

    /// Take the newest switch request; apply it when nothing is on air (never mid-airing).
    pub(super) fn poll_switch(&mut self) {
        if let Some(rx) = self.switch_rx.as_mut() {
            while let Ok(r) = rx.try_recv() {
                if let Some(old) = self.pending_switch.replace(r) {
                    let _ = old.reply.send(Err(format!(
                        "version {} superseded before it could be switched to",
                        old.version
                    )));
                }
            }
        }
        // Nor between a bulletin and the airing it interrupted.
        if self.inflight.on_air.is_some() || self.bulletins.busy() {
            return;
        }
        if let Some(r) = self.pending_switch.take() {
            let res = self.switch_version(r.version, r.staged);
            let _ = r.reply.send(res);
        }
    }

    /// Switch to staged version `n`: take the schedule the agent loaded and validated
    /// (`staged`; without it, load and validate `versions/<n>/` as at start), write `active`,
    /// then take its schedule, audio and loudness target. A refusal leaves the running version
    /// airing.
    fn switch_version(
        &mut self,
        n: u64,
        staged: Option<Box<super::sync::StagedSchedule>>,
    ) -> Result<(), String> {
        let now = self.clock.now();
        let store = super::sync::Store::new(&self.cfg.data_dir);
        let mut cfg = self.cfg.clone();
        let from = store.active().ok().flatten();
        let (st, cat, mtime) = match staged.filter(|s| s.version == n) {
            Some(s) => {
                let s = *s;
                cfg.schedule_path = s.schedule_path;
                cfg.audio_root = s.audio_root;
                (s.station, s.catalog, s.schedule_mtime)
            }
            None => {
                cfg.schedule_path = store.schedule_path(n, &self.cfg.station);
                cfg.audio_root = store.audio_root(n);
                let (st, cat) = load_schedule(&cfg, now).map_err(|e| {
                    tracing::error!(
                        version = n,
                        "schedule version refused, keeping the running one: {e}"
                    );
                    e.to_string()
                })?;
                let mtime = std::fs::metadata(&cfg.schedule_path)
                    .and_then(|m| m.modified())
                    .ok();
                (st, cat, mtime)
            }
        };
        if st.id != self.cfg.station {
            tracing::error!(version = n, found = %st.id, "schedule version is another station's, keeping the running one");
            return Err(format!("version {n} is station {}'s schedule", st.id));
        }
        store.write_active(n).map_err(|e| {
            tracing::error!(
                version = n,
                "cannot write the active version, keeping the running one: {e}"
            );
            e.to_string()
        })?;
        self.schedule_mtime = mtime;
        // Nothing is on air (the caller's rule), so no airing's files change under it.
        self.inflight.audio_root = cfg.audio_root.clone();
        self.inflight.schedule_version = Some(n);
        self.cfg = cfg;
        self.apply_loudness(&st);
        self.station = st;
        self.catalog = cat;
        self.replan(now - Duration::days(1), now);
        tracing::info!(from = ?from, to = n, airings = self.plan.len(), "schedule version switched");
        Ok(())
    }

    pub(super) fn replan(&mut self, from: DateTime<Utc>, now: DateTime<Utc>) {
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

    /// Delete journal segments the collector has acknowledged (every record `<= acked`) whose
    /// last record is older than the local history to keep. Age is counted back from the newest
    /// record when the wall clock is ahead of it, so a clock stepped far forward deletes nothing
    /// early. True when something was deleted (memory is worth giving back then).
    pub(super) fn compact(&mut self, acked: u64, now: DateTime<Utc>) -> bool {
        let newest = self
            .inflight
            .journal
            .newest_recorded_at()
            .unwrap_or(now)
            .min(now);
        let cutoff = newest - Duration::days(i64::from(self.cfg.keep_days.max(MIN_KEEP_DAYS)));
        match self.inflight.journal.prune(acked, cutoff) {
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

    pub(super) fn reload(&mut self, why: &str) {
        let now = self.clock.now();
        match load_schedule(&self.cfg, now) {
            Ok((st, cat)) => {
                self.apply_loudness(&st);
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

    /// Hand the player `st`'s loudness target when it differs from the running schedule's:
    /// airings cued from now on are normalised to it.
    fn apply_loudness(&self, st: &schedule::Station) {
        if st.loudness == self.station.loudness {
            return;
        }
        match self.player.set_loudness(st.loudness) {
            Ok(()) => tracing::info!(
                from_lufs = self.station.loudness.integrated_lufs,
                to_lufs = st.loudness.integrated_lufs,
                max_true_peak_dbtp = st.loudness.max_true_peak_dbtp,
                "loudness target changed: airings from now on are normalised to it"
            ),
            Err(e) => tracing::error!(
                "the schedule's loudness target changed but the player did not take it ({e}); \
                 the old one stays until the station restarts"
            ),
        }
    }

    pub(super) fn check_schedule_changed(&mut self) {
        let m = std::fs::metadata(&self.cfg.schedule_path)
            .and_then(|m| m.modified())
            .ok();
        if m != self.schedule_mtime {
            self.schedule_mtime = m;
            self.reload("schedule file changed");
        }
    }

    pub(super) fn decide_and_act(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StationError> {
        // Bulletins first: one due takes the air before a scheduled airing is started over it.
        let bulletin_wake = {
            let mut air = bulletin_air::Air {
                inflight: &mut self.inflight,
                player: &*self.player,
                station: &self.station,
                catalog: &self.catalog,
                plan: &self.plan,
                now,
            };
            match self.bulletins.pass(&mut air) {
                Ok(w) => w,
                Err(StationError::Player(e)) => {
                    tracing::error!("player: {e}");
                    None
                }
                Err(e) => return Err(e),
            }
        };
        let inflight = &self.inflight;
        let accounted = |k: &str| inflight.accounted(k);
        let ctx = Context {
            now,
            started_at: self.started_at,
            down_since: self.down_since,
            unsure_since: self.unsure_since.clone(),
            jumps: self.jumps.clone(),
            lead_ms: playout::lead_ms(&self.plan, &accounted, now, scheduler::DEFAULT_LEAD_MS),
        };
        // A bulletin on air is known by its own occurrence key (never one of the plan's).
        let on_air = self.inflight.on_air.as_ref().map(|a| OnAir {
            key: a.key.clone(),
            ..OnAir::of(&a.plan)
        });
        let decision = scheduler::decide(&self.plan, &accounted, on_air.as_ref(), &ctx);
        for action in decision.actions {
            let action_kind = match &action {
                Action::Miss { .. } => Kind::Miss,
                _ => Kind::Other,
            };
            match action {
                Action::Start { idx } => {
                    let p = self.plan[idx].clone();
                    if let Err(e) = self.inflight.start(p, now, &*self.player) {
                        tracing::error!("{e}");
                    }
                }
                Action::Preempt { current, by } => {
                    let p = self.plan[by].clone();
                    if let Some(a) = self.inflight.on_air.as_mut() {
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
                    self.inflight
                        .append(unaired_record(&p, outcome, (code, reason), now))?;
                }
            }
        }
        Ok(match (decision.wake_at, bulletin_wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// An event of the player: its `Finished` becomes a record, which the bulletins hear of.
    fn on_player_event(
        &mut self,
        ev: PlayerEvent,
        shutting_down: bool,
    ) -> Result<(), StationError> {
        let now = self.clock.now();
        if let Some(ended) = self.inflight.on_event(ev, shutting_down, now)? {
            self.bulletins.on_ended(ended, now);
        }
        Ok(())
    }

    /// Run until `control` says shut down (or closes). Returns after the current airing is
    /// recorded and the shipper had its chance to flush.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<PlayerEvent>,
        mut control: mpsc::Receiver<Control>,
    ) -> Result<(), StationError> {
        let (sd_tx, sd_rx) = watch::channel(false);
        let shipping = liveness::start_shipping(
            &self.cfg,
            self.collector(),
            self.last_seq(),
            self.status(),
            self.answers.clone(),
            &sd_rx,
        )?;
        self.inflight.ship_wake = shipping.wake;
        let (tasks, acked_pos) = (shipping.tasks, shipping.acked);
        let mut last_wall = self.clock.now();
        let mut last_mono = Instant::now();
        let mut last_alive = last_wall;
        let mut last_reload_check = Instant::now();
        let mut last_compact: Option<Instant> = None;
        // Memory is given back once start-up is over (the shipper's first request, the first
        // heartbeat), then after each airing, at an idle moment (never on the way to an airing).
        let run_started = Instant::now();
        let mut intake = self.bulletins.take_receiver();
        let result: Result<(), StationError> = loop {
            let now = self.clock.now();
            if !self.inflight.held.is_empty()
                && let Err(e) = self.inflight.write_held()
            {
                break Err(e);
            }
            if let Some(acked) = &acked_pos
                && last_compact.is_none_or(|t| t.elapsed().as_secs() >= COMPACT_CHECK_SECS)
            {
                last_compact = Some(Instant::now());
                let acked = acked.load(std::sync::atomic::Ordering::Relaxed);
                self.inflight.trim_pending |= self.compact(acked, now);
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
            self.poll_switch();
            let wake = match self.decide_and_act(now) {
                Ok(w) => w,
                Err(e) => break Err(e),
            };
            if (now - last_alive).num_seconds().abs() >= ALIVE_SECS {
                last_alive = now;
                if let Err(e) = liveness::mark_alive(&mut self.inflight, &self.cfg.data_dir, now) {
                    tracing::warn!("{e}");
                }
            }
            self.publish_status(now);
            if self.inflight.trim_pending
                && self.inflight.on_air.is_none()
                && run_started.elapsed().as_secs() >= TRIM_AFTER_START_SECS
                && wake.is_none_or(|w| (w - now).num_seconds() >= TRIM_MIN_IDLE_SECS)
            {
                self.inflight.trim_pending = false;
                liveness::release_free_memory();
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
                    Some(ev) => if let Err(e) = self.on_player_event(ev, false) { break Err(e) },
                    None => break Err(StationError::Player("the player stopped".into())),
                },
                // The desk holds a sender: the channel never closes while the daemon runs.
                Some(ev) = async {
                    match intake.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.bulletins.on_intake(ev, &self.inflight, self.clock.now()),
                c = control.recv() => match c {
                    Some(Control::Reload) => self.reload("SIGHUP"),
                    Some(Control::Shutdown) | None => break Ok(()),
                },
                _ = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)) => {}
            }
        };
        // Shutdown: fade out, record what aired as partial, flush.
        if let Some(a) = self.inflight.on_air.as_mut() {
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
        while self.inflight.on_air.is_some() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ev)) => {
                    if let Err(e) = self.on_player_event(ev, true) {
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
        let _ = liveness::mark_alive(&mut self.inflight, &self.cfg.data_dir, self.clock.now());
        if !self.inflight.held.is_empty() {
            let _ = self.inflight.write_held();
        }
        if !self.inflight.held.is_empty() {
            let kept = self.inflight.durable.held_durably();
            if kept > 0 {
                tracing::warn!(
                    held = kept,
                    "journal still not writable at shutdown: held records kept in the state file; \
                     the next start journals them"
                );
            }
            for rec in self.inflight.held.iter().skip(kept) {
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
        tracing::info!(
            last_seq = self.inflight.journal.last_seq(),
            "station stopped"
        );
        result
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

/// How `loa station` runs the daemon (its arguments, resolved).
#[derive(Debug, Clone)]
pub struct Launch {
    pub cfg: StationConfig,
    /// `device`, `device:NAME`, `wav:PATH`, `null` (the player's outputs), or `timer` (a silent
    /// stand-in that only keeps time and hashes files; no evidence meter).
    pub output: String,
    /// Also publish what airs to this Icecast mount (`icecast://source:PASSWORD@HOST:PORT/MOUNT`).
    pub publish: Option<String>,
    /// The collector URL a local collector recorded, and where it was read: used when neither
    /// `cfg.collector_urls` nor the schedule names one.
    pub recorded_collector: Option<(String, String)>,
}

/// Run the station as `loa station` does, until SIGTERM/SIGINT: read and validate the schedule
/// (a refusal: [`StationError::is_refusal`]), open the output (with the schedule's loudness
/// target), wire the signals (SIGHUP reloads), tell systemd it is ready and pet its watchdog
/// while the loop beats, and run the daemon.
pub fn run_station(launch: Launch) -> Result<(), StationError> {
    let Launch {
        mut cfg,
        output,
        publish,
        recorded_collector,
    } = launch;
    // A station that pinned a centre key (`loa enrol`) is centre-managed: its sync agent runs.
    // Before its first version it airs its local schedule if it has one, else nothing.
    let managed = cfg.data_dir.join(crate::centre::pin::PINNED_FILE).is_file();
    let active = super::sync::Store::new(&cfg.data_dir)
        .active()
        .ok()
        .flatten();
    let waiting = managed && active.is_none() && !cfg.schedule_path.exists();
    // The player is set up with the schedule's loudness target, so the schedule is read (and
    // validated) before the output is opened, once: the daemon opens with it.
    let (station, catalog) = if waiting {
        tracing::warn!(
            station = %cfg.station,
            "centre-managed station waiting for its first schedule version: nothing airs until \
             the centre's first version is downloaded, verified and switched to"
        );
        waiting_schedule(&cfg)?
    } else {
        load_schedule(&cfg, chrono::Utc::now())?
    };
    // No collector named (flag or schedule): the one the layout's collector recorded, if any
    // (a station started beside `loa up` ships to it without flags).
    if cfg.collector_urls.is_empty()
        && station.collector.is_none()
        && let Some((url, from)) = recorded_collector
    {
        tracing::info!(%url, "collector URL {from}");
        cfg.collector_urls = vec![url];
    }
    let loudness = crate::loudness::LoudnessSettings {
        target_lufs: station.loudness.integrated_lufs,
        max_true_peak_dbtp: station.loudness.max_true_peak_dbtp,
        cache_dir: Some(cfg.data_dir.join("loudness")),
        ..Default::default()
    };
    let (player, events) = open_playout(&output, publish, loudness)?;
    // One thread runs the scheduler, the shipper and the heartbeat: they mostly sleep, the
    // player has its own threads (the first sample is placed there, not here), and journal reads
    // go to the blocking pool. A multi-threaded runtime cost ~1 MB of RSS idle for nothing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| StationError::Start {
            what: "starting the async runtime",
            source,
        })?;
    let id = cfg.station.clone();
    rt.block_on(async move {
        // Signals first: a SIGTERM during start-up must mean "shut down cleanly", not death.
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        let notifier = crate::notify::Notifier::from_env();
        spawn_signals(ctl_tx, notifier.clone())?;
        let mut daemon = Daemon::open_loaded(
            cfg,
            Arc::new(crate::clock::SystemClock),
            player,
            station,
            catalog,
        )?;
        // systemd (Type=notify): ready once the schedule, key and journal are open.
        // The watchdog is petted only while the scheduler loop beats (same thread as the pets).
        let (beat, stop_watchdog) = liveness::watchdog(&notifier);
        if let Some((liveness, max_sleep)) = beat {
            daemon.set_liveness(liveness, max_sleep);
        }
        let (stop_sync, sync_stop_rx) = watch::channel(false);
        // The push channel (`station::push`) wakes the bulletin intake on every bulletin and
        // cancel event (the heartbeat's pending list is the fallback) and the agent on a version.
        let bulletin_wake = Arc::new(tokio::sync::Notify::new());
        let push = match (managed, daemon.collector()) {
            (true, Some((collectors, _))) => super::push::start(
                &daemon.cfg.station,
                collectors,
                &daemon.cfg.data_dir,
                daemon.answers.clone(),
                bulletin_wake.clone(),
                sync_stop_rx.clone(),
            ),
            _ => None,
        };
        // The bulletin intake (`station::bulletins`): fetches, checks, audio, receipts.
        let intake = if managed {
            start_bulletin_intake(&daemon, bulletin_wake.clone(), sync_stop_rx.clone())
        } else {
            None
        };
        let agent = if managed {
            start_agent(&mut daemon, sync_stop_rx)
        } else {
            None
        };
        if let Err(e) = notifier.ready_with_status(&format!("airing station {id}")) {
            tracing::warn!("systemd notify: {e}");
        }
        let result = daemon.run(bridge_events(events), ctl_rx).await;
        let _ = stop_watchdog.send(true);
        let _ = stop_sync.send(true);
        if let Some(a) = agent {
            a.abort();
        }
        if let Some(p) = push {
            p.abort();
        }
        if let Some(i) = intake {
            i.abort();
        }
        result
    })
}

/// The schedule of a centre-managed station that has no version yet: no slots (it airs
/// nothing), validated like any schedule.
fn waiting_schedule(
    cfg: &StationConfig,
) -> Result<(schedule::Station, AudioCatalog), StationError> {
    let text = format!(
        "id = \"{}\"\nname = \"{}\"\nkind = \"ward\"\narea_code = \"0\"\n",
        cfg.station, cfg.station
    );
    let catalog = AudioCatalog {
        root: cfg.audio_root.clone(),
        ..AudioCatalog::default()
    };
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .date_naive();
    let station =
        schedule::parse_station(&cfg.schedule_path, &text, &catalog, today).map_err(|errors| {
            StationError::Schedule {
                path: cfg.schedule_path.clone(),
                errors,
            }
        })?;
    Ok((station, catalog))
}

/// Start the bulletin intake (`station::bulletins`) of the centre-managed station `daemon` runs
/// (in `run_station`, beside the sync agent): its events to the daemon, the airings its journal
/// accounts for, woken by `wake` (the push client) and the heartbeat's answers; `None`, logged,
/// without a collector or key. It lives here so that `bulletins` never names the daemon.
fn start_bulletin_intake(
    daemon: &Daemon,
    wake: Arc<tokio::sync::Notify>,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    use super::bulletins::{IntakeConfig, Links, start};
    let Some((collectors, _)) = daemon.collector() else {
        tracing::error!(
            "centre-managed station without a collector URL: no bulletins can be fetched"
        );
        return None;
    };
    let key = match keys::load(&daemon.cfg.data_dir) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!("bulletin intake not started: {e}");
            return None;
        }
    };
    let mut cfg = IntakeConfig::new(
        &daemon.cfg.station,
        daemon.cfg.data_dir.clone(),
        collectors.client_url(),
        key,
        &daemon.station.area_code,
    );
    cfg.collectors = collectors;
    cfg.clock = daemon.clock.clone();
    let links = Links {
        events: daemon.bulletin_intake(),
        aired: daemon.aired_bulletins(),
        wake,
        answers: daemon.heartbeat_answers(),
    };
    start(cfg, links, shutdown)
}

/// Start the sync agent of a centre-managed station (it needs a collector and the station key);
/// `None`, logged, when it cannot run (the station airs what it has).
fn start_agent(
    daemon: &mut Daemon,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    use super::sync::agent::{self, Agent, AgentConfig};
    let Some((collectors, _)) = daemon.collector() else {
        tracing::error!(
            "centre-managed station (a centre key is pinned) without a collector URL: no schedule \
             versions can be fetched; give --collector or enrol again"
        );
        return None;
    };
    let key = match keys::load(&daemon.cfg.data_dir) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!("sync not started: {e}");
            return None;
        }
    };
    let data_dir = daemon.cfg.data_dir.clone();
    let (health_tx, health_rx) = watch::channel(agent::initial_health(&data_dir));
    let switch = daemon.switch_requests(health_rx);
    let url = collectors.urls().join(", ");
    let mut cfg = AgentConfig::new(&daemon.cfg.station, data_dir, collectors.client_url(), key);
    cfg.collectors = collectors;
    cfg.clock = daemon.clock.clone();
    match Agent::new(cfg, health_tx, switch, daemon.heartbeat_answers()) {
        Ok(a) => {
            tracing::info!(%url, "schedule sync with the centre started");
            Some(tokio::spawn(tracing::Instrument::instrument(
                a.run(shutdown),
                tracing::info_span!("sync"),
            )))
        }
        Err(e) => {
            tracing::error!("sync not started: {e}");
            None
        }
    }
}

/// The player `output` names: the real player on an audio output (publishing to Icecast when
/// `publish` is set), or the silent timer stand-in.
pub fn open_playout(
    output: &str,
    publish: Option<String>,
    loudness: crate::loudness::LoudnessSettings,
) -> Result<(Box<dyn Playout>, std::sync::mpsc::Receiver<PlayerEvent>), StationError> {
    if let Some(url) = &publish {
        crate::output::publish::publish_url(url)
            .map_err(|e| StationError::Publish(e.to_string()))?;
    }
    let out_err = |reason: String| StationError::Output {
        spec: output.to_string(),
        reason,
    };
    match output {
        "timer" if publish.is_some() => Err(StationError::PublishWithoutOutput),
        "timer" => {
            let (p, rx) = playout::TimerPlayout::spawn().map_err(out_err)?;
            Ok((Box::new(p), rx))
        }
        spec => {
            let mut config = crate::output::OutputConfig::new(spec);
            config.publish = publish;
            let (p, rx) = playout::PlayerPlayout::spawn(config, loudness).map_err(out_err)?;
            Ok((Box::new(p), rx))
        }
    }
}

/// SIGHUP → [`Control::Reload`]; SIGTERM, SIGINT → [`Control::Shutdown`] (systemd told we are
/// stopping).
fn spawn_signals(
    tx: mpsc::Sender<Control>,
    notifier: crate::notify::Notifier,
) -> Result<(), StationError> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind, what| signal(kind).map_err(|source| StationError::Start { what, source });
    let mut hup = install(SignalKind::hangup(), "installing SIGHUP handler")?;
    let mut term = install(SignalKind::terminate(), "installing SIGTERM handler")?;
    let mut int = install(SignalKind::interrupt(), "installing SIGINT handler")?;
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
