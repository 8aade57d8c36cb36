//! Audio output backends behind one small trait, chosen by name from [`BACKENDS`]:
//! `device` (the sound card through rodio → cpal → ALSA; `device:NAME` for a named one),
//! `wav:PATH` (a 32-bit float WAV of exactly what aired) and `null` (discards).
//!
//! **Invariant:** every sample passed to [`Output::write`] goes to the output once, in order, with
//! nothing inserted between two writes of one session (gapless); opening or losing a device is an
//! [`OutputError`], never a panic. `wav` and `null` are paced in real time unless opened with
//! [`Pacing::AsFastAsPossible`] (offline render). Not `Send`: an output lives on the player thread.

use rodio::cpal;
use rodio::cpal::traits::{DeviceTrait, HostTrait};
use rodio::{DeviceSinkBuilder, MixerDeviceSink, Source};
use std::num::NonZero;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Interleaved samples per queued chunk, per channel (≈ 23 ms at 44.1 kHz).
pub const DEFAULT_CHUNK_FRAMES: usize = 1024;
/// Chunks queued ahead of the sound card (≈ 190 ms at 44.1 kHz): the margin against a busy CPU,
/// and also how long a stop or preemption takes to be heard.
pub const DEFAULT_QUEUE_CHUNKS: usize = 8;
/// When a session's queue runs dry mid-session, the card callback waits this long for the player
/// before it plays silence: a late sample beats a gap. In steady state the queue is never dry
/// (the player stays [`DEFAULT_QUEUE_CHUNKS`] ahead); on an unclocked sink (ALSA `file` plugin)
/// this is what keeps the capture sample-exact (tests raise it: a loaded CI machine can stall the
/// producer longer than an unclocked sink is willing to wait).
pub const DEFAULT_UNDERRUN_WAIT_MS: u64 = 20;
/// A write that cannot queue anything for this long means the device stopped consuming.
pub const DEFAULT_STALL_SECS: f64 = 3.0;
/// The sound card buffer asked for: 50 ms, as rodio does by default.
pub const DEFAULT_DEVICE_BUFFER_MS: u32 = 50;
/// Rate and channels for `wav`/`null` outputs when not told otherwise (EBU broadcast rate).
pub const DEFAULT_SAMPLE_RATE: u32 = 48000;
pub const DEFAULT_CHANNELS: u16 = 2;

/// The backends, by name, with a one-line description (for `--help` and errors).
pub const BACKENDS: &[(&str, &str)] = &[
    (
        DeviceOutput::NAME,
        "the sound card via ALSA (default device; `device:NAME` for one listed by `loa devices`)",
    ),
    (
        WavOutput::NAME,
        "`wav:PATH`: a 32-bit float WAV file of exactly the samples that aired",
    ),
    (
        NullOutput::NAME,
        "discards the audio (still paced and metered)",
    ),
];

/// Errors opening or writing an output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("unknown output {spec:?}: use one of `device`, `device:NAME`, `wav:PATH`, `null`")]
    UnknownBackend { spec: String },
    #[error("no audio output device{}: {reason}", .name.as_ref().map(|n| format!(" named {n:?}")).unwrap_or_default())]
    NoDevice {
        name: Option<String>,
        reason: String,
    },
    #[error("audio device {name:?} cannot be opened (absent or busy?): {reason}")]
    DeviceOpen { name: String, reason: String },
    #[error("audio device failed while playing: {0}")]
    Device(String),
    #[error("audio device stopped taking samples for {secs:.1} s (stalled or disconnected)")]
    Stalled { secs: f64 },
    #[error("{path}: cannot write WAV: {reason}")]
    Wav { path: PathBuf, reason: String },
    #[error("invalid output format {sample_rate} Hz × {channels} channels")]
    Format { sample_rate: u32, channels: u16 },
}

/// Whether an output keeps to the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Airing: one second of audio takes one second.
    RealTime,
    /// Offline render: as fast as the CPU goes (`device` ignores this).
    AsFastAsPossible,
}

