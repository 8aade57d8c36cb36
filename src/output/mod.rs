//! Audio output backends behind one small trait, chosen by name from [`BACKENDS`]:
//! `device` (the sound card through rodio → cpal → ALSA; `device:NAME` for a named one),
//! `wav:PATH` (a 32-bit float WAV of exactly what aired) and `null` (discards).
//!
//! **Invariant:** every sample passed to [`Output::write`] goes to the output once, in order, with
//! nothing inserted between two writes of one session (gapless); opening or losing a device is an
//! [`OutputError`], never a panic. `wav` and `null` are paced in real time unless opened with
//! [`Pacing::AsFastAsPossible`] (offline render). Not `Send`: an output lives on the player thread.
//!
//! Wrappers around a backend: [`publish::PublishingOutput`] also sends what the backend plays to
//! an Icecast mount (`OutputConfig::publish`, the city side). The player knows only [`Output`].

pub mod publish;

use rodio::cpal;
use rodio::cpal::traits::StreamTrait;
use rodio::cpal::traits::{DeviceTrait, HostTrait};
use std::io::Write as _;
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
    /// Also publish everything the output plays to this Icecast mount
    /// (`icecast://source:PASSWORD@HOST:PORT/MOUNT.mp3`; see [`publish`]).
    pub publish: Option<String>,
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
            publish: None,
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

/// Open the output named by `config.spec`, publishing what it plays when `config.publish` is set.
pub fn open(config: &OutputConfig) -> Result<Box<dyn Output>, OutputError> {
    let out = open_backend(config)?;
    match &config.publish {
        None => Ok(out),
        Some(url) => publish::PublishingOutput::new(out, url)
            .map(|o| Box::new(o) as Box<dyn Output>)
            // The URL is checked at start-up (`publish::publish_url`): what is left is a failure
            // to start the publishing thread.
            .map_err(|e| OutputError::Device(format!("cannot publish to {url}: {e}"))),
    }
}

/// The backend `config.spec` names, without wrappers.
fn open_backend(config: &OutputConfig) -> Result<Box<dyn Output>, OutputError> {
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
    /// The output delay used at the latest callback, in nanoseconds (see [`Feeder::fill`]).
    delay_nanos: AtomicU64,
    first_sample_at: Mutex<Option<Instant>>,
    error: Mutex<Option<String>>,
}

enum FeedState {
    Idle,
    Waiting(Instant),
    Playing,
}

/// Runs inside the sound card's callback for the life of the output: plays what the player
/// queued, silence otherwise.
///
/// Latency model: at each callback ALSA reports the stream's delay (`snd_pcm_delay`, handed to
/// us by cpal as `playback − callback`): how long a frame written now waits before the device
/// plays it — the frames still queued in the ring buffer, plus, for the PulseAudio plugin, the
/// server's own buffering and sink latency. So frame `k` of this callback's buffer is heard at
/// `now + delay + k / rate`; that is the "air time" used to place a session's first sample on its
/// instant and reported as `first_sample_at`. What it does not know: latency after the device
/// (an external DSP or transmitter), which `OutputConfig.latency_ms` can state instead.
struct Feeder {
    rx: Receiver<Feed>,
    shared: Arc<Shared>,
    rate: u32,
    channels: u16,
    /// `OutputConfig.latency_ms`: used instead of the delay the device reports.
    latency_override: Option<Duration>,
    underrun_wait: Duration,
    state: FeedState,
    chunk: Vec<f32>,
    pos: usize,
    /// Samples produced since the output opened, and the anchor of the current callback: the
    /// air time of the sample numbered `anchor.1`.
    produced: u64,
    anchor: (Instant, u64),
}

