//! The office's bulletin pages (issue #15, docs/bulletins.md "Pages"): the compose page
//! (`/bulletins/new`, admins: audio from the content library, uploaded on the spot, or a text read
//! by text-to-speech (`collector::tts`, through the send path), targets,
//! priority, validity window in local time, repeats) and the list (`/bulletins`, with a cancel
//! button for admins).
//!
//! **Invariant:** a page sends and cancels only through [`bulletins::send_as`] and
//! [`bulletins::cancel_as`] — the same compose, check, sign, store and audit as
//! `POST /api/v1/bulletins` — so a page can send nothing the API would refuse, and a refused
//! send stores no bulletin (an audio file uploaded with it stays in the library, as any upload).
//! Who may use each route is [`authz::ROUTES`]'s business; every text shown is Vietnamese, codes
//! are turned into text here.

use axum::Router;
use axum::extract::{Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

use super::authz::{self, Principal};
use super::bulletins::{self, SendError, SendRequest};
use super::bulletins::{BulletinAiring, StateKind, StationState, station_states};
use super::http::AppState;
use super::library::web::{admit, library_of, mm_ss};
use super::library::{LibraryError, Meta};
use crate::bulletin::body::{
    MAX_INTERVAL_SECS, MAX_REPEATS, MAX_TITLE_CHARS, MAX_WINDOW_SECS, MIN_INTERVAL_SECS,
    MIN_WINDOW_SECS,
};
use crate::report::report_offset;
use crate::schedule::Priority;

/// How the compose page writes and reads an instant: local time (Asia/Ho_Chi_Minh, UTC+7, no
/// summer time), `dd/mm/yyyy HH:MM`.
pub const WHEN_FORMAT: &str = "%d/%m/%Y %H:%M";

/// The library category an audio file uploaded with a bulletin gets.
pub const UPLOAD_CATEGORY: &str = "bulletin";

/// Where the bulletin pages' script is served (its version in the name).
pub const JS_PATH: &str = "/static/bulletins-1.js";
/// The bulletin pages' script: the cancel button's confirmation and the status page's refresh.
pub const JS: &str = include_str!("../web/static/bulletins.js");

/// `t` as the compose page writes it.
pub fn when_local(t: DateTime<Utc>) -> String {
    t.with_timezone(&report_offset())
        .format(WHEN_FORMAT)
        .to_string()
}

/// A local `dd/mm/yyyy HH:MM` (UTC+7) as an instant.
pub fn parse_local(s: &str) -> Option<DateTime<Utc>> {
    let n = NaiveDateTime::parse_from_str(s.trim(), WHEN_FORMAT).ok()?;
    report_offset()
        .from_local_datetime(&n)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Vietnamese name of a priority code.
pub fn priority_vi(code: &str) -> &'static str {
    bulletins::priority_vi(code)
}

/// Targets (`all`, `area:<p>`, `stations:<a>,<b>`) in Vietnamese.
pub fn targets_vi(to: &str) -> String {
    if to == "all" {
        "Tất cả các trạm".into()
    } else if let Some(p) = to.strip_prefix("area:") {
        format!("Các trạm có mã ĐVHC bắt đầu bằng {p}")
    } else if let Some(l) = to.strip_prefix("stations:") {
        let n = l.split(',').filter(|s| !s.is_empty()).count();
        format!("{n} trạm: {}", l.replace(',', ", "))
    } else {
        to.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// The compose form.

/// The compose form as typed (what a refusal shows again).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Form {
    pub title: String,
    /// `library`, `upload` or `text` (read by text-to-speech).
    pub source: String,
    /// The library item's SHA-256.
    pub audio: String,
    /// `all`, `area` or `stations`.
    pub to_kind: String,
    pub area: String,
    pub stations: String,
    /// `normal`, `priority` or `emergency`.
    pub priority: String,
    pub not_before: String,
    pub not_after: String,
    pub repeats: String,
    pub interval_mins: String,
    /// The announcement's text (read by espeak-ng when `source` is `text`).
    pub text: String,
}

impl Form {
    /// A fresh form at `now`: valid from now for six hours, one airing, normal priority.
    pub fn fresh(now: DateTime<Utc>) -> Form {
        Form {
            source: "library".into(),
            to_kind: "all".into(),
            priority: "normal".into(),
            not_before: when_local(now),
            not_after: when_local(now + Duration::hours(6)),
            repeats: "1".into(),
            interval_mins: "0".into(),
            ..Form::default()
        }
    }

    fn set(&mut self, name: &str, value: String) {
        match name {
            "title" => self.title = value,
            "source" => self.source = value,
            "audio" => self.audio = value,
            "to_kind" => self.to_kind = value,
            "area" => self.area = value,
            "stations" => self.stations = value,
            "priority" => self.priority = value,
            "not_before" => self.not_before = value,
            "not_after" => self.not_after = value,
            "repeats" => self.repeats = value,
            "interval_mins" => self.interval_mins = value,
            "text" => self.text = value,
            _ => {}
        }
    }
}

/// Field errors of the compose form: the form field's name → its Vietnamese text.
pub type Errors = BTreeMap<&'static str, String>;

/// Check the form (pure) and build the request it asks for with audio `audio` (a library item's
/// SHA-256, or the file just uploaded); every refusal in Vietnamese, by field, before the
/// bulletin's own checks (which stay the authority: [`bulletins::compose`]).
pub fn request_of(f: &Form, audio: &str, now: DateTime<Utc>) -> Result<SendRequest, Errors> {
    let mut e = Errors::new();
    let title = f.title.trim();
    let chars = title.chars().count();
    if chars == 0 {
        e.insert("title", "Hãy nhập tiêu đề bản tin.".into());
    } else if chars > MAX_TITLE_CHARS {
        e.insert(
            "title",
            format!("Tiêu đề dài {chars} ký tự, tối đa {MAX_TITLE_CHARS}."),
        );
    } else if title.chars().any(char::is_control) {
        e.insert("title", "Tiêu đề có ký tự điều khiển.".into());
    }
    let text = (f.source == "text").then(|| f.text.trim().to_string());
    if let Some(t) = &text {
        let n = t.chars().count();
        if n == 0 {
            e.insert("text", "Hãy nhập văn bản cần đọc.".into());
        } else if n > crate::bulletin::body::MAX_TEXT_CHARS {
            e.insert(
                "text",
                format!(
                    "Văn bản dài {n} ký tự, tối đa {}.",
                    crate::bulletin::body::MAX_TEXT_CHARS
                ),
            );
        }
    } else if audio.trim().is_empty() {
        if f.source == "upload" {
            e.insert("file", "Chưa chọn tệp âm thanh để tải lên.".into());
        } else {
            e.insert("audio", "Hãy chọn một tệp trong thư viện.".into());
        }
    }
    let to = match f.to_kind.as_str() {
        "all" => "all".to_string(),
        "area" => {
            let p = f.area.trim();
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                e.insert(
                    "area",
                    "Mã vùng là 1 đến 5 chữ số đầu của mã ĐVHC (ví dụ 79 hoặc 79101).".into(),
                );
            }
            format!("area:{p}")
        }
        "stations" => {
            let ids: Vec<&str> = f
                .stations
                .split([',', ' ', '\n', '\r', ';'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if ids.is_empty() {
                e.insert(
                    "stations",
                    "Hãy nhập ít nhất một mã trạm (cách nhau bởi dấu phẩy).".into(),
                );
            }
            format!("stations:{}", ids.join(","))
        }
        _ => {
            e.insert("to_kind", "Hãy chọn nơi nhận.".into());
            String::new()
        }
    };
    let priority = match f.priority.as_str() {
        "normal" => Priority::Normal,
        "priority" => Priority::Priority,
        "emergency" => Priority::Emergency,
        _ => {
            e.insert("priority", "Hãy chọn mức ưu tiên.".into());
            Priority::Normal
        }
    };
    let when = |s: &str| -> Option<DateTime<Utc>> { parse_local(s) };
    let not_before = if f.not_before.trim().is_empty() {
        Some(now)
    } else {
        let t = when(&f.not_before);
        if t.is_none() {
            e.insert(
                "not_before",
                format!(
                    "«{}» không phải thời điểm dạng ngày/tháng/năm giờ:phút (ví dụ {}).",
                    f.not_before.trim(),
                    when_local(now)
                ),
            );
        }
        t
    };
    let not_after = when(&f.not_after);
    if not_after.is_none() {
        e.insert(
            "not_after",
            format!(
                "«{}» không phải thời điểm dạng ngày/tháng/năm giờ:phút (ví dụ {}).",
                f.not_after.trim(),
                when_local(now + Duration::hours(6))
            ),
        );
    }
    let mut window = None;
    if let (Some(a), Some(b)) = (not_before, not_after) {
        let secs = (b - a).num_seconds();
        if b <= a {
            e.insert("not_after", "Hết hiệu lực phải sau lúc bắt đầu.".into());
        } else if !(MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(&secs) {
            e.insert(
                "not_after",
                "Thời gian hiệu lực phải từ 1 phút đến 7 ngày.".into(),
            );
        } else if b <= now {
            e.insert("not_after", "Thời điểm hết hiệu lực đã qua.".into());
        } else {
            window = Some(secs);
        }
    }
    let repeats = match f.repeats.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_REPEATS).contains(&n) => n,
        _ => {
            e.insert(
                "repeats",
                format!("Số lần phát là một số từ 1 đến {MAX_REPEATS}."),
            );
            1
        }
    };
    let interval_mins = if repeats <= 1 {
        0
    } else {
        let (lo, hi) = (MIN_INTERVAL_SECS / 60, MAX_INTERVAL_SECS / 60);
        match f.interval_mins.trim().parse::<u32>() {
            Ok(m) if (lo..=hi).contains(&m) => {
                let span = i64::from(repeats - 1) * i64::from(m) * 60;
                if window.is_some_and(|w| span >= w) {
                    e.insert(
                        "interval_mins",
                        format!(
                            "{repeats} lần cách nhau {m} phút cần {} phút: lần cuối sẽ bắt đầu sau khi hết hiệu lực. Hãy giảm số lần, khoảng cách, hoặc kéo dài thời gian hiệu lực.",
                            span / 60
                        ),
                    );
                }
                m
            }
            _ => {
                e.insert(
                    "interval_mins",
                    format!("Khoảng cách giữa hai lần phát là từ {lo} đến {hi} phút."),
                );
                0
            }
        }
    };
    if !e.is_empty() {
        return Err(e);
    }
    Ok(SendRequest {
        title: title.to_string(),
        audio: audio.trim().to_string(),
        priority,
        to,
        not_before,
        // Checked above: present when there is no error.
        not_after: not_after.unwrap_or(now),
        repeats,
        interval_mins,
        // A text with no audio is read by text-to-speech (`bulletins::send_as`).
        text,
    })
}

/// The form field a send refusal belongs to, with its Vietnamese text (the field prefix of
/// [`SendError`]'s text dropped).
fn send_error_field(e: &SendError, f: &Form) -> (&'static str, String) {
    let text = e.to_string();
    let text = match e.field() {
        Some(fld) => text
            .strip_prefix(&format!("{fld}: "))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    };
    let text = capitalise(&text);
    let field = match e.field() {
        Some("title") => "title",
        Some("audio") if f.source == "upload" => "file",
        Some("audio") => "audio",
        Some("to") => match f.to_kind.as_str() {
            "area" => "area",
            "stations" => "stations",
            _ => "to_kind",
        },
        Some("not_before") => "not_before",
        Some("not_after") => "not_after",
        Some("repeats") => "repeats",
        Some("interval_mins") => "interval_mins",
        Some("text") => "text",
        _ => "form",
    };
    (field, text)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn principal(req: &Request) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Render `template` for `who` (never cached: the pages hold CSRF tokens and live state).
fn page(status: StatusCode, template: &str, who: &Principal, ctx: serde_json::Value) -> Response {
    let v = super::pages::viewer(who);
    match crate::web::render(template, Some(&v), ctx) {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "bulletin page does not render");
            debug_assert!(false, "bulletin page does not render: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Lỗi nội bộ: trang không hiển thị được; xem nhật ký của máy chủ.",
            )
                .into_response()
        }
    }
}

fn internal(e: impl std::fmt::Display, who: Option<&Principal>) -> Response {
    tracing::error!(error = %e, "bulletin page");
    super::pages::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Lỗi",
        "Lỗi nội bộ; không có gì thay đổi. Xem nhật ký của máy chủ.",
        who,
    )
}

