//! The station registry: which stations may post, with which Ed25519 public key, under which
//! name and administrative area code, and where their schedule file is (for "planned").
//!
//! **Invariant:** a station is known to the collector iff it has an entry here with a key that
//! decodes; the registry file is the only source of keys (the database never holds them), so
//! re-keying a station is editing one line (or `loa register`). Enrolment — `loa register` and
//! the admin API alike — goes through one function, [`enrol`], so both refuse the same entries
//! for the same reasons.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::report::StationDirectory;
use crate::wire::decode_public_key;

/// Errors reading or writing the registry file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read registry {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write registry {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    /// Another writer held the registry's lock file past [`LOCK_WAIT`].
    #[error(
        "registry {path}: another process has been writing it for more than {secs} s (lock file {lock}); try again, and if it persists look for a stuck `loa register` or collector"
    )]
    Busy {
        path: PathBuf,
        lock: PathBuf,
        secs: u64,
    },
    #[error(
        "registry {path}: station `{station}`: {message} (fix the [[station]] entry, or run `loa register`)"
    )]
    Invalid {
        path: PathBuf,
        station: String,
        message: String,
    },
}

/// The file as written: `[[station]]` tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    #[serde(default)]
    pub station: Vec<RawStation>,
}

/// One `[[station]]` entry as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStation {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub area_code: String,
    /// Base64 of the 32-byte Ed25519 public key (`loa keygen` prints it).
    pub public_key: String,
    /// Schedule file (relative paths are relative to the registry file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<PathBuf>,
    /// Audio root for the schedule (defaults to the schedule file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_root: Option<PathBuf>,
}

/// A validated station entry (the report's plain station data: the report reads the registry
/// through [`StationDirectory`]).
pub use crate::report::StationEntry;

/// Every registered station, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    pub stations: BTreeMap<String, StationEntry>,
    /// The file this was read from, if any.
    pub path: Option<PathBuf>,
}

/// True when `id` is a usable station id: 1–64 of `a-z 0-9 - _ .`.
pub fn valid_station_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

impl Registry {
    /// Read and validate a registry file. A missing file is an error (the operator named it).
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawRegistry = toml::from_str(&text).map_err(|e| RegistryError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_raw(raw, Some(path))
    }

    /// The registry the collector serves from `path`: the file read and validated, or — when
    /// there is no file yet (a fresh install, nobody enrolled) — an empty registry that will be
    /// written there by the first enrolment. True when the file existed.
    pub fn load_or_empty(path: &Path) -> Result<(Self, bool), RegistryError> {
        if path.exists() {
            return Ok((Self::load(path)?, true));
        }
        Ok((
            Registry {
                path: Some(path.to_path_buf()),
                ..Registry::default()
            },
            false,
        ))
    }

    /// Validate raw entries; relative schedule paths are resolved against `path`'s directory.
    pub fn from_raw(raw: RawRegistry, path: Option<&Path>) -> Result<Self, RegistryError> {
        let base = path
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let file = path.map(Path::to_path_buf).unwrap_or_default();
        let mut stations = BTreeMap::new();
        for s in raw.station {
            let invalid = |message: String| RegistryError::Invalid {
                path: file.clone(),
                station: s.id.clone(),
                message,
            };
            if !valid_station_id(&s.id) {
                return Err(invalid(
                    "id must be 1-64 characters of a-z, 0-9, '-', '_', '.'".into(),
                ));
            }
            let key = decode_public_key(&s.public_key)
                .map_err(|e| invalid(format!("public_key: {e}")))?;
            let schedule = s.schedule.as_ref().map(|p| base.join(p));
            let audio_root = s.audio_root.as_ref().map(|p| base.join(p));
            let entry = StationEntry {
                id: s.id.clone(),
                name: if s.name.is_empty() {
                    s.id.clone()
                } else {
                    s.name.clone()
                },
                area_code: s.area_code.clone(),
                public_key: s.public_key.trim().to_string(),
                key,
                schedule,
                audio_root,
            };
            if stations.insert(s.id.clone(), entry).is_some() {
                return Err(invalid("listed twice".into()));
            }
        }
        Ok(Self {
            stations,
            path: path.map(Path::to_path_buf),
        })
    }

