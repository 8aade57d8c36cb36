//! Authorisation: ONE table ([`ROUTES`]) in which every page and API route of the collector states
//! who may use it, and the guard that enforces it before any handler runs.
//!
//! **Invariant:** a request reaches a handler only if its route has a row in [`ROUTES`] and the
//! row admits it: open routes (`/healthz`, the OpenAPI document, the login page), station ingest
//! (authenticated by its signatures, in the handlers), station-signed routes (verified here
//! with `centre::request` against the station's registered key, ±600 s — a POST over its body's
//! SHA-256 too — and only the caller's own `{id}`), `/metrics` (a token of an admin or auditor,
//! or — when configured — any request from a loopback address), and every other route only for a
//! signed-in user (session cookie or `Authorization: Bearer` personal token) whose role the row
//! names; an operator only for their own stations on routes with a station id, and on routes
//! with a `station=` parameter ([`StationParam`]) only naming their own stations (the reports:
//! never the whole city). A route missing
//! from the table is refused (500, logged) — never served open. A POST made with a session
//! cookie must carry the session's CSRF token in its form (`csrf` field; for a streamed upload
//! route, the `X-CSRF-Token` header or the `csrf` query parameter) or it is refused (403)
//! before its handler runs; bearer-token requests carry no ambient credential and need none.
//! Unsigned page requests are redirected to `/login`; API requests get 401/403 JSON.

use crate::collector::db::Conn;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::accounts::{self, DEFAULT_SESSION_IDLE_SECS, DEFAULT_SESSION_MAX_SECS, Role, User};
use super::http::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "loa_session";
/// Name of the cookie holding the login form's CSRF token (before there is a session).
pub const LOGIN_CSRF_COOKIE: &str = "loa_login_csrf";
/// Largest form body (all fields together); larger → 413, nothing changes.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Failed logins of one account within [`THROTTLE_WINDOW_SECS`] before it is locked out.
pub const MAX_FAILURES_PER_ACCOUNT: usize = 5;
/// Failed logins from one address within [`THROTTLE_WINDOW_SECS`] before it is locked out.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
/// The throttling window, seconds: a lock-out lasts until the oldest counted failure is this old.
pub const THROTTLE_WINDOW_SECS: i64 = 15 * 60;
/// Argon2 verifications run at once (the machine has 2 cores).
pub const ARGON2_AT_ONCE: usize = 2;
/// Most accounts and addresses the throttle remembers (bounded memory under a spray).
const THROTTLE_MAX_KEYS: usize = 100_000;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (`/healthz`, the OpenAPI document, the stylesheet).
    Open,
    /// Stations: authenticated by their record and heartbeat signatures in the handler.
    Ingest,
    /// Stations: a station-signed request (`centre::request`), checked here against the
    /// station's registered key; on a route with `{id}`, only that station. The handler finds
    /// the caller in the request's [`StationCaller`] extension.
    Station,
    /// A station-signed request (when it carries `X-Loa-Station`) or a signed-in user of these
    /// roles (content downloads).
    StationOr(&'static [Role]),
    /// The login form and its POST (the handler throttles and checks its own CSRF cookie).
    Login,
    /// `/metrics`: a token of these roles, or any request from a loopback address when
    /// [`AuthConfig::metrics_open_on_loopback`].
    Metrics(&'static [Role]),
    /// A page for these roles (signed out → redirect to `/login`; wrong role → 403 page).
    Page(&'static [Role]),
    /// A JSON API for these roles (401/403 JSON).
    Api(&'static [Role]),
    /// `POST /api/v1/admin/stations`: an admin, or the deprecated shared admin token.
    AdminApi,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    /// The path as the router declares it (`{id}` parameters).
    pub path: &'static str,
    pub access: Access,
    /// The route's `{id}` is a station id: an operator may use it only for their stations.
    pub station_scoped: bool,
    /// The body is a streamed upload (`collector::library`): the guard never reads it; a
    /// session POST carries its CSRF token in the `X-CSRF-Token` header or the `csrf` query
    /// parameter instead of the form.
    pub streamed_body: bool,
    /// What the route's `station=` query parameter means for an operator.
    pub station_param: StationParam,
}

/// How a route's `station=` query parameter limits an operator (admins and auditors may name
/// any station or none; the handler checks the station exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StationParam {
    /// The route takes no `station=`.
    None,
    /// Data about stations (the reports): an operator must name one of their stations — the
    /// whole city (no `station=`) or another station is refused (403).
    Required,
    /// A page offering a choice of station (`/reports`): an operator may name none; any they
    /// name must be theirs (403).
    Optional,
}

const ALL: &[Role] = &[Role::Admin, Role::Operator, Role::Auditor];
const ADMIN: &[Role] = &[Role::Admin];
const ADMIN_AUDITOR: &[Role] = &[Role::Admin, Role::Auditor];
const ADMIN_OPERATOR: &[Role] = &[Role::Admin, Role::Operator];

const fn r(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        station_scoped: false,
        streamed_body: false,
        station_param: StationParam::None,
    }
}

const fn station(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        station_scoped: true,
        streamed_body: false,
        station_param: StationParam::None,
    }
}

