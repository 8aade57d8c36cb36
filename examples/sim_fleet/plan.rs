//! A simulated station's plan and the records it airs (pure: no I/O, no clock read).
//!
//! **Invariant:** a station's plan is a function of its index and the fleet's settings only, so
//! the simulator can say, for any simulated instant, which records the station has journaled by
//! then; the records are real wire version 2 records, each chained to the one before and signed
//! with the station's key, exactly as a station's journal writes them.

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, Utc};
use ed25519_dalek::SigningKey;
use loa::wire::{
    AiredItem, AiringBrief, AiringRecord, GENESIS_HASH, Outcome, RECORD_VERSION, SignedRecord,
    Source,
};

/// Vietnam's offset (every simulated station is in UTC+07:00).
pub const OFFSET_SECS: i32 = 7 * 3600;

/// The session starts wards choose from, local time: morning, noon and evening, each at one of
/// a few minutes so the fleet is not all in step (a station picks one of each by its index).
pub const DEFAULT_SESSIONS: &[&[&str]] = &[
    &["05:00", "05:30", "06:00"],
    &["11:00", "11:30"],
    &["17:00", "17:30", "18:00"],
];

/// The programs a session's items air, in order (id, category).
const PROGRAMS: &[(&str, &str)] = &[
    ("thoi-su", "news"),
    ("cchc", "cchc"),
    ("phap-luat", "law"),
    ("nong-nghiep", "agriculture"),
];

/// One planned airing of a simulated station.
#[derive(Debug, Clone, PartialEq)]
pub struct Airing {
    pub slot: String,
    pub program: &'static str,
    pub category: &'static str,
    pub at: DateTime<FixedOffset>,
    pub secs: u32,
}

impl Airing {
    /// When the airing ends (its record is journaled then).
    pub fn end(&self) -> DateTime<FixedOffset> {
        self.at + Duration::seconds(i64::from(self.secs))
    }

    pub fn brief(&self) -> AiringBrief {
        AiringBrief {
            slot: Some(self.slot.clone()),
            program: Some(self.program.to_string()),
            at: self.at,
        }
    }
}

/// Plan settings shared by the fleet.
#[derive(Debug, Clone)]
pub struct PlanSpec {
    /// Session start choices (see [`DEFAULT_SESSIONS`]); station `i` takes choice
    /// `i % choices.len()` of each session.
    pub sessions: Vec<Vec<NaiveTime>>,
    /// Items per session, back to back.
    pub items: u32,
    /// An item's length.
    pub item_secs: u32,
}

impl PlanSpec {
    /// The default plan with `items` items of `item_secs` each per session.
    pub fn new(items: u32, item_secs: u32) -> Self {
        Self {
            sessions: DEFAULT_SESSIONS
                .iter()
                .map(|choices| {
                    choices
                        .iter()
                        .filter_map(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
                        .collect()
                })
                .collect(),
            items,
            item_secs,
        }
    }

    /// Station `index`'s airings ending within `(from, to]`, in time order (the plan repeats
    /// daily).
    pub fn airings(
        &self,
        index: usize,
        from: DateTime<FixedOffset>,
        to: DateTime<FixedOffset>,
    ) -> Vec<Airing> {
        let tz = *from.offset();
        let mut out = Vec::new();
        let mut day = from.date_naive() - Duration::days(1);
        while day <= to.date_naive() {
            for (s, choices) in self.sessions.iter().enumerate() {
                let Some(start) = choices.get(index % choices.len().max(1)) else {
                    continue;
                };
                let Some(t0) = day.and_time(*start).and_local_timezone(tz).single() else {
                    continue;
                };
                for k in 0..self.items {
                    let at = t0 + Duration::seconds(i64::from(k * self.item_secs));
                    let (program, category) = PROGRAMS[k as usize % PROGRAMS.len()];
                    let a = Airing {
                        slot: format!("buoi{}-{}", s + 1, k + 1),
                        program,
                        category,
                        at,
                        secs: self.item_secs,
                    };
                    if a.end() > from && a.end() <= to {
                        out.push(a);
                    }
                }
            }
            day += Duration::days(1);
        }
        out.sort_by_key(|a| a.at);
        out
    }
}

/// The record of `airing`, seq `seq`, chained to `prev_hash`, signed with `key`.
pub fn record(
    station: &str,
    key: &SigningKey,
    seq: u64,
    prev_hash: &str,
    airing: &Airing,
) -> Result<SignedRecord, loa::wire::WireError> {
    // A real station's start offset: tens of milliseconds, varying by station and airing.
    let offset_ms = 5 + (seq as i64 * 37 + station.len() as i64 * 11) % 80;
    let start = airing.at + Duration::milliseconds(offset_ms);
    let secs = f64::from(airing.secs);
    let date = airing.at.format("%Y-%m-%d");
    AiringRecord {
        v: RECORD_VERSION,
        station: station.to_string(),
        seq,
        occurrence: Some(format!(
            "{}@{}",
            airing.slot,
            airing.at.with_timezone(&Utc).to_rfc3339()
        )),
        slot: Some(airing.slot.clone()),
        program: Some(airing.program.to_string()),
        category: airing.category.to_string(),
        source: Source::File,
        scheduled_at: airing.at,
        actual_start: Some(start),
        end: Some(start + Duration::seconds(i64::from(airing.secs))),
        planned_secs: secs,
        aired_secs: secs,
        start_offset_ms: Some(offset_ms),
        outcome: Outcome::Aired,
        reason: None,
        reason_code: None,
        items: vec![AiredItem {
            path: format!("{}/{date}.ogg", airing.program),
            sha256: loa::wire::sha256_hex(format!("{}/{date}", airing.program).as_bytes()),
            duration_secs: secs,
            aired_secs: secs,
        }],
        evidence: None,
        relay: None,
        recorded_at: (start + Duration::seconds(i64::from(airing.secs) + 1)).with_timezone(&Utc),
        prev_hash: if seq == 1 {
            GENESIS_HASH.to_string()
        } else {
            prev_hash.to_string()
        },
        schedule_version: None,
        bulletin: None,
    }
    .sign(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_day_has_every_session_item_once() {
        let tz = FixedOffset::east_opt(OFFSET_SECS).unwrap();
        let from = tz.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        let spec = PlanSpec::new(2, 900);
        let a = spec.airings(1, from, from + Duration::days(1));
        assert_eq!(a.len(), 6);
        assert_eq!(a[0].at, tz.with_ymd_and_hms(2026, 12, 5, 5, 30, 0).unwrap());
        assert_eq!(a[1].at, tz.with_ymd_and_hms(2026, 12, 5, 5, 45, 0).unwrap());
        // Split windows cover the same airings, each once.
        let mid = from + Duration::hours(5) + Duration::minutes(45) + Duration::seconds(900);
        let (x, y) = (
            spec.airings(1, from, mid),
            spec.airings(1, mid, from + Duration::days(1)),
        );
        assert_eq!(x.len() + y.len(), 6);
        assert_eq!(x.last().unwrap().end(), mid);
    }
}
