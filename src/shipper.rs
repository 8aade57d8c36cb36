//! Delivers journaled airing records and heartbeats to the collector over HTTP.
//!
//! **Invariant:** records leave in journal order, each exactly once from the collector's point of
//! view (a resend after a crash is acknowledged as a duplicate), and the acknowledged position in
//! the ledger only moves past a record once the collector has stored it or named it invalid (then
//! it is kept in the set-aside file). The shipper reads the journal with its own reader and never
//! holds anything the scheduler waits on, so a backlog of any size never delays an airing.
//!
//! # Retry rules (decided per answer)
//! | answer | delivery status | what happens |
//! |---|---|---|
//! | 200 + `BatchAck` | Delivered | ledger := highest seq of the batch whose every earlier seq is accepted or duplicate |
//! | network error, timeout, 5xx | Errored | retry the same batch after capped exponential backoff with jitter |
//! | 429 | Errored | wait `Retry-After` seconds (capped at [`MAX_RETRY_AFTER_SECS`]), else backoff |
//! | other 4xx (400, 422…) naming seqs in `BatchAck.rejected` | Rejected | those records go to `rejected.jsonl`, are skipped from then on, the rest is resent |
//! | 409 with `stored_through` below what we think is acked | — | the collector lost records: rewind the ledger to `stored_through` and resend |
//! | 401 (station not registered), 403 (registered key is not this station's key) | NotEnrolled | log a clear error naming the fix, retry with backoff; records stay in the journal until the station is enrolled |
//! | any other 4xx (conflict…) | Refused | log the collector's answer, retry with backoff; never set anything aside |
//!
//! A 403 names every record of the batch, but the records are signed by this station's own key
//! (the journal signs them): the registration is what is wrong, so nothing is set aside.
//!
//! A backoff wait ends early, and the backoff starts over, when the heartbeat gets a successful
//! answer from the collector or the daemon sees its journal writable again
//! ([`ShipperConfig::wake`]): after an outage the backlog drains within one heartbeat period of
//! the collector's return, not after the remaining backoff (up to 5 min). A `Retry-After` is
//! honoured whole.
//!
//! Continuing past a rejected record leaves a sequence gap at the collector (it reports gaps);
//! the refused record itself is kept verbatim in the set-aside file for the operator.
//!
//! Several collectors ([`crate::endpoints`]): each batch and each heartbeat goes to the set's
//! URL in use; a network error, a timeout or a 5xx moves the set to the next URL, and the batch
//! is retried there after the usual backoff (ingest is idempotent, so a batch that reached a
//! collector before it died is acknowledged as duplicates by the next). A 4xx never moves it.

use crate::endpoints::Endpoints;
use crate::journal::{AckLedger, JournalError, JournalReader, SetAside, SetAsideEntry};
use crate::wire::{
    self, AiringBrief, BatchAck, Heartbeat, JournalHealth, RecordBatch, SignedRecord,
};
use ed25519_dalek::SigningKey;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// Records per batch: big enough that a month's backlog (10,000) drains in 50 requests, small
/// enough that one batch (~300 KiB) goes through a poor link within the request timeout.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 200;
/// First retry delay after a failure.
pub const DEFAULT_BACKOFF_MIN_MS: u64 = 1_000;
/// Longest delay between retries (a station offline for days retries every 5 min).
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 300_000;
/// Longest `Retry-After` honoured; a larger value is clamped so a bad header cannot stall a day.
pub const MAX_RETRY_AFTER_SECS: u64 = 3_600;
/// HTTP request timeout.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Heartbeat period (issue: every N seconds, default 60).
pub const DEFAULT_HEARTBEAT_SECS: u64 = 60;
/// How often an idle shipper re-reads the journal even without a wake-up (belt and braces).
pub const IDLE_POLL_SECS: u64 = 30;

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("collector unreachable: {0}")]
    Network(String),
    #[error("collector answered {status}: {body}")]
    Server { status: u16, body: String },
    #[error("collector asks to slow down (429), retry after {retry_after_secs:?} s")]
    TooMany { retry_after_secs: Option<u64> },
    #[error("collector refused the batch ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error(
        "station is not enrolled with the collector ({status}: {body}); register this station's \
         public key (station.pub, printed by `loa keygen`) with `loa register` on the collector. \
         Records stay in the journal and are sent once it is registered"
    )]
    NotEnrolled { status: u16, body: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl ShipError {
    /// Whether sending the same batch again may succeed without anyone changing anything.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            ShipError::Network(_) | ShipError::Server { .. } | ShipError::TooMany { .. }
        )
    }
}

