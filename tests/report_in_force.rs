//! The version in force, end to end: the collector (real HTTP, real SQLite, the real plan cache
//! and the real schedule versions, its clock injected) holds a ward's schedule; version 1 is
//! published in October, November's records come in (each naming version 1), and November's
//! CSV, XLSX and JSON are taken. Version 2 — other slots — is published on 05/12/2026 at 09:00:
//! November's exports are the same afterwards (the CSV byte for byte; the XLSX's sheets and
//! the JSON but for its generation time), and December's plan is version 1's before 09:00 on
//! the 5th and version 2's from then on.

mod collector_common;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use collector_common::*;
use loa::clock::ManualClock;
use loa::collector::http::HttpConfig;
use loa::collector::plans::PlanCache;
use loa::collector::versions::VersionsConfig;
use loa::wire::Outcome;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// Debian's Python (its standard `zipfile`), by full path as tests/collector_xlsx.rs runs it.
const PYTHON: &str = "/usr/bin/python3";

const V1: &str = "id = \"phuong-a\"\nname = \"Phường A\"\nkind = \"ward\"\narea_code = \"21100\"\n\n[[slots]]\nid = \"sang\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n";

/// Version 2: the morning slot moves to 07:00 and an evening one is added.
fn v2() -> String {
    format!(
        "{}\n[[slots]]\nid = \"chieu\"\ncron = \"0 18 * * *\"\nplay = [\"jingle.ogg\"]\n",
        V1.replace("0 6 * * *", "0 7 * * *")
    )
}

/// 2026-`m`-`d` `h`:`min` local (UTC+7).
fn local(m: u32, d: u32, h: u32, min: u32) -> DateTime<FixedOffset> {
    tz().with_ymd_and_hms(2026, m, d, h, min, 0).unwrap()
}

async fn put_schedule(c: &reqwest::Client, base: &str, text: &str) -> serde_json::Value {
    let r = c
        .put(format!(
            "{base}/api/v1/stations/phuong-a/schedule?note=th%E1%BB%AD"
        ))
        .header("content-type", "application/toml")
        .body(text.to_string())
        .send()
        .await
        .unwrap();
    let st = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(st, 201, "{body}");
    body
}

