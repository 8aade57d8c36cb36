//! Playout benchmarks; each prints its figures.
//!
//! ```text
//! cargo run --release --example bench_playout -- start-offset [STARTS] [SPACING_MS] [CAPTURE_LATENCY_MS]
//! cargo run --release --example bench_playout -- render [MINUTES] [MP3] [RATE]
//! cargo run --release --example bench_playout -- images
//! cargo run --release --example bench_playout -- rss [MINUTES] [REALTIME_SECS]
//! ```
//! - `start-offset`: starts its own PulseAudio daemon with a null sink (temp dir), re-runs itself
//!   as a child with that environment; the child's player airs STARTS (default 200) scheduled
//!   100 ms beeps on the `device` output (rodio → cpal → ALSA → Pulse); the parent captures the
//!   sink with `parec` and finds each beep's onset. Prints first-sample-vs-schedule offsets:
//!   absolute (capture clock anchored by the read times of parec's output) and the jitter around
//!   the median, p50/p99/max. A null sink renders one block ahead of its clock and its monitor
//!   hands that block out at once, so the monitor hears samples up to one block early; the block
//!   follows the smallest latency asked for, i.e. parec's `--latency-msec` (CAPTURE_LATENCY_MS,
//!   default 1). See docs/playout.md, "Start offset".
//! - `render`: makes a 44.1 kHz MP3 of MINUTES (default 60) with sox+lame, then times the
//!   player's offline render at RATE (default 48000, so the resampler runs; loudness on) with a
//!   cold cache once and a warm cache 3 times, each run followed by the same conversion by
//!   `ffmpeg -i x.mp3 -af aresample=resampler=soxr -ar RATE out.wav` (when ffmpeg is installed,
//!   else `sox x.mp3 -r RATE out.wav`, sox's own high-quality resampler) so that each ratio
//!   compares runs under the same machine load. Prints wall-clock and CPU
//!   (user + system, all threads) times and ratios, and the medians of the warm ratios (the
//!   target). Given an
//!   existing MP3 (MINUTES long), it times that instead of making one (saves ~1.5 min per run).
//! - `images`: image rejection and passband error of the player's resampler next to sox's
//!   (`rate -v`) and, when installed, ffmpeg's soxr: a 16 kHz file of tones at 1, 3, 6 and 7 kHz
//!   rendered at 48 kHz (rejection = tone level − strongest image, worst tone), and a 44.1 kHz
//!   file of tones from 20 Hz to 20 kHz rendered at 48 kHz (level error against the input).
//! - `rss`: peak RSS (VmHWM) of an idle player vs the same process after airing a MINUTES-long
//!   MP3 session (whole session on a `null` output as fast as possible, then REALTIME_SECS on a
//!   real-time `null` output).

use chrono::Utc;
use loa::loudness::LoudnessSettings;
use loa::output::{OutputConfig, Pacing};
use loa::player::{Player, PlayerConfig, PlayerEvent, Session};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> R<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match args.first().map(|s| s.as_str()) {
        Some("start-offset") => start_offset(num(1, 200) as usize, num(2, 400), num(3, 1)),
        Some("start-offset-child") => start_offset_child(&args[1..]),
        Some("render") => render(
            num(1, 60),
            args.get(2).filter(|s| !s.is_empty()).map(PathBuf::from),
            num(3, 48_000) as u32,
        ),
        Some("images") => images(),
        Some("rss") => rss(num(1, 60), num(2, 20)),
        _ => {
            eprintln!(
                "usage: bench_playout start-offset [STARTS] [SPACING_MS] | render [MINUTES] [MP3] [RATE] | images | rss [MINUTES] [REALTIME_SECS]"
            );
            std::process::exit(2);
        }
    }
}

