//! Reports scoped to one station (`station=`) over real HTTP against the real router and a real
//! SQLite file: an operator of ward A downloads A's month CSV/XLSX/JSON, year-to-date exports
//! and DOCX, and each holds exactly the city export's rows of A; the same operator asking for
//! ward B or for the whole city is refused (403) with nothing served; an auditor gets the city
//! and any one station; a bad `station=` is a clear Vietnamese error naming the field.

mod collector_common;

use collector_common::*;
use loa::collector::accounts::{self, Role};
use loa::collector::http::HttpConfig;
use std::io::Read;
use std::path::Path;
use std::process::Command;

const PYTHON: &str = "/usr/bin/python3";

/// Every sheet of an XLSX as rows of cell texts (openpyxl, a real reader).
const DUMP_XLSX: &str = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
print(json.dumps({n: [[("" if v is None else str(v)) for v in row] for row in wb[n].iter_rows(values_only=True)] for n in wb.sheetnames}))
"#;

fn token(db: &Path, name: &str, role: Role, stations: &[&str]) -> String {
    let mut c = loa::collector::Store::open(db).unwrap().into_connection();
    let st: Vec<String> = stations.iter().map(|s| s.to_string()).collect();
    accounts::add_user(&mut c, name, role, &st, "mat-khau-that-dai-1", test_now()).unwrap();
    let u = accounts::find_user(&c, name).unwrap().unwrap();
    accounts::create_token(&c, &u, "thử", test_now()).unwrap().0
}

async fn fetch(base: &str, path: &str, token: &str) -> (u16, Vec<u8>) {
    let r = anon_client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.bytes().await.unwrap().to_vec())
}

/// The data lines of a CSV export (after its note and header lines), and its header lines.
fn csv_parts(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let head = lines
        .iter()
        .position(|l| l.contains("Mã trạm"))
        .expect("header line");
    (lines[..=head].to_vec(), lines[head + 1..].to_vec())
}

