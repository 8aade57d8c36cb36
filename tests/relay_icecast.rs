//! The relay against a real upstream: icecast2 started by the test, fed in real time by loa's
//! source client (and by `lame` for the city-side publisher), relayed by `loa::relay` and drained
//! at real-time pace. Timing is asserted on the relay's recorded switch instants, never on sleeps.

mod relay_support;

use chrono::{DateTime, Utc};
use loa::clock::{Clock, SystemClock};
use loa::relay::source_client::{LamePublisher, Pacer};
use loa::relay::{self, RelayConfig, RelayHandle, RelaySource};
use relay_support::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const LIVE_HZ: f64 = 440.0;
const FALLBACK_HZ: f64 = 1000.0;

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn relay(url: &str, window_secs: u64, fallback: PathBuf) -> (RelaySource, RelayHandle) {
    let cfg = RelayConfig::new(url, Duration::from_secs(window_secs), vec![fallback], -50.0);
    relay::start(cfg, clock()).expect("start relay")
}

/// Index of the 100 ms block holding `at`, on the relay's sample clock.
fn block_of(first_pull: DateTime<Utc>, at: DateTime<Utc>) -> usize {
    ((at - first_pull).num_milliseconds().max(0) / 100) as usize
}

fn share(blocks: &[Option<f64>], freq: f64) -> f64 {
    blocks.iter().filter(|b| **b == Some(freq)).count() as f64 / blocks.len().max(1) as f64
}

#[test]
fn relay_airs_the_live_mount_with_its_tone_level_and_titles() {
    let ice = Icecast::start();
    let dir = ice.dir.path();
    let live = tone_mp3(dir, "live", 440, 0.5, 10);
    let fallback = tone_wav(dir, "fallback", 1000, 0.5, 5);
    let _feeder = ice.feed_city(&live);
    let (source, handle) = relay(&ice.listen_url("city.mp3"), 8, fallback);
    // Pre-connect: the slot is due 2 s from now.
    std::thread::sleep(Duration::from_secs(2));
    let admin = ice.admin_url();
    let titler = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        loa::relay::source_client::IcecastSource::set_title(&admin, "/city.mp3", "Chuyên mục CCHC")
    });
    let (out, took) = pull_paced(source);
    titler.join().expect("titler").expect("set title");

    // The window ends on time: exact sample count, and paced pulling took the window's length.
    assert_eq!(out.len(), 8 * RATE * 2);
    assert!((took.as_secs_f64() - 8.0).abs() < 0.5, "took {took:?}");
    let rep = handle.report();
    assert!(rep.finished);
    let ev = &rep.evidence;
    assert_eq!(ev.switches.len(), 1, "{ev:?}");
    assert_eq!(ev.switches[0].to, "live");
    assert_eq!(ev.live_secs, 8.0);
    assert_eq!(ev.fallback_secs, 0.0);
    assert!(
        ev.icy_titles.iter().any(|t| t == "Chuyên mục CCHC"),
        "{ev:?}"
    );
    // What went out is the source's tone at the source's level (sine at 0.5 = -9.0 dBFS RMS).
    let blocks = classify(&out, &[LIVE_HZ, FALLBACK_HZ]);
    assert!(share(&blocks, LIVE_HZ) > 0.97, "{blocks:?}");
    let body = &out[RATE * 2..7 * RATE * 2];
    let level = rms_dbfs(body);
    assert!((level + 9.03).abs() < 0.5, "level {level} dBFS");
}

