//! Audio facts stored once: what decoding a file found (duration, sample rate, channels;
//! loudness when measured), keyed by the SHA-256 of its content, in the collector's database
//! (tables `audio_facts` and `audio_files`) and in memory.
//!
//! **Invariant:** a file is hashed only when its (path, size, mtime) is not the one stored with
//! its last hash, and decoded only when that hash has no stored facts; [`AudioFactsStore::known`]
//! (what plans built on a request path use) never reads a file's content — it only `stat`s it.
//! Facts stored by another writer after this store was opened (the content library's upload)
//! are read from the database before anything is decoded.
//! [`AudioFactsStore::fill`] (hash, maybe decode) runs at start-up and on the plan refresher's
//! thread, never on a request.

use chrono::Utc;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use super::store::{Store, StoreError, StoredAudioFacts, StoredAudioFile};
use crate::media::{MediaError, probe, sha256_file};
use crate::schedule::AudioFacts;

/// What identifies a file's content without reading it: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatKey {
    pub size: u64,
    pub mtime_ns: i64,
}

impl StatKey {
    /// The stat key of `path`; `None` when it is not a readable regular file.
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        if !m.is_file() {
            return None;
        }
        Some(Self {
            size: m.len(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
        })
    }
}

/// What is known of one path without reading it.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// No such file.
    Missing,
    /// Its facts (stored for the content it held at this stat key).
    Facts(AudioFacts),
    /// Changed or never seen: [`AudioFactsStore::fill`] must hash (and maybe decode) it first.
    Unknown,
}

#[derive(Default)]
struct Memory {
    by_path: HashMap<PathBuf, (StatKey, String)>,
    by_sha: HashMap<String, AudioFacts>,
}

/// The facts store: memory in front of the database.
pub struct AudioFactsStore {
    db: Mutex<Store>,
    mem: RwLock<Memory>,
    decodes: AtomicU64,
    hashes: AtomicU64,
}

fn to_facts(f: &StoredAudioFacts) -> AudioFacts {
    match (&f.undecodable, f.duration_secs) {
        (None, Some(d)) => AudioFacts::Playable { duration_secs: d },
        (Some(why), _) => AudioFacts::Undecodable(why.clone()),
        (None, None) => AudioFacts::Undecodable("no duration stored".into()),
    }
}

impl AudioFactsStore {
    /// Open on the collector's database (already migrated) and read every stored fact into
    /// memory.
    pub fn open(db: &Path) -> Result<Self, StoreError> {
        let store = Store::open(db)?;
        let mut mem = Memory::default();
        for f in store.audio_facts()? {
            mem.by_sha.insert(f.sha256.clone(), to_facts(&f));
        }
        for f in store.audio_files()? {
            mem.by_path.insert(
                PathBuf::from(&f.path),
                (
                    StatKey {
                        size: f.size,
                        mtime_ns: f.mtime_ns,
                    },
                    f.sha256,
                ),
            );
        }
        Ok(Self {
            db: Mutex::new(store),
            mem: RwLock::new(mem),
            decodes: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
        })
    }

