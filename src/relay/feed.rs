//! The live feed: the bounded buffer of decoded upstream audio between the network/decoder
//! thread (producer) and the relay engine (consumer), plus the link's state.
//!
//! **Invariant:** the buffer never holds more than its capacity; when full, the *oldest* audio
//! is dropped (a relay stays near live rather than drifting behind), so memory is constant on a
//! 24/7 stream. A new connection starts from an empty buffer and a new epoch. The feed knows
//! where the audible runs in its buffer begin and end, so that going on air can skip buffered
//! silence ([`LiveFeed::skip_quiet_head`]).

use std::collections::VecDeque;
use std::sync::Mutex;

/// State of the link to the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Connecting (or waiting to retry) and nothing to play.
    Connecting,
    /// Connected; audio may be arriving.
    Connected,
    /// The last attempt failed or the connection ended, and why.
    Down(String),
}

/// What the engine sees of the feed at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedStatus {
    pub link: Link,
    /// Connection counter: changes whenever a new connection starts.
    pub epoch: u64,
    /// Stereo frames buffered.
    pub buffered_frames: usize,
    /// Whether the buffered audio contains a chunk at or above the silence threshold.
    pub audible_buffered: bool,
    /// The least latency (frames) this stream's packaging needs to play without gaps, as the
    /// producer judged it at connect time (e.g. Ogg pages carry seconds of audio each).
    pub latency_hint_frames: usize,
    /// Frames pushed since the feed was made (all connections): a change means audio arrived.
    pub pushed_frames: u64,
    /// Frames that arrived since the last audible chunk, on this connection (`u64::MAX`: none
    /// audible yet). Measures silence on the upstream's timeline, before any buffering.
    pub quiet_arrived_frames: u64,
    /// Buffered frames before the first audible chunk (all of them when none is audible).
    pub quiet_head_frames: usize,
}

#[derive(Debug)]
struct Inner {
    samples: VecDeque<f32>,
    link: Link,
    epoch: u64,
    /// Frames pushed since the last audible chunk (counted from the newest end).
    frames_since_audible: u64,
    titles: Vec<String>,
    dropped_frames: u64,
    latency_hint_frames: usize,
    pushed_frames: u64,
    /// Absolute frame index (in `pushed_frames` terms) of the buffer's first frame.
    head_abs: u64,
    /// Audible runs `(start, end)` in absolute frames (`end` = `u64::MAX` while running) that
    /// still reach into the buffer, oldest first.
    runs: VecDeque<(u64, u64)>,
}

impl Inner {
    /// The head moved on by `frames` (popped, trimmed or dropped): forget runs behind it.
    fn advance_head(&mut self, frames: u64) {
        self.head_abs += frames;
        while self.runs.front().is_some_and(|r| r.1 <= self.head_abs) {
            self.runs.pop_front();
        }
    }

    /// Forget the buffer (a new or failed connection).
    fn reset_buffer(&mut self) {
        self.samples.clear();
        self.head_abs = self.pushed_frames;
        self.runs.clear();
    }

    fn quiet_head_frames(&self) -> usize {
        let buffered = self.samples.len() / 2;
        match self.runs.front() {
            Some(&(start, _)) => (start.saturating_sub(self.head_abs) as usize).min(buffered),
            None => buffered,
        }
    }
}

/// Shared between the upstream thread and the engine.
#[derive(Debug)]
pub struct LiveFeed {
    capacity_samples: usize,
    inner: Mutex<Inner>,
}

