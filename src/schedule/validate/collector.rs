//! `[collector]`: where the station ships its records and heartbeats.
//!
//! **Invariant:** the table names at least one collector, by `url = "…"` (one) or
//! `urls = ["…", …]` (several, in order of preference), never both; every URL is an http(s) URL
//! with a host that parses (`crate::endpoints::check_url`), none twice; the heartbeat period is
//! at least one second (absent: [`DEFAULT_HEARTBEAT_SECS`]).

use super::super::CollectorLink;
use super::super::file::{Ctx, RawStation};
use super::is_http_url;

pub const DEFAULT_HEARTBEAT_SECS: u32 = 60;

const URL_HINT: &str = "viết theo mẫu `http://collector.example:8080`";

/// Check `[collector]` (absent: the station ships nothing).
pub(super) fn check(cx: &mut Ctx, raw: &RawStation) -> Option<CollectorLink> {
    raw.collector.as_ref().map(|table| {
        let c = table.get_ref();
        // (span, field, url) of every URL named.
        let mut named: Vec<(std::ops::Range<usize>, String, String)> = Vec::new();
        match (&c.url, &c.urls) {
            (Some(_), Some(list)) => cx.push(
                &list.span(),
                "collector.urls",
                "ghi cả `url` lẫn `urls` trong [collector]".into(),
                "chỉ giữ một: `urls = [\"http://a:8080\", \"http://b:8080\"]` (nhiều máy chủ) \
                 hoặc `url = \"http://a:8080\"` (một máy chủ)",
            ),
            (None, None) => cx.push(
                &table.span(),
                "collector.urls",
                "[collector] không ghi địa chỉ máy chủ trung tâm nào".into(),
                "ghi `urls = [\"http://a:8080\", \"http://b:8080\"]` hoặc `url = \"http://a:8080\"`",
            ),
            (Some(u), None) => named.push((u.span(), "collector.url".into(), u.get_ref().clone())),
            (None, Some(list)) if list.get_ref().is_empty() => cx.push(
                &list.span(),
                "collector.urls",
                "danh sách `urls` rỗng".into(),
                "ghi ít nhất một địa chỉ, ví dụ `urls = [\"http://collector.example:8080\"]`",
            ),
            (None, Some(list)) => {
                for (i, u) in list.get_ref().iter().enumerate() {
                    named.push((u.span(), format!("collector.urls[{i}]"), u.get_ref().clone()));
                }
            }
        }
        let mut urls: Vec<String> = Vec::new();
        for (span, field, url) in named {
            let checked = crate::endpoints::check_url(&url)
                .ok()
                .filter(|_| is_http_url(&url));
            match checked {
                None => cx.push(
                    &span,
                    &field,
                    format!("địa chỉ máy chủ trung tâm `{url}` không phải địa chỉ http(s) hợp lệ"),
                    URL_HINT,
                ),
                Some(u) if urls.contains(&u) => cx.push(
                    &span,
                    &field,
                    format!("địa chỉ máy chủ trung tâm `{url}` ghi hai lần"),
                    "bỏ dòng trùng",
                ),
                Some(u) => urls.push(u),
            }
        }
        let heartbeat_secs = match &c.heartbeat_secs {
            Some(h) if *h.get_ref() == 0 => {
                cx.push(
                    &h.span(),
                    "collector.heartbeat_secs",
                    "heartbeat_secs bằng 0".into(),
                    "ghi chu kỳ báo hiệu (heartbeat) tính bằng giây, ví dụ 60",
                );
                DEFAULT_HEARTBEAT_SECS
            }
            Some(h) => *h.get_ref(),
            None => DEFAULT_HEARTBEAT_SECS,
        };
        CollectorLink {
            urls,
            heartbeat_secs,
        }
    })
}
