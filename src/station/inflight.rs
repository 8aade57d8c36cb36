//! In flight: the airing on air, and records on their way into the journal.
//!
//! The daemon hands one airing at a time to the player ([`AiringOnAir`]); the player's
//! `Finished` becomes its record, journaled as the player reported it (outcome, reason code,
//! evidence) unless the daemon ended it (preempted, shut down), when the daemon's outcome and code
//! stand. A record the journal cannot take (disk full, I/O error) is held, in order, in memory
//! and in `state.bin`, and written first as soon as the journal takes records again.
//!
//! **Invariant:** every airing handed to the player gets exactly one record, journaled or held,
//! in order; its in-flight marker leaves `state.bin` only once that record is journaled or held
//! durably, so a crash at any point leaves either the record or the marker (which the next run
//! turns into a `partial`/`failed` record), never neither and never both.

use super::playout::Playout;
use super::playout::{Cue, PlayerEvent};
use super::state::Durable;
use super::state::{self, Inflight};
use super::{INFLIGHT_FILE, StationError};
use crate::journal::{Journal, JournalError};
use crate::reason::ReasonCode;
use crate::schedule::PlannedAiring;
use crate::wire::{AiredItem, AiringRecord, Outcome, Source};
use chrono::{DateTime, FixedOffset, Utc};
use std::collections::VecDeque;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

pub(super) fn local(t: DateTime<Utc>, like: &DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t.with_timezone(like.offset())
}

pub(super) fn source_of(p: &PlannedAiring) -> Source {
    if p.relay.is_some() {
        Source::Relay
    } else {
        Source::File
    }
}

/// A record for an occurrence that did not air (missed/skipped/failed), with its reason's code.
pub(super) fn unaired_record(
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
        schedule_version: None,
        bulletin: None,
    }
}

/// The airing handed to the player and not yet recorded: its plan, and what the daemon knows
/// of it so far.
pub(super) struct AiringOnAir {
    pub(super) plan: PlannedAiring,
    pub(super) key: String,
    pub(super) started_at: Option<DateTime<Utc>>,
    /// Set when we asked the player to end it, with the reason (code, text) for the record.
    pub(super) ending: Option<(Outcome, ReasonCode, String)>,
    pub(super) span: tracing::Span,
    /// A bulletin's airing (its plan is made up by [`super::bulletin_air`]): recorded under its
    /// bulletin occurrence, naming the bulletin.
    pub(super) bulletin: Option<BulletinAiring>,
    /// The item on air (from the player's `ItemStarted`) and when it began.
    pub(super) item: (usize, Option<DateTime<Utc>>),
    /// This airing continues a scheduled airing a bulletin interrupted: what aired of it before.
    pub(super) resumed: Option<Part>,
}

/// The made-up slot name of a bulletin's airing (the record has no slot; the heartbeat's
/// "now airing" shows it).
pub const BULLETIN_SLOT: &str = "bulletin";

/// The record of a bulletin's airing: its occurrence, the bulletin named, no slot or program.
pub(super) fn name_bulletin(rec: &mut AiringRecord, key: &str, b: &BulletinAiring) {
    rec.occurrence = Some(key.to_string());
    rec.slot = None;
    rec.program = None;
    rec.category = BULLETIN_SLOT.to_string();
    rec.bulletin = Some(b.wire());
}

/// A bulletin airing on air.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BulletinAiring {
    pub(super) id: crate::bulletin::BulletinId,
    pub(super) repeat: u32,
    pub(super) synthetic: bool,
    pub(super) priority: crate::schedule::Priority,
}

impl BulletinAiring {
    pub(super) fn wire(&self) -> crate::wire::BulletinRef {
        crate::wire::BulletinRef {
            id: self.id.to_hex(),
            repeat: self.repeat,
            synthetic: self.synthetic,
        }
    }
}

/// What aired of an airing: its first sample, seconds, items (to merge a continuation's record
/// with the part before the interruption).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Part {
    pub(super) started_at: Option<DateTime<Utc>>,
    pub(super) aired_secs: f64,
    pub(super) items: Vec<AiredItem>,
}

/// An airing whose record was just taken (journaled or held): what the daemon's bulletin side
/// needs to know of it.
#[derive(Debug, Clone)]
pub(super) struct Ended {
    pub(super) plan: PlannedAiring,
    pub(super) bulletin: Option<BulletinAiring>,
    pub(super) outcome: Outcome,
    /// The item on air when it ended.
    pub(super) item: usize,
    /// What aired of it (merged with what aired before, for a continuation).
    pub(super) part: Part,
}

