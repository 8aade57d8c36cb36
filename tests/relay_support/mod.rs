//! Test harness for the relay: a real Icecast server (the Debian `icecast2` binary) on a free
//! 127.0.0.1 port in a temp dir, a real source client feeding it (loa's own, paced in real time),
//! test audio made with `sox`/`lame`, and a puller that drains a relay at real-time pace like a
//! sound card would.
//!
//! Missing binaries make the tests FAIL with a message naming the Debian package
//! ([`tools::require_tool`]).

#![allow(dead_code)]

#[path = "../tools/mod.rs"]
pub mod tools;

use loa::relay::source_client::{IcecastSource, Pacer};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const SOURCE_PASSWORD: &str = "srcpw";
pub const ADMIN_PASSWORD: &str = "adminpw";
pub const RATE: usize = 44_100;
/// The pace of a CBR 128 kbit/s MP3 (what [`tone_mp3`] writes), in bytes per second.
pub const MP3_BYTES_PER_SEC: f64 = 16_000.0;
/// The city's mount, as the relay tests feed and relay it.
pub const CITY_MOUNT: &str = "city.mp3";

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A running icecast2, killed on drop.
pub struct Icecast {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Icecast {
    pub fn start() -> Self {
        tools::require_tool("icecast2", "icecast2");
        let dir = tempfile::tempdir().expect("temp dir");
        // icecast drops to `nobody` (it refuses to run as root): everything must be readable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod temp dir");
        let port = free_port();
        let config = format!(
            r#"<icecast>
  <limits><clients>50</clients><sources>5</sources><source-timeout>10</source-timeout>
    <burst-size>65536</burst-size></limits>
  <authentication><source-password>{SOURCE_PASSWORD}</source-password>
    <admin-user>admin</admin-user><admin-password>{ADMIN_PASSWORD}</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <fileserve>0</fileserve>
  <paths><logdir>{dir}</logdir><webroot>/usr/share/icecast2/web</webroot>
    <adminroot>/usr/share/icecast2/admin</adminroot></paths>
  <logging><errorlog>-</errorlog><loglevel>2</loglevel></logging>
  <security><chroot>0</chroot><changeowner><user>nobody</user><group>nogroup</group></changeowner></security>
</icecast>
"#,
            dir = dir.path().display()
        );
        let cfg = dir.path().join("icecast.xml");
        std::fs::write(&cfg, config).expect("write icecast.xml");
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let log = std::fs::File::create(dir.path().join("icecast.log")).expect("log file");
        let child = Command::new("icecast2")
            .arg("-c")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn icecast2");
        let me = Self { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "icecast2 did not listen on {port}: {}",
                std::fs::read_to_string(me.dir.path().join("icecast.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    pub fn source_url(&self, mount: &str) -> String {
        format!(
            "http://source:{SOURCE_PASSWORD}@127.0.0.1:{}/{mount}",
            self.port
        )
    }

    /// A feeder sending `mp3` (CBR 128 kbit/s, [`tone_mp3`]) to [`CITY_MOUNT`] in real time.
    pub fn feed_city(&self, mp3: &Path) -> Feeder {
        Feeder::start(
            &self.source_url(CITY_MOUNT),
            mp3,
            "audio/mpeg",
            MP3_BYTES_PER_SEC,
        )
    }

    pub fn listen_url(&self, mount: &str) -> String {
        format!("http://127.0.0.1:{}/{mount}", self.port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://admin:{ADMIN_PASSWORD}@127.0.0.1:{}/", self.port)
    }
}

impl Drop for Icecast {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A feeder: streams a file to a mount in a loop, paced in real time, until killed.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feeder {
    /// Start streaming `file` (`content_type`) at `bytes_per_sec` to `source_url`. Waits until the
    /// server accepted the source.
    pub fn start(source_url: &str, file: &Path, content_type: &str, bytes_per_sec: f64) -> Self {
        let bytes = std::fs::read(file).expect("read feeder file");
        let mut source = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while source.is_none() {
            match IcecastSource::connect(source_url, content_type) {
                Ok(s) => source = Some(s),
                // The mount may still be held by a source that just died.
                Err(e) => {
                    assert!(Instant::now() < deadline, "feeder cannot connect: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let mut source = source.expect("connected");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let paused = Arc::new(AtomicBool::new(false));
        let paused2 = Arc::clone(&paused);
        // Ogg is paced by its pages' granule positions (audio time), MP3 (CBR) by bytes.
        let pages = if content_type.contains("ogg") {
            ogg_pages(&bytes)
        } else {
            None
        };
        let thread = std::thread::spawn(move || {
            let mut pacer = Pacer::new(match &pages {
                Some((rate, _, _)) => f64::from(*rate),
                None => bytes_per_sec,
            });
            let mut sent = 0u64;
            let mut loops = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let units: Vec<(&[u8], u64)> = match &pages {
                    // (page, when it is due in samples), looping continues the timeline.
                    Some((_, list, total)) => list
                        .iter()
                        .map(|(r, due)| (&bytes[r.clone()], loops * total + due))
                        .collect(),
                    None => bytes
                        .chunks(2048)
                        .scan(sent, |acc, c| {
                            let due = *acc;
                            *acc += c.len() as u64;
                            Some((c, due))
                        })
                        .collect(),
                };
                for (chunk, due) in units {
                    if stop2.load(Ordering::Relaxed) {
                        return;
                    }
                    if paused2.load(Ordering::Relaxed) {
                        // Stalled: connection open, nothing sent; resume at real-time pace
                        // (MP3 only: the byte count restarts).
                        while paused2.load(Ordering::Relaxed) && !stop2.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        pacer = Pacer::new(bytes_per_sec);
                        sent = 0;
                    }
                    if pages.is_none() {
                        pacer.wait(sent);
                    } else {
                        pacer.wait(due);
                    }
                    if source.send(chunk).is_err() {
                        return;
                    }
                    sent += chunk.len() as u64;
                }
                loops += 1;
            }
        });
        Self {
            stop,
            paused,
            thread: Some(thread),
        }
    }

    /// Stall (keep the connection, send nothing) or resume.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Kill the feeder: its connection closes as a crashed encoder's would.
    pub fn kill(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run audio tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CBR 128 kbit/s MP3 of a sine tone (`vol` 0 gives digital silence), stereo 44.1 kHz.
pub fn tone_mp3(dir: &Path, name: &str, freq_hz: u32, vol: f32, secs: u32) -> PathBuf {
    tools::require_tool("sox", "sox");
    tools::require_tool("lame", "lame");
    let wav = dir.join(format!("{name}.wav"));
    let mp3 = dir.join(format!("{name}.mp3"));
    run(Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2", "-b", "16"])
        .arg(&wav)
        .args([
            "synth",
            &secs.to_string(),
            "sine",
            &freq_hz.to_string(),
            "vol",
            &vol.to_string(),
        ]));
    run(Command::new("lame")
        .args(["--quiet", "--cbr", "-b", "128"])
        .arg(&wav)
        .arg(&mp3));
    mp3
}

/// An Ogg Vorbis file of a sine tone, mono 48 kHz (exercises resampling and remixing).
pub fn tone_ogg(dir: &Path, name: &str, freq_hz: u32, vol: f32, secs: u32) -> PathBuf {
    tools::require_tool("sox", "sox");
    tools::require_tool("oggenc", "vorbis-tools");
    let wav = dir.join(format!("{name}.wav"));
    let ogg = dir.join(format!("{name}.ogg"));
    run(Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args([
            "synth",
            &secs.to_string(),
            "sine",
            &freq_hz.to_string(),
            "vol",
            &vol.to_string(),
        ]));
    run(Command::new("oggenc")
        .args(["-Q", "-q", "4", "-o"])
        .arg(&ogg)
        .arg(&wav));
    ogg
}

/// A WAV tone for the fallback playlist.
pub fn tone_wav(dir: &Path, name: &str, freq_hz: u32, vol: f32, secs: u32) -> PathBuf {
    tools::require_tool("sox", "sox");
    let wav = dir.join(format!("{name}.wav"));
    run(Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2", "-b", "16"])
        .arg(&wav)
        .args([
            "synth",
            &secs.to_string(),
            "sine",
            &freq_hz.to_string(),
            "vol",
            &vol.to_string(),
        ]));
    wav
}

/// Drain `source` like a sound card: 10 ms blocks, never ahead of the wall clock. Returns the
/// samples and the wall-clock span the pull took.
pub fn pull_paced(source: impl Iterator<Item = f32>) -> (Vec<f32>, Duration) {
    let mut source = source;
    let start = Instant::now();
    let mut out = Vec::new();
    let block = 441 * 2;
    loop {
        let due = start + Duration::from_secs_f64((out.len() / 2) as f64 / RATE as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let before = out.len();
        out.extend(source.by_ref().take(block));
        if out.len() - before < block {
            break;
        }
    }
    (out, start.elapsed())
}

/// Power of `freq_hz` in the left channel of an interleaved stereo block (Goertzel).
pub fn tone_power(stereo: &[f32], freq_hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq_hz / RATE as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut n = 0usize;
    for frame in stereo.chunks_exact(2) {
        let s = f64::from(frame[0]) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
        n += 1;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    p / (n.max(1) as f64).powi(2)
}

/// What each 100 ms block of the output holds: `Some(freq)` of the dominant candidate tone when
/// it carries most of the block's energy, `None` for silence or neither.
pub fn classify(stereo: &[f32], candidates: &[f64]) -> Vec<Option<f64>> {
    stereo
        .chunks(RATE / 10 * 2)
        .map(|b| {
            let energy: f64 = b
                .iter()
                .step_by(2)
                .map(|&s| f64::from(s).powi(2))
                .sum::<f64>()
                / (b.len() / 2) as f64;
            if energy < 1e-6 {
                return None;
            }
            candidates
                .iter()
                .map(|&f| (f, tone_power(b, f)))
                // A pure tone of amplitude A has Goertzel power A²/4 and mean energy A²/2.
                .find(|&(_, p)| p * 2.0 > energy * 0.8)
                .map(|(f, _)| f)
        })
        .collect()
}

/// RMS of the left channel in dBFS.
pub fn rms_dbfs(stereo: &[f32]) -> f64 {
    let n = (stereo.len() / 2).max(1) as f64;
    let e: f64 = stereo
        .iter()
        .step_by(2)
        .map(|&s| f64::from(s).powi(2))
        .sum::<f64>()
        / n;
    10.0 * e.log10()
}

/// Like [`pull_paced`] but discards the samples (for long runs); returns how many were pulled.
pub fn pull_paced_count(source: impl Iterator<Item = f32>) -> usize {
    let mut source = source;
    let start = Instant::now();
    let mut n = 0usize;
    let block = 441 * 2;
    loop {
        let due = start + Duration::from_secs_f64((n / 2) as f64 / RATE as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let got = source.by_ref().take(block).count();
        n += got;
        if got < block {
            return n;
        }
    }
}

/// An Ogg Vorbis file's pages with the sample at which each is due (the previous page's granule
/// position), its sample rate, and its total length in samples. None if it does not parse.
#[allow(clippy::type_complexity)]
fn ogg_pages(b: &[u8]) -> Option<(u32, Vec<(std::ops::Range<usize>, u64)>, u64)> {
    let mut pages = Vec::new();
    let mut at = 0usize;
    let mut prev_granule = 0u64;
    let mut rate = None;
    while at + 27 <= b.len() {
        if &b[at..at + 4] != b"OggS" {
            return None;
        }
        let granule = u64::from_le_bytes(b[at + 6..at + 14].try_into().ok()?);
        let nsegs = usize::from(b[at + 26]);
        let table = b.get(at + 27..at + 27 + nsegs)?;
        let body = at + 27 + nsegs;
        let len = 27 + nsegs + table.iter().map(|&x| usize::from(x)).sum::<usize>();
        if rate.is_none() && b.get(body + 1..body + 7) == Some(b"vorbis") {
            rate = Some(u32::from_le_bytes(
                b.get(body + 12..body + 16)?.try_into().ok()?,
            ));
        }
        pages.push((at..at + len, prev_granule));
        if granule != u64::MAX && granule > prev_granule {
            prev_granule = granule;
        }
        at += len;
    }
    Some((rate?, pages, prev_granule))
}
