//! The shipper against a real HTTP collector on 127.0.0.1 (the minimal test collector).

#[path = "shipper_testcollector.rs"]
mod tc;

use chrono::{FixedOffset, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use loa::journal::{self, AckLedger, Journal, SetAside};
use loa::shipper::{LiveStatus, Progress, Shipper, ShipperConfig, run_heartbeat};
use loa::wire::{AiringRecord, Outcome, Source};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tc::{Fail, TestCollector};
use tokio::sync::watch;

const STATION: &str = "phuong-ship";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn record(n: u64) -> AiringRecord {
    let tz = FixedOffset::east_opt(7 * 3600).unwrap();
    let at =
        tz.with_ymd_and_hms(2019, 3, 1, 5, 30, 0).unwrap() + chrono::Duration::minutes(n as i64);
    AiringRecord {
        v: 0,
        station: String::new(),
        seq: 0,
        occurrence: Some(format!("s@{n}")),
        slot: Some("s".into()),
        program: None,
        category: "news".into(),
        source: Source::File,
        scheduled_at: at,
        actual_start: Some(at),
        end: Some(at + chrono::Duration::seconds(30)),
        planned_secs: 30.0,
        aired_secs: 30.0,
        start_offset_ms: Some(0),
        outcome: Outcome::Aired,
        reason: None,
        reason_code: None,
        items: vec![],
        evidence: None,
        relay: None,
        recorded_at: Utc::now(),
        prev_hash: String::new(),
        schedule_version: None,
        bulletin: None,
    }
}

fn journal_with(dir: &Path, n: u64) -> Journal {
    let (mut j, _) = Journal::open(dir, STATION, key()).unwrap();
    for i in 0..n {
        j.append(record(i)).unwrap();
    }
    j
}

fn config(port: u16, dir: &Path) -> ShipperConfig {
    let mut c = ShipperConfig::new(
        &format!("http://127.0.0.1:{port}"),
        STATION,
        dir.to_path_buf(),
    );
    c.backoff_min_ms = 50;
    c.backoff_max_ms = 200;
    c.request_timeout_secs = 5;
    c
}

struct Running {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), loa::shipper::ShipError>>,
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    last_seq: watch::Sender<u64>,
}

fn start(cfg: ShipperConfig, last_seq: u64) -> Running {
    let (s, acked) = Shipper::new(cfg).unwrap();
    let (tx, rx) = watch::channel(false);
    let (ls_tx, ls_rx) = watch::channel(last_seq);
    let task = tokio::spawn(s.run(ls_rx, rx));
    Running {
        shutdown: tx,
        task,
        acked,
        last_seq: ls_tx,
    }
}

impl Running {
    async fn wait_acked(&self, seq: u64) {
        let t0 = Instant::now();
        while self.acked.load(Ordering::Relaxed) < seq {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "acked stuck at {}",
                self.acked.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

async fn serve(c: &TestCollector) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    c.serve(l);
    port
}

fn collector() -> TestCollector {
    let c = TestCollector::new();
    c.register(STATION, key().verifying_key());
    c
}

#[tokio::test]
async fn collector_down_the_whole_time_then_up_everything_arrives_once_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let j = journal_with(tmp.path(), 450);
    // A port nobody listens on yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = start(config(port, tmp.path()), j.last_seq());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(run.acked.load(Ordering::Relaxed), 0);
    let c = collector();
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    c.serve(l);
    run.wait_acked(450).await;
    assert_eq!(c.log_of(STATION), (1..=450).collect::<Vec<_>>());
    assert_eq!(AckLedger::new(tmp.path()).load().unwrap(), 450);
    let stored: Vec<_> = c.lock().stored.values().cloned().collect();
    journal::verify_chain(&stored, &key().verifying_key()).unwrap();
    run.stop().await;
    // A restarted shipper sends nothing more.
    let posts = c.lock().posts;
    let run = start(config(port, tmp.path()), j.last_seq());
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.stop().await;
    assert_eq!(c.lock().posts, posts);
}

#[tokio::test]
async fn server_errors_and_429_are_retried_honouring_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let j = journal_with(tmp.path(), 5);
    let c = collector();
    c.lock().script.extend([
        Fail::Status(500),
        Fail::Status(503),
        Fail::TooMany {
            retry_after_secs: 1,
        },
    ]);
    let port = serve(&c).await;
    let t0 = Instant::now();
    let run = start(config(port, tmp.path()), j.last_seq());
    run.wait_acked(5).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "Retry-After: 1 was not honoured"
    );
    assert_eq!(c.lock().posts, 4);
    assert_eq!(c.log_of(STATION), vec![1, 2, 3, 4, 5]);
    run.stop().await;
}

#[tokio::test]
async fn refused_batch_without_named_records_is_retried_not_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let j = journal_with(tmp.path(), 3);
    let c = collector();
    c.lock()
        .script
        .extend([Fail::Status(403), Fail::Status(404)]);
    let port = serve(&c).await;
    let run = start(config(port, tmp.path()), j.last_seq());
    run.wait_acked(3).await;
    run.stop().await;
    assert_eq!(c.log_of(STATION), vec![1, 2, 3]);
    assert!(SetAside::new(tmp.path()).entries().unwrap().is_empty());
}

