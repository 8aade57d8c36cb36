//! The overview page's content: every station's state, now airing, alerts and this month's
//! compliance, filtered by area code and state, sorted, and cut into pages; the city total and its
//! chart.
//!
//! **Invariant:** pure: a function of the cached status rows (`StationStatus`), what the plan
//! cache already holds of each station's schedule this month and next ([`PlanFacts`]: program
//! titles, next month's missing episodes), the query and `now`; it builds no plan and reads
//! nothing (readiness comes from the heartbeat and the latest version already in the row). Work per request is one pass over the rows plus a
//! sort, so 10,000 stations stay cheap; only the rows of the page shown are turned into text.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::report::{MissingEpisode, PlanFacts};

use super::readiness;
use super::status::{StationStatus, age_vi, journal_alert_vi};
use super::table::{alerts, outcome_vi};

/// Rows per page.
pub const PAGE_ROWS: usize = 50;

/// A station clock this far from the collector's (transit included) is an alert.
pub const CLOCK_SKEW_ALERT_MS: i64 = 2_000;

/// From this many days before a month starts, a missing episode of that month is urgent.
pub const EPISODE_URGENT_DAYS: i64 = 3;

/// One station as the overview reads it.
#[derive(Debug, Clone)]
pub struct Station {
    pub status: StationStatus,
    /// What the plan cache holds of this month's schedule (titles); `None`: not held.
    pub this_month: Option<Arc<PlanFacts>>,
    /// Next month's ([`super::plans::next_month`]) missing episodes; `None`: not held yet.
    pub next_month: Option<Arc<PlanFacts>>,
}

impl Station {
    /// A station without plan facts (tests, a plan source that holds none).
    pub fn of(status: StationStatus) -> Self {
        Self {
            status,
            this_month: None,
            next_month: None,
        }
    }
}

/// `/?area=&status=&sort=&page=`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct OverviewQuery {
    /// Area codes starting with this (empty: every area).
    pub area: String,
    /// `""` (all), `online`, `offline`, `alert`.
    pub status: String,
    /// `name` (default), `area`, `compliance` (lowest first), `state` (offline first).
    pub sort: String,
    /// 1-based.
    pub page: Option<usize>,
}

/// One station's row as the page shows it.
#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub online: bool,
    /// "12 giây trước", "chưa từng báo".
    pub heard: String,
    pub now_airing: Option<String>,
    pub next_airing: Option<String>,
    pub backlog: Option<u64>,
    pub last_airing: Option<String>,
    pub compliance_pct: Option<f64>,
    pub planned: u64,
    pub gaps: Option<String>,
    /// The journal: `None` when not reported, else its alert or "ghi được".
    pub journal: Option<String>,
    pub journal_alert: bool,
    /// Short Vietnamese words, one per alert.
    pub alerts: Vec<String>,
    /// The schedule version: "v12", "v11 → v12 đang tải", "—" (`collector::readiness`).
    pub version: String,
    /// "Sẵn sàng tháng 01/2027", "Chưa sẵn sàng: thiếu 2 tệp", "—".
    pub readiness: String,
    /// `None`: unmanaged.
    pub ready: Option<bool>,
}

/// One band of the city chart.
#[derive(Debug, Serialize)]
pub struct Band {
    pub label: &'static str,
    pub class: &'static str,
    pub stations: usize,
}

/// The whole overview.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub now: DateTime<Utc>,
    pub month: String,
    pub total: usize,
    pub online: usize,
    pub offline: usize,
    pub with_alerts: usize,
    /// City-wide compliance: each station's rate weighted by its planned airings.
    pub city_pct: Option<f64>,
    pub city_planned: u64,
    pub bands: Vec<Band>,
    /// Stations the filter kept.
    pub matched: usize,
    pub page: usize,
    pub pages: usize,
    pub rows: Vec<Row>,
    pub query: OverviewQuery,
    /// Links to the pages before and after, keeping the filter and the sort.
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    /// Stations with an alert, for the alert list (at most [`PAGE_ROWS`]).
    pub alert_list: Vec<AlertLine>,
    pub more_alerts: usize,
    /// Stations with an urgent alert (next month's episode missing, or a managed station not
    /// ready for it, the month 3 days away).
    pub urgent: usize,
}

