//! One manual airing (`loa play`, `loa render`): a session of files through a fresh player — the
//! same player, loudness and evidence meter as the station daemon — waited for to its end, and
//! the report of what aired.
//!
//! **Invariant:** [`air_once`] returns only once the player has finished the session (or has
//! stopped, which is an error), and its report is the player's own `Finished` event: nothing is
//! measured or recomputed here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;

use crate::player::{PlayOutcome, Player, PlayerConfig, PlayerError, PlayerEvent, Session};
use crate::wire::{AiredItem, Evidence};

/// Why a manual airing did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    #[error("cannot open the output: {0}")]
    Open(PlayerError),
    #[error(transparent)]
    Player(#[from] PlayerError),
    #[error("the player stopped without finishing the session")]
    Unfinished,
}

/// What `loa play`/`loa render` print.
#[derive(Debug, Serialize)]
pub struct PlayReport {
    pub airing_id: String,
    pub outcome: PlayOutcome,
    pub scheduled_at: DateTime<Utc>,
    /// First sample minus scheduled instant (ms), when something aired.
    pub start_offset_ms: Option<f64>,
    pub aired_secs: f64,
    pub items: Vec<AiredItem>,
    pub evidence: Evidence,
    pub reason: Option<String>,
}

/// Air one session through a fresh player and wait for its end.
pub fn air_once(
    config: PlayerConfig,
    files: Vec<PathBuf>,
    start_at: DateTime<Utc>,
    max_secs: Option<f64>,
) -> Result<PlayReport, ManualError> {
    let (player, events) = Player::spawn(config).map_err(ManualError::Open)?;
    let airing_id = format!("manual-{}", start_at.format("%Y%m%dT%H%M%S%.3fZ"));
    player.load(Session {
        airing_id: airing_id.clone(),
        items: files,
        max_secs,
        start_at,
    })?;
    let report = loop {
        match events.recv() {
            Ok(PlayerEvent::Finished {
                airing_id,
                outcome,
                aired_secs,
                items,
                evidence,
                reason,
                ..
            }) => {
                // The player always meters (only the station's stand-in does not).
                let Some(evidence) = evidence else {
                    return Err(ManualError::Unfinished);
                };
                let start_offset_ms = evidence
                    .first_sample_at
                    .map(|t| (t - start_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                break PlayReport {
                    airing_id,
                    outcome,
                    scheduled_at: start_at,
                    start_offset_ms,
                    aired_secs,
                    items,
                    evidence,
                    reason,
                };
            }
            Ok(PlayerEvent::Started { at, .. }) => tracing::info!("on air at {at}"),
            Ok(PlayerEvent::ItemStarted { index, at, .. }) => {
                tracing::info!("item {} at {at}", index + 1)
            }
            Err(_) => return Err(ManualError::Unfinished),
        }
    };
    player.shutdown()?;
    Ok(report)
}
