//! A centre-managed station's side of distribution (station::sync): it airs its active version
//! from `versions/<N>/` (each record naming that version), a new version arriving during an airing waits for that airing's end,
//! and a broken `active` file refuses the start naming it.
//!
//! Versions are staged here through the station's own store (`Store::admit` verifies each file,
//! `Store::stage` builds the version), as the sync does after downloading; the manifest fetch
//! and downloads against a real collector are covered by tests/station_sync_e2e.rs.

mod station_common;

use loa::station::sync::{Store, Wanted, WantedFile};
use loa::wire::Outcome;
use sha2::{Digest, Sha256};
use station_common::{LOA, Site};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Put `files` (path under the audio root, bytes) into the station's content store, verified,
/// and stage version `version` with `schedule_text`.
fn stage(data: &Path, station: &str, version: u64, schedule_text: &str, files: &[(&str, Vec<u8>)]) {
    let store = Store::new(data);
    std::fs::create_dir_all(store.staging_dir()).unwrap();
    let mut wanted = Vec::new();
    for (path, bytes) in files {
        let w = WantedFile {
            path: (*path).into(),
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
        };
        if !store.holds(&w.sha256) {
            std::fs::write(store.part(&w.sha256), bytes).unwrap();
            store.admit(&w).unwrap().unwrap();
        }
        wanted.push(w);
    }
    wanted.sort_by(|a, b| a.path.cmp(&b.path));
    store
        .stage(
            &Wanted {
                station: station.into(),
                version,
                schedule_text: schedule_text.into(),
                files: wanted,
            },
            b"{}",
        )
        .unwrap();
}

/// The schedule text [`Site::write_schedule_grace`] writes (a slot every `step` seconds over the
/// next minutes playing `file`), taken out of the site's schedules/ so only the version has it.
fn schedule_text(site: &Site, id: &str, step: u32, file: &str) -> String {
    site.write_schedule_grace(id, step, file, "", 2);
    let p = site.schedule_path(id);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    text
}

#[test]
fn a_managed_station_airs_its_active_version_from_its_own_store() {
    let site = Site::new();
    let id = "phuong-sync-a";
    site.keygen(id);
    let tone = std::fs::read(site.root.path().join("audio/tone1.wav")).unwrap();
    let text = schedule_text(&site, id, 3, "cchc/2027-01.wav");
    stage(&site.data(id), id, 1, &text, &[("cchc/2027-01.wav", tone)]);
    Store::new(&site.data(id)).write_active(1).unwrap();
    // The site's schedules/ has no schedule for this station and its audio/ no such file: what
    // airs can only come from versions/1/.
    let st = site.start(id, "http://127.0.0.1:9");
    station_common::wait_until(Duration::from_secs(30), "an airing from version 1", || {
        site.records(id).iter().any(|r| r.outcome == Outcome::Aired)
    });
    let log = st.stop();
    assert!(log.contains("centre-managed station"), "{log}");
    let aired: Vec<_> = site
        .records(id)
        .into_iter()
        .filter(|r| r.outcome == Outcome::Aired)
        .collect();
    assert!(!aired.is_empty());
    for r in &aired {
        assert_eq!(r.items[0].path, "cchc/2027-01.wav", "{r:?}");
        // Each record names the version it aired under.
        assert_eq!(r.schedule_version, Some(1), "{r:?}");
    }
}

#[test]
fn a_broken_active_file_refuses_the_start_naming_it() {
    let site = Site::new();
    let id = "phuong-sync-b";
    site.keygen(id);
    std::fs::write(site.data(id).join("active"), "bảy\n").unwrap();
    let out = Command::new(LOA)
        .args(["station", "--station", id, "--output", "null", "--data"])
        .arg(site.data(id))
        .env("LOA_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("active") && err.contains("bảy") && err.contains("versions/"),
        "{err}"
    );
}

