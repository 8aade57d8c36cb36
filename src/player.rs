//! The playout thread: a [`PlayerHandle`] sends imperative commands (load a session, stop,
//! preempt, shut down), the thread answers with past-tense [`PlayerEvent`]s tagged with the
//! airing id. [`PlayerEvent`] is the one playout vocabulary: the station journals it as it is
//! (its stand-in timer player emits the same events), and a session's end carries its reason
//! *code* ([`crate::reason::ReasonCode`]) beside the English detail, decided here where the
//! cause is known, never read back from the text.
//!
//! Threads: **prep** (hashes files, looks up or measures loudness, so the air never waits for
//! analysis) hands prepared sessions to **play**, which owns the [`Output`] (rodio's output is not
//! `Send`), decodes, applies gain and fades, meters, and writes. Sessions play in order of their
//! start instant; each starts by pre-roll so that its first sample reaches the output at its
//! `start_at` (or at once if that has passed).
//!
//! A session's source is its files or a relay: a relay session ([`PlayerHandle::load_relay`])
//! airs one "item", the upstream: the play thread starts the relay ([`crate::relay::start`])
//! [`crate::relay::DEFAULT_PRECONNECT_SECS`] before the session and pulls its `RelaySource` in
//! place of a decoded file; `Finished` carries the relay's report. Where the samples go is the
//! output's business ([`crate::output::open`], publishing to Icecast included).
//!
//! **Invariants:** every loaded session gets exactly one [`PlayerEvent::Finished`], whatever
//! happens to its files or the output; items of a session are written back to back with nothing
//! in between (gapless); what the evidence meter measures is exactly what was written to the
//! output; a bad file or a failed output ends (at most) the session, never the thread.
//!
//! Wall-clock note: the player is an I/O edge; it maps `start_at` (UTC) onto the monotonic clock
//! with the host's real clock at the moment of use, so a clock step while waiting is honoured.

use crate::loudness::{LoudnessCache, LoudnessSettings};
use crate::media::{self, DecodedStream};
use crate::meter::{EvidenceMeter, MeterError};
use crate::output::{self, Output, OutputConfig, OutputError, OutputFormat};
use crate::reason::ReasonCode;
use crate::relay::{RelayConfig, RelayHandle, RelayReport, RelaySource};
use crate::wire::{AiredItem, Evidence, Outcome};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Decode and queue this long before a session's start instant.
pub const DEFAULT_PREROLL_SECS: f64 = 0.5;
/// Fade-out for a stop, a preemption or a hard stop (short enough to be a cut, long enough not
/// to click).
pub const DEFAULT_FADE_SECS: f64 = 0.5;
/// Longest sleep between looks at the wall clock while waiting for a start.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// Commands waiting for the player thread.
pub const COMMAND_QUEUE: usize = 64;
/// Events waiting for the daemon; the player blocks when this many are unread, so read them.
pub const EVENT_QUEUE: usize = 256;

/// Asked by the play thread right before the first sample of a session goes to the output,
/// with the airing id and the instant that sample is to be heard: `Ok` lets it start; `Err`
/// ends the session unaired (`Failed`, with the refusal's code, its text first in the reason).
/// The station makes its in-flight marker durable here, so a crash before this point leaves the
/// airing airable, and one after it is never aired twice.
pub type StartGate =
    std::sync::Arc<dyn Fn(&str, DateTime<Utc>) -> Result<(), Refusal> + Send + Sync>;

/// Why a [`StartGate`] refused a start.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: ReasonCode,
    /// English detail.
    pub reason: String,
}

/// Errors of the player handle.
#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("the player thread has stopped")]
    Gone,
    #[error("cannot start the player thread: {0}")]
    Spawn(std::io::Error),
}

/// How the player is set up.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    pub output: OutputConfig,
    pub loudness: LoudnessSettings,
    pub preroll_secs: f64,
    pub fade_secs: f64,
}

impl PlayerConfig {
    /// Defaults around an output and loudness settings.
    pub fn new(output: OutputConfig, loudness: LoudnessSettings) -> Self {
        Self {
            output,
            loudness,
            preroll_secs: DEFAULT_PREROLL_SECS,
            fade_secs: DEFAULT_FADE_SECS,
        }
    }
}

/// A session to air.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Tags every event about this session.
    pub airing_id: String,
    /// Files, played back to back.
    pub items: Vec<PathBuf>,
    /// Hard stop this long after the first sample (fading out over the last `fade_secs`).
    pub max_secs: Option<f64>,
    /// When the first sample must reach the output.
    pub start_at: DateTime<Utc>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlayOutcome {
    /// Every item aired to its end.
    Complete,
    /// Cut at `max_secs` with a fade.
    HardStopped,
    /// Stopped on command (or player shutdown), with a fade.
    Stopped,
    /// Faded out by [`PlayerHandle::preempt`].
    Preempted,
    /// Nothing aired (every file bad, or the output failed before the first sample).
    Failed,
    /// Some aired, but an item was bad or the output failed mid-way (`reason` says which).
    Partial,
}

impl PlayOutcome {
    /// The airing record's outcome.
    pub fn to_wire(self) -> Outcome {
        match self {
            PlayOutcome::Complete => Outcome::Aired,
            PlayOutcome::HardStopped | PlayOutcome::Stopped | PlayOutcome::Partial => {
                Outcome::Partial
            }
            PlayOutcome::Preempted => Outcome::Preempted,
            PlayOutcome::Failed => Outcome::Failed,
        }
    }

    /// The code of a session that ended this way for `cause` (its first reason); `None` (no
    /// reason) gives the outcome's "unspecified" code, and nothing for a complete airing.
    pub fn reason_code(self, cause: Option<&Cause>) -> Option<ReasonCode> {
        use ReasonCode as C;
        let outcome = self.to_wire();
        let Some(cause) = cause else {
            return crate::wire::unspecified(outcome);
        };
        let partial = outcome == Outcome::Partial;
        Some(match (cause, outcome) {
            (Cause::Coded(c), _) => c.clone(),
            (Cause::HardStop, Outcome::Partial) => C::PartialHardStop,
            (Cause::Shutdown, Outcome::Partial) => C::PartialShutdown,
            (Cause::NoPlayableItems, Outcome::Failed) => C::FailedNoPlayableItems,
            (Cause::FileMissing, Outcome::Partial | Outcome::Failed) => {
                if partial {
                    C::PartialFileMissing
                } else {
                    C::FailedFileMissing
                }
            }
            (Cause::Decoder, Outcome::Partial | Outcome::Failed) => {
                if partial {
                    C::PartialDecoder
                } else {
                    C::FailedDecoder
                }
            }
            (Cause::Output, Outcome::Partial | Outcome::Failed) => {
                if partial {
                    C::PartialOutput
                } else {
                    C::FailedOutput
                }
            }
            (Cause::Relay, Outcome::Partial | Outcome::Failed) => {
                if partial {
                    C::PartialRelay
                } else {
                    C::FailedRelay
                }
            }
            _ => C::Unknown,
        })
    }
}

