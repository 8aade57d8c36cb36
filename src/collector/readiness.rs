//! Readiness: whether a centre-managed station holds its latest schedule version and every file
//! that version needs, read from what its last heartbeat reported (`wire::SyncHealth`) and the
//! latest version the centre published for it (`collector::versions`); its sync failures and
//! low free disk as alerts.
//!
//! A station is *ready for next month* when it airs the latest published version and misses no
//! file (`active_version == latest`, `missing_files == 0`; the station counts the files of the
//! next 45 days, which from three days before a month covers all of it). A managed station not
//! ready is an alert, urgent (KHẨN) from 00:00 local three days before the month — the rule of
//! next month's missing episode ([`super::overview::episode_urgent`]).
//!
//! **Invariant:** pure: a function of the heartbeat's `SyncHealth`, the latest published
//! version and `now`; it reads nothing, decodes no audio and builds no plan, so the overview
//! stays one pass over cached rows. Facts are codes and numbers ([`Facts`], what the status
//! API carries); Vietnamese words come only from the `*_vi` functions (codes on the wire, texts
//! at the edge). A station the centre holds no version of (unmanaged) has no readiness and no
//! readiness alert.

use chrono::{DateTime, NaiveDate, Utc};

use super::status::{StationStatus, mb_vi};
use crate::wire::SyncHealth;

/// Free disk below this on a station is shown, and is an alert. Why 1 GiB: a version is staged
/// beside the one airing, so a switch holds both; a ward airing a daily 15-minute file (64 kbps,
/// ~7 MB) needs ~315 MB for a 45-day manifest, twice that during a switch, plus the station's
/// 64 MiB journal reserve (`station::sync::DISK_RESERVE_BYTES`): about 700 MB. Below 1 GiB the
/// next version may not fit (`sync.disk_full`), so the office hears of it before the station
/// refuses a version.
pub const LOW_DISK_BYTES: u64 = 1 << 30;

/// The readiness facts of one station, derived from its status ([`apply`] fills them in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The latest version the centre published (`None`: unmanaged).
    pub latest: Option<u64>,
    /// What the station's last heartbeat reported (`None`: nothing reported).
    pub sync: Option<&'a SyncHealth>,
}

impl<'a> Facts<'a> {
    /// The facts held in `s` (see [`apply`]).
    pub fn of(s: &'a StationStatus) -> Self {
        Self {
            latest: s.latest_version,
            sync: s.sync.as_ref(),
        }
    }

    /// Whether the station is ready for next month; `None` for an unmanaged station.
    pub fn ready(&self) -> Option<bool> {
        let latest = self.latest?;
        Some(
            self.sync
                .is_some_and(|h| h.active_version == Some(latest) && h.missing_files == 0),
        )
    }
}

/// Put the latest published version of the station in `s` and whether it is ready (the status
/// API's `latest_version` and `ready_next_month`; `s.sync` comes from the heartbeat).
pub fn apply(s: &mut StationStatus, latest: Option<u64>) {
    s.latest_version = latest;
    s.ready_next_month = Facts::of(s).ready();
}

/// `v12`, or `—` for none.
fn v(n: Option<u64>) -> String {
    n.map_or_else(|| "—".into(), |n| format!("v{n}"))
}

/// The version column: `v12`; `v11 → v12 đang tải` (fetching the latest); `v11 → v12 chưa
/// nhận` (not heard of it yet); `chưa báo (mới nhất v12)` (no sync state reported); `—` for an
/// unmanaged station that reports nothing.
pub fn version_vi(f: &Facts) -> String {
    match (f.sync, f.latest) {
        (None, None) => "—".into(),
        (None, Some(l)) => format!("chưa báo (mới nhất v{l})"),
        (Some(h), None) => v(h.active_version),
        (Some(h), Some(l)) if h.active_version == Some(l) => format!("v{l}"),
        (Some(h), Some(l)) if h.pending_version == Some(l) => {
            format!("{} → v{l} đang tải", v(h.active_version))
        }
        (Some(h), Some(l)) => format!("{} → v{l} chưa nhận", v(h.active_version)),
    }
}

