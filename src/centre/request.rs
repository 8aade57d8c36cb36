//! Station-signed requests: how a station proves who it is on a GET (its manifest, content
//! downloads, `GET /api/v1/centre/whoami`) without a password or token — with the key it already
//! signs its records with.
//!
//! Headers: `X-Loa-Station: <id>`, `X-Loa-Date: <RFC 3339 UTC>`, `X-Loa-Signature: <base64>`, the
//! signature over `b"loa-get-v1\n" + method + b"\n" + path_and_query + b"\n" + date`, where
//! `path_and_query` is the request target exactly as sent (`/api/v1/content/ab…?x=1`) and `date`
//! the header's exact text.
//!
//! A request with a body (a station's `POST`, e.g. its bulletin receipts) is signed over the body
//! too, under another domain: `b"loa-body-v1\n" + method + b"\n" + path_and_query + b"\n" +
//! date + b"\n" + hex(SHA-256(body))` ([`sign_body`], [`verify_body`]). The two domains keep a
//! GET's signature from ever verifying as a request with a body, and the other way round; the
//! body's hash in the message means a captured signature covers those bytes only.
//!
//! **Invariant:** [`verify`] (and [`verify_body`], over the body's SHA-256 as well) accepts only
//! a signature that verifies strictly
//! ([`wire::verify_signature_strict`]) with the station's registered key over this method, this
//! path and query and this date text, and a date within [`MAX_SKEW_SECS`] of the verifier's
//! clock either way (the heartbeat's rule): a captured request is good for at most that long, for
//! that one target only. Pure: the clock comes in as an argument.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::reason::ReasonCode;
use crate::wire;

/// Header naming the station.
pub const HEADER_STATION: &str = "x-loa-station";
/// Header carrying the request's date (RFC 3339, UTC).
pub const HEADER_DATE: &str = "x-loa-date";
/// Header carrying the signature (base64).
pub const HEADER_SIGNATURE: &str = "x-loa-signature";
/// Domain separation of request signatures.
pub const DOMAIN: &[u8] = b"loa-get-v1\n";
/// Domain separation of signatures over a request with a body.
pub const BODY_DOMAIN: &[u8] = b"loa-body-v1\n";
/// Largest distance (seconds, either way) between a request's date and the verifier's clock.
pub const MAX_SKEW_SECS: i64 = 600;

/// Why a station-signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("station-signed request: header {0} is missing")]
    Missing(&'static str),
    #[error("station-signed request: header {header}: {why}")]
    BadHeader { header: &'static str, why: String },
    #[error("station-signed request: station {0:?} is not registered")]
    UnknownStation(String),
    #[error(
        "station-signed request: its date {date} is {skew_secs} s from the collector's clock (more than {MAX_SKEW_SECS} s); \
         a replay, or the station's clock is wrong"
    )]
    Stale { date: String, skew_secs: i64 },
    #[error(
        "station-signed request: the signature does not verify with station {0:?}'s registered key"
    )]
    BadSignature(String),
    #[error("station-signed request: station {caller:?} may not use station {target:?}'s resource")]
    OtherStation { caller: String, target: String },
}

impl RequestError {
    /// The reason code of the refusal.
    pub fn code(&self) -> ReasonCode {
        match self {
            RequestError::Missing(_) | RequestError::BadHeader { .. } => {
                ReasonCode::RefusedMalformed
            }
            RequestError::UnknownStation(_) => ReasonCode::RefusedUnknownStation,
            RequestError::Stale { .. } => ReasonCode::RefusedStaleRequest,
            RequestError::BadSignature(_) => ReasonCode::RefusedBadSignature,
            RequestError::OtherStation { .. } => ReasonCode::RefusedNotThisStation,
        }
    }

    /// The HTTP status of the refusal: 401 when who is asking is not established (missing or
    /// malformed headers, unknown station, stale date), 403 when a known station's signature is
    /// wrong or it asks for another station's resource.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BadSignature(_) | RequestError::OtherStation { .. } => 403,
            _ => 401,
        }
    }
}

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub station: String,
    pub date: String,
    pub signature: String,
}

