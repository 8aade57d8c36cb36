//! Crontab expressions exactly as operators know them from `man 5 crontab` (Vixie/Debian cron),
//! plus an optional leading seconds field, `DOW#n` and `L`, expanded in a station's time zone.
//!
//! The standard fields are validated here (so every error names the field, the byte offset and a
//! fix), translated onto the `cron` crate's syntax (seconds first, 1 = Sunday, no `#`/`L`) and
//! read back from the `cron::Schedule` into bitsets once, at parse time. This layer adds what
//! `cron` lacks or does differently: day-of-week 0/7 = Sunday, the Vixie OR rule for
//! day-of-month/day-of-week, `DOW#n`, `L`, the `@` macros, and the DST rule.
//!
//! **Invariant:** a [`Crontab`] that parsed is fully valid and expanding it never fails or panics;
//! [`Crontab::fire_times`] returns each firing instant at most once, strictly increasing, with its
//! local date inside the asked range. A local time in a spring-forward gap fires once at the first
//! instant after the gap; one in an autumn overlap fires once, at its earlier instance.
//!
//! Expansion is O(days + firings): the times of day are precomputed and sorted, days are walked
//! one by one and matched against bitsets; `cron`'s iterator is never used.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone,
};
use cron::TimeUnitSpec;

/// Seconds in a day (times of day are stored as seconds after local midnight).
const SECS_PER_DAY: u32 = 86_400;

/// Month names as `man 5 crontab` spells them (first three letters, case-insensitive); JAN = 1.
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
/// Day-of-week names; SUN = 0 (7 is Sunday too, as a number).
const DOW_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The `@` macros of Vixie cron and the 5-field lines they stand for.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// One field of a crontab expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrontabField {
    /// The optional leading seconds field (6-field form), 0–59.
    Second,
    /// 0–59.
    Minute,
    /// 0–23.
    Hour,
    /// 1–31, or `L` for the last day of the month.
    DayOfMonth,
    /// 1–12 or JAN–DEC.
    Month,
    /// 0–7 (0 and 7 are Sunday) or SUN–SAT, optionally `DOW#n`.
    DayOfWeek,
}

impl CrontabField {
    /// The field's name as error messages and docs spell it (`day-of-month`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
        }
    }

    fn min(self) -> u32 {
        match self {
            Self::DayOfMonth | Self::Month => 1,
            _ => 0,
        }
    }

    fn max(self) -> u32 {
        match self {
            Self::Second | Self::Minute => 59,
            Self::Hour => 23,
            Self::DayOfMonth => 31,
            Self::Month => 12,
            Self::DayOfWeek => 7,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Self::Month => &MONTH_NAMES,
            Self::DayOfWeek => &DOW_NAMES,
            _ => &[],
        }
    }

    /// What a valid value looks like, for hints.
    fn valid_values(self) -> &'static str {
        match self {
            Self::Second => "0-59",
            Self::Minute => "0-59",
            Self::Hour => "0-23",
            Self::DayOfMonth => "1-31 or L (last day of the month)",
            Self::Month => "1-12 or JAN-DEC",
            Self::DayOfWeek => "0-7 (0 and 7 are Sunday) or SUN-SAT",
        }
    }
}

impl fmt::Display for CrontabField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A crontab expression that does not parse: what is wrong, where, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}; {hint}")]
pub struct CrontabError {
    /// What is wrong, starting with the field name when there is one
    /// (`day-of-month: 32 is out of range 1-31`).
    pub message: String,
    /// The field the problem is in; `None` for problems with the whole expression
    /// (empty, wrong number of fields, unknown macro).
    pub field: Option<CrontabField>,
    /// 0-based byte offset within the expression where the problem starts (add it to the
    /// expression's own column in a file to point at the exact character).
    pub offset: usize,
    /// How to fix it.
    pub hint: String,
}

