//! Decoding and checking an ingest batch before it touches the database: body → [`RecordBatch`]
//! (errors name the field), then every record's station, signature, hash, version and the
//! batch's internal order and chain.
//!
//! Signatures are checked with the one rule of `loa`, [`crate::wire::verify_signature_strict`]
//! (ed25519-dalek's `verify_strict`), record by record, big batches split across the cores —
//! the very function `loa verify` uses offline, so a record stored here verifies there and a
//! record refused here would be refused there. No batch equation: one that accepts what strict
//! verification refuses (small-order or identity `R`) would let a key holder store records that
//! a later audit judges differently.
//!
//! **Invariant:** everything here is pure CPU work over the body and the station's registered key;
//! a batch that leaves this module is internally consistent and signed by that key, and nothing
//! here can store anything (the store then checks it against what is already stored).

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::store::CheckedRecord;
use crate::reason::ReasonCode;
use crate::wire::{
    GENESIS_HASH, Heartbeat, RecordBatch, Rejection, SignedHeartbeat, SignedRecord, WireError,
    decode_signature, verify_signature_strict,
};

/// Default largest request body the collector reads (413 above): 8 MiB, room for a batch of
/// ~5,000 records with full evidence.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Default largest number of records in one batch (413 above).
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 5_000;
/// Batches at least this long are checked on several threads.
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
                code: Some(match other {
                    Self::TooLarge { .. } => ReasonCode::RefusedTooLarge,
                    _ => ReasonCode::RefusedMalformed,
                }),
            }],
        }
    }
}

/// Decode a JSON body; errors name the path of the offending field (e.g. `records[2].hash`).
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BatchError> {
    // Fast path; only a body that fails is decoded again while tracking the field path.
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
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

/// Outcome of checking one record: the record, or (forbidden?, why).
type OneResult = Result<CheckedRecord, (bool, Rejection)>;

/// A record that passed every check except its signature.
struct Pending {
    checked: CheckedRecord,
    signature: Signature,
}

/// Everything about one record but its signature: it parses (this wire version, every integer in
/// its wire range, seq ≥ 1), belongs to `station`, its hash is the SHA-256 of its bytes and its signature is well-formed.
/// Takes the record by value: its bytes, hash and signature move into the result uncopied.
fn precheck(station: &str, signed: SignedRecord) -> Result<Pending, (bool, Rejection)> {
    // Parse first to learn the seq for the answer; a record that does not parse is a 400.
    let parsed = signed.parse().map_err(|e| {
        let code = match e {
            WireError::Version { .. } => ReasonCode::RefusedWireVersion,
            _ => ReasonCode::RefusedMalformed,
        };
        (
            false,
            Rejection {
                seq: None,
                reason: e.to_string(),
                code: Some(code),
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
                code: Some(ReasonCode::RefusedWrongStation),
            },
        ));
    }
    // Compare digests as bytes (no hex string per record); the stated hash must be lowercase
    // hex as `sha256_hex` writes it, so only the exact text of the computed hash passes.
    let digest: [u8; 32] = Sha256::digest(signed.bytes().as_bytes()).into();
    if !hash_text_matches(&signed.hash, &digest) {
        return Err((
            true,
            Rejection {
                seq,
                reason: WireError::HashMismatch {
                    stated: signed.hash.clone(),
                    computed: hex::encode(digest),
                }
                .to_string(),
                code: Some(ReasonCode::RefusedHashMismatch),
            },
        ));
    }
    let signature = decode_signature(&signed.signature).ok_or_else(|| {
        (
            true,
            Rejection {
                seq,
                reason: bad_signature_reason(&WireError::SignatureEncoding),
                code: Some(ReasonCode::RefusedBadSignature),
            },
        )
    })?;
    let SignedRecord {
        record,
        hash,
        signature: signature_text,
    } = signed;
    Ok(Pending {
        checked: CheckedRecord {
            seq: parsed.seq,
            hash,
            signature: signature_text,
            bytes: String::from(Box::<str>::from(record)),
            record: parsed,
        },
        signature,
    })
}

/// Whether `stated` is exactly the lowercase hex of `digest` (what `sha256_hex` writes).
fn hash_text_matches(stated: &str, digest: &[u8; 32]) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let stated = stated.as_bytes();
    stated.len() == 64
        && digest.iter().enumerate().all(|(i, b)| {
            stated[2 * i] == HEX[usize::from(b >> 4)]
                && stated[2 * i + 1] == HEX[usize::from(b & 15)]
        })
}

