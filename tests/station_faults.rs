//! `loa station` as a real process under faults: kill -9 in the cue window and a restart within
//! the grace; kill -9 mid-airing on a full disk; SIGTERM with records held in memory on a full
//! disk. The full disk is a tiny tmpfs mounted on the station's data directory (needs root, as
//! CI is; the test fails with a clear message otherwise). Output `null` (paced in real time),
//! no collector (records stay in the journal). Each test takes 15–40 s: they wait for airings.

mod station_common;

use chrono::{DateTime, Utc};
use loa::wire::{AiringRecord, Outcome};
use station_common::*;
use std::time::Duration;

/// A collector address nobody listens on.
fn dead_collector() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// The occurrence key of a daemon log line (`airing{airing=KEY}: …`).
fn key_of(line: &str) -> Option<&str> {
    let rest = &line[line.find("airing{airing=")? + "airing{airing=".len()..];
    Some(&rest[..rest.find('}')?])
}

/// Keys of the daemon's log lines containing `what` (`": cueing"`, `": on air"`, …), in order.
fn keys_with(log: &str, what: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(key_of)
        .map(str::to_owned)
        .collect()
}

/// The instant of an occurrence key (`slot@2026-12-05T07:31:42Z`).
fn instant_of(key: &str) -> DateTime<Utc> {
    let at = key.split_once('@').unwrap().1;
    DateTime::parse_from_rfc3339(at).unwrap().to_utc()
}

fn record_of<'a>(recs: &'a [AiringRecord], key: &str) -> Option<&'a AiringRecord> {
    recs.iter().find(|r| r.occurrence.as_deref() == Some(key))
}

fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        std::thread::sleep(d);
    }
}

/// Issue #10 item 8: killed after the cue and before the first sample, back within the grace:
/// the occurrence airs (it was never heard), once.
#[test]
fn kill_9_in_the_cue_window_and_back_within_the_grace_airs_the_occurrence() {
    let site = Site::new();
    let id = "phuong-cue";
    site.write_schedule(id, 6, "tone1.wav");
    let key = site.keygen(id);
    let dead = dead_collector();
    let s = site.start(id, &dead);
    // The first cue whose instant is far enough ahead to kill a second before it.
    let mut k = String::new();
    wait_until(
        Duration::from_secs(20),
        "a cue ahead of its instant",
        || {
            let log = s.log();
            match keys_with(&log, ": cueing")
                .into_iter()
                .find(|k| instant_of(k) - Utc::now() > chrono::Duration::milliseconds(1_300))
            {
                Some(found) => {
                    k = found;
                    true
                }
                None => false,
            }
        },
    );
    let at = instant_of(&k);
    sleep_until(at - chrono::Duration::milliseconds(1_000));
    let log1 = s.kill9();
    assert!(
        !keys_with(&log1, ": on air").contains(&k),
        "killed too late, {k} was already on air:\n{log1}"
    );
    let killed_at = Utc::now();
    let s = site.start(id, &dead);
    let back_in = Utc::now() - killed_at;
    wait_until(
        Duration::from_secs(15),
        "a record of the occurrence",
        || record_of(&site.records(id), &k).is_some(),
    );
    let log2 = s.stop();
    let recs = check_journal(&site, id, &key);
    let rec = record_of(&recs, &k).unwrap();
    assert_eq!(
        rec.outcome,
        Outcome::Aired,
        "{k}: killed 1 s before its instant (cued, no sample out) and back in {} ms, within its \
         2 s grace, it must still air: {rec:#?}\n--- second run:\n{log2}",
        back_in.num_milliseconds()
    );
    assert_eq!(
        keys_with(&log2, ": on air")
            .iter()
            .filter(|x| **x == k)
            .count(),
        1
    );
}

