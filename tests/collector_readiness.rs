//! Readiness at the centre, on a real collector (127.0.0.1:0, real SQLite, schedules published
//! through `PUT /api/v1/stations/{id}/schedule`) fed real signed heartbeats carrying
//! `SyncHealth`: a station holding the latest version with no file missing is ready for next
//! month; one missing files, or on an older version, is not, with an alert that turns urgent
//! (KHẨN) at 00:00 local three days before the month; a sync refusal shows as its Vietnamese
//! text and low free disk in Vietnamese numbers; an unmanaged station shows "—" and no
//! readiness alert. The status API carries the codes and numbers; the station page the same
//! facts; the heartbeat's sync state survives a restart.

mod collector_common;

use chrono::{DateTime, Utc};
use collector_common::{CollectorSite, FixedPlans, TestStation, client, get_json, post};
use loa::collector::http::HttpConfig;
use loa::reason::ReasonCode;
use loa::wire::{HEARTBEAT_VERSION, Heartbeat, SyncHealth};
use std::path::Path;

/// A one-slot schedule of station `id` over the library tree's `jingle.ogg`.
fn schedule(id: &str) -> String {
    format!(
        "id = \"{id}\"\nname = \"Phường\"\nkind = \"ward\"\narea_code = \"21100\"\n\n\
         [[slots]]\nid = \"sang\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n"
    )
}

async fn publish(c: &reqwest::Client, base: &str, id: &str, text: &str) -> u64 {
    let r = c
        .put(format!("{base}/api/v1/stations/{id}/schedule"))
        .header("content-type", "application/toml")
        .body(text.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["version"].as_u64().unwrap()
}

/// Post `s`'s signed heartbeat, sent now by the collector's clock, reporting `sync`.
async fn heartbeat(
    c: &reqwest::Client,
    base: &str,
    s: &TestStation,
    now: DateTime<Utc>,
    sync: Option<SyncHealth>,
) {
    let hb = Heartbeat {
        v: HEARTBEAT_VERSION,
        station: s.id.clone(),
        sent_at: now,
        now_airing: None,
        next_airing: None,
        backlog_records: 0,
        last_seq: 0,
        output: "null".into(),
        output_ok: true,
        clock_synced: Some(true),
        version: "test".into(),
        uptime_secs: 100,
        journal: None,
        sync,
    }
    .sign(&s.key)
    .unwrap();
    let (st, body) = post(
        c,
        &format!("{base}/api/v1/stations/{}/heartbeat", s.id),
        serde_json::to_vec(&hb).unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{body}");
}

fn health(active: u64, missing: u64) -> SyncHealth {
    SyncHealth {
        active_version: Some(active),
        pending_version: None,
        missing_files: missing,
        free_bytes: Some(20 << 30),
        last_error_code: None,
    }
}

/// `text` as the pages write it (minijinja escapes `/`).
fn html(text: &str) -> String {
    text.replace('/', "&#x2f;")
}

/// The table row of station `id` on the overview.
fn row<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<tr data-station=\"{id}\""))
        .unwrap_or_else(|| panic!("no row of {id} in {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</tr>").unwrap()]
}

/// The alert list's line of station `id` (`None`: no line).
fn alert_line<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    let list = &page[page.find("id=\"alerts\"")?..];
    let list = &list[..list.find("</ul>").unwrap()];
    let at = list.find(&format!("href=\"/stations/{id}\""))?;
    let line = &list[at..];
    Some(&line[..line.find("</li>").unwrap()])
}

