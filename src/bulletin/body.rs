//! The bulletin and its cancellation as they travel: the bodies of signed envelopes of kinds
//! `bulletin` and `cancel` (`centre::signed`), with every field range-checked (docs/bulletins.md).
//!
//! ```json
//! {"v":1,"id":"<32 hex>","created_at":"2027-09-12T01:00:00Z","title":"Cảnh báo bão số 5",
//!  "priority":"emergency","targets":{"kind":"area","prefix":"51"},
//!  "not_before":"2027-09-12T01:00:00Z","not_after":"2027-09-12T13:00:00Z",
//!  "repeats":{"count":3,"interval_secs":1800},
//!  "audio":{"sha256":"<hex64>","size":1440044,"duration_ms":45000},
//!  "text":null,"synthetic":false}
//! ```
//!
//! **Invariant:** a [`Bulletin`] or [`Cancel`] value comes out of [`Bulletin::decode`] /
//! [`Cancel::decode`] only after every field was checked against the limits below (each error
//! names its field), and [`Bulletin::sign`] signs only a bulletin that passes the same checks, so
//! the centre cannot send what a station would refuse as malformed. The signed bytes are
//! [`Bulletin::to_body`]'s, under the envelope's kind `bulletin` (a manifest's or a cancel's
//! signature never opens as a bulletin's: the kind is in the signed message). Pure: no I/O.

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::centre::CentreSigner;
use crate::centre::signed::{Envelope, Kind};
use crate::schedule::Priority;

/// The bulletin format this build reads and writes.
pub const BULLETIN_V: u32 = 1;
/// Largest body accepted (a list of every station of a province fits many times over).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most airings of one bulletin (an operator's "3 times, 30 minutes apart"; 20 covers a day of
/// hourly storm warnings in the daytime).
pub const MAX_REPEATS: u32 = crate::wire::MAX_BULLETIN_REPEATS;
/// Shortest gap between the starts of two repeats: a minute (closer is one long airing).
pub const MIN_INTERVAL_SECS: u32 = 60;
/// Longest gap between two repeats: a day.
pub const MAX_INTERVAL_SECS: u32 = 86_400;
/// Shortest validity window: a minute (shorter cannot reach a station on a slow network).
pub const MIN_WINDOW_SECS: i64 = 60;
/// Longest validity window: seven days (a week-long epidemic notice; a station keeps the ids it
/// aired only for the windows it holds, so the window bounds what it must remember).
pub const MAX_WINDOW_SECS: i64 = 7 * 86_400;
/// Largest audio file: 1 GiB (an hour of 16-bit stereo WAV at 48 kHz is 0.7 GB).
pub const MAX_AUDIO_BYTES: u64 = 1 << 30;
/// Longest audio: one hour (a bulletin, not a programme).
pub const MAX_AUDIO_MS: u64 = 3_600_000;
/// Longest title, characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest text (read by text-to-speech, shown on pages), characters.
pub const MAX_TEXT_CHARS: usize = 5_000;
/// Most stations in a list of targets.
pub const MAX_TARGET_STATIONS: usize = 20_000;
/// Longest station id, bytes (as a manifest's).
pub const MAX_STATION_ID_BYTES: usize = 64;
/// Longest area-code prefix, digits (a commune's code, mã đơn vị hành chính cấp xã, has 5).
pub const MAX_AREA_PREFIX_DIGITS: usize = 5;

/// A bulletin's id: 128 random bits, chosen by the centre when it is sent.
///
/// Random rather than a counter: a counter lives in the collector's database, and a database
/// restored from a backup would hand out ids stations already aired — which they would refuse as
/// replays, so an emergency would not air. 128 random bits never collide in practice, need no
/// coordination, and a station's replay check needs no per-centre state beyond the ids it aired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BulletinId([u8; 16]);

impl BulletinId {
    /// A fresh random id (the operating system's generator).
    pub fn random() -> Result<BulletinId, getrandom::Error> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b)?;
        Ok(BulletinId(b))
    }

    /// The id of these bytes (tests, and ids read back from a store).
    pub fn from_bytes(b: [u8; 16]) -> BulletinId {
        BulletinId(b)
    }

    /// 32 lowercase hex digits, as on the wire.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The id spelled by exactly 32 lowercase hex digits.
    pub fn parse(s: &str) -> Option<BulletinId> {
        if s.len() != 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(BulletinId(out))
    }
}

