//! `loa check` — Validate schedule files like `nginx -t`: exit 0 and one summary line per station,
//! or exit 2 and every error (file:line:column, field, what, how to fix) on stderr.

use crate::clock::{Clock, SystemClock};
use crate::schedule::{self, DEFAULT_TIMEZONE, StationKind, expand};
use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Default place of the schedule files.
pub const DEFAULT_SCHEDULES_DIR: &str = "schedules";
/// Default audio root: audio paths in schedules are relative to it.
pub const DEFAULT_AUDIO_DIR: &str = "audio";
/// How far ahead `loa check` looks for a station's next airing, in days.
const NEXT_AIRING_LOOKAHEAD_DAYS: i64 = 400;

/// Arguments of `loa check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Schedule files or directories of `*.toml` files [default: schedules/]
    pub paths: Vec<PathBuf>,
    /// Audio root: audio paths in schedules are relative to it.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_AUDIO_DIR)]
    pub audio: PathBuf,
    /// Take this date as today (YYYY-MM-DD); it bounds the checks of open-ended slot windows
    /// [default: today in Asia/Ho_Chi_Minh].
    #[arg(long, value_name = "DATE")]
    pub today: Option<NaiveDate>,
}

/// Today's date in the default station zone.
pub(crate) fn today_default(clock: &dyn Clock) -> NaiveDate {
    let tz: Tz = DEFAULT_TIMEZONE
        .parse()
        .unwrap_or(chrono_tz::Asia::Ho_Chi_Minh);
    clock.now().with_timezone(&tz).date_naive()
}

/// Run `loa check`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let clock = SystemClock;
    let today = args.today.unwrap_or_else(|| today_default(&clock));
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(DEFAULT_SCHEDULES_DIR)]
    } else {
        args.paths
    };
    let mut results = Vec::new();
    for p in &paths {
        if p.is_dir() {
            let found = schedule::load_dir(p, &args.audio, today);
            if found.is_empty() {
                eprintln!("{}: không có tệp lịch phát *.toml nào ở đây", p.display());
                return Ok(ExitCode::from(2));
            }
            results.extend(found);
        } else {
            results.push((p.clone(), schedule::load(p, &args.audio, today)));
        }
    }
    let now = clock.now();
    let mut n_errors = 0;
    let mut bad_files = 0;
    let mut ids: Vec<(String, PathBuf)> = Vec::new();
    for (path, r) in &results {
        match r {
            Ok((station, catalog)) => {
                if let Some((_, other)) = ids.iter().find(|(id, _)| *id == station.id) {
                    eprintln!(
                        "{}:1:1: id: mã trạm `{}` bị trùng (cũng có trong {})\n    cách sửa: đặt cho mỗi trạm một mã riêng",
                        path.display(),
                        station.id,
                        other.display()
                    );
                    n_errors += 1;
                    bad_files += 1;
                    continue;
                }
                ids.push((station.id.clone(), path.clone()));
                let local_today = now.with_timezone(&station.timezone).date_naive();
                let next = expand(
                    station,
                    catalog,
                    local_today,
                    local_today + Duration::days(NEXT_AIRING_LOOKAHEAD_DAYS),
                )
                .into_iter()
                .find(|a| a.at >= now)
                .map_or_else(
                    || {
                        format!(
                            "lần phát tới: không có trong {NEXT_AIRING_LOOKAHEAD_DAYS} ngày tới"
                        )
                    },
                    |a| {
                        format!(
                            "lần phát tới: {} (khung «{}»)",
                            a.at.format("%d/%m/%Y %H:%M %:z"),
                            a.slot
                        )
                    },
                );
                println!(
                    "ok  {}  {}  \"{}\"  {} chương trình, {} khung giờ, {}",
                    station.id,
                    match station.kind {
                        StationKind::City => "trạm thành phố",
                        StationKind::Ward => "trạm phường/xã",
                    },
                    station.name,
                    station.programs.len(),
                    station.slots.len(),
                    next
                );
            }
            Err(errs) => {
                bad_files += 1;
                for e in &errs.0 {
                    eprintln!("{e}");
                    n_errors += 1;
                }
            }
        }
    }
    if n_errors == 0 {
        println!(
            "loa check: {} tệp lịch phát hợp lệ (thư mục âm thanh {})",
            results.len(),
            display(&args.audio)
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "loa check: {n_errors} lỗi trong {bad_files}/{} tệp lịch phát; chưa nạp gì từ các tệp lỗi",
            results.len()
        );
        Ok(ExitCode::from(2))
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