/// A version handed to the daemon while an airing is on air is switched to only after that
/// airing's record is journaled, complete; the airings after it play the new version's file.
#[tokio::test(flavor = "current_thread")]
async fn a_new_version_arriving_during_an_airing_waits_for_its_end() {
    use loa::station::playout::TimerPlayout;
    use loa::station::sync::SwitchRequest;
    use loa::station::{Daemon, StationConfig, bridge_events};
    use std::sync::Arc;

    let site = Site::new();
    let id = "phuong-sync-c";
    let data = site.data(id);
    loa::keys::generate(&data, false).unwrap();
    let tone4 = std::fs::read(site.root.path().join("audio/tone4.wav")).unwrap();
    let tone1 = std::fs::read(site.root.path().join("audio/tone1.wav")).unwrap();
    // Version 1 airs a 4-second file every 6 seconds; version 2 a 1-second one.
    stage(
        &data,
        id,
        1,
        &schedule_text(&site, id, 6, "v1/long.wav"),
        &[("v1/long.wav", tone4)],
    );
    stage(
        &data,
        id,
        2,
        &schedule_text(&site, id, 6, "v2/short.wav"),
        &[("v2/short.wav", tone1)],
    );
    let store = Store::new(&data);
    store.write_active(1).unwrap();
    let cfg = StationConfig {
        station: id.into(),
        schedule_path: store.schedule_path(1, id),
        audio_root: store.audio_root(1),
        data_dir: data.clone(),
        collector_urls: Vec::new(),
        heartbeat_secs: None,
        keep_days: loa::station::DEFAULT_KEEP_DAYS,
    };
    let (player, events) = TimerPlayout::spawn().unwrap();
    let mut daemon =
        Daemon::open(cfg, Arc::new(loa::clock::SystemClock), Box::new(player)).unwrap();
    let (_health_tx, health_rx) = tokio::sync::watch::channel(Default::default());
    let switch = daemon.switch_requests(health_rx);
    let mut status = daemon.status();
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4);
    let run = daemon.run(bridge_events(events), ctl_rx);
    let drive = async {
        // Wait until an airing of version 1 is on air, then hand over version 2.
        tokio::time::timeout(
            Duration::from_secs(30),
            status.wait_for(|s| s.now_airing.is_some()),
        )
        .await
        .expect("an airing within 30 s")
        .unwrap();
        // The status names an airing from its cue, up to the lead (2 s) before its first sample:
        // wait until it is surely on air (the file lasts 4 s).
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let asked = chrono::Utc::now();
        let (reply, answer) = tokio::sync::oneshot::channel();
        switch
            .send(SwitchRequest {
                version: 2,
                staged: None,
                reply,
            })
            .await
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(20), answer)
            .await
            .expect("the switch within 20 s")
            .unwrap();
        let switched = chrono::Utc::now();
        res.unwrap();
        // Let version 2 air once.
        tokio::time::sleep(Duration::from_secs(8)).await;
        ctl_tx.send(loa::station::Control::Shutdown).await.unwrap();
        (asked, switched)
    };
    let (result, (asked, switched)) = tokio::join!(run, drive);
    result.unwrap();
    assert_eq!(store.active().unwrap(), Some(2));
    let records = site.records(id);
    // The airing on air when version 2 arrived: journaled complete (aired), ending before the
    // switch.
    let during = records
        .iter()
        .find(|r| r.end.is_some_and(|e| e >= asked))
        .unwrap_or_else(|| panic!("no airing ends after the request at {asked}: {records:#?}"));
    assert!(
        during.actual_start.unwrap() <= asked,
        "{during:#?} / {asked}"
    );
    assert_eq!(during.outcome, Outcome::Aired, "{during:#?}");
    assert_eq!(during.items[0].path, "v1/long.wav");
    assert_eq!(during.schedule_version, Some(1), "{during:#?}");
    assert!(during.end.unwrap() <= switched, "{during:#?} / {switched}");
    // Nothing of version 1 started after the switch; version 2 aired, and its records say so.
    for r in &records {
        if r.actual_start.is_some_and(|s| s > switched) {
            assert_eq!(r.items[0].path, "v2/short.wav", "{r:#?}");
            assert_eq!(r.schedule_version, Some(2), "{r:#?}");
        }
    }
    assert!(
        records
            .iter()
            .any(|r| r.outcome == Outcome::Aired && r.items[0].path == "v2/short.wav"),
        "{records:#?}"
    );
}

