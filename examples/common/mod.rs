//! What the collector benchmarks share: a station's chain of signed records, as a station
//! sends them (649 bytes each). Included by `bench_collector` and `bench_ingest_parts` as a
//! module, so both measure the very same records.

use chrono::{Duration, FixedOffset, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use loa::wire::{
    AiredItem, AiringRecord, GENESIS_HASH, Outcome, RECORD_VERSION, SignedRecord, Source,
};

/// `n` records of `station`, seq 1..=n, chained from genesis and signed with `k`.
pub fn chain(station: &str, k: &SigningKey, n: usize) -> Vec<SignedRecord> {
    let tz = FixedOffset::east_opt(7 * 3600).unwrap();
    let t0 = tz.with_ymd_and_hms(2019, 3, 1, 5, 30, 0).unwrap();
    let mut prev = GENESIS_HASH.to_string();
    (1..=n as u64)
        .map(|seq| {
            let at = t0 + Duration::minutes(seq as i64 * 10);
            let r = AiringRecord {
                v: RECORD_VERSION,
                station: station.into(),
                seq,
                occurrence: Some(format!("s@{}", at.with_timezone(&Utc).to_rfc3339())),
                slot: Some("s".into()),
                program: Some("cchc".into()),
                category: "cchc".into(),
                source: Source::File,
                scheduled_at: at,
                actual_start: Some(at),
                end: Some(at + Duration::seconds(600)),
                planned_secs: 600.0,
                aired_secs: 600.0,
                start_offset_ms: Some(12),
                outcome: Outcome::Aired,
                reason: None,
                reason_code: None,
                items: vec![AiredItem {
                    path: "cchc/2019-03.ogg".into(),
                    sha256: "ab".repeat(32),
                    duration_secs: 600.0,
                    aired_secs: 600.0,
                }],
                evidence: None,
                relay: None,
                recorded_at: at.with_timezone(&Utc) + Duration::seconds(601),
                prev_hash: prev.clone(),
                schedule_version: None,
                bulletin: None,
            };
            let s = r.sign(k).unwrap();
            prev = s.hash.clone();
            s
        })
        .collect()
}
