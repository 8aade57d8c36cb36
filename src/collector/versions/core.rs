//! The pure part of schedule versions: the check a save runs (the same validation as
//! `loa check`, with the shared programs merged in and every problem located in the document
//! it is in), the diff between two versions, and the manifest of a version.
//!
//! **Invariant:** no I/O and no clock: text, audio facts (looked up through a closure or given
//! as a map), `today` and instants come in; a result or every located problem comes out.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::schedule::file::ScheduleErrors;
use crate::schedule::{AudioCatalog, AudioFacts, Station};

/// The document name of the shared programs (in the `doc` column; never a station id, which
/// cannot contain `:`).
pub const PROGRAMS_DOC: &str = ":programs";
/// Largest schedule or programs text accepted, bytes (a city's schedule is a few KB).
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Days a manifest covers from its `from` date.
pub const MANIFEST_DAYS: u32 = 45;

/// SHA-256 of a text, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The number a new version of a document gets: one more than its latest (numbers only
/// increase, a rollback included: stations refuse a manifest whose version does not).
pub fn next_version(latest: Option<u64>) -> u64 {
    latest.map_or(1, |n| n.saturating_add(1))
}

/// Which document a problem is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Document {
    /// The station's own schedule text (what the editor shows).
    Station,
    /// The centre's shared programs document, at this version.
    Programs { version: u64 },
}

impl Document {
    /// How pages name it.
    pub fn label_vi(&self) -> String {
        match self {
            Document::Station => "lịch của trạm".into(),
            Document::Programs { version } => {
                format!("danh sách chương trình chung (phiên bản {version})")
            }
        }
    }
}

/// One problem of a save, located in its document (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub document: Document,
    pub document_vi: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
    pub hint: String,
}

/// The shared programs document in force (its latest published version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPrograms {
    pub version: u64,
    pub text: String,
}

/// A `[[programs]]` table of the shared document: its id and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    id: Option<String>,
    /// 1-based line of its `[[programs]]` header in the shared document.
    first_line: usize,
    text: String,
}

/// Split the shared document at its `[[programs]]` headers (what comes before the first is
/// comments, or an error the check of the document itself reports).
fn chunks(text: &str) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with("[[programs]]") {
            out.push(Chunk {
                id: None,
                first_line: i + 1,
                text: String::new(),
            });
        }
        if let Some(c) = out.last_mut() {
            c.text.push_str(line);
        }
    }
    for c in &mut out {
        if !c.text.ends_with('\n') {
            c.text.push('\n');
        }
        c.id = toml::from_str::<toml::Table>(&c.text).ok().and_then(|t| {
            t.get("programs")?
                .as_array()?
                .first()?
                .get("id")?
                .as_str()
                .map(str::to_string)
        });
    }
    out
}

/// The programs a station text defines and the ones it uses (slot `program`, `program:` items
/// of playlists and relay fallbacks); empty when it does not parse (its own errors say why).
fn programs_of(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut defined = BTreeSet::new();
    let mut used = BTreeSet::new();
    let Ok(t) = toml::from_str::<toml::Table>(text) else {
        return (defined, used);
    };
    for p in t
        .get("programs")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(id) = p.get("id").and_then(|v| v.as_str()) {
            defined.insert(id.to_string());
        }
    }
    let item = |v: &toml::Value, used: &mut BTreeSet<String>| {
        if let Some(id) = v
            .as_str()
            .and_then(|s| s.strip_prefix(crate::schedule::file::PROGRAM_REF_PREFIX))
        {
            used.insert(id.trim().to_string());
        }
    };
    for s in t
        .get("slots")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(id) = s.get("program").and_then(|v| v.as_str()) {
            used.insert(id.to_string());
        }
        for v in s
            .get("play")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            item(v, &mut used);
        }
        for v in s
            .get("relay")
            .and_then(|r| r.get("fallback"))
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            item(v, &mut used);
        }
    }
    (defined, used)
}

/// A station text with the shared programs it uses and does not define appended, and where each
/// appended part came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub text: String,
    /// Lines of the station's own text (merged lines beyond are the shared document's).
    own_lines: usize,
    /// (first merged line, first line in the shared document, lines) of each appended part.
    parts: Vec<(usize, usize, usize)>,
    /// The shared document's version, when any of it was appended.
    pub programs_version: Option<u64>,
}

/// The separator line before the appended shared programs (a TOML comment).
fn separator(version: u64) -> String {
    format!("# --- chương trình chung, phiên bản {version} (do trung tâm thêm vào) ---\n")
}

