//! Reading the journal back: the writer's replay at open (with recovery of a torn tail), and the
//! shipper's independent reader.
//!
//! **Invariant:** [`replay`] accepts a journal only if every frame is intact, every record's hash
//! matches its bytes, sequence numbers run without a gap and every `prev_hash` links to the record
//! before; the only damage it repairs is a torn tail (bad bytes at the end of the last segment
//! with no valid frame after them), which it sets aside before cutting. Anything else fails with
//! the segment and byte offset, and nothing is changed. [`JournalReader`] never writes: a bad
//! frame at the end of the last segment is "not written yet" to it (the writer may be
//! mid-append), never an error.

use super::frame::{self, Stop};
use super::{JournalError, SegmentInfo, io_err, list_segments, set_aside};
use crate::wire::{self, Outcome, SignedRecord};
use ed25519_dalek::VerifyingKey;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// What opening the journal found and repaired.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// Records found intact.
    pub records: u64,
    /// A torn/corrupt tail that was cut off, if any.
    pub torn_tail: Option<TornTail>,
}

/// A torn or corrupt tail cut off at open.
#[derive(Debug, Clone, PartialEq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Byte offset where the valid frames end (the segment's new length).
    pub offset: u64,
    /// How many bytes were cut off.
    pub cut_bytes: u64,
    /// Why they were not a valid frame.
    pub reason: String,
    /// Where the cut bytes were kept.
    pub kept_in: PathBuf,
}

/// The journal as replayed at open: what the writer continues from.
pub(super) struct Replayed {
    /// Each segment, oldest first (none when the directory holds no segment yet).
    pub segments: Vec<SegmentInfo>,
    /// Length of the last segment after any cut.
    pub last_len: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub occurrences: HashMap<String, (u64, Outcome)>,
    pub recovery: Recovery,
}

/// Replay every segment of the journal in `dir` for `station`: verify frames, hashes and the
/// chain; set aside and cut off a torn tail; fail on corruption anywhere else.
pub(super) fn replay(dir: &Path, station: &str) -> Result<Replayed, JournalError> {
    let segs = list_segments(dir)?;
    let mut out = Replayed {
        segments: Vec::new(),
        last_len: 0,
        last_seq: 0,
        last_hash: wire::GENESIS_HASH.to_string(),
        occurrences: HashMap::new(),
        recovery: Recovery::default(),
    };
    let n = segs.len();
    for (i, (first_seq, path)) in segs.iter().enumerate() {
        let is_last = i + 1 == n;
        let buf = fs::read(path).map_err(io_err(path))?;
        let mut offset = 0u64;
        let mut info = SegmentInfo {
            path: path.clone(),
            last_seq: None,
            last_recorded_at: None,
        };
        let corrupt = |offset: u64, what: String| JournalError::Corrupt {
            segment: path.clone(),
            offset,
            what,
        };
        loop {
            match frame::next(&buf, offset) {
                Ok(f) => {
                    let (signed, rec) =
                        frame::record(f.payload).map_err(|what| corrupt(f.offset, what))?;
                    if wire::sha256_hex(signed.bytes().as_bytes()) != signed.hash {
                        return Err(corrupt(
                            f.offset,
                            "record hash mismatch (record altered)".into(),
                        ));
                    }
                    if rec.station != station {
                        return Err(JournalError::WrongStation {
                            expected: station.to_string(),
                            found: rec.station,
                        });
                    }
                    let expected_seq = if out.last_seq == 0 {
                        *first_seq
                    } else {
                        out.last_seq + 1
                    };
                    if rec.seq != expected_seq {
                        return Err(corrupt(
                            f.offset,
                            format!("sequence {} where {expected_seq} was expected", rec.seq),
                        ));
                    }
                    if out.last_seq != 0 && rec.prev_hash != out.last_hash {
                        return Err(corrupt(
                            f.offset,
                            format!(
                                "chain broken: seq {} does not link to seq {}",
                                rec.seq, out.last_seq
                            ),
                        ));
                    }
                    out.last_seq = rec.seq;
                    out.last_hash = signed.hash;
                    if let Some(occ) = rec.occurrence {
                        out.occurrences.insert(occ, (rec.seq, rec.outcome));
                    }
                    info.last_seq = Some(rec.seq);
                    info.last_recorded_at = Some(rec.recorded_at);
                    out.recovery.records += 1;
                    offset = f.end;
                }
                Err(Stop::End) => break,
                Err(Stop::Bad {
                    offset: bad,
                    reason,
                    extends_to_eof,
                }) => {
                    // A tail is only a tail if no valid frame follows it: a garbage length in
                    // the middle must not make us cut intact records after it.
                    if !(is_last && extends_to_eof) || frame::valid_frame_after(&buf, bad) {
                        return Err(corrupt(bad, reason));
                    }
                    out.recovery.torn_tail = Some(cut_torn_tail(dir, path, &buf, bad, reason)?);
                    offset = bad;
                    break;
                }
            }
        }
        if info.last_seq.is_none() && !is_last {
            return Err(corrupt(0, "empty segment before the last one".into()));
        }
        if is_last {
            out.last_len = offset;
        }
        out.segments.push(info);
    }
    Ok(out)
}

