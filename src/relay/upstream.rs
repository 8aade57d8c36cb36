//! The upstream reader: one thread that connects to the stream URL (HTTP/HTTPS, `Icy-MetaData: 1`),
//! strips ICY metadata, decodes MP3/Ogg Vorbis with symphonia, converts to the relay's output
//! format and pushes it into the [`LiveFeed`]; on failure it retries with capped backoff until
//! told to stop.
//!
//! **Invariant:** memory is bounded whatever the stream does: network bytes are pulled only as
//! fast as they are decoded (no byte queue), decoded audio goes into the fixed-capacity feed, and
//! nothing touches the disk. The thread ends within about [`POLL_INTERVAL`] of `stop` being set.

use super::feed::LiveFeed;
use super::icy::IcyDemux;
use super::resample::Converter;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// How often a blocked read wakes up to check the stop flag.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Least latency kept for Ogg streams (see `attempt`).
pub const OGG_LATENCY_SECS: f64 = 2.5;

/// Settings of the upstream thread.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: String,
    pub silence_threshold_dbfs: f64,
    pub output_rate_hz: u32,
    pub connect_timeout: Duration,
    /// A connection that delivers no byte for this long is abandoned and retried.
    pub stall_reconnect: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Why one connection attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect failed: {0}")]
    Connect(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("stream ended (upstream closed the connection)")]
    Ended,
    #[error("read failed: {0}")]
    Read(String),
    #[error("not a decodable MP3/Ogg Vorbis stream: {0}")]
    Undecodable(String),
    #[error("stopped")]
    Stopped,
}

static RUSTLS_PROVIDER: Once = Once::new();

