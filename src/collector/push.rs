//! The push channel (issue #15, docs/bulletins.md "Push channel"), the collector's side:
//! `GET /api/v1/stations/{id}/events`, one long-lived Server-Sent Events stream per station,
//! authenticated as a station-signed request (the guard of `authz::ROUTES`, as for
//! `GET /api/v1/stations/{id}/bulletins`), at most [`DEFAULT_MAX_PER_STATION`] at once per
//! station (429 beyond), resumable with `Last-Event-ID`.
//!
//! Events: `bulletin` (data: the signed envelope JSON exactly as stored), `cancel` (data: the
//! signed cancel envelope JSON), `manifest` (data: `{"version":N}`, the station's latest
//! schedule version). A comment line every [`KEEP_ALIVE_SECS`] keeps proxies from closing an
//! idle stream and lets the station's read timeout tell a dead one.
//!
//! **Event ids.** Every send and cancel appends a row to `push_events` (an `AUTOINCREMENT` /
//! identity sequence) in the same transaction as the bulletin or its cancel, an *immediate* one
//! (the database's only writer while it is open, on both engines, see `collector::db`), and the
//! event's `id:` is that sequence number: ids follow the commit order, even when several
//! collector replicas write to one PostgreSQL database. A sequence, not a timestamp:
//! it follows the commit order whatever the collector's clock does (a clock stepped back would
//! give a later bulletin a smaller time and hide it from a station resuming after it), and two
//! events in one millisecond are still two. On (re)connect the collector subscribes to the hub
//! *first*, then reads every event after `Last-Event-ID` that is still valid and targets the
//! station (a bulletin not cancelled and whose window has not closed; a cancel whose bulletin's
//! window has not closed), sends those in order, then the live events whose id is above the
//! last one it sent: an event committed before the read is in it, one committed after reaches
//! the subscription, one in both is sent once. A `Last-Event-ID` above the largest id stored
//! (a database restored from a backup) is read as none: the station gets everything still
//! valid, and drops what it holds already. `manifest` events carry no id (the station's latest
//! version is sent on every connect, and the sync agent ignores a version it has).
//!
//! **How events reach the hub** ([`Feed`]). On SQLite one collector process writes: the writer
//! publishes each event to its own [`Hub`] right after the commit, under the one accounts
//! connection's lock, so the hub gets them in id order. On PostgreSQL any replica may write and
//! a station may be connected to any replica, so no writer publishes to its hub: inside the
//! transaction that stores the event (or a schedule version) it sends `pg_notify('loa_push', …)`
//! ([`announce`]; the payload is a short [`Notice`] — kind and id, or station and version — as
//! NOTIFY payloads stop at 8,000 bytes), which PostgreSQL delivers only on commit and in commit
//! order, to every replica's [`listen`] thread. That thread holds a session of its own
//! (`LISTEN loa_push`), reads from the database every event after the last one its hub got and
//! publishes them in id order; after connecting or reconnecting (with backoff, the database
//! restarted) it first reads every event it missed and every station's latest version, so a
//! commit made on any replica while it was away still reaches its streams.
//!
//! **Invariant:** a station is sent only what `GET /api/v1/stations/{id}/bulletins` would hand
//! it — envelopes signed by the centre, for bulletins whose targets include it
//! ([`crate::bulletin::Targets::includes`]) — so the push channel adds no trust path; every
//! event it missed while the stream was down and that is still valid reaches it on reconnect
//! with its last id. Each replica's hub gets every event once, in id order, whichever replica
//! committed it. A connection holds no buffer of its own beyond its subscription: a station
//! too slow to keep up (the hub's [`HUB_CAPACITY`] events behind) is disconnected and resumes
//! from the database.

use crate::collector::db::{Conn, params};
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

use super::http::AppState;
use crate::bulletin::{Bulletin, Targets};
use crate::centre::signed::Envelope;

/// Most push streams one station may hold at once: one, and one more while a reconnect
/// overlaps the old connection not yet noticed dead.
pub const DEFAULT_MAX_PER_STATION: usize = 2;
/// Period of the keep-alive comment (proxies and the station's read timeout see a live stream).
pub const KEEP_ALIVE_SECS: u64 = 15;
/// Events the hub keeps for a stream that has not taken them yet; a stream further behind is
/// closed (the station resumes from the database with its last id).
pub const HUB_CAPACITY: usize = 1024;
/// Retry-After of a refused connection (over the cap).
pub const RETRY_AFTER_SECS: u64 = 10;
/// The `retry:` hint at the head of every stream: how soon a station comes back after a drop
/// (it draws its wait in [50 %, 100 %] of it, so 10,000 stations coming back after a restart of
/// the collector spread over a second and a half).
pub const STREAM_RETRY_SECS: u64 = 3;

