//! Office accounts in the collector's database: users with Argon2id password hashes and a role
//! (`admin`, `operator` of named stations, `auditor`), server-side sessions and personal API
//! tokens.
//!
//! **Invariant:** no secret is stored: a password is kept only as its Argon2id hash (PHC string,
//! its parameters inside, so hashes made with older parameters still verify), a session id and an
//! API token only as their SHA-256; each secret is 256 bits from the operating system's CSPRNG.
//! A session or token is honoured only while its user exists and is not disabled (checked on
//! every use, so disabling a user ends their sessions and tokens at once), a session only within
//! its idle and absolute lifetimes. A wrong name and a wrong password are indistinguishable: an
//! unknown or disabled user costs the same Argon2 work (a dummy hash is verified) and gets the
//! same error. Functions take the time (`now`) and a connection; nothing here reads a clock.

use crate::collector::db::{Conn, OptionalExtension, params};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Argon2id memory cost, KiB (19 MiB: OWASP's floor; memory is held per login in progress).
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
/// Argon2id passes over memory: raised from OWASP's 2 until one login costs 50–250 ms on the
/// project's 2-core machine (86 ms with `cargo run --example bench_login`, whose dependencies
/// build at opt-level 2; figures in docs/accounts.md). More passes rather than more memory, so
/// concurrent logins do not multiply a large allocation.
pub const ARGON2_T_COST: u32 = 12;
/// Argon2id lanes (one: the collector serves other requests on the other core).
pub const ARGON2_P_COST: u32 = 1;
/// Shortest password accepted, characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, bytes (hashing a huge input would be free work for an attacker).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest user name, characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest token label, characters.
pub const MAX_LABEL_CHARS: usize = 100;
/// Default idle lifetime of a session: no request for this long ends it.
pub const DEFAULT_SESSION_IDLE_SECS: i64 = 30 * 60;
/// Default absolute lifetime of a session, however active.
pub const DEFAULT_SESSION_MAX_SECS: i64 = 12 * 3600;
/// A session's `last_seen` is written at most this often (one write per request would queue
/// page views behind the database's one writer).
const LAST_SEEN_STEP_SECS: i64 = 60;
/// Characters of a generated password (no look-alikes: 0/O, 1/l/I).
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Length of a generated password (~5.8 bits each: ~105 bits).
const GENERATED_PASSWORD_CHARS: usize = 18;
/// Prefix of personal API tokens (lets a secret scanner recognise one).
pub const TOKEN_PREFIX: &str = "loa_";

/// What a user may do (see docs/accounts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// City office: everything.
    Admin,
    /// Ward station operator: their own stations only.
    Operator,
    /// Read-only: every station, every report, the audit log.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Auditor];

    /// The code stored and sent on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }

    /// The Vietnamese name shown to people.
    pub fn label_vi(self) -> &'static str {
        match self {
            Role::Admin => "Quản trị",
            Role::Operator => "Vận hành trạm",
            Role::Auditor => "Kiểm tra",
        }
    }

    pub fn parse(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// A user as stored (without the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The stations an operator runs (empty for the other roles).
    pub stations: Vec<String>,
    pub disabled: bool,
    pub created_unix: i64,
}

impl User {
    /// Whether this user may see station `id` (operators: only theirs).
    pub fn may_see_station(&self, id: &str) -> bool {
        self.role != Role::Operator || self.stations.iter().any(|s| s == id)
    }
}

/// A personal API token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub label: String,
    pub created_unix: i64,
    pub last_used_unix: Option<i64>,
    pub revoked_unix: Option<i64>,
}

/// A session found by its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    /// The synchronizer token every form of this session must carry.
    pub csrf: String,
    /// SHA-256 (hex) of the session id: what logout deletes.
    pub id_sha256: String,
}