impl SignedHeaders {
    /// (name, value) pairs to add to a request.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (HEADER_STATION, &self.station),
            (HEADER_DATE, &self.date),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }

    /// The headers as presented, read with `get` (a header map's lookup by lowercase name).
    pub fn presented<'a>(
        get: impl Fn(&'static str) -> Option<&'a str>,
    ) -> Result<SignedHeaders, RequestError> {
        let one = |h: &'static str| get(h).map(str::to_string).ok_or(RequestError::Missing(h));
        Ok(SignedHeaders {
            station: one(HEADER_STATION)?,
            date: one(HEADER_DATE)?,
            signature: one(HEADER_SIGNATURE)?,
        })
    }
}

/// The message a request signature covers.
pub fn message(method: &str, path_and_query: &str, date: &str) -> Vec<u8> {
    let mut m =
        Vec::with_capacity(DOMAIN.len() + method.len() + path_and_query.len() + date.len() + 2);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(method.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(path_and_query.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(date.as_bytes());
    m
}

/// The message a signature over a request with a body covers.
pub fn body_message(method: &str, path_and_query: &str, date: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(
        BODY_DOMAIN.len() + method.len() + path_and_query.len() + date.len() + 64 + 3,
    );
    m.extend_from_slice(BODY_DOMAIN);
    m.extend_from_slice(method.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(path_and_query.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(date.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(wire::sha256_hex(body).as_bytes());
    m
}

/// Sign a request with `body` of station `station` (key `key`) for `method` `path_and_query`
/// at `now`.
pub fn sign_body(
    key: &SigningKey,
    station: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> SignedHeaders {
    let date = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let sig = key.sign(&body_message(method, path_and_query, &date, body));
    SignedHeaders {
        station: station.to_string(),
        date,
        signature: B64.encode(sig.to_bytes()),
    }
}

/// Sign a request of station `station` (key `key`) for `method` `path_and_query` at `now`.
pub fn sign(
    key: &SigningKey,
    station: &str,
    method: &str,
    path_and_query: &str,
    now: DateTime<Utc>,
) -> SignedHeaders {
    let date = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let sig = key.sign(&message(method, path_and_query, &date));
    SignedHeaders {
        station: station.to_string(),
        date,
        signature: B64.encode(sig.to_bytes()),
    }
}

/// Parse a request date: RFC 3339 in UTC (`Z` or `+00:00`).
fn parse_date(text: &str) -> Result<DateTime<Utc>, RequestError> {
    let bad = |why: String| RequestError::BadHeader {
        header: HEADER_DATE,
        why,
    };
    let d = DateTime::parse_from_rfc3339(text).map_err(|e| bad(format!("not RFC 3339: {e}")))?;
    if d.offset().local_minus_utc() != 0 {
        return Err(bad("not in UTC".into()));
    }
    Ok(d.with_timezone(&Utc))
}

/// Check signed `headers` of a `method` `path_and_query` request against the station's
/// registered `key`, at `now`.
pub fn verify(
    headers: &SignedHeaders,
    method: &str,
    path_and_query: &str,
    key: &VerifyingKey,
    now: DateTime<Utc>,
) -> Result<(), RequestError> {
    verify_message(
        headers,
        &message(method, path_and_query, &headers.date),
        key,
        now,
    )
}

/// Check signed `headers` of a `method` `path_and_query` request with `body` against the
/// station's registered `key`, at `now` (see [`sign_body`]).
pub fn verify_body(
    headers: &SignedHeaders,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    key: &VerifyingKey,
    now: DateTime<Utc>,
) -> Result<(), RequestError> {
    verify_message(
        headers,
        &body_message(method, path_and_query, &headers.date, body),
        key,
        now,
    )
}

fn verify_message(
    headers: &SignedHeaders,
    msg: &[u8],
    key: &VerifyingKey,
    now: DateTime<Utc>,
) -> Result<(), RequestError> {
    let date = parse_date(&headers.date)?;
    let skew = (now - date).num_seconds();
    if skew.abs() > MAX_SKEW_SECS {
        return Err(RequestError::Stale {
            date: headers.date.clone(),
            skew_secs: skew,
        });
    }
    let sig = wire::decode_signature(&headers.signature).ok_or(RequestError::BadHeader {
        header: HEADER_SIGNATURE,
        why: "not a base64 Ed25519 signature of exactly 64 bytes".into(),
    })?;
    if !wire::verify_signature_strict(key, msg, &sig) {
        return Err(RequestError::BadSignature(headers.station.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        "2027-01-02T03:04:05Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const PQ: &str = "/api/v1/stations/p1/manifest";

    #[test]
    fn a_signed_request_verifies_within_the_window_only() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let h = sign(&k, "p1", "GET", PQ, now());
        assert_eq!(h.date, "2027-01-02T03:04:05Z");
        let vk = k.verifying_key();
        for s in [-600, 0, 600] {
            assert_eq!(
                verify(&h, "GET", PQ, &vk, now() + Duration::seconds(s)),
                Ok(()),
                "{s}"
            );
        }
        for s in [-601, 601, 3600] {
            let e = verify(&h, "GET", PQ, &vk, now() + Duration::seconds(s)).unwrap_err();
            assert!(matches!(e, RequestError::Stale { .. }), "{s}: {e}");
            assert_eq!(
                (e.code(), e.status()),
                (ReasonCode::RefusedStaleRequest, 401)
            );
        }
    }

    #[test]
    fn another_key_target_method_or_date_is_refused() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let other = SigningKey::from_bytes(&[4; 32]);
        let h = sign(&k, "p1", "GET", PQ, now());
        let e = verify(&h, "GET", PQ, &other.verifying_key(), now()).unwrap_err();
        assert_eq!(e, RequestError::BadSignature("p1".into()));
        assert_eq!(
            (e.code(), e.status()),
            (ReasonCode::RefusedBadSignature, 403)
        );
        let vk = k.verifying_key();
        assert!(matches!(
            verify(&h, "GET", "/api/v1/stations/p2/manifest", &vk, now()),
            Err(RequestError::BadSignature(_))
        ));
        assert!(matches!(
            verify(&h, "HEAD", PQ, &vk, now()),
            Err(RequestError::BadSignature(_))
        ));
        let mut redated = h.clone();
        redated.date = "2027-01-02T03:04:06Z".into();
        assert!(matches!(
            verify(&redated, "GET", PQ, &vk, now()),
            Err(RequestError::BadSignature(_))
        ));
        let mut local = h.clone();
        local.date = "2027-01-02T10:04:05+07:00".into();
        assert!(matches!(
            verify(&local, "GET", PQ, &vk, now()),
            Err(RequestError::BadHeader {
                header: HEADER_DATE,
                ..
            })
        ));
        let mut short = h.clone();
        short.signature = B64.encode([0u8; 63]);
        assert!(matches!(
            verify(&short, "GET", PQ, &vk, now()),
            Err(RequestError::BadHeader {
                header: HEADER_SIGNATURE,
                ..
            })
        ));
    }

    #[test]
    fn a_body_signature_covers_the_body_and_never_opens_as_a_get() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let vk = k.verifying_key();
        let pq = "/api/v1/stations/p1/bulletin-receipts";
        let body = br#"{"receipts":[]}"#;
        let h = sign_body(&k, "p1", "POST", pq, body, now());
        assert_eq!(verify_body(&h, "POST", pq, body, &vk, now()), Ok(()));
        // Another body, target or method: refused.
        for (m, p, b) in [
            ("POST", pq, &br#"{"receipts":[1]}"#[..]),
            ("POST", "/api/v1/stations/p2/bulletin-receipts", &body[..]),
            ("PUT", pq, &body[..]),
        ] {
            assert!(
                matches!(
                    verify_body(&h, m, p, b, &vk, now()),
                    Err(RequestError::BadSignature(_))
                ),
                "{m} {p}"
            );
        }
        // Domain separation: a body signature is not a GET's, a GET's is not a body's (even
        // over an empty body).
        assert!(matches!(
            verify(&h, "POST", pq, &vk, now()),
            Err(RequestError::BadSignature(_))
        ));
        let g = sign(&k, "p1", "POST", pq, now());
        assert!(matches!(
            verify_body(&g, "POST", pq, b"", &vk, now()),
            Err(RequestError::BadSignature(_))
        ));
        // The date window holds as for a GET.
        assert!(matches!(
            verify_body(&h, "POST", pq, body, &vk, now() + Duration::seconds(601)),
            Err(RequestError::Stale { .. })
        ));
    }

    #[test]
    fn headers_are_read_by_name_and_a_missing_one_is_named() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let h = sign(&k, "p1", "GET", PQ, now());
        let pairs = h.pairs();
        let got = SignedHeaders::presented(|name| {
            pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        });
        assert_eq!(got, Ok(h.clone()));
        let got = SignedHeaders::presented(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name && name != HEADER_DATE)
                .map(|(_, v)| *v)
        });
        assert_eq!(got, Err(RequestError::Missing(HEADER_DATE)));
    }
}
