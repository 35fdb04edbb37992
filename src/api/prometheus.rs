//! `GET /metrics`: Prometheus text format (0.0.4). Counted metrics come from the global
//! registry; the rest (analyst, actors, projections, store) is read from the node when scraped.

use super::{auth, ApiError, AppState};
use crate::metrics::{self, Exposition};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use std::sync::atomic::Ordering;

pub async fn get_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    let mut e = Exposition::default();
    e.counted(metrics::global());
    let analyst = &state.analyst.analyst;
    let c = &analyst.counters;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    e.value(
        "ibsight_ai_invocations_total",
        "counter",
        "Model calls made.",
        get(&c.calls),
    );
    e.value(
        "ibsight_ai_call_failures_total",
        "counter",
        "Model calls that failed after their retries (the AI error rate's numerator).",
        get(&c.call_failures),
    );
    e.value(
        "ibsight_ai_attempts_total",
        "counter",
        "Model call attempts, retries included.",
        get(&c.attempts),
    );
    e.labelled(
        "ibsight_analyst_outcomes_total",
        "counter",
        "Insights answered, by source.",
        "source",
        &[
            ("ai".into(), get(&c.ai)),
            ("rules".into(), get(&c.rules)),
            ("fallback".into(), get(&c.fallbacks)),
            ("cache".into(), get(&c.cache_hits)),
        ],
    );
    let insights = get(&c.insights);
    e.value(
        "ibsight_analyst_fallback_ratio",
        "gauge",
        "Share of insights answered by the fallback.",
        if insights > 0.0 {
            get(&c.fallbacks) / insights
        } else {
            0.0
        },
    );
    e.value(
        "ibsight_analyst_cache_hits_total",
        "counter",
        "Insights reused from the cache.",
        get(&c.cache_hits),
    );
    e.labelled(
        "ibsight_ai_tokens_total",
        "counter",
        "Model tokens, by direction.",
        "direction",
        &[
            ("input".into(), get(&c.input_tokens)),
            ("output".into(), get(&c.output_tokens)),
        ],
    );
    e.value(
        "ibsight_ai_cost_usd_total",
        "counter",
        "Model spend since start, USD.",
        get(&c.cost_micro_usd) / 1e6,
    );
    e.value(
        "ibsight_ai_cost_usd_today",
        "gauge",
        "Model spend of the current UTC day, USD.",
        analyst.spent_today_usd(),
    );
    e.value(
        "ibsight_analyst_queue_depth",
        "gauge",
        "Anomalies waiting for an insight.",
        state.analyst.queue_depth() as f64,
    );
    let lag =
        |f: &dyn Fn(&crate::projections::runner::ProjectionLag) -> f64| -> Vec<(String, f64)> {
            state
                .projections
                .iter()
                .map(|(name, l)| (name.to_string(), f(l)))
                .collect()
        };
    e.labelled(
        "ibsight_projection_lag_events",
        "gauge",
        "Events a projection is behind the log.",
        "projection",
        &lag(&|l| l.events_behind.load(Ordering::Relaxed) as f64),
    );
    e.labelled(
        "ibsight_projection_lag_seconds",
        "gauge",
        "Age of the oldest event a projection has not handled.",
        "projection",
        &lag(&|l| l.ms_behind.load(Ordering::Relaxed) as f64 / 1000.0),
    );
    let router = state.ingestor.router();
    e.value(
        "ibsight_stream_actors",
        "gauge",
        "Live stream actors.",
        router.active_streams() as f64,
    );
    e.value(
        "ibsight_actor_restarts_total",
        "counter",
        "Stream actors restarted after a failure.",
        router.restarts() as f64,
    );
    if let Some(peers) = router.cluster() {
        e.value(
            "ibsight_cluster_leases_held",
            "gauge",
            "Shard and projections leases this node holds.",
            peers.held().len() as f64,
        );
        e.value(
            "ibsight_cluster_leases_lost_total",
            "counter",
            "Leases another node took while this node held them.",
            crate::metrics::global()
                .cluster_leases_lost
                .load(Ordering::Relaxed) as f64,
        );
    }
    e.value(
        "ibsight_store_bytes",
        "gauge",
        "Event store size on disk.",
        router.store().disk_bytes() as f64,
    );
    e.value(
        "ibsight_log_offset",
        "gauge",
        "Highest offset in the event log.",
        router.store().last_offset() as f64,
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        e.finish(),
    ))
}
