//! The push channel, the station's side (issue #15; docs/bulletins.md, "Push channel"): one
//! long-lived Server-Sent Events connection to the collector's
//! `GET /api/v1/stations/{id}/events` (a station-signed request), read as it comes.
//!
//! On a `bulletin` or `cancel` event it wakes the bulletin intake (`bulletin_wake`, contract
//! item 4), which fetches the station's bulletins through the signed GET and checks each with
//! `bulletin::check`: the event's data is only a hint, so the push channel adds no trust path.
//! On a `manifest` event it tells the sync agent of the version, as the heartbeat answer does
//! (the agent's own rules decide whether it is news). The connection has a connect timeout and
//! a read timeout ([`READ_TIMEOUT_SECS`], longer than the collector's keep-alive period), so a
//! connection cut without a word (a NAT or a proxy dropping it) is noticed; it reconnects with
//! capped, jittered backoff and `Last-Event-ID`, so what was sent meanwhile and is still valid
//! arrives on reconnect. The heartbeat answer's `pending_bulletins` stays the fallback for
//! networks that never keep a connection long.
//!
//! Several collectors ([`crate::endpoints`]): each connection goes to the URL in use; a failure
//! to connect, a connection that stays silent, or a 5xx moves the station's collectors on, and
//! the reconnect (after the backoff) goes to the next URL with the same `Last-Event-ID` (the
//! event ids come from the shared database, so they are valid on every replica). A stream that
//! ends or is cut after it was up is not a failure of the URL by itself: the reconnect tells.
//!
//! **Invariant:** nothing read from the stream is acted on except as a wake-up; a line longer
//! than [`MAX_LINE_BYTES`] or an event larger than [`MAX_EVENT_BYTES`] ends the connection
//! (never an unbounded buffer); every network wait has a time limit; the scheduler loop waits
//! on none of this.

use crate::centre::request;
use crate::endpoints::Endpoints;
use crate::shipper::HeartbeatAnswer;
use ed25519_dalek::SigningKey;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Time to set up the connection and get the answer's headers.
pub const CONNECT_TIMEOUT_SECS: u64 = 10;
/// Longest silence on an open stream before it is taken for dead: three of the collector's
/// keep-alive periods (`collector::push::KEEP_ALIVE_SECS`, 15 s).
pub const READ_TIMEOUT_SECS: u64 = 45;
/// First wait before reconnecting after a failure; doubles per failure up to
/// [`BACKOFF_MAX_MS`], jittered.
pub const BACKOFF_MIN_MS: u64 = 1_000;
/// Longest wait before reconnecting.
pub const BACKOFF_MAX_MS: u64 = 60_000;
/// A connection that stayed up this long was a success: the backoff starts over.
pub const STABLE_SECS: u64 = 60;
/// Longest line of the stream (a bulletin envelope is at most 1 MiB of body, base64-free JSON).
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Largest event (its data lines together).
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Why a push connection ended.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push channel: cannot reach the collector: {0}")]
    Unreachable(String),
    #[error("push channel: the collector refused the connection ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("push channel: nothing received for {0} s; the connection is taken for dead")]
    Silent(u64),
    #[error("push channel: {0}")]
    Stream(String),
    #[error("push channel: a line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("push channel: an event larger than {MAX_EVENT_BYTES} bytes")]
    EventTooLarge,
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`message` when absent, as the standard says).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id at this event (the stream's, carried over from earlier events).
    pub id: Option<String>,
    /// Whether this event itself carried an `id:` field.
    pub has_id: bool,
}

/// A Server-Sent Events parser (the WHATWG "event stream interpretation"), fed chunks as they
/// arrive: lines end with CRLF, LF or CR; `:` starts a comment; `event`, `data`, `id`, `retry`
/// fields; an empty line dispatches. Bounded: [`MAX_LINE_BYTES`] per line, [`MAX_EVENT_BYTES`]
/// per event.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The last byte seen was a CR (an LF right after it ends nothing more).
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    has_id: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl Parser {
    /// A parser at the start of a stream whose last event id is `last_id`.
    pub fn new(last_id: Option<String>) -> Self {
        Self {
            last_id,
            ..Self::default()
        }
    }

    /// The stream's last event id (what a reconnect sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection time the stream asked for (`retry:`), if any.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Feed `chunk`; the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, PushError> {
        let mut out = Vec::new();
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.line_done(&line)? {
                        out.push(e);
                    }
                    self.line = line;
                    self.line.clear();
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(PushError::LineTooLong);
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, raw: &[u8]) -> Result<Option<SseEvent>, PushError> {
        let mut line = String::from_utf8_lossy(raw);
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = std::borrow::Cow::Owned(rest.to_string());
            }
        }
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    return Err(PushError::EventTooLarge);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => {
                self.last_id = Some(value.to_string()).filter(|v| !v.is_empty());
                self.has_id = true;
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        let has_id = std::mem::take(&mut self.has_id);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
            has_id,
        })
    }
}