fn err(
    field: Option<CrontabField>,
    offset: usize,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> CrontabError {
    let message = message.into();
    let message = match field {
        Some(f) => format!("{}: {message}", f.name()),
        None => message,
    };
    CrontabError {
        message,
        field,
        offset,
        hint: hint.into(),
    }
}

/// A parsed crontab expression. See the module doc and `docs/crontab.md` for the accepted syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crontab {
    source: String,
    /// Bit n = second n (0–59).
    seconds: u64,
    /// Bit n = minute n (0–59).
    minutes: u64,
    /// Bit n = hour n (0–23).
    hours: u32,
    /// Bit n = day n of the month (1–31); `L` is kept apart in `dom_last`.
    dom: u32,
    /// `L` in day-of-month: the last day of each month.
    dom_last: bool,
    /// Bit n = month n (1–12).
    months: u16,
    /// Bit n = weekday n, 0 = Sunday … 6 = Saturday.
    dow: u8,
    /// `DOW#n`: for weekday w (0 = Sunday), bit n set = the n-th such weekday of the month (1–5).
    dow_nth: [u8; 7],
    /// The day-of-month field starts with `*` (Vixie: then day-of-month AND day-of-week).
    dom_star: bool,
    /// The day-of-week field starts with `*`.
    dow_star: bool,
    /// Every time of day it fires at, as seconds after local midnight, ascending.
    secs_of_day: Vec<u32>,
}

/// One list item of a field, validated.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// `*` or `*/step`.
    All { step: Option<u32> },
    /// `a`, `a-b` or `a-b/step` (a single value has `lo == hi` and no step).
    Range { lo: u32, hi: u32, step: Option<u32> },
    /// `L` (day-of-month only).
    Last,
    /// `DOW#n` (day-of-week only); `dow` is 0–7.
    Nth { dow: u32, n: u32 },
}

/// A field as written: its items and whether it starts with `*`.
struct ParsedField {
    items: Vec<Item>,
    star: bool,
}

impl Crontab {
    /// Parse a crontab expression: 5 fields (`min hour dom month dow`), 6 fields with a leading
    /// seconds field, or one of the `@` macros (`@daily`, …). `@reboot` is rejected.
    pub fn parse(expr: &str) -> Result<Self, CrontabError> {
        let trimmed = expr.trim_start();
        let lead = expr.len() - trimmed.len();
        if trimmed.starts_with('@') {
            return Self::parse_macro(expr, lead);
        }
        let tokens = split_whitespace_with_offsets(expr);
        let fields: &[CrontabField] = match tokens.len() {
            0 => {
                return Err(err(
                    None,
                    0,
                    "the crontab expression is empty",
                    "write 5 fields `minute hour day-of-month month day-of-week`, e.g. `30 5 * * MON-FRI`",
                ));
            }
            5 => &[
                CrontabField::Minute,
                CrontabField::Hour,
                CrontabField::DayOfMonth,
                CrontabField::Month,
                CrontabField::DayOfWeek,
            ],
            6 => &[
                CrontabField::Second,
                CrontabField::Minute,
                CrontabField::Hour,
                CrontabField::DayOfMonth,
                CrontabField::Month,
                CrontabField::DayOfWeek,
            ],
            n if n < 5 => {
                return Err(err(
                    None,
                    expr.len(),
                    format!(
                        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {n}"
                    ),
                    "add the missing fields; `*` means every value, e.g. `30 5 * * *` is 05:30 every day",
                ));
            }
            n => {
                let hint = if n == 7 {
                    "remove the 7th field: loa reads `[second] minute hour day-of-month month day-of-week` and has no year field (limit dates with the slot's from/until)"
                } else {
                    "a crontab expression here is only the time fields, not a command; write e.g. `30 5 * * MON-FRI`"
                };
                return Err(err(
                    None,
                    tokens[6].1,
                    format!(
                        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {n}"
                    ),
                    hint,
                ));
            }
        };
        let mut parsed = Vec::with_capacity(6);
        for (&(text, offset), &field) in tokens.iter().zip(fields) {
            parsed.push(parse_field(field, text, offset)?);
        }
        let mut it = parsed.into_iter();
        let second = if fields.len() == 6 { it.next() } else { None };
        let (Some(minute), Some(hour), Some(dom), Some(month), Some(dow)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return Err(err(None, 0, "internal: field count mismatch", BUG_HINT));
        };
        build(expr, second, minute, hour, dom, month, dow)
    }

