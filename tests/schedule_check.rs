//! `loa check` on the real binary: the samples pass, and every error class is reported with
//! file:line:column, the field and the message, exit code 2 (fixtures in tests/fixtures/schedules/).

use std::path::Path;
use std::process::{Command, Output};

const TODAY: &str = "2026-11-27";

fn loa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loa"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("the loa binary runs")
}

/// Run `loa check` on one broken fixture and assert exit 2 and an error at `line` for `field`
/// whose text contains `message`.
fn check(case: &str, audio: &str, line: usize, field: &str, message: &str) {
    let file = format!("tests/fixtures/schedules/{case}/bad.toml");
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(&file).is_file());
    let out = loa(&["check", &file, "--audio", audio, "--today", TODAY]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{case}: exit code; stderr:\n{stderr}"
    );
    let prefix = format!("{file}:{line}:");
    let hit = stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{case}: no error at {prefix}; stderr:\n{stderr}"));
    assert!(
        hit.contains(&format!(": {field}: ")),
        "{case}: field `{field}` not named in: {hit}"
    );
    assert!(hit.contains(message), "{case}: `{message}` not in: {hit}");
    assert!(stderr.contains("hint: "), "{case}: no hint:\n{stderr}");
    assert!(out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("ok  "));
}

#[test]
fn samples_pass_with_one_summary_line_per_station() {
    let out = loa(&["check", "schedules/", "--today", TODAY]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ok: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ok  ")).collect();
    assert_eq!(ok.len(), 4, "{stdout}");
    let city = ok
        .iter()
        .find(|l| l.contains("tp-quang-ngai"))
        .expect("city station listed");
    assert!(city.contains("city") && city.contains("Quảng Ngãi") && city.contains("next: "));
    assert_eq!(stdout.lines().filter(|l| l.contains("  ward  ")).count(), 3);
}

#[test]
fn default_path_is_schedules_dir() {
    let out = loa(&["check", "--today", TODAY]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("ok  "))
            .count(),
        4
    );
}

#[test]
fn toml_syntax() {
    check(
        "syntax",
        "audio",
        16,
        "slots[0].cron",
        "invalid basic string",
    );
}

#[test]
fn unknown_field() {
    check(
        "unknown-field",
        "audio",
        18,
        "slots[0].colour",
        "unknown field `colour`",
    );
}

#[test]
fn missing_field() {
    check(
        "missing-field",
        "audio",
        14,
        "slots[0].cron",
        "missing field `cron`",
    );
}

#[test]
fn bad_crontab_points_inside_the_expression() {
    check(
        "bad-crontab",
        "audio",
        16,
        "slots[0].cron[1]",
        "hour: 25 is out of range",
    );
    // Column of the `25` inside `cron = ["30 5 * * MON-FRI", "30 25 * * *"]`.
    let out = loa(&[
        "check",
        "tests/fixtures/schedules/bad-crontab/bad.toml",
        "--today",
        TODAY,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedules/bad-crontab/bad.toml"),
    )
    .expect("fixture")
    .lines()
    .nth(15)
    .and_then(|l| l.find("25 * * *\"").map(|i| i + 1))
    .expect("fixture line 16 holds the bad hour");
    assert!(
        stderr.contains(&format!("bad.toml:16:{line}:")),
        "column {line} expected:\n{stderr}"
    );
}

#[test]
fn unknown_time_zone() {
    check(
        "unknown-timezone",
        "audio",
        8,
        "timezone",
        "unknown time zone `Asia/Quang_Ngai`",
    );
}

#[test]
fn unknown_program() {
    check(
        "unknown-program",
        "audio",
        17,
        "slots[0].play[1]",
        "unknown program `tin-tuc`",
    );
}

#[test]
fn audio_file_missing() {
    check(
        "audio-missing",
        "audio",
        17,
        "slots[0].play[1]",
        "audio file missing",
    );
}

#[test]
fn audio_not_decodable() {
    check(
        "audio-undecodable",
        "tests/fixtures/schedules/audio",
        17,
        "slots[0].play[1]",
        "broken.ogg` is not decodable",
    );
}

#[test]
fn episode_missing_for_a_month_of_the_window() {
    check(
        "episode-missing",
        "audio",
        19,
        "slots[0].play[1]",
        "episode missing for 2 month(s) of the slot's window 2027-06-01..2028-02-29: 2028-01, 2028-02",
    );
}

#[test]
fn slot_starting_inside_quiet_hours() {
    check("quiet-start", "audio", 15, "slots[0]", "starts inside");
}

#[test]
fn slot_running_into_quiet_hours() {
    check(
        "quiet-runs-into",
        "audio",
        15,
        "slots[0]",
        "runs into them at 21:30:00",
    );
}

#[test]
fn session_longer_than_allowed() {
    check(
        "session-too-long",
        "audio",
        18,
        "slots[0].max_minutes",
        "session too long: max_minutes = 45 is longer than max_session_minutes = 30",
    );
}

#[test]
fn equal_priority_slots_that_overlap() {
    check(
        "overlap",
        "audio",
        20,
        "slots[1]",
        "slots `sang` and `thong-bao` have the same priority (normal) and overlap at 2026-11-02 05:30 +07:00",
    );
}

#[test]
fn relay_url_not_http() {
    check(
        "relay-url",
        "audio",
        17,
        "slots[0].relay.url",
        "is not an http(s) URL",
    );
}

#[test]
fn duplicate_ids() {
    check(
        "duplicate-id",
        "audio",
        20,
        "slots[1].id",
        "duplicate slot id `sang`",
    );
}

#[test]
fn every_problem_is_listed_and_nothing_loads() {
    let file = "tests/fixtures/schedules/many-errors/bad.toml";
    let out = loa(&["check", file, "--today", TODAY]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (line, text) in [
        (16, "unknown name `FOO`"),
        (17, "unknown program `khong`"),
        (22, "relay URL `ftp://x/y`"),
        (23, "unknown priority `urgent`"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("{file}:{line}:")) && l.contains(text)),
            "missing {line}: {text} in\n{stderr}"
        );
    }
    assert!(stderr.contains("4 error(s)"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ok  "));
}

#[test]
fn a_bad_file_fails_the_whole_directory_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("schedules/phuong-tran-phu.toml"),
        dir.path().join("phuong-tran-phu.toml"),
    )
    .expect("copy sample");
    std::fs::copy(
        root.join("tests/fixtures/schedules/relay-url/bad.toml"),
        dir.path().join("bad.toml"),
    )
    .expect("copy fixture");
    let out = loa(&[
        "check",
        dir.path().to_str().expect("utf-8 temp path"),
        "--today",
        TODAY,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:17:"));
}