/// A library item as the compose page offers it.
#[derive(Serialize)]
struct Item {
    sha256: String,
    label: String,
}

async fn compose_page(
    state: &AppState,
    who: &Principal,
    status: StatusCode,
    form: &Form,
    errors: &Errors,
) -> Response {
    let items = match library_of(state) {
        Ok(lib) => match tokio::task::spawn_blocking(move || lib.list()).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return internal(e, Some(who)),
            Err(e) => return internal(e, Some(who)),
        },
        Err(_) => Vec::new(),
    };
    let items: Vec<Item> = items
        .into_iter()
        .map(|c| Item {
            label: format!(
                "{} ({}, {} · {}…)",
                c.title,
                mm_ss(c.duration_secs),
                c.category,
                c.sha256.chars().take(12).collect::<String>()
            ),
            sha256: c.sha256,
        })
        .collect();
    let csrf = who.csrf().to_string();
    let summary = (!errors.is_empty()).then(|| {
        format!(
            "Chưa gửi: {} ô cần sửa (xem bên dưới). Không có bản tin nào được gửi.",
            errors.len()
        )
    });
    let limit_mb = state
        .library()
        .map_or(0, |l| l.config().max_upload_bytes.div_ceil(1_048_576));
    page(
        status,
        "bulletin_new.html",
        who,
        json!({
            "nav": "bulletins",
            "form": form,
            "errors": errors,
            "summary": summary,
            "items": items,
            "limit_mb": limit_mb,
            "has_library": state.library().is_some(),
            "has_centre": state.centre().is_some(),
            // The session's CSRF token rides in the query: the guard never reads an upload's body.
            "action": format!("/bulletins/new?csrf={}", authz::percent_encode(&csrf)),
            "example": when_local(state.now()),
        }),
    )
}

