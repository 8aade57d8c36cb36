//! Audio files at the edge: probing (does it decode, how long is it) and hashing.
//!
//! **Invariant:** a file is called playable only after it was decoded to its end; `probe` never
//! trusts a header's duration, because a truncated MP3 has a perfectly good header — it compares
//! the decoded length with the length the header declares and calls a shortfall `Truncated`.
//!
//! [`DecodedStream`] is the one way the player reads audio: interleaved `f32` samples already
//! converted to the output's sample rate and channel count, so that every consumer — loudness
//! analysis, the player, the tests — sees the very same samples. It decodes with symphonia (the
//! decoder under rodio) packet by packet into blocks: no per-sample call when the file is in the
//! output's format or differs only in channel count; resampling goes through rodio's converter.

use rodio::Source;
use rodio::source::UniformSourceIterator;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read};
use std::num::NonZero;
use std::path::{Path, PathBuf};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// What decoding a file to its end found.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaFacts {
    pub sample_rate: u32,
    pub channels: u16,
    pub frames: u64,
    pub duration_secs: f64,
}

/// Errors reading or decoding an audio file.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a decodable WAV/MP3/Ogg Vorbis/FLAC file: {reason}")]
    Undecodable { path: PathBuf, reason: String },
    #[error(
        "{path}: truncated: decoded {decoded_secs:.3} s of the {declared_secs:.3} s its header declares \
         (re-copy or re-encode the file)"
    )]
    Truncated {
        path: PathBuf,
        decoded_secs: f64,
        declared_secs: f64,
    },
}

/// A decoded file shorter than its declared length by more than this is `Truncated` (MP3 frame
/// granularity and encoder padding stay well below it).
pub const TRUNCATION_TOLERANCE_SECS: f64 = 0.1;

/// Reject a zero rate or channel count with a clear error instead of a panic.
fn nonzero_format(
    path: &Path,
    rate: u32,
    channels: u16,
) -> Result<(NonZero<u32>, NonZero<u16>), MediaError> {
    match (NonZero::new(rate), NonZero::new(channels)) {
        (Some(r), Some(c)) => Ok((r, c)),
        _ => Err(MediaError::Undecodable {
            path: path.to_path_buf(),
            reason: format!("invalid target format {rate} Hz × {channels} channels"),
        }),
    }
}

/// A file's decoder: symphonia's demuxer and codec — the ones rodio's `Decoder` uses, with the
/// same options (gapless trimming on, a packet that fails to decode is skipped, any other error
/// ends the stream) — handing out whole decoded packets as interleaved `f32`, so that reading
/// costs one copy per packet instead of a call per sample.
struct FileDecoder {
    format: Box<dyn FormatReader>,
    codec: Box<dyn symphonia::core::codecs::Decoder>,
    track_id: u32,
    /// The current packet, interleaved; its first `pos` samples were handed out already.
    packet: Option<SampleBuffer<f32>>,
    pos: usize,
    rate: u32,
    channels: u16,
    declared_secs: Option<f64>,
    ended: bool,
}

