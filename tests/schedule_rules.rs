//! The quiet-hour and overlap rules (`schedule::rules::check`) are exact: on random stations they
//! give the same findings, at the same first airing, as a brute-force expansion of every airing of
//! the whole window with `schedule::expand` (the daemon's own plan). Open-ended windows are
//! brute-forced 40 years past the last start or end (every year type occurs within 28 years).
//!
//! Cases: `PROPTEST_CASES` (default 24 here, for CI). Long run, e.g.
//! `PROPTEST_CASES=2000 cargo test --release --test schedule_rules`.

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, NaiveTime};
use loa::crontab::Crontab;
use loa::schedule::rules::{Finding, check, quiet_overlap};
use loa::schedule::{
    AudioCatalog, AudioFacts, ItemRef, LoudnessTarget, Priority, Program, ProgramAudio, QuietHours,
    RelaySpec, Slot, SlotContent, StartPolicy, Station, StationKind, expand,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// CI default number of cases.
const DEFAULT_CASES: u32 = 24;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 27).expect("date")
}

/// Crontab lines with leap days, last days, nth weekdays, year ends, DST gaps (Berlin 02:xx on
/// March Sundays) and several firings a day.
const CRONS: &[&str] = &[
    "30 5 * * *",
    "0 22 29 2 *",
    "0 12 * * MON",
    "*/20 4-6 * * *",
    "0 23 L * *",
    "15 21 * * 5#3",
    "30 2 25-31 3 0",
    "0 2 * 3,10 SUN",
    "0 0 1 1 *",
    "50 23 31 12 *",
    "0 0 * * 1-5",
    "45 12 29 * *",
];

const QUIETS: &[&str] = &["21:30-05:00", "12:00-13:30", "23:00-23:30", "00:00-04:00"];

/// Plain files and their lengths (seconds).
const FILES: &[(&str, f64)] = &[("a.ogg", 60.0), ("b.ogg", 600.0), ("c.ogg", 1800.0)];

fn episode_secs(y: i32, m: u32) -> f64 {
    f64::from(300 + ((y as u32 * 12 + m) * 37) % 900)
}

/// Every plain file, and a monthly episode for 2026–2045 of varying length.
fn catalog() -> AudioCatalog {
    let mut files: BTreeMap<PathBuf, AudioFacts> = FILES
        .iter()
        .map(|(f, s)| (PathBuf::from(f), AudioFacts::Playable { duration_secs: *s }))
        .collect();
    for y in 2026..=2045 {
        for m in 1..=12 {
            files.insert(
                PathBuf::from(format!("ep/{y}-{m:02}.ogg")),
                AudioFacts::Playable {
                    duration_secs: episode_secs(y, m),
                },
            );
        }
    }
    AudioCatalog {
        root: PathBuf::from("audio"),
        files,
    }
}

/// A generated slot: crontab lines, window, content, priority.
#[derive(Debug, Clone)]
struct GenSlot {
    cron: Vec<usize>,
    from: (i32, u32, u32),
    /// Window length in days; `None`: open-ended.
    days: Option<i64>,
    /// 0..3: a file; 3: a relay; 4: the monthly episode (closed windows only).
    content: usize,
    relay_minutes: u32,
    high: bool,
    max_minutes: u32,
}

fn gen_slot() -> impl Strategy<Value = GenSlot> {
    (
        prop::collection::vec(0..CRONS.len(), 1..=2),
        (2026i32..=2030, 1u32..=12, 1u32..=28),
        prop_oneof![
            3 => (1i64..=365 * 12).prop_map(Some),
            1 => Just(None),
        ],
        0usize..5,
        1u32..=50,
        any::<bool>(),
        prop_oneof![Just(30u32), Just(60u32)],
    )
        .prop_map(
            |(cron, from, days, content, relay_minutes, high, max_minutes)| GenSlot {
                cron,
                from,
                days,
                content,
                relay_minutes: relay_minutes.min(max_minutes),
                high,
                max_minutes,
            },
        )
}

