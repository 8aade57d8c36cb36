//! `loa plan` — List the planned airings of a station, in station time, as a table or JSON lines.
//! The list comes from `schedule::expand`, the same function the daemon and the collector use.

use super::check::{DEFAULT_AUDIO_DIR, DEFAULT_SCHEDULES_DIR, today_default};
use crate::clock::SystemClock;
use crate::schedule::{self, Priority, expand};
use chrono::NaiveDate;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `loa plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Station id (the schedule file is `<schedules>/<id>.toml`).
    #[arg(long)]
    pub station: String,
    /// First local date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub from: NaiveDate,
    /// Last local date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub to: NaiveDate,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Directory of schedule files.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SCHEDULES_DIR)]
    pub schedules: PathBuf,
    /// Audio root: audio paths in schedules are relative to it.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_AUDIO_DIR)]
    pub audio: PathBuf,
    /// Take this date as today for validation (see `loa check --today`).
    #[arg(long, value_name = "DATE")]
    pub today: Option<NaiveDate>,
}

fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Normal => "normal",
        Priority::Priority => "priority",
        Priority::Emergency => "emergency",
    }
}

/// Run `loa plan`.
pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    if args.to < args.from {
        eprintln!("loa plan: --to {} is before --from {}", args.to, args.from);
        return Ok(ExitCode::from(2));
    }
    let today = args.today.unwrap_or_else(|| today_default(&SystemClock));
    let path = args.schedules.join(format!("{}.toml", args.station));
    if !path.is_file() {
        eprintln!(
            "loa plan: no schedule for station `{}`: {} does not exist (see `loa check {}`)",
            args.station,
            path.display(),
            args.schedules.display()
        );
        return Ok(ExitCode::from(2));
    }
    let (station, catalog) = match schedule::load(&path, &args.audio, today) {
        Ok(x) => x,
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!(
                "loa plan: {} error(s); fix the schedule first",
                errs.0.len()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let airings = expand(&station, &catalog, args.from, args.to);
    let written = (|| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        use std::io::Write;
        if args.json {
            for a in &airings {
                let v = serde_json::json!({
                    "station": &*a.station,
                    "slot": &*a.slot,
                    "program": a.program.as_deref(),
                    "category": &*a.category,
                    "at": a.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                    "items": a.items.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
                    "planned_secs": (a.planned_secs * 1000.0).round() / 1000.0,
                    "priority": priority_name(a.priority),
                    "source": a.source(),
                    "key": a.key(),
                });
                writeln!(out, "{v}")?;
            }
        } else {
            writeln!(
                out,
                "{} — {} ({}), {} .. {}: {} airing(s)",
                station.id,
                station.name,
                station.timezone.name(),
                args.from,
                args.to,
                airings.len()
            )?;
            writeln!(
                out,
                "{:<27} {:<18} {:<9} {:>7}  {:<6} {:<8} ITEMS",
                "WHEN (LOCAL)", "SLOT", "PRIORITY", "LENGTH", "SOURCE", "CATEGORY"
            )?;
            for a in &airings {
                let items = a
                    .items
                    .iter()
                    .map(|p| p.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(", ");
                let items = match &a.relay {
                    Some(r) => format!("relay {} (fallback: {items})", r.url),
                    None => items,
                };
                writeln!(
                    out,
                    "{:<27} {:<18} {:<9} {:>6.0}s  {:<6} {:<8} {}",
                    a.at.format("%Y-%m-%d %a %H:%M %:z"),
                    a.slot,
                    priority_name(a.priority),
                    a.planned_secs,
                    a.source(),
                    a.category,
                    items
                )?;
            }
        }
        out.flush()
    })();
    match written {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The reader went away (`loa plan … | head`): what it wanted was written; stop quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write the plan to stdout")),
    }
}
