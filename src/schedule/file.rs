//! Parsing and validation of schedule files: TOML text → raw serde structs that keep byte spans →
//! `validate()` → a typed [`Station`].
//!
//! **Invariant:** pure (text, an [`AudioCatalog`] and "today" in; a `Station` or every problem out)
//! and total: no input makes it panic, and a file with any problem yields no `Station` at all, only
//! a list of [`ScheduleError`]s each located at file:line:column with its field path and a fix.

use super::plan::{CHECK_HORIZON_MONTHS, check_window, month_start, resolve_episode};
use super::{
    AudioCatalog, AudioFacts, CollectorLink, DEFAULT_GRACE_SECS, DEFAULT_MAX_SESSION_MINUTES,
    DEFAULT_SILENCE_THRESHOLD_DBFS, DEFAULT_TIMEZONE, ItemRef, LoudnessTarget, Priority, Program,
    ProgramAudio, QuietHours, RelaySpec, Slot, SlotContent, StartPolicy, Station, StationKind,
};
use crate::crontab::Crontab;
use chrono::{Months, NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Component, Path, PathBuf};
use toml::Spanned;

/// Prefix that marks a playlist entry as a program reference: `"program:cchc"`.
pub const PROGRAM_REF_PREFIX: &str = "program:";

/// Most firings a slot may have in a day (every minute); more is not a broadcast schedule and
/// would make the plan explode.
pub const MAX_FIRES_PER_DAY: usize = 1440;
/// Accepted `loudness.integrated_lufs` targets, in LUFS (EBU R128 broadcast is -23, loud
/// streaming about -14; below -70 is near silence, above -5 is not a programme level).
pub const INTEGRATED_LUFS_RANGE: RangeInclusive<f64> = -70.0..=-5.0;
/// Accepted `loudness.max_true_peak_dbtp` ceilings, in dBTP (0 is full scale).
pub const MAX_TRUE_PEAK_DBTP_RANGE: RangeInclusive<f64> = -20.0..=0.0;
/// Accepted relay `silence_threshold_dbfs` values, in dBFS (0 is full scale; -120 is below any
/// real upstream's noise floor).
pub const SILENCE_THRESHOLD_DBFS_RANGE: RangeInclusive<f64> = -120.0..=-1.0;
/// Heartbeat period when `[collector]` does not say, in seconds.
pub const DEFAULT_HEARTBEAT_SECS: u32 = 60;

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
            write!(f, "\n    hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Every problem found in one or more files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} schedule error(s)", .0.len())]
pub struct ScheduleErrors(pub Vec<ScheduleError>);

// ---------------------------------------------------------------------------------------------
// Raw form: exactly what the file says, with spans.

