//! A bulletin's targeted stations and their states (contract item 3; docs/bulletins.md,
//! "Pages"), as the status page and the report read them.
//!
//! **Temporary:** this is the bintake helper's `collector::bulletins::station_states` (same
//! types, same derivation), copied here until theirs is on main; the pages import it from this
//! module only, so switching is one `use` line and deleting this file.
//!
//! **Invariant:** reads only (the `bulletins` row, `bulletin_receipts`, the records naming the
//! bulletin); the derivation order is a record (latest repeat first), a receipt, the bulletin's
//! cancel, the window's end, else sending.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::bulletins::SendError;
use super::registry::Registry;
use crate::bulletin::{Bulletin, Targets};
use crate::centre::signed::Envelope;

fn at_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// What a targeted station's state is for a bulletin (its page, its report), derived in this
/// order: a journal record naming the bulletin (the latest repeat's outcome); else its receipt
/// (delivered / refused); else, the bulletin cancelled, `Cancelled`; else, the window closed,
/// `ExpiredUndelivered`; else `Sending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Aired,
    Partial,
    Preempted,
    Failed,
    /// A record `skipped` (or `missed`) with its `bulletin.*` code (expired, cancelled, too long,
    /// audio).
    Skipped,
    Delivered,
    Refused,
    /// Cancelled by the centre before the station received it.
    Cancelled,
    ExpiredUndelivered,
    Sending,
}

impl StateKind {
    /// Every state, in the order pages list them.
    pub const ALL: &'static [StateKind] = &[
        StateKind::Aired,
        StateKind::Partial,
        StateKind::Preempted,
        StateKind::Failed,
        StateKind::Skipped,
        StateKind::Delivered,
        StateKind::Refused,
        StateKind::Cancelled,
        StateKind::ExpiredUndelivered,
        StateKind::Sending,
    ];

    /// The code (filters, CSV).
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Aired => "aired",
            StateKind::Partial => "partial",
            StateKind::Preempted => "preempted",
            StateKind::Failed => "failed",
            StateKind::Skipped => "skipped",
            StateKind::Delivered => "delivered",
            StateKind::Refused => "refused",
            StateKind::Cancelled => "cancelled",
            StateKind::ExpiredUndelivered => "expired_undelivered",
            StateKind::Sending => "sending",
        }
    }

    /// The state of a code ([`StateKind::as_str`]).
    pub fn parse(s: &str) -> Option<StateKind> {
        StateKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// The Vietnamese label (pages, exports).
    pub fn vi(self) -> &'static str {
        match self {
            StateKind::Aired => "Đã phát",
            StateKind::Partial => "Phát một phần",
            StateKind::Preempted => "Bị ngắt",
            StateKind::Failed => "Lỗi phát",
            StateKind::Skipped => "Không phát",
            StateKind::Delivered => "Đã nhận",
            StateKind::Refused => "Từ chối",
            StateKind::Cancelled => "Đã hủy trước khi gửi đến",
            StateKind::ExpiredUndelivered => "Hết hiệu lực, chưa gửi được",
            StateKind::Sending => "Đang gửi",
        }
    }

    fn of_outcome(outcome: &str) -> StateKind {
        match outcome {
            "aired" => StateKind::Aired,
            "partial" => StateKind::Partial,
            "preempted" => StateKind::Preempted,
            "failed" => StateKind::Failed,
            _ => StateKind::Skipped,
        }
    }
}

/// One airing of a bulletin a station journaled (its record's columns).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulletinAiring {
    /// 1-based repeat.
    pub repeat: u32,
    /// The record's outcome (`aired`, `partial`, `preempted`, `failed`, `skipped`, …).
    pub outcome: String,
    /// Its reason code (a `bulletin.*` code when skipped).
    pub reason_code: Option<String>,
    /// When it went on air (`None`: it did not), else when it was due, station-local.
    pub at: Option<DateTime<chrono::FixedOffset>>,
    pub aired_secs: f64,
    /// Integrated loudness the evidence meter measured (LUFS).
    pub loudness_lufs: Option<f64>,
}

/// One targeted station's state for a bulletin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationState {
    pub station: String,
    /// From the registry (empty for a listed station no longer registered).
    pub name: String,
    pub area_code: String,
    pub state: StateKind,
    /// The `bulletin.*` code: a refusal's, a skipped airing's, `bulletin.expired_undelivered`,
    /// `bulletin.cancelled` (before delivery).
    pub code: Option<String>,
    /// When: the latest airing's start (or due time), the receipt's time by the station's clock,
    /// the window's end when expired.
    pub at: Option<DateTime<Utc>>,
    /// When the collector stored the receipt.
    pub receipt_received_at: Option<DateTime<Utc>>,
    /// Each airing journaled, latest repeat first.
    pub airings: Vec<BulletinAiring>,
}

/// The state of every targeted station of a bulletin, and how many are in each state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationStates {
    pub bulletin: String,
    pub not_after: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Sorted by station id.
    pub stations: Vec<StationState>,
    /// (state, how many), every state of [`StateKind::ALL`] in that order (zeros included).
    pub counts: Vec<(StateKind, usize)>,
}

impl StationStates {
    /// How many stations are in `k`.
    pub fn count(&self, k: StateKind) -> usize {
        self.counts
            .iter()
            .find(|(s, _)| *s == k)
            .map_or(0, |(_, n)| *n)
    }
}

