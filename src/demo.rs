//! The demo station of `loa up`: a schedule that airs a short chime at the top of every minute,
//! day and night, and the chime itself (synthesised, no audio file shipped), so a newcomer sees an
//! airing reach the collector within a minute of `loa up`, whatever the hour.
//!
//! **Invariant:** the demo's files are rewritten identically on every start (same schedule text,
//! same chime samples) and validated by the real schedule loader like any station's; the demo owes
//! nothing for the time it was not running (its daemon's "alive" mark is removed before it
//! starts), so downtime never turns into a missed chime per minute.

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

use crate::schedule::{self, AudioCatalog, Station};

/// Directory, inside the state directory, of the demo's schedule (`<station id>.toml`).
pub const DEMO_SCHEDULES_DIR: &str = "demo-schedules";
/// Directory, inside the state directory, of the demo's audio (the chime).
pub const DEMO_AUDIO_DIR: &str = "demo-audio";
/// File name of the demo schedule inside [`DEMO_SCHEDULES_DIR`] (`<station id>.toml`).
pub const DEMO_SCHEDULE_FILE: &str = "demo.toml";
/// File name of the demo chime inside [`DEMO_AUDIO_DIR`].
pub const DEMO_IDENT_FILE: &str = "ident.wav";
/// Station id of the demo station.
pub const DEMO_STATION_ID: &str = "demo";
/// Zone of the demo station (it only changes how its times are shown: it airs every minute).
pub const DEMO_TIMEZONE: &str = "Asia/Ho_Chi_Minh";

/// Why the demo could not be written or does not validate.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Chime { path: PathBuf, source: hound::Error },
    #[error(
        "{errors}\nthe demo schedule {path} does not validate (a bug in `loa up`); run with --no-demo"
    )]
    Invalid { path: PathBuf, errors: String },
    #[error("cannot remove {path}: {source}")]
    ForgetDowntime {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Write the demo schedule and chime under the state directory `var` (into [`DEMO_SCHEDULES_DIR`]
/// and [`DEMO_AUDIO_DIR`], which must exist) and validate the schedule like any other.
pub fn write_demo(var: &Path, now: DateTime<Utc>) -> Result<(Station, AudioCatalog), DemoError> {
    let audio_dir = var.join(DEMO_AUDIO_DIR);
    let ident = audio_dir.join(DEMO_IDENT_FILE);
    write_chime(&ident).map_err(|source| DemoError::Chime {
        path: ident.clone(),
        source,
    })?;
    let sched = var.join(DEMO_SCHEDULES_DIR).join(DEMO_SCHEDULE_FILE);
    std::fs::write(&sched, demo_schedule(DEMO_TIMEZONE)).map_err(|source| DemoError::Write {
        path: sched.clone(),
        source,
    })?;
    schedule::load(&sched, &audio_dir, now.date_naive()).map_err(|errors| DemoError::Invalid {
        errors: errors
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        path: sched,
    })
}

/// The demo owes nothing for the time `loa up` was not running: remove its "alive" mark
/// ([`crate::station::ALIVE_FILE`]: after downtime the daemon journals every occurrence since
/// that mark as missed, one record per minute for the demo) from its data directory.
pub fn forget_downtime(data_dir: &Path) -> Result<(), DemoError> {
    let mark = data_dir.join(crate::station::ALIVE_FILE);
    match std::fs::remove_file(&mark) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DemoError::ForgetDowntime { path: mark, source }),
    }
}

/// The demo station's schedule file (format of `docs/schedules.md`): the chime at the top of
/// every minute, day and night. It has no quiet hours on purpose: it is a test signal on
/// the machine running `loa up`, not a loudspeaker over a street (see docs/operations.md).
pub fn demo_schedule(timezone: &str) -> String {
    format!(
        r#"# Demo station written by `loa up` on every start (var/demo-schedules/demo.toml).
# A 2-second chime at the top of every minute, day and night, so a newcomer sees an airing reach
# the collector within a minute of `loa up`, whatever the hour. Not a real station: a real
# loudspeaker station keeps quiet hours (see schedules/). `loa up --no-demo` turns it off.
id = "{DEMO_STATION_ID}"
name = "Trạm thử nghiệm (loa up demo)"
kind = "ward"
area_code = "00000"
timezone = "{timezone}"
quiet_hours = []
max_session_minutes = 1

[[programs]]
id = "ident"
title = "Nhạc hiệu thử nghiệm"
category = "ident"
file = "{DEMO_IDENT_FILE}"

[[slots]]
id = "demo-ident"
cron = "* * * * *"
program = "ident"
play = ["program:ident"]
priority = "normal"
start = "soft"
grace_secs = 30
max_minutes = 1
"#
    )
}

