//! The centre's Ed25519 signing key on disk, its rotation, and the signer the collector holds.
//!
//! Files, all in the directory of the key (`Layout::centre_key`, `<state>/collector/`):
//! - `centre-key` — the 32-byte Ed25519 seed, raw, mode 0600 (created at the collector's first
//!   start from the operating system's CSPRNG);
//! - `centre-rotations.json` — every rotation announcement in order: a JSON array of signed
//!   envelopes of kind `centre_key`, body `{"new_key","seq","issued_at"}`, each signed by the key
//!   it replaces;
//! - `centre-key.<seq>.old` — the secret replaced by rotation `seq` (0600; for backup only);
//! - `centre-key.next`, `centre-key.lock` — a rotation in progress (see [`rotate`]).
//!
//! **Invariant:** a secret file is only ever created with mode 0600, written to a temporary file
//! and renamed, never overwritten in place; loading refuses a key file whose mode lets anyone but
//! the owner read it, or that is not exactly 32 bytes, naming the file and what to do — never a
//! different key. The current key is always the last announced one: a rotation writes the new
//! secret aside, announces it, then renames it into place, and loading finishes a rotation a crash
//! interrupted (or refuses, saying so, when the files disagree).

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::signed::{Envelope, Kind, SignedError};
use crate::wire;

/// File name of the rotation announcements beside the key.
pub const ROTATIONS_FILE: &str = "centre-rotations.json";

/// Errors of the centre key's files.
#[derive(Debug, thiserror::Error)]
pub enum CentreKeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: the centre's secret key is readable by others (mode {mode:04o}); refusing to use it. \
         Check who may have copied it (if anyone could, rotate: `loa collector rotate-key`), then `chmod 600 {path}`"
    )]
    LooseMode { path: PathBuf, mode: u32 },
    #[error(
        "{path}: not a centre key (a centre key is exactly 32 bytes, this file has {len}); restore it from backup \
         (docs/operations.md, \"The centre key\") — do not delete it: stations trust only this key"
    )]
    Corrupt { path: PathBuf, len: usize },
    #[error("{path}: no centre key here; `loa collector` creates it at its first start")]
    Missing { path: PathBuf },
    #[error("{path}: rotation announcement {index}: {why}; restore the file from backup")]
    BadRotations {
        path: PathBuf,
        index: usize,
        why: String,
    },
    #[error(
        "{path}: the centre key is not the one last announced in {rotations} ({announced}); \
         restore the key and the announcements from the same backup"
    )]
    NotAnnounced {
        path: PathBuf,
        rotations: PathBuf,
        announced: String,
    },
    #[error("{path}: another key rotation is in progress; retry when it has finished")]
    Busy { path: PathBuf },
    #[error("cannot get random bytes for a new key: {0}")]
    Random(String),
}

/// The body of a rotation announcement (kind `centre_key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationBody {
    /// The new centre public key (base64).
    pub new_key: String,
    /// 1 for the first rotation, then +1 each.
    pub seq: u64,
    pub issued_at: DateTime<Utc>,
}

impl RotationBody {
    /// Decode a verified body: the new key must be a valid key.
    pub fn decode(body: &[u8]) -> Result<(RotationBody, VerifyingKey), String> {
        let b: RotationBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let key = wire::decode_public_key(&b.new_key).map_err(|e| format!("new_key: {e}"))?;
        if b.seq == 0 {
            return Err("seq: rotations count from 1".into());
        }
        Ok((b, key))
    }
}

/// The sibling `name` of the key file.
fn sibling(key_path: &Path, name: &str) -> PathBuf {
    key_path.with_file_name(name)
}

fn file_name(key_path: &Path) -> String {
    key_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "centre-key".into())
}

/// The rotation announcements beside the key at `key_path`.
pub fn rotations_path(key_path: &Path) -> PathBuf {
    sibling(key_path, ROTATIONS_FILE)
}

/// Where the secret replaced by rotation `seq` is kept.
pub fn old_key_path(key_path: &Path, seq: u64) -> PathBuf {
    sibling(key_path, &format!("{}.{seq}.old", file_name(key_path)))
}

