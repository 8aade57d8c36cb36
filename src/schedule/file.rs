//! Parsing of schedule files: TOML text → raw serde structs that keep byte spans (validated into
//! a typed [`super::Station`] by [`super::validate`]), and the located [`ScheduleError`]s both
//! report.
//!
//! **Invariant:** pure (text in; the raw form or the first syntax/shape problem out) and total: no
//! input makes it panic; every error is located at file:line:column with its field path and a
//! fix. It reads only the file's own text: what the file names (audio, programs) is checked by
//! validation.

use super::plan::{check_window, month_start, resolve_episode};
use chrono::{Months, NaiveDate};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Prefix that marks a playlist entry as a program reference: `"program:cchc"`.
pub const PROGRAM_REF_PREFIX: &str = "program:";

/// One problem in a schedule file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Field path, e.g. `slots[2].cron[0]`; empty for the whole file.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n    cách sửa: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Every problem found in one or more files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} lỗi trong lịch phát", .0.len())]
pub struct ScheduleErrors(pub Vec<ScheduleError>);

// ---------------------------------------------------------------------------------------------
// Raw form: exactly what the file says, with spans.

/// A string or a list of strings (`cron = "..."` or `cron = ["...", "..."]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStation {
    pub(super) id: Spanned<String>,
    pub(super) name: Spanned<String>,
    pub(super) kind: Spanned<String>,
    pub(super) area_code: Spanned<String>,
    pub(super) timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) quiet_hours: Vec<Spanned<String>>,
    pub(super) max_session_minutes: Option<Spanned<u32>>,
    pub(super) loudness: Option<Spanned<RawLoudness>>,
    pub(super) collector: Option<Spanned<RawCollector>>,
    #[serde(default)]
    pub(super) programs: Vec<Spanned<RawProgram>>,
    #[serde(default)]
    pub(super) slots: Vec<Spanned<RawSlot>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoudness {
    pub(super) integrated_lufs: Option<Spanned<f64>>,
    pub(super) max_true_peak_dbtp: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCollector {
    /// One collector (kept from before `urls`): the same as `urls = [url]`.
    pub(super) url: Option<Spanned<String>>,
    /// Several collectors, in order of preference: the station fails over between them.
    pub(super) urls: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) heartbeat_secs: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProgram {
    pub(super) id: Spanned<String>,
    pub(super) title: Option<String>,
    pub(super) category: Spanned<String>,
    pub(super) file: Option<Spanned<String>>,
    pub(super) episodes: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlot {
    pub(super) id: Spanned<String>,
    pub(super) cron: Spanned<OneOrMany>,
    pub(super) from: Option<Spanned<toml::value::Datetime>>,
    pub(super) until: Option<Spanned<toml::value::Datetime>>,
    pub(super) program: Option<Spanned<String>>,
    pub(super) play: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) relay: Option<Spanned<RawRelay>>,
    pub(super) priority: Option<Spanned<String>>,
    pub(super) start: Option<Spanned<String>>,
    pub(super) grace_secs: Option<Spanned<u32>>,
    pub(super) max_minutes: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub(super) url: Spanned<String>,
    pub(super) minutes: Spanned<u32>,
    pub(super) fallback: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) silence_threshold_dbfs: Option<Spanned<f64>>,
}

// ---------------------------------------------------------------------------------------------
// Locating errors.

/// Turns byte offsets of one file into file:line:column errors.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) errors: Vec<ScheduleError>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    pub(super) fn error_at(
        &self,
        offset: usize,
        field: &str,
        message: String,
        hint: &str,
    ) -> ScheduleError {
        let (line, column) = line_column(self.text, offset);
        ScheduleError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message,
            hint: hint.to_string(),
        }
    }

    pub(super) fn push(&mut self, span: &Range<usize>, field: &str, message: String, hint: &str) {
        let e = self.error_at(span.start, field, message, hint);
        self.errors.push(e);
    }
}

