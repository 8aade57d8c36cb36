//! The station's durable, append-only, checksummed as-run journal.
//!
//! **Invariant:** a record is "logged" only once [`Journal::append`] has returned `Ok`, which
//! happens after its frame is written and `fdatasync`'ed; the journal is the *only* place that
//! assigns sequence numbers (from 1, no gaps) and `prev_hash` (the chain) and signs records, so
//! the chain on disk is exactly the chain the collector receives. Nothing is ever silently
//! dropped: a torn or corrupt tail is cut off *and reported*, with the cut bytes kept aside.
//!
//! # Files (all under the station's data directory)
//! ```text
//! journal/00000000000000000001.seg   segments, named by the seq of their first record
//! journal/00000000000000004711.seg   (the last segment is the one being appended to)
//! journal/acked                      ledger: highest seq the collector acknowledged (decimal + \n)
//! journal/rejected.jsonl             records the collector refused as invalid, one JSON per line
//! journal/torn-<segment>-<offset>.bin  bytes cut off a torn/corrupt tail at open (kept, never read)
//! ```
//!
//! # Frame layout (little-endian)
//! ```text
//! +------------+-----------------------------+---------------------------------+
//! | len: u32   | crc: u32 = crc32(len ‖ payload) | payload: len bytes          |
//! +------------+-----------------------------+---------------------------------+
//! ```
//! `payload` is one [`wire::SignedRecord`] as JSON (canonical record bytes, hash, signature).
//! A segment is a plain concatenation of frames, no header. A frame is never split across
//! segments; a new segment starts when the current one would exceed [`MAX_SEGMENT_BYTES`].
//!
//! # Who writes and deletes what
//! - The [`Journal`] (one per station process, owned by the scheduler) is the only writer of
//!   segments; it creates segments, appends frames, truncates a torn tail at open, and deletes
//!   whole segments only through [`Journal::prune`] (every record acknowledged and old enough).
//! - The shipper reads segments through its own [`JournalReader`] (separate file handles, no lock):
//!   an incomplete or bad frame at the very end of the last segment is "not written yet" to a
//!   reader, never an error. The shipper is the only writer of `acked` (atomically: temp file,
//!   fsync, rename, fsync directory — see [`AckLedger`]) and of `rejected.jsonl` ([`SetAside`]).
//!
//! # What a crash (kill -9, power loss) can lose — exactly
//! - A record whose `append` had not returned: its frame may be absent, or present in part (torn).
//!   At the next open the torn bytes are detected (short frame, or bad CRC on the last frame), cut
//!   off, copied to `torn-*.bin`, and reported in [`Recovery`]. Nothing that `append` confirmed is
//!   lost, provided the disk honours `fdatasync`.
//! - The ledger can only lag: a crash after the collector stored a batch but before `acked` was
//!   renamed makes the shipper send that batch again; the collector acknowledges it as
//!   duplicates (idempotent by station + seq). So a crash costs a resend, never a loss or a double.
//! - The airing under way at the crash has no record yet; the station daemon records it as
//!   `partial` on the next start from its in-flight marker in `state.bin` (see `station::state`).
//!
//! Corruption anywhere but the tail (a bad frame followed by more bytes, a chain break, a gap in
//! sequence numbers) is not repairable silently: [`Journal::open`] fails with the segment and
//! byte offset, and the operator decides.

