//! The station registry: which stations may post, with which Ed25519 public key, under which
//! name and administrative area code, and where their schedule file is (for "planned").
//!
//! **Invariant:** a station is known to the collector iff it has an entry here with a key that
//! decodes; the registry file is the only source of keys (the database never holds them), so
//! re-keying a station is editing one line (or `loa register`).

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// A validated station entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StationEntry {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub public_key: String,
    pub key: VerifyingKey,
    pub schedule: Option<PathBuf>,
    pub audio_root: Option<PathBuf>,
}

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

/// Add or update one station in the registry file at `path` (created when missing), keeping the
/// other entries. Fields left `None` keep their old value. Returns whether it was new.
pub fn upsert_file(path: &Path, update: &RawStation) -> Result<bool, RegistryError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_public_key;
    use ed25519_dalek::SigningKey;

    fn pk(n: u8) -> String {
        encode_public_key(&SigningKey::from_bytes(&[n; 32]).verifying_key())
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

    #[test]
    fn bad_ids_and_duplicates_are_refused() {
        let raw = |id: &str| RawStation {
            id: id.into(),
            name: String::new(),
            area_code: String::new(),
            public_key: pk(1),
            schedule: None,
            audio_root: None,
        };
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
}
