//! The year-to-date DOCX report (`report::docx`) served by a real collector over a real SQLite
//! database holding most of a year of signed records from three stations, opened by a real Word
//! reader (Debian's python3-docx, by full path as in `collector_xlsx.rs`), its totals checked
//! against the database; and its bad inputs, each a Vietnamese JSON error.

mod collector_common;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use collector_common::*;
use loa::clock::ManualClock;
use loa::collector::db::{Conn, Location, params};
use loa::collector::http::HttpConfig;
use loa::schedule::PlannedAiring;
use loa::wire::{Outcome, SignedRecord};
use std::process::Command;
use std::sync::Arc;

/// Debian's Python (its `python3-docx`), by full path.
const PYTHON: &str = "/usr/bin/python3";

/// Every paragraph of the body and of every table cell, and every table as rows of cell texts.
const READ_DOCX: &str = r#"
import json, sys, docx
d = docx.Document(sys.argv[1])
paras = [p.text for p in d.paragraphs]
tables = []
for t in d.tables:
    rows = []
    for r in t.rows:
        cells = []
        for c in r.cells:
            cells.append(c.text)
            paras.extend(p.text for p in c.paragraphs)
        rows.append(cells)
    tables.append(rows)
fonts = sorted({r.font.name for p in d.paragraphs for r in p.runs if r.font.name})
print(json.dumps({"paragraphs": paras, "tables": tables, "fonts": fonts}))
"#;

fn local(m: u32, d: u32, h: u32) -> DateTime<FixedOffset> {
    tz().with_ymd_and_hms(2019, m, d, h, 30, 0).unwrap()
}

/// 14/11/2019 12:00 local: the office prepares the report due on 15/11.
fn now() -> DateTime<Utc> {
    local(11, 14, 12).with_timezone(&Utc) - chrono::Duration::minutes(30)
}

/// Three stations, each with six planned airings a month (days 1, 10, 20 at 05:30 and 17:30)
/// from January to November 2019, and records up to 10/11: mostly on time, some late, short,
/// failed, missed or without any record, varying by station and month; station c also aired
/// one unplanned notice in June.
fn year_fixture() -> (Vec<TestStation>, FixedPlans, Vec<Vec<SignedRecord>>) {
    let mut stations = vec![
        TestStation::new("phuong-a", 11),
        TestStation::new("phuong-b", 22),
        TestStation::new("xa-c", 33),
    ];
    let mut plans = FixedPlans::default();
    let mut records = Vec::new();
    for (si, st) in stations.iter_mut().enumerate() {
        let mut plan: Vec<PlannedAiring> = Vec::new();
        let mut recs = Vec::new();
        for m in 1..=11u32 {
            for (k, (d, h)) in [(1, 5), (1, 17), (10, 5), (10, 17), (20, 5), (20, 17)]
                .into_iter()
                .enumerate()
            {
                let p = st.planned(if h == 5 { "morning" } else { "evening" }, local(m, d, h));
                plan.push(p.clone());
                if local(m, d, h).with_timezone(&Utc) > now() {
                    continue;
                }
                // A pattern that differs by station, month and slot.
                let n = (si as u32 * 7 + m * 3 + k as u32) % 17;
                let r = match n {
                    0 => continue, // no record at all
                    1 => st.record(Some(&p), p.at, Outcome::Missed, 0.0, 0),
                    2 => st.record(Some(&p), p.at, Outcome::Failed, 0.0, 0),
                    3 => st.record(Some(&p), p.at, Outcome::Partial, 300.0, 0),
                    4 => st.record(Some(&p), p.at, Outcome::Aired, 600.0, 90_000),
                    _ => st.record(Some(&p), p.at, Outcome::Aired, 600.0, 200),
                };
                recs.push(r);
            }
            if si == 2 && m == 6 {
                recs.push(st.record(None, local(6, 15, 9), Outcome::Aired, 120.0, 0));
            }
        }
        plans.0.insert(st.id.clone(), plan);
        records.push(recs);
    }
    (stations, plans, records)
}

/// A Vietnamese count (`1.234`) as a number.
fn num(s: &str) -> u64 {
    s.replace('.', "")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {s:?}"))
}

/// Compliance the way the document writes it (`97,5 %`) from a numerator and denominator.
fn pct(n: u64, d: u64) -> String {
    let tenths = (1000.0 * n as f64 / d as f64).round() as u64;
    format!("{},{} %", tenths / 10, tenths % 10)
}

struct Served {
    site: tempfile::TempDir,
    db: std::path::PathBuf,
    srv: Running,
    plans: FixedPlans,
}

async fn serve_year() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let (stations, plans, records) = year_fixture();
    let refs: Vec<&TestStation> = stations.iter().collect();
    let reg = write_registry(dir.path(), &refs);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(now()));
    let srv = start(&reg, &db, plans.clone(), HttpConfig::default(), clock).await;
    let c = client();
    for (st, recs) in stations.iter().zip(&records) {
        let (code, v) = post(
            &c,
            &format!("{}/api/v1/stations/{}/records", srv.base, st.id),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{v}");
    }
    Served {
        site: dir,
        db,
        srv,
        plans,
    }
}

