//! When a station airs its accepted bulletins: the pure decision beside the scheduler
//! (`station::scheduler::decide`), over what is on air, the pending bulletins, the station's next
//! sessions and its rules, at an instant read from the station's `Clock`.
//!
//! The rules (issue #15, "Airing rules at the station"; docs/bulletins.md):
//! - **emergency** cuts in at once ([`Action::CutIn`], fade [`CUT_IN_FADE_SECS`]) over anything
//!   but another emergency bulletin, which it waits for; the interrupted airing is recorded
//!   preempted and resumed where it was cut when the bulletin ends before the interrupted
//!   airing's planned end. It overrides quiet hours and the session limit.
//! - **priority** airs at once when the air is idle, else at the next item boundary of the
//!   scheduled airing on air ([`Action::AtBoundary`]) — only when its whole airing lies outside
//!   quiet hours and the session it joins stays within `max_session_minutes`; otherwise it waits
//!   (for the quiet hours to end, for the session to end). A scheduled emergency or a bulletin
//!   on air is never interrupted by it.
//! - **normal** airs after the last item of the station's next session
//!   ([`Action::AfterSession`]): the session on air if it takes it, else the first planned
//!   session that starts, and ends, before the window closes, that it fits into within the
//!   session limit, and after which it does not sound in quiet hours. It never airs on an idle
//!   air outside a session.
//! - **repeats**: airing 1 is due at `not_before`; airing k + 1 at the start of airing k plus
//!   `interval_secs` ([`Pending::due_at`]). An airing that cannot start before `not_after` is
//!   dropped, with every later one ([`Action::Drop`], `bulletin.expired`); a normal or priority
//!   bulletin longer than the session limit is dropped at once (`bulletin.too_long`); a cancelled
//!   one is dropped, and stopped if on air.
//!
//! **Invariant:** pure and idempotent: the same inputs give the same [`Decision`], and an action
//! names its bulletin airing (`id`, `repeat`), so a daemon asking again ignores one it is already
//! carrying out. No airing is decided outside its window, an airing already aired is never
//! decided again (pending airings start at [`Pending::next_repeat`]), and every pending airing
//! gets an action or a wake-up no later than its window's close.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::body::BulletinId;
use super::check::Accepted;
use super::refusal::RefusalCode;
use crate::reason::ReasonCode;
use crate::schedule::{Priority, QuietHours, Station};

/// The fade out of what an emergency cuts in over, seconds (the issue's ≤ 0.5 s; the player's
/// own fade is the same).
pub const CUT_IN_FADE_SECS: f64 = 0.5;

/// What the airing rules need of the station's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct StationRules {
    pub timezone: Tz,
    pub quiet_hours: Vec<QuietHours>,
    /// The longest a session may sound, seconds (`max_session_minutes`).
    pub max_session_secs: u32,
}

impl StationRules {
    /// The rules of a validated station.
    pub fn of(station: &Station) -> StationRules {
        StationRules {
            timezone: station.timezone,
            quiet_hours: station.quiet_hours.clone(),
            max_session_secs: station.max_session_minutes.saturating_mul(60),
        }
    }
}

/// A scheduled airing (a session of the station's plan) on air.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledOnAir {
    /// Its occurrence key.
    pub key: String,
    pub priority: Priority,
    pub started_at: DateTime<Utc>,
    /// When the item now playing ends: the next item boundary.
    pub item_ends_at: DateTime<Utc>,
    /// When its last item ends as planned (or its hard stop, if sooner).
    pub ends_at: DateTime<Utc>,
    /// Seconds of bulletins already added to this session.
    pub added_secs: f64,
}

/// What is on air.
#[derive(Debug, Clone, PartialEq)]
pub enum OnAir {
    Idle,
    Scheduled(ScheduledOnAir),
    Bulletin {
        id: BulletinId,
        repeat: u32,
        priority: Priority,
        ends_at: DateTime<Utc>,
    },
}

/// A planned session ahead (a planned airing of the station's plan).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub key: String,
    pub at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// An accepted bulletin with airings left.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: BulletinId,
    pub priority: Priority,
    /// Its audio's length.
    pub duration_ms: u64,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub count: u32,
    pub interval_secs: u32,
    /// The next airing to air (1-based).
    pub next_repeat: u32,
    /// When the previous airing started (none before the first aired, or when it is not known:
    /// then the next is due at once).
    pub last_started: Option<DateTime<Utc>>,
}

