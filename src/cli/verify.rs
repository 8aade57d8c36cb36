//! `loa verify` — Verify an exported JSON airing log offline.

use anyhow::Context as _;
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
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
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
    let v = verify_export(&text, registry.as_ref());
    if let Some(p) = &v.period {
        println!("period {} ({} to {})", p.label, p.from, p.to);
    }
    for p in &v.problems {
        println!("FAIL {p}");
    }
    for s in &v.stations {
        let range = match (s.first_seq, s.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..{b}"),
            _ => "no records".into(),
        };
        if s.problems.is_empty() {
            println!(
                "ok   {}: {} records, {range}, chain and signatures valid",
                s.id, s.records
            );
        } else {
            for p in &s.problems {
                println!("FAIL {}: {p}", s.id);
            }
        }
    }
    if v.ok() {
        println!(
            "verified: {} stations complete and unaltered",
            v.stations.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("NOT verified");
        Ok(ExitCode::FAILURE)
    }
}
