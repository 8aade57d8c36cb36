//! The systemd notify protocol (`sd_notify(3)`), spoken directly: newline-separated `KEY=VALUE`
//! datagrams sent to the Unix socket named by `$NOTIFY_SOCKET` (a path, or an abstract socket
//! written with a leading `@`), plus a watchdog helper.
//!
//! **Invariant:** the watchdog is petted (`WATCHDOG=1`) only when the daemon's scheduler loop has
//! called [`Liveness::beat`] since the previous pet, so a hung scheduler loop — even with a healthy
//! runtime and a healthy pet task — stops the pets and systemd restarts the service. Outside
//! systemd (`NOTIFY_SOCKET` unset) every call is a no-op that succeeds.
//!
//! How a daemon uses it (the station and the collector):
//! ```no_run
//! # async fn demo() {
//! use loa::notify::{Liveness, Notifier, pet_while_alive, watchdog_interval};
//! let notifier = Notifier::from_env();
//! let liveness = Liveness::new();
//! if let Some(watchdog) = watchdog_interval() {
//!     // The pet task: sends WATCHDOG=1 every watchdog/2, but only if the loop beat meanwhile.
//!     let (n, l) = (notifier.clone(), liveness.clone());
//!     tokio::spawn(pet_while_alive(n, l, watchdog, std::future::pending::<()>()));
//! }
//! let _ = notifier.ready();
//! loop {
//!     liveness.beat(); // once per scheduler iteration; sleep at most Liveness::max_sleep(watchdog)
//!     # break;
//! }
//! let _ = notifier.stopping();
//! # }
//! ```
//!
//! Rule for the scheduler loop: it must beat at least once per [`Liveness::max_sleep`] of the
//! watchdog interval (a quarter of `WatchdogSec=`), i.e. it never sleeps longer than that in one go
//! even when the next airing is hours away. Then between two pets (half of `WatchdogSec=` apart)
//! there is always a beat while the loop is alive, and a loop that hangs is restarted within
//! 1.5 × `WatchdogSec=`.

use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Environment variable naming the notify socket (set by systemd for `Type=notify` services).
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// Environment variable carrying the watchdog timeout in microseconds (`WatchdogSec=`).
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// Environment variable naming the PID the watchdog is meant for (absent: any process).
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";
/// Longest `STATUS=` text sent; systemd shows one line, and a datagram must stay small.
pub const MAX_STATUS_BYTES: usize = 1024;

/// Errors from sending a notification. Callers usually log these and carry on: a daemon must not
/// stop airing because systemd could not be told about it.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` (or the given address) is neither an absolute path nor `@name`.
    #[error(
        "notify socket address {0:?} is not an absolute path or an abstract name starting with '@'"
    )]
    BadAddress(String),
    /// The socket could not be created or the datagram not sent.
    #[error("cannot send {state:?} to notify socket {addr}: {source}")]
    Send {
        addr: String,
        state: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A filesystem socket.
    Path(PathBuf),
    /// A Linux abstract socket (the name without its leading `@`).
    Abstract(Vec<u8>),
}

/// A handle that sends sd_notify messages; cheap to clone. Disabled (every call a no-op) when
/// there is no notify socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    target: Option<Target>,
}

impl Notifier {
    /// The notifier systemd asked for through `$NOTIFY_SOCKET`; disabled when it is unset or empty.
    /// A malformed value also yields a disabled notifier (it is reported by [`Self::from_value`]).
    pub fn from_env() -> Self {
        Self::from_value(std::env::var_os(NOTIFY_SOCKET_ENV)).unwrap_or_else(|_| Self::disabled())
    }

    /// The notifier for a raw `$NOTIFY_SOCKET` value: `None` or empty disables it.
    pub fn from_value(value: Option<OsString>) -> Result<Self, NotifyError> {
        match value {
            None => Ok(Self::disabled()),
            Some(v) if v.is_empty() => Ok(Self::disabled()),
            Some(v) => match v.into_string() {
                Ok(s) => Self::new(&s),
                Err(raw) => {
                    // A non-UTF-8 path is still a valid path.
                    let path = PathBuf::from(raw);
                    if path.is_absolute() {
                        Ok(Self {
                            target: Some(Target::Path(path)),
                        })
                    } else {
                        Err(NotifyError::BadAddress(path.display().to_string()))
                    }
                }
            },
        }
    }

