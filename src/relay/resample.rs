//! Conversion of decoded audio of any rate and channel count to the relay's fixed output format
//! (stereo at [`super::OUTPUT_RATE_HZ`]): channel remix, then streaming linear interpolation.
//!
//! **Invariant:** the converter is stateful across calls, so feeding a signal in chunks of any
//! size gives the same output as feeding it at once; the output rate is exact on average
//! (no drift: positions are tracked as an exact fraction, not an accumulated float).
//! Pure: no I/O.

/// Streaming converter to interleaved stereo at a fixed output rate.
#[derive(Debug, Clone)]
pub struct Converter {
    in_rate: u64,
    out_rate: u64,
    in_channels: usize,
    /// Output frames produced so far; the n-th output frame sits at input position
    /// `n * in_rate / out_rate` (in input frames, counted from the first frame ever fed).
    out_frames: u64,
    /// Input frames consumed before `prev`/the current chunk (index of `prev` + 1).
    in_frames: u64,
    /// The last stereo frame of the previous chunk (for interpolation across chunks).
    prev: Option<[f32; 2]>,
}

impl Converter {
    /// A converter from `in_rate` Hz with `in_channels` channels to stereo at `out_rate` Hz.
    pub fn new(in_rate: u32, in_channels: usize, out_rate: u32) -> Self {
        Self {
            in_rate: u64::from(in_rate.max(1)),
            out_rate: u64::from(out_rate.max(1)),
            in_channels: in_channels.max(1),
            out_frames: 0,
            in_frames: 0,
            prev: None,
        }
    }

    /// Whether this converter already matches input of this rate and channel count.
    pub fn matches(&self, in_rate: u32, in_channels: usize) -> bool {
        self.in_rate == u64::from(in_rate) && self.in_channels == in_channels
    }

    /// Remix one interleaved input frame to stereo: mono is doubled, more than two channels
    /// keep the first two (front left/right in every common layout).
    fn stereo(&self, frame: &[f32]) -> [f32; 2] {
        match frame {
            [m] => [*m, *m],
            [l, r, ..] => [*l, *r],
            [] => [0.0, 0.0],
        }
    }

    /// Convert one chunk of interleaved input, appending interleaved stereo to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let frames: Vec<[f32; 2]> = input
            .chunks_exact(self.in_channels)
            .map(|f| self.stereo(f))
            .collect();
        if frames.is_empty() {
            return;
        }
        if self.in_rate == self.out_rate {
            for f in &frames {
                out.extend_from_slice(f);
            }
            self.in_frames += frames.len() as u64;
            self.out_frames += frames.len() as u64;
            self.prev = frames.last().copied();
            return;
        }
        // Input frame k (absolute) is `frames[k - base]`, or `prev` when k == base - 1.
        let base = self.in_frames;
        let last = base + frames.len() as u64 - 1;
        let at = |k: u64| -> [f32; 2] {
            if k >= base {
                frames[(k - base) as usize]
            } else {
                self.prev.unwrap_or(frames[0])
            }
        };
        loop {
            // Exact position of the next output frame in input frames: num / out_rate.
            let num = self.out_frames * self.in_rate;
            let k0 = num / self.out_rate;
            // Need frames k0 and k0 + 1 (unless the position is exactly on k0).
            let frac_num = num % self.out_rate;
            let need = if frac_num == 0 { k0 } else { k0 + 1 };
            if need > last {
                break;
            }
            let a = at(k0);
            let v = if frac_num == 0 {
                a
            } else {
                let b = at(k0 + 1);
                let t = frac_num as f32 / self.out_rate as f32;
                [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
            };
            out.extend_from_slice(&v);
            self.out_frames += 1;
        }
        self.in_frames = last + 1;
        self.prev = frames.last().copied();
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
        let mut c = Converter::new(44_100, 2, 44_100);
        let mut out = Vec::new();
        c.push(&[0.1, 0.2, 0.3, 0.4], &mut out);
        assert_eq!(out, vec![0.1, 0.2, 0.3, 0.4]);
        let mut c = Converter::new(44_100, 1, 44_100);
        let mut out = Vec::new();
        c.push(&[0.1, 0.3], &mut out);
        assert_eq!(out, vec![0.1, 0.1, 0.3, 0.3]);
    }

    #[test]
    fn chunking_does_not_change_output_and_rate_is_exact() {
        for (rate, ch) in [(48_000u32, 2usize), (22_050, 1), (32_000, 6)] {
            let input = sine(rate, ch, 440.0, 1.0);
            let mut whole = Vec::new();
            Converter::new(rate, ch, 44_100).push(&input, &mut whole);
            for chunk_frames in [1usize, 7, 1152] {
                let mut c = Converter::new(rate, ch, 44_100);
                let mut out = Vec::new();
                for chunk in input.chunks(chunk_frames * ch) {
                    c.push(chunk, &mut out);
                }
                assert_eq!(out, whole, "rate {rate} chunk {chunk_frames}");
            }
            // One second in → one second out (±1 frame for the last interpolation point).
            let frames = whole.len() / 2;
            assert!((44_099..=44_100).contains(&frames), "{rate}: {frames}");
        }
    }

    #[test]
    fn resampled_tone_keeps_its_frequency_and_level() {
        let input = sine(48_000, 2, 1000.0, 1.0);
        let mut out = Vec::new();
        Converter::new(48_000, 2, 44_100).push(&input, &mut out);
        let left: Vec<f32> = out.iter().step_by(2).copied().collect();
        // Zero crossings of a 1 kHz tone over one second: ~2000.
        let crossings = left
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((1990..=2010).contains(&crossings), "{crossings}");
        let peak = left.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((0.49..=0.501).contains(&peak), "{peak}");
    }
}