/// A 2-second three-note chime (G5, E5, C5 with a bell-like decay), 44.1 kHz 16-bit stereo,
/// peaking at about -9 dBFS. Rewritten identically on every start.
pub fn write_chime(path: &Path) -> Result<(), hound::Error> {
    const RATE: u32 = 44_100;
    const NOTES_HZ: [f64; 3] = [783.99, 659.25, 523.25];
    const NOTE_SECS: f64 = 0.6;
    const TOTAL_SECS: f64 = 2.0;
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    let total = (TOTAL_SECS * f64::from(RATE)) as u32;
    for n in 0..total {
        let t = f64::from(n) / f64::from(RATE);
        let mut v = 0.0;
        for (i, hz) in NOTES_HZ.iter().enumerate() {
            let start = i as f64 * NOTE_SECS;
            if t >= start {
                let dt = t - start;
                let attack = (dt / 0.005).min(1.0);
                v += attack * (-dt * 3.0).exp() * (2.0 * std::f64::consts::PI * hz * dt).sin();
            }
        }
        // Fade the tail to exact silence so the file ends cleanly.
        let tail = ((TOTAL_SECS - t) / 0.05).clamp(0.0, 1.0);
        let s = (v * 0.35 * tail * f64::from(i16::MAX)) as i16;
        w.write_sample(s)?;
        w.write_sample(s)?;
    }
    w.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as ChronoDuration;
    use chrono::TimeZone;

    /// The demo, loaded by the real schedule loader, airs within a minute at every minute of
    /// the day (night included: it has no quiet hours), and its chime ends inside that minute.
    #[test]
    fn demo_airs_within_a_minute_at_any_hour() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for sub in [DEMO_SCHEDULES_DIR, DEMO_AUDIO_DIR] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        let day = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
        let (station, catalog) = write_demo(dir.path(), day).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(station.id, DEMO_STATION_ID);
        assert!(station.quiet_hours.is_empty());
        // Every 7 minutes and 13 seconds through a whole UTC day (all local hours, both zones).
        let mut t = day;
        while t < day + ChronoDuration::days(1) {
            // The one next-airing rule, as `loa up`'s banner and the heartbeat use it.
            let first = schedule::next_airing(&station, &catalog, t, |_| false)
                .unwrap_or_else(|| panic!("{t}: no next airing"));
            let wait = first.at.with_timezone(&Utc) - t;
            // Strictly later (the one next-airing rule): at the top of a minute that minute's
            // chime is airing, not next.
            assert!(
                wait > ChronoDuration::zero() && wait <= ChronoDuration::seconds(60),
                "{t}: next demo airing in {wait}"
            );
            assert!(first.planned_secs > 1.9 && first.planned_secs < 2.1);
            t += ChronoDuration::seconds(7 * 60 + 13);
        }
    }

    #[test]
    fn demo_downtime_mark_is_removed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mark = dir.path().join(crate::station::ALIVE_FILE);
        std::fs::write(&mark, "2026-11-01T00:00:00Z").unwrap_or_else(|e| panic!("{e}"));
        forget_downtime(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!mark.exists());
        forget_downtime(dir.path()).unwrap_or_else(|e| panic!("no mark is fine: {e:#}"));
    }

    #[test]
    fn chime_is_two_seconds_of_real_sound() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("ident.wav");
        write_chime(&p).unwrap_or_else(|e| panic!("{e}"));
        let r = hound::WavReader::open(&p).unwrap_or_else(|e| panic!("{e}"));
        let spec = r.spec();
        let frames = r.duration();
        assert_eq!((spec.channels, spec.sample_rate), (2, 44_100));
        assert_eq!(frames, 88_200);
        let samples: Vec<i16> = r.into_samples::<i16>().filter_map(Result::ok).collect();
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 5_000 && peak < 20_000, "peak {peak}");
        assert_eq!(samples.last().copied(), Some(0), "ends in silence");
    }
}
