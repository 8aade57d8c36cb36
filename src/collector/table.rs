//! The plain-text station table `loa status` prints: one line per station with online or
//! offline, last and next airing, backlog, sequence gaps, this month's compliance and alerts —
//! the facts of the dashboard, from the same [`StationStatus`] rows `GET /api/v1/stations`
//! answers — and the alerts that need a line of their own, in Vietnamese.
//!
//! **Invariant:** pure: the table and the alerts are functions of the status rows alone (no
//! clock, no I/O), so the terminal shows exactly what the API said.

use crate::collector::status::{StationStatus, journal_alert_vi};

/// A station whose backlog (journaled, not yet acknowledged records) is at least this is flagged
/// `backlog`: a healthy station ships each record within seconds, so a dozen waiting means the
/// link or the collector has been refusing them for a while.
pub const BACKLOG_ALERT_RECORDS: u64 = 10;

/// The alerts of one station, as short words (docs/operations.md §7 says what each means).
pub fn alerts(s: &StationStatus) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !s.online {
        out.push("offline");
    }
    if s.backlog_records
        .is_some_and(|b| b >= BACKLOG_ALERT_RECORDS)
    {
        out.push("backlog");
    }
    if s.clock_synced == Some(false) {
        out.push("clock-unsynced");
    }
    if !s.gaps.is_empty() {
        out.push("gap");
    }
    if s.output_ok == Some(false) {
        out.push("output");
    }
    if s.journal.as_ref().and_then(journal_alert_vi).is_some() {
        out.push("journal");
    }
    out
}

/// The alerts that need more than a word, one line each, in Vietnamese (`station: text`);
/// empty when there is none. Printed under the table.
pub fn alert_lines(statuses: &[StationStatus]) -> String {
    let mut out = String::new();
    for s in statuses {
        if let Some(text) = s.journal.as_ref().and_then(journal_alert_vi) {
            out.push_str(&format!("{}: {text}\n", s.id));
        }
    }
    out
}

fn brief(b: &Option<crate::wire::AiringBrief>) -> String {
    match b {
        Some(b) => format!(
            "{} {}",
            b.program.as_deref().or(b.slot.as_deref()).unwrap_or("-"),
            b.at.format("%d/%m %H:%M")
        ),
        None => "-".into(),
    }
}