/// One line of the alert list.
#[derive(Debug, Serialize)]
pub struct AlertLine {
    pub id: String,
    pub name: String,
    pub text: String,
    /// The line holds an urgent alert (listed first).
    pub urgent: bool,
}

/// `01/2027`.
fn month_vi(d: NaiveDate) -> String {
    d.format("%m/%Y").to_string()
}

/// The alert of one missing episode: "Thiếu số tháng 01/2027 của Chuyên mục Cải cách hành
/// chính" (a file that is there but does not decode: "Số tháng … không phát được (tệp hỏng)").
pub fn episode_alert_vi(e: &MissingEpisode) -> String {
    let title = e.title.as_deref().unwrap_or(&e.program);
    if e.undecodable {
        format!(
            "Số tháng {} của {title} không phát được (tệp hỏng)",
            month_vi(e.month)
        )
    } else {
        format!("Thiếu số tháng {} của {title}", month_vi(e.month))
    }
}

/// Whether a missing episode of the month starting `month` (local date) is urgent at `now`.
pub fn episode_urgent(month: NaiveDate, now: DateTime<Utc>) -> bool {
    let starts = month
        .and_hms_opt(0, 0, 0)
        .and_then(|t| {
            t.and_local_timezone(super::status::report_offset())
                .single()
        })
        .map(|t| t.with_timezone(&Utc));
    starts.is_some_and(|s| now >= s - Duration::days(EPISODE_URGENT_DAYS))
}

/// The episode alerts of `s` at `now`, and whether one is urgent (prefixed "KHẨN: ").
fn episode_alerts(s: &Station, now: DateTime<Utc>) -> (Vec<String>, bool) {
    let Some(f) = &s.next_month else {
        return (Vec::new(), false);
    };
    let mut urgent = false;
    let texts = f
        .missing_episodes
        .iter()
        .map(|e| {
            let t = episode_alert_vi(e);
            if episode_urgent(e.month, now) {
                urgent = true;
                format!("KHẨN: {t}")
            } else {
                t
            }
        })
        .collect();
    (texts, urgent)
}

/// Every alert of `s` as Vietnamese words (the `loa status` words, clock skew beyond
/// [`CLOCK_SKEW_ALERT_MS`], and a plan that could not be built for the month — a missing
/// episode).
pub fn station_alerts(s: &StationStatus) -> Vec<String> {
    let mut out: Vec<String> = alerts(s).into_iter().map(str::to_owned).collect();
    if let Some(ms) = s.clock_skew_ms
        && ms.abs() >= CLOCK_SKEW_ALERT_MS
        && s.clock_synced != Some(false)
    {
        out.push(format!(
            "lệch giờ {} giây",
            crate::web::fmt::decimal_vi(ms as f64 / 1000.0, 1)
        ));
    }
    if s.plan_note.is_some() {
        out.push("thiếu kế hoạch/bản tin".into());
    }
    out
}

fn brief(b: &Option<crate::wire::AiringBrief>) -> Option<String> {
    b.as_ref().map(|b| {
        format!(
            "{} {}",
            b.program.as_deref().or(b.slot.as_deref()).unwrap_or("—"),
            b.at.format("%H:%M %d/%m")
        )
    })
}

