//! Each station's expanded plan, kept per (station, period) together with the hash of the
//! schedule it came from and the (size, mtime) of every file it read, so status, the overview,
//! `/metrics`, the station month and the exports read a stored plan instead of loading the
//! schedule and decoding its audio on every request.
//!
//! **Invariant:** a request never decodes audio. A plan is built from the schedule text and the
//! audio facts stored by content hash ([`super::facts`]); a request that misses the cache builds
//! it from facts already known (it reads and parses the schedule, and `stat`s its files), and when
//! some file's facts are not known yet it answers a note ("being computed") and leaves the
//! hashing and decoding to the refresher thread. [`PlanSource::plan_facts`] (program titles and
//! the period's missing episodes, which the overview reads for next month's alert) builds
//! nothing on a request: a plan it does not hold is queued for the refresher thread. The cache
//! is warmed at start-up for last month, this month and next month ([`warm_periods`]).
//!
//! Invalidation: the refresher thread `stat`s every cached plan's schedule file and audio files
//! at most every `recheck_secs` (default [`DEFAULT_PLAN_RECHECK_SECS`]) and rebuilds the plans
//! whose files changed (a changed file is hashed; new content is decoded once). A schedule or
//! episode replaced on disk is therefore reflected within `recheck_secs`. (Polling rather than a
//! file watch: schedules and audio live on any filesystem, inotify needs a watch per directory,
//! and 1,000 stations' files are `stat`ed in a few milliseconds.) A station whose registry entry
//! names another schedule file or audio root misses the cache at once.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};

use super::facts::{AudioFactsStore, Known, StatKey};
use super::registry::StationEntry;
use super::store::StoreError;
use super::versions::db as versions_db;
use super::versions::{Activation, Window, in_force};
use crate::report::{MissingEpisode, Period, PlanFacts, PlanSource, StationDirectory};
use crate::schedule::{AudioFacts, PlannedAiring, ScheduleError, ScheduleErrors};

/// Default longest time between two checks of the files cached plans were built from.
pub const DEFAULT_PLAN_RECHECK_SECS: u64 = 10;

/// Where a station's plan comes from (the parts of its registry entry a plan reads).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Source {
    id: String,
    schedule: PathBuf,
    root: PathBuf,
}

impl Source {
    fn of(station: &StationEntry) -> Option<Self> {
        let schedule = station.schedule.clone()?;
        let root = station
            .audio_root
            .clone()
            .or_else(|| schedule.parent().map(|p| p.to_path_buf()))
            .unwrap_or_default();
        Some(Self {
            id: station.id.clone(),
            schedule,
            root,
        })
    }

    /// Whether `station`'s registry entry still names this source (no allocation: the
    /// overview asks this of every station).
    fn is_of(&self, station: &StationEntry) -> bool {
        let Some(schedule) = station.schedule.as_deref() else {
            return false;
        };
        let root = match station.audio_root.as_deref() {
            Some(r) => r,
            None => schedule.parent().unwrap_or(Path::new("")),
        };
        self.id == station.id && self.schedule == schedule && self.root == root
    }
}

/// One cached plan and what it was built from.
struct Entry {
    source: Source,
    period: Period,
    /// The centre's versions in force over the period when it was built ([`in_force`]; empty
    /// for a station whose schedule the centre does not hold). A new version changes them.
    windows: Vec<Window>,
    schedule_key: Option<StatKey>,
    /// SHA-256 of the schedule text the plan was built from.
    #[allow(dead_code)]
    schedule_sha: String,
    /// Every audio path the schedule needed, with its stat key then (`None`: missing).
    audio: Vec<(PathBuf, Option<StatKey>)>,
    plan: Result<Arc<Vec<PlannedAiring>>, String>,
    /// Titles and the period's missing episodes ([`PlanSource::plan_facts`]).
    facts: Arc<PlanFacts>,
}

/// What building a plan from known facts only could not do.
struct Pending(Vec<PathBuf>);

