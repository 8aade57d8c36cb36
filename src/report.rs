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

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;

use crate::collector::registry::{Registry, StationEntry};
use crate::collector::store::{Store, StoreError, StoredRecord};
use crate::reconcile::{Airing, Breakdown, Row, Status, Thresholds, reconcile, source_key};
use crate::schedule::PlannedAiring;
use crate::wire::{GENESIS_HASH, SignedRecord, decode_public_key};

/// Format name written into JSON exports.
pub const EXPORT_FORMAT: &str = "loa-airing-log";
/// Version of the JSON export layout. 2: each station carries `anchor`, `successor` and
/// `held_through`, which prove where its run starts and ends (1 did not).
pub const EXPORT_VERSION: u32 = 2;

/// Errors building or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("period `{0}` is not YYYY-MM (a month) or YYYY (a year)")]
    BadPeriod(String),
    #[error("cannot write the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the spreadsheet: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
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
        let offset = crate::collector::status::report_offset();
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
                now.with_timezone(&crate::collector::status::report_offset())
                    .format("%H:%M %d/%m/%Y")
            )
        })
    }

    /// Unix seconds bounding every instant whose local date (any offset within ±14 h) is inside.
    fn unix_bounds(&self) -> (i64, i64) {
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

/// Where the plan of a station comes from: the report calls it per station and period.
pub trait PlanSource {
    /// The planned airings of `station` in `period`, or why they cannot be known.
    fn plan(&self, station: &StationEntry, period: &Period) -> Result<Vec<PlannedAiring>, String>;

    /// Prepare the plans of every station of `registry` for `periods` before requests come
    /// (the collector's plan cache builds and keeps them; a source that computes on demand does
    /// nothing).
    fn warm(&self, _registry: &Registry, _periods: &[Period]) {}

    /// A number that changes whenever a plan this source gave may have changed (what was derived
    /// from its plans is derived again); a source that computes on demand keeps 0.
    fn generation(&self) -> u64 {
        0
    }
}

/// Plans from each station's registered schedule file (`schedule::load` + `schedule::expand`),
/// computed on every call: it decodes every audio file the schedule names. For offline commands;
/// the collector serves from `collector::plans::PlanCache`.
pub struct SchedulePlans;

impl PlanSource for SchedulePlans {
    fn plan(&self, station: &StationEntry, period: &Period) -> Result<Vec<PlannedAiring>, String> {
        let path = station
            .schedule
            .as_ref()
            .ok_or_else(|| "no schedule file registered for this station".to_string())?;
        let root = station
            .audio_root
            .clone()
            .or_else(|| path.parent().map(|p| p.to_path_buf()))
            .unwrap_or_default();
        let (st, catalog) = crate::schedule::load(path, &root, period.from).map_err(|e| {
            let first = e.0.first().map(|x| x.to_string()).unwrap_or_default();
            format!("schedule {} does not load: {e}: {first}", path.display())
        })?;
        Ok(crate::schedule::expand(
            &st,
            &catalog,
            period.from,
            period.to,
        ))
    }
}

/// One station's part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct StationSection {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub public_key: String,
    /// Why the plan is unknown, when it is (records then count on the station's word).
    pub plan_note: Option<String>,
    pub reconciliation: crate::reconcile::StationReconciliation,
    /// The contiguous run of stored records covering the period (for the JSON export).
    #[serde(skip)]
    pub records: Vec<StoredRecord>,
    /// What proves where the run starts and ends (for the JSON export).
    #[serde(skip)]
    pub bounds: RunBounds,
}