/// A route whose body is a streamed upload (see [`Route::streamed_body`]).
const fn upload(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        station_scoped: false,
        streamed_body: true,
        station_param: StationParam::None,
    }
}

/// A station's route (see [`Route::station_scoped`]) whose body is a streamed upload.
const fn station_upload(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        station_scoped: true,
        streamed_body: true,
        station_param: StationParam::None,
    }
}

/// A route whose `station=` query parameter limits operators (see [`StationParam`]).
const fn reports(
    method: &'static str,
    path: &'static str,
    access: Access,
    p: StationParam,
) -> Route {
    Route {
        method,
        path,
        access,
        station_scoped: false,
        streamed_body: false,
        station_param: p,
    }
}

/// Every route of the collector and who may use it. (A route the router has and this table
/// lacks is refused: add its row here when adding a route.)
pub const ROUTES: &[Route] = &[
    // Open.
    r("GET", "/healthz", Access::Open),
    r("GET", "/api/v1/openapi.json", Access::Open),
    r("GET", "/static/loa-2.css", Access::Open),
    // Stations (signature authentication).
    r("POST", "/api/v1/stations/{id}/records", Access::Ingest),
    r("POST", "/api/v1/stations/{id}/heartbeat", Access::Ingest),
    // The centre's key and its rotations (public), and a station checking its set-up.
    r("GET", "/api/v1/centre", Access::Open),
    r("GET", "/api/v1/centre/whoami", Access::Station),
    // Operations.
    r("GET", "/metrics", Access::Metrics(ADMIN_AUDITOR)),
    // Sign-in.
    r("GET", "/login", Access::Login),
    r("POST", "/login", Access::Login),
    r("POST", "/logout", Access::Page(ALL)),
    // JSON API. Operators see their stations only (the list is filtered; a city-wide report
    // is refused).
    r("GET", "/api/v1/stations", Access::Api(ALL)),
    station("GET", "/api/v1/stations/{id}", Access::Api(ALL)),
    station("GET", "/api/v1/stations/{id}/airings", Access::Api(ALL)),
    // Reports: the city for admins and auditors (or one station with `station=`); an operator
    // only with `station=` naming one of their stations.
    reports(
        "GET",
        "/api/v1/reports/{file}",
        Access::Api(ALL),
        StationParam::Required,
    ),
    r("POST", "/api/v1/admin/stations", Access::AdminApi),
    // Enrolment (`collector::enrolment`): an admin issues a code; a station box redeems it
    // (open: the code is the credential; the handler throttles failures per address).
    r("POST", "/api/v1/admin/enrolments", Access::AdminApi),
    r("POST", "/api/v1/enrol", Access::Open),
    // Pages.
    r("GET", "/", Access::Page(ALL)),
    station("GET", "/stations/{id}", Access::Page(ALL)),
    // The reports page: an operator picks among their stations (any `station=` must be theirs).
    reports("GET", "/reports", Access::Page(ALL), StationParam::Optional),
    r("GET", "/account", Access::Page(ALL)),
    r("POST", "/account/password", Access::Page(ALL)),
    r("POST", "/account/tokens", Access::Page(ALL)),
    r("POST", "/account/tokens/{token}/revoke", Access::Page(ALL)),
    r("GET", "/users", Access::Page(ADMIN)),
    r("POST", "/users", Access::Page(ADMIN)),
    r("POST", "/users/{name}/password", Access::Page(ADMIN)),
    r("POST", "/users/{name}/disable", Access::Page(ADMIN)),
    r("POST", "/users/{name}/enable", Access::Page(ADMIN)),
    r("GET", "/audit", Access::Page(ADMIN_AUDITOR)),
    r("GET", "/admin/stations", Access::Page(ADMIN)),
    r("POST", "/admin/stations", Access::Page(ADMIN)),
    r(
        "POST",
        "/admin/stations/{station}/code",
        Access::Page(ADMIN),
    ),
    r("GET", "/audit.csv", Access::Page(ADMIN_AUDITOR)),
    // Schedules held by the centre (`collector::versions`): operators edit their stations',
    // admins all, auditors read; the shared programs document is the city's (admins edit).
    station("GET", "/api/v1/stations/{id}/schedule", Access::Api(ALL)),
    // The signed manifest of the station's latest version: that station only.
    station("GET", "/api/v1/stations/{id}/manifest", Access::Station),
    station(
        "PUT",
        "/api/v1/stations/{id}/schedule",
        Access::Api(ADMIN_OPERATOR),
    ),
    station("GET", "/stations/{id}/schedule", Access::Page(ALL)),
    station(
        "POST",
        "/stations/{id}/schedule",
        Access::Page(ADMIN_OPERATOR),
    ),
    // A schedule file uploaded from the page (multipart; the CSRF token in the query).
    station_upload(
        "POST",
        "/stations/{id}/schedule/upload",
        Access::Page(ADMIN_OPERATOR),
    ),
    station(
        "GET",
        "/stations/{id}/schedule/versions/{n}",
        Access::Page(ALL),
    ),
    station(
        "POST",
        "/stations/{id}/schedule/versions/{n}/rollback",
        Access::Page(ADMIN_OPERATOR),
    ),
    r("GET", "/api/v1/programs", Access::Api(ALL)),
    r("PUT", "/api/v1/programs", Access::Api(ADMIN)),
    r("GET", "/programs", Access::Page(ALL)),
    r("POST", "/programs", Access::Page(ADMIN)),
    // The content library (`collector::library`): everyone signed in sees it; admins and
    // operators upload (operators: local content, which only an admin places); only admins
    // assign a file to a program's month or a path. Content downloads: a station-signed
    // request, or any signed-in user.
    r("GET", "/library", Access::Page(ALL)),
    upload("POST", "/library/upload", Access::Page(ADMIN_OPERATOR)),
    r("POST", "/library/assign", Access::Page(ADMIN)),
    r("GET", "/static/library-1.js", Access::Open),
    r("GET", "/api/v1/content", Access::Api(ALL)),
    upload("POST", "/api/v1/content", Access::Api(ADMIN_OPERATOR)),
    r("GET", "/api/v1/content/{sha256}", Access::StationOr(ALL)),
    // Bulletins (`collector::bulletins`): only admins send and cancel; admins and auditors
    // list; a station fetches those meant for it (station-signed, that station only).
    r("POST", "/api/v1/bulletins", Access::Api(ADMIN)),
    r("GET", "/api/v1/bulletins", Access::Api(ADMIN_AUDITOR)),
    r(
        "POST",
        "/api/v1/bulletins/{bulletin}/cancel",
        Access::Api(ADMIN),
    ),
    station("GET", "/api/v1/stations/{id}/bulletins", Access::Station),
    // The bulletin pages (`collector::bulletin_pages`): admins compose (multipart, with an
    // upload on the spot: the CSRF token in the query) and cancel; admins and auditors list.
    r("GET", "/bulletins", Access::Page(ADMIN_AUDITOR)),
    r("GET", "/bulletins/new", Access::Page(ADMIN)),
    upload("POST", "/bulletins/new", Access::Page(ADMIN)),
    r("POST", "/bulletins/{bulletin}/cancel", Access::Page(ADMIN)),
    // A bulletin's live status, its data (the page's refresh) and its report.
    r("GET", "/bulletins/{bulletin}", Access::Page(ADMIN_AUDITOR)),
    r(
        "GET",
        "/api/v1/bulletins/{bulletin}/stations",
        Access::Api(ADMIN_AUDITOR),
    ),
    r(
        "GET",
        "/bulletins/{bulletin}/report.csv",
        Access::Page(ADMIN_AUDITOR),
    ),
    r(
        "GET",
        "/bulletins/{bulletin}/report.xlsx",
        Access::Page(ADMIN_AUDITOR),
    ),
    r("GET", "/static/bulletins-1.js", Access::Open),
    // The push channel (`collector::push`): that station's event stream, station-signed.
    station("GET", "/api/v1/stations/{id}/events", Access::Station),
    // A station's receipts (delivered / refused), signed over the body: that station only.
    station(
        "POST",
        "/api/v1/stations/{id}/bulletin-receipts",
        Access::Station,
    ),
];

