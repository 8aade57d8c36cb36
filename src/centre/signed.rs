//! The signed envelope: how the centre sends anything that changes what airs (a manifest, a
//! centre key rotation, later bulletins and cancellations).
//!
//! ```json
//! {"kind":"manifest","key":"<base64 public key>","body":"<base64 of the body's bytes>","sig":"<base64>"}
//! ```
//!
//! The signed message is `b"loa-centre-v1\n" + kind + b"\n" + body` where `body` is the exact
//! byte string the `body` field carries (base64 only protects it in JSON): **the bytes signed are
//! the bytes that travel**, and nobody re-serialises a body to verify it.
//!
//! **Invariant:** [`Envelope::open`] returns a body only when its signature verifies under
//! ed25519-dalek's `verify_strict` ([`wire::verify_signature_strict`]) with a key the caller
//! pinned; the `key` field only says which pinned key to use, and an unpinned key is refused
//! before any signature is checked. Decoding checks every field (known kind, a valid 32-byte
//! key, base64 body, a signature of exactly 64 bytes, no other field). Pure: no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::reason::ReasonCode;
use crate::wire;

/// Domain separation of centre signatures (never valid as a record, heartbeat or request).
pub const DOMAIN: &[u8] = b"loa-centre-v1\n";

/// Largest envelope accepted for decoding (a manifest of a few thousand files fits).
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;

/// What an envelope carries. Its spelling is signed, so a body cannot be replayed as another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A station's schedule version and the files it needs (`centre::manifest`).
    Manifest,
    /// A new centre key, signed by the previous one (`centre::key`, `centre::pin`).
    CentreKey,
    /// An announcement to air (the bulletins issue).
    Bulletin,
    /// A cancellation of a bulletin.
    Cancel,
}

impl Kind {
    /// Every kind.
    pub const ALL: &'static [Kind] = &[
        Kind::Manifest,
        Kind::CentreKey,
        Kind::Bulletin,
        Kind::Cancel,
    ];

    /// The spelling on the wire (and in the signed message).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::CentreKey => "centre_key",
            Kind::Bulletin => "bulletin",
            Kind::Cancel => "cancel",
        }
    }

    /// The kind spelled `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error("signed envelope: not JSON of the envelope's shape: {0}")]
    Malformed(String),
    #[error("signed envelope: larger than {MAX_ENVELOPE_BYTES} bytes ({0})")]
    TooLarge(usize),
    #[error("signed envelope: unknown kind {0:?}")]
    UnknownKind(String),
    #[error("signed envelope: kind {got:?} where {expected:?} was expected")]
    WrongKind { expected: Kind, got: Kind },
    #[error("signed envelope: field `key`: {0}")]
    BadKey(String),
    #[error("signed envelope: field `body`: not base64 ({0})")]
    BadBody(String),
    #[error("signed envelope: field `sig`: not a base64 Ed25519 signature of exactly 64 bytes")]
    BadSignatureEncoding,
    #[error(
        "signed envelope: signed by key {key}, which is not a pinned centre key (pinned: {pinned}); refused"
    )]
    UnpinnedKey { key: String, pinned: String },
    #[error(
        "signed envelope ({kind}): the signature does not verify with centre key {key} (altered or forged); refused"
    )]
    BadSignature { kind: Kind, key: String },
}

impl SignedError {
    /// The reason code a station reports for this refusal.
    pub fn code(&self) -> ReasonCode {
        match self {
            SignedError::UnpinnedKey { .. } | SignedError::BadSignature { .. } => {
                ReasonCode::SyncCentreSignature
            }
            _ => ReasonCode::SyncManifestMalformed,
        }
    }
}

/// The envelope as it travels.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    kind: String,
    key: String,
    body: String,
    sig: String,
}

/// A decoded (not yet verified) envelope: every field well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: Kind,
    /// Which key says it signed (only a hint until [`Envelope::open`] checks it is pinned).
    pub key: VerifyingKey,
    /// The body's bytes, exactly as signed.
    pub body: Vec<u8>,
    pub sig: Signature,
}

