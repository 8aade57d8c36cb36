//! Decoding the committed fixtures: formats, declared vs decoded length, bad files.

mod tools;

use loa::media::{MediaError, probe};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

#[test]
fn every_format_probes_to_its_known_length() {
    for (name, rate, channels, secs) in [
        ("tone.wav", 22050, 1, 1.5),
        ("tone.mp3", 48000, 1, 2.0),
        ("tone.ogg", 32000, 2, 2.0),
        ("tone.flac", 44100, 2, 2.0),
    ] {
        let facts = probe(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (facts.sample_rate, facts.channels),
            (rate, channels),
            "{name}"
        );
        assert!(
            (facts.duration_secs - secs).abs() < 0.03,
            "{name}: {}",
            facts.duration_secs
        );
    }
}

#[test]
fn truncated_mp3_is_named_truncated() {
    let err = probe(&fixture("truncated.mp3")).expect_err("truncated must not probe clean");
    assert!(matches!(err, MediaError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn noise_named_mp3_and_missing_file_are_errors() {
    let err = probe(&fixture("noise.mp3")).expect_err("noise must not decode");
    assert!(matches!(err, MediaError::Undecodable { .. }), "{err}");
    let err = probe(&fixture("absent.mp3")).expect_err("absent file");
    assert!(matches!(err, MediaError::Io { .. }), "{err}");
    assert!(err.to_string().contains("absent.mp3"), "{err}");
}

fn decode(name: &str, rate: u32, channels: u16) -> Vec<f32> {
    let mut s = loa::media::DecodedStream::open(&fixture(name), rate, channels).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0f32; 4096];
    loop {
        let n = s.read(&mut buf);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn stereo_to_mono_averages_both_channels_and_mono_to_stereo_duplicates() {
    // tone.ogg has a different tone in each channel; the mono version carries both.
    let stereo = decode("tone.ogg", 32000, 2);
    let mono = decode("tone.ogg", 32000, 1);
    assert_eq!(stereo.len(), mono.len() * 2);
    for (m, lr) in mono.iter().zip(stereo.chunks_exact(2)) {
        assert!((m - (lr[0] + lr[1]) / 2.0).abs() < 1e-6);
    }
    let up = decode("tone.mp3", 48000, 2);
    let native = decode("tone.mp3", 48000, 1);
    assert_eq!(up.len(), native.len() * 2);
    assert!(
        up.chunks_exact(2)
            .zip(&native)
            .all(|(f, x)| f[0] == *x && f[1] == *x)
    );
}

#[test]
fn loudness_is_measured_once_per_content_and_the_cache_survives_a_restart() {
    use loa::loudness::{CACHE_FILE_NAME, LoudnessCache};
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let a = dir.path().join("a.flac");
    let b = dir.path().join("b.flac"); // same bytes, other name
    std::fs::copy(fixture("tone.flac"), &a).unwrap();
    std::fs::copy(fixture("tone.flac"), &b).unwrap();
    let mut cache = LoudnessCache::open(Some(&cache_dir));
    let (m1, measured) = cache.measure(&a).unwrap();
    assert!(measured);
    assert!(cache_dir.join(CACHE_FILE_NAME).exists());
    let (m2, measured) = cache.measure(&b).unwrap();
    assert!(!measured, "a copy was measured again");
    assert_eq!(m1, m2);
    // A new process (reopened cache) does not measure again either.
    let mut reopened = LoudnessCache::open(Some(&cache_dir));
    assert_eq!(reopened.len(), 1);
    assert!(!reopened.measure(&a).unwrap().1);
    // Different content under the same name is measured afresh.
    std::fs::copy(fixture("tone.ogg"), &a).unwrap();
    let (m3, measured) = reopened.measure(&a).unwrap();
    assert!(measured && m3.sha256 != m1.sha256);
    // A corrupt cache file is treated as empty, not as an error.
    std::fs::write(cache_dir.join(CACHE_FILE_NAME), b"{not json").unwrap();
    assert!(LoudnessCache::open(Some(&cache_dir)).is_empty());
    // Truncated files get no entry and stay an error.
    let mut c = LoudnessCache::open(None);
    assert!(c.measure(&fixture("truncated.mp3")).is_err());
    assert!(c.is_empty());
}

/// A small deterministic PRNG (xorshift64*), so that a failing case can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Probe and decode `bytes` (written to a temp file) on another thread: the call must return
/// (no panic escapes, no hang) within `limit`.
fn must_not_panic_or_hang(bytes: &[u8], ext: &str, what: &str, limit: std::time::Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("case.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| {
            let _ = probe(&p);
            if let Ok(mut s) = loa::media::DecodedStream::open(&p, 48000, 2) {
                let mut buf = vec![0f32; 4096];
                while s.read(&mut buf) > 0 {}
                let _ = s.check_complete();
            }
            if let Ok(mut s) = loa::media::DecodedStream::open_native(&p) {
                let mut buf = vec![0f32; 4096];
                while s.read(&mut buf) > 0 {}
            }
        });
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(limit) {
        Ok(true) => {}
        Ok(false) => {
            let keep = std::env::temp_dir().join(format!("loa-fuzz-panic.{ext}"));
            let _ = std::fs::copy(&path, &keep);
            panic!(
                "{what}: a panic escaped the decoder (case kept at {})",
                keep.display()
            );
        }
        Err(_) => {
            let keep = std::env::temp_dir().join(format!("loa-fuzz-hang.{ext}"));
            let _ = std::fs::copy(&path, &keep);
            panic!(
                "{what}: probe/decode did not return within {limit:?} (case kept at {})",
                keep.display()
            );
        }
    }
}

/// A valid 16-bit PCM WAV header + data with the given header fields.
fn wav_bytes(rate: u32, channels: u16, frames: u32) -> Vec<u8> {
    let block = 2 * u32::from(channels);
    let data = vec![0x10u8; (frames * block) as usize];
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&rate.wrapping_mul(block).to_le_bytes());
    v.extend_from_slice(&(block as u16).to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&data);
    v
}

#[test]
fn sample_rate_zero_and_other_bad_formats_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, channels, expect) in [
        (0u32, 1u16, "sample rate 0 Hz"),
        (1, 1, "sample rate 1 Hz"),
        (7_999, 1, "sample rate 7999 Hz"),
        (1_000_000, 1, "sample rate 1000000 Hz"),
        (48_000, 0, "channels"),
        (48_000, 9, "9 channels"),
    ] {
        let path = dir.path().join(format!("r{rate}c{channels}.wav"));
        std::fs::write(&path, wav_bytes(rate, channels, 4800)).unwrap();
        let err = probe(&path).expect_err("must be refused");
        assert!(matches!(err, MediaError::Undecodable { .. }), "{err}");
        assert!(err.to_string().contains(expect), "{rate}×{channels}: {err}");
        assert!(!err.to_string().contains("NoMem"), "{err}");
    }
}

