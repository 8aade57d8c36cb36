//! Plan vs as-run: every planned occurrence of a station gets a [`Status`] (on time, late by s,
//! short by s, failed, missed with the station's reason, no record, not yet due), every record
//! that accounts for no planned occurrence is listed as unplanned, every bulletin airing (a
//! record naming a bulletin, `wire::BulletinRef`) is listed as such — the centre's, neither
//! planned nor unplanned —, and [`Totals`] are summed per station, per category, per source and
//! for the city.
//!
//! **Invariant:** pure: the same plan, airings, thresholds and `now` give the same rows, in plan
//! order, then unplanned by seq, then bulletin airings by seq; every planned occurrence yields
//! exactly one row and every airing at most one (a later record for the same occurrence
//! supersedes an earlier one; each bulletin airing's record is its own row). A bulletin airing
//! never counts as planned, unplanned or in the compliance ratio. An occurrence
//! without a record whose record cannot be expected yet at `now` (see [`due_at`]) is
//! [`Status::NotYetDue`], never "no record", and stays out of the compliance ratio. `now` is
//! handed in (from the caller's injected clock); nothing here reads a clock. It reads only the
//! fields of [`AiredAiring`] (what the store keeps in columns beside each signed record), never the
//! signed bytes.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use crate::reason::ReasonCode;
use crate::schedule::PlannedAiring;
use crate::wire::{AiringRecord, Outcome, Source};

/// Default lateness threshold: an airing whose first sample came more than this many seconds
/// after its planned instant is "late" (a minute is what a listener notices on a loudspeaker).
pub const DEFAULT_LATE_SECS: f64 = 60.0;
/// Default shortness tolerance: an airing is "short" when it aired less than planned minus this
/// (decoder rounding and fades are a few seconds).
pub const DEFAULT_SHORT_TOLERANCE_SECS: f64 = 5.0;

/// Thresholds of the classification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub late_secs: f64,
    pub short_tolerance_secs: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            late_secs: DEFAULT_LATE_SECS,
            short_tolerance_secs: DEFAULT_SHORT_TOLERANCE_SECS,
        }
    }
}

/// What became of a planned occurrence (or that an airing was not planned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    OnTime,
    Late,
    Short,
    Failed,
    Missed,
    NoRecord,
    /// Planned, no record yet, and none can be expected yet at `now` (a future airing, or one
    /// still within its grace and length).
    NotYetDue,
    Unplanned,
    /// A bulletin airing (issue #15): sent by the centre, not planned by the schedule; what
    /// became of it is the record's outcome. Counted apart ([`Totals::bulletins`]).
    Bulletin,
}

impl Status {
    /// Vietnamese label used in exports and the dashboard.
    pub fn label_vi(self) -> &'static str {
        match self {
            Status::OnTime => "Phát đúng giờ",
            Status::Late => "Phát trễ",
            Status::Short => "Phát thiếu thời lượng",
            Status::Failed => "Lỗi, không phát được",
            Status::Missed => "Bỏ lỡ",
            Status::NoRecord => "Không có bản ghi",
            Status::NotYetDue => "Chưa đến giờ",
            Status::Unplanned => "Phát ngoài kế hoạch",
            Status::Bulletin => "Bản tin",
        }
    }
}

/// An aired airing, as reconciliation reads it: the fields of a station's record (the aired layer,
/// between the planned `schedule::PlannedAiring` and the reconciled [`Row`]). The store hands
/// these from its columns (no JSON parsing), and `From<&AiringRecord>` gives the same from a
/// parsed record.
#[derive(Debug, Clone, PartialEq)]
pub struct AiredAiring {
    pub seq: u64,
    pub occurrence: Option<String>,
    pub slot: Option<String>,
    pub program: Option<String>,
    pub category: String,
    pub source: Source,
    pub scheduled_at: DateTime<FixedOffset>,
    pub actual_start: Option<DateTime<FixedOffset>>,
    pub planned_secs: f64,
    pub aired_secs: f64,
    /// First sample's instant minus the scheduled instant, in ms (positive = late).
    pub start_offset_ms: Option<i64>,
    pub outcome: Outcome,
    /// The station's free text (English detail).
    pub reason: Option<String>,
    /// The reason's code as the store holds it (column `reason_code`), or as the record gives it
    /// ([`AiringRecord::code`]: its own, or its version 1 text classified); `None` when it aired
    /// without a reason. Reconciliation takes it as it is and never reads the text for it.
    pub reason_code: Option<ReasonCode>,
    /// The centre's schedule version the station aired it under, when the record names one.
    pub schedule_version: Option<u64>,
    /// The bulletin airing the record accounts for (the store's `bulletin_id` and
    /// `bulletin_repeat` columns, or the record's `bulletin`).
    pub bulletin: Option<BulletinAiring>,
}

