//! Fan-out benchmark of the push channel (issue #15; docs/bulletins.md, "Benchmarks"): the real
//! collector binary (`target/release/loa collector`, its own process, its state in a temp
//! `$LOA_HOME`) with STATIONS registered stations (default 10,000), each with its own Ed25519
//! key; each simulated station opens one push stream (`GET /api/v1/stations/{id}/events`) with
//! a station-signed request, from its own loopback source address group (PER_ADDR stations per
//! address, default 50: the collector's per-address cap is 64, as stations behind one NAT); once
//! all are connected the collector's RSS is read from `/proc/<pid>/status` (VmRSS, VmHWM) with
//! that many idle streams; then an admin sends one bulletin targeting all (a real library item,
//! signed by the centre key), and each simulated station parses the event with the station's own
//! parser (`station::push::Parser`), verifies the envelope with the real `bulletin::check`
//! (Ed25519 under the centre key it pinned from `GET /api/v1/centre`, targets, window) and
//! records when it was done. Printed: p50/p99/max from just before the send's POST to each
//! station's verified receipt, how many received, the collector's RSS, the bulletin's size and
//! the load average (the machine is shared: say so beside any figure).
//!
//! All simulated stations run as tasks of one tokio runtime (2 worker threads) in this process;
//! the open-files limit of both processes is raised to its hard limit (10,000 streams need
//! 10,000 descriptors on each side).
//!
//! Run: `cargo build --release --bin loa && cargo run --release --example bench_fanout --
//! [--stations N] [--per-addr N] [--loa PATH]` (`--loa` defaults to `target/release/loa`).

use chrono::Utc;
use ed25519_dalek::SigningKey;
use loa::collector::accounts::{self, Role};
use loa::station::push::Parser;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// The same /proc readings as the fleet simulator's (its collector module, self-contained).
#[allow(dead_code)]
#[path = "sim_fleet/collector.rs"]
mod sim_collector;
use sim_collector::{loadavg, rss_mb};

