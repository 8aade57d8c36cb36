//! The account pages: sign-in and sign-out, my account (password, personal API tokens), users
//! (admin) and the audit log with its CSV export (admin, auditor). Rendered as templates of the
//! office web app's environment (`crate::web`, `templates/login.html` …), text escaped by the
//! engine.
//!
//! **Invariant:** every write here is recorded in the audit log ([`super::audit`]) with who, when,
//! from where, what and before → after, in the same handler that made it, and never with a
//! secret in it; a password or token is shown once, in the answer to the request that made it,
//! and never logged. Who may reach each handler is [`super::authz::ROUTES`]'s business: a
//! handler here finds the signed-in [`Principal`] in the request (the guard put it there), and
//! the login handlers check their own CSRF cookie and the throttle.

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::accounts::{self, AccountError, Role, User};
use super::audit::{self, action};
use super::authz::{
    self, AuthFailure, LOGIN_CSRF_COOKIE, MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_ADDRESS,
    Principal, SESSION_COOKIE, Via,
};
use super::http::AppState;
use crate::web::{Viewer, render};

/// Audit entries per page of `/audit`.
pub const AUDIT_PAGE_ROWS: usize = 100;

/// The viewer the web app's layout shows, from the signed-in principal.
pub fn viewer(p: &Principal) -> Viewer {
    Viewer {
        name: p.user.name.clone(),
        role: p.user.role.code().to_string(),
        role_label_vi: p.user.role.label_vi().to_string(),
        csrf: p.csrf().to_string(),
    }
}

/// Put the [`Viewer`] of `p` in the request (the web app's pages read it from there).
pub fn put_viewer(req: &mut Request, p: &Principal) {
    req.extensions_mut().insert(viewer(p));
}

/// Render `template` (or, if that fails — a defect, logged — a plain 500).
fn page(
    status: StatusCode,
    template: &str,
    viewer: Option<&Viewer>,
    ctx: serde_json::Value,
) -> Response {
    match render(template, viewer, ctx) {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            // The account pages hold CSRF tokens and fresh secrets: never cached.
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "page does not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Lỗi nội bộ: trang không hiển thị được; xem nhật ký của máy chủ.",
            )
                .into_response()
        }
    }
}

/// An error page (`error.html`: title and message).
pub fn error_page(
    status: StatusCode,
    title: &str,
    message: &str,
    who: Option<&Principal>,
) -> Response {
    let v = who.map(viewer);
    page(
        status,
        "error.html",
        v.as_ref(),
        json!({ "title": title, "message": message }),
    )
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "internal error on an account page");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Lỗi",
        "Lỗi nội bộ; không có gì thay đổi. Xem nhật ký của máy chủ.",
        None,
    )
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A local path to go to after signing in (anything else: `/`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && n.len() <= 512 =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

/// How a user is described in the audit log (no secret).
pub fn describe_user(u: &User) -> String {
    let mut s = format!("vai trò: {}", u.role.label_vi());
    if !u.stations.is_empty() {
        s.push_str(&format!("; trạm: {}", u.stations.join(", ")));
    }
    s.push_str(if u.disabled {
        "; đã khóa"
    } else {
        "; đang hoạt động"
    });
    s
}

/// Checks `password` against `name`'s stored hash: the Argon2 work off the accounts connection
/// (page views go on meanwhile), a few at once, the same work for an unknown name. The user id,
/// or why not; `Err` is the page for an internal failure.
async fn check_password(
    state: &AppState,
    name: String,
    password: String,
) -> Result<Result<i64, AccountError>, Response> {
    let rec = match state
        .auth()
        .with(move |c| accounts::login_record(c, &name))
        .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(internal(e)),
        Err(e) => return Err(internal(format!("{e:?}"))),
    };
    let Ok(_slot) = state.auth().argon2_slots.acquire().await else {
        return Err(internal("the Argon2 semaphore is closed"));
    };
    tokio::task::spawn_blocking(move || accounts::check_login(rec.as_ref(), &password))
        .await
        .map_err(internal)
}