/// Shipper settings.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// The collector URLs (e.g. `http://127.0.0.1:8080`), shared with the station's other
    /// clients: every request goes to the one in use.
    pub collectors: Endpoints,
    pub station: String,
    /// The station's journal directory.
    pub journal_dir: PathBuf,
    pub max_batch_records: usize,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    pub request_timeout_secs: u64,
    pub heartbeat_secs: u64,
    /// Wakes a shipper waiting out a backoff and resets it: shared by every clone of this
    /// config, so the heartbeat made from a clone wakes the shipper made from another when the
    /// collector answers it, and the daemon wakes it when disk space returns.
    pub wake: Arc<Notify>,
    /// What the collector's last heartbeat answer said (the manifest version it holds for this
    /// station, its current centre key): `station::sync` watches it. Shared by every clone.
    pub answers: Arc<watch::Sender<HeartbeatAnswer>>,
}

/// What a station reads of the collector's answer to a heartbeat (other fields are ignored; an
/// older collector's answer has neither).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct HeartbeatAnswer {
    /// The latest schedule version the centre published for this station (`None`: none).
    #[serde(default)]
    pub manifest_version: Option<u64>,
    /// The centre's current public key (base64), so a station notices a rotation.
    #[serde(default)]
    pub centre_key: Option<String>,
    /// The ids of the bulletins the centre holds for this station, not cancelled, window open
    /// (the fallback for networks that cut the push channel; `station::bulletins` fetches when
    /// one is new to it).
    #[serde(default)]
    pub pending_bulletins: Vec<String>,
}

impl ShipperConfig {
    /// Defaults for `station` shipping `journal_dir` to `url` (one collector; set
    /// [`ShipperConfig::collectors`] for several).
    pub fn new(url: &str, station: &str, journal_dir: PathBuf) -> Self {
        Self {
            collectors: Endpoints::single(url),
            station: station.to_string(),
            journal_dir,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            backoff_min_ms: DEFAULT_BACKOFF_MIN_MS,
            backoff_max_ms: DEFAULT_BACKOFF_MAX_MS,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
            wake: Arc::new(Notify::new()),
            answers: Arc::new(watch::Sender::new(HeartbeatAnswer::default())),
        }
    }
}

/// Shared counters: the journal's last seq (written by the scheduler) and the acked position
/// (written by the shipper). Read by the heartbeat.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Highest seq journaled; the scheduler sends each new value, which also wakes the shipper.
    pub last_seq: watch::Receiver<u64>,
    /// Highest seq acknowledged or set aside.
    pub acked: Arc<AtomicU64>,
}

impl Progress {
    /// Records journaled but not yet acknowledged.
    pub fn backlog(&self) -> u64 {
        (*self.last_seq.borrow()).saturating_sub(self.acked.load(Ordering::Relaxed))
    }
}

/// What the station reports about itself in a heartbeat, beyond the counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStatus {
    pub now_airing: Option<AiringBrief>,
    pub next_airing: Option<AiringBrief>,
    pub output: String,
    pub output_ok: bool,
    /// The journal's state (the heartbeat adds the free space it reads itself).
    pub journal: JournalHealth,
    /// A centre-managed station's sync state (`station::sync`); `None` for other stations.
    pub sync: Option<crate::wire::SyncHealth>,
}

