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
    let state = AppState::new(
        registry,
        &dir.path().join("collector.db"),
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