#[test]
fn relay_fails_over_within_2s_when_the_feeder_dies_and_comes_back_when_it_returns() {
    let ice = Icecast::start();
    let dir = ice.dir.path();
    let live = tone_mp3(dir, "live", 440, 0.5, 10);
    let fallback = tone_wav(dir, "fallback", 1000, 0.5, 5);
    let feeder = ice.feed_city(&live);
    let (source, handle) = relay(&ice.listen_url("city.mp3"), 18, fallback);
    std::thread::sleep(Duration::from_secs(2));
    let puller = std::thread::spawn(move || pull_paced(source));
    std::thread::sleep(Duration::from_secs(4));
    let killed_at = Utc::now();
    feeder.kill();
    std::thread::sleep(Duration::from_secs(5));
    let restarted_at = Utc::now();
    let _feeder = ice.feed_city(&live);
    let (out, _) = puller.join().expect("puller");

    assert_eq!(out.len(), 18 * RATE * 2);
    let rep = handle.report();
    let ev = &rep.evidence;
    let first_pull = rep.first_pull_at.expect("pulled");
    let to: Vec<&str> = ev.switches.iter().map(|s| s.to.as_str()).collect();
    assert_eq!(to, ["live", "fallback", "live"], "{ev:?}");
    let down = &ev.switches[1];
    let back = &ev.switches[2];
    let failover_ms = (down.at - killed_at).num_milliseconds();
    // Upper bound: the 2 s. The lower bound only guards against a switch long before
    // the kill (the sample clock may trail the wall clock by a scheduling hiccup of the puller).
    assert!(
        (-500..=2000).contains(&failover_ms),
        "fallback {failover_ms} ms after the kill: {ev:?}"
    );
    assert!(down.cause.contains("dropped"), "{down:?}");
    assert!(
        back.at > restarted_at - chrono::Duration::milliseconds(200),
        "{ev:?}"
    );
    assert!((ev.live_secs + ev.fallback_secs - 18.0).abs() < 1e-6);
    // The audio agrees with the events: live tone before, fallback tone between, live after.
    let blocks = classify(&out, &[LIVE_HZ, FALLBACK_HZ]);
    let (d, b) = (block_of(first_pull, down.at), block_of(first_pull, back.at));
    assert!(share(&blocks[..d], LIVE_HZ) > 0.95, "{:?}", &blocks[..d]);
    assert!(
        share(&blocks[d + 1..b], FALLBACK_HZ) > 0.95,
        "{:?}",
        &blocks[d + 1..b]
    );
    assert!(
        share(&blocks[b + 1..blocks.len() - 1], LIVE_HZ) > 0.95,
        "{:?}",
        &blocks[b + 1..]
    );
}

#[test]
fn relay_fails_over_when_the_upstream_stalls_and_returns_when_data_flows_again() {
    let ice = Icecast::start();
    let dir = ice.dir.path();
    let live = tone_mp3(dir, "live", 440, 0.5, 10);
    let fallback = tone_wav(dir, "fallback", 1000, 0.5, 5);
    let feeder = ice.feed_city(&live);
    let (source, handle) = relay(&ice.listen_url("city.mp3"), 12, fallback);
    std::thread::sleep(Duration::from_secs(2));
    let puller = std::thread::spawn(move || pull_paced(source));
    std::thread::sleep(Duration::from_secs(3));
    let stalled_at = Utc::now();
    feeder.pause(true);
    std::thread::sleep(Duration::from_secs(4));
    let resumed_at = Utc::now();
    feeder.pause(false);
    let (out, _) = puller.join().expect("puller");
    assert_eq!(out.len(), 12 * RATE * 2);
    let ev = handle.evidence();
    let to: Vec<&str> = ev.switches.iter().map(|s| s.to.as_str()).collect();
    assert_eq!(to, ["live", "fallback", "live"], "{ev:?}");
    let down = &ev.switches[1];
    assert!(down.cause.contains("stalled"), "{down:?}");
    // Counted from the last arrival (not after the buffered second has played out): the
    // stall rule's 1.5 s, within the 2 s. The lower bound guards against a switch that
    // did not wait for the rule (the feeder's last chunk may land ~130 ms after `stalled_at`).
    let ms = (down.at - stalled_at).num_milliseconds();
    assert!(
        (1300..=2000).contains(&ms),
        "fallback {ms} ms after the stall: {ev:?}"
    );
    assert!(
        ev.switches[2].at > resumed_at - chrono::Duration::milliseconds(200),
        "{ev:?}"
    );
}

#[test]
fn relay_of_a_silent_upstream_goes_to_fallback() {
    let ice = Icecast::start();
    let dir = ice.dir.path();
    let silent = tone_mp3(dir, "silent", 440, 0.0, 10);
    let fallback = tone_wav(dir, "fallback", 1000, 0.5, 5);
    let _feeder = ice.feed_city(&silent);
    let (source, handle) = relay(&ice.listen_url("city.mp3"), 8, fallback);
    std::thread::sleep(Duration::from_secs(2));
    let (out, _) = pull_paced(source);
    assert_eq!(out.len(), 8 * RATE * 2);
    let ev = handle.evidence();
    let last = ev.switches.last().expect("a switch");
    assert_eq!(last.to, "fallback", "{ev:?}");
    assert!(
        last.cause.contains("silent") || last.cause.contains("below"),
        "{ev:?}"
    );
    // At most the failover time (2 s) was aired live-but-silent.
    assert!(ev.live_secs <= 2.05, "{ev:?}");
    assert!((ev.live_secs + ev.fallback_secs - 8.0).abs() < 1e-6);
    let blocks = classify(
        &out[(ev.live_secs.ceil() as usize + 1) * RATE * 2..],
        &[LIVE_HZ, FALLBACK_HZ],
    );
    assert!(share(&blocks, FALLBACK_HZ) > 0.97, "{blocks:?}");
}

