//! `loa status` — Show station status from the collector.

use anyhow::Context as _;
use clap::Args;
use std::process::ExitCode;

use crate::collector::status::StationStatus;

/// Arguments of `loa status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Collector base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub collector: String,
}

fn brief(b: &Option<crate::wire::AiringBrief>) -> String {
    match b {
        Some(b) => format!(
            "{} {}",
            b.program.as_deref().or(b.slot.as_deref()).unwrap_or("-"),
            b.at.format("%d/%m %H:%M")
        ),
        None => "-".into(),
    }
}

/// Render the status table (one line per station).
pub fn table(statuses: &[StationStatus]) -> String {
    let mut rows = vec![[
        "STATION".to_string(),
        "STATE".into(),
        "HEARTBEAT".into(),
        "LAST AIRING".into(),
        "NEXT AIRING".into(),
        "BACKLOG".into(),
        "GAPS".into(),
        "MONTH".into(),
    ]];
    for s in statuses {
        rows.push([
            s.id.clone(),
            if s.online { "online" } else { "OFFLINE" }.into(),
            s.heartbeat_age_secs
                .map(|a| format!("{a}s ago"))
                .unwrap_or_else(|| "never".into()),
            s.last_airing
                .as_ref()
                .map(|l| {
                    format!(
                        "{} {} {}",
                        l.program
                            .as_deref()
                            .or(l.slot.as_deref())
                            .unwrap_or("manual"),
                        l.scheduled_at.format("%d/%m %H:%M"),
                        l.outcome
                    )
                })
                .unwrap_or_else(|| "-".into()),
            brief(&s.next_airing),
            s.backlog_records
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into()),
            if s.gaps.is_empty() {
                "0".into()
            } else {
                s.gaps
                    .iter()
                    .map(|g| format!("{}-{}", g.from, g.to))
                    .collect::<Vec<_>>()
                    .join(",")
            },
            s.month_compliance_pct
                .map(|p| format!("{p:.1}%"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Run `loa status`.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let url = format!("{}/api/v1/stations", args.collector.trim_end_matches('/'));
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
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            anyhow::bail!("GET {url}: HTTP {status}");
        }
        resp.json().await.with_context(|| format!("decoding {url}"))
    })?;
    print!("{}", table(&statuses));
    Ok(ExitCode::SUCCESS)
}
