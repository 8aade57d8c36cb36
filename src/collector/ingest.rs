//! Decoding and checking an ingest batch before it touches the database: body → [`RecordBatch`]
//! (errors name the field), then every record's station, signature, hash, version and the
//! batch's internal order and chain.
//!
//! **Invariant:** everything here is pure CPU work over the body and the station's registered key;
//! a batch that leaves this module is internally consistent and signed by that key, and nothing
//! here can store anything (the store then checks it against what is already stored).

use ed25519_dalek::VerifyingKey;

use crate::wire::{AiringRecord, GENESIS_HASH, RecordBatch, Rejection, SignedHeartbeat, WireError};

/// Default largest request body the collector reads (413 above): 8 MiB, room for a batch of
/// ~5,000 records with full evidence.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Default largest number of records in one batch (413 above).
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 5_000;
/// Batches at least this long have their signatures verified on several threads.
const PARALLEL_VERIFY_MIN: usize = 64;

/// Why a batch (or heartbeat) was refused before storage; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// 400: the body is not a batch (the message names the field).
    #[error("malformed body: {0}")]
    Malformed(String),
    /// 413: more records than allowed.
    #[error("batch of {count} records exceeds the limit of {limit}; send smaller batches")]
    TooLarge { count: usize, limit: usize },
    /// 400: records that do not parse, or a batch out of order / not chained within itself.
    #[error("invalid records")]
    Invalid(Vec<Rejection>),
    /// 403: records not signed by this station's registered key, or for another station.
    #[error("records refused: not signed by this station's registered key")]
    Forbidden(Vec<Rejection>),
}

impl BatchError {
    /// The per-record reasons (one synthetic entry for body-level errors).
    pub fn rejections(&self) -> Vec<Rejection> {
        match self {
            Self::Invalid(r) | Self::Forbidden(r) => r.clone(),
            other => vec![Rejection {
                seq: None,
                reason: other.to_string(),
            }],
        }
    }
}

/// A record that passed every check that needs only itself, the key and its batch.
#[derive(Debug, Clone)]
pub struct CheckedRecord {
    pub seq: u64,
    pub hash: String,
    pub signature: String,
    /// The canonical bytes, verbatim.
    pub bytes: String,
    pub record: AiringRecord,
}

