//! Bulletins the centre sends (issue #15, docs/bulletins.md), the collector's side: compose one
//! from a content-library item and a target (every station, an area-code prefix, a list),
//! sign it with the centre key ([`Bulletin::sign_by`]), store the signed envelope, cancel it (a
//! signed cancel), and hand each station what is meant for it
//! (`GET /api/v1/stations/{id}/bulletins`, and the ids pending in its heartbeat answer).
//!
//! **Invariant:** the stored signed envelope is the bulletin; the other columns are copies of its
//! fields for queries, written from the same [`Bulletin`] in the same insert. Only admins send or
//! cancel (`authz::ROUTES`); every send and cancel is in the audit log; a refused send stores
//! nothing. A station is handed only bulletins still valid whose targets include it, by the
//! same [`crate::bulletin::Targets::includes`] it checks itself; for a cancelled bulletin, only
//! its signed cancel.

use axum::Router;
use axum::extract::{Extension, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::authz::{self, Principal};
use super::http::AppState;
use super::registry::Registry;
use crate::bulletin::{AudioRef, Bulletin, BulletinError, BulletinId, Cancel, Repeats, Targets};
use crate::centre::signed::Envelope;
use crate::schedule::Priority;

/// Audit action codes (Vietnamese texts in `audit::action_vi`).
pub mod action {
    /// An admin sent a bulletin.
    pub const SEND: &str = "bulletin_send";
    /// An admin cancelled a bulletin.
    pub const CANCEL: &str = "bulletin_cancel";
}

/// Largest request body of a send.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What an admin asks to send (`POST /api/v1/bulletins`, `loa bulletin send`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub title: String,
    /// The content library item's SHA-256; empty (or absent) when the bulletin is to be read
    /// from `text` by text-to-speech (`collector::tts`: the WAV enters the library, the
    /// bulletin is marked `synthetic`).
    #[serde(default)]
    pub audio: String,
    pub priority: Priority,
    /// `all`, `area:<digits>` or `stations:<id>,<id>,…`.
    pub to: String,
    /// The window's start; now when absent.
    #[serde(default)]
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: DateTime<Utc>,
    /// Airings (1 when absent).
    #[serde(default = "one")]
    pub repeats: u32,
    /// Minutes between airings' starts (0 when absent; required above one airing).
    #[serde(default)]
    pub interval_mins: u32,
    /// The announcement's text, when one was typed; read by espeak-ng when `audio` is empty.
    #[serde(default)]
    pub text: Option<String>,
}

fn one() -> u32 {
    1
}

/// Why a send or cancel was refused (Vietnamese: shown to the admin as is); `field` names the
/// request field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("audio: mã SHA-256 «{0}» không hợp lệ (64 chữ số thập lục phân thường)")]
    BadAudio(String),
    #[error("audio: không có tệp {0} trong thư viện nội dung")]
    UnknownAudio(String),
    #[error(
        "audio: cần mã SHA-256 của một tệp trong thư viện nội dung, hoặc văn bản (text) để đọc bằng giọng đọc tổng hợp"
    )]
    NoAudio,
    /// The text could not be read by text-to-speech (`collector::tts`).
    #[error("text: {0}")]
    Tts(#[from] super::tts::TtsError),
    #[error(
        "to: «{0}» không hợp lệ; viết all, area:<mã vùng> (ví dụ area:79) hoặc stations:<mã trạm>,<mã trạm>"
    )]
    BadTargets(String),
    #[error("to: không có trạm {} trong danh sách trạm", .0.join(", "))]
    UnknownStations(Vec<String>),
    #[error("to: không có trạm nào có mã vùng bắt đầu bằng {0}")]
    EmptyArea(String),
    #[error("{field}: bản tin không hợp lệ: {why}")]
    Invalid { field: String, why: String },
    #[error("máy chủ không có khóa trung tâm nên không ký được bản tin")]
    NoCentreKey,
    #[error("không có bản tin {0}")]
    NotFound(String),
    #[error("bản tin {0} đã bị hủy trước đó")]
    AlreadyCancelled(String),
    #[error("lỗi nội bộ: {0}")]
    Internal(String),
}