    fn parse_macro(expr: &str, lead: usize) -> Result<Self, CrontabError> {
        let tokens = split_whitespace_with_offsets(expr);
        let Some(&(word, _)) = tokens.first() else {
            return Err(err(
                None,
                0,
                "the crontab expression is empty",
                "write e.g. `@daily`",
            ));
        };
        if let Some(&(_, extra_at)) = tokens.get(1) {
            return Err(err(
                None,
                extra_at,
                format!("`{word}` must stand alone, found more after it"),
                "write the macro alone (e.g. `@daily`) or use the 5 fields instead",
            ));
        }
        let lower = word.to_ascii_lowercase();
        if lower == "@reboot" {
            return Err(err(
                None,
                lead,
                "`@reboot` is not a broadcast time: a station has no boot-time airing",
                "give the time it should air, e.g. `30 5 * * *` for 05:30 every day",
            ));
        }
        let Some(&(_, line)) = MACROS.iter().find(|(name, _)| *name == lower) else {
            return Err(err(
                None,
                lead,
                format!("unknown macro `{word}`"),
                "use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, or 5 fields",
            ));
        };
        let mut tab = Self::parse(line)?;
        tab.source = expr.to_string();
        Ok(tab)
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every firing instant whose local date (in `tz`) lies in `from..=to`, strictly increasing.
    ///
    /// A local time that does not exist (spring-forward gap) fires at the first instant after the
    /// gap; several such times, and a regular firing at that same instant, fire once together. A
    /// local time that exists twice (autumn overlap) fires once, at the earlier instance.
    pub fn fire_times<Z: TimeZone>(
        &self,
        tz: &Z,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<DateTime<Z>> {
        let mut out: Vec<DateTime<Z>> = Vec::new();
        if from > to || self.secs_of_day.is_empty() {
            return out;
        }
        let mut needs_sort = false;
        // Start one day early: a time in a gap that crosses midnight lands on the next day.
        let mut day = from.pred_opt().unwrap_or(from);
        loop {
            if self.fires_on(day) {
                for &secs in &self.secs_of_day {
                    let Some(time) = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0) else {
                        continue;
                    };
                    let local = day.and_time(time);
                    let (dt, shifted) = match tz.from_local_datetime(&local) {
                        LocalResult::Single(dt) => (dt, false),
                        LocalResult::Ambiguous(a, b) => (if a <= b { a } else { b }, false),
                        LocalResult::None => (first_instant_after_gap(tz, local), true),
                    };
                    if day < from || shifted {
                        let date = dt.naive_local().date();
                        if date < from || date > to {
                            continue;
                        }
                    }
                    match out.last() {
                        Some(last) if *last == dt => continue,
                        Some(last) if *last > dt => needs_sort = true,
                        _ => {}
                    }
                    out.push(dt);
                }
            }
            if day >= to {
                break;
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        if needs_sort {
            out.sort();
            out.dedup();
        }
        out
    }

    /// Every local time of day at which it fires, on a day it fires, ascending.
    pub fn times_of_day(&self) -> Vec<NaiveTime> {
        self.secs_of_day
            .iter()
            .filter_map(|&s| NaiveTime::from_num_seconds_from_midnight_opt(s, 0))
            .collect()
    }

    /// Whether it fires on this local date (month, day-of-month, day-of-week, `L`, `#` and the
    /// Vixie OR rule; times of day are not considered).
    pub fn fires_on(&self, date: NaiveDate) -> bool {
        let month = date.month();
        if self.months & (1 << month) == 0 {
            return false;
        }
        let day = date.day();
        let dom_match = self.dom & (1 << day) != 0
            || (self.dom_last && day == days_in_month(date.year(), month));
        let weekday = date.weekday().num_days_from_sunday() as usize;
        let nth = (day - 1) / 7 + 1;
        let dow_match = self.dow & (1 << weekday) != 0 || self.dow_nth[weekday] & (1 << nth) != 0;
        if self.dom_star || self.dow_star {
            dom_match && dow_match
        } else {
            dom_match || dow_match
        }
    }

    /// Whether it fires on at least one day of any year. `0 0 30 2 *` (February 30th) parses, as in
    /// Vixie cron, but never fires; a checker can flag it with this. Checks a 28-year cycle
    /// (every weekday/leap-year combination).
    pub fn ever_fires(&self) -> bool {
        let (Some(start), Some(end)) = (
            NaiveDate::from_ymd_opt(2000, 1, 1),
            NaiveDate::from_ymd_opt(2027, 12, 31),
        ) else {
            return true;
        };
        start
            .iter_days()
            .take_while(|d| *d <= end)
            .any(|d| self.fires_on(d))
    }
}

impl FromStr for Crontab {
    type Err = CrontabError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Crontab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

const BUG_HINT: &str = "this is a bug in loa's crontab translation; please report the expression";

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
        _ => 31,
    }
}

/// The first instant at or after a nonexistent local time's gap, i.e. the instant the clocks
/// jumped over `local`. Found by bisection on UTC seconds (only runs for times in a gap).
fn first_instant_after_gap<Z: TimeZone>(tz: &Z, local: NaiveDateTime) -> DateTime<Z> {
    let local_of = |utc: NaiveDateTime| {
        let offset = tz.offset_from_utc_datetime(&utc).fix().local_minus_utc();
        utc + Duration::seconds(i64::from(offset))
    };
    let window = Duration::hours(27); // larger than any UTC offset
    if let (Some(mut lo), Some(mut hi)) = (
        local.checked_sub_signed(window),
        local.checked_add_signed(window),
    ) && local_of(lo) < local
        && local_of(hi) >= local
    {
        // invariant: local_of(lo) < local <= local_of(hi)
        while (hi - lo).num_seconds() > 1 {
            let mid = lo + Duration::seconds((hi - lo).num_seconds() / 2);
            if local_of(mid) < local {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return tz.from_utc_datetime(&hi);
    }
    // Not reachable for real zones; still never drop the firing: read the time with the offset
    // in force at that UTC wall time.
    let offset = tz.offset_from_utc_datetime(&local).fix().local_minus_utc();
    tz.from_utc_datetime(&(local - Duration::seconds(i64::from(offset))))
}

/// Split on whitespace, keeping each token's byte offset.
fn split_whitespace_with_offsets(s: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if let Some(st) = start.take() {
                out.push((&s[st..i], st));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        out.push((&s[st..], st));
    }
    out
}

fn parse_field(
    field: CrontabField,
    text: &str,
    offset: usize,
) -> Result<ParsedField, CrontabError> {
    let mut items = Vec::new();
    let mut pos = 0;
    for part in text.split(',') {
        let at = offset + pos;
        pos += part.len() + 1;
        if part.is_empty() {
            return Err(err(
                Some(field),
                at,
                format!("empty list item in `{text}`"),
                "remove the extra comma: list items are separated by single commas, e.g. `1,15`",
            ));
        }
        items.push(parse_item(field, part, at)?);
    }
    Ok(ParsedField {
        items,
        star: text.starts_with('*'),
    })
}

fn parse_item(field: CrontabField, text: &str, at: usize) -> Result<Item, CrontabError> {
    if let Some(bad) = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "*-/#".contains(c)))
    {
        let (i, c) = bad;
        let hint = if c == '?' {
            "`?` is not crontab syntax; write `*` for \"any\"".to_string()
        } else {
            format!(
                "use numbers ({}), ranges a-b, steps */n or a-b/n, and commas",
                field.valid_values()
            )
        };
        return Err(err(
            Some(field),
            at + i,
            format!("unexpected character `{c}` in `{text}`"),
            hint,
        ));
    }
    if let Some(rest) = text.strip_prefix('*') {
        if rest.is_empty() {
            return Ok(Item::All { step: None });
        }
        if let Some(step) = rest.strip_prefix('/') {
            let step = parse_step(field, step, at + 2)?;
            return Ok(Item::All { step: Some(step) });
        }
        return Err(err(
            Some(field),
            at,
            format!("`{text}`: `*` must stand alone or be followed by a step"),
            "write `*` for every value or `*/n` for every n-th, e.g. `*/15`",
        ));
    }
    if text.eq_ignore_ascii_case("L") {
        if field == CrontabField::DayOfMonth {
            return Ok(Item::Last);
        }
        return Err(err(
            Some(field),
            at,
            "`L` (last day of the month) is only allowed in day-of-month",
            "put `L` in the day-of-month field (the 3rd of 5), e.g. `0 8 L * *`",
        ));
    }
    if let Some(hash) = text.find('#') {
        if field != CrontabField::DayOfWeek {
            return Err(err(
                Some(field),
                at + hash,
                format!("`{text}`: `#` (n-th weekday of the month) is only allowed in day-of-week"),
                "put it in the day-of-week field (the 5th of 5), e.g. `0 8 * * MON#2` for the 2nd Monday",
            ));
        }
        let (day, n) = (&text[..hash], &text[hash + 1..]);
        if day.contains(['-', '/']) {
            return Err(err(
                Some(field),
                at,
                format!("`{text}`: `#` takes a single weekday, not a range or step"),
                "list them instead, e.g. `MON#2,TUE#2`",
            ));
        }
        let dow = parse_value(field, day, at)?;
        let n_at = at + hash + 1;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                Some(field),
                n_at,
                format!("`{text}`: expected a number 1-5 after `#`"),
                "write e.g. `MON#2` for the 2nd Monday of the month",
            ));
        }
        let n_value = parse_number(n);
        if !(1..=5).contains(&n_value) {
            return Err(err(
                Some(field),
                n_at,
                format!("`{text}`: {n} is out of range 1-5 after `#`"),
                "a month has at most 5 of each weekday; `#1`…`#5` (a month without a 5th such day has no firing)",
            ));
        }
        return Ok(Item::Nth { dow, n: n_value });
    }
    let (base, step) = match text.find('/') {
        Some(slash) => (&text[..slash], Some((&text[slash + 1..], at + slash + 1))),
        None => (text, None),
    };
    let (lo, hi) = match base.find('-') {
        Some(dash) => {
            let (a, b) = (&base[..dash], &base[dash + 1..]);
            if a.is_empty() {
                return Err(err(
                    Some(field),
                    at,
                    format!("`{text}`: a range needs a start"),
                    format!("write `a-b` with values {}", field.valid_values()),
                ));
            }
            let lo = parse_value(field, a, at)?;
            let hi = parse_value(field, b, at + dash + 1)?;
            (lo, hi)
        }
        None => {
            if step.is_some() {
                let value = parse_value(field, base, at)?;
                return Err(err(
                    Some(field),
                    at,
                    format!("`{text}`: a step needs a range or `*` before the `/`"),
                    format!(
                        "write `{value}-{}/n` (from {value} to the end) or `*/n`",
                        field.max()
                    ),
                ));
            }
            let v = parse_value(field, base, at)?;
            (v, v)
        }
    };
    if lo > hi {
        let hint = if field == CrontabField::DayOfWeek && hi == 0 {
            format!(
                "ranges do not wrap around; Sunday at the end of a range is 7, e.g. `{}-7`",
                &base[..base.find('-').unwrap_or(0)]
            )
        } else {
            format!(
                "write the smaller value first; ranges do not wrap around, so for {lo} through {hi} write `{lo}-{},{}-{hi}`",
                field.max(),
                field.min()
            )
        };
        return Err(err(
            Some(field),
            at,
            format!("`{base}` is a reversed range ({lo} is after {hi})"),
            hint,
        ));
    }
    let step = match step {
        Some((s, s_at)) => Some(parse_step(field, s, s_at)?),
        None => None,
    };
    Ok(Item::Range { lo, hi, step })
}

