//! One database interface for the collector, over SQLite (the embedded default) or PostgreSQL
//! (`--db postgres://…`, docs/operations.md "PostgreSQL and replicas").
//!
//! Every module that keeps tables (`store`, `accounts`, `audit`, `enrolment`, `versions`,
//! `library`, `bulletins`, `push`) talks to a [`Conn`], in one SQL dialect that both engines run:
//! numbered `?N` placeholders (rewritten to PostgreSQL's `$N` here), `ON CONFLICT … DO NOTHING /
//! DO UPDATE`, `RETURNING`, `CAST(… AS BIGINT)` around sums, no `rowid`, no `INSERT OR …`.
//! Values travel as five kinds ([`ValueRef`]: null, 64-bit integer, double, text, bytes); integer
//! columns are `BIGINT` on PostgreSQL, so a value reads back as what was written.
//!
//! **Invariant:** a [`Conn`] is one session with the database. A [`Tx`] begun on it commits only
//! through [`Tx::commit`], and is rolled back when dropped otherwise; a PostgreSQL session lost
//! inside a transaction is never silently replaced (the transaction's statements fail until it
//! ends), while one lost between transactions is reopened at the next statement — which runs on
//! the new session, even when it is the statement that finds the old one ended by the server
//! (a restart, `pg_terminate_backend`: nothing of it was done on the old one). An *immediate*
//! transaction ([`Conn::transaction_immediate`]) is the only writer of the database while it is
//! open, on both engines: SQLite's `BEGIN IMMEDIATE`, and on PostgreSQL a transaction-scoped
//! advisory lock that every replica on the same database takes, so a read-then-write is never
//! raced by another process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type, private::BytesMut};

/// How long a statement waits for a lock (SQLite's busy timeout; PostgreSQL's `lock_timeout`).
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long a PostgreSQL connection attempt may take.
pub const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one PostgreSQL statement may run (`statement_timeout`); also how long an unanswered
/// write on the socket is tolerated (`tcp_user_timeout`), so a cut network is an error, not a hang.
pub const PG_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The advisory lock key every immediate transaction takes on PostgreSQL ("loa" + 1).
const PG_WRITER_LOCK: i64 = 0x006c_6f61_0001;

/// This process among the replicas of one database: a random name, fixed for the process's life,
/// which its own notices carry so that it can tell them from the other replicas'.
pub fn replica_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut b = [0u8; 6];
        if getrandom::fill(&mut b).is_err() {
            b = (std::process::id() as u64).to_le_bytes()[..6]
                .try_into()
                .unwrap_or_default();
        }
        hex::encode(b)
    })
}

/// Which engine a [`Conn`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Where the collector's database is: a SQLite file, or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; `sqlite://PATH` or any other text is a
    /// SQLite file.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_string())
        } else if let Some(path) = text.strip_prefix("sqlite://") {
            Location::Sqlite(PathBuf::from(path))
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    /// The location a `--db` path names (see [`Location::parse`]).
    pub fn of_path(path: &Path) -> Location {
        match path.to_str() {
            Some(text) => Location::parse(text),
            None => Location::Sqlite(path.to_path_buf()),
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Location::Sqlite(_) => Engine::Sqlite,
            Location::Postgres(_) => Engine::Postgres,
        }
    }

    /// The SQLite file, when it is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }

    /// For messages and logs: the file, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// A PostgreSQL URL with its password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Errors from the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", pg_text(.0))]
    Postgres(#[from] postgres::Error),
    #[error("the query returned no row")]
    NoRows,
    #[error("column {idx}: {msg}")]
    Column { idx: usize, msg: String },
    #[error("the database URL {url} is not valid: {msg}")]
    BadUrl { url: String, msg: String },
    #[error(
        "the connection to PostgreSQL was lost inside a transaction; the transaction was not committed"
    )]
    LostInTransaction,
    #[error("PostgreSQL session: {0}")]
    Session(String),
}

/// A PostgreSQL error with the server's own message when there is one.
fn pg_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

impl DbError {
    /// A unique or primary-key constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            DbError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// The database answered the statement and refused it for its data — a constraint
    /// (SQLite `SQLITE_CONSTRAINT`, PostgreSQL class 23), a value it cannot take (SQLite
    /// `SQLITE_TOOBIG`/`SQLITE_MISMATCH`, PostgreSQL class 22), a column that does not read as
    /// asked — with the session still usable. Not a lost connection, a timeout or a busy
    /// database.
    pub fn is_refusal(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::ConstraintViolation
                    | rusqlite::ErrorCode::TooBig
                    | rusqlite::ErrorCode::TypeMismatch
            ),
            DbError::Postgres(e) => e
                .code()
                .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23")),
            DbError::Column { .. } => true,
            _ => false,
        }
    }

    /// The database was busy or locked past the wait (SQLite `SQLITE_BUSY`/`LOCKED`,
    /// PostgreSQL lock timeout or serialization failure).
    pub fn is_busy(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            DbError::Postgres(e) => matches!(
                e.code(),
                Some(c) if *c == postgres::error::SqlState::LOCK_NOT_AVAILABLE
                    || *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }
}

