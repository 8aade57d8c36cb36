//! The centre's key with the real `loa` binary: `loa collector` creates it (0600) at its first
//! start and serves it at `GET /api/v1/centre`; `loa collector rotate-key` (the collector
//! running) announces a new key that the running collector then serves, and a station pinned
//! to the first key walks the chain to the new one; a key file readable by others stops the
//! collector. Station-signed requests: `GET /api/v1/centre/whoami` answers the signing station,
//! and refuses a stale date, another station's key, an unknown station and missing headers.

mod collector_common;

use collector_common::*;
use loa::centre::{Envelope, pin, request};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_loa");

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `loa ARGS` with the state directory `home` (where the centre key lies when the database is
/// PostgreSQL's; beside a SQLite database it is the same directory).
fn loa(home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("LOA_HOME", home)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Start `loa collector` on a free port; its base URL.
fn start(home: &Path, db: &Path, cfg: &Path) -> (Killed, String) {
    let mut child = Command::new(BIN)
        .args(["collector", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .arg("--config")
        .arg(cfg)
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
    (child, base)
}

async fn get_centre(c: &reqwest::Client, base: &str) -> serde_json::Value {
    let r = c.get(format!("{base}/api/v1/centre")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centre_key_is_created_served_rotated_and_followed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let st = TestStation::new("phuong-1", 7);
    let other = TestStation::new("phuong-2", 8);
    for s in [&st, &other] {
        let (code, out, err) = loa(
            dir.path(),
            &[
                "register",
                "--config",
                cfg.to_str().unwrap(),
                "--db",
                db.to_str().unwrap(),
                "--station",
                &s.id,
                "--public-key",
                &s.public_key(),
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
    }
    let key_path = dir.path().join("collector/centre-key");
    let (child, base) = start(dir.path(), &db, &cfg);
    let meta = std::fs::metadata(&key_path).expect("the first start creates the centre key");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    let c = client();
    let v = get_centre(&c, &base).await;
    let k0 = loa::wire::decode_public_key(v["key"].as_str().unwrap()).unwrap();
    assert_eq!(v["rotations"], serde_json::json!([]));

    // A station pins it (as `loa enrol` will).
    let station_dir = dir.path().join("station/phuong-1");
    pin::pin_first(&station_dir, &k0).unwrap();

    // Rotation while the collector runs: the running collector serves the new key.
    let (code, out, err) = loa(
        dir.path(),
        &["collector", "rotate-key", "--db", db.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("khóa mới"), "{out}");
    let old = dir.path().join("collector/centre-key.1.old");
    assert_eq!(
        std::fs::metadata(&old).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v = get_centre(&c, &base).await;
    let k1 = loa::wire::decode_public_key(v["key"].as_str().unwrap()).unwrap();
    assert_ne!(k1, k0);
    let chain: Vec<Envelope> = v["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Envelope::from_value(e).unwrap())
        .collect();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].key, k0, "announced by the old key");
    let accepted = pin::accept_rotations(&station_dir, &chain).unwrap();
    assert!(accepted.changed);
    assert_eq!(accepted.pinned.current, k1);
    assert_eq!(accepted.pinned.previous, Some(k0));
    assert_eq!(pin::load(&station_dir).unwrap().current, k1);

    // Station-signed requests.
    let whoami = "/api/v1/centre/whoami";
    let send = |h: request::SignedHeaders| {
        let mut r = c.get(format!("{base}{whoami}"));
        for (n, v) in h.pairs() {
            r = r.header(n, v);
        }
        r.send()
    };
    let now = chrono::Utc::now();
    let r = send(request::sign(&st.key, &st.id, "GET", whoami, now))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["station"], "phuong-1");
    // A date 11 minutes old: refused, whatever the signature.
    let stale = now - chrono::Duration::seconds(660);
    let r = send(request::sign(&st.key, &st.id, "GET", whoami, stale))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "refused.stale_request");
    // Signed with another station's key, claiming phuong-1.
    let r = send(request::sign(&other.key, &st.id, "GET", whoami, now))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "refused.bad_signature");
    // Signed for another target and replayed here.
    let r = send(request::sign(&st.key, &st.id, "GET", "/api/v1/centre", now))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // An unknown station; no headers at all.
    let r = send(request::sign(&st.key, "khong-co", "GET", whoami, now))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c.get(format!("{base}{whoami}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    drop(child);

    // The heartbeat's answer and the restart: the same (rotated) key, loaded not recreated.
    let (child, base) = start(dir.path(), &db, &cfg);
    let v = get_centre(&c, &base).await;
    assert_eq!(v["key"], loa::wire::encode_public_key(&k1));
    let (code, ack) = post(
        &c,
        &format!("{base}/api/v1/stations/phuong-1/heartbeat"),
        serde_json::to_vec(&st.heartbeat(chrono::Utc::now(), 0)).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{ack}");
    assert_eq!(ack["centre_key"], loa::wire::encode_public_key(&k1));
    drop(child);

    // A key file readable by others: the collector refuses to start, naming it.
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .args(["collector", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(&cfg)
        .env("LOA_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("centre-key") && err.contains("chmod 600"),
        "{err}"
    );
}
