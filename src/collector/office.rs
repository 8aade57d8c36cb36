//! The office web app's page handlers (rendered by [`crate::web`]): `/` (overview),
//! `/stations/{id}?month=YYYY-MM` (station month), `/reports?station=ID` (the report downloads,
//! for the city or one station), and the stylesheet. Handlers read through the collector's
//! [`AppState`] (its status and plan caches and its read connection) and render through
//! `web::render`.
//!
//! **Invariant:** a page error is a Vietnamese page with its status code, never an English JSON
//! body nor a panic; internal details are logged, not shown.

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;

use super::authz::Principal;
use super::http::{ApiError, AppState, all_status};
use super::overview;
use super::status::{current_month, report_offset};
use crate::report::Period;
use crate::web::{self, Viewer, month};

/// Why a page is not shown; each variant is one status code and a Vietnamese page.
#[derive(Debug)]
pub enum PageError {
    /// 400: a query the page cannot read (the text says which and how to fix it).
    BadRequest(String),
    /// 404: no such station or period.
    NotFound(String),
    /// 500: logged; the page says only that something failed.
    Internal(String),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(m) => PageError::NotFound(m),
            ApiError::BadRequest(m, _) => PageError::BadRequest(m),
            other => PageError::Internal(format!("{other:?}")),
        }
    }
}

impl From<web::RenderError> for PageError {
    fn from(e: web::RenderError) -> Self {
        PageError::Internal(e.to_string())
    }
}

/// Render the error page; a failure to render it is a plain-text answer (in Vietnamese).
pub fn error_page(
    status: StatusCode,
    title: &str,
    message: &str,
    viewer: Option<&Viewer>,
) -> Response {
    match web::render("error.html", viewer, minijinja::context! { title, message }) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the error page does not render");
            (status, format!("{title}: {message}")).into_response()
        }
    }
}