/// The records that prove where a station's run starts and ends: the JSON export carries them so
/// `loa verify` can tell a run cut short from a whole one.
#[derive(Debug, Clone, Default)]
pub struct RunBounds {
    /// The station-signed record just before the run (seq = first − 1), when the run does not
    /// start at seq 1 and the collector holds it; for a station with no record in the period,
    /// the last record scheduled before the period.
    pub anchor: Option<StoredRecord>,
    /// The record just after the run (seq = last + 1; for an empty run, the anchor's next, or
    /// seq 1 when there is no anchor), when the collector holds it.
    pub successor: Option<StoredRecord>,
    /// The highest seq the collector held for the station when the report was built.
    pub held_through: u64,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodReport {
    pub period: Period,
    /// The `now` it was built at: occurrences not due by then are "not yet due".
    pub generated_at: DateTime<Utc>,
    pub stations: Vec<StationSection>,
    /// City-wide totals.
    pub city: Breakdown,
}

/// Build the report of `period` for every registered station, keeping each station's run of
/// signed records (what the JSON export needs).
pub fn build(
    store: &Store,
    registry: &Registry,
    plans: &(dyn PlanSource + Sync),
    period: &Period,
    th: &Thresholds,
    now: DateTime<Utc>,
) -> Result<PeriodReport, ReportError> {
    build_with(store, registry, plans, period, th, now, true)
}

/// [`build`], keeping the signed records only when `keep_records` (the CSV and XLSX exports do
/// not need them; a month of 10,000 stations holds ~600 MB of them). The database is read on this
/// thread (one connection); parsing, plan expansion and reconciliation run on every core.
pub fn build_with(
    store: &Store,
    registry: &Registry,
    plans: &(dyn PlanSource + Sync),
    period: &Period,
    th: &Thresholds,
    now: DateTime<Utc>,
    keep_records: bool,
) -> Result<PeriodReport, ReportError> {
    let entries: Vec<&StationEntry> = registry.stations.values().collect();
    let threads = crate::worker_threads();
    let per = entries.len().div_ceil(threads).max(1);
    type Built = Result<StationSection, ReportError>;
    let work = |db: &Store, part: &[&StationEntry]| -> Vec<Built> {
        part.iter()
            .map(|entry| section(db, entry, plans, period, th, now, keep_records))
            .collect()
    };
    // One part per core, each with its own read connection (WAL readers run side by side):
    // reading, parsing and reconciling all run in parallel; the first part runs here on the
    // caller's connection.
    let mut parts = entries.chunks(per);
    let first = parts.next().unwrap_or(&[]);
    let mut readers = Vec::new();
    for part in parts {
        readers.push((store.open_reader()?, part));
    }
    let built: Vec<Built> = std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = readers
            .into_iter()
            .map(|(db, part)| s.spawn(move || work(&db, part)))
            .collect();
        let mut all = work(store, first);
        for h in handles {
            match h.join() {
                Ok(v) => all.extend(v),
                // The work returns errors rather than panic; re-raise a panic as such.
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        all
    });
    let mut stations = Vec::with_capacity(built.len());
    let mut city = Breakdown::default();
    for b in built {
        let section = b?;
        city.merge(&section.reconciliation.breakdown);
        stations.push(section);
    }
    Ok(PeriodReport {
        period: period.clone(),
        generated_at: now,
        stations,
        city,
    })
}

/// Reconcile one station over `period` at `now`. With `keep_records`, its signed records are read
/// (and parsed: the same airings) and the contiguous run of seqs covering the period is kept for
/// the JSON export; without, only the airing columns are read (no JSON parsing).
fn section(
    db: &Store,
    entry: &StationEntry,
    plans: &dyn PlanSource,
    period: &Period,
    th: &Thresholds,
    now: DateTime<Utc>,
    keep_records: bool,
) -> Result<StationSection, ReportError> {
    let (lo, hi) = period.unix_bounds();
    let (airings, run, bounds) = if keep_records {
        // Read first: every seq up to it was stored before the reads below, so a seq below it
        // that they do not find is a gap, not a late arrival.
        let held_through = db.stored_through(&entry.id)?;
        let stored = db.records_between(Some(&entry.id), lo, hi)?;
        let mut airings = Vec::with_capacity(stored.len());
        let (mut first, mut last) = (u64::MAX, 0u64);
        // The highest seq read here that is scheduled before the period (an empty run's anchor).
        let mut before: Option<usize> = None;
        for (i, s) in stored.iter().enumerate() {
            let r = s.parse()?;
            if period.contains(&r.scheduled_at) {
                first = first.min(s.seq);
                last = last.max(s.seq);
                airings.push(Airing::from(r));
            } else if r.scheduled_at.date_naive() < period.from
                && before.is_none_or(|b| stored[b].seq < s.seq)
            {
                before = Some(i);
            }
        }
        let one = |seq: u64| -> Result<Option<StoredRecord>, ReportError> {
            Ok(db.records_by_seq(&entry.id, seq, seq)?.pop())
        };
        let (anchor, successor) = if last == 0 {
            // No record in the period: bracket it with the last record before it and the next.
            let anchor = match before {
                Some(b) => Some(stored[b].clone()),
                None => db.last_record_scheduled_before(&entry.id, lo)?,
            };
            let next = anchor.as_ref().map_or(Some(1), |a| a.seq.checked_add(1));
            (anchor, next.map(one).transpose()?.flatten())
        } else {
            let anchor = match first.checked_sub(1) {
                Some(0) | None => None,
                Some(seq) => one(seq)?,
            };
            (anchor, last.checked_add(1).map(one).transpose()?.flatten())
        };
        let run = if last == 0 {
            Vec::new()
        } else if last - first + 1 == stored.len() as u64 && stored.len() == airings.len() {
            stored
        } else {
            // Records of neighbouring periods inside the run are read too, so it has no holes.
            db.records_by_seq(&entry.id, first, last)?
        };
        let held_through = held_through
            .max(last)
            .max(successor.as_ref().map_or(0, |r| r.seq));
        let bounds = RunBounds {
            anchor,
            successor,
            held_through,
        };
        (airings, run, bounds)
    } else {
        let mut airings = db.airings_between(&entry.id, lo, hi)?;
        airings.retain(|a| period.contains(&a.scheduled_at));
        (airings, Vec::new(), RunBounds::default())
    };
    let (plan, plan_note) = match plans.plan(entry, period) {
        Ok(p) => (Some(p), None),
        Err(note) => (None, Some(note)),
    };
    let reconciliation = reconcile(&entry.id, plan.as_deref(), &airings, th, now);
    Ok(StationSection {
        id: entry.id.clone(),
        name: entry.name.clone(),
        area_code: entry.area_code.clone(),
        public_key: entry.public_key.clone(),
        plan_note,
        reconciliation,
        records: run,
        bounds,
    })
}

/// Reconcile one station over `period` at `now` from the airing columns, without its signed
/// records (the status and month views show the reconciliation only; the JSON export goes
/// through [`build_with`]).
pub fn station_section(
    store: &Store,
    entry: &StationEntry,
    plans: &dyn PlanSource,
    period: &Period,
    th: &Thresholds,
    now: DateTime<Utc>,
) -> Result<StationSection, ReportError> {
    section(store, entry, plans, period, th, now, false)
}

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

/// CSV column headers (Vietnamese).
pub const CSV_HEADERS: [&str; 18] = [
    "Mã trạm",
    "Tên trạm",
    "Mã ĐVHC",
    "Ngày",
    "Giờ kế hoạch",
    "Giờ phát thực tế",
    "Khung giờ",
    "Chương trình",
    "Thể loại",
    "Nguồn",
    "Thời lượng kế hoạch (giây)",
    "Thời lượng đã phát (giây)",
    "Trễ (giây)",
    "Thiếu (giây)",
    "Kết quả",
    "Lý do",
    "Số thứ tự bản ghi",
    "Mã lần phát",
];

fn source_vi(row: &Row) -> &'static str {
    match source_key(row.source) {
        "relay" => "Tiếp âm",
        _ => "Tệp của trạm",
    }
}

fn csv_field(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.write_all(b"\"")?;
        out.write_all(s.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(s.as_bytes())
    }
}