async fn get_new(State(state): State<AppState>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login?next=/bulletins/new");
    };
    let form = Form::fresh(state.now());
    compose_page(&state, &p, StatusCode::OK, &form, &Errors::new()).await
}

/// Largest text field of the compose form, bytes (a 5,000-character text in Vietnamese takes up
/// to three bytes a character).
const MAX_TEXT_FIELD_BYTES: usize = 32 * 1024;

/// Read a text field of the compose form.
async fn text_of(mut field: axum::extract::multipart::Field<'_>) -> Result<String, LibraryError> {
    let bad = |why: String| LibraryError::BadField { field: "form", why };
    let mut out = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| bad(format!("biểu mẫu gửi lên bị hỏng: {e}")))?
    {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_TEXT_FIELD_BYTES {
            return Err(bad("trường văn bản quá dài".into()));
        }
    }
    String::from_utf8(out).map_err(|e| bad(format!("biểu mẫu gửi lên bị hỏng: {e}")))
}

/// Read the compose form (multipart), streaming a chosen file into the content library.
async fn read_form(
    state: &AppState,
    req: Request,
) -> Result<(Form, Option<super::library::Received>), LibraryError> {
    use axum::extract::FromRequest as _;
    let lib = library_of(state).ok();
    let mut mp = Multipart::from_request(req, state)
        .await
        .map_err(|e| LibraryError::BadField {
            field: "form",
            why: format!("cần biểu mẫu multipart/form-data: {e}"),
        })?;
    let mut form = Form::default();
    let mut file = None;
    let secs = state.body_read_secs();
    let work = async {
        while let Some(field) = mp.next_field().await.map_err(|e| LibraryError::BadField {
            field: "form",
            why: format!("biểu mẫu gửi lên bị hỏng: {e}"),
        })? {
            let name = field.name().unwrap_or("").to_string();
            if name != "file" {
                let v = text_of(field).await?;
                form.set(&name, v);
                continue;
            }
            let Some(lib) = &lib else {
                let _ = text_of(field).await;
                continue;
            };
            let mut rx = lib.receiver().await?;
            let mut field = field;
            let mut too_large = None;
            while let Some(chunk) = field.chunk().await.map_err(|e| LibraryError::BadField {
                field: "file",
                why: format!("tệp gửi lên bị ngắt giữa chừng: {e}"),
            })? {
                if too_large.is_none()
                    && let Err(e) = rx.push(&chunk).await
                {
                    too_large = Some(e);
                }
            }
            if let Some(e) = too_large {
                return Err(e);
            }
            let got = rx.finish().await?;
            if got.size > 0 {
                file = Some(got);
            }
        }
        Ok::<_, LibraryError>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(secs), work)
        .await
        .map_err(|_| LibraryError::BadField {
            field: "file",
            why: format!("biểu mẫu không gửi xong trong {secs} giây"),
        })??;
    Ok((form, file))
}

