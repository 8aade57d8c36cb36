//! The year-to-date compliance report as an editable Word document (DOCX) in the layout of a
//! Vietnamese administrative report (Nghị định 30/2020/NĐ-CP, Phụ lục I): Quốc hiệu and tiêu
//! ngữ, the issuing body and its parent, số/ký hiệu, địa danh and date, tên loại and trích yếu,
//! the figures (the city per month, then one table per station, each month: planned / aired /
//! missed / compliance), nơi nhận, and the signer's block — what the city culture office edits,
//! signs and files for the 15/11 deadline of its plan.
//!
//! The flow is three steps: [`YtdRequest::parse`] (the period and the issuer, from the route or
//! `loa export`, no I/O), [`month_reports`] (the only step that reads: one month report per month,
//! January to the chosen month, built by [`super::build_with`] exactly as the month CSV/XLSX are),
//! then [`content`] and [`to_docx`] (pure: the document's content from those reports, then its
//! bytes in memory).
//!
//! **Invariant:** every figure in the document is a month report's own total (the same
//! reconciliation, thresholds and `now` as the CSV/XLSX of that month); the year and city rows are
//! sums of those, never counted again another way. Bad input (a month outside 01–12, a period not
//! started, a year without data, an unknown station or parameter) is a [`DocxError`] with a
//! Vietnamese message and a code, never a panic.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use docx_rs::{
    AlignmentType, BorderType, Docx, LineSpacing, LineSpacingType, PageMargin, Paragraph,
    ParagraphBorder, ParagraphBorderPosition, ParagraphBorders, Run, RunFonts, SpecialIndentType,
    Table, TableAlignmentType, TableCell, TableRow, VAlignType, WidthType,
};
use serde::Deserialize;
use std::path::Path;

use super::period::report_offset;
use super::source::{OneStation, RecordSource, StationDirectory, StationEntry};
use super::{Period, PeriodReport, PlanSource, ReportError, build_with};
use crate::reconcile::{Thresholds, Totals};

/// HTTP content type of a DOCX file.
pub const CONTENT_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// Quốc hiệu, as Nghị định 30/2020 writes it.
pub const QUOC_HIEU: &str = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM";
/// Tiêu ngữ.
pub const TIEU_NGU: &str = "Độc lập - Tự do - Hạnh phúc";
/// Tên loại văn bản.
pub const TEN_LOAI: &str = "BÁO CÁO";
/// The city row of the tables.
pub const CITY_ROW: &str = "Cộng";
/// Column headers of every table.
pub const TABLE_HEADERS: [&str; 5] = ["Tháng", "Kế hoạch", "Đã phát", "Bỏ lỡ", "Tỷ lệ thực hiện"];

/// Longest value accepted for one issuer field (a name, a place, a title).
pub const MAX_FIELD_CHARS: usize = 200;
/// Most recipients (nơi nhận) accepted.
pub const MAX_RECIPIENTS: usize = 30;
/// The file, beside the station registry, that sets the issuer for every DOCX report.
pub const OFFICE_FILE: &str = "office.toml";

/// Why a DOCX report — or the `station=` of any report ([`station_param`]) — cannot be made;
/// every message is Vietnamese, every variant one code and one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum DocxError {
    /// 400 `report.bad_period`.
    #[error(
        "Kỳ báo cáo `{0}` không hợp lệ: dùng NĂM (2026, từ tháng 01 đến tháng hiện tại) hoặc NĂM-THÁNG (2026-10, từ tháng 01 đến tháng 10)"
    )]
    BadPeriod(String),
    /// 400 `report.bad_month`.
    #[error("Tháng `{0}` không hợp lệ: tháng phải từ 01 đến 12")]
    MonthOutOfRange(String),
    /// 400 `report.not_started`.
    #[error(
        "Kỳ báo cáo {label} chưa bắt đầu (hôm nay là {today}): chọn tháng đã qua hoặc tháng hiện tại"
    )]
    NotStarted { label: String, today: String },
    /// 404 `report.no_data`.
    #[error(
        "Năm {year} không có số liệu từ tháng 01 đến tháng {through:02}: không trạm nào có kế hoạch hay bản ghi phát sóng"
    )]
    NoData { year: i32, through: u32 },
    /// 404 `report.unknown_station`.
    #[error("Không có trạm `{0}` trong danh sách trạm đã đăng ký (tham số `station`)")]
    UnknownStation(String),
    /// 400 `report.bad_parameter`.
    #[error("Tham số `{name}` không hợp lệ: {why}")]
    BadParam { name: String, why: String },
    /// 500 `report.bad_office_file`: the issuer file beside the registry does not read.
    #[error("Tệp {path} không hợp lệ: {why} (sửa tệp hoặc xóa để dùng giá trị mặc định)")]
    OfficeFile { path: String, why: String },
    /// 500 `internal`: logged, not shown.
    #[error("{0}")]
    Report(#[from] ReportError),
    /// 500 `internal`.
    #[error("không tạo được tệp DOCX: {0}")]
    Write(String),
}

impl DocxError {
    /// The code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadPeriod(_) => "report.bad_period",
            Self::MonthOutOfRange(_) => "report.bad_month",
            Self::NotStarted { .. } => "report.not_started",
            Self::NoData { .. } => "report.no_data",
            Self::UnknownStation(_) => "report.unknown_station",
            Self::BadParam { .. } => "report.bad_parameter",
            Self::OfficeFile { .. } => "report.bad_office_file",
            Self::Report(_) | Self::Write(_) => "internal",
        }
    }

    /// The HTTP status of the error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadPeriod(_)
            | Self::MonthOutOfRange(_)
            | Self::NotStarted { .. }
            | Self::BadParam { .. } => 400,
            Self::NoData { .. } | Self::UnknownStation(_) => 404,
            Self::OfficeFile { .. } | Self::Report(_) | Self::Write(_) => 500,
        }
    }

    /// True when the message is for the server's log only (the client sees a generic one).
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Report(_) | Self::Write(_))
    }
}

