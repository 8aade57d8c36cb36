//! The collector's plan cache on a real server: plans and audio facts are computed at start-up
//! (or by the refresher when a file changes), never by a request. Requests after warm-up leave
//! the decode counter alone and still answer from the stored facts when the audio on disk is
//! replaced by garbage behind the collector's back (same size and mtime: nothing to notice).
//! A real change of the schedule or of an episode is picked up by the refresher.

mod collector_common;

use chrono::{FixedOffset, TimeZone, Utc};
use collector_common::{TestStation, client, get_json, provision_test_admin};
use loa::clock::{Clock, ManualClock};
use loa::collector::PlanCache;
use loa::collector::http::{AppState, HttpConfig, serve};
use loa::collector::registry::{RawRegistry, Registry};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn schedule(id: &str, slots: &[(&str, &str)]) -> String {
    let mut s = format!(
        "id = \"{id}\"\nname = \"Phường thử\"\nkind = \"ward\"\narea_code = \"21100\"\n\
         quiet_hours = [\"21:30-05:00\"]\nmax_session_minutes = 30\n\n\
         [[programs]]\nid = \"cchc\"\ncategory = \"cchc\"\nepisodes = \"ep/{{yyyy}}-{{mm}}.ogg\"\n"
    );
    for (slot, cron) in slots {
        s.push_str(&format!(
            "\n[[slots]]\nid = \"{slot}\"\ncron = \"{cron}\"\nfrom = 2026-11-01\nuntil = 2027-11-30\n\
             play = [\"program:cchc\"]\n"
        ));
    }
    s
}

const TWO: &[(&str, &str)] = &[("sang", "30 5 * * *"), ("chieu", "0 17 * * *")];

fn episodes(root: &Path) -> Vec<PathBuf> {
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    std::fs::create_dir_all(root.join("ep")).unwrap();
    let mut out = Vec::new();
    for i in 0..13u32 {
        let (y, m) = (2026 + ((10 + i) / 12) as i32, (10 + i) % 12 + 1);
        let f = root.join(format!("ep/{y}-{m:02}.ogg"));
        std::fs::copy(&tone, &f).unwrap();
        out.push(f);
    }
    out
}

/// Overwrite `f` with bytes that decode as nothing, keeping its size and modification time.
fn garble_in_place(f: &Path) {
    let meta = std::fs::metadata(f).unwrap();
    let mtime = meta.modified().unwrap();
    std::fs::write(f, vec![0x5a; meta.len() as usize]).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
    file.set_modified(mtime).unwrap();
}