/// Set aside the bytes of `buf` (the segment at `path`) from `offset` on, then cut the segment
/// there.
fn cut_torn_tail(
    dir: &Path,
    path: &Path,
    buf: &[u8],
    offset: u64,
    reason: String,
) -> Result<TornTail, JournalError> {
    let kept_in = set_aside::keep_torn(dir, path, offset, &buf[offset as usize..])?;
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.set_len(offset).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    let cut_bytes = buf.len() as u64 - offset;
    tracing::warn!(
        segment = %path.display(),
        offset,
        cut_bytes,
        kept_in = %kept_in.display(),
        "journal: torn tail cut off ({reason})"
    );
    Ok(TornTail {
        segment: path.to_path_buf(),
        offset,
        cut_bytes,
        reason,
        kept_in,
    })
}

/// An independent reader of the journal (the shipper's). Never writes.
#[derive(Debug)]
pub struct JournalReader {
    dir: PathBuf,
    /// Where the next unread record starts: (segment first seq, path, offset, its seq).
    cursor: Option<(u64, PathBuf, u64, u64)>,
}

impl JournalReader {
    /// A reader over the journal directory `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            cursor: None,
        }
    }

    /// Up to `max` records with seq > `after_seq`, in order. Stops quietly at an incomplete frame
    /// at the end of the last segment (the writer may be mid-append).
    pub fn read_after(
        &mut self,
        after_seq: u64,
        max: usize,
    ) -> Result<Vec<SignedRecord>, JournalError> {
        let want = after_seq + 1;
        let segs = list_segments(&self.dir)?;
        // Reuse the cursor when it points exactly at `want` and its segment still exists.
        let (mut seg_idx, mut offset) = match &self.cursor {
            Some((first, path, off, seq)) if *seq == want && path.exists() => {
                match segs.iter().position(|(f, _)| f == first) {
                    Some(i) => (i, *off),
                    None => (usize::MAX, 0),
                }
            }
            _ => (usize::MAX, 0),
        };
        if seg_idx == usize::MAX {
            // Seek: the last segment whose first seq is <= want.
            seg_idx = match segs.iter().rposition(|(f, _)| *f <= want) {
                Some(i) => i,
                None if segs.is_empty() => return Ok(Vec::new()),
                None => 0, // records before `want` were pruned; start at the oldest kept
            };
            offset = 0;
        }
        let mut out = Vec::new();
        while seg_idx < segs.len() && out.len() < max {
            let (first, path) = &segs[seg_idx];
            let is_last = seg_idx + 1 == segs.len();
            let mut f = File::open(path).map_err(io_err(path))?;
            f.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(io_err(path))?;
            let mut pos = 0u64;
            let mut ended_cleanly = false;
            while out.len() < max {
                match frame::next(&buf, pos) {
                    Ok(fr) => {
                        let (signed, rec) =
                            frame::record(fr.payload).map_err(|what| JournalError::Corrupt {
                                segment: path.clone(),
                                offset: offset + fr.offset,
                                what,
                            })?;
                        pos = fr.end;
                        if rec.seq >= want {
                            out.push(signed);
                            self.cursor = Some((*first, path.clone(), offset + pos, rec.seq + 1));
                        }
                    }
                    Err(Stop::End) => {
                        ended_cleanly = true;
                        break;
                    }
                    Err(Stop::Bad {
                        offset: bad,
                        reason,
                        ..
                    }) => {
                        if is_last {
                            return Ok(out); // not written yet (or torn; the writer repairs at open)
                        }
                        return Err(JournalError::Corrupt {
                            segment: path.clone(),
                            offset: offset + bad,
                            what: reason,
                        });
                    }
                }
            }
            if !ended_cleanly {
                break; // batch full
            }
            seg_idx += 1;
            offset = 0;
        }
        Ok(out)
    }
}