fn next_key_path(key_path: &Path) -> PathBuf {
    sibling(key_path, &format!("{}.next", file_name(key_path)))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CentreKeyError + use<> {
    let path = path.to_path_buf();
    move |source| CentreKeyError::Io { path, source }
}

/// Write `bytes` to `path` through a temporary file created 0600, fsynced, renamed.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CentreKeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = sibling(path, &format!("{}.tmp", file_name(path)));
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The mode above is filtered by umask and ignored for an existing file: set it again.
            f.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io(&tmp))?;
        }
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Read a secret key file: mode 0600 (or stricter) and exactly 32 bytes.
fn read_secret(path: &Path) -> Result<SigningKey, CentreKeyError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CentreKeyError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(CentreKeyError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CentreKeyError::LooseMode {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let bytes = fs::read(path).map_err(io(path))?;
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| CentreKeyError::Corrupt {
            path: path.to_path_buf(),
            len: bytes.len(),
        })?;
    let _ = meta;
    Ok(SigningKey::from_bytes(&seed))
}

fn fresh_key() -> Result<SigningKey, CentreKeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| CentreKeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The rotation announcements (empty when there are none), each decoded and checked: kind
/// `centre_key`, seq 1, 2, 3…, each signed by the key the previous one announced (the first by
/// any key: the one the centre started with).
pub fn read_rotations(key_path: &Path) -> Result<Vec<Envelope>, CentreKeyError> {
    let path = rotations_path(key_path);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CentreKeyError::Io { path, source }),
    };
    let bad = |index: usize, why: String| CentreKeyError::BadRotations {
        path: path.clone(),
        index,
        why,
    };
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| bad(0, format!("not a JSON array: {e}")))?;
    let mut out = Vec::with_capacity(values.len());
    let mut signer: Option<VerifyingKey> = None;
    for (i, v) in values.iter().enumerate() {
        let env = Envelope::from_value(v).map_err(|e| bad(i, e.to_string()))?;
        let pinned = [signer.unwrap_or(env.key)];
        let body = env
            .open(Kind::CentreKey, &pinned)
            .map_err(|e: SignedError| bad(i, e.to_string()))?;
        let (b, new) = RotationBody::decode(body).map_err(|e| bad(i, e))?;
        if b.seq != i as u64 + 1 {
            return Err(bad(
                i,
                format!("seq {} where {} was expected", b.seq, i + 1),
            ));
        }
        signer = Some(new);
        out.push(env);
    }
    Ok(out)
}

/// The key last announced by `rotations` (none: `None`).
fn announced(rotations: &[Envelope]) -> Option<VerifyingKey> {
    let last = rotations.last()?;
    RotationBody::decode(&last.body).ok().map(|(_, k)| k)
}

/// Load the centre key at `key_path`, finishing a rotation a crash interrupted.
pub fn load(key_path: &Path) -> Result<SigningKey, CentreKeyError> {
    let rotations = read_rotations(key_path)?;
    let next = next_key_path(key_path);
    let key = match (read_secret(key_path), announced(&rotations)) {
        (Ok(k), None) => return Ok(k),
        (Ok(k), Some(a)) if k.verifying_key() == a => return Ok(k),
        (Ok(k), Some(a)) => (Some(k), a),
        (Err(CentreKeyError::Missing { .. }), Some(a)) => (None, a),
        (Err(e), _) => return Err(e),
    };
    // The announced key differs from (or replaces a missing) `centre-key`: a rotation that
    // stopped between announcing and renaming. Its secret is `centre-key.next`.
    let (_, announced_key) = key;
    match read_secret(&next) {
        Ok(n) if n.verifying_key() == announced_key => {
            fs::rename(&next, key_path).map_err(io(key_path))?;
            tracing::warn!(key = %key_path.display(), "finished a centre key rotation interrupted before");
            Ok(n)
        }
        _ => Err(CentreKeyError::NotAnnounced {
            path: key_path.to_path_buf(),
            rotations: rotations_path(key_path),
            announced: wire::encode_public_key(&announced_key),
        }),
    }
}

