//! The wire format between stations and the collector: airing records of version
//! [`RECORD_VERSION`] (the collector still reads [`RECORD_VERSION_V1`]) and heartbeats of version
//! [`HEARTBEAT_VERSION`]. **API boundary.**
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
//!   a version this build reads. [`SignedRecord::verify`] checks exactly that and nothing about
//!   the chain (the chain needs the previous record, which only the caller has). Records of
//!   either version chain to each other (a station upgraded mid-journal links its first version 2
//!   record to its last version 1 record).
//! - Adding an optional field is compatible; anything else bumps the version of what changed
//!   ([`RECORD_VERSION`] for records, [`HEARTBEAT_VERSION`] for heartbeats).
//! - Every outcome reason of a version 2 record is a code ([`AiringRecord::reason_code`]) that
//!   this build knows, covered by the signature like every field: decoding refuses an unknown
//!   code, a missing code on a record that did not air in full, and a code on a version 1 record
//!   ([`WireError::ReasonCode`], naming the field). A version 1 record carries only free text; its
//!   code is [`classify`]'s reading of that text. [`AiringRecord::code`] gives either.
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

use crate::reason::ReasonCode;

/// Version of the airing records stations write. 2: a record carries its reason as a code
/// (`reason_code`), beside the English free text kept as detail.
pub const RECORD_VERSION: u32 = 2;
/// The first record version, still read: free text only, classified by [`classify`].
pub const RECORD_VERSION_V1: u32 = 1;
/// Most airings of one bulletin a record may name (`BulletinRef::repeat`); `bulletin::body`'s
/// `MAX_REPEATS` is this one (the wire does not import `bulletin`: it sits below it).
pub const MAX_BULLETIN_REPEATS: u32 = 20;
/// Version of heartbeats (unchanged when records went to version 2).
pub const HEARTBEAT_VERSION: u32 = 1;
/// Largest integer any wire field may carry: 2^53 − 1 (`Number.MAX_SAFE_INTEGER`), so every
/// integer is exact in any JSON reader and fits SQLite's signed 64-bit INTEGER.
pub const MAX_WIRE_INT: u64 = (1 << 53) - 1;
/// `prev_hash` of a station's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Errors from encoding, decoding or verifying wire messages.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not valid JSON of the wire format: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("{what} has wire version {found}, this build reads {reads}")]
    Version {
        what: &'static str,
        found: u32,
        reads: &'static str,
    },
    #[error("field `{field}`: {problem}")]
    ReasonCode {
        field: &'static str,
        problem: String,
    },
    #[error("field `{field}`: {problem}")]
    BadField {
        field: &'static str,
        problem: String,
    },
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
    /// Why, in the station's English free text: detail for engineers (version 1: the only reason).
    pub reason: Option<String>,
    /// Version 2: why, as a code of [`crate::reason`] (what pages and exports show, in
    /// Vietnamese). Present on every record that did not air in full; absent on version 1 records
    /// (see [`AiringRecord::code`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<ReasonCode>,
    pub items: Vec<AiredItem>,
    pub evidence: Option<Evidence>,
    pub relay: Option<RelayEvidence>,
    /// When the station wrote this record.
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: String,
    /// The centre's schedule version the station aired under (from 1; see
    /// `collector::versions`); absent on records of a station whose schedule is its own file,
    /// and on records written before stations named it (same wire version: the field is
    /// optional, and an absent one is not serialised, so older records' bytes are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_version: Option<u64>,
    /// The bulletin airing this record accounts for (issue #15; docs/bulletins.md): its
    /// occurrence is then `bulletin:<id>#<repeat>` (`bulletin::occurrence_key`). Absent on every
    /// other record (same wire version: optional, and not serialised when absent, so no earlier
    /// record's bytes change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulletin: Option<BulletinRef>,
}