/// Pure: the wait before reconnect attempt `failures` (≥ 1): from `min_ms` (the stream's
/// `retry:` when larger than [`BACKOFF_MIN_MS`]), doubling, capped at [`BACKOFF_MAX_MS`], drawn
/// in [50 %, 100 %] of that by `jitter` (0..=1) so stations cut off together do not come back
/// in lockstep.
pub fn backoff(failures: u32, min_ms: u64, jitter: f64) -> Duration {
    let min = min_ms.clamp(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    let nominal = min
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
        .min(BACKOFF_MAX_MS);
    let j = jitter.clamp(0.0, 1.0);
    Duration::from_millis((nominal as f64 * (0.5 + 0.5 * j)) as u64)
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

/// What the client needs.
pub struct PushConfig {
    pub station: String,
    /// The collector URLs, shared with the station's other clients: each connection goes to the
    /// one in use.
    pub collectors: Endpoints,
    /// The station's key: it signs each connection's request.
    pub key: SigningKey,
    /// Notified on every `bulletin` and `cancel` event (the intake's `bulletin_wake`).
    pub wake: Arc<Notify>,
    /// Told of the version of every `manifest` event (the heartbeat answers the sync agent
    /// watches); `None`: manifest events are ignored.
    pub answers: Option<Arc<watch::Sender<HeartbeatAnswer>>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl PushConfig {
    /// Defaults for `station` at `collector`.
    pub fn new(station: &str, collector: &str, key: SigningKey, wake: Arc<Notify>) -> Self {
        Self {
            station: station.to_string(),
            collectors: Endpoints::single(collector),
            key,
            wake,
            answers: None,
            connect_timeout: Duration::from_secs(CONNECT_TIMEOUT_SECS),
            read_timeout: Duration::from_secs(READ_TIMEOUT_SECS),
        }
    }
}

/// The push client: [`PushClient::run`] keeps the connection up until shutdown.
pub struct PushClient {
    cfg: PushConfig,
    client: reqwest::Client,
    last_id: Option<String>,
    retry_ms: u64,
}

impl PushClient {
    /// A client for `cfg` (its own connection pool: the stream never queues behind a download).
    pub fn new(cfg: PushConfig) -> Result<Self, PushError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder();
        if !cfg.collectors.any_https() {
            b = b.tls_certs_only(Vec::new());
        }
        let client = b
            .connect_timeout(cfg.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("loa-station/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PushError::Unreachable(format!("HTTP client: {e}")))?;
        Ok(Self {
            cfg,
            client,
            last_id: None,
            retry_ms: BACKOFF_MIN_MS,
        })
    }

    /// Connect, read, reconnect, until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let started = tokio::time::Instant::now();
            let ended = tokio::select! {
                r = self.session() => r,
                _ = shutdown.changed() => return,
            };
            if started.elapsed() >= Duration::from_secs(STABLE_SECS) {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let wait = backoff(failures, self.retry_ms, jitter());
            match ended {
                Ok(()) => tracing::info!(
                    reconnect_in_ms = wait.as_millis() as u64,
                    "push channel closed by the collector; reconnecting"
                ),
                Err(e) => tracing::warn!(
                    reconnect_in_ms = wait.as_millis() as u64,
                    "{e}; reconnecting (the heartbeat's pending bulletins cover the gap)"
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One connection: until the collector ends it (`Ok`) or it fails.
    async fn session(&mut self) -> Result<(), PushError> {
        let path = format!("/api/v1/stations/{}/events", self.cfg.station);
        let signed = request::sign(
            &self.cfg.key,
            &self.cfg.station,
            "GET",
            &path,
            chrono::Utc::now(),
        );
        let base = self.cfg.collectors.current();
        let mut req = self
            .client
            .get(format!("{base}{path}"))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(reqwest::header::CACHE_CONTROL, "no-cache");
        for (k, v) in signed.pairs() {
            req = req.header(k, v);
        }
        if let Some(id) = &self.last_id {
            req = req.header("last-event-id", id.as_str());
        }
        let answer = match tokio::time::timeout(
            self.cfg.connect_timeout + self.cfg.read_timeout,
            req.send(),
        )
        .await
        {
            Err(_) => {
                let e = PushError::Silent(self.cfg.read_timeout.as_secs());
                self.cfg.collectors.failed(&base, &e.to_string());
                return Err(e);
            }
            Ok(Err(e)) => {
                let e = PushError::Unreachable(format!("{base}: {e}"));
                self.cfg.collectors.failed(&base, &e.to_string());
                return Err(e);
            }
            Ok(Ok(a)) => a,
        };
        let status = answer.status().as_u16();
        self.cfg.collectors.judge(&base, status);
        if status != 200 {
            let body = tokio::time::timeout(self.cfg.read_timeout, answer.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let body: String = body.chars().take(500).collect();
            return Err(PushError::Refused { status, body });
        }
        tracing::info!(last_event_id = ?self.last_id, collector = %base, "push channel connected to {base}");
        let mut answer = answer;
        let mut parser = Parser::new(self.last_id.clone());
        loop {
            let chunk = match tokio::time::timeout(self.cfg.read_timeout, answer.chunk()).await {
                Err(_) => {
                    // Silence past the keep-alives: the collector or the path to it is gone.
                    let e = PushError::Silent(self.cfg.read_timeout.as_secs());
                    self.cfg.collectors.failed(&base, &e.to_string());
                    return Err(e);
                }
                Ok(r) => r.map_err(|e| PushError::Stream(format!("{base}: {e}")))?,
            };
            let Some(chunk) = chunk else {
                return Ok(());
            };
            let events = parser.push(&chunk)?;
            if let Some(r) = parser.retry_ms() {
                self.retry_ms = r;
            }
            for e in events {
                self.handle(&e);
                // The id is kept once the event is handled: a reconnect asks for what follows.
                self.last_id = e.id.clone();
            }
        }
    }

    fn handle(&self, e: &SseEvent) {
        match e.event.as_str() {
            "bulletin" | "cancel" => {
                tracing::info!(event = %e.event, id = ?e.id, "push: {} announced; waking the intake", e.event);
                self.cfg.wake.notify_one();
            }
            "manifest" => {
                let version = serde_json::from_str::<serde_json::Value>(&e.data)
                    .ok()
                    .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
                match (version, &self.cfg.answers) {
                    (Some(v), Some(answers)) => {
                        answers.send_if_modified(|a| {
                            if a.manifest_version.is_some_and(|m| m >= v) {
                                return false;
                            }
                            a.manifest_version = Some(v);
                            true
                        });
                    }
                    (None, _) => {
                        tracing::warn!(data = %e.data, "push: manifest event without a version; ignored")
                    }
                    (Some(_), None) => {}
                }
            }
            other => tracing::debug!(event = other, "push: unknown event ignored"),
        }
    }
}

/// Start the push client of station `station` (data directory `data_dir`, where its key is)
/// on `collectors`; `None`, logged, when it cannot run (the heartbeat's pending list still
/// works). Called by `run_station` for a centre-managed station.
pub fn start(
    station: &str,
    collectors: Endpoints,
    data_dir: &std::path::Path,
    answers: Arc<watch::Sender<HeartbeatAnswer>>,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let key = match crate::keys::load(data_dir) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!("push channel not started: {e}");
            return None;
        }
    };
    let mut cfg = PushConfig::new(station, collectors.client_url(), key, wake);
    cfg.collectors = collectors;
    cfg.answers = Some(answers);
    match PushClient::new(cfg) {
        Ok(c) => Some(tokio::spawn(tracing::Instrument::instrument(
            c.run(shutdown),
            tracing::info_span!("push"),
        ))),
        Err(e) => {
            tracing::error!("push channel not started: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = Parser::new(None);
        chunks
            .iter()
            .flat_map(|c| p.push(c).unwrap())
            .collect::<Vec<_>>()
    }

    #[test]
    fn events_are_read_across_chunks_and_line_endings() {
        let got = events(&[
            b"\xef\xbb\xbfretry: 10000\n\n: keep-alive\n\nevent: bull",
            b"etin\r\nid: 7\r",
            b"\ndata: {\"a\":1}\rdata:x\n\n",
            b"event: manifest\ndata: {\"version\":3}\n\n",
        ]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].event, "bulletin");
        assert_eq!(got[0].data, "{\"a\":1}\nx");
        assert_eq!(got[0].id.as_deref(), Some("7"));
        assert!(got[0].has_id);
        assert_eq!(got[1].event, "manifest");
        assert_eq!(got[1].id.as_deref(), Some("7"), "the id carries over");
        assert!(!got[1].has_id);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_a_huge_line_ends_the_stream() {
        assert!(events(&[b"event: x\nid: 3\n\n"]).is_empty());
        let mut p = Parser::new(None);
        let big = vec![b'a'; MAX_LINE_BYTES + 1];
        assert!(matches!(p.push(&big), Err(PushError::LineTooLong)));
    }

    #[test]
    fn the_backoff_doubles_to_its_cap_within_its_jitter() {
        assert_eq!(backoff(1, 0, 1.0), Duration::from_millis(BACKOFF_MIN_MS));
        assert_eq!(
            backoff(1, 0, 0.0),
            Duration::from_millis(BACKOFF_MIN_MS / 2)
        );
        assert_eq!(
            backoff(3, 0, 1.0),
            Duration::from_millis(4 * BACKOFF_MIN_MS)
        );
        assert_eq!(backoff(30, 0, 1.0), Duration::from_millis(BACKOFF_MAX_MS));
        assert_eq!(backoff(1, 10_000, 1.0), Duration::from_millis(10_000));
    }
}