/// Largest form body of the schedule editors (a schedule text, percent-encoded: up to three
/// bytes per byte of Vietnamese text).
pub const MAX_SCHEDULE_FORM_BYTES: usize = 1024 * 1024;

/// The form limit of the route `path`: the schedule editors take whole schedules.
fn form_limit(path: &str) -> usize {
    if path == "/stations/{id}/schedule" || path == "/programs" {
        MAX_SCHEDULE_FORM_BYTES
    } else {
        MAX_FORM_BYTES
    }
}

/// The row of `method` `path` (as the router declares the path).
pub fn route(method: &Method, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.path == path && r.method == method.as_str())
}

/// Settings of sign-in and sessions.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The collector is reached through TLS (a reverse proxy): cookies get `Secure`.
    pub secure_cookies: bool,
    pub session_idle_secs: i64,
    pub session_max_secs: i64,
    /// Serve `/metrics` without a token to requests from loopback addresses (a scraper on the
    /// same host); otherwise it needs an admin's or auditor's token.
    pub metrics_open_on_loopback: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_idle_secs: DEFAULT_SESSION_IDLE_SECS,
            session_max_secs: DEFAULT_SESSION_MAX_SECS,
            metrics_open_on_loopback: true,
        }
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A session cookie; its CSRF token and the stored id hash (for logout).
    Session { csrf: String, id_sha256: String },
    /// A personal API token.
    Token,
    /// The deprecated shared admin token (only on the admin API).
    AdminToken,
}

