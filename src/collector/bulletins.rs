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

use crate::collector::db::{Conn, OptionalExtension, params};
use axum::Router;
use axum::extract::{Extension, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
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

impl From<crate::collector::db::DbError> for SendError {
    fn from(e: crate::collector::db::DbError) -> Self {
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
pub fn insert(conn: &Conn, b: &Bulletin, env: &Envelope, by: &str) -> Result<(), SendError> {
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
pub fn list(conn: &Conn) -> Result<Vec<Listed>, SendError> {
    let mut st = conn.prepare(
        "SELECT id, title, priority, targets, audio_sha256, not_before_unix_ms,
            not_after_unix_ms, repeats, interval_secs, created_by, created_unix_ms,
            cancelled_by, cancelled_unix_ms
         FROM bulletins ORDER BY created_unix_ms DESC, id",
    )?;
    let rows = st.query_map(params![], |r| {
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
            cancelled_at: r.get::<Option<i64>>(12)?.map(|v| rfc3339(at_ms(v))),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the exports name bulletins `ids` by (`report::RecordSource::bulletins`): title, airings
/// asked for, and whether the audio was read by text-to-speech (from the signed bulletin itself);
/// an id not in the table is left out.
pub fn report_facts(
    conn: &Conn,
    ids: &[&str],
) -> Result<
    std::collections::HashMap<String, crate::report::BulletinInfo>,
    crate::collector::db::DbError,
> {
    let mut st =
        conn.prepare_cached("SELECT title, repeats, envelope FROM bulletins WHERE id = ?1")?;
    let mut out = std::collections::HashMap::new();
    for id in ids {
        let row: Option<(String, u32, String)> = st
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
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
    conn: &Conn,
    id: &str,
    env: &Envelope,
    by: &str,
    at: DateTime<Utc>,
) -> Result<String, SendError> {
    let row: Option<(String, Option<i64>)> = conn
        .query_row(
            "SELECT title, cancelled_unix_ms FROM bulletins WHERE id = ?1",
            params![id],
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
    conn: &Conn,
    station: &str,
    area: &str,
    now: DateTime<Utc>,
) -> Result<ForStation, SendError> {
    let mut st = conn.prepare(
        "SELECT id, envelope, cancel_envelope FROM bulletins
         WHERE not_after_unix_ms > ?1 ORDER BY created_unix_ms, id",
    )?;
    let rows = st.query_map(params![ms(now)], |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<String>(1)?,
            r.get::<Option<String>>(2)?,
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
                    params![send.audio.trim()],
                    |r| Ok((r.get::<i64>(0)? as u64, r.get(1)?)),
                )
                .optional()?;
            let mut b = compose(&send, &registry, audio, id, now)?;
            if synthetic {
                b = mark_synthetic(b)?;
            }
            let env = b.sign_by(&signer)?;
            // Immediate: event ids follow the commit order across replicas (`collector::push`).
            let tx = c.transaction_immediate()?;
            insert(&tx, &b, &env, &by)?;
            let seq = super::push::note(&tx, super::push::Kind::Bulletin, &b.id.to_hex(), now)?;
            tx.commit()?;
            // Under this connection's lock, so the streams get events in id order; a hub fed by
            // the database gets it from its listener instead (`collector::push`).
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
            let tx = conn.transaction_immediate()?;
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

// ---------------------------------------------------------------------------------------------
// Receipts (a station's "delivered" / "refused") and the state of each targeted station.

/// Largest body of a receipts POST (a station reports a few receipts at a time).
pub const MAX_RECEIPTS_BODY_BYTES: usize = 256 * 1024;
/// Most receipts in one POST.
pub const MAX_RECEIPTS: usize = 1_000;

/// A station's receipt for one bulletin, as it travels (`POST
/// /api/v1/stations/{id}/bulletin-receipts`, body `{"receipts":[…]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The bulletin id (32 lowercase hex digits).
    pub bulletin: String,
    /// `delivered` (checked, audio verified, handed to the daemon) or `refused`.
    pub state: ReceiptState,
    /// The `bulletin.*` code of a refusal (absent when delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// When the station received or refused it (its clock).
    pub at: DateTime<Utc>,
}

/// A receipt's state (the `bulletin_receipts.state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptState {
    Delivered,
    Refused,
}

impl ReceiptState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptState::Delivered => "delivered",
            ReceiptState::Refused => "refused",
        }
    }
}

/// The body of a receipts POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipts {
    pub receipts: Vec<Receipt>,
}

/// Why a receipt is not stored (the whole POST is refused: 422, the station drops it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt {index}: bulletin id {id:?} is not 32 lowercase hex digits")]
    BadId { index: usize, id: String },
    #[error("receipt {index}: a refusal needs a station's bulletin.* code, got {code:?}")]
    BadCode { index: usize, code: Option<String> },
    #[error("receipt {index}: a delivered receipt carries no code")]
    CodeOnDelivered { index: usize },
    #[error("{0} receipts in one request (at most {MAX_RECEIPTS})")]
    TooMany(usize),
}

/// Check every receipt of a POST (pure): ids well formed, a refusal's code one a station
/// reports (`bulletin.*`, not the centre's own `bulletin.expired_undelivered`).
pub fn check_receipts(r: &Receipts) -> Result<(), ReceiptError> {
    if r.receipts.len() > MAX_RECEIPTS {
        return Err(ReceiptError::TooMany(r.receipts.len()));
    }
    for (index, x) in r.receipts.iter().enumerate() {
        if BulletinId::parse(&x.bulletin).is_none() {
            return Err(ReceiptError::BadId {
                index,
                id: x.bulletin.clone(),
            });
        }
        match (x.state, x.code.as_deref()) {
            (ReceiptState::Delivered, None) => {}
            (ReceiptState::Delivered, Some(_)) => {
                return Err(ReceiptError::CodeOnDelivered { index });
            }
            (ReceiptState::Refused, Some(c))
                if crate::bulletin::RefusalCode::parse(c)
                    .is_some_and(|c| c != crate::bulletin::RefusalCode::ExpiredUndelivered) => {}
            (ReceiptState::Refused, code) => {
                return Err(ReceiptError::BadCode {
                    index,
                    code: code.map(str::to_string),
                });
            }
        }
    }
    Ok(())
}

/// What storing a POST's receipts did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stored {
    /// Receipts written (new, or later than the one held).
    pub stored: usize,
    /// Receipts taken as acknowledged but not written: of a bulletin the centre does not hold,
    /// or not later than the one held (a retry, a replay).
    pub ignored: usize,
}

/// Store `receipts` (checked) of `station` received at `received`, in one transaction: one row
/// per (bulletin, station), the latest by the station's clock wins (a retried or replayed receipt
/// changes nothing); receipts naming a bulletin the centre does not hold are ignored.
pub fn store_receipts(
    conn: &mut Conn,
    station: &str,
    receipts: &[Receipt],
    received: DateTime<Utc>,
) -> Result<Stored, SendError> {
    // IMMEDIATE: it reads (the bulletin is known) before it writes; a deferred transaction
    // whose snapshot another connection's commit made stale cannot take the write lock, and
    // SQLite answers SQLITE_BUSY at once instead of waiting (seen as a 500 under the fleet
    // simulator, docs/sim.md). Taking the lock first waits out the other writer.
    let tx = conn.transaction_immediate()?;
    let mut out = Stored::default();
    {
        let mut known = tx.prepare("SELECT 1 FROM bulletins WHERE id = ?1")?;
        let mut put = tx.prepare(
            "INSERT INTO bulletin_receipts
                (bulletin_id, station, state, code, station_unix_ms, received_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (bulletin_id, station) DO UPDATE SET
                state = excluded.state, code = excluded.code,
                station_unix_ms = excluded.station_unix_ms,
                received_unix_ms = excluded.received_unix_ms
             WHERE excluded.station_unix_ms > bulletin_receipts.station_unix_ms",
        )?;
        for r in receipts {
            if !known.exists(params![r.bulletin])? {
                out.ignored += 1;
                continue;
            }
            let n = put.execute(params![
                r.bulletin,
                station,
                r.state.as_str(),
                r.code,
                ms(r.at),
                ms(received)
            ])?;
            if n == 0 {
                out.ignored += 1;
            } else {
                out.stored += 1;
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

/// `POST /api/v1/stations/{id}/bulletin-receipts` (station-signed over the body, that station
/// only): store the receipts; 200 `{stored, ignored}` is the acknowledgement.
async fn post_receipts(
    State(state): State<AppState>,
    Extension(caller): Extension<authz::StationCaller>,
    req: Request,
) -> Response {
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_RECEIPTS_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return receipt_refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("receipts body larger than {MAX_RECEIPTS_BODY_BYTES} bytes"),
            );
        }
    };
    let receipts: Receipts = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return receipt_refusal(StatusCode::BAD_REQUEST, format!("receipts not JSON: {e}"));
        }
    };
    if let Err(e) = check_receipts(&receipts) {
        return receipt_refusal(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
    }
    let now = state.now();
    let station = caller.0.clone();
    let done = state
        .auth()
        .with(move |c| store_receipts(c, &station, &receipts.receipts, now))
        .await;
    match done {
        Ok(Ok(s)) => {
            tracing::debug!(station = %caller.0, stored = s.stored, ignored = s.ignored, "bulletin receipts");
            axum::Json(s).into_response()
        }
        Ok(Err(e)) => refusal(&e, "không lưu được biên nhận"),
        Err(e) => refusal(
            &SendError::Internal(format!("{e:?}")),
            "không lưu được biên nhận",
        ),
    }
}

fn receipt_refusal(status: StatusCode, why: String) -> Response {
    tracing::warn!(error = %why, "bulletin receipts refused");
    (
        status,
        axum::Json(json!({
            "error": why,
            "error_vi": "Biên nhận bản tin không hợp lệ; không có gì được lưu.",
        })),
    )
        .into_response()
}

/// What a targeted station's state is for a bulletin (its page, its report), derived in this
/// order: a journal record naming the bulletin (the latest repeat's outcome); else its receipt
/// (delivered / refused); else, the bulletin cancelled, `Cancelled`; else, the window closed,
/// `ExpiredUndelivered`; else `Sending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Aired,
    Partial,
    Preempted,
    Failed,
    /// A record `skipped` (or `missed`) with its `bulletin.*` code (expired, cancelled, too long,
    /// audio).
    Skipped,
    Delivered,
    Refused,
    /// Cancelled by the centre before the station received it.
    Cancelled,
    ExpiredUndelivered,
    Sending,
}

impl StateKind {
    /// Every state, in the order pages list them.
    pub const ALL: &'static [StateKind] = &[
        StateKind::Aired,
        StateKind::Partial,
        StateKind::Preempted,
        StateKind::Failed,
        StateKind::Skipped,
        StateKind::Delivered,
        StateKind::Refused,
        StateKind::Cancelled,
        StateKind::ExpiredUndelivered,
        StateKind::Sending,
    ];

    /// The code (filters, CSV).
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Aired => "aired",
            StateKind::Partial => "partial",
            StateKind::Preempted => "preempted",
            StateKind::Failed => "failed",
            StateKind::Skipped => "skipped",
            StateKind::Delivered => "delivered",
            StateKind::Refused => "refused",
            StateKind::Cancelled => "cancelled",
            StateKind::ExpiredUndelivered => "expired_undelivered",
            StateKind::Sending => "sending",
        }
    }

    /// The state of a code ([`StateKind::as_str`]).
    pub fn parse(s: &str) -> Option<StateKind> {
        StateKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// The Vietnamese label (pages, exports).
    pub fn vi(self) -> &'static str {
        match self {
            StateKind::Aired => "Đã phát",
            StateKind::Partial => "Phát một phần",
            StateKind::Preempted => "Bị ngắt",
            StateKind::Failed => "Lỗi phát",
            StateKind::Skipped => "Không phát",
            StateKind::Delivered => "Đã nhận",
            StateKind::Refused => "Từ chối",
            StateKind::Cancelled => "Đã hủy trước khi gửi đến",
            StateKind::ExpiredUndelivered => "Hết hiệu lực, chưa gửi được",
            StateKind::Sending => "Đang gửi",
        }
    }

    fn of_outcome(outcome: &str) -> StateKind {
        match outcome {
            "aired" => StateKind::Aired,
            "partial" => StateKind::Partial,
            "preempted" => StateKind::Preempted,
            "failed" => StateKind::Failed,
            _ => StateKind::Skipped,
        }
    }
}