    /// The entry for `id`.
    pub fn get(&self, id: &str) -> Option<&StationEntry> {
        self.stations.get(id)
    }
}

impl StationDirectory for Registry {
    fn entries(&self) -> Vec<&StationEntry> {
        self.stations.values().collect()
    }

    fn entry(&self, id: &str) -> Option<&StationEntry> {
        self.get(id)
    }
}

/// Add or update one station in the registry file at `path` (created when missing), keeping the
/// other entries. Fields left `None` keep their old value. Returns whether it was new.
///
/// The read, change and write happen under an exclusive lock of `<path>.lock` (`flock`, which
/// Linux's NFS client maps to a POSIX lock on the server), so writers racing on one file — two
/// requests in one collector, two replicas sharing the state directory, `loa register` beside a
/// running collector — each keep the others' stations. The lock is given back when the write
/// ends, or when its process dies.
pub fn upsert_file(path: &Path, update: &RawStation) -> Result<bool, RegistryError> {
    let _lock = lock_registry(path, LOCK_WAIT)?;
    let mut raw: RawRegistry = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| RegistryError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RawRegistry::default(),
        Err(source) => {
            return Err(RegistryError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let is_new;
    match raw.station.iter_mut().find(|s| s.id == update.id) {
        Some(old) => {
            is_new = false;
            old.public_key = update.public_key.clone();
            if !update.name.is_empty() {
                old.name = update.name.clone();
            }
            if !update.area_code.is_empty() {
                old.area_code = update.area_code.clone();
            }
            if update.schedule.is_some() {
                old.schedule = update.schedule.clone();
            }
            if update.audio_root.is_some() {
                old.audio_root = update.audio_root.clone();
            }
        }
        None => {
            is_new = true;
            raw.station.push(update.clone());
        }
    }
    // Validate the whole result before writing, so a bad key never reaches the file.
    Registry::from_raw(raw.clone(), Some(path))?;
    let text = toml::to_string(&raw).map_err(|e| RegistryError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(|source| RegistryError::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| RegistryError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(is_new)
}

/// How long a writer waits for another to finish with the registry file.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Take the registry's lock file (created when missing), waiting at most `wait`; the lock
/// lasts as long as the returned file is open.
fn lock_registry(path: &Path, wait: std::time::Duration) -> Result<std::fs::File, RegistryError> {
    let lock = path.with_extension("toml.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| RegistryError::Write {
            path: lock.clone(),
            source,
        })?;
    let until = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(RegistryError::Busy {
                    path: path.to_path_buf(),
                    lock,
                    secs: wait.as_secs_f64().ceil() as u64,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(RegistryError::Write { path: lock, source });
            }
        }
    }
}

/// Why [`enrol`] refused an entry; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// A schedule or audio path that does not exist or cannot be read.
    #[error("{what} {path}: {source}")]
    Path {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A schedule or audio path outside the directories the collector reads them from.
    #[error(
        "{what} {path} is outside the directories the collector reads schedules and audio from \
         ({roots}); put it there"
    )]
    Outside {
        what: &'static str,
        path: PathBuf,
        roots: String,
    },
    /// A schedule that is not a `.toml` file, or an audio root that is not a directory.
    #[error("{what} {path} is not {expected}")]
    Kind {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    /// The schedule loads, but it is another station's.
    #[error("{path} is the schedule of station `{owner}`, not `{station}`")]
    OtherStation {
        path: PathBuf,
        owner: String,
        station: String,
    },
    /// The schedule does not load with that audio root.
    #[error(
        "{path} does not load with audio root {audio} (fix it, `loa check --audio {audio} {path}`):\n{errors}"
    )]
    Schedule {
        path: PathBuf,
        audio: PathBuf,
        errors: String,
    },
    /// The new registry would not validate (id, key), or the file cannot be read or written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl EnrolError {
    /// Whether the entry itself is at fault (the caller's to fix) rather than the collector's
    /// files (a registry that cannot be read or written).
    pub fn is_invalid_entry(&self) -> bool {
        !matches!(
            self,
            EnrolError::Registry(
                RegistryError::Read { .. }
                    | RegistryError::Write { .. }
                    | RegistryError::Syntax { .. }
            )
        )
    }
}

