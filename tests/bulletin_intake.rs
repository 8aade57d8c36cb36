//! A station's intake of bulletins and its receipts to the centre (issue #15; docs/bulletins.md,
//! "Station wiring: intake and receipts"), with the real collector binary (`loa collector`, real
//! SQLite or PostgreSQL, real HTTP, the real content library and centre key) and real station keys;
//! the intake (`station::bulletins::Intake`) runs in this process, its events read from its channel
//! as the daemon reads them:
//!
//! - a valid bulletin is delivered: `IntakeEvent::Ready` with the audio verified on disk (the
//!   library's bytes), and the collector stores the `delivered` receipt;
//! - one signed by another key, one altered after signing, one targeted elsewhere (the station's
//!   own area code is not the registry's), one the station's clock says has expired, one whose
//!   audio does not verify: each refused, never handed on, its code stored at the collector;
//! - a station not running during the send gets it when it starts, while valid;
//! - the heartbeat answer's `pending_bulletins` alone (no wake, no periodic check) brings one;
//! - a cancel arrives as `IntakeEvent::Cancelled`;
//! - fetched again, nothing is delivered or reported again; after a restart, only what is still
//!   valid is handed to the (fresh) daemon again, and no receipt changes.

mod collector_common;

use collector_common::{TestStation, real_collector_with};
use loa::bulletin::{Bulletin, Targets};
use loa::collector::accounts::{self, Role};
use loa::collector::bulletins::{StateKind, StationStates, station_states};
use loa::shipper::HeartbeatAnswer;
use loa::station::bulletins::{AiredBulletins, Intake, IntakeConfig, IntakeEvent, Links};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

const PW: &str = "mat-khau-that-dai-1";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn admin_token(db: &Path) -> String {
    let mut c = loa::collector::Store::open(db).unwrap().into_connection();
    let now = chrono::Utc::now();
    accounts::add_user(&mut c, "lan", Role::Admin, &[], PW, now).unwrap();
    let u = accounts::find_user(&c, "lan").unwrap().unwrap();
    accounts::create_token(&c, &u, "thử", now).unwrap().0
}

/// One station box: its key, data directory (the centre key pinned), the intake's links.
struct Box_ {
    st: TestStation,
    dir: PathBuf,
    /// The station's own area code (its schedule's).
    area: String,
    clock: Arc<dyn loa::clock::Clock>,
    wake: Arc<Notify>,
    answers: watch::Sender<HeartbeatAnswer>,
}