/// How to open an output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    /// `device`, `device:NAME`, `wav:PATH` or `null`.
    pub spec: String,
    /// Output rate; `None`: the device's default (48 kHz for `wav`/`null`).
    pub sample_rate: Option<u32>,
    /// Output channels; `None`: the device's default (2 for `wav`/`null`).
    pub channels: Option<u16>,
    pub pacing: Pacing,
    /// Delay from handing a sample to the sound card until it is heard, used to place the first
    /// sample on the scheduled instant; `None`: the card buffer length.
    pub latency_ms: Option<f64>,
    /// How long the card callback waits for a late chunk before playing silence;
    /// `None`: [`DEFAULT_UNDERRUN_WAIT_MS`].
    pub underrun_wait_ms: Option<u64>,
}

impl OutputConfig {
    /// A real-time output from a spec, formats left to defaults.
    pub fn new(spec: &str) -> Self {
        Self {
            spec: spec.to_string(),
            sample_rate: None,
            channels: None,
            pacing: Pacing::RealTime,
            latency_ms: None,
            underrun_wait_ms: None,
        }
    }
}

/// Rate and channel count an output takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFormat {
    pub sample_rate: u32,
    pub channels: u16,
}

/// An audio output. Writes are interleaved `f32` in [`Output::format`], whole frames.
pub trait Output {
    /// The backend's `NAME` (goes into the evidence).
    fn name(&self) -> &'static str;
    /// What the output takes.
    fn format(&self) -> OutputFormat;
    /// True when writes keep to the wall clock (the player then waits for scheduled instants).
    fn real_time(&self) -> bool;
    /// Begin a session: the first sample written after this call reaches the output at `at`
    /// (or as soon as possible if `at` has passed). Call it before `at` and write ahead (pre-roll).
    fn start_at(&mut self, at: Instant) -> Result<(), OutputError>;
    /// Hand samples to the output; blocks while the output is full (that is the pacing).
    fn write(&mut self, samples: &[f32]) -> Result<(), OutputError>;
    /// End a session: block until everything written has been played.
    fn drain(&mut self) -> Result<(), OutputError>;
    /// When the first sample of the current session reached (or will reach) the output.
    fn first_sample_at(&self) -> Option<Instant>;
}

/// Open the output named by `config.spec`.
pub fn open(config: &OutputConfig) -> Result<Box<dyn Output>, OutputError> {
    let spec = config.spec.trim();
    let (name, arg) = match spec.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (spec, None),
    };
    match (name, arg) {
        (DeviceOutput::NAME, device) => Ok(Box::new(DeviceOutput::open(
            device.filter(|d| !d.is_empty()),
            config,
        )?)),
        (WavOutput::NAME, Some(path)) if !path.is_empty() => {
            Ok(Box::new(WavOutput::create(PathBuf::from(path), config)?))
        }
        (NullOutput::NAME, None) => Ok(Box::new(NullOutput::new(config)?)),
        _ => Err(OutputError::UnknownBackend {
            spec: spec.to_string(),
        }),
    }
}

fn checked_format(sample_rate: u32, channels: u16) -> Result<OutputFormat, OutputError> {
    if sample_rate == 0 || channels == 0 || sample_rate > 768_000 || channels > 64 {
        return Err(OutputError::Format {
            sample_rate,
            channels,
        });
    }
    Ok(OutputFormat {
        sample_rate,
        channels,
    })
}

/// A description of one output device, for `loa devices`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    pub name: String,
    pub id: String,
    pub is_default: bool,
    /// e.g. `48000 Hz × 2 ch F32`, or why the default config could not be read.
    pub default_config: String,
}