/// 1-based line and column (in characters) of a byte offset; offsets past the end or inside a
/// character are clamped, so this never panics.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Best-effort field path of the key at `offset`, from the table headers above it
/// (`[[slots]]` → `slots[i]`) and the key on its line. Used for errors serde reports by span only.
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut table = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let end = pos + line.len();
        let t = line.trim();
        let is_last = offset < end || end == text.len();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        } else if is_last && let Some(eq) = line.find('=') {
            let key = line[..eq].trim().trim_matches('"');
            if !key.is_empty() && !key.starts_with('#') {
                return if table.is_empty() {
                    key.to_string()
                } else {
                    format!("{table}.{key}")
                };
            }
        }
        if is_last {
            break;
        }
        pos = end;
    }
    table
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// Parse a schedule file's text into its raw form. Syntax and shape errors (unknown or missing
/// fields, wrong types) stop here: serde reports the first one.
/// The titles of a schedule file's `[[programs]]` (id → title), read with the same parser as
/// validation; empty when the file does not parse (its errors are `loa check`'s to report).
/// Pages show titles where plans and records keep ids.
pub fn program_titles(path: &Path, text: &str) -> std::collections::HashMap<String, String> {
    parse_raw(path, text)
        .map(|raw| {
            raw.programs
                .into_iter()
                .filter_map(|p| {
                    let p = p.into_inner();
                    Some((p.id.into_inner(), p.title?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `episodes` patterns of a schedule file's `[[programs]]` (id → pattern), read with the
/// same parser as validation; empty when the file does not parse. The content library places a
/// program's monthly episode at the path its pattern resolves to.
pub fn program_episodes(path: &Path, text: &str) -> std::collections::HashMap<String, String> {
    parse_raw(path, text)
        .map(|raw| {
            raw.programs
                .into_iter()
                .filter_map(|p| {
                    let p = p.into_inner();
                    Some((p.id.into_inner(), p.episodes?.into_inner()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One episode file a schedule's slots name for a month (see [`month_episodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthEpisode {
    /// The program's id.
    pub program: String,
    /// The program's title, when the schedule gives one.
    pub title: Option<String>,
    /// The episode's path relative to the audio root (its `episodes` pattern resolved).
    pub path: PathBuf,
}

/// The episode files the slots of a schedule file name for the month starting `month` (a
/// program with an `episodes` pattern, referenced by a slot's `play` or relay `fallback`, the
/// slot's `from`/`until` touching the month), one per (program, path), in file order; empty
/// when the file does not parse. Pure: whether each file exists is the caller's business.
pub fn month_episodes(path: &Path, text: &str, month: NaiveDate) -> Vec<MonthEpisode> {
    let Ok(raw) = parse_raw(path, text) else {
        return Vec::new();
    };
    let first = month_start(month);
    let last = first
        .checked_add_months(Months::new(1))
        .and_then(|n| n.pred_opt())
        .unwrap_or(first);
    let mut programs: BTreeMap<&str, (&str, Option<&String>)> = BTreeMap::new();
    for p in &raw.programs {
        let p = p.get_ref();
        if let Some(e) = &p.episodes {
            programs.insert(
                p.id.get_ref().as_str(),
                (e.get_ref().as_str(), p.title.as_ref()),
            );
        }
    }
    let mut out: Vec<MonthEpisode> = Vec::new();
    for s in &raw.slots {
        let s = s.get_ref();
        let from = s.from.as_ref().and_then(|d| toml_date(d.get_ref()));
        let until = s.until.as_ref().and_then(|d| toml_date(d.get_ref()));
        if from.is_some_and(|f| f > last) || until.is_some_and(|u| u < first) {
            continue;
        }
        let mut refs: Vec<&str> = Vec::new();
        if let Some(play) = &s.play {
            refs.extend(play.get_ref().iter().map(|r| r.get_ref().as_str()));
        }
        if let Some(relay) = &s.relay
            && let Some(fb) = &relay.get_ref().fallback
        {
            refs.extend(fb.get_ref().iter().map(|r| r.get_ref().as_str()));
        }
        for id in refs
            .iter()
            .filter_map(|r| r.strip_prefix(PROGRAM_REF_PREFIX))
        {
            let id = id.trim();
            if let Some((pattern, title)) = programs.get(id) {
                let e = MonthEpisode {
                    program: id.to_string(),
                    title: title.cloned(),
                    path: resolve_episode(pattern, first),
                };
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
    }
    out
}

pub(crate) fn parse_raw(path: &Path, text: &str) -> Result<RawStation, ScheduleErrors> {
    toml::from_str::<RawStation>(text).map_err(|e| {
        let ctx = Ctx::new(path, text);
        let offset = e.span().map_or(0, |s| s.start);
        let raw_message = e.message().trim();
        let (message, hint) = serde_message_vi(raw_message);
        let mut field = field_at(text, offset);
        // "missing field `cron`": the span is the table that lacks it.
        if let Some(name) = raw_message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            field = if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}.{name}")
            };
        }
        ScheduleErrors(vec![ctx.error_at(offset, &field, message, hint)])
    })
}

/// The Vietnamese message and fix for an error the TOML parser reports in English (`unknown
/// field`, `missing field`, `invalid type`, an untagged value that matched nothing, or syntax).
/// Field names and values stay verbatim in backticks; the parser's English prose is not shown.
fn serde_message_vi(raw: &str) -> (String, &'static str) {
    let quoted = |s: &str| -> Vec<String> {
        s.split('`')
            .skip(1)
            .step_by(2)
            .map(|t| format!("`{t}`"))
            .collect()
    };
    if let Some(rest) = raw.strip_prefix("unknown field ") {
        let names = quoted(rest);
        let (field, allowed) = names
            .split_first()
            .map_or((String::new(), &[][..]), |(f, a)| (f.clone(), a));
        let message = if allowed.is_empty() {
            format!("trường {field} không được hỗ trợ")
        } else {
            format!(
                "trường {field} không được hỗ trợ; các trường dùng được ở đây: {}",
                allowed.join(", ")
            )
        };
        (
            message,
            "xóa trường này hoặc sửa lại chính tả; docs/schedules.md liệt kê mọi trường",
        )
    } else if let Some(rest) = raw.strip_prefix("missing field ") {
        (
            format!("thiếu trường {}", quoted(rest).join(", ")),
            "thêm trường này; docs/schedules.md liệt kê các trường bắt buộc",
        )
    } else if raw.starts_with("invalid type") || raw.contains("did not match") {
        let expected = raw.rsplit(", expected ").next().unwrap_or("");
        let want = if raw.contains("did not match") {
            "một chuỗi hoặc một danh sách chuỗi"
        } else if expected.contains("u32") || expected.contains("integer") {
            "một số nguyên không âm"
        } else if expected.contains("f64") || expected.contains("float") {
            "một số"
        } else if expected.contains("sequence") {
            "một danh sách"
        } else if expected.contains("string") {
            "một chuỗi trong dấu nháy"
        } else if expected.contains("date") {
            "một ngày"
        } else if expected.contains("struct") || expected.contains("map") {
            "một bảng"
        } else {
            "giá trị đúng kiểu"
        };
        (
            format!("giá trị sai kiểu: ở đây cần {want}"),
            "ghi giá trị đúng kiểu như docs/schedules.md mô tả",
        )
    } else {
        let first = raw.lines().next().unwrap_or("");
        let what = if first.contains("string") {
            "chuỗi viết sai (thiếu dấu nháy đóng hoặc có ký tự không dùng được)".to_string()
        } else if first.contains("duplicate key") {
            format!("khóa {} bị khai báo hai lần", quoted(first).join(", "))
        } else if first.contains("inline table") {
            "bảng viết trên một dòng bị sai".to_string()
        } else if first.contains("table") {
            "tiêu đề bảng viết sai".to_string()
        } else if first.contains("array") {
            "danh sách viết sai".to_string()
        } else if first.contains("key") {
            "tên khóa viết sai".to_string()
        } else if first.contains("number") || first.contains("integer") || first.contains("float") {
            "số viết sai".to_string()
        } else if first.contains("date") || first.contains("time") {
            "ngày giờ viết sai".to_string()
        } else {
            "nội dung không đúng cú pháp tại đây".to_string()
        };
        (
            format!("cú pháp TOML sai: {what}"),
            "sửa cú pháp TOML (https://toml.io/vi/v1.0.0)",
        )
    }
}

/// Every audio file (relative to the audio root) that validating `raw` on `today` will look up:
/// the plain files, and each episode of each month in the checked windows. Unparseable parts are
/// skipped (validation reports them).
pub(crate) fn audio_needs(raw: &RawStation, today: NaiveDate) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut episodes: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &raw.programs {
        let p = p.get_ref();
        if let Some(f) = &p.file {
            out.insert(PathBuf::from(f.get_ref()));
        }
        if let Some(e) = &p.episodes {
            episodes.insert(p.id.get_ref(), e.get_ref());
        }
    }
    for s in &raw.slots {
        let s = s.get_ref();
        let mut refs: Vec<&str> = Vec::new();
        if let Some(play) = &s.play {
            refs.extend(play.get_ref().iter().map(|r| r.get_ref().as_str()));
        }
        if let Some(relay) = &s.relay
            && let Some(fb) = &relay.get_ref().fallback
        {
            refs.extend(fb.get_ref().iter().map(|r| r.get_ref().as_str()));
        }
        let from = s.from.as_ref().and_then(|d| toml_date(d.get_ref()));
        let until = s.until.as_ref().and_then(|d| toml_date(d.get_ref()));
        let window = check_window(from, until, today);
        for r in refs {
            match r.strip_prefix(PROGRAM_REF_PREFIX) {
                None => {
                    out.insert(PathBuf::from(r));
                }
                Some(id) => {
                    if let (Some(pattern), Some((a, b))) = (episodes.get(id.trim()), window) {
                        for month in months(a, b) {
                            out.insert(resolve_episode(pattern, month));
                        }
                    }
                }
            }
        }
    }
    out
}

pub(super) fn toml_date(d: &toml::value::Datetime) -> Option<NaiveDate> {
    match (d.date, d.time, d.offset) {
        (Some(date), None, None) => NaiveDate::from_ymd_opt(
            i32::from(date.year),
            u32::from(date.month),
            u32::from(date.day),
        ),
        _ => None,
    }
}

/// First day of every month touching `a..=b`.
pub(super) fn months(a: NaiveDate, b: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut m = month_start(a);
    while m <= b {
        out.push(m);
        match m.checked_add_months(Months::new(1)) {
            Some(n) => m = n,
            None => break,
        }
    }
    out
}

/// Byte offset, inside `text`, of the `k`-th quoted element of a list literal spanning `span`
/// whose value is `value` (searching from `from`), or the span start.
pub(super) fn find_quoted(text: &str, span: &Range<usize>, from: usize, value: &str) -> usize {
    let hay = text.get(from.max(span.start)..span.end.min(text.len()));
    let base = from.max(span.start);
    for q in ['"', '\''] {
        let needle = format!("{q}{value}{q}");
        if let Some(i) = hay.and_then(|h| h.find(&needle)) {
            return base + i;
        }
    }
    span.start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_titles_come_from_the_schedules_own_parser() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schedules/phuong-le-hong-phong.toml"
        ));
        let titles = program_titles(path, &std::fs::read_to_string(path).unwrap());
        assert_eq!(titles["thong-bao"], "Thông báo của địa phương");
        assert!(program_titles(path, "not = [toml").is_empty());
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn episode_patterns_resolve_every_token() {
        let check = |pattern: &str, expected: &str| {
            let got = resolve_episode(pattern, d(2027, 3, 9));
            assert_eq!(got, PathBuf::from(expected), "{pattern}");
            // The same as replacing each token in turn.
            let naive = pattern
                .replace("{yyyy}", "2027")
                .replace("{mm}", "03")
                .replace("{dd}", "09");
            assert_eq!(got, PathBuf::from(naive), "{pattern}");
        };
        check("cchc/{yyyy}-{mm}.ogg", "cchc/2027-03.ogg");
        check("{yyyy}/{mm}/{dd}/{mm}.ogg", "2027/03/09/03.ogg");
        check("plain.ogg", "plain.ogg");
        check("{x}{yyyy{mm}}{", "{x}{yyyy03}{");
        check("tin-tức/{dd}-{mm}-{yyyy}.mp3", "tin-tức/09-03-2027.mp3");
        check("{{yyyy}}", "{2027}");
        check("{YYYY}-{mm}", "{YYYY}-03");
    }

    #[test]
    fn line_column_counts_characters_and_never_panics() {
        let text = "a = 1\nname = \"Trần Phú\"\n";
        for (offset, expected) in [
            (0, (1, 1)),
            (6, (2, 1)),
            (15, (2, 10)),
            (text.find('P').unwrap_or(0), (2, 14)),
            (16, (2, 11)), // inside a multi-byte character: clamped back
            (10_000, (3, 1)),
        ] {
            assert_eq!(line_column(text, offset), expected, "offset {offset}");
        }
    }

    #[test]
    fn check_windows() {
        let today = d(2026, 11, 27);
        assert_eq!(
            check_window(Some(d(2019, 1, 1)), Some(d(2019, 12, 31)), today),
            Some((d(2019, 1, 1), d(2019, 12, 31)))
        );
        assert_eq!(
            check_window(None, None, today),
            Some((d(2026, 11, 1), d(2027, 11, 30)))
        );
        assert_eq!(
            check_window(Some(d(2019, 1, 1)), None, today),
            Some((d(2026, 11, 1), d(2027, 11, 30)))
        );
        assert_eq!(
            check_window(None, Some(d(2027, 2, 15)), today),
            Some((d(2026, 11, 1), d(2027, 2, 15)))
        );
        assert_eq!(check_window(None, Some(d(2020, 1, 1)), today), None);
        assert_eq!(
            check_window(Some(d(2020, 1, 1)), Some(d(2040, 1, 1)), today),
            Some((d(2020, 1, 1), d(2030, 1, 1)))
        );
    }

    #[test]
    fn field_paths_from_headers() {
        let text = "id = \"x\"\n[[slots]]\nid = \"a\"\n[[slots]]\nid = \"b\"\ncolour = 1\n[collector]\nurl = 2\n";
        assert_eq!(field_at(text, 0), "id");
        assert_eq!(
            field_at(text, text.find("colour").unwrap_or(0)),
            "slots[1].colour"
        );
        assert_eq!(
            field_at(text, text.find("url").unwrap_or(0)),
            "collector.url"
        );
        assert_eq!(
            field_at(text, text.find("[[slots]]").unwrap_or(0)),
            "slots[0]"
        );
    }
}
