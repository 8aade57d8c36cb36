//! A supervisor of child processes, the one `loa up` uses to run the collector and its stations
//! on one host: each child in its own process group, its output forwarded line by line with a
//! name prefix, its exit reported, and the whole set stopped in order on request.
//!
//! **Invariant:** every child started is reaped and reported exactly once — by [`Supervisor::stop`]
//! (SIGTERM by ascending `stop_order`, SIGKILL after the grace or at once on abort) or by
//! [`Supervisor::next_exit`] when it ends by itself — and no child outlives its supervisor's
//! thread (PR_SET_PDEATHSIG). It knows nothing of what the children are.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// Why a child could not be started or did not come up.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} has no process id")]
    NoPid { name: String },
    #[error("{name} {end} before it listened on {addr}")]
    ExitedBeforeListening {
        name: String,
        end: ChildEnd,
        addr: SocketAddr,
    },
    #[error("the collector did not listen on {addr} within {secs} s")]
    NotListening { addr: SocketAddr, secs: u64 },
    #[error("cannot watch {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
}

/// A child to run.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Shown as the prefix of every line it prints.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Stopped in ascending order: stations (0) before the collector (1).
    pub stop_order: u8,
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEnd {
    /// Exited by itself with this code (0 is clean).
    Exited(i32),
    /// Killed by this signal.
    Signalled(i32),
    /// Did not exit within the grace period; SIGKILLed.
    KilledAfterGrace,
    /// Its exit status could not be read.
    Unknown(String),
}

impl ChildEnd {
    /// True for exit code 0.
    pub fn clean(&self) -> bool {
        *self == ChildEnd::Exited(0)
    }
}

impl std::fmt::Display for ChildEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildEnd::Exited(0) => write!(f, "exited cleanly"),
            ChildEnd::Exited(c) => write!(f, "exited with code {c}"),
            ChildEnd::Signalled(s) => write!(f, "killed by signal {s}"),
            ChildEnd::KilledAfterGrace => write!(f, "did not stop in time; killed"),
            ChildEnd::Unknown(e) => write!(f, "unknown exit status: {e}"),
        }
    }
}

struct Running {
    name: String,
    pid: i32,
    stop_order: u8,
    ended: Option<ChildEnd>,
}

/// A child's exit as the waiting task reports it: its index in `Supervisor::running`, and how.
type ExitReport = (usize, ChildEnd);

/// Runs children in their own process groups (so a terminal's Ctrl-C reaches only `loa up`,
/// which then stops them in order), forwards their output line by line with a name prefix, and
/// reports exits. Children get SIGTERM if `loa up` itself dies (PR_SET_PDEATHSIG).
pub struct Supervisor {
    running: Vec<Running>,
    exits_tx: tokio::sync::mpsc::UnboundedSender<ExitReport>,
    exits_rx: tokio::sync::mpsc::UnboundedReceiver<ExitReport>,
}

impl Default for Supervisor {
    fn default() -> Self {
        // Unbounded but bounded in practice: at most one message per child ever started.
        let (exits_tx, exits_rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            running: Vec::new(),
            exits_tx,
            exits_rx,
        }
    }
}

