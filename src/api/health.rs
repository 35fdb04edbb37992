//! Liveness and readiness.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the write path works: a durable write went through the group-commit writer
/// within the last second (`Writer::probe`), and the store answers a read. A node whose
/// writer died or whose engine poisoned itself after a failed fsync is not ready, so a load
/// balancer stops sending it samples it could only refuse.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let router = state.ingestor.router();
    let store = router.store();
    let probe = state.writer.probe().await;
    let ready = probe.is_ok() && store.stream_head("\u{0}readyz").is_ok();
    let mut body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "engine": store.engine(),
        "last_offset": store.last_offset(),
        "active_streams": router.active_streams(),
    });
    if let Err(e) = probe {
        body["reason"] = json!(format!("write path: {e}"));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
