//! The collector under test: its state directory (registry of the simulated stations, an admin
//! and their token) and, when the simulator runs it, its process — started, killed with
//! SIGKILL, restarted on the same port and state.
//!
//! **Invariant:** the collector is the real binary in its own process, with the state layout of
//! `$LOA_HOME` (docs/operations.md); the simulator only writes the registry and the admin
//! account before it starts, and reads the database only after the load has stopped.

use chrono::Utc;
use ed25519_dalek::SigningKey;
use loa::collector::accounts::{self, Role};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the simulator keeps the admin token it made, inside `$LOA_HOME`.
pub const TOKEN_FILE: &str = "sim-admin-token";

/// Station `i`'s id.
pub fn station_id(i: usize) -> String {
    format!("sim{i:05}")
}

/// Station `i`'s area code (1,000 communes' codes, as bench_fanout).
pub fn area(i: usize) -> String {
    format!("79{:03}", i % 1000)
}

/// Station `i`'s key: deterministic, so collectors prepared by one run take another's stations.
pub fn key(i: usize) -> SigningKey {
    let mut seed = [11u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

/// Write `home`'s registry with `stations` stations, an admin account and its token (in
/// [`TOKEN_FILE`]); a home already prepared for as many stations or more is kept as it is.
/// Returns the admin token.
pub fn prepare(home: &Path, stations: usize, db: &Path) -> Result<String, String> {
    let token_file = home.join(TOKEN_FILE);
    let registry = home.join("collector.toml");
    if let (Ok(token), Ok(reg)) = (
        std::fs::read_to_string(&token_file),
        std::fs::read_to_string(&registry),
    ) && reg.contains(&format!(
        "id = \"{}\"",
        station_id(stations.saturating_sub(1))
    )) {
        return Ok(token.trim().to_string());
    }
    std::fs::create_dir_all(home.join("collector/library/tree"))
        .map_err(|e| format!("{}: {e}", home.display()))?;
    let mut reg = String::with_capacity(stations * 160);
    for i in 0..stations {
        reg.push_str(&format!(
            "[[station]]\nid = \"{}\"\nname = \"Phường mô phỏng {i}\"\narea_code = \"{}\"\npublic_key = \"{}\"\n",
            station_id(i),
            area(i),
            loa::wire::encode_public_key(&key(i).verifying_key())
        ));
    }
    std::fs::write(&registry, reg).map_err(|e| format!("{}: {e}", registry.display()))?;
    let shown = loa::collector::db::Location::of_path(db).display();
    let mut c = loa::collector::Store::open(db)
        .map_err(|e| format!("{shown}: {e}"))?
        .into_connection();
    let now = Utc::now();
    let name = "sim-admin";
    if accounts::find_user(&c, name)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        accounts::add_user(&mut c, name, Role::Admin, &[], "mat-khau-mo-phong-1", now)
            .map_err(|e| e.to_string())?;
    }
    let u = accounts::find_user(&c, name)
        .map_err(|e| e.to_string())?
        .ok_or("admin account missing")?;
    let token = accounts::create_token(&c, &u, "sim_fleet", now)
        .map_err(|e| e.to_string())?
        .0;
    std::fs::write(&token_file, &token).map_err(|e| format!("{}: {e}", token_file.display()))?;
    Ok(token)
}

/// The collector process the simulator runs.
pub struct Collector {
    loa: PathBuf,
    home: PathBuf,
    /// The database (`--db`): a SQLite file or a PostgreSQL URL, shared by every replica.
    db: PathBuf,
    child: Child,
    /// `127.0.0.1:<port>`, kept across restarts.
    pub listen: String,
    /// WARN/ERROR lines the collector logged (the first few are printed).
    pub warnings: Arc<AtomicUsize>,
}

impl Collector {
    /// Start `loa collector` on `listen` with `$LOA_HOME` = `home`; waits until it listens.
    pub fn start(loa: &Path, home: &Path, db: &Path, listen: &str) -> Result<Self, String> {
        let warnings = Arc::new(AtomicUsize::new(0));
        let (child, addr) = spawn(loa, home, db, listen, warnings.clone())?;
        Ok(Self {
            loa: loa.to_path_buf(),
            home: home.to_path_buf(),
            db: db.to_path_buf(),
            child,
            listen: addr,
            warnings,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a machine lost: nothing is flushed or answered.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same address and state; the time it took to listen.
    pub fn restart(&mut self) -> Result<Duration, String> {
        let t = Instant::now();
        let mut last = String::new();
        // The port may take a moment to be free again.
        for _ in 0..20 {
            match spawn(
                &self.loa,
                &self.home,
                &self.db,
                &self.listen,
                self.warnings.clone(),
            ) {
                Ok((child, _)) => {
                    self.child = child;
                    return Ok(t.elapsed());
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(last)
    }

    /// Stop it (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

fn spawn(
    loa: &Path,
    home: &Path,
    db: &Path,
    listen: &str,
    warnings: Arc<AtomicUsize>,
) -> Result<(Child, String), String> {
    let mut child = Command::new(loa)
        .args(["collector", "--listen", listen, "--db"])
        .arg(db)
        .env("LOA_HOME", home)
        .env("LOA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", loa.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut said = false;
        let mut last: Vec<String> = Vec::new();
        for l in lines.by_ref().map_while(Result::ok) {
            if !said && let Some(rest) = l.split("listening on http://").nth(1) {
                let _ = tx.send(Ok(rest.trim().to_string()));
                said = true;
            } else if (l.contains("WARN") || l.contains("ERROR"))
                && warnings.fetch_add(1, Ordering::Relaxed) < 10
            {
                eprintln!("collector: {l}");
            }
            if !said {
                last.push(l);
                if last.len() > 5 {
                    last.remove(0);
                }
            }
        }
        if !said {
            let _ = tx.send(Err(format!(
                "the collector exited before listening: {}",
                last.join(" | ")
            )));
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(addr)) => Ok((child, addr)),
        Ok(Err(e)) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the collector did not listen within 120 s".into())
        }
    }
}

/// VmRSS and VmHWM of `pid`, in MB.
pub fn rss_mb(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