impl std::fmt::Display for BulletinId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for BulletinId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for BulletinId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        BulletinId::parse(&s).ok_or_else(|| serde::de::Error::custom("not 32 lowercase hex digits"))
    }
}

/// Which stations a bulletin is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTargets", into = "RawTargets")]
pub enum Targets {
    /// Every station of the centre.
    All,
    /// Every station whose area code starts with these digits (a district's communes).
    Area(String),
    /// These stations (sorted, each once).
    Stations(Vec<String>),
}

impl Targets {
    /// Whether station `station_id` with area code `area_code` is among the targets.
    pub fn includes(&self, station_id: &str, area_code: &str) -> bool {
        match self {
            Targets::All => true,
            Targets::Area(prefix) => area_code.starts_with(prefix.as_str()),
            Targets::Stations(ids) => ids.binary_search_by(|s| s.as_str().cmp(station_id)).is_ok(),
        }
    }
}

/// The targets as they travel: `{"kind":"all"}`, `{"kind":"area","prefix":"51"}`,
/// `{"kind":"stations","stations":["p1","p2"]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stations: Option<Vec<String>>,
}

impl TryFrom<RawTargets> for Targets {
    type Error = String;

    fn try_from(r: RawTargets) -> Result<Targets, String> {
        match (r.kind.as_str(), r.prefix, r.stations) {
            ("all", None, None) => Ok(Targets::All),
            ("area", Some(p), None) => Ok(Targets::Area(p)),
            ("stations", None, Some(s)) => Ok(Targets::Stations(s)),
            ("all" | "area" | "stations", _, _) => Err(format!(
                "kind {:?} takes {}",
                r.kind,
                match r.kind.as_str() {
                    "all" => "no other field",
                    "area" => "`prefix` only",
                    _ => "`stations` only",
                }
            )),
            (k, _, _) => Err(format!("unknown kind {k:?} (all, area or stations)")),
        }
    }
}

impl From<Targets> for RawTargets {
    fn from(t: Targets) -> RawTargets {
        match t {
            Targets::All => RawTargets {
                kind: "all".into(),
                prefix: None,
                stations: None,
            },
            Targets::Area(p) => RawTargets {
                kind: "area".into(),
                prefix: Some(p),
                stations: None,
            },
            Targets::Stations(s) => RawTargets {
                kind: "stations".into(),
                prefix: None,
                stations: Some(s),
            },
        }
    }
}

/// How many times a bulletin airs, and how far apart their starts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeats {
    /// 1..=[`MAX_REPEATS`].
    pub count: u32,
    /// 0 when `count` is 1; otherwise [`MIN_INTERVAL_SECS`]..=[`MAX_INTERVAL_SECS`].
    pub interval_secs: u32,
}

/// The audio a bulletin airs, named as manifests name content (the content library's SHA-256,
/// fetched by the station like any content and verified before it airs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioRef {
    pub sha256: String,
    /// Bytes, 1..=[`MAX_AUDIO_BYTES`].
    pub size: u64,
    /// Milliseconds, as the centre measured it, 1..=[`MAX_AUDIO_MS`].
    pub duration_ms: u64,
}

/// A decoded, checked bulletin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulletin {
    pub v: u32,
    pub id: BulletinId,
    pub created_at: DateTime<Utc>,
    /// What the pages call it (Vietnamese, typed by the admin).
    pub title: String,
    pub priority: Priority,
    pub targets: Targets,
    /// Airs no earlier than this.
    pub not_before: DateTime<Utc>,
    /// No airing starts at or after this.
    pub not_after: DateTime<Utc>,
    pub repeats: Repeats,
    pub audio: AudioRef,
    /// The text of the announcement, when one was typed (read by text-to-speech when no
    /// recording exists).
    pub text: Option<String>,
    /// The audio was synthesised from `text` (espeak-ng), shown as such on pages and records.
    pub synthetic: bool,
}

/// A cancellation: stations drop bulletin `id`'s airings not yet aired and stop it on air.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    pub v: u32,
    pub id: BulletinId,
    pub cancelled_at: DateTime<Utc>,
}

/// Why a body does not decode (the station reports `bulletin.malformed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulletinError {
    #[error("bulletin: body larger than {MAX_BODY_BYTES} bytes ({0})")]
    TooLarge(usize),
    #[error("bulletin: not JSON of the bulletin's shape: {0}")]
    Malformed(String),
    #[error("bulletin: format v{0}, this build reads v{BULLETIN_V} (update loa on the station)")]
    Version(u64),
    #[error("bulletin: field `{field}`: {why}")]
    Field { field: String, why: String },
}

