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

pub use body::{AudioRef, Bulletin, BulletinError, BulletinId, Cancel, Repeats, Targets};
pub use check::{Accepted, Refusal, check, check_audio, check_cancel};
pub use refusal::RefusalCode;
