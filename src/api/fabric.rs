//! `GET /v1/fabric` (switches and their ports by worst open risk) and `GET /v1/ai/health` (the
//! analyst's calls per minute, p95 latency, fallback rate, cost today against budget): the
//! dashboard's overview figures.

use super::{auth, check_known, ApiError, AppState};
use crate::projections::fabric::{self, FABRIC_VIEW};
use crate::projections::views::fabric_entries;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

pub async fn get_fabric(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    let store = state.ingestor.router().store();
    check_known(&query, &["max_ports", "max_switches"])?;
    let bounded = |field: &str, default: usize, max: usize| match query.get(field) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                field: field.into(),
                message: format!("{field} {v:?} must be 1 to {max}"),
            }),
    };
    let max_ports = bounded("max_ports", 24, 500)?;
    let max_switches = bounded("max_switches", 200, 10_000)?;
    // One view for the whole fabric: embedded on a single node, shared in PostgreSQL by every
    // node of a cluster.
    let entries = fabric_entries(store.as_ref(), FABRIC_VIEW)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut switches = fabric::summarize(&entries, max_ports);
    let switches_total = switches.len();
    let ports_with_open_anomalies: usize =
        switches.iter().map(|s| s.ports_with_open_anomalies).sum();
    // Worst first, so what is cut is the healthiest.
    switches.truncate(max_switches);
    let out = json!({
        "streams": entries.len(),
        "switches_total": switches_total,
        "ports_with_open_anomalies": ports_with_open_anomalies,
        "switches": switches,
    });
    Ok(Json(out))
}

pub async fn get_ai_health(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    let analyst = &state.analyst.analyst;
    let c = &analyst.counters;
    let insights = c.insights.load(Ordering::Relaxed);
    let fallbacks = c.fallbacks.load(Ordering::Relaxed);
    let calls = c
        .recent
        .lock()
        .expect("recent calls lock")
        .figures(crate::clock::now_ms());
    let cfg = analyst.config();
    Ok(Json(json!({
        "backend": cfg.backend,
        "model_id": cfg.model_id,
        "prompt_version": analyst.template().version,
        "ai_enabled": cfg.ai_enabled,
        "ai_sampling_rate": cfg.ai_sampling_rate,
        "calls": calls,
        "fallback_rate": if insights > 0 { fallbacks as f64 / insights as f64 } else { 0.0 },
        "insights": insights,
        "cost_today_usd": analyst.spent_today_usd(),
        "daily_budget_usd": cfg.daily_budget_usd,
        "breaker_open": analyst.breaker_open(),
        "queue_depth": state.analyst.queue_depth(),
    })))
}
