//! Sync benchmark (issue #14): N simulated stations sync a new 15-minute episode from one real
//! collector on loopback.
//!
//! ```text
//! cargo build --release --bin loa
//! cargo run --release --example bench_sync -- [--stations 1000] [--concurrency 100] [--cut F] [--keep]
//! ```
//!
//! Set-up (not timed): starts the real `loa collector` binary (`LOA_BIN`, default the release
//! `loa` next to this example's directory) in a temp `LOA_HOME`; defines the shared program
//! `cchc` (`PUT /api/v1/programs`); uploads a real 15-minute 64 kbit/s mono MP3 of pink noise
//! (~7.2 MB; made once with sox and lame as tests/station_sync_e2e.rs makes it, cached in
//! `target/bench-fixtures/`) with `loa content add … --program cchc --month <this month>`; then,
//! per station, creates it (`POST /api/v1/admin/enrolments`), enrols a fresh Ed25519 key with the
//! code (`POST /api/v1/enrol`), pins the centre key from the answer and publishes its schedule
//! (`PUT /api/v1/stations/{id}/schedule`: one slot airing `program:cchc`, the shared program).
//!
//! Timed: N stations, at most `--concurrency` at once, each running the sync round of
//! `station::sync::agent` through the same public functions (see [`sync_one`]): the
//! station-signed manifest request, Ed25519 verification of the centre-signed manifest against
//! the pinned key, download with Range resume, SHA-256 and size check into its own `content/`,
//! staging, `active` written — each with its own data directory. All traffic goes through a
//! counting TCP proxy that connects to the collector from each station's own loopback address
//! (127.20.x.y; the collector allows 64 connections per address) and counts the answer bytes per
//! station (by the requests' `x-loa-station`); with `--cut F` it drops each station's first
//! connection once F of the file's size has been answered on it, so the station resumes with
//! Range.
//!
//! Prints: time until all hold the file verified (and until all staged), p50/p99/max per
//! station, bytes served per station (min/mean/max, and beyond the file), errors, the
//! collector's peak RSS (VmHWM; reset through `/proc/PID/clear_refs` before the timed part, so
//! it is the sync's own peak).
//! Asserts nothing but exits non-zero when a station did not finish. `--keep` keeps the temp
//! directory (its path is printed).

use anyhow::{Context as _, bail};
use ed25519_dalek::SigningKey;
use loa::centre::Envelope;
use loa::centre::signed::MAX_ENVELOPE_BYTES;
use loa::station::sync::agent::{
    ATTEMPT_WAIT_MAX_MS, ATTEMPT_WAIT_MIN_MS, Verdict, judge, wanted_of,
};
use loa::station::sync::{FILE_ATTEMPTS, Store, SyncError, fetch};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const PROGRAM: &str = "[[programs]]\nid = \"cchc\"\ntitle = \"Cải cách hành chính\"\ncategory = \"cchc\"\nepisodes = \"cchc/{yyyy}-{mm}.mp3\"\n";
/// Longest a station may take before it counts as failed.
const STATION_LIMIT: Duration = Duration::from_secs(300);

struct Args {
    stations: usize,
    concurrency: usize,
    cut: Option<f64>,
    keep: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        stations: 1000,
        concurrency: 100,
        cut: None,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut value = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--stations" => a.stations = value()?.parse()?,
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--cut" => {
                let f: f64 = value()?.parse()?;
                if !(f > 0.0 && f < 1.0) {
                    bail!("--cut takes a fraction between 0 and 1, not {f}");
                }
                a.cut = Some(f);
            }
            "--keep" => a.keep = true,
            _ => bail!(
                "usage: bench_sync [--stations N] [--concurrency C] [--cut FRACTION] [--keep]"
            ),
        }
    }
    if a.stations == 0 || a.concurrency == 0 {
        bail!("--stations and --concurrency must be at least 1");
    }
    Ok(a)
}

