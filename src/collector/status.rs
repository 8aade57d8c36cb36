//! Station status as the dashboard, `loa status` and `GET /api/v1/stations` show it: heartbeat
//! age (online/offline), now/next airing, backlog, clock sync, stored sequence and gaps, last
//! airing and this month's compliance.
//!
//! **Invariant:** status is derived from the store, the registry, the plans and the clock; nothing
//! here writes to the store. [`StatusCache`] keeps each station's derived status between
//! requests and recomputes a station only when something it was derived from changed: records
//! stored for it (the ingest path tells the cache), a plan rebuilt (the plan source's
//! generation), the month, the registry entry, or a planned airing of the month coming due.
//! Heartbeats replace the heartbeat fields in place; the age and online flag are computed at
//! every read. A status derived while a heartbeat or records were being stored is derived again
//! at the next read (each is counted per station), so whoever fills the cache — a request, or
//! [`StatusCache::warm`] in the background at start-up — it never keeps a stale status.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::registry::StationEntry;
use super::store::{SeqGap, Store, StoredHeartbeat, outcome_name};
use crate::reason::ReasonCode;
use crate::reconcile::{Status, Thresholds};
use crate::report::{Period, PlanSource, ReportError, station_section};
use crate::wire::{AiringBrief, JournalHealth, SyncHealth};

/// Default heartbeat age after which a station is shown offline: three missed 60 s heartbeats.
pub const DEFAULT_OFFLINE_AFTER_SECS: i64 = 180;
/// Offset used to tell "this month" on the collector (Vietnam: UTC+7, no DST).
pub const DEFAULT_REPORT_UTC_OFFSET_SECS: i32 = crate::report::REPORT_UTC_OFFSET_SECS;

/// The last airing a station reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastAiring {
    pub seq: u64,
    pub scheduled_at: DateTime<FixedOffset>,
    pub slot: Option<String>,
    pub program: Option<String>,
    pub outcome: String,
    pub aired_secs: f64,
    /// The station's free text (English detail for engineers).
    pub reason: Option<String>,
    /// The reason's code (`missed.station_down`, …) as stored: the record's own (wire version
    /// 2), or classified from `reason` (version 1). Absent from older collectors' answers.
    #[serde(default)]
    pub reason_code: Option<ReasonCode>,
    /// What to show people: the code's Vietnamese text.
    #[serde(default)]
    pub reason_text: Option<String>,
}

/// One station's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationStatus {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub online: bool,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub heartbeat_age_secs: Option<i64>,
    pub now_airing: Option<AiringBrief>,
    pub next_airing: Option<AiringBrief>,
    pub backlog_records: Option<u64>,
    pub clock_synced: Option<bool>,
    /// Station clock minus collector clock when the heartbeat arrived, in ms (transit included).
    pub clock_skew_ms: Option<i64>,
    pub output_ok: Option<bool>,
    /// The station's journal as its last heartbeat reported it (`None`: no heartbeat yet, or a
    /// station too old to report it).
    pub journal: Option<JournalHealth>,
    /// Highest seq the station says it has journaled.
    pub station_last_seq: Option<u64>,
    /// Highest seq stored here.
    pub stored_through: u64,
    pub gaps: Vec<SeqGap>,
    pub last_airing: Option<LastAiring>,
    pub month: String,
    pub month_planned: u64,
    pub month_compliance_pct: Option<f64>,
    pub plan_note: Option<String>,
    /// The station's schedule distribution as its last heartbeat reported it: active and
    /// pending version, files missing, free disk, last `sync.*` code (`None`: no heartbeat, or
    /// a station that does not report it — unmanaged or older).
    #[serde(default)]
    pub sync: Option<SyncHealth>,
    /// The latest schedule version the centre published for the station (`None`: the centre
    /// holds none, an unmanaged station). Set at read (`readiness::apply`).
    #[serde(default)]
    pub latest_version: Option<u64>,
    /// Whether the station holds `latest_version` with no file missing (`collector::readiness`;
    /// `None`: unmanaged).
    #[serde(default)]
    pub ready_next_month: Option<bool>,
}

/// The collector's reporting offset (defined with the report's periods).
pub use crate::report::report_offset;

