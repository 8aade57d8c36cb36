//! `loa station` processes shipping to the REAL collector (`loa collector` as a child process on
//! 127.0.0.1, SQLite in a temp dir or PostgreSQL, the registry written by `loa register`): every
//! record arrives once and in order and the chain verifies through the collector's own API and JSON
//! export; a collector down for a whole run; a station that is not registered yet; journal
//! compaction; a full disk (a tiny tmpfs mounted for the test: needs root, as CI is; the test fails
//! with a clear message otherwise). Each test takes 10–30 s of wall time: they wait for real
//! airings.

mod station_common;

use chrono::Datelike;
use loa::journal::{self, AckLedger};
use loa::wire::{AiringRecord, Outcome, SignedRecord};
use station_common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `loa collector` as a child process.
struct Collector {
    child: Child,
    url: String,
    registry: PathBuf,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
    /// An auditor's personal token (`loa user token`): the API needs a signed-in reader.
    token: String,
}

/// The collector database of the state directory `dir`: `dir/collector.db`, or under
/// `LOA_TEST_DB=postgres` a PostgreSQL database made on first use; named in `dir/test-db` so
/// the collector's restarts and `loa register` find the same one.
fn database(dir: &Path) -> PathBuf {
    let file = dir.join("test-db");
    if let Ok(t) = std::fs::read_to_string(&file) {
        return PathBuf::from(t.trim());
    }
    let db = loa::collector::db::testing::test_db(dir, "collector.db");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&file, db.to_str().unwrap()).unwrap();
    db
}

/// An auditor's token for the database in `dir`, made once with `loa user add` + `loa user
/// token` and kept in `dir/reader-token` for the collector's restarts.
fn reader_token(dir: &Path) -> String {
    let file = dir.join("reader-token");
    if let Ok(t) = std::fs::read_to_string(&file) {
        return t.trim().to_string();
    }
    let db = database(dir);
    let run = |args: &[&str]| {
        let out = Command::new(LOA)
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["user", "add", "reader", "--role", "auditor"]);
    let token = run(&["user", "token", "reader"]).trim().to_string();
    std::fs::write(&file, &token).unwrap();
    token
}

