//! Building a period report: each registered station's plan reconciled against its stored
//! records.
//!
//! **Invariant:** a report is built from what the store and the plan source give at the call,
//! reconciled at the injected `now`; with `keep_records`, each station's records are one
//! contiguous run of seqs covering the period, bracketed by [`RunBounds`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

use super::{Period, RecordSource, ReportError, StationDirectory, StationEntry, StoredRecord};
use crate::reconcile::{AiredAiring, Breakdown, Thresholds, reconcile};
use crate::schedule::PlannedAiring;

/// Where the plan of a station comes from: the report calls it per station and period.
pub trait PlanSource {
    /// The planned airings of `station` in `period`, or why they cannot be known.
    fn plan(&self, station: &StationEntry, period: &Period) -> Result<Vec<PlannedAiring>, String>;

    /// Prepare the plans of every station of `stations` for `periods` before requests come
    /// (the collector's plan cache builds and keeps them; a source that computes on demand does
    /// nothing).
    fn warm(&self, _stations: &dyn StationDirectory, _periods: &[Period]) {}

    /// A number that changes whenever a plan this source gave may have changed (what was derived
    /// from its plans is derived again); a source that computes on demand keeps 0.
    fn generation(&self) -> u64 {
        0
    }

    /// What the source already holds of `station`'s schedule for `period` besides its plan
    /// (program titles, episode files missing): `None` when it holds nothing yet. Never builds
    /// on the caller's thread (a cache may queue the build in the background); a source that
    /// computes on demand says `None`.
    fn plan_facts(
        &self,
        _station: &StationEntry,
        _period: &Period,
    ) -> Option<std::sync::Arc<PlanFacts>> {
        None
    }

    /// Program id → title of `station`'s schedule, for the exports' *Chương trình* column: what
    /// [`PlanSource::plan_facts`] holds, else read from the registered schedule file (one small
    /// file, parsed as the station month page reads it); empty when there is none or it does
    /// not parse (the exports then show the ids).
    fn titles(&self, station: &StationEntry, period: &Period) -> HashMap<String, String> {
        if let Some(f) = self.plan_facts(station, period) {
            return f.titles.clone();
        }
        match &station.schedule {
            Some(p) => std::fs::read_to_string(p)
                .map(|t| crate::schedule::file::program_titles(p, &t))
                .unwrap_or_default(),
            None => HashMap::new(),
        }
    }
}

/// What a station's schedule says of a period besides its airings ([`PlanSource::plan_facts`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanFacts {
    /// Program id → title, for the programs that have one.
    pub titles: HashMap<String, String>,
    /// Episode files the period's slots name that cannot air, in schedule order.
    pub missing_episodes: Vec<MissingEpisode>,
}

/// An episode file a period's slots name that cannot air (see [`PlanFacts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingEpisode {
    pub program: String,
    /// The program's title, when the schedule gives one.
    pub title: Option<String>,
    /// First day of the episode's month.
    pub month: chrono::NaiveDate,
    /// The file (under the station's audio root).
    pub path: std::path::PathBuf,
    /// `true`: the file is there but does not decode (or is not a file); `false`: no file.
    pub undecodable: bool,
}

/// Plans from each station's registered schedule file (`schedule::load` + `schedule::expand`),
/// computed on every call: it decodes every audio file the schedule names. For offline commands;
/// the collector serves from `collector::plans::PlanCache`.
pub struct SchedulePlans;

impl PlanSource for SchedulePlans {
    fn plan(&self, station: &StationEntry, period: &Period) -> Result<Vec<PlannedAiring>, String> {
        let path = station
            .schedule
            .as_ref()
            .ok_or_else(|| "no schedule file registered for this station".to_string())?;
        let root = station
            .audio_root
            .clone()
            .or_else(|| path.parent().map(|p| p.to_path_buf()))
            .unwrap_or_default();
        let (st, catalog) = crate::schedule::load(path, &root, period.from).map_err(|e| {
            let first = e.0.first().map(|x| x.to_string()).unwrap_or_default();
            format!("schedule {} does not load: {e}: {first}", path.display())
        })?;
        Ok(crate::schedule::expand(
            &st,
            &catalog,
            period.from,
            period.to,
        ))
    }
}

/// One station's part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct StationSection {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub public_key: String,
    /// Why the plan is unknown, when it is (records then count on the station's word).
    pub plan_note: Option<String>,
    pub reconciliation: crate::reconcile::StationReconciliation,
    /// The contiguous run of stored records covering the period (for the JSON export).
    #[serde(skip)]
    pub records: Vec<StoredRecord>,
    /// What proves where the run starts and ends (for the JSON export).
    #[serde(skip)]
    pub bounds: RunBounds,
    /// Program id → title ([`PlanSource::titles`]); filled by [`build_with`] (the exports), empty
    /// from [`station_section`] (the pages look titles up themselves).
    #[serde(skip)]
    pub titles: HashMap<String, String>,
}

