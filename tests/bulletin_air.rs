//! Issue #15, item 4 (and item 5's journal records): the station daemon airs bulletins. Each
//! test runs the real daemon in-process (its loop, journal, state file and the real player on
//! the `wav` output, paced in real time, loudness-normalised and metered) with the system clock,
//! hands it checked bulletins through its intake channel (`Daemon::bulletin_intake`, as the
//! intake does once it has verified a bulletin and its audio), and reads the signed journal and
//! the WAV of what aired.

mod station_common;

use chrono::{DateTime, Duration, Timelike, Utc};
use loa::bulletin::{AudioRef, Bulletin, BulletinId, Repeats, Targets};
use loa::output::OutputConfig;
use loa::reason::ReasonCode;
use loa::schedule::Priority;
use loa::station::bulletins::{IntakeEvent, ReadyBulletin};
use loa::station::playout::PlayerPlayout;
use loa::station::{Control, Daemon, StationConfig, bridge_events};
use loa::wire::{AiringRecord, Outcome};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

const ID: &str = "phuong-ban-tin";
/// The scheduled episode's tone and the bulletin's: told apart in the WAV by their frequency.
const EPISODE_HZ: f64 = 440.0;
const BULLETIN_HZ: f64 = 1000.0;
/// The WAV output's rate.
const RATE: u32 = 48_000;

