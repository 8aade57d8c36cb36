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

#[cfg(test)]
mod tests {
    use super::*;

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
