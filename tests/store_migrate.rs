//! `loa store migrate` end to end, the real binary: a city's collector on SQLite, filled through
//! its HTTP API (signed batches from three stations over March, heartbeats) and the real
//! `loa user` (an auditor, their token, the audit entries), moved into a fresh PostgreSQL
//! database; a collector on PostgreSQL then gives the same monthly CSV (byte for byte) and XLSX
//! (cell for cell, read by Debian's openpyxl as tests/collector_xlsx.rs does; the zip carries a
//! creation time), the auditor's token still works, new rows take new numbers; a second move
//! into the filled database is refused naming a table, and a source record whose hash was
//! altered stops the move naming its station and seq. Also: an older SQLite file is brought up
//! to date first, and flags other than SQLite → PostgreSQL are refused naming the flag.
//!
//! PostgreSQL is needed whatever `LOA_TEST_DB` says: the server at `LOA_TEST_PG_URL` (default
//! `postgres://root:loa@127.0.0.1:5432/postgres`, a role that may CREATE DATABASE).

mod collector_common;

use collector_common::*;
use loa::clock::ManualClock;
use loa::collector::db::{Conn, Location, params};
use loa::collector::http::HttpConfig;
use loa::wire::Outcome;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

/// Debian's Python with openpyxl, by full path as tests/collector_xlsx.rs runs it.
const PYTHON: &str = "/usr/bin/python3";

/// Every sheet's cells as text.
const DUMP_XLSX: &str = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
print(json.dumps({n: [[("" if v is None else str(v)) for v in row] for row in wb[n].iter_rows(values_only=True)] for n in wb.sheetnames}))
"#;

/// A fresh PostgreSQL database's URL; fails at once, saying what is needed, when the server
/// does not answer.
fn fresh_pg() -> String {
    let admin = std::env::var("LOA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://root:loa@127.0.0.1:5432/postgres".to_string());
    if let Err(e) = Conn::open(&Location::Postgres(admin.clone())) {
        panic!(
            "this test moves a database into PostgreSQL and needs a server at {} \
             (LOA_TEST_PG_URL; a role that may CREATE DATABASE): {e}. Start it with \
             `pg_ctlcluster 15 main start`.",
            Location::Postgres(admin.clone()).display()
        );
    }
    loa::collector::db::testing::fresh_pg_database(&admin)
}

fn loa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn migrate(from: &str, to: &str) -> Output {
    loa(&["store", "migrate", "--from", from, "--to", to])
}

