//! The scheduler's decisions as a pure function of (plan, journal state, what is on air, now).
//!
//! **Invariant:** an occurrence whose key is in the journal (or on air) is never started again,
//! nor one from before this run's start in a stretch where the previous run's records may be lost
//! ([`Context::unsure_since`]: it may have aired), and
//! every due occurrence that is not started gets exactly one decision that accounts for it
//! (`Miss` or `Skip`, with a reason) — nothing is dropped silently. No I/O, no clock: `now` and
//! what the daemon knows about its own downtime and clock jumps come in through [`Context`].

use crate::reason::ReasonCode;
use crate::schedule::{PlannedAiring, Priority, StartPolicy};
use chrono::{DateTime, Duration, Utc};

/// How far ahead of its instant an airing is handed to the player, so its first sample can be
/// placed on the second (the player pre-rolls and waits for `start_at`).
pub const DEFAULT_LEAD_MS: i64 = 2_000;

/// What is on air, as the scheduler knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct OnAir {
    pub key: String,
    pub slot: String,
    pub priority: Priority,
    pub at: DateTime<Utc>,
}

impl OnAir {
    /// The on-air description of a planned airing.
    pub fn of(p: &PlannedAiring) -> Self {
        Self {
            key: p.key(),
            slot: p.slot.to_string(),
            priority: p.priority,
            at: p.at.with_timezone(&Utc),
        }
    }
}

/// A forward step of the wall clock the daemon observed (wall time moved more than monotonic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockJump {
    /// Wall time the daemon expected (previous reading + monotonic elapsed).
    pub from: DateTime<Utc>,
    /// Wall time it read instead.
    pub to: DateTime<Utc>,
}

/// The clock steps a run has seen, and what they do to the wall times it read at its start (the
/// first plan window's floor and `Context::started_at`).
///
/// A clock stepped back by Δ had been Δ ahead, so the run's start lies Δ earlier on the corrected
/// clock: the stretch the clock replays came after the start and is owed (what is planned in it
/// airs), not "before the first start". A step forward does not move them up again: what it
/// skipped over is owed too (`missed`, "clock jumped forward"). So the start-up times follow the
/// lowest net step seen, and back-and-forth steps (a flapping time source) move them back at
/// most by the largest net step back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClockSteps {
    net: Duration,
    lowest: Duration,
}

impl ClockSteps {
    /// Note a step of `by` (negative: back). Returns how far the start-up wall times move
    /// (zero or negative).
    pub fn step(&mut self, by: Duration) -> Duration {
        self.net += by;
        let shift = (self.net - self.lowest).min(Duration::zero());
        self.lowest += shift;
        shift
    }
}

/// What the daemon knows besides the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub now: DateTime<Utc>,
    /// Wall time at which this process began scheduling.
    pub started_at: DateTime<Utc>,
    /// Last wall time the previous run was known alive (its `alive` mark), if any.
    pub down_since: Option<DateTime<Utc>>,
    /// From this instant on the previous run's records may be lost (its state file was
    /// unreadable, or it held more records than the file holds) with why: a missing record is
    /// then no proof that the station was down, and the reason says so instead.
    pub unsure_since: Option<(DateTime<Utc>, String)>,
    /// Forward clock jumps observed by this process.
    pub jumps: Vec<ClockJump>,
    pub lead_ms: i64,
}

/// One decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand plan item `idx` to the player now; it starts at its instant or at once if late.
    Start { idx: usize },
    /// Fade out what is on air (logged `preempted` by item `by`), then start item `by`.
    Preempt { current: String, by: usize },
    /// Log item `idx` as `missed`, for `reason` (its code, and the English detail).
    Miss {
        idx: usize,
        code: ReasonCode,
        reason: String,
    },
    /// Log item `idx` as `skipped`, for `reason` (its code, and the English detail).
    Skip {
        idx: usize,
        code: ReasonCode,
        reason: String,
    },
}

/// Decisions plus when to ask again (absent a player event).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub wake_at: Option<DateTime<Utc>>,
}

fn secs(d: Duration) -> i64 {
    d.num_seconds()
}

