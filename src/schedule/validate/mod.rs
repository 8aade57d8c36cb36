//! Validation of a parsed schedule file ([`super::file`]'s raw form) into a typed [`Station`],
//! one file per TOML section: `station` (the top-level keys), `quiet_hours`, `loudness`,
//! `collector`, `programs`, `slots` (with each slot's `relay`), then the checks over time
//! (`time`) on the slots that built.
//!
//! **Invariant:** pure (the raw file, its text, an [`AudioCatalog`] and "today" in) and total: a
//! file with any problem yields no `Station`, only every [`super::ScheduleError`] found, each
//! located at file:line:column of the value that is wrong with its field path and a fix, sorted by
//! line and column. Each section checks its own keys and states its own invariant.

mod collector;
mod loudness;
mod programs;
mod quiet_hours;
mod relay;
mod slots;
mod station;
mod time;

pub use collector::DEFAULT_HEARTBEAT_SECS;
pub use loudness::{INTEGRATED_LUFS_RANGE, MAX_TRUE_PEAK_DBTP_RANGE};
pub use relay::SILENCE_THRESHOLD_DBFS_RANGE;
pub use slots::MAX_FIRES_PER_DAY;

use chrono::NaiveDate;

use std::ops::{Range, RangeInclusive};
use std::path::{Component, Path};
use toml::Spanned;

use super::file::{Ctx, RawStation, parse_raw};
use super::{AudioCatalog, AudioFacts, ScheduleErrors, Station};

/// Parse and validate a station file's text. `today` (station-local) bounds the checks of
/// open-ended validity windows (see [`super::plan::CHECK_HORIZON_MONTHS`]).
pub fn parse_station(
    path: &Path,
    text: &str,
    catalog: &AudioCatalog,
    today: NaiveDate,
) -> Result<Station, ScheduleErrors> {
    let raw = parse_raw(path, text)?;
    validate(path, text, &raw, catalog, today)
}

/// Where each built slot's parts are in the file (for the time-based checks).
pub(super) struct SlotSpans {
    pub(super) field: String,
    pub(super) id: Range<usize>,
    pub(super) max_minutes: Option<Range<usize>>,
    pub(super) items: Vec<(Range<usize>, String)>,
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
    let who = station::check(&mut cx, path, raw);
    let quiet_hours = quiet_hours::check(&mut cx, raw);
    let max_session_minutes = station::max_session_minutes(&mut cx, raw);
    let loudness = loudness::check(&mut cx, raw);
    let collector = collector::check(&mut cx, raw);
    let (programs, bad_programs) = programs::check(&mut cx, text, raw, catalog);
    let (slots, spans) = slots::check(
        &mut cx,
        text,
        raw,
        catalog,
        &programs,
        &bad_programs,
        max_session_minutes,
    );
    let station = Station {
        id: who.id,
        name: who.name,
        kind: who.kind,
        area_code: who.area_code,
        timezone: who.timezone,
        quiet_hours,
        max_session_minutes,
        loudness,
        collector,
        programs,
        slots,
        source: path.to_path_buf(),
    };

    // Checks over time (only on what built cleanly).
    time::check(&mut cx, &station, &spans, catalog, today);

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
            "{} = {x} nằm ngoài khoảng {}..{} {unit}",
            field.rsplit('.').next().unwrap_or(field),
            range.start(),
            range.end()
        ),
        &format!(
            "ghi mức từ {} đến {} {unit} (mức là số âm: 0 là mức tối đa); mặc định là {default}",
            range.start(),
            range.end()
        ),
    );
    default
}

fn check_file(cx: &mut Ctx, catalog: &AudioCatalog, file: &str, span: &Range<usize>, field: &str) {
    if !is_safe_relative(file) {
        cx.push(
            span,
            field,
            format!("đường dẫn âm thanh `{file}` phải là đường dẫn tương đối trong thư mục âm thanh, không chứa `..`"),
            "viết theo mẫu \"jingle.ogg\" hoặc \"notices/tran-phu.ogg\"",
        );
        return;
    }
    let shown = catalog.root.join(file);
    match catalog.files.get(Path::new(file)) {
        None => cx.push(
            span,
            field,
            format!("thiếu tệp âm thanh: không có `{}`", shown.display()),
            "chép tệp vào thư mục âm thanh (xem --audio) hoặc sửa lại tên tệp",
        ),
        Some(AudioFacts::Undecodable(why)) => cx.push(
            span,
            field,
            format!(
                "tệp âm thanh `{}` không giải mã được (bộ giải mã báo: `{why}`)",
                shown.display()
            ),
            "xuất lại tệp dưới dạng Ogg Vorbis, MP3, FLAC hoặc WAV (ví dụ `sox in.wav out.ogg`)",
        ),
        Some(AudioFacts::NotAFile(what)) => cx.push(
            span,
            field,
            format!(
                "đường dẫn âm thanh `{}` là {what}, không phải tệp âm thanh",
                shown.display()
            ),
            "ghi tên một tệp bên trong (ví dụ \"notices/tran-phu.ogg\"), không ghi thư mục",
        ),
        Some(AudioFacts::Playable { .. }) => {}
    }
}

fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
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
        assert!(errs[0].message.contains("không khớp với tên tệp `b.toml`"));
    }
}
