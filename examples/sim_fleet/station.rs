//! One simulated station: it journals its plan's records as the simulated clock passes their
//! end, ships them as the real shipper does, heartbeats on its period, keeps one push stream
//! open and answers a bulletin event with a verified, station-signed receipt.
//!
//! **Invariant:** a station keeps every record until the collector acknowledged it (the
//! shipper's rules: `src/shipper.rs`) and sends only what its key signed; it never decides by
//! itself that a record was stored — the simulator's verdict comes from the database.

use super::Ctx;
use super::plan::{self, Airing};
use super::stats::Kind;
use chrono::{DateTime, FixedOffset, Utc};
use ed25519_dalek::SigningKey;
use loa::collector::bulletins::{Receipt, ReceiptState, Receipts};
use loa::shipper::{DEFAULT_MAX_BATCH_RECORDS, backoff_delay};
use loa::station::push::Parser;
use loa::wire::{BatchAck, Heartbeat, JournalHealth, RecordBatch, SignedRecord};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// First retry delay of a batch, as the real shipper (`DEFAULT_BACKOFF_MIN_MS`).
const BACKOFF_MIN_MS: u64 = loa::shipper::DEFAULT_BACKOFF_MIN_MS;
/// Longest retry delay, as the real shipper.
const BACKOFF_MAX_MS: u64 = loa::shipper::DEFAULT_BACKOFF_MAX_MS;
/// The push stream's read timeout (three keep-alive periods, as `station::push`).
const STREAM_READ_SECS: u64 = 45;
/// Reconnect backoff of the push stream: the stream's `retry: 3000`, doubling to 60 s.
const STREAM_RETRY_MIN_MS: u64 = 3_000;
const STREAM_RETRY_MAX_MS: u64 = 60_000;

/// The records a station journaled and how far the collector acknowledged them.
#[derive(Debug, Default)]
pub struct Journal {
    pub records: Vec<SignedRecord>,
    /// Highest seq acknowledged (seq = index + 1).
    pub acked: u64,
    /// The plan's airings within the run, in order; `next` is the first not journaled yet.
    airings: Vec<Airing>,
    next: usize,
}

impl Journal {
    /// Airings the plan has within the run.
    pub fn planned(&self) -> usize {
        self.airings.len()
    }

    fn last_hash(&self) -> &str {
        self.records.last().map_or("", |r| r.hash.as_str())
    }
}

/// What a station saw of the bulletin.
#[derive(Debug, Clone, Copy, Default)]
pub struct BulletinSeen {
    /// When the stream chunk that completed its event was read (the first time), before the
    /// event was decoded or checked: what the collector's fan-out took, plus however long the
    /// station's task waited for one of the simulator's worker threads.
    pub received: Option<Instant>,
    /// When `bulletin::check` accepted it.
    pub verified: Option<Instant>,
    /// How long that accepted check took (`Envelope::decode` + `bulletin::check`, wall time).
    pub check: Option<Duration>,
    /// When the collector acknowledged its receipt (200).
    pub receipted: Option<Instant>,
}

/// A simulated station.
pub struct Station {
    pub id: String,
    pub area: String,
    pub key: SigningKey,
    /// The collectors it talks to, in its order (its own replica first), failing over between
    /// them by the real station's rules (`loa::endpoints`: a connection error, a timeout or a
    /// 5xx moves it on; a 4xx or 429 never does).
    pub endpoints: loa::endpoints::Endpoints,
    /// Its source address group's client for requests, and one for its push stream.
    pub client: reqwest::Client,
    pub stream_client: reqwest::Client,
    /// Requests in flight from its source address group (under the collector's per-address cap).
    pub gate: Arc<Semaphore>,
    pub journal: Mutex<Journal>,
    /// Wakes the shipper: a heartbeat answered (the collector is back), or a new record.
    pub wake: Notify,
    pub bulletin: Mutex<BulletinSeen>,
}