/// A number made of ASCII digits, saturating (huge values are simply out of range).
fn parse_number(digits: &str) -> u32 {
    digits.bytes().fold(0u32, |acc, b| {
        acc.saturating_mul(10)
            .saturating_add(u32::from(b.wrapping_sub(b'0')))
    })
}

fn parse_step(field: CrontabField, text: &str, at: usize) -> Result<u32, CrontabError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            Some(field),
            at,
            format!("expected a step number after `/`, found `{text}`"),
            "write e.g. `*/15` or `0-30/10`",
        ));
    }
    let step = parse_number(text);
    if step == 0 {
        return Err(err(
            Some(field),
            at,
            "step 0 is not allowed",
            "a step must be at least 1; `*/1` is the same as `*`",
        ));
    }
    let max = field.max();
    if step > max {
        return Err(err(
            Some(field),
            at,
            format!("step {step} is larger than the field's maximum {max}"),
            format!(
                "use a step from 1 to {max}; to fire only at the first value write it alone, e.g. `{}`",
                field.min()
            ),
        ));
    }
    Ok(step)
}

/// A single value: digits or (month/day-of-week only) a three-letter name.
fn parse_value(field: CrontabField, text: &str, at: usize) -> Result<u32, CrontabError> {
    if text.is_empty() {
        return Err(err(
            Some(field),
            at,
            "missing value",
            format!("write a value {}", field.valid_values()),
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let v = parse_number(text);
        if v < field.min() || v > field.max() {
            let hint = match field {
                CrontabField::DayOfMonth => {
                    "use a day from 1 to 31, or `L` for the last day of the month".to_string()
                }
                CrontabField::DayOfWeek => {
                    "use 0-7 (0 and 7 are Sunday, 1 is Monday) or SUN-SAT".to_string()
                }
                CrontabField::Hour => "use 0-23 (midnight is 0)".to_string(),
                _ => format!("use {}", field.valid_values()),
            };
            return Err(err(
                Some(field),
                at,
                format!("{text} is out of range {}-{}", field.min(), field.max()),
                hint,
            ));
        }
        return Ok(v);
    }
    let names = field.names();
    if names.is_empty() {
        return Err(err(
            Some(field),
            at,
            format!("`{text}` is not a number"),
            format!(
                "the {} field takes numbers {}",
                field.name(),
                field.valid_values()
            ),
        ));
    }
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        let base = if field == CrontabField::Month { 1 } else { 0 };
        return Ok(i as u32 + base);
    }
    let hint = match names
        .iter()
        .find(|n| text.len() > 3 && text.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(n)))
    {
        Some(short) => format!("names are the first three letters: write `{short}`"),
        None => format!("use one of {} or numbers", names.join(", ")),
    };
    Err(err(Some(field), at, format!("unknown name `{text}`"), hint))
}

