//! `loa register` — Register (enrol) a station's public key with the collector.
//!
//! **Invariant:** the checks and the write are [`registry::enrol`]'s — the very function behind
//! the admin API — so both refuse the same entries: nothing is written unless the whole new
//! registry validates (key, id), the schedule and audio root lie inside the collector's
//! directories, and the schedule loads for that station; paths are stored canonical, so they
//! mean the same to the collector whatever directory this ran in.

use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::collector::registry::{self, EnrolError, RawStation};
use crate::layout::Layout;

/// Arguments of `loa register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Registry file to add the station to (created when missing). Default:
    /// `<state>/collector.toml`, the collector's (docs/operations.md, "The state layout").
    #[arg(long)]
    pub config: Option<PathBuf>,
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
    /// The station's schedule file (for "planned" in reports): a `.toml` inside the registry's
    /// directory or the schedules directory of the layout.
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    /// Audio root of that schedule (defaults to the schedule's directory).
    #[arg(long)]
    pub audio_root: Option<PathBuf>,
    /// The collector's database, where the registration is recorded in the audit log. Default:
    /// `collector.db` beside the registry file (the state layout keeps them together).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

/// `path` as the operator meant it: relative to the directory this command runs in (the
/// registry would read a relative path against its own directory instead).
fn from_here(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The entry `args` describe, checked and written by the one enrolment function the admin API
/// also uses; returns it (paths canonical) and whether it is new.
fn enrol(
    args: &RegisterArgs,
    config: &Path,
    layout: &Layout,
) -> Result<(RawStation, bool), EnrolError> {
    let update = RawStation {
        id: args.station.clone(),
        name: args.name.clone().unwrap_or_default(),
        area_code: args.area_code.clone().unwrap_or_default(),
        public_key: args.public_key.clone(),
        schedule: args.schedule.as_deref().map(from_here),
        audio_root: args.audio_root.as_deref().map(from_here),
    };
    let roots = [from_here(&layout.schedules), from_here(&layout.audio)];
    registry::enrol(config, &update, &roots, chrono::Utc::now().date_naive())
}

/// Run `loa register`.
pub fn run(args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let layout = Layout::detect();
    let config = args.config.clone().unwrap_or_else(|| layout.registry());
    let db = args.db.clone().unwrap_or_else(|| {
        config
            .parent()
            .unwrap_or(Path::new("."))
            .join(crate::layout::DATABASE_FILE)
    });
    // The audit log is opened first: a registration is never made without its record.
    if let Some(dir) = crate::collector::db::Location::of_path(&db)
        .sqlite_path()
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
    {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = match crate::collector::store::Store::open(&db) {
        Ok(s) => s.into_connection(),
        Err(e) => {
            eprintln!(
                "loa register: cannot open the collector database {} for the audit log: {e} \
                 (give its path with --db); nothing was registered",
                db.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let before = crate::collector::registry::Registry::load(&config)
        .ok()
        .and_then(|r| r.get(&args.station).cloned());
    match enrol(&args, &config, &layout) {
        Ok((_, created)) => {
            let after = crate::collector::registry::Registry::load(&config)
                .ok()
                .and_then(|r| r.get(&args.station).cloned());
            let os_user = std::env::var("USER").unwrap_or_else(|_| "?".into());
            let entry = crate::collector::audit::Entry {
                at: chrono::Utc::now(),
                actor: format!("loa register (người dùng hệ thống: {os_user})"),
                address: crate::collector::audit::HOST_ADDRESS.into(),
                action: crate::collector::audit::action::STATION_REGISTER.into(),
                target: args.station.clone(),
                before: before
                    .as_ref()
                    .map(crate::collector::audit::describe_station),
                after: after
                    .as_ref()
                    .map(crate::collector::audit::describe_station),
            };
            if let Err(e) = crate::collector::audit::record(&conn, &entry) {
                eprintln!(
                    "loa register: the station is registered, but the audit log in {} refused the record: {e}",
                    db.display()
                );
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "{} station `{}` in {}",
                if created { "registered" } else { "updated" },
                args.station,
                config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("loa register: {e}");
            Ok(ExitCode::from(if e.is_invalid_entry() { 2 } else { 1 }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI front: paths typed relative to the working directory, key with blanks; the
    /// checks themselves are `registry::enrol`'s (tested there, and through the admin API in
    /// tests/collector_api.rs).
    #[test]
    fn paths_are_read_from_here_and_stored_canonical() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = dir.path().join("collector.toml");
        let key = crate::wire::encode_public_key(
            &ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]).verifying_key(),
        );
        // `cargo test` runs in the crate's directory: `schedules/` and `audio/` are the layout's.
        let mut args = RegisterArgs {
            config: Some(config.clone()),
            station: "phuong-tran-phu".into(),
            public_key: format!(" {key} \n"),
            name: None,
            area_code: None,
            schedule: Some("schedules/phuong-tran-phu.toml".into()),
            audio_root: Some("audio".into()),
            db: None,
        };
        let layout = Layout::at("var".into(), crate::layout::Chosen::LocalNew);
        let (e, created) = enrol(&args, &config, &layout).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(
            e.schedule.as_deref(),
            Some(repo.join("schedules/phuong-tran-phu.toml").as_path())
        );
        assert_eq!(e.audio_root.as_deref(), Some(repo.join("audio").as_path()));
        assert_eq!(e.public_key, key);
        args.station = "xa-nghia-dong".into();
        let err = enrol(&args, &config, &layout).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("not `xa-nghia-dong`")),
            "{err:?}"
        );
    }
}
