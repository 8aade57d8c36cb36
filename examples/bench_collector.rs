//! Collector ingest benchmarks (figures printed with their target and PASS/MISS, nothing
//! asserted):
//! 1. signed records/s through `POST /api/v1/stations/{id}/records` on loopback, batches of 500
//!    from 20 stations at once, beside a raw SQLite batched insert of the same rows (prepared
//!    statement, one transaction per batch, no verification) in the same run; both with
//!    `synchronous=FULL` (the default) and `NORMAL`. Target ≥ 50,000 records/s.
//! 2. ingest latency (p50/p99/max) with 1,000 simulated stations — each its own HTTP client and
//!    connection from its own loopback address (127.0.0.2, 127.0.0.3, …), as real stations come
//!    from their own addresses — posting a heartbeat and a batch of 10 records, 3 rounds, all at
//!    once. The collector runs with its production limits, including the per-address connection
//!    cap (`DEFAULT_MAX_CONNECTIONS_PER_ADDR`, 64): from one address, 1,000 stations would be
//!    answered 429. Target (ours; the issue sets none): p99 ≤ 1,000 ms for both, every answer 200.
//!
//! Measured 05/12/2026 08:10–08:20 UTC on the 2-core dev box (loadavg 5.4–11 during the runs), two
//! runs each, release build: before the per-address sources (all 1,000 from 127.0.0.1) the run got
//! HTTP status counts `{0: 632, 200: 1219, 429: 5149}` (FULL) and `{0: 1069, 200: 1811, 429: 4120}`
//! (NORMAL) — its latencies were mostly of refusals. Now every answer is 200 (7,000 of 7,000):
//! FULL batch p50 1,194–1,539 ms, p99 1,708–1,949 ms (MISS, one fsync per batch), heartbeat p99
//! 176–351 ms; NORMAL batch p50 660–705 ms, p99 889–960 ms, heartbeat p99 190–285 ms.
//!
//! The databases live in a temp dir under `$TMPDIR` (default `/tmp`): put it on the disk the
//! collector will use, or the `FULL` figures mean nothing (tmpfs has no fsync cost).
//!
//! Run: `CARGO_TARGET_DIR=/work/target-release cargo run --release --example bench_collector
//! [-- STATIONS_FOR_LATENCY]` (default 1000). With `LOA_BENCH_PG_URL=postgres://…/postgres`, the
//! records/s of part 1 are also measured on a fresh PostgreSQL database through the same HTTP path.

mod common;
use chrono::Utc;
use common::chain;
use ed25519_dalek::SigningKey;
use loa::clock::SystemClock;
use loa::collector::http::{AppState, HttpConfig, serve};
use loa::collector::registry::{RawRegistry, RawStation, Registry};
use loa::collector::store::Synchronous;
use loa::report::{Period, PlanSource};
use loa::schedule::PlannedAiring;
use loa::wire::{
    AiringRecord, HEARTBEAT_VERSION, Heartbeat, RecordBatch, SignedRecord, encode_public_key,
};
use std::sync::Arc;
use std::time::Instant;

struct NoPlans;
impl PlanSource for NoPlans {
    fn plan(
        &self,
        _: &loa::collector::StationEntry,
        _: &Period,
    ) -> Result<Vec<PlannedAiring>, String> {
        Ok(Vec::new())
    }
}

fn key(i: usize) -> SigningKey {
    let mut b = [7u8; 32];
    b[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&b)
}

/// The loopback address station `i` connects from in the latency run: 127.0.0.2, 127.0.0.3, …
/// (127.0.0.1 is the collector's), 16.7 million of them before leaving 127.0.0.0/8.
fn station_addr(i: usize) -> std::net::IpAddr {
    let i = u32::try_from(i).expect("fewer than 2^24 stations");
    assert!(
        i < (1 << 24) - 3,
        "127.0.0.0/8 has room for 2^24 - 3 stations"
    );
    std::net::Ipv4Addr::from(0x7f00_0002 + i).into()
}

fn registry(dir: &std::path::Path, n: usize) -> Registry {
    let raw = RawRegistry {
        station: (0..n)
            .map(|i| RawStation {
                id: format!("st{i}"),
                name: format!("Trạm {i}"),
                area_code: format!("{:05}", 20000 + i),
                public_key: encode_public_key(&key(i).verifying_key()),
                schedule: None,
                audio_root: None,
            })
            .collect(),
    };
    let path = dir.join("collector.toml");
    std::fs::write(&path, toml::to_string(&raw).unwrap()).unwrap();
    Registry::load(&path).unwrap()
}

