//! The collector's HTTP API (axum): ingest (`POST /api/v1/stations/{id}/records`, `…/heartbeat`),
//! queries (`GET /api/v1/stations`, `…/{id}`, `…/{id}/airings`), reports
//! (`GET /api/v1/reports/{period}.{csv|xlsx|json|docx}`), `/healthz`, `/metrics`, the OpenAPI
//! document, and merges the office web app's pages (`office`, `pages`; rendered by `crate::web`).
//! One router per resource, one [`AppState`], one [`ApiError`].
//!
//! **Invariant:** a request either gets a definite answer (stored / refused with reasons) or a
//! 408 / 429 / 500 after which nothing of it was stored; an ingest answer is sent only after the
//! writer thread (the one owner of the write connections) committed it; decoding, hashing and
//! signature checks and all reads run in `spawn_blocking`, never on the async workers; internal
//! errors are logged, never shown.
//!
//! **Under attack:** no client can hold what others need. Every read has a deadline (request
//! headers and the wait for the next request on a kept-alive connection: `header_read_secs`;
//! a request body: `body_read_secs`; a connection's whole life: `connection_max_secs`); each
//! remote address may hold at most `max_connections_per_addr` connections (429 and close
//! beyond); and the scarce ingest slot is taken only once the body is complete and the station
//! is registered, so slow or unknown senders never queue real stations out. Heartbeats that are
//! older than `heartbeat_max_age_secs`, ahead of the collector's clock by more than that, or not
//! newer than the last one stored never refresh a station's liveness (409, counted).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

use super::ingest::{
    BatchError, DEFAULT_MAX_BATCH_RECORDS, DEFAULT_MAX_BODY_BYTES, check_batch, check_heartbeat,
    decode_batch, decode_json,
};
use super::registry::{Registry, StationEntry};
use super::status::{DEFAULT_OFFLINE_AFTER_SECS, StationStatus};
use super::store::CheckedRecord;
use super::store::{DEFAULT_SYNCHRONOUS, Store, StoreError, StoreOutcome, Synchronous};
use crate::clock::Clock;
use crate::reconcile::Thresholds;
use crate::report::{Format, Period, PeriodKind, PlanSource, ReportError};
use crate::wire::{BatchAck, Rejection, SignedHeartbeat};

/// Default number of ingest requests handled at once; more wait up to
/// [`DEFAULT_INGEST_WAIT_MS`] and then get 429 (SQLite has one writer anyway).
pub const DEFAULT_MAX_CONCURRENT_INGEST: usize = 32;
/// Default time an ingest request waits for a slot before 429.
pub const DEFAULT_INGEST_WAIT_MS: u64 = 5_000;
/// Retry-After sent with 429, in seconds.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 5;
/// Default time a client has to send a request's headers, and the longest a kept-alive
/// connection may sit idle waiting for the next request.
pub const DEFAULT_HEADER_READ_SECS: u64 = 30;
/// Default time a client has to send a whole request body (8 MiB at ~1 Mbit/s fits).
pub const DEFAULT_BODY_READ_SECS: u64 = 90;
/// Default longest life of one connection; then it is closed after its current request.
pub const DEFAULT_CONNECTION_MAX_SECS: u64 = 600;
/// Default most connections one remote address may hold at once (stations behind one NAT
/// share an address; a station uses one or two).
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDR: usize = 64;
/// Default most connections at once, all addresses together: each station holds one push
/// stream (`collector::push`) and, now and then, a shipper or sync connection, so 10,000
/// stations need well over 10,000. [`serve`] lowers it to what the open-files limit allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32_768;
/// File descriptors kept free of connections (the database, content files, threads, logs).
const RESERVED_FDS: u64 = 512;
/// Default largest distance between a heartbeat's `sent_at` and the collector's clock (either
/// way) for it to count; a replayed or delayed heartbeat beyond it does not refresh liveness.
pub const DEFAULT_HEARTBEAT_MAX_AGE_SECS: i64 = 600;
/// How long a connection closed at its age limit (or at shutdown) may take to finish its
/// current request before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

/// The OpenAPI document (also `docs/openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// Limits and thresholds of the server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    pub max_batch_records: usize,
    pub offline_after_secs: i64,
    pub max_concurrent_ingest: usize,
    pub ingest_wait_ms: u64,
    pub thresholds: Thresholds,
    /// The shared bearer token of `POST /api/v1/admin/stations` (deprecated: admins use their
    /// personal tokens); `None`: only admins' personal tokens.
    pub admin_token: Option<String>,
    /// Durability of committed batches (see [`Synchronous`]).
    pub synchronous: Synchronous,
    /// Directories besides the registry's own that schedules and audio roots enrolled through
    /// the admin API may lie in (the layout's schedules and audio directories; see
    /// [`super::registry::enrol`]).
    pub enrol_roots: Vec<PathBuf>,
    /// Time to send a request's headers; also the idle limit of a kept-alive connection.
    pub header_read_secs: u64,
    /// Time to send a whole request body (408 after).
    pub body_read_secs: u64,
    /// Longest life of one connection.
    pub connection_max_secs: u64,
    /// Most connections of one remote address (429 and close beyond).
    pub max_connections_per_addr: usize,
    /// Most connections at once in all.
    pub max_connections: usize,
    /// Largest |collector clock − heartbeat `sent_at`| for a heartbeat to count.
    pub heartbeat_max_age_secs: i64,
    /// Sign-in, sessions and `/metrics` access (see [`super::authz`]).
    pub auth: super::authz::AuthConfig,
    /// The centre's signing key file (`Layout::centre_key`), loaded — or created, 0600 — at
    /// start; `None`: the collector signs nothing and `GET /api/v1/centre` answers 503.
    pub centre_key: Option<PathBuf>,
    /// Where centre-managed schedules are written and their audio read
    /// ([`super::versions`]).
    pub versions: super::versions::VersionsConfig,
    /// The content library (`collector::library`); `None`: its routes answer 500 (logged).
    pub library: Option<super::library::LibraryConfig>,
    /// Text-to-speech of bulletins with a text and no recording (`collector::tts`).
    pub tts: super::tts::TtsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            offline_after_secs: DEFAULT_OFFLINE_AFTER_SECS,
            max_concurrent_ingest: DEFAULT_MAX_CONCURRENT_INGEST,
            ingest_wait_ms: DEFAULT_INGEST_WAIT_MS,
            thresholds: Thresholds::default(),
            admin_token: None,
            synchronous: DEFAULT_SYNCHRONOUS,
            enrol_roots: Vec::new(),
            header_read_secs: DEFAULT_HEADER_READ_SECS,
            body_read_secs: DEFAULT_BODY_READ_SECS,
            connection_max_secs: DEFAULT_CONNECTION_MAX_SECS,
            max_connections_per_addr: DEFAULT_MAX_CONNECTIONS_PER_ADDR,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            heartbeat_max_age_secs: DEFAULT_HEARTBEAT_MAX_AGE_SECS,
            auth: super::authz::AuthConfig::default(),
            centre_key: None,
            versions: super::versions::VersionsConfig::default(),
            library: None,
            tts: super::tts::TtsConfig::default(),
        }
    }
}

/// Label of a refused batch: its HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

/// Label of a per-station metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StationLabel {
    pub station: String,
}

/// The statuses a batch can be refused with (each exposed from the start, at 0).
const REJECT_STATUSES: [&str; 8] = ["400", "401", "403", "408", "409", "413", "415", "429"];

/// Why a validly signed heartbeat did not count (each exposed from the start, at 0).
const HEARTBEAT_REFUSALS: [&str; 2] = ["stale", "not_newer"];

