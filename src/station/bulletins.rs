//! The station's intake of bulletins (docs/bulletins.md, "Station wiring: intake and receipts"):
//! its own task fetches `GET /api/v1/stations/{id}/bulletins` (station-signed) when the push
//! client wakes it (`bulletin_wake`), when the heartbeat answer's `pending_bulletins` names an id
//! it has not processed, and every [`CHECK_SECS`] otherwise; checks each envelope with
//! [`bulletin::check`] (the pinned centre keys, this station's id and area code, the airings its
//! journal accounts for, its `Clock`); fetches the audio through the content fetch
//! (`station::sync::fetch`, SHA-256 and size verified, into `bulletins/content/`); hands the
//! daemon [`IntakeEvent::Ready`] / [`IntakeEvent::Cancelled`]; and reports each bulletin to the
//! centre with a receipt — `delivered` (when) or `refused` (its `bulletin.*` code) — by a
//! station-signed `POST /api/v1/stations/{id}/bulletin-receipts` signed over its body, retried
//! with capped, jittered backoff until the collector acknowledges it (200).
//!
//! On disk, under the station's data directory:
//! ```text
//! bulletins/intake.json              what was processed (by envelope SHA-256), the bulletins
//!                                    cancelled, the receipts not acknowledged yet
//! bulletins/envelopes/<sha256>.json  each delivered bulletin's envelope, as received
//! bulletins/content/<sha256>         verified audio (a content store of its own: the schedule
//!                                    sync's collection never deletes a bulletin's audio)
//! bulletins/staging/<sha256>.part    partial audio downloads, resumed with Range
//! ```
//!
//! **Invariants:**
//! - The daemon is handed a bulletin only after [`bulletin::check`] accepted its envelope and its
//!   audio file is in `bulletins/content/` with the SHA-256 and size the bulletin names; a
//!   mismatch is a refusal (`bulletin.audio`), a download cut or refused by the network is not
//!   (retried).
//! - An envelope is processed once: its outcome is written to `intake.json` (temporary file,
//!   fsync, rename) before the daemon is told or a receipt leaves, so the same envelope fetched
//!   again — in this run or after a restart — is neither delivered again nor reported again.
//!   At start, the bulletins delivered earlier that [`bulletin::check`] still accepts (window
//!   open, an airing left by the journal, not cancelled) are handed to the daemon once more,
//!   because its pending bulletins live in memory; no receipt is sent for them.
//! - A receipt leaves the outbox only when the collector answered 200 (or refused it as
//!   malformed, logged); it survives restarts in `intake.json`.
//! - Every network wait has a time limit; hashing and file work run on the blocking pool; the
//!   scheduler loop waits on none of it (it only reads a bounded channel).

use crate::bulletin::{self, BulletinId, RefusalCode};
use crate::centre::pin;
use crate::centre::request;
use crate::centre::signed::Envelope;
use crate::clock::Clock;
use crate::collector::bulletins::{Receipt, ReceiptState, Receipts};
use crate::endpoints::Endpoints;
use crate::shipper::HeartbeatAnswer;
use crate::station::sync::fetch::{self, Source};
use crate::station::sync::{FILE_ATTEMPTS, Store, StoreError, SyncError, WantedFile};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

/// A bulletin the station accepted, with its verified audio.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyBulletin {
    pub bulletin: crate::bulletin::Bulletin,
    /// SHA-256 (hex) of the envelope's bytes as received: which signed copy this is (the
    /// envelope's JSON text, `Envelope::to_json`, as the intake keeps it).
    pub envelope_sha256: String,
    /// The audio file, verified (SHA-256 and size are the bulletin's).
    pub audio: PathBuf,
    /// When the station accepted it (its clock).
    pub received_at: DateTime<Utc>,
}

/// What the intake tells the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeEvent {
    /// Air this bulletin by its priority's rules.
    Ready(Box<ReadyBulletin>),
    /// The centre cancelled bulletin `id` (a verified cancel): drop what is left, stop it on air.
    Cancelled { id: BulletinId, at: DateTime<Utc> },
}

/// The bulletin airings the journal accounts for: bulletin id (hex) → repeats. The daemon fills
/// it from the journal at open and notes each bulletin record it appends before anyone can ask,
/// so the intake's replay test and the daemon's agree.
#[derive(Debug, Clone, Default)]
pub struct AiredBulletins(Arc<Mutex<HashMap<String, BTreeSet<u32>>>>);

impl AiredBulletins {
    /// Whether the journal accounts for airing `repeat` of bulletin `id`.
    pub fn accounted(&self, id: &str, repeat: u32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|r| r.contains(&repeat))
    }

    /// Note that the journal accounts for airing `repeat` of bulletin `id`.
    pub fn note(&self, id: &str, repeat: u32) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default()
            .insert(repeat);
    }
}