/// The `loa` binary: `LOA_BIN`, or the one built beside this example (target/release/loa).
fn loa_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("LOA_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("loa"))
        .context("no directory above the example")?;
    if !p.is_file() {
        bail!(
            "{} not found: `cargo build --release --bin loa` first, or set LOA_BIN",
            p.display()
        );
    }
    Ok(p)
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The episode: 15 minutes of pink noise, mono, 64 kbit/s CBR MP3 (made once, cached).
fn episode() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-fixtures");
    let mp3 = dir.join("episode-900s-64k.mp3");
    if mp3.is_file() {
        return Ok(mp3);
    }
    std::fs::create_dir_all(&dir)?;
    let wav = dir.join("episode-900s.wav");
    let part = dir.join("episode-900s-64k.mp3.part");
    run_ok(
        Command::new("sox")
            .args(["-n", "-r", "44100", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", "900", "pinknoise", "vol", "0.25"]),
    )
    .context("sox (apt-get install sox)")?;
    run_ok(
        Command::new("lame")
            .args(["--quiet", "--cbr", "-b", "64"])
            .arg(&wav)
            .arg(&part),
    )
    .context("lame (apt-get install lame)")?;
    std::fs::remove_file(&wav)?;
    std::fs::rename(&part, &mp3)?;
    Ok(mp3)
}

/// The real collector binary in `home`.
struct Collector {
    child: Child,
    url: String,
    token: String,
    token_file: PathBuf,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Collector {
    fn start(loa: &Path, home: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(home)?;
        // A template station defining program cchc, as tests/station_sync_e2e.rs has it, so
        // the episode can be assigned before any station's version uses the program.
        let template = home.join("mau.toml");
        std::fs::write(
            &template,
            format!(
                "id = \"mau\"\nname = \"Mẫu\"\nkind = \"ward\"\narea_code = \"21100\"\n\n{PROGRAM}"
            ),
        )?;
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        std::fs::write(
            home.join("collector.toml"),
            format!(
                "[[station]]\nid = \"mau\"\nname = \"Mẫu\"\narea_code = \"21100\"\npublic_key = \"{}\"\nschedule = \"{}\"\naudio_root = \"{}\"\n",
                loa::wire::encode_public_key(&key),
                template.display(),
                home.join("collector/library/tree").display()
            ),
        )?;
        let db = home.join("collector.db");
        run_ok(
            Command::new(loa)
                .args(["user", "add", "boss", "--role", "admin", "--db"])
                .arg(&db),
        )?;
        let token = run_ok(
            Command::new(loa)
                .args(["user", "token", "boss", "--db"])
                .arg(&db),
        )?;
        let token_file = home.join("token");
        std::fs::write(&token_file, &token)?;
        let log = home.join("collector.log");
        let child = Command::new(loa)
            .args(["collector", "--listen", "127.0.0.1:0"])
            .env("LOA_HOME", home)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut c = Self {
            child,
            url: String::new(),
            token,
            token_file,
        };
        let t0 = Instant::now();
        c.url = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(i) = text.find("listening on ") {
                break text[i + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("the collector did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Ok(c)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A `/proc/PID/status` field in kB.
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("?".into(), |k| format!("{:.1} MB", k as f64 * 1024.0 / 1e6))
}

/// What the proxy saw.
#[derive(Default)]
struct Seen {
    /// Answer bytes per station (every connection whose requests named it).
    served: Mutex<HashMap<String, u64>>,
    /// Answer bytes on connections that named no station.
    unattributed: AtomicU64,
    /// Stations whose connection was cut.
    cut: Mutex<HashSet<String>>,
    requests: AtomicU64,
    ranged: AtomicU64,
}

/// Note a chunk of requests: the station it names, GET requests, Range headers.
fn note(seen: &Seen, chunk: &[u8], station: &OnceLock<String>) {
    for line in String::from_utf8_lossy(chunk).lines() {
        let l = line.to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("x-loa-station:") {
            let _ = station.set(v.trim().to_string());
        } else if l.starts_with("range:") {
            seen.ranged.fetch_add(1, Ordering::Relaxed);
        } else if l.starts_with("get ") {
            seen.requests.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The loopback address station `tram-NNNNN` connects from (127.20.x.y): the collector allows
/// each address at most 64 connections, as it would see 1,000 real stations.
fn source_ip(station: &str) -> Option<std::net::IpAddr> {
    let n: u32 = station.strip_prefix("tram-")?.parse().ok()?;
    let n = n + 1;
    Some(std::net::Ipv4Addr::new(127, 20, (n >> 8) as u8, (n & 0xff) as u8).into())
}

/// A counting TCP proxy to `upstream`; the connection to the collector is made once the first
/// request names its station, from that station's own loopback address. `cut_at`: answer bytes
/// on a connection after which that station's connection is dropped, once per station.
async fn proxy(
    l: TcpListener,
    upstream: std::net::SocketAddr,
    cut_at: Option<u64>,
    seen: Arc<Seen>,
) {
    while let Ok((client, _)) = l.accept().await {
        let seen = seen.clone();
        tokio::spawn(async move {
            let (mut cr, mut cw) = client.into_split();
            let station: Arc<OnceLock<String>> = Arc::default();
            let mut first = vec![0u8; 16 * 1024];
            let n = match cr.read(&mut first).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            note(&seen, &first[..n], &station);
            let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
                return;
            };
            if let Some(ip) = station.get().and_then(|s| source_ip(s))
                && sock.bind(std::net::SocketAddr::new(ip, 0)).is_err()
            {
                return;
            }
            let Ok(server) = sock.connect(upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let (mut sr, mut sw) = server.into_split();
            let st = station.clone();
            let s2 = seen.clone();
            let requests = async move {
                if sw.write_all(&first[..n]).await.is_ok() {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        note(&s2, &buf[..n], &st);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
                let _ = sw.shutdown().await;
                std::future::pending::<()>().await;
            };
            let answers = async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut sent = 0u64;
                loop {
                    let mut n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n as u64,
                    };
                    let id = station.get().cloned();
                    let mut cutting = false;
                    if let (Some(at), Some(id)) = (cut_at, id.as_ref())
                        && sent + n >= at
                        && seen.cut.lock().is_ok_and(|mut c| c.insert(id.clone()))
                    {
                        n = at.saturating_sub(sent);
                        cutting = true;
                    }
                    if cw.write_all(&buf[..n as usize]).await.is_err() {
                        break;
                    }
                    sent += n;
                    match id {
                        Some(id) => {
                            if let Ok(mut m) = seen.served.lock() {
                                *m.entry(id).or_default() += n;
                            }
                        }
                        None => {
                            seen.unattributed.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                    if cutting {
                        break;
                    }
                }
            };
            // The connection ends with the answers (a cut drops both directions).
            tokio::select! {
                _ = requests => {}
                _ = answers => {}
            }
        });
    }
}

/// A station's id and key (deterministic from its number, unique).
fn station(i: usize) -> (String, SigningKey) {
    let id = format!("tram-{i:05}");
    let seed: [u8; 32] = Sha256::digest(format!("bench-sync {id}")).into();
    (id, SigningKey::from_bytes(&seed))
}

fn schedule(id: &str, today: chrono::NaiveDate) -> String {
    use chrono::Datelike as _;
    let next = if today.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1)
    };
    let last = next.and_then(|d| d.pred_opt()).unwrap_or(today);
    format!(
        "id = \"{id}\"\nname = \"Phường {id}\"\nkind = \"ward\"\narea_code = \"21193\"\n\n[[slots]]\nid = \"cchc\"\ncron = \"0 0 3 * * *\"\nfrom = {today}\nuntil = {last}\nplay = [\"program:cchc\"]\nmax_minutes = 20\n"
    )
}

async fn send_json(
    r: reqwest::RequestBuilder,
    want: u16,
    what: &str,
) -> anyhow::Result<serde_json::Value> {
    let r = r.send().await.with_context(|| what.to_string())?;
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    if s != want {
        bail!("{what}: HTTP {s}: {v}");
    }
    Ok(v)
}

/// Create, enrol (key, pin) and publish station `i` under `root`.
async fn set_up(
    http: &reqwest::Client,
    c: &(String, String),
    root: &Path,
    i: usize,
    today: chrono::NaiveDate,
) -> anyhow::Result<()> {
    let (url, token) = c;
    let (id, key) = station(i);
    let body = serde_json::json!({
        "id": id, "name": format!("Phường {id}"), "area_code": "21193", "kind": "ward",
        "operators": [],
    });
    let v = send_json(
        http.post(format!("{url}/api/v1/admin/enrolments"))
            .bearer_auth(token)
            .json(&body),
        201,
        "create station",
    )
    .await?;
    let code = v["code"].as_str().context("no code")?;
    let v = send_json(
        http.post(format!("{url}/api/v1/enrol"))
            .json(&serde_json::json!({
                "code": code,
                "public_key": loa::wire::encode_public_key(&key.verifying_key()),
            })),
        200,
        "enrol",
    )
    .await?;
    let centre = v["centre"]["key"].as_str().context("no centre key")?;
    let centre = loa::wire::decode_public_key(centre)?;
    let data = root.join(&id);
    std::fs::create_dir_all(&data)?;
    loa::centre::pin::pin_first(&data, &centre)?;
    send_json(
        http.put(format!("{url}/api/v1/stations/{id}/schedule"))
            .bearer_auth(token)
            .header("content-type", "application/toml")
            .body(schedule(&id, today)),
        201,
        "publish",
    )
    .await?;
    Ok(())
}

/// What one station's sync did.
struct Synced {
    /// From its start until it holds every file of the version verified.
    verified: Duration,
    /// When that was.
    verified_at: Instant,
    /// Until the version is staged and `active` written.
    staged: Duration,
    /// Attempts at a file that were cut and resumed.
    resumed: u32,
}

/// One station's round, as `station::sync::agent` runs it, through the same public functions:
/// the station-signed manifest request, `centre::manifest::open` against the pinned key (Ed25519),
/// `Store::missing`, `fetch::fetch` with up to `FILE_ATTEMPTS` attempts each resuming from the
/// part file (SHA-256 and size checked by `Store::admit`), `Store::stage`, `active` written.
/// Left out: `agent::validate_staged` (the schedule loaded as `loa check` does, which decodes the
/// 15-minute MP3 to its end: ~2 s per station on this machine, spent on each station's own CPU,
/// not the collector's).
async fn sync_one(i: usize, root: PathBuf, base: String, size: u64) -> anyhow::Result<Synced> {
    let t0 = Instant::now();
    let (id, key) = station(i);
    let data = root.join(&id);
    let store = Store::new(&data);
    let client = fetch::client(&base)?;
    let (k, st) = (key.clone(), id.clone());
    let sign = move |path: &str| -> Vec<(&'static str, String)> {
        loa::centre::request::sign(&k, &st, "GET", path, chrono::Utc::now())
            .pairs()
            .iter()
            .map(|(k, v)| (*k, (*v).to_string()))
            .collect()
    };
    let timeout = Duration::from_secs(fetch::READ_TIMEOUT_SECS);
    // The manifest, station-signed.
    let path = format!("/api/v1/stations/{id}/manifest");
    let mut req = client.get(format!("{base}{path}"));
    for (k, v) in sign(&path) {
        req = req.header(k, v);
    }
    let resp = tokio::time::timeout(timeout, req.send())
        .await
        .context("manifest: no answer in time")??;
    if resp.status().as_u16() != 200 {
        bail!("{id}: manifest: HTTP {}", resp.status());
    }
    let bytes = tokio::time::timeout(timeout, resp.bytes())
        .await
        .context("manifest: body stalled")??;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        bail!("{id}: manifest larger than {MAX_ENVELOPE_BYTES} bytes");
    }
    let pinned = loa::centre::pin::load(&data)?;
    let env = Envelope::decode(&bytes)?;
    let m = loa::centre::manifest::open(&env, &pinned.keys(), &id, None)?;
    if judge(store.active()?, m.version) != Verdict::Take {
        bail!("{id}: version {} is not news", m.version);
    }
    let wanted = wanted_of(&m);
    let (missing, needed) = store.missing(&wanted.files);
    if needed != size {
        bail!("{id}: the manifest asks for {needed} bytes, the episode is {size}");
    }
    let src = fetch::Source {
        client: &client,
        base: &base,
        sign: &sign,
        read_timeout: timeout,
    };
    let mut resumed = 0;
    for f in missing {
        let mut attempt = 1;
        loop {
            match fetch::fetch(&src, &store, f).await {
                Ok(got) => {
                    if got.resumed_from > 0 {
                        resumed += 1;
                    }
                    break;
                }
                Err(SyncError::Unreachable(_)) if attempt < FILE_ATTEMPTS => {
                    tokio::time::sleep(loa::shipper::backoff_delay(
                        attempt,
                        ATTEMPT_WAIT_MIN_MS,
                        ATTEMPT_WAIT_MAX_MS,
                    ))
                    .await;
                    attempt += 1;
                }
                Err(e) => bail!("{id}: {}: {e}", e.code().as_str()),
            }
        }
    }
    let verified = t0.elapsed();
    let (s, n) = (store.clone(), m.version);
    tokio::task::spawn_blocking(move || {
        s.stage(&wanted, &bytes)?;
        s.write_active(n)
    })
    .await??;
    Ok(Synced {
        verified,
        verified_at: t0 + verified,
        staged: t0.elapsed(),
        resumed,
    })
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .map_or(f64::NAN, Duration::as_secs_f64)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let loa = loa_bin()?;
    let mp3 = episode()?;
    let bytes = std::fs::read(&mp3)?;
    let (size, sha) = (bytes.len() as u64, hex::encode(Sha256::digest(&bytes)));
    drop(bytes);
    let tmp = tempfile::Builder::new().prefix("bench-sync-").tempdir()?;
    let root = tmp.path().join("stations");
    let collector = Collector::start(&loa, &tmp.path().join("centre"))?;
    println!(
        "fixture: {} (15 min, 64 kbit/s mono MP3, {} bytes, SHA-256 {}…); collector {} at {}",
        mp3.display(),
        thousands(size),
        &sha[..12],
        loa.display(),
        collector.url
    );
    let rt = tokio::runtime::Runtime::new()?;
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Ho_Chi_Minh);
    let month = now.format("%Y-%m").to_string();
    let today = now.date_naive();
    let http = reqwest::Client::builder()
        .tls_certs_only(Vec::new())
        .timeout(Duration::from_secs(60))
        .build()?;
    let c = (collector.url.clone(), collector.token.clone());

    // Set-up (not timed): the shared program, the upload, the stations.
    let t_setup = Instant::now();
    rt.block_on(send_json(
        http.put(format!("{}/api/v1/programs", c.0))
            .bearer_auth(&c.1)
            .body(PROGRAM),
        201,
        "shared programs",
    ))?;
    let out = run_ok(
        Command::new(&loa)
            .args(["content", "add"])
            .arg(&mp3)
            .args([
                "--title",
                &format!("CCHC {month}"),
                "--category",
                "cchc",
                "--month",
                &month,
                "--program",
                "cchc",
                "--collector",
                &c.0,
                "--token-file",
            ])
            .arg(&collector.token_file),
    )?;
    if !out.contains("cchc/") {
        bail!("the upload was not assigned: {out}");
    }
    rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..a.stations {
            let (http, c, root, sem) = (http.clone(), c.clone(), root.clone(), sem.clone());
            set.spawn(async move {
                let _p = sem.acquire_owned().await?;
                set_up(&http, &c, &root, i, today)
                    .await
                    .with_context(|| format!("station {i}"))
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })?;
    let setup_peak = proc_kb(collector.pid(), "VmHWM");
    println!(
        "set-up: {} stations created, enrolled and published in {:.1} s (not counted); collector RSS {} (peak so far {})",
        a.stations,
        t_setup.elapsed().as_secs_f64(),
        mb(proc_kb(collector.pid(), "VmRSS")),
        mb(setup_peak)
    );
    // The sync's own peak: reset the collector's high-water mark (Linux ≥ 4.0).
    let reset = std::fs::write(format!("/proc/{}/clear_refs", collector.pid()), "5").is_ok();

    // Timed: N agents, `concurrency` at once, through the counting proxy.
    let seen = Arc::new(Seen::default());
    let cut_at = a.cut.map(|f| (size as f64 * f) as u64);
    let (results, t0, done) = rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", l.local_addr()?);
        let upstream: std::net::SocketAddr = c.0.trim_start_matches("http://").parse()?;
        tokio::spawn(proxy(l, upstream, cut_at, seen.clone()));
        let sem = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..a.stations {
            let (root, base, sem) = (root.clone(), base.clone(), sem.clone());
            set.spawn(async move {
                let _p = sem.acquire_owned().await?;
                tokio::time::timeout(STATION_LIMIT, sync_one(i, root, base, size))
                    .await
                    .with_context(|| {
                        format!("station {i}: not done in {} s", STATION_LIMIT.as_secs())
                    })?
            });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.push(r.map_err(anyhow::Error::from).and_then(|r| r));
        }
        anyhow::Ok((results, t0, t0.elapsed()))
    })?;
    let peak = proc_kb(collector.pid(), "VmHWM");

    let mut times: Vec<Duration> = Vec::new();
    let mut last_verified = t0;
    let (mut resumed, mut failed) = (0u32, 0usize);
    let mut staged_max = Duration::ZERO;
    for r in &results {
        match r {
            Ok(s) => {
                times.push(s.verified);
                last_verified = last_verified.max(s.verified_at);
                staged_max = staged_max.max(s.staged);
                resumed += s.resumed;
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e:#}");
            }
        }
    }
    times.sort();
    let all = last_verified - t0;
    let served = seen.served.lock().map(|m| m.clone()).unwrap_or_default();
    let per: Vec<u64> = (0..a.stations)
        .map(|i| served.get(&station(i).0).copied().unwrap_or(0))
        .collect();
    let total: u64 = per.iter().sum();
    let (min, max) = (
        per.iter().copied().min().unwrap_or(0),
        per.iter().copied().max().unwrap_or(0),
    );
    let mean = total / a.stations as u64;
    println!(
        "sync: {} stations, {} at once{}: all hold the file verified in {:.1} s \
         (all staged and active {:.1} s); per station p50/p99/max {:.2}/{:.2}/{:.2} s (slowest staged {:.2} s)",
        times.len(),
        a.concurrency,
        a.cut
            .map(|f| format!(
                ", each station's first connection cut after {:.0} % of the file",
                f * 100.0
            ))
            .unwrap_or_default(),
        all.as_secs_f64(),
        done.as_secs_f64(),
        pct(&times, 0.5),
        pct(&times, 0.99),
        times.last().map_or(f64::NAN, Duration::as_secs_f64),
        staged_max.as_secs_f64()
    );
    println!(
        "bytes served per station (answers through the proxy: manifest, file, headers): min/mean/max {}/{}/{} \
         = the file ({}) + {}/{}/{}; {} GET requests, {} with Range, {} connections cut; {} bytes on no station's connection",
        thousands(min),
        thousands(mean),
        thousands(max),
        thousands(size),
        thousands(min.saturating_sub(size)),
        thousands(mean.saturating_sub(size)),
        thousands(max.saturating_sub(size)),
        thousands(seen.requests.load(Ordering::Relaxed)),
        thousands(seen.ranged.load(Ordering::Relaxed)),
        seen.cut.lock().map(|c| c.len()).unwrap_or(0),
        thousands(seen.unattributed.load(Ordering::Relaxed)),
    );
    println!(
        "errors: {failed} stations not done; {resumed} downloads resumed after a cut; \
         collector peak RSS during the sync {}{} (set-up peak {})",
        mb(peak),
        if reset {
            ""
        } else {
            " (high-water mark not reset: includes the set-up)"
        },
        mb(setup_peak)
    );
    if a.keep {
        let p = tmp.keep();
        println!("kept: {}", p.display());
    }
    drop(collector);
    if failed > 0 {
        bail!("{failed} stations did not finish");
    }
    Ok(())
}