/// Label of a refused heartbeat: why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// The `/metrics` registry (`prometheus-client`): counters moved by ingest and heartbeats as
/// they happen; the station gauges set from the kept station status (nothing is recomputed from
/// the database for a scrape).
pub struct Metrics {
    pub records_accepted: Counter,
    pub records_duplicate: Counter,
    pub batches_stored: Counter,
    pub batches_rejected: Family<StatusLabel, Counter>,
    pub heartbeats: Counter,
    /// Validly signed heartbeats that did not count, by reason (`stale`, `not_newer`).
    pub heartbeats_refused: Family<ReasonLabel, Counter>,
    /// Connections refused because their address (or the server) held too many.
    pub connections_refused: Counter,
    pub ingest_micros_total: Counter,
    /// Records in the database: counted once at start, then moved by ingest.
    pub records_stored: Gauge,
    stations_registered: Gauge,
    stations_online: Gauge,
    station_missing_records: Family<StationLabel, Gauge>,
    station_backlog_records: Family<StationLabel, Gauge>,
    push_streams: Gauge,
    push_last_event: Gauge,
    push_last_event_streams: Gauge,
    push_last_event_fanout_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    registry: prometheus_client::registry::Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Self {
            records_accepted: Counter::default(),
            records_duplicate: Counter::default(),
            batches_stored: Counter::default(),
            batches_rejected: Family::default(),
            heartbeats: Counter::default(),
            heartbeats_refused: Family::default(),
            connections_refused: Counter::default(),
            ingest_micros_total: Counter::default(),
            records_stored: Gauge::default(),
            stations_registered: Gauge::default(),
            stations_online: Gauge::default(),
            station_missing_records: Family::default(),
            station_backlog_records: Family::default(),
            push_streams: Gauge::default(),
            push_last_event: Gauge::default(),
            push_last_event_streams: Gauge::default(),
            push_last_event_fanout_seconds: Gauge::default(),
            registry: prometheus_client::registry::Registry::default(),
        };
        for status in REJECT_STATUSES {
            drop(m.batches_rejected.get_or_create(&StatusLabel {
                status: status.into(),
            }));
        }
        for reason in HEARTBEAT_REFUSALS {
            drop(m.heartbeats_refused.get_or_create(&ReasonLabel {
                reason: reason.into(),
            }));
        }
        // Counters get `_total` appended by the encoder: the exposed names are unchanged.
        let r = &mut m.registry;
        r.register(
            "loa_records_accepted",
            "Records newly stored",
            m.records_accepted.clone(),
        );
        r.register(
            "loa_records_duplicate",
            "Records acknowledged as duplicates",
            m.records_duplicate.clone(),
        );
        r.register(
            "loa_batches_stored",
            "Batches stored (or all duplicates)",
            m.batches_stored.clone(),
        );
        r.register(
            "loa_batches_rejected",
            "Batches refused, by HTTP status",
            m.batches_rejected.clone(),
        );
        r.register(
            "loa_heartbeats",
            "Heartbeats received",
            m.heartbeats.clone(),
        );
        r.register(
            "loa_heartbeats_refused",
            "Validly signed heartbeats that did not count, by reason",
            m.heartbeats_refused.clone(),
        );
        r.register(
            "loa_connections_refused",
            "Connections refused: their address or the server held too many",
            m.connections_refused.clone(),
        );
        r.register(
            "loa_ingest_seconds_micros",
            "Time spent handling stored batches, microseconds",
            m.ingest_micros_total.clone(),
        );
        r.register(
            "loa_records_stored",
            "Records in the database",
            m.records_stored.clone(),
        );
        r.register(
            "loa_stations_registered",
            "Registered stations",
            m.stations_registered.clone(),
        );
        r.register(
            "loa_stations_online",
            "Stations whose last heartbeat is recent",
            m.stations_online.clone(),
        );
        r.register(
            "loa_station_missing_records",
            "Sequence numbers missing below the highest stored",
            m.station_missing_records.clone(),
        );
        r.register(
            "loa_station_backlog_records",
            "Records the station has not shipped yet (its last heartbeat)",
            m.station_backlog_records.clone(),
        );
        r.register(
            "loa_push_streams",
            "Push streams (GET /api/v1/stations/{id}/events) open on this collector",
            m.push_streams.clone(),
        );
        r.register(
            "loa_push_last_event",
            "Id of the latest bulletin or cancel event this collector's streams sent live",
            m.push_last_event.clone(),
        );
        r.register(
            "loa_push_last_event_streams",
            "Live streams that sent that event",
            m.push_last_event_streams.clone(),
        );
        r.register(
            "loa_push_last_event_fanout_seconds",
            "From this collector getting that event to the last of its streams sending it",
            m.push_last_event_fanout_seconds.clone(),
        );
        m
    }
}

