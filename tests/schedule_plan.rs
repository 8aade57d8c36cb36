//! Expansion: `loa plan` on the samples (the "Done when" check), and the pure `expand` /
//! `expand_between` on schedules written here with a hand-made audio catalog.

use chrono::{NaiveDate, TimeZone, Utc};
use loa::schedule::{AudioCatalog, AudioFacts, Priority, expand, expand_between, parse_station};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
}

fn plan_json(station: &str, from: &str, to: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_loa"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "plan",
            "--station",
            station,
            "--from",
            from,
            "--to",
            to,
            "--json",
            "--today",
            "2026-11-27",
        ])
        .output()
        .expect("loa runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn city_2019_plan_lists_twelve_distinct_monthly_episodes() {
    let airings = plan_json("tp-quang-ngai", "2019-01-01", "2019-12-31");
    let episodes: BTreeSet<String> = airings
        .iter()
        .filter(|a| a["category"] == "cchc")
        .flat_map(|a| a["items"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i.as_str().map(str::to_string))
        .filter(|i| i.starts_with("cchc/"))
        .collect();
    let expected: BTreeSet<String> = (1..=12).map(|m| format!("cchc/2019-{m:02}.ogg")).collect();
    assert_eq!(episodes, expected);
    // Each month: the premiere plus at least one repeat, airing that month's episode.
    for m in 1..=12 {
        let ep = format!("cchc/2019-{m:02}.ogg");
        let month = format!("2019-{m:02}-");
        let n = airings
            .iter()
            .filter(|a| a["at"].as_str().is_some_and(|t| t.starts_with(&month)))
            .filter(|a| {
                a["items"]
                    .as_array()
                    .is_some_and(|i| i.iter().any(|x| x == &ep))
            })
            .count();
        assert!(n >= 2, "month {m}: {n} airings of {ep}");
    }
}

#[test]
fn json_lines_carry_the_agreed_fields() {
    let airings = plan_json("phuong-tran-phu", "2026-12-01", "2026-12-01");
    assert_eq!(airings.len(), 3, "{airings:?}");
    for a in &airings {
        for f in [
            "station",
            "slot",
            "program",
            "category",
            "at",
            "items",
            "planned_secs",
            "priority",
            "source",
            "key",
        ] {
            assert!(a.get(f).is_some(), "field {f} missing in {a}");
        }
        let at = a["at"].as_str().expect("at is a string");
        assert!(at.ends_with("+07:00"), "{at}");
        let utc = chrono::DateTime::parse_from_rfc3339(at)
            .expect("RFC 3339")
            .with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert_eq!(
            a["key"],
            format!("{}@{utc}", a["slot"].as_str().unwrap_or(""))
        );
    }
    assert_eq!(airings[0]["at"], "2026-12-01T05:30:00+07:00");
    assert_eq!(airings[0]["source"], "file");
    assert!(
        airings[0]["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x == "cchc/2026-12.ogg"))
    );
    let relay = &airings[2];
    assert_eq!(relay["source"], "relay");
    assert_eq!(relay["planned_secs"], 900.0);
}

#[test]
fn table_output_is_in_local_time_with_offset() {
    let out = Command::new(env!("CARGO_BIN_EXE_loa"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "plan",
            "--station",
            "xa-nghia-dong",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-01",
            "--today",
            "2026-11-27",
        ])
        .output()
        .expect("loa runs");
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("2026-12-01 Tue 05:30 +07:00"), "{s}");
    assert!(s.contains("relay http://127.0.0.1:8000/city.mp3"), "{s}");
}

#[test]
fn unknown_station_is_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_loa"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "plan",
            "--station",
            "khong-co",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
        ])
        .output()
        .expect("loa runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("khong-co.toml"));
}

// ---- pure expansion ---------------------------------------------------------------------------

fn catalog(files: &[(&str, f64)]) -> AudioCatalog {
    AudioCatalog {
        root: PathBuf::from("audio"),
        files: files
            .iter()
            .map(|(f, s)| (PathBuf::from(f), AudioFacts::Playable { duration_secs: *s }))
            .collect(),
    }
}

fn berlin_catalog() -> AudioCatalog {
    let mut files = vec![("j.ogg", 2.5)];
    let eps: Vec<String> = (1..=12).map(|m| format!("ep/2026-{m:02}.ogg")).collect();
    for e in &eps {
        files.push((e.as_str(), 10.0));
    }
    catalog(&files)
}

const BERLIN: &str = r#"
id = "berlin"
name = "Test Berlin"
kind = "city"
area_code = "1"
timezone = "Europe/Berlin"
max_session_minutes = 30

[[programs]]
id = "ep"
category = "cchc"
episodes = "ep/{yyyy}-{mm}.ogg"

