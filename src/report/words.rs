//! The Vietnamese words of the report's built-in codes: the categories every schedule has
//! (`relay`, `other`), the two sources of what aired (relay, the station's files), and what
//! became of a bulletin airing (the *Kết quả* of its row, and its *Bản tin* column).
//!
//! **Invariant:** relaying is called *tiếp sóng* wherever a person reads it, and the word is
//! spelled only in [`relay_vi`]: pages, CSV, XLSX and DOCX all come through here (the codes on
//! the wire and in the database stay `relay`, `other`, `file`).

/// The word for relaying a station's programme, as a cell or a sentence starts (`capital`) or
/// inside one.
pub fn relay_vi(capital: bool) -> &'static str {
    if capital {
        "Tiếp sóng"
    } else {
        "tiếp sóng"
    }
}

/// A category as people read it, pages and exports alike: the two built-in ones (`relay`,
/// `other`) and the codes docs/schedules.md gives as examples (`notice`, `news`, `ident`) in
/// Vietnamese, any other code of the schedule as written (`cchc` is itself Vietnamese).
pub fn category_vi(c: &str) -> &str {
    match c {
        "relay" => relay_vi(false),
        "other" => "khác",
        "notice" => "thông báo",
        "news" => "tin tức",
        "ident" => "nhạc hiệu",
        "bulletin" => "bản tin",
        c => c,
    }
}

/// What *Kết quả* says for row `r`: its status's label ([`Status::label_vi`]), or for a bulletin
/// airing what became of it (the record's outcome).
pub fn status_vi(r: &Row) -> &'static str {
    if r.status != Status::Bulletin {
        return r.status.label_vi();
    }
    match r.outcome {
        Some(Outcome::Aired) => "Bản tin: đã phát",
        Some(Outcome::Partial) => "Bản tin: phát không trọn",
        Some(Outcome::Preempted) => "Bản tin: bị ngắt",
        Some(Outcome::Failed) => "Bản tin: lỗi, không phát được",
        Some(Outcome::Skipped) => "Bản tin: không phát",
        Some(Outcome::Missed) => "Bản tin: bỏ lỡ",
        None => "Bản tin",
    }
}

/// The *Bản tin* cell of a bulletin airing: the bulletin's title when the centre knows it (else
/// its id), which airing of how many, and "giọng đọc tổng hợp" when its audio was read by
/// text-to-speech — e.g. `Cảnh báo bão số 5 (lần 1/3, giọng đọc tổng hợp)`.
pub fn bulletin_vi(b: &BulletinAiring, known: Option<&BulletinInfo>) -> String {
    let mut s = match known {
        Some(k) => format!("{} (lần {}/{}", k.title, b.repeat, k.repeats),
        None => format!("{} (lần {}", b.id, b.repeat),
    };
    if b.synthetic || known.is_some_and(|k| k.synthetic) {
        s.push_str(", giọng đọc tổng hợp");
    }
    s.push(')');
    s
}

/// A source key (`reconcile::source_key`: `relay` or `file`) as people read it.
pub fn source_vi(key: &str) -> &'static str {
    match key {
        "relay" => relay_vi(true),
        _ => "Tệp của trạm",
    }
}

/// Why a station's plan is unknown ([`super::StationSection::plan_note`], the plan source's
/// technical note) as people read it, in one sentence.
pub fn plan_note_vi(note: &str) -> String {
    let why = if note.starts_with("no schedule file") {
        "trạm chưa đăng ký tệp lịch"
    } else if note.starts_with("the plan is being computed") {
        "kế hoạch đang được tính, tải lại sau ít phút"
    } else if note.starts_with("schedule ") && note.contains(" does not load") {
        "tệp lịch của trạm có lỗi"
    } else {
        "không đọc được lịch của trạm"
    };
    format!("Chưa lập được kế hoạch phát ({why}); các buổi phát được tính theo bản ghi của trạm.")
}

use super::source::BulletinInfo;
use crate::reconcile::{BulletinAiring, Row, Status};
use crate::wire::Outcome;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulletin_airing_is_named_by_title_repeat_and_voice() {
        let b = BulletinAiring {
            id: "0123456789abcdef0123456789abcdef".into(),
            repeat: 1,
            synthetic: false,
        };
        let known = BulletinInfo {
            title: "Cảnh báo bão số 5".into(),
            repeats: 3,
            synthetic: true,
        };
        assert_eq!(
            bulletin_vi(&b, Some(&known)),
            "Cảnh báo bão số 5 (lần 1/3, giọng đọc tổng hợp)"
        );
        let recorded = BulletinInfo {
            synthetic: false,
            ..known
        };
        assert_eq!(
            bulletin_vi(&b, Some(&recorded)),
            "Cảnh báo bão số 5 (lần 1/3)"
        );
        assert_eq!(
            bulletin_vi(&b, None),
            "0123456789abcdef0123456789abcdef (lần 1)"
        );
        assert_eq!(category_vi("bulletin"), "bản tin");
    }

    #[test]
    fn relaying_is_one_word_everywhere() {
        assert_eq!(category_vi("relay"), "tiếp sóng");
        assert_eq!(source_vi("relay"), "Tiếp sóng");
        assert_eq!(source_vi("file"), "Tệp của trạm");
        assert_eq!(category_vi("other"), "khác");
        assert_eq!(category_vi("cchc"), "cchc");
        assert_eq!(category_vi("notice"), "thông báo");
        assert_eq!(category_vi("tin-dia-phuong"), "tin-dia-phuong");
    }

    #[test]
    fn plan_notes_are_told_in_vietnamese() {
        for (note, why) in [
            (
                "no schedule file registered for this station",
                "chưa đăng ký tệp lịch",
            ),
            ("schedule /x.toml does not load: 1 error: …", "có lỗi"),
            (
                "the plan is being computed: audio facts …",
                "đang được tính",
            ),
            ("anything else", "không đọc được lịch"),
        ] {
            let vi = plan_note_vi(note);
            assert!(vi.contains(why), "{vi}");
            assert!(vi.starts_with("Chưa lập được kế hoạch phát ("), "{vi}");
        }
    }
}
