//! Airing at the station: the daemon's side of bulletins (issue #15, items 4 and 5). The intake
//! (`station::bulletins`) hands the daemon checked bulletins with their verified audio and the
//! centre's cancels ([`IntakeEvent`]); each scheduler pass asks the pure
//! [`crate::bulletin::airing::decide`] what to do over what is on air, the pending bulletins,
//! the station's next planned sessions and its rules, and carries the actions out with the same
//! player (loudness normalisation, evidence meter) as scheduled airings:
//!
//! - `Start` airs on the idle air; `CutIn` fades out (the player's 0.5 s fade) what is on air,
//!   which is recorded `preempted` (`preempted.higher_priority`), then airs the emergency as soon
//!   as the player reports the cut airing over; a scheduled airing the decision says to resume
//!   continues after the bulletin from the item that was cut (the player cannot start mid-file:
//!   that item airs again from its start);
//! - `AtBoundary` cuts the scheduled airing on air at the end of its item now playing, airs the
//!   bulletin, then the airing goes on from its next item; `AfterSession` airs the bulletin when
//!   the scheduled airing on air ends;
//! - `Stop` fades out a cancelled bulletin on air (`partial`, `bulletin.cancelled`); `Drop`
//!   journals each airing left as `skipped` with its `bulletin.*` code.
//!
//! Every bulletin airing is one signed journal record under its occurrence
//! `bulletin:<id>#<repeat>` naming the bulletin ([`crate::wire::BulletinRef`]), category
//! `bulletin`, no slot. A continued scheduled airing is recorded twice under its occurrence: the
//! `preempted` record when it was cut, and, when it ends, the record of the whole airing (both
//! parts: first sample, seconds, items) — the latest record of an occurrence is the one reports
//! read, as they do for any occurrence.
//!
//! **Invariant:** a bulletin airing (id, repeat) is handed to the player only when no record of
//! it is journaled or held (the journal's occurrence keys, filled into [`AiredBulletins`] at open
//! and noted on every bulletin record appended), and its in-flight marker names it, so after a
//! crash it is recorded `partial`/`failed` and never aired again; one airing is on air at a time,
//! and a bulletin replaces a cut airing only once the player reported the cut airing over (its
//! record taken first).

use super::StationError;
use super::inflight::{
    BULLETIN_SLOT, BulletinAiring, Ended, Extra, InFlight, Part, name_bulletin, unaired_record,
};
use super::playout::Playout;
use crate::bulletin::BulletinId;
use crate::bulletin::airing::{self, Action, Pending, Preempted, Session, StationRules};
use crate::reason::ReasonCode;
use crate::schedule::{AudioCatalog, AudioFacts, PlannedAiring, StartPolicy, Station};
use crate::wire::Outcome;
use chrono::{DateTime, Duration, Utc};
use std::path::PathBuf;
use tokio::sync::mpsc;

pub use super::bulletins::{AiredBulletins, IntakeEvent, ReadyBulletin};

/// Intake events waiting for the daemon (the intake waits when this many are unread).
pub const INTAKE_QUEUE: usize = 32;
/// A cut at an item boundary is sent this long after the boundary, so the item before it airs
/// whole (the next item, faded at its start, airs again whole after the bulletin).
pub const BOUNDARY_MARGIN_MS: i64 = 50;
/// Cancels are remembered this long (the longest bulletin window): a cancel that arrives before
/// its bulletin still drops it.
const CANCEL_MEMORY_DAYS: i64 = 8;

/// A bulletin accepted and not yet aired to its last repeat.
#[derive(Debug, Clone)]
struct Waiting {
    p: Pending,
    audio: PathBuf,
    synthetic: bool,
    title: String,
}

/// When a decided airing starts.
#[derive(Debug, Clone, PartialEq)]
enum When {
    /// As soon as the air is free (a cut in progress).
    Now,
    /// At the end of the item now playing of scheduled airing `key` (`at`), before its item
    /// `next_item`.
    Boundary {
        key: String,
        at: DateTime<Utc>,
        next_item: usize,
    },
    /// When scheduled airing `key` (on air) ends.
    After { key: String },
}

