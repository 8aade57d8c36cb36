//! (to be written) Parsing and validation of schedule files.

use std::fmt;
use std::path::PathBuf;

/// One problem in a schedule file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {} ({})",
            self.file.display(),
            self.line,
            self.column,
            self.field,
            self.message,
            self.hint
        )
    }
}

/// Every problem found in one or more files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} schedule error(s)", .0.len())]
pub struct ScheduleErrors(pub Vec<ScheduleError>);

/// Parse and validate a station file's text.
pub fn parse_station(
    path: &std::path::Path,
    _text: &str,
    _catalog: &super::AudioCatalog,
) -> Result<super::Station, ScheduleErrors> {
    Err(ScheduleErrors(vec![ScheduleError {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        field: String::new(),
        message: "not yet implemented".into(),
        hint: String::new(),
    }]))
}
