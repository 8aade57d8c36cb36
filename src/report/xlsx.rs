//! The XLSX export: a summary sheet per station with city totals and a signature block, every
//! airing, and the exceptions (missed, failed, no record, unplanned, bulletin airings that did
//! not go on air).
//!
//! **Invariant:** the airing sheets carry the same cells as the CSV rows, in the same order,
//! continuing on `NAME (2)`… past Excel's row limit; the bulletin columns (summary and airing
//! sheets) are there only when a row is a bulletin airing, as in the CSV.

use std::collections::HashMap;

use super::csv::{Cell, cell_text, date_dmy, row_cells, time_hms};
use super::{
    BulletinInfo, CSV_BULLETIN_HEADER, CSV_HEADERS, PeriodReport, ReportError, StationSection,
};
use crate::reconcile::{Row, Status};
use crate::wire::Outcome;

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

/// Summary sheet columns added last when a row is a bulletin airing (never in the compliance
/// figures before them): airings recorded, aired (whole or in part), minutes on air.
pub const SUMMARY_BULLETINS: [&str; 3] = [
    "Bản tin (lần phát)",
    "Bản tin đã phát",
    "Thời lượng bản tin (phút)",
];

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
        // Likewise the bulletin figures, only when there are bulletin airings.
        let bulletin_col = (SUMMARY_HEADERS.len() + usize::from(open)) as u16;
        let with_bulletins = report.has_bulletins();
        if with_bulletins {
            for (i, h) in SUMMARY_BULLETINS.iter().enumerate() {
                ws.write_string_with_format(2, bulletin_col + i as u16, *h, &bold)?;
            }
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
            if with_bulletins {
                ws.write_number(row, bulletin_col, t.bulletins as f64)?;
                ws.write_number(row, bulletin_col + 1, t.bulletins_aired as f64)?;
                ws.write_number(
                    row,
                    bulletin_col + 2,
                    (t.bulletin_secs / 60.0 * 10.0).round() / 10.0,
                )?;
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
        // A one-station report (`station=`) totals that station, not the city.
        let total = if report.only_station.is_some() {
            "Tổng cộng của trạm"
        } else {
            "Tổng cộng toàn thành phố"
        };
        ws.write_string_with_format(row, 0, total, &bold)?;
        put(ws, row, &report.city.totals)?;
        row += 2;
        ws.write_string_with_format(row, 0, "Theo thể loại", &bold)?;
        row += 1;
        for (cat, t) in &report.city.by_category {
            ws.write_string(row, 0, super::category_vi(cat))?;
            put(ws, row, t)?;
            row += 1;
        }
        ws.write_string_with_format(row, 0, "Theo nguồn", &bold)?;
        row += 1;
        for (src, t) in &report.city.by_source {
            ws.write_string(row, 0, super::source_vi(src))?;
            put(ws, row, t)?;
            row += 1;
        }
        let notes: Vec<String> = report
            .stations
            .iter()
            .filter_map(|s| {
                s.plan_note
                    .as_ref()
                    .map(|n| format!("{}: {}", s.id, super::plan_note_vi(n)))
            })
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
    let is_exception = |r: &&Row| match r.status {
        Status::Missed | Status::Failed | Status::NoRecord | Status::Unplanned => true,
        Status::Bulletin => !matches!(r.outcome, Some(Outcome::Aired | Outcome::Partial)),
        _ => false,
    };
    let bulletins = report.has_bulletins().then_some(&report.bulletins);
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
        let other = scope.spawn(move || {
            fill_row_sheets(sheets, bold, max_rows_per_sheet, bulletins, exceptions)
        });
        let a = fill_row_sheets(&mut airing_sheets, bold, max_rows_per_sheet, bulletins, all);
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

/// Write airing rows under the CSV headers on `sheets`, `max_rows` data rows on each; with
/// `bulletins`, the [`CSV_BULLETIN_HEADER`] column last.
fn fill_row_sheets<'a>(
    sheets: &mut [rust_xlsxwriter::Worksheet],
    bold: &rust_xlsxwriter::Format,
    max_rows: u32,
    bulletins: Option<&HashMap<String, BulletinInfo>>,
    rows: impl Iterator<Item = (&'a StationSection, &'a Row)>,
) -> Result<(), ReportError> {
    let mut rows = rows.peekable();
    let last = CSV_HEADERS.len() as u16;
    for ws in sheets {
        for (c, h) in CSV_HEADERS.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, bold)?;
        }
        if bulletins.is_some() {
            ws.write_string_with_format(0, last, CSV_BULLETIN_HEADER, bold)?;
        }
        let mut row = 1u32;
        while row <= max_rows {
            let Some((s, r)) = rows.next() else {
                break;
            };
            write_row(ws, row, s, r)?;
            if let (Some(known), Some(b)) = (bulletins, &r.bulletin) {
                ws.write_string(row, last, super::bulletin_vi(b, known.get(&b.id)))?;
            }
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
