//! Reason codes on the wire (records of wire version 2), through a real collector over HTTP and a
//! real SQLite file: a version 2 record's code is what the database stores and what the CSV's
//! *Lý do* shows (even where its English text alone would read as another code); version 1 records
//! are still accepted and coded from their text; a code the collector does not know is refused
//! with 400 naming the field; and the exports of a database holding only version 1 records are
//! byte for byte what the build before codes produced (golden files in
//! `tests/fixtures/reason_v1/`, written by that build from the same fixture; the CSV's columns
//! appended since, such as *Phiên bản lịch*, aside).

mod collector_common;

use collector_common::*;
use ed25519_dalek::Signer;
use loa::clock::ManualClock;
use loa::collector::db::{Conn, Location, params};
use loa::collector::http::HttpConfig;
use loa::reason::ReasonCode;
use loa::wire::{Outcome, SignedRecord};
use std::path::Path;
use std::sync::Arc;

fn body(records: &[SignedRecord]) -> Vec<u8> {
    serde_json::to_vec(&batch(records)).unwrap()
}

/// `(seq, reason_code)` of every stored row of `station`, read from the database file.
fn stored_codes(db: &Path, station: &str) -> Vec<(u64, Option<String>)> {
    let conn = Conn::open(&Location::of_path(db)).unwrap();
    conn.query_map(
        "SELECT seq, reason_code FROM records WHERE station = ?1 ORDER BY seq",
        params![station],
        |r| Ok((r.get::<u64>(0)?, r.get(1)?)),
    )
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

async fn get_bytes(c: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

/// Sign `rec`'s JSON as it is, without the checks `AiringRecord::sign` makes (a station of
/// another build, or a forger with the key, can send anything).
fn sign_raw(st: &TestStation, json: String) -> SignedRecord {
    let hash = loa::wire::sha256_hex(json.as_bytes());
    let sig = st.key.sign(json.as_bytes());
    SignedRecord {
        hash,
        signature: base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            sig.to_bytes(),
        ),
        record: serde_json::value::RawValue::from_string(json).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_code_reaches_the_database_and_the_csv_and_version_1_is_still_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = TestStation::new("phuong-a", 31);
    let plan: Vec<_> = [(1, 5), (1, 17), (2, 5)]
        .iter()
        .map(|&(d, h)| a.planned(&format!("s{h}"), at(d, h)))
        .collect();
    let mut plans = FixedPlans::default();
    plans.0.insert(a.id.clone(), plan.clone());
    let reg = write_registry(dir.path(), &[&a]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let srv = start(
        &reg,
        &db,
        plans,
        HttpConfig::default(),
        Arc::new(ManualClock::new(test_now())),
    )
    .await;
    let c = client();
    let url = format!("{}/api/v1/stations/phuong-a/records", srv.base);

    // A station not yet upgraded (version 1: text only), then the same station upgraded: its
    // version 2 records chain to the version 1 record. The second one's English text matches no
    // phrase (alone it would read as `unknown`): the code it carries is what counts.
    let v1 = a.record_v1(Some(&plan[0]), plan[0].at, Outcome::Missed, 0.0, 0);
    let mut r = a.unsigned(Some(&plan[1]), plan[1].at, Outcome::Failed, 0.0, 0);
    r.reason = Some("symphonia: malformed frame header at byte 4096".into());
    r.reason_code = Some(ReasonCode::FailedDecoder);
    let decoder = a.sign_next(&r);
    let mut r = a.unsigned(Some(&plan[2]), plan[2].at, Outcome::Partial, 300.0, 0);
    r.reason = Some("hard stop at max_secs 900.000".into());
    r.reason_code = Some(ReasonCode::PartialHardStop);
    let hard_stop = a.sign_next(&r);
    assert!(v1.bytes().starts_with(r#"{"v":1,"#) && !v1.bytes().contains("reason_code"));
    assert!(decoder.bytes().starts_with(r#"{"v":2,"#));
    assert!(
        decoder
            .bytes()
            .contains(r#""reason_code":"failed.decoder""#),
        "the code is in the signed bytes: {}",
        decoder.bytes()
    );

    let (st, v) = post(&c, &url, body(&[v1, decoder, hard_stop])).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["accepted"], serde_json::json!([1, 2, 3]));
    assert_eq!(
        stored_codes(&db, "phuong-a"),
        vec![
            (1, Some("missed.station_down".into())),
            (2, Some("failed.decoder".into())),
            (3, Some("partial.hard_stop".into())),
        ]
    );

    let csv = get_bytes(&c, &format!("{}/api/v1/reports/2019-03.csv", srv.base)).await;
    let text = String::from_utf8(csv).unwrap();
    // The header (after the note of a month still running), then one row per planned
    // occurrence, in plan order (a text with a comma is quoted).
    let all: Vec<&str> = text.lines().collect();
    let header = all.iter().position(|l| l.contains("Lý do")).unwrap();
    let lines = &all[header..];
    let expected = [
        ReasonCode::MissedStationDown.vi(),
        ReasonCode::FailedDecoder.vi(),
        ReasonCode::PartialHardStop.vi(),
    ];
    assert_eq!(lines.len(), 1 + expected.len(), "{text}");
    for (line, vi) in lines[1..].iter().zip(expected) {
        assert!(line.contains(vi), "{vi} not in {line}");
    }
    assert!(!text.contains(ReasonCode::Unknown.vi()), "{text}");

    // The status shows the last record's stored code; the airings API serves version 2 records
    // with their code and version 1 records without one.
    let (_, s) = get_json(&c, &format!("{}/api/v1/stations/phuong-a", srv.base)).await;
    assert_eq!(s["last_airing"]["reason_code"], "partial.hard_stop");
    assert_eq!(
        s["last_airing"]["reason_text"],
        ReasonCode::PartialHardStop.vi()
    );
    let (_, air) = get_json(
        &c,
        &format!(
            "{}/api/v1/stations/phuong-a/airings?month=2019-03",
            srv.base
        ),
    )
    .await;
    let codes: Vec<_> = air["airings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["record"].get("reason_code").cloned())
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(serde_json::json!("failed.decoder")),
            Some(serde_json::json!("partial.hard_stop"))
        ]
    );

    // The JSON export carries both versions verbatim, and `loa verify` proves them.
    let json = get_bytes(&c, &format!("{}/api/v1/reports/2019-03.json", srv.base)).await;
    let verdict = loa::report::verify_export(std::str::from_utf8(&json).unwrap(), None);
    assert!(verdict.ok(), "{verdict:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_missing_or_misplaced_reason_code_is_refused_with_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestStation::new("phuong-a", 32);
    let reg = write_registry(dir.path(), &[&a]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let srv = start(
        &reg,
        &db,
        FixedPlans::default(),
        HttpConfig::default(),
        Arc::new(ManualClock::new(test_now())),
    )
    .await;
    let c = client();
    let url = format!("{}/api/v1/stations/phuong-a/records", srv.base);
    let missed = a.unsigned(None, at(1, 5), Outcome::Missed, 0.0, 0);

    let mut unknown = missed.clone();
    unknown.reason_code = Some(ReasonCode::parse("missed.solar_flare"));
    // `sign` refuses to produce it: a station of this build cannot send it.
    assert!(unknown.sign(&a.key).is_err());
    let mut collector_side = missed.clone();
    collector_side.reason_code = Some(ReasonCode::NoRecord);
    let mut missing = missed.clone();
    missing.reason_code = None;
    let mut on_v1 = missed.clone();
    on_v1.v = loa::wire::RECORD_VERSION_V1;
    for (what, rec, says) in [
        ("unknown", unknown, "missed.solar_flare"),
        ("collector-side", collector_side, "no_record"),
        ("missing", missing, "missing"),
        ("on a version 1 record", on_v1, "version 1"),
    ] {
        let signed = sign_raw(&a, serde_json::to_string(&rec).unwrap());
        let (st, v) = post(&c, &url, body(&[signed])).await;
        assert_eq!(st, 400, "{what}: {v}");
        let text = v.to_string();
        assert!(
            text.contains("field `reason_code`") && text.contains(says),
            "{what}: {text}"
        );
        assert_eq!(v["stored_through"], 0, "{what}: {v}");
        assert_eq!(v["rejected"][0]["code"], "refused.malformed", "{what}: {v}");
    }
    // Refusals carry their code too: another key's signature, another wire version.
    let mut good = missed.clone();
    good.reason_code = Some(ReasonCode::MissedStationDown);
    let forged = good.sign(&TestStation::new("x", 9).key).unwrap();
    let (st, v) = post(&c, &url, body(&[forged])).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["rejected"][0]["code"], "refused.bad_signature", "{v}");
    let mut v3 = good.clone();
    v3.v = 3;
    let (st, v) = post(
        &c,
        &url,
        body(&[sign_raw(&a, serde_json::to_string(&v3).unwrap())]),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["rejected"][0]["code"], "refused.wire_version", "{v}");
    assert!(stored_codes(&db, "phuong-a").is_empty());
    // The same record with a code of the table is stored.
    let mut good = missed;
    good.reason_code = Some(ReasonCode::MissedStationDown);
    let (st, v) = post(&c, &url, body(&[good.sign(&a.key).unwrap()])).await;
    assert_eq!(st, 200, "{v}");
    srv.stop().await;
}

/// The golden exports of [`march_fixture_v1`], written by the build before reason codes went on
/// the wire (main at fe62c1d, through this very sequence of requests).
fn golden(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reason_v1")
            .join(name),
    )
    .unwrap()
}

/// `csv` holds the golden CSV's bytes, each line extended only by columns appended since (tools
/// read the columns by position, so new ones go at the end: *Mã chương trình*, …).
fn same_csv_columns(csv: &[u8], golden: &[u8]) {
    let (csv, golden) = (
        String::from_utf8_lossy(csv),
        String::from_utf8_lossy(golden),
    );
    let (lines, want): (Vec<&str>, Vec<&str>) =
        (csv.split("\r\n").collect(), golden.split("\r\n").collect());
    assert_eq!(lines.len(), want.len(), "{csv}");
    for (i, (l, w)) in lines.iter().zip(&want).enumerate() {
        // *Thể loại* as exports word it since (`report::category_vi`: the example codes such as
        // `notice` in Vietnamese); the golden's rows have no quoted field.
        let worded;
        let w = if i > 1 && !w.contains('"') {
            let mut f: Vec<&str> = w.split(',').collect();
            if let Some(c) = f.get_mut(8) {
                *c = loa::report::category_vi(c);
            }
            worded = f.join(",");
            worded.as_str()
        } else {
            w
        };
        // The open-period note (line 0) is one field: it stays as it was.
        let extended =
            i > 0 && !w.is_empty() && l.strip_prefix(w).is_some_and(|t| t.starts_with(','));
        assert!(*l == w || extended, "line {i}:\n{l}\nwas\n{w}");
    }
}

/// CSV and JSON exports of the March fixture with version 1 records, from a collector on `db`.
async fn v1_exports(dir: &Path, db: &Path, post_records: bool) -> (Vec<u8>, Vec<u8>) {
    let (a, b, plans, ra, rb) = march_fixture_v1();
    let reg = write_registry(dir, &[&a, &b]);
    let srv = start(
        &reg,
        db,
        plans,
        HttpConfig::default(),
        Arc::new(ManualClock::new(test_now())),
    )
    .await;
    let c = client();
    if post_records {
        for (id, recs) in [("phuong-a", &ra), ("phuong-b", &rb)] {
            let url = format!("{}/api/v1/stations/{id}/records", srv.base);
            assert_eq!(post(&c, &url, body(recs)).await.0, 200);
        }
    }
    let csv = get_bytes(&c, &format!("{}/api/v1/reports/2019-03.csv", srv.base)).await;
    let json = get_bytes(&c, &format!("{}/api/v1/reports/2019-03.json", srv.base)).await;
    srv.stop().await;
    (csv, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_of_a_database_of_version_1_records_are_byte_identical_to_the_build_before() {
    let dir = tempfile::tempdir().unwrap();
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    // Stored by this build (codes filled at insert).
    let (csv, json) = v1_exports(dir.path(), &db, true).await;
    same_csv_columns(&csv, &golden("2019-03.csv"));
    assert_eq!(json, golden("2019-03.json"));
    // The same rows as a database of schema version 4 holds them (no code column), migrated
    // by this build: the backfill gives the same codes, the exports the same bytes.
    if loa::collector::db::testing::pg_admin_url().is_some() {
        println!(
            "the migration from schema version 4 runs on SQLite only: a PostgreSQL database \
             starts at the baseline schema and never held version 4"
        );
        return;
    }
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "ALTER TABLE records DROP COLUMN reason_code;
             ALTER TABLE records DROP COLUMN schedule_version;
             DROP INDEX records_bulletin;
             ALTER TABLE records DROP COLUMN bulletin_id;
             ALTER TABLE records DROP COLUMN bulletin_repeat;
             DROP TABLE bulletin_receipts;
             PRAGMA user_version = 4;",
        )
        .unwrap();
    }
    let (csv, json) = v1_exports(dir.path(), &db, false).await;
    same_csv_columns(&csv, &golden("2019-03.csv"));
    assert_eq!(json, golden("2019-03.json"));
    assert_eq!(
        stored_codes(&db, "phuong-b"),
        vec![
            (1, None),
            (2, Some("partial.shutdown".into())),
            (3, Some("failed.file_missing".into())),
            (4, None),
        ]
    );
}
