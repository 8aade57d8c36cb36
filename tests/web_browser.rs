//! The office web app in a real browser: Debian's `chromium` driven by `chromedriver` (package
//! `chromium-driver`) over WebDriver from Rust (`fantoccini`), headless, against the real router,
//! real SQLite or PostgreSQL and real sessions. Signs in, sees the overview, opens a station month,
//! switches month, downloads each report and checks the files, is refused a form without its CSRF
//! token, signs out; an operator sees only their ward, downloads its month CSV from the reports
//! page, and is refused another ward's month. The centre's pages against the real `loa collector`
//! binary: the content library (upload, refusal, assignment), a schedule file uploaded with an
//! error then fixed, a station created and enrolled by `loa enrol` with its one-time code, and a
//! rollback with its diff. Screenshots are kept under
//! `$CARGO_TARGET_TMPDIR/web_browser/`.

mod collector_common;

use collector_common::webdriver::{browser, chromedriver};
use collector_common::*;
use fantoccini::{Client, Locator};
use loa::collector::accounts::{self, Role};
use loa::collector::http::HttpConfig;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PW: &str = "mat-khau-that-dai-1";

fn add_user(db: &Path, name: &str, role: Role, stations: &[&str]) {
    let mut c = loa::collector::Store::open(db).unwrap().into_connection();
    let st: Vec<String> = stations.iter().map(|s| s.to_string()).collect();
    accounts::add_user(&mut c, name, role, &st, PW, test_now()).unwrap();
}

fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_browser");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_pages_in_a_real_browser() {
    let (a, b, plans, ra, rb) = march_fixture();
    let site = CollectorSite::new(&[&a, &b]);
    let srv = site.start(plans, HttpConfig::default()).await;
    let api = client();
    for (id, recs) in [("phuong-a", &ra), ("phuong-b", &rb)] {
        let (st, _) = post(
            &api,
            &format!("{}/api/v1/stations/{id}/records", srv.base),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(st, 200);
    }
    let hb = serde_json::to_vec(&a.heartbeat(test_now(), 3)).unwrap();
    let (st, _) = post(
        &api,
        &format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base),
        hb,
    )
    .await;
    assert_eq!(st, 200);
    add_user(&site.db, "van-hoa", Role::Admin, &[]);
    add_user(&site.db, "phuong-a-op", Role::Operator, &["phuong-a"]);

    let driver = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path(), downloads.path()).await;
    let base = srv.base.clone();

    // Sign in; the overview.
    shot(&c, "0-blank").await;
    sign_in(&c, &base, "van-hoa").await;
    shot(&c, "1-overview").await;
    let summary = text(&c, "#summary").await;
    assert!(summary.contains("1/2 trạm trực tuyến"), "{summary}");
    let row_a = text(&c, "tr[data-station=\"phuong-a\"]").await;
    assert!(row_a.contains("trực tuyến"), "{row_a}");
    assert!(row_a.contains("50,0 % (4 KH)"), "{row_a}");
    // Unmanaged (the centre holds no schedule version of it): no version, no readiness.
    let ready_a = text(&c, "tr[data-station=\"phuong-a\"] td.readiness").await;
    assert_eq!(ready_a, "—");
    let row_b = text(&c, "tr[data-station=\"phuong-b\"]").await;
    assert!(
        row_b.contains("mất kết nối") && row_b.contains("chưa từng báo"),
        "{row_b}"
    );
    assert!(text(&c, "#alerts").await.contains("mất kết nối"));
    assert!(text(&c, "#city-total").await.contains("%"));
    // Filter by state with the form (keyboard-usable: a select and a button).
    c.find(Locator::Css("#f-status option[value=\"offline\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    follow(&c, Locator::Id("f-apply")).await;
    assert!(text(&c, "#matched").await.starts_with("1 trạm"));
    assert!(
        c.find(Locator::Css("tr[data-station=\"phuong-a\"]"))
            .await
            .is_err()
    );

    // A station month, then the month before through the picker, and back.
    c.goto(&format!("{base}/")).await.unwrap();
    follow(&c, Locator::Css("tr[data-station=\"phuong-a\"] a")).await;
    let h1 = text(&c, "h1").await;
    assert!(h1.contains("tháng 03/2019"), "{h1}");
    let totals = text(&c, "#totals").await;
    assert!(totals.contains("Kế hoạch 4"), "{totals}");
    let heat = text(&c, "#heatmap").await;
    assert!(
        heat.contains("Phát trễ") && heat.contains("Bỏ lỡ"),
        "{heat}"
    );
    let airings = text(&c, "#airings").await;
    assert!(
        airings.contains("Trạm ngừng hoạt động vào giờ phát")
            && !airings.contains("station was down"),
        "{airings}"
    );
    shot(&c, "2-station-month").await;
    c.find(Locator::Css("#month option[value=\"2019-02\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    follow(&c, Locator::Id("month-go")).await;
    assert!(text(&c, "h1").await.contains("tháng 02/2019"));
    assert_eq!(
        c.current_url().await.unwrap().query(),
        Some("month=2019-02")
    );
    assert!(text(&c, "#totals").await.contains("Kế hoạch 0"));
    follow(&c, Locator::Id("month-next")).await;
    assert!(text(&c, "h1").await.contains("tháng 03/2019"));

    // A month that does not exist: a Vietnamese page, still signed in (the navigation stays).
    c.goto(&format!("{base}/stations/phuong-a?month=2019-13"))
        .await
        .unwrap();
    let bad = text(&c, "#error-message").await;
    assert!(
        bad.contains("2019-13") && bad.contains("không hợp lệ"),
        "{bad}"
    );
    assert!(text(&c, "#viewer").await.contains("van-hoa"));

    // Reports: each format of the month and of the year, downloaded and opened.
    c.goto(&format!("{base}/reports")).await.unwrap();
    shot(&c, "3-reports").await;
    let csv = download(
        &c,
        "a[href=\"/api/v1/reports/2019-03.csv\"]",
        downloads.path(),
        "loa-2019-03.csv",
    )
    .await;
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.contains("phuong-a") && csv.contains("phuong-b"),
        "{csv}"
    );
    let xlsx = download(
        &c,
        "a[href=\"/api/v1/reports/2019-03.xlsx\"]",
        downloads.path(),
        "loa-2019-03.xlsx",
    )
    .await;
    assert_eq!(&xlsx[..2], b"PK", "an XLSX is a zip");
    let json = download(
        &c,
        "a[href=\"/api/v1/reports/2019-03.json\"]",
        downloads.path(),
        "loa-2019-03.json",
    )
    .await;
    let verdict = loa::report::verify_export(std::str::from_utf8(&json).unwrap(), None);
    assert!(
        verdict.ok(),
        "the downloaded JSON export verifies: {verdict:?}"
    );
    let year = download(
        &c,
        "a[href=\"/api/v1/reports/2019.csv\"]",
        downloads.path(),
        "loa-2019.csv",
    )
    .await;
    assert!(String::from_utf8(year).unwrap().contains("phuong-a"));
    // The year-to-date administrative report, opened by a real reader (python-docx).
    let docx = download(
        &c,
        "a[href=\"/api/v1/reports/2019.docx\"]",
        downloads.path(),
        "loa-bao-cao-2019.docx",
    )
    .await;
    assert_eq!(&docx[..2], b"PK", "a DOCX is a zip");
    let read = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import docx,sys; d=docx.Document(sys.argv[1]); \
             print('\\n'.join([p.text for p in d.paragraphs] \
             + [c.text for t in d.tables for r in t.rows for c in r.cells]))",
        ])
        .arg(downloads.path().join("loa-bao-cao-2019.docx"))
        .output()
        .expect("python3-docx (scripts/deps.sh test)");
    let docx_text = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success() && docx_text.contains("Độc lập - Tự do - Hạnh phúc"),
        "python-docx reads the downloaded report: {docx_text} {}",
        String::from_utf8_lossy(&read.stderr)
    );

    // A form without its CSRF token is refused, and nothing changes (still signed in).
    c.goto(&format!("{base}/")).await.unwrap();
    c.execute(
        "document.querySelector('form[action=\"/logout\"] input[name=csrf]').remove();",
        vec![],
    )
    .await
    .unwrap();
    follow(&c, Locator::Id("logout")).await;
    let refused = text(&c, "main").await;
    assert!(refused.contains("mã chống giả mạo"), "{refused}");
    shot(&c, "4-csrf-refused").await;
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(
        text(&c, "#viewer").await.contains("van-hoa"),
        "still signed in"
    );

    // Sign out; the pages send to the login page again.
    follow(&c, Locator::Id("logout")).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/login");
    c.goto(&format!("{base}/stations/phuong-a")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/login");

    // An operator: their ward only; another ward's month is refused.
    sign_in(&c, &base, "phuong-a-op").await;
    assert!(
        c.find(Locator::Css("tr[data-station=\"phuong-a\"]"))
            .await
            .is_ok()
    );
    assert!(
        c.find(Locator::Css("tr[data-station=\"phuong-b\"]"))
            .await
            .is_err()
    );
    // Their reports: the Reports link, their ward preselected, the ward's month CSV alone.
    follow(&c, Locator::Css("nav a[href=\"/reports\"]")).await;
    let ward = download(
        &c,
        "a[href=\"/api/v1/reports/2019-03.csv?station=phuong-a\"]",
        downloads.path(),
        "loa-2019-03-phuong-a.csv",
    )
    .await;
    let ward = String::from_utf8(ward).unwrap();
    assert!(
        ward.contains("\nphuong-a,") && !ward.contains("phuong-b"),
        "{ward}"
    );
    c.goto(&format!("{base}/stations/phuong-b?month=2019-03"))
        .await
        .unwrap();
    let refused = text(&c, "main").await;
    assert!(refused.contains("Không được phép"), "{refused}");
    shot(&c, "5-operator-refused").await;

    c.close().await.unwrap();
    srv.stop().await;
}

