//! EBU R128 loudness of audio files, measured once per file and cached by the file's SHA-256.
//!
//! **Invariant:** a cache entry is keyed by the SHA-256 of the file's bytes, so an edited file is
//! never normalised with a stale measurement, and a renamed or copied one is never measured twice.
//! Only complete, decodable files get an entry; a truncated or undecodable file is an error every
//! time it is asked for. The cache is a small JSON file written atomically (temp file + rename), so
//! a crash leaves the old cache or the new one, and a corrupt cache is treated as empty.

use crate::media::{self, DecodedStream, MediaError};
use crate::meter::ChunkWorker;
use ebur128::{EbuR128, Mode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// EBU R128 programme loudness target.
pub const DEFAULT_TARGET_LUFS: f64 = -23.0;
/// EBU R128 maximum true peak.
pub const DEFAULT_MAX_TRUE_PEAK_DBTP: f64 = -1.0;
/// Never boost more than this: a near-silent file must not be turned into loud hiss.
pub const DEFAULT_MAX_GAIN_DB: f64 = 20.0;
/// File name of the cache inside the cache directory.
pub const CACHE_FILE_NAME: &str = "loudness-cache.json";

/// How items are normalised (per station).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoudnessSettings {
    /// `false`: items air at their own level (gain 0 dB); they are still measured for the cache.
    pub enabled: bool,
    pub target_lufs: f64,
    pub max_true_peak_dbtp: f64,
    pub max_gain_db: f64,
    /// Where the cache file lives; `None` keeps measurements in memory only.
    pub cache_dir: Option<PathBuf>,
}

impl Default for LoudnessSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            target_lufs: DEFAULT_TARGET_LUFS,
            max_true_peak_dbtp: DEFAULT_MAX_TRUE_PEAK_DBTP,
            max_gain_db: DEFAULT_MAX_GAIN_DB,
            cache_dir: default_cache_dir(),
        }
    }
}

/// `$XDG_CACHE_HOME/loa`, else `$HOME/.cache/loa`, else none.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("loa"));
    }
    std::env::var_os("HOME")
        .filter(|x| !x.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("loa"))
}

/// How much louder a mono signal measures when it is played on two channels (10·log10 2 dB).
pub const DUAL_MONO_GAIN_DB: f64 = 3.010_299_956_639_812;

/// One file's measurement (in its own format, before any conversion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileLoudness {
    pub sha256: String,
    /// `None` when the whole file is below the absolute gate (silence).
    pub integrated_lufs: Option<f64>,
    /// Highest true peak over all channels; `None` when the file is all zeros.
    pub true_peak_dbtp: Option<f64>,
    pub sample_rate: u32,
    pub channels: u16,
    pub frames: u64,
    pub duration_secs: f64,
}

impl FileLoudness {
    /// The gain (dB) that brings this file to the target without exceeding the true-peak ceiling,
    /// as measured in its own channel layout.
    pub fn gain_db(&self, settings: &LoudnessSettings) -> f64 {
        self.gain_db_on(settings, self.channels)
    }

    /// The gain (dB) for airing on an output of `out_channels`: a mono file on a stereo (or
    /// wider) output sounds on two channels ("dual mono", BS.1770), which is
    /// [`DUAL_MONO_GAIN_DB`] louder than the mono measurement, so it is turned down by that much.
    pub fn gain_db_on(&self, settings: &LoudnessSettings, out_channels: u16) -> f64 {
        if !settings.enabled {
            return 0.0;
        }
        let Some(mut lufs) = self.integrated_lufs else {
            return 0.0;
        };
        if self.channels == 1 && out_channels >= 2 {
            lufs += DUAL_MONO_GAIN_DB;
        }
        let mut gain = settings.target_lufs - lufs;
        if let Some(tp) = self.true_peak_dbtp {
            gain = gain.min(settings.max_true_peak_dbtp - tp);
        }
        gain.min(settings.max_gain_db)
    }
}