/// Issue #10 item 9: on a full disk the in-flight marker still becomes durable (the state file
/// is preallocated), so an airing killed mid-way is recorded `partial` by the restart and never
/// aired a second time, though the restart is well within its grace.
#[test]
fn kill_9_mid_airing_on_a_full_disk_never_airs_it_twice() {
    let site = Site::new();
    let id = "phuong-twice";
    // 4 s airings every 8 s with a 5 s grace: a restart 2 s into an airing is within its grace.
    site.write_schedule_grace(id, 8, "tone4.wav", "", 5);
    let fs = TinyFs::mount(&site.data(id), "1m");
    let key = site.keygen(id);
    let dead = dead_collector();
    let s = site.start(id, &dead);
    let (stop_filling, filler) = fs.keep_full();
    std::thread::sleep(Duration::from_millis(500));
    let mark = s.log().len();
    let mut k = String::new();
    wait_until(
        Duration::from_secs(20),
        "an airing on air on the full disk",
        || match keys_with(&s.log()[mark..], ": on air").first() {
            Some(found) => {
                k = found.clone();
                true
            }
            None => false,
        },
    );
    std::thread::sleep(Duration::from_millis(1_500));
    let log1 = s.kill9();
    let s = site.start(id, &dead);
    // Past the occurrence's grace (+ a second): had it aired again, it would have by now.
    sleep_until(instant_of(&k) + chrono::Duration::seconds(6));
    let log2 = s.log();
    assert!(
        !keys_with(&log2, ": on air").contains(&k),
        "{k} aired twice: killed 1.5 s into it on a full disk, the restart aired it again\n\
         --- first run:\n{log1}\n--- second run:\n{log2}"
    );
    // Room again: the crash record reaches the journal.
    stop_filling.store(true, std::sync::atomic::Ordering::Relaxed);
    filler.join().unwrap();
    wait_until(
        Duration::from_secs(20),
        "the crash record journaled",
        || record_of(&site.records(id), &k).is_some(),
    );
    let log2 = s.stop();
    let recs = check_journal(&site, id, &key);
    let rec = record_of(&recs, &k).unwrap();
    assert_eq!(rec.outcome, Outcome::Partial, "{rec:#?}\n{log2}");
    assert!(
        rec.reason
            .as_deref()
            .is_some_and(|r| r.contains("crash or power loss")),
        "{rec:#?}"
    );
}

/// Issue #10 item 10: records held in memory on a full disk survive a SIGTERM (kept in the
/// state file) and are journaled after the restart as what they were; the alive mark is kept
/// on the full disk, so no occurrence is called missed because "the station was down" unless
/// it really fell in the downtime.
#[test]
fn sigterm_on_a_full_disk_keeps_held_records_and_invents_no_downtime() {
    held_records_survive_the_stop("phuong-held", Stop::Term);
}

/// The sibling of item 10 with kill -9: held records are durable as soon as they are held.
#[test]
fn kill_9_on_a_full_disk_keeps_held_records_and_invents_no_downtime() {
    held_records_survive_the_stop("phuong-held9", Stop::Kill9);
}

/// Recovery never invents a reason: when the state file is unreadable at the restart (here:
/// overwritten with garbage after a SIGTERM with held records), the occurrences whose records
/// were lost are recorded as "not known whether it aired", never as "station was down".
#[test]
fn an_unreadable_state_file_is_said_so_not_called_downtime() {
    held_records_survive_the_stop("phuong-lost", Stop::TermAndCorruptState);
}

#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Term,
    Kill9,
    TermAndCorruptState,
}