impl SendError {
    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            SendError::BadAudio(_) | SendError::UnknownAudio(_) | SendError::NoAudio => {
                Some("audio")
            }
            SendError::Tts(_) => Some("text"),
            SendError::BadTargets(_) | SendError::UnknownStations(_) | SendError::EmptyArea(_) => {
                Some("to")
            }
            SendError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            SendError::NotFound(_) => StatusCode::NOT_FOUND,
            SendError::AlreadyCancelled(_) => StatusCode::CONFLICT,
            SendError::NoCentreKey => StatusCode::SERVICE_UNAVAILABLE,
            SendError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SendError::Tts(e) => e.status(),
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl From<rusqlite::Error> for SendError {
    fn from(e: rusqlite::Error) -> Self {
        SendError::Internal(format!("database: {e}"))
    }
}

/// The request's field named by a [`BulletinError`]'s field (the body's names differ).
fn request_field(body_field: &str) -> &'static str {
    match body_field.split('.').next().unwrap_or("") {
        "title" => "title",
        "not_before" => "not_before",
        "not_after" | "created_at" => "not_after",
        "repeats" if body_field.ends_with("interval_secs") => "interval_mins",
        "repeats" => "repeats",
        "targets" => "to",
        "audio" => "audio",
        "text" | "synthetic" => "text",
        _ => "bulletin",
    }
}

impl From<BulletinError> for SendError {
    fn from(e: BulletinError) -> Self {
        match e {
            BulletinError::Field { field, why } => SendError::Invalid {
                field: request_field(&field).to_string(),
                why: format!("trường {field}: {why}"),
            },
            other => SendError::Invalid {
                field: "bulletin".into(),
                why: other.to_string(),
            },
        }
    }
}

/// Parse `to` against the registry: every named station must exist (all unknown ones named),
/// an area prefix must match at least one station.
pub fn parse_targets(to: &str, registry: &Registry) -> Result<Targets, SendError> {
    let to = to.trim();
    if to == "all" {
        return Ok(Targets::All);
    }
    if let Some(p) = to.strip_prefix("area:") {
        let p = p.trim();
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SendError::BadTargets(to.to_string()));
        }
        if !registry
            .stations
            .values()
            .any(|s| s.area_code.starts_with(p))
        {
            return Err(SendError::EmptyArea(p.to_string()));
        }
        return Ok(Targets::Area(p.to_string()));
    }
    if let Some(list) = to.strip_prefix("stations:") {
        let mut ids: Vec<String> = list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if ids.is_empty() {
            return Err(SendError::BadTargets(to.to_string()));
        }
        ids.sort();
        ids.dedup();
        let unknown: Vec<String> = ids
            .iter()
            .filter(|id| registry.get(id).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(SendError::UnknownStations(unknown));
        }
        return Ok(Targets::Stations(ids));
    }
    Err(SendError::BadTargets(to.to_string()))
}

/// Compose the bulletin `req` asks for (pure): `audio` is the library's item (size, duration in
/// seconds) or `None` when the library has none with that hash.
pub fn compose(
    req: &SendRequest,
    registry: &Registry,
    audio: Option<(u64, f64)>,
    id: BulletinId,
    now: DateTime<Utc>,
) -> Result<Bulletin, SendError> {
    let sha = req.audio.trim();
    if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(SendError::BadAudio(sha.to_string()));
    }
    let (size, secs) = audio.ok_or_else(|| SendError::UnknownAudio(sha.to_string()))?;
    let targets = parse_targets(&req.to, registry)?;
    let b = Bulletin {
        v: 1,
        id,
        created_at: now,
        title: req.title.trim().to_string(),
        priority: req.priority,
        targets,
        not_before: req.not_before.unwrap_or(now),
        not_after: req.not_after,
        repeats: Repeats {
            count: req.repeats,
            interval_secs: req.interval_mins.saturating_mul(60),
        },
        audio: AudioRef {
            sha256: sha.to_string(),
            size,
            duration_ms: ((secs * 1000.0).round() as u64).max(1),
        },
        text: req.text.clone().filter(|t| !t.trim().is_empty()),
        synthetic: false,
    };
    b.check()?;
    Ok(b)
}