/// Build an HTTP client for `url` (installs the ring crypto provider for rustls once per
/// process). For a plain `http://` collector no trust store is loaded: the platform verifier
/// parses every system root certificate (~150) into memory, for nothing on a loopback or LAN
/// collector.
pub fn http_client(url: &str, timeout_secs: u64) -> Result<reqwest::Client, ShipError> {
    // Already installed (by us or another part of the process) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder();
    if url.starts_with("http://") {
        b = b.tls_certs_only(Vec::new());
    }
    b.timeout(Duration::from_secs(timeout_secs))
        .connect_timeout(Duration::from_secs(timeout_secs.min(10)))
        .user_agent(concat!("loa-station/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ShipError::Client(e.to_string()))
}

/// Capped exponential backoff with jitter: attempt 1 waits ~min, doubling up to max; the wait is
/// drawn uniformly from [50 %, 100 %] of that so many stations do not retry in lockstep.
pub fn backoff_delay(attempt: u32, min_ms: u64, max_ms: u64) -> Duration {
    let exp = min_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(max_ms).max(1);
    let mut b = [0u8; 8];
    let r = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
        ),
    };
    let half = capped / 2;
    Duration::from_millis(half + r % (capped - half + 1))
}

/// Parse a `Retry-After` header given in seconds (the HTTP-date form falls back to backoff).
fn retry_after_secs(h: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    h.and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| s.min(MAX_RETRY_AFTER_SECS))
}

/// What one batch send came to.
#[derive(Debug)]
enum Delivery {
    /// Stored through this seq.
    Delivered(u64),
    /// The collector named these records invalid; nothing of the batch was stored.
    Rejected(Vec<(u64, String)>),
    /// The collector holds only up to this seq: rewind.
    Rewind(u64),
}

/// The record shipper.
pub struct Shipper {
    cfg: ShipperConfig,
    client: reqwest::Client,
    ledger: AckLedger,
    set_aside: SetAside,
    skip: BTreeSet<u64>,
    acked: Arc<AtomicU64>,
    /// The collector the last batch went to (named in the logs).
    last_url: String,
}

impl Shipper {
    /// A shipper; loads the ledger and the set-aside list.
    pub fn new(cfg: ShipperConfig) -> Result<(Self, Arc<AtomicU64>), ShipError> {
        let client = http_client(cfg.collectors.client_url(), cfg.request_timeout_secs)?;
        let ledger = AckLedger::new(&cfg.journal_dir);
        let set_aside = SetAside::new(&cfg.journal_dir);
        let skip = set_aside.entries()?.into_iter().map(|e| e.seq).collect();
        let acked = Arc::new(AtomicU64::new(ledger.load()?));
        let last_url = cfg.collectors.current();
        Ok((
            Self {
                last_url,
                cfg,
                client,
                ledger,
                set_aside,
                skip,
                acked: acked.clone(),
            },
            acked,
        ))
    }

