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
    assert!(stderr.contains("cách sửa: "), "{case}: no hint:\n{stderr}");
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
    assert!(
        city.contains("trạm thành phố")
            && city.contains("Quảng Ngãi")
            && city.contains("lần phát tới: "),
        "{city}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("  trạm phường/xã  "))
            .count(),
        3
    );
    assert!(
        stdout.contains("tệp lịch phát hợp lệ") && english_in(&stdout).is_empty(),
        "English reached the operator: {:?}\n{stdout}",
        english_in(&stdout)
    );
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
        "cú pháp TOML sai: chuỗi viết sai",
    );
}

#[test]
fn unknown_field() {
    check(
        "unknown-field",
        "audio",
        18,
        "slots[0].colour",
        "trường `colour` không được hỗ trợ",
    );
}

#[test]
fn missing_field() {
    check(
        "missing-field",
        "audio",
        14,
        "slots[0].cron",
        "thiếu trường `cron`",
    );
}

#[test]
fn bad_crontab_points_inside_the_expression() {
    check(
        "bad-crontab",
        "audio",
        16,
        "slots[0].cron[1]",
        "giờ: 25 nằm ngoài khoảng 0–23",
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
        "múi giờ `Asia/Quang_Ngai` không có",
    );
}

#[test]
fn unknown_program() {
    check(
        "unknown-program",
        "audio",
        17,
        "slots[0].play[1]",
        "chương trình `tin-tuc` chưa được khai báo",
    );
}

#[test]
fn audio_file_missing() {
    check(
        "audio-missing",
        "audio",
        17,
        "slots[0].play[1]",
        "thiếu tệp âm thanh",
    );
}

#[test]
fn audio_not_decodable() {
    check(
        "audio-undecodable",
        "tests/fixtures/schedules/audio",
        17,
        "slots[0].play[1]",
        "broken.ogg` không giải mã được",
    );
}

#[test]
fn episode_missing_for_a_month_of_the_window() {
    check(
        "episode-missing",
        "audio",
        19,
        "slots[0].play[1]",
        "thiếu tập cho 2 tháng trong thời hạn 2027-06-01..2028-02-29 của khung phát: 2028-01, 2028-02",
    );
}

#[test]
fn slot_starting_inside_quiet_hours() {
    check(
        "quiet-start",
        "audio",
        15,
        "slots[0]",
        "bắt đầu trong giờ yên lặng",
    );
}

#[test]
fn slot_running_into_quiet_hours() {
    check(
        "quiet-runs-into",
        "audio",
        15,
        "slots[0]",
        "lấn vào giờ yên lặng lúc 21:30:00",
    );
}

#[test]
fn session_longer_than_allowed() {
    check(
        "session-too-long",
        "audio",
        18,
        "slots[0].max_minutes",
        "phiên phát quá dài: max_minutes = 45 lớn hơn max_session_minutes = 30",
    );
}

#[test]
fn equal_priority_slots_that_overlap() {
    check(
        "overlap",
        "audio",
        20,
        "slots[1]",
        "khung phát `sang` và `thong-bao` cùng mức ưu tiên (normal) và chồng nhau lúc 2026-11-02 05:30 +07:00",
    );
}

#[test]
fn relay_url_not_http() {
    check(
        "relay-url",
        "audio",
        17,
        "slots[0].relay.url",
        "không phải địa chỉ http(s)",
    );
}

#[test]
fn duplicate_ids() {
    check(
        "duplicate-id",
        "audio",
        20,
        "slots[1].id",
        "mã khung phát `sang` bị trùng",
    );
}

#[test]
fn every_problem_is_listed_and_nothing_loads() {
    let file = "tests/fixtures/schedules/many-errors/bad.toml";
    let out = loa(&["check", file, "--today", TODAY]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (line, text) in [
        (16, "tên `FOO` không có trong danh sách"),
        (17, "chương trình `khong` chưa được khai báo"),
        (22, "địa chỉ tiếp sóng `ftp://x/y`"),
        (23, "mức ưu tiên `urgent` không có"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("{file}:{line}:")) && l.contains(text)),
            "missing {line}: {text} in\n{stderr}"
        );
    }
    assert!(stderr.contains("loa check: 4 lỗi trong"), "{stderr}");
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
        "lượt phát lúc 2028-02-29 22:00 +07:00",
    );
}

