//! `[[programs]]`: the named programmes slots play and reports file airings under.
//!
//! **Invariant:** each program has a unique valid id, a valid category and exactly one of
//! `file` (a present, decodable audio file) or `episodes` (a relative pattern with `{yyyy}` and
//! `{mm}` and no other placeholder than `{dd}`). A declared program that is wrong is reported
//! once, here, and listed as broken: references to it are not errors of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;

use super::super::file::{Ctx, RawStation};
use super::super::{AudioCatalog, Program, ProgramAudio};
use super::{check_file, is_safe_relative, is_valid_id};

/// The programs that built, by id, and the ids of those declared but broken.
pub(super) fn check(
    cx: &mut Ctx,
    text: &str,
    raw: &RawStation,
    catalog: &AudioCatalog,
) -> (BTreeMap<String, Program>, BTreeSet<String>) {
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
                format!("mã chương trình `{pid}` không hợp lệ"),
                "chỉ dùng chữ thường không dấu, chữ số, `-` và `_`, ví dụ `cchc`",
            );
        } else if programs.contains_key(&pid) {
            cx.push(
                &p.id.span(),
                &format!("{field}.id"),
                format!("mã chương trình `{pid}` bị trùng"),
                "đặt cho mỗi chương trình một mã riêng",
            );
        }
        let category = p.category.get_ref().trim().to_string();
        if !is_valid_id(&category) {
            cx.push(
                &p.category.span(),
                &format!("{field}.category"),
                format!("thể loại `{category}` không hợp lệ"),
                "dùng một từ ngắn viết thường mà báo cáo dùng, ví dụ `cchc`, `notice`, `ident`",
            );
        }
        let audio = match (&p.file, &p.episodes) {
            (Some(f), None) => {
                check_file(
                    cx,
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
                        format!("mẫu tên tập `{pat}` có chỗ thay thế `{token}` không được hỗ trợ"),
                        "chỉ dùng {yyyy}, {mm} và {dd} (năm, tháng, ngày phát theo giờ trạm), ví dụ \"cchc/{yyyy}-{mm}.ogg\"",
                    );
                    cx.errors.push(err);
                } else if !pat.contains("{yyyy}") || !pat.contains("{mm}") || !is_safe_relative(pat)
                {
                    cx.push(
                        &e.span(),
                        &format!("{field}.episodes"),
                        format!("mẫu tên tập `{pat}` phải chứa {{yyyy}} và {{mm}} và là đường dẫn tương đối"),
                        "viết theo mẫu \"cchc/{yyyy}-{mm}.ogg\" (tính từ thư mục âm thanh)",
                    );
                }
                (cx.errors.len() == before).then(|| ProgramAudio::Episodes(pat.clone()))
            }
            (Some(f), Some(_)) => {
                cx.push(
                    &f.span(),
                    &field,
                    format!("chương trình `{pid}` có cả `file` lẫn `episodes`"),
                    "giữ một: `file` cho một tệp cố định, `episodes` cho loạt tập theo tháng",
                );
                None
            }
            (None, None) => {
                cx.push(
                    &p.id.span(),
                    &field,
                    format!("chương trình `{pid}` thiếu cả `file` và `episodes`"),
                    "thêm `file = \"x.ogg\"` hoặc `episodes = \"cchc/{yyyy}-{mm}.ogg\"`",
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
    (programs, bad_programs)
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
