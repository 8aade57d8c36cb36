//! The evidence meter: measures the samples actually handed to the output, after gain and fades.
//!
//! **Invariant:** the meter sees every sample the player hands to the output, exactly once, in
//! order, and nothing else (no idle silence between sessions); its figures become
//! [`crate::wire::Evidence`] unchanged. Pure: no I/O, no clock (the first-sample instant is given).

use crate::wire::Evidence;
use chrono::{DateTime, Utc};
use ebur128::{EbuR128, Mode};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// A frame whose every channel is below this level counts as silent (EBU practice for "dead air").
pub const SILENCE_THRESHOLD_DBFS: f64 = -60.0;
/// Silent frames count only in runs at least this long; shorter gaps are pauses in speech.
pub const MIN_SILENCE_RUN_SECS: f64 = 2.0;
/// Chunks queued for an analysis thread before `push` blocks (≈ 1.5 s of
/// [`WORKER_CHUNK_SAMPLES`]-sample stereo chunks at 44.1 kHz: enough to ride out a scheduling
/// hiccup, small enough for the RSS budget).
pub const WORKER_QUEUE_CHUNKS: usize = 4;
/// Samples gathered before a chunk is handed to the analysis thread (≈ 0.37 s of 44.1 kHz
/// stereo, 128 KiB): fewer, larger hand-overs keep the thread wake-ups (two context switches
/// each) off the profile.
pub const WORKER_CHUNK_SAMPLES: usize = 32768;

/// Errors building a meter.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("cannot meter {channels} channels at {sample_rate} Hz: {reason}")]
    Format {
        sample_rate: u32,
        channels: u16,
        reason: String,
    },
    #[error("cannot start the metering thread: {0}")]
    Thread(std::io::Error),
}

enum Job<S> {
    Chunk(Vec<f32>),
    Run(Box<dyn FnOnce(&S) + Send>),
}

/// Runs an analysis over a stream of sample chunks on its own thread, so that metering (EBU R128
/// filters, true-peak oversampling) overlaps decoding and writing instead of adding to them.
/// Samples are gathered into chunks of [`WORKER_CHUNK_SAMPLES`] and processed in the order
/// pushed (a chunk boundary may fall anywhere, so `work` must not care where); buffers are
/// recycled, so steady state allocates nothing. Dropping it joins the thread.
pub struct ChunkWorker<S: Send + 'static> {
    tx: Option<SyncSender<Job<S>>>,
    spare: Receiver<Vec<f32>>,
    /// Samples pushed but not yet handed to the thread.
    gathering: Vec<f32>,
    handle: Option<JoinHandle<S>>,
}

impl<S: Send + 'static> ChunkWorker<S> {
    /// Start a thread named `name` that applies `work` to each pushed chunk.
    pub fn spawn(name: &str, mut state: S, work: fn(&mut S, &[f32])) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job<S>>(WORKER_QUEUE_CHUNKS);
        let (spare_tx, spare) = sync_channel::<Vec<f32>>(WORKER_QUEUE_CHUNKS + 2);
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Chunk(v) => {
                            work(&mut state, &v);
                            let _ = spare_tx.try_send(v);
                        }
                        Job::Run(f) => f(&state),
                    }
                }
                state
            })?;
        Ok(Self {
            tx: Some(tx),
            spare,
            gathering: Vec::with_capacity(WORKER_CHUNK_SAMPLES),
            handle: Some(handle),
        })
    }

    /// Queue a copy of `samples` (blocks while the thread is [`WORKER_QUEUE_CHUNKS`] behind).
    pub fn push(&mut self, samples: &[f32]) {
        self.gathering.extend_from_slice(samples);
        if self.gathering.len() >= WORKER_CHUNK_SAMPLES {
            self.hand_over();
        }
    }

    /// Send the gathered samples to the thread.
    fn hand_over(&mut self) {
        if self.gathering.is_empty() {
            return;
        }
        let mut next = self.spare.try_recv().unwrap_or_default();
        next.clear();
        next.reserve(WORKER_CHUNK_SAMPLES);
        let chunk = std::mem::replace(&mut self.gathering, next);
        if let Some(tx) = &self.tx
            && tx.send(Job::Chunk(chunk)).is_err()
        {
            tracing::error!("metering thread gone; its figures will be missing");
            self.tx = None;
        }
    }

    /// Wait until everything pushed so far is analysed, then read the state with `f`.
    /// `None` if the thread is gone.
    pub fn query<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&S) -> R + Send + 'static,
    ) -> Option<R> {
        self.hand_over();
        let (rtx, rrx) = sync_channel(1);
        self.tx
            .as_ref()?
            .send(Job::Run(Box::new(move |s| {
                let _ = rtx.send(f(s));
            })))
            .ok()?;
        rrx.recv().ok()
    }

    /// Wait until everything pushed is analysed and take the state back.
    pub fn finish(mut self) -> Option<S> {
        self.hand_over();
        self.tx = None;
        self.handle.take()?.join().ok()
    }
}

