//! The collector's self-check for systemd's watchdog: its "scheduler loop". Every quarter of the
//! watchdog period it asks its own `GET /healthz` (which goes through the listener, the router and
//! a database read) and beats only on `200 OK`; the watchdog is petted only while it beats.
//!
//! **Invariant:** a beat means this very process answered `/healthz` over loopback (no proxy)
//! within [`HEALTH_CHECK_TIMEOUT_SECS`]; a hung listener, a wedged database or a starved runtime
//! stop the beats, hence the pets, and systemd restarts the service.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::notify::{Liveness, Notifier, pet_while_alive};

/// Longest a self-check `GET /healthz` may take before it counts as a failed beat.
pub const HEALTH_CHECK_TIMEOUT_SECS: u64 = 5;

/// Spawn the self-check of the collector listening on `addr` and the watchdog pets it drives,
/// until `stop` turns true. Call inside the runtime.
pub fn spawn(
    addr: SocketAddr,
    notifier: Notifier,
    watchdog: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let liveness = Liveness::new();
    tokio::spawn(self_check(addr, liveness.clone(), watchdog, stop.clone()));
    tokio::spawn(pet_while_alive(notifier, liveness, watchdog, stopped(stop)));
}

/// Completes when `rx` turns true (or its sender is gone).
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Ask `GET /healthz` of the collector at `addr` every quarter of `watchdog`, beating `liveness`
/// on each `200 OK`, until `stop` turns true.
pub async fn self_check(
    addr: SocketAddr,
    liveness: Liveness,
    watchdog: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{target}/healthz");
    let _ = rustls::crypto::ring::default_provider().install_default();
    // No proxy: the self-check must reach this very process over loopback.
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(HEALTH_CHECK_TIMEOUT_SECS))
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("watchdog self-check disabled (no HTTP client: {e})");
            return;
        }
    };
    let period = Liveness::max_sleep(watchdog).max(Duration::from_millis(10));
    loop {
        if *stop.borrow() {
            return;
        }
        match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => liveness.beat(),
            Ok(r) => tracing::warn!(status = r.status().as_u16(), "self-check {url} failed"),
            Err(e) => tracing::warn!("self-check {url} failed: {e}"),
        }
        tokio::time::sleep(period).await;
    }
}