/// Read every intact record of the journal in `dir` (tests and tools).
pub fn read_all(dir: &Path) -> Result<Vec<SignedRecord>, JournalError> {
    JournalReader::new(dir).read_after(0, usize::MAX)
}

/// Check hashes, signatures (with `key`) and the chain of `records`, which must be consecutive.
/// Returns the first problem as text.
pub fn verify_chain(records: &[SignedRecord], key: &VerifyingKey) -> Result<(), String> {
    let mut prev: Option<(u64, String)> = None;
    for s in records {
        let rec = s.verify(key).map_err(|e| e.to_string())?;
        match &prev {
            None if rec.seq == 1 && rec.prev_hash != wire::GENESIS_HASH => {
                return Err("seq 1 does not start from the genesis hash".into());
            }
            Some((seq, hash)) if rec.seq != seq + 1 || &rec.prev_hash != hash => {
                return Err(format!(
                    "chain broken between seq {seq} and seq {}",
                    rec.seq
                ));
            }
            _ => {}
        }
        prev = Some((rec.seq, s.hash.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{STATION, key, open, record, write_n};
    use super::super::{Journal, MAX_SEGMENT_BYTES};
    use super::*;

    #[test]
    fn rollover_creates_segments_and_chain_verifies_across_them_and_restarts() {
        let tmp = tempfile::tempdir().unwrap();
        let j = write_n(tmp.path(), 10);
        drop(j);
        let (mut j, _) = open(tmp.path());
        for i in 10..20 {
            j.append(record(i)).unwrap();
        }
        let segs = list_segments(tmp.path()).unwrap();
        assert!(
            segs.len() >= 3,
            "expected rollover, got {} segments",
            segs.len()
        );
        for (_, p) in &segs {
            assert!(fs::metadata(p).unwrap().len() <= MAX_SEGMENT_BYTES);
        }
        let all = read_all(tmp.path()).unwrap();
        assert_eq!(all.len(), 20);
        verify_chain(&all, &key().verifying_key()).unwrap();
        // A reader in small batches sees the same records in order.
        let mut r = JournalReader::new(tmp.path());
        let mut got = Vec::new();
        let mut after = 0;
        loop {
            let b = r.read_after(after, 3).unwrap();
            if b.is_empty() {
                break;
            }
            after = b.last().unwrap().parse().unwrap().seq;
            got.extend(b);
        }
        assert_eq!(got.len(), 20);
        assert_eq!(r.read_after(5, 1).unwrap()[0].parse().unwrap().seq, 6);
    }

    #[test]
    fn torn_tail_at_every_byte_offset_of_the_last_frame_is_cut_and_reported() {
        let tmp = tempfile::tempdir().unwrap();
        drop(write_n(tmp.path(), 2));
        let seg = list_segments(tmp.path()).unwrap().pop().unwrap().1;
        let full = fs::read(&seg).unwrap();
        let first_len = u32::from_le_bytes(full[0..4].try_into().unwrap()) as usize + 8;
        for cut in first_len + 1..full.len() {
            let case = tempfile::tempdir().unwrap();
            let p = case.path().join(seg.file_name().unwrap());
            fs::write(&p, &full[..cut]).unwrap();
            // The shipper's reader stops quietly before the torn frame.
            assert_eq!(read_all(case.path()).unwrap().len(), 1, "cut at {cut}");
            let (mut j, rec) = open(case.path());
            assert_eq!(rec.records, 1, "cut at {cut}");
            let torn = rec.torn_tail.expect("torn tail must be reported");
            assert_eq!(torn.offset, first_len as u64);
            assert_eq!(torn.cut_bytes, (cut - first_len) as u64);
            assert_eq!(fs::read(&torn.kept_in).unwrap(), &full[first_len..cut]);
            assert_eq!(fs::metadata(&p).unwrap().len(), first_len as u64);
            // Appending continues the chain from the last intact record.
            let s = j.append(record(9)).unwrap();
            assert_eq!(s.parse().unwrap().seq, 2);
            verify_chain(&read_all(case.path()).unwrap(), &key().verifying_key()).unwrap();
        }
        // Cut exactly at the frame boundary: nothing torn.
        let case = tempfile::tempdir().unwrap();
        fs::write(
            case.path().join(seg.file_name().unwrap()),
            &full[..first_len],
        )
        .unwrap();
        assert_eq!(
            open(case.path()).1,
            Recovery {
                records: 1,
                torn_tail: None
            }
        );
    }

    #[test]
    fn flipped_byte_in_last_frame_is_a_reported_tail_elsewhere_an_error_naming_the_offset() {
        let tmp = tempfile::tempdir().unwrap();
        drop(write_n(tmp.path(), 3));
        let seg = list_segments(tmp.path()).unwrap().pop().unwrap().1;
        let full = fs::read(&seg).unwrap();
        let f1 = u32::from_le_bytes(full[0..4].try_into().unwrap()) as usize + 8;
        let f2 = f1 + u32::from_le_bytes(full[f1..f1 + 4].try_into().unwrap()) as usize + 8;
        // Bytes of the first and second frame (every header byte, payload sampled), flipped in
        // low and high bits: open fails naming the segment and that frame.
        let positions = (0..8)
            .chain((8..f1).step_by(7))
            .chain(f1..f1 + 8)
            .chain((f1 + 8..f2).step_by(7));
        for i in positions {
            let start = if i < f1 { 0 } else { f1 };
            for flip in [0x01u8, 0x40, 0x80] {
                let mut bad = full.clone();
                bad[i] ^= flip;
                let case = tempfile::tempdir().unwrap();
                let p = case.path().join(seg.file_name().unwrap());
                fs::write(&p, &bad).unwrap();
                match Journal::open(case.path(), STATION, key()) {
                    Err(JournalError::Corrupt {
                        segment, offset, ..
                    }) => {
                        assert_eq!(segment, p);
                        assert_eq!(offset, start as u64, "flip at {i}");
                    }
                    other => panic!("flip at {i}: expected Corrupt, got {other:?}"),
                }
                assert_eq!(fs::read(&p).unwrap(), bad, "nothing changed on error");
            }
        }
        // A flip in the last frame: cut off and reported.
        let mut bad = full.clone();
        bad[f2 + 20] ^= 1;
        let case = tempfile::tempdir().unwrap();
        fs::write(case.path().join(seg.file_name().unwrap()), &bad).unwrap();
        let (_, rec) = open(case.path());
        assert_eq!(rec.records, 2);
        assert_eq!(rec.torn_tail.unwrap().reason, "checksum mismatch");
    }

    #[test]
    fn torn_frame_in_an_older_segment_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        drop(write_n(tmp.path(), 10));
        let segs = list_segments(tmp.path()).unwrap();
        assert!(segs.len() >= 2);
        let p = &segs[0].1;
        let len = fs::metadata(p).unwrap().len();
        let f = OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(len - 3).unwrap();
        assert!(matches!(
            Journal::open(tmp.path(), STATION, key()),
            Err(JournalError::Corrupt { .. })
        ));
        // The shipper's reader refuses it too, naming the older segment.
        match read_all(tmp.path()) {
            Err(JournalError::Corrupt { segment, .. }) => assert_eq!(&segment, p),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