/// Merge `shared` into `own`: each shared program the station uses but does not define is
/// appended verbatim, so the station's own loader reads one ordinary schedule.
pub fn merge(own: &str, shared: Option<&SharedPrograms>) -> Merged {
    let mut text = own.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let own_lines = text.matches('\n').count();
    let mut m = Merged {
        text,
        own_lines,
        parts: Vec::new(),
        programs_version: None,
    };
    let Some(shared) = shared else { return m };
    let (defined, used) = programs_of(own);
    let wanted: Vec<Chunk> = chunks(&shared.text)
        .into_iter()
        .filter(|c| {
            c.id.as_ref()
                .is_some_and(|id| used.contains(id) && !defined.contains(id))
        })
        .collect();
    if wanted.is_empty() {
        return m;
    }
    m.text.push_str(&separator(shared.version));
    m.programs_version = Some(shared.version);
    for c in wanted {
        let first = m.text.matches('\n').count() + 1;
        let lines = c.text.matches('\n').count();
        m.parts.push((first, c.first_line, lines));
        m.text.push_str(&c.text);
    }
    m
}

impl Merged {
    /// Where merged line `line` is: the station's text, or a line of the shared document.
    fn locate(&self, line: usize, programs_version: u64) -> (Document, usize) {
        if line <= self.own_lines {
            return (Document::Station, line);
        }
        for &(first, doc_first, n) in &self.parts {
            if line >= first && line < first + n {
                return (
                    Document::Programs {
                        version: programs_version,
                    },
                    doc_first + (line - first),
                );
            }
        }
        // The separator or past the end: the end of the station's text.
        (Document::Station, self.own_lines.max(1))
    }
}

/// What a valid save gives.
#[derive(Debug, Clone)]
pub struct Checked {
    pub station: Station,
    pub catalog: AudioCatalog,
    pub merged: Merged,
}

fn problems(errors: ScheduleErrors, locate: impl Fn(usize) -> (Document, usize)) -> Vec<Problem> {
    errors
        .0
        .into_iter()
        .map(|e| {
            let (document, line) = locate(e.line);
            Problem {
                document_vi: document.label_vi(),
                document,
                line,
                column: e.column,
                field: e.field,
                message: e.message,
                hint: e.hint,
            }
        })
        .collect()
}

/// The 1-based line of the top-level `id = …` key (where an id problem is shown).
fn id_line(text: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix("id")
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// Check station `station_id`'s schedule text as `loa check` does, with the shared programs it
/// uses merged in. Audio paths are looked up under `audio_root` through `facts` (full path →
/// facts; `None`: no such file). Every problem is located in its own document.
pub fn check_station(
    station_id: &str,
    own: &str,
    shared: Option<&SharedPrograms>,
    audio_root: &Path,
    today: NaiveDate,
    facts: &mut dyn FnMut(&Path) -> Option<AudioFacts>,
) -> Result<Checked, Vec<Problem>> {
    if own.len() > MAX_TEXT_BYTES {
        return Err(vec![too_large(Document::Station, own.len())]);
    }
    let merged = merge(own, shared);
    let version = merged.programs_version.unwrap_or(0);
    let path = PathBuf::from(format!("{station_id}.toml"));
    let (station, catalog) =
        crate::schedule::load::load_text(&path, &merged.text, audio_root, today, facts)
            .map_err(|e| problems(e, |l| merged.locate(l, version)))?;
    if station.id != station_id {
        return Err(vec![Problem {
            document: Document::Station,
            document_vi: Document::Station.label_vi(),
            line: id_line(own),
            column: 1,
            field: "id".into(),
            message: format!(
                "lịch này là của trạm «{}», không phải của trạm «{station_id}»",
                station.id
            ),
            hint: format!("đặt id = \"{station_id}\" hoặc mở lịch của đúng trạm"),
        }]);
    }
    Ok(Checked {
        station,
        catalog,
        merged,
    })
}

fn too_large(document: Document, len: usize) -> Problem {
    Problem {
        document_vi: document.label_vi(),
        document,
        line: 1,
        column: 1,
        field: String::new(),
        message: format!(
            "văn bản dài {len} byte, quá giới hạn {} byte",
            MAX_TEXT_BYTES
        ),
        hint: "tách bớt phần chú thích hoặc kiểm tra xem có dán nhầm tệp không".into(),
    }
}

/// The header that makes the shared programs document a schedule the validator reads (its
/// programs are checked exactly as a station's are).
const PROGRAMS_HEADER: &str = "id = \"chuong-trinh-chung\"\nname = \"Chương trình chung\"\nkind = \"ward\"\narea_code = \"00000\"\n";

/// Check the shared programs document (version `version` once saved): only `[[programs]]`
/// tables, each valid as in a station's schedule (files exist and decode).
pub fn check_programs(
    text: &str,
    version: u64,
    audio_root: &Path,
    today: NaiveDate,
    facts: &mut dyn FnMut(&Path) -> Option<AudioFacts>,
) -> Result<BTreeSet<String>, Vec<Problem>> {
    let doc = Document::Programs { version };
    if text.len() > MAX_TEXT_BYTES {
        return Err(vec![too_large(doc, text.len())]);
    }
    let header_lines = PROGRAMS_HEADER.matches('\n').count();
    let full = format!("{PROGRAMS_HEADER}{text}");
    let path = PathBuf::from("chuong-trinh-chung.toml");
    let locate = |l: usize| (doc.clone(), l.saturating_sub(header_lines).max(1));
    let (station, _) = crate::schedule::load::load_text(&path, &full, audio_root, today, facts)
        .map_err(|e| problems(e, locate))?;
    // Top-level keys other than programs would be taken as the station's: refuse them.
    if let Ok(t) = toml::from_str::<toml::Table>(text)
        && let Some(k) = t.keys().find(|k| k.as_str() != "programs")
    {
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with(k.as_str()))
            .map_or(1, |i| i + 1);
        return Err(vec![Problem {
            document_vi: doc.label_vi(),
            document: doc,
            line,
            column: 1,
            field: k.clone(),
            message: format!("khóa «{k}» không thuộc danh sách chương trình chung"),
            hint: "tài liệu này chỉ chứa các bảng [[programs]]".into(),
        }]);
    }
    Ok(station.programs.into_keys().collect())
}

