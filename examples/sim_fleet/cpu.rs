//! CPU time (user + system) used by each party of a run on this machine: the simulator's own
//! process (every simulated station; `getrusage`), each collector replica it started, and the
//! PostgreSQL server (`/proc/PID/stat`). Linux only: without `/proc` the run says CPU is not
//! available.
//!
//! **Invariant:** a figure is CPU seconds the kernel accounted to that party between two
//! samples, never an estimate: a replica's figure is summed over its incarnations (each one's
//! last value read before it was killed), and the database server's over every process whose
//! `comm` is `postgres`, with the backends already reaped counted through the postmaster's
//! `cutime + cstime`, so a backend that exits during the run does not take its time with it.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Clock ticks per second of `/proc/*/stat`'s times (`sysconf(_SC_CLK_TCK)`; 100 if unknown).
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `/proc/<pid>/stat`'s `comm` and the fields after it (the third on, split on whitespace).
/// `Ok(None)`: the process is gone; `Err`: `/proc` could not be read (no `/proc`, or this
/// process out of file descriptors, as the simulator can be at a burst of 10,000 receipts).
fn stat(pid: &str) -> Result<Option<(String, Vec<u64>)>, ()> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => Ok(parse_stat(&text)),
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound)
                || e.raw_os_error() == Some(libc::ESRCH) =>
        {
            Ok(None)
        }
        Err(_) => Err(()),
    }
}

/// A `/proc/<pid>/stat` text read through a file kept open (see [`Replica::file`]): no new
/// file descriptor is needed to read it again.
fn stat_of(file: &std::fs::File) -> Result<Option<(String, Vec<u64>)>, ()> {
    use std::os::unix::fs::FileExt as _;
    let mut buf = vec![0u8; 4096];
    match file.read_at(&mut buf, 0) {
        Ok(n) => Ok(std::str::from_utf8(&buf[..n]).ok().and_then(parse_stat)),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(_) => Err(()),
    }
}

fn parse_stat(text: &str) -> Option<(String, Vec<u64>)> {
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let comm = text.get(open + 1..close)?.to_string();
    // Field 3 (state) is not a number: it reads as 0.
    let rest = text
        .get(close + 1..)?
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Some((comm, rest))
}

/// utime + stime (fields 14 and 15), and cutime + cstime (16 and 17), in ticks.
fn times(fields: &[u64]) -> Option<(u64, u64)> {
    // `fields[0]` is field 3.
    let f = |n: usize| fields.get(n - 3).copied();
    Some((f(14)? + f(15)?, f(16)? + f(17)?))
}

/// This process's user + system time in seconds, to the microsecond (`getrusage`), all its
/// threads (ended ones included); `None` if the call fails.
fn self_secs() -> Option<f64> {
    // SAFETY: a zeroed `rusage` is valid (integers only), and getrusage writes only into it.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return None;
        }
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(tv(u.ru_utime) + tv(u.ru_stime))
}

/// This process's own utime + stime, in ticks; `None` when `/proc` cannot be read.
fn self_ticks() -> Option<u64> {
    stat("self")
        .ok()
        .flatten()
        .and_then(|(_, f)| times(&f))
        .map(|(own, _)| own)
}

/// Every `postgres` process's utime + stime + cutime + cstime, in ticks; `None` when `/proc`
/// could not be read whole (a process that ended meanwhile is no failure).
fn postgres_ticks() -> Option<u64> {
    let mut sum = 0;
    for e in std::fs::read_dir("/proc").ok()? {
        let e = e.ok()?;
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((comm, f)) = stat(pid).ok()?
            && comm == "postgres"
            && let Some((own, children)) = times(&f)
        {
            sum += own + children;
        }
    }
    Some(sum)
}

#[derive(Debug, Default)]
struct Replica {
    /// Its current process, `None` while it is down.
    pid: Option<u32>,
    /// Its `/proc/<pid>/stat`, opened when it started and kept open, so reading it needs no
    /// new file descriptor.
    file: Option<std::fs::File>,
    /// The current incarnation's ticks when last read.
    last: u64,
    /// The ticks of its incarnations before the current one.
    earlier: u64,
    incarnations: usize,
}

