//! Schedules held by the centre: each station's schedule lives in the collector as numbered
//! versions (text verbatim, SHA-256, author, time, note, validity start), edited in the web app
//! or through `PUT /api/v1/stations/{id}/schedule`; the city's shared programs document
//! (e.g. the CCHC programme) is versioned the same way and merged into each station's schedule
//! that uses one of its programs.
//!
//! A save runs the same validation as `loa check` ([`core::check_station`]: the schedule
//! module's `load_text`, with the audio looked up by path in the centre's library tree through
//! the stored facts). A valid save is *published* at once: it becomes the station's latest
//! version, its merged text is written to the managed schedule file
//! (`layout.managed_schedules_dir()/<id>.toml`, temp + fsync + rename), and the station's
//! registry entry points at that file and at the library tree, so the plans, status and reports
//! read it as they read any registered schedule. A rollback is a new version with an earlier
//! text. Every publish is in the audit log.
//!
//! **Invariant:** a text that does not validate is never stored as a version nor written to the
//! managed file; version numbers of a document only increase (rows are append-only); the
//! managed file holds the merged text of the station's latest version (rewritten from the
//! database at start if a crash left it behind). Each version keeps `published_at`, the start
//! of its validity, so what was in force at any instant can be known.

pub mod core;
pub mod db;
pub mod routes;

use crate::collector::db::Conn;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use self::core::{Problem, SharedPrograms, check_programs, check_station, sha256_hex};
use self::db::Version;
use super::facts::{AudioFactsStore, Known};
use super::registry::{RawStation, StationEntry};
use super::store::{Store, StoreError, Synchronous};
use crate::schedule::AudioFacts;

pub use self::core::{Activation, PROGRAMS_DOC, Window, in_force};

/// Where centre-managed schedules are written and their audio is read. `None`: beside the
/// registry file (`collector/schedules`, `collector/library/tree`, as [`crate::layout`] says).
#[derive(Debug, Clone, Default)]
pub struct VersionsConfig {
    pub managed_schedules: Option<PathBuf>,
    pub library_tree: Option<PathBuf>,
}

/// The library's audio tree inside the library directory.
pub fn library_tree(layout: &crate::layout::Layout) -> PathBuf {
    layout.library_dir().join("tree")
}

/// Why a save was not published; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The text does not validate: every problem, located.
    #[error("the schedule does not validate ({} problem(s))", .0.len())]
    Invalid(Vec<Problem>),
    /// The shared programs would break these stations' schedules: (station, its problems).
    #[error("the shared programs would break {} station schedule(s)", .0.len())]
    BreaksStations(Vec<(String, Vec<Problem>)>),
    /// No such version to roll back to.
    #[error("no version {0}")]
    NoSuchVersion(u64),
    /// The database, the managed file or the registry failed (logged; nothing published).
    #[error("{0}")]
    Internal(String),
}

impl From<crate::collector::db::DbError> for SaveError {
    fn from(e: crate::collector::db::DbError) -> Self {
        SaveError::Internal(format!("database: {e}"))
    }
}

/// A save: what, by whom, from where.
#[derive(Debug, Clone)]
pub struct Save {
    pub text: String,
    pub note: String,
    pub author: String,
    pub address: String,
    pub now: DateTime<Utc>,
    /// Station-local date validation checks against.
    pub today: NaiveDate,
}

/// A published version, with the one it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    pub sha256: String,
    pub published_at: DateTime<Utc>,
    /// The version it replaced: (number, sha256).
    pub before: Option<(u64, String)>,
}

/// What a library change published: (station, new version) of each station airing the changed
/// path, and (station, why) of those whose schedule no longer validates (nothing published).
#[derive(Debug, Default)]
pub struct Republished {
    pub published: Vec<(String, u64)>,
    pub refused: Vec<(String, SaveError)>,
}

/// The versions' state in the collector: its own database connection (saves are serialised on
/// it), the directories, the audio facts, and each station's latest version number (for the
/// heartbeat answer).
pub struct Versions {
    conn: Mutex<Conn>,
    managed_dir: PathBuf,
    library_tree: PathBuf,
    facts: AudioFactsStore,
    latest: RwLock<HashMap<String, u64>>,
    /// Content hashes of library files by (relative path, stat key): a file is hashed once per
    /// content it holds.
    hashes: Mutex<HashMap<PathBuf, (super::facts::StatKey, String)>>,
    /// The last signed manifest of each station: (version, from date, envelope JSON).
    manifests: Mutex<HashMap<String, (u64, NaiveDate, String)>>,
    /// Told of each (station, version) published, after its commit (the push channel's
    /// `manifest` event, `collector::push`).
    on_publish: std::sync::OnceLock<PublishListener>,
}

