//! The station daemon as a real process (`loa station`), with a real HTTP collector on loopback
//! (the minimal test collector), second-granularity schedules and the `timer` output.
//! Each test takes 10–25 s of wall time: they wait for real airings.

mod station_common;
#[path = "shipper_testcollector.rs"]
mod tc;

use loa::journal::{self, AckLedger};
use loa::wire::Outcome;
use station_common::*;
use std::process::Command;
use std::time::Duration;
use tc::TestCollector;

struct Coll {
    c: TestCollector,
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn collector() -> Coll {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = TestCollector::new();
    let url = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        c.serve(l);
        format!("http://127.0.0.1:{port}")
    });
    Coll { c, url, _rt: rt }
}

#[test]
fn two_stations_air_and_every_record_arrives_once() {
    let site = Site::new();
    let coll = collector();
    let ids = ["phuong-a", "phuong-b"];
    let mut keys = Vec::new();
    for id in ids {
        site.write_schedule(id, 3, "tone1.wav");
        let k = site.keygen(id);
        coll.c.register(id, k);
        keys.push(k);
    }
    let stations: Vec<_> = ids.iter().map(|id| site.start(id, &coll.url)).collect();
    wait_until(
        Duration::from_secs(30),
        "three aired records at each station",
        || {
            ids.iter().all(|id| {
                site.records(id)
                    .iter()
                    .filter(|r| r.outcome == Outcome::Aired)
                    .count()
                    >= 3
            })
        },
    );
    for s in stations {
        s.stop();
    }
    for (id, key) in ids.iter().zip(&keys) {
        let recs = check_journal(&site, id, key);
        let n = recs.len() as u64;
        assert_eq!(
            coll.c.log_of(id),
            (1..=n).collect::<Vec<_>>(),
            "{id}: every record once, in order"
        );
        assert_eq!(
            AckLedger::new(&journal::journal_dir(&site.data(id)))
                .load()
                .unwrap(),
            n
        );
        for r in recs.iter().filter(|r| r.outcome == Outcome::Aired) {
            assert!(r.start_offset_ms.unwrap().abs() < 1_500, "{r:?}");
            assert_eq!(r.items.len(), 1);
            assert_eq!(r.items[0].sha256.len(), 64);
            assert!(r.evidence.as_ref().is_some_and(|e| e.frames > 0), "{r:?}");
        }
    }
    assert!(!coll.c.lock().heartbeats.is_empty());
}

#[test]
fn kill_9_during_an_airing_then_restart_records_it_partial_once() {
    let site = Site::new();
    let coll = collector();
    let id = "phuong-crash";
    site.write_schedule(id, 6, "tone4.wav");
    let key = site.keygen(id);
    coll.c.register(id, key);
    let s = site.start(id, &coll.url);
    s.wait_log("on air", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    let s = site.start(id, &coll.url);
    wait_until(
        Duration::from_secs(20),
        "an airing after the restart",
        || site.records(id).iter().any(|r| r.outcome == Outcome::Aired),
    );
    let log = s.stop();
    let recs = check_journal(&site, id, &key);
    let partial: Vec<_> = recs
        .iter()
        .filter(|r| r.outcome == Outcome::Partial)
        .collect();
    assert!(
        partial.iter().any(|r| r
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("crash or power loss")),
        "{recs:#?}\n{log}"
    );
    let n = recs.len() as u64;
    assert_eq!(coll.c.log_of(id), (1..=n).collect::<Vec<_>>());
}

#[test]
fn kill_9_while_shipping_a_backlog_then_everything_arrives_once() {
    let site = Site::new();
    let id = "phuong-ship";
    site.write_schedule(id, 2, "tone1.wav");
    let key = site.keygen(id);
    // Collector down: records pile up.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let s = site.start(id, &dead);
    wait_until(Duration::from_secs(20), "a backlog of 3", || {
        site.records(id).len() >= 3
    });
    s.kill9();
    // Collector up; the station restarts and ships; kill it again mid-way, restart once more.
    let coll = collector();
    coll.c.register(id, key);
    let s = site.start(id, &coll.url);
    wait_until(Duration::from_secs(20), "first shipment", || {
        !coll.c.log_of(id).is_empty()
    });
    s.kill9();
    let s = site.start(id, &coll.url);
    wait_until(Duration::from_secs(20), "all shipped", || {
        let n = site.records(id).len() as u64;
        coll.c.log_of(id).len() as u64 >= n && n > 3
    });
    s.stop();
    let recs = check_journal(&site, id, &key);
    let n = recs.len() as u64;
    assert_eq!(coll.c.log_of(id), (1..=n).collect::<Vec<_>>());
}

#[test]
fn invalid_edit_while_running_keeps_the_old_schedule_airing() {
    let site = Site::new();
    let coll = collector();
    let id = "phuong-edit";
    site.write_schedule(id, 2, "tone1.wav");
    let key = site.keygen(id);
    coll.c.register(id, key);
    let s = site.start(id, &coll.url);
    wait_until(Duration::from_secs(15), "one airing", || {
        !site.records(id).is_empty()
    });
    std::fs::write(
        site.schedule_path(id),
        "id = \"phuong-edit\"\nkind = \"nonsense\"\n",
    )
    .unwrap();
    s.wait_log("schedule reload refused", Duration::from_secs(15));
    s.signal(libc::SIGHUP);
    s.wait_log("why=\"SIGHUP\"", Duration::from_secs(10));
    let before = site.records(id).len();
    wait_until(Duration::from_secs(15), "airings go on", || {
        site.records(id).len() >= before + 2
    });
    let log = s.stop();
    assert!(log.contains("keeping the running schedule"), "{log}");
    check_journal(&site, id, &key);
}

#[test]
fn refuses_to_start_on_schedule_errors_printing_them() {
    let site = Site::new();
    std::fs::create_dir_all(site.schedules()).unwrap();
    std::fs::write(site.schedule_path("bad"), "id = \"bad\"\nkind = 3\n").unwrap();
    site.keygen("bad");
    let out = Command::new(LOA)
        .args(["station", "--station", "bad", "--output", "timer"])
        .arg("--schedules")
        .arg(site.schedules())
        .arg("--data")
        .arg(site.data("bad"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:"), "{err}");
}
