//! The quiet-hour and overlap rules: does any airing of a slot sound inside the station's quiet
//! hours, and do two airings of equal priority (or two of one slot) overlap — over each slot's
//! **whole** window, open-ended ones included.
//!
//! **Invariant:** exact, not sampled. Every finding a brute-force expansion of the whole window
//! would give is found, at the same first airing, without expanding decades: the rules only
//! depend on each local day's *context* — which slots are in their window, which of their crontab
//! lines fire that day, how long their airing is, the station's UTC offset around it — together
//! with the previous day's (an airing is at most a day long, `max_session_minutes` ≤ 1,440). Days
//! are visited in order and a day whose (previous, own) context was seen already is skipped. Past
//! the last date where anything but the calendar changes (a window's start or end, the end of the
//! known episode lengths, the zone's last offset change), the context of a day depends only on its
//! date within a year of the same *type* (weekday of 1 January × leap year; 14 types), so a full
//! year is visited only when it is the first of its type. An open-ended window therefore costs at
//! most 14 years of cheap day contexts, and airings are built only for new contexts.
//!
//! Airing lengths come from [`super::plan`] (the daemon's own rule). Where an episode's length is
//! not known — months of an open-ended window after the checked horizon, or after the first 120
//! months of a closed one — the longest episode length of the checked months stands in for it.
//! Pure: no I/O; `today` is given.

use super::plan::check_window;
use super::plan::{Varies, planned_secs_on, slot_times};
use super::{AudioCatalog, Priority, QuietHours, SlotContent, Station};
use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone,
};
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

/// The longest an airing may last, in minutes (a day): what makes the previous day the only one
/// whose airings can reach into a day. `validate` refuses a longer `max_session_minutes`.
pub const MAX_AIRING_MINUTES: u32 = 1440;

/// The first year after the time-zone tables (chrono-tz lists transitions up to 2099; the last
/// offset holds after it). From then on every zone has a fixed offset.
const TZ_TABLE_END_YEAR: i32 = 2101;
/// The earliest date the zone's offset history is looked at.
const TZ_HISTORY_START_YEAR: i32 = 1900;
/// Calendar years repeat after 400 years (146,097 days, whole weeks): every year type that a
/// long stretch of years holds appears within that many.
const GREGORIAN_CYCLE_YEARS: i32 = 400;
/// Year types: weekday of 1 January × leap year.
const YEAR_TYPES: usize = 14;

/// One broken rule, at its first occurrence.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// An airing of slot `slot` (index in `Station::slots`) sounds inside `quiet`: the first
    /// such airing; `hit` is the first local instant inside the window.
    QuietHours {
        slot: usize,
        quiet: QuietHours,
        at: DateTime<FixedOffset>,
        planned_secs: f64,
        hit: NaiveDateTime,
    },
    /// Slots `first` ≤ `second` (equal: a slot with itself) of equal priority overlap; `at` is
    /// the start of the later airing of their first overlap.
    Overlap {
        first: usize,
        second: usize,
        at: DateTime<FixedOffset>,
    },
}

/// Every quiet-hour and overlap finding of `station` over its slots' whole windows (open ones
/// start at today's month, as the other date checks do; see [`check_window`]). Quiet-hour
/// findings come first (by slot), then overlaps (by slot pair).
pub fn check(station: &Station, catalog: &AudioCatalog, today: NaiveDate) -> Vec<Finding> {
    let rules: Vec<SlotRule> = station
        .slots
        .iter()
        .enumerate()
        .filter_map(|(i, _)| SlotRule::new(station, catalog, i, today))
        .collect();
    if rules.is_empty() {
        return Vec::new();
    }
    let mut run = Run {
        station,
        rules: &rules,
        tz: Offsets::new(station.timezone),
        quiet: vec![None; station.slots.len()],
        overlaps: BTreeMap::new(),
    };
    let mut seen: HashSet<Vec<i64>> = HashSet::new();
    let mut prev: Option<(NaiveDate, Vec<i64>)> = None;
    for (a, b) in run.ranges() {
        let mut d = a;
        loop {
            let before = match prev.take() {
                Some((p, c)) if p.succ_opt() == Some(d) => c,
                _ => run.context(d.pred_opt().unwrap_or(d)),
            };
            let own = run.context(d);
            let mut key = before;
            key.push(i64::MIN);
            key.extend_from_slice(&own);
            if seen.insert(key) {
                run.visit(d);
            }
            prev = Some((d, own));
            match d.succ_opt() {
                Some(n) if n <= b => d = n,
                _ => break,
            }
        }
    }
    let mut out: Vec<Finding> = run.quiet.into_iter().flatten().collect();
    out.extend(
        run.overlaps
            .into_iter()
            .map(|((first, second), at)| Finding::Overlap { first, second, at }),
    );
    out
}