/// The signed-in user of a request (put in its extensions by [`guard`]).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub via: Via,
}

impl Principal {
    /// The CSRF token forms of this request's pages carry (empty for token requests).
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf, .. } => csrf,
            _ => "",
        }
    }
}

/// The requester's address as the audit log and the throttle see it (from the accept loop's
/// [`axum::extract::ConnectInfo`]; `?` when the router was called without one).
pub fn address(req_ext: &axum::http::Extensions) -> String {
    req_ext
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "?".into())
}

fn is_loopback(req_ext: &axum::http::Extensions) -> bool {
    req_ext
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .is_some_and(|c| match c.0.ip() {
            IpAddr::V4(a) => a.is_loopback(),
            IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
        })
}

/// Failed logins per key (account name or address) within the window.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: HashMap<String, VecDeque<i64>>,
}

impl Throttle {
    /// Seconds until `key` may try again, when it has `max` failures within the window.
    pub fn retry_after(&mut self, key: &str, max: usize, now: DateTime<Utc>) -> Option<i64> {
        let t = now.timestamp();
        let q = self.failures.get_mut(key)?;
        while q.front().is_some_and(|&f| t - f >= THROTTLE_WINDOW_SECS) {
            q.pop_front();
        }
        if q.is_empty() {
            self.failures.remove(key);
            return None;
        }
        (q.len() >= max).then(|| {
            q.front()
                .map_or(1, |&f| (f + THROTTLE_WINDOW_SECS - t).max(1))
        })
    }

