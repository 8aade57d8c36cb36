//! Sync: a centre-managed station's side of schedule and content distribution (issue #14 item 5).
//!
//! The centre publishes, per station, signed manifests (a schedule version and every file its
//! airings of the next 45 days need). The station learns of a newer one from its heartbeat's
//! answer (`manifest_version`) or a periodic check, fetches it with a station-signed request,
//! verifies it against the pinned centre key, downloads the files it lacks with HTTP range
//! requests (resuming a cut download), verifies each file's SHA-256, stages the version and
//! validates it as `loa check` would, then asks the daemon loop to switch — which it does only
//! when no airing is in flight.
//!
//! **Invariants:**
//! - Nothing is half-applied: the `active` file names a version only once that version is fully
//!   staged (every file verified, hard-linked, the schedule valid with that audio); a failure at
//!   any step leaves the last good version active and airing.
//! - A content file is in `content/` only after its SHA-256 and size matched the manifest; a
//!   file is deleted only when no kept version (active, previous, staged) names it.
//! - Every network read has a time limit; the scheduler loop never waits on the network (the
//!   sync runs on its own task and only hands the daemon a staged version).
//!
//! The parts, each stating its own invariant: [`store`] (the files on disk: `content/`,
//! `staging/`, `versions/<N>/`, `active`), [`fetch`] (one content file over HTTP with Range
//! resume and verification), [`agent`] (the station's sync task: when to check, the round from
//! manifest to switch request, the heartbeat's [`crate::wire::SyncHealth`]).
//!
//! On disk, under the station's data directory:
//! ```text
//! content/<sha256>             verified files (the station's content store)
//! staging/<sha256>.part        partial downloads, resumed with Range
//! versions/<N>/<station>.toml  the version's schedule, verbatim from the manifest
//! versions/<N>/manifest.json   the signed envelope as received
//! versions/<N>/files.json      the files it names (path, sha256, size), for the collection rule
//! versions/<N>/audio/<path>    hard links into content/
//! active                       N (written temp + fsync + rename)
//! ```

pub mod agent;
pub mod fetch;
pub mod store;

pub use store::{Store, StoreError};

use crate::reason::ReasonCode;
use serde::{Deserialize, Serialize};

/// How far ahead a manifest covers airings (the centre's `days`), and what `missing_files`
/// counts.
pub const HORIZON_DAYS: u32 = 45;
/// How often a managed station asks for its manifest without being told of a new one.
pub const CHECK_SECS: u64 = 300;
/// Free disk kept for the journal and the system: a version whose downloads would leave less
/// is refused (`sync.disk_full`).
pub const DISK_RESERVE_BYTES: u64 = 64 << 20;
/// Attempts at one file within a round before the round gives up (the next round resumes).
pub const FILE_ATTEMPTS: u32 = 3;

/// One file a version needs: its path under the audio root, content hash and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WantedFile {
    pub path: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub size: u64,
}

/// A schedule version to stage: what the station takes from a verified manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The station the manifest is for (names its schedule file).
    pub station: String,
    pub version: u64,
    /// The schedule TOML, verbatim.
    pub schedule_text: String,
    /// Sorted by path, unique.
    pub files: Vec<WantedFile>,
}

/// A staged version's schedule as the agent loaded and validated it ([`agent::validate_staged`],
/// on the blocking pool): what the daemon takes on switching, so the switch reads no schedule
/// nor probes any audio on the scheduler thread.
#[derive(Debug, Clone)]
pub struct StagedSchedule {
    pub version: u64,
    /// `versions/<N>/<station>.toml`.
    pub schedule_path: std::path::PathBuf,
    /// `versions/<N>/audio/`.
    pub audio_root: std::path::PathBuf,
    pub station: crate::schedule::Station,
    pub catalog: crate::schedule::AudioCatalog,
    /// The schedule file's modification time when it was read.
    pub schedule_mtime: Option<std::time::SystemTime>,
}