impl Supervisor {
    /// Start one child. Must run on the thread that stays alive (PR_SET_PDEATHSIG is per thread):
    /// `loa up` uses a current-thread runtime on the main thread.
    pub fn start(&mut self, spec: &ChildSpec) -> Result<(), SupervisorError> {
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| SupervisorError::Spawn {
            name: spec.name.clone(),
            program: spec.program.clone(),
            source,
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| SupervisorError::NoPid {
                name: spec.name.clone(),
            })?;
        let prefix = format!("[{}]", spec.name);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, prefix.clone(), Stream::Stdout));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, prefix, Stream::Stderr));
        }
        let idx = self.running.len();
        let tx = self.exits_tx.clone();
        tokio::spawn(async move {
            let end = match child.wait().await {
                Ok(st) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (st.code(), st.signal()) {
                        (Some(c), _) => ChildEnd::Exited(c),
                        (None, Some(s)) => ChildEnd::Signalled(s),
                        (None, None) => ChildEnd::Unknown(st.to_string()),
                    }
                }
                Err(e) => ChildEnd::Unknown(e.to_string()),
            };
            let _ = tx.send((idx, end));
        });
        self.running.push(Running {
            name: spec.name.clone(),
            pid,
            stop_order: spec.stop_order,
            ended: None,
        });
        Ok(())
    }

    /// The next child to exit (name and how), or pending forever when none runs.
    pub async fn next_exit(&mut self) -> Option<(String, ChildEnd)> {
        if self.running.iter().all(|r| r.ended.is_some()) {
            return std::future::pending().await;
        }
        let (idx, end) = self.exits_rx.recv().await?;
        let r = self.running.get_mut(idx)?;
        r.ended = Some(end.clone());
        Some((r.name.clone(), end))
    }

    /// A child's exit already reported, without waiting.
    pub fn poll_exit(&mut self) -> Option<(String, ChildEnd)> {
        let (idx, end) = self.exits_rx.try_recv().ok()?;
        let r = self.running.get_mut(idx)?;
        r.ended = Some(end.clone());
        Some((r.name.clone(), end))
    }

    /// SIGTERM every child, group by group in `stop_order`, waiting up to `grace` per group
    /// before SIGKILL. Returns every child's end, in start order.
    /// When `abort` completes (a second Ctrl-C), whatever still runs is SIGKILLed at once.
    pub async fn stop<A>(&mut self, grace: Duration, abort: A) -> Vec<(String, ChildEnd)>
    where
        A: std::future::Future<Output = ()>,
    {
        tokio::pin!(abort);
        let mut aborted = false;
        let mut orders: Vec<u8> = self.running.iter().map(|r| r.stop_order).collect();
        orders.sort_unstable();
        orders.dedup();
        for order in orders {
            for r in self
                .running
                .iter()
                .filter(|r| r.stop_order == order && r.ended.is_none())
            {
                // SAFETY: plain kill(2) on a child we started and have not seen exit.
                unsafe { libc::kill(r.pid, libc::SIGTERM) };
            }
            let mut deadline =
                tokio::time::Instant::now() + if aborted { Duration::ZERO } else { grace };
            let mut killed = Vec::new();
            while self
                .running
                .iter()
                .any(|r| r.stop_order == order && r.ended.is_none())
            {
                let waited = tokio::select! {
                    w = tokio::time::timeout_at(deadline, self.next_exit()) => w,
                    _ = &mut abort, if !aborted => {
                        aborted = true;
                        deadline = tokio::time::Instant::now();
                        continue;
                    }
                };
                match waited {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        for (i, r) in self.running.iter().enumerate() {
                            if r.stop_order == order && r.ended.is_none() && !killed.contains(&i) {
                                // SAFETY: as above.
                                unsafe { libc::kill(r.pid, libc::SIGKILL) };
                                killed.push(i);
                            }
                        }
                        // Reap them (SIGKILL cannot be ignored).
                        while self
                            .running
                            .iter()
                            .any(|r| r.stop_order == order && r.ended.is_none())
                        {
                            if self.next_exit().await.is_none() {
                                break;
                            }
                        }
                    }
                }
            }
            for i in killed {
                if let Some(r) = self.running.get_mut(i) {
                    r.ended = Some(ChildEnd::KilledAfterGrace);
                }
            }
        }
        self.running
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.ended
                        .clone()
                        .unwrap_or_else(|| ChildEnd::Unknown("never reported".into())),
                )
            })
            .collect()
    }
}

/// Which of `loa up`'s own streams a child's stream goes to.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Copy `from` line by line to `loa up`'s `to`, each line prefixed with the child's name.
async fn forward_lines<R>(from: R, prefix: String, to: Stream)
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        match to {
            Stream::Stdout => println!("{prefix} {l}"),
            Stream::Stderr => eprintln!("{prefix} {l}"),
        }
    }
}

/// Wait until `addr` accepts TCP connections, failing early if a child exits meanwhile.
pub async fn wait_for_port(
    sup: &mut Supervisor,
    addr: SocketAddr,
    limit: Duration,
) -> Result<(), SupervisorError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some((name, end)) = sup.poll_exit() {
            return Err(SupervisorError::ExitedBeforeListening { name, end, addr });
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SupervisorError::NotListening {
                addr,
                secs: limit.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts SIGINT and SIGTERM received (the first stops everything, a second kills what still
/// runs). Must be called inside the runtime.
pub fn watch_signals() -> Result<tokio::sync::watch::Receiver<u32>, SupervisorError> {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = |kind, signal_name| {
        signal(kind).map_err(|source| SupervisorError::Signal {
            signal: signal_name,
            source,
        })
    };
    let mut int = watch(SignalKind::interrupt(), "SIGINT")?;
    let mut term = watch(SignalKind::terminate(), "SIGTERM")?;
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tx.send_modify(|n| *n += 1);
            if *tx.borrow() == 1 {
                eprintln!("loa up: stopping (press Ctrl-C again to kill at once)");
            }
        }
    });
    Ok(rx)
}

