//! `loa enrol` — Enrol this station box with the centre in one step: make the station key,
//! register its public key with the enrolment code an admin was given
//! (`POST /api/v1/enrol`, `collector::enrolment`), and write the station's configuration
//! (`<state>/station.toml`, [`StationFile`]), after which `loa station` needs no other flag;
//! it pins the centre's key (`centre::pin`) and checks the set-up with a station-signed
//! `GET /api/v1/centre/whoami`.
//!
//! **Invariant:** an existing station key or configuration is never overwritten without
//! `--force`, and that is checked before the code is sent (a code is single use); the key and
//! the configuration are written only after the collector accepted the key, the secret key
//! mode 0600 (`keys::write_pair`), the configuration by temp file and rename.

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::collector::enrolment::{EnrolAnswer, EnrolRequest};
use crate::keys;
use crate::layout::Layout;

/// How long the enrolment request may take.
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Arguments of `loa enrol`.
#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The collector's base URL, e.g. `https://loa.example.gov.vn`.
    #[arg(long)]
    pub collector: String,
    /// The one-time enrolment code the admin was shown (`XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`; case,
    /// dashes and spaces do not matter).
    #[arg(long)]
    pub code: String,
    /// The station's data directory (key, journal). Default: `<state>/station/<ID>`, the one
    /// `loa station` uses, ID being what the collector answers.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Enrol again over an existing station key and configuration (the old key stops working
    /// once the new one is registered).
    #[arg(long)]
    pub force: bool,
}

