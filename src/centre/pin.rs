//! A station's pinned centre key(s), under its data directory:
//! - `centre.pub` — the current pinned centre public key (base64, one line), written at
//!   enrolment ([`pin_first`]) and replaced only by walking a rotation chain
//!   ([`accept_rotations`]);
//! - `centre.prev.pub` — the key it replaced (envelopes signed just before a rotation still
//!   verify);
//! - `centre-rotations.json` — the rotation announcements accepted (an audit trail).
//!
//! **Invariant:** the pinned key changes only to a key announced by a chain of `centre_key`
//! envelopes that starts with one signed (strictly) by the pinned key itself, each later link
//! signed by the key the previous link announced, seqs consecutive. A chain with any broken or
//! foreign link is refused whole: nothing is written. [`pin_first`] never replaces a different
//! pinned key. Files are written temp + fsync + rename, the current key last.

use ed25519_dalek::VerifyingKey;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::key::RotationBody;
use super::signed::{Envelope, Kind, SignedError};
use crate::reason::ReasonCode;
use crate::wire;

/// The current pinned key, in a station's data directory.
pub const PINNED_FILE: &str = "centre.pub";
/// The key before the last accepted rotation.
pub const PREVIOUS_FILE: &str = "centre.prev.pub";
/// The accepted rotation announcements.
pub const ROTATIONS_FILE: &str = "centre-rotations.json";

/// Why pinning or a rotation was refused.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no centre key is pinned; enrol the station (`loa enrol`) first")]
    NotPinned { path: PathBuf },
    #[error("{path}: not a centre public key: {why}; enrol the station again (`loa enrol`)")]
    BadFile { path: PathBuf, why: String },
    #[error(
        "{path}: this station already trusts centre key {pinned}; refusing to replace it with {offered}. \
         A centre key changes only by a rotation signed with the old key; if the station moved to another \
         centre, remove {path} deliberately and enrol again"
    )]
    Different {
        path: PathBuf,
        pinned: String,
        offered: String,
    },
    #[error("centre key rotation {index}: {why}; refused, the pinned key is unchanged")]
    BrokenChain { index: usize, why: String },
    #[error(
        "the centre's key rotations do not lead from the pinned key {pinned}: none is signed by it and the last \
         announces {announced}; refused, the pinned key is unchanged"
    )]
    NotFromPinned { pinned: String, announced: String },
}

impl PinError {
    /// The reason code a station reports for this refusal.
    pub fn code(&self) -> ReasonCode {
        match self {
            PinError::BrokenChain { .. }
            | PinError::NotFromPinned { .. }
            | PinError::Different { .. } => ReasonCode::SyncRotationChain,
            _ => ReasonCode::SyncCentreSignature,
        }
    }
}

/// The keys a station trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub current: VerifyingKey,
    /// The key before the last rotation accepted, if any.
    pub previous: Option<VerifyingKey>,
}

impl Pinned {
    /// The keys an envelope may be signed with (current first).
    pub fn keys(&self) -> Vec<VerifyingKey> {
        std::iter::once(self.current).chain(self.previous).collect()
    }
}