    /// Send `records` (whose seqs are `seqs`, in order) to the collector in use; a network
    /// error or a 5xx moves the collectors on ([`Endpoints::failed`]).
    async fn send(
        &mut self,
        records: &[SignedRecord],
        seqs: &[u64],
    ) -> Result<Delivery, ShipError> {
        let first = seqs.first().copied().unwrap_or(0);
        let body = RecordBatch {
            records: records.to_vec(),
        };
        let base = self.cfg.collectors.current();
        self.last_url.clone_from(&base);
        let url = format!("{base}/api/v1/stations/{}/records", self.cfg.station);
        let network = |e: reqwest::Error| {
            let why = e.to_string();
            self.cfg.collectors.failed(&base, &why);
            ShipError::Network(why)
        };
        let resp = self
            .client
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(network)?;
        let status = resp.status();
        let retry_after = retry_after_secs(resp.headers().get(reqwest::header::RETRY_AFTER));
        let text = resp.text().await.map_err(network)?;
        self.cfg.collectors.judge(&base, status.as_u16());
        let ack: Option<BatchAck> = serde_json::from_str(&text).ok();
        let short = |t: &str| t.chars().take(500).collect::<String>();
        if status.as_u16() == 429 {
            return Err(ShipError::TooMany {
                retry_after_secs: retry_after,
            });
        }
        if status.is_server_error() {
            return Err(ShipError::Server {
                status: status.as_u16(),
                body: short(&text),
            });
        }
        if status.is_success() {
            let ack = ack.ok_or_else(|| ShipError::Server {
                status: status.as_u16(),
                body: format!("answer is not a BatchAck: {}", short(&text)),
            })?;
            let named = named_rejections(&ack);
            if !named.is_empty() {
                return Ok(Delivery::Rejected(named));
            }
            let stored: BTreeSet<u64> = ack
                .accepted
                .iter()
                .chain(&ack.duplicates)
                .copied()
                .collect();
            let mut through = first.saturating_sub(1);
            for &seq in seqs {
                if stored.contains(&seq) || self.skip.contains(&seq) || seq <= ack.stored_through {
                    through = seq;
                } else {
                    break;
                }
            }
            if through < first {
                return Err(ShipError::Server {
                    status: status.as_u16(),
                    body: format!("acknowledged none of the batch: {}", short(&text)),
                });
            }
            return Ok(Delivery::Delivered(through));
        }
        if status.as_u16() == 409
            && let Some(a) = &ack
            && a.stored_through + 1 < first
            && !(a.stored_through + 1..first).any(|s| self.skip.contains(&s))
        {
            return Ok(Delivery::Rewind(a.stored_through));
        }
        if matches!(status.as_u16(), 401 | 403) {
            let body = ack
                .as_ref()
                .and_then(|a| a.rejected.first().map(|r| r.reason.clone()))
                .or_else(|| {
                    serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
                })
                .unwrap_or_else(|| short(&text));
            return Err(ShipError::NotEnrolled {
                status: status.as_u16(),
                body: short(&body),
            });
        }
        if status.is_client_error()
            && status.as_u16() != 409
            && let Some(a) = &ack
        {
            let named = named_rejections(a);
            if !named.is_empty() {
                return Ok(Delivery::Rejected(named));
            }
        }
        Err(ShipError::Refused {
            status: status.as_u16(),
            body: short(&text),
        })
    }

    fn set_position(&self, seq: u64) -> Result<(), ShipError> {
        self.ledger.store(seq)?;
        self.acked.store(seq, Ordering::Relaxed);
        Ok(())
    }

