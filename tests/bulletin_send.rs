//! Sending bulletins from the centre (issue #15, docs/bulletins.md), with the real collector
//! binary (`loa collector`, its layout in `$LOA_HOME`, real SQLite or PostgreSQL, real HTTP, the
//! real content library): an admin sends a bulletin on a library item to an area prefix; a targeted
//! station's station-signed fetch returns an envelope that `bulletin::check` accepts under the
//! centre key pinned from `/api/v1/centre`, and its heartbeat answer lists it pending; a station
//! outside the area gets none; an operator or auditor is refused (403) and nothing is stored;
//! unknown audio or an unknown station is refused in Vietnamese naming the field; a cancel hands
//! the targeted station the signed cancel instead; the audit log shows the send and the cancel;
//! `loa bulletin send` / `cancel` do the same from the command line, in Vietnamese.

mod collector_common;

use collector_common::{TestStation, real_collector_with};
use loa::collector::accounts::{self, Role};
use std::path::Path;
use std::process::Command;

const PW: &str = "mat-khau-that-dai-1";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

fn user(db: &Path, name: &str, role: Role, stations: &[&str]) -> String {
    let mut c = loa::collector::Store::open(db).unwrap().into_connection();
    let st: Vec<String> = stations.iter().map(|s| s.to_string()).collect();
    let now = chrono::Utc::now();
    accounts::add_user(&mut c, name, role, &st, PW, now).unwrap();
    let u = accounts::find_user(&c, name).unwrap().unwrap();
    accounts::create_token(&c, &u, "thử", now).unwrap().0
}

