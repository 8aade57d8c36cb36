//! Sound quality of `loa render` (the real binary) across sample rates and channel layouts:
//! band-limited resampling (images of a 16 kHz file ≥ 90 dB down at 48 kHz; 44.1 → 48 kHz within
//! 0.1 dB of sox's very-high-quality resampler from 20 Hz to 20 kHz), loudness measured on what
//! goes out (an 11 kHz tone lands on the target), a 5.1 file with speech only in the centre
//! rendered at the target loudness, a WAV written to a pipe played to its real end, an 8 kHz file
//! rendered to ±1 frame.

mod playout_support;

use playout_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sox(args: &[&str]) {
    let o = Command::new(tools::require_tool("sox", "sox"))
        .args(args)
        .output()
        .expect("sox");
    assert!(
        o.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Render `files` to a 32-bit float WAV at `rate` Hz × `channels`; the JSON report and samples.
fn render(
    dir: &Path,
    files: &[&Path],
    rate: u32,
    channels: u16,
    extra: &[&str],
) -> (Value, Vec<f32>) {
    let (report, samples, _) = render_logged(dir, files, rate, channels, extra);
    (report, samples)
}

/// [`render`], also returning what `loa` logged (stderr).
fn render_logged(
    dir: &Path,
    files: &[&Path],
    rate: u32,
    channels: u16,
    extra: &[&str],
) -> (Value, Vec<f32>, String) {
    let out = dir.join("out.wav");
    let mut c = loa();
    c.args(["render", "--json", "--rate", &rate.to_string()])
        .args(["--channels", &channels.to_string()])
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--out")
        .arg(&out)
        .args(extra)
        .args(files);
    let o = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let (spec, samples) = read_wav(&out);
    assert_eq!((spec.sample_rate, spec.channels), (rate, channels));
    (
        report,
        samples,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Amplitude (dBFS of a sine's peak) of `freq` Hz in one channel of `x` at `rate`, over exactly
/// one second starting at `from` (integer frequencies sit on exact bins: no window, no leakage).
fn tone_db(x: &[f32], channels: usize, ch: usize, rate: u32, from: usize, freq: f64) -> f64 {
    let n = rate as usize;
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let (mut re, mut im) = (0f64, 0f64);
    for k in 0..n {
        let v = f64::from(x[(from + k) * channels + ch]);
        re += v * (w * k as f64).cos();
        im -= v * (w * k as f64).sin();
    }
    let amp = 2.0 * (re * re + im * im).sqrt() / n as f64;
    20.0 * amp.max(1e-20).log10()
}

fn tones_file(dir: &Path, name: &str, rate: u32, freqs: &[u32], secs: u32) -> PathBuf {
    let path = dir.join(name);
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-r".into(),
        rate.to_string(),
        "-c".into(),
        "1".into(),
        "-b".into(),
        "32".into(),
        "-e".into(),
        "floating-point".into(),
        path.display().to_string(),
        "synth".into(),
        secs.to_string(),
    ];
    for f in freqs {
        args.extend(["sine".into(), f.to_string()]);
    }
    // Mix the generated channels into one at 0.05 each.
    args.extend(["remix".into(), "-".into(), "vol".into(), "0.05".into()]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    sox(&args);
    path
}

#[test]
fn a_16_khz_file_rendered_at_48_khz_has_its_images_90_db_down() {
    let dir = tempfile::tempdir().unwrap();
    let freqs = [1000u32, 3000, 6000, 7000];
    let file = tones_file(dir.path(), "in16k.wav", 16_000, &freqs, 3);
    let (report, out) = render(dir.path(), &[&file], 48_000, 1, &["--no-loudness"]);
    assert_eq!(report["outcome"], "complete", "{report}");
    let worst = freqs
        .iter()
        .map(|&f| {
            let tone = tone_db(&out, 1, 0, 48_000, 48_000, f64::from(f));
            let image = [16_000 - f, 16_000 + f, 32_000 - f, 32_000 + f]
                .iter()
                .filter(|&&i| i < 24_000)
                .map(|&i| tone_db(&out, 1, 0, 48_000, 48_000, f64::from(i)))
                .fold(f64::NEG_INFINITY, f64::max);
            tone - image
        })
        .fold(f64::INFINITY, f64::min);
    assert!(
        worst >= 90.0,
        "image rejection {worst:.1} dB (want ≥ 90 dB)"
    );
}

#[test]
fn a_44_1_khz_file_rendered_at_48_khz_matches_sox_within_0_1_db_from_20_hz_to_20_khz() {
    let dir = tempfile::tempdir().unwrap();
    let freqs = [
        20u32, 100, 1000, 5000, 10_000, 11_025, 15_000, 18_000, 19_000, 20_000,
    ];
    let file = tones_file(dir.path(), "in44.wav", 44_100, &freqs, 3);
    let (report, out) = render(dir.path(), &[&file], 48_000, 1, &["--no-loudness"]);
    assert_eq!(report["outcome"], "complete", "{report}");
    let reference = dir.path().join("sox.wav");
    sox(&[
        file.to_str().unwrap(),
        "-b",
        "32",
        "-e",
        "floating-point",
        reference.to_str().unwrap(),
        "rate",
        "-v",
        "48000",
    ]);
    let (_, sox_out) = read_wav(&reference);
    for f in freqs {
        let ours = tone_db(&out, 1, 0, 48_000, 48_000, f64::from(f));
        let theirs = tone_db(&sox_out, 1, 0, 48_000, 48_000, f64::from(f));
        assert!(
            (ours - theirs).abs() <= 0.1,
            "{f} Hz: loa {ours:.3} dB, sox {theirs:.3} dB"
        );
    }
}

/// Integrated loudness of interleaved output.
fn lufs(samples: &[f32], channels: u32, rate: u32) -> f64 {
    let mut m = ebur128::EbuR128::new(channels, rate, ebur128::Mode::I).unwrap();
    m.add_frames_f32(samples).unwrap();
    m.loudness_global().unwrap()
}

#[test]
fn an_11_khz_tone_at_44_1_khz_is_rendered_at_the_target_loudness() {
    let dir = tempfile::tempdir().unwrap();
    let file = tones_file(dir.path(), "hf.wav", 44_100, &[11_000], 4);
    let (report, out) = render(dir.path(), &[&file], 48_000, 2, &[]);
    assert_eq!(report["outcome"], "complete", "{report}");
    let got = lufs(&out, 2, 48_000);
    assert!(
        (got - -23.0).abs() <= 0.2,
        "rendered at {got:.2} LUFS (target -23)"
    );
}

#[test]
fn a_5_1_file_with_speech_only_in_the_centre_renders_at_the_target_loudness() {
    let dir = tempfile::tempdir().unwrap();
    let speech = fixture("tone.wav");
    // FL FR FC LFE BL BR: the programme only in FC.
    let five_one = dir.path().join("centre.wav");
    let silent = dir.path().join("silent.wav");
    sox(&[
        speech.to_str().unwrap(),
        silent.to_str().unwrap(),
        "vol",
        "0",
    ]);
    let s = silent.to_str().unwrap();
    sox(&[
        "-M",
        s,
        s,
        speech.to_str().unwrap(),
        s,
        s,
        s,
        five_one.to_str().unwrap(),
    ]);
    let (report, out, log) = render_logged(dir.path(), &[&five_one], 48_000, 2, &[]);
    assert_eq!(report["outcome"], "complete", "{report}");
    let got = lufs(&out, 2, 48_000);
    assert!(
        (got - -23.0).abs() <= 0.5,
        "rendered at {got:.2} LUFS (target -23)"
    );
    // Both sides carry the centre.
    let (l, r): (f32, f32) = out.chunks_exact(2).fold((0.0, 0.0), |(l, r), f| {
        (l.max(f[0].abs()), r.max(f[1].abs()))
    });
    assert!(l > 0.01 && (l - r).abs() < 1e-4, "left {l}, right {r}");
    // The item-started line names the conversion and the downmix.
    let line = log
        .lines()
        .find(|l| l.contains("item started"))
        .unwrap_or_else(|| panic!("no item-started line:\n{log}"));
    assert!(line.contains("BS.775") && line.contains("6 ch"), "{line}");
}

#[test]
fn a_wav_written_to_a_pipe_plays_to_its_real_end() {
    let dir = tempfile::tempdir().unwrap();
    // What `ffmpeg … -f wav -` writes: RIFF and data sizes 0xFFFFFFFF.
    let mut bytes = std::fs::read(fixture("tone.wav")).unwrap();
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk");
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let piped = dir.path().join("piped.wav");
    std::fs::write(&piped, &bytes).unwrap();
    let (report, out) = render(dir.path(), &[&piped], 22_050, 1, &["--no-loudness"]);
    assert_eq!(report["outcome"], "complete", "{report}");
    // tone.wav: 1.5 s at 22.05 kHz mono.
    assert_eq!(out.len(), 33_075, "frames");
    let facts = loa::media::probe(&piped).unwrap();
    assert_eq!(facts.frames, 33_075);
}

#[test]
fn an_8_khz_file_renders_to_within_one_frame() {
    let dir = tempfile::tempdir().unwrap();
    let file = tones_file(dir.path(), "in8k.wav", 8_000, &[440], 1);
    let (report, out) = render(dir.path(), &[&file], 48_000, 2, &["--no-loudness"]);
    assert_eq!(report["outcome"], "complete", "{report}");
    let frames = (out.len() / 2) as i64;
    assert!(
        (frames - 48_000).abs() <= 1,
        "{frames} frames for 1 s at 8 kHz"
    );
}
