//! The office's bulletin pages in a real browser (issue #15, docs/bulletins.md "Pages"):
//! Debian's `chromium` driven by `chromedriver` over WebDriver (`fantoccini`, the set-up of
//! tests/web_browser.rs), against the real `loa collector` binary (its layout in `$LOA_HOME`,
//! real SQLite, real HTTP, the real content library and centre key). An admin composes a
//! bulletin from a library item and sees it listed; a refused form comes back with the field's
//! Vietnamese error; a bulletin with its audio uploaded on the spot; one read from a text by the
//! real espeak-ng; a cancel asks first and is
//! listed; an auditor sees the list but cannot open the compose page. Screenshots are kept under
//! `$CARGO_TARGET_TMPDIR/web_bulletins/`.

mod collector_common;

use collector_common::*;
use fantoccini::{Client, ClientBuilder, Locator};
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

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    _child: tokio::process::Child,
    url: String,
}

async fn chromedriver() -> Driver {
    let exe = tools::require_tool("chromedriver", "chromium-driver");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(exe)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Driver {
                _child: child,
                url: format!("http://127.0.0.1:{port}"),
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not listen on 127.0.0.1:{port} within 10 s");
}

/// A headless Chromium session downloading into `downloads`.
async fn browser(driver: &Driver, profile: &Path, downloads: &Path) -> Client {
    let chromium = tools::require_tool("chromium", "chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "safebrowsing.enabled": false,
            },
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
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
#[allow(dead_code)] // the report downloads (the status page test)
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
    let db = h.join("collector.db");
    let admin = add_user(&db, "lan", Role::Admin);
    let auditor = add_user(&db, "kiem", Role::Auditor);
    let srv = real_collector(h);
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
