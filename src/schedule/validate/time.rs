//! The checks over time, on the slots that built: every month's episode exists and decodes,
//! a playlist fits the slot's hard stop, and (through [`super::super::rules`]) no slot sounds in
//! quiet hours and no two slots of one priority overlap.
//!
//! **Invariant:** episodes and lengths are checked over each slot's checked window
//! ([`check_window`]), quiet hours and overlaps over the whole windows; each problem is reported
//! at the slot (or playlist entry) it concerns.

use chrono::NaiveDate;

use super::super::file::{Ctx, months};
use super::super::plan::{CHECK_HORIZON_MONTHS, check_window, resolve_episode};
use super::super::{
    AudioCatalog, AudioFacts, Priority, Program, ProgramAudio, SlotContent, Station,
};
use super::SlotSpans;

/// Episodes and session length over each slot's checked window; quiet hours and overlaps
/// ([`super::super::rules`]) over each slot's whole window.
pub(super) fn check(
    cx: &mut Ctx,
    station: &Station,
    spans: &[SlotSpans],
    catalog: &AudioCatalog,
    today: NaiveDate,
) {
    use super::super::plan::{resolve_items, total_secs};
    use super::super::rules::Finding;
    for (slot, sp) in station.slots.iter().zip(spans) {
        let Some((a, b)) = check_window(slot.from, slot.until, today) else {
            continue;
        };
        // Episodes for every month of the window.
        let item_list: &[super::super::ItemRef] = match &slot.content {
            SlotContent::Playlist(v) => v,
            SlotContent::Relay(r) => &r.fallback,
        };
        for (k, item) in item_list.iter().enumerate() {
            let super::super::ItemRef::Program(pid) = item else {
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
                        n => format!(" và {} tháng còn thiếu khác", n - 1),
                    };
                    let missing: Vec<String> = missing
                        .iter()
                        .map(|m| m.format("%Y-%m").to_string())
                        .collect();
                    cx.push(
                        span,
                        field,
                        format!(
                            "thiếu tập cho {} tháng trong thời hạn {a}..{b} của khung phát: {} (mẫu `{pattern}` trong `{}`)",
                            missing.len(),
                            missing.join(", "),
                            catalog.root.display()
                        ),
                        &format!(
                            "thêm `{}`{more}, hoặc thu hẹp khung phát bằng from/until; thời hạn không có ngày kết thúc được kiểm tra cho tháng này và {CHECK_HORIZON_MONTHS} tháng tiếp theo",
                            catalog.root.join(first).display()
                        ),
                    );
                }
                if !not_files.is_empty() {
                    cx.push(
                        span,
                        field,
                        format!("tập không phải tệp âm thanh: {}", not_files.join(", ")),
                        "mỗi tháng một tập là một tệp âm thanh; đặt tệp đúng đường dẫn đó",
                    );
                }
                if !broken.is_empty() {
                    cx.push(
                        span,
                        field,
                        format!(
                            "âm thanh của tập không giải mã được cho {}",
                            broken.join(", ")
                        ),
                        "xuất lại các tệp đó dưới dạng Ogg Vorbis, MP3, FLAC hoặc WAV",
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
                        "phiên phát quá dài: danh sách phát kéo dài {:.0} giây nhưng khung phát chỉ được phát tối đa {} phút (max_minutes, mặc định max_session_minutes = {})",
                        worst, slot.max_minutes, station.max_session_minutes
                    ),
                    "rút ngắn danh sách phát, hoặc tăng max_minutes/max_session_minutes",
                );
            }
        }
    }

    // Quiet hours and overlaps, over the whole windows.
    for finding in super::super::rules::check(station, catalog, today) {
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
                    "bắt đầu trong giờ yên lặng".to_string()
                } else {
                    format!("lấn vào giờ yên lặng lúc {}", hit.format("%H:%M:%S"))
                };
                cx.push(
                    &sp.id,
                    &sp.field,
                    format!(
                        "khung phát phát ra trong giờ yên lặng {}-{}: lượt phát lúc {} ({:.0} giây) {what}",
                        q.start.format("%H:%M"),
                        q.end.format("%H:%M"),
                        at.format("%Y-%m-%d %H:%M %:z"),
                        planned_secs
                    ),
                    "dời giờ crontab của khung phát hoặc rút ngắn để kết thúc trước giờ yên lặng",
                );
            }
            Finding::Overlap { first, second, at } => {
                let (a, b) = (&station.slots[first], &station.slots[second]);
                let sp = &spans[second];
                let when = at.format("%Y-%m-%d %H:%M %:z");
                let msg = if first == second {
                    format!(
                        "khung phát `{}` chồng lên chính nó lúc {when}: một lượt phát bắt đầu trước khi lượt trước kết thúc",
                        a.id
                    )
                } else {
                    format!(
                        "khung phát `{}` và `{}` cùng mức ưu tiên ({}) và chồng nhau lúc {when}",
                        a.id,
                        b.id,
                        priority_name(b.priority)
                    )
                };
                cx.push(
                    &sp.id,
                    &sp.field,
                    msg,
                    "dời một trong hai, hoặc đặt mức ưu tiên cao hơn cho khung phát cần được ưu tiên",
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
