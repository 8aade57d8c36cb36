//! The real device path — player → cpal → ALSA — captured by ALSA's `file` plugin
//! (no sound card needed): what reaches ALSA equals the decoded files after gain, sample for
//! sample within one 16-bit step, for WAV, MP3, Ogg Vorbis and FLAC, played as one gapless session.

mod playout_support;

use loa::loudness::{LoudnessSettings, measure_file};
use loa::media::{DecodedStream, sha256_file};
use playout_support::*;

/// The samples a file should put on air at 44.1 kHz stereo: decoded, converted, times its gain.
fn expected(name: &str) -> Vec<f32> {
    let path = fixture(name);
    let m = measure_file(&path, &sha256_file(&path).unwrap()).unwrap();
    // Stereo output: a mono fixture airs as dual mono (see `FileLoudness::gain_db_on`).
    let gain = 10f64.powf(m.gain_db_on(&LoudnessSettings::default(), 2) / 20.0) as f32;
    let mut s = DecodedStream::open(&path, 44100, 2).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0f32; 4096];
    loop {
        let n = s.read(&mut buf);
        if n == 0 {
            break;
        }
        out.extend(buf[..n].iter().map(|x| x * gain));
    }
    out
}

#[test]
fn what_reaches_alsa_equals_the_decoded_files_after_gain_for_every_format() {
    let names = ["tone.wav", "tone.mp3", "tone.ogg", "tone.flac"];
    let mut want: Vec<f32> = Vec::new();
    for n in names {
        let e = expected(n);
        assert!(e.len() > 44100, "{n}: decoded too little");
        want.extend(e);
    }
    let cap = AlsaFileCapture::new();
    let cache = cap.home().join("cache");
    let files: Vec<String> = names
        .iter()
        .map(|n| fixture(n).display().to_string())
        .collect();
    let mut args: Vec<&str> = vec![
        "play",
        "--output",
        "device",
        "--rate",
        "44100",
        "--channels",
        "2",
        "--json",
        "--underrun-wait-ms",
        "2000",
        "--cache-dir",
    ];
    let cache_s = cache.display().to_string();
    args.push(&cache_s);
    args.extend(files.iter().map(|s| s.as_str()));
    let out = run_loa(&args, &[("HOME", cap.home())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loa play failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("--json output");
    assert_eq!(report["outcome"], "complete");
    assert_eq!(report["evidence"]["output"], "device");
    assert_eq!(
        report["evidence"]["frames"].as_u64(),
        Some((want.len() / 2) as u64)
    );

    let got = cap.samples();
    // Locate the signal: the file plugin writes silence around it.
    let want_i: Vec<i32> = want.iter().map(|x| (x * 32768.0).round() as i32).collect();
    let w0 = want_i
        .chunks_exact(2)
        .position(|f| f.iter().any(|x| x.abs() > 2))
        .unwrap();
    let g0 = got
        .chunks_exact(2)
        .position(|f| f.iter().any(|x| x.abs() > 2))
        .expect("no signal reached ALSA");
    assert!(g0 >= w0, "signal starts too early in the capture");
    let offset = (g0 - w0) * 2;
    assert!(
        got.len() >= offset + want_i.len(),
        "capture shorter than the session"
    );
    let mut worst = 0;
    for (i, (&w, &g)) in want_i.iter().zip(&got[offset..]).enumerate() {
        let d = (w.clamp(-32768, 32767) - i32::from(g)).abs();
        assert!(
            d <= 2,
            "sample {i} (frame {}): want {w}, ALSA got {g}",
            i / 2
        );
        worst = worst.max(d);
    }
    // Nothing before the session but silence, nothing after it but silence.
    assert!(
        got[..offset].iter().all(|&x| x.abs() <= 2),
        "noise before the session"
    );
    assert!(
        got[offset + want_i.len()..].iter().all(|&x| x.abs() <= 2),
        "noise after the session"
    );
    eprintln!("max difference: {worst} LSB over {} samples", want_i.len());
}

#[test]
fn an_absent_device_is_a_clear_error_not_a_panic() {
    let cap = AlsaFileCapture::new();
    let out = run_loa(
        &[
            "play",
            "--output",
            "device:no-such-card",
            &fixture("tone.wav").display().to_string(),
        ],
        &[("HOME", cap.home())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no-such-card") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
