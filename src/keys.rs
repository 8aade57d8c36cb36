//! Secrets on disk, and their provisioning: station key pairs — `<dir>/station.key` (the 32-byte
//! Ed25519 seed, raw, mode 0600) and `<dir>/station.pub` (the public key as
//! [`wire::encode_public_key`] text, one line) — made by `loa keygen` or once by `loa up`
//! ([`ensure`]), and the collector's admin API token ([`ensure_admin_token`], [`read_admin_token`]).
//!
//! **Invariant:** a secret (key or token) file is created only with mode 0600 and never
//! overwritten unless the caller explicitly forces it; loading refuses a key file that is not
//! exactly 32 bytes and a token shorter than [`MIN_ADMIN_TOKEN_CHARS`], so a truncated or wrong
//! file is an error naming the path, never a different key.

use crate::wire;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the secret key (seed) inside a station's data directory.
pub const SECRET_KEY_FILE: &str = "station.key";
/// File name of the public key inside a station's data directory.
pub const PUBLIC_KEY_FILE: &str = "station.pub";

/// Errors reading or writing key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: no station key here; make one with `loa keygen --station ID --dir {dir}`",
        dir = .path.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    Missing { path: PathBuf },
    #[error(
        "{path}: a station secret key is exactly 32 bytes, this file has {len}; restore it from backup or make a new key with `loa keygen --force` (and register the new public key)"
    )]
    BadLength { path: PathBuf, len: usize },
    #[error(
        "{path}: already exists; refusing to overwrite a station key (use --force, then register the new public key with the collector)"
    )]
    Exists { path: PathBuf },
    #[error("{path}: public key does not match the secret key next to it")]
    Mismatch { path: PathBuf },
    #[error("{path}: {source}")]
    BadPublic {
        path: PathBuf,
        source: wire::WireError,
    },
    #[error("cannot get random bytes for a new key: {0}")]
    Random(String),
    #[error("reading admin token {path}: {source}")]
    TokenRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin token in {path} is shorter than {MIN_ADMIN_TOKEN_CHARS} characters")]
    TokenTooShort { path: PathBuf },
}

/// Paths of the two key files under `dir`.
pub fn key_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(SECRET_KEY_FILE), dir.join(PUBLIC_KEY_FILE))
}

/// Make a fresh key pair in `dir` (created if missing). Refuses to overwrite an existing secret
/// key unless `force`. Returns the signing key.
pub fn generate(dir: &Path, force: bool) -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    write_pair(dir, &key, force)?;
    Ok(key)
}

/// Write `key` as the key pair in `dir`.
pub fn write_pair(dir: &Path, key: &SigningKey, force: bool) -> Result<(), KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let (secret, public) = key_paths(dir);
    if secret.exists() && !force {
        return Err(KeyError::Exists { path: secret });
    }
    // Write to a temp file created 0600, then rename: a crash never leaves a half key.
    let tmp = dir.join(format!("{SECRET_KEY_FILE}.tmp"));
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
        f.write_all(&key.to_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &secret).map_err(io(&secret))?;
    let line = format!("{}\n", public_key_text(&key.verifying_key()));
    fs::write(&public, line).map_err(io(&public))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Load the signing key from `dir`, checking it against `station.pub` when that exists.
pub fn load(dir: &Path) -> Result<SigningKey, KeyError> {
    let (secret, public) = key_paths(dir);
    let bytes = match fs::read(&secret) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing { path: secret });
        }
        Err(source) => {
            return Err(KeyError::Io {
                path: secret,
                source,
            });
        }
    };
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::BadLength {
            path: secret.clone(),
            len: bytes.len(),
        })?;
    let key = SigningKey::from_bytes(&seed);
    match fs::read_to_string(&public) {
        Ok(text) => {
            let vk = wire::decode_public_key(&text).map_err(|source| KeyError::BadPublic {
                path: public.clone(),
                source,
            })?;
            if vk != key.verifying_key() {
                return Err(KeyError::Mismatch { path: public });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(KeyError::Io {
                path: public,
                source,
            });
        }
    }
    Ok(key)
}

/// Load the public key file `path`.
pub fn load_public(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    wire::decode_public_key(&text).map_err(|source| KeyError::BadPublic {
        path: path.to_path_buf(),
        source,
    })
}

/// The public key as registered with the collector.
pub fn public_key_text(key: &VerifyingKey) -> String {
    wire::encode_public_key(key)
}

