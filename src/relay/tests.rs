//! Engine tests: the failover state machine driven through a feed filled directly (no network),
//! so every decision is checked frame-exactly and deterministically.

use super::*;
use crate::clock::ManualClock;
use chrono::TimeZone;

const RATE: u64 = OUTPUT_RATE_HZ as u64;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2019, 3, 4, 22, 30, 0).unwrap()
}

/// A fallback WAV: one second of a 1 kHz tone at 0.5, mono (the engine makes it stereo).
fn fallback_wav(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("fallback.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..44_100 {
        let v = (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 44_100.0).sin() * 0.5;
        w.write_sample((v * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    path
}

struct Rig {
    feed: Arc<LiveFeed>,
    source: RelaySource,
    handle: RelayHandle,
    _dir: tempfile::TempDir,
}

fn rig(window_secs: u64, fallback: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let files = if fallback {
        vec![fallback_wav(dir.path())]
    } else {
        vec![]
    };
    let cfg = RelayConfig::new(
        "http://127.0.0.1:9/x.mp3",
        Duration::from_secs(window_secs),
        files,
        -50.0,
    );
    let feed = Arc::new(LiveFeed::new(
        secs_to_frames(cfg.buffer_secs, cfg.rate_hz) as usize
    ));
    let (source, handle) = RelaySource::with_feed(
        cfg,
        Arc::clone(&feed),
        Arc::new(AtomicBool::new(false)),
        Arc::new(ManualClock::new(t0())),
    );
    Rig {
        feed,
        source,
        handle,
        _dir: dir,
    }
}

/// Push `secs` of live audio at `amp` (a constant-amplitude alternating signal).
fn push_live(feed: &LiveFeed, secs: f64, amp: f32) {
    let frames = (secs * RATE as f64) as usize;
    let chunk: Vec<f32> = (0..frames * 2)
        .map(|i| if (i / 2) % 2 == 0 { amp } else { -amp })
        .collect();
    let audible = upstream::level_dbfs(&chunk) >= -50.0;
    feed.push(&chunk, audible);
}

/// A real-time upstream: in 10 ms steps, `secs` of audio at `amp` arrives, then the same
/// amount is pulled (the output's pace). Returns what was pulled.
fn stream(feed: &LiveFeed, source: &mut RelaySource, secs: f64, amp: f32) -> Vec<f32> {
    let steps = (secs * 100.0).round() as usize;
    let mut out = Vec::new();
    for _ in 0..steps {
        push_live(feed, 0.01, amp);
        out.extend(pull(source, 0.01));
    }
    out
}

/// Pull `secs` of output.
fn pull(source: &mut RelaySource, secs: f64) -> Vec<f32> {
    let n = (secs * RATE as f64) as usize * 2;
    source.by_ref().take(n).collect()
}

fn at(secs: f64) -> DateTime<Utc> {
    t0() + chrono::Duration::microseconds((secs * 1e6).round() as i64)
}

#[test]
fn live_from_the_start_when_buffered_and_window_is_sample_exact() {
    let mut r = rig(3, true);
    r.feed.connected(0);
    push_live(&r.feed, 3.5, 0.5);
    // The latency trim keeps 1 s of the 3.5 s buffered; then the upstream goes on in real time.
    let mut all = stream(&r.feed, &mut r.source, 2.9, 0.5);
    all.extend(r.source.by_ref());
    assert_eq!(all.len() as u64, 3 * RATE * 2);
    let rep = r.handle.report();
    assert!(rep.finished);
    assert_eq!(rep.evidence.switches.len(), 1);
    assert_eq!(rep.evidence.switches[0].to, "live");
    assert_eq!(rep.evidence.switches[0].at, t0());
    assert_eq!(rep.evidence.live_secs, 3.0);
    assert_eq!(rep.evidence.fallback_secs, 0.0);
    assert!(r.feed.status().buffered_frames as u64 >= RATE * 9 / 10 - 441);
    // The last sample is faded to zero (no click at the end).
    assert_eq!(all[all.len() - 1], 0.0);
    assert!(all[100].abs() > 0.4);
}

#[test]
fn unreachable_upstream_means_whole_window_fallback_logged_so() {
    let mut r = rig(2, true);
    r.feed.down("connect failed: connection refused".into());
    let all: Vec<f32> = r.source.by_ref().collect();
    assert_eq!(all.len() as u64, 2 * RATE * 2);
    let ev = r.handle.evidence();
    assert_eq!(ev.live_secs, 0.0);
    assert_eq!(ev.fallback_secs, 2.0);
    assert_eq!(ev.switches.len(), 1);
    assert_eq!(ev.switches[0].to, "fallback");
    assert!(
        ev.switches[0].cause.contains("connection refused"),
        "{ev:?}"
    );
    // The fallback tone is on air (1 kHz at 0.5).
    let peak = all[1000..].iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(peak > 0.45, "{peak}");
}

#[test]
fn stall_fails_over_after_the_stall_time_from_the_last_arrival_then_back_when_audio_returns() {
    let mut r = rig(10, true);
    r.feed.connected(0);
    // 1 s buffered, 1 s in real time, then nothing arrives. The stall counts from the last
    // arrival (1.0 s on the sample clock), not from when the 1 s still buffered has played out
    // (2.0 s): the old rule switched at 4.0 s.
    push_live(&r.feed, 1.0, 0.5);
    stream(&r.feed, &mut r.source, 1.0, 0.5);
    pull(&mut r.source, 3.0);
    let ev = r.handle.evidence();
    assert_eq!(ev.switches.len(), 2, "{ev:?}");
    assert_eq!(ev.switches[1].to, "fallback");
    assert!(ev.switches[1].cause.contains("stalled"), "{ev:?}");
    let delay = (ev.switches[1].at - at(1.0)).num_milliseconds();
    assert!(
        (1500..=1520).contains(&delay),
        "switch {delay} ms after the last arrival"
    );
    // What was buffered before the stall is flushed: no flapping back to stale audio.
    pull(&mut r.source, 0.5);
    assert_eq!(r.handle.evidence().switches.len(), 2);
    // Audio returns: the next block goes live again.
    push_live(&r.feed, 2.0, 0.5);
    pull(&mut r.source, 0.02);
    let ev = r.handle.evidence();
    assert_eq!(ev.switches.len(), 3, "{ev:?}");
    assert_eq!(ev.switches[2].to, "live");
    assert_eq!(ev.switches[2].cause, "upstream back with audio");
    let rest: Vec<f32> = r.source.by_ref().collect();
    assert!(!rest.is_empty());
    let rep = r.handle.report();
    assert_eq!(rep.frames, 10 * RATE);
    assert!((rep.evidence.live_secs + rep.evidence.fallback_secs - 10.0).abs() < 1e-9);
}

#[test]
fn silence_fails_over_and_a_drop_fails_over_at_once() {
    let mut r = rig(10, true);
    r.feed.connected(0);
    push_live(&r.feed, 1.0, 0.5);
    stream(&r.feed, &mut r.source, 0.5, 0.5);
    // The upstream goes quiet at 0.5 s (-66 dBFS: below -50); 1 s of loud audio is still
    // buffered, but the 2 s count on the upstream's timeline.
    stream(&r.feed, &mut r.source, 3.0, 0.0005);
    let ev = r.handle.evidence();
    assert_eq!(ev.switches.len(), 2, "{ev:?}");
    assert!(ev.switches[1].cause.contains("silent"), "{ev:?}");
    let delay = (ev.switches[1].at - at(0.5)).num_milliseconds();
    assert!((2000..=2020).contains(&delay), "{delay}");
    // Back live, then the connection drops: fallback on the very next block.
    push_live(&r.feed, 0.5, 0.5);
    stream(&r.feed, &mut r.source, 0.5, 0.5);
    assert_eq!(r.source.on_air(), OnAir::Live);
    r.feed.down("stream ended".into());
    pull(&mut r.source, 0.01);
    let ev = r.handle.evidence();
    let last = ev.switches.last().unwrap();
    assert_eq!(last.to, "fallback");
    assert!(last.cause.contains("dropped: stream ended"), "{last:?}");
}

/// Push `secs` of a 200 Hz sine at `amp` (smooth: at most 0.015 change per frame at 0.5).
fn push_sine(feed: &LiveFeed, secs: f64, amp: f32) {
    let frames = (secs * RATE as f64) as usize;
    let chunk: Vec<f32> = (0..frames * 2)
        .map(|i| (2.0 * std::f32::consts::PI * 200.0 * (i / 2) as f32 / RATE as f32).sin() * amp)
        .collect();
    feed.push(&chunk, true);
}

#[test]
fn switches_are_crossfaded_without_jumps() {
    let mut r = rig(4, true);
    r.feed.connecting();
    let mut out = pull(&mut r.source, 0.5); // fallback tone (1 kHz, ≤ 0.072 change per frame)
    r.feed.connected(0);
    push_sine(&r.feed, 1.0, 0.5);
    out.extend(pull(&mut r.source, 0.5)); // switches to live with a crossfade
    let ev = r.handle.evidence();
    assert_eq!(ev.switches.len(), 2, "{ev:?}");
    assert_eq!(ev.switches[1].to, "live");
    let max_step = out
        .chunks(2)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (w[1][0] - w[0][0]).abs())
        .fold(0f32, f32::max);
    // A hard cut between two independent signals at 0.5 jumps by up to 1.0.
    assert!(max_step < 0.1, "largest step between frames {max_step}");
    // A drop has no live audio left to fade out: the fallback fades in from silence.
    r.feed.down("EOF".into());
    let after = pull(&mut r.source, 0.1);
    assert!(
        after[0].abs() < 0.05 && after[1].abs() < 0.05,
        "{:?}",
        &after[..4]
    );
}

#[test]
fn no_fallback_files_means_silence_not_a_shorter_window() {
    let mut r = rig(1, false);
    r.feed.down("HTTP status 404".into());
    let all: Vec<f32> = r.source.by_ref().collect();
    assert_eq!(all.len() as u64, RATE * 2);
    assert!(all.iter().all(|&s| s == 0.0));
}

#[test]
fn bad_config_is_refused() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t0()));
    let w = Duration::from_secs(1);
    let cases = [
        RelayConfig::new("ftp://x/y", w, vec![], -50.0),
        RelayConfig::new("not a url", w, vec![], -50.0),
        RelayConfig::new("http://x/y", Duration::ZERO, vec![], -50.0),
        RelayConfig::new("http://x/y", w, vec![], f64::NAN),
    ];
    for c in cases {
        assert!(start(c, Arc::clone(&clock)).is_err());
    }
}

