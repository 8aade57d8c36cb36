//! A minimal collector for shipper tests and the backlog benchmark: real HTTP on 127.0.0.1,
//! verifying signatures and the chain like the real collector's ingest (issue 5), with a script of
//! failures (5xx, 429, 409) and records to reject as invalid. Included by path from tests and
//! `examples/bench_station.rs`; has no tests of its own.
#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ed25519_dalek::VerifyingKey;
use loa::wire::{BatchAck, Heartbeat, RecordBatch, Rejection, SignedHeartbeat, SignedRecord};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// A scripted failure answered to the next records POST.
#[derive(Debug, Clone)]
pub enum Fail {
    Status(u16),
    TooMany {
        retry_after_secs: u64,
    },
    /// 409 with a `BatchAck` carrying the real `stored_through`.
    Conflict,
}

#[derive(Default)]
pub struct Inner {
    pub keys: BTreeMap<String, VerifyingKey>,
    pub stored: BTreeMap<(String, u64), SignedRecord>,
    /// (station, seq) in the order they were stored.
    pub log: Vec<(String, u64)>,
    pub script: VecDeque<Fail>,
    pub reject: HashSet<u64>,
    pub posts: u64,
    pub heartbeats: Vec<Heartbeat>,
}

#[derive(Clone, Default)]
pub struct TestCollector {
    pub inner: Arc<Mutex<Inner>>,
}

impl TestCollector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&self, station: &str, key: VerifyingKey) {
        self.lock().keys.insert(station.into(), key);
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serve on `listener` until the runtime ends.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let app = Router::new()
            .route("/api/v1/stations/{id}/records", post(records))
            .route("/api/v1/stations/{id}/heartbeat", post(heartbeat))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    }

    /// Seqs stored for `station`, in storage order.
    pub fn log_of(&self, station: &str) -> Vec<u64> {
        self.lock()
            .log
            .iter()
            .filter(|(s, _)| s == station)
            .map(|(_, q)| *q)
            .collect()
    }
}

fn ack(
    accepted: Vec<u64>,
    duplicates: Vec<u64>,
    stored_through: u64,
    rejected: Vec<Rejection>,
) -> Json<BatchAck> {
    Json(BatchAck {
        accepted,
        duplicates,
        stored_through,
        rejected,
    })
}

fn through(g: &Inner, id: &str) -> u64 {
    g.stored
        .range((id.to_string(), 0)..=(id.to_string(), u64::MAX))
        .next_back()
        .map(|((_, s), _)| *s)
        .unwrap_or(0)
}

async fn records(
    State(c): State<TestCollector>,
    Path(id): Path<String>,
    Json(batch): Json<RecordBatch>,
) -> Response {
    let mut g = c.lock();
    g.posts += 1;
    if let Some(f) = g.script.pop_front() {
        return match f {
            Fail::Status(s) => (
                StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "scripted failure",
            )
                .into_response(),
            Fail::TooMany { retry_after_secs } => {
                let mut h = HeaderMap::new();
                h.insert("retry-after", HeaderValue::from(retry_after_secs));
                (StatusCode::TOO_MANY_REQUESTS, h, "slow down").into_response()
            }
            Fail::Conflict => {
                let t = through(&g, &id);
                (StatusCode::CONFLICT, ack(vec![], vec![], t, vec![])).into_response()
            }
        };
    }
    let Some(key) = g.keys.get(&id).copied() else {
        return (StatusCode::NOT_FOUND, "unknown station").into_response();
    };
    // All-or-nothing: check everything first.
    let mut rejected = Vec::new();
    let mut parsed = Vec::new();
    for r in &batch.records {
        match r.verify(&key) {
            Ok(rec) if rec.station == id && !g.reject.contains(&rec.seq) => {
                parsed.push((rec, r.clone()))
            }
            Ok(rec) => rejected.push(Rejection {
                seq: Some(rec.seq),
                reason: "refused by test script".into(),
                code: None,
            }),
            Err(e) => rejected.push(Rejection {
                seq: r.parse().ok().map(|p| p.seq),
                reason: e.to_string(),
                code: Some(loa::reason::ReasonCode::RefusedMalformed),
            }),
        }
    }
    if !rejected.is_empty() {
        let t = through(&g, &id);
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            ack(vec![], vec![], t, rejected),
        )
            .into_response();
    }
    let mut accepted = Vec::new();
    let mut duplicates = Vec::new();
    for (rec, signed) in &parsed {
        let k = (id.clone(), rec.seq);
        if let Some(old) = g.stored.get(&k) {
            if old.bytes() == signed.bytes() {
                duplicates.push(rec.seq);
                continue;
            }
            let t = through(&g, &id);
            return (StatusCode::CONFLICT, ack(vec![], vec![], t, vec![])).into_response();
        }
        let prev = g.stored.get(&(id.clone(), rec.seq.wrapping_sub(1)));
        if let Some(prev) = prev
            && prev.hash != rec.prev_hash
        {
            let t = through(&g, &id);
            return (StatusCode::CONFLICT, ack(vec![], vec![], t, vec![])).into_response();
        }
        accepted.push(rec.seq);
    }
    for (rec, signed) in parsed {
        if accepted.contains(&rec.seq) {
            g.stored.insert((id.clone(), rec.seq), signed);
            g.log.push((id.clone(), rec.seq));
        }
    }
    let t = through(&g, &id);
    (StatusCode::OK, ack(accepted, duplicates, t, vec![])).into_response()
}

async fn heartbeat(
    State(c): State<TestCollector>,
    Path(id): Path<String>,
    Json(hb): Json<SignedHeartbeat>,
) -> Response {
    let mut g = c.lock();
    let Some(key) = g.keys.get(&id).copied() else {
        return (StatusCode::NOT_FOUND, "unknown station").into_response();
    };
    match hb.verify(&key) {
        Ok(h) => {
            g.heartbeats.push(h);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response(),
    }
}