[[slots]]
id = "midnight"
cron = "30 0 1 * *"
from = 2026-01-01
until = 2026-12-31
play = ["j.ogg", "program:ep"]

[[slots]]
id = "gap"
cron = "30 2 29 3 *"
from = 2026-01-01
until = 2026-12-31
play = ["j.ogg"]
priority = "priority"

[[slots]]
id = "same-time"
cron = "30 0 1 * *"
from = 2026-01-01
until = 2026-12-31
play = ["j.ogg"]
priority = "emergency"

[[slots]]
id = "relay"
cron = "0 12 * * SUN"
from = 2026-06-01
until = 2026-06-30
relay = { url = "https://example.org/live.mp3", minutes = 20, fallback = ["program:ep"] }
max_minutes = 12
"#;

fn berlin() -> (loa::schedule::Station, AudioCatalog) {
    let cat = berlin_catalog();
    let st =
        parse_station(Path::new("berlin.toml"), BERLIN, &cat, d(2026, 1, 10)).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.0.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    (st, cat)
}

#[test]
fn episodes_resolve_by_the_local_month_and_lengths_add_up() {
    let (st, cat) = berlin();
    let a = expand(&st, &cat, d(2026, 3, 1), d(2026, 3, 1));
    let mid = a
        .iter()
        .find(|a| &*a.slot == "midnight")
        .expect("midnight airing");
    // 00:30 local on 1 March is still February in UTC: the episode is March's.
    assert_eq!(mid.at.to_rfc3339(), "2026-03-01T00:30:00+01:00");
    assert_eq!(
        *mid.items,
        vec![PathBuf::from("j.ogg"), PathBuf::from("ep/2026-03.ogg")]
    );
    assert_eq!(mid.planned_secs, 12.5);
    assert_eq!(&*mid.category, "cchc");
    assert_eq!(mid.key(), "midnight@2026-02-28T23:30:00Z");
}

#[test]
fn same_instant_sorts_by_priority_high_first() {
    let (st, cat) = berlin();
    let a = expand(&st, &cat, d(2026, 1, 1), d(2026, 12, 31));
    let first: Vec<_> = a.iter().take(2).map(|a| (&*a.slot, a.priority)).collect();
    assert_eq!(
        first,
        vec![
            ("same-time", Priority::Emergency),
            ("midnight", Priority::Normal)
        ]
    );
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
}

#[test]
fn dst_gap_and_offsets() {
    let (st, cat) = berlin();
    let a = expand(&st, &cat, d(2026, 3, 29), d(2026, 3, 29));
    let gap: Vec<_> = a.iter().filter(|a| &*a.slot == "gap").collect();
    assert_eq!(gap.len(), 1);
    // 02:30 does not exist on 29 March 2026 in Berlin: fires once, right after the gap, in CEST.
    assert_eq!(gap[0].at.to_rfc3339(), "2026-03-29T03:00:00+02:00");
    let summer = expand(&st, &cat, d(2026, 7, 1), d(2026, 7, 1));
    assert_eq!(summer[0].at.to_rfc3339(), "2026-07-01T00:30:00+02:00");
}

#[test]
fn relay_length_is_capped_and_window_clips() {
    let (st, cat) = berlin();
    let a: Vec<_> = expand(&st, &cat, d(2026, 1, 1), d(2026, 12, 31))
        .into_iter()
        .filter(|a| &*a.slot == "relay")
        .collect();
    // Sundays of June 2026: 7, 14, 21, 28.
    assert_eq!(a.len(), 4);
    assert!(
        a.iter()
            .all(|a| a.planned_secs == 720.0 && a.max_secs == 720)
    );
    assert_eq!(*a[0].items, vec![PathBuf::from("ep/2026-06.ogg")]);
    assert_eq!(a[0].source(), "relay");
    assert_eq!(&*a[0].category, "relay");
}

#[test]
fn expand_between_takes_utc_instants_end_exclusive() {
    let (st, cat) = berlin();
    let from = Utc
        .with_ymd_and_hms(2026, 2, 28, 23, 30, 0)
        .single()
        .expect("instant");
    let to = Utc
        .with_ymd_and_hms(2026, 3, 31, 22, 30, 0)
        .single()
        .expect("instant");
    let a = expand_between(&st, &cat, from, to);
    let slots: Vec<_> = a.iter().map(|a| &*a.slot).collect();
    assert_eq!(slots, vec!["same-time", "midnight", "gap"]);
    // The end is exclusive: 1 April 00:30 CEST = 31 March 22:30 UTC is not included.
    let b = expand_between(&st, &cat, from, to + chrono::Duration::seconds(1));
    assert_eq!(b.len(), 5);
}