async fn bytes(c: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

/// The export's JSON without its generation time (the one thing that says when it was taken).
fn json_sans_time(b: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
    v.as_object_mut().unwrap().remove("generated_at");
    v
}

/// SHA-256 of every part of an XLSX but its document properties (which carry the time the
/// workbook was written), by name.
fn xlsx_parts(dir: &Path, name: &str, b: &[u8]) -> String {
    let file = dir.join(name);
    std::fs::write(&file, b).unwrap();
    let out = Command::new(PYTHON)
        .args([
            "-c",
            "import hashlib, sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             for n in sorted(z.namelist()):\n\
             \x20   if n != 'docProps/core.xml':\n\
             \x20       print(n, hashlib.sha256(z.read(n)).hexdigest())\n",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("xl/worksheets/sheet2.xml"), "{s}");
    s
}

/// The planned rows of December's CSV as (day, time, slot, schedule version cell).
fn december_rows(csv: &[u8]) -> Vec<(u32, String, String)> {
    let text = String::from_utf8(csv.to_vec()).unwrap();
    text.lines()
        .filter(|l| l.starts_with("phuong-a,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let day: u32 = f[3][..2].parse().unwrap();
            (day, f[4].to_string(), f[6].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_schedule_leaves_last_months_report_unchanged() {
    let site = CollectorSite::new(&[&TestStation::new("phuong-a", 1)]);
    let mut a = TestStation::new("phuong-a", 1);
    let dir = site.dir.path();
    let tree = dir.join("collector/library/tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg"),
        tree.join("jingle.ogg"),
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(local(10, 25, 12, 0).with_timezone(&Utc)));
    let plans = Arc::new(PlanCache::open(&site.db, 1).unwrap());
    let config = HttpConfig {
        versions: VersionsConfig {
            managed_schedules: Some(dir.join("collector/schedules")),
            library_tree: Some(tree.clone()),
        },
        ..Default::default()
    };
    let srv = start_with(&site.registry, &site.db, plans, config, clock.clone()).await;
    let c = client();
    let base = srv.base.clone();

    // Version 1 in October.
    assert_eq!(put_schedule(&c, &base, V1).await["version"], 1);

    // November aired under version 1: every morning but the 10th and the 20th (no record).
    clock.set(local(12, 3, 12, 0).with_timezone(&Utc));
    let mut recs = Vec::new();
    for day in 1..=30 {
        if day == 10 || day == 20 {
            continue;
        }
        let when = local(11, day, 6, 0);
        let plan = a.planned("sang", when);
        let mut rec = a.unsigned(Some(&plan), when, Outcome::Aired, 600.0, 150);
        rec.schedule_version = Some(1);
        recs.push(a.sign_next(&rec));
    }
    let (st, v) = post(
        &c,
        &format!("{base}/api/v1/stations/phuong-a/records"),
        serde_json::to_vec(&batch(&recs)).unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");

    // November's report once its plan is built (the plan cache probes the new audio first).
    let nov = |ext: &str| format!("{base}/api/v1/reports/2026-11.{ext}");
    let mut csv_text = String::new();
    for _ in 0..150 {
        csv_text = String::from_utf8(bytes(&c, &nov("csv")).await).unwrap();
        if csv_text
            .lines()
            .filter(|l| l.starts_with("phuong-a,"))
            .count()
            == 30
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows: Vec<&str> = csv_text
        .lines()
        .filter(|l| l.starts_with("phuong-a,"))
        .collect();
    assert_eq!(rows.len(), 30, "{csv_text}");
    assert!(
        csv_text
            .lines()
            .next()
            .unwrap()
            .ends_with(",Phiên bản lịch"),
        "{csv_text}"
    );
    // The aired rows name version 1; the two without a record name none.
    assert_eq!(rows.iter().filter(|l| l.ends_with(",1")).count(), 28);
    assert_eq!(rows.iter().filter(|l| l.ends_with(',')).count(), 2);
    let xlsx_before = xlsx_parts(dir, "before.xlsx", &bytes(&c, &nov("xlsx")).await);
    let json_before = json_sans_time(&bytes(&c, &nov("json")).await);
    assert!(
        json_before["stations"][0]["plan_note"].is_null(),
        "{json_before}"
    );

    // Version 2 on 05/12 at 09:00: the morning at 07:00, and an evening slot.
    clock.set(local(12, 5, 9, 0).with_timezone(&Utc));
    assert_eq!(put_schedule(&c, &base, &v2()).await["version"], 2);

    // December: version 1's 06:00 on the 1st to the 5th; version 2's 18:00 from the 5th and
    // its 07:00 from the 6th (07:00 on the 5th was before it was published). 5 + 1 + 2 × 26.
    let dec = format!("{base}/api/v1/reports/2026-12.csv");
    let mut rows = Vec::new();
    for _ in 0..150 {
        rows = december_rows(&bytes(&c, &dec).await);
        if rows.len() == 58 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rows.len(), 58, "{rows:?}");
    for (day, time, slot) in &rows {
        let want = match (time.as_str(), slot.as_str()) {
            ("06:00:00", "sang") => *day <= 5,
            ("07:00:00", "sang") => *day >= 6,
            ("18:00:00", "chieu") => *day >= 5,
            _ => false,
        };
        assert!(want, "December row {day} {time} {slot}: {rows:?}");
    }

    // The plan cache has rebuilt November too (its schedule file changed): the same report.
    clock.set(local(12, 20, 12, 0).with_timezone(&Utc));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        String::from_utf8(bytes(&c, &nov("csv")).await).unwrap(),
        csv_text,
        "November's CSV changed after version 2"
    );
    assert_eq!(
        xlsx_parts(dir, "after.xlsx", &bytes(&c, &nov("xlsx")).await),
        xlsx_before,
        "November's XLSX changed after version 2"
    );
    assert_eq!(
        json_sans_time(&bytes(&c, &nov("json")).await),
        json_before,
        "November's JSON changed after version 2"
    );
    srv.stop().await;
}