impl PageError {
    /// The error page, with the navigation of `viewer` (who is signed in stays signed in).
    pub fn page(self, viewer: Option<&Viewer>) -> Response {
        match self {
            PageError::BadRequest(m) => {
                error_page(StatusCode::BAD_REQUEST, "Yêu cầu không hợp lệ", &m, viewer)
            }
            PageError::NotFound(m) => {
                error_page(StatusCode::NOT_FOUND, "Không tìm thấy", &m, viewer)
            }
            PageError::Internal(m) => {
                tracing::error!(error = %m, "page failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Lỗi máy chủ",
                    "Máy chủ gặp lỗi khi lập trang này; lỗi đã được ghi vào nhật ký máy chủ. Hãy thử lại sau ít phút.",
                    viewer,
                )
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.page(None)
    }
}

type Page = Result<Html<String>, PageError>;

/// The page, or its error page with the viewer's navigation.
fn answer(page: Page, v: Option<Extension<Viewer>>) -> Response {
    match page {
        Ok(html) => html.into_response(),
        Err(e) => e.page(viewer(&v)),
    }
}

fn viewer(v: &Option<Extension<Viewer>>) -> Option<&Viewer> {
    v.as_ref().map(|Extension(v)| v)
}

async fn overview_page(
    state: State<AppState>,
    v: Option<Extension<Viewer>>,
    who: Option<Extension<Principal>>,
    q: Result<Query<overview::OverviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    answer(overview_inner(state, v.clone(), who, q).await, v)
}

async fn overview_inner(
    State(state): State<AppState>,
    v: Option<Extension<Viewer>>,
    who: Option<Extension<Principal>>,
    q: Result<Query<overview::OverviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let Query(q) = q.map_err(|_| {
        PageError::BadRequest(
            "Tham số lọc không đọc được: trang (page) phải là số nguyên dương.".into(),
        )
    })?;
    let model = state
        .read(move |store, st| {
            let now = st.now();
            let statuses = all_status(store, st)?;
            let reg = st.registry();
            let this = Period::parse(&current_month(now), today(now)).ok();
            let next = super::plans::next_month(now);
            let plans = st.plans();
            let facts = |id: &str, p: &Period| reg.get(id).and_then(|e| plans.plan_facts(e, p));
            let mut stations = Vec::with_capacity(statuses.len());
            for status in statuses {
                // An operator sees their own stations only.
                if let Some(Extension(p)) = &who
                    && !p.user.may_see_station(&status.id)
                {
                    continue;
                }
                stations.push(overview::Station {
                    // This month's facts (titles) are asked for the rows shown only (below).
                    this_month: None,
                    next_month: facts(&status.id, &next),
                    status,
                });
            }
            Ok(overview::build_with(&stations, q, now, |s| {
                this.as_ref().and_then(|p| facts(&s.status.id, p))
            }))
        })
        .await?;
    Ok(Html(web::render("overview.html", viewer(&v), &model)?))
}

#[derive(Deserialize)]
struct MonthQuery {
    month: Option<String>,
}

/// A month parameter refused: the API's text for it ([`crate::report::period_problem_vi`]).
fn bad_month(m: &str) -> PageError {
    PageError::BadRequest(crate::report::period_problem_vi(
        "month",
        m,
        crate::report::PeriodKind::Month,
    ))
}

fn today(now: DateTime<Utc>) -> chrono::NaiveDate {
    now.with_timezone(&report_offset()).date_naive()
}

async fn station_page(
    state: State<AppState>,
    v: Option<Extension<Viewer>>,
    id: Path<String>,
    q: Result<Query<MonthQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    answer(station_inner(state, v.clone(), id, q).await, v)
}

async fn station_inner(
    State(state): State<AppState>,
    v: Option<Extension<Viewer>>,
    Path(id): Path<String>,
    q: Result<Query<MonthQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let Query(q) = q.map_err(|_| bad_month("?"))?;
    let entry = state
        .station(&id)
        .ok_or_else(|| PageError::NotFound(format!("Không có trạm mang mã «{id}».")))?;
    let now = state.now();
    let month = q
        .month
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| current_month(now));
    // A month only (`YYYY-MM`): a year is the reports page's.
    if month.len() != 7 {
        return Err(bad_month(&month));
    }
    let period = Period::parse(&month, today(now)).map_err(|_| bad_month(&month))?;
    // The schedule's program titles (one small file read; the plan keeps ids).
    let titles = match &entry.schedule {
        Some(p) => tokio::fs::read_to_string(p)
            .await
            .map(|t| crate::schedule::file::program_titles(p, &t))
            .unwrap_or_default(),
        None => HashMap::new(),
    };
    let model = state
        .read(move |store, st| {
            let section = crate::report::station_section(
                store,
                &entry,
                st.plans(),
                &period,
                st.thresholds(),
                now,
            )?;
            let lufs = loudness(store, &entry.id, &period)?;
            // Readiness from the stored heartbeat and the latest version (no plan, no audio).
            let hb = store.heartbeat(&entry.id)?;
            let facts = super::readiness::Facts {
                latest: st.versions().latest_version(&entry.id),
                sync: hb.as_ref().and_then(|h| h.heartbeat.sync.as_ref()),
            };
            Ok(StationPage {
                month: month::build(
                    &section,
                    &period,
                    &titles,
                    &lufs,
                    today(now),
                    period.open_note(now),
                ),
                sync: super::readiness::shown_vi(&facts, now),
            })
        })
        .await?;
    Ok(Html(web::render("station_month.html", viewer(&v), &model)?))
}

/// The station month page: the month, and the station's schedule version and readiness now.
#[derive(serde::Serialize)]
struct StationPage {
    #[serde(flatten)]
    month: month::MonthPage,
    sync: super::readiness::Shown,
}

/// Measured loudness (integrated LUFS) by record seq, from the signed records of the period.
fn loudness(
    store: &super::Store,
    station: &str,
    period: &Period,
) -> Result<HashMap<u64, f64>, ApiError> {
    let day = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .unwrap_or(0)
    };
    // A local date is within ±14 h of UTC.
    let lo = day(period.from) - 14 * 3600;
    let hi = day(period.to + chrono::Duration::days(1)) + 14 * 3600;
    let mut out = HashMap::new();
    for s in store.records_between(Some(station), lo, hi)? {
        if let Ok(r) = s.parse()
            && let Some(l) = r.evidence.and_then(|e| e.integrated_lufs)
        {
            out.insert(s.seq, l);
        }
    }
    Ok(out)
}

