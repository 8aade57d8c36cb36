//! Login cost: `cargo run --example bench_login [N]` (or `--release`) times N (default 20) logins
//! through the collector's own path (`accounts::login_record` + `accounts::check_login`: one
//! Argon2id verification with the chosen parameters) on a real SQLite file, a right password,
//! a wrong one and an unknown name, and prints p50/max of each in milliseconds with the
//! parameters and the load average. The target is 50–250 ms per login (docs/accounts.md).
//! Prints figures; asserts nothing.

use loa::collector::accounts::{self, ARGON2_M_COST_KIB, ARGON2_P_COST, ARGON2_T_COST, Role};
use std::time::Instant;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut conn = loa::collector::Store::open(&dir.path().join("c.db"))
        .unwrap()
        .into_connection();
    let pw = "mat-khau-do-kiem-thu-1";
    accounts::add_user(&mut conn, "lan", Role::Admin, &[], pw, chrono::Utc::now()).unwrap();
    println!(
        "Argon2id m={ARGON2_M_COST_KIB} KiB t={ARGON2_T_COST} p={ARGON2_P_COST}; {n} logins each; load avg {}",
        loadavg()
    );
    for (what, name, password) in [
        ("right password", "lan", pw),
        ("wrong password", "lan", "mat-khau-sai-roi-1"),
        ("unknown name", "khong-co-ai", pw),
    ] {
        let mut ms: Vec<f64> = (0..n)
            .map(|_| {
                let t = Instant::now();
                let rec = accounts::login_record(&conn, name).unwrap();
                let _ = accounts::check_login(rec.as_ref(), password);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "{what:>15}: p50 {:.1} ms, max {:.1} ms",
            ms[ms.len() / 2],
            ms[ms.len() - 1]
        );
    }
}
