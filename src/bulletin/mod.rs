//! Bulletins: what the centre sends every targeted station to air ahead of (or within) its own
//! programme — normal, priority or emergency (Thông tư 39/2020/TT-BTTTT) — and how a station
//! decides to take one (docs/bulletins.md).
//!
//! - [`body`] — the bulletin and its cancellation as they travel (the bodies of centre-signed
//!   envelopes of kinds `bulletin` and `cancel`), every field range-checked;
//! - [`check`] — a station's acceptance: signature under its pinned centre key, targets, window,
//!   replay; and of the audio it fetched (`check_audio`);
//! - [`refusal`] — the refusal codes (`bulletin.*`) and their Vietnamese texts;
//! - [`airing`] — when a station airs its accepted bulletins: the pure decision beside the
//!   scheduler (emergency cuts in, priority at the item boundary, normal after the next session).
//!
//! **Invariant:** a station airs a bulletin only after [`check::check`] accepted it; the bytes
//! verified are the bytes received (the `centre::signed` envelope), and a signature over another
//! kind (a manifest, a cancel) never opens as a bulletin's. Pure: no I/O, no clock (`now` is
//! handed in); knows nothing of HTTP, SQLite or the station's daemon.

pub mod airing;
pub mod body;
pub mod check;
pub mod refusal;

/// The prefix of a bulletin airing's occurrence key (`bulletin:<id>#<repeat>`); a planned
/// airing's key is `{slot}@{instant}` and a slot name never contains `:`, so the two never meet.
pub const OCCURRENCE_PREFIX: &str = "bulletin:";

/// The occurrence key of airing `repeat` (from 1) of bulletin `id`, as its journal record names it.
pub fn occurrence_key(id: &str, repeat: u32) -> String {
    format!("{OCCURRENCE_PREFIX}{id}#{repeat}")
}

/// Whether an occurrence key names a bulletin airing (not a planned one).
pub fn is_bulletin_occurrence(key: &str) -> bool {
    key.starts_with(OCCURRENCE_PREFIX)
}

/// The bulletin id and repeat an occurrence key names, if it is a well-formed bulletin airing's.
pub fn parse_occurrence(key: &str) -> Option<(&str, u32)> {
    let rest = key.strip_prefix(OCCURRENCE_PREFIX)?;
    let (id, repeat) = rest.split_once('#')?;
    let repeat: u32 = repeat.parse().ok()?;
    (id.len() == 32
        && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && (1..=body::MAX_REPEATS).contains(&repeat))
    .then_some((id, repeat))
}

pub use body::{AudioRef, Bulletin, BulletinError, BulletinId, Cancel, Repeats, Targets};
pub use check::{Accepted, Refusal, check, check_audio, check_cancel};
pub use refusal::RefusalCode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrence_keys_of_bulletin_airings_round_trip_and_never_look_planned() {
        let id = "0123456789abcdef0123456789abcdef";
        let k = occurrence_key(id, 3);
        assert_eq!(k, "bulletin:0123456789abcdef0123456789abcdef#3");
        assert!(is_bulletin_occurrence(&k));
        assert_eq!(parse_occurrence(&k), Some((id, 3)));
        assert!(!is_bulletin_occurrence("sang@2026-12-04T22:30:00Z"));
        for bad in [
            "bulletin:0123#1",
            "bulletin:0123456789abcdef0123456789abcdef#0",
            "bulletin:0123456789abcdef0123456789abcdef#21",
            "bulletin:0123456789ABCDEF0123456789abcdef#1",
            "bulletin:0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(parse_occurrence(bad), None, "{bad}");
        }
    }
}
