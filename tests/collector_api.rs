//! The collector's HTTP API against a real server on 127.0.0.1:0 and a real SQLite file.

mod collector_common;

use collector_common::*;
use loa::collector::http::HttpConfig;
use loa::wire::{Outcome, SignedRecord};
use serde_json::Value;
use std::path::PathBuf;

fn body(records: &[SignedRecord]) -> Vec<u8> {
    serde_json::to_vec(&batch(records)).unwrap()
}

fn seqs(v: &Value, field: &str) -> Vec<u64> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_is_idempotent_and_survives_a_restart() {
    let mut a = TestStation::new("phuong-a", 1);
    let site = CollectorSite::new(&[&a]);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let c = client();
    let url = format!("{}/api/v1/stations/phuong-a/records", srv.base);
    let recs: Vec<SignedRecord> = (1..=5)
        .map(|d| a.record(None, at(d, 5), Outcome::Aired, 600.0, 0))
        .collect();

    let (st, ack) = post(&c, &url, body(&recs[..3])).await;
    assert_eq!(st, 200, "{ack}");
    assert_eq!(seqs(&ack, "accepted"), vec![1, 2, 3]);
    assert_eq!(ack["stored_through"], 3);
    // The same batch again (a replay or a lost ack): acknowledged, not stored twice.
    let (st, ack) = post(&c, &url, body(&recs[..3])).await;
    assert_eq!(st, 200);
    assert_eq!(seqs(&ack, "duplicates"), vec![1, 2, 3]);
    assert!(seqs(&ack, "accepted").is_empty());

    srv.stop().await;
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let url = format!("{}/api/v1/stations/phuong-a/records", srv.base);
    // Overlapping batch after the restart: 3 is a duplicate, 4-5 new.
    let (st, ack) = post(&c, &url, body(&recs[2..])).await;
    assert_eq!(st, 200, "{ack}");
    assert_eq!(seqs(&ack, "duplicates"), vec![3]);
    assert_eq!(seqs(&ack, "accepted"), vec![4, 5]);
    assert_eq!(ack["stored_through"], 5);

    let (st, v) = get_json(
        &c,
        &format!(
            "{}/api/v1/stations/phuong-a/airings?month=2019-03",
            srv.base
        ),
    )
    .await;
    assert_eq!(st, 200);
    let airings = v["airings"].as_array().unwrap();
    assert_eq!(airings.len(), 5);
    assert_eq!(airings[4]["hash"], recs[4].hash.as_str());
    let (st, v) = get_json(
        &c,
        &format!(
            "{}/api/v1/stations/phuong-a/airings?from=2019-03-02&to=2019-03-03",
            srv.base
        ),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["airings"].as_array().unwrap().len(), 2);
    srv.stop().await;

    // The rows hold the exact bytes that were signed.
    use loa::collector::db::{Conn, Engine, Location, params};
    let conn = Conn::open(&Location::of_path(&site.db)).unwrap();
    let bytes: String = conn
        .query_row(
            "SELECT bytes FROM records WHERE station='phuong-a' AND seq=2",
            params![],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bytes, recs[1].bytes());
    // The schema version the collector left (read as is, not migrated by this test).
    let version_sql = match conn.engine() {
        Engine::Sqlite => "PRAGMA user_version",
        Engine::Postgres => "SELECT version FROM loa_schema",
    };
    let version: i64 = conn
        .query_row(version_sql, params![], |r| r.get(0))
        .unwrap();
    assert_eq!(version, loa::collector::store::SCHEMA_VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_are_refused_with_reasons_and_nothing_is_stored() {
    let mut a = TestStation::new("phuong-a", 1);
    let mut b = TestStation::new("phuong-b", 2);
    let site = CollectorSite::new(&[&a, &b]);
    let config = HttpConfig {
        max_body_bytes: 64 * 1024,
        ..HttpConfig::default()
    };
    let srv = site.start(FixedPlans::default(), config).await;
    let c = client();
    let url_a = format!("{}/api/v1/stations/phuong-a/records", srv.base);
    let ra: Vec<SignedRecord> = (1..=4)
        .map(|d| a.record(None, at(d, 5), Outcome::Aired, 600.0, 0))
        .collect();
    let rb: Vec<SignedRecord> = (1..=2)
        .map(|d| b.record(None, at(d, 5), Outcome::Aired, 600.0, 0))
        .collect();
    let (st, _) = post(&c, &url_a, body(&ra[..2])).await;
    assert_eq!(st, 200);

    // Unknown station: 401 telling the operator to register the key.
    let (st, v) = post(
        &c,
        &format!("{}/api/v1/stations/phuong-x/records", srv.base),
        body(&ra[2..3]),
    )
    .await;
    assert_eq!(st, 401);
    // The whole command, naming the registry this collector reads.
    let hint = format!(
        "loa register --config {} --station phuong-x --public-key",
        site.registry.display()
    );
    assert!(v["error"].as_str().unwrap().contains(&hint), "{v}");

    // b's records posted as a: another station's records → 403.
    let (st, v) = post(&c, &url_a, body(&rb)).await;
    assert_eq!(st, 403, "{v}");
    assert!(!v["rejected"].as_array().unwrap().is_empty());

    // a record claiming to be a's but signed with b's key → 403.
    let mut forged_station = TestStation::new("phuong-a", 2);
    forged_station.seq = 2;
    forged_station.prev = ra[1].hash.clone();
    let forged = forged_station.record(None, at(3, 5), Outcome::Aired, 600.0, 0);
    let (st, v) = post(&c, &url_a, body(std::slice::from_ref(&forged))).await;
    assert_eq!(st, 403, "{v}");
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("another key"),
        "{v}"
    );

    // Reordered batch → 400.
    let (st, v) = post(&c, &url_a, body(&[ra[3].clone(), ra[2].clone()])).await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("out of order"),
        "{v}"
    );

    // Broken chain against the stored seq 2 → 409.
    let mut other_chain = TestStation::new("phuong-a", 1);
    other_chain.seq = 2;
    other_chain.prev = "ab".repeat(32);
    let unlinked = other_chain.record(None, at(3, 5), Outcome::Aired, 600.0, 0);
    let (st, v) = post(&c, &url_a, body(std::slice::from_ref(&unlinked))).await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("chain"),
        "{v}"
    );

    // Same seq, different bytes → 409 conflict, and the good records of the batch are not stored.
    let mut rewrite = TestStation::new("phuong-a", 1);
    let different = rewrite.record(None, at(1, 6), Outcome::Aired, 1.0, 0);
    let (st, v) = post(&c, &url_a, body(&[different])).await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("conflict"),
        "{v}"
    );

    // Malformed bodies → 400 naming the field.
    let (st, v) = post(&c, &url_a, b"{\"records\": 5}".to_vec()).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("records"), "{v}");
    let mut bad: Value = serde_json::to_value(batch(&ra[2..3])).unwrap();
    bad["records"][0]["signature"] = Value::from(12);
    let (st, v) = post(&c, &url_a, serde_json::to_vec(&bad).unwrap()).await;
    assert_eq!(st, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("records[0].signature"),
        "{v}"
    );
    let (st, _) = post(&c, &url_a, b"not json".to_vec()).await;
    assert_eq!(st, 400);

    // Too large → 413.
    let (st, v) = post(&c, &url_a, vec![b' '; 200 * 1024]).await;
    assert_eq!(st, 413, "{v}");

    // After all that: still serving, and only the first two records are stored.
    let (st, v) = get_json(&c, &format!("{}/api/v1/stations/phuong-a", srv.base)).await;
    assert_eq!(st, 200);
    assert_eq!(v["stored_through"], 2);
    let (st, ack) = post(&c, &url_a, body(&ra[2..])).await;
    assert_eq!(st, 200, "{ack}");
    assert_eq!(seqs(&ack, "accepted"), vec![3, 4]);
    let metrics = c
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("loa_batches_rejected_total{status=\"409\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("loa_records_accepted_total 4"),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_gaps_are_accepted_shown_and_filled() {
    let mut a = TestStation::new("phuong-a", 1);
    let site = CollectorSite::new(&[&a]);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let c = client();
    let url = format!("{}/api/v1/stations/phuong-a/records", srv.base);
    let recs: Vec<SignedRecord> = (1..=6)
        .map(|d| a.record(None, at(d, 5), Outcome::Aired, 600.0, 0))
        .collect();
    assert_eq!(post(&c, &url, body(&recs[..2])).await.0, 200);
    let (st, ack) = post(&c, &url, body(&recs[4..])).await;
    assert_eq!(st, 200, "{ack}");
    assert_eq!(ack["stored_through"], 6);
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations/phuong-a", srv.base)).await;
    assert_eq!(v["gaps"], serde_json::json!([{"from": 3, "to": 4}]));

    // A seq 4 that does not link to the stored seq 5 is refused.
    let mut fork = TestStation::new("phuong-a", 1);
    fork.seq = 3;
    fork.prev = recs[2].hash.clone();
    let bad4 = fork.record(None, at(9, 5), Outcome::Aired, 600.0, 0);
    let (st, v) = post(&c, &url, body(&[recs[2].clone(), bad4])).await;
    assert_eq!(st, 409, "{v}");
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations/phuong-a", srv.base)).await;
    assert_eq!(v["gaps"], serde_json::json!([{"from": 3, "to": 4}]));

    let (st, ack) = post(&c, &url, body(&recs[2..4])).await;
    assert_eq!(st, 200, "{ack}");
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations/phuong-a", srv.base)).await;
    assert_eq!(v["gaps"], serde_json::json!([]));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_drive_online_status_and_ops_endpoints_answer() {
    let a = TestStation::new("phuong-a", 1);
    let b = TestStation::new("phuong-b", 2);
    let site = CollectorSite::new(&[&a, &b]);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let c = client();
    let hb = serde_json::to_vec(&a.heartbeat(test_now(), 7)).unwrap();
    let (st, v) = post(
        &c,
        &format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base),
        hb.clone(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // a's heartbeat posted as b's → 403; b's key unknown for a → 403.
    let (st, _) = post(
        &c,
        &format!("{}/api/v1/stations/phuong-b/heartbeat", srv.base),
        hb,
    )
    .await;
    assert_eq!(st, 403);
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations", srv.base)).await;
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "phuong-a");
    assert_eq!(list[0]["online"], true);
    assert_eq!(list[0]["backlog_records"], 7);
    assert_eq!(list[0]["now_airing"]["program"], "Chuyên mục CCHC");
    assert_eq!(list[0]["clock_synced"], true);
    // An older station reports no journal state: shown as unknown, no alert.
    assert_eq!(list[0]["journal"], serde_json::Value::Null);
    assert_eq!(list[1]["online"], false);

    // A station whose journal cannot be written: its own field and its own alert.
    let full = a.heartbeat_with_journal(
        test_now() + chrono::Duration::seconds(1),
        7,
        Some(loa::wire::JournalHealth {
            writable: false,
            held_records: 3,
            free_bytes: Some(524_288),
            error: Some("No space left on device (os error 28)".into()),
        }),
    );
    let (st, v) = post(
        &c,
        &format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base),
        serde_json::to_vec(&full).unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations/phuong-a", srv.base)).await;
    assert_eq!(v["journal"]["writable"], false, "{v}");
    assert_eq!(v["journal"]["held_records"], 3);
    assert_eq!(v["journal"]["free_bytes"], 524_288);
    assert_eq!(
        v["output_ok"], true,
        "the journal is not folded into the output: {v}"
    );
    let page = c
        .get(format!("{}/", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Nhật ký không ghi được — 3 bản ghi đang giữ trong bộ nhớ, còn trống 0,5 MB"),
        "{page}"
    );

    site.clock.advance(chrono::Duration::minutes(10));
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations/phuong-a", srv.base)).await;
    assert_eq!(v["online"], false);
    assert_eq!(v["heartbeat_age_secs"], 600);

    let (st, _) = get_json(&c, &format!("{}/healthz", srv.base)).await;
    assert_eq!(st, 200);
    let (st, v) = get_json(&c, &format!("{}/api/v1/openapi.json", srv.base)).await;
    assert_eq!(st, 200);
    assert!(
        v["paths"]["/api/v1/stations/{id}/records"].is_object(),
        "{v}"
    );
    let (st, _) = get_json(&c, &format!("{}/api/v1/reports/2019-13.csv", srv.base)).await;
    assert_eq!(st, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_exports_reconcile_and_verify_offline() {
    let (a, b, plans, ra, rb) = march_fixture();
    let site = CollectorSite::new(&[&a, &b]);
    let srv = site.start(plans, HttpConfig::default()).await;
    let c = client();
    assert_eq!(
        post(
            &c,
            &format!("{}/api/v1/stations/phuong-a/records", srv.base),
            body(&ra)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &c,
            &format!("{}/api/v1/stations/phuong-b/records", srv.base),
            body(&rb)
        )
        .await
        .0,
        200
    );

    let csv = c
        .get(format!("{}/api/v1/reports/2019-03.csv", srv.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(csv.starts_with("\u{feff}".as_bytes()));
    let text = String::from_utf8(csv.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The clock is on 31/03 12:30: March is not over, and the first line says so.
    assert!(
        lines[0].starts_with("\u{feff}Tháng chưa kết thúc — số liệu tính đến 12:30 31/03/2019"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("Giờ kế hoạch") && lines[1].contains("Lý do"));
    // 4 planned + 1 unplanned for a, 4 planned for b.
    assert_eq!(lines.len(), 2 + 5 + 4);
    assert!(
        text.contains("Phát trễ")
            && text.contains("Không có bản ghi")
            && text.contains(",Bỏ lỡ,Trạm ngừng hoạt động vào giờ phát,")
            && text.contains(",Phát thiếu thời lượng,Phát dở: trạm được tắt trong khi phát,")
            && text.contains(",\"Lỗi, không phát được\",Không phát được: thiếu tệp âm thanh,")
            && text.contains(",Không có bản ghi,Trạm không gửi bản ghi cho lần phát này,"),
        "{text}"
    );
    // No English reason reaches the export: the station's free text stays in the signed records.
    assert!(!text.contains("station was down") && !text.contains("shut down"));
    assert!(text.contains("Phát ngoài kế hoạch") && text.contains("Phát thiếu thời lượng"));

    let json = c
        .get(format!("{}/api/v1/reports/2019-03.json", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["stations"][0]["totals"]["late"], 1);
    assert_eq!(v["stations"][0]["totals"]["no_record"], 1);
    assert_eq!(v["stations"][1]["totals"]["short"], 1);
    assert_eq!(v["stations"][1]["totals"]["failed"], 1);
    // The records are the very bytes signed.
    assert!(json.contains(ra[0].bytes()));
    let registry = loa::collector::Registry::load(&site.registry).unwrap();
    assert!(loa::report::verify_export(&json, Some(&registry)).ok());

    // The year-to-date report holds the same March figures.
    let (st, y) = get_json(&c, &format!("{}/api/v1/reports/2019.json", srv.base)).await;
    assert_eq!(st, 200);
    assert_eq!(y["period"]["to"], "2019-03-31");
    assert_eq!(y["stations"][0]["records"].as_array().unwrap().len(), 4);

    // Offline, with the real binary: verified; then altered, truncated inside, and re-keyed.
    let bin = env!("CARGO_BIN_EXE_loa");
    let file = site.dir.path().join("2019-03.json");
    std::fs::write(&file, &json).unwrap();
    let out = std::process::Command::new(bin)
        .args(["verify"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let altered = json.replacen("\\\"aired_secs\\\":600.0", "\\\"aired_secs\\\":601.0", 1);
    let altered = if altered == json {
        json.replacen("\"aired_secs\":600.0", "\"aired_secs\":601.0", 1)
    } else {
        altered
    };
    assert_ne!(altered, json);
    let v = loa::report::verify_export(&altered, None);
    assert!(!v.ok());
    // Edit through the export's own types, which keep each record's bytes verbatim.
    let mut doc: loa::report::JsonExport = serde_json::from_str(&json).unwrap();
    doc.stations[1].records.remove(1);
    let dropped = serde_json::to_string(&doc).unwrap();
    std::fs::write(&file, &dropped).unwrap();
    let out = std::process::Command::new(bin)
        .args(["verify"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("sequence gap"), "{stdout}");
    // Keys swapped for another pair: the records no longer verify.
    let mut doc: loa::report::JsonExport = serde_json::from_str(&json).unwrap();
    assert!(loa::report::verify_export(&serde_json::to_string(&doc).unwrap(), None).ok());
    doc.stations[0].public_key = doc.stations[1].public_key.clone();
    assert!(!loa::report::verify_export(&serde_json::to_string(&doc).unwrap(), None).ok());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_registers_a_station_only_with_the_token() {
    let a = TestStation::new("phuong-a", 1);
    let mut n = TestStation::new("xa-moi", 3);
    let site = CollectorSite::new(&[&a]);
    let config = HttpConfig {
        admin_token: Some("s3cret-token-0123456789".into()),
        ..HttpConfig::default()
    };
    let srv = site.start(FixedPlans::default(), config).await;
    let c = client();
    let url = format!("{}/api/v1/admin/stations", srv.base);
    let entry = serde_json::to_vec(&n.raw()).unwrap();
    let r = anon_client()
        .post(&url)
        .body(entry.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .post(&url)
        .bearer_auth("wrong")
        .body(entry.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let mut bad = n.raw();
    bad.public_key = "nope".into();
    let r = c
        .post(&url)
        .bearer_auth("s3cret-token-0123456789")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&bad).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = c
        .post(&url)
        .bearer_auth("s3cret-token-0123456789")
        .header("content-type", "application/json")
        .body(entry)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["created"], true);
    let rec = n.record(None, at(1, 5), Outcome::Aired, 600.0, 0);
    let (st, v) = post(
        &c,
        &format!("{}/api/v1/stations/xa-moi/records", srv.base),
        body(&[rec]),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        loa::collector::Registry::load(&site.registry)
            .unwrap()
            .get("xa-moi")
            .is_some()
    );
    // The registration is in the audit log: who (the deprecated shared token), from where,
    // nothing before, the station after.
    let csv = c
        .get(format!("{}/audit.csv", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = csv
        .lines()
        .find(|l| l.contains("station_register"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(
        line.contains("\"admin-token\",\"127.0.0.1\",\"Đăng ký trạm\",\"station_register\",\"xa-moi\",\"\",\"tên: Phường xa-moi;"),
        "{line}"
    );
    assert!(line.contains(&n.public_key()), "{line}");
    srv.stop().await;
}

/// The admin API enrols through the same function as `loa register`, so it refuses what the CLI
/// refuses: a schedule outside the collector's directories, another station's schedule, a file
/// that is not a schedule — and writes nothing for any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_refuses_what_loa_register_refuses() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let a = TestStation::new("phuong-a", 1);
    let n = TestStation::new("phuong-tran-phu", 3);
    let site = CollectorSite::new(&[&a]);
    let before = std::fs::read_to_string(&site.registry).unwrap();
    let config = HttpConfig {
        admin_token: Some("s3cret-token-0123456789".into()),
        enrol_roots: vec![repo.join("schedules"), repo.join("audio")],
        ..HttpConfig::default()
    };
    let srv = site.start(FixedPlans::default(), config).await;
    let c = client();
    let url = format!("{}/api/v1/admin/stations", srv.base);
    let send = |entry: loa::collector::registry::RawStation| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let r = c
                .post(&url)
                .bearer_auth("s3cret-token-0123456789")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&entry).unwrap())
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.text().await.unwrap_or_default())
        }
    };
    let with = |schedule: Option<PathBuf>, audio: Option<PathBuf>| {
        let mut e = n.raw();
        e.schedule = schedule;
        e.audio_root = audio;
        e
    };
    let sched = repo.join("schedules/phuong-tran-phu.toml");
    // Outside: a copy of the very schedule in another directory; and /etc/passwd.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("phuong-tran-phu.toml");
    std::fs::copy(&sched, &copy).unwrap();
    for p in [copy, PathBuf::from("/etc/passwd")] {
        let (st, body) = send(with(Some(p.clone()), Some(repo.join("audio")))).await;
        assert_eq!(st, 400, "{p:?}: {body}");
        assert!(body.contains("outside the directories"), "{body}");
    }
    // Another station's schedule (inside the tree).
    let other = repo.join("schedules/xa-nghia-dong.toml");
    let (st, body) = send(with(Some(other), Some(repo.join("audio")))).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("not `phuong-tran-phu`"), "{body}");
    // Inside the registry's directory but not a schedule file.
    std::fs::write(site.dir.path().join("notes.txt"), "not a schedule").unwrap();
    let (st, body) = send(with(Some(PathBuf::from("notes.txt")), None)).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("not a .toml file"), "{body}");
    assert_eq!(
        std::fs::read_to_string(&site.registry).unwrap(),
        before,
        "nothing written"
    );
    // The same entry with the right schedule: stored, paths canonical.
    let (st, body) = send(with(Some(sched.clone()), Some(repo.join("audio")))).await;
    assert_eq!(st, 200, "{body}");
    let stored = loa::collector::Registry::load(&site.registry).unwrap();
    assert_eq!(
        stored
            .get("phuong-tran-phu")
            .and_then(|e| e.schedule.clone()),
        std::fs::canonicalize(&sched).ok()
    );
    srv.stop().await;
}
