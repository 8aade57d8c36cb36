//! Why a station does not air a bulletin: one stable code each (`bulletin.signature`,
//! `bulletin.expired`, …), reported to the centre, and the words people read at the edge.
//!
//! **Invariant:** codes travel and are stored, texts are rendered only at the edges (the
//! bulletin's page, its CSV/XLSX report). The codes and their texts are rows of `reason`'s one
//! table ([`ReasonCode`]): [`RefusalCode`] is the pure core's small `Copy` view of the
//! `bulletin.*` rows ([`RefusalCode::reason`]), so a code is spelled and worded in one place and
//! its spelling never changes once released. Pure: no I/O.

use serde::{Serialize, Serializer};

use crate::reason::{Lang, ReasonCode};

macro_rules! refusal_codes {
    ($($(#[$doc:meta])* $var:ident => $reason:ident;)*) => {
        /// Why a bulletin (or one of its airings) did not air. Serialises as its dotted code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RefusalCode {
            $($(#[$doc])* $var,)*
        }

        impl RefusalCode {
            /// Every code, in table order.
            pub const ALL: &'static [RefusalCode] = &[$(RefusalCode::$var,)*];

            /// The row of `reason`'s table this code is.
            pub fn reason(self) -> ReasonCode {
                match self {
                    $(RefusalCode::$var => ReasonCode::$reason,)*
                }
            }

            /// The refusal a reason code is, if it is one of the `bulletin.*` rows.
            pub fn of_reason(code: &ReasonCode) -> Option<RefusalCode> {
                match code {
                    $(ReasonCode::$reason => Some(RefusalCode::$var),)*
                    _ => None,
                }
            }
        }
    };
}

refusal_codes! {
    /// Not signed by a pinned centre key (another key, or altered after signing), or a manifest's
    /// or cancel's signature presented as a bulletin's.
    Signature => BulletinSignature;
    /// The body does not decode (shape, format version, a field out of range).
    Malformed => BulletinMalformed;
    /// The station is not among the bulletin's targets.
    NotTargeted => BulletinNotTargeted;
    /// The validity window closed before the airing could start.
    Expired => BulletinExpired;
    /// The window opens further ahead than any window lasts.
    NotYet => BulletinNotYet;
    /// Every airing of this bulletin id aired already (a replay).
    Replayed => BulletinReplayed;
    /// The audio the station fetched is not the one the bulletin names (SHA-256 or size).
    Audio => BulletinAudio;
    /// A normal or priority bulletin longer than the station's session limit.
    TooLong => BulletinTooLong;
    /// The centre cancelled it before this airing.
    Cancelled => BulletinCancelled;
    /// The centre's own: the window closed and the station never received the bulletin.
    ExpiredUndelivered => BulletinExpiredUndelivered;
}

impl RefusalCode {
    /// The dotted code, as on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match ReasonCode::ALL.iter().find(|c| **c == self.reason()) {
            Some(c) => static_str(c.as_str()),
            None => "bulletin.unknown",
        }
    }

    /// The code spelled `s`, if this build knows it as a bulletin refusal.
    pub fn parse(s: &str) -> Option<RefusalCode> {
        RefusalCode::of_reason(&ReasonCode::parse(s))
    }

    /// The words shown to people in `lang`.
    pub fn text(self, lang: Lang) -> &'static str {
        match ReasonCode::ALL.iter().find(|c| **c == self.reason()) {
            Some(c) => static_str(c.text(lang)),
            None => "",
        }
    }

    /// The Vietnamese text (what pages and exports show).
    pub fn vi(self) -> &'static str {
        self.text(Lang::Vi)
    }

    /// The English text.
    pub fn en(self) -> &'static str {
        self.text(Lang::En)
    }
}

/// A text of a known row of `ReasonCode::ALL` (a `'static` table), as `'static`.
fn static_str(s: &'static str) -> &'static str {
    s
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RefusalCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::ReasonCode;

    #[test]
    fn every_code_has_both_texts_round_trips_and_is_its_reason_row() {
        let mut seen = std::collections::HashSet::new();
        for &c in RefusalCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.starts_with("bulletin."), "{s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.'),
                "{s}: codes are lowercase dotted"
            );
            assert!(!c.vi().is_empty() && c.vi() != c.en(), "{s}");
            assert!(!c.en().is_empty(), "{s}");
            assert_eq!(RefusalCode::parse(s), Some(c));
            assert_eq!(ReasonCode::parse(s), c.reason(), "{s}");
            assert_eq!(c.vi(), c.reason().vi());
            assert_eq!(c.en(), c.reason().en());
        }
        assert_eq!(RefusalCode::parse("bulletin.solar_flare"), None);
        assert_eq!(RefusalCode::parse("missed.station_down"), None);
        // Every `bulletin.*` row of the reason table is a refusal code.
        for r in ReasonCode::ALL {
            if r.as_str().starts_with("bulletin.") {
                assert!(RefusalCode::of_reason(r).is_some(), "{r}");
            }
        }
    }
}
