//! `[[slots]]`: when something airs (`cron`, `from`, `until`), what (`program`, `play` or a
//! `relay`), and how (`priority`, `start`, `grace_secs`, `max_minutes`).
//!
//! **Invariant:** a slot is built only when every one of its fields checks out and it names no
//! broken program; its id is unique; every crontab expression parses and fires on some date, at
//! most [`MAX_FIRES_PER_DAY`] times a day in all; `from` is not after `until`; it airs exactly
//! one of a non-empty playlist or a relay; its hard stop is at most `max_session_minutes`. Each
//! built slot's spans are kept for the checks over time.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

use super::super::file::{Ctx, OneOrMany, RawStation, find_quoted, toml_date};
use super::super::{
    AudioCatalog, DEFAULT_GRACE_SECS, ItemRef, PROGRAM_REF_PREFIX, Priority, Program, Slot,
    SlotContent, StartPolicy,
};
use super::{SlotSpans, check_file, is_valid_id, relay};
use crate::crontab::Crontab;

/// Most firings a slot may have in a day (every minute); more is not a broadcast schedule and
/// would make the plan explode.
pub const MAX_FIRES_PER_DAY: usize = 1440;

/// Check every slot: the slots that built, with where their parts are in the file.
pub(super) fn check(
    cx: &mut Ctx,
    text: &str,
    raw: &RawStation,
    catalog: &AudioCatalog,
    programs: &BTreeMap<String, Program>,
    bad_programs: &BTreeSet<String>,
    max_session_minutes: u32,
) -> (Vec<Slot>, Vec<SlotSpans>) {
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
                format!("mã khung phát `{sid}` không hợp lệ"),
                "chỉ dùng chữ thường không dấu, chữ số, `-` và `_`, ví dụ `sang`",
            );
        } else if !seen_slots.insert(sid.clone()) {
            cx.push(
                &s.id.span(),
                &format!("{field}.id"),
                format!("mã khung phát `{sid}` bị trùng"),
                "đặt cho mỗi khung phát một mã riêng (khóa lượt phát là `{slot}@{time}`)",
            );
        }

        let cron = check_cron(cx, text, &s.cron, &field);

        // window
        let date_of = |d: &Option<Spanned<toml::value::Datetime>>, name: &str, cx: &mut Ctx| {
            d.as_ref().and_then(|d| {
                let v = toml_date(d.get_ref());
                if v.is_none() {
                    cx.push(
                        &d.span(),
                        &format!("{field}.{name}"),
                        format!("`{}` không phải một ngày đơn thuần", d.get_ref()),
                        "ghi ngày theo kiểu ngày của TOML, không có dấu nháy, ví dụ 2026-01-01",
                    );
                }
                v
            })
        };
        let from = date_of(&s.from, "from", cx);
        let until = date_of(&s.until, "until", cx);
        if let (Some(a), Some(b), Some(us)) = (from, until, &s.until)
            && a > b
        {
            cx.push(
                &us.span(),
                &format!("{field}.until"),
                format!("`until` ({b}) sớm hơn `from` ({a})"),
                "đổi chỗ hai ngày hoặc sửa lại ngày",
            );
        }

        // program (report filing)
        // A reference to a program that is declared but broken: not an error of its own.
        let mut items = Items::new(catalog, programs, bad_programs);
        let program = s.program.as_ref().map(|p| {
            let pid = p.get_ref().trim().to_string();
            if bad_programs.contains(&pid) && !programs.contains_key(&pid) {
                items.uses_bad_program = true;
            } else if !programs.contains_key(&pid) {
                cx.push(
                    &p.span(),
                    &format!("{field}.program"),
                    format!("chương trình `{pid}` chưa được khai báo"),
                    &known_programs_hint(programs),
                );
            }
            pid
        });

        // content
        let content = match (&s.play, &s.relay) {
            (Some(play), None) => {
                if play.get_ref().is_empty() {
                    cx.push(
                        &play.span(),
                        &format!("{field}.play"),
                        "danh sách phát trống".into(),
                        "liệt kê tệp hoặc chương trình, ví dụ play = [\"jingle.ogg\", \"program:cchc\"]",
                    );
                }
                Some(SlotContent::Playlist(items.check_list(
                    cx,
                    play,
                    &format!("{field}.play"),
                )))
            }
            (None, Some(relay)) => relay::check(cx, relay, &field, max_session_minutes, &mut items),
            (Some(play), Some(_)) => {
                cx.push(
                    &play.span(),
                    &field,
                    format!("khung phát `{sid}` có cả `play` lẫn `relay`"),
                    "giữ một: `play` cho danh sách phát, `relay` cho tiếp sóng trực tiếp (kèm `fallback`)",
                );
                None
            }
            (None, None) => {
                cx.push(
                    &s.id.span(),
                    &field,
                    format!("khung phát `{sid}` không phát gì"),
                    "thêm `play = [...]` hoặc `relay = { url = ..., minutes = ... }`",
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
                    format!("mức ưu tiên `{other}` không có"),
                    "dùng `normal` (thường), `priority` (ưu tiên) hoặc `emergency` (khẩn cấp)",
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
                    format!("cách bắt đầu `{other}` không có"),
                    "dùng `soft` (chờ tối đa grace_secs) hoặc `hard` (bắt đầu đúng giây)",
                );
                StartPolicy::Soft
            }
        };
        let max_minutes = match (&s.max_minutes, &content) {
            (Some(m), _) if *m.get_ref() == 0 => {
                cx.push(
                    &m.span(),
                    &format!("{field}.max_minutes"),
                    "max_minutes bằng 0".into(),
                    "ghi thời điểm dừng cứng, tính bằng phút",
                );
                max_session_minutes
            }
            (Some(m), _) if *m.get_ref() > max_session_minutes => {
                cx.push(
                    &m.span(),
                    &format!("{field}.max_minutes"),
                    format!(
                        "phiên phát quá dài: max_minutes = {} lớn hơn max_session_minutes = {max_session_minutes}",
                        m.get_ref()
                    ),
                    "giảm max_minutes hoặc tăng max_session_minutes ở đầu tệp",
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
                    "khung phát chạy {fires_per_day} lần một ngày, quá {MAX_FIRES_PER_DAY} lần"
                ),
                "một khung phát chỉ chạy vài lần một ngày; kiểm tra trường phút và giây",
            );
        }
        if cx.errors.len() == before
            && !items.uses_bad_program
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
                items: items.spans,
            });
        }
    }
    (slots, spans)
}

