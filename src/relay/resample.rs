//! Conversion of decoded audio of any rate and channel count to the relay's fixed output format
//! (stereo at [`super::OUTPUT_RATE_HZ`]): channel remix (more than two channels by the ITU-R
//! BS.775 downmix, as files), then the band-limited resampler of [`crate::resample`].
//!
//! **Invariant:** the converter is stateful across calls, so feeding a signal in chunks of any
//! size gives the same output as feeding it at once; the output rate is exact on average (the
//! resampler works on whole blocks with an exact rate ratio: no drift), and the output lags the
//! input by less than one resampler block. Pure: no I/O.

use crate::resample::{ResampleError, StreamResampler};

/// Streaming converter to interleaved stereo at a fixed output rate.
#[derive(Debug)]
pub struct Converter {
    in_rate: u32,
    in_channels: usize,
    matrix: Vec<[f32; 2]>,
    stereo: Vec<f32>,
    resampler: StreamResampler,
}

impl Converter {
    /// A converter from `in_rate` Hz with `in_channels` channels to stereo at `out_rate` Hz.
    pub fn new(in_rate: u32, in_channels: usize, out_rate: u32) -> Result<Self, ResampleError> {
        Ok(Self {
            in_rate,
            in_channels: in_channels.max(1),
            matrix: crate::media::downmix_matrix(None, in_channels.max(1)),
            stereo: Vec::new(),
            resampler: StreamResampler::new(in_rate, out_rate, 2)?,
        })
    }

    /// Whether this converter already matches input of this rate and channel count.
    pub fn matches(&self, in_rate: u32, in_channels: usize) -> bool {
        self.in_rate == in_rate && self.in_channels == in_channels
    }

    /// Convert one chunk of interleaved input, appending interleaved stereo to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let ch = self.in_channels;
        let frames = input.len() / ch;
        self.stereo.clear();
        self.stereo.resize(frames * 2, 0.0);
        for (i, o) in input[..frames * ch]
            .chunks_exact(ch)
            .zip(self.stereo.chunks_exact_mut(2))
        {
            crate::media::map_frame_with(&self.matrix, i, o);
        }
        self.resampler.push(&self.stereo, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, channels: usize, freq: f32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .flat_map(|i| {
                let v = (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5;
                std::iter::repeat_n(v, channels)
            })
            .collect()
    }

    #[test]
    fn same_rate_stereo_passes_through_and_mono_is_doubled() {
        let mut c = Converter::new(44_100, 2, 44_100).unwrap();
        let mut out = Vec::new();
        c.push(&[0.1, 0.2, 0.3, 0.4], &mut out).unwrap();
        assert_eq!(out, vec![0.1, 0.2, 0.3, 0.4]);
        let mut c = Converter::new(44_100, 1, 44_100).unwrap();
        let mut out = Vec::new();
        c.push(&[0.1, 0.3], &mut out).unwrap();
        assert_eq!(out, vec![0.1, 0.1, 0.3, 0.3]);
    }

    #[test]
    fn chunking_does_not_change_output_and_rate_is_exact() {
        for (rate, ch) in [(48_000u32, 2usize), (22_050, 1), (32_000, 6)] {
            let input = sine(rate, ch, 440.0, 1.0);
            let mut whole = Vec::new();
            Converter::new(rate, ch, 44_100)
                .unwrap()
                .push(&input, &mut whole)
                .unwrap();
            for chunk_frames in [1usize, 7, 1152] {
                let mut c = Converter::new(rate, ch, 44_100).unwrap();
                let mut out = Vec::new();
                for chunk in input.chunks(chunk_frames * ch) {
                    c.push(chunk, &mut out).unwrap();
                }
                assert_eq!(out, whole, "rate {rate} chunk {chunk_frames}");
            }
            // One second in → one second out, less what waits in the resampler (one block,
            // under 0.1 s).
            let frames = whole.len() / 2;
            assert!(
                (44_100 - 4_410..=44_100).contains(&frames),
                "{rate}: {frames}"
            );
        }
    }

    #[test]
    fn resampled_tone_keeps_its_frequency_and_level() {
        let input = sine(48_000, 2, 1000.0, 1.0);
        let mut out = Vec::new();
        Converter::new(48_000, 2, 44_100)
            .unwrap()
            .push(&input, &mut out)
            .unwrap();
        let left: Vec<f32> = out.iter().step_by(2).copied().collect();
        // Zero crossings of a 1 kHz tone over (nearly) one second: ~2000.
        let crossings = left
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((1800..=2010).contains(&crossings), "{crossings}");
        let peak = left.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((0.49..=0.501).contains(&peak), "{peak}");
    }
}
