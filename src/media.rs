//! Audio files at the edge: probing (does it decode, how long is it) and hashing.
//!
//! **Invariant:** a file is called playable only after it was decoded to its end; `probe` never
//! trusts a header's duration, because a truncated MP3 has a perfectly good header — it compares
//! the decoded length with the length the header declares and calls a shortfall `Truncated`.
//!
//! [`DecodedStream`] is the one way the player reads audio: interleaved `f32` samples already
//! converted to the output's sample rate and channel count (rodio's converters), so that every
//! consumer — loudness analysis, the player, the tests — sees the very same samples.

use rodio::source::UniformSourceIterator;
use rodio::{Decoder, Source};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read};
use std::num::NonZero;
use std::path::{Path, PathBuf};

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

fn open_decoder(path: &Path) -> Result<Decoder<BufReader<File>>, MediaError> {
    let file = File::open(path).map_err(|source| MediaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Decoder::try_from(file).map_err(|e| MediaError::Undecodable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A decoder seen as one endless span. rodio's `UniformSourceIterator` stops at a span of length
/// zero, which the Ogg Vorbis decoder reports before its first packet (measured: rodio 0.23 yields
/// no samples at all for a Vorbis file through its converters); the formats here do not change
/// rate or channels mid-file, so one span is right.
struct OneSpan<S>(S);

impl<S: Source> Iterator for OneSpan<S> {
    type Item = rodio::Sample;
    fn next(&mut self) -> Option<Self::Item> {
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

type Converted = UniformSourceIterator<Box<dyn Source + Send>>;

/// Where a [`DecodedStream`] takes its samples from.
enum Samples {
    /// The file is already in the target format: straight from the decoder (rodio's converters
    /// would pass every sample through unchanged, at several calls per sample).
    Direct(Decoder<BufReader<File>>),
    /// Rate and/or channel conversion.
    Converted(Converted),
}

impl Samples {
    /// Fill `buf` from the source; fewer than `buf.len()` only at its end.
    fn fill(&mut self, buf: &mut [f32]) -> usize {
        fn fill_from(it: &mut impl Iterator<Item = f32>, buf: &mut [f32]) -> usize {
            let mut n = 0;
            for (slot, x) in buf.iter_mut().zip(it) {
                *slot = x;
                n += 1;
            }
            n
        }
        match self {
            Samples::Direct(d) => fill_from(d, buf),
            Samples::Converted(c) => fill_from(c, buf),
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
        let (nz_rate, nz_channels) = nonzero_format(path, rate, channels)?;
        let decoder = open_decoder(path)?;
        let source_rate = decoder.sample_rate().get();
        let source_channels = decoder.channels().get();
        let declared_secs = decoder.total_duration().map(|d| d.as_secs_f64());
        Ok(Self {
            path: path.to_path_buf(),
            inner: if source_rate == rate && source_channels == channels {
                Samples::Direct(decoder)
            } else {
                let one: Box<dyn Source + Send> = if channels == 1 && source_channels > 1 {
                    Box::new(DownmixToMono {
                        inner: OneSpan(decoder),
                        channels: source_channels,
                    })
                } else {
                    Box::new(OneSpan(decoder))
                };
                Samples::Converted(UniformSourceIterator::new(one, nz_channels, nz_rate))
            },
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
        let decoder = open_decoder(path)?;
        let (rate, channels) = (decoder.sample_rate().get(), decoder.channels().get());
        drop(decoder);
        Self::open(path, rate, channels)
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
        let mut n = self.inner.fill(&mut buf[..whole]);
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