/// Enrol (add or update) a station in the registry file at `registry`: what `loa register` and
/// `POST /api/v1/admin/stations` both do. Relative schedule and audio paths are read against the
/// registry's directory (as [`Registry::load`] reads them). The schedule must be a `.toml` file
/// and the audio root a directory, both inside the registry's directory or one of `roots` (the
/// collector's schedules and audio directories); the schedule must load with that audio root
/// (default: the schedule's directory) and be `update.id`'s. Paths are stored canonical.
/// Nothing is written unless every check passes. Returns the stored entry and whether it is new.
pub fn enrol(
    registry: &Path,
    update: &RawStation,
    roots: &[PathBuf],
    today: chrono::NaiveDate,
) -> Result<(RawStation, bool), EnrolError> {
    let base = registry
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut allowed: Vec<PathBuf> = std::iter::once(base)
        .chain(roots.iter().map(PathBuf::as_path))
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    allowed.dedup();
    let real = |what: &'static str, p: &Path| -> Result<PathBuf, EnrolError> {
        let full = std::fs::canonicalize(base.join(p)).map_err(|source| EnrolError::Path {
            what,
            path: p.to_path_buf(),
            source,
        })?;
        if !allowed.iter().any(|r| full.starts_with(r)) {
            return Err(EnrolError::Outside {
                what,
                path: full,
                roots: allowed
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(full)
    };
    let schedule = update
        .schedule
        .as_deref()
        .map(|p| real("schedule", p))
        .transpose()?;
    let audio_root = update
        .audio_root
        .as_deref()
        .map(|p| real("audio root", p))
        .transpose()?;
    if let Some(s) = &schedule
        && !(s.is_file() && s.extension().is_some_and(|e| e == "toml"))
    {
        return Err(EnrolError::Kind {
            what: "schedule",
            path: s.clone(),
            expected: "a .toml file",
        });
    }
    if let Some(a) = &audio_root
        && !a.is_dir()
    {
        return Err(EnrolError::Kind {
            what: "audio root",
            path: a.clone(),
            expected: "a directory",
        });
    }
    if let Some(sched) = &schedule {
        // The collector's default audio root is the schedule's directory.
        let audio = audio_root
            .clone()
            .or_else(|| sched.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        match crate::schedule::load(sched, &audio, today) {
            Ok((st, _)) if st.id == update.id => {}
            Ok((st, _)) => {
                return Err(EnrolError::OtherStation {
                    path: sched.clone(),
                    owner: st.id,
                    station: update.id.clone(),
                });
            }
            Err(errors) => {
                return Err(EnrolError::Schedule {
                    path: sched.clone(),
                    audio,
                    errors: errors
                        .0
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                });
            }
        }
    }
    let entry = RawStation {
        id: update.id.clone(),
        name: update.name.clone(),
        area_code: update.area_code.clone(),
        public_key: update.public_key.trim().to_string(),
        schedule,
        audio_root,
    };
    let created = upsert_file(registry, &entry)?;
    Ok((entry, created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_public_key;
    use ed25519_dalek::SigningKey;

    fn pk(n: u8) -> String {
        encode_public_key(&SigningKey::from_bytes(&[n; 32]).verifying_key())
    }

    /// An entry with only its id and the key of seed `key`.
    fn bare(id: &str, key: u8) -> RawStation {
        RawStation {
            id: id.into(),
            name: String::new(),
            area_code: String::new(),
            public_key: pk(key),
            schedule: None,
            audio_root: None,
        }
    }

    #[test]
    fn upsert_adds_then_updates_and_refuses_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        let mut s = RawStation {
            id: "phuong-a".into(),
            name: "Phường A".into(),
            area_code: "21193".into(),
            public_key: pk(1),
            schedule: Some("a.toml".into()),
            audio_root: None,
        };
        assert!(upsert_file(&path, &s).unwrap());
        s.public_key = pk(2);
        s.name = String::new();
        assert!(!upsert_file(&path, &s).unwrap());
        let reg = Registry::load(&path).unwrap();
        let e = reg.get("phuong-a").unwrap();
        assert_eq!(e.name, "Phường A");
        assert_eq!(e.public_key, pk(2));
        assert_eq!(
            e.schedule.as_deref(),
            Some(dir.path().join("a.toml").as_path())
        );
        s.public_key = "nope".into();
        let err = upsert_file(&path, &s).unwrap_err().to_string();
        assert!(err.contains("public_key"), "{err}");
        assert_eq!(
            Registry::load(&path)
                .unwrap()
                .get("phuong-a")
                .unwrap()
                .public_key,
            pk(2)
        );
    }

    /// Writers racing on one registry file — two admins on two replicas, `loa register` beside
    /// a running collector — each add their station; none is lost to another's rewrite.
    #[test]
    fn writers_racing_on_one_registry_file_lose_no_station() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("collector.toml");
        let writers: Vec<_> = (0..16u8)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for round in 0..8u8 {
                        let n = w * 8 + round;
                        let entry = bare(&format!("phuong-{n}"), n);
                        upsert_file(&path, &entry).unwrap_or_else(|e| panic!("{e}"));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap_or_else(|_| panic!("a writer panicked"));
        }
        let r = Registry::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.stations.len(),
            128,
            "{:?}",
            r.stations.keys().collect::<Vec<_>>()
        );
    }

    /// A writer that holds the registry past the wait makes the next one fail clearly, naming
    /// the lock file, and nothing is written; once it is done the next write goes through.
    #[test]
    fn a_writer_holding_the_registry_too_long_is_named_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("collector.toml");
        let held = lock_registry(&path, LOCK_WAIT).unwrap_or_else(|e| panic!("{e}"));
        let t = std::time::Instant::now();
        match lock_registry(&path, std::time::Duration::from_millis(200)) {
            Err(e @ RegistryError::Busy { .. }) => {
                assert!(e.to_string().contains("collector.toml.lock"), "{e}");
                assert!(t.elapsed() >= std::time::Duration::from_millis(200));
            }
            other => panic!("{other:?}"),
        }
        assert!(!path.exists());
        drop(held);
        let entry = bare("phuong-a", 1);
        assert!(upsert_file(&path, &entry).unwrap_or_else(|e| panic!("{e}")));
    }

    #[test]
    fn a_missing_registry_is_empty_a_bad_one_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("collector.toml");
        let (r, existed) = Registry::load_or_empty(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!existed && r.stations.is_empty());
        assert_eq!(r.path.as_deref(), Some(path.as_path()));
        let entry = bare("phuong-a", 1);
        upsert_file(&path, &entry).unwrap_or_else(|e| panic!("{e}"));
        let (r, existed) = Registry::load_or_empty(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(existed);
        assert_eq!(r.stations.keys().collect::<Vec<_>>(), ["phuong-a"]);
        std::fs::write(&path, "[[station]]\nid = 3\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            Registry::load_or_empty(&path),
            Err(RegistryError::Syntax { .. })
        ));
    }

    #[test]
    fn bad_ids_and_duplicates_are_refused() {
        let raw = |id: &str| bare(id, 1);
        assert!(
            Registry::from_raw(
                RawRegistry {
                    station: vec![raw("Bad Id")]
                },
                None
            )
            .is_err()
        );
        assert!(
            Registry::from_raw(
                RawRegistry {
                    station: vec![raw("a"), raw("a")]
                },
                None
            )
            .is_err()
        );
        assert!(
            Registry::from_raw(
                RawRegistry {
                    station: vec![raw("a")]
                },
                None
            )
            .is_ok()
        );
    }

    /// The checks `loa register` and the admin API share: each refusal writes nothing.
    #[test]
    fn enrol_refuses_what_the_collector_cannot_or_must_not_read() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let roots = [repo.join("schedules"), repo.join("audio")];
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap_or_default();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let reg = dir.path().join("collector.toml");
        let entry = |id: &str, schedule: Option<PathBuf>, audio: Option<PathBuf>| RawStation {
            id: id.into(),
            name: String::new(),
            area_code: String::new(),
            public_key: format!(" {} ", pk(4)),
            schedule,
            audio_root: audio,
        };
        let sched = repo.join("schedules/phuong-tran-phu.toml");
        let refused = |e: RawStation| {
            let err = enrol(&reg, &e, &roots, today).err();
            assert!(!reg.exists(), "nothing written for {e:?}");
            err.map(|e| e.to_string()).unwrap_or_default()
        };
        // Another station's schedule.
        let err = refused(entry(
            "xa-nghia-dong",
            Some(sched.clone()),
            Some(roots[1].clone()),
        ));
        assert!(
            err.contains("schedule of station `phuong-tran-phu`, not `xa-nghia-dong`"),
            "{err}"
        );
        // Outside the registry's directory and the roots: an absolute path, and a relative one
        // climbing out of the registry's directory.
        let elsewhere = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let copy = elsewhere.path().join("phuong-tran-phu.toml");
        std::fs::copy(&sched, &copy).unwrap_or_else(|e| panic!("{e}"));
        let err = refused(entry(
            "phuong-tran-phu",
            Some(copy.clone()),
            Some(roots[1].clone()),
        ));
        assert!(err.contains("outside the directories"), "{err}");
        let climb = PathBuf::from("..").join(elsewhere.path().file_name().unwrap_or_default());
        let err = refused(entry(
            "phuong-tran-phu",
            Some(climb.join("phuong-tran-phu.toml")),
            None,
        ));
        assert!(err.contains("outside the directories"), "{err}");
        // Inside the registry's directory, but not a schedule file (a secret key, say).
        std::fs::write(dir.path().join("station.key"), "x").unwrap_or_else(|e| panic!("{e}"));
        let err = refused(entry("phuong-tran-phu", Some("station.key".into()), None));
        assert!(err.contains("not a .toml file"), "{err}");
        // Missing file; audio not found (default root: the schedule's directory).
        let err = refused(entry("w", Some("/nonexistent/w.toml".into()), None));
        assert!(err.contains("/nonexistent/w.toml"), "{err}");
        let err = refused(entry("phuong-tran-phu", Some(sched.clone()), None));
        assert!(
            err.contains("does not load") && err.contains("loa check"),
            "{err}"
        );
        // A bad key.
        let mut bad = entry("phuong-tran-phu", None, None);
        bad.public_key = "KEY".into();
        assert!(refused(bad).contains("public_key"));
        // Fine: stored canonical, key trimmed; then an update.
        let (stored, created) = enrol(
            &reg,
            &entry(
                "phuong-tran-phu",
                Some(sched.clone()),
                Some(roots[1].clone()),
            ),
            &roots,
            today,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        assert_eq!(
            stored.schedule.as_deref(),
            std::fs::canonicalize(&sched).ok().as_deref()
        );
        assert_eq!(stored.public_key, pk(4));
        let (_, created) = enrol(&reg, &entry("phuong-tran-phu", None, None), &roots, today)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!created);
        let loaded = Registry::load(&reg).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            loaded
                .get("phuong-tran-phu")
                .is_some_and(|e| e.schedule.is_some())
        );
    }
}
