//! Bulletins in the monthly export (issue #15 item 5, docs/bulletins.md "In the monthly export";
//! docs/reports.md): a collector (real HTTP, real SQLite or PostgreSQL, its clock injected) holds
//! March 2019's plans and records of two wards; the month's CSV, XLSX and JSON are taken. The admin
//! then sends a bulletin with a text only (read by the real espeak-ng: synthetic), and the wards
//! ship signed records naming it (the wire's `bulletin` field, occurrence `bulletin:<id>#<repeat>`,
//! category `bulletin`): one aired, one failed, one skipped as expired. The month's exports again:
//! every compliance figure is unchanged (planned, aired, missed, unplanned, the ratio — the
//! bulletin airings are neither planned nor unplanned); the CSV's earlier rows are the same, each
//! with the new last column *Bản tin* empty; the bulletin rows name the bulletin by title, repeat
//! of count and "giọng đọc tổng hợp", with their outcome in Vietnamese; the XLSX has the same
//! column and the summary's bulletin figures; the JSON's totals count them apart. `loa export`
//! (offline, over the same database) lists them the same way and does not count them planned on
//! the stations' word.

mod collector_common;

use collector_common::*;
use loa::collector::http::HttpConfig;
use loa::collector::library::LibraryConfig;
use loa::reason::ReasonCode;
use loa::wire::{BulletinRef, Outcome, SignedRecord, Source};
use std::process::Command;

/// Debian's Python with openpyxl, by full path as tests/collector_xlsx.rs runs it.
const PYTHON: &str = "/usr/bin/python3";
const TITLE: &str = "Cảnh báo bão số 5";