/// Why an account operation failed. The texts are Vietnamese: they reach people (`loa user`,
/// the pages).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("lỗi cơ sở dữ liệu: {0}")]
    Db(#[from] crate::collector::db::DbError),
    #[error("không tạo được mã băm mật khẩu: {0}")]
    Hash(String),
    #[error("không lấy được số ngẫu nhiên từ hệ điều hành: {0}")]
    Random(String),
    #[error(
        "tên người dùng `{0}` không hợp lệ: 1–{MAX_NAME_CHARS} ký tự a-z, 0-9, dấu chấm, gạch ngang hoặc gạch dưới"
    )]
    InvalidName(String),
    #[error("mật khẩu quá ngắn: cần ít nhất {MIN_PASSWORD_CHARS} ký tự")]
    PasswordTooShort,
    #[error("mật khẩu quá dài: tối đa {MAX_PASSWORD_BYTES} byte")]
    PasswordTooLong,
    #[error("vai trò `{0}` không có: dùng admin, operator hoặc auditor")]
    InvalidRole(String),
    #[error("người vận hành phải được giao ít nhất một trạm (--station)")]
    OperatorWithoutStation,
    #[error("mã trạm `{0}` không hợp lệ")]
    InvalidStation(String),
    #[error("nhãn mã truy cập không hợp lệ: 1–{MAX_LABEL_CHARS} ký tự")]
    InvalidLabel,
    #[error("đã có người dùng `{0}`")]
    Exists(String),
    #[error("không có người dùng `{0}`")]
    NoSuchUser(String),
    #[error("không có mã truy cập số {0} của người dùng này")]
    NoSuchToken(i64),
    /// Wrong name or password, or a disabled user: one message for all three.
    #[error("tên đăng nhập hoặc mật khẩu không đúng")]
    BadCredentials,
}

/// The Argon2id hasher with the chosen parameters.
pub fn hasher() -> Argon2<'static> {
    // The constants are valid parameters (tested); fall back to the crate's default otherwise.
    let params =
        Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// `n` bytes from the operating system's CSPRNG.
fn random<const N: usize>() -> Result<[u8; N], AccountError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(b)
}

/// A fresh 256-bit secret, URL-safe base64 (43 characters).
pub fn new_secret() -> Result<String, AccountError> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>()?))
}

/// SHA-256 of a secret, hex: how sessions and tokens are stored and looked up.
pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    check_password(password)?;
    let salt =
        SaltString::encode_b64(&random::<16>()?).map_err(|e| AccountError::Hash(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (its own parameters). A malformed hash
/// matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The hash verified when the name is unknown or disabled, so such a login costs what a real
/// one costs (made once per process, with the same parameters).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"loa-dummy-salt!!").ok();
        salt.and_then(|s| {
            hasher()
                .hash_password(b"not a password of anyone", &s)
                .ok()
                .map(|h| h.to_string())
        })
        .unwrap_or_default()
    })
}

/// A generated password (shown once, then changed by its owner).
pub fn generate_password() -> Result<String, AccountError> {
    let bytes = random::<64>()?;
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % PASSWORD_ALPHABET.len());
    let out: String = bytes
        .iter()
        .filter(|&&b| (b as usize) < limit)
        .take(GENERATED_PASSWORD_CHARS)
        .map(|&b| PASSWORD_ALPHABET[b as usize % PASSWORD_ALPHABET.len()] as char)
        .collect();
    if out.len() < GENERATED_PASSWORD_CHARS {
        // 64 draws with a rejection chance of 1/8 each: not reached in practice; draw again.
        return generate_password();
    }
    Ok(out)
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::PasswordTooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooShort);
    }
    Ok(())
}

/// Whether `name` is a valid user name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
}

fn check_stations(role: Role, stations: &[String]) -> Result<(), AccountError> {
    if let Some(bad) = stations
        .iter()
        .find(|s| !crate::collector::registry::valid_station_id(s))
    {
        return Err(AccountError::InvalidStation(bad.clone()));
    }
    if role == Role::Operator && stations.is_empty() {
        return Err(AccountError::OperatorWithoutStation);
    }
    Ok(())
}

fn read_user(
    conn: &Conn,
    row: &crate::collector::db::Row<'_>,
) -> Result<User, crate::collector::db::DbError> {
    let id: i64 = row.get(0)?;
    let role: String = row.get(2)?;
    let mut stmt = conn
        .prepare_cached("SELECT station FROM user_stations WHERE user_id = ?1 ORDER BY station")?;
    let stations = stmt
        .query_map(params![id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(User {
        id,
        name: row.get(1)?,
        // The CHECK constraint keeps other values out.
        role: Role::parse(&role).unwrap_or(Role::Auditor),
        stations,
        disabled: row.get::<i64>(3)? != 0,
        created_unix: row.get(4)?,
    })
}

const USER_COLUMNS: &str = "id, name, role, disabled, created_unix";

/// The user called `name`, if any.
pub fn find_user(conn: &Conn, name: &str) -> Result<Option<User>, AccountError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
            params![name],
            |r| read_user(conn, r),
        )
        .optional()?)
}

