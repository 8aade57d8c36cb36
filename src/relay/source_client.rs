//! The city side: publishing a stream to an Icecast server as a *source client* (HTTP `PUT` with
//! basic auth, the protocol of Icecast ≥ 2.4), so wards have a mount to relay.
//!
//! [`IcecastSource`] sends already-encoded bytes; [`Pacer`] paces a sender in real time;
//! [`LamePublisher`] takes f32 PCM, encodes it to MP3 with the `lame` program (Debian package
//! `lame`; no encoder crate is linked, see `docs/relay.md`) and sends the MP3 to Icecast.
//!
//! **Invariant:** nothing here buffers without bound: bytes go to the socket as they are written
//! (TCP back-pressure applies), and the encoder pipe is a fixed-size OS pipe.

use base64::Engine as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default MP3 bitrate for publishing (kbit/s): speech and music on loudspeakers.
pub const DEFAULT_PUBLISH_KBPS: u32 = 128;
/// Timeout for connecting and for the server's answer.
pub const DEFAULT_SOURCE_TIMEOUT_SECS: u64 = 5;

/// Errors of the source client.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("icecast url {url:?}: {reason} (expected http://user:password@host:port/mount)")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("icecast refused the source: {status_line}")]
    Refused { status_line: String },
    #[error("sending to icecast failed: {0}")]
    Io(#[from] io::Error),
    #[error("cannot run the MP3 encoder `lame` (install Debian package `lame`): {0}")]
    Encoder(io::Error),
}

/// A connected source: bytes written go to the mount's listeners.
pub struct IcecastSource {
    stream: TcpStream,
}

impl IcecastSource {
    /// Connect to `url` (`http://source:PASSWORD@HOST:PORT/MOUNT`) and announce a stream of
    /// `content_type` (`audio/mpeg` or `application/ogg`).
    pub fn connect(url: &str, content_type: &str) -> Result<Self, SourceError> {
        let bad = |reason: &str| SourceError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad("only http:// is supported for publishing"));
        }
        let host = parsed.host_str().ok_or_else(|| bad("no host"))?.to_string();
        let port = parsed.port_or_known_default().unwrap_or(8000);
        let user = if parsed.username().is_empty() {
            "source"
        } else {
            parsed.username()
        };
        let password = parsed.password().ok_or_else(|| bad("no password"))?;
        let mount = parsed.path();
        if mount.len() < 2 {
            return Err(bad("no mount point"));
        }
        let addr = format!("{host}:{port}");
        let timeout = Duration::from_secs(DEFAULT_SOURCE_TIMEOUT_SECS);
        let sock = addr
            .to_socket_addrs()
            .map_err(|source| SourceError::Connect {
                addr: addr.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| bad("host does not resolve"))?;
        let mut stream =
            TcpStream::connect_timeout(&sock, timeout).map_err(|source| SourceError::Connect {
                addr: addr.clone(),
                source,
            })?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let request = format!(
            "PUT {mount} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
             User-Agent: loa/{}\r\nContent-Type: {content_type}\r\nIce-Public: 0\r\n\
             Ice-Name: loa\r\nExpect: 100-continue\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        stream.write_all(request.as_bytes())?;
        // Read the answer's head (a "100 Continue" or "200 OK").
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status_line = status_line.trim().to_string();
        let code = status_line.split_whitespace().nth(1).unwrap_or("");
        if code != "100" && code != "200" {
            return Err(SourceError::Refused { status_line });
        }
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
        }
        Ok(Self { stream })
    }

    /// Send encoded bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), SourceError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Update the mount's title via the admin interface (`/admin/metadata`, MP3 mounts).
    pub fn set_title(admin_url: &str, mount: &str, title: &str) -> Result<(), SourceError> {
        let parsed = reqwest::Url::parse(admin_url).map_err(|e| SourceError::BadUrl {
            url: admin_url.to_string(),
            reason: e.to_string(),
        })?;
        let host = parsed.host_str().unwrap_or("127.0.0.1");
        let port = parsed.port_or_known_default().unwrap_or(8000);
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            parsed.username(),
            parsed.password().unwrap_or("")
        ));
        let mut q =
            reqwest::Url::parse("http://x/admin/metadata").map_err(|e| SourceError::BadUrl {
                url: admin_url.to_string(),
                reason: e.to_string(),
            })?;
        q.query_pairs_mut()
            .append_pair("mount", mount)
            .append_pair("mode", "updinfo")
            .append_pair("song", title);
        let mut s = TcpStream::connect((host, port)).map_err(|source| SourceError::Connect {
            addr: format!("{host}:{port}"),
            source,
        })?;
        s.set_read_timeout(Some(Duration::from_secs(DEFAULT_SOURCE_TIMEOUT_SECS)))?;
        let path = format!("/admin/metadata?{}", q.query().unwrap_or(""));
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAuthorization: Basic {auth}\r\n\r\n"
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        let status_line = answer.lines().next().unwrap_or("").to_string();
        if status_line.split_whitespace().nth(1) != Some("200") {
            return Err(SourceError::Refused { status_line });
        }
        Ok(())
    }
}