    /// Count a failure of `key`.
    pub fn fail(&mut self, key: &str, now: DateTime<Utc>) {
        let t = now.timestamp();
        if self.failures.len() >= THROTTLE_MAX_KEYS && !self.failures.contains_key(key) {
            // Forget keys whose failures are all out of the window; if none, the oldest.
            self.failures
                .retain(|_, q| q.back().is_some_and(|&f| t - f < THROTTLE_WINDOW_SECS));
            if self.failures.len() >= THROTTLE_MAX_KEYS
                && let Some(k) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied().unwrap_or(0))
                    .map(|(k, _)| k.clone())
            {
                self.failures.remove(&k);
            }
        }
        let q = self.failures.entry(key.to_string()).or_default();
        q.push_back(t);
        // Only the newest `max` matter; keep the queue short.
        while q.len() > MAX_FAILURES_PER_ADDRESS {
            q.pop_front();
        }
    }

    /// Forget `key`'s failures (a successful login of that account).
    pub fn clear(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

/// The accounts side of the server's state: its own connection to the database (sessions,
/// tokens, users, the audit log), the login throttle, the settings.
pub struct Auth {
    conn: Mutex<Conn>,
    pub throttle: Mutex<Throttle>,
    pub config: AuthConfig,
    /// Argon2 verifications at once (each holds its memory cost and a core for ~0.1 s): a
    /// flood of logins waits here instead of exhausting memory and the blocking pool.
    pub argon2_slots: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(conn: Conn, config: AuthConfig) -> Self {
        Self {
            conn: Mutex::new(conn),
            throttle: Mutex::new(Throttle::default()),
            config,
            argon2_slots: tokio::sync::Semaphore::new(ARGON2_AT_ONCE),
        }
    }

    /// Run `f` with the accounts connection on the blocking pool.
    pub async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Conn) -> T + Send + 'static,
    ) -> Result<T, AuthFailure> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = match me.conn.lock() {
                Ok(c) => c,
                Err(e) => e.into_inner(),
            };
            f(&mut c)
        })
        .await
        .map_err(|e| AuthFailure::Internal(format!("blocking task: {e}")))
    }

    /// The accounts connection, for code already on a blocking thread.
    pub fn conn(&self) -> std::sync::LockResult<std::sync::MutexGuard<'_, Conn>> {
        self.conn.lock()
    }

    pub fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        match self.throttle.lock() {
            Ok(t) => t,
            Err(e) => e.into_inner(),
        }
    }
}

/// Why the guard refused a request.
#[derive(Debug)]
pub enum AuthFailure {
    /// Not signed in (page: redirect to `/login`; API: 401).
    SignedOut,
    /// Signed in, but this role (or this operator) may not (403).
    Forbidden(String),
    /// A session-cookie POST without the session's CSRF token (403 page).
    Csrf,
    /// A form larger than [`MAX_FORM_BYTES`] (413).
    TooLarge,
    /// Logged; a generic 500.
    Internal(String),
}

/// The Vietnamese text of a refusal.
fn refusal_vi(f: &AuthFailure) -> String {
    match f {
        AuthFailure::SignedOut => "Bạn chưa đăng nhập hoặc phiên đã hết hạn.".into(),
        AuthFailure::Forbidden(why) => why.clone(),
        AuthFailure::Csrf => "Biểu mẫu không hợp lệ hoặc đã cũ (thiếu mã chống giả mạo). Không có gì thay đổi; hãy mở lại trang và thử lại.".into(),
        AuthFailure::TooLarge => format!("Dữ liệu gửi lên quá lớn (tối đa {} KB). Không có gì thay đổi.", MAX_FORM_BYTES / 1024),
        AuthFailure::Internal(_) => "Lỗi nội bộ; không có gì thay đổi. Xem nhật ký của máy chủ.".into(),
    }
}

