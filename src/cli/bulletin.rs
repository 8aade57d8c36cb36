//! `loa bulletin send …` and `loa bulletin cancel ID` — an admin sends a bulletin from the centre
//! (`POST /api/v1/bulletins`, a personal API token) or cancels one
//! (`POST /api/v1/bulletins/{bulletin}/cancel`); docs/bulletins.md. Prints the outcome in Vietnamese.
//!
//! **Invariant:** the exit code is 0 only when the collector stored the send or the cancel; a
//! refusal prints the collector's Vietnamese reason (naming the field) and exits 2. The command
//! itself never signs: the collector does, with the centre key.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::collector::bulletins::priority_vi;

/// Arguments of `loa bulletin`.
#[derive(Debug, Args)]
pub struct BulletinArgs {
    #[command(subcommand)]
    pub command: BulletinCommand,
}

/// Subcommands of `loa bulletin`.
#[derive(Debug, Subcommand)]
pub enum BulletinCommand {
    /// Send a bulletin (admins): audio from the content library, to stations.
    Send(SendArgs),
    /// Cancel a bulletin (admins).
    Cancel(CancelArgs),
}

/// A bulletin's priority (Thông tư 39/2020/TT-BTTTT).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PriorityArg {
    Normal,
    Priority,
    Emergency,
}

impl PriorityArg {
    fn code(self) -> &'static str {
        match self {
            PriorityArg::Normal => "normal",
            PriorityArg::Priority => "priority",
            PriorityArg::Emergency => "emergency",
        }
    }
}

/// Where the collector is and who asks.
#[derive(Debug, Args)]
pub struct Conn {
    /// Collector base URL. Default: the URL the collector recorded in the state directory,
    /// else http://127.0.0.1:8080.
    #[arg(long)]
    pub collector: Option<String>,
    /// File holding an admin's personal API token. Default: `$LOA_TOKEN`, else
    /// `<state>/api-token`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// Arguments of `loa bulletin send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The title (1–200 characters).
    #[arg(long)]
    pub title: String,
    /// SHA-256 of the audio in the content library (`loa content add` prints it). Without it,
    /// `--text` is read by the collector's espeak-ng (Vietnamese voice) and the bulletin is
    /// marked as synthetic.
    #[arg(long)]
    pub audio: Option<String>,
    #[arg(long, value_enum)]
    pub priority: PriorityArg,
    /// `all`, `area:<area-code prefix>` (e.g. `area:79`) or `stations:<id>,<id>`.
    #[arg(long)]
    pub to: String,
    /// Start of the validity window (RFC 3339, e.g. 2027-09-12T08:00:00+07:00). Default: now.
    #[arg(long)]
    pub not_before: Option<DateTime<Utc>>,
    /// End of the validity window (RFC 3339).
    #[arg(long)]
    pub not_after: DateTime<Utc>,
    /// How many times it airs.
    #[arg(long, default_value_t = 1)]
    pub repeats: u32,
    /// Minutes between airings' starts (with `--repeats` above 1).
    #[arg(long, default_value_t = 0)]
    pub interval_mins: u32,
    /// The announcement's text (1–5,000 characters): read by text-to-speech when there is no
    /// `--audio`.
    #[arg(long)]
    pub text: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

/// Arguments of `loa bulletin cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The bulletin's id (32 hex digits, as `send` printed it).
    pub id: String,
    #[command(flatten)]
    pub conn: Conn,
}

/// Run `loa bulletin`.
pub fn run(args: BulletinArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BulletinCommand::Send(a) => send(a),
        BulletinCommand::Cancel(a) => cancel(a),
    }
}

/// The collector's URL (with where it came from) and the token.
fn target(conn: &Conn) -> anyhow::Result<(String, String, String)> {
    let (base, whence) = match &conn.collector {
        Some(u) => (u.clone(), "given with --collector".to_string()),
        None => {
            let layout = crate::layout::Layout::detect();
            let (u, from) = layout.collector_url();
            (u, format!("{from} [{}]", layout.describe()))
        }
    };
    let Some(token) = super::status::token(conn.token_file.as_deref())? else {
        anyhow::bail!(
            "cần mã truy cập cá nhân của quản trị viên: `loa user token TÊN > tệp` rồi `--token-file tệp` (hoặc biến môi trường {})",
            super::status::TOKEN_ENV
        );
    };
    Ok((
        base.trim_end_matches('/').to_string(),
        whence,
        token.trim().to_string(),
    ))
}

/// POST `body` to `path`; the status and the JSON answer.
fn post(
    conn: &Conn,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
    let (base, whence, token) = target(conn)?;
    let url = reqwest::Url::parse(&format!("{base}{path}"))
        .with_context(|| format!("collector URL {base} ({whence})"))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        let mut req = client.post(url.clone()).bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("POST {} (collector URL {whence})", url.path()))?;
        let status = resp.status();
        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
        anyhow::Ok((status, answer))
    })
}

fn refused(what: &str, status: reqwest::StatusCode, answer: &serde_json::Value) -> ExitCode {
    let why = answer["error_vi"]
        .as_str()
        .or(answer["error"].as_str())
        .unwrap_or("");
    eprintln!("loa bulletin {what}: bị từ chối (HTTP {status}): {why}");
    ExitCode::from(2)
}

fn send(a: SendArgs) -> anyhow::Result<ExitCode> {
    if a.audio.is_none() && a.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
        eprintln!(
            "loa bulletin send: cần --audio <sha256> (tệp trong thư viện nội dung) hoặc --text «…» (đọc bằng giọng đọc tổng hợp)"
        );
        return Ok(ExitCode::from(2));
    }
    let body = serde_json::json!({
        "title": a.title,
        "audio": a.audio.as_deref().unwrap_or(""),
        "priority": a.priority.code(),
        "to": a.to,
        "not_before": a.not_before,
        "not_after": a.not_after,
        "repeats": a.repeats,
        "interval_mins": a.interval_mins,
        "text": a.text,
    });
    let (status, answer) = post(&a.conn, "/api/v1/bulletins", Some(body))?;
    if !status.is_success() {
        return Ok(refused("send", status, &answer));
    }
    let every = if a.repeats > 1 {
        format!(", cách nhau {} phút", a.interval_mins)
    } else {
        String::new()
    };
    let voice = if answer["synthetic"].as_bool() == Some(true) {
        format!(
            "; âm thanh: giọng đọc tổng hợp (espeak-ng), sha256 {}",
            answer["audio"].as_str().unwrap_or("")
        )
    } else {
        String::new()
    };
    println!(
        "Đã gửi bản tin {} «{}»: mức {}, đến {}, hiệu lực đến {}, phát {} lần{every}{voice}.",
        answer["id"].as_str().unwrap_or(""),
        a.title,
        priority_vi(a.priority.code()),
        a.to,
        crate::collector::audit::when_vi(a.not_after),
        a.repeats,
    );
    Ok(ExitCode::SUCCESS)
}

fn cancel(a: CancelArgs) -> anyhow::Result<ExitCode> {
    let id = a.id.trim();
    let (status, answer) = post(&a.conn, &format!("/api/v1/bulletins/{id}/cancel"), None)?;
    if !status.is_success() {
        return Ok(refused("cancel", status, &answer));
    }
    println!("Đã hủy bản tin {id}; các trạm chưa phát sẽ bỏ bản tin này.");
    Ok(ExitCode::SUCCESS)
}