/// Bulletin `b` marked as read from its text by text-to-speech (checked again: a synthetic
/// bulletin must carry the text it was read from).
pub fn mark_synthetic(mut b: Bulletin) -> Result<Bulletin, BulletinError> {
    b.synthetic = true;
    b.check()?;
    Ok(b)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How targets are written in the table, the list and the audit log (`to`'s own spelling).
pub fn targets_text(t: &Targets) -> String {
    match t {
        Targets::All => "all".into(),
        Targets::Area(p) => format!("area:{p}"),
        Targets::Stations(ids) => format!("stations:{}", ids.join(",")),
    }
}

fn priority_code(p: Priority) -> &'static str {
    match p {
        Priority::Normal => "normal",
        Priority::Priority => "priority",
        Priority::Emergency => "emergency",
    }
}

/// Vietnamese name of a priority (the audit log, the command line).
pub fn priority_vi(p: &str) -> &'static str {
    match p {
        "emergency" => "khẩn cấp",
        "priority" => "ưu tiên",
        _ => "thường",
    }
}

/// Store bulletin `b` signed as `env`, sent by `by`.
pub fn insert(conn: &Connection, b: &Bulletin, env: &Envelope, by: &str) -> Result<(), SendError> {
    conn.execute(
        "INSERT INTO bulletins (id, envelope, title, priority, targets, audio_sha256,
            not_before_unix_ms, not_after_unix_ms, repeats, interval_secs, created_by,
            created_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            b.id.to_hex(),
            env.to_json(),
            b.title,
            priority_code(b.priority),
            targets_text(&b.targets),
            b.audio.sha256,
            ms(b.not_before),
            ms(b.not_after),
            b.repeats.count,
            b.repeats.interval_secs,
            by,
            ms(b.created_at),
        ],
    )?;
    Ok(())
}

/// A stored bulletin as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub title: String,
    pub priority: String,
    pub to: String,
    pub audio: String,
    pub not_before: String,
    pub not_after: String,
    pub repeats: u32,
    pub interval_secs: u32,
    pub created_by: String,
    pub created_at: String,
    pub cancelled_by: Option<String>,
    pub cancelled_at: Option<String>,
}

