//! The README's promise, end to end: the real `loa up` binary, started in a temporary copy of the
//! repository layout (`schedules/`, `audio/`, nothing else), brings up the collector and every
//! station, and within 90 s at least one airing (the demo chime, which airs at the top of every
//! minute, day and night) reaches the collector — seen through the HTTP API, the dashboard HTML
//! and `loa status`. The subcommands an operator types next work from the same directory with
//! no flags (the one state layout): `loa status` finds the collector, and names the same next
//! airing as `loa up`'s banner; `loa export` finds the database and registry; `loa keygen`,
//! `loa register` and `loa station` use `var/`. While it runs, one more station is enrolled as
//! docs/operations.md §3 says (`loa keygen`, the admin API with the token `loa up` made,
//! `loa station`) and must show up online. Then one SIGINT (a terminal's Ctrl-C) must stop everything cleanly: `loa up`
//! exits 0, every child is gone, and the demo station's journal is intact, holding every record
//! the collector stored (nothing lost).
//!
//! Output is forced to WAV (`--output wav`) so the test behaves the same on a machine with a sound
//! card; the WAV the demo station wrote must contain the chime.

mod collector_common;

use collector_common::{cookie_pair, form, hidden_csrf};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `loa up` gets to show an airing at the collector (the demo airs every minute).
const AIRING_DEADLINE_SECS: u64 = 90;
/// How long the clean stop may take (stations fade, flush and ship; collector last).
const STOP_DEADLINE_SECS: u64 = 60;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries.flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The process ids whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Kills `loa up` and its process groups if the test fails half-way, so nothing is left behind.
struct Guard {
    child: Option<Child>,
    kids: Vec<u32>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            for k in &self.kids {
                // SAFETY: kill(2) on process ids this test saw as children of `loa up`.
                unsafe { libc::kill(*k as i32, libc::SIGKILL) };
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plain HTTP GET on loopback: the body of a 2xx answer, else `None`.
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// The session cookie once signed in (`name=value`).
    session: std::cell::RefCell<Option<String>>,
}

impl Http {
    fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            rt,
            client,
            session: std::cell::RefCell::new(None),
        }
    }

    /// Sign in as a person would: the login form (its CSRF cookie and hidden field), then the
    /// name and password; keeps the session cookie. The status of the POST.
    fn sign_in(&self, base: &str, name: &str, password: &str) -> u16 {
        self.rt.block_on(async {
            let r = self
                .client
                .get(format!("{base}/login"))
                .send()
                .await
                .unwrap();
            let csrf_cookie = cookie_pair(&r, "loa_login_csrf").unwrap();
            let html = r.text().await.unwrap();
            let csrf = hidden_csrf(&html);
            let r = self
                .client
                .post(format!("{base}/login"))
                .header("cookie", csrf_cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("csrf", &csrf),
                    ("name", name),
                    ("password", password),
                    ("next", "/"),
                ]))
                .send()
                .await
                .unwrap();
            *self.session.borrow_mut() = cookie_pair(&r, "loa_session");
            r.status().as_u16()
        })
    }

    fn get(&self, url: &str) -> Option<String> {
        self.rt.block_on(async {
            let mut req = self.client.get(url);
            if let Some(c) = self.session.borrow().as_ref() {
                req = req.header("cookie", c);
            }
            let r = req.send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.text().await.ok()
        })
    }
}

/// The demo admin's one-time password from `loa up`'s banner.
fn printed_password(out: &str) -> Option<String> {
    out.split("ĐĂNG NHẬP: tên admin, mật khẩu ")
        .nth(1)?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Http {
    /// POST a JSON body with a bearer token: the status code and the body.
    fn post(&self, url: &str, token: &str, body: String) -> (u16, String) {
        self.rt.block_on(async {
            match self
                .client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            }
        })
    }
}

