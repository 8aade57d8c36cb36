//! Reporting periods: a month (`YYYY-MM`) or a year to date (`YYYY`), as inclusive local dates.
//!
//! **Invariant:** a period is a non-empty inclusive range of local dates; whether it is over is
//! decided against an injected `now`, never the system clock.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ReportError;

/// Offset on which the collector tells dates, months and "now" in reports (Vietnam: UTC+7, no
/// DST).
pub const REPORT_UTC_OFFSET_SECS: i32 = 7 * 3600;

/// The collector's reporting offset.
pub fn report_offset() -> FixedOffset {
    // A constant within ±24 h: always valid.
    FixedOffset::east_opt(REPORT_UTC_OFFSET_SECS).expect("constant offset is valid")
}

/// A reporting period of local dates, inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub label: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// `YYYY-MM` → that month; `YYYY` → that year, up to and including `today` when `today` falls in
    /// it (the year-to-date report for the 15/11 deadline).
    pub fn parse(label: &str, today: NaiveDate) -> Result<Self, ReportError> {
        let bad = || ReportError::BadPeriod(label.to_string());
        let parts: Vec<&str> = label.split('-').collect();
        let num = |s: &str, len: usize| -> Result<u32, ReportError> {
            if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        match parts.as_slice() {
            [y, m] => {
                let (y, m) = (num(y, 4)? as i32, num(m, 2)?);
                let from = NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)?;
                let next = if m == 12 {
                    NaiveDate::from_ymd_opt(y + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(y, m + 1, 1)
                }
                .ok_or_else(bad)?;
                Ok(Self {
                    label: label.to_string(),
                    from,
                    to: next - Duration::days(1),
                })
            }
            [y] => {
                let y = num(y, 4)? as i32;
                let from = NaiveDate::from_ymd_opt(y, 1, 1).ok_or_else(bad)?;
                let mut to = NaiveDate::from_ymd_opt(y, 12, 31).ok_or_else(bad)?;
                if today.year() == y {
                    to = today;
                }
                Ok(Self {
                    label: label.to_string(),
                    from,
                    to,
                })
            }
            _ => Err(bad()),
        }
    }

    /// True when the local date of `t` is in the period.
    pub fn contains(&self, t: &DateTime<FixedOffset>) -> bool {
        let d = t.date_naive();
        d >= self.from && d <= self.to
    }

    /// The instant the period ends: midnight after its last day on the collector's reporting
    /// offset (`None` only for a date at the end of chrono's range).
    pub fn end_at(&self) -> Option<DateTime<Utc>> {
        let offset = report_offset();
        (self.to + Duration::days(1))
            .and_hms_opt(0, 0, 0)?
            .and_local_timezone(offset)
            .single()
            .map(|t| t.with_timezone(&Utc))
    }

    /// True when the period is not over at `now` (a month or year to date still running, or
    /// one still to come): its figures are as of `now`.
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        self.end_at().is_none_or(|end| now < end)
    }

    /// The note a report of this period made at `now` carries in its header when the period is
    /// not over (`None` when it is): "Tháng chưa kết thúc — số liệu tính đến 14:05 04/12/2026".
    pub fn open_note(&self, now: DateTime<Utc>) -> Option<String> {
        self.is_open_at(now).then(|| {
            let what = if self.label.len() == 4 {
                "Năm"
            } else {
                "Tháng"
            };
            format!(
                "{what} chưa kết thúc — số liệu tính đến {}",
                now.with_timezone(&report_offset()).format("%H:%M %d/%m/%Y")
            )
        })
    }

    /// Unix seconds bounding every instant whose local date (any offset within ±14 h) is inside.
    pub(super) fn unix_bounds(&self) -> (i64, i64) {
        let start = self
            .from
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp());
        let end = (self.to + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp());
        (
            start.unwrap_or(i64::MIN / 2) - 14 * 3600,
            end.unwrap_or(i64::MAX / 2) + 14 * 3600,
        )
    }
}

/// Which periods a parameter takes, for [`period_problem_vi`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodKind {
    /// `YYYY-MM` only (the station month, `…/airings?month=`).
    Month,
    /// `YYYY-MM` or `YYYY` (the reports).
    MonthOrYear,
}

/// What is wrong with `value` given as the period parameter `field` (`period`: the period of a
/// report's path, *Kỳ báo cáo*), and what to write instead, in Vietnamese: the one text the API's JSON errors (`message`) and the pages show, e.g.
/// "Tham số month «2026-13» không hợp lệ: tháng phải từ 01 đến 12. Tham số month phải có dạng
/// YYYY-MM, ví dụ 2026-11."
pub fn period_problem_vi(field: &str, value: &str, kind: PeriodKind) -> String {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let what = match value.split('-').collect::<Vec<_>>().as_slice() {
        [""] => "để trống".to_string(),
        [y, m] if digits(y, 4) && digits(m, 2) => {
            format!("không có tháng {m} (tháng phải từ 01 đến 12)")
        }
        [y] if digits(y, 4) && kind == PeriodKind::Month => {
            "đây là một năm, cần một tháng".to_string()
        }
        _ => "không đúng dạng".to_string(),
    };
    let shown: String = value.chars().take(40).collect();
    let form = match kind {
        PeriodKind::Month => "YYYY-MM, ví dụ 2026-11".to_string(),
        PeriodKind::MonthOrYear => {
            "YYYY-MM (một tháng, ví dụ 2026-11) hoặc YYYY (từ đầu năm, ví dụ 2026)".to_string()
        }
    };
    // `period` is the report's path segment (`/api/v1/reports/KỲ.csv`), not a query parameter.
    let subject = if field == "period" {
        "Kỳ báo cáo".to_string()
    } else {
        format!("Tham số {field}")
    };
    format!("{subject} «{shown}» không hợp lệ: {what}. {subject} phải có dạng {form}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_period_is_told_in_vietnamese_with_what_to_write() {
        let m = period_problem_vi("month", "2026-13", PeriodKind::Month);
        assert_eq!(
            m,
            "Tham số month «2026-13» không hợp lệ: không có tháng 13 (tháng phải từ 01 đến 12). \
             Tham số month phải có dạng YYYY-MM, ví dụ 2026-11."
        );
        let y = period_problem_vi("period", "abc", PeriodKind::MonthOrYear);
        assert!(
            y.starts_with("Kỳ báo cáo «abc» không hợp lệ: không đúng dạng"),
            "{y}"
        );
        assert!(y.contains("YYYY (từ đầu năm, ví dụ 2026)"), "{y}");
        let y = period_problem_vi("month", "2026", PeriodKind::Month);
        assert!(y.contains("cần một tháng"), "{y}");
    }

    #[test]
    fn periods_parse() {
        let today = NaiveDate::from_ymd_opt(2019, 11, 10).unwrap();
        let p = Period::parse("2019-02", today).unwrap();
        assert_eq!((p.from.day(), p.to.day()), (1, 28));
        let p = Period::parse("2019-12", today).unwrap();
        assert_eq!(p.to, NaiveDate::from_ymd_opt(2019, 12, 31).unwrap());
        let p = Period::parse("2019", today).unwrap();
        assert_eq!(p.to, today);
        let p = Period::parse("2018", today).unwrap();
        assert_eq!(p.to, NaiveDate::from_ymd_opt(2018, 12, 31).unwrap());
        for bad in ["2019-13", "19-03", "2019-3", "x", "2019-03-01", ""] {
            assert!(Period::parse(bad, today).is_err(), "{bad}");
        }
    }
}