/// What a reason of the player is about: the session's code is decided by its first reason's
/// cause and the outcome ([`PlayOutcome::reason_code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Cut at `max_secs`.
    HardStop,
    /// The player shut down.
    Shutdown,
    /// Nothing in the session could be played.
    NoPlayableItems,
    /// An item could not be read.
    FileMissing,
    /// An item could not be decoded.
    Decoder,
    /// The output could not be opened or failed.
    Output,
    /// The relay could not start.
    Relay,
    /// Given with its code (a refused start gate).
    Coded(ReasonCode),
    /// Anything else (a cancellation, a truncated file, a panic): `unknown`.
    Other,
}

impl Cause {
    /// The cause of an item's media error.
    fn of_media(e: &media::MediaError) -> Self {
        match e {
            media::MediaError::Io { .. } => Cause::FileMissing,
            media::MediaError::Undecodable { .. } => Cause::Decoder,
            media::MediaError::Truncated { .. } => Cause::Other,
        }
    }
}

/// One reason a session did not air as planned: its cause, and the English detail.
#[derive(Debug, Clone, PartialEq)]
struct Reason {
    cause: Cause,
    text: String,
}

impl Reason {
    fn new(cause: Cause, text: impl Into<String>) -> Self {
        Self {
            cause,
            text: text.into(),
        }
    }
}

/// `(reason_code, reason)` of a session ending with `outcome` for `reasons` (first decides).
fn coded(outcome: PlayOutcome, reasons: &[Reason]) -> (Option<ReasonCode>, Option<String>) {
    let text = (!reasons.is_empty()).then(|| {
        reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    });
    (outcome.reason_code(reasons.first().map(|r| &r.cause)), text)
}

/// What the player did (past tense), tagged with the airing id.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayerEvent {
    /// The session's first sample reached the output at `at`.
    Started {
        airing_id: String,
        at: DateTime<Utc>,
    },
    /// Item `index` (of the session's `items`) began at `at`.
    ItemStarted {
        airing_id: String,
        index: usize,
        at: DateTime<Utc>,
    },
    /// The session is over; exactly one per loaded session.
    Finished {
        airing_id: String,
        outcome: PlayOutcome,
        aired_secs: f64,
        items: Vec<AiredItem>,
        /// What the meter measured of the output; `None` when nothing was metered (the
        /// station's silent stand-in player).
        evidence: Option<Evidence>,
        /// English detail, for engineers.
        reason: Option<String>,
        /// The outcome's reason code (`None` for a complete airing): from the cause the first
        /// reason names.
        reason_code: Option<ReasonCode>,
        /// A relay session's account (live vs fallback, switches, titles); `None` for files.
        relay: Option<Box<RelayReport>>,
    },
}

impl PlayerEvent {
    /// The airing this event is about.
    pub fn airing_id(&self) -> &str {
        match self {
            PlayerEvent::Started { airing_id, .. }
            | PlayerEvent::ItemStarted { airing_id, .. }
            | PlayerEvent::Finished { airing_id, .. } => airing_id,
        }
    }
}

enum Msg {
    Load(Session),
    /// The session of this airing id (loaded right after) is a relay.
    Relay(String, Box<RelayConfig>),
    Prepared(Prepared),
    Stop(String),
    Preempt(String),
    Gate(StartGate),
    /// New loudness target (LUFS) and true-peak ceiling (dBTP) for sessions prepared from now on.
    Loudness(f64, f64),
    Shutdown,
}

/// Airings loaded but not yet prepared → a stop/preemption that arrived meanwhile. Shared by the
/// handle (inserts on load, notes cuts) and the play thread (removes when the airing is prepared),
/// so a stop right after a load is never lost, whichever thread it reaches first.
type Pending = std::sync::Arc<std::sync::Mutex<HashMap<String, Option<Cut>>>>;

/// Sends commands to the player thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PlayerHandle {
    pending: Pending,
    prep_tx: SyncSender<Msg>,
    play_tx: SyncSender<Msg>,
    threads: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl PlayerHandle {
    /// Queue a session. Its files are hashed and measured now (cache hits are instant); it plays
    /// at `start_at`, or after the session before it if that one is still on air.
    pub fn load(&self, session: Session) -> Result<(), PlayerError> {
        if let Ok(mut m) = self.pending.lock() {
            m.insert(session.airing_id.clone(), None);
        }
        self.prep_tx
            .send(Msg::Load(session))
            .map_err(|_| PlayerError::Gone)
    }

    /// Queue a relay session: `relay` (its fallback files already resolved) airs from
    /// `session.start_at` on the same output, meter and fades as files; `session.items` is
    /// ignored. The upstream is connected [`crate::relay::DEFAULT_PRECONNECT_SECS`] before the
    /// start (at once if loaded later). The relay's rate is set to the output's.
    pub fn load_relay(&self, session: Session, relay: RelayConfig) -> Result<(), PlayerError> {
        if let Ok(mut m) = self.pending.lock() {
            m.insert(session.airing_id.clone(), None);
        }
        let id = session.airing_id.clone();
        let session = Session {
            items: Vec::new(),
            ..session
        };
        self.prep_tx
            .send(Msg::Relay(id, Box::new(relay)))
            .and_then(|()| self.prep_tx.send(Msg::Load(session)))
            .map_err(|_| PlayerError::Gone)
    }

    /// Normalise sessions loaded from now on to `target_lufs` (integrated, EBU R128) with true
    /// peaks at most `max_true_peak_dbtp` (a new schedule version's `[loudness]`). Sessions
    /// already prepared keep their gain: a session's level never changes while it airs.
    pub fn set_loudness_target(
        &self,
        target_lufs: f64,
        max_true_peak_dbtp: f64,
    ) -> Result<(), PlayerError> {
        self.prep_tx
            .send(Msg::Loudness(target_lufs, max_true_peak_dbtp))
            .map_err(|_| PlayerError::Gone)
    }

    /// Ask `gate` before the first sample of every session from now on (see [`StartGate`]).
    pub fn set_start_gate(&self, gate: StartGate) -> Result<(), PlayerError> {
        self.play_tx
            .send(Msg::Gate(gate))
            .map_err(|_| PlayerError::Gone)
    }

    /// Fade out and end `airing_id` (on air or queued): outcome `Stopped`.
    pub fn stop(&self, airing_id: &str) -> Result<(), PlayerError> {
        self.note_cut(airing_id, Cut::Stop);
        self.play_tx
            .send(Msg::Stop(airing_id.to_string()))
            .map_err(|_| PlayerError::Gone)
    }

    /// Fade out and end `airing_id` for a higher-priority airing: outcome `Preempted`, with how
    /// much aired. Load the preempting session right after (its `start_at` may be now).
    pub fn preempt(&self, airing_id: &str) -> Result<(), PlayerError> {
        self.note_cut(airing_id, Cut::Preempt);
        self.play_tx
            .send(Msg::Preempt(airing_id.to_string()))
            .map_err(|_| PlayerError::Gone)
    }

    fn note_cut(&self, airing_id: &str, cut: Cut) {
        if let Ok(mut m) = self.pending.lock()
            && let Some(slot) = m.get_mut(airing_id)
        {
            slot.get_or_insert(cut);
        }
    }

    /// Fade out whatever is on air, finish every queued session (`Stopped`), and join the threads.
    pub fn shutdown(&self) -> Result<(), PlayerError> {
        let _ = self.prep_tx.send(Msg::Shutdown);
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return Err(PlayerError::Gone),
        };
        for t in threads {
            let _ = t.join();
        }
        Ok(())
    }
}