impl LiveFeed {
    /// A feed holding at most `capacity_frames` stereo frames.
    pub fn new(capacity_frames: usize) -> Self {
        let capacity_samples = capacity_frames.max(1) * 2;
        Self {
            capacity_samples,
            inner: Mutex::new(Inner {
                samples: VecDeque::with_capacity(capacity_samples),
                link: Link::Connecting,
                epoch: 0,
                frames_since_audible: u64::MAX,
                titles: Vec::new(),
                dropped_frames: 0,
                latency_hint_frames: 0,
                pushed_frames: 0,
                head_abs: 0,
                runs: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Poisoning only means the other side panicked; the buffer itself is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Producer: a new attempt is under way.
    pub fn connecting(&self) {
        let mut g = self.lock();
        g.link = Link::Connecting;
    }

    /// Producer: a new connection was established; starts an empty buffer and a new epoch.
    /// `latency_hint_frames`: see [`FeedStatus::latency_hint_frames`] (0: none).
    pub fn connected(&self, latency_hint_frames: usize) {
        let mut g = self.lock();
        g.latency_hint_frames = latency_hint_frames;
        g.reset_buffer();
        g.epoch += 1;
        g.frames_since_audible = u64::MAX;
        g.link = Link::Connected;
    }

    /// Producer: the connection failed or ended; the buffer is discarded.
    pub fn down(&self, cause: String) {
        let mut g = self.lock();
        g.reset_buffer();
        g.link = Link::Down(cause);
    }

    /// Producer: append interleaved stereo; `audible` says whether this chunk is at or above
    /// the silence threshold. Drops the oldest audio beyond capacity.
    pub fn push(&self, stereo: &[f32], audible: bool) {
        let mut g = self.lock();
        let stereo = if stereo.len() > self.capacity_samples {
            &stereo[stereo.len() - self.capacity_samples..]
        } else {
            stereo
        };
        let over = (g.samples.len() + stereo.len()).saturating_sub(self.capacity_samples);
        if over > 0 {
            g.samples.drain(..over);
            g.dropped_frames += (over / 2) as u64;
            g.advance_head((over / 2) as u64);
        }
        g.samples.extend(stereo.iter().copied());
        let frames = (stereo.len() / 2) as u64;
        let start = g.pushed_frames;
        let running = g.runs.back().is_some_and(|r| r.1 == u64::MAX);
        match (audible, running) {
            (true, false) => g.runs.push_back((start, u64::MAX)),
            (false, true) => {
                if let Some(r) = g.runs.back_mut() {
                    r.1 = start;
                }
            }
            _ => {}
        }
        g.pushed_frames += frames;
        g.frames_since_audible = if audible {
            0
        } else {
            g.frames_since_audible.saturating_add(frames)
        };
    }

    /// Producer: an ICY title arrived.
    pub fn title(&self, title: String) {
        self.lock().titles.push(title);
    }

    /// Consumer: move up to `out.len()` samples (whole frames) into `out`; returns how many.
    pub fn pop(&self, out: &mut [f32]) -> usize {
        let mut g = self.lock();
        let n = out.len().min(g.samples.len()) & !1;
        for (o, s) in out.iter_mut().zip(g.samples.drain(..n)) {
            *o = s;
        }
        g.advance_head((n / 2) as u64);
        n
    }

    /// Consumer: drop the buffered frames before the first audible chunk (silence that arrived
    /// before the upstream came back), so going on air starts with the audio; returns how many.
    pub fn skip_quiet_head(&self) -> usize {
        let mut g = self.lock();
        let frames = g.quiet_head_frames();
        if frames > 0 {
            g.samples.drain(..frames * 2);
            g.dropped_frames += frames as u64;
            g.advance_head(frames as u64);
        }
        frames
    }

    /// Consumer: drop the oldest audio so at most `frames` remain (bounds the relay's latency
    /// when it goes on air).
    pub fn trim_to(&self, frames: usize) {
        let mut g = self.lock();
        let over = g.samples.len().saturating_sub(frames * 2);
        if over > 0 {
            g.samples.drain(..over);
            g.dropped_frames += (over / 2) as u64;
            g.advance_head((over / 2) as u64);
        }
    }

    /// Consumer: the feed's state now.
    pub fn status(&self) -> FeedStatus {
        let g = self.lock();
        let buffered_frames = g.samples.len() / 2;
        FeedStatus {
            link: g.link.clone(),
            epoch: g.epoch,
            buffered_frames,
            audible_buffered: g.frames_since_audible < buffered_frames as u64,
            latency_hint_frames: g.latency_hint_frames,
            pushed_frames: g.pushed_frames,
            quiet_arrived_frames: g.frames_since_audible,
            quiet_head_frames: g.quiet_head_frames(),
        }
    }

    /// Consumer: titles received since the last call.
    pub fn take_titles(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().titles)
    }

    /// Frames dropped so far (buffer overflow or latency trim).
    pub fn dropped_frames(&self) -> u64 {
        self.lock().dropped_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_capacity_and_keeps_the_newest() {
        let f = LiveFeed::new(3);
        f.connected(0);
        f.push(&[1., 1., 2., 2.], true);
        f.push(&[3., 3., 4., 4.], false);
        assert_eq!(f.status().buffered_frames, 3);
        assert_eq!(f.dropped_frames(), 1);
        let mut out = [0.0; 8];
        assert_eq!(f.pop(&mut out), 6);
        assert_eq!(&out[..6], &[2., 2., 3., 3., 4., 4.]);
        // A push larger than the whole buffer keeps its tail.
        f.push(&[5., 5., 6., 6., 7., 7., 8., 8.], true);
        assert_eq!(f.pop(&mut out), 6);
        assert_eq!(&out[..6], &[6., 6., 7., 7., 8., 8.]);
    }

    #[test]
    fn audible_means_an_audible_chunk_is_still_buffered() {
        let f = LiveFeed::new(100);
        f.connected(0);
        f.push(&[0.5; 10], true);
        f.push(&[0.0; 10], false);
        assert!(f.status().audible_buffered);
        let mut out = [0.0; 10];
        f.pop(&mut out); // the audible chunk leaves
        assert!(!f.status().audible_buffered);
        f.trim_to(2);
        assert_eq!(f.status().buffered_frames, 2);
    }

    #[test]
    fn the_quiet_head_is_what_precedes_the_first_audible_chunk_and_can_be_skipped() {
        let f = LiveFeed::new(100);
        f.connected(0);
        f.push(&[0.0; 20], false);
        assert_eq!(f.status().quiet_head_frames, 10);
        f.push(&[0.5; 6], true);
        f.push(&[0.0; 4], false);
        f.push(&[0.5; 4], true);
        let s = f.status();
        assert_eq!((s.buffered_frames, s.quiet_head_frames), (17, 10));
        assert_eq!(f.skip_quiet_head(), 10);
        let mut out = [0.0; 6];
        assert_eq!(f.pop(&mut out), 6);
        assert_eq!(out, [0.5; 6]);
        // The head is now the quiet gap between two runs.
        assert_eq!(f.status().quiet_head_frames, 2);
        f.trim_to(2);
        assert_eq!(f.status().quiet_head_frames, 0);
        // A new connection forgets everything.
        f.connected(0);
        f.push(&[0.0; 4], false);
        assert_eq!(f.status().quiet_head_frames, 2);
    }

    #[test]
    fn a_new_connection_starts_empty_with_a_new_epoch() {
        let f = LiveFeed::new(100);
        f.connected(0);
        f.push(&[0.5; 10], true);
        f.down("EOF".into());
        let s = f.status();
        assert_eq!((s.link, s.buffered_frames), (Link::Down("EOF".into()), 0));
        f.connected(0);
        assert_eq!(f.status().epoch, 2);
    }
}
