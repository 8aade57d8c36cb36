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

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone,
};
use cron::TimeUnitSpec;

/// Most distinct expressions memoized per thread by [`Crontab::parse`] before the memo is
/// emptied (a city and its wards use a few dozen distinct lines).
const PARSE_CACHE_MAX_ENTRIES: usize = 1024;

thread_local! {
    static PARSE_CACHE: RefCell<HashMap<String, Crontab>> = RefCell::new(HashMap::new());
}

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

    /// The field's name in Vietnamese, as error messages shown to people spell it
    /// (`ngày trong tháng`).
    pub fn name_vi(self) -> &'static str {
        match self {
            Self::Second => "giây",
            Self::Minute => "phút",
            Self::Hour => "giờ",
            Self::DayOfMonth => "ngày trong tháng",
            Self::Month => "tháng",
            Self::DayOfWeek => "thứ trong tuần",
        }
    }

    /// What a valid value looks like, for hints.
    fn valid_values(self) -> &'static str {
        match self {
            Self::Second => "0-59",
            Self::Minute => "0-59",
            Self::Hour => "0-23",
            Self::DayOfMonth => "1-31 hoặc L (ngày cuối tháng)",
            Self::Month => "1-12 hoặc JAN-DEC",
            Self::DayOfWeek => "0-7 (0 và 7 là Chủ nhật) hoặc SUN-SAT",
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
    /// What is wrong, in Vietnamese, starting with the field's Vietnamese name when there is one
    /// (`ngày trong tháng: 32 nằm ngoài khoảng 1–31`).
    pub message: String,
    /// The field the problem is in; `None` for problems with the whole expression
    /// (empty, wrong number of fields, unknown macro).
    pub field: Option<CrontabField>,
    /// 0-based byte offset within the expression where the problem starts (add it to the
    /// expression's own column in a file to point at the exact character).
    pub offset: usize,
    /// How to fix it, in Vietnamese.
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
        Some(f) => format!("{}: {message}", f.name_vi()),
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
    ///
    /// Successful parses are memoized per thread (stations share a handful of distinct lines and
    /// the `cron` crate's parser costs microseconds); parsing is pure, so the memo is invisible.
    pub fn parse(expr: &str) -> Result<Self, CrontabError> {
        if let Some(hit) = PARSE_CACHE.with(|cache| cache.borrow().get(expr).cloned()) {
            return Ok(hit);
        }
        let tab = Self::parse_uncached(expr)?;
        PARSE_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len() >= PARSE_CACHE_MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(expr.to_string(), tab.clone());
        });
        Ok(tab)
    }

    /// [`Crontab::parse`] without the per-thread memo (for benchmarks and tests).
    pub fn parse_uncached(expr: &str) -> Result<Self, CrontabError> {
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
                    "biểu thức crontab trống",
                    "viết 5 trường (phút, giờ, ngày trong tháng, tháng, thứ trong tuần), ví dụ `30 5 * * MON-FRI`",
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
                        "cần 5 trường (phút, giờ, ngày trong tháng, tháng, thứ trong tuần) hoặc 6 (giây đứng đầu), nhưng có {n} trường"
                    ),
                    "thêm các trường còn thiếu; `*` là mọi giá trị, ví dụ `30 5 * * *` là 05:30 hằng ngày",
                ));
            }
            n => {
                let hint = if n == 7 {
                    "bỏ trường thứ 7: loa đọc `[giây] phút giờ ngày-trong-tháng tháng thứ-trong-tuần`, không có trường năm (giới hạn ngày bằng from/until của khung phát)"
                } else {
                    "ở đây biểu thức crontab chỉ gồm các trường thời gian, không kèm lệnh; ví dụ `30 5 * * MON-FRI`"
                };
                return Err(err(
                    None,
                    tokens[6].1,
                    format!(
                        "cần 5 trường (phút, giờ, ngày trong tháng, tháng, thứ trong tuần) hoặc 6 (giây đứng đầu), nhưng có {n} trường"
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
            return Err(err(None, 0, "lỗi nội bộ: số trường không khớp", BUG_HINT));
        };
        build(expr, second, minute, hour, dom, month, dow)
    }

    fn parse_macro(expr: &str, lead: usize) -> Result<Self, CrontabError> {
        let tokens = split_whitespace_with_offsets(expr);
        let Some(&(word, _)) = tokens.first() else {
            return Err(err(None, 0, "biểu thức crontab trống", "ví dụ `@daily`"));
        };
        if let Some(&(_, extra_at)) = tokens.get(1) {
            return Err(err(
                None,
                extra_at,
                format!("`{word}` phải đứng một mình, nhưng phía sau còn nội dung"),
                "viết riêng macro (ví dụ `@daily`) hoặc dùng 5 trường",
            ));
        }
        let lower = word.to_ascii_lowercase();
        if lower == "@reboot" {
            return Err(err(
                None,
                lead,
                "`@reboot` không phải giờ phát: trạm không có lượt phát lúc khởi động",
                "ghi giờ cần phát, ví dụ `30 5 * * *` là 05:30 hằng ngày",
            ));
        }
        let Some(&(_, line)) = MACROS.iter().find(|(name, _)| *name == lower) else {
            return Err(err(
                None,
                lead,
                format!("macro `{word}` không được hỗ trợ"),
                "dùng một trong @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, hoặc 5 trường",
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

const BUG_HINT: &str = "đây là lỗi của loa khi chuyển đổi crontab; hãy báo lại biểu thức này";

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
                format!("mục rỗng trong danh sách `{text}`"),
                "bỏ dấu phẩy thừa: các mục cách nhau bằng đúng một dấu phẩy, ví dụ `1,15`",
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
            "`?` không phải cú pháp crontab; viết `*` cho \"bất kỳ\"".to_string()
        } else {
            format!(
                "ghi giá trị {}, khoảng a-b, bước */n hoặc a-b/n, các mục cách nhau bằng dấu phẩy",
                field.valid_values()
            )
        };
        return Err(err(
            Some(field),
            at + i,
            format!("ký tự `{c}` không dùng được trong `{text}`"),
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
            format!("`{text}`: `*` phải đứng một mình hoặc theo sau là bước"),
            "viết `*` cho mọi giá trị hoặc `*/n` cho cứ mỗi n giá trị, ví dụ `*/15`",
        ));
    }
    if text.eq_ignore_ascii_case("L") {
        if field == CrontabField::DayOfMonth {
            return Ok(Item::Last);
        }
        return Err(err(
            Some(field),
            at,
            "`L` (ngày cuối tháng) chỉ dùng được ở trường ngày trong tháng",
            "đặt `L` ở trường ngày trong tháng (trường thứ 3 trong 5), ví dụ `0 8 L * *`",
        ));
    }
    if let Some(hash) = text.find('#') {
        if field != CrontabField::DayOfWeek {
            return Err(err(
                Some(field),
                at + hash,
                format!(
                    "`{text}`: `#` (thứ lần n trong tháng) chỉ dùng được ở trường thứ trong tuần"
                ),
                "đặt nó ở trường thứ trong tuần (trường thứ 5 trong 5), ví dụ `0 8 * * MON#2` là thứ Hai lần 2 trong tháng",
            ));
        }
        let (day, n) = (&text[..hash], &text[hash + 1..]);
        if day.contains(['-', '/']) {
            return Err(err(
                Some(field),
                at,
                format!("`{text}`: `#` chỉ đi với một thứ, không đi với khoảng hay bước"),
                "liệt kê từng mục, ví dụ `MON#2,TUE#2`",
            ));
        }
        let dow = parse_value(field, day, at)?;
        let n_at = at + hash + 1;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                Some(field),
                n_at,
                format!("`{text}`: sau `#` cần một số từ 1 đến 5"),
                "ví dụ `MON#2` là thứ Hai lần 2 trong tháng",
            ));
        }
        let n_value = parse_number(n);
        if !(1..=5).contains(&n_value) {
            return Err(err(
                Some(field),
                n_at,
                format!("`{text}`: {n} sau `#` nằm ngoài khoảng 1–5"),
                "một tháng có nhiều nhất 5 ngày cùng thứ; dùng `#1`…`#5` (tháng không có lần thứ 5 thì không phát)",
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
                    format!("`{text}`: khoảng thiếu giá trị đầu"),
                    format!("viết `a-b` với giá trị {}", field.valid_values()),
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
                    format!("`{text}`: trước `/` phải là một khoảng hoặc `*`"),
                    format!(
                        "viết `{value}-{}/n` (từ {value} đến hết) hoặc `*/n`",
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
                "khoảng không quay vòng; Chủ nhật ở cuối khoảng là 7, ví dụ `{}-7`",
                &base[..base.find('-').unwrap_or(0)]
            )
        } else {
            format!(
                "viết giá trị nhỏ trước; khoảng không quay vòng, nên từ {lo} đến {hi} hãy viết `{lo}-{},{}-{hi}`",
                field.max(),
                field.min()
            )
        };
        return Err(err(
            Some(field),
            at,
            format!("`{base}` là khoảng ngược ({lo} lớn hơn {hi})"),
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
            format!("sau `/` cần số bước, nhưng gặp `{text}`"),
            "ví dụ `*/15` hoặc `0-30/10`",
        ));
    }
    let step = parse_number(text);
    if step == 0 {
        return Err(err(
            Some(field),
            at,
            "bước 0 không dùng được",
            "bước phải từ 1 trở lên; `*/1` cũng như `*`",
        ));
    }
    let max = field.max();
    if step > max {
        return Err(err(
            Some(field),
            at,
            format!("bước {step} lớn hơn giá trị lớn nhất {max} của trường"),
            format!(
                "dùng bước từ 1 đến {max}; để chỉ phát ở giá trị đầu tiên hãy viết riêng giá trị đó, ví dụ `{}`",
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
            "thiếu giá trị",
            format!("ghi một giá trị {}", field.valid_values()),
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let v = parse_number(text);
        if v < field.min() || v > field.max() {
            let hint = match field {
                CrontabField::DayOfMonth => {
                    "dùng ngày từ 1 đến 31, hoặc `L` cho ngày cuối tháng".to_string()
                }
                CrontabField::DayOfWeek => {
                    "dùng 0-7 (0 và 7 là Chủ nhật, 1 là thứ Hai) hoặc SUN-SAT".to_string()
                }
                CrontabField::Hour => "dùng 0-23 (nửa đêm là 0)".to_string(),
                _ => format!("dùng {}", field.valid_values()),
            };
            return Err(err(
                Some(field),
                at,
                format!("{text} nằm ngoài khoảng {}–{}", field.min(), field.max()),
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
            format!("`{text}` không phải là số"),
            format!(
                "trường {} chỉ nhận số {}",
                field.name_vi(),
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
        Some(short) => format!("tên viết bằng ba chữ cái đầu: viết `{short}`"),
        None => format!("dùng một trong {} hoặc số", names.join(", ")),
    };
    Err(err(
        Some(field),
        at,
        format!("tên `{text}` không có trong danh sách"),
        hint,
    ))
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
            format!("lỗi nội bộ: thư viện cron không nhận bản chuyển đổi `{translated}` của `{source}`: {e}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use chrono_tz::America::Santiago;
    use chrono_tz::Asia::Ho_Chi_Minh as HCM;
    use chrono_tz::Europe::Berlin;
    use proptest::prelude::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    /// Expand `expr` in `tz` over `from..=to` and compare with RFC 3339 local times.
    fn check<Z: TimeZone>(expr: &str, tz: &Z, from: &str, to: &str, expected: &[&str]) {
        let tab = Crontab::parse(expr).unwrap_or_else(|e| panic!("`{expr}` should parse: {e}"));
        let got: Vec<String> = tab
            .fire_times(tz, date(from), date(to))
            .iter()
            .map(|dt| dt.fixed_offset().to_rfc3339())
            .collect();
        assert_eq!(got, expected, "`{expr}` from {from} to {to}");
    }

    /// Like `check`, but with dates only (every firing at `hhmm` local, offset `+07:00`).
    fn check_days(expr: &str, from: &str, to: &str, days: &[&str], hhmm: &str) {
        let expected: Vec<String> = days
            .iter()
            .map(|d| format!("{d}T{hhmm}:00+07:00"))
            .collect();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        check(expr, &HCM, from, to, &expected);
    }

    #[test]
    fn both_restricted_dom_and_dow_fire_on_either() {
        // Vixie OR rule: every 13th and every Friday (Oct 2019: 13th is a Sunday).
        check_days(
            "0 6 13 * FRI",
            "2019-10-01",
            "2019-10-31",
            &[
                "2019-10-04",
                "2019-10-11",
                "2019-10-13",
                "2019-10-18",
                "2019-10-25",
            ],
            "06:00",
        );
        // a day matching both fires once (Fri 13 Sep 2019)
        check_days(
            "0 6 13 * 5",
            "2019-09-13",
            "2019-09-13",
            &["2019-09-13"],
            "06:00",
        );
        // 1st, 15th or first Monday
        check_days(
            "0 6 1,15 * MON#1",
            "2019-03-01",
            "2019-03-31",
            &["2019-03-01", "2019-03-04", "2019-03-15"],
            "06:00",
        );
    }

    #[test]
    fn a_star_field_makes_it_and() {
        // dom `*`: only the day-of-week counts
        check_days(
            "0 8 * JAN,jul mon",
            "2019-01-01",
            "2019-07-31",
            &[
                "2019-01-07",
                "2019-01-14",
                "2019-01-21",
                "2019-01-28",
                "2019-07-01",
                "2019-07-08",
                "2019-07-15",
                "2019-07-22",
                "2019-07-29",
            ],
            "08:00",
        );
        // dom `*/10` starts with `*` so Vixie ANDs it with the day-of-week: 1,11,21,31 ∩ Mondays
        check_days(
            "0 8 */10 * MON",
            "2019-01-01",
            "2019-12-31",
            &[
                "2019-01-21",
                "2019-02-11",
                "2019-03-11",
                "2019-04-01",
                "2019-07-01",
                "2019-10-21",
                "2019-11-11",
            ],
            "08:00",
        );
    }

    #[test]
    fn steps() {
        check(
            "*/15 6 * * *",
            &HCM,
            "2019-01-01",
            "2019-01-01",
            &[
                "2019-01-01T06:00:00+07:00",
                "2019-01-01T06:15:00+07:00",
                "2019-01-01T06:30:00+07:00",
                "2019-01-01T06:45:00+07:00",
            ],
        );
        check(
            "0 9-17/4 * * *",
            &HCM,
            "2019-01-01",
            "2019-01-01",
            &[
                "2019-01-01T09:00:00+07:00",
                "2019-01-01T13:00:00+07:00",
                "2019-01-01T17:00:00+07:00",
            ],
        );
        // day-of-month steps start at 1
        check_days(
            "0 6 */10 2 *",
            "2019-02-01",
            "2019-02-28",
            &["2019-02-01", "2019-02-11", "2019-02-21"],
            "06:00",
        );
        // day-of-week steps over 0-7: Sun, Tue, Thu, Sat
        check_days(
            "0 6 * * */2",
            "2019-10-06",
            "2019-10-12",
            &["2019-10-06", "2019-10-08", "2019-10-10", "2019-10-12"],
            "06:00",
        );
        // 1-7/2: Mon, Wed, Fri, Sun(7)
        check_days(
            "0 6 * * 1-7/2",
            "2019-10-06",
            "2019-10-12",
            &["2019-10-06", "2019-10-07", "2019-10-09", "2019-10-11"],
            "06:00",
        );
    }

    #[test]
    fn sunday_is_0_and_7_and_dow_is_crontab_numbered() {
        for expr in [
            "0 6 * * 0",
            "0 6 * * 7",
            "0 6 * * SUN",
            "0 6 * * sun",
            "0 6 * * 0,7",
        ] {
            check_days(
                expr,
                "2019-10-01",
                "2019-10-14",
                &["2019-10-06", "2019-10-13"],
                "06:00",
            );
        }
        // 1-5 is Monday–Friday (the cron crate would read Sunday–Thursday)
        let weekdays = [
            "2019-10-07",
            "2019-10-08",
            "2019-10-09",
            "2019-10-10",
            "2019-10-11",
        ];
        for expr in ["0 6 * * 1-5", "0 6 * * MON-FRI", "0 6 * * mon-fri"] {
            check_days(expr, "2019-10-06", "2019-10-12", &weekdays, "06:00");
        }
        check_days(
            "0 6 * * FRI-7",
            "2019-10-06",
            "2019-10-12",
            &["2019-10-06", "2019-10-11", "2019-10-12"],
            "06:00",
        );
        check_days(
            "0 6 * * 0-7",
            "2019-10-06",
            "2019-10-08",
            &["2019-10-06", "2019-10-07", "2019-10-08"],
            "06:00",
        );
    }

    #[test]
    fn names_are_case_insensitive_and_make_ranges() {
        check_days(
            "0 6 1 feb-APR,Dec *",
            "2019-01-01",
            "2019-12-31",
            &["2019-02-01", "2019-03-01", "2019-04-01", "2019-12-01"],
            "06:00",
        );
        check_days(
            "0 6 1 * *",
            "2019-01-01",
            "2019-03-31",
            &["2019-01-01", "2019-02-01", "2019-03-01"],
            "06:00",
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        check(
            "30 0 6 * * *",
            &HCM,
            "2019-01-01",
            "2019-01-01",
            &["2019-01-01T06:00:30+07:00"],
        );
        check(
            "*/20 0 6 * * *",
            &HCM,
            "2019-01-01",
            "2019-01-01",
            &[
                "2019-01-01T06:00:00+07:00",
                "2019-01-01T06:00:20+07:00",
                "2019-01-01T06:00:40+07:00",
            ],
        );
    }

    #[test]
    fn nth_weekday() {
        check_days(
            "0 6 * * MON#2",
            "2019-01-01",
            "2019-03-31",
            &["2019-01-14", "2019-02-11", "2019-03-11"],
            "06:00",
        );
        check_days(
            "0 6 * * 1#2",
            "2019-01-01",
            "2019-03-31",
            &["2019-01-14", "2019-02-11", "2019-03-11"],
            "06:00",
        );
        // only months with a 5th Monday
        check_days(
            "0 6 * * MON#5",
            "2019-01-01",
            "2019-12-31",
            &["2019-04-29", "2019-07-29", "2019-09-30", "2019-12-30"],
            "06:00",
        );
        // 7#1 and 0#1 are both the first Sunday
        for expr in ["0 6 * * 7#1", "0 6 * * 0#1", "0 6 * * SUN#1"] {
            check_days(
                expr,
                "2019-09-01",
                "2019-10-31",
                &["2019-09-01", "2019-10-06"],
                "06:00",
            );
        }
        // a list mixing # and plain weekdays
        check_days(
            "0 6 * * MON#1,SAT",
            "2019-10-01",
            "2019-10-13",
            &["2019-10-05", "2019-10-07", "2019-10-12"],
            "06:00",
        );
    }

    #[test]
    fn last_day_of_month() {
        check_days(
            "0 6 L * *",
            "2019-01-01",
            "2019-04-30",
            &["2019-01-31", "2019-02-28", "2019-03-31", "2019-04-30"],
            "06:00",
        );
        check_days(
            "0 6 L 2 *",
            "2019-01-01",
            "2024-12-31",
            &[
                "2019-02-28",
                "2020-02-29",
                "2021-02-28",
                "2022-02-28",
                "2023-02-28",
                "2024-02-29",
            ],
            "06:00",
        );
        // century rule: 2100 is not a leap year, 2000 is
        check_days(
            "0 6 l 2 *",
            "2100-02-01",
            "2100-03-01",
            &["2100-02-28"],
            "06:00",
        );
        check_days(
            "0 6 L 2 *",
            "2000-02-01",
            "2000-03-01",
            &["2000-02-29"],
            "06:00",
        );
        // L in a list
        check_days(
            "0 6 1,15,L * *",
            "2019-06-01",
            "2019-07-01",
            &["2019-06-01", "2019-06-15", "2019-06-30", "2019-07-01"],
            "06:00",
        );
        // L with a restricted day-of-week: either (OR rule)
        check_days(
            "0 6 L * SUN",
            "2019-06-01",
            "2019-06-30",
            &[
                "2019-06-02",
                "2019-06-09",
                "2019-06-16",
                "2019-06-23",
                "2019-06-30",
            ],
            "06:00",
        );
    }

    #[test]
    fn month_ends_and_ranges() {
        check_days(
            "0 6 28-31 2,4 *",
            "2019-02-01",
            "2019-04-30",
            &["2019-02-28", "2019-04-28", "2019-04-29", "2019-04-30"],
            "06:00",
        );
        check_days(
            "0 6 31 * *",
            "2019-01-01",
            "2019-12-31",
            &[
                "2019-01-31",
                "2019-03-31",
                "2019-05-31",
                "2019-07-31",
                "2019-08-31",
                "2019-10-31",
                "2019-12-31",
            ],
            "06:00",
        );
        check_days(
            "0 6 29 2 *",
            "2019-01-01",
            "2020-12-31",
            &["2020-02-29"],
            "06:00",
        );
    }

    #[test]
    fn lists_ranges_and_wrapping_hours() {
        check(
            "5,10-12 22-23,0 * * *",
            &Utc,
            "2019-01-01",
            "2019-01-01",
            &[
                "2019-01-01T00:05:00+00:00",
                "2019-01-01T00:10:00+00:00",
                "2019-01-01T00:11:00+00:00",
                "2019-01-01T00:12:00+00:00",
                "2019-01-01T22:05:00+00:00",
                "2019-01-01T22:10:00+00:00",
                "2019-01-01T22:11:00+00:00",
                "2019-01-01T22:12:00+00:00",
                "2019-01-01T23:05:00+00:00",
                "2019-01-01T23:10:00+00:00",
                "2019-01-01T23:11:00+00:00",
                "2019-01-01T23:12:00+00:00",
            ],
        );
        // duplicates in a list fire once
        check(
            "0,0 6,6 * * *",
            &Utc,
            "2019-01-01",
            "2019-01-01",
            &["2019-01-01T06:00:00+00:00"],
        );
    }

    #[test]
    fn macros() {
        check(
            "@daily",
            &HCM,
            "2019-01-01",
            "2019-01-02",
            &["2019-01-01T00:00:00+07:00", "2019-01-02T00:00:00+07:00"],
        );
        check(
            "@midnight",
            &HCM,
            "2019-01-01",
            "2019-01-01",
            &["2019-01-01T00:00:00+07:00"],
        );
        check(
            "@weekly",
            &HCM,
            "2019-10-01",
            "2019-10-14",
            &["2019-10-06T00:00:00+07:00", "2019-10-13T00:00:00+07:00"],
        );
        check(
            "@monthly",
            &HCM,
            "2019-01-15",
            "2019-03-15",
            &["2019-02-01T00:00:00+07:00", "2019-03-01T00:00:00+07:00"],
        );
        for m in ["@yearly", "@annually", " @Yearly "] {
            check(
                m,
                &HCM,
                "2019-01-01",
                "2020-12-31",
                &["2019-01-01T00:00:00+07:00", "2020-01-01T00:00:00+07:00"],
            );
        }
        let hourly = Crontab::parse("@hourly").expect("parses");
        assert_eq!(hourly.times_of_day().len(), 24);
        assert_eq!(hourly.source(), "@hourly");
    }

    #[test]
    fn berlin_spring_gap_fires_once_right_after() {
        // 2019-03-31 02:00 CET → 03:00 CEST: 02:30 does not exist and fires at 03:00 CEST
        check(
            "30 2 * * *",
            &Berlin,
            "2019-03-30",
            "2019-04-01",
            &[
                "2019-03-30T02:30:00+01:00",
                "2019-03-31T03:00:00+02:00",
                "2019-04-01T02:30:00+02:00",
            ],
        );
        // all of 02:00 and 02:30 collapse onto 03:00, which also fires in its own right: once
        check(
            "*/30 1-3 * * *",
            &Berlin,
            "2019-03-31",
            "2019-03-31",
            &[
                "2019-03-31T01:00:00+01:00",
                "2019-03-31T01:30:00+01:00",
                "2019-03-31T03:00:00+02:00",
                "2019-03-31T03:30:00+02:00",
            ],
        );
        check(
            "*/15 2 * * *",
            &Berlin,
            "2019-03-31",
            "2019-03-31",
            &["2019-03-31T03:00:00+02:00"],
        );
        // an hourly job loses the nonexistent hour without firing twice
        let hourly = Crontab::parse("0 * * * *").expect("parses");
        let day = hourly.fire_times(&Berlin, date("2019-03-31"), date("2019-03-31"));
        assert_eq!(day.len(), 23);
    }

    #[test]
    fn berlin_autumn_overlap_fires_once_at_the_first() {
        // 2019-10-27 03:00 CEST → 02:00 CET: 02:30 happens twice, fires at the first (CEST)
        check(
            "30 2 * * *",
            &Berlin,
            "2019-10-26",
            "2019-10-28",
            &[
                "2019-10-26T02:30:00+02:00",
                "2019-10-27T02:30:00+02:00",
                "2019-10-28T02:30:00+01:00",
            ],
        );
        // a wildcard-minute line fires on the first pass only
        check(
            "*/15 2 * * *",
            &Berlin,
            "2019-10-27",
            "2019-10-27",
            &[
                "2019-10-27T02:00:00+02:00",
                "2019-10-27T02:15:00+02:00",
                "2019-10-27T02:30:00+02:00",
                "2019-10-27T02:45:00+02:00",
            ],
        );
        let hourly = Crontab::parse("0 * * * *").expect("parses");
        let day = hourly.fire_times(&Berlin, date("2019-10-27"), date("2019-10-27"));
        assert_eq!(day.len(), 24);
        let twos: Vec<String> = day
            .iter()
            .map(|d| d.fixed_offset().to_rfc3339())
            .filter(|s| s.contains("T02:"))
            .collect();
        assert_eq!(twos, ["2019-10-27T02:00:00+02:00"]);
    }

    #[test]
    fn midnight_gap_stays_on_its_day() {
        // Santiago: 2019-09-08 starts at 01:00 (00:00–00:59 do not exist)
        check(
            "30 0 * * *",
            &Santiago,
            "2019-09-07",
            "2019-09-09",
            &[
                "2019-09-07T00:30:00-04:00",
                "2019-09-08T01:00:00-03:00",
                "2019-09-09T00:30:00-03:00",
            ],
        );
    }

    #[test]
    fn ho_chi_minh_offsets() {
        check(
            "30 5,17 * * MON-FRI",
            &HCM,
            "2019-03-29",
            "2019-04-01",
            &[
                "2019-03-29T05:30:00+07:00",
                "2019-03-29T17:00:00+07:00",
                "2019-04-01T05:30:00+07:00",
                "2019-04-01T17:00:00+07:00",
            ]
            .iter()
            .map(|s| s.replace("17:00", "17:30"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        );
        // the same local time is a different instant than in Berlin
        let tab = Crontab::parse("0 6 * * *").expect("parses");
        let hcm = tab.fire_times(&HCM, date("2019-01-01"), date("2019-01-01"));
        assert_eq!(
            hcm[0].with_timezone(&Utc).to_rfc3339(),
            "2018-12-31T23:00:00+00:00"
        );
        // before 1975-06-13 the zone was UTC+8 (chrono-tz history is honoured)
        check(
            "0 6 1 1 *",
            &HCM,
            "1975-01-01",
            "1975-01-01",
            &["1975-01-01T06:00:00+08:00"],
        );
    }

    #[test]
    fn times_of_day_and_fires_on() {
        let tab = Crontab::parse("30,0 17,6 * * MON-FRI").expect("parses");
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
        assert_eq!(tab.times_of_day(), [t(6, 0), t(6, 30), t(17, 0), t(17, 30)]);
        assert!(tab.fires_on(date("2019-10-07")));
        assert!(!tab.fires_on(date("2019-10-06")));
        let secs = Crontab::parse("5,50 0 6 * * *").expect("parses");
        assert_eq!(
            secs.times_of_day(),
            [
                NaiveTime::from_hms_opt(6, 0, 5).expect("t"),
                NaiveTime::from_hms_opt(6, 0, 50).expect("t")
            ]
        );
        let last = Crontab::parse("0 6 L 2 *").expect("parses");
        assert!(last.fires_on(date("2020-02-29")));
        assert!(!last.fires_on(date("2020-02-28")));
        assert!(last.fires_on(date("2019-02-28")));
        assert!(!Crontab::parse("0 0 30 2 *").expect("parses").ever_fires());
        assert!(Crontab::parse("0 0 29 2 *").expect("parses").ever_fires());
        assert!(
            Crontab::parse("0 0 * * MON#5")
                .expect("parses")
                .ever_fires()
        );
    }

    #[test]
    fn empty_and_reversed_date_ranges() {
        let tab = Crontab::parse("0 6 * * *").expect("parses");
        assert!(
            tab.fire_times(&HCM, date("2019-01-02"), date("2019-01-01"))
                .is_empty()
        );
        assert_eq!(
            tab.fire_times(&HCM, date("2019-01-01"), date("2019-12-31"))
                .len(),
            365
        );
        // year boundaries
        check_days(
            "0 6 L * *",
            "2019-12-30",
            "2020-01-31",
            &["2019-12-31", "2020-01-31"],
            "06:00",
        );
    }

    /// The translation onto the `cron` crate agrees with the crate itself where the two
    /// semantics coincide (AND rule, translated day-of-week numbers, seconds first).
    #[test]
    fn agrees_with_cron_crate_on_standard_fields() {
        let pairs = [
            ("*/15 6-7 * * 1-5", "0 */15 6-7 * * 2-6"),
            ("0 0 1,15 * *", "0 0 0 1,15 * *"),
            ("30 5 * JAN-MAR SUN", "0 30 5 * 1-3 1"),
            ("0 12 10-20/3 * *", "0 0 12 10-20/3 * *"),
            ("7 8 * * 6,0", "0 7 8 * * 7,1"),
            ("15 */5 * * *", "0 15 */5 * * *"),
        ];
        for (ours, theirs) in pairs {
            let tab = Crontab::parse(ours).expect("parses");
            let got = tab.fire_times(&Utc, date("2019-01-01"), date("2019-03-31"));
            let schedule = cron::Schedule::from_str(theirs).expect("cron parses");
            let start = date("2018-12-31")
                .and_hms_opt(23, 59, 59)
                .expect("t")
                .and_utc();
            let end = date("2019-04-01")
                .and_hms_opt(0, 0, 0)
                .expect("t")
                .and_utc();
            let want: Vec<_> = schedule.after(&start).take_while(|d| *d < end).collect();
            assert!(!want.is_empty());
            assert_eq!(got, want, "{ours} vs cron's {theirs}");
        }
    }

    /// Parse `expr`, expect an error in `field` at byte `offset`, with message and hint fragments.
    fn check_err(
        expr: &str,
        field: Option<CrontabField>,
        offset: usize,
        message: &str,
        hint: &str,
    ) {
        let e = match Crontab::parse(expr) {
            Ok(t) => panic!("`{expr}` should not parse, got {t:?}"),
            Err(e) => e,
        };
        assert_eq!(e.field, field, "`{expr}`: {e}");
        assert_eq!(e.offset, offset, "`{expr}`: {e}");
        assert!(
            e.message.contains(message),
            "`{expr}`: message `{}` lacks `{message}`",
            e.message
        );
        assert!(
            e.hint.contains(hint),
            "`{expr}`: hint `{}` lacks `{hint}`",
            e.hint
        );
        assert_eq!(e.to_string(), format!("{}; {}", e.message, e.hint));
    }

    #[test]
    fn errors_name_field_offset_and_fix() {
        use CrontabField::*;
        check_err("", None, 0, "trống", "5 trường");
        check_err("   ", None, 0, "trống", "5 trường");
        check_err(
            "0 6 * *",
            None,
            7,
            "nhưng có 4",
            "thêm các trường còn thiếu",
        );
        check_err(
            "0 0 6 * * * 2019",
            None,
            12,
            "nhưng có 7",
            "không có trường năm",
        );
        check_err("0 6 * * * /bin/true x", None, 20, "nhưng có 7", "năm");
        check_err("0 6 * * * * * *", None, 12, "nhưng có 8", "không kèm lệnh");
        check_err(
            "60 6 * * *",
            Some(Minute),
            0,
            "phút: 60 nằm ngoài khoảng 0–59",
            "0-59",
        );
        check_err(
            "0 24 * * *",
            Some(Hour),
            2,
            "giờ: 24 nằm ngoài khoảng 0–23",
            "nửa đêm là 0",
        );
        check_err(
            "0 6 32 * *",
            Some(DayOfMonth),
            4,
            "ngày trong tháng: 32 nằm ngoài khoảng 1–31",
            "L",
        );
        check_err(
            "0 6 0 * *",
            Some(DayOfMonth),
            4,
            "0 nằm ngoài khoảng 1–31",
            "từ 1 đến 31",
        );
        check_err(
            "0 6 * 13 *",
            Some(Month),
            6,
            "tháng: 13 nằm ngoài khoảng 1–12",
            "JAN-DEC",
        );
        check_err(
            "0 6 * * 8",
            Some(DayOfWeek),
            8,
            "thứ trong tuần: 8 nằm ngoài khoảng 0–7",
            "SUN-SAT",
        );
        check_err("60 0 6 * * *", Some(Second), 0, "giây: 60", "0-59");
        check_err(
            "0 6 * * 99999999999999",
            Some(DayOfWeek),
            8,
            "nằm ngoài khoảng",
            "0-7",
        );
        check_err(
            "0 6 1-40 * *",
            Some(DayOfMonth),
            6,
            "40 nằm ngoài khoảng",
            "từ 1 đến 31",
        );
        check_err("0 17-5 * * *", Some(Hour), 2, "khoảng ngược", "`17-23,0-5`");
        check_err(
            "0 6 * * FRI-SUN",
            Some(DayOfWeek),
            8,
            "khoảng ngược",
            "`FRI-7`",
        );
        check_err("0 6 * * 5-0", Some(DayOfWeek), 8, "khoảng ngược", "`5-7`");
        check_err("*/0 6 * * *", Some(Minute), 2, "bước 0", "từ 1 trở lên");
        check_err(
            "0 6 1-10/0 * *",
            Some(DayOfMonth),
            9,
            "bước 0",
            "từ 1 trở lên",
        );
        check_err(
            "*/60 * * * *",
            Some(Minute),
            2,
            "bước 60 lớn hơn",
            "từ 1 đến 59",
        );
        check_err("0 */24 * * *", Some(Hour), 4, "bước 24", "từ 1 đến 23");
        check_err("*/ * * * *", Some(Minute), 2, "cần số bước", "*/15");
        check_err(
            "5/10 * * * *",
            Some(Minute),
            0,
            "phải là một khoảng hoặc `*`",
            "`5-59/n`",
        );
        check_err(
            "0 6 1,,15 * *",
            Some(DayOfMonth),
            6,
            "mục rỗng",
            "dấu phẩy thừa",
        );
        check_err(
            "0 6 1,15, * *",
            Some(DayOfMonth),
            9,
            "mục rỗng",
            "dấu phẩy thừa",
        );
        check_err(
            "0 6 ,1 * *",
            Some(DayOfMonth),
            4,
            "mục rỗng",
            "dấu phẩy thừa",
        );
        check_err(
            "0 6 -5 * *",
            Some(DayOfMonth),
            4,
            "khoảng thiếu giá trị đầu",
            "a-b",
        );
        check_err("0 6 5- * *", Some(DayOfMonth), 6, "thiếu giá trị", "1-31");
        check_err(
            "0 6 1-2-3 * *",
            Some(DayOfMonth),
            6,
            "`2-3` không phải là số",
            "nhận số",
        );
        check_err("0 6 ? * MON", Some(DayOfMonth), 4, "ký tự `?`", "viết `*`");
        check_err(
            "0 6 * * MON;TUE",
            Some(DayOfWeek),
            11,
            "ký tự `;`",
            "SUN-SAT",
        );
        check_err("0 6 * * Th2", Some(DayOfWeek), 8, "tên `Th2`", "MON");
        check_err(
            "0 6 * * monday",
            Some(DayOfWeek),
            8,
            "không có trong danh sách",
            "viết `MON`",
        );
        check_err(
            "0 6 * January *",
            Some(Month),
            6,
            "không có trong danh sách",
            "viết `JAN`",
        );
        check_err(
            "0 six * * *",
            Some(Hour),
            2,
            "`six` không phải là số",
            "0-23",
        );
        check_err(
            "0 6 MON * *",
            Some(DayOfMonth),
            4,
            "`MON` không phải là số",
            "ngày trong tháng",
        );
        check_err(
            "0 6 * * L",
            Some(DayOfWeek),
            8,
            "chỉ dùng được ở trường ngày trong tháng",
            "0 8 L * *",
        );
        check_err(
            "0 6 L-3 * *",
            Some(DayOfMonth),
            4,
            "`L` không phải là số",
            "",
        );
        check_err(
            "0 6 1#2 * *",
            Some(DayOfMonth),
            5,
            "chỉ dùng được ở trường thứ trong tuần",
            "MON#2",
        );
        check_err(
            "0 6 * * MON#6",
            Some(DayOfWeek),
            12,
            "6 sau `#` nằm ngoài khoảng 1–5",
            "nhiều nhất 5",
        );
        check_err(
            "0 6 * * MON#0",
            Some(DayOfWeek),
            12,
            "0 sau `#` nằm ngoài khoảng 1–5",
            "nhiều nhất 5",
        );
        check_err(
            "0 6 * * MON#",
            Some(DayOfWeek),
            12,
            "cần một số từ 1 đến 5",
            "MON#2",
        );
        check_err(
            "0 6 * * MON-FRI#2",
            Some(DayOfWeek),
            8,
            "chỉ đi với một thứ",
            "MON#2,TUE#2",
        );
        check_err(
            "0 6 * * 8#1",
            Some(DayOfWeek),
            8,
            "8 nằm ngoài khoảng 0–7",
            "",
        );
        check_err(
            "0 *5 * * *",
            Some(Hour),
            2,
            "`*` phải đứng một mình",
            "*/15",
        );
        check_err("0 6 * * thứ2", Some(DayOfWeek), 10, "ký tự `ứ`", "SUN-SAT");
        check_err(
            "@reboot",
            None,
            0,
            "`@reboot` không phải giờ phát",
            "30 5 * * *",
        );
        check_err("  @REBOOT", None, 2, "`@reboot`", "");
        check_err(
            "@fortnightly",
            None,
            0,
            "macro `@fortnightly` không được hỗ trợ",
            "@daily",
        );
        check_err("@daily 0 6", None, 7, "phải đứng một mình", "@daily");
    }

    // ---- property tests ----

    fn value(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
        let lo = min.saturating_sub(1);
        let hi = max + 1;
        let number = prop_oneof![
            12 => (min..=max).prop_map(|v| v.to_string()),
            1 => prop::sample::select(vec![lo, hi]).prop_map(|v| v.to_string()),
        ];
        if names.is_empty() {
            number.boxed()
        } else {
            prop_oneof![
                3 => number,
                1 => prop::sample::select(names).prop_map(str::to_string),
                1 => prop::sample::select(names).prop_map(str::to_lowercase),
            ]
            .boxed()
        }
    }

    fn item(
        min: u32,
        max: u32,
        names: &'static [&'static str],
        extra: &'static [&'static str],
    ) -> BoxedStrategy<String> {
        let v = || value(min, max, names);
        prop_oneof![
            3 => Just("*".to_string()),
            4 => v(),
            2 => (min..=max, 0..=max - min).prop_map(move |(a, w)| format!("{a}-{}", (a + w).min(max))),
            1 => (v(), v()).prop_map(|(a, b)| format!("{a}-{b}")),
            1 => (v(), v(), 0..=max + 1).prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
            1 => (0..=max + 1).prop_map(|s| format!("*/{s}")),
            1 => prop::sample::select(extra).prop_map(str::to_string),
            1 => (v(), 0..=max + 1).prop_map(|(a, s)| format!("{a}/{s}")),
        ]
        .boxed()
    }

    fn field(
        min: u32,
        max: u32,
        names: &'static [&'static str],
        extra: &'static [&'static str],
    ) -> BoxedStrategy<String> {
        prop::collection::vec(item(min, max, names, extra), 1..4)
            .prop_map(|v| v.join(","))
            .boxed()
    }

    fn near_valid() -> BoxedStrategy<String> {
        const NONE: &[&str] = &[];
        let five = (
            field(0, 59, NONE, &["", "?", "x"]),
            field(0, 23, NONE, &["", "6", "17"]),
            field(1, 31, NONE, &["L", "l", "L-2", "13"]),
            field(1, 12, &MONTH_NAMES, &["JANUARY", "2"]),
            field(
                0,
                7,
                &DOW_NAMES,
                &["MON#2", "FRI#5", "0#1", "7#5", "SAT#6", "L", "1#"],
            ),
        );
        prop_oneof![
            6 => five.clone().prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}")),
            2 => (prop::sample::select(vec!["0", "30", "0,30", "61", "*/20"]), five)
                .prop_map(|(s, (a, b, c, d, e))| format!("{s} {a} {b} {c} {d} {e}")),
            1 => prop::sample::select(vec!["@daily", "@reboot", "@hourly", "@weekly x", "@monthly", "@nope"])
                .prop_map(str::to_string),
        ]
        .boxed()
    }

    fn check_expansion<Z: TimeZone>(tab: &Crontab, tz: &Z, from: NaiveDate, to: NaiveDate) {
        let fired = tab.fire_times(tz, from, to);
        for pair in fired.windows(2) {
            assert!(
                pair[0] < pair[1],
                "{}: not strictly increasing",
                tab.source()
            );
        }
        let per_day = tab.times_of_day().len();
        let mut day = from;
        while day <= to {
            let on_day = fired
                .iter()
                .filter(|d| d.naive_local().date() == day)
                .count();
            let transition = {
                let a = tz
                    .offset_from_utc_datetime(&(day.and_time(NaiveTime::MIN) - Duration::hours(15)))
                    .fix();
                let b = tz
                    .offset_from_utc_datetime(&(day.and_time(NaiveTime::MIN) + Duration::hours(39)))
                    .fix();
                a != b
            };
            if !tab.fires_on(day) {
                assert_eq!(
                    on_day,
                    0,
                    "{} fired on {day}, fires_on says no",
                    tab.source()
                );
            } else if transition {
                assert!(
                    on_day >= 1 && on_day <= per_day,
                    "{} on {day}: {on_day}",
                    tab.source()
                );
            } else {
                assert_eq!(on_day, per_day, "{} on {day}", tab.source());
            }
            day = day.succ_opt().expect("date");
        }
        let in_range = fired.iter().filter(|d| {
            let local = d.naive_local().date();
            local >= from && local <= to
        });
        assert_eq!(
            in_range.count(),
            fired.len(),
            "{}: firing outside range",
            tab.source()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_strings_never_panic(s in "\\PC{0,40}") {
            let _ = Crontab::parse(&s);
        }

        #[test]
        fn random_ascii_never_panics(s in "[0-9A-Za-z*/,#@? \\t-]{0,40}") {
            if let Ok(tab) = Crontab::parse(&s) {
                check_expansion(&tab, &Utc, date("2019-01-01"), date("2019-01-03"));
            }
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn near_valid_expressions_expand_consistently(
            expr in near_valid(),
            start in prop::sample::select(vec!["2019-03-29", "2019-10-25", "2020-02-26", "2019-12-29", "2019-09-06", "2019-04-05"]),
            skip in 0i64..3,
            len in 0i64..6,
            zone in 0usize..3,
        ) {
            match Crontab::parse(&expr) {
                Err(e) => {
                    prop_assert!(e.offset <= expr.len());
                    prop_assert!(!e.message.is_empty() && !e.hint.is_empty());
                }
                Ok(tab) => {
                    let fresh = Crontab::parse_uncached(&expr);
                    prop_assert_eq!(fresh.as_ref(), Ok(&tab));
                    let from = date(start) + Duration::days(skip);
                    let to = from + Duration::days(len);
                    match zone {
                        0 => check_expansion(&tab, &Berlin, from, to),
                        1 => check_expansion(&tab, &HCM, from, to),
                        _ => check_expansion(&tab, &Santiago, from, to),
                    }
                }
            }
        }
    }
}