/// Every bulletin, newest first.
pub fn list(conn: &Connection) -> Result<Vec<Listed>, SendError> {
    let mut st = conn.prepare(
        "SELECT id, title, priority, targets, audio_sha256, not_before_unix_ms,
            not_after_unix_ms, repeats, interval_secs, created_by, created_unix_ms,
            cancelled_by, cancelled_unix_ms
         FROM bulletins ORDER BY created_unix_ms DESC, id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Listed {
            id: r.get(0)?,
            title: r.get(1)?,
            priority: r.get(2)?,
            to: r.get(3)?,
            audio: r.get(4)?,
            not_before: rfc3339(at_ms(r.get(5)?)),
            not_after: rfc3339(at_ms(r.get(6)?)),
            repeats: r.get(7)?,
            interval_secs: r.get(8)?,
            created_by: r.get(9)?,
            created_at: rfc3339(at_ms(r.get(10)?)),
            cancelled_by: r.get(11)?,
            cancelled_at: r.get::<_, Option<i64>>(12)?.map(|v| rfc3339(at_ms(v))),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the exports name bulletins `ids` by (`report::RecordSource::bulletins`): title, airings
/// asked for, and whether the audio was read by text-to-speech (from the signed bulletin itself);
/// an id not in the table is left out.
pub fn report_facts(
    conn: &Connection,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, crate::report::BulletinInfo>, rusqlite::Error> {
    let mut st =
        conn.prepare_cached("SELECT title, repeats, envelope FROM bulletins WHERE id = ?1")?;
    let mut out = std::collections::HashMap::new();
    for id in ids {
        let row: Option<(String, u32, String)> = st
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((title, repeats, env)) = row else {
            continue;
        };
        // The stored envelope was signed here from a checked bulletin; one that does not read
        // back is logged and named without its voice.
        let synthetic = match Envelope::decode(env.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|e| Bulletin::decode(&e.body).map_err(|e| e.to_string()))
        {
            Ok(b) => b.synthetic,
            Err(e) => {
                tracing::error!(bulletin = %id, error = %e, "stored bulletin unreadable");
                false
            }
        };
        out.insert(
            id.to_string(),
            crate::report::BulletinInfo {
                title,
                repeats,
                synthetic,
            },
        );
    }
    Ok(out)
}

/// Record the cancel of bulletin `id` (its signed envelope `env`) by `by` at `at`; the
/// bulletin's title. A bulletin cancelled already keeps its first cancel.
pub fn cancel(
    conn: &Connection,
    id: &str,
    env: &Envelope,
    by: &str,
    at: DateTime<Utc>,
) -> Result<String, SendError> {
    let row: Option<(String, Option<i64>)> = conn
        .query_row(
            "SELECT title, cancelled_unix_ms FROM bulletins WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((title, cancelled)) = row else {
        return Err(SendError::NotFound(id.to_string()));
    };
    if cancelled.is_some() {
        return Err(SendError::AlreadyCancelled(id.to_string()));
    }
    conn.execute(
        "UPDATE bulletins SET cancelled_by = ?2, cancelled_unix_ms = ?3, cancel_envelope = ?4
         WHERE id = ?1 AND cancelled_unix_ms IS NULL",
        params![id, by, ms(at), env.to_json()],
    )?;
    Ok(title)
}

/// What a station is handed: the signed envelopes of the bulletins still valid at `now` that
/// target it (not cancelled), and the signed cancels of those cancelled.
#[derive(Debug, Default)]
pub struct ForStation {
    pub bulletins: Vec<(String, Envelope)>,
    pub cancels: Vec<(String, Envelope)>,
}

/// The bulletins for station `station` (area code `area`) at `now`.
pub fn for_station(
    conn: &Connection,
    station: &str,
    area: &str,
    now: DateTime<Utc>,
) -> Result<ForStation, SendError> {
    let mut st = conn.prepare(
        "SELECT id, envelope, cancel_envelope FROM bulletins
         WHERE not_after_unix_ms > ?1 ORDER BY created_unix_ms, id",
    )?;
    let rows = st.query_map([ms(now)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut out = ForStation::default();
    for row in rows {
        let (id, env, cancel) = row?;
        // What was stored was signed here from a checked bulletin; one that does not read back
        // is logged and skipped, never handed out.
        let env = match Envelope::decode(env.as_bytes()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(bulletin = %id, error = %e, "stored bulletin envelope unreadable");
                continue;
            }
        };
        let b = match Bulletin::decode(&env.body) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(bulletin = %id, error = %e, "stored bulletin body unreadable");
                continue;
            }
        };
        if !b.targets.includes(station, area) {
            continue;
        }
        match cancel {
            Some(c) => match Envelope::decode(c.as_bytes()) {
                Ok(c) => out.cancels.push((id, c)),
                Err(e) => {
                    tracing::error!(bulletin = %id, error = %e, "stored cancel envelope unreadable")
                }
            },
            None => out.bulletins.push((id, env)),
        }
    }
    Ok(out)
}

/// The audit log's description of a bulletin.
fn describe(b: &Bulletin) -> String {
    let every = if b.repeats.count > 1 {
        format!(
            ", cách {} phút",
            Duration::seconds(i64::from(b.repeats.interval_secs)).num_minutes()
        )
    } else {
        String::new()
    };
    let synthetic = if b.synthetic {
        " (giọng đọc tổng hợp)"
    } else {
        ""
    };
    format!(
        "«{}»; mức: {}; đến: {}; hiệu lực {} – {}; phát {} lần{every}; âm thanh sha256 {}{synthetic}",
        b.title,
        priority_vi(priority_code(b.priority)),
        targets_text(&b.targets),
        super::audit::when_vi(b.not_before),
        super::audit::when_vi(b.not_after),
        b.repeats.count,
        b.audio.sha256,
    )
}

fn refusal(e: &SendError, nothing: &str) -> Response {
    let internal = match e {
        SendError::Internal(m) => Some(m.as_str()),
        SendError::Tts(t @ super::tts::TtsError::Internal(_)) => t.detail(),
        _ => None,
    };
    if let Some(m) = internal {
        tracing::error!(error = %m, "bulletins");
        let text = format!("Lỗi nội bộ; {nothing}. Xem nhật ký của máy chủ.");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": text, "error_vi": text })),
        )
            .into_response();
    }
    let text = format!("{e}. {}", capitalise(nothing));
    let mut body = json!({ "error": text, "error_vi": text });
    if let Some(f) = e.field() {
        body["field"] = json!(f);
    }
    (e.status(), axum::Json(body)).into_response()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Compose, sign, store and audit the bulletin `send` asks for, as `who` from `address`: the one
/// path of `POST /api/v1/bulletins` and the compose page (`collector::bulletin_pages`). With no
/// audio but a text, the text is read by espeak-ng into the library first (`collector::tts`)
/// and the bulletin is marked synthetic. A refused send stores nothing.
pub async fn send_as(
    state: &AppState,
    who: &Principal,
    address: &str,
    mut send: SendRequest,
) -> Result<(Bulletin, Envelope), SendError> {
    let Some(signer) = state.centre().cloned() else {
        return Err(SendError::NoCentreKey);
    };
    let id = BulletinId::random().map_err(|e| SendError::Internal(format!("random id: {e}")))?;
    // No recording but a text: checked first with a stand-in audio (a refused send runs no
    // espeak-ng and stores nothing), then read into the library (`collector::tts`).
    let synthetic = send.audio.trim().is_empty();
    if synthetic {
        let Some(text) = send.text.clone().filter(|t| !t.trim().is_empty()) else {
            return Err(SendError::NoAudio);
        };
        super::tts::check_text(&text).map_err(SendError::Tts)?;
        let stand_in = SendRequest {
            audio: "0".repeat(64),
            ..send.clone()
        };
        compose(
            &stand_in,
            &state.registry(),
            Some((1, 1.0)),
            id,
            state.now(),
        )
        .and_then(|b| mark_synthetic(b).map_err(SendError::from))?;
        let c = super::tts::synthesise(state, &text, &who.user.name, address)
            .await
            .map_err(SendError::Tts)?;
        send.audio = c.sha256;
    }
    let (registry, now, by) = (state.registry(), state.now(), who.user.name.clone());
    let push = state.push().clone();
    let (b, env) = state
        .auth()
        .with(move |c| -> Result<(Bulletin, Envelope), SendError> {
            let audio: Option<(u64, f64)> = c
                .query_row(
                    "SELECT size, duration_secs FROM content WHERE sha256 = ?1",
                    [send.audio.trim()],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
                )
                .optional()?;
            let mut b = compose(&send, &registry, audio, id, now)?;
            if synthetic {
                b = mark_synthetic(b)?;
            }
            let env = b.sign_by(&signer)?;
            let tx = c.transaction()?;
            insert(&tx, &b, &env, &by)?;
            let seq = super::push::note(&tx, super::push::Kind::Bulletin, &b.id.to_hex(), now)?;
            tx.commit()?;
            // Under this connection's lock, so the streams get events in id order
            // (`collector::push`).
            push.publish_bulletin(seq, b.targets.clone(), &env.to_json());
            Ok((b, env))
        })
        .await
        .map_err(|e| SendError::Internal(format!("{e:?}")))??;
    let mut e = state.audit_entry(&who.user.name, address, action::SEND, &b.id.to_hex());
    e.after = Some(describe(&b));
    state.audit(e).await;
    Ok((b, env))
}

/// Sign, store and audit the cancel of bulletin `id` by `who` from `address`: the one path of
/// `POST /api/v1/bulletins/{bulletin}/cancel` and the list page's cancel button. The signed cancel.
pub async fn cancel_as(
    state: &AppState,
    who: &Principal,
    address: &str,
    id: &str,
) -> Result<Envelope, SendError> {
    let Some(bid) = BulletinId::parse(id) else {
        return Err(SendError::NotFound(id.to_string()));
    };
    let Some(signer) = state.centre().cloned() else {
        return Err(SendError::NoCentreKey);
    };
    let (now, by) = (state.now(), who.user.name.clone());
    let c = Cancel {
        v: 1,
        id: bid,
        cancelled_at: now,
    };
    let env = c.sign_by(&signer);
    let env2 = env.clone();
    let push = state.push().clone();
    let title = state
        .auth()
        .with(move |conn| -> Result<String, SendError> {
            let id = bid.to_hex();
            let tx = conn.transaction()?;
            let title = cancel(&tx, &id, &env2, &by, now)?;
            let seq = super::push::note(&tx, super::push::Kind::Cancel, &id, now)?;
            let targets = super::push::targets_of(&tx, &id)?;
            tx.commit()?;
            // Under this connection's lock, as a send's (`collector::push`).
            if let Some(t) = targets {
                push.publish_cancel(seq, t, &env2.to_json());
            }
            Ok(title)
        })
        .await
        .map_err(|e| SendError::Internal(format!("{e:?}")))??;
    let mut e = state.audit_entry(&who.user.name, address, action::CANCEL, &bid.to_hex());
    e.before = Some(format!("«{title}»"));
    e.after = Some(format!("đã hủy lúc {}", super::audit::when_vi(now)));
    state.audit(e).await;
    Ok(env)
}

/// The answer to a send.
#[derive(Debug, Serialize, Deserialize)]
pub struct Sent {
    pub id: String,
    /// The audio's SHA-256 (the synthesised WAV's when `synthetic`).
    #[serde(default)]
    pub audio: String,
    /// The audio was read from the text by espeak-ng.
    #[serde(default)]
    pub synthetic: bool,
    /// The signed envelope (kind `bulletin`), as stations receive it.
    pub envelope: serde_json::Value,
}

/// `POST /api/v1/bulletins` (admins): compose, sign, store, audit.
async fn post_send(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    req: Request,
) -> Response {
    const NOTHING: &str = "không có bản tin nào được gửi";
    let address = authz::address(req.extensions());
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let text = format!(
                "Dữ liệu gửi lên quá {MAX_BODY_BYTES} byte. Không có bản tin nào được gửi."
            );
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(json!({ "error": text, "error_vi": text })),
            )
                .into_response();
        }
    };
    let send: SendRequest = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            let text =
                format!("Dữ liệu gửi lên sai định dạng: {e}. Không có bản tin nào được gửi.");
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": text, "error_vi": text })),
            )
                .into_response();
        }
    };
    let (b, env) = match send_as(&state, &who, &address, send).await {
        Ok(v) => v,
        Err(e) => return refusal(&e, NOTHING),
    };
    (
        StatusCode::CREATED,
        axum::Json(Sent {
            id: b.id.to_hex(),
            audio: b.audio.sha256.clone(),
            synthetic: b.synthetic,
            envelope: env.to_value(),
        }),
    )
        .into_response()
}

