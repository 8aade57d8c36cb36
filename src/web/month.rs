//! The station month page's content: the calendar heat-map (day × slot), the daily compliance
//! chart, the totals and the airing table (planned vs actual time, seconds late, program titles,
//! measured loudness).
//!
//! **Invariant:** pure: a function of the month's reconciliation (made at the request's `now`, so
//! an occurrence still to come is "chưa đến giờ" and never counted as missed), the schedule's
//! program titles and the loudness the records carry.

use chrono::{Datelike, NaiveDate, Timelike};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

use crate::reconcile::{Row as Recon, Status, Totals};
use crate::report::{Period, StationSection};

/// The class, symbol and rank (worse is higher) of a status.
fn look(s: Status) -> (&'static str, &'static str, u8) {
    match s {
        Status::OnTime => ("on_time", "✓", 1),
        Status::Late => ("late", "T", 3),
        Status::Short => ("short", "N", 4),
        Status::Failed => ("failed", "L", 6),
        Status::Missed => ("missed", "✗", 6),
        Status::NoRecord => ("no_record", "?", 5),
        Status::NotYetDue => ("not_yet_due", "·", 0),
        Status::Unplanned => ("unplanned", "+", 2),
        Status::Bulletin => ("bulletin", "B", 0),
    }
}

/// The legend, in the order the heat-map's colours go.
pub fn legend() -> Vec<LegendItem> {
    [
        Status::OnTime,
        Status::Late,
        Status::Short,
        Status::Missed,
        Status::Failed,
        Status::NoRecord,
        Status::NotYetDue,
    ]
    .into_iter()
    .map(|s| {
        let (class, symbol, _) = look(s);
        LegendItem {
            class,
            symbol,
            label: s.label_vi(),
        }
    })
    .collect()
}

#[derive(Debug, Serialize)]
pub struct LegendItem {
    pub class: &'static str,
    pub symbol: &'static str,
    pub label: &'static str,
}

/// One heat-map cell: a day's occurrence(s) of a slot.
#[derive(Debug, Serialize)]
pub struct Cell {
    /// Empty: nothing planned that day in that slot.
    pub class: &'static str,
    pub symbol: &'static str,
    /// What a screen reader and a tooltip say: "05:30 — Phát trễ".
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct HeatRow {
    /// `01/03`.
    pub day: String,
    pub weekday: &'static str,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Serialize)]
pub struct SlotHead {
    pub id: String,
    /// `05:30` (the slot's usual time).
    pub time: String,
}

/// One bar of the daily chart.
#[derive(Debug, Serialize)]
pub struct DayBar {
    pub day: u32,
    /// `None`: nothing due that day.
    pub pct: Option<f64>,
    pub text: String,
}

/// One airing row.
#[derive(Debug, Serialize)]
pub struct AiringRow {
    pub class: &'static str,
    pub planned_at: String,
    pub actual_at: Option<String>,
    pub late_secs: Option<f64>,
    pub title: String,
    pub category: String,
    pub status: &'static str,
    pub aired_secs: f64,
    pub planned_secs: f64,
    pub lufs: Option<f64>,
    pub reason: Option<String>,
}

/// The month's totals as the page shows them.
#[derive(Debug, Serialize)]
pub struct MonthTotals {
    pub planned: u64,
    pub aired: u64,
    pub on_time: u64,
    pub late: u64,
    pub short: u64,
    pub failed: u64,
    pub missed: u64,
    pub no_record: u64,
    pub not_yet_due: u64,
    pub unplanned: u64,
    pub compliance_pct: Option<f64>,
}

impl From<&Totals> for MonthTotals {
    fn from(t: &Totals) -> Self {
        Self {
            planned: t.planned,
            aired: t.aired,
            on_time: t.on_time,
            late: t.late,
            short: t.short,
            failed: t.failed,
            missed: t.missed,
            no_record: t.no_record,
            not_yet_due: t.not_yet_due,
            unplanned: t.unplanned,
            compliance_pct: t.compliance_pct(),
        }
    }
}

/// A month offered by the picker.
#[derive(Debug, Serialize)]
pub struct MonthChoice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Debug, Serialize)]
pub struct MonthPage {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub month: String,
    /// `03/2019`.
    pub month_label: String,
    pub prev_month: String,
    pub next_month: String,
    pub months: Vec<MonthChoice>,
    pub open_note: Option<String>,
    pub plan_note: Option<String>,
    pub totals: MonthTotals,
    pub slots: Vec<SlotHead>,
    pub heat: Vec<HeatRow>,
    pub days: Vec<DayBar>,
    pub legend: Vec<LegendItem>,
    pub airings: Vec<AiringRow>,
}

const WEEKDAYS: [&str; 7] = ["T2", "T3", "T4", "T5", "T6", "T7", "CN"];

fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn shift(d: NaiveDate, months: i32) -> NaiveDate {
    let m0 = d.year() * 12 + d.month0() as i32 + months;
    NaiveDate::from_ymd_opt(m0.div_euclid(12), m0.rem_euclid(12) as u32 + 1, 1).unwrap_or(d)
}