/// One airing of a bulletin a station journaled (its record's columns).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulletinAiring {
    /// 1-based repeat.
    pub repeat: u32,
    /// The record's outcome (`aired`, `partial`, `preempted`, `failed`, `skipped`, …).
    pub outcome: String,
    /// Its reason code (a `bulletin.*` code when skipped).
    pub reason_code: Option<String>,
    /// When it went on air (`None`: it did not), else when it was due, station-local.
    pub at: Option<DateTime<chrono::FixedOffset>>,
    pub aired_secs: f64,
    /// Integrated loudness the evidence meter measured (LUFS).
    pub loudness_lufs: Option<f64>,
}

/// One targeted station's state for a bulletin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationState {
    pub station: String,
    /// From the registry (empty for a listed station no longer registered).
    pub name: String,
    pub area_code: String,
    pub state: StateKind,
    /// The `bulletin.*` code: a refusal's, a skipped airing's, `bulletin.expired_undelivered`,
    /// `bulletin.cancelled` (before delivery).
    pub code: Option<String>,
    /// When: the latest airing's start (or due time), the receipt's time by the station's clock,
    /// the window's end when expired.
    pub at: Option<DateTime<Utc>>,
    /// When the collector stored the receipt.
    pub receipt_received_at: Option<DateTime<Utc>>,
    /// Each airing journaled, latest repeat first.
    pub airings: Vec<BulletinAiring>,
}