#[test]
fn quiet_hours_of_an_open_ended_slot_beyond_the_next_12_months() {
    check(
        "quiet-open-ended",
        "tests/fixtures/schedules/audio",
        11,
        "slots[0]",
        "lượt phát lúc 2028-02-29 22:00 +07:00",
    );
}

#[test]
fn overlap_after_the_later_slot_starts() {
    check(
        "overlap-later",
        "tests/fixtures/schedules/audio",
        18,
        "slots[1]",
        "khung phát `sang` và `thu-hai` cùng mức ưu tiên (normal) và chồng nhau lúc 2027-03-01 05:30 +07:00",
    );
}

// --- Smaller checks (issue #10.16).

#[test]
fn missing_episode_hint_names_a_missing_file() {
    let (code, stderr) = check_out("episode-missing", "audio");
    assert_eq!(code, Some(2), "{stderr}");
    let hint = stderr
        .lines()
        .find(|l| l.contains("cách sửa: thêm"))
        .unwrap_or_else(|| panic!("no episode hint in:\n{stderr}"));
    assert!(
        hint.contains("`audio/cchc/2028-01.ogg` và 1 tháng còn thiếu khác"),
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
        stderr.contains(&format!("{file}:12:30: programs[0].episodes: mẫu tên tập")),
        "{stderr}"
    );
    assert!(stderr.contains("loa check: 1 lỗi trong"), "{stderr}");
}

#[test]
fn a_broken_program_is_reported_once_not_at_every_reference() {
    let (code, stderr) = check_out("bad-program", "audio");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("chương trình `cchc` có cả `file` lẫn `episodes`"),
        "{stderr}"
    );
    assert!(!stderr.contains("chưa được khai báo"), "{stderr}");
    assert!(stderr.contains("loa check: 1 lỗi trong"), "{stderr}");
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
            "{path}:3:11: tệp lịch phát không phải văn bản UTF-8: byte 0xF9"
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
            "integrated_lufs = NaN nằm ngoài khoảng -70..-5 LUFS",
        ),
        (
            11,
            "loudness.max_true_peak_dbtp",
            "max_true_peak_dbtp = 3 nằm ngoài khoảng -20..0 dBTP",
        ),
        (
            16,
            "slots[0].relay.silence_threshold_dbfs",
            "silence_threshold_dbfs = 0 nằm ngoài khoảng -120..-1 dBFS",
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
    assert!(stderr.contains("loa check: 3 lỗi trong"), "{stderr}");
}

#[test]
fn a_directory_in_a_playlist_is_said_to_be_one() {
    check(
        "playlist-directory",
        "audio",
        12,
        "slots[0].play[1]",
        "đường dẫn âm thanh `audio/notices` là một thư mục, không phải tệp âm thanh",
    );
}

// --- Vietnamese only: no English prose reaches the office or an operator.

/// English words (and one phrase) that must not appear in a schedule error outside quoted values
/// (`…` or "…"): the prose of the old English messages and hints.
const ENGLISH: &[&str] = &[
    "is",
    "are",
    "must",
    "expected",
    "invalid",
    "out of range",
    "missing",
    "unknown",
    "bad",
    "hint",
    "not",
    "the",
    "and",
    "or",
    "found",
    "empty",
    "use",
    "write",
    "add",
    "give",
    "fix",
    "should",
    "cannot",
    "does",
    "error",
    "errors",
    "see",
    "e.g",
    "nothing",
    "loaded",
];

/// The English words of `text` outside backtick- and double-quoted values and paths (a token
/// with a `/`, like `tests/fixtures/schedules/bad-crontab/bad.toml:16:33:`).
fn english_in(text: &str) -> Vec<String> {
    let text: Vec<&str> = text
        .split(' ')
        .filter(|t| !t.contains('/') && !t.contains(".toml"))
        .collect();
    let text = text.join(" ");
    let mut bare = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '`' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) => bare.push(c),
            _ => {}
        }
    }
    let words: Vec<String> = bare
        .split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|w| w.trim_matches('.').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    let joined = format!(" {} ", words.join(" "));
    ENGLISH
        .iter()
        .filter(|w| joined.contains(&format!(" {w} ")))
        .map(|w| w.to_string())
        .collect()
}