/// Render the status table (one line per station).
pub fn table(statuses: &[StationStatus]) -> String {
    let mut rows = vec![[
        "STATION".to_string(),
        "STATE".into(),
        "HEARTBEAT".into(),
        "LAST AIRING".into(),
        "NEXT AIRING".into(),
        "BACKLOG".into(),
        "GAPS".into(),
        "MONTH".into(),
        "ALERTS".into(),
    ]];
    for s in statuses {
        rows.push([
            s.id.clone(),
            if s.online { "online" } else { "OFFLINE" }.into(),
            s.heartbeat_age_secs
                .map(|a| format!("{a}s ago"))
                .unwrap_or_else(|| "never".into()),
            s.last_airing
                .as_ref()
                .map(|l| {
                    let mut t = format!(
                        "{} {} {}",
                        l.program
                            .as_deref()
                            .or(l.slot.as_deref())
                            .unwrap_or("manual"),
                        l.scheduled_at.format("%d/%m %H:%M"),
                        l.outcome
                    );
                    if let Some(c) = &l.reason_code {
                        t.push_str(" (");
                        t.push_str(c.vi());
                        t.push(')');
                    }
                    t
                })
                .unwrap_or_else(|| "-".into()),
            brief(&s.next_airing),
            s.backlog_records
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into()),
            if s.gaps.is_empty() {
                "0".into()
            } else {
                s.gaps
                    .iter()
                    .map(|g| format!("{}-{}", g.from, g.to))
                    .collect::<Vec<_>>()
                    .join(",")
            },
            s.month_compliance_pct
                .map(|p| format!("{p:.1}%"))
                .unwrap_or_else(|| "-".into()),
            match alerts(s).join(",") {
                a if a.is_empty() => "-".to_string(),
                a => a,
            },
        ]);
    }
    let mut widths = [0usize; 9];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::store::SeqGap;
    use chrono::{DateTime, FixedOffset, Utc};

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn station(id: &str) -> StationStatus {
        StationStatus {
            id: id.into(),
            name: id.into(),
            area_code: "21103".into(),
            online: true,
            last_heartbeat_at: Some(Utc::now()),
            heartbeat_age_secs: Some(12),
            now_airing: None,
            next_airing: Some(crate::wire::AiringBrief {
                slot: Some("chieu".into()),
                program: Some("cchc".into()),
                at: at("2026-11-27T17:00:00+07:00"),
            }),
            backlog_records: Some(0),
            clock_synced: Some(true),
            clock_skew_ms: Some(3),
            output_ok: Some(true),
            journal: Some(crate::wire::JournalHealth::default()),
            station_last_seq: Some(4),
            stored_through: 4,
            gaps: vec![],
            last_airing: Some(crate::collector::status::LastAiring {
                seq: 4,
                scheduled_at: at("2026-11-27T05:30:00+07:00"),
                slot: Some("sang".into()),
                program: Some("cchc".into()),
                outcome: "aired".into(),
                aired_secs: 600.0,
                reason: None,
                reason_code: None,
                reason_text: None,
            }),
            month: "2026-11".into(),
            month_planned: 40,
            month_compliance_pct: Some(97.5),
            plan_note: None,
        }
    }

    #[test]
    fn alerts_name_what_is_wrong() {
        let check = |edit: &dyn Fn(&mut StationStatus), expected: &[&str]| {
            let mut s = station("w");
            edit(&mut s);
            assert_eq!(alerts(&s), expected);
        };
        check(&|_| {}, &[]);
        check(&|s| s.online = false, &["offline"]);
        check(
            &|s| s.backlog_records = Some(BACKLOG_ALERT_RECORDS - 1),
            &[],
        );
        check(
            &|s| s.backlog_records = Some(BACKLOG_ALERT_RECORDS),
            &["backlog"],
        );
        check(&|s| s.clock_synced = Some(false), &["clock-unsynced"]);
        check(&|s| s.clock_synced = None, &[]);
        check(&|s| s.gaps = vec![SeqGap { from: 2, to: 3 }], &["gap"]);
        check(&|s| s.output_ok = Some(false), &["output"]);
        check(
            &|s| {
                s.online = false;
                s.output_ok = Some(false);
            },
            &["offline", "output"],
        );
        check(&|s| s.journal = None, &[]);
        check(
            &|s| {
                s.journal = Some(crate::wire::JournalHealth {
                    writable: false,
                    held_records: 3,
                    free_bytes: Some(524_288),
                    error: Some("No space left on device".into()),
                })
            },
            &["journal"],
        );
    }

    #[test]
    fn journal_alert_is_its_own_line_in_vietnamese() {
        let mut full = station("phuong-a");
        full.journal = Some(crate::wire::JournalHealth {
            writable: false,
            held_records: 3,
            free_bytes: Some(524_288),
            error: Some("No space left on device".into()),
        });
        assert_eq!(
            alert_lines(&[station("demo"), full]),
            "phuong-a: Nhật ký không ghi được — 3 bản ghi đang giữ trong bộ nhớ, còn trống \
             0,5 MB\n"
        );
        assert_eq!(alert_lines(&[station("demo")]), "");
        assert_eq!(crate::collector::status::mb_vi(0), "0,0 MB");
        assert_eq!(crate::collector::status::mb_vi(1_293_942_784), "1.234,0 MB");
    }

    #[test]
    fn table_has_a_header_and_one_aligned_line_per_station() {
        let mut off = station("phuong-tran-phu");
        off.online = false;
        off.heartbeat_age_secs = None;
        off.last_airing = None;
        off.next_airing = None;
        off.backlog_records = None;
        off.month_compliance_pct = None;
        off.gaps = vec![SeqGap { from: 5, to: 7 }];
        let text = table(&[station("demo"), off]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "STATION",
                "STATE",
                "HEARTBEAT",
                "LAST",
                "AIRING",
                "NEXT",
                "AIRING",
                "BACKLOG",
                "GAPS",
                "MONTH",
                "ALERTS"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "demo", "online", "12s", "ago", "cchc", "27/11", "05:30", "aired", "cchc", "27/11",
                "17:00", "0", "0", "97.5%", "-"
            ]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            [
                "phuong-tran-phu",
                "OFFLINE",
                "never",
                "-",
                "-",
                "-",
                "5-7",
                "-",
                "offline,gap"
            ]
        );
        // Columns line up: every column starts at the same character offset on every line.
        let col = |l: &str, word: &str| l.find(word).unwrap_or(usize::MAX);
        assert_eq!(col(lines[0], "STATE"), col(lines[1], "online"));
        assert_eq!(col(lines[0], "STATE"), col(lines[2], "OFFLINE"));
        assert_eq!(col(lines[0], "ALERTS"), col(lines[2], "offline,gap"));
    }
}