    /// Files decoded by this store so far (tests: a request must not move it).
    pub fn decodes(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    /// Files hashed by this store so far.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    fn mem(&self) -> std::sync::RwLockReadGuard<'_, Memory> {
        self.mem.read().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of `path` now, from its stat key alone (no content read).
    pub fn known(&self, path: &Path) -> Known {
        let Some(key) = StatKey::of(path) else {
            return Known::Missing;
        };
        self.known_at(path, key)
    }

    /// [`Self::known`] for a stat key already taken.
    pub fn known_at(&self, path: &Path, key: StatKey) -> Known {
        let mem = self.mem();
        match mem.by_path.get(path) {
            Some((k, sha)) if *k == key => match mem.by_sha.get(sha) {
                Some(f) => Known::Facts(f.clone()),
                None => Known::Unknown,
            },
            _ => Known::Unknown,
        }
    }

    /// The facts of `path`, hashing it when its stat key changed and decoding it when that
    /// content was never probed; stored before returning. `None`: no such file. Slow (a whole
    /// decode of a new file): never call it on a request path.
    pub fn fill(&self, path: &Path) -> Option<AudioFacts> {
        let key = StatKey::of(path)?;
        if let Known::Facts(f) = self.known_at(path, key) {
            return Some(f);
        }
        let known_sha = self
            .mem()
            .by_path
            .get(path)
            .filter(|(k, _)| *k == key)
            .map(|(_, sha)| sha.clone());
        let sha = match known_sha {
            Some(s) => s,
            None => {
                self.hashes.fetch_add(1, Ordering::Relaxed);
                match sha256_file(path) {
                    Ok(s) => s,
                    // Unreadable now: say why, remember nothing (it may be readable later).
                    Err(e) => return Some(AudioFacts::Undecodable(e.to_string())),
                }
            }
        };
        let mut facts = self.mem().by_sha.get(&sha).cloned();
        if facts.is_none() {
            // Stored by another writer since this store was opened (the content library
            // measures every upload once): read, not decoded again.
            let stored = {
                let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
                db.audio_facts_of(&sha).ok().flatten()
            };
            if let Some(s) = stored {
                let f = to_facts(&s);
                self.mem
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .by_sha
                    .insert(sha.clone(), f.clone());
                facts = Some(f);
            }
        }
        let facts = match facts {
            Some(f) => f,
            None => {
                self.decodes.fetch_add(1, Ordering::Relaxed);
                let probed = probe(path);
                let stored = StoredAudioFacts {
                    sha256: sha.clone(),
                    sample_rate: probed.as_ref().ok().map(|m| m.sample_rate),
                    channels: probed.as_ref().ok().map(|m| m.channels),
                    frames: probed.as_ref().ok().map(|m| m.frames),
                    duration_secs: probed.as_ref().ok().map(|m| m.duration_secs),
                    undecodable: match &probed {
                        Ok(_) => None,
                        Err(MediaError::Undecodable { reason, .. }) => Some(reason.clone()),
                        // Could not read it now: say why, store nothing.
                        Err(MediaError::Io { source, .. }) => {
                            return Some(AudioFacts::Undecodable(source.to_string()));
                        }
                        Err(e @ MediaError::Truncated { .. }) => Some(e.to_string()),
                    },
                    loudness_lufs: None,
                };
                self.persist_facts(&stored);
                let f = to_facts(&stored);
                self.mem
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .by_sha
                    .insert(sha.clone(), f.clone());
                f
            }
        };
        self.persist_file(&StoredAudioFile {
            path: path.to_string_lossy().into_owned(),
            size: key.size,
            mtime_ns: key.mtime_ns,
            sha256: sha.clone(),
        });
        self.mem
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .by_path
            .insert(path.to_path_buf(), (key, sha));
        Some(facts)
    }

    // A failed write only costs a re-hash or re-decode at the next start: log it, go on.
    fn persist_facts(&self, f: &StoredAudioFacts) {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = db.put_audio_facts(f, Utc::now()) {
            tracing::warn!(error = %e, sha256 = %f.sha256, "storing audio facts failed");
        }
    }

    fn persist_file(&self, f: &StoredAudioFile) {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = db.put_audio_file(f) {
            tracing::warn!(error = %e, path = %f.path, "storing an audio file's hash failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg")
    }

    #[test]
    fn facts_are_decoded_once_per_content_and_hashed_once_per_stat() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::collector::db::testing::test_db(dir.path(), "c.db");
        drop(Store::open(&db).unwrap());
        let a = dir.path().join("a.ogg");
        let b = dir.path().join("b.ogg");
        std::fs::copy(tone(), &a).unwrap();
        std::fs::copy(tone(), &b).unwrap();
        let facts = AudioFactsStore::open(&db).unwrap();
        assert_eq!(facts.known(&a), Known::Unknown);
        let fa = facts.fill(&a).unwrap();
        assert!(matches!(fa, AudioFacts::Playable { .. }));
        // Same content under another path: hashed, not decoded.
        assert_eq!(facts.fill(&b).unwrap(), fa);
        assert_eq!((facts.decodes(), facts.hashes()), (1, 2));
        assert_eq!(facts.known(&a), Known::Facts(fa.clone()));
        assert_eq!(facts.known(&dir.path().join("none.ogg")), Known::Missing);
        // A warm start reads everything back: neither hashed nor decoded again.
        drop(facts);
        let warm = AudioFactsStore::open(&db).unwrap();
        assert_eq!(warm.known(&a), Known::Facts(fa.clone()));
        assert_eq!(warm.fill(&b).unwrap(), fa);
        assert_eq!((warm.decodes(), warm.hashes()), (0, 0));
        // Changed content: the stat key moves, so it is unknown until filled again.
        std::fs::write(&a, b"not audio at all").unwrap();
        assert_eq!(warm.known(&a), Known::Unknown);
        assert!(matches!(warm.fill(&a).unwrap(), AudioFacts::Undecodable(_)));
        assert_eq!((warm.decodes(), warm.hashes()), (1, 1));
    }
}
