//! Moving a collector's database to another one (`loa store migrate`, docs/operations.md "Moving
//! from SQLite to PostgreSQL"): every table of the schema ([`TABLES`]), every column by name,
//! copied in primary-key order in batches of [`BATCH_ROWS`] rows (one destination transaction
//! each), identity values kept and the destination's identity sequences set past them; then
//! verified row by row.
//!
//! **Invariant:** [`copy`] writes only into a destination whose every table is empty (checked
//! before its first write) and whose tables and columns are exactly the source's; it refuses a
//! source record whose bytes do not hash to its `hash` column, before writing its batch.
//! [`verify`] passes only when each table holds as many rows on both sides and every source row
//! is in the destination under its key with every column equal, and every record's bytes hash to
//! its `hash`. Memory is bounded by a batch, never by a table: both read in pages by key
//! (keyset), so a year of a city's records moves in constant memory. The source is only read,
//! inside one transaction (on SQLite, one snapshot: the copy and its check see the same rows).
//! This module knows nothing of files, URLs or the command line: it takes two [`Conn`]s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::collector::db::{Conn, DbError, Engine, OptionalExtension, ToValue, Value, params};

/// Rows per batch: per destination transaction, and per page read while verifying.
#[cfg(not(test))]
pub const BATCH_ROWS: usize = 5_000;
/// Small under test, so pages and batches really roll over in the unit tests.
#[cfg(test)]
pub const BATCH_ROWS: usize = 7;

/// Most parameters one multi-row INSERT takes (SQLite allows 32,766; PostgreSQL 65,535).
const MAX_PARAMS_PER_STATEMENT: usize = 30_000;

/// Most keys one `IN (…)` lookup sends while verifying.
const MAX_LOOKUP_KEYS: usize = 1_000;

/// A table of the collector's schema and its primary key (the order it is copied and read in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub key: &'static [&'static str],
}

/// Every table of the schema (SQLite's migrations in `store.rs`, `schema.pg.sql`), in an order
/// where a table comes after the tables its foreign keys name (PostgreSQL checks them at once).
pub const TABLES: &[Table] = &[
    Table {
        name: "records",
        key: &["station", "seq"],
    },
    Table {
        name: "heartbeats",
        key: &["station"],
    },
    Table {
        name: "audio_facts",
        key: &["sha256"],
    },
    Table {
        name: "audio_files",
        key: &["path"],
    },
    Table {
        name: "users",
        key: &["id"],
    },
    Table {
        name: "user_stations",
        key: &["user_id", "station"],
    },
    Table {
        name: "sessions",
        key: &["id_sha256"],
    },
    Table {
        name: "api_tokens",
        key: &["id"],
    },
    Table {
        name: "audit_log",
        key: &["id"],
    },
    Table {
        name: "schedule_versions",
        key: &["doc", "version"],
    },
    Table {
        name: "content",
        key: &["sha256"],
    },
    Table {
        name: "library_paths",
        key: &["path"],
    },
    Table {
        name: "managed_stations",
        key: &["id"],
    },
    Table {
        name: "enrolment_codes",
        key: &["code_sha256"],
    },
    Table {
        name: "bulletins",
        key: &["id"],
    },
    Table {
        name: "bulletin_receipts",
        key: &["bulletin_id", "station"],
    },
    Table {
        name: "push_events",
        key: &["seq"],
    },
];

/// Tables an engine keeps for itself, not copied: PostgreSQL's record of the schema version
/// (SQLite keeps it in `PRAGMA user_version`, which the destination's own migration sets).
const ENGINE_TABLES: &[&str] = &["loa_schema"];

/// Which pass a [`Progress`] report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Copy,
    Verify,
}

/// How far a pass is through a table (reported after each batch).
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub pass: Pass,
    pub table: &'a str,
    pub rows_done: u64,
    pub rows_total: u64,
}

/// What one table's move came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub copied: u64,
    pub verified: u64,
}

/// What [`migrate`] did.
#[derive(Debug, Clone)]
pub struct Moved {
    pub tables: Vec<TableCount>,
    pub copy_time: Duration,
    pub verify_time: Duration,
}

