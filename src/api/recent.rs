//! `GET /v1/insights/recent?limit=&stream_id=&min_risk=&prediction_type=&switch=` and `GET /v1/alerts/recent?limit=`:
//! newest first, from the embedded views.

use super::{auth, check_known, ApiError, AppState};
use crate::analyst::insight::PredictionType;
use crate::events::types::Verdict;
use crate::projections::items;
use crate::projections::views::{self, ALERTS_VIEW, INSIGHTS_VIEW};
use crate::sample::validate::is_valid_stream_id;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

const MAX_LIMIT: usize = 500;
/// A filtered query stops after scanning this many entries.
pub(super) const SCAN_MAX: usize = 50_000;

pub(super) fn bad(field: &str, message: String) -> ApiError {
    ApiError::BadRequest {
        field: field.into(),
        message,
    }
}

pub(super) fn limit(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(50),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad(
                "limit",
                format!("limit {v:?} must be 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

pub async fn insights(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    check_known(
        &query,
        &[
            "limit",
            "stream_id",
            "min_risk",
            "prediction_type",
            "switch",
        ],
    )?;
    let limit = limit(&query)?;
    let stream = query.get("stream_id").cloned();
    if let Some(s) = &stream {
        if !is_valid_stream_id(s) {
            return Err(bad("stream_id", format!("invalid stream_id {s:?}")));
        }
    }
    let min_risk: u64 = match query.get("min_risk") {
        None => 0,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= 100 => n,
            _ => return Err(bad("min_risk", format!("min_risk {v:?} must be 0 to 100"))),
        },
    };
    let prediction_type = match query.get("prediction_type") {
        None => None,
        Some(t) if PredictionType::ALL.iter().any(|p| p.name() == t) => Some(t.clone()),
        Some(t) => {
            return Err(bad(
                "prediction_type",
                format!("prediction_type {t:?} is not a known prediction type"),
            ))
        }
    };
    let switch = query.get("switch").cloned();
    let keep = |item: &Value| {
        let entity = item["related_entity"].as_str().unwrap_or("");
        stream.as_deref().is_none_or(|s| entity == s)
            && switch
                .as_deref()
                .is_none_or(|sw| crate::projections::fabric::split(entity).0 == sw)
            && prediction_type
                .as_deref()
                .is_none_or(|t| item["prediction_type"] == t)
            && item["risk_score"].as_u64().unwrap_or(0) >= min_risk
    };
    let items = match &state.dynamo {
        Some(table) => table
            .recent("insight", limit, SCAN_MAX, keep)
            .await
            .map_err(|e| ApiError::Unavailable {
                message: e.to_string(),
                retry_after_s: 1,
            })?,
        None => {
            let store = state.ingestor.router().store().clone();
            views::recent(store.as_ref(), INSIGHTS_VIEW, limit, SCAN_MAX, keep)
                .map_err(|e| ApiError::Internal(e.to_string()))?
        }
    };
    Ok(Json(json!({ "insights": items })))
}

pub async fn alerts(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    check_known(&query, &["limit"])?;
    let limit = limit(&query)?;
    let store = state.ingestor.router().store().clone();
    let items = views::recent(store.as_ref(), ALERTS_VIEW, limit, SCAN_MAX, |_| true)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({ "alerts": items })))
}

/// A verdict is a few dozen bytes.
pub const TRIAGE_MAX_BODY_BYTES: usize = 4096;

/// `POST /v1/alerts/{alert_id}/triage` with `{"verdict": "confirmed" | "false_positive"}`: an
/// operator's verdict on a raised alert (alert ids hold `#`: send it as `%23`). It writes
/// to the log, so it needs a triage token (`auth::check_triage`), checked before the body is
/// read; the body is read up to `TRIAGE_MAX_BODY_BYTES` only.
pub async fn triage(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth::check_triage(&state.config.auth, &headers)?;
    let body = axum::body::to_bytes(body, TRIAGE_MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!(
                "a triage body is at most {TRIAGE_MAX_BODY_BYTES} bytes"
            ))
        })?;
    let Some(alert_id) = path.strip_suffix("/triage") else {
        return Err(ApiError::NotFound(format!(
            "no such resource /v1/alerts/{path}"
        )));
    };
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidJson(format!("body is not valid JSON: {e}")))?;
    let verdict = match body.get("verdict").and_then(Value::as_str) {
        Some("confirmed") => Verdict::Confirmed,
        Some("false_positive") => Verdict::FalsePositive,
        other => {
            return Err(bad(
                "verdict",
                format!("verdict {other:?} must be \"confirmed\" or \"false_positive\""),
            ))
        }
    };
    let store = state.ingestor.router().store().clone();
    let alert = find_alert(store.as_ref(), alert_id)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {alert_id:?}")))?;
    let risk = alert["risk_score"].as_u64().unwrap_or(0).min(100) as u8;
    let seq = state
        .triage
        .record(alert_id, verdict, risk)
        .await
        .map_err(|e| super::write_error(&state, e, "triage verdicts"))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"alert_id": alert_id, "verdict": verdict, "triage_seq": seq})),
    ))
}

/// The alert item of `alert_id` (`<stream>#<insight seq>`), read by its key: the alert was
/// raised at its insight's record time, so one index read and one view read find it, however
/// many alerts the view holds.
fn find_alert(
    store: &dyn crate::events::EventStore,
    alert_id: &str,
) -> Result<Option<Value>, crate::events::StoreError> {
    let Some((stream_id, seq)) = alert_id.rsplit_once('#') else {
        return Ok(None);
    };
    let Ok(seq) = seq.parse::<u64>() else {
        return Ok(None);
    };
    if !is_valid_stream_id(stream_id) && stream_id != crate::incidents::INCIDENT_STREAM {
        return Ok(None);
    }
    let Some(insight) = store.read_event(stream_id, seq)? else {
        return Ok(None);
    };
    let key = items::newest_first_key(
        insight.record.recorded_at_ms,
        &items::alert_entity_id(alert_id),
    );
    Ok(store
        .scan_view(ALERTS_VIEW, &key, 1)?
        .pop()
        .filter(|(k, _)| *k == key)
        .and_then(|(_, v)| serde_json::from_slice(&v).ok()))
}
