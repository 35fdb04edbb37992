//! Liveness and readiness.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the event store answers a read.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let router = state.ingestor.router();
    let store = router.store();
    let ready = store.stream_head("\u{0}readyz").is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "engine": store.engine(),
        "last_offset": store.last_offset(),
        "active_streams": router.active_streams(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
