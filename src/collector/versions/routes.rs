//! The HTTP side of schedule versions: the station's schedule page (editor, versions list,
//! upload of a schedule file), a version's page (text, diff from its predecessor, rollback), the shared programs
//! page, and the JSON API for scripts (`GET`/`PUT /api/v1/stations/{id}/schedule`,
//! `GET`/`PUT /api/v1/programs`).
//!
//! **Invariant:** who may do what is the route table's (`authz::ROUTES`): operators edit their
//! own stations, admins all, auditors only read; a refused save answers 422 with every problem
//! at document:line:column and changes nothing; pages are Vietnamese, rendered by `crate::web`
//! (escaped by the engine, no HTML built here).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::core::{DiffLine, MAX_TEXT_BYTES, PROGRAMS_DOC, Problem, diff};
use super::db::{self, Version};
use super::{Published, Save, SaveError};
use crate::collector::accounts::Role;
use crate::collector::authz::{Principal, form_urlencoded_pairs};
use crate::collector::http::{AppState, ConnectInfo};
use crate::web::{self, Viewer};

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A version as listed (no text).
#[derive(Debug, Serialize)]
pub struct Listed {
    pub version: u64,
    pub sha256: String,
    pub sha_prefix: String,
    pub author: String,
    pub created_at: String,
    pub published_at: String,
    pub note: String,
    pub rollback_of: Option<u64>,
    pub programs_version: Option<u64>,
}

impl From<&Version> for Listed {
    fn from(v: &Version) -> Self {
        Self {
            version: v.version,
            sha256: v.sha256.clone(),
            sha_prefix: v.sha256.chars().take(12).collect(),
            author: v.author.clone(),
            created_at: rfc3339(v.created_at),
            published_at: rfc3339(v.published_at),
            note: v.note.clone(),
            rollback_of: v.rollback_of,
            programs_version: v.programs_version,
        }
    }
}

/// The JSON answer of `GET …/schedule`.
#[derive(Debug, Serialize)]
struct ScheduleAnswer {
    station: String,
    /// The version in force (the latest published), with its text.
    active: Option<ActiveAnswer>,
    /// Every version, newest first.
    versions: Vec<Listed>,
}

#[derive(Debug, Serialize)]
struct ActiveAnswer {
    #[serde(flatten)]
    listed: Listed,
    text: String,
    /// What the station receives: the text with the shared programs it uses.
    merged_sha256: String,
}

/// Why a request failed, for both the API (JSON) and the pages.
enum Failure {
    NotFound(String),
    BadRequest(String),
    TooLarge,
    Invalid(SaveError),
    Internal(String),
}

impl From<crate::collector::db::DbError> for Failure {
    fn from(e: crate::collector::db::DbError) -> Self {
        Failure::Internal(format!("database: {e}"))
    }
}

impl Failure {
    fn from_save(e: SaveError) -> Self {
        match e {
            SaveError::Internal(m) => Failure::Internal(m),
            SaveError::NoSuchVersion(n) => Failure::NotFound(format!("Không có phiên bản {n}.")),
            other => Failure::Invalid(other),
        }
    }

