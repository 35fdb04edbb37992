//! `GET /metrics`: OpenMetrics text, encoded by `prometheus-client`. Counted metrics are the
//! global ones (shared handles); the rest (analyst, actors, projections, store) is read from
//! the node when scraped, into the same registry.

use super::{auth, ApiError, AppState};
use crate::metrics::{self, Label};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry for one scrape: values read now, under their names (a counter's without `_total`,
/// which the encoder adds).
struct Scrape(Registry);

impl Scrape {
    fn counter(&mut self, name: &str, help: &str, v: f64) {
        self.0.register(name, help, ConstCounter::new(v));
    }

    fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.0.register(name, help, ConstGauge::new(v));
    }

    /// Values by one label. Counters and gauges share this: a family of gauges set once, with
    /// the type the metric is declared as.
    fn labelled(
        &mut self,
        name: &str,
        help: &str,
        counter: bool,
        label: &'static str,
        values: Vec<(String, f64)>,
    ) {
        if counter {
            let f = Family::<Label, prometheus_client::metrics::counter::Counter<f64, AtomicU64>>::default();
            for (l, v) in values {
                f.get_or_create(&[(label, l)]).inc_by(v);
            }
            self.0.register(name, help, f);
        } else {
            let f = Family::<Label, Gauge<f64, AtomicU64>>::default();
            for (l, v) in values {
                f.get_or_create(&[(label, l)]).set(v);
            }
            self.0.register(name, help, f);
        }
    }
}

pub async fn get_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    let mut s = Scrape(Registry::default());
    let global = metrics::global();
    global.register(&mut s.0);
    let analyst = &state.analyst.analyst;
    let c = &analyst.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    s.counter("ibsight_ai_invocations", "Model calls made", get(&c.calls));
    s.counter(
        "ibsight_ai_call_failures",
        "Model calls that failed after their retries (the AI error rate's numerator)",
        get(&c.call_failures),
    );
    s.counter(
        "ibsight_ai_attempts",
        "Model call attempts, retries included",
        get(&c.attempts),
    );
    s.labelled(
        "ibsight_analyst_outcomes",
        "Insights answered, by source",
        true,
        "source",
        vec![
            ("ai".into(), get(&c.ai)),
            ("rules".into(), get(&c.rules)),
            ("fallback".into(), get(&c.fallbacks)),
            ("cache".into(), get(&c.cache_hits)),
        ],
    );
    let insights = get(&c.insights);
    s.gauge(
        "ibsight_analyst_fallback_ratio",
        "Share of insights answered by the fallback",
        if insights > 0.0 {
            get(&c.fallbacks) / insights
        } else {
            0.0
        },
    );
    s.counter(
        "ibsight_analyst_cache_hits",
        "Insights reused from the cache",
        get(&c.cache_hits),
    );
    s.labelled(
        "ibsight_ai_answers",
        "Model answers, by how they were read: the schema-forced tool call, or text (the model did not call the tool)",
        true,
        "form",
        vec![
            ("tool".into(), get(&c.tool_answers)),
            ("text".into(), get(&c.text_answers)),
        ],
    );
    s.counter(
        "ibsight_ai_invalid_answers",
        "Insights in model answers that failed validation (the rules answered them)",
        get(&c.invalid_answers),
    );
    s.counter(
        "ibsight_ai_low_confidence",
        "Model insights below analyst.min_confidence (kept and marked; alerting follows the rules' risk)",
        get(&c.low_confidence),
    );
    s.labelled(
        "ibsight_ai_tokens",
        "Model tokens, by direction",
        true,
        "direction",
        vec![
            ("input".into(), get(&c.input_tokens)),
            ("output".into(), get(&c.output_tokens)),
        ],
    );
    s.counter(
        "ibsight_ai_cost_usd",
        "Model spend since start, USD",
        get(&c.cost_micro_usd) / 1e6,
    );
    s.gauge(
        "ibsight_ai_cost_usd_today",
        "Model spend of the current UTC day, USD",
        analyst.spent_today_usd(),
    );
    s.gauge(
        "ibsight_analyst_queue_depth",
        "Anomalies waiting for an insight",
        state.analyst.queue_depth() as f64,
    );
    let lag = |f: &dyn Fn(&crate::projections::runner::ProjectionLag) -> f64| {
        state
            .projections
            .iter()
            .map(|(name, l)| (name.to_string(), f(l)))
            .collect()
    };
    s.labelled(
        "ibsight_projection_lag_events",
        "Events a projection is behind the log",
        false,
        "projection",
        lag(&|l| l.events_behind.load(Ordering::Relaxed) as f64),
    );
    s.labelled(
        "ibsight_projection_lag_seconds",
        "Age of the oldest event a projection has not handled",
        false,
        "projection",
        lag(&|l| l.ms_behind.load(Ordering::Relaxed) as f64 / 1000.0),
    );
    let router = state.ingestor.router();
    s.gauge(
        "ibsight_stream_actors",
        "Live stream actors",
        router.active_streams() as f64,
    );
    s.counter(
        "ibsight_actor_restarts",
        "Stream actors restarted after a failure",
        router.restarts() as f64,
    );
    if let Some(peers) = router.cluster() {
        s.gauge(
            "ibsight_cluster_leases_held",
            "Shard and projections leases this node holds",
            peers.held().len() as f64,
        );
        s.0.register(
            "ibsight_cluster_leases_lost",
            "Leases another node took while this node held them",
            global.cluster_leases_lost.clone(),
        );
    }
    s.0.register(
        "ibsight_tls_handshake_failures",
        "TLS handshakes that failed or timed out",
        global.tls_handshake_failures.clone(),
    );
    s.gauge(
        "ibsight_store_bytes",
        "Event store size on disk",
        router.store().disk_bytes() as f64,
    );
    s.gauge(
        "ibsight_log_offset",
        "Highest offset in the event log",
        router.store().last_offset() as f64,
    );
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        metrics::render(&s.0),
    ))
}
