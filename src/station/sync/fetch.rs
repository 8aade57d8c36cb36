//! One content file from the collector: `GET /api/v1/content/{sha256}`, resumed with
//! `Range: bytes=<have>-` from `staging/<sha256>.part`, verified, moved into `content/`.
//!
//! **Invariant:** bytes are appended to a part file only at the offset the server's
//! `Content-Range` confirms (a server that ignores the range restarts the part from zero); a
//! part grows no larger than the manifest's size; a complete part enters `content/` only through
//! [`super::Store::admit`] (SHA-256 and size checked), and a part that fails the check is
//! deleted. A connection cut mid-body keeps the part for the next attempt. Every network wait
//! (connect, headers, each body chunk) has a time limit.

use super::store::Store;
use super::{SyncError, WantedFile};
use crate::endpoints::Endpoints;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

/// Longest wait for the answer's headers, and for each chunk of its body.
pub const READ_TIMEOUT_SECS: u64 = 30;

/// Signs a station request: the headers for `GET <path_and_query>`.
pub type Signer = dyn Fn(&str) -> Vec<(&'static str, String)> + Send + Sync;

/// Where files come from: the collector's base URL, an HTTP client, the request signer.
pub struct Source<'a> {
    pub client: &'a reqwest::Client,
    /// Collector base URL without a trailing slash.
    pub base: &'a str,
    pub sign: &'a Signer,
    /// Limit on each network wait.
    pub read_timeout: Duration,
}

/// What one successful fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fetched {
    /// Bytes already held in the part file when the request went out (resumed from there).
    pub resumed_from: u64,
    /// Body bytes received.
    pub received: u64,
}

/// The HTTP client for downloads: connect timeout, no whole-request timeout (a large file on a
/// slow link takes long; each wait is bounded by [`Source::read_timeout`] instead).
pub fn client(url: &str) -> Result<reqwest::Client, SyncError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder();
    if url.starts_with("http://") {
        b = b.tls_certs_only(Vec::new());
    }
    b.connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("loa-station/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SyncError::Unreachable(format!("HTTP client: {e}")))
}

/// The first byte a `Content-Range: bytes a-b/total` answer starts at.
fn range_start(v: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    let s = v?.to_str().ok()?.strip_prefix("bytes ")?;
    s.split('-').next()?.trim().parse().ok()
}

/// Fetch `want` into the store unless it is held: resume the part, verify, admit.
pub async fn fetch(
    src: &Source<'_>,
    store: &Store,
    want: &WantedFile,
) -> Result<Fetched, SyncError> {
    fetch_via(src, None, store, want).await
}

