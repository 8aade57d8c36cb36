//! The station's commands to a player: cue, stop, preempt, shut down. Both players answer in the
//! player's own vocabulary ([`PlayerEvent`], tagged with the airing id, reason codes included),
//! which the daemon journals as it is: the real player (`player::Player`, [`PlayerPlayout`]) and
//! [`TimerPlayout`], a silent stand-in that only keeps time.
//!
//! A cue's source is its files or, with a `relay`, the upstream (its items the fallback
//! playlist), aired through the player's relay session; its `Finished` carries the relay's report.
//!
//! The daemon sets a start gate ([`Playout::set_start_gate`]) asked right before each airing's
//! first sample; a refusal ends the airing `failed` with nothing aired.
//!
//! **Invariant:** every cued airing gets exactly one [`PlayerEvent::Finished`].

pub use crate::player::PlayerEvent;
use crate::player::{Cause, PlayOutcome};
use crate::schedule::{PlannedAiring, RelaySpec};
use crate::wire::AiredItem;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

/// A session to air.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub airing_id: String,
    /// Absolute paths, played back to back.
    pub items: Vec<PathBuf>,
    /// Hard stop after the first sample.
    pub max_secs: Option<f64>,
    /// When the first sample must be heard (at once if past).
    pub start_at: DateTime<Utc>,
    /// A relay slot: relay this upstream for its window; `items` are its fallback playlist.
    pub relay: Option<RelaySpec>,
}

/// How far ahead of its instant the daemon should hand airings to the player now: long enough
/// for a relay due next to pre-connect ([`crate::relay::DEFAULT_PRECONNECT_SECS`]), else
/// `default_ms`. `done(key)`: already accounted for.
pub fn lead_ms(
    plan: &[PlannedAiring],
    done: &dyn Fn(&str) -> bool,
    now: DateTime<Utc>,
    default_ms: i64,
) -> i64 {
    let relay_ms = crate::relay::DEFAULT_PRECONNECT_SECS as i64 * 1000;
    let soon = plan.iter().any(|p| {
        let to_go = (p.at.with_timezone(&Utc) - now).num_milliseconds();
        // Looking further than the lead itself, so the daemon's wake-up is computed with it.
        p.relay.is_some()
            && to_go > 0
            && to_go <= relay_ms + super::MAX_SLEEP_MS * 2
            && !done(&p.key())
    });
    if soon {
        default_ms.max(relay_ms)
    } else {
        default_ms
    }
}

/// Commands to a player.
pub trait Playout: Send {
    /// Queue `cue`.
    fn cue(&self, cue: Cue) -> Result<(), String>;
    /// Fade out and end `airing_id`.
    fn stop(&self, airing_id: &str) -> Result<(), String>;
    /// Fade out `airing_id` for a higher-priority airing (outcome `preempted`).
    fn preempt(&self, airing_id: &str) -> Result<(), String>;
    /// Ask `gate` right before the first sample of every airing (see
    /// [`crate::player::StartGate`]); a refusal ends the airing `failed`, unaired.
    fn set_start_gate(&self, gate: crate::player::StartGate) -> Result<(), String>;
    /// Normalise airings cued from now on to `target` (a schedule version's `[loudness]`); an
    /// airing already cued keeps its level. The timer stand-in plays nothing: it ignores it.
    fn set_loudness(&self, target: crate::schedule::LoudnessTarget) -> Result<(), String> {
        let _ = target;
        Ok(())
    }
    /// Stop everything and join the player threads.
    fn shutdown(&self);
    /// Output backend name for heartbeats and records.
    fn output_name(&self) -> String;
}

enum TimerCmd {
    Cue(Cue),
    Stop(String, PlayOutcome),
    Gate(crate::player::StartGate),
    Shutdown,
}

