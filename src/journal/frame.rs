//! One record on disk: the frame that wraps it, its checksum, and what a frame's payload is.
//!
//! **Invariant:** a frame is accepted only if its length is within [`MAX_FRAME_BYTES`], all of
//! its bytes are present and its CRC32 covers exactly `len ‖ payload`; [`encode`] and [`next`]
//! are inverse, and nothing else in the journal reads or writes the frame layout. This module
//! does no I/O: it works on byte slices handed to it.
//!
//! # Layout (little-endian)
//! ```text
//! +------------+---------------------------------+---------------------------+
//! | len: u32   | crc: u32 = crc32(len ‖ payload) | payload: len bytes        |
//! +------------+---------------------------------+---------------------------+
//! ```
//! `payload` is one [`SignedRecord`] as JSON (canonical record bytes, hash, signature). A segment
//! is a plain concatenation of frames, no header.

use super::JournalError;
use crate::wire::{AiringRecord, SignedRecord};

/// Largest frame payload accepted; a record is ~1–2 KiB, so anything near this is corruption.
pub const MAX_FRAME_BYTES: u32 = 4 * 1024 * 1024;
/// Frame header: length + CRC32.
pub const FRAME_HEADER_BYTES: u64 = 8;

/// A frame found in a buffer.
pub(super) struct Frame<'a> {
    /// Where the frame starts in the buffer.
    pub offset: u64,
    /// Where the next frame starts.
    pub end: u64,
    pub payload: &'a [u8],
}

/// Why reading frames stopped.
pub(super) enum Stop {
    /// Clean end of the buffer at a frame boundary.
    End,
    /// Bytes at `offset` are not a valid frame.
    Bad {
        offset: u64,
        reason: String,
        /// Whether the bad bytes run to the end of the buffer (a torn tail, if nothing valid
        /// follows: see [`valid_frame_after`]).
        extends_to_eof: bool,
    },
}

fn checksum(len_b: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_b);
    h.update(payload);
    h.finalize()
}

/// The frame of `buf` that starts at `offset`.
pub(super) fn next(buf: &[u8], offset: u64) -> Result<Frame<'_>, Stop> {
    let total = buf.len() as u64;
    if offset == total {
        return Err(Stop::End);
    }
    let rest = total - offset;
    if rest < FRAME_HEADER_BYTES {
        return Err(Stop::Bad {
            offset,
            reason: format!("{rest} bytes, shorter than a frame header"),
            extends_to_eof: true,
        });
    }
    let o = offset as usize;
    let mut len_b = [0u8; 4];
    len_b.copy_from_slice(&buf[o..o + 4]);
    let mut crc_b = [0u8; 4];
    crc_b.copy_from_slice(&buf[o + 4..o + 8]);
    let len = u32::from_le_bytes(len_b);
    let crc = u32::from_le_bytes(crc_b);
    if len > MAX_FRAME_BYTES {
        return Err(Stop::Bad {
            offset,
            reason: format!("frame length {len} exceeds the {MAX_FRAME_BYTES}-byte limit"),
            // A garbage length: nothing after it can be framed, treat like a tail.
            extends_to_eof: true,
        });
    }
    let end = offset + FRAME_HEADER_BYTES + u64::from(len);
    if end > total {
        return Err(Stop::Bad {
            offset,
            reason: format!(
                "frame of {len} bytes but only {} follow",
                rest - FRAME_HEADER_BYTES
            ),
            extends_to_eof: true,
        });
    }
    let payload = &buf[o + 8..end as usize];
    if checksum(&len_b, payload) != crc {
        return Err(Stop::Bad {
            offset,
            reason: "checksum mismatch".into(),
            extends_to_eof: end == total,
        });
    }
    Ok(Frame {
        offset,
        end,
        payload,
    })
}

/// Whether a valid frame starts anywhere after `offset` (a CRC match at a random position is a
/// 1-in-2^32 event, so a hit means intact data follows the bad bytes).
pub(super) fn valid_frame_after(buf: &[u8], offset: u64) -> bool {
    (offset + 1..buf.len() as u64).any(|o| next(buf, o).is_ok())
}

/// The frame holding `payload`.
pub(super) fn encode(payload: &[u8]) -> Result<Vec<u8>, JournalError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME_BYTES)
        .ok_or(JournalError::TooLarge { len: payload.len() })?;
    let len_b = len.to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER_BYTES as usize);
    out.extend_from_slice(&len_b);
    out.extend_from_slice(&checksum(&len_b, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// The signed record a frame's payload holds, and the record it signs; the text says why not.
pub(super) fn record(payload: &[u8]) -> Result<(SignedRecord, AiringRecord), String> {
    let signed: SignedRecord = serde_json::from_slice(payload)
        .map_err(|e| format!("frame is not a signed record: {e}"))?;
    let rec = signed.parse().map_err(|e| e.to_string())?;
    Ok((signed, rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_next_gives_the_payload_back_and_every_cut_is_a_bad_tail() {
        let a = encode(b"hello").unwrap();
        let b = encode(b"").unwrap();
        let buf = [a.clone(), b.clone()].concat();
        let f = next(&buf, 0).ok().unwrap();
        assert_eq!(
            (f.offset, f.end, f.payload),
            (0, a.len() as u64, &b"hello"[..])
        );
        let g = next(&buf, f.end).ok().unwrap();
        assert_eq!((g.end, g.payload), (buf.len() as u64, &b""[..]));
        assert!(matches!(next(&buf, g.end), Err(Stop::End)));
        for cut in 1..a.len() {
            match next(&a[..cut], 0) {
                Err(Stop::Bad { extends_to_eof, .. }) => assert!(extends_to_eof, "cut {cut}"),
                _ => panic!("cut at {cut} accepted"),
            }
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused_and_a_valid_frame_after_bad_bytes_is_found() {
        let a = encode(b"payload bytes").unwrap();
        for i in 0..a.len() {
            let mut bad = a.clone();
            bad[i] ^= 0x01;
            assert!(next(&bad, 0).is_err(), "flip at {i} accepted");
        }
        let buf = [b"junk".to_vec(), a].concat();
        assert!(next(&buf, 0).is_err());
        assert!(valid_frame_after(&buf, 0));
        assert!(!valid_frame_after(&buf[..8], 0));
    }

    #[test]
    fn a_payload_over_the_limit_is_refused() {
        let big = vec![0u8; MAX_FRAME_BYTES as usize + 1];
        assert!(matches!(
            encode(&big),
            Err(JournalError::TooLarge { len }) if len == big.len()
        ));
        assert!(
            record(b"{")
                .unwrap_err()
                .starts_with("frame is not a signed record")
        );
    }
}