/// The event names (docs/bulletins.md, contract item 5).
pub mod event {
    /// A bulletin's signed envelope.
    pub const BULLETIN: &str = "bulletin";
    /// A cancel's signed envelope.
    pub const CANCEL: &str = "cancel";
    /// The station's latest schedule version, `{"version":N}`.
    pub const MANIFEST: &str = "manifest";
}

/// What a `push_events` row announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bulletin,
    Cancel,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Bulletin => "bulletin",
            Kind::Cancel => "cancel",
        }
    }
}

/// Who an event is for.
#[derive(Debug)]
enum To {
    /// The stations a bulletin targets.
    Targets(Targets),
    /// One station.
    Station(String),
}

/// One event on its way to the streams.
#[derive(Debug)]
struct Pushed {
    /// The `push_events` sequence (`None`: a manifest event, which has no id).
    seq: Option<i64>,
    event: &'static str,
    data: Arc<str>,
    to: To,
    /// When it was made, right before the hub got it (every event is delivered as soon as it
    /// is made): the fan-out is measured from here.
    at: std::time::Instant,
}

/// Where a [`Hub`]'s events come from (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The writer publishes each event itself after its commit (SQLite: one process writes).
    Writer,
    /// Only the database listener ([`listen`]) publishes: every replica learns of every commit
    /// the same way (PostgreSQL); the writers' `publish_*` calls do nothing.
    Database,
}

/// The in-process hub every stream subscribes to, and the per-station count of streams.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Pushed>>,
    feed: Feed,
    held: Mutex<HashMap<String, usize>>,
    closed: watch::Sender<bool>,
    max_per_station: usize,
    /// The largest event id published (or stored at start): a station resuming at exactly it
    /// has missed nothing, and its connect reads no database.
    last_seq: AtomicI64,
    /// How the latest event with an id went out to the live streams (`/metrics`).
    fanout: Mutex<Fanout>,
}

/// How the latest event with an id (a bulletin or a cancel) went out to this hub's live
/// streams: how many streams handed it to their connection, and how long after the hub got it
/// the last of them did. A stream that sends it from its backlog (connected after) is not
/// counted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Fanout {
    pub seq: i64,
    pub streams: u64,
    pub last_after: Duration,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PER_STATION)
    }
}

/// One admitted stream's place in the station's count; given back on drop.
#[derive(Debug)]
struct Held {
    hub: Arc<Hub>,
    station: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.hub.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.station) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.station);
            }
        }
    }
}

impl Hub {
    /// A hub admitting `max_per_station` streams per station, fed by the writer.
    pub fn new(max_per_station: usize) -> Self {
        Self::fed_by(Feed::Writer, max_per_station)
    }

    /// A hub fed by `feed`, admitting `max_per_station` streams per station.
    pub fn fed_by(feed: Feed, max_per_station: usize) -> Self {
        let (tx, _) = broadcast::channel(HUB_CAPACITY);
        Self {
            tx,
            feed,
            held: Mutex::new(HashMap::new()),
            closed: watch::Sender::new(false),
            max_per_station: max_per_station.max(1),
            last_seq: AtomicI64::new(-1),
            fanout: Mutex::new(Fanout::default()),
        }
    }

    /// Note the largest event id stored (at start, before any stream).
    pub fn set_last_seq(&self, seq: i64) {
        self.last_seq.fetch_max(seq, Ordering::SeqCst);
    }

    /// Where this hub's events come from.
    pub fn feed(&self) -> Feed {
        self.feed
    }