/// The month label (YYYY-MM) of `now` on the collector's reporting offset.
pub fn current_month(now: DateTime<Utc>) -> String {
    use chrono::Datelike;
    // Not chrono's `format`: its parser of the format string showed in the overview's profile.
    let d = now.with_timezone(&report_offset()).date_naive();
    format!("{:04}-{:02}", d.year(), d.month())
}

/// Compute a station's status at `now`.
pub fn station_status(
    store: &Store,
    entry: &StationEntry,
    plans: &dyn PlanSource,
    th: &Thresholds,
    now: DateTime<Utc>,
    offline_after_secs: i64,
) -> Result<StationStatus, ReportError> {
    let hb = store.heartbeat(&entry.id)?;
    let mut status = records_status(store, entry, plans, th, now)?;
    apply_heartbeat(&mut status, hb.as_ref(), now, offline_after_secs);
    Ok(status)
}

/// Set the fields of `s` that come from the station's last heartbeat (and its age at `now`).
pub fn apply_heartbeat(
    s: &mut StationStatus,
    hb: Option<&StoredHeartbeat>,
    now: DateTime<Utc>,
    offline_after_secs: i64,
) {
    let age = hb.map(|h| (now - h.received_at).num_seconds());
    s.online = age.is_some_and(|a| a <= offline_after_secs);
    s.last_heartbeat_at = hb.map(|h| h.received_at);
    s.heartbeat_age_secs = age;
    s.now_airing = hb.and_then(|h| h.heartbeat.now_airing.clone());
    s.next_airing = hb.and_then(|h| h.heartbeat.next_airing.clone());
    s.backlog_records = hb.map(|h| h.heartbeat.backlog_records);
    s.clock_synced = hb.and_then(|h| h.heartbeat.clock_synced);
    s.clock_skew_ms = hb.map(|h| (h.heartbeat.sent_at - h.received_at).num_milliseconds());
    s.output_ok = hb.map(|h| h.heartbeat.output_ok);
    s.journal = hb.and_then(|h| h.heartbeat.journal.clone());
    s.sync = hb.and_then(|h| h.heartbeat.sync.clone());
    s.station_last_seq = hb.map(|h| h.heartbeat.last_seq);
}

/// The fields of a station's status that come from its stored records and its plan (the
/// heartbeat fields empty: see [`apply_heartbeat`]).
fn records_status(
    store: &Store,
    entry: &StationEntry,
    plans: &dyn PlanSource,
    th: &Thresholds,
    now: DateTime<Utc>,
) -> Result<StationStatus, ReportError> {
    let last = match store.last_record(&entry.id)? {
        Some(r) => {
            let p = r.parse()?;
            let code = store.reason_code(&entry.id, p.seq)?;
            Some(LastAiring {
                seq: p.seq,
                scheduled_at: p.scheduled_at,
                slot: p.slot,
                program: p.program,
                outcome: outcome_name(p.outcome).to_string(),
                aired_secs: p.aired_secs,
                reason: p.reason,
                reason_text: code.as_ref().map(|c| c.vi().to_owned()),
                reason_code: code,
            })
        }
        None => None,
    };
    let month = current_month(now);
    let today = now.with_timezone(&report_offset()).date_naive();
    let period = Period::parse(&month, today)?;
    let section = station_section(store, entry, plans, &period, th, now)?;
    let totals = &section.reconciliation.breakdown.totals;
    Ok(StationStatus {
        id: entry.id.clone(),
        name: entry.name.clone(),
        area_code: entry.area_code.clone(),
        online: false,
        last_heartbeat_at: None,
        heartbeat_age_secs: None,
        now_airing: None,
        next_airing: None,
        backlog_records: None,
        clock_synced: None,
        clock_skew_ms: None,
        output_ok: None,
        journal: None,
        station_last_seq: None,
        stored_through: store.stored_through(&entry.id)?,
        gaps: store.gaps(&entry.id)?,
        last_airing: last,
        month,
        month_planned: totals.planned,
        month_compliance_pct: totals.compliance_pct(),
        plan_note: section.plan_note,
        sync: None,
        latest_version: None,
        ready_next_month: None,
    })
}