/// Who issues the report: the header, the number, the signer and the recipients. Every field can
/// be set in `office.toml` beside the registry and overridden per request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Issuer {
    /// Cơ quan chủ quản (the line above the issuing body), e.g. "UBND thành phố Quảng Ngãi".
    pub parent_agency: String,
    /// Cơ quan ban hành, e.g. "Phòng Văn hóa và Thông tin".
    pub agency: String,
    /// Địa danh before the date, e.g. "TP. Quảng Ngãi".
    pub place: String,
    /// Số (left blank by default: the clerk numbers the report when it is issued).
    pub number: String,
    /// Ký hiệu after the number, e.g. "BC-VHTT".
    pub symbol: String,
    /// Thẩm quyền ký when signing for the head, e.g. "KT. TRƯỞNG PHÒNG" (empty: none).
    pub signer_authority: String,
    /// Chức vụ of the signer, e.g. "TRƯỞNG PHÒNG".
    pub signer_title: String,
    /// Họ và tên of the signer (empty: left for the office to write).
    pub signer_name: String,
    /// Nơi nhận, one line each.
    pub recipients: Vec<String>,
}

impl Default for Issuer {
    /// The city culture office of the plan (Kế hoạch 37/KH-UBND of TP. Quảng Ngãi), reporting to
    /// the city People's Committee.
    fn default() -> Self {
        Self {
            parent_agency: "UBND thành phố Quảng Ngãi".into(),
            agency: "Phòng Văn hóa và Thông tin".into(),
            place: "TP. Quảng Ngãi".into(),
            number: String::new(),
            symbol: "BC-VHTT".into(),
            signer_authority: String::new(),
            signer_title: "TRƯỞNG PHÒNG".into(),
            signer_name: String::new(),
            recipients: vec![
                "UBND thành phố (b/c);".into(),
                "Trung tâm Truyền thông - Văn hóa - Thể thao;".into(),
                "UBND các xã, phường;".into(),
                "Lưu: VT, VHTT.".into(),
            ],
        }
    }
}

/// Names of the parameters that set [`Issuer`] fields (query string and `loa export --set`);
/// `recipient` (repeatable) replaces the recipient list.
pub const ISSUER_PARAMS: [&str; 8] = [
    "parent_agency",
    "agency",
    "place",
    "number",
    "symbol",
    "signer_authority",
    "signer_title",
    "signer_name",
];

/// A field value as accepted: at most [`MAX_FIELD_CHARS`], no control character.
fn check_value(name: &str, value: &str) -> Result<(), DocxError> {
    let bad = |why: String| DocxError::BadParam {
        name: name.to_string(),
        why,
    };
    if value.chars().count() > MAX_FIELD_CHARS {
        return Err(bad(format!("dài quá {MAX_FIELD_CHARS} ký tự")));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("có ký tự điều khiển (xuống dòng, tab…)".into()));
    }
    Ok(())
}

/// The `station=` of a month or year report's query (CSV, XLSX, JSON): `None` for the whole city.
/// Any other parameter, a repeated `station` or an unusable value is [`DocxError::BadParam`]
/// naming it (whether the station exists is the caller's to check against its registry).
pub fn station_param(params: &[(String, String)]) -> Result<Option<String>, DocxError> {
    let mut station = None;
    for (name, value) in params {
        check_value(name, value)?;
        if name != "station" {
            return Err(DocxError::BadParam {
                name: name.clone(),
                why: "không có tham số này; báo cáo tháng và năm chỉ nhận station".into(),
            });
        }
        if value.is_empty() {
            return Err(DocxError::BadParam {
                name: name.clone(),
                why: "để trống; ghi mã trạm, hoặc bỏ tham số để lấy cả thành phố".into(),
            });
        }
        if station.replace(value.clone()).is_some() {
            return Err(DocxError::BadParam {
                name: name.clone(),
                why: "chỉ chọn một trạm".into(),
            });
        }
    }
    Ok(station)
}

impl Issuer {
    /// The issuer of `office.toml` in `dir` (the registry's directory), or the default when there
    /// is no such file.
    pub fn load_beside(dir: Option<&Path>) -> Result<Self, DocxError> {
        let Some(dir) = dir else {
            return Ok(Self::default());
        };
        let path = dir.join(OFFICE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(DocxError::OfficeFile {
                    path: path.display().to_string(),
                    why: e.to_string(),
                });
            }
        };
        Self::from_toml(&text).map_err(|why| DocxError::OfficeFile {
            path: path.display().to_string(),
            why,
        })
    }

    /// Parse the TOML of an `office.toml` (missing fields keep their defaults).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let issuer: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        issuer.check().map_err(|e| e.to_string())?;
        Ok(issuer)
    }

    fn check(&self) -> Result<(), DocxError> {
        for (name, value) in ISSUER_PARAMS.iter().zip(self.fields()) {
            check_value(name, value)?;
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(DocxError::BadParam {
                name: "recipient".into(),
                why: format!("nhiều quá {MAX_RECIPIENTS} nơi nhận"),
            });
        }
        for r in &self.recipients {
            check_value("recipient", r)?;
        }
        Ok(())
    }

    fn fields(&self) -> [&String; 8] {
        [
            &self.parent_agency,
            &self.agency,
            &self.place,
            &self.number,
            &self.symbol,
            &self.signer_authority,
            &self.signer_title,
            &self.signer_name,
        ]
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut String> {
        Some(match name {
            "parent_agency" => &mut self.parent_agency,
            "agency" => &mut self.agency,
            "place" => &mut self.place,
            "number" => &mut self.number,
            "symbol" => &mut self.symbol,
            "signer_authority" => &mut self.signer_authority,
            "signer_title" => &mut self.signer_title,
            "signer_name" => &mut self.signer_name,
            _ => return None,
        })
    }
}