/// The player (see the module doc).
#[derive(Debug)]
pub struct Player;

impl Player {
    /// Start the player threads with the output opened (an absent or busy device is an error
    /// here, not later).
    pub fn spawn(
        config: PlayerConfig,
    ) -> Result<(PlayerHandle, Receiver<PlayerEvent>), PlayerError> {
        let (prep_tx, prep_rx) = sync_channel::<Msg>(COMMAND_QUEUE);
        let (play_tx, play_rx) = sync_channel::<Msg>(COMMAND_QUEUE);
        let (event_tx, event_rx) = sync_channel::<PlayerEvent>(EVENT_QUEUE);
        let (ready_tx, ready_rx) = sync_channel::<Result<u16, OutputError>>(1);

        let pending: Pending = Default::default();
        let play_pending = pending.clone();
        let play_cfg = config.clone();
        let play_events = event_tx.clone();
        let play = std::thread::Builder::new()
            .name("loa-play".into())
            .spawn(move || {
                let out = match open_output(&play_cfg) {
                    Ok(o) => {
                        let _ = ready_tx.send(Ok(o.format().channels));
                        o
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                PlayLoop::new(play_cfg, out, play_rx, play_events, play_pending).run();
            })
            .map_err(PlayerError::Spawn)?;
        let out_channels = match ready_rx.recv() {
            Ok(Ok(channels)) => channels,
            Ok(Err(e)) => {
                let _ = play.join();
                return Err(e.into());
            }
            Err(_) => {
                let _ = play.join();
                return Err(PlayerError::Gone);
            }
        };
        let forward = play_tx.clone();
        let loudness = config.loudness.clone();
        let prep = std::thread::Builder::new()
            .name("loa-prep".into())
            .spawn(move || prep_loop(loudness, out_channels, prep_rx, forward))
            .map_err(PlayerError::Spawn)?;
        Ok((
            PlayerHandle {
                pending,
                prep_tx,
                play_tx,
                threads: std::sync::Arc::new(std::sync::Mutex::new(vec![prep, play])),
            },
            event_rx,
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// prep thread

#[derive(Debug, Clone)]
struct PreparedItem {
    path: PathBuf,
    sha256: String,
    duration_secs: f64,
    gain: f32,
    /// Why it cannot be played (its cause, and the English detail).
    error: Option<(Cause, String)>,
}

#[derive(Debug, Clone)]
struct Prepared {
    session: Session,
    items: Vec<PreparedItem>,
}

fn prep_loop(
    mut settings: LoudnessSettings,
    out_channels: u16,
    rx: Receiver<Msg>,
    play: SyncSender<Msg>,
) {
    let mut cache = LoudnessCache::open(settings.cache_dir.as_deref());
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Load(session) => {
                // A panic while preparing (a bug, or a third-party decoder that escaped
                // `media`'s containment) fails that item, never the thread: the play thread
                // would otherwise wait for this session forever.
                let items = session
                    .items
                    .iter()
                    .map(|p| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            prepare_item(&mut cache, &settings, out_channels, p)
                        }))
                        .unwrap_or_else(|_| PreparedItem {
                            path: p.clone(),
                            sha256: String::new(),
                            duration_secs: 0.0,
                            gain: 1.0,
                            error: Some((
                                Cause::Other,
                                "preparing the item panicked (a bug; see the log)".into(),
                            )),
                        })
                    })
                    .collect();
                if play
                    .send(Msg::Prepared(Prepared { session, items }))
                    .is_err()
                {
                    return;
                }
            }
            Msg::Relay(id, mut cfg) => {
                // Fallback files are normalised like every other item: measured here, off the
                // air, before the relay starts.
                cfg.fallback_gains = cfg
                    .fallback
                    .iter()
                    .map(|p| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            prepare_item(&mut cache, &settings, 2, p).gain
                        }))
                        .unwrap_or(1.0)
                    })
                    .collect();
                if play.send(Msg::Relay(id, cfg)).is_err() {
                    return;
                }
            }
            Msg::Loudness(target, peak) => {
                settings.target_lufs = target;
                settings.max_true_peak_dbtp = peak;
            }
            Msg::Shutdown => {
                let _ = play.send(Msg::Shutdown);
                return;
            }
            other => {
                if play.send(other).is_err() {
                    return;
                }
            }
        }
    }
}