/// `Result<T, DbError>` → `Result<Option<T>, DbError>`: no row is `None` (as rusqlite's
/// `OptionalExtension`).
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A value as a statement takes it or a row holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// An owned value (copying rows between engines, `loa store migrate`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Int(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// A statement parameter.
pub trait ToValue {
    fn to_value(&self) -> ValueRef<'_>;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> ValueRef<'_> {
                ValueRef::Int(i64::from(*self))
            }
        }
    )*};
}
int_to_value!(i64, i32, i16, i8, u32, u16, u8);

impl ToValue for bool {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Real(*self)
    }
}
impl ToValue for f32 {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Real(f64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}
impl ToValue for String {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}
impl ToValue for Value {
    fn to_value(&self) -> ValueRef<'_> {
        self.as_ref()
    }
}
impl ToValue for ValueRef<'_> {
    fn to_value(&self) -> ValueRef<'_> {
        *self
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> ValueRef<'_> {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.to_value(),
            None => ValueRef::Null,
        }
    }
}

/// Statement parameters: `params![a, b, c]` (as rusqlite's macro).
#[macro_export]
macro_rules! db_params {
    () => {
        &[] as &[&dyn $crate::collector::db::ToValue]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::collector::db::ToValue),+] as &[&dyn $crate::collector::db::ToValue]
    };
}
pub use crate::db_params as params;

/// A column value read from a row.
pub trait FromValue: Sized {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String>;
}

fn kind(v: &ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Int(_) => "an integer",
        ValueRef::Real(_) => "a real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "bytes",
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
                match v {
                    ValueRef::Int(i) => <$t>::try_from(i)
                        .map_err(|_| format!("{i} is out of range for {}", stringify!($t))),
                    other => Err(format!("expected an integer, found {}", kind(&other))),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, i16, u64, u32, u16, u8, usize);

impl FromValue for bool {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Int(i) => Ok(i != 0),
            other => Err(format!("expected an integer, found {}", kind(&other))),
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Int(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {}", kind(&other))),
        }
    }
}
impl FromValue for String {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_string()),
            other => Err(format!("expected text, found {}", kind(&other))),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            ValueRef::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(format!("expected bytes, found {}", kind(&other))),
        }
    }
}
impl FromValue for Value {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        Ok(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(s) => Value::Text(s.to_string()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One row of a result.
pub struct Row<'a>(RowInner<'a>);

enum RowInner<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `idx` (from 0) as `T`.
    pub fn get<T: FromValue>(&self, idx: usize) -> Result<T, DbError> {
        let v = self.value(idx)?;
        T::from_value(v).map_err(|msg| DbError::Column { idx, msg })
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        match &self.0 {
            RowInner::Sqlite(r) => r.as_ref().column_count(),
            RowInner::Postgres(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Column `idx` as it is stored.
    pub fn value(&self, idx: usize) -> Result<ValueRef<'_>, DbError> {
        match &self.0 {
            RowInner::Sqlite(r) => {
                use rusqlite::types::ValueRef as V;
                Ok(match r.get_ref(idx)? {
                    V::Null => ValueRef::Null,
                    V::Integer(i) => ValueRef::Int(i),
                    V::Real(f) => ValueRef::Real(f),
                    V::Text(t) => {
                        ValueRef::Text(std::str::from_utf8(t).map_err(|e| DbError::Column {
                            idx,
                            msg: format!("text is not UTF-8: {e}"),
                        })?)
                    }
                    V::Blob(b) => ValueRef::Blob(b),
                })
            }
            RowInner::Postgres(r) => pg_value(r, idx),
        }
    }
}

fn pg_value(r: &postgres::Row, idx: usize) -> Result<ValueRef<'_>, DbError> {
    let Some(col) = r.columns().get(idx) else {
        return Err(DbError::Column {
            idx,
            msg: format!("the row has {} columns", r.len()),
        });
    };
    let ty = col.type_().clone();
    let int = |v: Option<i64>| v.map_or(ValueRef::Null, ValueRef::Int);
    Ok(match ty {
        Type::INT8 => int(r.try_get::<_, Option<i64>>(idx)?),
        Type::INT4 => int(r.try_get::<_, Option<i32>>(idx)?.map(i64::from)),
        Type::INT2 => int(r.try_get::<_, Option<i16>>(idx)?.map(i64::from)),
        Type::OID => int(r.try_get::<_, Option<u32>>(idx)?.map(i64::from)),
        Type::BOOL => int(r.try_get::<_, Option<bool>>(idx)?.map(i64::from)),
        Type::FLOAT8 => r
            .try_get::<_, Option<f64>>(idx)?
            .map_or(ValueRef::Null, ValueRef::Real),
        Type::FLOAT4 => r
            .try_get::<_, Option<f32>>(idx)?
            .map_or(ValueRef::Null, |f| ValueRef::Real(f64::from(f))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => r
            .try_get::<_, Option<&str>>(idx)?
            .map_or(ValueRef::Null, ValueRef::Text),
        Type::BYTEA => r
            .try_get::<_, Option<&[u8]>>(idx)?
            .map_or(ValueRef::Null, ValueRef::Blob),
        other => {
            return Err(DbError::Column {
                idx,
                msg: format!(
                    "PostgreSQL type {other} is not read by loa (a sum is NUMERIC: CAST it AS BIGINT)"
                ),
            });
        }
    })
}

/// A parameter as rusqlite takes it.
struct SqliteParam<'a>(ValueRef<'a>);

impl rusqlite::ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as V};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            ValueRef::Null => V::Null,
            ValueRef::Int(i) => V::Integer(i),
            ValueRef::Real(f) => V::Real(f),
            ValueRef::Text(s) => V::Text(s.as_bytes()),
            ValueRef::Blob(b) => V::Blob(b),
        }))
    }
}