/// What to report: the year, the last month (January to it), which stations, who issues it.
#[derive(Debug, Clone, PartialEq)]
pub struct YtdRequest {
    pub year: i32,
    /// The last month reported, 1–12.
    pub through: u32,
    /// Only this station (`station=` parameter), or every registered one.
    pub station: Option<String>,
    pub issuer: Issuer,
}

impl YtdRequest {
    /// `label` is `YYYY` (January to the current month, or to December for a past year) or
    /// `YYYY-MM` (January to that month); `params` are the query's pairs in order: `station`,
    /// the [`ISSUER_PARAMS`] and `recipient` (repeatable); they override `issuer`.
    pub fn parse(
        label: &str,
        params: &[(String, String)],
        issuer: Issuer,
        today: NaiveDate,
    ) -> Result<Self, DocxError> {
        let bad = || DocxError::BadPeriod(label.to_string());
        let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
        let (year, month) = match label.split_once('-') {
            None if digits(label, 4) => (label, None),
            Some((y, m)) if digits(y, 4) && digits(m, 2) => (y, Some(m)),
            Some((y, m))
                if digits(y, 4) && !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) =>
            {
                return Err(DocxError::MonthOutOfRange(m.to_string()));
            }
            _ => return Err(bad()),
        };
        let year: i32 = year.parse().map_err(|_| bad())?;
        if year < 1 {
            return Err(bad());
        }
        let current = (today.year(), today.month());
        let through = match month {
            Some(m) => {
                let n: u32 = m.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&n) {
                    return Err(DocxError::MonthOutOfRange(m.to_string()));
                }
                n
            }
            None if year < current.0 => 12,
            None => current.1,
        };
        if (year, through) > current {
            return Err(DocxError::NotStarted {
                label: label.to_string(),
                today: today.format("%d/%m/%Y").to_string(),
            });
        }
        let mut issuer = issuer;
        let mut station = None;
        let mut recipients: Vec<String> = Vec::new();
        for (name, value) in params {
            check_value(name, value)?;
            match name.as_str() {
                "station" => {
                    if station.replace(value.clone()).is_some() {
                        return Err(DocxError::BadParam {
                            name: name.clone(),
                            why: "chỉ chọn một trạm".into(),
                        });
                    }
                }
                "recipient" => recipients.push(value.clone()),
                other => match issuer.field_mut(other) {
                    Some(f) => *f = value.clone(),
                    None => {
                        return Err(DocxError::BadParam {
                            name: name.clone(),
                            why: format!(
                                "không có tham số này; dùng station, recipient, {}",
                                ISSUER_PARAMS.join(", ")
                            ),
                        });
                    }
                },
            }
        }
        if !recipients.is_empty() {
            issuer.recipients = recipients;
        }
        issuer.check()?;
        Ok(Self {
            year,
            through,
            station,
            issuer,
        })
    }

    /// The month periods reported, January to [`YtdRequest::through`].
    pub fn months(&self, today: NaiveDate) -> Result<Vec<Period>, DocxError> {
        (1..=self.through)
            .map(|m| {
                Period::parse(&format!("{:04}-{m:02}", self.year), today).map_err(DocxError::from)
            })
            .collect()
    }

    /// The requested station's entry (`None`: every station of the directory).
    pub fn only<'a>(
        &self,
        stations: &'a dyn StationDirectory,
    ) -> Result<Option<&'a StationEntry>, DocxError> {
        match &self.station {
            None => Ok(None),
            Some(id) => stations
                .entry(id)
                .map(Some)
                .ok_or_else(|| DocxError::UnknownStation(id.clone())),
        }
    }
}

/// The month reports of `req`, January to its last month, in order: each built by
/// [`build_with`] (without the signed records) exactly as the month CSV/XLSX is. The only step
/// that reads (the database, and plans through `plans`).
pub fn month_reports(
    store: &dyn RecordSource,
    stations: &dyn StationDirectory,
    plans: &(dyn PlanSource + Sync),
    req: &YtdRequest,
    th: &Thresholds,
    now: DateTime<Utc>,
) -> Result<Vec<PeriodReport>, DocxError> {
    let today = now.with_timezone(&report_offset()).date_naive();
    let one = req.only(stations)?.map(OneStation);
    let stations: &dyn StationDirectory = match &one {
        Some(o) => o,
        None => stations,
    };
    req.months(today)?
        .iter()
        .map(|p| Ok(build_with(store, stations, plans, p, th, now, false)?))
        .collect()
}

/// One row of a table: a month (or the year) and its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// "Tháng 01" … or [`CITY_ROW`].
    pub label: String,
    pub totals: Totals,
}

impl Line {
    /// Planned occurrences that were not aired: missed, failed, or without any record.
    pub fn missed(&self) -> u64 {
        self.totals.missed + self.totals.failed + self.totals.no_record
    }

    /// The table cells: label, planned, aired, missed, compliance ("—" when nothing was due).
    pub fn cells(&self) -> [String; 5] {
        [
            self.label.clone(),
            int_vi(self.totals.planned),
            int_vi(self.totals.aired),
            int_vi(self.missed()),
            self.totals
                .compliance_pct()
                .map(pct_vi)
                .unwrap_or_else(|| "—".into()),
        ]
    }
}

