//! The collector's SQLite store (WAL): signed airing records exactly as received, the latest
//! heartbeat per station, and versioned migrations (`PRAGMA user_version`).
//!
//! **Invariant:** a record row holds the very bytes, hash and signature the station sent, keyed by
//! (station, seq); a row is only ever inserted (never updated or deleted) and only when it is
//! signed by the station's key and its hash links to the stored neighbours (seq-1 and seq+1) that
//! exist. A batch is stored in one transaction: all of it, or none. Beside the bytes, a row keeps
//! the fields reconciliation reads ([`crate::reconcile::AiredAiring`]) in columns, copied from the
//! very record the bytes encode (at insert, or by migration 3 for older rows); a row whose
//! columns are not filled (`scheduled_ns` NULL) is read from its bytes instead, so both ways give
//! the same airing. Column `reason_code` holds the record's reason code
//! ([`AiringRecord::code`]: its own for wire version 2, its text classified for version 1; filled
//! at insert, or by migration 5 for older rows), NULL when it aired without a reason: reports
//! read it and never classify text.

use crate::collector::db::{
    Conn, DbError, Engine, Location, OptionalExtension, Row, ToValue, Value, ValueRef, params,
};
use chrono::{DateTime, FixedOffset, Utc};
use std::collections::HashMap;
use std::path::Path;

use crate::reason::ReasonCode;
use crate::reconcile::AiredAiring;
use crate::report::{CorruptRecord, RecordSource, ReportError, SourceError};
use crate::wire::{AiringRecord, BatchAck, GENESIS_HASH, Heartbeat, Outcome, Rejection, Source};

/// A record that passed every check that needs only itself, the key and its batch: what
/// `ingest::check_batch` produces and [`Store::store_batch`] takes (defined here so that the
/// store depends on no checking code).
#[derive(Debug, Clone)]
pub struct CheckedRecord {
    pub seq: u64,
    pub hash: String,
    pub signature: String,
    /// The canonical bytes, verbatim.
    pub bytes: String,
    pub record: AiringRecord,
}

/// An audio path as last hashed: its size and modification time then, and its content's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudioFile {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub sha256: String,
}

/// What probing one content (by SHA-256) found: its stream facts, or why it does not decode.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAudioFacts {
    pub sha256: String,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
    pub frames: Option<u64>,
    pub duration_secs: Option<f64>,
    /// Why it does not decode (then the stream facts are `None`).
    pub undecodable: Option<String>,
    /// Integrated loudness, when something measured it (nothing does yet).
    pub loudness_lufs: Option<f64>,
}

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbError),
    #[error(
        "database {path} has schema version {found}, newer than this build knows ({known}); upgrade loa"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The transaction this batch shared with others ([`Store::store_batches`]) failed with
    /// this error; nothing of it was stored.
    #[error("{0}; nothing of this batch was stored")]
    Shared(String),
}

impl StoreError {
    /// The database answered the statement and refused it for its data (a constraint, a value
    /// out of range), its session still usable: the same work without the offending part may
    /// succeed. A lost connection, a timeout or a busy database is not a refusal.
    pub fn is_refusal(&self) -> bool {
        match self {
            StoreError::Db(e) => e.is_refusal(),
            StoreError::TooNew { .. } | StoreError::Corrupt(_) | StoreError::Shared(_) => false,
        }
    }
}

/// The schema, one migration per version; `user_version` is the count applied.
const MIGRATIONS: &[&str] = &[
    // 1: records and heartbeats.
    "CREATE TABLE records (
        station TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        signature TEXT NOT NULL,
        bytes TEXT NOT NULL,
        occurrence TEXT,
        category TEXT NOT NULL,
        source TEXT NOT NULL,
        outcome TEXT NOT NULL,
        scheduled_unix INTEGER NOT NULL,
        aired_secs REAL NOT NULL,
        received_unix INTEGER NOT NULL,
        PRIMARY KEY (station, seq)
    ) WITHOUT ROWID;
    CREATE INDEX records_by_time ON records (scheduled_unix, station);
    CREATE TABLE heartbeats (
        station TEXT PRIMARY KEY,
        received_unix_ms INTEGER NOT NULL,
        bytes TEXT NOT NULL,
        signature TEXT NOT NULL
    );",
    // 2: a rowid table instead of WITHOUT ROWID: rows of ~1 KB clustered on (station, seq) made
    // every insert land in the middle of a tree of big rows (SQLite advises WITHOUT ROWID only
    // for rows under ~1/20 of a page); rows are now appended, (station, seq) a unique index. Reports read a
    // station's records by scheduled time, so that is indexed too (the old (time, station) index
    // served no query).
    "CREATE TABLE records_v2 (
        station TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        signature TEXT NOT NULL,
        bytes TEXT NOT NULL,
        occurrence TEXT,
        category TEXT NOT NULL,
        source TEXT NOT NULL,
        outcome TEXT NOT NULL,
        scheduled_unix INTEGER NOT NULL,
        aired_secs REAL NOT NULL,
        received_unix INTEGER NOT NULL
    );
    INSERT INTO records_v2 SELECT station, seq, hash, prev_hash, signature, bytes, occurrence,
        category, source, outcome, scheduled_unix, aired_secs, received_unix
        FROM records ORDER BY received_unix, station, seq;
    DROP TABLE records;
    ALTER TABLE records_v2 RENAME TO records;
    CREATE UNIQUE INDEX records_by_station_seq ON records (station, seq);
    CREATE INDEX records_by_station_time ON records (station, scheduled_unix);",
    // 3: the fields reconciliation and the CSV/XLSX exports read, in columns, so a report does
    // not parse every signed record (a month of 10,000 stations is ~400 MB of JSON). Instants
    // are unix nanoseconds plus the station's UTC offset in seconds (exact round trip of
    // `DateTime<FixedOffset>`). `scheduled_ns` NULL = not filled: read the bytes. Rows stored
    // before this version are filled by `backfill_v3` in the same transaction. (An index on
    // (station, time) covering these columns made a report's read contiguous but cost ingest
    // ~30-40% in `bench_collector`: not taken.)
    "ALTER TABLE records ADD COLUMN slot TEXT;
    ALTER TABLE records ADD COLUMN program TEXT;
    ALTER TABLE records ADD COLUMN reason TEXT;
    ALTER TABLE records ADD COLUMN planned_secs REAL;
    ALTER TABLE records ADD COLUMN start_offset_ms INTEGER;
    ALTER TABLE records ADD COLUMN scheduled_ns INTEGER;
    ALTER TABLE records ADD COLUMN scheduled_offset_secs INTEGER;
    ALTER TABLE records ADD COLUMN actual_ns INTEGER;
    ALTER TABLE records ADD COLUMN actual_offset_secs INTEGER;",
    // 4: audio facts, computed once per content (`collector::facts`): what decoding a file found,
    // keyed by its SHA-256, and which content each audio path held when last hashed (its size and
    // modification time), so a file is hashed again only when it changed.
    "CREATE TABLE audio_facts (
        sha256 TEXT PRIMARY KEY,
        sample_rate INTEGER,
        channels INTEGER,
        frames INTEGER,
        duration_secs REAL,
        undecodable TEXT,
        loudness_lufs REAL,
        probed_unix INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE audio_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 5: the reason as a code (`crate::reason`), what pages and exports show in Vietnamese: wire
    // version 2 records carry it; rows stored before this version (all wire version 1) are
    // filled by `backfill_v5` in the same transaction, from their free text (`wire::classify`).
    "ALTER TABLE records ADD COLUMN reason_code TEXT;",
    // 6: office accounts (`collector::accounts`): users (Argon2id hashes), their stations,
    // server-side sessions and personal API tokens (both stored as SHA-256 of the secret, never
    // the secret), and the audit log (`collector::audit`), append-only: triggers refuse UPDATE and
    // DELETE on it. (IF NOT EXISTS: a database whose version was set back by hand, as a test
    // does to replay an older migration, may hold these already.)
    "CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'auditor')),
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_unix INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS user_stations (
        user_id INTEGER NOT NULL REFERENCES users (id),
        station TEXT NOT NULL,
        PRIMARY KEY (user_id, station)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS sessions (
        id_sha256 TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id),
        csrf TEXT NOT NULL,
        created_unix INTEGER NOT NULL,
        last_seen_unix INTEGER NOT NULL,
        address TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS api_tokens (
        id INTEGER PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        user_id INTEGER NOT NULL REFERENCES users (id),
        label TEXT NOT NULL,
        created_unix INTEGER NOT NULL,
        last_used_unix INTEGER,
        revoked_unix INTEGER
    );
    CREATE TABLE IF NOT EXISTS audit_log (
        id INTEGER PRIMARY KEY,
        at_unix_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        address TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before TEXT,
        after TEXT
    );
    CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
    // Schedule versions held by the centre (`collector::versions`): per document (a station id,
    // or `:programs` for the shared programs document), numbers strictly increasing from 1;
    // append-only (a rollback is a new version). `text` is what the editor saved; `merged_text`
    // is what the station receives (its text with the shared programs it uses).
    "CREATE TABLE IF NOT EXISTS schedule_versions (
        doc TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        text TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        merged_text TEXT NOT NULL,
        merged_sha256 TEXT NOT NULL,
        author TEXT NOT NULL,
        created_unix_ms INTEGER NOT NULL,
        note TEXT NOT NULL,
        published_unix_ms INTEGER NOT NULL,
        rollback_of INTEGER,
        programs_version INTEGER,
        PRIMARY KEY (doc, version)
    ) WITHOUT ROWID;
    CREATE TRIGGER IF NOT EXISTS schedule_versions_no_update BEFORE UPDATE ON schedule_versions
        BEGIN SELECT RAISE(ABORT, 'schedule_versions is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS schedule_versions_no_delete BEFORE DELETE ON schedule_versions
        BEGIN SELECT RAISE(ABORT, 'schedule_versions is append-only'); END;",
    // The content library (`collector::library`): one row per content (by SHA-256, measured
    // once at upload), and the library paths (the centre's audio tree), each naming its content,
    // who set it, when and why (a program's episode for a month, or a plain placement). A
    // replaced path's earlier value is in the audit log (before -> after).
    "CREATE TABLE IF NOT EXISTS content (
        sha256 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        title TEXT NOT NULL,
        category TEXT NOT NULL,
        duration_secs REAL NOT NULL,
        sample_rate INTEGER NOT NULL,
        channels INTEGER NOT NULL,
        loudness_lufs REAL,
        true_peak_dbtp REAL,
        uploader TEXT NOT NULL,
        uploaded_unix INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS library_paths (
        path TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL REFERENCES content (sha256),
        set_by TEXT NOT NULL,
        set_unix INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('episode', 'placement')),
        program TEXT,
        month TEXT
    ) WITHOUT ROWID;",
    // Centre-managed stations and their one-time enrolment codes (`collector::enrolment`):
    // a station an admin created in the web app (its kind, who created it, when its key was
    // registered) and each code only as the SHA-256 of its bytes, with its expiry and use.
    "CREATE TABLE IF NOT EXISTS managed_stations (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        area_code TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('city', 'ward')),
        created_by TEXT NOT NULL,
        created_unix_ms INTEGER NOT NULL,
        enrolled_unix_ms INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS enrolment_codes (
        code_sha256 TEXT PRIMARY KEY,
        station TEXT NOT NULL REFERENCES managed_stations (id),
        created_by TEXT NOT NULL,
        created_unix_ms INTEGER NOT NULL,
        expires_unix_ms INTEGER NOT NULL,
        used_unix_ms INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS enrolment_codes_station ON enrolment_codes (station);",
    // The centre's schedule version each record names (`wire::AiringRecord::schedule_version`;
    // NULL: it names none — every record stored before this version, whose bytes have no such
    // field, so nothing is backfilled).
    "ALTER TABLE records ADD COLUMN schedule_version INTEGER;",
    // Bulletins the centre sent (`collector::bulletins`, docs/bulletins.md): the signed envelope
    // (its JSON text) is the bulletin; the other columns copy its fields for queries. A cancel
    // keeps its own signed envelope, who cancelled and when.
    "CREATE TABLE IF NOT EXISTS bulletins (
        id TEXT PRIMARY KEY,
        envelope TEXT NOT NULL,
        title TEXT NOT NULL,
        priority TEXT NOT NULL CHECK (priority IN ('normal', 'priority', 'emergency')),
        targets TEXT NOT NULL,
        audio_sha256 TEXT NOT NULL,
        not_before_unix_ms INTEGER NOT NULL,
        not_after_unix_ms INTEGER NOT NULL,
        repeats INTEGER NOT NULL,
        interval_secs INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        created_unix_ms INTEGER NOT NULL,
        cancelled_by TEXT,
        cancelled_unix_ms INTEGER,
        cancel_envelope TEXT,
        CHECK ((cancelled_unix_ms IS NULL) = (cancel_envelope IS NULL))
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS bulletins_not_after ON bulletins (not_after_unix_ms);",
    // Bulletin airings (`wire::AiringRecord::bulletin`; NULL on every other record, and on every
    // record stored before this version, whose bytes have no such field) and the stations'
    // receipts of bulletins (docs/bulletins.md, "Proof"): one row per (bulletin, station), the
    // latest state the station reported; `code` is the `bulletin.*` refusal code when refused.
    "ALTER TABLE records ADD COLUMN bulletin_id TEXT;
    ALTER TABLE records ADD COLUMN bulletin_repeat INTEGER;
    CREATE INDEX IF NOT EXISTS records_bulletin ON records (bulletin_id, station)
        WHERE bulletin_id IS NOT NULL;
    CREATE TABLE IF NOT EXISTS bulletin_receipts (
        bulletin_id TEXT NOT NULL,
        station TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('delivered', 'refused')),
        code TEXT,
        station_unix_ms INTEGER NOT NULL,
        received_unix_ms INTEGER NOT NULL,
        PRIMARY KEY (bulletin_id, station),
        CHECK ((state = 'refused') = (code IS NOT NULL))
    ) WITHOUT ROWID;",
    // The push channel's event ids (`collector::push`): one row per bulletin sent and per
    // cancel, numbered in commit order (AUTOINCREMENT: a number is never handed out twice);
    // a station resumes after the last one it received. Bulletins stored before this version
    // get theirs in the order they were sent.
    "CREATE TABLE IF NOT EXISTS push_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('bulletin', 'cancel')),
        bulletin_id TEXT NOT NULL REFERENCES bulletins (id),
        created_unix_ms INTEGER NOT NULL
    );
    INSERT INTO push_events (kind, bulletin_id, created_unix_ms)
        SELECT kind, id, at FROM (
            SELECT 'bulletin' AS kind, id, created_unix_ms AS at, 0 AS k FROM bulletins
            UNION ALL
            SELECT 'cancel', id, cancelled_unix_ms, 1 FROM bulletins
                WHERE cancelled_unix_ms IS NOT NULL
        ) ORDER BY at, k, id;",
];

