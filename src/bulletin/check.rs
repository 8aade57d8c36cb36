//! A station's acceptance of a bulletin: [`check`] is the one door between a received envelope
//! and the station's pending bulletins.
//!
//! **Invariant:** [`check`] accepts a bulletin only when (in this order) its envelope is of kind
//! `bulletin` and verifies strictly (ed25519-dalek's `verify_strict`, through
//! `centre::signed::Envelope::open`) under a key the station pinned, its body decodes with every
//! range check, the station is among its targets, an airing of it is left that the station has
//! not aired, and its window is open or opens within [`MAX_WINDOW_SECS`]. Anything else is a
//! [`Refusal`] whose [`RefusalCode`] the station reports; nothing refused ever airs. Pure: `now`
//! and what already aired are handed in.

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::VerifyingKey;

use super::body::{Bulletin, BulletinError, BulletinId, Cancel, MAX_WINDOW_SECS};
use super::refusal::RefusalCode;
use crate::centre::signed::{Envelope, Kind, SignedError};

/// A bulletin the station will air: checked, and the first airing (1-based repeat) it has not
/// aired yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub bulletin: Bulletin,
    /// 1..=`repeats.count`.
    pub next_repeat: u32,
}

/// Why a station refused a bulletin (or a cancel). [`Refusal::code`] is what it reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("bulletin refused: {0}")]
    Signature(SignedError),
    #[error("bulletin refused: envelope: {0}")]
    Envelope(SignedError),
    #[error("bulletin refused: {0}")]
    Malformed(#[from] BulletinError),
    #[error(
        "bulletin {id} refused: station {station:?} (area code {area_code:?}) is not among its targets"
    )]
    NotTargeted {
        id: BulletinId,
        station: String,
        area_code: String,
    },
    #[error("bulletin {id} refused: every one of its {count} airings aired already (a replay)")]
    Replayed { id: BulletinId, count: u32 },
    #[error("bulletin {id} refused: its window closed at {not_after}")]
    Expired {
        id: BulletinId,
        not_after: DateTime<Utc>,
    },
    #[error(
        "bulletin {id} refused: its window opens at {not_before}, more than {MAX_WINDOW_SECS} s \
         ahead (station clock wrong, or the bulletin misdated)"
    )]
    NotYet {
        id: BulletinId,
        not_before: DateTime<Utc>,
    },
    #[error(
        "bulletin {id} refused: its audio is {actual_size} bytes with SHA-256 {actual_sha256}, the \
         bulletin names {stated_size} bytes with SHA-256 {stated_sha256}"
    )]
    Audio {
        id: BulletinId,
        stated_sha256: String,
        stated_size: u64,
        actual_sha256: String,
        actual_size: u64,
    },
}

impl Refusal {
    /// The code the station reports.
    pub fn code(&self) -> RefusalCode {
        match self {
            Refusal::Signature(_) => RefusalCode::Signature,
            Refusal::Envelope(_) | Refusal::Malformed(_) => RefusalCode::Malformed,
            Refusal::NotTargeted { .. } => RefusalCode::NotTargeted,
            Refusal::Replayed { .. } => RefusalCode::Replayed,
            Refusal::Expired { .. } => RefusalCode::Expired,
            Refusal::NotYet { .. } => RefusalCode::NotYet,
            Refusal::Audio { .. } => RefusalCode::Audio,
        }
    }

    /// The Vietnamese text of the code (pages and exports).
    pub fn vi(&self) -> &'static str {
        self.code().vi()
    }
}

/// The body of `envelope` when it is of `kind` and signed by a pinned key.
fn open(envelope: &Envelope, kind: Kind, pinned: &[VerifyingKey]) -> Result<Vec<u8>, Refusal> {
    match envelope.open(kind, pinned) {
        Ok(body) => Ok(body.to_vec()),
        Err(e @ (SignedError::UnpinnedKey { .. } | SignedError::BadSignature { .. })) => {
            Err(Refusal::Signature(e))
        }
        Err(e) => Err(Refusal::Envelope(e)),
    }
}

/// Whether station `station_id` (area code `area_code`), trusting the `pinned` centre keys, takes
/// the bulletin in `envelope` at `now`; `already_aired(id, repeat)` says which airings its journal
/// holds.
pub fn check(
    envelope: &Envelope,
    station_id: &str,
    area_code: &str,
    pinned: &[VerifyingKey],
    now: DateTime<Utc>,
    already_aired: &dyn Fn(BulletinId, u32) -> bool,
) -> Result<Accepted, Refusal> {
    let body = open(envelope, Kind::Bulletin, pinned)?;
    let bulletin = Bulletin::decode(&body)?;
    let id = bulletin.id;
    if !bulletin.targets.includes(station_id, area_code) {
        return Err(Refusal::NotTargeted {
            id,
            station: station_id.to_string(),
            area_code: area_code.to_string(),
        });
    }
    let count = bulletin.repeats.count;
    let Some(next_repeat) = (1..=count).find(|&r| !already_aired(id, r)) else {
        return Err(Refusal::Replayed { id, count });
    };
    if now >= bulletin.not_after {
        return Err(Refusal::Expired {
            id,
            not_after: bulletin.not_after,
        });
    }
    if bulletin.not_before - now > Duration::seconds(MAX_WINDOW_SECS) {
        return Err(Refusal::NotYet {
            id,
            not_before: bulletin.not_before,
        });
    }
    Ok(Accepted {
        bulletin,
        next_repeat,
    })
}