struct Shared {
    facts: AudioFactsStore,
    /// The collector's database, read for the schedule versions (the `collector::versions`
    /// table) a build expands.
    conn: Mutex<crate::collector::db::Conn>,
    /// Each station's version activations as last read from the database (by a build or a
    /// recheck): what a request compares a cached plan's windows against.
    activations: RwLock<HashMap<String, Arc<[Activation]>>>,
    /// Period label → station id → plan.
    entries: RwLock<HashMap<String, HashMap<String, Arc<Entry>>>>,
    /// (station, period label) of builds queued by [`PlanSource::plan_facts`] and not done yet.
    queued: Mutex<std::collections::HashSet<(String, String)>>,
    builds: AtomicU64,
    /// Bumped when the refresher replaces a plan ([`PlanSource::generation`]).
    generation: AtomicU64,
}

enum Job {
    Build(Source, Period),
}

/// The plan cache (a [`PlanSource`]) with its refresher thread, which ends when the cache is
/// dropped.
pub struct PlanCache {
    shared: Arc<Shared>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

fn schedule_note(path: &Path, e: &ScheduleErrors) -> String {
    let first = e.0.first().map(|x| x.to_string()).unwrap_or_default();
    format!("schedule {} does not load: {e}: {first}", path.display())
}

impl Shared {
    /// Build the plan of `source` over `period`. With `fill`, unknown audio is hashed and
    /// decoded (refresher and start-up only); without, it is reported as [`Pending`].
    fn build(&self, source: &Source, period: &Period, fill: bool) -> Result<Entry, Pending> {
        self.builds.fetch_add(1, Ordering::Relaxed);
        let schedule_key = StatKey::of(&source.schedule);
        let text = match std::fs::read_to_string(&source.schedule) {
            Ok(t) => t,
            Err(e) => {
                let errors = ScheduleErrors(vec![ScheduleError {
                    file: source.schedule.clone(),
                    line: 1,
                    column: 1,
                    field: String::new(),
                    message: format!(
                        "không đọc được tệp lịch phát: {}",
                        crate::schedule::load::io_vi(&e)
                    ),
                    hint: "kiểm tra đường dẫn và tệp có phải văn bản UTF-8 không".into(),
                }]);
                return Ok(Entry {
                    source: source.clone(),
                    period: period.clone(),
                    windows: self.read_windows(&source.id, period).0,
                    schedule_key,
                    schedule_sha: String::new(),
                    audio: Vec::new(),
                    plan: Err(schedule_note(&source.schedule, &errors)),
                    facts: Arc::default(),
                });
            }
        };
        let schedule_sha = hex::encode(Sha256::digest(text.as_bytes()));
        let mut audio = Vec::new();
        let mut pending = Vec::new();
        // What each path turned out to be (the period's episodes are looked up here).
        let mut seen: HashMap<PathBuf, Option<AudioFacts>> = HashMap::new();
        let mut facts = |full: &Path| -> Option<AudioFacts> {
            let key = StatKey::of(full);
            audio.push((full.to_path_buf(), key));
            let found = match key {
                None => None,
                Some(_) if fill => self.facts.fill(full),
                Some(key) => match self.facts.known_at(full, key) {
                    Known::Facts(f) => Some(f),
                    Known::Missing => None,
                    Known::Unknown => {
                        pending.push(full.to_path_buf());
                        Some(AudioFacts::Undecodable("not probed yet".into()))
                    }
                },
            };
            seen.insert(full.to_path_buf(), found.clone());
            found
        };
        let (windows, held) = self.read_windows(&source.id, period);
        // The centre's versions apply when the schedule file is the one the centre wrote (it
        // holds the latest version's text); otherwise the file alone, over the whole period.
        let parts: Vec<(Option<Window>, String)> = match held {
            Some((latest_sha, texts)) if latest_sha == schedule_sha => {
                windows.iter().copied().map(Some).zip(texts).collect()
            }
            _ => vec![(None, text.clone())],
        };
        let last = parts.len().saturating_sub(1);
        let mut plan: Result<Vec<PlannedAiring>, String> = Ok(Vec::new());
        for (i, (window, part)) in parts.iter().enumerate() {
            let loaded = crate::schedule::load::load_text(
                &source.schedule,
                part,
                &source.root,
                period.from,
                &mut facts,
            );
            let Ok(out) = plan.as_mut() else { break };
            match loaded {
                Ok((st, cat)) => match window {
                    None => out.extend(crate::schedule::expand(&st, &cat, period.from, period.to)),
                    Some(w) => {
                        let (from, to) = local_dates(w, period);
                        // The first window takes everything before its end, the last everything
                        // from its start: the period's edges are the station's local midnights.
                        out.extend(
                            crate::schedule::expand(&st, &cat, from, to)
                                .into_iter()
                                .filter(|a| {
                                    let at = a.at.with_timezone(&Utc);
                                    (i == 0 || at >= w.from) && (i == last || at < w.to)
                                }),
                        );
                    }
                },
                Err(e) => {
                    let note = schedule_note(&source.schedule, &e);
                    plan = Err(match window {
                        Some(w) => format!("version {}: {note}", w.version),
                        None => note,
                    });
                }
            }
        }
        if !pending.is_empty() {
            return Err(Pending(pending));
        }
        let plan = plan.map(Arc::new);
        // Titles and missing episodes: from the text governing the period's end.
        let text = parts.last().map(|(_, t)| t.clone()).unwrap_or(text);
        let facts = Arc::new(plan_facts(source, &text, period, |full| {
            match seen.get(full) {
                Some(f) => f.clone(),
                // Not among the schedule's needs (cannot happen for an episode of a slot
                // valid that month; a missing file is the safe answer).
                None => None,
            }
        }));
        Ok(Entry {
            source: source.clone(),
            period: period.clone(),
            windows,
            schedule_key,
            schedule_sha,
            audio,
            plan,
            facts,
        })
    }