fn station(slots: &[GenSlot], quiet: &[usize], berlin: bool) -> Station {
    let d = |(y, m, day): (i32, u32, u32)| NaiveDate::from_ymd_opt(y, m, day).expect("date");
    let slots = slots
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let from = d(g.from);
            let until = g.days.map(|n| from + chrono::Duration::days(n));
            let content = match g.content {
                3 => SlotContent::Relay(RelaySpec {
                    url: "http://127.0.0.1:8000/x.mp3".into(),
                    minutes: g.relay_minutes,
                    fallback: vec![],
                    silence_threshold_dbfs: -50.0,
                }),
                4 => SlotContent::Playlist(vec![
                    ItemRef::File("a.ogg".into()),
                    ItemRef::Program("ep".into()),
                ]),
                k => SlotContent::Playlist(vec![ItemRef::File(FILES[k].0.into())]),
            };
            Slot {
                id: format!("s{i}"),
                cron: g
                    .cron
                    .iter()
                    .map(|&c| Crontab::parse(CRONS[c]).expect("valid crontab"))
                    .collect(),
                from: Some(from),
                until,
                program: None,
                content,
                priority: if g.high {
                    Priority::Priority
                } else {
                    Priority::Normal
                },
                start: StartPolicy::Hard,
                grace_secs: 0,
                max_minutes: g.max_minutes,
            }
        })
        .collect();
    let hhmm = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").expect("time");
    Station {
        id: "s".into(),
        name: "S".into(),
        kind: StationKind::Ward,
        area_code: "1".into(),
        timezone: if berlin {
            chrono_tz::Europe::Berlin
        } else {
            chrono_tz::Asia::Ho_Chi_Minh
        },
        quiet_hours: quiet
            .iter()
            .map(|&q| {
                let (a, b) = QUIETS[q].split_once('-').expect("window");
                QuietHours {
                    start: hhmm(a),
                    end: hhmm(b),
                }
            })
            .collect(),
        max_session_minutes: 60,
        loudness: LoudnessTarget::default(),
        collector: None,
        programs: BTreeMap::from([(
            "ep".to_string(),
            Program {
                id: "ep".into(),
                title: "Episode".into(),
                category: "cchc".into(),
                audio: ProgramAudio::Episodes("ep/{yyyy}-{mm}.ogg".into()),
            },
        )]),
        slots,
        source: PathBuf::from("s.toml"),
    }
}

