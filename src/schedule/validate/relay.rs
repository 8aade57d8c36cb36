//! The `relay` table of a slot: a live stream relayed for a number of minutes, with a fallback
//! playlist.
//!
//! **Invariant:** the URL is an http(s) URL with a host; the relay lasts 1 minute up to
//! `max_session_minutes`; the fallback entries are checked as playlist entries; the silence
//! threshold lies in [`SILENCE_THRESHOLD_DBFS_RANGE`].

use std::ops::RangeInclusive;
use toml::Spanned;

use super::super::file::{Ctx, RawRelay};
use super::super::{DEFAULT_SILENCE_THRESHOLD_DBFS, RelaySpec, SlotContent};
use super::slots::Items;
use super::{in_range, is_http_url};

/// Accepted relay `silence_threshold_dbfs` values, in dBFS (0 is full scale; -120 is below any
/// real upstream's noise floor).
pub const SILENCE_THRESHOLD_DBFS_RANGE: RangeInclusive<f64> = -120.0..=-1.0;

/// Check the relay of the slot at `field`.
pub(super) fn check(
    cx: &mut Ctx,
    relay: &Spanned<RawRelay>,
    field: &str,
    max_session_minutes: u32,
    items: &mut Items,
) -> Option<SlotContent> {
    let r = relay.get_ref();
    if !is_http_url(r.url.get_ref()) {
        cx.push(
            &r.url.span(),
            &format!("{field}.relay.url"),
            format!(
                "địa chỉ tiếp sóng `{}` không phải địa chỉ http(s)",
                r.url.get_ref()
            ),
            "tiếp sóng một luồng Icecast/Shoutcast, ví dụ \"http://127.0.0.1:8000/city.mp3\"",
        );
    }
    if *r.minutes.get_ref() == 0 {
        cx.push(
            &r.minutes.span(),
            &format!("{field}.relay.minutes"),
            "relay.minutes bằng 0".into(),
            "ghi thời lượng tiếp sóng, tính bằng phút",
        );
    } else if *r.minutes.get_ref() > max_session_minutes {
        cx.push(
                        &r.minutes.span(),
                        &format!("{field}.relay.minutes"),
                        format!(
                            "phiên phát quá dài: tiếp sóng {} phút, dài hơn max_session_minutes = {max_session_minutes}",
                            r.minutes.get_ref()
                        ),
                        "rút ngắn thời gian tiếp sóng hoặc tăng max_session_minutes ở đầu tệp",
                    );
    }
    let fallback = r
        .fallback
        .as_ref()
        .map(|f| items.check_list(cx, f, &format!("{field}.relay.fallback")))
        .unwrap_or_default();
    Some(SlotContent::Relay(RelaySpec {
        url: r.url.get_ref().clone(),
        minutes: *r.minutes.get_ref(),
        fallback,
        silence_threshold_dbfs: in_range(
            cx,
            r.silence_threshold_dbfs.as_ref(),
            &format!("{field}.relay.silence_threshold_dbfs"),
            "dBFS",
            SILENCE_THRESHOLD_DBFS_RANGE,
            DEFAULT_SILENCE_THRESHOLD_DBFS,
        ),
    }))
}