/// The schema version this build writes (`PRAGMA user_version` after migrating).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Rows read per step of a backfill (bounds its memory on a big database).
const BACKFILL_ROWS_PER_STEP: i64 = 10_000;

/// The raw insert of a record row, every column (see [`insert_record`]).
pub const INSERT_RECORD_SQL: &str = "INSERT INTO records (station, seq, hash, prev_hash, signature,
    bytes, occurrence, category, source, outcome, scheduled_unix, aired_secs, received_unix, slot,
    program, reason, planned_secs, start_offset_ms, scheduled_ns, scheduled_offset_secs, actual_ns,
    actual_offset_secs, reason_code, schedule_version, bulletin_id, bulletin_repeat)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
    ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

/// The instant columns of a record: (scheduled ns, scheduled offset, actual ns, actual offset);
/// `None` when an instant is outside what i64 nanoseconds hold (years 1677–2262): the row is then
/// read from its bytes.
type InstantColumns = (i64, i64, Option<i64>, Option<i64>);

fn instant_columns(r: &AiringRecord) -> Option<InstantColumns> {
    let sched = r.scheduled_at.timestamp_nanos_opt()?;
    let sched_off = i64::from(r.scheduled_at.offset().local_minus_utc());
    let (actual, actual_off) = match &r.actual_start {
        Some(t) => (
            Some(t.timestamp_nanos_opt()?),
            Some(i64::from(t.offset().local_minus_utc())),
        ),
        None => (None, None),
    };
    Some((sched, sched_off, actual, actual_off))
}

/// Write one record row through a statement prepared from [`INSERT_RECORD_SQL`]: the bytes, hash
/// and signature verbatim and every column derived from `r` (which must be the record `bytes`
/// encode). This is the raw write: [`Store::store_batch`] is the checked path; benchmarks use this
/// to fill a database without signing.
#[allow(clippy::too_many_arguments)]
pub fn insert_record(
    stmt: &mut crate::collector::db::Stmt<'_>,
    station: &str,
    hash: &str,
    signature: &str,
    bytes: &str,
    r: &AiringRecord,
    received_unix: i64,
) -> Result<(), StoreError> {
    let values = record_values(station, hash, signature, bytes, r, received_unix);
    let refs: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    stmt.execute(&refs)?;
    Ok(())
}

/// The columns of [`INSERT_RECORD_SQL`], in its order, for one record row.
fn record_values(
    station: &str,
    hash: &str,
    signature: &str,
    bytes: &str,
    r: &AiringRecord,
    received_unix: i64,
) -> Vec<Value> {
    let (sched_ns, sched_off, actual_ns, actual_off) = match instant_columns(r) {
        Some((a, b, c, d)) => (Some(a), Some(b), c, d),
        None => (None, None, None, None),
    };
    let text = |s: &str| Value::Text(s.to_string());
    let opt_text = |s: Option<&str>| s.map_or(Value::Null, text);
    let opt_int = |i: Option<i64>| i.map_or(Value::Null, Value::Int);
    vec![
        text(station),
        Value::Int(r.seq as i64),
        text(hash),
        text(&r.prev_hash),
        text(signature),
        text(bytes),
        opt_text(r.occurrence.as_deref()),
        text(&r.category),
        text(source_name(r.source)),
        text(outcome_name(r.outcome)),
        Value::Int(r.scheduled_at.timestamp()),
        Value::Real(r.aired_secs),
        Value::Int(received_unix),
        opt_text(r.slot.as_deref()),
        opt_text(r.program.as_deref()),
        opt_text(r.reason.as_deref()),
        Value::Real(r.planned_secs),
        opt_int(r.start_offset_ms),
        opt_int(sched_ns),
        opt_int(sched_off),
        opt_int(actual_ns),
        opt_int(actual_off),
        opt_text(r.code().as_ref().map(ReasonCode::as_str)),
        opt_int(r.schedule_version.map(|n| n as i64)),
        opt_text(r.bulletin.as_ref().map(|b| b.id.as_str())),
        opt_int(r.bulletin.as_ref().map(|b| i64::from(b.repeat))),
    ]
}

