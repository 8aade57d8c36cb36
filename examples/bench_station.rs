//! Station benchmarks. `cargo run --release --example bench_station -- backlog [N [BATCH]]`: journal N
//! (default 10,000) signed records, then time the shipper draining them to a loopback collector:
//! the REAL collector (`collector::serve`, SQLite file in a temp dir, every signature and the
//! chain verified), and for comparison the minimal test collector of the shipper tests.
//! Prints figures; asserts nothing.
//!
//! `bench_station idle [SECS]`: runs the release `loa station` binary (next to this example:
//! `cargo build --release --bin loa --example bench_station` first) on the sample ward schedule
//! (`schedules/phuong-le-hong-phong.toml`, nothing due for hours, `--output null`, collector
//! unreachable) and prints its RSS (total, anonymous, file-backed) and CPU over SECS (default
//! 60) seconds, after a 15 s start-up.

#[path = "../tests/shipper_testcollector.rs"]
mod tc;

use chrono::{FixedOffset, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use loa::clock::SystemClock;
use loa::collector::http::{AppState, HttpConfig, serve};
use loa::collector::registry::{RawRegistry, RawStation, Registry};
use loa::journal::Journal;
use loa::report::SchedulePlans;
use loa::shipper::{Shipper, ShipperConfig};
use loa::wire::{AiredItem, AiringRecord, Outcome, Source};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const STATION: &str = "bench-ward";

fn record(n: u64) -> AiringRecord {
    let tz = FixedOffset::east_opt(7 * 3600).expect("valid offset");
    let at = tz
        .with_ymd_and_hms(2019, 3, 1, 5, 30, 0)
        .single()
        .expect("valid date")
        + chrono::Duration::minutes(n as i64);
    AiringRecord {
        v: 0,
        station: String::new(),
        seq: 0,
        occurrence: Some(format!("morning@{n}")),
        slot: Some("morning".into()),
        program: Some("cchc".into()),
        category: "cchc".into(),
        source: Source::File,
        scheduled_at: at,
        actual_start: Some(at),
        end: Some(at + chrono::Duration::seconds(900)),
        planned_secs: 900.0,
        aired_secs: 900.0,
        start_offset_ms: Some(4),
        outcome: Outcome::Aired,
        reason: None,
        reason_code: None,
        items: (0..3)
            .map(|i| AiredItem {
                path: format!("cchc/2019-03-part{i}.ogg"),
                sha256: loa::wire::sha256_hex(&[i as u8]),
                duration_secs: 300.0,
                aired_secs: 300.0,
            })
            .collect(),
        evidence: None,
        relay: None,
        recorded_at: Utc::now(),
        prev_hash: String::new(),
        schedule_version: None,
        bulletin: None,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("backlog") => {
            let n: u64 = args
                .get(1)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(10_000);
            let batch: Option<usize> = args.get(2).map(|s| s.parse()).transpose()?;
            backlog(n, batch)
        }
        Some("idle") => {
            let secs: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(60);
            idle(secs)
        }
        _ => {
            eprintln!("usage: bench_station backlog [N] | idle [SECS]");
            Ok(())
        }
    }
}

fn backlog(n: u64, batch: Option<usize>) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let key = SigningKey::from_bytes(&[42; 32]);
    let t0 = Instant::now();
    let (mut j, _) = Journal::open(tmp.path(), STATION, key.clone())?;
    for i in 0..n {
        j.append(record(i))?;
    }
    let journal_secs = t0.elapsed().as_secs_f64();
    let bytes: u64 = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "records journaled: {n} ({:.1} MiB on disk) in {journal_secs:.2} s (each fsynced)",
        bytes as f64 / 1048576.0
    );
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        // The real collector: registry with the bench station, SQLite file, system clock.
        let db_dir = tempfile::tempdir()?;
        let registry = Registry::from_raw(
            RawRegistry {
                station: vec![RawStation {
                    id: STATION.into(),
                    name: "Bench ward".into(),
                    area_code: "21100".into(),
                    public_key: loa::wire::encode_public_key(&key.verifying_key()),
                    schedule: None,
                    audio_root: None,
                }],
            },
            None,
        )?;
        let state = AppState::new(
            registry,
            &db_dir.path().join("collector.db"),
            Arc::new(SystemClock),
            Arc::new(SchedulePlans),
            HttpConfig::default(),
        )?;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", l.local_addr()?);
        tokio::spawn(serve(l, state, std::future::pending::<()>()));
        let (secs, batch) = drain(&url, tmp.path(), n, batch).await?;
        println!(
            "real collector:    {n} records drained in {secs:.3} s ({:.0} records/s, batches of {batch}); target <= 2 s",
            n as f64 / secs
        );
        // The same journal again, to the minimal test collector (no SQLite).
        let c = tc::TestCollector::new();
        c.register(STATION, key.verifying_key());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", l.local_addr()?);
        c.serve(l);
        loa::journal::AckLedger::new(tmp.path()).store(0)?;
        let (secs2, _) = drain(&url, tmp.path(), n, Some(batch)).await?;
        let stored = c.log_of(STATION).len();
        println!(
            "test collector:    {stored} records drained in {secs2:.3} s ({:.0} records/s)",
            stored as f64 / secs2
        );
        anyhow::Ok(())
    })?;
    Ok(())
}

