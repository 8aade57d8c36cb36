//! The collector URLs a station talks to: an ordered set, shared by every client of the station
//! (the shipper, the heartbeat, the push channel, the bulletin intake, the sync agent and its
//! content downloads), so that all of them move to another collector together.
//!
//! # The failover rule (docs/station.md, "Several collectors")
//! - Every request goes to [`Endpoints::current`]. The set starts on the first-listed URL.
//! - A connection error, a timeout or a 5xx answer from the URL in use moves the set to the next
//!   URL in the list (after the last comes the first again), logged with both URLs. Each client
//!   keeps its own backoff between attempts, so a set whose URLs are all dead is tried in turn at
//!   the backoff's pace, never in a hot loop.
//! - Any other answer (2xx, 3xx, and every 4xx: a refusal is the collector's word, and another
//!   replica on the same database would say the same) keeps the URL in use.
//! - Sticky: the set stays on a URL that works. After [`RETURN_TO_FIRST_SECS`] on a later URL it
//!   tries the first-listed one again (an operator lists the preferred collector first, and
//!   stations that all failed over to one replica spread back once the first returns); if it is
//!   still down, the first failure moves the set on again.
//!
//! Replicas share one database, so what a client retries elsewhere is safe: ingest is
//! idempotent (a batch stored by A before it died is acknowledged as duplicates by B), and push
//! event ids are valid on every replica (`Last-Event-ID` carries over).
//!
//! **Invariant:** only a failure of the URL in use moves the set (a late report about a URL the
//! set already left changes nothing, so clients failing together move it one step, not several);
//! a 4xx never moves it; the list is never empty and every URL in it is an http(s) URL with a
//! host, checked when the set is made.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the set stays on a later URL before trying the first-listed one again (10 min).
pub const RETURN_TO_FIRST_SECS: u64 = 600;

/// Why a list of collector URLs was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointsError {
    #[error("no collector URL given")]
    Empty,
    #[error(
        "collector URL `{url}` is not an http(s) URL with a host ({why}); write it like \
         `http://collector.example:8080`"
    )]
    BadUrl { url: String, why: String },
    #[error("collector URL `{0}` is listed twice")]
    Duplicate(String),
}