/// A string or a list of strings (`cron = "..."` or `cron = ["...", "..."]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStation {
    id: Spanned<String>,
    name: Spanned<String>,
    kind: Spanned<String>,
    area_code: Spanned<String>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    quiet_hours: Vec<Spanned<String>>,
    max_session_minutes: Option<Spanned<u32>>,
    loudness: Option<Spanned<RawLoudness>>,
    collector: Option<Spanned<RawCollector>>,
    #[serde(default)]
    programs: Vec<Spanned<RawProgram>>,
    #[serde(default)]
    slots: Vec<Spanned<RawSlot>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoudness {
    integrated_lufs: Option<Spanned<f64>>,
    max_true_peak_dbtp: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    url: Spanned<String>,
    heartbeat_secs: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProgram {
    id: Spanned<String>,
    title: Option<String>,
    category: Spanned<String>,
    file: Option<Spanned<String>>,
    episodes: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    id: Spanned<String>,
    cron: Spanned<OneOrMany>,
    from: Option<Spanned<toml::value::Datetime>>,
    until: Option<Spanned<toml::value::Datetime>>,
    program: Option<Spanned<String>>,
    play: Option<Spanned<Vec<Spanned<String>>>>,
    relay: Option<Spanned<RawRelay>>,
    priority: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    grace_secs: Option<Spanned<u32>>,
    max_minutes: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    url: Spanned<String>,
    minutes: Spanned<u32>,
    fallback: Option<Spanned<Vec<Spanned<String>>>>,
    silence_threshold_dbfs: Option<Spanned<f64>>,
}

// ---------------------------------------------------------------------------------------------
// Locating errors.

/// Turns byte offsets of one file into file:line:column errors.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ScheduleError>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    fn error_at(&self, offset: usize, field: &str, message: String, hint: &str) -> ScheduleError {
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

    fn push(&mut self, span: &Range<usize>, field: &str, message: String, hint: &str) {
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
pub(crate) fn parse_raw(path: &Path, text: &str) -> Result<RawStation, ScheduleErrors> {
    toml::from_str::<RawStation>(text).map_err(|e| {
        let ctx = Ctx::new(path, text);
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim().to_string();
        let hint = if message.contains("unknown field") {
            "remove the field or fix its spelling; docs/schedules.md lists every field"
        } else if message.contains("missing field") {
            "add the field; docs/schedules.md lists the required fields"
        } else if message.contains("invalid type") || message.contains("did not match") {
            "give the field a value of the documented type (see docs/schedules.md)"
        } else {
            "fix the TOML syntax (https://toml.io/en/v1.0.0)"
        };
        let mut field = field_at(text, offset);
        // "missing field `cron`": the span is the table that lacks it.
        if let Some(name) = message
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

/// Parse and validate a station file's text. `today` (station-local) bounds the checks of
/// open-ended validity windows (see [`CHECK_HORIZON_MONTHS`]).
pub fn parse_station(
    path: &Path,
    text: &str,
    catalog: &AudioCatalog,
    today: NaiveDate,
) -> Result<Station, ScheduleErrors> {
    let raw = parse_raw(path, text)?;
    validate(path, text, &raw, catalog, today)
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

fn toml_date(d: &toml::value::Datetime) -> Option<NaiveDate> {
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
fn months(a: NaiveDate, b: NaiveDate) -> Vec<NaiveDate> {
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
fn find_quoted(text: &str, span: &Range<usize>, from: usize, value: &str) -> usize {
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

fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

fn parse_quiet(s: &str) -> Option<QuietHours> {
    let (a, b) = s.split_once('-')?;
    let q = QuietHours {
        start: parse_hhmm(a)?,
        end: parse_hhmm(b)?,
    };
    (q.start != q.end).then_some(q)
}

fn is_safe_relative(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Where each built slot's parts are in the file (for the time-based checks).
struct SlotSpans {
    field: String,
    id: Range<usize>,
    max_minutes: Option<Range<usize>>,
    items: Vec<(Range<usize>, String)>,
}

/// Validate a parsed file into a [`Station`], or list every problem.
pub(crate) fn validate(
    path: &Path,
    text: &str,
    raw: &RawStation,
    catalog: &AudioCatalog,
    today: NaiveDate,
) -> Result<Station, ScheduleErrors> {
    let mut cx = Ctx::new(path, text);

    // --- station
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let id = raw.id.get_ref().trim().to_string();
    if !is_valid_id(&id) {
        cx.push(
            &raw.id.span(),
            "id",
            format!("station id `{id}` is not a valid id"),
            "use lowercase ASCII letters, digits, `-` and `_`, e.g. `phuong-tran-phu`",
        );
    } else if !stem.is_empty() && id != stem {
        cx.push(
            &raw.id.span(),
            "id",
            format!("station id `{id}` does not match the file name `{stem}.toml`"),
            "name the file `<id>.toml` or change the id so both agree",
        );
    }
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() {
        cx.push(
            &raw.name.span(),
            "name",
            "the station name is empty".into(),
            "give the display name, e.g. \"Đài truyền thanh phường Trần Phú\"",
        );
    }
    let kind = match raw.kind.get_ref().as_str() {
        "city" => StationKind::City,
        "ward" => StationKind::Ward,
        other => {
            cx.push(
                &raw.kind.span(),
                "kind",
                format!("unknown station kind `{other}`"),
                "use `city` (the city radio) or `ward` (a ward/commune loudspeaker station)",
            );
            StationKind::Ward
        }
    };
    let area_code = raw.area_code.get_ref().trim().to_string();
    if area_code.is_empty() || !area_code.chars().all(|c| c.is_ascii_digit()) {
        cx.push(
            &raw.area_code.span(),
            "area_code",
            format!("area code `{area_code}` is not a number"),
            "use the national administrative unit code (mã đơn vị hành chính), digits only",
        );
    }
    let timezone = match &raw.timezone {
        None => DEFAULT_TIMEZONE
            .parse::<Tz>()
            .unwrap_or(chrono_tz::Asia::Ho_Chi_Minh),
        Some(tz) => match tz.get_ref().parse::<Tz>() {
            Ok(z) => z,
            Err(_) => {
                cx.push(
                    &tz.span(),
                    "timezone",
                    format!("unknown time zone `{}`", tz.get_ref()),
                    "use an IANA zone name such as `Asia/Ho_Chi_Minh` (the default) or `Europe/Berlin`",
                );
                chrono_tz::Asia::Ho_Chi_Minh
            }
        },
    };
    let mut quiet_hours = Vec::new();
    for (i, q) in raw.quiet_hours.iter().enumerate() {
        match parse_quiet(q.get_ref()) {
            Some(w) => quiet_hours.push(w),
            None => cx.push(
                &q.span(),
                &format!("quiet_hours[{i}]"),
                format!("`{}` is not a quiet-hours window", q.get_ref()),
                "write \"HH:MM-HH:MM\" in station time, e.g. \"21:30-05:00\" (may wrap midnight)",
            ),
        }
    }
    let max_session_minutes = match &raw.max_session_minutes {
        None => DEFAULT_MAX_SESSION_MINUTES,
        Some(m) if *m.get_ref() == 0 => {
            cx.push(
                &m.span(),
                "max_session_minutes",
                "max_session_minutes is 0".into(),
                "give the longest allowed session in minutes, e.g. 45",
            );
            DEFAULT_MAX_SESSION_MINUTES
        }
        Some(m) if *m.get_ref() > super::rules::MAX_AIRING_MINUTES => {
            cx.push(
                &m.span(),
                "max_session_minutes",
                format!(
                    "max_session_minutes = {} is longer than a day ({} min)",
                    m.get_ref(),
                    super::rules::MAX_AIRING_MINUTES
                ),
                "give the longest allowed session in minutes, e.g. 45",
            );
            DEFAULT_MAX_SESSION_MINUTES
        }
        Some(m) => *m.get_ref(),
    };
    let loudness = raw
        .loudness
        .as_ref()
        .map_or_else(LoudnessTarget::default, |l| {
            let d = LoudnessTarget::default();
            let l = l.get_ref();
            LoudnessTarget {
                integrated_lufs: in_range(
                    &mut cx,
                    l.integrated_lufs.as_ref(),
                    "loudness.integrated_lufs",
                    "LUFS",
                    INTEGRATED_LUFS_RANGE,
                    d.integrated_lufs,
                ),
                max_true_peak_dbtp: in_range(
                    &mut cx,
                    l.max_true_peak_dbtp.as_ref(),
                    "loudness.max_true_peak_dbtp",
                    "dBTP",
                    MAX_TRUE_PEAK_DBTP_RANGE,
                    d.max_true_peak_dbtp,
                ),
            }
        });
    let collector = raw.collector.as_ref().map(|c| {
        let c = c.get_ref();
        if !is_http_url(c.url.get_ref()) {
            cx.push(
                &c.url.span(),
                "collector.url",
                format!("collector URL `{}` is not an http(s) URL", c.url.get_ref()),
                "write it like `http://collector.example:8080`",
            );
        }
        let heartbeat_secs = match &c.heartbeat_secs {
            Some(h) if *h.get_ref() == 0 => {
                cx.push(
                    &h.span(),
                    "collector.heartbeat_secs",
                    "heartbeat_secs is 0".into(),
                    "give the heartbeat period in seconds, e.g. 60",
                );
                DEFAULT_HEARTBEAT_SECS
            }
            Some(h) => *h.get_ref(),
            None => DEFAULT_HEARTBEAT_SECS,
        };
        CollectorLink {
            url: c.url.get_ref().clone(),
            heartbeat_secs,
        }
    });

    // --- programs
    let mut programs: BTreeMap<String, Program> = BTreeMap::new();
    // Declared but unusable (its own error is reported once, at the program): references to
    // it are not errors of their own, and a slot using it is not built.
    let mut bad_programs: BTreeSet<String> = BTreeSet::new();
    for (i, p) in raw.programs.iter().enumerate() {
        let field = format!("programs[{i}]");
        let p = p.get_ref();
        let pid = p.id.get_ref().trim().to_string();
        if !is_valid_id(&pid) {
            cx.push(
                &p.id.span(),
                &format!("{field}.id"),
                format!("program id `{pid}` is not a valid id"),
                "use lowercase ASCII letters, digits, `-` and `_`, e.g. `cchc`",
            );
        } else if programs.contains_key(&pid) {
            cx.push(
                &p.id.span(),
                &format!("{field}.id"),
                format!("duplicate program id `{pid}`"),
                "give every program its own id",
            );
        }
        let category = p.category.get_ref().trim().to_string();
        if !is_valid_id(&category) {
            cx.push(
                &p.category.span(),
                &format!("{field}.category"),
                format!("category `{category}` is not a valid category"),
                "use a short lowercase word used by reports, e.g. `cchc`, `notice`, `ident`",
            );
        }
        let audio = match (&p.file, &p.episodes) {
            (Some(f), None) => {
                check_file(
                    &mut cx,
                    catalog,
                    f.get_ref(),
                    &f.span(),
                    &format!("{field}.file"),
                );
                Some(ProgramAudio::File(PathBuf::from(f.get_ref())))
            }
            (None, Some(e)) => {
                let pat = e.get_ref();
                let before = cx.errors.len();
                if let Some((at, token)) = unknown_placeholder(pat) {
                    let offset = offset_in_string(text, &e.span(), pat, at);
                    let err = cx.error_at(
                        offset,
                        &format!("{field}.episodes"),
                        format!("unknown placeholder `{token}` in episode pattern `{pat}`"),
                        "use only {yyyy}, {mm} and {dd} (the airing's local year, month and day), e.g. \"cchc/{yyyy}-{mm}.ogg\"",
                    );
                    cx.errors.push(err);
                } else if !pat.contains("{yyyy}") || !pat.contains("{mm}") || !is_safe_relative(pat)
                {
                    cx.push(
                        &e.span(),
                        &format!("{field}.episodes"),
                        format!("episode pattern `{pat}` must contain {{yyyy}} and {{mm}} and be a relative path"),
                        "write it like \"cchc/{yyyy}-{mm}.ogg\" (relative to the audio root)",
                    );
                }
                (cx.errors.len() == before).then(|| ProgramAudio::Episodes(pat.clone()))
            }
            (Some(f), Some(_)) => {
                cx.push(
                    &f.span(),
                    &field,
                    format!("program `{pid}` has both `file` and `episodes`"),
                    "keep one: `file` for a fixed file, `episodes` for a monthly series",
                );
                None
            }
            (None, None) => {
                cx.push(
                    &p.id.span(),
                    &field,
                    format!("program `{pid}` has neither `file` nor `episodes`"),
                    "add `file = \"x.ogg\"` or `episodes = \"cchc/{yyyy}-{mm}.ogg\"`",
                );
                None
            }
        };
        match audio {
            Some(audio) => {
                programs.entry(pid.clone()).or_insert(Program {
                    title: p.title.clone().unwrap_or_else(|| pid.clone()),
                    id: pid,
                    category,
                    audio,
                });
            }
            None => {
                bad_programs.insert(pid);
            }
        }
    }

    // --- slots
    let mut slots: Vec<Slot> = Vec::new();
    let mut spans: Vec<SlotSpans> = Vec::new();
    let mut seen_slots: BTreeSet<String> = BTreeSet::new();
    for (i, s) in raw.slots.iter().enumerate() {
        let field = format!("slots[{i}]");
        let s = s.get_ref();
        let before = cx.errors.len();
        let sid = s.id.get_ref().trim().to_string();
        if !is_valid_id(&sid) {
            cx.push(
                &s.id.span(),
                &format!("{field}.id"),
                format!("slot id `{sid}` is not a valid id"),
                "use lowercase ASCII letters, digits, `-` and `_`, e.g. `sang`",
            );
        } else if !seen_slots.insert(sid.clone()) {
            cx.push(
                &s.id.span(),
                &format!("{field}.id"),
                format!("duplicate slot id `{sid}`"),
                "give every slot its own id (airing keys are `{slot}@{time}`)",
            );
        }

        // cron
        let exprs: Vec<String> = match s.cron.get_ref() {
            OneOrMany::One(e) => vec![e.clone()],
            OneOrMany::Many(v) => v.clone(),
        };
        if exprs.is_empty() {
            cx.push(
                &s.cron.span(),
                &format!("{field}.cron"),
                "no crontab expression".into(),
                "write at least one, e.g. cron = \"30 5 * * MON-FRI\"",
            );
        }
        let many = matches!(s.cron.get_ref(), OneOrMany::Many(_));
        let mut cron = Vec::new();
        let mut cursor = s.cron.span().start;
        for (k, expr) in exprs.iter().enumerate() {
            let at = find_quoted(text, &s.cron.span(), cursor, expr);
            cursor = at + 1;
            let cfield = if many {
                format!("{field}.cron[{k}]")
            } else {
                format!("{field}.cron")
            };
            match Crontab::parse(expr) {
                Ok(c) if !c.ever_fires() => {
                    let err = cx.error_at(
                        at,
                        &cfield,
                        format!(
                            "crontab expression `{expr}` never fires (no such date in any year)"
                        ),
                        "check day-of-month against the month, e.g. February has no 30th",
                    );
                    cx.errors.push(err);
                }
                Ok(c) => cron.push(c),
                Err(e) => {
                    let (msg, col, hint) = crontab_error_parts(&e);
                    let offset = if text.get(at..at + 1) == Some("\"")
                        || text.get(at..at + 1) == Some("'")
                    {
                        at + 1 + col.unwrap_or(0)
                    } else {
                        at
                    };
                    let err = cx.error_at(
                        offset,
                        &cfield,
                        format!("bad crontab expression `{expr}`: {msg}"),
                        &hint,
                    );
                    cx.errors.push(err);
                }
            }
        }

        // window
        let date_of = |d: &Option<Spanned<toml::value::Datetime>>, name: &str, cx: &mut Ctx| {
            d.as_ref().and_then(|d| {
                let v = toml_date(d.get_ref());
                if v.is_none() {
                    cx.push(
                        &d.span(),
                        &format!("{field}.{name}"),
                        format!("`{}` is not a plain date", d.get_ref()),
                        "write a TOML local date without quotes, e.g. 2026-01-01",
                    );
                }
                v
            })
        };
        let from = date_of(&s.from, "from", &mut cx);
        let until = date_of(&s.until, "until", &mut cx);
        if let (Some(a), Some(b), Some(us)) = (from, until, &s.until)
            && a > b
        {
            cx.push(
                &us.span(),
                &format!("{field}.until"),
                format!("`until` ({b}) is before `from` ({a})"),
                "swap them or fix the dates",
            );
        }

        // program (report filing)
        // A reference to a program that is declared but broken: not an error of its own.
        let mut uses_bad_program = false;
        let program = s.program.as_ref().map(|p| {
            let pid = p.get_ref().trim().to_string();
            if bad_programs.contains(&pid) && !programs.contains_key(&pid) {
                uses_bad_program = true;
            } else if !programs.contains_key(&pid) {
                cx.push(
                    &p.span(),
                    &format!("{field}.program"),
                    format!("unknown program `{pid}`"),
                    &known_programs_hint(&programs),
                );
            }
            pid
        });

        // content
        let mut items_spans: Vec<(Range<usize>, String)> = Vec::new();
        let mut refs = |list: &Spanned<Vec<Spanned<String>>>, lfield: &str, cx: &mut Ctx| {
            let mut out = Vec::new();
            for (k, r) in list.get_ref().iter().enumerate() {
                let ifield = format!("{lfield}[{k}]");
                match check_item(cx, catalog, &programs, &bad_programs, r, &ifield) {
                    Checked::Item(item) => {
                        items_spans.push((r.span(), ifield));
                        out.push(item);
                    }
                    Checked::Reported => {}
                    Checked::BadProgram => uses_bad_program = true,
                }
            }
            out
        };
        let content = match (&s.play, &s.relay) {
            (Some(play), None) => {
                if play.get_ref().is_empty() {
                    cx.push(
                        &play.span(),
                        &format!("{field}.play"),
                        "empty playlist".into(),
                        "list files or program references, e.g. play = [\"jingle.ogg\", \"program:cchc\"]",
                    );
                }
                Some(SlotContent::Playlist(refs(
                    play,
                    &format!("{field}.play"),
                    &mut cx,
                )))
            }
            (None, Some(relay)) => {
                let r = relay.get_ref();
                if !is_http_url(r.url.get_ref()) {
                    cx.push(
                        &r.url.span(),
                        &format!("{field}.relay.url"),
                        format!("relay URL `{}` is not an http(s) URL", r.url.get_ref()),
                        "relay an Icecast/Shoutcast stream, e.g. \"http://127.0.0.1:8000/city.mp3\"",
                    );
                }
                if *r.minutes.get_ref() == 0 {
                    cx.push(
                        &r.minutes.span(),
                        &format!("{field}.relay.minutes"),
                        "relay minutes is 0".into(),
                        "give how long to relay, in minutes",
                    );
                } else if *r.minutes.get_ref() > max_session_minutes {
                    cx.push(
                        &r.minutes.span(),
                        &format!("{field}.relay.minutes"),
                        format!(
                            "session too long: relays {} min, longer than max_session_minutes = {max_session_minutes}",
                            r.minutes.get_ref()
                        ),
                        "shorten the relay or raise max_session_minutes at the top of the file",
                    );
                }
                let fallback = r
                    .fallback
                    .as_ref()
                    .map(|f| refs(f, &format!("{field}.relay.fallback"), &mut cx))
                    .unwrap_or_default();
                Some(SlotContent::Relay(RelaySpec {
                    url: r.url.get_ref().clone(),
                    minutes: *r.minutes.get_ref(),
                    fallback,
                    silence_threshold_dbfs: in_range(
                        &mut cx,
                        r.silence_threshold_dbfs.as_ref(),
                        &format!("{field}.relay.silence_threshold_dbfs"),
                        "dBFS",
                        SILENCE_THRESHOLD_DBFS_RANGE,
                        DEFAULT_SILENCE_THRESHOLD_DBFS,
                    ),
                }))
            }
            (Some(play), Some(_)) => {
                cx.push(
                    &play.span(),
                    &field,
                    format!("slot `{sid}` has both `play` and `relay`"),
                    "keep one: `play` for a playlist, `relay` for a live stream (with `fallback`)",
                );
                None
            }
            (None, None) => {
                cx.push(
                    &s.id.span(),
                    &field,
                    format!("slot `{sid}` airs nothing"),
                    "add `play = [...]` or `relay = { url = ..., minutes = ... }`",
                );
                None
            }
        };

        let priority = match s.priority.as_ref().map(|p| (p, p.get_ref().as_str())) {
            None | Some((_, "normal")) => Priority::Normal,
            Some((_, "priority")) => Priority::Priority,
            Some((_, "emergency")) => Priority::Emergency,
            Some((p, other)) => {
                cx.push(
                    &p.span(),
                    &format!("{field}.priority"),
                    format!("unknown priority `{other}`"),
                    "use `normal`, `priority` or `emergency`",
                );
                Priority::Normal
            }
        };
        let start = match s.start.as_ref().map(|p| (p, p.get_ref().as_str())) {
            None | Some((_, "soft")) => StartPolicy::Soft,
            Some((_, "hard")) => StartPolicy::Hard,
            Some((p, other)) => {
                cx.push(
                    &p.span(),
                    &format!("{field}.start"),
                    format!("unknown start policy `{other}`"),
                    "use `soft` (wait up to grace_secs) or `hard` (start on the second)",
                );
                StartPolicy::Soft
            }
        };
        let max_minutes = match (&s.max_minutes, &content) {
            (Some(m), _) if *m.get_ref() == 0 => {
                cx.push(
                    &m.span(),
                    &format!("{field}.max_minutes"),
                    "max_minutes is 0".into(),
                    "give the hard stop in minutes",
                );
                max_session_minutes
            }
            (Some(m), _) if *m.get_ref() > max_session_minutes => {
                cx.push(
                    &m.span(),
                    &format!("{field}.max_minutes"),
                    format!(
                        "session too long: max_minutes = {} is longer than max_session_minutes = {max_session_minutes}",
                        m.get_ref()
                    ),
                    "lower max_minutes or raise max_session_minutes at the top of the file",
                );
                max_session_minutes
            }
            (Some(m), _) => *m.get_ref(),
            (None, Some(SlotContent::Relay(r))) => r.minutes.clamp(1, max_session_minutes),
            (None, _) => max_session_minutes,
        };

        let fires_per_day: usize = cron.iter().map(|c| c.times_of_day().len()).sum();
        if fires_per_day > MAX_FIRES_PER_DAY {
            cx.push(
                &s.cron.span(),
                &format!("{field}.cron"),
                format!(
                    "the slot fires {fires_per_day} times a day, more than {MAX_FIRES_PER_DAY}"
                ),
                "a broadcast slot fires a few times a day; check the minute and seconds fields",
            );
        }
        if cx.errors.len() == before
            && !uses_bad_program
            && let Some(content) = content
        {
            slots.push(Slot {
                id: sid,
                cron,
                from,
                until,
                program,
                content,
                priority,
                start,
                grace_secs: s
                    .grace_secs
                    .as_ref()
                    .map_or(DEFAULT_GRACE_SECS, |g| *g.get_ref()),
                max_minutes,
            });
            spans.push(SlotSpans {
                field,
                id: s.id.span(),
                max_minutes: s.max_minutes.as_ref().map(|m| m.span()),
                items: items_spans,
            });
        }
    }

    let station = Station {
        id,
        name,
        kind,
        area_code,
        timezone,
        quiet_hours,
        max_session_minutes,
        loudness,
        collector,
        programs,
        slots,
        source: path.to_path_buf(),
    };

    // --- checks over time (only on what built cleanly)
    time_checks(&mut cx, &station, &spans, catalog, today);

    if cx.errors.is_empty() {
        Ok(station)
    } else {
        cx.errors.sort_by_key(|e| (e.line, e.column));
        Err(ScheduleErrors(cx.errors))
    }
}

/// A level field (dB-like, `f64`): its value when given and inside `range` (NaN never is),
/// else `default`, with an error naming the range.
fn in_range(
    cx: &mut Ctx,
    v: Option<&Spanned<f64>>,
    field: &str,
    unit: &str,
    range: RangeInclusive<f64>,
    default: f64,
) -> f64 {
    let Some(v) = v else {
        return default;
    };
    let x = *v.get_ref();
    if range.contains(&x) {
        return x;
    }
    cx.push(
        &v.span(),
        field,
        format!(
            "{} = {x} is outside {}..{} {unit}",
            field.rsplit('.').next().unwrap_or(field),
            range.start(),
            range.end()
        ),
        &format!(
            "give a level between {} and {} {unit} (levels are negative: 0 is full scale); the default is {default}",
            range.start(),
            range.end()
        ),
    );
    default
}

/// Message, byte column within the expression (if known) and hint of a crontab error.
fn crontab_error_parts(e: &crate::crontab::CrontabError) -> (String, Option<usize>, String) {
    (
        e.message.clone(),
        Some(e.offset),
        format!("{}; see docs/crontab.md", e.hint),
    )
}

fn known_programs_hint(programs: &BTreeMap<String, Program>) -> String {
    if programs.is_empty() {
        "declare it in a [[programs]] table first".into()
    } else {
        format!(
            "declare it in [[programs]] or use one of: {}",
            programs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

fn check_file(cx: &mut Ctx, catalog: &AudioCatalog, file: &str, span: &Range<usize>, field: &str) {
    if !is_safe_relative(file) {
        cx.push(
            span,
            field,
            format!("audio path `{file}` must be relative to the audio root, without `..`"),
            "write it like \"jingle.ogg\" or \"notices/tran-phu.ogg\"",
        );
        return;
    }
    let shown = catalog.root.join(file);
    match catalog.files.get(Path::new(file)) {
        None => cx.push(
            span,
            field,
            format!("audio file missing: `{}` does not exist", shown.display()),
            "add the file under the audio root (see --audio) or fix the name",
        ),
        Some(AudioFacts::Undecodable(why)) => cx.push(
            span,
            field,
            format!("audio file `{}` is not decodable: {why}", shown.display()),
            "re-export it as Ogg Vorbis, MP3, FLAC or WAV (e.g. `sox in.wav out.ogg`)",
        ),
        Some(AudioFacts::NotAFile(what)) => cx.push(
            span,
            field,
            format!(
                "audio path `{}` is {what}, expected an audio file",
                shown.display()
            ),
            "name a file inside it (e.g. \"notices/tran-phu.ogg\"), not the directory",
        ),
        Some(AudioFacts::Playable { .. }) => {}
    }
}

/// What checking one playlist entry gave.
enum Checked {
    Item(ItemRef),
    /// Wrong; the error is reported.
    Reported,
    /// A reference to a declared program that is itself broken (reported at the program).
    BadProgram,
}

/// Check one playlist entry: `"program:ID"` or a file.
fn check_item(
    cx: &mut Ctx,
    catalog: &AudioCatalog,
    programs: &BTreeMap<String, Program>,
    bad_programs: &BTreeSet<String>,
    r: &Spanned<String>,
    field: &str,
) -> Checked {
    let v = r.get_ref().trim();
    if let Some(pid) = v.strip_prefix(PROGRAM_REF_PREFIX) {
        let pid = pid.trim();
        if programs.contains_key(pid) {
            Checked::Item(ItemRef::Program(pid.to_string()))
        } else if bad_programs.contains(pid) {
            Checked::BadProgram
        } else {
            cx.push(
                &r.span(),
                field,
                format!("unknown program `{pid}`"),
                &known_programs_hint(programs),
            );
            Checked::Reported
        }
    } else {
        let before = cx.errors.len();
        check_file(cx, catalog, v, &r.span(), field);
        if cx.errors.len() == before {
            Checked::Item(ItemRef::File(PathBuf::from(v)))
        } else {
            Checked::Reported
        }
    }
}

/// The first `{…}` of an episode pattern that is not `{yyyy}`, `{mm}` or `{dd}`: its byte
/// index in the pattern and the token (up to its `}`, or the rest of the pattern).
fn unknown_placeholder(pattern: &str) -> Option<(usize, &str)> {
    let mut from = 0;
    while let Some(i) = pattern[from..].find('{').map(|i| from + i) {
        let tail = &pattern[i..];
        if let Some(len) = ["{yyyy}", "{mm}", "{dd}"]
            .iter()
            .find(|t| tail.starts_with(**t))
            .map(|t| t.len())
        {
            from = i + len;
            continue;
        }
        let end = tail.find('}').map_or(tail.len(), |j| j + 1);
        return Some((i, &tail[..end]));
    }
    None
}

/// Byte offset in `text` of byte `at` of the string value `value` written at `span`, when the
/// value is written literally (no escapes before `at`); else the span start.
fn offset_in_string(text: &str, span: &Range<usize>, value: &str, at: usize) -> usize {
    let written = text.get(span.start + 1..).unwrap_or("");
    if value
        .get(..at)
        .is_some_and(|head| written.starts_with(head))
    {
        span.start + 1 + at
    } else {
        span.start
    }
}

/// Episodes and session length over each slot's checked window; quiet hours and overlaps
/// ([`super::rules`]) over each slot's whole window.
fn time_checks(
    cx: &mut Ctx,
    station: &Station,
    spans: &[SlotSpans],
    catalog: &AudioCatalog,
    today: NaiveDate,
) {
    use super::plan::{resolve_items, total_secs};
    use super::rules::Finding;
    for (slot, sp) in station.slots.iter().zip(spans) {
        let Some((a, b)) = check_window(slot.from, slot.until, today) else {
            continue;
        };
        // Episodes for every month of the window.
        let item_list: &[super::ItemRef] = match &slot.content {
            SlotContent::Playlist(v) => v,
            SlotContent::Relay(r) => &r.fallback,
        };
        for (k, item) in item_list.iter().enumerate() {
            let super::ItemRef::Program(pid) = item else {
                continue;
            };
            let Some(Program {
                audio: ProgramAudio::Episodes(pattern),
                ..
            }) = station.programs.get(pid)
            else {
                continue;
            };
            let mut missing = Vec::new();
            let mut broken = Vec::new();
            let mut not_files = Vec::new();
            for m in months(a, b) {
                let f = resolve_episode(pattern, m);
                match catalog.files.get(&f) {
                    None => missing.push(m),
                    Some(AudioFacts::Undecodable(_)) => {
                        broken.push(format!("{}", m.format("%Y-%m")))
                    }
                    Some(AudioFacts::NotAFile(what)) => {
                        not_files.push(format!("`{}` ({what})", catalog.root.join(&f).display()))
                    }
                    Some(AudioFacts::Playable { .. }) => {}
                }
            }
            if let Some((span, field)) = sp.items.get(k) {
                if let Some(&first_missing) = missing.first() {
                    let first = resolve_episode(pattern, first_missing);
                    let more = match missing.len() {
                        1 => String::new(),
                        n => format!(" and the {} other missing month(s)", n - 1),
                    };
                    let missing: Vec<String> = missing
                        .iter()
                        .map(|m| m.format("%Y-%m").to_string())
                        .collect();
                    cx.push(
                        span,
                        field,
                        format!(
                            "episode missing for {} month(s) of the slot's window {a}..{b}: {} (pattern `{pattern}` under `{}`)",
                            missing.len(),
                            missing.join(", "),
                            catalog.root.display()
                        ),
                        &format!(
                            "add `{}`{more}, or narrow the slot with from/until; open-ended windows are checked for this month and the next {CHECK_HORIZON_MONTHS}",
                            catalog.root.join(first).display()
                        ),
                    );
                }
                if !not_files.is_empty() {
                    cx.push(
                        span,
                        field,
                        format!("episode is not an audio file: {}", not_files.join(", ")),
                        "an episode is one audio file per month; put the file at that path",
                    );
                }
                if !broken.is_empty() {
                    cx.push(
                        span,
                        field,
                        format!("episode audio not decodable for {}", broken.join(", ")),
                        "re-export those files as Ogg Vorbis, MP3, FLAC or WAV",
                    );
                }
            }
        }

        // Unclipped playlist length vs the hard stop.
        let cap_secs = f64::from(slot.max_minutes) * 60.0;
        if let SlotContent::Playlist(list) = &slot.content {
            let mut worst = 0.0f64;
            for m in months(a, b) {
                worst = worst.max(total_secs(&resolve_items(station, list, m), catalog));
            }
            if worst > cap_secs {
                let span = sp.max_minutes.clone().unwrap_or(sp.id.clone());
                cx.push(
                    &span,
                    &format!("{}.max_minutes", sp.field),
                    format!(
                        "session too long: the playlist runs {:.0} s but the slot may sound at most {} min (max_minutes, default max_session_minutes = {})",
                        worst, slot.max_minutes, station.max_session_minutes
                    ),
                    "shorten the playlist, or raise max_minutes/max_session_minutes",
                );
            }
        }
    }

    // Quiet hours and overlaps, over the whole windows.
    for finding in super::rules::check(station, catalog, today) {
        match finding {
            Finding::QuietHours {
                slot,
                quiet: q,
                at,
                planned_secs,
                hit,
            } => {
                let sp = &spans[slot];
                let what = if hit == at.naive_local() {
                    "starts inside".to_string()
                } else {
                    format!("runs into them at {}", hit.format("%H:%M:%S"))
                };
                cx.push(
                    &sp.id,
                    &sp.field,
                    format!(
                        "slot sounds inside quiet hours {}-{}: the airing at {} ({:.0} s) {what}",
                        q.start.format("%H:%M"),
                        q.end.format("%H:%M"),
                        at.format("%Y-%m-%d %H:%M %:z"),
                        planned_secs
                    ),
                    "move the slot's crontab time or shorten it so it ends before the quiet hours",
                );
            }
            Finding::Overlap { first, second, at } => {
                let (a, b) = (&station.slots[first], &station.slots[second]);
                let sp = &spans[second];
                let when = at.format("%Y-%m-%d %H:%M %:z");
                let msg = if first == second {
                    format!(
                        "slot `{}` overlaps itself at {when}: an airing starts before the previous one ends",
                        a.id
                    )
                } else {
                    format!(
                        "slots `{}` and `{}` have the same priority ({}) and overlap at {when}",
                        a.id,
                        b.id,
                        priority_name(b.priority)
                    )
                };
                cx.push(
                    &sp.id,
                    &sp.field,
                    msg,
                    "move one of them, or give the one that should win a higher priority",
                );
            }
        }
    }
}

fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Normal => "normal",
        Priority::Priority => "priority",
        Priority::Emergency => "emergency",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn quiet_windows() {
        let check = |s: &str, expected: Option<(u32, u32, u32, u32)>| {
            let got = parse_quiet(s).map(|q| {
                use chrono::Timelike;
                (
                    q.start.hour(),
                    q.start.minute(),
                    q.end.hour(),
                    q.end.minute(),
                )
            });
            assert_eq!(got, expected, "{s}");
        };
        check("21:30-05:00", Some((21, 30, 5, 0)));
        check("12:00-13:00", Some((12, 0, 13, 0)));
        check("24:00-05:00", None);
        check("9:00-10:00", None);
        check("10:00-10:00", None);
        check("10:00", None);
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
    fn urls_and_paths() {
        for (u, ok) in [
            ("http://127.0.0.1:8000/city.mp3", true),
            ("HTTPS://radio.example/live", true),
            ("rtsp://x/y", false),
            ("http://", false),
            ("http:///x", false),
            ("ftp://x", false),
        ] {
            assert_eq!(is_http_url(u), ok, "{u}");
        }
        for (p, ok) in [
            ("jingle.ogg", true),
            ("notices/a.ogg", true),
            ("../etc/passwd", false),
            ("/abs.ogg", false),
            ("", false),
        ] {
            assert_eq!(is_safe_relative(p), ok, "{p}");
        }
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

    #[test]
    fn id_must_match_the_file_name() {
        let text = "id = \"a\"\nname = \"A\"\nkind = \"ward\"\narea_code = \"1\"\n";
        let cat = AudioCatalog::default();
        assert!(parse_station(Path::new("a.toml"), text, &cat, d(2026, 1, 1)).is_ok());
        let errs = parse_station(Path::new("b.toml"), text, &cat, d(2026, 1, 1))
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            (errs[0].line, errs[0].column, errs[0].field.as_str()),
            (1, 6, "id")
        );
        assert!(
            errs[0]
                .message
                .contains("does not match the file name `b.toml`")
        );
    }
}