/// Mutated headers of every format: no panic leaves the decoder, nothing hangs.
#[test]
fn fuzzed_headers_never_panic_or_hang() {
    let limit = std::time::Duration::from_secs(30);
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let cases: &[(&str, &str)] = &[
        ("tone.wav", "wav"),
        ("tone.mp3", "mp3"),
        ("tone.ogg", "ogg"),
        ("tone.flac", "flac"),
    ];
    let rounds: usize = std::env::var("LOA_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    for (name, ext) in cases {
        let orig = std::fs::read(fixture(name)).unwrap();
        // Only the first part of the file (headers and the first packets) is mutated; the
        // file is cut to keep each round fast.
        let keep = orig.len().min(24 * 1024);
        for round in 0..rounds {
            let mut bytes = orig[..keep].to_vec();
            let head = bytes.len().min(256);
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(head);
                bytes[i] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => bytes[i] ^ (1 << rng.below(8)),
                    _ => rng.next() as u8,
                };
            }
            if rng.below(8) == 0 {
                bytes.truncate(rng.below(head).max(1));
            }
            must_not_panic_or_hang(&bytes, ext, &format!("{name} round {round}"), limit);
        }
    }
    // Header fields set to their extremes.
    for (rate, channels) in [
        (0, 1),
        (1, 1),
        (u32::MAX, 2),
        (44_100, 0),
        (44_100, u16::MAX),
    ] {
        must_not_panic_or_hang(&wav_bytes(rate, channels, 100), "wav", "extreme wav", limit);
    }
}

/// 15-minute WAV and FLAC files are probed from their headers (the FLAC's tail decoded to
/// confirm STREAMINFO's length), not decoded; a cut FLAC falls back to decoding and is named
/// truncated; an MP3 without a frame count is decoded.
#[test]
fn probe_reads_exact_headers_instead_of_decoding_15_minute_files() {
    use loa::media::{ProbeMethod, probe_with_method};
    let dir = tempfile::tempdir().unwrap();
    let secs = 15 * 60;
    let rate = 16_000u64;
    for ext in ["wav", "flac"] {
        let path = dir.path().join(format!("long.{ext}"));
        let o = std::process::Command::new(tools::require_tool("sox", "sox"))
            .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
            .arg(&path)
            .args(["synth", &secs.to_string(), "sine", "440", "vol", "0.3"])
            .output()
            .expect("sox");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let t0 = std::time::Instant::now();
        let (facts, method, packets) = probe_with_method(&path).unwrap();
        let took = t0.elapsed();
        assert_eq!(method, ProbeMethod::Header, "{ext}");
        assert_eq!(facts.frames, secs * rate, "{ext}");
        assert_eq!((facts.sample_rate, facts.channels), (16_000, 1));
        // The first packet, plus the last second for FLAC: a few dozen packets, not the
        // thousands of a whole decode.
        assert!(packets < 64, "{ext}: {packets} packets decoded in {took:?}");
    }
    // A FLAC cut short: the header's length is not believed.
    let whole = std::fs::read(dir.path().join("long.flac")).unwrap();
    let cut = dir.path().join("cut.flac");
    std::fs::write(&cut, &whole[..whole.len() / 10]).unwrap();
    let err = probe_with_method(&cut).expect_err("a cut FLAC must not probe clean");
    assert!(matches!(err, MediaError::Truncated { .. }), "{err}");
    // An MP3 (no exact length in its header) is decoded.
    let (_, method, packets) = probe_with_method(&fixture("tone.mp3")).unwrap();
    assert_eq!(method, ProbeMethod::Decoded);
    assert!(packets > 10, "{packets}");
}