/// Errors measuring or caching.
#[derive(Debug, thiserror::Error)]
pub enum LoudnessError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("{path}: cannot measure loudness: {reason}")]
    Meter { path: PathBuf, reason: String },
    #[error("loudness cache {path}: cannot write: {source} (measurements stay in memory)")]
    CacheWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Decode `path` to its end and measure it (no cache). Also the completeness check: a truncated
/// file is an error here, before it is ever aired.
pub fn measure_file(path: &Path, sha256: &str) -> Result<FileLoudness, LoudnessError> {
    let mut stream = DecodedStream::open_native(path)?;
    let (rate, channels) = (stream.sample_rate(), stream.channels());
    let meter_err = |e: ebur128::Error| LoudnessError::Meter {
        path: path.to_path_buf(),
        reason: format!("{e:?}"),
    };
    let r128 = EbuR128::new(u32::from(channels), rate, Mode::I).map_err(meter_err)?;
    let thread_err = |e: std::io::Error| LoudnessError::Meter {
        path: path.to_path_buf(),
        reason: format!("cannot start an analysis thread: {e}"),
    };
    // The R128 filters and the true-peak scan each run on their own thread, overlapping
    // decoding.
    let mut loudness = ChunkWorker::spawn(
        "loa-loudness",
        (r128, None),
        |(r, err): &mut (EbuR128, Option<ebur128::Error>), s: &[f32]| {
            if let Err(e) = r.add_frames_f32(s)
                && err.is_none()
            {
                *err = Some(e);
            }
        },
    )
    .map_err(thread_err)?;
    let mut true_peak = ChunkWorker::spawn(
        "loa-truepeak",
        TruePeakScanner::new(rate, channels),
        TruePeakScanner::push,
    )
    .map_err(thread_err)?;
    let mut buf = vec![0f32; 2048 * usize::from(channels)];
    loop {
        let n = stream.read(&mut buf);
        if n == 0 {
            break;
        }
        loudness.push(&buf[..n]);
        true_peak.push(&buf[..n]);
    }
    stream.check_complete()?;
    let thread_failed = || LoudnessError::Meter {
        path: path.to_path_buf(),
        reason: "an analysis thread failed".into(),
    };
    let (r128, err) = loudness.finish().ok_or_else(thread_failed)?;
    let tp = true_peak.finish().ok_or_else(thread_failed)?.peak();
    if let Some(e) = err {
        return Err(meter_err(e));
    }
    let integrated_lufs = r128.loudness_global().ok().filter(|x| x.is_finite());
    let frames = stream.frames_read();
    Ok(FileLoudness {
        sha256: sha256.to_string(),
        integrated_lufs,
        true_peak_dbtp: (tp > 0.0).then(|| 20.0 * tp.log10()),
        sample_rate: rate,
        channels,
        frames,
        duration_secs: frames as f64 / f64::from(rate.max(1)),
    })
}

/// Taps of the true-peak interpolation filter over all phases (as in `ebur128`).
const TRUE_PEAK_TAPS: usize = 48;

/// The true peak of interleaved `f32` audio: the highest absolute value of the signal
/// oversampled 4× (below 96 kHz; 2× below 192 kHz; not at all from 192 kHz on) by the windowed
/// sinc polyphase interpolator `ebur128` uses, or of the samples themselves if higher.
///
/// It computes exactly what `ebur128`'s `Mode::TRUE_PEAK` computes (same coefficients, same
/// order of operations in `f32`: the unit tests compare the two bit for bit), but over blocks of
/// one channel at a time so the compiler can vectorise it: a file's analysis then costs a
/// fraction of `ebur128`'s frame-by-frame scan.
#[derive(Debug, Clone)]
pub struct TruePeakScanner {
    channels: usize,
    /// Oversampling factor (1: none).
    factor: usize,
    /// `coeffs[p][t]`: weight of the `t`-th newest input sample in output phase `p`.
    coeffs: Vec<Vec<f32>>,
    /// Per channel: the last `taps - 1` input samples, oldest first.
    history: Vec<Vec<f32>>,
    /// Scratch: one channel's history followed by the current block.
    scratch: Vec<f32>,
    /// Per channel: highest interpolated and highest sample value so far.
    interpolated_peak: Vec<f32>,
    sample_peak: Vec<f64>,
}

