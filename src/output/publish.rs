//! The city side as an output: [`PublishingOutput`] wraps the station's output (sound card, WAV,
//! null) and tees every sample written to it to an Icecast mount, MP3-encoded by a
//! [`LamePublisher`] on its own thread — with silence between sessions, so the mount stays up and
//! the stream keeps real time for the wards relaying it.
//!
//! **Invariant:** publishing never holds up or fails the air output: samples reach the publisher
//! thread through a bounded queue and are dropped when it is full (slow network) or while the
//! server is unreachable (retried every [`DEFAULT_PUBLISH_RETRY_SECS`]); that queue is the only
//! buffer.

use super::{Output, OutputError, OutputFormat};
use crate::relay::source_client::{DEFAULT_PUBLISH_KBPS, LamePublisher, SourceError};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Blocks (one per output write, ~20 ms each) queued for the publisher before writes are dropped.
pub const DEFAULT_PUBLISH_QUEUE_BLOCKS: usize = 64;
/// Wait between attempts to (re)connect to the Icecast server.
pub const DEFAULT_PUBLISH_RETRY_SECS: u64 = 5;
/// While nothing airs, the stream is kept within this much of real time with silence.
const IDLE_CUSHION_SECS: f64 = 0.5;
/// How often the publisher thread looks at the clock when nothing is written.
const IDLE_TICK: Duration = Duration::from_millis(50);

/// `icecast://user:pw@host:port/mount` (or `http://…`) → the `http://` form the source client
/// takes. Checks the URL now, so a typo fails at start-up, not at the first airing.
pub fn publish_url(url: &str) -> Result<String, SourceError> {
    let http = match url.strip_prefix("icecast://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_string(),
    };
    let bad = |reason: &str| SourceError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = reqwest::Url::parse(&http).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(bad("use icecast:// or http://"));
    }
    if parsed.password().is_none() {
        return Err(bad("no source password"));
    }
    if parsed.path().len() < 2 {
        return Err(bad("no mount point"));
    }
    Ok(http)
}

/// An output that also publishes what it plays (see the module doc).
pub struct PublishingOutput {
    inner: Box<dyn Output>,
    tx: Option<SyncSender<Vec<f32>>>,
    thread: Option<JoinHandle<()>>,
    dropped_blocks: u64,
}

impl PublishingOutput {
    /// Wrap `inner`; publish to `url` (see [`publish_url`]) at the output's format.
    pub fn new(inner: Box<dyn Output>, url: &str) -> Result<Self, SourceError> {
        let url = publish_url(url)?;
        let fmt = inner.format();
        let (tx, rx) = sync_channel::<Vec<f32>>(DEFAULT_PUBLISH_QUEUE_BLOCKS);
        let thread = std::thread::Builder::new()
            .name("loa-publish-tee".into())
            .spawn(move || run(&url, fmt, rx))?;
        Ok(Self {
            inner,
            tx: Some(tx),
            thread: Some(thread),
            dropped_blocks: 0,
        })
    }
}

