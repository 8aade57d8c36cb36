//! Relaying a live upstream stream ("tiếp sóng") for a time window, with failover to a fallback
//! playlist when the upstream is unreachable, drops, stalls or goes silent.
//!
//! [`start`] spawns the upstream thread at once (call it [`DEFAULT_PRECONNECT_SECS`] before the
//! slot so the stream is connected and buffered when it is due) and returns a [`RelaySource`]:
//! an iterator / `rodio::Source` of interleaved stereo f32 at [`RelayConfig::rate_hz`] that the output
//! pulls in real time from the slot's start, and a [`RelayHandle`] to read the account
//! ([`RelayReport`], whose `evidence` is the wire's [`RelayEvidence`]) during and after the window.
//!
//! Pieces: [`icy`] (metadata demux), [`resample`] (format conversion), [`feed`] (the bounded
//! buffer between network and engine), [`upstream`] (HTTP + decode thread with retry),
//! [`fallback`] (the playlist), [`source_client`] (the city side: publishing to Icecast) and
//! [`publish`] (that as a tee of the station's output).
//!
//! **Invariants:**
//! - The source yields exactly `window × rate_hz` frames, whatever the upstream does: the
//!   window ends by sample count, not by wall clock.
//! - Every switch between live and fallback is a crossfade of [`DEFAULT_FADE_MS`] (no click) and is
//!   recorded with its instant and cause; `live_secs + fallback_secs` equals the aired duration.
//! - Memory is bounded for any window length: the live buffer has a fixed capacity, the titles
//!   list is capped, nothing is written to disk.
//!
//! Instants in the account are on the *sample clock*: its origin (the instant given to
//! [`RelaySource::anchor_at`], else the first pull) plus the frames emitted before the event
//! divided by the rate. With an output that pulls in
//! real time this is when the audio went out (give or take the device buffer).

pub mod fallback;
pub mod feed;
pub mod icy;
pub mod resample;
pub mod source_client;
pub mod upstream;

use crate::clock::Clock;
use crate::wire::{RelayEvidence, RelaySwitch};
use chrono::{DateTime, Utc};
use fallback::Fallback;
use feed::{FeedStatus, Link, LiveFeed};
use std::num::NonZero;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default output sample rate (Hz); set [`RelayConfig::rate_hz`] to the output's rate instead of
/// resampling twice.
pub const OUTPUT_RATE_HZ: u32 = 44_100;
/// Output channels of every relay (interleaved stereo).
pub const OUTPUT_CHANNELS: u16 = 2;
/// Upstream audio below the threshold for longer than this → fallback (the 2 s),
/// measured on the upstream's timeline (as it arrives), not after the latency buffer played out.
/// Also the backstop for live blocks starved of data this long in a row.
pub const DEFAULT_FAILOVER_SECS: f64 = 2.0;
/// Nothing received from a live upstream for this long → fallback, even though up to the
/// latency target is still buffered: a stall is on air as fallback within this + the output's
/// queue (~0.2 s) + one block, under the 2 s. MP3 arrives every ~26–130 ms; Ogg pages
/// carry seconds, so an Ogg stream waits at least its latency hint instead.
pub const DEFAULT_STALL_SECS: f64 = 1.5;
/// Capacity of the live buffer: absorbs network jitter and the server's connect burst
/// (Icecast sends ~4 s at once) and holds twice an Ogg stream's latency; ~2.1 MB of f32.
pub const DEFAULT_BUFFER_SECS: f64 = 6.0;
/// On going live the buffer is trimmed to this, bounding how far behind the upstream we air.
pub const DEFAULT_LATENCY_SECS: f64 = 1.0;
/// While live, a feed holding more than this (the rest of a connect burst, or a faster upstream
/// clock) is trimmed back to [`DEFAULT_LATENCY_SECS`]: bounds latency and stall detection time.
pub const DEFAULT_MAX_LATENCY_SECS: f64 = 2.0;
/// The upstream counts as ready once this much audible audio is buffered.
pub const DEFAULT_PREROLL_SECS: f64 = 0.25;
/// How long before the slot the caller should call [`start`]: covers connect + buffer on a slow
/// link (locally it takes well under 1 s; see `docs/relay.md`).
pub const DEFAULT_PRECONNECT_SECS: u64 = 5;
/// Crossfade on every switch and fade-out at the window's end.
pub const DEFAULT_FADE_MS: u64 = 50;
/// TCP/TLS connect timeout (the whole request gets twice this).
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 3;
/// A connection silent on the wire this long is abandoned and retried.
pub const DEFAULT_STALL_RECONNECT_SECS: u64 = 5;
/// First retry delay after a failure; doubles per failure up to [`DEFAULT_RETRY_MAX_SECS`].
pub const DEFAULT_RETRY_MIN_MS: u64 = 250;
/// Cap of the retry backoff: a returning upstream is back on air within about this.
pub const DEFAULT_RETRY_MAX_SECS: u64 = 4;
/// Most ICY titles kept per relay (a bound for very long windows).
pub const MAX_TITLES: usize = 1000;
/// The engine works in blocks of this many frames (10 ms): decisions are block-accurate.
const BLOCK_FRAMES: usize = 441;

