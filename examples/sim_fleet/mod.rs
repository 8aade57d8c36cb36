//! The fleet simulator's core (issue #16 item 4; docs/sim.md): N stations with real keys and
//! real signatures, each airing its plan on a compressed clock, heartbeating, shipping signed
//! hash-chained batches, holding one push stream and answering a bulletin with a receipt,
//! against the real collector binary (started, killed and restarted here) or collectors already
//! running; the verdict on loss comes from the database.
//!
//! **Invariant:** the simulator speaks to the collector only through the requests a real
//! station makes (the crate's own wire types, signing helpers, SSE parser and `bulletin::check`),
//! and says "lost 0, duplicated 0" only after reading every record back from the database.
//!
//! Shared by `examples/sim_fleet.rs` (the command) and `tests/sim_fleet.rs` (`#[path]`).

pub mod check;
pub mod collector;
pub mod cpu;
pub mod plan;
pub mod station;
pub mod stats;

use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, NaiveTime, Utc};
use ed25519_dalek::VerifyingKey;
use station::Station;
use stats::{Kind, Stats, Summary, ms, percentile};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// The collector's cap of connections per source address (`DEFAULT_MAX_CONNECTIONS_PER_ADDR`).
const PER_ADDR_CAP: usize = loa::collector::http::DEFAULT_MAX_CONNECTIONS_PER_ADDR;
/// Idle request connections kept per source address group: with 10,600 stations in 424 groups
/// the streams, the requests in flight and the idle ones must fit both processes' open-files
/// limit (20,000 here).
const IDLE_PER_GROUP: usize = 8;
/// Push streams connecting at once (as bench_fanout).
const CONNECTING_AT_ONCE: usize = 256;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Config {
    pub stations: usize,
    /// Real minutes of load.
    pub minutes: f64,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// The simulated local time (UTC+07:00) the run starts at, on the day before the run.
    pub start_at: NaiveTime,
    /// Items per session and an item's length.
    pub items: u32,
    pub item_secs: u32,
    /// Heartbeat period (real time: a network period, not compressed).
    pub heartbeat_secs: f64,
    /// Every request's timeout (the push stream's connect included; its reads: 45 s).
    pub timeout_secs: f64,
    /// Stations per loopback source address (the collector allows 64 connections per address).
    pub per_addr: usize,
    /// Real minute at which an admin sends one emergency bulletin to all.
    pub bulletin_at: Option<f64>,
    /// Real minute at which the collector is killed (SIGKILL), and how long it stays down.
    pub kill_at: Option<f64>,
    pub down_secs: f64,
    /// How long, after the load, stations may take to have everything acknowledged.
    pub drain_secs: f64,
    /// Collectors already running (round-robin); empty: start `replicas` of them.
    pub collectors: Vec<String>,
    /// How many collector replicas the simulator starts, all on the one database `db`.
    pub replicas: usize,
    /// The collectors' database (`--db`): a PostgreSQL URL, or a SQLite file; default
    /// `<home>/collector.db`.
    pub db: Option<String>,
    /// `$LOA_HOME` of the collector (a temp dir when `None` and the simulator starts it).
    pub home: Option<PathBuf>,
    /// The `loa` binary to start.
    pub loa: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stations: 1000,
            minutes: 5.0,
            speed: 60.0,
            start_at: NaiveTime::from_hms_opt(5, 0, 0).unwrap_or_default(),
            items: 2,
            item_secs: 900,
            heartbeat_secs: loa::shipper::DEFAULT_HEARTBEAT_SECS as f64,
            timeout_secs: loa::shipper::DEFAULT_REQUEST_TIMEOUT_SECS as f64,
            per_addr: 25,
            bulletin_at: None,
            kill_at: None,
            down_secs: 3.0,
            drain_secs: 180.0,
            collectors: Vec::new(),
            replicas: 1,
            db: None,
            home: None,
            loa: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/loa"),
        }
    }
}

