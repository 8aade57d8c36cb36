//! The player thread through its handle: hard stop, preemption, stop, bad sessions followed by
//! good ones, scheduled start — on the `wav` output (real-time paced where timing matters).

mod playout_support;

use chrono::Utc;
use loa::loudness::LoudnessSettings;
use loa::output::{OutputConfig, Pacing};
use loa::player::{PlayOutcome, Player, PlayerConfig, PlayerEvent, PlayerHandle, Session};
use playout_support::*;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::Duration;

const RATE: u32 = 48000;

fn player(
    wav: &std::path::Path,
    pacing: Pacing,
    cache: &std::path::Path,
) -> (PlayerHandle, Receiver<PlayerEvent>) {
    let output = OutputConfig {
        spec: format!("wav:{}", wav.display()),
        sample_rate: Some(RATE),
        channels: Some(2),
        pacing,
        latency_ms: None,
        underrun_wait_ms: None,
        publish: None,
    };
    let loudness = LoudnessSettings {
        cache_dir: Some(cache.to_path_buf()),
        ..LoudnessSettings::default()
    };
    Player::spawn(PlayerConfig::new(output, loudness)).expect("player")
}

fn session(id: &str, items: &[&str], max_secs: Option<f64>) -> Session {
    Session {
        airing_id: id.into(),
        items: items.iter().map(|n| fixture(n)).collect::<Vec<PathBuf>>(),
        max_secs,
        start_at: Utc::now(),
    }
}

/// Wait for the `Finished` event of `id`, returning it and every event seen for `id` before.
fn finished(events: &Receiver<PlayerEvent>, id: &str) -> (PlayerEvent, Vec<PlayerEvent>) {
    let mut seen = Vec::new();
    loop {
        let e = events
            .recv_timeout(Duration::from_secs(30))
            .expect("no Finished event within 30 s");
        if e.airing_id() != id {
            continue;
        }
        if matches!(e, PlayerEvent::Finished { .. }) {
            return (e, seen);
        }
        seen.push(e);
    }
}

/// RMS of frames [from, to).
fn rms(s: &[f32], from: usize, to: usize) -> f32 {
    let x = &s[from * 2..to * 2];
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

/// Largest step between consecutive samples of one channel over frames [from, to).
fn max_step(s: &[f32], from: usize, to: usize) -> f32 {
    (from + 1..to)
        .map(|f| (s[f * 2] - s[(f - 1) * 2]).abs())
        .fold(0.0, f32::max)
}

#[test]
fn hard_stop_fades_out_at_max_secs_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let (p, ev) = player(&wav, Pacing::AsFastAsPossible, &dir.path().join("c"));
    p.load(session("a", &["long.mp3"], Some(1.5))).unwrap();
    let (fin, _) = finished(&ev, "a");
    p.shutdown().unwrap();
    let PlayerEvent::Finished {
        outcome,
        aired_secs,
        items,
        evidence,
        reason,
        ..
    } = fin
    else {
        unreachable!()
    };
    assert_eq!(outcome, PlayOutcome::HardStopped);
    assert!(
        (aired_secs - 1.5).abs() < 1.0 / f64::from(RATE),
        "{aired_secs}"
    );
    assert!(
        (items[0].aired_secs - 1.5).abs() < 1e-3 && (items[0].duration_secs - 8.0).abs() < 0.05
    );
    assert!(reason.unwrap_or_default().contains("hard stop"));
    let (_, s) = read_wav(&wav);
    let n = s.len() / 2;
    assert_eq!(n as u64, evidence.expect("the player meters").frames);
    assert_eq!(n, 72000);
    // Full level until the fade (last 0.5 s), then down to nothing, smoothly (no click).
    let level = rms(&s, 0, 48000);
    assert!(level > 0.01);
    assert!(
        rms(&s, 48000, 54000) > 0.7 * level,
        "the fade starts too early"
    );
    assert!(
        rms(&s, n - 2400, n) < 0.05 * level,
        "not faded out at the end"
    );
    assert!(
        s[n * 2 - 2].abs() < 1e-3 && s[n * 2 - 1].abs() < 1e-3,
        "last sample not near zero"
    );
    assert!(
        max_step(&s, 48000, n) <= max_step(&s, 0, 48000) * 1.05,
        "a click in the fade"
    );
}

