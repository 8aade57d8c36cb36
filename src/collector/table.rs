//! The plain-text station table `loa status` prints: one line per station with online or
//! offline, last and next airing, backlog, sequence gaps, this month's compliance, the schedule
//! version it airs and whether it is ready for next month (`collector::readiness`), and alerts —
//! the facts of the dashboard, from the same [`StationStatus`] rows `GET /api/v1/stations`
//! answers — and the alerts that need a line of their own. Everything shown is Vietnamese, in the
//! dashboard's words and number format (the API's codes are rendered here, at the edge).
//!
//! **Invariant:** pure: the table and the alerts are functions of the status rows alone (no
//! clock, no I/O), so the terminal shows exactly what the API said.

use crate::collector::readiness::{Facts, readiness_of_vi, version_vi};
use crate::collector::status::{StationStatus, age_vi, journal_alert_vi, pct_vi};

/// Vietnamese word for a stored outcome name (the pages use it too).
pub fn outcome_vi(outcome: &str) -> String {
    match outcome {
        "aired" => "đã phát".into(),
        "partial" => "phát dở dang".into(),
        "failed" => "lỗi".into(),
        "missed" => "bỏ lỡ".into(),
        "preempted" => "bị ưu tiên chen".into(),
        "skipped" => "bỏ qua".into(),
        other => other.to_string(),
    }
}

/// A station whose backlog (journaled, not yet acknowledged records) is at least this is flagged
/// `backlog`: a healthy station ships each record within seconds, so a dozen waiting means the
/// link or the collector has been refusing them for a while.
pub const BACKLOG_ALERT_RECORDS: u64 = 10;