/// What every station task shares.
pub struct Ctx {
    /// The real instant the load started and the simulated instant it stands for.
    pub t0: Instant,
    pub s0: DateTime<FixedOffset>,
    pub speed: f64,
    pub sim_end: DateTime<FixedOffset>,
    pub spec: plan::PlanSpec,
    pub stats: Stats,
    pub pinned: Vec<VerifyingKey>,
    pub heartbeat: Duration,
    pub timeout: Duration,
    pub stop_all: watch::Receiver<bool>,
    pub refusals_said: AtomicUsize,
    /// The fleet's size, the stations that verified the bulletin so far, and the parties' CPU
    /// time read by the station that verified last (the end of the bulletin's CPU window).
    pub stations: usize,
    pub verified: AtomicUsize,
    pub cpu: Option<Arc<cpu::Meter>>,
    pub cpu_all_verified: Mutex<Option<cpu::Sample>>,
}

impl Ctx {
    /// The simulated instant at real instant `now`.
    pub fn sim_now(&self, now: Instant) -> DateTime<FixedOffset> {
        let real = now.saturating_duration_since(self.t0).as_secs_f64();
        self.s0 + ChronoDuration::milliseconds((real * self.speed * 1000.0) as i64)
    }

    /// The real instant of simulated instant `t`.
    pub fn real_at(&self, t: DateTime<FixedOffset>) -> Instant {
        let sim_ms = (t - self.s0).num_milliseconds().max(0) as f64;
        self.t0 + Duration::from_secs_f64(sim_ms / 1000.0 / self.speed)
    }

    /// One more station verified the bulletin; the last one reads the parties' CPU time.
    pub fn verified_one(&self) {
        if self.verified.fetch_add(1, Ordering::Relaxed) + 1 == self.stations
            && let Some(m) = &self.cpu
            && let Ok(mut at) = self.cpu_all_verified.lock()
        {
            *at = Some(m.sample());
        }
    }
}

/// The bulletin's figures.
#[derive(Debug, Clone, Default)]
pub struct BulletinReport {
    pub id: String,
    pub received: usize,
    pub verified: usize,
    pub receipted: usize,
    /// (p50, p99, max) of: send → the event's bytes read by the station (before its check),
    /// send → verified by `bulletin::check`, and send → receipt acknowledged.
    pub to_received: (Duration, Duration, Duration),
    pub to_verified: (Duration, Duration, Duration),
    pub to_receipt: (Duration, Duration, Duration),
    /// A station's own check (`Envelope::decode` + `bulletin::check`, wall time, the one that
    /// accepted it): (p50, p99, max), and summed over the stations.
    pub check: (Duration, Duration, Duration),
    pub check_total: Duration,
    /// Delivered receipts the database holds.
    pub stored: Option<u64>,
}

/// The run's outcome.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub summaries: Vec<(Kind, Summary)>,
    pub verdict: Option<check::Verdict>,
    pub bulletin: Option<BulletinReport>,
    /// CPU time per party (`None`: no `/proc`).
    pub cpu: Option<cpu::CpuReport>,
    /// Records not acknowledged when the drain ended.
    pub unacked: u64,
    /// How long the restarted collector took to listen (read by tests/sim_fleet.rs).
    #[allow(dead_code)]
    pub restart: Option<Duration>,
}

impl Report {
    /// No loss, no duplicate, and the database was read.
    pub fn clean(&self) -> bool {
        self.verdict.as_ref().is_some_and(check::Verdict::clean)
    }
}

/// The loopback source address of group `g`.
fn source(g: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1, (g / 250) as u8, (g % 250 + 1) as u8))
}

fn is_loopback(url: &str) -> bool {
    let host = url
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
}

fn clients(
    local: Option<IpAddr>,
    pool: usize,
    timeout: Duration,
) -> Result<(reqwest::Client, reqwest::Client), String> {
    let build = |idle: usize, keepalive: bool| {
        let mut b = reqwest::Client::builder()
            .tls_certs_only(Vec::new())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(idle)
            .user_agent("loa-sim-fleet");
        if keepalive {
            b = b.tcp_keepalive(Duration::from_secs(30));
        }
        if let Some(a) = local {
            b = b.local_address(a);
        }
        b.build()
    };
    match (build(pool, false), build(0, true)) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), _) | (_, Err(e)) => Err(format!("cannot build an HTTP client: {e}")),
    }
}