/// The brute force: every airing of every slot over its whole window (open ones: from today's
/// month to 40 years past the last start or end), then the rules applied airing by airing.
fn brute_force(st: &Station, catalog: &AudioCatalog) -> Vec<Finding> {
    let month0 = today().with_day(1).expect("first of month");
    let start_of = |s: &Slot| match (s.from, s.until) {
        (Some(f), Some(_)) => f,
        (f, _) => f.map_or(month0, |f| f.max(month0)),
    };
    let g0 = st.slots.iter().map(start_of).min().expect("a slot");
    let last = st
        .slots
        .iter()
        .map(|s| s.until.unwrap_or(start_of(s)))
        .max()
        .expect("a slot");
    let g1 = st
        .slots
        .iter()
        .map(|s| s.until.unwrap_or(last + Months::new(12 * 40)))
        .max()
        .expect("a slot");
    let index: BTreeMap<&str, usize> = st
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    // (start ms, end ms, priority, slot, airing)
    let mut airs = Vec::new();
    for a in expand(st, catalog, g0, g1) {
        let i = index[&*a.slot];
        if a.at.date_naive() < start_of(&st.slots[i]) {
            continue;
        }
        let s = a.at.timestamp_millis();
        let e = s + (a.planned_secs * 1000.0) as i64;
        airs.push((s, e, a.priority, i, a));
    }
    airs.sort_by_key(|x| (x.0, x.1, x.2, x.3));
    let mut quiet: Vec<Option<Finding>> = vec![None; st.slots.len()];
    for (s, e, _, i, a) in &airs {
        if quiet[*i].is_some() {
            continue;
        }
        let start: NaiveDateTime = a.at.naive_local();
        let end = start + chrono::Duration::milliseconds(e - s);
        for q in &st.quiet_hours {
            if let Some(hit) = quiet_overlap(q, start, end) {
                quiet[*i] = Some(Finding::QuietHours {
                    slot: *i,
                    quiet: *q,
                    at: a.at,
                    planned_secs: (e - s) as f64 / 1000.0,
                    hit,
                });
                break;
            }
        }
    }
    let mut overlaps = BTreeMap::new();
    for (k, x) in airs.iter().enumerate() {
        for y in &airs[k + 1..] {
            if y.0 >= x.1 {
                break;
            }
            if x.2 != y.2 {
                continue;
            }
            let key = (x.3.min(y.3), x.3.max(y.3));
            overlaps
                .entry(key)
                .and_modify(|at| {
                    if y.4.at < *at {
                        *at = y.4.at;
                    }
                })
                .or_insert(y.4.at);
        }
    }
    let mut out: Vec<Finding> = quiet.into_iter().flatten().collect();
    out.extend(
        overlaps
            .into_iter()
            .map(|((first, second), at)| Finding::Overlap { first, second, at }),
    );
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rules_equal_brute_force_over_the_whole_window(
        slots in prop::collection::vec(gen_slot(), 1..=3),
        quiet in prop::collection::vec(0..QUIETS.len(), 0..=2),
        berlin in any::<bool>(),
    ) {
        let mut slots = slots;
        for g in &mut slots {
            // Episodes are known for 2026–2045 only: keep their windows inside.
            if g.content == 4 {
                g.days = Some(g.days.unwrap_or(365).min(365 * 10));
            }
            // Open windows in Berlin would need brute force up to the end of its DST table.
            if berlin && g.days.is_none() {
                g.days = Some(365 * 5);
            }
        }
        let st = station(&slots, &quiet, berlin);
        let cat = catalog();
        let exact = check(&st, &cat, today());
        let brute = brute_force(&st, &cat);
        prop_assert_eq!(exact, brute);
    }
}

/// The cases of issue #10.15, with the finding's date: a leap day three years after `from`, an
/// open-ended slot's leap day beyond the next 12 months, and an overlap once the later slot's
/// window starts 14 months after the other's.
#[test]
fn findings_years_into_the_window() {
    let g = |cron: Vec<usize>, from, days| GenSlot {
        cron,
        from,
        days,
        content: 0,
        relay_minutes: 1,
        high: false,
        max_minutes: 30,
    };
    let cat = catalog();
    // 05:30 daily and 22:00 on 29 February, 2026-01-01 .. 2028-12-31; quiet 21:30-05:00.
    for days in [Some(365 * 3), None] {
        let st = station(&[g(vec![0, 1], (2026, 1, 1), days)], &[0], false);
        let found = check(&st, &cat, today());
        assert_eq!(found.len(), 1, "{found:?}");
        let Finding::QuietHours { at, .. } = &found[0] else {
            panic!("{found:?}");
        };
        assert_eq!(at.to_rfc3339(), "2028-02-29T22:00:00+07:00");
    }
    // Daily 05:30 from 2026; Mondays 05:30 from 2027-03-01 (a Monday): first overlap then.
    let mut later = g(vec![0], (2027, 3, 1), Some(300));
    later.cron = vec![];
    let mut st = station(
        &[g(vec![0], (2026, 1, 1), Some(365 * 3)), later],
        &[],
        false,
    );
    st.slots[1].cron = vec![Crontab::parse("30 5 * * MON").expect("valid crontab")];
    let found = check(&st, &cat, today());
    assert_eq!(
        found,
        vec![Finding::Overlap {
            first: 0,
            second: 1,
            at: chrono::DateTime::parse_from_rfc3339("2027-03-01T05:30:00+07:00").expect("time"),
        }]
    );
}