fn sh(cmd: &mut Command) -> R<()> {
    let st = cmd.status()?;
    if !st.success() {
        return Err(format!("{cmd:?} failed: {st}").into());
    }
    Ok(())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------------

fn start_offset(starts: usize, spacing_ms: u64, capture_latency_ms: u64) -> R<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    for s in ["runtime", "home"] {
        std::fs::create_dir_all(d.join(s))?;
    }
    let env = [
        ("PULSE_RUNTIME_PATH", d.join("runtime")),
        ("XDG_RUNTIME_DIR", d.join("runtime")),
        ("HOME", d.join("home")),
    ];
    let with_env = |c: &mut Command| {
        for (k, v) in &env {
            c.env(k, v);
        }
    };
    let mut pa = Command::new("pulseaudio");
    pa.args([
        "-n",
        "--daemonize=no",
        "--exit-idle-time=-1",
        "--use-pid-file=no",
        "-L",
        "module-null-sink sink_name=cap rate=44100 channels=2",
        "-L",
        "module-native-protocol-unix",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    with_env(&mut pa);
    let mut pa = pa
        .spawn()
        .map_err(|e| format!("pulseaudio: {e} (install pulseaudio)"))?;
    std::thread::sleep(Duration::from_millis(1500));
    // A 100 ms beep at 44.1 kHz stereo.
    let beep = d.join("beep.wav");
    sh(Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2", "-b", "16"])
        .arg(&beep)
        .args(["synth", "0.1", "sine", "1000", "gain", "-6"]))?;

    let mut parec = Command::new("parec");
    parec
        .args([
            "-d",
            "cap.monitor",
            "--raw",
            "--format=s16le",
            "--rate=44100",
            "--channels=2",
            &format!("--latency-msec={capture_latency_ms}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    with_env(&mut parec);
    let mut parec = parec.spawn()?;
    let mut pipe = parec.stdout.take().ok_or("no parec stdout")?;
    let reader = std::thread::spawn(move || {
        let mut data = Vec::new();
        // (frames read so far, when): the newest frame read was captured no later than `when`.
        let mut reads: Vec<(u64, chrono::DateTime<Utc>)> = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
            reads.push(((data.len() / 4) as u64, Utc::now()));
        }
        (data, reads)
    });
    std::thread::sleep(Duration::from_millis(500));
    let first = Utc::now() + chrono::Duration::seconds(2);
    let mut child = Command::new(std::env::current_exe()?);
    child
        .args([
            "start-offset-child",
            &beep.display().to_string(),
            &first.to_rfc3339(),
            &starts.to_string(),
            &spacing_ms.to_string(),
        ])
        .stderr(Stdio::null());
    with_env(&mut child);
    let out = child.output()?;
    std::thread::sleep(Duration::from_millis(500));
    unsafe {
        libc::kill(parec.id() as i32, libc::SIGINT);
    }
    let _ = parec.wait();
    let (data, reads) = reader.join().map_err(|_| "reader")?;
    if reads.is_empty() {
        return Err("parec captured nothing".into());
    }
    // When frame `f` was captured: the tightest bound from reads within the next 2 s (local, so
    // capture drops or clock drift over the run do not accumulate).
    let captured_at = |f: u64| -> chrono::DateTime<Utc> {
        reads
            .iter()
            .filter(|(n, _)| *n > f && *n <= f + 88200)
            .map(|(n, t)| {
                *t - chrono::Duration::microseconds(((n - f) as f64 / 44100.0 * 1e6) as i64)
            })
            .min()
            .unwrap_or(reads[reads.len() - 1].1)
    };
    let _ = pa.kill();
    let _ = pa.wait();
    let software: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("started_offset_ms ")
                .and_then(|x| x.parse().ok())
        })
        .collect();

    // Onsets: first loud frame after ≥ 150 ms of quiet.
    let s: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut onsets = Vec::new();
    let mut quiet = 0usize;
    for (i, f) in s.chunks_exact(2).enumerate() {
        let loud = f.iter().any(|x| x.unsigned_abs() > 300);
        if loud && quiet >= 6615 {
            onsets.push(i);
        }
        quiet = if loud { 0 } else { quiet + 1 };
    }
    let mut abs_ms = Vec::new();
    for (i, &o) in onsets.iter().enumerate() {
        let heard = captured_at(o as u64);
        // Match to the nearest scheduled instant.
        let k =
            ((heard - first).num_microseconds().unwrap_or(0) as f64 / 1000.0 / spacing_ms as f64)
                .round();
        if k < 0.0 || k as usize >= starts {
            eprintln!("onset {i} matches no schedule");
            continue;
        }
        let sched = first + chrono::Duration::milliseconds(k as i64 * spacing_ms as i64);
        abs_ms.push((heard - sched).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    let mut sorted = abs_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let med = pct(&sorted, 0.5);
    let mut magnitude: Vec<f64> = abs_ms.iter().map(|x| x.abs()).collect();
    magnitude.sort_by(f64::total_cmp);
    let mut jitter: Vec<f64> = abs_ms.iter().map(|x| (x - med).abs()).collect();
    jitter.sort_by(f64::total_cmp);
    let mut sw = software.clone();
    sw.sort_by(f64::total_cmp);
    println!(
        "start-offset: {} scheduled starts, {} found on the sink ({} ms apart; capture latency {} ms)",
        starts,
        abs_ms.len(),
        spacing_ms,
        capture_latency_ms
    );
    // p50/p99/max of sorted figures.
    let spread = |v: &[f64]| {
        format!(
            "p50 {:.2}  p99 {:.2}  max {:.2}",
            pct(v, 0.5),
            pct(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        )
    };
    println!(
        "  |heard − scheduled| (ms): {}   [target p99 ≤ 5 ms]",
        spread(&magnitude)
    );
    println!(
        "  heard − scheduled, signed (ms; < 0 = early): p50 {:.2}  min {:.2}  max {:.2}",
        med,
        sorted.first().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN)
    );
    println!("  |jitter| around the median (ms): {}", spread(&jitter));
    println!(
        "  player's first_sample_at (device-reported play time) − scheduled (ms): {}",
        spread(&sw)
    );
    Ok(())
}

fn start_offset_child(args: &[String]) -> R<()> {
    let beep = PathBuf::from(&args[0]);
    let first: chrono::DateTime<Utc> = args[1].parse()?;
    let starts: usize = args[2].parse()?;
    let spacing: i64 = args[3].parse()?;
    let mut out = OutputConfig::new("device");
    out.sample_rate = Some(44100);
    out.channels = Some(2);
    let loud = LoudnessSettings {
        enabled: false,
        cache_dir: None,
        ..LoudnessSettings::default()
    };
    let (p, ev) = Player::spawn(PlayerConfig::new(out, loud))?;
    for i in 0..starts {
        p.load(Session {
            airing_id: format!("s{i}"),
            items: vec![beep.clone()],
            max_secs: None,
            start_at: first + chrono::Duration::milliseconds(i as i64 * spacing),
        })?;
    }
    let mut done = 0;
    while done < starts {
        if let PlayerEvent::Finished {
            evidence,
            airing_id,
            ..
        } = ev.recv_timeout(Duration::from_secs(30))?
        {
            done += 1;
            let i: i64 = airing_id[1..].parse()?;
            let sched = first + chrono::Duration::milliseconds(i * spacing);
            if let Some(t) = evidence.and_then(|e| e.first_sample_at) {
                println!(
                    "started_offset_ms {}",
                    (t - sched).num_microseconds().unwrap_or(0) as f64 / 1000.0
                );
            }
        }
    }
    p.shutdown()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn long_mp3(dir: &Path, minutes: u64) -> R<PathBuf> {
    let wav = dir.join("long.wav");
    let mp3 = dir.join("long.mp3");
    let t = Instant::now();
    sh(Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2", "-b", "16"])
        .arg(&wav)
        .args([
            "synth",
            &format!("{}", minutes * 60),
            "pinknoise",
            "tremolo",
            "0.3",
            "60",
            "gain",
            "-12",
        ]))?;
    sh(Command::new("lame")
        .args(["--quiet", "-b", "128"])
        .arg(&wav)
        .arg(&mp3))?;
    std::fs::remove_file(&wav)?;
    eprintln!(
        "made a {minutes}-minute 128 kbps MP3 in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(mp3)
}

fn player_render(mp3: &Path, out: &Path, cache: &Path, rate: u32) -> R<f64> {
    player_render_with(mp3, out, cache, rate, true)
}

fn player_render_with(mp3: &Path, out: &Path, cache: &Path, rate: u32, loudness: bool) -> R<f64> {
    let cfg = OutputConfig {
        spec: format!("wav:{}", out.display()),
        sample_rate: Some(rate),
        channels: Some(2),
        pacing: Pacing::AsFastAsPossible,
        latency_ms: None,
        underrun_wait_ms: None,
        publish: None,
    };
    let loud = LoudnessSettings {
        enabled: loudness,
        cache_dir: Some(cache.to_path_buf()),
        ..LoudnessSettings::default()
    };
    let t = Instant::now();
    let (p, ev) = Player::spawn(PlayerConfig::new(cfg, loud))?;
    p.load(Session {
        airing_id: "r".into(),
        items: vec![mp3.to_path_buf()],
        max_secs: None,
        start_at: Utc::now(),
    })?;
    loop {
        if let PlayerEvent::Finished { outcome, .. } = ev.recv()? {
            eprintln!("render outcome {outcome:?}");
            break;
        }
    }
    p.shutdown()?;
    Ok(t.elapsed().as_secs_f64())
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Amplitude in dB of `freq` Hz over one second from `from` (mono `x` at `rate`; integer
/// frequencies on exact bins, so no window and no leakage).
fn tone_db(x: &[f32], rate: u32, from: usize, freq: f64) -> f64 {
    let n = rate as usize;
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let (mut re, mut im) = (0f64, 0f64);
    for k in 0..n {
        let v = f64::from(x[from + k]);
        re += v * (w * k as f64).cos();
        im -= v * (w * k as f64).sin();
    }
    20.0 * (2.0 * (re * re + im * im).sqrt() / n as f64)
        .max(1e-20)
        .log10()
}

fn read_mono(path: &Path) -> R<Vec<f32>> {
    let mut r = hound::WavReader::open(path)?;
    let spec = r.spec();
    let ch = usize::from(spec.channels);
    let all: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|x| x.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()?
        }
    };
    Ok(all.chunks_exact(ch).map(|f| f[0]).collect())
}

fn images() -> R<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let has_ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let tones = |name: &str, rate: u32, freqs: &[u32]| -> R<PathBuf> {
        let p = d.join(name);
        let mut c = Command::new("sox");
        c.args([
            "-n",
            "-r",
            &rate.to_string(),
            "-c",
            "1",
            "-b",
            "32",
            "-e",
            "floating-point",
        ])
        .arg(&p)
        .args(["synth", "3"]);
        for f in freqs {
            c.args(["sine", &f.to_string()]);
        }
        sh(c.args(["remix", "-", "vol", "0.05"]))?;
        Ok(p)
    };
    // Each resampler's 48 kHz version of `src`.
    let convert = |src: &Path, tag: &str| -> R<Vec<(String, Vec<f32>)>> {
        let mut out = Vec::new();
        let ours = d.join(format!("{tag}-loa.wav"));
        player_render_with(src, &ours, &d.join("cache"), 48_000, false)?;
        out.push(("loa (rubato FFT)".to_string(), read_mono(&ours)?));
        let sox = d.join(format!("{tag}-sox.wav"));
        sh(Command::new("sox")
            .arg(src)
            .args(["-b", "32", "-e", "floating-point"])
            .arg(&sox)
            .args(["rate", "-v", "48000"]))?;
        out.push(("sox rate -v".to_string(), read_mono(&sox)?));
        if has_ffmpeg {
            let ff = d.join(format!("{tag}-ffmpeg.wav"));
            sh(Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-i"])
                .arg(src)
                .args([
                    "-af",
                    "aresample=resampler=soxr",
                    "-ar",
                    "48000",
                    "-c:a",
                    "pcm_f32le",
                ])
                .arg(&ff))?;
            out.push(("ffmpeg soxr".to_string(), read_mono(&ff)?));
        }
        Ok(out)
    };
    println!("images: load avg {}", load_avg());
    let f16 = [1000u32, 3000, 6000, 7000];
    let src = tones("in16.wav", 16_000, &f16)?;
    for (name, x) in convert(&src, "16k")? {
        let worst = f16
            .iter()
            .map(|&f| {
                let tone = tone_db(&x, 48_000, 48_000, f64::from(f));
                let image = [16_000 - f, 16_000 + f, 32_000 - f, 32_000 + f]
                    .iter()
                    .filter(|&&i| i < 24_000)
                    .map(|&i| tone_db(&x, 48_000, 48_000, f64::from(i)))
                    .fold(f64::NEG_INFINITY, f64::max);
                tone - image
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "  16 kHz → 48 kHz, image rejection (worst of 1/3/6/7 kHz): {name}: {worst:.1} dB"
        );
    }
    let f44 = [
        20u32, 100, 1000, 5000, 10_000, 11_025, 15_000, 18_000, 19_000, 20_000,
    ];
    let src = tones("in44.wav", 44_100, &f44)?;
    let input = read_mono(&src)?;
    for (name, x) in convert(&src, "44k")? {
        let worst = f44
            .iter()
            .map(|&f| {
                let want = tone_db(&input, 44_100, 44_100, f64::from(f));
                (tone_db(&x, 48_000, 48_000, f64::from(f)) - want).abs()
            })
            .fold(0f64, f64::max);
        println!("  44.1 kHz → 48 kHz, worst level error 20 Hz–20 kHz: {name}: {worst:.4} dB");
    }
    Ok(())
}

/// CPU seconds (user + system) used so far by this process (`RUSAGE_SELF`, all threads) or by
/// its waited-for children (`RUSAGE_CHILDREN`).
fn cpu_secs(who: libc::c_int) -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Runs of the warm render, each paired with a reference run right after it.
const WARM_PAIRS: usize = 3;

fn render(minutes: u64, given: Option<PathBuf>, rate: u32) -> R<()> {
    let dir = tempfile::tempdir()?;
    let mp3 = match given {
        Some(p) => p,
        None => long_mp3(dir.path(), minutes)?,
    };
    let cache = dir.path().join("cache");
    let has_ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let reference = if has_ffmpeg {
        format!("ffmpeg -i x.mp3 -af aresample=resampler=soxr -ar {rate} out.wav")
    } else {
        format!("sox x.mp3 -r {rate} out.wav (ffmpeg not installed)")
    };
    // (wall, CPU) seconds of one reference decode.
    let run_reference = || -> R<(f64, f64)> {
        let k0 = cpu_secs(libc::RUSAGE_CHILDREN);
        let t = Instant::now();
        let out = dir.path().join("f.wav");
        if has_ffmpeg {
            sh(Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-i"])
                .arg(&mp3)
                .args(["-af", "aresample=resampler=soxr", "-ar", &rate.to_string()])
                .arg(&out))?;
        } else {
            sh(Command::new("sox")
                .arg(&mp3)
                .args(["-r", &rate.to_string()])
                .arg(&out))?;
        }
        Ok((
            t.elapsed().as_secs_f64(),
            cpu_secs(libc::RUSAGE_CHILDREN) - k0,
        ))
    };
    // (wall, CPU) seconds of one player render.
    let run_player = |name: &str| -> R<(f64, f64)> {
        let c0 = cpu_secs(libc::RUSAGE_SELF);
        let wall = player_render(&mp3, &dir.path().join(name), &cache, rate)?;
        Ok((wall, cpu_secs(libc::RUSAGE_SELF) - c0))
    };
    println!(
        "render: {minutes} min of 44.1 kHz 128 kbps MP3 → {rate} Hz stereo WAV (32-bit float); load avg {}",
        load_avg()
    );
    println!(
        "  reference: {reference}; each loa run is paired with a reference run right after it"
    );
    let cold = run_player("a.wav")?;
    let cold_ref = run_reference()?;
    println!(
        "  cold cache (measure + render): {:.2} s vs {:.2} s = {:.2}× wall; CPU {:.2} s vs {:.2} s = {:.2}×",
        cold.0,
        cold_ref.0,
        cold.0 / cold_ref.0,
        cold.1,
        cold_ref.1,
        cold.1 / cold_ref.1
    );
    let mut wall_ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    for i in 0..WARM_PAIRS {
        let warm = run_player("b.wav")?;
        let r = run_reference()?;
        println!(
            "  warm cache (render only) #{}: {:.2} s vs {:.2} s = {:.2}× wall; CPU {:.2} s vs {:.2} s = {:.2}×",
            i + 1,
            warm.0,
            r.0,
            warm.0 / r.0,
            warm.1,
            r.1,
            warm.1 / r.1
        );
        wall_ratios.push(warm.0 / r.0);
        cpu_ratios.push(warm.1 / r.1);
    }
    wall_ratios.sort_by(f64::total_cmp);
    cpu_ratios.sort_by(f64::total_cmp);
    println!(
        "  warm cache, median of {WARM_PAIRS}: {:.2}× wall, {:.2}× CPU   [target ≤ 1.5× wall; warm cache: the daemon measures at schedule load, never at air time]",
        pct(&wall_ratios, 0.5),
        pct(&cpu_ratios, 0.5)
    );
    println!(
        "  (CPU = user + sys over all threads; on a busy machine the wall ratio follows the CPU ratio, on an idle 2-core one the meter thread runs beside the decoder)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn vm(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|x| x.parse().ok()))
        })
        .unwrap_or(0)
}

fn rss(minutes: u64, realtime_secs: u64) -> R<()> {
    let dir = tempfile::tempdir()?;
    let mp3 = long_mp3(dir.path(), minutes)?;
    let cache = dir.path().join("cache");
    let loud = LoudnessSettings {
        cache_dir: Some(cache.clone()),
        ..LoudnessSettings::default()
    };
    // Warm the cache first, as the daemon does at schedule load.
    loa::loudness::LoudnessCache::open(Some(&cache)).measure(&mp3)?;
    let mut rt = OutputConfig::new("null");
    rt.sample_rate = Some(44100);
    let (p, ev) = Player::spawn(PlayerConfig::new(rt, loud.clone()))?;
    std::thread::sleep(Duration::from_millis(500));
    // Reset the high-water mark so it measures from the idle player on.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let idle = vm("VmRSS:");
    let t = Instant::now();
    p.load(Session {
        airing_id: "rt".into(),
        items: vec![mp3.clone()],
        max_secs: Some(realtime_secs as f64),
        start_at: Utc::now(),
    })?;
    while !matches!(ev.recv()?, PlayerEvent::Finished { .. }) {}
    let after_rt = vm("VmHWM:");
    let rt_secs = t.elapsed().as_secs_f64();
    p.shutdown()?;
    let mut fast = OutputConfig::new("null");
    fast.sample_rate = Some(44100);
    fast.pacing = Pacing::AsFastAsPossible;
    let (p, ev) = Player::spawn(PlayerConfig::new(fast, loud))?;
    p.load(Session {
        airing_id: "fast".into(),
        items: vec![mp3],
        max_secs: None,
        start_at: Utc::now(),
    })?;
    while !matches!(ev.recv()?, PlayerEvent::Finished { .. }) {}
    p.shutdown()?;
    let after_fast = vm("VmHWM:");
    println!("rss: idle player {} KiB", idle);
    println!(
        "  peak after {realtime_secs} s airing in real time: {} KiB (+{} KiB) [{:.1} s]",
        after_rt,
        after_rt.saturating_sub(idle),
        rt_secs
    );
    println!(
        "  peak after airing the whole {minutes}-min session (null, as fast as possible): {} KiB (+{} KiB)",
        after_fast,
        after_fast.saturating_sub(idle)
    );
    println!("  target: ≤ 12 MB (12288 KiB) above the idle player");
    Ok(())
}