#[test]
fn anchor_and_rate_are_the_callers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RelayConfig::new(
        "http://127.0.0.1:9/x.mp3",
        Duration::from_secs(2),
        vec![fallback_wav(dir.path())],
        -50.0,
    );
    cfg.rate_hz = 48_000;
    let feed = Arc::new(LiveFeed::new(48_000 * 4));
    let (mut source, handle) = RelaySource::with_feed(
        cfg,
        Arc::clone(&feed),
        Arc::new(AtomicBool::new(false)),
        Arc::new(ManualClock::new(t0())),
    );
    // The player pre-rolls: it pulls before the instant the first sample is heard.
    let heard_at = t0() + chrono::Duration::milliseconds(300);
    source.anchor_at(heard_at);
    feed.down("refused".into());
    assert_eq!(rodio::Source::sample_rate(&source).get(), 48_000);
    let n = source.by_ref().take(48_000 * 2).count();
    assert_eq!(n, 96_000);
    feed.connected(0);
    feed.push(&vec![0.5; 48_000], true);
    let rest = source.by_ref().count();
    assert_eq!(rest, 96_000);
    let rep = handle.report();
    assert_eq!(rep.sample_clock_origin, Some(heard_at));
    assert_eq!(rep.first_pull_at, Some(t0()));
    assert_eq!(rep.evidence.switches[0].at, heard_at);
    // Live from the first block (441 frames) boundary after 1 s of output.
    let live_from = 441.0 * (48_000.0f64 / 441.0).ceil() / 48_000.0;
    let expected = heard_at + chrono::Duration::microseconds((live_from * 1e6).round() as i64);
    assert_eq!(rep.first_live_at, Some(expected));
    assert!(
        (rep.evidence.live_secs - (2.0 - live_from)).abs() < 1e-9,
        "{rep:?}"
    );
    assert!((rep.evidence.live_secs + rep.evidence.fallback_secs - 2.0).abs() < 1e-9);
}

#[test]
fn titles_are_recorded_once_per_change() {
    let mut r = rig(1, false);
    r.feed.connected(0);
    push_live(&r.feed, 1.0, 0.5);
    for t in ["A", "A", "B", "A"] {
        r.feed.title(t.into());
    }
    let _ = r.source.by_ref().count();
    assert_eq!(r.handle.evidence().icy_titles, ["A", "B", "A"]);
}

#[test]
fn live_latency_is_capped_when_more_arrives_after_going_live() {
    let mut r = rig(3, true);
    r.feed.connected(0);
    push_live(&r.feed, 0.5, 0.5);
    pull(&mut r.source, 0.1);
    // The rest of a connect burst lands: 3.5 s buffered > 2 s cap → trimmed to 1 s.
    push_live(&r.feed, 3.1, 0.5);
    pull(&mut r.source, 0.01);
    let left = r.feed.status().buffered_frames as u64;
    assert!(left <= RATE, "{left} frames buffered");
    assert!(left >= RATE - 441, "{left} frames buffered");
}