/// The `Miss` of item `idx`, at `at`: why it passed unaired.
fn miss(idx: usize, at: DateTime<Utc>, ctx: &Context) -> Action {
    let (code, reason) = miss_reason(at, ctx);
    Action::Miss { idx, code, reason }
}

/// Why an occurrence at `at` passed unaired (code, English detail).
fn miss_reason(at: DateTime<Utc>, ctx: &Context) -> (ReasonCode, String) {
    if let Some(j) = ctx.jumps.iter().find(|j| at > j.from && at <= j.to) {
        let why = format!(
            "clock jumped forward by {} s (from {} to {}) past its start",
            secs(j.to - j.from),
            j.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            j.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        return (ReasonCode::MissedClockJump, why);
    }
    if at < ctx.started_at
        && let Some((u, why)) = &ctx.unsure_since
        && at >= *u
    {
        let why = format!(
            "not known whether it aired: the previous run's records since {} were not all kept \
             ({why}); restarted {}",
            u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ctx.started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        return (ReasonCode::MissedRecordLost, why);
    }
    if at < ctx.started_at {
        let why = match ctx.down_since {
            Some(d) => format!(
                "station was down (last alive {}, restarted {})",
                d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ctx.started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => format!(
                "station was down (restarted {})",
                ctx.started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        };
        return (ReasonCode::MissedStationDown, why);
    }
    (
        ReasonCode::MissedStartTooLate,
        format!(
            "station could not start it in time (late by {} s)",
            secs(ctx.now - at)
        ),
    )
}

/// Decide what to do now. `done(key)` tells whether the journal already accounts for an
/// occurrence. `plan` may be in any order; indices in actions refer to it.
pub fn decide(
    plan: &[PlannedAiring],
    done: &dyn Fn(&str) -> bool,
    on_air: Option<&OnAir>,
    ctx: &Context,
) -> Decision {
    let now = ctx.now;
    let lead = Duration::milliseconds(ctx.lead_ms);
    let mut air = on_air.cloned();
    let mut actions = Vec::new();
    let mut wake_at: Option<DateTime<Utc>> = None;
    let mut wake = |t: DateTime<Utc>| {
        wake_at = Some(wake_at.map_or(t, |w: DateTime<Utc>| w.min(t)));
    };
    let mut due: Vec<(usize, &PlannedAiring, DateTime<Utc>, String)> = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let key = p.key();
        if done(&key) || air.as_ref().is_some_and(|a| a.key == key) {
            continue;
        }
        let at = p.at.with_timezone(&Utc);
        if at - lead <= now {
            due.push((i, p, at, key));
        } else {
            wake(at - lead);
        }
    }
    // Highest priority first, then earliest.
    due.sort_by(|a, b| b.1.priority.cmp(&a.1.priority).then(a.2.cmp(&b.2)));
    for (i, p, at, key) in due {
        let late = now - at;
        let grace = Duration::seconds(i64::from(p.grace_secs));
        // The previous run may have aired it and its record is lost: never start it again.
        if at < ctx.started_at && ctx.unsure_since.as_ref().is_some_and(|(u, _)| at >= *u) {
            actions.push(miss(i, at, ctx));
            continue;
        }
        if late > grace {
            match &air {
                Some(a) if a.at <= at => actions.push(Action::Skip {
                    idx: i,
                    code: ReasonCode::SkippedAirBusy,
                    reason: format!(
                        "air busy with {} ({:?}) for more than the {} s grace",
                        a.key, a.priority, p.grace_secs
                    ),
                }),
                _ => actions.push(miss(i, at, ctx)),
            }
            continue;
        }
        match &air {
            None => {
                actions.push(Action::Start { idx: i });
                air = Some(OnAir::of(p));
            }
            Some(a) if p.priority > a.priority && p.start == StartPolicy::Hard => {
                if at > now {
                    // Preempt on the second, not during the lead.
                    wake(at);
                    continue;
                }
                actions.push(Action::Preempt {
                    current: a.key.clone(),
                    by: i,
                });
                air = Some(OnAir::of(p));
            }
            Some(_) if p.start == StartPolicy::Soft => {
                // Wait for the air to free up (a player event wakes us) or the grace to run out.
                wake(at + grace + Duration::milliseconds(1));
            }
            Some(a) => {
                if at > now {
                    wake(at);
                    continue;
                }
                actions.push(Action::Skip {
                    idx: i,
                    code: ReasonCode::SkippedOverlap,
                    reason: format!(
                        "hard start overlaps {} of {} priority",
                        a.key,
                        if p.priority == a.priority {
                            "equal"
                        } else {
                            "higher"
                        }
                    ),
                });
                let _ = key;
            }
        }
    }
    Decision { actions, wake_at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use chrono::{FixedOffset, TimeZone};
    use std::collections::HashSet;
    use std::path::PathBuf;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        // 2019-03-04 local (UTC+7) h:m:s, as UTC.
        FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(2019, 3, 4, h, m, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn airing(slot: &str, at: DateTime<Utc>, prio: Priority, start: StartPolicy) -> PlannedAiring {
        PlannedAiring {
            station: "w".into(),
            slot: slot.into(),
            program: None,
            category: "news".into(),
            at: at.with_timezone(&FixedOffset::east_opt(7 * 3600).unwrap()),
            items: vec![PathBuf::from("a.wav")].into(),
            planned_secs: 60.0,
            priority: prio,
            start,
            grace_secs: 120,
            max_secs: 600,
            relay: None,
        }
    }

    fn ctx(now: DateTime<Utc>, started: DateTime<Utc>) -> Context {
        Context {
            now,
            started_at: started,
            down_since: None,
            unsure_since: None,
            jumps: vec![],
            lead_ms: DEFAULT_LEAD_MS,
        }
    }

    /// A tiny simulated daemon: applies decisions to a "journal" set and a count of starts.
    struct Sim {
        plan: Vec<PlannedAiring>,
        journal: HashSet<String>,
        starts: Vec<String>,
        logged: Vec<(String, &'static str, String)>,
    }

    impl Sim {
        fn new(plan: Vec<PlannedAiring>) -> Self {
            Self {
                plan,
                journal: HashSet::new(),
                starts: vec![],
                logged: vec![],
            }
        }
        /// One scheduler pass; airings finish instantly (recorded aired).
        fn step(&mut self, c: &Context) -> Decision {
            let j = self.journal.clone();
            let d = decide(&self.plan, &|k| j.contains(k), None, c);
            for a in &d.actions {
                match a {
                    Action::Start { idx } => {
                        let k = self.plan[*idx].key();
                        self.starts.push(k.clone());
                        self.journal.insert(k);
                    }
                    Action::Miss { idx, code, reason } | Action::Skip { idx, code, reason } => {
                        let k = self.plan[*idx].key();
                        let (what, outcome) = if matches!(a, Action::Miss { .. }) {
                            ("missed", crate::wire::Outcome::Missed)
                        } else {
                            ("skipped", crate::wire::Outcome::Skipped)
                        };
                        // Every reason the scheduler gives has its own code, and a version 1
                        // record (text only) of it reads back as the same code.
                        assert_ne!(*code, ReasonCode::Unknown, "{reason}");
                        assert_eq!(
                            crate::wire::classify(outcome, Some(reason)).as_ref(),
                            Some(code),
                            "{reason}"
                        );
                        self.logged.push((k.clone(), what, reason.clone()));
                        self.journal.insert(k);
                    }
                    Action::Preempt { .. } => unreachable!("nothing on air in Sim"),
                }
            }
            d
        }
    }

    #[test]
    fn waits_until_lead_then_starts_once() {
        let p = vec![airing(
            "m",
            t(5, 30, 0),
            Priority::Normal,
            StartPolicy::Hard,
        )];
        let mut sim = Sim::new(p);
        let d = sim.step(&ctx(t(5, 0, 0), t(4, 0, 0)));
        assert!(d.actions.is_empty());
        assert_eq!(d.wake_at, Some(t(5, 29, 58)));
        let d = sim.step(&ctx(t(5, 29, 58), t(4, 0, 0)));
        assert_eq!(d.actions, vec![Action::Start { idx: 0 }]);
        sim.step(&ctx(t(5, 30, 1), t(4, 0, 0)));
        assert_eq!(sim.starts.len(), 1);
    }

    #[test]
    fn where_the_previous_runs_records_may_be_lost_downtime_is_not_claimed() {
        let p = vec![
            airing("before", t(5, 0, 0), Priority::Normal, StartPolicy::Hard),
            airing("after", t(5, 10, 0), Priority::Normal, StartPolicy::Hard),
            // Within its grace, but the previous run may have aired it: not started again.
            airing(
                "in-grace",
                t(5, 29, 30),
                Priority::Normal,
                StartPolicy::Hard,
            ),
        ];
        let mut sim = Sim::new(p);
        let mut c = ctx(t(5, 30, 0), t(5, 30, 0));
        c.down_since = Some(t(4, 50, 0));
        c.unsure_since = Some((t(5, 5, 0), "state file unreadable".into()));
        let reasons: Vec<String> = sim
            .step(&c)
            .actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Miss { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("station was down"), "{reasons:?}");
        for r in &reasons[1..] {
            assert!(
                r.starts_with("not known whether it aired") && r.contains("state file unreadable"),
                "{reasons:?}"
            );
        }
    }

    #[test]
    fn after_downtime_within_grace_airs_late_older_is_missed_with_reason() {
        let p = vec![
            airing("early", t(5, 0, 0), Priority::Normal, StartPolicy::Hard),
            airing("recent", t(5, 29, 0), Priority::Normal, StartPolicy::Hard),
        ];
        let mut sim = Sim::new(p);
        let mut c = ctx(t(5, 30, 0), t(5, 30, 0));
        c.down_since = Some(t(4, 50, 0));
        let d = sim.step(&c);
        assert_eq!(d.actions.len(), 2);
        assert!(d.actions.contains(&Action::Start { idx: 1 }));
        match d
            .actions
            .iter()
            .find(|a| matches!(a, Action::Miss { .. }))
            .unwrap()
        {
            Action::Miss {
                idx: 0,
                code: ReasonCode::MissedStationDown,
                reason,
            } => {
                assert!(reason.contains("station was down"), "{reason}");
                assert!(reason.contains("2019-03-03T21:50:00Z"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clock_stepped_back_an_hour_and_forward_an_hour_no_double_airing_misses_logged() {
        // Airings every 10 minutes from 05:00 to 08:00.
        let plan: Vec<_> = (0..=18)
            .map(|i| {
                airing(
                    &format!("s{i}"),
                    t(5, 0, 0) + Duration::minutes(10 * i),
                    Priority::Normal,
                    StartPolicy::Hard,
                )
            })
            .collect();
        let n = plan.len();
        let mut sim = Sim::new(plan);
        let clock = ManualClock::new(t(4, 59, 0));
        let started = clock.now();
        let run =
            |sim: &mut Sim, clock: &ManualClock, until: DateTime<Utc>, jumps: &[ClockJump]| {
                while clock.now() < until {
                    let mut c = ctx(clock.now(), started);
                    c.jumps = jumps.to_vec();
                    let d = sim.step(&c);
                    // Sleep until the wake-up, at most 5 s (the daemon's cap), like the daemon.
                    let next = d
                        .wake_at
                        .unwrap_or(until)
                        .min(clock.now() + Duration::seconds(5));
                    clock.set(next.max(clock.now() + Duration::milliseconds(1)));
                }
            };
        run(&mut sim, &clock, t(6, 5, 0), &[]);
        assert_eq!(sim.starts.len(), 7); // 05:00 .. 06:00
        // NTP steps back an hour: 05:05 again. Nothing airs twice.
        clock.advance(Duration::hours(-1));
        run(&mut sim, &clock, t(6, 5, 0), &[]);
        assert_eq!(sim.starts.len(), 7);
        // NTP steps forward an hour: 07:05. 06:10 .. 07:00 are missed (clock jump), not aired.
        let jump = ClockJump {
            from: clock.now(),
            to: clock.now() + Duration::hours(1),
        };
        clock.advance(Duration::hours(1));
        run(&mut sim, &clock, t(8, 1, 0), &[jump]);
        let unique: HashSet<_> = sim.starts.iter().collect();
        assert_eq!(unique.len(), sim.starts.len(), "an occurrence aired twice");
        let missed: Vec<_> = sim.logged.iter().filter(|l| l.1 == "missed").collect();
        assert_eq!(missed.len(), 6, "{:?}", sim.logged); // 06:10..07:00 (07:00 is 5 min late > grace)
        assert!(
            missed
                .iter()
                .all(|m| m.2.contains("clock jumped forward by 3600 s")),
            "{missed:?}"
        );
        // Every occurrence is accounted for exactly once.
        assert_eq!(sim.starts.len() + sim.logged.len(), n);
    }

    #[test]
    fn start_up_times_follow_the_lowest_net_clock_step() {
        let h = Duration::hours(1);
        let mut s = ClockSteps::default();
        assert_eq!(
            s.step(h),
            Duration::zero(),
            "forward: skipped-over stays owed"
        );
        assert_eq!(s.step(-h), Duration::zero(), "back to where it started");
        assert_eq!(
            s.step(-h),
            -h,
            "an hour behind the start: the hour is replayed"
        );
        assert_eq!(s.step(h), Duration::zero());
        assert_eq!(
            s.step(-h),
            Duration::zero(),
            "flapping moves nothing further"
        );
        assert_eq!(s.step(Duration::seconds(-30)), Duration::seconds(-30));
    }

    #[test]
    fn overlaps_follow_priority_and_start_policy() {
        let plan = [
            airing("normal", t(5, 30, 0), Priority::Normal, StartPolicy::Hard),
            airing(
                "urgent",
                t(5, 31, 0),
                Priority::Emergency,
                StartPolicy::Hard,
            ),
            airing("same", t(5, 32, 0), Priority::Emergency, StartPolicy::Hard),
            airing("polite", t(5, 33, 0), Priority::Normal, StartPolicy::Soft),
        ];
        let none = |_: &str| false;
        let normal = OnAir::of(&plan[0]);
        // Emergency hard start preempts the normal airing on the second.
        let d = decide(
            &plan[..2],
            &|k| k == plan[0].key(),
            Some(&normal),
            &ctx(t(5, 30, 59), t(5, 0, 0)),
        );
        assert!(d.actions.is_empty());
        assert_eq!(d.wake_at, Some(t(5, 31, 0)));
        let d = decide(
            &plan[..2],
            &|k| k == plan[0].key(),
            Some(&normal),
            &ctx(t(5, 31, 0), t(5, 0, 0)),
        );
        assert_eq!(
            d.actions,
            vec![Action::Preempt {
                current: plan[0].key(),
                by: 1
            }]
        );
        // Equal priority hard start while urgent is on air: skipped with reason.
        let urgent = OnAir::of(&plan[1]);
        let d = decide(
            &plan[2..3],
            &none,
            Some(&urgent),
            &ctx(t(5, 32, 0), t(5, 0, 0)),
        );
        match &d.actions[..] {
            [
                Action::Skip {
                    idx: 0,
                    code: ReasonCode::SkippedOverlap,
                    reason,
                },
            ] => {
                assert!(reason.contains("equal priority"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // Soft start waits within grace, starts when the air is free, is skipped past grace.
        let d = decide(
            &plan[3..],
            &none,
            Some(&urgent),
            &ctx(t(5, 34, 0), t(5, 0, 0)),
        );
        assert!(d.actions.is_empty());
        assert_eq!(d.wake_at, Some(t(5, 35, 0) + Duration::milliseconds(1)));
        let d = decide(&plan[3..], &none, None, &ctx(t(5, 34, 30), t(5, 0, 0)));
        assert_eq!(d.actions, vec![Action::Start { idx: 0 }]);
        let d = decide(
            &plan[3..],
            &none,
            Some(&urgent),
            &ctx(t(5, 35, 1), t(5, 0, 0)),
        );
        match &d.actions[..] {
            [
                Action::Skip {
                    idx: 0,
                    code: ReasonCode::SkippedAirBusy,
                    reason,
                },
            ] => assert!(reason.contains("air busy"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_due_at_once_higher_priority_first_the_other_waits_or_is_skipped() {
        let plan = vec![
            airing("a", t(5, 30, 0), Priority::Normal, StartPolicy::Soft),
            airing("b", t(5, 30, 0), Priority::Priority, StartPolicy::Hard),
        ];
        let d = decide(&plan, &|_| false, None, &ctx(t(5, 30, 0), t(5, 0, 0)));
        assert_eq!(d.actions, vec![Action::Start { idx: 1 }]);
        assert!(d.wake_at.is_some());
    }
}