impl Metrics {
    /// Set the station gauges from `statuses` and encode everything (OpenMetrics text).
    /// The push gauges come from `push` (the hub).
    fn encode(
        &self,
        statuses: &[StationStatus],
        push: &super::push::Hub,
    ) -> Result<String, std::fmt::Error> {
        let fanout = push.last_fanout();
        self.push_streams
            .set(i64::try_from(push.streams()).unwrap_or(i64::MAX));
        self.push_last_event.set(fanout.seq);
        self.push_last_event_streams
            .set(i64::try_from(fanout.streams).unwrap_or(i64::MAX));
        self.push_last_event_fanout_seconds
            .set(fanout.last_after.as_secs_f64());
        self.stations_registered.set(statuses.len() as i64);
        self.stations_online
            .set(statuses.iter().filter(|s| s.online).count() as i64);
        // Stations removed from the registry disappear from the families.
        self.station_missing_records.clear();
        self.station_backlog_records.clear();
        for s in statuses {
            let label = StationLabel {
                station: s.id.clone(),
            };
            let missing: u64 = s.gaps.iter().map(|g| g.to - g.from + 1).sum();
            self.station_missing_records
                .get_or_create(&label)
                .set(i64::try_from(missing).unwrap_or(i64::MAX));
            self.station_backlog_records
                .get_or_create(&label)
                .set(i64::try_from(s.backlog_records.unwrap_or(0)).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Records are written with the configured durability; heartbeats on their own connection with
/// `synchronous=NORMAL` (`PRAGMA synchronous` is per connection): a heartbeat is replaced a
/// minute later anyway, so it is not worth an fsync, and 1,000 stations' heartbeats would
/// otherwise queue behind one fsync each.
struct Writers {
    records: Store,
    heartbeats: Store,
}

/// Jobs waiting for the writer thread at most; senders wait beyond it (backpressure).
const WRITE_QUEUE_JOBS: usize = 1_024;

/// Work for the writer thread, each answered on its own channel once committed (or refused).
/// Only checked data gets here: decoding and signature checks happen before, off the writer.
enum WriteJob {
    Batch {
        station: String,
        records: Vec<CheckedRecord>,
        reply: oneshot::Sender<Result<StoreOutcome, StoreError>>,
    },
    Heartbeat {
        station: String,
        sent_at: DateTime<Utc>,
        bytes: String,
        signature: String,
        reply: oneshot::Sender<Result<HeartbeatStored, StoreError>>,
    },
}

/// What the writer did with a heartbeat.
enum HeartbeatStored {
    /// Stored at this instant (the station's liveness refreshed).
    At(DateTime<Utc>),
    /// Not stored: its `sent_at` is not newer than that of the stored one (a replay, or a
    /// heartbeat overtaken by a later one).
    NotNewer { last: DateTime<Utc> },
}

/// The writer thread: the only user of the write connections (SQLite has one writer anyway),
/// so the CPU work of the next batches (decode, hashes, signatures) runs beside its commits
/// instead of queueing on a lock. Heartbeats go first (no fsync, a few µs each), so 1,000
/// stations' heartbeats never wait behind a queue of batch fsyncs; batches are written in
/// arrival order. Ends when every sender is gone (the [`AppState`] dropped).
fn run_writer(mut w: Writers, clock: Arc<dyn Clock>, mut rx: mpsc::Receiver<WriteJob>) {
    let mut batches: VecDeque<QueuedBatch> = VecDeque::new();
    let mut take = |job: WriteJob, batches: &mut VecDeque<_>| match job {
        WriteJob::Heartbeat {
            station,
            sent_at,
            bytes,
            signature,
            reply,
        } => {
            let now = clock.now();
            // The writer is the only writer, so reading the last one and replacing it is atomic.
            let stored = guarded("heartbeat", || {
                match w.heartbeats.last_heartbeat_sent_at(&station)? {
                    Some(last) if sent_at <= last => Ok(HeartbeatStored::NotNewer { last }),
                    _ => w
                        .heartbeats
                        .store_heartbeat(&station, &bytes, &signature, now)
                        .map(|()| HeartbeatStored::At(now)),
                }
            });
            // The requester may have gone (client closed); the heartbeat is stored anyway.
            // After a panic the reply is dropped: the requester answers 500.
            if let Some(r) = stored {
                let _ = reply.send(r);
            }
        }
        WriteJob::Batch {
            station,
            records,
            reply,
        } => batches.push_back((station, records, reply)),
    };
    loop {
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(job) => take(job, &mut batches),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !batches.is_empty() {
            let mut group = Vec::new();
            let mut rows = 0usize;
            while let Some(b) = batches.front()
                && (group.is_empty()
                    || (group.len() < GROUP_MAX_BATCHES && rows + b.1.len() <= GROUP_MAX_RECORDS))
            {
                rows += b.1.len();
                group.extend(batches.pop_front());
            }
            store_group(&mut w.records, clock.now(), group);
            continue;
        }
        if closed {
            return;
        }
        match rx.blocking_recv() {
            Some(job) => take(job, &mut batches),
            None => return,
        }
    }
}

/// Most batches the writer stores in one transaction (group commit, [`store_group`]). The
/// queue holds at most [`HttpConfig::max_concurrent_ingest`] batches, as each request holds
/// its ingest slot until answered.
const GROUP_MAX_BATCHES: usize = 64;
/// Most records in one group (a single batch larger than this is stored alone).
const GROUP_MAX_RECORDS: usize = 10_000;

type QueuedBatch = (
    String,
    Vec<CheckedRecord>,
    oneshot::Sender<Result<StoreOutcome, StoreError>>,
);

/// Store the queued batches in one transaction (one commit: under a burst, one fsync or one
/// PostgreSQL commit for many stations instead of one each) and answer each after the commit.
/// Each batch stays all-or-nothing ([`Store::store_batches`]). When the database refused a
/// statement of the group for its data ([`StoreError::is_refusal`]), or the group's work
/// panicked, nothing of it was stored and the batches are stored again one by one, so only the
/// batch at fault fails; any other error (connection lost, timeout) is every batch's answer.
fn store_group(records: &mut Store, now: DateTime<Utc>, group: Vec<QueuedBatch>) {
    let parts: Vec<(&str, &[CheckedRecord])> = group
        .iter()
        .map(|(s, r, _)| (s.as_str(), r.as_slice()))
        .collect();
    let stored = guarded("batch", || records.store_batches(&parts, now));
    drop(parts);
    match stored {
        Some(Ok(outcomes)) => {
            for ((_, _, reply), outcome) in group.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Some(Err(e)) if group.len() == 1 => {
            if let Some((_, _, reply)) = group.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Some(Err(e)) if !e.is_refusal() => {
            let text = e.to_string();
            for (_, _, reply) in group {
                let _ = reply.send(Err(StoreError::Shared(text.clone())));
            }
        }
        // A panic of a single batch drops its reply (the requester answers 500).
        None if group.len() == 1 => {}
        Some(Err(_)) | None => {
            for (station, batch, reply) in group {
                if let Some(r) = guarded("batch", || records.store_batch(&station, &batch, now)) {
                    let _ = reply.send(r);
                }
            }
        }
    }
}

/// Run one write job; a panic in it (a bug) is logged and ends only that job — its transaction
/// is rolled back as the unwinding drops it — so the writer keeps serving the others.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::error!(
                job = what,
                "the writer panicked on a job; nothing of it was stored"
            );
            None
        }
    }
}

struct Inner {
    /// The registry as served: a snapshot, replaced whole by [`AppState::set_registry`] (the
    /// only writer). A reader clones the `Arc` under the lock and works on the snapshot with no
    /// lock held, so a page over 10,000 stations neither copies the registry nor holds up a
    /// registration.
    registry: RwLock<Arc<Registry>>,
    /// Held by whoever re-reads the registry file and swaps it in, so two re-reads never cross
    /// (an older read replacing a newer one).
    registry_writes: Mutex<()>,
    registry_path: Option<PathBuf>,
    /// The writer thread's queue (it owns the two write connections).
    writer: mpsc::Sender<WriteJob>,
    reader: Mutex<Store>,
    clock: Arc<dyn Clock>,
    plans: Arc<dyn PlanSource + Send + Sync>,
    /// Each station's status between requests (ingest and heartbeats keep it current).
    status: super::status::StatusCache,
    config: HttpConfig,
    metrics: Metrics,
    ingest_slots: tokio::sync::Semaphore,
    /// Accounts, sessions, tokens, the audit log (their own connection) and the login throttle.
    auth: Arc<super::authz::Auth>,
    /// The centre's signing key (see [`HttpConfig::centre_key`]).
    centre: Option<Arc<crate::centre::CentreSigner>>,
    /// Schedule versions held by the centre (their own connection).
    versions: super::versions::Versions,
    /// The content library (its own connection), when configured.
    library: Option<Arc<super::library::Library>>,
    /// The push channel's hub (`collector::push`): bulletins, cancels and new versions to the
    /// stations' event streams.
    push: Arc<super::push::Hub>,
}

/// Why the server's state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operating system refused another thread.
    #[error("cannot start the collector's writer thread: {0}")]
    WriterThread(std::io::Error),
    /// The operating system refused the push channel's database listener its thread.
    #[error("cannot start the push channel's database listener thread: {0}")]
    ListenerThread(std::io::Error),
    /// The centre's key could not be loaded or created (loose mode, corrupt, unreadable).
    #[error(transparent)]
    CentreKey(#[from] crate::centre::CentreKeyError),
    /// The content library's directory or tables could not be set up.
    #[error("content library: {0}")]
    Library(#[from] super::library::LibraryError),
}

/// This replica's schedule versions as the push channel's database listener sees them
/// (`collector::push::listen`): a version published by any replica is noted, its station's
/// streams told, and the registry read again when the replica that published it rewrote it.
/// Also how this replica's station status follows heartbeats and records stored through the
/// other replicas (read from the database at `.1`, the PostgreSQL URL, on a reader of its own).
struct ReplicaVersions(
    std::sync::Weak<Inner>,
    String,
    std::sync::Mutex<Option<Store>>,
);

impl super::push::Manifests for ReplicaVersions {
    fn known(&self, station: &str) -> Option<u64> {
        self.0.upgrade()?.versions.latest_version(station)
    }

    fn published(&self, station: &str, version: u64) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let state = AppState { inner };
        let versions = state.versions();
        versions.note_latest(station, version);
        // A station's first version points its registry entry at the managed file and the
        // library tree (`Versions::activate`, on the replica that published it).
        let stale = state.station(station).is_some_and(|e| {
            e.schedule.as_deref() != Some(versions.managed_file(station).as_path())
                || e.audio_root.as_deref() != Some(versions.library_tree())
        });
        if stale {
            state.reload_registry();
        }
        state.push().deliver_manifest(station, version);
    }

    fn heartbeat_elsewhere(&self, station: &str) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        // Read on the listener's thread, on a connection of its own (opened at first use).
        let mut reader = self.2.lock().unwrap_or_else(|e| e.into_inner());
        if reader.is_none() {
            match Store::open_at(
                &super::db::Location::Postgres(self.1.clone()),
                super::store::Synchronous::Normal,
            ) {
                Ok(s) => *reader = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "status: cannot open a reader for other replicas' heartbeats");
                    return;
                }
            }
        }
        let Some(store) = reader.as_ref() else {
            return;
        };
        match store.heartbeat(station) {
            Ok(Some(hb)) => inner.status.heartbeat_stored(station, hb),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(station, error = %e, "status: cannot read a heartbeat another replica stored");
                *reader = None;
            }
        }
    }

    fn records_elsewhere(&self, station: &str) {
        if let Some(inner) = self.0.upgrade() {
            inner.status.records_stored(station);
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    /// Open the database at `db` (creating and migrating it) and serve `registry`.
    /// `registry_path` lets an unknown station trigger a re-read (after `loa register`).
    pub fn new(
        registry: Registry,
        db: &std::path::Path,
        clock: Arc<dyn Clock>,
        plans: Arc<dyn PlanSource + Send + Sync>,
        config: HttpConfig,
    ) -> Result<Self, StartError> {
        let writer = Writers {
            records: Store::open_with(db, config.synchronous)?,
            heartbeats: Store::open_with(db, super::store::Synchronous::Normal)?,
        };
        let reader = Store::open_with(db, config.synchronous)?;
        let auth = Arc::new(super::authz::Auth::new(
            Store::open_with(db, super::store::Synchronous::Normal)?.into_connection(),
            config.auth.clone(),
        ));
        let centre = match &config.centre_key {
            Some(path) => {
                let (signer, created) = crate::centre::CentreSigner::open(path)?;
                if created {
                    tracing::warn!(
                        key = %path.display(),
                        public_key = %signer.public_key_text(),
                        "created the centre's signing key; back it up (docs/operations.md, \"The centre key\")"
                    );
                }
                Some(Arc::new(signer))
            }
            None => None,
        };
        let metrics = Metrics::default();
        metrics
            .records_stored
            .set(i64::try_from(reader.count_records()?).unwrap_or(i64::MAX));
        // Plans (and the audio facts under them) are ready before the first request: a request
        // never decodes audio (see `collector::plans`).
        plans.warm(&registry, &super::plans::warm_periods(clock.now()));
        let registry_path = registry.path.clone();
        let versions = {
            // Beside the registry by default (the layout's `collector/` directory).
            let here = crate::layout::Layout::at(
                registry_path
                    .as_deref()
                    .and_then(|p| p.parent())
                    .or(db.parent())
                    .unwrap_or(std::path::Path::new("."))
                    .to_path_buf(),
                crate::layout::Chosen::Flag,
            );
            let c = &config.versions;
            super::versions::Versions::open(
                db,
                &c.managed_schedules
                    .clone()
                    .unwrap_or_else(|| here.managed_schedules_dir()),
                &c.library_tree
                    .clone()
                    .unwrap_or_else(|| super::versions::library_tree(&here)),
            )?
        };
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_JOBS);
        let writer_clock = clock.clone();
        std::thread::Builder::new()
            .name("collector-writer".into())
            .spawn(move || run_writer(writer, writer_clock, rx))
            .map_err(StartError::WriterThread)?;
        let warm_store = Store::open_with(db, config.synchronous)?;
        let library = match &config.library {
            Some(c) => Some(Arc::new(super::library::Library::open(db, c.clone())?)),
            None => None,
        };
        // On PostgreSQL, replicas may share the database: every event reaches the hub through
        // the database listener started below, whichever replica committed it.
        let pg_url = match super::db::Location::of_path(db) {
            super::db::Location::Postgres(url) => Some(url),
            super::db::Location::Sqlite(_) => None,
        };
        let feed = if pg_url.is_some() {
            super::push::Feed::Database
        } else {
            super::push::Feed::Writer
        };
        let push = Arc::new(super::push::Hub::fed_by(
            feed,
            super::push::DEFAULT_MAX_PER_STATION,
        ));
        push.set_last_seq(
            super::push::last_seq(&auth.conn().unwrap_or_else(|e| e.into_inner()))
                .map_err(StoreError::from)?,
        );
        {
            let push = push.clone();
            versions.on_publish(move |station, n| push.publish_manifest(station, n));
        }
        let state = Self {
            inner: Arc::new(Inner {
                registry: RwLock::new(Arc::new(registry)),
                registry_writes: Mutex::new(()),
                registry_path,
                writer: tx,
                reader: Mutex::new(reader),
                clock,
                plans,
                status: super::status::StatusCache::default(),
                ingest_slots: tokio::sync::Semaphore::new(config.max_concurrent_ingest.max(1)),
                config,
                metrics,
                auth,
                centre,
                versions,
                library,
                push,
            }),
        };
        if let Some(url) = pg_url {
            super::push::spawn_listener(
                url.clone(),
                &state.inner.push,
                state.inner.clock.clone(),
                ReplicaVersions(
                    Arc::downgrade(&state.inner),
                    url,
                    std::sync::Mutex::new(None),
                ),
            )
            .map_err(StartError::ListenerThread)?;
        }
        // Every station's status is derived in the background on its own connection, so the
        // first page does not derive them all and nothing waits for it (`StatusCache::warm`).
        let weak = Arc::downgrade(&state.inner);
        if let Err(e) = std::thread::Builder::new()
            .name("collector-status-warm".into())
            .spawn(move || warm_status(weak, warm_store))
        {
            tracing::warn!(error = %e, "no status warm-up thread; the first page derives them");
        }
        Ok(state)
    }

    /// Whether every station's status has been derived since start-up (benchmarks wait for it).
    pub fn status_warmed(&self) -> bool {
        self.inner.status.is_warm()
    }

    /// Accounts, sessions and the audit log.
    pub fn auth(&self) -> &Arc<super::authz::Auth> {
        &self.inner.auth
    }

    /// Schedule versions held by the centre.
    pub(crate) fn versions(&self) -> &super::versions::Versions {
        &self.inner.versions
    }

    /// The push channel's hub (`collector::push`).
    pub fn push(&self) -> &Arc<super::push::Hub> {
        &self.inner.push
    }

    /// The registry file this collector reads, if any.
    pub(crate) fn registry_path(&self) -> Option<PathBuf> {
        self.inner.registry_path.clone()
    }

    /// Re-read the registry file (after this process rewrote it); a failure keeps the old one.
    pub(crate) fn reload_registry(&self) {
        let Some(path) = &self.inner.registry_path else {
            return;
        };
        let _one = self.registry_writes();
        match Registry::load(path) {
            Ok(fresh) => self.swap_registry(fresh),
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the registry failed; keeping the old one")
            }
        }
    }

    fn registry_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .registry_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Replace the snapshot (the caller holds [`Self::registry_writes`]).
    fn swap_registry(&self, fresh: Registry) {
        let fresh = Arc::new(fresh);
        match self.inner.registry.write() {
            Ok(mut r) => *r = fresh,
            Err(e) => *e.into_inner() = fresh,
        }
    }

    /// The collector's clock, now.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// An audit entry at the collector's now: who, from where, what, on what (no before/after).
    pub(crate) fn audit_entry(
        &self,
        actor: &str,
        address: &str,
        action: &str,
        target: &str,
    ) -> super::audit::Entry {
        super::audit::Entry {
            at: self.now(),
            actor: actor.to_string(),
            address: address.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            before: None,
            after: None,
        }
    }

    /// Append `e` to the audit log; a failure is logged (the write it describes is done).
    pub(crate) async fn audit(&self, e: super::audit::Entry) {
        let what = e.action.clone();
        match self.auth().with(move |c| super::audit::record(c, &e)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(error = %err, action = %what, "cannot write the audit log")
            }
            Err(err) => tracing::error!(error = ?err, action = %what, "cannot write the audit log"),
        }
    }

    /// The deprecated shared admin token, when configured.
    pub fn admin_token(&self) -> Option<&str> {
        self.inner.config.admin_token.as_deref()
    }

    /// The centre's signing key (sign manifests and other envelopes with it); `None` when the
    /// collector runs without one (in-process tests that do not need it).
    pub fn centre(&self) -> Option<&Arc<crate::centre::CentreSigner>> {
        self.inner.centre.as_ref()
    }

    /// The content library, when configured.
    pub(crate) fn library(&self) -> Option<&Arc<super::library::Library>> {
        self.inner.library.as_ref()
    }

    /// Which espeak-ng reads bulletins' texts, for how long at most (`collector::tts`).
    pub(crate) fn tts(&self) -> &super::tts::TtsConfig {
        &self.inner.config.tts
    }

    /// Time a client has to send a whole request body.
    pub(crate) fn body_read_secs(&self) -> u64 {
        self.inner.config.body_read_secs
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The plans (cached; see `collector::plans`).
    pub(crate) fn plans(&self) -> &(dyn PlanSource + Send + Sync) {
        self.inner.plans.as_ref()
    }

    /// The reconciliation thresholds.
    pub(crate) fn thresholds(&self) -> &crate::reconcile::Thresholds {
        &self.inner.config.thresholds
    }

    /// The registry as it stands: a snapshot (an `Arc` clone; no entry is copied).
    pub(crate) fn registry(&self) -> Arc<Registry> {
        match self.inner.registry.read() {
            Ok(r) => r.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    /// Serve `fresh` from now on (it was just read back from the registry file after a write).
    /// Every change of the served registry goes through here or [`Self::reload_registry`].
    pub(crate) fn set_registry(&self, fresh: Registry) {
        let _one = self.registry_writes();
        self.swap_registry(fresh);
    }

    /// The station's entry; an unknown id re-reads the registry file once (a station registered
    /// while the collector runs is picked up without a restart).
    pub(crate) fn station(&self, id: &str) -> Option<StationEntry> {
        if let Some(e) = self.registry().get(id) {
            return Some(e.clone());
        }
        let path = self.inner.registry_path.as_ref()?;
        let _one = self.registry_writes();
        match Registry::load(path) {
            Ok(fresh) => {
                let found = fresh.get(id).cloned();
                self.swap_registry(fresh);
                found
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the registry failed; keeping the old one");
                None
            }
        }
    }

    /// Run the CPU work `f` (decoding, signature checks) on the blocking pool, off the async
    /// workers and off the writer. (Limiting it to one request per core was measured: no gain in
    /// throughput, and on a shared machine a worse batch p99, so the ingest slots are the only
    /// limit.)
    async fn cpu<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::Internal(format!("blocking task: {e}")))?
    }

    /// Queue a job for the writer thread (waits while its queue is full).
    async fn write(&self, job: WriteJob) -> Result<(), ApiError> {
        self.inner.writer.send(job).await.map_err(|_| writer_gone())
    }

    /// Run `f` with the read connection on the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store, &AppState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let st = self.clone();
        tokio::task::spawn_blocking(move || {
            let guard = match st.inner.reader.lock() {
                Ok(g) => g,
                Err(e) => e.into_inner(),
            };
            f(&guard, &st)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task: {e}")))?
    }
}

/// Errors of the API; each variant is one HTTP status.
#[derive(Debug)]
pub enum ApiError {
    /// 400: malformed body, wrong types, invalid records or a reordered batch.
    BadRequest(String, Vec<Rejection>),
    /// 401: the station is not registered.
    UnknownStation(String),
    /// 403: signature does not verify with the station's key, or another station's record.
    Forbidden(String, Vec<Rejection>),
    /// 404: no such resource.
    NotFound(String),
    /// 408: the body did not arrive within the time allowed.
    Timeout(String),
    /// 409: same seq with different bytes, or the chain does not link to what is stored.
    Conflict(BatchAck),
    /// 409: a validly signed heartbeat that must not refresh liveness (stale or replayed).
    StaleHeartbeat(String),
    /// 413: body or batch too large.
    TooLarge(String),
    /// 415: the body is not declared `application/json`.
    UnsupportedMediaType(String),
    /// 429: too many ingest requests at once; retry after the stated seconds.
    Overloaded,
    /// 500: logged; the client sees a generic message.
    Internal(String),
    /// A query or path parameter refused (its status, usually 400 or 404): JSON
    /// `{"error", "message", "code", "field"}`, the message in Vietnamese.
    Refused(Refusal),
}

/// A request parameter the API refuses: a stable `code`, the `field` at fault and a Vietnamese
/// `message` saying what to write (also under `error`, the key every API error has).
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl Refusal {
    /// A period parameter `field` (`month`, or `period`: the `YYYY-MM`/`YYYY` of a report's
    /// path) that does not parse, with the status the route has always answered it.
    pub fn period(status: StatusCode, field: &str, value: &str, kind: PeriodKind) -> Self {
        Self {
            status,
            code: "report.bad_period",
            field: field.to_string(),
            message: crate::report::period_problem_vi(field, value, kind),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::BadPeriod(p) => ApiError::Refused(Refusal::period(
                StatusCode::NOT_FOUND,
                "period",
                &p,
                PeriodKind::MonthOrYear,
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(flatten)]
    ack: Option<BatchAck>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let rejected_ack = |rejected: Vec<Rejection>| BatchAck {
            accepted: Vec::new(),
            duplicates: Vec::new(),
            stored_through: 0,
            rejected,
        };
        let (status, msg, ack) = match self {
            ApiError::BadRequest(m, r) => (StatusCode::BAD_REQUEST, m, Some(rejected_ack(r))),
            ApiError::UnknownStation(m) => (
                StatusCode::UNAUTHORIZED,
                m.clone(),
                Some(rejected_ack(vec![Rejection {
                    seq: None,
                    reason: m,
                    code: Some(crate::reason::ReasonCode::RefusedUnknownStation),
                }])),
            ),
            ApiError::Forbidden(m, r) => (StatusCode::FORBIDDEN, m, Some(rejected_ack(r))),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m, None),
            ApiError::Timeout(m) => (
                StatusCode::REQUEST_TIMEOUT,
                m.clone(),
                Some(rejected_ack(vec![Rejection {
                    seq: None,
                    reason: m,
                    code: Some(crate::reason::ReasonCode::RefusedTimeout),
                }])),
            ),
            ApiError::StaleHeartbeat(m) => (
                StatusCode::CONFLICT,
                m.clone(),
                Some(rejected_ack(vec![Rejection {
                    seq: None,
                    reason: m,
                    code: Some(crate::reason::ReasonCode::RefusedStaleHeartbeat),
                }])),
            ),
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                m.clone(),
                Some(rejected_ack(vec![Rejection {
                    seq: None,
                    reason: m,
                    code: Some(crate::reason::ReasonCode::RefusedContentType),
                }])),
            ),
            ApiError::Conflict(ack) => (
                StatusCode::CONFLICT,
                "conflict with stored records; nothing of this batch was stored".to_string(),
                Some(ack),
            ),
            ApiError::TooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                m.clone(),
                Some(rejected_ack(vec![Rejection {
                    seq: None,
                    reason: m,
                    code: Some(crate::reason::ReasonCode::RefusedTooLarge),
                }])),
            ),
            ApiError::Refused(r) => {
                let body = serde_json::json!({
                    "error": r.message,
                    "message": r.message,
                    "code": r.code,
                    "field": r.field,
                });
                return (r.status, axum::Json(body)).into_response();
            }
            ApiError::Overloaded => {
                let body = ErrorBody {
                    error: "collector busy; nothing was stored, retry later",
                    ack: None,
                };
                let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(DEFAULT_RETRY_AFTER_SECS),
                );
                return resp;
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; nothing of this request was stored; see the collector log"
                        .to_string(),
                    None,
                )
            }
        };
        let mut resp = (status, axum::Json(ErrorBody { error: &msg, ack })).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body is left unread, so this connection cannot carry another
            // request: say so, or a pooling client reuses it and gets a torn answer.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