/// Load the centre key at `key_path`, creating it (0600) when there is none; `true` when created.
pub fn load_or_create(key_path: &Path) -> Result<(SigningKey, bool), CentreKeyError> {
    match load(key_path) {
        Ok(k) => Ok((k, false)),
        Err(CentreKeyError::Missing { .. }) => {
            let key = fresh_key()?;
            let dir = key_path.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir).map_err(io(dir))?;
            // create_new: two collectors starting at once never both make a key.
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let tmp = sibling(key_path, &format!("{}.new", file_name(key_path)));
            let _ = fs::remove_file(&tmp);
            {
                let mut f = opts.open(&tmp).map_err(io(&tmp))?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    f.set_permissions(fs::Permissions::from_mode(0o600))
                        .map_err(io(&tmp))?;
                }
                f.write_all(&key.to_bytes()).map_err(io(&tmp))?;
                f.sync_all().map_err(io(&tmp))?;
            }
            // hard_link fails when a key appeared meanwhile: then that one is the key.
            let linked = fs::hard_link(&tmp, key_path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    if let Ok(d) = fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                    Ok((key, true))
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok((load(key_path)?, false))
                }
                Err(source) => Err(CentreKeyError::Io {
                    path: key_path.to_path_buf(),
                    source,
                }),
            }
        }
        Err(e) => Err(e),
    }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub seq: u64,
    pub old: VerifyingKey,
    pub new: VerifyingKey,
    /// Where the old secret is kept (0600).
    pub old_secret: PathBuf,
    pub announcement: Envelope,
}

/// An exclusive lock on the rotation (`centre-key.lock`, released when dropped).
struct RotationLock(#[allow(dead_code)] fs::File);

impl RotationLock {
    fn take(key_path: &Path) -> Result<RotationLock, CentreKeyError> {
        let path = sibling(key_path, &format!("{}.lock", file_name(key_path)));
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        // The standard library's advisory lock (flock on Unix); released when the file closes.
        if f.try_lock().is_err() {
            return Err(CentreKeyError::Busy { path });
        }
        Ok(RotationLock(f))
    }
}

/// Rotate the centre key at `key_path` (which must exist): a new key from the CSPRNG, announced
/// signed by the old one, the old secret kept as `centre-key.<seq>.old`.
///
/// Order (each step durable before the next): new secret to `centre-key.next`; old secret to
/// `.old`; the announcement appended to `centre-rotations.json` (temp + rename); `centre-key.next`
/// renamed to `centre-key`. A crash before the announcement leaves the old key in force; after
/// it, [`load`] finishes the rename.
pub fn rotate(key_path: &Path, now: DateTime<Utc>) -> Result<Rotated, CentreKeyError> {
    // A missing key is said as such (not as a missing lock file's directory).
    load(key_path)?;
    let _lock = RotationLock::take(key_path)?;
    let old = load(key_path)?;
    let mut rotations = read_rotations(key_path)?;
    let seq = rotations.len() as u64 + 1;
    let new = fresh_key()?;
    write_private(&next_key_path(key_path), &new.to_bytes())?;
    let old_secret = old_key_path(key_path, seq);
    write_private(&old_secret, &old.to_bytes())?;
    let body = RotationBody {
        new_key: wire::encode_public_key(&new.verifying_key()),
        seq,
        issued_at: DateTime::parse_from_rfc3339(&now.to_rfc3339_opts(SecondsFormat::Secs, true))
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(now),
    };
    let body_bytes = serde_json::to_vec(&body).unwrap_or_default();
    let announcement = Envelope::sign(&old, Kind::CentreKey, body_bytes);
    rotations.push(announcement.clone());
    let all: Vec<serde_json::Value> = rotations.iter().map(Envelope::to_value).collect();
    let mut text = serde_json::to_vec_pretty(&all).unwrap_or_default();
    text.push(b'\n');
    // Public data, but written the same careful way (a torn file would break the chain).
    let rot_path = rotations_path(key_path);
    write_private(&rot_path, &text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&rot_path, fs::Permissions::from_mode(0o644)).map_err(io(&rot_path))?;
    }
    fs::rename(next_key_path(key_path), key_path).map_err(io(key_path))?;
    if let Some(dir) = key_path.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(Rotated {
        seq,
        old: old.verifying_key(),
        new: new.verifying_key(),
        old_secret,
        announcement,
    })
}