/// Check `cron` (one expression or a list): the expressions that parse and ever fire.
fn check_cron(
    cx: &mut Ctx,
    text: &str,
    cron_value: &Spanned<OneOrMany>,
    field: &str,
) -> Vec<Crontab> {
    // cron
    let exprs: Vec<String> = match cron_value.get_ref() {
        OneOrMany::One(e) => vec![e.clone()],
        OneOrMany::Many(v) => v.clone(),
    };
    if exprs.is_empty() {
        cx.push(
            &cron_value.span(),
            &format!("{field}.cron"),
            "chưa có biểu thức crontab".into(),
            "ghi ít nhất một biểu thức, ví dụ cron = \"30 5 * * MON-FRI\"",
        );
    }
    let many = matches!(cron_value.get_ref(), OneOrMany::Many(_));
    let mut cron = Vec::new();
    let mut cursor = cron_value.span().start;
    for (k, expr) in exprs.iter().enumerate() {
        let at = find_quoted(text, &cron_value.span(), cursor, expr);
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
                    format!("biểu thức crontab `{expr}` không bao giờ chạy (năm nào cũng không có ngày như vậy)"),
                    "đối chiếu ngày trong tháng với tháng, ví dụ tháng 2 không có ngày 30",
                );
                cx.errors.push(err);
            }
            Ok(c) => cron.push(c),
            Err(e) => {
                let (msg, col, hint) = crontab_error_parts(&e);
                let offset =
                    if text.get(at..at + 1) == Some("\"") || text.get(at..at + 1) == Some("'") {
                        at + 1 + col.unwrap_or(0)
                    } else {
                        at
                    };
                let err = cx.error_at(
                    offset,
                    &cfield,
                    format!("biểu thức crontab `{expr}` sai: {msg}"),
                    &hint,
                );
                cx.errors.push(err);
            }
        }
    }
    cron
}

/// The playlist entries of one slot as they check out: where each built one is in the file, and
/// whether one names a declared but broken program.
pub(super) struct Items<'a> {
    catalog: &'a AudioCatalog,
    programs: &'a BTreeMap<String, Program>,
    bad_programs: &'a BTreeSet<String>,
    pub(super) spans: Vec<(Range<usize>, String)>,
    pub(super) uses_bad_program: bool,
}

impl<'a> Items<'a> {
    fn new(
        catalog: &'a AudioCatalog,
        programs: &'a BTreeMap<String, Program>,
        bad_programs: &'a BTreeSet<String>,
    ) -> Self {
        Self {
            catalog,
            programs,
            bad_programs,
            spans: Vec::new(),
            uses_bad_program: false,
        }
    }

    /// Check the entries of the list at `lfield`: those that built.
    pub(super) fn check_list(
        &mut self,
        cx: &mut Ctx,
        list: &Spanned<Vec<Spanned<String>>>,
        lfield: &str,
    ) -> Vec<ItemRef> {
        let mut out = Vec::new();
        for (k, r) in list.get_ref().iter().enumerate() {
            let ifield = format!("{lfield}[{k}]");
            match check_item(
                cx,
                self.catalog,
                self.programs,
                self.bad_programs,
                r,
                &ifield,
            ) {
                Checked::Item(item) => {
                    self.spans.push((r.span(), ifield));
                    out.push(item);
                }
                Checked::Reported => {}
                Checked::BadProgram => self.uses_bad_program = true,
            }
        }
        out
    }
}

/// Message, byte column within the expression (if known) and hint of a crontab error.
fn crontab_error_parts(e: &crate::crontab::CrontabError) -> (String, Option<usize>, String) {
    (
        e.message.clone(),
        Some(e.offset),
        format!("{}; xem docs/crontab.md", e.hint),
    )
}

fn known_programs_hint(programs: &BTreeMap<String, Program>) -> String {
    if programs.is_empty() {
        "khai báo chương trình trong một bảng [[programs]] trước".into()
    } else {
        format!(
            "khai báo trong [[programs]] hoặc dùng một trong: {}",
            programs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
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
                format!("chương trình `{pid}` chưa được khai báo"),
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