/// A parameter as PostgreSQL takes it: encoded as the type the server inferred for its place.
#[derive(Debug)]
struct PgParam<'a>(ValueRef<'a>);

type PgResult = Result<IsNull, Box<dyn std::error::Error + Sync + Send>>;

impl ToSql for PgParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> PgResult {
        let refuse = |what: &str| -> PgResult { Err(format!("cannot send {what} as {ty}").into()) };
        match self.0 {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                Type::FLOAT4 => (i as f32).to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => i.to_string().to_sql(ty, out),
                _ => refuse("an integer"),
            },
            ValueRef::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (f as f32).to_sql(ty, out),
                _ => refuse("a real"),
            },
            ValueRef::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    s.to_sql(ty, out)
                }
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => refuse("text"),
            },
            ValueRef::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                _ => refuse("bytes"),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// The placeholders of a multi-row `VALUES` list: `rows` groups of `columns` numbered
/// placeholders, `(?1, ?2), (?3, ?4)` — one statement for many rows (a round trip each on
/// PostgreSQL).
pub fn values_placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..columns {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(row * columns + col + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `?N` and `?` placeholders as PostgreSQL's `$N` (outside quoted text).
pub fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 1usize;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    next = digits.parse::<usize>().unwrap_or(0) + 1;
                    out.push_str(&digits);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

struct PgConn {
    config: postgres::Config,
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    in_tx: bool,
}

impl PgConn {
    fn connect(config: &postgres::Config) -> Result<postgres::Client, DbError> {
        let mut client = config.connect(postgres::NoTls)?;
        client.batch_execute(&format!(
            "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'; \
             SET idle_in_transaction_session_timeout = '{}ms'; SET TIME ZONE 'UTC'",
            LOCK_WAIT.as_millis(),
            PG_STATEMENT_TIMEOUT.as_millis(),
            PG_STATEMENT_TIMEOUT.as_millis()
        ))?;
        Ok(client)
    }

    /// The session, reopened first when it was lost between transactions.
    fn client(&mut self) -> Result<&mut postgres::Client, DbError> {
        let lost = self.client.as_ref().is_none_or(|c| c.is_closed());
        if lost {
            if self.in_tx {
                return Err(DbError::LostInTransaction);
            }
            self.statements.clear();
            self.client = None;
            self.client = Some(Self::connect(&self.config)?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        // The session first: a new one forgets the statements prepared on the old one.
        self.client()?;
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let text = pg_sql(sql);
        let st = self.client()?.prepare(&text)?;
        if self.statements.len() > 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    /// Run `f` once more on a new session when the server had ended this one before `f`'s
    /// statement ran (see [`ended_by_server`]) outside a transaction: a session the server ends
    /// between transactions is only noticed by the next statement, which is not lost for it.
    fn again_if_ended<R>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        match f(self) {
            Err(DbError::Postgres(e)) if !self.in_tx && ended_by_server(&e) => {
                self.client = None;
                f(self)
            }
            r => r,
        }
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<postgres::Row>, DbError> {
        self.again_if_ended(|c| c.query_once(sql, params))
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.again_if_ended(|c| c.execute_once(sql, params))
    }

    fn query_once(&mut self, sql: &str, params: &[Value]) -> Result<Vec<postgres::Row>, DbError> {
        let st = self.statement(sql)?;
        let values: Vec<PgParam<'_>> = params.iter().map(|p| PgParam(p.as_ref())).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let rows = self.client()?.query(&st, &refs);
        rows.map_err(|e| self.failed(e))
    }

    fn execute_once(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let st = self.statement(sql)?;
        let values: Vec<PgParam<'_>> = params.iter().map(|p| PgParam(p.as_ref())).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let n = self.client()?.execute(&st, &refs);
        n.map_err(|e| self.failed(e))
    }

    /// A failed statement; a prepared statement the server no longer knows (its schema
    /// changed) is forgotten so the next call prepares it again.
    fn failed(&mut self, e: postgres::Error) -> DbError {
        if e.as_db_error().is_some_and(|d| {
            d.code() == &postgres::error::SqlState::FEATURE_NOT_SUPPORTED
                || d.code() == &postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME
        }) {
            self.statements.clear();
        }
        DbError::Postgres(e)
    }
}

/// The server ended the session (`pg_terminate_backend`, a shutdown or restart) before or while
/// the statement ran: the statement was not committed, whatever it was.
fn ended_by_server(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code()
        .is_some_and(|c| *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN)
}

type PgJob = Box<dyn FnOnce(&mut PgConn) + Send>;

/// A PostgreSQL session on a thread of its own. The blocking client runs its own small runtime,
/// which cannot start on a thread that is inside tokio's (an async handler, `#[tokio::test]`);
/// its own thread can, so a [`Conn`] is called the same way from anywhere, as SQLite's is.
///
/// Every call waits at most [`PG_ANSWER_WAIT`] for its answer: a server that stops answering
/// without closing the connection (a frozen machine, a network that drops packets) would
/// otherwise hold the caller for as long as the kernel keeps the socket. A session that does
/// not answer in time is abandoned (its thread ends when its call does, closing the connection,
/// and the server rolls its transaction back) and a new one is started for the next call; when
/// that happens inside a transaction, the transaction's remaining statements fail
/// ([`DbError::LostInTransaction`]) until it ends — nothing of it is ever committed.
struct PgSession {
    config: postgres::Config,
    jobs: std::cell::RefCell<std::sync::mpsc::Sender<PgJob>>,
    /// A transaction is open on this `Conn` (begun, not yet ended).
    in_tx: std::cell::Cell<bool>,
    /// The session was replaced while a transaction was open: fail until it ends.
    lost_tx: std::cell::Cell<bool>,
}

/// How long a caller waits for any PostgreSQL answer (beyond the server's own
/// `statement_timeout` and `lock_timeout`, which end a slow statement first).
pub const PG_ANSWER_WAIT: Duration = Duration::from_secs(90);

thread_local! {
    /// Tests shorten [`PG_ANSWER_WAIT`] on their own thread ([`testing::answer_wait`]).
    static ANSWER_WAIT: std::cell::Cell<Duration> = const { std::cell::Cell::new(PG_ANSWER_WAIT) };
}

impl PgSession {
    fn start(config: postgres::Config) -> Result<PgSession, DbError> {
        Ok(PgSession {
            jobs: std::cell::RefCell::new(Self::thread(config.clone())?),
            config,
            in_tx: std::cell::Cell::new(false),
            lost_tx: std::cell::Cell::new(false),
        })
    }

    /// A new session thread (it connects at its first call).
    fn thread(config: postgres::Config) -> Result<std::sync::mpsc::Sender<PgJob>, DbError> {
        let (jobs, rx) = std::sync::mpsc::channel::<PgJob>();
        let mut conn = PgConn {
            config,
            client: None,
            statements: HashMap::new(),
            in_tx: false,
        };
        std::thread::Builder::new()
            .name("loa-postgres".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| DbError::Session(e.to_string()))?;
        Ok(jobs)
    }

    /// Run `f` on the session's thread and wait for its answer, at most [`PG_ANSWER_WAIT`].
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut PgConn) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, DbError> {
        self.run_within(ANSWER_WAIT.with(std::cell::Cell::get), f)
    }

    fn run_within<R: Send + 'static>(
        &self,
        wait: Duration,
        f: impl FnOnce(&mut PgConn) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, DbError> {
        if self.lost_tx.get() {
            return Err(DbError::LostInTransaction);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let sent = self.jobs.borrow().send(Box::new(move |c| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)))
                .unwrap_or_else(|_| Err(DbError::Session("the PostgreSQL client panicked".into())));
            let _ = tx.send(r);
        }));
        if sent.is_err() {
            self.replace();
            return Err(DbError::Session(
                "the session thread had ended; a new one is started".into(),
            ));
        }
        match rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(_) => {
                self.replace();
                Err(DbError::Session(format!(
                    "PostgreSQL did not answer within {} s; the session was dropped and a new one \
                     will be opened",
                    wait.as_secs()
                )))
            }
        }
    }

    /// Abandon the session thread for a new one (see the type's doc).
    fn replace(&self) {
        if self.in_tx.get() {
            self.lost_tx.set(true);
        }
        match Self::thread(self.config.clone()) {
            Ok(jobs) => *self.jobs.borrow_mut() = jobs,
            Err(e) => tracing::error!(error = %e, "cannot start a PostgreSQL session thread"),
        }
    }
}

