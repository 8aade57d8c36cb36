//! The outside programs the tests drive for real (icecast2, PulseAudio, Chromium, sox, lame,
//! Debian's Python with openpyxl, systemd's tools…), checked before they are spawned. Included by
//! every test family's helper module (`collector_common`, `playout_support`, `relay_support`,
//! `station_common`) and by the tests that have none, so there is one rule and one message.
//!
//! **Invariant:** a test that needs a missing tool fails at once with a message naming the tool,
//! the Debian package that brings it and `bash scripts/deps.sh test` (which installs every one of
//! them) — never an obscure panic further on, a hang, or a silent skip.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The command that installs every tool the test suite drives.
pub const INSTALL_ALL: &str = "bash scripts/deps.sh test";

/// Where `name` is: itself when it is a path (contains `/`), else the first executable file of
/// that name in a directory of `$PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

/// What to print when `name` (from Debian package `package`) is missing.
pub fn missing_tool_message(name: &str, package: &str) -> String {
    format!(
        "`{name}` not found (this test runs it for real): run `{INSTALL_ALL}`, or \
         `apt-get install {package}`"
    )
}

/// The path of tool `name`, from Debian package `package`; fails the test with
/// [`missing_tool_message`] when it is not installed.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| panic!("{}", missing_tool_message(name, package)))
}

/// Fails the test unless `python` can import `module` (from Debian package `package`).
pub fn require_python_module(python: &str, module: &str, package: &str) {
    require_tool(python, "python3");
    let ok = Command::new(python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{python} cannot import `{module}` (this test opens the file with it): run \
         `{INSTALL_ALL}`, or `apt-get install {package}`"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_fails_with_the_package_and_the_install_command() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("/bin/sh").is_some());
        assert!(find_tool("no-such-tool-loa-test").is_none());
        let msg = std::panic::catch_unwind(|| require_tool("no-such-tool-loa-test", "pkg-x"))
            .err()
            .and_then(|e| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(
            msg.contains("`no-such-tool-loa-test` not found")
                && msg.contains("bash scripts/deps.sh test")
                && msg.contains("apt-get install pkg-x"),
            "{msg}"
        );
    }
}
