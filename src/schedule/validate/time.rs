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