/// A WAV of `secs` seconds of a `hz` tone (16 kHz mono, as the content library holds speech).
fn tone(path: &Path, secs: f64, hz: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(secs * 16_000.0) as u32 {
        let x = (f64::from(i) * hz * std::f64::consts::TAU / 16_000.0).sin() * 8_000.0;
        w.write_sample(x as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// A station directory: schedule, audio, data, the WAV output.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let b = Bench {
            dir: tempfile::tempdir().unwrap(),
        };
        loa::keys::generate(&b.data(), false).unwrap();
        b
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn data(&self) -> PathBuf {
        self.path("data")
    }
    fn wav(&self) -> PathBuf {
        self.path("out.wav")
    }
    /// The schedule: `top` top-level keys, then `slots` (TOML) over programs `tin` (file
    /// `tin.wav`).
    fn schedule(&self, top: &str, slots: &str) {
        let text = format!(
            "id = \"{ID}\"\nname = \"Phường thử bản tin\"\nkind = \"ward\"\narea_code = \"51101\"\n{top}\n{slots}"
        );
        std::fs::create_dir_all(self.path("schedules")).unwrap();
        std::fs::write(self.path(&format!("schedules/{ID}.toml")), text).unwrap();
    }
    fn cfg(&self) -> StationConfig {
        StationConfig {
            station: ID.into(),
            schedule_path: self.path(&format!("schedules/{ID}.toml")),
            audio_root: self.path("audio"),
            data_dir: self.data(),
            collector_urls: Vec::new(),
            heartbeat_secs: None,
            keep_days: loa::station::DEFAULT_KEEP_DAYS,
        }
    }
    /// Open the daemon on the real player writing `out.wav` (a new file each time).
    fn open(
        &self,
    ) -> (
        Daemon,
        std::sync::mpsc::Receiver<loa::station::playout::PlayerEvent>,
    ) {
        let loudness = loa::loudness::LoudnessSettings {
            cache_dir: Some(self.path("loudness")),
            ..Default::default()
        };
        let out = OutputConfig::new(&format!("wav:{}", self.wav().display()));
        let (player, events) = PlayerPlayout::spawn(out, loudness).unwrap();
        let d = Daemon::open(
            self.cfg(),
            Arc::new(loa::clock::SystemClock),
            Box::new(player),
        )
        .unwrap();
        (d, events)
    }
    fn records(&self) -> Vec<AiringRecord> {
        let dir = loa::journal::journal_dir(&self.data());
        loa::journal::read_all(&dir)
            .unwrap()
            .iter()
            .map(|s| s.parse().unwrap())
            .collect()
    }
    /// A bulletin of `secs` seconds of the bulletin tone (file `bulletins/<name>.wav`).
    fn bulletin(&self, name: &str, priority: Priority, secs: f64) -> ReadyBulletin {
        let audio = self.path(&format!("bulletins/{name}.wav"));
        tone(&audio, secs, BULLETIN_HZ);
        let bytes = std::fs::read(&audio).unwrap();
        let now = Utc::now();
        ReadyBulletin {
            bulletin: Bulletin {
                v: 1,
                id: BulletinId::random().unwrap(),
                created_at: now - Duration::seconds(1),
                title: format!("Bản tin thử {name}"),
                priority,
                targets: Targets::All,
                not_before: now - Duration::seconds(1),
                not_after: now + Duration::hours(1),
                repeats: Repeats {
                    count: 1,
                    interval_secs: 0,
                },
                audio: AudioRef {
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    size: bytes.len() as u64,
                    duration_ms: (secs * 1000.0) as u64,
                },
                text: None,
                synthetic: false,
            },
            envelope_sha256: "0".repeat(64),
            audio,
            received_at: now,
        }
    }
}

/// A crontab line (with seconds) firing at `t` in the station's zone (UTC+7).
fn cron_at(t: DateTime<Utc>) -> String {
    let l = t + Duration::hours(7);
    format!("{} {} {} * * *", l.second(), l.minute(), l.hour())
}

/// A whole second at least `secs` ahead.
fn ahead(secs: i64) -> DateTime<Utc> {
    let t = Utc::now() + Duration::seconds(secs) + Duration::milliseconds(999);
    t - Duration::nanoseconds(i64::from(t.nanosecond()))
}

/// Run the daemon until `drive` returns, then shut it down (fade out, record, flush).
async fn run_with<F, Fut>(b: &Bench, drive: F)
where
    F: FnOnce(mpsc::Sender<IntakeEvent>, loa::station::bulletins::AiredBulletins) -> Fut,
    Fut: Future<Output = ()>,
{
    let (daemon, events) = b.open();
    let intake = daemon.bulletin_intake();
    let aired = daemon.aired_bulletins();
    let (ctl_tx, ctl_rx) = mpsc::channel(4);
    let run = daemon.run(bridge_events(events), ctl_rx);
    let drive = async {
        drive(intake, aired).await;
        ctl_tx.send(Control::Shutdown).await.unwrap();
    };
    let (r, ()) = tokio::join!(run, drive);
    r.unwrap();
}

async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

/// Wait (polling the journal) until `f` holds of the records, at most `secs`.
async fn wait_records(b: &Bench, secs: u64, what: &str, f: impl Fn(&[AiringRecord]) -> bool) {
    let t0 = std::time::Instant::now();
    loop {
        if f(&b.records()) {
            return;
        }
        assert!(
            t0.elapsed().as_secs() < secs,
            "no {what} within {secs} s:\n{}",
            show(&b.records())
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn show(records: &[AiringRecord]) -> String {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {:?} {:?} start={:?} aired={:.2} code={:?} bulletin={:?}",
                r.occurrence.as_deref().unwrap_or("-"),
                r.outcome,
                r.slot,
                r.actual_start
                    .map(|t| t.to_utc().format("%H:%M:%S%.3f").to_string()),
                r.aired_secs,
                r.reason_code.as_ref().map(|c| c.as_str()),
                r.bulletin
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn bulletin_key(r: &ReadyBulletin, repeat: u32) -> String {
    loa::bulletin::occurrence_key(&r.bulletin.id.to_hex(), repeat)
}

fn the<'a>(records: &'a [AiringRecord], key: &str) -> Vec<&'a AiringRecord> {
    records
        .iter()
        .filter(|r| r.occurrence.as_deref() == Some(key))
        .collect()
}

/// The record of a bulletin's airing is the contract's: its occurrence, no slot or program,
/// category `bulletin`, the bulletin named, measured like any airing.
fn assert_bulletin_record(rec: &AiringRecord, r: &ReadyBulletin, repeat: u32) {
    assert_eq!(rec.slot, None, "{rec:#?}");
    assert_eq!(rec.program, None, "{rec:#?}");
    assert_eq!(rec.category, "bulletin", "{rec:#?}");
    assert_eq!(rec.source, loa::wire::Source::File);
    let named = rec
        .bulletin
        .as_ref()
        .expect("the record names the bulletin");
    assert_eq!(named.id, r.bulletin.id.to_hex());
    assert_eq!(named.repeat, repeat);
    assert!(!named.synthetic);
    assert!(
        (rec.planned_secs - r.bulletin.audio.duration_ms as f64 / 1000.0).abs() < 0.01,
        "{rec:#?}"
    );
}

/// Mean absolute level and zero crossings per second of `samples` (interleaved stereo).
fn level_and_pitch(samples: &[f32]) -> (f32, f64) {
    let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
    let level = left.iter().map(|x| x.abs()).sum::<f32>() / left.len().max(1) as f32;
    let crossings = left
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let secs = left.len() as f64 / f64::from(RATE);
    (level, crossings as f64 / secs / 2.0)
}

#[tokio::test(flavor = "current_thread")]
async fn an_emergency_interrupts_a_normal_airing_mid_file_within_the_fade_and_both_records_are_right()
 {
    let b = &Bench::new();
    // A 15-minute episode at a slot a few seconds ahead.
    tone(&b.path("audio/tin.wav"), 900.0, EPISODE_HZ);
    // Measured once beforehand, as a station's cache holds its episodes: the player's
    // preparation (a cache hit) stays within its lead.
    loa::loudness::LoudnessCache::open(Some(&b.path("loudness")))
        .measure(&b.path("audio/tin.wav"))
        .unwrap();
    let t0 = ahead(4);
    b.schedule(
        "",
        &format!(
            "[[programs]]\nid = \"tin\"\ncategory = \"news\"\nfile = \"tin.wav\"\n\n\
             [[slots]]\nid = \"sang\"\ncron = \"{}\"\nplay = [\"program:tin\"]\nstart = \"hard\"\nmax_minutes = 20\n",
            cron_at(t0)
        ),
    );
    let emergency = &b.bulletin("khan", Priority::Emergency, 3.0);
    let ekey = &bulletin_key(emergency, 1);
    let sent = &std::sync::Mutex::new(None);
    run_with(b, |intake, _| async move {
        // Six seconds into the episode.
        sleep_until(t0 + Duration::seconds(6)).await;
        *sent.lock().unwrap() = Some(Utc::now());
        intake
            .send(IntakeEvent::Ready(Box::new(emergency.clone())))
            .await
            .unwrap();
        wait_records(b, 30, "the emergency's record", |r| {
            !the(r, ekey).is_empty()
        })
        .await;
        // The episode goes on after it (from the start of the file that was cut).
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    })
    .await;
    let sent = sent.lock().unwrap().unwrap();
    let records = b.records();
    let all = show(&records);
    let skey = format!(
        "sang@{}",
        t0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let episode = the(&records, &skey);
    assert!(!episode.is_empty(), "{all}");
    // The interrupted airing: preempted, by a higher priority, mid-file.
    let cut = episode[0];
    assert_eq!(cut.outcome, Outcome::Preempted, "{all}");
    assert_eq!(
        cut.reason_code,
        Some(ReasonCode::PreemptedHigherPriority),
        "{all}"
    );
    assert!(
        cut.aired_secs > 5.0 && cut.aired_secs < 8.0,
        "cut about 6 s in: {all}"
    );
    assert!(cut.bulletin.is_none(), "{all}");
    // The emergency: aired whole, measured, named.
    let e = the(&records, ekey);
    assert_eq!(e.len(), 1, "{all}");
    let e = e[0];
    assert_bulletin_record(e, emergency, 1);
    assert_eq!(e.outcome, Outcome::Aired, "{all}");
    assert!((e.aired_secs - 3.0).abs() < 0.1, "{all}");
    let ev = e.evidence.as_ref().expect("the bulletin's evidence");
    assert!(
        (ev.integrated_lufs.unwrap() - -23.0).abs() < 1.5,
        "normalised like any airing: {ev:?}"
    );
    // Its first sample: within the fade (0.5 s) plus the player's lead (2 s) of the send.
    let first = e.actual_start.unwrap().to_utc();
    let latency = (first - sent).num_milliseconds();
    eprintln!(
        "emergency handed over {} → cut airing recorded ended {} → first sample {} ({latency} ms)",
        sent.format("%H:%M:%S%.3f"),
        cut.end.unwrap().format("%H:%M:%S%.3f"),
        first.format("%H:%M:%S%.3f")
    );
    assert!(
        (0..=2_500).contains(&latency),
        "first sample {latency} ms after the send: {all}"
    );
    // The episode goes on after the bulletin: its latest record is the whole airing, both
    // parts, from the first sample of the first part.
    assert!(episode.len() >= 2, "continued: {all}");
    let whole = episode.last().unwrap();
    assert!(whole.seq > e.seq, "{all}");
    assert_eq!(whole.actual_start, cut.actual_start, "{all}");
    assert!(whole.aired_secs > cut.aired_secs, "{all}");

    // The WAV: the episode's tone, a fade of at most 0.5 s, then the bulletin's.
    let (spec, samples) = read_wav(&b.wav());
    assert_eq!(spec.sample_rate, RATE);
    let win = (RATE / 50) as usize * 2; // 20 ms, stereo
    let windows: Vec<(f32, f64)> = samples.chunks(win).map(level_and_pitch).collect();
    let full = windows.iter().take(50).map(|w| w.0).fold(0.0f32, f32::max);
    let is_bulletin = |w: &(f32, f64)| w.0 > full * 0.5 && (w.1 - BULLETIN_HZ).abs() < 100.0;
    let b_start = windows
        .iter()
        .position(is_bulletin)
        .expect("the bulletin in the WAV");
    let fade_start = windows[..b_start]
        .iter()
        .rposition(|w| w.0 > full * 0.9 && (w.1 - EPISODE_HZ).abs() < 50.0)
        .expect("the episode before it");
    let fade_ms = (b_start - fade_start - 1) * 20;
    assert!(
        fade_ms <= 520,
        "from the episode at full level to the bulletin: {fade_ms} ms"
    );
    assert!(
        fade_start * 20 > 5_000,
        "the episode aired {} ms before the cut",
        fade_start * 20
    );
}

/// Read a float WAV.
fn read_wav(path: &Path) -> (hound::WavSpec, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let s = r.samples::<f32>().map(|x| x.unwrap()).collect();
    (spec, s)
}

#[tokio::test(flavor = "current_thread")]
async fn an_emergency_airs_during_quiet_hours() {
    let b = &Bench::new();
    let l = Utc::now() + Duration::hours(7);
    let from = l - Duration::hours(1);
    let to = l + Duration::hours(1);
    b.schedule(
        &format!(
            "quiet_hours = [\"{:02}:{:02}-{:02}:{:02}\"]\n",
            from.hour(),
            from.minute(),
            to.hour(),
            to.minute()
        ),
        "",
    );
    let emergency = &b.bulletin("bao", Priority::Emergency, 2.0);
    let normal = &b.bulletin("thuong", Priority::Priority, 2.0);
    let (ekey, nkey) = (&bulletin_key(emergency, 1), &bulletin_key(normal, 1));
    run_with(b, |intake, _| async move {
        intake
            .send(IntakeEvent::Ready(Box::new(normal.clone())))
            .await
            .unwrap();
        intake
            .send(IntakeEvent::Ready(Box::new(emergency.clone())))
            .await
            .unwrap();
        wait_records(b, 20, "the emergency's record", |r| {
            !the(r, ekey).is_empty()
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    })
    .await;
    let records = b.records();
    let all = show(&records);
    let e = the(&records, ekey);
    assert_eq!(e.len(), 1, "{all}");
    assert_eq!(e[0].outcome, Outcome::Aired, "{all}");
    assert_bulletin_record(e[0], emergency, 1);
    // A priority bulletin waits for the quiet hours to end.
    assert!(the(&records, nkey).is_empty(), "{all}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_priority_bulletin_waits_for_the_item_boundary() {
    let b = &Bench::new();
    tone(&b.path("audio/a.wav"), 5.0, EPISODE_HZ);
    tone(&b.path("audio/b.wav"), 4.0, EPISODE_HZ);
    let t0 = ahead(4);
    b.schedule(
        "",
        &format!(
            "[[slots]]\nid = \"trua\"\ncron = \"{}\"\nplay = [\"a.wav\", \"b.wav\"]\nstart = \"hard\"\nmax_minutes = 5\n",
            cron_at(t0)
        ),
    );
    let p = &b.bulletin("uu-tien", Priority::Priority, 2.0);
    let pkey = &bulletin_key(p, 1);
    let skey = &format!(
        "trua@{}",
        t0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    run_with(b, |intake, _| async move {
        sleep_until(t0 + Duration::milliseconds(1500)).await;
        intake
            .send(IntakeEvent::Ready(Box::new(p.clone())))
            .await
            .unwrap();
        // Item a (5 s), the bulletin (2 s), item b (4 s).
        wait_records(b, 30, "the airing's whole record", |r| {
            the(r, skey).len() >= 2
        })
        .await;
    })
    .await;
    let records = b.records();
    let all = show(&records);
    let pr = the(&records, pkey);
    assert_eq!(pr.len(), 1, "{all}");
    assert_eq!(pr[0].outcome, Outcome::Aired, "{all}");
    assert_bulletin_record(pr[0], p, 1);
    let s = the(&records, skey);
    let first = s[0];
    let item_a_end = first.actual_start.unwrap().to_utc() + Duration::seconds(5);
    let b_start = pr[0].actual_start.unwrap().to_utc();
    let off = (b_start - item_a_end).num_milliseconds();
    // Not before item a ended; at most the cut margin, a fade and a cue's start after.
    assert!(
        (0..=1_500).contains(&off),
        "bulletin {off} ms after item a's end: {all}"
    );
    assert_eq!(first.outcome, Outcome::Preempted, "{all}");
    assert!(
        (first.items[0].aired_secs - 5.0).abs() < 0.1,
        "item a whole: {all}"
    );
    // The airing goes on after it with item b, whole; its latest record is the whole airing.
    let whole = s.last().unwrap();
    assert!(whole.seq > pr[0].seq, "{all}");
    assert_eq!(whole.outcome, Outcome::Aired, "{all}");
    let last_item = whole.items.last().unwrap();
    assert_eq!(last_item.path, "b.wav", "{all}");
    assert!((last_item.aired_secs - 4.0).abs() < 0.1, "{all}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_normal_bulletin_airs_after_the_session() {
    let b = &Bench::new();
    tone(&b.path("audio/a.wav"), 4.0, EPISODE_HZ);
    let t0 = ahead(4);
    b.schedule(
        "",
        &format!(
            "[[slots]]\nid = \"chieu\"\ncron = \"{}\"\nplay = [\"a.wav\"]\nmax_minutes = 5\n",
            cron_at(t0)
        ),
    );
    let n = &b.bulletin("thuong", Priority::Normal, 2.0);
    let nkey = &bulletin_key(n, 1);
    let skey = &format!(
        "chieu@{}",
        t0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    run_with(b, |intake, _| async move {
        // Before the session: it waits for it, and airs after its last item.
        intake
            .send(IntakeEvent::Ready(Box::new(n.clone())))
            .await
            .unwrap();
        wait_records(b, 30, "the bulletin's record", |r| !the(r, nkey).is_empty()).await;
    })
    .await;
    let records = b.records();
    let all = show(&records);
    let s = the(&records, skey);
    assert_eq!(s.len(), 1, "{all}");
    assert_eq!(s[0].outcome, Outcome::Aired, "not interrupted: {all}");
    let nr = the(&records, nkey);
    assert_eq!(nr[0].outcome, Outcome::Aired, "{all}");
    assert_bulletin_record(nr[0], n, 1);
    let session_end = s[0].actual_start.unwrap().to_utc() + Duration::seconds(4);
    let off = (nr[0].actual_start.unwrap().to_utc() - session_end).num_milliseconds();
    assert!(
        (0..=1_500).contains(&off),
        "{off} ms after the session: {all}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancel_stops_a_bulletin_on_air() {
    let b = &Bench::new();
    b.schedule("", "");
    let e = &b.bulletin("huy", Priority::Emergency, 20.0);
    let ekey = &bulletin_key(e, 1);
    let id = e.bulletin.id;
    run_with(b, |intake, _| async move {
        intake
            .send(IntakeEvent::Ready(Box::new(e.clone())))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        intake
            .send(IntakeEvent::Cancelled { id, at: Utc::now() })
            .await
            .unwrap();
        wait_records(b, 10, "the bulletin's record", |r| !the(r, ekey).is_empty()).await;
    })
    .await;
    let records = b.records();
    let all = show(&records);
    let r = the(&records, ekey);
    assert_eq!(r.len(), 1, "{all}");
    assert_eq!(r[0].outcome, Outcome::Partial, "{all}");
    assert_eq!(
        r[0].reason_code,
        Some(ReasonCode::BulletinCancelled),
        "{all}"
    );
    assert!(r[0].aired_secs > 2.0 && r[0].aired_secs < 6.0, "{all}");
    assert_bulletin_record(r[0], e, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn an_airing_already_in_the_journal_never_airs_again_after_a_restart() {
    let b = &Bench::new();
    b.schedule("", "");
    let e = &b.bulletin("mot-lan", Priority::Emergency, 1.5);
    let key = &bulletin_key(e, 1);
    run_with(b, |intake, _| async move {
        intake
            .send(IntakeEvent::Ready(Box::new(e.clone())))
            .await
            .unwrap();
        wait_records(b, 20, "the bulletin's record", |r| !the(r, key).is_empty()).await;
    })
    .await;
    assert_eq!(the(&b.records(), key).len(), 1);
    // Restarted: the journal accounts for it, and the same bulletin handed over again (a replay,
    // or the intake fetching it again) does not air.
    run_with(b, |intake, aired| async move {
        assert!(aired.accounted(&e.bulletin.id.to_hex(), 1));
        intake
            .send(IntakeEvent::Ready(Box::new(e.clone())))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    })
    .await;
    let records = b.records();
    assert_eq!(the(&records, key).len(), 1, "{}", show(&records));
}

#[tokio::test(flavor = "current_thread")]
async fn an_expired_bulletin_is_dropped_with_bulletin_expired() {
    let b = &Bench::new();
    b.schedule("", "");
    let mut e = b.bulletin("het-han", Priority::Emergency, 1.0);
    e.bulletin.not_before = Utc::now() - Duration::minutes(10);
    e.bulletin.not_after = Utc::now() - Duration::seconds(1);
    e.bulletin.repeats = Repeats {
        count: 2,
        interval_secs: 60,
    };
    let (k1, k2) = (&bulletin_key(&e, 1), &bulletin_key(&e, 2));
    let e = &e;
    run_with(b, |intake, _| async move {
        intake
            .send(IntakeEvent::Ready(Box::new(e.clone())))
            .await
            .unwrap();
        wait_records(b, 10, "the drop", |r| !the(r, k2).is_empty()).await;
    })
    .await;
    let records = b.records();
    let all = show(&records);
    for (k, repeat) in [(&k1, 1), (&k2, 2)] {
        let r = the(&records, k);
        assert_eq!(r.len(), 1, "{all}");
        assert_eq!(r[0].outcome, Outcome::Skipped, "{all}");
        assert_eq!(r[0].reason_code, Some(ReasonCode::BulletinExpired), "{all}");
        assert_eq!(r[0].aired_secs, 0.0);
        assert_bulletin_record(r[0], e, repeat);
    }
    assert!(
        b.wav().metadata().map_or(0, |m| m.len()) < 100,
        "nothing aired"
    );
}