fn batch_error(e: BatchError) -> ApiError {
    match e {
        BatchError::Malformed(_) => ApiError::BadRequest(e.to_string(), e.rejections()),
        BatchError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
        BatchError::Invalid(r) => ApiError::BadRequest(
            "records refused; nothing of this batch was stored".into(),
            r,
        ),
        BatchError::Forbidden(r) => ApiError::Forbidden(
            "records refused: not signed by this station's registered key, or not this station's; nothing of this batch was stored".into(),
            r,
        ),
    }
}

fn writer_gone() -> ApiError {
    ApiError::Internal("the writer thread failed on this request or has stopped".into())
}

/// The 401 answer to an unregistered station: the whole command that registers it, naming the
/// registry this collector actually reads (an absolute path when it was started by `loa`).
fn unknown_station(state: &AppState, id: &str) -> ApiError {
    let config = match &state.inner.registry_path {
        Some(p) => format!(" --config {}", p.display()),
        None => String::new(),
    };
    ApiError::UnknownStation(format!(
        "station `{id}` is not registered with this collector; on the collector host run \
         `loa register{config} --station {id} --public-key \"$(cat station.pub)\"` with the \
         station's station.pub (the key `loa keygen` printed), or use the admin API"
    ))
}

/// Refuse (415) a body not declared as JSON: `Content-Type: application/json`, parameters
/// (`; charset=utf-8`) allowed, the type and subtype case-insensitive.
fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = declared.as_deref().map(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if essence.as_deref() == Some("application/json") {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "the body must be JSON sent with `Content-Type: application/json` (got {}); nothing was stored",
        match &declared {
            Some(t) => format!("`{t}`"),
            None => "no Content-Type".into(),
        }
    )))
}

