//! Station status as the dashboard, `loa status` and `GET /api/v1/stations` show it: heartbeat
//! age (online/offline), now/next airing, backlog, clock sync, stored sequence and gaps, last
//! airing and this month's compliance.
//!
//! **Invariant:** status is derived on demand from the store, the registry and the clock; nothing
//! here writes.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::registry::StationEntry;
use super::store::{SeqGap, Store, outcome_name};
use crate::reconcile::{Status, Thresholds};
use crate::report::{Period, PlanSource, ReportError, station_section};
use crate::wire::{AiringBrief, JournalHealth};

/// Default heartbeat age after which a station is shown offline: three missed 60 s heartbeats.
pub const DEFAULT_OFFLINE_AFTER_SECS: i64 = 180;
/// Offset used to tell "this month" on the collector (Vietnam: UTC+7, no DST).
pub const DEFAULT_REPORT_UTC_OFFSET_SECS: i32 = 7 * 3600;

/// The last airing a station reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastAiring {
    pub seq: u64,
    pub scheduled_at: DateTime<FixedOffset>,
    pub slot: Option<String>,
    pub program: Option<String>,
    pub outcome: String,
    pub aired_secs: f64,
    pub reason: Option<String>,
}

/// One station's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationStatus {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub online: bool,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub heartbeat_age_secs: Option<i64>,
    pub now_airing: Option<AiringBrief>,
    pub next_airing: Option<AiringBrief>,
    pub backlog_records: Option<u64>,
    pub clock_synced: Option<bool>,
    /// Station clock minus collector clock when the heartbeat arrived, in ms (transit included).
    pub clock_skew_ms: Option<i64>,
    pub output_ok: Option<bool>,
    /// The station's journal as its last heartbeat reported it (`None`: no heartbeat yet, or a
    /// station too old to report it).
    pub journal: Option<JournalHealth>,
    /// Highest seq the station says it has journaled.
    pub station_last_seq: Option<u64>,
    /// Highest seq stored here.
    pub stored_through: u64,
    pub gaps: Vec<SeqGap>,
    pub last_airing: Option<LastAiring>,
    pub month: String,
    pub month_planned: u64,
    pub month_compliance_pct: Option<f64>,
    pub plan_note: Option<String>,
}

/// The collector's reporting offset.
pub fn report_offset() -> FixedOffset {
    // A constant within ±24 h: always valid.
    FixedOffset::east_opt(DEFAULT_REPORT_UTC_OFFSET_SECS).expect("constant offset is valid")
}

/// The month label (YYYY-MM) of `now` on the collector's reporting offset.
pub fn current_month(now: DateTime<Utc>) -> String {
    now.with_timezone(&report_offset())
        .format("%Y-%m")
        .to_string()
}

/// Compute a station's status at `now`.
pub fn station_status(
    store: &Store,
    entry: &StationEntry,
    plans: &dyn PlanSource,
    th: &Thresholds,
    now: DateTime<Utc>,
    offline_after_secs: i64,
) -> Result<StationStatus, ReportError> {
    let hb = store.heartbeat(&entry.id)?;
    let last = match store.last_record(&entry.id)? {
        Some(r) => {
            let p = r.parse()?;
            Some(LastAiring {
                seq: p.seq,
                scheduled_at: p.scheduled_at,
                slot: p.slot,
                program: p.program,
                outcome: outcome_name(p.outcome).to_string(),
                aired_secs: p.aired_secs,
                reason: p.reason,
            })
        }
        None => None,
    };
    let month = current_month(now);
    let today = now.with_timezone(&report_offset()).date_naive();
    let period = Period::parse(&month, today)?;
    let section = station_section(store, entry, plans, &period, th, now)?;
    let totals = &section.reconciliation.breakdown.totals;
    let age = hb.as_ref().map(|h| (now - h.received_at).num_seconds());
    Ok(StationStatus {
        id: entry.id.clone(),
        name: entry.name.clone(),
        area_code: entry.area_code.clone(),
        online: age.is_some_and(|a| a <= offline_after_secs),
        last_heartbeat_at: hb.as_ref().map(|h| h.received_at),
        heartbeat_age_secs: age,
        now_airing: hb.as_ref().and_then(|h| h.heartbeat.now_airing.clone()),
        next_airing: hb.as_ref().and_then(|h| h.heartbeat.next_airing.clone()),
        backlog_records: hb.as_ref().map(|h| h.heartbeat.backlog_records),
        clock_synced: hb.as_ref().and_then(|h| h.heartbeat.clock_synced),
        clock_skew_ms: hb
            .as_ref()
            .map(|h| (h.heartbeat.sent_at - h.received_at).num_milliseconds()),
        output_ok: hb.as_ref().map(|h| h.heartbeat.output_ok),
        journal: hb.as_ref().and_then(|h| h.heartbeat.journal.clone()),
        station_last_seq: hb.as_ref().map(|h| h.heartbeat.last_seq),
        stored_through: store.stored_through(&entry.id)?,
        gaps: store.gaps(&entry.id)?,
        last_airing: last,
        month,
        month_planned: totals.planned,
        month_compliance_pct: totals.compliance_pct(),
        plan_note: section.plan_note,
    })
}

/// The journal alert in Vietnamese, when the station's journal is not writable or holds
/// records in memory: "Nhật ký không ghi được — 3 bản ghi đang giữ trong bộ nhớ, còn trống
/// 0,5 MB". `None` for a healthy journal or a station that does not report it.
pub fn journal_alert_vi(j: &JournalHealth) -> Option<String> {
    if j.writable && j.held_records == 0 {
        return None;
    }
    let head = if j.writable {
        "Nhật ký đang ghi lại các bản ghi đã giữ"
    } else {
        "Nhật ký không ghi được"
    };
    let free = match j.free_bytes {
        Some(b) => format!(", còn trống {}", mb_vi(b)),
        None => String::new(),
    };
    Some(format!(
        "{head} — {} bản ghi đang giữ trong bộ nhớ{free}",
        j.held_records
    ))
}

/// Bytes as megabytes with a decimal comma and one decimal: `0,5 MB`, `1.234,0 MB`.
pub fn mb_vi(bytes: u64) -> String {
    let tenths = (bytes as u128 * 10 + 524_288) / 1_048_576;
    let (int, frac) = (tenths / 10, tenths % 10);
    let digits = int.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("{grouped},{frac} MB")
}

/// Short Vietnamese/English label of a status for tables.
pub fn status_word(s: Status) -> &'static str {
    s.label_vi()
}