/// The picker's months: two years back from `today`'s month to one month ahead, and the one
/// shown when it is outside that.
fn choices(shown: NaiveDate, today: NaiveDate) -> Vec<MonthChoice> {
    let first = shift(today.with_day(1).unwrap_or(today), 1);
    let mut out: Vec<NaiveDate> = (0..26).map(|i| shift(first, -i)).collect();
    let shown = shown.with_day(1).unwrap_or(shown);
    if !out.contains(&shown) {
        out.push(shown);
        out.sort_by(|a, b| b.cmp(a));
    }
    out.into_iter()
        .map(|d| MonthChoice {
            value: month_of(d),
            label: format!("Tháng {:02}/{}", d.month(), d.year()),
            selected: d == shown,
        })
        .collect()
}

/// Build the page of `s` over `period` (a month), with program `titles` by id and measured
/// loudness by record seq; `today` is the collector's date, `open_note` the period's note at
/// the request's `now`.
pub fn build(
    s: &StationSection,
    period: &Period,
    titles: &HashMap<String, String>,
    lufs: &HashMap<u64, f64>,
    today: NaiveDate,
    open_note: Option<String>,
) -> MonthPage {
    let rows = &s.reconciliation.rows;
    // Slots in order of their usual local time (the first occurrence's), then by id.
    let mut slot_time: BTreeMap<String, (u32, String)> = BTreeMap::new();
    for r in rows {
        if let Some(slot) = &r.slot
            && r.status != Status::Unplanned
        {
            slot_time.entry(slot.clone()).or_insert_with(|| {
                let t = r.scheduled_at.time();
                (
                    t.hour() * 3600 + t.minute() * 60 + t.second(),
                    r.scheduled_at.format("%H:%M").to_string(),
                )
            });
        }
    }
    let mut slots: Vec<(String, u32, String)> = slot_time
        .into_iter()
        .map(|(id, (secs, time))| (id, secs, time))
        .collect();
    slots.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let slot_index: HashMap<&str, usize> = slots
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| (id.as_str(), i))
        .collect();
    let days: Vec<NaiveDate> = period
        .from
        .iter_days()
        .take_while(|d| *d <= period.to)
        .collect();
    // (day index, slot index) → worst status and the texts of its occurrences.
    let mut grid: HashMap<(usize, usize), (Status, Vec<String>)> = HashMap::new();
    let mut per_day: Vec<Totals> = vec![Totals::default(); days.len()];
    for r in rows {
        let Some(di) = days.iter().position(|d| *d == r.scheduled_at.date_naive()) else {
            continue;
        };
        per_day[di].add(r);
        let Some(si) = r.slot.as_deref().and_then(|s| slot_index.get(s)) else {
            continue;
        };
        if r.status == Status::Unplanned {
            continue;
        }
        let text = format!(
            "{} — {}",
            r.scheduled_at.format("%H:%M"),
            r.status.label_vi()
        );
        let e = grid.entry((di, *si)).or_insert((r.status, Vec::new()));
        if look(r.status).2 > look(e.0).2 {
            e.0 = r.status;
        }
        e.1.push(text);
    }
    let heat = days
        .iter()
        .enumerate()
        .map(|(di, d)| HeatRow {
            day: d.format("%d/%m").to_string(),
            weekday: WEEKDAYS[d.weekday().num_days_from_monday() as usize],
            cells: (0..slots.len())
                .map(|si| match grid.get(&(di, si)) {
                    Some((st, texts)) => {
                        let (class, symbol, _) = look(*st);
                        Cell {
                            class,
                            symbol,
                            text: texts.join("; "),
                        }
                    }
                    None => Cell {
                        class: "none",
                        symbol: "",
                        text: "không có lịch".into(),
                    },
                })
                .collect(),
        })
        .collect();
    let day_bars = days
        .iter()
        .zip(&per_day)
        .map(|(d, t)| {
            let pct = t.compliance_pct();
            DayBar {
                day: d.day(),
                pct,
                text: match pct {
                    Some(p) => format!(
                        "Ngày {}: {} ({}/{} buổi đến hạn)",
                        d.format("%d/%m"),
                        super::fmt::pct_vi(p),
                        t.on_time + t.late,
                        t.due()
                    ),
                    None => format!("Ngày {}: chưa có buổi đến hạn", d.format("%d/%m")),
                },
            }
        })
        .collect();
    let airings = rows.iter().map(|r| airing(r, titles, lufs)).collect();
    MonthPage {
        id: s.id.clone(),
        name: s.name.clone(),
        area_code: s.area_code.clone(),
        month: month_of(period.from),
        month_label: format!("{:02}/{}", period.from.month(), period.from.year()),
        prev_month: month_of(shift(period.from, -1)),
        next_month: month_of(shift(period.from, 1)),
        months: choices(period.from, today),
        open_note,
        plan_note: s.plan_note.as_deref().map(crate::report::plan_note_vi),
        totals: MonthTotals::from(&s.reconciliation.breakdown.totals),
        slots: slots
            .into_iter()
            .map(|(id, _, time)| SlotHead { id, time })
            .collect(),
        heat,
        days: day_bars,
        legend: legend(),
        airings,
    }
}