#[test]
fn the_english_detector_catches_the_old_messages() {
    for old in [
        "bad.toml:16:17: slots[0].cron[1]: bad crontab expression `30 25 * * *`: hour: 25 is out of range 0-23\n    hint: use 0-23 (midnight is 0); see docs/crontab.md",
        "x.toml:1:1: kind: unknown station kind `town`",
        "loa check: 1 error(s) in 1 of 1 schedule file(s); nothing was loaded from them",
    ] {
        assert!(!english_in(old).is_empty(), "{old}");
    }
    assert!(english_in("giờ: 25 nằm ngoài khoảng 0–23 (`is not` \"the\")").is_empty());
}

const BASE: &str = "id = \"t\"\nname = \"Trạm thử\"\nkind = \"ward\"\narea_code = \"21100\"\n";

/// One bad schedule per kind of error `loa check` can report from the text (the audio facts are
/// given), with the field the error must be at.
fn bad_schedules() -> Vec<(String, &'static str)> {
    let with = |top: &str, rest: &str| format!("{BASE}{top}\n{rest}");
    let slot = |body: &str| with("", &format!("[[slots]]\nid = \"s\"\n{body}\n"));
    let cron = |expr: &str| slot(&format!("cron = \"{expr}\"\nplay = [\"jingle.ogg\"]"));
    let mut v: Vec<(String, &'static str)> = vec![
        (BASE.replace("id = \"t\"", "id = \"T T\""), "id"),
        (BASE.replace("id = \"t\"", "id = \"u\""), "id"),
        (BASE.replace("Trạm thử", " "), "name"),
        (BASE.replace("\"ward\"", "\"town\""), "kind"),
        (BASE.replace("21100", "x1"), "area_code"),
        (with("timezone = \"Asia/Quang_Ngai\"", ""), "timezone"),
        (with("max_session_minutes = 0", ""), "max_session_minutes"),
        (
            with("max_session_minutes = 5000", ""),
            "max_session_minutes",
        ),
        (
            with("quiet_hours = [\"25:00-01:00\"]", ""),
            "quiet_hours[0]",
        ),
        (
            with("", "[loudness]\nintegrated_lufs = 3.0\n"),
            "loudness.integrated_lufs",
        ),
        (
            with("", "[collector]\nurl = \"ftp://x\"\n"),
            "collector.url",
        ),
        (
            with("", "[collector]\nurl = \"http://c\"\nheartbeat_secs = 0\n"),
            "collector.heartbeat_secs",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"A B\"\ncategory = \"cchc\"\nfile = \"jingle.ogg\"\n",
            ),
            "programs[0].id",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nfile = \"jingle.ogg\"\n[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nfile = \"jingle.ogg\"\n",
            ),
            "programs[1].id",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"Thông báo\"\nfile = \"jingle.ogg\"\n",
            ),
            "programs[0].category",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nepisodes = \"a/{yyyy}-{mm}-{ban}.ogg\"\n",
            ),
            "programs[0].episodes",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nepisodes = \"a/{mm}.ogg\"\n",
            ),
            "programs[0].episodes",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nfile = \"jingle.ogg\"\nepisodes = \"a/{yyyy}-{mm}.ogg\"\n",
            ),
            "programs[0]",
        ),
        (
            with("", "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\n"),
            "programs[0]",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nfile = \"khong-co.ogg\"\n",
            ),
            "programs[0].file",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nfile = \"broken.ogg\"\n",
            ),
            "programs[0].file",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nfile = \"notices\"\n",
            ),
            "programs[0].file",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nfile = \"../x.ogg\"\n",
            ),
            "programs[0].file",
        ),
        (
            with(
                "",
                "[[slots]]\nid = \"S S\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n",
            ),
            "slots[0].id",
        ),
        (
            with(
                "",
                "[[slots]]\nid = \"s\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n[[slots]]\nid = \"s\"\ncron = \"0 7 * * *\"\nplay = [\"jingle.ogg\"]\n",
            ),
            "slots[1].id",
        ),
        (
            slot("cron = \"0 6 * * *\"\nfrom = 2026-01-01T06:00:00\nplay = [\"jingle.ogg\"]"),
            "slots[0].from",
        ),
        (
            slot(
                "cron = \"0 6 * * *\"\nfrom = 2027-01-01\nuntil = 2026-01-01\nplay = [\"jingle.ogg\"]",
            ),
            "slots[0].until",
        ),
        (
            slot("cron = \"0 6 * * *\"\nprogram = \"x\"\nplay = [\"jingle.ogg\"]"),
            "slots[0].program",
        ),
        (
            slot("cron = \"0 6 * * *\"\nplay = [\"program:x\"]"),
            "slots[0].play[0]",
        ),
        (slot("cron = \"0 6 * * *\"\nplay = []"), "slots[0].play"),
        (
            slot(
                "cron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\nrelay = { url = \"http://r/x\", minutes = 5 }",
            ),
            "slots[0]",
        ),
        (slot("cron = \"0 6 * * *\""), "slots[0]"),
        (
            slot("cron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\npriority = \"urgent\""),
            "slots[0].priority",
        ),
        (
            slot("cron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\nstart = \"now\""),
            "slots[0].start",
        ),
        (
            slot("cron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\nmax_minutes = 0"),
            "slots[0].max_minutes",
        ),
        (
            slot("cron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\nmax_minutes = 90"),
            "slots[0].max_minutes",
        ),
        (
            slot("cron = \"* * * * * *\"\nplay = [\"jingle.ogg\"]"),
            "slots[0].cron",
        ),
        (slot("cron = []\nplay = [\"jingle.ogg\"]"), "slots[0].cron"),
        (cron("0 0 30 2 *"), "slots[0].cron"),
        (
            slot("cron = \"0 6 * * *\"\nrelay = { url = \"rtsp://r/x\", minutes = 5 }"),
            "slots[0].relay.url",
        ),
        (
            slot("cron = \"0 6 * * *\"\nrelay = { url = \"http://r/x\", minutes = 0 }"),
            "slots[0].relay.minutes",
        ),
        (
            slot("cron = \"0 6 * * *\"\nrelay = { url = \"http://r/x\", minutes = 90 }"),
            "slots[0].relay.minutes",
        ),
        (
            slot(
                "cron = \"0 6 * * *\"\nrelay = { url = \"http://r/x\", minutes = 5, silence_threshold_dbfs = 0.0 }",
            ),
            "slots[0].relay.silence_threshold_dbfs",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nepisodes = \"a/{yyyy}-{mm}.ogg\"\n[[slots]]\nid = \"s\"\ncron = \"0 6 * * *\"\nplay = [\"program:a\"]\n",
            ),
            "slots[0].play[0]",
        ),
        (
            with(
                "",
                "[[programs]]\nid = \"a\"\ncategory = \"cchc\"\nepisodes = \"ep/{yyyy}-{mm}.ogg\"\n[[slots]]\nid = \"s\"\ncron = \"0 6 * * *\"\nuntil = 2026-12-31\nplay = [\"program:a\"]\n",
            ),
            "slots[0].play[0]",
        ),
        (
            slot("cron = \"0 6 * * *\"\nplay = [\"long.ogg\"]"),
            "slots[0].max_minutes",
        ),
        (
            with(
                "quiet_hours = [\"21:30-05:00\"]",
                "[[slots]]\nid = \"s\"\ncron = \"0 22 * * *\"\nplay = [\"jingle.ogg\"]\n",
            ),
            "slots[0]",
        ),
        (
            with(
                "quiet_hours = [\"21:30-05:00\"]",
                "[[slots]]\nid = \"s\"\ncron = \"0 21 * * *\"\nplay = [\"long.ogg\"]\nmax_minutes = 60\n",
            ),
            "slots[0]",
        ),
        (
            with(
                "",
                "[[slots]]\nid = \"a\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n[[slots]]\nid = \"b\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n",
            ),
            "slots[1]",
        ),
        (
            slot("cron = \"0,1 6 * * *\"\nplay = [\"mid.ogg\"]"),
            "slots[0]",
        ),
        (
            slot("cron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\ncolour = 1"),
            "slots[0].colour",
        ),
        (slot("play = [\"jingle.ogg\"]"), "slots[0].cron"),
        (slot("cron = 5\nplay = [\"jingle.ogg\"]"), "slots[0].cron"),
        (
            slot("cron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\nmax_minutes = \"x\""),
            "slots[0].max_minutes",
        ),
        (
            slot("cron = \"0 6 * * *\nplay = [\"jingle.ogg\"]"),
            "slots[0].cron",
        ),
    ];
    for expr in [
        "",
        "0 6 * *",
        "0 0 6 * * * 2019",
        "0 6 * * * * * *",
        "60 6 * * *",
        "0 24 * * *",
        "0 6 32 * *",
        "0 6 * 13 *",
        "0 6 * * 8",
        "0 6 1-40 * *",
        "0 17-5 * * *",
        "0 6 * * FRI-SUN",
        "*/0 6 * * *",
        "*/60 * * * *",
        "*/ * * * *",
        "5/10 * * * *",
        "0 6 1,,15 * *",
        "0 6 -5 * *",
        "0 6 5- * *",
        "0 6 1-2-3 * *",
        "0 6 ? * MON",
        "0 6 * * Th2",
        "0 6 * * monday",
        "0 6 * January *",
        "0 six * * *",
        "0 6 MON * *",
        "0 6 * * L",
        "0 6 1#2 * *",
        "0 6 * * MON#6",
        "0 6 * * MON#",
        "0 6 * * MON-FRI#2",
        "0 *5 * * *",
        "@reboot",
        "@fortnightly",
        "@daily 0 6",
    ] {
        v.push((cron(expr), "slots[0].cron"));
    }
    v
}