/// A slot as the rules see it: where it is checked and how long its airings are.
struct SlotRule {
    idx: usize,
    /// First checked local date.
    start: NaiveDate,
    /// Last local date of the window; `None`: open-ended.
    end: Option<NaiveDate>,
    priority: Priority,
    length: Length,
}

/// An airing's planned length by local date, in milliseconds.
enum Length {
    /// The same every day.
    Fixed(i64),
    /// Episodes: known per period (month or day) up to `known_to`, `beyond` after.
    Episodes {
        varies: Varies,
        known_to: NaiveDate,
        by_period: HashMap<(i32, u32, u32), i64>,
        beyond: i64,
    },
}

fn millis(secs: f64) -> i64 {
    (secs * 1000.0) as i64
}

impl SlotRule {
    fn new(
        station: &Station,
        catalog: &AudioCatalog,
        idx: usize,
        today: NaiveDate,
    ) -> Option<Self> {
        let slot = station.slots.get(idx)?;
        // A closed window from its start; an open one from today's month (as check_window).
        let start = match (slot.from, slot.until) {
            (Some(f), Some(_)) => f,
            (f, _) => {
                let month0 = today.with_day(1)?;
                f.map_or(month0, |f| f.max(month0))
            }
        };
        if slot.until.is_some_and(|u| u < start) {
            return None;
        }
        let varies = match &slot.content {
            SlotContent::Playlist(list) => Varies::of(station, list),
            SlotContent::Relay(_) => Varies::Never,
        };
        // Episode lengths are known over the checked window (None: an open window that starts
        // after the checked months; its episodes are not known yet).
        let known = check_window(slot.from, slot.until, today);
        let length = if let (Varies::ByMonth | Varies::ByDay, Some((_, known_to))) = (varies, known)
        {
            let mut by_period = HashMap::new();
            let mut d = start;
            while d <= known_to {
                by_period
                    .entry(varies.period(d))
                    .or_insert_with(|| millis(planned_secs_on(station, slot, catalog, d)));
                d = match varies {
                    Varies::ByDay | Varies::Never => d.succ_opt(),
                    Varies::ByMonth => first_of_next_month(d),
                }?;
            }
            let beyond = by_period.values().copied().max().unwrap_or(0);
            Length::Episodes {
                varies,
                known_to,
                by_period,
                beyond,
            }
        } else {
            Length::Fixed(millis(planned_secs_on(station, slot, catalog, start)))
        };
        Some(Self {
            idx,
            start,
            end: slot.until,
            priority: slot.priority,
            length,
        })
    }

    fn active(&self, d: NaiveDate) -> bool {
        d >= self.start && self.end.is_none_or(|e| d <= e)
    }

    fn millis_on(&self, d: NaiveDate) -> i64 {
        match &self.length {
            Length::Fixed(ms) => *ms,
            Length::Episodes {
                varies,
                known_to,
                by_period,
                beyond,
            } => {
                if d <= *known_to {
                    by_period.get(&varies.period(d)).copied().unwrap_or(*beyond)
                } else {
                    *beyond
                }
            }
        }
    }

    /// The last day whose length is read from the catalog (episodes), if lengths vary.
    fn known_to(&self) -> Option<NaiveDate> {
        match &self.length {
            Length::Fixed(_) => None,
            Length::Episodes { known_to, .. } => Some(*known_to),
        }
    }
}

