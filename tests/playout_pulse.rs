//! The real-time device path: `loa play` → rodio → cpal → ALSA → PulseAudio null sink (a daemon
//! this test starts in a temp dir), captured with `parec`. Checks a scheduled start with a hard
//! stop: the signal is on the sink for max_secs and ends in a fade, and what `loa` reports
//! matches. Timing figures (start offsets) are the benchmark's job; bounds here are loose.

mod playout_support;

use playout_support::*;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn scheduled_play_with_hard_stop_reaches_pulse_in_real_time_and_fades_out() {
    let pulse = Pulse::start();
    let cap_path = pulse.dir.path().join("cap.raw");
    let parec = pulse.capture(&cap_path);
    std::thread::sleep(Duration::from_millis(300));
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let at_s = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let cache = pulse.dir.path().join("cache").display().to_string();
    let file = fixture("long.mp3").display().to_string();
    let mut c = pulse.cmd(env!("CARGO_BIN_EXE_loa"));
    c.args([
        "play",
        "--output",
        "device",
        "--json",
        "--at",
        &at_s,
        "--max-secs",
        "1.2",
        "--cache-dir",
        &cache,
        &file,
    ]);
    let started = std::time::Instant::now();
    let out = c.stdin(Stdio::null()).output().expect("run loa");
    let wall = started.elapsed();
    std::thread::sleep(Duration::from_millis(400));
    stop(parec);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["outcome"], "hard_stopped");
    assert_eq!(report["evidence"]["output"], "device");
    let aired = report["aired_secs"].as_f64().unwrap();
    assert!((aired - 1.2).abs() < 0.001, "{aired}");
    // Paced in real time: waited for the schedule and played 1.2 s.
    assert!(
        wall >= Duration::from_millis(2500),
        "took only {wall:?}: not real time"
    );

    let s: Vec<f32> = read_s16(&cap_path)
        .iter()
        .map(|&x| f32::from(x) / 32768.0)
        .collect();
    let on = first_loud_frame(&s, 2, 0.01).expect("no signal reached the pulse sink");
    let last = s
        .chunks_exact(2)
        .rposition(|f| f.iter().any(|x| x.abs() > 0.001))
        .unwrap();
    let dur = (last - on) as f64 / 44100.0;
    // 1.2 s minus the quiet tail of the fade (below -60 dBFS), within capture edge losses.
    assert!(
        (1.0..1.3).contains(&dur),
        "signal lasted {dur:.3} s on the sink"
    );
    // The level falls smoothly over the last half second instead of stopping dead.
    let rms = |a: usize, b: usize| {
        let x = &s[a * 2..b * 2];
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    };
    let full = rms(on, on + 22050);
    let fade_mid = rms(last - 11025, last - 8820);
    assert!(
        fade_mid < 0.8 * full && fade_mid > 0.05 * full,
        "no gradual fade: {full} → {fade_mid}"
    );
}