/// [`fetch`] from `src.base`, one of `collectors`: a network error, a timeout, a cut body or a
/// 5xx moves them on ([`Endpoints::failed`]), so the next attempt goes to the next collector
/// (resuming the part file there: the content store is shared by every replica).
pub async fn fetch_via(
    src: &Source<'_>,
    collectors: Option<&Endpoints>,
    store: &Store,
    want: &WantedFile,
) -> Result<Fetched, SyncError> {
    let failed = |why: &str| {
        if let Some(c) = collectors {
            c.failed(src.base, why);
        }
    };
    if store.holds(&want.sha256) {
        return Ok(Fetched::default());
    }
    let staging = store.staging_dir();
    tokio::fs::create_dir_all(&staging)
        .await
        .map_err(|source| super::StoreError::Io {
            path: staging.clone(),
            source,
        })?;
    let part = store.part(&want.sha256);
    let mut have = store.part_len(&want.sha256);
    if have > want.size {
        let _ = tokio::fs::remove_file(&part).await;
        have = 0;
    }
    let mut report = Fetched {
        resumed_from: have,
        received: 0,
    };
    if have < want.size {
        let path = format!("/api/v1/content/{}", want.sha256);
        let mut req = src.client.get(format!("{}{path}", src.base));
        for (k, v) in (src.sign)(&path) {
            req = req.header(k, v);
        }
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let cut = |e: String| SyncError::Unreachable(format!("{}: {e}", want.path));
        let resp = match tokio::time::timeout(src.read_timeout, req.send()).await {
            Ok(Ok(r)) => r,
            Err(_) => {
                failed("no answer in time");
                return Err(cut("no answer in time".into()));
            }
            Ok(Err(e)) => {
                failed(&e.to_string());
                return Err(cut(e.to_string()));
            }
        };
        let status = resp.status().as_u16();
        if let Some(c) = collectors {
            c.judge(src.base, status);
        }
        let mut file = tokio::fs::OpenOptions::new();
        file.create(true).write(true);
        match status {
            206 if range_start(resp.headers().get(reqwest::header::CONTENT_RANGE))
                == Some(have) =>
            {
                file.append(true);
            }
            206 => {
                // An answer for another range than asked: start over.
                let _ = tokio::fs::remove_file(&part).await;
                return Err(cut(
                    "the answer's Content-Range is not the one asked for".into()
                ));
            }
            200 => {
                // The whole file (the server ignored the range, or nothing was held).
                file.truncate(true);
                have = 0;
                report.resumed_from = 0;
            }
            404 => {
                return Err(SyncError::ContentMissing {
                    sha256: want.sha256.clone(),
                    path: want.path.clone(),
                });
            }
            416 => {
                // The part is not a prefix the server can continue: drop it.
                let _ = tokio::fs::remove_file(&part).await;
                return Err(cut(
                    "range not satisfiable; the partial file was dropped".into()
                ));
            }
            s => return Err(cut(format!("answered HTTP {s}"))),
        }
        let io = |source| {
            SyncError::Store(super::StoreError::Io {
                path: part.clone(),
                source,
            })
        };
        let mut f = file.open(&part).await.map_err(io)?;
        let mut resp = resp;
        loop {
            let chunk = match tokio::time::timeout(src.read_timeout, resp.chunk()).await {
                Err(_) => {
                    failed("the answer stalled");
                    f.flush().await.map_err(io)?;
                    return Err(cut(format!(
                        "no data for {} s after {} bytes; the download resumes from there",
                        src.read_timeout.as_secs(),
                        have
                    )));
                }
                Ok(Err(e)) => {
                    failed(&e.to_string());
                    f.flush().await.map_err(io)?;
                    return Err(cut(format!(
                        "connection cut after {have} bytes ({e}); the download resumes from there"
                    )));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if have + chunk.len() as u64 > want.size {
                drop(f);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(SyncError::HashMismatch {
                    path: want.path.clone(),
                    why: format!(
                        "the server sent more than the manifest's {} bytes",
                        want.size
                    ),
                });
            }
            f.write_all(&chunk).await.map_err(io)?;
            have += chunk.len() as u64;
            report.received += chunk.len() as u64;
        }
        f.flush().await.map_err(io)?;
        if have < want.size {
            // The answer ended cleanly short of the size: the file itself is short.
            drop(f);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(SyncError::HashMismatch {
                path: want.path.clone(),
                why: format!(
                    "the answer ended after {have} bytes, the manifest says {}",
                    want.size
                ),
            });
        }
    }
    let (s, w) = (store.clone(), want.clone());
    let verdict = tokio::task::spawn_blocking(move || s.admit(&w))
        .await
        .map_err(|e| SyncError::Unreachable(format!("verification task: {e}")))??;
    verdict.map_err(|why| SyncError::HashMismatch {
        path: want.path.clone(),
        why,
    })?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    //! The resume logic against a real local HTTP/1.1 server on loopback (a few lines over a
    //! TCP socket, so the first answer can be cut short of its Content-Length exactly as a
    //! dropped link cuts it). The end-to-end test against the collector's own content route is
    //! tests/station_sync.rs.
    use super::*;
    use sha2::{Digest, Sha256};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    #[derive(Clone)]
    struct Srv {
        body: Arc<Vec<u8>>,
        /// The Range header of each request, in order.
        log: Arc<Mutex<Vec<Option<String>>>>,
        /// The first answer's body is cut after this many bytes (connection closed).
        cut_first_after: Option<usize>,
        ignore_range: bool,
    }

    async fn answer(s: Srv, sock: tokio::net::TcpStream) {
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        let mut range = None;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                range = Some(v.trim().to_string());
            }
        }
        let first = {
            let mut log = s.log.lock().unwrap();
            log.push(range.clone());
            log.len() == 1
        };
        let start: usize = match range.as_deref().filter(|_| !s.ignore_range) {
            Some(r) => r
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .unwrap()
                .parse()
                .unwrap(),
            None => 0,
        };
        let total = s.body.len();
        let rest = &s.body[start..];
        let head = if start > 0 {
            format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {start}-{}/{total}\r\nconnection: close\r\n\r\n",
                rest.len(),
                total - 1
            )
        } else {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                rest.len()
            )
        };
        let n = s.cut_first_after.filter(|_| first).unwrap_or(rest.len());
        let _ = w.write_all(head.as_bytes()).await;
        let _ = w.write_all(&rest[..n]).await;
        let _ = w.shutdown().await;
    }

    async fn start(srv: Srv) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                tokio::spawn(answer(srv.clone(), sock));
            }
        });
        format!("http://{addr}")
    }

    fn want(body: &[u8]) -> WantedFile {
        WantedFile {
            path: "cchc/2027-01.mp3".into(),
            sha256: hex::encode(Sha256::digest(body)),
            size: body.len() as u64,
        }
    }

    fn srv(body: &[u8], cut: Option<usize>, ignore_range: bool) -> Srv {
        Srv {
            body: Arc::new(body.to_vec()),
            log: Arc::default(),
            cut_first_after: cut,
            ignore_range,
        }
    }

    /// Fetch once; when the first attempt was cut, once more (as a round's retry does).
    async fn run(srv: &Srv, store: &Store, w: &WantedFile) -> Result<Fetched, SyncError> {
        let base = start(srv.clone()).await;
        let client = client(&base).unwrap();
        let sign = |p: &str| vec![("x-test-path", p.to_string())];
        let src = Source {
            client: &client,
            base: &base,
            sign: &sign,
            read_timeout: Duration::from_secs(5),
        };
        match fetch(&src, store, w).await {
            Err(SyncError::Unreachable(why)) => {
                assert!(why.contains("resumes"), "{why}");
                assert!(
                    store.part_len(&w.sha256) > 0,
                    "the part is kept for resuming"
                );
                fetch(&src, store, w).await
            }
            other => other,
        }
    }

    fn body() -> Vec<u8> {
        (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_cut_download_resumes_from_the_part_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let body = body();
        let w = want(&body);
        let s = srv(&body, Some(70_000), false);
        let got = run(&s, &store, &w).await.unwrap();
        assert_eq!(got.resumed_from, 70_000, "{got:?}");
        assert_eq!(got.received, 130_000);
        assert_eq!(std::fs::read(store.content(&w.sha256)).unwrap(), body);
        assert!(!store.part(&w.sha256).exists());
        let log = s.log.lock().unwrap().clone();
        assert_eq!(log, vec![None, Some("bytes=70000-".into())]);
    }

    #[tokio::test]
    async fn a_server_ignoring_the_range_restarts_the_part() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let body = body();
        let w = want(&body);
        let s = srv(&body, Some(50_000), true);
        let got = run(&s, &store, &w).await.unwrap();
        assert_eq!(
            got,
            Fetched {
                resumed_from: 0,
                received: 200_000
            }
        );
        assert_eq!(std::fs::read(store.content(&w.sha256)).unwrap(), body);
    }

    #[tokio::test]
    async fn a_flipped_byte_or_a_short_file_is_refused_and_the_part_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let body = body();
        let w = want(&body);
        let mut flipped = body.clone();
        flipped[123_456] ^= 0x01;
        let e = run(&srv(&flipped, None, false), &store, &w)
            .await
            .unwrap_err();
        assert!(matches!(e, SyncError::HashMismatch { .. }), "{e}");
        assert!(!store.part(&w.sha256).exists() && !store.holds(&w.sha256));
        let e = run(&srv(&body[..150_000], None, false), &store, &w)
            .await
            .unwrap_err();
        assert!(matches!(e, SyncError::HashMismatch { .. }), "{e}");
        assert!(!store.part(&w.sha256).exists() && !store.holds(&w.sha256));
    }
}
