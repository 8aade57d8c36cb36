//! The fleet simulator's core against the real collector binary (docs/sim.md): 20 stations with
//! real keys air a dense plan at 1,200× for 20 s, an emergency bulletin goes to all, and the
//! collector is killed (SIGKILL) mid-run and restarted on the same port and state; afterwards the
//! database holds every record the stations produced exactly once, and every station's verified
//! receipt of the bulletin.

#[path = "../examples/sim_fleet/mod.rs"]
#[allow(dead_code)]
mod sim;

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_stations_lose_nothing_across_a_collector_kill() {
    let cfg = sim::Config {
        stations: 20,
        // 20 s of load; 1,200×: 05:00 → 11:40 simulated, 8 items of 15 min per session.
        minutes: 20.0 / 60.0,
        speed: 1200.0,
        items: 8,
        heartbeat_secs: 2.0,
        timeout_secs: 10.0,
        per_addr: 5,
        bulletin_at: Some(3.0 / 60.0),
        kill_at: Some(8.0 / 60.0),
        down_secs: 2.0,
        drain_secs: 20.0,
        loa: PathBuf::from(env!("CARGO_BIN_EXE_loa")),
        ..sim::Config::default()
    };
    let report = sim::run(cfg).await.expect("the simulation runs");
    let v = report.verdict.as_ref().expect("the database was checked");
    assert!(v.produced >= 20 * 8, "a plan of substance: {v:?}");
    assert!(
        v.clean(),
        "lost {:?}, duplicated {:?}, counts {:?}",
        v.lost,
        v.duplicated,
        v.count_mismatch
    );
    assert_eq!(report.unacked, 0);
    assert!(
        report.restart.is_some(),
        "the collector was killed and restarted"
    );
    // The kill hit shipping: the 06:00 stations journal records at 07:45 and 08:00 simulated
    // (8.25 s and 9 s real), while the collector is down (8 s to 10 s).
    let batch = report
        .summaries
        .iter()
        .find(|(k, _)| *k == sim::stats::Kind::Batch)
        .map(|(_, s)| s.clone())
        .expect("batch figures");
    assert!(batch.errors > 0, "{batch:?}");
    let b = report.bulletin.as_ref().expect("the bulletin was sent");
    assert_eq!(b.verified, 20, "{b:?}");
    assert_eq!(b.receipted, 20, "{b:?}");
    assert_eq!(b.stored, Some(20), "{b:?}");
}
