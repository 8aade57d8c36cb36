//! The monthly report against a real schedule file (`schedules/phuong-le-hong-phong.toml` with the
//! sample audio): planned comes from `schedule::load` + `schedule::expand` through the registry.

mod collector_common;

use chrono::{NaiveDate, TimeZone, Utc};
use collector_common::*;
use loa::clock::{Clock, ManualClock};
use loa::collector::http::{AppState, HttpConfig, serve};
use loa::collector::registry::{RawRegistry, Registry};
use loa::report::SchedulePlans;
use loa::wire::Outcome;
use std::path::Path;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_plans_come_from_the_registered_schedule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut st = TestStation::new("phuong-le-hong-phong", 8);
    let mut raw = st.raw();
    raw.schedule = Some(root.join("schedules/phuong-le-hong-phong.toml"));
    raw.audio_root = Some(root.join("audio"));
    let reg_path = dir.path().join("collector.toml");
    std::fs::write(
        &reg_path,
        toml::to_string(&RawRegistry { station: vec![raw] }).unwrap(),
    )
    .unwrap();
    let registry = Registry::load(&reg_path).unwrap();

    // The plan as the station daemon would expand it.
    let (station, catalog) = loa::schedule::load(
        &root.join("schedules/phuong-le-hong-phong.toml"),
        &root.join("audio"),
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
    )
    .unwrap();
    let plan = loa::schedule::expand(
        &station,
        &catalog,
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    );
    assert!(
        plan.len() > 20,
        "expected weekday sessions, got {}",
        plan.len()
    );

    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap(),
    ));
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    provision_test_admin(&db);
    let state = AppState::new(
        registry,
        &db,
        clock.clone() as Arc<dyn Clock>,
        Arc::new(SchedulePlans),
        HttpConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));

    // The station aired the first ten planned airings, missed the eleventh, then went silent.
    let mut records = Vec::new();
    for (i, p) in plan.iter().take(11).enumerate() {
        let (outcome, aired) = if i == 10 {
            (Outcome::Missed, 0.0)
        } else {
            (Outcome::Aired, p.planned_secs)
        };
        let mut r = st.record(Some(p), p.at, outcome, aired, 0);
        // Keep the planned length of the real plan in the record.
        let mut rec = r.parse().unwrap();
        rec.planned_secs = p.planned_secs;
        st.seq -= 1;
        st.prev = rec.prev_hash.clone();
        r = rec.sign(&st.key).unwrap();
        st.seq += 1;
        st.prev = r.hash.clone();
        records.push(r);
    }
    let c = client();
    let (code, v) = post(
        &c,
        &format!("{base}/api/v1/stations/phuong-le-hong-phong/records"),
        serde_json::to_vec(&batch(&records)).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = get_json(&c, &format!("{base}/api/v1/reports/2026-11.json")).await;
    assert_eq!(code, 200);
    let s = &v["stations"][0];
    assert!(
        s["plan_note"].is_null(),
        "plan should load: {}",
        s["plan_note"]
    );
    assert_eq!(s["totals"]["planned"], plan.len());
    assert_eq!(s["totals"]["on_time"], 10);
    assert_eq!(s["totals"]["missed"], 1);
    assert_eq!(s["totals"]["no_record"], plan.len() - 11);
    assert_eq!(s["totals"]["unplanned"], 0);
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

/// Sign a record of the real plan `p` (its planned length kept in the record).
fn aired(st: &mut TestStation, p: &loa::schedule::PlannedAiring) -> loa::wire::SignedRecord {
    let r = st.record(Some(p), p.at, Outcome::Aired, p.planned_secs, 0);
    let mut rec = r.parse().unwrap();
    rec.planned_secs = p.planned_secs;
    let r = rec.sign(&st.key).unwrap();
    st.prev = r.hash.clone();
    r
}

/// A healthy new ward in the middle of the month, through the collector (HTTP, real schedule
/// file, the state's injected clock): what is still to come is "chưa đến giờ", not "no record";
/// compliance is 100 %; every view of the month says it is not over. Once the month is over, the
/// same occurrences without records are "no record".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_month_counts_airings_still_to_come_as_not_yet_due() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut st = TestStation::new("phuong-le-hong-phong", 8);
    let mut raw = st.raw();
    raw.schedule = Some(root.join("schedules/phuong-le-hong-phong.toml"));
    raw.audio_root = Some(root.join("audio"));
    let reg_path = dir.path().join("collector.toml");
    std::fs::write(
        &reg_path,
        toml::to_string(&RawRegistry { station: vec![raw] }).unwrap(),
    )
    .unwrap();
    let registry = Registry::load(&reg_path).unwrap();
    let (station, catalog) = loa::schedule::load(
        &root.join("schedules/phuong-le-hong-phong.toml"),
        &root.join("audio"),
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
    )
    .unwrap();
    let plan = loa::schedule::expand(
        &station,
        &catalog,
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    );
    assert!(plan.len() > 20, "{}", plan.len());
    // "Now" is one second before the middle occurrence: everything before it is due and aired.
    let mid = plan.len() / 2;
    let now = plan[mid].at.with_timezone(&Utc) - chrono::Duration::seconds(1);
    assert!(loa::reconcile::due_at(&plan[mid - 1]) <= now);
    let clock = Arc::new(ManualClock::new(now));
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    provision_test_admin(&db);
    let state = AppState::new(
        registry,
        &db,
        clock.clone() as Arc<dyn Clock>,
        Arc::new(SchedulePlans),
        HttpConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    let records: Vec<_> = plan[..mid].iter().map(|p| aired(&mut st, p)).collect();
    let c = client();
    let (code, v) = post(
        &c,
        &format!("{base}/api/v1/stations/phuong-le-hong-phong/records"),
        serde_json::to_vec(&batch(&records)).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let to_come = (plan.len() - mid) as u64;
    let note = "Tháng chưa kết thúc — số liệu tính đến";

    // Status API: this month's compliance counts only what is due.
    let (code, v) = get_json(&c, &format!("{base}/api/v1/stations/phuong-le-hong-phong")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["month"], "2026-11", "{v}");
    assert_eq!(v["month_compliance_pct"], 100.0, "{v}");

    // Dashboard month view: the note in its header, the rows still to come as such.
    let page = c
        .get(format!(
            "{base}/stations/phuong-le-hong-phong?month=2026-11"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(note), "{page}");
    assert!(page.contains("tỷ lệ 100,0 %"), "{page}");
    assert_eq!(
        page.matches("class=\"not_yet_due\"").count() as u64,
        to_come,
        "{page}"
    );
    // The legend names every outcome; no heat-map cell or airing row says "no record".
    assert!(!page.contains("<td class=\"cell no_record\""), "{page}");
    assert_eq!(
        page.matches("Không có bản ghi").count(),
        1,
        "only the legend: {page}"
    );
    assert!(page.contains("không có bản ghi 0 "), "{page}");

    // CSV: the note is the line before the headers; no row says "no record".
    let csv = c
        .get(format!("{base}/api/v1/reports/2026-11.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with(&format!("\u{feff}{note}")),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("Mã trạm,"), "{}", lines[1]);
    assert_eq!(lines.len(), 2 + plan.len());
    assert_eq!(csv.matches(",Chưa đến giờ,").count() as u64, to_come);
    assert!(!csv.contains("Không có bản ghi"));

    // JSON: the note, and the count apart.
    let (code, v) = get_json(&c, &format!("{base}/api/v1/reports/2026-11.json")).await;
    assert_eq!(code, 200);
    assert!(
        v["note"].as_str().unwrap().starts_with(note),
        "{}",
        v["note"]
    );
    let t = &v["stations"][0]["totals"];
    assert_eq!(t["planned"], plan.len());
    assert_eq!(t["not_yet_due"], to_come);
    assert_eq!(t["no_record"], 0);
    assert_eq!(t["on_time"], mid);

    // The month over: the same occurrences are "no record", no note anywhere.
    clock.set(Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 0).unwrap());
    let csv = c
        .get(format!("{base}/api/v1/reports/2026-11.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("\u{feff}Mã trạm,"), "{csv}");
    assert!(!csv.contains("Chưa đến giờ"));
    assert_eq!(csv.matches(",Không có bản ghi,").count() as u64, to_come);
    let (_, v) = get_json(&c, &format!("{base}/api/v1/reports/2026-11.json")).await;
    assert!(v.get("note").is_none(), "{}", v["note"]);
    assert!(v["stations"][0]["totals"].get("not_yet_due").is_none());
    let page = c
        .get(format!(
            "{base}/stations/phuong-le-hong-phong?month=2026-11"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(note), "{page}");
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