/// The refusal as a JSON answer.
pub fn api_refusal(f: AuthFailure) -> Response {
    let (status, text) = match &f {
        AuthFailure::SignedOut => (
            StatusCode::UNAUTHORIZED,
            "sign in: send `Authorization: Bearer <personal token>` (make one on /account or with `loa user token`)".to_string(),
        ),
        AuthFailure::Forbidden(_) => (
            StatusCode::FORBIDDEN,
            "your role may not use this (see docs/accounts.md)".to_string(),
        ),
        AuthFailure::Csrf => (StatusCode::FORBIDDEN, "missing or wrong CSRF token".to_string()),
        AuthFailure::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("form larger than {MAX_FORM_BYTES} bytes"),
        ),
        AuthFailure::Internal(m) => {
            tracing::error!(error = %m, "internal error in authorisation");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the collector log".to_string())
        }
    };
    let mut resp = (
        status,
        axum::Json(serde_json::json!({ "error": text, "error_vi": refusal_vi(&f) })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// The refusal as a page (redirect to the login page when signed out).
pub fn page_refusal(f: AuthFailure, path_and_query: &str, viewer: Option<&Principal>) -> Response {
    let status = match &f {
        AuthFailure::SignedOut => {
            let next = if path_and_query.starts_with('/') && !path_and_query.starts_with("//") {
                path_and_query
            } else {
                "/"
            };
            let target = format!("/login?next={}", percent_encode(next));
            let mut resp = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&target) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return resp;
        }
        AuthFailure::Forbidden(_) | AuthFailure::Csrf => StatusCode::FORBIDDEN,
        AuthFailure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        AuthFailure::Internal(m) => {
            tracing::error!(error = %m, "internal error in authorisation");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let title = match status {
        StatusCode::FORBIDDEN => "Không được phép",
        StatusCode::PAYLOAD_TOO_LARGE => "Dữ liệu quá lớn",
        _ => "Lỗi",
    };
    super::pages::error_page(status, title, &refusal_vi(&f), viewer)
}

/// Percent-encode a path for a query value (everything but unreserved characters and `/`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Strict; Path=/`, `Secure` when behind TLS;
/// `max_age_secs` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Constant-time equality (tokens, CSRF).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The synthetic user the deprecated shared admin token acts as.
fn admin_token_user() -> User {
    User {
        id: 0,
        name: "admin-token".into(),
        role: Role::Admin,
        stations: Vec::new(),
        disabled: false,
        created_unix: 0,
    }
}

/// Who the request is, from its bearer token or its session cookie.
async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    allow_admin_token: bool,
) -> Result<Option<Principal>, AuthFailure> {
    let auth = state.auth().clone();
    let now = state.now();
    if let Some(token) = bearer(headers) {
        if allow_admin_token
            && let Some(expected) = state.admin_token()
            && same(token.as_bytes(), expected.as_bytes())
        {
            return Ok(Some(Principal {
                user: admin_token_user(),
                via: Via::AdminToken,
            }));
        }
        let token = token.to_string();
        let user = auth
            .with(move |c| accounts::find_token_user(c, &token, now))
            .await?
            .map_err(|e| AuthFailure::Internal(e.to_string()))?;
        // A bearer header that names no live token is not signed in, whatever cookie rides along.
        return Ok(user.map(|user| Principal {
            user,
            via: Via::Token,
        }));
    }
    let Some(id) = cookie(headers, SESSION_COOKIE).map(str::to_string) else {
        return Ok(None);
    };
    let (idle, max) = (auth.config.session_idle_secs, auth.config.session_max_secs);
    let session = auth
        .with(move |c| accounts::find_session(c, &id, now, idle, max))
        .await?
        .map_err(|e| AuthFailure::Internal(e.to_string()))?;
    Ok(session.map(|s| Principal {
        user: s.user,
        via: Via::Session {
            csrf: s.csrf,
            id_sha256: s.id_sha256,
        },
    }))
}

/// The form field `name` of an urlencoded body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Decode an `application/x-www-form-urlencoded` body (the `form_urlencoded` crate, which
/// axum's `Form` uses: `+` is a space, `%XX` a byte, invalid UTF-8 replaced).
pub fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Read a form body within [`MAX_FORM_BYTES`].
pub async fn read_form(body: Body) -> Result<axum::body::Bytes, AuthFailure> {
    axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| AuthFailure::TooLarge)
}

/// The guard: applied to every route (as a route layer), it finds the route's row and admits
/// or refuses the request (see the module doc).
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(rule) = route(req.method(), &path) else {
        tracing::error!(method = %req.method(), path, "route has no row in authz::ROUTES; refused");
        return api_refusal(AuthFailure::Internal(format!(
            "route {} {path} has no row in the route table",
            req.method()
        )));
    };
    let page = matches!(rule.access, Access::Page(_));
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let roles = match rule.access {
        Access::Open | Access::Ingest | Access::Login => return next.run(req).await,
        Access::Station => return station_guard(&state, req, &path, next).await,
        Access::StationOr(_)
            if req
                .headers()
                .contains_key(crate::centre::request::HEADER_STATION) =>
        {
            return station_guard(&state, req, &path, next).await;
        }
        Access::StationOr(roles) => roles,
        Access::Metrics(roles) => {
            if state.auth().config.metrics_open_on_loopback
                && is_loopback(req.extensions())
                && bearer(req.headers()).is_none()
            {
                return next.run(req).await;
            }
            roles
        }
        Access::Page(roles) | Access::Api(roles) => roles,
        Access::AdminApi => ADMIN,
    };
    let refuse = |f: AuthFailure, who: Option<&Principal>| {
        if page {
            page_refusal(f, &pq, who)
        } else {
            api_refusal(f)
        }
    };
    let principal = match identify(&state, req.headers(), rule.access == Access::AdminApi).await {
        Ok(Some(p)) => p,
        Ok(None) => return refuse(AuthFailure::SignedOut, None),
        Err(f) => return refuse(f, None),
    };
    if !roles.contains(&principal.user.role) {
        return refuse(
            AuthFailure::Forbidden(format!(
                "Vai trò «{}» không được dùng trang này.",
                principal.user.role.label_vi()
            )),
            Some(&principal),
        );
    }
    if rule.station_scoped {
        let id = req
            .uri()
            .path()
            .split('/')
            .nth(if path.starts_with("/api/") { 4 } else { 2 })
            .unwrap_or("");
        if !principal.user.may_see_station(id) {
            return refuse(
                AuthFailure::Forbidden("Trạm này không thuộc quyền của bạn.".into()),
                Some(&principal),
            );
        }
    }
    if rule.station_param != StationParam::None && principal.user.role == Role::Operator {
        let named: Vec<String> = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "station")
            .map(|(_, v)| v.into_owned())
            .collect();
        if named.is_empty() && rule.station_param == StationParam::Required {
            return refuse(
                AuthFailure::Forbidden(
                    "Bạn chỉ được tải báo cáo của trạm mình phụ trách: chọn trạm (tham số station), không tải được báo cáo cả thành phố.".into(),
                ),
                Some(&principal),
            );
        }
        if named.iter().any(|id| !principal.user.may_see_station(id)) {
            return refuse(
                AuthFailure::Forbidden("Trạm này không thuộc quyền của bạn.".into()),
                Some(&principal),
            );
        }
    }
    let mut req = req;
    if req.method() == Method::POST
        && rule.streamed_body
        && let Via::Session { csrf, .. } = &principal.via
    {
        // The body is an upload: the token comes in a header or the query, never the body.
        let presented = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                req.uri()
                    .query()
                    .and_then(|q| form_field(q.as_bytes(), "csrf"))
            })
            .unwrap_or_default();
        if !same(presented.as_bytes(), csrf.as_bytes()) {
            tracing::warn!(path = %req.uri().path(), user = %principal.user.name, "upload refused: CSRF token missing or wrong");
            let mut resp = refuse(AuthFailure::Csrf, Some(&principal));
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    } else if req.method() == Method::POST
        && let Via::Session { csrf, .. } = &principal.via
    {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, form_limit(&path))
            .await
            .map_err(|_| AuthFailure::TooLarge)
        {
            Ok(b) => b,
            Err(f) => {
                let mut resp = refuse(f, Some(&principal));
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return resp;
            }
        };
        let presented = form_field(&bytes, "csrf").unwrap_or_default();
        if !same(presented.as_bytes(), csrf.as_bytes()) {
            tracing::warn!(path = %parts.uri.path(), user = %principal.user.name, "form refused: CSRF token missing or wrong");
            return refuse(AuthFailure::Csrf, Some(&principal));
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    super::pages::put_viewer(&mut req, &principal);
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Largest body of a station-signed request with a body (its bulletin receipts).
pub const MAX_STATION_BODY_BYTES: usize = 256 * 1024;

/// The station that signed a request (put in its extensions by [`guard`] on
/// [`Access::Station`] routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationCaller(pub String);

/// Admit a station-signed request (see [`Access::Station`]) or answer its refusal: 401 when
/// who asks is not established (headers missing or malformed, unknown station, stale date),
/// 403 for a wrong signature or another station's resource; JSON `{error, error_vi, code}`.
async fn station_guard(state: &AppState, req: Request, route_path: &str, next: Next) -> Response {
    use crate::centre::request::{self, RequestError, SignedHeaders};
    // A request with a body (a POST) is signed over the body's SHA-256 too
    // (`request::verify_body`): the body is read here, at most [`MAX_STATION_BODY_BYTES`].
    let (req, body) = if req.method() == Method::GET || req.method() == Method::HEAD {
        (req, None)
    } else {
        let (parts, b) = req.into_parts();
        match axum::body::to_bytes(b, MAX_STATION_BODY_BYTES).await {
            Ok(bytes) => (
                Request::from_parts(parts, Body::from(bytes.clone())),
                Some(bytes),
            ),
            Err(_) => return api_refusal(AuthFailure::TooLarge),
        }
    };
    let checked = (|| {
        let headers =
            SignedHeaders::presented(|name| req.headers().get(name).and_then(|v| v.to_str().ok()))?;
        let entry = state
            .station(&headers.station)
            .ok_or_else(|| RequestError::UnknownStation(headers.station.clone()))?;
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        match &body {
            None => request::verify(&headers, req.method().as_str(), pq, &entry.key, state.now())?,
            Some(b) => request::verify_body(
                &headers,
                req.method().as_str(),
                pq,
                b,
                &entry.key,
                state.now(),
            )?,
        }
        if route_path.contains("{id}") {
            let target = req.uri().path().split('/').nth(4).unwrap_or("");
            if target != entry.id {
                return Err(RequestError::OtherStation {
                    caller: entry.id.clone(),
                    target: target.to_string(),
                });
            }
        }
        Ok(entry.id)
    })();
    match checked {
        Ok(id) => {
            let mut req = req;
            req.extensions_mut().insert(StationCaller(id));
            next.run(req).await
        }
        Err(e) => {
            tracing::warn!(path = %req.uri().path(), error = %e, "station-signed request refused");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let code = e.code();
            (
                status,
                axum::Json(serde_json::json!({
                    "error": e.to_string(),
                    "error_vi": code.vi(),
                    "code": code.as_str(),
                })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_throttle_locks_after_max_failures_and_opens_when_the_oldest_ages_out() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 5, 8, 0, 0).unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let mut t = Throttle::default();
        for i in 0..4 {
            t.fail("lan", at(i * 60));
            assert_eq!(t.retry_after("lan", 5, at(i * 60)), None);
        }
        t.fail("lan", at(240));
        assert_eq!(t.retry_after("lan", 5, at(240)), Some(900 - 240));
        assert_eq!(t.retry_after("lan", 5, at(899)), Some(1));
        assert_eq!(t.retry_after("lan", 5, at(900)), None);
        t.clear("lan");
        assert_eq!(t.retry_after("lan", 5, at(241)), None);
    }

    #[test]
    fn forms_and_cookies_are_read_as_browsers_send_them() {
        let body = b"name=l%C3%AAn+a&csrf=ab%2Bc&x";
        assert_eq!(form_field(body, "name").as_deref(), Some("lên a"));
        assert_eq!(form_field(body, "csrf").as_deref(), Some("ab+c"));
        assert_eq!(form_field(body, "x").as_deref(), Some(""));
        assert_eq!(form_field(b"a=%zz%4", "a").as_deref(), Some("%zz%4"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; loa_session=xyz"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(
            set_cookie(SESSION_COOKIE, "v", None, true)
                .to_str()
                .unwrap_or(""),
            "loa_session=v; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
        assert_eq!(
            percent_encode("/stations/a?month=2026-12"),
            "/stations/a%3Fmonth%3D2026-12"
        );
    }

    #[test]
    fn every_route_row_is_unique_and_every_operator_route_is_scoped_or_filtered() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            if r.path.contains("{id}") {
                assert!(
                    r.station_scoped || matches!(r.access, Access::Ingest | Access::Station),
                    "{}",
                    r.path
                );
            }
        }
    }
}