fn held_records_survive_the_stop(id: &str, how: Stop) {
    let site = Site::new();
    site.write_schedule(id, 3, "tone1.wav");
    // 24 short items after the program: a record of ~5 KiB needs a new page of the tmpfs for
    // every append, so on the full disk records stay held (none squeezes into a page's tail).
    wav(&site.root.path().join("audio/blip.wav"), 0.02);
    let path = site.schedule_path(id);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        r#"play = ["program:tin"]"#,
        &format!(r#"play = ["program:tin"{}]"#, r#", "blip.wav""#.repeat(24)),
    );
    std::fs::write(&path, text).unwrap();
    let fs = TinyFs::mount(&site.data(id), "1m");
    let key = site.keygen(id);
    let dead = dead_collector();
    let s = site.start(id, &dead);
    wait_until(Duration::from_secs(20), "a first journaled airing", || {
        !site.records(id).is_empty()
    });
    let (stop_filling, filler) = fs.keep_full();
    s.wait_log("journal cannot be written", Duration::from_secs(20));
    let aired = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("airing recorded") && l.contains("outcome=Aired"))
            .filter_map(key_of)
            .map(str::to_owned)
            .collect()
    };
    let held = |aired: &[String]| -> Vec<String> {
        let recs = site.records(id);
        aired
            .iter()
            .filter(|k| record_of(&recs, k).is_none())
            .cloned()
            .collect()
    };
    wait_until(
        Duration::from_secs(30),
        "two aired records held in memory",
        || held(&aired(&s.log())).len() >= 2,
    );
    let log1 = if how == Stop::Kill9 {
        s.kill9()
    } else {
        s.stop()
    };
    let stopped_at = Utc::now();
    let aired = aired(&log1);
    let held_at_stop = held(&aired);
    assert!(
        !held_at_stop.is_empty(),
        "the scenario needs records held at the stop:\n{log1}"
    );
    stop_filling.store(true, std::sync::atomic::Ordering::Relaxed);
    filler.join().unwrap();
    if how == Stop::TermAndCorruptState {
        let p = site.data(id).join("state.bin");
        let n = std::fs::metadata(&p).unwrap().len() as usize;
        std::fs::write(&p, vec![0xab; n]).unwrap();
    }
    let s = site.start(id, &dead);
    let restarted_at = Utc::now();
    // Every occurrence of the gap is due, and one more airs after the restart.
    wait_until(
        Duration::from_secs(15),
        "an airing after the restart",
        || {
            site.records(id)
                .iter()
                .any(|r| r.scheduled_at.to_utc() > restarted_at && r.outcome == Outcome::Aired)
        },
    );
    let log2 = s.stop();
    let recs = check_journal(&site, id, &key);
    for k in &aired {
        let rec = record_of(&recs, k);
        if how == Stop::TermAndCorruptState && held_at_stop.contains(k) {
            // Lost with the state file: said so, not called downtime.
            assert!(
                rec.is_some_and(|r| r.outcome == Outcome::Missed
                    && r.reason
                        .as_deref()
                        .is_some_and(|t| t.starts_with("not known whether it aired")
                            && t.contains("state file unreadable"))),
                "{k}: {rec:#?}\n--- second run:\n{log2}"
            );
            continue;
        }
        assert!(
            rec.is_some_and(|r| r.outcome == Outcome::Aired),
            "{k} aired in full on the full disk (held at the stop: {}) and must be journaled \
             so: {rec:#?}\n--- first run:\n{log1}\n--- second run:\n{log2}",
            held_at_stop.contains(k)
        );
    }
    // "Station was down" only for occurrences that fell between the stop and the restart.
    for r in recs.iter().filter(|r| {
        r.reason
            .as_deref()
            .is_some_and(|t| t.starts_with("station was down"))
    }) {
        let at = r.scheduled_at.to_utc();
        assert!(
            at > stopped_at - chrono::Duration::seconds(1) && at < restarted_at,
            "{r:#?} is called missed because the station was down, but it was running then \
             (stopped {stopped_at}, restarted {restarted_at})\n--- first run:\n{log1}"
        );
    }
}

/// Issue #10 item 9, the other branch: a station started on a disk already full cannot create
/// its state file, so no in-flight marker can be made durable: it does not start airings (each
/// is recorded `failed` with why) rather than risk airing one twice; with room again it airs.
#[test]
fn no_durable_marker_means_no_start_then_airs_once_there_is_room() {
    let site = Site::new();
    let id = "phuong-nostate";
    site.write_schedule(id, 3, "tone1.wav");
    let fs = TinyFs::mount(&site.data(id), "1m");
    let key = site.keygen(id);
    let (stop_filling, filler) = fs.keep_full();
    std::thread::sleep(Duration::from_millis(300));
    let dead = dead_collector();
    let s = site.start(id, &dead);
    let refused = |log: &str| {
        log.lines()
            .filter(|l| l.contains("airing recorded") && l.contains("outcome=Failed"))
            .count()
    };
    wait_until(Duration::from_secs(20), "two airings refused", || {
        refused(&s.log()) >= 2
    });
    let log = s.log();
    assert!(
        keys_with(&log, ": on air").is_empty(),
        "aired without a durable in-flight marker:\n{log}"
    );
    assert!(
        log.contains("not started: the in-flight marker cannot be made durable"),
        "{log}"
    );
    stop_filling.store(true, std::sync::atomic::Ordering::Relaxed);
    filler.join().unwrap();
    wait_until(Duration::from_secs(20), "an airing with room again", || {
        site.records(id).iter().any(|r| r.outcome == Outcome::Aired)
    });
    let log = s.stop();
    let recs = check_journal(&site, id, &key);
    let failed: Vec<_> = recs
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .collect();
    assert!(failed.len() >= 2, "{recs:#?}\n{log}");
    for r in failed {
        assert!(
            r.reason.as_deref().is_some_and(
                |t| t.starts_with("not started: the in-flight marker cannot be made durable")
            ),
            "{r:#?}"
        );
        assert!(!keys_with(&log, ": on air").contains(r.occurrence.as_ref().unwrap()));
    }
}
