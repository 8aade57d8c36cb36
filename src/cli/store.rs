//! `loa store` — the collector's database as a whole: `migrate` moves a city's SQLite database
//! into PostgreSQL and verifies the copy (docs/operations.md, "Moving from SQLite to
//! PostgreSQL"); the copying and checking is `collector::migrate`.
//!
//! **Invariant:** `migrate` reads from SQLite only and writes into PostgreSQL only, and only
//! into a database with no row in any of the collector's tables (exit 2, nothing written,
//! otherwise); it exits 0 only after the check found every row of every table equal on both
//! sides. Opening the source brings an older file's schema up to date first, as the collector
//! does at start, and says so.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::collector::db::Location;
use crate::collector::migrate::{self, Moved, Pass, Progress};
use crate::collector::store::{DEFAULT_SYNCHRONOUS, Store};
use crate::web::fmt::{decimal_vi, num_vi};

/// How often a long pass reports how far it is (on stderr).
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Arguments of `loa store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Move a SQLite collector database into an empty PostgreSQL database, then check every row
    /// (stop the collector first).
    Migrate {
        /// The SQLite database to move: `sqlite://PATH` or a path (e.g.
        /// `/var/lib/loa/collector.db`). Only read (after its schema is brought up to date).
        #[arg(long, value_name = "sqlite://PATH")]
        from: String,
        /// The empty PostgreSQL database to fill: `postgres://USER:PASSWORD@HOST/DATABASE`
        /// (its schema is created when missing).
        #[arg(long, value_name = "postgres://…")]
        to: String,
    },
}

/// Run `loa store`.
pub fn run(args: StoreArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        StoreCommand::Migrate { from, to } => run_migrate(&from, &to),
    }
}

const NAME: &str = "loa store migrate";

fn refuse(text: &str) -> anyhow::Result<ExitCode> {
    eprintln!("{NAME}: {text}");
    Ok(ExitCode::from(2))
}

