//! The systemd units, sysusers and tmpfiles snippets in `packaging/`, checked by systemd's own
//! tools (Debian package `systemd`): `systemd-analyze verify` on copies of the units whose
//! `/usr/bin/loa` is rewritten to the binary cargo just built (verify checks that ExecStart
//! exists), `systemd-sysusers --root` and `systemd-tmpfiles --root` into a temp root.
//!
//! `systemd-analyze verify` exits 0 on unknown keys and unparsable values (it only warns), so a
//! unit counts as broken when verify fails OR prints any diagnostic naming one of our units; a
//! deliberately broken copy proves the check can fail.

mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 2] = ["loa-station@.service", "loa-collector.service"];

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging")
}

/// A systemd tool by name, or a failure that says what to install.
fn tool(name: &str) -> String {
    tools::require_tool(name, "systemd");
    let found = Command::new(name).arg("--version").output();
    match found {
        Ok(o) if o.status.success() => name.to_string(),
        _ => panic!(
            "`{name}` is missing or broken: install the Debian package `systemd` \
             (apt-get install systemd) to run the packaging tests"
        ),
    }
}

/// Copies of the units in a temp dir with `/usr/bin/loa` pointing at the built binary.
fn copy_units(dir: &Path) {
    let bin = env!("CARGO_BIN_EXE_loa");
    for unit in UNITS {
        let text = std::fs::read_to_string(packaging().join("systemd").join(unit))
            .unwrap_or_else(|e| panic!("read packaging/systemd/{unit}: {e}"));
        assert!(
            text.contains("ExecStart=/usr/bin/loa "),
            "{unit}: ExecStart must run /usr/bin/loa"
        );
        std::fs::write(dir.join(unit), text.replace("/usr/bin/loa", bin)).expect("write unit");
    }
}

/// Run `systemd-analyze verify` on `units` (file names in `dir`; a template is verified through
/// an instance). Err with every diagnostic when anything is wrong.
fn verify(dir: &Path, units: &[&str]) -> Result<(), String> {
    let analyze = tool("systemd-analyze");
    let args: Vec<PathBuf> = units
        .iter()
        .map(|u| dir.join(u.replace("@.service", "@ward-test.service")))
        .collect();
    let out = Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .args(&args)
        // notice: warnings and errors, without debug chatter.
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .map_err(|e| format!("cannot run systemd-analyze: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir_text = dir.display().to_string();
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains(&dir_text) || l.contains("loa-station@") || l.contains("loa-collector")
        })
        .collect();
    if !out.status.success() || !ours.is_empty() {
        return Err(format!(
            "systemd-analyze verify: {}\n{}",
            out.status,
            text.trim()
        ));
    }
    if !text.trim().is_empty() {
        // Noise about the host's own units is not ours to fix; show it for the curious.
        eprintln!("systemd-analyze said (not about our units):\n{text}");
    }
    Ok(())
}

/// `[Section] Key=value` pairs of a unit (values of repeated keys in order).
fn settings(unit: &str) -> BTreeMap<(String, String), Vec<String>> {
    let text = std::fs::read_to_string(packaging().join("systemd").join(unit))
        .unwrap_or_else(|e| panic!("read {unit}: {e}"));
    let mut section = String::new();
    let mut map: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            map.entry((section.clone(), k.trim().to_string()))
                .or_default()
                .push(v.trim().to_string());
        }
    }
    map
}

fn get<'a>(map: &'a BTreeMap<(String, String), Vec<String>>, unit: &str, key: &str) -> &'a str {
    map.get(&("Service".to_string(), key.to_string()))
        .and_then(|v| v.last())
        .map(String::as_str)
        .unwrap_or_else(|| panic!("{unit}: [Service] {key}= is missing"))
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_units(dir.path());
    if let Err(e) = verify(dir.path(), &UNITS) {
        panic!("{e}");
    }
}

#[test]
fn a_broken_unit_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_units(dir.path());
    let path = dir.path().join("loa-collector.service");
    let text = std::fs::read_to_string(&path).expect("read");
    // A typo in a value: systemd only warns and exits 0; our check must still fail.
    std::fs::write(&path, text.replace("Type=notify", "Type=notifyy")).expect("write");
    let err = verify(dir.path(), &["loa-collector.service"]).expect_err("typo must be caught");
    assert!(err.contains("notifyy"), "{err}");

    // A missing binary: systemd-analyze itself fails.
    let dir2 = tempfile::tempdir().expect("tempdir");
    copy_units(dir2.path());
    let path = dir2.path().join("loa-station@.service");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace(env!("CARGO_BIN_EXE_loa"), "/nonexistent/loa"),
    )
    .expect("write");
    let err = verify(dir2.path(), &["loa-station@.service"]).expect_err("missing binary");
    assert!(err.contains("/nonexistent/loa"), "{err}");
}

