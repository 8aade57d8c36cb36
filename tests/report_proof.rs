//! What `loa verify` proves about a JSON export, against the real binary: an export of March 2019
//! from a collector holding February, March and April records, then tampered with the way a
//! collector operator could (records cut from the start or end of a run, reordered, a count
//! forged, a station dropped, the format downgraded, keys swapped). Each tamper must fail,
//! naming the station; what cannot be proven is stated, not passed silently.

mod collector_common;

use chrono::{DateTime, FixedOffset, TimeZone};
use collector_common::*;
use loa::clock::ManualClock;
use loa::collector::http::HttpConfig;
use loa::report::JsonExport;
use loa::wire::Outcome;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_loa");

/// `y-m-d h:30` at +07.
fn when(m: u32, d: u32, h: u32) -> DateTime<FixedOffset> {
    tz().with_ymd_and_hms(2019, m, d, h, 30, 0).unwrap()
}

/// Records of `st` at each (month, day) at 05:30, as one batch.
fn records(st: &mut TestStation, days: &[(u32, u32)]) -> Vec<loa::wire::SignedRecord> {
    days.iter()
        .map(|&(m, d)| st.record(None, when(m, d, 5), Outcome::Aired, 120.0, 0))
        .collect()
}

/// Run `loa verify` on `doc` (written to a file), with the registry when `config` is given.
fn verify(dir: &Path, doc: &JsonExport, config: Option<&Path>) -> (i32, String) {
    let file = dir.join("tampered.json");
    std::fs::write(&file, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    verify_file(&file, config)
}

fn verify_file(file: &Path, config: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("verify").arg(file);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn station<'a>(doc: &'a mut JsonExport, id: &str) -> &'a mut loa::report::JsonStation {
    doc.stations.iter_mut().find(|s| s.id == id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_proves_where_each_run_starts_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    // a: Feb, Feb, 4 × March (seq 3..6), April. b: March only, from seq 1. c: nothing in March,
    // bracketed by February and April. d: February only (nothing after March yet).
    let mut a = TestStation::new("phuong-a", 31);
    let mut b = TestStation::new("phuong-b", 32);
    let mut c = TestStation::new("phuong-c", 33);
    let mut d = TestStation::new("phuong-d", 34);
    let ra = records(
        &mut a,
        &[(2, 27), (2, 28), (3, 1), (3, 2), (3, 3), (3, 4), (4, 1)],
    );
    let rb = records(&mut b, &[(3, 5), (3, 6)]);
    let rc = records(&mut c, &[(2, 10), (4, 10)]);
    let rd = records(&mut d, &[(2, 11)]);
    let reg = write_registry(dir.path(), &[&a, &b, &c, &d]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(
        when(4, 15, 12).with_timezone(&chrono::Utc),
    ));
    let srv = start(
        &reg,
        &db,
        FixedPlans::default(),
        HttpConfig::default(),
        clock,
    )
    .await;
    let cl = client();
    for (st, recs) in [(&a, &ra), (&b, &rb), (&c, &rc), (&d, &rd)] {
        let (code, v) = post(
            &cl,
            &format!("{}/api/v1/stations/{}/records", srv.base, st.id),
            serde_json::to_vec(&batch(recs)).unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{v}");
    }
    let json = cl
        .get(format!("{}/api/v1/reports/2019-03.json", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    srv.stop().await;
    let original: JsonExport = serde_json::from_str(&json).unwrap();
    let fresh = || -> JsonExport { serde_json::from_str(&json).unwrap() };
    assert_eq!(original.version, 2);
    let sa = &original.stations[0];
    assert_eq!(sa.id, "phuong-a");
    assert_eq!(sa.records.len(), 4);
    assert_eq!(sa.anchor.as_ref().unwrap().hash, ra[1].hash);
    assert_eq!(sa.successor.as_ref().unwrap().hash, ra[6].hash);
    assert_eq!(sa.held_through, Some(7));
    let sb = &original.stations[1];
    assert!(sb.anchor.is_none() && sb.successor.is_none());
    let sc = &original.stations[2];
    assert!(sc.records.is_empty());
    assert_eq!(sc.anchor.as_ref().unwrap().hash, rc[0].hash);
    assert_eq!(sc.successor.as_ref().unwrap().hash, rc[1].hash);

    // As exported: verified; b and d's ends are stated as limits, not passed silently.
    let file = dir.path().join("2019-03.json");
    std::fs::write(&file, &json).unwrap();
    let (code, out) = verify_file(&file, Some(&reg));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok   phuong-a: 4 records, seq 3..6"), "{out}");
    assert!(out.contains("ok   phuong-c: no record in the run"), "{out}");
    assert!(
        out.contains("note phuong-b: end proven only up to seq 2"),
        "{out}"
    );
    assert!(
        out.contains("note phuong-d: end proven only up to seq 1"),
        "{out}"
    );
    assert!(
        !out.contains("note phuong-a") && !out.contains("note phuong-c"),
        "{out}"
    );

    let check = |doc: &JsonExport, config: Option<&Path>, expect: &[&str]| {
        let (code, out) = verify(dir.path(), doc, config);
        assert_eq!(code, 1, "{out}");
        for e in expect {
            assert!(out.contains(e), "expected `{e}` in:\n{out}");
        }
        assert!(out.contains("NOT verified"), "{out}");
    };

    // The first March record deleted and the count decremented.
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-a");
    s.records.remove(0);
    s.records_in_period -= 1;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-a: start not proven: seq 3..3 missing between the anchor (seq 2) and the first record (seq 4)",
        ],
    );
    // ... and the deleted record offered as the anchor: it is in the period.
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-a");
    let first = s.records.remove(0);
    s.records_in_period -= 1;
    s.anchor = Some(first);
    check(
        &doc,
        None,
        &[
            "FAIL phuong-a: start not proven: the anchor (seq 3) is scheduled on 01/03/2019, not before the period",
        ],
    );
    // ... and the anchor dropped too.
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-a");
    s.records.remove(0);
    s.records_in_period -= 1;
    s.anchor = None;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-a: start not proven: the export carries no anchor (seq 3) before the first record (seq 4)",
        ],
    );
    // A station whose run starts at seq 1, its first record deleted.
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-b");
    s.records.remove(0);
    s.records_in_period -= 1;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-b: start not proven: the export carries no anchor (seq 1) before the first record (seq 2)",
        ],
    );

    // The last March record deleted and the count decremented, the April record following it.
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-a");
    s.records.pop();
    s.records_in_period -= 1;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-a: end not proven: seq 6..6 missing between the last record (seq 5) and the successor (seq 7)",
        ],
    );
    // ... and the deleted record offered as the successor: it is in the period.
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-a");
    s.successor = s.records.pop();
    s.records_in_period -= 1;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-a: end not proven: the successor (seq 6) is scheduled on 04/03/2019, not after the period",
        ],
    );
    // ... and the successor dropped too, the collector's count left: a gap it must explain.
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-a");
    s.records.pop();
    s.records_in_period -= 1;
    s.successor = None;
    check(
        &doc,
        None,
        &["FAIL phuong-a: end not proven: the collector held records up to seq 7 but not seq 6"],
    );
    // ... and its unsigned `held_through` lowered as well: the documented limit. Nothing signed
    // by the station says seq 6 exists, so this cannot fail; it is stated, not hidden.
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-a");
    s.records.pop();
    s.records_in_period -= 1;
    s.successor = None;
    s.held_through = Some(5);
    let (code, out) = verify(dir.path(), &doc, None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("note phuong-a: end proven only up to seq 5"),
        "{out}"
    );

    // Anchors and successors signed by someone else, or altered, are refused as such.
    let mut doc = fresh();
    let other = station(&mut doc, "phuong-c").anchor.clone();
    station(&mut doc, "phuong-a").anchor = other;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-a: anchor (seq 1): signature does not verify with the public key the export gives for `phuong-a`",
        ],
    );
    let mut doc = fresh();
    let other = station(&mut doc, "phuong-c").successor.clone();
    station(&mut doc, "phuong-a").successor = other;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-a: successor (seq 2): signature does not verify with the public key the export gives for `phuong-a`",
        ],
    );
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-a");
    let mut anchor = s.anchor.clone().unwrap();
    anchor.hash = s.records[0].hash.clone();
    s.anchor = Some(anchor);
    check(
        &doc,
        None,
        &["FAIL phuong-a: anchor (seq 2): record hash mismatch"],
    );

    // A station with no March record: its anchor dropped, or its successor replaced.
    let mut doc = fresh();
    station(&mut doc, "phuong-c").anchor = None;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-c: start not proven: no record in the period and no anchor, but the successor is seq 2",
        ],
    );
    let mut doc = fresh();
    let s = station(&mut doc, "phuong-c");
    s.successor = s.anchor.clone();
    check(
        &doc,
        None,
        &[
            "FAIL phuong-c: end not proven: the successor (seq 1) is scheduled on 10/02/2019, not after the period",
        ],
    );

    // Reordered records; a forged count.
    let mut doc = fresh();
    station(&mut doc, "phuong-a").records.swap(1, 2);
    check(
        &doc,
        None,
        &["FAIL phuong-a: seq 4 after seq 5: out of order or repeated"],
    );
    let mut doc = fresh();
    station(&mut doc, "phuong-a").records_in_period += 1;
    check(
        &doc,
        None,
        &["FAIL phuong-a: 4 records in the period, the export states 5"],
    );

    // A whole station deleted: caught against the registry; from the file alone it cannot be.
    let mut doc = fresh();
    doc.stations.retain(|s| s.id != "phuong-c");
    check(
        &doc,
        Some(&reg),
        &["FAIL registered station `phuong-c` is missing from the export"],
    );
    assert_eq!(verify(dir.path(), &doc, None).0, 0);

    // Keys: another station's key names the station and the key it used.
    let mut doc = fresh();
    let kb = station(&mut doc, "phuong-b").public_key.clone();
    station(&mut doc, "phuong-a").public_key = kb.clone();
    let hint: String = kb.chars().take(12).collect();
    check(
        &doc,
        Some(&reg),
        &[
            &format!(
                "FAIL phuong-a: record #1 (seq 3): signature does not verify with the public key the export gives for `phuong-a` ({hint}…)"
            ),
            &format!(
                "FAIL phuong-a: the export's public key for `phuong-a` ({hint}…) differs from the key registered for it"
            ),
        ],
    );
    // A record of another station filed under this one.
    let mut doc = fresh();
    let foreign = station(&mut doc, "phuong-b").records[0].clone();
    station(&mut doc, "phuong-a").records[0] = foreign;
    check(
        &doc,
        None,
        &[
            "FAIL phuong-a: record #1 (seq 1): signature does not verify with the public key the export gives for `phuong-a`",
        ],
    );

    // The format downgraded to version 1 (no anchors): read, and failed as not provable.
    let mut doc = fresh();
    doc.version = 1;
    for s in &mut doc.stations {
        s.anchor = None;
        s.successor = None;
        s.held_through = None;
    }
    check(
        &doc,
        None,
        &[
            "FAIL older export (format version 1): the start and end of each station's range are not provable",
        ],
    );

    // Unreadable input: exit 2, nothing verified.
    let (code, out) = verify_file(&dir.path().join("missing.json"), None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot read"), "{out}");
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{not json").unwrap();
    let (code, out) = verify_file(&junk, None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not a loa JSON export"), "{out}");
    let mut doc = fresh();
    doc.version = 99;
    let (code, out) = verify(dir.path(), &doc, None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("version 99"), "{out}");
    std::fs::write(&junk, [0xffu8, 0xfe, 0x00]).unwrap();
    assert_eq!(verify_file(&junk, None).0, 2);
    let (code, out) = verify_file(&file, Some(&dir.path().join("no-registry.toml")));
    assert_eq!(code, 2, "{out}");
}
