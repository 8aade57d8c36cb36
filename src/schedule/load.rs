//! (to be written) Reading schedule files and probing the audio they name.

use super::{AudioCatalog, ScheduleErrors, Station};
use std::path::{Path, PathBuf};

/// Load and validate one schedule file; audio paths are relative to `audio_root`.
pub fn load(path: &Path, audio_root: &Path) -> Result<(Station, AudioCatalog), ScheduleErrors> {
    let _ = audio_root;
    super::parse_station(path, "", &AudioCatalog::default()).map(|s| (s, AudioCatalog::default()))
}

/// Load every `*.toml` in `dir`.
pub fn load_dir(
    dir: &Path,
    audio_root: &Path,
) -> Vec<(PathBuf, Result<(Station, AudioCatalog), ScheduleErrors>)> {
    let _ = (dir, audio_root);
    Vec::new()
}
