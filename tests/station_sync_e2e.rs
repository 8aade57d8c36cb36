//! Sync end to end with the real binaries on loopback: `loa collector` (its layout in
//! `$LOA_HOME`, real SQLite or PostgreSQL, the centre key, the content library), boxes enrolled by
//! code with `loa enrol`, and `loa station` with no schedule of its own (it starts waiting for its
//! first version) airing through the real player into a WAV file (`--output wav:PATH`).
//!
//! - an episode uploaded once and assigned to program `cchc` reaches three stations, each
//!   downloads and verifies it, switches to version 1 and airs it at the slot's second; the
//!   collector receives the records naming that file (and its SHA-256);
//! - a station pinned to another centre key refuses the manifest (`sync.centre_signature` in the
//!   heartbeat the collector stored) and activates nothing;
//! - a flipped byte in the collector's stored file is refused (`sync.hash_mismatch`) and the
//!   station keeps airing version 1;
//! - a 15-minute 64 kbit/s episode (~7 MB) whose download a proxy cuts once in the middle
//!   resumes with Range and verifies; the bytes served are the file once (plus headers);
//! - a bulletin sent to an enrolled station is fetched, checked, its audio verified, reported
//!   `delivered` and aired (its record at the collector names it).

mod station_common;

use loa::wire::{AiringRecord, Heartbeat, Outcome, SyncHealth};
use sha2::{Digest, Sha256};
use station_common::{LOA, Station, tools, unique, wait_until};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PROGRAM: &str = "[[programs]]\nid = \"cchc\"\ntitle = \"Cải cách hành chính\"\ncategory = \"cchc\"\nepisodes = \"cchc/{yyyy}-{mm}.mp3\"\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The station zone's local time now (UTC+7).
fn local_now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap())
}

