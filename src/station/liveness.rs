//! Liveness: the daemon's proofs of life, and what it gives back while idle.
//!
//! The `alive` mark (rewritten every [`super::ALIVE_SECS`], and in `state.bin`, which works on a
//! full disk: after downtime every occurrence since it is owed a record), the live status the
//! heartbeat sends to the collector, the shipper and heartbeat tasks, the systemd watchdog petted
//! while the scheduler loop beats, and heap trimming at idle moments.
//!
//! **Invariant:** proofs of life are given only by the running scheduler loop (a stuck loop
//! stops the alive mark and the watchdog pets); nothing here airs or journals, and nothing here
//! is waited for by an airing (the shipper and heartbeat run on their own tasks and never hold up
//! the loop).

use super::inflight::InFlight;
use super::{ALIVE_FILE, StationConfig, StationError};
use crate::endpoints::Endpoints;
use crate::journal;
use crate::keys;
use crate::shipper::{self, LiveStatus, Progress, Shipper, ShipperConfig};
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::Instrument as _;

/// Write `bytes` to `path` through a temporary file and a rename (fsynced first with `sync`).
pub(super) fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StationError> {
    let io = |source| StationError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        if sync {
            f.sync_all().map_err(io)?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Rewrite the alive mark at `now`: in the state file (works on a full disk) and the `alive`
/// file in `data_dir`.
pub(super) fn mark_alive(
    inflight: &mut InFlight,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> Result<(), StationError> {
    let r = inflight.durable.mark_alive(now);
    inflight.note_state(r);
    write_atomic(
        &data_dir.join(ALIVE_FILE),
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .as_bytes(),
        false,
    )
}

/// The shipper and heartbeat tasks, and what the daemon keeps of them.
pub(super) struct Shipping {
    pub(super) tasks: Vec<tokio::task::JoinHandle<Result<(), shipper::ShipError>>>,
    /// The collector's acknowledged position (what compaction may delete up to).
    pub(super) acked: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Wakes the shipper out of a backoff.
    pub(super) wake: Option<Arc<tokio::sync::Notify>>,
}

/// Start the shipper and the heartbeat to `collector` (the shared collector URLs, heartbeat
/// period), when one is configured, both stopping when `shutdown` turns true.
pub(super) fn start_shipping(
    cfg: &StationConfig,
    collector: Option<(Endpoints, u64)>,
    last_seq: watch::Receiver<u64>,
    status: watch::Receiver<LiveStatus>,
    answers: Arc<watch::Sender<shipper::HeartbeatAnswer>>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Shipping, StationError> {
    let mut shipping = Shipping {
        tasks: Vec::new(),
        acked: None,
        wake: None,
    };
    let Some((collectors, hb_secs)) = collector else {
        tracing::warn!("no collector configured: records stay in the journal until one is");
        return Ok(shipping);
    };
    let url = collectors.urls().join(", ");
    let mut scfg = ShipperConfig::new(
        collectors.client_url(),
        &cfg.station,
        journal::journal_dir(&cfg.data_dir),
    );
    scfg.collectors = collectors;
    scfg.heartbeat_secs = hb_secs;
    scfg.answers = answers;
    shipping.wake = Some(scfg.wake.clone());
    let (shipper, acked) = Shipper::new(scfg.clone())?;
    shipping.acked = Some(acked.clone());
    let progress = Progress {
        last_seq: last_seq.clone(),
        acked,
    };
    let key = keys::load(&cfg.data_dir)?;
    shipping.tasks.push(tokio::spawn(
        shipper
            .run(last_seq, shutdown.clone())
            .instrument(tracing::info_span!("shipper")),
    ));
    shipping.tasks.push(tokio::spawn(
        shipper::run_heartbeat(scfg, key, progress, status, shutdown.clone())
            .instrument(tracing::info_span!("heartbeat")),
    ));
    tracing::info!(%url, heartbeat_secs = hb_secs, "shipping to collector");
    Ok(shipping)
}

/// Under systemd's watchdog (`WATCHDOG_USEC`): the liveness the scheduler loop beats and the
/// longest it may sleep between beats, with the watchdog petted only while it beats, until the
/// returned sender says stop. Without a watchdog: nothing to beat.
#[allow(clippy::type_complexity)]
pub(super) fn watchdog(
    notifier: &crate::notify::Notifier,
) -> (
    Option<(crate::notify::Liveness, std::time::Duration)>,
    watch::Sender<bool>,
) {
    use crate::notify::{Liveness, pet_while_alive, watchdog_interval};
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let Some(watchdog) = watchdog_interval() else {
        return (None, stop_tx);
    };
    let liveness = Liveness::new();
    tokio::spawn(pet_while_alive(
        notifier.clone(),
        liveness.clone(),
        watchdog,
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    (Some((liveness, Liveness::max_sleep(watchdog))), stop_tx)
}

/// Give freed heap back to the system (glibc keeps it otherwise), after start-up and after each
/// airing, at an idle moment. A no-op outside Linux/glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; it takes its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