/// Told of each (station, version) published ([`Versions::on_publish`]).
type PublishListener = Box<dyn Fn(&str, u64) + Send + Sync>;

impl std::fmt::Debug for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versions")
            .field("managed_dir", &self.managed_dir)
            .field("library_tree", &self.library_tree)
            .finish_non_exhaustive()
    }
}

/// Audit action codes of this module.
pub mod action {
    pub const SCHEDULE_PUBLISH: &str = "schedule_publish";
    pub const SCHEDULE_ROLLBACK: &str = "schedule_rollback";
    pub const PROGRAMS_PUBLISH: &str = "programs_publish";
}

/// How the audit log describes a version.
fn describe(v: Option<&(u64, String)>) -> Option<String> {
    v.map(|(n, sha)| format!("phiên bản {n} (sha256 {sha})"))
}

/// Write `text` to `path` atomically: a temporary file beside it, fsync, rename, fsync the
/// directory.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("toml.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl Versions {
    /// Open on the collector's database `db` (migrated), with `managed_dir` and `library_tree`
    /// (made absolute), and bring every managed file in line with its station's latest version.
    pub fn open(db: &Path, managed_dir: &Path, library_tree: &Path) -> Result<Self, StoreError> {
        let conn = Store::open_with(db, Synchronous::Full)?.into_connection();
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let latest: HashMap<String, u64> = db::latest_all(&conn)?.into_iter().collect();
        let v = Self {
            managed_dir: abs(managed_dir),
            library_tree: abs(library_tree),
            facts: AudioFactsStore::open(db)?,
            latest: RwLock::new(latest),
            conn: Mutex::new(conn),
            hashes: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            on_publish: std::sync::OnceLock::new(),
        };
        v.restore_managed_files();
        Ok(v)
    }

    /// The managed schedule file of `station`.
    pub fn managed_file(&self, station: &str) -> PathBuf {
        self.managed_dir.join(format!("{station}.toml"))
    }

    /// The library tree schedules' audio paths are relative to.
    pub fn library_tree(&self) -> &Path {
        &self.library_tree
    }

    /// Call `f` with each (station, version) published from now on, after its commit (set
    /// once; a second call is ignored).
    pub(crate) fn on_publish(&self, f: impl Fn(&str, u64) + Send + Sync + 'static) {
        let _ = self.on_publish.set(Box::new(f));
    }

    /// Note the committed (station, latest version) pairs and tell [`Versions::on_publish`]'s
    /// listener.
    fn set_latest(&self, published: impl IntoIterator<Item = (String, u64)>) {
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        for (id, n) in published {
            if let Some(f) = self.on_publish.get() {
                f(&id, n);
            }
            // Another replica's later version may be known already (`note_latest`).
            let v = latest.entry(id).or_insert(n);
            *v = (*v).max(n);
        }
    }

    /// Note that `station`'s version `version` was published (by this replica or another, as
    /// the push channel's database listener says: `collector::push`); an older number than the
    /// one known changes nothing.
    pub(crate) fn note_latest(&self, station: &str, version: u64) {
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        let n = latest.entry(station.to_string()).or_insert(version);
        *n = (*n).max(version);
    }

    /// The latest version of `station`, if any was published (the heartbeat answer's
    /// `manifest_version`).
    pub fn latest_version(&self, station: &str) -> Option<u64> {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(station)
            .copied()
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the versions' connection (reads).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, crate::collector::db::DbError>,
    ) -> Result<T, crate::collector::db::DbError> {
        f(&self.conn())
    }

    /// A crash between the rename of a managed file and the commit of its version leaves the
    /// file ahead of (or behind) the database: rewrite each from its latest version.
    fn restore_managed_files(&self) {
        let conn = self.conn();
        let Ok(all) = db::latest_all(&conn) else {
            return;
        };
        for (station, n) in all {
            let Ok(Some(v)) = db::get(&conn, &station, n) else {
                continue;
            };
            let path = self.managed_file(&station);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(v.merged_text.as_str())
                && let Err(e) = write_atomic(&path, &v.merged_text)
            {
                tracing::error!(station, error = %e, "cannot restore the managed schedule file");
            }
        }
    }

    /// The facts of one audio path: stored ones by its stat key; a file never seen is hashed
    /// (and decoded only if its content was never probed — library uploads are probed once).
    pub fn facts_of(&self, full: &Path) -> Option<AudioFacts> {
        match self.facts.known(full) {
            Known::Missing => None,
            Known::Facts(f) => Some(f),
            Known::Unknown => self.facts.fill(full),
        }
    }

    /// The library file at relative path `rel` (hash, size, facts); `None` when there is none.
    pub fn library_file(&self, rel: &Path) -> Option<self::core::LibraryFile> {
        let full = self.library_tree.join(rel);
        let key = super::facts::StatKey::of(&full)?;
        let cached = self
            .hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(rel)
            .filter(|(k, _)| *k == key)
            .map(|(_, s)| s.clone());
        let sha256 = match cached {
            Some(s) => s,
            None => {
                let s = crate::media::sha256_file(&full).ok()?;
                self.hashes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(rel.to_path_buf(), (key, s.clone()));
                s
            }
        };
        Some(self::core::LibraryFile {
            sha256,
            size: key.size,
            facts: self.facts_of(&full)?,
        })
    }

    /// The signed manifest envelope (JSON) of `station`'s latest version from `from` for
    /// [`self::core::MANIFEST_DAYS`] days; `Ok(None)` when the centre holds no version. Kept per
    /// (version, from): built and signed once a day per station.
    pub fn manifest(
        &self,
        station: &str,
        signer: &crate::centre::CentreSigner,
        now: DateTime<Utc>,
        from: NaiveDate,
    ) -> Result<Option<String>, SaveError> {
        let Some(v) = db::latest(&self.conn(), station)? else {
            return Ok(None);
        };
        if let Some((n, f, json)) = self
            .manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(station)
            && *n == v.version
            && *f == from
        {
            return Ok(Some(json.clone()));
        }
        let body = self::core::build_manifest(
            station,
            v.version,
            now,
            &v.merged_text,
            &mut |p| self.library_file(p),
            from,
            self::core::MANIFEST_DAYS,
        )
        .map_err(|e| SaveError::Internal(format!("manifest of {station} v{}: {e}", v.version)))?;
        let bytes = body.to_bytes();
        // What stations decode: refuse to sign anything their decoder would refuse.
        crate::centre::manifest::Manifest::decode(&bytes).map_err(|e| {
            SaveError::Internal(format!("manifest of {station} does not decode: {e}"))
        })?;
        let json = signer
            .sign(crate::centre::signed::Kind::Manifest, bytes)
            .to_json();
        self.manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(station.to_string(), (v.version, from, json.clone()));
        Ok(Some(json))
    }

    fn shared(conn: &Conn) -> Result<Option<SharedPrograms>, crate::collector::db::DbError> {
        Ok(db::latest(conn, PROGRAMS_DOC)?.map(|v| SharedPrograms {
            version: v.version,
            text: v.text,
        }))
    }

    /// Validate and publish `save` as `entry`'s next version (`rollback_of`: the version whose
    /// text it restores). Runs on a blocking thread (validation may hash new audio).
    pub fn publish_station(
        &self,
        registry: &Path,
        entry: &StationEntry,
        save: &Save,
        rollback_of: Option<u64>,
    ) -> Result<Published, SaveError> {
        let conn = self.conn();
        let shared = Self::shared(&conn)?;
        let checked = check_station(
            &entry.id,
            &save.text,
            shared.as_ref(),
            &self.library_tree,
            save.today,
            &mut |p| self.facts_of(p),
        )
        .map_err(SaveError::Invalid)?;
        let tx = conn.transaction_immediate()?;
        let before = db::latest(&tx, &entry.id)?.map(|v| (v.version, v.sha256));
        let row = Version {
            doc: entry.id.clone(),
            version: 0,
            text: save.text.clone(),
            sha256: sha256_hex(&save.text),
            merged_sha256: sha256_hex(&checked.merged.text),
            merged_text: checked.merged.text.clone(),
            author: save.author.clone(),
            created_at: save.now,
            note: save.note.clone(),
            published_at: save.now,
            rollback_of,
            programs_version: checked.merged.programs_version,
        };
        let n = db::insert_next(&tx, &row)?;
        super::push::announce(
            &tx,
            &super::push::Notice::Manifest {
                station: entry.id.clone(),
                version: n,
            },
        )?;
        let after = Some((n, row.sha256.clone()));
        super::audit::record(
            &tx,
            &super::audit::Entry {
                at: save.now,
                actor: save.author.clone(),
                address: save.address.clone(),
                action: if rollback_of.is_some() {
                    action::SCHEDULE_ROLLBACK
                } else {
                    action::SCHEDULE_PUBLISH
                }
                .into(),
                target: entry.id.clone(),
                before: describe(before.as_ref()),
                after: describe(after.as_ref()),
            },
        )?;
        self.activate(registry, entry, &row.merged_text)?;
        tx.commit()?;
        self.set_latest([(entry.id.clone(), n)]);
        Ok(Published {
            version: n,
            sha256: row.sha256,
            published_at: save.now,
            before,
        })
    }

    /// Make `text` the station's active schedule: the managed file, and the registry entry
    /// pointing at it and at the library tree.
    fn activate(&self, registry: &Path, entry: &StationEntry, text: &str) -> Result<(), SaveError> {
        let file = self.managed_file(&entry.id);
        write_atomic(&file, text)
            .map_err(|e| SaveError::Internal(format!("writing {}: {e}", file.display())))?;
        std::fs::create_dir_all(&self.library_tree).map_err(|e| {
            SaveError::Internal(format!("creating {}: {e}", self.library_tree.display()))
        })?;
        if entry.schedule.as_deref() != Some(file.as_path())
            || entry.audio_root.as_deref() != Some(self.library_tree.as_path())
        {
            super::registry::upsert_file(
                registry,
                &RawStation {
                    id: entry.id.clone(),
                    name: entry.name.clone(),
                    area_code: entry.area_code.clone(),
                    public_key: entry.public_key.clone(),
                    schedule: Some(file),
                    audio_root: Some(self.library_tree.clone()),
                },
            )
            .map_err(|e| SaveError::Internal(format!("registry: {e}")))?;
        }
        Ok(())
    }

    /// Roll `entry` back to version `n`: a new version with `n`'s text (validated again: the
    /// library may have changed since).
    pub fn rollback_station(
        &self,
        registry: &Path,
        entry: &StationEntry,
        n: u64,
        save: &Save,
    ) -> Result<Published, SaveError> {
        let old = db::get(&self.conn(), &entry.id, n)?.ok_or(SaveError::NoSuchVersion(n))?;
        let save = Save {
            text: old.text,
            note: if save.note.is_empty() {
                format!("Khôi phục phiên bản {n}")
            } else {
                save.note.clone()
            },
            ..save.clone()
        };
        self.publish_station(registry, entry, &save, Some(n))
    }

    /// Validate and publish the shared programs document; every station whose latest schedule
    /// uses one of its programs gets a new version with the new programs merged in (each
    /// validated first: if any would break, nothing is published and the problems say which
    /// station and where).
    pub fn publish_programs(
        &self,
        registry: &super::registry::Registry,
        save: &Save,
    ) -> Result<Published, SaveError> {
        let reg_path = registry.path.clone().ok_or_else(|| {
            SaveError::Internal("the collector runs without a registry file".into())
        })?;
        let conn = self.conn();
        let before_row = db::latest(&conn, PROGRAMS_DOC)?;
        let n = self::core::next_version(before_row.as_ref().map(|v| v.version));
        check_programs(&save.text, n, &self.library_tree, save.today, &mut |p| {
            self.facts_of(p)
        })
        .map_err(SaveError::Invalid)?;
        let shared = SharedPrograms {
            version: n,
            text: save.text.clone(),
        };
        // Each station's latest text, merged with the new programs.
        let mut restated = Vec::new();
        let mut broken = Vec::new();
        for (station, latest) in db::latest_all(&conn)? {
            let Some(v) = db::get(&conn, &station, latest)? else {
                continue;
            };
            let Some(entry) = registry.get(&station) else {
                continue;
            };
            let merged = self::core::merge(&v.text, Some(&shared));
            if merged.programs_version.is_none() && v.programs_version.is_none() {
                continue; // uses no shared program, before or now
            }
            match check_station(
                &station,
                &v.text,
                Some(&shared),
                &self.library_tree,
                save.today,
                &mut |p| self.facts_of(p),
            ) {
                Ok(c) => restated.push((entry.clone(), v, c.merged)),
                Err(p) => broken.push((station, p)),
            }
        }
        if !broken.is_empty() {
            return Err(SaveError::BreaksStations(broken));
        }
        let tx = conn.transaction_immediate()?;
        let sha = sha256_hex(&save.text);
        let row = Version {
            doc: PROGRAMS_DOC.into(),
            version: 0,
            text: save.text.clone(),
            sha256: sha.clone(),
            merged_text: save.text.clone(),
            merged_sha256: sha.clone(),
            author: save.author.clone(),
            created_at: save.now,
            note: save.note.clone(),
            published_at: save.now,
            rollback_of: None,
            programs_version: None,
        };
        let got = db::insert_next(&tx, &row)?;
        let before = before_row.map(|v| (v.version, v.sha256));
        super::audit::record(
            &tx,
            &super::audit::Entry {
                at: save.now,
                actor: save.author.clone(),
                address: save.address.clone(),
                action: action::PROGRAMS_PUBLISH.into(),
                target: PROGRAMS_DOC.into(),
                before: describe(before.as_ref()),
                after: describe(Some(&(got, sha.clone()))),
            },
        )?;
        let mut bumped = Vec::new();
        for (entry, v, merged) in restated {
            let station_row = Version {
                doc: entry.id.clone(),
                version: 0,
                merged_sha256: sha256_hex(&merged.text),
                merged_text: merged.text.clone(),
                author: save.author.clone(),
                created_at: save.now,
                note: format!("Cập nhật danh sách chương trình chung (phiên bản {got})"),
                published_at: save.now,
                rollback_of: None,
                programs_version: merged.programs_version,
                ..v.clone()
            };
            let m = db::insert_next(&tx, &station_row)?;
            super::push::announce(
                &tx,
                &super::push::Notice::Manifest {
                    station: entry.id.clone(),
                    version: m,
                },
            )?;
            super::audit::record(
                &tx,
                &super::audit::Entry {
                    at: save.now,
                    actor: save.author.clone(),
                    address: save.address.clone(),
                    action: action::SCHEDULE_PUBLISH.into(),
                    target: entry.id.clone(),
                    before: describe(Some(&(v.version, v.sha256.clone()))),
                    after: describe(Some(&(m, v.sha256.clone()))),
                },
            )?;
            self.activate(&reg_path, &entry, &merged.text)?;
            bumped.push((entry.id.clone(), m));
        }
        tx.commit()?;
        self.set_latest(bumped);
        Ok(Published {
            version: got,
            sha256: sha,
            published_at: save.now,
            before,
        })
    }

    /// A library path now names other bytes (`path`; `month`: it is a program's episode for
    /// that month, `None`: a plain placement). Every station whose latest version airs that
    /// path gets a new version — its own text again, validated again against the library — so
    /// its next manifest has a higher number (a station takes only a newer version) and names
    /// the new file. Manifests built before are forgotten. Returns the versions published and
    /// the stations whose text no longer validates (nothing published for them; the caller
    /// logs and shows them). Runs on a blocking thread.
    pub fn republish_for_library(
        &self,
        registry: &Path,
        stations: &super::registry::Registry,
        path: &str,
        month: Option<NaiveDate>,
        save: &Save,
    ) -> Republished {
        self.manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let users: Vec<Version> = {
            let conn = self.conn();
            let Ok(all) = db::latest_all(&conn) else {
                return Republished::default();
            };
            all.into_iter()
                .filter_map(|(station, n)| db::get(&conn, &station, n).ok().flatten())
                .filter(|v| self::core::uses_library_path(&v.doc, &v.merged_text, path, month))
                .collect()
        };
        let (mut published, mut refused) = (Vec::new(), Vec::new());
        for v in users {
            let Some(entry) = stations.get(&v.doc) else {
                continue;
            };
            let again = Save {
                text: v.text.clone(),
                ..save.clone()
            };
            match self.publish_station(registry, entry, &again, None) {
                Ok(p) => published.push((v.doc.clone(), p.version)),
                Err(e) => refused.push((v.doc.clone(), e)),
            }
        }
        Republished { published, refused }
    }
}

#[cfg(test)]
mod tests;
