//! The offline verification of a JSON export (`loa verify`).
//!
//! **Invariant:** a verdict is OK only when every record verifies against the key the export
//! gives, the run is contiguous and chained, and (version 2) its start and end are proven;
//! what cannot be proven without anything being wrong is a note, not a pass.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use super::{EXPORT_FORMAT, EXPORT_VERSION, JsonExport, JsonStation, Period, StationDirectory};
use crate::wire::{GENESIS_HASH, SignedRecord, decode_public_key};

/// What `loa verify` found for one station.
#[derive(Debug, Clone, Serialize)]
pub struct StationVerdict {
    pub id: String,
    pub records: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// What is wrong: the export fails verification.
    pub problems: Vec<String>,
    /// What the export cannot prove for this station, without anything being wrong (the end of
    /// a run that nothing follows yet): stated, not failed.
    pub notes: Vec<String>,
}

/// What `loa verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub period: Option<Period>,
    /// The export's format version, when it could be read.
    pub version: Option<u32>,
    pub stations: Vec<StationVerdict>,
    /// File-level problems (older format, key differs from the registry, station missing...).
    pub problems: Vec<String>,
    /// Set when the input is not a readable export at all (not JSON, not a `loa-airing-log`, a
    /// version this build does not read): nothing was verified (`loa verify` exits 2).
    pub input_error: Option<String>,
}

impl Verdict {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.input_error.is_none()
            && self.problems.is_empty()
            && self.stations.iter().all(|s| s.problems.is_empty())
    }
}

/// Export format versions [`verify_export`] reads: 1 (before the start and end of each run were
/// proven: read, verified record by record, and failed as not provably complete) and the current.
pub const EXPORT_VERSIONS_READ: [u32; 2] = [1, EXPORT_VERSION];

/// A station-signed record of the export checked against the station's key: hash, strict
/// Ed25519 signature (`SignedRecord::verify`, the rule ingest uses), and that it is the
/// station's. Problems name the station, the record and the key.
fn check_signed(
    sr: &SignedRecord,
    key: &ed25519_dalek::VerifyingKey,
    station: &str,
    what: &str,
    key_text: &str,
) -> Result<crate::wire::AiringRecord, String> {
    let seq = sr
        .parse()
        .map(|r| format!(" (seq {})", r.seq))
        .unwrap_or_default();
    let rec = sr.verify(key).map_err(|e| match e {
        crate::wire::WireError::BadSignature { .. } => format!(
            "{what}{seq}: signature does not verify with the public key the export gives for \
             `{station}` ({})",
            key_hint(key_text)
        ),
        e => format!("{what}{seq}: {e}"),
    })?;
    if rec.station != station {
        return Err(format!(
            "{what}{seq}: a record of station `{}` filed under `{station}`",
            rec.station
        ));
    }
    Ok(rec)
}

/// The first characters of a base64 key, enough to tell keys apart in a message.
fn key_hint(key: &str) -> String {
    let k = key.trim();
    match k.char_indices().nth(12) {
        Some((i, _)) => format!("{}…", &k[..i]),
        None => k.to_string(),
    }
}