/// How often the intake asks for its bulletins without being told of one.
pub const CHECK_SECS: u64 = 60;
/// Longest wait between attempts to send receipts (and between failed rounds).
pub const RETRY_MAX_SECS: u64 = 60;
/// The intake's directory under the data directory.
pub const DIR: &str = "bulletins";
/// What was processed, the cancels, the outbox.
pub const STATE_FILE: &str = "intake.json";
/// Delivered bulletins' envelopes.
pub const ENVELOPES_DIR: &str = "envelopes";
/// How long after a bulletin's window closed the intake still remembers it (a station's clock
/// ahead of the collector's must not see it as new).
pub const FORGET_AFTER_SECS: i64 = 24 * 3600;
/// Largest answer of the bulletins list (a list of envelopes, each at most 1 MiB of body).
pub const MAX_LIST_BYTES: usize = 32 << 20;

/// Why an intake step failed (the round or the send is retried; nothing is half-applied).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("collector: {0}")]
    Unreachable(String),
    #[error("the bulletins list is malformed: {0}")]
    BadList(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pin(#[from] pin::PinError),
    #[error("the daemon stopped taking bulletins")]
    DaemonGone,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IntakeError + '_ {
    move |source| IntakeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What became of one envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Checked, audio verified, handed to the daemon.
    Delivered,
    /// Refused with a `bulletin.*` code.
    Refused,
    /// A cancel, acted on.
    Cancel,
    /// Not handed on: its bulletin was cancelled before it arrived, or a cancel refused.
    Dropped,
}

/// One processed envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processed {
    /// The bulletin id (`None`: a refused envelope whose body names none).
    #[serde(default)]
    pub id: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// When it was processed (the station's clock).
    pub at: DateTime<Utc>,
    /// The audio's SHA-256 (delivered bulletins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_sha256: Option<String>,
    /// When the entry (and the envelope, the audio) may be forgotten.
    pub forget_after: DateTime<Utc>,
}

/// `intake.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeState {
    /// By envelope SHA-256.
    #[serde(default)]
    pub processed: BTreeMap<String, Processed>,
    /// Bulletin ids cancelled (a checked cancel), with when they may be forgotten.
    #[serde(default)]
    pub cancelled: BTreeMap<String, DateTime<Utc>>,
    /// Receipts not acknowledged by the collector yet, one per bulletin (the latest).
    #[serde(default)]
    pub outbox: Vec<Receipt>,
}

impl IntakeState {
    /// Whether bulletin `id` was processed (delivered, refused or cancelled).
    pub fn knows(&self, id: &str) -> bool {
        self.cancelled.contains_key(id)
            || self.processed.values().any(|p| p.id.as_deref() == Some(id))
    }

    /// Whether bulletin `id` was delivered to the daemon.
    pub fn delivered(&self, id: &str) -> bool {
        self.processed
            .values()
            .any(|p| p.outcome == Outcome::Delivered && p.id.as_deref() == Some(id))
    }

    /// Queue `r`, replacing a receipt of the same bulletin not sent yet.
    pub fn queue(&mut self, r: Receipt) {
        self.outbox.retain(|x| x.bulletin != r.bulletin);
        self.outbox.push(r);
    }

    /// Forget what is past `forget_after` at `now`: the envelope SHA-256s forgotten (their files
    /// may go).
    pub fn prune(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let gone: Vec<String> = self
            .processed
            .iter()
            .filter(|(_, p)| p.forget_after < now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.processed.remove(k);
        }
        self.cancelled.retain(|_, t| *t >= now);
        gone
    }

    /// The audio files delivered bulletins still remembered need.
    pub fn audio_kept(&self) -> BTreeSet<String> {
        self.processed
            .values()
            .filter_map(|p| p.audio_sha256.clone())
            .collect()
    }
}

/// Pure: whether the heartbeat answer's pending ids name one the intake has not processed.
pub fn news(pending: &[String], state: &IntakeState) -> bool {
    pending.iter().any(|id| !state.knows(id))
}

