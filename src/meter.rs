//! The evidence meter: measures the samples actually handed to the output, after gain and fades.
//!
//! **Invariant:** the meter sees every sample the player hands to the output, exactly once, in
//! order, and nothing else (no idle silence between sessions); its figures become
//! [`crate::wire::Evidence`] unchanged. Pure: no I/O, no clock (the first-sample instant is given).

use crate::wire::Evidence;
use chrono::{DateTime, Utc};
use ebur128::{EbuR128, Mode};

/// A frame whose every channel is below this level counts as silent (EBU practice for "dead air").
pub const SILENCE_THRESHOLD_DBFS: f64 = -60.0;
/// Silent frames count only in runs at least this long; shorter gaps are pauses in speech.
pub const MIN_SILENCE_RUN_SECS: f64 = 2.0;

/// Errors building a meter.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("cannot meter {channels} channels at {sample_rate} Hz: {reason}")]
    Format {
        sample_rate: u32,
        channels: u16,
        reason: String,
    },
}

/// Accumulates the evidence of one airing.
pub struct EvidenceMeter {
    sample_rate: u32,
    channels: u16,
    r128: EbuR128,
    frames: u64,
    peak: f32,
    silence_threshold: f32,
    min_run_frames: u64,
    current_run_frames: u64,
    silent_frames: u64,
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
        let r128 = EbuR128::new(
            u32::from(channels),
            sample_rate,
            Mode::I | Mode::SAMPLE_PEAK,
        )
        .map_err(|e| MeterError::Format {
            sample_rate,
            channels,
            reason: format!("{e:?}"),
        })?;
        Ok(Self {
            sample_rate,
            channels,
            r128,
            frames: 0,
            peak: 0.0,
            silence_threshold: 10f64.powf(SILENCE_THRESHOLD_DBFS / 20.0) as f32,
            min_run_frames: (MIN_SILENCE_RUN_SECS * f64::from(sample_rate)).ceil() as u64,
            current_run_frames: 0,
            silent_frames: 0,
        })
    }

    /// Account for `samples` (interleaved, whole frames) handed to the output.
    pub fn push(&mut self, samples: &[f32]) {
        let ch = usize::from(self.channels.max(1));
        let whole = &samples[..samples.len() - samples.len() % ch];
        // The format was validated in `new` and `whole` holds whole frames: cannot fail.
        let _ = self.r128.add_frames_f32(whole);
        for frame in whole.chunks_exact(ch) {
            let mut frame_peak = 0f32;
            for &x in frame {
                frame_peak = frame_peak.max(x.abs());
            }
            self.peak = self.peak.max(frame_peak);
            if frame_peak < self.silence_threshold {
                self.current_run_frames += 1;
            } else {
                self.close_run();
            }
        }
        self.frames += (whole.len() / ch) as u64;
    }

    fn close_run(&mut self) {
        if self.current_run_frames >= self.min_run_frames {
            self.silent_frames += self.current_run_frames;
        }
        self.current_run_frames = 0;
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Seconds pushed so far.
    pub fn secs(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The evidence so far (a trailing silent run counts if long enough).
    pub fn evidence(&self, output: &str, first_sample_at: Option<DateTime<Utc>>) -> Evidence {
        let mut silent_frames = self.silent_frames;
        if self.current_run_frames >= self.min_run_frames {
            silent_frames += self.current_run_frames;
        }
        let integrated_lufs = self.r128.loudness_global().ok().filter(|x| x.is_finite());
        let sample_peak_dbfs = (self.peak > 0.0).then(|| 20.0 * f64::from(self.peak).log10());
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
