//! Maintenance windows: `POST /v1/maintenance` (a write token), `GET /v1/maintenance?state=
//! open|active|upcoming|ended|all` (open: active and upcoming, the default) and
//! `DELETE /v1/maintenance/{id}` (ends it now). Windows are events in the log; the correlator
//! reads them from there.

use super::{auth, check_known, write_error, ApiError, AppState};
use crate::maintenance::log::Ended;
use crate::maintenance::request;
use crate::maintenance::window::{Status, Window};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

/// A window body is small: targets and a reason.
const MAX_BODY_BYTES: usize = 256 * 1024;

fn bad(field: &str, message: String) -> ApiError {
    ApiError::BadRequest {
        field: field.to_string(),
        message,
    }
}

fn time(ms: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

/// The API shape of a window at `now_ms`.
fn public(w: &Window, now_ms: i64) -> Value {
    let s = &w.scheduled;
    json!({
        "window_id": s.window_id,
        "nodes": s.nodes,
        "ports": s.ports,
        "from_ms": s.from_ms,
        "until_ms": s.until_ms,
        "from": time(s.from_ms),
        "until": time(s.until_ms),
        "ends_ms": w.end_ms(),
        "ended_early": w.ended.is_some(),
        "reason": s.reason,
        "created_by": s.created_by,
        "created_at_ms": s.at_ms,
        "status": w.status(now_ms).name(),
    })
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth::check_write(&state.config.auth, &headers, "a maintenance window")?;
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!("a window body is at most {MAX_BODY_BYTES} bytes"))
        })?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidJson(format!("body is not valid JSON: {e}")))?;
    let now = crate::clock::now_ms();
    let req = request::parse(&body, now).map_err(|e| bad(&e.field, e.message))?;
    let scheduled = state
        .maintenance
        .schedule(req, "write token")
        .await
        .map_err(|e| write_error(&state, e, "maintenance windows"))?;
    tracing::info!(window = %scheduled.window_id, reason = %scheduled.reason, "maintenance window scheduled");
    let window = Window::new(scheduled, 0);
    Ok((StatusCode::CREATED, Json(public(&window, now))))
}

pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    check_known(&query, &["state"])?;
    let wanted: &[Status] = match query.get("state").map(String::as_str) {
        None | Some("open") => &[Status::Active, Status::Upcoming],
        Some("active") => &[Status::Active],
        Some("upcoming") => &[Status::Upcoming],
        Some("ended") => &[Status::Ended],
        Some("all") => &[Status::Active, Status::Upcoming, Status::Ended],
        Some(other) => {
            return Err(bad(
                "state",
                format!("state {other:?} must be open, active, upcoming, ended or all"),
            ))
        }
    };
    let book = state
        .maintenance
        .book()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = crate::clock::now_ms();
    let mut windows: Vec<&Window> = book
        .windows
        .values()
        .filter(|w| wanted.contains(&w.status(now)))
        .collect();
    // Soonest first: what is on now, then what comes next.
    windows.sort_by_key(|w| (w.scheduled.from_ms, w.end_ms()));
    let items: Vec<Value> = windows.iter().map(|w| public(w, now)).collect();
    Ok(Json(json!({ "windows": items })))
}

pub async fn end(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_write(&state.config.auth, &headers, "a maintenance window")?;
    let ended = state
        .maintenance
        .end(&id)
        .await
        .map_err(|e| write_error(&state, e, "maintenance windows"))?;
    // After the end was written: the window shows as ended.
    let now = crate::clock::now_ms();
    match ended {
        Ended::Now(w) => {
            tracing::info!(window = %id, "maintenance window ended");
            Ok(Json(public(&w, now)))
        }
        Ended::Already(w) => Ok(Json(public(&w, now))),
        Ended::Unknown => Err(ApiError::NotFound(format!("no maintenance window {id:?}"))),
    }
}