/// Columns of a record row ([`INSERT_RECORD_SQL`]).
const RECORD_COLUMNS: usize = 26;

/// Rows per statement of [`insert_records`]: 200 × 26 = 5,200 parameters, under both engines'
/// limits (SQLite 32,766; PostgreSQL 65,535).
const INSERT_ROWS_PER_STATEMENT: usize = 200;

/// [`INSERT_RECORD_SQL`] for `rows` rows.
fn insert_records_sql(rows: usize) -> String {
    let head = INSERT_RECORD_SQL
        .split_once("VALUES")
        .map_or(INSERT_RECORD_SQL, |(h, _)| h);
    format!(
        "{head}VALUES {}",
        super::db::values_placeholders(rows, RECORD_COLUMNS)
    )
}

/// Insert record rows (each [`record_values`]) with one statement per
/// [`INSERT_ROWS_PER_STATEMENT`]: on PostgreSQL a statement is a round trip, so a batch of 200
/// is one instead of 200.
fn insert_records(conn: &Conn, rows: &[Vec<Value>]) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_ROWS_PER_STATEMENT) {
        let sql = insert_records_sql(chunk.len());
        let refs: Vec<&dyn ToValue> = chunk.iter().flatten().map(|v| v as &dyn ToValue).collect();
        conn.execute(&sql, &refs)?;
    }
    Ok(())
}

/// Ranges read (or stations listed) per statement by [`Store::store_batches`]: a statement is
/// a round trip on PostgreSQL, and SQLite allows 500 terms in a compound SELECT.
const NEAR_READS_PER_STATEMENT: usize = 100;

/// What checking one batch against the stored neighbours found (see [`judge`]).
struct Judged {
    accepted: Vec<u64>,
    duplicates: Vec<u64>,
    rejected: Vec<Rejection>,
}

/// The stored records of one station a batch's checks need: seq → (hash, prev_hash, bytes).
type Near = HashMap<u64, (String, String, String)>;

/// Check one batch of a station against `near` (its stored records, holding at least every one
/// from seq-1 of the batch's first record to seq+1 of its last): a
/// record stored with the same bytes is a duplicate, with other bytes a conflict; the first
/// record must link to the stored seq-1 (or be seq 1 on the genesis hash), the last must be
/// what a stored seq+1 links to. Nothing is accepted once anything is rejected. Pure: it
/// reads nothing but its arguments.
fn judge(records: &[CheckedRecord], near: &Near) -> Judged {
    let at = |seq: u64| near.get(&seq);
    let mut j = Judged {
        accepted: Vec::with_capacity(records.len()),
        duplicates: Vec::new(),
        rejected: Vec::new(),
    };
    for (i, c) in records.iter().enumerate() {
        if let Some((_, _, bytes)) = at(c.seq) {
            if *bytes == c.bytes {
                j.duplicates.push(c.seq);
            } else {
                j.rejected.push(Rejection {
                    seq: Some(c.seq),
                    reason: format!(
                        "conflict: seq {} is already stored with different content; a station never reuses a sequence number (was its journal reset or its key shared?)",
                        c.seq
                    ),
                    code: Some(ReasonCode::RefusedConflict),
                });
            }
            continue;
        }
        // Previous link: from the batch itself (already checked) or the store.
        if i == 0 {
            let expected = if c.seq == 1 {
                Some(GENESIS_HASH)
            } else {
                at(c.seq - 1).map(|(h, _, _)| h.as_str())
            };
            if let Some(h) = expected
                && h != c.record.prev_hash
            {
                j.rejected.push(Rejection {
                    seq: Some(c.seq),
                    reason: format!(
                        "hash chain broken: prev_hash of seq {} is not the stored hash of seq {}",
                        c.seq,
                        c.seq - 1
                    ),
                    code: Some(ReasonCode::RefusedChain),
                });
                continue;
            }
        }
        // Next link: a later record stored earlier (after a gap) must point at this one.
        if i + 1 == records.len()
            && let Some((_, next_prev, _)) = at(c.seq + 1)
            && *next_prev != c.hash
        {
            j.rejected.push(Rejection {
                seq: Some(c.seq),
                reason: format!(
                    "hash chain broken: stored seq {} does not link to this seq {}",
                    c.seq + 1,
                    c.seq
                ),
                code: Some(ReasonCode::RefusedChain),
            });
            continue;
        }
        if !j.rejected.is_empty() {
            continue;
        }
        j.accepted.push(c.seq);
    }
    if !j.rejected.is_empty() {
        j.accepted.clear();
    }
    j
}

/// Migration 3's backfill: fill the columns of every row stored before it from its bytes. A row
/// whose bytes do not parse keeps NULL columns (it is reported as corrupt when read, as before).
fn backfill_v3(tx: &crate::collector::db::Tx<'_>) -> Result<(), StoreError> {
    let mut select = tx.prepare(
        "SELECT rowid, bytes FROM records WHERE rowid > ?1 AND scheduled_ns IS NULL
         ORDER BY rowid LIMIT ?2",
    )?;
    let mut update = tx.prepare(
        "UPDATE records SET slot = ?2, program = ?3, reason = ?4, planned_secs = ?5,
            start_offset_ms = ?6, scheduled_ns = ?7, scheduled_offset_secs = ?8, actual_ns = ?9,
            actual_offset_secs = ?10
         WHERE rowid = ?1",
    )?;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, String)> = select
            .query_map(params![after, BACKFILL_ROWS_PER_STEP], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        after = *last;
        for (rowid, bytes) in rows {
            let Ok(r) = serde_json::from_str::<AiringRecord>(&bytes) else {
                continue;
            };
            let Some((sched_ns, sched_off, actual_ns, actual_off)) = instant_columns(&r) else {
                continue;
            };
            update.execute(params![
                rowid,
                r.slot,
                r.program,
                r.reason,
                r.planned_secs,
                r.start_offset_ms,
                sched_ns,
                sched_off,
                actual_ns,
                actual_off,
            ])?;
        }
    }
}

/// Migration 5's backfill: the reason code of every row stored before it. Those rows are wire
/// version 1 (builds before migration 5 refused version 2), so a row whose columns are filled
/// gets `wire::classify` of its outcome and reason columns (no JSON parsing); any other row (columns
/// not filled, or bytes not starting as version 1 do) is read from its bytes. A row whose bytes do
/// not parse keeps NULL (it is reported as corrupt when read, as before).
fn backfill_v5(tx: &crate::collector::db::Tx<'_>) -> Result<(), StoreError> {
    let mut select = tx.prepare(
        "SELECT rowid, outcome, reason,
            CASE WHEN scheduled_ns IS NULL OR substr(bytes, 1, 7) <> '{\"v\":1,' THEN bytes END
         FROM records WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let mut update = tx.prepare("UPDATE records SET reason_code = ?2 WHERE rowid = ?1")?;
    let mut after = i64::MIN;
    loop {
        type Row = (i64, String, Option<String>, Option<String>);
        let rows: Vec<Row> = select
            .query_map(params![after, BACKFILL_ROWS_PER_STEP], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let Some((last, ..)) = rows.last() else {
            return Ok(());
        };
        after = *last;
        for (rowid, outcome, reason, bytes) in rows {
            let code = match bytes {
                Some(bytes) => match serde_json::from_str::<AiringRecord>(&bytes) {
                    Ok(r) => r.code(),
                    Err(_) => continue,
                },
                None => match parse_outcome(&outcome) {
                    Some(o) => crate::wire::classify(o, reason.as_deref()),
                    None => continue,
                },
            };
            if let Some(code) = code {
                update.execute(params![rowid, code.as_str()])?;
            }
        }
    }
}

/// How hard a commit waits for the disk (SQLite `PRAGMA synchronous`, the database is always in
/// WAL mode).
///
/// - `Full`: every committed batch is on disk before its answer is sent (WAL fsynced at each
///   commit): an acknowledged batch survives a process crash *and* a power loss.
/// - `Normal`: the WAL is fsynced only at checkpoints: an acknowledged batch survives a process
///   crash (`kill -9`), but a power loss or kernel crash may lose the batches committed since the
///   last checkpoint (the database stays consistent). Stations delete only what the collector
///   acknowledged, so those records would be gone from both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Normal,
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// Default durability: `Full` — an acknowledgement must mean the records are on disk, because the
/// station may compact acknowledged records from its journal; measured cost in `docs/api.md`.
pub const DEFAULT_SYNCHRONOUS: Synchronous = Synchronous::Full;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(DbError::Sqlite(e))
    }
}

/// A stored record row (the report's plain record data: the report reads the store through
/// [`RecordSource`]).
pub use crate::report::StoredRecord;

impl From<CorruptRecord> for StoreError {
    fn from(e: CorruptRecord) -> Self {
        StoreError::Corrupt(e.0)
    }
}

impl From<StoreError> for ReportError {
    fn from(e: StoreError) -> Self {
        ReportError::Store(Box::new(e))
    }
}

/// The report reads records through this (the inherent methods, errors boxed as they are).
impl RecordSource for Store {
    fn open_reader(&self) -> Result<Box<dyn RecordSource + Send>, SourceError> {
        Ok(Box::new(Store::open_reader(self)?))
    }

