//! Schedules held by the centre, with the real collector binary (`loa collector`, its layout in
//! `$LOA_HOME`, real SQLite or PostgreSQL, real HTTP, the real plan cache): an invalid schedule is
//! refused at line:column and nothing is activated; a valid one becomes version 1, the managed file
//! and the registry point at it and the station's plan follows; an edit is version 2; a rollback to
//! 1 is version 3 with version 1's text; an operator of another station is refused; the page
//! editor shows the errors with the text back; the manifest of the latest version lists its files
//! and verifies with the centre's public key; the heartbeat answer names the latest version.

mod collector_common;

use collector_common::{TestStation, cookie_pair, form, hidden_csrf, real_collector_with};

/// The real collector in `home` on database `db` (`collector.db` in `home`, or a PostgreSQL
/// database under LOA_TEST_DB=postgres).
fn start(home: &Path, db: &Path) -> collector_common::RealCollector {
    real_collector_with(home, &["--db", db.to_str().unwrap()], &[])
}
use loa::collector::accounts::{self, Role};
use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;

const PW: &str = "mat-khau-that-dai-1";

const V1: &str = "id = \"phuong-a\"\nname = \"Phường A\"\nkind = \"ward\"\narea_code = \"21100\"\n\n[[slots]]\nid = \"sang\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n";

