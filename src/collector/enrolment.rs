//! Enrolment in one step: an admin creates a centre-managed station (id, name, area code, kind,
//! the operators who manage it) on the page `/admin/stations` or through
//! `POST /api/v1/admin/enrolments`, and gets a one-time enrolment code; on the station box
//! `loa enrol --collector URL --code CODE` posts the code with the box's new public key to
//! `POST /api/v1/enrol`, which registers the key (through [`super::registry::enrol`], the very
//! function behind `loa register`, so the entry has the same canonical stored form) and answers
//! the station's identity.
//!
//! **Invariant:** a code is 120 bits from the operating system's CSPRNG, shown once (in the
//! answer to the request that made it) and stored only as the SHA-256 of its bytes; it is
//! redeemed at most once and only before it expires: the check, the registry write and the
//! mark "used" happen in one `BEGIN IMMEDIATE` transaction, and a code is marked used only once
//! the key is in the registry. A wrong, used or expired code gets one and the same answer (403,
//! [`ReasonCode::EnrolmentBadCode`]); failures are throttled per address; creating a station,
//! issuing a code, an enrolment and every refused one are in the audit log — never the code.

use crate::collector::db::{Conn, OptionalExtension, params};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::LazyLock;

use super::audit::{self, action};
use super::authz::{self, MAX_FAILURES_PER_ADDRESS, Principal};
use super::http::AppState;
use super::registry::{self, RawStation, Registry};
use crate::reason::ReasonCode;

/// Random bytes of a code: 120 bits, 24 Crockford base32 characters, six groups of four.
pub const CODE_BYTES: usize = 15;
/// Characters per group when a code is shown.
pub const CODE_GROUP_CHARS: usize = 4;
/// Default life of a code: 72 hours (time to carry it to the ward and set the box up).
pub const DEFAULT_CODE_TTL_SECS: i64 = 72 * 3600;
/// Shortest life a code may be given (scripts and tests; the page offers hours).
pub const MIN_CODE_TTL_SECS: i64 = 1;
/// Longest life a code may be given: 30 days.
pub const MAX_CODE_TTL_SECS: i64 = 30 * 24 * 3600;
/// Longest station name, characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest administrative area code, digits.
pub const MAX_AREA_CODE_DIGITS: usize = 10;
/// Largest body of the enrolment and admin requests (a code, a key, a few names).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Crockford's base32: no I, L, O, U; reading forgives case and the look-alikes (I, L → 1;
/// O → 0) and ignores the group dashes and spaces.
static CROCKFORD: LazyLock<Result<data_encoding::Encoding, String>> = LazyLock::new(|| {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("0123456789ABCDEFGHJKMNPQRSTVWXYZ");
    spec.translate.from.push_str("abcdefghjkmnpqrstvwxyzIiLlOo");
    spec.translate.to.push_str("ABCDEFGHJKMNPQRSTVWXYZ111100");
    spec.ignore.push_str("- ");
    spec.encoding().map_err(|e| e.to_string())
});

fn crockford() -> Result<&'static data_encoding::Encoding, EnrolmentError> {
    CROCKFORD
        .as_ref()
        .map_err(|e| EnrolmentError::Internal(format!("the base32 alphabet: {e}")))
}

/// A code as people read and type it: `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`.
pub fn format_code(bytes: &[u8; CODE_BYTES]) -> Result<String, EnrolmentError> {
    let text = crockford()?.encode(bytes);
    Ok(text
        .as_bytes()
        .chunks(CODE_GROUP_CHARS)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The bytes of a typed code (any case, dashes or spaces anywhere, I/L/O for 1/1/0), or `None`
/// when it is not a code at all.
pub fn parse_code(text: &str) -> Option<[u8; CODE_BYTES]> {
    let bytes = crockford().ok()?.decode(text.trim().as_bytes()).ok()?;
    bytes.try_into().ok()
}

/// What is stored of a code: the SHA-256 of its bytes, in hex.
pub fn code_sha256(bytes: &[u8; CODE_BYTES]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A station's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The city's own station (trạm thành phố).
    City,
    /// A ward's or commune's station (trạm phường/xã).
    Ward,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Ward, Kind::City];

    pub fn code(self) -> &'static str {
        match self {
            Kind::City => "city",
            Kind::Ward => "ward",
        }
    }

    pub fn label_vi(self) -> &'static str {
        match self {
            Kind::City => "Trạm thành phố",
            Kind::Ward => "Trạm phường/xã",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == s.trim())
    }
}

/// Why a redemption was refused, for the audit log only (the requester is told none of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadCodeWhy {
    /// No such code (or not a code at all).
    Unknown,
    /// Used already.
    Used,
    /// Past its expiry.
    Expired,
}

