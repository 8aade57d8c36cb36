//! Text-to-speech for bulletins (issue #15, docs/bulletins.md, "Text-to-speech"): a bulletin
//! that has a text and no recording is read by espeak-ng's Vietnamese voice
//! (`espeak-ng -v vi -b 1 -w <tmp>.wav --stdin`), and the WAV enters the content library the way
//! an upload does — hashed (SHA-256) through the library's `Receiver` (its size limit), decoded to
//! its end and measured (duration, EBU R128 loudness, true peak; the facts stored for the plan
//! cache), stored under `content/<aa>/<sha256>` — so the bulletin names it like any content and
//! stations fetch and verify it like any content.
//!
//! **Invariant:** the text reaches espeak-ng only on its standard input — never as an argument,
//! never through a shell — and only once it is 1–[`MAX_TEXT_CHARS`] characters with no control
//! character other than line breaks and tabs; the child runs at most [`TtsConfig::timeout`] and is
//! killed after it (and when the request is dropped); what it wrote enters the library whole or
//! not at all (its temp file is removed either way). A missing espeak-ng is said as such, in
//! Vietnamese, with the command that installs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::audit;
use super::http::AppState;
use super::library::{Content, Library, LibraryError, Meta};
pub use crate::bulletin::body::MAX_TEXT_CHARS;

/// The program run when no other is configured (`loa collector --espeak-ng`), looked up on
/// `PATH`; Debian package `espeak-ng`.
pub const DEFAULT_BINARY: &str = "espeak-ng";
/// espeak-ng's Vietnamese voice.
pub const VOICE: &str = "vi";
/// Longest run of espeak-ng: 5,000 characters take it about 0.3 s on a 2-core machine (325 s of
/// speech), so a minute means a stuck child, not a long text.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// The content-library category of synthesised audio.
pub const CATEGORY: &str = "tts";
/// Most bytes of espeak-ng's error output kept (for the log).
const MAX_STDERR_BYTES: u64 = 16 * 1024;
/// Title prefix of a synthesised content in the library.
const TITLE_PREFIX: &str = "Giọng đọc tổng hợp: ";

/// Which program reads the text, and for how long at most.
#[derive(Debug, Clone)]
pub struct TtsConfig {
    /// espeak-ng: a name looked up on `PATH`, or a path.
    pub binary: PathBuf,
    pub timeout: Duration,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            binary: PathBuf::from(DEFAULT_BINARY),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        }
    }
}

/// Why a text was not read (Vietnamese: shown to the admin as is; the English detail of a
/// failure is for the log only).
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// espeak-ng is not installed (or not where `--espeak-ng` says).
    #[error(
        "chưa cài espeak-ng trên máy chủ trung tâm (không tìm thấy «{binary}»): apt-get install espeak-ng"
    )]
    Missing { binary: String },
    #[error("văn bản trống: cần nội dung để đọc")]
    EmptyText,
    #[error(
        "văn bản dài {} ký tự, quá giới hạn {} ký tự",
        crate::web::fmt::num_vi(*chars as i64),
        crate::web::fmt::num_vi(MAX_TEXT_CHARS as i64)
    )]
    TooLong { chars: usize },
    #[error("văn bản có ký tự điều khiển (chỉ cho phép xuống dòng và tab)")]
    ControlCharacter,
    /// espeak-ng ran and failed (its exit status; its own English words in `detail`, logged).
    #[error("espeak-ng không đọc được văn bản ({status}); xem nhật ký của máy chủ")]
    Failed { status: String, detail: String },
    #[error("espeak-ng chạy quá {secs} giây nên đã bị dừng; không có âm thanh")]
    Timeout { secs: u64 },
    /// What espeak-ng wrote is not audio the library takes (English detail logged).
    #[error("espeak-ng không tạo ra tệp âm thanh hợp lệ; xem nhật ký của máy chủ")]
    BadOutput { detail: String },
    #[error("máy chủ chạy không có thư viện nội dung nên không lưu được giọng đọc")]
    NoLibrary,
    /// The disk or the database failed (detail logged, never shown).
    #[error("lỗi nội bộ khi tạo giọng đọc: {0}")]
    Internal(String),
}

impl TtsError {
    /// The HTTP status of a send refused for this.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode as S;
        match self {
            TtsError::EmptyText | TtsError::TooLong { .. } | TtsError::ControlCharacter => {
                S::UNPROCESSABLE_ENTITY
            }
            TtsError::Missing { .. } | TtsError::NoLibrary => S::SERVICE_UNAVAILABLE,
            TtsError::Failed { .. } | TtsError::Timeout { .. } | TtsError::BadOutput { .. } => {
                S::BAD_GATEWAY
            }
            TtsError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The English detail for the log, when there is one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            TtsError::Failed { detail, .. } | TtsError::BadOutput { detail } => Some(detail),
            TtsError::Internal(d) => Some(d),
            _ => None,
        }
    }
}