/// Hash `password` on the blocking pool, one of the few Argon2 slots, without the accounts
/// connection.
async fn hash_off(state: &AppState, password: String) -> Result<String, Response> {
    let Ok(_slot) = state.auth().argon2_slots.acquire().await else {
        return Err(internal("the Argon2 semaphore is closed"));
    };
    match tokio::task::spawn_blocking(move || accounts::hash_password(&password)).await {
        Ok(r) => r.map_err(|e| match e {
            AccountError::PasswordTooShort | AccountError::PasswordTooLong => {
                // Shown by the callers' pages; here only as a 400 fallback.
                error_page(
                    StatusCode::BAD_REQUEST,
                    "Mật khẩu không hợp lệ",
                    &format!("{e}. Không có gì thay đổi."),
                    None,
                )
            }
            other => internal(other),
        }),
        Err(e) => Err(internal(e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out.

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
    name: &str,
) -> Response {
    let csrf = match accounts::new_secret() {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let mut r = page(
        status,
        "login.html",
        None,
        json!({ "csrf": csrf, "next": next, "error": error, "name": name }),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        authz::set_cookie(
            LOGIN_CSRF_COOKIE,
            &csrf,
            None,
            state.auth().config.secure_cookies,
        ),
    );
    r
}

async fn get_login(State(state): State<AppState>, q: Query<NextQuery>) -> Response {
    login_page(
        &state,
        StatusCode::OK,
        &safe_next(q.next.as_deref()),
        None,
        "",
    )
}

async fn post_login(State(state): State<AppState>, req: Request) -> Response {
    let address = authz::address(req.extensions());
    let (parts, body) = req.into_parts();
    let bytes = match authz::read_form(body).await {
        Ok(b) => b,
        Err(f) => return authz::page_refusal(f, "/login", None),
    };
    let field = |k: &str| authz::form_field(&bytes, k).unwrap_or_default();
    let (name, password, csrf, next) = (
        field("name"),
        field("password"),
        field("csrf"),
        field("next"),
    );
    let next = safe_next(Some(&next));
    let expected = authz::cookie(&parts.headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !authz::same(csrf.as_bytes(), expected.as_bytes()) {
        return authz::page_refusal(AuthFailure::Csrf, "/login", None);
    }
    let name = name.trim().to_lowercase();
    let shown_name: String = name.chars().take(accounts::MAX_NAME_CHARS).collect();
    let now = state.now();
    let (acct_key, addr_key) = (format!("user:{shown_name}"), format!("addr:{address}"));
    let locked = {
        let mut t = state.auth().throttle();
        let a = t.retry_after(&acct_key, MAX_FAILURES_PER_ACCOUNT, now);
        let b = t.retry_after(&addr_key, MAX_FAILURES_PER_ADDRESS, now);
        a.max(b)
    };
    if let Some(secs) = locked {
        let mut r = error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Tạm khóa đăng nhập",
            &format!(
                "Đã nhập sai quá nhiều lần. Hãy thử lại sau {} phút.",
                (secs + 59) / 60
            ),
            None,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let checked = match check_password(&state, name.clone(), password).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let user = match checked {
        Ok(id) => match state
            .auth()
            .with(move |c| accounts::enabled_user(c, id))
            .await
        {
            Ok(Ok(Some(u))) => Some(u),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => return internal(e),
            Err(e) => return internal(format!("{e:?}")),
        },
        Err(_) => None,
    };
    let Some(user) = user else {
        {
            let mut t = state.auth().throttle();
            t.fail(&acct_key, now);
            t.fail(&addr_key, now);
        }
        tracing::info!(user = %shown_name, %address, "failed login");
        state
            .audit(state.audit_entry(&shown_name, &address, action::LOGIN_FAILED, &shown_name))
            .await;
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &next,
            Some(&AccountError::BadCredentials.to_string()),
            &shown_name,
        );
    };
    state.auth().throttle().clear(&acct_key);
    let (u, addr) = (user.clone(), address.clone());
    let (sid, _csrf) = match state
        .auth()
        .with(move |c| accounts::create_session(c, &u, &addr, now))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(format!("{e:?}")),
    };
    tracing::info!(user = %user.name, %address, "signed in");
    state
        .audit(state.audit_entry(&user.name, &address, action::LOGIN, &user.name))
        .await;
    let secure = state.auth().config.secure_cookies;
    let mut r = see_other(&next);
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        authz::set_cookie(
            SESSION_COOKIE,
            &sid,
            Some(state.auth().config.session_max_secs),
            secure,
        ),
    );
    h.append(
        header::SET_COOKIE,
        authz::set_cookie(LOGIN_CSRF_COOKIE, "", Some(0), secure),
    );
    r
}

async fn post_logout(State(state): State<AppState>, req: Request) -> Response {
    let address = authz::address(req.extensions());
    let Some(p) = req.extensions().get::<Principal>().cloned() else {
        return see_other("/login");
    };
    if let Via::Session { id_sha256, .. } = &p.via {
        let id = id_sha256.clone();
        if let Ok(Err(e)) = state
            .auth()
            .with(move |c| accounts::delete_session(c, &id))
            .await
        {
            return internal(e);
        }
        state
            .audit(state.audit_entry(&p.user.name, &address, action::LOGOUT, &p.user.name))
            .await;
    }
    let mut r = see_other("/login");
    r.headers_mut().append(
        header::SET_COOKIE,
        authz::set_cookie(
            SESSION_COOKIE,
            "",
            Some(0),
            state.auth().config.secure_cookies,
        ),
    );
    r
}

// ---------------------------------------------------------------------------------------------
// My account.

#[derive(Serialize)]
struct TokenRow {
    id: i64,
    label: String,
    created: String,
    last_used: String,
    revoked: String,
}

fn when_unix(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(audit::when_vi)
        .unwrap_or_default()
}

async fn account_page(
    state: &AppState,
    p: &Principal,
    status: StatusCode,
    message: Option<&str>,
    error: Option<&str>,
    new_token: Option<&str>,
) -> Response {
    let u = p.user.clone();
    let tokens = match state
        .auth()
        .with(move |c| accounts::list_tokens(c, &u))
        .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(format!("{e:?}")),
    };
    let rows: Vec<TokenRow> = tokens
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            label: t.label,
            created: when_unix(Some(t.created_unix)),
            last_used: when_unix(t.last_used_unix),
            revoked: when_unix(t.revoked_unix),
        })
        .collect();
    let v = viewer(p);
    page(
        status,
        "account.html",
        Some(&v),
        json!({
            "user": { "name": p.user.name, "role": p.user.role.label_vi(), "stations": p.user.stations },
            "tokens": rows,
            "message": message,
            "error": error,
            "new_token": new_token,
            "min_password": accounts::MIN_PASSWORD_CHARS,
        }),
    )
}