#[test]
fn every_kind_of_schedule_error_is_said_in_vietnamese() {
    use loa::schedule::{AudioCatalog, AudioFacts, parse_station};
    use std::path::PathBuf;
    let mut catalog = AudioCatalog {
        root: PathBuf::from("audio"),
        ..AudioCatalog::default()
    };
    for (file, facts) in [
        (
            "jingle.ogg",
            AudioFacts::Playable {
                duration_secs: 30.0,
            },
        ),
        (
            "mid.ogg",
            AudioFacts::Playable {
                duration_secs: 90.0,
            },
        ),
        (
            "long.ogg",
            AudioFacts::Playable {
                duration_secs: 7200.0,
            },
        ),
        ("broken.ogg", AudioFacts::Undecodable("tệp hỏng".into())),
        ("notices", AudioFacts::NotAFile("một thư mục".into())),
        ("ep/2026-11.ogg", AudioFacts::Undecodable("tệp hỏng".into())),
        ("ep/2026-12.ogg", AudioFacts::NotAFile("một thư mục".into())),
    ] {
        catalog.files.insert(PathBuf::from(file), facts);
    }
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
    let mut english = Vec::new();
    for (text, field) in bad_schedules() {
        let errors = match parse_station(Path::new("t.toml"), &text, &catalog, today) {
            Ok(_) => panic!("should not validate:\n{text}"),
            Err(e) => e.0,
        };
        assert!(
            errors.iter().any(|e| e.field == field),
            "no error at `{field}` for\n{text}\n{errors:#?}"
        );
        for e in errors {
            let shown = e.to_string();
            let words = english_in(&shown);
            if !words.is_empty() {
                english.push(format!("{words:?} in: {shown}"));
            }
        }
    }
    assert!(
        english.is_empty(),
        "English reached people:\n{}",
        english.join("\n")
    );
}

