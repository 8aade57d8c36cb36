//! The XLSX export opened by a real spreadsheet reader (Python openpyxl), its totals checked
//! against the database. Needs Debian's `/usr/bin/python3` with `python3-openpyxl`
//! (`scripts/deps.sh test` installs it); run by full path, so another Python earlier on `PATH`
//! (pyenv, a venv) can neither help nor hide a missing package.

mod collector_common;

use collector_common::*;
use loa::clock::ManualClock;
use loa::collector::db::{Conn, Location, params};
use loa::collector::http::HttpConfig;
use std::process::Command;
use std::sync::Arc;

/// Debian's Python (its `python3-openpyxl`), by full path: see the module doc.
const PYTHON: &str = "/usr/bin/python3";

const READ_SUMMARY: &str = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
out = {"sheets": wb.sheetnames, "rows": {}, "airings": 0, "exceptions": 0, "cells": []}
ws = wb[wb.sheetnames[0]]
for row in ws.iter_rows(values_only=True):
    vals = [v for v in row if v is not None]
    out["cells"].extend(str(v) for v in vals)
    if row and row[0] is not None and len(row) > 11 and isinstance(row[3], (int, float)):
        out["rows"][str(row[0])] = [row[i] for i in range(3, 13)]
out["airings"] = sum(1 for _ in wb[wb.sheetnames[1]].iter_rows(min_row=2, values_only=True))
out["exceptions"] = sum(1 for _ in wb[wb.sheetnames[2]].iter_rows(min_row=2, values_only=True))
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xlsx_opens_in_openpyxl_and_its_totals_match_the_database() {
    tools::require_python_module(PYTHON, "openpyxl", "python3-openpyxl");
    let dir = tempfile::tempdir().unwrap();
    let (a, b, plans, ra, rb) = march_fixture();
    let reg = write_registry(dir.path(), &[&a, &b]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let srv = start(&reg, &db, plans.clone(), HttpConfig::default(), clock).await;
    let c = client();
    for (id, recs) in [("phuong-a", &ra), ("phuong-b", &rb)] {
        let (st, v) = post(
            &c,
            &format!("{}/api/v1/stations/{id}/records", srv.base),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let resp = c
        .get(format!("{}/api/v1/reports/2019-03.xlsx", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.bytes().await.unwrap();
    srv.stop().await;
    let file = dir.path().join("2019-03.xlsx");
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", READ_SUMMARY])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["sheets"],
        serde_json::json!(["Tổng hợp", "Chi tiết phát sóng", "Bỏ lỡ - ngoài KH"])
    );
    let cells: Vec<String> = serde_json::from_value(v["cells"].clone()).unwrap();
    for sig in ["Người lập biểu", "Người kiểm tra", "Thủ trưởng đơn vị"] {
        assert!(
            cells.iter().any(|c| c == sig),
            "signature block {sig} missing"
        );
    }
    // The clock is on 31/03 12:30: March is not over; the summary says so under its title and
    // counts what is still to come in a column of its own.
    for c in [
        "Tháng chưa kết thúc — số liệu tính đến 12:30 31/03/2019",
        "Chưa đến giờ",
    ] {
        assert!(cells.iter().any(|x| x == c), "{c} missing: {cells:?}");
    }

    // Independent figures straight from the database file.
    let conn = Conn::open(&Location::of_path(&db)).unwrap();
    let count = |station: &str, outcome: &str| -> f64 {
        conn.query_row(
            "SELECT COUNT(*) FROM records WHERE station = ?1 AND outcome = ?2 AND occurrence IS NOT NULL",
            params![station, outcome],
            |r| r.get::<i64>(0),
        )
        .unwrap() as f64
    };
    let airtime = |station: &str| -> f64 {
        conn.query_row(
            "SELECT SUM(aired_secs) FROM records WHERE station = ?1",
            params![station],
            |r| r.get::<f64>(0),
        )
        .unwrap()
    };
    let planned = |id: &str| plans.0[id].len() as f64;
    let records = |id: &str| -> f64 {
        conn.query_row(
            "SELECT COUNT(*) FROM records WHERE station = ?1 AND occurrence IS NOT NULL",
            params![id],
            |r| r.get::<i64>(0),
        )
        .unwrap() as f64
    };
    let mut sum_planned = 0.0;
    for id in ["phuong-a", "phuong-b"] {
        let row: Vec<f64> = v["rows"][id]
            .as_array()
            .unwrap_or_else(|| panic!("no summary row for {id}: {v}"))
            .iter()
            .map(|x| x.as_f64().unwrap_or(f64::NAN))
            .collect();
        // planned, aired, on time, late, short, failed, missed, no record, compliance %, minutes
        assert_eq!(row[0], planned(id), "{id} planned");
        assert_eq!(
            row[1],
            count(id, "aired") + count(id, "partial"),
            "{id} aired"
        );
        assert_eq!(row[3] + row[2], count(id, "aired"), "{id} on time + late");
        assert_eq!(row[5], count(id, "failed"), "{id} failed");
        assert_eq!(row[6], count(id, "missed"), "{id} missed");
        assert_eq!(row[7], planned(id) - records(id), "{id} no record");
        assert!(
            (row[9] - airtime(id) / 60.0).abs() < 0.06,
            "{id} airtime {row:?}"
        );
        sum_planned += row[0];
    }
    let totals = v["rows"]["Tổng cộng toàn thành phố"].as_array().unwrap();
    assert_eq!(totals[0].as_f64().unwrap(), sum_planned);
    // Every planned occurrence plus the unplanned airing; exceptions: missed, failed, no record, unplanned.
    assert_eq!(v["airings"], 9);
    assert_eq!(v["exceptions"], 4);
}

const SHEET_ROWS: &str = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
print(json.dumps([[n, sum(1 for _ in wb[n].iter_rows(min_row=2, values_only=True))] for n in wb.sheetnames]))
"#;

/// Beyond Excel's row limit the airing sheets continue on `NAME (2)`, `NAME (3)`… (shown here
/// with a limit of 4 rows per sheet), and no row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airing_rows_beyond_the_sheet_limit_continue_on_numbered_sheets() {
    tools::require_python_module(PYTHON, "openpyxl", "python3-openpyxl");
    let dir = tempfile::tempdir().unwrap();
    let (a, b, plans, ra, rb) = march_fixture();
    let reg = write_registry(dir.path(), &[&a, &b]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let srv = start(&reg, &db, plans.clone(), HttpConfig::default(), clock).await;
    let c = client();
    for (id, recs) in [("phuong-a", &ra), ("phuong-b", &rb)] {
        let (st, v) = post(
            &c,
            &format!("{}/api/v1/stations/{id}/records", srv.base),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    srv.stop().await;
    let store = loa::collector::Store::open(&db).unwrap();
    let registry = loa::collector::Registry::load(&reg).unwrap();
    let period = loa::report::Period::parse("2019-03", test_now().date_naive()).unwrap();
    let report = loa::report::build(
        &store,
        &registry,
        &plans,
        &period,
        &loa::reconcile::Thresholds::default(),
        test_now(),
    )
    .unwrap();
    let file = dir.path().join("split.xlsx");
    std::fs::write(
        &file,
        loa::report::to_xlsx_with_sheet_rows(&report, 4).unwrap(),
    )
    .unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", SHEET_ROWS])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{PYTHON} could not read the split workbook: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 9 airing rows: 4 + 4 + 1; 4 exception rows fit on one sheet.
    assert_eq!(
        v,
        serde_json::json!([
            ["Tổng hợp", v[0][1]],
            ["Chi tiết phát sóng", 4],
            ["Chi tiết phát sóng (2)", 4],
            ["Chi tiết phát sóng (3)", 1],
            ["Bỏ lỡ - ngoài KH", 4]
        ])
    );
}