/// Ship the journal in `dir` to `url` from the ledger's position until `n` is acknowledged.
async fn drain(
    url: &str,
    dir: &std::path::Path,
    n: u64,
    batch: Option<usize>,
) -> anyhow::Result<(f64, usize)> {
    let mut cfg = ShipperConfig::new(url, STATION, dir.to_path_buf());
    if let Some(b) = batch {
        cfg.max_batch_records = b;
    }
    let batch = cfg.max_batch_records;
    let (s, acked) = Shipper::new(cfg)?;
    let (_ls, ls_rx) = tokio::sync::watch::channel(n);
    let (sd, sd_rx) = tokio::sync::watch::channel(false);
    let t1 = Instant::now();
    let task = tokio::spawn(s.run(ls_rx, sd_rx));
    while acked.load(Ordering::Relaxed) < n {
        if task.is_finished() {
            anyhow::bail!("shipper stopped before draining");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = t1.elapsed().as_secs_f64();
    let _ = sd.send(true);
    let _ = task.await;
    Ok((secs, batch))
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 14th field overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    t(11) + t(12)
}

fn idle(secs: u64) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let loa = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("loa"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no loa binary next to {}: cargo build --release --bin loa first",
                exe.display()
            )
        })?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let id = "phuong-le-hong-phong";
    let data = tempfile::tempdir()?;
    let st = std::process::Command::new(&loa)
        .args(["keygen", "--station", id, "--dir"])
        .arg(data.path())
        .output()?;
    anyhow::ensure!(st.status.success(), "keygen failed");
    let mut child = std::process::Command::new(&loa)
        .current_dir(root)
        .args([
            "station",
            "--station",
            id,
            "--output",
            "null",
            "--collector",
            "http://127.0.0.1:9",
            "--data",
        ])
        .arg(data.path())
        .env("LOA_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(15));
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let (rss0, anon0, file0) = (
        status_kb(pid, "VmRSS:"),
        status_kb(pid, "RssAnon:"),
        status_kb(pid, "RssFile:"),
    );
    let t0 = cpu_ticks(pid);
    let mut max_rss = rss0;
    for _ in 0..secs {
        std::thread::sleep(Duration::from_secs(1));
        max_rss = max_rss.max(status_kb(pid, "VmRSS:"));
    }
    let ticks = cpu_ticks(pid) - t0;
    let (rss1, anon1, file1) = (
        status_kb(pid, "VmRSS:"),
        status_kb(pid, "RssAnon:"),
        status_kb(pid, "RssFile:"),
    );
    let threads = status_kb(pid, "Threads:");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "idle station ({id}, --output null, collector unreachable), {secs} s after a 15 s start-up:"
    );
    println!(
        "RSS at start {:.1} MB (anon {:.1}, file {:.1}); at end {:.1} MB (anon {:.1}, file {:.1}); max {:.1} MB; target <= 12 MB",
        mb(rss0),
        mb(anon0),
        mb(file0),
        mb(rss1),
        mb(anon1),
        mb(file1),
        mb(max_rss)
    );
    println!(
        "CPU: {ticks} ticks in {secs} s = {:.3} % of one core; target ~ 0; threads {threads}",
        ticks as f64 / ticks_per_sec / secs as f64 * 100.0
    );
    Ok(())
}