    /// The largest event id this hub published (or was told was stored).
    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::SeqCst)
    }

    /// Whether [`Hub::close`] was called (the collector is shutting down).
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// A writer's event: published when the writer feeds this hub, dropped when the database
    /// does (the listener publishes it on commit, on every replica).
    fn publish(&self, p: Pushed) {
        if self.feed == Feed::Writer {
            self.deliver(p);
        }
    }

    fn deliver(&self, p: Pushed) {
        if let Some(seq) = p.seq {
            self.last_seq.fetch_max(seq, Ordering::SeqCst);
        }
        // No stream subscribed is not an error: nobody is listening.
        let _ = self.tx.send(Arc::new(p));
    }

    /// Announce a bulletin (its stored envelope JSON `envelope`) to the streams of `targets`.
    /// Call it under the lock the `push_events` row was written under (see the module doc).
    /// Nothing on a hub fed by the database.
    pub fn publish_bulletin(&self, seq: i64, targets: Targets, envelope: &str) {
        self.publish(Pushed {
            seq: Some(seq),
            event: event::BULLETIN,
            data: Arc::from(envelope),
            to: To::Targets(targets),
            at: std::time::Instant::now(),
        });
    }

    /// Announce a cancel (its envelope JSON) to the streams of the bulletin's `targets`.
    /// Nothing on a hub fed by the database.
    pub fn publish_cancel(&self, seq: i64, targets: Targets, cancel: &str) {
        self.publish(Pushed {
            seq: Some(seq),
            event: event::CANCEL,
            data: Arc::from(cancel),
            to: To::Targets(targets),
            at: std::time::Instant::now(),
        });
    }

    /// Announce schedule version `version` to `station`'s streams. Nothing on a hub fed by the
    /// database.
    pub fn publish_manifest(&self, station: &str, version: u64) {
        self.publish(manifest_event(station, version));
    }

    /// Announce schedule version `version` to `station`'s streams, whatever the feed: the
    /// database listener's way in (any replica published it).
    pub fn deliver_manifest(&self, station: &str, version: u64) {
        self.deliver(manifest_event(station, version));
    }

    /// End every stream (the collector is shutting down): a stream would otherwise hold its
    /// connection open for the whole shutdown grace.
    pub fn close(&self) {
        let _ = self.closed.send(true);
    }

    /// How the latest event with an id went out (see [`Fanout`]).
    pub fn last_fanout(&self) -> Fanout {
        *self.fanout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A live stream handed event `seq` to its connection `after` the hub got it.
    fn took(&self, seq: i64, after: Duration) {
        let mut f = self.fanout.lock().unwrap_or_else(|e| e.into_inner());
        if seq > f.seq {
            *f = Fanout {
                seq,
                streams: 0,
                last_after: Duration::ZERO,
            };
        }
        if seq == f.seq {
            f.streams += 1;
            f.last_after = f.last_after.max(after);
        }
    }

    /// Streams held now, all stations together.
    pub fn streams(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// Admit one more stream of `station` unless it holds `max_per_station` already.
    fn admit(self: &Arc<Self>, station: &str) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(station.to_string()).or_insert(0);
        if *n >= self.max_per_station {
            return None;
        }
        *n += 1;
        Some(Held {
            hub: self.clone(),
            station: station.to_string(),
        })
    }
}

fn manifest_event(station: &str, version: u64) -> Pushed {
    Pushed {
        seq: None,
        event: event::MANIFEST,
        data: Arc::from(manifest_data(version)),
        to: To::Station(station.to_string()),
        at: std::time::Instant::now(),
    }
}

fn manifest_data(version: u64) -> String {
    format!("{{\"version\":{version}}}")
}

/// Append the event of `kind` for bulletin `bulletin` at `at`, and [`announce`] it; its
/// sequence number (the id its stream event carries). Call it inside the immediate transaction
/// that stores the bulletin or its cancel (see the module doc).
pub fn note(
    conn: &Conn,
    kind: Kind,
    bulletin: &str,
    at: DateTime<Utc>,
) -> Result<i64, crate::collector::db::DbError> {
    let seq = conn.query_row(
        "INSERT INTO push_events (kind, bulletin_id, created_unix_ms) VALUES (?1, ?2, ?3)
         RETURNING seq",
        params![kind.as_str(), bulletin, at.timestamp_millis()],
        |r| r.get(0),
    )?;
    announce(
        conn,
        &Notice::Event {
            seq,
            kind,
            bulletin: bulletin.to_string(),
        },
    )?;
    Ok(seq)
}

/// The largest event id stored (0: none).
pub fn last_seq(conn: &Conn) -> Result<i64, crate::collector::db::DbError> {
    conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM push_events",
        params![],
        |r| r.get(0),
    )
}

/// An event a station missed, as its stream sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    pub seq: i64,
    pub event: &'static str,
    /// The signed envelope's JSON text as stored.
    pub data: String,
}

/// The events after `after` still valid at `now` for station `station` (area `area`), in id
/// order: each bulletin not cancelled whose window has not closed and whose targets include
/// the station, and each cancel of such a bulletin. An `after` above the largest id stored is
/// read as 0 (see the module doc).
pub fn missed(
    conn: &Conn,
    station: &str,
    area: &str,
    after: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Missed>, crate::collector::db::DbError> {
    let after = if after > last_seq(conn)? { 0 } else { after };
    let mut st = conn.prepare_cached(
        "SELECT e.seq, e.kind, b.id, b.envelope, b.cancel_envelope
         FROM push_events e JOIN bulletins b ON b.id = e.bulletin_id
         WHERE e.seq > ?1 AND b.not_after_unix_ms > ?2 ORDER BY e.seq",
    )?;
    let rows = st.query_map(params![after, now.timestamp_millis()], |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<String>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
            r.get::<Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, kind, id, envelope, cancel) = row?;
        // Stored here from a checked, signed bulletin; one that does not read back is logged
        // and skipped, never sent (as `bulletins::for_station` does).
        let targets = match Envelope::decode(envelope.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|env| Bulletin::decode(&env.body).map_err(|e| e.to_string()))
        {
            Ok(b) => b.targets,
            Err(e) => {
                tracing::error!(bulletin = %id, error = %e, "stored bulletin unreadable; not pushed");
                continue;
            }
        };
        if !targets.includes(station, area) {
            continue;
        }
        match (kind.as_str(), cancel) {
            // Cancelled since: its cancel (a later id) is what is still valid.
            ("bulletin", Some(_)) => {}
            ("bulletin", None) => out.push(Missed {
                seq,
                event: event::BULLETIN,
                data: envelope,
            }),
            ("cancel", Some(c)) => out.push(Missed {
                seq,
                event: event::CANCEL,
                data: c,
            }),
            (k, _) => tracing::error!(seq, kind = k, bulletin = %id, "push event without its data"),
        }
    }
    Ok(out)
}

