//! (to be written by the crontab work — this is the agreed interface)

use chrono::{DateTime, NaiveDate, TimeZone};

/// A parsed crontab expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crontab {
    source: String,
}

/// A crontab expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CrontabError {
    pub message: String,
}

impl Crontab {
    /// Parse a 5-field (or 6-field, seconds first) crontab expression.
    pub fn parse(expr: &str) -> Result<Self, CrontabError> {
        Err(CrontabError {
            message: format!("crontab parsing not yet implemented: {expr}"),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every firing instant whose local date lies in `from..=to`, in order.
    pub fn fire_times<Z: TimeZone>(
        &self,
        _tz: &Z,
        _from: NaiveDate,
        _to: NaiveDate,
    ) -> Vec<DateTime<Z>> {
        Vec::new()
    }
}