/// The bulletin airing a record accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulletinRef {
    /// The bulletin's id: 32 lowercase hex digits (`bulletin::body::BulletinId`).
    pub id: String,
    /// Which of its airings, from 1 (at most `bulletin::body::MAX_REPEATS`).
    pub repeat: u32,
    /// Its audio was read by text-to-speech from the bulletin's text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synthetic: bool,
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
        if let Some(n) = self.schedule_version
            && (n == 0 || n > MAX_WIRE_INT)
        {
            return Err(WireError::OutOfRange {
                field: "schedule_version",
                value: i128::from(n),
                allowed: "1 to 9007199254740991, i.e. 2^53 - 1; schedule versions start at 1",
            });
        }
        if let Some(b) = &self.bulletin {
            if b.id.len() != 32 || !b.id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(WireError::BadField {
                    field: "bulletin.id",
                    problem: format!(
                        "`{}` is not a bulletin id (32 lowercase hexadecimal digits)",
                        b.id.chars().take(80).collect::<String>()
                    ),
                });
            }
            if b.repeat == 0 || b.repeat > MAX_BULLETIN_REPEATS {
                return Err(WireError::OutOfRange {
                    field: "bulletin.repeat",
                    value: i128::from(b.repeat),
                    allowed: "1 to 20: a bulletin airs at most 20 times, its airings numbered from 1",
                });
            }
        }
        if let Some(e) = &self.evidence {
            check_unsigned("evidence.frames", e.frames)?;
        }
        Ok(())
    }

    /// The version and its reason fields (see the module invariants).
    fn check_version(&self) -> Result<(), WireError> {
        const FIELD: &str = "reason_code";
        match self.v {
            RECORD_VERSION_V1 => match &self.reason_code {
                None => Ok(()),
                Some(c) => Err(WireError::ReasonCode {
                    field: FIELD,
                    problem: format!(
                        "`{c}` on a version 1 record; reason codes exist from version 2 on \
                         (write `\"v\": 2`)"
                    ),
                }),
            },
            RECORD_VERSION => match &self.reason_code {
                Some(c) if !c.is_station_code() => Err(WireError::ReasonCode {
                    field: FIELD,
                    problem: format!(
                        "`{c}` is not a station's reason code of wire version {RECORD_VERSION} \
                         (docs/api.md lists them; a station with new codes needs a newer \
                         collector)"
                    ),
                }),
                Some(_) => Ok(()),
                None if self.outcome == Outcome::Aired => Ok(()),
                None => Err(WireError::ReasonCode {
                    field: FIELD,
                    problem: format!(
                        "missing; a version {RECORD_VERSION} record with outcome `{}` carries \
                         the code of its reason",
                        serde_json::to_value(self.outcome)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    ),
                }),
            },
            found => Err(WireError::Version {
                what: "record",
                found,
                reads: "versions 1 and 2",
            }),
        }
    }

    /// The checks every record must pass at decode and at signing: version and reason fields,
    /// ranges and finite numbers.
    fn check_wire(&self) -> Result<(), WireError> {
        self.check_version()?;
        self.check_ranges()?;
        self.check_finite()
    }

    /// The record's reason code: its own (version 2), or [`classify`]'s reading of its free text
    /// (version 1). `None` for a record that aired in full without a reason.
    pub fn code(&self) -> Option<ReasonCode> {
        match self.v {
            RECORD_VERSION_V1 => classify(self.outcome, self.reason.as_deref()),
            _ => self.reason_code.clone(),
        }
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

    /// Parse the record and check its version, its reason code and every number's range (see
    /// the module invariants), without checking hash or signature (for display and routing).
    pub fn parse(&self) -> Result<AiringRecord, WireError> {
        let rec: AiringRecord = serde_json::from_str(self.bytes())?;
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
    /// The station's schedule distribution (centre-managed stations only; `station::sync`).
    /// Optional and absent from older and unmanaged stations' heartbeats: the wire version stays,
    /// as it did for `journal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncHealth>,
}

/// The state of a centre-managed station's schedule and content, as its heartbeat reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncHealth {
    /// The schedule version airing (`None`: the station has not activated any yet).
    pub active_version: Option<u64>,
    /// A newer version the station knows of and is fetching or staging (`None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_version: Option<u64>,
    /// Files the newest known manifest names (the airings of its next 45 days) that the station
    /// does not hold verified yet.
    pub missing_files: u64,
    /// Bytes free to the station on its content store's file system (`None`: could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    /// Why the last attempt to fetch, verify or switch failed (a `sync.*` code; `None` once an
    /// attempt succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<ReasonCode>,
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
        if hb.v != HEARTBEAT_VERSION {
            return Err(WireError::Version {
                what: "heartbeat",
                found: hb.v,
                reads: "version 1",
            });
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
        if let Some(s) = &self.sync {
            for (field, v) in [
                ("sync.active_version", s.active_version),
                ("sync.pending_version", s.pending_version),
                ("sync.missing_files", Some(s.missing_files)),
                ("sync.free_bytes", s.free_bytes),
            ] {
                if let Some(v) = v {
                    check_unsigned(field, v)?;
                }
            }
            // A sync failure's code is a `sync.*` one; an unknown `sync.*` spelling (a newer
            // station's) is kept and shown as itself, as a heartbeat is not refused for it.
            if let Some(c) = &s.last_error_code
                && !c.as_str().starts_with("sync.")
            {
                return Err(WireError::ReasonCode {
                    field: "sync.last_error_code",
                    problem: format!("`{c}` is not a sync code (`sync.*`)"),
                });
            }
        }
        Ok(())
    }

    /// Encode and sign.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedHeartbeat, WireError> {
        if self.v != HEARTBEAT_VERSION {
            return Err(WireError::Version {
                what: "heartbeat",
                found: self.v,
                reads: "version 1",
            });
        }
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

/// A refused record (or request) and the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub seq: Option<u64>,
    /// Why, for engineers (English, names the field or the record).
    pub reason: String,
    /// Why, as a code (`refused.*`, [`crate::reason`]). Optional: absent from older collectors'
    /// answers, so adding it did not change the wire version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ReasonCode>,
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

/// The code for an outcome that came with no reason at all; `None` for `aired`.
pub fn unspecified(outcome: Outcome) -> Option<ReasonCode> {
    Some(match outcome {
        Outcome::Aired => return None,
        Outcome::Partial => ReasonCode::PartialUnspecified,
        Outcome::Failed => ReasonCode::FailedUnspecified,
        Outcome::Missed => ReasonCode::MissedUnspecified,
        Outcome::Preempted => ReasonCode::PreemptedUnspecified,
        Outcome::Skipped => ReasonCode::SkippedUnspecified,
    })
}

/// The code this project's stations mean by the free text `text` for `outcome`: the code of a
/// version 1 record (which carries only text), read from the exact phrases the stations write
/// first in their reasons; any other text is [`ReasonCode::Unknown`] (the text stays as detail).
/// `None` for an aired record without a reason. Stations no longer call it: they decide a code
/// where its cause is known (player, scheduler, crash records), and their tests check that each
/// phrase they write reads back here as the code they gave it (an output failure's `output: …`
/// text reads as `unknown`: the player codes it `*.output`).
///
/// **Invariant:** the mapping of a given (outcome, text) never changes once released: the
/// collector stored the codes of version 1 records by it (migration 5), and exports of a database
/// holding only version 1 records stay byte-identical.
pub fn classify(outcome: Outcome, text: Option<&str>) -> Option<ReasonCode> {
    use ReasonCode as C;
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return unspecified(outcome);
    };
    // Whole phrases the station writes first in its reason (station/scheduler, station daemon,
    // player); what follows them is detail (times, keys, paths).
    let starts = |p: &str| text.starts_with(p);
    let code = match outcome {
        Outcome::Missed if starts("station was down") => C::MissedStationDown,
        Outcome::Missed if starts("clock jumped forward by ") => C::MissedClockJump,
        Outcome::Missed if starts("station could not start it in time") => C::MissedStartTooLate,
        Outcome::Missed if starts("not known whether it aired") => C::MissedRecordLost,
        Outcome::Skipped if starts("air busy with ") => C::SkippedAirBusy,
        Outcome::Skipped if starts("hard start overlaps ") => C::SkippedOverlap,
        Outcome::Preempted if starts("preempted by ") => C::PreemptedHigherPriority,
        Outcome::Partial if starts("station stopped during the airing (crash or power loss)") => {
            C::PartialCrash
        }
        Outcome::Failed
            if starts("station stopped before the first sample (crash or power loss)") =>
        {
            C::FailedCrash
        }
        Outcome::Partial
            if starts("station shut down")
                || starts("player shut down")
                || starts("the player shut down") =>
        {
            C::PartialShutdown
        }
        Outcome::Partial if starts("hard stop at ") => C::PartialHardStop,
        Outcome::Failed if starts("stopped before the first sample") => C::FailedStopped,
        Outcome::Failed if starts("not started: the in-flight marker cannot be made durable") => {
            C::FailedStateUnwritable
        }
        Outcome::Failed
            if starts("the session has no playable items") || starts("no item could be read") =>
        {
            C::FailedNoPlayableItems
        }
        Outcome::Partial | Outcome::Failed => match item_cause(text) {
            Some(cause) => cause_code(outcome, cause),
            None => C::Unknown,
        },
        _ => C::Unknown,
    };
    Some(code)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    FileMissing,
    Decoder,
    Output,
    Relay,
}