/// One cell of an airing row, typed so CSV and XLSX each write it their way without
/// re-parsing text (and without an allocation per cell).
enum Cell<'a> {
    Text(&'a str),
    /// The local date, `dd/mm/yyyy`.
    Date(&'a DateTime<FixedOffset>),
    /// The local time of day, `hh:mm:ss`.
    Time(&'a DateTime<FixedOffset>),
    /// Seconds, shown with one decimal (XLSX: a number rounded to 0.1).
    Secs(f64),
    Int(u64),
    Empty,
}

fn opt_secs<'a>(x: Option<f64>) -> Cell<'a> {
    x.map(Cell::Secs).unwrap_or(Cell::Empty)
}

fn opt_text(x: &Option<String>) -> Cell<'_> {
    x.as_deref().map(Cell::Text).unwrap_or(Cell::Empty)
}

/// Two ASCII digits of `n` (0..=99).
fn two_digits(n: u32) -> [u8; 2] {
    [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]
}

/// `dd/mm/yyyy` of the local date of `t` (years outside 0..=9999 as `format!` writes them).
fn date_dmy(t: &DateTime<FixedOffset>, buf: &mut [u8; 16]) -> usize {
    let d = t.date_naive();
    let y = d.year();
    if !(0..=9999).contains(&y) {
        let s = format!("{:02}/{:02}/{:04}", d.day(), d.month(), y);
        let n = s.len().min(buf.len());
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        return n;
    }
    let y = y as u32;
    buf[..2].copy_from_slice(&two_digits(d.day()));
    buf[2] = b'/';
    buf[3..5].copy_from_slice(&two_digits(d.month()));
    buf[5] = b'/';
    buf[6..8].copy_from_slice(&two_digits(y / 100));
    buf[8..10].copy_from_slice(&two_digits(y % 100));
    10
}

/// `hh:mm:ss` of the local time of `t`.
fn time_hms(t: &DateTime<FixedOffset>, buf: &mut [u8; 16]) -> usize {
    use chrono::Timelike;
    let t = t.time();
    buf[..2].copy_from_slice(&two_digits(t.hour()));
    buf[2] = b':';
    buf[3..5].copy_from_slice(&two_digits(t.minute()));
    buf[5] = b':';
    buf[6..8].copy_from_slice(&two_digits(t.second()));
    8
}

/// The text of a date or time cell in `buf` (always ASCII).
fn cell_text<'b>(
    f: fn(&DateTime<FixedOffset>, &mut [u8; 16]) -> usize,
    t: &DateTime<FixedOffset>,
    buf: &'b mut [u8; 16],
) -> &'b str {
    let n = f(t, buf);
    std::str::from_utf8(&buf[..n]).unwrap_or_default()
}

/// Append `x` as `format!("{x:.1}")` writes it: integral values (the usual case) directly,
/// anything else through `format!`'s own rounding.
fn push_secs(out: &mut Vec<u8>, x: f64) {
    if (0.0..1e15).contains(&x) && x.fract() == 0.0 && x.is_sign_positive() {
        out.extend_from_slice(itoa::Buffer::new().format(x as u64).as_bytes());
        out.extend_from_slice(b".0");
    } else {
        let _ = write!(out, "{x:.1}");
    }
}

/// The cells of one airing row, in [`CSV_HEADERS`] order.
fn row_cells<'a>(s: &'a StationSection, r: &'a Row) -> [Cell<'a>; 18] {
    [
        Cell::Text(&s.id),
        Cell::Text(&s.name),
        Cell::Text(&s.area_code),
        Cell::Date(&r.scheduled_at),
        Cell::Time(&r.scheduled_at),
        r.actual_start
            .as_ref()
            .map(Cell::Time)
            .unwrap_or(Cell::Empty),
        opt_text(&r.slot),
        opt_text(&r.program),
        Cell::Text(&r.category),
        Cell::Text(source_vi(r)),
        Cell::Secs(r.planned_secs),
        Cell::Secs(r.aired_secs),
        opt_secs(r.late_by_secs.filter(|&l| l > 0.0)),
        opt_secs(r.short_by_secs),
        Cell::Text(r.status.label_vi()),
        r.reason_code
            .as_ref()
            .map(|c| Cell::Text(c.vi()))
            .unwrap_or(Cell::Empty),
        r.seq.map(Cell::Int).unwrap_or(Cell::Empty),
        opt_text(&r.occurrence),
    ]
}

/// Bytes of CSV buffered before each write to `out`.
const CSV_CHUNK_BYTES: usize = 1 << 20;

/// CSV: a BOM, for a period not over the note saying so (one line, [`Period::open_note`]), the
/// Vietnamese headers, then one row per planned occurrence or unplanned airing. The rows of each
/// station are formatted on every core (one run of stations per core, in order) and written to
/// `out` in station order, in chunks of ~1 MiB.
pub fn write_csv(report: &PeriodReport, out: &mut impl Write) -> Result<(), ReportError> {
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    head.extend_from_slice("\u{feff}".as_bytes());
    if let Some(note) = report.period.open_note(report.generated_at) {
        csv_field(&mut head, &note)?;
        head.extend_from_slice(b"\r\n");
    }
    for (i, h) in CSV_HEADERS.iter().enumerate() {
        if i > 0 {
            head.push(b',');
        }
        csv_field(&mut head, h)?;
    }
    head.extend_from_slice(b"\r\n");
    out.write_all(&head)?;
    let threads = crate::worker_threads();
    let per = report.stations.len().div_ceil(threads).max(1);
    let parts: Vec<std::io::Result<Vec<Vec<u8>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = report
            .stations
            .chunks(per)
            .map(|part| scope.spawn(move || csv_rows(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(v) => v,
                // Formatting returns errors rather than panic; re-raise a panic as such.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    });
    for part in parts {
        for chunk in part? {
            out.write_all(&chunk)?;
        }
    }
    Ok(())
}

/// The CSV rows of `stations`, in order, as chunks of ~[`CSV_CHUNK_BYTES`].
fn csv_rows(stations: &[StationSection]) -> std::io::Result<Vec<Vec<u8>>> {
    let mut chunks = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(CSV_CHUNK_BYTES + 64 * 1024);
    let mut tbuf = [0u8; 16];
    for s in stations {
        for r in &s.reconciliation.rows {
            for (i, c) in row_cells(s, r).iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                match c {
                    Cell::Text(t) => csv_field(&mut buf, t)?,
                    Cell::Date(t) => {
                        let n = date_dmy(t, &mut tbuf);
                        buf.extend_from_slice(&tbuf[..n]);
                    }
                    Cell::Time(t) => {
                        let n = time_hms(t, &mut tbuf);
                        buf.extend_from_slice(&tbuf[..n]);
                    }
                    Cell::Secs(x) => push_secs(&mut buf, *x),
                    Cell::Int(n) => {
                        buf.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes())
                    }
                    Cell::Empty => {}
                }
            }
            buf.extend_from_slice(b"\r\n");
            if buf.len() >= CSV_CHUNK_BYTES {
                chunks.push(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(CSV_CHUNK_BYTES + 64 * 1024),
                ));
            }
        }
    }
    chunks.push(buf);
    Ok(chunks)
}

