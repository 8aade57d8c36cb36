//! The content library: audio uploaded once at the centre, stored by the SHA-256 of its bytes,
//! measured once (duration, EBU R128 integrated loudness, true peak) and placed at library
//! paths — a program's episode for a month, or a plain placement — that make up the audio tree
//! of centre-managed stations.
//!
//! On disk, under the library directory (`Layout::library_dir`):
//! - `content/<aa>/<sha256>`: each content's bytes, written to `tmp/` first, fsynced, renamed
//!   into place (and the directory fsynced); never changed afterwards;
//! - `tree/<path>`: one hard link per library path to its content file (a copy when linking
//!   fails), rebuilt from the database's `library_paths` table at start and after every change;
//!   it is the audio root of centre-managed stations, so the collector's plans, status and
//!   reports read it as they read any audio root;
//! - `tmp/`: uploads being received (removed when refused; leftovers older than 6 hours removed
//!   at start — a newer one may be another replica's upload in progress).
//!
//! In the database: `content` (one row per content: size, title, category, the measured facts,
//! who uploaded it, when) and `library_paths` (path → content, who set it, when, why). The facts
//! are also stored in `audio_facts` by content SHA-256 (`collector::facts`), so the plan cache
//! finds them and never decodes a library file again.
//!
//! **Invariant:** a content row exists only for a file that decoded to its end and whose bytes
//! are at `content/<aa>/<sha256>` (the file is renamed into place before the row is committed);
//! a library path names only a stored content; the tree holds every one of the table's paths,
//! each with its content's bytes (a file put there by hand is left in place, logged, never
//! deleted). A refused upload leaves nothing behind. Decoding happens only at
//! upload, on a blocking thread, with decoder panics contained (`media`).

pub mod web;

use crate::collector::db::{OptionalExtension, params};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use super::registry::Registry;
use super::store::{Store, StoreError, StoredAudioFacts};

/// Default largest upload (bytes): a 2-hour 192 kbit/s MP3 is about 170 MB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 200 * 1024 * 1024;
/// Longest title and category (bytes).
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest library path (bytes; the manifest's limit).
pub const MAX_PATH_BYTES: usize = 255;

/// Where the library lives and how large an upload may be.
#[derive(Debug, Clone)]
pub struct LibraryConfig {
    pub dir: PathBuf,
    pub max_upload_bytes: u64,
}

/// Why a library operation was refused or failed. Each refusal has a code (on the wire) and a
/// Vietnamese text (pages, `loa content`).
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The upload is larger than the configured limit (413).
    #[error("upload larger than the limit of {limit} bytes; nothing was stored")]
    TooLarge { limit: u64 },
    /// The upload is not audio that decodes to its end (422): why in Vietnamese (what the
    /// uploader can act on), and the decoder's own English detail (logged, and in the API's
    /// English `error`; never on a page).
    #[error("not a decodable audio file (WAV/MP3/Ogg Vorbis/FLAC): {detail}; nothing was stored")]
    Undecodable {
        why_vi: &'static str,
        detail: String,
    },
    /// A field is missing or wrong (400).
    #[error("{field}: {why}")]
    BadField { field: &'static str, why: String },
    /// Neither the shared programs nor a registered station's schedule defines the program with
    /// an `episodes` pattern (404).
    #[error(
        "neither the shared programs nor a station schedule defines program `{program}` with an `episodes` pattern"
    )]
    UnknownProgram { program: String },
    /// Schedules define the program with different `episodes` patterns (409).
    #[error("program `{program}` has different `episodes` patterns: {patterns}")]
    ConflictingPatterns { program: String, patterns: String },
    /// No such content (404).
    #[error("no content {sha256} in the library")]
    NoSuchContent { sha256: String },
    /// The upload broke off or the disk failed (500 or 400 as the cause says).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sqlite(#[from] crate::collector::db::DbError),
}