/// The cause named by the player's first reason (`item N skipped: PATH: cannot read: …`,
/// `item N skipped: PATH: not a decodable …`, `relay: …`, the output's errors).
fn item_cause(text: &str) -> Option<Cause> {
    let first = text.split("; ").next().unwrap_or(text);
    if first.starts_with("relay: ") {
        return Some(Cause::Relay);
    }
    if first.starts_with("item ") {
        if first.contains(": cannot read: ") {
            return Some(Cause::FileMissing);
        }
        if first.contains(": not a decodable ") {
            return Some(Cause::Decoder);
        }
        return None;
    }
    if first == "output unavailable"
        || first.starts_with("no audio output device")
        || first.starts_with("audio device ")
    {
        return Some(Cause::Output);
    }
    None
}

fn cause_code(outcome: Outcome, cause: Cause) -> ReasonCode {
    use ReasonCode as C;
    let partial = outcome == Outcome::Partial;
    match (cause, partial) {
        (Cause::FileMissing, true) => C::PartialFileMissing,
        (Cause::FileMissing, false) => C::FailedFileMissing,
        (Cause::Decoder, true) => C::PartialDecoder,
        (Cause::Decoder, false) => C::FailedDecoder,
        (Cause::Output, true) => C::PartialOutput,
        (Cause::Output, false) => C::FailedOutput,
        (Cause::Relay, true) => C::PartialRelay,
        (Cause::Relay, false) => C::FailedRelay,
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
            v: RECORD_VERSION,
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
            reason_code: None,
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
            schedule_version: None,
            bulletin: None,
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

    /// `rec` signed as it is, without the checks of [`AiringRecord::sign`] (what a station of
    /// another build, or a forger with the key, can send).
    fn sign_unchecked(rec: &AiringRecord, k: &SigningKey) -> SignedRecord {
        let bytes = serde_json::to_string(rec).unwrap();
        SignedRecord {
            hash: sha256_hex(bytes.as_bytes()),
            signature: B64.encode(k.sign(bytes.as_bytes()).to_bytes()),
            record: RawValue::from_string(bytes).unwrap(),
        }
    }

    fn failed(v: u32, code: Option<ReasonCode>) -> AiringRecord {
        let mut r = sample(1, GENESIS_HASH);
        r.v = v;
        r.outcome = Outcome::Failed;
        r.aired_secs = 0.0;
        r.reason = Some("decoder said no".into());
        r.reason_code = code;
        r
    }

    #[test]
    fn a_version_2_record_carries_its_code_signed_and_a_version_1_record_is_classified() {
        let k = key(7);
        let v2 = failed(RECORD_VERSION, Some(ReasonCode::FailedDecoder));
        let signed = v2.sign(&k).unwrap();
        assert!(
            signed
                .bytes()
                .contains(r#""reason":"decoder said no","reason_code":"failed.decoder","#),
            "{}",
            signed.bytes()
        );
        let back = signed.verify(&k.verifying_key()).unwrap();
        assert_eq!(back.code(), Some(ReasonCode::FailedDecoder));
        // The code is signed: changing it breaks the hash, and a new hash the signature.
        let mut forged = signed.clone();
        let text = signed.bytes().replace("failed.decoder", "failed.output");
        forged.record = RawValue::from_string(text.clone()).unwrap();
        assert!(matches!(
            forged.verify(&k.verifying_key()),
            Err(WireError::HashMismatch { .. })
        ));
        forged.hash = sha256_hex(text.as_bytes());
        assert!(matches!(
            forged.verify(&k.verifying_key()),
            Err(WireError::BadSignature { .. })
        ));
        // A version 1 record (no code) verifies as before; its code is read from its text, and
        // its bytes are what version 1 stations wrote (no `reason_code` key).
        let mut v1 = failed(RECORD_VERSION_V1, None);
        v1.reason = Some("output unavailable".into());
        let signed = v1.sign(&k).unwrap();
        assert!(!signed.bytes().contains("reason_code"));
        let back = signed.verify(&k.verifying_key()).unwrap();
        assert_eq!(back.code(), Some(ReasonCode::FailedOutput));
        // An aired record of version 2 needs no code.
        assert_eq!(
            sample(1, GENESIS_HASH)
                .sign(&k)
                .unwrap()
                .parse()
                .unwrap()
                .code(),
            None
        );
    }

    #[test]
    fn reason_codes_are_refused_at_decode_when_unknown_missing_or_on_version_1() {
        let k = key(7);
        for (what, rec, says) in [
            (
                "unknown",
                failed(RECORD_VERSION, Some(ReasonCode::parse("failed.gremlins"))),
                "`failed.gremlins` is not a station's reason code",
            ),
            (
                "collector-side",
                failed(RECORD_VERSION, Some(ReasonCode::RefusedChain)),
                "`refused.chain` is not a station's reason code",
            ),
            (
                "missing",
                failed(RECORD_VERSION, None),
                "missing; a version 2 record with outcome `failed`",
            ),
            (
                "on version 1",
                failed(RECORD_VERSION_V1, Some(ReasonCode::FailedDecoder)),
                "on a version 1 record",
            ),
        ] {
            let err = sign_unchecked(&rec, &k).parse().unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(
                    err,
                    WireError::ReasonCode {
                        field: "reason_code",
                        ..
                    }
                ),
                "{what}: {text}"
            );
            assert!(
                text.starts_with("field `reason_code`: ") && text.contains(says),
                "{what}: {text}"
            );
            // And a station of this build cannot sign it.
            assert!(rec.sign(&k).is_err(), "{what}");
        }
        // Neither version 0 nor 3 is read; a heartbeat stays at version 1.
        for v in [0, 3] {
            let err = sign_unchecked(&failed(v, None), &k).parse().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("record has wire version {v}, this build reads versions 1 and 2")
            );
        }
        let mut hb = heartbeat(None);
        hb.v = RECORD_VERSION;
        assert!(matches!(
            hb.sign(&k),
            Err(WireError::Version { found: 2, .. })
        ));
    }

    fn heartbeat(journal: Option<JournalHealth>) -> Heartbeat {
        Heartbeat {
            v: HEARTBEAT_VERSION,
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
            sync: None,
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
    fn heartbeat_sync_state_is_optional_and_range_checked() {
        let k = key(7);
        let old = heartbeat(None).sign(&k).unwrap();
        assert!(!old.heartbeat.get().contains("\"sync\""));
        assert_eq!(old.verify(&k.verifying_key()).unwrap().sync, None);
        let mut hb = heartbeat(None);
        hb.sync = Some(SyncHealth {
            active_version: Some(7),
            pending_version: Some(8),
            missing_files: 2,
            free_bytes: Some(1 << 30),
            last_error_code: Some(ReasonCode::SyncHashMismatch),
        });
        let new = hb.sign(&k).unwrap();
        assert!(
            new.heartbeat
                .get()
                .contains("\"last_error_code\":\"sync.hash_mismatch\""),
            "{}",
            new.heartbeat.get()
        );
        assert_eq!(new.verify(&k.verifying_key()).unwrap().sync, hb.sync);
        let bad = new
            .heartbeat
            .get()
            .replace("\"missing_files\":2", "\"missing_files\":9007199254740992");
        assert!(matches!(
            Heartbeat::decode(&bad),
            Err(WireError::OutOfRange { .. })
        ));
        // The failure's code is a sync one; a newer station's unknown `sync.*` code is kept.
        let other = new
            .heartbeat
            .get()
            .replace("\"sync.hash_mismatch\"", "\"missed.station_down\"");
        assert!(matches!(
            Heartbeat::decode(&other),
            Err(WireError::ReasonCode {
                field: "sync.last_error_code",
                ..
            })
        ));
        let newer = new
            .heartbeat
            .get()
            .replace("\"sync.hash_mismatch\"", "\"sync.solar_flare\"");
        assert_eq!(
            Heartbeat::decode(&newer)
                .unwrap()
                .sync
                .unwrap()
                .last_error_code,
            Some(ReasonCode::Other("sync.solar_flare".into()))
        );
    }

    #[test]
    fn bulletin_ref_is_optional_signed_and_range_checked() {
        let k = key(9);
        let plain = sample(1, GENESIS_HASH).sign(&k).unwrap();
        assert!(!plain.bytes().contains("bulletin"));
        assert_eq!(plain.parse().unwrap().bulletin, None);
        let id = "0123456789abcdef0123456789abcdef";
        let mut rec = sample(1, GENESIS_HASH);
        rec.bulletin = Some(BulletinRef {
            id: id.into(),
            repeat: 20,
            synthetic: false,
        });
        let signed = rec.sign(&k).unwrap();
        assert!(
            signed.bytes().ends_with(&format!(
                ",\"bulletin\":{{\"id\":\"{id}\",\"repeat\":20}}}}"
            )),
            "{}",
            signed.bytes()
        );
        let back = signed.verify(&k.verifying_key()).unwrap();
        assert_eq!(back.bulletin.as_ref().map(|b| b.repeat), Some(20));
        let bad = |from: &str, to: &str| {
            let forged = SignedRecord {
                record: RawValue::from_string(signed.bytes().replace(from, to)).unwrap(),
                ..signed.clone()
            };
            forged.parse().unwrap_err()
        };
        for r in ["\"repeat\":0", "\"repeat\":21"] {
            assert!(
                matches!(
                    bad("\"repeat\":20", r),
                    WireError::OutOfRange {
                        field: "bulletin.repeat",
                        ..
                    }
                ),
                "{r}"
            );
        }
        for i in ["0123456789ABCDEF0123456789ABCDEF", "0123", "../etc/passwd"] {
            assert!(
                matches!(
                    bad(id, i),
                    WireError::BadField {
                        field: "bulletin.id",
                        ..
                    }
                ),
                "{i}"
            );
        }
        assert!(matches!(
            bad("\"repeat\":20", "\"repeat\":20,\"extra\":1"),
            WireError::Malformed(_)
        ));
    }

    #[test]
    fn schedule_version_is_optional_signed_and_range_checked() {
        let k = key(8);
        // Absent: not serialised, so a record without it has the bytes it always had.
        let plain = sample(1, GENESIS_HASH).sign(&k).unwrap();
        assert!(!plain.bytes().contains("schedule_version"));
        assert_eq!(plain.parse().unwrap().schedule_version, None);
        // Present: signed with the rest, read back.
        let mut rec = sample(1, GENESIS_HASH);
        rec.schedule_version = Some(MAX_WIRE_INT);
        let signed = rec.sign(&k).unwrap();
        assert!(
            signed
                .bytes()
                .ends_with(&format!(",\"schedule_version\":{MAX_WIRE_INT}}}")),
            "{}",
            signed.bytes()
        );
        let back = signed.verify(&k.verifying_key()).unwrap();
        assert_eq!(back.schedule_version, Some(MAX_WIRE_INT));
        // 0 and 2^53 are refused at decode, naming the field.
        for bad in [0, MAX_WIRE_INT + 1] {
            let text = signed
                .bytes()
                .replace(&MAX_WIRE_INT.to_string(), &bad.to_string());
            let forged = SignedRecord {
                record: RawValue::from_string(text).unwrap(),
                ..signed.clone()
            };
            let e = forged.parse().unwrap_err();
            assert!(
                matches!(
                    e,
                    WireError::OutOfRange {
                        field: "schedule_version",
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("schedule_version"), "{e}");
        }
        // Nor may a station sign one.
        let mut rec = sample(1, GENESIS_HASH);
        rec.schedule_version = Some(0);
        assert!(rec.sign(&k).is_err());
    }

    #[test]
    fn public_key_round_trips() {
        let vk = key(3).verifying_key();
        assert_eq!(decode_public_key(&encode_public_key(&vk)).unwrap(), vk);
        assert!(decode_public_key("not a key").is_err());
    }

    fn check(outcome: Outcome, text: Option<&str>, expected: Option<ReasonCode>) {
        assert_eq!(classify(outcome, text), expected, "{outcome:?} {text:?}");
    }

    #[test]
    fn v1_free_text_maps_to_a_code_only_where_exact() {
        use Outcome::*;
        use ReasonCode as C;
        check(Aired, None, None);
        check(Missed, None, Some(C::MissedUnspecified));
        check(Failed, Some(" "), Some(C::FailedUnspecified));
        check(
            Missed,
            Some(
                "station was down (last alive 2019-03-03T21:50:00Z, restarted 2019-03-03T23:00:00Z)",
            ),
            Some(C::MissedStationDown),
        );
        check(
            Missed,
            Some(
                "not known whether it aired: the previous run's records since … were not all kept",
            ),
            Some(C::MissedRecordLost),
        );
        check(
            Missed,
            Some("clock jumped forward by 3600 s (from a to b) past its start"),
            Some(C::MissedClockJump),
        );
        check(
            Missed,
            Some("station could not start it in time (late by 40 s)"),
            Some(C::MissedStartTooLate),
        );
        check(
            Skipped,
            Some("air busy with x (Urgent) for more than the 60 s grace"),
            Some(C::SkippedAirBusy),
        );
        check(
            Skipped,
            Some("hard start overlaps x of equal priority"),
            Some(C::SkippedOverlap),
        );
        check(
            Preempted,
            Some("preempted by urgent@2019"),
            Some(C::PreemptedHigherPriority),
        );
        check(Partial, Some("station shut down"), Some(C::PartialShutdown));
        check(
            Partial,
            Some("station shut down (the player shut down)"),
            Some(C::PartialShutdown),
        );
        check(
            Partial,
            Some("station stopped during the airing (crash or power loss); at least 12 s aired"),
            Some(C::PartialCrash),
        );
        check(
            Failed,
            Some("station stopped before the first sample (crash or power loss)"),
            Some(C::FailedCrash),
        );
        check(
            Failed,
            Some("not started: the in-flight marker cannot be made durable (state.bin: EIO)"),
            Some(C::FailedStateUnwritable),
        );
        check(
            Partial,
            Some("hard stop at max_secs 900.000"),
            Some(C::PartialHardStop),
        );
        check(
            Failed,
            Some("item 1 skipped: a.mp3: cannot read: No such file or directory (os error 2)"),
            Some(C::FailedFileMissing),
        );
        check(
            Partial,
            Some("item 2 skipped: b.wav: not a decodable WAV/MP3/Ogg Vorbis/FLAC file: eof"),
            Some(C::PartialDecoder),
        );
        check(Failed, Some("output unavailable"), Some(C::FailedOutput));
        check(Failed, Some("relay: connect failed"), Some(C::FailedRelay));
        check(
            Failed,
            Some("the session has no playable items"),
            Some(C::FailedNoPlayableItems),
        );
        // Text no station of this project writes, or a phrase under another outcome.
        check(Missed, Some("mất điện"), Some(C::Unknown));
        check(Failed, Some("station was down"), Some(C::Unknown));
        check(Partial, Some("item 3: weird"), Some(C::Unknown));
    }
}