fn airing(r: &Recon, titles: &HashMap<String, String>, lufs: &HashMap<u64, f64>) -> AiringRow {
    let title = match &r.bulletin {
        // The centre's bulletin, by its id's start and the airing's number.
        Some(b) => format!(
            "Bản tin {} (lần {})",
            b.id.get(..8).unwrap_or(&b.id),
            b.repeat
        ),
        None => r
            .program
            .as_deref()
            .map(|p| titles.get(p).cloned().unwrap_or_else(|| p.to_string()))
            .or_else(|| r.slot.clone())
            .unwrap_or_else(|| "—".into()),
    };
    AiringRow {
        class: look(r.status).0,
        planned_at: r.scheduled_at.format("%H:%M %d/%m").to_string(),
        actual_at: r.actual_start.map(|t| t.format("%H:%M:%S").to_string()),
        late_secs: r.late_by_secs,
        title,
        category: category_vi(&r.category),
        status: crate::report::status_vi(r),
        aired_secs: r.aired_secs,
        planned_secs: r.planned_secs,
        lufs: r.seq.and_then(|q| lufs.get(&q).copied()),
        reason: r.reason_code.as_ref().map(|c| c.vi().to_string()),
    }
}

/// A category as people read it (the exports' rule, [`crate::report::category_vi`]).
pub fn category_vi(c: &str) -> String {
    crate::report::category_vi(c).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{Breakdown, StationReconciliation};
    use chrono::{DateTime, FixedOffset, TimeZone};

    fn at(day: u32, h: u32) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(2026, 11, day, h, 30, 0)
            .unwrap()
    }

    fn row(day: u32, h: u32, status: Status, seq: Option<u64>) -> Recon {
        Recon {
            station: "p".into(),
            occurrence: None,
            slot: Some(if h < 12 { "sang" } else { "chieu" }.into()),
            program: Some("cchc".into()),
            category: "relay".into(),
            source: crate::wire::Source::Relay,
            scheduled_at: at(day, h),
            actual_start: None,
            planned_secs: 900.0,
            aired_secs: if seq.is_some() { 900.0 } else { 0.0 },
            late_by_secs: None,
            short_by_secs: None,
            status,
            outcome: None,
            reason: Some("station was down".into()),
            reason_code: None,
            seq,
            schedule_version: None,
            bulletin: None,
        }
    }

    #[test]
    fn future_occurrences_are_still_to_come_and_titles_and_loudness_are_shown() {
        let rows = vec![
            row(1, 5, Status::OnTime, Some(1)),
            row(1, 17, Status::Missed, None),
            row(30, 5, Status::NotYetDue, None),
            row(30, 17, Status::NotYetDue, None),
        ];
        let mut breakdown = Breakdown::default();
        for r in &rows {
            breakdown.add(r);
        }
        let section = StationSection {
            id: "p".into(),
            name: "Phường <i>P</i>".into(),
            area_code: "1".into(),
            public_key: String::new(),
            plan_note: None,
            reconciliation: StationReconciliation { rows, breakdown },
            records: Vec::new(),
            bounds: Default::default(),
            titles: Default::default(),
        };
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let period = Period::parse("2026-11", today).unwrap();
        let titles = HashMap::from([("cchc".to_string(), "Chuyên mục CCHC".to_string())]);
        let lufs = HashMap::from([(1u64, -23.04)]);
        let page = build(&section, &period, &titles, &lufs, today, None);
        // Two still to come, one missed: 50 % of what is due, the future never missed.
        assert_eq!(page.totals.not_yet_due, 2);
        assert_eq!(page.totals.missed, 1);
        assert_eq!(page.totals.compliance_pct, Some(50.0));
        assert_eq!(page.slots.len(), 2);
        assert_eq!(page.slots[0].time, "05:30");
        let last = &page.heat[29].cells;
        assert!(last.iter().all(|c| c.class == "not_yet_due"), "{last:?}");
        assert!(last[0].text.contains("Chưa đến giờ"));
        assert_eq!(page.heat[1].cells[0].class, "none");
        assert_eq!(page.airings[0].title, "Chuyên mục CCHC");
        assert_eq!(page.airings[0].category, "tiếp sóng");
        assert_eq!(page.airings[0].lufs, Some(-23.04));
        assert_eq!(page.days[29].pct, None);
        let html = crate::web::render("station_month.html", None, &page).unwrap();
        assert!(html.contains("Phường &lt;i&gt;P&lt;&#x2f;i&gt;"));
        assert!(html.contains("-23,0"), "loudness the Vietnamese way");
        assert!(
            !html.contains("station was down"),
            "no English detail on the page"
        );
        assert!(
            html.contains("<option value=\"2026-11\" selected>"),
            "{html}"
        );
    }
}