/// The JSON export as written.
#[derive(Debug, Serialize, Deserialize)]
pub struct JsonExport {
    pub format: String,
    pub version: u32,
    pub period: Period,
    pub generated_at: DateTime<Utc>,
    /// Present when the period was not over at `generated_at`: its figures are as of then
    /// ("Tháng chưa kết thúc — số liệu tính đến …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub stations: Vec<JsonStation>,
}

/// One station in the JSON export.
#[derive(Debug, Serialize, Deserialize)]
pub struct JsonStation {
    pub id: String,
    pub name: String,
    pub area_code: String,
    /// Base64 Ed25519 public key the records verify against.
    pub public_key: String,
    /// Records in the period per the collector (for cross-checking by `loa verify`).
    pub records_in_period: u64,
    pub plan_note: Option<String>,
    /// Totals of the reconciliation (informative; not signed by the station).
    pub totals: crate::reconcile::Totals,
    /// The highest seq the collector held for the station at `generated_at` (the collector's
    /// word, not signed). Version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_through: Option<u64>,
    /// The station-signed record just before `records` ([`RunBounds::anchor`]): proves the run
    /// starts where it does. Version 2; absent when the run starts at seq 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<SignedRecord>,
    /// The contiguous run of signed records, verbatim.
    pub records: Vec<SignedRecord>,
    /// The station-signed record just after `records` ([`RunBounds::successor`]): proves the
    /// run ends where it does. Version 2; absent when the collector held none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<SignedRecord>,
}

/// JSON: the signed records verbatim, per station, with public keys and totals.
pub fn write_json(report: &PeriodReport, out: &mut impl Write) -> Result<(), ReportError> {
    let mut stations = Vec::with_capacity(report.stations.len());
    for s in &report.stations {
        let mut records = Vec::with_capacity(s.records.len());
        let mut in_period = 0;
        for r in &s.records {
            let signed = r.signed()?;
            if signed
                .parse()
                .is_ok_and(|p| report.period.contains(&p.scheduled_at))
            {
                in_period += 1;
            }
            records.push(signed);
        }
        stations.push(JsonStation {
            id: s.id.clone(),
            name: s.name.clone(),
            area_code: s.area_code.clone(),
            public_key: s.public_key.clone(),
            records_in_period: in_period,
            plan_note: s.plan_note.clone(),
            totals: s.reconciliation.breakdown.totals.clone(),
            held_through: Some(s.bounds.held_through),
            anchor: s.bounds.anchor.as_ref().map(|r| r.signed()).transpose()?,
            records,
            successor: s
                .bounds
                .successor
                .as_ref()
                .map(|r| r.signed())
                .transpose()?,
        });
    }
    let doc = JsonExport {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        period: report.period.clone(),
        generated_at: report.generated_at,
        note: report.period.open_note(report.generated_at),
        stations,
    };
    serde_json::to_writer_pretty(out, &doc)?;
    Ok(())
}

/// XLSX sheet names.
pub const SHEET_SUMMARY: &str = "Tổng hợp";
pub const SHEET_AIRINGS: &str = "Chi tiết phát sóng";
pub const SHEET_EXCEPTIONS: &str = "Bỏ lỡ - ngoài KH";

/// Summary sheet column headers.
pub const SUMMARY_HEADERS: [&str; 13] = [
    "Mã trạm",
    "Tên trạm",
    "Mã ĐVHC",
    "Kế hoạch",
    "Đã phát",
    "Đúng giờ",
    "Trễ",
    "Thiếu thời lượng",
    "Lỗi",
    "Bỏ lỡ",
    "Không có bản ghi",
    "Tỷ lệ thực hiện (%)",
    "Tổng thời lượng phát (phút)",
];

/// Summary sheet column added after [`SUMMARY_HEADERS`] when the period is not over.
pub const SUMMARY_NOT_YET_DUE: &str = "Chưa đến giờ";

/// XLSX: summary per station with totals and signature block, every airing, exceptions.
pub fn to_xlsx(report: &PeriodReport) -> Result<Vec<u8>, ReportError> {
    to_xlsx_with_sheet_rows(report, MAX_DATA_ROWS_PER_SHEET)
}

