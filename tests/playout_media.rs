//! Decoding the committed fixtures: formats, declared vs decoded length, bad files.

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