/// Errors starting a relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("relay url {url:?}: {reason} (expected http:// or https://)")]
    BadUrl { url: String, reason: String },
    #[error("relay window must be longer than zero")]
    EmptyWindow,
    #[error("silence threshold must be a finite dBFS value, got {0}")]
    BadThreshold(f64),
    #[error("output rate {0} Hz is outside 8000..=192000")]
    BadRate(u32),
    #[error("cannot start the relay's upstream thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Everything a relay needs; build with [`RelayConfig::new`] and adjust the tuning fields.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub url: String,
    pub window: Duration,
    /// Fallback files, already resolved against the station's audio root.
    pub fallback: Vec<PathBuf>,
    /// Linear gain of each fallback file (loudness normalisation, measured by the player's
    /// prep thread before the relay starts); a missing entry plays at unity.
    pub fallback_gains: Vec<f32>,
    pub silence_threshold_dbfs: f64,
    /// Output sample rate (the source is always interleaved stereo).
    pub rate_hz: u32,
    pub failover_secs: f64,
    pub stall_secs: f64,
    pub buffer_secs: f64,
    pub latency_secs: f64,
    pub max_latency_secs: f64,
    pub preroll_secs: f64,
    pub fade_ms: u64,
    pub connect_timeout: Duration,
    pub stall_reconnect: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl RelayConfig {
    /// A relay of `url` for `window`, with defaults for everything else.
    pub fn new(
        url: impl Into<String>,
        window: Duration,
        fallback: Vec<PathBuf>,
        silence_threshold_dbfs: f64,
    ) -> Self {
        Self {
            url: url.into(),
            window,
            fallback,
            fallback_gains: Vec::new(),
            silence_threshold_dbfs,
            rate_hz: OUTPUT_RATE_HZ,
            failover_secs: DEFAULT_FAILOVER_SECS,
            stall_secs: DEFAULT_STALL_SECS,
            buffer_secs: DEFAULT_BUFFER_SECS,
            latency_secs: DEFAULT_LATENCY_SECS,
            max_latency_secs: DEFAULT_MAX_LATENCY_SECS,
            preroll_secs: DEFAULT_PREROLL_SECS,
            fade_ms: DEFAULT_FADE_MS,
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            stall_reconnect: Duration::from_secs(DEFAULT_STALL_RECONNECT_SECS),
            retry_min: Duration::from_millis(DEFAULT_RETRY_MIN_MS),
            retry_max: Duration::from_secs(DEFAULT_RETRY_MAX_SECS),
        }
    }

    /// From a schedule's relay slot; `fallback` are the spec's items resolved to files.
    pub fn from_spec(spec: &crate::schedule::RelaySpec, fallback: Vec<PathBuf>) -> Self {
        Self::new(
            spec.url.clone(),
            Duration::from_secs(u64::from(spec.minutes) * 60),
            fallback,
            spec.silence_threshold_dbfs,
        )
    }

    fn validate(&self) -> Result<(), RelayError> {
        let bad = |reason: String| RelayError::BadUrl {
            url: self.url.clone(),
            reason,
        };
        let url = reqwest::Url::parse(&self.url).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!("scheme {:?} is not supported", url.scheme())));
        }
        if self.window.is_zero() {
            return Err(RelayError::EmptyWindow);
        }
        if !(8_000..=192_000).contains(&self.rate_hz) {
            return Err(RelayError::BadRate(self.rate_hz));
        }
        if !self.silence_threshold_dbfs.is_finite() {
            return Err(RelayError::BadThreshold(self.silence_threshold_dbfs));
        }
        Ok(())
    }
}

