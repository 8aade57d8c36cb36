//! The fleet simulator (issue #16 item 4; docs/sim.md): N simulated stations with real keys and
//! real signatures air a plan on a compressed clock against the real collector, heartbeat, ship
//! signed hash-chained batches, keep one push stream each and answer a bulletin with a receipt;
//! optionally the collector is killed (SIGKILL) and restarted mid-run. Printed: per request kind
//! count, errors, p50/p99/max; the bulletin's send → received → verified → receipt and a
//! station's own check; the CPU used by the simulator, each replica and the database server;
//! and the verdict read from the database: every record produced stored exactly once (exit 1
//! otherwise).
//!
//! Run: `cargo build --release --bin loa && cargo run --release --example sim_fleet --
//! --stations 1000 --minutes 5 --speed 60 [--kill-at 2] [--bulletin-at 3] ...` (`--help`).
//! The core is in `examples/sim_fleet/`, shared with `tests/sim_fleet.rs`.

#[path = "sim_fleet/mod.rs"]
mod sim;

use std::path::PathBuf;

const HELP: &str = "\
sim_fleet: a fleet of simulated stations against the real collector (docs/sim.md)

  --stations N          stations (default 1000)
  --minutes M           real minutes of load (default 5)
  --speed X             simulated seconds per real second (default 60: an hour a minute)
  --start-at HH:MM      simulated local time (UTC+07:00) at the start (default 05:00)
  --items N             items per session (default 2); --item-secs S their length (default 900)
  --heartbeat-secs S    heartbeat period, real time (default 60, the station's)
  --timeout-secs S      every request's timeout (default 30, the station's)
  --per-addr N          stations per loopback source address (default 25; the cap is 64)
  --bulletin-at MIN     send one emergency bulletin to all at that real minute
  --kill-at MIN         SIGKILL the collector at that real minute, restart it after --down-secs (3)
  --drain-secs S        how long stations may take to have everything acknowledged (default 180)
  --replicas N          collector replicas to start on the one database (default 1); stations
                        are spread over them and fail over to the others (loa::endpoints);
                        --kill-at kills replica A
  --db URL|PATH         the collectors' database: postgres://… or a SQLite file
                        (default <home>/collector.db); the verdict is read from it
  --collectors URL,...  collectors already running (round-robin) instead of starting them
  --home DIR            the collector's LOA_HOME (default: a temp dir); with --collectors, where
                        the database to check and the admin token are
  --prepare-only        write the registry and admin token into --home DIR and exit
  --loa PATH            the loa binary (default target/release/loa)
";

fn parse() -> Result<(sim::Config, bool), String> {
    let mut c = sim::Config::default();
    let mut prepare_only = false;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--help" || k == "-h" {
            print!("{HELP}");
            std::process::exit(0);
        }
        if k == "--prepare-only" {
            prepare_only = true;
            continue;
        }
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{k} {v}: {e}"));
        let int = |v: &str| v.parse::<usize>().map_err(|e| format!("{k} {v}: {e}"));
        match k.as_str() {
            "--stations" => c.stations = int(&v)?,
            "--minutes" => c.minutes = num(&v)?,
            "--speed" => c.speed = num(&v)?,
            "--start-at" => {
                c.start_at = chrono::NaiveTime::parse_from_str(&v, "%H:%M")
                    .map_err(|e| format!("{k} {v}: {e}"))?
            }
            "--items" => c.items = int(&v)? as u32,
            "--item-secs" => c.item_secs = int(&v)? as u32,
            "--heartbeat-secs" => c.heartbeat_secs = num(&v)?,
            "--timeout-secs" => c.timeout_secs = num(&v)?,
            "--per-addr" => c.per_addr = int(&v)?,
            "--bulletin-at" => c.bulletin_at = Some(num(&v)?),
            "--kill-at" => c.kill_at = Some(num(&v)?),
            "--down-secs" => c.down_secs = num(&v)?,
            "--drain-secs" => c.drain_secs = num(&v)?,
            "--collectors" => {
                c.collectors = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "--home" => c.home = Some(PathBuf::from(v)),
            "--db" => c.db = Some(v),
            "--replicas" => c.replicas = int(&v)?.clamp(1, 26),
            "--loa" => c.loa = PathBuf::from(v),
            other => return Err(format!("unknown argument {other} (--help)")),
        }
    }
    if c.stations == 0 || c.stations > 99_999 {
        return Err("--stations must be 1 to 99999".into());
    }
    if !(c.speed > 0.0 && c.minutes > 0.0) {
        return Err("--speed and --minutes must be positive".into());
    }
    Ok((c, prepare_only))
}

fn main() {
    let (cfg, prepare_only) = match parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("sim_fleet: {e}");
            std::process::exit(2);
        }
    };
    if prepare_only {
        let Some(home) = &cfg.home else {
            eprintln!("sim_fleet: --prepare-only needs --home DIR");
            std::process::exit(2);
        };
        let db = cfg
            .db
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("collector.db"));
        match sim::collector::prepare(home, cfg.stations, &db) {
            Ok(_) => {
                println!(
                    "{}: registry of {} stations and admin token written",
                    home.display(),
                    cfg.stations
                );
                return;
            }
            Err(e) => {
                eprintln!("sim_fleet: {e}");
                std::process::exit(1);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sim_fleet: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(sim::run(cfg)) {
        Ok(r) if r.clean() => println!("lost 0, duplicated 0"),
        Ok(r) => {
            if let Some(v) = &r.verdict {
                println!(
                    "FAILED: lost {}, duplicated {}, stations with a wrong count {}",
                    v.lost.len(),
                    v.duplicated.len(),
                    v.count_mismatch.len()
                );
            } else {
                println!("FAILED: the database was not checked");
            }
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("sim_fleet: {e}");
            std::process::exit(1);
        }
    }
}
