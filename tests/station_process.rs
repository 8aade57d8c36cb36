//! The station daemon as a real process (`loa station`), with a real HTTP collector on loopback
//! (the minimal test collector), second-granularity schedules and the `timer` output.
//! Each test takes 10–25 s of wall time: they wait for real airings.

#[path = "shipper_testcollector.rs"]
mod tc;

use loa::journal::{self, AckLedger};
use loa::wire::{AiringRecord, Outcome};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tc::TestCollector;

const LOA: &str = env!("CARGO_BIN_EXE_loa");

/// A real WAV file of `secs` seconds of a 440 Hz tone.
fn wav(path: &Path, secs: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(secs * 16_000.0) as u32 {
        let x = (i as f64 * 440.0 * std::f64::consts::TAU / 16_000.0).sin() * 8_000.0;
        w.write_sample(x as i16).unwrap();
    }
    w.finalize().unwrap();
}

struct Site {
    root: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        wav(&root.path().join("audio/tone1.wav"), 1.0);
        wav(&root.path().join("audio/tone4.wav"), 4.0);
        Self { root }
    }
    fn schedules(&self) -> PathBuf {
        self.root.path().join("schedules")
    }
    fn data(&self, id: &str) -> PathBuf {
        self.root.path().join("data").join(id)
    }
    fn schedule_path(&self, id: &str) -> PathBuf {
        self.schedules().join(format!("{id}.toml"))
    }
    /// Write a schedule whose one slot fires every `step_secs` seconds during the next few
    /// minutes (schedules may fire at most 1440 times a day, so the seconds field is confined to
    /// the current and next minutes, in the station's zone, UTC+7) playing `file`.
    fn write_schedule(&self, id: &str, step_secs: u32, file: &str) {
        use chrono::Timelike;
        let now = chrono::Utc::now() + chrono::Duration::hours(7);
        let cron = (0..4)
            .map(|i| {
                let t = now + chrono::Duration::minutes(i);
                format!("\"*/{step_secs} {} {} * * *\"", t.minute(), t.hour())
            })
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::create_dir_all(self.schedules()).unwrap();
        let text = format!(
            r#"id = "{id}"
name = "Test {id}"
kind = "ward"
area_code = "21100"

[[programs]]
id = "tin"
category = "news"
file = "{file}"

[[slots]]
id = "tick"
cron = [{cron}]
play = ["program:tin"]
start = "soft"
grace_secs = 2
max_minutes = 1
"#
        );
        std::fs::write(self.schedule_path(id), text).unwrap();
    }
    /// `loa keygen`; returns the public key line's key.
    fn keygen(&self, id: &str) -> ed25519_dalek::VerifyingKey {
        let out = Command::new(LOA)
            .args(["keygen", "--station", id, "--dir"])
            .arg(self.data(id))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some(id));
        loa::wire::decode_public_key(parts.next().unwrap()).unwrap()
    }
    fn start(&self, id: &str, collector: &str) -> Station {
        let log = self
            .root
            .path()
            .join(format!("{id}.{}.log", Instant::now().elapsed().as_nanos()));
        let log = unique(log);
        let child = Command::new(LOA)
            .args([
                "station",
                "--station",
                id,
                "--output",
                "null",
                "--heartbeat-secs",
                "1",
            ])
            .arg("--schedules")
            .arg(self.schedules())
            .arg("--audio")
            .arg(self.root.path().join("audio"))
            .arg("--data")
            .arg(self.data(id))
            .arg("--collector")
            .arg(collector)
            .env("LOA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Station { child, log };
        s.wait_log("journal open", Duration::from_secs(10));
        s
    }
    fn records(&self, id: &str) -> Vec<AiringRecord> {
        journal::read_all(&journal::journal_dir(&self.data(id)))
            .unwrap()
            .iter()
            .map(|s| s.parse().unwrap())
            .collect()
    }
}

fn unique(p: PathBuf) -> PathBuf {
    let mut n = 0;
    loop {
        let c = p.with_extension(format!("{n}.log"));
        if !c.exists() {
            return c;
        }
        n += 1;
    }
}

struct Station {
    child: Child,
    log: PathBuf,
}

impl Station {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0);
    }
    /// SIGTERM and wait; asserts exit 0.
    fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "exit {st:?}\n{}", self.log());
                return self.log();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "did not stop\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn kill9(mut self) -> String {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        self.log()
    }
    fn wait_log(&self, needle: &str, timeout: Duration) {
        let t0 = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                t0.elapsed() < timeout,
                "no {needle:?} in log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Coll {
    c: TestCollector,
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn collector() -> Coll {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = TestCollector::new();
    let url = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        c.serve(l);
        format!("http://127.0.0.1:{port}")
    });
    Coll { c, url, _rt: rt }
}

fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The journal is complete and consistent: chain verifies, seqs 1..n, no occurrence twice.
fn check_journal(site: &Site, id: &str, key: &ed25519_dalek::VerifyingKey) -> Vec<AiringRecord> {
    let signed = journal::read_all(&journal::journal_dir(&site.data(id))).unwrap();
    journal::verify_chain(&signed, key).unwrap();
    let recs: Vec<AiringRecord> = signed.iter().map(|s| s.parse().unwrap()).collect();
    let mut seen = HashSet::new();
    for r in &recs {
        let occ = r.occurrence.clone().unwrap();
        assert!(seen.insert(occ.clone()), "occurrence {occ} recorded twice");
    }
    recs
}

