//! Benchmark of crontab parsing and expansion (prints figures; no assertions).
//!
//! Run: `cargo run --release --example bench_crontab [STATIONS]` (default 10,000 stations).
//! Each station has a typical ward expression set (~1,040 firings per year); the year 2019 is
//! expanded for every station in Asia/Ho_Chi_Minh and in Europe/Berlin (a DST zone), on one
//! thread and on two.

use std::time::Instant;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use loa::crontab::Crontab;

/// A ward station's lines: weekday morning and evening sessions, a Saturday session, the
/// monthly CCHC premiere and repeat, a 2nd-Monday notice, a month-end summary, Sunday relays.
const WARD_SET: [&str; 7] = [
    "30 5 * * MON-FRI",
    "0 17 * * MON-FRI",
    "0 7 * * SAT",
    "0 19 5,20 * *",
    "0 6 * * MON#2",
    "0 8 L * *",
    "*/15 6-7 * * SUN",
];

fn expand_all<Z: TimeZone + Sync>(
    stations: &[Vec<Crontab>],
    tz: &Z,
    from: NaiveDate,
    to: NaiveDate,
    threads: usize,
) -> usize {
    let chunk = stations.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = stations
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .flat_map(|lines| lines.iter())
                        .map(|tab| tab.fire_times(tz, from, to).len())
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

fn main() {
    let stations: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let (Some(from), Some(to)) = (
        NaiveDate::from_ymd_opt(2019, 1, 1),
        NaiveDate::from_ymd_opt(2019, 12, 31),
    ) else {
        return;
    };

    let started = Instant::now();
    let mut cold = 0usize;
    for _ in 0..(stations / 10).max(1) {
        for e in WARD_SET {
            cold += usize::from(Crontab::parse_uncached(e).is_ok());
        }
    }
    let cold_secs = started.elapsed().as_secs_f64();
    println!(
        "parse without memo: {cold} expressions in {cold_secs:.3} s ({:.2} µs each)",
        cold_secs * 1e6 / cold.max(1) as f64
    );

    let started = Instant::now();
    let parsed: Result<Vec<Vec<Crontab>>, _> = (0..stations)
        .map(|_| WARD_SET.iter().map(|e| Crontab::parse(e)).collect())
        .collect();
    let parse_secs = started.elapsed().as_secs_f64();
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench expression does not parse: {e}");
            return;
        }
    };
    let expressions = stations * WARD_SET.len();
    println!(
        "parse (memoized, as station copies do): {expressions} expressions in {parse_secs:.3} s ({:.2} µs each)",
        parse_secs * 1e6 / expressions as f64
    );

    let zones: [(&str, Tz); 2] = [
        ("Asia/Ho_Chi_Minh", chrono_tz::Asia::Ho_Chi_Minh),
        ("Europe/Berlin", chrono_tz::Europe::Berlin),
    ];
    for (name, tz) in zones {
        for threads in [1, 2] {
            let started = Instant::now();
            let firings = expand_all(&parsed, &tz, from, to, threads);
            let secs = started.elapsed().as_secs_f64();
            println!(
                "expand {name}, {threads} thread(s): {stations} stations × 1 year = {firings} firings \
                 ({} per station) in {secs:.3} s = {:.1} M firings/s",
                firings / stations.max(1),
                firings as f64 / secs / 1e6
            );
        }
    }
}
