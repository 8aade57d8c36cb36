//! Benchmark: expand one year of the sample schedules for 10,000 stations.
//!
//! `cargo run --release --example bench_plan [STATIONS] [THREADS]` — loads `schedules/` (audio under
//! `audio/`), clones the samples into STATIONS stations (default 10,000, cycling over the samples,
//! distinct ids), expands 2027-01-01..=2027-12-31 for each on THREADS threads (default 2) and
//! prints the total number of airings and the wall time. Target: under 2 s on 2 cores.

use chrono::NaiveDate;
use loa::schedule::{self, expand};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2).max(1);
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
    let stations: Vec<_> = (0..n)
        .map(|i| {
            let (st, cat) = &samples[i % samples.len()];
            let mut st = st.clone();
            st.id = format!("{}-{i:05}", st.id);
            (st, cat)
        })
        .collect();

    let t = Instant::now();
    let chunk = n.div_ceil(threads).max(1);
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
    let airings: usize = totals.iter().map(|t| t.0).sum();
    let items: usize = totals.iter().map(|t| t.1).sum();
    println!(
        "bench_plan: {n} stations ({} samples, loaded+validated in {load_secs:.2} s), {from}..{to}, {threads} thread(s): {airings} airings ({items} items) in {secs:.3} s ({:.0} airings/s)",
        samples.len(),
        airings as f64 / secs
    );
    ExitCode::SUCCESS
}