/// [`to_xlsx`] with at most `max_rows_per_sheet` data rows per airing sheet (tests use a small
/// number to see the continuation sheets).
pub fn to_xlsx_with_sheet_rows(
    report: &PeriodReport,
    max_rows_per_sheet: u32,
) -> Result<Vec<u8>, ReportError> {
    let max_rows_per_sheet = max_rows_per_sheet.clamp(1, MAX_DATA_ROWS_PER_SHEET);
    use rust_xlsxwriter::{Format as XFormat, FormatAlign, Workbook};
    let mut wb = Workbook::new();
    let bold = XFormat::new().set_bold();
    let title = XFormat::new().set_bold().set_font_size(14);
    let center_bold = XFormat::new().set_bold().set_align(FormatAlign::Center);
    let pct = XFormat::new().set_num_format("0.0");
    {
        let ws = wb.add_worksheet();
        ws.set_name(SHEET_SUMMARY)?;
        ws.write_string_with_format(
            0,
            0,
            format!(
                "BÁO CÁO KẾT QUẢ PHÁT SÓNG KẾ HOẠCH — kỳ {} ({} đến {})",
                report.period.label,
                report.period.from.format("%d/%m/%Y"),
                report.period.to.format("%d/%m/%Y")
            ),
            &title,
        )?;
        let open_note = report.period.open_note(report.generated_at);
        if let Some(note) = &open_note {
            ws.write_string_with_format(1, 0, note, &bold)?;
        }
        for (c, h) in SUMMARY_HEADERS.iter().enumerate() {
            ws.write_string_with_format(2, c as u16, *h, &bold)?;
        }
        // Only a period not over has occurrences not yet due: a past period's sheet is unchanged.
        let open = open_note.is_some();
        if open {
            ws.write_string_with_format(
                2,
                SUMMARY_HEADERS.len() as u16,
                SUMMARY_NOT_YET_DUE,
                &bold,
            )?;
        }
        ws.set_column_width(1, 30)?;
        let mut row = 3u32;
        let put = |ws: &mut rust_xlsxwriter::Worksheet,
                   row: u32,
                   t: &crate::reconcile::Totals|
         -> Result<(), ReportError> {
            let nums = [
                t.planned,
                t.aired,
                t.on_time,
                t.late,
                t.short,
                t.failed,
                t.missed,
                t.no_record,
            ];
            for (i, n) in nums.iter().enumerate() {
                ws.write_number(row, 3 + i as u16, *n as f64)?;
            }
            match t.compliance_pct() {
                Some(p) => {
                    ws.write_number_with_format(row, 11, (p * 10.0).round() / 10.0, &pct)?;
                }
                None => {
                    ws.write_string(row, 11, "—")?;
                }
            }
            ws.write_number(row, 12, (t.airtime_secs / 60.0 * 10.0).round() / 10.0)?;
            if open {
                ws.write_number(row, 13, t.not_yet_due as f64)?;
            }
            Ok(())
        };
        for s in &report.stations {
            ws.write_string(row, 0, &s.id)?;
            ws.write_string(row, 1, &s.name)?;
            ws.write_string(row, 2, &s.area_code)?;
            put(ws, row, &s.reconciliation.breakdown.totals)?;
            row += 1;
        }
        ws.write_string_with_format(row, 0, "Tổng cộng toàn thành phố", &bold)?;
        put(ws, row, &report.city.totals)?;
        row += 2;
        ws.write_string_with_format(row, 0, "Theo thể loại", &bold)?;
        row += 1;
        for (cat, t) in &report.city.by_category {
            ws.write_string(row, 0, cat)?;
            put(ws, row, t)?;
            row += 1;
        }
        ws.write_string_with_format(row, 0, "Theo nguồn", &bold)?;
        row += 1;
        for (src, t) in &report.city.by_source {
            ws.write_string(
                row,
                0,
                if src == "relay" {
                    "Tiếp âm"
                } else {
                    "Tệp của trạm"
                },
            )?;
            put(ws, row, t)?;
            row += 1;
        }
        let notes: Vec<String> = report
            .stations
            .iter()
            .filter_map(|s| s.plan_note.as_ref().map(|n| format!("{}: {n}", s.id)))
            .collect();
        if !notes.is_empty() {
            row += 1;
            ws.write_string_with_format(row, 0, "Ghi chú (kế hoạch không xác định)", &bold)?;
            for n in notes {
                row += 1;
                ws.write_string(row, 0, n)?;
            }
        }
        row += 3;
        ws.write_string_with_format(row, 1, "Người lập biểu", &center_bold)?;
        ws.write_string_with_format(row, 5, "Người kiểm tra", &center_bold)?;
        ws.write_string_with_format(row, 10, "Thủ trưởng đơn vị", &center_bold)?;
        row += 1;
        for c in [1u16, 5, 10] {
            ws.write_string(row, c, "(Ký, ghi rõ họ tên)")?;
        }
    }
    // The two big sheets are written row by row in constant-memory mode (rows go to a temp file
    // as they are written, strings inline), so a month of 10,000 stations does not sit in memory;
    // each on its own thread (standalone worksheets, pushed in order afterwards). Both use one
    // format (`bold`), so the style indices do not depend on which thread registers it first.
    let is_exception = |r: &&Row| {
        matches!(
            r.status,
            Status::Missed | Status::Failed | Status::NoRecord | Status::Unplanned
        )
    };
    let (n_all, n_exceptions) = report.stations.iter().fold((0usize, 0usize), |(a, e), s| {
        let rows = &s.reconciliation.rows;
        (a + rows.len(), e + rows.iter().filter(is_exception).count())
    });
    let mut airing_sheets = new_row_sheets(&mut wb, SHEET_AIRINGS, n_all, max_rows_per_sheet)?;
    let mut exception_sheets =
        new_row_sheets(&mut wb, SHEET_EXCEPTIONS, n_exceptions, max_rows_per_sheet)?;
    let all = report
        .stations
        .iter()
        .flat_map(|s| s.reconciliation.rows.iter().map(move |r| (s, r)));
    let exceptions = report.stations.iter().flat_map(|s| {
        s.reconciliation
            .rows
            .iter()
            .filter(is_exception)
            .map(move |r| (s, r))
    });
    let (a, e) = std::thread::scope(|scope| {
        let bold = &bold;
        let sheets = &mut exception_sheets;
        let other =
            scope.spawn(move || fill_row_sheets(sheets, bold, max_rows_per_sheet, exceptions));
        let a = fill_row_sheets(&mut airing_sheets, bold, max_rows_per_sheet, all);
        let e = match other.join() {
            Ok(e) => e,
            // The work returns errors rather than panic; re-raise a panic as such.
            Err(p) => std::panic::resume_unwind(p),
        };
        (a, e)
    });
    a?;
    e?;
    for ws in airing_sheets.into_iter().chain(exception_sheets) {
        wb.push_worksheet(ws);
    }
    // Level 3 (what Excel itself uses) instead of 6: most of the time of a big export is
    // compressing the sheet XML; the file is ~5% bigger.
    wb.set_zip_compression_level(3);
    Ok(wb.save_to_buffer()?)
}

/// Data rows per sheet: Excel's limit of 1,048,576 rows less the header. Rows beyond it continue
/// on a sheet named `NAME (2)`, `NAME (3)`… (a year of many stations can exceed it).
pub const MAX_DATA_ROWS_PER_SHEET: u32 = 1_048_575;

/// Standalone constant-memory sheets named `name`, `name (2)`, … enough for `rows` data rows
/// (at least one, so an empty export still has its headers).
fn new_row_sheets(
    wb: &mut rust_xlsxwriter::Workbook,
    name: &str,
    rows: usize,
    max_rows: u32,
) -> Result<Vec<rust_xlsxwriter::Worksheet>, ReportError> {
    let parts = rows.div_ceil(max_rows as usize).max(1);
    let mut sheets = Vec::with_capacity(parts);
    for part in 1..=parts {
        let mut ws = wb.new_worksheet_with_constant_memory()?;
        ws.set_name(if part == 1 {
            name.to_string()
        } else {
            format!("{name} ({part})")
        })?;
        sheets.push(ws);
    }
    Ok(sheets)
}