impl Collector {
    /// Start on `listen` (`127.0.0.1:0` or a fixed port) with the registry and database in `dir`.
    fn start(dir: &Path, listen: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let registry = dir.join("collector.toml");
        if !registry.exists() {
            std::fs::write(&registry, "").unwrap();
        }
        let log = unique(dir.join("collector.log"));
        let child = Command::new(LOA)
            .args(["collector", "--listen", listen, "--db"])
            .arg(database(dir))
            .arg("--config")
            .arg(&registry)
            .env("LOA_HOME", dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let url = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(i) = text.find("listening on ") {
                let rest = &text[i + "listening on ".len()..];
                break rest.split_whitespace().next().unwrap().to_string();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "collector did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            child,
            url,
            registry,
            log,
            rt,
            token: reader_token(dir),
        }
    }

    /// `loa register` the station's key (from its `station.pub`).
    fn register(registry: &Path, id: &str, data_dir: &Path) {
        let line = std::fs::read_to_string(data_dir.join("station.pub")).unwrap();
        let key = line.split_whitespace().last().unwrap().to_string();
        let out = Command::new(LOA)
            .args(["register", "--config"])
            .arg(registry)
            .arg("--db")
            .arg(database(registry.parent().unwrap()))
            .args(["--station", id, "--public-key", &key, "--name", id])
            .args(["--area-code", "21100"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn get(&self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.url);
        self.rt.block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    /// The records stored for `id` (seq, hash, record) from `GET …/airings`, over the days
    /// around now.
    fn airings(&self, id: &str) -> Option<Vec<(u64, String, AiringRecord)>> {
        let today = chrono::Utc::now().date_naive();
        let (from, to) = (today - chrono::Days::new(2), today + chrono::Days::new(2));
        let (status, text) = self.get(&format!(
            "/api/v1/stations/{id}/airings?from={from}&to={to}"
        ));
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        Some(
            v["airings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["seq"].as_u64().unwrap(),
                        a["hash"].as_str().unwrap().to_string(),
                        serde_json::from_value(a["record"].clone()).unwrap(),
                    )
                })
                .collect(),
        )
    }

    fn stored(&self, id: &str) -> usize {
        self.airings(id).map_or(0, |a| a.len())
    }

    fn status(&self, id: &str) -> serde_json::Value {
        let (status, text) = self.get(&format!("/api/v1/stations/{id}"));
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Every journaled record of `id` is at the collector exactly once, with the journal's hash,
    /// chained in seq order; the collector's JSON export of the month(s) verifies (signatures,
    /// chain, no gaps) against the registry. Returns the journal's records.
    fn check_arrived(&self, site: &Site, id: &str) -> Vec<AiringRecord> {
        let key = loa::keys::load(&site.data(id)).unwrap().verifying_key();
        let recs = check_journal(site, id, &key);
        let signed: Vec<SignedRecord> =
            journal::read_all(&journal::journal_dir(&site.data(id))).unwrap();
        let stored = self.airings(id).expect("station known to the collector");
        let seqs: Vec<u64> = stored.iter().map(|a| a.0).collect();
        assert_eq!(
            seqs,
            (1..=recs.len() as u64).collect::<Vec<_>>(),
            "{id}: every record once, in order"
        );
        let mut prev = loa::wire::GENESIS_HASH.to_string();
        for ((seq, hash, rec), mine) in stored.iter().zip(&signed) {
            // Wire version 2: a record that did not air in full says why as a code.
            assert_eq!(rec.v, loa::wire::RECORD_VERSION, "{id} seq {seq}");
            if rec.outcome != Outcome::Aired {
                assert!(
                    rec.reason_code
                        .as_ref()
                        .is_some_and(|c| *c != loa::reason::ReasonCode::Unknown),
                    "{id} seq {seq}: {:?} {:?}",
                    rec.reason_code,
                    rec.reason
                );
            }
            assert_eq!(
                hash, &mine.hash,
                "{id} seq {seq}: hash differs from the journal"
            );
            assert_eq!(rec.prev_hash, prev, "{id} seq {seq}: chain broken");
            prev = hash.clone();
        }
        let registry = loa::collector::Registry::load(&self.registry).unwrap();
        let months: BTreeSet<String> = recs
            .iter()
            .map(|r| {
                let t = r
                    .scheduled_at
                    .with_timezone(&loa::collector::status::report_offset());
                format!("{:04}-{:02}", t.year(), t.month())
            })
            .collect();
        let mut in_exports = 0;
        for m in months {
            let (status, text) = self.get(&format!("/api/v1/reports/{m}.json"));
            assert_eq!(status, 200, "{text}");
            let v = loa::report::verify_export(&text, Some(&registry));
            assert!(v.ok(), "{id}: export {m} does not verify: {v:?}");
            in_exports += v
                .stations
                .iter()
                .filter(|s| s.id == id)
                .map(|s| s.records)
                .sum::<usize>();
        }
        assert_eq!(in_exports, recs.len(), "{id}: records in the exports");
        assert_eq!(
            AckLedger::new(&journal::journal_dir(&site.data(id)))
                .load()
                .unwrap(),
            recs.len() as u64,
            "{id}: ledger"
        );
        recs
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "collector log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn aired(site: &Site, id: &str) -> usize {
    site.records(id)
        .iter()
        .filter(|r| r.outcome == Outcome::Aired)
        .count()
}

#[test]
fn two_stations_air_and_every_record_reaches_the_real_collector_once() {
    let site = Site::new();
    let cdir = site.root.path().join("collector");
    let ids = ["phuong-a", "phuong-b"];
    // Station a asks for -30 LUFS, b keeps the default (-23): the player must apply each. A
    // stereo file: the output is stereo, so its loudness is the file's.
    wav_channels(&site.root.path().join("audio/stereo1.wav"), 1.0, 2);
    site.write_schedule_with(
        ids[0],
        3,
        "stereo1.wav",
        "[loudness]\nintegrated_lufs = -30.0",
    );
    site.write_schedule(ids[1], 3, "stereo1.wav");
    std::fs::create_dir_all(&cdir).unwrap();
    for id in ids {
        site.keygen(id);
        Collector::register(&cdir.join("collector.toml"), id, &site.data(id));
    }
    let coll = Collector::start(&cdir, "127.0.0.1:0");
    let stations: Vec<_> = ids.iter().map(|id| site.start(id, &coll.url)).collect();
    wait_until(
        Duration::from_secs(40),
        "three aired records at each station",
        || ids.iter().all(|id| aired(&site, id) >= 3),
    );
    for s in stations {
        s.stop();
    }
    for (id, target) in ids.iter().zip([-30.0, -23.0]) {
        let recs = coll.check_arrived(&site, id);
        for r in recs.iter().filter(|r| r.outcome == Outcome::Aired) {
            let lufs = r
                .evidence
                .as_ref()
                .and_then(|e| e.integrated_lufs)
                .unwrap_or_else(|| panic!("{id}: no loudness in {r:?}"));
            assert!(
                (lufs - target).abs() < 1.5,
                "{id}: aired at {lufs:.1} LUFS, schedule target {target}"
            );
        }
        let st = coll.status(id);
        assert!(st["last_heartbeat_at"].is_string(), "{id}: {st}");
        assert_eq!(st["output_ok"], serde_json::json!(true), "{id}: {st}");
    }
}

#[test]
fn collector_down_for_the_whole_run_then_up_everything_arrives_in_order_once() {
    let site = Site::new();
    let id = "phuong-offline";
    site.write_schedule(id, 2, "tone1.wav");
    site.keygen(id);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let s = site.start(id, &url);
    wait_until(Duration::from_secs(30), "a backlog of 4", || {
        site.records(id).len() >= 4
    });
    let log = s.stop();
    assert!(log.contains("shipping failed"), "{log}");
    let offline = site.records(id).len();
    assert_eq!(
        AckLedger::new(&journal::journal_dir(&site.data(id)))
            .load()
            .unwrap(),
        0
    );
    // The collector comes up on the address the station knows; the station starts again.
    let cdir = site.root.path().join("collector");
    std::fs::create_dir_all(&cdir).unwrap();
    Collector::register(&cdir.join("collector.toml"), id, &site.data(id));
    let coll = Collector::start(&cdir, &format!("127.0.0.1:{port}"));
    let s = site.start(id, &coll.url);
    wait_until(
        Duration::from_secs(30),
        "the backlog and new airings",
        || {
            let stored = coll.stored(id);
            stored > offline && stored >= site.records(id).len()
        },
    );
    s.stop();
    coll.check_arrived(&site, id);
}

#[test]
fn unregistered_station_logs_a_clear_error_keeps_its_records_then_ships_them() {
    let site = Site::new();
    let id = "phuong-new";
    site.write_schedule(id, 2, "tone1.wav");
    site.keygen(id);
    let cdir = site.root.path().join("collector");
    let coll = Collector::start(&cdir, "127.0.0.1:0");
    let s = site.start(id, &coll.url);
    s.wait_log("not enrolled with the collector", Duration::from_secs(20));
    wait_until(Duration::from_secs(20), "three records kept", || {
        site.records(id).len() >= 3
    });
    let log = s.log();
    // The whole command, with the registry the running collector actually reads.
    let fix = format!(
        "loa register --config {} --station {id} --public-key",
        coll.registry.display()
    );
    assert!(
        log.contains(&fix),
        "the error names the fix ({fix}):\n{log}"
    );
    assert!(coll.airings(id).is_none(), "collector does not know it");
    assert_eq!(
        AckLedger::new(&journal::journal_dir(&site.data(id)))
            .load()
            .unwrap(),
        0
    );
    assert!(
        !journal::journal_dir(&site.data(id))
            .join(journal::REJECTED_FILE)
            .exists(),
        "nothing set aside"
    );
    // Enrolled while both run: the collector re-reads its registry, the shipper's retry lands.
    Collector::register(&coll.registry, id, &site.data(id));
    wait_until(Duration::from_secs(40), "everything shipped", || {
        let n = site.records(id).len();
        n > 3 && coll.stored(id) >= n
    });
    // The station says the refusals are over (once), not only that they happened.
    s.wait_log("shipping resumed", Duration::from_secs(10));
    s.stop();
    coll.check_arrived(&site, id);
}

/// An old airing record (recorded `days_ago`), with `items` items so segments fill quickly.
fn old_record(n: u64, days_ago: i64, items: usize) -> AiringRecord {
    let recorded = chrono::Utc::now() - chrono::Duration::days(days_ago);
    let at = recorded.with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap());
    AiringRecord {
        v: 0,
        station: String::new(),
        seq: 0,
        occurrence: Some(format!("old@{n}")),
        slot: Some("old".into()),
        program: Some("tin".into()),
        category: "news".into(),
        source: loa::wire::Source::File,
        scheduled_at: at,
        actual_start: Some(at),
        end: Some(at + chrono::Duration::seconds(60)),
        planned_secs: 60.0,
        aired_secs: 60.0,
        start_offset_ms: Some(1),
        outcome: Outcome::Aired,
        reason: None,
        reason_code: None,
        items: (0..items)
            .map(|i| loa::wire::AiredItem {
                path: format!("tin/{n}-{i}.ogg"),
                sha256: loa::wire::sha256_hex(&[i as u8]),
                duration_secs: 3.0,
                aired_secs: 3.0,
            })
            .collect(),
        evidence: None,
        relay: None,
        recorded_at: recorded,
        prev_hash: String::new(),
        schedule_version: None,
        bulletin: None,
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn first_seq(seg: &Path) -> u64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

#[test]
fn daemon_compacts_only_acknowledged_segments_older_than_the_local_history() {
    let site = Site::new();
    let id = "phuong-compact";
    site.write_schedule(id, 2, "tone1.wav");
    site.keygen(id);
    let jdir = journal::journal_dir(&site.data(id));
    // 40 days of history in three segments (~2,000 records of ~4 KiB each per 8 MiB segment).
    {
        let key = loa::keys::load(&site.data(id)).unwrap();
        let (mut j, _) = journal::Journal::open(&jdir, id, key).unwrap();
        let mut n = 0;
        while segments(&jdir).len() < 3 {
            j.append(old_record(n, 40, 24)).unwrap();
            n += 1;
        }
        // Age is counted back from the newest record (a station switched off for weeks deletes
        // nothing on waking): one airing from today, so the cut-off is today's, whether or not
        // the daemon airs before the test stops it.
        j.append(old_record(n, 0, 1)).unwrap();
    }
    let segs = segments(&jdir);
    // The collector acknowledged the first segment and part of the second.
    let acked = first_seq(&segs[1]) + 10;
    AckLedger::new(&jdir).store(acked).unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    // 45 days of history wanted: the 40-day-old records stay.
    let s = site.start_with(id, &dead, &["--keep-days", "45"]);
    s.wait_log(
        "journal compaction: nothing to delete",
        Duration::from_secs(60),
    );
    s.stop();
    assert_eq!(segments(&jdir), segs);
    // Too short a history is refused.
    let out = Command::new(LOA)
        .args(["station", "--station", id, "--keep-days", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep-days"));
    // 35 days: only the fully acknowledged first segment goes; the partly acknowledged second
    // and the current one stay, and every unacknowledged record is still there to ship.
    let s = site.start_with(id, &dead, &["--keep-days", "35"]);
    s.wait_log("journal compacted", Duration::from_secs(60));
    let log = s.stop();
    assert!(log.contains("segments=1"), "{log}");
    assert_eq!(segments(&jdir), segs[1..].to_vec());
    let left = journal::read_all(&jdir).unwrap();
    let seqs: Vec<u64> = left.iter().map(|r| r.parse().unwrap().seq).collect();
    assert_eq!(seqs[0], first_seq(&segs[1]));
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(*seqs.last().unwrap() > acked);
    // The station opens the compacted journal again (the chain starts mid-way).
    let s = site.start_with(id, &dead, &["--keep-days", "35"]);
    s.wait_log("journal open", Duration::from_secs(60));
    s.stop();
}

#[test]
fn full_disk_is_reported_airings_go_on_and_held_records_are_journaled_later() {
    let site = Site::new();
    let id = "phuong-full";
    site.write_schedule(id, 2, "tone1.wav");
    let fs = TinyFs::mount(&site.data(id), "1m");
    site.keygen(id);
    let cdir = site.root.path().join("collector");
    std::fs::create_dir_all(&cdir).unwrap();
    Collector::register(&cdir.join("collector.toml"), id, &site.data(id));
    let coll = Collector::start(&cdir, "127.0.0.1:0");
    let s = site.start(id, &coll.url);
    wait_until(Duration::from_secs(20), "a first record shipped", || {
        coll.stored(id) >= 1
    });
    let (stop_filling, filler) = fs.keep_full();
    s.wait_log("journal cannot be written", Duration::from_secs(20));
    let on_air = |log: &str| log.matches("on air").count();
    let at_full = on_air(&s.log());
    let journaled_at_full = site.records(id).len();
    wait_until(
        Duration::from_secs(20),
        "two airings on a full disk",
        || on_air(&s.log()) >= at_full + 2,
    );
    wait_until(Duration::from_secs(20), "the heartbeat reports it", || {
        let st = coll.status(id);
        st["journal"]["writable"] == serde_json::json!(false)
            && st["journal"]["held_records"]
                .as_u64()
                .is_some_and(|n| n >= 1)
            && st["journal"]["free_bytes"].as_u64().is_some()
    });
    // Its own field: the output itself is fine.
    assert_eq!(coll.status(id)["output_ok"], serde_json::json!(true));
    // (A record may still squeeze into the free tail of a page now and then: not asserted.)
    let mark = s.log().len();
    stop_filling.store(true, std::sync::atomic::Ordering::Relaxed);
    filler.join().unwrap();
    // Records held in memory while full are journaled once there is room.
    wait_until(Duration::from_secs(20), "held records written", || {
        s.log()[mark..].contains("journal writable again")
    });
    wait_until(Duration::from_secs(20), "a healthy heartbeat again", || {
        let st = coll.status(id);
        st["journal"]["writable"] == serde_json::json!(true)
            && st["journal"]["held_records"] == serde_json::json!(0)
    });
    wait_until(Duration::from_secs(30), "everything shipped", || {
        let n = site.records(id).len();
        n >= journaled_at_full + 2 && coll.stored(id) >= n
    });
    s.stop();
    let recs = coll.check_arrived(&site, id);
    assert!(
        recs.iter().filter(|r| r.outcome == Outcome::Aired).count() >= 3,
        "airings during the full disk were recorded: {recs:#?}"
    );
}
