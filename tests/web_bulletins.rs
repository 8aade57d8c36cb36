//! The office's bulletin pages in a real browser (issue #15, docs/bulletins.md "Pages"):
//! Debian's `chromium` driven by `chromedriver` over WebDriver (`fantoccini`, the set-up of
//! tests/web_browser.rs), against the real `loa collector` binary (its layout in `$LOA_HOME`,
//! real SQLite or PostgreSQL, real HTTP, the real content library and centre key). An admin
//! composes a bulletin from a library item and sees it listed; a refused form comes back with the
//! field's Vietnamese error; a bulletin with its audio uploaded on the spot; one read from a text
//! by the real espeak-ng; a cancel asks first and is
//! listed; an auditor sees the list but cannot open the compose page. A bulletin's live status
//! page: counts and a row per targeted station, following receipts and records (sent through the
//! real station-signed receipts and ingest endpoints) without a reload, filtered by state, its CSV/XLSX report downloaded
//! and read; the report's columns over HTTP. Screenshots are kept under
//! `$CARGO_TARGET_TMPDIR/web_bulletins/`.

mod collector_common;

use collector_common::webdriver::{browser, chromedriver};
use collector_common::*;
use fantoccini::{Client, Locator};
use loa::collector::accounts::{self, Role};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "mat-khau-that-dai-1";

/// A user `name` of `role`, and a personal API token of theirs.
fn add_user(db: &Path, name: &str, role: Role) -> String {
    let mut c = loa::collector::Store::open(db).unwrap().into_connection();
    let now = chrono::Utc::now();
    accounts::add_user(&mut c, name, role, &[], PW, now).unwrap();
    let u = accounts::find_user(&c, name).unwrap().unwrap();
    accounts::create_token(&c, &u, "thử", now).unwrap().0
}

fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_bulletins");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.len() > 1000, "screenshot {name} is {} bytes", png.len());
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// Click `loc` and wait until the page it leads to has replaced this one.
async fn follow(c: &Client, loc: Locator<'_>) {
    follow_within(c, loc, 10).await
}

/// [`follow`], waiting up to `secs` (an upload the server decodes before it answers).
async fn follow_within(c: &Client, loc: Locator<'_>, secs: u64) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(loc)
        .await
        .unwrap_or_else(|e| panic!("nothing to click: {e}"))
        .click()
        .await
        .unwrap();
    for _ in 0..secs * 20 {
        if old.tag_name().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the click did not lead to another page within {secs} s");
}

async fn sign_in(c: &Client, base: &str, name: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/login",
        "signed out, / sends to the login page"
    );
    c.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PW)
        .await
        .unwrap();
    follow(c, Locator::Css("form.form-login button[type=submit]")).await;
    let viewer = text(c, "#viewer").await;
    assert!(viewer.contains(name), "signed in as {name}: {viewer}");
}

