//! The station's intake of bulletins from the centre (issue #15; docs/bulletins.md, "Station
//! wiring"): what the intake hands the daemon, and the airings the journal already accounts for.
//!
//! The intake (fetching the station's bulletins, checking each with `bulletin::check`, fetching
//! and verifying its audio, reporting receipts) sends [`IntakeEvent`]s to the daemon, which alone
//! decides when they air (`bulletin::airing`) and journals every airing.
//!
//! **Invariant:** a [`ReadyBulletin`] was accepted by `bulletin::check` under the station's pinned
//! centre key and its audio file's SHA-256 and size are the bulletin's; [`AiredBulletins`] holds
//! every (bulletin id, repeat) the journal accounts for (the daemon fills it from the journal at
//! open and notes each bulletin record it appends before anyone can ask), so the intake's replay
//! test and the daemon's agree.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::bulletin::{Bulletin, BulletinId};

/// A bulletin the station accepted, with its verified audio.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyBulletin {
    pub bulletin: Bulletin,
    /// SHA-256 (hex) of the envelope's bytes as received: which signed copy this is.
    pub envelope_sha256: String,
    /// The audio file, verified (SHA-256 and size are the bulletin's).
    pub audio: PathBuf,
    /// When the station accepted it (its clock).
    pub received_at: DateTime<Utc>,
}

/// What the intake tells the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeEvent {
    /// Air this bulletin by its priority's rules.
    Ready(Box<ReadyBulletin>),
    /// The centre cancelled bulletin `id` (a verified cancel): drop what is left, stop it on air.
    Cancelled { id: BulletinId, at: DateTime<Utc> },
}

/// The bulletin airings the journal accounts for: bulletin id (hex) → repeats.
#[derive(Debug, Clone, Default)]
pub struct AiredBulletins(Arc<Mutex<HashMap<String, BTreeSet<u32>>>>);

impl AiredBulletins {
    /// Whether the journal accounts for airing `repeat` of bulletin `id`.
    pub fn accounted(&self, id: &str, repeat: u32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|r| r.contains(&repeat))
    }

    /// Note that the journal accounts for airing `repeat` of bulletin `id`.
    pub fn note(&self, id: &str, repeat: u32) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default()
            .insert(repeat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aired_bulletins_answer_what_was_noted_in_every_clone() {
        let a = AiredBulletins::default();
        let b = a.clone();
        let id = "0123456789abcdef0123456789abcdef";
        assert!(!a.accounted(id, 1));
        b.note(id, 1);
        assert!(a.accounted(id, 1));
        assert!(!a.accounted(id, 2));
        assert!(!a.accounted("ffffffffffffffffffffffffffffffff", 1));
    }
}
