//! The station's small durable state, `state.bin`: the airing on air (the in-flight marker),
//! the records the journal could not take yet (held), and the last time the daemon was alive.
//!
//! **Invariant:** the file is created once at its full size ([`STATE_BYTES`], zeros written and
//! synced), and from then on only ever overwritten in place, so writing it needs no new disk
//! block: it keeps working on a full disk (on file systems that overwrite in place — ext4, xfs,
//! f2fs, tmpfs; not on copy-on-write ones such as btrfs or ZFS). A write goes to the slot the last
//! good state is *not* in, with a generation number and a CRC, and is `fdatasync`'ed before it
//! counts: a crash in the middle of a write leaves the previous state readable, never a mix.
//!
//! # Layout (little-endian)
//! ```text
//! slot 0 at byte 0, slot 1 at byte STATE_BYTES/2; each slot:
//! +-------------+----------------+----------+---------------------------------+-----------+
//! | magic (8 B) | generation u64 | len u32  | crc u32 = crc32(gen ‖ len ‖ payload) | payload |
//! +-------------+----------------+----------+---------------------------------+-----------+
//! ```
//! `payload` is [`State`] as JSON. Reading takes the valid slot with the higher generation.
//!
//! Whoever writes holds the [`Durable`]'s lock: the daemon (held records, alive mark, the end
//! of an airing) and the player's start gate (the marker, right before the first sample).

use crate::wire::{AiredItem, AiringRecord, Outcome, Source};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// File name in the station's data directory.
pub const STATE_FILE: &str = "state.bin";
/// Size of the file: two slots of 128 KiB. A held record is ~1 KiB, so a slot holds about a
/// hundred (days of airings of a ward) besides the marker.
pub const STATE_BYTES: u64 = 256 * 1024;
const SLOT_BYTES: u64 = STATE_BYTES / 2;
const MAGIC: &[u8; 8] = b"LOASTAT1";
const HEADER_BYTES: usize = 8 + 8 + 4 + 4;
/// Room kept free in a slot for the in-flight marker when held records fill it.
const MARKER_ROOM: usize = 8 * 1024;

/// Errors of the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: the state ({len} bytes) does not fit in a {SLOT_BYTES}-byte slot ({held} held records)"
    )]
    TooLarge {
        path: PathBuf,
        len: usize,
        held: usize,
    },
}

/// The marker of the airing on air: written only once its first sample is about to go out
/// (see [`Durable::gate`]), so a marker always means "it may have been heard".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inflight {
    pub key: String,
    pub slot: String,
    pub program: Option<String>,
    pub category: String,
    pub source: Source,
    pub scheduled_at: DateTime<FixedOffset>,
    pub planned_secs: f64,
    pub items: Vec<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub aired_at_least_secs: f64,
    /// A bulletin's airing: the record after a crash names it (and has no slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulletin: Option<crate::wire::BulletinRef>,
}

impl Inflight {
    /// The record for this airing after the station stopped under it (crash or power loss):
    /// `partial` once the first sample went out, else `failed`.
    pub fn crash_record(&self, now: DateTime<Utc>) -> AiringRecord {
        let (outcome, code, reason) = match self.started_at {
            Some(_) => (
                Outcome::Partial,
                crate::reason::ReasonCode::PartialCrash,
                format!(
                    "station stopped during the airing (crash or power loss); at least {:.0} s aired",
                    self.aired_at_least_secs
                ),
            ),
            None => (
                Outcome::Failed,
                crate::reason::ReasonCode::FailedCrash,
                "station stopped before the first sample (crash or power loss)".to_string(),
            ),
        };
        let at = self.scheduled_at;
        AiringRecord {
            v: 0,
            station: String::new(),
            seq: 0,
            occurrence: Some(self.key.clone()),
            slot: self.bulletin.is_none().then(|| self.slot.clone()),
            program: self.program.clone(),
            category: self.category.clone(),
            source: self.source,
            scheduled_at: at,
            actual_start: self.started_at.map(|t| t.with_timezone(at.offset())),
            end: None,
            planned_secs: self.planned_secs,
            aired_secs: self.aired_at_least_secs,
            start_offset_ms: self
                .started_at
                .map(|t| (t - at.with_timezone(&Utc)).num_milliseconds()),
            outcome,
            reason_code: Some(code),
            reason: Some(reason),
            items: self
                .items
                .iter()
                .map(|p| AiredItem {
                    path: p.clone(),
                    sha256: String::new(),
                    duration_secs: 0.0,
                    aired_secs: 0.0,
                })
                .collect(),
            evidence: None,
            relay: None,
            recorded_at: now,
            prev_hash: String::new(),
            schedule_version: None,
            bulletin: self.bulletin.clone(),
        }
    }
}