/// Translate one standard field (no `L`/`#`) to the `cron` crate's syntax; `None` when the field
/// has no standard items (only `L`, or only `DOW#n`).
fn cron_field(field: CrontabField, items: &[Item]) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if field == CrontabField::DayOfWeek {
        // cron numbers Sunday 1 … Saturday 7 and has no 0/7 alias: expand to explicit days.
        let mut days = [false; 7];
        for item in items {
            let (lo, hi, step) = match *item {
                Item::All { step } => (0, 7, step.unwrap_or(1)),
                Item::Range { lo, hi, step } => (lo, hi, step.unwrap_or(1)),
                Item::Last | Item::Nth { .. } => continue,
            };
            for d in (lo..=hi).step_by(step as usize) {
                days[(d % 7) as usize] = true;
            }
        }
        parts = (0..7u32)
            .filter(|&d| days[d as usize])
            .map(|d| (d + 1).to_string())
            .collect();
    } else {
        for item in items {
            match *item {
                Item::All { step: None } => parts.push("*".into()),
                Item::All { step: Some(s) } => parts.push(format!("*/{s}")),
                Item::Range { lo, hi, step: None } if lo == hi => parts.push(lo.to_string()),
                Item::Range { lo, hi, step: None } => parts.push(format!("{lo}-{hi}")),
                Item::Range {
                    lo,
                    hi,
                    step: Some(s),
                } => parts.push(format!("{lo}-{hi}/{s}")),
                Item::Last | Item::Nth { .. } => {}
            }
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(","))
    }
}

