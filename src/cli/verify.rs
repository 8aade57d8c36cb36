//! `loa verify` — Verify an exported JSON airing log offline.
//!
//! **Invariant:** exit 0 only when every station's run verified and its start is proven; 1 when
//! anything fails verification or cannot be proven complete at its start; 2 when the input (the
//! export, or the registry given with `--config`) cannot be read as such: nothing was verified.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::collector::registry::Registry;
use crate::report::verify_export;

/// Arguments of `loa verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The JSON export (`loa export --format json`, or `/api/v1/reports/YYYY-MM.json`).
    pub file: PathBuf,
    /// Also check the export's public keys against this registry (otherwise the keys inside the
    /// export are trusted, which proves integrity but not origin).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Run `loa verify`. Exit 0: verified; 1: the export fails verification; 2: unreadable input.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loa verify: cannot read {}: {e}", args.file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let registry = match &args.config {
        Some(p) => match Registry::load(p) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("loa verify: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let v = verify_export(
        &text,
        registry
            .as_ref()
            .map(|r| r as &dyn crate::report::StationDirectory),
    );
    if let Some(e) = &v.input_error {
        eprintln!("loa verify: {}: {e}", args.file.display());
        return Ok(ExitCode::from(2));
    }
    if let Some(p) = &v.period {
        println!(
            "period {} ({} to {}), export format version {}",
            p.label,
            p.from,
            p.to,
            v.version.unwrap_or_default()
        );
    }
    for p in &v.problems {
        println!("FAIL {p}");
    }
    for s in &v.stations {
        if s.problems.is_empty() {
            match (s.first_seq, s.last_seq) {
                (Some(a), Some(b)) => println!(
                    "ok   {}: {} records, seq {a}..{b}, chain and signatures valid",
                    s.id, s.records
                ),
                _ => println!("ok   {}: no record in the run, signatures valid", s.id),
            }
        } else {
            for p in &s.problems {
                println!("FAIL {}: {p}", s.id);
            }
        }
        for n in &s.notes {
            println!("note {}: {n}", s.id);
        }
    }
    if v.ok() {
        println!(
            "verified: {} stations complete and unaltered{}",
            v.stations.len(),
            if v.stations.iter().any(|s| !s.notes.is_empty()) {
                " (within the limits noted)"
            } else {
                ""
            }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("NOT verified");
        Ok(ExitCode::FAILURE)
    }
}
