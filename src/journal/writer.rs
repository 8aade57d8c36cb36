//! The journal's one writer: open (replay, then continue), append with fsync, roll segments,
//! prune acknowledged ones.
//!
//! **Invariant:** a record is "logged" only once [`Journal::append`] has returned `Ok`, which
//! happens after its frame is written and `fdatasync`'ed; the writer is the *only* place that
//! assigns sequence numbers (from 1, no gaps) and `prev_hash` (the chain) and signs records, so
//! the chain on disk is exactly the chain the collector receives. A failed append leaves the
//! segment at its last good length. Segments are created only here and deleted only by
//! [`Journal::prune`], whole, oldest first, never the current one, and only once every record in
//! them is acknowledged and old enough.

use super::reader::{self, Recovery};
use super::{JournalError, MAX_SEGMENT_BYTES, SegmentInfo, frame, io_err, segment_name, sync_dir};
use crate::wire::{self, AiringRecord, Outcome, SignedRecord};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal writer. One per station process.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    station: String,
    key: SigningKey,
    file: File,
    segment: PathBuf,
    segment_len: u64,
    last_seq: u64,
    last_hash: String,
    occurrences: HashMap<String, (u64, Outcome)>,
    /// Path, last seq and last `recorded_at` of each segment, oldest first.
    segments: Vec<SegmentInfo>,
}

