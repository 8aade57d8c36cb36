//! Accounts, sessions, tokens, authorisation and the audit log over real HTTP against the real
//! router and a real SQLite file: sign-in and sign-out, wrong passwords, expired sessions,
//! forged CSRF tokens, roles reaching beyond themselves, a disabled user's old session and token,
//! oversized form fields, HTML in user-supplied text, login throttling — and a walk of the one
//! route table proving every route refuses the roles it must refuse.

mod collector_common;

use collector_common::*;
use loa::collector::accounts::{self, Role};
use loa::collector::authz::{Access, ROUTES, StationParam};
use loa::collector::http::HttpConfig;
use reqwest::StatusCode;
use std::path::Path;

const PW: &str = "mat-khau-that-dai-1";

fn browser() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn add_user(db: &Path, name: &str, role: Role, stations: &[&str]) {
    let mut c = loa::collector::Store::open(db).unwrap().into_connection();
    let st: Vec<String> = stations.iter().map(|s| s.to_string()).collect();
    accounts::add_user(&mut c, name, role, &st, PW, test_now()).unwrap();
}

fn token_of(db: &Path, name: &str) -> String {
    let c = loa::collector::Store::open(db).unwrap().into_connection();
    let u = accounts::find_user(&c, name).unwrap().unwrap();
    accounts::create_token(&c, &u, "thử", test_now()).unwrap().0
}

fn cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// POST the login form as a browser does; the answer.
async fn login_attempt(c: &reqwest::Client, base: &str, name: &str, pw: &str) -> reqwest::Response {
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let jar = cookie(&r, "loa_login_csrf").unwrap();
    let csrf = hidden_csrf(&r.text().await.unwrap());
    c.post(format!("{base}/login"))
        .header("cookie", jar.split(';').next().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", &csrf),
            ("name", name),
            ("password", pw),
            ("next", "/"),
        ]))
        .send()
        .await
        .unwrap()
}

/// Sign in; the `Cookie` header value of the session.
async fn sign_in(c: &reqwest::Client, base: &str, name: &str) -> String {
    let r = login_attempt(c, base, name, PW).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    cookie(&r, "loa_session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

async fn get(c: &reqwest::Client, url: String, session: &str) -> (StatusCode, String) {
    let r = c.get(url).header("cookie", session).send().await.unwrap();
    let s = r.status();
    (s, r.text().await.unwrap())
}

async fn post_form(
    c: &reqwest::Client,
    url: String,
    session: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let r = c
        .post(url)
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields))
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.text().await.unwrap())
}