/// The targets of stored bulletin `id` (`None` when it is not stored or does not read back).
pub fn targets_of(conn: &Conn, id: &str) -> Result<Option<Targets>, crate::collector::db::DbError> {
    use crate::collector::db::OptionalExtension;
    let env: Option<String> = conn
        .query_row(
            "SELECT envelope FROM bulletins WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(env.and_then(|e| {
        let env = Envelope::decode(e.as_bytes()).ok()?;
        Bulletin::decode(&env.body).ok().map(|b| b.targets)
    }))
}

// ---------------------------------------------------------------------------------------------
// The database feed: replicas on one PostgreSQL database.

/// The PostgreSQL channel push notices travel on.
pub const CHANNEL: &str = "loa_push";
/// Longest wait for a notice before the listener looks at its session and at shutdown.
pub const LISTEN_WAIT: Duration = Duration::from_secs(1);
/// A listening session silent this long is probed with a no-op query (answered within
/// [`PROBE_TIMEOUT`]): a server gone without closing the socket is noticed within about these
/// two.
pub const PROBE_AFTER: Duration = Duration::from_secs(10);
/// Longest the probe of a silent listening session may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before the listener reconnects after losing its session; doubled at each failure
/// up to [`RECONNECT_MAX`].
pub const RECONNECT_MIN: Duration = Duration::from_millis(500);
/// Longest wait between two reconnection attempts of the listener.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Events the listener reads from the database at once.
const READ_BATCH: i64 = 500;

impl Kind {
    fn parse(text: &str) -> Option<Kind> {
        match text {
            "bulletin" => Some(Kind::Bulletin),
            "cancel" => Some(Kind::Cancel),
            _ => None,
        }
    }
}

/// What a notification on [`CHANNEL`] says: which row to read, never the envelope itself
/// (NOTIFY payloads stop at 8,000 bytes; these are a few dozen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `push_events` row `seq`: a bulletin, or its cancel.
    Event {
        seq: i64,
        kind: Kind,
        bulletin: String,
    },
    /// Station `station`'s schedule version `version` was published.
    Manifest { station: String, version: u64 },
}

impl Notice {
    /// `bulletin 42 <id>`, `cancel 43 <id>`, `manifest 7 <station>`.
    pub fn payload(&self) -> String {
        match self {
            Notice::Event {
                seq,
                kind,
                bulletin,
            } => format!("{} {seq} {bulletin}", kind.as_str()),
            Notice::Manifest { station, version } => format!("manifest {version} {station}"),
        }
    }

    /// The notice `text` is the payload of; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Notice> {
        let mut parts = text.splitn(3, ' ');
        let (what, number, name) = (parts.next()?, parts.next()?, parts.next()?);
        if name.is_empty() {
            return None;
        }
        if what == "manifest" {
            return Some(Notice::Manifest {
                station: name.to_string(),
                version: number.parse().ok()?,
            });
        }
        Some(Notice::Event {
            seq: number.parse().ok()?,
            kind: Kind::parse(what)?,
            bulletin: name.to_string(),
        })
    }
}

/// Send `notice` to every replica's listener when the transaction `conn` is in commits
/// (PostgreSQL's `pg_notify`: delivered on commit only, in commit order, never after a
/// rollback). Nothing on SQLite, whose writer publishes to its own hub.
pub fn announce(conn: &Conn, notice: &Notice) -> Result<(), crate::collector::db::DbError> {
    if conn.engine() != crate::collector::db::Engine::Postgres {
        return Ok(());
    }
    conn.execute(
        "SELECT pg_notify(?1, ?2)",
        params![CHANNEL, notice.payload()],
    )?;
    Ok(())
}

/// What the listener tells the rest of its replica about schedule versions.
pub trait Manifests: Send + Sync + 'static {
    /// The latest version of `station` this replica knows of.
    fn known(&self, station: &str) -> Option<u64>;
    /// Version `version` of `station` was published (by this replica or another): note it and
    /// announce it to the station's streams.
    fn published(&self, station: &str, version: u64);
    /// Another replica stored a heartbeat of `station` (`store::STATUS_CHANNEL`): this
    /// replica's view of the station (its status) follows.
    fn heartbeat_elsewhere(&self, _station: &str) {}
    /// Another replica stored records of `station`.
    fn records_elsewhere(&self, _station: &str) {}
}