/// Whether a station's (merged) schedule text airs library path `path`: for a program's
/// episode of `month`, when a slot names that program with the episode resolving to `path` in
/// that month (the schedule module's `month_episodes`); for a plain placement (`month` is
/// `None`), when the text names the path as a string. Pure; a text that does not parse uses
/// nothing.
pub fn uses_library_path(station: &str, text: &str, path: &str, month: Option<NaiveDate>) -> bool {
    match month {
        Some(m) => {
            let file = PathBuf::from(format!("{station}.toml"));
            crate::schedule::file::month_episodes(&file, text, m)
                .iter()
                .any(|e| e.path == Path::new(path))
        }
        None => text.contains(&format!("\"{path}\"")) || text.contains(&format!("'{path}'")),
    }
}

/// The `episodes` patterns of the shared programs document (id → pattern), read as a station's
/// `[[programs]]` are; empty when it does not parse.
pub fn shared_program_episodes(text: &str) -> std::collections::HashMap<String, String> {
    crate::schedule::file::program_episodes(
        Path::new("chuong-trinh-chung.toml"),
        &format!("{PROGRAMS_HEADER}{text}"),
    )
}

/// The titles of the shared programs document's programs (id → title); empty when it does not
/// parse.
pub fn shared_program_titles(text: &str) -> std::collections::HashMap<String, String> {
    crate::schedule::file::program_titles(
        Path::new("chuong-trinh-chung.toml"),
        &format!("{PROGRAMS_HEADER}{text}"),
    )
}

/// One line of a unified diff, as the version page shows it (escaped by the template).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    /// `hunk` (an `@@ … @@` header), `add`, `del` or `same`.
    pub kind: &'static str,
    /// The line with its `+`/`-`/` ` sign, without its line end.
    pub text: String,
}

/// The unified diff (3 lines of context) from `old` to `new`, line by line (the `similar`
/// crate's). Empty when the texts are equal.
pub fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    use similar::{ChangeTag, TextDiff};
    let d = TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    for hunk in d.unified_diff().context_radius(3).iter_hunks() {
        out.push(DiffLine {
            kind: "hunk",
            text: hunk.header().to_string(),
        });
        for c in hunk.iter_changes() {
            let (kind, sign) = match c.tag() {
                ChangeTag::Insert => ("add", '+'),
                ChangeTag::Delete => ("del", '-'),
                ChangeTag::Equal => ("same", ' '),
            };
            let v = c.value();
            let v = v.strip_suffix('\n').unwrap_or(v);
            let v = v.strip_suffix('\r').unwrap_or(v);
            out.push(DiffLine {
                kind,
                text: format!("{sign}{v}"),
            });
        }
    }
    out
}

/// A library file as the manifest needs it: content hash, size, and what decoding found.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryFile {
    pub sha256: String,
    pub size: u64,
    pub facts: AudioFacts,
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The schedule of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestSchedule {
    pub sha256: String,
    pub text: String,
}

/// The body of a manifest envelope (design14.md, "Manifest"); field order is the serialised
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestBody {
    pub v: u32,
    pub station: String,
    pub version: u64,
    pub issued_at: String,
    pub from: String,
    pub days: u32,
    pub schedule: ManifestSchedule,
    pub files: Vec<ManifestFile>,
}