/// Decode a JSON body; errors name the path of the offending field (e.g. `records[2].hash`).
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BatchError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            BatchError::Malformed(inner.to_string())
        } else {
            BatchError::Malformed(format!("field `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| BatchError::Malformed(format!("trailing data after the JSON body: {e}")))?;
    Ok(value)
}

/// Decode an ingest body into a batch, enforcing the record limit.
pub fn decode_batch(body: &[u8], max_records: usize) -> Result<RecordBatch, BatchError> {
    let batch: RecordBatch = decode_json(body)?;
    if batch.records.len() > max_records {
        return Err(BatchError::TooLarge {
            count: batch.records.len(),
            limit: max_records,
        });
    }
    if batch.records.is_empty() {
        return Err(BatchError::Malformed(
            "field `records`: the batch is empty".into(),
        ));
    }
    Ok(batch)
}

fn check_one(
    station: &str,
    key: &VerifyingKey,
    signed: &crate::wire::SignedRecord,
) -> Result<CheckedRecord, (bool, Rejection)> {
    // Parse first to learn the seq for the answer; a record that does not parse is a 400.
    let parsed = signed.parse().map_err(|e| {
        (
            false,
            Rejection {
                seq: None,
                reason: e.to_string(),
            },
        )
    })?;
    let seq = Some(parsed.seq);
    if parsed.station != station {
        return Err((
            true,
            Rejection {
                seq,
                reason: format!(
                    "record belongs to station `{}` but was posted for station `{station}`; a station may post only its own records",
                    parsed.station
                ),
            },
        ));
    }
    if parsed.seq == 0 {
        return Err((
            false,
            Rejection {
                seq,
                reason: "seq must start at 1".into(),
            },
        ));
    }
    match signed.verify(key) {
        Ok(_) => {}
        Err(e @ (WireError::BadSignature { .. } | WireError::SignatureEncoding)) => {
            return Err((
                true,
                Rejection {
                    seq,
                    reason: format!(
                        "{e}: it was signed by another key (another station's, or an old key); \
                         if this station was re-keyed, update it with `loa register`"
                    ),
                },
            ));
        }
        Err(e) => {
            return Err((
                true,
                Rejection {
                    seq,
                    reason: e.to_string(),
                },
            ));
        }
    }
    if parsed.seq == 1 && parsed.prev_hash != GENESIS_HASH {
        return Err((
            false,
            Rejection {
                seq,
                reason: "seq 1 must have the genesis prev_hash".into(),
            },
        ));
    }
    Ok(CheckedRecord {
        seq: parsed.seq,
        hash: signed.hash.clone(),
        signature: signed.signature.clone(),
        bytes: signed.bytes().to_string(),
        record: parsed,
    })
}

/// Check every record of `batch` for `station` with its registered `key`, and the batch's own
/// order (consecutive seqs) and chain. Signatures are verified on several threads for big batches.
pub fn check_batch(
    station: &str,
    key: &VerifyingKey,
    batch: &RecordBatch,
) -> Result<Vec<CheckedRecord>, BatchError> {
    let results: Vec<Result<CheckedRecord, (bool, Rejection)>> =
        if batch.records.len() >= PARALLEL_VERIFY_MIN {
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8);
            let chunk = batch.records.len().div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .records
                    .chunks(chunk)
                    .map(|part| {
                        s.spawn(move || {
                            part.iter()
                                .map(|r| check_one(station, key, r))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let mut all = Vec::with_capacity(batch.records.len());
                for h in handles {
                    match h.join() {
                        Ok(v) => all.extend(v),
                        // check_one does not panic; should a thread die anyway, refuse the batch.
                        Err(_) => all.push(Err((
                            false,
                            Rejection {
                                seq: None,
                                reason: "internal error while verifying".into(),
                            },
                        ))),
                    }
                }
                all
            })
        } else {
            batch
                .records
                .iter()
                .map(|r| check_one(station, key, r))
                .collect()
        };
    let mut forbidden = Vec::new();
    let mut invalid = Vec::new();
    let mut ok = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(c) => ok.push(c),
            Err((true, rej)) => forbidden.push(rej),
            Err((false, rej)) => invalid.push(rej),
        }
    }
    if !forbidden.is_empty() {
        return Err(BatchError::Forbidden(forbidden));
    }
    if !invalid.is_empty() {
        return Err(BatchError::Invalid(invalid));
    }
    for pair in ok.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.seq != a.seq + 1 {
            return Err(BatchError::Invalid(vec![Rejection {
                seq: Some(b.seq),
                reason: format!(
                    "batch out of order: seq {} follows seq {}; a batch carries consecutive records in order",
                    b.seq, a.seq
                ),
            }]));
        }
        if b.record.prev_hash != a.hash {
            return Err(BatchError::Invalid(vec![Rejection {
                seq: Some(b.seq),
                reason: format!(
                    "hash chain broken inside the batch: prev_hash of seq {} is not the hash of seq {}",
                    b.seq, a.seq
                ),
            }]));
        }
    }
    Ok(ok)
}

