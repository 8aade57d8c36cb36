//! The collector database survives a crash mid-write: a real `loa collector` child process is
//! killed with SIGKILL while four stations post batches continuously, three times over. After
//! each kill, a copy of what is on disk (database + WAL, taken before anything opens it) must
//! open, pass `PRAGMA integrity_check`, hold every record the collector acknowledged with the
//! exact bytes the station signed, with no gap and every signature and chain link verifying.
//! The restarted collector then acknowledges every re-posted record as a duplicate (idempotent),
//! the stations carry on, and at the end `loa export` + `loa verify` prove the months complete.
//! Under `LOA_TEST_DB=postgres` the same run checks the database itself after each kill (the
//! server owns its files; there is no WAL copy to take).

mod collector_common;

use collector_common::*;
use loa::collector::Store;
use loa::wire::{BatchAck, GENESIS_HASH, Outcome, SignedRecord};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_loa");
const STATIONS: usize = 4;
const KILLS: usize = 3;
/// Batches acknowledged (all stations together) before a kill is armed in each phase.
const ACKED_BEFORE_KILL: u64 = 8;

struct Collector(Child);
impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Collector {
    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    fn sigkill(mut self) {
        self.0.kill().unwrap();
        let status = self.0.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }
}

fn spawn_collector(db: &Path, cfg: &Path) -> (Collector, String) {
    let mut child = Command::new(BIN)
        .args(["collector", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .arg("--config")
        .arg(cfg)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Collector(child);
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("collector exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

/// A station's whole signed log (generated on demand) and how far the collector acknowledged it.
struct Sim {
    st: TestStation,
    log: Vec<SignedRecord>,
    acked_through: u64,
}

impl Sim {
    fn records(&mut self, from_seq: u64, n: usize) -> Vec<SignedRecord> {
        while (self.log.len() as u64) < from_seq - 1 + n as u64 {
            let when = at(1, 5) + chrono::Duration::minutes(self.st.seq as i64);
            let r = self.st.record(None, when, Outcome::Aired, 60.0, 0);
            self.log.push(r);
        }
        self.log[(from_seq - 1) as usize..(from_seq - 1) as usize + n].to_vec()
    }
}

/// Post batches of `size` from the first unacknowledged seq until the collector stops answering.
/// Returns the station and whether a post was in flight (sent, never answered) at the end.
async fn post_until_gone(
    mut sim: Sim,
    base: String,
    size: usize,
    acked_batches: Arc<AtomicU64>,
) -> (Sim, bool) {
    let c = client();
    let url = format!("{base}/api/v1/stations/{}/records", sim.st.id);
    loop {
        let recs = sim.records(sim.acked_through + 1, size);
        let body = serde_json::to_vec(&batch(&recs)).unwrap();
        let sent = c
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(_) => return (sim, true),
        };
        let status = resp.status().as_u16();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(_) => return (sim, true),
        };
        assert_eq!(status, 200, "{}: {text}", sim.st.id);
        let ack: BatchAck = serde_json::from_str(&text).unwrap();
        let seqs: Vec<u64> = ack
            .accepted
            .iter()
            .chain(&ack.duplicates)
            .copied()
            .collect();
        assert_eq!(seqs.len(), recs.len(), "{text}");
        sim.acked_through = sim.acked_through.max(*seqs.iter().max().unwrap());
        acked_batches.fetch_add(1, Ordering::SeqCst);
    }
}

/// Copy the database and its WAL as they are on disk, without opening them.
fn snapshot(db: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    let copy = to.join("collector.db");
    std::fs::copy(db, &copy).unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let len = std::fs::metadata(&wal)
        .map(|m| m.len())
        .expect("the killed collector left no WAL file: it was not killed mid-run");
    assert!(len > 0, "empty WAL after the kill");
    std::fs::copy(&wal, format!("{}-wal", copy.display())).unwrap();
    copy
}

/// What the crash left, for [`check_db`]: on SQLite a [`snapshot`] of the files; on PostgreSQL
/// the database itself (the server, not the killed collector, owns its files, and nothing else
/// writes to it until the next start).
fn after_kill(db: &Path, to: &Path) -> PathBuf {
    if loa::collector::db::testing::pg_admin_url().is_none() {
        snapshot(db, to)
    } else {
        db.to_path_buf()
    }
}

/// The database opens, passes the integrity check and holds every acknowledged record of every
/// station, byte for byte, contiguous from seq 1, each verifying and chained.
fn check_db(db: &Path, sims: &[Sim]) {
    let store = Store::open(db).unwrap();
    store.integrity_check().unwrap();
    for sim in sims {
        let id = &sim.st.id;
        let through = store.stored_through(id).unwrap();
        assert!(
            through >= sim.acked_through,
            "{id}: acknowledged through seq {} but only {through} stored",
            sim.acked_through
        );
        assert!(store.gaps(id).unwrap().is_empty(), "{id}: gaps");
        let rows = store.records_by_seq(id, 1, through).unwrap();
        assert_eq!(rows.len() as u64, through, "{id}");
        let key = sim.st.key.verifying_key();
        let mut prev = GENESIS_HASH.to_string();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.seq, i as u64 + 1);
            // Stored records beyond the acknowledged ones (a batch committed whose answer the
            // kill swallowed) must still be exactly what the station signed.
            let sent = &sim.log[i];
            assert_eq!(row.bytes, sent.bytes(), "{id} seq {}", row.seq);
            assert_eq!(row.hash, sent.hash);
            let rec = row.signed().unwrap().verify(&key).unwrap();
            assert_eq!(rec.prev_hash, prev, "{id} seq {}: chain", row.seq);
            prev = row.hash.clone();
        }
    }
}