fn xlsx_sheets(dir: &Path, name: &str, bytes: &[u8]) -> serde_json::Value {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", DUMP_XLSX])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The rows of every sheet that name `id` (its airing and summary rows).
fn rows_of(sheets: &serde_json::Value, id: &str) -> Vec<(String, Vec<serde_json::Value>)> {
    let mut out = Vec::new();
    for (name, rows) in sheets.as_object().unwrap() {
        for row in rows.as_array().unwrap() {
            if row.as_array().unwrap().iter().any(|c| c == id) {
                out.push((name.clone(), row.as_array().unwrap().clone()));
            }
        }
    }
    out
}

fn docx_text(bytes: &[u8]) -> String {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut xml = String::new();
    zip.by_name("word/document.xml")
        .unwrap()
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_downloads_their_wards_reports_and_nothing_else() {
    tools::require_python_module(PYTHON, "openpyxl", "python3-openpyxl");
    let (a, b, plans, ra, rb) = march_fixture();
    let site = CollectorSite::new(&[&a, &b]);
    let op = token(&site.db, "op-a", Role::Operator, &["phuong-a"]);
    let auditor = token(&site.db, "kiem", Role::Auditor, &[]);
    let op_ab = token(&site.db, "op-ab", Role::Operator, &["phuong-a", "phuong-b"]);
    let srv = site.start(plans, HttpConfig::default()).await;
    let base = srv.base.clone();
    for (id, recs) in [("phuong-a", &ra), ("phuong-b", &rb)] {
        let (st, v) = post(
            &client(),
            &format!("{base}/api/v1/stations/{id}/records"),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }

    for label in ["2019-03", "2019"] {
        // CSV: the same header lines, and exactly the city's lines of ward A.
        let (st, city) = fetch(&base, &format!("/api/v1/reports/{label}.csv"), &auditor).await;
        assert_eq!(st, 200);
        let (st, mine) = fetch(
            &base,
            &format!("/api/v1/reports/{label}.csv?station=phuong-a"),
            &op,
        )
        .await;
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&mine));
        let (city_head, city_rows) = csv_parts(&city);
        let (head, rows) = csv_parts(&mine);
        assert_eq!(head, city_head);
        let city_a: Vec<String> = city_rows
            .iter()
            .filter(|l| l.starts_with("phuong-a,"))
            .cloned()
            .collect();
        assert_eq!(city_a.len(), 5, "{city_rows:?}");
        assert!(city_rows.iter().any(|l| l.starts_with("phuong-b,")));
        assert_eq!(rows, city_a, "{label}");

        // JSON: ward A's section, verbatim (totals, records, bounds).
        let (_, city) = fetch(&base, &format!("/api/v1/reports/{label}.json"), &auditor).await;
        let (st, mine) = fetch(
            &base,
            &format!("/api/v1/reports/{label}.json?station=phuong-a"),
            &op,
        )
        .await;
        assert_eq!(st, 200);
        let registry = loa::collector::Registry::load(&site.registry).unwrap();
        let verdict =
            loa::report::verify_export(std::str::from_utf8(&mine).unwrap(), Some(&registry));
        assert!(verdict.ok(), "{verdict:?}");
        let city: serde_json::Value = serde_json::from_slice(&city).unwrap();
        let mine: serde_json::Value = serde_json::from_slice(&mine).unwrap();
        let city_a: Vec<&serde_json::Value> = city["stations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["id"] == "phuong-a")
            .collect();
        assert_eq!(mine["stations"].as_array().unwrap().len(), 1);
        assert_eq!(&mine["stations"][0], city_a[0]);
        assert_eq!(mine["stations"][0]["totals"]["late"], 1);
        assert_eq!(mine["period"], city["period"]);

        // XLSX: every row naming ward A, in every sheet, as in the city's workbook; none of B.
        let dir = tempfile::tempdir().unwrap();
        let (_, city) = fetch(&base, &format!("/api/v1/reports/{label}.xlsx"), &auditor).await;
        let (st, mine) = fetch(
            &base,
            &format!("/api/v1/reports/{label}.xlsx?station=phuong-a"),
            &op,
        )
        .await;
        assert_eq!(st, 200);
        let city = xlsx_sheets(dir.path(), "city.xlsx", &city);
        let mine = xlsx_sheets(dir.path(), "mine.xlsx", &mine);
        let city_a = rows_of(&city, "phuong-a");
        assert!(city_a.len() >= 6, "{city_a:?}");
        assert_eq!(rows_of(&mine, "phuong-a"), city_a, "{label}");
        assert!(rows_of(&mine, "phuong-b").is_empty());
        // Its total row is the station's, and says so.
        let cells = |v: &serde_json::Value| v.to_string();
        assert!(cells(&city).contains("Tổng cộng toàn thành phố"));
        assert!(
            cells(&mine).contains("Tổng cộng của trạm") && !cells(&mine).contains("toàn thành phố")
        );
        assert!(!rows_of(&city, "phuong-b").is_empty());
    }

    // The DOCX of ward A names the ward, not ward B.
    let (st, docx) = fetch(&base, "/api/v1/reports/2019.docx?station=phuong-a", &op).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&docx));
    let text = docx_text(&docx);
    assert!(text.contains("Phường phuong-a"), "{text}");
    assert!(!text.contains("phuong-b"));

    // Ward B, the whole city, or B smuggled in a second `station=`: 403, nothing served.
    for path in [
        "/api/v1/reports/2019-03.csv?station=phuong-b",
        "/api/v1/reports/2019-03.csv",
        "/api/v1/reports/2019-03.xlsx",
        "/api/v1/reports/2019-03.json?station=phuong-b",
        "/api/v1/reports/2019.csv",
        "/api/v1/reports/2019.docx",
        "/api/v1/reports/2019.docx?station=phuong-b",
        "/api/v1/reports/2019-03.csv?station=phuong-a&station=phuong-b",
    ] {
        let (st, body) = fetch(&base, path, &op).await;
        assert_eq!(st, 403, "{path}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("phuong-"), "{path}: {text}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["error_vi"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("trạm"),
            "{v}"
        );
    }

    // The reports page: the operator's picker holds ward A only, preselected, and links A's
    // downloads; ward B's page is the refusal page.
    let (st, page) = fetch(&base, "/reports", &op).await;
    let page = String::from_utf8(page).unwrap();
    assert_eq!(st, 200, "{page}");
    assert!(
        page.contains(r#"<option value="phuong-a" selected>"#),
        "{page}"
    );
    assert!(!page.contains("phuong-b") && !page.contains("Cả thành phố"));
    assert!(page.contains(r#"href="/api/v1/reports/2019-03.csv?station=phuong-a""#));
    assert!(page.contains(r#"href="/api/v1/reports/2019.docx?station=phuong-a""#));
    let (st, page) = fetch(&base, "/reports?station=phuong-b", &op).await;
    let page = String::from_utf8(page).unwrap();
    assert_eq!(st, 403);
    assert!(
        page.contains("Không được phép") && page.contains("Trạm này không thuộc quyền của bạn"),
        "{page}"
    );

    // An operator of two wards: both offered, neither chosen, no link until one is; the city
    // is still not theirs.
    let (st, page) = fetch(&base, "/reports", &op_ab).await;
    let page = String::from_utf8(page).unwrap();
    assert_eq!(st, 200);
    assert!(
        page.contains(r#"<option value="phuong-a">"#)
            && page.contains(r#"<option value="phuong-b">"#)
            && page.contains("Chọn một trạm")
            && !page.contains("/api/v1/reports/")
            && !page.contains("Cả thành phố"),
        "{page}"
    );
    let (st, page) = fetch(&base, "/reports?station=phuong-b", &op_ab).await;
    assert_eq!(st, 200);
    assert!(
        String::from_utf8(page)
            .unwrap()
            .contains(r#"href="/api/v1/reports/2019-03.csv?station=phuong-b""#)
    );
    assert_eq!(
        fetch(&base, "/api/v1/reports/2019-03.csv", &op_ab).await.0,
        403
    );

    // An auditor: the city by default (both wards offered), or any one station.
    let (st, page) = fetch(&base, "/reports", &auditor).await;
    let page = String::from_utf8(page).unwrap();
    assert_eq!(st, 200);
    assert!(page.contains("Cả thành phố") && page.contains(r#"value="phuong-b""#));
    assert!(page.contains(r#"href="/api/v1/reports/2019-03.csv""#));
    let (st, page) = fetch(&base, "/reports?station=phuong-b", &auditor).await;
    assert_eq!(st, 200);
    assert!(
        String::from_utf8(page)
            .unwrap()
            .contains(r#"href="/api/v1/reports/2019-03.xlsx?station=phuong-b""#)
    );
    let (st, csv) = fetch(
        &base,
        "/api/v1/reports/2019-03.csv?station=phuong-b",
        &auditor,
    )
    .await;
    assert_eq!(st, 200);
    let (_, rows) = csv_parts(&csv);
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|l| l.starts_with("phuong-b,")));

    // A bad `station=`: a clear error naming the field (JSON on the API, a page on /reports).
    for (path, code, status) in [
        (
            "/api/v1/reports/2019-03.csv?station=khong-co",
            "report.unknown_station",
            404,
        ),
        (
            "/api/v1/reports/2019.docx?station=khong-co",
            "report.unknown_station",
            404,
        ),
        (
            "/api/v1/reports/2019-03.json?station=",
            "report.bad_parameter",
            400,
        ),
        (
            "/api/v1/reports/2019-03.xlsx?station=phuong-a&station=phuong-b",
            "report.bad_parameter",
            400,
        ),
    ] {
        let (st, body) = fetch(&base, path, &auditor).await;
        assert_eq!(st, status, "{path}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], code, "{path}: {v}");
        assert_eq!(v["field"], "station", "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("`station`"), "{v}");
    }
    let (st, page) = fetch(&base, "/reports?station=khong-co", &auditor).await;
    let page = String::from_utf8(page).unwrap();
    assert_eq!(st, 404);
    assert!(
        page.contains("Không có trạm `khong-co`") && page.contains("tham số `station`"),
        "{page}"
    );
    srv.stop().await;
}
