use super::core::*;
use super::*;
use chrono::TimeZone;
use std::collections::BTreeMap;

fn tone() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/tone.ogg")
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, 10).unwrap()
}

const STATION: &str = "id = \"phuong-a\"\nname = \"Phường A\"\nkind = \"ward\"\narea_code = \"21100\"\n\n[[slots]]\nid = \"sang\"\ncron = \"0 6 * * *\"\nplay = [\"jingle.ogg\"]\n";

fn playable(_: &Path) -> Option<AudioFacts> {
    Some(AudioFacts::Playable { duration_secs: 5.0 })
}

#[test]
fn next_version_only_increases() {
    assert_eq!(next_version(None), 1);
    assert_eq!(next_version(Some(1)), 2);
    assert_eq!(next_version(Some(41)), 42);
    assert_eq!(next_version(Some(u64::MAX)), u64::MAX);
}

#[test]
fn the_diff_is_unified_with_context_and_signs() {
    let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
    let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\n";
    let d = diff(old, new);
    let kinds: Vec<&str> = d.iter().map(|l| l.kind).collect();
    assert_eq!(d[0].kind, "hunk");
    assert!(d[0].text.starts_with("@@ -1,8 +1,9 @@"), "{:?}", d[0]);
    assert!(d.iter().any(|l| l.kind == "del" && l.text == "-d"), "{d:?}");
    assert!(d.iter().any(|l| l.kind == "add" && l.text == "+D"), "{d:?}");
    assert!(d.iter().any(|l| l.kind == "add" && l.text == "+i"), "{d:?}");
    assert!(kinds.contains(&"same"));
    assert!(diff(old, old).is_empty());
    // Markup in a schedule is text: the template escapes it (no HTML is built here).
    let d = diff("", "name = \"<b>\"\n");
    assert_eq!(d[1].text, "+name = \"<b>\"");
}

#[test]
fn a_bad_text_is_refused_at_line_and_column_and_a_wrong_id_at_its_line() {
    let bad = STATION.replace("cron = \"0 6 * * *\"", "cron = \"0 25 * * *\"");
    let e = check_station(
        "phuong-a",
        &bad,
        None,
        Path::new("/x"),
        today(),
        &mut playable,
    )
    .err()
    .unwrap();
    assert_eq!(
        (e[0].line, e[0].document.clone()),
        (8, Document::Station),
        "{e:?}"
    );
    assert!(e[0].column > 1, "{e:?}");
    let e = check_station(
        "phuong-b",
        STATION,
        None,
        Path::new("/x"),
        today(),
        &mut playable,
    )
    .err()
    .unwrap();
    assert_eq!((e[0].line, e[0].field.as_str()), (1, "id"), "{e:?}");
    // A missing file is a problem too (the centre does not have it).
    let e = check_station(
        "phuong-a",
        STATION,
        None,
        Path::new("/x"),
        today(),
        &mut |_| None,
    )
    .err()
    .unwrap();
    assert!(e[0].message.contains("jingle.ogg"), "{e:?}");
    assert!(
        check_station(
            "phuong-a",
            STATION,
            None,
            Path::new("/x"),
            today(),
            &mut playable
        )
        .is_ok()
    );
}

const PROGRAMS: &str = "# Chương trình của thành phố\n\n[[programs]]\nid = \"cchc\"\ntitle = \"CCHC\"\ncategory = \"cchc\"\nfile = \"cchc.ogg\"\n\n[[programs]]\nid = \"tin\"\ncategory = \"news\"\nfile = \"tin.ogg\"\n";