#[tokio::test]
async fn rejected_record_is_set_aside_and_the_rest_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let j = journal_with(tmp.path(), 5);
    let c = collector();
    c.lock().reject.insert(3);
    let port = serve(&c).await;
    let run = start(config(port, tmp.path()), j.last_seq());
    run.wait_acked(5).await;
    run.stop().await;
    assert_eq!(c.log_of(STATION), vec![1, 2, 4, 5]);
    let aside = SetAside::new(tmp.path()).entries().unwrap();
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].seq, 3);
    assert_eq!(aside[0].record.parse().unwrap().seq, 3);
    // After a restart with a lagging ledger the set-aside record stays skipped.
    AckLedger::new(tmp.path()).store(2).unwrap();
    let run = start(config(port, tmp.path()), j.last_seq());
    run.wait_acked(5).await;
    run.stop().await;
    assert_eq!(c.log_of(STATION), vec![1, 2, 4, 5]);
    assert_eq!(SetAside::new(tmp.path()).entries().unwrap().len(), 1);
}

#[tokio::test]
async fn lagging_ledger_resends_as_duplicates_and_new_records_wake_the_shipper() {
    let tmp = tempfile::tempdir().unwrap();
    let mut j = journal_with(tmp.path(), 10);
    let c = collector();
    let port = serve(&c).await;
    let run = start(config(port, tmp.path()), j.last_seq());
    run.wait_acked(10).await;
    run.stop().await;
    // Crash before the ledger was renamed: it still says 4.
    AckLedger::new(tmp.path()).store(4).unwrap();
    let run = start(config(port, tmp.path()), j.last_seq());
    run.wait_acked(10).await;
    assert_eq!(c.log_of(STATION), (1..=10).collect::<Vec<_>>());
    // The journal grows while the shipper runs: it is woken and ships the new record.
    j.append(record(10)).unwrap();
    run.last_seq.send(j.last_seq()).unwrap();
    run.wait_acked(11).await;
    run.stop().await;
    assert_eq!(c.log_of(STATION), (1..=11).collect::<Vec<_>>());
}

#[tokio::test]
async fn collector_holding_fewer_records_than_acked_makes_the_shipper_rewind() {
    let tmp = tempfile::tempdir().unwrap();
    let j = journal_with(tmp.path(), 8);
    let c = collector();
    let port = serve(&c).await;
    // Deliver 1..=2 for real.
    let mut cfg = config(port, tmp.path());
    cfg.max_batch_records = 2;
    let run = start(cfg.clone(), 2);
    run.wait_acked(2).await;
    run.stop().await;
    // The ledger claims 5 (e.g. the collector was restored from an older backup) and the
    // collector answers the next batch with 409, stored_through 2.
    AckLedger::new(tmp.path()).store(5).unwrap();
    c.lock().script.push_back(Fail::Conflict);
    let run = start(cfg, j.last_seq());
    run.wait_acked(8).await;
    run.stop().await;
    assert_eq!(c.log_of(STATION), (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn heartbeat_is_signed_and_reports_backlog_and_clock_state() {
    let tmp = tempfile::tempdir().unwrap();
    let c = collector();
    let port = serve(&c).await;
    let mut cfg = config(port, tmp.path());
    cfg.heartbeat_secs = 1;
    let (_ls_tx, ls_rx) = watch::channel(7u64);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(4));
    let progress = Progress {
        last_seq: ls_rx,
        acked,
    };
    let (_st_tx, st_rx) = watch::channel(LiveStatus {
        output: "null".into(),
        output_ok: true,
        ..Default::default()
    });
    let (sd_tx, sd_rx) = watch::channel(false);
    let task = tokio::spawn(run_heartbeat(cfg, key(), progress, st_rx, sd_rx));
    let t0 = Instant::now();
    while c.lock().heartbeats.is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no heartbeat arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sd_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    let hb = c.lock().heartbeats[0].clone();
    assert_eq!(hb.station, STATION);
    assert_eq!(hb.backlog_records, 3);
    assert_eq!(hb.last_seq, 7);
    assert_eq!(hb.output, "null");
    assert!(hb.clock_synced.is_some());
}

/// After an outage the backlog must not wait out the backoff: the first successful heartbeat
/// wakes the shipper. The backoff here is 20–40 s, the heartbeat 1 s: before the wake-up, the
/// records arrived 10–40 s after the collector came back; now they follow its first heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_heartbeat_ends_the_backoff_and_the_backlog_drains() {
    let tmp = tempfile::tempdir().unwrap();
    journal_with(tmp.path(), 5);
    // A port nobody listens on yet: the collector is down.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = config(port, tmp.path());
    cfg.backoff_min_ms = 40_000;
    cfg.backoff_max_ms = 40_000;
    cfg.heartbeat_secs = 1;
    let (_ls_tx, ls_rx) = watch::channel(5u64);
    let (_st_tx, st_rx) = watch::channel(LiveStatus::default());
    let (sd_tx, sd_rx) = watch::channel(false);
    let (s, acked) = Shipper::new(cfg.clone()).unwrap();
    let progress = Progress {
        last_seq: ls_rx.clone(),
        acked: acked.clone(),
    };
    let ship = tokio::spawn(s.run(ls_rx, sd_rx.clone()));
    let beat = tokio::spawn(run_heartbeat(cfg, key(), progress, st_rx, sd_rx));
    // The first send fails (connection refused) and the shipper settles into a 20–40 s backoff.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(acked.load(Ordering::Relaxed), 0);
    let c = collector();
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    c.serve(l);
    let up = Instant::now();
    while acked.load(Ordering::Relaxed) < 5 {
        assert!(
            up.elapsed() < Duration::from_secs(8),
            "backlog still waiting {:?} after the collector came back (heartbeats received: {})",
            up.elapsed(),
            c.lock().heartbeats.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What woke it: the heartbeat the collector answered.
    assert!(!c.lock().heartbeats.is_empty());
    assert_eq!(c.log_of(STATION), (1..=5).collect::<Vec<_>>());
    sd_tx.send(true).unwrap();
    ship.await.unwrap().unwrap();
    beat.await.unwrap().unwrap();
}