/// The intake's files.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(DIR),
        }
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn state_file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
    pub fn envelope(&self, sha256: &str) -> PathBuf {
        self.dir.join(ENVELOPES_DIR).join(format!("{sha256}.json"))
    }
    /// The audio content store (`bulletins/content/`, `bulletins/staging/`).
    pub fn store(&self) -> Store {
        Store::new(&self.dir)
    }

    /// The state on disk (empty when there is none). A file that does not read is moved aside
    /// (`intake.json.unreadable`, logged) and the intake starts empty: it then checks every
    /// envelope again and reports what it finds — the safe direction.
    pub fn load(&self) -> IntakeState {
        let path = self.state_file();
        match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(s) => s,
                Err(e) => {
                    let aside = self.dir.join(format!("{STATE_FILE}.unreadable"));
                    let _ = std::fs::rename(&path, &aside);
                    tracing::error!(path = %path.display(), aside = %aside.display(), "bulletin intake state unreadable ({e}); moved aside, starting empty");
                    IntakeState::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IntakeState::default(),
            Err(e) => {
                tracing::error!(path = %path.display(), "bulletin intake state unreadable ({e}); starting empty");
                IntakeState::default()
            }
        }
    }

    /// Write `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the directory).
    fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IntakeError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io(path))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))
    }

    /// Persist `state`.
    pub fn save(&self, state: &IntakeState) -> Result<(), IntakeError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| IntakeError::Io {
            path: self.state_file(),
            source: std::io::Error::other(e),
        })?;
        Self::write_atomic(&self.state_file(), &bytes)
    }

    /// Keep a delivered bulletin's envelope.
    pub fn save_envelope(&self, sha256: &str, json: &str) -> Result<(), IntakeError> {
        Self::write_atomic(&self.envelope(sha256), json.as_bytes())
    }

    /// Delete the envelopes `gone` and every audio file `keep` does not name (partial downloads
    /// stay for resuming).
    pub fn collect(&self, gone: &[String], keep: &BTreeSet<String>) {
        for sha in gone {
            let _ = std::fs::remove_file(self.envelope(sha));
        }
        let store = self.store();
        if let Ok(rd) = std::fs::read_dir(store.content_dir()) {
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                if crate::station::sync::store::is_sha256_hex(&name) && !keep.contains(&name) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// What the intake needs to run.
pub struct IntakeConfig {
    pub station: String,
    pub data_dir: PathBuf,
    /// The collector URLs, shared with the station's other clients: each request goes to the
    /// one in use; a network error, a timeout or a 5xx moves them on ([`crate::endpoints`]).
    pub collectors: Endpoints,
    /// The station's key: it signs the fetches and the receipts.
    pub key: SigningKey,
    /// The station's area code when no active schedule version names one (its own schedule's).
    pub area_code: String,
    /// Period of the check made without news ([`CHECK_SECS`]).
    pub check_secs: u64,
    /// Longest wait after failures ([`RETRY_MAX_SECS`]).
    pub retry_max_secs: u64,
    /// Limit on each network wait.
    pub read_timeout: Duration,
    /// The daemon's clock: `check`'s `now`, the receipts' times.
    pub clock: Arc<dyn Clock>,
}

impl IntakeConfig {
    /// Defaults for `station` at `collector`.
    pub fn new(
        station: &str,
        data_dir: PathBuf,
        collector: &str,
        key: SigningKey,
        area_code: &str,
    ) -> Self {
        Self {
            station: station.to_string(),
            data_dir,
            collectors: Endpoints::single(collector),
            key,
            area_code: area_code.to_string(),
            check_secs: CHECK_SECS,
            retry_max_secs: RETRY_MAX_SECS,
            read_timeout: Duration::from_secs(fetch::READ_TIMEOUT_SECS),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }
}

/// What the intake is connected to.
pub struct Links {
    /// The daemon's side ([`IntakeEvent`]s).
    pub events: mpsc::Sender<IntakeEvent>,
    /// The airings the daemon's journal accounts for.
    pub aired: AiredBulletins,
    /// Notified by the push client on every `bulletin` / `cancel` event (`notify_one`: a wake
    /// while a round runs is kept for the next).
    pub wake: Arc<Notify>,
    /// The heartbeat's answers (`pending_bulletins`).
    pub answers: watch::Receiver<HeartbeatAnswer>,
}

/// How a round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundReport {
    pub delivered: usize,
    pub refused: usize,
    pub cancelled: usize,
    /// Envelopes already processed (fetched again).
    pub known: usize,
}

/// The running intake.
pub struct Intake {
    cfg: IntakeConfig,
    files: Files,
    store: Store,
    client: reqwest::Client,
    links: Links,
    state: IntakeState,
}

impl Intake {
    pub fn new(cfg: IntakeConfig, links: Links) -> Result<Self, IntakeError> {
        let client = fetch::client(cfg.collectors.client_url())
            .map_err(|e| IntakeError::Unreachable(e.to_string()))?;
        let files = Files::new(&cfg.data_dir);
        let state = files.load();
        Ok(Self {
            store: files.store(),
            files,
            cfg,
            client,
            links,
            state,
        })
    }

    /// What was processed so far (tests, logs).
    pub fn state(&self) -> &IntakeState {
        &self.state
    }

    /// Run until `shutdown` turns true: hand the daemon again what was delivered earlier and is
    /// still valid, then rounds and receipts (see the module doc).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self.redeliver().await {
            tracing::error!("bulletins delivered before the restart not handed on: {e}");
            if matches!(e, IntakeError::DaemonGone) {
                return;
            }
        }
        let mut round_failures = 0u32;
        let mut send_failures = 0u32;
        let mut next_round = tokio::time::Instant::now();
        let mut next_send = tokio::time::Instant::now();
        let mut answers_open = true;
        loop {
            let sending = !self.state.outbox.is_empty();
            tokio::select! {
                _ = tokio::time::sleep_until(next_round) => {}
                _ = tokio::time::sleep_until(next_send), if sending => {}
                _ = self.links.wake.notified() => {
                    tracing::debug!("woken by the push channel: fetching bulletins");
                    next_round = next_round.min(tokio::time::Instant::now());
                }
                r = self.links.answers.changed(), if answers_open => {
                    if r.is_err() {
                        answers_open = false;
                        continue;
                    }
                    let pending = self.links.answers.borrow_and_update().pending_bulletins.clone();
                    if news(&pending, &self.state) && round_failures == 0 {
                        tracing::info!(?pending, "the heartbeat answer names a bulletin not received: fetching now");
                        next_round = tokio::time::Instant::now();
                    }
                }
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let now = tokio::time::Instant::now();
            if next_round <= now {
                let r = tokio::select! {
                    r = self.round() => r,
                    _ = shutdown.changed() => return,
                };
                match r {
                    Ok(report) => {
                        round_failures = 0;
                        if report
                            != (RoundReport {
                                known: report.known,
                                ..Default::default()
                            })
                        {
                            tracing::info!(?report, "bulletins fetched");
                        }
                        next_round = tokio::time::Instant::now()
                            + Duration::from_secs(self.cfg.check_secs.max(1));
                        // New receipts leave at once.
                        if !self.state.outbox.is_empty() && send_failures == 0 {
                            next_send = tokio::time::Instant::now();
                        }
                    }
                    Err(IntakeError::DaemonGone) => return,
                    Err(e) => {
                        round_failures = round_failures.saturating_add(1);
                        let wait = crate::station::sync::agent::retry_wait(
                            round_failures,
                            self.cfg.retry_max_secs,
                            jitter(),
                        );
                        tracing::warn!(
                            retry_in_secs = wait.as_secs(),
                            "bulletin fetch failed: {e}"
                        );
                        next_round = tokio::time::Instant::now() + wait;
                    }
                }
            }
            if !self.state.outbox.is_empty() && next_send <= tokio::time::Instant::now() {
                let r = tokio::select! {
                    r = self.send_receipts() => r,
                    _ = shutdown.changed() => return,
                };
                match r {
                    Ok(n) => {
                        send_failures = 0;
                        tracing::info!(
                            receipts = n,
                            "bulletin receipts acknowledged by the centre"
                        );
                    }
                    Err(e) => {
                        send_failures = send_failures.saturating_add(1);
                        let wait = crate::station::sync::agent::retry_wait(
                            send_failures,
                            self.cfg.retry_max_secs,
                            jitter(),
                        );
                        tracing::warn!(
                            waiting = self.state.outbox.len(),
                            retry_in_secs = wait.as_secs(),
                            "bulletin receipts not sent, kept for the next attempt: {e}"
                        );
                        next_send = tokio::time::Instant::now() + wait;
                    }
                }
            }
        }
    }

    /// Hand the daemon, once, each bulletin delivered before this run that `check` still accepts
    /// (no receipt: the centre has it).
    pub async fn redeliver(&mut self) -> Result<usize, IntakeError> {
        let pinned = pin::load(&self.cfg.data_dir)?.keys();
        let area = self.area_code();
        let now = self.cfg.clock.now();
        let mut n = 0;
        let entries: Vec<(String, Processed)> = self
            .state
            .processed
            .iter()
            .filter(|(_, p)| p.outcome == Outcome::Delivered)
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for (sha, p) in entries {
            if p.id
                .as_ref()
                .is_some_and(|id| self.state.cancelled.contains_key(id))
            {
                continue;
            }
            let Ok(bytes) = std::fs::read(self.files.envelope(&sha)) else {
                tracing::warn!(envelope = %sha, "a delivered bulletin's envelope is gone; not handed on again");
                continue;
            };
            let Ok(env) = Envelope::decode(&bytes) else {
                continue;
            };
            let aired = self.links.aired.clone();
            let accepted = match bulletin::check(
                &env,
                &self.cfg.station,
                &area,
                &pinned,
                now,
                &|id: BulletinId, r| aired.accounted(&id.to_hex(), r),
            ) {
                Ok(a) => a,
                Err(e) => {
                    tracing::info!(envelope = %sha, "bulletin delivered earlier not handed on again: {e}");
                    continue;
                }
            };
            let audio = self.store.content(&accepted.bulletin.audio.sha256);
            if !self.store.holds(&accepted.bulletin.audio.sha256) {
                tracing::warn!(bulletin = %accepted.bulletin.id, "a delivered bulletin's audio is gone; not handed on again");
                continue;
            }
            self.tell(IntakeEvent::Ready(Box::new(ReadyBulletin {
                bulletin: accepted.bulletin,
                envelope_sha256: sha,
                audio,
                received_at: p.at,
            })))
            .await?;
            n += 1;
        }
        if n > 0 {
            tracing::info!(
                bulletins = n,
                "bulletins delivered before the restart handed to the daemon again"
            );
        }
        Ok(n)
    }

    async fn tell(&self, ev: IntakeEvent) -> Result<(), IntakeError> {
        self.links
            .events
            .send(ev)
            .await
            .map_err(|_| IntakeError::DaemonGone)
    }

    /// The station's area code: the active schedule version's, else the configured one.
    fn area_code(&self) -> String {
        let store = Store::new(&self.cfg.data_dir);
        let from_version = store.active().ok().flatten().and_then(|n| {
            let text = std::fs::read_to_string(store.schedule_path(n, &self.cfg.station)).ok()?;
            let v: toml::Table = toml::from_str(&text).ok()?;
            v.get("area_code")?.as_str().map(str::to_string)
        });
        from_version.unwrap_or_else(|| self.cfg.area_code.clone())
    }

    /// The request signer for a GET.
    fn sign_get(&self, path: &str) -> Vec<(&'static str, String)> {
        request::sign(&self.cfg.key, &self.cfg.station, "GET", path, Utc::now())
            .pairs()
            .iter()
            .map(|(k, v)| (*k, (*v).to_string()))
            .collect()
    }

    /// Read `resp`'s body, each chunk within the read timeout, at most `limit` bytes.
    async fn body(
        &self,
        what: &str,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, IntakeError> {
        let unreachable = |why: String| IntakeError::Unreachable(format!("{what}: {why}"));
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(unreachable(format!("answer larger than {limit} bytes")));
        }
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(self.cfg.read_timeout, resp.chunk()).await {
                Err(_) => return Err(unreachable("the answer stalled".into())),
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Ok(Ok(None)) => return Ok(body),
                Ok(Ok(Some(c))) => {
                    if body.len() + c.len() > limit {
                        return Err(unreachable(format!("answer larger than {limit} bytes")));
                    }
                    body.extend_from_slice(&c);
                }
            }
        }
    }

    /// Send `req` to `base` within the read timeout; a network error, a timeout or a 5xx moves
    /// the collectors on.
    async fn answer(
        &self,
        base: &str,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, IntakeError> {
        let e = match tokio::time::timeout(self.cfg.read_timeout, req.send()).await {
            Ok(Ok(resp)) => {
                self.cfg.collectors.judge(base, resp.status().as_u16());
                return Ok(resp);
            }
            Err(_) => "no answer in time".to_string(),
            Ok(Err(e)) => e.to_string(),
        };
        self.cfg.collectors.failed(base, &e);
        Err(IntakeError::Unreachable(format!("{what}: {e}")))
    }

    /// The envelopes (bulletins, cancels) the collector hands this station.
    async fn get_list(&self) -> Result<(Vec<Envelope>, Vec<Envelope>), IntakeError> {
        let path = format!("/api/v1/stations/{}/bulletins", self.cfg.station);
        let base = self.cfg.collectors.current();
        let what = format!("GET {base}{path}");
        let mut req = self.client.get(format!("{base}{path}"));
        for (k, v) in self.sign_get(&path) {
            req = req.header(k, v);
        }
        let resp = self.answer(&base, &what, req).await?;
        let status = resp.status().as_u16();
        let body = self.body(&what, resp, MAX_LIST_BYTES).await?;
        if status != 200 {
            return Err(IntakeError::Unreachable(format!(
                "{what}: the collector answered HTTP {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            bulletins: Vec<serde_json::Value>,
            #[serde(default)]
            cancels: Vec<serde_json::Value>,
        }
        let list: List =
            serde_json::from_slice(&body).map_err(|e| IntakeError::BadList(e.to_string()))?;
        // An envelope that does not even decode names nothing to report: logged and skipped.
        let decode = |vs: Vec<serde_json::Value>| {
            vs.iter()
                .filter_map(|v| match Envelope::from_value(v) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        tracing::error!("an envelope in the bulletins list does not decode: {e}");
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        Ok((decode(list.bulletins), decode(list.cancels)))
    }

    /// Fetch the audio `b` names into `bulletins/content/` ([`FILE_ATTEMPTS`] attempts, each
    /// resuming the part file); a file the schedule sync already holds is linked, not fetched.
    async fn fetch_audio(&self, b: &bulletin::Bulletin) -> Result<PathBuf, SyncError> {
        let want = WantedFile {
            path: format!("bulletin/{}", b.id),
            sha256: b.audio.sha256.clone(),
            size: b.audio.size,
        };
        let dest = self.store.content(&want.sha256);
        if self.store.holds(&want.sha256) {
            return Ok(dest);
        }
        let main = Store::new(&self.cfg.data_dir);
        if main.holds(&want.sha256) {
            // Verified when it entered the schedule's store; a link keeps the bytes once.
            let (src, dir) = (main.content(&want.sha256), self.store.content_dir());
            if std::fs::create_dir_all(&dir).is_ok() && std::fs::hard_link(&src, &dest).is_ok() {
                return Ok(dest);
            }
        }
        let (key, station) = (self.cfg.key.clone(), self.cfg.station.clone());
        let sign = move |p: &str| {
            request::sign(&key, &station, "GET", p, Utc::now())
                .pairs()
                .iter()
                .map(|(k, v)| (*k, (*v).to_string()))
                .collect::<Vec<_>>()
        };
        let mut attempt = 1;
        loop {
            // The collector in use at each attempt (a cut one moves them on).
            let base = self.cfg.collectors.current();
            let src = Source {
                client: &self.client,
                base: &base,
                sign: &sign,
                read_timeout: self.cfg.read_timeout,
            };
            match fetch::fetch_via(&src, Some(&self.cfg.collectors), &self.store, &want).await {
                Ok(got) => {
                    tracing::info!(bulletin = %b.id, sha256 = %want.sha256, size = want.size,
                        resumed_from = got.resumed_from, received = got.received,
                        "bulletin audio downloaded and verified");
                    return Ok(dest);
                }
                Err(e @ SyncError::Unreachable(_)) if attempt < FILE_ATTEMPTS => {
                    let wait = crate::shipper::backoff_delay(attempt, 500, 4_000);
                    tracing::warn!(bulletin = %b.id, attempt, "bulletin audio download interrupted, retrying: {e}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn save(&self) -> Result<(), IntakeError> {
        let (files, state) = (self.files.clone(), self.state.clone());
        tokio::task::spawn_blocking(move || files.save(&state))
            .await
            .map_err(|e| IntakeError::Unreachable(format!("blocking task: {e}")))?
    }

    /// Record `p` for envelope `sha` (and its receipt), persisted before anyone is told.
    async fn record(
        &mut self,
        sha: &str,
        p: Processed,
        receipt: Option<Receipt>,
    ) -> Result<(), IntakeError> {
        self.state.processed.insert(sha.to_string(), p);
        if let Some(r) = receipt {
            self.state.queue(r);
        }
        self.save().await
    }

    /// One round: fetch the list, process what is new, forget what is old.
    pub async fn round(&mut self) -> Result<RoundReport, IntakeError> {
        let (bulletins, cancels) = self.get_list().await?;
        let pinned = pin::load(&self.cfg.data_dir)?.keys();
        let area = self.area_code();
        let mut report = RoundReport::default();
        // Cancels first: a bulletin and its cancel in one list is never delivered.
        for env in cancels {
            let sha = crate::wire::sha256_hex(env.to_json().as_bytes());
            if self.state.processed.contains_key(&sha) {
                report.known += 1;
                continue;
            }
            let now = self.cfg.clock.now();
            match bulletin::check_cancel(&env, &pinned) {
                Ok(c) => {
                    let id = c.id.to_hex();
                    let had = self.state.delivered(&id);
                    self.state
                        .cancelled
                        .insert(id.clone(), now + ChronoDuration::days(8));
                    self.record(
                        &sha,
                        Processed {
                            id: Some(id.clone()),
                            outcome: Outcome::Cancel,
                            code: None,
                            at: now,
                            audio_sha256: None,
                            forget_after: now + ChronoDuration::days(8),
                        },
                        None,
                    )
                    .await?;
                    if had {
                        tracing::warn!(bulletin = %id, "bulletin cancelled by the centre");
                        self.tell(IntakeEvent::Cancelled {
                            id: c.id,
                            at: c.cancelled_at,
                        })
                        .await?;
                        report.cancelled += 1;
                    }
                }
                Err(e) => {
                    tracing::error!(code = e.code().as_str(), "a cancel refused: {e}");
                    self.record(
                        &sha,
                        Processed {
                            id: None,
                            outcome: Outcome::Dropped,
                            code: Some(e.code().as_str().to_string()),
                            at: now,
                            audio_sha256: None,
                            forget_after: now + ChronoDuration::days(8),
                        },
                        None,
                    )
                    .await?;
                }
            }
        }
        for env in bulletins {
            let json = env.to_json();
            let sha = crate::wire::sha256_hex(json.as_bytes());
            if self.state.processed.contains_key(&sha) {
                report.known += 1;
                continue;
            }
            let now = self.cfg.clock.now();
            let aired = self.links.aired.clone();
            let checked = bulletin::check(
                &env,
                &self.cfg.station,
                &area,
                &pinned,
                now,
                &|id: BulletinId, r| aired.accounted(&id.to_hex(), r),
            );
            let accepted = match checked {
                Ok(a) => a,
                Err(refusal) => {
                    // The id the body names, even when it is not to be trusted (another key,
                    // altered): the centre keeps a receipt only for a bulletin it holds.
                    let b = bulletin::Bulletin::decode(&env.body).ok();
                    let id = b.as_ref().map(|b| b.id.to_hex());
                    let forget = b.map_or(now + ChronoDuration::days(8), |b| {
                        b.not_after.max(now) + ChronoDuration::seconds(FORGET_AFTER_SECS)
                    });
                    self.refuse(&sha, id, refusal.code(), now, forget, &refusal.to_string())
                        .await?;
                    report.refused += 1;
                    continue;
                }
            };
            let b = accepted.bulletin;
            let id = b.id.to_hex();
            let forget = b.not_after + ChronoDuration::seconds(FORGET_AFTER_SECS);
            if self.state.cancelled.contains_key(&id) {
                tracing::info!(bulletin = %id, "bulletin cancelled before it arrived: dropped");
                self.record(
                    &sha,
                    Processed {
                        id: Some(id),
                        outcome: Outcome::Dropped,
                        code: Some(RefusalCode::Cancelled.as_str().to_string()),
                        at: now,
                        audio_sha256: None,
                        forget_after: forget,
                    },
                    None,
                )
                .await?;
                continue;
            }
            let audio = match self.fetch_audio(&b).await {
                Ok(p) => p,
                Err(e @ SyncError::HashMismatch { .. }) => {
                    let refusal = bulletin::check_audio(&b, "", 0)
                        .err()
                        .map_or(e.to_string(), |r| format!("{r}; {e}"));
                    self.refuse(&sha, Some(id), RefusalCode::Audio, now, forget, &refusal)
                        .await?;
                    report.refused += 1;
                    continue;
                }
                Err(e) => {
                    // Not a refusal: the next round tries again (the part file resumes).
                    return Err(IntakeError::Unreachable(format!(
                        "bulletin {id}'s audio: {e}"
                    )));
                }
            };
            // Belt and braces: the store admitted it by this hash and size.
            let (s, p) = (self.store.clone(), b.audio.sha256.clone());
            let size = tokio::task::spawn_blocking(move || {
                std::fs::metadata(s.content(&p))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .await
            .unwrap_or(0);
            if let Err(r) = bulletin::check_audio(&b, &b.audio.sha256, size) {
                self.refuse(
                    &sha,
                    Some(id),
                    RefusalCode::Audio,
                    now,
                    forget,
                    &r.to_string(),
                )
                .await?;
                report.refused += 1;
                continue;
            }
            let (files, s, j) = (self.files.clone(), sha.clone(), json.clone());
            tokio::task::spawn_blocking(move || files.save_envelope(&s, &j))
                .await
                .map_err(|e| IntakeError::Unreachable(format!("blocking task: {e}")))??;
            self.record(
                &sha,
                Processed {
                    id: Some(id.clone()),
                    outcome: Outcome::Delivered,
                    code: None,
                    at: now,
                    audio_sha256: Some(b.audio.sha256.clone()),
                    forget_after: forget,
                },
                Some(Receipt {
                    bulletin: id.clone(),
                    state: ReceiptState::Delivered,
                    code: None,
                    at: now,
                }),
            )
            .await?;
            tracing::info!(bulletin = %id, priority = ?b.priority, title = %b.title,
                next_repeat = accepted.next_repeat, "bulletin received, checked and its audio verified");
            self.tell(IntakeEvent::Ready(Box::new(ReadyBulletin {
                bulletin: b,
                envelope_sha256: sha,
                audio,
                received_at: now,
            })))
            .await?;
            report.delivered += 1;
        }
        let now = self.cfg.clock.now();
        let gone = self.state.prune(now);
        if !gone.is_empty() {
            self.save().await?;
        }
        let (files, keep) = (self.files.clone(), self.state.audio_kept());
        let _ = tokio::task::spawn_blocking(move || files.collect(&gone, &keep)).await;
        Ok(report)
    }

    async fn refuse(
        &mut self,
        sha: &str,
        id: Option<String>,
        code: RefusalCode,
        now: DateTime<Utc>,
        forget: DateTime<Utc>,
        why: &str,
    ) -> Result<(), IntakeError> {
        tracing::error!(bulletin = ?id, code = code.as_str(), "bulletin refused, it will not air: {why}");
        let receipt = id.clone().map(|bulletin| Receipt {
            bulletin,
            state: ReceiptState::Refused,
            code: Some(code.as_str().to_string()),
            at: now,
        });
        self.record(
            sha,
            Processed {
                id,
                outcome: Outcome::Refused,
                code: Some(code.as_str().to_string()),
                at: now,
                audio_sha256: None,
                forget_after: forget,
            },
            receipt,
        )
        .await
    }

    /// Send the receipts waiting (one POST, signed over its body); the number acknowledged.
    pub async fn send_receipts(&mut self) -> Result<usize, IntakeError> {
        if self.state.outbox.is_empty() {
            return Ok(0);
        }
        let batch: Vec<Receipt> = self
            .state
            .outbox
            .iter()
            .take(crate::collector::bulletins::MAX_RECEIPTS)
            .cloned()
            .collect();
        let body = serde_json::to_vec(&Receipts {
            receipts: batch.clone(),
        })
        .map_err(|e| IntakeError::BadList(e.to_string()))?;
        let path = format!("/api/v1/stations/{}/bulletin-receipts", self.cfg.station);
        let base = self.cfg.collectors.current();
        let what = format!("POST {base}{path}");
        let h = request::sign_body(
            &self.cfg.key,
            &self.cfg.station,
            "POST",
            &path,
            &body,
            Utc::now(),
        );
        let mut req = self
            .client
            .post(format!("{base}{path}"))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        let resp = self.answer(&base, &what, req.body(body)).await?;
        let status = resp.status().as_u16();
        let text = self.body(&what, resp, 64 * 1024).await?;
        let drop_batch = match status {
            200 => true,
            // The collector will never take these bytes: keeping them would block the outbox.
            400 | 413 | 422 => {
                tracing::error!(status, answer = %String::from_utf8_lossy(&text), "bulletin receipts refused by the collector as malformed; dropped");
                true
            }
            _ => false,
        };
        if !drop_batch {
            return Err(IntakeError::Unreachable(format!(
                "{what}: the collector answered HTTP {status}: {}",
                String::from_utf8_lossy(&text)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        // A receipt queued again meanwhile (same bulletin, later) stays.
        self.state.outbox.retain(|r| !batch.contains(r));
        self.save().await?;
        Ok(batch.len())
    }
}

/// Start the intake of a centre-managed station on the current runtime (`run_station`, beside
/// the sync agent); `None`, logged, when it cannot run (the station airs its schedule as before).
pub fn start(
    cfg: IntakeConfig,
    links: Links,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let url = cfg.collectors.urls().join(", ");
    match Intake::new(cfg, links) {
        Ok(i) => {
            tracing::info!(%url, "bulletin intake from the centre started");
            Some(tokio::spawn(tracing::Instrument::instrument(
                i.run(shutdown),
                tracing::info_span!("bulletins"),
            )))
        }
        Err(e) => {
            tracing::error!("bulletin intake not started: {e}");
            None
        }
    }
}

fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn processed(id: &str, outcome: Outcome, forget: &str) -> Processed {
        Processed {
            id: Some(id.into()),
            outcome,
            code: None,
            at: t("2027-09-12T01:00:00Z"),
            audio_sha256: Some("ab".repeat(32)),
            forget_after: t(forget),
        }
    }

    #[test]
    fn the_state_survives_a_restart_and_forgets_only_what_is_past() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = Files::new(dir.path());
        assert_eq!(files.load(), IntakeState::default());
        let mut s = IntakeState::default();
        s.processed.insert(
            "e1".into(),
            processed("b1", Outcome::Delivered, "2027-09-13T13:00:00Z"),
        );
        s.processed.insert(
            "e2".into(),
            processed("b2", Outcome::Refused, "2027-09-12T13:00:00Z"),
        );
        s.cancelled.insert("b3".into(), t("2027-09-20T00:00:00Z"));
        let r = |b: &str, at: &str| Receipt {
            bulletin: b.into(),
            state: ReceiptState::Delivered,
            code: None,
            at: t(at),
        };
        s.queue(r("b1", "2027-09-12T01:00:00Z"));
        s.queue(r("b1", "2027-09-12T02:00:00Z"));
        assert_eq!(s.outbox, vec![r("b1", "2027-09-12T02:00:00Z")]);
        files.save(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(files.load(), s);
        assert!(s.knows("b1") && s.knows("b2") && s.knows("b3") && !s.knows("b4"));
        assert!(s.delivered("b1") && !s.delivered("b2"));
        assert!(news(&["b1".into(), "b4".into()], &s));
        assert!(!news(&["b1".into(), "b3".into()], &s));
        let gone = s.prune(t("2027-09-13T00:00:00Z"));
        assert_eq!(gone, vec!["e2".to_string()]);
        assert!(s.knows("b1") && !s.knows("b2"));
        // An unreadable file is moved aside; the intake starts empty.
        std::fs::write(files.state_file(), b"{not json").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(files.load(), IntakeState::default());
        assert!(dir.path().join("bulletins/intake.json.unreadable").exists());
    }

    #[test]
    fn audio_no_remembered_bulletin_names_is_collected() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = Files::new(dir.path());
        let content = files.store().content_dir();
        std::fs::create_dir_all(&content).unwrap_or_else(|e| panic!("{e}"));
        let (keep, old) = ("ab".repeat(32), "cd".repeat(32));
        for n in [&keep, &old] {
            std::fs::write(content.join(n), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        files
            .save_envelope("e9", "{}")
            .unwrap_or_else(|e| panic!("{e}"));
        files.collect(&["e9".into()], &[keep.clone()].into_iter().collect());
        assert!(content.join(&keep).exists() && !content.join(&old).exists());
        assert!(!files.envelope("e9").exists());
    }

    #[test]
    fn aired_bulletins_answer_what_was_noted_in_every_clone() {
        let a = AiredBulletins::default();
        assert!(!a.accounted("b1", 1));
        a.clone().note("b1", 1);
        assert!(a.accounted("b1", 1) && !a.accounted("b1", 2) && !a.accounted("b2", 1));
    }
}