fn row(st: &Station, this_month: Option<&PlanFacts>, now: DateTime<Utc>) -> Row {
    let s = &st.status;
    let title = |id: &str| -> String {
        this_month
            .and_then(|f| f.titles.get(id))
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    let heard = match s.heartbeat_age_secs {
        Some(a) => age_vi(a),
        None => "chưa từng báo".into(),
    };
    let last_airing = s.last_airing.as_ref().map(|l| {
        let mut t = format!(
            "{} {} — {}",
            match (l.program.as_deref(), l.slot.as_deref()) {
                (Some(p), _) => title(p),
                (None, Some(slot)) => slot.to_string(),
                (None, None) => "thủ công".into(),
            },
            l.scheduled_at.format("%H:%M %d/%m"),
            outcome_vi(&l.outcome)
        );
        if let Some(c) = &l.reason_code {
            t.push_str(&format!(" ({})", c.vi()));
        }
        t
    });
    let gaps = (!s.gaps.is_empty()).then(|| {
        s.gaps
            .iter()
            .map(|g| format!("{}–{}", g.from, g.to))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let journal_text = s.journal.as_ref().and_then(journal_alert_vi);
    Row {
        id: s.id.clone(),
        name: s.name.clone(),
        area_code: s.area_code.clone(),
        online: s.online,
        heard,
        now_airing: brief(&s.now_airing),
        next_airing: brief(&s.next_airing),
        backlog: s.backlog_records,
        last_airing,
        compliance_pct: s.month_compliance_pct,
        planned: s.month_planned,
        gaps,
        journal_alert: journal_text.is_some(),
        journal: s
            .journal
            .as_ref()
            .map(|_| journal_text.unwrap_or_else(|| "ghi được".into())),
        alerts: all_alerts(st, now).0,
        version: readiness::version_vi(&readiness::Facts::of(s)),
        readiness: readiness::readiness_vi(
            &readiness::Facts::of(s),
            super::plans::next_month(now).from,
        ),
        ready: readiness::Facts::of(s).ready(),
    }
}

/// Every alert of `st` at `now` (next month's missing episodes first, then readiness and
/// sync), and whether one is urgent.
fn all_alerts(st: &Station, now: DateTime<Utc>) -> (Vec<String>, bool) {
    let (mut out, mut urgent) = episode_alerts(st, now);
    let facts = readiness::Facts::of(&st.status);
    if readiness::has_alert(&facts) {
        let next = super::plans::next_month(now).from;
        let (texts, u) = readiness::alerts_vi(&facts, next, now);
        out.extend(texts);
        urgent |= u;
    }
    out.extend(station_alerts(&st.status));
    (out, urgent)
}

fn has_alert(st: &Station) -> bool {
    let s = &st.status;
    !s.online
        || !alerts(s).is_empty()
        || s.plan_note.is_some()
        || s.clock_skew_ms
            .is_some_and(|ms| ms.abs() >= CLOCK_SKEW_ALERT_MS)
        || st
            .next_month
            .as_ref()
            .is_some_and(|f| !f.missing_episodes.is_empty())
        || readiness::has_alert(&readiness::Facts::of(s))
}

/// Percent-encode a query value (all but unreserved characters).
fn query_encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Build the overview of `stations` (every registered station the viewer may see) for `q` at
/// `now`.
pub fn build(stations: &[Station], q: OverviewQuery, now: DateTime<Utc>) -> Overview {
    build_with(stations, q, now, |s| s.this_month.clone())
}

/// [`build`], with this month's plan facts (program titles) asked of `this_month` for the rows
/// of the page shown only, not of every station ([`Station::this_month`] is not read).
pub fn build_with(
    stations: &[Station],
    q: OverviewQuery,
    now: DateTime<Utc>,
    this_month: impl Fn(&Station) -> Option<Arc<PlanFacts>>,
) -> Overview {
    let total = stations.len();
    let online = stations.iter().filter(|s| s.status.online).count();
    let mut with_alerts = 0;
    let mut urgent = 0;
    let (mut weighted, mut planned) = (0.0f64, 0u64);
    let mut bands = [0usize; 5];
    // Urgent lines first, then the others, each in registry order; at most PAGE_ROWS shown.
    let (mut urgent_lines, mut other_lines) = (Vec::new(), Vec::new());
    for st in stations {
        let s = &st.status;
        if has_alert(st) {
            with_alerts += 1;
            let (texts, is_urgent) = all_alerts(st, now);
            urgent += usize::from(is_urgent);
            let list = if is_urgent {
                &mut urgent_lines
            } else {
                &mut other_lines
            };
            if list.len() < PAGE_ROWS {
                list.push(AlertLine {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    text: texts.join(", "),
                    urgent: is_urgent,
                });
            }
        }
        match s.month_compliance_pct {
            Some(p) => {
                weighted += p * s.month_planned as f64;
                planned += s.month_planned;
                bands[match p {
                    p if p >= 95.0 => 0,
                    p if p >= 80.0 => 1,
                    p if p >= 50.0 => 2,
                    _ => 3,
                }] += 1;
            }
            None => bands[4] += 1,
        }
    }
    let mut alert_list = urgent_lines;
    alert_list.extend(other_lines);
    alert_list.truncate(PAGE_ROWS);
    let more_alerts = with_alerts - alert_list.len();
    let area = q.area.trim();
    let mut kept: Vec<&Station> = stations
        .iter()
        .filter(|s| area.is_empty() || s.status.area_code.starts_with(area))
        .filter(|s| match q.status.as_str() {
            "online" => s.status.online,
            "offline" => !s.status.online,
            "alert" => has_alert(s),
            _ => true,
        })
        .collect();
    let by_name = |a: &&Station, b: &&Station| {
        (&a.status.name, &a.status.id).cmp(&(&b.status.name, &b.status.id))
    };
    match q.sort.as_str() {
        "area" => kept.sort_by(|a, b| {
            a.status
                .area_code
                .cmp(&b.status.area_code)
                .then_with(|| by_name(a, b))
        }),
        // Lowest first; a station with nothing due yet last.
        "compliance" => kept.sort_by(|a, b| {
            let key = |s: &Station| s.status.month_compliance_pct.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b)).then_with(|| by_name(a, b))
        }),
        "state" => kept.sort_by(|a, b| {
            a.status
                .online
                .cmp(&b.status.online)
                .then_with(|| by_name(a, b))
        }),
        _ => kept.sort_by(by_name),
    }
    let matched = kept.len();
    let pages = matched.div_ceil(PAGE_ROWS).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let rows = kept
        .iter()
        .skip((page - 1) * PAGE_ROWS)
        .take(PAGE_ROWS)
        .map(|s| row(s, this_month(s).as_deref(), now))
        .collect();
    let labels = [
        ("từ 95 % trở lên", "band-good"),
        ("80 – dưới 95 %", "band-fair"),
        ("50 – dưới 80 %", "band-poor"),
        ("dưới 50 %", "band-bad"),
        ("chưa có buổi đến hạn", "band-none"),
    ];
    let href = |p: usize| {
        let mut h = format!("/?page={p}");
        for (k, v) in [
            ("area", area),
            ("status", q.status.as_str()),
            ("sort", q.sort.as_str()),
        ] {
            if !v.is_empty() {
                h.push_str(&format!("&{k}={}", query_encode(v)));
            }
        }
        h
    };
    let (prev_href, next_href) = (
        (page > 1).then(|| href(page - 1)),
        (page < pages).then(|| href(page + 1)),
    );
    Overview {
        prev_href,
        next_href,
        now,
        month: super::status::current_month(now),
        total,
        online,
        offline: total - online,
        with_alerts,
        city_pct: (planned > 0).then(|| weighted / planned as f64),
        city_planned: planned,
        bands: labels
            .iter()
            .zip(bands)
            .map(|((label, class), stations)| Band {
                label,
                class,
                stations,
            })
            .collect(),
        matched,
        page,
        pages,
        rows,
        query: OverviewQuery {
            area: area.to_string(),
            ..q
        },
        alert_list,
        more_alerts,
        urgent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(i: usize) -> StationStatus {
        serde_json::from_value(serde_json::json!({
            "id": format!("st{i:05}"),
            "name": format!("Phường <b>{i}</b>"),
            "area_code": format!("{}", 20000 + i),
            "online": !i.is_multiple_of(3),
            "last_heartbeat_at": null,
            "heartbeat_age_secs": if !i.is_multiple_of(3) { serde_json::json!(12) } else { serde_json::Value::Null },
            "now_airing": null,
            "next_airing": null,
            "backlog_records": 0,
            "clock_synced": true,
            "clock_skew_ms": if i == 7 { 5_000 } else { 0 },
            "output_ok": true,
            "journal": null,
            "station_last_seq": null,
            "stored_through": 0,
            "gaps": [],
            "last_airing": null,
            "month": "2026-11",
            "month_planned": 60,
            "month_compliance_pct": (i % 101) as f64,
            "plan_note": null,
        }))
        .unwrap()
    }

    fn render(o: &Overview) -> String {
        crate::web::render("overview.html", None, o).unwrap()
    }

    #[test]
    fn filters_sorts_pages_and_renders_every_page() {
        let all: Vec<Station> = (0..120).map(|i| Station::of(status(i))).collect();
        let now = "2026-11-30T16:00:00Z".parse().unwrap();
        let o = build(&all, OverviewQuery::default(), now);
        assert_eq!((o.total, o.online, o.offline), (120, 80, 40));
        assert_eq!((o.pages, o.page, o.rows.len()), (3, 1, PAGE_ROWS));
        let html = render(&o);
        assert!(html.contains("id=\"page-next\""), "{html}");
        assert!(
            html.contains("Phường &lt;b&gt;1&lt;&#x2f;b&gt;"),
            "names are escaped"
        );
        // The last page: a previous link keeps the filter and sort.
        let q = OverviewQuery {
            status: "online".into(),
            sort: "compliance".into(),
            page: Some(99),
            ..Default::default()
        };
        let o = build(&all, q, now);
        assert_eq!((o.matched, o.pages, o.page), (80, 2, 2));
        let html = render(&o);
        assert!(html.contains("status=online"), "{html}");
        assert!(html.contains("sort=compliance"), "{html}");
        assert!(o.rows.iter().all(|r| r.online));
        // Lowest compliance first on the first page.
        let first = build(
            &all,
            OverviewQuery {
                sort: "compliance".into(),
                ..Default::default()
            },
            now,
        );
        assert_eq!(first.rows[0].compliance_pct, Some(0.0));
        // Area prefix and the clock-skew alert.
        let area = build(
            &all,
            OverviewQuery {
                area: "2000".into(),
                status: "alert".into(),
                ..Default::default()
            },
            now,
        );
        assert!(
            area.rows
                .iter()
                .any(|r| r.id == "st00007" && r.alerts.iter().any(|a| a.starts_with("lệch giờ")))
        );
        render(&area);
    }

    #[test]
    fn next_months_missing_episode_is_an_alert_urgent_from_three_days_before() {
        let ep = MissingEpisode {
            program: "cchc".into(),
            title: Some("Chuyên mục Cải cách hành chính".into()),
            month: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            path: "ep/2027-01.ogg".into(),
            undecodable: false,
        };
        let mut st = Station::of(status(1));
        st.this_month = Some(Arc::new(PlanFacts {
            titles: [("cchc".to_string(), "Chuyên mục CCHC".to_string())].into(),
            ..Default::default()
        }));
        st.next_month = Some(Arc::new(PlanFacts {
            missing_episodes: vec![ep.clone()],
            ..Default::default()
        }));
        let others: Vec<Station> = (2..5).map(|i| Station::of(status(i))).collect();
        let mut all = others.clone();
        all.push(st);
        let text = "Thiếu số tháng 01/2027 của Chuyên mục Cải cách hành chính";
        // 29/12/2026 06:59 local: 3 days and 1 minute before the month; 07:00 UTC+7 is 00:00 UTC.
        let early: DateTime<Utc> = "2026-12-28T16:59:00Z".parse().unwrap();
        let o = build(&all, OverviewQuery::default(), early);
        assert_eq!(o.urgent, 0);
        let line = o.alert_list.iter().find(|a| a.id == "st00001").unwrap();
        assert_eq!(line.text.split(", ").next(), Some(text), "{}", line.text);
        let html = render(&o);
        assert!(html.contains(&text.replace('/', "&#x2f;")), "{html}");
        // From 00:00 local on 29/12 (3 days before 01/01): urgent, listed first.
        let late: DateTime<Utc> = "2026-12-28T17:00:00Z".parse().unwrap();
        let o = build(&all, OverviewQuery::default(), late);
        assert_eq!(o.urgent, 1);
        assert_eq!(o.alert_list[0].id, "st00001");
        assert!(o.alert_list[0].urgent);
        assert!(o.alert_list[0].text.starts_with(&format!("KHẨN: {text}")));
        assert!(render(&o).contains("id=\"urgent\""));
        // A file that is there but does not decode says so.
        let broken = MissingEpisode {
            undecodable: true,
            ..ep
        };
        assert_eq!(
            episode_alert_vi(&broken),
            "Số tháng 01/2027 của Chuyên mục Cải cách hành chính không phát được (tệp hỏng)"
        );
    }
}
