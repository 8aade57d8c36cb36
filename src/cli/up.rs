//! `loa up` — bring the whole system up on this host: the collector and one station per schedule,
//! plus a demo station that chimes every minute. The launch, the supervisor and the demo are
//! library code ([`crate::launch`], [`crate::supervisor`], [`crate::demo`]); this file only reads
//! the arguments.
//!
//! **Invariant:** exit 2 when a schedule has errors (nothing started), 0 only when every child
//! exited 0 after being asked to stop, 1 otherwise.

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::launch::{self, DEFAULT_PORT, DEFAULT_STOP_GRACE_SECS, OutputChoice, UpEnd, UpOptions};
use crate::layout::{Chosen, Layout};

/// Arguments of `loa up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory of station schedules (one `<station-id>.toml` each). Default: `schedules`.
    #[arg(long)]
    pub schedules: Option<PathBuf>,
    /// Audio root the schedules' file names are relative to. Default: `audio`.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// Directory for all state (database, journals, keys, WAV output). Created if missing.
    /// Default: `$LOA_HOME`, else `var` (docs/operations.md, "The state layout").
    #[arg(long)]
    pub var: Option<PathBuf>,
    /// Collector port on 127.0.0.1.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Where stations play: the sound card, WAV files under var/air/<station>/, or auto-detect.
    #[arg(long, value_enum, default_value_t = OutputArg::Auto)]
    pub output: OutputArg,
    /// Do not run the demo station (the chime every minute).
    #[arg(long)]
    pub no_demo: bool,
    /// Seconds each child gets to exit after SIGTERM before it is killed.
    #[arg(long, default_value_t = DEFAULT_STOP_GRACE_SECS)]
    pub stop_grace_secs: u64,
}

/// Where the stations' audio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    /// The sound card if one is present and its default device opens, else WAV files.
    Auto,
    /// The default sound device.
    Device,
    /// WAV files under var/air/<station>/.
    Wav,
}

impl From<OutputArg> for OutputChoice {
    fn from(a: OutputArg) -> Self {
        match a {
            OutputArg::Auto => OutputChoice::Auto,
            OutputArg::Device => OutputChoice::Device,
            OutputArg::Wav => OutputChoice::Wav,
        }
    }
}

/// Run `loa up`.
pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot locate the running loa binary")?;
    let layout = match &args.var {
        Some(v) => Layout::at(v.clone(), Chosen::Flag),
        None => Layout::for_up(),
    };
    let opts = UpOptions {
        exe,
        schedules: args.schedules.unwrap_or_else(|| layout.schedules.clone()),
        audio: args.audio.unwrap_or_else(|| layout.audio.clone()),
        layout,
        port: args.port,
        output: args.output.into(),
        demo: !args.no_demo,
        stop_grace: Duration::from_secs(args.stop_grace_secs),
    };
    Ok(match launch::up(opts)? {
        UpEnd::InvalidSchedules(_) => ExitCode::from(2),
        UpEnd::Stopped { clean: true } => ExitCode::SUCCESS,
        UpEnd::Stopped { clean: false } => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use crate::launch::children;
    use std::ffi::OsString;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::path::Path;

    /// The real `loa station` and `loa collector` parsers accept exactly what `children` builds.
    #[test]
    fn children_command_lines_parse_with_the_real_subcommands() {
        use clap::Parser;
        let mut lines: Vec<Vec<OsString>> = [
            children::OutputArg::Device,
            children::OutputArg::Wav("/v/x.wav".into()),
        ]
        .iter()
        .map(|out| {
            let (s, a, d) = (Path::new("/v/s"), Path::new("/v/a"), Path::new("/v/d"));
            children::station_args("demo", s, a, d, "http://127.0.0.1:1", out)
        })
        .collect();
        lines.push(children::collector_args(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
            Path::new("/v/c.db"),
            Path::new("/v/c.toml"),
            Path::new("/v/admin-token"),
        ));
        for args in lines {
            let argv = std::iter::once(OsString::from("loa")).chain(args.iter().cloned());
            if let Err(e) = crate::cli::Cli::try_parse_from(argv) {
                panic!("{args:?}: {e}");
            }
        }
    }
}
