//! The fallback playlist: files decoded and converted to the relay's output format (stereo at
//! its rate) exactly as the player converts files ([`crate::media::DecodedStream`]: band-limited
//! resampling, BS.775 downmix, decoder panics contained), each at its loudness-normalising gain,
//! played in order and looped for as long as the relay needs them.
//!
//! **Invariant:** `fill` always fills the whole block (silence when no file is playable), so the
//! engine's sample count, and therefore the window's end, never depends on the fallback files.
//! A file that cannot be opened is skipped and reported once per pass, never retried in a busy loop.

use crate::media::DecodedStream;
use std::path::PathBuf;

/// The fallback playlist's player, resuming where it left off between uses.
pub struct Fallback {
    paths: Vec<PathBuf>,
    /// Linear gain per path (unity where missing).
    gains: Vec<f32>,
    next: usize,
    current: Option<(DecodedStream, f32)>,
    rate_hz: u32,
    /// Consecutive files that could not be opened; a whole pass of them stops retrying.
    failed_in_row: usize,
    /// Problems met (file and reason), for the relay's report.
    pub errors: Vec<String>,
}

impl Fallback {
    /// A player for `paths` (already resolved against the audio root) at `gains` (linear, one per
    /// path; unity where missing), output stereo at `rate_hz`.
    pub fn new(paths: Vec<PathBuf>, gains: Vec<f32>, rate_hz: u32) -> Self {
        Self {
            paths,
            gains,
            next: 0,
            current: None,
            rate_hz: rate_hz.max(1),
            failed_in_row: 0,
            errors: Vec::new(),
        }
    }

    fn open_next(&mut self) -> Option<(DecodedStream, f32)> {
        while !self.paths.is_empty() && self.failed_in_row < self.paths.len() {
            let index = self.next % self.paths.len();
            let path = &self.paths[index];
            self.next = (self.next + 1) % self.paths.len();
            match DecodedStream::open(path, self.rate_hz, 2) {
                Ok(stream) => {
                    let gain = self.gains.get(index).copied().unwrap_or(1.0);
                    return Some((stream, gain));
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
            let Some((track, gain)) = self.current.as_mut() else {
                break;
            };
            let start = i;
            let n = track.read(&mut out[i..]);
            for x in &mut out[i..i + n] {
                *x *= *gain;
            }
            i += n;
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