/// The alerts of one station, as short Vietnamese words (docs/operations.md §7 says what each
/// means).
pub fn alerts(s: &StationStatus) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !s.online {
        out.push("mất kết nối");
    }
    if s.backlog_records
        .is_some_and(|b| b >= BACKLOG_ALERT_RECORDS)
    {
        out.push("tồn đọng");
    }
    if s.clock_synced == Some(false) {
        out.push("giờ chưa đồng bộ");
    }
    if !s.gaps.is_empty() {
        out.push("thiếu bản ghi");
    }
    if s.output_ok == Some(false) {
        out.push("đầu ra");
    }
    if s.journal.as_ref().and_then(journal_alert_vi).is_some() {
        out.push("nhật ký");
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
        "TRẠM".to_string(),
        "TRẠNG THÁI".into(),
        "BÁO GẦN NHẤT".into(),
        "LẦN PHÁT GẦN NHẤT".into(),
        "SẮP PHÁT".into(),
        "TỒN ĐỌNG".into(),
        "THIẾU BẢN GHI".into(),
        "THÁNG NÀY".into(),
        "PHIÊN BẢN".into(),
        "THÁNG SAU".into(),
        "CẢNH BÁO".into(),
    ]];
    for s in statuses {
        rows.push([
            s.id.clone(),
            if s.online {
                "trực tuyến"
            } else {
                "MẤT KẾT NỐI"
            }
            .into(),
            s.heartbeat_age_secs
                .map(age_vi)
                .unwrap_or_else(|| "chưa từng báo".into()),
            s.last_airing
                .as_ref()
                .map(|l| {
                    let mut t = format!(
                        "{} {} {}",
                        l.program
                            .as_deref()
                            .or(l.slot.as_deref())
                            .unwrap_or("thủ công"),
                        l.scheduled_at.format("%d/%m %H:%M"),
                        outcome_vi(&l.outcome)
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
                "không".into()
            } else {
                s.gaps
                    .iter()
                    .map(|g| format!("{}-{}", g.from, g.to))
                    .collect::<Vec<_>>()
                    .join(",")
            },
            s.month_compliance_pct
                .map(pct_vi)
                .unwrap_or_else(|| "-".into()),
            version_vi(&Facts::of(s)),
            readiness_of_vi(s),
            match alerts(s).join(", ") {
                a if a.is_empty() => "-".to_string(),
                a => a,
            },
        ]);
    }
    let mut widths = [0usize; 11];
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
            sync: None,
            latest_version: None,
            ready_next_month: None,
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
        check(&|s| s.online = false, &["mất kết nối"]);
        check(
            &|s| s.backlog_records = Some(BACKLOG_ALERT_RECORDS - 1),
            &[],
        );
        check(
            &|s| s.backlog_records = Some(BACKLOG_ALERT_RECORDS),
            &["tồn đọng"],
        );
        check(&|s| s.clock_synced = Some(false), &["giờ chưa đồng bộ"]);
        check(&|s| s.clock_synced = None, &[]);
        check(
            &|s| s.gaps = vec![SeqGap { from: 2, to: 3 }],
            &["thiếu bản ghi"],
        );
        check(&|s| s.output_ok = Some(false), &["đầu ra"]);
        check(
            &|s| {
                s.online = false;
                s.output_ok = Some(false);
            },
            &["mất kết nối", "đầu ra"],
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
            &["nhật ký"],
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
        off.sync = Some(crate::wire::SyncHealth {
            active_version: Some(11),
            pending_version: Some(12),
            missing_files: 3,
            free_bytes: Some(20 << 30),
            last_error_code: None,
        });
        crate::collector::readiness::apply(&mut off, Some(12));
        let mut demo = station("demo");
        demo.sync = Some(crate::wire::SyncHealth {
            active_version: Some(12),
            pending_version: None,
            missing_files: 0,
            free_bytes: Some(20 << 30),
            last_error_code: None,
        });
        crate::collector::readiness::apply(&mut demo, Some(12));
        let mut unmanaged = station("rieng");
        unmanaged.online = false;
        let text = table(&[demo, off, unmanaged]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let cells = |l: &str| -> Vec<String> {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        };
        assert_eq!(
            cells(lines[0]),
            [
                "TRẠM",
                "TRẠNG THÁI",
                "BÁO GẦN NHẤT",
                "LẦN PHÁT GẦN NHẤT",
                "SẮP PHÁT",
                "TỒN ĐỌNG",
                "THIẾU BẢN GHI",
                "THÁNG NÀY",
                "PHIÊN BẢN",
                "THÁNG SAU",
                "CẢNH BÁO"
            ]
        );
        assert_eq!(
            cells(lines[1]),
            [
                "demo",
                "trực tuyến",
                "12 giây trước",
                "cchc 27/11 05:30 đã phát",
                "cchc 27/11 17:00",
                "0",
                "không",
                "97,5 %",
                "v12",
                "Sẵn sàng tháng 12/2026",
                "-"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            [
                "phuong-tran-phu",
                "MẤT KẾT NỐI",
                "chưa từng báo",
                "-",
                "-",
                "-",
                "5-7",
                "-",
                "v11 → v12 đang tải",
                "Chưa sẵn sàng: đang tải v12, thiếu 3 tệp",
                "mất kết nối, thiếu bản ghi"
            ]
        );
        // Columns line up: every column starts at the same character offset on every line.
        let col = |l: &str, word: &str| {
            l.find(word)
                .map(|b| l[..b].chars().count())
                .unwrap_or(usize::MAX)
        };
        assert_eq!(col(lines[0], "TRẠNG THÁI"), col(lines[1], "trực tuyến"));
        assert_eq!(col(lines[0], "TRẠNG THÁI"), col(lines[2], "MẤT KẾT NỐI"));
        assert_eq!(
            col(lines[0], "CẢNH BÁO"),
            col(lines[2], "mất kết nối, thiếu")
        );
        // A station the centre does not manage: no version, no readiness.
        let third = cells(lines[3]);
        assert_eq!(third[third.len() - 3..], ["—", "—", "mất kết nối"]);
        assert_eq!(col(lines[0], "PHIÊN BẢN"), col(lines[2], "v11 → v12"));
        assert_eq!(col(lines[0], "THÁNG SAU"), col(lines[1], "Sẵn sàng"));
        assert_eq!(crate::collector::status::pct_vi(100.0), "100,0 %");
        assert_eq!(crate::collector::status::pct_vi(100.0 / 3.0), "33,3 %");
    }
}