/// One station's table.
#[derive(Debug, Clone, PartialEq)]
pub struct StationTable {
    pub id: String,
    pub name: String,
    pub area_code: String,
    /// One line per month, then the year's [`CITY_ROW`] line.
    pub lines: Vec<Line>,
    /// Months whose plan was unknown (records counted on the station's word).
    pub unknown_plan_months: Vec<u32>,
}

/// Everything the document says, built by [`content`].
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub issuer: Issuer,
    pub year: i32,
    pub through: u32,
    /// The date in the header (the report's `now` on the reporting offset).
    pub issued_on: NaiveDate,
    /// First and last day reported.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The city: one line per month, then the year.
    pub city: Vec<Line>,
    pub stations: Vec<StationTable>,
    /// Set when the last month is not over at `now` ("Tháng chưa kết thúc — số liệu tính đến …").
    pub open_note: Option<String>,
}

impl Content {
    /// The year's city line.
    pub fn city_total(&self) -> &Totals {
        // `content` always ends the city lines with the year's.
        &self.city[self.city.len() - 1].totals
    }

    /// Trích yếu: "Kết quả thực hiện lịch phát sóng … từ tháng 01 đến tháng 10 năm 2026".
    pub fn subject(&self) -> String {
        let span = if self.through == 1 {
            format!("tháng 01 năm {}", self.year)
        } else {
            format!(
                "từ tháng 01 đến tháng {:02} năm {}",
                self.through, self.year
            )
        };
        format!("Kết quả thực hiện lịch phát sóng trên hệ thống truyền thanh cơ sở {span}")
    }

    /// "Số: 12/BC-VHTT", or with the number left blank for the clerk: "Số:       /BC-VHTT".
    pub fn number_line(&self) -> String {
        let n = if self.issuer.number.is_empty() {
            "\u{a0}".repeat(7)
        } else {
            self.issuer.number.clone()
        };
        format!("Số: {n}/{}", self.issuer.symbol)
    }

    /// "TP. Quảng Ngãi, ngày 04 tháng 12 năm 2026" (a day below 10 and months 1 and 2 with a
    /// leading zero, as Nghị định 30/2020 writes dates).
    pub fn place_date(&self) -> String {
        format!("{}, {}", self.issuer.place, ngay_thang_nam(self.issued_on))
    }
}

/// "ngày 04 tháng 02 năm 2026", "ngày 15 tháng 11 năm 2026".
pub fn ngay_thang_nam(d: NaiveDate) -> String {
    let m = d.month();
    let month = if m < 3 {
        format!("0{m}")
    } else {
        m.to_string()
    };
    format!("ngày {:02} tháng {month} năm {}", d.day(), d.year())
}

/// A percentage the Vietnamese way, one decimal with a decimal comma: `97,5 %`.
pub fn pct_vi(pct: f64) -> String {
    let tenths = (pct.clamp(0.0, 100.0) * 10.0).round() as u64;
    format!("{},{} %", int_vi(tenths / 10), tenths % 10)
}

/// A count the Vietnamese way: `.` groups thousands (`12.345`).
pub fn int_vi(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

/// Build the document's content from the month reports (January first; pure). A year where no
/// station had a planned occurrence or an airing is [`DocxError::NoData`].
pub fn content(
    req: &YtdRequest,
    months: &[PeriodReport],
    now: DateTime<Utc>,
) -> Result<Content, DocxError> {
    let label = |i: usize| format!("Tháng {:02}", i + 1);
    let mut city = Vec::with_capacity(months.len() + 1);
    let mut year = Totals::default();
    for (i, m) in months.iter().enumerate() {
        city.push(Line {
            label: label(i),
            totals: m.city.totals.clone(),
        });
        year.merge(&m.city.totals);
    }
    if year.planned == 0 && year.unplanned == 0 {
        return Err(DocxError::NoData {
            year: req.year,
            through: req.through,
        });
    }
    city.push(Line {
        label: CITY_ROW.into(),
        totals: year,
    });
    // Every month report covers the same registry, in its (id) order; a station registered in
    // the course of the year has rows from its first month on.
    let mut stations: Vec<StationTable> = Vec::new();
    // Station id → its table (10,000 stations: no linear search per station and month).
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, m) in months.iter().enumerate() {
        for s in &m.stations {
            let table = match index.get(s.id.as_str()) {
                Some(&n) => &mut stations[n],
                None => {
                    index.insert(&s.id, stations.len());
                    stations.push(StationTable {
                        id: s.id.clone(),
                        name: s.name.clone(),
                        area_code: s.area_code.clone(),
                        lines: Vec::new(),
                        unknown_plan_months: Vec::new(),
                    });
                    let n = stations.len() - 1;
                    &mut stations[n]
                }
            };
            table.lines.push(Line {
                label: label(i),
                totals: s.reconciliation.breakdown.totals.clone(),
            });
            if s.plan_note.is_some() {
                table.unknown_plan_months.push(i as u32 + 1);
            }
        }
    }
    for t in &mut stations {
        let mut sum = Totals::default();
        for l in &t.lines {
            sum.merge(&l.totals);
        }
        t.lines.push(Line {
            label: CITY_ROW.into(),
            totals: sum,
        });
    }
    let (from, to) = match (months.first(), months.last()) {
        (Some(f), Some(l)) => (f.period.from, l.period.to),
        // `NoData` above: no month means nothing counted.
        _ => {
            return Err(DocxError::NoData {
                year: req.year,
                through: req.through,
            });
        }
    };
    let open_note = months.last().and_then(|m| {
        m.period.open_note(now).map(|note| {
            format!(
                "{note}; {} lần phát chưa đến giờ được tính trong kế hoạch, không tính là bỏ lỡ.",
                int_vi(m.city.totals.not_yet_due)
            )
        })
    });
    Ok(Content {
        issuer: req.issuer.clone(),
        year: req.year,
        through: req.through,
        issued_on: now.with_timezone(&report_offset()).date_naive(),
        from,
        to,
        city,
        stations,
        open_note,
    })
}