#[derive(Debug, Clone, PartialEq)]
struct Promise {
    id: BulletinId,
    repeat: u32,
    when: When,
}

/// A scheduled airing cut for a bulletin, to continue after it.
#[derive(Debug, Clone)]
struct Resume {
    plan: PlannedAiring,
    from_item: usize,
    part: Part,
}

/// Where a cut scheduled airing continues.
#[derive(Debug, Clone, Copy, PartialEq)]
enum From {
    /// From this item (a cut at an item boundary).
    Item(usize),
    /// From the item on air when it ended, again from its start (a cut-in).
    Ended,
}

/// A scheduled airing being cut (waiting for its `Finished`), and where it continues after the
/// bulletin (`None`: it does not).
#[derive(Debug, Clone)]
struct Cutting {
    key: String,
    from: Option<From>,
}

/// What a pass works on: the daemon's in-flight airing and player, its schedule and plan.
pub(super) struct Air<'a> {
    pub(super) inflight: &'a mut InFlight,
    pub(super) player: &'a dyn Playout,
    pub(super) station: &'a Station,
    pub(super) catalog: &'a AudioCatalog,
    pub(super) plan: &'a [PlannedAiring],
    pub(super) now: DateTime<Utc>,
}

/// The daemon's bulletins (see the module doc).
pub struct Desk {
    tx: mpsc::Sender<IntakeEvent>,
    rx: Option<mpsc::Receiver<IntakeEvent>>,
    aired: AiredBulletins,
    waiting: Vec<Waiting>,
    cancelled: Vec<(BulletinId, DateTime<Utc>)>,
    promises: Vec<Promise>,
    cutting: Option<Cutting>,
    resume: Option<Resume>,
    /// Seconds of bulletins added to scheduled airings (by occurrence key).
    added: Vec<(String, f64)>,
}