fn v2() -> String {
    format!("{V1}\n[[slots]]\nid = \"chieu\"\ncron = \"0 18 * * *\"\nplay = [\"jingle.ogg\"]\n")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
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

async fn sign_in(c: &reqwest::Client, base: &str, name: &str) -> String {
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    let jar = cookie_pair(&r, "loa_login_csrf").unwrap();
    let csrf = hidden_csrf(&r.text().await.unwrap());
    let r = c
        .post(format!("{base}/login"))
        .header("cookie", jar)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", &csrf),
            ("name", name),
            ("password", PW),
            ("next", "/"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    cookie_pair(&r, "loa_session").unwrap()
}

async fn put(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    text: &str,
) -> (StatusCode, serde_json::Value) {
    let r = c
        .put(format!(
            "{base}/api/v1/stations/{id}/schedule?note=th%E1%BB%AD"
        ))
        .bearer_auth(token)
        .header("content-type", "application/toml")
        .body(text.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn schedule(c: &reqwest::Client, base: &str, token: &str) -> serde_json::Value {
    c.get(format!("{base}/api/v1/stations/phuong-a/schedule"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Wait until the station's status reports `planned` airings this month (the plan cache reads
/// the managed file within its recheck period).
async fn plan_follows(c: &reqwest::Client, base: &str, token: &str, planned: u64) {
    let mut last = serde_json::Value::Null;
    for _ in 0..150 {
        last = c
            .get(format!("{base}/api/v1/stations/phuong-a"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if last["month_planned"] == planned {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the plan did not follow to {planned} airings: {last}");
}

/// Evenings (18:00 local, version 2's extra slot) of `from`'s month in `[from, to)`: a version
/// governs the month's plan only from its publication until the next one's.
fn evenings(from: &serde_json::Value, to: Option<&serde_json::Value>) -> u64 {
    use chrono::{Datelike, TimeZone};
    let t = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let (from, to) = (t(from), to.map(t));
    let off = loa::report::report_offset();
    let first = from.with_timezone(&off).date_naive().with_day(1).unwrap();
    let next = first.checked_add_months(chrono::Months::new(1)).unwrap();
    first
        .iter_days()
        .take_while(|d| *d < next)
        .map(|d| {
            off.from_local_datetime(&d.and_hms_opt(18, 0, 0).unwrap())
                .unwrap()
                .with_timezone(&chrono::Utc)
        })
        .filter(|at| *at >= from && to.is_none_or(|to| *at < to))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_publish_validate_roll_back_and_stay_within_an_operators_stations() {
    let home = tempfile::tempdir().unwrap();
    let tree = home.path().join("collector/library/tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg"),
        tree.join("jingle.ogg"),
    )
    .unwrap();
    let a = TestStation::new("phuong-a", 1);
    let b = TestStation::new("phuong-b", 2);
    let mut reg = String::new();
    for s in [&a, &b] {
        reg.push_str(&format!(
            "[[station]]\nid = \"{}\"\nname = \"Phường\"\narea_code = \"21100\"\npublic_key = \"{}\"\n",
            s.id,
            s.public_key()
        ));
    }
    std::fs::write(home.path().join("collector.toml"), reg).unwrap();
    let db = loa::collector::db::testing::test_db(home.path(), "collector.db");
    let admin = user(&db, "lan", Role::Admin, &[]);
    let op_a = user(&db, "op-a", Role::Operator, &["phuong-a"]);
    let op_b = user(&db, "op-b", Role::Operator, &["phuong-b"]);
    let auditor = user(&db, "kiem", Role::Auditor, &[]);
    let srv = start(home.path(), &db);
    let base = srv.base.clone();
    let c = client();
    let managed = home.path().join("collector/schedules/phuong-a.toml");

    // Invalid: 422, every problem at line:column, nothing stored or activated.
    let bad = V1.replace("0 6 * * *", "0 25 * * *");
    let (st, body) = put(&c, &base, &op_a, "phuong-a", &bad).await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["problems"][0]["line"], 8, "{body}");
    assert!(
        body["problems"][0]["column"].as_u64().unwrap() > 1,
        "{body}"
    );
    assert_eq!(body["problems"][0]["document"], "station", "{body}");
    let missing = V1.replace("jingle.ogg", "khong-co.ogg");
    assert_eq!(put(&c, &base, &op_a, "phuong-a", &missing).await.0, 422);
    assert!(schedule(&c, &base, &op_a).await["active"].is_null());
    assert!(!managed.exists());

    // Valid: version 1, active; the managed file and the registry point at it; the plan follows.
    let (st, body) = put(&c, &base, &op_a, "phuong-a", V1).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(std::fs::read_to_string(&managed).unwrap(), V1);
    let registry = std::fs::read_to_string(home.path().join("collector.toml")).unwrap();
    assert!(
        registry.contains(&managed.display().to_string()),
        "{registry}"
    );
    assert!(registry.contains(&tree.display().to_string()), "{registry}");
    let days = {
        use chrono::Datelike;
        let now = chrono::Utc::now().with_timezone(&loa::report::report_offset());
        let first = now.date_naive().with_day(1).unwrap();
        let next = first.checked_add_months(chrono::Months::new(1)).unwrap();
        (next - first).num_days() as u64
    };
    plan_follows(&c, &base, &admin, days).await;

    // An edit: version 2, the plan follows from its publication on (two slots a day); the
    // month before it stays version 1's.
    let (st, body) = put(&c, &base, &op_a, "phuong-a", &v2()).await;
    assert_eq!(
        (st, body["version"].clone()),
        (StatusCode::CREATED, 2.into()),
        "{body}"
    );
    let v2_at = body["published_at"].clone();
    plan_follows(&c, &base, &admin, days + evenings(&v2_at, None)).await;

    // Another station's operator and an auditor may not save; the auditor may read.
    assert_eq!(put(&c, &base, &op_b, "phuong-a", V1).await.0, 403);
    assert_eq!(put(&c, &base, &auditor, "phuong-a", V1).await.0, 403);
    assert_eq!(schedule(&c, &base, &auditor).await["active"]["version"], 2);

    // The page: a bad edit shows the text back with line:column, nothing activated.
    let session = sign_in(&c, &base, "op-a").await;
    let page = c
        .get(format!("{base}/stations/phuong-a/schedule"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&page);
    let r = c
        .post(format!("{base}/stations/phuong-a/schedule"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf), ("text", &bad), ("note", "sai")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("8:"), "{html}");
    assert!(
        html.contains("0 25 * * *"),
        "the text is shown back: {html}"
    );
    assert_eq!(schedule(&c, &base, &op_a).await["active"]["version"], 2);

    // Rollback to 1 from its page: version 3 with version 1's text.
    let r = c
        .post(format!(
            "{base}/stations/phuong-a/schedule/versions/1/rollback"
        ))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/stations/phuong-a/schedule/versions/3?saved=1"
    );
    let now = schedule(&c, &base, &admin).await;
    assert_eq!(now["active"]["version"], 3);
    assert_eq!(now["active"]["text"], V1);
    assert_eq!(now["active"]["rollback_of"], 1);
    let numbers: Vec<u64> = now["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(std::fs::read_to_string(&managed).unwrap(), V1);
    // Version 2 still governs the moments it was in force (a rollback rewrites no past).
    let v3_at = now["versions"][0]["published_at"].clone();
    plan_follows(&c, &base, &admin, days + evenings(&v2_at, Some(&v3_at))).await;

    // Version 2's page: the diff from version 1, escaped lines.
    let html = c
        .get(format!("{base}/stations/phuong-a/schedule/versions/2"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<span class=\"diff-add\">+id = &quot;chieu&quot;</span>"),
        "{html}"
    );
    assert!(html.contains("id=\"rollback\""), "{html}");
    // Another station's operator may not open it.
    let other = sign_in(&c, &base, "op-b").await;
    let r = c
        .get(format!("{base}/stations/phuong-a/schedule"))
        .header("cookie", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Every publish is in the audit log, before → after.
    let audit = c
        .get(format!("{base}/audit.csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains("Khôi phục lịch phát"), "{audit}");
    assert!(audit.contains("phiên bản 2 (sha256 "), "{audit}");

    // The manifest of version 3: station-signed request, signed by the centre's key, listing the
    // files its schedule needs with their hashes and sizes.
    let centre: serde_json::Value = c
        .get(format!("{base}/api/v1/centre"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let centre_key = loa::wire::decode_public_key(centre["key"].as_str().unwrap()).unwrap();
    let fetch = |st: &TestStation, id: &str| {
        let pq = format!("/api/v1/stations/{id}/manifest");
        let h = loa::centre::request::sign(&st.key, &st.id, "GET", &pq, chrono::Utc::now());
        let mut r = c.get(format!("{base}{pq}"));
        for (k, v) in h.pairs() {
            r = r.header(k, v);
        }
        r.send()
    };
    let r = fetch(&a, "phuong-a").await.unwrap();
    assert_eq!(r.status(), 200);
    let env = loa::centre::Envelope::decode(&r.bytes().await.unwrap()).unwrap();
    let m = loa::centre::manifest::open(&env, &[centre_key], "phuong-a", Some(2)).unwrap();
    assert_eq!((m.version, m.days), (3, 45));
    assert_eq!(m.schedule.text, V1);
    let files: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["jingle.ogg"]);
    assert_eq!(
        m.files[0].sha256,
        loa::media::sha256_file(&tree.join("jingle.ogg")).unwrap()
    );
    assert_eq!(
        m.files[0].size,
        std::fs::metadata(tree.join("jingle.ogg")).unwrap().len()
    );
    // Another key does not open it; another station may not fetch it; none published: 404.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    assert!(loa::centre::manifest::open(&env, &[other], "phuong-a", Some(2)).is_err());
    assert_eq!(fetch(&b, "phuong-a").await.unwrap().status(), 403);
    assert_eq!(fetch(&b, "phuong-b").await.unwrap().status(), 404);

    // The heartbeat answer names the latest version.
    let hb = a.heartbeat(chrono::Utc::now(), 0);
    let r = c
        .post(format!("{base}/api/v1/stations/phuong-a/heartbeat"))
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ack: serde_json::Value = r.json().await.unwrap();
    assert_eq!(ack["manifest_version"], 3, "{ack}");
    let hb = b.heartbeat(chrono::Utc::now(), 0);
    let ack: serde_json::Value = c
        .post(format!("{base}/api/v1/stations/phuong-b/heartbeat"))
        .json(&hb)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ack["manifest_version"].is_null(), "{ack}");
}

/// The city's shared programs: defined once (admins), used by a station that does not define
/// them, merged into what the station receives; a broken programs document is refused at its
/// own line; a new programs version re-publishes each station using them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_programs_are_defined_once_and_reach_the_stations_that_use_them() {
    let home = tempfile::tempdir().unwrap();
    let tree = home.path().join("collector/library/tree");
    std::fs::create_dir_all(&tree).unwrap();
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    std::fs::copy(&tone, tree.join("jingle.ogg")).unwrap();
    std::fs::copy(&tone, tree.join("cchc.ogg")).unwrap();
    let a = TestStation::new("phuong-a", 1);
    std::fs::write(
        home.path().join("collector.toml"),
        format!(
            "[[station]]\nid = \"phuong-a\"\nname = \"Phường\"\narea_code = \"21100\"\npublic_key = \"{}\"\n",
            a.public_key()
        ),
    )
    .unwrap();
    let db = loa::collector::db::testing::test_db(home.path(), "collector.db");
    let admin = user(&db, "lan", Role::Admin, &[]);
    let op_a = user(&db, "op-a", Role::Operator, &["phuong-a"]);
    let srv = start(home.path(), &db);
    let base = srv.base.clone();
    let c = client();
    let put_programs = async |token: &str, text: &str| {
        let r = c
            .put(format!("{base}/api/v1/programs"))
            .bearer_auth(token)
            .body(text.to_string())
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json::<serde_json::Value>().await.unwrap_or_default())
    };
    let programs = "# Chương trình của thành phố\n[[programs]]\nid = \"cchc\"\ntitle = \"Chuyên mục CCHC\"\ncategory = \"cchc\"\nfile = \"cchc.ogg\"\n";
    assert_eq!(
        put_programs(&op_a, programs).await.0,
        403,
        "operators do not edit the city's programs"
    );
    let (st, body) = put_programs(&admin, programs).await;
    assert_eq!(
        (st, body["version"].clone()),
        (StatusCode::CREATED, 1.into()),
        "{body}"
    );

    // A station uses `cchc` without defining it; what it receives defines it.
    let own = V1.replace(
        "play = [\"jingle.ogg\"]",
        "play = [\"jingle.ogg\", \"program:cchc\"]",
    );
    let (st, body) = put(&c, &base, &op_a, "phuong-a", &own).await;
    assert_eq!(st, 201, "{body}");
    let managed =
        std::fs::read_to_string(home.path().join("collector/schedules/phuong-a.toml")).unwrap();
    assert!(
        managed.starts_with(&own) && managed.contains("file = \"cchc.ogg\""),
        "{managed}"
    );
    let now = schedule(&c, &base, &op_a).await;
    assert_eq!(
        now["active"]["text"],
        own.as_str(),
        "the editor keeps the station's own text"
    );
    assert_eq!(now["active"]["programs_version"], 1);

    // A broken programs document: refused at its own line, nothing changes.
    let (st, body) = put_programs(&admin, &programs.replace("cchc.ogg", "khong-co.ogg")).await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(
        body["problems"][0]["document"]["programs"]["version"], 2,
        "{body}"
    );
    assert_eq!(body["problems"][0]["line"], 6, "{body}");
    assert_eq!(schedule(&c, &base, &op_a).await["active"]["version"], 1);

    // A new programs version: the station gets a new version with it merged in.
    let (st, body) = put_programs(
        &admin,
        &programs.replace("Chuyên mục CCHC", "CCHC tháng này"),
    )
    .await;
    assert_eq!(
        (st, body["version"].clone()),
        (StatusCode::CREATED, 2.into()),
        "{body}"
    );
    let now = schedule(&c, &base, &op_a).await;
    assert_eq!(now["active"]["version"], 2, "{now}");
    assert_eq!(now["active"]["programs_version"], 2);
    assert_eq!(now["active"]["text"], own.as_str());
    let managed =
        std::fs::read_to_string(home.path().join("collector/schedules/phuong-a.toml")).unwrap();
    assert!(managed.contains("CCHC tháng này"), "{managed}");
}
