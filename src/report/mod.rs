//! Period reports (a month, or a year to date): reconciliation of every registered station's plan
//! against its stored records, exported as CSV (Excel-friendly, Vietnamese headers), XLSX (summary,
//! every airing, missed/unplanned, signature block) or JSON (the signed records verbatim), and the
//! offline verification of a JSON export.
//!
//! **Invariant:** the JSON export carries each station's records as one contiguous run of
//! sequence numbers with the exact bytes, hashes and signatures the station sent, plus its public
//! key and the station-signed records just before and after the run (when the collector holds
//! them), so [`verify_export`] can prove without the collector that nothing in the run was
//! altered, dropped or reordered and that the run was not cut at its start (nor at its end, when
//! a record follows it).
//!
//! The parts: [`period`] (what a period is), [`source`] (what a report reads, through traits the
//! collector's registry and store implement), [`mod@build`] (reconciling each station's plan
//! against its stored records; no I/O of its own), [`csv`], [`xlsx`] and [`json`] (the exports),
//! [`docx`] (the year-to-date report as an administrative report the office signs),
//! [`mod@render`] (a report in the format asked for), [`verify`] (the offline check of a JSON
//! export), [`words`] (the Vietnamese words of the built-in codes: categories, sources, bulletin
//! airings).

pub mod build;
pub mod csv;
pub mod docx;
pub mod json;
pub mod period;
pub mod render;
pub mod source;
pub mod verify;
pub mod words;
pub mod xlsx;

pub use build::{
    MissingEpisode, PeriodReport, PlanFacts, PlanSource, RunBounds, SchedulePlans, StationSection,
    build, build_with, station_section,
};
pub use csv::{CSV_BULLETIN_HEADER, CSV_HEADERS, write_csv};
pub use json::{EXPORT_FORMAT, EXPORT_VERSION, JsonExport, JsonStation, write_json};
pub use period::{Period, PeriodKind, REPORT_UTC_OFFSET_SECS, period_problem_vi, report_offset};
pub use render::{Format, render};
pub use source::{
    BulletinInfo, CorruptRecord, OneStation, RecordSource, SourceError, StationDirectory,
    StationEntry, StoredRecord,
};
pub use verify::{EXPORT_VERSIONS_READ, StationVerdict, Verdict, verify_export};
pub use words::{bulletin_vi, category_vi, plan_note_vi, relay_vi, source_vi, status_vi};
pub use xlsx::{
    MAX_DATA_ROWS_PER_SHEET, SHEET_AIRINGS, SHEET_EXCEPTIONS, SHEET_SUMMARY, SUMMARY_BULLETINS,
    SUMMARY_HEADERS, SUMMARY_NOT_YET_DUE, to_xlsx, to_xlsx_with_sheet_rows,
};

/// Errors building or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The record source failed (the collector's store: its own error, shown as it is).
    #[error("{0}")]
    Store(#[from] SourceError),
    #[error("{0}")]
    Corrupt(#[from] CorruptRecord),
    #[error("{}", period::period_problem_vi("period", .0, period::PeriodKind::MonthOrYear))]
    BadPeriod(String),
    #[error("cannot write the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the spreadsheet: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}
