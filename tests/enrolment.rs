//! Enrolment by code, end to end with the real binary: `loa collector` on 127.0.0.1 (SQLite or
//! PostgreSQL and registry in a temp dir), an admin's personal token creating stations through
//! `POST /api/v1/admin/enrolments`, `loa enrol` on a "box" (its own `$LOA_HOME`), then
//! `loa station` with no `--station` flag shipping a heartbeat and records the collector accepts.
//! A reused code, an expired one and a wrong one get the same refusal; a key registered for
//! another station is refused without spending the code; a box already enrolled or holding a
//! key is refused before the code is sent.

mod station_common;

use station_common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Collector {
    child: Child,
    url: String,
    /// The collector's database: `collector.db` in its directory, or a PostgreSQL database
    /// under `LOA_TEST_DB=postgres`.
    db: PathBuf,
    rt: tokio::runtime::Runtime,
    admin: String,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn loa(args: &[&str], db: &Path) -> String {
    let out = Command::new(LOA)
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Collector {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let db = loa::collector::db::testing::test_db(dir, "collector.db");
        loa(&["user", "add", "boss", "--role", "admin"], &db);
        loa(
            &[
                "user",
                "add",
                "op1",
                "--role",
                "operator",
                "--station",
                "phuong-z",
            ],
            &db,
        );
        let admin = loa(&["user", "token", "boss"], &db);
        std::fs::write(dir.join("collector.toml"), "").unwrap();
        let log = dir.join("collector.log");
        let child = Command::new(LOA)
            .args(["collector", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .arg("--config")
            .arg(dir.join("collector.toml"))
            .env("LOA_HOME", dir)
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
                t0.elapsed() < Duration::from_secs(15),
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
            db,
            rt,
            admin,
        }
    }

    /// POST `body` as JSON to `path`, with `token` when given.
    fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.url);
        self.rt.block_on(async {
            let mut r = reqwest::Client::new().post(&url).json(&body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        })
    }

    fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.url);
        self.rt.block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        })
    }

    /// Create station `id` through the admin API; its code.
    fn create(&self, id: &str, operators: &[&str], expires_secs: Option<i64>) -> String {
        let mut body = serde_json::json!({
            "id": id, "name": format!("Phường {id}"), "area_code": "21193", "kind": "ward",
            "operators": operators,
        });
        if let Some(s) = expires_secs {
            body["expires_secs"] = s.into();
        }
        let (status, v) = self.post("/api/v1/admin/enrolments", Some(&self.admin), body);
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["station"], id);
        v["code"].as_str().unwrap().to_string()
    }

    fn audit_text(&self) -> String {
        use loa::collector::db::{Conn, Location, params};
        let conn = Conn::open(&Location::of_path(&self.db)).unwrap();
        let rows: Vec<String> = conn
            .query_map(
                "SELECT action, target, COALESCE(before, ''), COALESCE(after, '') FROM audit_log
                 ORDER BY id",
                params![],
                |r| {
                    Ok(format!(
                        "{} {} {} {}",
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?
                    ))
                },
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.join("\n")
    }
}

/// A station box: a working directory (schedules/, audio/) and its own state directory.
fn box_home(site: &Site) -> PathBuf {
    site.root.path().join("var")
}

fn enrol(site: &Site, url: &str, code: &str, extra: &[&str]) -> Output {
    Command::new(LOA)
        .args(["enrol", "--collector", url, "--code", code])
        .args(extra)
        .current_dir(site.root.path())
        .env("LOA_HOME", box_home(site))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The refusal every bad code gets: exit 2, the Vietnamese reason and its code.
fn assert_bad_code(o: &Output) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    let e = stderr(o);
    assert!(
        e.contains("(403)")
            && e.contains("mã ghi danh không đúng, đã được dùng hoặc đã hết hạn")
            && e.contains("[enrolment.bad_code]"),
        "{e}"
    );
}