fn field(field: impl Into<String>, why: impl Into<String>) -> BulletinError {
    BulletinError::Field {
        field: field.into(),
        why: why.into(),
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A station id as schedules spell them: lowercase ASCII letters, digits, `-`, `_`.
fn is_station_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_STATION_ID_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Decode `body` as JSON of type `T` after checking its size and format version.
fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BulletinError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BulletinError::TooLarge(body.len()));
    }
    // The format version first, so a newer format is named as such, not as a shape error.
    let probe: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| BulletinError::Malformed(e.to_string()))?;
    match probe.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(BULLETIN_V) => {}
        Some(v) => return Err(BulletinError::Version(v)),
        None => return Err(field("v", "missing or not a whole number")),
    }
    serde_path_to_error::deserialize(probe).map_err(|e| {
        let path = e.path().to_string();
        field(path, e.into_inner().to_string())
    })
}

impl Bulletin {
    /// Decode and check a bulletin body (the exact bytes that were signed).
    pub fn decode(body: &[u8]) -> Result<Bulletin, BulletinError> {
        let b: Bulletin = decode_json(body)?;
        b.check()?;
        Ok(b)
    }

    /// The canonical body bytes (what the centre signs): compact JSON, fields in declaration
    /// order.
    pub fn to_body(&self) -> Vec<u8> {
        // Strings, numbers, dates: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The bulletin's airing time: its audio's duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.audio.duration_ms as f64 / 1000.0
    }

    /// The checks [`Bulletin::decode`] makes on the fields' values (also for a bulletin built
    /// in memory, before it is signed).
    pub fn check(&self) -> Result<(), BulletinError> {
        if self.v != BULLETIN_V {
            return Err(BulletinError::Version(u64::from(self.v)));
        }
        let title_chars = self.title.chars().count();
        if self.title.trim().is_empty() || title_chars > MAX_TITLE_CHARS {
            return Err(field(
                "title",
                format!("must be 1 to {MAX_TITLE_CHARS} characters ({title_chars})"),
            ));
        }
        if self.title.chars().any(char::is_control) {
            return Err(field("title", "contains a control character"));
        }
        self.check_targets()?;
        let window = (self.not_after - self.not_before).num_seconds();
        if self.not_after <= self.not_before {
            return Err(field("not_after", "is not after not_before"));
        }
        if !(MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(&window) {
            return Err(field(
                "not_after",
                format!(
                    "the window not_before..not_after is {window} s, not in \
                     {MIN_WINDOW_SECS}..={MAX_WINDOW_SECS} s (one minute to seven days)"
                ),
            ));
        }
        if self.created_at > self.not_after {
            return Err(field("created_at", "is after not_after"));
        }
        let Repeats {
            count,
            interval_secs,
        } = self.repeats;
        if !(1..=MAX_REPEATS).contains(&count) {
            return Err(field(
                "repeats.count",
                format!("{count} is not in 1..={MAX_REPEATS}"),
            ));
        }
        if count == 1 && interval_secs != 0 {
            return Err(field(
                "repeats.interval_secs",
                format!("{interval_secs}: must be 0 when repeats.count is 1"),
            ));
        }
        if count > 1 {
            if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&interval_secs) {
                return Err(field(
                    "repeats.interval_secs",
                    format!(
                        "{interval_secs} is not in {MIN_INTERVAL_SECS}..={MAX_INTERVAL_SECS} \
                         (one minute to one day)"
                    ),
                ));
            }
            // The last repeat must be able to start inside the window.
            let span = i64::from(count - 1) * i64::from(interval_secs);
            if span >= window {
                return Err(field(
                    "repeats",
                    format!(
                        "{count} airings {interval_secs} s apart need {span} s, the window is \
                         {window} s: the last would start after not_after"
                    ),
                ));
            }
        }
        if !is_sha256_hex(&self.audio.sha256) {
            return Err(field("audio.sha256", "not 64 lowercase hex digits"));
        }
        if !(1..=MAX_AUDIO_BYTES).contains(&self.audio.size) {
            return Err(field(
                "audio.size",
                format!("{} is not in 1..={MAX_AUDIO_BYTES} bytes", self.audio.size),
            ));
        }
        if !(1..=MAX_AUDIO_MS).contains(&self.audio.duration_ms) {
            return Err(field(
                "audio.duration_ms",
                format!(
                    "{} is not in 1..={MAX_AUDIO_MS} ms (one hour)",
                    self.audio.duration_ms
                ),
            ));
        }
        match &self.text {
            Some(t) => {
                let n = t.chars().count();
                if t.trim().is_empty() || n > MAX_TEXT_CHARS {
                    return Err(field(
                        "text",
                        format!("must be 1 to {MAX_TEXT_CHARS} characters ({n})"),
                    ));
                }
            }
            None if self.synthetic => {
                return Err(field(
                    "synthetic",
                    "synthetic audio needs the text it was read from",
                ));
            }
            None => {}
        }
        Ok(())
    }

