//! Audio files at the edge: probing (does it decode, how long is it) and hashing.
//!
//! **Invariant:** a file is called playable only after it was decoded to its end; `probe` never
//! trusts a header's duration, because a truncated MP3 has a perfectly good header — it compares
//! the decoded length with the length the header declares and calls a shortfall `Truncated`.
//!
//! The exception is the fast path of [`probe`]: when the container states the length exactly
//! (WAV: the `data` chunk's size, which must fit the file; FLAC: STREAMINFO's total samples),
//! `probe` decodes the first packet and the last second and takes the length from the header —
//! the tail must decode and end where the header says, or the whole file is decoded as before.
//! [`probe_with_method`] says which path was taken.
//!
//! [`DecodedStream`] is the one way the player reads audio: interleaved `f32` samples already
//! converted to the output's sample rate and channel count, so that every consumer — loudness
//! analysis, the player, the tests — sees the very same samples. It decodes with symphonia (the
//! decoder under rodio) packet by packet into blocks. More than two channels are downmixed to
//! stereo by the ITU-R BS.775 matrix ([`DOWNMIX_NAME`]) before anything else; a rate change goes
//! through [`crate::resample`] (band-limited, rubato).
//!
//! **Containment:** every call into the third-party demuxer/decoder runs under `catch_unwind`: a
//! panic inside it (a WAV header with sample rate 0 makes symphonia panic) ends that file as
//! `Undecodable` ("the decoder panicked: …") and never escapes to the caller's thread. Rates and
//! channel counts outside [`SUPPORTED_RATES_HZ`] / [`MAX_CHANNELS`] are refused when the file is
//! opened, with the reason.

use crate::resample::StreamResampler;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use symphonia::core::audio::{Channels, SampleBuffer};
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::units::Time;

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

/// Sample rates the player takes (from telephone speech to high-resolution masters); a file
/// outside is refused when opened, with this range in the reason.
pub const SUPPORTED_RATES_HZ: std::ops::RangeInclusive<u32> = 8_000..=384_000;
/// Most channels a file may have (7.1); more is refused when opened.
pub const MAX_CHANNELS: u16 = 8;
/// How more than two channels reach a stereo (or mono) output; named in the evidence.
pub const DOWNMIX_NAME: &str = "ITU-R BS.775 (C and surrounds at -3 dB, LFE omitted)";

/// Reject a zero rate or channel count with a clear error instead of a panic.
fn nonzero_format(path: &Path, rate: u32, channels: u16) -> Result<(), MediaError> {
    if rate == 0 || channels == 0 {
        return Err(MediaError::Undecodable {
            path: path.to_path_buf(),
            reason: format!("invalid target format {rate} Hz × {channels} channels"),
        });
    }
    Ok(())
}

/// Why a file's own format is refused, if it is.
fn unsupported_format(rate: u32, channels: u16) -> Option<String> {
    if !SUPPORTED_RATES_HZ.contains(&rate) {
        return Some(format!(
            "sample rate {rate} Hz is outside what the player supports ({}–{} Hz); \
             re-encode the file (e.g. `sox IN -r 48000 OUT.wav`)",
            SUPPORTED_RATES_HZ.start(),
            SUPPORTED_RATES_HZ.end()
        ));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Some(format!(
            "{channels} channels is outside what the player supports (1–{MAX_CHANNELS}); \
             re-encode the file"
        ));
    }
    None
}

