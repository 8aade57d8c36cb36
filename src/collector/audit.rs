//! The audit log: who did what, when, from where, and what it was before and after — for every
//! write (users, tokens, logins and logouts, failed logins, station registrations).
//!
//! **Invariant:** the log is append-only: [`record`] only inserts, and the database itself refuses
//! UPDATE and DELETE on the table (triggers of migration 6), so no code path, this one included,
//! can rewrite history. No secret is ever written to it: a password, session id or token never
//! appears in `before`/`after` (callers pass descriptions such as the role or the token's label).

use crate::collector::db::{Conn, params};
use chrono::{DateTime, Utc};

/// The address recorded for commands run on the collector host (`loa user`, `loa register`,
/// `loa up`).
pub const HOST_ADDRESS: &str = "máy chủ";

/// Actions recorded (codes stored; [`action_vi`] gives the Vietnamese text).
pub mod action {
    pub const LOGIN: &str = "login";
    pub const LOGIN_FAILED: &str = "login_failed";
    pub const LOGOUT: &str = "logout";
    pub const USER_ADD: &str = "user_add";
    pub const USER_PASSWD: &str = "user_passwd";
    pub const USER_DISABLE: &str = "user_disable";
    pub const USER_ENABLE: &str = "user_enable";
    pub const TOKEN_CREATE: &str = "token_create";
    pub const TOKEN_REVOKE: &str = "token_revoke";
    pub const STATION_REGISTER: &str = "station_register";
    pub const CONTENT_UPLOAD: &str = "content_upload";
    pub const LIBRARY_PATH_SET: &str = "library_path_set";
    /// An admin created a centre-managed station (`collector::enrolment`).
    pub const STATION_CREATE: &str = "station_create";
    /// An enrolment code was issued for a station (the code itself is never logged).
    pub const ENROLMENT_CODE: &str = "enrolment_code";
    /// A station box enrolled with a code (its key registered).
    pub const ENROL: &str = "enrol";
    /// An enrolment was refused (wrong, used or expired code; a key in use).
    pub const ENROL_REFUSED: &str = "enrol_refused";
}

/// The Vietnamese text of an action code (the code itself when unknown).
pub fn action_vi(code: &str) -> &str {
    match code {
        action::LOGIN => "Đăng nhập",
        action::LOGIN_FAILED => "Đăng nhập thất bại",
        action::LOGOUT => "Đăng xuất",
        action::USER_ADD => "Thêm người dùng",
        action::USER_PASSWD => "Đổi mật khẩu",
        action::USER_DISABLE => "Khóa người dùng",
        action::USER_ENABLE => "Mở khóa người dùng",
        action::TOKEN_CREATE => "Tạo mã truy cập",
        action::TOKEN_REVOKE => "Thu hồi mã truy cập",
        action::STATION_REGISTER => "Đăng ký trạm",
        super::versions::action::SCHEDULE_PUBLISH => "Phát hành lịch phát",
        super::versions::action::SCHEDULE_ROLLBACK => "Khôi phục lịch phát",
        super::versions::action::PROGRAMS_PUBLISH => "Phát hành chương trình chung",
        action::CONTENT_UPLOAD => "Tải tệp lên thư viện",
        action::LIBRARY_PATH_SET => "Đặt tệp vào lịch phát",
        action::STATION_CREATE => "Tạo trạm",
        action::ENROLMENT_CODE => "Cấp mã ghi danh",
        action::ENROL => "Ghi danh trạm",
        action::ENROL_REFUSED => "Từ chối ghi danh",
        super::bulletins::action::SEND => "Gửi bản tin",
        super::bulletins::action::CANCEL => "Hủy bản tin",
        other => other,
    }
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: DateTime<Utc>,
    /// The user name, `loa user` / `loa register` for the command line (with the OS user), or
    /// `admin-token` for the deprecated shared token.
    pub actor: String,
    /// The remote address, or `máy chủ` (the collector host) for commands.
    pub address: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// How a station's registry entry is described in the log (its key in full: that is what
/// a registration changes).
pub fn describe_station(e: &super::registry::StationEntry) -> String {
    format!(
        "tên: {}; mã vùng: {}; khóa: {}",
        e.name, e.area_code, e.public_key
    )
}

/// Append `e`.
pub fn record(conn: &Conn, e: &Entry) -> Result<(), crate::collector::db::DbError> {
    conn.execute(
        "INSERT INTO audit_log (at_unix_ms, actor, address, action, target, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.at.timestamp_millis(),
            e.actor,
            e.address,
            e.action,
            e.target,
            e.before,
            e.after
        ],
    )?;
    Ok(())
}