#[test]
fn relay_of_an_upstream_that_never_answers_is_fallback_for_the_whole_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fallback = tone_wav(dir.path(), "fallback", 1000, 0.5, 3);
    // Nothing listens on this port: connection refused.
    let refused = format!("http://127.0.0.1:{}/city.mp3", free_port());
    // This one accepts TCP and never says a word.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mute_url = format!("http://{}/city.mp3", mute.local_addr().expect("addr"));
    let _holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in mute.incoming().take(20).flatten() {
            held.push(c);
        }
    });
    for (url, cause) in [(refused, "connect failed"), (mute_url, "not connected yet")] {
        let (source, handle) = relay(&url, 5, fallback.clone());
        std::thread::sleep(Duration::from_millis(500));
        let (out, _) = pull_paced(source);
        assert_eq!(out.len(), 5 * RATE * 2);
        let ev = handle.evidence();
        assert_eq!(ev.live_secs, 0.0, "{ev:?}");
        assert_eq!(ev.fallback_secs, 5.0, "{ev:?}");
        assert_eq!(ev.switches.len(), 1, "{ev:?}");
        assert_eq!(ev.switches[0].to, "fallback");
        assert!(ev.switches[0].cause.contains(cause), "{url}: {ev:?}");
        let blocks = classify(&out, &[LIVE_HZ, FALLBACK_HZ]);
        assert!(share(&blocks, FALLBACK_HZ) > 0.97, "{blocks:?}");
    }
}

#[test]
fn relay_of_ogg_vorbis_48k_mono_is_resampled_to_the_output_format() {
    let ice = Icecast::start();
    let dir = ice.dir.path();
    // Long enough that the feeder does not loop (a loop starts a chained Ogg stream) within the
    // test.
    let live = tone_ogg(dir, "live", 440, 0.5, 30);
    let fallback = tone_wav(dir, "fallback", 1000, 0.5, 5);
    // (Ogg is paced by granule position; the byte rate is unused.)
    let rate = 0.0;
    let _feeder = Feeder::start(&ice.source_url("city.ogg"), &live, "application/ogg", rate);
    let (source, handle) = relay(&ice.listen_url("city.ogg"), 6, fallback);
    // Ogg starts slower than MP3 (headers, then whole pages of ~1 s): pre-connect 4 s.
    std::thread::sleep(Duration::from_secs(4));
    let (out, _) = pull_paced(source);
    assert_eq!(out.len(), 6 * RATE * 2);
    let ev = handle.evidence();
    assert_eq!(ev.live_secs, 6.0, "{ev:?}");
    let blocks = classify(&out, &[LIVE_HZ, FALLBACK_HZ]);
    assert!(share(&blocks, LIVE_HZ) > 0.97, "{blocks:?}");
}

#[test]
fn city_station_publishes_pcm_as_mp3_and_a_ward_relays_it() {
    let ice = Icecast::start();
    let dir = ice.dir.path();
    let fallback = tone_wav(dir, "fallback", 1000, 0.5, 5);
    tools::require_tool("lame", "lame");
    let mut publisher =
        LamePublisher::start(&ice.source_url("city.mp3"), 44_100, 2, 128).expect("publisher");
    let publishing = std::thread::spawn(move || {
        // The city's output: a 440 Hz tone at 0.5, 10 s, paced as a sound card would take it.
        let pacer = Pacer::new(44_100.0);
        let mut frames = 0u64;
        let mut phase = 0.0f64;
        while frames < 10 * 44_100 {
            let block: Vec<f32> = (0..441)
                .flat_map(|_| {
                    phase += 2.0 * std::f64::consts::PI * 440.0 / 44_100.0;
                    let v = (phase.sin() * 0.5) as f32;
                    [v, v]
                })
                .collect();
            pacer.wait(frames);
            publisher.write(&block).expect("publish");
            frames += 441;
        }
        publisher.finish()
    });
    std::thread::sleep(Duration::from_secs(1));
    let (source, handle) = relay(&ice.listen_url("city.mp3"), 5, fallback);
    std::thread::sleep(Duration::from_secs(2));
    let (out, _) = pull_paced(source);
    let ev = handle.evidence();
    assert_eq!(ev.live_secs, 5.0, "{ev:?}");
    let blocks = classify(&out, &[LIVE_HZ, FALLBACK_HZ]);
    assert!(share(&blocks, LIVE_HZ) > 0.95, "{blocks:?}");
    let level = rms_dbfs(&out[RATE * 2..4 * RATE * 2]);
    assert!((level + 9.03).abs() < 0.5, "level {level} dBFS");
    publishing
        .join()
        .expect("publisher thread")
        .expect("publisher finished cleanly");
}