#[test]
fn units_say_what_operations_relies_on() {
    for unit in UNITS {
        let s = settings(unit);
        for (key, want) in [
            ("Type", "notify"),
            ("NotifyAccess", "main"),
            ("Restart", "on-failure"),
            ("User", "loa"),
            ("Group", "loa"),
            ("KillSignal", "SIGTERM"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("NoNewPrivileges", "yes"),
            ("ConfigurationDirectory", "loa"),
        ] {
            assert_eq!(get(&s, unit, key), want, "{unit}: {key}");
        }
        for key in ["WatchdogSec", "RestartSec", "TimeoutStopSec"] {
            assert!(!get(&s, unit, key).is_empty(), "{unit}: {key}");
        }
        assert!(
            s.contains_key(&("Unit".to_string(), "StartLimitBurst".to_string())),
            "{unit}: start limits"
        );
        assert!(
            s.get(&("Service".to_string(), "Environment".to_string()))
                .is_some_and(|v| v.iter().any(|e| e == "LOA_HOME=/var/lib/loa")),
            "{unit}: the state layout's directory"
        );
    }
    let st = settings("loa-station@.service");
    assert_eq!(
        get(&st, "station", "ExecStart"),
        "/usr/bin/loa station --station %i --schedules /etc/loa/schedules \
         --audio /var/lib/loa/audio --data /var/lib/loa/station/%i --output ${LOA_OUTPUT} \
         $LOA_STATION_ARGS"
    );
    assert_eq!(get(&st, "station", "Environment"), "LOA_OUTPUT=device");
    assert_eq!(
        get(&st, "station", "EnvironmentFile"),
        "-/etc/loa/station-%i.env"
    );
    assert_eq!(get(&st, "station", "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(get(&st, "station", "SupplementaryGroups"), "audio");
    assert_eq!(get(&st, "station", "StateDirectory"), "loa/station/%i");
    let co = settings("loa-collector.service");
    assert_eq!(
        get(&co, "collector", "ExecStart"),
        "/usr/bin/loa collector --listen ${LOA_LISTEN} --db ${LOA_DB} \
         --config /var/lib/loa/collector.toml $LOA_COLLECTOR_ARGS"
    );
    assert_eq!(
        get(&co, "collector", "Environment"),
        "LOA_LISTEN=127.0.0.1:8080"
    );
    assert_eq!(
        get(&co, "collector", "EnvironmentFile"),
        "-/etc/loa/collector.env"
    );
    assert_eq!(get(&co, "collector", "StateDirectory"), "loa");
}

/// The command line systemd would run, as words: `%i` is `instance`, `${VAR}` the unit's
/// `Environment=` default, and an unset `$VAR` (no env file) expands to no word at all.
fn exec_words(unit: &str, instance: &str) -> Vec<String> {
    let s = settings(unit);
    let defaults: BTreeMap<String, String> = s
        .get(&("Service".to_string(), "Environment".to_string()))
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    get(&s, unit, "ExecStart")
        .split_whitespace()
        .filter_map(|w| {
            let w = w.replace("%i", instance);
            if let Some(var) = w.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                let value = defaults.get(var);
                assert!(
                    value.is_some(),
                    "{unit}: ${{{var}}} has no Environment= default"
                );
                value.cloned()
            } else if w.starts_with('$') {
                None
            } else {
                Some(w)
            }
        })
        .collect()
}

/// The units' command lines (with the default environment) are accepted by the real `loa`
/// argument parser: a renamed or removed flag fails here, not on a ward box at 05:30.
#[test]
fn unit_command_lines_parse_with_the_real_binary() {
    use clap::Parser;
    for unit in UNITS {
        let words = exec_words(unit, "ward-test");
        assert_eq!(words[0], "/usr/bin/loa", "{unit}");
        if let Err(e) = loa::cli::Cli::try_parse_from(&words) {
            panic!("{unit}: {words:?}: {e}");
        }
    }
    // And a broken one is caught (the check can fail).
    let mut words = exec_words("loa-collector.service", "x");
    words.push("--no-such-flag".into());
    assert!(loa::cli::Cli::try_parse_from(&words).is_err());
}

#[test]
fn sysusers_and_tmpfiles_create_the_user_and_directories() {
    let sysusers = tool("systemd-sysusers");
    let tmpfiles = tool("systemd-tmpfiles");
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");

    let out = Command::new(sysusers)
        .arg(format!("--root={}", root.path().display()))
        .arg(packaging().join("sysusers.d/loa.conf"))
        .output()
        .expect("run systemd-sysusers");
    assert!(
        out.status.success(),
        "systemd-sysusers: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
    let user = passwd
        .lines()
        .find(|l| l.starts_with("loa:"))
        .unwrap_or_else(|| panic!("no loa user in {passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields.get(5), Some(&"/var/lib/loa"), "{user}");
    assert!(
        fields.get(6).is_some_and(|s| s.ends_with("nologin")),
        "{user}"
    );
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("group");
    let gid: u32 = group
        .lines()
        .find(|l| l.starts_with("loa:"))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|g| g.parse().ok())
        .unwrap_or_else(|| panic!("no loa group in {group}"));

    let out = Command::new(tmpfiles)
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(packaging().join("tmpfiles.d/loa.conf"))
        .output()
        .expect("run systemd-tmpfiles");
    assert!(
        out.status.success(),
        "systemd-tmpfiles: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::MetadataExt;
    let audio = std::fs::metadata(root.path().join("var/lib/loa/audio")).expect("audio dir");
    assert!(audio.is_dir());
    assert_eq!(audio.gid(), gid, "audio dir belongs to group loa");
    let uid: u32 = fields
        .get(2)
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no uid in {user}"));
    // State directories exist, owned by loa, before any unit starts: keygen and register
    // can run at install time.
    for dir in ["var/lib/loa", "var/lib/loa/station"] {
        let m = std::fs::metadata(root.path().join(dir)).expect(dir);
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (uid, gid, 0o750),
            "{dir}"
        );
    }
    assert!(root.path().join("etc/loa/schedules").is_dir());
}