impl LibraryError {
    /// The code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            LibraryError::TooLarge { .. } => "content.too_large",
            LibraryError::Undecodable { .. } => "content.undecodable",
            LibraryError::BadField { .. } => "content.bad_field",
            LibraryError::UnknownProgram { .. } => "content.unknown_program",
            LibraryError::ConflictingPatterns { .. } => "content.conflicting_patterns",
            LibraryError::NoSuchContent { .. } => "content.not_found",
            LibraryError::Io { .. } | LibraryError::Store(_) | LibraryError::Sqlite(_) => {
                "internal"
            }
        }
    }

    /// The Vietnamese text people see.
    pub fn vi(&self) -> String {
        match self {
            LibraryError::TooLarge { limit } => format!(
                "Tệp lớn hơn giới hạn {} MB; không lưu gì. Hãy nén lại (ví dụ MP3 64 kbit/s) hoặc nhờ quản trị tăng giới hạn (--max-upload-bytes).",
                limit.div_ceil(1024 * 1024)
            ),
            LibraryError::Undecodable { why_vi, .. } => format!(
                "Tệp không phải âm thanh giải mã được (WAV/MP3/Ogg Vorbis/FLAC): {why_vi}. Không lưu gì; hãy xuất lại tệp âm thanh rồi tải lên lại."
            ),
            LibraryError::BadField { field, why } => {
                format!("Trường «{field}» không hợp lệ: {why}")
            }
            LibraryError::UnknownProgram { program } => format!(
                "Danh sách chương trình chung và lịch phát của các trạm đều không định nghĩa chương trình «{program}» với mẫu tập hằng tháng (episodes)."
            ),
            LibraryError::ConflictingPatterns { program, patterns } => format!(
                "Chương trình «{program}» có các mẫu tập khác nhau ở các lịch phát ({patterns}); hãy thống nhất lịch phát trước."
            ),
            LibraryError::NoSuchContent { sha256 } => {
                format!("Không có nội dung {sha256} trong thư viện.")
            }
            LibraryError::Io { .. } | LibraryError::Store(_) | LibraryError::Sqlite(_) => {
                "Lỗi nội bộ; không lưu gì. Xem nhật ký của máy chủ.".into()
            }
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode as S;
        match self {
            LibraryError::TooLarge { .. } => S::PAYLOAD_TOO_LARGE,
            LibraryError::Undecodable { .. } => S::UNPROCESSABLE_ENTITY,
            LibraryError::BadField { .. } => S::BAD_REQUEST,
            LibraryError::UnknownProgram { .. } | LibraryError::NoSuchContent { .. } => {
                S::NOT_FOUND
            }
            LibraryError::ConflictingPatterns { .. } => S::CONFLICT,
            LibraryError::Io { .. } | LibraryError::Store(_) | LibraryError::Sqlite(_) => {
                S::INTERNAL_SERVER_ERROR
            }
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LibraryError {
    let what = what.into();
    move |source| LibraryError::Io { what, source }
}

/// What people say about a content when they upload it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub title: String,
    pub category: String,
}

impl Meta {
    /// Checked title and category (trimmed; 1..=200 bytes; a category is a code like `cchc`).
    pub fn new(title: &str, category: &str) -> Result<Self, LibraryError> {
        let title = title.trim();
        if title.is_empty() || title.len() > MAX_TITLE_BYTES || title.chars().any(char::is_control)
        {
            return Err(LibraryError::BadField {
                field: "title",
                why: format!("cần 1–{MAX_TITLE_BYTES} byte, không có ký tự điều khiển"),
            });
        }
        let category = category.trim();
        if category.is_empty()
            || category.len() > 64
            || !category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        {
            return Err(LibraryError::BadField {
                field: "category",
                why: "cần 1–64 ký tự a-z, 0-9, - _ . (ví dụ cchc, news, notice)".into(),
            });
        }
        Ok(Self {
            title: title.to_string(),
            category: category.to_string(),
        })
    }
}

/// One content as listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Content {
    pub sha256: String,
    pub size: u64,
    pub title: String,
    pub category: String,
    pub duration_secs: f64,
    pub sample_rate: u32,
    pub channels: u16,
    /// Integrated loudness (EBU R128), LUFS; `None` for silence.
    pub loudness_lufs: Option<f64>,
    /// True peak, dBTP; `None` for digital silence.
    pub true_peak_dbtp: Option<f64>,
    pub uploader: String,
    pub uploaded_at: DateTime<Utc>,
    /// The library paths naming it.
    pub paths: Vec<PathRow>,
}

/// Why a library path is set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Why {
    /// Program `program`'s episode for `month` (`YYYY-MM`).
    Episode { program: String, month: String },
    /// Placed at this path by hand.
    Placement,
}