async fn bytes(c: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

/// What an XLSX says that this test compares: each summary row's cells, and the airing sheet's
/// header and rows, as JSON.
fn xlsx_view(dir: &std::path::Path, name: &str, b: &[u8]) -> serde_json::Value {
    let file = dir.join(name);
    std::fs::write(&file, b).unwrap();
    let out = Command::new(PYTHON)
        .args([
            "-c",
            "import json, sys, openpyxl\n\
             wb = openpyxl.load_workbook(sys.argv[1])\n\
             rows = lambda ws: [[c for c in r] for r in ws.iter_rows(values_only=True)]\n\
             print(json.dumps({'summary': rows(wb['Tổng hợp']), 'airings': rows(wb['Chi tiết phát sóng']), 'exceptions': rows(wb['Bỏ lỡ - ngoài KH'])}, default=str))",
        ])
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

/// A bulletin airing's signed record: the wire's `bulletin` field and the contract's shape.
fn bulletin_record(
    st: &mut TestStation,
    id: &str,
    repeat: u32,
    outcome: Outcome,
    aired_secs: f64,
    code: Option<ReasonCode>,
) -> SignedRecord {
    let due = at(31, 12);
    let mut rec = st.unsigned(None, due, outcome, aired_secs, 0);
    rec.occurrence = Some(loa::bulletin::occurrence_key(id, repeat));
    rec.slot = None;
    rec.program = None;
    rec.category = "bulletin".into();
    rec.source = Source::File;
    rec.planned_secs = 9.0;
    rec.reason_code = code;
    rec.bulletin = Some(BulletinRef {
        id: id.into(),
        repeat,
        synthetic: true,
    });
    st.sign_next(&rec)
}

/// The totals the compliance report is made of (the bulletin counters left out).
fn compliance(t: &serde_json::Value) -> serde_json::Value {
    let mut t = t.clone();
    for k in ["bulletins", "bulletins_aired", "bulletin_secs"] {
        t.as_object_mut().unwrap().remove(k);
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulletin_airings_are_listed_in_the_month_and_change_no_compliance_figure() {
    collector_common::tools::require_tool("espeak-ng", "espeak-ng");
    collector_common::tools::require_python_module(PYTHON, "openpyxl", "python3-openpyxl");
    let (mut a, mut b, plans, ra, rb) = march_fixture();
    let site = CollectorSite::new(&[&a, &b]);
    let dir = site.dir.path();
    let config = HttpConfig {
        centre_key: Some(dir.join("centre-key")),
        library: Some(LibraryConfig {
            dir: dir.join("library"),
            max_upload_bytes: 64 << 20,
        }),
        ..HttpConfig::default()
    };
    let srv = site.start(plans, config).await;
    let c = client();
    let base = srv.base.clone();
    for (st, recs) in [(&a, &ra), (&b, &rb)] {
        let (s, v) = post(
            &c,
            &format!("{base}/api/v1/stations/{}/records", st.id),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let month = |ext: &str| format!("{base}/api/v1/reports/2019-03.{ext}");
    // The exports are taken once the month is over (no "not yet due" column); the bulletin is
    // sent on its last day.
    let april = at(31, 12).with_timezone(&chrono::Utc) + chrono::Duration::days(2);
    srv.clock.set(april);
    let csv_before = String::from_utf8(bytes(&c, &month("csv")).await).unwrap();
    let xlsx_before = xlsx_view(dir, "before.xlsx", &bytes(&c, &month("xlsx")).await);
    let json_before: serde_json::Value =
        serde_json::from_slice(&bytes(&c, &month("json")).await).unwrap();
    assert!(!csv_before.contains("Bản tin"), "{csv_before}");

    // The bulletin: a text only, read by espeak-ng.
    let now = test_now();
    srv.clock.set(now);
    let (s, sent) = post(
        &c,
        &format!("{base}/api/v1/bulletins"),
        serde_json::to_vec(&serde_json::json!({
            "title": TITLE,
            "priority": "emergency",
            "to": "all",
            "not_after": (now + chrono::Duration::hours(6)).to_rfc3339(),
            "repeats": 3,
            "interval_mins": 30,
            "text": "Bão số 5 sắp đổ bộ. Bà con khẩn trương sơ tán.",
        }))
        .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{sent}");
    assert_eq!(sent["synthetic"], true, "{sent}");
    let id = sent["id"].as_str().unwrap().to_string();

    // The wards' records of its airings.
    let ba = vec![
        bulletin_record(&mut a, &id, 1, Outcome::Aired, 9.0, None),
        bulletin_record(
            &mut a,
            &id,
            2,
            Outcome::Skipped,
            0.0,
            Some(ReasonCode::BulletinExpired),
        ),
    ];
    let bb = vec![bulletin_record(
        &mut b,
        &id,
        1,
        Outcome::Failed,
        0.0,
        Some(ReasonCode::FailedOutput),
    )];
    for (st, recs) in [(&a, &ba), (&b, &bb)] {
        let (s, v) = post(
            &c,
            &format!("{base}/api/v1/stations/{}/records", st.id),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }

    srv.clock.set(april);
    // CSV: the earlier rows as they were, each with an empty last cell; the header ends with
    // the new column; the bulletin rows name it.
    let csv = String::from_utf8(bytes(&c, &month("csv")).await).unwrap();
    let before: Vec<&str> = csv_before.lines().collect();
    let after: Vec<&str> = csv.lines().collect();
    assert_eq!(after[0], format!("{},Bản tin", before[0]));
    let earlier: Vec<String> = before[1..].iter().map(|l| format!("{l},")).collect();
    for l in &earlier {
        assert!(after.contains(&l.as_str()), "{l} missing from\n{csv}");
    }
    let bulletin_rows: Vec<&str> = after[1..]
        .iter()
        .copied()
        .filter(|l| !earlier.iter().any(|e| e == l))
        .collect();
    assert_eq!(bulletin_rows.len(), 3, "{csv}");
    let name = |k: u32| format!("\"{TITLE} (lần {k}/3, giọng đọc tổng hợp)\"");
    let row_a1 = bulletin_rows
        .iter()
        .find(|l| l.starts_with("phuong-a,") && l.ends_with(&name(1)))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(
        row_a1.contains(",bản tin,") && row_a1.contains(",Bản tin: đã phát,"),
        "{row_a1}"
    );
    assert!(
        row_a1.contains(&format!(",bulletin:{id}#1,")),
        "the occurrence stays in Mã lần phát: {row_a1}"
    );
    let row_a2 = bulletin_rows
        .iter()
        .find(|l| l.ends_with(&name(2)))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(
        row_a2.contains(",Bản tin: không phát,")
            && row_a2.contains(ReasonCode::BulletinExpired.vi()),
        "{row_a2}"
    );
    let row_b1 = bulletin_rows
        .iter()
        .find(|l| l.starts_with("phuong-b,"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(
        row_b1.contains(",\"Bản tin: lỗi, không phát được\","),
        "{row_b1}"
    );
    assert_eq!(
        csv.matches("Phát ngoài kế hoạch").count(),
        csv_before.matches("Phát ngoài kế hoạch").count(),
        "no bulletin airing counts as unplanned"
    );

    // JSON: each station's compliance totals as before; the bulletins counted apart.
    let json: serde_json::Value = serde_json::from_slice(&bytes(&c, &month("json")).await).unwrap();
    for (i, (aired, all)) in [(1, 2), (0, 1)].into_iter().enumerate() {
        let t0 = &json_before["stations"][i]["totals"];
        let t1 = &json["stations"][i]["totals"];
        assert!(t0.get("bulletins").is_none(), "{t0}");
        assert_eq!(compliance(t1), *t0, "station {i}");
        assert_eq!(t1["bulletins"], all, "{t1}");
        assert_eq!(t1["bulletins_aired"].as_u64().unwrap_or(0), aired, "{t1}");
    }
    assert_eq!(json["stations"][0]["totals"]["bulletin_secs"], 9.0);

    // XLSX: the summary's figures as before, the bulletin figures after them; the airing sheet
    // with the same last column; the failed and skipped airings among the exceptions.
    let x = xlsx_view(dir, "after.xlsx", &bytes(&c, &month("xlsx")).await);
    let summary = |v: &serde_json::Value| v["summary"].as_array().unwrap().clone();
    let (s0, s1) = (summary(&xlsx_before), summary(&x));
    assert_eq!(s0.len(), s1.len());
    assert_eq!(
        s1[2].as_array().unwrap()[13..16],
        [
            serde_json::json!("Bản tin (lần phát)"),
            serde_json::json!("Bản tin đã phát"),
            serde_json::json!("Thời lượng bản tin (phút)")
        ]
    );
    for (r0, r1) in s0.iter().zip(&s1) {
        let (r0, r1) = (r0.as_array().unwrap(), r1.as_array().unwrap());
        let figures = |r: &[serde_json::Value]| -> Vec<serde_json::Value> {
            r.iter().take(13).cloned().collect::<Vec<_>>()
        };
        assert_eq!(figures(r0), figures(r1), "{r0:?} / {r1:?}");
    }
    let city = s1
        .iter()
        .find(|r| r[0] == "Tổng cộng toàn thành phố")
        .unwrap();
    assert_eq!(city[13], 3.0);
    assert_eq!(city[14], 1.0);
    assert_eq!(city[15], 0.2, "9 s of bulletins, in minutes");
    let airings = x["airings"].as_array().unwrap();
    assert_eq!(airings[0].as_array().unwrap().last().unwrap(), "Bản tin");
    assert!(
        airings.iter().any(|r| r.as_array().unwrap().last().unwrap()
            == &serde_json::json!(format!("{TITLE} (lần 1/3, giọng đọc tổng hợp)"))),
        "{airings:?}"
    );
    let exceptions = x["exceptions"].as_array().unwrap();
    let bulletin_exceptions = exceptions.iter().filter(|r| r[8] == "bản tin").count();
    assert_eq!(bulletin_exceptions, 2, "{exceptions:?}");

    // `loa export`, offline over the same database: the same column, and the bulletin airings
    // not counted planned on the stations' word (these stations register no schedule file).
    let out = dir.join("loa-2019-03.csv");
    let run = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["export", "--month", "2019-03", "--format", "csv", "--db"])
        .arg(&site.db)
        .arg("--config")
        .arg(&site.registry)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("3 bulletin airings (1 aired)"), "{err}");
    // Without a plan: every record with an occurrence counts planned — 3 of a, 4 of b; the
    // bulletins none of it.
    assert!(err.contains(" 7 planned,"), "{err}");
    let offline = std::fs::read_to_string(&out).unwrap();
    assert!(offline.lines().next().unwrap().ends_with(",Bản tin"));
    assert!(offline.contains(&name(1)), "{offline}");
    srv.stop().await;
}
