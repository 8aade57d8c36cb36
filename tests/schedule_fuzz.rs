//! Fuzzing the schedule parser/validator with proptest: mutated sample files (byte flips,
//! truncation, line shuffles, line drops/duplicates) and random TOML built from the schedule
//! vocabulary. Property: `parse_station` never panics, and every error it returns is located
//! (line ≥ 1, column ≥ 1) and says what is wrong.
//!
//! Cases per property: `PROPTEST_CASES` (default 64 here, for CI). Long run, e.g.:
//! `PROPTEST_CASES=20000 cargo test --release --test schedule_fuzz`.

use chrono::NaiveDate;
use loa::schedule::{AudioCatalog, AudioFacts, parse_station};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// CI default number of cases per property.
const DEFAULT_CASES: u32 = 64;

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

const SAMPLES: [(&str, &str); 4] = [
    (
        "tp-quang-ngai.toml",
        include_str!("../schedules/tp-quang-ngai.toml"),
    ),
    (
        "phuong-tran-phu.toml",
        include_str!("../schedules/phuong-tran-phu.toml"),
    ),
    (
        "phuong-le-hong-phong.toml",
        include_str!("../schedules/phuong-le-hong-phong.toml"),
    ),
    (
        "xa-nghia-dong.toml",
        include_str!("../schedules/xa-nghia-dong.toml"),
    ),
];

/// A catalog holding every file the samples name (pure: no probing), 10 s each.
fn catalog() -> AudioCatalog {
    let mut files: Vec<String> = [
        "jingle.ogg",
        "closing.ogg",
        "ident-city.ogg",
        "notices/tran-phu.ogg",
        "notices/le-hong-phong.ogg",
        "notices/nghia-dong.ogg",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for y in [2019, 2026, 2027] {
        for m in 1..=12 {
            files.push(format!("cchc/{y}-{m:02}.ogg"));
        }
    }
    AudioCatalog {
        root: PathBuf::from("audio"),
        files: files
            .into_iter()
            .map(|f| {
                (
                    PathBuf::from(f),
                    AudioFacts::Playable {
                        duration_secs: 10.0,
                    },
                )
            })
            .collect(),
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 27).unwrap_or_default()
}

/// Parse; assert the property.
fn assert_total(name: &str, text: &str) -> Result<(), TestCaseError> {
    let cat = catalog();
    match parse_station(Path::new(name), text, &cat, today()) {
        Ok(st) => prop_assert!(!st.id.is_empty()),
        Err(errs) => {
            prop_assert!(!errs.0.is_empty());
            for e in &errs.0 {
                prop_assert!(e.line >= 1 && e.column >= 1, "unlocated error: {e}");
                prop_assert!(
                    e.line <= text.lines().count().max(1) + 1,
                    "line past the end: {e}"
                );
                prop_assert!(!e.message.is_empty(), "empty message: {e:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn samples_are_valid() {
    for (name, text) in SAMPLES {
        let r = parse_station(Path::new(name), text, &catalog(), today());
        assert!(r.is_ok(), "{name}: {r:?}");
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Truncate { at: usize },
    SwapLines { a: usize, b: usize },
    DropLine { at: usize },
    DupLine { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (
            any::<usize>(),
            prop::sample::select(b"\"'[]{}=,#\n0123456789-:*\\".to_vec())
        )
            .prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Mutation::DropLine { at }),
        any::<usize>().prop_map(|at| Mutation::DupLine { at }),
    ]
}

fn apply(text: &str, muts: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for m in muts {
        match *m {
            Mutation::Flip { at, byte } => {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] = byte;
                }
            }
            Mutation::Truncate { at } => {
                let n = at % (bytes.len() + 1);
                bytes.truncate(n);
            }
            Mutation::SwapLines { a, b } => {
                let s = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let (i, j) = (a % lines.len(), b % lines.len());
                    lines.swap(i, j);
                }
                bytes = lines.join("\n").into_bytes();
            }
            Mutation::DropLine { at } => {
                let s = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let i = at % lines.len();
                    lines.remove(i);
                }
                bytes = lines.join("\n").into_bytes();
            }
            Mutation::DupLine { at } => {
                let s = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let i = at % lines.len();
                    lines.insert(i, lines[i]);
                }
                bytes = lines.join("\n").into_bytes();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"30 5 * * MON-FRI\"".to_string()),
        Just("\"0 19 * * MON#1\"".to_string()),
        Just("\"0 11 L * *\"".to_string()),
        Just("\"* * * * * *\"".to_string()),
        Just("\"*/5 * * * *\"".to_string()),
        Just("[\"jingle.ogg\", \"program:cchc\"]".to_string()),
        Just("\"program:cchc\"".to_string()),
        Just("\"cchc/{yyyy}-{mm}.ogg\"".to_string()),
        Just("\"21:30-05:00\"".to_string()),
        Just("[\"23:00-05:00\", \"12:00-13:00\"]".to_string()),
        Just("{ url = \"http://127.0.0.1:8000/city.mp3\", minutes = 15, fallback = [\"jingle.ogg\"] }".to_string()),
        Just("2026-01-01".to_string()),
        Just("2027-12-31T05:00:00Z".to_string()),
        Just("\"Europe/Berlin\"".to_string()),
        Just("\"ward\"".to_string()),
        Just("\"emergency\"".to_string()),
        Just("\"hard\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..200).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[a-z0-9 *,/#L-]{0,20}".prop_map(|s| format!("\"{s}\"")),
        "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "id",
        "name",
        "kind",
        "area_code",
        "timezone",
        "quiet_hours",
        "max_session_minutes",
        "category",
        "file",
        "episodes",
        "title",
        "cron",
        "from",
        "until",
        "program",
        "play",
        "relay",
        "priority",
        "start",
        "grace_secs",
        "max_minutes",
        "url",
        "heartbeat_secs",
        "integrated_lufs",
        "bogus",
    ])
    .prop_map(str::to_string)
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => Just("[[slots]]".to_string()),
        1 => Just("[[programs]]".to_string()),
        1 => Just("[collector]".to_string()),
        1 => Just("[loudness]".to_string()),
        1 => Just("# comment: Đài truyền thanh".to_string()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_samples_never_panic(which in 0usize..4, muts in prop::collection::vec(mutation(), 1..6)) {
        let (name, text) = SAMPLES[which];
        assert_total(name, &apply(text, &muts))?;
    }

    #[test]
    fn random_toml_never_panics(head in prop::collection::vec(line(), 0..8), body in prop::collection::vec(line(), 0..40)) {
        let mut text = String::from(
            "id = \"bad\"\nname = \"x\"\nkind = \"ward\"\narea_code = \"1\"\n",
        );
        for l in head.iter().chain(&body) {
            text.push_str(l);
            text.push('\n');
        }
        assert_total("bad.toml", &text)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        assert_total("bad.toml", &text)?;
    }
}
