//! The verdict from the database: every record the fleet produced is stored exactly once.
//!
//! **Invariant:** read-only, after the load stopped; it compares the collector's `records` rows
//! (`src/collector/store.rs`: `(station, seq)` is the key, `hash` the SHA-256 of the signed
//! bytes) with what each simulated station journaled, never with the simulator's own counters
//! of acknowledgements.

use loa::collector::db::{Conn, Location, params};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A session on the collector's database, SQLite file or PostgreSQL URL.
fn open(db: &Path) -> Result<Conn, String> {
    let at = Location::of_path(db);
    Conn::open(&at).map_err(|e| format!("{}: {e}", at.display()))
}

/// What the database holds against what the stations produced.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pub produced: u64,
    pub stored: u64,
    /// `station#seq` produced but absent, or stored with other bytes.
    pub lost: Vec<String>,
    /// `station#seq` of a row whose hash another row of the station also holds, or a row no
    /// station produced.
    pub duplicated: Vec<String>,
    /// Stations whose row count differs from what they produced.
    pub count_mismatch: Vec<String>,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.count_mismatch.is_empty()
    }
}

/// Check `db` against `produced`: station id → the hashes of its records, seq 1 first.
pub fn check(db: &Path, produced: &BTreeMap<String, Vec<String>>) -> Result<Verdict, String> {
    let c = open(db)?;
    let mut rows: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    c.for_each_row(
        "SELECT station, seq, hash FROM records ORDER BY station, seq",
        params![],
        |r| {
            let station: String = r.get(0)?;
            if produced.contains_key(&station) {
                rows.entry(station)
                    .or_default()
                    .push((r.get::<u64>(1)?, r.get(2)?));
            }
            Ok::<_, loa::collector::db::DbError>(())
        },
    )
    .map_err(|e| e.to_string())?;
    let mut v = Verdict::default();
    for (station, hashes) in produced {
        v.produced += hashes.len() as u64;
        let held = rows.remove(station).unwrap_or_default();
        v.stored += held.len() as u64;
        if held.len() != hashes.len() {
            v.count_mismatch.push(format!(
                "{station}: produced {}, stored {}",
                hashes.len(),
                held.len()
            ));
        }
        let by_seq: HashMap<u64, &str> = held.iter().map(|(s, h)| (*s, h.as_str())).collect();
        let mut seen: HashMap<&str, u64> = HashMap::new();
        for (seq, hash) in &held {
            if let Some(first) = seen.insert(hash.as_str(), *seq) {
                v.duplicated
                    .push(format!("{station}#{seq} (same bytes as #{first})"));
            }
            if *seq == 0 || *seq as usize > hashes.len() {
                v.duplicated
                    .push(format!("{station}#{seq} (not produced by the simulator)"));
            }
        }
        for (i, hash) in hashes.iter().enumerate() {
            let seq = i as u64 + 1;
            match by_seq.get(&seq) {
                Some(h) if *h == hash => {}
                Some(_) => v
                    .lost
                    .push(format!("{station}#{seq} (stored with other bytes)")),
                None => v.lost.push(format!("{station}#{seq}")),
            }
        }
    }
    Ok(v)
}

/// How many delivered receipts the database holds for `bulletin`.
pub fn receipts(db: &Path, bulletin: &str) -> Result<u64, String> {
    let c = open(db)?;
    c.query_row(
        "SELECT COUNT(*) FROM bulletin_receipts WHERE bulletin_id = ?1 AND state = 'delivered'",
        params![bulletin],
        |r| r.get::<i64>(0),
    )
    .map(|n| n as u64)
    .map_err(|e| e.to_string())
}