/// The state of every targeted station of a bulletin, and how many are in each state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationStates {
    pub bulletin: String,
    pub not_after: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Sorted by station id.
    pub stations: Vec<StationState>,
    /// (state, how many), every state of [`StateKind::ALL`] in that order (zeros included).
    pub counts: Vec<(StateKind, usize)>,
}

impl StationStates {
    /// How many stations are in `k`.
    pub fn count(&self, k: StateKind) -> usize {
        self.counts
            .iter()
            .find(|(s, _)| *s == k)
            .map_or(0, |(_, n)| *n)
    }
}

/// The state of each station bulletin `bulletin_id` targets (by `registry`: every station,
/// those of an area prefix, or its list — and any other station that reported on it), at `now`
/// (contract item 3's derivation, see [`StateKind`]); `None` when the centre holds no such
/// bulletin. Reads only: the `bulletins` row, `bulletin_receipts`, records naming the bulletin.
pub fn station_states(
    conn: &Conn,
    registry: &Registry,
    bulletin_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<StationStates>, SendError> {
    let row: Option<(String, i64, Option<i64>)> = conn
        .query_row(
            "SELECT envelope, not_after_unix_ms, cancelled_unix_ms FROM bulletins WHERE id = ?1",
            params![bulletin_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((envelope, not_after_ms, cancelled_ms)) = row else {
        return Ok(None);
    };
    let targets = Envelope::decode(envelope.as_bytes())
        .map_err(|e| SendError::Internal(format!("stored bulletin {bulletin_id}: {e}")))
        .and_then(|env| {
            Bulletin::decode(&env.body)
                .map_err(|e| SendError::Internal(format!("stored bulletin {bulletin_id}: {e}")))
        })?
        .targets;
    let not_after = at_ms(not_after_ms);
    let cancelled_at = cancelled_ms.map(at_ms);

    let mut stations: std::collections::BTreeMap<String, StationState> = Default::default();
    let blank = |id: &str| {
        let e = registry.get(id);
        StationState {
            station: id.to_string(),
            name: e.map(|e| e.name.clone()).unwrap_or_default(),
            area_code: e.map(|e| e.area_code.clone()).unwrap_or_default(),
            state: StateKind::Sending,
            code: None,
            at: None,
            receipt_received_at: None,
            airings: Vec::new(),
        }
    };
    match &targets {
        Targets::Stations(ids) => {
            for id in ids {
                stations.insert(id.clone(), blank(id));
            }
        }
        t => {
            for e in registry.stations.values() {
                if t.includes(&e.id, &e.area_code) {
                    stations.insert(e.id.clone(), blank(&e.id));
                }
            }
        }
    }

    // Receipts.
    let mut st = conn.prepare(
        "SELECT station, state, code, station_unix_ms, received_unix_ms
         FROM bulletin_receipts WHERE bulletin_id = ?1",
    )?;
    let rows = st.query_map(params![bulletin_id], |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<String>(1)?,
            r.get::<Option<String>>(2)?,
            r.get::<i64>(3)?,
            r.get::<i64>(4)?,
        ))
    })?;
    let mut receipts: Vec<(String, String, Option<String>, i64, i64)> = Vec::new();
    for r in rows {
        receipts.push(r?);
    }

    // Records naming the bulletin.
    let mut st = conn.prepare(
        "SELECT station, bulletin_repeat, outcome, reason_code, bytes, aired_secs
         FROM records WHERE bulletin_id = ?1",
    )?;
    let rows = st.query_map(params![bulletin_id], |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<Option<i64>>(1)?,
            r.get::<String>(2)?,
            r.get::<Option<String>>(3)?,
            r.get::<String>(4)?,
            r.get::<f64>(5)?,
        ))
    })?;
    for r in rows {
        let (station, repeat, outcome, reason_code, bytes, aired_secs) = r?;
        let v: serde_json::Value = serde_json::from_str(&bytes).unwrap_or_default();
        let when = |k: &str| {
            v.get(k)
                .and_then(|t| t.as_str())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        };
        let airing = BulletinAiring {
            repeat: repeat.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            outcome,
            reason_code,
            at: when("actual_start").or_else(|| when("scheduled_at")),
            aired_secs,
            loudness_lufs: v
                .get("evidence")
                .and_then(|e| e.get("integrated_lufs"))
                .and_then(serde_json::Value::as_f64),
        };
        stations
            .entry(station.clone())
            .or_insert_with(|| blank(&station))
            .airings
            .push(airing);
    }
    for (station, state, code, station_ms, received_ms) in receipts {
        let s = stations
            .entry(station.clone())
            .or_insert_with(|| blank(&station));
        s.receipt_received_at = Some(at_ms(received_ms));
        if s.airings.is_empty() {
            s.state = if state == "refused" {
                StateKind::Refused
            } else {
                StateKind::Delivered
            };
            s.code = code;
            s.at = Some(at_ms(station_ms));
        }
    }
    for s in stations.values_mut() {
        if !s.airings.is_empty() {
            // Latest repeat first; a repeat journaled twice (a retry): the later record first.
            s.airings
                .sort_by(|a, b| b.repeat.cmp(&a.repeat).then_with(|| b.at.cmp(&a.at)));
            let latest = &s.airings[0];
            s.state = StateKind::of_outcome(&latest.outcome);
            s.code = latest.reason_code.clone();
            s.at = latest.at.map(|t| t.with_timezone(&Utc));
        } else if s.receipt_received_at.is_none() {
            if let Some(c) = cancelled_at {
                s.state = StateKind::Cancelled;
                s.code = Some(crate::bulletin::RefusalCode::Cancelled.as_str().to_string());
                s.at = Some(c);
            } else if now >= not_after {
                s.state = StateKind::ExpiredUndelivered;
                s.code = Some(
                    crate::bulletin::RefusalCode::ExpiredUndelivered
                        .as_str()
                        .to_string(),
                );
                s.at = Some(not_after);
            }
        }
    }
    let stations: Vec<StationState> = stations.into_values().collect();
    let counts = StateKind::ALL
        .iter()
        .map(|k| (*k, stations.iter().filter(|s| s.state == *k).count()))
        .collect();
    Ok(Some(StationStates {
        bulletin: bulletin_id.to_string(),
        not_after,
        cancelled_at,
        stations,
        counts,
    }))
}