async fn page(c: &reqwest::Client, url: &str) -> String {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_for_next_month_on_the_overview_the_station_page_and_the_api() {
    let ready = TestStation::new("phuong-san-sang", 1);
    let missing = TestStation::new("phuong-thieu-tep", 2);
    let refused = TestStation::new("phuong-tu-choi", 3);
    let unmanaged = TestStation::new("phuong-tu-quan", 4);
    let site = CollectorSite::new(&[&ready, &missing, &refused, &unmanaged]);
    let tree = site.dir.path().join("collector/library/tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg"),
        tree.join("jingle.ogg"),
    )
    .unwrap();
    // 28/12/2026 23:59 local (UTC+7): one minute before 00:00 on 29/12, three days before 01/2027.
    let early: DateTime<Utc> = "2026-12-28T16:59:00Z".parse().unwrap();
    site.clock.set(early);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let base = srv.base.clone();
    let c = client();
    for s in [&ready, &missing, &refused] {
        assert_eq!(publish(&c, &base, &s.id, &schedule(&s.id)).await, 1);
    }
    // A second version for one station: it still airs version 1.
    let v2 = schedule(&refused.id).replace("0 6 * * *", "0 7 * * *");
    assert_eq!(publish(&c, &base, &refused.id, &v2).await, 2);

    let report = |now| {
        let c = c.clone();
        let base = base.clone();
        let (ready, missing, refused, unmanaged) = (&ready, &missing, &refused, &unmanaged);
        async move {
            heartbeat(&c, &base, ready, now, Some(health(1, 0))).await;
            let mut m = health(1, 2);
            m.free_bytes = Some(512 << 20);
            heartbeat(&c, &base, missing, now, Some(m)).await;
            let mut r = health(1, 0);
            r.last_error_code = Some(ReasonCode::SyncCentreSignature);
            heartbeat(&c, &base, refused, now, Some(r)).await;
            heartbeat(&c, &base, unmanaged, now, None).await;
        }
    };
    report(early).await;

    let overview = page(&c, &format!("{base}/")).await;
    let ready_text = html("Sẵn sàng tháng 01/2027");
    let r = row(&overview, &ready.id);
    assert!(r.contains("<td class=\"version\">v1</td>"), "{r}");
    assert!(r.contains(&ready_text), "{r}");
    assert_eq!(alert_line(&overview, &ready.id), None, "{overview}");

    let r = row(&overview, &missing.id);
    assert!(r.contains("Chưa sẵn sàng: thiếu 2 tệp"), "{r}");
    let not_ready = html("Chưa sẵn sàng tháng 01/2027: thiếu 2 tệp");
    let line = alert_line(&overview, &missing.id).expect("an alert for missing files");
    assert!(line.contains(&not_ready), "{line}");
    assert!(
        !line.contains("KHẨN"),
        "not urgent before 29/12 00:00: {line}"
    );
    assert!(line.contains("Đĩa trạm còn trống 512,0 MB"), "{line}");

    let r = row(&overview, &refused.id);
    assert!(r.contains("v1 → v2 chưa nhận"), "{r}");
    assert!(r.contains("Chưa sẵn sàng: chưa nhận v2"), "{r}");
    let line = alert_line(&overview, &refused.id).expect("an alert for the refusal");
    assert!(
        line.contains(ReasonCode::SyncCentreSignature.vi()),
        "the refusal in Vietnamese: {line}"
    );

    let r = row(&overview, &unmanaged.id);
    assert!(r.contains("<td class=\"version\">—</td>"), "{r}");
    assert!(r.contains("<td class=\"readiness\">—</td>"), "{r}");
    assert_eq!(alert_line(&overview, &unmanaged.id), None, "{overview}");
    assert!(!overview.contains("id=\"urgent\""), "{overview}");

    // The status API: codes and numbers, no texts.
    let (_, v) = get_json(&c, &format!("{base}/api/v1/stations/{}", missing.id)).await;
    assert_eq!(v["latest_version"], 1, "{v}");
    assert_eq!(v["ready_next_month"], false, "{v}");
    assert_eq!(v["sync"]["missing_files"], 2, "{v}");
    assert_eq!(v["sync"]["free_bytes"], 512u64 << 20, "{v}");
    let (_, v) = get_json(&c, &format!("{base}/api/v1/stations/{}", ready.id)).await;
    assert_eq!(v["ready_next_month"], true, "{v}");
    let (_, all) = get_json(&c, &format!("{base}/api/v1/stations")).await;
    let of = |id: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        of(&refused.id)["sync"]["last_error_code"],
        "sync.centre_signature"
    );
    assert_eq!(of(&refused.id)["latest_version"], 2);
    assert!(of(&unmanaged.id)["latest_version"].is_null());
    assert!(of(&unmanaged.id)["ready_next_month"].is_null());

    // The station page shows the same facts.
    let sp = page(&c, &format!("{base}/stations/{}", missing.id)).await;
    assert!(sp.contains("Chưa sẵn sàng: thiếu 2 tệp"), "{sp}");
    assert!(sp.contains(&not_ready), "{sp}");
    let sp = page(&c, &format!("{base}/stations/{}", refused.id)).await;
    assert!(sp.contains("v1 → v2 chưa nhận"), "{sp}");
    assert!(sp.contains(ReasonCode::SyncCentreSignature.vi()), "{sp}");
    let sp = page(&c, &format!("{base}/stations/{}", ready.id)).await;
    assert!(sp.contains(&ready_text), "{sp}");

    // 00:00 local on 29/12: not ready is urgent, listed first; a ready station still has none.
    let late: DateTime<Utc> = "2026-12-28T17:00:00Z".parse().unwrap();
    site.clock.set(late);
    report(late).await;
    let overview = page(&c, &format!("{base}/")).await;
    assert!(overview.contains("id=\"urgent\""), "{overview}");
    let line = alert_line(&overview, &missing.id).unwrap();
    assert!(
        line.contains(&format!("KHẨN: {not_ready}")),
        "urgent from 29/12 00:00: {line}"
    );
    assert!(alert_line(&overview, &refused.id).unwrap().contains("KHẨN"));
    assert_eq!(alert_line(&overview, &ready.id), None);
    assert_eq!(alert_line(&overview, &unmanaged.id), None);

    // The station catches up: ready, its alert gone.
    let caught_up: DateTime<Utc> = "2026-12-28T17:01:00Z".parse().unwrap();
    site.clock.set(caught_up);
    heartbeat(&c, &base, &missing, caught_up, Some(health(1, 0))).await;
    let overview = page(&c, &format!("{base}/")).await;
    assert!(row(&overview, &missing.id).contains(&ready_text));
    assert_eq!(alert_line(&overview, &missing.id), None, "{overview}");

    // The heartbeat's sync state is stored with it: a restarted collector still shows it.
    srv.stop().await;
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let (_, v) = get_json(&c, &format!("{}/api/v1/stations/{}", srv.base, refused.id)).await;
    assert_eq!(v["sync"]["last_error_code"], "sync.centre_signature", "{v}");
    assert_eq!(v["sync"]["active_version"], 1, "{v}");
    assert_eq!(v["latest_version"], 2, "{v}");
    srv.stop().await;
}
