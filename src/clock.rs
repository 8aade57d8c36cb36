//! The `Clock` seam: every piece of code that needs "now" asks a `Clock`.
//!
//! **Invariant:** nothing outside this module calls `Utc::now()` or `SystemTime::now()` for
//! scheduling decisions; tests drive time (including NTP-style steps forwards and back) through
//! `ManualClock`. `tokio::time::pause` only moves timers, not the calendar, hence this seam.

use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// The current wall-clock instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The host's real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to: for tests and for replaying a day.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Step the clock to `t` (forwards or back, as NTP may).
    pub fn set(&self, t: DateTime<Utc>) {
        // A poisoned lock only means another test thread panicked; the value is still valid.
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = t;
    }

    /// Move the clock by `d` (negative steps back).
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_steps_both_ways() {
        let t0 = Utc.with_ymd_and_hms(2019, 3, 1, 5, 30, 0).unwrap();
        let c = ManualClock::new(t0);
        c.advance(Duration::hours(1));
        assert_eq!(c.now(), t0 + Duration::hours(1));
        c.advance(Duration::hours(-2));
        assert_eq!(c.now(), t0 - Duration::hours(1));
        c.set(t0);
        assert_eq!(c.now(), t0);
    }
}