impl TruePeakScanner {
    /// A scanner for `channels` at `rate` Hz.
    pub fn new(rate: u32, channels: u16) -> Self {
        let factor = if rate < 96_000 {
            4
        } else if rate < 192_000 {
            2
        } else {
            1
        };
        let taps = TRUE_PEAK_TAPS / factor;
        let coeffs = (0..factor)
            .map(|p| {
                (0..taps)
                    .map(|t| {
                        // The same formula, in the same precision, as `ebur128`'s interpolator.
                        let j = (t * factor + p) as f64;
                        let window = TRUE_PEAK_TAPS as f64;
                        let w = 0.5 * (1.0 - f64::cos(2.0 * std::f64::consts::PI * j / window));
                        let m = j - window / 2.0;
                        let x = m * std::f64::consts::PI / factor as f64;
                        (if m.abs() > 0.000_001 {
                            w * x.sin() / x
                        } else {
                            w
                        }) as f32
                    })
                    .collect()
            })
            .collect();
        let channels = usize::from(channels.max(1));
        Self {
            channels,
            factor,
            coeffs,
            history: vec![vec![0.0; taps - 1]; channels],
            scratch: Vec::new(),
            interpolated_peak: vec![0.0; channels],
            sample_peak: vec![0.0; channels],
        }
    }

    /// Scan `samples` (interleaved, whole frames).
    pub fn push(&mut self, samples: &[f32]) {
        let ch = self.channels;
        let frames = samples.len() / ch;
        if frames == 0 {
            return;
        }
        for c in 0..ch {
            let history = &mut self.history[c];
            let keep = history.len();
            self.scratch.clear();
            self.scratch.extend_from_slice(history);
            self.scratch
                .extend(samples[c..].iter().step_by(ch).take(frames));
            // f32 → f64 is exact and monotone: the f32 maximum is `ebur128`'s f64 maximum.
            let block_peak = crate::meter::abs_peak(&self.scratch[keep..]);
            self.sample_peak[c] = self.sample_peak[c].max(f64::from(block_peak));
            if self.factor == 1 {
                continue;
            }
            let mut peak = self.interpolated_peak[c];
            for phase in &self.coeffs {
                peak = peak.max(interpolated_peak(&self.scratch, phase));
            }
            self.interpolated_peak[c] = peak;
            history.clear();
            history.extend_from_slice(&self.scratch[self.scratch.len() - keep..]);
        }
    }

    /// The highest true peak over all channels (linear; 0 for silence).
    pub fn peak(&self) -> f64 {
        self.interpolated_peak
            .iter()
            .zip(&self.sample_peak)
            .map(|(&i, &s)| f64::from(i).max(s))
            .fold(0.0, f64::max)
    }
}

/// Outputs computed side by side: several SIMD registers' worth, so that the additions of
/// neighbouring outputs (independent) overlap instead of waiting on one another.
const LANES: usize = 32;