/// What the collector serves at `GET /api/v1/centre`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CentreAnswer {
    /// The current centre public key (base64).
    pub key: String,
    /// Every rotation announcement, oldest first.
    pub rotations: Vec<serde_json::Value>,
}

/// The key and its announcements as last read.
#[derive(Debug)]
struct Loaded {
    /// (modified time, length, inode) of the key file and the rotations file.
    stamp: Vec<Option<(std::time::SystemTime, u64, u64)>>,
    key: SigningKey,
    answer: CentreAnswer,
}

fn stamp(key_path: &Path) -> Vec<Option<(std::time::SystemTime, u64, u64)>> {
    [key_path.to_path_buf(), rotations_path(key_path)]
        .iter()
        .map(|p| {
            let m = fs::metadata(p).ok()?;
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let ino = 0;
            Some((m.modified().ok()?, m.len(), ino))
        })
        .collect()
}

fn load_all(key_path: &Path) -> Result<Loaded, CentreKeyError> {
    let stamp = stamp(key_path);
    let key = load(key_path)?;
    let rotations = read_rotations(key_path)?;
    Ok(Loaded {
        stamp,
        answer: CentreAnswer {
            key: wire::encode_public_key(&key.verifying_key()),
            rotations: rotations.iter().map(Envelope::to_value).collect(),
        },
        key,
    })
}

/// The centre's key as the collector holds it: signs envelopes and answers `GET /api/v1/centre`.
/// A rotation made while the collector runs (`loa collector rotate-key`) is picked up at the next
/// use (the files' stamps are compared; a half-done rotation keeps the previous key meanwhile).
pub struct CentreSigner {
    path: PathBuf,
    loaded: Mutex<Arc<Loaded>>,
}

