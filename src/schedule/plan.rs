//! Expansion of a validated station's schedule into planned airings.
//!
//! **Invariant:** pure and deterministic: the same station, catalog and range always give the same
//! airings in the same order (instant, then priority high→low, then slot id). The station daemon,
//! `loa plan` and the collector's report all call this, so they agree on what was planned.

use super::file::resolve_episode;
use super::{
    AudioCatalog, AudioFacts, ItemRef, Priority, ProgramAudio, RelaySpec, Slot, SlotContent,
    StartPolicy, Station,
};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
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
    let mut out = Vec::new();
    for slot in &station.slots {
        slot_airings(station, slot, catalog, from, to, &mut out);
    }
    sort_airings(&mut out);
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

fn sort_airings(out: &mut [PlannedAiring]) {
    out.sort_by(|a, b| {
        a.at.cmp(&b.at)
            .then(b.priority.cmp(&a.priority))
            .then_with(|| a.slot.cmp(&b.slot))
    });
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

/// Whether the items of `list` can differ between two dates of the same month (an episode
/// pattern with `{dd}`).
fn items_vary_by_day(station: &Station, list: &[ItemRef]) -> bool {
    list.iter().any(|item| match item {
        ItemRef::Program(pid) => matches!(
            station.programs.get(pid).map(|p| &p.audio),
            Some(ProgramAudio::Episodes(pattern)) if pattern.contains("{dd}")
        ),
        ItemRef::File(_) => false,
    })
}

/// A slot's playlist resolved for one period (month, or day for `{dd}` episodes).
struct Resolved {
    /// (year, month, day or 0).
    period: (i32, u32, u32),
    items: Arc<[PathBuf]>,
    planned_secs: f64,
}

/// Append the airings of one slot whose local date lies in `from..=to` (clipped to the slot's
/// validity window), in order of instant.
pub(crate) fn slot_airings(
    station: &Station,
    slot: &Slot,
    catalog: &AudioCatalog,
    from: NaiveDate,
    to: NaiveDate,
    out: &mut Vec<PlannedAiring>,
) {
    let from = slot.from.map_or(from, |f| f.max(from));
    let to = slot.until.map_or(to, |u| u.min(to));
    if from > to {
        return;
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
    if times.is_empty() {
        return;
    }
    // Shared by every airing of this slot (see `PlannedAiring`).
    let (program, category) = filing(station, slot);
    let station_id: Arc<str> = station.id.as_str().into();
    let slot_id: Arc<str> = slot.id.as_str().into();
    let max_secs = slot.max_minutes.saturating_mul(60);
    let (list, relay): (&[ItemRef], Option<Arc<RelaySpec>>) = match &slot.content {
        SlotContent::Playlist(v) => (v, None),
        SlotContent::Relay(r) => (&r.fallback, Some(Arc::new(r.clone()))),
    };
    // Items and length only change with the month (or the day, for `{dd}` episodes): resolve
    // once per such period.
    let by_day = items_vary_by_day(station, list);
    let mut cached: Option<Resolved> = None;
    out.reserve(times.len());
    for at in times {
        let date = at.date_naive();
        let period = (
            date.year(),
            date.month(),
            if by_day { date.day() } else { 0 },
        );
        let resolved = match cached.take() {
            Some(r) if r.period == period => r,
            _ => {
                let items: Arc<[PathBuf]> = resolve_items(station, list, date).into();
                let secs = match &relay {
                    Some(r) => f64::from(r.minutes.saturating_mul(60)),
                    None => total_secs(&items, catalog),
                };
                Resolved {
                    period,
                    items,
                    planned_secs: secs.min(f64::from(max_secs)),
                }
            }
        };
        let (items, planned_secs) = (resolved.items.clone(), resolved.planned_secs);
        cached = Some(resolved);
        out.push(PlannedAiring {
            station: station_id.clone(),
            slot: slot_id.clone(),
            program: program.clone(),
            category: category.clone(),
            at,
            items,
            planned_secs,
            priority: slot.priority,
            start: slot.start,
            grace_secs: slot.grace_secs,
            max_secs,
            relay: relay.clone(),
        });
    }
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
}
