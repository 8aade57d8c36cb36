//! Benchmark: expand one year of the sample schedules for 10,000 stations (prints figures; no
//! assertions).
//!
//! Run from the repository root:
//! `cargo run --release --example bench_plan [STATIONS] [THREADS]`
//!
//! Loads and validates `schedules/` (audio under `audio/`), clones the samples into STATIONS
//! stations (default 10,000, cycling over the samples, distinct ids), then expands
//! 2027-01-01..=2027-12-31 for every station with `schedule::expand` — the same call the daemon,
//! `loa plan` and the report make — on THREADS threads (default 2: the target machines have 2
//! cores; the stations are split between the threads, each expansion runs on one thread). The
//! timed part builds every `PlannedAiring` and drops it. Also times the same work on 1 thread, so
//! the single-thread path stays visible. Target: under 2 s wall time on 2 cores.

use chrono::NaiveDate;
use loa::schedule::{self, AudioCatalog, Station, expand};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// The target for 10,000 stations × 1 year, in seconds of wall time.
const TARGET_SECS: f64 = 2.0;
/// Default number of stations (issue #2).
const DEFAULT_STATIONS: usize = 10_000;
/// Default threads: the target machines have 2 cores.
const DEFAULT_THREADS: usize = 2;

/// CPU time this process has used so far, in seconds (all threads; user + system).
fn process_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// What one run measured.
struct Run {
    airings: usize,
    items: usize,
    wall_secs: f64,
    cpu_secs: f64,
}

/// Expand every station on `threads` threads.
fn run(
    stations: &[(Station, &AudioCatalog)],
    from: NaiveDate,
    to: NaiveDate,
    threads: usize,
) -> Run {
    let cpu0 = process_cpu_secs();
    let t = Instant::now();
    let chunk = stations.len().div_ceil(threads).max(1);
    let totals: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = stations
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut airings = 0usize;
                    let mut items = 0usize;
                    for (st, cat) in part {
                        let a = expand(st, cat, from, to);
                        airings += a.len();
                        items += a.iter().map(|a| a.items.len()).sum::<usize>();
                    }
                    (airings, items)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    Run {
        wall_secs: t.elapsed().as_secs_f64(),
        cpu_secs: process_cpu_secs() - cpu0,
        airings: totals.iter().map(|t| t.0).sum(),
        items: totals.iter().map(|t| t.1).sum(),
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_STATIONS);
    let threads: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_THREADS)
        .max(1);
    let (Some(today), Some(from), Some(to)) = (
        NaiveDate::from_ymd_opt(2026, 11, 27),
        NaiveDate::from_ymd_opt(2027, 1, 1),
        NaiveDate::from_ymd_opt(2027, 12, 31),
    ) else {
        return ExitCode::FAILURE;
    };
    let t_load = Instant::now();
    let mut samples = Vec::new();
    for (path, r) in schedule::load_dir(Path::new("schedules"), Path::new("audio"), today) {
        match r {
            Ok(x) => samples.push(x),
            Err(e) => {
                eprintln!(
                    "{}: {} error(s); run `loa check`",
                    path.display(),
                    e.0.len()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    if samples.is_empty() {
        eprintln!("no schedules in schedules/ (run from the repository root)");
        return ExitCode::FAILURE;
    }
    let load_secs = t_load.elapsed().as_secs_f64();
    let stations: Vec<(Station, &AudioCatalog)> = (0..n)
        .map(|i| {
            let (st, cat) = &samples[i % samples.len()];
            let mut st = st.clone();
            st.id = format!("{}-{i:05}", st.id);
            (st, cat)
        })
        .collect();

    // Warm-up (page faults, allocator arenas) on a slice, not counted.
    let _ = run(&stations[..n.min(500)], from, to, threads);
    let one = run(&stations, from, to, 1);
    let par = run(&stations, from, to, threads);
    if one.airings != par.airings {
        eprintln!(
            "bench_plan: 1 thread gave {} airings, {threads} gave {}",
            one.airings, par.airings
        );
        return ExitCode::FAILURE;
    }
    let rate = |secs: f64| par.airings as f64 / secs;
    let verdict = if par.wall_secs < TARGET_SECS {
        "PASS"
    } else {
        "MISS"
    };
    println!(
        "bench_plan: {} sample schedules loaded+validated in {load_secs:.2} s; expanding {from}..={to}",
        samples.len()
    );
    println!("  stations:   {n}");
    println!("  airings:    {} ({} items)", par.airings, par.items);
    println!(
        "  1 thread:   {:.3} s wall, {:.3} s CPU ({:.0} airings/s wall)",
        one.wall_secs,
        one.cpu_secs,
        rate(one.wall_secs)
    );
    println!(
        "  {threads} threads:  {:.3} s wall, {:.3} s CPU ({:.0} airings/s wall)",
        par.wall_secs,
        par.cpu_secs,
        rate(par.wall_secs)
    );
    println!(
        "  target < {TARGET_SECS} s wall on 2 cores with {threads} threads: {verdict} ({:.3} s)",
        par.wall_secs
    );
    println!(
        "  (wall > CPU/threads means the machine was busy: load {})",
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    );
    ExitCode::SUCCESS
}