fn bad_signature_reason(e: &WireError) -> String {
    format!(
        "{e}: it was signed by another key (another station's, or an old key); \
         if this station was re-keyed, update it with `loa register`"
    )
}

/// The checks after a good signature.
fn postcheck(c: CheckedRecord) -> OneResult {
    if c.seq == 1 && c.record.prev_hash != GENESIS_HASH {
        return Err((
            false,
            Rejection {
                seq: Some(c.seq),
                reason: "seq 1 must have the genesis prev_hash".into(),
                code: Some(ReasonCode::RefusedChain),
            },
        ));
    }
    Ok(c)
}

/// Check a run of records: prechecks, then each signature with the one strict rule.
fn check_chunk(station: &str, key: &VerifyingKey, part: Vec<SignedRecord>) -> Vec<OneResult> {
    part.into_iter()
        .map(|r| {
            let p = precheck(station, r)?;
            if !verify_signature_strict(key, p.checked.bytes.as_bytes(), &p.signature) {
                return Err((
                    true,
                    Rejection {
                        seq: Some(p.checked.seq),
                        reason: bad_signature_reason(&WireError::BadSignature {
                            station: station.to_string(),
                        }),
                        code: Some(ReasonCode::RefusedBadSignature),
                    },
                ));
            }
            postcheck(p.checked)
        })
        .collect()
}

/// Check every record of `batch` for `station` with its registered `key`, and the batch's own
/// order (consecutive seqs) and chain. Big batches are split across the cores. Consumes the
/// batch: the records' bytes move into the result.
pub fn check_batch(
    station: &str,
    key: &VerifyingKey,
    batch: RecordBatch,
) -> Result<Vec<CheckedRecord>, BatchError> {
    let total = batch.records.len();
    let results: Vec<OneResult> = if total >= PARALLEL_VERIFY_MIN {
        let threads = crate::worker_threads();
        let chunk = total.div_ceil(threads);
        let mut parts: Vec<Vec<SignedRecord>> = Vec::with_capacity(threads);
        let mut records = batch.records.into_iter();
        loop {
            let part: Vec<SignedRecord> = records.by_ref().take(chunk).collect();
            if part.is_empty() {
                break;
            }
            parts.push(part);
        }
        // The first part runs on this thread, the others on scoped threads beside it.
        let mut parts = parts.into_iter();
        let first = parts.next().unwrap_or_default();
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .map(|part| s.spawn(move || check_chunk(station, key, part)))
                .collect();
            let mut all = Vec::with_capacity(total);
            all.extend(check_chunk(station, key, first));
            for h in handles {
                match h.join() {
                    Ok(v) => all.extend(v),
                    // check_chunk does not panic; should a thread die anyway, refuse the batch.
                    Err(_) => all.push(Err((
                        false,
                        Rejection {
                            seq: None,
                            reason: "internal error while verifying".into(),
                            code: Some(ReasonCode::RefusedInternal),
                        },
                    ))),
                }
            }
            all
        })
    } else {
        check_chunk(station, key, batch.records)
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
                code: Some(ReasonCode::RefusedSequence),
            }]));
        }
        if b.record.prev_hash != a.hash {
            return Err(BatchError::Invalid(vec![Rejection {
                seq: Some(b.seq),
                reason: format!(
                    "hash chain broken inside the batch: prev_hash of seq {} is not the hash of seq {}",
                    b.seq, a.seq
                ),
                code: Some(ReasonCode::RefusedChain),
            }]));
        }
    }
    Ok(ok)
}

