//! (to be written) Expansion of a station's schedule into planned airings.

use super::{AudioCatalog, Priority, RelaySpec, StartPolicy, Station};
use chrono::{DateTime, FixedOffset, NaiveDate};
use std::path::PathBuf;

/// One planned airing.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAiring {
    pub station: String,
    pub slot: String,
    pub program: Option<String>,
    pub category: String,
    pub at: DateTime<FixedOffset>,
    /// Files in airing order (for a relay: the fallback playlist), relative to the audio root.
    pub items: Vec<PathBuf>,
    pub planned_secs: f64,
    pub priority: Priority,
    pub start: StartPolicy,
    pub grace_secs: u32,
    pub max_secs: u32,
    pub relay: Option<RelaySpec>,
}

impl PlannedAiring {
    /// The occurrence key: `{slot}@{UTC instant, RFC 3339}`; unique per station.
    pub fn key(&self) -> String {
        format!(
            "{}@{}",
            self.slot,
            self.at
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// Planned airings whose local date lies in `from..=to`, in order of instant.
pub fn expand(
    _station: &Station,
    _catalog: &AudioCatalog,
    _from: NaiveDate,
    _to: NaiveDate,
) -> Vec<PlannedAiring> {
    Vec::new()
}