/// The message a centre signature covers.
pub fn message(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + kind.as_str().len() + 1 + body.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(kind.as_str().as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m
}

impl Envelope {
    /// Sign `body` as `kind` with the centre's key.
    pub fn sign(key: &SigningKey, kind: Kind, body: Vec<u8>) -> Envelope {
        let sig = key.sign(&message(kind, &body));
        Envelope {
            kind,
            key: key.verifying_key(),
            body,
            sig,
        }
    }

    /// The JSON text that travels.
    pub fn to_json(&self) -> String {
        let raw = RawEnvelope {
            kind: self.kind.as_str().to_string(),
            key: wire::encode_public_key(&self.key),
            body: B64.encode(&self.body),
            sig: B64.encode(self.sig.to_bytes()),
        };
        // A struct of four strings always serialises.
        serde_json::to_string(&raw).unwrap_or_default()
    }

    /// Decode an envelope, checking every field (not the signature: see [`Envelope::open`]).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, SignedError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(SignedError::TooLarge(bytes.len()));
        }
        let raw: RawEnvelope =
            serde_json::from_slice(bytes).map_err(|e| SignedError::Malformed(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Decode an envelope already parsed as part of a larger JSON document.
    pub fn from_value(v: &serde_json::Value) -> Result<Envelope, SignedError> {
        let raw = RawEnvelope::deserialize(v).map_err(|e| SignedError::Malformed(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// The envelope as a JSON value (for documents holding several).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.to_json()).unwrap_or(serde_json::Value::Null)
    }

    fn from_raw(raw: RawEnvelope) -> Result<Envelope, SignedError> {
        let kind =
            Kind::parse(&raw.kind).ok_or_else(|| SignedError::UnknownKind(raw.kind.clone()))?;
        // `decode_public_key` trims; a key field with white space is not the canonical text.
        if raw.key.trim() != raw.key {
            return Err(SignedError::BadKey("white space around the key".into()));
        }
        let key =
            wire::decode_public_key(&raw.key).map_err(|e| SignedError::BadKey(e.to_string()))?;
        let body = B64
            .decode(&raw.body)
            .map_err(|e| SignedError::BadBody(e.to_string()))?;
        let sig = wire::decode_signature(&raw.sig).ok_or(SignedError::BadSignatureEncoding)?;
        Ok(Envelope {
            kind,
            key,
            body,
            sig,
        })
    }

    /// The body, when this envelope is of `kind` and signed (strictly) by one of the `pinned`
    /// keys; refused otherwise.
    pub fn open(&self, kind: Kind, pinned: &[VerifyingKey]) -> Result<&[u8], SignedError> {
        if self.kind != kind {
            return Err(SignedError::WrongKind {
                expected: kind,
                got: self.kind,
            });
        }
        if !pinned.contains(&self.key) {
            return Err(SignedError::UnpinnedKey {
                key: wire::encode_public_key(&self.key),
                pinned: pinned
                    .iter()
                    .map(wire::encode_public_key)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if !wire::verify_signature_strict(&self.key, &message(self.kind, &self.body), &self.sig) {
            return Err(SignedError::BadSignature {
                kind: self.kind,
                key: wire::encode_public_key(&self.key),
            });
        }
        Ok(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn raw(env: &Envelope) -> serde_json::Value {
        serde_json::from_str(&env.to_json()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn decode_value(v: &serde_json::Value) -> Result<Envelope, SignedError> {
        Envelope::decode(v.to_string().as_bytes())
    }

    #[test]
    fn a_signed_envelope_travels_and_opens_with_its_pinned_key() {
        let k = key(1);
        let env = Envelope::sign(&k, Kind::Manifest, b"{\"v\":1}".to_vec());
        let back = Envelope::decode(env.to_json().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, env);
        assert_eq!(
            back.open(Kind::Manifest, &[key(9).verifying_key(), k.verifying_key()]),
            Ok(&b"{\"v\":1}"[..])
        );
        let v = raw(&env);
        assert_eq!(v["kind"], "manifest");
        assert_eq!(v["body"], B64.encode(b"{\"v\":1}"));
    }

    #[test]
    fn an_envelope_signed_by_another_key_is_refused() {
        let env = Envelope::sign(&key(2), Kind::Manifest, b"x".to_vec());
        let e = env.open(Kind::Manifest, &[key(1).verifying_key()]);
        assert!(matches!(e, Err(SignedError::UnpinnedKey { .. })), "{e:?}");
        assert_eq!(e.unwrap_err().code(), ReasonCode::SyncCentreSignature);
        // The key field claims the pinned key, the signature is another key's: refused.
        let mut forged = Envelope::sign(&key(2), Kind::Manifest, b"x".to_vec());
        forged.key = key(1).verifying_key();
        let e = forged.open(Kind::Manifest, &[key(1).verifying_key()]);
        assert!(matches!(e, Err(SignedError::BadSignature { .. })), "{e:?}");
    }

    #[test]
    fn an_altered_body_or_kind_is_refused() {
        let k = key(1);
        let pinned = [k.verifying_key()];
        let env = Envelope::sign(&k, Kind::Manifest, b"{\"version\":2}".to_vec());
        let mut v = raw(&env);
        v["body"] = B64.encode(b"{\"version\":3}").into();
        let altered = decode_value(&v).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            altered.open(Kind::Manifest, &pinned),
            Err(SignedError::BadSignature { .. })
        ));
        // The same body and signature presented as another kind: the kind is signed.
        let mut v = raw(&env);
        v["kind"] = "centre_key".into();
        let rekinded = decode_value(&v).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            rekinded.open(Kind::CentreKey, &pinned),
            Err(SignedError::BadSignature { .. })
        ));
        // Asked for a manifest, given a rotation.
        let rotation = Envelope::sign(&k, Kind::CentreKey, b"{}".to_vec());
        assert!(matches!(
            rotation.open(Kind::Manifest, &pinned),
            Err(SignedError::WrongKind { .. })
        ));
    }

    #[test]
    fn every_field_is_checked_when_decoding() {
        let env = Envelope::sign(&key(1), Kind::Manifest, b"x".to_vec());
        let check = |field: &str, value: serde_json::Value, want: fn(&SignedError) -> bool| {
            let mut v = raw(&env);
            v[field] = value;
            let e = decode_value(&v);
            assert!(matches!(&e, Err(err) if want(err)), "{field}: {e:?}");
        };
        check("kind", "bulletins".into(), |e| {
            matches!(e, SignedError::UnknownKind(_))
        });
        check("key", "AAAA".into(), |e| {
            matches!(e, SignedError::BadKey(_))
        });
        check("key", B64.encode([1u8; 31]).into(), |e| {
            matches!(e, SignedError::BadKey(_))
        });
        check("body", "not base64!".into(), |e| {
            matches!(e, SignedError::BadBody(_))
        });
        // A signature one byte short, one byte long, not base64.
        check("sig", B64.encode([0u8; 63]).into(), |e| {
            matches!(e, SignedError::BadSignatureEncoding)
        });
        check("sig", B64.encode([0u8; 65]).into(), |e| {
            matches!(e, SignedError::BadSignatureEncoding)
        });
        check("sig", "!".repeat(88).into(), |e| {
            matches!(e, SignedError::BadSignatureEncoding)
        });
        check("sig", 5.into(), |e| matches!(e, SignedError::Malformed(_)));
        check("extra", "x".into(), |e| {
            matches!(e, SignedError::Malformed(_))
        });
        let mut v = raw(&env);
        if let Some(o) = v.as_object_mut() {
            o.remove("sig");
        }
        assert!(matches!(decode_value(&v), Err(SignedError::Malformed(_))));
        assert!(matches!(
            Envelope::decode(b"[1,2]"),
            Err(SignedError::Malformed(_))
        ));
    }

    #[test]
    fn a_small_order_key_never_verifies() {
        // The identity point as a "key": verify_strict refuses it whatever the signature.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let Ok(weak) = VerifyingKey::from_bytes(&ident) else {
            return;
        };
        let env = Envelope {
            kind: Kind::Manifest,
            key: weak,
            body: b"x".to_vec(),
            sig: Signature::from_bytes(&[0u8; 64]),
        };
        assert!(matches!(
            env.open(Kind::Manifest, &[weak]),
            Err(SignedError::BadSignature { .. })
        ));
    }
}
