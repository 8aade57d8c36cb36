//! Expansion of a validated station's schedule into planned airings.
//!
//! **Invariant:** pure and deterministic: the same station, catalog and range always give the same
//! airings in the same order (instant, then priority high→low, then slot id). The station daemon,
//! `loa plan` and the collector's report all call this, so they agree on what was planned.

use super::{
    AudioCatalog, AudioFacts, ItemRef, Priority, ProgramAudio, RelaySpec, Slot, SlotContent,
    StartPolicy, Station,
};
use chrono::{DateTime, Datelike, FixedOffset, Months, NaiveDate, Utc};
use std::path::PathBuf;
use std::sync::Arc;

/// One planned airing.
///
/// The text and list fields are shared, reference-counted and immutable: every airing of a slot
/// points at the same `station`/`slot`/`program`/`category`/`relay`, and every airing of a slot in
/// the same month (same date for `{dd}` episodes) at the same `items`. Cloning an airing therefore
/// allocates nothing; a year of 10,000 stations is millions of airings.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAiring {
    pub station: Arc<str>,
    pub slot: Arc<str>,
    /// The program the airing is filed under (the slot's `program`, else, for a playlist, its
    /// first program item).
    pub program: Option<Arc<str>>,
    /// Report category: that program's category, `relay` for a relay without `program`, else
    /// `other`.
    pub category: Arc<str>,
    /// Station-local instant with its UTC offset.
    pub at: DateTime<FixedOffset>,
    /// Files in airing order (for a relay: the fallback playlist), relative to the audio root;
    /// episodes resolved for the airing's local month.
    pub items: Arc<[PathBuf]>,
    /// Planned length: sum of the items' durations (relay: its minutes), capped at `max_secs`.
    pub planned_secs: f64,
    pub priority: Priority,
    pub start: StartPolicy,
    pub grace_secs: u32,
    /// Hard stop, seconds after `at`.
    pub max_secs: u32,
    pub relay: Option<Arc<RelaySpec>>,
}

impl PlannedAiring {
    /// The occurrence key: `{slot}@{UTC instant, RFC 3339}`; unique per station.
    pub fn key(&self) -> String {
        format!(
            "{}@{}",
            self.slot,
            self.at
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }

    /// `relay` or `file`: where the sound comes from (for reports: relayed vs own production).
    pub fn source(&self) -> &'static str {
        if self.relay.is_some() {
            "relay"
        } else {
            "file"
        }
    }
}

