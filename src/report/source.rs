//! What a report reads, and from where: the plain data ([`StationEntry`], [`StoredRecord`]) and
//! the two traits a holder of stations and records implements ([`StationDirectory`],
//! [`RecordSource`]). The collector's registry and store implement them; the report names neither.
//!
//! **Invariant:** a report reads stations and records only through these traits, so `report`
//! imports nothing from `collector` (the collector depends on the report, not the reverse); a
//! [`StoredRecord`] is the station's signed bytes verbatim, and turning it back into its wire
//! form or parsing it never changes them.

use ed25519_dalek::VerifyingKey;
use std::path::PathBuf;

use crate::reconcile::AiredAiring;

/// What a record source could not do: its own error, shown as it is.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// A registered station: who it is, the key its records verify against, and where its schedule
/// is (for "planned").
#[derive(Debug, Clone, PartialEq)]
pub struct StationEntry {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub public_key: String,
    pub key: VerifyingKey,
    pub schedule: Option<PathBuf>,
    pub audio_root: Option<PathBuf>,
}

/// A held record: the station's bytes, hash and signature verbatim, keyed by (station, seq).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub station: String,
    pub seq: u64,
    pub hash: String,
    pub signature: String,
    pub bytes: String,
}

/// A held record whose bytes are not a record.
#[derive(Debug, thiserror::Error)]
#[error("stored record is corrupt: {0}")]
pub struct CorruptRecord(pub String);

impl StoredRecord {
    /// Back to the wire form (bytes verbatim).
    pub fn signed(&self) -> Result<crate::wire::SignedRecord, CorruptRecord> {
        Ok(crate::wire::SignedRecord {
            record: serde_json::value::RawValue::from_string(self.bytes.clone())
                .map_err(|e| CorruptRecord(e.to_string()))?,
            hash: self.hash.clone(),
            signature: self.signature.clone(),
        })
    }

    /// Parse the stored bytes.
    pub fn parse(&self) -> Result<crate::wire::AiringRecord, CorruptRecord> {
        serde_json::from_str(&self.bytes)
            .map_err(|e| CorruptRecord(format!("{} seq {}: {e}", self.station, self.seq)))
    }
}

/// The stations a report covers.
pub trait StationDirectory {
    /// Every station, in id order.
    fn entries(&self) -> Vec<&StationEntry>;

    /// The station with id `id`.
    fn entry(&self, id: &str) -> Option<&StationEntry>;
}

/// A directory of one station: a report restricted to it (`station=`) is built by the same
/// builder over this directory, so its rows are the city report's rows of that station.
pub struct OneStation<'a>(pub &'a StationEntry);

impl StationDirectory for OneStation<'_> {
    fn entries(&self) -> Vec<&StationEntry> {
        vec![self.0]
    }

    fn entry(&self, id: &str) -> Option<&StationEntry> {
        (self.0.id == id).then_some(self.0)
    }
}

/// Where the records of the stations come from. Times are Unix seconds of the scheduled start.
pub trait RecordSource {
    /// Another handle on the same records, for reading on another thread while this one is in
    /// use.
    fn open_reader(&self) -> Result<Box<dyn RecordSource + Send>, SourceError>;

    /// The highest seq held for `station` (0 when none).
    fn stored_through(&self, station: &str) -> Result<u64, SourceError>;

    /// The records of `station` scheduled in `[from_unix, to_unix)`, by seq.
    fn records_between(
        &self,
        station: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<StoredRecord>, SourceError>;

    /// The airings of `station` scheduled in `[from_unix, to_unix)`, in no promised order (what
    /// reconciliation reads, without the signed bytes).
    fn airings_between(
        &self,
        station: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<AiredAiring>, SourceError>;

    /// The records of `station` with seq in `from..=to`, by seq.
    fn records_by_seq(
        &self,
        station: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredRecord>, SourceError>;

    /// The record of `station` scheduled last before `unix` (by scheduled time, then seq).
    fn last_record_scheduled_before(
        &self,
        station: &str,
        unix: i64,
    ) -> Result<Option<StoredRecord>, SourceError>;

    /// What the source knows of the bulletins `ids` (the centre's own: title, airings,
    /// synthetic), by id; an id it does not know is left out. A source without bulletins knows
    /// none.
    fn bulletins(
        &self,
        _ids: &[&str],
    ) -> Result<std::collections::HashMap<String, BulletinInfo>, SourceError> {
        Ok(std::collections::HashMap::new())
    }
}

/// A bulletin as the exports name its airings (docs/bulletins.md, "In the monthly export").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulletinInfo {
    pub title: String,
    /// How many airings it asked for.
    pub repeats: u32,
    /// Its audio was read from its text by text-to-speech.
    pub synthetic: bool,
}