impl ManifestBody {
    /// The canonical bytes (compact JSON in field order) that are signed and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a manifest cannot be built; nothing is published.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The schedule does not validate against the library.
    #[error("the schedule does not validate: {0}")]
    Invalid(ScheduleErrors),
    /// A file the schedule needs is not in the library.
    #[error("`{0}` is needed but the centre's library does not hold it")]
    Missing(String),
    /// A file the schedule needs does not decode.
    #[error("`{0}` is needed but does not decode: {1}")]
    Undecodable(String, String),
}

/// The manifest of `station`'s version `version`: its (merged) schedule text and every library
/// file the schedule needs (`library`: a relative path → the library's file there, e.g. a map's
/// lookup) — for validation on `from` (what the station's loader looks up) and
/// for every airing of the `days` days from `from` (the schedule module's own `audio_needs` and
/// `expand`) — sorted by path, each with its hash and size.
pub fn build_manifest(
    station: &str,
    version: u64,
    issued_at: DateTime<Utc>,
    text: &str,
    library: &mut dyn FnMut(&Path) -> Option<LibraryFile>,
    from: NaiveDate,
    days: u32,
) -> Result<ManifestBody, ManifestError> {
    let root = Path::new("");
    let mut known: BTreeMap<PathBuf, Option<LibraryFile>> = BTreeMap::new();
    let mut get = |p: &Path| {
        known
            .entry(p.to_path_buf())
            .or_insert_with(|| library(p))
            .clone()
    };
    let mut lookup = |full: &Path| get(full).map(|f| f.facts);
    let path = PathBuf::from(format!("{station}.toml"));
    let (st, catalog) = crate::schedule::load::load_text(&path, text, root, from, &mut lookup)
        .map_err(ManifestError::Invalid)?;
    let raw = crate::schedule::file::parse_raw(&path, text).map_err(ManifestError::Invalid)?;
    let mut needed: BTreeSet<PathBuf> = crate::schedule::file::audio_needs(&raw, from);
    let to = from + chrono::Duration::days(i64::from(days.max(1)) - 1);
    for a in crate::schedule::expand(&st, &catalog, from, to) {
        needed.extend(a.items.iter().cloned());
    }
    let mut files = Vec::with_capacity(needed.len());
    for p in needed {
        let name = p.to_string_lossy().into_owned();
        let f = get(&p).ok_or_else(|| ManifestError::Missing(name.clone()))?;
        match &f.facts {
            AudioFacts::Playable { .. } => {}
            AudioFacts::Undecodable(why) | AudioFacts::NotAFile(why) => {
                return Err(ManifestError::Undecodable(name, why.clone()));
            }
        }
        files.push(ManifestFile {
            path: name,
            sha256: f.sha256.clone(),
            size: f.size,
        });
    }
    Ok(ManifestBody {
        v: 1,
        station: station.to_string(),
        version,
        issued_at: issued_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        from: from.format("%Y-%m-%d").to_string(),
        days,
        schedule: ManifestSchedule {
            sha256: sha256_hex(text),
            text: text.to_string(),
        },
        files,
    })
}

/// A version's activation: from `at` it is the station's version in force (until the next
/// version's activation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activation {
    pub version: u64,
    pub at: DateTime<Utc>,
}

/// The span `[from, to)` of a period that one version governs ([`in_force`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub version: u64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The windows `[from, to)` each version governs within `[start, end)`, in time order, covering
/// the span without gap or overlap (empty when there is no version or the span is empty).
///
/// A version is in force from its activation until the next version's (versions in number
/// order; an activation earlier than its predecessor's — a clock set back — counts from the
/// predecessor's). Before the first activation the centre knows no schedule: the first version
/// governs that part (what the station was planned under before its schedule moved to the centre
/// is not known). A rollback is a new version like any other, so it governs only from its own
/// activation.
pub fn in_force(versions: &[Activation], start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Window> {
    let mut sorted: Vec<Activation> = versions.to_vec();
    sorted.sort_by_key(|a| a.version);
    let mut out: Vec<Window> = Vec::new();
    if start >= end {
        return out;
    }
    // Effective activation of each version: never before its predecessor's.
    let mut effective: Vec<(u64, DateTime<Utc>)> = Vec::with_capacity(sorted.len());
    for a in sorted {
        let at = match effective.last() {
            Some(&(_, prev)) if a.at < prev => prev,
            _ => a.at,
        };
        effective.push((a.version, at));
    }
    for (i, &(version, at)) in effective.iter().enumerate() {
        let from = if i == 0 { start } else { at.max(start) };
        let to = effective.get(i + 1).map_or(end, |&(_, next)| next.min(end));
        if from < to {
            out.push(Window { version, from, to });
        }
    }
    out
}