/// One library path.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PathRow {
    pub path: String,
    pub sha256: String,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
    pub why: Why,
}

impl PathRow {
    /// How the audit log describes this path's value.
    pub fn describe(&self) -> String {
        match &self.why {
            Why::Episode { program, month } => format!(
                "{} = {} (tập {program} tháng {month}, bởi {})",
                self.path, self.sha256, self.set_by
            ),
            Why::Placement => format!("{} = {} (bởi {})", self.path, self.sha256, self.set_by),
        }
    }
}

/// A received upload: a temp file in the library's `tmp/`, removed on drop unless stored.
#[derive(Debug)]
pub struct Received {
    path: PathBuf,
    pub sha256: String,
    pub size: u64,
    kept: bool,
}

impl Received {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes an upload into `tmp/` while hashing it and enforcing the size limit.
pub struct Receiver {
    file: tokio::fs::File,
    received: Received,
    hasher: Sha256,
    limit: u64,
}

impl Receiver {
    /// The next chunk; [`LibraryError::TooLarge`] (the temp file removed) once the limit is
    /// passed.
    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), LibraryError> {
        use tokio::io::AsyncWriteExt as _;
        self.received.size += chunk.len() as u64;
        if self.received.size > self.limit {
            return Err(LibraryError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .await
            .map_err(io("writing the upload"))
    }

    /// The whole upload, fsynced.
    pub async fn finish(mut self) -> Result<Received, LibraryError> {
        use tokio::io::AsyncWriteExt as _;
        self.file.flush().await.map_err(io("writing the upload"))?;
        self.file
            .sync_all()
            .await
            .map_err(io("syncing the upload"))?;
        self.received.sha256 = hex::encode(self.hasher.finalize());
        Ok(self.received)
    }
}

/// What measuring a file found.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub duration_secs: f64,
    pub sample_rate: u32,
    pub channels: u16,
    pub frames: u64,
    pub loudness_lufs: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
}

/// Decode `path` to its end and measure it (one decode: `loudness::measure_file`, which also
/// refuses a truncated file). Blocking; a decoder panic is contained and refused like a file
/// that does not decode.
pub fn measure(path: &Path, sha256: &str) -> Result<Measured, LibraryError> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::loudness::measure_file(path, sha256)
    }));
    match r {
        Ok(Ok(f)) if f.frames > 0 => Ok(Measured {
            duration_secs: f.duration_secs,
            sample_rate: f.sample_rate,
            channels: f.channels,
            frames: f.frames,
            loudness_lufs: f.integrated_lufs,
            true_peak_dbtp: f.true_peak_dbtp,
        }),
        Ok(Ok(_)) => Err(LibraryError::Undecodable {
            why_vi: "không có mẫu âm thanh nào (tệp rỗng)",
            detail: "no audio samples".into(),
        }),
        Ok(Err(e)) => Err(LibraryError::Undecodable {
            why_vi: "không nhận ra định dạng âm thanh, hoặc tệp bị hỏng hay bị cắt cụt",
            detail: strip_path(&e.to_string(), path),
        }),
        Err(_) => Err(LibraryError::Undecodable {
            why_vi: "bộ giải mã gặp lỗi khi đọc tệp",
            detail: "the decoder panicked".into(),
        }),
    }
}

/// The decoder's message without the temp file's path (it names nothing anyone knows).
fn strip_path(msg: &str, path: &Path) -> String {
    let p = path.display().to_string();
    msg.replace(&format!("{p}: "), "").replace(&p, "tệp")
}

/// A `YYYY-MM` month.
pub fn parse_month(s: &str) -> Result<NaiveDate, LibraryError> {
    let s = s.trim();
    let bad = || LibraryError::BadField {
        field: "month",
        why: format!("«{s}» không phải tháng dạng YYYY-MM (ví dụ 2027-01)"),
    };
    if s.len() != 7 {
        return Err(bad());
    }
    NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").map_err(|_| bad())
}