use crate::wire::{self, AiringRecord, Outcome, SignedRecord};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest segment before rollover: 8 MiB holds ~5,000 records (about a year of a ward's airings).
/// Tiny under `cfg(test)` so rollover really happens in tests.
#[cfg(not(test))]
pub const MAX_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
#[cfg(test)]
pub const MAX_SEGMENT_BYTES: u64 = 4 * 1024;
/// Largest frame payload accepted; a record is ~1–2 KiB, so anything near this is corruption.
pub const MAX_FRAME_BYTES: u32 = 4 * 1024 * 1024;
/// Frame header: length + CRC32.
pub const FRAME_HEADER_BYTES: u64 = 8;
/// Name of the journal directory inside a station's data directory.
pub const JOURNAL_DIR: &str = "journal";
/// File name of the acknowledged-position ledger.
pub const ACKED_FILE: &str = "acked";
/// File name of the set-aside file for refused records.
pub const REJECTED_FILE: &str = "rejected.jsonl";
const SEGMENT_EXT: &str = "seg";

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "journal corrupt in {segment} at byte {offset}: {what}. Records before it are intact; \
         move the segment aside for inspection and restore it from backup (nothing was changed)"
    )]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("record cannot be signed: {0}")]
    Wire(#[from] wire::WireError),
    #[error("record is {len} bytes, more than the {MAX_FRAME_BYTES}-byte frame limit")]
    TooLarge { len: usize },
    #[error("journal of station {found} opened as station {expected}")]
    WrongStation { expected: String, found: String },
    #[error("{path}: ledger is not a sequence number: {text:?}")]
    BadLedger { path: PathBuf, text: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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

#[derive(Debug, Clone)]
struct SegmentInfo {
    path: PathBuf,
    last_seq: Option<u64>,
    last_recorded_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A frame read from a segment.
struct Frame {
    offset: u64,
    end: u64,
    payload: Vec<u8>,
}

/// Why reading a frame stopped.
enum FrameStop {
    /// Clean end of file at a frame boundary.
    End,
    /// Bytes at `offset` are not a valid frame.
    Bad {
        offset: u64,
        reason: String,
        extends_to_eof: bool,
    },
}

/// Read the next frame from `buf` at `offset`.
fn next_frame(buf: &[u8], offset: u64) -> Result<Frame, FrameStop> {
    let total = buf.len() as u64;
    if offset == total {
        return Err(FrameStop::End);
    }
    let rest = total - offset;
    if rest < FRAME_HEADER_BYTES {
        return Err(FrameStop::Bad {
            offset,
            reason: format!("{rest} bytes, shorter than a frame header"),
            extends_to_eof: true,
        });
    }
    let o = offset as usize;
    let mut len_b = [0u8; 4];
    len_b.copy_from_slice(&buf[o..o + 4]);
    let mut crc_b = [0u8; 4];
    crc_b.copy_from_slice(&buf[o + 4..o + 8]);
    let len = u32::from_le_bytes(len_b);
    let crc = u32::from_le_bytes(crc_b);
    if len > MAX_FRAME_BYTES {
        return Err(FrameStop::Bad {
            offset,
            reason: format!("frame length {len} exceeds the {MAX_FRAME_BYTES}-byte limit"),
            // A garbage length: nothing after it can be framed, treat like a tail.
            extends_to_eof: true,
        });
    }
    let end = offset + FRAME_HEADER_BYTES + u64::from(len);
    if end > total {
        return Err(FrameStop::Bad {
            offset,
            reason: format!(
                "frame of {len} bytes but only {} follow",
                rest - FRAME_HEADER_BYTES
            ),
            extends_to_eof: true,
        });
    }
    let payload = &buf[o + 8..end as usize];
    let mut h = crc32fast::Hasher::new();
    h.update(&len_b);
    h.update(payload);
    if h.finalize() != crc {
        return Err(FrameStop::Bad {
            offset,
            reason: "checksum mismatch".into(),
            extends_to_eof: end == total,
        });
    }
    Ok(Frame {
        offset,
        end,
        payload: payload.to_vec(),
    })
}

/// Whether a valid frame starts anywhere after `offset` (a CRC match at a random position is a
/// 1-in-2^32 event, so a hit means intact data follows the bad bytes).
fn valid_frame_after(buf: &[u8], offset: u64) -> bool {
    (offset + 1..buf.len() as u64).any(|o| next_frame(buf, o).is_ok())
}

/// Encode one frame.
fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, JournalError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME_BYTES)
        .ok_or(JournalError::TooLarge { len: payload.len() })?;
    let len_b = len.to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len_b);
    h.update(payload);
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&len_b);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXT}")
}

/// Segments in `dir`, ordered by first seq.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXT) {
            continue;
        }
        if let Some(first) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// The journal directory inside a data directory.