#[test]
fn player_airs_a_relay_session_preconnected_and_fades_it_out_on_stop() {
    use loa::player::{PlayOutcome, Player, PlayerConfig, PlayerEvent, Session};
    let ice = Icecast::start();
    let dir = ice.dir.path();
    let live = tone_mp3(dir, "live", 440, 0.5, 10);
    let fallback = tone_wav(dir, "fallback", 1000, 0.5, 5);
    let _feeder = ice.feed_city(&live);
    let wav = dir.join("aired.wav");
    let mut out = loa::output::OutputConfig::new(&format!("wav:{}", wav.display()));
    out.sample_rate = Some(44_100);
    let cfg = PlayerConfig::new(out, loa::loudness::LoudnessSettings::default());
    let (player, events) = Player::spawn(cfg).expect("player");
    // Loaded 3 s ahead: the player connects at once (less than DEFAULT_PRECONNECT_SECS to go).
    let start_at = Utc::now() + chrono::Duration::seconds(3);
    let session = Session {
        airing_id: "relay-1".into(),
        items: vec![PathBuf::from("ignored.wav")],
        max_secs: None,
        start_at,
    };
    let rcfg = RelayConfig::new(
        ice.listen_url("city.mp3"),
        Duration::from_secs(20),
        vec![fallback],
        -50.0,
    );
    player.load_relay(session, rcfg).expect("load relay");
    let mut started = None;
    while started.is_none() {
        if let PlayerEvent::Started { at, .. } = events
            .recv_timeout(Duration::from_secs(10))
            .expect("started")
        {
            started = Some(at);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    player.stop("relay-1").expect("stop");
    let fin = loop {
        let ev = events
            .recv_timeout(Duration::from_secs(10))
            .expect("finished");
        if matches!(ev, PlayerEvent::Finished { .. }) {
            break ev;
        }
    };
    player.shutdown().expect("shutdown");
    let PlayerEvent::Finished {
        outcome,
        aired_secs,
        evidence,
        relay,
        items,
        ..
    } = fin
    else {
        unreachable!()
    };
    assert_eq!(outcome, PlayOutcome::Stopped);
    // The session's one item is the upstream, for its window.
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].path, ice.listen_url("city.mp3"));
    assert_eq!(items[0].duration_secs, 20.0);
    let rep = relay.expect("relay report");
    let ev = &rep.evidence;
    assert_eq!(ev.switches.len(), 1, "{ev:?}");
    assert_eq!(ev.switches[0].cause, "on air at start", "{ev:?}");
    // The relay's sample clock starts where the output's first sample went out.
    let evidence = evidence.expect("the player meters");
    let first = evidence.first_sample_at.expect("first sample");
    assert!((first - start_at).num_milliseconds().abs() < 100, "{first}");
    assert!(
        (rep.sample_clock_origin.expect("origin") - first)
            .num_milliseconds()
            .abs()
            < 100
    );
    assert!((3.0..5.0).contains(&aired_secs), "{aired_secs}");
    // The meter saw what the relay made (the stop's fade included), and the fade ends in silence.
    assert!(
        (ev.live_secs - aired_secs).abs() < 0.6,
        "{ev:?} vs {aired_secs}"
    );
    let samples: Vec<f32> = hound::WavReader::open(&wav)
        .expect("wav")
        .samples::<f32>()
        .map(|s| s.expect("sample"))
        .collect();
    assert!((samples.len() as f64 / 2.0 / 44_100.0 - aired_secs).abs() < 0.01);
    let tail = &samples[samples.len() - 20..];
    assert!(tail.iter().all(|s| s.abs() < 0.01), "{tail:?}");
    let blocks = classify(&samples[..samples.len() - RATE], &[LIVE_HZ, FALLBACK_HZ]);
    assert!(share(&blocks, LIVE_HZ) > 0.95, "{blocks:?}");
}