/// The schedule editor (`collector::versions`) in the browser: an operator types a schedule with
/// an error, sees it at line:column with the text kept, fixes it and saves (version 1), edits
/// (version 2), opens version 1 and rolls back (version 3, version 1's text, the diff shown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_editor_in_a_real_browser() {
    const V1: &str = "id = \"phuong-a\"\nname = \"Phường A\"\nkind = \"ward\"\narea_code = \"21100\"\n\n[[slots]]\nid = \"sang\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n";
    let a = TestStation::new("phuong-a", 1);
    let site = CollectorSite::new(&[&a]);
    let tree = site.dir.path().join("collector/library/tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg"),
        tree.join("jingle.ogg"),
    )
    .unwrap();
    add_user(&site.db, "op-a", Role::Operator, &["phuong-a"]);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let driver = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path(), downloads.path()).await;
    sign_in(&c, &srv.base, "op-a").await;
    c.goto(&format!("{}/stations/phuong-a/schedule", srv.base))
        .await
        .unwrap();
    let type_text = async |text: &str| {
        let ta = c.find(Locator::Id("text")).await.unwrap();
        ta.clear().await.unwrap();
        ta.send_keys(text).await.unwrap();
    };
    // An error: shown at its line:column, the text kept, nothing saved.
    type_text(&V1.replace("0 6 * * *", "0 25 * * *")).await;
    follow(&c, Locator::Id("save")).await;
    let problems = text(&c, "#problems").await;
    assert!(problems.contains("dòng 8:"), "{problems}");
    let kept = c
        .find(Locator::Id("text"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(kept.contains("0 25 * * *"), "{kept}");
    assert!(text(&c, "#active").await.contains("chưa giữ lịch"));
    shot(&c, "schedule-error").await;
    // Fixed: version 1, active.
    type_text(V1).await;
    follow(&c, Locator::Id("save")).await;
    assert!(text(&c, "#saved").await.contains("phiên bản 1"));
    // An edit: version 2, its diff from version 1.
    c.goto(&format!("{}/stations/phuong-a/schedule", srv.base))
        .await
        .unwrap();
    type_text(&V1.replace("0 6 * * *", "30 6 * * *")).await;
    follow(&c, Locator::Id("save")).await;
    assert!(text(&c, "#saved").await.contains("phiên bản 2"));
    let d = text(&c, "#diff").await;
    assert!(
        d.contains("-cron = \"0 6 * * *\"") && d.contains("+cron = \"30 6 * * *\""),
        "{d}"
    );
    shot(&c, "schedule-diff").await;
    // Roll back to version 1 from its page: version 3 with version 1's text.
    c.goto(&format!(
        "{}/stations/phuong-a/schedule/versions/1",
        srv.base
    ))
    .await
    .unwrap();
    follow(&c, Locator::Css("#rollback button")).await;
    assert!(text(&c, "#saved").await.contains("phiên bản 3"));
    assert_eq!(text(&c, "#text").await.trim(), V1.trim());
    c.goto(&format!("{}/stations/phuong-a/schedule", srv.base))
        .await
        .unwrap();
    let versions = text(&c, "#versions").await;
    assert!(versions.contains("khôi phục phiên bản 1"), "{versions}");
    shot(&c, "schedule-rolled-back").await;
    c.close().await.unwrap();
    srv.stop().await;
}

/// Run an audio tool; fail the test with its error output.
fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run an audio tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 3-minute 64 kbit/s mono MP3 of pink noise (as tests/library.rs makes its episode).
fn three_minute_mp3(dir: &Path) -> PathBuf {
    tools::require_tool("sox", "sox");
    tools::require_tool("lame", "lame");
    let wav = dir.join("cchc.wav");
    let mp3 = dir.join("cchc-thang-1.mp3");
    run(Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["synth", "180", "pinknoise", "vol", "0.25"]));
    run(Command::new("lame")
        .args(["--quiet", "--cbr", "-b", "64"])
        .arg(&wav)
        .arg(&mp3));
    std::fs::remove_file(&wav).unwrap();
    mp3
}

