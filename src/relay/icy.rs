//! ICY (Shoutcast/Icecast) in-band metadata: splitting a listener byte stream into audio bytes
//! and `StreamTitle` values.
//!
//! **Invariant:** every byte pushed in comes out exactly once, either as audio (in order) or as
//! part of a metadata block; a block is reported only when complete, however the input is split.
//! Pure: no I/O.

/// Largest metadata block the protocol can carry (length byte × 16).
const MAX_META_BYTES: usize = 255 * 16;

/// Where the demultiplexer stands in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// This many audio bytes before the next length byte.
    Audio(usize),
    /// Next byte is the metadata length byte.
    Length,
    /// Collecting a metadata block of this many bytes.
    Meta(usize),
}

/// Splits a stream with `icy-metaint` metadata into audio bytes and titles.
#[derive(Debug, Clone)]
pub struct IcyDemux {
    /// Audio bytes between metadata blocks; 0 means the stream carries no metadata.
    metaint: usize,
    state: State,
    meta: Vec<u8>,
}

impl IcyDemux {
    /// A demultiplexer for a stream whose `icy-metaint` header said `metaint` (None or 0: no
    /// metadata, everything is audio).
    pub fn new(metaint: Option<usize>) -> Self {
        let metaint = metaint.unwrap_or(0);
        Self {
            metaint,
            state: State::Audio(metaint),
            meta: Vec::new(),
        }
    }

    /// Feed `input`; audio bytes are appended to `audio`, and the `StreamTitle` of each
    /// complete metadata block that has one is returned (possibly empty titles are kept out).
    pub fn push(&mut self, mut input: &[u8], audio: &mut Vec<u8>) -> Vec<String> {
        let mut titles = Vec::new();
        if self.metaint == 0 {
            audio.extend_from_slice(input);
            return titles;
        }
        while !input.is_empty() {
            match self.state {
                State::Audio(left) => {
                    let n = left.min(input.len());
                    audio.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if left == n {
                        State::Length
                    } else {
                        State::Audio(left - n)
                    };
                }
                State::Length => {
                    let len = usize::from(input[0]) * 16;
                    input = &input[1..];
                    self.meta.clear();
                    self.state = if len == 0 {
                        State::Audio(self.metaint)
                    } else {
                        State::Meta(len.min(MAX_META_BYTES))
                    };
                }
                State::Meta(left) => {
                    let n = left.min(input.len());
                    self.meta.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if left == n {
                        if let Some(t) = stream_title(&self.meta) {
                            titles.push(t);
                        }
                        self.meta.clear();
                        self.state = State::Audio(self.metaint);
                    } else {
                        self.state = State::Meta(left - n);
                    }
                }
            }
        }
        titles
    }
}

/// The `StreamTitle='…';` value of a metadata block, if present and non-empty. The block is
/// NUL-padded; titles are usually UTF-8 but old servers send Latin-1, so invalid UTF-8 is
/// decoded lossily rather than refused.
pub fn stream_title(block: &[u8]) -> Option<String> {
    let end = block.iter().position(|&b| b == 0).unwrap_or(block.len());
    let text = String::from_utf8_lossy(&block[..end]);
    let key = "StreamTitle='";
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    // The value ends at `';` (a title may itself contain a quote).
    let stop = rest
        .find("';")
        .unwrap_or_else(|| rest.trim_end_matches('\'').len());
    let title = rest[..stop].trim();
    (!title.is_empty()).then(|| title.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> Vec<u8> {
        let mut b = text.as_bytes().to_vec();
        let len = b.len().div_ceil(16);
        b.resize(len * 16, 0);
        let mut out = vec![len as u8];
        out.extend(b);
        out
    }

    /// A stream of `metaint`-byte audio runs (byte values counting up) with `metas` between them.
    fn stream(metaint: usize, metas: &[Option<&str>]) -> (Vec<u8>, Vec<u8>) {
        let mut wire = Vec::new();
        let mut audio = Vec::new();
        let mut n = 0u8;
        for m in metas {
            for _ in 0..metaint {
                wire.push(n);
                audio.push(n);
                n = n.wrapping_add(1);
            }
            match m {
                Some(t) => wire.extend(block(t)),
                None => wire.push(0),
            }
        }
        (wire, audio)
    }

    #[test]
    fn splits_audio_and_titles_whatever_the_chunking() {
        let metas = [
            Some("StreamTitle='Bản tin CCHC';StreamUrl='';"),
            None,
            Some("StreamTitle='It''s news';"),
            Some("StreamUrl='x';"),
        ];
        let (wire, audio) = stream(37, &metas);
        for chunk in [1, 2, 5, 16, 37, 38, 100, wire.len()] {
            let mut d = IcyDemux::new(Some(37));
            let mut got_audio = Vec::new();
            let mut titles = Vec::new();
            for c in wire.chunks(chunk) {
                titles.extend(d.push(c, &mut got_audio));
            }
            assert_eq!(got_audio, audio, "chunk {chunk}");
            assert_eq!(titles, vec!["Bản tin CCHC", "It''s news"], "chunk {chunk}");
        }
    }

    #[test]
    fn no_metaint_means_all_audio() {
        let mut d = IcyDemux::new(None);
        let mut a = Vec::new();
        assert!(d.push(b"StreamTitle='x';", &mut a).is_empty());
        assert_eq!(a, b"StreamTitle='x';");
    }

    #[test]
    fn titles_parse_or_are_absent() {
        assert_eq!(stream_title(b"StreamTitle='A';\0\0"), Some("A".into()));
        assert_eq!(stream_title(b"StreamTitle='';"), None);
        assert_eq!(stream_title(b"StreamUrl='u';"), None);
        assert_eq!(stream_title(b"StreamTitle='no end"), Some("no end".into()));
        assert_eq!(stream_title(&[0xff, 0xfe]), None);
    }
}