/// What `state.bin` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Last wall time the daemon was known running.
    pub alive: Option<DateTime<Utc>>,
    /// The airing whose first sample went (or was about to go) out, until its record is taken.
    pub inflight: Option<Inflight>,
    /// Records not yet in the journal (it could not be written), oldest first.
    pub held: Vec<AiringRecord>,
    /// Scheduled instant of the oldest held record that did not fit (those after it are in
    /// memory only): a restart cannot tell what those occurrences were.
    #[serde(default)]
    pub unkept_since: Option<DateTime<Utc>>,
}

/// The preallocated two-slot file.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    file: Option<File>,
    generation: u64,
}

fn crc(generation: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&generation.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// The state in `slot`, if it is valid: (generation, state).
fn read_slot(buf: &[u8]) -> Option<(u64, State)> {
    if buf.len() < HEADER_BYTES || &buf[..8] != MAGIC {
        return None;
    }
    let generation = u64::from_le_bytes(buf[8..16].try_into().ok()?);
    let len = u32::from_le_bytes(buf[16..20].try_into().ok()?) as usize;
    let stated = u32::from_le_bytes(buf[20..24].try_into().ok()?);
    let payload = buf.get(HEADER_BYTES..HEADER_BYTES + len)?;
    if crc(generation, payload) != stated {
        return None;
    }
    Some((generation, serde_json::from_slice(payload).ok()?))
}

impl StateFile {
    /// Open `dir/state.bin`, creating it at full size if it is missing or short; returns the
    /// newest valid state in it (`None`: none written yet) or why it is unreadable (logged). A
    /// file that cannot be created (disk already full) is retried at each write.
    pub fn open(dir: &Path) -> (Self, Result<Option<State>, String>) {
        let path = dir.join(STATE_FILE);
        let mut me = Self {
            path,
            file: None,
            generation: 0,
        };
        let mut found = None;
        let mut unreadable = None;
        if let Ok(mut f) = File::open(&me.path) {
            let mut buf = Vec::new();
            match f.read_to_end(&mut buf) {
                Ok(_) => {
                    let slots = [
                        read_slot(&buf[..buf.len().min(SLOT_BYTES as usize)]),
                        buf.get(SLOT_BYTES as usize..).and_then(read_slot),
                    ];
                    found = slots.into_iter().flatten().max_by_key(|(g, _)| *g);
                    if found.is_none() && buf.iter().any(|b| *b != 0) {
                        unreadable = Some(format!("{}: neither slot is valid", me.path.display()));
                    }
                }
                Err(e) => unreadable = Some(format!("{}: {e}", me.path.display())),
            }
            if let Some(why) = &unreadable {
                tracing::error!(
                    "state file unreadable ({why}); starting without it: the previous run's \
                     in-flight airing and held records, if any, are not known"
                );
            }
        }
        if let Some((g, _)) = &found {
            me.generation = *g;
        }
        if let Err(e) = me.ensure_file() {
            tracing::error!(
                "{e}: the state file cannot be created; airings will not start until it can \
                 (free disk space)"
            );
        }
        match unreadable {
            Some(why) => (me, Err(why)),
            None => (me, Ok(found.map(|(_, s)| s))),
        }
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> StateError + '_ {
        move |source| StateError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The file open at full size; created (zeros written, synced, directory synced) if needed.
    fn ensure_file(&mut self) -> Result<&mut File, StateError> {
        if self.file.is_none() {
            let existing = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .ok()
                .filter(|f| f.metadata().is_ok_and(|m| m.len() == STATE_BYTES));
            let f = match existing {
                Some(f) => f,
                None => self.create().map_err(self.io())?,
            };
            self.file = Some(f);
        }
        Ok(self.file.as_mut().expect("just set"))
    }

    /// Create the file at full size under a temporary name, keeping any slot that is valid in
    /// an existing (short) file, then rename it into place.
    fn create(&self) -> std::io::Result<File> {
        let tmp = self.path.with_extension("bin.tmp");
        let mut bytes = vec![0u8; STATE_BYTES as usize];
        if let Ok(old) = std::fs::read(&self.path) {
            let n = old.len().min(bytes.len());
            bytes[..n].copy_from_slice(&old[..n]);
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        OpenOptions::new().read(true).write(true).open(&self.path)
    }

    /// Make `state` the durable state: written to the other slot and synced.
    pub fn write(&mut self, state: &State) -> Result<(), StateError> {
        let payload = serde_json::to_vec(state).expect("state serialises");
        if HEADER_BYTES + payload.len() > SLOT_BYTES as usize {
            return Err(StateError::TooLarge {
                path: self.path.clone(),
                len: payload.len(),
                held: state.held.len(),
            });
        }
        let generation = self.generation + 1;
        let mut buf = Vec::with_capacity(HEADER_BYTES + payload.len());
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&generation.to_le_bytes());
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc(generation, &payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        let offset = (generation % 2) * SLOT_BYTES;
        let path = self.path.clone();
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let f = self.ensure_file()?;
        let r = f
            .seek(SeekFrom::Start(offset))
            .and_then(|_| f.write_all(&buf))
            .and_then(|_| f.sync_data());
        if let Err(e) = r {
            // Reopen next time (the file may have been replaced or the handle gone bad).
            self.file = None;
            return Err(io(e));
        }
        self.generation = generation;
        Ok(())
    }
}

/// A start gate refused because the marker could not be made durable.
pub const REFUSED_PREFIX: &str = "not started: the in-flight marker cannot be made durable";

struct Inner {
    file: StateFile,
    state: State,
    /// The airing cued and not yet at its first sample: nothing of it is on disk.
    pending: Option<Inflight>,
    /// How many of the held records the last write made durable (0 after a failed write).
    durable_held: usize,
    /// The held records as the daemon last gave them (`state.held` is the part that fits).
    wanted: Vec<AiringRecord>,
}

/// The state file and the state in memory, shared by the daemon and the player's start gate.
#[derive(Clone)]
pub struct Durable(Arc<Mutex<Inner>>);

impl Durable {
    /// Open (see [`StateFile::open`]); returns the previous run's state too.
    pub fn open(dir: &Path) -> (Self, Result<Option<State>, String>) {
        let (file, found) = StateFile::open(dir);
        let state = State {
            alive: found.as_ref().ok().and_then(|s| s.as_ref()?.alive),
            ..Default::default()
        };
        let me = Self(Arc::new(Mutex::new(Inner {
            file,
            state,
            pending: None,
            durable_held: 0,
            wanted: Vec::new(),
        })));
        (me, found)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// An airing was cued: remember its marker, write nothing yet.
    pub fn cued(&self, m: Inflight) {
        self.with(|i| i.pending = Some(m));
    }

    /// The player is about to send the first sample of `key` (heard at `at`): make its marker
    /// durable. `Err`: it cannot be, and the airing must not start.
    pub fn gate(&self, key: &str, at: DateTime<Utc>) -> Result<(), String> {
        self.with(|i| {
            let Some(mut m) = i.pending.take().filter(|m| m.key == key) else {
                return Err(format!("{REFUSED_PREFIX} (airing {key} was not cued)"));
            };
            m.started_at = Some(at);
            let before = i.state.inflight.replace(m);
            match i.file.write(&i.state) {
                Ok(()) => Ok(()),
                Err(e) => {
                    i.state.inflight = before;
                    Err(format!("{REFUSED_PREFIX} ({e})"))
                }
            }
        })
    }

    /// Progress of the airing on air (at an item start), best effort.
    pub fn progress(&self, key: &str, aired_at_least_secs: f64) {
        self.with(|i| {
            if let Some(m) = i.state.inflight.as_mut().filter(|m| m.key == key) {
                m.aired_at_least_secs = aired_at_least_secs;
                if let Err(e) = i.file.write(&i.state) {
                    tracing::warn!("cannot update the in-flight marker: {e}");
                }
            }
        });
    }

    /// `key` is over (its record is journaled or in `held`), or never reached its first sample:
    /// forget its marker and make `held` the held records, in one write. When they do not all
    /// fit, the oldest that fit (with room left for a marker) are kept durably, and the error
    /// is logged once per change.
    pub fn settle(
        &self,
        key: Option<&str>,
        held: &std::collections::VecDeque<AiringRecord>,
    ) -> Result<(), StateError> {
        self.with(|i| {
            let mut changed = false;
            if let Some(key) = key {
                if i.pending.as_ref().is_some_and(|m| m.key == key) {
                    i.pending = None;
                }
                if i.state.inflight.as_ref().is_some_and(|m| m.key == key) {
                    i.state.inflight = None;
                    changed = true;
                }
            }
            if !i.wanted.iter().eq(held.iter()) {
                i.wanted = held.iter().cloned().collect();
                i.state.held = i.wanted.clone();
                i.state.unkept_since = None;
                let room = SLOT_BYTES as usize - HEADER_BYTES - MARKER_ROOM;
                let len = |s: &State| serde_json::to_vec(s).map_or(usize::MAX, |b| b.len());
                if len(&i.state) > room {
                    while let Some(r) = i.state.held.pop() {
                        i.state.unkept_since = Some(r.scheduled_at.to_utc());
                        if len(&i.state) <= room {
                            break;
                        }
                    }
                    tracing::error!(
                        held = held.len(),
                        kept = i.state.held.len(),
                        "too many held records for the state file: only the oldest are kept \
                         durably until the journal is writable again (free disk space)"
                    );
                }
                changed = true;
            }
            if !changed {
                return Ok(());
            }
            let r = i.file.write(&i.state);
            i.durable_held = if r.is_ok() { i.state.held.len() } else { 0 };
            r
        })
    }

    /// Record that the daemon is alive at `now`.
    pub fn mark_alive(&self, now: DateTime<Utc>) -> Result<(), StateError> {
        self.with(|i| {
            i.state.alive = Some(now);
            let r = i.file.write(&i.state);
            if r.is_ok() {
                i.durable_held = i.state.held.len();
            }
            r
        })
    }

    /// How many of the held records (the oldest) the state file holds now.
    pub fn held_durably(&self) -> usize {
        self.with(|i| i.durable_held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(key: &str) -> Inflight {
        Inflight {
            key: key.into(),
            slot: "s".into(),
            program: None,
            category: "news".into(),
            source: Source::File,
            scheduled_at: Utc::now().fixed_offset(),
            planned_secs: 60.0,
            items: vec!["a.wav".into()],
            started_at: None,
            aired_at_least_secs: 0.0,
            bulletin: None,
        }
    }

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_write_falls_back_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, found) = StateFile::open(dir.path());
        assert_eq!(found, Ok(None));
        let path = dir.path().join(STATE_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), STATE_BYTES);
        let t = Utc::now();
        let s1 = State {
            alive: Some(t),
            ..Default::default()
        };
        f.write(&s1).unwrap();
        let s2 = State {
            alive: Some(t + chrono::Duration::seconds(30)),
            inflight: Some(marker("k")),
            held: vec![],
            unkept_since: None,
        };
        f.write(&s2).unwrap();
        assert_eq!(StateFile::open(dir.path()).1, Ok(Some(s2.clone())));
        // Tear generation 2's slot (slot 0): the previous state is read.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_BYTES + 3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (mut f, found) = StateFile::open(dir.path());
        assert_eq!(found, Ok(Some(s1)));
        // The next write goes after the newest valid generation, into the torn slot.
        f.write(&s2).unwrap();
        assert_eq!(StateFile::open(dir.path()).1, Ok(Some(s2)));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), STATE_BYTES);
    }

    #[test]
    fn the_gate_writes_the_marker_only_for_the_cued_airing() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = Durable::open(dir.path());
        assert!(
            d.gate("k", Utc::now())
                .unwrap_err()
                .starts_with(REFUSED_PREFIX)
        );
        d.cued(marker("k"));
        // Cued only: nothing durable.
        assert_eq!(StateFile::open(dir.path()).1, Ok(None));
        d.gate("k", Utc::now()).unwrap();
        let st = StateFile::open(dir.path()).1.unwrap().unwrap();
        assert!(st.inflight.unwrap().started_at.is_some());
        d.settle(Some("k"), &Default::default()).unwrap();
        assert_eq!(
            StateFile::open(dir.path()).1.unwrap().unwrap().inflight,
            None
        );
    }

    #[test]
    fn too_many_held_records_are_refused_not_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = StateFile::open(dir.path());
        let rec = marker("k").crash_record(Utc::now());
        let st = State {
            held: vec![rec; 1000],
            ..Default::default()
        };
        assert!(matches!(f.write(&st), Err(StateError::TooLarge { .. })));
    }
}