/// The agent hands the daemon the schedule it validated (the switch reads no schedule file:
/// version 2's is gone from disk when the switch happens), and a version's loudness target
/// reaches the real player on the switch and on a SIGHUP reload: what airs is measured at each
/// target in turn (-20 LUFS, then -32, then -20 again).
#[tokio::test(flavor = "current_thread")]
async fn a_switch_takes_the_agents_schedule_and_its_loudness_target_as_does_a_reload() {
    use loa::station::playout::PlayerPlayout;
    use loa::station::sync::SwitchRequest;
    use loa::station::sync::agent::validate_staged;
    use loa::station::{Control, Daemon, StationConfig, bridge_events};
    use std::sync::Arc;

    let site = Site::new();
    let id = "phuong-sync-l";
    let data = site.data(id);
    loa::keys::generate(&data, false).unwrap();
    let tone = std::fs::read(site.root.path().join("audio/tone1.wav")).unwrap();
    let loud = |lufs: i32| format!("[loudness]\nintegrated_lufs = {lufs}\n");
    let v1 = {
        site.write_schedule_grace(id, 4, "a.wav", &loud(-20), 2);
        let p = site.schedule_path(id);
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        t
    };
    let v2 = v1.replace(&loud(-20), &loud(-32));
    assert_ne!(v1, v2);
    stage(&data, id, 1, &v1, &[("a.wav", tone.clone())]);
    stage(&data, id, 2, &v2, &[("a.wav", tone)]);
    let store = Store::new(&data);
    store.write_active(1).unwrap();
    let cfg = StationConfig {
        station: id.into(),
        schedule_path: store.schedule_path(1, id),
        audio_root: store.audio_root(1),
        data_dir: data.clone(),
        collector_urls: Vec::new(),
        heartbeat_secs: None,
        keep_days: loa::station::DEFAULT_KEEP_DAYS,
    };
    let loudness = loa::loudness::LoudnessSettings {
        target_lufs: -20.0,
        cache_dir: Some(data.join("loudness")),
        ..Default::default()
    };
    let (player, events) =
        PlayerPlayout::spawn(loa::output::OutputConfig::new("null"), loudness).unwrap();
    let mut daemon =
        Daemon::open(cfg, Arc::new(loa::clock::SystemClock), Box::new(player)).unwrap();
    let (_health_tx, health_rx) = tokio::sync::watch::channel(Default::default());
    let switch = daemon.switch_requests(health_rx);
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4);
    let run = daemon.run(bridge_events(events), ctl_rx);
    // The measured loudness of the airings that started after `t`, once there are `n`.
    let aired_after = |t: chrono::DateTime<chrono::Utc>| {
        site.records(id)
            .into_iter()
            .filter(|r| r.outcome == Outcome::Aired && r.actual_start.is_some_and(|s| s > t))
            .filter_map(|r| r.evidence.and_then(|e| e.integrated_lufs))
            .collect::<Vec<f64>>()
    };
    let wait_aired = |t: chrono::DateTime<chrono::Utc>, what: &'static str| {
        let aired_after = &aired_after;
        async move {
            let t0 = std::time::Instant::now();
            loop {
                let got = aired_after(t);
                if !got.is_empty() {
                    return got[0];
                }
                assert!(t0.elapsed() < Duration::from_secs(30), "no airing {what}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let drive = async {
        let start = chrono::Utc::now();
        let first = wait_aired(start, "of version 1").await;
        // The agent's validation (its clock's date), then version 2's file leaves the disk:
        // the daemon can only take the schedule it is handed.
        let staged = validate_staged(&store, id, 2, chrono::Utc::now()).unwrap();
        std::fs::remove_file(store.schedule_path(2, id)).unwrap();
        let (reply, answer) = tokio::sync::oneshot::channel();
        switch
            .send(SwitchRequest {
                version: 2,
                staged: Some(Box::new(staged)),
                reply,
            })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), answer)
            .await
            .expect("the switch within 20 s")
            .unwrap()
            .unwrap();
        let switched = chrono::Utc::now();
        let second = wait_aired(switched, "of version 2").await;
        // An operator edits the active version's file back to -20 LUFS and sends SIGHUP.
        std::fs::write(store.schedule_path(2, id), &v1).unwrap();
        ctl_tx.send(Control::Reload).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // An airing already cued keeps its level: count from past the cue lead.
        let reloaded = chrono::Utc::now() + chrono::Duration::seconds(3);
        let third = wait_aired(reloaded, "after the reload").await;
        ctl_tx.send(Control::Shutdown).await.unwrap();
        (first, second, third)
    };
    let (result, (first, second, third)) = tokio::join!(run, drive);
    result.unwrap();
    assert_eq!(store.active().unwrap(), Some(2));
    assert!(
        (first - -20.0).abs() < 1.5,
        "version 1 aired at {first} LUFS"
    );
    assert!(
        (second - -32.0).abs() < 1.5,
        "version 2 aired at {second} LUFS"
    );
    assert!(
        (third - -20.0).abs() < 1.5,
        "after the reload: {third} LUFS"
    );
}
