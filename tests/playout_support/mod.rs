//! Helpers shared by the playout tests: fixtures, running the real `loa` binary with a headless
//! ALSA or PulseAudio environment, reading captures.
#![allow(dead_code)]

#[path = "../tools/mod.rs"]
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

pub fn loa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loa"))
}

/// Run `loa` with `args`, an isolated cache and `env`; return its output.
pub fn run_loa(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = loa();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c.output().expect("cannot run the loa binary")
}

/// A temp dir whose `.asoundrc` sends ALSA's default device to the `file` plugin, which writes
/// raw S16_LE 44.1 kHz stereo to `out.raw` (no clock: ~100× real time).
pub struct AlsaFileCapture {
    pub dir: tempfile::TempDir,
}

impl AlsaFileCapture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = dir.path().join("out.raw");
        let rc = format!(
            "pcm.!default {{ type plug; slave {{ pcm \"capfile\"; format S16_LE; rate 44100; channels 2 }} }}\n\
             pcm.capfile {{ type file; slave.pcm \"null\"; file \"{}\"; format \"raw\" }}\n",
            raw.display()
        );
        std::fs::write(dir.path().join(".asoundrc"), rc).expect("write .asoundrc");
        Self { dir }
    }
    pub fn home(&self) -> &Path {
        self.dir.path()
    }
    pub fn samples(&self) -> Vec<i16> {
        let bytes =
            std::fs::read(self.dir.path().join("out.raw")).expect("ALSA file plugin wrote nothing");
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }
}

/// Read a WAV (float or int) as f32 samples, with its spec.
pub fn read_wav(path: &Path) -> (hound::WavSpec, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|x| x.expect("sample")).collect(),
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|x| x.expect("sample") as f32 / scale)
                .collect()
        }
    };
    (spec, samples)
}

/// A PulseAudio daemon of our own with a null sink `cap` at 44.1 kHz stereo, in a temp runtime
/// dir; killed on drop. Fails the test with a clear message when pulseaudio is not installed.
pub struct Pulse {
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Pulse {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["runtime", "home", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let pulseaudio = tools::require_tool("pulseaudio", "pulseaudio");
        tools::require_tool("pactl", "pulseaudio-utils");
        let mut c = Command::new(pulseaudio);
        c.args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--system=false",
            "-L",
            "module-null-sink sink_name=cap rate=44100 channels=2",
            "-L",
            "module-native-protocol-unix",
        ]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        for (k, v) in Self::env_of(dir.path()) {
            c.env(k, v);
        }
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `pulseaudio`: {e}"));
        let p = Self { dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = p
                .cmd("pactl")
                .args(["info"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if ok.is_ok_and(|s| s.success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pulseaudio did not come up within 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn env_of(dir: &Path) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("PULSE_RUNTIME_PATH", dir.join("runtime")),
            ("XDG_RUNTIME_DIR", dir.join("runtime")),
            ("HOME", dir.join("home")),
            ("PULSE_STATE_PATH", dir.join("state")),
            ("XDG_CONFIG_HOME", dir.join("home")),
        ]
    }

    /// The environment a client (loa, parec) needs to reach this daemon.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        Self::env_of(self.dir.path())
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// Start capturing the sink's monitor as raw S16_LE 44.1 kHz stereo into `path`.
    pub fn capture(&self, path: &Path) -> Child {
        tools::require_tool("parec", "pulseaudio-utils");
        let f = std::fs::File::create(path).expect("capture file");
        self.cmd("parec")
            .args([
                "-d",
                "cap.monitor",
                "--raw",
                "--format=s16le",
                "--rate=44100",
                "--channels=2",
                "--latency-msec=10",
            ])
            .stdout(f)
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start parec")
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stop(mut child: Child) {
    // parec flushes on SIGTERM-less kill only partially; SIGINT lets it finish its write.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let _ = child.wait();
}

pub fn read_s16(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).expect("capture");
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Index of the first frame with any sample of magnitude > `thr`.
pub fn first_loud_frame(samples: &[f32], channels: usize, thr: f32) -> Option<usize> {
    samples
        .chunks_exact(channels)
        .position(|f| f.iter().any(|x| x.abs() > thr))
}

/// Longest run (frames) of frames below `thr` within `samples[from..to]` (frames).
pub fn longest_quiet_run(samples: &[f32], channels: usize, thr: f32) -> usize {
    let mut best = 0;
    let mut run = 0;
    for f in samples.chunks_exact(channels) {
        if f.iter().all(|x| x.abs() < thr) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}
