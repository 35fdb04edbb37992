//! `GET /v1/digest?limit=N`: the latest periodic digests (newest first, 24 unless asked, at most
//! 168), as written to `#digest` by the digest projection.

use super::{auth, check_known, ApiError, AppState};
use crate::alerts::DIGEST_STREAM;
use crate::events::StreamEvent;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    check_known(&query, &["limit"])?;
    let limit = match query.get("limit") {
        None => 24,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=168).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest {
                    field: "limit".into(),
                    message: format!("limit {v:?} must be a whole number from 1 to 168"),
                })
            }
        },
    };
    let store = state.writer.store().clone();
    let digests = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, String> {
        let head = store
            .stream_head(DIGEST_STREAM)
            .map_err(|e| e.to_string())?;
        let from = head.saturating_sub(limit - 1).max(1);
        let page = store
            .read_stream(DIGEST_STREAM, from, limit as usize)
            .map_err(|e| e.to_string())?;
        Ok(page
            .iter()
            .rev()
            .filter_map(|e| match e.record.decode_event() {
                Ok(StreamEvent::InsightDigest(d)) => Some(crate::alerts::digest::detail(&d)),
                _ => None,
            })
            .collect())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(ApiError::Internal)?;
    Ok(Json(json!({
        "period_s": state.config.alerts.digest_period_s,
        "digests": digests,
    })))
}
