//! The station's durable, append-only, checksummed as-run journal.
//!
//! **Invariant:** a record is "logged" only once [`Journal::append`] has returned `Ok` (its frame
//! written and `fdatasync`'ed); the journal alone assigns sequence numbers (from 1, no gaps) and
//! `prev_hash` and signs records, so the chain on disk is exactly the chain the collector
//! receives. Nothing is ever silently dropped: a torn or corrupt tail is cut off *and reported*,
//! with the cut bytes kept aside.
//!
//! Split by role, as vector's disk buffer is; each file's doc states its own invariant:
//! - [`frame`] — one record on disk: length, CRC32, payload (no I/O);
//! - [`writer`] — [`Journal`]: open, append + fsync, segment rollover, prune;
//! - [`reader`] — replay at open with recovery of a torn tail, and the shipper's
//!   [`JournalReader`];
//! - [`ledger`] — [`AckLedger`], the position the collector acknowledged;
//! - [`set_aside`] — quarantine: torn bytes and records the collector refused ([`SetAside`]).
//!
//! # Files (all under the station's data directory)
//! ```text
//! journal/00000000000000000001.seg   segments, named by the seq of their first record
//! journal/00000000000000004711.seg   (the last segment is the one being appended to)
//! journal/acked                      ledger: highest seq the collector acknowledged (decimal + \n)
//! journal/rejected.jsonl             records the collector refused as invalid, one JSON per line
//! journal/torn-<segment>-<offset>.bin  bytes cut off a torn/corrupt tail at open (kept, never read)
//! ```
//! A segment is a plain concatenation of frames (see [`frame`]). A frame is never split across
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

pub mod frame;
pub mod ledger;
pub mod reader;
pub mod set_aside;
pub mod writer;

pub use frame::{FRAME_HEADER_BYTES, MAX_FRAME_BYTES};
pub use ledger::{ACKED_FILE, AckLedger};
pub use reader::{JournalReader, Recovery, TornTail, read_all, verify_chain};
pub use set_aside::{REJECTED_FILE, SetAside, SetAsideEntry};
pub use writer::Journal;

use crate::wire;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Largest segment before rollover: 8 MiB holds ~5,000 records (about a year of a ward's airings).
/// Tiny under `cfg(test)` so rollover really happens in tests.
#[cfg(not(test))]
pub const MAX_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
#[cfg(test)]
pub const MAX_SEGMENT_BYTES: u64 = 4 * 1024;
/// Name of the journal directory inside a station's data directory.
pub const JOURNAL_DIR: &str = "journal";
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

/// What the writer knows of one segment: path, last seq and last `recorded_at` (`None` while
/// it holds no record).
#[derive(Debug, Clone)]
struct SegmentInfo {
    path: PathBuf,
    last_seq: Option<u64>,
    last_recorded_at: Option<chrono::DateTime<chrono::Utc>>,
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

/// What the role files' tests share: a key, a record, a journal with `n` records.
#[cfg(test)]
mod testutil {
    use super::{Journal, Recovery};
    use crate::wire::{self, AiredItem, AiringRecord, Outcome, Source};
    use chrono::{FixedOffset, TimeZone, Utc};
    use ed25519_dalek::SigningKey;
    use std::path::Path;

    pub const STATION: &str = "phuong-test";

    pub fn key() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    pub fn record(n: u64) -> AiringRecord {
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
        }
    }

    pub fn open(dir: &Path) -> (Journal, Recovery) {
        Journal::open(dir, STATION, key()).unwrap()
    }

    pub fn write_n(dir: &Path, n: u64) -> Journal {
        let (mut j, _) = open(dir);
        for i in 0..n {
            j.append(record(i)).unwrap();
        }
        j
    }
}