/// Read the whole body within the size limit and `body_read_secs` (408 after).
async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.inner.config.max_body_bytes;
    let secs = state.inner.config.body_read_secs;
    let read = tokio::time::timeout(
        Duration::from_secs(secs),
        axum::body::to_bytes(body, limit),
    )
    .await
    .map_err(|_| {
        ApiError::Timeout(format!(
            "the body did not arrive within {secs} s; nothing was stored; send it faster or in smaller batches"
        ))
    })?;
    read.map_err(|e| {
        // to_bytes reports the limit through a boxed error; anything else is a broken upload.
        let text = e.to_string();
        if text.contains("length limit")
            || std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
        {
            ApiError::TooLarge(format!("body exceeds {limit} bytes; send smaller batches"))
        } else {
            ApiError::BadRequest(format!("cannot read the body: {text}"), Vec::new())
        }
    })
}

fn count_rejection(m: &Metrics, e: &ApiError) {
    let status = match e {
        ApiError::BadRequest(..) => "400",
        ApiError::UnknownStation(_) => "401",
        ApiError::Forbidden(..) => "403",
        ApiError::Conflict(_) => "409",
        ApiError::Timeout(_) => "408",
        ApiError::UnsupportedMediaType(_) => "415",
        ApiError::TooLarge(_) => "413",
        ApiError::Overloaded => "429",
        _ => return,
    };
    m.batches_rejected
        .get_or_create(&StatusLabel {
            status: status.into(),
        })
        .inc();
}