/// Click the link `css` (a download) and wait for the finished file `name` in `dir`.
async fn download(c: &Client, css: &str, dir: &Path, name: &str) -> Vec<u8> {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no download link `{css}`: {e}"))
        .click()
        .await
        .unwrap();
    let path = dir.join(name);
    for _ in 0..300 {
        if let Ok(bytes) = std::fs::read(&path)
            && !bytes.is_empty()
            && !dir.join(format!("{name}.crdownload")).exists()
        {
            return bytes;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let have: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    panic!("{name} was not downloaded within 30 s (the folder holds {have:?})");
}

/// Choose `file` in the file input `input_id` (WebDriver types the path into it).
async fn choose_file(c: &Client, input_id: &str, file: &Path) {
    c.find(Locator::Id(input_id))
        .await
        .unwrap_or_else(|e| panic!("no file input #{input_id}: {e}"))
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
}

async fn fill(c: &Client, id: &str, value: &str) {
    let e = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// The `value` of the form control `css`.
async fn value(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Select the `<option value="{value}">` of the select `#{id}`.
async fn select(c: &Client, id: &str, value: &str) {
    c.find(Locator::Css(&format!("#{id} option[value=\"{value}\"]")))
        .await
        .unwrap_or_else(|e| panic!("no option {value} in #{id}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Two ward stations in area 79, one in 51, and a library item (tone.ogg, uploaded with the
/// admin's token as the office does); the collector, and the admin's token.
struct Centre {
    _home: tempfile::TempDir,
    srv: RealCollector,
    admin: String,
    auditor: String,
    sha: String,
    stations: Vec<TestStation>,
}

async fn centre() -> Centre {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join("collector/library/tree")).unwrap();
    let stations = vec![
        TestStation::new("phuong-a", 1),
        TestStation::new("phuong-b", 2),
        TestStation::new("xa-c", 3),
    ];
    let mut reg = String::new();
    for (s, area, name) in [
        (&stations[0], "79101", "Phường A"),
        (&stations[1], "79102", "Phường B"),
        (&stations[2], "51001", "Xã C"),
    ] {
        reg.push_str(&format!(
            "[[station]]\nid = \"{}\"\nname = \"{name}\"\narea_code = \"{area}\"\npublic_key = \"{}\"\n",
            s.id,
            s.public_key()
        ));
    }
    std::fs::write(h.join("collector.toml"), reg).unwrap();
    // `collector.db` in the state directory, or a PostgreSQL database under LOA_TEST_DB=postgres.
    let db = loa::collector::db::testing::test_db(h, "collector.db");
    let admin = add_user(&db, "lan", Role::Admin);
    let auditor = add_user(&db, "kiem", Role::Auditor);
    let srv = real_collector_with(h, &["--db", db.to_str().unwrap()], &[]);
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    let sha = loa::media::sha256_file(&tone).unwrap();
    let r = client()
        .post(format!(
            "{}/api/v1/content?title=C%E1%BA%A3nh%20b%C3%A1o%20b%C3%A3o&category=notice",
            srv.base
        ))
        .bearer_auth(&admin)
        .body(std::fs::read(&tone).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    Centre {
        _home: home,
        srv,
        admin,
        auditor,
        sha,
        stations,
    }
}

/// Compose and list in Chromium, as an admin and as an auditor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_composes_from_the_library_and_cancels_an_auditor_only_reads() {
    let centre = centre().await;
    let base = centre.srv.base.clone();
    let driver = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path(), downloads.path()).await;
    sign_in(&c, &base, "lan").await;

    // The list is empty; the compose link leads to the form, valid from now for six hours.
    c.goto(&format!("{base}/bulletins")).await.unwrap();
    assert!(text(&c, "#bulletins").await.contains("Chưa có bản tin nào"));
    follow(&c, Locator::Id("compose")).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/bulletins/new");
    let options = text(&c, "#audio").await;
    assert!(options.contains("Cảnh báo bão"), "{options}");

    // A refusal: area 80 has no station, 3 airings 200 minutes apart do not fit in 6 hours.
    fill(&c, "title", "Cảnh báo bão số 5").await;
    select(&c, "audio", &centre.sha).await;
    click(&c, "to-area").await;
    fill(&c, "area", "80").await;
    select(&c, "priority", "emergency").await;
    fill(&c, "repeats", "3").await;
    fill(&c, "interval_mins", "200").await;
    follow(&c, Locator::Id("send")).await;
    let e = text(&c, "#error-interval_mins").await;
    assert!(
        e.contains("lần cuối sẽ bắt đầu sau khi hết hiệu lực"),
        "{e}"
    );
    assert!(
        text(&c, "#error")
            .await
            .contains("Không có bản tin nào được gửi")
    );
    // What was typed is kept.
    assert_eq!(value(&c, "#title").await, "Cảnh báo bão số 5");
    assert_eq!(value(&c, "#audio").await, centre.sha);
    assert_eq!(value(&c, "#area").await, "80");
    shot(&c, "1-compose-refused").await;
    // The interval fixed: now the area is refused by the bulletin's own check (no station).
    fill(&c, "interval_mins", "30").await;
    follow(&c, Locator::Id("send")).await;
    let e = text(&c, "#error-area").await;
    assert!(
        e.contains("Không có trạm nào có mã vùng bắt đầu bằng 80"),
        "{e}"
    );
    // Fixed: sent, listed with its priority, targets, window and repeats in Vietnamese.
    fill(&c, "area", "79").await;
    follow(&c, Locator::Id("send")).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/bulletins");
    let message = text(&c, "#message").await;
    assert!(
        message.contains("Đã gửi bản tin «Cảnh báo bão số 5»"),
        "{message}"
    );
    let listed = api_list(&base, &centre.admin).await;
    assert_eq!(listed.len(), 1, "one bulletin stored: {listed:?}");
    let storm = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["to"], "area:79");
    assert_eq!(listed[0]["priority"], "emergency");
    assert_eq!(listed[0]["audio"], centre.sha.as_str());
    assert_eq!(
        (
            listed[0]["repeats"].as_u64(),
            listed[0]["interval_secs"].as_u64()
        ),
        (Some(3), Some(1800))
    );
    let row = text(&c, &format!("tr[data-bulletin=\"{storm}\"]")).await;
    for want in [
        "Cảnh báo bão số 5",
        "khẩn cấp",
        "Các trạm có mã ĐVHC bắt đầu bằng 79",
        "3 lần, cách 30 phút",
        "Đang gửi 2 / 2 trạm",
        "Còn hiệu lực",
        "(lan)",
    ] {
        assert!(row.contains(want), "{want} in {row}");
    }
    shot(&c, "2-listed").await;

    // Audio uploaded on the spot, to a list of stations, priority.
    c.goto(&format!("{base}/bulletins/new")).await.unwrap();
    fill(&c, "title", "Thông báo cắt điện").await;
    click(&c, "source-upload").await;
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.wav");
    choose_file(&c, "file", &wav).await;
    click(&c, "to-stations").await;
    fill(&c, "stations", "xa-c, phuong-a").await;
    select(&c, "priority", "priority").await;
    follow_within(&c, Locator::Id("send"), 60).await;
    let message = text(&c, "#message").await;
    assert!(
        message.contains("Đã gửi bản tin «Thông báo cắt điện»"),
        "{message}"
    );
    let listed = api_list(&base, &centre.admin).await;
    assert_eq!(listed.len(), 2);
    let power = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["to"], "stations:phuong-a,xa-c");
    let wav_sha = loa::media::sha256_file(&wav).unwrap();
    assert_eq!(
        listed[0]["audio"],
        wav_sha.as_str(),
        "the uploaded file is the audio"
    );
    let content: serde_json::Value = client()
        .get(format!("{base}/api/v1/content"))
        .bearer_auth(&centre.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = content["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sha256"] == wav_sha.as_str())
        .expect("the uploaded file is in the library");
    assert_eq!(item["category"], "bulletin");
    assert_eq!(item["title"], "Thông báo cắt điện");
    let row = text(&c, &format!("tr[data-bulletin=\"{power}\"]")).await;
    assert!(
        row.contains("ưu tiên") && row.contains("2 trạm: phuong-a, xa-c"),
        "{row}"
    );

    // A text read by espeak-ng (no recording): listed, its audio a library item of category tts.
    tools::require_tool("espeak-ng", "espeak-ng");
    c.goto(&format!("{base}/bulletins/new")).await.unwrap();
    fill(&c, "title", "Thông báo tiêm chủng").await;
    click(&c, "source-text").await;
    fill(&c, "text", "Sáng mai tiêm chủng tại trạm y tế phường.").await;
    follow_within(&c, Locator::Id("send"), 60).await;
    let message = text(&c, "#message").await;
    assert!(
        message.contains("Đã gửi bản tin «Thông báo tiêm chủng»"),
        "{message}"
    );
    let listed = api_list(&base, &centre.admin).await;
    assert_eq!(listed.len(), 3);
    let spoken = listed[0]["audio"].as_str().unwrap().to_string();
    let content: serde_json::Value = client()
        .get(format!("{base}/api/v1/content"))
        .bearer_auth(&centre.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        content["content"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["sha256"] == spoken.as_str() && c["category"] == "tts"),
        "the spoken text is a library item: {content}"
    );
    // Its page says it is synthetic, with the text.
    let spoken_id = listed[0]["id"].as_str().unwrap().to_string();
    c.goto(&format!("{base}/bulletins/{spoken_id}"))
        .await
        .unwrap();
    let synthetic = text(&c, "#synthetic").await;
    assert!(
        synthetic.contains("Giọng đọc tổng hợp")
            && synthetic.contains("Sáng mai tiêm chủng tại trạm y tế phường."),
        "{synthetic}"
    );
    c.goto(&format!("{base}/bulletins")).await.unwrap();

    // Cancel asks first: dismissed, nothing changes; accepted, it is cancelled and listed so.
    let cancel = format!("tr[data-bulletin=\"{power}\"] button.cancel");
    c.find(Locator::Css(&cancel))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let asked = c.get_alert_text().await.unwrap();
    assert!(
        asked.contains("Hủy bản tin «Thông báo cắt điện»?"),
        "{asked}"
    );
    c.dismiss_alert().await.unwrap();
    let cancelled_at = |l: Vec<serde_json::Value>| {
        l.into_iter().find(|b| b["id"] == power.as_str()).unwrap()["cancelled_at"].clone()
    };
    assert!(cancelled_at(api_list(&base, &centre.admin).await).is_null());
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(&cancel))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.accept_alert().await.unwrap();
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = text(&c, "#message").await;
    assert!(
        message.contains("Đã hủy bản tin «Thông báo cắt điện»"),
        "{message}"
    );
    let row = text(&c, &format!("tr[data-bulletin=\"{power}\"]")).await;
    assert!(row.contains("Đã hủy lúc") && row.contains("(lan)"), "{row}");
    assert!(row.contains("Đã hủy 2 / 2 trạm"), "{row}");
    assert!(
        c.find(Locator::Css(&cancel)).await.is_err(),
        "a cancelled bulletin has no cancel button"
    );
    assert!(!cancelled_at(api_list(&base, &centre.admin).await).is_null());
    shot(&c, "3-cancelled").await;

    // An auditor: the list, read only; the compose page is refused.
    follow(&c, Locator::Id("logout")).await;
    sign_in(&c, &base, "kiem").await;
    c.goto(&format!("{base}/bulletins")).await.unwrap();
    let table = text(&c, "#bulletins").await;
    assert!(table.contains("Cảnh báo bão số 5") && table.contains("Thông báo cắt điện"));
    assert!(c.find(Locator::Css("button.cancel")).await.is_err());
    assert!(c.find(Locator::Id("compose")).await.is_err());
    c.goto(&format!("{base}/bulletins/new")).await.unwrap();
    let refused = text(&c, "main").await;
    assert!(refused.contains("Không được phép"), "{refused}");
    assert!(c.find(Locator::Id("bulletin-form")).await.is_err());
    shot(&c, "4-auditor-refused").await;
    // Nor may the auditor post the form (their token, no browser): 403, nothing stored.
    let r = client()
        .post(format!("{base}/bulletins/new"))
        .bearer_auth(&centre.auditor)
        .header("content-type", "multipart/form-data; boundary=x")
        .body(format!(
            "--x\r\nContent-Disposition: form-data; name=\"audio\"\r\n\r\n{}\r\n--x--\r\n",
            centre.sha
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(api_list(&base, &centre.admin).await.len(), 3);
    let _ = &centre.stations;
    c.close().await.unwrap();
}

async fn api_list(base: &str, token: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = client()
        .get(format!("{base}/api/v1/bulletins"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["bulletins"].as_array().unwrap().clone()
}

/// The signed record of station `st`'s airing `repeat` of bulletin `id`, as the daemon journals
/// it (contract item 1): on air `secs` seconds from `at`, measured `lufs`, or not aired with
/// `code`.
#[allow(clippy::too_many_arguments)] // a record's fields, named at each call
fn bulletin_record(
    st: &mut TestStation,
    id: &str,
    repeat: u32,
    at: chrono::DateTime<chrono::FixedOffset>,
    outcome: loa::wire::Outcome,
    secs: f64,
    lufs: Option<f64>,
    code: Option<&str>,
) -> loa::wire::SignedRecord {
    let mut rec = st.unsigned(None, at, outcome, secs, 800);
    rec.occurrence = Some(loa::bulletin::occurrence_key(id, repeat));
    rec.category = "bulletin".into();
    rec.planned_secs = 2.0;
    rec.recorded_at = chrono::Utc::now();
    rec.bulletin = Some(loa::wire::BulletinRef {
        id: id.to_string(),
        repeat,
        synthetic: false,
    });
    if let Some(c) = code {
        rec.actual_start = None;
        rec.end = None;
        rec.start_offset_ms = None;
        rec.reason = Some(c.to_string());
        rec.reason_code = Some(loa::reason::ReasonCode::parse(c));
    }
    rec.evidence = lufs.map(|l| loa::wire::Evidence {
        output: "null".into(),
        sample_rate: 48_000,
        channels: 2,
        frames: (secs * 48_000.0) as u64,
        first_sample_at: rec.actual_start.map(|t| t.with_timezone(&chrono::Utc)),
        integrated_lufs: Some(l),
        sample_peak_dbfs: Some(-3.0),
        silence_secs: 0.0,
    });
    st.sign_next(&rec)
}

async fn ship(base: &str, st: &str, rec: loa::wire::SignedRecord) {
    let (status, body) = post(
        &client(),
        &format!("{base}/api/v1/stations/{st}/records"),
        serde_json::to_vec(&batch(&[rec])).unwrap(),
    )
    .await;
    assert!((200..300).contains(&status), "{status}: {body}");
}

/// Station `st` reports its receipt of bulletin `id` through the real station-signed endpoint
/// (`POST /api/v1/stations/{id}/bulletin-receipts`, as its intake does).
async fn receipt(base: &str, st: &TestStation, id: &str, state: &str, code: Option<&str>) {
    let path = format!("/api/v1/stations/{}/bulletin-receipts", st.id);
    let mut r = serde_json::json!({ "bulletin": id, "state": state, "at": chrono::Utc::now() });
    if let Some(c) = code {
        r["code"] = serde_json::json!(c);
    }
    let body = serde_json::to_vec(&serde_json::json!({ "receipts": [r] })).unwrap();
    let h =
        loa::centre::request::sign_body(&st.key, &st.id, "POST", &path, &body, chrono::Utc::now());
    let mut req = client()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json");
    for (k, v) in h.pairs() {
        req = req.header(k, v);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        resp.text().await.unwrap()
    );
}

/// Wait until `css`'s text satisfies `ok` (the page's refresh), up to 20 s.
async fn until(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if ok(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` did not change as expected within 20 s: {last}");
}

/// The live status page in Chromium: counts and rows; a receipt and records arriving through
/// the real ingest endpoint show up without a reload; the filter; the reports downloaded and
/// read (CSV as text, XLSX with openpyxl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_follows_the_stations_live_and_downloads_its_report() {
    let mut centre = centre().await;
    let base = centre.srv.base.clone();
    // Sent to every station (3), twice 10 minutes apart.
    let now = chrono::Utc::now();
    let r = client()
        .post(format!("{base}/api/v1/bulletins"))
        .bearer_auth(&centre.admin)
        .json(&serde_json::json!({
            "title": "Cảnh báo lũ", "audio": centre.sha, "priority": "emergency", "to": "all",
            "not_after": (now + chrono::Duration::hours(2)).to_rfc3339(),
            "repeats": 2, "interval_mins": 10,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let driver = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path(), downloads.path()).await;
    sign_in(&c, &base, "lan").await;
    c.goto(&format!("{base}/bulletins")).await.unwrap();
    follow(&c, Locator::LinkText("Cảnh báo lũ")).await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/bulletins/{id}")
    );
    assert_eq!(text(&c, "#count-sending").await, "3");
    assert_eq!(text(&c, "#count-aired").await, "0");
    let a = text(&c, "tr[data-station=\"phuong-a\"]").await;
    assert!(
        a.contains("Đang gửi") && a.contains("Trạm chưa báo đã nhận"),
        "{a}"
    );
    assert!(
        c.find(Locator::Id("synthetic")).await.is_err(),
        "a recording, not synthetic"
    );
    shot(&c, "5-status-sending").await;

    // Station b receives it; a airs repeat 1 (measured -23.0 LUFS) and its repeat 2 fails;
    // c refuses it (its audio does not match). The page follows without a reload.
    let page = c.find(Locator::Css("html")).await.unwrap();
    receipt(&base, &centre.stations[1], &id, "delivered", None).await;
    let tz = chrono::FixedOffset::east_opt(7 * 3600).unwrap();
    let t1 = (now + chrono::Duration::seconds(5)).with_timezone(&tz);
    let rec = bulletin_record(
        &mut centre.stations[0],
        &id,
        1,
        t1,
        loa::wire::Outcome::Aired,
        2.0,
        Some(-23.04),
        None,
    );
    ship(&base, "phuong-a", rec).await;
    receipt(
        &base,
        &centre.stations[2],
        &id,
        "refused",
        Some("bulletin.audio"),
    )
    .await;
    until(&c, "#count-sending", |t| t == "0").await;
    assert!(page.tag_name().await.is_ok(), "the same page, not reloaded");
    assert_eq!(text(&c, "#count-aired").await, "1");
    assert_eq!(text(&c, "#count-delivered").await, "1");
    assert_eq!(text(&c, "#count-refused").await, "1");
    shot(&c, "6-status-live").await;
    // Then a's repeat 2 fails: its state is the latest repeat's, each repeat listed.
    let rec = bulletin_record(
        &mut centre.stations[0],
        &id,
        2,
        t1 + chrono::Duration::minutes(10),
        loa::wire::Outcome::Failed,
        0.0,
        None,
        Some("failed.output"),
    );
    ship(&base, "phuong-a", rec).await;
    until(&c, "#count-failed", |t| t == "1").await;
    assert_eq!(text(&c, "#count-aired").await, "0");
    assert!(page.tag_name().await.is_ok(), "the same page, not reloaded");
    let a = text(&c, "tr[data-station=\"phuong-a\"]").await;
    let when1 = (t1 + chrono::Duration::milliseconds(800))
        .format("%d/%m/%Y %H:%M:%S")
        .to_string();
    for want in [
        "Lỗi",
        "Lần 2: Lỗi phát",
        "Lần 1: Đã phát",
        &when1,
        "2,0 giây",
        "-23,0 LUFS",
    ] {
        assert!(a.contains(want), "{want} in {a}");
    }
    let b = text(&c, "tr[data-station=\"phuong-b\"]").await;
    assert!(
        b.contains("Đã nhận") && b.contains("Trạm đã nhận lúc"),
        "{b}"
    );
    let cc = text(&c, "tr[data-station=\"xa-c\"]").await;
    assert!(
        cc.contains("Từ chối") && cc.contains("tệp âm thanh không khớp mã băm"),
        "{cc}"
    );
    shot(&c, "7-status-repeat-failed").await;

    // The filter: only the refused.
    select(&c, "state", "refused").await;
    follow(&c, Locator::Id("filter")).await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .query()
            .unwrap()
            .contains("state=refused")
    );
    let rows = c
        .find_all(Locator::Css("#stations tbody tr[data-station]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].attr("data-station").await.unwrap().as_deref(),
        Some("xa-c")
    );
    // The refresh keeps the filter.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        c.find_all(Locator::Css("#stations tbody tr[data-station]"))
            .await
            .unwrap()
            .len(),
        1
    );
    shot(&c, "8-status-filtered").await;

    // The report, downloaded from the page.
    let csv = download(
        &c,
        "#report-csv",
        downloads.path(),
        &format!("ban-tin-{id}.csv"),
    )
    .await;
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with('\u{feff}'), "BOM");
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert!(
        lines[0].starts_with("\"Mã trạm\",\"Tên trạm\",\"Mã ĐVHC\",\"Trạng thái\""),
        "{}",
        lines[0]
    );
    // a: two repeats; b and c: one row each.
    assert_eq!(
        lines.iter().filter(|l| !l.is_empty()).count(),
        1 + 4,
        "{csv}"
    );
    assert!(
        csv.contains("\"phuong-a\",\"Phường A\",\"79101\",\"Lỗi\""),
        "{csv}"
    );
    assert!(csv.contains("\"-23,0\""), "{csv}");
    assert!(csv.contains("tệp âm thanh không khớp mã băm"), "{csv}");
    let xlsx = download(
        &c,
        "#report-xlsx",
        downloads.path(),
        &format!("ban-tin-{id}.xlsx"),
    )
    .await;
    let file = downloads.path().join("check.xlsx");
    std::fs::write(&file, xlsx).unwrap();
    tools::require_python_module("/usr/bin/python3", "openpyxl", "python3-openpyxl");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import json,sys,openpyxl\n\
             wb=openpyxl.load_workbook(sys.argv[1])\n\
             print(json.dumps({n:[[c for c in r] for r in wb[n].iter_rows(values_only=True)] for n in wb.sheetnames}, ensure_ascii=False, default=str))",
        )
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let book: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sheet = book["Chi tiết theo trạm"].as_array().unwrap();
    assert_eq!(sheet[0][0], "Mã trạm");
    assert_eq!(sheet.len(), 1 + 4);
    let a1 = sheet
        .iter()
        .find(|r| r[0] == "phuong-a" && r[6].as_f64() == Some(1.0))
        .unwrap_or_else(|| panic!("phuong-a's first airing: {sheet:?}"));
    assert_eq!(a1[7], "Đã phát");
    assert_eq!(a1[9], 2.0);
    assert_eq!(a1[10], -23.0);
    let summary = book["Tổng hợp"].to_string();
    assert!(
        summary.contains("Cảnh báo lũ") && summary.contains("Từ chối"),
        "{summary}"
    );

    // An auditor opens the page; an operator would be refused (no role row).
    c.close().await.unwrap();
    let (s, _) = get_with(
        &base,
        &format!("/api/v1/bulletins/{id}/stations"),
        &centre.auditor,
    )
    .await;
    assert_eq!(s, 200);
}

async fn get_with(base: &str, path: &str, token: &str) -> (u16, String) {
    let r = client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The report over HTTP (an auditor's token): the Vietnamese column titles in order, one row per
/// station and repeat, codes as Vietnamese texts (a skipped airing's `bulletin.expired`, a
/// refusal's code, the cancel of a bulletin before a station received it), numbers the
/// Vietnamese way; the same in the XLSX; an unknown bulletin is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_has_its_columns_a_row_per_station_and_repeat_and_texts_for_codes() {
    let mut centre = centre().await;
    let base = centre.srv.base.clone();
    let now = chrono::Utc::now();
    let r = client()
        .post(format!("{base}/api/v1/bulletins"))
        .bearer_auth(&centre.admin)
        .json(&serde_json::json!({
            "title": "Lịch tiêm chủng", "audio": centre.sha, "priority": "normal",
            "to": "area:79", "not_after": (now + chrono::Duration::hours(3)).to_rfc3339(),
            "repeats": 3, "interval_mins": 30,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tz = chrono::FixedOffset::east_opt(7 * 3600).unwrap();
    let t = now.with_timezone(&tz);
    // a: repeats 1 and 2 aired (-18.46 and -18.5 LUFS), 3 skipped as expired.
    for (n, lufs) in [(1, -18.46), (2, -18.5)] {
        let rec = bulletin_record(
            &mut centre.stations[0],
            &id,
            n,
            t + chrono::Duration::minutes(30 * i64::from(n - 1)),
            loa::wire::Outcome::Aired,
            2.0,
            Some(lufs),
            None,
        );
        ship(&base, "phuong-a", rec).await;
    }
    let rec = bulletin_record(
        &mut centre.stations[0],
        &id,
        3,
        t + chrono::Duration::minutes(60),
        loa::wire::Outcome::Skipped,
        0.0,
        None,
        Some("bulletin.expired"),
    );
    ship(&base, "phuong-a", rec).await;
    // b refused it: too long for its sessions. (xa-c is in area 51: not targeted, no row.)
    receipt(
        &base,
        &centre.stations[1],
        &id,
        "refused",
        Some("bulletin.too_long"),
    )
    .await;

    let (s, csv) = get_with(
        &base,
        &format!("/bulletins/{id}/report.csv"),
        &centre.auditor,
    )
    .await;
    assert_eq!(s, 200, "{csv}");
    let rows: Vec<Vec<String>> = csv
        .trim_start_matches('\u{feff}')
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(csv_line)
        .collect();
    assert_eq!(
        rows[0],
        [
            "Mã trạm",
            "Tên trạm",
            "Mã ĐVHC",
            "Trạng thái",
            "Chi tiết",
            "Trạm nhận lúc",
            "Lần phát",
            "Kết quả lần phát",
            "Giờ phát (giờ trạm)",
            "Thời lượng đã phát (giây)",
            "Độ lớn đo được (LUFS)",
            "Lý do",
            "Mã lý do",
        ]
    );
    assert_eq!(rows.len(), 1 + 3 + 1, "{rows:?}");
    let a: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "phuong-a").collect();
    assert_eq!(
        a.iter().map(|r| r[6].as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"],
        "earliest repeat first"
    );
    assert_eq!(a[0][3], "Hết hạn", "the latest repeat's state: {:?}", a[0]);
    assert_eq!(
        (a[0][7].as_str(), a[0][9].as_str(), a[0][10].as_str()),
        ("Đã phát", "2,0", "-18,5")
    );
    assert_eq!(a[1][10], "-18,5");
    assert_eq!(a[2][7], "Không phát");
    assert_eq!(a[2][11], "Bản tin đã hết hiệu lực trước khi phát");
    assert_eq!(a[2][12], "bulletin.expired");
    let b = rows.iter().find(|r| r[0] == "phuong-b").unwrap();
    assert_eq!(b[3], "Từ chối");
    assert!(!b[5].is_empty(), "when it refused: {b:?}");
    assert_eq!(b[6], "");
    assert_eq!(
        b[11],
        "Không phát bản tin: dài hơn thời lượng tối đa của một buổi phát của trạm"
    );
    assert_eq!(b[12], "bulletin.too_long");
    assert!(!rows.iter().any(|r| r[0] == "xa-c"));

    // A bulletin cancelled before its station received it: "Đã hủy", with the code's text.
    let r = client()
        .post(format!("{base}/api/v1/bulletins"))
        .bearer_auth(&centre.admin)
        .json(&serde_json::json!({
            "title": "Thử hủy", "audio": centre.sha, "priority": "priority",
            "to": "stations:xa-c", "not_after": (now + chrono::Duration::hours(1)).to_rfc3339(),
        }))
        .send()
        .await
        .unwrap();
    let other = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client()
        .post(format!("{base}/api/v1/bulletins/{other}/cancel"))
        .bearer_auth(&centre.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, csv) = get_with(
        &base,
        &format!("/bulletins/{other}/report.csv"),
        &centre.auditor,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        csv.contains("\"xa-c\",\"Xã C\",\"51001\",\"Đã hủy\",\"Bản tin đã bị trung tâm hủy\""),
        "{csv}"
    );
    let (s, json) = get_with(
        &base,
        &format!("/api/v1/bulletins/{other}/stations"),
        &centre.auditor,
    )
    .await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["counts"]["cancelled"], 1);
    assert_eq!(v["cancelled"], true);
    assert_eq!(v["stations"][0]["code"], "bulletin.cancelled");

    // The XLSX: the same rows, numbers as numbers.
    let r = client()
        .get(format!("{base}/bulletins/{id}/report.xlsx"))
        .bearer_auth(&centre.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.xlsx");
    std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
    tools::require_python_module("/usr/bin/python3", "openpyxl", "python3-openpyxl");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import json,sys,openpyxl\n\
             wb=openpyxl.load_workbook(sys.argv[1])\n\
             print(json.dumps([list(r) for r in wb['Chi tiết theo trạm'].iter_rows(values_only=True)], ensure_ascii=False, default=str))",
        )
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sheet: Vec<Vec<serde_json::Value>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sheet.len(), rows.len());
    for (x, c) in sheet.iter().zip(&rows) {
        assert_eq!(x.len(), c.len());
    }
    let a1 = sheet
        .iter()
        .find(|r| r[0] == "phuong-a" && r[6].as_f64() == Some(1.0))
        .unwrap();
    assert_eq!((a1[9].as_f64(), a1[10].as_f64()), (Some(2.0), Some(-18.5)));

    // An unknown bulletin is 404; the data without a token, 401.
    let (s, _) = get_with(
        &base,
        &format!("/bulletins/{}/report.csv", "0".repeat(32)),
        &centre.auditor,
    )
    .await;
    assert_eq!(s, 404);
    let r = client()
        .get(format!("{base}/api/v1/bulletins/{id}/stations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The cells of one CSV line (every cell quoted, `""` inside a cell).
fn csv_line(l: &str) -> Vec<String> {
    let (mut out, mut cell, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, l.chars().peekable());
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', false) => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            (',', false) => out.push(std::mem::take(&mut cell)),
            (c, _) => cell.push(c),
        }
    }
    out.push(cell);
    out
}
