//! Text-to-speech of bulletins (issue #15 item 1, docs/bulletins.md "Text-to-speech"), with the
//! real collector binary (`loa collector`, real SQLite or PostgreSQL, real HTTP, the real content
//! library) and the real espeak-ng: an admin sends a bulletin with a text and no audio; the
//! collector reads it with espeak-ng's Vietnamese voice, puts the WAV into the library (SHA-256,
//! measured), and the signed bulletin names it with `synthetic: true` and the text; the targeted
//! station's fetch verifies under the pinned centre key; the audio served is a real WAV of a
//! sentence's length. `loa bulletin send --text` (no `--audio`) does the same from the command
//! line. A collector whose `PATH` has no espeak-ng refuses the send in Vietnamese naming the
//! package, and stores nothing.

mod collector_common;

use collector_common::{TestStation, real_collector_with};
use loa::collector::accounts::{self, Role};
use std::path::Path;
use std::process::Command;

const PW: &str = "mat-khau-that-dai-1";
const TEXT: &str = "Cảnh báo bão số 5. Bà con vùng ven biển phường An Phú khẩn trương di dời \
                    đến nơi an toàn trước 17 giờ hôm nay.";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A collector home with station `phuong-a` (area 79101) registered and an admin; the admin's
/// token and the `--db` argument of the collector (`collector.db` in `home`, or a PostgreSQL
/// database under LOA_TEST_DB=postgres).
fn home_with_admin(home: &Path, a: &TestStation) -> (String, String) {
    std::fs::create_dir_all(home.join("collector/library/tree")).unwrap();
    std::fs::write(
        home.join("collector.toml"),
        format!(
            "[[station]]\nid = \"{}\"\nname = \"Phường An Phú\"\narea_code = \"79101\"\npublic_key = \"{}\"\n",
            a.id,
            a.public_key()
        ),
    )
    .unwrap();
    let db = loa::collector::db::testing::test_db(home, "collector.db");
    let mut c = loa::collector::Store::open(&db).unwrap().into_connection();
    let now = chrono::Utc::now();
    accounts::add_user(&mut c, "lan", Role::Admin, &[], PW, now).unwrap();
    let u = accounts::find_user(&c, "lan").unwrap().unwrap();
    let token = accounts::create_token(&c, &u, "thử", now).unwrap().0;
    (token, db.to_str().unwrap().to_string())
}

fn request(text: &str) -> serde_json::Value {
    let now = chrono::Utc::now();
    serde_json::json!({
        "title": "Cảnh báo bão số 5",
        "priority": "emergency",
        "to": "area:79",
        "not_after": (now + chrono::Duration::hours(6)).to_rfc3339(),
        "text": text,
    })
}

