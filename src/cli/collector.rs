//! `loa collector` — Run the central collector server.

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::collector::http::{AppState, HttpConfig, serve};
use crate::collector::registry::Registry;
use crate::report::SchedulePlans;

/// Arguments of `loa collector`.
#[derive(Debug, Args)]
pub struct CollectorArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// SQLite database (created and migrated when missing).
    #[arg(long, default_value = "var/collector.db")]
    pub db: PathBuf,
    /// Station registry (`[[station]]` id, name, area_code, public_key, schedule).
    #[arg(long, default_value = "collector.toml")]
    pub config: PathBuf,
    /// File holding the bearer token of the admin API (`POST /api/v1/admin/stations`);
    /// without it the admin API is disabled.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
}

/// Run `loa collector`.
pub fn run(args: CollectorArgs) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let registry = match Registry::load(&args.config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loa collector: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(dir) = args.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let admin_token = match &args.admin_token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("reading admin token {}", p.display()))?;
            let t = t.trim().to_string();
            if t.len() < 16 {
                eprintln!(
                    "loa collector: admin token in {} is shorter than 16 characters",
                    p.display()
                );
                return Ok(ExitCode::from(2));
            }
            Some(t)
        }
        None => None,
    };
    let state = AppState::new(
        registry,
        &args.db,
        Arc::new(SystemClock),
        Arc::new(SchedulePlans),
        HttpConfig {
            admin_token,
            ..HttpConfig::default()
        },
    )
    .with_context(|| format!("opening database {}", args.db.display()))?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        eprintln!("loa collector: listening on http://{addr}");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(listener, state, shutdown).await.context("serving")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