/// Start the database listener of `hub` (a hub fed by [`Feed::Database`]) on a thread of its
/// own — the blocking PostgreSQL client cannot run inside tokio — with the database at `url`;
/// `clock` tells which bulletin windows have closed. The thread ends within [`LISTEN_WAIT`] of
/// the hub being closed or dropped.
pub fn spawn_listener(
    url: String,
    hub: &Arc<Hub>,
    clock: Arc<dyn crate::clock::Clock>,
    manifests: impl Manifests,
) -> std::io::Result<()> {
    let hub = Arc::downgrade(hub);
    std::thread::Builder::new()
        .name("loa-push-listen".into())
        .spawn(move || listen(&url, &hub, &*clock, &manifests))
        .map(|_| ())
}

/// The listener: a session, and when it is lost another one after a wait that doubles from
/// [`RECONNECT_MIN`] to [`RECONNECT_MAX`], until the hub is closed or dropped.
pub fn listen(
    url: &str,
    hub: &std::sync::Weak<Hub>,
    clock: &dyn crate::clock::Clock,
    manifests: &dyn Manifests,
) {
    let mut wait = RECONNECT_MIN;
    loop {
        match session(url, hub, clock, manifests, &mut wait) {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "push: the database listener lost its session; it reconnects, then reads \
                     every event committed meanwhile"
                );
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until {
                    if running(hub).is_none() {
                        return;
                    }
                    std::thread::sleep(LISTEN_WAIT.min(wait));
                }
                wait = (wait * 2).min(RECONNECT_MAX);
            }
        }
    }
}

/// The hub, while the collector runs.
fn running(hub: &std::sync::Weak<Hub>) -> Option<Arc<Hub>> {
    hub.upgrade().filter(|h| !h.is_closed())
}

/// One listening session: `Ok` when the collector stops, an error when the session is lost.
fn session(
    url: &str,
    hub: &std::sync::Weak<Hub>,
    clock: &dyn crate::clock::Clock,
    manifests: &dyn Manifests,
    wait: &mut Duration,
) -> Result<(), crate::collector::db::DbError> {
    use crate::collector::db::{DbError, Location};
    use postgres::fallible_iterator::FallibleIterator as _;
    let mut client = crate::collector::db::pg_config(url)?.connect(postgres::NoTls)?;
    client.batch_execute(&format!(
        "LISTEN {CHANNEL}; LISTEN {}",
        crate::collector::store::STATUS_CHANNEL
    ))?;
    let reads = Conn::open(&Location::Postgres(url.to_string()))?;
    // Listening first, reading second: a commit before the LISTEN is in the read, one after it
    // is notified (and one in both is published once: the hub's last id moved past it).
    let Some(h) = running(hub) else {
        return Ok(());
    };
    catch_up(&reads, &h, clock)?;
    for (station, n) in super::versions::db::latest_all(&reads)? {
        if manifests.known(&station).is_none_or(|k| k < n) {
            manifests.published(&station, n);
        }
    }
    drop(h);
    tracing::info!(
        channel = CHANNEL,
        "push: listening to the database for the events of every replica"
    );
    *wait = RECONNECT_MIN;
    let mut heard = std::time::Instant::now();
    loop {
        let Some(h) = running(hub) else {
            return Ok(());
        };
        let mut notices = Vec::new();
        {
            let mut n = client.notifications();
            let first = n.timeout_iter(LISTEN_WAIT).next()?;
            if let Some(first) = first {
                notices.push(first);
                let mut more = n.iter();
                while let Some(m) = more.next()? {
                    notices.push(m);
                }
            }
        }
        if notices.is_empty() {
            if client.is_closed() {
                return Err(DbError::Session("the listening session was closed".into()));
            }
            if heard.elapsed() >= PROBE_AFTER {
                client.is_valid(PROBE_TIMEOUT)?;
                heard = std::time::Instant::now();
            }
            continue;
        }
        heard = std::time::Instant::now();
        let mut events = false;
        for n in &notices {
            if n.channel() == crate::collector::store::STATUS_CHANNEL {
                status_notice(n.payload(), manifests);
                continue;
            }
            match Notice::parse(n.payload()) {
                Some(Notice::Event { seq, .. }) => events |= seq > h.last_seq(),
                Some(Notice::Manifest { station, version }) => {
                    manifests.published(&station, version)
                }
                None => tracing::warn!(
                    payload = n.payload(),
                    "push: a notice on {CHANNEL} that loa does not read; ignored"
                ),
            }
        }
        if events {
            catch_up(&reads, &h, clock)?;
        }
    }
}