/// Download `path` and read it with python-docx.
async fn read_docx(base: &str, path: &str, dir: &std::path::Path) -> serde_json::Value {
    let resp = client().get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    let bytes = resp.bytes().await.unwrap();
    let file = dir.join("bao-cao.docx");
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", READ_DOCX])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-docx cannot open it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The figure tables (those headed by the month column), as rows of cells.
fn figure_tables(v: &serde_json::Value) -> Vec<Vec<Vec<String>>> {
    let tables: Vec<Vec<Vec<String>>> = serde_json::from_value(v["tables"].clone()).unwrap();
    tables
        .into_iter()
        .filter(|t| t.first().is_some_and(|h| h[0] == "Tháng"))
        .collect()
}

fn row<'a>(table: &'a [Vec<String>], label: &str) -> &'a [String] {
    table
        .iter()
        .find(|r| r[0] == label)
        .unwrap_or_else(|| panic!("no row {label}: {table:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn year_to_date_docx_opens_in_python_docx_and_its_totals_match_the_database() {
    tools::require_python_module(PYTHON, "docx", "python3-docx");
    let s = serve_year().await;
    let out = tempfile::tempdir().unwrap();
    let v = read_docx(&s.srv.base, "/api/v1/reports/2019-10.docx", out.path()).await;
    let text: Vec<String> = serde_json::from_value(v["paragraphs"].clone()).unwrap();
    let has = |t: &str| text.iter().any(|p| p.contains(t));
    for t in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "UBND THÀNH PHỐ QUẢNG NGÃI",
        "PHÒNG VĂN HÓA VÀ THÔNG TIN",
        "/BC-VHTT",
        "TP. Quảng Ngãi, ngày 14 tháng 11 năm 2019",
        "BÁO CÁO",
        "từ tháng 01 đến tháng 10 năm 2019",
        "Từ ngày 01/01/2019 đến ngày 31/10/2019",
        "Nơi nhận:",
        "TRƯỞNG PHÒNG",
        "Phường xa-c",
    ] {
        assert!(has(t), "`{t}` missing from the document: {text:#?}");
    }
    assert!(!has("chưa kết thúc"), "October is over: no open note");
    assert_eq!(v["fonts"], serde_json::json!(["Times New Roman"]));

    // Independent figures straight from the database file: January to October, local time.
    let from = local(1, 1, 0).timestamp() - 30 * 60;
    let to = local(11, 1, 0).timestamp() - 30 * 60;
    let conn = Conn::open(&Location::of_path(&s.db)).unwrap();
    let count = |station: Option<&str>, outcomes: &str| -> u64 {
        let sql = format!(
            "SELECT COUNT(*) FROM records WHERE occurrence IS NOT NULL AND outcome IN ({outcomes}) \
             AND scheduled_unix >= ?1 AND scheduled_unix < ?2 AND (CAST(?3 AS TEXT) IS NULL OR station = ?3)"
        );
        conn.query_row(&sql, params![from, to, station], |r| r.get::<i64>(0))
            .unwrap() as u64
    };
    let planned = |station: Option<&str>| -> u64 {
        s.plans
            .0
            .iter()
            .filter(|(id, _)| station.is_none_or(|x| x == id.as_str()))
            .flat_map(|(_, p)| p)
            .filter(|p| p.at.timestamp() >= from && p.at.timestamp() < to)
            .count() as u64
    };
    let tables = figure_tables(&v);
    assert_eq!(tables.len(), 4, "the city and three stations");
    let check = |table: &[Vec<String>], station: Option<&str>| {
        let total = row(table, "Cộng");
        let p = planned(station);
        // Aired: on time, late or short; on time or late count as done.
        let aired = count(station, "'aired','partial'");
        let done = count(station, "'aired'");
        assert_eq!(num(&total[1]), p, "{station:?} planned");
        assert_eq!(num(&total[2]), aired, "{station:?} aired");
        assert_eq!(num(&total[3]), p - aired, "{station:?} missed");
        assert_eq!(total[4], pct(done, p), "{station:?} compliance");
        // Ten month rows, which add up to the total.
        let months: Vec<&Vec<String>> = table[1..table.len() - 1].iter().collect();
        assert_eq!(months.len(), 10);
        assert_eq!(months[0][0], "Tháng 01");
        let sum: u64 = months.iter().map(|r| num(&r[2])).sum();
        assert_eq!(sum, aired);
        p
    };
    let city = check(&tables[0], None);
    let mut sum = 0;
    for (t, id) in tables[1..].iter().zip(["phuong-a", "phuong-b", "xa-c"]) {
        sum += check(t, Some(id));
    }
    assert_eq!(sum, city);
    assert!(
        count(None, "'missed','failed'") > 0 && count(None, "'partial'") > 0,
        "the fixture has every kind of outcome"
    );
    assert!(has("phát thêm 1 lần"), "the unplanned notice of June");

    // The year so far (to November, still running): the note says so, and the airings of 20/11
    // count as planned, not as missed.
    let v = read_docx(
        &s.srv.base,
        "/api/v1/reports/2019.docx?station=phuong-b&signer_name=Nguy%E1%BB%85n%20V%C4%83n%20A&number=125",
        out.path(),
    )
    .await;
    let text: Vec<String> = serde_json::from_value(v["paragraphs"].clone()).unwrap();
    let has = |t: &str| text.iter().any(|p| p.contains(t));
    for t in [
        "từ tháng 01 đến tháng 11 năm 2019",
        "Tháng chưa kết thúc — số liệu tính đến 12:00 14/11/2019",
        "Nguyễn Văn A",
        "Số: 125/BC-VHTT",
    ] {
        assert!(has(t), "`{t}` missing: {text:#?}");
    }
    let tables = figure_tables(&v);
    assert_eq!(tables.len(), 2, "the city and phuong-b only");
    let nov = row(&tables[1], "Tháng 11");
    assert_eq!(num(&nov[1]), 6);
    assert_eq!(
        num(&nov[1]) - num(&nov[2]) - num(&nov[3]),
        2,
        "20/11 not yet due"
    );
    s.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_docx_requests_get_vietnamese_json_errors() {
    let s = serve_year().await;
    let c = client();
    for (path, status, code, words) in [
        (
            "2019-13.docx",
            400,
            "report.bad_month",
            "Tháng `13` không hợp lệ",
        ),
        ("2019-00.docx", 400, "report.bad_month", "từ 01 đến 12"),
        ("19-10.docx", 400, "report.bad_period", "Kỳ báo cáo"),
        ("2019-12.docx", 400, "report.not_started", "chưa bắt đầu"),
        (
            "2018.docx",
            404,
            "report.no_data",
            "Năm 2018 không có số liệu",
        ),
        (
            "2019-10.docx?station=phuong-z",
            404,
            "report.unknown_station",
            "Không có trạm `phuong-z`",
        ),
        (
            "2019-10.docx?signer=x",
            400,
            "report.bad_parameter",
            "Tham số `signer`",
        ),
        (
            "2019-10.docx?agency=a%0Ab",
            400,
            "report.bad_parameter",
            "ký tự điều khiển",
        ),
    ] {
        let (st, v) = get_json(&c, &format!("{}/api/v1/reports/{path}", s.srv.base)).await;
        assert_eq!(st, status, "{path}: {v}");
        assert_eq!(v["code"], code, "{path}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(words), "{path}: {msg}");
    }
    // The collector is still serving.
    let (st, _) = get_json(&c, &format!("{}/healthz", s.srv.base)).await;
    assert_eq!(st, 200);
    s.srv.stop().await;
}

/// The issuer comes from `office.toml` beside the registry, read on every request: a file with
/// a typo is a 500 naming the file and the field (not a silent default), a good one is used, and
/// a query parameter overrides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_comes_from_office_toml_and_a_bad_one_is_named() {
    tools::require_python_module(PYTHON, "docx", "python3-docx");
    let s = serve_year().await;
    let office = s.site.path().join("office.toml");
    std::fs::write(&office, "agncy = \"Phòng VH-TT quận\"\n").unwrap();
    let c = client();
    let (st, v) = get_json(&c, &format!("{}/api/v1/reports/2019-10.docx", s.srv.base)).await;
    let shown: String = v.to_string().chars().take(300).collect();
    assert_eq!(st, 500, "{shown}");
    assert_eq!(v["code"], "report.bad_office_file");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("office.toml") && msg.contains("agncy") && msg.contains("không hợp lệ"),
        "{msg}"
    );
    std::fs::write(
        &office,
        "agency = \"Phòng Văn hóa - Thông tin quận\"\nplace = \"Quận Hải Châu\"\nrecipients = [\"UBND quận (b/c);\", \"Lưu: VT.\"]\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = read_docx(
        &s.srv.base,
        "/api/v1/reports/2019-10.docx?place=Qu%E1%BA%ADn%20S%C6%A1n%20Tr%C3%A0",
        out.path(),
    )
    .await;
    let text: Vec<String> = serde_json::from_value(v["paragraphs"].clone()).unwrap();
    let has = |t: &str| text.iter().any(|p| p.contains(t));
    for t in [
        "PHÒNG VĂN HÓA - THÔNG TIN QUẬN",
        "Quận Sơn Trà, ngày 14 tháng 11 năm 2019",
        "- UBND quận (b/c);",
        "- Lưu: VT.",
    ] {
        assert!(has(t), "`{t}` missing: {text:#?}");
    }
    assert!(!has("Quận Hải Châu"), "the parameter overrides the file");
    assert!(
        !has("Trung tâm Truyền thông"),
        "the file's recipients replace the default"
    );
    s.srv.stop().await;
}