impl BadCodeWhy {
    pub fn label_vi(self) -> &'static str {
        match self {
            BadCodeWhy::Unknown => "mã không tồn tại",
            BadCodeWhy::Used => "mã đã được dùng",
            BadCodeWhy::Expired => "mã đã hết hạn",
        }
    }
}

/// Errors of enrolment; the texts are what the admin or the station box is shown.
#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    #[error("Mã trạm «{0}» không hợp lệ: 1–64 ký tự a-z, 0-9, '-', '_', '.'")]
    InvalidId(String),
    #[error("Tên trạm không được để trống và dài tối đa {MAX_NAME_CHARS} ký tự")]
    InvalidName,
    #[error(
        "Mã đơn vị hành chính «{0}» không hợp lệ: chỉ gồm chữ số, từ 1 đến {MAX_AREA_CODE_DIGITS} chữ số"
    )]
    InvalidAreaCode(String),
    #[error("Loại trạm «{0}» không hợp lệ: «ward» (trạm phường/xã) hoặc «city» (trạm thành phố)")]
    InvalidKind(String),
    #[error(
        "Thời hạn của mã phải từ {MIN_CODE_TTL_SECS} đến {MAX_CODE_TTL_SECS} giây (đã nhập {0})"
    )]
    InvalidTtl(i64),
    #[error("Không có tài khoản vận hành «{0}» đang hoạt động (chỉ giao trạm cho người vận hành)")]
    UnknownOperator(String),
    #[error("Trạm «{0}» đã có; để cấp mã ghi danh mới, dùng nút «Cấp mã mới» của trạm đó")]
    Exists(String),
    #[error("Không có trạm do trung tâm quản lý mang mã «{0}»")]
    UnknownStation(String),
    #[error("{}", ReasonCode::EnrolmentBadCode.vi())]
    BadCode {
        why: BadCodeWhy,
        station: Option<String>,
    },
    #[error("{}", ReasonCode::EnrolmentKeyInUse.vi())]
    KeyInUse { station: String, holder: String },
    #[error("Khóa công khai không hợp lệ: {0}")]
    BadKey(String),
    #[error("lỗi cơ sở dữ liệu: {0}")]
    Db(#[from] crate::collector::db::DbError),
    #[error("không ghi được sổ đăng ký trạm: {0}")]
    Registry(String),
    #[error("lỗi nội bộ: {0}")]
    Internal(String),
}

impl EnrolmentError {
    /// Whether the request is at fault (the caller's to fix), not the collector.
    fn is_input(&self) -> bool {
        !matches!(
            self,
            EnrolmentError::Db(_) | EnrolmentError::Registry(_) | EnrolmentError::Internal(_)
        )
    }
}

/// A station to create, as the page's form or `POST /api/v1/admin/enrolments` gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStation {
    pub id: String,
    pub name: String,
    pub area_code: String,
    /// `ward` or `city`.
    pub kind: String,
    /// Operator accounts that manage it.
    #[serde(default)]
    pub operators: Vec<String>,
    /// Life of the code, seconds (default [`DEFAULT_CODE_TTL_SECS`]).
    #[serde(default)]
    pub expires_secs: Option<i64>,
}

/// A code just issued (the only time its text exists outside the requester).
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub station: String,
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

/// A station just enrolled.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    pub station: String,
    pub name: String,
    pub area_code: String,
    pub kind: String,
}

/// A centre-managed station as the admin page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Managed {
    pub id: String,
    pub name: String,
    pub area_code: String,
    pub kind: String,
    pub kind_vi: String,
    pub operators: Vec<String>,
    pub created_by: String,
    pub created_unix_ms: i64,
    pub enrolled_unix_ms: Option<i64>,
    /// The newest code: its expiry and when it was used.
    pub code_expires_unix_ms: Option<i64>,
    pub code_used_unix_ms: Option<i64>,
}

fn check_ttl(secs: Option<i64>) -> Result<i64, EnrolmentError> {
    let s = secs.unwrap_or(DEFAULT_CODE_TTL_SECS);
    if (MIN_CODE_TTL_SECS..=MAX_CODE_TTL_SECS).contains(&s) {
        Ok(s)
    } else {
        Err(EnrolmentError::InvalidTtl(s))
    }
}

/// Checks of a new station that need no database; returns its kind and the code's life.
pub fn validate(new: &NewStation) -> Result<(Kind, i64), EnrolmentError> {
    if !registry::valid_station_id(&new.id) {
        return Err(EnrolmentError::InvalidId(new.id.chars().take(80).collect()));
    }
    let name = new.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(EnrolmentError::InvalidName);
    }
    let area = new.area_code.trim();
    if area.is_empty()
        || area.len() > MAX_AREA_CODE_DIGITS
        || !area.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(EnrolmentError::InvalidAreaCode(
            area.chars().take(40).collect(),
        ));
    }
    let kind = Kind::parse(&new.kind)
        .ok_or_else(|| EnrolmentError::InvalidKind(new.kind.chars().take(40).collect()))?;
    Ok((kind, check_ttl(new.expires_secs)?))
}