/// The state of each station bulletin `bulletin_id` targets (by `registry`: every station,
/// those of an area prefix, or its list — and any other station that reported on it), at `now`
/// (contract item 3's derivation, see [`StateKind`]); `None` when the centre holds no such
/// bulletin. Reads only: the `bulletins` row, `bulletin_receipts`, records naming the bulletin.
pub fn station_states(
    conn: &Connection,
    registry: &Registry,
    bulletin_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<StationStates>, SendError> {
    let row: Option<(String, i64, Option<i64>)> = conn
        .query_row(
            "SELECT envelope, not_after_unix_ms, cancelled_unix_ms FROM bulletins WHERE id = ?1",
            [bulletin_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((envelope, not_after_ms, cancelled_ms)) = row else {
        return Ok(None);
    };
    let targets = Envelope::decode(envelope.as_bytes())
        .map_err(|e| SendError::Internal(format!("stored bulletin {bulletin_id}: {e}")))
        .and_then(|env| {
            Bulletin::decode(&env.body)
                .map_err(|e| SendError::Internal(format!("stored bulletin {bulletin_id}: {e}")))
        })?
        .targets;
    let not_after = at_ms(not_after_ms);
    let cancelled_at = cancelled_ms.map(at_ms);

    let mut stations: std::collections::BTreeMap<String, StationState> = Default::default();
    let blank = |id: &str| {
        let e = registry.get(id);
        StationState {
            station: id.to_string(),
            name: e.map(|e| e.name.clone()).unwrap_or_default(),
            area_code: e.map(|e| e.area_code.clone()).unwrap_or_default(),
            state: StateKind::Sending,
            code: None,
            at: None,
            receipt_received_at: None,
            airings: Vec::new(),
        }
    };
    match &targets {
        Targets::Stations(ids) => {
            for id in ids {
                stations.insert(id.clone(), blank(id));
            }
        }
        t => {
            for e in registry.stations.values() {
                if t.includes(&e.id, &e.area_code) {
                    stations.insert(e.id.clone(), blank(&e.id));
                }
            }
        }
    }

    // Receipts.
    let mut st = conn.prepare(
        "SELECT station, state, code, station_unix_ms, received_unix_ms
         FROM bulletin_receipts WHERE bulletin_id = ?1",
    )?;
    let rows = st.query_map([bulletin_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut receipts: Vec<(String, String, Option<String>, i64, i64)> = Vec::new();
    for r in rows {
        receipts.push(r?);
    }

    // Records naming the bulletin.
    let mut st = conn.prepare(
        "SELECT station, bulletin_repeat, outcome, reason_code, bytes, aired_secs
         FROM records WHERE bulletin_id = ?1",
    )?;
    let rows = st.query_map([bulletin_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, f64>(5)?,
        ))
    })?;
    for r in rows {
        let (station, repeat, outcome, reason_code, bytes, aired_secs) = r?;
        let v: serde_json::Value = serde_json::from_str(&bytes).unwrap_or_default();
        let when = |k: &str| {
            v.get(k)
                .and_then(|t| t.as_str())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        };
        let airing = BulletinAiring {
            repeat: repeat.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            outcome,
            reason_code,
            at: when("actual_start").or_else(|| when("scheduled_at")),
            aired_secs,
            loudness_lufs: v
                .get("evidence")
                .and_then(|e| e.get("integrated_lufs"))
                .and_then(serde_json::Value::as_f64),
        };
        stations
            .entry(station.clone())
            .or_insert_with(|| blank(&station))
            .airings
            .push(airing);
    }
    for (station, state, code, station_ms, received_ms) in receipts {
        let s = stations
            .entry(station.clone())
            .or_insert_with(|| blank(&station));
        s.receipt_received_at = Some(at_ms(received_ms));
        if s.airings.is_empty() {
            s.state = if state == "refused" {
                StateKind::Refused
            } else {
                StateKind::Delivered
            };
            s.code = code;
            s.at = Some(at_ms(station_ms));
        }
    }
    for s in stations.values_mut() {
        if !s.airings.is_empty() {
            // Latest repeat first; a repeat journaled twice (a retry): the later record first.
            s.airings
                .sort_by(|a, b| b.repeat.cmp(&a.repeat).then_with(|| b.at.cmp(&a.at)));
            let latest = &s.airings[0];
            s.state = StateKind::of_outcome(&latest.outcome);
            s.code = latest.reason_code.clone();
            s.at = latest.at.map(|t| t.with_timezone(&Utc));
        } else if s.receipt_received_at.is_none() {
            if let Some(c) = cancelled_at {
                s.state = StateKind::Cancelled;
                s.code = Some(crate::bulletin::RefusalCode::Cancelled.as_str().to_string());
                s.at = Some(c);
            } else if now >= not_after {
                s.state = StateKind::ExpiredUndelivered;
                s.code = Some(
                    crate::bulletin::RefusalCode::ExpiredUndelivered
                        .as_str()
                        .to_string(),
                );
                s.at = Some(not_after);
            }
        }
    }
    let stations: Vec<StationState> = stations.into_values().collect();
    let counts = StateKind::ALL
        .iter()
        .map(|k| (*k, stations.iter().filter(|s| s.state == *k).count()))
        .collect();
    Ok(Some(StationStates {
        bulletin: bulletin_id.to_string(),
        not_after,
        cancelled_at,
        stations,
        counts,
    }))
}
