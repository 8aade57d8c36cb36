//! The push channel (issue #15, docs/bulletins.md "Push channel") with the real collector binary
//! (`loa collector`, real SQLite or PostgreSQL, real HTTP, the real content library and centre
//! key): the event stream refuses an unsigned request and another station's, and a third stream of
//! one station (429, in Vietnamese); a bulletin an admin sends reaches a connected targeted
//! station's stream within a bound, as an envelope `bulletin::check` accepts under the pinned
//! centre key, and no other station's; a station that reconnects with `Last-Event-ID` gets what
//! it missed and is still valid (a new bulletin, the cancel of one cancelled meanwhile) and not
//! what it had (nor the cancelled bulletin itself, nor one for another area); a cancel reaches
//! the stream live; the station's own client (`station::push::PushClient`) wakes the intake on a
//! send, and the sync agent's answers on a new schedule version.

mod collector_common;

use collector_common::{TestStation, real_collector_with};
use loa::collector::accounts::{self, Role};
use loa::station::push::{Parser, SseEvent};
use std::path::Path;
use std::time::{Duration, Instant};

const PW: &str = "mat-khau-that-dai-1";
/// How long a sent bulletin may take to reach a connected stream here (loopback, a loaded
/// 2-core machine).
const DELIVERY_BOUND: Duration = Duration::from_secs(3);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn admin(db: &Path) -> String {
    let mut c = loa::collector::Store::open(db).unwrap().into_connection();
    let now = chrono::Utc::now();
    accounts::add_user(&mut c, "lan", Role::Admin, &[], PW, now).unwrap();
    let u = accounts::find_user(&c, "lan").unwrap().unwrap();
    accounts::create_token(&c, &u, "thử", now).unwrap().0
}

/// A collector with stations phuong-a (area 79101), phuong-b (51001), phuong-c (79102), an
/// admin's token, a library item's SHA-256 and the pinned centre key.
struct Site {
    _home: tempfile::TempDir,
    srv: collector_common::RealCollector,
    base: String,
    token: String,
    sha: String,
    pinned: ed25519_dalek::VerifyingKey,
    a: TestStation,
    b: TestStation,
    c: TestStation,
    http: reqwest::Client,
}