/// The bulletin airing a record accounts for (`wire::BulletinRef`, as reconciliation reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulletinAiring {
    /// The bulletin's id (32 lowercase hex digits).
    pub id: String,
    /// Which of its airings, from 1.
    pub repeat: u32,
    /// The record says its audio was read by text-to-speech (`false` when only the store's
    /// columns were read: they do not keep it; the centre's bulletin says it too).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub synthetic: bool,
}

impl From<&AiringRecord> for AiredAiring {
    fn from(r: &AiringRecord) -> Self {
        Self::from(r.clone())
    }
}

impl From<AiringRecord> for AiredAiring {
    fn from(r: AiringRecord) -> Self {
        let reason_code = r.code();
        Self {
            seq: r.seq,
            occurrence: r.occurrence,
            slot: r.slot,
            program: r.program,
            category: r.category,
            source: r.source,
            scheduled_at: r.scheduled_at,
            actual_start: r.actual_start,
            planned_secs: r.planned_secs,
            aired_secs: r.aired_secs,
            start_offset_ms: r.start_offset_ms,
            outcome: r.outcome,
            reason: r.reason,
            reason_code,
            schedule_version: r.schedule_version,
            bulletin: r.bulletin.map(|b| BulletinAiring {
                id: b.id,
                repeat: b.repeat,
                synthetic: b.synthetic,
            }),
        }
    }
}

/// One row of the reconciliation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Shared by every row of the station (one allocation per station, not per row).
    pub station: std::sync::Arc<str>,
    pub occurrence: Option<String>,
    pub slot: Option<String>,
    pub program: Option<String>,
    pub category: String,
    pub source: Source,
    pub scheduled_at: DateTime<FixedOffset>,
    pub actual_start: Option<DateTime<FixedOffset>>,
    pub planned_secs: f64,
    pub aired_secs: f64,
    /// Seconds late (start offset), when the station measured it.
    pub late_by_secs: Option<f64>,
    /// Seconds short of the plan, when positive.
    pub short_by_secs: Option<f64>,
    pub status: Status,
    pub outcome: Option<Outcome>,
    /// Why (English detail for engineers: the station's free text, or the collector's).
    pub reason: Option<String>,
    /// Why, as a code; what pages and exports show, in Vietnamese ([`ReasonCode::vi`]).
    pub reason_code: Option<ReasonCode>,
    pub seq: Option<u64>,
    /// The centre's schedule version its record names (absent: no record, or a record that
    /// names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_version: Option<u64>,
    /// The bulletin airing of a [`Status::Bulletin`] row (absent on every other row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulletin: Option<BulletinAiring>,
}

/// Counters over rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub planned: u64,
    /// Planned occurrences that went on air at all (on time + late + short).
    pub aired: u64,
    pub on_time: u64,
    pub late: u64,
    pub short: u64,
    pub failed: u64,
    pub missed: u64,
    pub no_record: u64,
    /// Planned occurrences not yet due at the report's `now` (counted in `planned`, never in the
    /// compliance ratio). Left out of JSON when zero, so a past period's export is unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_yet_due: u64,
    pub unplanned: u64,
    /// Seconds on air, planned and unplanned (bulletins apart: [`Totals::bulletin_secs`]).
    pub airtime_secs: f64,
    /// Bulletin airings recorded, whatever their outcome (never planned nor unplanned, never in
    /// the compliance ratio). Left out of JSON when zero, so a month without bulletins exports
    /// as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bulletins: u64,
    /// Bulletin airings that went on air (aired or partial). Left out of JSON when zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bulletins_aired: u64,
    /// Seconds of bulletins on air. Left out of JSON when zero.
    #[serde(default, skip_serializing_if = "is_zero_secs")]
    pub bulletin_secs: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_secs(x: &f64) -> bool {
    *x == 0.0
}