async fn send(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = c
        .post(format!("{base}/api/v1/bulletins"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn get_json(c: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    c.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The station's signed fetch of its bulletins: the envelopes.
async fn fetched(c: &reqwest::Client, base: &str, st: &TestStation) -> Vec<serde_json::Value> {
    let pq = format!("/api/v1/stations/{}/bulletins", st.id);
    let h = loa::centre::request::sign(&st.key, &st.id, "GET", &pq, chrono::Utc::now());
    let mut r = c.get(format!("{base}{pq}"));
    for (k, v) in h.pairs() {
        r = r.header(k, v);
    }
    let v: serde_json::Value = r.send().await.unwrap().json().await.unwrap();
    v["bulletins"].as_array().unwrap().clone()
}

/// The bytes the station would fetch for content `sha`, checked against the hash.
async fn content(c: &reqwest::Client, base: &str, token: &str, sha: &str) -> Vec<u8> {
    let r = c
        .get(format!("{base}/api/v1/content/{sha}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap().to_vec();
    use sha2::Digest as _;
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), sha);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_only_bulletin_is_read_by_espeak_ng_into_the_library_and_marked_synthetic() {
    collector_common::tools::require_tool("espeak-ng", "espeak-ng");
    let home = tempfile::tempdir().unwrap();
    let a = TestStation::new("phuong-a", 1);
    let (admin, db) = home_with_admin(home.path(), &a);
    let srv = real_collector_with(home.path(), &["--db", &db], &[]);
    let base = srv.base.clone();
    let c = client();

    // Neither audio nor text: refused naming the audio field, nothing stored.
    let mut none = request("");
    none.as_object_mut().unwrap().remove("text");
    let (s, body) = send(&c, &base, &admin, &none).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["field"], "audio", "{body}");
    // Too long a text: refused before espeak-ng runs, nothing in the library.
    let (s, body) = send(&c, &base, &admin, &request(&"ư".repeat(5_001))).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["field"], "text", "{body}");
    assert!(
        body["error_vi"]
            .as_str()
            .unwrap()
            .contains("5.001 ký tự, quá giới hạn 5.000 ký tự"),
        "{body}"
    );
    let lib = get_json(&c, &format!("{base}/api/v1/content"), &admin).await;
    assert_eq!(lib["content"].as_array().map_or(0, Vec::len), 0, "{lib}");

    // Text only: read, stored, signed as synthetic.
    let (s, body) = send(&c, &base, &admin, &request(TEXT)).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["synthetic"], true, "{body}");
    let sha = body["audio"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64, "{body}");

    // The station's fetch: an envelope its check accepts under the pinned centre key, naming
    // the synthesised audio, with the text and `synthetic: true`.
    let centre = get_json(&c, &format!("{base}/api/v1/centre"), &admin).await;
    let pinned = loa::wire::decode_public_key(centre["key"].as_str().unwrap()).unwrap();
    let envs = fetched(&c, &base, &a).await;
    assert_eq!(envs.len(), 1);
    let env = loa::centre::Envelope::from_value(&envs[0]).unwrap();
    let ok = loa::bulletin::check(
        &env,
        "phuong-a",
        "79101",
        &[pinned],
        chrono::Utc::now(),
        &|_, _| false,
    )
    .unwrap();
    let b = &ok.bulletin;
    assert!(b.synthetic);
    assert_eq!(b.text.as_deref(), Some(TEXT));
    assert_eq!(b.audio.sha256, sha);

    // The audio: a real WAV (RIFF/WAVE) of a sentence's length, as the library measured it.
    let wav = content(&c, &base, &admin, &sha).await;
    assert_eq!(b.audio.size, wav.len() as u64);
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    let file = home.path().join("tts.wav");
    std::fs::write(&file, &wav).unwrap();
    let measured = loa::loudness::measure_file(&file, &sha).unwrap();
    assert!(
        (3.0..60.0).contains(&measured.duration_secs),
        "a sentence read aloud: {} s",
        measured.duration_secs
    );
    assert!(
        measured.integrated_lufs.is_some_and(|l| l > -50.0),
        "speech, not silence: {measured:?}"
    );
    assert_eq!(
        b.audio.duration_ms,
        (measured.duration_secs * 1000.0).round() as u64
    );
    let lib = get_json(&c, &format!("{base}/api/v1/content"), &admin).await;
    let item = lib["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["sha256"] == sha.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{lib}"));
    assert_eq!(item["category"], "tts", "{item}");
    assert!(
        item["title"]
            .as_str()
            .unwrap()
            .starts_with("Giọng đọc tổng hợp: Cảnh báo bão số 5."),
        "{item}"
    );
    assert!(item["loudness_lufs"].is_number(), "{item}");

    // The audit log: the synthesised content and the send, marked as synthetic.
    let audit = c
        .get(format!("{base}/audit.csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("Tải tệp lên thư viện") && l.contains(&sha)),
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .any(|l| l.contains("Gửi bản tin") && l.contains("giọng đọc tổng hợp")),
        "{audit}"
    );

    // The command line: `--text` without `--audio`.
    let token_file = home.path().join("admin-token");
    std::fs::write(&token_file, &admin).unwrap();
    let not_after = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let out = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args([
            "bulletin",
            "send",
            "--title",
            "Thông báo cắt điện",
            "--text",
            "Thông báo: ngày mai cắt điện từ 7 giờ đến 11 giờ.",
            "--priority",
            "normal",
            "--to",
            "stations:phuong-a",
            "--not-after",
            &not_after,
            "--collector",
            &base,
            "--token-file",
        ])
        .arg(&token_file)
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{so}{se}");
    assert!(
        so.contains("Đã gửi bản tin") && so.contains("giọng đọc tổng hợp"),
        "{so}"
    );
    let envs = fetched(&c, &base, &a).await;
    assert_eq!(envs.len(), 2);
    // Neither --audio nor --text: refused in Vietnamese before anything is sent.
    let out = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args([
            "bulletin",
            "send",
            "--title",
            "x",
            "--priority",
            "normal",
            "--to",
            "all",
            "--not-after",
            &not_after,
            "--collector",
            &base,
            "--token-file",
        ])
        .arg(&token_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cần --audio"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_espeak_ng_the_send_is_refused_naming_the_package_and_nothing_is_stored() {
    let home = tempfile::tempdir().unwrap();
    let a = TestStation::new("phuong-a", 1);
    let (admin, db) = home_with_admin(home.path(), &a);
    // The collector's PATH holds no espeak-ng (as on a machine where it is not installed).
    let bare = tempfile::tempdir().unwrap();
    let srv = real_collector_with(
        home.path(),
        &["--db", &db],
        &[("PATH", bare.path().as_os_str())],
    );
    let base = srv.base.clone();
    let c = client();
    let (s, body) = send(&c, &base, &admin, &request(TEXT)).await;
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["field"], "text", "{body}");
    let vi = body["error_vi"].as_str().unwrap();
    assert!(
        vi.contains("chưa cài espeak-ng") && vi.contains("apt-get install espeak-ng"),
        "{vi}"
    );
    assert!(vi.contains("Không có bản tin nào được gửi"), "{vi}");
    let list = get_json(&c, &format!("{base}/api/v1/bulletins"), &admin).await;
    assert!(list["bulletins"].as_array().unwrap().is_empty(), "{list}");
    let lib = get_json(&c, &format!("{base}/api/v1/content"), &admin).await;
    assert_eq!(lib["content"].as_array().map_or(0, Vec::len), 0, "{lib}");
    assert!(fetched(&c, &base, &a).await.is_empty());
    // A binary named by path that is not there says the same.
    drop(srv);
    let srv = real_collector_with(
        home.path(),
        &["--db", &db, "--espeak-ng", "/nonexistent/espeak-ng"],
        &[],
    );
    let (s, body) = send(&c, &srv.base, &admin, &request(TEXT)).await;
    assert_eq!(s, 503, "{body}");
    assert!(
        body["error_vi"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/espeak-ng"),
        "{body}"
    );
}
