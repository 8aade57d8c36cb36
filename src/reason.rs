//! Reason codes: why an airing was not (fully) aired, why a record is missing, why the collector
//! refused a record — one stable code each, with the words people read per language.
//!
//! A code is a dotted string (`missed.station_down`, `failed.decoder`, `refused.bad_signature`):
//! that is what travels on the wire (`AiringRecord::reason_code`, records of version 2; a refusal's
//! `Rejection::code`) and what the collector's database stores (column `records.reason_code`). Texts are rendered only at the edges (pages, exports,
//! `loa status`, the status API's display field) from the one table below; the station's English
//! free text stays beside the code as *detail* for engineers.
//!
//! **Invariants:**
//! - This module is the single table code → Vietnamese text, English text; every known code has
//!   both, and a code's spelling never changes once released (add codes, never rename them).
//! - A spelling this build does not know parses as [`ReasonCode::Other`], kept verbatim, serialised
//!   back unchanged and shown as the code itself — never dropped. Decoding a wire record refuses
//!   it (`wire::WireError::ReasonCode`: a station with new codes needs a newer collector); it can
//!   only come from a database a newer build wrote.
//! - The free text of records written before codes existed (wire version 1) is read into a code
//!   by `wire::classify`, where outcomes live (this module imports nothing of the crate).
//!
//! No I/O; knows nothing of HTTP, SQLite, files or the wire's other types.

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
    /// The previous run's record of it was lost (state file unreadable, or more records held on
    /// a full disk than it holds): whether it aired is not known, and it was not aired again.
    MissedRecordLost = "missed.record_lost",
        "Không rõ đã phát hay chưa: bản ghi của trạm bị mất (tệp trạng thái hỏng hoặc đĩa đầy)", "not known whether it aired: the previous run's record was lost";
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
    /// The station's player was not running to take the airing (wire version 2 only: a version 1
    /// record said `player: …`, read as [`ReasonCode::Unknown`]).
    FailedPlayer = "failed.player",
        "Không phát được: bộ phát của trạm không hoạt động", "the station's player was not running";
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
    /// Refused: the body did not arrive within the collector's time limit.
    RefusedTimeout = "refused.timeout",
        "Từ chối: dữ liệu gửi đến quá chậm", "the body did not arrive in time";
    /// Refused: the body is not declared `application/json`.
    RefusedContentType = "refused.content_type",
        "Từ chối: dữ liệu không được khai báo là JSON", "the body is not declared application/json";
    /// Refused: a heartbeat too old, too far ahead, or not newer than the last one (a replay).
    RefusedStaleHeartbeat = "refused.stale_heartbeat",
        "Từ chối: tín hiệu trạng thái cũ hoặc bị gửi lại", "the heartbeat is stale or replayed";
    /// Refused: the collector failed internally (retry later).
    RefusedInternal = "refused.internal",
        "Từ chối: lỗi nội bộ của máy chủ", "internal error at the collector";
    /// Refused: a station-signed request's date is too far from the collector's clock (a
    /// replay, or the station's clock is wrong).
    RefusedStaleRequest = "refused.stale_request",
        "Từ chối: yêu cầu của trạm đã cũ hoặc đồng hồ của trạm sai lệch", "the station-signed request is stale (or the station's clock is wrong)";
    /// Refused: a station asked for another station's resource.
    RefusedNotThisStation = "refused.not_this_station",
        "Từ chối: trạm không được xem dữ liệu của trạm khác", "a station asked for another station's resource";
    /// Station sync refused something from the centre: not signed by a pinned centre key
    /// (another key, or altered bytes).
    SyncCentreSignature = "sync.centre_signature",
        "Trạm từ chối: chữ ký không phải của khóa trung tâm đã ghim (khóa khác hoặc dữ liệu bị sửa)", "not signed by a pinned centre key (another key, or altered)";
    /// Station sync refused a centre key rotation whose chain does not start at the pinned key.
    SyncRotationChain = "sync.rotation_chain",
        "Trạm từ chối: chuỗi đổi khóa trung tâm không nối từ khóa đã ghim", "the centre key rotation does not chain from the pinned key";
    /// Station sync refused a manifest that does not decode (shape, version, ranges).
    SyncManifestMalformed = "sync.manifest_malformed",
        "Trạm từ chối: bản kê lịch phát sai định dạng", "the manifest is malformed";
    /// Station sync refused a manifest naming an unsafe or unsorted file path.
    SyncManifestPath = "sync.manifest_path",
        "Trạm từ chối: bản kê có đường dẫn tệp không hợp lệ", "the manifest names an invalid file path";
    /// Station sync refused a manifest made for another station.
    SyncOtherStation = "sync.other_station",
        "Trạm từ chối: bản kê dành cho trạm khác", "the manifest is for another station";
    /// Station sync refused a manifest whose version is not newer than the active one (a replay).
    SyncReplayedVersion = "sync.replayed_version",
        "Trạm từ chối: phiên bản lịch không mới hơn phiên bản đang dùng (bị gửi lại)", "the manifest's version is not newer than the active one (replayed)";
    /// Station sync refused a manifest whose schedule text does not match its stated SHA-256.
    SyncScheduleHash = "sync.schedule_hash",
        "Trạm từ chối: mã băm lịch phát không khớp nội dung", "the schedule text does not match its SHA-256";
    /// Sync: the collector could not be reached, or answered with an error.
    SyncUnreachable = "sync.unreachable",
        "Đồng bộ: không liên lạc được với trung tâm", "the collector could not be reached";
    /// Sync: the collector does not have a file the manifest names.
    SyncContentMissing = "sync.content_missing",
        "Đồng bộ: trung tâm không có tệp mà bản kê yêu cầu", "the collector does not have a file the manifest names";
    /// Sync: a downloaded file's SHA-256 or size is not the manifest's (corrupt or truncated).
    SyncHashMismatch = "sync.hash_mismatch",
        "Đồng bộ: tệp tải về bị hỏng hoặc thiếu (sai mã băm)", "a downloaded file does not match its SHA-256";
    /// Sync: the files of the version would not fit on the station's disk.
    SyncDiskFull = "sync.disk_full",
        "Đồng bộ: không đủ dung lượng đĩa cho phiên bản mới", "not enough free disk for the new version";
    /// Sync: the version's schedule fails validation with its audio (as `loa check`).
    SyncScheduleInvalid = "sync.schedule_invalid",
        "Đồng bộ: lịch phát của phiên bản mới không hợp lệ", "the new version's schedule fails validation";
    /// Sync: the station could not write its content store or stage the version.
    SyncStoreFailed = "sync.store_failed",
        "Đồng bộ: không ghi được kho nội dung của trạm", "the station could not write its content store";
    /// Enrolment refused: the code is wrong, used already or expired (one answer for all three,
    /// so a guess learns nothing).
    EnrolmentBadCode = "enrolment.bad_code",
        "Từ chối ghi danh: mã ghi danh không đúng, đã được dùng hoặc đã hết hạn; hãy xin quản trị viên cấp mã mới",
        "the enrolment code is wrong, used or expired; ask an admin for a new one";
    /// Enrolment refused: the public key is already registered for another station.
    EnrolmentKeyInUse = "enrolment.key_in_use",
        "Từ chối ghi danh: khóa công khai này đã được đăng ký cho một trạm khác; hãy tạo khóa mới",
        "the public key is already registered for another station; make a new key";
    /// Bulletin refused: not signed by a pinned centre key (another key, or altered after
    /// signing), or a manifest's or cancel's signature presented as a bulletin's.
    BulletinSignature = "bulletin.signature",
        "Trạm từ chối bản tin: chữ ký không phải của khóa trung tâm đã ghim (khóa khác hoặc nội dung bị sửa)",
        "not signed by a pinned centre key (another key, or altered)";
    /// Bulletin refused: the body does not decode (shape, format version, a field out of range).
    BulletinMalformed = "bulletin.malformed",
        "Trạm từ chối bản tin: sai định dạng hoặc có trường vượt giới hạn",
        "the bulletin is malformed or a field is out of range";
    /// Bulletin refused: the station is not among its targets.
    BulletinNotTargeted = "bulletin.not_targeted",
        "Trạm từ chối bản tin: trạm không thuộc đối tượng nhận",
        "the station is not among the bulletin's targets";
    /// A bulletin airing dropped: the validity window closed before it could start.
    BulletinExpired = "bulletin.expired",
        "Bản tin đã hết hiệu lực trước khi phát",
        "the validity window closed before it could air";
    /// Bulletin refused: its window opens further ahead than any window lasts (the station's
    /// clock is wrong, or the bulletin is misdated).
    BulletinNotYet = "bulletin.not_yet",
        "Trạm từ chối bản tin: thời điểm bắt đầu hiệu lực còn quá xa (đồng hồ của trạm hoặc ngày của bản tin sai)",
        "the window opens too far ahead (wrong station clock or misdated bulletin)";
    /// Bulletin refused: every airing of this bulletin id aired already (a replay).
    BulletinReplayed = "bulletin.replayed",
        "Trạm từ chối bản tin: bản tin này đã được phát (bị gửi lại)",
        "every airing of this bulletin aired already (replayed)";
    /// Bulletin refused: the audio the station fetched is not the one it names (SHA-256, size).
    BulletinAudio = "bulletin.audio",
        "Trạm từ chối bản tin: tệp âm thanh không khớp mã băm của bản tin",
        "the audio does not match the bulletin's SHA-256";
    /// A normal or priority bulletin longer than the station's session limit (only an emergency
    /// overrides it).
    BulletinTooLong = "bulletin.too_long",
        "Không phát bản tin: dài hơn thời lượng tối đa của một buổi phát của trạm",
        "longer than the station's session limit";
    /// The centre cancelled the bulletin before this airing (or during it).
    BulletinCancelled = "bulletin.cancelled",
        "Bản tin đã bị trung tâm hủy",
        "cancelled by the centre";
    /// The centre's own: the window closed and the station never received the bulletin.
    BulletinExpiredUndelivered = "bulletin.expired_undelivered",
        "Hết hiệu lực, chưa gửi được đến trạm",
        "expired, never delivered to the station";
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

    /// Whether a station may state this code in a record (wire version 2): a known code that is
    /// not the collector's own (`no_record`, `not_yet_due`, `refused.*`,
    /// `bulletin.expired_undelivered`) nor a sync refusal (`sync.*`, reported in heartbeats,
    /// never the reason of an airing) nor an enrolment refusal. The `bulletin.*` codes are the
    /// reasons of bulletin airings not aired (and of the stations' refusals of bulletins).
    pub fn is_station_code(&self) -> bool {
        !matches!(self, Self::Other(_) | Self::NoRecord | Self::NotYetDue)
            && !self.as_str().starts_with("refused.")
            && !self.as_str().starts_with("sync.")
            && !self.as_str().starts_with("enrolment.")
            && *self != Self::BulletinExpiredUndelivered
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
}
