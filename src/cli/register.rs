//! `loa register` — Register (enrol) a station's public key with the collector.
//!
//! **Invariant:** nothing is written unless the whole new registry validates (key, id) and the
//! schedule named for the station loads for that station; schedule and audio paths are stored
//! absolute, so they mean the same to the collector whatever directory this ran in.

use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::collector::registry::{RawStation, upsert_file};

/// Arguments of `loa register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Registry file to add the station to (created when missing).
    #[arg(long, default_value = "collector.toml")]
    pub config: PathBuf,
    /// Station id (as in its schedule file and records).
    #[arg(long)]
    pub station: String,
    /// The station's public key (base64, printed by `loa keygen`).
    #[arg(long)]
    pub public_key: String,
    /// Display name, e.g. "Phường Lê Hồng Phong".
    #[arg(long)]
    pub name: Option<String>,
    /// Administrative area code (mã đơn vị hành chính).
    #[arg(long)]
    pub area_code: Option<String>,
    /// The station's schedule file (for "planned" in reports).
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    /// Audio root of that schedule (defaults to the schedule's directory).
    #[arg(long)]
    pub audio_root: Option<PathBuf>,
}

/// `path` made absolute (it must exist): the registry resolves relative paths against its own
/// directory, not against the directory `loa register` ran in.
fn absolute(path: &Path, what: &str) -> Result<PathBuf, String> {
    std::fs::canonicalize(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The station's schedule must load (its audio too, for the durations of the plan) and be the
/// schedule of `station`: otherwise the collector could not compute what was planned.
fn check_schedule(station: &str, schedule: &Path, audio_root: &Path) -> Result<(), String> {
    let today = chrono::Utc::now().date_naive();
    match crate::schedule::load(schedule, audio_root, today) {
        Ok((st, _)) if st.id == station => Ok(()),
        Ok((st, _)) => Err(format!(
            "{} is the schedule of station `{}`, not `{station}`",
            schedule.display(),
            st.id
        )),
        Err(errors) => Err(format!(
            "{} does not load with audio root {} (fix it, `loa check --audio {} {}`):\n{}",
            schedule.display(),
            audio_root.display(),
            audio_root.display(),
            schedule.display(),
            errors
                .0
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// The registry entry `args` describe, with checked absolute paths.
fn entry(args: &RegisterArgs) -> Result<RawStation, String> {
    let schedule = match &args.schedule {
        Some(p) => Some(absolute(p, "schedule")?),
        None => None,
    };
    let audio_root = match &args.audio_root {
        Some(p) => Some(absolute(p, "audio root")?),
        None => None,
    };
    if let Some(sched) = &schedule {
        // The collector's default audio root is the schedule's directory.
        let audio = audio_root
            .clone()
            .or_else(|| sched.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        check_schedule(&args.station, sched, &audio)?;
    }
    Ok(RawStation {
        id: args.station.clone(),
        name: args.name.clone().unwrap_or_default(),
        area_code: args.area_code.clone().unwrap_or_default(),
        public_key: args.public_key.trim().to_string(),
        schedule,
        audio_root,
    })
}

/// Run `loa register`.
pub fn run(args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let entry = match entry(&args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("loa register: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    match upsert_file(&args.config, &entry) {
        Ok(true) => {
            println!(
                "registered station `{}` in {}",
                args.station,
                args.config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            println!(
                "updated station `{}` in {}",
                args.station,
                args.config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("loa register: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(station: &str, schedule: Option<PathBuf>, audio: Option<PathBuf>) -> RegisterArgs {
        RegisterArgs {
            config: "unused.toml".into(),
            station: station.into(),
            public_key: " KEY \n".into(),
            name: None,
            area_code: None,
            schedule,
            audio_root: audio,
        }
    }

    #[test]
    fn schedule_must_load_for_that_station_and_is_stored_absolute() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let sched = repo.join("schedules/phuong-tran-phu.toml");
        let audio = repo.join("audio");
        // Fine: absolute paths stored, key trimmed.
        let e = entry(&args(
            "phuong-tran-phu",
            Some(sched.clone()),
            Some(audio.clone()),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(e.schedule.as_deref().is_some_and(Path::is_absolute));
        assert!(e.audio_root.as_deref().is_some_and(Path::is_absolute));
        assert_eq!(e.public_key, "KEY");
        // Another station's schedule.
        let err = entry(&args("xa-nghia-dong", Some(sched.clone()), Some(audio)))
            .err()
            .unwrap_or_default();
        assert!(err.contains("not `xa-nghia-dong`"), "{err}");
        // Audio missing (default root: the schedule's directory, which holds no audio).
        let err = entry(&args("phuong-tran-phu", Some(sched), None))
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("does not load") && err.contains("loa check"),
            "{err}"
        );
        // A schedule that does not exist.
        let err = entry(&args("w", Some("/nonexistent/w.toml".into()), None))
            .err()
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/w.toml"), "{err}");
        // No schedule at all is allowed (a station whose plan is not reported on).
        assert!(entry(&args("w", None, None)).is_ok());
    }
}