/// Completes once `signals` has counted at least `n` (never, if the counter is gone).
pub async fn signal_count(mut signals: tokio::sync::watch::Receiver<u32>, n: u32) {
    if signals.wait_for(|c| *c >= n).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Wait until every file in `files` exists (the shells create one once their traps are set).
    async fn wait_files(files: &[&Path]) {
        for _ in 0..200 {
            if files.iter().all(|f| f.exists()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("children did not start: {files:?}");
    }

    fn sh(name: &str, script: &str, stop_order: u8) -> ChildSpec {
        ChildSpec {
            name: name.into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            stop_order,
        }
    }

    /// Start a child named "stubborn" that ignores SIGTERM, and wait until it runs.
    async fn start_stubborn(sup: &mut Supervisor, dir: &Path) {
        let ready = dir.join("ready");
        sup.start(&sh(
            "stubborn",
            &format!(
                "trap '' TERM; touch {}; while :; do sleep 0.05; done",
                ready.display()
            ),
            0,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        wait_files(&[&ready]).await;
    }

    /// Children that exit 0 on SIGTERM: stopped in order (stations before the collector), all clean.
    #[tokio::test]
    async fn stops_children_in_order_and_reports_clean_exits() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let marker = dir.path().join("station-stopped");
        let m = marker.display();
        let (r1, r2) = (dir.path().join("r1"), dir.path().join("r2"));
        let (r1d, r2d) = (r1.display(), r2.display());
        let mut sup = Supervisor::default();
        // The "collector" exits 0 on TERM only if the "station" was already stopped.
        sup.start(&sh(
            "collector",
            &format!("trap 'test -e {m} && exit 0; exit 9' TERM; touch {r1d}; while :; do sleep 0.05; done"),
            1,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        sup.start(&sh(
            "station a",
            &format!("trap 'touch {m}; exit 0' TERM; touch {r2d}; echo started; while :; do sleep 0.05; done"),
            0,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        wait_files(&[&r1, &r2]).await;
        let report = sup
            .stop(Duration::from_secs(10), std::future::pending())
            .await;
        assert_eq!(
            report,
            vec![
                ("collector".to_string(), ChildEnd::Exited(0)),
                ("station a".to_string(), ChildEnd::Exited(0)),
            ]
        );
    }

    #[tokio::test]
    async fn reports_a_child_that_exits_by_itself_and_kills_one_that_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut sup = Supervisor::default();
        start_stubborn(&mut sup, dir.path()).await;
        sup.start(&sh("crasher", "sleep 0.2; exit 3", 0))
            .unwrap_or_else(|e| panic!("{e}"));
        let first = tokio::time::timeout(Duration::from_secs(10), sup.next_exit()).await;
        assert_eq!(
            first.ok().flatten(),
            Some(("crasher".to_string(), ChildEnd::Exited(3)))
        );
        let report = sup
            .stop(Duration::from_millis(500), std::future::pending())
            .await;
        assert_eq!(
            report,
            vec![
                ("stubborn".to_string(), ChildEnd::KilledAfterGrace),
                ("crasher".to_string(), ChildEnd::Exited(3)),
            ]
        );
        assert!(!report.iter().all(|(_, e)| e.clean()));
    }

    /// A second Ctrl-C while stopping: what still runs is killed at once, not after the grace.
    #[tokio::test]
    async fn abort_kills_at_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut sup = Supervisor::default();
        start_stubborn(&mut sup, dir.path()).await;
        let stop = sup.stop(
            Duration::from_secs(3600),
            tokio::time::sleep(Duration::from_millis(200)),
        );
        let report = tokio::time::timeout(Duration::from_secs(30), stop)
            .await
            .unwrap_or_else(|_| panic!("abort did not cut the hour-long grace"));
        assert_eq!(
            report,
            vec![("stubborn".to_string(), ChildEnd::KilledAfterGrace)]
        );
    }
}