/// What to hand [`InFlight::start_airing`] besides the plan.
#[derive(Debug, Clone, Default)]
pub(super) struct Extra {
    /// The occurrence key (default: the plan's).
    pub(super) key: Option<String>,
    pub(super) bulletin: Option<BulletinAiring>,
    pub(super) resumed: Option<Part>,
}

/// The airing on air and the records on their way into the journal (see the module doc).
pub struct InFlight {
    pub(super) journal: Journal,
    /// Records the journal could not take (disk full, I/O error), oldest first; appended before
    /// anything else as soon as it can. They count as accounted for (never aired twice).
    pub(super) held: VecDeque<AiringRecord>,
    /// Why the journal is not writable, while it is not.
    pub(super) journal_error: Option<String>,
    /// `state.bin`: the in-flight marker (written by the player's start gate), the held
    /// records and the alive mark, durable on a full disk.
    pub(super) durable: Durable,
    /// Why the state file could not be written last time, while it cannot.
    pub(super) state_error: Option<String>,
    /// The journal's last sequence number, for the shipper and the heartbeat.
    pub(super) last_seq_tx: watch::Sender<u64>,
    /// Wakes the shipper out of a backoff when the journal is writable again (its ledger may
    /// have failed on the same full disk).
    pub(super) ship_wake: Option<Arc<tokio::sync::Notify>>,
    /// The airing handed to the player, until its record is journaled or held.
    pub(super) on_air: Option<AiringOnAir>,
    /// Whether the last airing reached the output (for the heartbeat).
    pub(super) output_ok: bool,
    /// Free memory is to be given back at the next idle moment: after start-up, after each
    /// airing, after a compaction.
    pub(super) trim_pending: bool,
    /// Items are cued under it, and recorded relative to it (as the schedule writes them).
    pub(super) audio_root: PathBuf,
    /// The centre's schedule version airing now (`None`: the station's own schedule file):
    /// stamped on every record appended ([`AiringRecord::schedule_version`]). The daemon sets it
    /// when it opens a version and when it switches, which it does only between airings.
    pub(super) schedule_version: Option<u64>,
}

