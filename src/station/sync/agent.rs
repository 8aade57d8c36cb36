//! The sync agent: a centre-managed station's own task that keeps its schedule version and
//! content in step with the centre (docs/distribution.md, "Sync at the station").
//!
//! A round: walk the centre's key rotations when the heartbeat answer names a key the station
//! has not pinned; fetch the manifest with a station-signed request; open it against the pinned
//! key(s) (signature, shape, this station, schedule hash); refuse a replay (a version below the
//! active one) and a version whose downloads would not leave [`super::DISK_RESERVE_BYTES`] free;
//! download what is missing ([`super::fetch`], [`super::FILE_ATTEMPTS`] attempts per file, each
//! resuming from the part file); stage the version; validate its schedule with its audio as
//! `loa check` does; hand it to the daemon ([`SwitchRequest`]) and wait for its answer; then
//! collect content no kept version names. Rounds start at once, on the heartbeat answer's news
//! (a `manifest_version` above the active one and the one last tried, or a centre key not
//! pinned), every [`AgentConfig::check_secs`], and after a failure with capped, jittered backoff
//! ([`retry_wait`]).
//!
//! **Invariant:** the agent never switches anything itself: the only way a version goes on air
//! is the daemon accepting a [`SwitchRequest`] for a version the agent staged complete (every
//! file verified) and validated; any failure leaves the active version as it was, airing, and
//! is reported as its `sync.*` code in [`SyncHealth::last_error_code`] (the English detail in
//! the log). Every network wait has a time limit, file and hashing work runs on the blocking
//! pool, and the scheduler loop waits on none of it.

use super::fetch::{self, Source};
use super::store::Store;
use super::{
    CHECK_SECS, FILE_ATTEMPTS, StagedSchedule, SwitchRequest, SyncError, Wanted, WantedFile, fits,
};
use crate::centre::manifest::{self, Manifest, ManifestError};
use crate::centre::pin::{self, Pinned};
use crate::centre::request;
use crate::centre::signed::{Envelope, MAX_ENVELOPE_BYTES};
use crate::clock::Clock;
use crate::endpoints::Endpoints;
use crate::shipper::HeartbeatAnswer;
use crate::wire::{self, SyncHealth};
use ed25519_dalek::SigningKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// First wait after a failed round; doubles per failure up to [`RETRY_MAX_SECS`].
pub const RETRY_MIN_SECS: u64 = 5;
/// Longest wait after failed rounds (the periodic check's period).
pub const RETRY_MAX_SECS: u64 = CHECK_SECS;
/// Wait between attempts at one file within a round (doubling, jittered, capped at 8 s).
pub const ATTEMPT_WAIT_MIN_MS: u64 = 500;
pub const ATTEMPT_WAIT_MAX_MS: u64 = 8_000;

/// What the agent needs to run.
pub struct AgentConfig {
    pub station: String,
    pub data_dir: PathBuf,
    /// The collector URLs, shared with the station's other clients: each request goes to the
    /// one in use; a network error, a timeout or a 5xx moves them on ([`crate::endpoints`]).
    pub collectors: Endpoints,
    /// The station's key: it signs the manifest and content requests.
    pub key: SigningKey,
    /// Period of the check made without news ([`CHECK_SECS`]).
    pub check_secs: u64,
    /// Limit on each network wait ([`fetch::READ_TIMEOUT_SECS`]).
    pub read_timeout: Duration,
    /// The daemon's clock: the date a staged schedule is validated on.
    pub clock: Arc<dyn Clock>,
}

impl AgentConfig {
    /// Defaults for `station` at `collector`.
    pub fn new(station: &str, data_dir: PathBuf, collector: &str, key: SigningKey) -> Self {
        Self {
            station: station.to_string(),
            data_dir,
            collectors: Endpoints::single(collector),
            key,
            check_secs: CHECK_SECS,
            read_timeout: Duration::from_secs(fetch::READ_TIMEOUT_SECS),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }
}

/// What to do with a verified manifest of version `offered`, the station airing `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It is the active version: nothing to do.
    Current,
    /// A newer version: download, stage, switch.
    Take,
    /// An older version than the one airing: refused (`sync.replayed_version`).
    Replay,
}