async fn site() -> Site {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("collector/library/tree")).unwrap();
    let (a, b, c) = (
        TestStation::new("phuong-a", 1),
        TestStation::new("phuong-b", 2),
        TestStation::new("phuong-c", 3),
    );
    let mut reg = String::new();
    for (s, area) in [(&a, "79101"), (&b, "51001"), (&c, "79102")] {
        reg.push_str(&format!(
            "[[station]]\nid = \"{}\"\nname = \"Phường\"\narea_code = \"{area}\"\npublic_key = \"{}\"\n",
            s.id,
            s.public_key()
        ));
    }
    std::fs::write(home.path().join("collector.toml"), reg).unwrap();
    // `collector.db` in the state directory, or a PostgreSQL database under LOA_TEST_DB=postgres.
    let db = loa::collector::db::testing::test_db(home.path(), "collector.db");
    let token = admin(&db);
    let srv = real_collector_with(home.path(), &["--db", db.to_str().unwrap()], &[]);
    let base = srv.base.clone();
    let http = client();
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    let sha = loa::media::sha256_file(&tone).unwrap();
    let r = http
        .post(format!(
            "{base}/api/v1/content?title=C%E1%BA%A3nh%20b%C3%A1o&category=notice"
        ))
        .bearer_auth(&token)
        .body(std::fs::read(&tone).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let centre: serde_json::Value = http
        .get(format!("{base}/api/v1/centre"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pinned = loa::wire::decode_public_key(centre["key"].as_str().unwrap()).unwrap();
    Site {
        _home: home,
        srv,
        base,
        token,
        sha,
        pinned,
        a,
        b,
        c,
        http,
    }
}

impl Site {
    /// Send a bulletin to `to`; its id.
    async fn send(&self, to: &str, title: &str) -> String {
        let now = chrono::Utc::now();
        let r = self
            .http
            .post(format!("{}/api/v1/bulletins", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({
                "title": title,
                "audio": self.sha,
                "priority": "emergency",
                "to": to,
                "not_before": now.to_rfc3339(),
                "not_after": (now + chrono::Duration::hours(6)).to_rfc3339(),
            }))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(s, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn cancel(&self, id: &str) {
        let r = self
            .http
            .post(format!("{}/api/v1/bulletins/{id}/cancel", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// Open `path_station`'s stream signed by `st` (unsigned when `None`).
    async fn open(
        &self,
        st: Option<&TestStation>,
        path_station: &str,
        last_id: Option<&str>,
    ) -> reqwest::Response {
        let pq = format!("/api/v1/stations/{path_station}/events");
        let mut r = self
            .http
            .get(format!("{}{pq}", self.base))
            .header("accept", "text/event-stream");
        if let Some(st) = st {
            let h = loa::centre::request::sign(&st.key, &st.id, "GET", &pq, chrono::Utc::now());
            for (k, v) in h.pairs() {
                r = r.header(k, v);
            }
        }
        if let Some(id) = last_id {
            r = r.header("last-event-id", id);
        }
        r.send().await.unwrap()
    }

    /// The bulletin id of a `bulletin` event's envelope, after `bulletin::check` accepted it
    /// for `st` (area `area`) under the pinned key.
    fn checked(&self, e: &SseEvent, st: &TestStation, area: &str) -> String {
        assert_eq!(e.event, "bulletin", "{e:?}");
        let env = loa::centre::Envelope::decode(e.data.as_bytes()).unwrap();
        let ok = loa::bulletin::check(
            &env,
            &st.id,
            area,
            &[self.pinned],
            chrono::Utc::now(),
            &|_, _| false,
        )
        .unwrap();
        ok.bulletin.id.to_hex()
    }

    /// The bulletin id of a `cancel` event's envelope, after `check_cancel` accepted it.
    fn cancelled(&self, e: &SseEvent) -> String {
        assert_eq!(e.event, "cancel", "{e:?}");
        let env = loa::centre::Envelope::decode(e.data.as_bytes()).unwrap();
        loa::bulletin::check_cancel(&env, &[self.pinned])
            .unwrap()
            .id
            .to_hex()
    }
}

/// A stream being read.
struct Stream {
    r: reqwest::Response,
    p: Parser,
    ready: std::collections::VecDeque<SseEvent>,
}

impl Stream {
    fn new(r: reqwest::Response) -> Self {
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            r,
            p: Parser::new(None),
            ready: Default::default(),
        }
    }

    /// The next event within `within`, or `None`.
    async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            let chunk = tokio::time::timeout_at(until, self.r.chunk()).await.ok()?;
            let chunk = chunk.unwrap()?;
            self.ready.extend(self.p.push(&chunk).unwrap());
        }
    }

    /// The next event that is not `manifest`.
    async fn next_news(&mut self, within: Duration) -> Option<SseEvent> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let e = self.next(left).await?;
            if e.event != "manifest" {
                return Some(e);
            }
        }
    }
}

async fn refusal(r: reqwest::Response) -> (u16, serde_json::Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_refuses_strangers_and_other_stations_and_caps_each_station() {
    let s = site().await;
    // No signature: 401, said in Vietnamese too.
    let (code, body) = refusal(s.open(None, "phuong-a", None).await).await;
    assert_eq!(code, 401, "{body}");
    assert!(
        body["error_vi"].as_str().unwrap().starts_with("Từ chối"),
        "{body}"
    );
    // Station b signing for a's stream: 403, refused.not_this_station.
    let (code, body) = refusal(s.open(Some(&s.b), "phuong-a", None).await).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["code"], "refused.not_this_station", "{body}");
    // A signature by another key under a's name: 403.
    let forger = TestStation::new("phuong-a", 9);
    let (code, body) = refusal(s.open(Some(&forger), "phuong-a", None).await).await;
    assert_eq!(code, 403, "{body}");

    // Two streams of a are admitted; the third is 429 with Retry-After, in Vietnamese.
    let one = Stream::new(s.open(Some(&s.a), "phuong-a", None).await);
    let two = Stream::new(s.open(Some(&s.a), "phuong-a", None).await);
    let r = s.open(Some(&s.a), "phuong-a", None).await;
    assert!(r.headers().contains_key("retry-after"));
    let (code, body) = refusal(r).await;
    assert_eq!(code, 429, "{body}");
    let vi = body["error_vi"].as_str().unwrap();
    assert!(vi.contains("phuong-a") && vi.contains("tối đa 2"), "{vi}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("2 push connections")
    );
    // Another station is not held back by a's streams.
    let _b = Stream::new(s.open(Some(&s.b), "phuong-b", None).await);
    // A stream closed by the station gives its place back.
    drop(one);
    let t0 = Instant::now();
    loop {
        let r = s.open(Some(&s.a), "phuong-a", None).await;
        if r.status() == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "a closed stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(two);
    drop(s.srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_reaches_the_stream_and_a_reconnect_gets_only_what_it_missed_still_valid() {
    let s = site().await;
    let mut a = Stream::new(s.open(Some(&s.a), "phuong-a", None).await);
    let mut b = Stream::new(s.open(Some(&s.b), "phuong-b", None).await);

    // A send to area 79 reaches a's stream within the bound, checked under the pinned key.
    let t0 = Instant::now();
    let first = s.send("area:79", "Cảnh báo bão số 5").await;
    let e = a
        .next_news(DELIVERY_BOUND)
        .await
        .expect("the bulletin never came");
    assert!(t0.elapsed() < DELIVERY_BOUND, "{:?}", t0.elapsed());
    assert_eq!(s.checked(&e, &s.a, "79101"), first);
    assert!(e.has_id, "{e:?}");
    let seen = e.id.clone().unwrap();
    // Station b (area 51) is not told.
    assert!(b.next_news(Duration::from_millis(500)).await.is_none());
    // The collector's own account on /metrics: two streams open, the event sent live by one
    // of them (a's), within the delivery bound.
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(gauge("loa_push_streams"), 2.0);
    assert_eq!(gauge("loa_push_last_event").to_string(), seen);
    assert_eq!(gauge("loa_push_last_event_streams"), 1.0);
    let fanout = gauge("loa_push_last_event_fanout_seconds");
    assert!(
        fanout > 0.0 && fanout < DELIVERY_BOUND.as_secs_f64(),
        "{fanout}"
    );

    // a goes away. Meanwhile: a new bulletin for area 79, one for area 51, one for 79 that is
    // cancelled before a comes back.
    drop(a);
    let missed = s.send("area:79", "Thông báo lũ").await;
    let elsewhere = s.send("area:51", "Thông báo khác").await;
    assert_eq!(
        s.checked(&b.next_news(DELIVERY_BOUND).await.unwrap(), &s.b, "51001"),
        elsewhere
    );
    let gone = s.send("stations:phuong-a,phuong-c", "Sẽ hủy").await;
    s.cancel(&gone).await;

    // a comes back with its last id: the missed bulletin and the cancel, in order; not the
    // first (it had it), not the cancelled bulletin itself, not area 51's.
    let mut a = Stream::new(s.open(Some(&s.a), "phuong-a", Some(&seen)).await);
    let e = a
        .next_news(DELIVERY_BOUND)
        .await
        .expect("the missed bulletin");
    assert_eq!(s.checked(&e, &s.a, "79101"), missed);
    let e = a.next_news(DELIVERY_BOUND).await.expect("the cancel");
    assert_eq!(s.cancelled(&e), gone);
    let last = e.id.clone().unwrap();
    assert!(
        a.next_news(Duration::from_millis(500)).await.is_none(),
        "nothing else is owed"
    );

    // Live: a cancel of the missed bulletin reaches the stream.
    s.cancel(&missed).await;
    let e = a.next_news(DELIVERY_BOUND).await.expect("the live cancel");
    assert_eq!(s.cancelled(&e), missed);
    drop(a);

    // Station c (area 79102) connecting for the first time gets what is still valid for it:
    // the first bulletin, and the cancels of the two cancelled ones, in their order.
    let mut c = Stream::new(s.open(Some(&s.c), "phuong-c", None).await);
    let mut got = Vec::new();
    while let Some(e) = c.next_news(Duration::from_millis(800)).await {
        got.push(e);
    }
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(s.checked(&got[0], &s.c, "79102"), first);
    assert_eq!(s.cancelled(&got[1]), gone);
    assert_eq!(s.cancelled(&got[2]), missed);
    drop(c);
    // An id above any the collector holds (a restored database) reads as none.
    let mut c = Stream::new(s.open(Some(&s.c), "phuong-c", Some("999999")).await);
    assert_eq!(
        s.checked(&c.next_news(DELIVERY_BOUND).await.unwrap(), &s.c, "79102"),
        first
    );
    drop(c);
    // And a resume after a's last id owes c only what followed it.
    let mut c = Stream::new(s.open(Some(&s.c), "phuong-c", Some(&last)).await);
    let e = c.next_news(Duration::from_millis(800)).await;
    assert_eq!(e.map(|e| s.cancelled(&e)), Some(missed.clone()));
    drop(s.srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_station_client_wakes_the_intake_on_a_send_and_the_agent_on_a_version() {
    use loa::station::push::{PushClient, PushConfig};
    let s = site().await;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let answers = std::sync::Arc::new(tokio::sync::watch::Sender::new(
        loa::shipper::HeartbeatAnswer::default(),
    ));
    let mut seen = answers.subscribe();
    let mut cfg = PushConfig::new(&s.a.id, &s.base, s.a.key.clone(), wake.clone());
    cfg.answers = Some(answers.clone());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(PushClient::new(cfg).unwrap().run(stop_rx));
    // Connected once the collector counts its stream: with one probe held, a second is refused.
    let probe = Stream::new(s.open(Some(&s.a), "phuong-a", None).await);
    let t0 = Instant::now();
    loop {
        let r = s.open(Some(&s.a), "phuong-a", None).await;
        let admitted = r.status() == 200;
        drop(r);
        if !admitted {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the client never connected"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(probe);

    let t0 = Instant::now();
    s.send("stations:phuong-a", "Thông báo").await;
    tokio::time::timeout(DELIVERY_BOUND, wake.notified())
        .await
        .expect("the intake was not woken");
    assert!(t0.elapsed() < DELIVERY_BOUND);
    // A send to another area wakes nothing.
    s.send("area:51", "Khác").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(800), wake.notified())
            .await
            .is_err()
    );

    // A schedule version published for the station reaches the agent's answers.
    let text = "id = \"phuong-a\"\nname = \"Phường A\"\nkind = \"ward\"\narea_code = \"79101\"\n";
    let r = s
        .http
        .put(format!(
            "{}/api/v1/stations/phuong-a/schedule?note=th%E1%BB%AD",
            s.base
        ))
        .bearer_auth(&s.token)
        .header("content-type", "application/toml")
        .body(text)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(status.is_success(), "{}", r.text().await.unwrap());
    tokio::time::timeout(
        DELIVERY_BOUND,
        seen.wait_for(|a| a.manifest_version == Some(1)),
    )
    .await
    .expect("the version never reached the answers")
    .unwrap();

    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the client did not stop")
        .unwrap();
    drop(s.srv);
}
