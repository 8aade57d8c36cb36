//! Shared helpers of the station process tests: a site (schedules, audio, data directories) with
//! second-granularity schedules, `loa keygen`, and `loa station` as a child process.
#![allow(dead_code)]

#[path = "../tools/mod.rs"]
pub mod tools;

use loa::journal;
use loa::wire::AiringRecord;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const LOA: &str = env!("CARGO_BIN_EXE_loa");

/// A real WAV file of `secs` seconds of a 440 Hz tone.
pub fn wav(path: &Path, secs: f64) {
    wav_channels(path, secs, 1);
}

/// [`wav`] with `channels` identical channels.
pub fn wav_channels(path: &Path, secs: f64, channels: u16) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(secs * 16_000.0) as u32 {
        let x = (i as f64 * 440.0 * std::f64::consts::TAU / 16_000.0).sin() * 8_000.0;
        for _ in 0..channels {
            w.write_sample(x as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

pub struct Site {
    pub root: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        wav(&root.path().join("audio/tone1.wav"), 1.0);
        wav(&root.path().join("audio/tone4.wav"), 4.0);
        Self { root }
    }
    pub fn schedules(&self) -> PathBuf {
        self.root.path().join("schedules")
    }
    pub fn data(&self, id: &str) -> PathBuf {
        self.root.path().join("data").join(id)
    }
    pub fn schedule_path(&self, id: &str) -> PathBuf {
        self.schedules().join(format!("{id}.toml"))
    }
    /// Write a schedule whose one slot fires every `step_secs` seconds during the next few
    /// minutes (schedules may fire at most 1440 times a day, so the seconds field is confined to
    /// the current and next minutes, in the station's zone, UTC+7) playing `file`.
    pub fn write_schedule(&self, id: &str, step_secs: u32, file: &str) {
        self.write_schedule_with(id, step_secs, file, "");
    }
    /// [`Site::write_schedule`] with `extra` TOML top-level keys/tables (e.g. `[loudness]`)
    /// inserted before the programs.
    pub fn write_schedule_with(&self, id: &str, step_secs: u32, file: &str, extra: &str) {
        self.write_schedule_grace(id, step_secs, file, extra, 2);
    }
    /// [`Site::write_schedule_with`] with the slot's `grace_secs`.
    pub fn write_schedule_grace(
        &self,
        id: &str,
        step_secs: u32,
        file: &str,
        extra: &str,
        grace_secs: u32,
    ) {
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
{extra}

[[programs]]
id = "tin"
category = "news"
file = "{file}"

[[slots]]
id = "tick"
cron = [{cron}]
play = ["program:tin"]
start = "soft"
grace_secs = {grace_secs}
max_minutes = 1
"#
        );
        std::fs::write(self.schedule_path(id), text).unwrap();
    }
    /// `loa keygen`; returns the public key line's key.
    pub fn keygen(&self, id: &str) -> ed25519_dalek::VerifyingKey {
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
    pub fn start(&self, id: &str, collector: &str) -> Station {
        self.start_with(id, collector, &[])
    }
    /// Start `loa station` for `id` (output `null`, heartbeat every second) with `extra` flags;
    /// waits until its journal is open.
    pub fn start_with(&self, id: &str, collector: &str, extra: &[&str]) -> Station {
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
            .args(extra)
            .env("LOA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Station { child, log };
        s.wait_log("journal open", Duration::from_secs(60));
        s
    }
    pub fn records(&self, id: &str) -> Vec<AiringRecord> {
        journal::read_all(&journal::journal_dir(&self.data(id)))
            .unwrap()
            .iter()
            .map(|s| s.parse().unwrap())
            .collect()
    }
}

pub fn unique(p: PathBuf) -> PathBuf {
    let mut n = 0;
    loop {
        let c = p.with_extension(format!("{n}.log"));
        if !c.exists() {
            return c;
        }
        n += 1;
    }
}

pub struct Station {
    pub child: Child,
    pub log: PathBuf,
}

impl Station {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0);
    }
    /// SIGTERM and wait; asserts exit 0.
    pub fn stop(mut self) -> String {
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
    pub fn kill9(mut self) -> String {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        self.log()
    }
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
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

pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The journal is complete and consistent: chain verifies, seqs 1..n, no occurrence twice.
pub fn check_journal(
    site: &Site,
    id: &str,
    key: &ed25519_dalek::VerifyingKey,
) -> Vec<AiringRecord> {
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

/// A tmpfs of `size` mounted on `dir` for the test; unmounted on drop.
pub struct TinyFs(PathBuf);

impl TinyFs {
    pub fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new(tools::require_tool("mount", "mount"))
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "this test mounts a tiny tmpfs to fill the disk and needs root (CAP_SYS_ADMIN), as \
             in CI: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_path_buf())
    }

    /// Keep the file system full until the returned flag is set, then delete the filler: a
    /// thread appends to `filler` whenever the station frees a page (its temp files do).
    pub fn keep_full(
        &self,
    ) -> (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    ) {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let p = self.0.join("filler");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let mut f = std::fs::File::create(&p).unwrap();
        let th = std::thread::spawn(move || {
            let chunk = vec![0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                match f.write_all(&chunk) {
                    Ok(_) => {}
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            drop(f);
            std::fs::remove_file(&p).unwrap();
        });
        (stop, th)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// After station `id` stopped: every record its ledger says the collector acknowledged is in
/// the collector's database `c` exactly once, with the journal's hash; nothing else of it is
/// stored but journaled records, each once. Returns (journaled, acknowledged).
pub fn assert_stored_exactly_once(
    site: &Site,
    c: &loa::collector::db::Conn,
    id: &str,
) -> (u64, u64) {
    use loa::collector::db::params;
    let dir = loa::journal::journal_dir(&site.data(id));
    let journal = loa::journal::read_all(&dir).unwrap();
    let acked = loa::journal::AckLedger::new(&dir).load().unwrap();
    let mut stored_journaled = 0i64;
    for s in &journal {
        let r = s.parse().unwrap();
        let hashes: Vec<String> = c
            .query_map(
                "SELECT hash FROM records WHERE station = ?1 AND seq = ?2",
                params![id, r.seq as i64],
                |row| row.get(0),
            )
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if r.seq <= acked {
            assert_eq!(
                hashes.len(),
                1,
                "{id}: acknowledged seq {} stored {} times",
                r.seq,
                hashes.len()
            );
        }
        assert!(
            hashes.len() <= 1,
            "{id}: seq {} stored {} times",
            r.seq,
            hashes.len()
        );
        if let Some(h) = hashes.first() {
            assert_eq!(
                *h, s.hash,
                "{id} seq {}: the stored hash is the journal's",
                r.seq
            );
            stored_journaled += 1;
        }
    }
    let (n, d): (i64, i64) = c
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT seq) FROM records WHERE station = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(n, d, "{id}: a seq stored twice");
    assert_eq!(
        n, stored_journaled,
        "{id}: rows that are not journaled records"
    );
    (journal.len() as u64, acked)
}