/// The station key pair in `dir`, made there now if it has none (the same files `loa keygen
/// --dir DIR` writes); true when made. A damaged key is an error naming its file, never a
/// silent new key.
pub fn ensure(dir: &Path) -> Result<(SigningKey, bool), KeyError> {
    let (secret, _) = key_paths(dir);
    if secret.exists() {
        return Ok((load(dir)?, false));
    }
    Ok((generate(dir, false)?, true))
}

/// Length of a generated admin token, in random bytes (hex-encoded: twice as many characters).
pub const ADMIN_TOKEN_BYTES: usize = 24;
/// Shortest admin token the collector accepts, in characters.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// The admin API token file at `path`, made now (random, hex, mode 0600) if it does not exist;
/// an existing file is kept as it is. True when made.
pub fn ensure_admin_token(path: &Path) -> Result<bool, KeyError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if path.exists() {
        return Ok(false);
    }
    let mut bytes = [0u8; ADMIN_TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    writeln!(f, "{token}").map_err(io)?;
    Ok(true)
}

/// The admin API token in `path` (surrounding blanks removed); at least
/// [`MIN_ADMIN_TOKEN_CHARS`] characters.
pub fn read_admin_token(path: &Path) -> Result<String, KeyError> {
    let t = fs::read_to_string(path).map_err(|source| KeyError::TokenRead {
        path: path.to_path_buf(),
        source,
    })?;
    let t = t.trim();
    if t.len() < MIN_ADMIN_TOKEN_CHARS {
        return Err(KeyError::TokenTooShort {
            path: path.to_path_buf(),
        });
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let k = generate(dir.path(), false).unwrap();
        let back = load(dir.path()).unwrap();
        assert_eq!(k.to_bytes(), back.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(SECRET_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let vk = load_public(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(vk, k.verifying_key());
    }

    #[test]
    fn refuses_to_overwrite_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = generate(dir.path(), false).unwrap();
        assert!(matches!(
            generate(dir.path(), false),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(load(dir.path()).unwrap().to_bytes(), k1.to_bytes());
        let k2 = generate(dir.path(), true).unwrap();
        assert_ne!(k1.to_bytes(), k2.to_bytes());
        assert_eq!(load(dir.path()).unwrap().to_bytes(), k2.to_bytes());
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(matches!(e, KeyError::Missing { .. }));
        assert!(e.to_string().contains("loa keygen"));
        fs::write(dir.path().join(SECRET_KEY_FILE), [1u8; 31]).unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("31"), "{e}");
        generate(dir.path(), true).unwrap();
        let other = SigningKey::from_bytes(&[9; 32]);
        fs::write(
            dir.path().join(PUBLIC_KEY_FILE),
            public_key_text(&other.verifying_key()),
        )
        .unwrap();
        assert!(matches!(load(dir.path()), Err(KeyError::Mismatch { .. })));
    }

    #[test]
    fn keys_are_made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = dir.path().join("station/a");
        let (k1, made1) = ensure(&data).unwrap_or_else(|e| panic!("{e:#}"));
        let (k2, made2) = ensure(&data).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(made1 && !made2);
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        assert_eq!(load(&data).map(|k| k.to_bytes()).ok(), Some(k1.to_bytes()));
        // A damaged key is an error naming the file, never a silent new key.
        std::fs::write(data.join(SECRET_KEY_FILE), b"short").unwrap_or_else(|e| panic!("{e}"));
        let err = ensure(&data).err().map(|e| format!("{e:#}"));
        assert!(
            err.as_deref().is_some_and(|e| e.contains("station.key")),
            "{err:?}"
        );
    }

    #[test]
    fn admin_token_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("admin-token");
        assert!(ensure_admin_token(&p).unwrap_or_else(|e| panic!("{e:#}")));
        let t1 = std::fs::read_to_string(&p).unwrap_or_default();
        assert_eq!(t1.trim().len(), ADMIN_TOKEN_BYTES * 2);
        let mode = std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        assert!(!ensure_admin_token(&p).unwrap_or_else(|e| panic!("{e:#}")));
        assert_eq!(std::fs::read_to_string(&p).unwrap_or_default(), t1);
        assert_eq!(read_admin_token(&p).ok().as_deref(), Some(t1.trim()));
        std::fs::write(&p, "short\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            read_admin_token(&p),
            Err(KeyError::TokenTooShort { .. })
        ));
    }
}