/// Page and type (Nghị định 30/2020, Phụ lục I): A4, margins top/bottom 20 mm, left 30 mm,
/// right 15 mm; Times New Roman; body 13 pt. Sizes are in half-points, lengths in twentieths of
/// a point (1 mm ≈ 56.7).
const A4_WIDTH: u32 = 11_906;
const A4_HEIGHT: u32 = 16_838;
const MARGIN_TOP: i32 = 1_134;
const MARGIN_BOTTOM: i32 = 1_134;
const MARGIN_LEFT: i32 = 1_701;
const MARGIN_RIGHT: i32 = 851;
/// The text width: A4 less the left and right margins.
const TEXT_WIDTH: usize = 11_906 - 1_701 - 851;
const FONT: &str = "Times New Roman";
const BODY_SIZE: usize = 26;
const SMALL_SIZE: usize = 24;
const RECIPIENT_SIZE: usize = 22;
/// Header: the issuer's column and the Quốc hiệu's column, wider together than the text (as in
/// the decree's samples) so "UBND THÀNH PHỐ …" and the Quốc hiệu each hold on one line; the
/// table starts [`HEAD_INDENT`] into the left margin.
const HEAD_LEFT: usize = 4_600;
const HEAD_RIGHT: usize = 5_400;
const HEAD_INDENT: i32 = -450;
/// First-line indent of body paragraphs (1,27 cm).
const FIRST_LINE: i32 = 720;
/// Table columns: month, then four figures.
const COLS: [usize; 5] = [2_354, 1_750, 1_750, 1_750, 1_750];

fn fonts() -> RunFonts {
    RunFonts::new()
        .ascii(FONT)
        .hi_ansi(FONT)
        .east_asia(FONT)
        .cs(FONT)
}

fn run(text: impl Into<String>, size: usize) -> Run {
    Run::new().add_text(text).size(size).fonts(fonts())
}

fn centered(r: Run) -> Paragraph {
    Paragraph::new().add_run(r).align(AlignmentType::Center)
}

/// A short centred rule under a heading: a bottom border on an empty paragraph indented from
/// both sides (`inset` twips each side).
fn rule(inset: i32) -> Paragraph {
    let mut p = Paragraph::new()
        .align(AlignmentType::Center)
        .indent(Some(inset), None, Some(inset), None)
        .line_spacing(
            LineSpacing::new()
                .before(0)
                .after(160)
                .line(60)
                .line_rule(LineSpacingType::Exact),
        )
        .size(4);
    p.property = p.property.set_borders(
        ParagraphBorders::with_empty().set(
            ParagraphBorder::new(ParagraphBorderPosition::Bottom)
                .val(BorderType::Single)
                .size(6),
        ),
    );
    p
}

fn body(text: impl Into<String>) -> Paragraph {
    Paragraph::new()
        .add_run(run(text, BODY_SIZE))
        .align(AlignmentType::Both)
        .indent(
            None,
            Some(SpecialIndentType::FirstLine(FIRST_LINE)),
            None,
            None,
        )
}

fn heading(text: impl Into<String>) -> Paragraph {
    Paragraph::new()
        .add_run(run(text, BODY_SIZE).bold())
        .indent(
            None,
            Some(SpecialIndentType::FirstLine(FIRST_LINE)),
            None,
            None,
        )
        .keep_next(true)
}

fn cell(p: Paragraph, width: usize) -> TableCell {
    TableCell::new()
        .add_paragraph(p)
        .width(width, WidthType::Dxa)
        .vertical_align(VAlignType::Center)
}

/// A figures table: the headers, then `lines` (the last, the total, in bold).
fn figures(lines: &[Line]) -> Table {
    let head = TableRow::new(
        TABLE_HEADERS
            .iter()
            .zip(COLS)
            .map(|(h, w)| cell(centered(run(*h, SMALL_SIZE).bold()), w))
            .collect(),
    )
    .cant_split();
    let mut rows = vec![head];
    for (i, l) in lines.iter().enumerate() {
        let total = i + 1 == lines.len();
        rows.push(
            TableRow::new(
                l.cells()
                    .into_iter()
                    .zip(COLS)
                    .enumerate()
                    .map(|(c, (text, w))| {
                        let r = run(text, SMALL_SIZE);
                        let r = if total { r.bold() } else { r };
                        let p = Paragraph::new().add_run(r).align(if c == 0 {
                            AlignmentType::Left
                        } else {
                            AlignmentType::Right
                        });
                        cell(p, w)
                    })
                    .collect(),
            )
            .cant_split(),
        );
    }
    Table::new(rows)
        .set_grid(COLS.to_vec())
        .width(TEXT_WIDTH, WidthType::Dxa)
        .align(TableAlignmentType::Center)
}

/// A borderless two-column table (the header and the signature blocks).
fn two_columns(left: Vec<Paragraph>, right: Vec<Paragraph>, widths: [usize; 2]) -> Table {
    let col = |ps: Vec<Paragraph>, w: usize| {
        ps.into_iter()
            .fold(TableCell::new(), TableCell::add_paragraph)
            .width(w, WidthType::Dxa)
    };
    Table::without_borders(vec![TableRow::new(vec![
        col(left, widths[0]),
        col(right, widths[1]),
    ])])
    .set_grid(widths.to_vec())
    .width(widths[0] + widths[1], WidthType::Dxa)
}