/// Paces a sender in real time: `wait(units)` sleeps until `units` at `units_per_sec` are due.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    units_per_sec: f64,
}

impl Pacer {
    /// Starts now.
    pub fn new(units_per_sec: f64) -> Self {
        Self {
            start: Instant::now(),
            units_per_sec: units_per_sec.max(1e-9),
        }
    }

    /// Sleep until `units` sent so far are due (returns at once when behind).
    pub fn wait(&self, units: u64) {
        let due = self.start + Duration::from_secs_f64(units as f64 / self.units_per_sec);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Publishes f32 PCM to Icecast as MP3, encoding with the `lame` program.
pub struct LamePublisher {
    child: Child,
    stdin: Option<ChildStdin>,
    pump: Option<JoinHandle<Result<(), SourceError>>>,
    buf: Vec<u8>,
}

impl LamePublisher {
    /// Connect to `url` (see [`IcecastSource::connect`]) and start an encoder for interleaved
    /// f32 at `rate_hz` with `channels` (1 or 2), CBR `kbps`.
    pub fn start(url: &str, rate_hz: u32, channels: u16, kbps: u32) -> Result<Self, SourceError> {
        let mut source = IcecastSource::connect(url, "audio/mpeg")?;
        let rate_khz = format!("{}", f64::from(rate_hz) / 1000.0);
        let mode = if channels == 1 { "m" } else { "j" };
        let mut child = Command::new("lame")
            .args([
                "--quiet",
                "-r",
                "-s",
                &rate_khz,
                "--bitwidth",
                "16",
                "--signed",
                "--little-endian",
                "-m",
                mode,
                "--cbr",
                "-b",
            ])
            .arg(kbps.to_string())
            .args(["-", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(SourceError::Encoder)?;
        let stdin = child.stdin.take();
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| SourceError::Encoder(io::Error::other("no stdout")))?;
        let pump = std::thread::Builder::new()
            .name("loa-publish".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = stdout.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    source.send(&buf[..n])?;
                }
            })?;
        Ok(Self {
            child,
            stdin,
            pump: Some(pump),
            buf: Vec::new(),
        })
    }

    /// Encode and send interleaved samples (whole frames). The caller paces (see [`Pacer`]).
    pub fn write(&mut self, samples: &[f32]) -> Result<(), SourceError> {
        self.buf.clear();
        for &s in samples {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(&self.buf).map_err(SourceError::Io),
            None => Err(SourceError::Io(io::Error::other("publisher finished"))),
        }
    }

    /// Flush the encoder, wait for the last bytes to go out, close the connection.
    pub fn finish(mut self) -> Result<(), SourceError> {
        drop(self.stdin.take());
        let pumped = match self.pump.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(SourceError::Io(io::Error::other(
                "publisher thread panicked",
            ))),
            None => Ok(()),
        };
        let _ = self.child.wait();
        pumped
    }
}

impl Drop for LamePublisher {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.pump.is_some() {
            // Not finished: stop the encoder so the pump thread sees EOF.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