async fn audit_csv(base: &str) -> String {
    client()
        .get(format!("{base}/audit.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_wrong_password_session_expiry_and_sign_out() {
    let a = TestStation::new("phuong-a", 1);
    let site = CollectorSite::new(&[&a]);
    add_user(&site.db, "lan", Role::Admin, &[]);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let (c, base) = (browser(), srv.base.clone());

    // Signed out: pages go to the login page (remembering where), APIs answer 401 JSON.
    let r = c
        .get(format!("{base}/stations/phuong-a?month=2019-03"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?next=/stations/phuong-a%3Fmonth%3D2019-03"
    );
    let r = c
        .get(format!("{base}/api/v1/stations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Bearer"));

    // A wrong password and an unknown name: the same page, the same words, nothing set.
    let wrong = login_attempt(&c, &base, "lan", "mat-khau-sai-roi-1").await;
    assert_eq!(wrong.status(), 401);
    assert!(cookie(&wrong, "loa_session").is_none());
    let unknown = login_attempt(&c, &base, "khong-ai", "mat-khau-sai-roi-1").await;
    assert_eq!(unknown.status(), 401);
    let (wrong, unknown) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert!(
        wrong.contains("tên đăng nhập hoặc mật khẩu không đúng"),
        "{wrong}"
    );
    assert!(
        unknown.contains("tên đăng nhập hoặc mật khẩu không đúng"),
        "{unknown}"
    );

    // The right password: a session cookie with the flags, and the pages open.
    let r = login_attempt(&c, &base, "lan", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let set = cookie(&r, "loa_session").unwrap();
    assert!(set.contains("; HttpOnly; SameSite=Strict; Path=/"), "{set}");
    assert!(!set.contains("Secure"), "no TLS configured: {set}");
    let session = set.split(';').next().unwrap().to_string();
    let (st, _) = get(&c, format!("{base}/"), &session).await;
    assert_eq!(st, 200);
    let (st, page) = get(&c, format!("{base}/account"), &session).await;
    assert_eq!(st, 200);
    assert!(page.contains("Quản trị"), "{page}");

    // Idle for longer than the idle lifetime: signed out.
    srv.clock.advance(chrono::Duration::seconds(
        accounts::DEFAULT_SESSION_IDLE_SECS + 1,
    ));
    let (st, _) = get(&c, format!("{base}/"), &session).await;
    assert_eq!(st, 303, "an idle session has expired");

    // Sign out: needs the CSRF token; after it the cookie is worth nothing.
    let session = sign_in(&c, &base, "lan").await;
    let (_, page) = get(&c, format!("{base}/account"), &session).await;
    let csrf = hidden_csrf(&page);
    let (st, _) = post_form(
        &c,
        format!("{base}/logout"),
        &session,
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(
        get(&c, format!("{base}/"), &session).await.0,
        200,
        "still signed in"
    );
    let (st, _) = post_form(&c, format!("{base}/logout"), &session, &[("csrf", &csrf)]).await;
    assert_eq!(st, 303);
    assert_eq!(get(&c, format!("{base}/"), &session).await.0, 303);

    // The audit log has each step, in Vietnamese, with the address; never the password.
    let csv = audit_csv(&base).await;
    for act in [
        "\"Đăng nhập\",\"login\"",
        "\"Đăng nhập thất bại\",\"login_failed\"",
        "\"Đăng xuất\",\"logout\"",
    ] {
        assert!(csv.contains(act), "{act}: {csv}");
    }
    assert!(csv.contains("\"127.0.0.1\""), "{csv}");
    assert!(csv.contains("\"31/03/2019 "), "dd/mm/yyyy: {csv}");
    assert!(
        !csv.contains(PW) && !csv.contains("mat-khau-sai-roi-1"),
        "{csv}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_absolute_lifetime_ends_a_busy_session_and_tls_sets_secure() {
    let a = TestStation::new("phuong-a", 1);
    let site = CollectorSite::new(&[&a]);
    add_user(&site.db, "lan", Role::Auditor, &[]);
    let mut config = HttpConfig::default();
    config.auth.secure_cookies = true;
    let srv = site.start(FixedPlans::default(), config).await;
    let (c, base) = (browser(), srv.base.clone());
    let r = login_attempt(&c, &base, "lan", PW).await;
    let set = cookie(&r, "loa_session").unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
    let session = set.split(';').next().unwrap().to_string();
    // Busy all day (a request every 20 min), still signed out after 12 h.
    for _ in 0..36 {
        assert_eq!(get(&c, format!("{base}/"), &session).await.0, 200);
        srv.clock.advance(chrono::Duration::minutes(20));
    }
    srv.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(get(&c, format!("{base}/"), &session).await.0, 303);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_csrf_role_overreach_and_a_disabled_users_session_and_token() {
    let a = TestStation::new("phuong-a", 1);
    let b = TestStation::new("phuong-b", 2);
    let site = CollectorSite::new(&[&a, &b]);
    add_user(&site.db, "lan", Role::Admin, &[]);
    add_user(&site.db, "op-a", Role::Operator, &["phuong-a"]);
    add_user(&site.db, "kiem", Role::Auditor, &[]);
    let op_token = token_of(&site.db, "op-a");
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let (c, base) = (browser(), srv.base.clone());

    // A form without its CSRF token, or with another session's: 403, nothing made.
    let admin = sign_in(&c, &base, "lan").await;
    let (_, page) = get(&c, format!("{base}/users"), &admin).await;
    let admin_csrf = hidden_csrf(&page);
    for bad in [vec![], vec![("csrf", "0".repeat(43))]] {
        let mut fields: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fields.extend([("name", "moi"), ("role", "auditor")]);
        let (st, page) = post_form(&c, format!("{base}/users"), &admin, &fields).await;
        assert_eq!(st, 403, "{page}");
        assert!(page.contains("mã chống giả mạo"), "{page}");
    }
    let kiem = sign_in(&c, &base, "kiem").await;
    let (_, page) = get(&c, format!("{base}/account"), &kiem).await;
    let kiem_csrf = hidden_csrf(&page);
    let (st, _) = post_form(
        &c,
        format!("{base}/users"),
        &admin,
        &[("csrf", &kiem_csrf), ("name", "moi"), ("role", "auditor")],
    )
    .await;
    assert_eq!(st, 403, "another session's token");
    // An auditor posting the admin's form with its own valid token: 403 (role), nothing made.
    let (st, page) = post_form(
        &c,
        format!("{base}/users"),
        &kiem,
        &[("csrf", &kiem_csrf), ("name", "moi"), ("role", "auditor")],
    )
    .await;
    assert_eq!(st, 403, "{page}");
    assert!(page.contains("Không được phép"), "{page}");
    let (_, page) = get(&c, format!("{base}/users"), &admin).await;
    assert!(!page.contains(">moi<"), "nothing was made: {page}");

    // An operator: their station only, pages and API; no city-wide report, no users page.
    let op = sign_in(&c, &base, "op-a").await;
    assert_eq!(
        get(&c, format!("{base}/stations/phuong-a"), &op).await.0,
        200
    );
    let (st, page) = get(&c, format!("{base}/stations/phuong-b"), &op).await;
    assert_eq!(st, 403);
    assert!(
        page.contains("Trạm này không thuộc quyền của bạn"),
        "{page}"
    );
    assert_eq!(get(&c, format!("{base}/users"), &op).await.0, 403);
    let api = |path: &str| c.get(format!("{base}{path}")).bearer_auth(&op_token).send();
    assert_eq!(
        api("/api/v1/stations/phuong-b").await.unwrap().status(),
        403
    );
    assert_eq!(
        api("/api/v1/stations/phuong-b/airings?month=2019-03")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        api("/api/v1/reports/2019-03.csv").await.unwrap().status(),
        403
    );
    assert_eq!(
        api("/api/v1/stations/phuong-a").await.unwrap().status(),
        200
    );
    let list: serde_json::Value = api("/api/v1/stations").await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["phuong-a"],
        "an operator's list holds only their stations"
    );
    let (_, overview) = get(&c, format!("{base}/"), &op).await;
    assert!(!overview.contains("phuong-b"), "{overview}");

    // Disable the operator: their open session and their token stop at once.
    let (st, _) = post_form(
        &c,
        format!("{base}/users/op-a/disable"),
        &admin,
        &[("csrf", &admin_csrf)],
    )
    .await;
    assert_eq!(st, 303);
    assert_eq!(
        get(&c, format!("{base}/stations/phuong-a"), &op).await.0,
        303
    );
    assert_eq!(
        api("/api/v1/stations/phuong-a").await.unwrap().status(),
        401
    );
    // And they cannot sign in again.
    let r = login_attempt(&c, &base, "op-a", PW).await;
    assert_eq!(r.status(), 401);

    let csv = audit_csv(&base).await;
    assert!(
        csv.contains("\"lan\",\"127.0.0.1\",\"Khóa người dùng\",\"user_disable\",\"op-a\",\"vai trò: Vận hành trạm; trạm: phuong-a; đang hoạt động\",\"vai trò: Vận hành trạm; trạm: phuong-a; đã khóa\""),
        "{csv}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_revocable_and_html_in_text_is_escaped() {
    let a = TestStation::new("phuong-a", 1);
    let site = CollectorSite::new(&[&a]);
    add_user(&site.db, "lan", Role::Admin, &[]);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let (c, base) = (browser(), srv.base.clone());
    let s = sign_in(&c, &base, "lan").await;
    let (_, page) = get(&c, format!("{base}/account"), &s).await;
    let csrf = hidden_csrf(&page);
    let evil = "<script>alert('x')</script>";
    let (st, page) = post_form(
        &c,
        format!("{base}/account/tokens"),
        &s,
        &[("csrf", &csrf), ("label", evil)],
    )
    .await;
    assert_eq!(st, 200, "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;"), "{page}");
    let token = page
        .split("id=\"new-token\" readonly value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert!(token.starts_with("loa_"));
    let r = c
        .get(format!("{base}/api/v1/stations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Shown once: the account page lists it, never its secret.
    let (_, page) = get(&c, format!("{base}/account"), &s).await;
    assert!(!page.contains(&token));
    // Revoked: refused at once.
    let id = page
        .split("/account/tokens/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let (st, _) = post_form(
        &c,
        format!("{base}/account/tokens/{id}/revoke"),
        &s,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(st, 303);
    let r = c
        .get(format!("{base}/api/v1/stations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // HTML in a login name reaches the login page and the audit page escaped.
    let r = login_attempt(&c, &base, evil, "mat-khau-sai-roi-1").await;
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>"), "{page}");
    let (_, audit) = get(&c, format!("{base}/audit"), &s).await;
    assert!(!audit.contains("<script>"), "{audit}");
    assert!(audit.contains("&lt;script&gt;"), "{audit}");
    assert!(
        audit.contains("Thu hồi mã truy cập") && audit.contains("Tạo mã truy cập"),
        "{audit}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_forms_and_fields_change_nothing() {
    let a = TestStation::new("phuong-a", 1);
    let site = CollectorSite::new(&[&a]);
    add_user(&site.db, "lan", Role::Admin, &[]);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let (c, base) = (browser(), srv.base.clone());
    let s = sign_in(&c, &base, "lan").await;
    let (_, page) = get(&c, format!("{base}/users"), &s).await;
    let csrf = hidden_csrf(&page);
    // A whole form over the limit: 413 before any handler.
    let huge = "x".repeat(40 * 1024);
    let (st, page) = post_form(
        &c,
        format!("{base}/users"),
        &s,
        &[("csrf", &csrf), ("name", &huge), ("role", "admin")],
    )
    .await;
    assert_eq!(st, 413, "{page}");
    assert!(page.contains("quá lớn"), "{page}");
    let r = c
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("name", "lan"), ("password", &huge)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A field over its own limit inside a small form: 400 with the rule, nothing made.
    let long = "a".repeat(65);
    let (st, page) = post_form(
        &c,
        format!("{base}/users"),
        &s,
        &[("csrf", &csrf), ("name", &long), ("role", "admin")],
    )
    .await;
    assert_eq!(st, 400, "{page}");
    assert!(page.contains("1–64 ký tự"), "{page}");
    let (st, page) = post_form(
        &c,
        format!("{base}/users"),
        &s,
        &[
            ("csrf", &csrf),
            ("name", "op"),
            ("role", "operator"),
            ("stations", "<b>x</b>"),
        ],
    )
    .await;
    assert_eq!(st, 400, "{page}");
    assert!(
        page.contains("mã trạm `&lt;b&gt;x&lt;&#x2f;b&gt;` không hợp lệ"),
        "{page}"
    );
    let (_, page) = get(&c, format!("{base}/users"), &s).await;
    assert!(!page.contains(&long) && !page.contains(">op<"), "{page}");
    // A good one: the password is shown once.
    let (st, page) = post_form(
        &c,
        format!("{base}/users"),
        &s,
        &[
            ("csrf", &csrf),
            ("name", "op"),
            ("role", "operator"),
            ("stations", "phuong-a"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("id=\"shown-password\""), "{page}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_throttled_per_account_and_per_address() {
    let a = TestStation::new("phuong-a", 1);
    let site = CollectorSite::new(&[&a]);
    add_user(&site.db, "lan", Role::Admin, &[]);
    let srv = site
        .start(FixedPlans::default(), HttpConfig::default())
        .await;
    let (c, base) = (browser(), srv.base.clone());
    for _ in 0..loa::collector::authz::MAX_FAILURES_PER_ACCOUNT {
        assert_eq!(
            login_attempt(&c, &base, "lan", "sai-mat-khau-1234")
                .await
                .status(),
            401
        );
    }
    // Locked: even the right password gets 429 with Retry-After, and no session.
    let r = login_attempt(&c, &base, "lan", PW).await;
    assert_eq!(r.status(), 429);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry > 0 && retry <= loa::collector::authz::THROTTLE_WINDOW_SECS,
        "{retry}"
    );
    assert!(cookie(&r, "loa_session").is_none());
    assert!(r.text().await.unwrap().contains("thử lại sau"));
    // When the window has passed, the right password works.
    srv.clock.advance(chrono::Duration::seconds(retry));
    assert_eq!(login_attempt(&c, &base, "lan", PW).await.status(), 303);
    // One address spraying many names is stopped too (after 20 failures, whatever the names).
    let mut last = StatusCode::OK;
    for i in 0..=loa::collector::authz::MAX_FAILURES_PER_ADDRESS {
        last = login_attempt(&c, &base, &format!("ten-{i}"), "sai-mat-khau-1234")
            .await
            .status();
    }
    assert_eq!(last, 429);
    srv.stop().await;
}

/// The route table walked: for every row, every role (and nobody) is tried with real requests;
/// the roles the row does not name are refused (403; nobody: 401 for APIs, a redirect to the
/// login page for pages), the roles it names are not. Station-scoped rows are tried with a
/// station the operator does not run; rows with a `station=` parameter also with the operator's
/// station, another one, and none (the whole city: refused where the row says so). And every route the source declares has a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_the_roles_it_must_refuse() {
    let a = TestStation::new("phuong-a", 1);
    let b = TestStation::new("phuong-b", 2);
    let site = CollectorSite::new(&[&a, &b]);
    add_user(&site.db, "lan", Role::Admin, &[]);
    add_user(&site.db, "op-a", Role::Operator, &["phuong-a"]);
    add_user(&site.db, "kiem", Role::Auditor, &[]);
    let tokens = [
        (Role::Admin, token_of(&site.db, "lan")),
        (Role::Operator, token_of(&site.db, "op-a")),
        (Role::Auditor, token_of(&site.db, "kiem")),
    ];
    let mut config = HttpConfig::default();
    config.auth.metrics_open_on_loopback = false;
    let srv = site.start(FixedPlans::default(), config).await;
    let c = browser();
    let concrete = |path: &str| {
        path.replace("{id}", "phuong-b")
            .replace("{file}", "2019-03.csv")
            .replace("{name}", "khong-co")
            .replace("{token}", "999")
            .replace("{n}", "1")
    };
    for route in ROUTES {
        let url = format!("{}{}", srv.base, concrete(route.path));
        let send = |token: Option<&str>| {
            let mut r = match route.method {
                "GET" => c.get(&url),
                "PUT" => c.put(&url).header("content-type", "application/toml"),
                _ => c
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded"),
            };
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        let anon = send(None).await.unwrap();
        let st = anon.status();
        match route.access {
            Access::Page(_) => {
                assert_eq!(st, 303, "{} {}", route.method, route.path);
                assert!(
                    anon.headers()["location"]
                        .to_str()
                        .unwrap()
                        .starts_with("/login")
                );
            }
            Access::Api(_)
            | Access::AdminApi
            | Access::Metrics(_)
            | Access::Station
            | Access::StationOr(_) => {
                assert_eq!(st, 401, "{} {}", route.method, route.path)
            }
            // The login form's POST without its CSRF cookie and field: refused as a forged form.
            Access::Login if route.method == "POST" => {
                assert_eq!(st, 403);
                assert!(anon.text().await.unwrap().contains("mã chống giả mạo"));
            }
            Access::Open | Access::Ingest | Access::Login => assert!(
                st != 401 && st != 403 && st != 303,
                "{} {} is open, got {st}",
                route.method,
                route.path
            ),
        }
        let allowed: &[Role] = match route.access {
            Access::Page(r) | Access::Api(r) | Access::Metrics(r) | Access::StationOr(r) => r,
            Access::AdminApi => &[Role::Admin],
            _ => continue,
        };
        for (role, token) in &tokens {
            let st = send(Some(token)).await.unwrap().status();
            let must_refuse = !allowed.contains(role)
                || (*role == Role::Operator
                    && (route.station_scoped || route.station_param == StationParam::Required));
            if must_refuse {
                assert_eq!(st, 403, "{} {} as {role:?}", route.method, route.path);
            } else {
                assert!(
                    st != 401 && st != 403,
                    "{} {} as {role:?}: {st}",
                    route.method,
                    route.path
                );
            }
            // A `station=` route: the operator's own station is theirs to ask for; another
            // station (alone or beside theirs) is refused; admins and auditors may name any.
            if route.station_param != StationParam::None {
                for (query, operator_refused) in [
                    ("?station=phuong-a", false),
                    ("?station=phuong-b", true),
                    ("?station=phuong-a&station=phuong-b", true),
                ] {
                    let st = c
                        .get(format!("{url}{query}"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    if !allowed.contains(role) || (*role == Role::Operator && operator_refused) {
                        assert_eq!(
                            st, 403,
                            "{} {}{query} as {role:?}",
                            route.method, route.path
                        );
                    } else {
                        assert!(
                            st != 401 && st != 403,
                            "{} {}{query} as {role:?}: {st}",
                            route.method,
                            route.path
                        );
                    }
                }
            }
        }
    }
    srv.stop().await;

    // Every `.route("…", get(…)/post(…))` of the source has its row.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut declared = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") && !p.ends_with("tests.rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for chunk in text.split(".route(\"").skip(1) {
                let Some((path, rest)) = chunk.split_once('"') else {
                    continue;
                };
                let call = rest.split(")\n").next().unwrap_or(rest);
                for m in ["get", "post", "put"] {
                    if call.contains(&format!(" {m}(")) || call.contains(&format!(".{m}(")) {
                        declared.push((p.clone(), m.to_uppercase(), path.to_string()));
                    }
                }
            }
        }
    }
    assert!(declared.len() >= 20, "{declared:?}");
    for (file, m, path) in declared {
        if file.to_string_lossy().contains("relay") {
            continue; // the relay's own test servers, not the collector's
        }
        assert!(
            ROUTES.iter().any(|r| r.method == m && r.path == path),
            "{m} {path} ({}) has no row in authz::ROUTES",
            file.display()
        );
    }
}

/// The real binary at its most verbose: `loa user` with a password on stdin, then sign-ins (one
/// wrong, one right) and a password change through HTTP — no password ever reaches the
/// collector's log or the commands' output, and the database holds only Argon2id hashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_a_log() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_loa");
    let dir = tempfile::tempdir().unwrap();
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, "").unwrap();
    let first = "mat-khau-dau-tien-XYZ1";
    let mut add = Command::new(bin)
        .args([
            "user",
            "add",
            "lan",
            "--role",
            "admin",
            "--password-stdin",
            "--db",
        ])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{first}").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut printed = String::from_utf8_lossy(&out.stdout).into_owned();
    printed.push_str(&String::from_utf8_lossy(&out.stderr));
    // A password too short is refused with the rule, exit 2.
    let mut short = Command::new(bin)
        .args(["user", "passwd", "lan", "--password-stdin", "--db"])
        .arg(&db)
        .stdin(Stdio::piped())
        .output_with_stdin("ngan\n");
    assert_eq!(short.0, 2, "{}", short.1);
    assert!(short.1.contains("quá ngắn"), "{}", short.1);
    printed.push_str(&std::mem::take(&mut short.1));

    let log = dir.path().join("collector.log");
    let mut child = Command::new(bin)
        .args(["collector", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "trace")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines.next().expect("collector exited").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    let log_thread = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::create(&log).unwrap();
            for l in lines.map_while(Result::ok) {
                writeln!(f, "{l}").unwrap();
            }
        })
    };
    let c = browser();
    let wrong = "mat-khau-sai-ABC987";
    assert_eq!(login_attempt(&c, &base, "lan", wrong).await.status(), 401);
    let r = login_attempt(&c, &base, "lan", first).await;
    assert_eq!(r.status(), 303);
    let session = cookie(&r, "loa_session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, page) = get(&c, format!("{base}/account"), &session).await;
    let csrf = hidden_csrf(&page);
    let second = "mat-khau-thu-hai-QRS456";
    let (st, _) = post_form(
        &c,
        format!("{base}/account/password"),
        &session,
        &[
            ("csrf", &csrf),
            ("current", first),
            ("new", second),
            ("repeat", second),
        ],
    )
    .await;
    assert_eq!(st, 303);
    assert_eq!(login_attempt(&c, &base, "lan", second).await.status(), 303);
    // SAFETY: kill(2) on the collector this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    log_thread.join().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("failed login") && logged.contains("signed in"),
        "{logged}"
    );
    for pw in [first, wrong, second] {
        assert!(!logged.contains(pw), "{pw} in the log:\n{logged}");
        assert!(!printed.contains(pw), "{pw} printed:\n{printed}");
    }
    use loa::collector::db::{Conn, Location, params};
    let conn = Conn::open(&Location::of_path(&db)).unwrap();
    let hash: String = conn
        .query_row(
            "SELECT password_hash FROM users WHERE name = 'lan'",
            params![],
            |r| r.get(0),
        )
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let audit = conn
        .query_map(
            "SELECT coalesce(before, '') || coalesce(after, '') || target || actor FROM audit_log",
            params![],
            |r| r.get::<String>(0),
        )
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .join("|");
    for pw in [first, wrong, second] {
        assert!(!audit.contains(pw), "{audit}");
    }
}

trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &str) -> (i32, String);
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &str) -> (i32, String) {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }
}