fn first_of_next_month(d: NaiveDate) -> Option<NaiveDate> {
    d.with_day(1)?.checked_add_months(chrono::Months::new(1))
}

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// The station's UTC offset, and the first date from which it never changes again.
struct Offsets {
    tz: Tz,
    fixed_from: NaiveDate,
}

impl Offsets {
    fn new(tz: Tz) -> Self {
        Self {
            tz,
            fixed_from: fixed_from(tz),
        }
    }

    /// Offset (seconds east of UTC) at noon UTC of `d`.
    fn at_noon(&self, d: NaiveDate) -> i64 {
        noon_offset(self.tz, d)
    }
}

fn noon_offset(tz: Tz, d: NaiveDate) -> i64 {
    let noon = d.and_hms_opt(12, 0, 0).unwrap_or_default();
    i64::from(tz.offset_from_utc_datetime(&noon).fix().local_minus_utc())
}

/// The first local date from which `tz`'s offset never changes (memoized per zone: a pure
/// function of the zone tables). Found by walking back, a day at a time, from the end of the
/// tables to the last day whose offset differs; at most ~73,000 cheap lookups, once per zone.
fn fixed_from(tz: Tz) -> NaiveDate {
    static MEMO: OnceLock<Mutex<HashMap<Tz, NaiveDate>>> = OnceLock::new();
    let memo = MEMO.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(d) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&tz) {
        return *d;
    }
    let (Some(end), Some(floor)) = (
        ymd(TZ_TABLE_END_YEAR, 1, 1),
        ymd(TZ_HISTORY_START_YEAR, 1, 1),
    ) else {
        return NaiveDate::MIN;
    };
    let last = noon_offset(tz, end);
    let mut d = end;
    while d > floor && noon_offset(tz, d) == last {
        d = d.pred_opt().unwrap_or(floor);
    }
    // `d` is the last day whose noon offset differs (or the floor): the change happened before
    // the next noon, so from two days on the offset is the last one all day.
    let fixed = d + Duration::days(2);
    memo.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(tz, fixed);
    fixed
}

/// Year type: weekday of 1 January (0 = Monday) and leap year.
fn year_type(y: i32) -> Option<(u32, bool)> {
    let jan1 = ymd(y, 1, 1)?;
    Some((
        jan1.weekday().num_days_from_monday(),
        ymd(y, 2, 29).is_some(),
    ))
}

/// One airing, as the rules see it.
#[derive(Debug, Clone, Copy)]
struct Air {
    start_ms: i64,
    end_ms: i64,
    priority: Priority,
    rule: usize,
    at: DateTime<FixedOffset>,
    /// Starts on the visited day (not the day before).
    on_day: bool,
}

struct Run<'a> {
    station: &'a Station,
    rules: &'a [SlotRule],
    tz: Offsets,
    quiet: Vec<Option<Finding>>,
    overlaps: BTreeMap<(usize, usize), DateTime<FixedOffset>>,
}

