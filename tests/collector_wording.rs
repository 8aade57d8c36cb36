//! Vietnamese throughout: a realistic month (a real schedule with a relay slot, airings on time,
//! late, short, missed, failed, unplanned; a station without a schedule) served by a real
//! collector over a real SQLite file, and every export (CSV; XLSX read by Debian's
//! python3-openpyxl and DOCX by python3-docx, by full path as in `collector_xlsx.rs`) and office
//! page of it swept for English words that have leaked before (and for *tiếp âm*: relaying is
//! *tiếp sóng*). Also: the *Chương trình* column
//! shows titles (the id is the last column), relaying is one word, and a bad period or format is
//! refused with a stable code, the field and a Vietnamese message.

mod collector_common;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use collector_common::*;
use loa::collector::http::HttpConfig;
use loa::collector::registry::RawRegistry;
use loa::report::SchedulePlans;
use loa::wire::{Outcome, Source};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// Debian's Python (its `python3-openpyxl` and `python3-docx`), by full path.
const PYTHON: &str = "/usr/bin/python3";

/// Every sheet as rows of cell texts (`""` for an empty cell).
const READ_XLSX: &str = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
out = {}
for name in wb.sheetnames:
    out[name] = [["" if v is None else str(v) for v in row] for row in wb[name].iter_rows(values_only=True)]
print(json.dumps(out))
"#;

/// Every paragraph of the body and of every table cell.
const READ_DOCX: &str = r#"
import json, sys, docx
d = docx.Document(sys.argv[1])
paras = [p.text for p in d.paragraphs]
for t in d.tables:
    for r in t.rows:
        for c in r.cells:
            paras.extend(p.text for p in c.paragraphs)
for s in d.sections:
    for part in (s.header, s.footer):
        paras.extend(p.text for p in part.paragraphs)
print(json.dumps(paras))
"#;

/// English words that have reached a page, an export or a reason column before (compared in
/// lower case, as whole words).
const DENY: &[&str] = &[
    "relay",
    "other",
    "notice",
    "news",
    "ident",
    "missed",
    "aired",
    "late",
    "short",
    "none",
    "null",
    "error",
    "failed",
    "partial",
    "preempted",
    "skipped",
    "unplanned",
    "schedule",
    "station",
    "plan",
    "unknown",
    "record",
    "period",
    "month",
    "year",
    "not",
    "the",
    "is",
];

/// The denied words in `text` (`where` says where, for the failure message).
fn english(where_: &str, text: &str) -> Vec<String> {
    let shown = || text.chars().take(200).collect::<String>();
    let mut found: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| DENY.contains(&w.to_lowercase().as_str()))
        .map(|w| format!("{where_}: «{w}» in «{}»", shown()))
        .collect();
    // Relaying is *tiếp sóng* everywhere (`report::relay_vi`), never the other spelling.
    if text.to_lowercase().contains("tiếp âm") {
        found.push(format!(
            "{where_}: «tiếp âm» (say tiếp sóng) in «{}»",
            shown()
        ));
    }
    found
}

/// A column that holds codes (ids, keys) rather than words: the exports' `Mã …` columns and the
/// slot id (`Khung giờ`).
fn is_code_column(header: &str) -> bool {
    header.starts_with("Mã ") || header == "Khung giờ"
}

/// The text a person sees on an HTML page: no scripts or styles, tags dropped, the attributes
/// people read (`title`, `aria-label`, `alt`, `placeholder`) kept, a few entities decoded.
fn page_text(html: &str) -> String {
    let mut s = html.to_string();
    for tag in ["script", "style"] {
        while let Some(a) = s.find(&format!("<{tag}")) {
            let end = format!("</{tag}>");
            let b = s[a..]
                .find(&end)
                .map(|b| a + b + end.len())
                .unwrap_or(s.len());
            s.replace_range(a..b, " ");
        }
    }
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(a) = rest.find('<') {
        out.push_str(&rest[..a]);
        out.push(' ');
        let b = rest[a..].find('>').map(|b| a + b + 1).unwrap_or(rest.len());
        let tag = &rest[a..b];
        for attr in ["title=\"", "aria-label=\"", "alt=\"", "placeholder=\""] {
            let mut t = tag;
            while let Some(i) = t.find(attr) {
                let v = &t[i + attr.len()..];
                let j = v.find('"').unwrap_or(v.len());
                out.push_str(&v[..j]);
                out.push(' ');
                t = &v[j..];
            }
        }
        rest = &rest[b..];
    }
    out.push_str(rest);
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
}

