//! Latencies and errors per request kind, shared by every simulated station.
//!
//! **Invariant:** every request a station makes is counted once, as a latency when it got the
//! answer it wanted, else as an error under a short reason (a status code, `timeout`, `connect`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The request kinds the simulator measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Heartbeat,
    Batch,
    PushConnect,
    BulletinReceipt,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Heartbeat,
        Kind::Batch,
        Kind::PushConnect,
        Kind::BulletinReceipt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Heartbeat => "heartbeat",
            Kind::Batch => "batch",
            Kind::PushConnect => "push connect",
            Kind::BulletinReceipt => "bulletin receipt",
        }
    }
}

#[derive(Debug, Default)]
struct Series {
    ok: Vec<Duration>,
    errors: BTreeMap<String, u64>,
    /// The first error of each reason, in full (its source chain), to tell what it was.
    examples: BTreeMap<String, String>,
}

/// Per kind: the latencies of the requests that succeeded, the errors by reason.
#[derive(Debug, Default)]
pub struct Stats {
    series: Mutex<BTreeMap<Kind, Series>>,
}

/// One kind's figures.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub count: usize,
    pub errors: u64,
    pub error_reasons: BTreeMap<String, u64>,
    pub examples: BTreeMap<String, String>,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn ok(&self, kind: Kind, took: Duration) {
        if let Ok(mut s) = self.series.lock() {
            s.entry(kind).or_default().ok.push(took);
        }
    }

    pub fn error(&self, kind: Kind, reason: impl Into<String>) {
        if let Ok(mut s) = self.series.lock() {
            *s.entry(kind)
                .or_default()
                .errors
                .entry(reason.into())
                .or_default() += 1;
        }
    }

    /// A failed request: counted under [`reason`], the first of each reason kept in full.
    pub fn net_error(&self, kind: Kind, e: &reqwest::Error) {
        let why = reason(e);
        if let Ok(mut s) = self.series.lock() {
            let series = s.entry(kind).or_default();
            if !series.examples.contains_key(&why) {
                let mut text = e.to_string();
                let mut src = std::error::Error::source(e);
                while let Some(inner) = src {
                    text.push_str(&format!(": {inner}"));
                    src = inner.source();
                }
                series.examples.insert(why.clone(), text);
            }
            *series.errors.entry(why).or_default() += 1;
        }
    }

    pub fn summary(&self, kind: Kind) -> Summary {
        let Ok(mut s) = self.series.lock() else {
            return Summary::default();
        };
        let s = s.entry(kind).or_default();
        s.ok.sort();
        Summary {
            count: s.ok.len() + s.errors.values().sum::<u64>() as usize,
            errors: s.errors.values().sum(),
            error_reasons: s.errors.clone(),
            examples: s.examples.clone(),
            p50: percentile(&s.ok, 0.50),
            p99: percentile(&s.ok, 0.99),
            max: s.ok.last().copied().unwrap_or_default(),
        }
    }
}

/// The `p` quantile of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A short reason for a failed request.
pub fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else {
        "network".into()
    }
}