/// Ward 1's schedule: program `cchc` (episodes `cchc/{yyyy}-{mm}.mp3`) on Monday mornings of
/// January 2027, its cron on line 14.
const WARD: &str = r#"id = "phuong-1"
name = "Đài truyền thanh phường Một"
kind = "ward"
area_code = "21100"

[[programs]]
id = "cchc"
title = "Cải cách hành chính"
category = "cchc"
episodes = "cchc/{yyyy}-{mm}.mp3"

[[slots]]
id = "sang"
cron = "30 6 * * MON"
from = 2027-01-01
until = 2027-01-31
play = ["program:cchc"]
"#;

/// A schedule file as an editor on Windows saves it: a byte-order mark and CRLF line ends.
fn windows_file(path: &Path, text: &str) -> PathBuf {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(text.replace('\n', "\r\n").as_bytes());
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
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

/// The centre's pages in Chromium against the real collector binary, as an admin: an MP3
/// uploaded to the library through the page's form (listed with its measured duration and
/// loudness, Vietnamese figures), a non-audio file refused in Vietnamese, the MP3 assigned as
/// CCHC's January 2027 episode; a schedule FILE (BOM, CRLF) uploaded with an error (shown at
/// "dòng L:C", nothing activated), a non-UTF-8 one (its line:column), one without its CSRF
/// token (refused), then fixed (version 1);
/// a station created in the web app and enrolled by the real `loa enrol` with the code the page
/// showed once (the page then says enrolled; the code again is refused); a rollback with its
/// diff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centre_pages_in_a_real_browser() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let h = home.path();
    // Ward 1 as the registry holds it before the centre manages it: its schedule file names
    // the program whose episodes the library will hold; its audio is the library's tree.
    std::fs::create_dir_all(h.join("schedules")).unwrap();
    std::fs::write(h.join("schedules/phuong-1.toml"), WARD).unwrap();
    let ward = TestStation::new("phuong-1", 1);
    std::fs::write(
        h.join("collector.toml"),
        format!(
            "[[station]]\nid = \"phuong-1\"\nname = \"Phường Một\"\narea_code = \"21100\"\npublic_key = \"{}\"\nschedule = \"{}\"\naudio_root = \"{}\"\n",
            ward.public_key(),
            h.join("schedules/phuong-1.toml").display(),
            h.join("collector/library/tree").display()
        ),
    )
    .unwrap();
    // `collector.db` in the state directory, or a PostgreSQL database under LOA_TEST_DB=postgres.
    let db = loa::collector::db::testing::test_db(h, "collector.db");
    add_user(&db, "lan", Role::Admin, &[]);
    add_user(&db, "op-moi", Role::Operator, &["phuong-1"]);
    let srv = real_collector_with(h, &["--db", db.to_str().unwrap()], &[]);
    let base = srv.base.clone();
    let mp3 = three_minute_mp3(work.path());
    let expected = loa::loudness::measure_file(&mp3, "test").unwrap();
    let lufs = format!(
        "{} LUFS",
        loa::web::fmt::decimal_vi(expected.integrated_lufs.unwrap(), 1)
    );
    assert!(lufs.starts_with('-') && lufs.contains(','), "{lufs}");

    let driver = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path(), downloads.path()).await;
    sign_in(&c, &base, "lan").await;

    // The library: the MP3 through the upload form (its script shows progress, then the page).
    c.goto(&format!("{base}/library")).await.unwrap();
    fill(&c, "title", "Cải cách hành chính tháng 1").await;
    fill(&c, "category", "cchc").await;
    choose_file(&c, "file", &mp3).await;
    follow_within(&c, Locator::Id("upload"), 60).await;
    let message = text(&c, "#message").await;
    assert!(message.contains("Đã tải lên và đo xong"), "{message}");
    let sha = loa::wire::sha256_hex(&std::fs::read(&mp3).unwrap());
    let row = text(&c, &format!("tr[data-sha256=\"{sha}\"]")).await;
    assert!(
        row.contains("Cải cách hành chính tháng 1") && row.contains("03:00"),
        "{row}"
    );
    assert!(row.contains(&lufs), "{row} (measured {lufs})");
    assert!(row.contains("chưa dùng") && row.contains("lan"), "{row}");
    shot(&c, "centre-1-library-uploaded").await;
    // Not audio: refused in Vietnamese, nothing added.
    let letter = work.path().join("cong-van.pdf");
    std::fs::write(&letter, b"%PDF-1.4 a letter, not a recording".repeat(50)).unwrap();
    fill(&c, "title", "Công văn").await;
    fill(&c, "category", "notice").await;
    choose_file(&c, "file", &letter).await;
    follow_within(&c, Locator::Id("upload"), 30).await;
    let refused = text(&c, "#error").await;
    assert!(
        refused.contains("Tệp không phải âm thanh giải mã được"),
        "{refused}"
    );
    assert_eq!(
        c.find_all(Locator::Css("#library tr[data-sha256]"))
            .await
            .unwrap()
            .len(),
        1
    );
    shot(&c, "centre-2-library-refused").await;
    // Assigned as CCHC's episode for January 2027: at the path the program's pattern names.
    c.goto(&format!("{base}/library")).await.unwrap();
    c.find(Locator::Css(&format!(
        "#assign-sha256 option[value=\"{sha}\"]"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    fill(&c, "assign-program", "cchc").await;
    fill(&c, "assign-month", "2027-01").await;
    follow(&c, Locator::Id("assign")).await;
    assert!(
        text(&c, "#message")
            .await
            .contains("Đã đặt tệp tại cchc/2027-01.mp3")
    );
    let row = text(&c, &format!("tr[data-sha256=\"{sha}\"]")).await;
    assert!(
        row.contains("cchc/2027-01.mp3 (tập «Cải cách hành chính» tháng 01/2027)"),
        "{row}"
    );
    assert_eq!(
        std::fs::read(h.join("collector/library/tree/cchc/2027-01.mp3")).unwrap(),
        std::fs::read(&mp3).unwrap()
    );
    shot(&c, "centre-3-library-assigned").await;

    // The station's schedule page: a schedule FILE with an error (BOM, CRLF): shown at its
    // line:column in the file, the file's text in the editor, nothing activated.
    c.goto(&format!("{base}/stations/phuong-1/schedule"))
        .await
        .unwrap();
    assert!(text(&c, "#active").await.contains("chưa giữ lịch"));
    let bad = windows_file(
        &work.path().join("phuong-1-loi.toml"),
        &WARD.replace("30 6 * * MON", "30 25 * * MON"),
    );
    choose_file(&c, "schedule-file", &bad).await;
    fill(&c, "upload-note", "tải tệp lên").await;
    follow(&c, Locator::Id("upload-save")).await;
    let problems = text(&c, "#problems").await;
    assert!(problems.contains("dòng 14:"), "{problems}");
    let kept = value(&c, "#text").await;
    assert!(
        kept.contains("30 25 * * MON") && !kept.starts_with('\u{feff}'),
        "{kept}"
    );
    assert!(text(&c, "#active").await.contains("chưa giữ lịch"));
    shot(&c, "centre-4-schedule-file-error").await;
    // A file that is not UTF-8 (a Latin-1 "ô" in "Một" on line 2): its line:column, nothing
    // activated.
    let latin1 = work.path().join("phuong-1-latin1.toml");
    let crlf = WARD.replace('\n', "\r\n");
    let at = crlf.find("Một").unwrap();
    let b = crlf.as_bytes();
    std::fs::write(
        &latin1,
        [&b[..at], b"M\xF4t", &b[at + "Một".len()..]].concat(),
    )
    .unwrap();
    choose_file(&c, "schedule-file", &latin1).await;
    follow(&c, Locator::Id("upload-save")).await;
    let e = text(&c, "#upload-error").await;
    assert!(
        e.contains("không phải văn bản UTF-8") && e.contains("dòng 2:34"),
        "{e}"
    );
    assert!(text(&c, "#active").await.contains("chưa giữ lịch"));
    // The form without its CSRF token (stripped from the action's query): refused, nothing
    // activated.
    let good = windows_file(&work.path().join("phuong-1.toml"), WARD);
    c.execute(
        "const f = document.getElementById('upload'); f.action = f.action.split('?')[0];",
        vec![],
    )
    .await
    .unwrap();
    choose_file(&c, "schedule-file", &good).await;
    follow(&c, Locator::Id("upload-save")).await;
    let refused = text(&c, "main").await;
    assert!(refused.contains("mã chống giả mạo"), "{refused}");
    c.goto(&format!("{base}/stations/phuong-1/schedule"))
        .await
        .unwrap();
    assert!(text(&c, "#active").await.contains("chưa giữ lịch"));
    // Fixed: version 1, active, stored with LF and without the BOM.
    choose_file(&c, "schedule-file", &good).await;
    fill(&c, "upload-note", "tệp lịch tháng 1").await;
    follow(&c, Locator::Id("upload-save")).await;
    assert!(text(&c, "#saved").await.contains("phiên bản 1"));
    assert_eq!(text(&c, "#text").await.trim(), WARD.trim());
    shot(&c, "centre-5-schedule-file-saved").await;
    // Another file: version 2, its diff from version 1.
    let later = windows_file(
        &work.path().join("phuong-1-7h.toml"),
        &WARD.replace("30 6 * * MON", "0 7 * * MON"),
    );
    c.goto(&format!("{base}/stations/phuong-1/schedule"))
        .await
        .unwrap();
    choose_file(&c, "schedule-file", &later).await;
    follow(&c, Locator::Id("upload-save")).await;
    assert!(text(&c, "#saved").await.contains("phiên bản 2"));
    let d = text(&c, "#diff").await;
    assert!(
        d.contains("-cron = \"30 6 * * MON\"") && d.contains("+cron = \"0 7 * * MON\""),
        "{d}"
    );

    // A station created in the web app; its one-time code; the real `loa enrol` on a box.
    c.goto(&format!("{base}/admin/stations")).await.unwrap();
    fill(&c, "id", "phuong-moi").await;
    fill(&c, "name", "Phường Mới").await;
    fill(&c, "area_code", "21193").await;
    c.find(Locator::Css(
        "#new-station input[name=operators][value=\"op-moi\"]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    follow(&c, Locator::Id("create-station")).await;
    let code = value(&c, "#enrolment-code").await;
    assert_eq!(code.split('-').count(), 6, "{code}");
    assert!(
        text(&c, "tr[data-station=\"phuong-moi\"] td.state")
            .await
            .contains("Chờ ghi danh")
    );
    shot(&c, "centre-6-station-code").await;
    let enrol = |box_home: &Path| {
        std::fs::create_dir_all(box_home).unwrap();
        Command::new(env!("CARGO_BIN_EXE_loa"))
            .args(["enrol", "--collector", &base, "--code", &code])
            .current_dir(box_home)
            .env("LOA_HOME", box_home)
            .output()
            .unwrap()
    };
    let box1 = work.path().join("hop-1");
    let out = enrol(&box1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(box1.join("station.toml")).unwrap();
    assert!(config.contains("id = \"phuong-moi\""), "{config}");
    c.goto(&format!("{base}/admin/stations")).await.unwrap();
    let state = text(&c, "tr[data-station=\"phuong-moi\"] td.state").await;
    assert!(state.contains("Đã ghi danh"), "{state}");
    // The box's key is the registry's; the page no longer shows the code.
    let public = std::fs::read_to_string(box1.join("station/phuong-moi/station.pub")).unwrap();
    let registry = std::fs::read_to_string(h.join("collector.toml")).unwrap();
    assert!(registry.contains(public.trim()), "{registry}");
    assert!(!c.source().await.unwrap().contains(&code));
    shot(&c, "centre-7-station-enrolled").await;
    // The same code on another box: refused by the collector, nothing written there.
    let box2 = work.path().join("hop-2");
    let again = enrol(&box2);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mã ghi danh không đúng, đã được dùng hoặc đã hết hạn"),
        "{err}"
    );
    assert!(!box2.join("station.toml").exists());
    assert_eq!(
        std::fs::read_to_string(h.join("collector.toml")).unwrap(),
        registry
    );

    // Roll ward 1 back to version 1 from its page: version 3 with version 1's text, the diff
    // from version 2 shown.
    c.goto(&format!("{base}/stations/phuong-1/schedule/versions/1"))
        .await
        .unwrap();
    follow(&c, Locator::Css("#rollback button")).await;
    assert!(text(&c, "#saved").await.contains("phiên bản 3"));
    assert_eq!(text(&c, "#text").await.trim(), WARD.trim());
    let d = text(&c, "#diff").await;
    assert!(
        d.contains("-cron = \"0 7 * * MON\"") && d.contains("+cron = \"30 6 * * MON\""),
        "{d}"
    );
    shot(&c, "centre-8-rolled-back").await;
    c.goto(&format!("{base}/stations/phuong-1/schedule"))
        .await
        .unwrap();
    let versions = text(&c, "#versions").await;
    assert!(
        versions.contains("khôi phục phiên bản 1") && versions.contains("tệp lịch tháng 1"),
        "{versions}"
    );
    c.close().await.unwrap();
    drop(srv);
}