impl<S: Send + 'static> Drop for ChunkWorker<S> {
    fn drop(&mut self) {
        self.hand_over();
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The analysis half of the meter (runs on the worker thread).
struct Analysis {
    r128: EbuR128,
    channels: usize,
    peak: f32,
    silence_threshold: f32,
    min_run_frames: u64,
    current_run_frames: u64,
    silent_frames: u64,
}

/// The largest `|x|` of `xs` (0 when empty), folded in lanes the compiler can vectorise.
pub fn abs_peak(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let blocks = xs.chunks_exact(lanes.len());
    let tail = blocks.remainder();
    for block in blocks {
        for (m, x) in lanes.iter_mut().zip(block) {
            *m = m.max(x.abs());
        }
    }
    for x in tail {
        lanes[0] = lanes[0].max(x.abs());
    }
    lanes.iter().fold(0f32, |a, &b| a.max(b))
}

impl Analysis {
    fn push(&mut self, whole: &[f32]) {
        // The format was validated in `EvidenceMeter::new` and `whole` holds whole frames:
        // cannot fail.
        let _ = self.r128.add_frames_f32(whole);
        self.peak = self.peak.max(abs_peak(whole));
        // Silent runs: a frame is silent when every channel is below the threshold.
        let threshold = self.silence_threshold;
        for frame in whole.chunks_exact(self.channels) {
            if frame.iter().all(|x| x.abs() < threshold) {
                self.current_run_frames += 1;
            } else {
                if self.current_run_frames >= self.min_run_frames {
                    self.silent_frames += self.current_run_frames;
                }
                self.current_run_frames = 0;
            }
        }
    }

    /// (integrated LUFS, sample peak, silent frames including a long enough trailing run).
    fn summary(&self) -> (Option<f64>, f32, u64) {
        let mut silent_frames = self.silent_frames;
        if self.current_run_frames >= self.min_run_frames {
            silent_frames += self.current_run_frames;
        }
        let integrated_lufs = self.r128.loudness_global().ok().filter(|x| x.is_finite());
        (integrated_lufs, self.peak, silent_frames)
    }
}

/// Accumulates the evidence of one airing. The counting is done inline; the loudness, peak and
/// silence analysis runs on a [`ChunkWorker`] thread (`loa-meter`).
pub struct EvidenceMeter {
    sample_rate: u32,
    channels: u16,
    frames: u64,
    worker: ChunkWorker<Analysis>,
}

impl std::fmt::Debug for EvidenceMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceMeter")
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl EvidenceMeter {
    /// A meter for interleaved `f32` samples at `sample_rate` × `channels`.
    pub fn new(sample_rate: u32, channels: u16) -> Result<Self, MeterError> {
        // Mode I only: the sample peak is taken here (cheaper than ebur128's SAMPLE_PEAK pass).
        let r128 = EbuR128::new(u32::from(channels), sample_rate, Mode::I).map_err(|e| {
            MeterError::Format {
                sample_rate,
                channels,
                reason: format!("{e:?}"),
            }
        })?;
        let analysis = Analysis {
            r128,
            channels: usize::from(channels.max(1)),
            peak: 0.0,
            silence_threshold: 10f64.powf(SILENCE_THRESHOLD_DBFS / 20.0) as f32,
            min_run_frames: (MIN_SILENCE_RUN_SECS * f64::from(sample_rate)).ceil() as u64,
            current_run_frames: 0,
            silent_frames: 0,
        };
        let worker = ChunkWorker::spawn("loa-meter", analysis, Analysis::push)
            .map_err(MeterError::Thread)?;
        Ok(Self {
            sample_rate,
            channels,
            frames: 0,
            worker,
        })
    }

    /// Account for `samples` (interleaved, whole frames) handed to the output.
    pub fn push(&mut self, samples: &[f32]) {
        let ch = usize::from(self.channels.max(1));
        let whole = &samples[..samples.len() - samples.len() % ch];
        if whole.is_empty() {
            return;
        }
        self.worker.push(whole);
        self.frames += (whole.len() / ch) as u64;
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Seconds pushed so far.
    pub fn secs(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The evidence so far (a trailing silent run counts if long enough). Waits for the analysis
    /// thread to catch up.
    pub fn evidence(&mut self, output: &str, first_sample_at: Option<DateTime<Utc>>) -> Evidence {
        let (integrated_lufs, peak, silent_frames) =
            self.worker.query(|a| a.summary()).unwrap_or_else(|| {
                tracing::error!("metering thread gone: loudness and peak unknown");
                (None, 0.0, 0)
            });
        let sample_peak_dbfs = (peak > 0.0).then(|| 20.0 * f64::from(peak).log10());
        Evidence {
            output: output.to_string(),
            sample_rate: self.sample_rate,
            channels: self.channels,
            frames: self.frames,
            first_sample_at,
            integrated_lufs,
            sample_peak_dbfs,
            silence_secs: silent_frames as f64 / f64::from(self.sample_rate.max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, secs: f64, amp: f32) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .flat_map(|i| {
                let x = amp * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / rate as f32).sin();
                [x, x]
            })
            .collect()
    }

    #[test]
    fn full_scale_stereo_sine_reads_zero_lufs_and_zero_peak() {
        let mut m = EvidenceMeter::new(48000, 2).unwrap();
        m.push(&sine(48000, 3.0, 1.0));
        let e = m.evidence("null", None);
        assert_eq!(e.frames, 144000);
        // EBU Tech 3341: a 1 kHz sine at X dBFS peak in both channels reads X LUFS.
        let lufs = e.integrated_lufs.unwrap();
        assert!(lufs.abs() < 0.2, "{lufs}");
        assert!(e.sample_peak_dbfs.unwrap().abs() < 0.01);
        assert_eq!(e.silence_secs, 0.0);
    }

    #[test]
    fn silence_counts_only_in_runs_of_two_seconds() {
        let mut m = EvidenceMeter::new(8000, 2).unwrap();
        let tone = sine(8000, 1.0, 0.5);
        let gap = |secs: f64| vec![0.0f32; (16000.0 * secs) as usize];
        m.push(&tone);
        m.push(&gap(1.5)); // a pause: not counted
        m.push(&tone);
        m.push(&gap(2.5)); // dead air: counted
        m.push(&tone);
        m.push(&gap(3.0)); // trailing dead air: counted
        let e = m.evidence("null", None);
        assert!((e.silence_secs - 5.5).abs() < 0.01, "{}", e.silence_secs);
    }

    #[test]
    fn all_zero_input_has_no_loudness_and_no_peak() {
        let mut m = EvidenceMeter::new(8000, 1).unwrap();
        m.push(&vec![0.0; 8000]);
        let e = m.evidence("null", None);
        assert_eq!(e.integrated_lufs, None);
        assert_eq!(e.sample_peak_dbfs, None);
        assert!((e.silence_secs - 0.0).abs() < 1e-9);
    }
}
