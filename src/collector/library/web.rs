//! The content library's routes: the library page (list, upload form with progress, assign
//! form), the scripts' API (`POST /api/v1/content`, `GET /api/v1/content`) and the content
//! download for stations (`GET /api/v1/content/{sha256}`, with Range).
//!
//! **Invariant:** an upload body is streamed to a temp file (never held whole in memory) and
//! refused as soon as it passes the configured limit; it is decoded and measured once, on a
//! blocking thread, before anything is stored; who may do what is the route table's
//! (`authz::ROUTES`) — the handlers only add that placing a file (assigning) is an admin's.

use axum::Router;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use super::{Content, Library, LibraryError, Meta, Received, Why};
use crate::collector::accounts::Role;
use crate::collector::audit;
use crate::collector::authz::{self, Principal};
use crate::collector::http::AppState;
use crate::web::fmt::decimal_vi;

/// Where the upload page's script is served (its version in the name).
pub const JS_PATH: &str = "/static/library-1.js";
/// The upload page's script: progress through `XMLHttpRequest.upload.onprogress`.
pub const JS: &str = include_str!("../../web/static/library.js");

/// A content row as the page shows it.
#[derive(Serialize)]
struct Row {
    sha256: String,
    short: String,
    title: String,
    category: String,
    duration: String,
    loudness: String,
    true_peak: String,
    size: String,
    uploader: String,
    uploaded: String,
    used: Vec<Used>,
}

/// Where a content is used, as the page shows it: the text, and what a pointer over it says
/// (the program's id).
#[derive(Serialize)]
struct Used {
    text: String,
    hint: Option<String>,
}

/// `2027-01` → `01/2027` (other text as it is).
fn month_vi(month: &str) -> String {
    match month.split_once('-') {
        Some((y, m)) if y.len() == 4 && m.len() == 2 => format!("{m}/{y}"),
        _ => month.to_string(),
    }
}