thread_local! {
    /// Set while this thread runs third-party decoder code under [`contained`].
    static IN_DECODER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` (a call into the demuxer or decoder) and turn a panic inside it into an error
/// message. The panic hook stays quiet for such panics (installed once, it hands every other
/// panic to the hook that was there before).
pub(crate) fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_DECODER.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
    let was = IN_DECODER.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_DECODER.with(|c| c.set(was));
    result.map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("the decoder panicked: {what}")
    })
}

/// A RIFF/WAVE file's header, read by hand (to know whether its sizes can be believed).
#[derive(Debug, Clone, PartialEq)]
struct WavHeader {
    rate: u32,
    channels: u16,
    block_align: u16,
    /// Where the `data` chunk's samples begin.
    data_offset: u64,
    /// The `data` chunk's declared size, when it is a real size: not the 0xFFFFFFFF (or 0) a
    /// writer streaming to a pipe puts there, and not more than the file holds.
    data_len: Option<u64>,
    /// The declared size was a streaming placeholder (0xFFFFFFFF or 0).
    streamed: bool,
}

/// Parse a WAV header (at most the first 64 KiB); `None` when the file is not RIFF/WAVE.
fn wav_header(file: &mut File) -> Option<WavHeader> {
    let file_len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(0)).ok()?;
    let mut head = Vec::new();
    file.by_ref().take(64 * 1024).read_to_end(&mut head).ok()?;
    file.seek(SeekFrom::Start(0)).ok()?;
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let u16_at = |i: usize| Some(u16::from_le_bytes(head.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |i: usize| Some(u32::from_le_bytes(head.get(i..i + 4)?.try_into().ok()?));
    let (mut pos, mut fmt) = (12usize, None);
    while pos + 8 <= head.len() {
        let id = &head[pos..pos + 4];
        let size = u32_at(pos + 4)?;
        let body = pos + 8;
        if id == b"fmt " {
            fmt = Some((u16_at(body + 2)?, u32_at(body + 4)?, u16_at(body + 12)?));
        } else if id == b"data" {
            let (channels, rate, block_align) = fmt?;
            let data_offset = body as u64;
            let room = file_len.saturating_sub(data_offset);
            let streamed = size == u32::MAX || size == 0;
            let declared = u64::from(size);
            return Some(WavHeader {
                rate,
                channels,
                block_align,
                data_offset,
                data_len: (!streamed && declared <= room).then_some(declared),
                streamed,
            });
        }
        // Chunks are padded to an even size.
        pos = body
            .checked_add(usize::try_from(size).ok()?)?
            .checked_add(size as usize & 1)?;
    }
    None
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
    /// The channel positions, in the order of the interleaved samples.
    layout: Option<Channels>,
    declared_secs: Option<f64>,
    /// Frames the container declares (when it declares them).
    declared_frames: Option<u64>,
    /// The file is a WAV whose `data` size is exact (fits the file).
    exact_wav: Option<WavHeader>,
    codec_type: symphonia::core::codecs::CodecType,
    ended: bool,
    /// Why decoding stopped early (a panic inside the decoder), if it did.
    failure: Option<String>,
    /// Packets decoded so far (the probe tests count them).
    packets: u64,
}

impl FileDecoder {
    /// Open `path` and decode its first packet (which fixes the rate and channel count).
    fn open(path: &Path) -> Result<Self, MediaError> {
        let mut file = File::open(path).map_err(|source| MediaError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let undecodable = |reason: String| MediaError::Undecodable {
            path: path.to_path_buf(),
            reason,
        };
        let wav = wav_header(&mut file);
        if let Some(h) = &wav
            && let Some(why) = unsupported_format(h.rate, h.channels)
        {
            return Err(undecodable(why));
        }
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let format_opts = FormatOptions {
            enable_gapless: true,
            ..Default::default()
        };
        let probed = contained(|| {
            symphonia::default::get_probe().format(
                &Hint::new(),
                mss,
                &format_opts,
                &MetadataOptions::default(),
            )
        })
        .map_err(&undecodable)?
        .map_err(|e| undecodable(e.to_string()))?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| undecodable("no audio track with a supported codec".into()))?;
        let track_id = track.id;
        let params = track.codec_params.clone();
        if let Some(rate) = params.sample_rate
            && let Some(why) = unsupported_format(rate, 1)
        {
            return Err(undecodable(why));
        }
        let streamed = wav.as_ref().is_some_and(|h| h.streamed);
        // A WAV written to a pipe declares 0xFFFFFFFF bytes: its length is wherever it ends.
        let declared_frames = params.n_frames.filter(|_| !streamed);
        let declared_secs = params
            .time_base
            .filter(|b| b.numer > 0 && b.denom > 0)
            .zip(declared_frames)
            .map(|(base, frames)| {
                let t = base.calc_time(frames);
                t.seconds as f64 + t.frac
            })
            .filter(|secs| *secs > 0.0);
        let codec = contained(|| {
            symphonia::default::get_codecs().make(&params, &DecoderOptions::default())
        })
        .map_err(&undecodable)?
        .map_err(|e| undecodable(e.to_string()))?;
        let mut d = Self {
            format,
            codec,
            track_id,
            packet: None,
            pos: 0,
            rate: 0,
            channels: 0,
            layout: None,
            declared_secs,
            declared_frames,
            exact_wav: wav.filter(|h| h.data_len.is_some()),
            codec_type: params.codec,
            ended: false,
            failure: None,
            packets: 0,
        };
        if !d.next_packet() {
            if let Some(why) = d.failure.take() {
                return Err(undecodable(why));
            }
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
        if let Some(why) = unsupported_format(d.rate, d.channels) {
            return Err(undecodable(why));
        }
        Ok(d)
    }

    /// Decode the next packet that holds frames into `packet`; false at the end of the stream
    /// (or when the decoder failed: `failure` says why).
    fn next_packet(&mut self) -> bool {
        if self.ended {
            self.packet = None;
            self.pos = 0;
            return false;
        }
        match contained(|| self.decode_next()) {
            Ok(more) => more,
            Err(why) => {
                self.failure = Some(why);
                self.ended = true;
                self.packet = None;
                self.pos = 0;
                false
            }
        }
    }

    fn decode_next(&mut self) -> bool {
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
            self.packets += 1;
            if decoded.frames() == 0 {
                continue;
            }
            let spec = *decoded.spec();
            let channels: u16 = spec.channels.count().try_into().unwrap_or(0);
            if self.rate == 0 {
                (self.rate, self.channels) = (spec.rate, channels);
                self.layout = Some(spec.channels);
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

    /// Where the last second starts, if the decoder can seek there and decodes from it to an end
    /// at the declared length: then the declared length is the file's length. `None` otherwise
    /// (no declared length, no seeking, or the tail ends elsewhere — a truncated file).
    fn tail_confirms_declared_length(&mut self) -> Option<u64> {
        let frames = self.declared_frames?;
        let rate = u64::from(self.rate);
        let from = frames.saturating_sub(rate);
        let seeked = contained(|| {
            self.format.seek(
                SeekMode::Accurate,
                SeekTo::Time {
                    time: Time::new(from / rate, (from % rate) as f64 / rate as f64),
                    track_id: Some(self.track_id),
                },
            )
        })
        .ok()?
        .ok()?;
        self.codec.reset();
        self.packet = None;
        self.pos = 0;
        let mut end = seeked.actual_ts;
        let mut tail = 0u64;
        while self.next_packet() {
            let n = self.packet.as_ref().map_or(0, |b| b.len()) / usize::from(self.channels);
            tail += n as u64;
        }
        if self.failure.is_some() {
            return None;
        }
        end += tail;
        let tolerance = (TRUNCATION_TOLERANCE_SECS * self.rate as f64) as u64;
        (tail > 0 && end + tolerance >= frames && end <= frames + tolerance).then_some(frames)
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

/// `(to left, to right)` gains of one input channel in the BS.775 stereo downmix: fronts go to
/// their side, centres to both at −3 dB, surrounds to their side at −3 dB, a rear centre to both
/// at −6 dB, LFE nowhere (BS.775 leaves it out of the downmix).
fn downmix_gains(position: Channels) -> [f32; 2] {
    const K: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let left = Channels::FRONT_LEFT | Channels::FRONT_LEFT_CENTRE | Channels::FRONT_LEFT_WIDE;
    let right = Channels::FRONT_RIGHT | Channels::FRONT_RIGHT_CENTRE | Channels::FRONT_RIGHT_WIDE;
    let centre = Channels::FRONT_CENTRE | Channels::TOP_CENTRE | Channels::TOP_FRONT_CENTRE;
    let surround_l = Channels::REAR_LEFT
        | Channels::SIDE_LEFT
        | Channels::REAR_LEFT_CENTRE
        | Channels::TOP_FRONT_LEFT
        | Channels::TOP_REAR_LEFT;
    let surround_r = Channels::REAR_RIGHT
        | Channels::SIDE_RIGHT
        | Channels::REAR_RIGHT_CENTRE
        | Channels::TOP_FRONT_RIGHT
        | Channels::TOP_REAR_RIGHT;
    let rear_centre = Channels::REAR_CENTRE | Channels::TOP_REAR_CENTRE;
    if left.contains(position) {
        [1.0, 0.0]
    } else if right.contains(position) {
        [0.0, 1.0]
    } else if centre.contains(position) {
        [K, K]
    } else if surround_l.contains(position) {
        [K, 0.0]
    } else if surround_r.contains(position) {
        [0.0, K]
    } else if rear_centre.contains(position) {
        [0.5, 0.5]
    } else {
        // LFE1/LFE2.
        [0.0, 0.0]
    }
}

/// The BS.775 stereo downmix matrix of a layout (one `(left, right)` pair per channel, in the
/// order of the interleaved samples); a layout of the wrong size counts as the default order
/// (FL FR FC LFE BL BR SL SR — WAV's, FLAC's).
pub(crate) fn downmix_matrix(layout: Option<Channels>, channels: usize) -> Vec<[f32; 2]> {
    let layout = layout.filter(|l| l.count() == channels).unwrap_or_else(|| {
        let mut l = Channels::empty();
        for c in [
            Channels::FRONT_LEFT,
            Channels::FRONT_RIGHT,
            Channels::FRONT_CENTRE,
            Channels::LFE1,
            Channels::REAR_LEFT,
            Channels::REAR_RIGHT,
            Channels::SIDE_LEFT,
            Channels::SIDE_RIGHT,
        ]
        .into_iter()
        .take(channels)
        {
            l |= c;
        }
        l
    });
    let mut m: Vec<[f32; 2]> = layout.iter().map(downmix_gains).collect();
    m.resize(channels, [0.0, 0.0]);
    m
}

/// Map one frame of `from.len()` channels onto `to.len()` channels: mono is duplicated onto the
/// first two channels (extra outputs silent), stereo → mono averages; more than two input
/// channels go through `matrix` (the BS.775 downmix) to stereo first.
pub(crate) fn map_frame_with(matrix: &[[f32; 2]], from: &[f32], to: &mut [f32]) {
    if from.len() > 2 && to.len() < from.len() {
        let (mut l, mut r) = (0f32, 0f32);
        for (x, g) in from.iter().zip(matrix) {
            l += x * g[0];
            r += x * g[1];
        }
        map_frame(&[l, r], to);
        return;
    }
    map_frame(from, to);
}

/// Map one frame of at most two channels onto `to.len()` channels (mono duplicated onto the
/// first two channels, extra outputs silent; many → mono averages).
pub(crate) fn map_frame(from: &[f32], to: &mut [f32]) {
    if from.is_empty() {
        to.fill(0.0);
        return;
    }
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

/// Where a [`DecodedStream`] takes its samples from.
enum Samples {
    /// The file is already in the target format: whole packets straight from the decoder.
    Direct(FileDecoder),
    /// Same rate, other channel count: frames remapped block by block.
    Remapped(FileDecoder, Vec<[f32; 2]>),
    /// Rate conversion (band-limited, [`crate::resample`]).
    Converted(Box<Converted>),
}

/// A file being resampled: decoded, mapped to `mid` channels (the fewer of the file's and the
/// output's, so the resampler does the least work), resampled, then mapped to the output.
struct Converted {
    dec: FileDecoder,
    matrix: Vec<[f32; 2]>,
    mid: usize,
    resampler: StreamResampler,
    premixed: Vec<f32>,
    /// Resampled samples (`mid` channels); the first `pos` were handed out.
    out: Vec<f32>,
    pos: usize,
    done: bool,
    failure: Option<String>,
}

impl Converted {
    /// Refill `out` with the next resampled block; false at the end.
    fn refill(&mut self) -> bool {
        self.out.clear();
        self.pos = 0;
        while self.out.is_empty() {
            if self.done {
                return false;
            }
            let from = usize::from(self.dec.channels.max(1));
            let src = self.dec.pending();
            if src.len() < from {
                self.done = true;
                if let Err(e) = self.resampler.finish(&mut self.out) {
                    self.failure = Some(e.to_string());
                }
                continue;
            }
            let frames = src.len() / from;
            self.premixed.clear();
            if from == self.mid {
                self.premixed.extend_from_slice(&src[..frames * from]);
            } else {
                self.premixed.resize(frames * self.mid, 0.0);
                for (i, o) in src[..frames * from]
                    .chunks_exact(from)
                    .zip(self.premixed.chunks_exact_mut(self.mid))
                {
                    map_frame_with(&self.matrix, i, o);
                }
            }
            self.dec.pos += frames * from;
            if let Err(e) = self.resampler.push(&self.premixed, &mut self.out) {
                self.failure = Some(e.to_string());
                self.done = true;
                self.out.clear();
                return false;
            }
        }
        true
    }

    fn fill(&mut self, buf: &mut [f32], channels: usize) -> usize {
        let mut n = 0;
        while n + channels <= buf.len() {
            if self.pos >= self.out.len() && !self.refill() {
                break;
            }
            let src = &self.out[self.pos..];
            let frames = (src.len() / self.mid).min((buf.len() - n) / channels);
            if self.mid == channels {
                buf[n..n + frames * channels].copy_from_slice(&src[..frames * channels]);
            } else {
                for (i, o) in src[..frames * self.mid]
                    .chunks_exact(self.mid)
                    .zip(buf[n..n + frames * channels].chunks_exact_mut(channels))
                {
                    map_frame(i, o);
                }
            }
            self.pos += frames * self.mid;
            n += frames * channels;
        }
        n
    }
}

impl Samples {
    /// Fill `buf` (whole frames of `channels`) from the source; fewer than `buf.len()` only at
    /// its end.
    fn fill(&mut self, buf: &mut [f32], channels: usize) -> usize {
        match self {
            Samples::Direct(d) => d.fill(buf),
            Samples::Remapped(d, matrix) => {
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
                        map_frame_with(matrix, i, o);
                    }
                    d.pos += frames * from;
                    n += frames * channels;
                }
                n
            }
            Samples::Converted(c) => c.fill(buf, channels),
        }
    }

    fn decoder(&self) -> &FileDecoder {
        match self {
            Samples::Direct(d) | Samples::Remapped(d, _) => d,
            Samples::Converted(c) => &c.dec,
        }
    }

    fn failure(&self) -> Option<&str> {
        match self {
            Samples::Converted(c) if c.failure.is_some() => c.failure.as_deref(),
            other => other.decoder().failure.as_deref(),
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
    /// How the source's channels were mixed down ([`DOWNMIX_NAME`]), if they were (> 2).
    pub downmix: Option<&'static str>,
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
        nonzero_format(path, rate, channels)?;
        let (source_rate, source_channels) = (decoder.rate, decoder.channels);
        let declared_secs = decoder.declared_secs;
        let matrix = downmix_matrix(decoder.layout, usize::from(source_channels));
        let downmix = (source_channels > 2 && channels < source_channels).then_some(DOWNMIX_NAME);
        let inner = if source_rate != rate {
            let mid = usize::from(source_channels.min(channels));
            let resampler = StreamResampler::new(source_rate, rate, mid).map_err(|e| {
                MediaError::Undecodable {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
            Samples::Converted(Box::new(Converted {
                dec: decoder,
                matrix,
                mid,
                resampler,
                premixed: Vec::new(),
                out: Vec::new(),
                pos: 0,
                done: false,
                failure: None,
            }))
        } else if source_channels != channels {
            Samples::Remapped(decoder, matrix)
        } else {
            Samples::Direct(decoder)
        };
        Ok(Self {
            path: path.to_path_buf(),
            inner,
            source_rate,
            source_channels,
            declared_secs,
            downmix,
            channels,
            samples_read: 0,
            rate,
        })
    }

    /// Open `path` in its own rate, with more than two channels downmixed to stereo (BS.775):
    /// what loudness analysis measures, so that it measures what the player sends out.
    pub fn open_native(path: &Path) -> Result<Self, MediaError> {
        let decoder = FileDecoder::open(path)?;
        let (rate, channels) = (decoder.rate, decoder.channels.min(2));
        Self::convert(path, decoder, rate, channels)
    }

    /// Open `path` exactly as it is (no conversion, no downmix).
    fn open_raw(path: &Path) -> Result<Self, MediaError> {
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

    /// After reading to the end: an error if the decoder failed (panicked) on the way, or if the
    /// file decoded to clearly less than its header declares (a truncated download or copy).
    pub fn check_complete(&self) -> Result<(), MediaError> {
        if let Some(why) = self.inner.failure() {
            return Err(MediaError::Undecodable {
                path: self.path.clone(),
                reason: format!(
                    "{why} (after {:.3} s)",
                    self.frames_read() as f64 / f64::from(self.rate.max(1))
                ),
            });
        }
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

/// How [`probe_with_method`] found a file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethod {
    /// From the header, which states it exactly (WAV data size that fits the file; FLAC total
    /// samples, confirmed by decoding the last second): only the first packet and the tail were
    /// decoded.
    Header,
    /// By decoding the whole file (MP3, Ogg, streamed WAV, or a header the tail contradicts).
    Decoded,
}

/// What a file holds: rate, channels, exact length (see [`probe_with_method`]).
pub fn probe(path: &Path) -> Result<MediaFacts, MediaError> {
    probe_with_method(path).map(|(facts, _, _)| facts)
}

/// [`probe`], also saying whether the header sufficed or the whole file was decoded, and how many
/// packets were decoded.
pub fn probe_with_method(path: &Path) -> Result<(MediaFacts, ProbeMethod, u64), MediaError> {
    let mut decoder = FileDecoder::open(path)?;
    let (rate, channels) = (decoder.rate, decoder.channels);
    let facts = |frames: u64| MediaFacts {
        sample_rate: rate,
        channels,
        frames,
        duration_secs: frames as f64 / f64::from(rate.max(1)),
    };
    let exact = if decoder.exact_wav.is_some() {
        decoder.declared_frames.filter(|f| *f > 0)
    } else if decoder.codec_type == symphonia::core::codecs::CODEC_TYPE_FLAC {
        decoder.tail_confirms_declared_length()
    } else {
        None
    };
    if let Some(frames) = exact {
        return Ok((facts(frames), ProbeMethod::Header, decoder.packets));
    }
    // Decode from the start (the tail check may have moved the reader).
    let mut stream = DecodedStream::open_raw(path)?;
    let mut buf = vec![0f32; 8192];
    while stream.read(&mut buf) > 0 {}
    stream.check_complete()?;
    let packets = stream.inner.decoder().packets;
    Ok((facts(stream.frames_read()), ProbeMethod::Decoded, packets))
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

    /// What rodio's own decoder gives for the same file, frames mapped to `channels`.
    fn rodio_reference(path: &Path, channels: u16) -> Vec<f32> {
        use rodio::Source;
        let decoder = rodio::Decoder::try_from(File::open(path).unwrap()).unwrap();
        let from = usize::from(decoder.channels().get());
        let samples: Vec<f32> = decoder.collect();
        let to = usize::from(channels);
        let mut out = vec![0f32; samples.len() / from * to];
        for (i, o) in samples.chunks_exact(from).zip(out.chunks_exact_mut(to)) {
            map_frame(i, o);
        }
        out
    }

    #[test]
    fn block_decoding_gives_exactly_rodios_samples_in_every_format_and_remapping() {
        for name in ["tone.flac", "tone.mp3", "tone.ogg", "tone.wav", "long.mp3"] {
            let path = fixture(name);
            let native = FileDecoder::open(&path).unwrap();
            let (rate, channels) = (native.rate, native.channels);
            for c in [channels, 1, 2, 3] {
                let ours = read_all(DecodedStream::open(&path, rate, c).unwrap(), 1000 * 3 * 2);
                let reference = rodio_reference(&path, c);
                assert!(!ours.is_empty(), "{name} {rate}×{c}");
                assert_eq!(ours.len(), reference.len(), "{name} {rate}×{c}: length");
                let diff = ours.iter().zip(&reference).position(|(a, b)| a != b);
                assert_eq!(diff, None, "{name} {rate}×{c}: first differing sample");
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