/// Check one collector base URL: an http(s) URL with a host that parses, no query or fragment.
/// Returns it without a trailing slash.
pub fn check_url(url: &str) -> Result<String, EndpointsError> {
    let bad = |why: &str| EndpointsError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let trimmed = url.trim();
    if trimmed != url || url.contains(char::is_whitespace) {
        return Err(bad("it contains spaces"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("the scheme is not http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("a base URL has no query or fragment"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Whether an answer with this HTTP status moves the set to the next URL (5xx only).
pub fn is_failover_status(status: u16) -> bool {
    (500..=599).contains(&status)
}

#[derive(Debug)]
struct State {
    /// Index of the URL in use.
    current: usize,
    /// When the set left the first-listed URL (`None` while on it).
    left_first: Option<Instant>,
    /// Whether the URL in use answered since the set moved to it (logged once).
    confirmed: bool,
}

/// The ordered, shared set of collector URLs. Clones share one state.
#[derive(Debug, Clone)]
pub struct Endpoints {
    urls: Arc<[String]>,
    state: Arc<Mutex<State>>,
    return_after: Duration,
}

impl Endpoints {
    /// A set of `urls`, in order (each checked by [`check_url`]; none twice; at least one).
    pub fn new<I, S>(urls: I) -> Result<Self, EndpointsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list: Vec<String> = Vec::new();
        for u in urls {
            let u = check_url(u.as_ref())?;
            if list.contains(&u) {
                return Err(EndpointsError::Duplicate(u));
            }
            list.push(u);
        }
        if list.is_empty() {
            return Err(EndpointsError::Empty);
        }
        Ok(Self::from_checked(list))
    }

    /// A set of one URL, taken as given (a trailing slash dropped): for callers whose URL was
    /// checked elsewhere, or tests.
    pub fn single(url: &str) -> Self {
        Self::from_checked(vec![url.trim_end_matches('/').to_string()])
    }

    fn from_checked(urls: Vec<String>) -> Self {
        Self {
            urls: urls.into(),
            state: Arc::new(Mutex::new(State {
                current: 0,
                left_first: None,
                confirmed: true,
            })),
            return_after: Duration::from_secs(RETURN_TO_FIRST_SECS),
        }
    }

    /// The same set, trying the first-listed URL again after `d` on a later one (tests).
    pub fn with_return_after(mut self, d: Duration) -> Self {
        self.return_after = d;
        self
    }

    /// Every URL, in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Whether any URL is `https://` (the HTTP clients then load the system's roots).
    pub fn any_https(&self) -> bool {
        self.urls.iter().any(|u| u.starts_with("https://"))
    }

    /// A URL for building an HTTP client: an `https://` one if any, so the client trusts the
    /// system roots when any collector needs them.
    pub fn client_url(&self) -> &str {
        self.urls
            .iter()
            .find(|u| u.starts_with("https://"))
            .unwrap_or(&self.urls[0])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (plain fields).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The URL to send the next request to.
    pub fn current(&self) -> String {
        self.current_at(Instant::now())
    }

    /// [`Endpoints::current`] at `now`: back to the first-listed URL once the set has been on a
    /// later one for the return period.
    pub fn current_at(&self, now: Instant) -> String {
        let mut s = self.lock();
        if s.current != 0
            && let Some(left) = s.left_first
            && now.saturating_duration_since(left) >= self.return_after
        {
            tracing::info!(
                from = %self.urls[s.current],
                to = %self.urls[0],
                "collector: trying the first-listed collector {} again", self.urls[0]
            );
            s.current = 0;
            s.left_first = None;
            s.confirmed = false;
        }
        self.urls[s.current].clone()
    }

    /// `url` failed (connection error, timeout, 5xx; `why` says which): when it is the URL in
    /// use and there is another, move to the next. Returns the URL now in use.
    pub fn failed(&self, url: &str, why: &str) -> String {
        self.failed_at(url, why, Instant::now())
    }

    /// [`Endpoints::failed`] at `now`.
    pub fn failed_at(&self, url: &str, why: &str, now: Instant) -> String {
        let mut s = self.lock();
        if self.urls.len() > 1 && self.urls[s.current] == url {
            let next = (s.current + 1) % self.urls.len();
            tracing::warn!(
                failed = %url,
                next = %self.urls[next],
                "collector {url} failed ({why}); switching to {}", self.urls[next]
            );
            s.current = next;
            s.confirmed = false;
            s.left_first = if next == 0 {
                None
            } else {
                s.left_first.or(Some(now))
            };
        }
        self.urls[s.current].clone()
    }

    /// `url` answered (any status that is not a failure): logged once after each switch.
    pub fn answered(&self, url: &str) {
        let mut s = self.lock();
        if !s.confirmed && self.urls[s.current] == url {
            s.confirmed = true;
            tracing::info!(collector = %url, "collector {url} answers; in use");
        }
    }

    /// What an answer with `status` from `url` means for the set: [`is_failover_status`] →
    /// [`Endpoints::failed`], anything else → [`Endpoints::answered`].
    pub fn judge(&self, url: &str, status: u16) {
        if is_failover_status(status) {
            self.failed(url, &format!("HTTP {status}"));
        } else {
            self.answered(url);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(urls: &[&str]) -> Endpoints {
        Endpoints::new(urls.iter().copied()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn urls_are_checked_when_the_set_is_made() {
        let check = |urls: &[&str], want: Result<Vec<&str>, &str>| {
            let got = Endpoints::new(urls.iter().copied())
                .map(|e| e.urls().to_vec())
                .map_err(|e| e.to_string());
            match want {
                Ok(w) => assert_eq!(got, Ok(w.iter().map(|s| s.to_string()).collect())),
                Err(w) => {
                    let e = got.expect_err("refused");
                    assert!(e.contains(w), "{urls:?}: {e}");
                }
            }
        };
        check(
            &["http://a:8080/", "https://b.example"],
            Ok(vec!["http://a:8080", "https://b.example"]),
        );
        check(&[], Err("no collector URL"));
        check(&["a:8080"], Err("`a:8080`"));
        check(&["ftp://a"], Err("not http or https"));
        check(&["http://a:99999"], Err("`http://a:99999`"));
        check(&["http://"], Err("`http://`"));
        check(&["http://a b"], Err("spaces"));
        check(&["http://a?x=1"], Err("query"));
        check(&["http://a:1", "http://a:1/"], Err("listed twice"));
    }

    #[test]
    fn a_failure_of_the_url_in_use_moves_on_and_a_late_one_does_not() {
        let e = set(&["http://a", "http://b", "http://c"]);
        let t = Instant::now();
        assert_eq!(e.current_at(t), "http://a");
        assert_eq!(e.failed_at("http://a", "refused", t), "http://b");
        // The shipper and the heartbeat both saw A fail: the second report changes nothing.
        assert_eq!(e.failed_at("http://a", "refused", t), "http://b");
        assert_eq!(e.failed_at("http://b", "HTTP 503", t), "http://c");
        assert_eq!(e.failed_at("http://c", "timeout", t), "http://a");
        // A clone shares the state.
        assert_eq!(e.clone().current_at(t), "http://a");
    }

    #[test]
    fn only_5xx_moves_on() {
        let e = set(&["http://a", "http://b"]);
        for s in [200, 204, 400, 401, 403, 404, 409, 422, 429] {
            e.judge("http://a", s);
            assert_eq!(e.current(), "http://a", "status {s}");
        }
        e.judge("http://a", 502);
        assert_eq!(e.current(), "http://b");
    }

    #[test]
    fn one_url_stays() {
        let e = set(&["http://a"]);
        assert_eq!(e.failed("http://a", "refused"), "http://a");
    }

    #[test]
    fn the_first_is_tried_again_after_the_return_period() {
        let e = set(&["http://a", "http://b"]).with_return_after(Duration::from_secs(600));
        let t = Instant::now();
        e.failed_at("http://a", "refused", t);
        assert_eq!(e.current_at(t + Duration::from_secs(599)), "http://b");
        assert_eq!(e.current_at(t + Duration::from_secs(600)), "http://a");
        // Still dead: on to B again, and the period starts over.
        let t2 = t + Duration::from_secs(601);
        assert_eq!(e.failed_at("http://a", "refused", t2), "http://b");
        assert_eq!(e.current_at(t2 + Duration::from_secs(300)), "http://b");
    }
}
