//! `loa plan … | head`: a reader that goes away early is not an error (no "Broken pipe").

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn plan_into_a_closed_pipe_exits_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loa"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Five years of the city's plan: far more than a pipe buffer holds.
        .args([
            "plan",
            "--station",
            "tp-quang-ngai",
            "--from",
            "2026-01-01",
            "--to",
            "2030-12-31",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
        // Dropping the reader closes the pipe, as `head -1` does.
    }
    assert!(first.contains("tp-quang-ngai"), "{first}");
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.is_empty(), "stderr:\n{stderr}");
}