impl Totals {
    /// Count one row.
    pub fn add(&mut self, row: &Row) {
        if row.status == Status::Bulletin {
            self.bulletins += 1;
            if matches!(row.outcome, Some(Outcome::Aired | Outcome::Partial)) {
                self.bulletins_aired += 1;
            }
            self.bulletin_secs += row.aired_secs;
            return;
        }
        if row.status != Status::Unplanned {
            self.planned += 1;
        }
        match row.status {
            Status::OnTime => self.on_time += 1,
            Status::Late => self.late += 1,
            Status::Short => self.short += 1,
            Status::Failed => self.failed += 1,
            Status::Missed => self.missed += 1,
            Status::NoRecord => self.no_record += 1,
            Status::NotYetDue => self.not_yet_due += 1,
            Status::Unplanned => self.unplanned += 1,
            Status::Bulletin => {}
        }
        if matches!(row.status, Status::OnTime | Status::Late | Status::Short) {
            self.aired += 1;
        }
        self.airtime_secs += row.aired_secs;
    }

    /// Sum two totals.
    pub fn merge(&mut self, o: &Totals) {
        self.planned += o.planned;
        self.aired += o.aired;
        self.on_time += o.on_time;
        self.late += o.late;
        self.short += o.short;
        self.failed += o.failed;
        self.missed += o.missed;
        self.no_record += o.no_record;
        self.not_yet_due += o.not_yet_due;
        self.unplanned += o.unplanned;
        self.airtime_secs += o.airtime_secs;
        self.bulletins += o.bulletins;
        self.bulletins_aired += o.bulletins_aired;
        self.bulletin_secs += o.bulletin_secs;
    }

    /// Planned occurrences that are due (planned less not yet due): the compliance denominator.
    pub fn due(&self) -> u64 {
        self.planned.saturating_sub(self.not_yet_due)
    }

    /// Compliance: due occurrences aired in full (on time or late) over due occurrences, in
    /// percent; `None` when nothing is due (nothing planned, or all of it still to come).
    pub fn compliance_pct(&self) -> Option<f64> {
        let due = self.due();
        (due > 0).then(|| 100.0 * (self.on_time + self.late) as f64 / due as f64)
    }
}

/// Totals of a set of rows, overall, per category and per source.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Breakdown {
    pub totals: Totals,
    pub by_category: BTreeMap<String, Totals>,
    pub by_source: BTreeMap<String, Totals>,
}

/// Count `row` under `key`; looked up before inserting, so no key is allocated per row.
fn count_under(map: &mut BTreeMap<String, Totals>, key: &str, row: &Row) {
    match map.get_mut(key) {
        Some(t) => t.add(row),
        None => {
            let mut t = Totals::default();
            t.add(row);
            map.insert(key.to_owned(), t);
        }
    }
}

impl Breakdown {
    /// Count one row everywhere (a bulletin airing only in the totals: categories and sources
    /// break down the plan's airings).
    pub fn add(&mut self, row: &Row) {
        self.totals.add(row);
        if row.status == Status::Bulletin {
            return;
        }
        count_under(&mut self.by_category, &row.category, row);
        count_under(&mut self.by_source, source_key(row.source), row);
    }

    /// Sum another breakdown into this one.
    pub fn merge(&mut self, o: &Breakdown) {
        self.totals.merge(&o.totals);
        for (k, v) in &o.by_category {
            self.by_category.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &o.by_source {
            self.by_source.entry(k.clone()).or_default().merge(v);
        }
    }
}

/// `file` or `relay`.
pub fn source_key(s: Source) -> &'static str {
    match s {
        Source::File => "file",
        Source::Relay => "relay",
    }
}

/// The reconciliation of one station over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StationReconciliation {
    pub rows: Vec<Row>,
    pub breakdown: Breakdown,
}