#[test]
fn shared_programs_are_merged_when_used_and_their_errors_located_in_their_document() {
    let own = format!(
        "{STATION}\n[[slots]]\nid = \"chieu\"\ncron = \"0 17 * * *\"\nplay = [\"program:cchc\"]\n"
    );
    // Without the shared programs, `cchc` is unknown.
    assert!(
        check_station(
            "phuong-a",
            &own,
            None,
            Path::new("/x"),
            today(),
            &mut playable
        )
        .is_err()
    );
    let shared = SharedPrograms {
        version: 3,
        text: PROGRAMS.into(),
    };
    let c = check_station(
        "phuong-a",
        &own,
        Some(&shared),
        Path::new("/x"),
        today(),
        &mut playable,
    )
    .unwrap();
    assert!(c.merged.text.starts_with(&own));
    assert!(c.merged.text.contains("id = \"cchc\""));
    assert!(
        !c.merged.text.contains("id = \"tin\""),
        "only what the station uses"
    );
    assert_eq!(c.merged.programs_version, Some(3));
    // A station that defines its own `cchc` keeps it.
    let mine =
        format!("{own}\n[[programs]]\nid = \"cchc\"\ncategory = \"cchc\"\nfile = \"mine.ogg\"\n");
    let c = check_station(
        "phuong-a",
        &mine,
        Some(&shared),
        Path::new("/x"),
        today(),
        &mut playable,
    )
    .unwrap();
    assert_eq!(c.merged.programs_version, None);
    // A broken shared program: the problem names the programs document and its own line.
    let broken = SharedPrograms {
        version: 4,
        text: PROGRAMS.replace("category = \"cchc\"", "category = 7"),
    };
    let e = check_station(
        "phuong-a",
        &own,
        Some(&broken),
        Path::new("/x"),
        today(),
        &mut playable,
    )
    .err()
    .unwrap();
    assert_eq!(e[0].document, Document::Programs { version: 4 }, "{e:?}");
    assert_eq!(e[0].line, 6, "{e:?}");
    // The document itself is checked as programs.
    assert_eq!(
        check_programs(PROGRAMS, 1, Path::new("/x"), today(), &mut playable).unwrap(),
        ["cchc".to_string(), "tin".to_string()]
            .into_iter()
            .collect()
    );
    let e = check_programs(
        &PROGRAMS.replace("file = \"tin.ogg\"", "file = \"tin.ogg\"\nfoo = 1"),
        2,
        Path::new("/x"),
        today(),
        &mut playable,
    )
    .err()
    .unwrap();
    assert_eq!(
        (e[0].line, e[0].document.clone()),
        (13, Document::Programs { version: 2 }),
        "{e:?}"
    );
}

#[test]
fn the_manifest_lists_every_needed_file_once_sorted_and_refuses_what_the_library_lacks() {
    let text = format!("{STATION}play2 = 1\n").replace("play2 = 1\n", "");
    let text = text.replace(
        "play = [\"jingle.ogg\"]",
        "play = [\"jingle.ogg\", \"b/x.ogg\", \"jingle.ogg\"]",
    );
    let f = |sha: &str| LibraryFile {
        sha256: sha.repeat(64),
        size: 10,
        facts: AudioFacts::Playable { duration_secs: 5.0 },
    };
    let mut lib = BTreeMap::new();
    lib.insert(PathBuf::from("jingle.ogg"), f("a"));
    lib.insert(PathBuf::from("b/x.ogg"), f("b"));
    lib.insert(PathBuf::from("unused.ogg"), f("c"));
    let at = Utc.with_ymd_and_hms(2027, 1, 10, 1, 0, 0).unwrap();
    let m = build_manifest(
        "phuong-a",
        7,
        at,
        &text,
        &mut |p| lib.get(p).cloned(),
        today(),
        MANIFEST_DAYS,
    )
    .unwrap();
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["b/x.ogg", "jingle.ogg"]);
    assert_eq!((m.v, m.version, m.days), (1, 7, 45));
    assert_eq!(m.from, "2027-01-10");
    assert_eq!(m.schedule.sha256, sha256_hex(&text));
    let body: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
    assert_eq!(body["issued_at"], "2027-01-10T01:00:00Z");
    lib.remove(Path::new("b/x.ogg"));
    assert!(
        build_manifest(
            "phuong-a",
            7,
            at,
            &text,
            &mut |p| lib.get(p).cloned(),
            today(),
            45
        )
        .is_err()
    );
    lib.insert(
        PathBuf::from("b/x.ogg"),
        LibraryFile {
            facts: AudioFacts::Undecodable("not audio".into()),
            ..f("b")
        },
    );
    assert!(
        build_manifest(
            "phuong-a",
            7,
            at,
            &text,
            &mut |p| lib.get(p).cloned(),
            today(),
            45
        )
        .is_err()
    );
}

