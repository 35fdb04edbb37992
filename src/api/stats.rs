//! `GET /v1/stats`: the counters an operator watches (analyst calls, fallbacks, cache hits,
//! tokens, cost, queue depth; live stream actors and restarts; the log's head offset).

use super::{auth, ApiError, AppState};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

pub async fn get_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    let c = &state.analyst.analyst.counters;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let insights = get(&c.insights);
    let calls = get(&c.calls);
    let router = state.ingestor.router();
    Ok(Json(json!({
        "analyst": {
            "backend": state.analyst.analyst.config().backend,
            "calls": calls,
            "attempts": get(&c.attempts),
            "mean_call_latency_ms": get(&c.call_latency_ms_total).checked_div(calls).unwrap_or(0),
            "insights": insights,
            "ai": get(&c.ai),
            "rules": get(&c.rules),
            "fallbacks": get(&c.fallbacks),
            "cache_hits": get(&c.cache_hits),
            "tool_answers": get(&c.tool_answers),
            "text_answers": get(&c.text_answers),
            "invalid_answers": get(&c.invalid_answers),
            "low_confidence": get(&c.low_confidence),
            "fallback_rate": if insights > 0 { get(&c.fallbacks) as f64 / insights as f64 } else { 0.0 },
            "input_tokens": get(&c.input_tokens),
            "output_tokens": get(&c.output_tokens),
            "cost_usd": get(&c.cost_micro_usd) as f64 / 1_000_000.0,
            "queue_depth": state.analyst.queue_depth(),
            "incidents_waiting": state.incidents_waiting.load(Ordering::Relaxed),
        },
        "streams": {
            "active": router.active_streams(),
            "restarts": router.restarts(),
        },
        "projections": state.projections.iter().map(|(name, lag)| json!({
            "name": name,
            "checkpoint": lag.checkpoint.load(Ordering::Relaxed),
            "events_behind": lag.events_behind.load(Ordering::Relaxed),
            "ms_behind": lag.ms_behind.load(Ordering::Relaxed),
        })).collect::<Vec<_>>(),
        "store": {
            "engine": router.store().engine(),
            "last_offset": router.store().last_offset(),
        },
    })))
}