/// `mm:ss` (minutes beyond 59 keep counting: `90:00`).
pub fn mm_ss(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// `04/12/2026 05:30` in the reports' time zone.
pub fn when_vi(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&crate::collector::status::report_offset())
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

fn row(c: &Content, titles: &std::collections::HashMap<String, String>) -> Row {
    Row {
        sha256: c.sha256.clone(),
        short: c.sha256.chars().take(12).collect(),
        title: c.title.clone(),
        category: c.category.clone(),
        duration: mm_ss(c.duration_secs),
        loudness: c
            .loudness_lufs
            .map_or("im lặng".into(), |l| format!("{} LUFS", decimal_vi(l, 1))),
        true_peak: c
            .true_peak_dbtp
            .map_or("—".into(), |p| format!("{} dBTP", decimal_vi(p, 1))),
        size: format!("{} MB", decimal_vi(c.size as f64 / 1_048_576.0, 1)),
        uploader: c.uploader.clone(),
        uploaded: when_vi(c.uploaded_at),
        used: c
            .paths
            .iter()
            .map(|p| match &p.why {
                Why::Episode { program, month } => Used {
                    text: format!(
                        "{} (tập «{}» tháng {})",
                        p.path,
                        titles.get(program).unwrap_or(program),
                        month_vi(month)
                    ),
                    hint: Some(format!("chương trình {program}")),
                },
                Why::Placement => Used {
                    text: p.path.clone(),
                    hint: None,
                },
            })
            .collect(),
    }
}

pub(crate) fn library_of(state: &AppState) -> Result<Arc<Library>, LibraryError> {
    state.library().cloned().ok_or(LibraryError::Io {
        what: "the content library".into(),
        source: std::io::Error::other("this collector runs without a content library"),
    })
}

fn principal(req: &Request) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LibraryError> + Send + 'static,
) -> Result<T, LibraryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LibraryError::Io {
            what: "blocking task".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

async fn audit_set(
    state: &AppState,
    who: &str,
    address: &str,
    row: &super::PathRow,
    before: Option<String>,
) {
    let e = audit::Entry {
        at: state.now(),
        actor: who.to_string(),
        address: address.to_string(),
        action: audit::action::LIBRARY_PATH_SET.into(),
        target: row.path.clone(),
        before,
        after: Some(row.describe()),
    };
    state.audit(e).await;
}

/// Measure and store a received upload (blocking thread), and audit it.
pub(crate) async fn admit(
    state: &AppState,
    lib: Arc<Library>,
    received: Received,
    meta: Meta,
    who: &Principal,
    address: &str,
) -> Result<(Content, bool), LibraryError> {
    let now = state.now();
    let uploader = who.user.name.clone();
    let (content, new) = blocking(move || {
        // The decoder's English detail goes to the log; people see the Vietnamese text only.
        let measured = super::measure(received.path(), &received.sha256).inspect_err(|e| {
            tracing::warn!(sha256 = %received.sha256, size = received.size, "upload refused: {e}")
        })?;
        lib.admit(received, &measured, &meta, &uploader, now)
    })
    .await?;
    if new {
        state
            .audit(audit::Entry {
                at: now,
                actor: who.user.name.clone(),
                address: address.to_string(),
                action: audit::action::CONTENT_UPLOAD.into(),
                target: content.sha256.clone(),
                before: None,
                after: Some(format!(
                    "{} ({}, {}, {} byte)",
                    content.title,
                    content.category,
                    mm_ss(content.duration_secs),
                    content.size
                )),
            })
            .await;
    }
    Ok((content, new))
}

/// What a changed library path did to the stations' schedules.
#[derive(Debug, Default)]
struct Republished {
    /// (station, new version) of each station that airs the path.
    published: Vec<(String, u64)>,
    /// Stations airing the path whose schedule no longer validates (nothing published).
    refused: Vec<String>,
}

/// `row`'s path now names other bytes than `before` did: every station whose latest schedule
/// version airs it gets a new version (the same text), so the next manifest it fetches — a
/// higher version, which a station takes — names the new file.
async fn republish(
    state: &AppState,
    row: &super::PathRow,
    before: Option<&super::PathRow>,
    who: &Principal,
    address: &str,
) -> Republished {
    if before.is_some_and(|b| b.sha256 == row.sha256) {
        return Republished::default();
    }
    let Some(registry_path) = state.registry_path() else {
        return Republished::default();
    };
    let (month, note) = match &row.why {
        Why::Episode { program, month } => (
            super::parse_month(month).ok(),
            format!("Tệp mới cho tập {program} tháng {month} ({})", row.path),
        ),
        Why::Placement => (None, format!("Tệp mới tại {}", row.path)),
    };
    let now = state.now();
    let save = crate::collector::versions::Save {
        text: String::new(),
        note,
        author: who.user.name.clone(),
        address: address.to_string(),
        now,
        today: now
            .with_timezone(&crate::report::report_offset())
            .date_naive(),
    };
    let (st, path) = (state.clone(), row.path.clone());
    let r = tokio::task::spawn_blocking(move || {
        let stations = st.registry();
        st.versions()
            .republish_for_library(&registry_path, &stations, &path, month, &save)
    })
    .await;
    let crate::collector::versions::Republished { published, refused } = match r {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "republishing after a library change");
            return Republished::default();
        }
    };
    if !published.is_empty() {
        state.reload_registry();
        tracing::info!(path = %row.path, ?published, "library path changed: new schedule versions published for the stations that air it");
    }
    for (station, e) in &refused {
        tracing::error!(path = %row.path, station, error = %e, "library path changed but the station's schedule no longer validates: no new version published for it");
    }
    Republished {
        published,
        refused: refused.into_iter().map(|(s, _)| s).collect(),
    }
}

/// Assign content `sha256` as program `program`'s episode for `month`: placed at the path the
/// program's `episodes` pattern resolves to.
async fn assign(
    state: &AppState,
    lib: Arc<Library>,
    sha256: String,
    program: String,
    month: String,
    who: &Principal,
    address: &str,
) -> Result<(super::PathRow, Republished), LibraryError> {
    let registry = state.registry();
    let now = state.now();
    let by = who.user.name.clone();
    let st = state.clone();
    let (row, before) = blocking(move || {
        let m = super::parse_month(&month)?;
        let shared = st.versions().read(|c| {
            crate::collector::versions::db::latest(c, crate::collector::versions::PROGRAMS_DOC)
        })?;
        let pattern = super::program_pattern(
            &registry,
            shared.as_ref().map(|v| v.text.as_str()),
            program.trim(),
        )?;
        let path = super::episode_path(&pattern, m)?;
        lib.set_path(
            &path,
            &sha256,
            Why::Episode {
                program: program.trim().to_string(),
                month: m.format("%Y-%m").to_string(),
            },
            &by,
            now,
        )
    })
    .await?;
    audit_set(
        state,
        &who.user.name,
        address,
        &row,
        before.as_ref().map(|b| b.describe()),
    )
    .await;
    let republished = republish(state, &row, before.as_ref(), who, address).await;
    Ok((row, republished))
}