fn owned(params: &[&dyn ToValue]) -> Vec<Value> {
    params
        .iter()
        .map(|p| match p.to_value() {
            ValueRef::Null => Value::Null,
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(s) => Value::Text(s.to_string()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
        .collect()
}

/// One session with the collector's database.
pub struct Conn {
    inner: Inner,
    location: Location,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgSession>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({})", self.location.display())
    }
}

/// The PostgreSQL connection settings of `url`, with loa's timeouts.
pub fn pg_config(url: &str) -> Result<postgres::Config, DbError> {
    let mut config: postgres::Config =
        url.parse().map_err(|e: postgres::Error| DbError::BadUrl {
            url: redact(url),
            msg: e.to_string(),
        })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(PG_CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(PG_STATEMENT_TIMEOUT);
    }
    // A peer that vanished (a cut network, a machine lost) is noticed within ~45 s even while
    // nothing is being sent: probes after 30 s idle, every 5 s, 3 unanswered.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    if config.get_application_name().is_none() {
        config.application_name("loa collector");
    }
    Ok(config)
}

impl Conn {
    /// Open a session (a SQLite file is created when missing). Nothing is migrated here.
    pub fn open(location: &Location) -> Result<Conn, DbError> {
        Self::open_with(location, true)
    }

    /// [`Conn::open`]; with `durable` false, a PostgreSQL session whose commits do not wait for
    /// the server's disk (`synchronous_commit = off`, kept across reconnects): a server crash
    /// may lose its last commits, never the database's consistency — what SQLite's
    /// `synchronous=NORMAL` gives the collector's heartbeat and account connections. SQLite's
    /// durability is its PRAGMA, set by `Store`.
    pub fn open_with(location: &Location, durable: bool) -> Result<Conn, DbError> {
        let inner = match location {
            Location::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)?;
                conn.busy_timeout(LOCK_WAIT)?;
                conn.set_prepared_statement_cache_capacity(64);
                Inner::Sqlite(conn)
            }
            Location::Postgres(url) => {
                let mut config = pg_config(url)?;
                if !durable {
                    let options = match config.get_options() {
                        Some(o) => format!("{o} -c synchronous_commit=off"),
                        None => "-c synchronous_commit=off".to_string(),
                    };
                    config.options(&options);
                }
                let session = Box::new(PgSession::start(config)?);
                session.run(|c| c.client().map(|_| ()))?;
                Inner::Postgres(session)
            }
        };
        Ok(Conn {
            inner,
            location: location.clone(),
        })
    }

    /// A session on an already open SQLite connection (tests, tools).
    pub fn from_sqlite(conn: rusqlite::Connection, path: &Path) -> Conn {
        Conn {
            inner: Inner::Sqlite(conn),
            location: Location::Sqlite(path.to_path_buf()),
        }
    }

    pub fn engine(&self) -> Engine {
        self.location.engine()
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The SQLite connection itself (PRAGMAs, SQLite-only migrations), when it is one.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// Run one statement; how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(
                    params.iter().map(|p| SqliteParam(p.to_value())),
                ))?)
            }
            Inner::Postgres(pg) => {
                let (sql, params) = (sql.to_string(), owned(params));
                let n = pg.run(move |c| c.execute(&sql, &params))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Call `f` on every row of a query, in order, stopping at its first error.
    pub fn for_each_row<E: From<DbError>>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        mut f: impl FnMut(&Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql).map_err(DbError::from)?;
                let mut rows = st
                    .query(rusqlite::params_from_iter(
                        params.iter().map(|p| SqliteParam(p.to_value())),
                    ))
                    .map_err(DbError::from)?;
                while let Some(r) = rows.next().map_err(DbError::from)? {
                    f(&Row(RowInner::Sqlite(r)))?;
                }
                Ok(())
            }
            Inner::Postgres(pg) => {
                let (sql, params) = (sql.to_string(), owned(params));
                let rows = pg.run(move |c| c.query(&sql, &params))?;
                for r in &rows {
                    f(&Row(RowInner::Postgres(r)))?;
                }
                Ok(())
            }
        }
    }

    /// Every row of a query through `f` (as rusqlite's `query_map`, collected).
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        mut f: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let mut out = Vec::new();
        self.for_each_row(sql, params, |r| -> Result<(), DbError> {
            out.push(Ok(f(r)?));
            Ok(())
        })?;
        Ok(out.into_iter())
    }

    /// The first row of a query through `f`; [`DbError::NoRows`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        f: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut f = Some(f);
        let mut out = None;
        self.for_each_row(sql, params, |r| -> Result<(), DbError> {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        out.ok_or(DbError::NoRows)
    }

    /// A statement to run repeatedly (statements are cached per session on both engines).
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        Ok(Stmt {
            conn: self,
            sql: sql.to_string(),
        })
    }

    /// Same as [`Conn::prepare_cached`].
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        self.prepare_cached(sql)
    }

    /// Run several statements separated by `;`, without parameters (migrations).
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(pg) => {
                let sql = sql.to_string();
                pg.run(move |pg| {
                    let r = pg.client()?.batch_execute(&sql);
                    r.map_err(|e| pg.failed(e))
                })
            }
        }
    }

    /// A deferred transaction: it takes the write lock only when it first writes.
    pub fn transaction(&self) -> Result<Tx<'_>, DbError> {
        self.begin(false)
    }

    /// A transaction that is the database's only writer from its first statement (see the
    /// module's invariant): for every read-then-write.
    pub fn transaction_immediate(&self) -> Result<Tx<'_>, DbError> {
        self.begin(true)
    }

    fn begin(&self, immediate: bool) -> Result<Tx<'_>, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => {
                c.execute_batch(if immediate {
                    "BEGIN IMMEDIATE"
                } else {
                    "BEGIN"
                })?;
            }
            Inner::Postgres(pg) => {
                let sql = if immediate {
                    format!("BEGIN; SELECT pg_advisory_xact_lock({PG_WRITER_LOCK})")
                } else {
                    "BEGIN".to_string()
                };
                pg.run(move |pg| {
                    let mut r = pg.client()?.batch_execute(&sql);
                    if let Err(e) = &r
                        && ended_by_server(e)
                    {
                        // Ended by the server since the last transaction: begin on a new one.
                        pg.client = None;
                        r = pg.client()?.batch_execute(&sql);
                    }
                    if let Err(e) = r {
                        // A lock wait that timed out leaves the transaction aborted: end it.
                        if let Some(c) = pg.client.as_mut() {
                            let _ = c.batch_execute("ROLLBACK");
                        }
                        return Err(pg.failed(e));
                    }
                    pg.in_tx = true;
                    Ok(())
                })?;
                pg.in_tx.set(true);
            }
        }
        Ok(Tx {
            conn: self,
            done: false,
        })
    }

    fn end(&self, commit: bool) -> Result<(), DbError> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(pg) => {
                pg.in_tx.set(false);
                if pg.lost_tx.replace(false) {
                    // The session that held the transaction was abandoned: it was never
                    // committed, and the server rolls it back when that connection closes.
                    return if commit {
                        Err(DbError::LostInTransaction)
                    } else {
                        Ok(())
                    };
                }
                pg.run(move |pg| {
                    pg.in_tx = false;
                    let r = match pg.client.as_mut().filter(|c| !c.is_closed()) {
                        Some(c) => c.batch_execute(sql),
                        None if commit => return Err(DbError::LostInTransaction),
                        None => return Ok(()),
                    };
                    r.map_err(|e| pg.failed(e))
                })
            }
        }
    }
}