    fn api(self) -> Response {
        let (status, body) = match self {
            Failure::NotFound(m) => (StatusCode::NOT_FOUND, serde_json::json!({ "error": m })),
            Failure::BadRequest(m) => (StatusCode::BAD_REQUEST, serde_json::json!({ "error": m })),
            Failure::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({ "error": format!("the text is larger than {MAX_TEXT_BYTES} bytes; nothing was saved") }),
            ),
            Failure::Invalid(e) => (StatusCode::UNPROCESSABLE_ENTITY, invalid_json(&e)),
            Failure::Internal(m) => {
                tracing::error!(error = %m, "schedule versions");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({ "error": "internal error; nothing was published; see the collector log" }),
                )
            }
        };
        (status, axum::Json(body)).into_response()
    }

    fn page(self, v: Option<&Viewer>) -> Response {
        match self {
            Failure::NotFound(m) => error(StatusCode::NOT_FOUND, "Không tìm thấy", &m, v),
            Failure::BadRequest(m) => error(StatusCode::BAD_REQUEST, "Yêu cầu không hợp lệ", &m, v),
            Failure::TooLarge => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Dữ liệu quá lớn",
                &format!(
                    "Lịch dài quá {} KB. Không có gì thay đổi.",
                    MAX_TEXT_BYTES / 1024
                ),
                v,
            ),
            Failure::Invalid(e) => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Lịch không hợp lệ",
                &e.to_string(),
                v,
            ),
            Failure::Internal(m) => {
                tracing::error!(error = %m, "schedule versions page");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Lỗi máy chủ",
                    "Lỗi nội bộ; không có phiên bản nào được phát hành. Xem nhật ký của máy chủ.",
                    v,
                )
            }
        }
    }
}

fn error(status: StatusCode, title: &str, message: &str, v: Option<&Viewer>) -> Response {
    crate::collector::office::error_page(status, title, message, v)
}

/// Every problem of a refused save, flat, each naming its station when the shared programs
/// would break another station's schedule.
#[derive(Debug, Serialize)]
pub struct ShownProblem {
    /// The station whose schedule breaks (a programs save), else empty.
    pub station: String,
    #[serde(flatten)]
    pub problem: Problem,
}

fn shown(e: &SaveError) -> Vec<ShownProblem> {
    match e {
        SaveError::Invalid(ps) => ps
            .iter()
            .map(|p| ShownProblem {
                station: String::new(),
                problem: p.clone(),
            })
            .collect(),
        SaveError::BreaksStations(list) => list
            .iter()
            .flat_map(|(s, ps)| {
                ps.iter().map(move |p| ShownProblem {
                    station: s.clone(),
                    problem: p.clone(),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn invalid_json(e: &SaveError) -> serde_json::Value {
    serde_json::json!({
        "error": "the text does not validate; nothing was saved or activated",
        "error_vi": "Lịch không hợp lệ; không có gì được lưu hay áp dụng.",
        "problems": shown(e),
    })
}

fn today(state: &AppState) -> chrono::NaiveDate {
    state
        .now()
        .with_timezone(&crate::report::report_offset())
        .date_naive()
}

fn save_of(state: &AppState, who: &Principal, peer: String, text: String, note: String) -> Save {
    Save {
        text,
        note: note.trim().chars().take(500).collect(),
        author: who.user.name.clone(),
        address: peer,
        now: state.now(),
        today: today(state),
    }
}

/// Publish `save` for station `id` (or roll back to `rollback`), on a blocking thread.
async fn publish(
    state: &AppState,
    id: &str,
    save: Save,
    rollback: Option<u64>,
) -> Result<Published, Failure> {
    let entry = state
        .station(id)
        .ok_or_else(|| Failure::NotFound(format!("Không có trạm «{id}».")))?;
    let registry = state
        .registry_path()
        .ok_or_else(|| Failure::Internal("the collector runs without a registry file".into()))?;
    let st = state.clone();
    let r = tokio::task::spawn_blocking(move || {
        let v = st.versions();
        match rollback {
            Some(n) => v.rollback_station(&registry, &entry, n, &save),
            None => v.publish_station(&registry, &entry, &save, None),
        }
    })
    .await
    .map_err(|e| Failure::Internal(format!("blocking task: {e}")))?
    .map_err(Failure::from_save)?;
    state.reload_registry();
    Ok(r)
}

async fn read_versions<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::collector::db::Conn) -> Result<T, crate::collector::db::DbError>
    + Send
    + 'static,
) -> Result<T, Failure> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.versions().read(f))
        .await
        .map_err(|e| Failure::Internal(format!("blocking task: {e}")))?
        .map_err(Failure::from)
}

fn known_station(state: &AppState, id: &str) -> Result<(), Failure> {
    state
        .station(id)
        .map(|_| ())
        .ok_or_else(|| Failure::NotFound(format!("Không có trạm «{id}».")))
}

// ---------------------------------------------------------------------------------------------
// API.

async fn api_get(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let r = async {
        known_station(&state, &id)?;
        let doc = id.clone();
        let all = read_versions(&state, move |c| db::list(c, &doc)).await?;
        Ok::<_, Failure>(ScheduleAnswer {
            station: id,
            active: all.first().map(|v| ActiveAnswer {
                listed: v.into(),
                text: v.text.clone(),
                merged_sha256: v.merged_sha256.clone(),
            }),
            versions: all.iter().map(Listed::from).collect(),
        })
    }
    .await;
    match r {
        Ok(a) => axum::Json(a).into_response(),
        Err(f) => f.api(),
    }
}

#[derive(Deserialize)]
struct NoteQuery {
    #[serde(default)]
    note: String,
}

/// The body of a PUT: the schedule text itself (UTF-8), at most [`MAX_TEXT_BYTES`].
async fn text_body(body: Body) -> Result<String, Failure> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_TEXT_BYTES)
        .await
        .map_err(|_| Failure::TooLarge)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = std::str::from_utf8(&e.as_bytes()[..valid]).unwrap_or("");
        let (line, column) = crate::schedule::file::line_column(prefix, valid);
        Failure::BadRequest(format!(
            "the schedule is not UTF-8 text (first bad byte at {line}:{column}); save it as UTF-8"
        ))
    })
}