/// The journal alert in Vietnamese, when the station's journal is not writable or holds
/// records in memory: "Nhật ký không ghi được — 3 bản ghi đang giữ trong bộ nhớ, còn trống
/// 0,5 MB". `None` for a healthy journal or a station that does not report it.
pub fn journal_alert_vi(j: &JournalHealth) -> Option<String> {
    if j.writable && j.held_records == 0 {
        return None;
    }
    let head = if j.writable {
        "Nhật ký đang ghi lại các bản ghi đã giữ"
    } else {
        "Nhật ký không ghi được"
    };
    let free = match j.free_bytes {
        Some(b) => format!(", còn trống {}", mb_vi(b)),
        None => String::new(),
    };
    Some(format!(
        "{head} — {} bản ghi đang giữ trong bộ nhớ{free}",
        j.held_records
    ))
}

/// Bytes as megabytes with a decimal comma and one decimal: `0,5 MB`, `1.234,0 MB`.
pub fn mb_vi(bytes: u64) -> String {
    let tenths = (bytes as u128 * 10 + 524_288) / 1_048_576;
    format!("{} MB", tenths_vi(tenths))
}

/// A compliance percentage the Vietnamese way, one decimal with a decimal comma: `97,5 %`.
pub fn pct_vi(pct: f64) -> String {
    let tenths = (pct.clamp(0.0, 100.0) * 10.0).round() as u128;
    format!("{} %", tenths_vi(tenths))
}

/// A count of tenths as a Vietnamese decimal: `.` groups thousands, `,` before the one decimal.
fn tenths_vi(tenths: u128) -> String {
    let (int, frac) = (tenths / 10, tenths % 10);
    let digits = int.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("{grouped},{frac}")
}

/// How long ago a heartbeat came, in Vietnamese: `12 giây trước`, `5 phút trước`, `3 giờ
/// trước`, `2 ngày trước` (a negative age, a station clock ahead of ours, is `tương lai?`).
pub fn age_vi(secs: i64) -> String {
    match secs {
        s if s < 0 => "tương lai?".into(),
        s if s < 120 => format!("{s} giây trước"),
        s if s < 7200 => format!("{} phút trước", s / 60),
        s if s < 172_800 => format!("{} giờ trước", s / 3600),
        s => format!("{} ngày trước", s / 86_400),
    }
}

/// Short Vietnamese/English label of a status for tables.
pub fn status_word(s: Status) -> &'static str {
    s.label_vi()
}

/// One station's cached status and what it was derived from.
struct Cached {
    /// The status with the records/plan fields as derived; heartbeat fields applied at read.
    status: StationStatus,
    heartbeat: Option<StoredHeartbeat>,
    /// The station's heartbeat version `heartbeat` is (see [`StatusCache::heartbeat_stored`]).
    heartbeat_version: u64,
    entry: StationEntry,
    month: String,
    plan_generation: u64,
    /// The station's records version it was derived at (see [`StatusCache::records_stored`]).
    records_version: u64,
    /// When the next planned airing of the month comes due (`reconcile::due_at`): its
    /// reconciliation changes then.
    stale_at: Option<DateTime<Utc>>,
}

/// `a == b`, with paths compared as bytes (`Path`'s `==` parses both into components, which
/// showed in the overview's profile at 10,000 stations; a path spelled differently counts as
/// changed here, which only derives the status again).
fn same_entry(a: &StationEntry, b: &StationEntry) -> bool {
    fn bytes(p: &Option<std::path::PathBuf>) -> Option<&[u8]> {
        p.as_ref().map(|p| p.as_os_str().as_encoded_bytes())
    }
    a.id == b.id
        && a.name == b.name
        && a.area_code == b.area_code
        && a.public_key == b.public_key
        && a.key == b.key
        && bytes(&a.schedule) == bytes(&b.schedule)
        && bytes(&a.audio_root) == bytes(&b.audio_root)
}

impl Cached {
    /// The status at `now`: as derived, with the heartbeat's fields and age applied.
    fn read(&self, now: DateTime<Utc>, offline_after_secs: i64) -> StationStatus {
        let mut s = self.status.clone();
        apply_heartbeat(&mut s, self.heartbeat.as_ref(), now, offline_after_secs);
        s
    }
}

#[derive(Default)]
struct Entries {
    cached: std::collections::HashMap<String, Cached>,
    /// Bumped each time records are stored for a station.
    records_version: std::collections::HashMap<String, u64>,
    /// Bumped each time a heartbeat is stored for a station.
    heartbeat_version: std::collections::HashMap<String, u64>,
}