fn prepare_item(
    cache: &mut LoudnessCache,
    settings: &LoudnessSettings,
    out_channels: u16,
    path: &Path,
) -> PreparedItem {
    match cache.measure(path) {
        Ok((m, _)) => PreparedItem {
            path: path.to_path_buf(),
            gain: 10f64.powf(m.gain_db_on(settings, out_channels) / 20.0) as f32,
            sha256: m.sha256,
            duration_secs: m.duration_secs,
            error: None,
        },
        Err(e) => PreparedItem {
            path: path.to_path_buf(),
            sha256: media::sha256_file(path).unwrap_or_default(),
            duration_secs: 0.0,
            gain: 1.0,
            error: Some((
                match &e {
                    crate::loudness::LoudnessError::Media(m) => Cause::of_media(m),
                    _ => Cause::Other,
                },
                e.to_string(),
            )),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// play thread

fn to_instant(at: DateTime<Utc>) -> Instant {
    let (now_i, now_u) = (Instant::now(), Utc::now());
    match (at - now_u).to_std() {
        Ok(ahead) => now_i + ahead,
        Err(_) => now_i,
    }
}

fn to_utc(at: Instant) -> DateTime<Utc> {
    let (now_i, now_u) = (Instant::now(), Utc::now());
    let delta = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
    if at >= now_i {
        now_u + delta(at - now_i)
    } else {
        now_u - delta(now_i - at)
    }
}

/// What ended a session early.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut {
    Stop,
    Preempt,
    HardStop,
    Shutdown,
}

struct PlayLoop {
    cfg: PlayerConfig,
    out: Option<Box<dyn Output>>,
    rx: Receiver<Msg>,
    events: SyncSender<PlayerEvent>,
    queue: Vec<Prepared>,
    /// Airings loaded but not yet prepared, with a stop/preemption that arrived meanwhile.
    pending: Pending,
    shutting_down: bool,
    /// Relay sessions not yet on air: their config, or the relay once pre-connected.
    relays: HashMap<String, RelaySlot>,
    /// Asked before each session's first sample.
    gate: Option<StartGate>,
}

/// A relay session before it airs.
enum RelaySlot {
    Planned(Box<RelayConfig>),
    Started(Box<(RelaySource, RelayHandle)>),
    Failed(String),
}

impl PlayLoop {
    fn new(
        cfg: PlayerConfig,
        out: Box<dyn Output>,
        rx: Receiver<Msg>,
        events: SyncSender<PlayerEvent>,
        pending: Pending,
    ) -> Self {
        Self {
            cfg,
            out: Some(out),
            rx,
            events,
            queue: Vec::new(),
            pending,
            shutting_down: false,
            relays: HashMap::new(),
            gate: None,
        }
    }

    fn emit(&self, e: PlayerEvent) {
        // Blocks when the daemon lags EVENT_QUEUE events behind; an absent reader is ignored.
        let _ = self.events.send(e);
    }

    fn run(mut self) {
        loop {
            if self.shutting_down {
                for p in std::mem::take(&mut self.queue) {
                    self.finish_unplayed(
                        &p,
                        PlayOutcome::Stopped,
                        Reason::new(Cause::Shutdown, "the player shut down"),
                    );
                }
                return;
            }
            self.preconnect_relays(true);
            self.queue.sort_by_key(|p| p.session.start_at);
            let real_time = self.out.as_ref().is_none_or(|o| o.real_time());
            let wait = match self.queue.first() {
                None => None,
                Some(_) if !real_time => Some(Duration::ZERO),
                Some(p) => {
                    let due = to_instant(p.session.start_at);
                    let preroll = Duration::from_secs_f64(self.cfg.preroll_secs.max(0.0));
                    Some(due.saturating_duration_since(Instant::now() + preroll))
                }
            };
            let msg = match wait {
                None => match self.rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return,
                },
                // Re-read the wall clock at least every second while waiting, so a clock step
                // (NTP) moves the start with it.
                Some(w) if w > Duration::ZERO => match self.rx.recv_timeout(w.min(MAX_WAIT)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                Some(_) => match self.rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                },
            };
            match msg {
                Some(m) => self.handle_idle(m),
                None => {
                    if !self.queue.is_empty() {
                        let p = self.queue.remove(0);
                        self.play_contained(p);
                    }
                }
            }
        }
    }

    fn handle_idle(&mut self, m: Msg) {
        match m {
            Msg::Prepared(p) => {
                let cut = match self.pending.lock() {
                    Ok(mut m) => m.remove(&p.session.airing_id).flatten(),
                    Err(_) => None,
                };
                if let Some(cut) = cut {
                    self.finish_unplayed(&p, cut_outcome(cut), cancelled());
                } else {
                    self.queue.push(p);
                }
            }
            Msg::Stop(ref id) | Msg::Preempt(ref id) if self.is_queued(id) => {
                let outcome = if matches!(m, Msg::Preempt(_)) {
                    PlayOutcome::Preempted
                } else {
                    PlayOutcome::Stopped
                };
                if let Some(i) = self.queue.iter().position(|p| &p.session.airing_id == id) {
                    let p = self.queue.remove(i);
                    self.finish_unplayed(&p, outcome, cancelled());
                }
            }
            // Not on air, not queued: still being prepared (the handle noted the cut in `pending`)
            // or already finished / unknown: nothing to do here.
            Msg::Stop(_) | Msg::Preempt(_) => {}
            Msg::Shutdown => self.shutting_down = true,
            Msg::Gate(g) => self.gate = Some(g),
            Msg::Relay(id, cfg) => {
                self.relays.insert(id, RelaySlot::Planned(cfg));
            }
            Msg::Load(_) | Msg::Loudness(..) => {}
        }
    }

    fn is_queued(&self, id: &str) -> bool {
        self.queue.iter().any(|p| p.session.airing_id == id)
    }

    fn finish_unplayed(&self, p: &Prepared, outcome: PlayOutcome, why: Reason) {
        let (rate, channels) = self
            .format()
            .map(|f| (f.sample_rate, f.channels))
            .unwrap_or((0, 0));
        self.emit(PlayerEvent::Finished {
            airing_id: p.session.airing_id.clone(),
            outcome,
            aired_secs: 0.0,
            items: p.items.iter().map(|i| aired_item(i, 0.0)).collect(),
            evidence: Some(Evidence {
                output: self
                    .out
                    .as_ref()
                    .map(|o| o.name())
                    .unwrap_or("none")
                    .to_string(),
                sample_rate: rate,
                channels,
                frames: 0,
                first_sample_at: None,
                integrated_lufs: None,
                sample_peak_dbfs: None,
                silence_secs: 0.0,
            }),
            reason_code: outcome.reason_code(Some(&why.cause)),
            reason: Some(why.text),
            relay: None,
        });
    }

    fn format(&self) -> Option<OutputFormat> {
        self.out.as_ref().map(|o| o.format())
    }

    /// [`Self::play`], with a panic inside (a bug, or a decoder that escaped `media`'s
    /// containment) turned into a `Failed` session and a reopened output: the session still
    /// gets its `Finished` event and the thread goes on with the next one.
    fn play_contained(&mut self, p: Prepared) {
        let finished = std::sync::atomic::AtomicBool::new(false);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.play(p.clone());
            finished.store(true, std::sync::atomic::Ordering::Relaxed);
        }));
        if result.is_err() && !finished.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(airing = %p.session.airing_id, "the play thread panicked while airing");
            self.out = None;
            self.finish_unplayed(
                &p,
                PlayOutcome::Failed,
                Reason::new(Cause::Other, "the player panicked while airing"),
            );
        }
    }

    /// Air one prepared session; always ends with its `Finished` event.
    fn play(&mut self, mut p: Prepared) {
        if let Some((url, window_secs)) = self.relay_url(&p.session.airing_id) {
            // A relay airs as one item: the upstream (its own source, see `air`).
            p.items = vec![PreparedItem {
                path: PathBuf::from(url),
                sha256: String::new(),
                duration_secs: window_secs,
                gain: 1.0,
                error: None,
            }];
        }
        if self.out.is_none() {
            match open_output(&self.cfg) {
                Ok(o) => self.out = Some(o),
                Err(e) => {
                    self.finish_unplayed(
                        &p,
                        PlayOutcome::Failed,
                        Reason::new(Cause::Output, format!("output: {e}")),
                    );
                    return;
                }
            }
        }
        let Some(fmt) = self.format() else {
            return;
        };
        let mut session = match SessionRun::new(&p, fmt, &self.cfg) {
            Ok(s) => s,
            Err(e) => {
                self.finish_unplayed(
                    &p,
                    PlayOutcome::Failed,
                    Reason::new(Cause::Other, format!("meter: {e}")),
                );
                return;
            }
        };
        let result = self.air(&p, &mut session);
        let output_error = match result {
            Ok(()) => None,
            Err(e) => {
                // The output is suspect: reopen it for the next session.
                self.out = None;
                Some(Reason::new(Cause::Output, format!("output: {e}")))
            }
        };
        let first = self
            .out
            .as_ref()
            .and_then(|o| o.first_sample_at())
            .map(to_utc);
        let first = first.or(session.first_at);
        let name = match &self.out {
            Some(o) => o.name(),
            None => output::BACKENDS
                .iter()
                .map(|(n, _)| *n)
                .find(|n| self.cfg.output.spec.starts_with(n))
                .unwrap_or("none"),
        };
        let evidence = session.meter.evidence(
            name,
            if session.meter.frames() > 0 {
                first
            } else {
                None
            },
        );
        let mut reasons = session.reasons.clone();
        if let Some(e) = output_error.clone() {
            reasons.push(e);
        }
        let aired = session.meter.frames() > 0;
        let outcome = match session.cut {
            // Cut (even before its first sample, e.g. stopped during pre-roll).
            Some(c) if aired || reasons.is_empty() => cut_outcome(c),
            _ if !aired => PlayOutcome::Failed,
            None if reasons.is_empty() => PlayOutcome::Complete,
            _ => PlayOutcome::Partial,
        };
        if !aired && reasons.is_empty() && session.cut.is_none() {
            reasons.push(Reason::new(
                Cause::NoPlayableItems,
                "the session has no playable items",
            ));
        }
        match session.cut {
            Some(Cut::HardStop) => reasons.insert(
                0,
                Reason::new(
                    Cause::HardStop,
                    format!(
                        "hard stop at max_secs {:.3}",
                        p.session.max_secs.unwrap_or(0.0)
                    ),
                ),
            ),
            Some(Cut::Shutdown) => {
                reasons.insert(0, Reason::new(Cause::Shutdown, "the player shut down"))
            }
            _ => {}
        }
        let (reason_code, reason) = coded(outcome, &reasons);
        let items = p
            .items
            .iter()
            .zip(&session.item_frames)
            .map(|(i, &f)| aired_item(i, f as f64 / f64::from(fmt.sample_rate)))
            .collect();
        self.emit(PlayerEvent::Finished {
            airing_id: p.session.airing_id.clone(),
            outcome,
            aired_secs: session.meter.secs(),
            items,
            evidence: Some(evidence),
            reason,
            reason_code,
            relay: session.relay.as_ref().map(|h| Box::new(h.report())),
        });
    }

    fn air(&mut self, p: &Prepared, s: &mut SessionRun) -> Result<(), OutputError> {
        let Some(fmt) = self.format() else {
            return Ok(());
        };
        let ch = usize::from(fmt.channels);
        let chunk_samples = output::DEFAULT_CHUNK_FRAMES * ch;
        let mut buf = vec![0f32; chunk_samples];
        let mut started = false;
        let mut begun = false;
        let mut gated = false;
        for (index, item) in p.items.iter().enumerate() {
            if let Some((cause, e)) = &item.error {
                s.reasons.push(Reason::new(
                    cause.clone(),
                    format!("item {} skipped: {e}", index + 1),
                ));
                continue;
            }
            let mut stream = match self.take_relay(&p.session.airing_id, fmt) {
                Some(Ok((src, handle))) => {
                    s.relay = Some(handle);
                    ItemStream::Relay(src, ch)
                }
                Some(Err(e)) => {
                    s.reasons
                        .push(Reason::new(Cause::Relay, format!("relay: {e}")));
                    continue;
                }
                None => match DecodedStream::open(&item.path, fmt.sample_rate, fmt.channels) {
                    Ok(st) => ItemStream::File(st),
                    Err(e) => {
                        s.reasons.push(Reason::new(
                            Cause::of_media(&e),
                            format!("item {} skipped: {e}", index + 1),
                        ));
                        continue;
                    }
                },
            };
            if !begun {
                begun = true;
                let at = if self.out.as_ref().is_some_and(|o| o.real_time()) {
                    to_instant(p.session.start_at)
                } else {
                    Instant::now()
                };
                if let Some(o) = self.out.as_mut() {
                    o.start_at(at)?;
                }
                s.first_at = Some(to_utc(at));
            }
            if let (ItemStream::Relay(src, _), Some(t)) = (&mut stream, s.first_at) {
                // The relay's account is on the instants the samples are heard.
                src.anchor_at(t);
            }
            let item_start_frames = s.meter.frames();
            let mut item_announced = false;
            // What the item-started line says airs: the source, its format, the conversion.
            let (source, conversion) = match &stream {
                ItemStream::File(st) => (
                    item.path.display().to_string(),
                    format!(
                        "{} Hz × {} ch → {} Hz × {} ch{}",
                        st.source_rate,
                        st.source_channels,
                        fmt.sample_rate,
                        fmt.channels,
                        st.downmix
                            .map(|d| format!(", downmix {d}"))
                            .unwrap_or_default()
                    ),
                ),
                ItemStream::Relay(..) => (
                    item.path.display().to_string(),
                    format!("relay → {} Hz × {} ch", fmt.sample_rate, fmt.channels),
                ),
            };
            loop {
                self.poll_commands(p, s);
                let n = stream.read(&mut buf);
                if n == 0 {
                    if let Err(e) = stream.check_complete() {
                        s.reasons.push(Reason::new(
                            Cause::of_media(&e),
                            format!("item {}: {e}", index + 1),
                        ));
                    }
                    break;
                }
                let chunk = &mut buf[..n];
                for x in chunk.iter_mut() {
                    *x *= item.gain;
                }
                let keep = s.apply_fades(chunk, ch);
                let chunk = &buf[..keep * ch];
                if !chunk.is_empty() && !gated {
                    gated = true;
                    if let Some(gate) = &self.gate {
                        let at = s.first_at.unwrap_or_else(Utc::now);
                        if let Err(why) = gate(&p.session.airing_id, at) {
                            tracing::error!(airing = %p.session.airing_id, "{}", why.reason);
                            s.reasons
                                .insert(0, Reason::new(Cause::Coded(why.code), why.reason));
                            return Ok(());
                        }
                    }
                }
                if !chunk.is_empty() {
                    let out = match self.out.as_mut() {
                        Some(o) => o,
                        None => return Ok(()),
                    };
                    out.write(chunk)?;
                    s.meter.push(chunk);
                    s.item_frames[index] += keep as u64;
                    if !item_announced {
                        item_announced = true;
                        let base = s.first_at.unwrap_or_else(Utc::now);
                        let offset = item_start_frames as f64 / f64::from(fmt.sample_rate);
                        let at = base + chrono::Duration::microseconds((offset * 1e6) as i64);
                        tracing::info!(
                            airing = %p.session.airing_id,
                            item = index + 1,
                            source = %source,
                            conversion = %conversion,
                            gain_db = format!("{:.2}", 20.0 * f64::from(item.gain).log10()),
                            at = %at,
                            "item started"
                        );
                        self.emit(PlayerEvent::ItemStarted {
                            airing_id: p.session.airing_id.clone(),
                            index,
                            at,
                        });
                    }
                }
                if !started && let Some(at) = self.out.as_ref().and_then(|o| o.first_sample_at()) {
                    started = true;
                    s.first_at = Some(to_utc(at));
                    self.emit(PlayerEvent::Started {
                        airing_id: p.session.airing_id.clone(),
                        at: to_utc(at),
                    });
                }
                if s.faded_out() {
                    break;
                }
            }
            if s.faded_out() {
                break;
            }
        }
        if let Some(o) = self.out.as_mut() {
            o.drain()?;
            if !started
                && s.meter.frames() > 0
                && let Some(at) = o.first_sample_at()
            {
                s.first_at = Some(to_utc(at));
                self.emit(PlayerEvent::Started {
                    airing_id: p.session.airing_id.clone(),
                    at: to_utc(at),
                });
            }
        }
        Ok(())
    }

    /// Commands that arrive while a session is on air.
    fn poll_commands(&mut self, p: &Prepared, s: &mut SessionRun) {
        self.preconnect_relays(false);
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Stop(id)) if id == p.session.airing_id => s.cut(Cut::Stop),
                Ok(Msg::Preempt(id)) if id == p.session.airing_id => s.cut(Cut::Preempt),
                Ok(Msg::Shutdown) => {
                    self.shutting_down = true;
                    s.cut(Cut::Shutdown);
                }
                Ok(other) => self.handle_idle(other),
                Err(_) => return,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// relay sessions

