//! The station's content store and schedule versions on disk (layout in [`super`]'s doc).
//!
//! **Invariant:** every change is made so that a crash at any instant leaves either the old
//! state or the new one: a verified file enters `content/` by a rename from `staging/`, a version
//! directory is built under a temporary name and renamed into `versions/<N>/` whole, and `active`
//! is written to a temporary file, fsynced and renamed. `content/<sha>` is only ever written by
//! [`Store::admit`] after its hash matched; [`Store::collect`] deletes a content file only when no
//! kept version's `files.json` names it.

use super::{Wanted, WantedFile};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// The file naming the active version.
pub const ACTIVE_FILE: &str = "active";
pub const CONTENT_DIR: &str = "content";
pub const STAGING_DIR: &str = "staging";
pub const VERSIONS_DIR: &str = "versions";
/// A version's file list (what [`Store::collect`] reads).
pub const FILES_FILE: &str = "files.json";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const AUDIO_DIR: &str = "audio";

/// Errors of the store, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("manifest path {path:?} is not a plain relative path")]
    BadPath { path: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `p` is a plain relative path (only normal components): what may be joined under a
/// version's audio root.
pub fn plain_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\\')
        && !p.contains('\0')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Whether `s` is a lowercase hex SHA-256.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The SHA-256 (lowercase hex) and length of the file at `path`.
pub fn hash_file(path: &Path) -> Result<(String, u64), StoreError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(h.finalize()), len))
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// A station's store, rooted at its data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.to_path_buf(),
        }
    }

    pub fn active_file(&self) -> PathBuf {
        self.root.join(ACTIVE_FILE)
    }
    pub fn content_dir(&self) -> PathBuf {
        self.root.join(CONTENT_DIR)
    }
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join(STAGING_DIR)
    }
    pub fn content(&self, sha256: &str) -> PathBuf {
        self.content_dir().join(sha256)
    }
    pub fn part(&self, sha256: &str) -> PathBuf {
        self.staging_dir().join(format!("{sha256}.part"))
    }
    pub fn version_dir(&self, n: u64) -> PathBuf {
        self.root.join(VERSIONS_DIR).join(n.to_string())
    }
    /// The schedule `loa station` reads for version `n` of `station`: `<station>.toml`, the
    /// name schedule validation requires of a station's schedule file.
    pub fn schedule_path(&self, n: u64, station: &str) -> PathBuf {
        self.version_dir(n).join(format!("{station}.toml"))
    }
    /// The audio root `loa station` reads for version `n`.
    pub fn audio_root(&self, n: u64) -> PathBuf {
        self.version_dir(n).join(AUDIO_DIR)
    }

    /// The active version: `None` when the station has none (not managed, or nothing activated
    /// yet); a file that is not a version number is an error naming it.
    pub fn active(&self) -> Result<Option<u64>, StoreError> {
        let path = self.active_file();
        match std::fs::read_to_string(&path) {
            Ok(t) => t
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| StoreError::Corrupt {
                    path,
                    what: format!(
                        "holds {:?}, not a version number; write the number of a directory under versions/",
                        t.trim()
                    ),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Make `n` the active version: temp file, fsync, rename, fsync of the directory.
    pub fn write_active(&self, n: u64) -> Result<(), StoreError> {
        let path = self.active_file();
        let tmp = self.root.join(format!("{ACTIVE_FILE}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(format!("{n}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        fsync_dir(&self.root)
    }

    /// Whether the verified file `sha256` is held.
    pub fn holds(&self, sha256: &str) -> bool {
        std::fs::metadata(self.content(sha256)).is_ok_and(|m| m.is_file())
    }

    /// Bytes of a partial download of `sha256` already in `staging/`.
    pub fn part_len(&self, sha256: &str) -> u64 {
        std::fs::metadata(self.part(sha256)).map_or(0, |m| m.len())
    }

    /// The files of `files` not held, and the bytes still to download for them.
    pub fn missing<'a>(&self, files: &'a [WantedFile]) -> (Vec<&'a WantedFile>, u64) {
        let mut seen = BTreeSet::new();
        let missing: Vec<&WantedFile> = files
            .iter()
            .filter(|f| seen.insert(f.sha256.as_str()) && !self.holds(&f.sha256))
            .collect();
        let bytes = missing
            .iter()
            .map(|f| f.size.saturating_sub(self.part_len(&f.sha256)))
            .sum();
        (missing, bytes)
    }

    /// Move a complete partial download into `content/` if its SHA-256 and size are `want`'s;
    /// otherwise delete it and say why.
    pub fn admit(&self, want: &WantedFile) -> Result<Result<(), String>, StoreError> {
        let part = self.part(&want.sha256);
        let (sha, len) = hash_file(&part)?;
        if len != want.size || sha != want.sha256 {
            let _ = std::fs::remove_file(&part);
            return Ok(Err(format!(
                "got {len} bytes with SHA-256 {sha}, the manifest says {} bytes with {}",
                want.size, want.sha256
            )));
        }
        std::fs::File::open(&part)
            .and_then(|f| f.sync_all())
            .map_err(io(&part))?;
        let dir = self.content_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let dest = self.content(&want.sha256);
        std::fs::rename(&part, &dest).map_err(io(&dest))?;
        fsync_dir(&dir)?;
        Ok(Ok(()))
    }

    /// Build `versions/<N>/` for `w` (every file must be held): schedule, envelope, file list,
    /// audio hard links (a copy where linking fails). Built under a temporary name and renamed
    /// whole; an existing `versions/<N>/` is replaced only by a complete new one.
    pub fn stage(&self, w: &Wanted, envelope: &[u8]) -> Result<PathBuf, StoreError> {
        let versions = self.root.join(VERSIONS_DIR);
        let tmp = versions.join(format!("{}.tmp", w.version));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        let audio = tmp.join(AUDIO_DIR);
        std::fs::create_dir_all(&audio).map_err(io(&audio))?;
        let write = |name: &str, bytes: &[u8]| -> Result<(), StoreError> {
            let p = tmp.join(name);
            let mut f = std::fs::File::create(&p).map_err(io(&p))?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .map_err(io(&p))
        };
        if !plain_relative(&w.station) || w.station.contains('/') {
            return Err(StoreError::BadPath {
                path: w.station.clone(),
            });
        }
        write(&format!("{}.toml", w.station), w.schedule_text.as_bytes())?;
        write(MANIFEST_FILE, envelope)?;
        let list = serde_json::to_vec_pretty(&w.files).map_err(|e| StoreError::Corrupt {
            path: tmp.join(FILES_FILE),
            what: e.to_string(),
        })?;
        write(FILES_FILE, &list)?;
        for f in &w.files {
            if !plain_relative(&f.path) {
                return Err(StoreError::BadPath {
                    path: f.path.clone(),
                });
            }
            let dest = audio.join(&f.path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let src = self.content(&f.sha256);
            if std::fs::hard_link(&src, &dest).is_err() {
                std::fs::copy(&src, &dest).map_err(io(&src))?;
            }
        }
        fsync_dir(&tmp)?;
        let dest = self.version_dir(w.version);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(io(&dest))?;
        }
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        fsync_dir(&versions)?;
        Ok(dest)
    }

    /// Remove a staged version that was refused (never the active one).
    pub fn discard(&self, n: u64) -> Result<(), StoreError> {
        if self.active()? == Some(n) {
            return Ok(());
        }
        let dir = self.version_dir(n);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                path: dir,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The versions present under `versions/` (complete ones: temporary builds are skipped).
    pub fn versions(&self) -> Result<Vec<u64>, StoreError> {
        let dir = self.root.join(VERSIONS_DIR);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Io {
                    path: dir,
                    source: e,
                });
            }
        };
        let mut out: Vec<u64> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The files version `n` names (its `files.json`).
    pub fn files_of(&self, n: u64) -> Result<Vec<WantedFile>, StoreError> {
        let path = self.version_dir(n).join(FILES_FILE);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path,
            what: e.to_string(),
        })
    }

    /// Keep the active version, the one before it and any newer (staged) ones; delete older
    /// versions, then every content file no kept version names and no file of `also` (a
    /// manifest still being fetched) is. Partial downloads are left for resuming. Returns the
    /// versions and files deleted.
    pub fn collect(&self, also: &[WantedFile]) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        let Some(active) = self.active()? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let all = self.versions()?;
        let previous = all.iter().copied().filter(|v| *v < active).max();
        let (kept, old): (Vec<u64>, Vec<u64>) = all
            .into_iter()
            .partition(|v| *v >= active || Some(*v) == previous);
        let mut named: BTreeSet<String> = also.iter().map(|f| f.sha256.clone()).collect();
        for v in &kept {
            // A kept version whose list cannot be read: nothing is deleted this time.
            named.extend(self.files_of(*v)?.into_iter().map(|f| f.sha256));
        }
        for v in &old {
            let dir = self.version_dir(*v);
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        let mut deleted = Vec::new();
        let dir = self.content_dir();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                if is_sha256_hex(&name) && !named.contains(&name) {
                    let p = e.path();
                    std::fs::remove_file(&p).map_err(io(&p))?;
                    deleted.push(name);
                }
            }
        }
        deleted.sort();
        Ok((old, deleted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &Store, bytes: &[u8]) -> WantedFile {
        let sha = hex::encode(Sha256::digest(bytes));
        std::fs::create_dir_all(store.staging_dir()).unwrap();
        std::fs::write(store.part(&sha), bytes).unwrap();
        let w = WantedFile {
            path: String::new(),
            sha256: sha,
            size: bytes.len() as u64,
        };
        store.admit(&w).unwrap().unwrap();
        w
    }

    fn wanted(version: u64, files: &[(&str, &WantedFile)]) -> Wanted {
        Wanted {
            station: "w".into(),
            version,
            schedule_text: format!("# version {version}\n"),
            files: files
                .iter()
                .map(|(p, f)| WantedFile {
                    path: (*p).into(),
                    ..(*f).clone()
                })
                .collect(),
        }
    }

    #[test]
    fn a_file_enters_content_only_when_it_matches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let good = put(&store, b"episode");
        assert!(store.holds(&good.sha256));
        // A flipped byte: refused, the part deleted, nothing in content/.
        let want = WantedFile {
            path: "x.mp3".into(),
            sha256: hex::encode(Sha256::digest(b"other")),
            size: 5,
        };
        std::fs::write(store.part(&want.sha256), b"othes").unwrap();
        let why = store.admit(&want).unwrap().unwrap_err();
        assert!(why.contains("SHA-256"), "{why}");
        assert!(!store.part(&want.sha256).exists());
        assert!(!store.holds(&want.sha256));
    }

    #[test]
    fn versions_stage_switch_and_collect_only_what_no_kept_version_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.active().unwrap(), None);
        let jingle = put(&store, b"jingle");
        let jan = put(&store, b"cchc january");
        let feb = put(&store, b"cchc february");
        let mar = put(&store, b"cchc march");
        for (n, ep) in [(1, &jan), (2, &feb), (3, &mar)] {
            let w = wanted(n, &[("jingle.ogg", &jingle), ("cchc/ep.mp3", ep)]);
            let d = store.stage(&w, b"{}").unwrap();
            assert_eq!(
                std::fs::read(d.join("audio/cchc/ep.mp3")).unwrap(),
                std::fs::read(store.content(&ep.sha256)).unwrap()
            );
            assert_eq!(store.files_of(n).unwrap(), w.files);
        }
        store.write_active(2).unwrap();
        assert_eq!(store.active().unwrap(), Some(2));
        // Version 3 is staged (newer), 1 is the previous: all kept, nothing deleted.
        assert_eq!(store.collect(&[]).unwrap(), (vec![], vec![]));
        store.write_active(3).unwrap();
        // Now 1 is older than the previous (2): it goes, and January's file with it; the
        // jingle, named by 2 and 3, stays.
        let (versions, files) = store.collect(&[]).unwrap();
        assert_eq!(versions, vec![1]);
        assert_eq!(files, vec![jan.sha256.clone()]);
        assert!(store.holds(&jingle.sha256) && store.holds(&feb.sha256));
        assert_eq!(store.versions().unwrap(), vec![2, 3]);
        // A file only a manifest in progress names is kept too.
        let apr = put(&store, b"cchc april");
        assert_eq!(
            store.collect(std::slice::from_ref(&apr)).unwrap(),
            (vec![], vec![])
        );
        assert_eq!(
            store.collect(&[]).unwrap(),
            (vec![], vec![apr.sha256.clone()])
        );
    }

    #[test]
    fn a_bad_path_or_active_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let f = put(&store, b"x");
        for bad in ["../x", "/etc/passwd", "a/../../b", "a\\b", ""] {
            let w = wanted(9, &[(bad, &f)]);
            assert!(
                matches!(store.stage(&w, b"{}"), Err(StoreError::BadPath { .. })),
                "{bad}"
            );
            assert!(!store.version_dir(9).exists());
        }
        std::fs::write(store.active_file(), "seven\n").unwrap();
        let e = store.active().unwrap_err().to_string();
        assert!(e.contains("active") && e.contains("seven"), "{e}");
    }
}