impl From<LibraryError> for TtsError {
    fn from(e: LibraryError) -> Self {
        match e {
            LibraryError::Undecodable { detail, .. } => TtsError::BadOutput { detail },
            LibraryError::TooLarge { limit } => TtsError::BadOutput {
                detail: format!("the WAV is larger than the upload limit of {limit} bytes"),
            },
            other => TtsError::Internal(other.to_string()),
        }
    }
}

/// Check a text before it is read: 1–[`MAX_TEXT_CHARS`] characters, not only spaces, no
/// control character other than `\n`, `\r`, `\t` (pure).
pub fn check_text(text: &str) -> Result<(), TtsError> {
    if text.trim().is_empty() {
        return Err(TtsError::EmptyText);
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(TtsError::TooLong { chars });
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(TtsError::ControlCharacter);
    }
    Ok(())
}

/// The library title of the content read from `text`: [`TITLE_PREFIX`] and the text's start,
/// on one line, within the library's 200 bytes (pure).
pub fn title_of(text: &str) -> String {
    let mut title = String::from(TITLE_PREFIX);
    let max = super::library::MAX_TITLE_BYTES - "…".len();
    let mut cut = false;
    for w in text.split_whitespace() {
        let sep = usize::from(title.len() > TITLE_PREFIX.len());
        if title.len() + sep + w.len() > max {
            // A word longer than the room left is cut at a character boundary.
            if title.len() == TITLE_PREFIX.len() {
                for c in w.chars() {
                    if title.len() + c.len_utf8() > max {
                        break;
                    }
                    title.push(c);
                }
            }
            cut = true;
            break;
        }
        if sep == 1 {
            title.push(' ');
        }
        title.push_str(w);
    }
    if cut {
        title.push('…');
    }
    title
}

/// Removes a file when dropped (espeak-ng's output, whatever happens).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Read `text` with espeak-ng's Vietnamese voice into the WAV file `out`: the text on the
/// child's standard input, the child killed after `cfg.timeout`. The text is checked first
/// ([`check_text`]).
pub async fn speak_to_file(cfg: &TtsConfig, text: &str, out: &Path) -> Result<(), TtsError> {
    check_text(text)?;
    let binary = cfg.binary.display().to_string();
    let mut child = tokio::process::Command::new(&cfg.binary)
        // -b 1: the input is UTF-8; --stdin: the text comes on standard input, read to its end.
        .args(["-v", VOICE, "-b", "1", "-w"])
        .arg(out)
        .arg("--stdin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TtsError::Missing {
                binary: binary.clone(),
            },
            _ => TtsError::Failed {
                status: "không chạy được".into(),
                detail: format!("spawning {binary}: {e}"),
            },
        })?;
    let mut stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let run = async {
        if let Some(mut s) = stdin.take() {
            // A child that exits without reading everything closes the pipe: its exit status
            // says what went wrong, not the write.
            let _ = s.write_all(text.as_bytes()).await;
            let _ = s.shutdown().await;
        }
        let mut err = Vec::new();
        if let Some(s) = stderr {
            let _ = s.take(MAX_STDERR_BYTES).read_to_end(&mut err).await;
        }
        let status = child.wait().await;
        (status, err)
    };
    let (status, err) = match tokio::time::timeout(cfg.timeout, run).await {
        Ok(v) => v,
        Err(_) => {
            // `child` is dropped with the future: kill_on_drop stops it.
            return Err(TtsError::Timeout {
                secs: cfg.timeout.as_secs(),
            });
        }
    };
    let status = status.map_err(|e| TtsError::Internal(format!("waiting for {binary}: {e}")))?;
    let stderr = String::from_utf8_lossy(&err).trim().to_string();
    if !status.success() {
        return Err(TtsError::Failed {
            status: match status.code() {
                Some(c) => format!("mã thoát {c}"),
                None => "bị dừng bởi tín hiệu".into(),
            },
            detail: format!("{binary} exited with {status}: {stderr}"),
        });
    }
    Ok(())
}