/// The sentence of the year's figures.
fn summary(c: &Content) -> String {
    let t = c.city_total();
    let line = &c.city[c.city.len() - 1];
    let pct = t
        .compliance_pct()
        .map(|p| format!("tỷ lệ thực hiện đạt {}", pct_vi(p)))
        .unwrap_or_else(|| "chưa có lần phát nào đến giờ".into());
    let mut s = format!(
        "Từ ngày {} đến ngày {}, {} trạm truyền thanh có {} lần phát theo kế hoạch; đã phát {} lần, bỏ lỡ {} lần; {pct}.",
        c.from.format("%d/%m/%Y"),
        c.to.format("%d/%m/%Y"),
        int_vi(c.stations.len() as u64),
        int_vi(t.planned),
        int_vi(t.aired),
        int_vi(line.missed()),
    );
    if t.unplanned > 0 {
        s.push_str(&format!(
            " Ngoài kế hoạch, các trạm đã phát thêm {} lần.",
            int_vi(t.unplanned)
        ));
    }
    if t.bulletins > 0 {
        s.push_str(&bulletin_sentence(t));
    }
    s
}

/// The year's bulletins (issue #15) in one sentence: the centre's, counted apart from the plan
/// and the ratio, as in the month CSV/XLSX (*Bản tin*).
fn bulletin_sentence(t: &Totals) -> String {
    let minutes = (t.bulletin_secs / 60.0).round().max(0.0) as u64;
    let mut s = format!(
        " Các trạm còn phát {} lần bản tin do trung tâm gửi ({} phút), không tính vào kế hoạch và tỷ lệ thực hiện",
        int_vi(t.bulletins_aired),
        int_vi(minutes),
    );
    let not_aired = t.bulletins.saturating_sub(t.bulletins_aired);
    if not_aired > 0 {
        s.push_str(&format!(
            "; {} lần bản tin không phát được",
            int_vi(not_aired)
        ));
    }
    s.push('.');
    s
}

/// The document's bytes (pure: the DOCX is assembled in memory).
pub fn to_docx(c: &Content) -> Result<Vec<u8>, DocxError> {
    let iss = &c.issuer;
    let header = two_columns(
        vec![
            centered(run(iss.parent_agency.to_uppercase(), SMALL_SIZE)),
            centered(run(iss.agency.to_uppercase(), SMALL_SIZE).bold()),
            rule(1_300),
            centered(run(c.number_line(), BODY_SIZE)),
        ],
        vec![
            centered(run(QUOC_HIEU, SMALL_SIZE).bold()),
            centered(run(TIEU_NGU, BODY_SIZE).bold().underline("single")),
            Paragraph::new().size(SMALL_SIZE),
            centered(run(c.place_date(), BODY_SIZE).italic()),
        ],
        [HEAD_LEFT, HEAD_RIGHT],
    )
    .indent(HEAD_INDENT);
    let mut doc = Docx::new()
        .page_size(A4_WIDTH, A4_HEIGHT)
        .page_margin(
            PageMargin::new()
                .top(MARGIN_TOP)
                .bottom(MARGIN_BOTTOM)
                .left(MARGIN_LEFT)
                .right(MARGIN_RIGHT),
        )
        .default_fonts(fonts())
        .default_size(BODY_SIZE)
        .created_at(&c.issued_on.format("%Y-%m-%dT00:00:00Z").to_string())
        .updated_at(&c.issued_on.format("%Y-%m-%dT00:00:00Z").to_string())
        .add_table(header)
        .add_paragraph(Paragraph::new())
        .add_paragraph(centered(run(TEN_LOAI, 28).bold()))
        .add_paragraph(centered(run(c.subject(), 28).bold()))
        .add_paragraph(rule(3_600))
        .add_paragraph(Paragraph::new())
        .add_paragraph(body(format!(
            "Thực hiện Kế hoạch tuyên truyền trên hệ thống truyền thanh cơ sở của UBND thành phố, {} báo cáo kết quả thực hiện lịch phát sóng của các trạm truyền thanh xã, phường {} như sau:",
            iss.agency,
            if c.through == 1 {
                format!("trong tháng 01 năm {}", c.year)
            } else {
                format!("từ tháng 01 đến tháng {:02} năm {}", c.through, c.year)
            }
        )))
        .add_paragraph(heading("I. KẾT QUẢ CHUNG TOÀN THÀNH PHỐ"))
        .add_paragraph(body(summary(c)));
    if let Some(note) = &c.open_note {
        doc = doc.add_paragraph(
            Paragraph::new()
                .add_run(run(note.clone(), BODY_SIZE).italic())
                .align(AlignmentType::Both)
                .indent(
                    None,
                    Some(SpecialIndentType::FirstLine(FIRST_LINE)),
                    None,
                    None,
                ),
        );
    }
    doc = doc
        .add_paragraph(body(
            "Bỏ lỡ gồm các lần phát theo kế hoạch không phát được, phát lỗi hoặc không có bản ghi; tỷ lệ thực hiện là số lần phát đúng giờ hoặc trễ đủ thời lượng trên số lần phát đã đến giờ.",
        ))
        .add_paragraph(centered(
            run("Bảng 1. Kết quả toàn thành phố theo tháng", BODY_SIZE).bold(),
        ))
        .add_table(figures(&c.city))
        .add_paragraph(Paragraph::new())
        .add_paragraph(heading("II. KẾT QUẢ TỪNG TRẠM"));
    for (i, s) in c.stations.iter().enumerate() {
        let mut title = format!("{}. {} (mã trạm {}", i + 1, s.name, s.id);
        if !s.area_code.is_empty() {
            title.push_str(&format!(", mã ĐVHC {}", s.area_code));
        }
        title.push(')');
        doc = doc.add_paragraph(heading(title));
        if !s.unknown_plan_months.is_empty() {
            let months: Vec<String> = s
                .unknown_plan_months
                .iter()
                .map(|m| format!("{m:02}"))
                .collect();
            doc = doc.add_paragraph(body(format!(
                "Chưa xác định được kế hoạch tháng {}: số liệu các tháng này theo bản ghi của trạm.",
                months.join(", ")
            )));
        }
        doc = doc
            .add_table(figures(&s.lines))
            .add_paragraph(Paragraph::new());
    }
    doc = doc
        .add_paragraph(heading("III. NHẬN XÉT, ĐỀ XUẤT"))
        .add_paragraph(
            Paragraph::new()
                .add_run(
                    run(
                        "(Đơn vị bổ sung nhận xét, đề xuất trước khi trình ký.)",
                        BODY_SIZE,
                    )
                    .italic(),
                )
                .indent(None, Some(SpecialIndentType::FirstLine(FIRST_LINE)), None, None),
        )
        .add_paragraph(body(format!(
            "Trên đây là báo cáo kết quả thực hiện lịch phát sóng trên hệ thống truyền thanh cơ sở năm {} của {}./.",
            c.year, iss.agency
        )))
        .add_paragraph(Paragraph::new());
    let mut left = vec![Paragraph::new().add_run(run("Nơi nhận:", SMALL_SIZE).bold().italic())];
    for r in &iss.recipients {
        left.push(Paragraph::new().add_run(run(format!("- {r}"), RECIPIENT_SIZE)));
    }
    let mut right = Vec::new();
    if !iss.signer_authority.is_empty() {
        right.push(centered(
            run(iss.signer_authority.to_uppercase(), BODY_SIZE).bold(),
        ));
    }
    right.push(centered(
        run(iss.signer_title.to_uppercase(), BODY_SIZE).bold(),
    ));
    for _ in 0..4 {
        right.push(Paragraph::new().size(BODY_SIZE));
    }
    right.push(centered(run(iss.signer_name.clone(), BODY_SIZE).bold()));
    doc = doc.add_table(two_columns(left, right, [4_300, TEXT_WIDTH - 4_300]));
    let mut out = std::io::Cursor::new(Vec::with_capacity(64 * 1024));
    doc.build()
        .pack(&mut out)
        .map_err(|e| DocxError::Write(e.to_string()))?;
    deflate(&out.into_inner())
}