/// Why a managed station is not ready, in Vietnamese (`None`: ready or unmanaged): "thiếu 2
/// tệp", "đang tải v12", "chưa nhận v12, thiếu 1 tệp", "trạm chưa báo trạng thái đồng bộ".
pub fn not_ready_why_vi(f: &Facts) -> Option<String> {
    if f.ready()? {
        return None;
    }
    let latest = f.latest?;
    let Some(h) = f.sync else {
        return Some("trạm chưa báo trạng thái đồng bộ".into());
    };
    let mut why = Vec::new();
    if h.active_version != Some(latest) {
        why.push(if h.pending_version == Some(latest) {
            format!("đang tải v{latest}")
        } else {
            format!("chưa nhận v{latest}")
        });
    }
    if h.missing_files > 0 {
        why.push(format!(
            "thiếu {} tệp",
            crate::web::fmt::num_vi(i64::try_from(h.missing_files).unwrap_or(i64::MAX))
        ));
    }
    Some(why.join(", "))
}

/// `01/2027`.
fn month_vi(month: NaiveDate) -> String {
    month.format("%m/%Y").to_string()
}

/// The readiness column for `month` (next month's first day): "Sẵn sàng tháng 01/2027",
/// "Chưa sẵn sàng: thiếu 2 tệp", or `—` for an unmanaged station.
pub fn readiness_vi(f: &Facts, month: NaiveDate) -> String {
    match (f.ready(), not_ready_why_vi(f)) {
        (Some(true), _) => format!("Sẵn sàng tháng {}", month_vi(month)),
        (Some(false), Some(why)) => format!("Chưa sẵn sàng: {why}"),
        _ => "—".into(),
    }
}

/// The first day of the month after `month` (a `YYYY-MM` label, [`StationStatus::month`]);
/// `None` when the label is not one.
pub fn month_after(month: &str) -> Option<NaiveDate> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    first.checked_add_months(chrono::Months::new(1))
}

/// The readiness column of a status row, for the month after the row's own (`loa status`'s
/// `THÁNG SAU`): [`readiness_vi`] of its facts, `—` when unmanaged.
pub fn readiness_of_vi(s: &StationStatus) -> String {
    match month_after(&s.month) {
        Some(next) => readiness_vi(&Facts::of(s), next),
        None => "—".into(),
    }
}

/// Free disk when low (below [`LOW_DISK_BYTES`]): "Đĩa trạm còn trống 512,0 MB".
pub fn low_disk_vi(h: &SyncHealth) -> Option<String> {
    h.free_bytes
        .filter(|b| *b < LOW_DISK_BYTES)
        .map(|b| format!("Đĩa trạm còn trống {}", mb_vi(b)))
}

/// Whether the station has a readiness, sync or disk alert (cheap: no text built).
pub fn has_alert(f: &Facts) -> bool {
    f.ready() == Some(false)
        || f.sync.is_some_and(|h| {
            h.last_error_code.is_some() || h.free_bytes.is_some_and(|b| b < LOW_DISK_BYTES)
        })
}

/// The alerts for `month` (next month's first day) at `now`, and whether one is urgent:
/// "Chưa sẵn sàng tháng 01/2027: thiếu 2 tệp" ("KHẨN: " first from 00:00 local three days before
/// the month), the last sync failure's Vietnamese text, and low free disk.
pub fn alerts_vi(f: &Facts, month: NaiveDate, now: DateTime<Utc>) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut urgent = false;
    if let Some(why) = not_ready_why_vi(f) {
        let t = format!("Chưa sẵn sàng tháng {}: {why}", month_vi(month));
        if super::overview::episode_urgent(month, now) {
            urgent = true;
            out.push(format!("KHẨN: {t}"));
        } else {
            out.push(t);
        }
    }
    if let Some(h) = f.sync {
        if let Some(c) = &h.last_error_code {
            out.push(c.vi().to_owned());
        }
        out.extend(low_disk_vi(h));
    }
    (out, urgent)
}