/// A library path: relative, UTF-8, no `..`, no leading `/`, no backslash, no control
/// characters, at most [`MAX_PATH_BYTES`] bytes (the manifest's path rule).
pub fn check_path(p: &str) -> Result<(), LibraryError> {
    let bad = |why: &str| LibraryError::BadField {
        field: "path",
        why: format!("«{p}»: {why}"),
    };
    if p.is_empty() || p.len() > MAX_PATH_BYTES {
        return Err(bad("cần 1–255 byte"));
    }
    if p.starts_with('/') || p.contains('\\') || p.chars().any(char::is_control) {
        return Err(bad("đường dẫn tương đối, không có \\ hay ký tự điều khiển"));
    }
    let ok = Path::new(p)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !ok || p.ends_with('/') || p.split('/').any(|s| s.is_empty() || s.starts_with('.')) {
        return Err(bad("không có .., ., // hay tên bắt đầu bằng dấu chấm"));
    }
    Ok(())
}

/// Program `program`'s `episodes` pattern, from the documents that define it: the centre's
/// shared programs document (`shared`, its latest text: a program defined once for many
/// stations, which may be assigned its episodes before any station's version can be published)
/// and the registry's stations' schedule files. Every definition must agree.
pub fn program_pattern(
    registry: &Registry,
    shared: Option<&str>,
    program: &str,
) -> Result<String, LibraryError> {
    let mut patterns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(p) =
        shared.and_then(|t| super::versions::core::shared_program_episodes(t).remove(program))
    {
        patterns
            .entry(p)
            .or_default()
            .push("danh sách chương trình chung".into());
    }
    for s in registry.stations.values() {
        let Some(file) = &s.schedule else { continue };
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(p) = crate::schedule::file::program_episodes(file, &text).remove(program) {
            patterns.entry(p).or_default().push(s.id.clone());
        }
    }
    match patterns.len() {
        0 => Err(LibraryError::UnknownProgram {
            program: program.to_string(),
        }),
        1 => Ok(patterns.into_keys().next().unwrap_or_default()),
        _ => Err(LibraryError::ConflictingPatterns {
            program: program.to_string(),
            patterns: patterns
                .iter()
                .map(|(p, ids)| format!("{p}: {}", ids.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// The titles of programs `wanted` (id → title): from the shared programs document first, then
/// the registry's stations' schedule files, read only until every wanted title is found. Pages
/// show titles where the library keeps ids.
pub fn program_titles(
    registry: &Registry,
    shared: Option<&str>,
    wanted: &HashSet<String>,
) -> std::collections::HashMap<String, String> {
    let mut titles = std::collections::HashMap::new();
    if wanted.is_empty() {
        return titles;
    }
    let take = |titles: &mut std::collections::HashMap<String, String>,
                found: std::collections::HashMap<String, String>| {
        for (id, t) in found {
            if wanted.contains(&id) {
                titles.entry(id).or_insert(t);
            }
        }
    };
    if let Some(t) = shared {
        take(&mut titles, super::versions::core::shared_program_titles(t));
    }
    for s in registry.stations.values() {
        if wanted.iter().all(|w| titles.contains_key(w)) {
            break;
        }
        let Some(file) = &s.schedule else { continue };
        if let Ok(text) = std::fs::read_to_string(file) {
            take(
                &mut titles,
                crate::schedule::file::program_titles(file, &text),
            );
        }
    }
    titles
}

/// The library path of program `program`'s episode for `month` (pattern resolved at the
/// month's first day by the schedule's own `resolve_episode`). A pattern using `{dd}` names a
/// file per day: refused (place each day's file by path).
pub fn episode_path(pattern: &str, month: NaiveDate) -> Result<String, LibraryError> {
    if pattern.contains("{dd}") {
        return Err(LibraryError::BadField {
            field: "program",
            why: format!("mẫu «{pattern}» đổi theo ngày ({{dd}}); hãy đặt từng tệp theo đường dẫn"),
        });
    }
    let p = crate::schedule::resolve_episode(pattern, month)
        .to_string_lossy()
        .into_owned();
    check_path(&p)?;
    Ok(p)
}

/// The library: its directory, its limit, its own connection to the collector's database.
pub struct Library {
    config: LibraryConfig,
    db: Mutex<Store>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An upload file in `tmp/` untouched for this long is a leftover (an upload writes to it at
/// least every few seconds while it lasts; the collector's body timeouts end a stalled one).
const STALE_UPLOAD: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

impl Library {
    /// Open on the collector's database (migrated), clear `tmp/` of leftovers, rebuild the tree.
    pub fn open(db: &Path, config: LibraryConfig) -> Result<Self, LibraryError> {
        let store = Store::open(db)?;
        for d in ["content", "tree", "tmp"] {
            let dir = config.dir.join(d);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        // Leftovers of a process that died mid-upload. Only old ones: with replicas sharing
        // the directory (docs/operations.md, section 10), a recent file is another replica's
        // upload in progress.
        if let Ok(rd) = std::fs::read_dir(config.dir.join("tmp")) {
            for e in rd.flatten() {
                let stale = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|age| age > STALE_UPLOAD);
                if stale {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let lib = Self {
            config,
            db: Mutex::new(store),
        };
        lib.rebuild_tree()?;
        Ok(lib)
    }

    pub fn config(&self) -> &LibraryConfig {
        &self.config
    }

    /// The audio root of centre-managed stations.
    pub fn tree_dir(&self) -> PathBuf {
        self.config.dir.join("tree")
    }

    /// Where a content's bytes are.
    pub fn content_path(&self, sha256: &str) -> PathBuf {
        self.config
            .dir
            .join("content")
            .join(&sha256[..2.min(sha256.len())])
            .join(sha256)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Store> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start receiving an upload into `tmp/`.
    pub async fn receiver(&self) -> Result<Receiver, LibraryError> {
        let mut name = [0u8; 12];
        getrandom::fill(&mut name).map_err(|e| LibraryError::Io {
            what: "random name".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let path = self
            .config
            .dir
            .join("tmp")
            .join(format!("upload-{}.part", hex::encode(name)));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(io(format!("creating {}", path.display())))?;
        Ok(Receiver {
            file,
            received: Received {
                path,
                sha256: String::new(),
                size: 0,
                kept: false,
            },
            hasher: Sha256::new(),
            limit: self.config.max_upload_bytes,
        })
    }

    /// Store a received, measured upload: its file renamed into `content/` (fsynced), then
    /// its row and its audio facts committed. Content already held keeps its first row
    /// (`false`: nothing new stored). Blocking.
    pub fn admit(
        &self,
        mut received: Received,
        measured: &Measured,
        meta: &Meta,
        uploader: &str,
        now: DateTime<Utc>,
    ) -> Result<(Content, bool), LibraryError> {
        let sha = received.sha256.clone();
        if let Some(c) = self.get(&sha)? {
            return Ok((c, false));
        }
        let target = self.content_path(&sha);
        let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        std::fs::rename(received.path(), &target)
            .map_err(io(format!("moving the upload to {}", target.display())))?;
        received.kept = true;
        sync_dir(&dir);
        {
            let mut db = self.db();
            let tx = db.conn_mut().transaction()?;
            tx.execute(
                "INSERT INTO content (sha256, size, title, category, duration_secs, sample_rate,
                    channels, loudness_lufs, true_peak_dbtp, uploader, uploaded_unix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    sha,
                    received.size as i64,
                    meta.title,
                    meta.category,
                    measured.duration_secs,
                    measured.sample_rate,
                    measured.channels,
                    measured.loudness_lufs,
                    measured.true_peak_dbtp,
                    uploader,
                    now.timestamp()
                ],
            )?;
            tx.commit()?;
            // The same facts for the plan cache (`collector::facts`): never decoded again.
            db.put_audio_facts(
                &StoredAudioFacts {
                    sha256: sha.clone(),
                    sample_rate: Some(measured.sample_rate),
                    channels: Some(measured.channels),
                    frames: Some(measured.frames),
                    duration_secs: Some(measured.duration_secs),
                    undecodable: None,
                    loudness_lufs: measured.loudness_lufs,
                },
                now,
            )?;
        }
        let c = self
            .get(&sha)?
            .ok_or(LibraryError::NoSuchContent { sha256: sha })?;
        Ok((c, true))
    }

    /// One content with its paths.
    pub fn get(&self, sha256: &str) -> Result<Option<Content>, LibraryError> {
        Ok(self.list()?.into_iter().find(|c| c.sha256 == sha256))
    }

    /// Every content, newest upload first, each with its paths.
    pub fn list(&self) -> Result<Vec<Content>, LibraryError> {
        let paths = self.paths()?;
        let db = self.db();
        let conn = db_conn(&db);
        let mut stmt = conn.prepare(
            "SELECT sha256, size, title, category, duration_secs, sample_rate, channels,
                loudness_lufs, true_peak_dbtp, uploader, uploaded_unix
             FROM content ORDER BY uploaded_unix DESC, title",
        )?;
        let rows = stmt.query_map(params![], |r| {
            Ok(Content {
                sha256: r.get(0)?,
                size: r.get::<i64>(1)? as u64,
                title: r.get(2)?,
                category: r.get(3)?,
                duration_secs: r.get(4)?,
                sample_rate: r.get::<i64>(5)? as u32,
                channels: r.get::<i64>(6)? as u16,
                loudness_lufs: r.get(7)?,
                true_peak_dbtp: r.get(8)?,
                uploader: r.get(9)?,
                uploaded_at: DateTime::from_timestamp(r.get(10)?, 0).unwrap_or_default(),
                paths: Vec::new(),
            })
        })?;
        let mut out: Vec<Content> = rows.collect::<Result<_, _>>()?;
        for c in &mut out {
            c.paths = paths
                .iter()
                .filter(|p| p.sha256 == c.sha256)
                .cloned()
                .collect();
        }
        Ok(out)
    }

    /// Every library path, by path.
    pub fn paths(&self) -> Result<Vec<PathRow>, LibraryError> {
        let db = self.db();
        let conn = db_conn(&db);
        let mut stmt = conn.prepare(
            "SELECT path, sha256, set_by, set_unix, kind, program, month
             FROM library_paths ORDER BY path",
        )?;
        let rows = stmt.query_map(params![], |r| {
            let kind: String = r.get(4)?;
            Ok(PathRow {
                path: r.get(0)?,
                sha256: r.get(1)?,
                set_by: r.get(2)?,
                set_at: DateTime::from_timestamp(r.get(3)?, 0).unwrap_or_default(),
                why: if kind == "episode" {
                    Why::Episode {
                        program: r.get::<Option<String>>(5)?.unwrap_or_default(),
                        month: r.get::<Option<String>>(6)?.unwrap_or_default(),
                    }
                } else {
                    Why::Placement
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Set library path `path` to content `sha256` (replacing what it named), then place it in
    /// the tree. Returns the new row and the one it replaced (for the audit log). Blocking.
    pub fn set_path(
        &self,
        path: &str,
        sha256: &str,
        why: Why,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<(PathRow, Option<PathRow>), LibraryError> {
        check_path(path)?;
        let before = self.paths()?.into_iter().find(|p| p.path == path);
        {
            let mut db = self.db();
            let tx = db.conn_mut().transaction_immediate()?;
            let known: Option<String> = tx
                .query_row(
                    "SELECT sha256 FROM content WHERE sha256 = ?1",
                    params![sha256],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_none() {
                return Err(LibraryError::NoSuchContent {
                    sha256: sha256.to_string(),
                });
            }
            let (kind, program, month) = match &why {
                Why::Episode { program, month } => {
                    ("episode", Some(program.clone()), Some(month.clone()))
                }
                Why::Placement => ("placement", None, None),
            };
            tx.execute(
                "INSERT INTO library_paths (path, sha256, set_by, set_unix, kind, program, month)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256,
                    set_by = excluded.set_by, set_unix = excluded.set_unix, kind = excluded.kind,
                    program = excluded.program, month = excluded.month",
                params![path, sha256, who, now.timestamp(), kind, program, month],
            )?;
            tx.commit()?;
        }
        self.place_latest(path)?;
        let row = PathRow {
            path: path.to_string(),
            sha256: sha256.to_string(),
            set_by: who.to_string(),
            set_at: DateTime::from_timestamp(now.timestamp(), 0).unwrap_or_default(),
            why,
        };
        Ok((row, before))
    }

    /// Place `path` as the table says now, under the database's writer lock: when two replicas
    /// set one path at once, the tree ends with the content the table ends with.
    fn place_latest(&self, path: &str) -> Result<(), LibraryError> {
        let mut db = self.db();
        let tx = db.conn_mut().transaction_immediate()?;
        let sha: Option<String> = tx
            .query_row(
                "SELECT sha256 FROM library_paths WHERE path = ?1",
                params![path],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(sha) = sha {
            self.place(path, &sha)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Put content `sha256` at `tree/<path>`: a hard link (a copy when linking fails) made
    /// beside it (named for this process: replicas share the tree) and renamed over it, so a
    /// reader sees the old file or the new one, never a partial one.
    fn place(&self, path: &str, sha256: &str) -> Result<(), LibraryError> {
        let target = self.tree_dir().join(path);
        let source = self.content_path(sha256);
        if same_file(&source, &target) {
            return Ok(());
        }
        let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.loa-tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(&source, &tmp).is_err() {
            copy_synced(&source, &tmp)?;
        }
        std::fs::rename(&tmp, &target).map_err(io(format!("placing {}", target.display())))?;
        sync_dir(&dir);
        Ok(())
    }

    /// Make the tree hold the table's paths: each placed (unless already its content's file).
    /// Files the table does not name are left in place and logged, never deleted: the tree may
    /// hold files put there by hand, and deleting what someone stored is not the collector's call.
    pub fn rebuild_tree(&self) -> Result<(), LibraryError> {
        let rows = self.paths()?;
        let wanted: HashSet<PathBuf> = rows.iter().map(|r| PathBuf::from(&r.path)).collect();
        for r in &rows {
            // A content file gone from disk (restored from an old backup?) must not stop the
            // collector: the path stays unplaced, said in the log, and its stations' plans say
            // the file is missing.
            if !self.content_path(&r.sha256).is_file() {
                tracing::error!(path = %r.path, sha256 = %r.sha256, "library content file missing; path not placed");
                continue;
            }
            self.place(&r.path, &r.sha256)?;
        }
        let tree = self.tree_dir();
        let mut stack = vec![tree.clone()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(p),
                    Ok(_) => {
                        let rel = p.strip_prefix(&tree).map(Path::to_path_buf);
                        // A file the table does not name was put there by hand (an
                        // operator's copy, a test's fixture): never deleted, only said.
                        if rel.is_ok_and(|r| !wanted.contains(&r)) {
                            tracing::warn!(path = %p.display(), "a file in the library tree that the library does not name; left in place");
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }
}

fn db_conn(store: &Store) -> &crate::collector::db::Conn {
    store.conn()
}

/// Whether `a` and `b` are the same file (same device and inode), or `b` holds `a`'s bytes
/// (a copy made when linking failed: same size, same SHA-256).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
        return true;
    }
    ma.len() == mb.len()
        && matches!(
            (crate::media::sha256_file(a), crate::media::sha256_file(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

fn copy_synced(from: &Path, to: &Path) -> Result<(), LibraryError> {
    std::fs::copy(from, to).map_err(io(format!("copying to {}", to.display())))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(to)
        .map_err(io(format!("opening {}", to.display())))?;
    f.sync_all()
        .map_err(io(format!("syncing {}", to.display())))?;
    let _ = (&f).flush();
    Ok(())
}

/// Fsync a directory so a rename in it survives a crash (best effort: not every filesystem
/// allows it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_months_are_checked() {
        for ok in ["cchc/2027-01.mp3", "jingle.ogg", "a/b/c.wav"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/abs.mp3", "../x.mp3", "a/../b", "a\\b", "a//b", "./a", ".hidden", "a/", "a\nb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path(&"a".repeat(256)).is_err());
        assert_eq!(
            parse_month("2027-01").unwrap(),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
        );
        for bad in ["2027-1", "2027-13", "27-01", "2027-01-01", ""] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
        let m = parse_month("2027-01").unwrap();
        assert_eq!(
            episode_path("cchc/{yyyy}-{mm}.mp3", m).unwrap(),
            "cchc/2027-01.mp3"
        );
        assert!(episode_path("cchc/{yyyy}-{mm}-{dd}.mp3", m).is_err());
        assert!(episode_path("../{yyyy}.mp3", m).is_err());
    }

    #[test]
    fn opening_removes_only_stale_uploads_another_replica_may_be_writing_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let lib_dir = dir.path().join("library");
        let tmp = lib_dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let old = tmp.join("upload-old.part");
        let recent = tmp.join("upload-recent.part");
        std::fs::write(&old, b"x").unwrap();
        std::fs::write(&recent, b"y").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - STALE_UPLOAD - STALE_UPLOAD / 10)
            .unwrap();
        let db = crate::collector::db::testing::test_db(dir.path(), "c.db");
        let _lib = Library::open(
            &db,
            LibraryConfig {
                dir: lib_dir,
                max_upload_bytes: 10 << 20,
            },
        )
        .unwrap();
        assert!(
            !old.exists(),
            "a leftover older than {STALE_UPLOAD:?} is removed"
        );
        assert!(
            recent.exists(),
            "a recent upload (another replica's) is kept"
        );
    }

    #[test]
    fn meta_is_checked() {
        assert!(Meta::new(" Chuyên đề ", "cchc").is_ok());
        assert!(Meta::new("", "cchc").is_err());
        assert!(Meta::new("x", "CCHC").is_err());
        assert!(Meta::new("x", "").is_err());
        assert!(Meta::new(&"x".repeat(201), "cchc").is_err());
    }

    fn tone() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg")
    }

    #[tokio::test]
    async fn an_upload_is_stored_placed_replaced_and_the_tree_follows_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::collector::db::testing::test_db(dir.path(), "c.db");
        let lib = Library::open(
            &db,
            LibraryConfig {
                dir: dir.path().join("library"),
                max_upload_bytes: 10 << 20,
            },
        )
        .unwrap();
        let bytes = std::fs::read(tone()).unwrap();
        let mut rx = lib.receiver().await.unwrap();
        rx.push(&bytes).await.unwrap();
        let got = rx.finish().await.unwrap();
        let m = measure(got.path(), &got.sha256).unwrap();
        assert!(m.duration_secs > 0.5, "{m:?}");
        let meta = Meta::new("Tông", "test").unwrap();
        let now = Utc::now();
        let (c, new) = lib.admit(got, &m, &meta, "lan", now).unwrap();
        assert!(new);
        assert_eq!(std::fs::read(lib.content_path(&c.sha256)).unwrap(), bytes);
        // Its facts are where the plan cache looks.
        let facts = Store::open(&db).unwrap().audio_facts_of(&c.sha256).unwrap();
        assert_eq!(facts.unwrap().duration_secs, Some(m.duration_secs));
        let (row, before) = lib
            .set_path("a/x.ogg", &c.sha256, Why::Placement, "lan", now)
            .unwrap();
        assert!(before.is_none());
        assert_eq!(
            std::fs::read(lib.tree_dir().join("a/x.ogg")).unwrap(),
            bytes
        );
        // A file put into the tree by hand is kept; a removed tree file comes back.
        std::fs::write(lib.tree_dir().join("stray.mp3"), b"x").unwrap();
        std::fs::remove_file(lib.tree_dir().join("a/x.ogg")).unwrap();
        lib.rebuild_tree().unwrap();
        assert_eq!(
            std::fs::read(lib.tree_dir().join("stray.mp3")).unwrap(),
            b"x"
        );
        assert_eq!(
            std::fs::read(lib.tree_dir().join("a/x.ogg")).unwrap(),
            bytes
        );
        let (_, before) = lib
            .set_path("a/x.ogg", &c.sha256, Why::Placement, "minh", now)
            .unwrap();
        assert_eq!(before.unwrap().set_by, row.set_by);
        assert!(matches!(
            lib.set_path("b.ogg", &"0".repeat(64), Why::Placement, "lan", now),
            Err(LibraryError::NoSuchContent { .. })
        ));
        // Over the limit: refused, the temp file gone.
        let small = Library::open(
            &crate::collector::db::testing::test_db(dir.path(), "small.db"),
            LibraryConfig {
                dir: dir.path().join("small"),
                max_upload_bytes: 10,
            },
        )
        .unwrap();
        let mut rx = small.receiver().await.unwrap();
        assert!(matches!(
            rx.push(&bytes).await,
            Err(LibraryError::TooLarge { limit: 10 })
        ));
        drop(rx);
        assert_eq!(
            std::fs::read_dir(dir.path().join("small/tmp"))
                .unwrap()
                .count(),
            0
        );
        // Not audio: refused with a reason.
        let mut rx = lib.receiver().await.unwrap();
        rx.push(b"<html>not audio</html>").await.unwrap();
        let got = rx.finish().await.unwrap();
        let e = measure(got.path(), &got.sha256).unwrap_err();
        assert_eq!(e.code(), "content.undecodable");
        assert!(!e.vi().contains("upload-"), "{}", e.vi());
        // Only Vietnamese for people; the decoder's English detail is for the log.
        let LibraryError::Undecodable { detail, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(!detail.is_empty());
        assert!(!e.vi().contains(detail.as_str()), "{}", e.vi());
        assert!(e.to_string().contains(detail.as_str()), "{e}");
    }
}