/// The same package with every part deflated: docx-rs stores them uncompressed (~25 KB of XML
/// per station table, 25 MB for 1,000 stations), which Word opens but mail and uploads do not
/// like.
fn deflate(stored: &[u8]) -> Result<Vec<u8>, DocxError> {
    use zip::write::SimpleFileOptions;
    let err = |e: zip::result::ZipError| DocxError::Write(e.to_string());
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(stored)).map_err(err)?;
    let mut dst = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(stored.len() / 8)));
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for i in 0..src.len() {
        let mut part = src.by_index(i).map_err(err)?;
        let name = part.name().map_err(err)?.to_string();
        if part.is_dir() {
            dst.add_directory(name, SimpleFileOptions::default())
                .map_err(err)?;
        } else {
            dst.start_file(name, deflated).map_err(err)?;
            std::io::copy(&mut part, &mut dst).map_err(|e| DocxError::Write(e.to_string()))?;
        }
    }
    Ok(dst.finish().map_err(err)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_station_of_a_month_report_is_one_named_station_or_the_city() {
        let p = |pairs: &[(&str, &str)]| {
            let owned: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            station_param(&owned)
        };
        assert_eq!(p(&[]).unwrap(), None);
        assert_eq!(
            p(&[("station", "phuong-a")]).unwrap().as_deref(),
            Some("phuong-a")
        );
        for bad in [
            &[("station", "a"), ("station", "b")][..],
            &[("station", "")][..],
            &[("stations", "a")][..],
            &[("station", "a\nb")][..],
        ] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.code(), "report.bad_parameter", "{bad:?}");
            assert!(e.to_string().contains(&format!("`{}`", bad[0].0)), "{e}");
        }
    }

    fn parse(label: &str, params: &[(&str, &str)]) -> Result<YtdRequest, DocxError> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        YtdRequest::parse(label, &params, Issuer::default(), d(2026, 11, 14))
    }

    #[test]
    fn periods_parse_to_january_through_the_chosen_month() {
        let check = |label: &str, year: i32, through: u32| {
            let r = parse(label, &[]).unwrap();
            assert_eq!((r.year, r.through), (year, through), "{label}");
        };
        check("2026-10", 2026, 10);
        check("2026-01", 2026, 1);
        check("2026", 2026, 11);
        check("2025", 2025, 12);
        check("2026-11", 2026, 11);
    }

    #[test]
    fn bad_periods_are_refused_with_their_code() {
        let check = |label: &str, code: &str, status: u16| {
            let e = parse(label, &[]).unwrap_err();
            assert_eq!((e.code(), e.http_status()), (code, status), "{label}: {e}");
        };
        check("2026-13", "report.bad_month", 400);
        check("2026-00", "report.bad_month", 400);
        check("2026-1", "report.bad_month", 400);
        check("2026-12", "report.not_started", 400);
        check("2027", "report.not_started", 400);
        check("26-10", "report.bad_period", 400);
        check("2026-ab", "report.bad_period", 400);
        check("", "report.bad_period", 400);
        check("0000", "report.bad_period", 400);
    }

    #[test]
    fn parameters_set_the_issuer_and_unknown_ones_are_refused() {
        let r = parse(
            "2026-10",
            &[
                ("agency", "Phòng Văn hóa - Thể thao"),
                ("number", "125"),
                ("recipient", "UBND tỉnh;"),
                ("recipient", "Lưu: VT."),
                ("station", "phuong-a"),
            ],
        )
        .unwrap();
        assert_eq!(r.issuer.agency, "Phòng Văn hóa - Thể thao");
        assert_eq!(r.issuer.recipients, ["UBND tỉnh;", "Lưu: VT."]);
        assert_eq!(r.station.as_deref(), Some("phuong-a"));
        for bad in [
            ("signer", "x"),
            ("agency", "a\nb"),
            ("place", &"x".repeat(MAX_FIELD_CHARS + 1)),
        ] {
            let e = parse("2026-10", &[bad]).unwrap_err();
            assert_eq!(e.code(), "report.bad_parameter", "{bad:?}: {e}");
        }
        let e = parse("2026-10", &[("station", "a"), ("station", "b")]).unwrap_err();
        assert_eq!(e.code(), "report.bad_parameter");
    }

    #[test]
    fn office_file_fields_keep_their_defaults_and_typos_are_refused() {
        let i = Issuer::from_toml("agency = \"Phòng VH-TT\"\nrecipients = [\"A;\"]\n").unwrap();
        assert_eq!(i.agency, "Phòng VH-TT");
        assert_eq!(i.place, Issuer::default().place);
        assert_eq!(i.recipients, ["A;"]);
        let e = Issuer::from_toml("agncy = \"x\"\n").unwrap_err();
        assert!(e.contains("agncy"), "{e}");
    }

    #[test]
    fn vietnamese_formats() {
        assert_eq!(int_vi(0), "0");
        assert_eq!(int_vi(999), "999");
        assert_eq!(int_vi(1_000), "1.000");
        assert_eq!(int_vi(1_234_567), "1.234.567");
        assert_eq!(pct_vi(97.46), "97,5 %");
        assert_eq!(pct_vi(100.0), "100,0 %");
        assert_eq!(pct_vi(0.04), "0,0 %");
        assert_eq!(ngay_thang_nam(d(2026, 2, 4)), "ngày 04 tháng 02 năm 2026");
        assert_eq!(ngay_thang_nam(d(2026, 11, 15)), "ngày 15 tháng 11 năm 2026");
        assert_eq!(ngay_thang_nam(d(2026, 3, 9)), "ngày 09 tháng 3 năm 2026");
    }

    fn month(y: i32, m: u32, planned: u64, aired: u64, missed: u64) -> PeriodReport {
        let period = Period::parse(&format!("{y:04}-{m:02}"), d(2030, 1, 1)).unwrap();
        let mut t = Totals {
            planned,
            aired,
            on_time: aired,
            missed,
            ..Totals::default()
        };
        t.no_record = planned - aired - missed;
        let city = crate::reconcile::Breakdown {
            totals: t,
            ..Default::default()
        };
        PeriodReport {
            period,
            generated_at: DateTime::<Utc>::from_timestamp(1_900_000_000, 0).unwrap(),
            stations: Vec::new(),
            city,
            only_station: None,
            bulletins: Default::default(),
        }
    }

    #[test]
    fn content_sums_the_months_and_a_year_without_data_is_refused() {
        let req = parse("2026-02", &[]).unwrap();
        let now = DateTime::<Utc>::from_timestamp(1_900_000_000, 0).unwrap();
        let c = content(
            &req,
            &[month(2026, 1, 40, 39, 1), month(2026, 2, 40, 38, 0)],
            now,
        )
        .unwrap();
        let year = c.city.last().unwrap();
        assert_eq!(year.label, CITY_ROW);
        assert_eq!(
            year.cells(),
            ["Cộng", "80", "77", "3", "96,3 %"].map(String::from)
        );
        assert_eq!(c.from, d(2026, 1, 1));
        assert_eq!(c.to, d(2026, 2, 28));
        assert!(c.subject().ends_with("từ tháng 01 đến tháng 02 năm 2026"));
        assert_eq!(
            c.number_line(),
            "Số: \u{a0}\u{a0}\u{a0}\u{a0}\u{a0}\u{a0}\u{a0}/BC-VHTT"
        );
        let bytes = to_docx(&c).unwrap();
        assert!(bytes.starts_with(b"PK"), "a zip package");
        // Deflated: the XML (and so the Quốc hiệu) does not appear verbatim in the file.
        let plain = QUOC_HIEU.as_bytes();
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain),
            "parts stored uncompressed"
        );
        let e = content(
            &req,
            &[month(2026, 1, 0, 0, 0), month(2026, 2, 0, 0, 0)],
            now,
        )
        .unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("report.no_data", 404));
        assert!(e.to_string().contains("Năm 2026 không có số liệu"), "{e}");
    }

    #[test]
    fn the_summary_names_the_bulletins_apart_from_the_plan() {
        let req = parse("2026-02", &[]).unwrap();
        let now = DateTime::<Utc>::from_timestamp(1_900_000_000, 0).unwrap();
        let plain = content(&req, &[month(2026, 1, 40, 39, 1)], now).unwrap();
        assert!(!summary(&plain).contains("bản tin"), "{}", summary(&plain));
        let mut with = month(2026, 2, 40, 38, 0);
        with.city.totals.bulletins = 1_203;
        with.city.totals.bulletins_aired = 1_200;
        with.city.totals.bulletin_secs = 1_200.0 * 95.0;
        let c = content(&req, &[month(2026, 1, 40, 39, 1), with], now).unwrap();
        let s = summary(&c);
        assert!(
            s.ends_with(
                " Các trạm còn phát 1.200 lần bản tin do trung tâm gửi (1.900 phút), không tính vào kế hoạch và tỷ lệ thực hiện; 3 lần bản tin không phát được."
            ),
            "{s}"
        );
        // The ratio is the plan's alone.
        assert!(s.contains("tỷ lệ thực hiện đạt 96,3 %"), "{s}");
    }
}
