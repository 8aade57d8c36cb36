//! `loa export` — Export a month's airing log from the collector database.

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::collector::registry::Registry;
use crate::collector::status::report_offset;
use crate::collector::store::Store;
use crate::layout::Layout;
use crate::reconcile::Thresholds;
use crate::report::{Format, Period, SchedulePlans, build_with, render};

/// Arguments of `loa export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Month to export, `YYYY-MM`.
    #[arg(long, conflicts_with = "year", required_unless_present = "year")]
    pub month: Option<String>,
    /// Year to date, `YYYY` (up to today when it is the current year).
    #[arg(long)]
    pub year: Option<String>,
    /// `csv`, `xlsx`, `json` or `docx` (the year-to-date report the office signs: January to
    /// `--month`, or to the current month with `--year`).
    #[arg(long)]
    pub format: String,
    /// DOCX only: report this station alone.
    #[arg(long)]
    pub station: Option<String>,
    /// DOCX only: an issuer field, `KEY=VALUE` (agency, parent_agency, place, number, symbol,
    /// signer_authority, signer_title, signer_name; `recipient` repeated replaces the list);
    /// defaults from `office.toml` beside the registry.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// Collector database (default: `<state>/collector.db`, the one `loa up` and the packaged
    /// collector use; see docs/operations.md, "The state layout").
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Station registry (default: `<state>/collector.toml`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Run `loa export`.
pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    if args.format.eq_ignore_ascii_case("docx") {
        return run_docx(args);
    }
    let Some(format) = Format::parse(&args.format) else {
        eprintln!(
            "loa export: --format must be csv, xlsx, json or docx (got `{}`)",
            args.format
        );
        return Ok(ExitCode::from(2));
    };
    let now = chrono::Utc::now();
    let today = now.with_timezone(&report_offset()).date_naive();
    let (field, kind) = if args.month.is_some() {
        ("--month", crate::report::PeriodKind::Month)
    } else {
        ("--year", crate::report::PeriodKind::MonthOrYear)
    };
    let label = args.month.or(args.year).unwrap_or_default();
    let period = match Period::parse(&label, today) {
        Ok(p) => p,
        Err(_) => {
            eprintln!(
                "loa export: {}",
                crate::report::period_problem_vi(field, &label, kind)
            );
            return Ok(ExitCode::from(2));
        }
    };
    let layout = Layout::detect();
    // Where a default came from, said beside any error about it.
    let whence = |given: bool| {
        if given {
            String::new()
        } else {
            format!(" [{}]", layout.describe())
        }
    };
    let config = args.config.clone().unwrap_or_else(|| layout.registry());
    let db = args.db.clone().unwrap_or_else(|| layout.database());
    let registry = match Registry::load(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loa export: {e}{}", whence(args.config.is_some()));
            return Ok(ExitCode::from(2));
        }
    };
    // A SQLite file must exist (opening would create an empty one); a PostgreSQL URL is
    // checked by opening it.
    let location = crate::collector::db::Location::of_path(&db);
    if location.sqlite_path().is_some_and(|p| !p.exists()) {
        eprintln!(
            "loa export: database {} does not exist{}",
            db.display(),
            whence(args.db.is_some())
        );
        return Ok(ExitCode::from(2));
    }
    let store = Store::open(&db).with_context(|| format!("opening {}", location.display()))?;
    // Only the JSON export carries the signed records; CSV and XLSX read the airing columns.
    let report = build_with(
        &store,
        &registry,
        &SchedulePlans,
        &period,
        &Thresholds::default(),
        now,
        format == Format::Json,
    )?;
    let bytes = render(&report, format)?;
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    let t = &report.city.totals;
    eprintln!(
        "loa export: {} ({} to {}): {} stations, {} planned, {} aired, {} unplanned -> {} ({} bytes)",
        period.label,
        period.from,
        period.to,
        report.stations.len(),
        t.planned,
        t.aired,
        t.unplanned,
        args.out.display(),
        bytes.len()
    );
    if t.bulletins > 0 {
        eprintln!(
            "loa export: {} bulletin airings ({} aired), listed apart (not planned, not unplanned)",
            t.bulletins, t.bulletins_aired
        );
    }
    if let Some(note) = period.open_note(report.generated_at) {
        eprintln!(
            "loa export: {note} ({} occurrences not yet due are not counted as missed)",
            t.not_yet_due
        );
    }
    for s in &report.stations {
        if let Some(n) = &s.plan_note {
            eprintln!(
                "loa export: warning: {}: plan unknown ({n}); records counted on the station's word",
                s.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `loa export --format docx`: the year-to-date report (`report::docx`).
fn run_docx(args: ExportArgs) -> anyhow::Result<ExitCode> {
    use crate::report::docx;
    let now = chrono::Utc::now();
    let today = now.with_timezone(&report_offset()).date_naive();
    let label = args.month.clone().or(args.year.clone()).unwrap_or_default();
    let mut params = Vec::new();
    for kv in &args.set {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!(
                "loa export: --set `{kv}`: cần dạng KEY=VALUE, ví dụ --set signer_name=\"Nguyễn Văn A\""
            );
            return Ok(ExitCode::from(2));
        };
        params.push((k.to_string(), v.to_string()));
    }
    if let Some(s) = &args.station {
        params.push(("station".to_string(), s.clone()));
    }
    let layout = Layout::detect();
    let config = args.config.clone().unwrap_or_else(|| layout.registry());
    let db = args.db.clone().unwrap_or_else(|| layout.database());
    let registry = match Registry::load(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loa export: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // A SQLite file must exist (opening would create an empty one); a PostgreSQL URL is
    // checked by opening it.
    let location = crate::collector::db::Location::of_path(&db);
    if location.sqlite_path().is_some_and(|p| !p.exists()) {
        eprintln!("loa export: database {} does not exist", db.display());
        return Ok(ExitCode::from(2));
    }
    let store = Store::open(&db).with_context(|| format!("opening {}", location.display()))?;
    let made = (|| {
        let issuer = docx::Issuer::load_beside(config.parent())?;
        let req = docx::YtdRequest::parse(&label, &params, issuer, today)?;
        let months = docx::month_reports(
            &store,
            &registry,
            &SchedulePlans,
            &req,
            &Thresholds::default(),
            now,
        )?;
        let content = docx::content(&req, &months, now)?;
        Ok::<_, docx::DocxError>((docx::to_docx(&content)?, content))
    })();
    let (bytes, content) = match made {
        Ok(x) => x,
        Err(e) => {
            eprintln!("loa export: {e}");
            return Ok(ExitCode::from(if e.is_internal() { 1 } else { 2 }));
        }
    };
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    let t = content.city_total();
    eprintln!(
        "loa export: báo cáo {} (từ {} đến {}): {} trạm, {} lần phát theo kế hoạch, {} đã phát -> {} ({} byte)",
        label,
        content.from.format("%d/%m/%Y"),
        content.to.format("%d/%m/%Y"),
        content.stations.len(),
        crate::report::docx::int_vi(t.planned),
        crate::report::docx::int_vi(t.aired),
        args.out.display(),
        bytes.len()
    );
    Ok(ExitCode::SUCCESS)
}