    /// A notifier for an explicit address: an absolute socket path, or `@name` for an abstract
    /// socket (as systemd writes it in `$NOTIFY_SOCKET`).
    pub fn new(addr: &str) -> Result<Self, NotifyError> {
        let target = if let Some(name) = addr.strip_prefix('@') {
            if name.is_empty() {
                return Err(NotifyError::BadAddress(addr.to_string()));
            }
            Target::Abstract(name.as_bytes().to_vec())
        } else if addr.starts_with('/') {
            Target::Path(PathBuf::from(addr))
        } else {
            return Err(NotifyError::BadAddress(addr.to_string()));
        };
        Ok(Self {
            target: Some(target),
        })
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self { target: None }
    }

    /// True when notifications are actually sent somewhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1`: start-up finished (schedule loaded, output opened, listener bound).
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1")
    }

    /// `READY=1` with a status line in the same datagram.
    pub fn ready_with_status(&self, text: &str) -> Result<(), NotifyError> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(text)))
    }

    /// `STATUS=text`: the one-line status `systemctl status` shows. Newlines become spaces and
    /// the text is cut at [`MAX_STATUS_BYTES`] (on a character boundary).
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        self.send(&format!("STATUS={}", one_line(text)))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`: a reload (SIGHUP) began; send [`Self::ready`] when done.
    pub fn reloading(&self) -> Result<(), NotifyError> {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()))
    }

    /// `STOPPING=1`: shutdown began (fading out, flushing the journal).
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1")
    }

    /// `WATCHDOG=1`: pet the watchdog. Prefer [`pet_while_alive`], which pets only while the
    /// scheduler loop is alive.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1")
    }

    /// Send raw newline-separated assignments. A no-op when disabled.
    pub fn send(&self, state: &str) -> Result<(), NotifyError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let fail = |source: std::io::Error| NotifyError::Send {
            addr: target.to_string(),
            state: state.to_string(),
            source,
        };
        // A fresh unbound socket per message, as libsystemd does: no state to go stale when
        // systemd is restarted (daemon-reexec) and nothing to share between threads.
        let socket = UnixDatagram::unbound().map_err(fail)?;
        let addr = match target {
            Target::Path(p) => SocketAddr::from_pathname(p).map_err(fail)?,
            Target::Abstract(name) => SocketAddr::from_abstract_name(name).map_err(fail)?,
        };
        socket.send_to_addr(state.as_bytes(), &addr).map_err(fail)?;
        Ok(())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Path(p) => write!(f, "{}", p.display()),
            Target::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

/// `text` on one line, at most [`MAX_STATUS_BYTES`] long.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_STATUS_BYTES));
    for c in text.chars() {
        let c = if c == '\n' || c == '\r' { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_STATUS_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// CLOCK_MONOTONIC in microseconds, as systemd expects with `RELOADING=1`.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1_000)
}

/// The watchdog timeout systemd expects us to honour (`WatchdogSec=`), from `$WATCHDOG_USEC` and
/// `$WATCHDOG_PID`; `None` when no watchdog is configured for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var(WATCHDOG_USEC_ENV).ok();
    let pid = std::env::var(WATCHDOG_PID_ENV).ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Pure form of [`watchdog_interval`]: `usec` and `pid` are the raw variable values, `my_pid`
/// this process. A watchdog meant for another PID, or a zero/garbled timeout, is `None`.
pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    my_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid {
        match pid.trim().parse::<u32>() {
            Ok(p) if p == my_pid => {}
            _ => return None,
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec))
}

/// Proof of life from the scheduler loop: it calls [`Liveness::beat`] once per iteration; the pet
/// task only pets the watchdog if a beat happened since its last pet. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    beats: Arc<AtomicU64>,
}

impl Liveness {
    /// A token that has not beaten yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that the scheduler loop completed an iteration.
    pub fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    /// How many beats so far (monotonic; wraps after 2^64, i.e. never).
    pub fn beats(&self) -> u64 {
        self.beats.load(Ordering::Relaxed)
    }

    /// The longest the scheduler loop may sleep between two beats for a watchdog of `watchdog`:
    /// a quarter of it, so at least one beat falls between two pets (half of it apart).
    pub fn max_sleep(watchdog: Duration) -> Duration {
        watchdog / 4
    }
}

/// Decides, tick by tick, whether to pet: yes iff the loop beat since the previous decision.
/// Pure bookkeeping, separate from the timer so tests can drive it step by step.
#[derive(Debug)]
pub struct Petter {
    liveness: Liveness,
    seen: u64,
}

impl Petter {
    /// A petter watching `liveness`. The first tick pets only if the loop has beaten at all.
    pub fn new(liveness: Liveness) -> Self {
        Self { liveness, seen: 0 }
    }

    /// True when a pet is due now (the loop beat since the last tick); records the tick.
    pub fn due(&mut self) -> bool {
        let now = self.liveness.beats();
        let due = now != self.seen;
        self.seen = now;
        due
    }

    /// One tick: sends `WATCHDOG=1` through `notifier` if due. Returns whether it petted.
    pub fn tick(&mut self, notifier: &Notifier) -> Result<bool, NotifyError> {
        if self.due() {
            notifier.watchdog()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// The pet task: every `watchdog / 2`, pet the watchdog if `liveness` beat since the last tick;
/// return when `shutdown` completes. Send errors are logged (warn) and do not end the task.
pub async fn pet_while_alive<F>(
    notifier: Notifier,
    liveness: Liveness,
    watchdog: Duration,
    shutdown: F,
) where
    F: std::future::Future<Output = ()>,
{
    let period = (watchdog / 2).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    // After a stall of the runtime, do not burst pets to catch up: one tick, then the cadence.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut petter = Petter::new(liveness);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {
                match petter.tick(&notifier) {
                    Ok(true) => {}
                    // Before the first beat the loop is still starting: nothing to say yet.
                    Ok(false) if petter.liveness.beats() == 0 => {}
                    Ok(false) => tracing::warn!(
                        "scheduler loop has not beaten for {} ms: not petting the watchdog",
                        period.as_millis()
                    ),
                    Err(e) => tracing::warn!("watchdog: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(addr: &str) -> Option<Target> {
        Notifier::new(addr).ok().and_then(|n| n.target)
    }

    #[test]
    fn addresses_path_abstract_and_bad() {
        assert_eq!(
            target("/run/systemd/notify"),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(target("@loa/x"), Some(Target::Abstract(b"loa/x".to_vec())));
        assert!(matches!(
            Notifier::new("@"),
            Err(NotifyError::BadAddress(_))
        ));
        assert!(matches!(
            Notifier::new("relative/sock"),
            Err(NotifyError::BadAddress(_))
        ));
        assert!(
            !Notifier::from_value(None)
                .map(|n| n.is_enabled())
                .unwrap_or(true)
        );
        assert!(
            !Notifier::from_value(Some(OsString::new()))
                .map(|n| n.is_enabled())
                .unwrap_or(true)
        );
    }

    #[test]
    fn disabled_notifier_is_a_noop() {
        let n = Notifier::disabled();
        assert!(n.ready().is_ok());
        assert!(n.watchdog().is_ok());
        assert!(n.status("x").is_ok());
    }

    #[test]
    fn watchdog_interval_parsing() {
        let check = |usec: Option<&str>, pid: Option<&str>, expected: Option<Duration>| {
            assert_eq!(
                watchdog_interval_from(usec, pid, 42),
                expected,
                "usec={usec:?} pid={pid:?}"
            );
        };
        check(Some("30000000"), None, Some(Duration::from_secs(30)));
        check(Some("30000000"), Some("42"), Some(Duration::from_secs(30)));
        check(Some("30000000"), Some("43"), None);
        check(Some("30000000"), Some("x"), None);
        check(Some("0"), None, None);
        check(Some("abc"), None, None);
        check(None, Some("42"), None);
        check(None, None, None);
    }

    #[test]
    fn status_is_one_line_and_bounded() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
        let long = "ư".repeat(MAX_STATUS_BYTES);
        let cut = one_line(&long);
        assert!(cut.len() <= MAX_STATUS_BYTES);
        assert!(cut.len() > MAX_STATUS_BYTES - 4);
    }

    #[test]
    fn petter_pets_only_after_beats() {
        let l = Liveness::new();
        let mut p = Petter::new(l.clone());
        assert!(!p.due(), "no beat yet: no pet");
        l.beat();
        assert!(p.due());
        assert!(!p.due(), "the same beat does not pet twice");
        l.beat();
        l.beat();
        assert!(p.due(), "several beats: one pet");
        assert!(!p.due());
        assert_eq!(
            Liveness::max_sleep(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
    }
}