    /// Ship until `shutdown` turns true, then drain: keep sending while there are records and
    /// the collector takes them, and return at the first empty read or failure (the caller bounds
    /// how long it waits). `last_seq` wakes the shipper when the journal grows.
    pub async fn run(
        mut self,
        mut last_seq: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ShipError> {
        let mut reader = Some(JournalReader::new(&self.cfg.journal_dir));
        let mut attempt = 0u32;
        // Failed sends since the last delivery (unlike `attempt`, a wake-up does not reset it):
        // the first delivery after failures is logged.
        let mut failed_since_delivery = 0u32;
        loop {
            let draining = *shutdown.borrow();
            let acked = self.acked.load(Ordering::Relaxed);
            let max = self.cfg.max_batch_records;
            let Some(mut r) = reader.take() else {
                return Ok(());
            };
            // File reads off the async threads.
            let (r, batch) = tokio::task::spawn_blocking(move || {
                let b = r.read_after(acked, max);
                (r, b)
            })
            .await
            .map_err(|e| ShipError::Client(format!("reader task failed: {e}")))?;
            reader = Some(r);
            let result = match batch {
                Ok(batch) if batch.is_empty() => {
                    if draining {
                        return Ok(());
                    }
                    attempt = 0;
                    tokio::select! {
                        _ = last_seq.changed() => {}
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(IDLE_POLL_SECS)) => {}
                    }
                    continue;
                }
                Ok(batch) => self.ship(batch, acked).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) => {
                    if failed_since_delivery > 0 {
                        // Said once, so an operator reading the failures above knows they ended.
                        tracing::info!(
                            failed_attempts = failed_since_delivery,
                            collector = %self.last_url,
                            "shipping resumed: the collector {} took the batch", self.last_url
                        );
                    }
                    attempt = 0;
                    failed_since_delivery = 0;
                }
                Err(e) if draining => {
                    tracing::warn!(
                        "shipping stopped at shutdown: {e}; the rest ships on the next start"
                    );
                    return Ok(());
                }
                // Network, collector and local disk errors alike (a ledger that cannot be
                // written on a full disk): wait and try again; a resend is acknowledged as
                // duplicates.
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    failed_since_delivery = failed_since_delivery.saturating_add(1);
                    let wait = match &e {
                        ShipError::TooMany {
                            retry_after_secs: Some(s),
                        } => Duration::from_secs(*s),
                        _ => {
                            backoff_delay(attempt, self.cfg.backoff_min_ms, self.cfg.backoff_max_ms)
                        }
                    };
                    if e.is_retriable() {
                        tracing::warn!(
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            collector = %self.last_url,
                            "shipping failed: {e}"
                        );
                    } else {
                        tracing::error!(
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            collector = %self.last_url,
                            "shipping refused, will retry: {e}"
                        );
                    }
                    // A collector that asked for a pause (429 + Retry-After) gets it whole;
                    // otherwise any sign that sending can work again (the collector answered a
                    // heartbeat, disk space returned) ends the wait and the backoff.
                    let honour = matches!(
                        e,
                        ShipError::TooMany {
                            retry_after_secs: Some(_)
                        }
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                        _ = self.cfg.wake.notified(), if !honour => {
                            tracing::info!(attempt, "woken (collector answered or disk space returned): retrying now");
                            attempt = 0;
                        }
                    }
                }
            }
        }
    }

    /// Send one batch read after `acked` and act on the answer.
    async fn ship(&mut self, batch: Vec<SignedRecord>, acked: u64) -> Result<(), ShipError> {
        // Each record is parsed once here for its seq (the reader checked it is a record).
        let parsed: Vec<(u64, SignedRecord)> = batch
            .into_iter()
            .map(|r| (r.parse().map(|p| p.seq).unwrap_or(0), r))
            .collect();
        let raw_last = parsed.last().map(|(s, _)| *s).unwrap_or(acked);
        let (seqs, send): (Vec<u64>, Vec<SignedRecord>) = parsed
            .into_iter()
            .filter(|(seq, _)| !self.skip.contains(seq))
            .unzip();
        if send.is_empty() {
            // Only set-aside records: move past them.
            return self.set_position(raw_last);
        }
        let first = seqs[0];
        let t0 = Instant::now();
        match self.send(&send, &seqs).await? {
            Delivery::Delivered(through) => {
                self.set_position(through)?;
                tracing::debug!(
                    first,
                    through,
                    ms = t0.elapsed().as_millis() as u64,
                    collector = %self.last_url,
                    "shipped"
                );
            }
            Delivery::Rewind(to) => {
                tracing::warn!(
                    to,
                    was = acked,
                    "collector holds fewer records than acknowledged; resending from {}",
                    to + 1
                );
                self.set_position(to)?;
            }
            Delivery::Rejected(named) => {
                for (seq, reason) in named {
                    let Some(rec) = seqs
                        .iter()
                        .position(|s| *s == seq)
                        .and_then(|i| send.get(i))
                        .cloned()
                    else {
                        continue;
                    };
                    tracing::error!(seq, %reason, "collector rejected record; set aside in rejected.jsonl");
                    self.set_aside.put(&SetAsideEntry {
                        seq,
                        reason,
                        rejected_at: chrono::Utc::now(),
                        record: rec,
                    })?;
                    self.skip.insert(seq);
                }
            }
        }
        Ok(())
    }
}

fn named_rejections(ack: &BatchAck) -> Vec<(u64, String)> {
    ack.rejected
        .iter()
        .filter_map(|r| r.seq.map(|s| (s, r.reason.clone())))
        .collect()
}