/// docs/operations.md §3 against `loa up`'s collector: a new ward station makes its key with
/// `loa keygen`, is registered through the admin API (a wrong token is refused), starts, and
/// shows up online at the collector; then stops cleanly on SIGTERM.
fn enrol_another_station(root: &Path, base: &str, http: &Http, logs: &dyn Fn() -> String) {
    let loa = env!("CARGO_BIN_EXE_loa");
    let (sched, data) = (root.join("schedules"), root.join("var/station/phuong-moi"));
    std::fs::write(
        sched.join("phuong-moi.toml"),
        "id = \"phuong-moi\"\nname = \"Phường Mới\"\nkind = \"ward\"\narea_code = \"21199\"\n\
         quiet_hours = [\"21:30-05:00\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // No --dir: the layout's `var/station/phuong-moi`, where `loa station` looks.
    let keygen = Command::new(loa)
        .args(["keygen", "--station", "phuong-moi"])
        .current_dir(root)
        .env_remove("LOA_HOME")
        .output()
        .unwrap_or_else(|e| panic!("loa keygen: {e}"));
    assert!(keygen.status.success(), "{keygen:?}");
    let printed = String::from_utf8_lossy(&keygen.stdout).to_string();
    let key = read(&data.join("station.pub")).trim().to_string();
    assert_eq!(
        printed.trim(),
        format!("phuong-moi {key}"),
        "keygen prints `ID KEY`"
    );

    let token = read(&root.join("var/admin-token")).trim().to_string();
    assert!(token.len() >= 16, "loa up made an admin token");
    let body = serde_json::json!({
        "id": "phuong-moi", "name": "Phường Mới", "area_code": "21199", "public_key": key,
    })
    .to_string();
    let url = format!("{base}/api/v1/admin/stations");
    let (code, answer) = http.post(&url, "not-the-token-at-all", body.clone());
    assert_eq!(code, 401, "a wrong admin token is refused: {answer}");
    let (code, answer) = http.post(&url, &token, body);
    assert_eq!(code, 200, "{answer}\n{}", logs());
    assert!(answer.contains("\"created\":true"), "{answer}");

    // `loa register` with no --config writes the registry `loa up`'s collector reads.
    let other = Command::new(loa)
        .args(["keygen", "--station", "phuong-cli"])
        .current_dir(root)
        .env_remove("LOA_HOME")
        .output()
        .unwrap_or_else(|e| panic!("loa keygen: {e}"));
    assert!(other.status.success(), "{other:?}");
    let other_key = read(&root.join("var/station/phuong-cli/station.pub"))
        .trim()
        .to_string();
    let register = Command::new(loa)
        .args([
            "register",
            "--station",
            "phuong-cli",
            "--public-key",
            &other_key,
        ])
        .current_dir(root)
        .env_remove("LOA_HOME")
        .output()
        .unwrap_or_else(|e| panic!("loa register: {e}"));
    assert!(
        register.status.success()
            && String::from_utf8_lossy(&register.stdout).contains("var/collector.toml"),
        "{register:?}"
    );
    assert!(read(&root.join("var/collector.toml")).contains(&other_key));

    // No --schedules, --audio, --data or --collector: all from the layout (the collector's URL
    // is the one it recorded in var/collector.url).
    let mut station = Command::new(loa)
        .args(["station", "--station", "phuong-moi", "--output", "null"])
        .current_dir(root)
        .env_remove("LOA_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("loa station: {e}"));
    let since = Instant::now();
    let online = loop {
        let online = http
            .get(&format!("{base}/api/v1/stations/phuong-moi"))
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["online"] == true);
        if online || since.elapsed() > Duration::from_secs(30) {
            break online;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // SAFETY: kill(2) on the station this test started.
    unsafe { libc::kill(station.id() as i32, libc::SIGTERM) };
    let status = station.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        online,
        "the enrolled station did not show online within 30 s\n{}",
        logs()
    );
    assert_eq!(status.code(), Some(0), "enrolled station: {status}");
    let html = http.get(&format!("{base}/")).unwrap_or_default();
    assert!(
        html.contains("data-station=\"phuong-moi\" data-online=\"true\""),
        "{html}"
    );
}

/// For every station whose next airing `loa up`'s banner printed and which is still ahead, the
/// `loa status` line of that station names the same instant (`dd/mm HH:MM`, station-local).
/// Returns how many were compared.
fn same_next_airings(banner: &str, table: &str) -> usize {
    let now = chrono::Utc::now();
    let mut compared = 0;
    for line in banner.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = w.get(..3).and_then(|t| {
            chrono::DateTime::parse_from_str(&t.join(" "), "%Y-%m-%d %H:%M:%S %:z").ok()
        }) else {
            continue;
        };
        let Some(id) = w.get(3) else { continue };
        // The demo's changes every minute; one that has aired since the banner has moved on.
        if *id == "demo" || at.with_timezone(&chrono::Utc) < now + chrono::Duration::seconds(5) {
            continue;
        }
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("{id} not in loa status:\n{table}"));
        let shown = at.format("%d/%m %H:%M").to_string();
        assert!(
            row.contains(&shown),
            "{id}: banner says next airing {at}, loa status says:\n{row}\nbanner line: {line}"
        );
        compared += 1;
    }
    compared
}