impl Pending {
    /// The pending state of a bulletin just accepted.
    pub fn of(a: &Accepted) -> Pending {
        let b = &a.bulletin;
        Pending {
            id: b.id,
            priority: b.priority,
            duration_ms: b.audio.duration_ms,
            not_before: b.not_before,
            not_after: b.not_after,
            count: b.repeats.count,
            interval_secs: b.repeats.interval_secs,
            next_repeat: a.next_repeat,
            last_started: None,
        }
    }

    fn duration(&self) -> Duration {
        Duration::milliseconds(i64::try_from(self.duration_ms).unwrap_or(i64::MAX / 2))
    }

    /// When the next airing is due: `not_before` for the first, else the previous start plus
    /// the interval (and never before `not_before`).
    pub fn due_at(&self) -> DateTime<Utc> {
        match self.last_started {
            Some(t) => (t + Duration::seconds(i64::from(self.interval_secs))).max(self.not_before),
            None => self.not_before,
        }
    }

    /// The earliest start of each airing left, `(repeat, instant)`, if each airs when due; those
    /// at or after `not_after` are left out (they will expire).
    pub fn repeat_times(&self) -> Vec<(u32, DateTime<Utc>)> {
        let due = self.due_at();
        (self.next_repeat..=self.count)
            .map(|r| {
                let k = i64::from(r - self.next_repeat);
                (
                    r,
                    due + Duration::seconds(k * i64::from(self.interval_secs)),
                )
            })
            .filter(|(_, t)| *t < self.not_after)
            .collect()
    }
}

/// Who an emergency cut in over.
#[derive(Debug, Clone, PartialEq)]
pub enum Preempted {
    /// A scheduled airing, recorded `preempted.higher_priority`; `resume`: it continues where it
    /// was cut once the bulletin ends (its planned end is still ahead then).
    Scheduled { key: String, resume: bool },
    /// A lower-priority bulletin's airing, recorded preempted; it stays pending.
    Bulletin { id: BulletinId, repeat: u32 },
}

impl Preempted {
    /// The reason code the interrupted airing is recorded with.
    pub fn code(&self) -> ReasonCode {
        ReasonCode::PreemptedHigherPriority
    }
}

/// One decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Air now on an idle air.
    Start { id: BulletinId, repeat: u32 },
    /// Fade out what is on air over `fade_secs` and air this now.
    CutIn {
        id: BulletinId,
        repeat: u32,
        preempted: Preempted,
        fade_secs: f64,
    },
    /// Air when the item now playing in scheduled airing `key` ends (at `at`); the airing goes
    /// on after it.
    AtBoundary {
        id: BulletinId,
        repeat: u32,
        key: String,
        at: DateTime<Utc>,
    },
    /// Air after the last item of scheduled airing `key` (on air), at `at`.
    AfterSession {
        id: BulletinId,
        repeat: u32,
        key: String,
        at: DateTime<Utc>,
    },
    /// Stop bulletin airing on air (cancelled), with the fade.
    Stop { id: BulletinId, repeat: u32 },
    /// Airings `from..=to` of `id` will not air, for `code` (reported to the centre).
    Drop {
        id: BulletinId,
        from: u32,
        to: u32,
        code: RefusalCode,
    },
}

/// Decisions, plus when to ask again (absent another event).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub wake_at: Option<DateTime<Utc>>,
}

/// What the decision is taken over.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// From the station's `Clock`.
    pub now: DateTime<Utc>,
    pub on_air: &'a OnAir,
    pub pending: &'a [Pending],
    /// Bulletins a checked cancel named.
    pub cancelled: &'a [BulletinId],
    /// Planned sessions that start after now, in order (covering the pending windows).
    pub sessions: &'a [Session],
    pub rules: &'a StationRules,
}

