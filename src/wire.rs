//! The wire format between stations and the collector, version [`WIRE_VERSION`]. **API boundary.**
//!
//! A station turns each airing into an [`AiringRecord`], serialises it once with `serde_json`
//! (those exact bytes are the record's *canonical encoding*), hashes them (SHA-256, the record's
//! `hash`) and signs them with its Ed25519 key. The bytes travel verbatim inside [`SignedRecord`]
//! as a raw JSON value, so nobody ever re-serialises to verify: the journal, the HTTP body, the
//! collector's database and the JSON export all carry the very bytes that were signed.
//!
//! **Invariants:**
//! - `record.prev_hash` is the `hash` of the same station's record with `seq - 1`, or
//!   [`GENESIS_HASH`] for `seq == 1`. Sequence numbers start at 1 and have no gaps at the station.
//! - A [`SignedRecord`] is valid for a key iff `hash == sha256(record bytes)` and `signature` is that
//!   key's Ed25519 signature over the record bytes, and the bytes parse as an [`AiringRecord`] of
//!   this wire version. [`SignedRecord::verify`] checks exactly that and nothing about the chain
//!   (the chain needs the previous record, which only the caller has).
//! - Adding an optional field is compatible; anything else bumps [`WIRE_VERSION`].
//! - Every integer on the wire lies in `0..=`[`MAX_WIRE_INT`] (2^53 − 1, exact in every JSON
//!   reader and in SQLite's INTEGER), signed ones in `-MAX_WIRE_INT..=MAX_WIRE_INT`, and `seq` in
//!   `1..=MAX_WIRE_INT`; every number is finite. Decoding ([`SignedRecord::parse`],
//!   [`Heartbeat::decode`]) refuses anything else with [`WireError::OutOfRange`] naming the field,
//!   and signing refuses to produce it.
//! - One signature rule everywhere: [`verify_signature_strict`] (ed25519-dalek's `verify_strict`:
//!   canonical `s`, `R` and `A` decompress and are not of small order). Ingest and `loa verify`
//!   both call it; there is no other verification path.
//!
//! This module knows nothing of HTTP, SQLite or files.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, FixedOffset, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Version of the records and messages defined here.
pub const WIRE_VERSION: u32 = 1;
/// Largest integer any wire field may carry: 2^53 − 1 (`Number.MAX_SAFE_INTEGER`), so every
/// integer is exact in any JSON reader and fits SQLite's signed 64-bit INTEGER.
pub const MAX_WIRE_INT: u64 = (1 << 53) - 1;
/// `prev_hash` of a station's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Errors from encoding, decoding or verifying wire messages.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("record is not valid JSON of wire version {WIRE_VERSION}: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("record has wire version {found}, this build reads version {WIRE_VERSION}")]
    Version { found: u32 },
    #[error("record hash mismatch: stated {stated}, computed {computed} (the record was altered)")]
    HashMismatch { stated: String, computed: String },
    #[error("signature is not valid base64 Ed25519 (64 bytes)")]
    SignatureEncoding,
    #[error("signature does not verify with station {station}'s registered key")]
    BadSignature { station: String },
    #[error("public key is not valid: {0}")]
    BadKey(String),
    #[error("a number in the record is not finite ({field}); records carry only finite numbers")]
    NotFinite { field: &'static str },
    #[error("field `{field}` is {value}, outside the range the wire allows ({allowed})")]
    OutOfRange {
        field: &'static str,
        value: i128,
        allowed: &'static str,
    },
}

/// Range of an unsigned wire integer.
const UNSIGNED_RANGE: &str = "0 to 9007199254740991, i.e. 2^53 - 1";

/// Check that an unsigned wire integer is at most [`MAX_WIRE_INT`].
fn check_unsigned(field: &'static str, value: u64) -> Result<(), WireError> {
    if value > MAX_WIRE_INT {
        return Err(WireError::OutOfRange {
            field,
            value: i128::from(value),
            allowed: UNSIGNED_RANGE,
        });
    }
    Ok(())
}

/// Check that a signed wire integer lies within ±[`MAX_WIRE_INT`].
fn check_signed(field: &'static str, value: i64) -> Result<(), WireError> {
    if value.unsigned_abs() > MAX_WIRE_INT {
        return Err(WireError::OutOfRange {
            field,
            value: i128::from(value),
            allowed: "-9007199254740991 to 9007199254740991, i.e. within ±(2^53 - 1)",
        });
    }
    Ok(())
}