impl PlayLoop {
    /// A relay session's upstream URL and window (seconds).
    fn relay_url(&self, id: &str) -> Option<(String, f64)> {
        match self.relays.get(id)? {
            RelaySlot::Planned(cfg) => Some((cfg.url.clone(), cfg.window.as_secs_f64())),
            RelaySlot::Started(b) => Some((
                b.1.report().evidence.url,
                rodio::Source::total_duration(&b.0).map_or(0.0, |d| d.as_secs_f64()),
            )),
            RelaySlot::Failed(_) => Some(("relay".into(), 0.0)),
        }
    }

    fn start_relay(cfg: RelayConfig, fmt: OutputFormat) -> RelaySlot {
        let cfg = RelayConfig {
            rate_hz: fmt.sample_rate,
            ..cfg
        };
        match crate::relay::start(cfg, std::sync::Arc::new(crate::clock::SystemClock)) {
            Ok(started) => RelaySlot::Started(Box::new(started)),
            Err(e) => RelaySlot::Failed(e.to_string()),
        }
    }

    /// Connect the relays due within [`crate::relay::DEFAULT_PRECONNECT_SECS`]; with `gc`, also
    /// drop those whose session is neither queued nor being prepared (cancelled).
    fn preconnect_relays(&mut self, gc: bool) {
        if self.relays.is_empty() {
            return;
        }
        if gc {
            let pending: Vec<String> = match self.pending.lock() {
                Ok(m) => m.keys().cloned().collect(),
                Err(_) => Vec::new(),
            };
            let queued: Vec<String> = self
                .queue
                .iter()
                .map(|p| p.session.airing_id.clone())
                .collect();
            self.relays
                .retain(|id, _| queued.contains(id) || pending.contains(id));
        }
        let Some(fmt) = self.format() else {
            return;
        };
        let horizon =
            Utc::now() + chrono::Duration::seconds(crate::relay::DEFAULT_PRECONNECT_SECS as i64);
        for p in &self.queue {
            let id = &p.session.airing_id;
            if p.session.start_at <= horizon
                && let Some(slot) = self.relays.get_mut(id)
                && let RelaySlot::Planned(cfg) = slot
            {
                tracing::info!(airing = %id, url = %cfg.url, "relay pre-connecting");
                *slot = Self::start_relay((**cfg).clone(), fmt);
            }
        }
    }