async fn send(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = c
        .post(format!("{base}/api/v1/bulletins"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn fetch(
    c: &reqwest::Client,
    base: &str,
    st: &TestStation,
    id: &str,
) -> (u16, serde_json::Value) {
    let pq = format!("/api/v1/stations/{id}/bulletins");
    let h = loa::centre::request::sign(&st.key, &st.id, "GET", &pq, chrono::Utc::now());
    let mut r = c.get(format!("{base}{pq}"));
    for (k, v) in h.pairs() {
        r = r.header(k, v);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn listed(c: &reqwest::Client, base: &str, token: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = c
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sends_to_an_area_the_targeted_station_takes_it_and_a_cancel_follows() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("collector/library/tree")).unwrap();
    let a = TestStation::new("phuong-a", 1);
    let b = TestStation::new("phuong-b", 2);
    let mut reg = String::new();
    for (s, area) in [(&a, "79101"), (&b, "51001")] {
        reg.push_str(&format!(
            "[[station]]\nid = \"{}\"\nname = \"Phường\"\narea_code = \"{area}\"\npublic_key = \"{}\"\n",
            s.id,
            s.public_key()
        ));
    }
    std::fs::write(home.path().join("collector.toml"), reg).unwrap();
    // `collector.db` in the state directory, or a PostgreSQL database under LOA_TEST_DB=postgres.
    let db = loa::collector::db::testing::test_db(home.path(), "collector.db");
    let admin = user(&db, "lan", Role::Admin, &[]);
    let op = user(&db, "op-a", Role::Operator, &["phuong-a"]);
    let auditor = user(&db, "kiem", Role::Auditor, &[]);
    let srv = real_collector_with(home.path(), &["--db", db.to_str().unwrap()], &[]);
    let base = srv.base.clone();
    let c = client();

    // The audio: a library item, uploaded as the office does.
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    let sha = loa::media::sha256_file(&tone).unwrap();
    let r = c
        .post(format!(
            "{base}/api/v1/content?title=C%E1%BA%A3nh%20b%C3%A1o&category=notice"
        ))
        .bearer_auth(&admin)
        .body(std::fs::read(&tone).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let now = chrono::Utc::now();
    let request = |to: &str, audio: &str| {
        serde_json::json!({
            "title": "Cảnh báo bão số 5",
            "audio": audio,
            "priority": "emergency",
            "to": to,
            "not_before": now.to_rfc3339(),
            "not_after": (now + chrono::Duration::hours(6)).to_rfc3339(),
            "repeats": 3,
            "interval_mins": 30,
        })
    };

    // Operators and auditors may not send: 403, nothing stored.
    for t in [&op, &auditor] {
        let (s, body) = send(&c, &base, t, request("area:79", &sha)).await;
        assert_eq!(s, 403, "{body}");
    }
    assert!(listed(&c, &base, &admin).await.is_empty());

    // Unknown audio, unknown stations: refused in Vietnamese naming the field; nothing stored.
    let (s, body) = send(&c, &base, &admin, request("area:79", &"0".repeat(64))).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["field"], "audio", "{body}");
    let vi = body["error_vi"].as_str().unwrap();
    assert!(
        vi.contains("không có tệp") && vi.contains("thư viện"),
        "{vi}"
    );
    let (s, body) = send(
        &c,
        &base,
        &admin,
        request("stations:phuong-a,phuong-x,phuong-y", &sha),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["field"], "to", "{body}");
    let vi = body["error_vi"].as_str().unwrap();
    assert!(
        vi.contains("không có trạm phuong-x, phuong-y"),
        "names every unknown station: {vi}"
    );
    assert!(listed(&c, &base, &admin).await.is_empty());

    // The admin sends to area 79: stored, listed.
    let (s, body) = send(&c, &base, &admin, request("area:79", &sha)).await;
    assert_eq!(s, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let list = listed(&c, &base, &admin).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["to"], "area:79");
    assert!(list[0]["cancelled_at"].is_null());
    assert_eq!(listed(&c, &base, &auditor).await.len(), 1);

    // The targeted station's fetch: an envelope its check accepts under the pinned centre key.
    let centre: serde_json::Value = c
        .get(format!("{base}/api/v1/centre"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pinned = loa::wire::decode_public_key(centre["key"].as_str().unwrap()).unwrap();
    let (s, got) = fetch(&c, &base, &a, "phuong-a").await;
    assert_eq!(s, 200, "{got}");
    let envs = got["bulletins"].as_array().unwrap();
    assert_eq!(envs.len(), 1, "{got}");
    assert!(got["cancels"].as_array().unwrap().is_empty());
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
    assert_eq!(ok.bulletin.id.to_hex(), id);
    assert_eq!(ok.next_repeat, 1);
    assert_eq!(ok.bulletin.audio.sha256, sha);
    assert_eq!(
        ok.bulletin.audio.size,
        std::fs::metadata(&tone).unwrap().len()
    );
    assert_eq!(ok.bulletin.repeats.count, 3);
    assert_eq!(ok.bulletin.repeats.interval_secs, 1800);
    // Another key does not open it.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    assert!(loa::bulletin::check(&env, "phuong-a", "79101", &[other], now, &|_, _| false).is_err());
    // The heartbeat answer lists it pending for the targeted station only.
    let ack: serde_json::Value = c
        .post(format!("{base}/api/v1/stations/phuong-a/heartbeat"))
        .json(&a.heartbeat(chrono::Utc::now(), 0))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack["pending_bulletins"], serde_json::json!([id]), "{ack}");
    let ack: serde_json::Value = c
        .post(format!("{base}/api/v1/stations/phuong-b/heartbeat"))
        .json(&b.heartbeat(chrono::Utc::now(), 0))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ack.get("pending_bulletins").is_none(), "{ack}");

    // A station outside the area gets none; a station may not fetch another's.
    let (s, got) = fetch(&c, &base, &b, "phuong-b").await;
    assert_eq!(s, 200, "{got}");
    assert!(got["bulletins"].as_array().unwrap().is_empty(), "{got}");
    assert_eq!(fetch(&c, &base, &b, "phuong-a").await.0, 403);

    // Operators may not cancel; the admin does: the station is handed the signed cancel.
    let r = c
        .post(format!("{base}/api/v1/bulletins/{id}/cancel"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{base}/api/v1/bulletins/{id}/cancel"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, got) = fetch(&c, &base, &a, "phuong-a").await;
    assert_eq!(s, 200, "{got}");
    assert!(got["bulletins"].as_array().unwrap().is_empty(), "{got}");
    let cancels = got["cancels"].as_array().unwrap();
    assert_eq!(cancels.len(), 1, "{got}");
    let cenv = loa::centre::Envelope::from_value(&cancels[0]).unwrap();
    let cancel = loa::bulletin::check_cancel(&cenv, &[pinned]).unwrap();
    assert_eq!(cancel.id.to_hex(), id);
    assert!(loa::bulletin::check_cancel(&cenv, &[other]).is_err());
    assert!(listed(&c, &base, &admin).await[0]["cancelled_at"].is_string());
    // A second cancel changes nothing (409).
    let r = c
        .post(format!("{base}/api/v1/bulletins/{id}/cancel"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // The audit log shows the send and the cancel, by the admin, naming the bulletin.
    let audit = c
        .get(format!("{base}/audit.csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = audit.lines().filter(|l| l.contains(&id)).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Gửi bản tin") && l.contains("lan") && l.contains("area:79")),
        "{audit}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Hủy bản tin") && l.contains("lan")),
        "{audit}"
    );
    assert_eq!(lines.len(), 2, "{audit}");

    // The command line: an unknown station refused in Vietnamese (exit 2), nothing stored; a
    // send to a station list reaches that station; a cancel follows.
    let token_file = home.path().join("admin-token");
    std::fs::write(&token_file, &admin).unwrap();
    let loa = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_loa"))
            .args(args)
            .args(["--collector", &base, "--token-file"])
            .arg(&token_file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let not_after = (now + chrono::Duration::hours(2)).to_rfc3339();
    let send_to = |to: &str| {
        loa(&[
            "bulletin",
            "send",
            "--title",
            "Thông báo cắt điện",
            "--audio",
            &sha,
            "--priority",
            "priority",
            "--to",
            to,
            "--not-after",
            &not_after,
            "--repeats",
            "2",
            "--interval-mins",
            "30",
        ])
    };
    let (code, _, err) = send_to("stations:phuong-z");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("không có trạm phuong-z"), "{err}");
    assert_eq!(listed(&c, &base, &admin).await.len(), 1);
    let (code, out, err) = send_to("stations:phuong-b");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Đã gửi bản tin"), "{out}");
    assert!(
        out.contains("mức ưu tiên") && out.contains("phát 2 lần"),
        "{out}"
    );
    let id2 = listed(&c, &base, &admin).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(out.contains(&id2), "{out}");
    let (_, got) = fetch(&c, &base, &b, "phuong-b").await;
    assert_eq!(got["bulletins"].as_array().unwrap().len(), 1, "{got}");
    let (code, out, err) = loa(&["bulletin", "cancel", &id2]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Đã hủy bản tin"), "{out}");
    let (_, got) = fetch(&c, &base, &b, "phuong-b").await;
    assert_eq!(got["cancels"].as_array().unwrap().len(), 1, "{got}");
    let (code, _, err) = loa(&["bulletin", "cancel", &id2]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("đã bị hủy"), "{err}");
}
