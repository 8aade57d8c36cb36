//! The CSV export (Excel-friendly: BOM, Vietnamese headers, CRLF), and the typed cells of an
//! airing row that the XLSX export writes too.
//!
//! **Invariant:** the bytes depend only on the report: rows are formatted in parallel but
//! written in station order, each cell as `format!` would write it.

use chrono::{DateTime, Datelike, FixedOffset};
use std::io::Write;

use super::words::{bulletin_vi, category_vi, source_vi, status_vi};
use super::{BulletinInfo, PeriodReport, ReportError, StationSection};
use crate::reconcile::{Row, source_key};

/// CSV column headers (Vietnamese). Tools read the columns by position: a new column goes at the
/// end. *Chương trình* is the program's title (the id when the schedule gives none); its id is the
/// column *Mã chương trình*; the last, *Phiên bản lịch*, the schedule version the record names.
pub const CSV_HEADERS: [&str; 20] = [
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
    "Mã chương trình",
    // Last, after every earlier column: the centre's schedule version the record names (empty
    // when it names none or there is no record).
    "Phiên bản lịch",
];

/// The column after [`CSV_HEADERS`] in a report with bulletin airings (and only there, so a
/// month without bulletins exports byte for byte as before): the bulletin each bulletin row
/// airs — title (or id), which airing of how many, "giọng đọc tổng hợp" when read by
/// text-to-speech ([`super::bulletin_vi`]); empty on every other row.
pub const CSV_BULLETIN_HEADER: &str = "Bản tin";

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
pub(super) enum Cell<'a> {
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
pub(super) fn date_dmy(t: &DateTime<FixedOffset>, buf: &mut [u8; 16]) -> usize {
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
pub(super) fn time_hms(t: &DateTime<FixedOffset>, buf: &mut [u8; 16]) -> usize {
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
pub(super) fn cell_text<'b>(
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
pub(super) fn row_cells<'a>(s: &'a StationSection, r: &'a Row) -> [Cell<'a>; CSV_HEADERS.len()] {
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
        r.program
            .as_deref()
            .map(|p| Cell::Text(s.title_of(p)))
            .unwrap_or(Cell::Empty),
        Cell::Text(category_vi(&r.category)),
        Cell::Text(source_vi(source_key(r.source))),
        Cell::Secs(r.planned_secs),
        Cell::Secs(r.aired_secs),
        opt_secs(r.late_by_secs.filter(|&l| l > 0.0)),
        opt_secs(r.short_by_secs),
        Cell::Text(status_vi(r)),
        r.reason_code
            .as_ref()
            .map(|c| Cell::Text(c.vi()))
            .unwrap_or(Cell::Empty),
        r.seq.map(Cell::Int).unwrap_or(Cell::Empty),
        opt_text(&r.occurrence),
        opt_text(&r.program),
        r.schedule_version.map(Cell::Int).unwrap_or(Cell::Empty),
    ]
}

/// Bytes of CSV buffered before each write to `out`.
const CSV_CHUNK_BYTES: usize = 1 << 20;

/// CSV: a BOM, for a period not over the note saying so (one line, [`super::Period::open_note`]),
/// the Vietnamese headers, then one row per planned occurrence or unplanned airing. The rows of
/// each station are formatted on every core (one run of stations per core, in order) and written to
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
    let bulletins = report.has_bulletins().then_some(&report.bulletins);
    if bulletins.is_some() {
        head.push(b',');
        csv_field(&mut head, CSV_BULLETIN_HEADER)?;
    }
    head.extend_from_slice(b"\r\n");
    out.write_all(&head)?;
    let threads = crate::worker_threads();
    let per = report.stations.len().div_ceil(threads).max(1);
    let parts: Vec<std::io::Result<Vec<Vec<u8>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = report
            .stations
            .chunks(per)
            .map(|part| scope.spawn(move || csv_rows(part, bulletins)))
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

/// The CSV rows of `stations`, in order, as chunks of ~[`CSV_CHUNK_BYTES`]; with `bulletins`,
/// each row ends with the [`CSV_BULLETIN_HEADER`] cell.
fn csv_rows(
    stations: &[StationSection],
    bulletins: Option<&std::collections::HashMap<String, BulletinInfo>>,
) -> std::io::Result<Vec<Vec<u8>>> {
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
            if let Some(known) = bulletins {
                buf.push(b',');
                if let Some(b) = &r.bulletin {
                    csv_field(&mut buf, &bulletin_vi(b, known.get(&b.id)))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{Breakdown, Thresholds, reconcile};
    use crate::report::{Format, Period, RunBounds, render};
    use chrono::{NaiveDate, Utc};

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
                    titles: Default::default(),
                }
            })
            .collect();
        let mut expected = Vec::new();
        for chunk in csv_rows(&stations, None).unwrap() {
            expected.extend_from_slice(&chunk);
        }
        let report = PeriodReport {
            period: Period::parse("2019-03", NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()).unwrap(),
            generated_at: Utc::now(),
            stations,
            city: Breakdown::default(),
            only_station: None,
            bulletins: Default::default(),
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

    #[test]
    fn the_built_in_categories_are_written_in_vietnamese() {
        use crate::schedule::{PlannedAiring, Priority, StartPolicy};
        use chrono::TimeZone;
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        let plans: Vec<PlannedAiring> = ["relay", "other", "cchc"]
            .iter()
            .enumerate()
            .map(|(h, cat)| PlannedAiring {
                station: "st".into(),
                slot: format!("s{h}").into(),
                program: Some("p".into()),
                category: (*cat).into(),
                at: tz
                    .with_ymd_and_hms(2019, 3, 1, 5 + h as u32, 30, 0)
                    .unwrap(),
                items: vec![].into(),
                planned_secs: 600.0,
                priority: Priority::Normal,
                start: StartPolicy::Hard,
                grace_secs: 0,
                max_secs: 900,
                relay: None,
            })
            .collect();
        let section = StationSection {
            id: "st".into(),
            name: "Phường".into(),
            area_code: "20000".into(),
            public_key: String::new(),
            plan_note: None,
            reconciliation: reconcile("st", Some(&plans), &[], &Thresholds::default(), Utc::now()),
            records: Vec::new(),
            bounds: RunBounds::default(),
            titles: Default::default(),
        };
        let rows: Vec<u8> = csv_rows(&[section], None).unwrap().concat();
        let rows = String::from_utf8(rows).unwrap();
        let categories: Vec<&str> = rows.lines().map(|l| l.split(',').nth(8).unwrap()).collect();
        assert_eq!(categories, ["tiếp sóng", "khác", "cchc"], "{rows}");
    }
}
