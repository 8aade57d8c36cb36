//! The acknowledged position: the highest sequence number the collector has confirmed stored.
//!
//! **Invariant:** `journal/acked` only ever holds a whole position the collector acknowledged
//! (decimal + `\n`), replaced atomically (temp file, fsync, rename, fsync directory), so after any
//! crash it is either the old or the new value: the ledger can lag (the shipper resends a batch the
//! collector then acknowledges as duplicates), never run ahead. The shipper is its only writer; the
//! writer reads it only to decide what [`Journal::prune`](super::Journal::prune) may delete.

use super::{JournalError, io_err, sync_dir};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the acknowledged-position ledger.
pub const ACKED_FILE: &str = "acked";

/// The acknowledged-position ledger: the highest seq the collector has confirmed.
#[derive(Debug, Clone)]
pub struct AckLedger {
    path: PathBuf,
}

impl AckLedger {
    /// The ledger in journal directory `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(ACKED_FILE),
        }
    }

    /// The stored position (0 when none yet).
    pub fn load(&self) -> Result<u64, JournalError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().map_err(|_| JournalError::BadLedger {
                path: self.path.clone(),
                text,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }

    /// Store `seq` atomically (temp + fsync + rename + directory fsync).
    pub fn store(&self, seq: u64) -> Result<(), JournalError> {
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(format!("{seq}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_round_trips_and_names_a_bad_file() {
        let tmp = tempfile::tempdir().unwrap();
        let l = AckLedger::new(tmp.path());
        assert_eq!(l.load().unwrap(), 0);
        l.store(42).unwrap();
        assert_eq!(l.load().unwrap(), 42);
        assert_eq!(
            fs::read_to_string(tmp.path().join(ACKED_FILE)).unwrap(),
            "42\n"
        );
        assert!(!tmp.path().join("acked.tmp").exists());
        fs::write(tmp.path().join(ACKED_FILE), "x").unwrap();
        assert!(matches!(l.load(), Err(JournalError::BadLedger { .. })));
    }
}
