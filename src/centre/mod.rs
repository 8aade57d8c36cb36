//! The centre: what the collector sends to stations that changes what airs, and how stations
//! trust it (docs/distribution.md).
//!
//! - [`key`] — the centre's Ed25519 signing key on disk (created at the collector's first start,
//!   0600), its rotation, and the [`key::CentreSigner`] the collector signs with;
//! - [`signed`] — the signed envelope (`kind`, `key`, `body`, `sig`), sign and verify;
//! - [`manifest`] — a station's schedule version and the files it needs: decode with every
//!   check, and the station's own checks (its id, no replay, schedule hash);
//! - [`pin`] — a station's pinned centre key(s) and acceptance of rotations;
//! - [`request`] — station-signed GET requests (sign, verify).
//!
//! **Invariant:** a station acts on nothing from the centre unless it verified strictly under a
//! centre key it pinned (at enrolment, or reached from it by a chain of rotations each signed by
//! the key before); the bytes verified are the bytes received, never a re-serialisation. Pure
//! except the key and pin files (`key`, `pin`); knows nothing of HTTP, SQLite or the station's
//! daemon.

pub mod key;
pub mod manifest;
pub mod pin;
pub mod request;
pub mod signed;

pub use key::{CentreKeyError, CentreSigner};
pub use manifest::{Manifest, ManifestError};
pub use signed::{Envelope, Kind, SignedError};