/// A real database (SQLite, or PostgreSQL under `LOA_TEST_DB=postgres`), a real library tree
/// with a real audio file, a real registry file.
struct Site {
    _dir: tempfile::TempDir,
    db: PathBuf,
    registry: PathBuf,
    versions: Versions,
    entry: StationEntry,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::collector::db::testing::test_db(dir.path(), "collector.db");
    let tree = dir.path().join("collector/library/tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(tone(), tree.join("jingle.ogg")).unwrap();
    let registry = dir.path().join("collector.toml");
    let key = crate::wire::encode_public_key(
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
    );
    std::fs::write(
        &registry,
        format!("[[station]]\nid = \"phuong-a\"\nname = \"Phường A\"\narea_code = \"21100\"\npublic_key = \"{key}\"\n"),
    )
    .unwrap();
    let versions = Versions::open(&db, &dir.path().join("collector/schedules"), &tree).unwrap();
    let entry = super::super::registry::Registry::load(&registry)
        .unwrap()
        .get("phuong-a")
        .unwrap()
        .clone();
    Site {
        _dir: dir,
        db,
        registry,
        versions,
        entry,
    }
}

fn save(text: &str, note: &str) -> Save {
    Save {
        text: text.into(),
        note: note.into(),
        author: "lan".into(),
        address: "127.0.0.1".into(),
        now: Utc.with_ymd_and_hms(2027, 1, 10, 1, 0, 0).unwrap(),
        today: today(),
    }
}

#[test]
fn saves_number_versions_publish_the_file_and_rollback_is_a_new_version() {
    let s = site();
    let bad = STATION.replace("jingle.ogg", "khong-co.ogg");
    assert!(matches!(
        s.versions
            .publish_station(&s.registry, &s.entry, &save(&bad, ""), None),
        Err(SaveError::Invalid(_))
    ));
    assert_eq!(s.versions.latest_version("phuong-a"), None);
    assert!(
        !s.versions.managed_file("phuong-a").exists(),
        "nothing activated"
    );

    let p1 = s
        .versions
        .publish_station(&s.registry, &s.entry, &save(STATION, "đầu tiên"), None)
        .unwrap();
    assert_eq!((p1.version, p1.before.clone()), (1, None));
    assert_eq!(
        std::fs::read_to_string(s.versions.managed_file("phuong-a")).unwrap(),
        STATION
    );
    let reg = super::super::registry::Registry::load(&s.registry).unwrap();
    let e = reg.get("phuong-a").unwrap();
    assert_eq!(
        e.schedule.as_deref(),
        Some(s.versions.managed_file("phuong-a").as_path())
    );
    assert_eq!(e.audio_root.as_deref(), Some(s.versions.library_tree()));
    assert_eq!(e.public_key, s.entry.public_key, "the key is kept");

    let v2 = STATION.replace("0 6 * * *", "30 6 * * *");
    let e = reg.get("phuong-a").unwrap().clone();
    let p2 = s
        .versions
        .publish_station(&s.registry, &e, &save(&v2, ""), None)
        .unwrap();
    assert_eq!(
        (p2.version, p2.before.clone()),
        (2, Some((1, p1.sha256.clone())))
    );
    let p3 = s
        .versions
        .rollback_station(&s.registry, &e, 1, &save("", ""))
        .unwrap();
    assert_eq!((p3.version, p3.sha256.clone()), (3, p1.sha256.clone()));
    assert!(matches!(
        s.versions
            .rollback_station(&s.registry, &e, 9, &save("", "")),
        Err(SaveError::NoSuchVersion(9))
    ));
    let all = s.versions.read(|c| db::list(c, "phuong-a")).unwrap();
    let numbers: Vec<u64> = all.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(
        (all[0].rollback_of, all[0].note.as_str()),
        (Some(1), "Khôi phục phiên bản 1")
    );
    assert_eq!(all[0].text, STATION);
    assert_eq!(s.versions.latest_version("phuong-a"), Some(3));
    // The rows are append-only.
    assert!(
        s.versions
            .read(|c| c.execute(
                "UPDATE schedule_versions SET text = 'x'",
                crate::collector::db::params![]
            ))
            .is_err()
    );
    // Every publish is in the audit log, before → after.
    let log = s
        .versions
        .read(|c| super::super::audit::list(c, 10, 0))
        .unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].action, action::SCHEDULE_ROLLBACK);
    assert_eq!(
        log[0].before.as_deref(),
        Some(format!("phiên bản 2 (sha256 {})", p2.sha256).as_str())
    );
    // A managed file left behind by a crash is rewritten from the database at start.
    std::fs::write(s.versions.managed_file("phuong-a"), "cũ").unwrap();
    let again = Versions::open(
        &s.db,
        &s._dir.path().join("collector/schedules"),
        s.versions.library_tree(),
    )
    .unwrap();
    assert_eq!(again.latest_version("phuong-a"), Some(3));
    assert_eq!(
        std::fs::read_to_string(again.managed_file("phuong-a")).unwrap(),
        STATION
    );
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn t(s: &str) -> DateTime<Utc> {
    let d = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    Utc.from_utc_datetime(&d)
}

/// The windows of `versions` ((number, activation)) within November 2026 (UTC), as
/// (number, from, to).
fn check_in_force(versions: &[(u64, &str)], expected: &[(u64, &str, &str)]) {
    let acts: Vec<Activation> = versions
        .iter()
        .map(|&(version, at)| Activation { version, at: t(at) })
        .collect();
    let got = in_force(&acts, t("2026-11-01 00:00"), t("2026-12-01 00:00"));
    let want: Vec<Window> = expected
        .iter()
        .map(|&(version, from, to)| Window {
            version,
            from: t(from),
            to: t(to),
        })
        .collect();
    assert_eq!(got, want, "versions {versions:?}");
}

