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
    let r128 =
        EbuR128::new(u32::from(channels), rate, Mode::I | Mode::TRUE_PEAK).map_err(meter_err)?;
    // The R128 filters and true-peak oversampling run on their own thread, overlapping decoding.
    let mut worker = ChunkWorker::spawn(
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
    .map_err(|e| LoudnessError::Meter {
        path: path.to_path_buf(),
        reason: format!("cannot start the analysis thread: {e}"),
    })?;
    // 2048-frame chunks: the worker queue then holds at most ~1 MB (stereo).
    let mut buf = vec![0f32; 2048 * usize::from(channels)];
    loop {
        let n = stream.read(&mut buf);
        if n == 0 {
            break;
        }
        worker.push(&buf[..n]);
    }
    stream.check_complete()?;
    let (r128, err) = worker.finish().ok_or_else(|| LoudnessError::Meter {
        path: path.to_path_buf(),
        reason: "the analysis thread failed".into(),
    })?;
    if let Some(e) = err {
        return Err(meter_err(e));
    }
    let integrated_lufs = r128.loudness_global().ok().filter(|x| x.is_finite());
    let mut tp = 0f64;
    for c in 0..u32::from(channels) {
        tp = tp.max(r128.true_peak(c).map_err(meter_err)?);
    }
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
}