async fn reports_page(
    state: State<AppState>,
    v: Option<Extension<Viewer>>,
    who: Option<Extension<Principal>>,
    q: Query<Vec<(String, String)>>,
) -> Response {
    answer(reports_inner(state, v.clone(), who, q).await, v)
}

/// `/reports[?station=ID]`: the downloads of the city (admins and auditors) or of one station.
/// An operator picks among their stations (the only one preselected); the guard has already
/// refused a station that is not theirs.
async fn reports_inner(
    State(state): State<AppState>,
    v: Option<Extension<Viewer>>,
    who: Option<Extension<Principal>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Page {
    use crate::report::docx::{DocxError, station_param};
    // The picker's "whole city" sends an empty `station=`.
    let params: Vec<(String, String)> = params
        .into_iter()
        .filter(|(k, v)| !(k == "station" && v.is_empty()))
        .collect();
    let asked = station_param(&params).map_err(|e| PageError::BadRequest(e.to_string()))?;
    let operator = who
        .as_ref()
        .filter(|Extension(p)| p.user.role == super::accounts::Role::Operator)
        .map(|Extension(p)| p.user.stations.clone());
    let reg = state.registry();
    if let Some(id) = &asked
        && reg.get(id).is_none()
    {
        return Err(PageError::NotFound(
            DocxError::UnknownStation(id.clone()).to_string(),
        ));
    }
    // The stations offered: an operator's own (registered) ones, or every registered station.
    let offered: Vec<&crate::report::StationEntry> = match &operator {
        Some(mine) => mine.iter().filter_map(|id| reg.get(id)).collect(),
        None => reg.stations.values().collect(),
    };
    let selected = asked.or_else(|| match offered.as_slice() {
        [only] if operator.is_some() => Some(only.id.clone()),
        _ => None,
    });
    let stations: Vec<minijinja::Value> = offered
        .iter()
        .map(|e| {
            minijinja::context! {
                id => e.id,
                name => e.name,
                selected => selected.as_deref() == Some(e.id.as_str()),
            }
        })
        .collect();
    let chosen = selected
        .as_deref()
        .and_then(|id| reg.get(id))
        .map(|e| minijinja::context! { id => e.id, name => e.name });
    // An operator without a chosen station gets no links (the city is not theirs).
    let downloads = selected.is_some() || operator.is_none();
    let suffix = selected
        .as_deref()
        .map(|id| format!("?station={}", super::authz::percent_encode(id)))
        .unwrap_or_default();
    let now = state.now();
    let today = today(now);
    let this = current_month(now);
    let months: Vec<minijinja::Value> = (0..13)
        .map(|i| {
            let m0 = today.year() * 12 + today.month0() as i32 - i;
            let (y, m) = (m0.div_euclid(12), m0.rem_euclid(12) + 1);
            minijinja::context! {
                value => format!("{y:04}-{m:02}"),
                label => format!("Tháng {m:02}/{y}"),
                open => format!("{y:04}-{m:02}") == this,
            }
        })
        .collect();
    let year = today.year();
    let html = web::render(
        "reports.html",
        viewer(&v),
        minijinja::context! {
            months,
            year,
            deadline => format!("15/11/{year}"),
            now,
            stations,
            chosen,
            city_allowed => operator.is_none(),
            downloads,
            suffix,
        },
    )?;
    Ok(Html(html))
}

use chrono::Datelike;

async fn stylesheet() -> Response {
    let mut r = web::CSS.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    // The file's name changes with its content (`CSS_PATH`).
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

/// The pages' routes (merged into the collector's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview_page))
        .route("/stations/{id}", get(station_page))
        .route("/reports", get(reports_page))
        .route(web::CSS_PATH, get(stylesheet))
}
