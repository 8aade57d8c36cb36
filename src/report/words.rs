//! The Vietnamese words of the report's built-in codes: the categories every schedule has
//! (`relay`, `other`) and the two sources of what aired (relay, the station's files).
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
        c => c,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
