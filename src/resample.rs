//! Band-limited sample-rate conversion of interleaved `f32` streams, shared by the file path
//! ([`crate::media::DecodedStream`]) and the relay ([`crate::relay`]): rubato's synchronous FFT
//! resampler (a windowed-sinc anti-alias/anti-image filter applied by overlap-add), fed in
//! whatever chunks the caller has.
//!
//! **Invariant:** the output does not depend on how the input was chunked; it is aligned with
//! the input (the filter's delay is trimmed, so the first output frame is the first input
//! frame's instant); and after [`StreamResampler::finish`] it holds exactly
//! `round(input frames × out_rate / in_rate)` frames. Equal rates pass through untouched.
//! Pure: no I/O.
//!
//! The filter is sized from the rates: its FFT block on the input side is the smallest multiple
//! of `in_rate / gcd` that is at least [`MIN_FFT_BLOCK_FRAMES`], which puts the pass band edge
//! above 20 kHz for 44.1 kHz input (flat to within 0.01 dB there) and keeps images and aliases
//! more than 100 dB down (Blackman-Harris² window).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

/// Smallest FFT block (input frames) of the filter: long enough for a sharp filter, short
/// enough for a small delay (about 12 ms at 44.1 kHz).
pub const MIN_FFT_BLOCK_FRAMES: usize = 1024;

/// Errors setting up a conversion.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot convert {in_rate} Hz to {out_rate} Hz × {channels} channels: {reason}")]
    Setup {
        in_rate: u32,
        out_rate: u32,
        channels: usize,
        reason: String,
    },
    #[error("resampler: {0}")]
    Process(String),
}