/// Whether the kernel says the system clock is synchronised (`adjtimex`: not `TIME_ERROR` and no
/// `STA_UNSYNC`). `None` when it cannot tell.
pub fn clock_synced() -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `timex` is plain data; modes = 0 only reads the kernel state.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        tx.modes = 0;
        let state = unsafe { libc::adjtimex(&mut tx) };
        if state < 0 {
            return None;
        }
        Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Sends a signed heartbeat every `cfg.heartbeat_secs` until shutdown. Failures are logged and
/// not retried: the next beat is the retry; the first delivered after failures says so.
pub async fn run_heartbeat(
    cfg: ShipperConfig,
    key: SigningKey,
    progress: Progress,
    status: watch::Receiver<LiveStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ShipError> {
    let client = http_client(cfg.collectors.client_url(), cfg.request_timeout_secs)?;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.heartbeat_secs.max(1)));
    // Heartbeats not delivered since the last one that was (a recovery is logged once).
    let mut failed_beats = 0u64;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        let live = status.borrow().clone();
        let hb = Heartbeat {
            v: wire::HEARTBEAT_VERSION,
            station: cfg.station.clone(),
            sent_at: chrono::Utc::now(),
            now_airing: live.now_airing,
            next_airing: live.next_airing,
            backlog_records: progress.backlog(),
            last_seq: *progress.last_seq.borrow(),
            output: live.output,
            output_ok: live.output_ok,
            clock_synced: clock_synced(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: started.elapsed().as_secs(),
            journal: Some(JournalHealth {
                free_bytes: crate::journal::free_bytes(&cfg.journal_dir),
                ..live.journal
            }),
            sync: live.sync,
        };
        let signed = match hb.sign(&key) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("heartbeat not signed: {e}");
                continue;
            }
        };
        // The collector in use now (another client may have moved the set since the last beat).
        let base = cfg.collectors.current();
        let url = format!("{base}/api/v1/stations/{}/heartbeat", cfg.station);
        let sent = client.post(&url).json(&signed).send().await;
        match &sent {
            Ok(r) => cfg.collectors.judge(&base, r.status().as_u16()),
            Err(e) => {
                cfg.collectors.failed(&base, &e.to_string());
            }
        }
        let delivered = match sent {
            Ok(r) if r.status().is_success() => {
                tracing::trace!(collector = %base, "heartbeat sent");
                // The answer's news for `station::sync` (an unreadable answer is news of nothing).
                if let Ok(a) = r.json::<HeartbeatAnswer>().await {
                    cfg.answers.send_if_modified(|old| {
                        let changed = *old != a;
                        *old = a;
                        changed
                    });
                }
                // The collector answers: a shipper waiting out a backoff retries now.
                cfg.wake.notify_waiters();
                true
            }
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), collector = %base, "heartbeat refused");
                false
            }
            Err(e) => {
                tracing::debug!(collector = %base, "heartbeat not delivered: {e}");
                false
            }
        };
        if delivered && failed_beats > 0 {
            tracing::info!(
                failed_beats,
                collector = %base,
                "collector {base} reachable: heartbeat delivered"
            );
        }
        failed_beats = if delivered { 0 } else { failed_beats + 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_doubling_with_jitter() {
        for attempt in 1..40 {
            let d = backoff_delay(attempt, 1000, 300_000).as_millis() as u64;
            let nominal = (1000u64 << (attempt - 1).min(30)).min(300_000);
            assert!(
                d >= nominal / 2 && d <= nominal,
                "attempt {attempt}: {d} vs {nominal}"
            );
        }
    }

    #[test]
    fn retry_after_is_parsed_and_capped() {
        let h = reqwest::header::HeaderValue::from_static("7");
        assert_eq!(retry_after_secs(Some(&h)), Some(7));
        let h = reqwest::header::HeaderValue::from_static("999999");
        assert_eq!(retry_after_secs(Some(&h)), Some(MAX_RETRY_AFTER_SECS));
        let h = reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after_secs(Some(&h)), None);
    }

    #[test]
    fn clock_sync_state_is_readable() {
        // The kernel answers adjtimex on Linux; whether it is synced depends on the host.
        #[cfg(target_os = "linux")]
        assert!(clock_synced().is_some());
    }
}
