//! `GET /v1/streams/{stream_id}` (current state), `GET /v1/streams/{stream_id}/events` and
//! `GET /v1/streams/{stream_id}/series` (recent samples against the baseline band). Stream ids
//! may contain `/`, so the path is matched whole; a trailing `/events` or `/series` selects.

use super::{auth, check_known, ApiError, AppState};
use crate::cluster::peers::Route;
use crate::events::json::event_json;
use crate::sample::validate::is_valid_stream_id;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[tracing::instrument(skip_all, fields(path = %path))]
pub async fn get_stream(
    State(state): State<AppState>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    // History (events, series) is read here, straight from the shared log. Live state is the
    // holder's: another node holds the stream's shard, ask it (the client's token goes along).
    let history = path.ends_with("/events") || path.ends_with("/series");
    let router = state.ingestor.router();
    let route = if history {
        Route::Local
    } else {
        router.route(&path)
    };
    if let Route::Unheld(shard) = route {
        return Err(ApiError::Unavailable {
            message: format!(
                "shard {shard} of stream {path:?} has no live holder until its lease lapses"
            ),
            retry_after_s: 2,
        });
    }
    if let (Route::Remote(owner), Some(peers)) = (route, router.cluster()) {
        let target = match &raw_query {
            Some(q) => format!("/v1/streams/{path}?{q}"),
            None => format!("/v1/streams/{path}"),
        };
        let auth = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let (status, body) =
            peers
                .proxy_get(&owner, &target, auth)
                .await
                .map_err(|e| ApiError::Unavailable {
                    message: e.to_string(),
                    retry_after_s: 2,
                })?;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        return Ok((status, Json(body)));
    }
    local(&state, &path, &query)
        .await
        .map(|json| (StatusCode::OK, json))
}

async fn local(
    state: &AppState,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(stream_id) = path.strip_suffix("/events") {
        return events(state, stream_id, query);
    }
    if let Some(stream_id) = path.strip_suffix("/series") {
        return series(state, stream_id, query);
    }
    stream_state(state, path).await
}

fn checked_id(stream_id: &str) -> Result<&str, ApiError> {
    if is_valid_stream_id(stream_id) {
        Ok(stream_id)
    } else {
        Err(ApiError::BadRequest {
            field: "stream_id".into(),
            message: format!("invalid stream_id {stream_id:?}"),
        })
    }
}

async fn stream_state(state: &AppState, stream_id: &str) -> Result<Json<Value>, ApiError> {
    let stream_id = checked_id(stream_id)?;
    let router = state.ingestor.router();
    match router.view(stream_id).await {
        Ok(Some(view)) => Ok(Json(json!(view))),
        Ok(None) => Err(ApiError::NotFound(format!("unknown stream {stream_id:?}"))),
        Err(e) => Err(ApiError::Unavailable {
            message: e.to_string(),
            retry_after_s: 1,
        }),
    }
}

fn query_u64(query: &HashMap<String, String>, field: &str, default: u64) -> Result<u64, ApiError> {
    match query.get(field) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ApiError::BadRequest {
            field: field.into(),
            message: format!("{field} {v:?} must be a non-negative integer"),
        }),
    }
}

const DEFAULT_POINTS: u64 = 300;
const MAX_POINTS: u64 = 2000;

fn series(
    state: &AppState,
    stream_id: &str,
    query: &HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    use crate::replay::series::{self, WARMUP};
    let stream_id = checked_id(stream_id)?;
    check_known(query, &["points"])?;
    let points = query_u64(query, "points", DEFAULT_POINTS)?;
    if points == 0 || points > MAX_POINTS {
        return Err(ApiError::BadRequest {
            field: "points".into(),
            message: format!("points {points} must be 1 to {MAX_POINTS}"),
        });
    }
    let store = state.ingestor.router().store();
    let head = known_head(state, stream_id)?;
    // A sample is one event plus the anomaly events it causes: read a generous tail.
    let span = 2 * (points as usize + WARMUP);
    let from = head.saturating_sub(span as u64) + 1;
    let events = store
        .read_stream(stream_id, from, span)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!(series::series(
        stream_id,
        &events,
        points as usize,
        &state.config.detect
    ))))
}

/// The stream's last seq; 404 for a stream with no events here.
fn known_head(state: &AppState, stream_id: &str) -> Result<u64, ApiError> {
    let head = state
        .ingestor
        .router()
        .store()
        .stream_head(stream_id)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if head == 0 {
        return Err(ApiError::NotFound(format!("unknown stream {stream_id:?}")));
    }
    Ok(head)
}

fn events(
    state: &AppState,
    stream_id: &str,
    query: &HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    // The incident and alert streams read like any other (read-only, like every stream).
    let internal = [
        crate::incidents::INCIDENT_STREAM,
        crate::alerts::ALERT_STREAM,
    ];
    let stream_id = if internal.contains(&stream_id) {
        stream_id
    } else {
        checked_id(stream_id)?
    };
    check_known(query, &["from_seq", "limit"])?;
    let from_seq = query_u64(query, "from_seq", 1)?.max(1);
    let limit = query_u64(query, "limit", DEFAULT_LIMIT as u64)?;
    if limit == 0 || limit > MAX_LIMIT as u64 {
        return Err(ApiError::BadRequest {
            field: "limit".into(),
            message: format!("limit {limit} must be 1 to {MAX_LIMIT}"),
        });
    }
    let store = state.ingestor.router().store();
    let head = known_head(state, stream_id)?;
    let page = store
        .read_stream(stream_id, from_seq, limit as usize)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let next_from_seq = page.last().map(|e| e.record.seq + 1);
    let events: Vec<Value> = page.iter().map(event_json).collect();
    Ok(Json(json!({
        "stream_id": stream_id,
        "head_seq": head,
        "events": events,
        "next_from_seq": next_from_seq,
    })))
}