/// `POST /bulletins/new` (admins; multipart, the CSRF token in the query): upload the chosen
/// file into the library (if any), then send as the API does.
async fn post_new(State(state): State<AppState>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login?next=/bulletins/new");
    };
    let address = authz::address(req.extensions());
    let now = state.now();
    let (mut form, file) = match read_form(&state, req).await {
        Ok(x) => x,
        Err(e) => {
            let mut errors = Errors::new();
            errors.insert("file", e.vi());
            let mut r = compose_page(&state, &p, e.status(), &Form::fresh(now), &errors).await;
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return r;
        }
    };
    let mut errors = Errors::new();
    let mut audio = if form.source == "upload" || form.source == "text" {
        String::new()
    } else {
        form.audio.clone()
    };
    if form.source == "upload"
        && let Some(received) = file
    {
        let title = if form.title.trim().is_empty() {
            "Bản tin".to_string()
        } else {
            form.title.trim().chars().take(MAX_TITLE_CHARS).collect()
        };
        let stored = match (library_of(&state), Meta::new(&title, UPLOAD_CATEGORY)) {
            (Ok(lib), Ok(meta)) => admit(&state, lib, received, meta, &p, &address).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        match stored {
            Ok((c, _)) => {
                // From here the file is a library item: a refusal shows it chosen.
                audio = c.sha256.clone();
                form.source = "library".into();
                form.audio = c.sha256;
            }
            Err(e) => {
                errors.insert("file", e.vi());
            }
        }
    }
    let send = match request_of(&form, &audio, now) {
        Ok(s) if errors.is_empty() => s,
        Ok(_) => {
            return compose_page(&state, &p, StatusCode::UNPROCESSABLE_ENTITY, &form, &errors)
                .await;
        }
        Err(more) => {
            errors.extend(more);
            return compose_page(&state, &p, StatusCode::UNPROCESSABLE_ENTITY, &form, &errors)
                .await;
        }
    };
    match bulletins::send_as(&state, &p, &address, send).await {
        Ok((b, _)) => see_other(&format!("/bulletins?sent={}", b.id.to_hex())),
        Err(SendError::Internal(m)) => internal(m, Some(&p)),
        Err(e) => {
            let (field, text) = send_error_field(&e, &form);
            errors.insert(field, text);
            let status = if matches!(e, SendError::NoCentreKey) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            compose_page(&state, &p, status, &form, &errors).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The list and the cancel button.

/// A bulletin as the list shows it.
#[derive(Serialize)]
struct ListRow {
    id: String,
    title: String,
    priority: String,
    priority_code: String,
    to: String,
    sent_at: String,
    sent_by: String,
    window: String,
    repeats: String,
    cancelled: Option<String>,
    open: bool,
    /// The stations by state: `Đã phát 2 · Đang gửi 1 / 3 trạm`.
    counts: String,
}

#[derive(Deserialize)]
struct ListQuery {
    sent: Option<String>,
    cancelled: Option<String>,
}

fn at_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn local(s: &str) -> String {
    at_rfc3339(s).map(when_local).unwrap_or_default()
}

/// How repeats read: `1 lần` or `3 lần, cách 30 phút`.
pub fn repeats_vi(count: u32, interval_secs: u32) -> String {
    if count > 1 {
        format!("{count} lần, cách {} phút", interval_secs / 60)
    } else {
        "1 lần".into()
    }
}

async fn list_page(state: &AppState, who: &Principal, q: &ListQuery) -> Response {
    let (registry, now) = (state.registry(), state.now());
    let got = state
        .auth()
        .with(move |c| -> Result<_, SendError> {
            let l = bulletins::list(c)?;
            // Each bulletin's stations by group (the same derivation as its page).
            let mut counts = Vec::with_capacity(l.len());
            for b in &l {
                counts.push(station_states(c, &registry, &b.id, now)?.map(|st| {
                    let mut n = BTreeMap::<&'static str, usize>::new();
                    for s in &st.stations {
                        *n.entry(group(s.state, s.code.as_deref())).or_default() += 1;
                    }
                    let parts: Vec<String> = GROUPS
                        .iter()
                        .filter_map(|(g, label)| n.get(g).map(|k| format!("{label} {k}")))
                        .collect();
                    format!("{} / {} trạm", parts.join(" · "), st.stations.len())
                }));
            }
            Ok((l, counts))
        })
        .await;
    let (listed, counts) = match got {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return internal(e, Some(who)),
        Err(e) => return internal(format!("{e:?}"), Some(who)),
    };
    let rows: Vec<ListRow> = listed
        .into_iter()
        .zip(counts)
        .map(|(b, counts)| ListRow {
            counts: counts.unwrap_or_default(),
            open: b.cancelled_at.is_none() && at_rfc3339(&b.not_after).is_some_and(|t| t > now),
            priority: priority_vi(&b.priority).to_string(),
            priority_code: b.priority.clone(),
            to: targets_vi(&b.to),
            sent_at: local(&b.created_at),
            window: format!("{} – {}", local(&b.not_before), local(&b.not_after)),
            repeats: repeats_vi(b.repeats, b.interval_secs),
            cancelled: b.cancelled_at.as_deref().map(|t| {
                format!(
                    "Đã hủy lúc {} ({})",
                    local(t),
                    b.cancelled_by.clone().unwrap_or_default()
                )
            }),
            sent_by: b.created_by,
            title: b.title,
            id: b.id,
        })
        .collect();
    let message = match (&q.sent, &q.cancelled) {
        (Some(id), _) => rows
            .iter()
            .find(|r| &r.id == id)
            .map(|r| format!("Đã gửi bản tin «{}».", r.title)),
        (_, Some(id)) => rows
            .iter()
            .find(|r| &r.id == id)
            .map(|r| format!("Đã hủy bản tin «{}».", r.title)),
        _ => None,
    };
    page(
        StatusCode::OK,
        "bulletins.html",
        who,
        json!({
            "nav": "bulletins",
            "rows": rows,
            "message": message,
            "may_send": who.user.role == super::accounts::Role::Admin,
            "js_path": JS_PATH,
        }),
    )
}

async fn get_list(State(state): State<AppState>, q: Query<ListQuery>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login?next=/bulletins");
    };
    list_page(&state, &p, &q.0).await
}

/// `POST /bulletins/{bulletin}/cancel` (admins; CSRF in the form, checked by the guard).
async fn post_cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login?next=/bulletins");
    };
    let address = authz::address(req.extensions());
    match bulletins::cancel_as(&state, &p, &address, &id).await {
        Ok(_) => see_other(&format!(
            "/bulletins?cancelled={}",
            authz::percent_encode(&id)
        )),
        Err(SendError::Internal(m)) => internal(m, Some(&p)),
        Err(e @ SendError::NotFound(_)) => super::pages::error_page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy",
            &format!("{}.", capitalise(&e.to_string())),
            Some(&p),
        ),
        Err(e) => super::pages::error_page(
            StatusCode::CONFLICT,
            "Không hủy được",
            &format!("{}. Không có gì thay đổi.", capitalise(&e.to_string())),
            Some(&p),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// A bulletin's live status and its report.

/// The groups the status page counts and filters by (in this order): what an operator watching
/// needs to tell apart. `state` query values are these codes.
pub const GROUPS: &[(&str, &str)] = &[
    ("delivered", "Đã nhận"),
    ("aired", "Đã phát"),
    ("failed", "Lỗi"),
    ("refused", "Từ chối"),
    ("expired", "Hết hạn"),
    ("sending", "Đang gửi"),
    ("cancelled", "Đã hủy"),
];

/// The group of a station's state (and its code, for a skipped airing): aired and partial are
/// aired; failed and preempted (interrupted: the station airs it again if it can) are failures;
/// a skipped airing is expired (`bulletin.expired`), cancelled (`bulletin.cancelled`) or refused
/// (any other code: too long, audio); `expired_undelivered` is expired.
pub fn group(state: StateKind, code: Option<&str>) -> &'static str {
    match state {
        StateKind::Aired | StateKind::Partial => "aired",
        StateKind::Failed | StateKind::Preempted => "failed",
        StateKind::Delivered => "delivered",
        StateKind::Refused => "refused",
        StateKind::Cancelled => "cancelled",
        StateKind::ExpiredUndelivered => "expired",
        StateKind::Sending => "sending",
        StateKind::Skipped => match code {
            Some("bulletin.expired") => "expired",
            Some("bulletin.cancelled") => "cancelled",
            _ => "refused",
        },
    }
}

fn group_vi(code: &str) -> &'static str {
    GROUPS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("", |(_, v)| v)
}

/// An airing's outcome in Vietnamese.
pub fn outcome_vi(outcome: &str) -> &'static str {
    match outcome {
        "aired" => "Đã phát",
        "partial" => "Phát một phần",
        "preempted" => "Bị ngắt",
        "failed" => "Lỗi phát",
        "skipped" => "Không phát",
        "missed" => "Bỏ lỡ",
        _ => "Khác",
    }
}

/// A reason code's Vietnamese text (`reason`'s table).
fn code_vi(code: &str) -> String {
    crate::reason::ReasonCode::parse(code).vi().to_string()
}

/// A station-local instant as pages show it: `04/12/2026 05:30:12` (the station's own offset).
fn local_secs(t: &DateTime<chrono::FixedOffset>) -> String {
    t.format("%d/%m/%Y %H:%M:%S").to_string()
}

/// A collector (UTC) instant on the reporting offset: `04/12/2026 05:30:12`.
fn utc_secs(t: DateTime<Utc>) -> String {
    t.with_timezone(&report_offset())
        .format("%d/%m/%Y %H:%M:%S")
        .to_string()
}