/// Re-post everything acknowledged so far: every record must come back as a duplicate.
async fn repost_acknowledged(base: &str, sims: &[Sim]) {
    let c = client();
    for sim in sims {
        let acked = &sim.log[..sim.acked_through as usize];
        for part in acked.chunks(250) {
            let (code, v) = post(
                &c,
                &format!("{base}/api/v1/stations/{}/records", sim.st.id),
                serde_json::to_vec(&batch(part)).unwrap(),
            )
            .await;
            assert_eq!(code, 200, "{v}");
            let ack: BatchAck = serde_json::from_value(v).unwrap();
            assert!(ack.accepted.is_empty(), "{ack:?}");
            let want: Vec<u64> = part.iter().map(|r| r.parse().unwrap().seq).collect();
            assert_eq!(ack.duplicates, want);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_survives_sigkill_mid_write_and_reposting_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = loa::collector::db::testing::test_db(&dir.path().join("var"), "collector.db");
    if loa::collector::db::testing::pg_admin_url().is_none() {
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    } else {
        println!(
            "on PostgreSQL the checks after each kill read the database itself: copying the \
             database and its WAL as they are on disk is for SQLite only"
        );
    }
    let stations: Vec<TestStation> = (0..STATIONS)
        .map(|i| TestStation::new(&format!("phuong-{i}"), 40 + i as u8))
        .collect();
    let cfg = write_registry(dir.path(), &stations.iter().collect::<Vec<_>>());
    let mut sims: Vec<Sim> = stations
        .into_iter()
        .map(|st| Sim {
            st,
            log: Vec::new(),
            acked_through: 0,
        })
        .collect();

    let mut in_flight_at_kills = 0;
    for phase in 0..KILLS {
        let (collector, base) = spawn_collector(&db, &cfg);
        if phase > 0 {
            repost_acknowledged(&base, &sims).await;
        }
        let acked = Arc::new(AtomicU64::new(0));
        let size = 40 + 70 * phase; // 40, 110, 180 records a batch
        let tasks: Vec<_> = sims
            .drain(..)
            .map(|sim| tokio::spawn(post_until_gone(sim, base.clone(), size, acked.clone())))
            .collect();
        // Stations are posting continuously; kill once some batches went through, at a
        // different moment in each phase.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::SeqCst) < ACKED_BEFORE_KILL {
            assert!(
                std::time::Instant::now() < deadline,
                "the collector acknowledged too little in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(17 * phase as u64)).await;
        tokio::task::spawn_blocking(move || collector.sigkill())
            .await
            .unwrap();
        for t in tasks {
            let (sim, in_flight) = t.await.unwrap();
            in_flight_at_kills += in_flight as usize;
            sims.push(sim);
        }
        assert!(sims.iter().all(|s| s.acked_through > 0));
        // What is on disk right after the crash, opened by nothing else first.
        let copy = after_kill(&db, &dir.path().join(format!("after-kill-{phase}")));
        check_db(&copy, &sims);
        eprintln!(
            "kill {}: batches of {size}, acknowledged through {:?}, posts in flight so far {in_flight_at_kills}",
            phase + 1,
            sims.iter().map(|s| s.acked_through).collect::<Vec<_>>()
        );
    }
    // Stations post continuously, so a kill always finds posts on the way.
    assert!(in_flight_at_kills >= KILLS, "{in_flight_at_kills}");

    // The last restart: recovered by the collector itself, idempotent, and still taking records.
    let (collector, base) = spawn_collector(&db, &cfg);
    repost_acknowledged(&base, &sims).await;
    let c = client();
    for sim in &mut sims {
        let next = sim.records(sim.acked_through + 1, 25);
        let (code, v) = post(
            &c,
            &format!("{base}/api/v1/stations/{}/records", sim.st.id),
            serde_json::to_vec(&batch(&next)).unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{v}");
        let ack: BatchAck = serde_json::from_value(v).unwrap();
        assert_eq!(ack.accepted.len() + ack.duplicates.len(), 25);
        sim.acked_through = ack.stored_through;
    }
    tokio::task::spawn_blocking(move || collector.sigkill())
        .await
        .unwrap();
    check_db(&after_kill(&db, &dir.path().join("final")), &sims);

    // The month's signed export from the crashed-and-recovered database verifies offline.
    let out = dir.path().join("2019-03.json");
    let export = Command::new(BIN)
        .args(["export", "--month", "2019-03", "--format", "json", "--out"])
        .arg(&out)
        .arg("--db")
        .arg(&db)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(export.status.success(), "{export:?}");
    let verify = Command::new(BIN)
        .arg("verify")
        .arg(&out)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{text}");
    for sim in &sims {
        let n = sim.acked_through;
        let line = format!("ok   {}: {n} records, seq 1..{n}", sim.st.id);
        assert!(text.contains(&line), "{line}\n{text}");
    }
}