fn build(
    source: &str,
    second: Option<ParsedField>,
    minute: ParsedField,
    hour: ParsedField,
    dom: ParsedField,
    month: ParsedField,
    dow: ParsedField,
) -> Result<Crontab, CrontabError> {
    use CrontabField as F;
    let sec_cron = match &second {
        Some(s) => cron_field(F::Second, &s.items),
        None => Some("0".to_string()),
    };
    let min_cron = cron_field(F::Minute, &minute.items);
    let hour_cron = cron_field(F::Hour, &hour.items);
    let dom_cron = cron_field(F::DayOfMonth, &dom.items);
    let month_cron = cron_field(F::Month, &month.items);
    let dow_cron = cron_field(F::DayOfWeek, &dow.items);
    let star = |f: &Option<String>| f.clone().unwrap_or_else(|| "*".to_string());
    let translated = format!(
        "{} {} {} {} {} {}",
        star(&sec_cron),
        star(&min_cron),
        star(&hour_cron),
        star(&dom_cron),
        star(&month_cron),
        star(&dow_cron)
    );
    let schedule = cron::Schedule::from_str(&translated).map_err(|e| {
        err(
            None,
            0,
            format!("internal: the cron crate rejected the translation `{translated}` of `{source}`: {e}"),
            BUG_HINT,
        )
    })?;

    let seconds = bits64(0..60, |v| schedule.seconds().includes(v));
    let minutes = bits64(0..60, |v| schedule.minutes().includes(v));
    let hours = bits64(0..24, |v| schedule.hours().includes(v)) as u32;
    let dom_bits = if dom_cron.is_some() {
        bits64(1..32, |v| schedule.days_of_month().includes(v)) as u32
    } else {
        0
    };
    let months = bits64(1..13, |v| schedule.months().includes(v)) as u16;
    let dow_bits = if dow_cron.is_some() {
        // cron: 1 = Sunday … 7 = Saturday → bit 0 = Sunday … bit 6 = Saturday
        bits64(0..7, |v| schedule.days_of_week().includes(v + 1)) as u8
    } else {
        0
    };
    let mut dow_nth = [0u8; 7];
    for item in &dow.items {
        if let Item::Nth { dow, n } = *item {
            dow_nth[(dow % 7) as usize] |= 1 << n;
        }
    }
    let dom_last = dom.items.iter().any(|i| matches!(i, Item::Last));

    let mut secs_of_day = Vec::new();
    for h in (0..24).filter(|h| hours & (1 << h) != 0) {
        for m in (0..60).filter(|m| minutes & (1u64 << m) != 0) {
            for s in (0..60).filter(|s| seconds & (1u64 << s) != 0) {
                let secs = h * 3600 + m * 60 + s;
                debug_assert!(secs < SECS_PER_DAY);
                secs_of_day.push(secs);
            }
        }
    }
    Ok(Crontab {
        source: source.to_string(),
        seconds,
        minutes,
        hours,
        dom: dom_bits,
        dom_last,
        months,
        dow: dow_bits,
        dow_nth,
        dom_star: dom.star,
        dow_star: dow.star,
        secs_of_day,
    })
}

fn bits64(range: std::ops::Range<u32>, includes: impl Fn(u32) -> bool) -> u64 {
    range
        .filter(|&v| includes(v))
        .fold(0u64, |acc, v| acc | (1u64 << v))
}
