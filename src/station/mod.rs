//! The station daemon (to be written).

pub mod scheduler;

use std::path::PathBuf;

/// Default root of station data directories: `data/<station>` relative to the working directory.
pub const DEFAULT_DATA_ROOT: &str = "data";

/// The default data directory of `station`.
pub fn default_data_dir(station: &str) -> PathBuf {
    PathBuf::from(DEFAULT_DATA_ROOT).join(station)
}