/// Write airing rows under the CSV headers on `sheets`, `max_rows` data rows on each.
fn fill_row_sheets<'a>(
    sheets: &mut [rust_xlsxwriter::Worksheet],
    bold: &rust_xlsxwriter::Format,
    max_rows: u32,
    rows: impl Iterator<Item = (&'a StationSection, &'a Row)>,
) -> Result<(), ReportError> {
    let mut rows = rows.peekable();
    for ws in sheets {
        for (c, h) in CSV_HEADERS.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, bold)?;
        }
        let mut row = 1u32;
        while row <= max_rows {
            let Some((s, r)) = rows.next() else {
                break;
            };
            write_row(ws, row, s, r)?;
            row += 1;
        }
    }
    Ok(())
}

fn write_row(
    ws: &mut rust_xlsxwriter::Worksheet,
    row: u32,
    s: &StationSection,
    r: &Row,
) -> Result<(), ReportError> {
    let mut buf = [0u8; 16];
    for (c, v) in row_cells(s, r).into_iter().enumerate() {
        let c = c as u16;
        // Numbers as numbers so Excel sums them.
        match v {
            Cell::Text(t) => {
                ws.write_string(row, c, t)?;
            }
            Cell::Date(t) => {
                ws.write_string(row, c, cell_text(date_dmy, t, &mut buf))?;
            }
            Cell::Time(t) => {
                ws.write_string(row, c, cell_text(time_hms, t, &mut buf))?;
            }
            Cell::Secs(x) => {
                ws.write_number(row, c, (x * 10.0).round() / 10.0)?;
            }
            Cell::Int(n) => {
                ws.write_number(row, c, n as f64)?;
            }
            Cell::Empty => {}
        }
    }
    Ok(())
}

/// What `loa verify` found for one station.
#[derive(Debug, Clone, Serialize)]
pub struct StationVerdict {
    pub id: String,
    pub records: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// What is wrong: the export fails verification.
    pub problems: Vec<String>,
    /// What the export cannot prove for this station, without anything being wrong (the end of
    /// a run that nothing follows yet): stated, not failed.
    pub notes: Vec<String>,
}

/// What `loa verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub period: Option<Period>,
    /// The export's format version, when it could be read.
    pub version: Option<u32>,
    pub stations: Vec<StationVerdict>,
    /// File-level problems (older format, key differs from the registry, station missing...).
    pub problems: Vec<String>,
    /// Set when the input is not a readable export at all (not JSON, not a `loa-airing-log`, a
    /// version this build does not read): nothing was verified (`loa verify` exits 2).
    pub input_error: Option<String>,
}

impl Verdict {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.input_error.is_none()
            && self.problems.is_empty()
            && self.stations.iter().all(|s| s.problems.is_empty())
    }
}

/// Export format versions [`verify_export`] reads: 1 (before the start and end of each run were
/// proven: read, verified record by record, and failed as not provably complete) and the current.
pub const EXPORT_VERSIONS_READ: [u32; 2] = [1, EXPORT_VERSION];

/// A station-signed record of the export checked against the station's key: hash, strict
/// Ed25519 signature (`SignedRecord::verify`, the rule ingest uses), and that it is the
/// station's. Problems name the station, the record and the key.
fn check_signed(
    sr: &SignedRecord,
    key: &ed25519_dalek::VerifyingKey,
    station: &str,
    what: &str,
    key_text: &str,
) -> Result<crate::wire::AiringRecord, String> {
    let seq = sr
        .parse()
        .map(|r| format!(" (seq {})", r.seq))
        .unwrap_or_default();
    let rec = sr.verify(key).map_err(|e| match e {
        crate::wire::WireError::BadSignature { .. } => format!(
            "{what}{seq}: signature does not verify with the public key the export gives for \
             `{station}` ({})",
            key_hint(key_text)
        ),
        e => format!("{what}{seq}: {e}"),
    })?;
    if rec.station != station {
        return Err(format!(
            "{what}{seq}: a record of station `{}` filed under `{station}`",
            rec.station
        ));
    }
    Ok(rec)
}

/// The first characters of a base64 key, enough to tell keys apart in a message.
fn key_hint(key: &str) -> String {
    let k = key.trim();
    match k.char_indices().nth(12) {
        Some((i, _)) => format!("{}…", &k[..i]),
        None => k.to_string(),
    }
}