/// `POST /api/v1/bulletins/{bulletin}/cancel` (admins): sign a cancel, store it, audit.
async fn post_cancel(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    const NOTHING: &str = "không có gì bị hủy";
    let address = authz::address(req.extensions());
    let env = match cancel_as(&state, &who, &address, &id).await {
        Ok(e) => e,
        Err(e) => return refusal(&e, NOTHING),
    };
    (
        StatusCode::OK,
        axum::Json(json!({ "id": id, "cancel": env.to_value() })),
    )
        .into_response()
}

/// `GET /api/v1/bulletins`: every bulletin, newest first.
async fn get_list(State(state): State<AppState>) -> Response {
    match state.auth().with(|c| list(c)).await {
        Ok(Ok(l)) => axum::Json(json!({ "bulletins": l })).into_response(),
        Ok(Err(e)) => refusal(&e, "không đọc được danh sách"),
        Err(e) => refusal(
            &SendError::Internal(format!("{e:?}")),
            "không đọc được danh sách",
        ),
    }
}

/// `GET /api/v1/stations/{id}/bulletins` (station-signed, that station only).
async fn get_for_station(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(entry) = state.station(&id) else {
        return refusal(
            &SendError::Internal(format!("station {id} passed the guard but is unknown")),
            "không có bản tin nào",
        );
    };
    let now = state.now();
    let done = state
        .auth()
        .with(move |c| for_station(c, &entry.id, &entry.area_code, now))
        .await;
    match done {
        Ok(Ok(f)) => axum::Json(json!({
            "bulletins": f.bulletins.iter().map(|(_, e)| e.to_value()).collect::<Vec<_>>(),
            "cancels": f.cancels.iter().map(|(_, e)| e.to_value()).collect::<Vec<_>>(),
        }))
        .into_response(),
        Ok(Err(e)) => refusal(&e, "không có bản tin nào"),
        Err(e) => refusal(
            &SendError::Internal(format!("{e:?}")),
            "không có bản tin nào",
        ),
    }
}