/// Streaming converter of interleaved audio from one rate to another (same channel count).
pub struct StreamResampler {
    /// `None` when the rates are equal (pass-through).
    fft: Option<Box<Fft<f32>>>,
    channels: usize,
    in_rate: u64,
    out_rate: u64,
    /// Interleaved input not yet converted (less than one block once `push` returns).
    pending: Vec<f32>,
    /// One block of output, interleaved.
    scratch: Vec<f32>,
    /// Output frames of filter delay still to drop.
    skip: usize,
    in_frames: u64,
    out_frames: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("in_rate", &self.in_rate)
            .field("out_rate", &self.out_rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl StreamResampler {
    /// A converter of `channels` interleaved channels from `in_rate` to `out_rate` Hz.
    pub fn new(in_rate: u32, out_rate: u32, channels: usize) -> Result<Self, ResampleError> {
        let setup = |reason: String| ResampleError::Setup {
            in_rate,
            out_rate,
            channels,
            reason,
        };
        if in_rate == 0 || out_rate == 0 || channels == 0 {
            return Err(setup("rates and channel count must be positive".into()));
        }
        let fft = if in_rate == out_rate {
            None
        } else {
            let min_in =
                (u64::from(in_rate) / gcd(u64::from(in_rate), u64::from(out_rate))) as usize;
            let block = MIN_FFT_BLOCK_FRAMES.div_ceil(min_in) * min_in;
            let fft = Fft::<f32>::new_custom(
                in_rate as usize,
                out_rate as usize,
                block,
                1,
                channels,
                WindowFunction::BlackmanHarris2,
                FixedSync::Both,
            )
            .map_err(|e| setup(e.to_string()))?;
            Some(Box::new(fft))
        };
        let skip = fft.as_ref().map_or(0, |f| f.output_delay());
        let scratch_frames = fft.as_ref().map_or(0, |f| f.output_frames_max());
        Ok(Self {
            fft,
            channels,
            in_rate: u64::from(in_rate),
            out_rate: u64::from(out_rate),
            pending: Vec::new(),
            scratch: vec![0.0; scratch_frames * channels],
            skip,
            in_frames: 0,
            out_frames: 0,
        })
    }

    /// Whether this converter takes input of this rate and channel count.
    pub fn matches(&self, in_rate: u32, channels: usize) -> bool {
        self.in_rate == u64::from(in_rate) && self.channels == channels
    }

    /// Output frames that `finish` will have produced for the input so far.
    fn target_frames(&self) -> u64 {
        (self.in_frames * self.out_rate + self.in_rate / 2) / self.in_rate
    }

    /// Convert one chunk of interleaved input (whole frames), appending output to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let input = &input[..input.len() - input.len() % self.channels];
        self.in_frames += (input.len() / self.channels) as u64;
        if self.fft.is_none() {
            out.extend_from_slice(input);
            self.out_frames += (input.len() / self.channels) as u64;
            return Ok(());
        }
        let block = self.block_in() * self.channels;
        let mut used = 0;
        if self.pending.is_empty() {
            // Whole blocks straight from the caller's buffer.
            while input.len() - used >= block {
                self.process(&input[used..used + block], None, out, u64::MAX)?;
                used += block;
            }
            self.pending.extend_from_slice(&input[used..]);
            return Ok(());
        }
        self.pending.extend_from_slice(input);
        let pending = std::mem::take(&mut self.pending);
        while pending.len() - used >= block {
            self.process(&pending[used..used + block], None, out, u64::MAX)?;
            used += block;
        }
        self.pending = pending;
        self.pending.drain(..used);
        Ok(())
    }

    /// The end of the input: flush the filter, so that the output holds exactly
    /// `round(input frames × out_rate / in_rate)` frames.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        if self.fft.is_none() {
            return Ok(());
        }
        let target = self.target_frames();
        let pending = std::mem::take(&mut self.pending);
        let frames = pending.len() / self.channels;
        let mut padded = pending;
        padded.resize(self.block_in() * self.channels, 0.0);
        if self.out_frames < target {
            self.process(&padded, Some(frames), out, target)?;
        }
        padded.fill(0.0);
        while self.out_frames < target {
            self.process(&padded, Some(0), out, target)?;
        }
        Ok(())
    }

    fn block_in(&self) -> usize {
        self.fft.as_ref().map_or(1, |f| f.input_frames_next())
    }

    /// Convert one block; emit its output after the delay, up to `limit` frames in all.
    fn process(
        &mut self,
        block: &[f32],
        partial: Option<usize>,
        out: &mut Vec<f32>,
        limit: u64,
    ) -> Result<(), ResampleError> {
        let ch = self.channels;
        let Some(fft) = self.fft.as_mut() else {
            return Ok(());
        };
        let err = |e: &dyn std::fmt::Display| ResampleError::Process(e.to_string());
        let frames_in = block.len() / ch;
        let input = InterleavedSlice::new(block, ch, frames_in).map_err(|e| err(&e))?;
        let frames_out = self.scratch.len() / ch;
        let mut output =
            InterleavedSlice::new_mut(&mut self.scratch, ch, frames_out).map_err(|e| err(&e))?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (_, written) = fft
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| err(&e))?;
        let skip = self.skip.min(written);
        self.skip -= skip;
        let room = limit.saturating_sub(self.out_frames);
        let take = ((written - skip) as u64).min(room) as usize;
        out.extend_from_slice(&self.scratch[skip * ch..(skip + take) * ch]);
        self.out_frames += take as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, channels: usize, freq: f64, frames: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let v =
                    (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() * 0.5;
                std::iter::repeat_n(v as f32, channels)
            })
            .collect()
    }

    fn convert(input: &[f32], from: u32, to: u32, ch: usize, chunk: usize) -> Vec<f32> {
        let mut r = StreamResampler::new(from, to, ch).unwrap();
        let mut out = Vec::new();
        for c in input.chunks(chunk * ch) {
            r.push(c, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn output_length_is_exact_and_chunking_does_not_matter() {
        for (from, to, ch, frames) in [
            (44_100u32, 48_000u32, 2usize, 44_100usize),
            (16_000, 48_000, 1, 16_001),
            (8_000, 48_000, 2, 8_000),
            (48_000, 44_100, 2, 12_345),
            (22_050, 48_000, 6, 3_000),
            (48_000, 48_000, 2, 1_000),
        ] {
            let input = sine(from, ch, 440.0, frames);
            let whole = convert(&input, from, to, ch, frames.max(1));
            let expected = (frames as u64 * u64::from(to) + u64::from(from) / 2) / u64::from(from);
            assert_eq!((whole.len() / ch) as u64, expected, "{from}→{to}");
            for chunk in [1usize, 7, 1152] {
                assert_eq!(
                    convert(&input, from, to, ch, chunk),
                    whole,
                    "{from}→{to} in chunks of {chunk}"
                );
            }
        }
    }

    #[test]
    fn output_is_aligned_with_the_input() {
        // A click at input frame 1000 (16 kHz) lands at output frame 3000 (48 kHz).
        let mut input = vec![0f32; 4000];
        input[1000] = 1.0;
        let out = convert(&input, 16_000, 48_000, 1, 4000);
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, _)| i);
        assert_eq!(peak, Some(3000));
    }

    #[test]
    fn bad_setup_is_an_error_not_a_panic() {
        assert!(StreamResampler::new(0, 48_000, 2).is_err());
        assert!(StreamResampler::new(44_100, 0, 2).is_err());
        assert!(StreamResampler::new(44_100, 48_000, 0).is_err());
    }
}
