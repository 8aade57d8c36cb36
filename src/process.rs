//! Process-wide set-up of `loa`'s commands: where log lines go and how they look, and the stop
//! signals of the long-running commands.
//!
//! **Invariant:** each function here is called once, at process start, before other threads
//! exist (the global tracing subscriber); nothing here decides anything about
//! airing or records. Log lines always go to stderr, never stdout (which carries the commands'
//! output), with colour codes only on a terminal.

use tracing_subscriber::EnvFilter;

/// What the logs show when the environment does not say: `info`, the decoder's per-file chatter
/// aside.
pub const DEFAULT_LOG_FILTER: &str =
    "info,symphonia=warn,symphonia_format_ogg=warn,symphonia_core=warn";

/// The environment variable the station and `loa play`/`loa render` read their log filter from.
pub const LOG_ENV: &str = "LOA_LOG";
/// The environment variable the collector reads its log filter from (`tracing`'s default).
pub const COLLECTOR_LOG_ENV: &str = "RUST_LOG";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line (with the current span).
    Json,
}

/// Install the global log subscriber: filter from `env_var` (else [`DEFAULT_LOG_FILTER`]), lines
/// on stderr in `format`. A second call does nothing.
pub fn init_logging(env_var: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_env(env_var).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: journald, log files and `loa up` get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A future that completes on the first SIGTERM (systemd, `loa up`) or SIGINT (a terminal's
/// Ctrl-C). Call inside the runtime.
pub fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