    /// The versions in force over `period` for `station`, read from the database (and kept as
    /// the station's activations for requests to compare against), with, when the centre holds
    /// any, the latest version's merged SHA-256 and the merged text of each window's version.
    /// A database error is logged and reads as no version (the schedule file alone).
    fn read_windows(
        &self,
        station: &str,
        period: &Period,
    ) -> (Vec<Window>, Option<(String, Vec<String>)>) {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let read = || -> Result<_, crate::collector::db::DbError> {
            let acts = versions_db::activations(&conn, station)?;
            let (start, end) = instants(period);
            let windows = in_force(&acts, start, end);
            let held = match versions_db::latest(&conn, station)? {
                None => None,
                Some(latest) => {
                    let mut texts = Vec::with_capacity(windows.len());
                    for w in &windows {
                        let text = match versions_db::get(&conn, station, w.version)? {
                            Some(v) => v.merged_text,
                            None => return Err(crate::collector::db::DbError::NoRows),
                        };
                        texts.push(text);
                    }
                    Some((latest.merged_sha256, texts))
                }
            };
            Ok((acts, windows, held))
        };
        match read() {
            Ok((acts, windows, held)) => {
                drop(conn);
                self.activations
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(station.to_string(), acts.into());
                (windows, held)
            }
            Err(e) => {
                tracing::error!(station, error = %e, "cannot read the schedule versions");
                (Vec::new(), None)
            }
        }
    }

    /// The versions in force over `period` for `station` by the activations last read (no
    /// database read: the request path).
    fn windows_of(&self, station: &str, period: &Period) -> Vec<Window> {
        let acts = self
            .activations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(station)
            .cloned();
        match acts {
            Some(a) => {
                let (start, end) = instants(period);
                in_force(&a, start, end)
            }
            None => Vec::new(),
        }
    }

    /// Read every station's activations again (a version published since shows here).
    fn refresh_activations(&self) {
        let all = {
            let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            versions_db::activations_all(&conn)
        };
        match all {
            Ok(all) => {
                *self.activations.write().unwrap_or_else(|e| e.into_inner()) =
                    all.into_iter().map(|(k, v)| (k, Arc::from(v))).collect();
            }
            Err(e) => tracing::error!(error = %e, "cannot read the schedule versions"),
        }
    }

    fn insert(&self, e: Entry) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(e.period.label.clone())
            .or_default()
            .insert(e.source.id.clone(), Arc::new(e));
    }

    fn get(&self, id: &str, label: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(label)
            .and_then(|m| m.get(id))
            .cloned()
    }