/// Planned airings whose local date lies in `from..=to`, in order of instant, then priority
/// (highest first), then slot id.
pub fn expand(
    station: &Station,
    catalog: &AudioCatalog,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<PlannedAiring> {
    let mut slots: Vec<SlotPlan> = station
        .slots
        .iter()
        .filter_map(|slot| SlotPlan::new(station, slot, from, to))
        .collect();
    let total = slots.iter().map(|s| s.times.len()).sum();
    let mut out = Vec::with_capacity(total);
    // Each slot's times are strictly increasing: merge them rather than sort the airings (no
    // scratch buffer, no moves of whole airings). The order is that of a stable sort by
    // (instant, priority high→low, slot id) over the slots in file order.
    let mut next = vec![0usize; slots.len()];
    loop {
        let mut best: Option<usize> = None;
        for (i, s) in slots.iter().enumerate() {
            let Some(at) = s.times.get(next[i]) else {
                continue;
            };
            let better = match best {
                None => true,
                Some(b) => {
                    let t = &slots[b];
                    at.cmp(&t.times[next[b]])
                        .then(t.slot.priority.cmp(&s.slot.priority))
                        .then_with(|| s.slot.id.cmp(&t.slot.id))
                        .is_lt()
                }
            };
            if better {
                best = Some(i);
            }
        }
        let Some(b) = best else {
            break;
        };
        let at = slots[b].times[next[b]];
        next[b] += 1;
        out.push(slots[b].airing(station, catalog, at));
    }
    out
}

/// Planned airings starting in `from..to` (UTC instants, end exclusive), in the order of
/// [`expand`]. For the daemon, which thinks in instants rather than local dates.
pub fn expand_between(
    station: &Station,
    catalog: &AudioCatalog,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<PlannedAiring> {
    if to <= from {
        return Vec::new();
    }
    // Local dates covering the range, one day of margin either side for any offset.
    let d0 = from.with_timezone(&station.timezone).date_naive();
    let d1 = to.with_timezone(&station.timezone).date_naive();
    let d0 = d0.pred_opt().unwrap_or(d0);
    let d1 = d1.succ_opt().unwrap_or(d1);
    let mut out = expand(station, catalog, d0, d1);
    out.retain(|a| a.at >= from && a.at < to);
    out
}

/// Resolve a playlist for a local date: program references become their file or that month's
/// episode.
pub fn resolve_items(station: &Station, list: &[ItemRef], date: NaiveDate) -> Vec<PathBuf> {
    list.iter()
        .filter_map(|item| match item {
            ItemRef::File(f) => Some(f.clone()),
            ItemRef::Program(pid) => station.programs.get(pid).map(|p| match &p.audio {
                ProgramAudio::File(f) => f.clone(),
                ProgramAudio::Episodes(pattern) => resolve_episode(pattern, date),
            }),
        })
        .collect()
}

/// Sum of the catalog durations of `items` (unknown or undecodable files count 0).
pub fn total_secs(items: &[PathBuf], catalog: &AudioCatalog) -> f64 {
    items
        .iter()
        .map(|f| match catalog.files.get(f) {
            Some(AudioFacts::Playable { duration_secs }) => *duration_secs,
            _ => 0.0,
        })
        .sum()
}

/// The program an airing of `slot` is filed under, and its category.
fn filing(station: &Station, slot: &Slot) -> (Option<Arc<str>>, Arc<str>) {
    let list: &[ItemRef] = match &slot.content {
        SlotContent::Playlist(v) => v,
        SlotContent::Relay(r) => &r.fallback,
    };
    let is_relay = matches!(slot.content, SlotContent::Relay(_));
    // A relay is filed under its `program` only when the slot says so: its fallback is not what
    // normally airs.
    let program: Option<&str> = slot.program.as_deref().or_else(|| {
        list.iter().filter(|_| !is_relay).find_map(|i| match i {
            ItemRef::Program(p) => Some(p.as_str()),
            ItemRef::File(_) => None,
        })
    });
    let category: Arc<str> = match program.and_then(|p| station.programs.get(p)) {
        Some(p) => p.category.as_str().into(),
        None if is_relay => "relay".into(),
        None => "other".into(),
    };
    (program.map(Arc::from), category)
}

/// A slot's firing instants whose local date lies in `from..=to` clipped to its validity window,
/// strictly increasing (several crontab lines firing at one instant fire once).
pub(crate) fn slot_times(
    station: &Station,
    slot: &Slot,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<DateTime<FixedOffset>> {
    let from = slot.from.map_or(from, |f| f.max(from));
    let to = slot.until.map_or(to, |u| u.min(to));
    if from > to {
        return Vec::new();
    }
    let mut times: Vec<DateTime<FixedOffset>> = Vec::new();
    for c in &slot.cron {
        times.extend(
            c.fire_times(&station.timezone, from, to)
                .into_iter()
                .map(|t| t.fixed_offset()),
        );
    }
    if slot.cron.len() > 1 {
        times.sort();
        times.dedup();
    }
    times
}

/// The planned length in seconds of an airing of `slot` on local `date`: its playlist resolved
/// for that date (a relay: its minutes), capped at the slot's hard stop. The one rule behind
/// every airing's `planned_secs`.
pub(crate) fn planned_secs_on(
    station: &Station,
    slot: &Slot,
    catalog: &AudioCatalog,
    date: NaiveDate,
) -> f64 {
    let max_secs = slot.max_minutes.saturating_mul(60);
    let secs = match &slot.content {
        SlotContent::Relay(r) => f64::from(r.minutes.saturating_mul(60)),
        SlotContent::Playlist(list) => total_secs(&resolve_items(station, list, date), catalog),
    };
    secs.min(f64::from(max_secs))
}

/// How often a slot's resolved playlist can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Varies {
    /// No episodes: the same files every time.
    Never,
    /// Monthly episodes (`{yyyy}`, `{mm}`).
    ByMonth,
    /// An episode pattern with `{dd}`.
    ByDay,
}

impl Varies {
    pub(crate) fn of(station: &Station, list: &[ItemRef]) -> Self {
        let mut varies = Self::Never;
        for item in list {
            if let ItemRef::Program(pid) = item
                && let Some(ProgramAudio::Episodes(pattern)) =
                    station.programs.get(pid).map(|p| &p.audio)
            {
                if pattern.contains("{dd}") {
                    return Self::ByDay;
                }
                varies = Self::ByMonth;
            }
        }
        varies
    }

    /// The period a local date falls in: (year, month, day), zeroed below the granularity.
    pub(crate) fn period(self, date: NaiveDate) -> (i32, u32, u32) {
        match self {
            Self::Never => (0, 0, 0),
            Self::ByMonth => (date.year(), date.month(), 0),
            Self::ByDay => (date.year(), date.month(), date.day()),
        }
    }
}

/// A slot's playlist resolved for one period (see [`Varies::period`]).
struct Resolved {
    period: (i32, u32, u32),
    items: Arc<[PathBuf]>,
    planned_secs: f64,
}

/// One slot's firing instants over a range, and what every airing of it shares.
struct SlotPlan<'a> {
    slot: &'a Slot,
    /// Firing instants, strictly increasing.
    times: Vec<DateTime<FixedOffset>>,
    station_id: Arc<str>,
    slot_id: Arc<str>,
    program: Option<Arc<str>>,
    category: Arc<str>,
    /// The playlist (for a relay: its fallback).
    list: &'a [ItemRef],
    relay: Option<Arc<RelaySpec>>,
    max_secs: u32,
    varies: Varies,
    /// The playlist resolved for the latest period asked.
    resolved: Option<Resolved>,
}

impl<'a> SlotPlan<'a> {
    /// The slot's firings whose local date lies in `from..=to` clipped to its validity window;
    /// `None` when there are none.
    fn new(station: &Station, slot: &'a Slot, from: NaiveDate, to: NaiveDate) -> Option<Self> {
        let times = slot_times(station, slot, from, to);
        if times.is_empty() {
            return None;
        }
        let (program, category) = filing(station, slot);
        let (list, relay): (&[ItemRef], Option<Arc<RelaySpec>>) = match &slot.content {
            SlotContent::Playlist(v) => (v, None),
            SlotContent::Relay(r) => (&r.fallback, Some(Arc::new(r.clone()))),
        };
        Some(Self {
            slot,
            times,
            station_id: station.id.as_str().into(),
            slot_id: slot.id.as_str().into(),
            program,
            category,
            list,
            relay,
            max_secs: slot.max_minutes.saturating_mul(60),
            varies: Varies::of(station, list),
            resolved: None,
        })
    }

    /// The airing at `at` (one of `times`). Items and length are resolved once per period.
    fn airing(
        &mut self,
        station: &Station,
        catalog: &AudioCatalog,
        at: DateTime<FixedOffset>,
    ) -> PlannedAiring {
        let date = at.date_naive();
        let period = self.varies.period(date);
        let resolved = match self.resolved.take() {
            Some(r) if r.period == period => r,
            _ => {
                let items: Arc<[PathBuf]> = resolve_items(station, self.list, date).into();
                let secs = match &self.relay {
                    Some(r) => f64::from(r.minutes.saturating_mul(60)),
                    None => total_secs(&items, catalog),
                };
                Resolved {
                    period,
                    items,
                    planned_secs: secs.min(f64::from(self.max_secs)),
                }
            }
        };
        let airing = PlannedAiring {
            station: self.station_id.clone(),
            slot: self.slot_id.clone(),
            program: self.program.clone(),
            category: self.category.clone(),
            at,
            items: resolved.items.clone(),
            planned_secs: resolved.planned_secs,
            priority: self.slot.priority,
            start: self.slot.start,
            grace_secs: self.slot.grace_secs,
            max_secs: self.max_secs,
            relay: self.relay.clone(),
        };
        self.resolved = Some(resolved);
        airing
    }
}

// Which dates are checked, and which episode file a date names: plan-level facts that
// validation (`file`) and the rules (`rules`) read, so neither is imported by the plan.

/// How far ahead of "today" the episodes of open-ended windows are checked, in months: the
/// current month and the next 12 (quiet hours and overlaps are checked over whole windows, see
/// `schedule::rules`).
pub const CHECK_HORIZON_MONTHS: u32 = 12;
/// Longest closed validity window whose episodes are all checked, in months.
pub const MAX_CHECKED_WINDOW_MONTHS: u32 = 120;

/// The local dates whose airings validation checks for a slot valid `from..=until`:
/// a closed window is checked whole (up to [`MAX_CHECKED_WINDOW_MONTHS`]); an open one is
/// intersected with today's month and the next [`CHECK_HORIZON_MONTHS`] months.
pub fn check_window(
    from: Option<NaiveDate>,
    until: Option<NaiveDate>,
    today: NaiveDate,
) -> Option<(NaiveDate, NaiveDate)> {
    let (start, end) = match (from, until) {
        (Some(a), Some(b)) => {
            let cap = a
                .checked_add_months(Months::new(MAX_CHECKED_WINDOW_MONTHS))
                .unwrap_or(b);
            (a, b.min(cap))
        }
        _ => {
            let h0 = month_start(today);
            let h1 = month_end(
                h0.checked_add_months(Months::new(CHECK_HORIZON_MONTHS))
                    .unwrap_or(h0),
            );
            (
                from.map_or(h0, |f| f.max(h0)),
                until.map_or(h1, |u| u.min(h1)),
            )
        }
    };
    (start <= end).then_some((start, end))
}

pub(super) fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

pub(super) fn month_end(d: NaiveDate) -> NaiveDate {
    month_start(d)
        .checked_add_months(Months::new(1))
        .and_then(|n| n.pred_opt())
        .unwrap_or(d)
}

/// The episode file of a pattern for a local date: `{yyyy}`, `{mm}`, `{dd}` replaced.
pub fn resolve_episode(pattern: &str, date: NaiveDate) -> PathBuf {
    use std::fmt::Write as _;
    // One pass, one allocation (expansion resolves this for every slot and month). The
    // replacements are digits, so they never form a new `{…}` token: the same result as
    // replacing each token in turn.
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut rest = pattern;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        // Writing into a String cannot fail.
        rest = if let Some(after) = tail.strip_prefix("{yyyy}") {
            let _ = write!(out, "{:04}", date.year());
            after
        } else if let Some(after) = tail.strip_prefix("{mm}") {
            let _ = write!(out, "{:02}", date.month());
            after
        } else if let Some(after) = tail.strip_prefix("{dd}") {
            let _ = write!(out, "{:02}", date.day());
            after
        } else {
            out.push('{');
            &tail[1..]
        };
    }
    out.push_str(rest);
    PathBuf::from(out)
}