/// A silent stand-in player: "airs" each item for its probed duration in real time, hashes the
/// files, and reports no evidence (nothing was metered). Used for `--output timer`.
pub struct TimerPlayout {
    tx: SyncSender<TimerCmd>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl TimerPlayout {
    /// Start the stand-in player thread.
    pub fn spawn() -> Result<(Self, Receiver<PlayerEvent>), String> {
        let (tx, rx) = sync_channel::<TimerCmd>(64);
        let (etx, erx) = sync_channel::<PlayerEvent>(crate::player::EVENT_QUEUE);
        let th = std::thread::Builder::new()
            .name("loa-timer-play".into())
            .spawn(move || timer_loop(rx, etx))
            .map_err(|e| e.to_string())?;
        Ok((
            Self {
                tx,
                thread: std::sync::Mutex::new(Some(th)),
            },
            erx,
        ))
    }
}

/// `Finished` for a timer airing: the code from `cause`, as the player decides it.
fn timer_finished(
    airing_id: String,
    outcome: PlayOutcome,
    aired_secs: f64,
    items: Vec<AiredItem>,
    why: Option<(Cause, String)>,
) -> PlayerEvent {
    PlayerEvent::Finished {
        airing_id,
        outcome,
        aired_secs,
        items,
        evidence: None,
        reason_code: outcome.reason_code(why.as_ref().map(|w| &w.0)),
        reason: why.map(|w| w.1),
        relay: None,
    }
}

fn timer_loop(rx: Receiver<TimerCmd>, etx: SyncSender<PlayerEvent>) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut queue: std::collections::VecDeque<Cue> = Default::default();
    let mut gate: Option<crate::player::StartGate> = None;
    loop {
        let Some(cue) = queue.pop_front() else {
            match rx.recv() {
                Ok(TimerCmd::Cue(c)) => queue.push_back(c),
                Ok(TimerCmd::Gate(g)) => gate = Some(g),
                Ok(TimerCmd::Stop(..)) => {}
                Ok(TimerCmd::Shutdown) | Err(_) => return,
            }
            continue;
        };
        // Probe and hash before the start instant.
        let mut items: Vec<AiredItem> = cue
            .items
            .iter()
            .map(|p| AiredItem {
                path: p.display().to_string(),
                sha256: crate::media::sha256_file(p).unwrap_or_default(),
                duration_secs: crate::media::probe(p)
                    .map(|f| f.duration_secs)
                    .unwrap_or(0.0),
                aired_secs: 0.0,
            })
            .collect();
        let finish = |outcome, aired: f64, items: Vec<AiredItem>, why: Option<(Cause, String)>| {
            timer_finished(cue.airing_id.clone(), outcome, aired, items, why)
        };
        // Wait for the start instant (re-reading the wall clock, so a step is honoured).
        let mut ended: Option<(PlayOutcome, Cause, String)> = None;
        loop {
            let wait = (cue.start_at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                break;
            }
            match rx.recv_timeout(wait.min(Duration::from_millis(500))) {
                Ok(TimerCmd::Cue(c)) => queue.push_back(c),
                Ok(TimerCmd::Gate(g)) => gate = Some(g),
                Ok(TimerCmd::Stop(id, o)) if id == cue.airing_id => {
                    ended = Some((o, Cause::Other, "stopped before the first sample".into()));
                    break;
                }
                Ok(TimerCmd::Stop(..)) | Err(RecvTimeoutError::Timeout) => {}
                Ok(TimerCmd::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    ended = Some((
                        PlayOutcome::Stopped,
                        Cause::Shutdown,
                        "player shut down".into(),
                    ));
                    break;
                }
            }
        }
        if ended.is_none()
            && let Some(g) = &gate
            && let Err(why) = g(&cue.airing_id, Utc::now())
        {
            ended = Some((PlayOutcome::Failed, Cause::Coded(why.code), why.reason));
        }
        if let Some((o, c, r)) = ended {
            let _ = etx.send(finish(o, 0.0, items, Some((c, r))));
            continue;
        }
        let t0 = std::time::Instant::now();
        let _ = etx.send(PlayerEvent::Started {
            airing_id: cue.airing_id.clone(),
            at: Utc::now(),
        });
        let limit = cue.max_secs.unwrap_or(f64::INFINITY);
        let mut outcome: (PlayOutcome, Option<(Cause, String)>) = (PlayOutcome::Complete, None);
        let mut shutdown = false;
        'items: for (i, item) in items.iter_mut().enumerate() {
            let _ = etx.send(PlayerEvent::ItemStarted {
                airing_id: cue.airing_id.clone(),
                index: i,
                at: Utc::now(),
            });
            if item.sha256.is_empty() {
                outcome = (
                    PlayOutcome::Partial,
                    Some((Cause::FileMissing, format!("{}: cannot read", item.path))),
                );
                continue;
            }
            let item_t0 = t0.elapsed().as_secs_f64();
            let end = (item_t0 + item.duration_secs).min(limit);
            loop {
                let el = t0.elapsed().as_secs_f64();
                item.aired_secs = (el - item_t0).max(0.0);
                if el >= end {
                    if end >= limit && el < item_t0 + item.duration_secs {
                        outcome = (
                            PlayOutcome::HardStopped,
                            Some((Cause::HardStop, format!("hard stop at {limit} s"))),
                        );
                        break 'items;
                    }
                    item.aired_secs = item.duration_secs;
                    break;
                }
                match rx.recv_timeout(Duration::from_secs_f64((end - el).min(0.5))) {
                    Ok(TimerCmd::Cue(c)) => queue.push_back(c),
                    Ok(TimerCmd::Gate(g)) => gate = Some(g),
                    Ok(TimerCmd::Stop(id, o)) if id == cue.airing_id => {
                        outcome = (o, Some((Cause::Other, "stopped".into())));
                        break 'items;
                    }
                    Ok(TimerCmd::Stop(..)) | Err(RecvTimeoutError::Timeout) => {}
                    Ok(TimerCmd::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                        outcome = (
                            PlayOutcome::Stopped,
                            Some((Cause::Shutdown, "player shut down".into())),
                        );
                        shutdown = true;
                        break 'items;
                    }
                }
            }
        }
        let aired = t0.elapsed().as_secs_f64();
        let aired = items
            .iter()
            .map(|i| i.aired_secs)
            .sum::<f64>()
            .min(aired.max(0.0));
        let ok_items = items.iter().filter(|i| !i.sha256.is_empty()).count();
        let outcome = if ok_items == 0 {
            (
                PlayOutcome::Failed,
                Some((Cause::NoPlayableItems, "no item could be read".into())),
            )
        } else {
            outcome
        };
        let _ = etx.send(finish(outcome.0, aired, items, outcome.1));
        if shutdown {
            for c in queue.drain(..) {
                let _ = etx.send(timer_finished(
                    c.airing_id,
                    PlayOutcome::Stopped,
                    0.0,
                    vec![],
                    Some((Cause::Shutdown, "player shut down".into())),
                ));
            }
            return;
        }
    }
}