fn user_by_id(conn: &Conn, id: i64) -> Result<Option<User>, AccountError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            params![id],
            |r| read_user(conn, r),
        )
        .optional()?)
}

/// Every user, by name.
pub fn list_users(conn: &Conn) -> Result<Vec<User>, AccountError> {
    let mut stmt = conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
    let users = stmt
        .query_map(params![], |r| read_user(conn, r))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(users)
}

/// Whether any user exists (the first admin is made by `loa user add` or `loa up`).
pub fn any_user(conn: &Conn) -> Result<bool, AccountError> {
    Ok(conn
        .query_row("SELECT 1 FROM users LIMIT 1", params![], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Add a user with `password` (hashed here). Operators need at least one station.
pub fn add_user(
    conn: &mut Conn,
    name: &str,
    role: Role,
    stations: &[String],
    password: &str,
    now: DateTime<Utc>,
) -> Result<User, AccountError> {
    if !valid_name(name) {
        return Err(AccountError::InvalidName(name.to_string()));
    }
    check_stations(role, stations)?;
    let hash = hash_password(password)?;
    add_user_hashed(conn, name, role, stations, &hash, now)
}

/// [`add_user`] with the password already hashed ([`hash_password`], done without holding
/// the connection: the server's accounts connection serves every page view meanwhile).
pub fn add_user_hashed(
    conn: &mut Conn,
    name: &str,
    role: Role,
    stations: &[String],
    hash: &str,
    now: DateTime<Utc>,
) -> Result<User, AccountError> {
    if !valid_name(name) {
        return Err(AccountError::InvalidName(name.to_string()));
    }
    check_stations(role, stations)?;
    let tx = conn.transaction_immediate()?;
    let exists = tx
        .query_row("SELECT 1 FROM users WHERE name = ?1", params![name], |_| {
            Ok(())
        })
        .optional()?
        .is_some();
    if exists {
        return Err(AccountError::Exists(name.to_string()));
    }
    let id: i64 = tx.query_row(
        "INSERT INTO users (name, role, password_hash, disabled, created_unix) VALUES (?1, ?2, ?3, 0, ?4)
         RETURNING id",
        params![name, role.code(), hash, now.timestamp()],
        |r| r.get(0),
    )?;
    for s in stations {
        tx.execute(
            "INSERT INTO user_stations (user_id, station) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![id, s],
        )?;
    }
    tx.commit()?;
    user_by_id(conn, id)?.ok_or_else(|| AccountError::NoSuchUser(name.to_string()))
}

/// Set `name`'s password, and end every session of theirs (a changed password signs out
/// everywhere; API tokens stay).
pub fn set_password(conn: &mut Conn, name: &str, password: &str) -> Result<(), AccountError> {
    let hash = hash_password(password)?;
    set_password_hash(conn, name, &hash)
}

/// [`set_password`] with the password already hashed ([`hash_password`]).
pub fn set_password_hash(conn: &mut Conn, name: &str, hash: &str) -> Result<(), AccountError> {
    let tx = conn.transaction_immediate()?;
    let id: i64 = tx
        .query_row("SELECT id FROM users WHERE name = ?1", params![name], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or_else(|| AccountError::NoSuchUser(name.to_string()))?;
    tx.execute(
        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
        params![hash, id],
    )?;
    tx.execute("DELETE FROM sessions WHERE user_id = ?1", params![id])?;
    tx.commit()?;
    Ok(())
}

/// Disable (or enable again) `name`. Disabling deletes their sessions; their tokens stop
/// working too (every use checks the user).
pub fn set_disabled(conn: &mut Conn, name: &str, disabled: bool) -> Result<User, AccountError> {
    let tx = conn.transaction_immediate()?;
    let id: i64 = tx
        .query_row("SELECT id FROM users WHERE name = ?1", params![name], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or_else(|| AccountError::NoSuchUser(name.to_string()))?;
    tx.execute(
        "UPDATE users SET disabled = ?1 WHERE id = ?2",
        params![i64::from(disabled), id],
    )?;
    if disabled {
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", params![id])?;
    }
    tx.commit()?;
    user_by_id(conn, id)?.ok_or_else(|| AccountError::NoSuchUser(name.to_string()))
}

/// What a login attempt is checked against: the stored hash of the name, if the name exists.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub user_id: i64,
    pub hash: String,
    pub disabled: bool,
}

/// The login record of `name` (a quick lookup: the Argon2 work is [`check_login`]'s, done
/// without holding the connection).
pub fn login_record(conn: &Conn, name: &str) -> Result<Option<LoginRecord>, AccountError> {
    Ok(conn
        .query_row(
            "SELECT id, password_hash, disabled FROM users WHERE name = ?1",
            params![name],
            |r| {
                Ok(LoginRecord {
                    user_id: r.get(0)?,
                    hash: r.get(1)?,
                    disabled: r.get::<i64>(2)? != 0,
                })
            },
        )
        .optional()?)
}

/// Check `password` against `record`: the user's id when it matches an enabled user. An
/// unknown name (`None`) or disabled user costs the same Argon2 work and gives the same
/// [`AccountError::BadCredentials`].
pub fn check_login(record: Option<&LoginRecord>, password: &str) -> Result<i64, AccountError> {
    if password.len() > MAX_PASSWORD_BYTES {
        // Refused before hashing (no free work); the same answer.
        return Err(AccountError::BadCredentials);
    }
    match record {
        Some(r) => {
            let ok = verify_password(password, &r.hash);
            if ok && !r.disabled {
                Ok(r.user_id)
            } else {
                Err(AccountError::BadCredentials)
            }
        }
        None => {
            let _ = verify_password(password, dummy_hash());
            Err(AccountError::BadCredentials)
        }
    }
}

/// The enabled user with id `id`.
pub fn enabled_user(conn: &Conn, id: i64) -> Result<Option<User>, AccountError> {
    Ok(user_by_id(conn, id)?.filter(|u| !u.disabled))
}

/// [`login_record`] then [`check_login`] on one connection (the command line, tests).
pub fn verify_login(conn: &Conn, name: &str, password: &str) -> Result<User, AccountError> {
    let rec = login_record(conn, name)?;
    let id = check_login(rec.as_ref(), password)?;
    enabled_user(conn, id)?.ok_or(AccountError::BadCredentials)
}

/// Open a session for `user`; returns the cookie's secret (given to the browser, never stored)
/// and the session's CSRF token.
pub fn create_session(
    conn: &Conn,
    user: &User,
    address: &str,
    now: DateTime<Utc>,
) -> Result<(String, String), AccountError> {
    let id = new_secret()?;
    let csrf = new_secret()?;
    conn.execute(
        "INSERT INTO sessions (id_sha256, user_id, csrf, created_unix, last_seen_unix, address)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![secret_sha256(&id), user.id, csrf, now.timestamp(), address],
    )?;
    Ok((id, csrf))
}

/// The live session of cookie secret `id`: its user exists and is enabled, it was used within
/// `idle_secs` and opened within `max_secs`. An expired one is deleted.
pub fn find_session(
    conn: &Conn,
    id: &str,
    now: DateTime<Utc>,
    idle_secs: i64,
    max_secs: i64,
) -> Result<Option<Session>, AccountError> {
    let id_sha256 = secret_sha256(id);
    let row: Option<(i64, String, i64, i64)> = conn
        .query_row(
            "SELECT user_id, csrf, created_unix, last_seen_unix FROM sessions WHERE id_sha256 = ?1",
            params![&id_sha256],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((user_id, csrf, created, last_seen)) = row else {
        return Ok(None);
    };
    let t = now.timestamp();
    if t - last_seen > idle_secs || t - created > max_secs {
        conn.execute(
            "DELETE FROM sessions WHERE id_sha256 = ?1",
            params![&id_sha256],
        )?;
        return Ok(None);
    }
    let Some(user) = user_by_id(conn, user_id)?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    if t - last_seen >= LAST_SEEN_STEP_SECS {
        conn.execute(
            "UPDATE sessions SET last_seen_unix = ?1 WHERE id_sha256 = ?2",
            params![t, id_sha256],
        )?;
    }
    Ok(Some(Session {
        user,
        csrf,
        id_sha256,
    }))
}

/// End the session stored as `id_sha256`.
pub fn delete_session(conn: &Conn, id_sha256: &str) -> Result<(), AccountError> {
    conn.execute(
        "DELETE FROM sessions WHERE id_sha256 = ?1",
        params![id_sha256],
    )?;
    Ok(())
}

/// Make a personal API token for `user`; returns its secret (shown once) and its id.
pub fn create_token(
    conn: &Conn,
    user: &User,
    label: &str,
    now: DateTime<Utc>,
) -> Result<(String, i64), AccountError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
        return Err(AccountError::InvalidLabel);
    }
    let secret = format!("{TOKEN_PREFIX}{}", new_secret()?);
    let id: i64 = conn.query_row(
        "INSERT INTO api_tokens (token_sha256, user_id, label, created_unix) VALUES (?1, ?2, ?3, ?4)
         RETURNING id",
        params![secret_sha256(&secret), user.id, label, now.timestamp()],
        |r| r.get(0),
    )?;
    Ok((secret, id))
}

/// The user a presented token acts as: not revoked, its user enabled.
pub fn find_token_user(
    conn: &Conn,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<User>, AccountError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let row: Option<(i64, i64, Option<i64>)> = conn
        .query_row(
            "SELECT id, user_id, last_used_unix FROM api_tokens
             WHERE token_sha256 = ?1 AND revoked_unix IS NULL",
            params![secret_sha256(token)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((id, user_id, last_used)) = row else {
        return Ok(None);
    };
    let Some(user) = user_by_id(conn, user_id)?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let t = now.timestamp();
    if last_used.is_none_or(|l| t - l >= LAST_SEEN_STEP_SECS) {
        conn.execute(
            "UPDATE api_tokens SET last_used_unix = ?1 WHERE id = ?2",
            params![t, id],
        )?;
    }
    Ok(Some(user))
}

/// `user`'s tokens, newest first.
pub fn list_tokens(conn: &Conn, user: &User) -> Result<Vec<TokenInfo>, AccountError> {
    let mut stmt = conn.prepare(
        "SELECT id, label, created_unix, last_used_unix, revoked_unix FROM api_tokens
         WHERE user_id = ?1 ORDER BY id DESC",
    )?;
    let rows = stmt
        .query_map(params![user.id], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                label: r.get(1)?,
                created_unix: r.get(2)?,
                last_used_unix: r.get(3)?,
                revoked_unix: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Revoke `user`'s token `id` (another user's token is "not found").
pub fn revoke_token(
    conn: &Conn,
    user: &User,
    id: i64,
    now: DateTime<Utc>,
) -> Result<TokenInfo, AccountError> {
    let n = conn.execute(
        "UPDATE api_tokens SET revoked_unix = ?1 WHERE id = ?2 AND user_id = ?3 AND revoked_unix IS NULL",
        params![now.timestamp(), id, user.id],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchToken(id));
    }
    list_tokens(conn, user)?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(AccountError::NoSuchToken(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn db() -> (tempfile::TempDir, Conn) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = crate::collector::db::testing::test_db(dir.path(), "c.db");
        let store = crate::collector::store::Store::open(&db).unwrap_or_else(|e| panic!("{e}"));
        (dir, store.into_connection())
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 8, 0, 0).unwrap()
    }

    #[test]
    fn the_chosen_parameters_are_valid_argon2id() {
        assert!(Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None).is_ok());
        let h = hash_password("mật khẩu đủ dài").unwrap_or_else(|e| panic!("{e}"));
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=12,p=1$"), "{h}");
        assert!(verify_password("mật khẩu đủ dài", &h));
        assert!(!verify_password("mật khẩu đủ dàj", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn wrong_password_unknown_and_disabled_users_get_one_answer() {
        let (_d, mut c) = db();
        add_user(&mut c, "lan", Role::Admin, &[], "mat-khau-dung-1", t0()).unwrap();
        let refused =
            |r: Result<User, AccountError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        let wrong = refused(verify_login(&c, "lan", "mat-khau-sai-11"));
        let unknown = refused(verify_login(&c, "khong-co", "mat-khau-dung-1"));
        assert_eq!(wrong, "tên đăng nhập hoặc mật khẩu không đúng");
        assert_eq!(wrong, unknown);
        assert_eq!(
            verify_login(&c, "lan", "mat-khau-dung-1").unwrap().name,
            "lan"
        );
        set_disabled(&mut c, "lan", true).unwrap();
        assert_eq!(refused(verify_login(&c, "lan", "mat-khau-dung-1")), wrong);
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_die_with_their_user() {
        let (_d, mut c) = db();
        let u = add_user(&mut c, "lan", Role::Auditor, &[], "mat-khau-dung-1", t0()).unwrap();
        let (id, csrf) = create_session(&c, &u, "127.0.0.1", t0()).unwrap();
        assert_eq!(id.len(), 43);
        let stored: String = c
            .query_row("SELECT id_sha256 FROM sessions", params![], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, id, "the session id itself is never stored");
        let at = |s: i64| t0() + chrono::Duration::seconds(s);
        let s = find_session(&c, &id, at(29 * 60), 1800, 43_200)
            .unwrap()
            .unwrap();
        assert_eq!(s.csrf, csrf);
        // Used at 29 min: alive at 58 min, idle-expired 31 min after its last use.
        assert!(
            find_session(&c, &id, at(58 * 60), 1800, 43_200)
                .unwrap()
                .is_some()
        );
        assert!(
            find_session(&c, &id, at(58 * 60 + 1801), 1800, 43_200)
                .unwrap()
                .is_none()
        );
        // Absolute expiry however active.
        let (id2, _) = create_session(&c, &u, "127.0.0.1", t0()).unwrap();
        for m in (0..=12 * 60).step_by(20) {
            assert!(
                find_session(&c, &id2, at(m * 60), 1800, 43_200)
                    .unwrap()
                    .is_some()
            );
        }
        assert!(
            find_session(&c, &id2, at(43_201), 1800, 43_200)
                .unwrap()
                .is_none()
        );
        // Disabling the user ends their sessions.
        let (id3, _) = create_session(&c, &u, "127.0.0.1", t0()).unwrap();
        set_disabled(&mut c, "lan", true).unwrap();
        assert!(
            find_session(&c, &id3, t0(), 1800, 43_200)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn tokens_are_stored_hashed_revocable_and_die_with_their_user() {
        let (_d, mut c) = db();
        let u = add_user(
            &mut c,
            "op",
            Role::Operator,
            &["phuong-a".into()],
            "mat-khau-dung-1",
            t0(),
        )
        .unwrap();
        let (secret, id) = create_token(&c, &u, "báo cáo tháng", t0()).unwrap();
        assert!(secret.starts_with(TOKEN_PREFIX));
        let n: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM api_tokens WHERE token_sha256 = ?1",
                params![&secret],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "the token itself is never stored");
        let found = find_token_user(&c, &secret, t0()).unwrap().unwrap();
        assert_eq!(found.stations, vec!["phuong-a".to_string()]);
        assert!(find_token_user(&c, "loa_guess", t0()).unwrap().is_none());
        let (other, _) = create_token(&c, &u, "khác", t0()).unwrap();
        revoke_token(&c, &u, id, t0()).unwrap();
        assert!(find_token_user(&c, &secret, t0()).unwrap().is_none());
        assert!(matches!(
            revoke_token(&c, &u, id, t0()),
            Err(AccountError::NoSuchToken(_))
        ));
        set_disabled(&mut c, "op", true).unwrap();
        assert!(find_token_user(&c, &other, t0()).unwrap().is_none());
    }

    #[test]
    fn bad_input_is_refused_with_a_vietnamese_reason() {
        let (_d, mut c) = db();
        let e = |r: Result<User, AccountError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e(add_user(
                &mut c,
                "Lan Anh",
                Role::Admin,
                &[],
                "mat-khau-dung-1",
                t0()
            ))
            .contains("không hợp lệ")
        );
        assert!(e(add_user(&mut c, "lan", Role::Admin, &[], "ngan", t0())).contains("quá ngắn"));
        assert!(
            e(add_user(
                &mut c,
                "op",
                Role::Operator,
                &[],
                "mat-khau-dung-1",
                t0()
            ))
            .contains("ít nhất một trạm")
        );
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(e(add_user(&mut c, "lan", Role::Admin, &[], &huge, t0())).contains("quá dài"));
        add_user(&mut c, "lan", Role::Admin, &[], "mat-khau-dung-1", t0()).unwrap();
        assert!(
            e(add_user(
                &mut c,
                "lan",
                Role::Admin,
                &[],
                "mat-khau-dung-1",
                t0()
            ))
            .contains("đã có")
        );
        let p = generate_password().unwrap();
        assert_eq!(p.len(), GENERATED_PASSWORD_CHARS);
        assert!(p.bytes().all(|b| PASSWORD_ALPHABET.contains(&b)));
    }
}
