//! The dashboard: plain server-rendered HTML (no scripts, no CDN, works offline): every station's
//! status on `/`, and a month view per station on `/stations/{id}?month=YYYY-MM`.
//!
//! **Invariant:** pure rendering of already computed status/reconciliation; every text that came
//! from a station or the registry is HTML-escaped.

use chrono::{DateTime, Utc};
use std::fmt::Write as _;

use super::status::{StationStatus, age_vi, journal_alert_vi, pct_vi, report_offset};
use crate::reconcile::Status;
use crate::report::{Period, StationSection};

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.35em .5em;text-align:left;font-size:14px}
th{background:#f0f0f0}.online{color:#fff;background:#2e7d32;padding:.1em .5em;border-radius:3px}
.offline{color:#fff;background:#c62828;padding:.1em .5em;border-radius:3px}.gap{color:#c62828}
.alert{color:#c62828;font-weight:600}
.on_time{background:#e8f5e9}.late,.short{background:#fff8e1}.failed,.missed,.no_record{background:#ffebee}.unplanned{background:#e3f2fd}.not_yet_due{color:#666}
.note{background:#fff8e1;padding:.3em .5em}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"30\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

fn brief(b: &Option<crate::wire::AiringBrief>) -> String {
    match b {
        Some(b) => format!(
            "{} {}",
            esc(b.program.as_deref().or(b.slot.as_deref()).unwrap_or("—")),
            b.at.format("%H:%M %d/%m")
        ),
        None => "—".into(),
    }
}

/// `/`: every station.
pub fn index(statuses: &[StationStatus], now: DateTime<Utc>) -> String {
    let mut b = String::new();
    let online = statuses.iter().filter(|s| s.online).count();
    let _ = write!(
        b,
        "<h1>Hệ thống truyền thanh — tình trạng các trạm</h1>\
         <p id=\"summary\">{online}/{} trạm trực tuyến · cập nhật {}</p>\
         <table id=\"stations\"><thead><tr><th>Trạm</th><th>Mã ĐVHC</th><th>Trạng thái</th>\
         <th>Đang phát</th><th>Sắp phát</th><th>Tồn đọng</th><th>Lần phát gần nhất</th>\
         <th>Tỷ lệ thực hiện tháng này</th><th>Thiếu bản ghi</th><th>Nhật ký</th></tr></thead><tbody>",
        statuses.len(),
        now.with_timezone(&report_offset())
            .format("%H:%M:%S %d/%m/%Y")
    );
    for s in statuses {
        let state = if s.online {
            format!(
                "<span class=\"online\">trực tuyến</span> {}",
                age_vi(s.heartbeat_age_secs.unwrap_or(0))
            )
        } else {
            match s.heartbeat_age_secs {
                Some(a) => format!("<span class=\"offline\">mất kết nối</span> {}", age_vi(a)),
                None => "<span class=\"offline\">mất kết nối</span> chưa từng báo".into(),
            }
        };
        let last = match &s.last_airing {
            Some(l) => format!(
                "{} {} — {}{}",
                esc(l
                    .program
                    .as_deref()
                    .or(l.slot.as_deref())
                    .unwrap_or("thủ công")),
                l.scheduled_at.format("%H:%M %d/%m"),
                outcome_vi(&l.outcome),
                l.reason_code
                    .as_ref()
                    .map(|c| format!(" ({})", esc(c.vi())))
                    .unwrap_or_default()
            ),
            None => "—".into(),
        };
        let pct = match s.month_compliance_pct {
            Some(p) => format!("{} ({} KH)", pct_vi(p), s.month_planned),
            None => "—".into(),
        };
        let gaps = if s.gaps.is_empty() {
            "không".to_string()
        } else {
            let list: Vec<String> = s
                .gaps
                .iter()
                .map(|g| format!("{}–{}", g.from, g.to))
                .collect();
            format!("<span class=\"gap\">{}</span>", esc(&list.join(", ")))
        };
        // The journal's own alert (disk full, records held in memory), never folded into another.
        let journal = match &s.journal {
            None => "—".to_string(),
            Some(j) => match journal_alert_vi(j) {
                Some(a) => format!("<span class=\"alert journal-alert\">{}</span>", esc(&a)),
                None => "ghi được".into(),
            },
        };
        let _ = write!(
            b,
            "<tr data-station=\"{id}\" data-online=\"{on}\"><td><a href=\"/stations/{id}\">{name}</a></td>\
             <td>{area}</td><td>{state}</td><td>{now_a}</td><td>{next_a}</td><td>{backlog}</td>\
             <td>{last}</td><td class=\"compliance\">{pct}</td><td>{gaps}</td>\
             <td class=\"journal\">{journal}</td></tr>",
            id = esc(&s.id),
            on = s.online,
            name = esc(&s.name),
            area = esc(&s.area_code),
            now_a = brief(&s.now_airing),
            next_a = brief(&s.next_airing),
            backlog = s
                .backlog_records
                .map(|n| n.to_string())
                .unwrap_or_else(|| "—".into()),
        );
    }
    b.push_str("</tbody></table><p><a href=\"/api/v1/openapi.json\">API</a> · <a href=\"/metrics\">metrics</a></p>");
    page("loa — trạm", &b)
}

/// Vietnamese word for a stored outcome name.
pub fn outcome_vi(outcome: &str) -> String {
    match outcome {
        "aired" => "đã phát".into(),
        "partial" => "phát dở dang".into(),
        "failed" => "lỗi".into(),
        "missed" => "bỏ lỡ".into(),
        "preempted" => "bị ưu tiên chen".into(),
        "skipped" => "bỏ qua".into(),
        other => esc(other),
    }
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::OnTime => "on_time",
        Status::Late => "late",
        Status::Short => "short",
        Status::Failed => "failed",
        Status::Missed => "missed",
        Status::NoRecord => "no_record",
        Status::NotYetDue => "not_yet_due",
        Status::Unplanned => "unplanned",
    }
}

/// `/stations/{id}?month=`: the month's reconciliation of one station, made at `now` (a month not
/// over says so under its title, and counts what is still to come apart).
pub fn month_view(s: &StationSection, period: &Period, now: DateTime<Utc>) -> String {
    let t = &s.reconciliation.breakdown.totals;
    let mut b = String::new();
    let _ = write!(
        b,
        "<p><a href=\"/\">← tất cả các trạm</a></p><h1>{} — tháng {}</h1>",
        esc(&s.name),
        esc(&period.label),
    );
    if let Some(note) = period.open_note(now) {
        let _ = write!(b, "<p id=\"period-note\" class=\"note\">{}</p>", esc(&note));
    }
    let _ = write!(
        b,
        "<p id=\"totals\">Kế hoạch {} · đã phát {} · đúng giờ {} · trễ {} · thiếu {} · lỗi {} · bỏ lỡ {} · \
         không có bản ghi {} · chưa đến giờ {} · ngoài kế hoạch {} · tỷ lệ {}</p>",
        t.planned,
        t.aired,
        t.on_time,
        t.late,
        t.short,
        t.failed,
        t.missed,
        t.no_record,
        t.not_yet_due,
        t.unplanned,
        t.compliance_pct().map(pct_vi).unwrap_or_else(|| "—".into()),
    );
    if let Some(n) = &s.plan_note {
        let _ = write!(b, "<p class=\"gap\">Kế hoạch chưa xác định: {}</p>", esc(n));
    }
    b.push_str("<table id=\"airings\"><thead><tr><th>Giờ kế hoạch</th><th>Phát thực tế</th><th>Chương trình</th><th>Thể loại</th><th>Kết quả</th><th>Đã phát (giây)</th><th>Lý do</th></tr></thead><tbody>");
    for r in &s.reconciliation.rows {
        let _ = write!(
            b,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td></tr>",
            status_class(r.status),
            r.scheduled_at.format("%d/%m %H:%M"),
            r.actual_start
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_else(|| "—".into()),
            esc(r.program.as_deref().or(r.slot.as_deref()).unwrap_or("—")),
            esc(&r.category),
            r.status.label_vi(),
            r.aired_secs,
            esc(r.reason_code.as_ref().map(|c| c.vi()).unwrap_or("")),
        );
    }
    b.push_str("</tbody></table>");
    page(&format!("{} — {}", s.name, period.label), &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
