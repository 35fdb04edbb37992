//! `GET /v1/incidents?limit=1..500&state=open|resolved|all`: incidents newest first (by the
//! time they opened), each with its scope, node, member ports, insight and whether it alerted.

use super::recent::{bad, limit, SCAN_MAX};
use super::{auth, check_known, ApiError, AppState};
use crate::projections::incidents::INCIDENTS_VIEW;
use crate::projections::views;
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
    check_known(&query, &["limit", "state"])?;
    let limit = limit(&query)?;
    let wanted = match query.get("state").map(String::as_str) {
        None | Some("all") => None,
        Some(s @ ("open" | "resolved")) => Some(s.to_string()),
        Some(other) => {
            return Err(bad(
                "state",
                format!("state {other:?} must be open, resolved or all"),
            ))
        }
    };
    let store = state.ingestor.router().store().clone();
    let items = views::recent(store.as_ref(), INCIDENTS_VIEW, limit, SCAN_MAX, |item| {
        wanted
            .as_deref()
            .is_none_or(|w| item.get("state").and_then(Value::as_str) == Some(w))
    })
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let items: Vec<Value> = items.into_iter().map(public).collect();
    Ok(Json(json!({ "incidents": items })))
}

/// The API shape: the view item without its storage-only fields (`entity_id` and `timestamp`
/// stay: members' answers are merged by them).
fn public(mut item: Value) -> Value {
    if let Some(map) = item.as_object_mut() {
        for k in ["entity_type", "ttl"] {
            map.remove(k);
        }
        for k in [
            "prediction_type",
            "risk_score",
            "explanation",
            "recommendations",
            "source",
        ] {
            map.entry(k).or_insert(Value::Null);
        }
        map.entry("alerted").or_insert(Value::Bool(false));
    }
    item
}