#[derive(Serialize)]
struct PublishedAnswer {
    station: String,
    version: u64,
    sha256: String,
    published_at: String,
    replaced: Option<u64>,
}

fn published_answer(id: String, p: Published) -> Response {
    (
        StatusCode::CREATED,
        axum::Json(PublishedAnswer {
            station: id,
            version: p.version,
            sha256: p.sha256,
            published_at: rfc3339(p.published_at),
            replaced: p.before.map(|b| b.0),
        }),
    )
        .into_response()
}

async fn api_put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo,
    Query(q): Query<NoteQuery>,
    body: Body,
) -> Response {
    let r = async {
        let text = text_body(body).await?;
        let save = save_of(&state, &who, peer, text, q.note);
        publish(&state, &id, save, None).await
    }
    .await;
    match r {
        Ok(p) => published_answer(id, p),
        Err(f) => f.api(),
    }
}

async fn api_programs_get(State(state): State<AppState>) -> Response {
    match read_versions(&state, |c| db::list(c, PROGRAMS_DOC)).await {
        Ok(all) => axum::Json(serde_json::json!({
            "active": all.first().map(|v| serde_json::json!({ "version": v.version, "sha256": v.sha256, "text": v.text })),
            "versions": all.iter().map(Listed::from).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(f) => f.api(),
    }
}

async fn publish_programs(state: &AppState, save: Save) -> Result<Published, Failure> {
    let st = state.clone();
    let r = tokio::task::spawn_blocking(move || {
        let reg = st.registry();
        st.versions().publish_programs(&reg, &save)
    })
    .await
    .map_err(|e| Failure::Internal(format!("blocking task: {e}")))?
    .map_err(Failure::from_save)?;
    state.reload_registry();
    Ok(r)
}

async fn api_programs_put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo,
    Query(q): Query<NoteQuery>,
    body: Body,
) -> Response {
    let r = async {
        let text = text_body(body).await?;
        publish_programs(&state, save_of(&state, &who, peer, text, q.note)).await
    }
    .await;
    match r {
        Ok(p) => published_answer(PROGRAMS_DOC.into(), p),
        Err(f) => f.api(),
    }
}

// ---------------------------------------------------------------------------------------------
// Pages.

fn may_edit(who: &Principal) -> bool {
    matches!(who.user.role, Role::Admin | Role::Operator)
}

fn html(
    status: StatusCode,
    page: Result<String, web::RenderError>,
    v: Option<&Viewer>,
) -> Response {
    match page {
        Ok(h) => {
            let mut r = (status, Html(h)).into_response();
            // The editor holds the session's CSRF token.
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => Failure::Internal(e.to_string()).page(v),
    }
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// What the schedule page shows besides the latest version.
enum Edited {
    /// Nothing: the latest version's text in the editor (200).
    None,
    /// A refused save: its text, note and problems (422).
    Refused(String, String, SaveError),
    /// An uploaded file that is not text: why (400).
    NotText(String),
}

/// The schedule page: the editor (with `text` and `problems` after a refused save, else the
/// active text), the upload form, the versions list.
async fn schedule_page_with(
    state: &AppState,
    id: &str,
    who: &Principal,
    v: Option<&Viewer>,
    edited: Edited,
) -> Response {
    let r = async {
        let entry = state
            .station(id)
            .ok_or_else(|| Failure::NotFound(format!("Không có trạm «{id}».")))?;
        let doc = id.to_string();
        let all = read_versions(state, move |c| db::list(c, &doc)).await?;
        let (refused, upload_error) = match edited {
            Edited::None => (None, None),
            Edited::Refused(t, n, e) => (Some((t, n, e)), None),
            Edited::NotText(m) => (None, Some(m)),
        };
        let (text, note, problems, mut status) = editor_fields(&all, refused.as_ref());
        if upload_error.is_some() {
            status = StatusCode::BAD_REQUEST;
        }
        let csrf = v.map_or("", |v| v.csrf.as_str());
        let ctx = serde_json::json!({
            "nav": "overview",
            "station": { "id": entry.id, "name": entry.name },
            "active": all.first().map(Listed::from),
            "versions": all.iter().map(Listed::from).collect::<Vec<_>>(),
            "text": text,
            "note": note,
            "problems": problems,
            "upload_error": upload_error,
            // The session's CSRF token rides in the query: the guard never reads an upload's body.
            "upload_action": format!(
                "/stations/{}/schedule/upload?csrf={}",
                entry.id,
                crate::collector::authz::percent_encode(csrf)
            ),
            "may_edit": may_edit(who),
            "managed": !all.is_empty(),
        });
        Ok::<_, Failure>((status, web::render("schedule.html", v, ctx)))
    }
    .await;
    match r {
        Ok((status, page)) => html(status, page, v),
        Err(f) => f.page(v),
    }
}

async fn schedule_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
    v: Option<Extension<Viewer>>,
) -> Response {
    let v = v.map(|Extension(v)| v);
    schedule_page_with(&state, &id, &who, v.as_ref(), Edited::None).await
}

/// Why an uploaded schedule file is not text the editor can take.
#[derive(Debug, PartialEq, Eq)]
enum NotText {
    /// Not UTF-8: the first bad byte's line and column (in characters, the BOM not counted).
    NotUtf8 { line: usize, column: usize },
}

impl NotText {
    fn vi(&self) -> String {
        match self {
            NotText::NotUtf8 { line, column } => format!(
                "Tệp lịch không phải văn bản UTF-8: byte sai đầu tiên ở dòng {line}:{column}. \
                 Hãy lưu tệp dưới dạng UTF-8 (có hoặc không có BOM) rồi tải lên lại. Không có gì \
                 được lưu hay áp dụng."
            ),
        }
    }
}

/// The text of an uploaded schedule file: UTF-8 with or without a byte-order mark, line ends
/// LF or CRLF (stored with LF, as the editor stores what it is sent).
fn upload_text(bytes: &[u8]) -> Result<String, NotText> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(t) => Ok(t.replace("\r\n", "\n")),
        Err(e) => {
            let valid = e.valid_up_to();
            let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or("");
            let (line, column) = crate::schedule::file::line_column(prefix, valid);
            Err(NotText::NotUtf8 { line, column })
        }
    }
}

/// What the upload form sent: the file's bytes (at most [`MAX_TEXT_BYTES`]) and the note.
async fn upload_fields(state: &AppState, req: Request) -> Result<(Vec<u8>, String), Failure> {
    use axum::extract::FromRequest as _;
    let mut mp = Multipart::from_request(req, state).await.map_err(|e| {
        Failure::BadRequest(format!("Cần biểu mẫu multipart/form-data có tệp lịch: {e}"))
    })?;
    let broken = |e: axum::extract::multipart::MultipartError| {
        Failure::BadRequest(format!("Biểu mẫu gửi lên bị hỏng: {e}"))
    };
    let secs = state.body_read_secs();
    let work = async {
        let (mut file, mut note) = (None, String::new());
        while let Some(mut field) = mp.next_field().await.map_err(broken)? {
            let name = field.name().unwrap_or("").to_string();
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(broken)? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_TEXT_BYTES {
                    return Err(Failure::TooLarge);
                }
            }
            match name.as_str() {
                "file" => file = Some(bytes),
                "note" => note = String::from_utf8_lossy(&bytes).into_owned(),
                _ => {}
            }
        }
        let file = file
            .filter(|f| !f.is_empty())
            .ok_or_else(|| Failure::BadRequest("Chưa chọn tệp lịch, hoặc tệp rỗng.".into()))?;
        Ok((file, note))
    };
    tokio::time::timeout(std::time::Duration::from_secs(secs), work)
        .await
        .map_err(|_| Failure::BadRequest(format!("Tệp không gửi xong trong {secs} giây.")))?
}

