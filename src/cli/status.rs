//! `loa status` — Show station status from the collector: the table of
//! [`crate::collector::table`], from the collector's `GET /api/v1/stations`.
//!
//! **Invariant:** read-only; the table is a pure function of the collector's answer.

use anyhow::Context as _;
use clap::Args;
use std::process::ExitCode;

use crate::collector::status::StationStatus;
use crate::collector::table::{alert_lines, table};

/// Arguments of `loa status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Collector base URL. Default: the URL the collector recorded in the state directory
    /// (`<state>/collector.url`, written when it starts listening; docs/operations.md, "The
    /// state layout"), else http://127.0.0.1:8080.
    #[arg(long)]
    pub collector: Option<String>,
}

/// Run `loa status`.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (base, whence) = match args.collector {
        Some(u) => (u, "given with --collector".to_string()),
        None => {
            let layout = crate::layout::Layout::detect();
            let (u, from) = layout.collector_url();
            (u, format!("{from} [{}]", layout.describe()))
        }
    };
    let url = format!("{}/api/v1/stations", base.trim_end_matches('/'));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let statuses: Vec<StationStatus> = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let resp = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url} (collector URL {whence})"))?;
        let status = resp.status();
        if !status.is_success() {
            anyhow::bail!("GET {url}: HTTP {status}");
        }
        resp.json().await.with_context(|| format!("decoding {url}"))
    })?;
    print!("{}", table(&statuses));
    let alerts = alert_lines(&statuses);
    if !alerts.is_empty() {
        print!("\nCảnh báo:\n{alerts}");
    }
    Ok(ExitCode::SUCCESS)
}
