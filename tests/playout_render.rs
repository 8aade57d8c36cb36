//! `loa render` (the real binary): gapless sessions of mixed formats, rates and channel counts,
//! loudness on, and bad files reported with their reason.

mod playout_support;

use playout_support::*;
use serde_json::Value;

fn render(
    files: &[&str],
    extra: &[&str],
) -> (Value, Option<(hound::WavSpec, Vec<f32>)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wav");
    let cache = dir.path().join("cache");
    let paths: Vec<String> = files
        .iter()
        .map(|f| fixture(f).display().to_string())
        .collect();
    let mut args = vec![
        "render".to_string(),
        "--json".into(),
        "--out".into(),
        out.display().to_string(),
        "--cache-dir".into(),
        cache.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(paths);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = run_loa(&args, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let wav = out.exists().then(|| read_wav(&out));
    (report, wav, dir)
}

/// Frames a file decodes to at `rate`, per `loa`'s own decoder.
fn frames_at(name: &str, rate: u32) -> u64 {
    let mut s = loa::media::DecodedStream::open(&fixture(name), rate, 2).unwrap();
    let mut buf = vec![0f32; 8192];
    while s.read(&mut buf) > 0 {}
    s.frames_read()
}

#[test]
fn three_item_session_is_gapless_and_as_long_as_its_items() {
    let items = ["tone.mp3", "tone.ogg", "tone.wav"]; // 48 kHz mono, 32 kHz stereo, 22.05 kHz mono
    let (report, wav, _dir) = render(&items, &["--rate", "48000", "--channels", "2"]);
    assert_eq!(report["outcome"], "complete", "{report}");
    let (spec, samples) = wav.expect("render wrote no WAV");
    assert_eq!((spec.sample_rate, spec.channels), (48000, 2));
    let frames = (samples.len() / 2) as i64;
    // Sum of the items' own lengths at their own rates, converted: ±1 frame per resampled item.
    let ideal: f64 = items
        .iter()
        .map(|n| {
            let f = loa::media::probe(&fixture(n)).unwrap();
            f.frames as f64 * 48000.0 / f64::from(f.sample_rate)
        })
        .sum();
    assert!(
        (frames as f64 - ideal).abs() <= 2.0 + 1e-9,
        "{frames} frames vs {ideal} expected"
    );
    assert_eq!(report["evidence"]["frames"].as_i64(), Some(frames));
    // Per-item aired frames sum to the total; each matches the item decoded alone.
    let mut at = 0usize;
    let mut joins = Vec::new();
    for (i, n) in items.iter().enumerate() {
        let f = frames_at(n, 48000);
        let aired = report["items"][i]["aired_secs"].as_f64().unwrap();
        assert!(
            (aired * 48000.0 - f as f64).abs() < 0.5,
            "{n}: aired {aired}"
        );
        at += f as usize;
        joins.push(at);
    }
    assert_eq!(at as i64, frames);
    // No silence at the joins: tones with no quiet moment, so any run of near-silence longer
    // than a zero crossing (10 ms) would be inserted silence.
    for &j in &joins[..2] {
        let window = &samples[(j - 4800) * 2..(j + 4800) * 2];
        let run = longest_quiet_run(window, 2, 1e-3);
        assert!(
            run < 48,
            "a {run}-frame silence around the join at frame {j}"
        );
    }
    assert_eq!(report["evidence"]["silence_secs"].as_f64(), Some(0.0));
}

#[test]
fn loudness_brings_each_item_to_the_target() {
    // Two items 12 dB apart in level; both come out near -23 LUFS.
    for item in ["tone.flac", "tone.ogg"] {
        let (report, _, _dir) = render(&[item], &[]);
        let lufs = report["evidence"]["integrated_lufs"].as_f64().unwrap();
        let peak = report["evidence"]["sample_peak_dbfs"].as_f64().unwrap();
        assert!((lufs + 23.0).abs() < 0.5, "{item}: {lufs} LUFS");
        assert!(peak <= -1.0, "{item}: peak {peak}");
    }
    // --no-loudness leaves the level alone: tone.flac is far louder than -23.
    let (report, _, _dir) = render(&["tone.flac"], &["--no-loudness"]);
    assert!(report["evidence"]["integrated_lufs"].as_f64().unwrap() > -15.0);
}

#[test]
fn bad_files_are_reported_with_their_reason_and_the_rest_airs() {
    let (report, wav, _dir) = render(
        &[
            "tone.wav",
            "missing.mp3",
            "truncated.mp3",
            "noise.mp3",
            "tone.flac",
        ],
        &[],
    );
    assert_eq!(report["outcome"], "partial", "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("item 2")
            && reason.contains("missing.mp3")
            && reason.contains("No such file"),
        "{reason}"
    );
    assert!(
        reason.contains("item 3") && reason.contains("truncated"),
        "{reason}"
    );
    assert!(
        reason.contains("item 4")
            && reason.contains("noise.mp3")
            && reason.contains("not a decodable"),
        "{reason}"
    );
    let aired: Vec<f64> = (0..5)
        .map(|i| report["items"][i]["aired_secs"].as_f64().unwrap())
        .collect();
    assert!(
        aired[0] > 1.4 && aired[4] > 1.9 && aired[1..4].iter().all(|&a| a == 0.0),
        "{aired:?}"
    );
    assert_eq!(
        report["items"][1]["sha256"], "",
        "a missing file has no hash"
    );
    assert_eq!(
        report["items"][2]["sha256"].as_str().unwrap().len(),
        64,
        "the truncated file's bytes are hashed"
    );
    let (_, samples) = wav.unwrap();
    assert_eq!(
        (samples.len() / 2) as u64,
        report["evidence"]["frames"].as_u64().unwrap()
    );

    let (report, _, _dir) = render(&["missing.mp3", "noise.mp3"], &[]);
    assert_eq!(report["outcome"], "failed", "{report}");
    assert_eq!(report["aired_secs"].as_f64(), Some(0.0));
    assert_eq!(report["evidence"]["first_sample_at"], Value::Null);
}