fn secs_f64(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// The UTC instant of local `date` at `time`, if it exists in `tz`.
fn local(tz: Tz, date: NaiveDate, time: chrono::NaiveTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&date.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The quiet windows (UTC) that may meet `[from, to)`.
fn quiet_windows(
    rules: &StationRules,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let tz = rules.timezone;
    let first = from.with_timezone(&tz).date_naive() - Duration::days(1);
    let last = to.with_timezone(&tz).date_naive();
    let mut out = Vec::new();
    let mut day = first;
    while day <= last {
        for q in &rules.quiet_hours {
            let end_day = if q.start < q.end {
                day
            } else {
                day + Duration::days(1)
            };
            if let (Some(s), Some(e)) = (local(tz, day, q.start), local(tz, end_day, q.end)) {
                out.push((s, e));
            }
        }
        day += Duration::days(1);
    }
    out
}

/// The earliest instant at or after `t` from which `d` of sound stays outside quiet hours.
fn allowed_start(rules: &StationRules, t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    let mut t = t;
    // Each step moves past one window; a station has a few windows a day.
    for _ in 0..64 {
        let end = t + d;
        let hit = quiet_windows(rules, t, end)
            .into_iter()
            .filter(|(ws, we)| *ws < end && *we > t)
            .map(|(_, we)| we)
            .max();
        match hit {
            Some(we) => t = we,
            None => return t,
        }
    }
    t
}

/// Decide what to do about the pending bulletins now.
pub fn decide(input: &Input<'_>) -> Decision {
    let now = input.now;
    let rules = input.rules;
    let max_session = f64::from(rules.max_session_secs);
    let mut actions = Vec::new();
    let mut wake_at: Option<DateTime<Utc>> = None;
    let mut wake = |t: DateTime<Utc>| {
        wake_at = Some(wake_at.map_or(t, |w: DateTime<Utc>| w.min(t)));
    };
    let mut air = input.on_air.clone();

    // A cancelled bulletin on air stops.
    if let OnAir::Bulletin { id, repeat, .. } = &air
        && input.cancelled.contains(id)
    {
        actions.push(Action::Stop {
            id: *id,
            repeat: *repeat,
        });
        air = OnAir::Idle;
    }
    let on_air_bulletin = match &air {
        OnAir::Bulletin { id, .. } => Some(*id),
        _ => None,
    };

    // Highest priority first, then the earliest due.
    let mut order: Vec<&Pending> = input
        .pending
        .iter()
        .filter(|p| p.next_repeat >= 1 && p.next_repeat <= p.count)
        .collect();
    order.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.due_at().cmp(&b.due_at()))
            .then(a.id.cmp(&b.id))
    });
    // Seconds of bulletins this decision adds at the next boundary / after a session.
    let mut boundary_added = 0.0_f64;
    let mut session_added: Vec<(String, f64)> = Vec::new();

    for p in order {
        let dropped = |code| Action::Drop {
            id: p.id,
            from: p.next_repeat,
            to: p.count,
            code,
        };
        if input.cancelled.contains(&p.id) {
            actions.push(dropped(RefusalCode::Cancelled));
            continue;
        }
        if on_air_bulletin == Some(p.id) {
            // Its airing on air ends first; the next is decided then.
            wake(p.not_after);
            continue;
        }
        let due = p.due_at();
        if now >= p.not_after || due >= p.not_after {
            actions.push(dropped(RefusalCode::Expired));
            continue;
        }
        let d = p.duration();
        let d_secs = secs_f64(d);
        if p.priority != Priority::Emergency && d_secs > max_session {
            actions.push(dropped(RefusalCode::TooLong));
            continue;
        }
        // Whatever it waits for, it is looked at again when its window closes.
        wake(p.not_after);
        if now < due {
            wake(due);
            continue;
        }
        let repeat = p.next_repeat;
        match p.priority {
            Priority::Emergency => match &air {
                OnAir::Bulletin {
                    priority: Priority::Emergency,
                    ends_at,
                    ..
                } => wake(*ends_at),
                OnAir::Bulletin {
                    id: bid,
                    repeat: brep,
                    ..
                } => {
                    actions.push(Action::CutIn {
                        id: p.id,
                        repeat,
                        preempted: Preempted::Bulletin {
                            id: *bid,
                            repeat: *brep,
                        },
                        fade_secs: CUT_IN_FADE_SECS,
                    });
                    air = bulletin_air(p, repeat, now + d);
                }
                OnAir::Scheduled(s) => {
                    let resume = now + d < s.ends_at;
                    actions.push(Action::CutIn {
                        id: p.id,
                        repeat,
                        preempted: Preempted::Scheduled {
                            key: s.key.clone(),
                            resume,
                        },
                        fade_secs: CUT_IN_FADE_SECS,
                    });
                    air = bulletin_air(p, repeat, now + d);
                }
                OnAir::Idle => {
                    actions.push(Action::Start { id: p.id, repeat });
                    air = bulletin_air(p, repeat, now + d);
                }
            },
            Priority::Priority => match &air {
                OnAir::Idle => {
                    let t = allowed_start(rules, now, d);
                    if t <= now {
                        actions.push(Action::Start { id: p.id, repeat });
                        air = bulletin_air(p, repeat, now + d);
                    } else {
                        wake(t);
                    }
                }
                OnAir::Scheduled(s) if s.priority < Priority::Emergency => {
                    let at = s.item_ends_at.max(now) + seconds(boundary_added);
                    let session_secs =
                        secs_f64(s.ends_at - s.started_at) + s.added_secs + boundary_added;
                    let fits = session_secs + d_secs <= max_session;
                    if fits && allowed_start(rules, at, d) == at {
                        actions.push(Action::AtBoundary {
                            id: p.id,
                            repeat,
                            key: s.key.clone(),
                            at,
                        });
                        boundary_added += d_secs;
                    } else {
                        // After the session, on its own (and outside quiet hours).
                        wake(allowed_start(rules, s.ends_at.max(now), d));
                    }
                }
                OnAir::Scheduled(s) => wake(s.ends_at),
                OnAir::Bulletin { ends_at, .. } => wake(*ends_at),
            },
            Priority::Normal => {
                let fits_after = |key: &str, start: DateTime<Utc>, end: DateTime<Utc>, had: f64| {
                    let added: f64 = session_added
                        .iter()
                        .filter(|(k, _)| k == key)
                        .map(|(_, s)| s)
                        .sum();
                    let at = end + seconds(added);
                    let ok = secs_f64(end - start) + had + added + d_secs <= max_session
                        && at < p.not_after
                        && allowed_start(rules, at, d) == at;
                    ok.then_some(at)
                };
                let on_air_session = match &air {
                    OnAir::Scheduled(s) => {
                        fits_after(&s.key, s.started_at, s.ends_at, s.added_secs)
                            .map(|at| (s.key.clone(), at))
                    }
                    _ => None,
                };
                if let Some((key, at)) = on_air_session {
                    actions.push(Action::AfterSession {
                        id: p.id,
                        repeat,
                        key: key.clone(),
                        at,
                    });
                    session_added.push((key, d_secs));
                    continue;
                }
                let on_air_key = match &air {
                    OnAir::Scheduled(s) => Some(s.key.as_str()),
                    _ => None,
                };
                let next = input.sessions.iter().find(|s| {
                    s.at >= now
                        && Some(s.key.as_str()) != on_air_key
                        && fits_after(&s.key, s.at, s.ends_at, 0.0).is_some()
                });
                if let Some(s) = next {
                    wake(s.at);
                }
                // No session takes it before its window closes: the wake at not_after drops it.
            }
        }
    }
    Decision { actions, wake_at }
}