    /// The relay of session `id`, started now if it was not pre-connected.
    fn take_relay(
        &mut self,
        id: &str,
        fmt: OutputFormat,
    ) -> Option<Result<(RelaySource, RelayHandle), String>> {
        let slot = match self.relays.remove(id)? {
            RelaySlot::Planned(cfg) => Self::start_relay(*cfg, fmt),
            other => other,
        };
        Some(match slot {
            RelaySlot::Started(b) => Ok(*b),
            RelaySlot::Failed(e) => Err(e),
            RelaySlot::Planned(_) => Err("relay not started".into()),
        })
    }
}

/// What an item's samples come from: a file, or a relay (stereo, mapped to `channels`).
// One per item on air: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum ItemStream {
    File(DecodedStream),
    Relay(RelaySource, usize),
}

impl ItemStream {
    fn read(&mut self, buf: &mut [f32]) -> usize {
        match self {
            ItemStream::File(st) => st.read(buf),
            ItemStream::Relay(src, ch) => {
                let ch = (*ch).max(1);
                let mut n = 0;
                for frame in buf.chunks_exact_mut(ch) {
                    let (Some(l), Some(r)) = (src.next(), src.next()) else {
                        break;
                    };
                    crate::media::map_frame(&[l, r], frame);
                    n += ch;
                }
                n
            }
        }
    }

