//! `loa devices` — List audio output devices (names usable as `--output device:NAME`).

use crate::output;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `loa devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {}

/// Run `loa devices`. Succeeds on a machine without a sound card: it says so.
pub fn run(_args: DevicesArgs) -> anyhow::Result<ExitCode> {
    match output::list_devices() {
        Ok(devices) if !devices.is_empty() => {
            for d in &devices {
                println!(
                    "{} {}  [{}]  id={}",
                    if d.is_default { "*" } else { " " },
                    d.name,
                    d.default_config,
                    d.id
                );
            }
            println!("(* = default; use `--output device:NAME`)");
        }
        Ok(_) => println!(
            "no audio output devices found (no sound card, or ALSA has none configured); \
             `--output wav:PATH` and `--output null` still work"
        ),
        Err(e) => println!(
            "cannot list audio output devices: {e}; `--output wav:PATH` and `--output null` \
             still work"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
