//! Why a station does not air a bulletin: one stable code each (`bulletin.signature`,
//! `bulletin.expired`, …), reported to the centre, and the words people read at the edge.
//!
//! **Invariant:** codes travel and are stored, texts are rendered only at the edges (the
//! bulletin's page, its CSV/XLSX report) from this one table; every code has a Vietnamese and an
//! English text, and a code's spelling never changes once released. The codes are spelled in the
//! `bulletin.` namespace, which `reason`'s table does not use, so the two tables never name one
//! code twice (when bulletin refusals first travel in a record or heartbeat, these rows move into
//! `reason`'s table unchanged). Pure: no I/O.

use serde::{Serialize, Serializer};

use crate::reason::Lang;

macro_rules! refusal_codes {
    ($($(#[$doc:meta])* $var:ident = $code:literal, $vi:literal, $en:literal;)*) => {
        /// Why a bulletin (or one of its airings) did not air. Serialises as its dotted code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RefusalCode {
            $($(#[$doc])* $var,)*
        }

        impl RefusalCode {
            /// Every code, in table order.
            pub const ALL: &'static [RefusalCode] = &[$(RefusalCode::$var,)*];

            /// The dotted code, as on the wire and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RefusalCode::$var => $code,)*
                }
            }

            /// The code spelled `s`, if this build knows it.
            pub fn parse(s: &str) -> Option<RefusalCode> {
                match s {
                    $($code => Some(RefusalCode::$var),)*
                    _ => None,
                }
            }

            /// The words shown to people in `lang`.
            pub fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((RefusalCode::$var, Lang::Vi) => $vi,
                      (RefusalCode::$var, Lang::En) => $en,)*
                }
            }
        }
    };
}

refusal_codes! {
    /// Not signed by a pinned centre key (another key, or altered after signing), or a manifest's
    /// or cancel's signature presented as a bulletin's.
    Signature = "bulletin.signature",
        "Trạm từ chối bản tin: chữ ký không phải của khóa trung tâm đã ghim (khóa khác hoặc nội dung bị sửa)",
        "not signed by a pinned centre key (another key, or altered)";
    /// The body does not decode (shape, format version, a field out of range).
    Malformed = "bulletin.malformed",
        "Trạm từ chối bản tin: sai định dạng hoặc có trường vượt giới hạn",
        "the bulletin is malformed or a field is out of range";
    /// The station is not among the bulletin's targets.
    NotTargeted = "bulletin.not_targeted",
        "Trạm từ chối bản tin: trạm không thuộc đối tượng nhận",
        "the station is not among the bulletin's targets";
    /// The validity window closed before the airing could start.
    Expired = "bulletin.expired",
        "Bản tin đã hết hiệu lực trước khi phát",
        "the validity window closed before it could air";
    /// The window opens further ahead than any window lasts (the station's clock is wrong, or
    /// the bulletin is misdated).
    NotYet = "bulletin.not_yet",
        "Trạm từ chối bản tin: thời điểm bắt đầu hiệu lực còn quá xa (đồng hồ của trạm hoặc ngày của bản tin sai)",
        "the window opens too far ahead (wrong station clock or misdated bulletin)";
    /// Every airing of this bulletin id aired already (a replay).
    Replayed = "bulletin.replayed",
        "Trạm từ chối bản tin: bản tin này đã được phát (bị gửi lại)",
        "every airing of this bulletin aired already (replayed)";
    /// The audio the station fetched is not the one the bulletin names (SHA-256 or size).
    Audio = "bulletin.audio",
        "Trạm từ chối bản tin: tệp âm thanh không khớp mã băm của bản tin",
        "the audio does not match the bulletin's SHA-256";
    /// A normal or priority bulletin longer than the station's session limit (only an
    /// emergency overrides it).
    TooLong = "bulletin.too_long",
        "Không phát bản tin: dài hơn thời lượng tối đa của một buổi phát của trạm",
        "longer than the station's session limit";
    /// The centre cancelled it before this airing.
    Cancelled = "bulletin.cancelled",
        "Bản tin đã bị trung tâm hủy",
        "cancelled by the centre";
    /// The centre's own: the window closed and the station never received the bulletin.
    ExpiredUndelivered = "bulletin.expired_undelivered",
        "Hết hiệu lực, chưa gửi được đến trạm",
        "expired, never delivered to the station";
}

impl RefusalCode {
    /// The Vietnamese text (what pages and exports show).
    pub fn vi(self) -> &'static str {
        self.text(Lang::Vi)
    }

    /// The English text.
    pub fn en(self) -> &'static str {
        self.text(Lang::En)
    }
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
    fn every_code_has_both_texts_round_trips_and_is_not_a_reason_code() {
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
            assert!(
                matches!(ReasonCode::parse(s), ReasonCode::Other(_)),
                "{s} is also a reason code"
            );
        }
        assert_eq!(RefusalCode::parse("bulletin.solar_flare"), None);
    }
}
