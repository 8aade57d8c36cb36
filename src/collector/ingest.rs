//! Decoding and checking an ingest batch before it touches the database: body → [`RecordBatch`]
//! (errors name the field), then every record's station, signature, hash, version and the
//! batch's internal order and chain.
//!
//! Signatures are checked with Ed25519 *batch* verification (one multiscalar equation per run of
//! records, split across the cores): a batch is all-or-nothing anyway, and when the equation fails
//! every signature of the run is verified on its own (`verify_strict`) so the answer names the bad
//! records. For every signature made by a correct signer the two agree. They can differ only for
//! a signature deliberately crafted by the *key holder* with a small-order component in `R`: strict
//! verification refuses it, the batch equation lets it through with a probability of at most 1/2
//! per attempt. Nobody without the key can use this (batch verification is as unforgeable as
//! single verification), and a weak (small-order) registered key is never batch-verified. Such a
//! record would be flagged by `loa verify`, which verifies each record strictly.
//!
//! **Invariant:** everything here is pure CPU work over the body and the station's registered key;
//! a batch that leaves this module is internally consistent and signed by that key, and nothing
//! here can store anything (the store then checks it against what is already stored).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256, Sha512};

use crate::wire::{
    AiringRecord, GENESIS_HASH, RecordBatch, Rejection, SignedHeartbeat, SignedRecord, WireError,
};

/// Default largest request body the collector reads (413 above): 8 MiB, room for a batch of
/// ~5,000 records with full evidence.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Default largest number of records in one batch (413 above).
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 5_000;
/// Batches at least this long are checked on several threads.
const PARALLEL_VERIFY_MIN: usize = 64;
/// Runs at least this long have their signatures verified as one Ed25519 batch (below it the
/// batch's fixed cost is not worth it).
const BATCH_VERIFY_MIN: usize = 4;

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

/// A record that passed every check except its signature, which is verified afterwards (in a
/// batch) together with the others of its chunk.
struct Pending {
    checked: CheckedRecord,
    signature: Signature,
}

/// Everything about one record but its signature: it parses (this wire version), belongs to
/// `station`, has seq ≥ 1, its hash is the SHA-256 of its bytes and its signature is well-formed.
/// Takes the record by value: its bytes, hash and signature move into the result uncopied.
fn precheck(station: &str, signed: SignedRecord) -> Result<Pending, (bool, Rejection)> {
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
            },
        ));
    }
    let signature = decode_signature(&signed.signature).ok_or_else(|| {
        (
            true,
            Rejection {
                seq,
                reason: bad_signature_reason(&WireError::SignatureEncoding),
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

/// A base64 Ed25519 signature (64 bytes), decoded without allocating.
fn decode_signature(text: &str) -> Option<Signature> {
    // 64 bytes are 88 base64 characters; decode into a buffer with room for the slack the
    // decoder wants, then insist on exactly 64 bytes.
    if text.len() != 88 {
        return None;
    }
    let mut buf = [0u8; 66];
    let n = B64.decode_slice(text, &mut buf).ok()?;
    let raw: [u8; 64] = buf.get(..n)?.try_into().ok()?;
    Some(Signature::from_bytes(&raw))
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
            },
        ));
    }
    Ok(c)
}

/// Ed25519 batch verification of many signatures under **one** key: true when
/// `(-Σ zᵢsᵢ)·B + Σ zᵢ·Rᵢ + (Σ zᵢhᵢ)·A = 0` for fresh random 128-bit `zᵢ`, where
/// `hᵢ = SHA-512(Rᵢ ‖ A ‖ Mᵢ)` and every `sᵢ` is canonical.
///
/// This is the equation of `ed25519_dalek::verify_batch` (same hashes, same canonical-`s` check,
/// same cofactorless identity test) with its `n` copies of the key's term `zᵢhᵢ·A` collected into
/// one: the multiscalar multiplication has `n + 2` points instead of `2n + 1`, about half the
/// work when every record comes from the same station. The `zᵢ` come from the operating
/// system's random source, so a signer cannot aim at them; when it fails, this answers false and
/// the caller verifies each signature on its own. False also when any `Rᵢ` does not decompress.
/// Callers must not use it with a weak (small-order) key.
pub fn verify_batch_one_key(
    key: &VerifyingKey,
    messages: &[&[u8]],
    signatures: &[Signature],
) -> bool {
    if messages.len() != signatures.len() || messages.is_empty() {
        return false;
    }
    let n = signatures.len();
    let mut random = vec![0u8; 16 * n];
    if getrandom::fill(&mut random).is_err() {
        return false;
    }
    let key_bytes = key.as_bytes();
    let mut b_coefficient = Scalar::ZERO;
    let mut a_coefficient = Scalar::ZERO;
    let mut scalars: Vec<Scalar> = Vec::with_capacity(n + 2);
    let mut points: Vec<Option<EdwardsPoint>> = Vec::with_capacity(n + 2);
    for ((message, signature), z) in messages.iter().zip(signatures).zip(random.chunks_exact(16)) {
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))
        else {
            return false;
        };
        let mut h = Sha512::new();
        h.update(signature.r_bytes());
        h.update(key_bytes);
        h.update(message);
        let hram: [u8; 64] = h.finalize().into();
        let hram = Scalar::from_bytes_mod_order_wide(&hram);
        let mut z_bytes = [0u8; 16];
        z_bytes.copy_from_slice(z);
        let z = Scalar::from(u128::from_le_bytes(z_bytes));
        b_coefficient += z * s;
        a_coefficient += z * hram;
        scalars.push(z);
        points.push(CompressedEdwardsY(*signature.r_bytes()).decompress());
    }
    scalars.push(-b_coefficient);
    points.push(Some(ED25519_BASEPOINT_POINT));
    scalars.push(a_coefficient);
    points.push(Some(key.to_edwards()));
    EdwardsPoint::optional_multiscalar_mul(scalars, points).is_some_and(|p| p.is_identity())
}

