//! The JSON export: each station's signed records verbatim, with its public key and the records
//! that bracket its run.
//!
//! **Invariant:** the records are written exactly as the station signed them (bytes, hash,
//! signature), so `loa verify` can check them without the collector.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;

use super::{Period, PeriodReport, ReportError};
use crate::wire::SignedRecord;

/// Format name written into JSON exports.
pub const EXPORT_FORMAT: &str = "loa-airing-log";
/// Version of the JSON export layout. 2: each station carries `anchor`, `successor` and
/// `held_through`, which prove where its run starts and ends (1 did not).
pub const EXPORT_VERSION: u32 = 2;

/// The JSON export as written.
#[derive(Debug, Serialize, Deserialize)]
pub struct JsonExport {
    pub format: String,
    pub version: u32,
    pub period: Period,
    pub generated_at: DateTime<Utc>,
    /// Present when the period was not over at `generated_at`: its figures are as of then
    /// ("Tháng chưa kết thúc — số liệu tính đến …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Present when the export was restricted to one station (`station=`): it holds that
    /// station alone, and `loa verify` does not count the other registered stations missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    pub stations: Vec<JsonStation>,
}

/// One station in the JSON export.
#[derive(Debug, Serialize, Deserialize)]
pub struct JsonStation {
    pub id: String,
    pub name: String,
    pub area_code: String,
    /// Base64 Ed25519 public key the records verify against.
    pub public_key: String,
    /// Records in the period per the collector (for cross-checking by `loa verify`).
    pub records_in_period: u64,
    pub plan_note: Option<String>,
    /// Totals of the reconciliation (informative; not signed by the station).
    pub totals: crate::reconcile::Totals,
    /// Program id → title from the station's schedule (informative; the records carry ids).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub program_titles: std::collections::BTreeMap<String, String>,
    /// The highest seq the collector held for the station at `generated_at` (the collector's
    /// word, not signed). Version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_through: Option<u64>,
    /// The station-signed record just before `records` ([`super::RunBounds::anchor`]): proves the
    /// run starts where it does. Version 2; absent when the run starts at seq 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<SignedRecord>,
    /// The contiguous run of signed records, verbatim.
    pub records: Vec<SignedRecord>,
    /// The station-signed record just after `records` ([`super::RunBounds::successor`]): proves the
    /// run ends where it does. Version 2; absent when the collector held none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<SignedRecord>,
}

/// JSON: the signed records verbatim, per station, with public keys and totals.
pub fn write_json(report: &PeriodReport, out: &mut impl Write) -> Result<(), ReportError> {
    let mut stations = Vec::with_capacity(report.stations.len());
    for s in &report.stations {
        let mut records = Vec::with_capacity(s.records.len());
        let mut in_period = 0;
        for r in &s.records {
            let signed = r.signed()?;
            if signed
                .parse()
                .is_ok_and(|p| report.period.contains(&p.scheduled_at))
            {
                in_period += 1;
            }
            records.push(signed);
        }
        stations.push(JsonStation {
            id: s.id.clone(),
            name: s.name.clone(),
            area_code: s.area_code.clone(),
            public_key: s.public_key.clone(),
            records_in_period: in_period,
            plan_note: s.plan_note.clone(),
            totals: s.reconciliation.breakdown.totals.clone(),
            program_titles: s
                .titles
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            held_through: Some(s.bounds.held_through),
            anchor: s.bounds.anchor.as_ref().map(|r| r.signed()).transpose()?,
            records,
            successor: s
                .bounds
                .successor
                .as_ref()
                .map(|r| r.signed())
                .transpose()?,
        });
    }
    let doc = JsonExport {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        period: report.period.clone(),
        generated_at: report.generated_at,
        note: report.period.open_note(report.generated_at),
        station: report.only_station.clone(),
        stations,
    };
    serde_json::to_writer_pretty(out, &doc)?;
    Ok(())
}
