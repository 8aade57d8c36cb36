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
    match enrol(&args, &config, &layout) {
        Ok((_, created)) => {
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
