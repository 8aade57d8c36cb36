//! Page benchmark on realistic material: STATIONS ward stations (default 1,000), each with its own
//! schedule file of two daily sessions (05:30 and 17:00) that air that month's 15-minute episode,
//! 13 monthly episodes (2026-11 … 2027-11, real length, generated once with `sox` and `lame` and shared by
//! path), and a month of records each (2026-11: 60 per station). The collector is served in this
//! process on 127.0.0.1 over a SQLite file, at a fixed clock (30/11/2026 23:00 local), and each
//! page is fetched SAMPLES times (default 30) by a loopback client; p50/p99 of the wall time
//! are printed beside the target and the load average (the machine is shared: say so beside any
//! figure), with p50/p99 of the CPU time the process spent meanwhile (what a request costs when
//! it does not wait for a core).
//!
//! Also timed: the collector's start-up on that fixture with a cold database (no audio facts
//! stored yet) and a warm one (a second start on the same file), and the background derivation
//! of every station's status that follows it (the pages are timed once it is done).
//!
//! Run: `cargo run --release --example bench_collector_pages -- [--stations N] [--samples N]
//! [--pages LIST]` (the old positional form `[STATIONS [SAMPLES [PAGES]]]` still works).
//! STATIONS defaults to 1,000, SAMPLES to 30; PAGES is a comma list of `index` (`/`), `area`
//! (filtered by area code, 100 stations kept at 10,000), `sorted` (lowest compliance first),
//! `last` (the overview's last page), `overview` (filtered, sorted and paged), `month` (a
//! station month), `month-oct`, `reports`, `metrics`, `stations`, `csv`, `xlsx`; default all.
//! The fixture is cached under `target/bench-fixture/pages-STATIONS/` (delete it to rebuild);
//! the database is copied to a temp dir for each run so a run never sees another run's stored
//! facts.