fn classify(
    planned_secs: f64,
    rec: &AiredAiring,
    th: &Thresholds,
) -> (Status, Option<f64>, Option<f64>) {
    let late = rec.start_offset_ms.map(|ms| ms as f64 / 1000.0);
    let short = planned_secs - rec.aired_secs;
    let short_by = (short > 0.0).then_some(short);
    let status = match rec.outcome {
        Outcome::Aired | Outcome::Partial => {
            if short > th.short_tolerance_secs || rec.outcome == Outcome::Partial {
                Status::Short
            } else if late.is_some_and(|l| l > th.late_secs) {
                Status::Late
            } else {
                Status::OnTime
            }
        }
        Outcome::Failed => Status::Failed,
        Outcome::Missed | Outcome::Preempted | Outcome::Skipped => Status::Missed,
    };
    (status, late, short_by)
}

fn default_reason(rec: &AiredAiring) -> Option<String> {
    match (&rec.reason, rec.outcome) {
        (Some(r), _) => Some(r.clone()),
        (None, Outcome::Aired) => None,
        (None, o) => Some(format!("{o:?}").to_lowercase()),
    }
}

/// The instant from which a planned occurrence's record can be expected: its instant, plus the
/// station's grace (a soft start may begin that late), plus its planned length (the station
/// writes the record when the airing ends). Before it, a missing record is "not yet due".
pub fn due_at(p: &PlannedAiring) -> DateTime<Utc> {
    // Both are bounded by schedule validation; saturate rather than overflow on anything else.
    let secs = (p.grace_secs as f64 + p.planned_secs.max(0.0)).ceil();
    let secs = if secs.is_finite() {
        secs.min(366.0 * 86_400.0) as i64
    } else {
        0
    };
    p.at.with_timezone(&Utc) + chrono::Duration::seconds(secs)
}

