//! `loa station` as a real process whose wall clock is stepped while it runs, as NTP steps it:
//! the binary runs under libfaketime (Debian package `faketime`) with a timestamp file the test
//! rewrites (`FAKETIME_NO_CACHE=1`: re-read at every clock read), and monotonic time left alone
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`), because a real step moves the wall clock only. The steps:
//! one hour back, one hour forward, 30 s forward across a slot, 5 s back across an aired slot.
//! What is checked is what docs/station.md § Timekeeping promises: nothing airs twice, a step is
//! noticed, every due occurrence gets exactly one record — aired (late within its grace) or
//! `missed` with "clock jumped forward by N s" — and every record reaches a collector over HTTP
//! once, in order. Takes about 45 s of wall time.

mod station_common;
#[path = "shipper_testcollector.rs"]
mod tc;

use chrono::{DateTime, Duration as Span, FixedOffset, TimeZone, Utc};
use loa::wire::{AiringRecord, Outcome};
use station_common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tc::TestCollector;

/// Where Debian's `libfaketime` package puts the multi-threaded preload library.
const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
];

fn libfaketime() -> PathBuf {
    LIBFAKETIME
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "{} (looked for {LIBFAKETIME:?}: the preload library that steps the station's \
                 clock; the package is `faketime`, which brings `libfaketime`)",
                tools::missing_tool_message("libfaketimeMT.so.1", "faketime")
            )
        })
}

/// The station's wall clock: real time plus an offset the test sets through libfaketime's
/// timestamp file. The offset is relative ("+123.5"), so a step moves the clock by exactly the
/// step, and the test knows the station's time to the millisecond.
struct FakeClock {
    file: PathBuf,
    offset: Span,
}

impl FakeClock {
    /// A clock that reads `at` now.
    fn new(dir: &Path, at: DateTime<Utc>) -> Self {
        let mut c = Self {
            file: dir.join("faketime.rc"),
            offset: Span::zero(),
        };
        c.set(at - Utc::now());
        c
    }
    fn set(&mut self, offset: Span) {
        self.offset = offset;
        let secs = offset.num_microseconds().unwrap() as f64 / 1e6;
        // Replaced atomically: libfaketime re-reads the file at every clock read.
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, format!("{secs:+.6}\n")).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }
    fn step(&mut self, by: Span) {
        self.set(self.offset + by);
    }
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
    /// Sleep until the station's clock reads `at`.
    fn sleep_until(&self, at: DateTime<Utc>) {
        if let Ok(d) = (at - self.now()).to_std() {
            std::thread::sleep(d);
        }
    }
}

/// Station time (the schedule's zone, Asia/Ho_Chi_Minh = UTC+7) on the test's fixed day.
fn local(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(7 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 12, 5, h, m, s)
        .unwrap()
        .with_timezone(&Utc)
}

/// The slot's grace: a late start within it airs late, later is `missed`.
const GRACE_SECS: i64 = 12;

fn key(at: DateTime<Utc>) -> String {
    format!(
        "tick@{}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

fn write_schedule(site: &Site, id: &str, instants: &[DateTime<Utc>]) {
    use chrono::Timelike;
    let tz = FixedOffset::east_opt(7 * 3600).unwrap();
    let cron = instants
        .iter()
        .map(|t| {
            let t = t.with_timezone(&tz);
            format!("\"{} {} {} * * *\"", t.second(), t.minute(), t.hour())
        })
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::create_dir_all(site.schedules()).unwrap();
    std::fs::write(
        site.schedule_path(id),
        format!(
            r#"id = "{id}"
name = "Test {id}"
kind = "ward"
area_code = "21100"

[[programs]]
id = "tin"
category = "news"
file = "tone1.wav"

[[slots]]
id = "tick"
cron = [{cron}]
play = ["program:tin"]
start = "hard"
grace_secs = {GRACE_SECS}
max_minutes = 1
"#
        ),
    )
    .unwrap();
}

/// `loa station` under libfaketime, reading `clock`.
fn start_station(site: &Site, id: &str, collector: &str, clock: &FakeClock) -> Station {
    let lib = libfaketime();
    let log = unique(site.root.path().join(format!("{id}.log")));
    let child = Command::new(LOA)
        .args([
            "station",
            "--station",
            id,
            "--output",
            "null",
            "--heartbeat-secs",
            "1",
        ])
        .arg("--schedules")
        .arg(site.schedules())
        .arg("--audio")
        .arg(site.root.path().join("audio"))
        .arg("--data")
        .arg(site.data(id))
        .arg("--collector")
        .arg(collector)
        .env("LOA_LOG", "info")
        .env("LD_PRELOAD", &lib)
        .env("FAKETIME_TIMESTAMP_FILE", &clock.file)
        .env("FAKETIME_NO_CACHE", "1")
        // A real clock step moves the wall clock, never the monotonic one (nor file times).
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("NO_FAKE_STAT", "1")
        .env_remove("FAKETIME")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let s = Station { child, log };
    s.wait_log("journal open", Duration::from_secs(60));
    s
}

fn record(site: &Site, id: &str, at: DateTime<Utc>) -> Option<AiringRecord> {
    let k = key(at);
    site.records(id)
        .into_iter()
        .find(|r| r.occurrence.as_deref() == Some(k.as_str()))
}

/// Wait (at most `secs` of real time) for the record of the occurrence at `at`.
fn wait_record(site: &Site, id: &str, s: &Station, at: DateTime<Utc>, secs: u64) -> AiringRecord {
    let t0 = Instant::now();
    loop {
        if let Some(r) = record(site, id, at) {
            return r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "no record of {} within {secs} s; journal: {:#?}\nlog:\n{}",
            key(at),
            site.records(id),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// The "N" of "clock jumped forward by N s" in a record's reason.
fn jumped_secs(r: &AiringRecord) -> i64 {
    let why = r.reason.as_deref().unwrap_or("");
    let n = why
        .split("clock jumped forward by ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok());
    n.unwrap_or_else(|| panic!("not a clock-jump reason: {r:#?}"))
}

#[test]
fn clock_stepped_back_and_forward_an_hour_and_across_slots_nothing_airs_twice_misses_are_recorded()
{
    let lib = libfaketime();
    let site = Site::new();
    let id = "phuong-clock";
    // Every instant the slot fires (daily), in the order the test meets them.
    let a = local(5, 30, 0); // aired, then the clock goes back an hour and later comes past it again
    let b = local(4, 30, 10); // in the hour the clock replays after the step back: airs
    let c = local(5, 0, 0); // jumped over by the +1 h step: missed
    let d = local(5, 30, 10); // just before where the +1 h step lands: airs late, within grace
    let e = local(5, 30, 26); // jumped over by the +30 s step: missed
    let g = local(5, 31, 0); // after the +30 s step: airs on time, then the clock goes back 5 s
    write_schedule(&site, id, &[a, b, c, d, e, g]);
    let station_key = site.keygen(id);

    // libfaketime really moves a program's clock here (a preload that did nothing would make
    // every check below meaningless).
    let probe = site.root.path().join("probe.rc");
    std::fs::write(&probe, "-86400\n").unwrap();
    let out = Command::new(tools::require_tool("date", "coreutils"))
        .arg("+%s")
        .env("LD_PRELOAD", &lib)
        .env("FAKETIME_TIMESTAMP_FILE", &probe)
        .env("FAKETIME_NO_CACHE", "1")
        .env_remove("FAKETIME")
        .output()
        .unwrap();
    let faked: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        (Utc::now().timestamp() - 86_400 - faked).abs() < 5,
        "`date` under LD_PRELOAD={} with the clock set a day back printed {:?}: libfaketime \
         does not work on this machine",
        lib.display(),
        String::from_utf8_lossy(&out.stdout)
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let coll = TestCollector::new();
    coll.register(id, station_key);
    let url = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        coll.serve(l);
        format!("http://127.0.0.1:{port}")
    });

    let mut clock = FakeClock::new(site.root.path(), a - Span::seconds(5));
    let s = start_station(&site, id, &url, &clock);
    // The daemon runs on the fake clock: its `alive` mark, written at start, says so.
    let alive = site.data(id).join("alive");
    wait_until(Duration::from_secs(10), "the alive mark", || alive.exists());
    let alive = std::fs::read_to_string(alive).unwrap();
    let alive = DateTime::parse_from_rfc3339(alive.trim()).unwrap();
    assert!(
        (alive.with_timezone(&Utc) - clock.now())
            .num_seconds()
            .abs()
            < 30,
        "the station's alive mark {alive} is not on the fake clock ({}): libfaketime did not \
         take effect",
        clock.now()
    );

    // A airs on the fake clock.
    let ra = wait_record(&site, id, &s, a, 20);
    assert_eq!(ra.outcome, Outcome::Aired, "{ra:#?}");

    // NTP steps the clock back an hour (it was an hour fast since before the station started).
    clock.sleep_until(a + Span::seconds(2));
    clock.step(Span::hours(-1));
    s.wait_log("wall clock stepped back", Duration::from_secs(8));
    // The hour the clock replays is owed: B, planned in it, airs on time.
    let rb = wait_record(&site, id, &s, b, 20);
    assert_eq!(rb.outcome, Outcome::Aired, "{rb:#?}\n{}", s.log());
    assert!(rb.start_offset_ms.unwrap().abs() < 1_500, "{rb:#?}");

    // NTP steps it forward an hour: the clock passes C (missed) and A (already aired: nothing)
    // and lands 3 s after D (late by less than its grace: airs late).
    let before_d = b + Span::seconds(3);
    assert!(
        clock.now() < before_d,
        "the machine is too slow for this test's timeline: B recorded at {}",
        clock.now()
    );
    clock.sleep_until(before_d);
    let landing = before_d + Span::hours(1);
    clock.step(Span::hours(1));
    let rd = wait_record(&site, id, &s, d, 20);
    assert_eq!(rd.outcome, Outcome::Aired, "{rd:#?}\n{}", s.log());
    let late_ms = rd.start_offset_ms.unwrap();
    assert!(
        late_ms >= (landing - d).num_milliseconds() - 100 && late_ms < GRACE_SECS * 1000,
        "D aired {late_ms} ms after its instant (the clock landed {} ms after it)",
        (landing - d).num_milliseconds()
    );
    let rc = record(&site, id, c).expect("C, jumped over, has a record");
    assert_eq!(rc.outcome, Outcome::Missed, "{rc:#?}");
    assert!(
        (3_599..=3_601).contains(&jumped_secs(&rc)),
        "C's reason: {:?}",
        rc.reason
    );
    assert!(
        s.log().contains("wall clock stepped forward"),
        "{}",
        s.log()
    );

    // A 30 s step forward across E: missed, with the size of the step.
    let before_e = d + Span::seconds(11);
    assert!(
        clock.now() < before_e,
        "the machine is too slow for this test's timeline: D recorded at {}",
        clock.now()
    );
    clock.sleep_until(before_e);
    clock.step(Span::seconds(30));
    let rg = wait_record(&site, id, &s, g, 20);
    assert_eq!(rg.outcome, Outcome::Aired, "{rg:#?}");
    assert!(rg.start_offset_ms.unwrap().abs() < 1_500, "{rg:#?}");
    let re = record(&site, id, e).expect("E, jumped over, has a record");
    assert_eq!(re.outcome, Outcome::Missed, "{re:#?}");
    assert!(
        (29..=31).contains(&jumped_secs(&re)),
        "E's reason: {:?}",
        re.reason
    );

    // A 5 s step back across G, which has aired: the clock passes its instant again, nothing
    // airs. Wait until the station's clock is past G's instant plus its lead and pre-roll.
    clock.step(Span::seconds(-5));
    clock.sleep_until(g + Span::seconds(3));
    let log = s.stop();
    assert_eq!(
        count(&log, "wall clock stepped back"),
        2,
        "both steps back noticed:\n{log}"
    );

    // The journal: the chain verifies, one record per occurrence, exactly these.
    let recs = check_journal(&site, id, &station_key);
    let got: Vec<(String, Outcome)> = recs
        .iter()
        .map(|r| (r.occurrence.clone().unwrap(), r.outcome))
        .collect();
    let want: Vec<(String, Outcome)> = [
        (a, Outcome::Aired),
        (b, Outcome::Aired),
        (c, Outcome::Missed),
        (d, Outcome::Aired),
        (e, Outcome::Missed),
        (g, Outcome::Aired),
    ]
    .into_iter()
    .map(|(t, o)| (key(t), o))
    .collect();
    assert_eq!(got, want, "{recs:#?}\n{log}");
    // Nothing went on air twice (a second start of an aired occurrence would show here even if
    // its record were refused).
    assert_eq!(count(&log, "on air"), 4, "{log}");
    // Every record reached the collector once, in order.
    let n = recs.len() as u64;
    wait_until(
        Duration::from_secs(5),
        "the collector to hold every record",
        || coll.log_of(id).len() as u64 >= n,
    );
    assert_eq!(coll.log_of(id), (1..=n).collect::<Vec<_>>());
}