#[test]
fn in_force_gives_each_version_the_part_of_the_month_it_governed() {
    const START: &str = "2026-11-01 00:00";
    const END: &str = "2026-12-01 00:00";
    // No version at all: nothing governs.
    check_in_force(&[], &[]);
    // Published before the month: it governs all of it.
    check_in_force(&[(1, "2026-10-20 08:00")], &[(1, START, END)]);
    // No version before the month (first published mid-month): the first one governs the part
    // before it too (no earlier schedule is known to the centre).
    check_in_force(&[(1, "2026-11-10 08:00")], &[(1, START, END)]);
    // Published after the month only: the first version governs it.
    check_in_force(
        &[(1, "2026-12-03 08:00"), (2, "2026-12-05 08:00")],
        &[(1, START, END)],
    );
    // Publish mid-month: the old one before, the new one from its instant.
    check_in_force(
        &[(1, "2026-10-20 08:00"), (2, "2026-11-15 09:30")],
        &[(1, START, "2026-11-15 09:30"), (2, "2026-11-15 09:30", END)],
    );
    // Several publishes; the ones before the month leave only the last of them.
    check_in_force(
        &[
            (1, "2026-09-01 00:00"),
            (2, "2026-10-01 00:00"),
            (3, "2026-11-05 00:00"),
            (4, "2026-11-20 12:00"),
            (5, "2026-12-02 00:00"),
        ],
        &[
            (2, START, "2026-11-05 00:00"),
            (3, "2026-11-05 00:00", "2026-11-20 12:00"),
            (4, "2026-11-20 12:00", END),
        ],
    );
    // A rollback is a new version (3, with 1's text): 2 keeps what it governed.
    check_in_force(
        &[
            (1, "2026-10-01 00:00"),
            (2, "2026-11-10 00:00"),
            (3, "2026-11-12 00:00"),
        ],
        &[
            (1, START, "2026-11-10 00:00"),
            (2, "2026-11-10 00:00", "2026-11-12 00:00"),
            (3, "2026-11-12 00:00", END),
        ],
    );
    // Published exactly at the month's start: it governs all of it.
    check_in_force(&[(1, "2026-10-01 00:00"), (2, START)], &[(2, START, END)]);
    // Two versions at one instant (the shared programs restating a station): the later wins.
    check_in_force(
        &[
            (1, "2026-10-01 00:00"),
            (2, "2026-11-10 00:00"),
            (3, "2026-11-10 00:00"),
        ],
        &[(1, START, "2026-11-10 00:00"), (3, "2026-11-10 00:00", END)],
    );
    // Listed out of order, and a clock set back: number order decides, never a step back.
    check_in_force(
        &[
            (2, "2026-11-10 00:00"),
            (1, "2026-10-01 00:00"),
            (3, "2026-11-08 00:00"),
        ],
        &[(1, START, "2026-11-10 00:00"), (3, "2026-11-10 00:00", END)],
    );
}

#[test]
fn a_station_uses_a_library_path_when_a_slot_airs_it() {
    let with_program = "id = \"phuong-a\"\nname = \"Phường A\"\nkind = \"ward\"\narea_code = \"21100\"\n\n[[programs]]\nid = \"cchc\"\ntitle = \"CCHC\"\ncategory = \"cchc\"\nepisodes = \"cchc/{yyyy}-{mm}.mp3\"\n\n[[slots]]\nid = \"sang\"\ncron = \"0 6 * * *\"\nuntil = 2027-01-31\nplay = [\"program:cchc\"]\n";
    let jan = NaiveDate::from_ymd_opt(2027, 1, 1);
    let feb = NaiveDate::from_ymd_opt(2027, 2, 1);
    let check = |text: &str, path: &str, month: Option<NaiveDate>, want: bool| {
        assert_eq!(
            uses_library_path("phuong-a", text, path, month),
            want,
            "{path} {month:?}"
        );
    };
    check(with_program, "cchc/2027-01.mp3", jan, true);
    // The slot ends in January: February's episode is not aired.
    check(with_program, "cchc/2027-02.mp3", feb, false);
    // Another month's path, or a program the slots do not name.
    check(with_program, "cchc/2027-02.mp3", jan, false);
    check(STATION, "cchc/2027-01.mp3", jan, false);
    // A placement: named as a string.
    check(STATION, "jingle.ogg", None, true);
    check(STATION, "jingle.mp3", None, false);
    check("not toml [", "cchc/2027-01.mp3", jan, false);
    // The shared programs document's patterns.
    let shared = "[[programs]]\nid = \"cchc\"\ntitle = \"Cải cách hành chính\"\ncategory = \"cchc\"\nepisodes = \"cchc/{yyyy}-{mm}.mp3\"\n";
    assert_eq!(
        shared_program_episodes(shared)
            .get("cchc")
            .map(String::as_str),
        Some("cchc/{yyyy}-{mm}.mp3")
    );
    assert_eq!(
        shared_program_titles(shared)
            .get("cchc")
            .map(String::as_str),
        Some("Cải cách hành chính")
    );
}