/// Read `text` and put the WAV into library `lib` as `uploader` at `now`: the content (and
/// whether it is new: the same text read again is the same bytes, already held).
pub async fn synthesise_into(
    lib: &Arc<Library>,
    cfg: &TtsConfig,
    text: &str,
    uploader: &str,
    now: DateTime<Utc>,
) -> Result<(Content, bool), TtsError> {
    check_text(text)?;
    let mut name = [0u8; 12];
    getrandom::fill(&mut name).map_err(|e| TtsError::Internal(format!("random name: {e}")))?;
    let wav = TempFile(
        lib.config()
            .dir
            .join("tmp")
            .join(format!("tts-{}.wav", hex::encode(name))),
    );
    speak_to_file(cfg, text, &wav.0).await?;
    // Through the upload's own receiver: hashed, within the size limit, fsynced.
    let mut rx = lib.receiver().await?;
    let mut file = tokio::fs::File::open(&wav.0)
        .await
        .map_err(|e| TtsError::BadOutput {
            detail: format!("espeak-ng wrote no file: {e}"),
        })?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| TtsError::Internal(format!("reading the WAV: {e}")))?;
        if n == 0 {
            break;
        }
        rx.push(&buf[..n]).await?;
    }
    drop(file);
    let received = rx.finish().await?;
    drop(wav);
    let meta = Meta::new(&title_of(text), CATEGORY)?;
    let lib = lib.clone();
    let uploader = uploader.to_string();
    tokio::task::spawn_blocking(move || -> Result<(Content, bool), TtsError> {
        let measured = super::library::measure(received.path(), &received.sha256)?;
        Ok(lib.admit(received, &measured, &meta, &uploader, now)?)
    })
    .await
    .map_err(|e| TtsError::Internal(format!("blocking task: {e}")))?
}

/// Read `text` with the collector's espeak-ng into its content library, on behalf of `actor`
/// (from `address`); a new content is in the audit log as an upload. What the send API and the
/// compose page call. The content's `sha256` names it in a bulletin (with `synthetic: true`).
pub async fn synthesise(
    state: &AppState,
    text: &str,
    actor: &str,
    address: &str,
) -> Result<Content, TtsError> {
    let lib = state.library().cloned().ok_or(TtsError::NoLibrary)?;
    let now = state.now();
    let (content, new) = synthesise_into(&lib, state.tts(), text, actor, now)
        .await
        .inspect_err(|e| match e.detail() {
            Some(d) => tracing::warn!(error = %d, "text-to-speech failed: {e}"),
            None => tracing::info!("text-to-speech refused: {e}"),
        })?;
    if new {
        let mut e = state.audit_entry(
            actor,
            address,
            audit::action::CONTENT_UPLOAD,
            &content.sha256,
        );
        e.after = Some(format!(
            "{} ({}, {}, {} byte)",
            content.title,
            CATEGORY,
            super::library::web::mm_ss(content.duration_secs),
            content.size
        ));
        state.audit(e).await;
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_checked_before_anything_runs() {
        assert!(check_text("Cảnh báo bão số 5.\nBà con di dời ngay.\t").is_ok());
        assert!(matches!(check_text("  \n "), Err(TtsError::EmptyText)));
        assert!(matches!(
            check_text(&"a".repeat(MAX_TEXT_CHARS + 1)),
            Err(TtsError::TooLong { chars }) if chars == MAX_TEXT_CHARS + 1
        ));
        // Characters, not bytes: 5,000 Vietnamese letters pass.
        assert!(check_text(&"ư".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(matches!(
            check_text("a\u{0}b"),
            Err(TtsError::ControlCharacter)
        ));
    }

    #[test]
    fn titles_fit_the_library() {
        assert_eq!(
            title_of("Cảnh báo\nbão  số 5"),
            "Giọng đọc tổng hợp: Cảnh báo bão số 5"
        );
        for text in [
            "ừ ".repeat(400),
            "ừ".repeat(400),
            "Bà con vùng ven biển ".repeat(40),
        ] {
            let t = title_of(&text);
            assert!(t.len() <= super::super::library::MAX_TITLE_BYTES, "{t}");
            assert!(t.ends_with('…'), "{t}");
            assert!(Meta::new(&t, CATEGORY).is_ok(), "{t}");
        }
    }

    #[tokio::test]
    async fn a_missing_binary_is_named_with_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TtsConfig {
            binary: dir.path().join("espeak-ng"),
            ..TtsConfig::default()
        };
        let e = speak_to_file(&cfg, "xin chào", &dir.path().join("o.wav"))
            .await
            .unwrap_err();
        assert!(matches!(e, TtsError::Missing { .. }), "{e:?}");
        assert!(
            e.to_string().contains("chưa cài espeak-ng")
                && e.to_string().contains("apt-get install espeak-ng"),
            "{e}"
        );
    }
}