impl Run<'_> {
    /// The context of a local day: per slot (in window, crontab lines firing, length), then the
    /// station's offsets around it (with the date itself when the offset changes nearby, so such
    /// a day is never taken for another).
    fn context(&self, d: NaiveDate) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.rules.len() * 2 + 4);
        for r in self.rules {
            if !r.active(d) {
                out.push(-1);
                continue;
            }
            out.push(r.millis_on(d));
            let cron = &self.station.slots[r.idx].cron;
            for chunk in cron.chunks(63) {
                let mut bits = 0i64;
                for (k, c) in chunk.iter().enumerate() {
                    if c.fires_on(d) {
                        bits |= 1 << k;
                    }
                }
                out.push(bits);
            }
        }
        let around = [
            self.tz.at_noon(d.pred_opt().unwrap_or(d)),
            self.tz.at_noon(d),
            self.tz.at_noon(d.succ_opt().unwrap_or(d)),
        ];
        out.push(around[1]);
        if around[0] != around[1] || around[1] != around[2] {
            out.push(i64::from(d.num_days_from_ce()));
        }
        out
    }

    /// The date ranges to visit, in order: every day where anything but the calendar changes,
    /// and, in stretches where only the calendar does, the first full year of each type.
    fn ranges(&self) -> Vec<(NaiveDate, NaiveDate)> {
        let Some(g0) = self.rules.iter().map(|r| r.start).min() else {
            return Vec::new();
        };
        let g1: Option<NaiveDate> = self
            .rules
            .iter()
            .map(|r| r.end)
            .try_fold(NaiveDate::MIN, |acc, e| e.map(|e| acc.max(e)));
        let mut cuts: Vec<NaiveDate> = vec![g0, self.tz.fixed_from];
        for r in self.rules {
            cuts.push(r.start);
            cuts.extend(r.end.and_then(|e| e.succ_opt()));
            cuts.extend(r.known_to().and_then(|k| k.succ_opt()));
        }
        cuts.retain(|c| *c >= g0 && g1.is_none_or(|g| *c <= g));
        cuts.sort();
        cuts.dedup();
        let mut out = Vec::new();
        for (i, &a) in cuts.iter().enumerate() {
            let b = match cuts.get(i + 1) {
                Some(next) => next.pred_opt(),
                None => g1,
            };
            if self.calendar_only(a, b) {
                self.year_types(a, b, &mut out);
            } else {
                // Cannot be open-ended: the last stretch starts after every cut.
                let b = b.unwrap_or_else(|| a + Duration::days(366 * GREGORIAN_CYCLE_YEARS as i64));
                out.push((a, b));
            }
        }
        out
    }

    /// Whether only the calendar changes within `a..=b`: the zone's offset is fixed and no
    /// slot's length is read per period there.
    fn calendar_only(&self, a: NaiveDate, b: Option<NaiveDate>) -> bool {
        a >= self.tz.fixed_from
            && self.rules.iter().all(|r| match r.known_to() {
                None => true,
                Some(k) => {
                    k < a || r.start > b.unwrap_or(NaiveDate::MAX) || r.end.is_some_and(|e| e < a)
                }
            })
    }

    /// In a calendar-only stretch: its first (partial) year, the first full year of each type,
    /// and its last (partial) year.
    fn year_types(
        &self,
        a: NaiveDate,
        b: Option<NaiveDate>,
        out: &mut Vec<(NaiveDate, NaiveDate)>,
    ) {
        let y0 = a.year();
        let end_of = |y: i32| ymd(y, 12, 31).unwrap_or(NaiveDate::MAX);
        out.push((a, b.map_or(end_of(y0), |b| b.min(end_of(y0)))));
        let last = b.map(|b| b.year());
        let mut seen = HashSet::new();
        for y in y0 + 1..=y0 + GREGORIAN_CYCLE_YEARS {
            if last.is_some_and(|l| y >= l) || seen.len() == YEAR_TYPES {
                break;
            }
            if let (Some(t), Some(jan1)) = (year_type(y), ymd(y, 1, 1))
                && seen.insert(t)
            {
                out.push((jan1, end_of(y)));
            }
        }
        if let (Some(b), Some(l)) = (b, last)
            && l > y0
            && let Some(jan1) = ymd(l, 1, 1)
        {
            out.push((jan1, b));
        }
    }

    /// The airings of every slot in window starting on local day `d`.
    fn airings(&self, d: NaiveDate, on_day: bool, out: &mut Vec<Air>) {
        for (k, r) in self.rules.iter().enumerate() {
            if !r.active(d) {
                continue;
            }
            let len = r.millis_on(d);
            for at in slot_times(self.station, &self.station.slots[r.idx], d, d) {
                let s = at.timestamp_millis();
                out.push(Air {
                    start_ms: s,
                    end_ms: s + len,
                    priority: r.priority,
                    rule: k,
                    at,
                    on_day,
                });
            }
        }
    }

    /// Check the airings starting on `d` (against themselves and those of the day before).
    fn visit(&mut self, d: NaiveDate) {
        let mut airs = Vec::new();
        if let Some(p) = d.pred_opt() {
            self.airings(p, false, &mut airs);
        }
        self.airings(d, true, &mut airs);
        airs.sort_by_key(|a| (a.start_ms, a.end_ms, a.priority, a.rule));
        // Quiet hours: the first airing of each slot that sounds inside them.
        for a in airs.iter().filter(|a| a.on_day) {
            let r = &self.rules[a.rule];
            if self.quiet[r.idx].is_some() {
                continue;
            }
            let start = a.at.naive_local();
            let end = start + Duration::milliseconds(a.end_ms - a.start_ms);
            for q in &self.station.quiet_hours {
                if let Some(hit) = quiet_overlap(q, start, end) {
                    self.quiet[r.idx] = Some(Finding::QuietHours {
                        slot: r.idx,
                        quiet: *q,
                        at: a.at,
                        planned_secs: (a.end_ms - a.start_ms) as f64 / 1000.0,
                        hit,
                    });
                    break;
                }
            }
        }
        // Overlaps: a later (or equal) airing starting before an earlier one ends; the earliest
        // such start of each pair of slots.
        let mut today: BTreeMap<(usize, usize), DateTime<FixedOffset>> = BTreeMap::new();
        for (i, x) in airs.iter().enumerate() {
            for y in &airs[i + 1..] {
                if y.start_ms >= x.end_ms {
                    break;
                }
                if !y.on_day || x.priority != y.priority {
                    continue;
                }
                let (p, q) = (self.rules[x.rule].idx, self.rules[y.rule].idx);
                let key = (p.min(q), p.max(q));
                if self.overlaps.contains_key(&key) {
                    continue;
                }
                today
                    .entry(key)
                    .and_modify(|at| *at = (*at).min(y.at))
                    .or_insert(y.at);
            }
        }
        self.overlaps.extend(today);
    }
}