/// Check a heartbeat for `station`.
pub fn check_heartbeat(
    station: &str,
    key: &VerifyingKey,
    hb: &SignedHeartbeat,
) -> Result<crate::wire::Heartbeat, BatchError> {
    let parsed: crate::wire::Heartbeat = serde_json::from_str(hb.heartbeat.get())
        .map_err(|e| BatchError::Malformed(format!("field `heartbeat`: {e}")))?;
    if parsed.station != station {
        return Err(BatchError::Forbidden(vec![Rejection {
            seq: None,
            reason: format!(
                "heartbeat of station `{}` posted for station `{station}`",
                parsed.station
            ),
        }]));
    }
    hb.verify(key).map_err(|e| match e {
        WireError::Version { .. } | WireError::Malformed(_) => {
            BatchError::Malformed(format!("field `heartbeat`: {e}"))
        }
        other => BatchError::Forbidden(vec![Rejection {
            seq: None,
            reason: other.to_string(),
        }]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AiredItem, Outcome, SignedRecord, Source, WIRE_VERSION};
    use chrono::{FixedOffset, TimeZone, Utc};
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn rec(seq: u64, prev: &str) -> AiringRecord {
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        let at = tz.with_ymd_and_hms(2019, 3, 4, 5, 30, 0).unwrap();
        AiringRecord {
            v: WIRE_VERSION,
            station: "a".into(),
            seq,
            occurrence: None,
            slot: None,
            program: None,
            category: "cchc".into(),
            source: Source::File,
            scheduled_at: at,
            actual_start: Some(at),
            end: None,
            planned_secs: 60.0,
            aired_secs: 60.0,
            start_offset_ms: Some(0),
            outcome: Outcome::Aired,
            reason: None,
            items: vec![AiredItem {
                path: "x.ogg".into(),
                sha256: String::new(),
                duration_secs: 60.0,
                aired_secs: 60.0,
            }],
            evidence: None,
            relay: None,
            recorded_at: Utc.with_ymd_and_hms(2019, 3, 3, 23, 0, 0).unwrap(),
            prev_hash: prev.into(),
        }
    }

    fn chain(n: u64, key: &SigningKey) -> Vec<SignedRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|s| {
                let r = rec(s, &prev).sign(key).unwrap();
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn a_good_batch_passes_and_a_reordered_or_foreign_one_does_not() {
        let k = SigningKey::from_bytes(&[1; 32]);
        let vk = k.verifying_key();
        let records = chain(70, &k);
        let ok = check_batch(
            "a",
            &vk,
            &RecordBatch {
                records: records.clone(),
            },
        )
        .unwrap();
        assert_eq!(ok.len(), 70);
        let mut swapped = records.clone();
        swapped.swap(3, 4);
        assert!(matches!(
            check_batch("a", &vk, &RecordBatch { records: swapped }),
            Err(BatchError::Invalid(_))
        ));
        let other = SigningKey::from_bytes(&[2; 32]).verifying_key();
        assert!(matches!(
            check_batch("a", &other, &RecordBatch { records: records.clone() }),
            Err(BatchError::Forbidden(r)) if r.len() == 70
        ));
        assert!(matches!(
            check_batch("b", &vk, &RecordBatch { records }),
            Err(BatchError::Forbidden(_))
        ));
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let err = decode_batch(
            br#"{"records":[{"record":{},"hash":1,"signature":"x"}]}"#,
            10,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("records[0].hash"), "{err}");
        let err = decode_batch(b"{}", 10).unwrap_err().to_string();
        assert!(err.contains("records"), "{err}");
        assert!(matches!(
            decode_batch(br#"{"records":[]}"#, 10),
            Err(BatchError::Malformed(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
        // Random bytes never panic the decoder.
        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_batch(&body, 10);
        }

        // Mutating one byte of a valid body never panics and is never accepted as-is unless
        // the mutation left the signed bytes intact.
        #[test]
        fn mutated_bodies_are_refused_or_unchanged(pos in 0usize..10_000, byte in any::<u8>()) {
            let k = SigningKey::from_bytes(&[1; 32]);
            let records = chain(2, &k);
            let body = serde_json::to_vec(&RecordBatch { records: records.clone() }).unwrap();
            let mut bad = body.clone();
            let i = pos % bad.len();
            bad[i] = byte;
            if let Ok(batch) = decode_batch(&bad, 10)
                && let Ok(checked) = check_batch("a", &k.verifying_key(), &batch)
            {
                for (c, orig) in checked.iter().zip(&records) {
                    prop_assert_eq!(&c.bytes, orig.bytes());
                    prop_assert_eq!(&c.hash, &orig.hash);
                }
            }
        }
    }
}
