//! The dashboard in a real headless Chromium (Debian package `chromium`): what the page shows,
//! and a screenshot kept under `$CARGO_TARGET_TMPDIR/collector_dashboard/`.

mod collector_common;

use collector_common::*;
use loa::clock::ManualClock;
use loa::collector::http::HttpConfig;
use std::path::Path;
use std::sync::Arc;

/// Render the collector page at `url` in Chromium. The page is fetched as the fixtures' admin
/// (a bearer token: the pages need a signed-in user, and Chromium takes no header on its
/// command line) and Chromium renders that very HTML from a file.
async fn chromium(profile: &Path, extra: &[String], url: &str) -> String {
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    let html = r.text().await.unwrap();
    let file = profile.join(format!("page-{}.html", html.len()));
    std::fs::write(&file, html).unwrap();
    let url = format!("file://{}", file.display());
    let mut cmd = tokio::process::Command::new(tools::require_tool("chromium", "chromium"));
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(&url)
    .kill_on_drop(true);
    let out = match tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("cannot run chromium: {e}"),
        Err(_) => panic!("chromium did not finish within 120 s"),
    };
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_every_station_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, plans, ra, rb) = march_fixture();
    let reg = write_registry(dir.path(), &[&a, &b]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let srv = start(&reg, &db, plans, HttpConfig::default(), clock).await;
    let c = client();
    for (id, recs) in [("phuong-a", &ra), ("phuong-b", &rb)] {
        let (st, _) = post(
            &c,
            &format!("{}/api/v1/stations/{id}/records", srv.base),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(st, 200);
    }
    let hb = serde_json::to_vec(&a.heartbeat(test_now(), 3)).unwrap();
    let (st, _) = post(
        &c,
        &format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base),
        hb,
    )
    .await;
    assert_eq!(st, 200);

    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(
        profile.path(),
        &["--dump-dom".into()],
        &format!("{}/", srv.base),
    )
    .await;
    assert!(dom.contains("1/2 trạm trực tuyến"), "{dom}");
    let row_a = dom
        .split("<tr data-station=\"phuong-a\"")
        .nth(1)
        .and_then(|s| s.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for phuong-a: {dom}"));
    assert!(row_a.contains("data-online=\"true\""), "{row_a}");
    assert!(row_a.contains("trực tuyến"), "{row_a}");
    assert!(row_a.contains("Chuyên mục CCHC"), "now airing: {row_a}");
    assert!(row_a.contains("Tin địa phương"), "next airing: {row_a}");
    assert!(row_a.contains("50,0 % (4 KH)"), "compliance: {row_a}");
    let row_b = dom
        .split("<tr data-station=\"phuong-b\"")
        .nth(1)
        .and_then(|s| s.split("</tr>").next())
        .unwrap();
    assert!(row_b.contains("mất kết nối"), "{row_b}");
    assert!(row_b.contains("chưa từng báo"), "{row_b}");

    let month = chromium(
        profile.path(),
        &["--dump-dom".into()],
        &format!("{}/stations/phuong-a?month=2019-03", srv.base),
    )
    .await;
    assert!(month.contains("Kế hoạch 4"), "{month}");
    assert!(
        month.contains("Phát trễ") && month.contains("Trạm ngừng hoạt động vào giờ phát"),
        "{month}"
    );
    // Reasons are codes shown in Vietnamese: the station's English detail is not on the page.
    assert!(!month.contains("station was down"), "{month}");
    assert!(month.contains("Không có bản ghi"), "{month}");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("collector_dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,900".into(),
        ],
        &format!("{}/", srv.base),
    )
    .await;
    let meta = std::fs::metadata(&png).expect("screenshot written");
    assert!(meta.len() > 1000, "screenshot is {} bytes", meta.len());
    srv.stop().await;
}
