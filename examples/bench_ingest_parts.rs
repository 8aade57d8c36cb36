//! Where an ingested record's CPU time goes: each step of the collector's ingest path measured
//! alone on one thread, in CPU-µs per record (thread CPU time, so other load on the machine
//! changes the figures little), for the same 649-byte records as `bench_collector`, batches of
//! 500, one station. Nothing asserted; the ceiling on 2 cores is 2 / (sum of the steps).
//!
//! Run: `CARGO_TARGET_DIR=/work/target-release cargo run --release --example bench_ingest_parts`

mod common;
use chrono::Utc;
use common::chain;
use ed25519_dalek::{Signature, SigningKey};
use loa::collector::Store;
use loa::collector::ingest::{check_batch, decode_batch};
use loa::collector::store::Synchronous;
use loa::wire::{AiringRecord, RecordBatch, SignedRecord, sha256_hex};
use std::time::Instant;

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Run `f` `reps` times; CPU-µs per record (`per` records per call) on this thread.
fn cpu_us(records_per_call: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let t = thread_cpu_secs();
    for _ in 0..reps {
        f();
    }
    (thread_cpu_secs() - t) * 1e6 / (reps * records_per_call) as f64
}

fn main() {
    let n = 500;
    let key = SigningKey::from_bytes(&[7; 32]);
    let vk = key.verifying_key();
    let records = chain("st0", &key, 20 * n);
    let batch = RecordBatch {
        records: records[..n].to_vec(),
    };
    let body = serde_json::to_vec(&batch).unwrap();
    let messages: Vec<&[u8]> = batch.records.iter().map(|r| r.bytes().as_bytes()).collect();
    let sigs: Vec<Signature> = batch
        .records
        .iter()
        .map(|r| {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&r.signature)
                .unwrap();
            Signature::from_bytes(&raw.try_into().unwrap())
        })
        .collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "CPU-µs per record, one thread, {} -byte records, batches of {n}; /proc/loadavg {}",
        records[0].bytes().len(),
        load.trim()
    );
    let row = |what: &str, us: f64| println!("  {what:<58} {us:>7.2}");
    row(
        "JSON decode of the body (RecordBatch, raw record bytes)",
        cpu_us(n, 20, || {
            std::hint::black_box(decode_batch(&body, 5_000).unwrap());
        }),
    );
    row(
        "parse a record (AiringRecord from its canonical bytes)",
        cpu_us(n, 20, || {
            for r in &batch.records {
                std::hint::black_box(r.parse().unwrap());
            }
        }),
    );
    row(
        "SHA-256 of the bytes (hex)",
        cpu_us(n, 50, || {
            for r in &batch.records {
                std::hint::black_box(sha256_hex(r.bytes().as_bytes()));
            }
        }),
    );
    row(
        "Ed25519 verify_strict, one by one",
        cpu_us(n, 3, || {
            for (m, s) in messages.iter().zip(&sigs) {
                vk.verify_strict(m, s).unwrap();
            }
        }),
    );
    for size in [64usize, 250, 500] {
        let keys = vec![vk; size];
        row(
            &format!("Ed25519 ed25519_dalek::verify_batch, {size} at once (not used: not strict)"),
            cpu_us(size, 10, || {
                ed25519_dalek::verify_batch(&messages[..size], &sigs[..size], &keys).unwrap();
            }),
        );
    }
    // check_batch splits across the cores: measure the process CPU, not the thread's.
    let proc_cpu = || {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes into the struct we own.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    let reps = 10;
    let t = proc_cpu();
    let w = Instant::now();
    for _ in 0..reps {
        let b = decode_batch(&body, 5_000).unwrap();
        std::hint::black_box(check_batch("st0", &vk, b).unwrap());
    }
    row(
        "decode_batch + check_batch (all cores; process CPU)",
        (proc_cpu() - t) * 1e6 / (reps * n) as f64,
    );
    println!(
        "    (wall: {:.0} records/s)",
        (reps * n) as f64 / w.elapsed().as_secs_f64()
    );
    for (sync, name) in [(Synchronous::Full, "FULL"), (Synchronous::Normal, "NORMAL")] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_with(&dir.path().join("parts.db"), sync).unwrap();
        let all = check_batch(
            "st0",
            &vk,
            RecordBatch {
                records: records.clone(),
            },
        )
        .unwrap();
        let t = thread_cpu_secs();
        let w = Instant::now();
        for part in all.chunks(n) {
            store.store_batch("st0", part, Utc::now()).unwrap();
        }
        let cpu = (thread_cpu_secs() - t) * 1e6 / all.len() as f64;
        row(&format!("Store::store_batch, synchronous={name}"), cpu);
        println!(
            "    (wall: {:.1} µs per record incl. fsync)",
            w.elapsed().as_secs_f64() * 1e6 / all.len() as f64
        );
    }
    group_commit(&key);
}

/// Scratch measurement for a store change the writer would need (no such `Store` API yet):
/// 1,000 stations' batches of 10 records, each batch in its own transaction (what
/// `Store::store_batch` does) vs. up to 64 batches per transaction with a SAVEPOINT per batch
/// (each still all-or-nothing: a conflicting batch is rolled back to its savepoint alone).
/// Raw rusqlite on the collector's schema, the same INSERT as the store.
fn group_commit(_key: &SigningKey) {
    let stations = 1_000;
    let per_batch = 10;
    let rows: Vec<(String, Vec<SignedRecord>)> = (0..stations)
        .map(|i| {
            let k = SigningKey::from_bytes(&[(i % 251) as u8 + 1; 32]);
            let st = format!("st{i}");
            let c = chain(&st, &k, per_batch);
            (st, c)
        })
        .collect();
    let parsed: Vec<Vec<AiringRecord>> = rows
        .iter()
        .map(|(_, c)| c.iter().map(|r| r.parse().unwrap()).collect())
        .collect();
    println!(
        "group commit (scratch, raw SQLite): {stations} batches of {per_batch} records, one per station"
    );
    for sync in ["FULL", "NORMAL"] {
        for group in [1usize, 8, 64] {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("group.db");
            drop(Store::open(&db).unwrap());
            let mut conn = rusqlite::Connection::open(&db).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.pragma_update(None, "synchronous", sync).unwrap();
            let w = Instant::now();
            let cpu = thread_cpu_secs();
            for (chunk_rows, chunk_parsed) in rows.chunks(group).zip(parsed.chunks(group)) {
                let tx = conn.transaction().unwrap();
                for ((station, recs), ps) in chunk_rows.iter().zip(chunk_parsed) {
                    tx.execute_batch("SAVEPOINT b").unwrap();
                    {
                        let mut ins = tx
                            .prepare_cached(
                                "INSERT INTO records (station, seq, hash, prev_hash, signature, bytes, occurrence,
                                category, source, outcome, scheduled_unix, aired_secs, received_unix)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                            )
                            .unwrap();
                        for (r, p) in recs.iter().zip(ps) {
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
                        }
                    }
                    tx.execute_batch("RELEASE b").unwrap();
                }
                tx.commit().unwrap();
            }
            let wall = w.elapsed().as_secs_f64();
            println!(
                "  synchronous={sync:<6} {group:>2} batches per transaction: {:>6.0} ms wall for all ({:.2} ms per batch), {:.1} CPU-µs per record",
                wall * 1e3,
                wall * 1e3 / stations as f64,
                (thread_cpu_secs() - cpu) * 1e6 / (stations * per_batch) as f64
            );
        }
    }
}