impl Entries {
    /// The cached status of `entry` when nothing it was derived from changed: the same records
    /// and heartbeat, `month`, plan `generation` and registry entry, and no planned airing come
    /// due since.
    fn fresh(
        &self,
        entry: &StationEntry,
        month: &str,
        generation: u64,
        now: DateTime<Utc>,
    ) -> Option<&Cached> {
        let (version, hb_version) = self.versions(&entry.id);
        self.cached.get(&entry.id).filter(|c| {
            c.records_version == version
                && c.heartbeat_version == hb_version
                && c.month == month
                && c.plan_generation == generation
                && c.stale_at.is_none_or(|t| now < t)
                && same_entry(&c.entry, entry)
        })
    }

    /// The station's (records, heartbeat) versions.
    fn versions(&self, station: &str) -> (u64, u64) {
        (
            self.records_version.get(station).copied().unwrap_or(0),
            self.heartbeat_version.get(station).copied().unwrap_or(0),
        )
    }
}

/// Every station's status, kept between requests (see the module doc for when it is
/// recomputed). Reads take a shared lock; a station is recomputed outside any lock.
#[derive(Default)]
pub struct StatusCache {
    entries: std::sync::RwLock<Entries>,
    /// Set once [`StatusCache::warm`] has gone through every station.
    warmed: std::sync::atomic::AtomicBool,
}

impl StatusCache {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Records were stored for `station`: its record fields are derived again at the next read.
    pub fn records_stored(&self, station: &str) {
        *self
            .write()
            .records_version
            .entry(station.to_string())
            .or_default() += 1;
    }

    /// A heartbeat of `station` was stored (call after it is committed): it replaces the cached
    /// one. A status being derived meanwhile may have read the one before; its version tells.
    pub fn heartbeat_stored(&self, station: &str, hb: StoredHeartbeat) {
        let mut e = self.write();
        let v = e.heartbeat_version.entry(station.to_string()).or_default();
        *v += 1;
        let v = *v;
        if let Some(c) = e.cached.get_mut(station) {
            c.heartbeat = Some(hb);
            c.heartbeat_version = v;
        }
    }