/// Fallback files inside a relay are loudness-normalised like every other item: a loud
/// fallback (a 0.5-amplitude tone, about −9 LUFS) airs at the −23 LUFS target.
#[test]
fn fallback_files_in_a_relay_air_at_the_loudness_target() {
    use loa::player::{PlayOutcome, Player, PlayerConfig, PlayerEvent, Session};
    let dir = tempfile::tempdir().expect("temp dir");
    let fallback = tone_wav(dir.path(), "fallback", 1000, 0.5, 3);
    let wav = dir.path().join("aired.wav");
    let mut out = loa::output::OutputConfig::new(&format!("wav:{}", wav.display()));
    out.sample_rate = Some(48_000);
    let loudness = loa::loudness::LoudnessSettings {
        cache_dir: Some(dir.path().join("cache")),
        ..Default::default()
    };
    let (player, events) = Player::spawn(PlayerConfig::new(out, loudness)).expect("player");
    // Nothing listens there: the whole window is fallback.
    let url = format!("http://127.0.0.1:{}/city.mp3", free_port());
    let session = Session {
        airing_id: "relay-fb".into(),
        items: Vec::new(),
        max_secs: None,
        start_at: Utc::now() + chrono::Duration::seconds(1),
    };
    let rcfg = RelayConfig::new(url, Duration::from_secs(4), vec![fallback], -50.0);
    player.load_relay(session, rcfg).expect("load relay");
    let fin = loop {
        let ev = events
            .recv_timeout(Duration::from_secs(20))
            .expect("finished");
        if matches!(ev, PlayerEvent::Finished { .. }) {
            break ev;
        }
    };
    player.shutdown().expect("shutdown");
    let PlayerEvent::Finished { outcome, .. } = fin else {
        unreachable!()
    };
    assert_eq!(outcome, PlayOutcome::Complete);
    let mut r = hound::WavReader::open(&wav).expect("aired wav");
    let spec = r.spec();
    let samples: Vec<f32> = r.samples::<f32>().map(|x| x.expect("sample")).collect();
    let mut m = ebur128::EbuR128::new(u32::from(spec.channels), spec.sample_rate, ebur128::Mode::I)
        .expect("meter");
    m.add_frames_f32(&samples).expect("meter");
    let lufs = m.loudness_global().expect("loudness");
    assert!(
        (lufs - -23.0).abs() <= 1.0,
        "fallback aired at {lufs:.2} LUFS (target -23)"
    );
}

/// Back from silence: when the upstream's audio resumes after a silence long enough to fail
/// over, the switch back to live starts with the audio — the silence buffered before it is not
/// aired as dead air after the fallback.
#[test]
fn back_from_silence_the_switch_to_live_skips_the_buffered_silence() {
    let ice = Icecast::start();
    let dir = ice.dir.path();
    // 2 s of tone, 5 s of silence, 8 s of tone.
    let a = tone_wav(dir, "a", 440, 0.5, 2);
    let quiet = tone_wav(dir, "quiet", 440, 0.0, 5);
    let b = tone_wav(dir, "b", 440, 0.5, 8);
    let joined = dir.join("joined.wav");
    let st = std::process::Command::new(tools::require_tool("sox", "sox"))
        .args([&a, &quiet, &b, &joined])
        .status()
        .expect("sox");
    assert!(st.success());
    let live = dir.join("gap.mp3");
    let st = std::process::Command::new(tools::require_tool("lame", "lame"))
        .args(["--quiet", "-b", "128"])
        .arg(&joined)
        .arg(&live)
        .status()
        .expect("lame");
    assert!(st.success());
    let fallback = tone_wav(dir, "fallback", 1000, 0.5, 5);
    let _feeder = ice.feed_city(&live);
    let (source, handle) = relay(&ice.listen_url("city.mp3"), 12, fallback);
    std::thread::sleep(Duration::from_secs(1));
    let (out, _) = pull_paced(source);
    let rep = handle.report();
    let ev = &rep.evidence;
    let first_pull = rep.first_pull_at.expect("pulled");
    let to: Vec<&str> = ev.switches.iter().map(|s| s.to.as_str()).collect();
    assert_eq!(to, ["live", "fallback", "live"], "{ev:?}");
    let back = block_of(first_pull, ev.switches[2].at);
    let blocks = classify(&out, &[LIVE_HZ, FALLBACK_HZ]);
    // After the switch back (its block is a crossfade): the live tone at once. One 100 ms block
    // of slack for a loaded machine; the buffered silence was 0.86 s (8–9 blocks) before.
    let dead = blocks[back + 1..]
        .iter()
        .take_while(|b| **b != Some(LIVE_HZ))
        .count();
    assert!(
        dead <= 1,
        "{dead} block(s) of 100 ms without the live tone after the switch back: {:?}",
        &blocks[back.saturating_sub(3)..(back + 12).min(blocks.len())]
    );
}