/// Verify a JSON export offline: per station, every record's hash and strict signature against
/// the included public key (and, when `registry` is given, that key against the registered one),
/// the station field, consecutive sequence numbers (no gaps), the hash chain, the count of
/// records in the period, and (version 2) where the run starts and ends: the anchor before it
/// and the successor after it, each signed by the station, chained to the run and scheduled
/// outside the period. What this proves and what it cannot is in `docs/reports.md`.
pub fn verify_export(text: &str, registry: Option<&dyn StationDirectory>) -> Verdict {
    let mut verdict = Verdict {
        period: None,
        version: None,
        stations: Vec::new(),
        problems: Vec::new(),
        input_error: None,
    };
    let doc: JsonExport = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            verdict.input_error = Some(format!("not a loa JSON export: {e}"));
            return verdict;
        }
    };
    if doc.format != EXPORT_FORMAT || !EXPORT_VERSIONS_READ.contains(&doc.version) {
        verdict.input_error = Some(format!(
            "format `{}` version {} is not {EXPORT_FORMAT} version {} (this build reads versions {:?})",
            doc.format, doc.version, EXPORT_VERSION, EXPORT_VERSIONS_READ
        ));
        return verdict;
    }
    verdict.version = Some(doc.version);
    let proves_bounds = doc.version >= 2;
    if !proves_bounds {
        verdict.problems.push(format!(
            "older export (format version {}): the start and end of each station's range are \
             not provable (it carries no record before or after each run); re-export the period \
             with this version of loa",
            doc.version
        ));
    }
    let period = &doc.period;
    let mut seen = BTreeMap::new();
    for st in &doc.stations {
        let mut v = StationVerdict {
            id: st.id.clone(),
            records: st.records.len(),
            first_seq: None,
            last_seq: None,
            problems: Vec::new(),
            notes: Vec::new(),
        };
        if seen.insert(st.id.clone(), ()).is_some() {
            v.problems.push("station listed twice".into());
        }
        let key = match decode_public_key(&st.public_key) {
            Ok(k) => k,
            Err(e) => {
                v.problems.push(format!(
                    "the export's public key for `{}` ({}): {e}",
                    st.id,
                    key_hint(&st.public_key)
                ));
                verdict.stations.push(v);
                continue;
            }
        };
        if let Some(reg) = registry {
            match reg.entry(&st.id) {
                Some(e) if e.key == key => {}
                Some(e) => v.problems.push(format!(
                    "the export's public key for `{}` ({}) differs from the key registered for it \
                     ({})",
                    st.id,
                    key_hint(&st.public_key),
                    key_hint(&e.public_key)
                )),
                None => v
                    .problems
                    .push(format!("station `{}` is not in the registry", st.id)),
            }
        }
        let check =
            |sr: &SignedRecord, what: &str| check_signed(sr, &key, &st.id, what, &st.public_key);
        let mut prev: Option<(u64, String)> = None;
        let mut in_period = 0u64;
        // The run's first record (seq, prev_hash) and last (seq, hash), when they verify.
        let mut head: Option<(u64, String)> = None;
        let mut tail: Option<(u64, String)> = None;
        let n = st.records.len();
        for (i, sr) in st.records.iter().enumerate() {
            let rec = match check(sr, &format!("record #{}", i + 1)) {
                Ok(r) => r,
                Err(p) => {
                    v.problems.push(p);
                    prev = None;
                    continue;
                }
            };
            if period.contains(&rec.scheduled_at) {
                in_period += 1;
            }
            if i == 0 {
                head = Some((rec.seq, rec.prev_hash.clone()));
            }
            if i + 1 == n {
                tail = Some((rec.seq, sr.hash.clone()));
            }
            v.first_seq.get_or_insert(rec.seq);
            v.last_seq = Some(rec.seq);
            match &prev {
                Some((pseq, phash)) => {
                    if rec.seq != pseq + 1 {
                        v.problems.push(if rec.seq > pseq + 1 {
                            format!("sequence gap: seq {}..{} missing", pseq + 1, rec.seq - 1)
                        } else {
                            format!(
                                "seq {} after seq {}: out of order or repeated",
                                rec.seq, pseq
                            )
                        });
                    } else if &rec.prev_hash != phash {
                        v.problems.push(format!(
                            "hash chain broken between seq {} and seq {}",
                            pseq, rec.seq
                        ));
                    }
                }
                None if i == 0 && rec.seq == 1 && rec.prev_hash != GENESIS_HASH => {
                    v.problems
                        .push("seq 1 does not start from the genesis hash".into());
                }
                None => {}
            }
            prev = Some((rec.seq, sr.hash.clone()));
        }
        if in_period != st.records_in_period {
            v.problems.push(format!(
                "{} records in the period, the export states {}",
                in_period, st.records_in_period
            ));
        }
        if proves_bounds {
            check_bounds(st, period, &check, head, tail, &mut v, doc.generated_at);
        }
        verdict.stations.push(v);
    }
    if let Some(only) = &doc.station {
        // A one-station export: that station, and no other.
        for id in seen.keys().filter(|id| *id != only) {
            verdict.problems.push(format!(
                "station `{id}` is in an export of station `{only}` alone"
            ));
        }
        if !seen.contains_key(only) {
            verdict
                .problems
                .push(format!("station `{only}` is missing from its own export"));
        }
    } else if let Some(reg) = registry {
        for id in reg.entries().into_iter().map(|e| &e.id) {
            if !seen.contains_key(id) {
                verdict.problems.push(format!(
                    "registered station `{id}` is missing from the export"
                ));
            }
        }
    }
    verdict.period = Some(doc.period);
    verdict
}