/// What happened to a planned (or manual) airing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Aired in full.
    Aired,
    /// Started but ended early (hard stop cut, shutdown, crash, output failure mid-way).
    Partial,
    /// Could not air (file missing/undecodable, output unavailable).
    Failed,
    /// Its time passed while the station could not air it (down, clock jump).
    Missed,
    /// Cut or displaced by a higher-priority airing.
    Preempted,
    /// Not started: a soft start found the air busy past its grace, or an equal-priority overlap.
    Skipped,
}

/// Where the airing's audio came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The station's own files.
    File,
    /// A relay of an upstream stream.
    Relay,
}

/// One file that (was meant to) air within an airing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiredItem {
    /// Path relative to the station's audio root, as written in the schedule.
    pub path: String,
    /// SHA-256 of the file's bytes, hex; empty when the file could not be read.
    pub sha256: String,
    /// The file's decoded duration.
    pub duration_secs: f64,
    /// How much of it went to the output.
    pub aired_secs: f64,
}

/// The evidence meter's figures, measured on the samples actually handed to the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub output: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub frames: u64,
    pub first_sample_at: Option<DateTime<Utc>>,
    /// EBU R128 integrated loudness; `None` when everything was below the gate (silence).
    pub integrated_lufs: Option<f64>,
    /// Highest sample magnitude in dBFS; `None` when all samples were zero.
    pub sample_peak_dbfs: Option<f64>,
    /// Seconds below -60 dBFS, counted in runs of at least 2 s.
    pub silence_secs: f64,
}

/// A relay's account of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayEvidence {
    pub url: String,
    pub live_secs: f64,
    pub fallback_secs: f64,
    pub switches: Vec<RelaySwitch>,
    pub icy_titles: Vec<String>,
}

/// A switch between the live upstream and the fallback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelaySwitch {
    pub at: DateTime<Utc>,
    /// `live` or `fallback`: what went on air at `at`.
    pub to: String,
    /// Why, e.g. `connect failed: …`, `stalled 2 s`, `silent 2 s`, `upstream back`.
    pub cause: String,
}

/// One airing record: the unit of the as-run log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiringRecord {
    pub v: u32,
    pub station: String,
    /// Per-station sequence number, from 1, no gaps.
    pub seq: u64,
    /// The planned occurrence this record accounts for (see `schedule::PlannedAiring::key`);
    /// `None` for a manual airing.
    pub occurrence: Option<String>,
    pub slot: Option<String>,
    pub program: Option<String>,
    pub category: String,
    pub source: Source,
    /// Planned start in station-local time with offset (manual airings: when asked).
    pub scheduled_at: DateTime<FixedOffset>,
    pub actual_start: Option<DateTime<FixedOffset>>,
    pub end: Option<DateTime<FixedOffset>>,
    pub planned_secs: f64,
    pub aired_secs: f64,
    /// First sample's instant minus the scheduled instant, in ms (positive = late).
    pub start_offset_ms: Option<i64>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub items: Vec<AiredItem>,
    pub evidence: Option<Evidence>,
    pub relay: Option<RelayEvidence>,
    /// When the station wrote this record.
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: String,
}

impl AiringRecord {
    fn check_finite(&self) -> Result<(), WireError> {
        let mut nums: Vec<(&'static str, f64)> = vec![
            ("planned_secs", self.planned_secs),
            ("aired_secs", self.aired_secs),
        ];
        for it in &self.items {
            nums.push(("items.duration_secs", it.duration_secs));
            nums.push(("items.aired_secs", it.aired_secs));
        }
        if let Some(e) = &self.evidence {
            nums.push(("evidence.silence_secs", e.silence_secs));
            if let Some(x) = e.integrated_lufs {
                nums.push(("evidence.integrated_lufs", x));
            }
            if let Some(x) = e.sample_peak_dbfs {
                nums.push(("evidence.sample_peak_dbfs", x));
            }
        }
        if let Some(r) = &self.relay {
            nums.push(("relay.live_secs", r.live_secs));
            nums.push(("relay.fallback_secs", r.fallback_secs));
        }
        match nums.into_iter().find(|(_, x)| !x.is_finite()) {
            Some((field, _)) => Err(WireError::NotFinite { field }),
            None => Ok(()),
        }
    }

