//! The `schedule_versions` table: append-only rows, numbered per document.
//!
//! **Invariant:** a version is inserted only inside the caller's transaction, numbered one more
//! than the document's latest ([`super::core::next_version`]); rows are never updated or
//! deleted (the table's triggers refuse it).

use crate::collector::db::{Conn, OptionalExtension, params};
use chrono::{DateTime, TimeZone, Utc};

/// A stored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// A station id, or [`super::core::PROGRAMS_DOC`].
    pub doc: String,
    pub version: u64,
    /// The text as saved (what the editor shows).
    pub text: String,
    pub sha256: String,
    /// The text the station receives (with the shared programs it uses).
    pub merged_text: String,
    pub merged_sha256: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub note: String,
    /// Start of its validity: from this instant it is the document's version in force (until
    /// the next version's `published_at`).
    pub published_at: DateTime<Utc>,
    /// The earlier version whose text this one restores (a rollback).
    pub rollback_of: Option<u64>,
    /// The shared programs version merged into `merged_text`, if any.
    pub programs_version: Option<u64>,
}

fn ms(t: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t).single().unwrap_or_default()
}

const COLUMNS: &str = "doc, version, text, sha256, merged_text, merged_sha256, author, \
     created_unix_ms, note, published_unix_ms, rollback_of, programs_version";

fn row(r: &crate::collector::db::Row<'_>) -> Result<Version, crate::collector::db::DbError> {
    Ok(Version {
        doc: r.get(0)?,
        version: r.get::<i64>(1)? as u64,
        text: r.get(2)?,
        sha256: r.get(3)?,
        merged_text: r.get(4)?,
        merged_sha256: r.get(5)?,
        author: r.get(6)?,
        created_at: ms(r.get(7)?),
        note: r.get(8)?,
        published_at: ms(r.get(9)?),
        rollback_of: r.get::<Option<i64>>(10)?.map(|v| v as u64),
        programs_version: r.get::<Option<i64>>(11)?.map(|v| v as u64),
    })
}

/// The latest version number of `doc`.
pub fn latest_number(conn: &Conn, doc: &str) -> Result<Option<u64>, crate::collector::db::DbError> {
    conn.query_row(
        "SELECT MAX(version) FROM schedule_versions WHERE doc = ?1",
        params![doc],
        |r| r.get::<Option<i64>>(0),
    )
    .map(|v| v.map(|n| n as u64))
}

/// Insert `v` as `doc`'s next version (its `version` field is ignored); returns the number.
/// Call inside a transaction that also holds the read of the latest number.
pub fn insert_next(conn: &Conn, v: &Version) -> Result<u64, crate::collector::db::DbError> {
    let n = super::core::next_version(latest_number(conn, &v.doc)?);
    conn.execute(
        &format!("INSERT INTO schedule_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            v.doc,
            n as i64,
            v.text,
            v.sha256,
            v.merged_text,
            v.merged_sha256,
            v.author,
            v.created_at.timestamp_millis(),
            v.note,
            v.published_at.timestamp_millis(),
            v.rollback_of.map(|x| x as i64),
            v.programs_version.map(|x| x as i64),
        ],
    )?;
    Ok(n)
}

/// Version `n` of `doc`.
pub fn get(
    conn: &Conn,
    doc: &str,
    n: u64,
) -> Result<Option<Version>, crate::collector::db::DbError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM schedule_versions WHERE doc = ?1 AND version = ?2"),
        params![doc, n as i64],
        row,
    )
    .optional()
}

/// The latest version of `doc`.
pub fn latest(conn: &Conn, doc: &str) -> Result<Option<Version>, crate::collector::db::DbError> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM schedule_versions WHERE doc = ?1 ORDER BY version DESC LIMIT 1"
        ),
        params![doc],
        row,
    )
    .optional()
}

/// Every version of `doc`, newest first.
pub fn list(conn: &Conn, doc: &str) -> Result<Vec<Version>, crate::collector::db::DbError> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM schedule_versions WHERE doc = ?1 ORDER BY version DESC"
    ))?;
    st.query_map(params![doc], row)?.collect()
}

/// The latest version of every station (not the shared programs), by station id.
pub fn latest_all(conn: &Conn) -> Result<Vec<(String, u64)>, crate::collector::db::DbError> {
    let mut st = conn.prepare(
        "SELECT doc, MAX(version) FROM schedule_versions WHERE doc NOT LIKE ':%' GROUP BY doc",
    )?;
    st.query_map(params![], |r| Ok((r.get(0)?, r.get::<i64>(1)? as u64)))?
        .collect()
}

/// Every version of `doc` with its activation (`published_at`), in number order.
pub fn activations(
    conn: &Conn,
    doc: &str,
) -> Result<Vec<super::core::Activation>, crate::collector::db::DbError> {
    let mut st = conn.prepare_cached(
        "SELECT version, published_unix_ms FROM schedule_versions WHERE doc = ?1 ORDER BY version",
    )?;
    st.query_map(params![doc], |r| {
        Ok(super::core::Activation {
            version: r.get::<i64>(0)? as u64,
            at: ms(r.get(1)?),
        })
    })?
    .collect()
}

/// The activations of every station's versions (not the shared programs), by station id.
pub fn activations_all(
    conn: &Conn,
) -> Result<
    std::collections::HashMap<String, Vec<super::core::Activation>>,
    crate::collector::db::DbError,
> {
    let mut st = conn.prepare(
        "SELECT doc, version, published_unix_ms FROM schedule_versions \
         WHERE doc NOT LIKE ':%' ORDER BY doc, version",
    )?;
    let mut out: std::collections::HashMap<String, Vec<super::core::Activation>> =
        std::collections::HashMap::new();
    let rows = st.query_map(params![], |r| {
        Ok((
            r.get::<String>(0)?,
            super::core::Activation {
                version: r.get::<i64>(1)? as u64,
                at: ms(r.get(2)?),
            },
        ))
    })?;
    for row in rows {
        let (doc, a) = row?;
        out.entry(doc).or_default().push(a);
    }
    Ok(out)
}