impl Desk {
    /// The desk of a daemon whose journal holds `occurrences`: the bulletin airings among them
    /// are accounted for.
    pub(super) fn new<'a>(occurrences: impl Iterator<Item = &'a String>) -> Desk {
        let aired = AiredBulletins::default();
        for key in occurrences {
            if let Some((id, repeat)) = crate::bulletin::parse_occurrence(key) {
                aired.note(id, repeat);
            }
        }
        let (tx, rx) = mpsc::channel(INTAKE_QUEUE);
        Desk {
            tx,
            rx: Some(rx),
            aired,
            waiting: Vec::new(),
            cancelled: Vec::new(),
            promises: Vec::new(),
            cutting: None,
            resume: None,
            added: Vec::new(),
        }
    }

    /// Where the intake sends bulletins and cancels.
    pub(super) fn sender(&self) -> mpsc::Sender<IntakeEvent> {
        self.tx.clone()
    }

    /// The airings accounted for.
    pub(super) fn aired(&self) -> AiredBulletins {
        self.aired.clone()
    }

    /// The receiver, for the daemon's loop to wake on (taken once).
    pub(super) fn take_receiver(&mut self) -> Option<mpsc::Receiver<IntakeEvent>> {
        self.rx.take()
    }

    /// A bulletin airing or a continuation is coming: a schedule switch waits for it.
    pub(super) fn busy(&self) -> bool {
        !self.promises.is_empty() || self.resume.is_some() || self.cutting.is_some()
    }

    fn accounted(&self, inflight: &InFlight, id: &BulletinId, repeat: u32) -> bool {
        let hex = id.to_hex();
        self.aired.accounted(&hex, repeat)
            || inflight.accounted(&crate::bulletin::occurrence_key(&hex, repeat))
    }

    /// Take an intake event.
    pub(super) fn on_intake(&mut self, ev: IntakeEvent, inflight: &InFlight, now: DateTime<Utc>) {
        match ev {
            IntakeEvent::Ready(r) => self.on_ready(*r, inflight),
            IntakeEvent::Cancelled { id, at } => {
                tracing::warn!(bulletin = %id.to_hex(), %at, "bulletin cancelled by the centre");
                if !self.cancelled.iter().any(|(c, _)| *c == id) {
                    self.cancelled.push((id, now));
                }
                // Not started yet: the decision drops them.
                self.promises.retain(|p| p.id != id);
            }
        }
        self.cancelled
            .retain(|(_, t)| now - *t < Duration::days(CANCEL_MEMORY_DAYS));
    }

    fn on_ready(&mut self, r: ReadyBulletin, inflight: &InFlight) {
        let b = &r.bulletin;
        let id = b.id;
        if self.waiting.iter().any(|w| w.p.id == id) {
            tracing::debug!(bulletin = %id.to_hex(), "bulletin already pending");
            return;
        }
        let Some(next) = (1..=b.repeats.count).find(|r| !self.accounted(inflight, &id, *r)) else {
            tracing::info!(bulletin = %id.to_hex(), "every airing of the bulletin is in the journal: not aired again");
            return;
        };
        tracing::info!(
            bulletin = %id.to_hex(), title = %b.title, priority = ?b.priority, next_repeat = next,
            count = b.repeats.count, not_before = %b.not_before, not_after = %b.not_after,
            "bulletin pending"
        );
        self.waiting.push(Waiting {
            p: Pending {
                id,
                priority: b.priority,
                duration_ms: b.audio.duration_ms,
                not_before: b.not_before,
                not_after: b.not_after,
                count: b.repeats.count,
                interval_secs: b.repeats.interval_secs,
                next_repeat: next,
                last_started: None,
            },
            audio: r.audio,
            synthetic: b.synthetic,
            title: b.title.clone(),
        });
    }

    /// An airing's record was taken: a bulletin airing moves its bulletin to the next repeat; a
    /// scheduled airing cut for a bulletin is remembered to continue after it.
    pub(super) fn on_ended(&mut self, e: Ended, now: DateTime<Utc>) {
        if let Some(b) = &e.bulletin {
            self.note(&b.id, b.repeat, e.part.started_at.unwrap_or(now));
            return;
        }
        let key = e.plan.key();
        if let Some(c) = self.cutting.take_if(|c| c.key == key)
            && let Some(from) = c.from
        {
            let from_item = match from {
                From::Item(n) => n,
                From::Ended => e.item,
            };
            if from_item < e.plan.items.len() && e.outcome == Outcome::Preempted {
                tracing::info!(airing = %key, from_item, "to continue after the bulletin");
                self.resume = Some(Resume {
                    plan: e.plan,
                    from_item,
                    part: e.part,
                });
            }
        }
    }

    /// Airing `repeat` of `id` is accounted for (journaled or held), started at `started`.
    fn note(&mut self, id: &BulletinId, repeat: u32, started: DateTime<Utc>) {
        self.aired.note(&id.to_hex(), repeat);
        if let Some(w) = self.waiting.iter_mut().find(|w| w.p.id == *id)
            && w.p.next_repeat <= repeat
        {
            w.p.next_repeat = repeat + 1;
            w.p.last_started = Some(started);
        }
        self.waiting.retain(|w| w.p.next_repeat <= w.p.count);
        self.promises
            .retain(|p| !(p.id == *id && p.repeat <= repeat));
    }

    /// One pass: carry out what is due, decide over the pending bulletins, act. Returns when
    /// to look again.
    pub(super) fn pass(
        &mut self,
        air: &mut Air<'_>,
    ) -> Result<Option<DateTime<Utc>>, StationError> {
        let now = air.now;
        if self.waiting.is_empty() && self.resume.is_none() && self.promises.is_empty() {
            return Ok(None);
        }
        // A cut in progress: the player's `Finished` wakes the loop.
        if air
            .inflight
            .on_air
            .as_ref()
            .is_some_and(|a| a.ending.is_some())
        {
            return Ok(None);
        }
        let mut wake: Option<DateTime<Utc>> = None;
        let mut wake_at = |t: DateTime<Utc>| {
            wake = Some(wake.map_or(t, |w: DateTime<Utc>| w.min(t)));
        };
        match air.inflight.on_air.as_ref() {
            None => {
                if let Some(i) = self.promises.iter().position(|_| true) {
                    // Any promise is due on a free air: its cut is over, its session or item ended.
                    let p = self.promises.remove(i);
                    if let When::Boundary { key, .. } | When::After { key } = &p.when
                        && let Some(w) = self.waiting.iter().find(|w| w.p.id == p.id)
                    {
                        let secs = w.p.duration_ms as f64 / 1000.0;
                        self.added.push((key.clone(), secs));
                    }
                    self.start_bulletin(p.id, p.repeat, air)?;
                } else if let Some(r) = self.resume.take() {
                    self.start_continuation(r, air)?;
                }
            }
            Some(a) if a.bulletin.is_none() => {
                let key = a.key.clone();
                let due = self.promises.iter().find_map(|p| match &p.when {
                    When::Boundary {
                        key: k,
                        at,
                        next_item,
                    } if *k == key => Some((*at, *next_item, p.id)),
                    _ => None,
                });
                if let Some((at, next_item, id)) = due {
                    let cut_at = at + Duration::milliseconds(BOUNDARY_MARGIN_MS);
                    if now >= cut_at {
                        self.cut(
                            air,
                            format!(
                                "interrupted at an item boundary for priority bulletin {}; it goes on after it",
                                id.to_hex()
                            ),
                            Some(From::Item(next_item)),
                        );
                        return Ok(None);
                    }
                    wake_at(cut_at);
                }
            }
            Some(_) => {}
        }
        if self.waiting.is_empty() {
            return Ok(wake);
        }
        let on_air = self.on_air(air);
        let promised: Vec<(BulletinId, u32)> =
            self.promises.iter().map(|p| (p.id, p.repeat)).collect();
        let pending: Vec<Pending> = self.waiting.iter().map(|w| w.p.clone()).collect();
        let cancelled: Vec<BulletinId> = self.cancelled.iter().map(|(c, _)| *c).collect();
        let sessions: Vec<Session> = air
            .plan
            .iter()
            .filter(|p| p.at.with_timezone(&Utc) >= now && !air.inflight.accounted(&p.key()))
            .map(|p| Session {
                key: p.key(),
                at: p.at.with_timezone(&Utc),
                ends_at: p.at.with_timezone(&Utc) + secs(p.planned_secs),
            })
            .collect();
        let rules = StationRules::of(air.station);
        let decision = airing::decide(&airing::Input {
            now,
            on_air: &on_air,
            pending: &pending,
            cancelled: &cancelled,
            sessions: &sessions,
            rules: &rules,
        });
        if let Some(t) = decision.wake_at {
            wake_at(t);
        }
        for action in decision.actions {
            match action {
                // The decision starts only on an idle air.
                Action::Start { id, repeat }
                    if !promised.contains(&(id, repeat)) && air.inflight.on_air.is_none() =>
                {
                    self.start_bulletin(id, repeat, air)?;
                }
                Action::CutIn {
                    id,
                    repeat,
                    preempted,
                    ..
                } if !promised.contains(&(id, repeat)) => {
                    let resume = match &preempted {
                        Preempted::Scheduled { resume: true, .. } => Some(From::Ended),
                        _ => None,
                    };
                    tracing::warn!(bulletin = %id.to_hex(), repeat, ?preempted, "emergency bulletin cuts in");
                    self.cut(
                        air,
                        format!("preempted by emergency bulletin {}", id.to_hex()),
                        resume,
                    );
                    self.promises.push(Promise {
                        id,
                        repeat,
                        when: When::Now,
                    });
                }
                Action::AtBoundary {
                    id,
                    repeat,
                    key,
                    at,
                } if !promised.contains(&(id, repeat)) => {
                    let next_item = air.inflight.on_air.as_ref().map_or(0, |a| a.item.0 + 1);
                    tracing::info!(bulletin = %id.to_hex(), repeat, airing = %key, %at, "priority bulletin at the item boundary");
                    wake_at(at + Duration::milliseconds(BOUNDARY_MARGIN_MS));
                    self.promises.push(Promise {
                        id,
                        repeat,
                        when: When::Boundary { key, at, next_item },
                    });
                }
                Action::AfterSession {
                    id,
                    repeat,
                    key,
                    at,
                } if !promised.contains(&(id, repeat)) => {
                    tracing::info!(bulletin = %id.to_hex(), repeat, airing = %key, %at, "bulletin after the session");
                    self.promises.push(Promise {
                        id,
                        repeat,
                        when: When::After { key },
                    });
                }
                Action::Stop { id, repeat } => {
                    if let Some(a) = air.inflight.on_air.as_mut()
                        && a.bulletin
                            .as_ref()
                            .is_some_and(|b| b.id == id && b.repeat == repeat)
                    {
                        a.ending = Some((
                            Outcome::Partial,
                            ReasonCode::BulletinCancelled,
                            "cancelled by the centre while on air".into(),
                        ));
                        let key = a.key.clone();
                        let _g = a.span.enter();
                        tracing::warn!("bulletin cancelled on air: fading out");
                        if let Err(e) = air.player.stop(&key) {
                            tracing::error!("player: {e}");
                        }
                    }
                }
                Action::Drop { id, from, to, code } => {
                    self.promises.retain(|p| p.id != id);
                    self.drop_airings(air, id, from, to, code)?;
                }
                _ => {}
            }
        }
        Ok(wake)
    }

    /// What is on air, as the airing decision sees it.
    fn on_air(&self, air: &Air<'_>) -> airing::OnAir {
        let Some(a) = air.inflight.on_air.as_ref() else {
            return airing::OnAir::Idle;
        };
        let started = a
            .started_at
            .unwrap_or(a.plan.at.with_timezone(&Utc).max(air.now));
        if let Some(b) = &a.bulletin {
            return airing::OnAir::Bulletin {
                id: b.id,
                repeat: b.repeat,
                priority: b.priority,
                ends_at: started + secs(a.plan.planned_secs),
            };
        }
        let (index, item_started) = a.item;
        let item_started = item_started.unwrap_or(started);
        let item_secs = a
            .plan
            .items
            .get(index)
            .and_then(|p| match air.catalog.files.get(p) {
                Some(AudioFacts::Playable { duration_secs }) => Some(*duration_secs),
                _ => None,
            })
            .unwrap_or(a.plan.planned_secs);
        let first = a
            .resumed
            .as_ref()
            .and_then(|r| r.started_at)
            .unwrap_or(started);
        let added: f64 = self
            .added
            .iter()
            .filter(|(k, _)| *k == a.key)
            .map(|(_, s)| s)
            .sum::<f64>()
            + self
                .promises
                .iter()
                .filter(|p| matches!(&p.when, When::Boundary { key, .. } | When::After { key } if *key == a.key))
                .filter_map(|p| self.waiting.iter().find(|w| w.p.id == p.id))
                .map(|w| w.p.duration_ms as f64 / 1000.0)
                .sum::<f64>();
        airing::OnAir::Scheduled(airing::ScheduledOnAir {
            key: a.key.clone(),
            priority: a.plan.priority,
            started_at: first,
            item_ends_at: item_started + secs(item_secs),
            ends_at: first + secs(a.plan.planned_secs.min(f64::from(a.plan.max_secs)) + added),
            added_secs: added,
        })
    }

    /// Fade out what is on air for a bulletin: recorded `preempted` (`preempted.higher_priority`);
    /// a scheduled airing continues `from` where said after the bulletin.
    fn cut(&mut self, air: &mut Air<'_>, why: String, from: Option<From>) {
        let Some(a) = air.inflight.on_air.as_mut() else {
            return;
        };
        a.ending = Some((Outcome::Preempted, ReasonCode::PreemptedHigherPriority, why));
        let key = a.key.clone();
        if a.bulletin.is_none() {
            self.cutting = Some(Cutting {
                key: key.clone(),
                from,
            });
        }
        let _g = a.span.enter();
        if let Err(e) = air.player.preempt(&key) {
            tracing::error!("player: {e}");
        }
    }

    /// The made-up plan of airing `repeat` of `w` (due at `due`).
    fn plan_of(w: &Waiting, station: &Station, due: DateTime<Utc>) -> PlannedAiring {
        let secs_f = w.p.duration_ms as f64 / 1000.0;
        PlannedAiring {
            station: station.id.as_str().into(),
            slot: BULLETIN_SLOT.into(),
            program: None,
            category: BULLETIN_SLOT.into(),
            at: due.with_timezone(&station.timezone).fixed_offset(),
            items: vec![w.audio.clone()].into(),
            planned_secs: secs_f,
            priority: w.p.priority,
            start: StartPolicy::Hard,
            grace_secs: 0,
            // The audio's whole length (as the centre measured it) and a margin: never cut short.
            max_secs: (secs_f.ceil() as u32).saturating_add(5),
            relay: None,
        }
    }

    fn start_bulletin(
        &mut self,
        id: BulletinId,
        repeat: u32,
        air: &mut Air<'_>,
    ) -> Result<(), StationError> {
        let Some(w) = self.waiting.iter().find(|w| w.p.id == id).cloned() else {
            return Ok(());
        };
        if self.accounted(air.inflight, &id, repeat) {
            self.note(&id, repeat, air.now);
            return Ok(());
        }
        let key = crate::bulletin::occurrence_key(&id.to_hex(), repeat);
        let due = w.p.due_at().min(air.now);
        let plan = Self::plan_of(&w, air.station, due);
        let b = BulletinAiring {
            id,
            repeat,
            synthetic: w.synthetic,
            priority: w.p.priority,
        };
        tracing::info!(bulletin = %id.to_hex(), repeat, title = %w.title, "airing the bulletin");
        let r = air.inflight.start_airing(
            plan,
            Extra {
                key: Some(key),
                bulletin: Some(b),
                resumed: None,
            },
            air.now,
            air.player,
        );
        if r.is_err() {
            // Recorded `failed` at once.
            self.note(&id, repeat, air.now);
        }
        r
    }

    fn start_continuation(&mut self, r: Resume, air: &mut Air<'_>) -> Result<(), StationError> {
        let mut plan = r.plan.clone();
        plan.items = r.plan.items[r.from_item..].to_vec().into();
        tracing::info!(airing = %plan.key(), from_item = r.from_item, "continuing the airing a bulletin interrupted");
        air.inflight.start_airing(
            plan,
            Extra {
                key: Some(r.plan.key()),
                bulletin: None,
                resumed: Some(r.part),
            },
            air.now,
            air.player,
        )
    }

    /// Journal airings `from..=to` of `id` as `skipped` with `code`.
    fn drop_airings(
        &mut self,
        air: &mut Air<'_>,
        id: BulletinId,
        from: u32,
        to: u32,
        code: crate::bulletin::RefusalCode,
    ) -> Result<(), StationError> {
        let Some(w) = self.waiting.iter().find(|w| w.p.id == id).cloned() else {
            return Ok(());
        };
        let times = w.p.repeat_times();
        // The airing on air (being stopped) is recorded when it ends.
        let on_air = air
            .inflight
            .on_air
            .as_ref()
            .and_then(|a| a.bulletin.as_ref())
            .filter(|b| b.id == id)
            .map(|b| b.repeat);
        for repeat in from..=to {
            if on_air == Some(repeat) || self.accounted(air.inflight, &id, repeat) {
                continue;
            }
            let due = times
                .iter()
                .find(|(r, _)| *r == repeat)
                .map_or(w.p.due_at(), |(_, t)| *t);
            let plan = Self::plan_of(&w, air.station, due);
            let key = crate::bulletin::occurrence_key(&id.to_hex(), repeat);
            let mut rec = unaired_record(
                &plan,
                Outcome::Skipped,
                (
                    code.reason(),
                    format!(
                        "bulletin {} airing {repeat} not aired: {}",
                        id.to_hex(),
                        code.as_str()
                    ),
                ),
                air.now,
            );
            let b = BulletinAiring {
                id,
                repeat,
                synthetic: w.synthetic,
                priority: w.p.priority,
            };
            name_bulletin(&mut rec, &key, &b);
            tracing::warn!(bulletin = %id.to_hex(), repeat, code = code.as_str(), "bulletin airing dropped");
            air.inflight.append(rec)?;
            self.aired.note(&id.to_hex(), repeat);
        }
        self.waiting.retain(|w| w.p.id != id);
        Ok(())
    }
}

fn secs(s: f64) -> Duration {
    Duration::milliseconds((s * 1000.0).round() as i64)
}