/// One airing as the page, the JSON and the report show it.
#[derive(Debug, Clone, Serialize)]
pub struct AiringRow {
    pub repeat: u32,
    pub outcome: String,
    pub outcome_vi: String,
    /// When it went on air (else when it was due), station-local.
    pub started_at: Option<String>,
    /// Seconds aired, `45,0`.
    pub aired_secs: String,
    /// `-23,0 LUFS` (the record's evidence).
    pub loudness: Option<String>,
    pub reason_code: Option<String>,
    pub reason_vi: Option<String>,
    /// The line the page shows.
    pub line: String,
}

/// One targeted station as the page, the JSON and the report show it.
#[derive(Debug, Clone, Serialize)]
pub struct StationRow {
    pub station: String,
    pub name: String,
    pub area_code: String,
    /// The group code ([`GROUPS`]).
    pub state: String,
    pub state_vi: String,
    /// The station's own state code (`aired`, `partial`, `skipped`, `expired_undelivered`, …).
    pub state_code: String,
    pub code: Option<String>,
    /// Why or when, in Vietnamese.
    pub detail_vi: String,
    /// When the station received it (its receipt, the station's clock).
    pub delivered_at: Option<String>,
    /// Latest repeat first.
    pub airings: Vec<AiringRow>,
}

fn airing_row(a: &BulletinAiring) -> AiringRow {
    let started_at = a.at.as_ref().map(local_secs);
    let aired_secs = crate::web::fmt::decimal_vi(a.aired_secs, 1);
    let loudness = a
        .loudness_lufs
        .map(|l| format!("{} LUFS", crate::web::fmt::decimal_vi(l, 1)));
    let reason_vi = a.reason_code.as_deref().map(code_vi);
    let mut line = format!("Lần {}: {}", a.repeat, outcome_vi(&a.outcome));
    if let Some(t) = &started_at {
        line.push_str(&format!(" lúc {t}"));
    }
    if a.aired_secs > 0.0 || matches!(a.outcome.as_str(), "aired" | "partial") {
        line.push_str(&format!(", {aired_secs} giây"));
    }
    if let Some(l) = &loudness {
        line.push_str(&format!(", {l}"));
    }
    if let Some(r) = &reason_vi {
        line.push_str(&format!(" — {r}"));
    }
    AiringRow {
        repeat: a.repeat,
        outcome: a.outcome.clone(),
        outcome_vi: outcome_vi(&a.outcome).to_string(),
        started_at,
        aired_secs,
        loudness,
        reason_code: a.reason_code.clone(),
        reason_vi,
        line,
    }
}

/// A station's state as shown (pure).
pub fn station_row(s: &StationState) -> StationRow {
    let g = group(s.state, s.code.as_deref());
    let delivered_at = s
        .receipt_received_at
        .and(s.at)
        .filter(|_| matches!(s.state, StateKind::Delivered | StateKind::Refused))
        .map(utc_secs);
    let airings: Vec<AiringRow> = s.airings.iter().map(airing_row).collect();
    let detail_vi = match s.state {
        StateKind::Sending => "Trạm chưa báo đã nhận".to_string(),
        StateKind::Delivered => format!(
            "Trạm đã nhận lúc {}, chưa phát",
            s.at.map(utc_secs).unwrap_or_default()
        ),
        StateKind::Refused | StateKind::Cancelled | StateKind::ExpiredUndelivered => s
            .code
            .as_deref()
            .map(code_vi)
            .unwrap_or_else(|| s.state.vi().to_string()),
        _ => airings.first().map(|a| a.line.clone()).unwrap_or_default(),
    };
    StationRow {
        station: s.station.clone(),
        name: s.name.clone(),
        area_code: s.area_code.clone(),
        state: g.to_string(),
        state_vi: group_vi(g).to_string(),
        state_code: s.state.as_str().to_string(),
        code: s.code.clone(),
        detail_vi,
        delivered_at,
        airings,
    }
}

/// A bulletin as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Head {
    pub id: String,
    pub title: String,
    pub priority: String,
    pub priority_code: String,
    pub to: String,
    pub window: String,
    pub repeats: String,
    pub sent: String,
    pub synthetic: bool,
    pub text: Option<String>,
    pub cancelled: Option<String>,
    pub duration: String,
}

/// What the page, the JSON and the report of one bulletin are made of.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub head: Head,
    /// (group code, label, how many), every group of [`GROUPS`].
    pub counts: Vec<(String, String, usize)>,
    pub total: usize,
    pub rows: Vec<StationRow>,
}

