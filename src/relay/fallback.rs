//! The fallback playlist: files decoded with rodio, converted to the relay's output format,
//! played in order and looped for as long as the relay needs them.
//!
//! **Invariant:** `fill` always fills the whole block (silence when no file is playable), so the
//! engine's sample count, and therefore the window's end, never depends on the fallback files.
//! A file that cannot be opened is skipped and reported once per pass, never retried in a busy loop.

use rodio::Decoder;
use rodio::source::UniformSourceIterator;
use std::fs::File;
use std::io::BufReader;
use std::num::NonZero;
use std::path::PathBuf;

type Track = UniformSourceIterator<Decoder<BufReader<File>>>;

/// The fallback playlist's player, resuming where it left off between uses.
pub struct Fallback {
    paths: Vec<PathBuf>,
    next: usize,
    current: Option<Track>,
    rate_hz: NonZero<u32>,
    /// Consecutive files that could not be opened; a whole pass of them stops retrying.
    failed_in_row: usize,
    /// Problems met (file and reason), for the relay's report.
    pub errors: Vec<String>,
}

impl Fallback {
    /// A player for `paths` (already resolved against the audio root), output stereo at `rate_hz`.
    pub fn new(paths: Vec<PathBuf>, rate_hz: u32) -> Self {
        Self {
            paths,
            next: 0,
            current: None,
            rate_hz: NonZero::new(rate_hz).unwrap_or(NonZero::<u32>::MIN),
            failed_in_row: 0,
            errors: Vec::new(),
        }
    }

    fn open_next(&mut self) -> Option<Track> {
        while !self.paths.is_empty() && self.failed_in_row < self.paths.len() {
            let path = &self.paths[self.next % self.paths.len()];
            self.next = (self.next + 1) % self.paths.len();
            let opened = File::open(path)
                .map_err(|e| e.to_string())
                .and_then(|f| Decoder::new(BufReader::new(f)).map_err(|e| e.to_string()));
            match opened {
                Ok(dec) => {
                    let stereo = NonZero::new(2u16).unwrap_or(NonZero::<u16>::MIN);
                    return Some(UniformSourceIterator::new(dec, stereo, self.rate_hz));
                }
                Err(e) => {
                    self.failed_in_row += 1;
                    self.errors
                        .push(format!("fallback {}: cannot play: {e}", path.display()));
                }
            }
        }
        None
    }

    /// Fill `out` (interleaved stereo) completely.
    pub fn fill(&mut self, out: &mut [f32]) {
        let mut i = 0;
        // A file that opens but yields nothing counts as a failure, so an all-empty playlist
        // cannot spin here.
        let mut empty_opens = 0;
        while i < out.len() {
            if self.current.is_none() {
                if empty_opens > self.paths.len() {
                    break;
                }
                self.current = self.open_next();
                if self.current.is_none() {
                    break;
                }
            }
            let Some(track) = self.current.as_mut() else {
                break;
            };
            let start = i;
            for s in track.by_ref() {
                out[i] = s;
                i += 1;
                if i == out.len() {
                    break;
                }
            }
            if i < out.len() {
                if i == start {
                    empty_opens += 1;
                } else {
                    self.failed_in_row = 0;
                    empty_opens = 0;
                }
                self.current = None;
            } else {
                self.failed_in_row = 0;
            }
        }
        out[i..].fill(0.0);
    }

    /// Whether anything in the playlist could play (false after a full pass of failures).
    pub fn is_playable(&self) -> bool {
        !self.paths.is_empty() && self.failed_in_row < self.paths.len()
    }
}