/// What [`pin_first`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// The key is now pinned.
    Pinned,
    /// That very key was already pinned.
    AlreadyPinned,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PinError + use<> {
    let path = path.to_path_buf();
    move |source| PinError::Io { path, source }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PinError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_key(path: &Path) -> Result<Option<VerifyingKey>, PinError> {
    match fs::read_to_string(path) {
        Ok(text) => wire::decode_public_key(&text)
            .map(Some)
            .map_err(|e| PinError::BadFile {
                path: path.to_path_buf(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PinError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn key_line(key: &VerifyingKey) -> String {
    format!("{}\n", wire::encode_public_key(key))
}

/// The keys pinned in the station data directory `dir`.
pub fn load(dir: &Path) -> Result<Pinned, PinError> {
    let path = dir.join(PINNED_FILE);
    let current = read_key(&path)?.ok_or(PinError::NotPinned { path })?;
    let previous = read_key(&dir.join(PREVIOUS_FILE))?;
    Ok(Pinned { current, previous })
}

/// Pin `key` as the centre's key (enrolment). Pinning the key already pinned is fine; a
/// different one is refused.
pub fn pin_first(dir: &Path, key: &VerifyingKey) -> Result<PinOutcome, PinError> {
    let path = dir.join(PINNED_FILE);
    match read_key(&path)? {
        Some(k) if k == *key => Ok(PinOutcome::AlreadyPinned),
        Some(k) => Err(PinError::Different {
            path,
            pinned: wire::encode_public_key(&k),
            offered: wire::encode_public_key(key),
        }),
        None => {
            write_atomic(&path, key_line(key).as_bytes())?;
            Ok(PinOutcome::Pinned)
        }
    }
}

/// Walk the centre's rotation `chain` (oldest first, as `GET /api/v1/centre` lists it) from the
/// pinned key, pure: the keys to pin afterwards, or why not. Links before the one signed by the
/// pinned key are ignored (rotations older than this station's pin); a chain whose last link
/// announces the pinned key changes nothing.
pub fn walk(pinned: &Pinned, chain: &[Envelope]) -> Result<Pinned, PinError> {
    let start = chain.iter().position(|e| e.key == pinned.current);
    let Some(start) = start else {
        let announced = match chain.last() {
            None => return Ok(pinned.clone()),
            Some(last) => RotationBody::decode(&last.body)
                .map(|(_, k)| k)
                .map_err(|why| PinError::BrokenChain {
                    index: chain.len() - 1,
                    why,
                })?,
        };
        if announced == pinned.current {
            return Ok(pinned.clone());
        }
        return Err(PinError::NotFromPinned {
            pinned: wire::encode_public_key(&pinned.current),
            announced: wire::encode_public_key(&announced),
        });
    };
    let mut current = pinned.current;
    let mut previous = pinned.previous;
    let mut last_seq: Option<u64> = None;
    for (index, env) in chain.iter().enumerate().skip(start) {
        let broken = |why: String| PinError::BrokenChain { index, why };
        let body = env
            .open(Kind::CentreKey, &[current])
            .map_err(|e: SignedError| broken(e.to_string()))?;
        let (b, new) = RotationBody::decode(body).map_err(broken)?;
        if let Some(s) = last_seq
            && b.seq != s + 1
        {
            return Err(broken(format!("seq {} after seq {s}", b.seq)));
        }
        if new == current {
            return Err(broken("announces the key that signed it".into()));
        }
        last_seq = Some(b.seq);
        previous = Some(current);
        current = new;
    }
    Ok(Pinned { current, previous })
}

/// What [`accept_rotations`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub pinned: Pinned,
    /// Whether the pinned key changed.
    pub changed: bool,
}

/// Accept the centre's rotation `chain` (see [`walk`]) in the station data directory `dir`: the
/// newest key becomes `centre.pub`, the one before it `centre.prev.pub`. Refused whole when any
/// link is broken.
pub fn accept_rotations(dir: &Path, chain: &[Envelope]) -> Result<Accepted, PinError> {
    let before = load(dir)?;
    let after = walk(&before, chain)?;
    if after.current == before.current {
        return Ok(Accepted {
            pinned: before,
            changed: false,
        });
    }
    let all: Vec<serde_json::Value> = chain.iter().map(Envelope::to_value).collect();
    let mut text = serde_json::to_vec_pretty(&all).unwrap_or_default();
    text.push(b'\n');
    write_atomic(&dir.join(ROTATIONS_FILE), &text)?;
    if let Some(prev) = &after.previous {
        write_atomic(&dir.join(PREVIOUS_FILE), key_line(prev).as_bytes())?;
    }
    write_atomic(&dir.join(PINNED_FILE), key_line(&after.current).as_bytes())?;
    Ok(Accepted {
        pinned: after,
        changed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn k(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn link(signer: &SigningKey, new: &SigningKey, seq: u64) -> Envelope {
        let body = RotationBody {
            new_key: wire::encode_public_key(&new.verifying_key()),
            seq,
            issued_at: "2027-01-01T00:00:00Z"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        };
        Envelope::sign(
            signer,
            Kind::CentreKey,
            serde_json::to_vec(&body).unwrap_or_default(),
        )
    }

    fn pinned_to(n: u8) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("station");
        assert_eq!(
            pin_first(&p, &k(n).verifying_key()).unwrap_or_else(|e| panic!("{e}")),
            PinOutcome::Pinned
        );
        (dir, p)
    }

    #[test]
    fn pin_first_refuses_to_replace_a_different_key() {
        let (_d, p) = pinned_to(1);
        assert_eq!(
            pin_first(&p, &k(1).verifying_key()).unwrap_or_else(|e| panic!("{e}")),
            PinOutcome::AlreadyPinned
        );
        let e = pin_first(&p, &k(2).verifying_key()).unwrap_err();
        assert!(matches!(e, PinError::Different { .. }), "{e}");
        assert_eq!(load(&p).map(|x| x.current).ok(), Some(k(1).verifying_key()));
        assert!(matches!(
            load(&p.join("nowhere")),
            Err(PinError::NotPinned { .. })
        ));
    }

    #[test]
    fn a_chain_from_the_pinned_key_is_walked_to_the_newest() {
        let (_d, p) = pinned_to(1);
        let chain = [
            link(&k(0), &k(1), 1),
            link(&k(1), &k(2), 2),
            link(&k(2), &k(3), 3),
        ];
        let a = accept_rotations(&p, &chain).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.changed);
        assert_eq!(a.pinned.current, k(3).verifying_key());
        assert_eq!(a.pinned.previous, Some(k(2).verifying_key()));
        assert_eq!(load(&p).ok(), Some(a.pinned.clone()));
        assert_eq!(a.pinned.keys().len(), 2);
        // Again: nothing to do (the last link announces the pinned key).
        let again = accept_rotations(&p, &chain).unwrap_or_else(|e| panic!("{e}"));
        assert!(!again.changed);
        assert!(accept_rotations(&p, &[]).is_ok_and(|a| !a.changed));
    }

    #[test]
    fn a_link_signed_by_an_unpinned_key_is_refused_whole() {
        let (_d, p) = pinned_to(1);
        // A good first link, then one signed by a stranger.
        let chain = [link(&k(1), &k(2), 1), link(&k(9), &k(3), 2)];
        let e = accept_rotations(&p, &chain).unwrap_err();
        assert!(matches!(e, PinError::BrokenChain { index: 1, .. }), "{e}");
        assert_eq!(e.code(), ReasonCode::SyncRotationChain);
        assert_eq!(
            load(&p).map(|x| x.current).ok(),
            Some(k(1).verifying_key()),
            "nothing written"
        );
        assert!(!p.join(PREVIOUS_FILE).exists());
        // A chain that never passes through the pinned key.
        let e = accept_rotations(&p, &[link(&k(9), &k(3), 1)]).unwrap_err();
        assert!(matches!(e, PinError::NotFromPinned { .. }), "{e}");
        // A forged key field: claims the pinned key, signed by another.
        let mut forged = link(&k(9), &k(3), 1);
        forged.key = k(1).verifying_key();
        let e = accept_rotations(&p, &[forged]).unwrap_err();
        assert!(matches!(e, PinError::BrokenChain { index: 0, .. }), "{e}");
    }

    #[test]
    fn a_gap_in_seq_or_a_wrong_kind_breaks_the_chain() {
        let (_d, p) = pinned_to(1);
        let e = accept_rotations(&p, &[link(&k(1), &k(2), 1), link(&k(2), &k(3), 3)]).unwrap_err();
        assert!(matches!(e, PinError::BrokenChain { index: 1, .. }), "{e}");
        let body = link(&k(1), &k(2), 1).body;
        let as_manifest = Envelope::sign(&k(1), Kind::Manifest, body);
        let e = accept_rotations(&p, &[as_manifest]).unwrap_err();
        assert!(matches!(e, PinError::BrokenChain { index: 0, .. }), "{e}");
        assert_eq!(load(&p).map(|x| x.current).ok(), Some(k(1).verifying_key()));
    }
}