fn run(url: &str, fmt: OutputFormat, rx: std::sync::mpsc::Receiver<Vec<f32>>) {
    let rate = f64::from(fmt.sample_rate);
    let ch = usize::from(fmt.channels.max(1));
    let cushion = (IDLE_CUSHION_SECS * rate) as u64;
    let retry = Duration::from_secs(DEFAULT_PUBLISH_RETRY_SECS);
    let mut publisher: Option<LamePublisher> = None;
    let mut next_try = Instant::now();
    let mut start = Instant::now();
    let mut sent_frames = 0u64;
    let silence = vec![0.0f32; (rate as usize / 20).max(1) * ch];
    loop {
        let block = match rx.recv_timeout(IDLE_TICK) {
            Ok(b) => Some(b),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if publisher.is_none() && Instant::now() >= next_try {
            match LamePublisher::start(url, fmt.sample_rate, fmt.channels, DEFAULT_PUBLISH_KBPS) {
                Ok(p) => {
                    tracing::info!(%url, "publishing to icecast");
                    publisher = Some(p);
                    start = Instant::now();
                    sent_frames = 0;
                }
                Err(e) => {
                    tracing::warn!(%url, "cannot publish (retrying in {} s): {e}", retry.as_secs());
                    next_try = Instant::now() + retry;
                }
            }
        }
        // Not connected: what airs meanwhile is not published.
        let Some(p) = publisher.as_mut() else {
            continue;
        };
        // Behind real time (nothing aired for a while): silence up to now.
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        let mut result = Ok(());
        if sent_frames + cushion < due {
            let mut left = due - sent_frames;
            while left > 0 && result.is_ok() {
                let n = (left as usize).min(silence.len() / ch);
                result = p.write(&silence[..n * ch]);
                left -= n as u64;
            }
            sent_frames = due;
        }
        if let (Some(b), true) = (block, result.is_ok()) {
            sent_frames += (b.len() / ch) as u64;
            result = p.write(&b);
        }
        if let Err(e) = result {
            tracing::warn!(%url, "publishing interrupted (retrying in {} s): {e}", retry.as_secs());
            publisher = None;
            next_try = Instant::now() + retry;
        }
    }
    if let Some(p) = publisher
        && let Err(e) = p.finish()
    {
        tracing::warn!(%url, "closing the published stream: {e}");
    }
}

impl Output for PublishingOutput {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn format(&self) -> OutputFormat {
        self.inner.format()
    }
    fn real_time(&self) -> bool {
        self.inner.real_time()
    }
    fn start_at(&mut self, at: Instant) -> Result<(), OutputError> {
        self.inner.start_at(at)
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), OutputError> {
        self.inner.write(samples)?;
        if let Some(tx) = &self.tx {
            match tx.try_send(samples.to_vec()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.dropped_blocks += 1;
                    if self.dropped_blocks.is_power_of_two() {
                        tracing::warn!(
                            dropped_blocks = self.dropped_blocks,
                            "publishing falls behind; audio dropped from the stream (not from the air)"
                        );
                    }
                }
                Err(TrySendError::Disconnected(_)) => self.tx = None,
            }
        }
        Ok(())
    }
    fn drain(&mut self) -> Result<(), OutputError> {
        self.inner.drain()
    }
    fn first_sample_at(&self) -> Option<Instant> {
        self.inner.first_sample_at()
    }
}

impl Drop for PublishingOutput {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_urls_are_checked_and_icecast_scheme_maps_to_http() {
        assert_eq!(
            publish_url("icecast://source:pw@127.0.0.1:8000/city.mp3").unwrap(),
            "http://source:pw@127.0.0.1:8000/city.mp3"
        );
        assert!(publish_url("http://source:pw@host:8000/city.mp3").is_ok());
        for bad in [
            "icecast://host:8000/city.mp3",
            "icecast://source:pw@host:8000/",
            "ftp://source:pw@host/x.mp3",
            "not a url",
        ] {
            assert!(publish_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unreachable_server_never_holds_up_or_fails_the_air_output() {
        // Nothing listens on this port: every publish attempt is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut cfg = crate::output::OutputConfig::new("null");
        cfg.pacing = crate::output::Pacing::AsFastAsPossible;
        let inner = crate::output::open(&cfg).unwrap();
        let url = format!("icecast://source:pw@127.0.0.1:{port}/city.mp3");
        let mut out = PublishingOutput::new(inner, &url).unwrap();
        let t0 = Instant::now();
        out.start_at(Instant::now()).unwrap();
        let block = vec![0.25f32; 1024 * 2];
        // 10 s of audio, far more than the publisher's queue holds.
        for _ in 0..(10 * 48_000 / 1024) {
            out.write(&block).unwrap();
        }
        out.drain().unwrap();
        drop(out);
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }
}