impl FileDecoder {
    /// Open `path` and decode its first packet (which fixes the rate and channel count).
    fn open(path: &Path) -> Result<Self, MediaError> {
        let file = File::open(path).map_err(|source| MediaError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let undecodable = |reason: String| MediaError::Undecodable {
            path: path.to_path_buf(),
            reason,
        };
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let format_opts = FormatOptions {
            enable_gapless: true,
            ..Default::default()
        };
        let probed = symphonia::default::get_probe()
            .format(&Hint::new(), mss, &format_opts, &MetadataOptions::default())
            .map_err(|e| undecodable(e.to_string()))?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| undecodable("no audio track with a supported codec".into()))?;
        let track_id = track.id;
        let declared_secs = track
            .codec_params
            .time_base
            .filter(|b| b.numer > 0 && b.denom > 0)
            .zip(track.codec_params.n_frames)
            .map(|(base, frames)| {
                let t = base.calc_time(frames);
                t.seconds as f64 + t.frac
            })
            .filter(|secs| *secs > 0.0);
        let codec = symphonia::default::get_codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| undecodable(e.to_string()))?;
        let mut d = Self {
            format,
            codec,
            track_id,
            packet: None,
            pos: 0,
            rate: 0,
            channels: 0,
            declared_secs,
            ended: false,
        };
        if !d.next_packet() {
            // Nothing decodes: take the format from the decoder's (empty) last buffer, as rodio
            // does; `check_complete` then calls the file undecodable.
            let spec = *d.codec.last_decoded().spec();
            d.rate = spec.rate;
            d.channels = spec.channels.count().try_into().unwrap_or(0);
        }
        if d.rate == 0 || d.channels == 0 {
            return Err(undecodable(format!(
                "invalid format {} Hz × {} channels",
                d.rate, d.channels
            )));
        }
        Ok(d)
    }

    /// Decode the next packet that holds frames into `packet`; false at the end of the stream.
    fn next_packet(&mut self) -> bool {
        while !self.ended {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(_) => {
                    self.ended = true;
                    break;
                }
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.codec.decode(&packet) {
                Ok(d) => d,
                // A corrupt packet: skip it (rodio does the same).
                Err(SymphoniaError::DecodeError(_)) => continue,
                Err(_) => {
                    self.ended = true;
                    break;
                }
            };
            if decoded.frames() == 0 {
                continue;
            }
            let spec = *decoded.spec();
            let channels: u16 = spec.channels.count().try_into().unwrap_or(0);
            if self.rate == 0 {
                (self.rate, self.channels) = (spec.rate, channels);
            } else if (spec.rate, channels) != (self.rate, self.channels) {
                // The formats played here keep one rate and layout per file; a change mid-file
                // ends the stream (a shortfall then shows as `Truncated`).
                self.ended = true;
                break;
            }
            let needed = decoded.frames() * usize::from(channels);
            let buf = match &mut self.packet {
                Some(b) if b.capacity() >= needed => b,
                slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
            };
            buf.copy_interleaved_ref(decoded);
            self.pos = 0;
            return true;
        }
        self.packet = None;
        self.pos = 0;
        false
    }

    /// The decoded samples not handed out yet (empty at the end of the stream).
    fn pending(&mut self) -> &[f32] {
        let left = self
            .packet
            .as_ref()
            .map_or(0, |b| b.len() - self.pos.min(b.len()));
        if left == 0 && !self.next_packet() {
            return &[];
        }
        match &self.packet {
            Some(b) => &b.samples()[self.pos..],
            None => &[],
        }
    }

    /// Fill `buf` with decoded samples; fewer than `buf.len()` only at the end of the stream.
    fn fill(&mut self, buf: &mut [f32]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let src = self.pending();
            if src.is_empty() {
                break;
            }
            let k = src.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&src[..k]);
            self.pos += k;
            n += k;
        }
        n
    }
}

/// One sample at a time, for rodio's rate converter (the resampling path only).
impl Iterator for FileDecoder {
    type Item = rodio::Sample;
    fn next(&mut self) -> Option<Self::Item> {
        let x = *self.pending().first()?;
        self.pos += 1;
        Some(x)
    }
}

/// One endless span: rodio's `UniformSourceIterator` stops at a span of length zero, and the
/// files here do not change rate or channels mid-file (see `next_packet`).
impl Source for FileDecoder {
    fn current_span_len(&self) -> Option<usize> {
        None
    }
    fn channels(&self) -> rodio::ChannelCount {
        NonZero::new(self.channels).unwrap_or(NonZero::<u16>::MIN)
    }
    fn sample_rate(&self) -> rodio::SampleRate {
        NonZero::new(self.rate).unwrap_or(NonZero::<u32>::MIN)
    }
    fn total_duration(&self) -> Option<std::time::Duration> {
        self.declared_secs.map(std::time::Duration::from_secs_f64)
    }
}

/// Multi-channel → mono by averaging every channel of a frame (rodio's own converter keeps only
/// the first channel, which would drop the right channel of a stereo file on a mono loudspeaker).
struct DownmixToMono<S> {
    inner: S,
    channels: u16,
}

impl<S: Source> Iterator for DownmixToMono<S> {
    type Item = rodio::Sample;
    fn next(&mut self) -> Option<Self::Item> {
        let mut sum = 0.0;
        for _ in 0..self.channels {
            match self.inner.next() {
                Some(x) => sum += x,
                // A partial last frame is dropped.
                None => return None,
            }
        }
        Some(sum / f32::from(self.channels))
    }
}

impl<S: Source> Source for DownmixToMono<S> {
    fn current_span_len(&self) -> Option<usize> {
        None
    }
    fn channels(&self) -> rodio::ChannelCount {
        rodio::ChannelCount::MIN
    }
    fn sample_rate(&self) -> rodio::SampleRate {
        self.inner.sample_rate()
    }
    fn total_duration(&self) -> Option<std::time::Duration> {
        self.inner.total_duration()
    }
}

/// Map one frame of `from.len()` channels onto `to.len()` channels, as rodio's channel
/// converter does (mono is duplicated onto the first two channels, extra outputs are silent,
/// extra inputs dropped), except that many → mono averages every channel.
pub(crate) fn map_frame(from: &[f32], to: &mut [f32]) {
    if to.len() == 1 && from.len() > 1 {
        to[0] = from.iter().sum::<f32>() / from.len() as f32;
        return;
    }
    for (c, out) in to.iter_mut().enumerate() {
        *out = match from.get(c) {
            Some(&x) => x,
            None if c == 1 => from[0],
            None => 0.0,
        };
    }
}

