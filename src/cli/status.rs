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
    /// File holding a personal API token (`loa user token NAME > FILE`, or "My account" in the
    /// web app). Default: `$LOA_TOKEN`, else `<state>/api-token` (made by `loa up` for its demo
    /// admin).
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
}

/// The environment variable `loa status` reads a personal API token from.
pub const TOKEN_ENV: &str = "LOA_TOKEN";

/// The token to send: `--token-file`, else `$LOA_TOKEN`, else the layout's `api-token` when it
/// exists; `None` when there is none (the collector then answers 401, explained).
pub(super) fn token(args_file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|t| t.trim().to_string())
            .with_context(|| format!("đọc mã truy cập {}", p.display()))
    };
    if let Some(p) = args_file {
        return read(p).map(Some);
    }
    if let Ok(t) = std::env::var(TOKEN_ENV)
        && !t.trim().is_empty()
    {
        return Ok(Some(t.trim().to_string()));
    }
    let default = crate::layout::Layout::detect().api_token();
    if default.is_file() {
        return read(&default).map(Some);
    }
    Ok(None)
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
    let token = token(args.token_file.as_deref())?;
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
        let mut req = client.get(&url);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("GET {url} (collector URL {whence})"))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            anyhow::bail!(
                "GET {url}: HTTP 401 — cần mã truy cập cá nhân: `loa user token TÊN > tệp` rồi \
                 `loa status --token-file tệp` (hoặc biến môi trường {TOKEN_ENV}); {}",
                if token.is_some() {
                    "mã đã gửi không hợp lệ, đã thu hồi, hoặc người dùng đã bị khóa"
                } else {
                    "chưa gửi mã nào"
                }
            );
        }
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