/// Append the airings of one slot whose local date lies in `from..=to` (clipped to the slot's
/// validity window), in order of instant (the reference [`expand`]'s merge is tested against).
#[cfg(test)]
fn slot_airings(
    station: &Station,
    slot: &Slot,
    catalog: &AudioCatalog,
    from: NaiveDate,
    to: NaiveDate,
    out: &mut Vec<PlannedAiring>,
) {
    let Some(mut plan) = SlotPlan::new(station, slot, from, to) else {
        return;
    };
    let times = std::mem::take(&mut plan.times);
    out.reserve(times.len());
    for at in times {
        out.push(plan.airing(station, catalog, at));
    }
}

/// How far ahead the next airing is looked for (a week and a day: a weekday-only schedule seen
/// on a Friday evening still shows Monday's airing).
pub const NEXT_AIRING_HORIZON_DAYS: i64 = 8;

/// The next airing among `plan`: the earliest strictly after `now` that `done` does not rule
/// out (the daemon rules out what it already journaled), first in [`expand`]'s order on a tie.
pub fn first_after<'a>(
    plan: impl IntoIterator<Item = &'a PlannedAiring>,
    now: DateTime<Utc>,
    done: impl Fn(&PlannedAiring) -> bool,
) -> Option<&'a PlannedAiring> {
    plan.into_iter()
        .filter(|p| p.at.with_timezone(&Utc) > now && !done(p))
        .min_by_key(|p| p.at)
}