/// The first local instant of `start..end` that lies inside the quiet window `q`, if any.
pub fn quiet_overlap(
    q: &QuietHours,
    start: NaiveDateTime,
    end: NaiveDateTime,
) -> Option<NaiveDateTime> {
    if q.contains(start.time()) {
        return Some(start);
    }
    // Next quiet start strictly after `start`.
    let mut qs = start.date().and_time(q.start);
    if qs <= start {
        qs += Duration::days(1);
    }
    (qs < end).then_some(qs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    fn parse_quiet(s: &str) -> Option<QuietHours> {
        let (a, b) = s.split_once('-')?;
        let t = |x: &str| NaiveTime::parse_from_str(x, "%H:%M").ok();
        Some(QuietHours {
            start: t(a)?,
            end: t(b)?,
        })
    }

    #[test]
    fn quiet_overlap_start_inside_runs_into_and_clear() {
        let q = parse_quiet("21:30-05:00").unwrap_or(QuietHours {
            start: NaiveTime::MIN,
            end: NaiveTime::MIN,
        });
        let at = |h, m| d(2026, 1, 5).and_hms_opt(h, m, 0).unwrap_or_default();
        let mins = |n| chrono::Duration::minutes(n);
        assert_eq!(
            quiet_overlap(&q, at(22, 0), at(22, 0) + mins(1)),
            Some(at(22, 0))
        );
        assert_eq!(
            quiet_overlap(&q, at(4, 59), at(4, 59) + mins(1)),
            Some(at(4, 59))
        );
        assert_eq!(
            quiet_overlap(&q, at(21, 20), at(21, 20) + mins(15)),
            Some(at(21, 30))
        );
        assert_eq!(quiet_overlap(&q, at(21, 20), at(21, 20) + mins(10)), None);
        assert_eq!(quiet_overlap(&q, at(5, 0), at(5, 0) + mins(30)), None);
    }

    /// The periodic tail relies on it: past the tables every zone keeps one offset.
    #[test]
    fn every_zone_has_one_offset_after_the_tables() {
        for tz in chrono_tz::TZ_VARIANTS {
            let at = |y, m| noon_offset(tz, d(y, m, 1));
            let last = at(TZ_TABLE_END_YEAR, 1);
            for (y, m) in [(TZ_TABLE_END_YEAR, 7), (2250, 4), (2400, 10)] {
                assert_eq!(at(y, m), last, "{tz} {y}-{m}");
            }
        }
        assert!(fixed_from(chrono_tz::Asia::Ho_Chi_Minh) < d(2000, 1, 1));
        let berlin = fixed_from(chrono_tz::Europe::Berlin);
        assert!(berlin > d(2099, 3, 1) && berlin < d(2100, 1, 1), "{berlin}");
    }
}