/// The output devices cpal sees on the default host (ALSA on Linux).
pub fn list_devices() -> Result<Vec<DeviceInfo>, OutputError> {
    let host = cpal::default_host();
    let default_id = host.default_output_device().and_then(|d| d.id().ok());
    let devices = host.output_devices().map_err(|e| OutputError::NoDevice {
        name: None,
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for d in devices {
        let id = d.id().ok();
        let name = d
            .description()
            .map(|x| x.name().to_string())
            .unwrap_or_else(|_| id.as_ref().map(|i| i.to_string()).unwrap_or_default());
        let default_config = match d.default_output_config() {
            Ok(c) => format!(
                "{} Hz × {} ch {:?}",
                c.sample_rate(),
                c.channels(),
                c.sample_format()
            ),
            Err(e) => format!("unusable: {e}"),
        };
        out.push(DeviceInfo {
            is_default: id.is_some() && id == default_id,
            id: id.map(|i| i.to_string()).unwrap_or_default(),
            name,
            default_config,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// device

/// What the player queues for the sound card's callback.
enum Feed {
    StartAt(Instant),
    Audio(Vec<f32>),
    /// The session's last sample has been queued.
    End,
}

/// State shared between the player thread and the sound card callback.
#[derive(Default)]
struct Shared {
    consumed_samples: AtomicU64,
    underrun_samples: AtomicU64,
    first_sample_at: Mutex<Option<Instant>>,
    error: Mutex<Option<String>>,
}

enum FeedState {
    Idle,
    Waiting(Instant),
    Playing,
}

/// The one source that stays in rodio's mixer for the life of the output: plays what the player
/// queued, silence otherwise. Never ends. Added to the mixer directly (not through a rodio
/// `Player`), which avoids the start-of-track glitch (rodio issue #871).
struct FeedSource {
    rx: Receiver<Feed>,
    shared: Arc<Shared>,
    rate: NonZero<u32>,
    channels: NonZero<u16>,
    latency: Duration,
    underrun_wait: Duration,
    state: FeedState,
    chunk: Vec<f32>,
    pos: usize,
    /// Samples produced since the output opened, and the burst anchor used to tell when a sample
    /// will be heard: a callback fills its buffer in one burst, so the time of the burst's first
    /// call plus the position within it, plus the card latency, is the sample's air time.
    produced: u64,
    anchor: Option<(Instant, u64)>,
    last_call: Option<Instant>,
}

impl FeedSource {
    fn air_time_of_next(&mut self) -> Instant {
        let now = Instant::now();
        let new_burst = self
            .last_call
            .is_none_or(|t| now.duration_since(t) > Duration::from_millis(2));
        if new_burst || self.anchor.is_none() {
            self.anchor = Some((now, self.produced));
        }
        self.last_call = Some(now);
        let (t0, p0) = self.anchor.unwrap_or((now, self.produced));
        let frames_in = (self.produced - p0) / u64::from(self.channels.get());
        t0 + self.latency + Duration::from_secs_f64(frames_in as f64 / f64::from(self.rate.get()))
    }

    fn next_sample(&mut self) -> f32 {
        loop {
            if self.pos < self.chunk.len() {
                let x = self.chunk[self.pos];
                self.pos += 1;
                self.shared.consumed_samples.fetch_add(1, Ordering::Relaxed);
                return x;
            }
            // Only change state on a frame boundary.
            if !self.produced.is_multiple_of(u64::from(self.channels.get())) {
                if matches!(self.state, FeedState::Playing) {
                    self.shared.underrun_samples.fetch_add(1, Ordering::Relaxed);
                }
                return 0.0;
            }
            match self.state {
                FeedState::Waiting(at) => {
                    let air = self.air_time_of_next();
                    if air < at {
                        return 0.0;
                    }
                    self.state = FeedState::Playing;
                    if let Ok(mut f) = self.shared.first_sample_at.lock() {
                        *f = Some(air);
                    }
                    continue;
                }
                FeedState::Idle | FeedState::Playing => {
                    let got = match self.state {
                        FeedState::Playing => self.rx.recv_timeout(self.underrun_wait).ok(),
                        _ => self.rx.try_recv().ok(),
                    };
                    match got {
                        Some(Feed::StartAt(at)) => {
                            self.state = FeedState::Waiting(at);
                            self.anchor = None;
                        }
                        Some(Feed::Audio(chunk)) => {
                            if matches!(self.state, FeedState::Idle) {
                                // Audio without a start instant: on air now.
                                let air = self.air_time_of_next();
                                if let Ok(mut f) = self.shared.first_sample_at.lock() {
                                    *f = Some(air);
                                }
                                self.state = FeedState::Playing;
                            }
                            self.chunk = chunk;
                            self.pos = 0;
                        }
                        Some(Feed::End) => self.state = FeedState::Idle,
                        None => {
                            if matches!(self.state, FeedState::Playing) {
                                self.shared.underrun_samples.fetch_add(1, Ordering::Relaxed);
                            }
                            return 0.0;
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for FeedSource {
    type Item = rodio::Sample;
    fn next(&mut self) -> Option<Self::Item> {
        let x = self.next_sample();
        self.produced += 1;
        Some(x)
    }
}

impl Source for FeedSource {
    fn current_span_len(&self) -> Option<usize> {
        None
    }
    fn channels(&self) -> rodio::ChannelCount {
        self.channels
    }
    fn sample_rate(&self) -> rodio::SampleRate {
        self.rate
    }
    fn total_duration(&self) -> Option<Duration> {
        None
    }
}

/// The sound card through rodio's mixer.
pub struct DeviceOutput {
    _sink: MixerDeviceSink,
    tx: SyncSender<Feed>,
    shared: Arc<Shared>,
    format: OutputFormat,
    sent_samples: u64,
    latency: Duration,
    stall: Duration,
}

impl DeviceOutput {
    pub const NAME: &'static str = "device";

    /// Open the default device, or the one whose name is `name` (see [`list_devices`]).
    pub fn open(name: Option<&str>, config: &OutputConfig) -> Result<Self, OutputError> {
        let host = cpal::default_host();
        let label = name.unwrap_or("default").to_string();
        let device = match name {
            None => host.default_output_device().ok_or(OutputError::NoDevice {
                name: None,
                reason: "the audio host reports no default output device".into(),
            })?,
            Some(n) => host
                .output_devices()
                .map_err(|e| OutputError::NoDevice {
                    name: Some(n.to_string()),
                    reason: e.to_string(),
                })?
                .find(|d| {
                    d.description().is_ok_and(|x| x.name() == n)
                        || d.id().is_ok_and(|i| i.to_string() == n)
                })
                .ok_or_else(|| OutputError::NoDevice {
                    name: Some(n.to_string()),
                    reason: "not among the devices `loa devices` lists".into(),
                })?,
        };
        let open_err = |reason: String| OutputError::DeviceOpen {
            name: label.clone(),
            reason,
        };
        let default_rate = device
            .default_output_config()
            .map_err(|e| open_err(e.to_string()))?
            .sample_rate();
        let mut builder =
            DeviceSinkBuilder::from_device(device).map_err(|e| open_err(e.to_string()))?;
        if let Some(r) = config.sample_rate {
            let r = NonZero::new(r).ok_or(OutputError::Format {
                sample_rate: r,
                channels: config.channels.unwrap_or(0),
            })?;
            builder = builder.with_sample_rate(r);
        }
        if let Some(c) = config.channels {
            let c = NonZero::new(c).ok_or(OutputError::Format {
                sample_rate: config.sample_rate.unwrap_or(0),
                channels: c,
            })?;
            builder = builder.with_channels(c);
        }
        let shared = Arc::new(Shared::default());
        let err_shared = Arc::clone(&shared);
        let builder = builder.with_error_callback(move |e: cpal::Error| {
            // ALSA through Pulse reports harmless `snd_pcm_avail_delay` errors; keep the latest
            // for the log, stall detection decides whether the device is really gone.
            tracing::warn!("audio device: {e}");
            if let Ok(mut slot) = err_shared.error.lock() {
                *slot = Some(e.to_string());
            }
        });
        let buffer_frames =
            config.sample_rate.unwrap_or(default_rate) * DEFAULT_DEVICE_BUFFER_MS / 1000;
        let builder = builder.with_buffer_size(cpal::BufferSize::Fixed(buffer_frames));
        let mut sink = builder.open_stream().map_err(|e| open_err(e.to_string()))?;
        sink.log_on_drop(false);
        let rate = sink.config().sample_rate();
        let channels = sink.config().channel_count();
        let format = checked_format(rate.get(), channels.get())?;
        let latency = match config.latency_ms {
            Some(ms) if ms.is_finite() && ms >= 0.0 => Duration::from_secs_f64(ms / 1000.0),
            _ => Duration::from_secs_f64(f64::from(buffer_frames) / f64::from(rate.get())),
        };
        let (tx, rx) = sync_channel(DEFAULT_QUEUE_CHUNKS);
        sink.mixer().add(FeedSource {
            rx,
            shared: Arc::clone(&shared),
            rate,
            channels,
            latency,
            underrun_wait: Duration::from_millis(
                config.underrun_wait_ms.unwrap_or(DEFAULT_UNDERRUN_WAIT_MS),
            ),
            state: FeedState::Idle,
            chunk: Vec::new(),
            pos: 0,
            produced: 0,
            anchor: None,
            last_call: None,
        });
        Ok(Self {
            _sink: sink,
            tx,
            shared,
            format,
            sent_samples: 0,
            latency,
            stall: Duration::from_secs_f64(DEFAULT_STALL_SECS),
        })
    }

    /// Samples the card wanted while a session had nothing queued (should stay 0).
    pub fn underrun_samples(&self) -> u64 {
        self.shared.underrun_samples.load(Ordering::Relaxed)
    }

    fn send(&mut self, mut feed: Feed) -> Result<(), OutputError> {
        let since = Instant::now();
        loop {
            match self.tx.try_send(feed) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(f)) => {
                    feed = f;
                    if since.elapsed() > self.stall {
                        return Err(OutputError::Stalled {
                            secs: since.elapsed().as_secs_f64(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Disconnected(_)) => {
                    let why = self
                        .shared
                        .error
                        .lock()
                        .ok()
                        .and_then(|e| e.clone())
                        .unwrap_or_else(|| "the audio stream ended".into());
                    return Err(OutputError::Device(why));
                }
            }
        }
    }
}

impl Output for DeviceOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn format(&self) -> OutputFormat {
        self.format
    }
    fn real_time(&self) -> bool {
        true
    }
    fn start_at(&mut self, at: Instant) -> Result<(), OutputError> {
        if let Ok(mut f) = self.shared.first_sample_at.lock() {
            *f = None;
        }
        self.send(Feed::StartAt(at))
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), OutputError> {
        if samples.is_empty() {
            return Ok(());
        }
        self.send(Feed::Audio(samples.to_vec()))?;
        self.sent_samples += samples.len() as u64;
        Ok(())
    }
    fn drain(&mut self) -> Result<(), OutputError> {
        self.send(Feed::End)?;
        let mut last = self.shared.consumed_samples.load(Ordering::Relaxed);
        let mut last_progress = Instant::now();
        while last < self.sent_samples {
            std::thread::sleep(Duration::from_millis(2));
            let now = self.shared.consumed_samples.load(Ordering::Relaxed);
            if now != last {
                last = now;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > self.stall {
                return Err(OutputError::Stalled {
                    secs: last_progress.elapsed().as_secs_f64(),
                });
            }
        }
        // The last samples are in the card's buffer now; wait until they are heard.
        std::thread::sleep(self.latency);
        Ok(())
    }
    fn first_sample_at(&self) -> Option<Instant> {
        self.shared.first_sample_at.lock().ok().and_then(|f| *f)
    }
}

// ---------------------------------------------------------------------------------------------
// paced file-like outputs

/// Real-time pacing for outputs without a clock of their own.
#[derive(Debug)]
struct Pacer {
    pacing: Pacing,
    origin: Option<Instant>,
    first: Option<Instant>,
    frames: u64,
    rate: u32,
}

impl Pacer {
    fn new(pacing: Pacing, rate: u32) -> Self {
        Self {
            pacing,
            origin: None,
            first: None,
            frames: 0,
            rate,
        }
    }
    fn start_at(&mut self, at: Instant) {
        self.origin = Some(at);
        self.first = None;
        self.frames = 0;
    }
    fn at_frame(&self, frames: u64) -> Option<Instant> {
        self.origin
            .map(|o| o + Duration::from_secs_f64(frames as f64 / f64::from(self.rate.max(1))))
    }
    /// Wait until the next frame is due, then account for `n` frames.
    fn before_write(&mut self, n: u64) {
        let now = Instant::now();
        if self.origin.is_none() {
            self.origin = Some(now);
        }
        if self.pacing == Pacing::RealTime
            && let Some(due) = self.at_frame(self.frames)
            && due > now
        {
            std::thread::sleep(due - now);
        }
        if self.first.is_none() {
            self.first = Some(match self.pacing {
                Pacing::RealTime => Instant::now(),
                Pacing::AsFastAsPossible => self.origin.unwrap_or(now),
            });
        }
        self.frames += n;
    }
    fn drain(&self) {
        if self.pacing == Pacing::RealTime
            && let Some(end) = self.at_frame(self.frames)
        {
            let now = Instant::now();
            if end > now {
                std::thread::sleep(end - now);
            }
        }
    }
}

/// A WAV file of exactly the samples that aired (32-bit float).
pub struct WavOutput {
    path: PathBuf,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    format: OutputFormat,
    pacer: Pacer,
}

impl WavOutput {
    pub const NAME: &'static str = "wav";

    /// Create (truncate) `path`.
    pub fn create(path: PathBuf, config: &OutputConfig) -> Result<Self, OutputError> {
        let format = checked_format(
            config.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE),
            config.channels.unwrap_or(DEFAULT_CHANNELS),
        )?;
        let spec = hound::WavSpec {
            channels: format.channels,
            sample_rate: format.sample_rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let writer = hound::WavWriter::create(&path, spec).map_err(|e| OutputError::Wav {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            pacer: Pacer::new(config.pacing, format.sample_rate),
            path,
            writer: Some(writer),
            format,
        })
    }

    fn wav_err(&self, e: hound::Error) -> OutputError {
        OutputError::Wav {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

impl Output for WavOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn format(&self) -> OutputFormat {
        self.format
    }
    fn real_time(&self) -> bool {
        self.pacer.pacing == Pacing::RealTime
    }
    fn start_at(&mut self, at: Instant) -> Result<(), OutputError> {
        self.pacer.start_at(at);
        Ok(())
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), OutputError> {
        let frames = (samples.len() / usize::from(self.format.channels)) as u64;
        self.pacer.before_write(frames);
        let Some(w) = self.writer.as_mut() else {
            return Err(OutputError::Wav {
                path: self.path.clone(),
                reason: "already closed".into(),
            });
        };
        let mut result = Ok(());
        for &x in samples {
            if let Err(e) = w.write_sample(x) {
                result = Err(e);
                break;
            }
        }
        result.map_err(|e| self.wav_err(e))
    }
    fn drain(&mut self) -> Result<(), OutputError> {
        self.pacer.drain();
        // Keep the header valid after every session: a crash loses nothing already aired.
        if let Some(w) = self.writer.as_mut() {
            let r = w.flush();
            r.map_err(|e| self.wav_err(e))?;
        }
        Ok(())
    }
    fn first_sample_at(&self) -> Option<Instant> {
        self.pacer.first
    }
}

impl Drop for WavOutput {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take()
            && let Err(e) = w.finalize()
        {
            tracing::warn!("{}: finishing WAV: {e}", self.path.display());
        }
    }
}

/// Discards everything, at the pace of the wall clock.
#[derive(Debug)]
pub struct NullOutput {
    format: OutputFormat,
    pacer: Pacer,
}

impl NullOutput {
    pub const NAME: &'static str = "null";

    pub fn new(config: &OutputConfig) -> Result<Self, OutputError> {
        let format = checked_format(
            config.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE),
            config.channels.unwrap_or(DEFAULT_CHANNELS),
        )?;
        Ok(Self {
            pacer: Pacer::new(config.pacing, format.sample_rate),
            format,
        })
    }
}

impl Output for NullOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn format(&self) -> OutputFormat {
        self.format
    }
    fn real_time(&self) -> bool {
        self.pacer.pacing == Pacing::RealTime
    }
    fn start_at(&mut self, at: Instant) -> Result<(), OutputError> {
        self.pacer.start_at(at);
        Ok(())
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), OutputError> {
        self.pacer
            .before_write((samples.len() / usize::from(self.format.channels)) as u64);
        Ok(())
    }
    fn drain(&mut self) -> Result<(), OutputError> {
        self.pacer.drain();
        Ok(())
    }
    fn first_sample_at(&self) -> Option<Instant> {
        self.pacer.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_malformed_specs_are_errors_naming_the_choices() {
        for spec in ["speaker", "wav", "wav:", "null:x", ""] {
            let err = open(&OutputConfig::new(spec)).err().map(|e| e.to_string());
            let err = err.unwrap_or_else(|| panic!("{spec:?} opened"));
            assert!(err.contains("wav:PATH"), "{spec}: {err}");
        }
    }

    #[test]
    fn null_output_paces_in_real_time_and_render_does_not() {
        let mut cfg = OutputConfig::new("null");
        cfg.sample_rate = Some(1000);
        cfg.channels = Some(1);
        let mut out = open(&cfg).unwrap();
        let t0 = Instant::now();
        out.start_at(t0).unwrap();
        for _ in 0..10 {
            out.write(&[0.0; 20]).unwrap();
        }
        out.drain().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(200));
        cfg.pacing = Pacing::AsFastAsPossible;
        let mut out = open(&cfg).unwrap();
        let t0 = Instant::now();
        out.start_at(t0).unwrap();
        for _ in 0..1000 {
            out.write(&[0.0; 1000]).unwrap();
        }
        out.drain().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "1000 s of audio took {:?}",
            t0.elapsed()
        );
    }
}
