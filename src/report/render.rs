//! A report rendered in the format asked for (`--format`, or the extension of an export URL).
//!
//! **Invariant:** each format's bytes are those of its own writer ([`super::csv`],
//! [`super::xlsx`], [`super::json`]); this only chooses.

use super::{PeriodReport, ReportError, to_xlsx, write_csv, write_json};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
    Json,
}

impl Format {
    /// From a file extension or `--format` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Json => "application/json",
        }
    }
}

/// Render a report in `format`.
pub fn render(report: &PeriodReport, format: Format) -> Result<Vec<u8>, ReportError> {
    match format {
        Format::Csv => {
            let mut out = Vec::with_capacity(256 * 1024);
            write_csv(report, &mut out)?;
            Ok(out)
        }
        Format::Xlsx => to_xlsx(report),
        Format::Json => {
            let mut out = Vec::with_capacity(256 * 1024);
            write_json(report, &mut out)?;
            Ok(out)
        }
    }
}