struct Args {
    stations: usize,
    per_addr: usize,
    loa: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        stations: 10_000,
        per_addr: 50,
        loa: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/loa"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--stations" => a.stations = v.parse().expect("--stations N"),
            "--per-addr" => a.per_addr = v.parse().expect("--per-addr N"),
            "--loa" => a.loa = PathBuf::from(v),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn station_id(i: usize) -> String {
    format!("p{i:05}")
}

fn area(i: usize) -> String {
    format!("79{:03}", i % 1000)
}

fn key(i: usize) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

/// The loopback source address of station `i`'s group.
fn source(i: usize, per_addr: usize) -> IpAddr {
    let g = i / per_addr.max(1);
    IpAddr::V4(Ipv4Addr::new(127, 1, (g / 250) as u8, (g % 250 + 1) as u8))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let limits = loa::collector::http::raise_open_files_limit();
    println!(
        "fixture: {} stations, {} per source address; open files (soft, hard) {limits:?}; load avg {}",
        a.stations,
        a.per_addr,
        loadavg()
    );
    assert!(
        a.loa.is_file(),
        "{} missing: cargo build --release --bin loa",
        a.loa.display()
    );

    // The collector's state: the registry, an admin and their token.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("collector/library/tree")).unwrap();
    let keys: Vec<SigningKey> = (0..a.stations).map(key).collect();
    let mut reg = String::with_capacity(a.stations * 160);
    for (i, k) in keys.iter().enumerate() {
        reg.push_str(&format!(
            "[[station]]\nid = \"{}\"\nname = \"Phường {i}\"\narea_code = \"{}\"\npublic_key = \"{}\"\n",
            station_id(i),
            area(i),
            loa::wire::encode_public_key(&k.verifying_key())
        ));
    }
    std::fs::write(home.path().join("collector.toml"), reg).unwrap();
    let token = {
        let mut c = loa::collector::Store::open(&home.path().join("collector.db"))
            .unwrap()
            .into_connection();
        let now = Utc::now();
        accounts::add_user(&mut c, "lan", Role::Admin, &[], "mat-khau-that-dai-1", now).unwrap();
        let u = accounts::find_user(&c, "lan").unwrap().unwrap();
        accounts::create_token(&c, &u, "bench", now).unwrap().0
    };

    // The real collector, in its own process.
    let t0 = Instant::now();
    let mut child = std::process::Command::new(&a.loa)
        .args(["collector", "--listen", "127.0.0.1:0"])
        .env("LOA_HOME", home.path())
        .env("LOA_LOG", "warn,loa::collector::http=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let base = {
        use std::io::{BufRead, BufReader};
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines.next().expect("the collector exited").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().to_string();
            }
        };
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if l.contains("WARN") || l.contains("ERROR") {
                    eprintln!("collector: {l}");
                }
            }
        });
        base
    };
    println!(
        "collector up in {:.1} s; RSS {:.1} MB",
        t0.elapsed().as_secs_f64(),
        rss_mb(pid).0
    );

    let admin = reqwest::Client::new();
    let tone = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg");
    let sha = loa::media::sha256_file(&tone).unwrap();
    let r = admin
        .post(format!(
            "{base}/api/v1/content?title=B%E1%BA%A3n%20tin&category=notice"
        ))
        .bearer_auth(&token)
        .body(std::fs::read(&tone).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let centre: serde_json::Value = admin
        .get(format!("{base}/api/v1/centre"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pinned = loa::wire::decode_public_key(centre["key"].as_str().unwrap()).unwrap();

    // One client per source address (its pool holds that group's streams).
    let groups = a.stations.div_ceil(a.per_addr.max(1));
    let clients: Vec<reqwest::Client> = (0..groups)
        .map(|g| {
            reqwest::Client::builder()
                .local_address(source(g * a.per_addr, a.per_addr))
                .connect_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap()
        })
        .collect();

    // Each station: connect (at most 256 connecting at once), then wait for the bulletin.
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let (sent_tx, sent_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = tokio::task::JoinSet::new();
    let t_connect = Instant::now();
    for (i, k) in keys.into_iter().enumerate() {
        let client = clients[i / a.per_addr.max(1)].clone();
        let (base, connected, failed, gate) = (
            base.clone(),
            connected.clone(),
            failed.clone(),
            gate.clone(),
        );
        let mut sent_rx = sent_rx.clone();
        tasks.spawn(async move {
            let id = station_id(i);
            let area = area(i);
            let pq = format!("/api/v1/stations/{id}/events");
            let permit = gate.acquire_owned().await.ok();
            let h = loa::centre::request::sign(&k, &id, "GET", &pq, Utc::now());
            let mut req = client.get(format!("{base}{pq}"));
            for (n, v) in h.pairs() {
                req = req.header(n, v);
            }
            let mut resp = match req.send().await {
                Ok(r) if r.status() == 200 => r,
                Ok(r) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("{id}: {}", r.status());
                    }
                    return None;
                }
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("{id}: {e}");
                    }
                    return None;
                }
            };
            drop(permit);
            connected.fetch_add(1, Ordering::Relaxed);
            let mut parser = Parser::new(None);
            loop {
                let chunk = match tokio::time::timeout(Duration::from_secs(120), resp.chunk()).await
                {
                    Ok(Ok(Some(c))) => c,
                    _ => return None,
                };
                let events = match parser.push(&chunk) {
                    Ok(e) => e,
                    Err(_) => return None,
                };
                let arrived = Instant::now();
                for e in events {
                    if e.event != "bulletin" {
                        continue;
                    }
                    let env = loa::centre::Envelope::decode(e.data.as_bytes()).ok()?;
                    let ok =
                        loa::bulletin::check(&env, &id, &area, &[pinned], Utc::now(), &|_, _| {
                            false
                        });
                    if ok.is_err() {
                        eprintln!("{id}: refused {ok:?}");
                        return None;
                    }
                    let at = Instant::now();
                    let sent = (*sent_rx.wait_for(Option::is_some).await.ok()?)?;
                    return Some((arrived.duration_since(sent), at.duration_since(sent)));
                }
            }
        });
    }
    drop(sent_rx);
    loop {
        let (c, f) = (
            connected.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        );
        if c + f >= a.stations {
            break;
        }
        if t_connect.elapsed() > Duration::from_secs(600) {
            println!("gave up waiting: {c} connected, {f} failed");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let connected_n = connected.load(Ordering::Relaxed);
    println!(
        "{connected_n} streams connected ({} failed) in {:.1} s; load avg {}",
        failed.load(Ordering::Relaxed),
        t_connect.elapsed().as_secs_f64(),
        loadavg()
    );
    // Idle: let the connect burst settle, past one keep-alive period.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (rss, hwm) = rss_mb(pid);
    println!(
        "collector with {connected_n} idle streams: VmRSS {rss:.1} MB, VmHWM {hwm:.1} MB (target RSS ≤ 200 MB); load avg {}",
        loadavg()
    );

    // The send: an emergency bulletin to all.
    let now = Utc::now();
    let t_send = Instant::now();
    let _ = sent_tx.send(Some(t_send));
    let r = admin
        .post(format!("{base}/api/v1/bulletins"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "title": "Cảnh báo bão số 5: người dân không ra khơi",
            "audio": sha,
            "priority": "emergency",
            "to": "all",
            "not_before": now.to_rfc3339(),
            "not_after": (now + chrono::Duration::hours(1)).to_rfc3339(),
        }))
        .send()
        .await
        .unwrap();
    let post_ms = t_send.elapsed();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let size = body["envelope"].to_string().len();
    let (mut arrived, mut got) = (
        Vec::with_capacity(a.stations),
        Vec::with_capacity(a.stations),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(r)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        if let Ok(Some((arr, ver))) = r {
            arrived.push(arr);
            got.push(ver);
        }
    }
    arrived.sort();
    got.sort();
    let (rss2, hwm2) = rss_mb(pid);
    println!(
        "bulletin: envelope {size} bytes; POST answered in {}",
        ms(post_ms)
    );
    println!(
        "send → verified receipt at {} of {} stations: p50 {}, p99 {}, max {} (target p99 ≤ 1 s); load avg {}",
        got.len(),
        a.stations,
        ms(percentile(&got, 0.50)),
        ms(percentile(&got, 0.99)),
        ms(got.last().copied().unwrap_or_default()),
        loadavg()
    );
    println!(
        "send → event read (before the check; the station tasks share 2 cores with the collector): p50 {}, p99 {}, max {}",
        ms(percentile(&arrived, 0.50)),
        ms(percentile(&arrived, 0.99)),
        ms(arrived.last().copied().unwrap_or_default()),
    );
    println!("collector after the fan-out: VmRSS {rss2:.1} MB, VmHWM {hwm2:.1} MB");
    tasks.abort_all();
    let _ = child.kill();
    let _ = child.wait();
}