/// Read bulletin `id`'s head and every targeted station's state at `now` (`None`: no such
/// bulletin).
fn read_status(
    conn: &crate::collector::db::Conn,
    registry: &super::registry::Registry,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Status>, SendError> {
    use crate::collector::db::{OptionalExtension as _, params};
    /// The envelope, who sent it and when, who cancelled it and when.
    type Stored = (String, String, i64, Option<String>, Option<i64>);
    let row: Option<Stored> = conn
        .query_row(
            "SELECT envelope, created_by, created_unix_ms, cancelled_by, cancelled_unix_ms
             FROM bulletins WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((envelope, by, created_ms, cancelled_by, cancelled_ms)) = row else {
        return Ok(None);
    };
    let b = crate::centre::signed::Envelope::decode(envelope.as_bytes())
        .map_err(|e| SendError::Internal(format!("stored bulletin {id}: {e}")))
        .and_then(|env| {
            crate::bulletin::Bulletin::decode(&env.body)
                .map_err(|e| SendError::Internal(format!("stored bulletin {id}: {e}")))
        })?;
    let Some(states) = station_states(conn, registry, id, now)? else {
        return Ok(None);
    };
    let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    let code = |p: Priority| match p {
        Priority::Normal => "normal",
        Priority::Priority => "priority",
        Priority::Emergency => "emergency",
    };
    let head = Head {
        id: id.to_string(),
        title: b.title.clone(),
        priority: priority_vi(code(b.priority)).to_string(),
        priority_code: code(b.priority).to_string(),
        to: targets_vi(&bulletins::targets_text(&b.targets)),
        window: format!("{} – {}", when_local(b.not_before), when_local(b.not_after)),
        repeats: repeats_vi(b.repeats.count, b.repeats.interval_secs),
        sent: format!("{} ({by})", when_local(at(created_ms))),
        synthetic: b.synthetic,
        text: b.text.clone(),
        cancelled: cancelled_ms.map(|ms| {
            format!(
                "Đã hủy lúc {} ({})",
                when_local(at(ms)),
                cancelled_by.unwrap_or_default()
            )
        }),
        duration: mm_ss(b.audio.duration_ms as f64 / 1000.0),
    };
    let rows: Vec<StationRow> = states.stations.iter().map(station_row).collect();
    let counts = GROUPS
        .iter()
        .map(|(c, label)| {
            (
                c.to_string(),
                label.to_string(),
                rows.iter().filter(|r| r.state == *c).count(),
            )
        })
        .collect();
    Ok(Some(Status {
        head,
        counts,
        total: rows.len(),
        rows,
    }))
}

/// Why a bulletin's status cannot be shown.
enum StatusError {
    NotFound,
    Internal(String),
}

async fn status_of(state: &AppState, id: &str) -> Result<Status, StatusError> {
    if crate::bulletin::BulletinId::parse(id).is_none() {
        return Err(StatusError::NotFound);
    }
    let (registry, now, id) = (state.registry(), state.now(), id.to_string());
    match state
        .auth()
        .with(move |c| read_status(c, &registry, &id, now))
        .await
    {
        Ok(Ok(Some(s))) => Ok(s),
        Ok(Ok(None)) => Err(StatusError::NotFound),
        Ok(Err(e)) => Err(StatusError::Internal(e.to_string())),
        Err(e) => Err(StatusError::Internal(format!("{e:?}"))),
    }
}

fn status_refusal(e: StatusError, id: &str, who: &Principal) -> Response {
    match e {
        StatusError::NotFound => super::pages::error_page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy",
            &format!("Không có bản tin {id}."),
            Some(who),
        ),
        StatusError::Internal(m) => internal(m, Some(who)),
    }
}

#[derive(Deserialize)]
struct StateQuery {
    state: Option<String>,
}

/// The rows in group `state` (all when none or unknown), and the filter's code.
fn filtered(rows: Vec<StationRow>, state: Option<&str>) -> (Vec<StationRow>, Option<String>) {
    match state.filter(|s| GROUPS.iter().any(|(c, _)| c == s)) {
        Some(s) => (
            rows.into_iter().filter(|r| r.state == s).collect(),
            Some(s.to_string()),
        ),
        None => (rows, None),
    }
}

/// `GET /bulletins/{bulletin}` (admins, auditors): the live status page.
async fn get_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Query<StateQuery>,
    req: Request,
) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login?next=/bulletins");
    };
    let st = match status_of(&state, &id).await {
        Ok(s) => s,
        Err(e) => return status_refusal(e, &id, &p),
    };
    let (rows, filter) = filtered(st.rows, q.state.as_deref());
    let filter_vi = filter.as_deref().map(group_vi);
    page(
        StatusCode::OK,
        "bulletin.html",
        &p,
        json!({
            "nav": "bulletins",
            "head": st.head,
            "counts": st.counts,
            "total": st.total,
            "rows": rows,
            "filter": filter,
            "filter_vi": filter_vi,
            "groups": GROUPS,
            "js_path": JS_PATH,
            "refresh_secs": REFRESH_SECS,
            "updated": utc_secs(state.now()),
        }),
    )
}

/// How often the status page asks for the stations' states again, seconds.
pub const REFRESH_SECS: u64 = 3;

/// `GET /api/v1/bulletins/{bulletin}/stations` (admins, auditors): the page's data.
async fn get_stations_json(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Query<StateQuery>,
) -> Response {
    match status_of(&state, &id).await {
        Ok(st) => {
            let (rows, _) = filtered(st.rows, q.state.as_deref());
            let counts: serde_json::Map<String, serde_json::Value> = st
                .counts
                .iter()
                .map(|(c, _, n)| (c.clone(), json!(n)))
                .collect();
            let mut r = axum::Json(json!({
                "id": st.head.id,
                "synthetic": st.head.synthetic,
                "cancelled": st.head.cancelled.is_some(),
                "counts": counts,
                "total": st.total,
                "updated": utc_secs(state.now()),
                "stations": rows,
            }))
            .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(StatusError::NotFound) => {
            let text = format!("Không có bản tin {id}.");
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": text, "error_vi": text })),
            )
                .into_response()
        }
        Err(StatusError::Internal(m)) => {
            tracing::error!(error = %m, "bulletin stations");
            let text = "Lỗi nội bộ; xem nhật ký của máy chủ.";
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({ "error": text, "error_vi": text })),
            )
                .into_response()
        }
    }
}

/// The report's column titles: one row per targeted station and repeat (a station with no
/// airing journaled: one row, *Lần phát* empty). Tools read by position: a new column goes last.
pub const REPORT_HEADERS: [&str; 13] = [
    "Mã trạm",
    "Tên trạm",
    "Mã ĐVHC",
    "Trạng thái",
    "Chi tiết",
    "Trạm nhận lúc",
    "Lần phát",
    "Kết quả lần phát",
    "Giờ phát (giờ trạm)",
    "Thời lượng đã phát (giây)",
    "Độ lớn đo được (LUFS)",
    "Lý do",
    "Mã lý do",
];

/// The report's rows (pure): text cells, numbers as they are written (`45,0`).
pub fn report_rows(st: &Status) -> Vec<[String; 13]> {
    let mut out = Vec::new();
    for r in &st.rows {
        let base = |a: Option<&AiringRow>| -> [String; 13] {
            [
                r.station.clone(),
                r.name.clone(),
                r.area_code.clone(),
                r.state_vi.clone(),
                r.detail_vi.clone(),
                r.delivered_at.clone().unwrap_or_default(),
                a.map(|a| a.repeat.to_string()).unwrap_or_default(),
                a.map(|a| a.outcome_vi.clone()).unwrap_or_default(),
                a.and_then(|a| a.started_at.clone()).unwrap_or_default(),
                a.map(|a| a.aired_secs.clone()).unwrap_or_default(),
                a.and_then(|a| a.loudness.as_deref())
                    .map(|l| l.trim_end_matches(" LUFS").to_string())
                    .unwrap_or_default(),
                a.and_then(|a| a.reason_vi.clone())
                    .or_else(|| {
                        a.is_none()
                            .then(|| r.code.as_deref().map(code_vi))
                            .flatten()
                    })
                    .unwrap_or_default(),
                a.and_then(|a| a.reason_code.clone())
                    .or_else(|| a.is_none().then(|| r.code.clone()).flatten())
                    .unwrap_or_default(),
            ]
        };
        if r.airings.is_empty() {
            out.push(base(None));
        } else {
            // Earliest repeat first in the report.
            for a in r.airings.iter().rev() {
                out.push(base(Some(a)));
            }
        }
    }
    out
}

