//! Audio files at the edge: probing (does it decode, how long is it) and hashing.
//!
//! **Invariant:** a file is called playable only after it was decoded to its end; `probe` never
//! trusts a header's duration, because a truncated MP3 has a perfectly good header.

use rodio::{Decoder, Source};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read};
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
}

/// Decode `path` to its end and report what it holds.
pub fn probe(path: &Path) -> Result<MediaFacts, MediaError> {
    let file = File::open(path).map_err(|source| MediaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let decoder = Decoder::try_from(file).map_err(|e| MediaError::Undecodable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let sample_rate = decoder.sample_rate().get();
    let channels = decoder.channels().get();
    let samples = decoder.count() as u64;
    let frames = samples / u64::from(channels);
    if frames == 0 {
        return Err(MediaError::Undecodable {
            path: path.to_path_buf(),
            reason: "no audio frames decoded".into(),
        });
    }
    Ok(MediaFacts {
        sample_rate,
        channels,
        frames,
        duration_secs: frames as f64 / f64::from(sample_rate),
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