type Converted = UniformSourceIterator<Box<dyn Source + Send>>;

/// Where a [`DecodedStream`] takes its samples from.
enum Samples {
    /// The file is already in the target format: whole packets straight from the decoder.
    Direct(FileDecoder),
    /// Same rate, other channel count: frames remapped block by block.
    Remapped(FileDecoder),
    /// Rate conversion (rodio's converter, sample by sample).
    Converted(Converted),
}

impl Samples {
    /// Fill `buf` (whole frames of `channels`) from the source; fewer than `buf.len()` only at
    /// its end.
    fn fill(&mut self, buf: &mut [f32], channels: usize) -> usize {
        match self {
            Samples::Direct(d) => d.fill(buf),
            Samples::Remapped(d) => {
                let from = usize::from(d.channels.max(1));
                let mut n = 0;
                while n + channels <= buf.len() {
                    let src = d.pending();
                    if src.len() < from {
                        // The end (a partial last frame is dropped).
                        break;
                    }
                    let frames = (src.len() / from).min((buf.len() - n) / channels);
                    for (i, o) in src[..frames * from]
                        .chunks_exact(from)
                        .zip(buf[n..n + frames * channels].chunks_exact_mut(channels))
                    {
                        map_frame(i, o);
                    }
                    d.pos += frames * from;
                    n += frames * channels;
                }
                n
            }
            Samples::Converted(c) => {
                let mut n = 0;
                for (slot, x) in buf.iter_mut().zip(c) {
                    *slot = x;
                    n += 1;
                }
                n
            }
        }
    }
}

/// A file being decoded, converted on the fly to a target rate and channel count.
pub struct DecodedStream {
    path: PathBuf,
    inner: Samples,
    /// The source's own format (before conversion).
    pub source_rate: u32,
    pub source_channels: u16,
    /// Length declared by the container/header, if any (not trusted, see `check_complete`).
    pub declared_secs: Option<f64>,
    channels: u16,
    samples_read: u64,
    rate: u32,
}