/// Errors of a move. Messages are Vietnamese (the command prints them as they are).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("lỗi cơ sở dữ liệu: {0}")]
    Db(#[from] DbError),
    #[error("bảng {table}: lỗi cơ sở dữ liệu: {source}")]
    Table { table: String, source: Box<DbError> },
    #[error(
        "bảng {table}: không ghi được các dòng có khoá từ {first} đến {last} vào đích: {source}"
    )]
    Write {
        table: String,
        first: String,
        last: String,
        source: Box<DbError>,
    },
    #[error(
        "cơ sở dữ liệu đích đã có dữ liệu (bảng {table} có dòng): chỉ chuyển vào một cơ sở dữ \
         liệu trống — tạo một cơ sở dữ liệu mới (CREATE DATABASE …) rồi chạy lại"
    )]
    NotEmpty { table: String },
    #[error(
        "bảng {table} có ở {side} nhưng không có trong danh sách bảng cần chuyển của bản loa \
         này: không chuyển, để khỏi bỏ sót dữ liệu"
    )]
    UnknownTable { table: String, side: &'static str },
    #[error("bảng {table} không có ở {side}")]
    MissingTable { table: String, side: &'static str },
    #[error("bảng {table}: cột {column} có ở {present} nhưng không có ở {absent}")]
    Column {
        table: String,
        column: String,
        present: &'static str,
        absent: &'static str,
    },
    #[error("bảng {table}: khoá chính {key} không có ở cột nào của bảng")]
    NoKey { table: String, key: String },
    #[error("bảng {table}: nguồn có {source_rows} dòng, đích có {dest_rows} dòng")]
    Count {
        table: String,
        source_rows: u64,
        dest_rows: u64,
    },
    #[error("bảng {table}, {key}: {problem}")]
    Row {
        table: String,
        key: String,
        problem: String,
    },
    #[error(
        "bảng records, trạm {station}, seq {seq} ({side}): mã băm SHA-256 của cột bytes là \
         {computed} nhưng cột hash ghi {stored} — bản ghi đã bị sửa hoặc hỏng; không chuyển"
    )]
    RecordHash {
        station: String,
        seq: String,
        side: &'static str,
        stored: String,
        computed: String,
    },
}

impl MigrateError {
    /// The error came before anything was written to the destination (its checks).
    pub fn wrote_nothing(&self) -> bool {
        matches!(
            self,
            MigrateError::NotEmpty { .. }
                | MigrateError::UnknownTable { .. }
                | MigrateError::MissingTable { .. }
                | MigrateError::Column { .. }
                | MigrateError::NoKey { .. }
        )
    }
}

const SOURCE: &str = "nguồn";
const DEST: &str = "đích";

/// A table as both sides hold it: its columns (by name, the destination's order) and where its
/// key columns are among them.
#[derive(Debug, Clone)]
pub struct Plan {
    pub table: Table,
    pub columns: Vec<String>,
    key_idx: Vec<usize>,
    /// The destination's identity columns (PostgreSQL `GENERATED … AS IDENTITY`).
    identity: Vec<String>,
}

/// `"name"`, quoted as an identifier for both engines.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn tables_of(conn: &Conn) -> Result<Vec<String>, DbError> {
    let sql = match conn.engine() {
        Engine::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 7) <> 'sqlite_'"
        }
        Engine::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
    };
    conn.query_map(sql, params![], |r| r.get::<String>(0))?
        .collect()
}

fn columns_of(conn: &Conn, table: &str) -> Result<Vec<String>, DbError> {
    let sql = match conn.engine() {
        Engine::Sqlite => "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
        Engine::Postgres => {
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position"
        }
    };
    conn.query_map(sql, params![table], |r| r.get::<String>(0))?
        .collect()
}

/// Identity columns take explicit values only with `OVERRIDING SYSTEM VALUE` (`GENERATED
/// ALWAYS`), and their sequences must be set past the copied values. SQLite has none: an
/// `INTEGER PRIMARY KEY` takes the value given, and AUTOINCREMENT's counter follows it.
fn identity_columns_of(conn: &Conn, table: &str) -> Result<Vec<String>, DbError> {
    match conn.engine() {
        Engine::Sqlite => Ok(Vec::new()),
        Engine::Postgres => conn
            .query_map(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ?1
                   AND is_identity = 'YES' ORDER BY ordinal_position",
                params![table],
                |r| r.get::<String>(0),
            )?
            .collect(),
    }
}