/// A running intake: its events and how to stop it.
struct Running {
    events: mpsc::Receiver<IntakeEvent>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Box_ {
    fn new(root: &Path, st: TestStation, area: &str, centre: &ed25519_dalek::VerifyingKey) -> Self {
        let dir = root.join(&st.id);
        std::fs::create_dir_all(&dir).unwrap();
        loa::centre::pin::pin_first(&dir, centre).unwrap();
        Self {
            st,
            dir,
            area: area.into(),
            clock: Arc::new(loa::clock::SystemClock),
            wake: Arc::new(Notify::new()),
            answers: watch::Sender::new(HeartbeatAnswer::default()),
        }
    }

    /// Start the intake (`check_secs` without news).
    fn start(&self, base: &str, check_secs: u64) -> Running {
        let mut cfg = IntakeConfig::new(
            &self.st.id,
            self.dir.clone(),
            base,
            self.st.key.clone(),
            &self.area,
        );
        cfg.check_secs = check_secs;
        cfg.retry_max_secs = 2;
        cfg.read_timeout = Duration::from_secs(10);
        cfg.clock = self.clock.clone();
        let (tx, events) = mpsc::channel(16);
        let links = Links {
            events: tx,
            aired: AiredBulletins::default(),
            wake: self.wake.clone(),
            answers: self.answers.subscribe(),
        };
        let intake = Intake::new(cfg, links).unwrap();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(intake.run(rx));
        Running { events, stop, task }
    }
}

async fn next_event(r: &mut Running, secs: u64) -> Option<IntakeEvent> {
    tokio::time::timeout(Duration::from_secs(secs), r.events.recv())
        .await
        .ok()
        .flatten()
}

/// Send a bulletin through the API (admin); its id.
async fn send(c: &reqwest::Client, base: &str, token: &str, to: &str, audio: &str) -> String {
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "title": "Cảnh báo bão số 5",
        "audio": audio,
        "priority": "emergency",
        "to": to,
        "not_before": now.to_rfc3339(),
        "not_after": (now + chrono::Duration::hours(6)).to_rfc3339(),
        "repeats": 2,
        "interval_mins": 30,
    });
    let r = c
        .post(format!("{base}/api/v1/bulletins"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

struct Centre {
    home: PathBuf,
    /// The collector's database (`collector.db` in `home`, or PostgreSQL's).
    db: PathBuf,
}

impl Centre {
    fn conn(&self) -> loa::collector::db::Conn {
        loa::collector::Store::open(&self.db)
            .unwrap()
            .into_connection()
    }

    fn states(&self, id: &str) -> StationStates {
        let reg = loa::collector::Registry::load(&self.home.join("collector.toml")).unwrap();
        station_states(&self.conn(), &reg, id, chrono::Utc::now())
            .unwrap()
            .unwrap()
    }

    /// (state, code, station time) of `station`'s entry once it is no longer `sending`.
    async fn wait_state(
        &self,
        id: &str,
        station: &str,
    ) -> (
        StateKind,
        Option<String>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) {
        for _ in 0..150 {
            let s = self.states(id);
            if let Some(x) = s.stations.iter().find(|x| x.station == station)
                && x.state != StateKind::Sending
            {
                return (x.state, x.code.clone(), x.at);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{station}: no receipt for bulletin {id} at the collector");
    }
}

fn ready(ev: Option<IntakeEvent>) -> loa::station::bulletins::ReadyBulletin {
    match ev {
        Some(IntakeEvent::Ready(r)) => *r,
        other => panic!("expected a ready bulletin, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulletins_are_delivered_refused_cancelled_and_reported_once() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("collector/library/tree")).unwrap();
    // phuong-m is registered in area 79 but its own schedule says 51001 (a mistargeted copy).
    let stations = [
        (TestStation::new("phuong-a", 1), "79101"),
        (TestStation::new("phuong-m", 2), "79105"),
        (TestStation::new("phuong-x", 3), "79106"),
        (TestStation::new("phuong-o", 4), "79107"),
    ];
    let mut reg = String::new();
    for (s, area) in &stations {
        reg.push_str(&format!(
            "[[station]]\nid = \"{}\"\nname = \"Phường\"\narea_code = \"{area}\"\npublic_key = \"{}\"\n",
            s.id,
            s.public_key()
        ));
    }
    std::fs::write(home.path().join("collector.toml"), reg).unwrap();
    let db = loa::collector::db::testing::test_db(home.path(), "collector.db");
    let admin = admin_token(&db);
    let srv = real_collector_with(home.path(), &["--db", db.to_str().unwrap()], &[]);
    let base = srv.base.clone();
    let c = client();
    let centre = Centre {
        home: home.path().to_path_buf(),
        db: db.clone(),
    };

    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    let tone_bytes = std::fs::read(&tone).unwrap();
    let sha = loa::media::sha256_file(&tone).unwrap();
    let r = c
        .post(format!(
            "{base}/api/v1/content?title=C%E1%BA%A3nh%20b%C3%A1o&category=notice"
        ))
        .bearer_auth(&admin)
        .body(tone_bytes.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let key: serde_json::Value = c
        .get(format!("{base}/api/v1/centre"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pinned = loa::wire::decode_public_key(key["key"].as_str().unwrap()).unwrap();

    let root = home.path().join("stations");
    let mut it = stations.into_iter().map(|(s, _)| s);
    let a = Box_::new(&root, it.next().unwrap(), "79101", &pinned);
    let m = Box_::new(&root, it.next().unwrap(), "51001", &pinned);
    let mut x = Box_::new(&root, it.next().unwrap(), "79106", &pinned);
    // phuong-x's clock is a day ahead: every bulletin of a 6-hour window has expired for it.
    x.clock = Arc::new(loa::clock::ManualClock::new(
        chrono::Utc::now() + chrono::Duration::days(1),
    ));
    let o = Box_::new(&root, it.next().unwrap(), "79107", &pinned);

    // Stations a, m, x run (no periodic check within the test: they learn by the wake); o is
    // not running.
    let mut ra = a.start(&base, 3600);
    let mut rm = m.start(&base, 3600);
    let mut rx = x.start(&base, 3600);

    // 1. A valid bulletin to area 79.
    let valid = send(&c, &base, &admin, "area:79", &sha).await;
    for b in [&a, &m, &x] {
        b.wake.notify_one();
    }
    let got = ready(next_event(&mut ra, 20).await);
    assert_eq!(got.bulletin.id.to_hex(), valid);
    assert_eq!(
        std::fs::read(&got.audio).unwrap(),
        tone_bytes,
        "the verified audio"
    );
    assert!(got.audio.starts_with(a.dir.join("bulletins/content")));
    let (state, code, delivered_at) = centre.wait_state(&valid, "phuong-a").await;
    assert_eq!((state, code), (StateKind::Delivered, None));
    // Targeted elsewhere by the station's own area code; expired by the station's clock.
    let (state, code, _) = centre.wait_state(&valid, "phuong-m").await;
    assert_eq!(
        (state, code.as_deref()),
        (StateKind::Refused, Some("bulletin.not_targeted"))
    );
    let (state, code, _) = centre.wait_state(&valid, "phuong-x").await;
    assert_eq!(
        (state, code.as_deref()),
        (StateKind::Refused, Some("bulletin.expired"))
    );
    assert!(
        next_event(&mut rm, 1).await.is_none(),
        "m never hands it on"
    );
    assert!(
        next_event(&mut rx, 1).await.is_none(),
        "x never hands it on"
    );

    // 2. Signed by another key (stored at the centre as if it had been sent), and altered after
    // signing (the title changed in the stored envelope): both refused bulletin.signature.
    let forged = Bulletin {
        v: 1,
        id: loa::bulletin::BulletinId::random().unwrap(),
        created_at: chrono::Utc::now(),
        title: "Bản tin giả".into(),
        priority: loa::schedule::Priority::Emergency,
        targets: Targets::Stations(vec!["phuong-a".into()]),
        not_before: chrono::Utc::now(),
        not_after: chrono::Utc::now() + chrono::Duration::hours(6),
        repeats: loa::bulletin::Repeats {
            count: 1,
            interval_secs: 0,
        },
        audio: got.bulletin.audio.clone(),
        text: None,
        synthetic: false,
    };
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let env = forged.sign(&other).unwrap();
    loa::collector::bulletins::insert(&centre.conn(), &forged, &env, "kẻ giả").unwrap();
    let altered = send(&c, &base, &admin, "stations:phuong-a", &sha).await;
    {
        let conn = centre.conn();
        let text: String = conn
            .query_row(
                "SELECT envelope FROM bulletins WHERE id = ?1",
                loa::collector::db::params![altered],
                |r| r.get(0),
            )
            .unwrap();
        let env = loa::centre::Envelope::decode(text.as_bytes()).unwrap();
        let mut b = Bulletin::decode(&env.body).unwrap();
        b.title = "Cảnh báo bão số 6".into();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        use base64::Engine as _;
        v["body"] = base64::engine::general_purpose::STANDARD
            .encode(b.to_body())
            .into();
        conn.execute(
            "UPDATE bulletins SET envelope = ?1 WHERE id = ?2",
            loa::collector::db::params![v.to_string(), altered],
        )
        .unwrap();
    }
    // Signed by the centre's own key, but naming audio the station cannot verify (a library
    // file the station does not hold, a byte shorter than the bulletin says; and the file it
    // holds, named with a byte more): both refused bulletin.audio.
    let centre_key = loa::centre::key::load(&home.path().join("collector/centre-key")).unwrap();
    let noise = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.wav");
    let r = c
        .post(format!(
            "{base}/api/v1/content?title=Nhi%E1%BB%85u&category=notice"
        ))
        .bearer_auth(&admin)
        .body(std::fs::read(&noise).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut wrong = Vec::new();
    for (sha, size) in [
        (
            loa::media::sha256_file(&noise).unwrap(),
            std::fs::metadata(&noise).unwrap().len() + 1,
        ),
        (sha.clone(), got.bulletin.audio.size + 1),
    ] {
        let b = Bulletin {
            id: loa::bulletin::BulletinId::random().unwrap(),
            title: "Âm thanh sai".into(),
            audio: loa::bulletin::AudioRef {
                sha256: sha,
                size,
                duration_ms: 1000,
            },
            ..forged.clone()
        };
        let env = b.sign(&centre_key).unwrap();
        loa::collector::bulletins::insert(&centre.conn(), &b, &env, "lan").unwrap();
        wrong.push(b.id.to_hex());
    }
    a.wake.notify_one();
    for (id, want) in [
        (forged.id.to_hex(), "bulletin.signature"),
        (altered.clone(), "bulletin.signature"),
        (wrong[0].clone(), "bulletin.audio"),
        (wrong[1].clone(), "bulletin.audio"),
    ] {
        let (state, code, _) = centre.wait_state(&id, "phuong-a").await;
        assert_eq!(
            (state, code.as_deref()),
            (StateKind::Refused, Some(want)),
            "{id}"
        );
    }
    assert!(
        next_event(&mut ra, 1).await.is_none(),
        "nothing refused is handed on"
    );

    // 3. The heartbeat answer's pending list alone brings a new one (no wake, no periodic check).
    let by_heartbeat = send(&c, &base, &admin, "stations:phuong-a", &sha).await;
    a.answers
        .send_modify(|h| h.pending_bulletins = vec![valid.clone(), by_heartbeat.clone()]);
    let got2 = ready(next_event(&mut ra, 20).await);
    assert_eq!(got2.bulletin.id.to_hex(), by_heartbeat);

    // 4. A cancel arrives as Cancelled.
    let cancelled = send(&c, &base, &admin, "stations:phuong-a", &sha).await;
    a.wake.notify_one();
    assert_eq!(
        ready(next_event(&mut ra, 20).await).bulletin.id.to_hex(),
        cancelled
    );
    let r = c
        .post(format!("{base}/api/v1/bulletins/{cancelled}/cancel"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    a.wake.notify_one();
    match next_event(&mut ra, 20).await {
        Some(IntakeEvent::Cancelled { id, .. }) => assert_eq!(id.to_hex(), cancelled),
        other => panic!("expected the cancel, got {other:?}"),
    }

    // 5. A station not running during the send gets what is still valid when it starts.
    let mut ro = o.start(&base, 3600);
    let got = ready(next_event(&mut ro, 20).await);
    assert_eq!(got.bulletin.id.to_hex(), valid);
    assert_eq!(
        centre.wait_state(&valid, "phuong-o").await.0,
        StateKind::Delivered
    );
    assert!(next_event(&mut ro, 1).await.is_none());

    // 6. Fetched again: nothing delivered or reported again.
    for _ in 0..3 {
        a.wake.notify_one();
        assert!(next_event(&mut ra, 1).await.is_none(), "delivered again");
    }
    let receipts = |id: &str| -> Vec<(String, String, i64, i64)> {
        let conn = centre.conn();
        let mut st = conn
            .prepare(
                "SELECT station, state, station_unix_ms, received_unix_ms FROM bulletin_receipts
                 WHERE bulletin_id = ?1 ORDER BY station",
            )
            .unwrap();
        st.query_map(loa::collector::db::params![id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let before = receipts(&valid);
    assert_eq!(before.len(), 4, "{before:?}");
    assert_eq!(
        centre.wait_state(&valid, "phuong-a").await.2,
        delivered_at,
        "the delivered receipt is the first one"
    );

    // 7. Restart: the fresh daemon is handed again what is still valid and not cancelled (the
    // valid one, the heartbeat's), never the cancelled or refused ones; no receipt changes.
    ra.stop().await;
    let mut ra = a.start(&base, 3600);
    let mut again = Vec::new();
    while let Some(ev) = next_event(&mut ra, 3).await {
        again.push(ready(Some(ev)).bulletin.id.to_hex());
    }
    again.sort();
    let mut want = vec![valid.clone(), by_heartbeat.clone()];
    want.sort();
    assert_eq!(again, want);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receipts(&valid), before, "no receipt sent again");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.dir.join("bulletins/intake.json")).unwrap())
            .unwrap();
    assert_eq!(state["outbox"], serde_json::json!([]), "{state}");

    for r in [ra, rm, rx, ro] {
        r.stop().await;
    }
}