/// Entries newest first, `limit` of them from `offset`.
pub fn list(
    conn: &Conn,
    limit: usize,
    offset: usize,
) -> Result<Vec<Entry>, crate::collector::db::DbError> {
    let mut stmt = conn.prepare(
        "SELECT at_unix_ms, actor, address, action, target, before, after FROM audit_log
         ORDER BY id DESC LIMIT ?1 OFFSET ?2",
    )?;
    let rows = stmt
        .query_map(params![limit as i64, offset as i64], |r| {
            Ok(Entry {
                at: DateTime::from_timestamp_millis(r.get(0)?).unwrap_or_default(),
                actor: r.get(1)?,
                address: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                before: r.get(5)?,
                after: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Number of entries.
pub fn count(conn: &Conn) -> Result<usize, crate::collector::db::DbError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM audit_log", params![], |r| r.get(0))?;
    Ok(n as usize)
}

/// The instant as office people read it: dd/mm/yyyy HH:MM:SS in the reports' time zone.
pub fn when_vi(at: DateTime<Utc>) -> String {
    at.with_timezone(&super::status::report_offset())
        .format("%d/%m/%Y %H:%M:%S")
        .to_string()
}

/// The CSV export (UTF-8 with BOM so spreadsheet programs read the Vietnamese right; headers
/// in Vietnamese; dates dd/mm/yyyy; the action in Vietnamese with its code beside it).
pub fn csv(entries: &[Entry]) -> String {
    fn cell(s: &str) -> String {
        // A leading = + - @ would make a spreadsheet run it as a formula: quote it as text.
        let guarded = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        format!("\"{}\"", guarded.replace('"', "\"\""))
    }
    let mut out = String::from("\u{feff}");
    out.push_str(
        "Thời gian,Người thực hiện,Địa chỉ,Hành động,Mã hành động,Đối tượng,Trước,Sau\r\n",
    );
    for e in entries {
        let row = [
            when_vi(e.at),
            e.actor.clone(),
            e.address.clone(),
            action_vi(&e.action).to_string(),
            e.action.clone(),
            e.target.clone(),
            e.before.clone().unwrap_or_default(),
            e.after.clone().unwrap_or_default(),
        ];
        out.push_str(&row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_log_refuses_update_and_delete_even_by_hand() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = crate::collector::db::testing::test_db(dir.path(), "c.db");
        let c = crate::collector::store::Store::open(&db)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_connection();
        let e = Entry {
            at: Utc.with_ymd_and_hms(2026, 12, 4, 1, 2, 3).unwrap(),
            actor: "lan".into(),
            address: "10.0.0.5".into(),
            action: action::USER_ADD.into(),
            target: "op".into(),
            before: None,
            after: Some("vai trò: Vận hành trạm".into()),
        };
        record(&c, &e).unwrap();
        let upd = c.execute("UPDATE audit_log SET actor = 'ai-do'", params![]);
        assert!(upd.is_err_and(|e| e.to_string().contains("append-only")));
        let del = c.execute("DELETE FROM audit_log", params![]);
        assert!(del.is_err_and(|e| e.to_string().contains("append-only")));
        assert_eq!(list(&c, 10, 0).unwrap(), vec![e.clone()]);
        let text = csv(&[e]);
        assert!(
            text.starts_with("\u{feff}Thời gian,Người thực hiện"),
            "{text}"
        );
        assert!(text.contains("\"04/12/2026 08:02:03\""), "{text}");
        assert!(text.contains("\"Thêm người dùng\",\"user_add\""), "{text}");
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        let e = Entry {
            at: Utc.with_ymd_and_hms(2026, 12, 4, 1, 2, 3).unwrap(),
            actor: "=HYPERLINK(\"x\")".into(),
            address: "a".into(),
            action: "login_failed".into(),
            target: "t".into(),
            before: None,
            after: None,
        };
        assert!(csv(&[e]).contains("\"'=HYPERLINK(\"\"x\"\")\""));
    }
}