#[test]
fn two_stations_air_and_every_record_arrives_once() {
    let site = Site::new();
    let coll = collector();
    let ids = ["phuong-a", "phuong-b"];
    let mut keys = Vec::new();
    for id in ids {
        site.write_schedule(id, 3, "tone1.wav");
        let k = site.keygen(id);
        coll.c.register(id, k);
        keys.push(k);
    }
    let stations: Vec<_> = ids.iter().map(|id| site.start(id, &coll.url)).collect();
    wait_until(
        Duration::from_secs(30),
        "three aired records at each station",
        || {
            ids.iter().all(|id| {
                site.records(id)
                    .iter()
                    .filter(|r| r.outcome == Outcome::Aired)
                    .count()
                    >= 3
            })
        },
    );
    for s in stations {
        s.stop();
    }
    for (id, key) in ids.iter().zip(&keys) {
        let recs = check_journal(&site, id, key);
        let n = recs.len() as u64;
        assert_eq!(
            coll.c.log_of(id),
            (1..=n).collect::<Vec<_>>(),
            "{id}: every record once, in order"
        );
        assert_eq!(
            AckLedger::new(&journal::journal_dir(&site.data(id)))
                .load()
                .unwrap(),
            n
        );
        for r in recs.iter().filter(|r| r.outcome == Outcome::Aired) {
            assert!(r.start_offset_ms.unwrap().abs() < 1_500, "{r:?}");
            assert_eq!(r.items.len(), 1);
            assert_eq!(r.items[0].sha256.len(), 64);
            assert!(r.evidence.as_ref().is_some_and(|e| e.frames > 0), "{r:?}");
        }
    }
    assert!(!coll.c.lock().heartbeats.is_empty());
}

#[test]
fn kill_9_during_an_airing_then_restart_records_it_partial_once() {
    let site = Site::new();
    let coll = collector();
    let id = "phuong-crash";
    site.write_schedule(id, 6, "tone4.wav");
    let key = site.keygen(id);
    coll.c.register(id, key);
    let s = site.start(id, &coll.url);
    s.wait_log("on air", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    let s = site.start(id, &coll.url);
    wait_until(
        Duration::from_secs(20),
        "an airing after the restart",
        || site.records(id).iter().any(|r| r.outcome == Outcome::Aired),
    );
    let log = s.stop();
    let recs = check_journal(&site, id, &key);
    let partial: Vec<_> = recs
        .iter()
        .filter(|r| r.outcome == Outcome::Partial)
        .collect();
    assert!(
        partial.iter().any(|r| r
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("crash or power loss")),
        "{recs:#?}\n{log}"
    );
    let n = recs.len() as u64;
    assert_eq!(coll.c.log_of(id), (1..=n).collect::<Vec<_>>());
}

#[test]
fn kill_9_while_shipping_a_backlog_then_everything_arrives_once() {
    let site = Site::new();
    let id = "phuong-ship";
    site.write_schedule(id, 2, "tone1.wav");
    let key = site.keygen(id);
    // Collector down: records pile up.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let s = site.start(id, &dead);
    wait_until(Duration::from_secs(20), "a backlog of 3", || {
        site.records(id).len() >= 3
    });
    s.kill9();
    // Collector up; the station restarts and ships; kill it again mid-way, restart once more.
    let coll = collector();
    coll.c.register(id, key);
    let s = site.start(id, &coll.url);
    wait_until(Duration::from_secs(20), "first shipment", || {
        !coll.c.log_of(id).is_empty()
    });
    s.kill9();
    let s = site.start(id, &coll.url);
    wait_until(Duration::from_secs(20), "all shipped", || {
        let n = site.records(id).len() as u64;
        coll.c.log_of(id).len() as u64 >= n && n > 3
    });
    s.stop();
    let recs = check_journal(&site, id, &key);
    let n = recs.len() as u64;
    assert_eq!(coll.c.log_of(id), (1..=n).collect::<Vec<_>>());
}

#[test]
fn invalid_edit_while_running_keeps_the_old_schedule_airing() {
    let site = Site::new();
    let coll = collector();
    let id = "phuong-edit";
    site.write_schedule(id, 2, "tone1.wav");
    let key = site.keygen(id);
    coll.c.register(id, key);
    let s = site.start(id, &coll.url);
    wait_until(Duration::from_secs(15), "one airing", || {
        !site.records(id).is_empty()
    });
    std::fs::write(
        site.schedule_path(id),
        "id = \"phuong-edit\"\nkind = \"nonsense\"\n",
    )
    .unwrap();
    s.wait_log("schedule reload refused", Duration::from_secs(15));
    s.signal(libc::SIGHUP);
    s.wait_log("why=\"SIGHUP\"", Duration::from_secs(10));
    let before = site.records(id).len();
    wait_until(Duration::from_secs(15), "airings go on", || {
        site.records(id).len() >= before + 2
    });
    let log = s.stop();
    assert!(log.contains("keeping the running schedule"), "{log}");
    check_journal(&site, id, &key);
}

#[test]
fn refuses_to_start_on_schedule_errors_printing_them() {
    let site = Site::new();
    std::fs::create_dir_all(site.schedules()).unwrap();
    std::fs::write(site.schedule_path("bad"), "id = \"bad\"\nkind = 3\n").unwrap();
    site.keygen("bad");
    let out = Command::new(LOA)
        .args(["station", "--station", "bad", "--output", "timer"])
        .arg("--schedules")
        .arg(site.schedules())
        .arg("--data")
        .arg(site.data("bad"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:"), "{err}");
}