/// A staged version handed to the daemon loop, which switches to it when no airing is in flight
/// and answers (the refusal's words for the log when the version could not be taken).
#[derive(Debug)]
pub struct SwitchRequest {
    pub version: u64,
    /// The version's schedule, already validated (the agent's); `None`: the daemon loads and
    /// validates `versions/<N>/` itself.
    pub staged: Option<Box<StagedSchedule>>,
    pub reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The schedule file and audio root of a managed station's active version (`None`: the station
/// has no `active` file and reads `schedules/` and `audio/` as before).
pub fn managed_paths(
    data_dir: &std::path::Path,
    station: &str,
) -> Result<Option<(std::path::PathBuf, std::path::PathBuf)>, StoreError> {
    let store = Store::new(data_dir);
    Ok(store
        .active()?
        .map(|n| (store.schedule_path(n, station), store.audio_root(n))))
}

/// Why a sync step failed; each maps to a `sync.*` reason code for the heartbeat.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("manifest not signed by a pinned centre key: {0}")]
    BadSignature(String),
    #[error("manifest malformed: {0}")]
    BadManifest(String),
    #[error("manifest is for station {found}, not {expected}")]
    WrongStation { expected: String, found: String },
    #[error("manifest version {found} is not newer than the active version {active} (a replay)")]
    Replay { found: u64, active: u64 },
    #[error("collector: {0}")]
    Unreachable(String),
    #[error("the collector does not have content {sha256} ({path})")]
    ContentMissing { sha256: String, path: String },
    #[error(
        "{path}: downloaded file does not match the manifest: {why}; the partial file was deleted"
    )]
    HashMismatch { path: String, why: String },
    #[error(
        "version {version} needs {needed} more bytes, only {free} are free (keeping {reserve} for the journal)"
    )]
    DiskFull {
        version: u64,
        needed: u64,
        free: u64,
        reserve: u64,
    },
    #[error("version {version}'s schedule fails validation:\n{errors}")]
    ScheduleInvalid { version: u64, errors: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest envelope refused by `centre::manifest::open` (its own code: signature,
    /// shape, path, station, schedule hash).
    #[error(transparent)]
    Manifest(#[from] crate::centre::ManifestError),
    /// The pinned key could not be read, or a rotation chain was refused.
    #[error(transparent)]
    Pin(#[from] crate::centre::pin::PinError),
    #[error("the daemon did not switch to the staged version: {0}")]
    SwitchRefused(String),
}

impl SyncError {
    /// The reason code the heartbeat reports.
    pub fn code(&self) -> ReasonCode {
        match self {
            SyncError::BadSignature(_) => ReasonCode::SyncCentreSignature,
            SyncError::BadManifest(_) => ReasonCode::SyncManifestMalformed,
            SyncError::WrongStation { .. } => ReasonCode::SyncOtherStation,
            SyncError::Replay { .. } => ReasonCode::SyncReplayedVersion,
            SyncError::Unreachable(_) => ReasonCode::SyncUnreachable,
            SyncError::ContentMissing { .. } => ReasonCode::SyncContentMissing,
            SyncError::HashMismatch { .. } => ReasonCode::SyncHashMismatch,
            SyncError::DiskFull { .. } => ReasonCode::SyncDiskFull,
            SyncError::ScheduleInvalid { .. } => ReasonCode::SyncScheduleInvalid,
            SyncError::Store(_) | SyncError::SwitchRefused(_) => ReasonCode::SyncStoreFailed,
            SyncError::Manifest(e) => e.code(),
            SyncError::Pin(e) => e.code(),
        }
    }
}

/// Whether downloading `needed` more bytes leaves at least [`DISK_RESERVE_BYTES`] of `free`
/// (pure; `free` unknown counts as fitting, the write itself then fails cleanly).
pub fn fits(needed: u64, free: Option<u64>) -> bool {
    free.is_none_or(|f| {
        needed
            .checked_add(DISK_RESERVE_BYTES)
            .is_some_and(|n| n <= f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_sync_code() {
        let e = SyncError::DiskFull {
            version: 3,
            needed: 10,
            free: 5,
            reserve: DISK_RESERVE_BYTES,
        };
        assert_eq!(e.code(), ReasonCode::SyncDiskFull);
        for c in ReasonCode::ALL
            .iter()
            .filter(|c| c.as_str().starts_with("sync."))
        {
            assert!(!c.is_station_code(), "{c}: not a record's reason");
        }
    }

    #[test]
    fn the_reserve_is_kept() {
        assert!(fits(0, None));
        assert!(fits(1, Some(DISK_RESERVE_BYTES + 1)));
        assert!(!fits(2, Some(DISK_RESERVE_BYTES + 1)));
        assert!(!fits(u64::MAX, Some(u64::MAX)));
    }
}
