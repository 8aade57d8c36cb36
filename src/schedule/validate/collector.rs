//! `[collector]`: where the station ships its records and heartbeats.
//!
//! **Invariant:** the URL is an http(s) URL with a host, and the heartbeat period is at least
//! one second (absent: [`DEFAULT_HEARTBEAT_SECS`]).

use super::super::CollectorLink;
use super::super::file::{Ctx, RawStation};
use super::is_http_url;

pub const DEFAULT_HEARTBEAT_SECS: u32 = 60;

/// Check `[collector]` (absent: the station ships nothing).
pub(super) fn check(cx: &mut Ctx, raw: &RawStation) -> Option<CollectorLink> {
    raw.collector.as_ref().map(|c| {
        let c = c.get_ref();
        if !is_http_url(c.url.get_ref()) {
            cx.push(
                &c.url.span(),
                "collector.url",
                format!(
                    "địa chỉ máy chủ trung tâm `{}` không phải địa chỉ http(s)",
                    c.url.get_ref()
                ),
                "viết theo mẫu `http://collector.example:8080`",
            );
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
            url: c.url.get_ref().clone(),
            heartbeat_secs,
        }
    })
}