    /// Every integer within the range the wire allows (see the module invariants).
    fn check_ranges(&self) -> Result<(), WireError> {
        if self.seq == 0 || self.seq > MAX_WIRE_INT {
            return Err(WireError::OutOfRange {
                field: "seq",
                value: i128::from(self.seq),
                allowed: "1 to 9007199254740991, i.e. 2^53 - 1; sequence numbers start at 1",
            });
        }
        if let Some(ms) = self.start_offset_ms {
            check_signed("start_offset_ms", ms)?;
        }
        if let Some(e) = &self.evidence {
            check_unsigned("evidence.frames", e.frames)?;
        }
        Ok(())
    }

    /// The checks every record must pass at decode and at signing: ranges and finite numbers.
    fn check_wire(&self) -> Result<(), WireError> {
        self.check_ranges()?;
        self.check_finite()
    }

    /// Encode, hash and sign. `self.prev_hash` must already link to the previous record.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedRecord, WireError> {
        self.check_wire()?;
        let bytes = serde_json::to_string(self)?;
        let hash = sha256_hex(bytes.as_bytes());
        let signature = B64.encode(key.sign(bytes.as_bytes()).to_bytes());
        Ok(SignedRecord {
            record: RawValue::from_string(bytes)?,
            hash,
            signature,
        })
    }
}

/// A record as it travels and is stored: the canonical bytes, their hash and the signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedRecord {
    pub record: Box<RawValue>,
    pub hash: String,
    pub signature: String,
}

impl SignedRecord {
    /// The canonical bytes that were hashed and signed.
    pub fn bytes(&self) -> &str {
        self.record.get()
    }

    /// Parse the record and check its version and every number's range (see the module
    /// invariants), without checking hash or signature (for display and routing).
    pub fn parse(&self) -> Result<AiringRecord, WireError> {
        let rec: AiringRecord = serde_json::from_str(self.bytes())?;
        if rec.v != WIRE_VERSION {
            return Err(WireError::Version { found: rec.v });
        }
        rec.check_wire()?;
        Ok(rec)
    }

    /// Check hash and signature against `key`, then parse. Does not check the chain.
    pub fn verify(&self, key: &VerifyingKey) -> Result<AiringRecord, WireError> {
        let computed = sha256_hex(self.bytes().as_bytes());
        if computed != self.hash {
            return Err(WireError::HashMismatch {
                stated: self.hash.clone(),
                computed,
            });
        }
        let rec = self.parse()?;
        verify_signature(self.bytes().as_bytes(), &self.signature, key, &rec.station)?;
        Ok(rec)
    }
}

/// What a station says about itself every heartbeat period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub v: u32,
    pub station: String,
    pub sent_at: DateTime<Utc>,
    pub now_airing: Option<AiringBrief>,
    pub next_airing: Option<AiringBrief>,
    /// Records journaled but not yet acknowledged by the collector.
    pub backlog_records: u64,
    /// Highest sequence number journaled.
    pub last_seq: u64,
    /// Output backend name and whether it is healthy.
    pub output: String,
    pub output_ok: bool,
    /// Whether the host clock reports itself synchronised (None: cannot tell).
    pub clock_synced: Option<bool>,
    pub version: String,
    pub uptime_secs: u64,
    /// The station's journal (writable, records held in memory, free space). Optional and
    /// absent from older stations' heartbeats: adding it did not change any field's meaning, so
    /// the wire version stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalHealth>,
}

/// The state of a station's journal, as its heartbeat reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHealth {
    /// Whether the journal takes records (false: the last append failed, e.g. disk full).
    pub writable: bool,
    /// Records held in memory (and in the station's preallocated state file) because the
    /// journal could not take them; they are written, in order, as soon as it can.
    pub held_records: u64,
    /// Bytes free to the station on the journal's file system (`None`: could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    /// Why the journal is not writable, for engineers (English, from the operating system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Default for JournalHealth {
    /// A writable journal holding nothing.
    fn default() -> Self {
        Self {
            writable: true,
            held_records: 0,
            free_bytes: None,
            error: None,
        }
    }
}

/// A short description of an airing, for status displays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiringBrief {
    pub slot: Option<String>,
    pub program: Option<String>,
    pub at: DateTime<FixedOffset>,
}

/// A heartbeat as it travels: canonical bytes and the station's signature over them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedHeartbeat {
    pub heartbeat: Box<RawValue>,
    pub signature: String,
}

impl Heartbeat {
    /// Parse a heartbeat's bytes and check its version and every number's range.
    pub fn decode(bytes: &str) -> Result<Heartbeat, WireError> {
        let hb: Heartbeat = serde_json::from_str(bytes)?;
        if hb.v != WIRE_VERSION {
            return Err(WireError::Version { found: hb.v });
        }
        hb.check_ranges()?;
        Ok(hb)
    }