fn seconds(s: f64) -> Duration {
    Duration::milliseconds((s * 1000.0).round() as i64)
}

fn bulletin_air(p: &Pending, repeat: u32, ends_at: DateTime<Utc>) -> OnAir {
    OnAir::Bulletin {
        id: p.id,
        repeat,
        priority: p.priority,
        ends_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    /// 2027-09-12 local (UTC+7) h:m:s, as UTC.
    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        let tz: Tz = "Asia/Ho_Chi_Minh".parse().unwrap_or_else(|e| panic!("{e}"));
        tz.with_ymd_and_hms(2027, 9, 12, h, m, s)
            .single()
            .unwrap_or_else(|| panic!("{h}:{m}:{s}"))
            .with_timezone(&Utc)
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap_or_else(|| panic!("{h}:{m}"))
    }

    /// Quiet 21:30–05:00, sessions of at most 60 minutes.
    fn rules() -> StationRules {
        StationRules {
            timezone: "Asia/Ho_Chi_Minh".parse().unwrap_or_else(|e| panic!("{e}")),
            quiet_hours: vec![QuietHours {
                start: hm(21, 30),
                end: hm(5, 0),
            }],
            max_session_secs: 3600,
        }
    }

    fn id(n: u8) -> BulletinId {
        BulletinId::from_bytes([n; 16])
    }

    /// Bulletin `n`: 60 s long, window 06:00–18:00 local, 3 airings 30 min apart, none aired.
    fn pending(n: u8, priority: Priority) -> Pending {
        Pending {
            id: id(n),
            priority,
            duration_ms: 60_000,
            not_before: t(6, 0, 0),
            not_after: t(18, 0, 0),
            count: 3,
            interval_secs: 1800,
            next_repeat: 1,
            last_started: None,
        }
    }

    /// A normal scheduled airing 10:00–10:30 local, its item now playing ending at 10:05.
    fn scheduled(priority: Priority) -> OnAir {
        OnAir::Scheduled(ScheduledOnAir {
            key: "news@0300".into(),
            priority,
            started_at: t(10, 0, 0),
            item_ends_at: t(10, 5, 0),
            ends_at: t(10, 30, 0),
            added_secs: 0.0,
        })
    }

    fn session(key: &str, at: DateTime<Utc>, mins: i64) -> Session {
        Session {
            key: key.into(),
            at,
            ends_at: at + Duration::minutes(mins),
        }
    }

    struct Case {
        name: &'static str,
        now: DateTime<Utc>,
        on_air: OnAir,
        pending: Vec<Pending>,
        cancelled: Vec<BulletinId>,
        sessions: Vec<Session>,
    }

    fn case(name: &'static str, now: DateTime<Utc>, on_air: OnAir, pending: Vec<Pending>) -> Case {
        Case {
            name,
            now,
            on_air,
            pending,
            cancelled: vec![],
            sessions: vec![],
        }
    }

    /// The table's helper: decide over `c`, compare with the expected actions and wake-up.
    fn check(c: Case, actions: Vec<Action>, wake_at: Option<DateTime<Utc>>) {
        let r = rules();
        let got = decide(&Input {
            now: c.now,
            on_air: &c.on_air,
            pending: &c.pending,
            cancelled: &c.cancelled,
            sessions: &c.sessions,
            rules: &r,
        });
        assert_eq!(got, Decision { actions, wake_at }, "{}", c.name);
    }

    fn cut_in(n: u8, repeat: u32, preempted: Preempted) -> Action {
        Action::CutIn {
            id: id(n),
            repeat,
            preempted,
            fade_secs: CUT_IN_FADE_SECS,
        }
    }

    fn sched(resume: bool) -> Preempted {
        Preempted::Scheduled {
            key: "news@0300".into(),
            resume,
        }
    }

    #[test]
    fn an_emergency_cuts_in_at_once_over_anything_but_an_emergency_bulletin() {
        let e = || vec![pending(1, Priority::Emergency)];
        let end = Some(t(18, 0, 0));
        check(
            case(
                "mid-file of a normal airing",
                t(10, 2, 30),
                scheduled(Priority::Normal),
                e(),
            ),
            vec![cut_in(1, 1, sched(true))],
            end,
        );
        // The bulletin ends (10:30:30) after the interrupted airing's planned end: not resumed.
        check(
            case(
                "near the end of the airing",
                t(10, 29, 30),
                scheduled(Priority::Normal),
                e(),
            ),
            vec![cut_in(1, 1, sched(false))],
            end,
        );
        check(
            case(
                "over a scheduled emergency slot",
                t(10, 2, 0),
                scheduled(Priority::Emergency),
                e(),
            ),
            vec![cut_in(1, 1, sched(true))],
            end,
        );
        let priority_bulletin = OnAir::Bulletin {
            id: id(9),
            repeat: 2,
            priority: Priority::Priority,
            ends_at: t(10, 3, 0),
        };
        check(
            case(
                "over a priority bulletin",
                t(10, 2, 0),
                priority_bulletin,
                e(),
            ),
            vec![cut_in(
                1,
                1,
                Preempted::Bulletin {
                    id: id(9),
                    repeat: 2,
                },
            )],
            end,
        );
        let emergency_bulletin = OnAir::Bulletin {
            id: id(9),
            repeat: 1,
            priority: Priority::Emergency,
            ends_at: t(10, 3, 0),
        };
        check(
            case(
                "another emergency bulletin on air: waits for its end",
                t(10, 2, 0),
                emergency_bulletin,
                e(),
            ),
            vec![],
            Some(t(10, 3, 0)),
        );
        check(
            case("idle air", t(10, 2, 0), OnAir::Idle, e()),
            vec![Action::Start {
                id: id(1),
                repeat: 1,
            }],
            end,
        );
        // Two emergencies due: the earlier due airs, the other waits for it to end.
        let mut second = pending(2, Priority::Emergency);
        second.not_before = t(6, 30, 0);
        check(
            case(
                "two emergencies",
                t(10, 2, 0),
                OnAir::Idle,
                vec![second, pending(1, Priority::Emergency)],
            ),
            vec![Action::Start {
                id: id(1),
                repeat: 1,
            }],
            Some(t(10, 3, 0)),
        );
    }

    #[test]
    fn an_emergency_overrides_quiet_hours_and_the_session_limit() {
        let mut night = pending(1, Priority::Emergency);
        night.not_before = t(0, 0, 0);
        night.not_after = t(23, 30, 0);
        check(
            case(
                "inside quiet hours (23:00)",
                t(23, 0, 0),
                OnAir::Idle,
                vec![night.clone()],
            ),
            vec![Action::Start {
                id: id(1),
                repeat: 1,
            }],
            Some(t(23, 30, 0)),
        );
        let mut long = pending(1, Priority::Emergency);
        long.duration_ms = 2 * 3_600_000;
        check(
            case(
                "longer than the session limit",
                t(10, 2, 0),
                scheduled(Priority::Normal),
                vec![long],
            ),
            vec![cut_in(1, 1, sched(false))],
            Some(t(18, 0, 0)),
        );
    }

    #[test]
    fn a_priority_bulletin_waits_for_the_item_boundary_inside_allowed_hours() {
        let p = || vec![pending(1, Priority::Priority)];
        let end = Some(t(18, 0, 0));
        check(
            case("idle air: at once", t(10, 2, 0), OnAir::Idle, p()),
            vec![Action::Start {
                id: id(1),
                repeat: 1,
            }],
            end,
        );
        check(
            case(
                "during a normal airing: at the boundary",
                t(10, 2, 0),
                scheduled(Priority::Normal),
                p(),
            ),
            vec![Action::AtBoundary {
                id: id(1),
                repeat: 1,
                key: "news@0300".into(),
                at: t(10, 5, 0),
            }],
            end,
        );
        check(
            case(
                "two due: one after the other at the boundary",
                t(10, 2, 0),
                scheduled(Priority::Priority),
                vec![
                    pending(2, Priority::Priority),
                    pending(1, Priority::Priority),
                ],
            ),
            vec![
                Action::AtBoundary {
                    id: id(1),
                    repeat: 1,
                    key: "news@0300".into(),
                    at: t(10, 5, 0),
                },
                Action::AtBoundary {
                    id: id(2),
                    repeat: 1,
                    key: "news@0300".into(),
                    at: t(10, 6, 0),
                },
            ],
            end,
        );
        check(
            case(
                "a scheduled emergency is not interrupted",
                t(10, 2, 0),
                scheduled(Priority::Emergency),
                p(),
            ),
            vec![],
            Some(t(10, 30, 0)),
        );
        let bulletin = OnAir::Bulletin {
            id: id(9),
            repeat: 1,
            priority: Priority::Normal,
            ends_at: t(10, 3, 0),
        };
        check(
            case(
                "a bulletin on air is not interrupted",
                t(10, 2, 0),
                bulletin,
                p(),
            ),
            vec![],
            Some(t(10, 3, 0)),
        );
        // The session (30 min) with 30 min of bulletins added already is at the limit.
        let OnAir::Scheduled(mut full) = scheduled(Priority::Normal) else {
            unreachable!()
        };
        full.added_secs = 1800.0;
        check(
            case(
                "the session would pass its limit: after it, alone",
                t(10, 2, 0),
                OnAir::Scheduled(full),
                p(),
            ),
            vec![],
            Some(t(10, 30, 0)),
        );
        let mut long = pending(1, Priority::Priority);
        long.duration_ms = 3_600_001;
        check(
            case(
                "longer than the session limit: dropped",
                t(10, 2, 0),
                OnAir::Idle,
                vec![long],
            ),
            vec![Action::Drop {
                id: id(1),
                from: 1,
                to: 3,
                code: RefusalCode::TooLong,
            }],
            None,
        );
    }

    #[test]
    fn a_priority_bulletin_never_sounds_in_quiet_hours() {
        let mut p = pending(1, Priority::Priority);
        p.not_before = t(0, 0, 0);
        check(
            case(
                "inside quiet hours: waits for 05:00",
                t(4, 0, 0),
                OnAir::Idle,
                vec![p.clone()],
            ),
            vec![],
            Some(t(5, 0, 0)),
        );
        let mut late = p.clone();
        late.not_after = t(23, 59, 0);
        check(
            case(
                "would run into quiet hours at 21:30: waits for 05:00 next day",
                t(21, 29, 30),
                OnAir::Idle,
                vec![late.clone()],
            ),
            vec![],
            Some(t(23, 59, 0)),
        );
        check(
            case(
                "... and expires at not_after",
                t(23, 59, 0),
                OnAir::Idle,
                vec![late],
            ),
            vec![Action::Drop {
                id: id(1),
                from: 1,
                to: 3,
                code: RefusalCode::Expired,
            }],
            None,
        );
        check(
            case("at 05:00 it airs", t(5, 0, 0), OnAir::Idle, vec![p]),
            vec![Action::Start {
                id: id(1),
                repeat: 1,
            }],
            Some(t(18, 0, 0)),
        );
    }

    #[test]
    fn a_normal_bulletin_airs_in_the_next_session() {
        let n = || vec![pending(1, Priority::Normal)];
        let end = Some(t(18, 0, 0));
        check(
            case(
                "during a session: after its last item",
                t(10, 2, 0),
                scheduled(Priority::Normal),
                n(),
            ),
            vec![Action::AfterSession {
                id: id(1),
                repeat: 1,
                key: "news@0300".into(),
                at: t(10, 30, 0),
            }],
            end,
        );
        check(
            Case {
                sessions: vec![session("a@1", t(11, 0, 0), 30)],
                ..case(
                    "idle: waits for the next session",
                    t(10, 2, 0),
                    OnAir::Idle,
                    n(),
                )
            },
            vec![],
            Some(t(11, 0, 0)),
        );
        check(
            Case {
                sessions: vec![
                    session("long@1", t(11, 0, 0), 60),
                    session("short@1", t(12, 0, 0), 20),
                ],
                ..case(
                    "a session with no room left is passed over",
                    t(10, 2, 0),
                    OnAir::Idle,
                    n(),
                )
            },
            vec![],
            Some(t(12, 0, 0)),
        );
        check(
            Case {
                sessions: vec![session("eve@1", t(21, 0, 0), 30)],
                ..case(
                    "a session after which it would sound in quiet hours is passed over",
                    t(10, 2, 0),
                    OnAir::Idle,
                    {
                        let mut p = pending(1, Priority::Normal);
                        p.not_after = t(23, 0, 0);
                        vec![p]
                    },
                )
            },
            vec![],
            Some(t(23, 0, 0)),
        );
        check(
            Case {
                sessions: vec![session("late@1", t(17, 50, 0), 30)],
                ..case(
                    "no session ends before the window closes: wakes at not_after",
                    t(10, 2, 0),
                    OnAir::Idle,
                    n(),
                )
            },
            vec![],
            end,
        );
        let OnAir::Scheduled(mut full) = scheduled(Priority::Normal) else {
            unreachable!()
        };
        full.ends_at = t(11, 0, 0);
        check(
            Case {
                sessions: vec![session("next@1", t(12, 0, 0), 10)],
                ..case(
                    "the session on air is full: the next one",
                    t(10, 2, 0),
                    OnAir::Scheduled(full),
                    n(),
                )
            },
            vec![],
            Some(t(12, 0, 0)),
        );
        check(
            case(
                "two normal bulletins after one session",
                t(10, 2, 0),
                scheduled(Priority::Normal),
                vec![pending(2, Priority::Normal), pending(1, Priority::Normal)],
            ),
            vec![
                Action::AfterSession {
                    id: id(1),
                    repeat: 1,
                    key: "news@0300".into(),
                    at: t(10, 30, 0),
                },
                Action::AfterSession {
                    id: id(2),
                    repeat: 1,
                    key: "news@0300".into(),
                    at: t(10, 31, 0),
                },
            ],
            end,
        );
    }

    #[test]
    fn repeats_are_due_interval_after_the_previous_start_and_expire_with_the_window() {
        let mut second = pending(1, Priority::Priority);
        second.next_repeat = 2;
        second.last_started = Some(t(10, 0, 0));
        check(
            case(
                "the second airing before its time",
                t(10, 29, 59),
                OnAir::Idle,
                vec![second.clone()],
            ),
            vec![],
            Some(t(10, 30, 0)),
        );
        check(
            case(
                "the second airing at its time",
                t(10, 30, 0),
                OnAir::Idle,
                vec![second.clone()],
            ),
            vec![Action::Start {
                id: id(1),
                repeat: 2,
            }],
            Some(t(18, 0, 0)),
        );
        let mut last = second.clone();
        last.last_started = Some(t(17, 40, 0));
        check(
            case(
                "the next airing would start after not_after: it and the rest expire",
                t(17, 45, 0),
                OnAir::Idle,
                vec![last],
            ),
            vec![Action::Drop {
                id: id(1),
                from: 2,
                to: 3,
                code: RefusalCode::Expired,
            }],
            None,
        );
        check(
            case(
                "before the window opens",
                t(5, 0, 0),
                OnAir::Idle,
                vec![pending(1, Priority::Emergency)],
            ),
            vec![],
            Some(t(6, 0, 0)),
        );
        check(
            case(
                "at not_after",
                t(18, 0, 0),
                OnAir::Idle,
                vec![pending(1, Priority::Emergency)],
            ),
            vec![Action::Drop {
                id: id(1),
                from: 1,
                to: 3,
                code: RefusalCode::Expired,
            }],
            None,
        );
        // The airing on air is not decided again; the next is due from its start.
        let on_air = OnAir::Bulletin {
            id: id(1),
            repeat: 1,
            priority: Priority::Emergency,
            ends_at: t(10, 1, 0),
        };
        check(
            case(
                "its own airing on air",
                t(10, 0, 30),
                on_air,
                vec![pending(1, Priority::Emergency)],
            ),
            vec![],
            Some(t(18, 0, 0)),
        );
        assert_eq!(
            second.repeat_times(),
            vec![(2, t(10, 30, 0)), (3, t(11, 0, 0))]
        );
        let mut tight = pending(1, Priority::Normal);
        tight.not_after = t(6, 45, 0);
        assert_eq!(
            tight.repeat_times(),
            vec![(1, t(6, 0, 0)), (2, t(6, 30, 0))],
            "the third would start at 07:00, after not_after"
        );
    }

    #[test]
    fn a_cancel_drops_what_has_not_aired_and_stops_what_is_on_air() {
        let on_air = OnAir::Bulletin {
            id: id(1),
            repeat: 2,
            priority: Priority::Emergency,
            ends_at: t(10, 3, 0),
        };
        let mut p = pending(1, Priority::Emergency);
        p.next_repeat = 2;
        p.last_started = Some(t(10, 2, 0));
        check(
            Case {
                cancelled: vec![id(1), id(5)],
                ..case(
                    "cancelled on air",
                    t(10, 2, 30),
                    on_air,
                    vec![p, pending(2, Priority::Normal)],
                )
            },
            vec![
                Action::Stop {
                    id: id(1),
                    repeat: 2,
                },
                Action::Drop {
                    id: id(1),
                    from: 2,
                    to: 3,
                    code: RefusalCode::Cancelled,
                },
            ],
            Some(t(18, 0, 0)),
        );
    }

    /// From the envelope to the air: only what `check` accepted becomes pending, and it airs
    /// by its priority; a forged one never reaches the decision.
    #[test]
    fn only_an_accepted_bulletin_reaches_the_air() {
        use super::super::body::tests::sample;
        use super::super::check::check as accept;
        use ed25519_dalek::SigningKey;
        let centre = SigningKey::from_bytes(&[1; 32]);
        let pinned = [centre.verifying_key()];
        let mut b = sample();
        b.not_before = t(6, 0, 0);
        b.not_after = t(18, 0, 0);
        let now = t(10, 2, 0);
        let forged = b
            .sign(&SigningKey::from_bytes(&[2; 32]))
            .unwrap_or_else(|e| panic!("{e}"));
        let refused = accept(&forged, "p1", "51001", &pinned, now, &|_, _| false);
        assert_eq!(
            refused.map_err(|e| e.code()).err(),
            Some(RefusalCode::Signature)
        );
        let env = b.sign(&centre).unwrap_or_else(|e| panic!("{e}"));
        let ok = accept(&env, "p1", "51001", &pinned, now, &|_, _| false)
            .unwrap_or_else(|e| panic!("{e}"));
        let p = Pending::of(&ok);
        assert_eq!(
            (p.id, p.next_repeat, p.count, p.duration_ms),
            (b.id, 1, 3, 45_000)
        );
        let c = case(
            "accepted emergency",
            now,
            scheduled(Priority::Normal),
            vec![p],
        );
        let preempted = sched(true);
        assert_eq!(preempted.code().as_str(), "preempted.higher_priority");
        check(
            c,
            vec![Action::CutIn {
                id: b.id,
                repeat: 1,
                preempted,
                fade_secs: CUT_IN_FADE_SECS,
            }],
            Some(t(18, 0, 0)),
        );
    }

    #[test]
    fn quiet_windows_wrap_midnight_in_station_time() {
        let r = rules();
        let d = Duration::seconds(60);
        for (from, want) in [
            (t(12, 0, 0), t(12, 0, 0)),
            (t(21, 29, 0), t(21, 29, 0)),
            (t(21, 29, 1), t(5, 0, 0) + Duration::days(1)),
            (t(23, 0, 0), t(5, 0, 0) + Duration::days(1)),
            (t(4, 59, 59), t(5, 0, 0)),
            (t(5, 0, 0), t(5, 0, 0)),
        ] {
            assert_eq!(allowed_start(&r, from, d), want, "from {from}");
        }
    }
}
