//! Export benchmark: a month of 10,000 stations × 60 airings (600,000 records; 620,000 rows with
//! the two planned airings per station that have no record) exported from a real SQLite file as
//! CSV, XLSX and JSON. Each figure is the whole export — read + parse + reconcile
//! (`report::build_with`), render, write the file — printed beside its target with PASS/MISS
//! (CSV ≤ 2 s, XLSX ≤ 10 s; JSON has no target). Nothing asserted.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-release cargo run --release --example
//! bench_collector_export [-- STATIONS [FORMATS]]` (default 10000 and `csv,xlsx,json`).
//! `LOA_BENCH_DB=postgres://…/EMPTY_DB` runs the same on PostgreSQL (the database must be empty;
//! the SQLite file is a temporary one otherwise), so both engines are measured on one fixture.

use chrono::{Duration, FixedOffset, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use loa::collector::registry::{RawRegistry, RawStation, Registry, StationEntry};
use loa::reconcile::Thresholds;
use loa::report::{Format, Period, PlanSource, build_with, render};
use loa::schedule::{PlannedAiring, Priority, StartPolicy};
use loa::wire::{AiringRecord, GENESIS_HASH, Outcome, RECORD_VERSION, Source, encode_public_key};
use std::time::Instant;

const AIRINGS: usize = 60;

fn at(i: usize) -> chrono::DateTime<FixedOffset> {
    let tz = FixedOffset::east_opt(7 * 3600).unwrap();
    let day = (i / 2) as u32 % 28 + 1;
    let h = if i.is_multiple_of(2) { 5 } else { 17 };
    tz.with_ymd_and_hms(2019, 3, day, h, 30, 0).unwrap() + Duration::minutes((i / 56) as i64)
}

fn plan(station: &str, i: usize) -> PlannedAiring {
    PlannedAiring {
        station: station.into(),
        slot: if i.is_multiple_of(2) {
            "sang".into()
        } else {
            "chieu".into()
        },
        program: Some("cchc".into()),
        category: "cchc".into(),
        at: at(i),
        items: vec![].into(),
        planned_secs: 600.0,
        priority: Priority::Normal,
        start: StartPolicy::Hard,
        grace_secs: 0,
        max_secs: 900,
        relay: None,
    }
}

/// Every station plans the same 60 airings (62 with two that get no record).
struct BenchPlans;
impl PlanSource for BenchPlans {
    fn plan(&self, s: &StationEntry, _: &Period) -> Result<Vec<PlannedAiring>, String> {
        Ok((0..AIRINGS + 2).map(|i| plan(&s.id, i)).collect())
    }
}

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (clock ticks of 1/100 s); 0 when unreadable. Beside the wall time it shows
/// how much of a figure is waiting for a core on a loaded machine.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after the `)`.
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    let stations: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var("LOA_BENCH_DB") {
        Ok(url) => std::path::PathBuf::from(url),
        Err(_) => dir.path().join("export.db"),
    };
    let engine = loa::collector::db::Location::of_path(&db).engine();
    println!(
        "engine: {engine:?} ({})",
        loa::collector::db::Location::of_path(&db).display()
    );
    drop(loa::collector::Store::open(&db).unwrap());
    let k = SigningKey::from_bytes(&[9; 32]);
    let pk = encode_public_key(&k.verifying_key());
    let t = Instant::now();
    let conn = loa::collector::db::Conn::open(&loa::collector::db::Location::of_path(&db)).unwrap();
    if let Some(c) = conn.sqlite() {
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "OFF").unwrap();
    }
    let mut raw = RawRegistry::default();
    for s in 0..stations {
        let id = format!("st{s:05}");
        raw.station.push(RawStation {
            id: id.clone(),
            name: format!("Phường {s}"),
            area_code: format!("{:05}", 20000 + s),
            public_key: pk.clone(),
            schedule: None,
            audio_root: None,
        });
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare_cached(loa::collector::store::INSERT_RECORD_SQL)
                .unwrap();
            let mut prev = GENESIS_HASH.to_string();
            for i in 0..AIRINGS {
                let p = plan(&id, i);
                let outcome = match i % 20 {
                    7 => Outcome::Missed,
                    13 => Outcome::Partial,
                    _ => Outcome::Aired,
                };
                let r = AiringRecord {
                    v: RECORD_VERSION,
                    station: id.clone(),
                    seq: i as u64 + 1,
                    occurrence: Some(p.key()),
                    slot: Some(p.slot.to_string()),
                    program: p.program.as_deref().map(str::to_owned),
                    category: "cchc".into(),
                    source: Source::File,
                    scheduled_at: p.at,
                    actual_start: Some(p.at),
                    end: None,
                    planned_secs: 600.0,
                    aired_secs: if outcome == Outcome::Aired {
                        600.0
                    } else {
                        0.0
                    },
                    start_offset_ms: Some((i as i64 % 5) * 30_000),
                    outcome,
                    reason: (outcome != Outcome::Aired).then(|| "mất điện".to_string()),
                    reason_code: loa::wire::unspecified(outcome),
                    items: vec![],
                    evidence: None,
                    relay: None,
                    recorded_at: Utc::now(),
                    prev_hash: prev.clone(),
                    schedule_version: None,
                    bulletin: None,
                };
                // Signing 600,000 records dominates setup; a fixed signature keeps setup short
                // (the export never verifies; `loa verify` does).
                let bytes = serde_json::to_string(&r).unwrap();
                let hash = loa::wire::sha256_hex(bytes.as_bytes());
                loa::collector::store::insert_record(&mut ins, &id, &hash, "sig", &bytes, &r, 0)
                    .unwrap();
                prev = hash;
            }
        }
        tx.commit().unwrap();
    }
    // The export reads a database at rest: fold the WAL into the file and let the kernel write
    // the setup's dirty pages out now, not while an export is being timed.
    if let Some(c) = conn.sqlite() {
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    drop(conn);
    if engine == loa::collector::db::Engine::Postgres {
        let c =
            loa::collector::db::Conn::open(&loa::collector::db::Location::of_path(&db)).unwrap();
        c.execute_batch("VACUUM ANALYZE records").unwrap();
    }
    for f in [db.clone(), dir.path().join("export.db-wal")] {
        if let Ok(file) = std::fs::File::open(&f) {
            file.sync_all().unwrap();
        }
    }
    let reg_path = dir.path().join("collector.toml");
    std::fs::write(&reg_path, toml::to_string(&raw).unwrap()).unwrap();
    let registry = Registry::load(&reg_path).unwrap();
    println!(
        "setup: {} stations × {AIRINGS} records in {:.1} s",
        stations,
        t.elapsed().as_secs_f64()
    );
    let store = loa::collector::Store::open(&db).unwrap();
    let period = Period::parse(
        "2019-03",
        chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
    )
    .unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("/proc/loadavg before the exports: {}", load.trim());
    // Optional second argument: only these formats, e.g. `csv,xlsx` (for profiling one).
    let only = std::env::args()
        .nth(2)
        .unwrap_or_default()
        .to_ascii_lowercase();
    for (f, target_secs) in [
        (Format::Csv, Some(2.0)),
        (Format::Xlsx, Some(10.0)),
        (Format::Json, None),
    ] {
        if !only.is_empty() && !only.contains(&format!("{f:?}").to_ascii_lowercase()) {
            continue;
        }
        let t = Instant::now();
        let cpu0 = cpu_secs();
        let report = build_with(
            &store,
            &registry,
            &BenchPlans,
            &period,
            &Thresholds::default(),
            Utc::now(),
            f == Format::Json,
        )
        .unwrap();
        let build_s = t.elapsed().as_secs_f64();
        let rows: usize = report
            .stations
            .iter()
            .map(|s| s.reconciliation.rows.len())
            .sum();
        let bytes = render(&report, f).unwrap();
        let out = dir.path().join(format!("export.{f:?}"));
        std::fs::write(&out, &bytes).unwrap();
        drop(report);
        let total = t.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu0;
        let verdict = match target_secs {
            Some(max) if total <= max => format!("target <= {max:.0} s  PASS"),
            Some(max) => format!("target <= {max:.0} s  MISS"),
            None => "no target".to_string(),
        };
        println!(
            "export {f:?}: {rows} rows, {} MB: {total:.2} s (build {build_s:.2} s + render and write {:.2} s; CPU {cpu:.2} s)  {verdict}",
            bytes.len() / 1_000_000,
            total - build_s
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("/proc/loadavg after: {}", load.trim());
}