/// Pure: what a manifest of version `offered` means to a station airing `active`.
pub fn judge(active: Option<u64>, offered: u64) -> Verdict {
    match active {
        Some(a) if offered == a => Verdict::Current,
        Some(a) if offered < a => Verdict::Replay,
        _ => Verdict::Take,
    }
}

/// Pure: whether the heartbeat answer's `manifest_version` is news worth a round now: above the
/// active version and above the version last tried (a version that failed is retried on the
/// backoff's schedule, not at every heartbeat).
pub fn is_news(announced: Option<u64>, active: Option<u64>, tried: Option<u64>) -> bool {
    announced.is_some_and(|v| v > active.unwrap_or(0) && v > tried.unwrap_or(0))
}

/// Pure: whether the heartbeat answer's centre key is one the station has not pinned (a
/// rotation to walk, by `centre::pin`'s rules only).
pub fn rotation_announced(centre_key: Option<&str>, pinned: &Pinned) -> bool {
    centre_key
        .is_some_and(|k| wire::decode_public_key(k).is_ok_and(|k| !pinned.keys().contains(&k)))
}

/// Pure: the wait before the next round after `failures` failed rounds in a row: from
/// [`RETRY_MIN_SECS`], doubling, capped at `max_secs`, drawn in [50 %, 100 %] of that by
/// `jitter` (0..=1) so stations that failed together do not retry in lockstep.
pub fn retry_wait(failures: u32, max_secs: u64, jitter: f64) -> Duration {
    let nominal_ms = (RETRY_MIN_SECS * 1000)
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
        .min(max_secs.max(RETRY_MIN_SECS) * 1000);
    let j = jitter.clamp(0.0, 1.0);
    Duration::from_millis(nominal_ms / 2 + ((nominal_ms - nominal_ms / 2) as f64 * j) as u64)
}

fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    }
}

/// The wanted version a verified manifest describes.
pub fn wanted_of(m: &Manifest) -> Wanted {
    Wanted {
        station: m.station.clone(),
        version: m.version,
        schedule_text: m.schedule.text.clone(),
        files: m
            .files
            .iter()
            .map(|f| WantedFile {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                size: f.size,
            })
            .collect(),
    }
}

/// The sync state at start, from the store (active version, free disk).
pub fn initial_health(data_dir: &std::path::Path) -> SyncHealth {
    SyncHealth {
        active_version: Store::new(data_dir).active().ok().flatten(),
        pending_version: None,
        missing_files: 0,
        free_bytes: crate::journal::free_bytes(data_dir),
        last_error_code: None,
    }
}

