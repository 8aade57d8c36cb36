//! A station with several collector URLs (issue #16, item 2: "Stations take several collector
//! URLs and fail over between them"), against the real `loa collector` binary and the real
//! `loa station` binary (output `null`, a slot every 2 s):
//!
//! 1. the first URL is dead (a closed port): every record and the heartbeats go through the
//!    second;
//! 2. collector A (LOA_HOME X) is killed with SIGKILL mid-run; collector B starts on another
//!    port with the same LOA_HOME and database (the same SQLite file: a stand-in for a second
//!    replica on one database; under `LOA_TEST_DB=postgres` the same PostgreSQL database, which
//!    is the replica case itself); the station fails over to B, every journaled record is in the database exactly
//!    once, and its push channel reconnects to B with its `Last-Event-ID` (a bulletin sent
//!    through B arrives by push and airs);
//! 3. bad collector lists are refused at start, naming the file and field (or the flag).
//! 4. a collector that refuses the station (a 4xx: it does not know it) is not failed over: the
//!    second collector never hears from it;
//! 5. an enrolled box (`loa enrol --collector A --collector B`, both written to `station.toml`)
//!    whose first collector is dead ships its heartbeat through the second, with `loa station`
//!    and no flag; bad collector lists in `station.toml` (and a repeated `loa enrol
//!    --collector`) are refused naming the file, line and field.
//!
//! The figures (kill → first batch acknowledged by B) are printed (`--nocapture`).

mod station_common;

use loa::collector::accounts::{self, Role};
use station_common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The collector database of `home`: `home/collector.db`, or under `LOA_TEST_DB=postgres` a
/// PostgreSQL database made on first use; named in `home/test-db` so every collector started in
/// `home` (a restart, a second replica) and every check below uses the same one.
fn database(home: &Path) -> PathBuf {
    let file = home.join("test-db");
    if let Ok(t) = std::fs::read_to_string(&file) {
        return PathBuf::from(t.trim());
    }
    let db = loa::collector::db::testing::test_db(home, "collector.db");
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(&file, db.to_str().unwrap()).unwrap();
    db
}

/// A session on the collector database of `home`; `None` while there is none yet (a SQLite
/// file not created, a server that does not answer).
fn open_db(home: &Path) -> Option<loa::collector::db::Conn> {
    use loa::collector::db::{Conn, Location};
    let location = Location::of_path(&database(home));
    if location.sqlite_path().is_some_and(|p| !p.exists()) {
        return None;
    }
    Conn::open(&location).ok()
}