/// Highest `|y[n]|` for `y[n] = Σ_t coeffs[t] · x[n + taps - 1 - t]`, `n` over every position
/// where the window fits in `x` (`taps` = `coeffs.len()`), summed in `t` order.
fn interpolated_peak(x: &[f32], coeffs: &[f32]) -> f32 {
    let taps = coeffs.len();
    let outputs = (x.len() + 1).saturating_sub(taps);
    let mut lane_max = [0f32; LANES];
    let mut n = 0;
    while n + LANES <= outputs {
        let mut acc = [0f32; LANES];
        for (t, &h) in coeffs.iter().enumerate() {
            let base = n + taps - 1 - t;
            let xs = &x[base..base + LANES];
            for (a, &v) in acc.iter_mut().zip(xs) {
                *a += v * h;
            }
        }
        for (m, a) in lane_max.iter_mut().zip(&acc) {
            *m = m.max(a.abs());
        }
        n += LANES;
    }
    let mut peak = lane_max.iter().fold(0f32, |a, &b| a.max(b));
    while n < outputs {
        let mut acc = 0f32;
        for (t, &h) in coeffs.iter().enumerate() {
            acc += x[n + taps - 1 - t] * h;
        }
        peak = peak.max(acc.abs());
        n += 1;
    }
    peak
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    v: u32,
    entries: BTreeMap<String, FileLoudness>,
}

/// The per-station cache of measurements.
#[derive(Debug, Default)]
pub struct LoudnessCache {
    file: Option<PathBuf>,
    entries: BTreeMap<String, FileLoudness>,
}