    /// Rebuild every cached plan one of whose files changed since it was built, or whose versions
    /// in force changed (a version published).
    fn recheck(&self) {
        self.refresh_activations();
        let all: Vec<Arc<Entry>> = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        // Episodes are shared by many stations: one stat per path per round.
        let mut seen: HashMap<PathBuf, Option<StatKey>> = HashMap::new();
        let mut stat = |p: &Path| {
            *seen
                .entry(p.to_path_buf())
                .or_insert_with(|| StatKey::of(p))
        };
        for e in all {
            let changed = stat(&e.source.schedule) != e.schedule_key
                || e.audio.iter().any(|(p, k)| stat(p) != *k)
                || self.windows_of(&e.source.id, &e.period) != e.windows;
            if changed && let Ok(fresh) = self.build(&e.source, &e.period, true) {
                self.insert(fresh);
                self.generation.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn refresher(shared: Arc<Shared>, jobs: mpsc::Receiver<Job>, recheck: std::time::Duration) {
    let mut last = std::time::Instant::now();
    loop {
        let wait = recheck.saturating_sub(last.elapsed());
        match jobs.recv_timeout(wait) {
            Ok(Job::Build(source, period)) => {
                if let Ok(e) = shared.build(&source, &period, true) {
                    shared.insert(e);
                    shared.generation.fetch_add(1, Ordering::Relaxed);
                }
                shared
                    .queued
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(source.id, period.label));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if last.elapsed() >= recheck {
            shared.recheck();
            last = std::time::Instant::now();
        }
    }
}

/// The instants `[start, end)` of `period`: its first day's and its day-after-last's
/// midnights on the collector's reporting offset.
fn instants(period: &Period) -> (DateTime<Utc>, DateTime<Utc>) {
    let off = super::status::report_offset();
    let at = |d: chrono::NaiveDate| {
        d.and_time(chrono::NaiveTime::MIN)
            .and_local_timezone(off)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    };
    (at(period.from), at(period.to + Duration::days(1)))
}

/// The local dates of `period` to expand for window `w` (a day either side of its instants, for
/// a station on another offset; the airings are then filtered by instant).
fn local_dates(w: &Window, period: &Period) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let off = super::status::report_offset();
    let from = (w.from.with_timezone(&off).date_naive() - Duration::days(1)).max(period.from);
    let to = (w.to.with_timezone(&off).date_naive() + Duration::days(1)).min(period.to);
    (from, to.max(from))
}

/// The periods a collector keeps warm at `now`: the previous month, this one and the next
/// (status, the overview and `/metrics` read this month; the monthly export usually the
/// previous one; the overview's missing-episode alert the next one).
pub fn warm_periods(now: DateTime<Utc>) -> Vec<Period> {
    let today = now
        .with_timezone(&super::status::report_offset())
        .date_naive();
    let this = super::status::current_month(now);
    let prev = super::status::current_month(
        now - Duration::days(i64::from(chrono::Datelike::day(&today))),
    );
    [prev, this, next_month(now).label]
        .iter()
        .filter_map(|m| Period::parse(m, today).ok())
        .collect()
}

/// The month after the one of `now` (on the collector's reporting offset).
pub fn next_month(now: DateTime<Utc>) -> Period {
    use chrono::Datelike;
    let today = now
        .with_timezone(&super::status::report_offset())
        .date_naive();
    let m0 = today.year() * 12 + today.month0() as i32 + 1;
    let label = format!("{:04}-{:02}", m0.div_euclid(12), m0.rem_euclid(12) + 1);
    // A year within chrono's range always parses.
    Period::parse(&label, today).unwrap_or(Period {
        label,
        from: today,
        to: today,
    })
}

/// Titles of `source`'s schedule `text` and the episodes of `period`'s month (a month period
/// only) that `found` (the facts the build saw, by full path) says are missing or do not decode.
fn plan_facts(
    source: &Source,
    text: &str,
    period: &Period,
    found: impl Fn(&Path) -> Option<AudioFacts>,
) -> PlanFacts {
    use crate::schedule::file::{month_episodes, program_titles};
    let titles = program_titles(&source.schedule, text);
    let is_month = period.label.len() == 7;
    let missing_episodes = if is_month {
        month_episodes(&source.schedule, text, period.from)
            .into_iter()
            .filter_map(|e| {
                let undecodable = match found(&source.root.join(&e.path)) {
                    Some(AudioFacts::Playable { .. }) => return None,
                    Some(_) => true,
                    None => false,
                };
                Some(MissingEpisode {
                    program: e.program,
                    title: e.title,
                    month: period.from,
                    path: e.path,
                    undecodable,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    PlanFacts {
        titles,
        missing_episodes,
    }
}

impl PlanCache {
    /// Open on the collector's database (reading the stored audio facts) with the refresher
    /// checking files every `recheck_secs`.
    pub fn open(db: &Path, recheck_secs: u64) -> Result<Self, StoreError> {
        let conn = super::store::Store::open_with(db, super::store::Synchronous::Normal)?
            .into_connection();
        let activations = versions_db::activations_all(&conn)?
            .into_iter()
            .map(|(k, v)| (k, Arc::from(v)))
            .collect();
        let shared = Arc::new(Shared {
            facts: AudioFactsStore::open(db)?,
            conn: Mutex::new(conn),
            activations: RwLock::new(activations),
            entries: RwLock::new(HashMap::new()),
            queued: Mutex::default(),
            builds: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let every = std::time::Duration::from_secs(recheck_secs.max(1));
        std::thread::Builder::new()
            .name("collector-plans".into())
            .spawn(move || refresher(s, rx, every))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the plan refresher: {e}")))?;
        Ok(Self {
            shared,
            jobs: Mutex::new(tx),
        })
    }

    /// The audio facts (tests read its decode counter).
    pub fn facts(&self) -> &AudioFactsStore {
        &self.shared.facts
    }

    /// Plans built so far (cache misses and rebuilds).
    pub fn builds(&self) -> u64 {
        self.shared.builds.load(Ordering::Relaxed)
    }
}

impl PlanSource for PlanCache {
    fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Relaxed)
    }

    /// From the cache only; a plan not held (or built from another registry entry) is queued
    /// for the refresher thread, once, and `None` answered meanwhile.
    fn plan_facts(&self, station: &StationEntry, period: &Period) -> Option<Arc<PlanFacts>> {
        if let Some(e) = self.shared.get(&station.id, &period.label)
            && e.source.is_of(station)
            && e.period == *period
            && e.windows == self.shared.windows_of(&station.id, period)
        {
            return Some(e.facts.clone());
        }
        let source = Source::of(station)?;
        let fresh = self
            .shared
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((station.id.clone(), period.label.clone()));
        if fresh && let Ok(tx) = self.jobs.lock() {
            let _ = tx.send(Job::Build(source, period.clone()));
        }
        None
    }

    fn plan(&self, station: &StationEntry, period: &Period) -> Result<Vec<PlannedAiring>, String> {
        let source = Source::of(station)
            .ok_or_else(|| "no schedule file registered for this station".to_string())?;
        if let Some(e) = self.shared.get(&station.id, &period.label)
            && e.source == source
            && e.period == *period
            && e.windows == self.shared.windows_of(&station.id, period)
        {
            return e
                .plan
                .as_ref()
                .map(|p| p.as_ref().clone())
                .map_err(Clone::clone);
        }
        match self.shared.build(&source, period, false) {
            Ok(e) => {
                let plan = e
                    .plan
                    .as_ref()
                    .map(|p| p.as_ref().clone())
                    .map_err(Clone::clone);
                self.shared.insert(e);
                plan
            }
            Err(Pending(files)) => {
                let n = files.len();
                let first = files
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if let Ok(tx) = self.jobs.lock() {
                    let _ = tx.send(Job::Build(source, period.clone()));
                }
                Err(format!(
                    "the plan is being computed: audio facts of {n} file(s) are not known yet \
                     (first: {first}); reload in a moment"
                ))
            }
        }
    }

    /// Build (hashing and decoding what is new) and keep the plan of every registered station
    /// for each of `periods`, on every core.
    fn warm(&self, stations: &dyn StationDirectory, periods: &[Period]) {
        let sources: Vec<Source> = stations
            .entries()
            .into_iter()
            .filter_map(Source::of)
            .collect();
        // The first station alone, so its (usually shared) episodes are decoded once, not once
        // per thread.
        let (first, rest) = sources.split_at(sources.len().min(1));
        let work = |part: &[Source]| {
            for s in part {
                for p in periods {
                    if let Ok(e) = self.shared.build(s, p, true) {
                        self.shared.insert(e);
                    }
                }
            }
        };
        work(first);
        let per = rest.len().div_ceil(crate::worker_threads()).max(1);
        std::thread::scope(|scope| {
            for part in rest.chunks(per) {
                scope.spawn(move || work(part));
            }
        });
    }
}