/// The start and end of one station's run (export version 2): `head` is the run's first record
/// (seq, prev_hash) and `tail` its last (seq, hash), when they verified.
fn check_bounds(
    st: &JsonStation,
    period: &Period,
    check: &dyn Fn(&SignedRecord, &str) -> Result<crate::wire::AiringRecord, String>,
    head: Option<(u64, String)>,
    tail: Option<(u64, String)>,
    v: &mut StationVerdict,
    generated_at: DateTime<Utc>,
) {
    let date = |r: &crate::wire::AiringRecord| r.scheduled_at.date_naive();
    let dmy = |d: NaiveDate| d.format("%d/%m/%Y").to_string();
    let anchor = match &st.anchor {
        Some(a) => match check(a, "anchor") {
            Ok(r) => Some((r, a.hash.clone())),
            Err(p) => {
                v.problems.push(p);
                return;
            }
        },
        None => None,
    };
    if let Some((a, _)) = &anchor
        && date(a) >= period.from
    {
        v.problems.push(format!(
            "start not proven: the anchor (seq {}) is scheduled on {}, not before the period",
            a.seq,
            dmy(date(a))
        ));
    }
    // Start: the record just before the run, or the genesis.
    match (&head, &anchor) {
        (Some((1, _)), None) => {}
        (Some((1, _)), Some((a, _))) => v.problems.push(format!(
            "an anchor (seq {}) is given, but the run starts at seq 1",
            a.seq
        )),
        (Some((first, _)), None) => v.problems.push(format!(
            "start not proven: the export carries no anchor (seq {}) before the first record \
             (seq {first}): records of the period before seq {first} cannot be ruled out",
            first - 1
        )),
        (Some((first, prev_hash)), Some((a, a_hash))) => {
            if a.seq.checked_add(1) != Some(*first) {
                v.problems.push(if a.seq < *first {
                    format!(
                        "start not proven: seq {}..{} missing between the anchor (seq {}) and \
                         the first record (seq {first})",
                        a.seq + 1,
                        first - 1,
                        a.seq
                    )
                } else {
                    format!(
                        "the anchor (seq {}) is not before the first record (seq {first})",
                        a.seq
                    )
                });
            } else if prev_hash != a_hash {
                v.problems.push(format!(
                    "the first record (seq {first}) does not chain to the anchor (seq {})",
                    a.seq
                ));
            }
        }
        // A run whose first record did not verify: already a problem.
        (None, _) if !st.records.is_empty() => return,
        (None, _) => {}
    }
    // End: the record just after the run (or, with no record in the period, after the anchor).
    let last: Option<(u64, String)> = if st.records.is_empty() {
        anchor.as_ref().map(|(a, h)| (a.seq, h.clone()))
    } else {
        match tail {
            Some(t) => Some(t),
            None => return,
        }
    };
    let held = st.held_through.unwrap_or(0);
    match (&st.successor, &last) {
        (Some(s), last) => {
            let r = match check(s, "successor") {
                Ok(r) => r,
                Err(p) => {
                    v.problems.push(p);
                    return;
                }
            };
            if date(&r) <= period.to {
                v.problems.push(format!(
                    "end not proven: the successor (seq {}) is scheduled on {}, not after the \
                     period",
                    r.seq,
                    dmy(date(&r))
                ));
            }
            match last {
                Some((seq, hash)) => {
                    if seq.checked_add(1) != Some(r.seq) {
                        v.problems.push(if r.seq > *seq {
                            format!(
                                "end not proven: seq {}..{} missing between the last record \
                                 (seq {seq}) and the successor (seq {})",
                                seq + 1,
                                r.seq - 1,
                                r.seq
                            )
                        } else {
                            format!(
                                "the successor (seq {}) is not after the last record (seq {seq})",
                                r.seq
                            )
                        });
                    } else if &r.prev_hash != hash {
                        v.problems.push(format!(
                            "the successor (seq {}) does not chain to the last record (seq {seq})",
                            r.seq
                        ));
                    }
                }
                // No record in the period and none before it: the successor must be the
                // station's very first record.
                None => {
                    if r.seq != 1 || r.prev_hash != GENESIS_HASH {
                        v.problems.push(format!(
                            "start not proven: no record in the period and no anchor, but the \
                             successor is seq {}, not the station's first record",
                            r.seq
                        ));
                    }
                }
            }
        }
        (None, Some((seq, _))) if held > *seq => v.problems.push(format!(
            "end not proven: the collector held records up to seq {held} but not seq {} \
             (a gap at the collector): records of the period after seq {seq} cannot be ruled out",
            seq + 1
        )),
        (None, Some((seq, _))) => v.notes.push(format!(
            "end proven only up to seq {seq}, the highest the collector held at {}: a record of \
             the period the station made or shipped later cannot be ruled out",
            generated_at
                .with_timezone(&super::report_offset())
                .format("%H:%M %d/%m/%Y")
        )),
        (None, None) if held == 0 => v
            .notes
            .push("no record: the collector held none from this station at export time".into()),
        (None, None) => v.problems.push(format!(
            "start not proven: no record in the period and nothing brackets it, though the \
             collector held records up to seq {held}"
        )),
    }
}