fn run_migrate(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    let source = Location::parse(from);
    let dest = Location::parse(to);
    let Location::Sqlite(path) = &source else {
        return refuse(&format!(
            "--from {} là PostgreSQL: lệnh này chỉ chuyển từ SQLite sang PostgreSQL — --from \
             phải là tệp SQLite của collector (sqlite://ĐƯỜNG-DẪN hoặc đường dẫn, thường là \
             /var/lib/loa/collector.db)",
            source.display()
        ));
    };
    if let Location::Sqlite(p) = &dest {
        return refuse(&format!(
            "--to {} là một tệp SQLite: lệnh này chỉ chuyển từ SQLite sang PostgreSQL — --to \
             phải là postgres://NGƯỜI-DÙNG:MẬT-KHẨU@MÁY/CƠ-SỞ-DỮ-LIỆU (một cơ sở dữ liệu \
             trống); muốn chép một tệp SQLite, dùng sqlite3 \".backup\" (docs/operations.md, \
             mục 5)",
            p.display()
        ));
    }
    if !path.is_file() {
        return refuse(&format!(
            "--from: không có tệp {} — hãy chỉ đường dẫn tới tệp collector.db của collector",
            path.display()
        ));
    }
    let before = match sqlite_schema(path) {
        Ok(Some(v)) => v,
        Ok(None) => {
            return refuse(&format!(
                "--from: {} không phải cơ sở dữ liệu của collector (tệp không có bảng nào)",
                path.display()
            ));
        }
        Err(e) => {
            return refuse(&format!(
                "--from: không đọc được {} như một tệp SQLite: {e}",
                path.display()
            ));
        }
    };
    let started = Instant::now();
    let source_store = Store::open_at(&source, DEFAULT_SYNCHRONOUS)
        .with_context(|| format!("mở nguồn {}", source.display()))?;
    let version = source_store.schema_version()?;
    println!(
        "Nguồn: {} (SQLite, lược đồ phiên bản {version})",
        source.display()
    );
    if before < version {
        println!(
            "  Đã nâng lược đồ của tệp nguồn từ phiên bản {before} lên {version} trước khi \
             chuyển (như collector làm khi khởi động)."
        );
    }
    let dest_store = Store::open_at(&dest, DEFAULT_SYNCHRONOUS)
        .with_context(|| format!("mở đích {}", dest.display()))?;
    println!(
        "Đích: {} (PostgreSQL, lược đồ phiên bản {})",
        dest.display(),
        dest_store.schema_version()?
    );
    let (source_conn, dest_conn) = (source_store.into_connection(), dest_store.into_connection());
    let mut last_report = Instant::now();
    let mut report = |p: &Progress<'_>| {
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            eprintln!("{NAME}: {}", progress_line(p));
        }
    };
    match migrate::migrate(&source_conn, &dest_conn, &mut report) {
        Ok(moved) => {
            print!("{}", summary(&moved, started.elapsed()));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{NAME}: {e}");
            if e.wrote_nothing() {
                eprintln!("{NAME}: không ghi gì vào đích.");
                Ok(ExitCode::from(2))
            } else {
                eprintln!(
                    "{NAME}: đích có thể đã có một phần dữ liệu: xoá và tạo lại cơ sở dữ liệu \
                     đích (DROP DATABASE …; CREATE DATABASE …) rồi chạy lại lệnh sau khi sửa \
                     lỗi trên. Nguồn không bị thay đổi."
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// The schema version of the SQLite file at `path` before anything opens it for the store
/// (`None`: a file with no table at all, not a collector's database).
fn sqlite_schema(path: &Path) -> Result<Option<i64>, rusqlite::Error> {
    // Read-write without create: a file a stopped collector left with its WAL opens too.
    let c =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tables: i64 = c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok((tables > 0).then_some(version))
}

fn progress_line(p: &Progress<'_>) -> String {
    let what = match p.pass {
        Pass::Copy => "đang chép",
        Pass::Verify => "đang kiểm",
    };
    let pct = if p.rows_total == 0 {
        100.0
    } else {
        p.rows_done as f64 * 100.0 / p.rows_total as f64
    };
    format!(
        "{what} bảng {}: {}/{} dòng ({} %)",
        p.table,
        num_vi(p.rows_done as i64),
        num_vi(p.rows_total as i64),
        decimal_vi(pct, 1)
    )
}

/// Per table: rows copied and verified; then the totals and the time taken.
fn summary(moved: &Moved, total: Duration) -> String {
    let mut out = format!("\n{:<20} {:>12} {:>12}\n", "Bảng", "Đã chép", "Đã kiểm");
    let (mut copied, mut verified) = (0u64, 0u64);
    for t in &moved.tables {
        out.push_str(&format!(
            "{:<20} {:>12} {:>12}\n",
            t.table,
            num_vi(t.copied as i64),
            num_vi(t.verified as i64)
        ));
        copied += t.copied;
        verified += t.verified;
    }
    out.push_str(&format!(
        "{:<20} {:>12} {:>12}\n",
        "Tổng cộng",
        num_vi(copied as i64),
        num_vi(verified as i64)
    ));
    let copy_secs = moved.copy_time.as_secs_f64();
    let rate = if copy_secs > 0.0 {
        copied as f64 / copy_secs
    } else {
        0.0
    };
    out.push_str(&format!(
        "\nĐã chuyển xong trong {} giây (chép {} giây, {} dòng/giây; kiểm {} giây): mọi bảng \
         đủ số dòng, mọi dòng giống hệt nguồn, mọi bản ghi khớp mã băm SHA-256 của nó.\n\
         Bước tiếp: chạy collector với --db trỏ tới cơ sở dữ liệu PostgreSQL này.\n",
        decimal_vi(total.as_secs_f64(), 2),
        decimal_vi(copy_secs, 2),
        num_vi(rate.round() as i64),
        decimal_vi(moved.verify_time.as_secs_f64(), 2)
    ));
    out
}
