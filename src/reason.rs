//! Reason codes: why an airing was not (fully) aired, why a record is missing, why the collector
//! refused a record — one stable code each, with the words people read per language.
//!
//! A code is a dotted string (`missed.station_down`, `failed.decoder`, `refused.bad_signature`):
//! that is what travels on the wire (`AiringRecord::reason_code`, `Rejection::code`) and what the
//! collector's database stores. Texts are rendered only at the edges (pages, exports,
//! `loa status`, the status API's display field) from the one table below; the station's English
//! free text stays beside the code as *detail* for engineers.
//!
//! **Invariants:**
//! - This module is the single table code → Vietnamese text, English text; every known code has
//!   both, and a code's spelling never changes once released (add codes, never rename them).
//! - A code this build does not know (from a newer station) is kept as [`ReasonCode::Other`] with
//!   its exact spelling, serialises back unchanged and is shown as the code itself — never dropped.
//! - [`classify`] maps the free text of records written before codes existed (wire version 1) to a
//!   code only where the text is one this project's stations write (an exact phrase); anything else
//!   is [`ReasonCode::Unknown`], with the text kept as detail. It never alters stored bytes.
//!
//! No I/O; knows nothing of HTTP, SQLite or files.

use crate::wire::Outcome;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A language a reason can be shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Vietnamese: pages, exports, `loa status`.
    Vi,
    /// English: detail for engineers, logs.
    En,
}

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $var:ident = $code:literal, $vi:literal, $en:literal;)*) => {
        /// Why an outcome happened. Serialises as its dotted code.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ReasonCode {
            $($(#[$doc])* $var,)*
            /// A code this build does not know (a newer station's), kept verbatim.
            Other(String),
        }

        impl ReasonCode {
            /// Every known code, in table order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$var,)*];

            /// The dotted code, as on the wire and in the database.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ReasonCode::$var => $code,)*
                    ReasonCode::Other(s) => s,
                }
            }

            /// The code spelled `s`; an unknown spelling is kept as [`ReasonCode::Other`].
            pub fn parse(s: &str) -> Self {
                match s {
                    $($code => ReasonCode::$var,)*
                    other => ReasonCode::Other(other.to_owned()),
                }
            }

            /// The words shown to people in `lang`; an unknown code is shown as itself.
            pub fn text(&self, lang: Lang) -> &str {
                match (self, lang) {
                    $((ReasonCode::$var, Lang::Vi) => $vi,
                      (ReasonCode::$var, Lang::En) => $en,)*
                    (ReasonCode::Other(s), _) => s,
                }
            }
        }
    };
}