/// The station box's configuration, `<state>/station.toml`, written by `loa enrol`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationFile {
    /// The station's id.
    pub id: String,
    /// The collector's base URL.
    pub collector: String,
    /// The data directory, when not the layout's `<state>/station/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// Why the station configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StationFileError {
    #[error("cannot read the station configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the station configuration {path} is not valid: {message} (it is written by `loa enrol`; fix it or enrol again with `loa enrol --force`)"
    )]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write the station configuration {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn valid_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl StationFile {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self, StationFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| StationFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| StationFileError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let f: StationFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if !crate::collector::registry::valid_station_id(&f.id) {
            return Err(invalid(format!(
                "`id` = {:?}: 1-64 characters of a-z, 0-9, '-', '_', '.'",
                f.id
            )));
        }
        if !valid_url(&f.collector) {
            return Err(invalid(format!(
                "`collector` = {:?}: an http:// or https:// URL",
                f.collector
            )));
        }
        Ok(f)
    }

    /// Write to `path` (temp file, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<(), StationFileError> {
        let io = |source| StationFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let body = toml::to_string(self).map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let text = format!(
            "# This box is station `{}` of the centre at {} (written by `loa enrol`).\n\
             # `loa station` reads it when no --station is given; its flags still override.\n{body}",
            self.id, self.collector
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("toml.tmp");
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Station keys already under `<state>/station/` (a box set up before).
fn existing_keys(layout: &Layout) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(layout.state.join(crate::layout::STATIONS_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = dirs
        .filter_map(Result::ok)
        .map(|d| keys::key_paths(&d.path()).0)
        .filter(|k| k.exists())
        .collect();
    found.sort();
    found
}

/// Refuse (exit 2) with `message`.
fn refuse(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("loa enrol: {message}");
    Ok(ExitCode::from(2))
}

/// Run `loa enrol`.
pub fn run(args: EnrolArgs) -> anyhow::Result<ExitCode> {
    let layout = Layout::detect();
    let config = layout.station_config();
    let collector = args.collector.trim().trim_end_matches('/').to_string();
    if !valid_url(&collector) {
        return refuse(format!(
            "--collector {:?} is not an http:// or https:// URL",
            args.collector
        ));
    }
    // Everything that would stop us after the code is spent is checked first.
    if !args.force {
        if let Ok(old) = StationFile::load(&config) {
            return refuse(format!(
                "this box is already enrolled as station `{}` ({}); pass --force to enrol it again \
                 (a new key replaces the old one)",
                old.id,
                config.display()
            ));
        }
        if config.exists() {
            return refuse(format!(
                "{} exists; pass --force to replace it",
                config.display()
            ));
        }
        let held = match &args.data_dir {
            Some(d) => vec![keys::key_paths(d).0]
                .into_iter()
                .filter(|k| k.exists())
                .collect(),
            None => existing_keys(&layout),
        };
        if !held.is_empty() {
            return refuse(format!(
                "a station key exists already ({}); refusing to overwrite it: pass --force to make \
                 a new one, or --data-dir for an empty directory",
                held.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("the operating system's CSPRNG: {e}"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public_key = keys::public_key_text(&key.verifying_key());

    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let url = format!("{collector}/api/v1/enrol");
    let sent = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
            .build()?;
        let r = client
            .post(&url)
            .json(&EnrolRequest {
                code: args.code.clone(),
                public_key: public_key.clone(),
            })
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        Ok::<_, reqwest::Error>((status, text))
    });
    let (status, text) = match sent {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "loa enrol: cannot reach the collector at {url}: {e}; check the address and the \
                 network (the code was not used)"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    if !status.is_success() {
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let said = body["error_vi"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or(text.as_str());
        let code = body["code"]
            .as_str()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        eprintln!(
            "loa enrol: the collector refused the enrolment ({}): {said}{code}",
            status.as_u16()
        );
        return Ok(if status.is_client_error() && status.as_u16() != 429 {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        });
    }
    let answer: EnrolAnswer = serde_json::from_str(&text)
        .with_context(|| format!("the collector's answer at {url} is not an enrolment answer"))?;
    let data_dir = args
        .data_dir
        .clone()
        .map(|d| std::path::absolute(&d).unwrap_or(d));
    let dir = data_dir
        .clone()
        .unwrap_or_else(|| layout.station_dir(&answer.station));
    if let Err(e) = keys::write_pair(&dir, &key, args.force) {
        eprintln!(
            "loa enrol: station `{}` is registered with the new key, but the key cannot be \
             written: {e}; the code is used: ask an admin for a new code (page «Trạm», «Cấp mã \
             mới») and run `loa enrol` again",
            answer.station
        );
        return Ok(ExitCode::FAILURE);
    }
    // The centre's key, pinned now (trust on first use, over the channel the admin chose:
    // use https:// outside the office network).
    let centre_key = answer
        .centre
        .as_ref()
        .and_then(|c| c["key"].as_str())
        .map(crate::wire::decode_public_key);
    let centre_key = match centre_key {
        Some(Ok(k)) => k,
        other => {
            eprintln!(
                "loa enrol: station `{}` is registered, but the collector gave no usable centre key \
                 ({}); the collector must run with its centre key (docs/distribution.md); the code \
                 is used: ask an admin for a new code once that is fixed",
                answer.station,
                match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "none".into(),
                }
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.force {
        // A box enrolled again trusts the centre it enrols with now, not an older pin.
        for f in [
            crate::centre::pin::PINNED_FILE,
            crate::centre::pin::PREVIOUS_FILE,
        ] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }
    crate::centre::pin::pin_first(&dir, &centre_key)
        .with_context(|| format!("pinning the centre key in {}", dir.display()))?;
    let file = StationFile {
        id: answer.station.clone(),
        collector: collector.clone(),
        data_dir,
    };
    file.write(&config)?;
    // The set-up, checked: a request signed with the new key, as the station will sign them.
    let path = "/api/v1/centre/whoami";
    let headers =
        crate::centre::request::sign(&key, &answer.station, "GET", path, chrono::Utc::now());
    let checked = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
            .build()?;
        let mut req = client.get(format!("{collector}{path}"));
        for (name, value) in headers.pairs() {
            req = req.header(name, value);
        }
        let r = req.send().await?;
        let status = r.status();
        Ok::<_, reqwest::Error>((status, r.text().await?))
    });
    match checked {
        Ok((status, text)) if status.is_success() => {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if v["station"].as_str() != Some(answer.station.as_str()) {
                eprintln!(
                    "loa enrol: the collector answered the set-up check as {:?}, not `{}`: {text}",
                    v["station"], answer.station
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Ok((status, text)) => {
            eprintln!(
                "loa enrol: enrolled as `{}`, but the collector refused a request signed with the \
                 new key ({}): {text} (is this box's clock right? `timedatectl`)",
                answer.station,
                status.as_u16()
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            eprintln!(
                "loa enrol: enrolled as `{}`, but the set-up check could not reach the collector: {e}",
                answer.station
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    println!(
        "enrolled as station `{}` ({}, area code {}): key in {}, centre key pinned, configuration \
         {}; checked with the collector; start it with `loa station`",
        answer.station,
        answer.name,
        answer.area_code,
        dir.display(),
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_station_file_round_trips_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("station.toml");
        let f = StationFile {
            id: "phuong-a".into(),
            collector: "http://127.0.0.1:8080".into(),
            data_dir: None,
        };
        f.write(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(StationFile::load(&path).ok(), Some(f));
        let check = |text: &str, want: &str| {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            let e = StationFile::load(&path).err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains(want) && e.contains("station.toml")),
                "{e:?}"
            );
        };
        check("id = \"A B\"\ncollector = \"http://x\"\n", "`id`");
        check("id = \"a\"\ncollector = \"ftp://x\"\n", "`collector`");
        check("id = \"a\"\n", "collector");
        check(
            "id = \"a\"\ncollector = \"http://x\"\nschedule = 1\n",
            "schedule",
        );
    }
}