/// Check a heartbeat for `station`: it decodes (this wire version, every integer in range),
/// is this station's, and carries the station's signature (the one strict rule).
pub fn check_heartbeat(
    station: &str,
    key: &VerifyingKey,
    hb: &SignedHeartbeat,
) -> Result<Heartbeat, BatchError> {
    let parsed = Heartbeat::decode(hb.heartbeat.get())
        .map_err(|e| BatchError::Malformed(format!("field `heartbeat`: {e}")))?;
    if parsed.station != station {
        return Err(BatchError::Forbidden(vec![Rejection {
            seq: None,
            reason: format!(
                "heartbeat of station `{}` posted for station `{station}`",
                parsed.station
            ),
            code: Some(ReasonCode::RefusedWrongStation),
        }]));
    }
    let forbidden = |e: WireError| {
        BatchError::Forbidden(vec![Rejection {
            seq: None,
            reason: e.to_string(),
            code: Some(ReasonCode::RefusedBadSignature),
        }])
    };
    let signature =
        decode_signature(&hb.signature).ok_or_else(|| forbidden(WireError::SignatureEncoding))?;
    if !verify_signature_strict(key, hb.heartbeat.get().as_bytes(), &signature) {
        return Err(forbidden(WireError::BadSignature {
            station: station.to_string(),
        }));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AiredItem, AiringRecord, Outcome, RECORD_VERSION, SignedRecord, Source};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use chrono::{FixedOffset, TimeZone, Utc};
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    fn rec(seq: u64, prev: &str) -> AiringRecord {
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        let at = tz.with_ymd_and_hms(2019, 3, 4, 5, 30, 0).unwrap();
        AiringRecord {
            v: RECORD_VERSION,
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
            reason_code: None,
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
            schedule_version: None,
            bulletin: None,
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
            RecordBatch {
                records: records.clone(),
            },
        )
        .unwrap();
        assert_eq!(ok.len(), 70);
        let mut swapped = records.clone();
        swapped.swap(3, 4);
        assert!(matches!(
            check_batch("a", &vk, RecordBatch { records: swapped }),
            Err(BatchError::Invalid(_))
        ));
        let other = SigningKey::from_bytes(&[2; 32]).verifying_key();
        assert!(matches!(
            check_batch("a", &other, RecordBatch { records: records.clone() }),
            Err(BatchError::Forbidden(r)) if r.len() == 70
        ));
        assert!(matches!(
            check_batch("b", &vk, RecordBatch { records }),
            Err(BatchError::Forbidden(_))
        ));
    }

    #[test]
    fn a_failed_batch_equation_names_exactly_the_bad_records() {
        // Big enough for the parallel path, each part batch-verified; two records (in different
        // parts) are validly hashed and chained but signed with another key.
        let k = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let mut prev = GENESIS_HASH.to_string();
        let records: Vec<SignedRecord> = (1..=200u64)
            .map(|s| {
                let signer = if s == 17 || s == 170 { &other } else { &k };
                let r = rec(s, &prev).sign(signer).unwrap();
                prev = r.hash.clone();
                r
            })
            .collect();
        match check_batch("a", &k.verifying_key(), RecordBatch { records }) {
            Err(BatchError::Forbidden(r)) => {
                let seqs: Vec<Option<u64>> = r.iter().map(|x| x.seq).collect();
                assert_eq!(seqs, vec![Some(17), Some(170)]);
                assert!(r[0].reason.contains("another key"), "{}", r[0].reason);
            }
            other => panic!("expected 403 naming seqs 17 and 170, got {other:?}"),
        }
        // The same batch signed throughout by the right key passes, in small and big runs.
        for n in [1u64, 3, 5, 63, 64, 500] {
            let ok = check_batch(
                "a",
                &k.verifying_key(),
                RecordBatch {
                    records: chain(n, &k),
                },
            )
            .unwrap();
            assert_eq!(ok.len() as u64, n);
        }
    }

    /// A key holder who knows its secret scalar `a` crafts signatures that strict verification
    /// must refuse: `R` = identity (valid under the plain equation, `s = k·a`), `R` with an
    /// order-2 or order-8 component (a batch equation lets these through about half / an
    /// eighth of the time), `s` not reduced, and `R` or `A` encoded non-canonically.
    mod crafted {
        use super::*;
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
        use curve25519_dalek::scalar::Scalar;
        use sha2::Sha512;

        pub struct Holder {
            pub a: Scalar,
            pub key: VerifyingKey,
        }

        pub fn holder() -> Holder {
            let a = Scalar::from_bytes_mod_order([9u8; 32]);
            let point = EdwardsPoint::mul_base(&a);
            Holder {
                a,
                key: VerifyingKey::from_bytes(&point.compress().to_bytes()).unwrap(),
            }
        }

        fn k(r: &[u8; 32], key: &VerifyingKey, m: &[u8]) -> Scalar {
            let mut h = Sha512::new();
            h.update(r);
            h.update(key.as_bytes());
            h.update(m);
            Scalar::from_bytes_mod_order_wide(&h.finalize().into())
        }

        fn sig(r: [u8; 32], s: [u8; 32]) -> Signature {
            let mut b = [0u8; 64];
            b[..32].copy_from_slice(&r);
            b[32..].copy_from_slice(&s);
            Signature::from_bytes(&b)
        }

        /// An honest signature with nonce `r` (for comparison).
        pub fn honest(h: &Holder, m: &[u8], r: Scalar) -> Signature {
            let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
            sig(big_r, (r + k(&big_r, &h.key, m) * h.a).to_bytes())
        }

        /// `R` = rB + T for a torsion point T: passes the unstrict, cofactored view.
        pub fn torsion_r(h: &Holder, m: &[u8], r: Scalar, t: usize) -> Signature {
            let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[t])
                .compress()
                .to_bytes();
            sig(big_r, (r + k(&big_r, &h.key, m) * h.a).to_bytes())
        }

        /// `R` = identity, `s` = k·a: the plain (cofactorless) equation holds.
        pub fn identity_r(h: &Holder, m: &[u8]) -> Signature {
            let big_r = CompressedEdwardsY::from_slice(&{
                let mut b = [0u8; 32];
                b[0] = 1;
                b
            })
            .unwrap()
            .to_bytes();
            sig(big_r, (k(&big_r, &h.key, m) * h.a).to_bytes())
        }

        /// An honest signature with `s + ℓ` in place of `s` (not reduced).
        pub fn unreduced_s(h: &Holder, m: &[u8], r: Scalar) -> Signature {
            let honest = honest(h, m, r).to_bytes();
            let mut s = [0u8; 32];
            s.copy_from_slice(&honest[32..]);
            // Add ℓ = 2^252 + 27742317777372353535851937790883648493 as little-endian bytes.
            const L: [u8; 32] = [
                0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
                0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ];
            let mut carry = 0u16;
            for i in 0..32 {
                let v = u16::from(s[i]) + u16::from(L[i]) + carry;
                s[i] = v as u8;
                carry = v >> 8;
            }
            let mut r_bytes = [0u8; 32];
            r_bytes.copy_from_slice(&honest[..32]);
            sig(r_bytes, s)
        }

        /// The identity encoded non-canonically (y = p + 1) as `R`, with `s` = k·a.
        pub fn noncanonical_identity_r(h: &Holder, m: &[u8]) -> Signature {
            let mut big_r = [0xffu8; 32];
            big_r[0] = 0xee;
            big_r[31] = 0x7f;
            sig(big_r, (k(&big_r, &h.key, m) * h.a).to_bytes())
        }

        pub fn base() -> EdwardsPoint {
            ED25519_BASEPOINT_POINT
        }
    }

    /// A signed record whose signature the test supplies (crafted by the key holder).
    fn with_signature(rec: &AiringRecord, sign: impl Fn(&[u8]) -> Signature) -> SignedRecord {
        let bytes = serde_json::to_string(rec).unwrap();
        SignedRecord {
            hash: crate::wire::sha256_hex(bytes.as_bytes()),
            signature: B64.encode(sign(bytes.as_bytes()).to_bytes()),
            record: serde_json::value::RawValue::from_string(bytes).unwrap(),
        }
    }

    #[test]
    fn crafted_signatures_are_refused_by_the_one_strict_rule_at_ingest_and_offline() {
        use curve25519_dalek::scalar::Scalar;
        let h = crafted::holder();
        let _ = crafted::base();
        let msg = b"ban tin 05:30";
        let r = |i: u8| Scalar::from_bytes_mod_order([i; 32]);
        assert!(verify_signature_strict(
            &h.key,
            msg,
            &crafted::honest(&h, msg, r(3))
        ));
        // The crafted ones: each passes dalek's plain `verify` (identity R) or would pass a
        // batch equation some of the time, and strict verification refuses every one.
        let identity = crafted::identity_r(&h, msg);
        assert!(
            ed25519_dalek::Verifier::verify(&h.key, msg, &identity).is_ok(),
            "identity R is valid unstrictly"
        );
        let crafted_sigs = [
            ("identity R", identity),
            ("R + order-2 point", crafted::torsion_r(&h, msg, r(4), 4)),
            ("R + order-8 point", crafted::torsion_r(&h, msg, r(5), 1)),
            ("s + l", crafted::unreduced_s(&h, msg, r(6))),
            (
                "non-canonical identity R",
                crafted::noncanonical_identity_r(&h, msg),
            ),
        ];
        for (what, sig) in &crafted_sigs {
            assert!(!verify_signature_strict(&h.key, msg, sig), "{what} passed");
            assert!(h.key.verify_strict(msg, sig).is_err(), "{what}");
        }

        // At ingest: a chain of honest records with one crafted record in the middle, in runs
        // small and big (the parallel path), tried many times (a random batch equation would
        // let the order-2 one through about half the time): always refused, naming that seq.
        for (what, _) in &crafted_sigs {
            for n in [5u64, 80] {
                for trial in 0..8u8 {
                    let mut prev = GENESIS_HASH.to_string();
                    let bad_seq = n / 2 + 1;
                    let records: Vec<SignedRecord> = (1..=n)
                        .map(|seq| {
                            let rec = rec(seq, &prev);
                            let signed = with_signature(&rec, |m| {
                                if seq != bad_seq {
                                    return crafted::honest(&h, m, r((seq as u8 ^ trial) | 0x80));
                                }
                                match *what {
                                    "identity R" => crafted::identity_r(&h, m),
                                    "R + order-2 point" => {
                                        crafted::torsion_r(&h, m, r(trial + 1), 4)
                                    }
                                    "R + order-8 point" => {
                                        crafted::torsion_r(&h, m, r(trial + 1), 1)
                                    }
                                    "s + l" => crafted::unreduced_s(&h, m, r(trial + 1)),
                                    _ => crafted::noncanonical_identity_r(&h, m),
                                }
                            });
                            prev = signed.hash.clone();
                            signed
                        })
                        .collect();
                    // Offline (`loa verify` checks each record with SignedRecord::verify).
                    for s in &records {
                        let seq = s.parse().unwrap().seq;
                        assert_eq!(s.verify(&h.key).is_ok(), seq != bad_seq, "{what} seq {seq}");
                    }
                    match check_batch("a", &h.key, RecordBatch { records }) {
                        Err(BatchError::Forbidden(rej)) => {
                            let seqs: Vec<Option<u64>> = rej.iter().map(|x| x.seq).collect();
                            assert_eq!(seqs, vec![Some(bad_seq)], "{what}");
                        }
                        other => panic!("{what} in a run of {n}: expected 403, got {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn a_small_order_key_verifies_nothing() {
        // The identity as a registered key: every signature with R = identity and any s = 0
        // satisfies the plain equation; strict verification refuses them all.
        let mut id = [0u8; 32];
        id[0] = 1;
        let weak = VerifyingKey::from_bytes(&id).unwrap();
        assert!(weak.is_weak());
        let records = vec![with_signature(&rec(1, GENESIS_HASH), |_| {
            let mut b = [0u8; 64];
            b[0] = 1;
            Signature::from_bytes(&b)
        })];
        assert!(matches!(
            check_batch("a", &weak, RecordBatch { records }),
            Err(BatchError::Forbidden(_))
        ));
    }

    #[test]
    fn stated_hashes_and_signatures_are_read_exactly() {
        let digest: [u8; 32] = Sha256::digest(b"x").into();
        let hex = crate::wire::sha256_hex(b"x");
        assert!(hash_text_matches(&hex, &digest));
        assert!(!hash_text_matches(&hex.to_uppercase(), &digest));
        assert!(!hash_text_matches(&hex[..63], &digest));
        assert!(!hash_text_matches(&format!("{hex}0"), &digest));
        let sig = SigningKey::from_bytes(&[1; 32]).sign(b"x");
        let text = B64.encode(sig.to_bytes());
        assert_eq!(crate::wire::decode_signature(&text), Some(sig));
        assert_eq!(
            crate::wire::decode_signature(text.trim_end_matches('=')),
            None
        );
        assert_eq!(crate::wire::decode_signature(&B64.encode([0u8; 65])), None);
        assert_eq!(
            crate::wire::decode_signature(&format!("{}!", &text[..87])),
            None
        );
    }

    #[test]
    fn a_tampered_signature_or_hash_is_refused_with_its_seq() {
        let k = SigningKey::from_bytes(&[1; 32]);
        let mut records = chain(10, &k);
        records[4].signature = "not base64!".into();
        records[6].hash = "00".repeat(32);
        match check_batch("a", &k.verifying_key(), RecordBatch { records }) {
            Err(BatchError::Forbidden(r)) => {
                let seqs: Vec<Option<u64>> = r.iter().map(|x| x.seq).collect();
                assert_eq!(seqs, vec![Some(5), Some(7)]);
                assert!(r[1].reason.contains("hash mismatch"), "{}", r[1].reason);
            }
            other => panic!("expected 403, got {other:?}"),
        }
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
                && let Ok(checked) = check_batch("a", &k.verifying_key(), batch)
            {
                for (c, orig) in checked.iter().zip(&records) {
                    prop_assert_eq!(&c.bytes, orig.bytes());
                    prop_assert_eq!(&c.hash, &orig.hash);
                }
            }
        }
    }
}