reason_codes! {
    /// The station was not running at the occurrence's time.
    MissedStationDown = "missed.station_down",
        "Trạm ngừng hoạt động vào giờ phát", "the station was down at the scheduled time";
    /// The station's clock jumped forward past the start.
    MissedClockJump = "missed.clock_jump",
        "Đồng hồ của trạm nhảy qua giờ phát", "the station's clock jumped forward past the start";
    /// The station was running but could not start within the grace.
    MissedStartTooLate = "missed.start_too_late",
        "Trạm không bắt đầu phát kịp trong thời gian cho phép", "the station could not start it within its grace";
    /// Missed, and the station gave no reason.
    MissedUnspecified = "missed.unspecified",
        "Bỏ lỡ, trạm không nêu lý do", "missed, no reason given";
    /// A soft start found the air busy past its grace.
    SkippedAirBusy = "skipped.air_busy",
        "Bỏ qua: đang phát chương trình khác quá thời gian chờ", "the air was busy past the grace";
    /// A hard start overlapped an airing of equal or higher priority.
    SkippedOverlap = "skipped.overlap",
        "Bỏ qua: trùng giờ với chương trình cùng hoặc cao hơn mức ưu tiên", "a hard start overlapped an airing of equal or higher priority";
    /// Skipped, and the station gave no reason.
    SkippedUnspecified = "skipped.unspecified",
        "Bỏ qua, trạm không nêu lý do", "skipped, no reason given";
    /// Cut or displaced by an airing of higher priority (e.g. an emergency announcement).
    PreemptedHigherPriority = "preempted.higher_priority",
        "Bị ngắt để phát chương trình ưu tiên cao hơn", "cut by an airing of higher priority";
    /// Preempted, and the station gave no reason.
    PreemptedUnspecified = "preempted.unspecified",
        "Bị ngắt, trạm không nêu lý do", "preempted, no reason given";
    /// The station (or its player) was shut down during the airing.
    PartialShutdown = "partial.shutdown",
        "Phát dở: trạm được tắt trong khi phát", "the station shut down during the airing";
    /// The station stopped during the airing (crash or power loss).
    PartialCrash = "partial.crash",
        "Phát dở: trạm dừng đột ngột (sự cố hoặc mất điện)", "the station stopped during the airing (crash or power loss)";
    /// Cut at its hard stop (`max_secs`).
    PartialHardStop = "partial.hard_stop",
        "Phát dở: bị cắt khi hết thời lượng tối đa", "cut at its hard stop (max_secs)";
    /// Part aired; an audio file could not be read.
    PartialFileMissing = "partial.file_missing",
        "Phát dở: thiếu tệp âm thanh", "an audio file could not be read";
    /// Part aired; an audio file could not be decoded.
    PartialDecoder = "partial.decoder",
        "Phát dở: tệp âm thanh bị lỗi, không giải mã được", "an audio file could not be decoded";
    /// Part aired; the audio output failed.
    PartialOutput = "partial.output",
        "Phát dở: thiết bị phát âm thanh bị lỗi", "the audio output failed";
    /// Part aired; the relayed stream failed.
    PartialRelay = "partial.relay",
        "Phát dở: lỗi tiếp sóng", "the relayed stream failed";
    /// Ended early, and the station gave no reason.
    PartialUnspecified = "partial.unspecified",
        "Phát dở, trạm không nêu lý do", "ended early, no reason given";
    /// The station stopped before the first sample (crash or power loss).
    FailedCrash = "failed.crash",
        "Không phát được: trạm dừng đột ngột trước khi phát (sự cố hoặc mất điện)", "the station stopped before the first sample (crash or power loss)";
    /// Not started: the station could not make its in-flight marker durable (state file
    /// unwritable), and a start it could not remember might have aired twice after a crash.
    FailedStateUnwritable = "failed.state_unwritable",
        "Không phát: trạm không ghi được dấu đang phát (lỗi ổ đĩa), để tránh phát hai lần", "not started: the in-flight marker could not be made durable (it could air twice after a crash)";
    /// Stopped (or shut down) before the first sample.
    FailedStopped = "failed.stopped",
        "Không phát được: bị dừng trước khi phát", "stopped before the first sample";
    /// No audio file could be read.
    FailedFileMissing = "failed.file_missing",
        "Không phát được: thiếu tệp âm thanh", "an audio file could not be read";
    /// No audio file could be decoded.
    FailedDecoder = "failed.decoder",
        "Không phát được: tệp âm thanh bị lỗi, không giải mã được", "an audio file could not be decoded";
    /// The audio output could not be opened or failed.
    FailedOutput = "failed.output",
        "Không phát được: thiết bị phát âm thanh bị lỗi", "the audio output was unavailable or failed";
    /// The relayed stream failed.
    FailedRelay = "failed.relay",
        "Không phát được: lỗi tiếp sóng", "the relayed stream failed";
    /// The airing had nothing that could be played.
    FailedNoPlayableItems = "failed.no_playable_items",
        "Không phát được: không có tệp nào phát được", "the airing had no playable items";
    /// Failed, and the station gave no reason.
    FailedUnspecified = "failed.unspecified",
        "Không phát được, trạm không nêu lý do", "failed, no reason given";
    /// A planned occurrence past due for which the collector holds no record.
    NoRecord = "no_record",
        "Trạm không gửi bản ghi cho lần phát này", "the station sent no record for this airing";
    /// A planned occurrence whose record cannot be expected yet.
    NotYetDue = "not_yet_due",
        "Chưa đến giờ", "not yet due";
    /// A record whose free text matches no known reason (text kept as detail).
    Unknown = "unknown",
        "Lý do khác (xem chi tiết)", "other reason (see detail)";
    /// Refused: the body or record is not valid JSON of the expected shape.
    RefusedMalformed = "refused.malformed",
        "Từ chối: bản ghi sai định dạng", "the record or batch is malformed";
    /// Refused: a wire version this collector does not read.
    RefusedWireVersion = "refused.wire_version",
        "Từ chối: phiên bản dữ liệu không được hỗ trợ", "wire version not supported";
    /// Refused: the batch is larger than the collector takes.
    RefusedTooLarge = "refused.too_large",
        "Từ chối: lô bản ghi quá lớn", "the batch is too large";
    /// Refused: the stated hash is not the SHA-256 of the record.
    RefusedHashMismatch = "refused.hash_mismatch",
        "Từ chối: mã băm không khớp (bản ghi bị sửa)", "the record's hash does not match (altered)";
    /// Refused: not signed by the station's registered key.
    RefusedBadSignature = "refused.bad_signature",
        "Từ chối: chữ ký không hợp lệ với khóa đã đăng ký của trạm", "not signed by the station's registered key";
    /// Refused: the record belongs to another station.
    RefusedWrongStation = "refused.wrong_station",
        "Từ chối: bản ghi thuộc trạm khác", "the record belongs to another station";
    /// Refused: sequence numbers out of order, not starting at 1 or with a gap in the batch.
    RefusedSequence = "refused.sequence",
        "Từ chối: số thứ tự bản ghi không hợp lệ", "bad sequence number";
    /// Refused: the record does not chain to the previous one.
    RefusedChain = "refused.chain",
        "Từ chối: bản ghi không nối chuỗi với bản ghi trước", "the record does not chain to the previous one";
    /// Refused: a different record is already stored under this sequence number.
    RefusedConflict = "refused.conflict",
        "Từ chối: đã lưu một bản ghi khác cùng số thứ tự", "a different record is stored at this seq";
    /// Refused: the station is not registered.
    RefusedUnknownStation = "refused.unknown_station",
        "Từ chối: trạm chưa được đăng ký", "the station is not registered";
    /// Refused: the collector failed internally (retry later).
    RefusedInternal = "refused.internal",
        "Từ chối: lỗi nội bộ của máy chủ", "internal error at the collector";
}

