//! The centre's public face: `GET /api/v1/centre` (the current centre key and every rotation
//! announcement, open: a station walks them from its pinned key) and `GET /api/v1/centre/whoami`
//! (a station-signed request answered with the station's id: `loa enrol` and operators check a
//! station's set-up with it).
//!
//! **Invariant:** these routes only read — the key comes from the [`crate::centre::CentreSigner`]
//! the collector loaded at start (re-read after a rotation); the secret never leaves it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use super::authz::StationCaller;
use super::http::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/centre", get(get_centre))
        .route("/api/v1/centre/whoami", get(get_whoami))
}

async fn get_centre(State(state): State<AppState>) -> Response {
    match state.centre() {
        Some(c) => {
            let c = c.clone();
            match tokio::task::spawn_blocking(move || c.answer()).await {
                Ok(answer) => Json(answer).into_response(),
                Err(e) => {
                    tracing::error!(error = %e, "reading the centre key");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Json(serde_json::json!({"error": "internal error; see the collector log"})),
                    )
                        .into_response()
                }
            }
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "error": "this collector runs without a centre key",
                "error_vi": "Máy chủ trung tâm chưa có khóa ký.",
            })),
        )
            .into_response(),
    }
}

async fn get_whoami(Extension(StationCaller(id)): Extension<StationCaller>) -> Response {
    Json(serde_json::json!({ "station": id })).into_response()
}