    /// Every integer within the range the wire allows.
    fn check_ranges(&self) -> Result<(), WireError> {
        check_unsigned("backlog_records", self.backlog_records)?;
        check_unsigned("last_seq", self.last_seq)?;
        check_unsigned("uptime_secs", self.uptime_secs)?;
        if let Some(j) = &self.journal {
            check_unsigned("journal.held_records", j.held_records)?;
            if let Some(free) = j.free_bytes {
                check_unsigned("journal.free_bytes", free)?;
            }
        }
        Ok(())
    }

    /// Encode and sign.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedHeartbeat, WireError> {
        self.check_ranges()?;
        let bytes = serde_json::to_string(self)?;
        let signature = B64.encode(key.sign(bytes.as_bytes()).to_bytes());
        Ok(SignedHeartbeat {
            heartbeat: RawValue::from_string(bytes)?,
            signature,
        })
    }
}

impl SignedHeartbeat {
    /// Check the signature against `key`, then parse.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Heartbeat, WireError> {
        let hb = Heartbeat::decode(self.heartbeat.get())?;
        verify_signature(
            self.heartbeat.get().as_bytes(),
            &self.signature,
            key,
            &hb.station,
        )?;
        Ok(hb)
    }
}

/// `POST /api/v1/stations/{id}/records` body: consecutive records of one station, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordBatch {
    pub records: Vec<SignedRecord>,
}

/// The collector's answer to a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchAck {
    /// Sequence numbers newly stored by this batch.
    pub accepted: Vec<u64>,
    /// Sequence numbers already stored with identical bytes (acknowledged, not stored twice).
    pub duplicates: Vec<u64>,
    /// Highest sequence number the collector holds for this station after the batch.
    pub stored_through: u64,
    /// Why records were refused; when non-empty nothing of the batch was stored.
    pub rejected: Vec<Rejection>,
}

/// A refused record and the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub seq: Option<u64>,
    pub reason: String,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Encode a verifying key for config files and the registry (base64 of the 32 bytes).
pub fn encode_public_key(key: &VerifyingKey) -> String {
    B64.encode(key.to_bytes())
}

/// Decode a verifying key written by [`encode_public_key`].
pub fn decode_public_key(text: &str) -> Result<VerifyingKey, WireError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| WireError::BadKey(format!("not base64: {e}")))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| WireError::BadKey("an Ed25519 public key is 32 bytes".into()))?;
    VerifyingKey::from_bytes(&arr).map_err(|e| WireError::BadKey(e.to_string()))
}

/// The one signature rule of `loa`: Ed25519 with ed25519-dalek's `verify_strict` semantics —
/// `s` canonical, `R` and the key `A` valid points and neither of small order (so a key holder
/// cannot make a signature that one verifier accepts and another refuses). Ingest (record by
/// record, spread over the cores), heartbeats and `loa verify` all call this.
pub fn verify_signature_strict(key: &VerifyingKey, message: &[u8], signature: &Signature) -> bool {
    key.verify_strict(message, signature).is_ok()
}

/// A base64 Ed25519 signature (exactly 64 bytes, padded standard alphabet).
pub fn decode_signature(text: &str) -> Option<Signature> {
    // 64 bytes are 88 base64 characters; decode into a buffer with room for the slack the
    // decoder wants, then insist on exactly 64 bytes.
    if text.len() != 88 {
        return None;
    }
    let mut buf = [0u8; 66];
    let n = B64.decode_slice(text, &mut buf).ok()?;
    let raw: [u8; 64] = buf.get(..n)?.try_into().ok()?;
    Some(Signature::from_bytes(&raw))
}