/// Install the ring crypto provider for rustls once per process (reqwest is built with
/// `rustls-no-provider`). Another part of the program may have installed one already: fine.
pub fn install_tls_provider() {
    RUSTLS_PROVIDER.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Start the upstream thread. It runs until `stop` is set.
pub fn spawn(
    cfg: UpstreamConfig,
    feed: Arc<LiveFeed>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("loa-relay-upstream".into())
        .spawn(move || run(cfg, feed, stop))
}

fn run(cfg: UpstreamConfig, feed: Arc<LiveFeed>, stop: Arc<AtomicBool>) {
    install_tls_provider();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            feed.down(format!("cannot start the network runtime: {e}"));
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .user_agent(concat!("loa/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            feed.down(format!("cannot build the HTTP client: {e}"));
            return;
        }
    };
    let mut backoff = cfg.retry_min;
    while !stop.load(Ordering::Relaxed) {
        feed.connecting();
        let mut produced_frames = 0u64;
        let result = attempt(&cfg, &rt, &client, &feed, &stop, &mut produced_frames);
        let cause = match result {
            Err(UpstreamError::Stopped) => break,
            Err(e) => e.to_string(),
            Ok(()) => UpstreamError::Ended.to_string(),
        };
        tracing::info!(url = %cfg.url, %cause, "relay upstream down");
        feed.down(cause);
        // A connection that carried audio resets the backoff; repeated failures double it.
        if produced_frames > u64::from(cfg.output_rate_hz) {
            backoff = cfg.retry_min;
        }
        sleep_unless_stopped(backoff, &stop);
        backoff = (backoff * 2).min(cfg.retry_max);
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// One connection: connect, then decode until the stream ends, fails or `stop` is set.
fn attempt(
    cfg: &UpstreamConfig,
    rt: &Arc<tokio::runtime::Runtime>,
    client: &reqwest::Client,
    feed: &Arc<LiveFeed>,
    stop: &Arc<AtomicBool>,
    produced_frames: &mut u64,
) -> Result<(), UpstreamError> {
    let request = client.get(&cfg.url).header("Icy-MetaData", "1").send();
    // The connect timeout covers TCP (+TLS); this one also covers a server that accepts and
    // then never answers.
    let resp = rt
        .block_on(async { tokio::time::timeout(cfg.connect_timeout * 2, request).await })
        .map_err(|_| UpstreamError::Connect("no answer".into()))?
        .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(UpstreamError::Status(resp.status().as_u16()));
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let metaint = header("icy-metaint").and_then(|v| v.trim().parse::<usize>().ok());
    let content_type = header("content-type").unwrap_or_default();
    let mut hint = Hint::new();
    if let Some(ext) = extension_for(&content_type, &cfg.url) {
        hint.with_extension(ext);
    }
    // Ogg pages carry up to a few seconds of audio each (low-bitrate speech especially), and a
    // page is only decodable once complete: keep more in hand than for MP3's 26 ms frames.
    let hint_secs = if extension_for(&content_type, &cfg.url) == Some("ogg") {
        OGG_LATENCY_SECS
    } else {
        0.0
    };
    feed.connected((hint_secs * f64::from(cfg.output_rate_hz)) as usize);
    let reader = NetReader {
        rt: Arc::clone(rt),
        resp: Mutex::new(resp),
        demux: IcyDemux::new(metaint),
        pending: Vec::new(),
        pos: 0,
        feed: Arc::clone(feed),
        stop: Arc::clone(stop),
        stall_reconnect: cfg.stall_reconnect,
    };
    let mss = MediaSourceStream::new(
        Box::new(ReadOnlySource::new(reader)),
        MediaSourceStreamOptions::default(),
    );
    let probed = crate::media::contained(|| {
        symphonia::default::get_probe().format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
    })
    .map_err(UpstreamError::Undecodable)?
    .map_err(|e| map_sym(e, stop))?;
    decode_loop(cfg, probed.format, feed, stop, produced_frames)
}

fn decode_loop(
    cfg: &UpstreamConfig,
    mut format: Box<dyn FormatReader>,
    feed: &LiveFeed,
    stop: &Arc<AtomicBool>,
    produced_frames: &mut u64,
) -> Result<(), UpstreamError> {
    let make = |format: &dyn FormatReader| {
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| UpstreamError::Undecodable("no audio track".into()))?;
        let decoder = symphonia::default::get_codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| UpstreamError::Undecodable(e.to_string()))?;
        Ok::<_, UpstreamError>((track.id, decoder))
    };
    let (mut track_id, mut decoder) = make(format.as_ref())?;
    let mut converter: Option<Converter> = None;
    let mut interleaved: Option<SampleBuffer<f32>> = None;
    let mut out = Vec::new();
    let threshold = cfg.silence_threshold_dbfs;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(UpstreamError::Stopped);
        }
        // A panic inside the demuxer or decoder (malformed stream) ends this connection like
        // an undecodable stream, never the relay.
        let next =
            crate::media::contained(|| format.next_packet()).map_err(UpstreamError::Undecodable)?;
        let packet = match next {
            Ok(p) => p,
            Err(SymError::ResetRequired) => {
                // A chained Ogg stream started a new logical stream: new decoder.
                (track_id, decoder) = make(format.as_ref())?;
                continue;
            }
            Err(e) => return Err(map_sym(e, stop)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = crate::media::contained(|| decoder.decode(&packet))
            .map_err(UpstreamError::Undecodable)?;
        let decoded = match decoded {
            Ok(d) => d,
            // A corrupt frame (e.g. joining mid-frame) is skipped, as players do.
            Err(SymError::DecodeError(_)) => continue,
            Err(e) => return Err(map_sym(e, stop)),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count();
        if decoded.frames() == 0 || channels == 0 {
            continue;
        }
        let buf = match &mut interleaved {
            Some(b) if b.capacity() >= decoded.capacity() * channels => b,
            _ => interleaved.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let conv = match &mut converter {
            Some(c) if c.matches(spec.rate, channels) => c,
            _ => converter.insert(
                Converter::new(spec.rate, channels, cfg.output_rate_hz)
                    .map_err(|e| UpstreamError::Undecodable(e.to_string()))?,
            ),
        };
        out.clear();
        conv.push(buf.samples(), &mut out)
            .map_err(|e| UpstreamError::Undecodable(e.to_string()))?;
        let audible = level_dbfs(&out) >= threshold;
        feed.push(&out, audible);
        *produced_frames += (out.len() / 2) as u64;
    }
}

/// RMS level of interleaved samples in dBFS (-inf for digital silence).
pub fn level_dbfs(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    20.0 * rms.log10()
}

fn map_sym(e: SymError, stop: &AtomicBool) -> UpstreamError {
    if stop.load(Ordering::Relaxed) {
        return UpstreamError::Stopped;
    }
    match e {
        SymError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => UpstreamError::Ended,
        SymError::IoError(io) => UpstreamError::Read(io.to_string()),
        other => UpstreamError::Undecodable(other.to_string()),
    }
}

/// The container to try first, from the Content-Type (or the URL's extension).
fn extension_for(content_type: &str, url: &str) -> Option<&'static str> {
    let ct = content_type.to_ascii_lowercase();
    if ct.contains("mpeg") || ct.contains("mp3") {
        Some("mp3")
    } else if ct.contains("ogg") {
        Some("ogg")
    } else if url.ends_with(".mp3") {
        Some("mp3")
    } else if url.ends_with(".ogg") || url.ends_with(".oga") {
        Some("ogg")
    } else {
        None
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Blocking `Read` over the HTTP body for symphonia, with ICY metadata removed. Pulls the next
/// network chunk only when the decoder asks for bytes (back-pressure, no queue).
struct NetReader {
    rt: Arc<tokio::runtime::Runtime>,
    // `Mutex` only to make the reader `Sync` as symphonia's `MediaSource` requires; one thread
    // uses it.
    resp: Mutex<reqwest::Response>,
    demux: IcyDemux,
    pending: Vec<u8>,
    pos: usize,
    feed: Arc<LiveFeed>,
    stop: Arc<AtomicBool>,
    stall_reconnect: Duration,
}

impl Read for NetReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let last_bytes_at = Instant::now();
        while self.pos >= self.pending.len() {
            if self.stop.load(Ordering::Relaxed) {
                return Err(io::Error::other("stopped"));
            }
            if last_bytes_at.elapsed() > self.stall_reconnect {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no data for {} s (stalled)",
                        self.stall_reconnect.as_secs_f64()
                    ),
                ));
            }
            let resp = self.resp.get_mut().unwrap_or_else(|e| e.into_inner());
            let chunk = self
                .rt
                .block_on(async { tokio::time::timeout(POLL_INTERVAL, resp.chunk()).await });
            match chunk {
                Err(_elapsed) => continue,
                Ok(Err(e)) => return Err(io::Error::other(error_chain(&e))),
                Ok(Ok(None)) => return Ok(0),
                Ok(Ok(Some(bytes))) => {
                    self.pending.clear();
                    self.pos = 0;
                    for t in self.demux.push(&bytes, &mut self.pending) {
                        self.feed.title(t);
                    }
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_hint_from_content_type_or_url() {
        assert_eq!(extension_for("audio/mpeg", "http://x/a"), Some("mp3"));
        assert_eq!(extension_for("application/ogg", "http://x/a"), Some("ogg"));
        assert_eq!(extension_for("", "http://x/live.ogg"), Some("ogg"));
        assert_eq!(extension_for("text/html", "http://x/a"), None);
    }

    #[test]
    fn level_of_full_scale_square_is_zero_dbfs() {
        assert!((level_dbfs(&[1.0, -1.0, 1.0, -1.0]) - 0.0).abs() < 1e-9);
        assert!(level_dbfs(&[0.0; 8]).is_infinite());
        assert!((level_dbfs(&[0.01; 8]) + 40.0).abs() < 1e-6);
    }
}