/// Verify a JSON export offline: per station, every record's hash and strict signature against
/// the included public key (and, when `registry` is given, that key against the registered one),
/// the station field, consecutive sequence numbers (no gaps), the hash chain, the count of
/// records in the period, and (version 2) where the run starts and ends: the anchor before it
/// and the successor after it, each signed by the station, chained to the run and scheduled
/// outside the period. What this proves and what it cannot is in `docs/reports.md`.
pub fn verify_export(text: &str, registry: Option<&Registry>) -> Verdict {
    let mut verdict = Verdict {
        period: None,
        version: None,
        stations: Vec::new(),
        problems: Vec::new(),
        input_error: None,
    };
    let doc: JsonExport = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            verdict.input_error = Some(format!("not a loa JSON export: {e}"));
            return verdict;
        }
    };
    if doc.format != EXPORT_FORMAT || !EXPORT_VERSIONS_READ.contains(&doc.version) {
        verdict.input_error = Some(format!(
            "format `{}` version {} is not {EXPORT_FORMAT} version {} (this build reads versions {:?})",
            doc.format, doc.version, EXPORT_VERSION, EXPORT_VERSIONS_READ
        ));
        return verdict;
    }
    verdict.version = Some(doc.version);
    let proves_bounds = doc.version >= 2;
    if !proves_bounds {
        verdict.problems.push(format!(
            "older export (format version {}): the start and end of each station's range are \
             not provable (it carries no record before or after each run); re-export the period \
             with this version of loa",
            doc.version
        ));
    }
    let period = &doc.period;
    let mut seen = BTreeMap::new();
    for st in &doc.stations {
        let mut v = StationVerdict {
            id: st.id.clone(),
            records: st.records.len(),
            first_seq: None,
            last_seq: None,
            problems: Vec::new(),
            notes: Vec::new(),
        };
        if seen.insert(st.id.clone(), ()).is_some() {
            v.problems.push("station listed twice".into());
        }
        let key = match decode_public_key(&st.public_key) {
            Ok(k) => k,
            Err(e) => {
                v.problems.push(format!(
                    "the export's public key for `{}` ({}): {e}",
                    st.id,
                    key_hint(&st.public_key)
                ));
                verdict.stations.push(v);
                continue;
            }
        };
        if let Some(reg) = registry {
            match reg.get(&st.id) {
                Some(e) if e.key == key => {}
                Some(e) => v.problems.push(format!(
                    "the export's public key for `{}` ({}) differs from the key registered for it \
                     ({})",
                    st.id,
                    key_hint(&st.public_key),
                    key_hint(&e.public_key)
                )),
                None => v
                    .problems
                    .push(format!("station `{}` is not in the registry", st.id)),
            }
        }
        let check =
            |sr: &SignedRecord, what: &str| check_signed(sr, &key, &st.id, what, &st.public_key);
        let mut prev: Option<(u64, String)> = None;
        let mut in_period = 0u64;
        // The run's first record (seq, prev_hash) and last (seq, hash), when they verify.
        let mut head: Option<(u64, String)> = None;
        let mut tail: Option<(u64, String)> = None;
        let n = st.records.len();
        for (i, sr) in st.records.iter().enumerate() {
            let rec = match check(sr, &format!("record #{}", i + 1)) {
                Ok(r) => r,
                Err(p) => {
                    v.problems.push(p);
                    prev = None;
                    continue;
                }
            };
            if period.contains(&rec.scheduled_at) {
                in_period += 1;
            }
            if i == 0 {
                head = Some((rec.seq, rec.prev_hash.clone()));
            }
            if i + 1 == n {
                tail = Some((rec.seq, sr.hash.clone()));
            }
            v.first_seq.get_or_insert(rec.seq);
            v.last_seq = Some(rec.seq);
            match &prev {
                Some((pseq, phash)) => {
                    if rec.seq != pseq + 1 {
                        v.problems.push(if rec.seq > pseq + 1 {
                            format!("sequence gap: seq {}..{} missing", pseq + 1, rec.seq - 1)
                        } else {
                            format!(
                                "seq {} after seq {}: out of order or repeated",
                                rec.seq, pseq
                            )
                        });
                    } else if &rec.prev_hash != phash {
                        v.problems.push(format!(
                            "hash chain broken between seq {} and seq {}",
                            pseq, rec.seq
                        ));
                    }
                }
                None if i == 0 && rec.seq == 1 && rec.prev_hash != GENESIS_HASH => {
                    v.problems
                        .push("seq 1 does not start from the genesis hash".into());
                }
                None => {}
            }
            prev = Some((rec.seq, sr.hash.clone()));
        }
        if in_period != st.records_in_period {
            v.problems.push(format!(
                "{} records in the period, the export states {}",
                in_period, st.records_in_period
            ));
        }
        if proves_bounds {
            check_bounds(st, period, &check, head, tail, &mut v, doc.generated_at);
        }
        verdict.stations.push(v);
    }
    if let Some(reg) = registry {
        for id in reg.stations.keys() {
            if !seen.contains_key(id) {
                verdict.problems.push(format!(
                    "registered station `{id}` is missing from the export"
                ));
            }
        }
    }
    verdict.period = Some(doc.period);
    verdict
}