/// The routes (merged into the collector's router; each has its row in `authz::ROUTES`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/bulletins", get(get_list).post(post_send))
        .route("/api/v1/bulletins/{bulletin}/cancel", post(post_cancel))
        .route("/api/v1/stations/{id}/bulletins", get(get_for_station))
        .route(
            "/api/v1/stations/{id}/bulletin-receipts",
            post(post_receipts),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let mut text = String::new();
        for (id, area) in [
            ("a", "79101"),
            ("b", "79102"),
            ("c", "79103"),
            ("d", "79104"),
            ("e", "51001"),
        ] {
            text.push_str(&format!(
                "[[station]]\nid = \"{id}\"\nname = \"Phường {id}\"\narea_code = \"{area}\"\npublic_key = \"{}\"\n",
                crate::wire::encode_public_key(&key)
            ));
        }
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
            parse_targets("area:52", &r),
            Err(SendError::EmptyArea(_))
        ));
        let e = parse_targets("stations:x,a,y", &r).unwrap_err();
        assert_eq!(e.to_string(), "to: không có trạm x, y trong danh sách trạm");
        assert!(matches!(
            parse_targets("khác", &r),
            Err(SendError::BadTargets(_))
        ));
    }

    use crate::bulletin::body::tests::{at, sample};

    fn db() -> (tempfile::TempDir, Conn) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::collector::db::testing::test_db(dir.path(), "c.db");
        let c = crate::collector::Store::open(&db)
            .unwrap()
            .into_connection();
        (dir, c)
    }

    /// The sample bulletin to area 79, stored as the centre stores it.
    fn stored(c: &Conn) -> Bulletin {
        let b = Bulletin {
            targets: Targets::Area("79".into()),
            ..sample()
        };
        let env = b
            .sign(&ed25519_dalek::SigningKey::from_bytes(&[1; 32]))
            .unwrap();
        insert(c, &b, &env, "lan").unwrap();
        b
    }

    fn receipt(id: &str, state: ReceiptState, code: Option<&str>, t: &str) -> Receipt {
        Receipt {
            bulletin: id.into(),
            state,
            code: code.map(str::to_string),
            at: at(t),
        }
    }

    /// A record of station `st` for airing `repeat` of bulletin `id` (the columns the states
    /// read, and its bytes with the evidence's loudness).
    #[allow(clippy::too_many_arguments)]
    fn record(
        c: &Conn,
        st: &str,
        seq: i64,
        id: &str,
        repeat: i64,
        outcome: &str,
        code: Option<&str>,
        start: &str,
    ) {
        let bytes = json!({
            "scheduled_at": start,
            "actual_start": (outcome != "skipped").then_some(start),
            "evidence": {"integrated_lufs": -23.1},
        })
        .to_string();
        c.execute(
            "INSERT INTO records (station, seq, hash, prev_hash, signature, bytes, occurrence,
                category, source, outcome, scheduled_unix, aired_secs, received_unix, reason_code,
                bulletin_id, bulletin_repeat)
             VALUES (?1, ?2, 'h', 'p', 's', ?3, ?4, 'bulletin', 'file', ?5, 0, 45.0, 0, ?6, ?7, ?8)",
            params![st, seq, bytes, format!("bulletin:{id}#{repeat}"), outcome, code, id, repeat],
        )
        .unwrap();
    }

    #[test]
    fn receipts_are_checked_and_only_a_station_code_refuses() {
        let id = "07".repeat(16);
        let ok = |r: Vec<Receipt>| check_receipts(&Receipts { receipts: r });
        assert_eq!(
            ok(vec![receipt(
                &id,
                ReceiptState::Delivered,
                None,
                "2027-09-12T02:00:00Z"
            )]),
            Ok(())
        );
        assert_eq!(
            ok(vec![receipt(
                &id,
                ReceiptState::Refused,
                Some("bulletin.signature"),
                "2027-09-12T02:00:00Z"
            )]),
            Ok(())
        );
        for (r, what) in [
            (
                receipt("XY", ReceiptState::Delivered, None, "2027-09-12T02:00:00Z"),
                "bad id",
            ),
            (
                receipt(&id, ReceiptState::Refused, None, "2027-09-12T02:00:00Z"),
                "no code",
            ),
            (
                receipt(
                    &id,
                    ReceiptState::Refused,
                    Some("missed.station_down"),
                    "2027-09-12T02:00:00Z",
                ),
                "not a bulletin code",
            ),
            (
                receipt(
                    &id,
                    ReceiptState::Refused,
                    Some("bulletin.expired_undelivered"),
                    "2027-09-12T02:00:00Z",
                ),
                "the centre's code",
            ),
            (
                receipt(
                    &id,
                    ReceiptState::Delivered,
                    Some("bulletin.audio"),
                    "2027-09-12T02:00:00Z",
                ),
                "code on delivered",
            ),
        ] {
            assert!(ok(vec![r]).is_err(), "{what}");
        }
        let body = br#"{"receipts":[{"bulletin":"0707070707070707070707070707070707","state":"lost","at":"2027-09-12T02:00:00Z"}]}"#;
        assert!(serde_json::from_slice::<Receipts>(body).is_err());
    }

    #[test]
    fn receipts_wait_for_another_connection_writing_instead_of_failing() {
        if crate::collector::db::testing::pg_admin_url().is_some() {
            println!(
                "receipts_wait_for_another_connection_writing_instead_of_failing: runs on SQLite \
                 only (the other writer is a raw rusqlite connection on the file); \
                 receipts_wait_for_another_postgres_session_writing_instead_of_failing is its \
                 PostgreSQL twin"
            );
            return;
        }
        let (d, mut c) = db();
        let b = stored(&c);
        let id = b.id.to_hex();
        let mut other = rusqlite::Connection::open(d.path().join("c.db")).unwrap();
        other
            .busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        let (holding, held) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            let tx = other
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            tx.execute(
                "INSERT INTO bulletin_receipts
                    (bulletin_id, station, state, code, station_unix_ms, received_unix_ms)
                 VALUES ('x', 'b', 'delivered', NULL, 1, 1)",
                rusqlite::params![],
            )
            .unwrap();
            holding.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            tx.commit().unwrap();
        });
        held.recv().unwrap();
        // Another connection holds the write lock and commits while this store is under way:
        // the store waits for it (a deferred transaction read first and then failed with
        // SQLITE_BUSY at once, without waiting).
        let now = at("2027-09-12T02:00:05Z");
        let r = receipt(&id, ReceiptState::Delivered, None, "2027-09-12T02:00:00Z");
        let stored = store_receipts(&mut c, "a", &[r], now);
        writer.join().unwrap();
        assert_eq!(
            stored.unwrap(),
            Stored {
                stored: 1,
                ignored: 0
            }
        );
    }

    /// The PostgreSQL twin of the test above: another session (another replica) holds the
    /// writer lock and commits while the receipts are stored; the store waits for it, then
    /// succeeds.
    #[test]
    fn receipts_wait_for_another_postgres_session_writing_instead_of_failing() {
        if crate::collector::db::testing::pg_admin_url().is_none() {
            println!(
                "receipts_wait_for_another_postgres_session_writing_instead_of_failing: runs on \
                 PostgreSQL only (LOA_TEST_DB=postgres); its SQLite twin is \
                 receipts_wait_for_another_connection_writing_instead_of_failing"
            );
            return;
        }
        let (_d, mut c) = db();
        let b = stored(&c);
        let id = b.id.to_hex();
        let other = Conn::open(c.location()).unwrap();
        let committing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (holding, held) = std::sync::mpsc::channel();
        let writer = {
            let (id, committing) = (id.clone(), committing.clone());
            std::thread::spawn(move || {
                let tx = other.transaction_immediate().unwrap();
                tx.execute(
                    "INSERT INTO bulletin_receipts
                        (bulletin_id, station, state, code, station_unix_ms, received_unix_ms)
                     VALUES (?1, 'b', 'delivered', NULL, 1, 1)",
                    params![id],
                )
                .unwrap();
                holding.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(300));
                committing.store(true, std::sync::atomic::Ordering::SeqCst);
                tx.commit().unwrap();
            })
        };
        held.recv().unwrap();
        let now = at("2027-09-12T02:00:05Z");
        let r = receipt(&id, ReceiptState::Delivered, None, "2027-09-12T02:00:00Z");
        let stored = store_receipts(&mut c, "a", &[r], now);
        // It waited for the other writer's commit (the writer lock is the database's, not
        // the session's) rather than writing beside it.
        let waited = committing.load(std::sync::atomic::Ordering::SeqCst);
        writer.join().unwrap();
        assert_eq!(
            stored.unwrap(),
            Stored {
                stored: 1,
                ignored: 0
            }
        );
        assert!(
            waited,
            "the store did not wait for the other session's writer lock"
        );
        let receipts: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM bulletin_receipts WHERE bulletin_id = ?1",
                params![id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(receipts, 2, "both writers' receipts are stored");
    }

    #[test]
    fn the_latest_receipt_wins_a_replay_changes_nothing_an_unknown_bulletin_is_ignored() {
        let (_d, mut c) = db();
        let b = stored(&c);
        let id = b.id.to_hex();
        let now = at("2027-09-12T02:00:05Z");
        let first = receipt(&id, ReceiptState::Delivered, None, "2027-09-12T02:00:00Z");
        assert_eq!(
            store_receipts(&mut c, "a", std::slice::from_ref(&first), now).unwrap(),
            Stored {
                stored: 1,
                ignored: 0
            }
        );
        // The same receipt again (a retry after a lost answer): acknowledged, nothing changes.
        assert_eq!(
            store_receipts(&mut c, "a", std::slice::from_ref(&first), now).unwrap(),
            Stored {
                stored: 0,
                ignored: 1
            }
        );
        let later = receipt(
            &id,
            ReceiptState::Refused,
            Some("bulletin.audio"),
            "2027-09-12T02:10:00Z",
        );
        let unknown = receipt(
            &"ff".repeat(16),
            ReceiptState::Delivered,
            None,
            "2027-09-12T02:00:00Z",
        );
        assert_eq!(
            store_receipts(&mut c, "a", &[later, unknown], now).unwrap(),
            Stored {
                stored: 1,
                ignored: 1
            }
        );
        // An older receipt replayed after the later one: ignored.
        assert_eq!(
            store_receipts(&mut c, "a", &[first], now).unwrap(),
            Stored {
                stored: 0,
                ignored: 1
            }
        );
        let (state, code): (String, Option<String>) = c
            .query_row(
                "SELECT state, code FROM bulletin_receipts WHERE station = 'a'",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (state.as_str(), code.as_deref()),
            ("refused", Some("bulletin.audio"))
        );
    }

    #[test]
    fn each_targeted_station_has_its_state_records_first_then_receipts_then_the_window() {
        let (_d, mut c) = db();
        let reg = registry();
        let b = stored(&c);
        let id = b.id.to_hex();
        assert_eq!(
            station_states(&c, &reg, &"ff".repeat(16), at("2027-09-12T02:00:00Z")).unwrap(),
            None
        );
        // a: delivered then aired twice (repeat 2 latest); b: delivered; c: refused; d: nothing;
        // e: outside area 79, not targeted.
        store_receipts(
            &mut c,
            "a",
            &[receipt(
                &id,
                ReceiptState::Delivered,
                None,
                "2027-09-12T01:00:02Z",
            )],
            at("2027-09-12T01:00:03Z"),
        )
        .unwrap();
        record(
            &c,
            "a",
            1,
            &id,
            1,
            "aired",
            None,
            "2027-09-12T08:00:05+07:00",
        );
        record(
            &c,
            "a",
            2,
            &id,
            2,
            "preempted",
            Some("preempted.higher_priority"),
            "2027-09-12T08:30:05+07:00",
        );
        store_receipts(
            &mut c,
            "b",
            &[receipt(
                &id,
                ReceiptState::Delivered,
                None,
                "2027-09-12T01:00:04Z",
            )],
            at("2027-09-12T01:00:05Z"),
        )
        .unwrap();
        store_receipts(
            &mut c,
            "c",
            &[receipt(
                &id,
                ReceiptState::Refused,
                Some("bulletin.not_targeted"),
                "2027-09-12T01:00:06Z",
            )],
            at("2027-09-12T01:00:07Z"),
        )
        .unwrap();
        let during = station_states(&c, &reg, &id, at("2027-09-12T02:00:00Z"))
            .unwrap()
            .unwrap();
        let by = |s: &StationStates, st: &str| s.stations.iter().find(|x| x.station == st).cloned();
        assert_eq!(
            during
                .stations
                .iter()
                .map(|s| s.station.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        let a = by(&during, "a").unwrap();
        assert_eq!(a.state, StateKind::Preempted);
        assert_eq!(a.name, "Phường a");
        assert_eq!(
            a.airings.iter().map(|x| x.repeat).collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(a.airings[1].outcome, "aired");
        assert_eq!(a.airings[1].loudness_lufs, Some(-23.1));
        assert_eq!(a.at, Some(at("2027-09-12T01:30:05Z")));
        let bb = by(&during, "b").unwrap();
        assert_eq!(
            (bb.state, bb.at),
            (StateKind::Delivered, Some(at("2027-09-12T01:00:04Z")))
        );
        let cc = by(&during, "c").unwrap();
        assert_eq!(
            (cc.state, cc.code.as_deref()),
            (StateKind::Refused, Some("bulletin.not_targeted"))
        );
        assert_eq!(by(&during, "d").unwrap().state, StateKind::Sending);
        assert_eq!(during.count(StateKind::Sending), 1);
        assert_eq!(during.count(StateKind::Delivered), 1);
        assert_eq!(during.counts.len(), StateKind::ALL.len());
        // After the window: d never received it.
        let after = station_states(&c, &reg, &id, b.not_after).unwrap().unwrap();
        let d = by(&after, "d").unwrap();
        assert_eq!(
            (d.state, d.code.as_deref(), d.at),
            (
                StateKind::ExpiredUndelivered,
                Some("bulletin.expired_undelivered"),
                Some(b.not_after)
            )
        );
        assert_eq!(by(&after, "b").unwrap().state, StateKind::Delivered);
        // Cancelled before d received it.
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let when = at("2027-09-12T03:00:00Z");
        let env = Cancel {
            v: 1,
            id: b.id,
            cancelled_at: when,
        }
        .sign(&key);
        cancel(&c, &id, &env, "lan", when).unwrap();
        let cancelled = station_states(&c, &reg, &id, at("2027-09-12T04:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(by(&cancelled, "d").unwrap().state, StateKind::Cancelled);
        for k in StateKind::ALL {
            assert_eq!(StateKind::parse(k.as_str()), Some(*k));
            assert!(!k.vi().is_empty());
        }
    }
}