/// Place content `sha256` at library path `path` by hand.
async fn place(
    state: &AppState,
    lib: Arc<Library>,
    sha256: String,
    path: String,
    who: &Principal,
    address: &str,
) -> Result<(super::PathRow, Republished), LibraryError> {
    let now = state.now();
    let by = who.user.name.clone();
    let (row, before) =
        blocking(move || lib.set_path(path.trim(), &sha256, Why::Placement, &by, now)).await?;
    audit_set(
        state,
        &who.user.name,
        address,
        &row,
        before.as_ref().map(|b| b.describe()),
    )
    .await;
    let republished = republish(state, &row, before.as_ref(), who, address).await;
    Ok((row, republished))
}

fn only_admin(who: &Principal) -> Result<(), LibraryError> {
    if who.user.role == Role::Admin {
        Ok(())
    } else {
        Err(LibraryError::BadField {
            field: "program",
            why: "chỉ quản trị viên được gán tệp vào lịch phát".into(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The page.

async fn library_page(
    state: &AppState,
    who: &Principal,
    status: StatusCode,
    message: Option<String>,
    error: Option<String>,
) -> Response {
    let st = state.clone();
    let listed = match library_of(state) {
        Ok(lib) => {
            blocking(move || {
                let list = lib.list()?;
                let wanted: std::collections::HashSet<String> = list
                    .iter()
                    .flat_map(|c| &c.paths)
                    .filter_map(|p| match &p.why {
                        Why::Episode { program, .. } => Some(program.clone()),
                        Why::Placement => None,
                    })
                    .collect();
                let shared = st.versions().read(|c| {
                    crate::collector::versions::db::latest(
                        c,
                        crate::collector::versions::PROGRAMS_DOC,
                    )
                })?;
                let titles = super::program_titles(
                    &st.registry(),
                    shared.as_ref().map(|v| v.text.as_str()),
                    &wanted,
                );
                Ok((list, titles))
            })
            .await
        }
        Err(e) => Err(e),
    };
    let (rows, error) = match listed {
        Ok((l, titles)) => (l.iter().map(|c| row(c, &titles)).collect::<Vec<_>>(), error),
        Err(e) => {
            tracing::error!(error = %e, "library list");
            (Vec::new(), Some(e.vi()))
        }
    };
    let v = crate::collector::pages::viewer(who);
    let limit_mb = state
        .library()
        .map_or(0, |l| l.config().max_upload_bytes.div_ceil(1_048_576));
    match crate::web::render(
        "library.html",
        Some(&v),
        json!({
            "nav": "library",
            "rows": rows,
            "message": message,
            "error": error,
            "limit_mb": limit_mb,
            "js_path": JS_PATH,
            // The session's CSRF token rides in the query: the guard never reads an upload's body.
            "upload_action": format!("/library/upload?csrf={}", authz::percent_encode(&v.csrf)),
            "may_upload": who.user.role != Role::Auditor,
            "may_assign": who.user.role == Role::Admin,
        }),
    ) {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "library page does not render");
            debug_assert!(false, "library page does not render: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Lỗi nội bộ; xem nhật ký của máy chủ.",
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    added: Option<String>,
    assigned: Option<String>,
    /// After an assignment: how many stations got a new schedule version.
    versions: Option<usize>,
    /// After an assignment: stations whose schedule no longer validates (comma-separated).
    refused: Option<String>,
}

/// What the page says after a file was placed at `path`.
fn assigned_message(path: &str, versions: usize, refused: &str) -> String {
    let mut m = format!("Đã đặt tệp tại {path}.");
    if versions > 0 {
        m.push_str(&format!(
            " {versions} trạm nhận phiên bản lịch mới có tệp này."
        ));
    }
    if !refused.trim().is_empty() {
        m.push_str(&format!(
            " Lịch của trạm {} không còn hợp lệ với thư viện nên chưa phát hành lại; hãy mở lịch của trạm để sửa.",
            refused.trim()
        ));
    }
    m
}

async fn get_library(State(state): State<AppState>, q: Query<PageQuery>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let message = match (&q.added, &q.assigned) {
        (Some(sha), _) => Some(format!(
            "Đã tải lên và đo xong tệp {}.",
            sha.chars().take(12).collect::<String>()
        )),
        (_, Some(path)) => Some(assigned_message(
            path,
            q.versions.unwrap_or(0),
            q.refused.as_deref().unwrap_or(""),
        )),
        _ => None,
    };
    library_page(&state, &p, StatusCode::OK, message, None).await
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Read a small text field of a multipart form.
async fn text_field(field: axum::extract::multipart::Field<'_>) -> Result<String, LibraryError> {
    let bad = |e: String| LibraryError::BadField {
        field: "form",
        why: format!("biểu mẫu gửi lên bị hỏng: {e}"),
    };
    let mut out = Vec::new();
    let mut field = field;
    while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.to_string()))? {
        out.extend_from_slice(&chunk);
        if out.len() > 4096 {
            return Err(LibraryError::BadField {
                field: "form",
                why: "trường văn bản quá dài".into(),
            });
        }
    }
    String::from_utf8(out).map_err(|e| bad(e.to_string()))
}

/// The upload form (multipart: title, category, file), with or without the page's script.
async fn post_upload(State(state): State<AppState>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let address = authz::address(req.extensions());
    let lib = match library_of(&state) {
        Ok(l) => l,
        Err(e) => return library_page(&state, &p, e.status(), None, Some(e.vi())).await,
    };
    let r = receive_form(&state, lib.clone(), req).await;
    match r {
        Ok((received, meta)) => match admit(&state, lib, received, meta, &p, &address).await {
            Ok((c, _)) => see_other(&format!("/library?added={}", c.sha256)),
            Err(e) => library_page(&state, &p, e.status(), None, Some(e.vi())).await,
        },
        Err(e) => {
            let mut r = library_page(&state, &p, e.status(), None, Some(e.vi())).await;
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
    }
}

async fn receive_form(
    state: &AppState,
    lib: Arc<Library>,
    req: Request,
) -> Result<(Received, Meta), LibraryError> {
    use axum::extract::FromRequest as _;
    let mut mp = Multipart::from_request(req, state)
        .await
        .map_err(|e| LibraryError::BadField {
            field: "form",
            why: format!("cần biểu mẫu multipart/form-data: {e}"),
        })?;
    let (mut title, mut category, mut file) = (String::new(), String::new(), None);
    let secs = state.body_read_secs();
    let work = async {
        while let Some(field) = mp.next_field().await.map_err(|e| LibraryError::BadField {
            field: "form",
            why: format!("biểu mẫu gửi lên bị hỏng: {e}"),
        })? {
            match field.name().unwrap_or("") {
                "title" => title = text_field(field).await?,
                "category" => category = text_field(field).await?,
                "file" => {
                    let mut rx = lib.receiver().await?;
                    let mut field = field;
                    let mut too_large = None;
                    while let Some(chunk) =
                        field.chunk().await.map_err(|e| LibraryError::BadField {
                            field: "file",
                            why: format!("tệp gửi lên bị ngắt giữa chừng: {e}"),
                        })?
                    {
                        if too_large.is_none()
                            && let Err(e) = rx.push(&chunk).await
                        {
                            too_large = Some(e);
                        }
                    }
                    if let Some(e) = too_large {
                        return Err(e);
                    }
                    file = Some(rx.finish().await?);
                }
                _ => {
                    let _ = text_field(field).await;
                }
            }
        }
        Ok::<_, LibraryError>(())
    };
    tokio::time::timeout(Duration::from_secs(secs), work)
        .await
        .map_err(|_| LibraryError::BadField {
            field: "file",
            why: format!("tệp không gửi xong trong {secs} giây"),
        })??;
    let meta = Meta::new(&title, &category)?;
    let file = file.filter(|f| f.size > 0).ok_or(LibraryError::BadField {
        field: "file",
        why: "chưa chọn tệp".into(),
    })?;
    Ok((file, meta))
}

async fn post_assign(State(state): State<AppState>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let address = authz::address(req.extensions());
    let bytes = match authz::read_form(req.into_body()).await {
        Ok(b) => b,
        Err(f) => return authz::page_refusal(f, "/library", Some(&p)),
    };
    let f = authz::form_urlencoded_pairs(&bytes);
    let field = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let lib = match library_of(&state) {
        Ok(l) => l,
        Err(e) => return library_page(&state, &p, e.status(), None, Some(e.vi())).await,
    };
    let (sha, path) = (field("sha256"), field("path"));
    let r = if !path.is_empty() {
        place(&state, lib, sha, path, &p, &address).await
    } else {
        assign(
            &state,
            lib,
            sha,
            field("program"),
            field("month"),
            &p,
            &address,
        )
        .await
    };
    match r {
        Ok((row, rep)) => see_other(&format!(
            "/library?assigned={}&versions={}&refused={}",
            authz::percent_encode(&row.path),
            rep.published.len(),
            authz::percent_encode(&rep.refused.join(","))
        )),
        Err(e) => library_page(&state, &p, e.status(), None, Some(e.vi())).await,
    }
}

async fn script() -> Response {
    let mut r = JS.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

// ---------------------------------------------------------------------------------------------
// The API.

/// A refusal as JSON: the code, the English text, the Vietnamese text.
fn api_error(e: &LibraryError) -> Response {
    if e.status() == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "content library");
    }
    let english = if e.status() == StatusCode::INTERNAL_SERVER_ERROR {
        "internal error; nothing was stored; see the collector log".to_string()
    } else {
        e.to_string()
    };
    let mut r = (
        e.status(),
        axum::Json(json!({ "error": english, "error_vi": e.vi(), "code": e.code() })),
    )
        .into_response();
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

#[derive(Deserialize)]
struct UploadQuery {
    title: Option<String>,
    category: Option<String>,
    month: Option<String>,
    program: Option<String>,
}

/// What `POST /api/v1/content` answers.
#[derive(Serialize)]
struct UploadAnswer {
    /// `false`: the library already held these bytes (its first title kept).
    created: bool,
    content: Content,
    /// The path it was assigned to (with `month` and `program`).
    assigned: Option<String>,
}

async fn post_content(
    State(state): State<AppState>,
    q: Query<UploadQuery>,
    req: Request,
) -> Response {
    match upload_api(&state, q.0, req).await {
        Ok(a) => (
            if a.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            axum::Json(a),
        )
            .into_response(),
        Err(e) => api_error(&e),
    }
}

async fn upload_api(
    state: &AppState,
    q: UploadQuery,
    req: Request,
) -> Result<UploadAnswer, LibraryError> {
    let who = principal(&req).ok_or(LibraryError::BadField {
        field: "token",
        why: "chưa đăng nhập".into(),
    })?;
    let address = authz::address(req.extensions());
    let meta = Meta::new(
        q.title.as_deref().unwrap_or(""),
        q.category.as_deref().unwrap_or(""),
    )?;
    let assign_to = match (q.program.as_deref(), q.month.as_deref()) {
        (Some(p), Some(m)) if !p.trim().is_empty() => {
            only_admin(&who)?;
            super::parse_month(m)?;
            Some((p.to_string(), m.to_string()))
        }
        (None, None) => None,
        _ => {
            return Err(LibraryError::BadField {
                field: "program",
                why: "cần cả program và month (YYYY-MM) để gán tập".into(),
            });
        }
    };
    let lib = library_of(state)?;
    let mut rx = lib.receiver().await?;
    let mut stream = req.into_body().into_data_stream();
    let secs = state.body_read_secs();
    // Past the limit the rest is read and dropped (within the time allowed), so the client
    // gets the refusal rather than a connection reset in the middle of its upload.
    let read = async {
        let mut refused = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| LibraryError::BadField {
                field: "body",
                why: format!("tệp gửi lên bị ngắt giữa chừng: {e}"),
            })?;
            if refused.is_none()
                && let Err(e) = rx.push(&chunk).await
            {
                refused = Some(e);
            }
        }
        refused.map_or(Ok(()), Err)
    };
    tokio::time::timeout(Duration::from_secs(secs), read)
        .await
        .map_err(|_| LibraryError::BadField {
            field: "body",
            why: format!("tệp không gửi xong trong {secs} giây"),
        })??;
    let received = rx.finish().await?;
    if received.size == 0 {
        return Err(LibraryError::BadField {
            field: "body",
            why: "thân yêu cầu rỗng: gửi nội dung tệp".into(),
        });
    }
    let (content, created) = admit(state, lib.clone(), received, meta, &who, &address).await?;
    let assigned = match assign_to {
        Some((program, month)) => Some(
            assign(
                state,
                lib,
                content.sha256.clone(),
                program,
                month,
                &who,
                &address,
            )
            .await?
            .0
            .path,
        ),
        None => None,
    };
    let content = match assigned {
        Some(_) => library_of(state)?.get(&content.sha256)?.unwrap_or(content),
        None => content,
    };
    Ok(UploadAnswer {
        created,
        content,
        assigned,
    })
}

async fn list_content(State(state): State<AppState>) -> Response {
    let r = match library_of(&state) {
        Ok(lib) => blocking(move || lib.list()).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(l) => axum::Json(json!({ "content": l })).into_response(),
        Err(e) => api_error(&e),
    }
}

/// The bytes of one content: Range (206 / 416), Content-Length, `ETag: "<sha256>"` (content is
/// immutable, so the tag never changes).
async fn get_content(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    req: Request,
) -> Response {
    use tower::ServiceExt as _;
    let ok = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let lib = match library_of(&state) {
        Ok(l) => l,
        Err(e) => return api_error(&e),
    };
    let path = lib.content_path(&sha256);
    if !ok || !path.is_file() {
        return api_error(&LibraryError::NoSuchContent { sha256 });
    }
    let (mut parts, _) = req.into_parts();
    parts.headers.remove(header::ACCEPT_ENCODING);
    let req = Request::from_parts(parts, Body::empty());
    let served = tower_http::services::ServeFile::new(&path)
        .oneshot(req)
        .await;
    match served {
        Ok(resp) => {
            let mut resp = resp.map(Body::new);
            if let Ok(v) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            );
            resp
        }
        Err(never) => match never {},
    }
}

/// The library's routes (merged into the collector's router; each has its row in
/// `authz::ROUTES`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/library", get(get_library))
        .route("/library/upload", post(post_upload))
        .route("/library/assign", post(post_assign))
        .route(JS_PATH, get(script))
        .route("/api/v1/content", get(list_content).post(post_content))
        .route("/api/v1/content/{sha256}", get(get_content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_the_vietnamese_way() {
        assert_eq!(mm_ss(900.2), "15:00");
        assert_eq!(mm_ss(59.6), "01:00");
        assert_eq!(mm_ss(5400.0), "90:00");
        assert_eq!(decimal_vi(-23.04, 1), "-23,0");
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-03T22:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(when_vi(t), "04/12/2026 05:30");
    }

    #[test]
    fn the_page_renders_with_and_without_rows() {
        let v = crate::web::Viewer {
            name: "lan".into(),
            role: "admin".into(),
            role_label_vi: "Quản trị".into(),
            csrf: "t".into(),
        };
        for rows in [
            json!([]),
            json!([{"sha256": "ab", "short": "ab", "title": "<x>", "category": "cchc",
            "duration": "15:00", "loudness": "-23,0 LUFS", "true_peak": "-1,0 dBTP", "size": "7,0 MB",
            "uploader": "lan", "uploaded": "04/12/2026 05:30",
            "used": [{"text": "cchc/2027-01.mp3 (tập «Cải cách hành chính» tháng 01/2027)", "hint": "chương trình cchc"},
                {"text": "jingle.ogg", "hint": null}]}]),
        ] {
            let html = crate::web::render(
                "library.html",
                Some(&v),
                json!({"nav": "library", "rows": rows, "message": null, "error": null,
                    "limit_mb": 200, "js_path": JS_PATH, "upload_action": "/library/upload?csrf=t",
                    "may_upload": true, "may_assign": true}),
            )
            .unwrap();
            assert!(html.contains("upload-form"), "{html}");
            assert!(!html.contains("<x>"), "{html}");
        }
    }
}