pub fn journal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(JOURNAL_DIR)
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
        let segs = list_segments(dir)?;
        let mut recovery = Recovery::default();
        let mut last_seq = 0u64;
        let mut last_hash = wire::GENESIS_HASH.to_string();
        let mut occurrences = HashMap::new();
        let mut infos = Vec::new();
        let n = segs.len();
        let mut current_len = 0u64;
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
                match next_frame(&buf, offset) {
                    Ok(frame) => {
                        let signed: SignedRecord =
                            serde_json::from_slice(&frame.payload).map_err(|e| {
                                corrupt(frame.offset, format!("frame is not a signed record: {e}"))
                            })?;
                        let computed = wire::sha256_hex(signed.bytes().as_bytes());
                        if computed != signed.hash {
                            return Err(corrupt(
                                frame.offset,
                                "record hash mismatch (record altered)".into(),
                            ));
                        }
                        let rec = signed
                            .parse()
                            .map_err(|e| corrupt(frame.offset, e.to_string()))?;
                        if rec.station != station {
                            return Err(JournalError::WrongStation {
                                expected: station.to_string(),
                                found: rec.station,
                            });
                        }
                        let expected_seq = if last_seq == 0 {
                            *first_seq
                        } else {
                            last_seq + 1
                        };
                        if rec.seq != expected_seq {
                            return Err(corrupt(
                                frame.offset,
                                format!("sequence {} where {expected_seq} was expected", rec.seq),
                            ));
                        }
                        if last_seq != 0 && rec.prev_hash != last_hash {
                            return Err(corrupt(
                                frame.offset,
                                format!(
                                    "chain broken: seq {} does not link to seq {last_seq}",
                                    rec.seq
                                ),
                            ));
                        }
                        last_seq = rec.seq;
                        last_hash = signed.hash.clone();
                        if let Some(occ) = &rec.occurrence {
                            occurrences.insert(occ.clone(), (rec.seq, rec.outcome));
                        }
                        info.last_seq = Some(rec.seq);
                        info.last_recorded_at = Some(rec.recorded_at);
                        recovery.records += 1;
                        offset = frame.end;
                    }
                    Err(FrameStop::End) => break,
                    Err(FrameStop::Bad {
                        offset: bad,
                        reason,
                        extends_to_eof,
                    }) => {
                        // A tail is only a tail if no valid frame follows it: a garbage length in
                        // the middle must not make us cut intact records after it.
                        if !(is_last && extends_to_eof) || valid_frame_after(&buf, bad) {
                            return Err(corrupt(bad, reason));
                        }
                        // Torn tail: keep the bytes, then cut them off.
                        let kept_in = dir.join(format!(
                            "torn-{}-{bad}.bin",
                            path.file_stem()
                                .and_then(|s| s.to_str())
                                .unwrap_or("segment")
                        ));
                        fs::write(&kept_in, &buf[bad as usize..]).map_err(io_err(&kept_in))?;
                        let f = OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(io_err(path))?;
                        f.set_len(bad).map_err(io_err(path))?;
                        f.sync_all().map_err(io_err(path))?;
                        let cut = buf.len() as u64 - bad;
                        tracing::warn!(
                            segment = %path.display(),
                            offset = bad,
                            cut_bytes = cut,
                            kept_in = %kept_in.display(),
                            "journal: torn tail cut off ({reason})"
                        );
                        recovery.torn_tail = Some(TornTail {
                            segment: path.clone(),
                            offset: bad,
                            cut_bytes: cut,
                            reason,
                            kept_in,
                        });
                        offset = bad;
                        break;
                    }
                }
            }
            if info.last_seq.is_none() && !is_last {
                return Err(corrupt(0, "empty segment before the last one".into()));
            }
            if is_last {
                current_len = offset;
            }
            infos.push(info);
        }
        if infos.is_empty() {
            let path = dir.join(segment_name(1));
            File::create(&path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            infos.push(SegmentInfo {
                path,
                last_seq: None,
                last_recorded_at: None,
            });
        }
        let segment = infos.last().map(|i| i.path.clone()).unwrap_or_default();
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
                segment_len: current_len,
                last_seq,
                last_hash,
                occurrences,
                segments: infos,
            },
            recovery,
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
        let frame = encode_frame(&payload)?;
        if self.segment_len > 0 && self.segment_len + frame.len() as u64 > MAX_SEGMENT_BYTES {
            self.roll(rec.seq)?;
        }
        let seg = self.segment.clone();
        if let Err(e) = self
            .file
            .write_all(&frame)
            .and_then(|_| self.file.sync_data())
        {
            // Put the segment back to its last good length so the next append starts clean.
            let _ = self.file.set_len(self.segment_len);
            return Err(io_err(&seg)(e));
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
                match next_frame(&buf, pos) {
                    Ok(frame) => {
                        let signed: SignedRecord =
                            serde_json::from_slice(&frame.payload).map_err(|e| {
                                JournalError::Corrupt {
                                    segment: path.clone(),
                                    offset: offset + frame.offset,
                                    what: format!("frame is not a signed record: {e}"),
                                }
                            })?;
                        let seq = signed
                            .parse()
                            .map_err(|e| JournalError::Corrupt {
                                segment: path.clone(),
                                offset: offset + frame.offset,
                                what: e.to_string(),
                            })?
                            .seq;
                        pos = frame.end;
                        if seq >= want {
                            out.push(signed);
                            self.cursor = Some((*first, path.clone(), offset + pos, seq + 1));
                        }
                    }
                    Err(FrameStop::End) => {
                        ended_cleanly = true;
                        break;
                    }
                    Err(FrameStop::Bad {
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

/// Bytes free to an unprivileged writer on the file system holding `path` (`statvfs`: available
/// blocks × fragment size). `None` when it cannot be read.
pub fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: `statvfs` is plain data filled by the call; `c` is a valid NUL-terminated path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        if r != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
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

/// The acknowledged-position ledger: the highest seq the collector has confirmed.
#[derive(Debug, Clone)]
pub struct AckLedger {
    path: PathBuf,
}

impl AckLedger {
    /// The ledger in journal directory `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(ACKED_FILE),
        }
    }

    /// The stored position (0 when none yet).
    pub fn load(&self) -> Result<u64, JournalError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().map_err(|_| JournalError::BadLedger {
                path: self.path.clone(),
                text,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }

    /// Store `seq` atomically (temp + fsync + rename + directory fsync).
    pub fn store(&self, seq: u64) -> Result<(), JournalError> {
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(format!("{seq}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
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
    use super::*;
    use crate::wire::{AiredItem, Source};
    use chrono::{FixedOffset, TimeZone, Utc};

    const STATION: &str = "phuong-test";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    pub(crate) fn record(n: u64) -> AiringRecord {
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        let at = tz.with_ymd_and_hms(2019, 3, 4, 5, 30, 0).unwrap()
            + chrono::Duration::minutes(n as i64);
        AiringRecord {
            v: 0,
            station: String::new(),
            seq: 0,
            occurrence: Some(format!("morning@{n}")),
            slot: Some("morning".into()),
            program: Some("cchc".into()),
            category: "cchc".into(),
            source: Source::File,
            scheduled_at: at,
            actual_start: Some(at),
            end: Some(at + chrono::Duration::seconds(60)),
            planned_secs: 60.0,
            aired_secs: 60.0,
            start_offset_ms: Some(3),
            outcome: Outcome::Aired,
            reason: None,
            reason_code: None,
            items: vec![AiredItem {
                path: "cchc/2019-03.ogg".into(),
                sha256: wire::sha256_hex(b"a"),
                duration_secs: 60.0,
                aired_secs: 60.0,
            }],
            evidence: None,
            relay: None,
            recorded_at: Utc.with_ymd_and_hms(2019, 3, 3, 22, 40, 0).unwrap(),
            prev_hash: String::new(),
            schedule_version: None,
            bulletin: None,
        }
    }

    fn open(dir: &Path) -> (Journal, Recovery) {
        Journal::open(dir, STATION, key()).unwrap()
    }

    fn write_n(dir: &Path, n: u64) -> Journal {
        let (mut j, _) = open(dir);
        for i in 0..n {
            j.append(record(i)).unwrap();
        }
        j
    }

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
    }

    #[test]
    fn ledger_and_set_aside_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let l = AckLedger::new(tmp.path());
        assert_eq!(l.load().unwrap(), 0);
        l.store(42).unwrap();
        assert_eq!(l.load().unwrap(), 42);
        fs::write(tmp.path().join(ACKED_FILE), "x").unwrap();
        assert!(matches!(l.load(), Err(JournalError::BadLedger { .. })));
        let mut j = write_n(tmp.path(), 1);
        let s = j.append(record(1)).unwrap();
        let sa = SetAside::new(tmp.path());
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