impl Playout for TimerPlayout {
    fn cue(&self, cue: Cue) -> Result<(), String> {
        self.tx
            .send(TimerCmd::Cue(cue))
            .map_err(|_| "player gone".to_string())
    }
    fn stop(&self, airing_id: &str) -> Result<(), String> {
        self.tx
            .send(TimerCmd::Stop(airing_id.into(), PlayOutcome::Stopped))
            .map_err(|_| "player gone".to_string())
    }
    fn preempt(&self, airing_id: &str) -> Result<(), String> {
        self.tx
            .send(TimerCmd::Stop(airing_id.into(), PlayOutcome::Preempted))
            .map_err(|_| "player gone".to_string())
    }
    fn set_start_gate(&self, gate: crate::player::StartGate) -> Result<(), String> {
        self.tx
            .send(TimerCmd::Gate(gate))
            .map_err(|_| "player gone".to_string())
    }
    fn shutdown(&self) {
        let _ = self.tx.send(TimerCmd::Shutdown);
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
    fn output_name(&self) -> String {
        "timer".into()
    }
}

/// The real player (`player::Player`) behind the station's [`Playout`] view.
pub struct PlayerPlayout {
    handle: crate::player::PlayerHandle,
    name: String,
}

impl PlayerPlayout {
    /// Start the player on `output` (`device`, `device:NAME`, `wav:PATH`, `null`, publishing
    /// to Icecast when `output.publish` is set); its events are the daemon's.
    pub fn spawn(
        output: crate::output::OutputConfig,
        loudness: crate::loudness::LoudnessSettings,
    ) -> Result<(Self, Receiver<PlayerEvent>), String> {
        let name = output
            .spec
            .split(':')
            .next()
            .unwrap_or(&output.spec)
            .to_string();
        let cfg = crate::player::PlayerConfig::new(output, loudness);
        let (handle, rx) = crate::player::Player::spawn(cfg).map_err(|e| e.to_string())?;
        Ok((Self { handle, name }, rx))
    }
}

impl Playout for PlayerPlayout {
    fn cue(&self, cue: Cue) -> Result<(), String> {
        let session = crate::player::Session {
            airing_id: cue.airing_id,
            items: cue.items,
            max_secs: cue.max_secs,
            start_at: cue.start_at,
        };
        match cue.relay {
            Some(spec) => {
                let mut cfg = crate::relay::RelayConfig::from_spec(&spec, session.items.clone());
                // The relay ends itself, sample-exact, at the window (never past the slot's
                // hard stop); the player's own hard stop would fade its last half second.
                if let Some(max) = session.max_secs.filter(|m| m.is_finite() && *m > 0.0) {
                    cfg.window = cfg.window.min(std::time::Duration::from_secs_f64(max));
                }
                let session = crate::player::Session {
                    max_secs: None,
                    ..session
                };
                self.handle.load_relay(session, cfg)
            }
            None => self.handle.load(session),
        }
        .map_err(|e| e.to_string())
    }
    fn stop(&self, airing_id: &str) -> Result<(), String> {
        self.handle.stop(airing_id).map_err(|e| e.to_string())
    }
    fn preempt(&self, airing_id: &str) -> Result<(), String> {
        self.handle.preempt(airing_id).map_err(|e| e.to_string())
    }
    fn set_start_gate(&self, gate: crate::player::StartGate) -> Result<(), String> {
        self.handle.set_start_gate(gate).map_err(|e| e.to_string())
    }
    fn set_loudness(&self, target: crate::schedule::LoudnessTarget) -> Result<(), String> {
        self.handle
            .set_loudness_target(target.integrated_lufs, target.max_true_peak_dbtp)
            .map_err(|e| e.to_string())
    }
    fn shutdown(&self) {
        let _ = self.handle.shutdown();
    }
    fn output_name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Priority, StartPolicy};
    use chrono::TimeZone;