/// Reconcile one station: `planned` is the plan for the period (`None` when the plan could not be
/// loaded: then each record carrying an occurrence counts as planned on the station's word and
/// "no record" cannot be known), `records` the station's airings in the period, `now` the
/// instant the report is made at (from the caller's clock): a planned occurrence without a
/// record that is not due at `now` ([`due_at`]) is [`Status::NotYetDue`].
pub fn reconcile(
    station: &str,
    planned: Option<&[PlannedAiring]>,
    records: &[AiredAiring],
    th: &Thresholds,
    now: DateTime<Utc>,
) -> StationReconciliation {
    // Bulletin airings apart: never planned, never unplanned.
    let (bulletins, records): (Vec<&AiredAiring>, Vec<&AiredAiring>) =
        records.iter().partition(|r| r.bulletin.is_some());
    // Latest record per occurrence.
    let mut by_occ: HashMap<&str, &AiredAiring> = HashMap::new();
    for r in records.iter().copied() {
        if let Some(o) = r.occurrence.as_deref() {
            match by_occ.get(o) {
                Some(prev) if prev.seq > r.seq => {}
                _ => {
                    by_occ.insert(o, r);
                }
            }
        }
    }
    let mut out = StationReconciliation::default();
    let station: std::sync::Arc<str> = std::sync::Arc::from(station);
    let mut used: std::collections::HashSet<&str> = std::collections::HashSet::new();
    // The row's category is the plan's for a planned occurrence, else the record's.
    let from_record =
        |r: &AiredAiring, category: &str, planned_secs: f64, status_override: Option<Status>| {
            let (status, late, short) = classify(planned_secs, r, th);
            Row {
                station: station.clone(),
                occurrence: r.occurrence.clone(),
                slot: r.slot.clone(),
                program: r.program.clone(),
                category: category.to_owned(),
                source: r.source,
                scheduled_at: r.scheduled_at,
                actual_start: r.actual_start,
                planned_secs,
                aired_secs: r.aired_secs,
                late_by_secs: late,
                short_by_secs: short,
                status: status_override.unwrap_or(status),
                outcome: Some(r.outcome),
                reason: default_reason(r),
                reason_code: r.reason_code.clone(),
                seq: Some(r.seq),
                schedule_version: r.schedule_version,
                bulletin: r.bulletin.clone(),
            }
        };
    match planned {
        Some(plan) => {
            for p in plan {
                let key = p.key();
                let row = match by_occ.get(key.as_str()) {
                    Some(r) => {
                        used.insert(r.occurrence.as_deref().unwrap_or_default());
                        from_record(r, &p.category, p.planned_secs, None)
                    }
                    None => {
                        let due = due_at(p) <= now;
                        Row {
                            station: station.clone(),
                            occurrence: Some(key),
                            slot: Some(p.slot.to_string()),
                            program: p.program.as_deref().map(str::to_owned),
                            category: p.category.to_string(),
                            source: if p.relay.is_some() {
                                Source::Relay
                            } else {
                                Source::File
                            },
                            scheduled_at: p.at,
                            actual_start: None,
                            planned_secs: p.planned_secs,
                            aired_secs: 0.0,
                            late_by_secs: None,
                            short_by_secs: None,
                            status: if due {
                                Status::NoRecord
                            } else {
                                Status::NotYetDue
                            },
                            outcome: None,
                            reason: due.then(|| ReasonCode::NoRecord.en().to_owned()),
                            // A row not yet due has no reason: its status says it.
                            reason_code: due.then_some(ReasonCode::NoRecord),
                            seq: None,
                            schedule_version: None,
                            bulletin: None,
                        }
                    }
                };
                out.breakdown.add(&row);
                out.rows.push(row);
            }
        }
        None => {
            let mut recs: Vec<&&AiredAiring> = by_occ.values().collect();
            recs.sort_by_key(|r| (r.scheduled_at, r.seq));
            for r in recs {
                used.insert(r.occurrence.as_deref().unwrap_or_default());
                let row = from_record(r, &r.category, r.planned_secs, None);
                out.breakdown.add(&row);
                out.rows.push(row);
            }
        }
    }
    let mut unplanned: Vec<&AiredAiring> = records
        .iter()
        .copied()
        .filter(|r| match r.occurrence.as_deref() {
            None => true,
            Some(o) => !used.contains(o),
        })
        .collect();
    unplanned.sort_by_key(|r| r.seq);
    for r in unplanned {
        let row = from_record(r, &r.category, r.planned_secs, Some(Status::Unplanned));
        out.breakdown.add(&row);
        out.rows.push(row);
    }
    let mut bulletins = bulletins;
    bulletins.sort_by_key(|r| r.seq);
    for r in bulletins {
        let mut row = from_record(r, &r.category, r.planned_secs, Some(Status::Bulletin));
        // Due when the centre's window opened, not at a planned instant: lateness is not its
        // measure (its seconds short are).
        row.late_by_secs = None;
        out.breakdown.add(&row);
        out.rows.push(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Priority, StartPolicy};
    use crate::wire::{GENESIS_HASH, RECORD_VERSION_V1};
    use chrono::{TimeZone, Utc};

    fn at(day: u32, h: u32) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(2019, 3, day, h, 30, 0)
            .unwrap()
    }

    fn plan(day: u32, h: u32) -> PlannedAiring {
        PlannedAiring {
            station: "a".into(),
            slot: format!("s{h}").into(),
            program: Some("cchc".into()),
            category: "cchc".into(),
            at: at(day, h),
            items: vec![].into(),
            planned_secs: 600.0,
            priority: Priority::Normal,
            start: StartPolicy::Hard,
            grace_secs: 0,
            max_secs: 900,
            relay: None,
        }
    }

    fn rec(
        seq: u64,
        p: &PlannedAiring,
        outcome: Outcome,
        aired: f64,
        offset_ms: i64,
    ) -> AiringRecord {
        AiringRecord {
            v: RECORD_VERSION_V1,
            station: "a".into(),
            seq,
            occurrence: Some(p.key()),
            slot: Some(p.slot.to_string()),
            program: p.program.as_deref().map(str::to_owned),
            category: "cchc".into(),
            source: Source::File,
            scheduled_at: p.at,
            actual_start: Some(p.at),
            end: None,
            planned_secs: 600.0,
            aired_secs: aired,
            start_offset_ms: Some(offset_ms),
            outcome,
            reason: (outcome != Outcome::Aired).then(|| "output unavailable".to_string()),
            reason_code: None,
            items: vec![],
            evidence: None,
            relay: None,
            recorded_at: Utc.with_ymd_and_hms(2019, 3, 1, 0, 0, 0).unwrap(),
            prev_hash: GENESIS_HASH.into(),
            schedule_version: None,
            bulletin: None,
        }
    }

    fn check(records: &[(Outcome, f64, i64)], expected: &[Status]) {
        let plans: Vec<_> = (1..=expected.len() as u32).map(|d| plan(d, 5)).collect();
        let recs: Vec<_> = records
            .iter()
            .zip(&plans)
            .enumerate()
            .map(|(i, (&(o, aired, off), p))| rec(i as u64 + 1, p, o, aired, off))
            .collect();
        let recs: Vec<AiredAiring> = recs.iter().map(AiredAiring::from).collect();
        let r = reconcile("a", Some(&plans), &recs, &Thresholds::default(), later());
        let got: Vec<Status> = r.rows.iter().map(|r| r.status).collect();
        assert_eq!(got, expected);
    }

    /// An instant after every plan of these tests (the month is over).
    fn later() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2019, 4, 1, 0, 0, 0).unwrap()
    }

    /// One occurrence (day 1, 05:30 +07, 600 s) with `grace_secs`, reconciled at its instant plus
    /// `now_after_secs`, with or without a record of `outcome`: its status.
    fn check_due(grace_secs: u32, now_after_secs: i64, outcome: Option<Outcome>, expected: Status) {
        let mut p = plan(1, 5);
        p.grace_secs = grace_secs;
        let recs: Vec<AiredAiring> = outcome
            .map(|o| {
                AiredAiring::from(rec(
                    1,
                    &p,
                    o,
                    if o == Outcome::Aired { 600.0 } else { 0.0 },
                    0,
                ))
            })
            .into_iter()
            .collect();
        let now = p.at.with_timezone(&Utc) + chrono::Duration::seconds(now_after_secs);
        let r = reconcile("a", Some(&[p]), &recs, &Thresholds::default(), now);
        assert_eq!(
            r.rows[0].status, expected,
            "grace {grace_secs}, now = instant + {now_after_secs} s, {outcome:?}"
        );
        let t = &r.breakdown.totals;
        assert_eq!(t.planned, 1);
        assert_eq!(t.not_yet_due, u64::from(expected == Status::NotYetDue));
        assert_eq!(t.no_record, u64::from(expected == Status::NoRecord));
    }

    #[test]
    fn an_occurrence_is_not_yet_due_until_its_instant_grace_and_length_have_passed() {
        use Outcome::*;
        // No record: not yet due before the instant, while it may still be airing (600 s), and
        // within a soft start's grace; "no record" from then on.
        check_due(0, -86_400, None, Status::NotYetDue);
        check_due(0, -1, None, Status::NotYetDue);
        check_due(0, 0, None, Status::NotYetDue);
        check_due(0, 599, None, Status::NotYetDue);
        check_due(0, 600, None, Status::NoRecord);
        check_due(0, 86_400, None, Status::NoRecord);
        check_due(300, 899, None, Status::NotYetDue);
        check_due(300, 900, None, Status::NoRecord);
        // A record always counts, whatever the clock says (a skip decided ahead, a clock behind).
        check_due(0, -60, Some(Skipped), Status::Missed);
        check_due(0, -1, Some(Aired), Status::OnTime);
        check_due(0, 10, Some(Failed), Status::Failed);
    }

    #[test]
    fn not_yet_due_occurrences_stay_out_of_the_compliance_ratio() {
        // A healthy new ward in the middle of the month: the two airings that are due aired;
        // the two to come are not yet due. Compliance is 100 %, not 50 % (or 0 %).
        let plans = vec![plan(1, 5), plan(1, 17), plan(2, 5), plan(2, 17)];
        let recs: Vec<AiredAiring> = [
            rec(1, &plans[0], Outcome::Aired, 600.0, 0),
            rec(2, &plans[1], Outcome::Aired, 600.0, 0),
        ]
        .iter()
        .map(AiredAiring::from)
        .collect();
        let now = at(2, 4).with_timezone(&Utc);
        let r = reconcile("a", Some(&plans), &recs, &Thresholds::default(), now);
        let got: Vec<Status> = r.rows.iter().map(|r| r.status).collect();
        use Status::*;
        assert_eq!(got, [OnTime, OnTime, NotYetDue, NotYetDue]);
        assert_eq!(r.rows[2].reason, None);
        let t = &r.breakdown.totals;
        assert_eq!(
            (t.planned, t.due(), t.not_yet_due, t.no_record),
            (4, 2, 2, 0)
        );
        assert_eq!(t.compliance_pct(), Some(100.0));
        assert_eq!(r.breakdown.by_category["cchc"].not_yet_due, 2);
        // Nothing due yet: no ratio at all rather than 0 %.
        let r = reconcile(
            "a",
            Some(&plans),
            &[],
            &Thresholds::default(),
            at(1, 4).with_timezone(&Utc),
        );
        assert_eq!(r.breakdown.totals.not_yet_due, 4);
        assert_eq!(r.breakdown.totals.compliance_pct(), None);
        // Past the month: the same airings without records are "no record" and count.
        let r = reconcile("a", Some(&plans), &recs, &Thresholds::default(), later());
        assert_eq!(r.breakdown.totals.compliance_pct(), Some(50.0));
        assert_eq!(r.breakdown.totals.no_record, 2);
        // Totals without the field (a past export) read back as zero not yet due.
        let json = serde_json::to_string(&r.breakdown.totals).unwrap();
        assert!(!json.contains("not_yet_due"), "{json}");
        let back: Totals = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r.breakdown.totals);
    }

    #[test]
    fn each_planned_occurrence_gets_one_status() {
        use Outcome::*;
        check(&[(Aired, 600.0, 500)], &[Status::OnTime]);
        check(&[(Aired, 600.0, 61_000)], &[Status::Late]);
        check(&[(Aired, 598.0, 60_000)], &[Status::OnTime]);
        check(&[(Aired, 500.0, 0)], &[Status::Short]);
        check(&[(Partial, 599.0, 0)], &[Status::Short]);
        check(&[(Failed, 0.0, 0)], &[Status::Failed]);
        check(&[(Missed, 0.0, 0)], &[Status::Missed]);
        check(&[(Preempted, 0.0, 0)], &[Status::Missed]);
        check(&[(Skipped, 0.0, 0)], &[Status::Missed]);
        check(&[(Aired, 600.0, 0)], &[Status::OnTime, Status::NoRecord]);
    }

    #[test]
    fn unplanned_and_superseded_records_and_totals() {
        let plans = vec![plan(1, 5), plan(1, 17), plan(2, 5)];
        let mut manual = rec(4, &plans[0], Outcome::Aired, 120.0, 0);
        manual.occurrence = None;
        manual.category = "notice".into();
        let mut foreign = rec(5, &plan(9, 9), Outcome::Aired, 30.0, 0);
        foreign.source = Source::Relay;
        let recs: Vec<AiredAiring> = [
            rec(1, &plans[0], Outcome::Failed, 0.0, 0),
            rec(2, &plans[0], Outcome::Aired, 600.0, 90_000), // retry supersedes seq 1
            rec(3, &plans[1], Outcome::Missed, 0.0, 0),
            manual,
            foreign,
        ]
        .into_iter()
        .map(AiredAiring::from)
        .collect();
        let r = reconcile("a", Some(&plans), &recs, &Thresholds::default(), later());
        let got: Vec<(Status, Option<u64>)> = r.rows.iter().map(|r| (r.status, r.seq)).collect();
        assert_eq!(
            got,
            vec![
                (Status::Late, Some(2)),
                (Status::Missed, Some(3)),
                (Status::NoRecord, None),
                (Status::Unplanned, Some(4)),
                (Status::Unplanned, Some(5)),
            ]
        );
        assert_eq!(r.rows[1].reason.as_deref(), Some("output unavailable"));
        assert_eq!(r.rows[0].late_by_secs, Some(90.0));
        let t = &r.breakdown.totals;
        assert_eq!(
            (
                t.planned,
                t.aired,
                t.late,
                t.missed,
                t.no_record,
                t.unplanned
            ),
            (3, 1, 1, 1, 1, 2)
        );
        assert_eq!(t.airtime_secs, 750.0);
        assert!((t.compliance_pct().unwrap() - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.breakdown.by_category["notice"].unplanned, 1);
        assert_eq!(r.breakdown.by_source["relay"].unplanned, 1);
        assert_eq!(r.breakdown.by_source["file"].planned, 3);
    }

    fn bulletin_rec(seq: u64, repeat: u32, outcome: Outcome, aired: f64) -> AiringRecord {
        let id = "0123456789abcdef0123456789abcdef";
        let mut r = rec(seq, &plan(3, 12), outcome, aired, 0);
        r.occurrence = Some(crate::bulletin::occurrence_key(id, repeat));
        r.slot = None;
        r.program = None;
        r.category = "bulletin".into();
        r.planned_secs = 45.0;
        r.bulletin = Some(crate::wire::BulletinRef {
            id: id.into(),
            repeat,
            synthetic: false,
        });
        r
    }

    #[test]
    fn bulletin_airings_are_listed_apart_and_change_no_compliance_figure() {
        let plans = vec![plan(1, 5), plan(2, 5)];
        let planned: Vec<AiringRecord> = vec![rec(1, &plans[0], Outcome::Aired, 600.0, 0)];
        let bulletins = vec![
            bulletin_rec(3, 2, Outcome::Skipped, 0.0),
            bulletin_rec(2, 1, Outcome::Aired, 45.0),
        ];
        let only: Vec<AiredAiring> = planned.iter().map(AiredAiring::from).collect();
        let all: Vec<AiredAiring> = planned
            .iter()
            .chain(&bulletins)
            .map(AiredAiring::from)
            .collect();
        let th = Thresholds::default();
        for p in [Some(plans.as_slice()), None] {
            let without = reconcile("a", p, &only, &th, later());
            let with = reconcile("a", p, &all, &th, later());
            // The plan's rows as they were, then the bulletin airings by seq.
            assert_eq!(with.rows[..without.rows.len()], without.rows[..]);
            let extra: Vec<(Status, Option<u64>, Option<u32>)> = with.rows[without.rows.len()..]
                .iter()
                .map(|r| (r.status, r.seq, r.bulletin.as_ref().map(|b| b.repeat)))
                .collect();
            assert_eq!(
                extra,
                [
                    (Status::Bulletin, Some(2), Some(1)),
                    (Status::Bulletin, Some(3), Some(2))
                ]
            );
            // Every compliance figure unchanged; the bulletins counted apart.
            let (t0, t1) = (&without.breakdown.totals, &with.breakdown.totals);
            let stripped = Totals {
                bulletins: 0,
                bulletins_aired: 0,
                bulletin_secs: 0.0,
                ..t1.clone()
            };
            assert_eq!(&stripped, t0);
            assert_eq!((t1.bulletins, t1.bulletins_aired), (2, 1));
            assert_eq!(t1.bulletin_secs, 45.0);
            assert_eq!(t1.compliance_pct(), t0.compliance_pct());
            // Not under a category or a source: those break the plan down.
            assert_eq!(with.breakdown.by_category, without.breakdown.by_category);
            assert_eq!(with.breakdown.by_source, without.breakdown.by_source);
        }
        // A month without bulletins writes no bulletin field.
        let json = serde_json::to_string(
            &reconcile("a", Some(&plans), &only, &th, later())
                .breakdown
                .totals,
        )
        .unwrap();
        assert!(!json.contains("bulletin"), "{json}");
    }

    #[test]
    fn without_a_plan_records_count_on_the_stations_word() {
        let p = plan(1, 5);
        let recs = vec![AiredAiring::from(rec(1, &p, Outcome::Aired, 600.0, 0))];
        let r = reconcile("a", None, &recs, &Thresholds::default(), later());
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0].status, Status::OnTime);
        assert_eq!(r.breakdown.totals.planned, 1);
        assert_eq!(r.breakdown.totals.compliance_pct(), Some(100.0));
    }
}
