//! `loa` — a broadcast scheduler for a city radio station and its ward/commune loudspeaker
//! stations, that airs the plan on time and proves what aired.
//!
//! # Module map
//! (ARCHITECTURE.md is the longer version; every module's doc states its invariant.)
//!
//! Pure core (no I/O, time comes in through [`clock::Clock`]):
//! - [`crontab`] — crontab lines exactly as `man 5 crontab` reads them, translated onto the `cron`
//!   crate, expanded in a station's time zone.
//! - [`schedule`] — schedule files: parse, validate with file:line:column errors, expand into
//!   planned airings (one source of truth for station, `loa plan` and collector).
//! - [`reconcile`] — plan vs as-run: each planned occurrence gets a status, unplanned airings listed.
//! - [`reason`] — reason codes (`missed.station_down`, `refused.bad_signature`, …) and the one
//!   table of their Vietnamese and English texts, rendered only at the edges.
//! - [`wire`] — **API boundary**: airing records and heartbeats, canonical bytes, hash chain,
//!   Ed25519 signatures. Shared by station and collector.
//! - [`centre`] — **API boundary**: the centre's signed envelope, manifest, key rotation, a
//!   station's pinned centre key, station-signed requests (pure but for the key and pin files).
//! - [`bulletin`] — **API boundary**: bulletins and cancellations from the centre (signed,
//!   range-checked), a station's acceptance of one with its refusal codes.
//!
//! Edges (I/O):
//! - [`media`] — probing and decoding audio files; SHA-256 of files.
//! - [`resample`] — band-limited sample-rate conversion (rubato), for files and relays (pure).
//! - [`output`] — audio output backends (`device` via rodio/ALSA, `wav`, `null`) behind one trait.
//! - [`loudness`] — EBU R128 measurement per file, cached by SHA-256.
//! - [`meter`] — the evidence meter over what actually went to the output.
//! - [`player`] — the playout thread: commands in, events out, gapless sessions.
//! - [`relay`] — relaying a live upstream stream with failover to a fallback playlist.
//! - [`keys`] — station key pairs and the admin token on disk, made once and reused.
//! - [`journal`] — the station's durable, append-only, checksummed as-run journal.
//! - [`endpoints`] — the ordered set of collector URLs a station's clients share, and the
//!   failover rule between them.
//! - [`shipper`] — delivers journaled records and heartbeats to the collector.
//! - [`station`] — the station daemon: scheduler loop tying plan, player, journal and shipper.
//! - [`collector`] — the central server: SQLite store, ingest/query HTTP API.
//! - [`web`] — the office web app's pages (overview, station month, reports): templates, filters.
//! - [`report`] — monthly/year-to-date exports (CSV, XLSX, JSON) and their offline verification.
//! - [`manual`] — one manual airing (`loa play`, `loa render`) through a fresh player, reported.
//! - [`process`] — process-wide set-up of the commands: logging, stop signals.
//! - [`supervisor`] — child processes in their own groups, output forwarded, stopped in order.
//! - [`demo`] — the demo station of `loa up` (a chime every minute) and the chime's synthesis.
//! - [`launch`] — `loa up`: keys and registry entries provisioned, the collector and every
//!   station run as supervised children on one host.
//! - [`layout`] — the one state layout (registry, database, keys, journals, WAV output) every
//!   subcommand defaults to, shared with `loa up` and the packaged services.
//! - [`cli`] — the `loa` command line: parses arguments and calls the modules above; the only
//!   place `anyhow` is used.

pub mod bulletin;
pub mod centre;
pub mod cli;
pub mod clock;
pub mod collector;
pub mod crontab;
pub mod demo;
pub mod endpoints;
pub mod journal;
pub mod keys;
pub mod launch;
pub mod layout;
pub mod loudness;
pub mod manual;
pub mod media;
pub mod meter;
pub mod notify;
pub mod output;
pub mod player;
pub mod process;
pub mod reason;
pub mod reconcile;
pub mod relay;
pub mod report;
pub mod resample;
pub mod schedule;
pub mod shipper;
pub mod station;
pub mod supervisor;
pub mod web;
pub mod wire;

/// Threads for CPU-bound work split across the cores (ingest verification, report building and
/// rendering): the cores available, 1 when unknown, at most 8.
pub fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}