impl Station {
    pub fn new(
        index: usize,
        endpoints: loa::endpoints::Endpoints,
        client: reqwest::Client,
        stream_client: reqwest::Client,
        gate: Arc<Semaphore>,
        ctx: &Ctx,
    ) -> Self {
        let airings = ctx.spec.airings(index, ctx.s0, ctx.sim_end);
        Self {
            id: super::collector::station_id(index),
            area: super::collector::area(index),
            key: super::collector::key(index),
            endpoints,
            client,
            stream_client,
            gate,
            journal: Mutex::new(Journal {
                airings,
                ..Journal::default()
            }),
            wake: Notify::new(),
            bulletin: Mutex::new(BulletinSeen::default()),
        }
    }

    /// (journaled, acknowledged).
    pub fn progress(&self) -> (u64, u64) {
        self.journal
            .lock()
            .map(|j| (j.records.len() as u64, j.acked))
            .unwrap_or((0, 0))
    }

    /// Journal every airing that ended by `now` (simulated); the real instant of the next one.
    fn journal_due(&self, ctx: &Ctx, now: DateTime<FixedOffset>) -> Option<Instant> {
        let Ok(mut j) = self.journal.lock() else {
            return None;
        };
        while let Some(a) = j.airings.get(j.next).cloned() {
            if a.end() > now {
                return Some(ctx.real_at(a.end()));
            }
            let seq = j.records.len() as u64 + 1;
            match plan::record(&self.id, &self.key, seq, j.last_hash(), &a) {
                Ok(r) => j.records.push(r),
                Err(e) => {
                    eprintln!("{}: record {seq} not signed: {e}", self.id);
                    return None;
                }
            }
            j.next += 1;
        }
        None
    }

    /// The airing on now and the next one (for the heartbeat).
    fn briefs(
        &self,
        now: DateTime<FixedOffset>,
    ) -> (
        Option<loa::wire::AiringBrief>,
        Option<loa::wire::AiringBrief>,
    ) {
        let Ok(j) = self.journal.lock() else {
            return (None, None);
        };
        let on = j
            .airings
            .iter()
            .find(|a| a.at <= now && a.end() > now)
            .map(Airing::brief);
        let next = j.airings.iter().find(|a| a.at > now).map(Airing::brief);
        (on, next)
    }