/// Check a run of records: prechecks, then the signatures of all that passed them in one
/// Ed25519 batch verification; when the batch fails (or the key is weak), each signature is
/// verified on its own (strict) so the answer names the bad records.
fn check_chunk(station: &str, key: &VerifyingKey, part: Vec<SignedRecord>) -> Vec<OneResult> {
    let pre: Vec<Result<Pending, (bool, Rejection)>> =
        part.into_iter().map(|r| precheck(station, r)).collect();
    let pending: Vec<&Pending> = pre.iter().filter_map(|p| p.as_ref().ok()).collect();
    // A weak (small-order) key would let forged signatures through the batch equation; strict
    // single verification refuses every signature under it.
    let batch_ok = pending.len() >= BATCH_VERIFY_MIN && !key.is_weak() && {
        let messages: Vec<&[u8]> = pending.iter().map(|p| p.checked.bytes.as_bytes()).collect();
        let signatures: Vec<Signature> = pending.iter().map(|p| p.signature).collect();
        verify_batch_one_key(key, &messages, &signatures)
    };
    pre.into_iter()
        .map(|p| {
            let p = p?;
            if !batch_ok
                && key
                    .verify_strict(p.checked.bytes.as_bytes(), &p.signature)
                    .is_err()
            {
                return Err((
                    true,
                    Rejection {
                        seq: Some(p.checked.seq),
                        reason: bad_signature_reason(&WireError::BadSignature {
                            station: station.to_string(),
                        }),
                    },
                ));
            }
            postcheck(p.checked)
        })
        .collect()
}

/// Check every record of `batch` for `station` with its registered `key`, and the batch's own
/// order (consecutive seqs) and chain. Big batches are split across the cores, each part's
/// signatures verified as one Ed25519 batch (the batch is all-or-nothing anyway). Consumes the
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
    use ed25519_dalek::{Signer, SigningKey};
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

    #[test]
    fn one_key_batch_verification_agrees_with_dalek_and_refuses_any_bad_signature() {
        let k = SigningKey::from_bytes(&[1; 32]);
        let vk = k.verifying_key();
        let records = chain(40, &k);
        let messages: Vec<&[u8]> = records.iter().map(|r| r.bytes().as_bytes()).collect();
        let sigs: Vec<Signature> = records
            .iter()
            .map(|r| decode_signature(&r.signature).unwrap())
            .collect();
        assert!(verify_batch_one_key(&vk, &messages, &sigs));
        assert!(ed25519_dalek::verify_batch(&messages, &sigs, &vec![vk; sigs.len()]).is_ok());
        // Another key, one signature by another key, one altered message, a non-canonical s,
        // an R that is not a point: every one refused, as dalek's batch refuses them.
        let other = SigningKey::from_bytes(&[2; 32]);
        assert!(!verify_batch_one_key(
            &other.verifying_key(),
            &messages,
            &sigs
        ));
        let mut one_foreign = sigs.clone();
        one_foreign[17] = other.sign(messages[17]);
        let mut altered: Vec<Vec<u8>> = messages.iter().map(|m| m.to_vec()).collect();
        altered[3][10] ^= 1;
        let altered: Vec<&[u8]> = altered.iter().map(|m| m.as_slice()).collect();
        let mut high_s = sigs.clone();
        let mut b = high_s[5].to_bytes();
        b[63] |= 0xf0;
        high_s[5] = Signature::from_bytes(&b);
        let mut bad_r = sigs.clone();
        let mut b = bad_r[9].to_bytes();
        b[..32].copy_from_slice(&[0xff; 32]);
        bad_r[9] = Signature::from_bytes(&b);
        for (m, s) in [
            (&messages, &one_foreign),
            (&altered, &sigs),
            (&messages, &high_s),
            (&messages, &bad_r),
        ] {
            assert!(!verify_batch_one_key(&vk, m, s));
            assert!(ed25519_dalek::verify_batch(m, s, &vec![vk; s.len()]).is_err());
        }
        assert!(!verify_batch_one_key(&vk, &messages[..3], &sigs));
        assert!(!verify_batch_one_key(&vk, &[], &[]));
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
        assert_eq!(decode_signature(&text), Some(sig));
        assert_eq!(decode_signature(text.trim_end_matches('=')), None);
        assert_eq!(decode_signature(&B64.encode([0u8; 65])), None);
        assert_eq!(decode_signature(&format!("{}!", &text[..87])), None);
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