/// Whether the audio a station fetched for `bulletin` — `sha256` (lowercase hex) of its bytes,
/// `size` bytes — is the one the bulletin names; audio that is not never airs.
pub fn check_audio(bulletin: &Bulletin, sha256: &str, size: u64) -> Result<(), Refusal> {
    if sha256 == bulletin.audio.sha256 && size == bulletin.audio.size {
        return Ok(());
    }
    Err(Refusal::Audio {
        id: bulletin.id,
        stated_sha256: bulletin.audio.sha256.clone(),
        stated_size: bulletin.audio.size,
        actual_sha256: sha256.to_string(),
        actual_size: size,
    })
}

/// A cancellation the station acts on: of kind `cancel`, signed by a pinned key, well formed.
/// (A cancel of a bulletin the station never had, or a cancel replayed, changes nothing.)
pub fn check_cancel(envelope: &Envelope, pinned: &[VerifyingKey]) -> Result<Cancel, Refusal> {
    let body = open(envelope, Kind::Cancel, pinned)?;
    Ok(Cancel::decode(&body)?)
}

#[cfg(test)]
mod tests {
    use super::super::body::tests::{at, sample};
    use super::super::body::{Repeats, Targets};
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::SigningKey;

    fn centre() -> SigningKey {
        SigningKey::from_bytes(&[1; 32])
    }

    fn pinned() -> Vec<VerifyingKey> {
        vec![centre().verifying_key()]
    }