    fn check_targets(&self) -> Result<(), BulletinError> {
        match &self.targets {
            Targets::All => Ok(()),
            Targets::Area(p) => {
                if p.is_empty()
                    || p.len() > MAX_AREA_PREFIX_DIGITS
                    || !p.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(field(
                        "targets.prefix",
                        format!("{p:?} is not 1 to {MAX_AREA_PREFIX_DIGITS} digits"),
                    ));
                }
                Ok(())
            }
            Targets::Stations(ids) => {
                if ids.is_empty() || ids.len() > MAX_TARGET_STATIONS {
                    return Err(field(
                        "targets.stations",
                        format!("{} stations, not in 1..={MAX_TARGET_STATIONS}", ids.len()),
                    ));
                }
                let mut previous: Option<&str> = None;
                for (i, id) in ids.iter().enumerate() {
                    if !is_station_id(id) {
                        return Err(field(
                            format!("targets.stations[{i}]"),
                            format!("{id:?} is not a station id"),
                        ));
                    }
                    if previous.is_some_and(|p| p >= id.as_str()) {
                        return Err(field(
                            format!("targets.stations[{i}]"),
                            format!("{id:?} is not after the previous id (sorted, each once)"),
                        ));
                    }
                    previous = Some(id);
                }
                Ok(())
            }
        }
    }

    /// The signed envelope of this bulletin (checked first: the centre never signs what a
    /// station would refuse as malformed).
    pub fn sign(&self, key: &SigningKey) -> Result<Envelope, BulletinError> {
        self.check()?;
        Ok(Envelope::sign(key, Kind::Bulletin, self.to_body()))
    }

    /// [`Bulletin::sign`] with the collector's centre signer.
    pub fn sign_by(&self, signer: &CentreSigner) -> Result<Envelope, BulletinError> {
        self.check()?;
        Ok(signer.sign(Kind::Bulletin, self.to_body()))
    }
}

impl Cancel {
    /// Decode and check a cancel body.
    pub fn decode(body: &[u8]) -> Result<Cancel, BulletinError> {
        let c: Cancel = decode_json(body)?;
        if c.v != BULLETIN_V {
            return Err(BulletinError::Version(u64::from(c.v)));
        }
        Ok(c)
    }

    /// The canonical body bytes.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The signed envelope of this cancellation (kind `cancel`).
    pub fn sign(&self, key: &SigningKey) -> Envelope {
        Envelope::sign(key, Kind::Cancel, self.to_body())
    }