#[test]
fn a_box_enrols_by_code_and_then_runs_with_no_station_flag() {
    let centre = tempfile::tempdir().unwrap();
    let c = Collector::start(centre.path());
    let code = c.create("phuong-a", &["op1"], None);
    let groups: Vec<&str> = code.split('-').collect();
    assert_eq!(groups.len(), 6, "{code}");
    assert!(groups.iter().all(|g| g.len() == 4), "{code}");

    let site = Site::new();
    site.write_schedule("phuong-a", 3, "tone1.wav");
    // The code as someone types it: lower case, spaces for dashes.
    let typed = code.to_lowercase().replace('-', " ");
    let out = enrol(&site, &c.url, &typed, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let home = box_home(&site);
    let config = std::fs::read_to_string(home.join("station.toml")).unwrap();
    assert!(
        config.contains("id = \"phuong-a\"") && config.contains(&c.url),
        "{config}"
    );
    let public = std::fs::read_to_string(home.join("station/phuong-a/station.pub")).unwrap();
    let registry = std::fs::read_to_string(centre.path().join("collector.toml")).unwrap();
    assert!(registry.contains(public.trim()), "{registry}");
    assert!(
        registry.contains("Phường phuong-a") && registry.contains("21193"),
        "{registry}"
    );
    // The centre's key is pinned: the one the collector serves.
    let (_, centre_doc) = c.get("/api/v1/centre", &c.admin);
    let pinned = std::fs::read_to_string(home.join("station/phuong-a/centre.pub")).unwrap();
    assert_eq!(
        Some(pinned.trim()),
        centre_doc["key"].as_str(),
        "{centre_doc}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("checked with the collector"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(home.join("station/phuong-a/station.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The operator given the station sees it.
    let op = loa(&["user", "token", "op1"], &c.db);
    assert_eq!(c.get("/api/v1/stations/phuong-a", &op).0, 200);

    // `loa station` with no --station: id, collector and data directory from station.toml.
    let log = site.root.path().join("station.log");
    let child = Command::new(LOA)
        .args(["station", "--output", "null", "--heartbeat-secs", "1"])
        .current_dir(site.root.path())
        .env("LOA_HOME", &home)
        .env("LOA_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let station = Station { child, log };
    let today = chrono::Utc::now().date_naive();
    let airings = format!(
        "/api/v1/stations/phuong-a/airings?from={}&to={}",
        today - chrono::Days::new(1),
        today + chrono::Days::new(1)
    );
    let t0 = Instant::now();
    loop {
        let (_, s) = c.get("/api/v1/stations/phuong-a", &c.admin);
        let (_, a) = c.get(&airings, &c.admin);
        let stored = a["airings"].as_array().map_or(0, Vec::len);
        if !s["last_heartbeat_at"].is_null() && stored >= 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no heartbeat and record at the collector: {s}\n{a}\n{}",
            station.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    station.stop();

    // The same code again (another box): refused, and the registered key is unchanged.
    let other = Site::new();
    let again = enrol(&other, &c.url, &code, &[]);
    assert_bad_code(&again);
    assert!(!box_home(&other).join("station.toml").exists());
    let registry2 = std::fs::read_to_string(centre.path().join("collector.toml")).unwrap();
    assert_eq!(registry, registry2);

    // The audit log has the creation, the code's issue, the enrolment and the refusal, never
    // the code.
    let audit = c.audit_text();
    for action in [
        "station_create",
        "enrolment_code",
        "enrol ",
        "enrol_refused",
    ] {
        assert!(audit.contains(action), "{action} missing:\n{audit}");
    }
    assert!(audit.contains("mã đã được dùng"), "{audit}");
    // The station's kind in Vietnamese, never its code (`ward`).
    assert!(
        audit.contains("loại: Trạm phường/xã") && !audit.contains("loại: ward"),
        "{audit}"
    );
    let bare = code.replace('-', "");
    assert!(!audit.contains(&code) && !audit.contains(&bare), "{audit}");
}

#[test]
fn expired_wrong_and_taken_keys_are_refused_and_nothing_is_half_done() {
    let centre = tempfile::tempdir().unwrap();
    let c = Collector::start(centre.path());

    // Expired: a code that lives one second.
    let short = c.create("phuong-b", &[], Some(1));
    std::thread::sleep(Duration::from_millis(1500));
    let site = Site::new();
    assert_bad_code(&enrol(&site, &c.url, &short, &[]));
    assert!(!box_home(&site).join("station.toml").exists());
    assert!(
        !box_home(&site)
            .join("station/phuong-b/station.key")
            .exists()
    );
    // A wrong code: the very same answer.
    assert_bad_code(&enrol(&site, &c.url, "0000-0000-0000-0000-0000-0000", &[]));
    assert_bad_code(&enrol(&site, &c.url, "not a code", &[]));
    assert!(c.audit_text().contains("mã đã hết hạn"));

    // A key registered for station C cannot be enrolled as D, and D's code is not spent.
    let code_c = c.create("phuong-c", &[], None);
    let code_d = c.create("phuong-d", &[], None);
    let box_c = Site::new();
    assert!(enrol(&box_c, &c.url, &code_c, &[]).status.success());
    let key_c =
        std::fs::read_to_string(box_home(&box_c).join("station/phuong-c/station.pub")).unwrap();
    let (status, v) = c.post(
        "/api/v1/enrol",
        None,
        serde_json::json!({ "code": code_d, "public_key": key_c.trim() }),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("enrolment.key_in_use")),
        "{v}"
    );

    // A box already enrolled (C) is refused before the code is sent: D's code still works.
    let refused = enrol(&box_c, &c.url, &code_d, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("already enrolled as station `phuong-c`"),
        "{}",
        stderr(&refused)
    );
    // So is a box holding a station key (from `loa keygen`), unless --force.
    let box_d = Site::new();
    let keyed = box_home(&box_d).join("station/old");
    let out = Command::new(LOA)
        .args(["keygen", "--station", "old", "--dir"])
        .arg(&keyed)
        .output()
        .unwrap();
    assert!(out.status.success());
    let refused = enrol(&box_d, &c.url, &code_d, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("station key exists already"),
        "{}",
        stderr(&refused)
    );
    let out = enrol(&box_d, &c.url, &code_d, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // `loa station` on a box with neither --station nor station.toml names the file.
    let bare = Site::new();
    let out = Command::new(LOA)
        .args(["station", "--output", "null"])
        .current_dir(bare.root.path())
        .env("LOA_HOME", box_home(&bare))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("station.toml") && stderr(&out).contains("loa enrol"),
        "{}",
        stderr(&out)
    );
}