    fn signed(b: &Bulletin) -> Envelope {
        b.sign(&centre()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The envelope's JSON with `f` applied, decoded again (an attacker edits the bytes).
    fn tampered(env: &Envelope, f: impl FnOnce(&mut serde_json::Value)) -> Envelope {
        let mut v: serde_json::Value =
            serde_json::from_str(&env.to_json()).unwrap_or_else(|e| panic!("{e}"));
        f(&mut v);
        Envelope::decode(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    const NOW: &str = "2027-09-12T02:00:00Z";

    /// One case: the envelope, the station (id, area code), what aired, now → the outcome.
    struct Case {
        name: &'static str,
        env: Envelope,
        station: &'static str,
        area: &'static str,
        aired: Vec<u32>,
        now: &'static str,
        want: Result<u32, RefusalCode>,
    }

    fn case(name: &'static str, env: Envelope, want: Result<u32, RefusalCode>) -> Case {
        Case {
            name,
            env,
            station: "p1",
            area: "51001",
            aired: vec![],
            now: NOW,
            want,
        }
    }

    fn run(c: &Case) {
        let id = sample().id;
        let aired = |i: BulletinId, r: u32| i == id && c.aired.contains(&r);
        let got = check(&c.env, c.station, c.area, &pinned(), at(c.now), &aired);
        let got_code = got.as_ref().map(|a| a.next_repeat).map_err(Refusal::code);
        assert_eq!(got_code, c.want, "{}: {got:?}", c.name);
        if let Ok(a) = got {
            assert_eq!(
                a.bulletin,
                Bulletin::decode(&c.env.body).unwrap_or_else(|e| panic!("{e}"))
            );
        }
    }

    #[test]
    fn every_acceptance_rule() {
        let good = signed(&sample());
        let other_key = sample()
            .sign(&SigningKey::from_bytes(&[2; 32]))
            .unwrap_or_else(|e| panic!("{e}"));
        // Altered after signing: the window stretched by a day.
        let altered = tampered(&good, |v| {
            let mut b = sample();
            b.not_after = at("2027-09-13T01:00:00Z");
            v["body"] = B64.encode(b.to_body()).into();
        });
        // The key field claims the pinned key, the signature is another key's.
        let mut claims_pinned = other_key.clone();
        claims_pinned.key = centre().verifying_key();
        // A manifest's signature (same centre key) presented as a bulletin's.
        let as_manifest = Envelope::sign(&centre(), Kind::Manifest, sample().to_body());
        let rekinded = tampered(&as_manifest, |v| v["kind"] = "bulletin".into());
        // A cancel's envelope offered as a bulletin.
        let cancel = Cancel {
            v: 1,
            id: sample().id,
            cancelled_at: at(NOW),
        }
        .sign(&centre());
        // Signed, but not a bulletin's body (the centre signs only checked bulletins; a
        // hand-made envelope).
        let bad_body = Envelope::sign(&centre(), Kind::Bulletin, b"{\"v\":1}".to_vec());
        let area = |p: &str| {
            signed(&Bulletin {
                targets: Targets::Area(p.into()),
                ..sample()
            })
        };
        let list = |ids: &[&str]| {
            signed(&Bulletin {
                targets: Targets::Stations(ids.iter().map(|s| s.to_string()).collect()),
                ..sample()
            })
        };
        let cases = vec![
            case("valid, nothing aired yet", good.clone(), Ok(1)),
            case(
                "signed by another key",
                other_key,
                Err(RefusalCode::Signature),
            ),
            case(
                "altered after signing",
                altered,
                Err(RefusalCode::Signature),
            ),
            case(
                "key field forged",
                claims_pinned,
                Err(RefusalCode::Signature),
            ),
            case(
                "manifest signature re-kinded",
                rekinded,
                Err(RefusalCode::Signature),
            ),
            case(
                "manifest envelope",
                as_manifest,
                Err(RefusalCode::Malformed),
            ),
            case("cancel envelope", cancel, Err(RefusalCode::Malformed)),
            case(
                "signed but malformed",
                bad_body,
                Err(RefusalCode::Malformed),
            ),
            case("area prefix of the district", area("510"), Ok(1)),
            case(
                "area prefix elsewhere",
                area("52"),
                Err(RefusalCode::NotTargeted),
            ),
            case("in the list", list(&["a", "p1", "z"]), Ok(1)),
            case(
                "not in the list",
                list(&["a", "p2"]),
                Err(RefusalCode::NotTargeted),
            ),
            Case {
                aired: vec![1],
                ..case(
                    "first airing aired: the second is next",
                    good.clone(),
                    Ok(2),
                )
            },
            Case {
                aired: vec![1, 2, 3],
                ..case(
                    "every airing aired: replayed",
                    good.clone(),
                    Err(RefusalCode::Replayed),
                )
            },
            Case {
                now: "2027-09-12T13:00:00Z",
                ..case(
                    "at not_after: expired",
                    good.clone(),
                    Err(RefusalCode::Expired),
                )
            },
            Case {
                now: "2027-09-12T12:59:59Z",
                ..case("a second before not_after", good.clone(), Ok(1))
            },
            Case {
                now: "2027-09-05T01:00:00Z",
                ..case("opens in exactly 7 days: held", good.clone(), Ok(1))
            },
            Case {
                now: "2027-09-05T00:59:59Z",
                ..case(
                    "opens in more than 7 days",
                    good.clone(),
                    Err(RefusalCode::NotYet),
                )
            },
        ];
        for c in &cases {
            run(c);
        }
    }

    #[test]
    fn a_single_airing_bulletin_aired_once_is_a_replay() {
        let b = Bulletin {
            repeats: Repeats {
                count: 1,
                interval_secs: 0,
            },
            ..sample()
        };
        let env = signed(&b);
        let got = check(&env, "p1", "51001", &pinned(), at(NOW), &|i, r| {
            i == b.id && r == 1
        });
        assert!(
            matches!(got, Err(Refusal::Replayed { count: 1, .. })),
            "{got:?}"
        );
        // Another bulletin's airings do not count.
        let got = check(&env, "p1", "51001", &pinned(), at(NOW), &|i, _| i != b.id);
        assert!(got.is_ok(), "{got:?}");
    }

    #[test]
    fn a_cancel_opens_only_as_a_cancel_from_the_centre() {
        let c = Cancel {
            v: 1,
            id: sample().id,
            cancelled_at: at(NOW),
        };
        assert_eq!(check_cancel(&c.sign(&centre()), &pinned()), Ok(c.clone()));
        let forged = c.sign(&SigningKey::from_bytes(&[2; 32]));
        assert_eq!(
            check_cancel(&forged, &pinned()).map_err(|e| e.code()),
            Err(RefusalCode::Signature)
        );
        let bulletin = signed(&sample());
        assert_eq!(
            check_cancel(&bulletin, &pinned()).map_err(|e| e.code()),
            Err(RefusalCode::Malformed)
        );
        // A bulletin's signature re-kinded as a cancel's does not verify.
        let rekinded = tampered(&bulletin, |v| v["kind"] = "cancel".into());
        assert_eq!(
            check_cancel(&rekinded, &pinned()).map_err(|e| e.code()),
            Err(RefusalCode::Signature)
        );
    }

    #[test]
    fn audio_the_station_cannot_verify_is_refused() {
        let b = sample();
        let (sha, size) = (b.audio.sha256.clone(), b.audio.size);
        for (name, got_sha, got_size, want) in [
            ("as named", sha.clone(), size, Ok(())),
            (
                "other bytes",
                "cd".repeat(32),
                size,
                Err(RefusalCode::Audio),
            ),
            ("truncated", sha.clone(), size - 1, Err(RefusalCode::Audio)),
            (
                "upper-case hex",
                sha.to_uppercase(),
                size,
                Err(RefusalCode::Audio),
            ),
        ] {
            let got = check_audio(&b, &got_sha, got_size).map_err(|e| e.code());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_refusal_reads_in_vietnamese_at_the_edge() {
        let env = signed(&Bulletin {
            targets: Targets::Area("52".into()),
            ..sample()
        });
        let e = check(&env, "p1", "51001", &pinned(), at(NOW), &|_, _| false)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.code().as_str(), "bulletin.not_targeted");
        assert_eq!(
            e.vi(),
            "Trạm từ chối bản tin: trạm không thuộc đối tượng nhận"
        );
    }
}