/// Validate staged version `n` as `loa check` does (the schedule with that version's audio,
/// `now`'s date in the station zone's default) and as the daemon loads a schedule (its id): the
/// schedule the daemon switches to, loaded here so the switch reads no file.
pub fn validate_staged(
    store: &Store,
    station: &str,
    n: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<StagedSchedule, SyncError> {
    let today = now
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .date_naive();
    let path = store.schedule_path(n, station);
    let root = store.audio_root(n);
    let invalid = |errors: String| SyncError::ScheduleInvalid { version: n, errors };
    let schedule_mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let (st, catalog) = crate::schedule::load(&path, &root, today).map_err(|e| {
        invalid(
            e.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    if st.id != station {
        return Err(invalid(format!(
            "{}: the schedule is for station {}, not {station}",
            path.display(),
            st.id
        )));
    }
    Ok(StagedSchedule {
        version: n,
        schedule_path: path,
        audio_root: root,
        station: st,
        catalog,
        schedule_mtime,
    })
}

/// How a round ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Round {
    /// The centre holds no version for this station yet.
    NothingPublished,
    /// The active version is the centre's latest.
    Current(u64),
    /// Switched to the version.
    Switched { from: Option<u64>, to: u64 },
}

/// The running agent.
pub struct Agent {
    cfg: AgentConfig,
    store: Store,
    client: reqwest::Client,
    health: watch::Sender<SyncHealth>,
    switch: mpsc::Sender<SwitchRequest>,
    answers: watch::Receiver<HeartbeatAnswer>,
    /// The newest version a round set out to take (succeeded or not).
    tried: Option<u64>,
}

impl Agent {
    /// An agent publishing its state to `health`, handing staged versions to `switch`, told of
    /// news by `answers` (the heartbeat's).
    pub fn new(
        cfg: AgentConfig,
        health: watch::Sender<SyncHealth>,
        switch: mpsc::Sender<SwitchRequest>,
        answers: watch::Receiver<HeartbeatAnswer>,
    ) -> Result<Self, SyncError> {
        let client = fetch::client(cfg.collectors.client_url())?;
        Ok(Self {
            store: Store::new(&cfg.data_dir),
            cfg,
            client,
            health,
            switch,
            answers,
            tried: None,
        })
    }

    /// Run rounds until `shutdown` turns true (a round in progress is dropped: a part file is
    /// kept for resuming, nothing is half-applied).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let active = self.store.active().ok().flatten();
        if active.is_none() {
            tracing::warn!(
                "no schedule version yet: the station airs nothing from the centre until its first \
                 version is downloaded, verified and switched to"
            );
        }
        let mut failures = 0u32;
        let mut next = tokio::time::Instant::now();
        let mut answers_open = true;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.changed() => return,
                r = self.answers.changed(), if answers_open => {
                    if r.is_err() {
                        answers_open = false;
                        continue;
                    }
                    let a = self.answers.borrow_and_update().clone();
                    let active = self.store.active().ok().flatten();
                    let pinned = pin::load(&self.cfg.data_dir).ok();
                    let news = is_news(a.manifest_version, active, self.tried)
                        || pinned.is_some_and(|p| rotation_announced(a.centre_key.as_deref(), &p));
                    if !news {
                        continue;
                    }
                    tracing::info!(manifest_version = ?a.manifest_version, "the heartbeat answer announces news: checking now");
                }
            }
            if *shutdown.borrow() {
                return;
            }
            let result = tokio::select! {
                r = self.round() => r,
                _ = shutdown.changed() => return,
            };
            let now = tokio::time::Instant::now();
            match result {
                Ok(r) => {
                    failures = 0;
                    match r {
                        Round::NothingPublished => tracing::info!(
                            "the centre has published no schedule version for this station yet; waiting"
                        ),
                        Round::Current(v) => {
                            tracing::debug!(version = v, "schedule version is current")
                        }
                        Round::Switched { from, to } => {
                            tracing::info!(
                                ?from,
                                to,
                                "schedule version staged, verified and switched to"
                            )
                        }
                    }
                    self.health.send_modify(|h| {
                        h.last_error_code = None;
                        h.free_bytes = crate::journal::free_bytes(&self.cfg.data_dir);
                    });
                    next = now + Duration::from_secs(self.cfg.check_secs.max(1));
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = retry_wait(failures, self.cfg.check_secs, jitter());
                    let code = e.code();
                    tracing::error!(
                        code = code.as_str(),
                        retry_in_secs = wait.as_secs(),
                        "sync refused or failed, the station keeps airing its last good version: {e}"
                    );
                    self.health.send_modify(|h| {
                        h.last_error_code = Some(code);
                        h.free_bytes = crate::journal::free_bytes(&self.cfg.data_dir);
                    });
                    next = now + wait;
                }
            }
        }
    }

    /// The request signer for this station.
    fn signer(&self) -> impl Fn(&str) -> Vec<(&'static str, String)> + Send + Sync + use<> {
        let key = self.cfg.key.clone();
        let station = self.cfg.station.clone();
        move |path: &str| {
            request::sign(&key, &station, "GET", path, chrono::Utc::now())
                .pairs()
                .iter()
                .map(|(k, v)| (*k, (*v).to_string()))
                .collect()
        }
    }

    /// GET `path` (station-signed), its status and body, each wait within the read timeout and
    /// the body at most `limit` bytes.
    async fn get(&self, path: &str, limit: usize) -> Result<(u16, Vec<u8>), SyncError> {
        let base = self.cfg.collectors.current();
        let unreachable = |why: String| SyncError::Unreachable(format!("GET {base}{path}: {why}"));
        let mut req = self.client.get(format!("{base}{path}"));
        for (k, v) in (self.signer())(path) {
            req = req.header(k, v);
        }
        let t = self.cfg.read_timeout;
        let resp = match tokio::time::timeout(t, req.send()).await {
            Ok(Ok(r)) => r,
            Err(_) => {
                self.cfg.collectors.failed(&base, "no answer in time");
                return Err(unreachable("no answer in time".into()));
            }
            Ok(Err(e)) => {
                self.cfg.collectors.failed(&base, &e.to_string());
                return Err(unreachable(e.to_string()));
            }
        };
        let status = resp.status().as_u16();
        self.cfg.collectors.judge(&base, status);
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(unreachable(format!("answer larger than {limit} bytes")));
        }
        let mut resp = resp;
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(t, resp.chunk()).await {
                Err(_) => return Err(unreachable("the answer stalled".into())),
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => {
                    if body.len() + c.len() > limit {
                        return Err(unreachable(format!("answer larger than {limit} bytes")));
                    }
                    body.extend_from_slice(&c);
                }
            }
        }
        Ok((status, body))
    }

    /// The manifest envelope's bytes (`None`: the centre holds no version for this station).
    async fn get_manifest(&self) -> Result<Option<Vec<u8>>, SyncError> {
        let path = format!("/api/v1/stations/{}/manifest", self.cfg.station);
        match self.get(&path, MAX_ENVELOPE_BYTES).await? {
            (200, body) => Ok(Some(body)),
            (404, _) => Ok(None),
            (s, body) => Err(SyncError::Unreachable(format!(
                "GET {path}: the collector answered HTTP {s}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
        }
    }

    /// Walk the centre's rotations from the pinned key (`centre::pin`'s rules): the keys pinned
    /// afterwards.
    async fn walk_rotations(&self) -> Result<Pinned, SyncError> {
        let (status, body) = self.get("/api/v1/centre", 1 << 20).await?;
        if status != 200 {
            return Err(SyncError::Unreachable(format!(
                "GET /api/v1/centre: the collector answered HTTP {status}"
            )));
        }
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| SyncError::Unreachable(format!("GET /api/v1/centre: not JSON: {e}")))?;
        let chain = doc
            .get("rotations")
            .and_then(serde_json::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(index, v)| {
                Envelope::from_value(v).map_err(|e| pin::PinError::BrokenChain {
                    index,
                    why: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dir = self.cfg.data_dir.clone();
        let accepted = tokio::task::spawn_blocking(move || pin::accept_rotations(&dir, &chain))
            .await
            .map_err(|e| SyncError::Unreachable(format!("rotation task: {e}")))??;
        if accepted.changed {
            tracing::warn!(
                key = %wire::encode_public_key(&accepted.pinned.current),
                "centre key rotation accepted (announced by a chain signed from the pinned key)"
            );
        }
        Ok(accepted.pinned)
    }

    /// Fetch `f` with up to [`FILE_ATTEMPTS`] attempts (a cut resumes from the part file).
    async fn fetch_file(&self, f: &WantedFile) -> Result<(), SyncError> {
        let sign = self.signer();
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
            match fetch::fetch_via(&src, Some(&self.cfg.collectors), &self.store, f).await {
                Ok(got) => {
                    tracing::info!(
                        path = %f.path, sha256 = %f.sha256, size = f.size,
                        resumed_from = got.resumed_from, received = got.received,
                        "file downloaded and verified"
                    );
                    return Ok(());
                }
                Err(e @ SyncError::Unreachable(_)) if attempt < FILE_ATTEMPTS => {
                    let wait = crate::shipper::backoff_delay(
                        attempt,
                        ATTEMPT_WAIT_MIN_MS,
                        ATTEMPT_WAIT_MAX_MS,
                    );
                    tracing::warn!(
                        path = %f.path, attempt, wait_ms = wait.as_millis() as u64,
                        "download interrupted, retrying: {e}"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, SyncError> + Send + 'static,
    ) -> Result<T, SyncError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| SyncError::Unreachable(format!("blocking task: {e}")))?
    }

    /// One round (see the module doc).
    async fn round(&mut self) -> Result<Round, SyncError> {
        let active = self.store.active()?;
        let mut pinned = pin::load(&self.cfg.data_dir)?;
        let announced_key = self.answers.borrow().centre_key.clone();
        if rotation_announced(announced_key.as_deref(), &pinned) {
            match self.walk_rotations().await {
                Ok(p) => pinned = p,
                // The manifest below is then checked against the keys still pinned.
                Err(e) => tracing::error!(
                    code = e.code().as_str(),
                    "the heartbeat answer names centre key {}, not pinned; its rotation is refused: {e}",
                    announced_key.as_deref().unwrap_or("")
                ),
            }
        }
        let Some(bytes) = self.get_manifest().await? else {
            return Ok(Round::NothingPublished);
        };
        let env = Envelope::decode(&bytes).map_err(ManifestError::from)?;
        let m = manifest::open(&env, &pinned.keys(), &self.cfg.station, None)?;
        match judge(active, m.version) {
            Verdict::Current => {
                self.health.send_modify(|h| {
                    h.active_version = active;
                    h.pending_version = None;
                    h.missing_files = 0;
                });
                return Ok(Round::Current(m.version));
            }
            Verdict::Replay => {
                return Err(SyncError::Replay {
                    found: m.version,
                    active: active.unwrap_or(0),
                });
            }
            Verdict::Take => {}
        }
        self.tried = Some(self.tried.map_or(m.version, |t| t.max(m.version)));
        let wanted = wanted_of(&m);
        let (missing, bytes_needed) = self.store.missing(&wanted.files);
        let missing: Vec<WantedFile> = missing.into_iter().cloned().collect();
        let free = crate::journal::free_bytes(&self.cfg.data_dir);
        self.health.send_modify(|h| {
            h.active_version = active;
            h.pending_version = Some(m.version);
            h.missing_files = missing.len() as u64;
            h.free_bytes = free;
        });
        tracing::info!(
            version = m.version,
            files = wanted.files.len(),
            missing = missing.len(),
            bytes = bytes_needed,
            "new schedule version: fetching what is missing"
        );
        if !fits(bytes_needed, free) {
            return Err(SyncError::DiskFull {
                version: m.version,
                needed: bytes_needed,
                free: free.unwrap_or(0),
                reserve: super::DISK_RESERVE_BYTES,
            });
        }
        for (i, f) in missing.iter().enumerate() {
            self.fetch_file(f).await?;
            self.health
                .send_modify(|h| h.missing_files = (missing.len() - i - 1) as u64);
        }
        let n = m.version;
        let (store, w, envelope) = (self.store.clone(), wanted.clone(), bytes.clone());
        Self::blocking(move || Ok(store.stage(&w, &envelope)?)).await?;
        let (store, station) = (self.store.clone(), self.cfg.station.clone());
        let now = self.cfg.clock.now();
        let checked = Self::blocking(move || {
            let r = validate_staged(&store, &station, n, now);
            if r.is_err() {
                store.discard(n)?;
            }
            r
        })
        .await;
        let staged = checked?;
        let (reply, answer) = oneshot::channel();
        self.switch
            .send(SwitchRequest {
                version: n,
                staged: Some(Box::new(staged)),
                reply,
            })
            .await
            .map_err(|_| SyncError::SwitchRefused("the daemon is stopping".into()))?;
        tracing::info!(
            version = n,
            "version staged and valid: asking the daemon to switch (when nothing is on air)"
        );
        match answer.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                let store = self.store.clone();
                let _ = Self::blocking(move || Ok(store.discard(n)?)).await;
                return Err(SyncError::SwitchRefused(why));
            }
            Err(_) => {
                return Err(SyncError::SwitchRefused(
                    "the daemon dropped the request".into(),
                ));
            }
        }
        self.health.send_modify(|h| {
            h.active_version = Some(n);
            h.pending_version = None;
            h.missing_files = 0;
        });
        let store = self.store.clone();
        match Self::blocking(move || Ok(store.collect(&[])?)).await {
            Ok((versions, files)) if !versions.is_empty() || !files.is_empty() => {
                tracing::info!(
                    ?versions,
                    files = files.len(),
                    "content no kept version needs deleted"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("collecting old content failed (kept for now): {e}"),
        }
        Ok(Round::Switched {
            from: active,
            to: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_taken_only_when_newer() {
        let check = |active, offered, want| {
            assert_eq!(judge(active, offered), want, "{active:?} {offered}")
        };
        check(None, 1, Verdict::Take);
        check(Some(3), 4, Verdict::Take);
        check(Some(3), 3, Verdict::Current);
        check(Some(3), 2, Verdict::Replay);
        check(Some(3), 1, Verdict::Replay);
    }

    #[test]
    fn news_is_a_version_above_the_active_and_the_last_tried() {
        let check = |a, act, t, want| assert_eq!(is_news(a, act, t), want, "{a:?} {act:?} {t:?}");
        check(None, None, None, false);
        check(Some(1), None, None, true);
        check(Some(1), Some(1), None, false);
        check(Some(2), Some(1), None, true);
        // Version 2 failed: the heartbeat naming it again is not news (the backoff retries).
        check(Some(2), Some(1), Some(2), false);
        check(Some(3), Some(1), Some(2), true);
        check(Some(1), Some(2), None, false);
    }

    #[test]
    fn only_an_unpinned_key_announces_a_rotation() {
        let k = |n: u8| SigningKey::from_bytes(&[n; 32]).verifying_key();
        let pinned = Pinned {
            current: k(1),
            previous: Some(k(0)),
        };
        let text = |n: u8| wire::encode_public_key(&k(n));
        assert!(!rotation_announced(None, &pinned));
        assert!(!rotation_announced(Some(&text(1)), &pinned));
        assert!(!rotation_announced(Some(&text(0)), &pinned));
        assert!(rotation_announced(Some(&text(2)), &pinned));
        assert!(!rotation_announced(Some("not a key"), &pinned));
    }

    #[test]
    fn retries_back_off_doubling_capped_with_jitter() {
        assert_eq!(retry_wait(1, 300, 1.0), Duration::from_secs(5));
        assert_eq!(retry_wait(1, 300, 0.0), Duration::from_millis(2_500));
        assert_eq!(retry_wait(2, 300, 1.0), Duration::from_secs(10));
        assert_eq!(retry_wait(4, 300, 1.0), Duration::from_secs(40));
        for f in 7..100 {
            assert_eq!(retry_wait(f, 300, 1.0), Duration::from_secs(300), "{f}");
            assert!(retry_wait(f, 300, 0.3) >= Duration::from_secs(150));
        }
        // Never shorter than the first wait, whatever the cap.
        assert_eq!(retry_wait(9, 1, 1.0), Duration::from_secs(5));
    }

    #[test]
    fn a_manifest_becomes_the_wanted_version() {
        let m = Manifest {
            v: 1,
            station: "p1".into(),
            version: 4,
            issued_at: chrono::Utc::now(),
            from: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default(),
            days: 45,
            schedule: manifest::ScheduleText {
                sha256: wire::sha256_hex(b"x"),
                text: "x".into(),
            },
            files: vec![manifest::FileEntry {
                path: "cchc/2027-01.mp3".into(),
                sha256: "a".repeat(64),
                size: 7,
            }],
        };
        let w = wanted_of(&m);
        assert_eq!(
            (w.station.as_str(), w.version, w.schedule_text.as_str()),
            ("p1", 4, "x")
        );
        assert_eq!(
            w.files,
            vec![WantedFile {
                path: "cchc/2027-01.mp3".into(),
                sha256: "a".repeat(64),
                size: 7
            }]
        );
    }

    #[test]
    fn a_staged_schedule_that_fails_validation_is_refused_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::new(dir.path());
        let text = "id = \"p1\"\nname = \"A\"\nkind = \"ward\"\narea_code = \"1\"\n\n[[slots]]\nid = \"s\"\ncron = \"0 6 * * *\"\nplay = [\"missing.mp3\"]\n";
        let w = Wanted {
            station: "p1".into(),
            version: 2,
            schedule_text: text.into(),
            files: vec![],
        };
        store.stage(&w, b"{}").unwrap_or_else(|e| panic!("{e}"));
        let now = chrono::Utc::now();
        let e = validate_staged(&store, "p1", 2, now).unwrap_err();
        assert_eq!(e.code(), crate::reason::ReasonCode::SyncScheduleInvalid);
        assert!(e.to_string().contains("missing.mp3"), "{e}");
        // A valid one (no slots) passes; another station's id does not.
        let ok = Wanted {
            version: 3,
            schedule_text: "id = \"p1\"\nname = \"A\"\nkind = \"ward\"\narea_code = \"1\"\n".into(),
            ..w.clone()
        };
        store.stage(&ok, b"{}").unwrap_or_else(|e| panic!("{e}"));
        let staged = validate_staged(&store, "p1", 3, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((staged.version, staged.station.id.as_str()), (3, "p1"));
        assert_eq!(staged.schedule_path, store.schedule_path(3, "p1"));
        let e = validate_staged(&store, "p2", 3, now).unwrap_err();
        assert_eq!(e.code(), crate::reason::ReasonCode::SyncScheduleInvalid);
    }
}