/// `POST /stations/{id}/schedule/upload?csrf=…`: a multipart form with `file` (a schedule TOML
/// file: UTF-8 with or without BOM, LF or CRLF) and `note`; then exactly what a save from the
/// editor does. Not UTF-8: the schedule page with the first bad byte's line:column (400).
async fn schedule_upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo,
    v: Option<Extension<Viewer>>,
    req: Request,
) -> Response {
    let v = v.map(|Extension(v)| v);
    if let Err(f) = known_station(&state, &id) {
        return f.page(v.as_ref());
    }
    let (bytes, note) = match upload_fields(&state, req).await {
        Ok(x) => x,
        Err(f) => {
            let mut r = f.page(v.as_ref());
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let text = match upload_text(&bytes) {
        Ok(t) => t,
        Err(e) => {
            return schedule_page_with(&state, &id, &who, v.as_ref(), Edited::NotText(e.vi()))
                .await;
        }
    };
    save_text(&state, &id, &who, peer, v.as_ref(), text, note).await
}

/// Publish `text` from a page (the editor or an uploaded file): to its version page when valid,
/// else the editor again with the text and every problem (422).
async fn save_text(
    state: &AppState,
    id: &str,
    who: &Principal,
    peer: String,
    v: Option<&Viewer>,
    text: String,
    note: String,
) -> Response {
    if text.len() > MAX_TEXT_BYTES {
        return Failure::TooLarge.page(v);
    }
    let save = save_of(state, who, peer, text.clone(), note.clone());
    match publish(state, id, save, None).await {
        Ok(p) => see_other(&format!(
            "/stations/{id}/schedule/versions/{}?saved=1",
            p.version
        )),
        Err(Failure::Invalid(e)) => {
            schedule_page_with(state, id, who, v, Edited::Refused(text, note, e)).await
        }
        Err(f) => f.page(v),
    }
}

/// `POST /stations/{id}/schedule`: a form with `text` (the editor) and `note`. Valid: published,
/// then to its version page; refused: the editor again with the text and every problem.
async fn schedule_save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo,
    v: Option<Extension<Viewer>>,
    body: Bytes,
) -> Response {
    let v = v.map(|Extension(v)| v);
    let mut text = String::new();
    let mut note = String::new();
    for (k, val) in form_urlencoded_pairs(&body) {
        match k.as_str() {
            "text" => text = val,
            "note" => note = val,
            _ => {}
        }
    }
    // Browsers send a textarea's line ends as CRLF: store the text as written, with LF.
    let text = text.replace("\r\n", "\n");
    save_text(&state, &id, &who, peer, v.as_ref(), text, note).await
}

#[derive(Deserialize)]
struct SavedQuery {
    #[serde(default)]
    saved: Option<u8>,
}

async fn version_page(
    State(state): State<AppState>,
    Path((id, n)): Path<(String, u64)>,
    Extension(who): Extension<Principal>,
    Query(q): Query<SavedQuery>,
    v: Option<Extension<Viewer>>,
) -> Response {
    let v = v.map(|Extension(v)| v);
    let r = async {
        let entry = state
            .station(&id)
            .ok_or_else(|| Failure::NotFound(format!("Không có trạm «{id}».")))?;
        let doc = id.clone();
        let (this, prev, latest) = read_versions(&state, move |c| {
            let this = db::get(c, &doc, n)?;
            let prev = match n {
                0 | 1 => None,
                _ => db::get(c, &doc, n - 1)?,
            };
            Ok((this, prev, db::latest_number(c, &doc)?))
        })
        .await?;
        let this =
            this.ok_or_else(|| Failure::NotFound(format!("Trạm «{id}» không có phiên bản {n}.")))?;
        let lines: Vec<DiffLine> = diff(prev.as_ref().map_or("", |p| p.text.as_str()), &this.text);
        let ctx = serde_json::json!({
            "nav": "overview",
            "station": { "id": entry.id, "name": entry.name },
            "version": Listed::from(&this),
            "text": this.text,
            "merged_differs": this.merged_sha256 != this.sha256,
            "merged_text": this.merged_text,
            "prev": prev.as_ref().map(|p| p.version),
            "diff": lines,
            "latest": latest,
            "is_latest": latest == Some(this.version),
            "saved": q.saved.is_some(),
            "may_edit": may_edit(&who),
        });
        Ok::<_, Failure>(web::render("schedule_version.html", v.as_ref(), ctx))
    }
    .await;
    match r {
        Ok(page) => html(StatusCode::OK, page, v.as_ref()),
        Err(f) => f.page(v.as_ref()),
    }
}

async fn rollback(
    State(state): State<AppState>,
    Path((id, n)): Path<(String, u64)>,
    Extension(who): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo,
    v: Option<Extension<Viewer>>,
    body: Bytes,
) -> Response {
    let v = v.map(|Extension(v)| v);
    let note = crate::collector::authz::form_field(&body, "note").unwrap_or_default();
    let save = save_of(&state, &who, peer, String::new(), note);
    match publish(&state, &id, save, Some(n)).await {
        Ok(p) => see_other(&format!(
            "/stations/{id}/schedule/versions/{}?saved=1",
            p.version
        )),
        Err(f) => f.page(v.as_ref()),
    }
}

/// What an editor page shows: the text, note and problems of a refused save (422), or the
/// latest version's text with nothing else (200).
fn editor_fields(
    all: &[Version],
    edited: Option<&(String, String, SaveError)>,
) -> (String, String, Vec<ShownProblem>, StatusCode) {
    match edited {
        Some((t, n, e)) => (
            t.clone(),
            n.clone(),
            shown(e),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        None => (
            all.first().map(|v| v.text.clone()).unwrap_or_default(),
            String::new(),
            Vec::new(),
            StatusCode::OK,
        ),
    }
}

async fn programs_page_with(
    state: &AppState,
    who: &Principal,
    v: Option<&Viewer>,
    edited: Option<(String, String, SaveError)>,
) -> Response {
    let r = async {
        let all = read_versions(state, |c| db::list(c, PROGRAMS_DOC)).await?;
        let (text, note, problems, status) = editor_fields(&all, edited.as_ref());
        let ctx = serde_json::json!({
            "nav": "programs",
            "versions": all.iter().map(Listed::from).collect::<Vec<_>>(),
            "text": text,
            "note": note,
            "problems": problems,
            "may_edit": who.user.role == Role::Admin,
        });
        Ok::<_, Failure>((status, web::render("programs.html", v, ctx)))
    }
    .await;
    match r {
        Ok((status, page)) => html(status, page, v),
        Err(f) => f.page(v),
    }
}

async fn programs_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    v: Option<Extension<Viewer>>,
) -> Response {
    let v = v.map(|Extension(v)| v);
    programs_page_with(&state, &who, v.as_ref(), None).await
}

async fn programs_save(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo,
    v: Option<Extension<Viewer>>,
    body: Bytes,
) -> Response {
    let v = v.map(|Extension(v)| v);
    let text = crate::collector::authz::form_field(&body, "text")
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let note = crate::collector::authz::form_field(&body, "note").unwrap_or_default();
    if text.len() > MAX_TEXT_BYTES {
        return Failure::TooLarge.page(v.as_ref());
    }
    match publish_programs(
        &state,
        save_of(&state, &who, peer, text.clone(), note.clone()),
    )
    .await
    {
        Ok(_) => see_other("/programs?saved=1"),
        Err(Failure::Invalid(e)) => {
            programs_page_with(&state, &who, v.as_ref(), Some((text, note, e))).await
        }
        Err(f) => f.page(v.as_ref()),
    }
}

/// `GET /api/v1/stations/{id}/manifest` (station-signed): the signed manifest envelope of the
/// station's latest version, from today for 45 days; 404 when the centre holds none.
async fn manifest(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(signer) = state.centre().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({ "error": "the collector has no centre key; it signs nothing" }),
            ),
        )
            .into_response();
    };
    let st = state.clone();
    let (now, from) = (state.now(), today(&state));
    let r = tokio::task::spawn_blocking(move || st.versions().manifest(&id, &signer, now, from))
        .await
        .map_err(|e| Failure::Internal(format!("blocking task: {e}")))
        .and_then(|r| r.map_err(Failure::from_save));
    match r {
        Ok(Some(json)) => {
            let mut resp = json.into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Ok(None) => {
            Failure::NotFound("no schedule version published for this station".into()).api()
        }
        Err(f) => f.api(),
    }
}