fn month(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    t.format("%Y-%m").to_string()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Centre {
    child: Child,
    url: String,
    home: PathBuf,
    /// The collector's database: `collector.db` in `home`, or a PostgreSQL database under
    /// `LOA_TEST_DB=postgres`.
    db: PathBuf,
    admin: String,
    token_file: PathBuf,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Drop for Centre {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Centre {
    /// A collector whose registry holds a template schedule defining program `cchc` (so an
    /// episode can be assigned to it before any station's version uses it).
    fn start() -> Self {
        Self::start_with(true)
    }

    /// A collector; with `template`, its registry holds the template schedule of [`Self::start`],
    /// without, it starts with no registry file (a fresh centre).
    fn start_with(template: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("centre");
        std::fs::create_dir_all(&home).unwrap();
        if template {
            Self::write_template(&home);
        }
        Self::spawn(dir, home)
    }

    fn write_template(home: &Path) {
        let template = home.join("mau.toml");
        std::fs::write(
            &template,
            format!(
                "id = \"mau\"\nname = \"Mẫu\"\nkind = \"ward\"\narea_code = \"21100\"\n\n{PROGRAM}"
            ),
        )
        .unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        std::fs::write(
            home.join("collector.toml"),
            format!(
                "[[station]]\nid = \"mau\"\nname = \"Mẫu\"\narea_code = \"21100\"\npublic_key = \"{}\"\nschedule = \"{}\"\naudio_root = \"{}\"\n",
                loa::wire::encode_public_key(&key),
                template.display(),
                home.join("collector/library/tree").display()
            ),
        )
        .unwrap();
    }

    fn spawn(dir: tempfile::TempDir, home: PathBuf) -> Self {
        let db = loa::collector::db::testing::test_db(&home, "collector.db");
        run_ok(
            Command::new(LOA)
                .args(["user", "add", "boss", "--role", "admin", "--db"])
                .arg(&db),
        );
        let admin = run_ok(
            Command::new(LOA)
                .args(["user", "token", "boss", "--db"])
                .arg(&db),
        );
        let token_file = home.join("token");
        std::fs::write(&token_file, &admin).unwrap();
        let log = home.join("collector.log");
        let child = Command::new(LOA)
            .args(["collector", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .env("LOA_HOME", &home)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let url = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(i) = text.find("listening on ") {
                break text[i + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "collector did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            child,
            url,
            home,
            db,
            admin,
            token_file,
            rt,
            _dir: dir,
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(String, &str)>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.url);
        self.rt.block_on(async {
            let mut r = reqwest::Client::new()
                .request(method, &url)
                .bearer_auth(&self.admin);
            if let Some((b, ct)) = body {
                r = r.header("content-type", ct).body(b);
            }
            let r = r.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or_default())
        })
    }

    /// Create station `id`; its enrolment code.
    fn create(&self, id: &str) -> String {
        let body = serde_json::json!({
            "id": id, "name": format!("Phường {id}"), "area_code": "21193", "kind": "ward",
            "operators": [],
        });
        let (s, v) = self.request(
            reqwest::Method::POST,
            "/api/v1/admin/enrolments",
            Some((body.to_string(), "application/json")),
        );
        assert_eq!(s, 201, "{v}");
        v["code"].as_str().unwrap().to_string()
    }

    /// Upload `file` once, assigned as program cchc's episode for `month`; its SHA-256.
    fn upload_episode(&self, file: &Path, month: &str) -> String {
        let out = run_ok(
            Command::new(LOA)
                .args(["content", "add"])
                .arg(file)
                .args([
                    "--title",
                    &format!("CCHC {month}"),
                    "--category",
                    "cchc",
                    "--month",
                    month,
                    "--program",
                    "cchc",
                    "--collector",
                    &self.url,
                    "--token-file",
                ])
                .arg(&self.token_file),
        );
        assert!(out.contains("đã gán tại cchc/"), "{out}");
        sha_hex(&std::fs::read(file).unwrap())
    }

    /// Publish `text` as station `id`'s next version; its number.
    fn publish(&self, id: &str, text: &str) -> u64 {
        let (s, v) = self.request(
            reqwest::Method::PUT,
            &format!("/api/v1/stations/{id}/schedule"),
            Some((text.to_string(), "application/toml")),
        );
        assert_eq!(s, 201, "{v}");
        v["version"].as_u64().unwrap()
    }

    /// The sync state in station `id`'s latest heartbeat the collector stored.
    fn stored_sync(&self, id: &str) -> Option<SyncHealth> {
        use loa::collector::db::{Conn, Location, params};
        let conn = Conn::open(&Location::of_path(&self.db)).ok()?;
        let bytes: String = conn
            .query_row(
                "SELECT bytes FROM heartbeats WHERE station = ?1",
                params![id],
                |r| r.get(0),
            )
            .ok()?;
        let hb: Heartbeat = serde_json::from_str(&bytes).ok()?;
        hb.sync
    }

    /// The records of station `id` the collector stored (today ± 1 day).
    fn records(&self, id: &str) -> Vec<AiringRecord> {
        let today = chrono::Utc::now().date_naive();
        let (s, v) = self.request(
            reqwest::Method::GET,
            &format!(
                "/api/v1/stations/{id}/airings?from={}&to={}",
                today - chrono::Days::new(1),
                today + chrono::Days::new(1)
            ),
            None,
        );
        assert_eq!(s, 200, "{v}");
        v["airings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| serde_json::from_value(a["record"].clone()).unwrap())
            .collect()
    }

    /// Station `b`'s manifest as it fetches it (a request signed with its key), opened against
    /// the centre key it pinned at enrolment (signature, shape, station).
    fn manifest(&self, b: &Box_) -> loa::centre::manifest::Manifest {
        let env = self.manifest_envelope(b);
        let pinned = loa::centre::pin::load(&b.data()).unwrap();
        loa::centre::manifest::open(&env, &pinned.keys(), &b.id, None).unwrap()
    }

    /// Station `b`'s manifest envelope as it fetches it (not verified).
    fn manifest_envelope(&self, b: &Box_) -> loa::centre::signed::Envelope {
        let key = loa::keys::load(&b.data()).unwrap();
        let pq = format!("/api/v1/stations/{}/manifest", b.id);
        let h = loa::centre::request::sign(&key, &b.id, "GET", &pq, chrono::Utc::now());
        let (status, bytes) = self.rt.block_on(async {
            let mut r = reqwest::Client::new().get(format!("{}{pq}", self.url));
            for (k, v) in h.pairs() {
                r = r.header(k, v);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        });
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        loa::centre::signed::Envelope::decode(&bytes).unwrap()
    }

    /// The library's stored copy of content `sha`.
    fn stored_content(&self, sha: &str) -> PathBuf {
        let p = self
            .home
            .join("collector/library/content")
            .join(&sha[..2])
            .join(sha);
        assert!(p.is_file(), "{}", p.display());
        p
    }
}

/// A station box: its working directory and `$LOA_HOME`.
struct Box_ {
    dir: tempfile::TempDir,
    id: String,
}

impl Box_ {
    fn enrol(centre: &Centre, id: &str) -> Self {
        let code = centre.create(id);
        let dir = tempfile::tempdir().unwrap();
        let b = Self {
            dir,
            id: id.to_string(),
        };
        run_ok(
            Command::new(LOA)
                .args(["enrol", "--collector", &centre.url, "--code", &code])
                .current_dir(b.dir.path())
                .env("LOA_HOME", b.home()),
        );
        assert!(b.data().join("centre.pub").is_file());
        b
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("var")
    }
    fn data(&self) -> PathBuf {
        self.home().join("station").join(&self.id)
    }
    fn aired_wav(&self) -> PathBuf {
        self.dir.path().join("aired.wav")
    }
    fn store(&self) -> loa::station::sync::Store {
        loa::station::sync::Store::new(&self.data())
    }
    /// `loa station` with no flag but the output, the heartbeat period and `extra`.
    fn start(&self, extra: &[&str]) -> Station {
        let log = unique(self.dir.path().join(format!("{}.log", self.id)));
        let child = Command::new(LOA)
            .args(["station", "--heartbeat-secs", "1", "--output"])
            .arg(format!("wav:{}", self.aired_wav().display()))
            .args(extra)
            .current_dir(self.dir.path())
            .env("LOA_HOME", self.home())
            .env("LOA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Station { child, log };
        s.wait_log("journal open", Duration::from_secs(60));
        s
    }
}

/// A schedule for `id` airing program cchc by `cron` (6 fields, seconds first, station time).
fn schedule(id: &str, cron: &str) -> String {
    format!(
        "id = \"{id}\"\nname = \"Phường {id}\"\nkind = \"ward\"\narea_code = \"21193\"\n\n{PROGRAM}\n[[slots]]\nid = \"cchc\"\ncron = \"{cron}\"\nfrom = {today}\nuntil = {today}\nplay = [\"program:cchc\"]\ngrace_secs = 5\nmax_minutes = 20\n",
        today = local_now().date_naive()
    )
}

fn cron_at(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    use chrono::Timelike;
    format!("{} {} {} * * *", t.second(), t.minute(), t.hour())
}

/// Every `step` seconds during the current and next three minutes (station time).
fn cron_every(step: u32) -> Vec<String> {
    use chrono::Timelike;
    let now = local_now();
    (0..4)
        .map(|i| {
            let t = now + chrono::Duration::minutes(i);
            format!("*/{step} {} {} * * *", t.minute(), t.hour())
        })
        .collect()
}

fn schedule_every(id: &str, step: u32, path: &str) -> String {
    let crons = cron_every(step)
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "id = \"{id}\"\nname = \"Phường {id}\"\nkind = \"ward\"\narea_code = \"21193\"\n\n{PROGRAM}\n[[slots]]\nid = \"tin\"\ncron = [{crons}]\nplay = [\"{path}\"]\ngrace_secs = 2\nmax_minutes = 1\n"
    )
}

fn wait_sync(centre: &Centre, id: &str, what: &str, st: &Station, f: impl Fn(&SyncHealth) -> bool) {
    let t0 = Instant::now();
    loop {
        if centre.stored_sync(id).as_ref().is_some_and(&f) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "{id}: no heartbeat with {what}: {:?}\n{}",
            centre.stored_sync(id),
            st.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_episode_uploaded_once_reaches_three_stations_and_airs_on_schedule_and_a_foreign_key_is_refused()
 {
    let centre = Centre::start();
    let ids = ["phuong-1", "phuong-2", "phuong-3"];
    let boxes: Vec<Box_> = ids.iter().map(|id| Box_::enrol(&centre, id)).collect();
    // A fourth box pinned to another centre's key (as if enrolled elsewhere).
    let stray = Box_::enrol(&centre, "phuong-4");
    let foreign = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    std::fs::write(
        stray.data().join("centre.pub"),
        format!("{}\n", loa::wire::encode_public_key(&foreign)),
    )
    .unwrap();

    // First start with no version: each station runs, heartbeats, airs nothing and says so.
    let stations: Vec<Station> = boxes.iter().map(|b| b.start(&[])).collect();
    let stray_st = stray.start(&[]);
    for (b, st) in boxes.iter().zip(&stations) {
        st.wait_log(
            "waiting for its first schedule version",
            Duration::from_secs(10),
        );
        wait_sync(&centre, &b.id, "no active version", st, |s| {
            s.active_version.is_none() && s.last_error_code.is_none()
        });
    }

    // One upload, assigned to the program for this month; each station's schedule airs the
    // program once, a minute ahead.
    let now = local_now();
    let sha = centre.upload_episode(&fixture("tone.mp3"), &month(now));
    let path = format!("cchc/{}.mp3", month(now));
    let at = now + chrono::Duration::seconds(60);
    let at = at - chrono::Duration::nanoseconds(at.timestamp_subsec_nanos() as i64);
    let published = Instant::now();
    for id in ids.iter().chain(["phuong-4"].iter()) {
        assert_eq!(centre.publish(id, &schedule(id, &cron_at(at))), 1);
    }

    // Each managed station fetches, verifies, stages and switches to version 1 before the slot.
    for (b, st) in boxes.iter().zip(&stations) {
        wait_sync(&centre, &b.id, "version 1 active", st, |s| {
            s.active_version == Some(1) && s.missing_files == 0 && s.last_error_code.is_none()
        });
        assert!(
            chrono::Utc::now() < at,
            "{}: switched too late\n{}",
            b.id,
            st.log()
        );
        let held = std::fs::read(b.store().content(&sha)).unwrap();
        assert_eq!(sha_hex(&held), sha);
        assert_eq!(b.store().active().unwrap(), Some(1));
    }
    println!(
        "three stations hold version 1 and its file verified {:.1} s after the four publishes \
         began (heartbeat every 1 s, debug build)",
        published.elapsed().as_secs_f64()
    );
    // The stray station refuses the manifest signed by a key it did not pin.
    wait_sync(
        &centre,
        "phuong-4",
        "sync.centre_signature",
        &stray_st,
        |s| s.last_error_code.as_ref().map(|c| c.as_str()) == Some("sync.centre_signature"),
    );
    assert_eq!(stray.store().active().unwrap(), None);
    assert!(stray.store().versions().unwrap().is_empty());
    assert!(
        stray_st.log().contains("not a pinned centre key"),
        "{}",
        stray_st.log()
    );

    // The records reach the collector, naming the file, aired at the slot's second.
    for (b, st) in boxes.iter().zip(&stations) {
        let t0 = Instant::now();
        let rec = loop {
            if let Some(r) = centre
                .records(&b.id)
                .into_iter()
                .find(|r| r.outcome == Outcome::Aired)
            {
                break r;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(150),
                "{}: no aired record at the collector\n{}",
                b.id,
                st.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        assert_eq!(rec.items[0].path, path, "{rec:?}");
        assert_eq!(rec.items[0].sha256, sha, "{rec:?}");
        assert_eq!(rec.scheduled_at, at, "{rec:?}");
        let late = (rec.actual_start.unwrap() - rec.scheduled_at).num_milliseconds();
        assert!((-3_000..3_000).contains(&late), "{late} ms: {rec:?}");
    }
    assert!(centre.records("phuong-4").is_empty());
    for st in stations {
        st.stop();
    }
    stray_st.stop();
    // The player's real output path wrote the tone (not silence) into each WAV (32-bit float,
    // complete once the station stopped).
    for b in &boxes {
        let peak = hound::WavReader::open(b.aired_wav())
            .unwrap()
            .into_samples::<f32>()
            .map(|x| x.map_or(0.0, f32::abs))
            .fold(0.0f32, f32::max);
        assert!(
            peak > 0.05,
            "{}: the aired WAV is silent (peak {peak})",
            b.id
        );
    }
}

#[test]
fn a_flipped_byte_at_the_centre_is_refused_and_the_old_version_keeps_airing() {
    let centre = Centre::start();
    let b = Box_::enrol(&centre, "phuong-c");
    let now = local_now();
    centre.upload_episode(&fixture("tone.mp3"), &month(now));
    let this = format!("cchc/{}.mp3", month(now));
    assert_eq!(centre.publish(&b.id, &schedule_every(&b.id, 4, &this)), 1);
    let st = b.start(&[]);
    wait_sync(&centre, &b.id, "version 1 active", &st, |s| {
        s.active_version == Some(1)
    });
    st.stop();

    // Version 2 airs next month's episode; its manifest is built and cached with the right
    // hash (fetched here, signed by the station's key), then the stored file is altered.
    let next = now + chrono::Duration::days(32);
    let sha2 = centre.upload_episode(&fixture("long.mp3"), &month(next));
    let other = format!("cchc/{}.mp3", month(next));
    assert_eq!(centre.publish(&b.id, &schedule_every(&b.id, 10, &other)), 2);
    let key = loa::keys::load(&b.data()).unwrap();
    let pq = format!("/api/v1/stations/{}/manifest", b.id);
    let h = loa::centre::request::sign(&key, &b.id, "GET", &pq, chrono::Utc::now());
    let manifest = centre.rt.block_on(async {
        let mut r = reqwest::Client::new().get(format!("{}{pq}", centre.url));
        for (k, v) in h.pairs() {
            r = r.header(k, v);
        }
        r.send().await.unwrap().text().await.unwrap()
    });
    assert!(manifest.contains("\"kind\":\"manifest\""), "{manifest}");
    let stored = centre.stored_content(&sha2);
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&stored, &bytes).unwrap();

    let started = chrono::Utc::now();
    let st = b.start(&[]);
    wait_sync(&centre, &b.id, "sync.hash_mismatch", &st, |s| {
        s.last_error_code.as_ref().map(|c| c.as_str()) == Some("sync.hash_mismatch")
            && s.active_version == Some(1)
            && s.pending_version == Some(2)
            && s.missing_files == 1
    });
    assert!(
        st.log().contains("does not match the manifest"),
        "{}",
        st.log()
    );
    assert!(!b.store().holds(&sha2));
    assert!(!b.store().part(&sha2).exists());
    assert!(!b.store().version_dir(2).exists());
    // Version 1 keeps airing.
    wait_until(
        Duration::from_secs(60),
        "an airing of version 1 after the refusal",
        || {
            b.store().active().unwrap() == Some(1)
                && station_common_records(&b).iter().any(|r| {
                    r.outcome == Outcome::Aired
                        && r.actual_start.is_some_and(|s| s > started)
                        && r.items[0].path == this
                })
        },
    );
    st.stop();
}

fn station_common_records(b: &Box_) -> Vec<AiringRecord> {
    loa::journal::read_all(&loa::journal::journal_dir(&b.data()))
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// A TCP proxy to `upstream` that forwards both ways and, once, drops a connection after
/// `cut_after` bytes of answer; it counts the answer bytes and keeps the requests' heads.
struct Proxy {
    url: String,
    served: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(upstream: &str, cut_after: u64) -> Self {
        let up = upstream.trim_start_matches("http://").to_string();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let served = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s2, c2, h2) = (served.clone(), cut.clone(), heads.clone());
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                let (s, c, h) = (s2.clone(), c2.clone(), h2.clone());
                // Requests: forwarded, their text kept (heads are ASCII).
                let (mut cr, mut sw) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = cr.read(&mut buf) {
                        if n == 0 || sw.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        h.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                    let _ = sw.shutdown(std::net::Shutdown::Write);
                });
                // Answers: forwarded and counted; the first connection to pass `cut_after`
                // answer bytes is cut there.
                let (mut sr, mut cw) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    let mut sent = 0u64;
                    while let Ok(n) = sr.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut n = n as u64;
                        let cutting = !c.load(Ordering::SeqCst) && sent + n >= cut_after;
                        if cutting {
                            n = cut_after - sent;
                        }
                        if cw.write_all(&buf[..n as usize]).is_err() {
                            break;
                        }
                        sent += n;
                        s.fetch_add(n, Ordering::SeqCst);
                        if cutting && !c.swap(true, Ordering::SeqCst) {
                            let _ = cw.shutdown(std::net::Shutdown::Both);
                            let _ = sr.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                    }
                    let _ = cw.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self {
            url,
            served,
            cut,
            heads,
        }
    }
}

/// A 15-minute 64 kbit/s mono MP3 of pink noise (~7 MB), as tests/library.rs makes it.
fn episode_mp3(dir: &Path) -> PathBuf {
    tools::require_tool("sox", "sox");
    tools::require_tool("lame", "lame");
    let wav = dir.join("episode.wav");
    let mp3 = dir.join("episode.mp3");
    run_ok(
        Command::new("sox")
            .args(["-n", "-r", "44100", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", "900", "pinknoise", "vol", "0.25"]),
    );
    run_ok(
        Command::new("lame")
            .args(["--quiet", "--cbr", "-b", "64"])
            .arg(&wav)
            .arg(&mp3),
    );
    std::fs::remove_file(&wav).unwrap();
    mp3
}

#[test]
fn a_download_cut_in_the_middle_resumes_and_the_file_verifies() {
    let centre = Centre::start();
    let b = Box_::enrol(&centre, "phuong-d");
    let work = tempfile::tempdir().unwrap();
    let mp3 = episode_mp3(work.path());
    let size = std::fs::metadata(&mp3).unwrap().len();
    assert!((6_500_000..8_000_000).contains(&size), "{size}");
    let now = local_now();
    let sha = centre.upload_episode(&mp3, &month(now));
    // Aired at 03:00 station time: the test is about the download, not the airing.
    assert_eq!(centre.publish(&b.id, &schedule(&b.id, "0 0 3 * * *")), 1);

    let cut_after = 3_000_000;
    let proxy = Proxy::start(&centre.url, cut_after);
    let st = b.start(&["--collector", &proxy.url]);
    wait_sync(&centre, &b.id, "version 1 active", &st, |s| {
        s.active_version == Some(1) && s.last_error_code.is_none()
    });
    assert!(
        proxy.cut.load(Ordering::SeqCst),
        "the proxy never cut a connection"
    );
    let held = std::fs::read(b.store().content(&sha)).unwrap();
    assert_eq!(held.len() as u64, size);
    assert_eq!(sha_hex(&held), sha);
    let log = st.stop();
    assert!(log.contains("download interrupted, retrying"), "{log}");
    // The second request asked for the rest, from where the cut left the part file.
    let heads = proxy.heads.lock().unwrap().join("");
    let ranges: Vec<u64> = heads
        .lines()
        .filter_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("range: bytes=")
                .map(str::to_string)
        })
        .filter_map(|r| r.trim_end_matches('-').trim().parse().ok())
        .collect();
    assert_eq!(ranges.len(), 1, "{heads}");
    let resumed = ranges[0];
    assert!(
        (cut_after - 100_000..cut_after).contains(&resumed),
        "resumed from {resumed}"
    );
    assert!(log.contains(&format!("resumed_from={resumed}")), "{log}");
    // Bytes served: the file once (the first part, then the rest), plus the heads of the
    // answers (manifest, heartbeats): far less than twice the file.
    let served = proxy.served.load(Ordering::SeqCst);
    println!(
        "fixture: 15-min 64 kbit/s MP3, {size} bytes; cut after {cut_after} answer bytes; resumed from {resumed}; \
         bytes served through the proxy {served} (file + {} of heads, manifest and heartbeat answers)",
        served - size
    );
    assert!(
        served >= size && served < size + 200_000,
        "{served} vs {size}"
    );
}

/// Replacing this month's episode (a new file assigned to the same program and month) publishes
/// a new version for the station that airs it: the manifest it fetches next has a higher
/// version naming the new file, and the running station takes it and holds the file verified.
#[test]
fn a_replaced_episode_reaches_the_station_in_a_new_version() {
    let centre = Centre::start();
    let b = Box_::enrol(&centre, "phuong-r");
    let now = local_now();
    let path = format!("cchc/{}.mp3", month(now));
    let first = centre.upload_episode(&fixture("tone.mp3"), &month(now));
    // Aired at 03:00 station time: the test is about what reaches the station.
    assert_eq!(centre.publish(&b.id, &schedule(&b.id, "0 0 3 * * *")), 1);
    let m1 = centre.manifest(&b);
    assert_eq!(m1.version, 1);
    let file_of = |m: &loa::centre::manifest::Manifest| {
        m.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.sha256.clone())
    };
    assert_eq!(file_of(&m1), Some(first.clone()), "{m1:?}");
    let st = b.start(&[]);
    wait_sync(&centre, &b.id, "version 1 active", &st, |s| {
        s.active_version == Some(1) && s.missing_files == 0 && s.last_error_code.is_none()
    });

    // The replacement: another file for the same program and month.
    let second = centre.upload_episode(&fixture("long.mp3"), &month(now));
    assert_ne!(first, second);
    let m2 = centre.manifest(&b);
    assert!(
        m2.version > m1.version,
        "{} after {}",
        m2.version,
        m1.version
    );
    assert_eq!(file_of(&m2), Some(second.clone()), "{m2:?}");
    // The station learns of it from its heartbeat's answer, downloads, verifies and switches.
    wait_sync(
        &centre,
        &b.id,
        "the replacement's version active",
        &st,
        |s| {
            s.active_version == Some(m2.version)
                && s.missing_files == 0
                && s.last_error_code.is_none()
        },
    );
    assert!(b.store().holds(&second));
    let aired_file = b.store().audio_root(m2.version).join(&path);
    assert_eq!(sha_hex(&std::fs::read(aired_file).unwrap()), second);
    st.stop();
}

/// The city's program defined once, in the shared program list: on a fresh centre (no station
/// schedule defines it) its episode is assigned, then a station's schedule that only names
/// `program:cchc` is published, and the manifest it fetches names the episode.
#[test]
fn an_episode_is_assigned_to_a_program_of_the_shared_list() {
    let centre = Centre::start_with(false);
    let b = Box_::enrol(&centre, "phuong-s");
    let now = local_now();
    // Nothing defines cchc yet: the assignment is refused, saying so in Vietnamese.
    let out = Command::new(LOA)
        .args(["content", "add"])
        .arg(fixture("tone.mp3"))
        .args([
            "--title",
            "CCHC",
            "--category",
            "cchc",
            "--month",
            &month(now),
        ])
        .args([
            "--program",
            "cchc",
            "--collector",
            &centre.url,
            "--token-file",
        ])
        .arg(&centre.token_file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("chương trình «cchc»"), "{err}");

    let (s, v) = centre.request(
        reqwest::Method::PUT,
        "/api/v1/programs",
        Some((PROGRAM.to_string(), "application/toml")),
    );
    assert!((200..300).contains(&s), "{s} {v}");
    let sha = centre.upload_episode(&fixture("tone.mp3"), &month(now));
    let own = schedule(&b.id, "0 0 3 * * *").replace(PROGRAM, "");
    assert!(!own.contains("[[programs]]"), "{own}");
    assert_eq!(centre.publish(&b.id, &own), 1);
    let m = centre.manifest(&b);
    let path = format!("cchc/{}.mp3", month(now));
    assert!(
        m.files.iter().any(|f| f.path == path && f.sha256 == sha),
        "{m:?}"
    );
}

/// The centre key rotated while the stations run (`loa collector rotate-key`: the new key
/// announced signed by the old one): an enrolled station walks the rotation, pins the new key
/// (keeping the old as previous) and takes a version signed with it; a station pinned to
/// another key, which did not sign the rotation, refuses the rotation and the manifest
/// (`sync.centre_signature`), its pin unchanged and nothing activated.
#[test]
fn a_rotated_centre_key_is_followed_and_a_rotation_from_another_key_is_refused() {
    use loa::centre::pin;
    let centre = Centre::start();
    let b = Box_::enrol(&centre, "phuong-k");
    let stray = Box_::enrol(&centre, "phuong-l");
    let foreign = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    std::fs::write(
        stray.data().join("centre.pub"),
        format!("{}\n", loa::wire::encode_public_key(&foreign)),
    )
    .unwrap();
    let k0 = pin::load(&b.data()).unwrap().current;
    let now = local_now();
    centre.upload_episode(&fixture("tone.mp3"), &month(now));
    assert_eq!(centre.publish(&b.id, &schedule(&b.id, "0 0 3 * * *")), 1);
    assert_eq!(
        centre.publish(&stray.id, &schedule(&stray.id, "0 0 3 * * *")),
        1
    );
    let st = b.start(&[]);
    wait_sync(&centre, &b.id, "version 1 active", &st, |s| {
        s.active_version == Some(1) && s.last_error_code.is_none()
    });

    // The rotation, with the collector running.
    let out = run_ok(
        Command::new(LOA)
            .args(["collector", "rotate-key", "--db"])
            .arg(&centre.db)
            .env("LOA_HOME", &centre.home),
    );
    assert!(out.contains("khóa mới"), "{out}");
    let (s, v) = centre.request(reqwest::Method::GET, "/api/v1/centre", None);
    assert_eq!(s, 200, "{v}");
    let k1 = loa::wire::decode_public_key(v["key"].as_str().unwrap()).unwrap();
    assert_ne!(k1, k0);
    // Version 2, signed with the new key, reaches the station through the rotation.
    assert_eq!(centre.publish(&b.id, &schedule(&b.id, "0 0 4 * * *")), 2);
    assert_eq!(centre.manifest_envelope(&b).key, k1);
    wait_sync(&centre, &b.id, "version 2 active", &st, |s| {
        s.active_version == Some(2) && s.last_error_code.is_none()
    });
    let pinned = pin::load(&b.data()).unwrap();
    assert_eq!(pinned.current, k1);
    assert_eq!(pinned.previous, Some(k0));
    let log = st.stop();
    assert!(log.contains("centre key rotation accepted"), "{log}");

    // The station pinned to another key: the rotation (signed by k0) is not its own.
    let stray_st = stray.start(&[]);
    wait_sync(
        &centre,
        &stray.id,
        "sync.centre_signature",
        &stray_st,
        |s| s.last_error_code.as_ref().map(|c| c.as_str()) == Some("sync.centre_signature"),
    );
    let log = stray_st.stop();
    assert!(log.contains("its rotation is refused"), "{log}");
    assert_eq!(pin::load(&stray.data()).unwrap().current, foreign);
    assert_eq!(stray.store().active().unwrap(), None);
}

/// `loa station` of an enrolled box takes a bulletin the centre sends it (issue #15): its intake
/// (spawned by `run_station` beside the sync agent) fetches and checks it, verifies its audio and
/// reports it `delivered`; the daemon airs it (an emergency on an idle air) and the collector
/// receives the record naming it.
#[test]
fn an_enrolled_station_receives_reports_and_airs_a_bulletin() {
    let centre = Centre::start();
    let b = Box_::enrol(&centre, "phuong-b");
    let tone = std::fs::read(fixture("tone.ogg")).unwrap();
    let sha = sha_hex(&tone);
    let added = centre.rt.block_on(async {
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/content?title=C%E1%BA%A3nh%20b%C3%A1o&category=notice",
                centre.url
            ))
            .bearer_auth(&centre.admin)
            .body(tone.clone())
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(added.is_success(), "{added}");
    let st = b.start(&[]);
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "title": "Cảnh báo bão số 5", "audio": sha, "priority": "emergency",
        "to": format!("stations:{}", b.id),
        "not_after": (now + chrono::Duration::hours(1)).to_rfc3339(),
    });
    let (s, v) = centre.request(
        reqwest::Method::POST,
        "/api/v1/bulletins",
        Some((body.to_string(), "application/json")),
    );
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let receipt = || -> Option<String> {
        use loa::collector::db::{Conn, Location, params};
        let conn = Conn::open(&Location::of_path(&centre.db)).ok()?;
        conn.query_row(
            "SELECT state FROM bulletin_receipts WHERE bulletin_id = ?1 AND station = ?2",
            params![id, b.id],
            |r| r.get(0),
        )
        .ok()
    };
    wait_until(Duration::from_secs(90), "the delivered receipt", || {
        receipt().as_deref() == Some("delivered")
    });
    assert_eq!(
        std::fs::read(b.data().join("bulletins/content").join(&sha)).unwrap(),
        tone
    );
    wait_until(
        Duration::from_secs(90),
        "the bulletin's airing record",
        || {
            centre.records(&b.id).iter().any(|r| {
                r.outcome == Outcome::Aired && r.bulletin.as_ref().is_some_and(|x| x.id == id)
            })
        },
    );
    st.stop();
}