impl Feeder {
    /// The data callback: fill the device's buffer (any sample type cpal offers).
    fn fill<T: cpal::SizedSample + cpal::FromSample<f32>>(
        &mut self,
        data: &mut [T],
        info: &cpal::OutputCallbackInfo,
    ) {
        let ts = info.timestamp();
        let delay = self
            .latency_override
            .unwrap_or_else(|| ts.playback.saturating_duration_since(ts.callback));
        self.shared.delay_nanos.store(
            u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.anchor = (Instant::now() + delay, self.produced);
        for d in data.iter_mut() {
            *d = T::from_sample(self.next_sample());
            self.produced += 1;
        }
    }

    fn air_time_of_next(&self) -> Instant {
        let (t0, p0) = self.anchor;
        let frames_in = self.produced.saturating_sub(p0) / u64::from(self.channels.max(1));
        t0 + Duration::from_secs_f64(frames_in as f64 / f64::from(self.rate.max(1)))
    }

    fn mark_first_sample(&self) {
        let air = self.air_time_of_next();
        if let Ok(mut f) = self.shared.first_sample_at.lock() {
            *f = Some(air);
        }
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
            if !self
                .produced
                .is_multiple_of(u64::from(self.channels.max(1)))
            {
                if matches!(self.state, FeedState::Playing) {
                    self.shared.underrun_samples.fetch_add(1, Ordering::Relaxed);
                }
                return 0.0;
            }
            match self.state {
                FeedState::Waiting(at) => {
                    if self.air_time_of_next() < at {
                        return 0.0;
                    }
                    self.state = FeedState::Playing;
                    self.mark_first_sample();
                    continue;
                }
                FeedState::Idle | FeedState::Playing => {
                    let got = match self.state {
                        FeedState::Playing => self.rx.recv_timeout(self.underrun_wait).ok(),
                        _ => self.rx.try_recv().ok(),
                    };
                    match got {
                        Some(Feed::StartAt(at)) => self.state = FeedState::Waiting(at),
                        Some(Feed::Audio(chunk)) => {
                            if matches!(self.state, FeedState::Idle) {
                                // Audio without a start instant: on air now.
                                self.mark_first_sample();
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

/// The sound card: a cpal (ALSA) output stream whose callback runs a [`Feeder`].
///
/// The stream is built here rather than through rodio's `MixerDeviceSink`, because rodio's
/// callback drops cpal's timestamps, and those are the only source of the device's delay. (No
/// rodio `Player` is involved either, so rodio's start-of-track glitch, issue #871, cannot occur.)
pub struct DeviceOutput {
    _stream: cpal::Stream,
    tx: SyncSender<Feed>,
    shared: Arc<Shared>,
    format: OutputFormat,
    sent_samples: u64,
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
        let default = device
            .default_output_config()
            .map_err(|e| open_err(e.to_string()))?;
        let format = checked_format(
            config.sample_rate.unwrap_or(default.sample_rate()),
            config.channels.unwrap_or(default.channels()),
        )?;
        let period_frames = format.sample_rate * DEFAULT_DEVICE_BUFFER_MS / 1000;
        let stream_config = cpal::StreamConfig {
            channels: format.channels,
            sample_rate: format.sample_rate,
            buffer_size: cpal::BufferSize::Fixed(period_frames.max(1)),
        };
        let shared = Arc::new(Shared::default());
        let (tx, rx) = sync_channel(DEFAULT_QUEUE_CHUNKS);
        let mut feeder = Feeder {
            rx,
            shared: Arc::clone(&shared),
            rate: format.sample_rate,
            channels: format.channels,
            latency_override: config
                .latency_ms
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
            underrun_wait: Duration::from_millis(
                config.underrun_wait_ms.unwrap_or(DEFAULT_UNDERRUN_WAIT_MS),
            ),
            state: FeedState::Idle,
            chunk: Vec::new(),
            pos: 0,
            produced: 0,
            anchor: (Instant::now(), 0),
        };
        let err_shared = Arc::clone(&shared);
        let on_error = move |e: cpal::Error| {
            // ALSA through Pulse reports harmless `snd_pcm_avail_delay` errors; keep the latest
            // for the log, stall detection decides whether the device is really gone.
            tracing::warn!("audio device: {e}");
            if let Ok(mut slot) = err_shared.error.lock() {
                *slot = Some(e.to_string());
            }
        };
        macro_rules! build {
            ($($fmt:ident => $t:ty),+) => {
                match default.sample_format() {
                    $(cpal::SampleFormat::$fmt => device.build_output_stream::<$t, _, _>(
                        stream_config,
                        move |data, info| feeder.fill(data, info),
                        on_error,
                        None,
                    ),)+
                    other => {
                        return Err(open_err(format!("unsupported sample format {other:?}")));
                    }
                }
            };
        }
        let stream =
            build!(F32 => f32, I16 => i16, I32 => i32, U16 => u16, F64 => f64, U8 => u8, I8 => i8)
                .map_err(|e| open_err(e.to_string()))?;
        stream.play().map_err(|e| open_err(e.to_string()))?;
        Ok(Self {
            _stream: stream,
            tx,
            shared,
            format,
            sent_samples: 0,
            stall: Duration::from_secs_f64(DEFAULT_STALL_SECS),
        })
    }

    /// Samples the card wanted while a session had nothing queued (should stay 0).
    pub fn underrun_samples(&self) -> u64 {
        self.shared.underrun_samples.load(Ordering::Relaxed)
    }

    /// The output delay used at the latest callback (device-reported unless overridden).
    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.shared.delay_nanos.load(Ordering::Relaxed))
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
        std::thread::sleep(self.delay().min(self.stall));
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

/// Where a paced output puts the samples: a WAV file, or nowhere.
pub trait PacedSink {
    /// Take samples (interleaved, whole frames).
    fn put(&mut self, samples: &[f32]) -> Result<(), OutputError>;
    /// End of a session: make what was put durable and readable.
    fn flush(&mut self) -> Result<(), OutputError>;
}

/// An output without a clock of its own ([`WavOutput`], [`NullOutput`]): a [`PacedSink`] behind
/// real-time pacing (or none, for an offline render).
#[derive(Debug)]
pub struct PacedOutput<S> {
    name: &'static str,
    format: OutputFormat,
    pacer: Pacer,
    sink: S,
}

impl<S: PacedSink> PacedOutput<S> {
    fn with_sink(
        name: &'static str,
        config: &OutputConfig,
        sink: impl FnOnce(OutputFormat) -> Result<S, OutputError>,
    ) -> Result<Self, OutputError> {
        let format = checked_format(
            config.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE),
            config.channels.unwrap_or(DEFAULT_CHANNELS),
        )?;
        Ok(Self {
            name,
            format,
            pacer: Pacer::new(config.pacing, format.sample_rate),
            sink: sink(format)?,
        })
    }
}

impl<S: PacedSink> Output for PacedOutput<S> {
    fn name(&self) -> &'static str {
        self.name
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
        self.sink.put(samples)
    }
    fn drain(&mut self) -> Result<(), OutputError> {
        self.pacer.drain();
        self.sink.flush()
    }
    fn first_sample_at(&self) -> Option<Instant> {
        self.pacer.first
    }
}

/// A WAV file of exactly the samples that aired (32-bit float).
pub type WavOutput = PacedOutput<WavFile>;

impl WavOutput {
    pub const NAME: &'static str = "wav";

    /// Create (truncate) `path`.
    pub fn create(path: PathBuf, config: &OutputConfig) -> Result<Self, OutputError> {
        Self::with_sink(Self::NAME, config, |f| WavFile::create(path, f))
    }
}

/// Discards everything, at the pace of the wall clock.
pub type NullOutput = PacedOutput<Discard>;

impl NullOutput {
    pub const NAME: &'static str = "null";

    pub fn new(config: &OutputConfig) -> Result<Self, OutputError> {
        Self::with_sink(Self::NAME, config, |_| Ok(Discard))
    }
}

/// The `null` sink.
#[derive(Debug)]
pub struct Discard;

impl PacedSink for Discard {
    fn put(&mut self, _: &[f32]) -> Result<(), OutputError> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Bytes of the header [`WavFile`] writes: RIFF (12) + `fmt ` (8 + 18) + `fact` (8 + 4) +
/// `data` header (8).
const WAV_HEADER_BYTES: u64 = 58;

/// A 32-bit float WAV (`WAVE_FORMAT_IEEE_FLOAT`, with the `fact` chunk that format asks for),
/// written in large sequential blocks; the header's lengths are rewritten at every
/// [`PacedSink::flush`] and on drop, so a crash loses at most the current session's tail.
#[derive(Debug)]
pub struct WavFile {
    path: PathBuf,
    file: std::fs::File,
    rate: u32,
    channels: u16,
    data_bytes: u64,
    /// Samples converted to little-endian bytes, written to the file when
    /// [`WAV_WRITE_BUFFER_BYTES`] are gathered (one conversion, one copy into the kernel).
    pending: Vec<u8>,
}

/// Bytes gathered before a write to the WAV file.
const WAV_WRITE_BUFFER_BYTES: usize = 1 << 20;

impl WavFile {
    fn create(path: PathBuf, format: OutputFormat) -> Result<Self, OutputError> {
        let file = std::fs::File::create(&path).map_err(|e| wav_err(&path, &e))?;
        let mut w = Self {
            file,
            path,
            rate: format.sample_rate,
            channels: format.channels,
            data_bytes: 0,
            pending: Vec::with_capacity(WAV_WRITE_BUFFER_BYTES),
        };
        w.pending.extend_from_slice(&w.header());
        Ok(w)
    }

    fn header(&self) -> Vec<u8> {
        let block = u32::from(self.channels) * 4;
        let frames = self.data_bytes / u64::from(block.max(1));
        let clamp = |x: u64| x.min(u64::from(u32::MAX)) as u32;
        let mut h = Vec::with_capacity(WAV_HEADER_BYTES as usize);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&clamp(WAV_HEADER_BYTES - 8 + self.data_bytes).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&18u32.to_le_bytes());
        h.extend_from_slice(&3u16.to_le_bytes()); // WAVE_FORMAT_IEEE_FLOAT
        h.extend_from_slice(&self.channels.to_le_bytes());
        h.extend_from_slice(&self.rate.to_le_bytes());
        h.extend_from_slice(&self.rate.saturating_mul(block).to_le_bytes());
        h.extend_from_slice(&(block as u16).to_le_bytes());
        h.extend_from_slice(&32u16.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        h.extend_from_slice(b"fact");
        h.extend_from_slice(&4u32.to_le_bytes());
        h.extend_from_slice(&clamp(frames).to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&clamp(self.data_bytes).to_le_bytes());
        h
    }

    /// Write the gathered bytes to the file.
    fn write_pending(&mut self) -> Result<(), OutputError> {
        let r = self.file.write_all(&self.pending);
        self.pending.clear();
        r.map_err(|e| wav_err(&self.path, &e))
    }

    /// Rewrite the header's lengths and push everything to the file.
    fn update_header(&mut self) -> Result<(), OutputError> {
        use std::io::{Seek, SeekFrom};
        self.write_pending()?;
        let header = self.header();
        let f = &mut self.file;
        let r = f
            .seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&header))
            .and_then(|()| f.seek(SeekFrom::End(0)))
            .and_then(|_| f.flush());
        r.map_err(|e| wav_err(&self.path, &e))
    }
}

fn wav_err(path: &std::path::Path, e: &dyn std::fmt::Display) -> OutputError {
    OutputError::Wav {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl PacedSink for WavFile {
    fn put(&mut self, samples: &[f32]) -> Result<(), OutputError> {
        let new_len = self.data_bytes + 4 * samples.len() as u64;
        if WAV_HEADER_BYTES - 8 + new_len > u64::from(u32::MAX) {
            return Err(OutputError::Wav {
                path: self.path.clone(),
                reason: "longer than a WAV file can hold (4 GiB); split the session".into(),
            });
        }
        let start = self.pending.len();
        self.pending.resize(start + 4 * samples.len(), 0);
        for (dst, x) in self.pending[start..].chunks_exact_mut(4).zip(samples) {
            dst.copy_from_slice(&x.to_le_bytes());
        }
        if self.pending.len() >= WAV_WRITE_BUFFER_BYTES {
            self.write_pending()?;
        }
        self.data_bytes = new_len;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), OutputError> {
        self.update_header()
    }
}

impl Drop for WavFile {
    fn drop(&mut self) {
        if let Err(e) = self.update_header() {
            tracing::warn!("{}: finishing WAV: {e}", self.path.display());
        }
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
