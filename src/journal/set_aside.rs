//! Quarantine: damaged or refused data is kept aside, never deleted and never read back as
//! records.
//!
//! **Invariant:** what is set aside is written (and synced) *before* it leaves the journal: the
//! torn tail's bytes are in `torn-<segment>-<offset>.bin` before the segment is cut, and a
//! record the collector refused is in `rejected.jsonl` before the ledger moves past it. Nothing
//! here ever rewrites or deletes a set-aside file; only the operator does.
//!
//! - `journal/torn-<segment>-<offset>.bin`: bytes cut off a torn/corrupt tail at open (written by
//!   the writer's recovery, [`keep_torn`]).
//! - `journal/rejected.jsonl`: records the collector refused as invalid, one JSON per line (written
//!   by the shipper, [`SetAside`]).

use super::{JournalError, io_err};
use crate::wire::{self, SignedRecord};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the set-aside file for refused records.
pub const REJECTED_FILE: &str = "rejected.jsonl";

/// Keep `bytes`, cut off `segment` at `offset`, in the journal directory `dir`; returns the file.
pub(super) fn keep_torn(
    dir: &Path,
    segment: &Path,
    offset: u64,
    bytes: &[u8],
) -> Result<PathBuf, JournalError> {
    let kept_in = dir.join(format!(
        "torn-{}-{offset}.bin",
        segment
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("segment")
    ));
    let mut f = fs::File::create(&kept_in).map_err(io_err(&kept_in))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&kept_in))?;
    Ok(kept_in)
}

/// One refused record as kept in `rejected.jsonl`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SetAsideEntry {
    pub seq: u64,
    pub reason: String,
    pub rejected_at: chrono::DateTime<chrono::Utc>,
    pub record: SignedRecord,
}

/// The set-aside file for records the collector refused as invalid.
#[derive(Debug, Clone)]
pub struct SetAside {
    path: PathBuf,
}

impl SetAside {
    /// The set-aside file in journal directory `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(REJECTED_FILE),
        }
    }

    /// Append `entry` durably.
    pub fn put(&self, entry: &SetAsideEntry) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(entry).map_err(wire::WireError::from)?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .map_err(io_err(&self.path))
    }

    /// Every entry (skipping none: a bad line is an error naming it).
    pub fn entries(&self) -> Result<Vec<SetAsideEntry>, JournalError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.path)(e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| JournalError::Corrupt {
                    segment: self.path.clone(),
                    offset: i as u64 + 1,
                    what: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{record, write_n};
    use super::*;
    use chrono::Utc;

    #[test]
    fn set_aside_round_trips_and_a_bad_line_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = write_n(tmp.path(), 1);
        let s = j.append(record(1)).unwrap();
        let sa = SetAside::new(tmp.path());
        assert!(sa.entries().unwrap().is_empty());
        sa.put(&SetAsideEntry {
            seq: 2,
            reason: "bad".into(),
            rejected_at: Utc::now(),
            record: s.clone(),
        })
        .unwrap();
        let e = sa.entries().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].record.bytes(), s.bytes());
        let mut text = fs::read_to_string(tmp.path().join(REJECTED_FILE)).unwrap();
        text.push_str("{not json\n");
        fs::write(tmp.path().join(REJECTED_FILE), text).unwrap();
        match sa.entries() {
            Err(JournalError::Corrupt { what, .. }) => assert!(what.starts_with("line 2:")),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
