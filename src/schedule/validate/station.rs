//! The top-level keys of a schedule file: `id`, `name`, `kind`, `area_code`, `timezone` and
//! `max_session_minutes`.
//!
//! **Invariant:** the station id is a valid id equal to the file's stem, so a station's file and
//! its airings' keys name it alike; a wrong value is reported at its span and replaced by the
//! default, so the rest of the file is still checked.

use chrono_tz::Tz;
use std::path::Path;

use super::super::file::{Ctx, RawStation};
use super::super::{DEFAULT_MAX_SESSION_MINUTES, DEFAULT_TIMEZONE, StationKind};
use super::is_valid_id;

/// Who the station is.
pub(super) struct Identity {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) kind: StationKind,
    pub(super) area_code: String,
    pub(super) timezone: Tz,
}

/// Check `id`, `name`, `kind`, `area_code` and `timezone`.
pub(super) fn check(cx: &mut Ctx, path: &Path, raw: &RawStation) -> Identity {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let id = raw.id.get_ref().trim().to_string();
    if !is_valid_id(&id) {
        cx.push(
            &raw.id.span(),
            "id",
            format!("mã trạm `{id}` không hợp lệ"),
            "chỉ dùng chữ thường không dấu, chữ số, `-` và `_`, ví dụ `phuong-tran-phu`",
        );
    } else if !stem.is_empty() && id != stem {
        cx.push(
            &raw.id.span(),
            "id",
            format!("mã trạm `{id}` không khớp với tên tệp `{stem}.toml`"),
            "đặt tên tệp là `<id>.toml` hoặc sửa id cho hai bên trùng nhau",
        );
    }
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() {
        cx.push(
            &raw.name.span(),
            "name",
            "tên trạm đang để trống".into(),
            "ghi tên hiển thị, ví dụ \"Đài truyền thanh phường Trần Phú\"",
        );
    }
    let kind = match raw.kind.get_ref().as_str() {
        "city" => StationKind::City,
        "ward" => StationKind::Ward,
        other => {
            cx.push(
                &raw.kind.span(),
                "kind",
                format!("loại trạm `{other}` không có"),
                "dùng `city` (đài thành phố) hoặc `ward` (trạm truyền thanh phường/xã)",
            );
            StationKind::Ward
        }
    };
    let area_code = raw.area_code.get_ref().trim().to_string();
    if area_code.is_empty() || !area_code.chars().all(|c| c.is_ascii_digit()) {
        cx.push(
            &raw.area_code.span(),
            "area_code",
            format!("mã địa bàn `{area_code}` không phải là số"),
            "ghi mã đơn vị hành chính, chỉ gồm chữ số",
        );
    }
    let timezone = match &raw.timezone {
        None => DEFAULT_TIMEZONE
            .parse::<Tz>()
            .unwrap_or(chrono_tz::Asia::Ho_Chi_Minh),
        Some(tz) => match tz.get_ref().parse::<Tz>() {
            Ok(z) => z,
            Err(_) => {
                cx.push(
                    &tz.span(),
                    "timezone",
                    format!("múi giờ `{}` không có", tz.get_ref()),
                    "dùng tên múi giờ IANA như `Asia/Ho_Chi_Minh` (mặc định) hoặc `Europe/Berlin`",
                );
                chrono_tz::Asia::Ho_Chi_Minh
            }
        },
    };
    Identity {
        id,
        name,
        kind,
        area_code,
        timezone,
    }
}

/// Check `max_session_minutes`: 1 minute up to a day.
pub(super) fn max_session_minutes(cx: &mut Ctx, raw: &RawStation) -> u32 {
    match &raw.max_session_minutes {
        None => DEFAULT_MAX_SESSION_MINUTES,
        Some(m) if *m.get_ref() == 0 => {
            cx.push(
                &m.span(),
                "max_session_minutes",
                "max_session_minutes bằng 0".into(),
                "ghi độ dài phiên phát tối đa, tính bằng phút, ví dụ 45",
            );
            DEFAULT_MAX_SESSION_MINUTES
        }
        Some(m) if *m.get_ref() > super::super::rules::MAX_AIRING_MINUTES => {
            cx.push(
                &m.span(),
                "max_session_minutes",
                format!(
                    "max_session_minutes = {} dài hơn một ngày ({} phút)",
                    m.get_ref(),
                    super::super::rules::MAX_AIRING_MINUTES
                ),
                "ghi độ dài phiên phát tối đa, tính bằng phút, ví dụ 45",
            );
            DEFAULT_MAX_SESSION_MINUTES
        }
        Some(m) => *m.get_ref(),
    }
}