/// The start and end of one station's run (export version 2): `head` is the run's first record
/// (seq, prev_hash) and `tail` its last (seq, hash), when they verified.
fn check_bounds(
    st: &JsonStation,
    period: &Period,
    check: &dyn Fn(&SignedRecord, &str) -> Result<crate::wire::AiringRecord, String>,
    head: Option<(u64, String)>,
    tail: Option<(u64, String)>,
    v: &mut StationVerdict,
    generated_at: DateTime<Utc>,
) {
    let date = |r: &crate::wire::AiringRecord| r.scheduled_at.date_naive();
    let dmy = |d: NaiveDate| d.format("%d/%m/%Y").to_string();
    let anchor = match &st.anchor {
        Some(a) => match check(a, "anchor") {
            Ok(r) => Some((r, a.hash.clone())),
            Err(p) => {
                v.problems.push(p);
                return;
            }
        },
        None => None,
    };
    if let Some((a, _)) = &anchor
        && date(a) >= period.from
    {
        v.problems.push(format!(
            "start not proven: the anchor (seq {}) is scheduled on {}, not before the period",
            a.seq,
            dmy(date(a))
        ));
    }
    // Start: the record just before the run, or the genesis.
    match (&head, &anchor) {
        (Some((1, _)), None) => {}
        (Some((1, _)), Some((a, _))) => v.problems.push(format!(
            "an anchor (seq {}) is given, but the run starts at seq 1",
            a.seq
        )),
        (Some((first, _)), None) => v.problems.push(format!(
            "start not proven: the export carries no anchor (seq {}) before the first record \
             (seq {first}): records of the period before seq {first} cannot be ruled out",
            first - 1
        )),
        (Some((first, prev_hash)), Some((a, a_hash))) => {
            if a.seq.checked_add(1) != Some(*first) {
                v.problems.push(if a.seq < *first {
                    format!(
                        "start not proven: seq {}..{} missing between the anchor (seq {}) and \
                         the first record (seq {first})",
                        a.seq + 1,
                        first - 1,
                        a.seq
                    )
                } else {
                    format!(
                        "the anchor (seq {}) is not before the first record (seq {first})",
                        a.seq
                    )
                });
            } else if prev_hash != a_hash {
                v.problems.push(format!(
                    "the first record (seq {first}) does not chain to the anchor (seq {})",
                    a.seq
                ));
            }
        }
        // A run whose first record did not verify: already a problem.
        (None, _) if !st.records.is_empty() => return,
        (None, _) => {}
    }
    // End: the record just after the run (or, with no record in the period, after the anchor).
    let last: Option<(u64, String)> = if st.records.is_empty() {
        anchor.as_ref().map(|(a, h)| (a.seq, h.clone()))
    } else {
        match tail {
            Some(t) => Some(t),
            None => return,
        }
    };
    let held = st.held_through.unwrap_or(0);
    match (&st.successor, &last) {
        (Some(s), last) => {
            let r = match check(s, "successor") {
                Ok(r) => r,
                Err(p) => {
                    v.problems.push(p);
                    return;
                }
            };
            if date(&r) <= period.to {
                v.problems.push(format!(
                    "end not proven: the successor (seq {}) is scheduled on {}, not after the \
                     period",
                    r.seq,
                    dmy(date(&r))
                ));
            }
            match last {
                Some((seq, hash)) => {
                    if seq.checked_add(1) != Some(r.seq) {
                        v.problems.push(if r.seq > *seq {
                            format!(
                                "end not proven: seq {}..{} missing between the last record \
                                 (seq {seq}) and the successor (seq {})",
                                seq + 1,
                                r.seq - 1,
                                r.seq
                            )
                        } else {
                            format!(
                                "the successor (seq {}) is not after the last record (seq {seq})",
                                r.seq
                            )
                        });
                    } else if &r.prev_hash != hash {
                        v.problems.push(format!(
                            "the successor (seq {}) does not chain to the last record (seq {seq})",
                            r.seq
                        ));
                    }
                }
                // No record in the period and none before it: the successor must be the
                // station's very first record.
                None => {
                    if r.seq != 1 || r.prev_hash != GENESIS_HASH {
                        v.problems.push(format!(
                            "start not proven: no record in the period and no anchor, but the \
                             successor is seq {}, not the station's first record",
                            r.seq
                        ));
                    }
                }
            }
        }
        (None, Some((seq, _))) if held > *seq => v.problems.push(format!(
            "end not proven: the collector held records up to seq {held} but not seq {} \
             (a gap at the collector): records of the period after seq {seq} cannot be ruled out",
            seq + 1
        )),
        (None, Some((seq, _))) => v.notes.push(format!(
            "end proven only up to seq {seq}, the highest the collector held at {}: a record of \
             the period the station made or shipped later cannot be ruled out",
            generated_at
                .with_timezone(&crate::collector::status::report_offset())
                .format("%H:%M %d/%m/%Y")
        )),
        (None, None) if held == 0 => v
            .notes
            .push("no record: the collector held none from this station at export time".into()),
        (None, None) => v.problems.push(format!(
            "start not proven: no record in the period and nothing brackets it, though the \
             collector held records up to seq {held}"
        )),
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

    #[test]
    fn csv_quotes_fields() {
        let mut out = Vec::new();
        csv_field(&mut out, "a,\"b\"").unwrap();
        assert_eq!(out, b"\"a,\"\"b\"\"\"");
    }

    #[test]
    fn secs_and_times_are_written_as_format_writes_them() {
        use chrono::TimeZone;
        for x in [
            0.0,
            -0.0,
            1.0,
            600.0,
            599.95,
            0.05,
            0.25,
            0.35,
            1e15,
            1e16,
            123.456,
            -3.0,
            -0.04,
            f64::MAX,
            4.5e-300,
        ] {
            let mut out = Vec::new();
            push_secs(&mut out, x);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{x:.1}"), "{x}");
        }
        let mut buf = [0u8; 16];
        for (off, (y, mo, d, h, mi, sec)) in [
            (7 * 3600, (2019, 3, 1, 5, 30, 0)),
            (-3600, (2019, 12, 31, 23, 59, 59)),
            (0, (999, 1, 9, 0, 0, 7)),
            (14 * 3600, (12345, 6, 7, 8, 9, 10)),
        ] {
            let t = FixedOffset::east_opt(off)
                .unwrap()
                .with_ymd_and_hms(y, mo, d, h, mi, sec)
                .unwrap();
            assert_eq!(
                cell_text(date_dmy, &t, &mut buf),
                format!("{:02}/{:02}/{:04}", t.day(), t.month(), t.year())
            );
            use chrono::Timelike;
            assert_eq!(
                cell_text(time_hms, &t, &mut buf),
                format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
            );
        }
    }

    #[test]
    fn csv_rows_formatted_on_every_core_come_out_in_station_order() {
        use crate::schedule::{PlannedAiring, Priority, StartPolicy};
        use chrono::TimeZone;
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        let stations: Vec<StationSection> = (0..23)
            .map(|i| {
                let id = format!("st{i:02}");
                let plans: Vec<PlannedAiring> = (0..3)
                    .map(|h| PlannedAiring {
                        station: id.as_str().into(),
                        slot: format!("s{h}").into(),
                        program: Some("cchc, \"a\"".into()),
                        category: "cchc".into(),
                        at: tz.with_ymd_and_hms(2019, 3, 1 + i, 5 + h, 30, 0).unwrap(),
                        items: vec![].into(),
                        planned_secs: 600.5,
                        priority: Priority::Normal,
                        start: StartPolicy::Hard,
                        grace_secs: 0,
                        max_secs: 900,
                        relay: None,
                    })
                    .collect();
                StationSection {
                    id: id.clone(),
                    name: format!("Phường {i}"),
                    area_code: format!("{:05}", 20000 + i),
                    public_key: String::new(),
                    plan_note: None,
                    reconciliation: reconcile(
                        &id,
                        Some(&plans),
                        &[],
                        &Thresholds::default(),
                        Utc::now(),
                    ),
                    records: Vec::new(),
                    bounds: RunBounds::default(),
                }
            })
            .collect();
        let mut expected = Vec::new();
        for chunk in csv_rows(&stations).unwrap() {
            expected.extend_from_slice(&chunk);
        }
        let report = PeriodReport {
            period: Period::parse("2019-03", NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()).unwrap(),
            generated_at: Utc::now(),
            stations,
            city: Breakdown::default(),
        };
        let text = String::from_utf8(render(&report, Format::Csv).unwrap()).unwrap();
        let (head, rows) = text.split_once("\r\n").unwrap();
        assert!(head.starts_with("\u{feff}Mã trạm,"));
        assert_eq!(rows.as_bytes(), expected.as_slice());
        let firsts: Vec<&str> = rows.lines().map(|l| &l[..4]).collect();
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(firsts, sorted);
        assert_eq!(firsts.len(), 23 * 3);
        assert!(
            rows.lines()
                .next()
                .unwrap()
                .contains(",\"cchc, \"\"a\"\"\",")
        );
    }
}