/// The next airing of `station` after `now`, within [`NEXT_AIRING_HORIZON_DAYS`]: the one rule
/// behind every "next airing" shown — the station's heartbeat (hence the dashboard and
/// `loa status`) and `loa up`'s start banner.
pub fn next_airing(
    station: &Station,
    catalog: &AudioCatalog,
    now: DateTime<Utc>,
    done: impl Fn(&PlannedAiring) -> bool,
) -> Option<PlannedAiring> {
    let to = now + chrono::Duration::days(NEXT_AIRING_HORIZON_DAYS);
    first_after(&expand_between(station, catalog, now, to), now, done).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crontab::Crontab;
    use crate::schedule::{LoudnessTarget, Program, StationKind};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    /// A station with one daily slot airing a jingle and the episode of `pattern`.
    fn station(pattern: &str) -> Station {
        let program = Program {
            id: "ep".into(),
            title: "Episode".into(),
            category: "cchc".into(),
            audio: ProgramAudio::Episodes(pattern.into()),
        };
        Station {
            id: "s".into(),
            name: "S".into(),
            kind: StationKind::Ward,
            area_code: "1".into(),
            timezone: chrono_tz::Asia::Ho_Chi_Minh,
            quiet_hours: vec![],
            max_session_minutes: 60,
            loudness: LoudnessTarget::default(),
            collector: None,
            programs: BTreeMap::from([("ep".to_string(), program)]),
            slots: vec![Slot {
                id: "daily".into(),
                cron: vec![Crontab::parse("0 8 * * *").expect("valid crontab")],
                from: None,
                until: None,
                program: None,
                content: SlotContent::Playlist(vec![
                    ItemRef::File("j.ogg".into()),
                    ItemRef::Program("ep".into()),
                ]),
                priority: Priority::Normal,
                start: StartPolicy::Hard,
                grace_secs: 0,
                max_minutes: 10,
            }],
            source: PathBuf::from("s.toml"),
        }
    }

    fn check(pattern: &str, expected: &[&str]) {
        let a = expand(
            &station(pattern),
            &AudioCatalog::default(),
            d(2026, 1, 30),
            d(2026, 2, 2),
        );
        let got: Vec<String> = a
            .iter()
            .map(|a| a.items[1].to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, expected, "pattern {pattern}");
        assert!(a.iter().all(|a| a.items[0] == Path::new("j.ogg")));
    }

    #[test]
    fn episodes_resolve_per_month_or_per_day() {
        check(
            "ep/{yyyy}-{mm}.ogg",
            &[
                "ep/2026-01.ogg",
                "ep/2026-01.ogg",
                "ep/2026-02.ogg",
                "ep/2026-02.ogg",
            ],
        );
        check(
            "ep/{yyyy}-{mm}-{dd}.ogg",
            &[
                "ep/2026-01-30.ogg",
                "ep/2026-01-31.ogg",
                "ep/2026-02-01.ogg",
                "ep/2026-02-02.ogg",
            ],
        );
    }

    #[test]
    fn airings_of_a_slot_share_their_fields() {
        let a = expand(
            &station("ep/{yyyy}-{mm}.ogg"),
            &AudioCatalog::default(),
            d(2026, 1, 30),
            d(2026, 2, 2),
        );
        assert_eq!(a.len(), 4);
        assert!(Arc::ptr_eq(&a[0].slot, &a[3].slot));
        assert!(Arc::ptr_eq(&a[0].category, &a[3].category));
        assert!(Arc::ptr_eq(&a[0].items, &a[1].items));
        assert!(!Arc::ptr_eq(&a[1].items, &a[2].items));
        assert_eq!(a[0].program.as_deref(), Some("ep"));
        assert_eq!(&*a[0].category, "cchc");
    }

    #[test]
    fn merge_order_equals_a_stable_sort_of_all_slots() {
        let mut st = station("ep/{yyyy}-{mm}.ogg");
        let base = st.slots[0].clone();
        let slot = |id: &str, cron: &[&str], priority: Priority| Slot {
            id: id.into(),
            cron: cron
                .iter()
                .map(|c| Crontab::parse(c).expect("valid crontab"))
                .collect(),
            priority,
            ..base.clone()
        };
        st.slots = vec![
            slot("b", &["0 8 * * *", "30 8 * * MON"], Priority::Normal),
            slot("a", &["0 8 * * *"], Priority::Normal),
            slot("z", &["0 8 * * MON-FRI"], Priority::Emergency),
            slot("m", &["*/30 7-9 * * SAT"], Priority::Priority),
            // Same id twice (a validated station cannot have it): file order decides.
            slot("a", &["0 8 * * SUN", "0 7 * * *"], Priority::Normal),
        ];
        // Tell the two `a` slots apart in the comparison.
        st.slots[4].grace_secs = 7;
        let (from, to) = (d(2026, 2, 1), d(2026, 3, 31));
        let got = expand(&st, &AudioCatalog::default(), from, to);
        let mut reference = Vec::new();
        for s in &st.slots {
            slot_airings(&st, s, &AudioCatalog::default(), from, to, &mut reference);
        }
        reference.sort_by(|a, b| {
            a.at.cmp(&b.at)
                .then(b.priority.cmp(&a.priority))
                .then_with(|| a.slot.cmp(&b.slot))
        });
        assert!(got.len() > 200, "{}", got.len());
        assert_eq!(got, reference);
    }

    /// The one next-airing rule: strictly after now, the earliest, not one already done, and a
    /// weekday-only slot seen on a Friday evening still finds Monday (beyond the daemon's 48 h).
    #[test]
    fn next_airing_is_the_earliest_strictly_later_one_not_done() {
        let utc = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        let cat = AudioCatalog::default();
        let mut st = station("ep/{yyyy}-{mm}.ogg");
        let at = |p: Option<PlannedAiring>| p.map(|p| p.at.to_rfc3339());
        // 08:00 local (UTC+7) daily: at 07:59 it is today's; at 08:00 exactly, tomorrow's.
        let before = utc("2026-12-04T00:59:00Z");
        assert_eq!(
            at(next_airing(&st, &cat, before, |_| false)),
            Some("2026-12-04T08:00:00+07:00".into())
        );
        let on = utc("2026-12-04T01:00:00Z");
        assert_eq!(
            at(next_airing(&st, &cat, on, |_| false)),
            Some("2026-12-05T08:00:00+07:00".into())
        );
        // Done (journaled already): the one after.
        assert_eq!(
            at(next_airing(&st, &cat, before, |p| p.at.day() == 4)),
            Some("2026-12-05T08:00:00+07:00".into())
        );
        // Mondays only (crontab 1 = Monday), seen on Friday 4 December 2026 evening.
        st.slots[0].cron = vec![Crontab::parse("30 5 * * 1").expect("valid crontab")];
        let friday = utc("2026-12-04T12:00:00Z");
        assert_eq!(
            at(next_airing(&st, &cat, friday, |_| false)),
            Some("2026-12-07T05:30:00+07:00".into())
        );
        // A shorter plan (the daemon's 48 h) holds nothing: first_after says so, and the daemon
        // then asks next_airing, which gives the same Monday.
        let plan = expand_between(&st, &cat, friday, friday + chrono::Duration::hours(48));
        assert!(first_after(&plan, friday, |_| false).is_none());
        // Earliest wins whatever the order given.
        st.slots[0].cron = vec![Crontab::parse("0 8 * * *").expect("valid crontab")];
        let mut plan = expand_between(&st, &cat, before, before + chrono::Duration::days(3));
        plan.reverse();
        assert_eq!(
            first_after(&plan, before, |_| false).map(|p| p.at.to_rfc3339()),
            Some("2026-12-04T08:00:00+07:00".into())
        );
    }
}