#[test]
fn preemption_fades_out_reports_aired_duration_and_the_preempting_session_follows() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let (p, ev) = player(&wav, Pacing::RealTime, &dir.path().join("c"));
    p.load(session("low", &["long.mp3"], None)).unwrap();
    // Wait until it is on air, let it play ~1 s, then preempt it.
    loop {
        match ev
            .recv_timeout(Duration::from_secs(10))
            .expect("no Started")
        {
            PlayerEvent::Started { airing_id, .. } if airing_id == "low" => break,
            _ => {}
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    p.preempt("low").unwrap();
    p.load(session("high", &["tone.flac"], None)).unwrap();
    let (low, _) = finished(&ev, "low");
    let (high, high_events) = finished(&ev, "high");
    p.shutdown().unwrap();
    let PlayerEvent::Finished {
        outcome,
        aired_secs,
        evidence: low_ev,
        ..
    } = low
    else {
        unreachable!()
    };
    assert_eq!(outcome, PlayOutcome::Preempted);
    // Aired: the second before the command, plus the fade (0.5 s), within scheduling slack.
    assert!((1.4..3.0).contains(&aired_secs), "low aired {aired_secs}");
    let PlayerEvent::Finished {
        outcome,
        evidence: high_ev,
        ..
    } = high
    else {
        unreachable!()
    };
    assert_eq!(outcome, PlayOutcome::Complete);
    assert!(
        high_events
            .iter()
            .any(|e| matches!(e, PlayerEvent::Started { .. }))
    );
    assert!(
        high_events
            .iter()
            .any(|e| matches!(e, PlayerEvent::ItemStarted { index: 0, .. }))
    );
    // The WAV holds exactly what aired: the preempted part, then the preempting session.
    let (_, s) = read_wav(&wav);
    let (low_ev, high_ev) = (low_ev.unwrap(), high_ev.unwrap());
    let low_frames = low_ev.frames as usize;
    assert_eq!(s.len() / 2, low_frames + high_ev.frames as usize);
    assert!((low_frames as f64 / f64::from(RATE) - aired_secs).abs() < 1e-6);
    // The preempted part ends in a fade, not a cut.
    let level = rms(&s, 0, 24000);
    assert!(
        rms(&s, low_frames - 2400, low_frames) < 0.05 * level,
        "no fade before the preemption"
    );
    assert!(max_step(&s, low_frames - 24000, low_frames) <= max_step(&s, 0, 24000) * 1.05);
}

#[test]
fn bad_sessions_fail_with_a_reason_and_the_player_plays_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let (p, ev) = player(&wav, Pacing::AsFastAsPossible, &dir.path().join("c"));
    for (id, file, word) in [
        ("missing", "missing.mp3", "cannot read"),
        ("truncated", "truncated.mp3", "truncated"),
        ("noise", "noise.mp3", "not a decodable"),
    ] {
        p.load(session(id, &[file], None)).unwrap();
        let (fin, _) = finished(&ev, id);
        let PlayerEvent::Finished {
            outcome,
            aired_secs,
            reason,
            items,
            ..
        } = fin
        else {
            unreachable!()
        };
        assert_eq!(outcome, PlayOutcome::Failed, "{id}");
        assert_eq!(aired_secs, 0.0);
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains(word) && reason.contains(file),
            "{id}: {reason}"
        );
        assert_eq!(items.len(), 1);
        p.load(session(&format!("{id}-next"), &["tone.wav"], None))
            .unwrap();
        let (fin, _) = finished(&ev, &format!("{id}-next"));
        let PlayerEvent::Finished {
            outcome,
            aired_secs,
            ..
        } = fin
        else {
            unreachable!()
        };
        assert_eq!(outcome, PlayOutcome::Complete, "after {id}");
        assert!((aired_secs - 1.5).abs() < 0.01);
    }
    p.shutdown().unwrap();
}

#[test]
fn a_queued_session_can_be_stopped_before_it_starts_and_starts_are_scheduled() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let (p, ev) = player(&wav, Pacing::RealTime, &dir.path().join("c"));
    let mut later = session("later", &["tone.wav"], None);
    later.start_at = Utc::now() + chrono::Duration::seconds(30);
    p.load(later).unwrap();
    let mut soon = session("soon", &["tone.wav"], None);
    soon.start_at = Utc::now() + chrono::Duration::milliseconds(1500);
    let scheduled = soon.start_at;
    p.load(soon).unwrap();
    let (fin, seen) = finished(&ev, "soon");
    let PlayerEvent::Finished {
        outcome, evidence, ..
    } = fin
    else {
        unreachable!()
    };
    assert_eq!(outcome, PlayOutcome::Complete);
    let first = evidence
        .expect("the player meters")
        .first_sample_at
        .expect("first sample instant");
    let offset_ms = (first - scheduled).num_milliseconds();
    // Loose bounds only (timing figures are the benchmark's job): not early, not grossly late.
    assert!(
        (-5..300).contains(&offset_ms),
        "first sample {offset_ms} ms from schedule"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, PlayerEvent::Started { .. }))
    );
    // A stop right after a load is never lost, whether it lands during preparation, in the
    // queue or on air.
    p.load(session("quick", &["long.mp3"], None)).unwrap();
    p.stop("quick").unwrap();
    let (fin, _) = finished(&ev, "quick");
    let PlayerEvent::Finished {
        outcome,
        aired_secs,
        ..
    } = fin
    else {
        unreachable!()
    };
    assert_eq!(outcome, PlayOutcome::Stopped);
    assert!(aired_secs < 1.0, "{aired_secs}");
    p.stop("later").unwrap();
    let (fin, _) = finished(&ev, "later");
    let PlayerEvent::Finished {
        outcome,
        aired_secs,
        ..
    } = fin
    else {
        unreachable!()
    };
    assert_eq!((outcome, aired_secs), (PlayOutcome::Stopped, 0.0));
    p.shutdown().unwrap();
}