/// `text` without the code examples a form gives in parentheses, `(mã: cchc, news, notice…)`:
/// codes to type, like the exports' code columns.
fn without_code_examples(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(a) = rest.find("(mã:") {
        out.push_str(&rest[..a]);
        rest = rest[a..].find(')').map_or("", |b| &rest[a + b + 1..]);
    }
    out.push_str(rest);
    out
}

/// A CSV line split into fields (quotes as the export writes them).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn local(d: u32, h: u32, m: u32) -> DateTime<FixedOffset> {
    tz().with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
}

/// The collector of the month: `phuong-le-hong-phong` on its real schedule (sessions and a relay
/// slot), with a run of every outcome up to `now` (20/11/2026 12:00) and one unplanned airing;
/// `xa-khong-lich` without a schedule, one airing on its word. Returns the server and the plan.
async fn month_site(dir: &Path) -> (Running, Vec<loa::schedule::PlannedAiring>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut st = TestStation::new("phuong-le-hong-phong", 8);
    let mut bare = TestStation::new("xa-khong-lich", 9);
    let mut raw = st.raw();
    raw.schedule = Some(root.join("schedules/phuong-le-hong-phong.toml"));
    raw.audio_root = Some(root.join("audio"));
    let reg_path = dir.join("collector.toml");
    std::fs::write(
        &reg_path,
        toml::to_string(&RawRegistry {
            station: vec![raw, bare.raw()],
        })
        .unwrap(),
    )
    .unwrap();
    let (station, catalog) = loa::schedule::load(
        &root.join("schedules/phuong-le-hong-phong.toml"),
        &root.join("audio"),
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
    )
    .unwrap();
    let plan = loa::schedule::expand(
        &station,
        &catalog,
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    );
    assert!(plan.iter().any(|p| p.relay.is_some()), "a relay slot");
    let now = local(20, 12, 0).with_timezone(&Utc);
    let clock = Arc::new(loa::clock::ManualClock::new(now));
    let srv = start_with(
        &reg_path,
        &loa::collector::db::testing::test_db(dir, "collector.db"),
        Arc::new(SchedulePlans),
        HttpConfig::default(),
        clock,
    )
    .await;
    let mut records = Vec::new();
    let unplanned_at = local(8, 9, 0);
    let mut unplanned_done = false;
    for (i, p) in plan
        .iter()
        .filter(|p| p.at.with_timezone(&Utc) + chrono::Duration::hours(1) < now)
        .enumerate()
    {
        if !unplanned_done && p.at > unplanned_at {
            let mut rec = st.unsigned(None, unplanned_at, Outcome::Aired, 120.0, 0);
            rec.category = "other".into();
            rec.program = None;
            records.push(st.sign_next(&rec));
            unplanned_done = true;
        }
        let (outcome, aired, offset_ms) = match i % 6 {
            0 => (Outcome::Aired, p.planned_secs, 0),
            1 => (Outcome::Aired, p.planned_secs, 200_000),
            2 => (Outcome::Partial, p.planned_secs / 2.0, 0),
            3 => (Outcome::Missed, 0.0, 0),
            4 => (Outcome::Failed, 0.0, 0),
            _ => continue,
        };
        let mut rec = st.unsigned(Some(p), p.at, outcome, aired, offset_ms);
        rec.planned_secs = p.planned_secs;
        rec.category = p.category.to_string();
        if p.relay.is_some() {
            rec.source = Source::Relay;
        }
        records.push(st.sign_next(&rec));
    }
    let c = client();
    for (id, recs) in [
        ("phuong-le-hong-phong", records),
        (
            "xa-khong-lich",
            vec![bare.record(None, local(3, 7, 0), Outcome::Aired, 300.0, 0)],
        ),
    ] {
        let (code, v) = post(
            &c,
            &format!("{}/api/v1/stations/{id}/records", srv.base),
            serde_json::to_vec(&batch(&recs)).unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{v}");
    }
    (srv, plan)
}

async fn get_bytes(c: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

fn python(script: &str, file: &Path) -> serde_json::Value {
    let out = Command::new(PYTHON)
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_english_word_reaches_the_exports_or_the_pages_of_a_month() {
    tools::require_python_module(PYTHON, "openpyxl", "python3-openpyxl");
    tools::require_python_module(PYTHON, "docx", "python3-docx");
    let dir = tempfile::tempdir().unwrap();
    let (srv, _) = month_site(dir.path()).await;
    let c = client();
    let base = &srv.base;
    let mut found = Vec::new();

    // CSV: every cell but the code columns.
    let csv = String::from_utf8(get_bytes(&c, &format!("{base}/api/v1/reports/2026-11.csv")).await)
        .unwrap();
    let mut lines = csv.lines();
    let first = lines.next().unwrap().trim_start_matches('\u{feff}');
    let header = if first.starts_with("Mã trạm,") {
        first.to_string()
    } else {
        found.extend(english("CSV note", first));
        lines.next().unwrap().to_string()
    };
    let header = csv_fields(&header);
    let mut rows = 0;
    for line in lines {
        rows += 1;
        for (h, v) in header.iter().zip(csv_fields(line)) {
            if !is_code_column(h) {
                found.extend(english(&format!("CSV {h}"), &v));
            }
        }
    }
    assert!(rows > 20, "{csv}");
    for h in &header {
        found.extend(english("CSV header", h));
    }
    // Every outcome and both sources are there, so the sweep saw them (checked last).
    let mut missing = Vec::new();
    for w in [
        "Phát đúng giờ",
        "Phát trễ",
        "Phát thiếu thời lượng",
        "Bỏ lỡ",
        "Lỗi, không phát được",
        "Phát ngoài kế hoạch",
        "Chưa đến giờ",
        "tiếp sóng",
        "Tiếp sóng",
        "khác",
    ] {
        if !csv.contains(w) {
            missing.push(w);
        }
    }

    // XLSX: every sheet; on the airing sheets, every column but the code columns.
    let file = dir.path().join("2026-11.xlsx");
    std::fs::write(
        &file,
        get_bytes(&c, &format!("{base}/api/v1/reports/2026-11.xlsx")).await,
    )
    .unwrap();
    let sheets = python(READ_XLSX, &file);
    let sheets = sheets.as_object().unwrap();
    assert!(sheets.len() >= 3, "{sheets:?}");
    let mut xlsx_cells = 0;
    for (name, rows) in sheets {
        found.extend(english("XLSX sheet name", name));
        let rows: Vec<Vec<String>> = serde_json::from_value(rows.clone()).unwrap();
        let header = rows
            .first()
            .filter(|r| r.first().is_some_and(|c| c == "Mã trạm") && r.len() > 10)
            .cloned();
        for row in &rows {
            for (i, v) in row.iter().enumerate() {
                let h = header.as_ref().and_then(|h| h.get(i));
                if h.is_some_and(|h| is_code_column(h)) && Some(row) != header.as_ref() {
                    continue;
                }
                xlsx_cells += 1;
                found.extend(english(&format!("XLSX {name}"), v));
            }
        }
    }
    assert!(xlsx_cells > 100, "{xlsx_cells}");

    // DOCX: the year-to-date report of the month.
    let file = dir.path().join("2026-11.docx");
    std::fs::write(
        &file,
        get_bytes(&c, &format!("{base}/api/v1/reports/2026-11.docx")).await,
    )
    .unwrap();
    let paras: Vec<String> = serde_json::from_value(python(READ_DOCX, &file)).unwrap();
    assert!(paras.len() > 20, "{paras:?}");
    for p in &paras {
        found.extend(english("DOCX", p));
    }

    // The office pages of the month.
    for path in [
        "/",
        "/stations/phuong-le-hong-phong?month=2026-11",
        "/stations/xa-khong-lich?month=2026-11",
        "/reports",
        "/reports?station=phuong-le-hong-phong",
        "/stations/phuong-le-hong-phong/schedule",
        "/programs",
        "/library",
        "/admin/stations",
        "/users",
        "/audit",
        "/account",
    ] {
        let html = String::from_utf8(get_bytes(&c, &format!("{base}{path}")).await).unwrap();
        found.extend(english(path, &without_code_examples(&page_text(&html))));
    }
    srv.stop().await;
    assert!(found.is_empty(), "English words:\n{}", found.join("\n"));
    assert!(missing.is_empty(), "missing from the CSV: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_column_shows_titles_and_the_id_comes_last() {
    tools::require_python_module(PYTHON, "openpyxl", "python3-openpyxl");
    let dir = tempfile::tempdir().unwrap();
    let (srv, _) = month_site(dir.path()).await;
    let c = client();
    let base = &srv.base;
    let title = "Chuyên mục Cải cách hành chính (Đài thành phố)";
    let csv = String::from_utf8(get_bytes(&c, &format!("{base}/api/v1/reports/2026-11.csv")).await)
        .unwrap();
    let lines: Vec<Vec<String>> = csv
        .lines()
        .map(|l| csv_fields(l.trim_start_matches('\u{feff}')))
        .skip_while(|f| f[0] != "Mã trạm")
        .collect();
    let header = &lines[0];
    // The old columns stay where tools read them; the id is appended.
    assert_eq!(&header[..18], &loa::report::CSV_HEADERS[..18]);
    assert_eq!(header[7], "Chương trình");
    let id_col = header.iter().position(|h| h == "Mã chương trình").unwrap();
    assert!(id_col >= 18, "{header:?}");
    let cchc: Vec<&Vec<String>> = lines[1..].iter().filter(|r| r[id_col] == "cchc").collect();
    assert!(cchc.len() > 10, "{csv}");
    for r in &cchc {
        assert_eq!(r[7], title, "{r:?}");
    }
    // The relay slot names no program: both cells empty, the category in Vietnamese.
    let relay: Vec<&Vec<String>> = lines[1..]
        .iter()
        .filter(|r| r[6] == "tiep-am-thanh-pho")
        .collect();
    assert!(!relay.is_empty());
    for r in &relay {
        assert_eq!(
            (r[7].as_str(), r[8].as_str(), r[id_col].as_str()),
            ("", "tiếp sóng", "")
        );
    }

    // XLSX: the same cells on the airing sheet.
    let file = dir.path().join("2026-11.xlsx");
    std::fs::write(
        &file,
        get_bytes(&c, &format!("{base}/api/v1/reports/2026-11.xlsx")).await,
    )
    .unwrap();
    let sheets = python(READ_XLSX, &file);
    let rows: Vec<Vec<String>> =
        serde_json::from_value(sheets[loa::report::SHEET_AIRINGS].clone()).unwrap();
    assert_eq!(&rows[0], header);
    let xlsx_cchc: Vec<&Vec<String>> = rows[1..].iter().filter(|r| r[id_col] == "cchc").collect();
    assert_eq!(xlsx_cchc.len(), cchc.len());
    for r in xlsx_cchc {
        assert_eq!(r[7], title, "{r:?}");
    }

    // JSON keeps the ids and adds the titles.
    let (code, v) = get_json(&c, &format!("{base}/api/v1/reports/2026-11.json")).await;
    assert_eq!(code, 200);
    let s = v["stations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "phuong-le-hong-phong")
        .unwrap();
    assert_eq!(s["program_titles"]["cchc"], title);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_period_or_format_is_refused_with_a_code_its_field_and_vietnamese() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _) = month_site(dir.path()).await;
    let c = client();
    let base = &srv.base;
    let month_msg = "Tham số month «2026-13» không hợp lệ: không có tháng 13 (tháng phải từ 01 \
                     đến 12). Tham số month phải có dạng YYYY-MM, ví dụ 2026-11.";
    for (path, status, code, field, says) in [
        (
            "/api/v1/reports/2026-13.csv",
            404,
            "report.bad_period",
            "period",
            "Kỳ báo cáo «2026-13» không hợp lệ: không có tháng 13",
        ),
        (
            "/api/v1/reports/abc.xlsx",
            404,
            "report.bad_period",
            "period",
            "phải có dạng YYYY-MM (một tháng, ví dụ 2026-11) hoặc YYYY (từ đầu năm, ví dụ 2026)",
        ),
        (
            "/api/v1/reports/2026-11.pdf",
            404,
            "report.bad_format",
            "format",
            "Định dạng «pdf» không có: báo cáo tải về được dưới dạng csv, xlsx, json hoặc docx",
        ),
        (
            "/api/v1/reports/2026-11",
            404,
            "report.bad_format",
            "format",
            "thiếu định dạng",
        ),
        (
            "/api/v1/reports/2026-13.docx",
            400,
            "report.bad_month",
            "period",
            "Tháng `13` không hợp lệ",
        ),
        (
            "/api/v1/stations/phuong-le-hong-phong/airings?month=2026-13",
            404,
            "report.bad_period",
            "month",
            month_msg,
        ),
    ] {
        let (st, v) = get_json(&c, &format!("{base}{path}")).await;
        assert_eq!(st, status, "{path}: {v}");
        assert_eq!(v["code"], code, "{path}: {v}");
        let message = v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {v}"));
        assert!(message.contains(says), "{path}: {message}");
        assert_eq!(v["error"], message, "{path}");
        // The parameter's own name is a code (`Tham số month`); nothing else in English.
        let words = message.replace(&format!("Tham số {field}"), "");
        assert!(english(path, &words).is_empty(), "{path}: {message}");
        assert_eq!(v["field"], field, "{path}: {v}");
    }
    // The station month page says the same as the API.
    let r = c
        .get(format!(
            "{base}/stations/phuong-le-hong-phong?month=2026-13"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let page = page_text(&r.text().await.unwrap());
    assert!(page.contains(month_msg), "{page}");
    srv.stop().await;
}
