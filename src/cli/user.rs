//! `loa user` — office accounts in the collector's database, for the first admin and for scripts:
//! `add`, `passwd`, `disable`, `enable`, `list`, `token`.
//!
//! **Invariant:** a password is read from standard input (`--password-stdin`, one line) or
//! generated and printed once — never taken from the command line (where `ps` and the shell's
//! history would keep it) and never logged; every change is recorded in the audit log with the
//! operating-system user who ran the command, like a change made on the users page.

use clap::{Args, Subcommand};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::collector::accounts::{self, AccountError, Role};
use crate::collector::audit::{self, Entry, action};
use crate::collector::pages::describe_user;
use crate::collector::store::Store;
use crate::layout::Layout;

/// Arguments of `loa user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The collector's database. Default: `<state>/collector.db` (docs/operations.md, "The
    /// state layout").
    #[arg(long, global = true)]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: UserCommand,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (the password is generated and printed once, or read from stdin).
    Add {
        /// Login name: a-z, 0-9, `.`, `-`, `_`.
        name: String,
        /// admin (city office), operator (named stations) or auditor (read-only).
        #[arg(long)]
        role: String,
        /// A station an operator runs (repeat for several).
        #[arg(long = "station")]
        stations: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (generated and printed once, or read from stdin); ends their
    /// sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: their sessions and API tokens stop working at once.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// List the users.
    List,
    /// Make a personal API token for a user (printed once) for scripts.
    Token {
        name: String,
        /// What the token is for (shown on the account page).
        #[arg(long, default_value = "dòng lệnh")]
        label: String,
    },
}

/// Who ran the command, as the audit log records it.
fn actor() -> String {
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "?".into());
    format!("loa user (người dùng hệ thống: {os_user})")
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok((line.trim_end_matches(['\r', '\n']).to_string(), false))
    } else {
        Ok((accounts::generate_password()?, true))
    }
}

fn log(
    conn: &crate::collector::db::Conn,
    act: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
) -> anyhow::Result<()> {
    audit::record(
        conn,
        &Entry {
            at: chrono::Utc::now(),
            actor: actor(),
            address: audit::HOST_ADDRESS.into(),
            action: act.into(),
            target: target.into(),
            before,
            after,
        },
    )?;
    Ok(())
}

/// Run `loa user`.
pub fn run(args: UserArgs) -> anyhow::Result<ExitCode> {
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| Layout::detect().database());
    let location = crate::collector::db::Location::of_path(&db);
    if let Some(dir) = location
        .sqlite_path()
        .and_then(std::path::Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut conn = Store::open(&db)
        .map_err(|e| anyhow::anyhow!("mở cơ sở dữ liệu {}: {e}", location.display()))?
        .into_connection();
    let now = chrono::Utc::now();
    let result: anyhow::Result<()> = (|| {
        match &args.command {
            UserCommand::Add {
                name,
                role,
                stations,
                password_stdin,
            } => {
                let role =
                    Role::parse(role).ok_or_else(|| AccountError::InvalidRole(role.clone()))?;
                let (password, generated) = read_password(*password_stdin)?;
                let u = accounts::add_user(&mut conn, name, role, stations, &password, now)?;
                log(
                    &conn,
                    action::USER_ADD,
                    &u.name,
                    None,
                    Some(describe_user(&u)),
                )?;
                println!("đã thêm người dùng {} ({})", u.name, u.role.label_vi());
                if generated {
                    println!("mật khẩu (chỉ hiện một lần): {password}");
                }
            }
            UserCommand::Passwd {
                name,
                password_stdin,
            } => {
                let (password, generated) = read_password(*password_stdin)?;
                accounts::set_password(&mut conn, name, &password)?;
                log(
                    &conn,
                    action::USER_PASSWD,
                    name,
                    None,
                    Some("mật khẩu mới (dòng lệnh); mọi phiên đã kết thúc".into()),
                )?;
                println!(
                    "đã đổi mật khẩu của {name}; mọi phiên đăng nhập của người này đã kết thúc"
                );
                if generated {
                    println!("mật khẩu (chỉ hiện một lần): {password}");
                }
            }
            UserCommand::Disable { name } | UserCommand::Enable { name } => {
                let disable = matches!(args.command, UserCommand::Disable { .. });
                let before = accounts::find_user(&conn, name)?;
                let after = accounts::set_disabled(&mut conn, name, disable)?;
                let act = if disable {
                    action::USER_DISABLE
                } else {
                    action::USER_ENABLE
                };
                log(
                    &conn,
                    act,
                    name,
                    before.as_ref().map(describe_user),
                    Some(describe_user(&after)),
                )?;
                println!(
                    "{} {name}",
                    if disable {
                        "đã khóa"
                    } else {
                        "đã mở khóa"
                    }
                );
            }
            UserCommand::List => {
                println!("{:<24} {:<14} {:<16} trạm", "tên", "vai trò", "trạng thái");
                for u in accounts::list_users(&conn)? {
                    println!(
                        "{:<24} {:<14} {:<16} {}",
                        u.name,
                        u.role.label_vi(),
                        if u.disabled {
                            "đã khóa"
                        } else {
                            "đang hoạt động"
                        },
                        u.stations.join(", ")
                    );
                }
            }
            UserCommand::Token { name, label } => {
                let u = accounts::find_user(&conn, name)?
                    .ok_or_else(|| AccountError::NoSuchUser(name.clone()))?;
                let (secret, id) = accounts::create_token(&conn, &u, label, now)?;
                log(
                    &conn,
                    action::TOKEN_CREATE,
                    &format!("mã số {id} của {}", u.name),
                    None,
                    Some(format!(
                        "nhãn: {}; vai trò: {}",
                        label.trim(),
                        u.role.label_vi()
                    )),
                )?;
                // The token alone on stdout, for `TOKEN=$(loa user token …)`.
                println!("{secret}");
                eprintln!("mã truy cập số {id} của {} (chỉ hiện một lần)", u.name);
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("loa user: {e:#}");
            // Bad input (name, role, password, unknown user) is 2; the rest (database, I/O) 1.
            let bad_input = e
                .downcast_ref::<AccountError>()
                .is_some_and(|e| !matches!(e, AccountError::Db(_) | AccountError::Random(_)));
            Ok(ExitCode::from(if bad_input { 2 } else { 1 }))
        }
    }
}
