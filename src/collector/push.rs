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
//! **Event ids.** Every send and cancel appends a row to `push_events` (an `AUTOINCREMENT`
//! sequence, written in the same transaction as the bulletin or its cancel, on the one accounts
//! connection, and published to the [`Hub`] under that connection's lock before the next write
//! can take it), and the event's `id:` is that sequence number. A sequence, not a timestamp:
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
//! **Invariant:** a station is sent only what `GET /api/v1/stations/{id}/bulletins` would hand
//! it — envelopes signed by the centre, for bulletins whose targets include it
//! ([`crate::bulletin::Targets::includes`]) — so the push channel adds no trust path; every
//! event it missed while the stream was down and that is still valid reaches it on reconnect
//! with its last id. A connection holds no buffer of its own beyond its subscription: a station
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
}

/// The in-process hub every stream subscribes to, and the per-station count of streams.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Pushed>>,
    held: Mutex<HashMap<String, usize>>,
    closed: watch::Sender<bool>,
    max_per_station: usize,
    /// The largest event id published (or stored at start): a station resuming at exactly it
    /// has missed nothing, and its connect reads no database.
    last_seq: AtomicI64,
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
    /// A hub admitting `max_per_station` streams per station.
    pub fn new(max_per_station: usize) -> Self {
        let (tx, _) = broadcast::channel(HUB_CAPACITY);
        Self {
            tx,
            held: Mutex::new(HashMap::new()),
            closed: watch::Sender::new(false),
            max_per_station: max_per_station.max(1),
            last_seq: AtomicI64::new(-1),
        }
    }

    /// Note the largest event id stored (at start, before any stream).
    pub fn set_last_seq(&self, seq: i64) {
        self.last_seq.fetch_max(seq, Ordering::SeqCst);
    }

    fn publish(&self, p: Pushed) {
        if let Some(seq) = p.seq {
            self.last_seq.fetch_max(seq, Ordering::SeqCst);
        }
        // No stream subscribed is not an error: nobody is listening.
        let _ = self.tx.send(Arc::new(p));
    }

    /// Announce a bulletin (its stored envelope JSON `envelope`) to the streams of `targets`.
    /// Call it under the lock the `push_events` row was written under (see the module doc).
    pub fn publish_bulletin(&self, seq: i64, targets: Targets, envelope: &str) {
        self.publish(Pushed {
            seq: Some(seq),
            event: event::BULLETIN,
            data: Arc::from(envelope),
            to: To::Targets(targets),
        });
    }

    /// Announce a cancel (its envelope JSON) to the streams of the bulletin's `targets`.
    pub fn publish_cancel(&self, seq: i64, targets: Targets, cancel: &str) {
        self.publish(Pushed {
            seq: Some(seq),
            event: event::CANCEL,
            data: Arc::from(cancel),
            to: To::Targets(targets),
        });
    }

    /// Announce schedule version `version` to `station`'s streams.
    pub fn publish_manifest(&self, station: &str, version: u64) {
        self.publish(Pushed {
            seq: None,
            event: event::MANIFEST,
            data: Arc::from(manifest_data(version)),
            to: To::Station(station.to_string()),
        });
    }

    /// End every stream (the collector is shutting down): a stream would otherwise hold its
    /// connection open for the whole shutdown grace.
    pub fn close(&self) {
        let _ = self.closed.send(true);
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

fn manifest_data(version: u64) -> String {
    format!("{{\"version\":{version}}}")
}

/// Append the event of `kind` for bulletin `bulletin` at `at`; its sequence number (the id its
/// stream event carries).
pub fn note(
    conn: &Conn,
    kind: Kind,
    bulletin: &str,
    at: DateTime<Utc>,
) -> Result<i64, crate::collector::db::DbError> {
    conn.query_row(
        "INSERT INTO push_events (kind, bulletin_id, created_unix_ms) VALUES (?1, ?2, ?3)
         RETURNING seq",
        params![kind.as_str(), bulletin, at.timestamp_millis()],
        |r| r.get(0),
    )
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
    _held: Held,
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
        _held: held,
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
            _held: held,
        };
        let p = |seq, to| Pushed {
            seq,
            event: event::BULLETIN,
            data: Arc::from("{}"),
            to,
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
}