/// What is on air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAir {
    Live,
    Fallback,
}

impl OnAir {
    fn name(self) -> &'static str {
        match self {
            OnAir::Live => "live",
            OnAir::Fallback => "fallback",
        }
    }
}

/// The relay's account of itself, readable while it runs and after.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayReport {
    /// What goes into the airing record.
    pub evidence: RelayEvidence,
    /// Frames emitted so far, and the window's total.
    pub frames: u64,
    pub window_frames: u64,
    /// Wall-clock instant of the first pull.
    pub first_pull_at: Option<DateTime<Utc>>,
    /// The sample clock's origin: [`RelaySource::anchor_at`] or else the first pull.
    pub sample_clock_origin: Option<DateTime<Utc>>,
    /// Sample-clock instant of the first live sample, if any went out.
    pub first_live_at: Option<DateTime<Utc>>,
    /// True once the window's last sample was emitted.
    pub finished: bool,
    /// Fallback files that could not play.
    pub fallback_errors: Vec<String>,
}

/// Reads the relay's account; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    report: Arc<Mutex<RelayReport>>,
    stop: Arc<AtomicBool>,
}

impl RelayHandle {
    /// A snapshot of the account.
    pub fn report(&self) -> RelayReport {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The wire evidence (seconds live/fallback, switches, titles).
    pub fn evidence(&self) -> RelayEvidence {
        self.report().evidence
    }

    /// Stop the upstream thread (e.g. the slot was cancelled before it started). Dropping the
    /// [`RelaySource`] or reaching the window's end does this too.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Start relaying: the upstream thread connects now; the returned source plays the window from
/// its first pull.
pub fn start(
    config: RelayConfig,
    clock: Arc<dyn Clock>,
) -> Result<(RelaySource, RelayHandle), RelayError> {
    config.validate()?;
    let feed = Arc::new(LiveFeed::new(
        secs_to_frames(config.buffer_secs, config.rate_hz) as usize,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    upstream::spawn(
        upstream::UpstreamConfig {
            url: config.url.clone(),
            silence_threshold_dbfs: config.silence_threshold_dbfs,
            output_rate_hz: config.rate_hz,
            connect_timeout: config.connect_timeout,
            stall_reconnect: config.stall_reconnect,
            retry_min: config.retry_min,
            retry_max: config.retry_max,
        },
        Arc::clone(&feed),
        Arc::clone(&stop),
    )?;
    Ok(RelaySource::with_feed(config, feed, stop, clock))
}

fn secs_to_frames(secs: f64, rate_hz: u32) -> u64 {
    (secs.max(0.0) * f64::from(rate_hz)).round() as u64
}

fn frames_to_secs(frames: u64, rate_hz: u32) -> f64 {
    frames as f64 / f64::from(rate_hz)
}

/// An in-progress crossfade from the previous source.
#[derive(Debug, Clone, Copy)]
struct Fade {
    from: OnAir,
    done_frames: usize,
}

/// The relay's audio: interleaved stereo f32 at the configured rate, exactly the window long.
pub struct RelaySource {
    feed: Arc<LiveFeed>,
    stop: Arc<AtomicBool>,
    clock: Arc<dyn Clock>,
    report: Arc<Mutex<RelayReport>>,
    fallback: Fallback,
    threshold_dbfs: f64,
    rate_hz: u32,
    failover_frames: u64,
    stall_frames: u64,
    latency_frames: usize,
    max_latency_frames: usize,
    preroll_frames: usize,
    fade_frames: usize,
    window_frames: u64,
    emitted_frames: u64,
    anchor: Option<DateTime<Utc>>,
    on_air: OnAir,
    live_epoch: u64,
    fade: Option<Fade>,
    /// Current run of live frames that were starved or below the threshold, and how many of
    /// them were starved.
    bad_frames: u64,
    starved_frames: u64,
    /// The feed's push counter when last seen, and the emitted-frame count at which it last
    /// changed (arrival time on the sample clock).
    seen_pushed: u64,
    last_arrival_frame: u64,
    block: Vec<f32>,
    old: Vec<f32>,
    pos: usize,
    last_title: Option<String>,
    finished: bool,
}

impl RelaySource {
    /// The engine over an existing feed (the upstream thread, or a test filling it directly).
    pub(crate) fn with_feed(
        config: RelayConfig,
        feed: Arc<LiveFeed>,
        stop: Arc<AtomicBool>,
        clock: Arc<dyn Clock>,
    ) -> (Self, RelayHandle) {
        let rate = config.rate_hz;
        let window_frames = secs_to_frames(config.window.as_secs_f64(), rate).max(1);
        let report = Arc::new(Mutex::new(RelayReport {
            evidence: RelayEvidence {
                url: config.url.clone(),
                live_secs: 0.0,
                fallback_secs: 0.0,
                switches: Vec::new(),
                icy_titles: Vec::new(),
            },
            frames: 0,
            window_frames,
            first_pull_at: None,
            sample_clock_origin: None,
            first_live_at: None,
            finished: false,
            fallback_errors: Vec::new(),
        }));
        let handle = RelayHandle {
            report: Arc::clone(&report),
            stop: Arc::clone(&stop),
        };
        let source = Self {
            feed,
            stop,
            clock,
            report,
            fallback: Fallback::new(config.fallback, config.fallback_gains, rate),
            threshold_dbfs: config.silence_threshold_dbfs,
            rate_hz: rate,
            failover_frames: secs_to_frames(config.failover_secs, rate),
            stall_frames: secs_to_frames(config.stall_secs, rate),
            latency_frames: secs_to_frames(config.latency_secs, rate) as usize,
            max_latency_frames: secs_to_frames(config.max_latency_secs, rate) as usize,
            preroll_frames: secs_to_frames(config.preroll_secs, rate) as usize,
            fade_frames: (secs_to_frames(config.fade_ms as f64 / 1000.0, rate) as usize).max(1),
            window_frames,
            emitted_frames: 0,
            anchor: None,
            on_air: OnAir::Fallback,
            live_epoch: 0,
            fade: None,
            bad_frames: 0,
            starved_frames: 0,
            seen_pushed: 0,
            last_arrival_frame: 0,
            block: Vec::with_capacity(BLOCK_FRAMES * 2),
            old: vec![0.0; BLOCK_FRAMES * 2],
            pos: 0,
            last_title: None,
            finished: false,
        };
        (source, handle)
    }

    fn lock_report(&self) -> std::sync::MutexGuard<'_, RelayReport> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sample_instant(&self, frames: u64) -> DateTime<Utc> {
        let anchor = self.anchor.unwrap_or_else(|| self.clock.now());
        anchor
            + chrono::Duration::microseconds(
                (frames_to_secs(frames, self.rate_hz) * 1e6).round() as i64
            )
    }

    /// How much to keep buffered while live: the configured latency, or more if the stream's
    /// packaging needs it (Ogg).
    fn latency_target(&self, st: &FeedStatus) -> usize {
        self.latency_frames.max(st.latency_hint_frames)
    }

    /// Live can go on air: connected, and a pre-roll of audio counted from the first audible
    /// chunk (silence buffered before it is skipped when going on air, see `switch`).
    fn ready(&self, st: &FeedStatus) -> bool {
        st.link == Link::Connected
            && st.buffered_frames.saturating_sub(st.quiet_head_frames) >= self.preroll_frames
            && st.audible_buffered
    }

    fn not_ready_cause(&self, st: &FeedStatus) -> String {
        match &st.link {
            Link::Down(c) => format!("upstream unavailable: {c}"),
            Link::Connecting => "upstream not connected yet".into(),
            Link::Connected
                if st.buffered_frames < self.preroll_frames
                    || (st.audible_buffered
                        && st.buffered_frames - st.quiet_head_frames.min(st.buffered_frames)
                            < self.preroll_frames) =>
            {
                "upstream connected but not buffered yet".into()
            }
            Link::Connected => format!("upstream below {} dBFS", self.threshold_dbfs),
        }
    }

    /// Put `to` on air from the current block on, with a crossfade, and record why.
    fn switch(&mut self, to: OnAir, cause: String, first: bool) {
        if to == OnAir::Live {
            let target = self.latency_target(&self.feed.status());
            self.feed.trim_to(target);
            // Silence that arrived before the upstream came back is not aired (it would be
            // dead air after the fallback).
            self.feed.skip_quiet_head();
            let st = self.feed.status();
            self.live_epoch = st.epoch;
            self.seen_pushed = st.pushed_frames;
            self.last_arrival_frame = self.emitted_frames;
        } else if !first {
            // What is still buffered is from before the failure: going back live must wait for
            // new audio, not replay this and flap.
            self.feed.trim_to(0);
        }
        if !first {
            self.fade = Some(Fade {
                from: self.on_air,
                done_frames: 0,
            });
        }
        self.on_air = to;
        self.bad_frames = 0;
        self.starved_frames = 0;
        let at = self.sample_instant(self.emitted_frames);
        tracing::info!(to = to.name(), %cause, %at, "relay switched");
        let mut r = self.lock_report();
        if to == OnAir::Live && r.first_live_at.is_none() {
            r.first_live_at = Some(at);
        }
        r.evidence.switches.push(RelaySwitch {
            at,
            to: to.name().into(),
            cause,
        });
    }

    /// Decide what is on air for the next block.
    fn decide(&mut self) {
        let st = self.feed.status();
        if self.emitted_frames == 0 {
            let now = self.clock.now();
            let anchor = *self.anchor.get_or_insert(now);
            let mut r = self.lock_report();
            r.first_pull_at = Some(now);
            r.sample_clock_origin = Some(anchor);
            drop(r);
            if self.ready(&st) {
                self.switch(OnAir::Live, "on air at start".into(), true);
            } else {
                let cause = self.not_ready_cause(&st);
                self.switch(OnAir::Fallback, cause, true);
            }
            return;
        }
        match self.on_air {
            OnAir::Live => {
                if st.pushed_frames != self.seen_pushed {
                    self.seen_pushed = st.pushed_frames;
                    self.last_arrival_frame = self.emitted_frames;
                }
                let since_arrival = self.emitted_frames - self.last_arrival_frame;
                let stall_frames = self.stall_frames.max(st.latency_hint_frames as u64);
                if let Link::Down(c) = &st.link {
                    let cause = format!("upstream dropped: {c}");
                    self.switch(OnAir::Fallback, cause, false);
                } else if st.epoch != self.live_epoch {
                    self.switch(OnAir::Fallback, "upstream reconnecting".into(), false);
                } else if since_arrival > stall_frames {
                    let secs = frames_to_secs(since_arrival, self.rate_hz);
                    let cause = format!("upstream stalled: nothing received for {secs:.1} s");
                    self.switch(OnAir::Fallback, cause, false);
                } else if st.quiet_arrived_frames > self.failover_frames
                    && st.quiet_arrived_frames != u64::MAX
                {
                    let secs = frames_to_secs(st.quiet_arrived_frames, self.rate_hz);
                    let cause = format!(
                        "upstream silent {secs:.1} s (below {} dBFS)",
                        self.threshold_dbfs
                    );
                    self.switch(OnAir::Fallback, cause, false);
                } else if st.buffered_frames
                    > self.max_latency_frames.max(2 * self.latency_target(&st))
                {
                    self.feed.trim_to(self.latency_target(&st));
                } else if self.bad_frames > self.failover_frames {
                    let secs = frames_to_secs(self.bad_frames, self.rate_hz);
                    let cause = if self.starved_frames * 2 > self.bad_frames {
                        format!("upstream stalled {secs:.1} s")
                    } else {
                        format!(
                            "upstream silent {secs:.1} s (below {} dBFS)",
                            self.threshold_dbfs
                        )
                    };
                    self.switch(OnAir::Fallback, cause, false);
                }
            }
            OnAir::Fallback => {
                if self.ready(&st) {
                    self.switch(OnAir::Live, "upstream back with audio".into(), false);
                }
            }
        }
    }

    /// Fill `out` from `which`; returns how many samples were missing (live only).
    fn produce(feed: &LiveFeed, fallback: &mut Fallback, which: OnAir, out: &mut [f32]) -> usize {
        match which {
            OnAir::Live => {
                let got = feed.pop(out);
                out[got..].fill(0.0);
                out.len() - got
            }
            OnAir::Fallback => {
                fallback.fill(out);
                0
            }
        }
    }

    fn fill_block(&mut self) {
        let frames = (self.window_frames - self.emitted_frames).min(BLOCK_FRAMES as u64) as usize;
        self.decide();
        let samples = frames * 2;
        self.block.clear();
        self.block.resize(samples, 0.0);
        let missing = Self::produce(&self.feed, &mut self.fallback, self.on_air, &mut self.block);
        if self.on_air == OnAir::Live {
            let starved = missing > 0;
            let level = upstream::level_dbfs(&self.block[..samples - missing]);
            if starved || level < self.threshold_dbfs {
                self.bad_frames += frames as u64;
                if starved {
                    self.starved_frames += frames as u64;
                }
            } else {
                self.bad_frames = 0;
                self.starved_frames = 0;
            }
        }
        if let Some(mut fade) = self.fade.take() {
            let old = &mut self.old[..samples];
            Self::produce(&self.feed, &mut self.fallback, fade.from, old);
            for f in 0..frames {
                let done = fade.done_frames + f;
                if done >= self.fade_frames {
                    break;
                }
                let g = done as f32 / self.fade_frames as f32;
                for c in 0..2 {
                    let i = f * 2 + c;
                    self.block[i] = self.block[i] * g + old[i] * (1.0 - g);
                }
            }
            fade.done_frames += frames;
            if fade.done_frames < self.fade_frames {
                self.fade = Some(fade);
            }
        }
        // Fade out over the window's last frames.
        let left_after = self.window_frames - self.emitted_frames - frames as u64;
        if left_after < self.fade_frames as u64 {
            for f in 0..frames {
                let remaining = left_after + (frames - f) as u64;
                if remaining <= self.fade_frames as u64 {
                    let g = (remaining - 1) as f32 / self.fade_frames as f32;
                    self.block[f * 2] *= g;
                    self.block[f * 2 + 1] *= g;
                }
            }
        }
        self.emitted_frames += frames as u64;
        self.pos = 0;
        let titles = self.feed.take_titles();
        let on_air = self.on_air;
        let emitted = self.emitted_frames;
        let errors = std::mem::take(&mut self.fallback.errors);
        let mut new_titles = Vec::new();
        for t in titles {
            if self.last_title.as_deref() != Some(t.as_str()) {
                self.last_title = Some(t.clone());
                new_titles.push(t);
            }
        }
        let mut r = self.lock_report();
        let secs = frames_to_secs(frames as u64, self.rate_hz);
        match on_air {
            OnAir::Live => r.evidence.live_secs += secs,
            OnAir::Fallback => r.evidence.fallback_secs += secs,
        }
        r.frames = emitted;
        for t in new_titles {
            if r.evidence.icy_titles.len() < MAX_TITLES {
                r.evidence.icy_titles.push(t);
            }
        }
        r.fallback_errors.extend(errors);
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.stop.store(true, Ordering::Relaxed);
            let mut r = self.lock_report();
            r.finished = true;
            // Sum of per-block float additions: restate exactly from frame counts.
            let total = frames_to_secs(r.frames, self.rate_hz);
            let live = r.evidence.live_secs;
            r.evidence.live_secs =
                (live * f64::from(self.rate_hz)).round() / f64::from(self.rate_hz);
            r.evidence.fallback_secs = total - r.evidence.live_secs;
        }
    }

    /// Set the sample clock's origin: the instant the first sample reaches the listener (the
    /// player's scheduled start when it pre-rolls). Without it, the first pull's instant is used.
    /// Has no effect once pulling started.
    pub fn anchor_at(&mut self, at: DateTime<Utc>) {
        if self.emitted_frames == 0 && self.block.is_empty() {
            self.anchor = Some(at);
        }
    }

    /// What is on air now.
    pub fn on_air(&self) -> OnAir {
        self.on_air
    }
}

impl Drop for RelaySource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Iterator for RelaySource {
    type Item = f32;

    fn next(&mut self) -> Option<f32> {
        if self.pos >= self.block.len() {
            if self.emitted_frames >= self.window_frames {
                self.finish();
                return None;
            }
            self.fill_block();
        }
        let s = self.block.get(self.pos).copied();
        self.pos += 1;
        s
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.window_frames - self.emitted_frames) as usize * 2
            + self.block.len().saturating_sub(self.pos);
        (left, Some(left))
    }
}

impl rodio::Source for RelaySource {
    fn current_span_len(&self) -> Option<usize> {
        // One format for the whole window.
        None
    }

    fn channels(&self) -> rodio::ChannelCount {
        NonZero::new(OUTPUT_CHANNELS).unwrap_or(NonZero::<u16>::MIN)
    }

    fn sample_rate(&self) -> rodio::SampleRate {
        NonZero::new(self.rate_hz).unwrap_or(NonZero::<u32>::MIN)
    }

    fn total_duration(&self) -> Option<Duration> {
        Some(Duration::from_secs_f64(frames_to_secs(
            self.window_frames,
            self.rate_hz,
        )))
    }
}

#[cfg(test)]
mod tests;