/// A notice of [`crate::collector::store::STATUS_CHANNEL`]: `"<replica> hb|rec <station>"`;
/// this replica's own are ignored (it updated its status when it stored them).
fn status_notice(payload: &str, manifests: &dyn Manifests) {
    let mut words = payload.splitn(3, ' ');
    let (Some(origin), Some(kind), Some(station)) = (words.next(), words.next(), words.next())
    else {
        tracing::warn!(payload, "push: a status notice loa does not read; ignored");
        return;
    };
    if origin == crate::collector::db::replica_id() {
        return;
    }
    match kind {
        "hb" => manifests.heartbeat_elsewhere(station),
        "rec" => manifests.records_elsewhere(station),
        _ => tracing::warn!(payload, "push: a status notice loa does not read; ignored"),
    }
}

/// Publish to `hub`, in id order, every event after the last one it has whose bulletin's window
/// has not closed, read from the database.
fn catch_up(
    reads: &Conn,
    hub: &Hub,
    clock: &dyn crate::clock::Clock,
) -> Result<(), crate::collector::db::DbError> {
    loop {
        let (events, upto) = events_after(reads, hub.last_seq(), clock.now())?;
        let Some(upto) = upto else {
            return Ok(());
        };
        for p in events {
            hub.deliver(p);
        }
        // Rows read but not published (window closed) are behind the hub too.
        hub.set_last_seq(upto);
    }
}

/// At most [`READ_BATCH`] events after `after` as the hub publishes them (those whose
/// bulletin's window has closed at `now` left out), and the largest id read (`None`: none).
fn events_after(
    conn: &Conn,
    after: i64,
    now: DateTime<Utc>,
) -> Result<(Vec<Pushed>, Option<i64>), crate::collector::db::DbError> {
    let mut st = conn.prepare_cached(
        "SELECT e.seq, e.kind, b.envelope, b.cancel_envelope, b.not_after_unix_ms
         FROM push_events e LEFT JOIN bulletins b ON b.id = e.bulletin_id
         WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![after, READ_BATCH], |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<String>(1)?,
            r.get::<Option<String>>(2)?,
            r.get::<Option<String>>(3)?,
            r.get::<Option<i64>>(4)?,
        ))
    })?;
    let (mut out, mut upto) = (Vec::new(), None);
    for row in rows {
        let (seq, kind, envelope, cancel, not_after) = row?;
        upto = Some(seq);
        let (Some(envelope), Some(not_after)) = (envelope, not_after) else {
            tracing::error!(seq, "push event without its bulletin; not pushed");
            continue;
        };
        if not_after <= now.timestamp_millis() {
            continue;
        }
        // Stored here from a checked, signed bulletin; one that does not read back is logged
        // and skipped, never sent (as `missed` does).
        let targets = match Envelope::decode(envelope.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|env| Bulletin::decode(&env.body).map_err(|e| e.to_string()))
        {
            Ok(b) => b.targets,
            Err(e) => {
                tracing::error!(seq, error = %e, "stored bulletin unreadable; not pushed");
                continue;
            }
        };
        let (event, data) = match (Kind::parse(&kind), cancel) {
            (Some(Kind::Bulletin), _) => (event::BULLETIN, envelope),
            (Some(Kind::Cancel), Some(c)) => (event::CANCEL, c),
            _ => {
                tracing::error!(seq, kind, "push event without its data");
                continue;
            }
        };
        out.push(Pushed {
            seq: Some(seq),
            event,
            data: Arc::from(data),
            to: To::Targets(targets),
            at: std::time::Instant::now(),
        });
    }
    Ok((out, upto))
}

/// The id a reconnecting station presents (`Last-Event-ID`); 0 when absent or not ours.
fn last_event_id(req: &Request) -> i64 {
    req.headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .unwrap_or(0)
}

fn sse_event(event: &'static str, seq: Option<i64>, data: &str) -> Event {
    let e = Event::default().event(event).data(data);
    match seq {
        Some(s) => e.id(s.to_string()),
        None => e,
    }
}

/// One stream's state: the events read from the database, then the hub.
struct Stream {
    backlog: std::vec::IntoIter<Event>,
    rx: broadcast::Receiver<Arc<Pushed>>,
    closed: watch::Receiver<bool>,
    station: String,
    area: String,
    /// The largest id sent (live events at or below it were in the backlog).
    last: i64,
    held: Held,
}

impl Stream {
    /// The event `p` as this stream sends it, or `None` when it is not for this station or was
    /// sent already.
    fn take(&mut self, p: &Pushed) -> Option<Event> {
        let ours = match &p.to {
            To::Targets(t) => t.includes(&self.station, &self.area),
            To::Station(s) => *s == self.station,
        };
        if !ours {
            return None;
        }
        if let Some(seq) = p.seq {
            if seq <= self.last {
                return None;
            }
            self.last = seq;
            self.held.hub.took(seq, p.at.elapsed());
        }
        Some(sse_event(p.event, p.seq, &p.data))
    }

