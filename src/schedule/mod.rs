//! The broadcast plan as data: a station's schedule file, validated into typed form, and expanded
//! into the exact list of planned airings.
//!
//! **Architecture Invariant:** this module is a pure core. Parsing takes text, validation takes
//! text plus an [`AudioCatalog`] (facts about audio files gathered at the edge), and expansion takes
//! a validated [`Station`], the catalog and a date range. None of it reads files, the clock or the
//! network, so the station daemon, `loa plan` and the collector's compliance report compute the very
//! same plan. The one I/O entry point, [`load`], lives in `schedule::load` and only gathers inputs.

pub mod file;
pub mod load;
pub mod plan;
pub mod rules;
pub mod validate;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::crontab::Crontab;

pub use file::{PROGRAM_REF_PREFIX, ScheduleError, ScheduleErrors};
pub use load::{load, load_dir};
pub use plan::{
    NEXT_AIRING_HORIZON_DAYS, PlannedAiring, check_window, expand, expand_between, first_after,
    next_airing, resolve_episode,
};
pub use validate::parse_station;

/// Default station time zone: Vietnam has one zone and no DST.
pub const DEFAULT_TIMEZONE: &str = "Asia/Ho_Chi_Minh";
/// Default longest session a station may air, in minutes (provincial practice: 45–60 min).
pub const DEFAULT_MAX_SESSION_MINUTES: u32 = 60;
/// Default soft-start grace: how long a soft slot may wait for what is playing to end.
pub const DEFAULT_GRACE_SECS: u32 = 120;
/// Default programme loudness target (EBU R128).
pub const DEFAULT_TARGET_LUFS: f64 = -23.0;
/// Default maximum true peak (EBU R128).
pub const DEFAULT_MAX_TRUE_PEAK_DBTP: f64 = -1.0;
/// Default relay silence threshold: below this for more than 2 s counts as "upstream silent".
pub const DEFAULT_SILENCE_THRESHOLD_DBFS: f64 = -50.0;

/// Whether a station is the city radio or a ward/commune loudspeaker station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StationKind {
    City,
    Ward,
}

/// Priority of a slot (Thông tư 39/2020/TT-BTTTT: normal, priority, emergency). Ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Normal,
    Priority,
    Emergency,
}

/// How a slot starts when something else is on air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPolicy {
    /// Starts on the second, fading out lower-priority audio.
    Hard,
    /// Waits up to `grace_secs` for what is playing to end, then is skipped.
    Soft,
}

/// A window of the local day in which nothing may sound. `start > end` wraps midnight
/// (e.g. 22:00–05:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// True when the local time `t` is inside the window (start inclusive, end exclusive).
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// Loudness normalisation target for a station's output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoudnessTarget {
    pub integrated_lufs: f64,
    pub max_true_peak_dbtp: f64,
}

impl Default for LoudnessTarget {
    fn default() -> Self {
        Self {
            integrated_lufs: DEFAULT_TARGET_LUFS,
            max_true_peak_dbtp: DEFAULT_MAX_TRUE_PEAK_DBTP,
        }
    }
}

/// Where a station ships its airing records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorLink {
    /// Base URLs of the collectors, in order (at least one, none twice), e.g.
    /// `http://127.0.0.1:8080`: the station fails over between them ([`crate::endpoints`]).
    pub urls: Vec<String>,
    /// Heartbeat period in seconds.
    pub heartbeat_secs: u32,
}

/// A program: something with a content category, aired from one file or a monthly episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub id: String,
    pub title: String,
    /// Content category used by reports, e.g. `cchc`, `news`, `ident`, `notice`.
    pub category: String,
    pub audio: ProgramAudio,
}

/// Where a program's audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramAudio {
    /// Always the same file (relative to the audio root).
    File(PathBuf),
    /// A pattern resolved from the airing's local date: `{yyyy}`, `{mm}`, `{dd}` are replaced,
    /// e.g. `cchc/{yyyy}-{mm}.ogg`.
    Episodes(String),
}

/// One entry of a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemRef {
    /// A file relative to the audio root.
    File(PathBuf),
    /// A program by id; its file is resolved at the airing's date.
    Program(String),
}

/// What a slot airs.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotContent {
    /// Files/program episodes back to back.
    Playlist(Vec<ItemRef>),
    /// A live upstream stream for `minutes`, with a fallback playlist when it is down or silent.
    Relay(RelaySpec),
}

/// A relay of an upstream stream.
#[derive(Debug, Clone, PartialEq)]
pub struct RelaySpec {
    /// `http://` or `https://` URL of the upstream (Icecast/Shoutcast, MP3 or Ogg).
    pub url: String,
    pub minutes: u32,
    pub fallback: Vec<ItemRef>,
    pub silence_threshold_dbfs: f64,
}

/// A slot: when (crontab lines within an optional validity window), what, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub id: String,
    pub cron: Vec<Crontab>,
    /// First local date on which the slot may fire (inclusive).
    pub from: Option<NaiveDate>,
    /// Last local date on which the slot may fire (inclusive).
    pub until: Option<NaiveDate>,
    /// The program this slot is filed under in reports (its category), if any.
    pub program: Option<String>,
    pub content: SlotContent,
    pub priority: Priority,
    pub start: StartPolicy,
    pub grace_secs: u32,
    /// Hard stop: the slot never sounds longer than this.
    pub max_minutes: u32,
}

/// A validated station schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub id: String,
    pub name: String,
    pub kind: StationKind,
    /// National administrative area code (mã đơn vị hành chính).
    pub area_code: String,
    pub timezone: Tz,
    pub quiet_hours: Vec<QuietHours>,
    pub max_session_minutes: u32,
    pub loudness: LoudnessTarget,
    pub collector: Option<CollectorLink>,
    pub programs: BTreeMap<String, Program>,
    pub slots: Vec<Slot>,
    /// The schedule file this came from (for messages only).
    pub source: PathBuf,
}

/// Facts about audio files, gathered at the edge (see `media::probe`) and handed to the pure
/// core. Keys are paths relative to the audio root, as written in schedules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioCatalog {
    /// The audio root the keys are relative to (for messages only).
    pub root: PathBuf,
    pub files: BTreeMap<PathBuf, AudioFacts>,
}

/// What the core needs to know about one audio file.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioFacts {
    /// Decodes; its duration in seconds.
    Playable { duration_secs: f64 },
    /// Exists but does not decode; why.
    Undecodable(String),
    /// Exists but is not a regular file: what it is (e.g. "a directory").
    NotAFile(String),
}

/// A planned airing instant in station-local time, as printed and stored.
pub type LocalInstant = DateTime<FixedOffset>;