    fn check_complete(&self) -> Result<(), crate::media::MediaError> {
        match self {
            ItemStream::File(st) => st.check_complete(),
            ItemStream::Relay(..) => Ok(()),
        }
    }
}

fn open_output(cfg: &PlayerConfig) -> Result<Box<dyn Output>, OutputError> {
    output::open(&cfg.output)
}

/// A stop or preemption that reached a session before it started.
fn cancelled() -> Reason {
    Reason::new(Cause::Other, "cancelled before it started")
}

fn cut_outcome(c: Cut) -> PlayOutcome {
    match c {
        Cut::Preempt => PlayOutcome::Preempted,
        Cut::HardStop => PlayOutcome::HardStopped,
        Cut::Stop | Cut::Shutdown => PlayOutcome::Stopped,
    }
}

fn aired_item(i: &PreparedItem, aired_secs: f64) -> AiredItem {
    AiredItem {
        path: i.path.display().to_string(),
        sha256: i.sha256.clone(),
        duration_secs: i.duration_secs,
        aired_secs,
    }
}

/// The state of one session on air.
struct SessionRun {
    meter: EvidenceMeter,
    item_frames: Vec<u64>,
    reasons: Vec<Reason>,
    first_at: Option<DateTime<Utc>>,
    cut: Option<Cut>,
    fade_frames: u64,
    /// Frame (session-relative) at which the fade-out began, if it has.
    fade_from: Option<u64>,
    /// Frame at which the hard stop's fade begins.
    hard_fade_from: Option<u64>,
    frames: u64,
    /// The relay's account, for a relay session.
    relay: Option<RelayHandle>,
}

impl SessionRun {
    fn new(p: &Prepared, fmt: OutputFormat, cfg: &PlayerConfig) -> Result<Self, MeterError> {
        let rate = f64::from(fmt.sample_rate);
        let fade_frames = (cfg.fade_secs.max(0.0) * rate).round() as u64;
        let hard_fade_from = p
            .session
            .max_secs
            .filter(|m| m.is_finite() && *m >= 0.0)
            .map(|m| ((m * rate).round() as u64).saturating_sub(fade_frames));
        let meter = EvidenceMeter::new(fmt.sample_rate, fmt.channels)?;
        Ok(Self {
            meter,
            item_frames: vec![0; p.items.len()],
            reasons: Vec::new(),
            first_at: None,
            cut: None,
            fade_frames,
            fade_from: None,
            hard_fade_from,
            frames: 0,
            relay: None,
        })
    }

    fn cut(&mut self, why: Cut) {
        if self.cut.is_none() {
            self.cut = Some(why);
            self.fade_from = Some(self.frames);
        }
    }

    fn faded_out(&self) -> bool {
        self.fade_from
            .is_some_and(|f| self.frames >= f + self.fade_frames)
    }