/// Run the simulation and print its figures as it goes.
pub async fn run(cfg: Config) -> Result<Report, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let limits = loa::collector::http::raise_open_files_limit();
    println!(
        "fixture: {} stations, {} min at speed {} ({} simulated), {} items of {} s per session, \
         heartbeat {} s, {} stations per source address; open files {limits:?}; load avg {}",
        cfg.stations,
        cfg.minutes,
        cfg.speed,
        fmt_hours(cfg.minutes * cfg.speed / 60.0),
        cfg.items,
        cfg.item_secs,
        cfg.heartbeat_secs,
        cfg.per_addr,
        collector::loadavg()
    );
    let _temp;
    let home = match &cfg.home {
        Some(h) => h.clone(),
        None => {
            let t = tempfile::tempdir().map_err(|e| e.to_string())?;
            let p = t.path().to_path_buf();
            _temp = t;
            p
        }
    };
    let mut procs: Vec<collector::Collector> = Vec::new();
    let token;
    let db: PathBuf = match &cfg.db {
        Some(d) => PathBuf::from(d),
        None => home.join("collector.db"),
    };
    let db_shown = loa::collector::db::Location::of_path(&db).display();
    let is_pg =
        loa::collector::db::Location::of_path(&db).engine() == loa::collector::db::Engine::Postgres;
    let urls: Vec<String> = if cfg.collectors.is_empty() {
        if !cfg.loa.is_file() {
            return Err(format!(
                "{} missing: cargo build --release --bin loa",
                cfg.loa.display()
            ));
        }
        token = Some(collector::prepare(&home, cfg.stations, &db)?);
        for r in 0..cfg.replicas.max(1) {
            let t = std::time::Instant::now();
            let c = collector::Collector::start(&cfg.loa, &home, &db, "127.0.0.1:0")?;
            println!(
                "collector {} {} up in {:.1} s (pid {}, LOA_HOME {}, database {db_shown})",
                replica_name(r),
                c.url(),
                t.elapsed().as_secs_f64(),
                c.pid(),
                home.display()
            );
            procs.push(c);
        }
        procs.iter().map(collector::Collector::url).collect()
    } else {
        token = std::fs::read_to_string(home.join(collector::TOKEN_FILE))
            .ok()
            .map(|t| t.trim().to_string());
        cfg.collectors
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect()
    };
    let timeout = Duration::from_secs_f64(cfg.timeout_secs.max(0.1));
    let admin = reqwest::Client::builder()
        .tls_certs_only(Vec::new())
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let centre: serde_json::Value = admin
        .get(format!("{}/api/v1/centre", urls[0]))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let pinned = centre["key"]
        .as_str()
        .and_then(|k| loa::wire::decode_public_key(k).ok())
        .ok_or("the collector has no centre key")?;
    let audio = match (&cfg.bulletin_at, &token) {
        (Some(_), Some(token)) => Some(upload_tone(&admin, &urls[0], token).await?),
        (Some(_), None) => {
            return Err(format!(
                "--bulletin-at needs an admin token in {}",
                home.join(collector::TOKEN_FILE).display()
            ));
        }
        _ => None,
    };

    // The simulated day: the day before the run, so no record is from the future.
    let tz = FixedOffset::east_opt(plan::OFFSET_SECS).ok_or("offset")?;
    let day = Utc::now().with_timezone(&tz).date_naive() - ChronoDuration::days(1);
    let s0 = day
        .and_time(cfg.start_at)
        .and_local_timezone(tz)
        .single()
        .ok_or("start time")?;
    let sim_secs = cfg.minutes * 60.0 * cfg.speed;
    let (stop_tx, stop_rx) = watch::channel(false);
    let pids: Vec<u32> = procs.iter().map(collector::Collector::pid).collect();
    let meter = cpu::Meter::new(&pids, is_pg).map(Arc::new);
    let mut ctx = Ctx {
        t0: Instant::now(),
        s0,
        speed: cfg.speed.max(0.001),
        sim_end: s0 + ChronoDuration::milliseconds((sim_secs * 1000.0) as i64),
        spec: plan::PlanSpec::new(cfg.items, cfg.item_secs),
        stats: Stats::default(),
        pinned: vec![pinned],
        heartbeat: Duration::from_secs_f64(cfg.heartbeat_secs.max(0.1)),
        timeout,
        stop_all: stop_rx,
        refusals_said: AtomicUsize::new(0),
        stations: cfg.stations,
        verified: AtomicUsize::new(0),
        cpu: meter.clone(),
        cpu_all_verified: Mutex::new(None),
    };

    // Source address groups: each its request client, stream client and in-flight cap.
    let per_addr = cfg.per_addr.clamp(1, PER_ADDR_CAP - 8);
    let bind = urls.iter().all(|u| is_loopback(u));
    let gate_size = PER_ADDR_CAP - per_addr - 4;
    let groups: Vec<(reqwest::Client, reqwest::Client, Arc<Semaphore>)> =
        (0..cfg.stations.div_ceil(per_addr))
            .map(|g| {
                let (a, b) = clients(bind.then(|| source(g)), IDLE_PER_GROUP, timeout)?;
                Ok((a, b, Arc::new(Semaphore::new(gate_size))))
            })
            .collect::<Result<_, String>>()?;
    let stations: Vec<Arc<Station>> = (0..cfg.stations)
        .map(|i| {
            let (a, b, gate) = &groups[i / per_addr];
            // Its own collector first (round-robin), then the others in turn: where it fails
            // over to when its own is lost.
            let own = i % urls.len();
            let order = (0..urls.len()).map(|k| urls[(own + k) % urls.len()].clone());
            let endpoints =
                loa::endpoints::Endpoints::new(order).map_err(|e| format!("collectors: {e}"))?;
            Ok(Arc::new(Station::new(
                i,
                endpoints,
                a.clone(),
                b.clone(),
                gate.clone(),
                &ctx,
            )))
        })
        .collect::<Result<_, String>>()?;
    let planned: usize = stations
        .iter()
        .map(|s| s.journal.lock().map(|j| j.planned()).unwrap_or(0))
        .sum();
    println!(
        "plan: {planned} airings end within the run (simulated {} → {}, UTC+07:00)",
        ctx.s0.format("%d/%m/%Y %H:%M"),
        ctx.sim_end.format("%d/%m/%Y %H:%M")
    );

    let cpu_start = meter.as_ref().map(|m| m.sample());
    ctx.t0 = Instant::now();
    let ctx = Arc::new(ctx);
    let connect_gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for s in &stations {
        tasks.spawn(s.clone().air_and_ship(ctx.clone()));
        tasks.spawn(s.clone().heartbeat(ctx.clone()));
        tasks.spawn(s.clone().push(ctx.clone(), connect_gate.clone()));
    }

    // The load: watch the clock for the kill and the bulletin, say how it goes.
    let end = ctx.t0 + Duration::from_secs_f64(cfg.minutes * 60.0);
    let at = |min: Option<f64>| min.map(|m| ctx.t0 + Duration::from_secs_f64(m * 60.0));
    let (mut kill_at, mut bulletin_at) = (at(cfg.kill_at), at(cfg.bulletin_at));
    let mut restart = None;
    let mut sent: Option<(Instant, String)> = None;
    let mut cpu_at_send = None;
    let mut next_say = Instant::now() + Duration::from_secs(30);
    // The replicas' CPU time is read each second, so a replica that dies keeps its last value.
    let mut next_cpu = Instant::now() + Duration::from_secs(1);
    let mut read_cpu = |now: Instant| {
        if now >= next_cpu {
            next_cpu = now + Duration::from_secs(1);
            if let Some(m) = &meter {
                m.sample();
            }
        }
    };
    let say = |what: &str| {
        let (j, a) = totals(&stations);
        println!(
            "[{:>6.1} s, simulated {}] {what}: journaled {j}, acknowledged {a}; load avg {}",
            ctx.t0.elapsed().as_secs_f64(),
            ctx.sim_now(Instant::now()).format("%H:%M"),
            collector::loadavg()
        );
    };
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = Instant::now();
        read_cpu(now);
        if kill_at.is_some_and(|t| now >= t) {
            kill_at = None;
            if let Some(c) = procs.first_mut() {
                say(&format!(
                    "SIGKILL to collector {} ({} of {} replicas)",
                    c.url(),
                    replica_name(0),
                    urls.len()
                ));
                if let Some(m) = &meter {
                    m.sample();
                }
                tokio::task::block_in_place(|| c.kill());
                if let Some(m) = &meter {
                    m.killed(0);
                }
                tokio::time::sleep(Duration::from_secs_f64(cfg.down_secs)).await;
                let took = tokio::task::block_in_place(|| c.restart())?;
                if let Some(m) = &meter {
                    m.started(0, c.pid());
                }
                restart = Some(took);
                say(&format!(
                    "collector A restarted on {} (listening {:.1} s after the start; down {:.1} s)",
                    c.listen,
                    took.as_secs_f64(),
                    cfg.down_secs + took.as_secs_f64()
                ));
            } else {
                println!("--kill-at ignored: the simulator did not start the collector");
            }
        }
        if bulletin_at.is_some_and(|t| now >= t) {
            bulletin_at = None;
            if let (Some(sha), Some(token)) = (&audio, &token) {
                say("an emergency bulletin to all");
                let at_send = meter.as_ref().map(|m| m.sample());
                let t = Instant::now();
                match send_bulletin(&admin, &urls[0], token, sha).await {
                    Ok(id) => {
                        cpu_at_send = at_send;
                        println!(
                            "  bulletin {id}: the send's POST answered in {}",
                            ms(t.elapsed())
                        );
                        sent = Some((t, id));
                    }
                    Err(e) => println!("  bulletin not sent: {e}"),
                }
            }
        }
        if now >= next_say {
            next_say = now + Duration::from_secs(30);
            say("load");
        }
    }
    say("load ended, draining");

    // Drain: every record acknowledged, every receipt in (or the drain time is up).
    let drain_end = Instant::now() + Duration::from_secs_f64(cfg.drain_secs);
    loop {
        let (j, a) = totals(&stations);
        let receipts_done = sent.is_none()
            || stations.iter().all(|s| {
                s.bulletin
                    .lock()
                    .map(|b| b.receipted.is_some())
                    .unwrap_or(false)
            });
        if (j == a && receipts_done) || Instant::now() >= drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        read_cpu(Instant::now());
    }
    let cpu_end = meter.as_ref().map(|m| m.sample());
    let (journaled, acked) = totals(&stations);
    say("drained");
    let _ = stop_tx.send(true);
    let stopping = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if stopping.is_err() {
        tasks.abort_all();
    }

    let mut report = Report {
        unacked: journaled - acked,
        restart,
        cpu: match (&cpu_start, &cpu_end) {
            (Some(a), Some(b)) => Some(cpu::CpuReport {
                run: cpu::Window::between(a, b),
                bulletin: cpu_at_send.as_ref().map(|s| {
                    match ctx.cpu_all_verified.lock().ok().and_then(|v| v.clone()) {
                        Some(v) => (cpu::Window::between(s, &v), true),
                        None => (cpu::Window::between(s, b), false),
                    }
                }),
            }),
            _ => None,
        },
        ..Report::default()
    };
    println!();
    println!("request kind      count   errors   p50        p99        max");
    for k in Kind::ALL {
        let s = ctx.stats.summary(k);
        println!(
            "{:<16} {:>7} {:>7}   {:<10} {:<10} {:<10}{}",
            k.name(),
            s.count,
            s.errors,
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            if s.error_reasons.is_empty() {
                String::new()
            } else {
                format!("  errors: {:?}", s.error_reasons)
            }
        );
        for (why, text) in &s.examples {
            println!(
                "    first {why}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        report.summaries.push((k, s));
    }
    if let Some((t_send, id)) = &sent {
        let mut received = Vec::new();
        let mut verified = Vec::new();
        let mut receipted = Vec::new();
        let mut checks = Vec::new();
        for s in &stations {
            if let Ok(b) = s.bulletin.lock() {
                received.extend(b.received.map(|v| v.saturating_duration_since(*t_send)));
                verified.extend(b.verified.map(|v| v.saturating_duration_since(*t_send)));
                receipted.extend(b.receipted.map(|v| v.saturating_duration_since(*t_send)));
                checks.extend(b.check);
            }
        }
        received.sort();
        verified.sort();
        receipted.sort();
        checks.sort();
        let q = |v: &[Duration]| {
            (
                percentile(v, 0.5),
                percentile(v, 0.99),
                v.last().copied().unwrap_or_default(),
            )
        };
        let b = BulletinReport {
            id: id.clone(),
            received: received.len(),
            verified: verified.len(),
            receipted: receipted.len(),
            to_received: q(&received),
            to_verified: q(&verified),
            to_receipt: q(&receipted),
            check: q(&checks),
            check_total: checks.iter().sum(),
            stored: None,
        };
        println!(
            "bulletin: send → received (event bytes read by the station, before its check) at {} of {} stations: first {}, p50 {}, p99 {}, max {}",
            b.received,
            cfg.stations,
            ms(received.first().copied().unwrap_or_default()),
            ms(b.to_received.0),
            ms(b.to_received.1),
            ms(b.to_received.2)
        );
        let fine = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
        println!(
            "bulletin: a station's own check (Envelope::decode + bulletin::check, wall time): p50 {}, p99 {}, max {}; {:.3} s summed over {} stations",
            fine(b.check.0),
            fine(b.check.1),
            fine(b.check.2),
            b.check_total.as_secs_f64(),
            checks.len()
        );
        println!(
            "bulletin: send → verified by bulletin::check at {} of {} stations: p50 {}, p99 {}, max {}",
            b.verified,
            cfg.stations,
            ms(b.to_verified.0),
            ms(b.to_verified.1),
            ms(b.to_verified.2)
        );
        println!(
            "bulletin: send → receipt acknowledged at {} of {} stations: p50 {}, p99 {}, max {}",
            b.receipted,
            cfg.stations,
            ms(b.to_receipt.0),
            ms(b.to_receipt.1),
            ms(b.to_receipt.2)
        );
        report.bulletin = Some(b);
    }
    for (r, c) in procs.iter().enumerate() {
        let (rss, hwm) = collector::rss_mb(c.pid());
        println!(
            "collector {}: VmRSS {rss:.1} MB, VmHWM {hwm:.1} MB (since its last start); {} WARN/ERROR lines logged",
            replica_name(r),
            c.warnings.load(Ordering::Relaxed)
        );
        if report.bulletin.is_some()
            && let Some(token) = &token
        {
            println!(
                "collector {}: {}",
                replica_name(r),
                fanout_metrics(&admin, &c.listen, token).await
            );
        }
    }
    match &report.cpu {
        Some(c) => c.print(replica_name),
        None => println!("CPU: not available (no /proc)"),
    }

    // The verdict, from the database.
    if is_pg || db.is_file() {
        let produced: BTreeMap<String, Vec<String>> = stations
            .iter()
            .map(|s| {
                let hashes = s
                    .journal
                    .lock()
                    .map(|j| j.records.iter().map(|r| r.hash.clone()).collect())
                    .unwrap_or_default();
                (s.id.clone(), hashes)
            })
            .collect();
        let v = check::check(&db, &produced)?;
        if let Some(b) = report.bulletin.as_mut() {
            b.stored = check::receipts(&db, &b.id).ok();
            println!(
                "bulletin: {} delivered receipts in the database",
                b.stored.unwrap_or(0)
            );
        }
        println!(
            "database {db_shown}: produced {}, stored {}; lost {}, duplicated {}{}",
            v.produced,
            v.stored,
            v.lost.len(),
            v.duplicated.len(),
            if report.unacked > 0 {
                format!(
                    " ({} not acknowledged when the drain ended)",
                    report.unacked
                )
            } else {
                String::new()
            }
        );
        for l in v.lost.iter().take(50) {
            println!("  lost {l}");
        }
        for d in v.duplicated.iter().take(50) {
            println!("  duplicated {d}");
        }
        for m in v.count_mismatch.iter().take(50) {
            println!("  count {m}");
        }
        report.verdict = Some(v);
    } else {
        println!(
            "database not checked: no {} (give --home, the collectors' LOA_HOME)",
            db.display()
        );
    }
    for c in procs.iter_mut() {
        tokio::task::block_in_place(|| c.stop());
    }
    Ok(report)
}

/// A replica's name in the output: A, B, C…
fn replica_name(r: usize) -> String {
    char::from(b'A' + (r % 26) as u8).to_string()
}

fn totals(stations: &[Arc<Station>]) -> (u64, u64) {
    stations.iter().fold((0, 0), |(j, a), s| {
        let (sj, sa) = s.progress();
        (j + sj, a + sa)
    })
}

fn fmt_hours(h: f64) -> String {
    format!(
        "{}h{:02}",
        h.floor() as u64,
        ((h.fract()) * 60.0).round() as u64
    )
}

/// Put the test tone in the content library; its SHA-256.
/// The collector's own account of the bulletin's fan-out, from its `/metrics`
/// (`loa_push_last_event*`): how many of its live streams sent the event, and how long after
/// its hub got it the last one did (since its last start).
async fn fanout_metrics(admin: &reqwest::Client, listen: &str, token: &str) -> String {
    let text = match admin
        .get(format!("http://{listen}/metrics"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => match r.text().await {
            Ok(t) => t,
            Err(e) => return format!("/metrics unreadable: {e}"),
        },
        Ok(r) => return format!("/metrics answered {}", r.status()),
        Err(e) => return format!("/metrics unreachable: {e}"),
    };
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    let secs: Option<f64> = value("loa_push_last_event_fanout_seconds").parse().ok();
    format!(
        "its hub got event {} and {} of its live streams sent it, the last {} after (/metrics); {} streams open",
        value("loa_push_last_event"),
        value("loa_push_last_event_streams"),
        secs.map_or("?".into(), |s| format!("{:.1} ms", s * 1000.0)),
        value("loa_push_streams"),
    )
}

async fn upload_tone(admin: &reqwest::Client, url: &str, token: &str) -> Result<String, String> {
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    let sha = loa::media::sha256_file(&tone).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&tone).map_err(|e| e.to_string())?;
    let r = admin
        .post(format!(
            "{url}/api/v1/content?title=B%E1%BA%A3n%20tin&category=notice"
        ))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    if !status.is_success() && status.as_u16() != 409 {
        return Err(format!(
            "uploading the bulletin's audio: {status}: {}",
            r.text().await.unwrap_or_default()
        ));
    }
    Ok(sha)
}

/// Send an emergency bulletin to all; its id.
async fn send_bulletin(
    admin: &reqwest::Client,
    url: &str,
    token: &str,
    sha: &str,
) -> Result<String, String> {
    let now = Utc::now();
    let r = admin
        .post(format!("{url}/api/v1/bulletins"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "title": "Cảnh báo bão số 5: người dân không ra khơi",
            "audio": sha,
            "priority": "emergency",
            "to": "all",
            "not_before": now.to_rfc3339(),
            "not_after": (now + ChronoDuration::hours(1)).to_rfc3339(),
        }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    if status != 201 {
        return Err(format!("{status}: {body}"));
    }
    body["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no id in {body}"))
}