impl std::fmt::Debug for DecodedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedStream")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DecodedStream {
    /// Open `path` and convert it to `rate` Hz × `channels`.
    pub fn open(path: &Path, rate: u32, channels: u16) -> Result<Self, MediaError> {
        nonzero_format(path, rate, channels)?;
        Self::convert(path, FileDecoder::open(path)?, rate, channels)
    }

    fn convert(
        path: &Path,
        decoder: FileDecoder,
        rate: u32,
        channels: u16,
    ) -> Result<Self, MediaError> {
        let (nz_rate, nz_channels) = nonzero_format(path, rate, channels)?;
        let (source_rate, source_channels) = (decoder.rate, decoder.channels);
        let declared_secs = decoder.declared_secs;
        let inner = if source_rate != rate {
            let one: Box<dyn Source + Send> = if channels == 1 && source_channels > 1 {
                Box::new(DownmixToMono {
                    inner: decoder,
                    channels: source_channels,
                })
            } else {
                Box::new(decoder)
            };
            Samples::Converted(UniformSourceIterator::new(one, nz_channels, nz_rate))
        } else if source_channels != channels {
            Samples::Remapped(decoder)
        } else {
            Samples::Direct(decoder)
        };
        Ok(Self {
            path: path.to_path_buf(),
            inner,
            source_rate,
            source_channels,
            declared_secs,
            channels,
            samples_read: 0,
            rate,
        })
    }

    /// Open `path` in its own format (no conversion).
    pub fn open_native(path: &Path) -> Result<Self, MediaError> {
        let decoder = FileDecoder::open(path)?;
        let (rate, channels) = (decoder.rate, decoder.channels);
        Self::convert(path, decoder, rate, channels)
    }

    /// Output sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Output channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Fill `buf` (interleaved, whole frames) and return how many samples were written; fewer than
    /// `buf.len()` only at the end of the file.
    pub fn read(&mut self, buf: &mut [f32]) -> usize {
        let ch = usize::from(self.channels.max(1));
        let whole = buf.len() - buf.len() % ch;
        let mut n = self.inner.fill(&mut buf[..whole], ch);
        // A trailing partial frame (never expected from the converters) is dropped.
        n -= n % ch;
        self.samples_read += n as u64;
        n
    }

    /// Frames read so far (output format).
    pub fn frames_read(&self) -> u64 {
        self.samples_read / u64::from(self.channels.max(1))
    }

    /// After reading to the end: an error if the file decoded to clearly less than its header
    /// declares (a truncated download or copy).
    pub fn check_complete(&self) -> Result<(), MediaError> {
        let decoded_secs = self.frames_read() as f64 / f64::from(self.rate.max(1));
        match self.declared_secs {
            Some(declared_secs) if decoded_secs + TRUNCATION_TOLERANCE_SECS < declared_secs => {
                Err(MediaError::Truncated {
                    path: self.path.clone(),
                    decoded_secs,
                    declared_secs,
                })
            }
            _ if self.frames_read() == 0 => Err(MediaError::Undecodable {
                path: self.path.clone(),
                reason: "no audio frames decoded".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// Decode `path` to its end and report what it holds.
pub fn probe(path: &Path) -> Result<MediaFacts, MediaError> {
    let mut stream = DecodedStream::open_native(path)?;
    let mut buf = vec![0f32; 8192];
    while stream.read(&mut buf) > 0 {}
    stream.check_complete()?;
    let frames = stream.frames_read();
    Ok(MediaFacts {
        sample_rate: stream.sample_rate(),
        channels: stream.channels(),
        frames,
        duration_secs: frames as f64 / f64::from(stream.sample_rate().max(1)),
    })
}

/// Hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, MediaError> {
    let file = File::open(path).map_err(|source| MediaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|source| MediaError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/audio")
            .join(name)
    }

    fn read_all(mut s: DecodedStream, chunk: usize) -> Vec<f32> {
        let mut out = Vec::new();
        let mut buf = vec![0f32; chunk];
        loop {
            let n = s.read(&mut buf);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// What rodio's own decoder and converters give for the same file and target format.
    fn rodio_reference(path: &Path, rate: u32, channels: u16) -> Vec<f32> {
        let decoder = rodio::Decoder::try_from(File::open(path).unwrap()).unwrap();
        let from = decoder.channels().get();
        if decoder.sample_rate().get() == rate && from == channels {
            return decoder.collect();
        }
        /// rodio's decoder as one endless span (see `FileDecoder`'s `Source`).
        struct OneSpan<S>(S);
        impl<S: Source> Iterator for OneSpan<S> {
            type Item = f32;
            fn next(&mut self) -> Option<f32> {
                self.0.next()
            }
        }
        impl<S: Source> Source for OneSpan<S> {
            fn current_span_len(&self) -> Option<usize> {
                None
            }
            fn channels(&self) -> rodio::ChannelCount {
                self.0.channels()
            }
            fn sample_rate(&self) -> rodio::SampleRate {
                self.0.sample_rate()
            }
            fn total_duration(&self) -> Option<std::time::Duration> {
                self.0.total_duration()
            }
        }
        let one: Box<dyn Source + Send> = if channels == 1 && from > 1 {
            Box::new(DownmixToMono {
                inner: OneSpan(decoder),
                channels: from,
            })
        } else {
            Box::new(OneSpan(decoder))
        };
        let (r, c) = nonzero_format(path, rate, channels).unwrap();
        UniformSourceIterator::new(one, c, r).collect()
    }

    #[test]
    fn block_decoding_gives_exactly_rodios_samples_in_every_format_and_conversion() {
        for name in ["tone.flac", "tone.mp3", "tone.ogg", "tone.wav", "long.mp3"] {
            let path = fixture(name);
            let native = FileDecoder::open(&path).unwrap();
            let (rate, channels) = (native.rate, native.channels);
            // Native, channel remapping only, and resampling (with and without remapping).
            for (r, c) in [
                (rate, channels),
                (rate, 1),
                (rate, 2),
                (rate, 3),
                (48000, 2),
            ] {
                let ours = read_all(DecodedStream::open(&path, r, c).unwrap(), 1000 * 3 * 2);
                let reference = rodio_reference(&path, r, c);
                assert!(!ours.is_empty(), "{name} {r}×{c}");
                assert_eq!(ours.len(), reference.len(), "{name} {r}×{c}: length");
                let diff = ours.iter().zip(&reference).position(|(a, b)| a != b);
                assert_eq!(diff, None, "{name} {r}×{c}: first differing sample");
            }
        }
    }

    #[test]
    fn odd_read_sizes_see_the_same_samples() {
        let path = fixture("long.mp3");
        let whole = read_all(DecodedStream::open(&path, 44100, 2).unwrap(), 8192);
        assert_eq!(
            whole,
            read_all(DecodedStream::open(&path, 44100, 2).unwrap(), 6)
        );
        assert_eq!(
            read_all(DecodedStream::open(&path, 44100, 1).unwrap(), 8192),
            read_all(DecodedStream::open(&path, 44100, 1).unwrap(), 7)
        );
    }
}