fn principal(req: &Request) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

async fn get_account(State(state): State<AppState>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login");
    };
    account_page(&state, &p, StatusCode::OK, None, None, None).await
}

/// The form of a request the guard already read (its CSRF checked) or, for token requests, read
/// here within the size limit.
async fn form(req: Request) -> Result<(Principal, String, Vec<(String, String)>), Response> {
    let address = authz::address(req.extensions());
    let Some(p) = principal(&req) else {
        return Err(see_other("/login"));
    };
    let bytes = authz::read_form(req.into_body())
        .await
        .map_err(|f| authz::page_refusal(f, "/", Some(&p)))?;
    Ok((p, address, authz::form_urlencoded_pairs(&bytes)))
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> &'a str {
    f.iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

async fn post_account_password(State(state): State<AppState>, req: Request) -> Response {
    let (p, address, f) = match form(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if p.user.id == 0 {
        return error_page(
            StatusCode::FORBIDDEN,
            "Không được phép",
            "Mã quản trị chung không có mật khẩu.",
            Some(&p),
        );
    }
    let (current, new, repeat) = (
        field(&f, "current").to_string(),
        field(&f, "new").to_string(),
        field(&f, "repeat").to_string(),
    );
    if new != repeat {
        return account_page(
            &state,
            &p,
            StatusCode::BAD_REQUEST,
            None,
            Some("Hai lần nhập mật khẩu mới không khớp. Không có gì thay đổi."),
            None,
        )
        .await;
    }
    let ok = match check_password(&state, p.user.name.clone(), current).await {
        Ok(c) => c.is_ok(),
        Err(r) => return r,
    };
    if !ok {
        return account_page(
            &state,
            &p,
            StatusCode::BAD_REQUEST,
            None,
            Some("Mật khẩu hiện tại không đúng. Không có gì thay đổi."),
            None,
        )
        .await;
    }
    if new.chars().count() < accounts::MIN_PASSWORD_CHARS
        || new.len() > accounts::MAX_PASSWORD_BYTES
    {
        let e = if new.len() > accounts::MAX_PASSWORD_BYTES {
            AccountError::PasswordTooLong
        } else {
            AccountError::PasswordTooShort
        };
        let msg = format!("{e}. Không có gì thay đổi.");
        return account_page(&state, &p, StatusCode::BAD_REQUEST, None, Some(&msg), None).await;
    }
    let hash = match hash_off(&state, new).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let name = p.user.name.clone();
    match state
        .auth()
        .with(move |c| accounts::set_password_hash(c, &name, &hash))
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(format!("{e:?}")),
    }
    let mut e = state.audit_entry(&p.user.name, &address, action::USER_PASSWD, &p.user.name);
    e.after = Some("mật khẩu mới (do chính người dùng đổi); mọi phiên đã kết thúc".into());
    state.audit(e).await;
    // A new password ends every session, this one too.
    let mut r = see_other("/login");
    r.headers_mut().append(
        header::SET_COOKIE,
        authz::set_cookie(
            SESSION_COOKIE,
            "",
            Some(0),
            state.auth().config.secure_cookies,
        ),
    );
    r
}

async fn post_account_token(State(state): State<AppState>, req: Request) -> Response {
    let (p, address, f) = match form(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if p.user.id == 0 {
        return error_page(
            StatusCode::FORBIDDEN,
            "Không được phép",
            "Mã quản trị chung không tạo được mã cá nhân.",
            Some(&p),
        );
    }
    let label = field(&f, "label").to_string();
    let (u, now) = (p.user.clone(), state.now());
    let l = label.clone();
    match state
        .auth()
        .with(move |c| accounts::create_token(c, &u, &l, now))
        .await
    {
        Ok(Ok((secret, id))) => {
            let mut e = state.audit_entry(
                &p.user.name,
                &address,
                action::TOKEN_CREATE,
                &format!("mã số {id} của {}", p.user.name),
            );
            e.after = Some(format!(
                "nhãn: {}; vai trò: {}",
                label.trim(),
                p.user.role.label_vi()
            ));
            state.audit(e).await;
            account_page(
                &state,
                &p,
                StatusCode::OK,
                Some("Đã tạo mã truy cập. Hãy chép ngay: mã này chỉ hiện một lần."),
                None,
                Some(&secret),
            )
            .await
        }
        Ok(Err(e @ AccountError::InvalidLabel)) => {
            let msg = format!("{e}. Không có gì thay đổi.");
            account_page(&state, &p, StatusCode::BAD_REQUEST, None, Some(&msg), None).await
        }
        Ok(Err(e)) => internal(e),
        Err(e) => internal(format!("{e:?}")),
    }
}

async fn post_account_token_revoke(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let (p, address, _) = match form(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(id) = token.parse::<i64>() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy",
            "Không có mã truy cập này.",
            Some(&p),
        );
    };
    let (u, now) = (p.user.clone(), state.now());
    match state
        .auth()
        .with(move |c| accounts::revoke_token(c, &u, id, now))
        .await
    {
        Ok(Ok(t)) => {
            let mut e = state.audit_entry(
                &p.user.name,
                &address,
                action::TOKEN_REVOKE,
                &format!("mã số {id} của {}", p.user.name),
            );
            e.before = Some(format!("nhãn: {}; còn hiệu lực", t.label));
            e.after = Some("đã thu hồi".into());
            state.audit(e).await;
            see_other("/account")
        }
        Ok(Err(e @ AccountError::NoSuchToken(_))) => error_page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy",
            &e.to_string(),
            Some(&p),
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(format!("{e:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Users (admin).

#[derive(Serialize)]
struct UserRow {
    name: String,
    role: String,
    role_code: &'static str,
    stations: String,
    disabled: bool,
    created: String,
}

async fn users_page(
    state: &AppState,
    p: &Principal,
    status: StatusCode,
    message: Option<&str>,
    error: Option<&str>,
    shown_password: Option<(&str, &str)>,
) -> Response {
    let users = match state.auth().with(|c| accounts::list_users(c)).await {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(format!("{e:?}")),
    };
    let rows: Vec<UserRow> = users
        .into_iter()
        .map(|u| UserRow {
            role: u.role.label_vi().into(),
            role_code: u.role.code(),
            stations: u.stations.join(", "),
            disabled: u.disabled,
            created: when_unix(Some(u.created_unix)),
            name: u.name,
        })
        .collect();
    let roles: Vec<_> = Role::ALL
        .iter()
        .map(|r| json!({ "code": r.code(), "label": r.label_vi() }))
        .collect();
    let v = viewer(p);
    page(
        status,
        "users.html",
        Some(&v),
        json!({
            "users": rows,
            "roles": roles,
            "message": message,
            "error": error,
            "shown_password": shown_password.map(|(u, pw)| json!({ "user": u, "password": pw })),
        }),
    )
}

async fn get_users(State(state): State<AppState>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login");
    };
    users_page(&state, &p, StatusCode::OK, None, None, None).await
}

async fn post_users(State(state): State<AppState>, req: Request) -> Response {
    let (p, address, f) = match form(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = field(&f, "name").trim().to_string();
    let Some(role) = Role::parse(field(&f, "role")) else {
        let msg = format!(
            "{}. Không có gì thay đổi.",
            AccountError::InvalidRole(field(&f, "role").chars().take(32).collect())
        );
        return users_page(&state, &p, StatusCode::BAD_REQUEST, None, Some(&msg), None).await;
    };
    let stations: Vec<String> = field(&f, "stations")
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let password = match accounts::generate_password() {
        Ok(pw) => pw,
        Err(e) => return internal(e),
    };
    let hash = match hash_off(&state, password.clone()).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let (n, st, now) = (name.clone(), stations.clone(), state.now());
    match state
        .auth()
        .with(move |c| accounts::add_user_hashed(c, &n, role, &st, &hash, now))
        .await
    {
        Ok(Ok(u)) => {
            let mut e = state.audit_entry(&p.user.name, &address, action::USER_ADD, &u.name);
            e.after = Some(describe_user(&u));
            state.audit(e).await;
            users_page(
                &state,
                &p,
                StatusCode::OK,
                Some("Đã thêm người dùng. Mật khẩu dưới đây chỉ hiện một lần: hãy trao tận tay và đề nghị đổi ngay."),
                None,
                Some((&u.name, &password)),
            )
            .await
        }
        Ok(Err(e @ AccountError::Db(_))) => internal(e),
        Ok(Err(e)) => {
            let msg = format!("{e}. Không có gì thay đổi.");
            users_page(&state, &p, StatusCode::BAD_REQUEST, None, Some(&msg), None).await
        }
        Err(e) => internal(format!("{e:?}")),
    }
}

async fn post_user_password(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (p, address, _) = match form(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let password = match accounts::generate_password() {
        Ok(pw) => pw,
        Err(e) => return internal(e),
    };
    let hash = match hash_off(&state, password.clone()).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let n = name.clone();
    match state
        .auth()
        .with(move |c| accounts::set_password_hash(c, &n, &hash))
        .await
    {
        Ok(Ok(())) => {
            let mut e = state.audit_entry(&p.user.name, &address, action::USER_PASSWD, &name);
            e.after = Some("mật khẩu mới do quản trị cấp; mọi phiên đã kết thúc".into());
            state.audit(e).await;
            users_page(&state, &p, StatusCode::OK, Some("Đã cấp mật khẩu mới; mọi phiên của người này đã kết thúc. Mật khẩu chỉ hiện một lần."), None, Some((&name, &password))).await
        }
        Ok(Err(e @ AccountError::NoSuchUser(_))) => error_page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy",
            &e.to_string(),
            Some(&p),
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(format!("{e:?}")),
    }
}

async fn set_disabled(state: AppState, name: String, req: Request, disabled: bool) -> Response {
    let (p, address, _) = match form(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if disabled && name == p.user.name {
        return users_page(
            &state,
            &p,
            StatusCode::BAD_REQUEST,
            None,
            Some("Không thể tự khóa tài khoản của chính mình. Không có gì thay đổi."),
            None,
        )
        .await;
    }
    let n = name.clone();
    let result = state
        .auth()
        .with(move |c| {
            let before = accounts::find_user(c, &n)?;
            let after = accounts::set_disabled(c, &n, disabled)?;
            Ok::<_, AccountError>((before, after))
        })
        .await;
    match result {
        Ok(Ok((before, after))) => {
            let act = if disabled {
                action::USER_DISABLE
            } else {
                action::USER_ENABLE
            };
            let mut e = state.audit_entry(&p.user.name, &address, act, &name);
            e.before = before.as_ref().map(describe_user);
            e.after = Some(describe_user(&after));
            state.audit(e).await;
            see_other("/users")
        }
        Ok(Err(e @ AccountError::NoSuchUser(_))) => error_page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy",
            &e.to_string(),
            Some(&p),
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(format!("{e:?}")),
    }
}

async fn post_user_disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    set_disabled(state, name, req, true).await
}

async fn post_user_enable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    set_disabled(state, name, req, false).await
}

// ---------------------------------------------------------------------------------------------
// The audit log (admin, auditor).

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
}

#[derive(Serialize)]
struct AuditRow {
    when: String,
    actor: String,
    address: String,
    action: String,
    target: String,
    before: String,
    after: String,
}

async fn get_audit(State(state): State<AppState>, q: Query<PageQuery>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return see_other("/login");
    };
    let page_no = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let offset = (page_no - 1) * AUDIT_PAGE_ROWS;
    let got = state
        .auth()
        .with(move |c| {
            Ok::<_, crate::collector::db::DbError>((
                audit::list(c, AUDIT_PAGE_ROWS, offset)?,
                audit::count(c)?,
            ))
        })
        .await;
    let (entries, total) = match got {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(format!("{e:?}")),
    };
    let rows: Vec<AuditRow> = entries
        .into_iter()
        .map(|e| AuditRow {
            when: audit::when_vi(e.at),
            action: audit::action_vi(&e.action).to_string(),
            actor: e.actor,
            address: e.address,
            target: e.target,
            before: e.before.unwrap_or_default(),
            after: e.after.unwrap_or_default(),
        })
        .collect();
    let pages = total.div_ceil(AUDIT_PAGE_ROWS).max(1);
    let v = viewer(&p);
    page(
        StatusCode::OK,
        "audit.html",
        Some(&v),
        json!({
            "entries": rows,
            "total": total,
            "page": page_no,
            "pages": pages,
            "prev": (page_no > 1).then(|| page_no - 1),
            "next": (page_no < pages).then(|| page_no + 1),
        }),
    )
}

async fn get_audit_csv(State(state): State<AppState>) -> Response {
    let got = state
        .auth()
        .with(|c| audit::list(c, usize::MAX >> 1, 0))
        .await;
    let entries = match got {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(format!("{e:?}")),
    };
    let mut r = (StatusCode::OK, audit::csv(&entries)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"nhat-ky-kiem-tra.csv\""),
    );
    r
}

/// The account pages' routes (each has its row in [`authz::ROUTES`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(get_login).post(post_login))
        .route("/logout", post(post_logout))
        .route("/account", get(get_account))
        .route("/account/password", post(post_account_password))
        .route("/account/tokens", post(post_account_token))
        .route(
            "/account/tokens/{token}/revoke",
            post(post_account_token_revoke),
        )
        .route("/users", get(get_users).post(post_users))
        .route("/users/{name}/password", post(post_user_password))
        .route("/users/{name}/disable", post(post_user_disable))
        .route("/users/{name}/enable", post(post_user_enable))
        .route("/audit", get(get_audit))
        .route("/audit.csv", get(get_audit_csv))
}