    /// Journal the plan as it airs and ship it (the shipper's rules), until the load stops and
    /// everything is acknowledged, or the run ends.
    pub async fn air_and_ship(self: Arc<Self>, ctx: Arc<Ctx>) {
        let mut stop = ctx.stop_all.clone();
        let mut attempt = 0u32;
        let mut retry_at: Option<Instant> = None;
        let mut honour = false;
        loop {
            if *stop.borrow() {
                return;
            }
            let now = Instant::now();
            let next_due = self.journal_due(&ctx, ctx.sim_now(now));
            let (journaled, acked) = self.progress();
            if journaled > acked && retry_at.is_none_or(|t| now >= t) {
                match self.ship(&ctx).await {
                    Ok(()) => {
                        attempt = 0;
                        retry_at = None;
                        continue;
                    }
                    Err(Some(secs)) => {
                        attempt = attempt.saturating_add(1);
                        honour = true;
                        retry_at = Some(Instant::now() + Duration::from_secs(secs));
                    }
                    Err(None) => {
                        attempt = attempt.saturating_add(1);
                        honour = false;
                        retry_at = Some(
                            Instant::now() + backoff_delay(attempt, BACKOFF_MIN_MS, BACKOFF_MAX_MS),
                        );
                    }
                }
            }
            let far = Instant::now() + Duration::from_secs(3600);
            let until = [next_due, retry_at]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(far);
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.wake.notified() => {
                    // The collector answered a heartbeat: retry now, as the real shipper does
                    // (a Retry-After is honoured whole).
                    if !honour {
                        retry_at = None;
                        attempt = 0;
                    }
                }
                _ = stop.changed() => {}
            }
        }
    }

    /// Send one batch. `Err(Some(secs))`: the collector asked to wait that long (429).
    async fn ship(&self, ctx: &Ctx) -> Result<(), Option<u64>> {
        let (batch, first) = {
            let Ok(j) = self.journal.lock() else {
                return Err(None);
            };
            let from = j.acked as usize;
            let to = (from + DEFAULT_MAX_BATCH_RECORDS).min(j.records.len());
            (j.records[from..to].to_vec(), j.acked + 1)
        };
        let seqs: Vec<u64> = (first..first + batch.len() as u64).collect();
        let base = self.endpoints.current();
        let url = format!("{base}/api/v1/stations/{}/records", self.id);
        let body = RecordBatch { records: batch };
        let _permit = self.gate.acquire().await.map_err(|_| None)?;
        let t = Instant::now();
        let resp = match self
            .client
            .post(url)
            .timeout(ctx.timeout)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                ctx.stats.net_error(Kind::Batch, &e);
                self.endpoints.failed(&base, "network");
                return Err(None);
            }
        };
        let status = resp.status().as_u16();
        self.endpoints.judge(&base, status);
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| s.min(loa::shipper::MAX_RETRY_AFTER_SECS));
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                ctx.stats.net_error(Kind::Batch, &e);
                self.endpoints.failed(&base, "cut answer");
                return Err(None);
            }
        };
        let took = t.elapsed();
        let ack: Option<BatchAck> = serde_json::from_str(&text).ok();
        match (status, ack) {
            (200, Some(ack)) => {
                let stored: BTreeSet<u64> = ack
                    .accepted
                    .iter()
                    .chain(&ack.duplicates)
                    .copied()
                    .collect();
                let mut through = first - 1;
                for &seq in &seqs {
                    if stored.contains(&seq) || seq <= ack.stored_through {
                        through = seq;
                    } else {
                        break;
                    }
                }
                if through < first {
                    ctx.stats.error(Kind::Batch, "200 acknowledging none");
                    return Err(None);
                }
                ctx.stats.ok(Kind::Batch, took);
                if let Ok(mut j) = self.journal.lock() {
                    j.acked = j.acked.max(through);
                }
                Ok(())
            }
            (409, Some(ack)) if ack.stored_through + 1 < first => {
                // The collector holds fewer than it acknowledged (a database restored): rewind.
                ctx.stats.error(Kind::Batch, "409 rewind");
                if let Ok(mut j) = self.journal.lock() {
                    j.acked = ack.stored_through;
                }
                Ok(())
            }
            (429, _) => {
                ctx.stats.error(Kind::Batch, "429");
                Err(retry_after)
            }
            (s, _) => {
                ctx.stats.error(Kind::Batch, s.to_string());
                if s < 500
                    && ctx
                        .refusals_said
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        < 5
                {
                    eprintln!(
                        "{}: batch {first}..{} refused ({s}): {}",
                        self.id,
                        first + seqs.len() as u64 - 1,
                        text.chars().take(300).collect::<String>()
                    );
                }
                Err(None)
            }
        }
    }

    /// A signed heartbeat every `ctx.heartbeat` (first at a random point of the first period,
    /// as stations started at different times), until the run ends.
    pub async fn heartbeat(self: Arc<Self>, ctx: Arc<Ctx>) {
        let mut stop = ctx.stop_all.clone();
        let started = Instant::now();
        let phase = Duration::from_millis(random_below(ctx.heartbeat.as_millis() as u64));
        let mut tick = tokio::time::interval_at(Instant::now() + phase, ctx.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
            let base = self.endpoints.current();
            let url = format!("{base}/api/v1/stations/{}/heartbeat", self.id);
            let (on, next) = self.briefs(ctx.sim_now(Instant::now()));
            let (journaled, acked) = self.progress();
            let hb = Heartbeat {
                v: loa::wire::HEARTBEAT_VERSION,
                station: self.id.clone(),
                sent_at: Utc::now(),
                now_airing: on,
                next_airing: next,
                backlog_records: journaled - acked,
                last_seq: journaled,
                output: "null".into(),
                output_ok: true,
                clock_synced: Some(true),
                version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_secs: started.elapsed().as_secs(),
                journal: Some(JournalHealth::default()),
                sync: None,
            };
            let Ok(signed) = hb.sign(&self.key) else {
                ctx.stats.error(Kind::Heartbeat, "not signed");
                continue;
            };
            let Ok(_permit) = self.gate.acquire().await else {
                return;
            };
            let t = Instant::now();
            let r = self
                .client
                .post(&url)
                .timeout(ctx.timeout)
                .json(&signed)
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    self.endpoints.answered(&base);
                    // Read the answer, as a station does (`pending_bulletins` and all).
                    match r.bytes().await {
                        Ok(_) => {
                            ctx.stats.ok(Kind::Heartbeat, t.elapsed());
                            self.wake.notify_one();
                        }
                        Err(e) => ctx.stats.net_error(Kind::Heartbeat, &e),
                    }
                }
                Ok(r) => {
                    self.endpoints.judge(&base, r.status().as_u16());
                    ctx.stats
                        .error(Kind::Heartbeat, r.status().as_u16().to_string())
                }
                Err(e) => {
                    self.endpoints.failed(&base, "network");
                    ctx.stats.net_error(Kind::Heartbeat, &e)
                }
            }
        }
    }

    /// Keep one push stream open (station-signed, resumed with `Last-Event-ID`), until the run
    /// ends; a bulletin event is checked with the real `bulletin::check` and answered with a
    /// receipt.
    pub async fn push(self: Arc<Self>, ctx: Arc<Ctx>, connect_gate: Arc<Semaphore>) {
        let mut stop = ctx.stop_all.clone();
        let pq = format!("/api/v1/stations/{}/events", self.id);
        let mut last_id: Option<String> = None;
        let mut attempt = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let permit = connect_gate.acquire().await.ok();
            let h = loa::centre::request::sign(&self.key, &self.id, "GET", &pq, Utc::now());
            let base = self.endpoints.current();
            let mut req = self.stream_client.get(format!("{base}{pq}"));
            for (n, v) in h.pairs() {
                req = req.header(n, v);
            }
            if let Some(id) = &last_id {
                req = req.header("Last-Event-ID", id);
            }
            let t = Instant::now();
            let resp = tokio::select! {
                r = tokio::time::timeout(ctx.timeout, req.send()) => r,
                _ = stop.changed() => return,
            };
            drop(permit);
            match resp {
                Ok(Ok(r)) if r.status() == 200 => {
                    ctx.stats.ok(Kind::PushConnect, t.elapsed());
                    attempt = 0;
                    let mut parser = Parser::new(last_id.clone());
                    let mut r = r;
                    loop {
                        let chunk = tokio::select! {
                            c = tokio::time::timeout(Duration::from_secs(STREAM_READ_SECS), r.chunk()) => c,
                            _ = stop.changed() => return,
                        };
                        let Ok(Ok(Some(chunk))) = chunk else {
                            break;
                        };
                        let read_at = Instant::now();
                        let Ok(events) = parser.push(&chunk) else {
                            break;
                        };
                        for e in events {
                            if e.event == "bulletin" {
                                self.clone().on_bulletin(&ctx, &e.data, read_at);
                            }
                        }
                        last_id = parser.last_event_id().map(str::to_string);
                    }
                }
                Ok(Ok(r)) => {
                    self.endpoints.judge(&base, r.status().as_u16());
                    ctx.stats
                        .error(Kind::PushConnect, r.status().as_u16().to_string())
                }
                Ok(Err(e)) => {
                    self.endpoints.failed(&base, "network");
                    ctx.stats.net_error(Kind::PushConnect, &e)
                }
                Err(_) => {
                    self.endpoints.failed(&base, "timeout");
                    ctx.stats.error(Kind::PushConnect, "timeout")
                }
            }
            attempt = attempt.saturating_add(1);
            let wait = backoff_delay(attempt, STREAM_RETRY_MIN_MS, STREAM_RETRY_MAX_MS);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// A bulletin event (its chunk read at `read_at`): check it as a station does; the first
    /// time it is accepted, send the receipt (in its own task, so the stream keeps being read).
    fn on_bulletin(self: Arc<Self>, ctx: &Arc<Ctx>, data: &str, read_at: Instant) {
        if let Ok(mut seen) = self.bulletin.lock() {
            seen.received.get_or_insert(read_at);
        }
        let t = Instant::now();
        let Ok(env) = loa::centre::Envelope::decode(data.as_bytes()) else {
            eprintln!("{}: a bulletin event that is no envelope", self.id);
            return;
        };
        let accepted = match loa::bulletin::check(
            &env,
            &self.id,
            &self.area,
            &ctx.pinned,
            Utc::now(),
            &|_, _| false,
        ) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{}: bulletin refused: {e}", self.id);
                return;
            }
        };
        let took = t.elapsed();
        {
            let Ok(mut seen) = self.bulletin.lock() else {
                return;
            };
            if seen.verified.is_some() {
                // Resent on a resumed stream: the station has it already.
                return;
            }
            seen.verified = Some(Instant::now());
            seen.check = Some(took);
        }
        ctx.verified_one();
        let id = accepted.bulletin.id.to_hex();
        let ctx = ctx.clone();
        tokio::spawn(async move { self.send_receipt(&ctx, id).await });
    }

    /// POST the delivered receipt, station-signed over its body, retried until the collector
    /// answers 200 (backoff 1 s doubling to 60 s, as `station::bulletins`).
    async fn send_receipt(&self, ctx: &Ctx, bulletin: String) {
        let mut stop = ctx.stop_all.clone();
        let path = format!("/api/v1/stations/{}/bulletin-receipts", self.id);
        let receipts = Receipts {
            receipts: vec![Receipt {
                bulletin,
                state: ReceiptState::Delivered,
                code: None,
                at: Utc::now(),
            }],
        };
        let Ok(body) = serde_json::to_vec(&receipts) else {
            return;
        };
        let mut attempt = 0u32;
        loop {
            let h = loa::centre::request::sign_body(
                &self.key,
                &self.id,
                "POST",
                &path,
                &body,
                Utc::now(),
            );
            let base = self.endpoints.current();
            let mut req = self
                .client
                .post(format!("{base}{path}"))
                .timeout(ctx.timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            for (n, v) in h.pairs() {
                req = req.header(n, v);
            }
            let Ok(permit) = self.gate.acquire().await else {
                return;
            };
            let t = Instant::now();
            let r = req.body(body.clone()).send().await;
            let ok = match r {
                Ok(r) if r.status() == 200 => {
                    self.endpoints.answered(&base);
                    let _ = r.bytes().await;
                    ctx.stats.ok(Kind::BulletinReceipt, t.elapsed());
                    true
                }
                Ok(r) => {
                    self.endpoints.judge(&base, r.status().as_u16());
                    ctx.stats
                        .error(Kind::BulletinReceipt, r.status().as_u16().to_string());
                    false
                }
                Err(e) => {
                    self.endpoints.failed(&base, "network");
                    ctx.stats.net_error(Kind::BulletinReceipt, &e);
                    false
                }
            };
            drop(permit);
            if ok {
                if let Ok(mut seen) = self.bulletin.lock() {
                    seen.receipted = Some(Instant::now());
                }
                return;
            }
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(backoff_delay(attempt, 1_000, 60_000)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// A random number in `0..n` (0 when `n` is 0).
fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b).checked_rem(n).unwrap_or(0)
}
