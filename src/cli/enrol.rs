//! `loa enrol` — Enrol this station box with the centre in one step: make the station key,
//! register its public key with the enrolment code an admin was given
//! (`POST /api/v1/enrol`, `collector::enrolment`), and write the station's configuration
//! (`<state>/station.toml`, [`StationFile`]: the id, the collector URLs — one, or several
//! replicas in order of preference — and the data directory), after which `loa station` needs
//! no other flag; it pins the centre's key (`centre::pin`) and checks the set-up with a
//! station-signed `GET /api/v1/centre/whoami` to every collector named (only the first one,
//! enrolled through, must answer).
//!
//! **Invariant:** an existing station key or configuration is never overwritten without
//! `--force`, and that is checked before the code is sent (a code is single use); the key and
//! the configuration are written only after the collector accepted the key, the secret key
//! mode 0600 (`keys::write_pair`), the configuration by temp file and rename. A configuration
//! is used only as [`StationFile::load`] checked it: an id, and at least one collector URL,
//! each an http(s) URL with a host, none twice.

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
    /// The collector's base URL, e.g. `https://loa.example.gov.vn`. Repeat the flag to name
    /// several collectors (replicas on one database), in order of preference: the box enrols
    /// through the first, and `loa station` fails over between all of them (docs/station.md,
    /// "Several collectors"). All are written to `station.toml`.
    #[arg(long, value_name = "URL", required = true, action = clap::ArgAction::Append,
          value_parser = collector_url)]
    pub collector: Vec<String>,
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

/// A `--collector` value (`loa enrol`, `loa station`): an http(s) URL with a host, checked when
/// the command line is read (`endpoints::check_url`; a trailing slash dropped).
pub(super) fn collector_url(s: &str) -> Result<String, String> {
    crate::endpoints::check_url(s).map_err(|e| e.to_string())
}

/// The station box's configuration, `<state>/station.toml`, written by `loa enrol`: checked
/// ([`StationFile::load`]), its collectors always a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationFile {
    /// The station's id.
    pub id: String,
    /// The collectors' base URLs in order of preference (at least one, each an http(s) URL
    /// with a host, none twice); the first is the one the box enrolled through. In the file:
    /// `collectors = ["…", "…"]`, or `collector = "…"` for one (what `loa enrol` writes for
    /// one URL, and what every box enrolled before the list existed holds).
    pub collectors: Vec<String>,
    /// The data directory, when not the layout's `<state>/station/<id>`.
    pub data_dir: Option<PathBuf>,
}

/// `station.toml` as read, with the place of each value (for the line in error messages).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStationFile {
    id: toml::Spanned<String>,
    collector: Option<toml::Spanned<String>>,
    collectors: Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
    data_dir: Option<PathBuf>,
}

/// `station.toml` as written.
#[derive(Debug, Serialize)]
struct WrittenStationFile<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    collector: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collectors: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<&'a Path>,
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
        "the station configuration {path}{at} is not valid: {message} (it is written by `loa enrol`; fix it or enrol again with `loa enrol --force`)",
        at = line_suffix(*.line)
    )]
    Invalid {
        path: PathBuf,
        /// The line of the value at fault (1-based), when one is.
        line: Option<usize>,
        message: String,
    },
    #[error("cannot write the station configuration {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// What to write for several collectors (said in the errors about them).
const COLLECTORS_HINT: &str = "`collectors = [\"http://a:8080\", \"http://b:8080\"]` for several \
                               collectors (in order of preference), or `collector = \"http://a:8080\"` \
                               for one";