/// Reads the parties' CPU time; shared by the run's loop and the station that verifies last.
#[derive(Debug)]
pub struct Meter {
    tck: f64,
    /// The database is PostgreSQL: its server's processes are counted.
    postgres: bool,
    replicas: Mutex<Vec<Replica>>,
}

/// The parties' CPU seconds since their start (the database server's: since its own), at `at`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    /// `/proc`'s clock tick, in seconds.
    pub tick: f64,
    pub simulator: f64,
    /// Per replica: seconds over its incarnations so far, and how many there were.
    pub replicas: Vec<(f64, usize)>,
    pub database: Option<f64>,
    /// Every party was read (the simulator out of file descriptors cannot read `/proc`).
    pub complete: bool,
}

impl Meter {
    /// A meter of the simulator, the replicas started with `pids` and, when `postgres`, the
    /// database server; `None` when `/proc` cannot be read.
    pub fn new(pids: &[u32], postgres: bool) -> Option<Self> {
        self_ticks()?;
        Some(Self {
            tck: clk_tck(),
            postgres,
            replicas: Mutex::new(
                pids.iter()
                    .map(|&p| Replica {
                        pid: Some(p),
                        file: open_stat(p),
                        incarnations: 1,
                        ..Replica::default()
                    })
                    .collect(),
            ),
        })
    }

    /// Replica `r` was killed (read it just before): its time so far is kept.
    pub fn killed(&self, r: usize) {
        if let Ok(mut reps) = self.replicas.lock()
            && let Some(rep) = reps.get_mut(r)
        {
            rep.earlier += rep.last;
            rep.last = 0;
            rep.pid = None;
            rep.file = None;
        }
    }

    /// Replica `r` runs again as `pid`.
    pub fn started(&self, r: usize, pid: u32) {
        if let Ok(mut reps) = self.replicas.lock()
            && let Some(rep) = reps.get_mut(r)
        {
            if rep.pid.is_some() {
                // Restarted without a `killed`: keep the last value read of the one before.
                rep.earlier += rep.last;
                rep.last = 0;
            }
            rep.pid = Some(pid);
            rep.file = open_stat(pid);
            rep.incarnations += 1;
        }
    }