/// A CSV cell (a leading = + - @ made text, as the audit export does — but a number such as
/// `-23,0` stays a number: it is quoted, not prefixed).
fn csv_cell(s: &str) -> String {
    let looks_numeric =
        s.starts_with('-') && s[1..].chars().all(|c| c.is_ascii_digit() || c == ',');
    let guarded = if s.starts_with(['=', '+', '-', '@']) && !looks_numeric {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// The report as CSV (BOM, CRLF, Vietnamese headers; Excel opens it as is).
pub fn report_csv(st: &Status) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(
        &REPORT_HEADERS
            .iter()
            .map(|h| csv_cell(h))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for row in report_rows(st) {
        out.push_str(
            &row.iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// The XLSX sheet names.
pub const SHEET_SUMMARY: &str = "Tổng hợp";
pub const SHEET_STATIONS: &str = "Chi tiết theo trạm";

/// The report as XLSX: the bulletin and its counts, then every station × repeat (numbers as
/// numbers).
pub fn report_xlsx(st: &Status) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let title = Format::new().set_bold().set_font_size(14);
    {
        let ws = wb.add_worksheet();
        ws.set_name(SHEET_SUMMARY)?;
        ws.write_string_with_format(0, 0, format!("BÁO CÁO BẢN TIN — {}", st.head.title), &title)?;
        let mut lines: Vec<(&str, String)> = vec![
            ("Mã bản tin", st.head.id.clone()),
            ("Mức ưu tiên", st.head.priority.clone()),
            ("Nơi nhận", st.head.to.clone()),
            ("Gửi lúc", st.head.sent.clone()),
            ("Hiệu lực", st.head.window.clone()),
            ("Số lần phát", st.head.repeats.clone()),
            ("Thời lượng", st.head.duration.clone()),
            (
                "Giọng đọc tổng hợp",
                if st.head.synthetic { "Có" } else { "Không" }.into(),
            ),
        ];
        if let Some(c) = &st.head.cancelled {
            lines.push(("Hủy", c.clone()));
        }
        let mut row = 2u32;
        for (k, v) in lines {
            ws.write_string_with_format(row, 0, k, &bold)?;
            ws.write_string(row, 1, v)?;
            row += 1;
        }
        row += 1;
        ws.write_string_with_format(row, 0, "Trạng thái", &bold)?;
        ws.write_string_with_format(row, 1, "Số trạm", &bold)?;
        for (_, label, n) in &st.counts {
            row += 1;
            ws.write_string(row, 0, label)?;
            ws.write_number(row, 1, *n as f64)?;
        }
        row += 1;
        ws.write_string_with_format(row, 0, "Tổng số trạm nhận", &bold)?;
        ws.write_number_with_format(row, 1, st.total as f64, &bold)?;
        ws.set_column_width(0, 22)?;
        ws.set_column_width(1, 60)?;
    }
    {
        let ws = wb.add_worksheet();
        ws.set_name(SHEET_STATIONS)?;
        for (c, h) in REPORT_HEADERS.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, &bold)?;
        }
        let number = |s: &str| s.replace('.', "").replace(',', ".").parse::<f64>().ok();
        for (i, row) in report_rows(st).iter().enumerate() {
            let r = i as u32 + 1;
            for (c, v) in row.iter().enumerate() {
                let c = c as u16;
                // Lần phát, seconds and LUFS are numbers in the workbook.
                match (c, number(v)) {
                    (6 | 9 | 10, Some(x)) if !v.is_empty() => ws.write_number(r, c, x)?,
                    _ => ws.write_string(r, c, v)?,
                };
            }
        }
        ws.set_freeze_panes(1, 0)?;
    }
    wb.save_to_buffer()
}

fn download(bytes: Vec<u8>, content_type: &'static str, name: String) -> Response {
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /bulletins/{bulletin}/report.csv` (admins, auditors).
async fn get_report_csv(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login?next=/bulletins");
    };
    match status_of(&state, &id).await {
        Ok(st) => download(
            report_csv(&st).into_bytes(),
            "text/csv; charset=utf-8",
            format!("ban-tin-{id}.csv"),
        ),
        Err(e) => status_refusal(e, &id, &p),
    }
}

/// `GET /bulletins/{bulletin}/report.xlsx` (admins, auditors).
async fn get_report_xlsx(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login?next=/bulletins");
    };
    let st = match status_of(&state, &id).await {
        Ok(st) => st,
        Err(e) => return status_refusal(e, &id, &p),
    };
    match tokio::task::spawn_blocking(move || report_xlsx(&st)).await {
        Ok(Ok(bytes)) => download(
            bytes,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            format!("ban-tin-{id}.xlsx"),
        ),
        Ok(Err(e)) => internal(e, Some(&p)),
        Err(e) => internal(e, Some(&p)),
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

/// The bulletin pages' routes (merged into the collector's router; each has its row in
/// `authz::ROUTES`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bulletins", get(get_list))
        .route("/bulletins/new", get(get_new).post(post_new))
        .route("/bulletins/{bulletin}", get(get_status))
        .route("/bulletins/{bulletin}/cancel", post(post_cancel))
        .route("/bulletins/{bulletin}/report.csv", get(get_report_csv))
        .route("/bulletins/{bulletin}/report.xlsx", get(get_report_xlsx))
        .route(
            "/api/v1/bulletins/{bulletin}/stations",
            get(get_stations_json),
        )
        .route(JS_PATH, get(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 22, 30, 0).unwrap()
    }

    fn form() -> Form {
        Form {
            title: "Cảnh báo bão số 5".into(),
            source: "library".into(),
            audio: "a".repeat(64),
            to_kind: "area".into(),
            area: "79".into(),
            priority: "emergency".into(),
            not_before: "04/12/2026 05:30".into(),
            not_after: "04/12/2026 11:30".into(),
            repeats: "3".into(),
            interval_mins: "30".into(),
            ..Form::default()
        }
    }

    #[test]
    fn local_times_are_utc_plus_seven() {
        assert_eq!(when_local(now()), "04/12/2026 05:30");
        assert_eq!(parse_local("04/12/2026 05:30"), Some(now()));
        assert_eq!(parse_local(" 4/12/2026 5:30 "), Some(now()));
        assert_eq!(parse_local("2026-12-04 05:30"), None);
        assert_eq!(parse_local("31/02/2026 05:30"), None);
    }

    #[test]
    fn a_good_form_is_the_request_the_api_takes() {
        let f = form();
        let r = request_of(&f, &f.audio, now()).unwrap();
        assert_eq!(r.to, "area:79");
        assert_eq!(r.priority, Priority::Emergency);
        assert_eq!(r.not_before, Some(now()));
        assert_eq!(r.not_after, now() + Duration::hours(6));
        assert_eq!((r.repeats, r.interval_mins), (3, 30));
        let mut f = form();
        f.to_kind = "stations".into();
        f.stations = "p-b, p-a\np-c".into();
        f.repeats = "1".into();
        f.interval_mins = "".into();
        let r = request_of(&f, &f.audio, now()).unwrap();
        assert_eq!(r.to, "stations:p-b,p-a,p-c");
        assert_eq!((r.repeats, r.interval_mins), (1, 0));
        assert_eq!(r.text, None);
        // A text and no audio: the send path reads it by text-to-speech.
        f.source = "text".into();
        f.text = " Ngày mai cắt điện. ".into();
        let r = request_of(&f, "", now()).unwrap();
        assert_eq!(
            (r.audio.as_str(), r.text.as_deref()),
            ("", Some("Ngày mai cắt điện."))
        );
    }

    #[test]
    fn each_bad_field_is_named_in_vietnamese() {
        let check = |change: &dyn Fn(&mut Form), field: &str, says: &str| {
            let mut f = form();
            change(&mut f);
            let audio = f.audio.clone();
            let e = request_of(&f, &audio, now()).unwrap_err();
            let got = e.get(field).unwrap_or_else(|| panic!("{field}: {e:?}"));
            assert!(got.contains(says), "{field}: {got}");
        };
        check(&|f| f.title = " ".into(), "title", "tiêu đề");
        check(&|f| f.audio.clear(), "audio", "thư viện");
        check(
            &|f| {
                f.source = "upload".into();
                f.audio.clear()
            },
            "file",
            "Chưa chọn tệp",
        );
        check(&|f| f.area = "7a".into(), "area", "chữ số");
        check(
            &|f| {
                f.to_kind = "stations".into();
                f.stations = " , ".into()
            },
            "stations",
            "mã trạm",
        );
        check(&|f| f.priority = "x".into(), "priority", "mức ưu tiên");
        check(
            &|f| f.not_before = "mai".into(),
            "not_before",
            "ngày/tháng/năm",
        );
        check(
            &|f| f.not_after = "04/12/2026 05:00".into(),
            "not_after",
            "sau lúc bắt đầu",
        );
        check(
            &|f| f.not_after = "20/12/2026 05:00".into(),
            "not_after",
            "7 ngày",
        );
        check(&|f| f.repeats = "21".into(), "repeats", "từ 1 đến 20");
        check(
            &|f| {
                f.source = "text".into();
                f.text = "  ".into()
            },
            "text",
            "văn bản",
        );
        check(&|f| f.interval_mins = "0".into(), "interval_mins", "phút");
        check(
            &|f| f.interval_mins = "200".into(),
            "interval_mins",
            "lần cuối sẽ bắt đầu sau khi hết hiệu lực",
        );
    }

    #[test]
    fn targets_and_repeats_read_in_vietnamese() {
        assert_eq!(targets_vi("all"), "Tất cả các trạm");
        assert_eq!(targets_vi("area:79"), "Các trạm có mã ĐVHC bắt đầu bằng 79");
        assert_eq!(targets_vi("stations:a,b"), "2 trạm: a, b");
        assert_eq!(repeats_vi(3, 1800), "3 lần, cách 30 phút");
        assert_eq!(repeats_vi(1, 0), "1 lần");
    }

    #[test]
    fn each_state_falls_in_one_group_and_reads_in_vietnamese() {
        let check = |k: StateKind, code: Option<&str>, want: &str| {
            assert_eq!(group(k, code), want, "{k:?} {code:?}");
        };
        check(StateKind::Aired, None, "aired");
        check(StateKind::Partial, Some("partial.output"), "aired");
        check(StateKind::Failed, Some("failed.output"), "failed");
        check(
            StateKind::Preempted,
            Some("preempted.higher_priority"),
            "failed",
        );
        check(StateKind::Skipped, Some("bulletin.expired"), "expired");
        check(StateKind::Skipped, Some("bulletin.cancelled"), "cancelled");
        check(StateKind::Skipped, Some("bulletin.too_long"), "refused");
        check(StateKind::Delivered, None, "delivered");
        check(StateKind::Refused, Some("bulletin.audio"), "refused");
        check(
            StateKind::Cancelled,
            Some("bulletin.cancelled"),
            "cancelled",
        );
        check(
            StateKind::ExpiredUndelivered,
            Some("bulletin.expired_undelivered"),
            "expired",
        );
        check(StateKind::Sending, None, "sending");
        for (code, label) in GROUPS {
            assert_eq!(group_vi(code), *label);
        }
    }

    #[test]
    fn a_station_reads_with_each_repeat_and_the_report_has_a_row_per_repeat() {
        let tz = chrono::FixedOffset::east_opt(7 * 3600).unwrap();
        let at = tz.with_ymd_and_hms(2026, 12, 4, 5, 30, 12).unwrap();
        let s = StationState {
            station: "p-a".into(),
            name: "Phường A".into(),
            area_code: "79101".into(),
            state: StateKind::Failed,
            code: Some("failed.output".into()),
            at: Some(at.with_timezone(&Utc)),
            receipt_received_at: Some(now()),
            airings: vec![
                BulletinAiring {
                    repeat: 2,
                    outcome: "failed".into(),
                    reason_code: Some("failed.output".into()),
                    at: Some(at + Duration::minutes(30)),
                    aired_secs: 0.0,
                    loudness_lufs: None,
                },
                BulletinAiring {
                    repeat: 1,
                    outcome: "aired".into(),
                    reason_code: None,
                    at: Some(at),
                    aired_secs: 45.04,
                    loudness_lufs: Some(-23.04),
                },
            ],
        };
        let r = station_row(&s);
        assert_eq!((r.state.as_str(), r.state_vi.as_str()), ("failed", "Lỗi"));
        assert_eq!(
            r.airings[1].line,
            "Lần 1: Đã phát lúc 04/12/2026 05:30:12, 45,0 giây, -23,0 LUFS"
        );
        assert!(
            r.airings[0]
                .line
                .starts_with("Lần 2: Lỗi phát lúc 04/12/2026 06:00:12 — ")
        );
        assert_eq!(r.detail_vi, r.airings[0].line);
        let st = Status {
            head: Head {
                id: "x".into(),
                title: "t".into(),
                priority: "khẩn cấp".into(),
                priority_code: "emergency".into(),
                to: "Tất cả các trạm".into(),
                window: String::new(),
                repeats: String::new(),
                sent: String::new(),
                synthetic: false,
                text: None,
                cancelled: None,
                duration: "00:45".into(),
            },
            counts: vec![],
            total: 1,
            rows: vec![r],
        };
        let rows = report_rows(&st);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][6], "1", "earliest repeat first");
        assert_eq!(
            (rows[0][9].as_str(), rows[0][10].as_str()),
            ("45,0", "-23,0")
        );
        assert_eq!(rows[1][12], "failed.output");
        let csv = report_csv(&st);
        assert!(csv.starts_with("\u{feff}\"Mã trạm\",\"Tên trạm\""), "{csv}");
        assert!(
            csv.contains(",\"-23,0\","),
            "a number stays a number: {csv}"
        );
        assert_eq!(csv_cell("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert!(report_xlsx(&st).is_ok());
    }
}