    /// Derive the status of every station of `entries` at `now()` into the cache, reading
    /// through `store` (its own connection: requests keep theirs). Run in the background at
    /// start-up so that the first page does not derive them all; a request meanwhile derives
    /// what it needs itself. Stops early (returns `false`) when `go_on` says so. A station whose
    /// status cannot be derived is logged and left to the next request (which reports it).
    pub fn warm<'a>(
        &self,
        store: &Store,
        entries: impl IntoIterator<Item = &'a StationEntry>,
        plans: &dyn PlanSource,
        th: &Thresholds,
        now: impl Fn() -> DateTime<Utc>,
        mut go_on: impl FnMut() -> bool,
    ) -> bool {
        for entry in entries {
            if !go_on() {
                return false;
            }
            if let Err(e) = self.status(store, entry, plans, th, now(), DEFAULT_OFFLINE_AFTER_SECS)
            {
                tracing::warn!(station = %entry.id, error = %e, "status warm-up: not derived");
            }
        }
        self.warmed
            .store(true, std::sync::atomic::Ordering::Release);
        true
    }

    /// The statuses of `entries` at `now`, in their order, as [`StatusCache::status`] gives each:
    /// the cached ones under one shared lock (the month and the plan generation worked out
    /// once), then the others derived with no lock held.
    pub fn all_status_of<'a>(
        &self,
        store: &Store,
        entries: impl IntoIterator<Item = &'a StationEntry>,
        plans: &dyn PlanSource,
        th: &Thresholds,
        now: DateTime<Utc>,
        offline_after_secs: i64,
    ) -> Result<Vec<StationStatus>, ReportError> {
        let month = current_month(now);
        let generation = plans.generation();
        let found: Vec<(&StationEntry, Option<StationStatus>)> = {
            let e = self.read();
            entries
                .into_iter()
                .map(|entry| {
                    let s = e
                        .fresh(entry, &month, generation, now)
                        .map(|c| c.read(now, offline_after_secs));
                    (entry, s)
                })
                .collect()
        };
        found
            .into_iter()
            .map(|(entry, s)| match s {
                Some(s) => Ok(s),
                None => self.status(store, entry, plans, th, now, offline_after_secs),
            })
            .collect()
    }

    /// Whether [`StatusCache::warm`] has gone through every station.
    pub fn is_warm(&self) -> bool {
        self.warmed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The status of `entry` at `now`, from the cache when nothing it was derived from changed.
    pub fn status(
        &self,
        store: &Store,
        entry: &StationEntry,
        plans: &dyn PlanSource,
        th: &Thresholds,
        now: DateTime<Utc>,
        offline_after_secs: i64,
    ) -> Result<StationStatus, ReportError> {
        let month = current_month(now);
        let generation = plans.generation();
        let (version, hb_version) = {
            let e = self.read();
            if let Some(c) = e.fresh(entry, &month, generation, now) {
                return Ok(c.read(now, offline_after_secs));
            }
            e.versions(&entry.id)
        };
        // Derived from the records and heartbeat as of these versions or later: one stored
        // meanwhile bumps its version again, so the entry is derived again at the next read.
        let heartbeat = store.heartbeat(&entry.id)?;
        let status = records_status(store, entry, plans, th, now)?;
        let today = now.with_timezone(&report_offset()).date_naive();
        let stale_at = Period::parse(&month, today)
            .ok()
            .and_then(|p| plans.plan(entry, &p).ok())
            .and_then(|plan| {
                // Reconciliation changes when an occurrence comes due (a missing record turns
                // from "not yet due" to "no record"); the record itself is ingest's news.
                plan.iter()
                    .map(crate::reconcile::due_at)
                    .filter(|t| *t > now)
                    .min()
            });
        let mut out = status.clone();
        apply_heartbeat(&mut out, heartbeat.as_ref(), now, offline_after_secs);
        self.write().cached.insert(
            entry.id.clone(),
            Cached {
                status,
                heartbeat,
                heartbeat_version: hb_version,
                entry: entry.clone(),
                month,
                plan_generation: generation,
                records_version: version,
                stale_at,
            },
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::PlannedAiring;
    use crate::wire::{HEARTBEAT_VERSION, Heartbeat};
    use chrono::TimeZone;
    use ed25519_dalek::SigningKey;
    use std::sync::Mutex;

    /// A plan source that, while a status is being derived (its heartbeat already read), stores
    /// a heartbeat the way ingest does: committed in the database, then the cache told.
    struct HeartbeatMeanwhile<'a> {
        cache: &'a StatusCache,
        writer: Mutex<Option<Store>>,
        hb: StoredHeartbeat,
    }

    impl PlanSource for HeartbeatMeanwhile<'_> {
        fn plan(&self, station: &StationEntry, _: &Period) -> Result<Vec<PlannedAiring>, String> {
            if let Some(mut w) = self.writer.lock().unwrap().take() {
                let bytes = serde_json::to_string(&self.hb.heartbeat).unwrap();
                w.store_heartbeat(&station.id, &bytes, "sig", self.hb.received_at)
                    .unwrap();
                self.cache.heartbeat_stored(&station.id, self.hb.clone());
            }
            Ok(Vec::new())
        }
    }

    fn entry(id: &str) -> StationEntry {
        let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
        StationEntry {
            id: id.into(),
            name: format!("Phường {id}"),
            area_code: "20001".into(),
            public_key: crate::wire::encode_public_key(&key),
            key,
            schedule: None,
            audio_root: None,
        }
    }

    /// A plan source that counts its calls.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl PlanSource for Counting {
        fn plan(&self, _: &StationEntry, _: &Period) -> Result<Vec<PlannedAiring>, String> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Vec::new())
        }
    }

    #[test]
    fn warm_derives_every_station_so_that_reads_find_them_and_stops_when_told() {
        let tmp = tempfile::tempdir().unwrap();
        let db = crate::collector::db::testing::test_db(tmp.path(), "collector.db");
        let store = Store::open(&db).unwrap();
        let entries: Vec<StationEntry> = ["a", "b", "c"].into_iter().map(entry).collect();
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap();
        let th = Thresholds::default();
        let plans = Counting::default();
        let cache = StatusCache::default();
        let mut left = 1;
        let stop_after_one = || {
            left -= 1;
            left >= 0
        };
        assert!(!cache.warm(&store, &entries, &plans, &th, || now, stop_after_one));
        assert!(!cache.is_warm());
        assert!(cache.warm(&store, &entries, &plans, &th, || now, || true));
        assert!(cache.is_warm());
        let derived = plans.0.load(std::sync::atomic::Ordering::Relaxed);
        for e in &entries {
            let s = cache.status(&store, e, &plans, &th, now, 180).unwrap();
            assert_eq!(
                s,
                station_status(&store, e, &Counting::default(), &th, now, 180).unwrap()
            );
        }
        assert_eq!(
            plans.0.load(std::sync::atomic::Ordering::Relaxed),
            derived,
            "from the cache"
        );
    }

    #[test]
    fn all_status_of_is_each_station_status_in_order_cached_or_not() {
        let tmp = tempfile::tempdir().unwrap();
        let db = crate::collector::db::testing::test_db(tmp.path(), "collector.db");
        let store = Store::open(&db).unwrap();
        let entries: Vec<StationEntry> = ["c", "a", "b"].into_iter().map(entry).collect();
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap();
        let th = Thresholds::default();
        let plans = Counting::default();
        let cache = StatusCache::default();
        // "a" cached, the others not yet.
        cache
            .status(&store, &entries[1], &plans, &th, now, 180)
            .unwrap();
        let all = cache
            .all_status_of(&store, &entries, &plans, &th, now, 180)
            .unwrap();
        let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        for (s, e) in all.iter().zip(&entries) {
            assert_eq!(
                *s,
                station_status(&store, e, &Counting::default(), &th, now, 180).unwrap()
            );
        }
        let calls = || plans.0.load(std::sync::atomic::Ordering::Relaxed);
        let derived = calls();
        let cached = cache
            .all_status_of(&store, &entries, &plans, &th, now, 180)
            .unwrap();
        assert_eq!(cached, all);
        assert_eq!(calls(), derived, "every one from the cache");
        // A renamed station is derived again (its registry entry changed), the others not.
        let mut renamed = entries.clone();
        renamed[0].name = "Phường mới".into();
        let again = cache
            .all_status_of(&store, &renamed, &plans, &th, now, 180)
            .unwrap();
        assert_eq!(again[0].name, "Phường mới");
        assert_eq!(again[1..], all[1..]);
        assert_eq!(calls() - derived, derived / 3, "one station derived again");
        assert_eq!(current_month(now), "2026-11");
        assert_eq!(
            current_month(Utc.with_ymd_and_hms(2026, 12, 31, 17, 0, 0).unwrap()),
            "2027-01",
            "on the reporting offset (UTC+7)"
        );
    }

    #[test]
    fn a_heartbeat_stored_while_a_status_is_derived_is_shown_at_the_next_read() {
        let tmp = tempfile::tempdir().unwrap();
        let db = crate::collector::db::testing::test_db(tmp.path(), "collector.db");
        let store = Store::open(&db).unwrap();
        let entry = entry("st1");
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap();
        let received_at = now - chrono::Duration::seconds(10);
        let hb = StoredHeartbeat {
            received_at,
            heartbeat: Heartbeat {
                v: HEARTBEAT_VERSION,
                station: "st1".into(),
                sent_at: received_at,
                now_airing: None,
                next_airing: None,
                backlog_records: 0,
                last_seq: 0,
                output: "null".into(),
                output_ok: true,
                clock_synced: Some(true),
                version: "test".into(),
                uptime_secs: 60,
                journal: None,
                sync: None,
            },
        };
        let cache = StatusCache::default();
        let plans = HeartbeatMeanwhile {
            cache: &cache,
            writer: Mutex::new(Some(Store::open(&db).unwrap())),
            hb,
        };
        let th = Thresholds::default();
        let first = cache.status(&store, &entry, &plans, &th, now, 180).unwrap();
        assert!(!first.online, "derived from before the heartbeat");
        let second = cache.status(&store, &entry, &plans, &th, now, 180).unwrap();
        assert!(second.online, "the heartbeat stored meanwhile is shown");
        assert_eq!(second.last_heartbeat_at, Some(received_at));
        // And from then on from the cache, heartbeat included.
        let third = cache.status(&store, &entry, &plans, &th, now, 180).unwrap();
        assert_eq!(third, second);
    }
}