#[test]
fn loa_check_speaks_vietnamese_on_every_broken_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedules");
    let mut cases: Vec<String> = std::fs::read_dir(&root)
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| root.join(n).join("bad.toml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "{cases:?}");
    let mut english = Vec::new();
    for case in cases {
        let (code, stderr) = check_out(&case, "tests/fixtures/schedules/audio");
        assert_eq!(code, Some(2), "{case}: {stderr}");
        for line in stderr.lines() {
            let words = english_in(line);
            if !words.is_empty() {
                english.push(format!("{case}: {words:?} in: {line}"));
            }
        }
    }
    // The directory-level messages too: no schedule file, and a duplicate station id.
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        std::fs::write(dir.path().join(sub).join("t.toml"), BASE).expect("write");
    }
    std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
    let at = |p: &str| dir.path().join(p).display().to_string();
    for args in [
        vec!["check".to_string(), at("empty")],
        vec!["check".to_string(), at("a"), at("b")],
        vec!["check".to_string(), at("khong-co.toml")],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loa"))
            .args(&args)
            .output()
            .expect("the loa binary runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.is_empty(), "{args:?}");
        english.extend(
            stderr
                .lines()
                .filter(|l| !english_in(l).is_empty())
                .map(|l| format!("{args:?}: {l}")),
        );
    }
    assert!(
        english.is_empty(),
        "English reached people:\n{}",
        english.join("\n")
    );
}