    /// Apply fade-outs to `chunk` (interleaved, `ch` channels) in place; return how many frames
    /// of it to keep (fewer once a fade has reached silence).
    fn apply_fades(&mut self, chunk: &mut [f32], ch: usize) -> usize {
        let frames = chunk.len() / ch;
        // Fast path (nearly every chunk): no fade running and no hard stop within this chunk.
        if self.fade_from.is_none()
            && self
                .hard_fade_from
                .is_none_or(|h| h >= self.frames + frames as u64)
        {
            self.frames += frames as u64;
            return frames;
        }
        let mut keep = frames;
        for f in 0..frames {
            let pos = self.frames + f as u64;
            if self.fade_from.is_none()
                && let Some(h) = self.hard_fade_from
                && pos >= h
            {
                self.cut = Some(Cut::HardStop);
                self.fade_from = Some(h);
            }
            if let Some(from) = self.fade_from {
                let k = pos.saturating_sub(from);
                if k >= self.fade_frames {
                    keep = f;
                    break;
                }
                // Raised cosine from 1 to 0 over fade_frames: no click at either end.
                let g =
                    0.5 * (1.0 + (std::f64::consts::PI * k as f64 / self.fade_frames as f64).cos());
                for x in &mut chunk[f * ch..(f + 1) * ch] {
                    *x *= g as f32;
                }
            }
        }
        self.frames += keep as u64;
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_start_gate_ends_the_session_failed_before_any_sample_and_the_next_airs() {
        let dir = tempfile::tempdir().unwrap();
        let tone = dir.path().join("tone.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&tone, spec).unwrap();
        for i in 0..4_800 {
            w.write_sample(((i as f32 * 0.06).sin() * 8_000.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
        let mut out = OutputConfig::new(&format!("wav:{}", dir.path().join("out.wav").display()));
        out.pacing = output::Pacing::AsFastAsPossible;
        let loudness = LoudnessSettings {
            cache_dir: Some(dir.path().join("c")),
            ..LoudnessSettings::default()
        };
        let (h, events) = Player::spawn(PlayerConfig::new(out, loudness)).unwrap();
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = asked.clone();
        h.set_start_gate(std::sync::Arc::new(move |id: &str, _at| {
            seen.lock().unwrap().push(id.to_string());
            if id == "refused" {
                Err(Refusal {
                    code: ReasonCode::FailedStateUnwritable,
                    reason: "not started: no marker".into(),
                })
            } else {
                Ok(())
            }
        }))
        .unwrap();
        let t = Utc::now();
        for (id, at) in [
            ("refused", t),
            ("ok", t + chrono::Duration::milliseconds(1)),
        ] {
            h.load(Session {
                airing_id: id.into(),
                items: vec![tone.clone()],
                max_secs: None,
                start_at: at,
            })
            .unwrap();
        }
        let mut got = Vec::new();
        while got
            .iter()
            .filter(|e| matches!(e, PlayerEvent::Finished { .. }))
            .count()
            < 2
        {
            got.push(events.recv_timeout(Duration::from_secs(30)).unwrap());
        }
        h.shutdown().unwrap();
        let started = |id: &str| {
            got.iter()
                .any(|e| matches!(e, PlayerEvent::Started { airing_id, .. } if airing_id == id))
        };
        let finished = |id: &str| {
            got.iter()
                .find_map(|e| match e {
                    PlayerEvent::Finished {
                        airing_id,
                        outcome,
                        aired_secs,
                        reason,
                        ..
                    } if airing_id == id => Some((*outcome, *aired_secs, reason.clone())),
                    _ => None,
                })
                .unwrap()
        };
        let (o, secs, why) = finished("refused");
        assert_eq!((o, secs), (PlayOutcome::Failed, 0.0));
        assert!(why.unwrap().starts_with("not started: no marker"));
        assert!(!started("refused"));
        assert_eq!(finished("ok").0, PlayOutcome::Complete);
        assert!(started("ok"));
        assert_eq!(*asked.lock().unwrap(), vec!["refused", "ok"]);
    }

    /// The player's codes are those a version 1 record of the same text reads back as
    /// (`wire::classify`), except an output failure: its text starts `output: `, which classify
    /// never matched (such records were `unknown`); the player codes it `*.output`.
    #[test]
    fn each_cause_codes_as_its_text_reads_back_and_output_failures_are_coded() {
        use PlayOutcome as P;
        let check = |outcome: P, cause: Cause, text: &str, expected: Option<ReasonCode>| {
            let got = outcome.reason_code(Some(&cause));
            assert_eq!(got, expected, "{outcome:?} {cause:?} {text}");
            if !matches!(cause, Cause::Output) {
                assert_eq!(
                    got,
                    crate::wire::classify(outcome.to_wire(), Some(text)),
                    "{text}"
                );
            }
        };
        let missing =
            "item 1 skipped: /a/x.wav: cannot read: No such file or directory (os error 2)";
        let undecodable = "item 2: /a/y.mp3: not a decodable WAV/MP3/Ogg Vorbis/FLAC file: eof";
        let truncated =
            "item 1: /a/z.wav: truncated: decoded 1.000 s of the 2.000 s its header declares";
        check(
            P::HardStopped,
            Cause::HardStop,
            "hard stop at max_secs 60.000",
            Some(ReasonCode::PartialHardStop),
        );
        check(
            P::Stopped,
            Cause::Shutdown,
            "the player shut down",
            Some(ReasonCode::PartialShutdown),
        );
        check(
            P::Failed,
            Cause::NoPlayableItems,
            "the session has no playable items",
            Some(ReasonCode::FailedNoPlayableItems),
        );
        check(
            P::Failed,
            Cause::FileMissing,
            missing,
            Some(ReasonCode::FailedFileMissing),
        );
        check(
            P::Partial,
            Cause::FileMissing,
            missing,
            Some(ReasonCode::PartialFileMissing),
        );
        check(
            P::Failed,
            Cause::Decoder,
            undecodable,
            Some(ReasonCode::FailedDecoder),
        );
        check(
            P::Partial,
            Cause::Decoder,
            undecodable,
            Some(ReasonCode::PartialDecoder),
        );
        check(
            P::Partial,
            Cause::Other,
            truncated,
            Some(ReasonCode::Unknown),
        );
        check(
            P::Failed,
            Cause::Relay,
            "relay: cannot connect",
            Some(ReasonCode::FailedRelay),
        );
        check(
            P::Partial,
            Cause::Relay,
            "relay: cannot connect",
            Some(ReasonCode::PartialRelay),
        );
        check(
            P::Stopped,
            Cause::Other,
            "cancelled before it started",
            Some(ReasonCode::Unknown),
        );
        check(
            P::Preempted,
            Cause::Other,
            "cancelled before it started",
            Some(ReasonCode::Unknown),
        );
        check(
            P::Failed,
            Cause::Coded(ReasonCode::FailedStateUnwritable),
            "not started: the in-flight marker cannot be made durable (disk full)",
            Some(ReasonCode::FailedStateUnwritable),
        );
        let output =
            "output: no audio output device: the audio host reports no default output device";
        check(
            P::Failed,
            Cause::Output,
            output,
            Some(ReasonCode::FailedOutput),
        );
        check(
            P::Partial,
            Cause::Output,
            output,
            Some(ReasonCode::PartialOutput),
        );
        assert_eq!(
            crate::wire::classify(Outcome::Failed, Some(output)),
            Some(ReasonCode::Unknown)
        );
        // No reason: the outcome's own code; a complete airing has none.
        assert_eq!(P::Complete.reason_code(None), None);
        assert_eq!(
            P::Stopped.reason_code(None),
            Some(ReasonCode::PartialUnspecified)
        );
        assert_eq!(
            P::Preempted.reason_code(None),
            Some(ReasonCode::PreemptedUnspecified)
        );
        // What a missing and an undecodable file's errors are caused by.
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"not audio at all").unwrap();
        for (path, cause) in [
            (dir.path().join("absent.wav"), Cause::FileMissing),
            (junk, Cause::Decoder),
        ] {
            let e = DecodedStream::open(&path, 48_000, 2).err().unwrap();
            assert_eq!(Cause::of_media(&e), cause, "{e}");
        }
    }

    fn run(max_secs: Option<f64>, fade_secs: f64, total_frames: usize) -> (SessionRun, Vec<f32>) {
        let p = Prepared {
            session: Session {
                airing_id: "t".into(),
                items: vec![],
                max_secs,
                start_at: Utc::now(),
            },
            items: vec![],
        };
        let mut cfg = PlayerConfig::new(OutputConfig::new("null"), LoudnessSettings::default());
        cfg.fade_secs = fade_secs;
        let fmt = OutputFormat {
            sample_rate: 1000,
            channels: 2,
        };
        let mut s = SessionRun::new(&p, fmt, &cfg).unwrap();
        let mut out = Vec::new();
        let mut left = total_frames;
        while left > 0 && !s.faded_out() {
            let n = left.min(64);
            let mut chunk = vec![1.0f32; n * 2];
            let keep = s.apply_fades(&mut chunk, 2);
            out.extend_from_slice(&chunk[..keep * 2]);
            left -= n;
        }
        (s, out)
    }

    #[test]
    fn hard_stop_fade_ends_exactly_at_max_secs() {
        let (s, out) = run(Some(1.0), 0.25, 5000);
        assert_eq!(s.cut, Some(Cut::HardStop));
        assert_eq!(out.len() / 2, 1000);
        assert_eq!(out[2 * 749], 1.0); // full level until the fade
        assert!(out[2 * 750] <= 1.0 && out[2 * 999] < 1e-3);
        // Monotone fade: never louder than the frame before.
        assert!(
            out.chunks(2)
                .skip(750)
                .zip(out.chunks(2).skip(751))
                .all(|(a, b)| b[0] <= a[0])
        );
    }

    #[test]
    fn a_cut_mid_chunk_fades_from_the_next_frame_and_a_short_session_is_untouched() {
        let (s, out) = run(Some(10.0), 0.1, 300);
        assert_eq!(s.cut, None);
        assert!(out.iter().all(|&x| x == 1.0) && out.len() == 600);
        let (mut s, _) = run(None, 0.1, 100);
        s.cut(Cut::Preempt);
        let mut chunk = vec![1.0f32; 2 * 200];
        let keep = s.apply_fades(&mut chunk, 2);
        assert_eq!(keep, 100);
        assert_eq!(chunk[0], 1.0);
        assert!(chunk[2 * 99] < 1e-2);
        assert!(s.faded_out());
    }
}
