//! The content library with the real binary and a real collector on loopback: a realistic
//! 15-minute 64 kbit/s MP3 uploaded by `loa content add` (streamed, measured once), a non-audio
//! upload and an over-limit upload refused in Vietnamese with nothing stored, the episode assigned
//! as CCHC for 2027-01 and found at the tree path the station's schedule names (and in its plan),
//! and a download resumed from the middle with Range.

mod collector_common;

use collector_common::{TestStation, tools};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_loa");

fn loa(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run audio tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 15-minute 64 kbit/s mono MP3 of pink noise (what a ward's monthly episode weighs, ~7 MB).
fn episode_mp3(dir: &Path) -> PathBuf {
    tools::require_tool("sox", "sox");
    tools::require_tool("lame", "lame");
    let wav = dir.join("episode.wav");
    let mp3 = dir.join("episode.mp3");
    run(Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["synth", "900", "pinknoise", "vol", "0.25"]));
    run(Command::new("lame")
        .args(["--quiet", "--cbr", "-b", "64"])
        .arg(&wav)
        .arg(&mp3));
    std::fs::remove_file(&wav).unwrap();
    mp3
}

/// A collector started by the binary with state directory `home` (where its library lies, also
/// when the database is PostgreSQL's): its base URL and the process.
fn start_collector(home: &Path, db: &Path, cfg: &Path, extra: &[&str]) -> (String, Killed) {
    let mut child = Command::new(BIN)
        .args(["collector", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .env("LOA_HOME", home)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Killed(child);
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("collector exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (base, child)
}

/// The state a site needs: a ward whose schedule airs program `cchc` (episodes
/// `cchc/{yyyy}-{mm}.mp3`) in January 2027 from the library's tree, an admin with a token.
struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    db: PathBuf,
    cfg: PathBuf,
    token_file: PathBuf,
    schedules: PathBuf,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let db = loa::collector::db::testing::test_db(&root.join("var"), "collector.db");
        let cfg = root.join("var/collector.toml");
        std::fs::create_dir_all(root.join("var")).unwrap();
        let schedules = root.join("schedules");
        std::fs::create_dir_all(&schedules).unwrap();
        std::fs::write(
            schedules.join("phuong-1.toml"),
            r#"id = "phuong-1"
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
"#,
        )
        .unwrap();
        let tree = root.join("var/collector/library/tree");
        let st = TestStation::new("phuong-1", 1);
        std::fs::write(
            &cfg,
            format!(
                "[[station]]\nid = \"phuong-1\"\nname = \"Phường Một\"\narea_code = \"21100\"\npublic_key = \"{}\"\nschedule = \"{}\"\naudio_root = \"{}\"\n",
                st.public_key(),
                schedules.join("phuong-1.toml").display(),
                tree.display()
            ),
        )
        .unwrap();
        let db_s = db.to_str().unwrap();
        let (code, out, err) = loa(&["user", "add", "lan", "--role", "admin", "--db", db_s]);
        assert_eq!(code, 0, "{out}{err}");
        let (code, token, err) = loa(&["user", "token", "lan", "--db", db_s]);
        assert_eq!(code, 0, "{err}");
        let token_file = root.join("token");
        std::fs::write(&token_file, token.trim()).unwrap();
        Self {
            _dir: dir,
            root,
            db,
            cfg,
            token_file,
            schedules,
        }
    }

    fn token(&self) -> String {
        std::fs::read_to_string(&self.token_file).unwrap()
    }

    /// Files under the library's `content/` (nothing may be stored by a refused upload).
    fn stored_files(&self) -> usize {
        let mut n = 0;
        let mut stack = vec![self.root.join("var/collector/library/content")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    n += 1;
                }
            }
        }
        n
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_episode_is_uploaded_measured_assigned_and_downloaded_with_resume() {
    let site = Site::new();
    let mp3 = episode_mp3(&site.root);
    let bytes = std::fs::read(&mp3).unwrap();
    assert!(
        (6_500_000..8_000_000).contains(&bytes.len()),
        "{}",
        bytes.len()
    );
    let (base, _collector) = start_collector(&site.root.join("var"), &site.db, &site.cfg, &[]);
    let token_file = site.token_file.to_str().unwrap();

    // Upload and assign with the command line, as a script at the office would.
    let out = Command::new(BIN)
        .args(["content", "add"])
        .arg(&mp3)
        .args([
            "--title",
            "CCHC tháng 1/2027",
            "--category",
            "cchc",
            "--month",
            "2027-01",
            "--program",
            "cchc",
            "--collector",
            &base,
            "--token-file",
            token_file,
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("thời lượng 15:00"), "{stdout}");
    assert!(stdout.contains("LUFS"), "{stdout}");
    assert!(stdout.contains("đã gán tại cchc/2027-01.mp3"), "{stdout}");

    // Measured once at upload: the list says so.
    let c = client();
    let list: serde_json::Value = c
        .get(format!("{base}/api/v1/content"))
        .bearer_auth(site.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = &list["content"][0];
    let sha = item["sha256"].as_str().unwrap().to_string();
    let duration = item["duration_secs"].as_f64().unwrap();
    assert!((duration - 900.0).abs() < 0.5, "{item}");
    let lufs = item["loudness_lufs"].as_f64().unwrap();
    assert!((-40.0..-5.0).contains(&lufs), "{item}");
    assert!(item["true_peak_dbtp"].as_f64().unwrap() < 0.5, "{item}");
    assert_eq!(item["uploader"], "lan");
    assert_eq!(item["size"].as_u64().unwrap() as usize, bytes.len());
    assert_eq!(item["paths"][0]["path"], "cchc/2027-01.mp3");
    assert_eq!(item["paths"][0]["why"]["program"], "cchc");
    assert_eq!(item["paths"][0]["why"]["month"], "2027-01");

    // The page lists it the Vietnamese way.
    let page = c
        .get(format!("{base}/library"))
        .bearer_auth(site.token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        // minijinja escapes `/` too.
        .replace("&#x2f;", "/");
    assert!(page.contains("CCHC tháng 1/2027"), "{page}");
    assert!(page.contains("15:00"), "{page}");
    assert!(
        page.contains(&format!("{} LUFS", format!("{lufs:.1}").replace('.', ","))),
        "{page}"
    );
    // "Dùng ở" names the program by its title (its id in the pointer's hint), the month the
    // Vietnamese way.
    assert!(
        page.contains("cchc/2027-01.mp3 (tập «Cải cách hành chính» tháng 01/2027)"),
        "{page}"
    );
    assert!(page.contains("title=\"chương trình cchc\""), "{page}");

    // The file is at the tree path, and the station's plan for January 2027 names it.
    let tree = site.root.join("var/collector/library/tree");
    assert_eq!(std::fs::read(tree.join("cchc/2027-01.mp3")).unwrap(), bytes);
    let (code, plan, err) = loa(&[
        "plan",
        "--station",
        "phuong-1",
        "--from",
        "2027-01-01",
        "--to",
        "2027-01-31",
        "--json",
        "--schedules",
        site.schedules.to_str().unwrap(),
        "--audio",
        tree.to_str().unwrap(),
        "--today",
        "2026-12-05",
    ]);
    assert_eq!(code, 0, "{plan}{err}");
    assert!(plan.contains("cchc/2027-01.mp3"), "{plan}");
    assert_eq!(plan.matches("cchc/2027-01.mp3").count(), 4, "{plan}");

    // A download cut in the middle resumes with Range: the parts are the file's bytes.
    let url = format!("{base}/api/v1/content/{sha}");
    let whole = c.get(&url).bearer_auth(site.token()).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(
        whole.headers()["etag"].to_str().unwrap(),
        format!("\"{sha}\"")
    );
    assert_eq!(
        whole.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    let mid = bytes.len() / 2;
    let first: Vec<u8> = bytes[..mid].to_vec();
    let rest = c
        .get(&url)
        .bearer_auth(site.token())
        .header("range", format!("bytes={mid}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 206);
    assert_eq!(
        rest.headers()["content-range"].to_str().unwrap(),
        format!("bytes {mid}-{}/{}", bytes.len() - 1, bytes.len())
    );
    let mut joined = first;
    joined.extend_from_slice(&rest.bytes().await.unwrap());
    assert!(joined == bytes, "resumed download differs from the file");
    let beyond = c
        .get(&url)
        .bearer_auth(site.token())
        .header("range", format!("bytes={}-", bytes.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let unknown = c
        .get(format!("{base}/api/v1/content/{}", "0".repeat(64)))
        .bearer_auth(site.token())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let anonymous = c.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // Replacing the assignment keeps the old value in the audit log (before → after).
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.mp3");
    let (code, out, err) = loa(&[
        "content",
        "add",
        tone.to_str().unwrap(),
        "--title",
        "CCHC tháng 1/2027 (sửa)",
        "--category",
        "cchc",
        "--month",
        "2027-01",
        "--program",
        "cchc",
        "--collector",
        &base,
        "--token-file",
        token_file,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read(tree.join("cchc/2027-01.mp3")).unwrap(),
        std::fs::read(&tone).unwrap()
    );
    let audit = c
        .get(format!("{base}/audit"))
        .bearer_auth(site.token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(audit.contains("Đặt tệp vào lịch phát"), "{audit}");
    assert!(
        audit.contains(&format!("cchc/2027-01.mp3 = {sha}")),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_audio_and_over_limit_uploads_are_refused_in_vietnamese_and_nothing_is_stored() {
    let site = Site::new();
    let (base, _collector) = start_collector(
        &site.root.join("var"),
        &site.db,
        &site.cfg,
        &["--max-upload-bytes", "1000000"],
    );
    let c = client();
    // Not audio.
    let r = c
        .post(format!(
            "{base}/api/v1/content?title=Th%C6%B0&category=notice"
        ))
        .bearer_auth(site.token())
        .body(b"%PDF-1.4 this is a letter, not a recording".repeat(100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "content.undecodable");
    let vi = body["error_vi"].as_str().unwrap();
    assert!(vi.contains("Tệp không phải âm thanh giải mã được"), "{vi}");
    assert!(!vi.contains("upload-"), "{vi}");
    // The decoder's English detail is in the English `error` only, never in the Vietnamese.
    let english = body["error"].as_str().unwrap();
    let detail = english
        .split_once("): ")
        .and_then(|(_, d)| d.rsplit_once("; nothing was stored"))
        .map(|(d, _)| d)
        .unwrap_or_else(|| panic!("{english}"));
    assert!(!detail.is_empty(), "{english}");
    assert!(!vi.contains(detail), "{vi} / {detail}");
    // The page's upload form says the same, in Vietnamese only.
    let boundary = "loa-test-boundary";
    let mut form = Vec::new();
    for (name, value) in [("title", "Thư"), ("category", "notice")] {
        form.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    form.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"thu.pdf\"\r\nContent-Type: application/pdf\r\n\r\n").as_bytes(),
    );
    form.extend_from_slice(&b"%PDF-1.4 this is a letter, not a recording".repeat(100));
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = c
        .post(format!("{base}/library/upload"))
        .bearer_auth(site.token())
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap().replace("&#x2f;", "/");
    assert!(
        page.contains("Tệp không phải âm thanh giải mã được"),
        "{page}"
    );
    assert!(!page.contains(detail), "{page}");
    // Over the limit (a 2 MB body against a 1 MB limit), through the command line too.
    let big = site.root.join("big.mp3");
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.mp3");
    let mut data = std::fs::read(tone).unwrap();
    while data.len() < 2_000_000 {
        data.extend_from_within(..);
    }
    std::fs::write(&big, &data).unwrap();
    let r = c
        .post(format!("{base}/api/v1/content?title=To&category=notice"))
        .bearer_auth(site.token())
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "content.too_large");
    assert!(
        body["error_vi"]
            .as_str()
            .unwrap()
            .contains("lớn hơn giới hạn 1 MB"),
        "{body}"
    );
    let (code, out, err) = loa(&[
        "content",
        "add",
        big.to_str().unwrap(),
        "--title",
        "To",
        "--category",
        "notice",
        "--collector",
        &base,
        "--token-file",
        site.token_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("lớn hơn giới hạn"), "{err}");
    // Nothing stored: no content file, no temp file, an empty list.
    assert_eq!(site.stored_files(), 0);
    let tmp = site.root.join("var/collector/library/tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
    let list: serde_json::Value = c
        .get(format!("{base}/api/v1/content"))
        .bearer_auth(site.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["content"].as_array().unwrap().len(), 0, "{list}");
}