/// Check that both sides hold exactly the tables of [`TABLES`] with the same columns; the plan
/// of each table.
pub fn plan(source: &Conn, dest: &Conn) -> Result<Vec<Plan>, MigrateError> {
    let known = |t: &str| TABLES.iter().any(|k| k.name == t) || ENGINE_TABLES.contains(&t);
    for (conn, side) in [(source, SOURCE), (dest, DEST)] {
        let mut tables = tables_of(conn)?;
        tables.sort();
        if let Some(t) = tables.iter().find(|t| !known(t)) {
            return Err(MigrateError::UnknownTable {
                table: t.clone(),
                side,
            });
        }
    }
    let mut plans = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let on_source = columns_of(source, table.name)?;
        let on_dest = columns_of(dest, table.name)?;
        for (cols, side) in [(&on_source, SOURCE), (&on_dest, DEST)] {
            if cols.is_empty() {
                return Err(MigrateError::MissingTable {
                    table: table.name.into(),
                    side,
                });
            }
        }
        for (from, to, present, absent) in [
            (&on_source, &on_dest, SOURCE, DEST),
            (&on_dest, &on_source, DEST, SOURCE),
        ] {
            if let Some(c) = from.iter().find(|c| !to.contains(c)) {
                return Err(MigrateError::Column {
                    table: table.name.into(),
                    column: c.clone(),
                    present,
                    absent,
                });
            }
        }
        let key_idx = table
            .key
            .iter()
            .map(|k| {
                on_dest
                    .iter()
                    .position(|c| c == k)
                    .ok_or_else(|| MigrateError::NoKey {
                        table: table.name.into(),
                        key: (*k).into(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        plans.push(Plan {
            table: *table,
            identity: identity_columns_of(dest, table.name)?,
            columns: on_dest,
            key_idx,
        });
    }
    Ok(plans)
}

/// Refuse a destination holding any row in any table of the schema, naming the first such table.
pub fn ensure_empty(dest: &Conn) -> Result<(), MigrateError> {
    for table in TABLES {
        let any = dest
            .query_row(
                &format!("SELECT 1 FROM {} LIMIT 1", ident(table.name)),
                params![],
                |r| r.get::<i64>(0),
            )
            .optional()
            .map_err(|e| on_table(table.name, e))?;
        if any.is_some() {
            return Err(MigrateError::NotEmpty {
                table: table.name.into(),
            });
        }
    }
    Ok(())
}

fn on_table(table: &str, source: DbError) -> MigrateError {
    MigrateError::Table {
        table: table.into(),
        source: Box::new(source),
    }
}

fn count(conn: &Conn, table: &str) -> Result<u64, MigrateError> {
    conn.query_row(
        &format!("SELECT COUNT(*) FROM {}", ident(table)),
        params![],
        |r| r.get::<u64>(0),
    )
    .map_err(|e| on_table(table, e))
}

impl Plan {
    fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_list(&self) -> String {
        self.table
            .key
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The page of up to [`BATCH_ROWS`] rows after key `after` (the first page when `None`), in
    /// key order.
    fn page(&self, conn: &Conn, after: Option<&[Value]>) -> Result<Vec<Vec<Value>>, MigrateError> {
        let keys = self.key_list();
        let filter = match after {
            None => String::new(),
            Some(_) if self.table.key.len() == 1 => format!(" WHERE {keys} > ?1"),
            Some(k) => {
                let marks: Vec<String> = (1..=k.len()).map(|i| format!("?{i}")).collect();
                format!(" WHERE ({keys}) > ({})", marks.join(", "))
            }
        };
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {keys} LIMIT {BATCH_ROWS}",
            self.select_list(),
            ident(self.table.name)
        );
        let params: Vec<&dyn ToValue> = after
            .unwrap_or_default()
            .iter()
            .map(|v| v as &dyn ToValue)
            .collect();
        self.rows(conn, &sql, &params)
    }

    fn rows(
        &self,
        conn: &Conn,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<Vec<Vec<Value>>, MigrateError> {
        let n = self.columns.len();
        conn.query_map(sql, params, |r| (0..n).map(|i| r.get::<Value>(i)).collect())
            .and_then(|rows| rows.collect())
            .map_err(|e| on_table(self.table.name, e))
    }

    fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.key_idx.iter().map(|&i| row[i].clone()).collect()
    }

    /// `station phuong-a, seq 3`: a row's key for messages.
    fn key_text(&self, row: &[Value]) -> String {
        self.table
            .key
            .iter()
            .zip(&self.key_idx)
            .map(|(name, &i)| format!("{name} {}", shown(&row[i])))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Rows per INSERT statement: a batch split evenly into statements under
    /// [`MAX_PARAMS_PER_STATEMENT`].
    fn rows_per_statement(&self) -> usize {
        let most = (MAX_PARAMS_PER_STATEMENT / self.columns.len().max(1)).max(1);
        let statements = BATCH_ROWS.div_ceil(most);
        BATCH_ROWS.div_ceil(statements)
    }

    fn insert_sql(&self, rows: usize) -> String {
        let n = self.columns.len();
        let overriding = if self.identity.is_empty() {
            ""
        } else {
            " OVERRIDING SYSTEM VALUE"
        };
        format!(
            "INSERT INTO {} ({}){overriding} VALUES {}",
            ident(self.table.name),
            self.select_list(),
            super::db::values_placeholders(rows, n)
        )
    }
}

/// A value for messages, cut short.
fn shown(v: &Value) -> String {
    let text = match v {
        Value::Null => "NULL".to_string(),
        Value::Int(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => format!("{} byte", b.len()),
    };
    if text.chars().count() > 80 {
        let head: String = text.chars().take(80).collect();
        format!("{head}…")
    } else {
        text
    }
}

/// The record checks of a `records` row: its bytes hash to its `hash` column.
struct RecordColumns {
    station: usize,
    seq: usize,
    hash: usize,
    bytes: usize,
}

impl RecordColumns {
    fn of(plan: &Plan) -> Option<RecordColumns> {
        if plan.table.name != "records" {
            return None;
        }
        Some(RecordColumns {
            station: plan.column("station")?,
            seq: plan.column("seq")?,
            hash: plan.column("hash")?,
            bytes: plan.column("bytes")?,
        })
    }

    fn check(&self, row: &[Value], side: &'static str) -> Result<(), MigrateError> {
        let bytes: &[u8] = match &row[self.bytes] {
            Value::Text(s) => s.as_bytes(),
            Value::Blob(b) => b,
            _ => &[],
        };
        let computed = crate::wire::sha256_hex(bytes);
        let stored = match &row[self.hash] {
            Value::Text(s) => s.as_str(),
            _ => "",
        };
        if computed == stored {
            return Ok(());
        }
        Err(MigrateError::RecordHash {
            station: shown(&row[self.station]),
            seq: shown(&row[self.seq]),
            side,
            stored: shown(&row[self.hash]),
            computed,
        })
    }
}

/// Copy every table of `plans` from `source` into `dest` (which [`ensure_empty`] must have
/// passed); the rows copied per table.
pub fn copy(
    source: &Conn,
    dest: &Conn,
    plans: &[Plan],
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<Vec<u64>, MigrateError> {
    plans
        .iter()
        .map(|p| copy_table(source, dest, p, progress))
        .collect()
}

fn copy_table(
    source: &Conn,
    dest: &Conn,
    plan: &Plan,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<u64, MigrateError> {
    let name = plan.table.name;
    let total = count(source, name)?;
    let records = RecordColumns::of(plan);
    let per_statement = plan.rows_per_statement();
    let mut after: Option<Vec<Value>> = None;
    let mut done = 0u64;
    loop {
        let rows = plan.page(source, after.as_deref())?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            break;
        };
        if let Some(rc) = &records {
            for row in &rows {
                rc.check(row, SOURCE)?;
            }
        }
        let write_error = |source: DbError| MigrateError::Write {
            table: name.into(),
            first: plan.key_text(first),
            last: plan.key_text(last),
            source: Box::new(source),
        };
        let tx = dest.transaction().map_err(write_error)?;
        for chunk in rows.chunks(per_statement) {
            let params: Vec<&dyn ToValue> =
                chunk.iter().flatten().map(|v| v as &dyn ToValue).collect();
            tx.execute(&plan.insert_sql(chunk.len()), &params)
                .map_err(write_error)?;
        }
        tx.commit().map_err(write_error)?;
        done += rows.len() as u64;
        progress(&Progress {
            pass: Pass::Copy,
            table: name,
            rows_done: done,
            rows_total: total,
        });
        if rows.len() < BATCH_ROWS {
            break;
        }
        after = Some(plan.key_of(last));
    }
    keep_counters(source, dest, plan)?;
    Ok(done)
}

/// Set the destination's counters so a new row never takes a number already given: each
/// PostgreSQL identity sequence past the copied values (and past SQLite's AUTOINCREMENT counter,
/// which may be ahead of the rows), or, into SQLite, the AUTOINCREMENT counter itself.
fn keep_counters(source: &Conn, dest: &Conn, plan: &Plan) -> Result<(), MigrateError> {
    let table = plan.table.name;
    let counter = autoincrement_counter(source, table).map_err(|e| on_table(table, e))?;
    match dest.engine() {
        Engine::Postgres => {
            for column in &plan.identity {
                set_identity_past(dest, table, column, counter)?;
            }
        }
        Engine::Sqlite => {
            let Some(counter) = counter else {
                return Ok(());
            };
            let theirs = autoincrement_counter(dest, table).map_err(|e| on_table(table, e))?;
            let set = match theirs {
                Some(n) if n >= counter => return Ok(()),
                Some(_) => "UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1",
                None => "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
            };
            dest.execute(set, params![table, counter])
                .map_err(|e| on_table(table, e))?;
        }
    }
    Ok(())
}

/// Set the sequence of identity `column` so its next value is past every copied one and past
/// `counter`.
fn set_identity_past(
    dest: &Conn,
    table: &str,
    column: &str,
    counter: Option<i64>,
) -> Result<(), MigrateError> {
    let max: Option<i64> = dest
        .query_row(
            &format!("SELECT MAX({}) FROM {}", ident(column), ident(table)),
            params![],
            |r| r.get(0),
        )
        .map_err(|e| on_table(table, e))?;
    // A sequence starts at 1: nothing to set when every value is below (SQLite keeps a counter
    // of 0 for an AUTOINCREMENT table that never had a row).
    let Some(past) = max.max(counter).filter(|&n| n >= 1) else {
        return Ok(());
    };
    dest.query_row(
        "SELECT setval(pg_get_serial_sequence(?1, ?2), ?3)",
        params![ident(table), column, past],
        |r| r.get::<i64>(0),
    )
    .map_err(|e| on_table(table, e))?;
    Ok(())
}

/// SQLite's AUTOINCREMENT counter of `table` (`sqlite_sequence`), when it keeps one.
fn autoincrement_counter(source: &Conn, table: &str) -> Result<Option<i64>, DbError> {
    if source.engine() != Engine::Sqlite {
        return Ok(None);
    }
    let has_counters = source
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
            params![],
            |r| r.get::<i64>(0),
        )
        .optional()?
        .is_some();
    if !has_counters {
        return Ok(None);
    }
    source
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = ?1",
            params![table],
            |r| r.get::<i64>(0),
        )
        .optional()
}

/// A key column's value, to look rows up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyPart {
    Int(i64),
    Text(String),
    Other(String),
}

impl KeyPart {
    fn of(v: &Value) -> KeyPart {
        match v {
            Value::Int(i) => KeyPart::Int(*i),
            Value::Text(s) => KeyPart::Text(s.clone()),
            other => KeyPart::Other(format!("{other:?}")),
        }
    }
}

/// Check that `dest` holds what `source` holds in every table of `plans` (see the module's
/// invariant); the rows verified per table.
pub fn verify(
    source: &Conn,
    dest: &Conn,
    plans: &[Plan],
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<Vec<u64>, MigrateError> {
    plans
        .iter()
        .map(|p| verify_table(source, dest, p, progress))
        .collect()
}

fn verify_table(
    source: &Conn,
    dest: &Conn,
    plan: &Plan,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<u64, MigrateError> {
    let name = plan.table.name;
    let (source_rows, dest_rows) = (count(source, name)?, count(dest, name)?);
    if source_rows != dest_rows {
        return Err(MigrateError::Count {
            table: name.into(),
            source_rows,
            dest_rows,
        });
    }
    let records = RecordColumns::of(plan);
    let mut after: Option<Vec<Value>> = None;
    let mut done = 0u64;
    loop {
        let rows = plan.page(source, after.as_deref())?;
        let Some(last) = rows.last() else {
            break;
        };
        // Runs of rows sharing every key column but the last: each is looked up at once.
        let prefix = &plan.key_idx[..plan.key_idx.len() - 1];
        let mut start = 0;
        while start < rows.len() {
            let same = |r: &Vec<Value>| prefix.iter().all(|&i| r[i] == rows[start][i]);
            let len = rows[start..].iter().take_while(|r| same(r)).count();
            verify_run(dest, plan, records.as_ref(), &rows[start..start + len])?;
            start += len;
        }
        done += rows.len() as u64;
        progress(&Progress {
            pass: Pass::Verify,
            table: name,
            rows_done: done,
            rows_total: source_rows,
        });
        if rows.len() < BATCH_ROWS {
            break;
        }
        after = Some(plan.key_of(last));
    }
    Ok(done)
}

/// Check a run of source rows (in key order, sharing every key column but the last) against
/// the destination's rows under the same keys: a range of the last column when it is an
/// integer (then a destination row in the range that the source lacks is found too), else a
/// list of its values. Text keys are never compared by order: the engines' collations differ.
fn verify_run(
    dest: &Conn,
    plan: &Plan,
    records: Option<&RecordColumns>,
    run: &[Vec<Value>],
) -> Result<(), MigrateError> {
    let (Some(first), Some(last_row)) = (run.first(), run.last()) else {
        return Ok(());
    };
    let (prefix, last) = plan.key_idx.split_at(plan.key_idx.len() - 1);
    let last = last[0];
    let last_name = ident(plan.table.key[plan.table.key.len() - 1]);
    let mut filter: Vec<String> = prefix
        .iter()
        .enumerate()
        .map(|(n, &i)| format!("{} = ?{}", ident(&plan.columns[i]), n + 1))
        .collect();
    let prefix_values: Vec<&Value> = prefix.iter().map(|&i| &first[i]).collect();
    let select = format!(
        "SELECT {} FROM {} WHERE ",
        plan.select_list(),
        ident(plan.table.name)
    );
    let mut found: HashMap<KeyPart, Vec<Value>> = HashMap::new();
    let mut take = |rows: Vec<Vec<Value>>| {
        for r in rows {
            found.insert(KeyPart::of(&r[last]), r);
        }
    };
    let ranged = run.iter().all(|r| matches!(r[last], Value::Int(_)));
    if ranged {
        let n = prefix.len();
        filter.push(format!("{last_name} BETWEEN ?{} AND ?{}", n + 1, n + 2));
        let mut params: Vec<&dyn ToValue> =
            prefix_values.iter().map(|v| *v as &dyn ToValue).collect();
        params.push(&first[last]);
        params.push(&last_row[last]);
        take(plan.rows(dest, &format!("{select}{}", filter.join(" AND ")), &params)?);
    } else {
        for chunk in run.chunks(MAX_LOOKUP_KEYS) {
            let n = prefix.len();
            let marks: Vec<String> = (0..chunk.len())
                .map(|j| format!("?{}", n + 1 + j))
                .collect();
            let mut f = filter.clone();
            f.push(format!("{last_name} IN ({})", marks.join(", ")));
            let mut params: Vec<&dyn ToValue> =
                prefix_values.iter().map(|v| *v as &dyn ToValue).collect();
            params.extend(chunk.iter().map(|r| &r[last] as &dyn ToValue));
            take(plan.rows(dest, &format!("{select}{}", f.join(" AND ")), &params)?);
        }
    }
    for row in run {
        let key = plan.key_text(row);
        let Some(theirs) = found.remove(&KeyPart::of(&row[last])) else {
            return Err(MigrateError::Row {
                table: plan.table.name.into(),
                key,
                problem: "dòng này có ở nguồn nhưng không có ở đích".into(),
            });
        };
        for (i, column) in plan.columns.iter().enumerate() {
            if row[i] != theirs[i] {
                return Err(MigrateError::Row {
                    table: plan.table.name.into(),
                    key,
                    problem: format!(
                        "cột {column} khác nhau: nguồn «{}», đích «{}»",
                        shown(&row[i]),
                        shown(&theirs[i])
                    ),
                });
            }
        }
        if let Some(rc) = records {
            rc.check(&theirs, DEST)?;
        }
    }
    if let Some(extra) = found.into_values().next() {
        return Err(MigrateError::Row {
            table: plan.table.name.into(),
            key: plan.key_text(&extra),
            problem: "dòng này có ở đích nhưng không có ở nguồn".into(),
        });
    }
    Ok(())
}

/// Move everything from `source` into the empty `dest` and verify it: [`plan`],
/// [`ensure_empty`], [`copy`], [`verify`], the source read in one transaction throughout.
pub fn migrate(
    source: &Conn,
    dest: &Conn,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<Moved, MigrateError> {
    let snapshot = source.transaction()?;
    let plans = plan(&snapshot, dest)?;
    ensure_empty(dest)?;
    let t = Instant::now();
    let copied = copy(&snapshot, dest, &plans, progress)?;
    let copy_time = t.elapsed();
    let t = Instant::now();
    let verified = verify(&snapshot, dest, &plans, progress)?;
    let verify_time = t.elapsed();
    // Read only: nothing to commit.
    snapshot.rollback()?;
    Ok(Moved {
        tables: plans
            .iter()
            .zip(copied.into_iter().zip(verified))
            .map(|(p, (copied, verified))| TableCount {
                table: p.table.name,
                copied,
                verified,
            })
            .collect(),
        copy_time,
        verify_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::db::Location;
    use crate::collector::store::Store;

    fn store(dir: &std::path::Path, name: &str) -> Conn {
        Store::open(&dir.join(name)).unwrap().into_connection()
    }

    /// A source with rows in the tables that have several kinds of key: records over several
    /// stations and pages, users and tokens (identity ids), user_stations (composite key),
    /// push events (AUTOINCREMENT), heartbeats (text key).
    fn filled(dir: &std::path::Path) -> Conn {
        let c = store(dir, "source.db");
        for (s, station) in ["phuong-b", "phuong-a", "Phuong-c"].iter().enumerate() {
            for seq in 1..=(10 + s as i64 * 3) {
                let bytes = format!("{{\"station\":\"{station}\",\"seq\":{seq}}}");
                c.execute(
                    "INSERT INTO records (station, seq, hash, prev_hash, signature, bytes,
                        category, source, outcome, scheduled_unix, aired_secs, received_unix)
                     VALUES (?1, ?2, ?3, 'prev', 'sig', ?4, 'cchc', 'file', 'aired', ?5, ?6, 0)",
                    params![
                        station,
                        seq,
                        crate::wire::sha256_hex(bytes.as_bytes()),
                        bytes,
                        1_550_000_000 + seq,
                        600.5,
                    ],
                )
                .unwrap();
            }
            c.execute(
                "INSERT INTO heartbeats (station, received_unix_ms, bytes, signature)
                 VALUES (?1, 1, '{}', 'sig')",
                params![station],
            )
            .unwrap();
        }
        for id in [3i64, 9, 12] {
            c.execute(
                "INSERT INTO users (id, name, role, password_hash, created_unix)
                 VALUES (?1, ?2, 'operator', 'x', 0)",
                params![id, format!("u{id}")],
            )
            .unwrap();
            c.execute(
                "INSERT INTO api_tokens (id, token_sha256, user_id, label, created_unix)
                 VALUES (?1, ?2, ?3, 'thử', 0)",
                params![id * 2, format!("t{id}"), id],
            )
            .unwrap();
            for st in ["phuong-a", "phuong-b"] {
                c.execute(
                    "INSERT INTO user_stations (user_id, station) VALUES (?1, ?2)",
                    params![id, st],
                )
                .unwrap();
            }
        }
        c.execute(
            "INSERT INTO bulletins (id, envelope, title, priority, targets, audio_sha256,
                not_before_unix_ms, not_after_unix_ms, repeats, interval_secs, created_by,
                created_unix_ms)
             VALUES ('b1', '{}', 'Bão', 'emergency', '[]', 'x', 0, 1, 1, 0, 'admin', 0)",
            params![],
        )
        .unwrap();
        for _ in 0..3 {
            c.execute(
                "INSERT INTO push_events (kind, bulletin_id, created_unix_ms)
                 VALUES ('bulletin', 'b1', 0)",
                params![],
            )
            .unwrap();
        }
        // The last event is gone, its number not: AUTOINCREMENT's counter stays at 3.
        c.execute("DELETE FROM push_events WHERE seq = 3", params![])
            .unwrap();
        // A row in every other table, with reals, NULLs and text keys.
        c.execute_batch(
            "INSERT INTO audio_facts VALUES ('f1', 48000, 2, 480000, 10.0, NULL, -23.5, 1);
             INSERT INTO audio_facts VALUES ('f2', NULL, NULL, NULL, NULL, 'hỏng', NULL, 2);
             INSERT INTO audio_files VALUES ('cchc/2019-03.mp3', 1000, 123456789, 'f1');
             INSERT INTO sessions VALUES ('s1', 3, 'csrf', 1, 2, '127.0.0.1');
             INSERT INTO audit_log (at_unix_ms, actor, address, action, target, before, after)
                VALUES (1, 'admin', '127.0.0.1', 'user.add', 'u3', NULL, 'vai trò: vận hành');
             INSERT INTO schedule_versions VALUES ('phuong-a', 1, 't', 'h', 'm', 'mh', 'admin',
                1, 'đầu tiên', 1, NULL, NULL);
             INSERT INTO schedule_versions VALUES ('phuong-a', 2, 't2', 'h2', 'm2', 'mh2',
                'admin', 2, '', 2, 1, 4);
             INSERT INTO content VALUES ('f1', 1000, 'Tin sáng', 'cchc', 10.25, 48000, 2,
                -23.5, -1.0, 'admin', 1);
             INSERT INTO library_paths VALUES ('cchc/2019-03.mp3', 'f1', 'admin', 1, 'episode',
                'cchc', '2019-03');
             INSERT INTO managed_stations VALUES ('phuong-a', 'Phường A', '20001', 'ward',
                'admin', 1, NULL);
             INSERT INTO enrolment_codes VALUES ('e1', 'phuong-a', 'admin', 1, 2, NULL);
             INSERT INTO bulletin_receipts VALUES ('b1', 'phuong-a', 'delivered', NULL, 1, 2);
             INSERT INTO bulletin_receipts VALUES ('b1', 'phuong-b', 'refused',
                'bulletin.expired', 1, 2);",
        )
        .unwrap();
        c
    }

    /// The destination: a SQLite file, or under `LOA_TEST_DB=postgres` a fresh PostgreSQL
    /// database (then these tests move SQLite into PostgreSQL, as `loa store migrate` does).
    fn destination(dir: &std::path::Path) -> Conn {
        let at = crate::collector::db::testing::test_db(dir, "dest.db");
        Store::open(&at).unwrap().into_connection()
    }

    fn count_of(c: &Conn, t: &str) -> u64 {
        count(c, t).unwrap()
    }

    #[test]
    fn the_table_list_is_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let c = store(dir.path(), "c.db");
        let mut found = tables_of(&c).unwrap();
        found.sort();
        let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_string()).collect();
        listed.sort();
        assert_eq!(found, listed);
    }

    #[test]
    fn everything_is_copied_and_verified_in_pages_and_a_second_move_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        let dest = destination(dir.path());
        let mut reports = 0;
        let moved = migrate(&src, &dest, &mut |_| reports += 1).unwrap();
        let records = &moved.tables[0];
        assert_eq!(records.table, "records");
        assert_eq!((records.copied, records.verified), (10 + 13 + 16, 39));
        assert!(reports > 2 * 39 / BATCH_ROWS, "{reports} progress reports");
        for t in TABLES {
            assert!(count_of(&src, t.name) > 0, "{} has a row to move", t.name);
            assert_eq!(
                count_of(&src, t.name),
                count_of(&dest, t.name),
                "{}",
                t.name
            );
            let row = moved.tables.iter().find(|c| c.table == t.name).unwrap();
            assert_eq!(row.copied, count_of(&src, t.name));
            assert_eq!(row.verified, row.copied);
        }
        // Identity values kept; the next event takes a number never handed out.
        let seqs: Vec<i64> = dest
            .query_map("SELECT seq FROM push_events ORDER BY seq", params![], |r| {
                r.get(0)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(seqs, vec![1, 2]);
        let next: i64 = dest
            .query_row(
                "INSERT INTO push_events (kind, bulletin_id, created_unix_ms)
                 VALUES ('cancel', 'b1', 0) RETURNING seq",
                params![],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(next, 4);
        let e = migrate(&src, &dest, &mut |_| {}).unwrap_err();
        assert!(e.wrote_nothing());
        assert!(
            matches!(&e, MigrateError::NotEmpty { table } if table == "records"),
            "{e}"
        );
    }

    #[test]
    fn a_record_whose_bytes_do_not_hash_to_its_hash_stops_the_copy_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        src.execute(
            "UPDATE records SET hash = ?1 WHERE station = 'phuong-b' AND seq = 9",
            params!["0".repeat(64)],
        )
        .unwrap();
        let dest = destination(dir.path());
        let e = migrate(&src, &dest, &mut |_| {}).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("trạm phuong-b, seq 9"), "{text}");
        assert!(text.contains("nguồn"), "{text}");
    }

    #[test]
    fn verify_finds_a_changed_value_a_missing_key_and_a_wrong_count() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        let dest = destination(dir.path());
        migrate(&src, &dest, &mut |_| {}).unwrap();
        let plans = plan(&src, &dest).unwrap();
        let check = || {
            verify(&src, &dest, &plans, &mut |_| {})
                .unwrap_err()
                .to_string()
        };

        dest.execute(
            "UPDATE records SET signature = 'other' WHERE station = 'phuong-a' AND seq = 11",
            params![],
        )
        .unwrap();
        let e = check();
        assert!(e.contains("station phuong-a, seq 11"), "{e}");
        assert!(e.contains("cột signature khác nhau"), "{e}");
        dest.execute(
            "UPDATE records SET signature = 'sig' WHERE station = 'phuong-a' AND seq = 11",
            params![],
        )
        .unwrap();
        verify(&src, &dest, &plans, &mut |_| {}).unwrap();

        // Same count, one key swapped for another: the missing one is named.
        dest.execute(
            "UPDATE records SET seq = 99 WHERE station = 'phuong-b' AND seq = 5",
            params![],
        )
        .unwrap();
        let e = check();
        assert!(e.contains("station phuong-b, seq 5"), "{e}");
        assert!(e.contains("không có ở đích"), "{e}");
        dest.execute(
            "UPDATE records SET seq = 5 WHERE station = 'phuong-b' AND seq = 99",
            params![],
        )
        .unwrap();

        // A text key: a heartbeat's station renamed.
        dest.execute(
            "UPDATE heartbeats SET station = 'phuong-z' WHERE station = 'phuong-a'",
            params![],
        )
        .unwrap();
        let e = check();
        assert!(e.contains("bảng heartbeats, station phuong-a"), "{e}");
        dest.execute(
            "UPDATE heartbeats SET station = 'phuong-a' WHERE station = 'phuong-z'",
            params![],
        )
        .unwrap();

        dest.execute("DELETE FROM user_stations WHERE user_id = 9", params![])
            .unwrap();
        let e = check();
        assert!(
            e.contains("bảng user_stations: nguồn có 6 dòng, đích có 4"),
            "{e}"
        );
    }

    #[test]
    fn a_destination_with_other_tables_or_columns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        let dest = destination(dir.path());
        dest.execute_batch("ALTER TABLE content ADD COLUMN colour TEXT")
            .unwrap();
        let e = migrate(&src, &dest, &mut |_| {}).unwrap_err();
        assert!(e.wrote_nothing());
        assert!(
            e.to_string()
                .contains("bảng content: cột colour có ở đích nhưng không có ở nguồn"),
            "{e}"
        );
        let other = Conn::open(&Location::Sqlite(dir.path().join("other.db"))).unwrap();
        let e = migrate(&src, &other, &mut |_| {}).unwrap_err();
        assert!(
            e.to_string().contains("bảng records không có ở đích"),
            "{e}"
        );
        src.execute_batch("CREATE TABLE notes (x TEXT)").unwrap();
        let e = migrate(&src, &dest, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("bảng notes có ở nguồn"), "{e}");
    }

    #[test]
    fn statements_stay_under_the_parameter_limit_and_split_a_batch_evenly() {
        let p = |cols: usize| Plan {
            table: TABLES[0],
            columns: (0..cols).map(|i| format!("c{i}")).collect(),
            key_idx: vec![0],
            identity: vec![],
        };
        for cols in [1, 2, 8, 26, 40, 400] {
            let per = p(cols).rows_per_statement();
            assert!(per * cols <= MAX_PARAMS_PER_STATEMENT.max(cols), "{cols}");
            assert!(per >= 1);
        }
        assert_eq!(
            p(2).insert_sql(2),
            "INSERT INTO \"records\" (\"c0\", \"c1\") VALUES (?1, ?2), (?3, ?4)"
        );
    }
}