/// The routes (merged into the collector's router; each has its row in `authz::ROUTES`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stations/{id}/schedule", get(api_get).put(api_put))
        .route("/api/v1/stations/{id}/manifest", get(manifest))
        .route(
            "/api/v1/programs",
            get(api_programs_get).put(api_programs_put),
        )
        .route(
            "/stations/{id}/schedule",
            get(schedule_page).post(schedule_save),
        )
        .route("/stations/{id}/schedule/upload", post(schedule_upload))
        .route("/stations/{id}/schedule/versions/{n}", get(version_page))
        .route(
            "/stations/{id}/schedule/versions/{n}/rollback",
            post(rollback),
        )
        .route("/programs", get(programs_page).post(programs_save))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uploaded_file_is_utf8_with_or_without_bom_and_any_line_ends() {
        let want = "id = \"a\"\nname = \"Phường A\"\n";
        for bytes in [
            want.as_bytes().to_vec(),
            want.replace('\n', "\r\n").into_bytes(),
            [b"\xEF\xBB\xBF".as_slice(), want.as_bytes()].concat(),
            [
                b"\xEF\xBB\xBF".as_slice(),
                want.replace('\n', "\r\n").as_bytes(),
            ]
            .concat(),
        ] {
            assert_eq!(upload_text(&bytes).as_deref(), Ok(want));
        }
        // Latin-1 "ờ" is not UTF-8: its line and column (the BOM not counted).
        let latin1 = b"\xEF\xBB\xBFid = \"a\"\r\nname = \"Ph\xF0\"\n";
        let e = upload_text(latin1).unwrap_err();
        assert_eq!(
            e,
            NotText::NotUtf8 {
                line: 2,
                column: 11
            }
        );
        assert!(e.vi().contains("dòng 2:11"), "{}", e.vi());
    }
}