/// `loa collector` with `LOA_HOME=home` and its database ([`database`]) on `listen`; killed
/// (SIGKILL) on drop.
struct Collector {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Collector {
    fn start(home: &Path, listen: &str, name: &str) -> Self {
        let log = home.join(format!("collector-{name}.log"));
        let child = Command::new(LOA)
            .args(["collector", "--listen", listen, "--db"])
            .arg(database(home))
            .env("LOA_HOME", home)
            .env("LOA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut c = Self {
            child,
            base: String::new(),
            log,
        };
        let t0 = Instant::now();
        c.base = loop {
            let text = std::fs::read_to_string(&c.log).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            if let Some(st) = c.child.try_wait().unwrap() {
                panic!("collector {name} exited ({st:?}):\n{text}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "collector {name} did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        c
    }

    fn kill9(&mut self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A collector home whose registry holds station `id` with `key`.
fn registry(home: &Path, id: &str, key: &ed25519_dalek::VerifyingKey) {
    std::fs::write(
        home.join("collector.toml"),
        format!(
            "[[station]]\nid = \"{id}\"\nname = \"Trạm {id}\"\narea_code = \"21100\"\npublic_key = \"{}\"\n",
            loa::wire::encode_public_key(key)
        ),
    )
    .unwrap();
}

/// (rows, distinct seqs) of `id` in the collector's database, and whether its heartbeat is
/// stored.
fn stored(home: &Path, id: &str) -> (u64, u64, bool) {
    use loa::collector::db::params;
    let Some(c) = open_db(home) else {
        return (0, 0, false);
    };
    let (n, d) = c
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT seq) FROM records WHERE station = ?1",
            params![id],
            |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
        )
        .unwrap_or((0, 0));
    let hb = c
        .query_row(
            "SELECT COUNT(*) FROM heartbeats WHERE station = ?1",
            params![id],
            |r| r.get::<i64>(0),
        )
        .unwrap_or(0);
    (n as u64, d as u64, hb > 0)
}

/// When the collector last stored `id`'s heartbeat (unix ms), if it did.
fn heartbeat_ms(home: &Path, id: &str) -> Option<i64> {
    let c = open_db(home)?;
    c.query_row(
        "SELECT received_unix_ms FROM heartbeats WHERE station = ?1",
        loa::collector::db::params![id],
        |r| r.get(0),
    )
    .ok()
}

/// After the station stopped: every record the station holds acknowledged (its ledger) is in
/// the database exactly once, with the journal's hash; nothing else of it is stored but
/// journaled records, each once. Returns (journaled, acknowledged).
fn assert_exactly_once(site: &Site, home: &Path, id: &str) -> (u64, u64) {
    let c = open_db(home).expect("the collector's database");
    assert_stored_exactly_once(site, &c, id)
}

#[test]
fn a_dead_first_collector_is_skipped() {
    let site = Site::new();
    let id = "tram-a";
    site.write_schedule(id, 2, "tone1.wav");
    let key = site.keygen(id);
    let home = site.root.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    registry(&home, id, &key);
    let b = Collector::start(&home, "127.0.0.1:0", "b");
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let t0 = Instant::now();
    let station = site.start_with(id, &dead, &["--collector", &b.base]);
    // At least 3 airings, every one of them at the collector, and a heartbeat.
    wait_until(
        Duration::from_secs(25),
        "3 records and a heartbeat at B",
        || {
            let journaled = site.records(id).len() as u64;
            let (n, _, hb) = stored(&home, id);
            journaled >= 3 && n == journaled && hb
        },
    );
    let first = station.log();
    eprintln!(
        "first URL dead: {} records and the heartbeat through the second in {:.1} s",
        site.records(id).len(),
        t0.elapsed().as_secs_f64()
    );
    let log = station.stop();
    let (journaled, acked) = assert_exactly_once(&site, &home, id);
    assert!(acked >= 3, "{journaled} journaled, {acked} acknowledged");
    assert!(
        first.contains(&format!("collector {dead} failed")) && first.contains(&b.base),
        "the switch is logged with both URLs:\n{log}"
    );
}

/// An admin token in the collector database of `home` (the API that sends bulletins).
fn admin_token(home: &Path) -> String {
    let mut c = loa::collector::Store::open(&database(home))
        .unwrap()
        .into_connection();
    let now = chrono::Utc::now();
    accounts::add_user(&mut c, "lan", Role::Admin, &[], "mat-khau-that-dai-1", now).unwrap();
    let u = accounts::find_user(&c, "lan").unwrap().unwrap();
    accounts::create_token(&c, &u, "thử", now).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_collector_is_replaced_by_another_on_the_same_database() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let site = Site::new();
    let id = "tram-b";
    site.write_schedule(id, 2, "tone1.wav");
    let key = site.keygen(id);
    let home = site.root.path().join("home");
    std::fs::create_dir_all(home.join("collector/library/tree")).unwrap();
    registry(&home, id, &key);
    let admin = admin_token(&home);
    let mut a = Collector::start(&home, "127.0.0.1:0", "a");
    let port_b = closed_port();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // The bulletin's audio in the content library (shared by both: one LOA_HOME), and the
    // centre key pinned: the station is centre-managed, so its push channel runs.
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    let sha = loa::media::sha256_file(&tone).unwrap();
    let r = http
        .post(format!(
            "{}/api/v1/content?title=C%E1%BA%A3nh%20b%C3%A1o&category=notice",
            a.base
        ))
        .bearer_auth(&admin)
        .body(std::fs::read(&tone).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let centre: serde_json::Value = http
        .get(format!("{}/api/v1/centre", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pinned = loa::wire::decode_public_key(centre["key"].as_str().unwrap()).unwrap();
    loa::centre::pin::pin_first(&site.data(id), &pinned).unwrap();

    let b_url = format!("http://127.0.0.1:{port_b}");
    let station = site.start_with(id, &a.base, &["--collector", &b_url]);
    station.wait_log(
        &format!("push channel connected to {}", a.base),
        Duration::from_secs(20),
    );
    // Airs and ships to A.
    wait_until(Duration::from_secs(20), "3 records at A", || {
        stored(&home, id).0 >= 3
    });
    a.kill9();
    let killed = Instant::now();
    let killed_ms = chrono::Utc::now().timestamp_millis();
    let at_kill = stored(&home, id).0;
    let b = Collector::start(&home, &format!("127.0.0.1:{port_b}"), "b");
    let b_up = killed.elapsed();
    wait_until(Duration::from_secs(20), "a batch acknowledged by B", || {
        stored(&home, id).0 > at_kill
    });
    let first_batch = killed.elapsed();
    wait_until(
        Duration::from_secs(20),
        "a heartbeat stored through B",
        || heartbeat_ms(&home, id).is_some_and(|t| t > killed_ms),
    );
    let first_beat = heartbeat_ms(&home, id).unwrap_or_default() - killed_ms;
    eprintln!(
        "collector A killed: B listening after {} ms; first heartbeat stored through B {} ms \
         and first batch {} ms after the kill (the next airing; {} records stored before it)",
        b_up.as_millis(),
        first_beat,
        first_batch.as_millis(),
        at_kill
    );
    station.wait_log(
        &format!("push channel connected to {}", b.base),
        Duration::from_secs(20),
    );
    let reconnected = killed.elapsed();
    eprintln!(
        "push channel reconnected to B {} ms after the kill",
        reconnected.as_millis()
    );
    // A bulletin sent through B reaches the station by its push channel and airs.
    let now = chrono::Utc::now();
    let r = http
        .post(format!("{}/api/v1/bulletins", b.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "title": "Cảnh báo qua B",
            "audio": sha,
            "priority": "emergency",
            "to": "all",
            "not_before": now.to_rfc3339(),
            "not_after": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "repeats": 1,
        }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    let bid = v["id"].as_str().unwrap().to_string();
    let occurrence = loa::bulletin::occurrence_key(&bid, 1);
    wait_until(Duration::from_secs(20), "the bulletin aired", || {
        site.records(id)
            .iter()
            .any(|r| r.occurrence.as_deref() == Some(occurrence.as_str()))
    });
    let log = station.log();
    let after_b = log
        .split(&format!("push channel connected to {}", b.base))
        .nth(1)
        .unwrap_or_default();
    assert!(
        after_b.contains("push: bulletin announced"),
        "the bulletin came by the push channel from B:\n{log}"
    );
    // Everything journaled (the bulletin's record too) reaches the database through B, each
    // record once.
    let journaled = site.records(id).len() as u64;
    wait_until(Duration::from_secs(20), "every record stored", || {
        stored(&home, id).0 >= journaled
    });
    let log = station.stop();
    let (journaled, acked) = assert_exactly_once(&site, &home, id);
    eprintln!("{journaled} records journaled, {acked} acknowledged, each stored once");
    assert!(acked > at_kill, "records acknowledged through B");
    assert!(
        log.contains(&format!("collector {} failed", a.base)),
        "the failover is logged with A's URL:\n{log}"
    );
}

#[test]
fn bad_collector_lists_are_refused_naming_the_file_and_field() {
    let site = Site::new();
    let id = "tram-c";
    site.keygen(id);
    let run = |extra: &[&str]| {
        let out = Command::new(LOA)
            .args(["station", "--station", id, "--output", "null"])
            .arg("--schedules")
            .arg(site.schedules())
            .arg("--audio")
            .arg(site.root.path().join("audio"))
            .arg("--data")
            .arg(site.data(id))
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = site.schedule_path(id);
    for (table, field, words) in [
        (
            "[collector]\nurl = \"http://a:8080\"\nurls = [\"http://b:8080\"]\n",
            "collector.urls",
            "cả `url` lẫn `urls`",
        ),
        ("[collector]\nurls = []\n", "collector.urls", "rỗng"),
        (
            "[collector]\nurls = [\"http://a:8080\", \"http://a:99999\"]\n",
            "collector.urls[1]",
            "http://a:99999",
        ),
        (
            "[collector]\nurls = [\"http://a:8080\", \"http://a:8080/\"]\n",
            "collector.urls[1]",
            "hai lần",
        ),
        (
            "[collector]\nheartbeat_secs = 5\n",
            "collector.urls",
            "không ghi",
        ),
    ] {
        site.write_schedule_with(id, 2, "tone1.wav", table);
        let (code, err) = run(&[]);
        assert_eq!(code, Some(2), "{table}: {err}");
        let line = err
            .lines()
            .find(|l| l.contains(field))
            .unwrap_or_else(|| panic!("{table}: no {field} in:\n{err}"));
        assert!(
            line.contains(&file.display().to_string()) && err.contains(words),
            "{table}: the file and {words:?}:\n{err}"
        );
    }
    // The flag: each value checked when the command line is read.
    site.write_schedule(id, 2, "tone1.wav");
    let (code, err) = run(&["--collector", "http://a:8080", "--collector", "a:8080"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--collector") && err.contains("a:8080") && err.contains("http(s)"),
        "{err}"
    );
}

#[test]
fn a_refusing_collector_is_not_failed_over() {
    // A 4xx is the collector's word: A, which does not know the station (401), keeps it; B,
    // which would take its records, never hears from it.
    let site = Site::new();
    let id = "tram-d";
    site.write_schedule(id, 2, "tone1.wav");
    let key = site.keygen(id);
    let home_a = site.root.path().join("home-a");
    let home_b = site.root.path().join("home-b");
    std::fs::create_dir_all(&home_a).unwrap();
    std::fs::create_dir_all(&home_b).unwrap();
    registry(&home_a, "tram-khac", &key);
    registry(&home_b, id, &key);
    let a = Collector::start(&home_a, "127.0.0.1:0", "a");
    let b = Collector::start(&home_b, "127.0.0.1:0", "b");
    let station = site.start_with(id, &a.base, &["--collector", &b.base]);
    wait_until(Duration::from_secs(20), "2 records journaled", || {
        site.records(id).len() >= 2
    });
    station.wait_log("not enrolled", Duration::from_secs(20));
    // Several heartbeats (1 s) and shipping attempts later.
    std::thread::sleep(Duration::from_secs(3));
    let log = station.stop();
    assert_eq!(
        stored(&home_b, id),
        (0, 0, false),
        "B heard from it:\n{log}"
    );
    assert!(
        !log.contains("switching to"),
        "a 4xx moved the station:\n{log}"
    );
}

/// `loa enrol` on a box whose state directory is `box_home`, working directory `cwd`.
fn enrol(cwd: &Path, box_home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(LOA)
        .arg("enrol")
        .args(args)
        .current_dir(cwd)
        .env("LOA_HOME", box_home)
        .output()
        .unwrap()
}

#[test]
fn an_enrolled_box_with_two_collectors_fails_over_to_the_second() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let site = Site::new();
    let id = "phuong-e";
    site.write_schedule(id, 2, "tone1.wav");
    let home = site.root.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("collector.toml"), "").unwrap();
    let admin = admin_token(&home);
    let mut a = Collector::start(&home, "127.0.0.1:0", "a");
    let port_b = closed_port();
    let b_url = format!("http://127.0.0.1:{port_b}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/admin/enrolments", a.base))
            .bearer_auth(&admin)
            .json(&serde_json::json!({
                "id": id, "name": "Phường E", "area_code": "21193", "kind": "ward",
                "operators": [],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        v["code"].as_str().unwrap().to_string()
    });
    // Enrolled through A; B (down for now) is only warned about.
    let box_home = site.root.path().join("var");
    let out = enrol(
        site.root.path(),
        &box_home,
        &[
            "--collector",
            &a.base,
            "--collector",
            &b_url,
            "--code",
            &code,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning") && err.contains(&b_url), "{err}");
    let config = std::fs::read_to_string(box_home.join("station.toml")).unwrap();
    assert!(
        config.contains(&format!("collectors = [\"{}\", \"{b_url}\"]", a.base)),
        "{config}"
    );
    // A dies; B comes up on the same database.
    a.kill9();
    let _b = Collector::start(&home, &format!("127.0.0.1:{port_b}"), "b");
    assert!(
        !stored(&home, id).2,
        "a heartbeat before the station started"
    );
    let t0 = Instant::now();
    let log = site.root.path().join("station.log");
    let child = Command::new(LOA)
        .args(["station", "--output", "null", "--heartbeat-secs", "1"])
        .current_dir(site.root.path())
        .env("LOA_HOME", &box_home)
        .env("LOA_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let station = Station { child, log };
    wait_until(
        Duration::from_secs(20),
        "a heartbeat stored through B",
        || stored(&home, id).2,
    );
    eprintln!(
        "enrolled box, first collector dead: heartbeat stored through the second {} ms after \
         `loa station` started",
        t0.elapsed().as_millis()
    );
    let log = station.stop();
    assert!(
        log.contains(&format!("collector {} failed", a.base))
            && log.contains(&format!("switching to {b_url}")),
        "the switch is logged with both URLs:\n{log}"
    );
}

#[test]
fn bad_collector_lists_in_station_toml_are_refused_naming_the_file_and_field() {
    let site = Site::new();
    let box_home = site.root.path().join("var");
    std::fs::create_dir_all(&box_home).unwrap();
    let file = box_home.join("station.toml");
    for (text, words) in [
        (
            "id = \"tram-e\"\ncollector = \"http://a:8080\"\ncollectors = [\"http://b:8080\"]\n",
            ":3 is not valid: both `collector` and `collectors` are given: keep one",
        ),
        (
            "id = \"tram-e\"\ncollectors = []\n",
            ":2 is not valid: `collectors` is an empty list",
        ),
        (
            "id = \"tram-e\"\ncollectors = [\n  \"http://a:8080\",\n  \"ftp://b\",\n]\n",
            ":4 is not valid: `collectors[1]` = \"ftp://b\": collector URL `ftp://b` is not an \
             http(s) URL",
        ),
        (
            "id = \"tram-e\"\ncollectors = [\"http://a:8080\", \"http://a:8080/\"]\n",
            ":2 is not valid: `collectors[1]` = \"http://a:8080/\": this collector is listed twice",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = Command::new(LOA)
            .args(["station", "--output", "null"])
            .current_dir(site.root.path())
            .env("LOA_HOME", &box_home)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(
            err.contains(&format!("{}{words}", file.display()))
                && err.contains("loa enrol --force"),
            "{text}: {words:?}:\n{err}"
        );
    }
    // `loa enrol` naming one collector twice, or a bad one, is refused before the code is sent
    // (nothing listens there) and writes nothing.
    let fresh = site.root.path().join("fresh");
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let out = enrol(
        site.root.path(),
        &fresh,
        &[
            "--collector",
            &dead,
            "--collector",
            &format!("{dead}/"),
            "--code",
            "X",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("listed twice"), "{err}");
    let out = enrol(
        site.root.path(),
        &fresh,
        &["--collector", &dead, "--collector", "b:8080", "--code", "X"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--collector") && err.contains("http(s)"),
        "{err}"
    );
    assert!(!fresh.join("station.toml").exists());
}