impl StationSection {
    /// What people read for program `id`: its title when the schedule gives one, else the id.
    pub fn title_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.titles.get(id).map(String::as_str).unwrap_or(id)
    }
}

/// The records that prove where a station's run starts and ends: the JSON export carries them so
/// `loa verify` can tell a run cut short from a whole one.
#[derive(Debug, Clone, Default)]
pub struct RunBounds {
    /// The station-signed record just before the run (seq = first − 1), when the run does not
    /// start at seq 1 and the collector holds it; for a station with no record in the period,
    /// the last record scheduled before the period.
    pub anchor: Option<StoredRecord>,
    /// The record just after the run (seq = last + 1; for an empty run, the anchor's next, or
    /// seq 1 when there is no anchor), when the collector holds it.
    pub successor: Option<StoredRecord>,
    /// The highest seq the collector held for the station when the report was built.
    pub held_through: u64,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodReport {
    pub period: Period,
    /// The `now` it was built at: occurrences not due by then are "not yet due".
    pub generated_at: DateTime<Utc>,
    pub stations: Vec<StationSection>,
    /// City-wide totals (of the stations reported).
    pub city: Breakdown,
    /// The one station the report was restricted to (`station=`, built over a
    /// [`super::OneStation`] directory), or `None` for every registered station.
    pub only_station: Option<String>,
    /// What the record source knows of the bulletins its rows air ([`RecordSource::bulletins`]),
    /// by id: the exports' *Bản tin* column.
    #[serde(skip)]
    pub bulletins: HashMap<String, super::BulletinInfo>,
}

impl PeriodReport {
    /// Whether any row is a bulletin airing: the CSV and XLSX then carry the *Bản tin* column
    /// (and the summary its bulletin figures); a report without one is as before.
    pub fn has_bulletins(&self) -> bool {
        self.stations
            .iter()
            .any(|s| s.reconciliation.breakdown.totals.bulletins > 0)
    }
}

/// Build the report of `period` for every registered station, keeping each station's run of
/// signed records (what the JSON export needs).
pub fn build(
    store: &dyn RecordSource,
    registry: &dyn StationDirectory,
    plans: &(dyn PlanSource + Sync),
    period: &Period,
    th: &Thresholds,
    now: DateTime<Utc>,
) -> Result<PeriodReport, ReportError> {
    build_with(store, registry, plans, period, th, now, true)
}

/// [`build`], keeping the signed records only when `keep_records` (the CSV and XLSX exports do
/// not need them; a month of 10,000 stations holds ~600 MB of them). The database is read on this
/// thread (one connection); parsing, plan expansion and reconciliation run on every core.
pub fn build_with(
    store: &dyn RecordSource,
    registry: &dyn StationDirectory,
    plans: &(dyn PlanSource + Sync),
    period: &Period,
    th: &Thresholds,
    now: DateTime<Utc>,
    keep_records: bool,
) -> Result<PeriodReport, ReportError> {
    let entries: Vec<&StationEntry> = registry.entries();
    let threads = crate::worker_threads();
    let per = entries.len().div_ceil(threads).max(1);
    type Built = Result<StationSection, ReportError>;
    let work = |db: &dyn RecordSource, part: &[&StationEntry]| -> Vec<Built> {
        part.iter()
            .map(|entry| {
                let mut s = section(db, entry, plans, period, th, now, keep_records)?;
                s.titles = plans.titles(entry, period);
                Ok(s)
            })
            .collect()
    };
    // One part per core, each with its own read connection (WAL readers run side by side):
    // reading, parsing and reconciling all run in parallel; the first part runs here on the
    // caller's connection.
    let mut parts = entries.chunks(per);
    let first = parts.next().unwrap_or(&[]);
    let mut readers = Vec::new();
    for part in parts {
        readers.push((store.open_reader()?, part));
    }
    let built: Vec<Built> = std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = readers
            .into_iter()
            .map(|(db, part)| s.spawn(move || work(db.as_ref(), part)))
            .collect();
        let mut all = work(store, first);
        for h in handles {
            match h.join() {
                Ok(v) => all.extend(v),
                // The work returns errors rather than panic; re-raise a panic as such.
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        all
    });
    let mut stations = Vec::with_capacity(built.len());
    let mut city = Breakdown::default();
    for b in built {
        let section = b?;
        city.merge(&section.reconciliation.breakdown);
        stations.push(section);
    }
    // The bulletins the rows air, looked up once (a month holds few).
    let mut ids: Vec<&str> = stations
        .iter()
        .flat_map(|s| &s.reconciliation.rows)
        .filter_map(|r| r.bulletin.as_ref().map(|b| b.id.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let bulletins = if ids.is_empty() {
        HashMap::new()
    } else {
        store.bulletins(&ids)?
    };
    Ok(PeriodReport {
        period: period.clone(),
        generated_at: now,
        stations,
        city,
        only_station: None,
        bulletins,
    })
}

/// Reconcile one station over `period` at `now`. With `keep_records`, its signed records are read
/// (and parsed: the same airings) and the contiguous run of seqs covering the period is kept for
/// the JSON export; without, only the airing columns are read (no JSON parsing).
fn section(
    db: &dyn RecordSource,
    entry: &StationEntry,
    plans: &dyn PlanSource,
    period: &Period,
    th: &Thresholds,
    now: DateTime<Utc>,
    keep_records: bool,
) -> Result<StationSection, ReportError> {
    let (lo, hi) = period.unix_bounds();
    let (airings, run, bounds) = if keep_records {
        // Read first: every seq up to it was stored before the reads below, so a seq below it
        // that they do not find is a gap, not a late arrival.
        let held_through = db.stored_through(&entry.id)?;
        let stored = db.records_between(&entry.id, lo, hi)?;
        let mut airings = Vec::with_capacity(stored.len());
        let (mut first, mut last) = (u64::MAX, 0u64);
        // The highest seq read here that is scheduled before the period (an empty run's anchor).
        let mut before: Option<usize> = None;
        for (i, s) in stored.iter().enumerate() {
            let r = s.parse()?;
            if period.contains(&r.scheduled_at) {
                first = first.min(s.seq);
                last = last.max(s.seq);
                airings.push(AiredAiring::from(r));
            } else if r.scheduled_at.date_naive() < period.from
                && before.is_none_or(|b| stored[b].seq < s.seq)
            {
                before = Some(i);
            }
        }
        let one = |seq: u64| -> Result<Option<StoredRecord>, ReportError> {
            Ok(db.records_by_seq(&entry.id, seq, seq)?.pop())
        };
        let (anchor, successor) = if last == 0 {
            // No record in the period: bracket it with the last record before it and the next.
            let anchor = match before {
                Some(b) => Some(stored[b].clone()),
                None => db.last_record_scheduled_before(&entry.id, lo)?,
            };
            let next = anchor.as_ref().map_or(Some(1), |a| a.seq.checked_add(1));
            (anchor, next.map(one).transpose()?.flatten())
        } else {
            let anchor = match first.checked_sub(1) {
                Some(0) | None => None,
                Some(seq) => one(seq)?,
            };
            (anchor, last.checked_add(1).map(one).transpose()?.flatten())
        };
        let run = if last == 0 {
            Vec::new()
        } else if last - first + 1 == stored.len() as u64 && stored.len() == airings.len() {
            stored
        } else {
            // Records of neighbouring periods inside the run are read too, so it has no holes.
            db.records_by_seq(&entry.id, first, last)?
        };
        let held_through = held_through
            .max(last)
            .max(successor.as_ref().map_or(0, |r| r.seq));
        let bounds = RunBounds {
            anchor,
            successor,
            held_through,
        };
        (airings, run, bounds)
    } else {
        let mut airings = db.airings_between(&entry.id, lo, hi)?;
        airings.retain(|a| period.contains(&a.scheduled_at));
        (airings, Vec::new(), RunBounds::default())
    };
    let (plan, plan_note) = match plans.plan(entry, period) {
        Ok(p) => (Some(p), None),
        Err(note) => (None, Some(note)),
    };
    let reconciliation = reconcile(&entry.id, plan.as_deref(), &airings, th, now);
    Ok(StationSection {
        id: entry.id.clone(),
        name: entry.name.clone(),
        area_code: entry.area_code.clone(),
        public_key: entry.public_key.clone(),
        plan_note,
        reconciliation,
        records: run,
        bounds,
        titles: HashMap::new(),
    })
}

/// Reconcile one station over `period` at `now` from the airing columns, without its signed
/// records (the status and month views show the reconciliation only; the JSON export goes
/// through [`build_with`]).
pub fn station_section(
    store: &dyn RecordSource,
    entry: &StationEntry,
    plans: &dyn PlanSource,
    period: &Period,
    th: &Thresholds,
    now: DateTime<Utc>,
) -> Result<StationSection, ReportError> {
    section(store, entry, plans, period, th, now, false)
}