#[test]
fn loa_up_airs_within_a_minute_and_stops_cleanly_on_ctrl_c() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = tmp.path();
    copy_dir(&repo.join("schedules"), &root.join("schedules"));
    copy_dir(&repo.join("audio"), &root.join("audio"));
    let schedules = std::fs::read_dir(root.join("schedules"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
                .count()
        })
        .unwrap_or(0);
    assert!(schedules > 0, "the repository ships sample schedules");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (out_path, err_path) = (root.join("up.out"), root.join("up.err"));
    let out = std::fs::File::create(&out_path).unwrap_or_else(|e| panic!("{e}"));
    let err = std::fs::File::create(&err_path).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["up", "--port", &port.to_string(), "--output", "wav"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start loa up: {e}"));
    let pid = child.id();
    let mut guard = Guard {
        child: Some(child),
        kids: Vec::new(),
    };
    let logs = || {
        format!(
            "--- loa up stdout ---\n{}\n--- loa up stderr (tail) ---\n{}",
            read(&out_path),
            read(&err_path)
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        )
    };

    let http = Http::new();
    let mut signed_in = false;

    // 1. An airing reaches the collector: the status API shows the demo's last airing, aired.
    let mut up_after = None;
    let demo_status = loop {
        if up_after.is_none() && read(&out_path).contains("DASHBOARD:") {
            up_after = Some(started.elapsed());
        }
        // Sign in with the password the banner printed, as the README says.
        if !signed_in && let Some(pw) = printed_password(&read(&out_path)) {
            assert_eq!(http.sign_in(&base, "admin", &pw), 303, "{}", logs());
            signed_in = true;
        }
        if let Some(Some(st)) = guard.child.as_mut().map(|c| c.try_wait().ok().flatten()) {
            panic!("loa up exited early ({st})\n{}", logs());
        }
        let body = http.get(&format!("{base}/api/v1/stations"));
        let demo = body
            .as_deref()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .and_then(|v| v.as_array().cloned())
            .and_then(|a| a.into_iter().find(|s| s["id"] == "demo"));
        if let Some(d) = demo.filter(|d| d["last_airing"]["outcome"] == "aired") {
            break d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(AIRING_DEADLINE_SECS),
            "no airing reached the collector within {AIRING_DEADLINE_SECS} s\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    println!(
        "system up after {up_after:?}; first airing at the collector after {:?}",
        started.elapsed()
    );
    assert_eq!(demo_status["online"], true, "{demo_status}");
    guard.kids = children_of(pid);
    assert_eq!(
        guard.kids.len(),
        schedules + 2,
        "one child per schedule, the demo and the collector: {:?}\n{}",
        guard.kids,
        logs()
    );

    // 2. The record itself, through the airings API.
    let month = demo_status["month"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let airings = http
        .get(&format!(
            "{base}/api/v1/stations/demo/airings?month={month}"
        ))
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .unwrap_or_else(|| panic!("GET airings failed\n{}", logs()));
    let aired: Vec<&serde_json::Value> = airings["airings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["record"]["outcome"] == "aired")
                .collect()
        })
        .unwrap_or_default();
    assert!(!aired.is_empty(), "{airings}");
    assert_eq!(aired[0]["record"]["slot"], "demo-ident", "{}", aired[0]);

    // 3. The dashboard shows it: the demo's row is online and its last airing aired ("đã phát").
    let html = http
        .get(&format!("{base}/"))
        .unwrap_or_else(|| panic!("GET /\n{}", logs()));
    let row = html
        .split("<tr data-station=\"demo\"")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no demo row on the dashboard:\n{html}"));
    assert!(row.starts_with(" data-online=\"true\""), "{row}");
    assert!(row.contains("đã phát"), "{row}");
    for id in ["phuong-tran-phu", "tp-quang-ngai"] {
        assert!(
            html.contains(&format!("data-station=\"{id}\"")),
            "{id} missing:\n{html}"
        );
    }

    // 4. `loa status` shows the same facts in a terminal table, with no flags: it finds the
    // collector `loa up` started (on a port that is not the default) through var/.
    let status = Command::new(env!("CARGO_BIN_EXE_loa"))
        .arg("status")
        .current_dir(root)
        .env_remove("LOA_HOME")
        .output()
        .unwrap_or_else(|e| panic!("loa status: {e}"));
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let header = table.lines().next().unwrap_or_default();
    for col in [
        "TRẠM",
        "TRẠNG THÁI",
        "LẦN PHÁT GẦN NHẤT",
        "SẮP PHÁT",
        "TỒN ĐỌNG",
        "THÁNG NÀY",
        "CẢNH BÁO",
    ] {
        assert!(header.contains(col), "{table}");
    }
    let demo_line = table
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap_or_else(|| panic!("no demo line:\n{table}"));
    assert!(demo_line.contains(" trực tuyến "), "{table}");
    assert!(demo_line.contains(" đã phát"), "{table}");
    assert_eq!(
        table.lines().count(),
        schedules + 2,
        "header + every station:\n{table}"
    );
    // The next airing is the same in `loa up`'s banner and in `loa status` (the stations'
    // heartbeats): one rule computes both.
    let compared = same_next_airings(&read(&out_path), &table);
    assert!(
        compared > 0,
        "no station's next airing to compare:\n{table}\n{}",
        logs()
    );

    // 4a. `loa export` with no --db or --config: the database and registry `loa up` uses.
    let export = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args([
            "export",
            "--month",
            &month,
            "--format",
            "csv",
            "--out",
            "report.csv",
        ])
        .current_dir(root)
        .env_remove("LOA_HOME")
        .output()
        .unwrap_or_else(|e| panic!("loa export: {e}"));
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert!(
        std::fs::metadata(root.join("report.csv")).is_ok_and(|m| m.len() > 0),
        "{export:?}"
    );

    // 4b. Enrol one more station against the running collector, as docs/operations.md §3 says:
    // `loa keygen`, the admin API with the token `loa up` made, then `loa station`.
    enrol_another_station(root, &base, &http, &logs);

    // 5. Ctrl-C: one SIGINT to `loa up` alone (its children run in their own process groups).
    // SAFETY: kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    let stop_started = Instant::now();
    let status = loop {
        let st = guard
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(st) = st {
            break st;
        }
        assert!(
            stop_started.elapsed() < Duration::from_secs(STOP_DEADLINE_SECS),
            "loa up did not stop within {STOP_DEADLINE_SECS} s of SIGINT\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("stopped in {:?}", stop_started.elapsed());
    let kids = std::mem::take(&mut guard.kids);
    guard.child = None;
    assert_eq!(status.code(), Some(0), "loa up: {status}\n{}", logs());
    for k in &kids {
        assert!(
            !Path::new(&format!("/proc/{k}")).exists(),
            "child {k} still exists after loa up exited\n{}",
            logs()
        );
    }
    let stdout = read(&out_path);
    assert!(stdout.contains("AUDIO OUTPUT: NO SOUND CARD"), "{stdout}");
    assert!(stdout.contains(&format!("DASHBOARD: {base}/")), "{stdout}");
    assert!(stdout.contains("Next airings"), "{stdout}");
    // The advice is what this test ran above, as typed (no flags: run from this directory).
    for cmd in ["\n  loa status ", "\n  loa export --month "] {
        assert!(stdout.contains(cmd), "banner advice {cmd:?}:\n{stdout}");
    }
    assert!(stdout.contains("everything stopped cleanly"), "{stdout}");

    // 6. Nothing lost: the demo's journal verifies, and every record the collector stored is
    // in it, byte for byte (the rest, if any, waits there for the next start).
    let var = root.join("var");
    let data = var.join("station/demo");
    let key = loa::keys::load(&data).unwrap_or_else(|e| panic!("{e}"));
    let journal =
        loa::journal::read_all(&loa::journal::journal_dir(&data)).unwrap_or_else(|e| panic!("{e}"));
    loa::journal::verify_chain(&journal, &key.verifying_key())
        .unwrap_or_else(|e| panic!("demo journal: {e}"));
    // `loa up` is the one-box demo: its collector's database is always the SQLite file
    // var/collector.db (it has no PostgreSQL option), whatever LOA_TEST_DB says.
    let store = loa::collector::store::Store::open(&var.join("collector.db"))
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = store
        .records_between(Some("demo"), 0, i64::MAX / 2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!stored.is_empty());
    assert!(stored.len() <= journal.len());
    for s in &stored {
        let j = journal
            .iter()
            .find(|j| j.parse().map(|r| r.seq).ok() == Some(s.seq))
            .unwrap_or_else(|| {
                panic!(
                    "seq {} stored at the collector but not in the journal",
                    s.seq
                )
            });
        assert_eq!(
            (j.hash.as_str(), j.bytes()),
            (s.hash.as_str(), s.bytes.as_str())
        );
    }

    // 7. What aired is in the demo's WAV: the chime, not silence.
    let wav: PathBuf = std::fs::read_dir(var.join("air/demo"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wav"))
        .unwrap_or_else(|| panic!("no WAV under var/air/demo"));
    let reader = hound::WavReader::open(&wav).unwrap_or_else(|e| panic!("{}: {e}", wav.display()));
    let peak = reader
        .into_samples::<f32>()
        .filter_map(Result::ok)
        .fold(0f32, |m, x| m.max(x.abs()));
    assert!(
        peak > 0.05,
        "{}: peak {peak}: the chime did not reach the output",
        wav.display()
    );
}