impl InFlight {
    /// Around an open journal and state file, nothing on air.
    pub(super) fn new(journal: Journal, durable: Durable, audio_root: PathBuf) -> Self {
        let (last_seq_tx, _) = watch::channel(journal.last_seq());
        Self {
            journal,
            held: VecDeque::new(),
            journal_error: None,
            durable,
            state_error: None,
            last_seq_tx,
            ship_wake: None,
            on_air: None,
            output_ok: true,
            trim_pending: true,
            audio_root,
            schedule_version: None,
        }
    }
    /// Log a state file write's failure once, and its recovery.
    pub(super) fn note_state(&mut self, r: Result<(), state::StateError>) {
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
    pub(super) fn settle(&mut self, key: Option<&str>) {
        let r = self.durable.settle(key, &self.held);
        self.note_state(r);
    }

    /// Journal `rec`. When the journal cannot be written (disk full, I/O error) the record is
    /// held in memory, in order, and the error reported (log, heartbeat); airing goes on and the
    /// held records are written as soon as the journal takes them again. `Ok(None)`: held.
    /// The record names the schedule version in force ([`InFlight::schedule_version`]) unless
    /// it names one already.
    pub(super) fn append(&mut self, mut rec: AiringRecord) -> Result<Option<u64>, StationError> {
        if rec.schedule_version.is_none() {
            rec.schedule_version = self.schedule_version;
        }
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
    pub(super) fn write_held(&mut self) -> Result<(), StationError> {
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
    pub(super) fn accounted(&self, key: &str) -> bool {
        self.journal.occurrence(key).is_some()
            || self
                .held
                .iter()
                .any(|r| r.occurrence.as_deref() == Some(key))
    }

    /// Cue `p` on `player` (remembering its marker, made durable by the start gate); a cue the
    /// player refuses is recorded `failed` at once.
    pub(super) fn start(
        &mut self,
        p: PlannedAiring,
        now: DateTime<Utc>,
        player: &dyn Playout,
    ) -> Result<(), StationError> {
        self.start_airing(p, Extra::default(), now, player)
    }

    /// [`InFlight::start`] of a bulletin's airing or a continuation (`extra`).
    pub(super) fn start_airing(
        &mut self,
        p: PlannedAiring,
        extra: Extra,
        now: DateTime<Utc>,
        player: &dyn Playout,
    ) -> Result<(), StationError> {
        let key = extra.key.clone().unwrap_or_else(|| p.key());
        let span = tracing::info_span!("airing", airing = %key);
        let at = p.at.with_timezone(&Utc);
        let cue = Cue {
            airing_id: key.clone(),
            items: p.items.iter().map(|i| self.audio_root.join(i)).collect(),
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
        let airing = AiringOnAir {
            plan: p,
            key: key.clone(),
            started_at: None,
            ending: None,
            span,
            bulletin: extra.bulletin,
            item: (0, None),
            resumed: extra.resumed,
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
            bulletin: airing.bulletin.as_ref().map(BulletinAiring::wire),
        });
        if let Err(e) = player.cue(cue) {
            self.settle(Some(&key));
            airing
                .span
                .in_scope(|| tracing::error!("player refused the cue: {e}"));
            let mut rec = unaired_record(
                &airing.plan,
                Outcome::Failed,
                (ReasonCode::FailedPlayer, format!("player: {e}")),
                now,
            );
            if let Some(b) = &airing.bulletin {
                name_bulletin(&mut rec, &key, b);
            }
            self.output_ok = false;
            self.append(rec)?;
            return Err(StationError::Player(e));
        }
        self.on_air = Some(airing);
        Ok(())
    }

    /// What the player reported about the airing on air, at `now`; its `Finished` becomes
    /// the airing's record (returned as [`Ended`] once taken).
    pub(super) fn on_event(
        &mut self,
        ev: PlayerEvent,
        shutting_down: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Ended>, StationError> {
        let Some(a) = self.on_air.as_mut() else {
            tracing::debug!(?ev, "event for no airing");
            return Ok(None);
        };
        let id = ev.airing_id().to_string();
        if id != a.key {
            tracing::warn!(airing = %id, "event for an airing not on air; ignored");
            return Ok(None);
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
                a.item = (index, Some(at));
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
                    return Ok(None);
                };
                let outcome = outcome.to_wire();
                // A relay's one "item" is the upstream: its story is `relay`.
                let items = if relay.is_some() { Vec::new() } else { items };
                let relay = relay.map(|r| r.evidence);
                if shutting_down && a.started_at.is_none() && outcome != Outcome::Aired {
                    // Never reached the air: leave it to the next run (it may still be in grace).
                    tracing::info!("cue withdrawn before the first sample (shutdown)");
                    self.settle(Some(&a.key));
                    return Ok(None);
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
                let aired_secs = if aired_secs.is_finite() {
                    aired_secs
                } else {
                    0.0
                };
                let items: Vec<AiredItem> = items
                    .into_iter()
                    .map(|mut i| {
                        // Record paths as written in the schedule (relative to the audio root).
                        if let Ok(rel) = Path::new(&i.path).strip_prefix(&self.audio_root) {
                            i.path = rel.display().to_string();
                        }
                        i
                    })
                    .collect();
                // A continuation is recorded with what aired before the interruption.
                let part = match &a.resumed {
                    Some(before) => Part {
                        started_at: before.started_at.or(a.started_at),
                        aired_secs: before.aired_secs + aired_secs,
                        items: before.items.iter().cloned().chain(items).collect(),
                    },
                    None => Part {
                        started_at: a.started_at,
                        aired_secs,
                        items,
                    },
                };
                let actual = part.started_at;
                let mut rec = AiringRecord {
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
                    aired_secs: part.aired_secs,
                    start_offset_ms: actual
                        .map(|t| (t - at.with_timezone(&Utc)).num_milliseconds()),
                    outcome,
                    reason: reason.clone(),
                    reason_code,
                    items: part.items.clone(),
                    evidence,
                    relay,
                    recorded_at: now,
                    prev_hash: String::new(),
                    schedule_version: None,
                    bulletin: None,
                };
                if let Some(b) = &a.bulletin {
                    name_bulletin(&mut rec, &a.key, b);
                }
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
                return Ok(Some(Ended {
                    plan: a.plan,
                    bulletin: a.bulletin,
                    outcome,
                    item: a.item.0,
                    part,
                }));
            }
        }
        Ok(None)
    }
}

/// Turn an `inflight.json` left by a crash of a version before `state.bin` into a `partial` (it
/// had started) or `failed` record (those versions wrote the marker at the cue, so an unstarted
/// one may have been heard: it is not aired again). Returns the record when the journal cannot
/// be written (disk full), for the caller to hold; the marker then stays until the next start.
pub(super) fn recover_inflight(
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