impl StationFile {
    /// Read and check `path`: the id, and the collectors (`collectors = [...]` or `collector =
    /// "…"`, not both; not an empty list; each an http(s) URL with a host; none twice).
    pub fn load(path: &Path) -> Result<Self, StationFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| StationFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let line_of = |span: std::ops::Range<usize>| {
            Some(
                text.get(..span.start)
                    .unwrap_or_default()
                    .matches('\n')
                    .count()
                    + 1,
            )
        };
        let invalid = |line: Option<usize>, message: String| StationFileError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let raw: RawStationFile =
            toml::from_str(&text).map_err(|e| invalid(None, e.to_string()))?;
        if !crate::collector::registry::valid_station_id(raw.id.get_ref()) {
            return Err(invalid(
                line_of(raw.id.span()),
                format!(
                    "`id` = {:?}: 1-64 characters of a-z, 0-9, '-', '_', '.'",
                    raw.id.get_ref()
                ),
            ));
        }
        // (line, field, url) of every URL named.
        let named: Vec<(Option<usize>, String, String)> = match (raw.collector, raw.collectors) {
            (Some(_), Some(list)) => {
                return Err(invalid(
                    line_of(list.span()),
                    format!(
                        "both `collector` and `collectors` are given: keep one, {COLLECTORS_HINT}"
                    ),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    None,
                    format!(
                        "no collector: neither `collectors` nor `collector` is given; write {COLLECTORS_HINT}"
                    ),
                ));
            }
            (Some(u), None) => vec![(line_of(u.span()), "collector".into(), u.into_inner())],
            (None, Some(list)) if list.get_ref().is_empty() => {
                return Err(invalid(
                    line_of(list.span()),
                    "`collectors` is an empty list: name at least one collector, e.g. \
                     `collectors = [\"http://collector.example:8080\"]`"
                        .into(),
                ));
            }
            (None, Some(list)) => list
                .into_inner()
                .into_iter()
                .enumerate()
                .map(|(i, u)| {
                    (
                        line_of(u.span()),
                        format!("collectors[{i}]"),
                        u.into_inner(),
                    )
                })
                .collect(),
        };
        let mut collectors: Vec<String> = Vec::new();
        for (line, field, url) in named {
            match crate::endpoints::check_url(&url) {
                Err(e) => return Err(invalid(line, format!("`{field}` = {url:?}: {e}"))),
                Ok(u) if collectors.contains(&u) => {
                    return Err(invalid(
                        line,
                        format!(
                            "`{field}` = {url:?}: this collector is listed twice; remove the \
                             repeated URL"
                        ),
                    ));
                }
                Ok(u) => collectors.push(u),
            }
        }
        Ok(Self {
            id: raw.id.into_inner(),
            collectors,
            data_dir: raw.data_dir,
        })
    }

    /// Write to `path` (temp file, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<(), StationFileError> {
        let io = |source| StationFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        // One collector is written as `collector = "…"`, as before the list existed (a box
        // enrolled so still starts with an older `loa`); several as `collectors = [...]`.
        let (collector, collectors) = match self.collectors.as_slice() {
            [one] => (Some(one.as_str()), None),
            all => (None, Some(all)),
        };
        let written = WrittenStationFile {
            id: &self.id,
            collector,
            collectors,
            data_dir: self.data_dir.as_deref(),
        };
        let body =
            toml::to_string(&written).map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let several = if self.collectors.len() > 1 {
            "\n# Collectors in order of preference: the station fails over between them \
             (docs/station.md, \"Several collectors\")."
        } else {
            ""
        };
        let text = format!(
            "# This box is station `{}` of the centre at {} (written by `loa enrol`).{several}\n\
             # `loa station` reads it when no --station is given; its flags still override.\n{body}",
            self.id,
            self.collectors.first().map_or("", String::as_str)
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
    // Each URL was checked when the command line was read; the list as the station will use it.
    let collectors = match crate::endpoints::Endpoints::new(&args.collector) {
        Ok(e) => e.urls().to_vec(),
        Err(e) => return refuse(format!("--collector: {e}; name each collector once")),
    };
    // The box enrols through the first-listed collector.
    let collector = collectors[0].clone();
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
        collectors: collectors.clone(),
        data_dir,
    };
    file.write(&config)?;
    // The set-up, checked: a request signed with the new key, as the station will sign them,
    // to the collector enrolled through; its failure fails the command.
    if let Err(e) = check_setup(&rt, &key, &answer.station, &collector) {
        eprintln!("loa enrol: enrolled as `{}`, but {e}", answer.station);
        return Ok(ExitCode::FAILURE);
    }
    // The other collectors are asked the same, but only warned about: one may be down right now
    // (which is what the list is for), and the box is enrolled either way.
    let mut others = Vec::new();
    for url in &collectors[1..] {
        match check_setup(&rt, &key, &answer.station, url) {
            Ok(()) => others.push(format!("{url} answers")),
            Err(e) => {
                eprintln!(
                    "loa enrol: warning: enrolled as `{}` through {collector}, but {e}; the \
                     station fails over to {url} only if it serves the same stations (a replica \
                     on the same database): check it, then nothing is to be done on this box",
                    answer.station
                );
                others.push(format!("{url} not checked (see above)"));
            }
        }
    }
    let others = if others.is_empty() {
        String::new()
    } else {
        format!(" (other collectors: {})", others.join(", "))
    };
    println!(
        "enrolled as station `{}` ({}, area code {}): key in {}, centre key pinned, configuration \
         {}; checked with the collector at {collector}{others}; start it with `loa station`",
        answer.station,
        answer.name,
        answer.area_code,
        dir.display(),
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Ask the collector at `base` who this box is, with a request signed by `key` as station
/// `station` (`GET /api/v1/centre/whoami`): `Err` says what went wrong, in a phrase that
/// follows "enrolled as `ID`, but".
fn check_setup(
    rt: &tokio::runtime::Runtime,
    key: &ed25519_dalek::SigningKey,
    station: &str,
    base: &str,
) -> Result<(), String> {
    let path = "/api/v1/centre/whoami";
    let headers = crate::centre::request::sign(key, station, "GET", path, chrono::Utc::now());
    let checked = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
            .build()?;
        let mut req = client.get(format!("{base}{path}"));
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
            if v["station"].as_str() == Some(station) {
                Ok(())
            } else {
                Err(format!(
                    "the collector at {base} answered the set-up check as {:?}, not `{station}`: \
                     {text}",
                    v["station"]
                ))
            }
        }
        Ok((status, text)) => Err(format!(
            "the collector at {base} refused a request signed with the new key ({}): {text} (is \
             this box's clock right? `timedatectl`)",
            status.as_u16()
        )),
        Err(e) => Err(format!(
            "the set-up check could not reach the collector at {base}: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_station_file_round_trips_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("station.toml");
        for urls in [
            &["http://127.0.0.1:8080"][..],
            &["http://a:8080", "https://b.example"][..],
        ] {
            let f = StationFile {
                id: "phuong-a".into(),
                collectors: urls.iter().map(|u| u.to_string()).collect(),
                data_dir: Some("/srv/tram".into()),
            };
            f.write(&path).unwrap_or_else(|e| panic!("{e}"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // One URL is written as before the list existed.
            assert_eq!(text.contains("\ncollector = "), urls.len() == 1, "{text}");
            assert_eq!(StationFile::load(&path).ok(), Some(f));
        }
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
        check("id = \"a\"\n", "neither `collectors` nor `collector`");
        check(
            "id = \"a\"\ncollector = \"http://a\"\ncollectors = [\"http://b\"]\n",
            "station.toml:3 is not valid: both `collector` and `collectors`",
        );
        check(
            "id = \"a\"\ncollectors = []\n",
            "station.toml:2 is not valid: `collectors` is an empty list",
        );
        check(
            "id = \"a\"\ncollectors = [\n  \"http://a:8080\",\n  \"http://a:99999\",\n]\n",
            "station.toml:4 is not valid: `collectors[1]` = \"http://a:99999\"",
        );
        check(
            "id = \"a\"\ncollectors = [\"http://a:8080\", \"a:8080\"]\n",
            "not an http(s) URL with a host",
        );
        check(
            "id = \"a\"\ncollectors = [\"http://a:8080\", \"http://a:8080/\"]\n",
            "`collectors[1]` = \"http://a:8080/\": this collector is listed twice",
        );
        check(
            "id = \"a\"\ncollector = \"http://a:8080?x=1\"\n",
            "station.toml:2 is not valid: `collector` = ",
        );
        check(
            "id = \"a\"\ncollector = \"http://x\"\nschedule = 1\n",
            "schedule",
        );
    }
}