    /// [`Cancel::sign`] with the collector's centre signer.
    pub fn sign_by(&self, signer: &CentreSigner) -> Envelope {
        signer.sign(Kind::Cancel, self.to_body())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// A valid bulletin: emergency to every station, 3 airings 30 min apart in a 12 h window.
    pub(crate) fn sample() -> Bulletin {
        Bulletin {
            v: 1,
            id: BulletinId::from_bytes([7; 16]),
            created_at: at("2027-09-12T01:00:00Z"),
            title: "Cảnh báo bão số 5".into(),
            priority: Priority::Emergency,
            targets: Targets::All,
            not_before: at("2027-09-12T01:00:00Z"),
            not_after: at("2027-09-12T13:00:00Z"),
            repeats: Repeats {
                count: 3,
                interval_secs: 1800,
            },
            audio: AudioRef {
                sha256: "ab".repeat(32),
                size: 1_440_044,
                duration_ms: 45_000,
            },
            text: None,
            synthetic: false,
        }
    }

    fn body_with(path: &[&str], value: serde_json::Value) -> Vec<u8> {
        let mut v: serde_json::Value =
            serde_json::from_slice(&sample().to_body()).unwrap_or_else(|e| panic!("{e}"));
        let mut cur = &mut v;
        for (i, p) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cur[*p] = value;
                break;
            }
            cur = &mut cur[*p];
        }
        v.to_string().into_bytes()
    }

    #[test]
    fn a_bulletin_round_trips_through_its_body() {
        let b = sample();
        let body = b.to_body();
        assert_eq!(Bulletin::decode(&body), Ok(b.clone()));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["id"], "07".repeat(16));
        assert_eq!(v["priority"], "emergency");
        assert_eq!(v["targets"], serde_json::json!({"kind":"all"}));
        for t in [
            Targets::Area("51".into()),
            Targets::Stations(vec!["p1".into(), "p2".into()]),
        ] {
            let b = Bulletin {
                targets: t,
                ..sample()
            };
            assert_eq!(Bulletin::decode(&b.to_body()), Ok(b));
        }
        let c = Cancel {
            v: 1,
            id: b.id,
            cancelled_at: at("2027-09-12T02:00:00Z"),
        };
        assert_eq!(Cancel::decode(&c.to_body()), Ok(c));
    }

    #[test]
    fn the_id_is_32_hex_digits_and_random() {
        let a = BulletinId::random().unwrap_or_else(|e| panic!("{e}"));
        let b = BulletinId::random().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a, b);
        assert_eq!(BulletinId::parse(&a.to_hex()), Some(a));
        let bad = [
            String::new(),
            "ab".into(),
            "A".repeat(32),
            "0".repeat(31),
            "0".repeat(33),
            "g".repeat(32),
        ];
        for b in &bad {
            assert_eq!(BulletinId::parse(b), None, "{b}");
        }
    }

    /// Each bad value is refused with an error naming its field.
    #[test]
    fn every_field_is_range_checked_and_named() {
        use serde_json::json;
        let check = |path: &[&str], value: serde_json::Value, want_field: &str| {
            let e = Bulletin::decode(&body_with(path, value.clone()));
            match &e {
                Err(BulletinError::Field { field, .. }) if field == want_field => {}
                _ => panic!("{path:?} = {value}: want field {want_field}, got {e:?}"),
            }
        };
        check(&["id"], json!("xyz"), "id");
        check(&["id"], json!(7), "id");
        check(&["created_at"], json!("yesterday"), "created_at");
        check(&["created_at"], json!("2027-09-12T14:00:00Z"), "created_at");
        check(&["title"], json!(""), "title");
        check(&["title"], json!(" "), "title");
        check(&["title"], json!("a".repeat(201)), "title");
        check(&["title"], json!("a\nb"), "title");
        check(&["priority"], json!("urgent"), "priority");
        check(&["targets"], json!({"kind":"ward"}), "targets");
        check(&["targets"], json!({"kind":"all","prefix":"51"}), "targets");
        check(&["targets"], json!({"kind":"area"}), "targets");
        check(
            &["targets"],
            json!({"kind":"area","prefix":"5a"}),
            "targets.prefix",
        );
        check(
            &["targets"],
            json!({"kind":"area","prefix":""}),
            "targets.prefix",
        );
        check(
            &["targets"],
            json!({"kind":"area","prefix":"123456"}),
            "targets.prefix",
        );
        check(
            &["targets"],
            json!({"kind":"stations","stations":[]}),
            "targets.stations",
        );
        check(
            &["targets"],
            json!({"kind":"stations","stations":["p2","p1"]}),
            "targets.stations[1]",
        );
        check(
            &["targets"],
            json!({"kind":"stations","stations":["p1","p1"]}),
            "targets.stations[1]",
        );
        check(
            &["targets"],
            json!({"kind":"stations","stations":["../p1"]}),
            "targets.stations[0]",
        );
        check(&["not_before"], json!("2027-09-12T13:00:00Z"), "not_after");
        check(&["not_before"], json!("2027-09-12T12:59:30Z"), "not_after");
        check(&["not_after"], json!("2027-09-19T01:00:01Z"), "not_after");
        check(&["repeats", "count"], json!(0), "repeats.count");
        check(&["repeats", "count"], json!(21), "repeats.count");
        check(&["repeats", "count"], json!(-1), "repeats.count");
        check(&["repeats", "count"], json!(1u64 << 33), "repeats.count");
        check(&["repeats", "count"], json!(2.5), "repeats.count");
        check(
            &["repeats", "interval_secs"],
            json!(59),
            "repeats.interval_secs",
        );
        check(
            &["repeats", "interval_secs"],
            json!(86_401),
            "repeats.interval_secs",
        );
        // 3 airings 6 h apart need 12 h: the window is exactly 12 h, the last would start at
        // not_after.
        check(&["repeats", "interval_secs"], json!(21_600), "repeats");
        check(
            &["repeats"],
            json!({"count":1,"interval_secs":60}),
            "repeats.interval_secs",
        );
        check(&["audio", "sha256"], json!("AB".repeat(32)), "audio.sha256");
        check(&["audio", "sha256"], json!("ab"), "audio.sha256");
        check(&["audio", "size"], json!(0), "audio.size");
        check(&["audio", "size"], json!((1u64 << 30) + 1), "audio.size");
        check(&["audio", "size"], json!(-5), "audio.size");
        check(&["audio", "duration_ms"], json!(0), "audio.duration_ms");
        check(
            &["audio", "duration_ms"],
            json!(3_600_001),
            "audio.duration_ms",
        );
        check(&["text"], json!(""), "text");
        check(&["text"], json!("a".repeat(5_001)), "text");
        check(&["synthetic"], json!(true), "synthetic");
        check(&["synthetic"], json!("yes"), "synthetic");
        // An unknown field, anywhere.
        check(&["extra"], json!(1), "extra");
        check(&["audio", "codec"], json!("mp3"), "audio.codec");
        // The limits themselves pass.
        let ok = |path: &[&str], value: serde_json::Value| {
            let e = Bulletin::decode(&body_with(path, value.clone()));
            assert!(e.is_ok(), "{path:?} = {value}: {e:?}");
        };
        ok(&["repeats"], json!({"count":1,"interval_secs":0}));
        ok(&["repeats"], json!({"count":20,"interval_secs":60}));
        ok(&["not_after"], json!("2027-09-19T01:00:00Z"));
        ok(&["text"], json!("Bão số 5 đang tiến vào đất liền"));
        ok(&["audio", "duration_ms"], json!(3_600_000));
        ok(&["audio", "size"], json!(1u64 << 30));
        // The shortest window, with one airing.
        let shortest = Bulletin {
            not_after: at("2027-09-12T01:01:00Z"),
            repeats: Repeats {
                count: 1,
                interval_secs: 0,
            },
            ..sample()
        };
        assert_eq!(Bulletin::decode(&shortest.to_body()), Ok(shortest));
    }

    #[test]
    fn version_size_and_shape_are_refused_before_fields() {
        use serde_json::json;
        assert_eq!(
            Bulletin::decode(&body_with(&["v"], json!(2))),
            Err(BulletinError::Version(2))
        );
        assert!(matches!(
            Bulletin::decode(&body_with(&["v"], json!("1"))),
            Err(BulletinError::Field { field, .. }) if field == "v"
        ));
        assert!(matches!(
            Bulletin::decode(b"not json"),
            Err(BulletinError::Malformed(_))
        ));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            Bulletin::decode(&big),
            Err(BulletinError::TooLarge(MAX_BODY_BYTES + 1))
        );
        assert!(matches!(
            Cancel::decode(br#"{"v":1,"id":"00","cancelled_at":"2027-09-12T02:00:00Z"}"#),
            Err(BulletinError::Field { field, .. }) if field == "id"
        ));
    }

    #[test]
    fn a_bulletin_that_would_be_refused_is_never_signed() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let bad = Bulletin {
            repeats: Repeats {
                count: 0,
                interval_secs: 0,
            },
            ..sample()
        };
        assert!(matches!(
            bad.sign(&key),
            Err(BulletinError::Field { field, .. }) if field == "repeats.count"
        ));
        let env = sample().sign(&key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env.kind, Kind::Bulletin);
        assert_eq!(env.body, sample().to_body());
    }

    #[test]
    fn targets_include_by_all_area_prefix_or_list() {
        let list = Targets::Stations(vec!["p1".into(), "p3".into()]);
        for (t, station, area, want) in [
            (&Targets::All, "x", "51001", true),
            (&Targets::Area("51".into()), "x", "51001", true),
            (&Targets::Area("510".into()), "x", "51001", true),
            (&Targets::Area("52".into()), "x", "51001", false),
            (&Targets::Area("51001".into()), "x", "5100", false),
            (&list, "p1", "1", true),
            (&list, "p3", "1", true),
            (&list, "p2", "1", false),
            (&list, "p", "1", false),
        ] {
            assert_eq!(t.includes(station, area), want, "{t:?} {station} {area}");
        }
    }
}