    async fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.backlog.next() {
            return Some(e);
        }
        loop {
            let got = tokio::select! {
                r = self.rx.recv() => r,
                _ = self.closed.wait_for(|c| *c) => return None,
            };
            match got {
                Ok(p) => {
                    if let Some(e) = self.take(&p) {
                        return Some(e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(station = %self.station, behind = n, "push stream too far behind; closed (the station resumes with its last id)");
                    return None;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn refusal(status: StatusCode, en: String, vi: String) -> Response {
    (status, axum::Json(json!({ "error": en, "error_vi": vi }))).into_response()
}

/// `GET /api/v1/stations/{id}/events` (station-signed, that station only).
async fn get_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let Some(entry) = state.station(&id) else {
        tracing::error!(station = %id, "push: station passed the guard but is unknown");
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".into(),
            "Lỗi nội bộ. Xem nhật ký của máy chủ.".into(),
        );
    };
    let hub = state.push().clone();
    let Some(held) = hub.admit(&entry.id) else {
        let max = hub.max_per_station;
        let mut r = refusal(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "station {} already holds {max} push connections (the most allowed); close one or retry after {RETRY_AFTER_SECS} s",
                entry.id
            ),
            format!(
                "Trạm {} đã có {max} kết nối nhận tin (tối đa {max}); hãy đóng kết nối cũ hoặc thử lại sau {RETRY_AFTER_SECS} giây.",
                entry.id
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        return r;
    };
    // Subscribe before reading what was missed: an event committed after the read reaches the
    // subscription (see the module doc).
    let rx = hub.tx.subscribe();
    let after = last_event_id(&req);
    let now = state.now();
    let (station, area) = (entry.id.clone(), entry.area_code.clone());
    // A station resuming at the last id published (read after subscribing: anything published
    // later reaches the subscription) missed nothing: no database read, no blocking thread (a
    // restarted collector's 10,000 stations come back at once).
    let read = if after == hub.last_seq.load(Ordering::SeqCst) {
        Ok(Ok(Vec::new()))
    } else {
        state
            .auth()
            .with(move |c| missed(c, &station, &area, after, now))
            .await
    };
    let missed = match read {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "push: reading missed events");
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".into(),
                "Lỗi nội bộ. Xem nhật ký của máy chủ.".into(),
            );
        }
        Err(e) => {
            tracing::error!(error = ?e, "push: reading missed events");
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".into(),
                "Lỗi nội bộ. Xem nhật ký của máy chủ.".into(),
            );
        }
    };
    let last = missed.last().map_or(after, |m| m.seq);
    let mut backlog = Vec::with_capacity(missed.len() + 1);
    // The stream's first line tells the station how soon to come back after a drop.
    let mut first = Event::default().retry(Duration::from_secs(STREAM_RETRY_SECS));
    if let Some(v) = state.versions().latest_version(&entry.id) {
        first = first.event(event::MANIFEST).data(manifest_data(v));
    } else {
        first = first.comment("");
    }
    backlog.push(first);
    backlog.extend(
        missed
            .iter()
            .map(|m| sse_event(m.event, Some(m.seq), &m.data)),
    );
    let stream = Stream {
        backlog: backlog.into_iter(),
        rx,
        closed: hub.closed.subscribe(),
        station: entry.id,
        area: entry.area_code,
        last,
        held,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let e = s.next().await?;
        Some((Ok::<_, std::convert::Infallible>(e), s))
    });
    let mut r = Sse::new(body)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(KEEP_ALIVE_SECS))
                .text(""),
        )
        .into_response();
    // Reverse proxies (nginx) must pass each event on at once.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// The route (merged into the collector's router; its row is in `authz::ROUTES`).
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/stations/{id}/events", get(get_events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_station_holds_at_most_its_cap_and_a_closed_stream_gives_its_place_back() {
        let hub = Arc::new(Hub::new(2));
        let a = hub.admit("a").unwrap();
        let b = hub.admit("a").unwrap();
        assert!(hub.admit("a").is_none());
        let other = hub.admit("b").unwrap();
        assert_eq!(hub.streams(), 3);
        drop(a);
        let c = hub.admit("a").unwrap();
        drop((b, c, other));
        assert_eq!(hub.streams(), 0);
    }

    #[test]
    fn notices_read_back_as_written_and_stay_far_below_the_notify_limit() {
        for n in [
            Notice::Event {
                seq: 42,
                kind: Kind::Bulletin,
                bulletin: "0123456789abcdef0123456789abcdef".into(),
            },
            Notice::Event {
                seq: i64::MAX,
                kind: Kind::Cancel,
                bulletin: "ab".into(),
            },
            Notice::Manifest {
                station: "phuong-ben-nghe.q1_2".into(),
                version: 7,
            },
        ] {
            let text = n.payload();
            assert!(text.len() < 200, "{text}");
            assert_eq!(Notice::parse(&text), Some(n));
        }
        for bad in [
            "",
            "bulletin",
            "bulletin x ab",
            "hello 1 ab",
            "manifest -1 a",
            "cancel 3 ",
        ] {
            assert_eq!(Notice::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_hub_fed_by_the_database_ignores_the_writers_and_takes_the_listeners_events() {
        let hub = Arc::new(Hub::fed_by(Feed::Database, 2));
        let mut rx = hub.tx.subscribe();
        hub.publish_bulletin(3, Targets::All, "{}");
        hub.publish_manifest("a", 2);
        assert!(rx.try_recv().is_err(), "a writer's event reached the hub");
        assert_eq!(hub.last_seq(), -1);
        hub.deliver_manifest("a", 2);
        assert_eq!(rx.try_recv().unwrap().event, event::MANIFEST);
        let writer = Hub::new(2);
        let mut rx = writer.tx.subscribe();
        writer.publish_bulletin(3, Targets::All, "{}");
        assert_eq!(rx.try_recv().unwrap().seq, Some(3));
        assert_eq!(writer.last_seq(), 3);
    }

    #[test]
    fn a_live_event_already_sent_from_the_backlog_is_not_sent_twice() {
        let hub = Arc::new(Hub::new(2));
        let held = hub.admit("a").unwrap();
        let mut s = Stream {
            backlog: Vec::new().into_iter(),
            rx: hub.tx.subscribe(),
            closed: hub.closed.subscribe(),
            station: "a".into(),
            area: "79101".into(),
            last: 5,
            held,
        };
        let p = |seq, to| Pushed {
            seq,
            event: event::BULLETIN,
            data: Arc::from("{}"),
            to,
            at: std::time::Instant::now(),
        };
        assert!(s.take(&p(Some(5), To::Targets(Targets::All))).is_none());
        assert!(s.take(&p(Some(6), To::Targets(Targets::All))).is_some());
        assert_eq!(s.last, 6);
        assert!(
            s.take(&p(Some(7), To::Targets(Targets::Area("51".into()))))
                .is_none()
        );
        assert!(s.take(&p(None, To::Station("b".into()))).is_none());
        assert!(s.take(&p(None, To::Station("a".into()))).is_some());
        assert_eq!(s.last, 6);
    }

    /// The hub counts the live streams that sent its latest event with an id, and how long
    /// after it got the event the last of them did; a later event starts the count again, an
    /// earlier one (or a manifest, or an event not for the station) does not move it.
    #[tokio::test]
    async fn the_hub_tells_how_many_live_streams_sent_its_latest_event_and_how_late_the_last() {
        let hub = Arc::new(Hub::new(2));
        let stream = |station: &str, area: &str| Stream {
            backlog: Vec::new().into_iter(),
            rx: hub.tx.subscribe(),
            closed: hub.closed.subscribe(),
            station: station.into(),
            area: area.into(),
            last: 0,
            held: hub.admit(station).unwrap(),
        };
        let (mut a, mut b, mut c) = (
            stream("a", "79101"),
            stream("b", "79102"),
            stream("c", "51"),
        );
        assert_eq!(hub.last_fanout(), Fanout::default());
        hub.deliver(Pushed {
            seq: Some(4),
            event: event::BULLETIN,
            data: Arc::from("{}"),
            to: To::Targets(Targets::Area("791".into())),
            at: std::time::Instant::now(),
        });
        assert!(a.next().await.is_some());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(b.next().await.is_some());
        let f = hub.last_fanout();
        assert_eq!((f.seq, f.streams), (4, 2));
        assert!(f.last_after >= Duration::from_millis(30), "{f:?}");
        // Station c is not targeted: it takes nothing and is not counted.
        hub.deliver_manifest("c", 1);
        assert!(c.next().await.is_some()); // the manifest, after skipping event 4
        assert_eq!(hub.last_fanout().streams, 2);
        hub.deliver(Pushed {
            seq: Some(5),
            event: event::CANCEL,
            data: Arc::from("{}"),
            to: To::Targets(Targets::All),
            at: std::time::Instant::now(),
        });
        assert!(c.next().await.is_some());
        let f = hub.last_fanout();
        assert_eq!((f.seq, f.streams), (5, 1));
        assert!(f.last_after < Duration::from_millis(30), "{f:?}");
        // A stream late on event 4 does not move the count of event 5.
        hub.took(4, Duration::from_secs(9));
        assert_eq!(hub.last_fanout(), f);
    }
}