impl Journal {
    /// Open (or create) the journal in `dir` (the `journal/` directory itself) for `station`,
    /// signing new records with `key`. Verifies frames, hashes and the chain; cuts off and reports a
    /// torn tail; fails on corruption anywhere else.
    pub fn open(
        dir: &Path,
        station: &str,
        key: SigningKey,
    ) -> Result<(Self, Recovery), JournalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut r = reader::replay(dir, station)?;
        if r.segments.is_empty() {
            let path = dir.join(segment_name(1));
            File::create(&path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            r.segments.push(SegmentInfo {
                path,
                last_seq: None,
                last_recorded_at: None,
            });
        }
        let segment = r
            .segments
            .last()
            .map(|i| i.path.clone())
            .unwrap_or_default();
        let file = OpenOptions::new()
            .append(true)
            .open(&segment)
            .map_err(io_err(&segment))?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                station: station.to_string(),
                key,
                file,
                segment,
                segment_len: r.last_len,
                last_seq: r.last_seq,
                last_hash: r.last_hash,
                occurrences: r.occurrences,
                segments: r.segments,
            },
            r.recovery,
        ))
    }

    /// Assign `seq`, `prev_hash`, station and wire version to `rec`, sign it with the station key,
    /// append it and fsync. Returns the record as signed once it is durable.
    pub fn append(&mut self, mut rec: AiringRecord) -> Result<SignedRecord, JournalError> {
        rec.v = wire::RECORD_VERSION;
        rec.station = self.station.clone();
        rec.seq = self.last_seq + 1;
        rec.prev_hash = self.last_hash.clone();
        let signed = rec.sign(&self.key)?;
        let payload = serde_json::to_vec(&signed).map_err(wire::WireError::from)?;
        let frame = frame::encode(&payload)?;
        if self.segment_len > 0 && self.segment_len + frame.len() as u64 > MAX_SEGMENT_BYTES {
            self.roll(rec.seq)?;
        }
        if let Err(e) = self
            .file
            .write_all(&frame)
            .and_then(|_| self.file.sync_data())
        {
            // Put the segment back to its last good length so the next append starts clean.
            let _ = self.file.set_len(self.segment_len);
            return Err(io_err(&self.segment)(e));
        }
        self.segment_len += frame.len() as u64;
        self.last_seq = rec.seq;
        self.last_hash = signed.hash.clone();
        if let Some(occ) = &rec.occurrence {
            self.occurrences.insert(occ.clone(), (rec.seq, rec.outcome));
        }
        if let Some(info) = self.segments.last_mut() {
            info.last_seq = Some(rec.seq);
            info.last_recorded_at = Some(rec.recorded_at);
        }
        Ok(signed)
    }

    fn roll(&mut self, first_seq: u64) -> Result<(), JournalError> {
        let path = self.dir.join(segment_name(first_seq));
        // A file of that name can only be left by a roll that failed half-way (e.g. disk full
        // after the file was created): no record `>= first_seq` was ever confirmed, so it holds
        // nothing logged and is emptied.
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.set_len(0).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.segment = path.clone();
        self.segment_len = 0;
        self.segments.push(SegmentInfo {
            path,
            last_seq: None,
            last_recorded_at: None,
        });
        Ok(())
    }

    /// Delete closed segments whose every record is acknowledged (`<= acked_seq`) and whose last
    /// record was written before `older_than`, oldest first (never leaving a hole). The current
    /// segment is never deleted. Their occurrences leave [`Journal::occurrences`], as they would
    /// at the next open. Returns the deleted paths.
    pub fn prune(
        &mut self,
        acked_seq: u64,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<PathBuf>, JournalError> {
        let mut deleted = Vec::new();
        while self.segments.len() > 1 {
            let first = &self.segments[0];
            let done = first.last_seq.is_some_and(|s| s <= acked_seq)
                && first.last_recorded_at.is_some_and(|t| t < older_than);
            if !done {
                break;
            }
            let info = self.segments.remove(0);
            fs::remove_file(&info.path).map_err(io_err(&info.path))?;
            if let Some(last) = info.last_seq {
                self.occurrences.retain(|_, (seq, _)| *seq > last);
            }
            deleted.push(info.path);
        }
        if !deleted.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(deleted)
    }

    /// `recorded_at` of the newest record (`None` when empty).
    pub fn newest_recorded_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.segments.iter().rev().find_map(|s| s.last_recorded_at)
    }

    /// Highest sequence number journaled (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Hash of the last record ([`wire::GENESIS_HASH`] when empty).
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// The record (seq, outcome) that accounts for occurrence `key`, if any.
    pub fn occurrence(&self, key: &str) -> Option<(u64, Outcome)> {
        self.occurrences.get(key).copied()
    }

    /// Every occurrence key journaled (within retained segments).
    pub fn occurrences(&self) -> &HashMap<String, (u64, Outcome)> {
        &self.occurrences
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The station key's public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{key, open, record, write_n};
    use super::super::{JournalReader, list_segments, read_all, verify_chain};
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn append_assigns_seq_and_chain_and_survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let j = write_n(tmp.path(), 3);
        assert_eq!(j.last_seq(), 3);
        drop(j);
        let (mut j, rec) = open(tmp.path());
        assert_eq!(
            rec,
            Recovery {
                records: 3,
                torn_tail: None
            }
        );
        assert_eq!(j.occurrence("morning@1").map(|o| o.0), Some(2));
        j.append(record(3)).unwrap();
        let all = read_all(tmp.path()).unwrap();
        assert_eq!(all.len(), 4);
        verify_chain(&all, &key().verifying_key()).unwrap();
        let seqs: Vec<u64> = all.iter().map(|s| s.parse().unwrap().seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
    }

    #[test]
    fn prune_forgets_the_occurrences_of_deleted_segments_only() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = write_n(tmp.path(), 12);
        assert_eq!(j.newest_recorded_at(), Some(record(0).recorded_at));
        let late = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let early = Utc.with_ymd_and_hms(2019, 1, 1, 0, 0, 0).unwrap();
        assert!(j.prune(12, early).unwrap().is_empty(), "too young");
        assert!(j.occurrence("morning@0").is_some());
        assert!(!j.prune(12, late).unwrap().is_empty());
        assert!(j.occurrence("morning@0").is_none());
        assert_eq!(j.occurrence("morning@11").map(|o| o.0), Some(12));
        // What is left is exactly what a reopen sees.
        let kept: std::collections::BTreeSet<String> = j.occurrences().keys().cloned().collect();
        drop(j);
        let (j, _) = open(tmp.path());
        let reopened: std::collections::BTreeSet<String> =
            j.occurrences().keys().cloned().collect();
        assert_eq!(kept, reopened);
    }

    #[test]
    fn prune_deletes_only_acked_old_closed_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = write_n(tmp.path(), 12);
        let before = list_segments(tmp.path()).unwrap();
        assert!(before.len() >= 3);
        let late = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        assert!(j.prune(0, late).unwrap().is_empty());
        let d = j.prune(12, late).unwrap();
        assert_eq!(d.len(), before.len() - 1);
        // Reopen works with the chain starting mid-way; the reader skips to the oldest kept.
        drop(j);
        let (j, _) = open(tmp.path());
        assert_eq!(j.last_seq(), 12);
        assert!(
            !JournalReader::new(tmp.path())
                .read_after(0, 100)
                .unwrap()
                .is_empty()
        );
    }
}