async fn get_bytes(c: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

fn xlsx_cells(dir: &Path, name: &str, bytes: &[u8]) -> serde_json::Value {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", DUMP_XLSX])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Three stations, two planned airings a day over March's first 28 days, each with a record
/// (every few an exception), and their plans.
fn month_of_records() -> (
    Vec<TestStation>,
    FixedPlans,
    Vec<Vec<loa::wire::SignedRecord>>,
) {
    let mut stations = vec![
        TestStation::new("phuong-a", 11),
        TestStation::new("phuong-b", 22),
        TestStation::new("xa-c", 33),
    ];
    let mut plans = FixedPlans::default();
    let mut records = Vec::new();
    for (n, st) in stations.iter_mut().enumerate() {
        let planned: Vec<_> = (1..=28)
            .flat_map(|d| [(d, 5), (d, 17)])
            .map(|(d, h)| st.planned(if h == 5 { "sang" } else { "chieu" }, at(d, h)))
            .collect();
        let mut recs = Vec::new();
        for (i, p) in planned.iter().enumerate() {
            let (outcome, secs) = match (i + n) % 9 {
                3 => (Outcome::Missed, 0.0),
                5 => (Outcome::Partial, 300.0),
                7 => (Outcome::Failed, 0.0),
                _ => (Outcome::Aired, 600.0),
            };
            recs.push(st.record(Some(p), p.at, outcome, secs, (i as i64 % 4) * 20_000));
        }
        plans.0.insert(st.id.clone(), planned);
        records.push(recs);
    }
    (stations, plans, records)
}

/// Fill the collector at `base` through its API: every station's records in batches of 20,
/// and a heartbeat each.
async fn fill(base: &str, stations: &[TestStation], records: &[Vec<loa::wire::SignedRecord>]) {
    let c = client();
    for (st, recs) in stations.iter().zip(records) {
        for chunk in recs.chunks(20) {
            let (code, v) = post(
                &c,
                &format!("{base}/api/v1/stations/{}/records", st.id),
                serde_json::to_vec(&batch(chunk)).unwrap(),
            )
            .await;
            assert_eq!(code, 200, "{v}");
        }
        let (code, v) = post(
            &c,
            &format!("{base}/api/v1/stations/{}/heartbeat", st.id),
            serde_json::to_vec(&st.heartbeat(test_now(), 0)).unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{v}");
    }
}

/// The month's CSV and XLSX from the collector at `base`.
async fn exports(base: &str) -> (Vec<u8>, Vec<u8>) {
    let c = client();
    (
        get_bytes(&c, &format!("{base}/api/v1/reports/2019-03.csv")).await,
        get_bytes(&c, &format!("{base}/api/v1/reports/2019-03.xlsx")).await,
    )
}

fn ids(conn: &Conn, sql: &str) -> Vec<i64> {
    conn.query_map(sql, params![], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The summary line of `table`: its name, rows copied, rows verified.
fn summary_row(stdout: &str, table: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.first().is_some_and(|t| t == table))
        .unwrap_or_else(|| panic!("no summary line for {table}:\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_moves_to_postgresql_with_the_same_exports_tokens_and_numbers() {
    tools::require_python_module(PYTHON, "openpyxl", "python3-openpyxl");
    let dir = tempfile::tempdir().unwrap();
    let (stations, plans, records) = month_of_records();
    let reg = write_registry(dir.path(), &stations.iter().collect::<Vec<_>>());
    // SQLite whatever LOA_TEST_DB says: this is the database being moved.
    let db = dir.path().join("collector.db");
    let db_arg = db.to_str().unwrap();

    // A bulletin sent in 2020 and three push events, the last one gone: AUTOINCREMENT's counter
    // stays at 3 (on PostgreSQL the identity column is GENERATED ALWAYS).
    drop(loa::collector::Store::open(&db).unwrap());
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "INSERT INTO bulletins (id, envelope, title, priority, targets, audio_sha256,
                not_before_unix_ms, not_after_unix_ms, repeats, interval_secs, created_by,
                created_unix_ms)
             VALUES ('b-2020', '{}', 'Bão số 5', 'emergency', '[\"*\"]', 'x', 1577836800000,
                1577840400000, 1, 0, 'admin', 1577836800000);
             INSERT INTO push_events (kind, bulletin_id, created_unix_ms)
                VALUES ('bulletin', 'b-2020', 1577836800000), ('cancel', 'b-2020', 1577836900000),
                       ('cancel', 'b-2020', 1577837000000);
             DELETE FROM push_events WHERE seq = 3;",
        )
        .unwrap();
    }
    // An auditor and their token, through the real `loa user` (which writes the audit log).
    let out = loa(&[
        "user",
        "--db",
        db_arg,
        "add",
        "kiem-toan",
        "--role",
        "auditor",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = loa(&["user", "--db", db_arg, "token", "kiem-toan"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let auditor_token = text(&out.stdout).trim().to_string();

    let clock = Arc::new(ManualClock::new(test_now()));
    let srv = start(
        &reg,
        &db,
        plans.clone(),
        HttpConfig::default(),
        clock.clone(),
    )
    .await;
    fill(&srv.base, &stations, &records).await;
    let (csv_before, xlsx_before) = exports(&srv.base).await;
    srv.stop().await;
    assert!(
        text(&csv_before).contains("phuong-b"),
        "the CSV names the stations"
    );

    // The move.
    let pg = fresh_pg();
    let out = migrate(&format!("sqlite://{db_arg}"), &pg);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    println!("{stdout}");
    assert_eq!(summary_row(&stdout, "records"), ["records", "168", "168"]);
    assert_eq!(summary_row(&stdout, "heartbeats"), ["heartbeats", "3", "3"]);
    assert_eq!(
        summary_row(&stdout, "push_events"),
        ["push_events", "2", "2"]
    );
    assert_eq!(summary_row(&stdout, "users"), ["users", "2", "2"]);
    assert!(stdout.contains("Đã chuyển xong trong"), "{stdout}");
    assert!(!stdout.contains("Đã nâng lược đồ"), "{stdout}");
    assert!(
        !stdout.contains(":loa@"),
        "the password is never shown: {stdout}"
    );

    // A collector on PostgreSQL: the same exports; the auditor's token works.
    let pg_path = Path::new(&pg);
    let srv = start(
        &reg,
        pg_path,
        plans.clone(),
        HttpConfig::default(),
        clock.clone(),
    )
    .await;
    let (csv_after, xlsx_after) = exports(&srv.base).await;
    assert!(
        csv_after == csv_before,
        "the CSV changed:\n{}\n---\n{}",
        text(&csv_before),
        text(&csv_after)
    );
    assert_eq!(
        xlsx_cells(dir.path(), "after.xlsx", &xlsx_after),
        xlsx_cells(dir.path(), "before.xlsx", &xlsx_before)
    );
    let r = anon_client()
        .get(format!("{}/api/v1/reports/2019-03.csv", srv.base))
        .bearer_auth(&auditor_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), csv_before);
    let r = anon_client()
        .get(format!("{}/api/v1/reports/2019-03.csv", srv.base))
        .bearer_auth(format!("{auditor_token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    srv.stop().await;

    // A second move into the now filled database is refused, and writes nothing.
    let conn = Conn::open(&Location::Postgres(pg.clone())).unwrap();
    let users_before = ids(&conn, "SELECT id FROM users ORDER BY id");
    let out = migrate(db_arg, &pg);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bảng records"), "{stderr}");
    assert!(stderr.contains("không ghi gì vào đích"), "{stderr}");
    assert_eq!(ids(&conn, "SELECT COUNT(*) FROM records"), [168]);

    // New rows take numbers past the copied ones (identity sequences set after the copy).
    let audit_before = ids(&conn, "SELECT MAX(id) FROM audit_log")[0];
    let token_before = ids(&conn, "SELECT MAX(id) FROM api_tokens")[0];
    let out = loa(&["user", "--db", &pg, "add", "moi", "--role", "auditor"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = loa(&["user", "--db", &pg, "token", "moi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let users_after = ids(&conn, "SELECT id FROM users ORDER BY id");
    assert_eq!(users_after.len(), users_before.len() + 1);
    assert!(users_after.last() > users_before.last());
    assert!(ids(&conn, "SELECT MAX(id) FROM audit_log")[0] > audit_before);
    assert!(ids(&conn, "SELECT MAX(id) FROM api_tokens")[0] > token_before);
    assert_eq!(
        ids(&conn, "SELECT seq FROM push_events ORDER BY seq"),
        [1, 2]
    );
    let next = ids(
        &conn,
        "INSERT INTO push_events (kind, bulletin_id, created_unix_ms)
         VALUES ('cancel', 'b-2020', 0) RETURNING seq",
    );
    assert_eq!(next, [4], "3 was handed out on SQLite already");

    // A source record whose hash was altered stops the move, naming it.
    let corrupt = dir.path().join("corrupt.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute("VACUUM INTO ?1", [corrupt.to_str().unwrap()])
            .unwrap();
        let c = rusqlite::Connection::open(&corrupt).unwrap();
        let n = c
            .execute(
                "UPDATE records SET hash = ?1 WHERE station = 'phuong-b' AND seq = 17",
                ["0".repeat(64)],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let out = migrate(corrupt.to_str().unwrap(), &fresh_pg());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("trạm phuong-b, seq 17"), "{stderr}");
    assert!(stderr.contains("mã băm SHA-256"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_sqlite_file_is_brought_up_to_date_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (stations, plans, records) = month_of_records();
    let reg = write_registry(dir.path(), &stations.iter().collect::<Vec<_>>());
    let db = dir.path().join("collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let srv = start(
        &reg,
        &db,
        plans.clone(),
        HttpConfig::default(),
        clock.clone(),
    )
    .await;
    fill(&srv.base, &stations, &records).await;
    let (csv_before, _) = exports(&srv.base).await;
    srv.stop().await;
    // The same rows as a database of schema version 4 holds them (as tests/collector_reason.rs
    // makes one): migrations 5-13 run when the move opens it.
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
    let pg = fresh_pg();
    let out = migrate(db.to_str().unwrap(), &pg);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("Đã nâng lược đồ của tệp nguồn từ phiên bản 4 lên 13"),
        "{stdout}"
    );
    assert_eq!(summary_row(&stdout, "records"), ["records", "168", "168"]);
    let srv = start(&reg, Path::new(&pg), plans, HttpConfig::default(), clock).await;
    let (csv_after, _) = exports(&srv.base).await;
    srv.stop().await;
    assert!(csv_after == csv_before, "the CSV changed");
}

#[test]
fn only_sqlite_to_postgresql_is_taken_and_the_flag_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    drop(loa::collector::Store::open(&db).unwrap());
    let db = db.to_str().unwrap();
    let pg = "postgres://loa:bi-mat@127.0.0.1:1/loa";
    let other = dir.path().join("other.db");
    for (from, to, flag) in [
        (db, other.to_str().unwrap(), "--to"),
        (pg, pg, "--from"),
        (pg, db, "--from"),
    ] {
        let out = migrate(from, to);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{from} -> {to}: {stderr}");
        assert!(stderr.contains(flag), "{from} -> {to}: {stderr}");
        assert!(
            stderr.contains("chỉ chuyển từ SQLite sang PostgreSQL"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("bi-mat"),
            "a password is never shown: {stderr}"
        );
    }
    assert!(!other.exists(), "nothing is created for a refused --to");
    let missing = dir.path().join("nowhere.db");
    let out = migrate(missing.to_str().unwrap(), pg);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--from"),
        "{}",
        text(&out.stderr)
    );
    assert!(!missing.exists(), "a missing source is not created");
}
