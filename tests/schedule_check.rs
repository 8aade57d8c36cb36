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

/// Run `loa check` on a fixture; (exit code, stderr).
fn check_out(case: &str, audio: &str) -> (Option<i32>, String) {
    let file = format!("tests/fixtures/schedules/{case}/bad.toml");
    let out = loa(&["check", &file, "--audio", audio, "--today", TODAY]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// --- Quiet hours and overlaps over the whole window (issue #10.15).

#[test]
fn quiet_hours_on_a_leap_day_years_after_from() {
    check(
        "quiet-leap-day",
        "tests/fixtures/schedules/audio",
        11,
        "slots[0]",
        "the airing at 2028-02-29 22:00 +07:00",
    );
}

#[test]
fn quiet_hours_of_an_open_ended_slot_beyond_the_next_12_months() {
    check(
        "quiet-open-ended",
        "tests/fixtures/schedules/audio",
        11,
        "slots[0]",
        "the airing at 2028-02-29 22:00 +07:00",
    );
}

#[test]
fn overlap_after_the_later_slot_starts() {
    check(
        "overlap-later",
        "tests/fixtures/schedules/audio",
        18,
        "slots[1]",
        "slots `sang` and `thu-hai` have the same priority (normal) and overlap at 2027-03-01 05:30 +07:00",
    );
}

// --- Smaller checks (issue #10.16).

#[test]
fn missing_episode_hint_names_a_missing_file() {
    let (code, stderr) = check_out("episode-missing", "audio");
    assert_eq!(code, Some(2), "{stderr}");
    let hint = stderr
        .lines()
        .find(|l| l.contains("hint: add"))
        .unwrap_or_else(|| panic!("no episode hint in:\n{stderr}"));
    assert!(
        hint.contains("`audio/cchc/2028-01.ogg` and the 1 other missing month(s)"),
        "{hint}"
    );
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("audio/cchc/2027-06.ogg")
            .is_file()
            && !hint.contains("2027-06"),
        "{hint}"
    );
}

#[test]
fn unknown_placeholder_is_reported_once_at_the_pattern() {
    let (code, stderr) = check_out("episode-placeholder", "audio");
    assert_eq!(code, Some(2), "{stderr}");
    let file = "tests/fixtures/schedules/episode-placeholder/bad.toml";
    assert!(
        stderr.contains(&format!(
            "{file}:12:30: programs[0].episodes: unknown placeholder `{{ban}}`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("1 error(s)"), "{stderr}");
}

#[test]
fn a_broken_program_is_reported_once_not_at_every_reference() {
    let (code, stderr) = check_out("bad-program", "audio");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("program `cchc` has both `file` and `episodes`"),
        "{stderr}"
    );
    assert!(!stderr.contains("unknown program"), "{stderr}");
    assert!(stderr.contains("1 error(s)"), "{stderr}");
}

#[test]
fn non_utf8_bytes_are_located_at_their_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    let mut text: Vec<u8> = b"id = \"bad\"\nkind = \"ward\"\nname = \"Ph".to_vec();
    text.push(0xF9); // `ù` in Windows-1258/Latin-1, not UTF-8
    text.extend_from_slice(b"\"\narea_code = \"1\"\n");
    std::fs::write(&file, text).expect("write");
    let path = file.to_str().expect("utf-8 temp path");
    let out = loa(&["check", path, "--today", TODAY]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}:3:11: the schedule file is not UTF-8 text: byte 0xF9"
        )),
        "{stderr}"
    );
}

#[test]
fn loudness_and_threshold_levels_are_range_checked() {
    let (code, stderr) = check_out("loudness-range", "tests/fixtures/schedules/audio");
    assert_eq!(code, Some(2), "{stderr}");
    let file = "tests/fixtures/schedules/loudness-range/bad.toml";
    for (line, field, text) in [
        (
            10,
            "loudness.integrated_lufs",
            "integrated_lufs = NaN is outside -70..-5 LUFS",
        ),
        (
            11,
            "loudness.max_true_peak_dbtp",
            "max_true_peak_dbtp = 3 is outside -20..0 dBTP",
        ),
        (
            16,
            "slots[0].relay.silence_threshold_dbfs",
            "silence_threshold_dbfs = 0 is outside -120..-1 dBFS",
        ),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("{file}:{line}:"))
                    && l.contains(&format!(": {field}: {text}"))),
            "{line} {field}: {text} not in\n{stderr}"
        );
    }
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

#[test]
fn a_directory_in_a_playlist_is_said_to_be_one() {
    check(
        "playlist-directory",
        "audio",
        12,
        "slots[0].play[1]",
        "audio path `audio/notices` is a directory, expected an audio file",
    );
}
