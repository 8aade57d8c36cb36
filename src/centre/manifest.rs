//! The manifest: a station's schedule version and every file its airings of the next days need,
//! the body of a signed envelope of kind `manifest` (docs/distribution.md).
//!
//! ```json
//! {"v":1,"station":"phuong-1","version":7,"issued_at":"2027-01-20T03:00:00Z","from":"2027-01-20",
//!  "days":45,"schedule":{"sha256":"<hex>","text":"<the TOML>"},
//!  "files":[{"path":"cchc/2027-01.mp3","sha256":"<hex64>","size":7200000}]}
//! ```
//!
//! **Invariant:** a [`Manifest`] value exists only after [`Manifest::decode`] checked every field:
//! `v` is 1, no unknown field, `days` in 1..=366, every SHA-256 64 lowercase hex digits, every
//! size at most 2^40 bytes, and every path safe to join under a directory ([`check_path`]) and the
//! list sorted by path without repeats. [`Manifest::verify_for`] adds what depends on the station:
//! its own id, a version above the active one (no replay) and a schedule text matching its hash.
//! [`open`] is the one door a station uses: signature (pinned keys only), decode, then verify.
//! Pure: no I/O.

use chrono::{DateTime, NaiveDate, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::signed::{Envelope, Kind, SignedError};
use crate::reason::ReasonCode;

/// The manifest format this build reads and writes.
pub const MANIFEST_V: u32 = 1;
/// Largest file size a manifest may state (1 TiB).
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// Longest path, bytes.
pub const MAX_PATH_BYTES: usize = 255;
/// Most days a manifest may cover.
pub const MAX_DAYS: u32 = 366;
/// The days a manifest covers unless the centre says otherwise (issue #14: the next 45 days).
pub const DEFAULT_DAYS: u32 = 45;

/// The schedule a manifest carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleText {
    /// SHA-256 (hex) of `text`'s UTF-8 bytes.
    pub sha256: String,
    /// The schedule TOML, verbatim.
    pub text: String,
}

/// One file the schedule needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the station's audio root (as the schedule names it).
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A decoded, checked manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub v: u32,
    pub station: String,
    /// The station's schedule version; strictly increasing per station.
    pub version: u64,
    pub issued_at: DateTime<Utc>,
    /// First day covered.
    pub from: NaiveDate,
    pub days: u32,
    pub schedule: ScheduleText,
    /// Sorted by path, unique.
    pub files: Vec<FileEntry>,
}

/// Why a path is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    Empty,
    TooLong,
    Absolute,
    Backslash,
    Nul,
    /// A control character (a file name no operator typed).
    Control,
    /// An empty, `.` or `..` segment.
    Segment,
}

impl PathProblem {
    fn describe(self) -> &'static str {
        match self {
            PathProblem::Empty => "empty",
            PathProblem::TooLong => "longer than 255 bytes",
            PathProblem::Absolute => "absolute (starts with /)",
            PathProblem::Backslash => "contains a backslash",
            PathProblem::Nul => "contains a NUL byte",
            PathProblem::Control => "contains a control character",
            PathProblem::Segment => "has an empty, `.` or `..` segment",
        }
    }
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Signed(#[from] SignedError),
    #[error("manifest: not JSON of the manifest's shape: {0}")]
    Malformed(String),
    #[error("manifest: format v{0}, this build reads v{MANIFEST_V} (update loa on the station)")]
    Version(u32),
    #[error("manifest: field `{field}`: {why}")]
    Field { field: String, why: String },
    #[error("manifest: files[{index}].path {path:?}: {}", .problem.describe())]
    Path {
        index: usize,
        path: String,
        problem: PathProblem,
    },
    #[error(
        "manifest: files[{index}].path {path:?} is not after the previous path (files must be sorted by path, each once)"
    )]
    NotSorted { index: usize, path: String },
    #[error("manifest for station {manifest:?} offered to station {station:?}; refused")]
    OtherStation { manifest: String, station: String },
    #[error(
        "manifest version {version} is not newer than the active version {active} (a replay); refused"
    )]
    Replayed { version: u64, active: u64 },
    #[error(
        "manifest: the schedule text's SHA-256 is {actual}, the manifest states {stated}; refused"
    )]
    ScheduleHash { stated: String, actual: String },
}

