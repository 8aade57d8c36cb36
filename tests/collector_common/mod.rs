//! Shared helpers of the collector tests: stations that sign real records, a collector served on
//! 127.0.0.1:0 over a real SQLite file (or, under `LOA_TEST_DB=postgres`, a fresh PostgreSQL database: `loa::collector::db::testing::test_db`), and a fixed plan source.
#![allow(dead_code)]

#[path = "../tools/mod.rs"]
pub mod tools;
pub mod webdriver;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use loa::clock::{Clock, ManualClock};
use loa::collector::http::{AppState, HttpConfig, serve};
use loa::collector::registry::{RawRegistry, RawStation, Registry, StationEntry};
use loa::report::{Period, PlanSource};
use loa::schedule::{PlannedAiring, Priority, StartPolicy};
use loa::wire::{
    AiringBrief, AiringRecord, GENESIS_HASH, HEARTBEAT_VERSION, Heartbeat, Outcome, RECORD_VERSION,
    RecordBatch, SignedRecord, Source, encode_public_key,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

/// 2019-03-`day` `h`:30 local.
pub fn at(day: u32, h: u32) -> DateTime<FixedOffset> {
    tz().with_ymd_and_hms(2019, 3, day, h, 30, 0).unwrap()
}

/// A station that signs records like the station daemon does.
pub struct TestStation {
    pub id: String,
    pub key: SigningKey,
    pub seq: u64,
    pub prev: String,
}

impl TestStation {
    pub fn new(id: &str, n: u8) -> Self {
        Self {
            id: id.into(),
            key: SigningKey::from_bytes(&[n; 32]),
            seq: 0,
            prev: GENESIS_HASH.into(),
        }
    }

    pub fn public_key(&self) -> String {
        encode_public_key(&self.key.verifying_key())
    }

    pub fn raw(&self) -> RawStation {
        RawStation {
            id: self.id.clone(),
            name: format!("Phường {}", self.id),
            area_code: format!("2{:04}", self.key.to_bytes()[0]),
            public_key: self.public_key(),
            schedule: None,
            audio_root: None,
        }
    }

    pub fn planned(&self, slot: &str, when: DateTime<FixedOffset>) -> PlannedAiring {
        PlannedAiring {
            station: self.id.as_str().into(),
            slot: slot.into(),
            program: Some("cchc".into()),
            category: "cchc".into(),
            at: when,
            items: vec![].into(),
            planned_secs: 600.0,
            priority: Priority::Normal,
            start: StartPolicy::Hard,
            grace_secs: 0,
            max_secs: 900,
            relay: None,
        }
    }

    /// The next record in this station's chain (wire version 2, the reason coded as stations
    /// code it).
    pub fn record(
        &mut self,
        plan: Option<&PlannedAiring>,
        when: DateTime<FixedOffset>,
        outcome: Outcome,
        aired_secs: f64,
        offset_ms: i64,
    ) -> SignedRecord {
        let rec = self.unsigned(plan, when, outcome, aired_secs, offset_ms);
        self.sign_next(&rec)
    }

    /// The next record as a station of wire version 1 wrote it: free text, no code.
    pub fn record_v1(
        &mut self,
        plan: Option<&PlannedAiring>,
        when: DateTime<FixedOffset>,
        outcome: Outcome,
        aired_secs: f64,
        offset_ms: i64,
    ) -> SignedRecord {
        let mut rec = self.unsigned(plan, when, outcome, aired_secs, offset_ms);
        rec.v = loa::wire::RECORD_VERSION_V1;
        rec.reason_code = None;
        self.sign_next(&rec)
    }

    /// Sign `rec` (the next in this station's chain, e.g. from [`TestStation::unsigned`]) and
    /// advance the chain.
    pub fn sign_next(&mut self, rec: &AiringRecord) -> SignedRecord {
        let signed = rec.sign(&self.key).unwrap();
        self.seq = rec.seq;
        self.prev = signed.hash.clone();
        signed
    }

    /// The next record in this station's chain, unsigned (the chain does not advance), for a
    /// test to alter before [`TestStation::sign_next`].
    pub fn unsigned(
        &self,
        plan: Option<&PlannedAiring>,
        when: DateTime<FixedOffset>,
        outcome: Outcome,
        aired_secs: f64,
        offset_ms: i64,
    ) -> AiringRecord {
        AiringRecord {
            v: RECORD_VERSION,
            station: self.id.clone(),
            seq: self.seq + 1,
            occurrence: plan.map(|p| p.key()),
            slot: plan.map(|p| p.slot.to_string()),
            program: plan.and_then(|p| p.program.as_deref().map(str::to_owned)),
            category: if plan.is_some() {
                "cchc".into()
            } else {
                "notice".into()
            },
            source: Source::File,
            scheduled_at: when,
            actual_start: Some(when + Duration::milliseconds(offset_ms)),
            end: Some(when + Duration::seconds(aired_secs as i64)),
            planned_secs: 600.0,
            aired_secs,
            start_offset_ms: Some(offset_ms),
            outcome,
            reason: station_reason(outcome),
            reason_code: loa::wire::classify(outcome, station_reason(outcome).as_deref()),
            items: vec![],
            evidence: None,
            relay: None,
            recorded_at: when.with_timezone(&Utc) + Duration::seconds(700),
            prev_hash: self.prev.clone(),
            schedule_version: None,
            bulletin: None,
        }
    }

    pub fn heartbeat(&self, sent_at: DateTime<Utc>, backlog: u64) -> loa::wire::SignedHeartbeat {
        self.heartbeat_with_journal(sent_at, backlog, None)
    }

    /// [`TestStation::heartbeat`] reporting the journal's state (`None`: an older station's).
    pub fn heartbeat_with_journal(
        &self,
        sent_at: DateTime<Utc>,
        backlog: u64,
        journal: Option<loa::wire::JournalHealth>,
    ) -> loa::wire::SignedHeartbeat {
        Heartbeat {
            v: HEARTBEAT_VERSION,
            station: self.id.clone(),
            sent_at,
            now_airing: Some(AiringBrief {
                slot: Some("morning".into()),
                program: Some("Chuyên mục CCHC".into()),
                at: at(31, 5),
            }),
            next_airing: Some(AiringBrief {
                slot: Some("evening".into()),
                program: Some("Tin địa phương".into()),
                at: at(31, 17),
            }),
            backlog_records: backlog,
            last_seq: self.seq,
            output: "device".into(),
            output_ok: true,
            clock_synced: Some(true),
            version: "test".into(),
            uptime_secs: 100,
            journal,
            sync: None,
        }
        .sign(&self.key)
        .unwrap()
    }
}

/// The free text a station of this project writes for `outcome` (English detail; the
/// collector shows the code's Vietnamese text).
pub fn station_reason(outcome: Outcome) -> Option<String> {
    Some(match outcome {
        Outcome::Aired => return None,
        Outcome::Missed => {
            "station was down (last alive 2019-03-02T21:00:00Z, restarted 2019-03-02T23:00:00Z)"
        }
        Outcome::Failed => {
            "item 1 skipped: cchc/2019-03.mp3: cannot read: No such file or directory (os error 2)"
        }
        Outcome::Partial => "station shut down",
        Outcome::Preempted => "preempted by urgent@2019-03-03T00:00:00Z",
        Outcome::Skipped => "hard start overlaps x of equal priority",
    }
    .to_string())
}

pub fn batch(records: &[SignedRecord]) -> RecordBatch {
    RecordBatch {
        records: records.to_vec(),
    }
}

/// Plans given by the test, per station.
#[derive(Default, Clone)]
pub struct FixedPlans(pub BTreeMap<String, Vec<PlannedAiring>>);

impl PlanSource for FixedPlans {
    fn plan(&self, station: &StationEntry, period: &Period) -> Result<Vec<PlannedAiring>, String> {
        Ok(self
            .0
            .get(&station.id)
            .map(|v| {
                v.iter()
                    .filter(|p| period.contains(&p.at))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A collector serving on 127.0.0.1:0.
pub struct Running {
    pub base: String,
    pub clock: Arc<ManualClock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

pub fn write_registry(dir: &Path, stations: &[&TestStation]) -> PathBuf {
    let path = dir.join("collector.toml");
    let raw = RawRegistry {
        station: stations.iter().map(|s| s.raw()).collect(),
    };
    std::fs::write(&path, toml::to_string(&raw).unwrap()).unwrap();
    path
}

/// The instant tests run at: the last day of March 2019, noon local.
pub fn test_now() -> DateTime<Utc> {
    at(31, 12).with_timezone(&Utc)
}

/// The usual collector test set-up: a temp dir holding the registry of the given stations and
/// the database path, and a manual clock at [`test_now`]; [`CollectorSite::start`] serves it.
pub struct CollectorSite {
    pub dir: tempfile::TempDir,
    /// `collector.toml` in `dir`.
    pub registry: PathBuf,
    /// `collector.db` in `dir` (created by the first start).
    pub db: PathBuf,
    pub clock: Arc<ManualClock>,
}

impl CollectorSite {
    pub fn new(stations: &[&TestStation]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = write_registry(dir.path(), stations);
        let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
        Self {
            dir,
            registry,
            db,
            clock: Arc::new(ManualClock::new(test_now())),
        }
    }

    /// Serve this site's registry and database on 127.0.0.1:0 (again after a stop: a restart).
    pub async fn start(&self, plans: FixedPlans, config: HttpConfig) -> Running {
        start(&self.registry, &self.db, plans, config, self.clock.clone()).await
    }
}

pub async fn start(
    registry: &Path,
    db: &Path,
    plans: FixedPlans,
    config: HttpConfig,
    clock: Arc<ManualClock>,
) -> Running {
    start_with(registry, db, Arc::new(plans), config, clock).await
}

/// [`start`] with any plan source (the collector's own `PlanCache`, as `loa collector` serves).
pub async fn start_with(
    registry: &Path,
    db: &Path,
    plans: Arc<dyn loa::report::PlanSource + Send + Sync>,
    config: HttpConfig,
    clock: Arc<ManualClock>,
) -> Running {
    let reg = Registry::load(registry).unwrap();
    provision_test_admin(db);
    let state = AppState::new(reg, db, clock.clone() as Arc<dyn Clock>, plans, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    Running {
        base: format!("http://{addr}"),
        clock,
        stop: Some(tx),
        task: Some(task),
    }
}

/// The personal API token of the fixtures' admin (`test-admin`), which [`start`] puts in every
/// database it serves; [`client`] sends it.
pub const TEST_TOKEN: &str = "loa_the-collector-fixtures-admin-token-0123456";

/// Put the fixtures' admin and its token [`TEST_TOKEN`] in `db` (a user whose password matches
/// nothing: it signs in by token only), as `loa user add` + `loa user token` would.
pub fn provision_test_admin(db: &Path) {
    let conn = loa::collector::store::Store::open(db)
        .unwrap()
        .into_connection();
    conn.execute(
        "INSERT INTO users (name, role, password_hash, disabled, created_unix)
         VALUES ('test-admin', 'admin', '!', 0, 0) ON CONFLICT DO NOTHING",
        loa::collector::db::params![],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO api_tokens (token_sha256, user_id, label, created_unix)
         SELECT ?1, id, 'fixtures', 0 FROM users WHERE name = 'test-admin' ON CONFLICT DO NOTHING",
        loa::collector::db::params![loa::collector::accounts::secret_sha256(TEST_TOKEN)],
    )
    .unwrap();
}

/// A client signed in as the fixtures' admin (bearer [`TEST_TOKEN`] on every request that sets
/// no `Authorization` of its own).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {TEST_TOKEN}")).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

/// A client that is nobody (no token, no cookie).
pub fn anon_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// POST JSON bytes, return (status, parsed body).
pub async fn post(c: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = c
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, v)
}

pub async fn get_json(c: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Build a collector for March 2019 with two stations and a plan of four airings each, and
/// records: station a: on time, late 90 s, missed (reason), [no record], + one unplanned;
/// station b: on time, short, failed, on time. Returns the stations and the plans.
pub fn march_fixture() -> (
    TestStation,
    TestStation,
    FixedPlans,
    Vec<SignedRecord>,
    Vec<SignedRecord>,
) {
    march_fixture_of(TestStation::record)
}

/// [`march_fixture`] with records as stations of wire version 1 wrote them (free text only).
pub fn march_fixture_v1() -> (
    TestStation,
    TestStation,
    FixedPlans,
    Vec<SignedRecord>,
    Vec<SignedRecord>,
) {
    march_fixture_of(TestStation::record_v1)
}

type RecordFn = fn(
    &mut TestStation,
    Option<&PlannedAiring>,
    DateTime<FixedOffset>,
    Outcome,
    f64,
    i64,
) -> SignedRecord;

fn march_fixture_of(
    record: RecordFn,
) -> (
    TestStation,
    TestStation,
    FixedPlans,
    Vec<SignedRecord>,
    Vec<SignedRecord>,
) {
    let mut a = TestStation::new("phuong-a", 11);
    let mut b = TestStation::new("phuong-b", 22);
    let pa: Vec<PlannedAiring> = [(1, 5), (1, 17), (2, 5), (2, 17)]
        .iter()
        .map(|&(d, h)| a.planned(if h == 5 { "morning" } else { "evening" }, at(d, h)))
        .collect();
    let pb: Vec<PlannedAiring> = [(1, 5), (1, 17), (2, 5), (2, 17)]
        .iter()
        .map(|&(d, h)| b.planned(if h == 5 { "morning" } else { "evening" }, at(d, h)))
        .collect();
    let ra = vec![
        record(&mut a, Some(&pa[0]), pa[0].at, Outcome::Aired, 600.0, 200),
        record(
            &mut a,
            Some(&pa[1]),
            pa[1].at,
            Outcome::Aired,
            600.0,
            90_000,
        ),
        record(&mut a, Some(&pa[2]), pa[2].at, Outcome::Missed, 0.0, 0),
        record(&mut a, None, at(3, 9), Outcome::Aired, 120.0, 0),
    ];
    let rb = vec![
        record(&mut b, Some(&pb[0]), pb[0].at, Outcome::Aired, 600.0, 0),
        record(&mut b, Some(&pb[1]), pb[1].at, Outcome::Partial, 300.0, 0),
        record(&mut b, Some(&pb[2]), pb[2].at, Outcome::Failed, 0.0, 0),
        record(&mut b, Some(&pb[3]), pb[3].at, Outcome::Aired, 600.0, 1_000),
    ];
    let mut plans = FixedPlans::default();
    plans.0.insert(a.id.clone(), pa);
    plans.0.insert(b.id.clone(), pb);
    (a, b, plans, ra, rb)
}

/// The real `loa collector` binary on 127.0.0.1 with its state in `$LOA_HOME`; killed on drop.
pub struct RealCollector {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for RealCollector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the real binary with `LOA_HOME=home` and wait for its "listening on" line.
pub fn real_collector(home: &std::path::Path) -> RealCollector {
    real_collector_with(home, &[], &[])
}

/// [`real_collector`] with more arguments and environment variables (e.g. a `PATH` without
/// some program).
pub fn real_collector_with(
    home: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &std::ffi::OsStr)],
) -> RealCollector {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["collector", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .env("LOA_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines.next().expect("the collector exited").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    RealCollector { child, base }
}

/// The cookie `name` an answer sets, as a `Cookie:` header sends it back (`name=value`).
pub fn cookie_pair(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// The value of a page's hidden `csrf` field.
pub fn hidden_csrf(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        .to_string()
}

/// A form body, as a browser encodes it.
pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}