/// What the station month page shows of readiness, in Vietnamese.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shown {
    pub version: String,
    pub readiness: String,
    /// `None`: unmanaged.
    pub ready: Option<bool>,
    pub alerts: Vec<String>,
    pub urgent: bool,
}

/// [`Shown`] of `f` at `now` (readiness for the month after `now`'s).
pub fn shown_vi(f: &Facts, now: DateTime<Utc>) -> Shown {
    let month = super::plans::next_month(now).from;
    let (alerts, urgent) = alerts_vi(f, month, now);
    Shown {
        version: version_vi(f),
        readiness: readiness_vi(f, month),
        ready: f.ready(),
        alerts,
        urgent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(active: Option<u64>, pending: Option<u64>, missing: u64) -> SyncHealth {
        SyncHealth {
            active_version: active,
            pending_version: pending,
            missing_files: missing,
            free_bytes: Some(20 << 30),
            last_error_code: None,
        }
    }

    fn check(latest: Option<u64>, h: Option<SyncHealth>, version: &str, readiness: &str) {
        let f = Facts {
            latest,
            sync: h.as_ref(),
        };
        let jan = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        assert_eq!(version_vi(&f), version, "{latest:?} {h:?}");
        assert_eq!(readiness_vi(&f, jan), readiness, "{latest:?} {h:?}");
    }

    #[test]
    fn version_and_readiness_columns() {
        let ready = "Sẵn sàng tháng 01/2027";
        check(None, None, "—", "—");
        check(Some(12), Some(health(Some(12), None, 0)), "v12", ready);
        check(
            Some(12),
            Some(health(Some(12), None, 2)),
            "v12",
            "Chưa sẵn sàng: thiếu 2 tệp",
        );
        check(
            Some(12),
            Some(health(Some(11), Some(12), 3)),
            "v11 → v12 đang tải",
            "Chưa sẵn sàng: đang tải v12, thiếu 3 tệp",
        );
        check(
            Some(12),
            Some(health(Some(11), None, 0)),
            "v11 → v12 chưa nhận",
            "Chưa sẵn sàng: chưa nhận v12",
        );
        check(
            Some(1),
            Some(health(None, Some(1), 1)),
            "— → v1 đang tải",
            "Chưa sẵn sàng: đang tải v1, thiếu 1 tệp",
        );
        check(
            Some(12),
            None,
            "chưa báo (mới nhất v12)",
            "Chưa sẵn sàng: trạm chưa báo trạng thái đồng bộ",
        );
        // The centre lost its versions (or never had them): no readiness claimed.
        check(None, Some(health(Some(3), None, 0)), "v3", "—");
    }

    #[test]
    fn the_month_after_a_label() {
        let d = |y, m| NaiveDate::from_ymd_opt(y, m, 1);
        assert_eq!(month_after("2026-11"), d(2026, 12));
        assert_eq!(month_after("2026-12"), d(2027, 1));
        assert_eq!(month_after("2026-13"), None);
        assert_eq!(month_after(""), None);
    }

    #[test]
    fn low_disk_only_below_the_threshold_in_vietnamese_numbers() {
        let mut h = health(Some(1), None, 0);
        h.free_bytes = Some(LOW_DISK_BYTES);
        assert_eq!(low_disk_vi(&h), None);
        h.free_bytes = Some(1_536 * 1_048_576 / 2 - 1_048_576);
        assert_eq!(
            low_disk_vi(&h).as_deref(),
            Some("Đĩa trạm còn trống 767,0 MB")
        );
        h.free_bytes = None;
        assert_eq!(low_disk_vi(&h), None);
    }
}