async fn start(reg: Registry, db: &std::path::Path, config: HttpConfig) -> String {
    let state = AppState::new(reg, db, Arc::new(SystemClock), Arc::new(NoPlans), config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state, std::future::pending()));
    format!("http://{addr}")
}

fn raw_insert(
    db: &std::path::Path,
    batches: &[(String, Vec<SignedRecord>)],
    synchronous: &str,
) -> f64 {
    // Same schema as the collector (opened through Store so migrations apply), rows inserted
    // with a prepared statement, one transaction per batch, no verification.
    drop(loa::collector::Store::open(db).unwrap());
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    // Parsing is not part of the insert: done before the clock starts.
    let parsed: Vec<Vec<AiringRecord>> = batches
        .iter()
        .map(|(_, recs)| recs.iter().map(|r| r.parse().unwrap()).collect())
        .collect();
    let t = Instant::now();
    let mut n = 0usize;
    for ((station, recs), parsed) in batches.iter().zip(&parsed) {
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO records (station, seq, hash, prev_hash, signature, bytes, occurrence,
                    category, source, outcome, scheduled_unix, aired_secs, received_unix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .unwrap();
            for (r, p) in recs.iter().zip(parsed) {
                ins.execute(rusqlite::params![
                    station,
                    p.seq as i64,
                    r.hash,
                    p.prev_hash,
                    r.signature,
                    r.bytes(),
                    p.occurrence,
                    p.category,
                    "file",
                    "aired",
                    p.scheduled_at.timestamp(),
                    p.aired_secs,
                    0i64
                ])
                .unwrap();
                n += 1;
            }
        }
        tx.commit().unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// Every station posts its batches in order; stations post concurrently. Records/s.
async fn post_all(base: &str, bodies: &[(usize, Vec<Vec<u8>>)], records: usize) -> f64 {
    let client = reqwest::Client::new();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, mine) in bodies {
        let (client, url, mine) = (
            client.clone(),
            format!("{base}/api/v1/stations/st{i}/records"),
            mine.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for b in mine {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(b)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status().as_u16(),
                    200,
                    "{}",
                    r.text().await.unwrap_or_default()
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    records as f64 / t.elapsed().as_secs_f64()
}

/// CPU seconds (user + system) used by this process so far, all threads.
fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

const TARGET_RECORDS_PER_SEC: f64 = 50_000.0;
const TARGET_P99_MS: f64 = 1_000.0;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let latency_stations: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    // Many sockets: lift the open-files limit as far as allowed.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("cores: {cores}; /proc/loadavg at start: {}", load.trim());

    // 1. Throughput.
    let stations = 20;
    let per_station = 5_000;
    let batch_size = 500;
    let total = stations * per_station;
    let t = Instant::now();
    let keys: Vec<SigningKey> = (0..stations).map(key).collect();
    let chains: Vec<Vec<SignedRecord>> = (0..stations)
        .map(|i| chain(&format!("st{i}"), &keys[i], per_station))
        .collect();
    println!(
        "prepared {total} signed records ({} bytes each) in {:.1} s",
        chains[0][0].bytes().len(),
        t.elapsed().as_secs_f64()
    );
    let mut batches: Vec<(String, Vec<SignedRecord>)> = Vec::new();
    let mut bodies: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    for (i, ch) in chains.iter().enumerate() {
        let mut mine = Vec::new();
        for part in ch.chunks(batch_size) {
            batches.push((format!("st{i}"), part.to_vec()));
            mine.push(
                serde_json::to_vec(&RecordBatch {
                    records: part.to_vec(),
                })
                .unwrap(),
            );
        }
        bodies.push((i, mine));
    }
    let vk = keys[0].verifying_key();
    let n_verify = 5_000.min(chains[0].len());
    let t = Instant::now();
    for r in &chains[0][..n_verify] {
        r.verify(&vk).unwrap();
    }
    println!(
        "context: one core, hash + parse + strict Ed25519 verify one by one: {:.0} records/s",
        n_verify as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut checked = 0;
    for part in chains[0][..n_verify].chunks(batch_size) {
        checked += loa::collector::ingest::check_batch(
            "st0",
            &vk,
            RecordBatch {
                records: part.to_vec(),
            },
        )
        .unwrap()
        .len();
    }
    println!(
        "context: check_batch (batch verification on {cores} cores), no HTTP/SQLite: {:.0} records/s",
        checked as f64 / t.elapsed().as_secs_f64()
    );
    for (sync, name, pragma) in [
        (Synchronous::Full, "FULL", "FULL"),
        (Synchronous::Normal, "NORMAL", "NORMAL"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let base = start(
            registry(dir.path(), stations),
            &dir.path().join("ingest.db"),
            HttpConfig {
                synchronous: sync,
                ..HttpConfig::default()
            },
        )
        .await;
        let cpu = process_cpu_secs();
        let http_rate = post_all(&base, &bodies, total).await;
        let cpu_us_per_record = (process_cpu_secs() - cpu) * 1e6 / total as f64;
        let raw_rate = raw_insert(&dir.path().join("raw.db"), &batches, pragma);
        println!(
            "ingest over HTTP, synchronous={name:<6} (hash + Ed25519 + chain, batches of {batch_size}, {stations} stations at once): {http_rate:>8.0} records/s  target >= {TARGET_RECORDS_PER_SEC:.0}  {}",
            verdict(http_rate >= TARGET_RECORDS_PER_SEC)
        );
        println!(
            "  CPU per record over HTTP (server + the in-process client, all threads): {cpu_us_per_record:.1} µs; on {cores} cores that caps at {:.0} records/s",
            cores as f64 * 1e6 / cpu_us_per_record
        );
        println!(
            "raw SQLite batched insert,   synchronous={name:<6} (same rows, one transaction per batch):                   {raw_rate:>8.0} records/s  ratio HTTP/raw {:.2}",
            http_rate / raw_rate
        );
    }

    // 1b. The same ingest on PostgreSQL (docs/operations.md, section 10), when a server is given:
    // `LOA_BENCH_PG_URL=postgres://USER:PASSWORD@HOST/postgres` (a role that may create
    // databases; each run gets a fresh one).
    if let Ok(admin) = std::env::var("LOA_BENCH_PG_URL") {
        let dir = tempfile::tempdir().unwrap();
        let url = loa::collector::db::testing::fresh_pg_database(&admin);
        let base = start(
            registry(dir.path(), stations),
            std::path::Path::new(&url),
            HttpConfig::default(),
        )
        .await;
        let cpu = process_cpu_secs();
        let pg_rate = post_all(&base, &bodies, total).await;
        let cpu_us_per_record = (process_cpu_secs() - cpu) * 1e6 / total as f64;
        println!(
            "ingest over HTTP, PostgreSQL {} (same batches; the server's synchronous_commit): {pg_rate:>8.0} records/s  target >= {TARGET_RECORDS_PER_SEC:.0}  {}; CPU per record in this process {cpu_us_per_record:.1} µs",
            loa::collector::db::Location::parse(&url).display(),
            verdict(pg_rate >= TARGET_RECORDS_PER_SEC)
        );
    }

    // 2. Latency with many stations, each its own client and connection.
    for (sync, name) in [(Synchronous::Full, "FULL"), (Synchronous::Normal, "NORMAL")] {
        let n = latency_stations;
        let dir2 = tempfile::tempdir().unwrap();
        let base = start(
            registry(dir2.path(), n),
            &dir2.path().join("latency.db"),
            HttpConfig {
                synchronous: sync,
                ..HttpConfig::default()
            },
        )
        .await;
        let rounds = 3;
        let per_batch = 10;
        // (station index, batch bodies, heartbeat bodies)
        type Work = (usize, Vec<Vec<u8>>, Vec<Vec<u8>>);
        let work: Vec<Work> = (0..n)
            .map(|i| {
                let k = key(i);
                let ch = chain(&format!("st{i}"), &k, rounds * per_batch);
                let batches = ch
                    .chunks(per_batch)
                    .map(|c| {
                        serde_json::to_vec(&RecordBatch {
                            records: c.to_vec(),
                        })
                        .unwrap()
                    })
                    .collect();
                let hbs = (0..rounds)
                    .map(|r| {
                        serde_json::to_vec(
                            &Heartbeat {
                                v: HEARTBEAT_VERSION,
                                station: format!("st{i}"),
                                sent_at: Utc::now(),
                                now_airing: None,
                                next_airing: None,
                                backlog_records: r as u64,
                                last_seq: (r * per_batch) as u64,
                                output: "null".into(),
                                output_ok: true,
                                clock_synced: Some(true),
                                version: "bench".into(),
                                uptime_secs: 1,
                                journal: None,
                                sync: None,
                            }
                            .sign(&k)
                            .unwrap(),
                        )
                        .unwrap()
                    })
                    .collect();
                (i, batches, hbs)
            })
            .collect();
        // Every station is its own client (its own connection) from its own address, like real
        // stations: the whole of 127.0.0.0/8 is loopback on Linux, so no setup is needed.
        let clients: Vec<reqwest::Client> = (0..n)
            .map(|i| {
                reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .local_address(station_addr(i))
                    .build()
                    .unwrap()
            })
            .collect();
        let start_gate = Arc::new(tokio::sync::Barrier::new(n + 1));
        let mut tasks = Vec::new();
        for ((i, batches, hbs), client) in work.into_iter().zip(clients) {
            let base = base.clone();
            let gate = start_gate.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat_records = Vec::new();
                let mut lat_hb = Vec::new();
                let mut statuses = Vec::new();
                // Open the connection first (stations keep theirs alive): the latencies below
                // are the collector's, not 1,000 TCP handshakes landing in the same millisecond.
                let s = Instant::now();
                let warm = client.get(format!("{base}/healthz")).send().await;
                let connect_ms = s.elapsed().as_secs_f64() * 1000.0;
                statuses.push(warm.map(|r| r.status().as_u16()).unwrap_or(0));
                gate.wait().await;
                for (b, h) in batches.into_iter().zip(hbs) {
                    let s = Instant::now();
                    let r = client
                        .post(format!("{base}/api/v1/stations/st{i}/heartbeat"))
                        .header("content-type", "application/json")
                        .body(h)
                        .send()
                        .await;
                    lat_hb.push(s.elapsed().as_secs_f64() * 1000.0);
                    statuses.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
                    let s = Instant::now();
                    let r = client
                        .post(format!("{base}/api/v1/stations/st{i}/records"))
                        .header("content-type", "application/json")
                        .body(b)
                        .send()
                        .await;
                    lat_records.push(s.elapsed().as_secs_f64() * 1000.0);
                    statuses.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
                }
                (lat_records, lat_hb, statuses, connect_ms)
            }));
        }
        start_gate.wait().await;
        let t = Instant::now();
        let (mut lr, mut lh, mut lc, mut codes) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            std::collections::BTreeMap::new(),
        );
        for t in tasks {
            let (a, b, s, c) = t.await.unwrap();
            lr.extend(a);
            lh.extend(b);
            lc.push(c);
            for c in s {
                *codes.entry(c).or_insert(0u64) += 1;
            }
        }
        let wall = t.elapsed().as_secs_f64();
        lr.sort_by(f64::total_cmp);
        lh.sort_by(f64::total_cmp);
        lc.sort_by(f64::total_cmp);
        let all_ok = codes.keys().all(|&c| c == 200);
        println!(
            "synchronous={name}: {n} stations at once (own client and address each, connected first, collector's per-address cap {}), {rounds} rounds of heartbeat + batch of {per_batch}: {:.1} s wall, HTTP status counts {codes:?}",
            loa::collector::http::DEFAULT_MAX_CONNECTIONS_PER_ADDR,
            wall
        );
        println!(
            "  (connection set-up, all {n} at once, before the clock: GET /healthz p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms)",
            pct(&lc, 0.5),
            pct(&lc, 0.99),
            pct(&lc, 1.0)
        );
        println!(
            "  batch latency ms:     p50 {:>7.1}  p99 {:>7.1}  max {:>7.1}  target p99 <= {TARGET_P99_MS:.0}  {}",
            pct(&lr, 0.5),
            pct(&lr, 0.99),
            pct(&lr, 1.0),
            verdict(all_ok && pct(&lr, 0.99) <= TARGET_P99_MS)
        );
        println!(
            "  heartbeat latency ms: p50 {:>7.1}  p99 {:>7.1}  max {:>7.1}  target p99 <= {TARGET_P99_MS:.0}  {}",
            pct(&lh, 0.5),
            pct(&lh, 0.99),
            pct(&lh, 1.0),
            verdict(all_ok && pct(&lh, 0.99) <= TARGET_P99_MS)
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("/proc/loadavg at end: {}", load.trim());
}
