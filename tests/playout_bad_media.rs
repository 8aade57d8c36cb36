//! Files that make third-party decoders panic or that the player cannot honour, through the real
//! binary: `loa render` and `loa check` report them ("not decodable: why") and exit normally —
//! no hang, no exit 101.

mod playout_support;

use playout_support::*;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// A 16-bit PCM WAV whose header says `rate` Hz (0 makes symphonia panic).
fn wav_with_rate(path: &Path, rate: u32) {
    let data = vec![0x10u8; 16_000];
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&data);
    std::fs::write(path, v).unwrap();
}

/// Wait for `child` at most `limit`; kill it and fail if it hangs.
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "{what} hung for {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn render_of_a_rate_zero_wav_fails_the_item_with_the_reason_and_airs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("rate0.wav");
    wav_with_rate(&bad, 0);
    let out = dir.path().join("out.wav");
    let child = loa()
        .args(["render", "--json", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .arg("--out")
        .arg(&out)
        .arg(&bad)
        .arg(fixture("tone.wav"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_bounded(child, Duration::from_secs(60), "loa render");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(101), "panicked:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}\n{stderr}"));
    assert_eq!(report["outcome"], "partial", "{report}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("rate0.wav") && reason.contains("sample rate 0 Hz"),
        "{reason}"
    );
}

#[test]
fn check_of_a_schedule_naming_a_rate_zero_wav_reports_it_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("audio");
    std::fs::create_dir(&audio).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedules/audio/jingle.ogg"),
        audio.join("jingle.ogg"),
    )
    .unwrap();
    wav_with_rate(&audio.join("rate0.wav"), 0);
    let toml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/schedules/audio-undecodable/bad.toml"),
    )
    .unwrap()
    .replace("broken.ogg", "rate0.wav");
    let schedule = dir.path().join("bad.toml");
    std::fs::write(&schedule, toml).unwrap();
    let child = loa()
        .arg("check")
        .arg(&schedule)
        .arg("--audio")
        .arg(&audio)
        .args(["--today", "2026-11-27"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_bounded(child, Duration::from_secs(60), "loa check");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("slots[0].play[1]"))
        .unwrap_or_else(|| panic!("rate0.wav not reported:\n{stderr}"));
    assert!(line.contains("rate0.wav"), "{line}");
    assert!(stderr.contains("sample rate 0 Hz"), "{stderr}");
}