async fn month_planned(c: &reqwest::Client, base: &str, id: &str) -> (u64, serde_json::Value) {
    let (st, v) = get_json(c, &format!("{base}/api/v1/stations/{id}")).await;
    assert_eq!(st, 200, "{v}");
    (v["month_planned"].as_u64().unwrap(), v["plan_note"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_decodes_audio_and_changes_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("audio");
    let eps = episodes(&root);
    let s = TestStation::new("phuong-a", 1);
    let sched = dir.path().join(format!("{}.toml", s.id));
    std::fs::write(&sched, schedule(&s.id, TWO)).unwrap();
    let mut raw = s.raw();
    raw.schedule = Some(sched.clone());
    raw.audio_root = Some(root.clone());
    let reg_path = dir.path().join("collector.toml");
    std::fs::write(
        &reg_path,
        toml::to_string(&RawRegistry { station: vec![raw] }).unwrap(),
    )
    .unwrap();
    let db = loa::collector::db::testing::test_db(dir.path(), "c.db");
    let now = FixedOffset::east_opt(7 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 11, 30, 23, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(now));
    let plans = Arc::new(PlanCache::open(&db, 1).unwrap());
    provision_test_admin(&db);
    let state = AppState::new(
        Registry::load(&reg_path).unwrap(),
        &db,
        clock.clone() as Arc<dyn Clock>,
        plans.clone(),
        HttpConfig::default(),
    )
    .unwrap();
    // Start-up decoded the one distinct content once (13 paths hashed).
    let decoded_at_start = plans.facts().decodes();
    assert_eq!(decoded_at_start, 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    let c = client();
    let pages = [
        "/".to_string(),
        format!("/stations/{}?month=2026-11", s.id),
        "/metrics".into(),
        "/api/v1/stations".into(),
        format!("/api/v1/stations/{}", s.id),
        "/api/v1/reports/2026-11.csv".into(),
        "/api/v1/reports/2026-11.xlsx".into(),
        "/api/v1/reports/2026-11.json".into(),
        "/api/v1/reports/2026-10.csv".into(),
    ];
    let fetch_all = |c: reqwest::Client, base: String| {
        let pages = pages.clone();
        async move {
            for p in &pages {
                let r = c.get(format!("{base}{p}")).send().await.unwrap();
                assert_eq!(r.status(), 200, "{p}");
                r.bytes().await.unwrap();
            }
        }
    };
    fetch_all(c.clone(), base.clone()).await;
    assert_eq!(
        plans.facts().decodes(),
        decoded_at_start,
        "a request decoded audio"
    );
    assert_eq!(plans.facts().hashes(), 13, "a request hashed audio");
    let (n, note) = month_planned(&c, &base, &s.id).await;
    assert_eq!(n, 60, "{note}");

    // The audio turns to garbage behind the collector's back (same size, same mtime): answers
    // still come from the stored facts, so no request read the audio.
    for f in &eps {
        garble_in_place(f);
    }
    fetch_all(c.clone(), base.clone()).await;
    let (planned, note) = month_planned(&c, &base, &s.id).await;
    assert_eq!((planned, note), (60, serde_json::Value::Null));
    assert_eq!(plans.facts().decodes(), decoded_at_start);

    // A real schedule change (one session a day) is picked up by the refresher.
    std::fs::write(&sched, schedule(&s.id, &TWO[..1])).unwrap();
    let mut seen = 0;
    for _ in 0..100 {
        seen = month_planned(&c, &base, &s.id).await.0;
        if seen == 30 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 30, "the changed schedule was not picked up");
    // So is a changed episode: November's becomes a real file again (new mtime): the refresher
    // hashes and decodes it, requests still do not.
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.wav");
    std::fs::copy(&tone, &eps[0]).unwrap();
    for _ in 0..100 {
        if plans.facts().decodes() > decoded_at_start {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(plans.facts().decodes(), decoded_at_start + 1);
    let d = plans.facts().decodes();
    fetch_all(c.clone(), base.clone()).await;
    assert_eq!(plans.facts().decodes(), d);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

/// Plans that count how often they are asked.
struct CountingPlans(std::sync::atomic::AtomicU64);

impl loa::report::PlanSource for CountingPlans {
    fn plan(
        &self,
        _: &loa::collector::StationEntry,
        _: &loa::report::Period,
    ) -> Result<Vec<loa::schedule::PlannedAiring>, String> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Vec::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_kept_between_requests_and_follows_ingest_and_heartbeats() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestStation::new("phuong-b", 2);
    let reg_path = collector_common::write_registry(dir.path(), &[&s]);
    let db = loa::collector::db::testing::test_db(dir.path(), "c.db");
    let clock = Arc::new(ManualClock::new(collector_common::test_now()));
    let plans = Arc::new(CountingPlans(Default::default()));
    provision_test_admin(&db);
    let state = AppState::new(
        Registry::load(&reg_path).unwrap(),
        &db,
        clock.clone() as Arc<dyn Clock>,
        plans.clone(),
        HttpConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    let c = client();
    let (_, v) = get_json(&c, &format!("{base}/api/v1/stations")).await;
    assert_eq!(v[0]["stored_through"], 0);
    let asked = plans.0.load(SeqCst);
    for p in ["/", "/metrics", "/api/v1/stations"] {
        let r = c.get(format!("{base}{p}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        plans.0.load(SeqCst),
        asked,
        "status was derived again per request"
    );
    // A stored batch and a heartbeat show at once.
    let rec = s.record(
        None,
        collector_common::at(31, 5),
        loa::wire::Outcome::Aired,
        600.0,
        0,
    );
    let (st, _) = collector_common::post(
        &c,
        &format!("{base}/api/v1/stations/{}/records", s.id),
        serde_json::to_vec(&collector_common::batch(&[rec])).unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let hb = s.heartbeat(collector_common::test_now(), 7);
    let (st, _) = collector_common::post(
        &c,
        &format!("{base}/api/v1/stations/{}/heartbeat", s.id),
        serde_json::to_vec(&hb).unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let (_, v) = get_json(&c, &format!("{base}/api/v1/stations")).await;
    assert_eq!(v[0]["stored_through"], 1);
    assert_eq!(v[0]["backlog_records"], 7);
    assert_eq!(v[0]["online"], true);
    // Time alone moves the heartbeat's age and the online flag.
    clock.advance(chrono::Duration::seconds(600));
    let (_, v) = get_json(&c, &format!("{base}/api/v1/stations")).await;
    assert_eq!(v[0]["online"], false);
    let metrics = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("loa_records_stored 1\n"), "{metrics}");
    assert!(
        metrics.contains("loa_station_backlog_records{station=\"phuong-b\"} 7\n"),
        "{metrics}"
    );
    assert!(metrics.contains("loa_stations_online 0\n"), "{metrics}");
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_status_turns_when_a_planned_airing_comes_due() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestStation::new("phuong-c", 3);
    let reg_path = collector_common::write_registry(dir.path(), &[&s]);
    let mut plans = collector_common::FixedPlans::default();
    // 13:30 local on the test day; the test clock says 12:30.
    plans.0.insert(
        s.id.clone(),
        vec![s.planned("chieu", collector_common::at(31, 13))],
    );
    let clock = Arc::new(ManualClock::new(collector_common::test_now()));
    let srv = collector_common::start(
        &reg_path,
        &loa::collector::db::testing::test_db(dir.path(), "c.db"),
        plans,
        HttpConfig::default(),
        clock.clone(),
    )
    .await;
    let c = client();
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations", srv.base)).await;
    assert_eq!(v[0]["month_planned"], 1);
    assert_eq!(v[0]["month_compliance_pct"], serde_json::Value::Null, "{v}");
    // Past its instant (13:35) but not its end: still not due.
    clock.advance(chrono::Duration::minutes(65));
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations", srv.base)).await;
    assert_eq!(v[0]["month_compliance_pct"], serde_json::Value::Null, "{v}");
    // Past its instant + length (13:45), with no record: due, and missed.
    clock.advance(chrono::Duration::minutes(10));
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations", srv.base)).await;
    assert_eq!(v[0]["month_compliance_pct"], 0.0, "{v}");
    srv.stop().await;
}

/// GET the overview as the fixtures' admin.
async fn overview(c: &reqwest::Client, base: &str) -> String {
    let r = c.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Next month's episode missing at the centre: the overview names the program and the month
/// (an alert, urgent from three days before the month starts), from the plan cache alone (no
/// request builds a plan); the file put in place clears it (the refresher notices); and after
/// the month turns, the new next month is built in the background and its missing episode shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_months_missing_episode_is_an_overview_alert() {
    let s = TestStation::new("phuong-a", 1);
    let site = collector_common::CollectorSite::new(&[&s]);
    let local = |y, mo, d, h| {
        FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, mo, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    site.clock.set(local(2026, 12, 5, 12));
    let root = site.dir.path().join("audio");
    let eps = episodes(&root);
    let jan = root.join("ep/2027-01.ogg");
    let kept = site.dir.path().join("2027-01.ogg");
    std::fs::rename(&jan, &kept).unwrap();
    let sched = site.dir.path().join("phuong-a.toml");
    std::fs::write(
        &sched,
        schedule(&s.id, TWO).replace(
            "category = \"cchc\"",
            "title = \"Chuyên mục Cải cách hành chính\"\ncategory = \"cchc\"",
        ),
    )
    .unwrap();
    let mut raw = s.raw();
    raw.schedule = Some(sched.clone());
    raw.audio_root = Some(root.clone());
    std::fs::write(
        &site.registry,
        toml::to_string(&RawRegistry { station: vec![raw] }).unwrap(),
    )
    .unwrap();
    let plans = Arc::new(PlanCache::open(&site.db, 1).unwrap());
    let srv = collector_common::start_with(
        &site.registry,
        &site.db,
        plans.clone(),
        HttpConfig::default(),
        site.clock.clone(),
    )
    .await;
    let c = client();
    // As the page escapes it (minijinja escapes `/`).
    let text = "Thiếu số tháng 01&#x2f;2027 của Chuyên mục Cải cách hành chính";
    // Start-up built next month's plan: the first overview already has the alert, and asking
    // again builds nothing.
    let page = overview(&c, &srv.base).await;
    let builds = plans.builds();
    assert!(page.contains(text), "{page}");
    assert!(
        !page.contains("KHẨN") && !page.contains("id=\"urgent\""),
        "{page}"
    );
    for _ in 0..3 {
        overview(&c, &srv.base).await;
    }
    assert_eq!(plans.builds(), builds, "an overview request built a plan");

    // 29/12 00:00 local, three days before 01/01: urgent.
    site.clock.set(local(2026, 12, 29, 0));
    let page = overview(&c, &srv.base).await;
    assert!(page.contains(&format!("KHẨN: {text}")), "{page}");
    assert!(page.contains("id=\"urgent\""), "{page}");

    // The episode arrives at the centre: the refresher rebuilds, the alert goes.
    std::fs::rename(&kept, &jan).unwrap();
    let mut page = String::new();
    for _ in 0..100 {
        page = overview(&c, &srv.base).await;
        if !page.contains(text) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !page.contains(text),
        "the episode put in place still alerts: {page}"
    );

    // The month turns (30/01/2027): February's plan was never built; the overview queues it for
    // the refresher and shows its missing episode once built (urgent: two days before).
    std::fs::remove_file(&eps[3]).unwrap();
    site.clock.set(local(2027, 1, 30, 12));
    let feb = "KHẨN: Thiếu số tháng 02&#x2f;2027 của Chuyên mục Cải cách hành chính";
    for _ in 0..100 {
        page = overview(&c, &srv.base).await;
        if page.contains(feb) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(page.contains(feb), "{page}");
    srv.stop().await;
}