/// A fresh code for `station` in `tx`, valid for `ttl_secs` from `now`.
fn insert_code(
    tx: &crate::collector::db::Tx<'_>,
    station: &str,
    ttl_secs: i64,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Issued, EnrolmentError> {
    let mut bytes = [0u8; CODE_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| EnrolmentError::Internal(format!("the operating system's CSPRNG: {e}")))?;
    let expires_at = now + chrono::Duration::seconds(ttl_secs);
    tx.execute(
        "INSERT INTO enrolment_codes
           (code_sha256, station, created_by, created_unix_ms, expires_unix_ms, used_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
        params![
            code_sha256(&bytes),
            station,
            actor,
            now.timestamp_millis(),
            expires_at.timestamp_millis()
        ],
    )?;
    Ok(Issued {
        station: station.to_string(),
        code: format_code(&bytes)?,
        expires_at,
    })
}

/// Create the managed station `new` (refused when the id is taken here or in `registry`), give
/// it to its operators, and issue its first code; all in one transaction.
pub fn create_station(
    conn: &mut Conn,
    registry: &Registry,
    new: &NewStation,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Issued, EnrolmentError> {
    let (kind, ttl) = validate(new)?;
    if registry.get(&new.id).is_some() {
        return Err(EnrolmentError::Exists(new.id.clone()));
    }
    let tx = conn.transaction_immediate()?;
    let taken: Option<String> = tx
        .query_row(
            "SELECT id FROM managed_stations WHERE id = ?1",
            params![&new.id],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(EnrolmentError::Exists(new.id.clone()));
    }
    tx.execute(
        "INSERT INTO managed_stations (id, name, area_code, kind, created_by, created_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            new.id,
            new.name.trim(),
            new.area_code.trim(),
            kind.code(),
            actor,
            now.timestamp_millis()
        ],
    )?;
    for name in &new.operators {
        let user: Option<i64> = tx
            .query_row(
                "SELECT id FROM users WHERE name = ?1 AND role = 'operator' AND disabled = 0",
                params![name.trim()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(user) = user else {
            return Err(EnrolmentError::UnknownOperator(
                name.chars().take(64).collect(),
            ));
        };
        tx.execute(
            "INSERT INTO user_stations (user_id, station) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![user, new.id],
        )?;
    }
    let issued = insert_code(&tx, &new.id, ttl, actor, now)?;
    tx.commit()?;
    Ok(issued)
}

/// A new code for the managed station `station` (a lost or expired one; or a replacement box):
/// its earlier unused codes end now.
pub fn reissue(
    conn: &mut Conn,
    station: &str,
    ttl_secs: Option<i64>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Issued, EnrolmentError> {
    let ttl = check_ttl(ttl_secs)?;
    let tx = conn.transaction_immediate()?;
    let known: Option<String> = tx
        .query_row(
            "SELECT id FROM managed_stations WHERE id = ?1",
            params![station],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_none() {
        return Err(EnrolmentError::UnknownStation(
            station.chars().take(80).collect(),
        ));
    }
    tx.execute(
        "UPDATE enrolment_codes
         SET expires_unix_ms = CASE WHEN expires_unix_ms < ?2 THEN expires_unix_ms ELSE ?2 END
         WHERE station = ?1 AND used_unix_ms IS NULL",
        params![station, now.timestamp_millis()],
    )?;
    let issued = insert_code(&tx, station, ttl, actor, now)?;
    tx.commit()?;
    Ok(issued)
}

/// Redeem `code` for `public_key`: the station's key is written to the registry file at
/// `registry_path` (created when missing) and the code marked used, or nothing changes.
pub fn redeem(
    conn: &mut Conn,
    registry_path: &Path,
    code: &str,
    public_key: &str,
    now: DateTime<Utc>,
) -> Result<Enrolled, EnrolmentError> {
    let key = crate::wire::decode_public_key(public_key.trim())
        .map_err(|e| EnrolmentError::BadKey(e.to_string()))?;
    let Some(bytes) = parse_code(code) else {
        return Err(EnrolmentError::BadCode {
            why: BadCodeWhy::Unknown,
            station: None,
        });
    };
    let sha = code_sha256(&bytes);
    let tx = conn.transaction_immediate()?;
    let row: Option<(String, i64, Option<i64>, String, String, String)> = tx
        .query_row(
            "SELECT c.station, c.expires_unix_ms, c.used_unix_ms, m.name, m.area_code, m.kind
             FROM enrolment_codes c JOIN managed_stations m ON m.id = c.station
             WHERE c.code_sha256 = ?1",
            params![&sha],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?;
    let Some((station, expires, used, name, area_code, kind)) = row else {
        return Err(EnrolmentError::BadCode {
            why: BadCodeWhy::Unknown,
            station: None,
        });
    };
    let refuse = |why| EnrolmentError::BadCode {
        why,
        station: Some(station.clone()),
    };
    if used.is_some() {
        return Err(refuse(BadCodeWhy::Used));
    }
    if expires <= now.timestamp_millis() {
        return Err(refuse(BadCodeWhy::Expired));
    }
    // One key, one station: a key another station signs with would let either box speak for
    // the other (a data directory copied between boxes, or a key taken from one).
    let (current, _) = Registry::load_or_empty(registry_path)
        .map_err(|e| EnrolmentError::Registry(e.to_string()))?;
    if let Some(holder) = current
        .stations
        .values()
        .find(|e| e.id != station && e.key.as_bytes() == key.as_bytes())
    {
        return Err(EnrolmentError::KeyInUse {
            station,
            holder: holder.id.clone(),
        });
    }
    let entry = RawStation {
        id: station.clone(),
        name: name.clone(),
        area_code: area_code.clone(),
        public_key: public_key.trim().to_string(),
        schedule: None,
        audio_root: None,
    };
    registry::enrol(registry_path, &entry, &[], now.date_naive())
        .map_err(|e| EnrolmentError::Registry(e.to_string()))?;
    // The key is in the registry: only now is the code spent. (Were the commit to fail, the
    // code stays unused and redeeming it again writes the same entry.)
    let changed = tx.execute(
        "UPDATE enrolment_codes SET used_unix_ms = ?2 WHERE code_sha256 = ?1 AND used_unix_ms IS NULL",
        params![sha, now.timestamp_millis()],
    )?;
    if changed != 1 {
        return Err(EnrolmentError::Internal(
            "the code changed under an immediate transaction".into(),
        ));
    }
    tx.execute(
        "UPDATE managed_stations SET enrolled_unix_ms = ?2 WHERE id = ?1",
        params![station, now.timestamp_millis()],
    )?;
    tx.commit()?;
    Ok(Enrolled {
        station,
        name,
        area_code,
        kind,
    })
}

/// Every managed station, by id, with its operators and newest code.
pub fn list(conn: &Conn) -> Result<Vec<Managed>, EnrolmentError> {
    let mut stmt = conn.prepare(
        "SELECT m.id, m.name, m.area_code, m.kind, m.created_by, m.created_unix_ms,
                m.enrolled_unix_ms,
                (SELECT c.expires_unix_ms FROM enrolment_codes c WHERE c.station = m.id
                 ORDER BY c.created_unix_ms DESC LIMIT 1),
                (SELECT c.used_unix_ms FROM enrolment_codes c WHERE c.station = m.id
                 ORDER BY c.created_unix_ms DESC LIMIT 1)
         FROM managed_stations m ORDER BY m.id",
    )?;
    let mut ops = conn.prepare(
        "SELECT u.name FROM user_stations s JOIN users u ON u.id = s.user_id
         WHERE s.station = ?1 AND u.role = 'operator' ORDER BY u.name",
    )?;
    let rows = stmt
        .query_map(params![], |r| {
            let kind: String = r.get(3)?;
            Ok(Managed {
                id: r.get(0)?,
                name: r.get(1)?,
                area_code: r.get(2)?,
                kind_vi: Kind::parse(&kind).map_or(kind.clone(), |k| k.label_vi().to_string()),
                kind,
                operators: Vec::new(),
                created_by: r.get(4)?,
                created_unix_ms: r.get(5)?,
                enrolled_unix_ms: r.get(6)?,
                code_expires_unix_ms: r.get(7)?,
                code_used_unix_ms: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|mut m| {
            m.operators = ops
                .query_map(params![&m.id], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(m)
        })
        .collect()
}

/// How a managed station is described in the audit log.
fn describe(new: &NewStation, kind: Kind) -> String {
    let mut s = format!(
        "tên: {}; mã vùng: {}; loại: {}",
        new.name.trim(),
        new.area_code.trim(),
        kind.label_vi()
    );
    if !new.operators.is_empty() {
        s.push_str(&format!("; người vận hành: {}", new.operators.join(", ")));
    }
    s
}

fn when_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(audit::when_vi)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// HTTP: the admin's API and page, and the station box's redemption.

/// The body of `POST /api/v1/enrol`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub code: String,
    pub public_key: String,
}

/// The answer to a successful `POST /api/v1/enrol`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrolAnswer {
    pub station: String,
    pub name: String,
    pub area_code: String,
    pub kind: String,
    /// What `GET /api/v1/centre` answers: `{"key": <current centre public key>, "rotations":
    /// [...]}`, for the box to pin (`centre::pin::pin_first`); null when this collector runs
    /// without a centre key.
    pub centre: Option<serde_json::Value>,
}

fn json_error(status: StatusCode, code: Option<ReasonCode>, en: &str, vi: &str) -> Response {
    let mut body = json!({ "error": en, "error_vi": vi });
    if let Some(c) = code {
        body["code"] = json!(c.as_str());
    }
    (status, axum::Json(body)).into_response()
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                &format!("body larger than {MAX_BODY_BYTES} bytes"),
                "Dữ liệu gửi lên quá lớn",
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        json_error(
            StatusCode::BAD_REQUEST,
            None,
            &format!("malformed JSON body: {e}"),
            &format!("Dữ liệu gửi lên sai định dạng: {e}"),
        )
    })
}

/// Create a station and its code; the audit entries; the code or why not.
async fn create(
    state: &AppState,
    who: &Principal,
    address: &str,
    new: NewStation,
) -> Result<Issued, EnrolmentError> {
    let (kind, _) = validate(&new)?;
    let registry = state.registry();
    let (actor, now, n) = (who.user.name.clone(), state.now(), new.clone());
    let issued = state
        .auth()
        .with(move |c| create_station(c, &registry, &n, &actor, now))
        .await
        .map_err(|e| EnrolmentError::Internal(format!("{e:?}")))??;
    let mut e = state.audit_entry(&who.user.name, address, action::STATION_CREATE, &new.id);
    e.after = Some(describe(&new, kind));
    state.audit(e).await;
    let mut e = state.audit_entry(&who.user.name, address, action::ENROLMENT_CODE, &new.id);
    e.after = Some(format!("hết hạn lúc {}", audit::when_vi(issued.expires_at)));
    state.audit(e).await;
    Ok(issued)
}

async fn post_admin_enrolments(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    req: Request,
) -> Response {
    let address = authz::address(req.extensions());
    let new: NewStation = match read_json(req.into_body()).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    match create(&state, &who, &address, new).await {
        Ok(issued) => (StatusCode::CREATED, axum::Json(issued)).into_response(),
        Err(e) => admin_error(e),
    }
}

fn admin_error(e: EnrolmentError) -> Response {
    let status = match &e {
        EnrolmentError::Exists(_) => StatusCode::CONFLICT,
        e if e.is_input() => StatusCode::BAD_REQUEST,
        other => {
            tracing::error!(error = %other, "enrolment failed");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "internal error; nothing was created; see the collector log",
                "Lỗi nội bộ; không có gì được tạo. Xem nhật ký của máy chủ.",
            );
        }
    };
    let text = format!("{e}. Không có gì được tạo.");
    json_error(status, None, &text, &text)
}

async fn post_enrol(State(state): State<AppState>, req: Request) -> Response {
    let address = authz::address(req.extensions());
    let key = format!("enrol:{address}");
    let now = state.now();
    let locked = state
        .auth()
        .throttle()
        .retry_after(&key, MAX_FAILURES_PER_ADDRESS, now);
    if let Some(secs) = locked {
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "too many failed enrolments from this address; retry later",
            &format!(
                "Đã thử sai quá nhiều lần từ địa chỉ này. Hãy thử lại sau {} phút.",
                (secs + 59) / 60
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let body: EnrolRequest = match read_json(req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(path) = state.registry_path() else {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the collector runs without a registry file",
            "Máy chủ chạy không có sổ đăng ký trạm.",
        );
    };
    let p = path.clone();
    let redeemed = state
        .auth()
        .with(move |c| redeem(c, &p, &body.code, &body.public_key, now))
        .await;
    let redeemed = match redeemed {
        Ok(r) => r,
        Err(e) => Err(EnrolmentError::Internal(format!("{e:?}"))),
    };
    const ACTOR: &str = "trạm (ghi danh bằng mã)";
    match redeemed {
        Ok(done) => {
            match Registry::load(&path) {
                Ok(fresh) => {
                    let after = fresh.get(&done.station).map(audit::describe_station);
                    state.set_registry(fresh);
                    let mut e = state.audit_entry(ACTOR, &address, action::ENROL, &done.station);
                    e.after = after;
                    state.audit(e).await;
                }
                Err(e) => tracing::error!(error = %e, "re-reading the registry after an enrolment"),
            }
            tracing::info!(station = %done.station, %address, "station enrolled");
            let centre = match state.centre().cloned() {
                Some(c) => {
                    tokio::task::spawn_blocking(move || serde_json::to_value(c.answer()).ok())
                        .await
                        .ok()
                        .flatten()
                }
                None => None,
            };
            axum::Json(EnrolAnswer {
                station: done.station,
                name: done.name,
                area_code: done.area_code,
                kind: done.kind,
                centre,
            })
            .into_response()
        }
        Err(EnrolmentError::BadCode { why, station }) => {
            state.auth().throttle().fail(&key, now);
            tracing::warn!(%address, why = why.label_vi(), "enrolment refused");
            let mut e = state.audit_entry(
                ACTOR,
                &address,
                action::ENROL_REFUSED,
                station.as_deref().unwrap_or("-"),
            );
            e.after = Some(why.label_vi().to_string());
            state.audit(e).await;
            let c = ReasonCode::EnrolmentBadCode;
            json_error(StatusCode::FORBIDDEN, Some(c.clone()), c.en(), c.vi())
        }
        Err(EnrolmentError::KeyInUse { station, holder }) => {
            let mut e = state.audit_entry(ACTOR, &address, action::ENROL_REFUSED, &station);
            e.after = Some(format!("khóa đã đăng ký cho trạm {holder}"));
            state.audit(e).await;
            let c = ReasonCode::EnrolmentKeyInUse;
            json_error(StatusCode::CONFLICT, Some(c.clone()), c.en(), c.vi())
        }
        Err(e @ EnrolmentError::BadKey(_)) => json_error(
            StatusCode::BAD_REQUEST,
            None,
            &format!("public_key: {e}"),
            &e.to_string(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "enrolment failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(ReasonCode::RefusedInternal),
                "internal error; the code was not used; see the collector log",
                "Lỗi nội bộ; mã chưa bị dùng. Hãy thử lại sau.",
            )
        }
    }
}

/// Render the admin page (`admin_stations.html`), never cached (it may show a code).
async fn stations_page(
    state: &AppState,
    p: &Principal,
    status: StatusCode,
    error: Option<&str>,
    issued: Option<&Issued>,
) -> Response {
    let listed = state.auth().with(|c| -> Result<_, EnrolmentError> {
        let users =
            super::accounts::list_users(c).map_err(|e| EnrolmentError::Internal(e.to_string()))?;
        Ok((list(c)?, users))
    });
    let (stations, users) = match listed.await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return internal(e, p),
        Err(e) => return internal(format!("{e:?}"), p),
    };
    let now = state.now().timestamp_millis();
    let rows: Vec<_> = stations
        .iter()
        .map(|m| {
            let state_vi = match (
                m.enrolled_unix_ms,
                m.code_expires_unix_ms,
                m.code_used_unix_ms,
            ) {
                (_, Some(exp), None) if exp > now => {
                    format!("Chờ ghi danh (mã hết hạn lúc {})", when_ms(exp))
                }
                (Some(at), _, _) => format!("Đã ghi danh lúc {}", when_ms(at)),
                _ => "Mã đã hết hạn — cấp mã mới".to_string(),
            };
            json!({
                "id": m.id, "name": m.name, "area_code": m.area_code, "kind": m.kind_vi,
                "operators": m.operators.join(", "), "state": state_vi,
            })
        })
        .collect();
    let operators: Vec<_> = users
        .iter()
        .filter(|u| u.role == super::accounts::Role::Operator && !u.disabled)
        .map(|u| u.name.clone())
        .collect();
    let kinds: Vec<_> = Kind::ALL
        .iter()
        .map(|k| json!({ "code": k.code(), "label": k.label_vi() }))
        .collect();
    let v = super::pages::viewer(p);
    let ctx = json!({
        "stations": rows,
        "operators": operators,
        "kinds": kinds,
        "default_hours": DEFAULT_CODE_TTL_SECS / 3600,
        "max_hours": MAX_CODE_TTL_SECS / 3600,
        "error": error,
        "issued": issued.map(|i| json!({
            "station": i.station, "code": i.code, "expires": audit::when_vi(i.expires_at),
        })),
    });
    match crate::web::render("admin_stations.html", Some(&v), ctx) {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => internal(e, p),
    }
}

fn internal(e: impl std::fmt::Display, p: &Principal) -> Response {
    tracing::error!(error = %e, "internal error on the stations page");
    super::pages::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Lỗi",
        "Lỗi nội bộ; không có gì thay đổi. Xem nhật ký của máy chủ.",
        Some(p),
    )
}

fn principal(req: &Request) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

async fn get_admin_stations(State(state): State<AppState>, req: Request) -> Response {
    let Some(p) = principal(&req) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    stations_page(&state, &p, StatusCode::OK, None, None).await
}

/// The page's form fields (the guard has checked its CSRF token).
async fn form(req: Request) -> Result<(Principal, String, Vec<(String, String)>), Response> {
    let address = authz::address(req.extensions());
    let Some(p) = principal(&req) else {
        return Err(StatusCode::UNAUTHORIZED.into_response());
    };
    let bytes = authz::read_form(req.into_body())
        .await
        .map_err(|f| authz::page_refusal(f, "/admin/stations", Some(&p)))?;
    Ok((p, address, authz::form_urlencoded_pairs(&bytes)))
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> &'a str {
    f.iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

/// The code's life from the form's hours field (empty: the default).
fn form_ttl(f: &[(String, String)]) -> Result<Option<i64>, EnrolmentError> {
    let hours = field(f, "hours").trim();
    if hours.is_empty() {
        return Ok(None);
    }
    match hours.parse::<i64>() {
        Ok(h) => Ok(Some(h.saturating_mul(3600))),
        Err(_) => Err(EnrolmentError::InvalidTtl(-1)),
    }
}

async fn post_admin_stations(State(state): State<AppState>, req: Request) -> Response {
    let (p, address, f) = match form(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let new = match form_ttl(&f) {
        Ok(expires_secs) => NewStation {
            id: field(&f, "id").trim().to_string(),
            name: field(&f, "name").to_string(),
            area_code: field(&f, "area_code").to_string(),
            kind: field(&f, "kind").to_string(),
            operators: f
                .iter()
                .filter(|(k, v)| k == "operators" && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
                .collect(),
            expires_secs,
        },
        Err(e) => {
            let msg = format!("{e}. Không có gì được tạo.");
            return stations_page(&state, &p, StatusCode::BAD_REQUEST, Some(&msg), None).await;
        }
    };
    match create(&state, &p, &address, new).await {
        Ok(issued) => stations_page(&state, &p, StatusCode::OK, None, Some(&issued)).await,
        Err(e) if e.is_input() => {
            let msg = format!("{e}. Không có gì được tạo.");
            let status = if matches!(e, EnrolmentError::Exists(_)) {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            stations_page(&state, &p, status, Some(&msg), None).await
        }
        Err(e) => internal(e, &p),
    }
}

async fn post_admin_station_code(
    State(state): State<AppState>,
    UrlPath(station): UrlPath<String>,
    req: Request,
) -> Response {
    let (p, address, f) = match form(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ttl = match form_ttl(&f) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("{e}. Không có gì thay đổi.");
            return stations_page(&state, &p, StatusCode::BAD_REQUEST, Some(&msg), None).await;
        }
    };
    let (actor, now, s) = (p.user.name.clone(), state.now(), station.clone());
    let got = state
        .auth()
        .with(move |c| reissue(c, &s, ttl, &actor, now))
        .await;
    match got {
        Ok(Ok(issued)) => {
            let mut e = state.audit_entry(&p.user.name, &address, action::ENROLMENT_CODE, &station);
            e.after = Some(format!(
                "mã mới, hết hạn lúc {}; các mã chưa dùng trước đó hết hiệu lực",
                audit::when_vi(issued.expires_at)
            ));
            state.audit(e).await;
            stations_page(&state, &p, StatusCode::OK, None, Some(&issued)).await
        }
        Ok(Err(e)) if e.is_input() => {
            let msg = format!("{e}. Không có gì thay đổi.");
            stations_page(&state, &p, StatusCode::BAD_REQUEST, Some(&msg), None).await
        }
        Ok(Err(e)) => internal(e, &p),
        Err(e) => internal(format!("{e:?}"), &p),
    }
}

/// The routes of this module (their rows are in [`super::authz::ROUTES`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enrol", post(post_enrol))
        .route("/api/v1/admin/enrolments", post(post_admin_enrolments))
        .route(
            "/admin/stations",
            get(get_admin_stations).post(post_admin_stations),
        )
        .route(
            "/admin/stations/{station}/code",
            post(post_admin_station_code),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_public_key;
    use chrono::TimeZone;
    use ed25519_dalek::SigningKey;

    fn pk(n: u8) -> String {
        encode_public_key(&SigningKey::from_bytes(&[n; 32]).verifying_key())
    }

    #[test]
    fn a_code_reads_back_however_it_is_typed() {
        let bytes: [u8; CODE_BYTES] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
        let shown = format_code(&bytes).unwrap_or_default();
        assert_eq!(shown.len(), 24 + 5, "{shown}");
        assert!(
            shown
                .split('-')
                .all(|g| g.len() == CODE_GROUP_CHARS && !g.contains(['I', 'L', 'O', 'U'])),
            "{shown}"
        );
        assert_eq!(parse_code(&shown), Some(bytes));
        let typed = shown
            .to_lowercase()
            .replace('-', " ")
            .replace('0', "o")
            .replace('1', "l");
        assert_eq!(parse_code(&format!("  {typed} ")), Some(bytes), "{typed}");
        assert_eq!(parse_code(&shown[..shown.len() - 1]), None);
        assert_eq!(parse_code("UUUU-UUUU-UUUU-UUUU-UUUU-UUUU"), None);
        assert_eq!(parse_code(""), None);
    }

    #[test]
    fn new_stations_are_checked_field_by_field() {
        let ok = NewStation {
            id: "phuong-a".into(),
            name: "Phường A".into(),
            area_code: "21193".into(),
            kind: "ward".into(),
            operators: vec![],
            expires_secs: None,
        };
        assert_eq!(
            validate(&ok).ok(),
            Some((Kind::Ward, DEFAULT_CODE_TTL_SECS))
        );
        let check = |f: &dyn Fn(&mut NewStation), want: &str| {
            let mut n = ok.clone();
            f(&mut n);
            let e = validate(&n)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{e}");
        };
        check(&|n| n.id = "Phường A".into(), "Mã trạm");
        check(&|n| n.name = "  ".into(), "Tên trạm");
        check(&|n| n.area_code = "21A93".into(), "Mã đơn vị hành chính");
        check(&|n| n.kind = "village".into(), "Loại trạm");
        check(&|n| n.expires_secs = Some(0), "Thời hạn");
        check(
            &|n| n.expires_secs = Some(MAX_CODE_TTL_SECS + 1),
            "Thời hạn",
        );
    }

    fn db() -> (tempfile::TempDir, Conn) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = crate::collector::db::testing::test_db(dir.path(), "c.db");
        let conn = crate::collector::store::Store::open(&db)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_connection();
        (dir, conn)
    }

    /// Single use, expiry and one key per station, against a real database and registry file.
    #[test]
    fn a_code_enrols_once_before_it_expires_and_never_a_key_in_use() {
        let (dir, mut conn) = db();
        let reg = dir.path().join("collector.toml");
        let t0 = Utc.with_ymd_and_hms(2026, 12, 5, 8, 0, 0).unwrap();
        let new = |id: &str, secs| NewStation {
            id: id.into(),
            name: format!("Phường {id}"),
            area_code: "21193".into(),
            kind: "ward".into(),
            operators: vec![],
            expires_secs: Some(secs),
        };
        let empty = Registry::default();
        let a = create_station(&mut conn, &empty, &new("a", 3600), "admin", t0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            create_station(&mut conn, &empty, &new("a", 3600), "admin", t0),
            Err(EnrolmentError::Exists(_))
        ));
        // Only the hash is stored.
        let stored: String = conn
            .query_row("SELECT code_sha256 FROM enrolment_codes", params![], |r| {
                r.get(0)
            })
            .unwrap_or_default();
        assert_eq!(
            stored,
            code_sha256(&parse_code(&a.code).unwrap_or_default())
        );
        assert!(!stored.contains(&a.code.replace('-', "")));
        let why = |r: Result<Enrolled, EnrolmentError>| match r {
            Err(EnrolmentError::BadCode { why, .. }) => Some(why),
            _ => None,
        };
        let done = redeem(&mut conn, &reg, &a.code, &pk(1), t0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((done.station.as_str(), done.kind.as_str()), ("a", "ward"));
        let loaded = Registry::load(&reg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.get("a").map(|e| e.public_key.clone()), Some(pk(1)));
        assert_eq!(
            why(redeem(&mut conn, &reg, &a.code, &pk(2), t0)),
            Some(BadCodeWhy::Used)
        );
        // Expiry: the code of `b` lives one second.
        let b = create_station(&mut conn, &empty, &new("b", 1), "admin", t0)
            .unwrap_or_else(|e| panic!("{e}"));
        let later = t0 + chrono::Duration::seconds(1);
        assert_eq!(
            why(redeem(&mut conn, &reg, &b.code, &pk(2), later)),
            Some(BadCodeWhy::Expired)
        );
        // A new code for `b` ends the old one; a's key cannot be enrolled as b.
        let b2 = reissue(&mut conn, "b", None, "admin", later).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            redeem(&mut conn, &reg, &b2.code, &pk(1), later),
            Err(EnrolmentError::KeyInUse { ref holder, .. }) if holder == "a"
        ));
        assert_eq!(
            why(redeem(
                &mut conn,
                &reg,
                "0000-0000-0000-0000-0000-0000",
                &pk(2),
                later
            )),
            Some(BadCodeWhy::Unknown)
        );
        redeem(&mut conn, &reg, &b2.code, &pk(2), later).unwrap_or_else(|e| panic!("{e}"));
        let listed = list(&conn).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            listed.iter().all(|m| m.enrolled_unix_ms.is_some()),
            "{listed:?}"
        );
    }
}