    fn stored_through(&self, station: &str) -> Result<u64, SourceError> {
        Ok(Store::stored_through(self, station)?)
    }

    fn records_between(
        &self,
        station: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<StoredRecord>, SourceError> {
        Ok(Store::records_between(
            self,
            Some(station),
            from_unix,
            to_unix,
        )?)
    }

    fn airings_between(
        &self,
        station: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<AiredAiring>, SourceError> {
        Ok(Store::airings_between(self, station, from_unix, to_unix)?)
    }

    fn records_by_seq(
        &self,
        station: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredRecord>, SourceError> {
        Ok(Store::records_by_seq(self, station, from, to)?)
    }

    fn last_record_scheduled_before(
        &self,
        station: &str,
        unix: i64,
    ) -> Result<Option<StoredRecord>, SourceError> {
        Ok(Store::last_record_scheduled_before(self, station, unix)?)
    }

    fn bulletins(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, crate::report::BulletinInfo>, SourceError> {
        Ok(super::bulletins::report_facts(&self.conn, ids)?)
    }
}

/// The latest heartbeat of a station and when it arrived.
#[derive(Debug, Clone)]
pub struct StoredHeartbeat {
    pub received_at: DateTime<Utc>,
    pub heartbeat: Heartbeat,
}

/// A run of missing sequence numbers, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeqGap {
    pub from: u64,
    pub to: u64,
}

/// Result of storing a batch.
#[derive(Debug)]
pub enum StoreOutcome {
    /// Stored (or all duplicates).
    Stored(BatchAck),
    /// Same seq, different bytes, or a chain that does not link to stored neighbours; nothing stored.
    Conflict(BatchAck),
}

/// The PostgreSQL channel on which a replica says it stored a station's heartbeat or records
/// (`"<replica> hb <station>"`, `"<replica> rec <station>"`), so the other replicas' station
/// status follows (`collector::push::listen`, `collector::status`). Sent in the storing
/// transaction, so it is delivered only once what it names is committed.
pub const STATUS_CHANNEL: &str = "loa_status";

/// The collector database.
pub struct Store {
    conn: Conn,
}

/// The PostgreSQL schema at [`SCHEMA_VERSION`]: the same tables, columns, keys, checks and
/// append-only rules as SQLite's migrations build, in PostgreSQL's types (integers `BIGINT`,
/// reals `DOUBLE PRECISION`). A PostgreSQL database starts at this version (PostgreSQL support
/// came with it); a later migration is added to both lists with the same number
/// (`pg_migrations_reach_the_same_version`).
const PG_BASELINE: &str = include_str!("schema.pg.sql");

/// Migrations after the PostgreSQL baseline, numbered as SQLite's from `PG_BASELINE_VERSION + 1`.
const PG_MIGRATIONS: &[&str] = &[];

/// The schema version [`PG_BASELINE`] is.
const PG_BASELINE_VERSION: i64 = 13;

/// The advisory lock a migrating collector holds, so two replicas starting together migrate once.
const PG_MIGRATION_LOCK: i64 = 0x006c_6f61_0002;

impl Store {
    /// Open (creating when missing) and migrate, with [`DEFAULT_SYNCHRONOUS`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, DEFAULT_SYNCHRONOUS)
    }

    /// Open (creating when missing) and migrate: a SQLite file in WAL mode with the given
    /// durability, or (a `postgres://` location) a PostgreSQL database: `Full` commits wait for
    /// the server's disk as the server is set to (`synchronous_commit`, on by default), `Normal`
    /// ones do not (`synchronous_commit = off` for the session) — the heartbeat and account
    /// connections, as on SQLite.
    pub fn open_with(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        Self::open_at(&Location::of_path(path), synchronous)
    }

    /// [`Store::open_with`] at a location.
    pub fn open_at(location: &Location, synchronous: Synchronous) -> Result<Self, StoreError> {
        let conn = Conn::open_with(location, synchronous == Synchronous::Full)?;
        if let Some(c) = conn.sqlite() {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", synchronous.pragma())?;
        }
        let mut store = Self { conn };
        store.migrate(&location.display())?;
        Ok(store)
    }

    /// Another connection to the same (already migrated) database, for reading on another
    /// thread while this one is in use (WAL lets readers run side by side).
    pub fn open_reader(&self) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Conn::open(self.conn.location())?,
        })
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        self.conn.location()
    }

    /// Check the database's own consistency: SQLite's `PRAGMA integrity_check` answering `ok`;
    /// on PostgreSQL, that the server answers (it checks its own pages).
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let Some(c) = self.conn.sqlite() else {
            self.conn
                .query_row("SELECT 1", params![], |r| r.get::<i64>(0))?;
            return Ok(());
        };
        let mut stmt = c.prepare("PRAGMA integrity_check")?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        if lines.len() == 1 && lines[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "integrity check: {}",
                lines.join("; ")
            )))
        }
    }

    fn migrate(&mut self, name: &str) -> Result<(), StoreError> {
        if self.conn.engine() == Engine::Postgres {
            return self.migrate_pg(name);
        }
        let version = self.schema_version()?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: name.to_string(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            match i + 1 {
                3 => backfill_v3(&tx)?,
                5 => backfill_v5(&tx)?,
                _ => {}
            }
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
            tx.commit()?;
        }
        Ok(())
    }

    /// PostgreSQL: the baseline on an empty database, then each later migration, one
    /// transaction each, under an advisory lock (replicas starting together migrate once).
    fn migrate_pg(&mut self, name: &str) -> Result<(), StoreError> {
        self.conn
            .execute_batch(&format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))?;
        let result = (|| {
            self.conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS loa_schema (
                    one BIGINT PRIMARY KEY CHECK (one = 1),
                    version BIGINT NOT NULL
                )",
            )?;
            let version = self.schema_version()?;
            let known = PG_BASELINE_VERSION + PG_MIGRATIONS.len() as i64;
            if version > known {
                return Err(StoreError::TooNew {
                    path: name.to_string(),
                    found: version,
                    known,
                });
            }
            if version == 0 {
                let tx = self.conn.transaction()?;
                tx.execute_batch(PG_BASELINE)?;
                tx.execute(
                    "INSERT INTO loa_schema (one, version) VALUES (1, ?1)",
                    params![PG_BASELINE_VERSION],
                )?;
                tx.commit()?;
            }
            let version = self.schema_version()?;
            for (i, sql) in PG_MIGRATIONS
                .iter()
                .enumerate()
                .skip((version - PG_BASELINE_VERSION) as usize)
            {
                let tx = self.conn.transaction()?;
                tx.execute_batch(sql)?;
                tx.execute(
                    "UPDATE loa_schema SET version = ?1",
                    params![PG_BASELINE_VERSION + i as i64 + 1],
                )?;
                tx.commit()?;
            }
            Ok(())
        })();
        let unlock = self
            .conn
            .execute_batch(&format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"));
        result?;
        unlock?;
        Ok(())
    }

    /// The connection itself, for the account tables (`collector::accounts`), which keep their
    /// own connection beside the writer's and the reader's.
    pub fn into_connection(self) -> Conn {
        self.conn
    }

    /// The connection, for a module that owns its own tables (`collector::library`).
    pub(crate) fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The connection, mutably (transactions), for a module that owns its own tables.
    pub(crate) fn conn_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Schema version in use (0: an empty database).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        match self.conn.engine() {
            Engine::Sqlite => Ok(self
                .conn
                .query_row("PRAGMA user_version", params![], |r| r.get(0))?),
            Engine::Postgres => Ok(self
                .conn
                .query_row(
                    "SELECT version FROM loa_schema WHERE to_regclass('loa_schema') IS NOT NULL",
                    params![],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0)),
        }
    }

    /// Highest seq stored for `station` (0 when none).
    pub fn stored_through(&self, station: &str) -> Result<u64, StoreError> {
        let n: Option<i64> = self.conn.query_row(
            "SELECT MAX(seq) FROM records WHERE station = ?1",
            params![station],
            |r| r.get(0),
        )?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// Store a checked batch all-or-nothing. `records` must come from `ingest::check_batch`
    /// (consecutive seqs, chained within the batch).
    pub fn store_batch(
        &mut self,
        station: &str,
        records: &[CheckedRecord],
        now: DateTime<Utc>,
    ) -> Result<StoreOutcome, StoreError> {
        let mut out = self.store_batches(&[(station, records)], now)?;
        out.pop().ok_or_else(|| {
            StoreError::Corrupt("the store answered no outcome for a batch it was given".into())
        })
    }

    /// Store several checked batches (each as [`Store::store_batch`] takes it) in one
    /// transaction — one commit, so one fsync for them all (group commit) — and answer each as
    /// it would have been answered had they been stored one after another in this order: each
    /// batch is still all-or-nothing (a batch refused for a conflict or a broken chain stores
    /// nothing and leaves the others as they are), a later batch sees an earlier one's records
    /// (as duplicates or as the neighbour its chain links to), and its `stored_through` is what
    /// was stored right after it. An error stores none of them; the caller may then store them one by
    /// one, to tell which batch a refusal ([`StoreError::is_refusal`]) belongs to.
    ///
    /// Outcomes come in the order of `batches`. A batch's checks read the stored neighbours of
    /// every batch in [`NEAR_READS_PER_STATEMENT`] ranges per statement and the stored-through
    /// of every station in one more, so a group costs a handful of statements whatever its size
    /// (on PostgreSQL each statement is a round trip).
    pub fn store_batches(
        &mut self,
        batches: &[(&str, &[CheckedRecord])],
        now: DateTime<Utc>,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        // IMMEDIATE: the range read below comes before the inserts; a deferred transaction
        // could not take the write lock once another connection committed after its read
        // (SQLITE_BUSY at once, no busy wait), so the lock is taken first. On PostgreSQL it is
        // the writer lock every replica takes, so no other replica writes between the read and
        // the commit.
        let tx = self.conn.transaction_immediate()?;
        // One range read per batch, from seq-1 of its first record to seq+1 of its last:
        // duplicates, and the links to the stored neighbours. Per station; a batch accepted
        // below adds its records, so the next batch of the same station sees them.
        let mut stored: HashMap<String, Near> = HashMap::new();
        let ranges: Vec<(&str, i64, i64)> = batches
            .iter()
            .filter_map(|(station, records)| {
                let (first, last) = (records.first()?, records.last()?);
                Some((
                    *station,
                    first.seq.saturating_sub(1).min(i64::MAX as u64) as i64,
                    last.seq.saturating_add(1).min(i64::MAX as u64) as i64,
                ))
            })
            .collect();
        for chunk in ranges.chunks(NEAR_READS_PER_STATEMENT) {
            let sql = (0..chunk.len())
                .map(|i| {
                    format!(
                        "SELECT station, seq, hash, prev_hash, bytes FROM records
                         WHERE station = ?{} AND seq >= ?{} AND seq <= ?{}",
                        3 * i + 1,
                        3 * i + 2,
                        3 * i + 3
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let params: Vec<&dyn ToValue> = chunk
                .iter()
                .flat_map(|(s, lo, hi)| [s as &dyn ToValue, lo, hi])
                .collect();
            tx.for_each_row(&sql, &params, |r| -> Result<(), DbError> {
                let station: String = r.get(0)?;
                let seq = r.get::<i64>(1)? as u64;
                stored
                    .entry(station)
                    .or_default()
                    .insert(seq, (r.get(2)?, r.get(3)?, r.get(4)?));
                Ok(())
            })?;
        }
        // Stored-through of every station of the group before it; each accepted batch raises its
        // station's, so each answer says what was stored right after that batch.
        let mut stations: Vec<&str> = batches.iter().map(|(s, _)| *s).collect();
        stations.sort_unstable();
        stations.dedup();
        let mut through: HashMap<String, u64> = HashMap::new();
        for chunk in stations.chunks(NEAR_READS_PER_STATEMENT) {
            let sql = format!(
                "SELECT station, MAX(seq) FROM records WHERE station IN ({}) GROUP BY station",
                (1..=chunk.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let params: Vec<&dyn ToValue> = chunk.iter().map(|s| s as &dyn ToValue).collect();
            tx.for_each_row(&sql, &params, |r| -> Result<(), DbError> {
                through.insert(r.get(0)?, r.get::<i64>(1)?.max(0) as u64);
                Ok(())
            })?;
        }
        let mut judged = Vec::with_capacity(batches.len());
        let mut rows = Vec::new();
        for (station, records) in batches {
            let near = stored.entry(station.to_string()).or_default();
            let j = judge(records, near);
            let station_through = through.entry(station.to_string()).or_insert(0);
            if let Some(top) = j.accepted.iter().max() {
                *station_through = (*station_through).max(*top);
            }
            let stored_through = *station_through;
            if j.rejected.is_empty() {
                // `accepted` is in ascending seq order, as the batch is.
                for c in records
                    .iter()
                    .filter(|c| j.accepted.binary_search(&c.seq).is_ok())
                {
                    rows.push(record_values(
                        station,
                        &c.hash,
                        &c.signature,
                        &c.bytes,
                        &c.record,
                        now.timestamp(),
                    ));
                    near.insert(
                        c.seq,
                        (c.hash.clone(), c.record.prev_hash.clone(), c.bytes.clone()),
                    );
                }
            }
            judged.push((j, stored_through));
        }
        insert_records(&tx, &rows)?;
        let mut changed: Vec<&str> = batches
            .iter()
            .zip(&judged)
            .filter(|(_, (j, _))| j.rejected.is_empty() && !j.accepted.is_empty())
            .map(|((s, _), _)| *s)
            .collect();
        changed.sort_unstable();
        changed.dedup();
        self.notify_status_of("rec", &changed)?;
        tx.commit()?;
        Ok(judged
            .into_iter()
            .map(|(j, stored_through)| {
                if j.rejected.is_empty() {
                    StoreOutcome::Stored(BatchAck {
                        accepted: j.accepted,
                        duplicates: j.duplicates,
                        stored_through,
                        rejected: Vec::new(),
                    })
                } else {
                    StoreOutcome::Conflict(BatchAck {
                        accepted: Vec::new(),
                        duplicates: Vec::new(),
                        stored_through,
                        rejected: j.rejected,
                    })
                }
            })
            .collect())
    }

    /// Every stored audio path with the (size, mtime) it had and the SHA-256 of its content then.
    pub fn audio_files(&self) -> Result<Vec<StoredAudioFile>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, size, mtime_ns, sha256 FROM audio_files")?;
        let rows = stmt.query_map(params![], |r| {
            Ok(StoredAudioFile {
                path: r.get(0)?,
                size: r.get::<i64>(1)? as u64,
                mtime_ns: r.get(2)?,
                sha256: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Remember which content `f.path` held at (size, mtime).
    pub fn put_audio_file(&self, f: &StoredAudioFile) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO audio_files (path, size, mtime_ns, sha256) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                sha256 = excluded.sha256",
            params![f.path, f.size as i64, f.mtime_ns, f.sha256],
        )?;
        Ok(())
    }

    /// Every stored audio fact.
    pub fn audio_facts(&self) -> Result<Vec<StoredAudioFacts>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT sha256, sample_rate, channels, frames, duration_secs, undecodable,
                loudness_lufs FROM audio_facts",
        )?;
        let rows = stmt.query_map(params![], |r| {
            Ok(StoredAudioFacts {
                sha256: r.get(0)?,
                sample_rate: r.get::<Option<i64>>(1)?.map(|x| x as u32),
                channels: r.get::<Option<i64>>(2)?.map(|x| x as u16),
                frames: r.get::<Option<i64>>(3)?.map(|x| x as u64),
                duration_secs: r.get(4)?,
                undecodable: r.get(5)?,
                loudness_lufs: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored facts of one content, if any (what another writer, e.g. the content
    /// library's upload, stored after this process read them all).
    pub fn audio_facts_of(&self, sha256: &str) -> Result<Option<StoredAudioFacts>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT sha256, sample_rate, channels, frames, duration_secs, undecodable,
                    loudness_lufs FROM audio_facts WHERE sha256 = ?1",
                params![sha256],
                |r| {
                    Ok(StoredAudioFacts {
                        sha256: r.get(0)?,
                        sample_rate: r.get::<Option<i64>>(1)?.map(|x| x as u32),
                        channels: r.get::<Option<i64>>(2)?.map(|x| x as u16),
                        frames: r.get::<Option<i64>>(3)?.map(|x| x as u64),
                        duration_secs: r.get(4)?,
                        undecodable: r.get(5)?,
                        loudness_lufs: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// Store what probing one content found (the first probe of a hash wins; a hash names
    /// one content, so a second probe finds the same).
    pub fn put_audio_facts(
        &self,
        f: &StoredAudioFacts,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO audio_facts (sha256, sample_rate, channels, frames,
                duration_secs, undecodable, loudness_lufs, probed_unix)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            params![
                f.sha256,
                f.sample_rate.map(i64::from),
                f.channels.map(i64::from),
                f.frames.map(|x| x as i64),
                f.duration_secs,
                f.undecodable,
                f.loudness_lufs,
                now.timestamp()
            ],
        )?;
        Ok(())
    }

    /// Keep the latest heartbeat of `station` (the last to arrive replaces the previous one).
    pub fn store_heartbeat(
        &mut self,
        station: &str,
        bytes: &str,
        signature: &str,
        received_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO heartbeats (station, received_unix_ms, bytes, signature)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (station) DO UPDATE SET received_unix_ms = excluded.received_unix_ms,
                bytes = excluded.bytes, signature = excluded.signature",
            params![station, received_at.timestamp_millis(), bytes, signature],
        )?;
        self.notify_status("hb", station)?;
        Ok(())
    }

    /// On PostgreSQL, tell the other replicas that `station`'s `kind` (`hb`, `rec`) changed
    /// ([`STATUS_CHANNEL`]); nothing on SQLite (one process).
    fn notify_status(&self, kind: &str, station: &str) -> Result<(), StoreError> {
        self.notify_status_of(kind, &[station])
    }

    /// [`Store::notify_status`] for several stations, [`NEAR_READS_PER_STATEMENT`] per
    /// statement.
    fn notify_status_of(&self, kind: &str, stations: &[&str]) -> Result<(), StoreError> {
        if self.conn.engine() != Engine::Postgres {
            return Ok(());
        }
        let replica = super::db::replica_id();
        for chunk in stations.chunks(NEAR_READS_PER_STATEMENT) {
            let payloads: Vec<String> = chunk
                .iter()
                .map(|s| format!("{replica} {kind} {s}"))
                .collect();
            let sql = format!(
                "SELECT {}",
                (0..payloads.len())
                    .map(|i| format!("pg_notify(?1, ?{})", i + 2))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut params: Vec<&dyn ToValue> = vec![&STATUS_CHANNEL];
            params.extend(payloads.iter().map(|p| p as &dyn ToValue));
            self.conn.query_row(&sql, &params, |_| Ok(()))?;
        }
        Ok(())
    }

    /// `sent_at` of the latest stored heartbeat of `station` (reads only that field, so fields
    /// added to the heartbeat later do not matter here).
    pub fn last_heartbeat_sent_at(
        &self,
        station: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        #[derive(serde::Deserialize)]
        struct SentAt {
            sent_at: DateTime<Utc>,
        }
        let bytes: Option<String> = self
            .conn
            .query_row(
                "SELECT bytes FROM heartbeats WHERE station = ?1",
                params![station],
                |r| r.get(0),
            )
            .optional()?;
        bytes
            .map(|b| {
                serde_json::from_str::<SentAt>(&b)
                    .map(|s| s.sent_at)
                    .map_err(|e| StoreError::Corrupt(format!("heartbeat of {station}: {e}")))
            })
            .transpose()
    }

    /// The latest heartbeat of `station`.
    pub fn heartbeat(&self, station: &str) -> Result<Option<StoredHeartbeat>, StoreError> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT received_unix_ms, bytes FROM heartbeats WHERE station = ?1",
                params![station],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((ms, bytes)) = row else {
            return Ok(None);
        };
        let heartbeat: Heartbeat =
            serde_json::from_str(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let received_at = DateTime::<Utc>::from_timestamp_millis(ms)
            .ok_or_else(|| StoreError::Corrupt(format!("heartbeat time {ms}")))?;
        Ok(Some(StoredHeartbeat {
            received_at,
            heartbeat,
        }))
    }

    /// Missing sequence numbers of `station` below its highest stored seq.
    pub fn gaps(&self, station: &str) -> Result<Vec<SeqGap>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, LAG(seq, 1, 0) OVER (ORDER BY seq) FROM records WHERE station = ?1",
        )?;
        let rows = stmt.query_map(params![station], |r| {
            Ok((r.get::<i64>(0)?, r.get::<i64>(1)?))
        })?;
        let mut gaps = Vec::new();
        for row in rows {
            let (seq, prev) = row?;
            if seq > prev + 1 {
                gaps.push(SeqGap {
                    from: (prev + 1) as u64,
                    to: (seq - 1) as u64,
                });
            }
        }
        Ok(gaps)
    }

    /// Records of `station` (or every station when `None`) scheduled in `[from, to)` (unix
    /// seconds), ordered by station then seq.
    pub fn records_between(
        &self,
        station: Option<&str>,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let map = |r: &crate::collector::db::Row<'_>| {
            Ok(StoredRecord {
                station: r.get(0)?,
                seq: r.get::<i64>(1)? as u64,
                hash: r.get(2)?,
                signature: r.get(3)?,
                bytes: r.get(4)?,
            })
        };
        let mut out = Vec::new();
        match station {
            Some(s) => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT station, seq, hash, signature, bytes FROM records
                     WHERE station = ?1 AND scheduled_unix >= ?2 AND scheduled_unix < ?3
                     ORDER BY seq",
                )?;
                for r in stmt.query_map(params![s, from_unix, to_unix], map)? {
                    out.push(r?);
                }
            }
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT station, seq, hash, signature, bytes FROM records
                     WHERE scheduled_unix >= ?1 AND scheduled_unix < ?2
                     ORDER BY station, seq",
                )?;
                for r in stmt.query_map(params![from_unix, to_unix], map)? {
                    out.push(r?);
                }
            }
        }
        Ok(out)
    }

    /// The airings of `station` scheduled in `[from, to)` (unix seconds), in no promised order
    /// (reconciliation does not depend on it), read from the columns (the bytes only of a row
    /// whose columns are not filled): what reconciliation needs, without parsing the signed
    /// records.
    pub fn airings_between(
        &self,
        station: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<AiredAiring>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, occurrence, slot, program, category, source, outcome, scheduled_ns,
                scheduled_offset_secs, actual_ns, actual_offset_secs, planned_secs, aired_secs,
                start_offset_ms, reason, CASE WHEN scheduled_ns IS NULL THEN bytes END, reason_code,
                schedule_version, bulletin_id, bulletin_repeat
             FROM records
             WHERE station = ?1 AND scheduled_unix >= ?2 AND scheduled_unix < ?3",
        )?;
        let mut out = Vec::new();
        stmt.for_each_row(
            params![station, from_unix, to_unix],
            |row| -> Result<(), StoreError> {
                out.push(airing_of_row(station, row)?);
                Ok(())
            },
        )?;
        Ok(out)
    }
    /// Records of `station` with `from <= seq <= to`, by seq.
    pub fn records_by_seq(
        &self,
        station: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT station, seq, hash, signature, bytes FROM records
             WHERE station = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![station, from as i64, to as i64], |r| {
            Ok(StoredRecord {
                station: r.get(0)?,
                seq: r.get::<i64>(1)? as u64,
                hash: r.get(2)?,
                signature: r.get(3)?,
                bytes: r.get(4)?,
            })
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }

    /// The record of `station` with the highest seq.
    pub fn last_record(&self, station: &str) -> Result<Option<StoredRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT station, seq, hash, signature, bytes FROM records
                 WHERE station = ?1 ORDER BY seq DESC LIMIT 1",
                params![station],
                |r| {
                    Ok(StoredRecord {
                        station: r.get(0)?,
                        seq: r.get::<i64>(1)? as u64,
                        hash: r.get(2)?,
                        signature: r.get(3)?,
                        bytes: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// The record of `station` scheduled last before `unix` (unix seconds; by scheduled time,
    /// then seq), found through the (station, scheduled time) index: the JSON export brackets a
    /// period in which a station has no record with it.
    pub fn last_record_scheduled_before(
        &self,
        station: &str,
        unix: i64,
    ) -> Result<Option<StoredRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT station, seq, hash, signature, bytes FROM records
                 WHERE station = ?1 AND scheduled_unix < ?2
                 ORDER BY scheduled_unix DESC, seq DESC LIMIT 1",
                params![station, unix],
                |r| {
                    Ok(StoredRecord {
                        station: r.get(0)?,
                        seq: r.get::<i64>(1)? as u64,
                        hash: r.get(2)?,
                        signature: r.get(3)?,
                        bytes: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// The stored reason code of `station`'s record `seq` (`None`: it aired without a reason, or
    /// no such record).
    pub fn reason_code(&self, station: &str, seq: u64) -> Result<Option<ReasonCode>, StoreError> {
        let code: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT reason_code FROM records WHERE station = ?1 AND seq = ?2",
                params![station, seq as i64],
                |r| r.get(0),
            )
            .optional()?;
        Ok(code.flatten().as_deref().map(ReasonCode::parse))
    }

    /// Total stored records (for /metrics).
    pub fn count_records(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM records", params![], |r| r.get(0))?;
        Ok(n as u64)
    }
}

/// One row of [`Store::airings_between`]'s query as an airing.
fn airing_of_row(station: &str, row: &Row<'_>) -> Result<AiredAiring, StoreError> {
    let seq = row.get::<i64>(0)? as u64;
    let corrupt = |what: &str| StoreError::Corrupt(format!("{station} seq {seq}: {what}"));
    let Some(sched_ns) = row.get::<Option<i64>>(7)? else {
        let bytes: String = row.get(15)?;
        let r: AiringRecord = serde_json::from_str(&bytes).map_err(|e| corrupt(&e.to_string()))?;
        return Ok(AiredAiring::from(r));
    };
    let instant = |ns: i64, off: Option<i64>| -> Result<DateTime<FixedOffset>, StoreError> {
        let off = off
            .and_then(|o| i32::try_from(o).ok())
            .and_then(FixedOffset::east_opt)
            .ok_or_else(|| corrupt("UTC offset column"))?;
        Ok(DateTime::from_timestamp_nanos(ns).with_timezone(&off))
    };
    // Read in place (no String per row): these two are short enum names.
    let source = match row.value(5)? {
        ValueRef::Text(t) => t,
        _ => "",
    };
    let outcome = match row.value(6)? {
        ValueRef::Text(t) => t,
        _ => "",
    };
    Ok(AiredAiring {
        seq,
        occurrence: row.get(1)?,
        slot: row.get(2)?,
        program: row.get(3)?,
        category: row.get(4)?,
        source: parse_source(source).ok_or_else(|| corrupt("source column"))?,
        outcome: parse_outcome(outcome).ok_or_else(|| corrupt("outcome column"))?,
        scheduled_at: instant(sched_ns, row.get(8)?)?,
        actual_start: match row.get::<Option<i64>>(9)? {
            Some(ns) => Some(instant(ns, row.get(10)?)?),
            None => None,
        },
        planned_secs: row
            .get::<Option<f64>>(11)?
            .ok_or_else(|| corrupt("planned_secs column"))?,
        aired_secs: row.get(12)?,
        start_offset_ms: row.get(13)?,
        reason: row.get(14)?,
        reason_code: match row.value(16)? {
            ValueRef::Text(t) => Some(ReasonCode::parse(t)),
            ValueRef::Null => None,
            _ => return Err(corrupt("reason_code column")),
        },
        schedule_version: row.get::<Option<i64>>(17)?.map(|n| n as u64),
        bulletin: match (row.get::<Option<String>>(18)?, row.get::<Option<i64>>(19)?) {
            (Some(id), Some(repeat)) => Some(crate::reconcile::BulletinAiring {
                id,
                repeat: u32::try_from(repeat).map_err(|_| corrupt("bulletin_repeat column"))?,
                // Not a column: the centre's bulletin says it (the report looks it up).
                synthetic: false,
            }),
            (None, None) => None,
            _ => return Err(corrupt("bulletin columns")),
        },
    })
}

/// Name of a source as stored and exported.
pub fn source_name(s: crate::wire::Source) -> &'static str {
    match s {
        crate::wire::Source::File => "file",
        crate::wire::Source::Relay => "relay",
    }
}

/// Name of an outcome as stored and exported.
pub fn outcome_name(o: crate::wire::Outcome) -> &'static str {
    use crate::wire::Outcome::*;
    match o {
        Aired => "aired",
        Partial => "partial",
        Failed => "failed",
        Missed => "missed",
        Preempted => "preempted",
        Skipped => "skipped",
    }
}

/// The source of a stored name ([`source_name`]).
pub fn parse_source(name: &str) -> Option<Source> {
    match name {
        "file" => Some(Source::File),
        "relay" => Some(Source::Relay),
        _ => None,
    }
}

/// The outcome of a stored name ([`outcome_name`]).
pub fn parse_outcome(name: &str) -> Option<Outcome> {
    use crate::wire::Outcome::*;
    Some(match name {
        "aired" => Aired,
        "partial" => Partial,
        "failed" => Failed,
        "missed" => Missed,
        "preempted" => Preempted,
        "skipped" => Skipped,
        _ => return None,
    })
}

/// Local wall time of a record, for display.
pub fn local(t: &DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A chain of `n` checked records of `station` from `first`, the first linking to `prev`
/// (each the tests' `record(station, seq, variant)`, their hashes made up, `variant` changing
/// the bytes): what `ingest::check_batch` hands the store, for tests of the store and its
/// writer.
#[cfg(test)]
pub(crate) fn test_chain(
    station: &str,
    first: u64,
    n: u64,
    prev: &str,
    variant: u64,
) -> Vec<CheckedRecord> {
    let mut prev = prev.to_string();
    (first..first + n)
        .map(|seq| {
            let mut record = tests::record(station, seq, variant);
            record.prev_hash = prev.clone();
            let hash = format!("{station}-{seq}-{variant}");
            prev = hash.clone();
            CheckedRecord {
                seq,
                hash,
                signature: "sig".into(),
                bytes: serde_json::to_string(&record).unwrap(),
                record,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this run is on SQLite; under `LOA_TEST_DB=postgres` it prints why the calling
    /// test runs on SQLite only.
    fn on_sqlite(test: &str, why: &str) -> bool {
        let sqlite = crate::collector::db::testing::pg_admin_url().is_none();
        if !sqlite {
            println!("{test}: runs on SQLite only ({why})");
        }
        sqlite
    }

    #[test]
    fn a_version_1_database_migrates_and_reports_use_the_station_time_index() {
        if !on_sqlite(
            "a_version_1_database_migrates_and_reports_use_the_station_time_index",
            "it builds a version 1 SQLite file with rusqlite and reads SQLite's query plan; \
             a PostgreSQL database starts at its baseline, version 13",
        ) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO records VALUES ('a', 1, 'h', 'p', 's', '{}', NULL, 'cchc', 'file',
                 'aired', 100, 60.0, 0)",
                rusqlite::params![],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(store.stored_through("a").unwrap(), 1);
        assert_eq!(store.records_between(Some("a"), 0, 200).unwrap().len(), 1);
        store.integrity_check().unwrap();
        let plan: Vec<String> = store
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT station, seq, hash, signature, bytes FROM records
                 WHERE station = ?1 AND scheduled_unix >= ?2 AND scheduled_unix < ?3 ORDER BY seq",
            )
            .unwrap()
            .query_map(params!["a", 0, 200], |r| r.get::<String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("records_by_station_time")),
            "{plan:?}"
        );
        drop(store);
        // A database newer than this build is refused.
        rusqlite::Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    pub(super) fn record(station: &str, seq: u64, variant: u64) -> AiringRecord {
        use chrono::TimeZone;
        let tz = FixedOffset::east_opt(7 * 3600 + 1800 * (variant as i32 % 2)).unwrap();
        let at = tz
            .with_ymd_and_hms(2019, 3, 1 + seq as u32, 5, 30, 0)
            .unwrap();
        let outcome = [Outcome::Aired, Outcome::Missed, Outcome::Partial][variant as usize % 3];
        // Variant 5 is a record of wire version 2 (its code stated), the others version 1.
        let v2 = variant == 5;
        AiringRecord {
            v: if v2 {
                crate::wire::RECORD_VERSION
            } else {
                crate::wire::RECORD_VERSION_V1
            },
            station: station.into(),
            seq,
            occurrence: (variant != 4).then(|| format!("sang@{}", at.to_utc().to_rfc3339())),
            slot: (variant != 4).then(|| "sang".into()),
            program: variant.is_multiple_of(2).then(|| "cchc".into()),
            category: "cchc".into(),
            source: if variant == 3 {
                Source::Relay
            } else {
                Source::File
            },
            scheduled_at: at,
            actual_start: (outcome != Outcome::Missed)
                .then(|| at + chrono::Duration::nanoseconds(1_234_567_891)),
            end: None,
            planned_secs: 600.5,
            aired_secs: 598.25,
            start_offset_ms: (variant != 2).then_some(1_234),
            outcome,
            reason: (outcome != Outcome::Aired).then(|| "mất điện".to_string()),
            reason_code: v2.then_some(ReasonCode::PartialHardStop),
            items: vec![],
            evidence: None,
            relay: None,
            recorded_at: Utc::now(),
            prev_hash: GENESIS_HASH.into(),
            schedule_version: None,
            bulletin: None,
        }
    }

    #[test]
    fn migration_3_fills_the_airing_columns_of_rows_stored_before_it() {
        if !on_sqlite(
            "migration_3_fills_the_airing_columns_of_rows_stored_before_it",
            "it builds a version 2 SQLite file with rusqlite; a PostgreSQL database starts at \
             its baseline, version 13",
        ) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut expected = Vec::new();
        {
            // A database as version 2 left it, with rows written by version 2's insert.
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            for seq in 1..=6 {
                let r = record("a", seq, seq);
                let bytes = serde_json::to_string(&r).unwrap();
                conn.execute(
                    "INSERT INTO records (station, seq, hash, prev_hash, signature, bytes,
                        occurrence, category, source, outcome, scheduled_unix, aired_secs,
                        received_unix)
                     VALUES (?1, ?2, 'h', 'p', 's', ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
                    rusqlite::params![
                        "a",
                        seq as i64,
                        bytes,
                        r.occurrence,
                        r.category,
                        source_name(r.source),
                        outcome_name(r.outcome),
                        r.scheduled_at.timestamp(),
                        r.aired_secs
                    ],
                )
                .unwrap();
                expected.push(AiredAiring::from(&r));
            }
            // A row whose bytes do not parse keeps NULL columns and is still refused as corrupt.
            conn.execute(
                "INSERT INTO records (station, seq, hash, prev_hash, signature, bytes, occurrence,
                    category, source, outcome, scheduled_unix, aired_secs, received_unix)
                 VALUES ('b', 1, 'h', 'p', 's', 'not json', NULL, 'cchc', 'file', 'aired', 100,
                    0.0, 0)",
                rusqlite::params![],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        store.integrity_check().unwrap();
        let filled: i64 = store
            .conn
            .query_row(
                "SELECT COUNT(*) FROM records WHERE scheduled_ns IS NOT NULL",
                params![],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(filled, 6, "every parseable row is filled");
        let got = store.airings_between("a", 0, i64::MAX).unwrap();
        assert_eq!(got, expected);
        // Nothing stored was lost or changed: the bytes are still the records.
        let stored = store.records_between(Some("a"), 0, i64::MAX).unwrap();
        let parsed: Vec<AiredAiring> = stored
            .iter()
            .map(|s| AiredAiring::from(s.parse().unwrap()))
            .collect();
        assert_eq!(parsed, expected);
        assert!(matches!(
            store.airings_between("b", 0, i64::MAX),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn migration_5_codes_the_rows_stored_before_it_as_the_reports_read_them_then() {
        // What a report showed before migration 5: the code classified from the text at read.
        let read_then = |a: &AiredAiring| crate::wire::classify(a.outcome, a.reason.as_deref());
        let phrases = [
            None,
            Some(
                "station was down (last alive 2019-03-01T21:50:00Z, restarted 2019-03-01T23:00:00Z)",
            ),
            Some("station shut down"),
            Some("hard stop at max_secs 900.000"),
            Some("item 1 skipped: a.mp3: not a decodable WAV/MP3/Ogg Vorbis/FLAC file: eof"),
            Some("mất điện"),
            None,
        ];
        if !on_sqlite(
            "migration_5_codes_the_rows_stored_before_it_as_the_reports_read_them_then",
            "it builds a version 4 SQLite file with rusqlite; a PostgreSQL database starts at \
             its baseline, version 13",
        ) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut records = Vec::new();
        {
            // A database as version 4 left it, with rows written by version 4's insert.
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            for (i, phrase) in phrases.iter().enumerate() {
                let seq = i as u64 + 1;
                let mut r = record("a", seq, [0, 1, 2, 2, 2, 1, 1][i]);
                r.reason = phrase.map(str::to_owned);
                let (sched, sched_off, actual, actual_off) = instant_columns(&r).unwrap();
                conn.execute(
                    "INSERT INTO records (station, seq, hash, prev_hash, signature, bytes,
                        occurrence, category, source, outcome, scheduled_unix, aired_secs,
                        received_unix, slot, program, reason, planned_secs, start_offset_ms,
                        scheduled_ns, scheduled_offset_secs, actual_ns, actual_offset_secs)
                     VALUES (?1, ?2, 'h', 'p', 's', ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?12,
                        ?13, ?14, ?15, ?16, ?17, ?18)",
                    rusqlite::params![
                        "a",
                        seq as i64,
                        serde_json::to_string(&r).unwrap(),
                        r.occurrence,
                        r.category,
                        source_name(r.source),
                        outcome_name(r.outcome),
                        r.scheduled_at.timestamp(),
                        r.aired_secs,
                        r.slot,
                        r.program,
                        r.reason,
                        r.planned_secs,
                        r.start_offset_ms,
                        sched,
                        sched_off,
                        actual,
                        actual_off,
                    ],
                )
                .unwrap();
                records.push(r);
            }
            // The last row's columns were never filled: it is coded from its bytes.
            conn.execute(
                "UPDATE records SET scheduled_ns = NULL, reason = NULL WHERE seq = 7",
                rusqlite::params![],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let got = store.airings_between("a", 0, i64::MAX).unwrap();
        let mut got = got.iter().collect::<Vec<_>>();
        got.sort_by_key(|a| a.seq);
        let codes: Vec<Option<ReasonCode>> = got.iter().map(|a| a.reason_code.clone()).collect();
        let then: Vec<Option<ReasonCode>> = records
            .iter()
            .map(|r| read_then(&AiredAiring::from(r)))
            .collect();
        assert_eq!(codes, then);
        use ReasonCode as C;
        assert_eq!(
            codes,
            [
                None,
                Some(C::MissedStationDown),
                Some(C::PartialShutdown),
                Some(C::PartialHardStop),
                Some(C::PartialDecoder),
                Some(C::Unknown),
                Some(C::MissedUnspecified),
            ]
        );
        for r in &records {
            assert_eq!(
                store.reason_code("a", r.seq).unwrap(),
                read_then(&AiredAiring::from(r)),
                "seq {}",
                r.seq
            );
        }
    }

    #[test]
    fn airings_read_from_columns_equal_airings_parsed_from_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::collector::db::testing::test_db(dir.path(), "c.db");
        let store = Store::open(&db).unwrap();
        let mut expected = Vec::new();
        {
            let mut stmt = store.conn.prepare(INSERT_RECORD_SQL).unwrap();
            for seq in 1..=6 {
                let r = record("a", seq, seq);
                let bytes = serde_json::to_string(&r).unwrap();
                insert_record(&mut stmt, "a", "h", "s", &bytes, &r, 0).unwrap();
                expected.push(AiredAiring::from(&r));
            }
        }
        // A row whose columns are not filled is read from its bytes.
        store
            .conn
            .execute(
                "UPDATE records SET scheduled_ns = NULL WHERE seq = 3",
                params![],
            )
            .unwrap();
        assert_eq!(store.airings_between("a", 0, i64::MAX).unwrap(), expected);
        let (from, to) = (
            expected[1].scheduled_at.timestamp(),
            expected[3].scheduled_at.timestamp(),
        );
        assert_eq!(
            store.airings_between("a", from, to).unwrap(),
            expected[1..3].to_vec()
        );
    }

    /// A group of batches — one station's consecutive batches, a batch sent twice, a
    /// conflicting one, a broken chain, a gap filled later, an empty one — is answered exactly
    /// as storing them one after another answers them, and leaves the same rows.
    #[test]
    fn a_group_answers_each_batch_as_storing_them_one_after_another_would() {
        let dir = tempfile::tempdir().unwrap();
        let g = GENESIS_HASH;
        let a1 = test_chain("a", 1, 3, g, 0);
        let a2 = test_chain("a", 4, 2, "a-3-0", 0);
        let b_late = test_chain("b", 5, 2, "b-4-0", 0); // after a gap: seq 3..4 come later
        let b1 = test_chain("b", 1, 2, g, 0);
        let b_gap = test_chain("b", 3, 2, "b-2-0", 0); // fills the gap, links both ways
        let a_conflict = test_chain("a", 5, 1, "a-4-0", 9); // seq 5 again, other bytes
        let c_broken = test_chain("c", 2, 2, "nothing", 0); // seq 1 not stored: accepted
        let c1_wrong = test_chain("c", 1, 1, g, 7); // seq 1 whose hash seq 2 does not link to
        let d_bad_genesis = test_chain("d", 1, 2, "not-genesis", 0);
        let empty: Vec<CheckedRecord> = Vec::new();
        let group: Vec<(&str, &[CheckedRecord])> = vec![
            ("a", &a1),
            ("b", &b_late),
            ("a", &a2),
            ("a", &a1), // sent twice: all duplicates now
            ("b", &b1),
            ("a", &a_conflict),
            ("b", &b_gap),
            ("c", &c_broken),
            ("c", &c1_wrong),
            ("d", &d_bad_genesis),
            ("e", &empty),
            ("a", &a2[1..]), // a duplicate tail
        ];
        let now = Utc::now();
        let mut one = Store::open(&crate::collector::db::testing::test_db(
            dir.path(),
            "one.db",
        ))
        .unwrap();
        let mut grouped = Store::open(&crate::collector::db::testing::test_db(
            dir.path(),
            "grouped.db",
        ))
        .unwrap();
        let show = |o: &StoreOutcome| match o {
            StoreOutcome::Stored(ack) => format!("stored {}", serde_json::to_string(ack).unwrap()),
            StoreOutcome::Conflict(ack) => {
                format!("conflict {}", serde_json::to_string(ack).unwrap())
            }
        };
        let one_by_one: Vec<String> = group
            .iter()
            .map(|(s, r)| show(&one.store_batch(s, r, now).unwrap()))
            .collect();
        let together: Vec<String> = grouped
            .store_batches(&group, now)
            .unwrap()
            .iter()
            .map(show)
            .collect();
        assert_eq!(together, one_by_one);
        // What the scenario means, so the test cannot pass on two equally wrong answers: the
        // answer of batch i starts with the prefix and contains every needle.
        let means: [(usize, &str, &[&str]); 8] = [
            (0, "stored {\"accepted\":[1,2,3]", &[]),
            (3, "", &["\"duplicates\":[1,2,3]"]),
            (5, "conflict", &["refused.conflict"]),
            (6, "", &["\"accepted\":[3,4]", "\"stored_through\":6"]),
            (8, "conflict", &["refused.chain"]),
            (9, "conflict", &[]),
            (10, "stored {\"accepted\":[],", &[]),
            (11, "", &["\"duplicates\":[5]"]),
        ];
        for (i, prefix, needles) in means {
            let answer = &one_by_one[i];
            assert!(
                answer.starts_with(prefix) && needles.iter().all(|n| answer.contains(n)),
                "batch {i}: {answer}"
            );
        }
        let rows = |s: &Store| {
            s.conn
                .query_map(
                    "SELECT station, seq, hash FROM records ORDER BY station, seq",
                    params![],
                    |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?)),
                )
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        };
        assert_eq!(rows(&grouped), rows(&one));
        assert_eq!(rows(&one).len(), 5 + 6 + 2);
    }

    #[test]
    fn pg_migrations_reach_the_same_version() {
        assert_eq!(
            PG_BASELINE_VERSION + PG_MIGRATIONS.len() as i64,
            SCHEMA_VERSION,
            "a migration added to MIGRATIONS needs its PostgreSQL twin in PG_MIGRATIONS"
        );
    }

    /// Two replicas starting together on one empty PostgreSQL database: one builds the schema
    /// under the migration lock, the other waits for it and finds it built; neither fails.
    #[test]
    fn two_replicas_opening_one_postgres_database_at_once_both_start_at_the_current_version() {
        if crate::collector::db::testing::pg_admin_url().is_none() {
            println!(
                "two_replicas_opening_one_postgres_database_at_once_both_start_at_the_current_version: \
                 runs on PostgreSQL only (LOA_TEST_DB=postgres): replicas share a PostgreSQL \
                 database, a SQLite file has one collector"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for round in 0..3 {
            let url = crate::collector::db::testing::test_db(dir.path(), "c.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(2));
            let replicas: Vec<_> = (0..2)
                .map(|_| {
                    let (url, start) = (url.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let store = Store::open(&url)?;
                        store.schema_version()
                    })
                })
                .collect();
            for replica in replicas {
                let version = replica.join().unwrap();
                assert_eq!(
                    version.unwrap_or_else(|e| panic!("round {round}: {e}")),
                    SCHEMA_VERSION,
                    "round {round}"
                );
            }
            // A third open finds the schema current, with its one version row.
            let store = Store::open(&url).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            let versions: i64 = store
                .conn
                .query_row("SELECT COUNT(*) FROM loa_schema", params![], |r| r.get(0))
                .unwrap();
            assert_eq!(versions, 1, "round {round}: the schema was built once");
        }
    }
}
