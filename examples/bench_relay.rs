//! Relay benchmarks against a real local icecast2 (see `docs/relay.md`). Prints figures and the
//! targets next to them; asserts nothing. Run:
//! `CARGO_TARGET_DIR=/work/target-release cargo run --release --example bench_relay`
//! (env: `BENCH_WINDOWS`, default 50; `BENCH_FAILOVERS`, default 20; `BENCH_RSS_SECS`, default
//! 300 — 3600 for the hour; 0 skips a part).
//!
//! 1. Scheduled instant → first relayed sample: (a) through the player (`load_relay`, null output
//!    paced in real time, pre-connected by the player), over `BENCH_WINDOWS` slots; (b) the engine
//!    alone, pre-connected 1 s ahead and cold (connect at the instant).
//! 2. Upstream loss (feeder killed) and stall (connection open, no data) → fallback audio, from
//!    the recorded switch instants (target ≤ 2 s).
//! 3. RSS while relaying for `BENCH_RSS_SECS`, sampled every 10 s (measured, not extrapolated).

#[path = "../tests/relay_support/mod.rs"]
mod relay_support;

use chrono::Utc;
use loa::clock::{Clock, SystemClock};
use loa::relay::{self, RelayConfig};
use relay_support::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let windows = env_num("BENCH_WINDOWS", 50) as usize;
    let failovers = env_num("BENCH_FAILOVERS", 20) as usize;
    let rss_secs = env_num("BENCH_RSS_SECS", 300);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ice = Icecast::start();
    let dir = ice.dir.path().to_path_buf();
    let live = tone_mp3(&dir, "live", 440, 0.5, 30);
    let fallback = tone_wav(&dir, "fallback", 1000, 0.5, 5);
    let src = ice.source_url("city.mp3");
    let url = ice.listen_url("city.mp3");
    let mut feeder = Feeder::start(&src, &live, "audio/mpeg", 16_000.0);
    std::thread::sleep(Duration::from_secs(1));
    let cfg = |secs: u64| {
        RelayConfig::new(
            &url,
            Duration::from_secs(secs),
            vec![fallback.clone()],
            -50.0,
        )
    };

    // 1. Through the player: relay slots 2 s apart, 1 s windows, loaded well ahead.
    if windows > 0 {
        use loa::player::{Player, PlayerConfig, PlayerEvent, Session};
        let pcfg = PlayerConfig::new(
            loa::output::OutputConfig::new("null"),
            loa::loudness::LoudnessSettings::default(),
        );
        let (player, events) = Player::spawn(pcfg).expect("player");
        let first = Utc::now() + chrono::Duration::seconds(7);
        let at = |i: usize| first + chrono::Duration::seconds(2 * i as i64);
        for i in 0..windows {
            let session = Session {
                airing_id: format!("r{i}"),
                items: Vec::new(),
                max_secs: None,
                start_at: at(i),
            };
            player.load_relay(session, cfg(1)).expect("load");
        }
        let (mut out_ms, mut live_ms, mut live_first_block) = (Vec::new(), Vec::new(), 0);
        let mut done = 0;
        while done < windows {
            let Ok(ev) = events.recv_timeout(Duration::from_secs(30)) else {
                println!("player: no event for 30 s");
                break;
            };
            if let PlayerEvent::Finished {
                airing_id,
                evidence,
                relay,
                ..
            } = ev
            {
                done += 1;
                let i: usize = airing_id[1..].parse().unwrap_or(0);
                let ms = |t: chrono::DateTime<Utc>| {
                    (t - at(i)).num_microseconds().unwrap_or(0) as f64 / 1000.0
                };
                let out = evidence.as_ref().and_then(|e| e.first_sample_at);
                if let Some(t) = out {
                    out_ms.push(ms(t));
                }
                let live = relay.as_ref().and_then(|r| {
                    let live_at = r.first_live_at?;
                    let origin = r.sample_clock_origin?;
                    Some((live_at, origin))
                });
                match (live, out) {
                    // The first live sample went out this long after the output's first sample.
                    (Some((live_at, origin)), Some(t)) => {
                        let into = (live_at - origin).num_microseconds().unwrap_or(0) as f64;
                        live_ms.push(ms(t) + into / 1000.0);
                        if live_at == origin {
                            live_first_block += 1;
                        }
                    }
                    _ => println!("player slot {i} never went live: {relay:?}"),
                }
            }
        }
        let _ = player.shutdown();
        println!(
            "player: scheduled instant -> first sample out (output's clock): n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
            out_ms.len(),
            pct(&mut out_ms, 0.5),
            pct(&mut out_ms, 0.99),
            pct(&mut out_ms, 1.0)
        );
        println!(
            "player: scheduled instant -> first relayed (live) sample out: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms; live from the first block in {}/{} slots (target: live at the instant)",
            live_ms.len(),
            pct(&mut live_ms, 0.5),
            pct(&mut live_ms, 0.99),
            pct(&mut live_ms, 1.0),
            live_first_block,
            windows
        );
    }

    // 1a. Pre-connected 1 s before the slot.
    let mut pre = Vec::new();
    for _ in 0..windows {
        let (source, handle) = relay::start(cfg(1), Arc::clone(&clock)).expect("start");
        std::thread::sleep(Duration::from_secs(1));
        let scheduled = Utc::now();
        pull_paced(source);
        let rep = handle.report();
        match rep.first_live_at {
            Some(t) => pre.push((t - scheduled).num_microseconds().unwrap_or(0) as f64 / 1000.0),
            None => println!("pre-connected window never went live: {:?}", rep.evidence),
        }
    }
    // 1b. Cold: connect at the scheduled instant.
    let mut cold = Vec::new();
    for _ in 0..windows {
        let scheduled = Utc::now();
        let (source, handle) = relay::start(cfg(2), Arc::clone(&clock)).expect("start");
        pull_paced(source);
        let rep = handle.report();
        match rep.first_live_at {
            Some(t) => cold.push((t - scheduled).num_microseconds().unwrap_or(0) as f64 / 1000.0),
            None => println!("cold window never went live: {:?}", rep.evidence),
        }
    }
    println!(
        "start latency, pre-connected 1 s ahead: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        pre.len(),
        pct(&mut pre, 0.5),
        pct(&mut pre, 0.99),
        pct(&mut pre, 1.0)
    );
    println!(
        "start latency, cold (connect at the instant): n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        cold.len(),
        pct(&mut cold, 0.5),
        pct(&mut cold, 0.99),
        pct(&mut cold, 1.0)
    );

    // 2. Loss → fallback.
    let mut loss = Vec::new();
    for _ in 0..failovers {
        let (source, handle) = relay::start(cfg(4), Arc::clone(&clock)).expect("start");
        std::thread::sleep(Duration::from_secs(1));
        let puller = std::thread::spawn(move || pull_paced(source));
        std::thread::sleep(Duration::from_millis(1500));
        let killed = Utc::now();
        feeder.kill();
        let _ = puller.join();
        let ev = handle.evidence();
        match ev
            .switches
            .iter()
            .find(|s| s.to == "fallback" && s.at >= killed - chrono::Duration::seconds(1))
        {
            Some(s) => {
                let ms = (s.at - killed).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                if ms > 1000.0 {
                    println!("slow failover ({ms:.0} ms): {:?}", ev.switches);
                }
                loss.push(ms)
            }
            None => println!("no failover recorded: {ev:?}"),
        }
        feeder = Feeder::start(&src, &live, "audio/mpeg", 16_000.0);
        std::thread::sleep(Duration::from_millis(500));
    }
    if !loss.is_empty() {
        println!(
            "upstream loss (feeder killed) -> fallback audio: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms (target <= 2000 ms)",
            loss.len(),
            pct(&mut loss, 0.5),
            pct(&mut loss, 0.99),
            pct(&mut loss, 1.0)
        );
    }

    // 2b. Upstream stall (connection open, no data) → fallback.
    let mut stall = Vec::new();
    for _ in 0..failovers {
        let (source, handle) = relay::start(cfg(6), Arc::clone(&clock)).expect("start");
        std::thread::sleep(Duration::from_secs(1));
        let puller = std::thread::spawn(move || pull_paced_count(source));
        std::thread::sleep(Duration::from_millis(1500));
        let stalled = Utc::now();
        feeder.pause(true);
        let _ = puller.join();
        feeder.pause(false);
        let ev = handle.evidence();
        match ev
            .switches
            .iter()
            .find(|s| s.to == "fallback" && s.at >= stalled)
        {
            Some(s) => {
                let ms = (s.at - stalled).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                if ms > 2000.0 {
                    println!("slow stall failover ({ms:.0} ms): {:?}", ev.switches);
                }
                stall.push(ms)
            }
            None => println!("no failover recorded: {ev:?}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if !stall.is_empty() {
        println!(
            "upstream stall (no data, connection open) -> fallback audio: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms (target <= 2000 ms)",
            stall.len(),
            pct(&mut stall, 0.5),
            pct(&mut stall, 0.99),
            pct(&mut stall, 1.0)
        );
    }

    // 3. RSS while relaying.
    if rss_secs == 0 {
        return;
    }
    let (source, handle) = relay::start(cfg(rss_secs), Arc::clone(&clock)).expect("start");
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = rss_kib();
    let began = Instant::now();
    let puller = std::thread::spawn(move || pull_paced_count(source));
    let mut samples = Vec::new();
    while !puller.is_finished() {
        std::thread::sleep(Duration::from_secs(10));
        let sample = (began.elapsed().as_secs(), rss_kib());
        // Printed as it goes, so a run cut short still leaves its figures.
        println!("rss t={} s {} KiB", sample.0, sample.1);
        samples.push(sample);
    }
    let emitted = puller.join().unwrap_or(0);
    let ev = handle.evidence();
    println!(
        "RSS while relaying {} s (measured for {:.0} s, live {:.1} s, fallback {:.1} s, {} samples): before {} KiB; samples (s, KiB): {:?}",
        rss_secs,
        began.elapsed().as_secs_f64(),
        ev.live_secs,
        ev.fallback_secs,
        emitted,
        rss_before,
        samples
    );
    feeder.kill();
}