async fn post_records(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<axum::Json<BatchAck>, ApiError> {
    let r = ingest_records(&state, id, &headers, body).await;
    if let Err(e) = &r {
        count_rejection(&state.inner.metrics, e);
    }
    r.map(axum::Json)
}

async fn ingest_records(
    state: &AppState,
    id: String,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<BatchAck, ApiError> {
    let started = std::time::Instant::now();
    // Cheap refusals first, then the body (with its deadline); only a registered station with a
    // complete body takes one of the scarce ingest slots, so slow or unknown senders hold none.
    require_json(headers)?;
    let entry = state
        .station(&id)
        .ok_or_else(|| unknown_station(state, &id))?;
    let bytes = read_body(state, body).await?;
    let _permit = tokio::time::timeout(
        Duration::from_millis(state.inner.config.ingest_wait_ms),
        state.inner.ingest_slots.acquire(),
    )
    .await
    .map_err(|_| ApiError::Overloaded)?
    .map_err(|_| ApiError::Overloaded)?;
    let max_records = state.inner.config.max_batch_records;
    let station = entry.id.clone();
    let checked = state
        .cpu(move || {
            let batch = decode_batch(&bytes, max_records).map_err(batch_error)?;
            check_batch(&entry.id, &entry.key, batch).map_err(batch_error)
        })
        .await?;
    let (reply, answer) = oneshot::channel();
    state
        .write(WriteJob::Batch {
            station,
            records: checked,
            reply,
        })
        .await?;
    let ack = match answer.await {
        Ok(Ok(StoreOutcome::Stored(ack))) => {
            if !ack.accepted.is_empty() {
                state.inner.status.records_stored(&id);
            }
            ack
        }
        Ok(Ok(StoreOutcome::Conflict(ack))) => return Err(ApiError::Conflict(ack)),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(writer_gone()),
    };
    let m = &state.inner.metrics;
    m.records_accepted.inc_by(ack.accepted.len() as u64);
    m.records_stored.inc_by(ack.accepted.len() as i64);
    m.records_duplicate.inc_by(ack.duplicates.len() as u64);
    m.batches_stored.inc();
    m.ingest_micros_total
        .inc_by(started.elapsed().as_micros() as u64);
    Ok(ack)
}

#[derive(Serialize, Deserialize)]
struct HeartbeatAck {
    received_at: DateTime<Utc>,
    /// The centre's current public key (base64), so a station notices a rotation; null when
    /// the collector has none.
    centre_key: Option<String>,
    /// The station's latest published schedule version (`collector::versions`; its manifest is
    /// at `GET /api/v1/stations/{id}/manifest`), or null when the centre holds none.
    manifest_version: Option<u64>,
    /// The ids of the bulletins still valid, not cancelled, targeting this station (their
    /// envelopes at `GET /api/v1/stations/{id}/bulletins`): the fallback of the push channel.
    /// Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending_bulletins: Vec<String>,
}

async fn post_heartbeat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<axum::Json<HeartbeatAck>, ApiError> {
    require_json(&headers)?;
    let entry = state
        .station(&id)
        .ok_or_else(|| unknown_station(&state, &id))?;
    let bytes = read_body(&state, body).await?;
    let station = entry.id.clone();
    let (hb, parsed) = state
        .cpu(move || {
            let hb: SignedHeartbeat = decode_json(&bytes).map_err(batch_error)?;
            let parsed = check_heartbeat(&entry.id, &entry.key, &hb).map_err(batch_error)?;
            Ok((hb, parsed))
        })
        .await?;
    let m = &state.inner.metrics;
    // A validly signed heartbeat still proves liveness only when it is fresh: one sent long ago
    // (replayed, or delayed) or dated far ahead of this clock is refused, visibly.
    let now = state.inner.clock.now();
    let bound = state.inner.config.heartbeat_max_age_secs;
    let skew = (now - parsed.sent_at).num_seconds();
    if skew.abs() > bound {
        m.heartbeats_refused
            .get_or_create(&ReasonLabel {
                reason: "stale".into(),
            })
            .inc();
        let why = if skew > 0 { "behind" } else { "ahead of" };
        tracing::warn!(station = %station, sent_at = %parsed.sent_at, "stale heartbeat refused");
        return Err(ApiError::StaleHeartbeat(format!(
            "heartbeat refused: its sent_at {} is {} s {why} the collector's clock (more than {bound} s); \
             it does not count as a sign of life (a replay, or the station's clock is wrong)",
            parsed.sent_at.to_rfc3339(),
            skew.abs()
        )));
    }
    let (reply, answer) = oneshot::channel();
    let stored_bytes = String::from(Box::<str>::from(hb.heartbeat));
    state
        .write(WriteJob::Heartbeat {
            station: station.clone(),
            sent_at: parsed.sent_at,
            bytes: stored_bytes.clone(),
            signature: hb.signature,
            reply,
        })
        .await?;
    let at = match answer.await {
        Ok(Ok(HeartbeatStored::At(at))) => at,
        Ok(Ok(HeartbeatStored::NotNewer { last })) => {
            m.heartbeats_refused
                .get_or_create(&ReasonLabel {
                    reason: "not_newer".into(),
                })
                .inc();
            tracing::warn!(station = %station, sent_at = %parsed.sent_at, "replayed heartbeat refused");
            return Err(ApiError::StaleHeartbeat(format!(
                "heartbeat refused: its sent_at {} is not newer than the last one stored ({}); \
                 a replayed heartbeat does not count as a sign of life",
                parsed.sent_at.to_rfc3339(),
                last.to_rfc3339()
            )));
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(writer_gone()),
    };
    // The status keeps the heartbeat just stored (what reading it back would give).
    if let Ok(heartbeat) = serde_json::from_str(&stored_bytes) {
        state.inner.status.heartbeat_stored(
            &id,
            super::store::StoredHeartbeat {
                received_at: at,
                heartbeat,
            },
        );
    }
    state.inner.metrics.heartbeats.inc();
    Ok(axum::Json(HeartbeatAck {
        received_at: at,
        centre_key: state.centre().map(|c| c.public_key_text()),
        manifest_version: state.inner.versions.latest_version(&id),
        pending_bulletins: super::bulletins::pending_ids(&state, &id).await,
    }))
}

/// Fill the status cache of the state `weak` points to; stops when the state is dropped.
fn warm_status(weak: std::sync::Weak<Inner>, store: Store) {
    let Some(inner) = weak.upgrade() else { return };
    let registry = match inner.registry.read() {
        Ok(r) => r.clone(),
        Err(e) => e.into_inner().clone(),
    };
    let stations = registry.stations.len();
    let t = std::time::Instant::now();
    let done = inner.status.warm(
        &store,
        registry.stations.values(),
        inner.plans.as_ref(),
        &inner.config.thresholds,
        || inner.clock.now(),
        // Held here, so more than one strong count: the state is still served.
        || weak.strong_count() > 1,
    );
    if done {
        tracing::info!(
            stations,
            ms = t.elapsed().as_millis() as u64,
            "station statuses derived"
        );
    }
}

/// Status of every registered station at the state's clock.
pub fn all_status(store: &Store, state: &AppState) -> Result<Vec<StationStatus>, ApiError> {
    let now = state.inner.clock.now();
    let reg = state.registry();
    let mut out = state.inner.status.all_status_of(
        store,
        reg.stations.values(),
        state.inner.plans.as_ref(),
        &state.inner.config.thresholds,
        now,
        state.inner.config.offline_after_secs,
    )?;
    for s in &mut out {
        super::readiness::apply(s, state.inner.versions.latest_version(&s.id));
    }
    Ok(out)
}

async fn list_stations(
    State(state): State<AppState>,
    who: Option<axum::Extension<super::authz::Principal>>,
) -> Result<axum::Json<Vec<StationStatus>>, ApiError> {
    let mut all = state.read(all_status).await?;
    // An operator sees their own stations only.
    if let Some(axum::Extension(p)) = who {
        all.retain(|s| p.user.may_see_station(&s.id));
    }
    Ok(axum::Json(all))
}

async fn get_station(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<StationStatus>, ApiError> {
    let entry = state
        .station(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no station `{id}`")))?;
    state
        .read(move |store, st| {
            let mut s = st.inner.status.status(
                store,
                &entry,
                st.inner.plans.as_ref(),
                &st.inner.config.thresholds,
                st.inner.clock.now(),
                st.inner.config.offline_after_secs,
            )?;
            super::readiness::apply(&mut s, st.inner.versions.latest_version(&entry.id));
            Ok(s)
        })
        .await
        .map(axum::Json)
}

#[derive(Deserialize)]
struct AiringsQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    month: Option<String>,
}

/// One stored record as `GET …/airings` lists it (its JSON field names are the API's).
#[derive(Serialize)]
struct ListedRecord {
    seq: u64,
    hash: String,
    record: crate::wire::AiringRecord,
}

#[derive(Serialize)]
struct AiringsAnswer {
    station: String,
    from: NaiveDate,
    to: NaiveDate,
    airings: Vec<ListedRecord>,
}

async fn get_airings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<AiringsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AiringsAnswer>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(format!("query: {e}"), Vec::new()))?;
    let entry = state
        .station(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no station `{id}`")))?;
    let now = state.inner.clock.now();
    let today = now
        .with_timezone(&super::status::report_offset())
        .date_naive();
    let period = match (q.month, q.from, q.to) {
        (Some(m), _, _) => Period::parse(&m, today).map_err(|_| {
            ApiError::Refused(Refusal::period(
                StatusCode::NOT_FOUND,
                "month",
                &m,
                PeriodKind::Month,
            ))
        })?,
        (None, Some(from), Some(to)) if from <= to => Period {
            label: format!("{from}..{to}"),
            from,
            to,
        },
        _ => {
            return Err(ApiError::BadRequest(
                "give `month=YYYY-MM`, or `from=YYYY-MM-DD&to=YYYY-MM-DD` with from <= to".into(),
                Vec::new(),
            ));
        }
    };
    state
        .read(move |store, _| {
            let lo = period
                .from
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp())
                .unwrap_or(0)
                - 14 * 3600;
            let hi = (period.to + chrono::Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp())
                .unwrap_or(i64::MAX / 2)
                + 14 * 3600;
            let mut airings = Vec::new();
            for s in store.records_between(Some(&entry.id), lo, hi)? {
                let record = s.parse().map_err(StoreError::from)?;
                if period.contains(&record.scheduled_at) {
                    airings.push(ListedRecord {
                        seq: s.seq,
                        hash: s.hash,
                        record,
                    });
                }
            }
            Ok(AiringsAnswer {
                station: entry.id,
                from: period.from,
                to: period.to,
                airings,
            })
        })
        .await
        .map(axum::Json)
}

/// The formats of a report, as the refusals name them.
const FORMATS_VI: &str = "csv, xlsx, json hoặc docx";

async fn get_report(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    use crate::report::{OneStation, StationDirectory, docx};
    let (label, ext) = file.rsplit_once('.').ok_or_else(|| {
        ApiError::Refused(Refusal {
            status: StatusCode::NOT_FOUND,
            code: "report.bad_format",
            field: "format".into(),
            message: format!(
                "Đường dẫn «{}» thiếu định dạng: viết /api/v1/reports/KỲ.ĐỊNH_DẠNG, kỳ là YYYY-MM \
                 hoặc YYYY, định dạng là {FORMATS_VI}, ví dụ /api/v1/reports/2026-11.xlsx.",
                file.chars().take(40).collect::<String>()
            ),
        })
    })?;
    if ext.eq_ignore_ascii_case("docx") {
        return Ok(get_docx_report(state, label.to_string(), params).await);
    }
    let format = Format::parse(ext).ok_or_else(|| {
        ApiError::Refused(Refusal {
            status: StatusCode::NOT_FOUND,
            code: "report.bad_format",
            field: "format".into(),
            message: format!(
                "Định dạng «{}» không có: báo cáo tải về được dưới dạng {FORMATS_VI}, \
                 ví dụ /api/v1/reports/2026-11.xlsx.",
                ext.chars().take(40).collect::<String>()
            ),
        })
    })?;
    let station = match docx::station_param(&params) {
        Ok(s) => s,
        Err(e) => return Ok(report_error(e)),
    };
    let now = state.inner.clock.now();
    let today = now
        .with_timezone(&super::status::report_offset())
        .date_naive();
    let period = Period::parse(label, today)?;
    let name = match &station {
        Some(id) => format!("loa-{label}-{id}.{}", ext.to_ascii_lowercase()),
        None => format!("loa-{label}.{}", ext.to_ascii_lowercase()),
    };
    let made = state
        .read(move |store, st| {
            let reg = st.registry();
            // One station: the same builder over a directory of that station alone, so the
            // rows are the city report's rows of that station.
            let one = match &station {
                Some(id) => match reg.get(id) {
                    Some(e) => Some(OneStation(e)),
                    None => return Ok(Err(docx::DocxError::UnknownStation(id.clone()))),
                },
                None => None,
            };
            let stations: &dyn StationDirectory = match &one {
                Some(o) => o,
                None => &*reg,
            };
            let mut report = crate::report::build_with(
                store,
                stations,
                st.inner.plans.as_ref(),
                &period,
                &st.inner.config.thresholds,
                now,
                format == Format::Json,
            )?;
            report.only_station = one.as_ref().map(|o| o.0.id.clone());
            Ok(Ok(crate::report::render(&report, format)?))
        })
        .await?;
    let bytes = match made {
        Ok(b) => b,
        Err(e) => return Ok(report_error(e)),
    };
    let mut resp = (StatusCode::OK, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// The year-to-date report as DOCX (`report::docx`): January to the month of `label`; errors as
/// [`report_error`].
async fn get_docx_report(
    state: AppState,
    label: String,
    params: Vec<(String, String)>,
) -> Response {
    use crate::report::docx;
    let now = state.inner.clock.now();
    let made = state
        .read(move |store, st| {
            let reg = st.registry();
            let today = now
                .with_timezone(&super::status::report_offset())
                .date_naive();
            Ok((|| {
                let issuer =
                    docx::Issuer::load_beside(reg.path.as_deref().and_then(|p| p.parent()))?;
                let req = docx::YtdRequest::parse(&label, &params, issuer, today)?;
                let months = docx::month_reports(
                    store,
                    &*reg,
                    st.inner.plans.as_ref(),
                    &req,
                    &st.inner.config.thresholds,
                    now,
                )?;
                let name = match &req.station {
                    Some(id) => format!("loa-bao-cao-{label}-{id}.docx"),
                    None => format!("loa-bao-cao-{label}.docx"),
                };
                Ok((name, docx::to_docx(&docx::content(&req, &months, now)?)?))
            })())
        })
        .await;
    match made {
        Ok(Ok((name, bytes))) => {
            let mut resp = (StatusCode::OK, bytes).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(docx::CONTENT_TYPE),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Ok(Err(e)) => report_error(e),
        Err(e) => e.into_response(),
    }
}

/// A report refused: JSON `{"error": <Vietnamese>, "message": <the same>, "code": "report.…"}`
/// with the status of its kind, and `"field"` naming the query parameter at fault when one is.
fn report_error(err: crate::report::docx::DocxError) -> Response {
    use crate::report::docx::DocxError;
    let msg = if err.is_internal() {
        tracing::error!(error = %err, "report");
        "Lỗi nội bộ khi lập báo cáo; xem nhật ký của máy thu thập".to_string()
    } else {
        err.to_string()
    };
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::json!({ "error": msg, "message": msg, "code": err.code() });
    let field = match &err {
        DocxError::UnknownStation(_) => Some("station".to_string()),
        DocxError::BadParam { name, .. } => Some(name.clone()),
        DocxError::BadPeriod(_) | DocxError::MonthOutOfRange(_) | DocxError::NotStarted { .. } => {
            Some("period".to_string())
        }
        _ => None,
    };
    if let (Some(f), Some(o)) = (field, body.as_object_mut()) {
        o.insert("field".into(), serde_json::Value::String(f));
    }
    (status, axum::Json(body)).into_response()
}

async fn healthz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state
        .read(|store, _| {
            store.schema_version()?;
            Ok("ok\n")
        })
        .await
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .read(|store, st| {
            let statuses = all_status(store, st)?;
            st.inner
                .metrics
                .encode(&statuses, &st.inner.push)
                .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))
        })
        .await?;
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(resp)
}

async fn openapi() -> Response {
    let mut r = OPENAPI_JSON.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The requester's address as the audit log records it (`?` when unknown).
pub struct ConnectInfo(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ConnectInfo {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ConnectInfo(super::authz::address(&parts.extensions)))
    }
}

#[derive(Serialize)]
struct AdminAnswer {
    station: String,
    created: bool,
}

async fn admin_register(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<super::authz::Principal>,
    ConnectInfo(peer): ConnectInfo,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<axum::Json<AdminAnswer>, ApiError> {
    // Who may call this is the route table's business (an admin, or the deprecated shared
    // admin token): the guard let this request through.
    require_json(&headers)?;
    let bytes = read_body(&state, body).await?;
    let raw: super::registry::RawStation = decode_json(&bytes).map_err(batch_error)?;
    let path = state
        .inner
        .registry_path
        .clone()
        .ok_or_else(|| ApiError::Internal("collector runs without a registry file".into()))?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || -> Result<AdminAnswer, ApiError> {
        // The same function as `loa register`: the same checks, the same stored form.
        let today = st
            .inner
            .clock
            .now()
            .with_timezone(&super::status::report_offset())
            .date_naive();
        let before = Registry::load(&path)
            .ok()
            .and_then(|r| r.get(&raw.id).cloned());
        let (entry, created) =
            super::registry::enrol(&path, &raw, &st.inner.config.enrol_roots, today).map_err(
                |e| {
                    if e.is_invalid_entry() {
                        ApiError::BadRequest(e.to_string(), Vec::new())
                    } else {
                        ApiError::Internal(e.to_string())
                    }
                },
            )?;
        let fresh = Registry::load(&path).map_err(|e| ApiError::Internal(e.to_string()))?;
        let after = fresh.get(&entry.id).cloned();
        st.set_registry(fresh);
        let audit = super::audit::Entry {
            at: st.inner.clock.now(),
            actor: who.user.name.clone(),
            address: peer,
            action: super::audit::action::STATION_REGISTER.into(),
            target: entry.id.clone(),
            before: before.as_ref().map(super::audit::describe_station),
            after: after.as_ref().map(super::audit::describe_station),
        };
        let conn = match st.inner.auth.conn() {
            Ok(c) => c,
            Err(e) => e.into_inner(),
        };
        if let Err(e) = super::audit::record(&conn, &audit) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
        Ok(AdminAnswer {
            station: entry.id,
            created,
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("blocking task: {e}")))?
    .map(axum::Json)
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let ingest = Router::new()
        .route("/api/v1/stations/{id}/records", post(post_records))
        .route("/api/v1/stations/{id}/heartbeat", post(post_heartbeat));
    let stations = Router::new()
        .route("/api/v1/stations", get(list_stations))
        .route("/api/v1/stations/{id}", get(get_station))
        .route("/api/v1/stations/{id}/airings", get(get_airings));
    let admin = Router::new().route("/api/v1/admin/stations", post(admin_register));
    let reports = Router::new().route("/api/v1/reports/{file}", get(get_report));
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi));
    Router::new()
        .merge(ingest)
        .merge(stations)
        .merge(reports)
        .merge(ops)
        .merge(admin)
        .merge(super::centre::router())
        // The office web app's pages (`office`, `pages`; rendered by `crate::web`).
        .merge(super::office::router())
        .merge(super::pages::router())
        // Schedules held by the centre (`collector::versions`).
        .merge(super::versions::routes::router())
        // The content library (`collector::library`).
        .merge(super::library::web::router())
        // Centre-managed stations: the admin's page and API, and `POST /api/v1/enrol`.
        .merge(super::enrolment::router())
        // Bulletins the centre sends (`collector::bulletins`).
        .merge(super::bulletins::router())
        .merge(super::bulletin_pages::router())
        // The stations' event streams (`collector::push`).
        .merge(super::push::router())
        // Every route above passes the guard of its row in `authz::ROUTES` (added last: a
        // route layer covers the routes present when it is added).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::authz::guard,
        ))
        // Bodies are read with our own limit (413 with a JSON answer), so axum's default is lifted.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Connections held per remote address and in all; a [`ConnSlot`] gives its place back on drop.
#[derive(Default)]
struct ConnTable {
    per_addr: Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One admitted connection's place in the [`ConnTable`].
struct ConnSlot {
    table: Arc<ConnTable>,
    addr: std::net::IpAddr,
}

impl ConnTable {
    /// Admit a connection from `addr` unless that address holds `per_addr` or all addresses
    /// together hold `total` already.
    fn admit(
        table: &Arc<ConnTable>,
        addr: std::net::IpAddr,
        per_addr: usize,
        total: usize,
    ) -> Option<ConnSlot> {
        let mut map = match table.per_addr.lock() {
            Ok(m) => m,
            Err(e) => e.into_inner(),
        };
        let all: usize = map.values().sum();
        let held = map.entry(addr).or_insert(0);
        if *held >= per_addr.max(1) || all >= total.max(1) {
            return None;
        }
        *held += 1;
        Some(ConnSlot {
            table: table.clone(),
            addr,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut map = match self.table.per_addr.lock() {
            Ok(m) => m,
            Err(e) => e.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

/// Answer a connection over its address's limit with 429 and close it, without reading it.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = format!(
        "{{\"error\":\"too many connections from your address; retry after {DEFAULT_RETRY_AFTER_SECS} s\"}}"
    );
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: {DEFAULT_RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Raise this process's soft limit on open files to its hard limit (systemd starts a service
/// at 1,024 soft; a collector holding 10,000 push streams needs more); the (soft, hard) limits
/// in force after. `None` when they cannot be read.
pub fn raise_open_files_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some((lim.rlim_cur, lim.rlim_max))
}

/// Cap glibc's malloc arenas at two: by default each thread that allocates under contention
/// may get its own (up to eight per core), and memory freed in one is not reused by another —
/// with 10,000 push streams on the async workers and bursts on the blocking pool that was
/// ~10 MB of RSS for nothing (docs/bulletins.md, "Benchmarks").
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc tunable.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Serve on a bound listener until `shutdown` resolves; then stop accepting, let the requests in
/// flight finish (each connection at most [`CLOSE_GRACE`] more) and return.
///
/// The accept loop is ours (hyper's HTTP/1 server under it) for the limits `axum::serve` lacks:
/// the header-read timeout (also the idle limit between requests on a kept-alive connection),
/// each connection's age limit, and connections per remote address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut cfg = state.inner.config.clone();
    limit_malloc_arenas();
    // Connections beyond the open-files limit would fail at accept (EMFILE) instead of getting
    // their 429: the limit is raised, and the connection cap kept under it.
    if let Some((soft, _)) = raise_open_files_limit() {
        let room = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(64)).unwrap_or(usize::MAX);
        if room < cfg.max_connections {
            tracing::warn!(
                open_files = soft,
                max_connections = room,
                "the open-files limit holds fewer connections than configured; raise LimitNOFILE"
            );
            cfg.max_connections = room;
        }
    }
    let metrics_state = state.clone();
    let app = router(state);
    let table = Arc::new(ConnTable::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_secs.max(1)))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = ConnTable::admit(
            &table,
            peer.ip(),
            cfg.max_connections_per_addr,
            cfg.max_connections,
        ) else {
            metrics_state.inner.metrics.connections_refused.inc();
            tracing::warn!(peer = %peer.ip(), "connection refused: too many from this address");
            conns.spawn(refuse_connection(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer's address rides in each request (audit log, login throttle, `/metrics`).
        let service =
            hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
                app.clone(),
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                },
            ));
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let mut stop = stop_rx.clone();
        let max_age = Duration::from_secs(cfg.connection_max_secs.max(1));
        conns.spawn(async move {
            let _slot = slot;
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = tokio::time::sleep(max_age) => None,
                _ = stop.wait_for(|s| *s) => None,
            };
            if ended.is_none() {
                // Age limit or shutdown: finish the request in flight, then close.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
            }
        });
    }
    drop(listener);
    // Event streams never end on their own: end them, so their connections close at once.
    metrics_state.push().close();
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::db::{Conn, Engine, Location};
    use crate::collector::store::test_chain;
    use crate::wire::GENESIS_HASH;

    /// A group in which the database refuses one batch's rows (here a rule of the test's own,
    /// a trigger refusing station `bad`) is stored again one batch at a time: only that batch
    /// fails, with the database's reason; the others are stored and answered as stored.
    #[test]
    fn a_batch_the_database_refuses_fails_alone_and_its_group_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::collector::db::testing::test_db(dir.path(), "c.db");
        let mut store = Store::open(&path).unwrap();
        let conn = Conn::open(&Location::of_path(&path)).unwrap();
        match conn.engine() {
            Engine::Sqlite => conn.execute_batch(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON records WHEN NEW.station = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'this test refuses station bad'); END;",
            ),
            Engine::Postgres => conn.execute_batch(
                "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NEW.station = 'bad' THEN
                     RAISE EXCEPTION 'this test refuses station bad' USING ERRCODE = 'check_violation';
                   END IF;
                   RETURN NEW;
                 END $$;
                 CREATE TRIGGER refuse_bad BEFORE INSERT ON records
                   FOR EACH ROW EXECUTE FUNCTION refuse_bad();",
            ),
        }
        .unwrap();
        let mut answers = Vec::new();
        let group: Vec<QueuedBatch> = ["a", "bad", "b"]
            .iter()
            .map(|s| {
                let (tx, rx) = oneshot::channel();
                answers.push(rx);
                (s.to_string(), test_chain(s, 1, 2, GENESIS_HASH, 0), tx)
            })
            .collect();
        store_group(&mut store, Utc::now(), group);
        let answers: Vec<_> = answers
            .into_iter()
            .map(|mut rx| rx.try_recv().expect("every batch is answered"))
            .collect();
        for i in [0, 2] {
            match &answers[i] {
                Ok(StoreOutcome::Stored(ack)) => assert_eq!(ack.accepted, vec![1, 2]),
                other => panic!("batch {i}: {other:?}"),
            }
        }
        match &answers[1] {
            Err(e) => assert!(
                e.is_refusal() && e.to_string().contains("this test refuses station bad"),
                "{e}"
            ),
            other => panic!("the refused batch: {other:?}"),
        }
        assert_eq!(store.stored_through("a").unwrap(), 2);
        assert_eq!(store.stored_through("b").unwrap(), 2);
        assert_eq!(store.stored_through("bad").unwrap(), 0);
    }
}