    /// Read every party now. A replica whose process is gone keeps the last value read; a
    /// party that could not be read makes the sample incomplete.
    pub fn sample(&self) -> Sample {
        let at = Instant::now();
        let secs = |t: u64| t as f64 / self.tck;
        let simulator = self_secs().unwrap_or_else(|| secs(self_ticks().unwrap_or(0)));
        let mut complete = true;
        let replicas = match self.replicas.lock() {
            Ok(mut reps) => reps
                .iter_mut()
                .map(|rep| {
                    if rep.pid.is_some() {
                        let read = match &rep.file {
                            Some(f) => stat_of(f),
                            None => Err(()),
                        };
                        match read {
                            Ok(Some((_, f))) => {
                                if let Some((own, _)) = times(&f) {
                                    rep.last = rep.last.max(own);
                                }
                            }
                            Ok(None) => {}
                            Err(()) => complete = false,
                        }
                    }
                    (secs(rep.earlier + rep.last), rep.incarnations)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let database = if self.postgres {
            let d = postgres_ticks().map(secs);
            complete &= d.is_some();
            d
        } else {
            None
        };
        Sample {
            at,
            tick: 1.0 / self.tck,
            simulator,
            replicas,
            database,
            complete,
        }
    }
}

/// `/proc/<pid>/stat` opened to be read again and again.
fn open_stat(pid: u32) -> Option<std::fs::File> {
    std::fs::File::open(format!("/proc/{pid}/stat")).ok()
}

/// The parties' CPU seconds over one window of the run.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub wall: Duration,
    /// The resolution of the other processes' times (`/proc`'s clock tick), in seconds.
    pub tick: f64,
    /// `available_parallelism()`: the share is of `cores × wall`.
    pub cores: usize,
    pub simulator: f64,
    /// Per replica (A, B, …): seconds, and incarnations at the window's end.
    pub replicas: Vec<(f64, usize)>,
    /// All `postgres` processes on this machine (`None`: SQLite, or not read).
    pub database: Option<f64>,
    /// Both ends were read whole; when not, only the simulator's figure is shown.
    pub complete: bool,
}

impl Window {
    pub fn between(a: &Sample, b: &Sample) -> Self {
        Self {
            wall: b.at.saturating_duration_since(a.at),
            tick: a.tick,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            simulator: (b.simulator - a.simulator).max(0.0),
            replicas: a
                .replicas
                .iter()
                .zip(&b.replicas)
                .map(|(x, y)| ((y.0 - x.0).max(0.0), y.1))
                .collect(),
            database: match (a.database, b.database) {
                (Some(x), Some(y)) => Some((y - x).max(0.0)),
                _ => None,
            },
            complete: a.complete && b.complete,
        }
    }

    /// `secs` as a share of `cores × wall`, in percent.
    pub fn share(&self, secs: f64) -> f64 {
        let avail = self.cores as f64 * self.wall.as_secs_f64();
        if avail > 0.0 {
            100.0 * secs / avail
        } else {
            0.0
        }
    }

    /// Every party's seconds together.
    pub fn total(&self) -> f64 {
        self.simulator
            + self.replicas.iter().map(|r| r.0).sum::<f64>()
            + self.database.unwrap_or(0.0)
    }
}

/// The run's CPU figures: the whole run (load and drain) and the bulletin's window.
#[derive(Debug, Clone, Default)]
pub struct CpuReport {
    pub run: Window,
    /// From just before the send's POST to the moment the last station verified (`all: true`),
    /// or to the drain's end when some station never did.
    pub bulletin: Option<(Window, bool)>,
}

impl CpuReport {
    /// The windows, then a row per party with a column per window.
    pub fn print(&self, replica_name: impl Fn(usize) -> String) {
        println!(
            "CPU (user + system) per party, each as a share of {} cores × wall:",
            self.run.cores
        );
        println!(
            "  whole run: the load and the drain, {:.1} s wall",
            self.run.wall.as_secs_f64()
        );
        let mut cols = vec![("whole run", &self.run)];
        if let Some((w, all)) = &self.bulletin {
            println!(
                "  bulletin: from the send to {}, {:.2} s wall",
                if *all {
                    "the moment the last station verified"
                } else {
                    "the drain's end (not every station verified)"
                },
                w.wall.as_secs_f64()
            );
            cols.push(("bulletin", w));
            if w.wall.as_secs_f64() < 100.0 * w.tick {
                println!(
                    "  (the collectors' and the database server's times count in {} ms ticks: \
                     over a window this short their shares are rough, and can exceed 100 %)",
                    (w.tick * 1000.0).round()
                );
            }
        }
        let cell = |w: &Window, s: f64| format!("{s:>9.2} s {:>5.1} %", w.share(s));
        // Only the simulator's own time (getrusage) is known in a window not read whole.
        let other = |w: &Window, s: f64| {
            if w.complete {
                cell(w, s)
            } else {
                format!("{:>19}", "not read")
            }
        };
        for (h, w) in &cols {
            if !w.complete {
                println!(
                    "  ({h}: /proc could not be read at one end of the window — the simulator \
                     was out of file descriptors — so only the simulator's own time is shown)"
                );
            }
        }
        let mut rows: Vec<(String, Vec<String>)> = vec![(
            "simulator (this process: every station)".into(),
            cols.iter().map(|(_, w)| cell(w, w.simulator)).collect(),
        )];
        for (r, (_, inc)) in self.run.replicas.iter().enumerate() {
            let name = match inc {
                2.. => format!("collector {} ({inc} incarnations)", replica_name(r)),
                _ => format!("collector {}", replica_name(r)),
            };
            let cells = cols
                .iter()
                .map(|(_, w)| other(w, w.replicas.get(r).map_or(0.0, |x| x.0)))
                .collect();
            rows.push((name, cells));
        }
        if self.run.database.is_some() {
            rows.push((
                "database server (all postgres processes on this machine)".into(),
                cols.iter()
                    .map(|(_, w)| other(w, w.database.unwrap_or(0.0)))
                    .collect(),
            ));
        }
        rows.push((
            "all of the above".into(),
            cols.iter().map(|(_, w)| other(w, w.total())).collect(),
        ));
        let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let heads: Vec<String> = cols.iter().map(|(h, _)| format!("{h:>19}")).collect();
        println!("  {:width$}   {}", "", heads.join("   "));
        for (name, cells) in rows {
            let pad = width - name.chars().count();
            println!("  {name}{:pad$}   {}", "", cells.join("   "));
        }
    }
}