/// The ids of the bulletins pending for station `id` (the heartbeat answer's fallback list);
/// empty when it is unknown or the database cannot say (logged).
pub async fn pending_ids(state: &AppState, id: &str) -> Vec<String> {
    let Some(entry) = state.station(id) else {
        return Vec::new();
    };
    let now = state.now();
    match state
        .auth()
        .with(move |c| for_station(c, &entry.id, &entry.area_code, now))
        .await
    {
        Ok(Ok(f)) => f.bulletins.into_iter().map(|(id, _)| id).collect(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "pending bulletins");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = ?e, "pending bulletins");
            Vec::new()
        }
    }
}

/// The routes (merged into the collector's router; each has its row in `authz::ROUTES`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/bulletins", get(get_list).post(post_send))
        .route("/api/v1/bulletins/{bulletin}/cancel", post(post_cancel))
        .route("/api/v1/stations/{id}/bulletins", get(get_for_station))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let text = format!(
            "[[station]]\nid = \"a\"\nname = \"A\"\narea_code = \"79101\"\npublic_key = \"{}\"\n",
            crate::wire::encode_public_key(&key)
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, text).unwrap();
        Registry::load(&p).unwrap()
    }

    #[test]
    fn targets_name_every_unknown_station_and_refuse_an_empty_area() {
        let r = registry();
        assert_eq!(parse_targets("all", &r).unwrap(), Targets::All);
        assert_eq!(
            parse_targets("area:79", &r).unwrap(),
            Targets::Area("79".into())
        );
        assert!(matches!(
            parse_targets("area:80", &r),
            Err(SendError::EmptyArea(_))
        ));
        let e = parse_targets("stations:x,a,y", &r).unwrap_err();
        assert_eq!(e.to_string(), "to: không có trạm x, y trong danh sách trạm");
        assert!(matches!(
            parse_targets("khác", &r),
            Err(SendError::BadTargets(_))
        ));
    }
}