use chrono::{Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use loa::clock::{Clock, ManualClock};
use loa::collector::http::{AppState, HttpConfig};
use loa::collector::registry::{RawRegistry, RawStation, Registry};
use loa::wire::{
    AiringRecord, GENESIS_HASH, HEARTBEAT_VERSION, Heartbeat, Outcome, RECORD_VERSION, Source,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The 13 months of episodes: the report month and the 12 after it.
const FIRST_MONTH: (i32, u32) = (2026, 11);
const EPISODE_SECS: u32 = 900;

fn months() -> Vec<(i32, u32)> {
    (0..13)
        .map(|i| {
            let m0 = FIRST_MONTH.1 - 1 + i;
            (FIRST_MONTH.0 + (m0 / 12) as i32, m0 % 12 + 1)
        })
        .collect()
}

fn schedule_text(id: &str, s: usize) -> String {
    format!(
        r#"# Benchmark ward schedule: two daily sessions airing the month's 15-minute episode.
id = "{id}"
name = "Đài truyền thanh phường {s}"
kind = "ward"
area_code = "{area}"
quiet_hours = ["21:30-05:00"]
max_session_minutes = 30

[[programs]]
id = "cchc"
title = "Chuyên mục Cải cách hành chính"
category = "cchc"
episodes = "ep/{{yyyy}}-{{mm}}.mp3"

[[slots]]
id = "sang"
cron = "30 5 * * *"
from = 2026-11-01
until = 2027-11-30
play = ["program:cchc"]
max_minutes = 20

[[slots]]
id = "chieu"
cron = "0 17 * * *"
from = 2026-11-01
until = 2027-11-30
play = ["program:cchc"]
max_minutes = 20
"#,
        area = 20000 + s
    )
}

fn run(cmd: &mut std::process::Command) {
    let st = cmd
        .status()
        .expect("run sox and lame (apt-get install sox lame)");
    assert!(st.success(), "{cmd:?} failed");
}

/// Build (or reuse) the fixture: audio, schedules, registry and a database with the records.
fn fixture(stations: usize) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-fixture")
        .join(format!("pages-{stations}"));
    if dir.join("done").is_file() {
        return dir;
    }
    let t = Instant::now();
    let audio = dir.join("audio/ep");
    std::fs::create_dir_all(&audio).unwrap();
    std::fs::create_dir_all(dir.join("schedules")).unwrap();
    for (i, (y, m)) in months().into_iter().enumerate() {
        let f = audio.join(format!("{y}-{m:02}.mp3"));
        if f.is_file() {
            continue;
        }
        let wav = audio.join(format!("{y}-{m:02}.tmp.wav"));
        let tmp = audio.join(format!("{y}-{m:02}.tmp.mp3"));
        // Mono 44.1 kHz, a different tone per month (distinct content, distinct hash), encoded
        // by lame as the test fixtures are (`media::probe` refused 15-minute MP3s written by
        // sox's own MP3 writer as "not decodable" on 04/12/2026; not investigated).
        run(std::process::Command::new("sox").args([
            "-n",
            "-r",
            "44100",
            "-c",
            "1",
            wav.to_str().unwrap(),
            "synth",
            &EPISODE_SECS.to_string(),
            "sine",
            &(300 + 20 * i).to_string(),
            "vol",
            "0.3",
        ]));
        run(std::process::Command::new("lame").args([
            "--quiet",
            "-b",
            "64",
            wav.to_str().unwrap(),
            tmp.to_str().unwrap(),
        ]));
        let _ = std::fs::remove_file(&wav);
        std::fs::rename(&tmp, &f).unwrap();
    }
    println!(
        "fixture: audio ready after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // One station's plan for the month (every station's is the same but for the id): its
    // airings are what the records answer.
    let sched0 = dir.join("schedules/st00000.toml");
    std::fs::write(&sched0, schedule_text("st00000", 0)).unwrap();
    let (st, cat) = loa::schedule::load(
        &sched0,
        &dir.join("audio"),
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
    )
    .expect("bench schedule loads");
    let plan = loa::schedule::expand(
        &st,
        &cat,
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    );
    assert_eq!(plan.len(), 60, "two sessions a day for 30 days");
    let db = dir.join("collector.db");
    let _ = std::fs::remove_file(&db);
    drop(loa::collector::Store::open(&db).unwrap());
    let conn = loa::collector::db::Conn::open(&loa::collector::db::Location::of_path(&db)).unwrap();
    if let Some(c) = conn.sqlite() {
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "OFF").unwrap();
    }
    let k = SigningKey::from_bytes(&[9; 32]);
    let pk = loa::wire::encode_public_key(&k.verifying_key());
    let mut raw = RawRegistry::default();
    let now = now();
    for s in 0..stations {
        let id = format!("st{s:05}");
        let sched = dir.join(format!("schedules/{id}.toml"));
        std::fs::write(&sched, schedule_text(&id, s)).unwrap();
        raw.station.push(RawStation {
            id: id.clone(),
            name: format!("Phường {s}"),
            area_code: format!("{:05}", 20000 + s),
            public_key: pk.clone(),
            schedule: Some(sched),
            audio_root: Some(dir.join("audio")),
        });
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare_cached(loa::collector::store::INSERT_RECORD_SQL)
                .unwrap();
            let mut prev = GENESIS_HASH.to_string();
            for (i, p) in plan.iter().enumerate() {
                let outcome = match i % 20 {
                    7 => Outcome::Missed,
                    13 => Outcome::Partial,
                    _ => Outcome::Aired,
                };
                let occurrence = p.key();
                let r = AiringRecord {
                    v: RECORD_VERSION,
                    station: id.clone(),
                    seq: i as u64 + 1,
                    occurrence: Some(occurrence),
                    slot: Some(p.slot.to_string()),
                    program: p.program.as_deref().map(str::to_owned),
                    category: "cchc".into(),
                    source: Source::File,
                    scheduled_at: p.at,
                    actual_start: Some(p.at),
                    end: None,
                    planned_secs: p.planned_secs,
                    aired_secs: if outcome == Outcome::Aired {
                        p.planned_secs
                    } else {
                        0.0
                    },
                    start_offset_ms: Some((i as i64 % 5) * 300),
                    outcome,
                    reason: (outcome != Outcome::Aired).then(|| "mất điện".to_string()),
                    reason_code: loa::wire::unspecified(outcome),
                    items: vec![],
                    evidence: None,
                    relay: None,
                    recorded_at: p.at.with_timezone(&Utc) + Duration::seconds(960),
                    prev_hash: prev.clone(),
                    schedule_version: None,
                    bulletin: None,
                };
                // A fixed signature keeps setup short (no page verifies; ingest and `loa
                // verify` do).
                let bytes = serde_json::to_string(&r).unwrap();
                let hash = loa::wire::sha256_hex(bytes.as_bytes());
                loa::collector::store::insert_record(&mut ins, &id, &hash, "sig", &bytes, &r, 0)
                    .unwrap();
                prev = hash;
            }
        }
        tx.commit().unwrap();
    }
    drop(conn);
    // Heartbeats: every station online, a few seconds old.
    let mut store = loa::collector::Store::open(&db).unwrap();
    for s in 0..stations {
        let id = format!("st{s:05}");
        let hb = Heartbeat {
            v: HEARTBEAT_VERSION,
            station: id.clone(),
            sent_at: now - Duration::seconds(20),
            now_airing: None,
            next_airing: None,
            backlog_records: (s % 3) as u64,
            last_seq: 60,
            output: "alsa".into(),
            output_ok: true,
            clock_synced: Some(true),
            version: "bench".into(),
            uptime_secs: 86_400,
            journal: None,
            sync: None,
        };
        let bytes = serde_json::to_string(&hb).unwrap();
        store
            .store_heartbeat(&id, &bytes, "sig", now - Duration::seconds(20))
            .unwrap();
    }
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    std::fs::write(dir.join("collector.toml"), toml::to_string(&raw).unwrap()).unwrap();
    std::fs::write(dir.join("done"), "").unwrap();
    println!(
        "fixture: {stations} stations built in {:.1} s at {}",
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    dir
}

/// 30/11/2026 23:00 local: the whole month of records lies in the past.
fn now() -> chrono::DateTime<Utc> {
    FixedOffset::east_opt(7 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 11, 30, 23, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU time this process has used, in ms (every thread: the server's, the client's and the
/// collector's background threads). On a machine shared with other builds the wall time of a
/// request is mostly waiting for a core; this says what the request itself cost.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Start the collector on `db`: what `loa collector` does before it accepts a connection.
/// `LOA_BENCH_PLANS=schedule` serves with `report::SchedulePlans` (every request loads each
/// schedule and decodes its audio: the collector before the plan cache) instead of the
/// `PlanCache` `loa collector` uses.
fn start(registry: Registry, db: &Path, clock: Arc<dyn Clock>) -> AppState {
    let plans: Arc<dyn loa::report::PlanSource + Send + Sync> = if std::env::var("LOA_BENCH_PLANS")
        .is_ok_and(|v| v == "schedule")
    {
        Arc::new(loa::report::SchedulePlans)
    } else {
        Arc::new(
            loa::collector::PlanCache::open(db, loa::collector::plans::DEFAULT_PLAN_RECHECK_SECS)
                .unwrap(),
        )
    };
    AppState::new(registry, db, clock, plans, HttpConfig::default()).unwrap()
}

struct Args {
    stations: usize,
    samples: usize,
    pages: String,
}

/// `--stations N --samples N --pages LIST`, or the positional `STATIONS SAMPLES PAGES`.
fn args(it: impl Iterator<Item = String>) -> Args {
    let mut a = Args {
        stations: 1000,
        samples: 30,
        pages: String::new(),
    };
    let mut positional = 0;
    let mut it = it;
    while let Some(arg) = it.next() {
        let flag = match arg.as_str() {
            "--stations" | "--samples" | "--pages" => Some(arg.clone()),
            _ => None,
        };
        let (which, value) = match flag {
            Some(f) => (
                f,
                it.next().unwrap_or_else(|| panic!("{arg} needs a value")),
            ),
            None => {
                positional += 1;
                let which = match positional {
                    1 => "--stations",
                    2 => "--samples",
                    3 => "--pages",
                    _ => panic!("unexpected argument {arg}"),
                };
                (which.to_string(), arg)
            }
        };
        let number = || {
            value
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{which}: not a number: {value}"))
        };
        match which.as_str() {
            "--stations" => a.stations = number(),
            "--samples" => a.samples = number(),
            _ => a.pages = value.clone(),
        }
    }
    a
}

fn main() {
    let Args {
        stations,
        samples,
        pages: only,
    } = args(std::env::args().skip(1));
    let dir = fixture(stations);
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("collector.db");
    std::fs::copy(dir.join("collector.db"), &db).unwrap();
    let registry = Registry::load(&dir.join("collector.toml")).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    println!(
        "fixture: {stations} stations, 13 × {} s episodes, 60 records each; load avg {}",
        EPISODE_SECS,
        loadavg()
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    let state = start(registry.clone(), &db, clock.clone());
    let cold = t.elapsed().as_secs_f64();
    drop(state);
    let t = Instant::now();
    let state = start(registry, &db, clock.clone());
    let warm = t.elapsed().as_secs_f64();
    println!(
        "start-up: cold database {cold:.2} s, warm database {warm:.2} s (load avg {})",
        loadavg()
    );

    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let warming = state.clone();
    rt.spawn(loa::collector::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    // The statuses are derived in the background from start-up on (requests are served
    // meanwhile); the pages are timed once that is done, as a dashboard loaded after start-up.
    while !warming.status_warmed() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    println!(
        "status warm-up done {:.2} s after the warm start-up returned (load avg {})",
        t.elapsed().as_secs_f64() - warm,
        loadavg()
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The pages need a signed-in user: an auditor's personal token (as `loa user token` makes).
    let token = {
        let mut c = loa::collector::Store::open(&db).unwrap().into_connection();
        let pw = loa::collector::accounts::generate_password().unwrap();
        let u = loa::collector::accounts::add_user(
            &mut c,
            "bench",
            loa::collector::accounts::Role::Auditor,
            &[],
            &pw,
            now(),
        )
        .unwrap();
        loa::collector::accounts::create_token(&c, &u, "bench", now())
            .unwrap()
            .0
    };
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3600))
        .default_headers(auth)
        .build()
        .unwrap();
    let last_page = stations
        .div_ceil(loa::collector::overview::PAGE_ROWS)
        .max(1);
    let pages: [(&str, String, f64); 12] = [
        ("index", "/".into(), 50.0),
        // Area codes are 20000 + the station's number: `205` keeps 20500 … 20599.
        ("area", "/?area=205".into(), 50.0),
        ("sorted", "/?sort=compliance".into(), 50.0),
        ("last", format!("/?page={last_page}"), 50.0),
        // The overview filtered, sorted and paged (every station's status still walked).
        (
            "overview",
            "/?status=online&sort=compliance&page=3".into(),
            50.0,
        ),
        ("month", "/stations/st00000?month=2026-11".into(), 100.0),
        // A station in the middle of the registry, the month before (picker, heat-map, table).
        ("month-oct", "/stations/st00500?month=2026-10".into(), 100.0),
        ("reports", "/reports".into(), 50.0),
        ("metrics", "/metrics".into(), 20.0),
        ("stations", "/api/v1/stations".into(), 50.0),
        ("csv", "/api/v1/reports/2026-11.csv".into(), f64::NAN),
        ("xlsx", "/api/v1/reports/2026-11.xlsx".into(), f64::NAN),
    ];
    for (name, path, target_ms) in pages {
        if !only.is_empty() && !only.split(',').any(|x| x == name) {
            continue;
        }
        let url = format!("http://{addr}{path}");
        let mut times = Vec::with_capacity(samples);
        let mut cpu = Vec::with_capacity(samples);
        let mut bytes = 0;
        for _ in 0..samples {
            let (t, c) = (Instant::now(), cpu_ms());
            bytes = rt.block_on(async {
                let resp = client.get(&url).send().await.unwrap();
                assert!(resp.status().is_success(), "{path}: {}", resp.status());
                resp.bytes().await.unwrap().len()
            });
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            cpu.push(cpu_ms() - c);
        }
        times.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        let (p50, p99) = (pct(&times, 0.5), pct(&times, 0.99));
        let (cpu50, cpu99) = (pct(&cpu, 0.5), pct(&cpu, 0.99));
        let verdict = if target_ms.is_nan() {
            String::new()
        } else if p99 <= target_ms {
            format!("PASS (p99 ≤ {target_ms} ms)")
        } else {
            format!("MISS (p99 target ≤ {target_ms} ms)")
        };
        println!(
            "{name:9} {path:40} n={samples:3} p50 {p50:9.1} ms  p99 {p99:9.1} ms  (cpu p50 {cpu50:6.1} ms  p99 {cpu99:6.1} ms)  {bytes:8} B  {verdict}  load avg {}",
            loadavg()
        );
    }
    let _ = stop_tx.send(());
}