impl LoudnessCache {
    /// Open the cache in `dir` (created on first write). A missing or unreadable cache is empty:
    /// the cost is re-measuring, never a refusal to air.
    pub fn open(dir: Option<&Path>) -> Self {
        let file = dir.map(|d| d.join(CACHE_FILE_NAME));
        let entries = file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| match serde_json::from_slice::<CacheFile>(&bytes) {
                Ok(c) => Some(c.entries),
                Err(e) => {
                    tracing::warn!("loudness cache unreadable ({e}); starting empty");
                    None
                }
            })
            .unwrap_or_default();
        Self { file, entries }
    }

    /// Number of cached measurements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached measurement for a file hash.
    pub fn get(&self, sha256: &str) -> Option<&FileLoudness> {
        self.entries.get(sha256)
    }

    /// Hash `path`, return its cached measurement or measure it now and store it. The returned
    /// `bool` is true when it was measured (a cache miss).
    pub fn measure(&mut self, path: &Path) -> Result<(FileLoudness, bool), LoudnessError> {
        let sha = media::sha256_file(path)?;
        if let Some(m) = self.entries.get(&sha) {
            return Ok((m.clone(), false));
        }
        let m = measure_file(path, &sha)?;
        self.entries.insert(sha, m.clone());
        if let Err(e) = self.save() {
            tracing::warn!("{e}");
        }
        Ok((m, true))
    }

    /// Write the cache atomically.
    pub fn save(&self) -> Result<(), LoudnessError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let body = CacheFile {
                v: 1,
                entries: self.entries.clone(),
            };
            let bytes = serde_json::to_vec_pretty(&body).map_err(std::io::Error::other)?;
            let tmp = file.with_extension("json.tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, file)
        };
        write().map_err(|source| LoudnessError::CacheWrite {
            path: file.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(lufs: Option<f64>, tp: Option<f64>) -> FileLoudness {
        FileLoudness {
            sha256: String::new(),
            integrated_lufs: lufs,
            true_peak_dbtp: tp,
            sample_rate: 48000,
            channels: 2,
            frames: 0,
            duration_secs: 0.0,
        }
    }

    #[test]
    fn gain_reaches_target_unless_true_peak_or_boost_limit_bites() {
        let s = LoudnessSettings {
            cache_dir: None,
            ..LoudnessSettings::default()
        };
        let check = |lufs, tp, expected: f64| {
            let g = m(lufs, tp).gain_db(&s);
            assert!(
                (g - expected).abs() < 1e-9,
                "{lufs:?} {tp:?}: {g} != {expected}"
            );
        };
        check(Some(-16.0), Some(-3.0), -7.0); // loud file: turned down to -23
        check(Some(-30.0), Some(-20.0), 7.0); // quiet file: turned up 7 dB, peak -13 dBTP
        check(Some(-30.0), Some(-4.0), 3.0); // boost stops at -1 dBTP
        check(Some(-60.0), Some(-40.0), 20.0); // boost capped
        check(None, None, 0.0); // silence: left alone
        let off = LoudnessSettings {
            enabled: false,
            ..s.clone()
        };
        assert_eq!(m(Some(-16.0), Some(-3.0)).gain_db(&off), 0.0);
    }

    #[test]
    fn a_mono_file_on_a_stereo_output_is_aimed_as_dual_mono() {
        let s = LoudnessSettings {
            cache_dir: None,
            ..LoudnessSettings::default()
        };
        let mono = FileLoudness {
            channels: 1,
            ..m(Some(-30.0), Some(-20.0))
        };
        assert!((mono.gain_db_on(&s, 1) - 7.0).abs() < 1e-9);
        assert!((mono.gain_db_on(&s, 2) - (7.0 - DUAL_MONO_GAIN_DB)).abs() < 1e-9);
        // A stereo file is measured as it airs.
        assert!((m(Some(-30.0), Some(-20.0)).gain_db_on(&s, 2) - 7.0).abs() < 1e-9);
    }

    /// `ebur128`'s own true peak (highest over channels) of `samples`.
    fn ebur128_true_peak(samples: &[f32], rate: u32, channels: u16) -> f64 {
        let mut r = EbuR128::new(u32::from(channels), rate, Mode::TRUE_PEAK).unwrap();
        r.add_frames_f32(samples).unwrap();
        (0..u32::from(channels))
            .map(|c| r.true_peak(c).unwrap())
            .fold(0.0, f64::max)
    }

    /// Scan in pushes of varying size (1, 7, 1000, ... frames).
    fn scanned(samples: &[f32], rate: u32, channels: u16) -> f64 {
        let mut tp = TruePeakScanner::new(rate, channels);
        let ch = usize::from(channels);
        let mut rest = samples;
        for frames in [1usize, 7, 1000, 3, 4096].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (frames * ch).min(rest.len());
            tp.push(&rest[..n]);
            rest = &rest[n..];
        }
        tp.peak()
    }

    #[test]
    fn true_peak_scanner_equals_ebur128_bit_for_bit() {
        // Noise with sharp steps (inter-sample peaks above the sample peak), every code path:
        // 4× (mono, stereo, 6 channels), 2× (96 kHz), none (192 kHz).
        let mut seed = 0x2545_f491_u32;
        let mut noise = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let x = (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                    if i % 97 < 3 {
                        x.signum() * 0.99
                    } else {
                        x * 0.5
                    }
                })
                .collect()
        };
        for (rate, channels) in [(44100, 2), (48000, 1), (48000, 6), (96000, 2), (192000, 2)] {
            let s = noise(20_011 * usize::from(channels));
            let ours = scanned(&s, rate, channels);
            let theirs = ebur128_true_peak(&s, rate, channels);
            assert_eq!(ours, theirs, "{rate} Hz × {channels}");
            let sample_peak = s.iter().fold(0f32, |m, x| m.max(x.abs()));
            if rate < 192_000 {
                // The interpolation, not the sample peak, decided it.
                assert!(
                    ours > f64::from(sample_peak) + 0.05,
                    "{rate}: {ours} {sample_peak}"
                );
            } else {
                assert_eq!(ours, f64::from(sample_peak));
            }
        }
        // Real decoded files.
        for name in ["tone.flac", "tone.mp3", "tone.ogg", "tone.wav", "long.mp3"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/audio")
                .join(name);
            let mut st = DecodedStream::open_native(&path).unwrap();
            let (rate, channels) = (st.sample_rate(), st.channels());
            let mut all = Vec::new();
            let mut buf = vec![0f32; 4096];
            loop {
                let n = st.read(&mut buf);
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            assert_eq!(
                scanned(&all, rate, channels),
                ebur128_true_peak(&all, rate, channels),
                "{name}"
            );
        }
        assert_eq!(TruePeakScanner::new(44100, 2).peak(), 0.0);
    }
}