    fn airing(slot: &str, at: DateTime<Utc>, relay: bool) -> PlannedAiring {
        PlannedAiring {
            station: "p".into(),
            slot: slot.into(),
            program: None,
            category: "relay".into(),
            at: at.fixed_offset(),
            items: Vec::new().into(),
            planned_secs: 60.0,
            priority: Priority::Normal,
            start: StartPolicy::Hard,
            grace_secs: 120,
            max_secs: 60,
            relay: relay.then(|| {
                std::sync::Arc::new(RelaySpec {
                    url: "http://127.0.0.1:8000/city.mp3".into(),
                    minutes: 1,
                    fallback: vec![],
                    silence_threshold_dbfs: -50.0,
                })
            }),
        }
    }

    #[test]
    fn the_lead_grows_to_the_preconnect_time_only_before_a_pending_relay() {
        let now = Utc.with_ymd_and_hms(2019, 3, 4, 22, 30, 0).unwrap();
        let secs = |s: i64| now + chrono::Duration::seconds(s);
        let pre = crate::relay::DEFAULT_PRECONNECT_SECS as i64 * 1000;
        let none = |_: &str| false;
        let check = |plan: &[PlannedAiring], done: &dyn Fn(&str) -> bool, expected: i64| {
            assert_eq!(lead_ms(plan, done, now, 2_000), expected, "{plan:?}");
        };
        check(&[airing("f", secs(4), false)], &none, 2_000);
        check(&[airing("r", secs(4), true)], &none, pre);
        // Far enough ahead that the daemon's next wake-up (≤ 5 s sleeps) still sees it coming.
        check(&[airing("r", secs(12), true)], &none, pre);
        check(&[airing("r", secs(60), true)], &none, 2_000);
        check(&[airing("r", secs(-1), true)], &none, 2_000);
        let r = airing("r", secs(4), true);
        let key = r.key();
        check(&[r], &|k: &str| k == key, 2_000);
    }
}
