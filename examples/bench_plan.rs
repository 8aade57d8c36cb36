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

/// Expand every station on `threads` threads; (airings, items) and the wall time in seconds.
fn run(
    stations: &[(Station, &AudioCatalog)],
    from: NaiveDate,
    to: NaiveDate,
    threads: usize,
) -> (usize, usize, f64) {
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
    let secs = t.elapsed().as_secs_f64();
    (
        totals.iter().map(|t| t.0).sum(),
        totals.iter().map(|t| t.1).sum(),
        secs,
    )
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
    let (airings1, _, secs1) = run(&stations, from, to, 1);
    let (airings, items, secs) = run(&stations, from, to, threads);
    if airings1 != airings {
        eprintln!("bench_plan: 1 thread gave {airings1} airings, {threads} gave {airings}");
        return ExitCode::FAILURE;
    }
    let verdict = if secs < TARGET_SECS { "PASS" } else { "MISS" };
    println!(
        "bench_plan: {} sample schedules loaded+validated in {load_secs:.2} s; expanding {from}..={to}",
        samples.len()
    );
    println!("  stations:    {n}");
    println!("  airings:     {airings} ({items} items)");
    println!(
        "  1 thread:    {secs1:.3} s ({:.0} airings/s)",
        airings as f64 / secs1
    );
    println!(
        "  {threads} thread(s): {secs:.3} s wall ({:.0} airings/s)",
        airings as f64 / secs
    );
    println!("  target < {TARGET_SECS} s on 2 cores ({threads} thread(s)): {verdict}");
    ExitCode::SUCCESS
}
