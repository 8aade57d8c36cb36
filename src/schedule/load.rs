//! The I/O edge of schedules: reads schedule files, probes the audio they name with
//! [`crate::media::probe`] into an [`AudioCatalog`], then hands text + catalog + today to the pure
//! validator.
//!
//! **Invariant:** this is the only schedule code that touches the filesystem; it never decides
//! validity itself, so a file checked here and a text checked in a test follow the same rules.

use super::file::{ScheduleError, audio_needs, line_column, parse_raw};
use super::validate::validate;
use super::{AudioCatalog, AudioFacts, ScheduleErrors, Station};
use crate::media::{MediaError, probe};
use chrono::NaiveDate;
use std::path::{Path, PathBuf};

/// Load and validate one schedule file; audio paths are relative to `audio_root`. `today` is the
/// station-local date that bounds checks of open-ended windows.
pub fn load(
    path: &Path,
    audio_root: &Path,
    today: NaiveDate,
) -> Result<(Station, AudioCatalog), ScheduleErrors> {
    let whole = |line, column, message: String, hint: &str| {
        ScheduleErrors(vec![ScheduleError {
            file: path.to_path_buf(),
            line,
            column,
            field: String::new(),
            message,
            hint: hint.into(),
        }])
    };
    let bytes = std::fs::read(path).map_err(|e| {
        whole(
            1,
            1,
            format!("không đọc được tệp lịch phát: {}", io_vi(&e)),
            "kiểm tra đường dẫn và quyền đọc tệp",
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        // The valid prefix locates the first bad byte.
        let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or("");
        let (line, column) = line_column(prefix, valid);
        whole(
            line,
            column,
            format!(
                "tệp lịch phát không phải văn bản UTF-8: byte 0x{:02X} tại đây không hợp lệ trong UTF-8",
                bytes.get(valid).copied().unwrap_or(0)
            ),
            "lưu tệp dưới dạng UTF-8 (ví dụ `iconv -f WINDOWS-1258 -t UTF-8 old.toml > new.toml`)",
        )
    })?;
    load_text(path, &text, audio_root, today, &mut facts_of)
}

/// An I/O error said in Vietnamese: the common kinds in words, any other with the system's own
/// text verbatim in backticks.
pub fn io_vi(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "không tồn tại".into(),
        ErrorKind::PermissionDenied => "không có quyền đọc".into(),
        ErrorKind::IsADirectory => "đây là một thư mục".into(),
        ErrorKind::NotADirectory => "đây không phải thư mục".into(),
        _ => format!("lỗi hệ thống `{e}`"),
    }
}

/// What the core needs to know of the path `full`: `None` when nothing is there, a directory or
/// other non-file said as such, a file probed ([`probe_facts`]).
pub fn facts_of(full: &Path) -> Option<AudioFacts> {
    let meta = std::fs::metadata(full).ok()?;
    if meta.is_file() {
        Some(probe_facts(full))
    } else if meta.is_dir() {
        Some(AudioFacts::NotAFile("một thư mục".into()))
    } else {
        Some(AudioFacts::NotAFile("không phải tệp thông thường".into()))
    }
}

/// [`load`] of a schedule already read as `text`, with the facts of each audio file it needs
/// given by `facts` (called with the full path; `None` = no such file). The collector passes
/// facts it stored by content hash, so a plan never decodes audio on a request path.
pub fn load_text(
    path: &Path,
    text: &str,
    audio_root: &Path,
    today: NaiveDate,
    facts: &mut dyn FnMut(&Path) -> Option<AudioFacts>,
) -> Result<(Station, AudioCatalog), ScheduleErrors> {
    let raw = parse_raw(path, text)?;
    let mut catalog = AudioCatalog {
        root: audio_root.to_path_buf(),
        ..AudioCatalog::default()
    };
    for rel in audio_needs(&raw, today) {
        if let Some(f) = facts(&audio_root.join(&rel)) {
            catalog.files.insert(rel, f);
        }
    }
    let station = validate(path, text, &raw, &catalog, today)?;
    Ok((station, catalog))
}

/// Decode one file to its end ([`probe`]) and say what the core needs to know of it.
pub fn probe_facts(full: &Path) -> AudioFacts {
    match probe(full) {
        Ok(m) => AudioFacts::Playable {
            duration_secs: m.duration_secs,
        },
        Err(MediaError::Undecodable { reason, .. }) => AudioFacts::Undecodable(reason),
        Err(MediaError::Io { source, .. }) => AudioFacts::Undecodable(source.to_string()),
        Err(e @ MediaError::Truncated { .. }) => AudioFacts::Undecodable(e.to_string()),
    }
}

/// Probe every file of `needs` under `root`; missing files are left out of the catalog.
pub fn probe_all(root: &Path, needs: impl IntoIterator<Item = PathBuf>) -> AudioCatalog {
    let mut catalog = AudioCatalog {
        root: root.to_path_buf(),
        ..AudioCatalog::default()
    };
    for rel in needs {
        if let Some(f) = facts_of(&root.join(&rel)) {
            catalog.files.insert(rel, f);
        }
    }
    catalog
}

/// What loading one file gave: the validated station and its audio catalog, or every problem.
pub type Loaded = Result<(Station, AudioCatalog), ScheduleErrors>;

/// Load every `*.toml` in `dir` (sorted by name). A directory that cannot be read yields one
/// entry with the error.
pub fn load_dir(dir: &Path, audio_root: &Path, today: NaiveDate) -> Vec<(PathBuf, Loaded)> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect(),
        Err(e) => {
            return vec![(
                dir.to_path_buf(),
                Err(ScheduleErrors(vec![ScheduleError {
                    file: dir.to_path_buf(),
                    line: 1,
                    column: 1,
                    field: String::new(),
                    message: format!("không đọc được thư mục lịch phát: {}", io_vi(&e)),
                    hint: "kiểm tra đường dẫn".into(),
                }])),
            )];
        }
    };
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let r = load(&p, audio_root, today);
            (p, r)
        })
        .collect()
}