fn verify_signature(
    bytes: &[u8],
    signature: &str,
    key: &VerifyingKey,
    station: &str,
) -> Result<(), WireError> {
    let sig = decode_signature(signature).ok_or(WireError::SignatureEncoding)?;
    if verify_signature_strict(key, bytes, &sig) {
        Ok(())
    } else {
        Err(WireError::BadSignature {
            station: station.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    pub(crate) fn sample(seq: u64, prev: &str) -> AiringRecord {
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        let at = tz.with_ymd_and_hms(2019, 3, 4, 5, 30, 0).unwrap();
        AiringRecord {
            v: WIRE_VERSION,
            station: "phuong-le-hong-phong".into(),
            seq,
            occurrence: Some("morning@2019-03-03T22:30:00Z".into()),
            slot: Some("morning".into()),
            program: Some("cchc".into()),
            category: "cchc".into(),
            source: Source::File,
            scheduled_at: at,
            actual_start: Some(at),
            end: Some(at + chrono::Duration::seconds(600)),
            planned_secs: 600.0,
            aired_secs: 600.0,
            start_offset_ms: Some(1),
            outcome: Outcome::Aired,
            reason: None,
            items: vec![AiredItem {
                path: "cchc/2019-03.ogg".into(),
                sha256: sha256_hex(b"x"),
                duration_secs: 600.0,
                aired_secs: 600.0,
            }],
            evidence: None,
            relay: None,
            recorded_at: Utc.with_ymd_and_hms(2019, 3, 3, 22, 40, 0).unwrap(),
            prev_hash: prev.into(),
        }
    }

    #[test]
    fn signed_record_verifies_and_round_trips_through_json() {
        let k = key(7);
        let signed = sample(1, GENESIS_HASH).sign(&k).unwrap();
        let text = serde_json::to_string(&signed).unwrap();
        let back: SignedRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.bytes(), signed.bytes());
        let rec = back.verify(&k.verifying_key()).unwrap();
        assert_eq!(rec, sample(1, GENESIS_HASH));
    }

    #[test]
    fn altered_record_or_wrong_key_is_refused() {
        let k = key(7);
        let signed = sample(1, GENESIS_HASH).sign(&k).unwrap();
        let forged = signed
            .bytes()
            .replace("\"aired_secs\":600.0", "\"aired_secs\":900.0");
        assert_ne!(forged, signed.bytes());
        let mut tampered = signed.clone();
        tampered.record = RawValue::from_string(forged.clone()).unwrap();
        assert!(matches!(
            tampered.verify(&k.verifying_key()),
            Err(WireError::HashMismatch { .. })
        ));
        // Recomputing the hash does not help without the key.
        tampered.hash = sha256_hex(forged.as_bytes());
        assert!(matches!(
            tampered.verify(&k.verifying_key()),
            Err(WireError::BadSignature { .. })
        ));
        assert!(matches!(
            signed.verify(&key(8).verifying_key()),
            Err(WireError::BadSignature { .. })
        ));
    }

    #[test]
    fn non_finite_numbers_are_refused_at_signing() {
        let mut r = sample(1, GENESIS_HASH);
        r.aired_secs = f64::NAN;
        assert!(matches!(
            r.sign(&key(1)),
            Err(WireError::NotFinite {
                field: "aired_secs"
            })
        ));
    }

    fn heartbeat(journal: Option<JournalHealth>) -> Heartbeat {
        Heartbeat {
            v: WIRE_VERSION,
            station: "w".into(),
            sent_at: Utc.with_ymd_and_hms(2019, 3, 3, 22, 40, 0).unwrap(),
            now_airing: None,
            next_airing: None,
            backlog_records: 0,
            last_seq: 4,
            output: "device".into(),
            output_ok: true,
            clock_synced: None,
            version: "0".into(),
            uptime_secs: 1,
            journal,
        }
    }

    #[test]
    fn heartbeat_journal_state_is_optional_on_the_wire() {
        let k = key(7);
        // An older station's heartbeat has no `journal` key at all, and still verifies.
        let old = heartbeat(None).sign(&k).unwrap();
        assert!(
            !old.heartbeat.get().contains("journal"),
            "{}",
            old.heartbeat.get()
        );
        assert_eq!(old.verify(&k.verifying_key()).unwrap().journal, None);
        let j = JournalHealth {
            writable: false,
            held_records: 3,
            free_bytes: Some(524_288),
            error: Some("No space left on device".into()),
        };
        let new = heartbeat(Some(j.clone())).sign(&k).unwrap();
        let text = serde_json::to_string(&new).unwrap();
        let back: SignedHeartbeat = serde_json::from_str(&text).unwrap();
        assert_eq!(back.verify(&k.verifying_key()).unwrap().journal, Some(j));
        // A negative count is refused at decoding.
        let bad = new
            .heartbeat
            .get()
            .replace("\"held_records\":3", "\"held_records\":-3");
        assert!(serde_json::from_str::<Heartbeat>(&bad).is_err());
    }

    #[test]
    fn public_key_round_trips() {
        let vk = key(3).verifying_key();
        assert_eq!(decode_public_key(&encode_public_key(&vk)).unwrap(), vk);
        assert!(decode_public_key("not a key").is_err());
    }
}