impl std::fmt::Debug for CentreSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentreSigner")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CentreSigner {
    /// Load (or create, 0600) the centre key at `key_path`; `true` when it was created.
    pub fn open(key_path: &Path) -> Result<(CentreSigner, bool), CentreKeyError> {
        let (_, created) = load_or_create(key_path)?;
        let loaded = load_all(key_path)?;
        Ok((
            CentreSigner {
                path: key_path.to_path_buf(),
                loaded: Mutex::new(Arc::new(loaded)),
            },
            created,
        ))
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn current(&self) -> Arc<Loaded> {
        let mut guard = match self.loaded.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        };
        if guard.stamp != stamp(&self.path) {
            match load_all(&self.path) {
                Ok(fresh) => *guard = Arc::new(fresh),
                Err(e) => {
                    tracing::warn!(error = %e, "re-reading the centre key failed; keeping the key in memory");
                }
            }
        }
        guard.clone()
    }

    /// The current public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.current().key.verifying_key()
    }

    /// The current public key as text (base64).
    pub fn public_key_text(&self) -> String {
        self.current().answer.key.clone()
    }

    /// Sign `body` as `kind` with the current key.
    pub fn sign(&self, kind: Kind, body: Vec<u8>) -> Envelope {
        Envelope::sign(&self.current().key, kind, body)
    }

    /// The current key and every rotation announcement (`GET /api/v1/centre`).
    pub fn answer(&self) -> CentreAnswer {
        self.current().answer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn now() -> DateTime<Utc> {
        "2027-01-02T03:04:05Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn the_key_is_created_0600_once_and_loaded_after() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("collector/centre-key");
        let (k1, created) = load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).map(|b| b.len()).unwrap_or(0), 32);
        let (k2, created) = load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!created);
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        // Two fresh keys differ (the CSPRNG, not a constant).
        let other = dir.path().join("b/centre-key");
        let (k3, _) = load_or_create(&other).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(k1.to_bytes(), k3.to_bytes());
    }

    #[test]
    fn a_key_readable_by_others_or_corrupt_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("centre-key");
        load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let before = fs::read(&path).unwrap_or_default();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let e = load_or_create(&path).unwrap_err();
        assert!(
            matches!(e, CentreKeyError::LooseMode { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(load(&path), Err(CentreKeyError::LooseMode { .. })));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(load(&path).is_ok(), "0400 is stricter than 0600");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        fs::write(&path, &before[..31]).unwrap_or_else(|e| panic!("{e}"));
        let e = load_or_create(&path).unwrap_err();
        assert!(matches!(e, CentreKeyError::Corrupt { len: 31, .. }), "{e}");
        assert_eq!(
            fs::read(&path).map(|b| b.len()).unwrap_or(0),
            31,
            "never replaced"
        );
    }

    #[test]
    fn a_rotation_is_announced_by_the_old_key_and_keeps_the_old_secret() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("centre-key");
        let (k0, _) = load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let r1 = rotate(&path, now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r1.seq, r1.old), (1, k0.verifying_key()));
        assert_eq!(mode(&r1.old_secret), 0o600);
        assert_eq!(fs::read(&r1.old_secret).unwrap_or_default(), k0.to_bytes());
        let k1 = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k1.verifying_key(), r1.new);
        assert_eq!(mode(&path), 0o600);
        let opened = r1
            .announcement
            .open(Kind::CentreKey, &[k0.verifying_key()])
            .unwrap_or_else(|e| panic!("{e}"));
        let (body, new) = RotationBody::decode(opened).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((body.seq, new), (1, k1.verifying_key()));
        let r2 = rotate(&path, now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r2.seq, r2.old), (2, k1.verifying_key()));
        assert_eq!(read_rotations(&path).map(|r| r.len()).unwrap_or(0), 2);
        assert!(old_key_path(&path, 2).exists());
        // No key yet: said so, nothing created.
        let none = dir.path().join("none/centre-key");
        assert!(matches!(
            rotate(&none, now()),
            Err(CentreKeyError::Missing { .. })
        ));
        assert!(!dir.path().join("none").exists());
    }

    #[test]
    fn a_rotation_interrupted_after_its_announcement_is_finished_at_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("centre-key");
        load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let r = rotate(&path, now()).unwrap_or_else(|e| panic!("{e}"));
        // Undo the last step: the new secret back aside, the old one in place.
        fs::rename(&path, next_key_path(&path)).unwrap_or_else(|e| panic!("{e}"));
        fs::copy(&r.old_secret, &path).unwrap_or_else(|e| panic!("{e}"));
        let k = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.verifying_key(), r.new);
        assert!(!next_key_path(&path).exists());
        // Announcements naming a key nobody holds: refused, said so.
        fs::copy(&r.old_secret, &path).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            load(&path),
            Err(CentreKeyError::NotAnnounced { .. })
        ));
    }

    #[test]
    fn a_tampered_announcement_file_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("centre-key");
        load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        rotate(&path, now()).unwrap_or_else(|e| panic!("{e}"));
        rotate(&path, now()).unwrap_or_else(|e| panic!("{e}"));
        let rp = rotations_path(&path);
        let mut all: Vec<serde_json::Value> =
            serde_json::from_slice(&fs::read(&rp).unwrap_or_default()).unwrap_or_default();
        all.swap(0, 1);
        fs::write(&rp, serde_json::to_vec(&all).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            read_rotations(&path),
            Err(CentreKeyError::BadRotations { .. })
        ));
    }

    #[test]
    fn the_signer_picks_up_a_rotation_made_while_it_runs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("centre-key");
        let (signer, created) = CentreSigner::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        let k0 = signer.public_key();
        assert!(signer.answer().rotations.is_empty());
        let r = rotate(&path, now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(signer.public_key(), r.new);
        assert_ne!(signer.public_key(), k0);
        assert_eq!(signer.answer().rotations.len(), 1);
        let env = signer.sign(Kind::Manifest, b"x".to_vec());
        assert!(env.open(Kind::Manifest, &[r.new]).is_ok());
    }
}