/// A statement of a [`Conn`] (see [`Conn::prepare_cached`]).
pub struct Stmt<'c> {
    conn: &'c Conn,
    sql: String,
}

impl Stmt<'_> {
    pub fn execute(&mut self, params: &[&dyn ToValue]) -> Result<usize, DbError> {
        self.conn.execute(&self.sql, params)
    }

    pub fn query_map<T>(
        &mut self,
        params: &[&dyn ToValue],
        f: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        self.conn.query_map(&self.sql, params, f)
    }

    pub fn query_row<T>(
        &mut self,
        params: &[&dyn ToValue],
        f: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.conn.query_row(&self.sql, params, f)
    }

    /// Whether the query returns a row.
    pub fn exists(&mut self, params: &[&dyn ToValue]) -> Result<bool, DbError> {
        let mut found = false;
        self.conn
            .for_each_row(&self.sql, params, |_| -> Result<(), DbError> {
                found = true;
                Ok(())
            })?;
        Ok(found)
    }

    pub fn for_each_row<E: From<DbError>>(
        &mut self,
        params: &[&dyn ToValue],
        f: impl FnMut(&Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.conn.for_each_row(&self.sql, params, f)
    }
}

/// An open transaction on a [`Conn`]; it reads and writes through the same methods
/// (`Deref`), commits with [`Tx::commit`] and rolls back when dropped otherwise.
pub struct Tx<'c> {
    conn: &'c Conn,
    done: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<(), DbError> {
        self.done = true;
        self.conn.end(true)
    }

    pub fn rollback(mut self) -> Result<(), DbError> {
        self.done = true;
        self.conn.end(false)
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.end(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP relay to the PostgreSQL server that can be frozen: it stops moving bytes but keeps
    /// both connections open, as a frozen server or a network dropping packets would.
    struct Relay {
        addr: std::net::SocketAddr,
        frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl Relay {
        fn to(upstream: String) -> Relay {
            use std::io::{Read, Write};
            use std::sync::atomic::Ordering;
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let f = frozen.clone();
            std::thread::spawn(move || {
                for client in listener.incoming().flatten() {
                    let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                        continue;
                    };
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        let f = f.clone();
                        std::thread::spawn(move || {
                            from.set_read_timeout(Some(Duration::from_millis(20)))
                                .unwrap();
                            let mut buf = [0u8; 16384];
                            loop {
                                if f.load(Ordering::SeqCst) {
                                    std::thread::sleep(Duration::from_millis(20));
                                    continue;
                                }
                                match from.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        if to.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                    Err(e)
                                        if e.kind() == std::io::ErrorKind::WouldBlock
                                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                }
            });
            Relay { addr, frozen }
        }

        fn freeze(&self, on: bool) {
            self.frozen.store(on, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_server_that_stops_answering_fails_the_call_in_time_and_commits_nothing() {
        let Some(admin) = testing::pg_admin_url() else {
            println!("a frozen PostgreSQL server: runs under LOA_TEST_DB=postgres only");
            return;
        };
        let url = testing::fresh_pg_database(&admin);
        let (head, tail) = url.split_once('@').unwrap();
        let (server, db) = tail.split_once('/').unwrap();
        let relay = Relay::to(server.to_string());
        let via = Location::Postgres(format!("{head}@{}/{db}", relay.addr));
        testing::answer_wait(Duration::from_secs(2));
        let conn = Conn::open(&via).unwrap();
        conn.execute_batch("CREATE TABLE t (a BIGINT)").unwrap();
        // Outside a transaction: the call fails in time, the next one gets a new session.
        relay.freeze(true);
        let t = std::time::Instant::now();
        let e = conn
            .query_row("SELECT 1", params![], |r| r.get::<i64>(0))
            .unwrap_err();
        assert!(matches!(e, DbError::Session(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        relay.freeze(false);
        assert_eq!(
            conn.query_row("SELECT 7", params![], |r| r.get::<i64>(0))
                .unwrap(),
            7
        );
        // Inside a transaction: every later statement fails, the commit fails, nothing is stored.
        let tx = conn.transaction_immediate().unwrap();
        tx.execute("INSERT INTO t (a) VALUES (1)", params![])
            .unwrap();
        relay.freeze(true);
        assert!(
            tx.execute("INSERT INTO t (a) VALUES (2)", params![])
                .is_err()
        );
        relay.freeze(false);
        assert!(matches!(
            tx.execute("INSERT INTO t (a) VALUES (3)", params![]),
            Err(DbError::LostInTransaction)
        ));
        assert!(matches!(tx.commit(), Err(DbError::LostInTransaction)));
        // The abandoned session's connection closes once its stuck call returns; the server
        // then rolls its transaction back (and frees the writer lock).
        let other = Conn::open(&Location::Postgres(url.clone())).unwrap();
        let t = std::time::Instant::now();
        loop {
            let open: i64 = other
                .query_row(
                    "SELECT COUNT(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND state LIKE 'idle in transaction%'",
                    params![],
                    |r| r.get(0),
                )
                .unwrap();
            if open == 0 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "a transaction stayed open"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let n: i64 = other
            .query_row("SELECT COUNT(*) FROM t", params![], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "nothing of the lost transaction is stored");
        // The writer lock is free: an immediate transaction on another session begins at once.
        other.transaction_immediate().unwrap().commit().unwrap();
        // And the first Conn works again after its transaction ended.
        conn.execute("INSERT INTO t (a) VALUES (4)", params![])
            .unwrap();
        assert_eq!(
            other
                .query_row("SELECT COUNT(*) FROM t", params![], |r| r.get::<i64>(0))
                .unwrap(),
            1
        );
    }

    #[test]
    fn a_session_opened_not_durable_keeps_synchronous_commit_off_across_reconnects() {
        let Some(admin) = testing::pg_admin_url() else {
            println!("synchronous_commit: runs under LOA_TEST_DB=postgres only");
            return;
        };
        let at = Location::Postgres(testing::fresh_pg_database(&admin));
        let setting = |c: &Conn| -> String {
            c.query_row("SHOW synchronous_commit", params![], |r| r.get(0))
                .unwrap()
        };
        let durable = Conn::open(&at).unwrap();
        let relaxed = Conn::open_with(&at, false).unwrap();
        // A durable session keeps the server's own setting (on unless the server says off).
        let server: String = durable
            .query_row(
                "SELECT boot_val FROM pg_settings WHERE name = 'synchronous_commit'",
                params![],
                |r| r.get(0),
            )
            .unwrap();
        let configured: String = durable
            .query_row(
                "SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'",
                params![],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(setting(&durable), configured, "built in: {server}");
        assert_eq!(setting(&relaxed), "off");
        // The server ends the relaxed session; the next statement runs on a new one, still off.
        let pid: i64 = relaxed
            .query_row("SELECT pg_backend_pid()", params![], |r| r.get(0))
            .unwrap();
        durable
            .query_row("SELECT pg_terminate_backend(?1::int)", params![pid], |_| {
                Ok(())
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(setting(&relaxed), "off");
        let again: i64 = relaxed
            .query_row("SELECT pg_backend_pid()", params![], |r| r.get(0))
            .unwrap();
        assert_ne!(again, pid, "a new session");
    }

    #[test]
    fn placeholders_become_dollar_numbers_outside_quotes() {
        assert_eq!(
            pg_sql("SELECT a FROM t WHERE b = ?1 AND c = '?' AND d = ?2"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
        assert_eq!(pg_sql("VALUES (?, ?, ?)"), "VALUES ($1, $2, $3)");
        assert_eq!(pg_sql("x = ?12"), "x = $12");
        assert_eq!(values_placeholders(2, 2), "(?1, ?2), (?3, ?4)");
    }

    #[test]
    fn locations_are_told_apart_and_passwords_never_shown() {
        assert_eq!(
            Location::parse("/var/lib/loa/c.db").engine(),
            Engine::Sqlite
        );
        assert_eq!(
            Location::parse("sqlite:///var/c.db"),
            Location::Sqlite(PathBuf::from("/var/c.db"))
        );
        let pg = Location::parse("postgres://loa:s3cret@db.local:5432/loa");
        assert_eq!(pg.engine(), Engine::Postgres);
        assert_eq!(pg.display(), "postgres://loa:***@db.local:5432/loa");
        assert!(!pg.display().contains("s3cret"));
    }

    #[test]
    fn values_round_trip_and_transactions_roll_back_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Conn::open(&Location::of_path(&testing::test_db(dir.path(), "t.db"))).unwrap();
        conn.execute_batch(match conn.engine() {
            Engine::Sqlite => "CREATE TABLE t (a INTEGER, b REAL, c TEXT, d BLOB)",
            Engine::Postgres => "CREATE TABLE t (a BIGINT, b DOUBLE PRECISION, c TEXT, d BYTEA)",
        })
        .unwrap();
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            params![7i64, 1.5f64, "xin chào", vec![1u8, 2]],
        )
        .unwrap();
        {
            let tx = conn.transaction_immediate().unwrap();
            tx.execute("INSERT INTO t (a) VALUES (?1)", params![8i64])
                .unwrap();
        }
        let rows: Vec<(i64, Option<f64>, Option<String>)> = conn
            .query_map("SELECT a, b, c FROM t ORDER BY a", params![], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(7, Some(1.5), Some("xin chào".to_string()))]);
        let none = conn
            .query_row("SELECT a FROM t WHERE a = 99", params![], |r| {
                r.get::<i64>(0)
            })
            .optional()
            .unwrap();
        assert_eq!(none, None);
        let e = conn
            .query_row("SELECT c FROM t", params![], |r| r.get::<i64>(0))
            .unwrap_err();
        assert!(e.to_string().contains("column 0"), "{e}");
    }
}

/// For the test suites: where a test's collector database goes, so the same tests run on both
/// engines. With `LOA_TEST_DB=postgres`, a fresh PostgreSQL database per call, created through
/// `LOA_TEST_PG_URL` (default `postgres://root:loa@127.0.0.1:5432/postgres`, what `.ci/run`
/// sets up); otherwise the SQLite file `dir/name`.
#[doc(hidden)]
pub mod testing {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// How long PostgreSQL calls made on this thread wait for an answer (default
    /// [`super::PG_ANSWER_WAIT`]), so a test of a frozen server need not wait 90 s.
    pub fn answer_wait(wait: std::time::Duration) {
        super::ANSWER_WAIT.with(|w| w.set(wait));
    }

    /// The server URL tests create their databases through, when they run on PostgreSQL.
    pub fn pg_admin_url() -> Option<String> {
        match std::env::var("LOA_TEST_DB").as_deref() {
            Ok("postgres") => Some(
                std::env::var("LOA_TEST_PG_URL")
                    .unwrap_or_else(|_| "postgres://root:loa@127.0.0.1:5432/postgres".to_string()),
            ),
            _ => None,
        }
    }

    /// A new, empty PostgreSQL database; its URL.
    pub fn fresh_pg_database(admin_url: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "loa_t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let admin = super::Conn::open(&super::Location::Postgres(admin_url.to_string()))
            .unwrap_or_else(|e| panic!("LOA_TEST_DB=postgres: cannot reach {admin_url}: {e}"));
        admin
            .execute_batch(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        match admin_url.rsplit_once('/') {
            Some((server, tail)) => match tail.split_once('?') {
                Some((_, query)) => format!("{server}/{name}?{query}"),
                None => format!("{server}/{name}"),
            },
            None => panic!("LOA_TEST_PG_URL {admin_url} names no database"),
        }
    }

    /// The test database: `dir/name` on SQLite, a fresh PostgreSQL database's URL (as a path,
    /// which `--db` and `Store::open` read as a URL) under `LOA_TEST_DB=postgres`.
    pub fn test_db(dir: &Path, name: &str) -> PathBuf {
        match pg_admin_url() {
            Some(url) => PathBuf::from(fresh_pg_database(&url)),
            None => dir.join(name),
        }
    }
}
