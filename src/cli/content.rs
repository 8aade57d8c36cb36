//! `loa content add FILE --title … --category … [--month YYYY-MM --program ID]` — upload an
//! audio file to the collector's content library (`POST /api/v1/content`, a personal API token),
//! optionally assigning it as a program's episode for a month; prints what the collector measured.
//!
//! **Invariant:** the file is streamed from disk (never held whole in memory); the exit code is
//! 0 only when the collector stored it (and assigned it when asked); a refusal prints the
//! collector's Vietnamese reason and exits 2.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `loa content`.
#[derive(Debug, Args)]
pub struct ContentArgs {
    #[command(subcommand)]
    pub command: ContentCommand,
}

/// Subcommands of `loa content`.
#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// Upload an audio file to the content library.
    Add(AddArgs),
}

/// Arguments of `loa content add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The audio file (WAV, MP3, Ogg Vorbis, FLAC).
    pub file: PathBuf,
    /// Its title, as the library page shows it.
    #[arg(long)]
    pub title: String,
    /// Its content category code (e.g. `cchc`, `news`, `notice`).
    #[arg(long)]
    pub category: String,
    /// Assign it as `--program`'s episode for this month (YYYY-MM; admins only).
    #[arg(long, requires = "program")]
    pub month: Option<String>,
    /// The program whose episode it is (with `--month`).
    #[arg(long, requires = "month")]
    pub program: Option<String>,
    /// Collector base URL. Default: the URL the collector recorded in the state directory,
    /// else http://127.0.0.1:8080.
    #[arg(long)]
    pub collector: Option<String>,
    /// File holding a personal API token. Default: `$LOA_TOKEN`, else `<state>/api-token`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// Run `loa content`.
pub fn run(args: ContentArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ContentCommand::Add(a) => add(a),
    }
}

fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    let (base, whence) = match args.collector {
        Some(u) => (u, "given with --collector".to_string()),
        None => {
            let layout = crate::layout::Layout::detect();
            let (u, from) = layout.collector_url();
            (u, format!("{from} [{}]", layout.describe()))
        }
    };
    let Some(token) = super::status::token(args.token_file.as_deref())? else {
        anyhow::bail!(
            "cần mã truy cập cá nhân: `loa user token TÊN > tệp` rồi `--token-file tệp` (hoặc biến môi trường {})",
            super::status::TOKEN_ENV
        );
    };
    let mut url = reqwest::Url::parse(&format!("{}/api/v1/content", base.trim_end_matches('/')))
        .with_context(|| format!("collector URL {base} ({whence})"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("title", &args.title);
        q.append_pair("category", &args.category);
        if let (Some(m), Some(p)) = (&args.month, &args.program) {
            q.append_pair("month", m);
            q.append_pair("program", p);
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let file = tokio::fs::File::open(&args.file)
            .await
            .with_context(|| format!("mở {}", args.file.display()))?;
        let len = file
            .metadata()
            .await
            .with_context(|| format!("đọc {}", args.file.display()))?
            .len();
        let body = reqwest::Body::wrap_stream(tokio_util_stream(file));
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .context("building the HTTP client")?;
        let resp = client
            .post(url.clone())
            .bearer_auth(token.trim())
            .header(reqwest::header::CONTENT_LENGTH, len)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {} (collector URL {whence})", url.path()))?;
        let status = resp.status();
        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            let why = answer["error_vi"]
                .as_str()
                .or(answer["error"].as_str())
                .unwrap_or("");
            eprintln!(
                "loa content add: {}: HTTP {status}: {why}",
                args.file.display()
            );
            return Ok(ExitCode::from(2));
        }
        let c = &answer["content"];
        println!(
            "{} {} {}",
            if answer["created"].as_bool() == Some(true) {
                "đã lưu"
            } else {
                "đã có sẵn"
            },
            c["sha256"].as_str().unwrap_or(""),
            c["title"].as_str().unwrap_or("")
        );
        println!(
            "thời lượng {} · độ lớn {} · đỉnh thực {}",
            crate::collector::library::web::mm_ss(c["duration_secs"].as_f64().unwrap_or(0.0)),
            c["loudness_lufs"]
                .as_f64()
                .map_or("im lặng".into(), |l| format!(
                    "{} LUFS",
                    crate::web::fmt::decimal_vi(l, 1)
                )),
            c["true_peak_dbtp"].as_f64().map_or("—".into(), |l| format!(
                "{} dBTP",
                crate::web::fmt::decimal_vi(l, 1)
            )),
        );
        if let Some(p) = answer["assigned"].as_str() {
            println!("đã gán tại {p}");
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// The file as a stream of chunks (64 KiB), for a streamed request body.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}