impl ManifestError {
    /// The reason code a station reports for this refusal.
    pub fn code(&self) -> ReasonCode {
        match self {
            ManifestError::Signed(e) => e.code(),
            ManifestError::Malformed(_)
            | ManifestError::Version(_)
            | ManifestError::Field { .. } => ReasonCode::SyncManifestMalformed,
            ManifestError::Path { .. } | ManifestError::NotSorted { .. } => {
                ReasonCode::SyncManifestPath
            }
            ManifestError::OtherStation { .. } => ReasonCode::SyncOtherStation,
            ManifestError::Replayed { .. } => ReasonCode::SyncReplayedVersion,
            ManifestError::ScheduleHash { .. } => ReasonCode::SyncScheduleHash,
        }
    }
}

/// Check that `path` is safe to join under a directory: relative, UTF-8 (it is a `str`), no
/// `..`/`.`/empty segment, no backslash, NUL or control character, at most 255 bytes.
pub fn check_path(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathProblem::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    if path.contains('\\') {
        return Err(PathProblem::Backslash);
    }
    if path.contains('\0') {
        return Err(PathProblem::Nul);
    }
    if path.chars().any(char::is_control) {
        return Err(PathProblem::Control);
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(PathProblem::Segment);
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn field(field: impl Into<String>, why: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field: field.into(),
        why: why.into(),
    }
}

impl Manifest {
    /// Decode and check a manifest body (the exact bytes that were signed).
    pub fn decode(body: &[u8]) -> Result<Manifest, ManifestError> {
        // The format version first, so a newer format is named as such, not as a shape error.
        let probe: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        match probe.get("v").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(MANIFEST_V) => {}
            Some(v) => return Err(ManifestError::Version(u32::try_from(v).unwrap_or(u32::MAX))),
            None => return Err(field("v", "missing or not a number")),
        }
        let m: Manifest = serde_path_to_error::deserialize(probe)
            .map_err(|e| ManifestError::Malformed(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    /// The canonical body bytes (what the centre signs): compact JSON, fields in declaration
    /// order.
    pub fn to_body(&self) -> Vec<u8> {
        // Strings, numbers, dates: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The checks [`Manifest::decode`] makes on the fields' values (also for a manifest built
    /// in memory, before it is signed).
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.v != MANIFEST_V {
            return Err(ManifestError::Version(self.v));
        }
        if self.station.is_empty() || self.station.len() > 64 {
            return Err(field("station", "must be 1 to 64 characters"));
        }
        if self.version == 0 {
            return Err(field("version", "versions start at 1"));
        }
        if !(1..=MAX_DAYS).contains(&self.days) {
            return Err(field(
                "days",
                format!("{} is not in 1..={MAX_DAYS}", self.days),
            ));
        }
        if !is_sha256_hex(&self.schedule.sha256) {
            return Err(field("schedule.sha256", "not 64 lowercase hex digits"));
        }
        let mut previous: Option<&str> = None;
        for (index, f) in self.files.iter().enumerate() {
            check_path(&f.path).map_err(|problem| ManifestError::Path {
                index,
                path: f.path.clone(),
                problem,
            })?;
            if !is_sha256_hex(&f.sha256) {
                return Err(field(
                    format!("files[{index}].sha256"),
                    "not 64 lowercase hex digits",
                ));
            }
            if f.size > MAX_FILE_BYTES {
                return Err(field(
                    format!("files[{index}].size"),
                    format!("{} is more than 2^40 bytes", f.size),
                ));
            }
            if previous.is_some_and(|p| p.as_bytes() >= f.path.as_bytes()) {
                return Err(ManifestError::NotSorted {
                    index,
                    path: f.path.clone(),
                });
            }
            previous = Some(&f.path);
        }
        Ok(())
    }

    /// Whether station `station`, airing `active_version` (none yet: `None`), may take this
    /// manifest: made for it, newer than what it airs, its schedule text the one hashed.
    pub fn verify_for(
        &self,
        station: &str,
        active_version: Option<u64>,
    ) -> Result<(), ManifestError> {
        if self.station != station {
            return Err(ManifestError::OtherStation {
                manifest: self.station.clone(),
                station: station.to_string(),
            });
        }
        if let Some(active) = active_version
            && self.version <= active
        {
            return Err(ManifestError::Replayed {
                version: self.version,
                active,
            });
        }
        let actual = crate::wire::sha256_hex(self.schedule.text.as_bytes());
        if actual != self.schedule.sha256 {
            return Err(ManifestError::ScheduleHash {
                stated: self.schedule.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// A station opening a manifest envelope: signed by a `pinned` centre key, decodes with every
/// check, and is for `station` and newer than `active_version`.
pub fn open(
    envelope: &Envelope,
    pinned: &[VerifyingKey],
    station: &str,
    active_version: Option<u64>,
) -> Result<Manifest, ManifestError> {
    let body = envelope.open(Kind::Manifest, pinned)?;
    let m = Manifest::decode(body)?;
    m.verify_for(station, active_version)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const TEXT: &str = "[station]\nid = \"p1\"\n";

    fn sample() -> Manifest {
        Manifest {
            v: 1,
            station: "p1".into(),
            version: 3,
            issued_at: "2027-01-20T03:00:00Z"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            from: NaiveDate::from_ymd_opt(2027, 1, 20).unwrap_or_default(),
            days: 45,
            schedule: ScheduleText {
                sha256: crate::wire::sha256_hex(TEXT.as_bytes()),
                text: TEXT.into(),
            },
            files: vec![
                FileEntry {
                    path: "cchc/2027-01.mp3".into(),
                    sha256: "a".repeat(64),
                    size: 7_200_000,
                },
                FileEntry {
                    path: "jingle.ogg".into(),
                    sha256: "b".repeat(64),
                    size: 1,
                },
            ],
        }
    }

    fn decode_json(v: &serde_json::Value) -> Result<Manifest, ManifestError> {
        Manifest::decode(v.to_string().as_bytes())
    }

    fn as_json(m: &Manifest) -> serde_json::Value {
        serde_json::from_slice(&m.to_body()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_manifest_round_trips_through_its_body_bytes() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.to_body()), Ok(m.clone()));
        let text = String::from_utf8(m.to_body()).unwrap_or_default();
        assert!(
            text.starts_with("{\"v\":1,\"station\":\"p1\",\"version\":3,"),
            "{text}"
        );
        assert_eq!(m.verify_for("p1", Some(2)), Ok(()));
        assert_eq!(m.verify_for("p1", None), Ok(()));
    }

    #[test]
    fn bad_paths_are_refused_each_with_its_reason() {
        let check = |p: &str, want: Option<PathProblem>| {
            assert_eq!(check_path(p).err(), want, "{p:?}");
            let mut m = sample();
            m.files.truncate(1);
            m.files[0].path = p.into();
            let got = decode_json(&as_json(&m));
            match want {
                None => assert!(got.is_ok(), "{p:?}: {got:?}"),
                Some(problem) => {
                    let e = got.err();
                    assert_eq!(
                        e,
                        Some(ManifestError::Path {
                            index: 0,
                            path: p.into(),
                            problem
                        })
                    );
                    assert_eq!(e.map(|e| e.code()), Some(ReasonCode::SyncManifestPath));
                }
            }
        };
        check("a/b.mp3", None);
        check("tiếng việt/bản tin.mp3", None);
        check("..a/b..mp3", None);
        check("", Some(PathProblem::Empty));
        check("/etc/passwd", Some(PathProblem::Absolute));
        check("../x.mp3", Some(PathProblem::Segment));
        check("a/../../x.mp3", Some(PathProblem::Segment));
        check("a/..", Some(PathProblem::Segment));
        check("./a.mp3", Some(PathProblem::Segment));
        check("a//b.mp3", Some(PathProblem::Segment));
        check("a/", Some(PathProblem::Segment));
        check("a\\..\\b.mp3", Some(PathProblem::Backslash));
        check("a\0.mp3", Some(PathProblem::Nul));
        check("a\n.mp3", Some(PathProblem::Control));
        check(&"a".repeat(255), None);
        check(&"a".repeat(256), Some(PathProblem::TooLong));
    }

    proptest::proptest! {
        /// Whatever the text, a path `check_path` accepts stays under the directory it is
        /// joined to: only plain (normal) components, never a root, `..` or `.`.
        #[test]
        fn an_accepted_path_never_leaves_its_directory(
            segments in proptest::collection::vec(r#"\.\.|\.|[a-zà-ỹ]{1,3}|\\|\x00|\n|\PC{0,4}|"#, 0..6),
            rooted in proptest::bool::ANY,
        ) {
            let p = format!("{}{}", if rooted { "/" } else { "" }, segments.join("/"));
            if check_path(&p).is_ok() {
                let joined = std::path::Path::new("/srv/audio").join(&p);
                proptest::prop_assert!(joined.starts_with("/srv/audio"));
                proptest::prop_assert!(std::path::Path::new(&p)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }

    #[test]
    fn files_must_be_sorted_and_unique() {
        let mut m = sample();
        m.files.swap(0, 1);
        assert!(matches!(
            decode_json(&as_json(&m)),
            Err(ManifestError::NotSorted { index: 1, .. })
        ));
        let mut m = sample();
        m.files[1] = m.files[0].clone();
        assert!(matches!(
            decode_json(&as_json(&m)),
            Err(ManifestError::NotSorted { index: 1, .. })
        ));
    }

    #[test]
    fn fields_out_of_range_are_refused_naming_the_field() {
        let check = |edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
            let mut v = as_json(&sample());
            edit(&mut v);
            let e = decode_json(&v).expect_err(needle);
            assert!(e.to_string().contains(needle), "{needle}: {e}");
            assert_eq!(e.code(), ReasonCode::SyncManifestMalformed, "{e}");
        };
        check(&|v| v["v"] = 2.into(), "format v2");
        check(&|v| v["v"] = "1".into(), "`v`");
        check(&|v| v["days"] = 0.into(), "`days`");
        check(&|v| v["days"] = 367.into(), "`days`");
        check(&|v| v["version"] = 0.into(), "`version`");
        check(&|v| v["version"] = (-1).into(), "version");
        check(
            &|v| v["files"][0]["sha256"] = "A".repeat(64).into(),
            "files[0].sha256",
        );
        check(
            &|v| v["files"][1]["sha256"] = "ab".into(),
            "files[1].sha256",
        );
        check(
            &|v| v["files"][0]["size"] = ((1u64 << 40) + 1).into(),
            "files[0].size",
        );
        check(&|v| v["schedule"]["sha256"] = "0".into(), "schedule.sha256");
        check(&|v| v["from"] = "2027-02-30".into(), "from");
        check(&|v| v["issued_at"] = "yesterday".into(), "issued_at");
        check(&|v| v["station"] = "".into(), "`station`");
        check(&|v| v["extra"] = 1.into(), "extra");
        check(&|v| v["files"][0]["mode"] = 1.into(), "mode");
        // The largest size is allowed.
        let mut v = as_json(&sample());
        v["files"][0]["size"] = (1u64 << 40).into();
        assert!(decode_json(&v).is_ok());
    }

    #[test]
    fn another_station_a_replay_and_a_wrong_schedule_hash_are_each_refused() {
        let m = sample();
        let e = m.verify_for("p2", Some(1)).unwrap_err();
        assert!(matches!(e, ManifestError::OtherStation { .. }));
        assert_eq!(e.code(), ReasonCode::SyncOtherStation);
        for active in [3, 4] {
            let e = m.verify_for("p1", Some(active)).unwrap_err();
            assert_eq!(e, ManifestError::Replayed { version: 3, active });
            assert_eq!(e.code(), ReasonCode::SyncReplayedVersion);
        }
        let mut altered = m.clone();
        altered.schedule.text.push_str("# changed\n");
        let e = altered.verify_for("p1", None).unwrap_err();
        assert!(matches!(e, ManifestError::ScheduleHash { .. }));
        assert_eq!(e.code(), ReasonCode::SyncScheduleHash);
    }

    #[test]
    fn open_checks_signature_then_content() {
        let centre = SigningKey::from_bytes(&[4; 32]);
        let other = SigningKey::from_bytes(&[5; 32]);
        let pinned = [centre.verifying_key()];
        let env = Envelope::sign(&centre, Kind::Manifest, sample().to_body());
        assert_eq!(open(&env, &pinned, "p1", Some(2)), Ok(sample()));
        let forged = Envelope::sign(&other, Kind::Manifest, sample().to_body());
        let e = open(&forged, &pinned, "p1", Some(2)).unwrap_err();
        assert_eq!(e.code(), ReasonCode::SyncCentreSignature);
        assert!(matches!(
            open(&env, &pinned, "p1", Some(3)),
            Err(ManifestError::Replayed { .. })
        ));
    }
}
