//! The collector under attack, against a real server on loopback: slow and greedy clients,
//! out-of-range integers, replayed heartbeats and bodies that are not declared JSON.
//!
//! Several tests open connections from other loopback addresses (127.0.0.2, …; all of
//! 127.0.0.0/8 is loopback on Linux) so that the per-address connection limit can be told apart
//! from the rest.

mod collector_common;

use collector_common::*;
use ed25519_dalek::Signer;
use loa::clock::ManualClock;
use loa::collector::http::HttpConfig;
use loa::wire::{AiringRecord, GENESIS_HASH, Outcome, RECORD_VERSION, SignedRecord, Source};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn body(records: &[SignedRecord]) -> Vec<u8> {
    serde_json::to_vec(&batch(records)).unwrap()
}

/// Connect to `base` (http://127.0.0.1:PORT) from the loopback address `from`.
async fn connect_from(base: &str, from: [u8; 4]) -> TcpStream {
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind((std::net::Ipv4Addr::from(from), 0).into())
        .unwrap();
    sock.connect(addr).await.unwrap()
}

/// Read what the server sends until it closes (or `limit` passes); returns the text and
/// whether the connection was closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_slow_senders_do_not_lock_a_station_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = TestStation::new("phuong-a", 1);
    let reg = write_registry(dir.path(), &[&a]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let config = HttpConfig {
        body_read_secs: 6,
        ..HttpConfig::default()
    };
    // The default ingest slots (32) and wait (5 s): before the fix, 40 slow bodies took them all.
    assert!(config.max_concurrent_ingest < 100);
    let srv = start(&reg, &db, FixedPlans::default(), config, clock.clone()).await;

    // 100 connections, 10 from each of ten addresses, each posting to the registered station a
    // body it promises to be 100 kB long and sends one byte every 2 s.
    let mut slow = Vec::new();
    for i in 0..100u8 {
        let mut s = connect_from(&srv.base, [127, 0, 0, 2 + i / 10]).await;
        s.write_all(
            b"POST /api/v1/stations/phuong-a/records HTTP/1.1\r\nhost: x\r\n\
              content-type: application/json\r\ncontent-length: 100000\r\n\r\n{",
        )
        .await
        .unwrap();
        slow.push(s);
    }
    let dribble = tokio::spawn(async move {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            for s in slow.iter_mut() {
                let _ = s.write_all(b" ").await;
            }
        }
        slow
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A real station ships a signed batch and a heartbeat meanwhile: stored at once, never 429.
    let c = client();
    let recs: Vec<SignedRecord> = (1..=50)
        .map(|d| a.record(None, at(1 + d % 28, 5), Outcome::Aired, 600.0, 0))
        .collect();
    let t = Instant::now();
    let (st, ack) = post(
        &c,
        &format!("{}/api/v1/stations/phuong-a/records", srv.base),
        body(&recs),
    )
    .await;
    assert_eq!(st, 200, "{ack}");
    assert_eq!(ack["stored_through"], 50);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the batch waited {:?}",
        t.elapsed()
    );
    let (st, v) = post(
        &c,
        &format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base),
        serde_json::to_vec(&a.heartbeat(test_now(), 0)).unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");

    // The slow bodies run out of time (body_read_secs = 6): 408 and the connection closed.
    let mut slow = dribble.await.unwrap();
    let mut timed_out = 0;
    for s in slow.iter_mut() {
        let (text, closed) = read_until_closed(s, Duration::from_secs(10)).await;
        if text.starts_with("HTTP/1.1 408") && closed {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 100);
    let (_, metrics) = get_json(&c, &format!("{}/metrics", srv.base)).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("loa_batches_rejected_total{status=\"408\"} 100"),
        "{metrics}"
    );
    assert!(
        metrics.contains("loa_batches_rejected_total{status=\"429\"} 0"),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_idle_connections_and_greedy_addresses_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestStation::new("phuong-a", 1);
    let reg = write_registry(dir.path(), &[&a]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let config = HttpConfig {
        header_read_secs: 2,
        max_connections_per_addr: 5,
        ..HttpConfig::default()
    };
    let srv = start(&reg, &db, FixedPlans::default(), config, clock).await;

    // Headers sent a byte a second: closed once the header time is up.
    let mut s = connect_from(&srv.base, [127, 0, 0, 30]).await;
    let t = Instant::now();
    let trickle = async {
        for b in b"GET /healthz HTTP/1.1\r\nhost: xxxxxxxxxxxxxxxxxxxxxx" {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(6), trickle).await;
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(closed, "slow headers kept the connection open");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());

    // A kept-alive connection idle past the same limit is closed.
    let mut s = connect_from(&srv.base, [127, 0, 0, 31]).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "an idle connection stayed open");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );

    // One address may hold 5 connections; the 6th is answered 429 and closed, while another
    // address is served; when one of the five goes, the address may connect again.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(&srv.base, [127, 0, 0, 40]).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sixth = connect_from(&srv.base, [127, 0, 0, 40]).await;
    let (text, closed) = read_until_closed(&mut sixth, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("retry-after: 5"), "{text}");
    assert!(closed);
    let c = client();
    let (st, _) = get_json(&c, &format!("{}/healthz", srv.base)).await;
    assert_eq!(st, 200);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect_from(&srv.base, [127, 0, 0, 40]).await;
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_until_closed(&mut again, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let (_, metrics) = get_json(&c, &format!("{}/metrics", srv.base)).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("loa_connections_refused_total 1"),
        "{metrics}"
    );

    // An unregistered station is refused before its body is read: no slot, no wait.
    let mut s = connect_from(&srv.base, [127, 0, 0, 32]).await;
    s.write_all(
        b"POST /api/v1/stations/nobody/records HTTP/1.1\r\nhost: x\r\n\
          content-type: application/json\r\ncontent-length: 100000\r\n\r\n{",
    )
    .await
    .unwrap();
    let t = Instant::now();
    let (text, _) = read_until_closed(&mut s, Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(held);
    srv.stop().await;
}

/// A record signed over exactly the bytes given, bypassing `AiringRecord::sign` (which refuses
/// out-of-range numbers), as a hostile station holding its key would.
fn sign_raw(st: &TestStation, bytes: String) -> SignedRecord {
    let hash = loa::wire::sha256_hex(bytes.as_bytes());
    let sig = st.key.sign(bytes.as_bytes());
    use base64::Engine as _;
    SignedRecord {
        hash,
        signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        record: serde_json::value::RawValue::from_string(bytes).unwrap(),
    }
}

fn plain_record(station: &str, seq: u64, prev: &str) -> AiringRecord {
    AiringRecord {
        v: RECORD_VERSION,
        station: station.into(),
        seq,
        occurrence: None,
        slot: None,
        program: None,
        category: "notice".into(),
        source: Source::File,
        scheduled_at: at(3, 9),
        actual_start: Some(at(3, 9)),
        end: None,
        planned_secs: 60.0,
        aired_secs: 60.0,
        start_offset_ms: Some(0),
        outcome: Outcome::Aired,
        reason: None,
        reason_code: None,
        items: vec![],
        evidence: None,
        relay: None,
        recorded_at: test_now(),
        prev_hash: prev.into(),
        schedule_version: None,
        bulletin: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_outside_the_wire_range_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestStation::new("phuong-a", 1);
    let reg = write_registry(dir.path(), &[&a]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let srv = start(
        &reg,
        &db,
        FixedPlans::default(),
        HttpConfig::default(),
        clock,
    )
    .await;
    let c = client();
    let url = format!("{}/api/v1/stations/phuong-a/records", srv.base);
    let max = (1u64 << 53) - 1;
    // Validly signed by the station's own key, each with one number out of range.
    let seq_2_63 = serde_json::to_string(&plain_record("phuong-a", 1 << 63, GENESIS_HASH)).unwrap();
    let seq_2_53 = serde_json::to_string(&plain_record("phuong-a", max + 1, GENESIS_HASH)).unwrap();
    let offset = {
        let mut r = plain_record("phuong-a", 5, GENESIS_HASH);
        r.start_offset_ms = Some(i64::MIN + 1);
        serde_json::to_string(&r).unwrap()
    };
    let seq_0 = serde_json::to_string(&plain_record("phuong-a", 0, GENESIS_HASH)).unwrap();
    for (bytes, field) in [
        (seq_2_63, "`seq`"),
        (seq_2_53, "`seq`"),
        (offset, "`start_offset_ms`"),
        (seq_0, "`seq`"),
    ] {
        let (st, v) = post(&c, &url, body(&[sign_raw(&a, bytes)])).await;
        assert_eq!(st, 400, "{v}");
        let reason = v["rejected"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(field), "{field}: {v}");
        assert!(reason.contains("9007199254740991"), "{v}");
    }
    // The largest seq the wire allows is stored and read back exactly.
    let top = sign_raw(
        &a,
        serde_json::to_string(&plain_record("phuong-a", max, &"ab".repeat(32))).unwrap(),
    );
    let (st, v) = post(&c, &url, body(std::slice::from_ref(&top))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["accepted"][0].as_u64(), Some(max));
    assert_eq!(v["stored_through"].as_u64(), Some(max));
    let (_, v) = get_json(
        &c,
        &format!(
            "{}/api/v1/stations/phuong-a/airings?month=2019-03",
            srv.base
        ),
    )
    .await;
    assert_eq!(v["airings"][0]["seq"].as_u64(), Some(max), "{v}");
    let (_, v) = get_json(&c, &format!("{}/api/v1/reports/2019-03.json", srv.base)).await;
    assert!(
        v.to_string().contains(&top.hash),
        "the export lost the record"
    );

    // Heartbeat counters likewise.
    let mut hb: Value = serde_json::from_str(a.heartbeat(test_now(), 0).heartbeat.get()).unwrap();
    hb["last_seq"] = Value::from(1u64 << 63);
    let bytes = hb.to_string();
    let signature = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(a.key.sign(bytes.as_bytes()).to_bytes())
    };
    let signed = serde_json::json!({
        "heartbeat": serde_json::value::RawValue::from_string(bytes.clone()).unwrap(),
        "signature": signature,
    });
    let (st, v) = post(
        &c,
        &format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base),
        serde_json::to_vec(&signed).unwrap(),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("`last_seq`"), "{v}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_or_stale_heartbeats_do_not_make_a_station_online() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestStation::new("phuong-a", 1);
    let reg = write_registry(dir.path(), &[&a]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let srv = start(
        &reg,
        &db,
        FixedPlans::default(),
        HttpConfig::default(),
        clock.clone(),
    )
    .await;
    let c = client();
    let url = format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base);
    let station = format!("{}/api/v1/stations/phuong-a", srv.base);
    let now = test_now();
    let hb = |t| serde_json::to_vec(&a.heartbeat(t, 0)).unwrap();

    // Sent two hours ago (captured and replayed now): refused, the station stays offline.
    let (st, v) = post(&c, &url, hb(now - chrono::Duration::hours(2))).await;
    assert_eq!(st, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("behind"), "{v}");
    let (_, s) = get_json(&c, &station).await;
    assert_eq!(s["online"], false, "{s}");
    // Dated an hour ahead of the collector's clock: refused too.
    let (st, v) = post(&c, &url, hb(now + chrono::Duration::hours(1))).await;
    assert_eq!(st, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("ahead of"), "{v}");

    // A fresh one counts; the very same one replayed, or an older one, does not.
    let fresh = hb(now - chrono::Duration::seconds(5));
    let (st, v) = post(&c, &url, fresh.clone()).await;
    assert_eq!(st, 200, "{v}");
    let (_, s) = get_json(&c, &station).await;
    assert_eq!(s["online"], true, "{s}");
    clock.advance(chrono::Duration::minutes(5));
    for replay in [fresh, hb(now - chrono::Duration::seconds(6))] {
        let (st, v) = post(&c, &url, replay).await;
        assert_eq!(st, 409, "{v}");
        assert!(v["error"].as_str().unwrap().contains("not newer"), "{v}");
    }
    // The station went dark five minutes ago; the replays did not make it online.
    let (_, s) = get_json(&c, &station).await;
    assert_eq!(s["online"], false, "{s}");
    assert_eq!(s["heartbeat_age_secs"], 300, "{s}");
    let (st, _) = post(&c, &url, hb(now + chrono::Duration::minutes(5))).await;
    assert_eq!(st, 200);
    let (_, m) = get_json(&c, &format!("{}/metrics", srv.base)).await;
    let m = m.as_str().unwrap();
    assert!(
        m.contains("loa_heartbeats_refused_total{reason=\"stale\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("loa_heartbeats_refused_total{reason=\"not_newer\"} 2"),
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_not_declared_json_are_refused_with_415() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = TestStation::new("phuong-a", 1);
    let n = TestStation::new("xa-moi", 3);
    let reg = write_registry(dir.path(), &[&a]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let config = HttpConfig {
        admin_token: Some("s3cret-token-0123456789".into()),
        ..HttpConfig::default()
    };
    let srv = start(&reg, &db, FixedPlans::default(), config, clock).await;
    let c = client();
    let rec = a.record(None, at(1, 5), Outcome::Aired, 600.0, 0);
    let cases: Vec<(String, Vec<u8>)> = vec![
        (
            format!("{}/api/v1/stations/phuong-a/records", srv.base),
            body(std::slice::from_ref(&rec)),
        ),
        (
            format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base),
            serde_json::to_vec(&a.heartbeat(test_now(), 0)).unwrap(),
        ),
        (
            format!("{}/api/v1/admin/stations", srv.base),
            serde_json::to_vec(&n.raw()).unwrap(),
        ),
    ];
    for (url, b) in &cases {
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/jsonx"),
            None,
        ] {
            let mut r = c
                .post(url)
                .bearer_auth("s3cret-token-0123456789")
                .body(b.clone());
            if let Some(ct) = ct {
                r = r.header("content-type", ct);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 415, "{url} {ct:?}");
            let v: Value = r.json().await.unwrap();
            assert!(
                v["error"].as_str().unwrap().contains("application/json"),
                "{v}"
            );
        }
    }
    // Nothing was stored; the same bodies declared as JSON (with a charset) are.
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations/phuong-a", srv.base)).await;
    assert_eq!(v["online"], false, "{v}");
    assert_eq!(v["stored_through"], 0, "{v}");
    for (url, b) in &cases {
        let r = c
            .post(url)
            .bearer_auth("s3cret-token-0123456789")
            .header("content-type", "Application/JSON; charset=utf-8")
            .body(b.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{url}");
    }
    let (_, m) = get_json(&c, &format!("{}/metrics", srv.base)).await;
    assert!(
        m.as_str()
            .unwrap()
            .contains("loa_batches_rejected_total{status=\"415\"} 4"),
        "{m}"
    );
    srv.stop().await;
}
