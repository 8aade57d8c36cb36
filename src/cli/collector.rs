//! `loa collector` — Run the central collector server.
//!
//! **Invariant:** the process exits 0 after a clean shutdown on SIGTERM or SIGINT (in-flight
//! requests finish; each batch is one SQLite transaction), and under systemd it tells the
//! service manager `READY=1` only once it listens, and pets the watchdog only while its own
//! `/healthz` (router + database) answers.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::collector::PlanCache;
use crate::collector::http::{AppState, HttpConfig, serve};
use crate::collector::plans::DEFAULT_PLAN_RECHECK_SECS;
use crate::collector::registry::Registry;
use crate::collector::selfcheck;
use crate::keys::{self, KeyError};
use crate::notify::{Notifier, watchdog_interval};
use crate::process;

/// Arguments of `loa collector`.
#[derive(Debug, Args)]
pub struct CollectorArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// SQLite database (created and migrated when missing), or a PostgreSQL URL
    /// (`postgres://…`; the centre key and library then stay in the state directory). Default:
    /// `<state>/collector.db` (docs/operations.md, "The state layout"). The URL the collector
    /// listens on is recorded in the state directory (`collector.url`), for `loa status`.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Station registry (`[[station]]` id, name, area_code, public_key, schedule). A missing
    /// file is an empty registry (`loa register` or the admin API create it). Default:
    /// `<state>/collector.toml`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// File holding the bearer token of the admin API (`POST /api/v1/admin/stations`);
    /// without it the admin API is disabled.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// The collector is reached through TLS (a reverse proxy terminating HTTPS): session
    /// cookies get `Secure` (docs/accounts.md).
    #[arg(long)]
    pub behind_tls: bool,
    /// `/metrics` needs an admin's or auditor's token even from a loopback address (by default
    /// a scraper on the same host needs none).
    #[arg(long)]
    pub metrics_need_token: bool,
    /// The content library's directory (content files and the `tree/` audio root of
    /// centre-managed stations). Default: `collector/library` in the state directory holding
    /// the database.
    #[arg(long)]
    pub library: Option<PathBuf>,
    /// Largest upload to the content library, in bytes (larger uploads are refused while they
    /// stream, and nothing is stored).
    #[arg(long, default_value_t = crate::collector::library::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,
    /// The espeak-ng program that reads a bulletin sent with a text and no recording
    /// (Vietnamese voice; Debian package `espeak-ng`): a name looked up on `PATH`, or a path.
    #[arg(long, default_value = crate::collector::tts::DEFAULT_BINARY)]
    pub espeak_ng: PathBuf,
    #[command(subcommand)]
    pub command: Option<CollectorCommand>,
}

/// Maintenance of the collector's own files.
#[derive(Debug, Subcommand)]
pub enum CollectorCommand {
    /// Replace the centre's signing key: the new key is announced signed by the old one
    /// (stations follow it), the old secret is kept for backup (docs/operations.md). Works
    /// with the collector stopped or running.
    RotateKey(RotateKeyArgs),
}

/// Arguments of `loa collector rotate-key`.
#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// The collector's database; the centre key lies in the state directory holding it
    /// (`<dir>/collector/centre-key`). Default: `<state>/collector.db`.
    #[arg(long)]
    pub db: Option<PathBuf>,
}

/// The database `--db` names (default: the layout's): a SQLite file made absolute, a PostgreSQL
/// URL as given.
fn database_arg(given: Option<PathBuf>, layout: &crate::layout::Layout) -> anyhow::Result<PathBuf> {
    let db = given.unwrap_or_else(|| layout.database());
    match crate::collector::db::Location::of_path(&db) {
        crate::collector::db::Location::Postgres(_) => Ok(db),
        crate::collector::db::Location::Sqlite(_) => {
            std::path::absolute(db).context("resolving the database path")
        }
    }
}

/// The state directory of the collector whose database is `db`: the directory holding a SQLite
/// file; the layout's for a PostgreSQL database (its files — centre key, library — stay on
/// this host).
fn state_dir_of(db: &std::path::Path, layout: &crate::layout::Layout) -> Option<PathBuf> {
    match crate::collector::db::Location::of_path(db) {
        crate::collector::db::Location::Postgres(_) => Some(layout.state.clone()),
        crate::collector::db::Location::Sqlite(_) => db.parent().map(std::path::Path::to_path_buf),
    }
}

/// The centre key of the collector whose database is `db`: in its state directory.
fn centre_key_path(db: &std::path::Path, layout: &crate::layout::Layout) -> PathBuf {
    let state = state_dir_of(db, layout).unwrap_or_default();
    crate::layout::Layout::at(state, crate::layout::Chosen::Flag).centre_key()
}

fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<ExitCode> {
    let layout = crate::layout::Layout::detect();
    let db = database_arg(args.db, &layout)?;
    let key = centre_key_path(&db, &layout);
    match crate::centre::key::rotate(&key, chrono::Utc::now()) {
        Ok(r) => {
            let text = crate::wire::encode_public_key;
            println!("Đã đổi khóa trung tâm (lần {}).", r.seq);
            println!("  khóa cũ: {}", text(&r.old));
            println!("  khóa mới: {}", text(&r.new));
            println!(
                "  khóa bí mật cũ được giữ tại {} (0600) — sao lưu rồi cất giữ an toàn",
                r.old_secret.display()
            );
            println!(
                "  thông báo đổi khóa (ký bằng khóa cũ): {}",
                crate::centre::key::rotations_path(&key).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("loa collector rotate-key: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Run `loa collector`.
pub fn run(args: CollectorArgs) -> anyhow::Result<ExitCode> {
    if let Some(CollectorCommand::RotateKey(a)) = args.command {
        return rotate_key(a);
    }
    process::init_logging(process::COLLECTOR_LOG_ENV, process::LogFormat::Text);
    let layout = crate::layout::Layout::detect();
    // Absolute, so the registry the collector names (in its 401 hint, in its log) is the file
    // it really uses, whatever directory the reader of the message is in.
    let config = std::path::absolute(args.config.clone().unwrap_or_else(|| layout.registry()))
        .context("resolving the registry path")?;
    let db = database_arg(args.db.clone(), &layout)?;
    let registry = match Registry::load_or_empty(&config) {
        Ok((r, true)) => r,
        Ok((r, false)) => {
            // A fresh install: no station enrolled yet. Records from any station are refused
            // ("unknown station") until one is registered; the stations keep them meanwhile.
            eprintln!(
                "loa collector: no registry at {} yet: no station is enrolled (`loa register --config {}` \
                 or the admin API adds them)",
                config.display(),
                config.display()
            );
            r
        }
        Err(e) => {
            eprintln!("loa collector: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // For messages: the file, or the URL without its password.
    let db_shown = crate::collector::db::Location::of_path(&db).display();
    let state_dir = state_dir_of(&db, &layout);
    if let Some(dir) = &state_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let admin_token = match &args.admin_token_file {
        Some(p) => match keys::read_admin_token(p) {
            Ok(t) => Some(t),
            Err(e @ KeyError::TokenTooShort { .. }) => {
                eprintln!("loa collector: {e}");
                return Ok(ExitCode::from(2));
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let library_dir = match &args.library {
        Some(d) => std::path::absolute(d).context("resolving the library path")?,
        None => crate::layout::Layout::at(
            state_dir.clone().unwrap_or_default(),
            crate::layout::Chosen::Flag,
        )
        .library_dir(),
    };
    let centre_key = centre_key_path(&db, &layout);
    let state = match AppState::new(
        registry,
        &db,
        Arc::new(SystemClock),
        Arc::new(
            PlanCache::open(&db, DEFAULT_PLAN_RECHECK_SECS)
                .with_context(|| format!("opening database {}", db_shown))?,
        ),
        HttpConfig {
            admin_token,
            auth: crate::collector::authz::AuthConfig {
                secure_cookies: args.behind_tls,
                metrics_open_on_loopback: !args.metrics_need_token,
                ..Default::default()
            },
            // Enrolment (admin API) reads schedules and audio only from the registry's
            // directory and these.
            enrol_roots: [
                &layout.schedules,
                &layout.audio,
                &layout.managed_schedules_dir(),
                &crate::collector::versions::library_tree(&layout),
                // The content library's tree when `--library` puts it elsewhere.
                &library_dir.join("tree"),
            ]
            .into_iter()
            .filter_map(|p| std::path::absolute(p).ok())
            .collect(),
            centre_key: Some(centre_key.clone()),
            // Centre-managed schedules and the library tree, in the layout's state directory.
            versions: crate::collector::versions::VersionsConfig {
                managed_schedules: Some(layout.managed_schedules_dir()),
                // The content library's tree (the same directory `--library` names).
                library_tree: Some(library_dir.join("tree")),
            },
            library: Some(crate::collector::library::LibraryConfig {
                dir: library_dir,
                max_upload_bytes: args.max_upload_bytes,
            }),
            tts: crate::collector::tts::TtsConfig {
                binary: args.espeak_ng.clone(),
                ..Default::default()
            },
            ..HttpConfig::default()
        },
    ) {
        Ok(s) => s,
        Err(e @ crate::collector::http::StartError::CentreKey(_)) => {
            eprintln!("loa collector: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("opening database {}", db_shown)));
        }
    };
    if let Some(c) = state.centre() {
        eprintln!(
            "loa collector: centre key {} ({})",
            c.public_key_text(),
            centre_key.display()
        );
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        eprintln!("loa collector: listening on http://{addr}");
        // For `loa status` and friends: where this collector listens (best effort: a read-only
        // state directory must not stop the collector).
        if let Some(dir) = &state_dir
            && let Err(e) = crate::layout::record_collector_url(dir, addr)
        {
            tracing::warn!("cannot record the collector URL in {}: {e}", dir.display());
        }
        let stop = process::stop_signal().context("installing the SIGTERM/SIGINT handlers")?;
        let notifier = Notifier::from_env();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(watchdog) = watchdog_interval() {
            selfcheck::spawn(addr, notifier.clone(), watchdog, stop_rx);
        }
        if let Err(e) = notifier.ready_with_status(&format!("listening on http://{addr}")) {
            tracing::warn!("systemd notify: {e}");
        }
        let notifier_stop = notifier.clone();
        let shutdown = async move {
            stop.await;
            eprintln!("loa collector: stopping (finishing requests in flight)");
            if let Err(e) = notifier_stop.stopping() {
                tracing::warn!("systemd notify: {e}");
            }
            let _ = stop_tx.send(true);
        };
        serve(listener, state, shutdown).await.context("serving")?;
        eprintln!("loa collector: stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