impl ReasonCode {
    /// The Vietnamese text (what pages and exports show).
    pub fn vi(&self) -> &str {
        self.text(Lang::Vi)
    }

    /// The English text.
    pub fn en(&self) -> &str {
        self.text(Lang::En)
    }

    /// The code for an outcome that came with no reason at all; `None` for `aired`.
    pub fn unspecified(outcome: Outcome) -> Option<Self> {
        Some(match outcome {
            Outcome::Aired => return None,
            Outcome::Partial => Self::PartialUnspecified,
            Outcome::Failed => Self::FailedUnspecified,
            Outcome::Missed => Self::MissedUnspecified,
            Outcome::Preempted => Self::PreemptedUnspecified,
            Outcome::Skipped => Self::SkippedUnspecified,
        })
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReasonCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// The code for a record that carries only free text (wire version 1), from the exact phrases
/// this project's stations write; `None` for an aired record without a reason.
pub fn classify(outcome: Outcome, text: Option<&str>) -> Option<ReasonCode> {
    use ReasonCode as C;
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return ReasonCode::unspecified(outcome);
    };
    // Whole phrases the station writes first in its reason (station/scheduler, station daemon,
    // player); what follows them is detail (times, keys, paths).
    let starts = |p: &str| text.starts_with(p);
    let code = match outcome {
        Outcome::Missed if starts("station was down") => C::MissedStationDown,
        Outcome::Missed if starts("clock jumped forward by ") => C::MissedClockJump,
        Outcome::Missed if starts("station could not start it in time") => C::MissedStartTooLate,
        Outcome::Skipped if starts("air busy with ") => C::SkippedAirBusy,
        Outcome::Skipped if starts("hard start overlaps ") => C::SkippedOverlap,
        Outcome::Preempted if starts("preempted by ") => C::PreemptedHigherPriority,
        Outcome::Partial if starts("station stopped during the airing (crash or power loss)") => {
            C::PartialCrash
        }
        Outcome::Failed
            if starts("station stopped before the first sample (crash or power loss)") =>
        {
            C::FailedCrash
        }
        Outcome::Partial
            if starts("station shut down")
                || starts("player shut down")
                || starts("the player shut down") =>
        {
            C::PartialShutdown
        }
        Outcome::Partial if starts("hard stop at ") => C::PartialHardStop,
        Outcome::Failed if starts("stopped before the first sample") => C::FailedStopped,
        Outcome::Failed if starts("not started: the in-flight marker cannot be made durable") => {
            C::FailedStateUnwritable
        }
        Outcome::Failed
            if starts("the session has no playable items") || starts("no item could be read") =>
        {
            C::FailedNoPlayableItems
        }
        Outcome::Partial | Outcome::Failed => match item_cause(text) {
            Some(cause) => cause_code(outcome, cause),
            None => C::Unknown,
        },
        _ => C::Unknown,
    };
    Some(code)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    FileMissing,
    Decoder,
    Output,
    Relay,
}

/// The cause named by the player's first reason (`item N skipped: PATH: cannot read: …`,
/// `item N skipped: PATH: not a decodable …`, `relay: …`, the output's errors).
fn item_cause(text: &str) -> Option<Cause> {
    let first = text.split("; ").next().unwrap_or(text);
    if first.starts_with("relay: ") {
        return Some(Cause::Relay);
    }
    if first.starts_with("item ") {
        if first.contains(": cannot read: ") {
            return Some(Cause::FileMissing);
        }
        if first.contains(": not a decodable ") {
            return Some(Cause::Decoder);
        }
        return None;
    }
    if first == "output unavailable"
        || first.starts_with("no audio output device")
        || first.starts_with("audio device ")
    {
        return Some(Cause::Output);
    }
    None
}

fn cause_code(outcome: Outcome, cause: Cause) -> ReasonCode {
    use ReasonCode as C;
    let partial = outcome == Outcome::Partial;
    match (cause, partial) {
        (Cause::FileMissing, true) => C::PartialFileMissing,
        (Cause::FileMissing, false) => C::FailedFileMissing,
        (Cause::Decoder, true) => C::PartialDecoder,
        (Cause::Decoder, false) => C::FailedDecoder,
        (Cause::Output, true) => C::PartialOutput,
        (Cause::Output, false) => C::FailedOutput,
        (Cause::Relay, true) => C::PartialRelay,
        (Cause::Relay, false) => C::FailedRelay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_both_texts_and_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for c in ReasonCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.'),
                "{s}: codes are lowercase dotted"
            );
            assert!(!c.vi().is_empty() && c.vi() != s, "{s}: no Vietnamese text");
            assert!(!c.en().is_empty() && c.en() != s, "{s}: no English text");
            assert_ne!(c.vi(), c.en(), "{s}: Vietnamese text is the English one");
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            let back: ReasonCode = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, c);
            assert_eq!(&ReasonCode::parse(s), c);
        }
    }

    #[test]
    fn an_unknown_code_is_kept_and_shown_as_itself() {
        let c: ReasonCode = serde_json::from_str("\"missed.solar_flare\"").unwrap();
        assert_eq!(c, ReasonCode::Other("missed.solar_flare".into()));
        assert_eq!(c.vi(), "missed.solar_flare");
        assert_eq!(c.en(), "missed.solar_flare");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"missed.solar_flare\"");
    }

    fn check(outcome: Outcome, text: Option<&str>, expected: Option<ReasonCode>) {
        assert_eq!(classify(outcome, text), expected, "{outcome:?} {text:?}");
    }

    #[test]
    fn v1_free_text_maps_to_a_code_only_where_exact() {
        use Outcome::*;
        use ReasonCode as C;
        check(Aired, None, None);
        check(Missed, None, Some(C::MissedUnspecified));
        check(Failed, Some(" "), Some(C::FailedUnspecified));
        check(
            Missed,
            Some(
                "station was down (last alive 2019-03-03T21:50:00Z, restarted 2019-03-03T23:00:00Z)",
            ),
            Some(C::MissedStationDown),
        );
        check(
            Missed,
            Some("clock jumped forward by 3600 s (from a to b) past its start"),
            Some(C::MissedClockJump),
        );
        check(
            Missed,
            Some("station could not start it in time (late by 40 s)"),
            Some(C::MissedStartTooLate),
        );
        check(
            Skipped,
            Some("air busy with x (Urgent) for more than the 60 s grace"),
            Some(C::SkippedAirBusy),
        );
        check(
            Skipped,
            Some("hard start overlaps x of equal priority"),
            Some(C::SkippedOverlap),
        );
        check(
            Preempted,
            Some("preempted by urgent@2019"),
            Some(C::PreemptedHigherPriority),
        );
        check(Partial, Some("station shut down"), Some(C::PartialShutdown));
        check(
            Partial,
            Some("station shut down (the player shut down)"),
            Some(C::PartialShutdown),
        );
        check(
            Partial,
            Some("station stopped during the airing (crash or power loss); at least 12 s aired"),
            Some(C::PartialCrash),
        );
        check(
            Failed,
            Some("station stopped before the first sample (crash or power loss)"),
            Some(C::FailedCrash),
        );
        check(
            Failed,
            Some("not started: the in-flight marker cannot be made durable (state.bin: EIO)"),
            Some(C::FailedStateUnwritable),
        );
        check(
            Partial,
            Some("hard stop at max_secs 900.000"),
            Some(C::PartialHardStop),
        );
        check(
            Failed,
            Some("item 1 skipped: a.mp3: cannot read: No such file or directory (os error 2)"),
            Some(C::FailedFileMissing),
        );
        check(
            Partial,
            Some("item 2 skipped: b.wav: not a decodable WAV/MP3/Ogg Vorbis/FLAC file: eof"),
            Some(C::PartialDecoder),
        );
        check(Failed, Some("output unavailable"), Some(C::FailedOutput));
        check(Failed, Some("relay: connect failed"), Some(C::FailedRelay));
        check(
            Failed,
            Some("the session has no playable items"),
            Some(C::FailedNoPlayableItems),
        );
        // Text no station of this project writes, or a phrase under another outcome.
        check(Missed, Some("mất điện"), Some(C::Unknown));
        check(Failed, Some("station was down"), Some(C::Unknown));
        check(Partial, Some("item 3: weird"), Some(C::Unknown));
    }
}
