//! The HTTP API (axum). One file per endpoint group; `error` is the one place that maps
//! failures to status codes and JSON bodies.
//!
//! - `metrics`: `POST /v1/metrics` (ingest)
//! - `streams`: `GET /v1/streams/{id}`, `…/events` and `…/series`
//! - `fabric`: `GET /v1/fabric` and `GET /v1/ai/health` (the dashboard's overview)
//! - `dashboard`: the web page at `/` and its embedded assets
//! - `recent`: `GET /v1/insights/recent` and `GET /v1/alerts/recent` (the read views)
//! - `incidents`: `GET /v1/incidents` (the incident view)
//! - `maintenance`: `POST/GET /v1/maintenance`, `DELETE /v1/maintenance/{id}` (windows)
//! - `prometheus`: `GET /metrics` in the OpenMetrics text format (ibsight's own health)
//! - `ports`: `GET /metrics/ports`, every port in the Prometheus text format, under
//!   treydock/infiniband_exporter's names
//! - `digest`: `GET /v1/digest` (the periodic digests, newest first)
//! - `stats`: `GET /v1/stats` (analyst counters, queue depth, store and actor figures)
//! - `health`: `/healthz`, `/readyz`
//! - `auth`: bearer tokens for ingest, reads and writes
//! - `tls`: TLS termination with rustls (`[server.tls]`)

pub(crate) mod auth;
mod cluster;
mod dashboard;
mod digest;
mod error;
mod fabric;
mod health;
mod incidents;
mod maintenance;
mod metrics;
mod ports;
mod prometheus;
mod recent;
mod stats;
mod streams;
pub mod tls;

pub use error::ApiError;

use crate::analyst::pool::AnalystPool;
use crate::config::Config;
use crate::ingest::Ingestor;
use crate::projections::dynamodb::DynamoSink;
use crate::projections::runner::ProjectionLag;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A query parameter outside `known` is an error naming it.
fn check_known(
    query: &std::collections::HashMap<String, String>,
    known: &[&str],
) -> Result<(), ApiError> {
    match query.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::BadRequest {
            field: k.clone(),
            message: format!("unknown query parameter {k:?}"),
        }),
        None => Ok(()),
    }
}

/// A failed write to the log: 503, naming the node to post to when this one is fenced (in a
/// cluster, the node running the projections records operators' writes).
fn write_error(state: &AppState, e: crate::events::StoreError, what: &str) -> ApiError {
    let holder = state
        .ingestor
        .router()
        .cluster()
        .and_then(|p| p.projections_holder());
    let message = match (&e, holder) {
        (crate::events::StoreError::Fenced { .. }, Some(m)) => format!(
            "{e}; {what} are recorded by the projections node {} ({}): post there",
            m.id, m.url
        ),
        _ => e.to_string(),
    };
    ApiError::Unavailable {
        message,
        retry_after_s: 1,
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ingestor: Ingestor,
    pub analyst: AnalystPool,
    pub projections: Vec<(&'static str, Arc<ProjectionLag>)>,
    /// Read insights through DynamoDB's GSI when enabled; the embedded view otherwise.
    pub dynamo: Option<DynamoSink>,
    /// Operators' verdicts on alerts.
    pub triage: Arc<crate::alerts::triage::Triage>,
    /// Maintenance windows in the log.
    pub maintenance: Arc<crate::maintenance::log::MaintenanceLog>,
    /// The group-commit writer (readiness probes the write path through it).
    pub writer: crate::events::writer::Writer,
    pub config: Arc<Config>,
    /// Incidents waiting for their analysis.
    pub incidents_waiting: Arc<std::sync::atomic::AtomicU64>,
    /// Each owned stream's last sample (`GET /metrics/ports`).
    pub ports: Arc<crate::metrics::ports::PortTable>,
}

pub fn router(state: AppState) -> Router {
    // Every rejection reason shows from the start, at 0.
    crate::metrics::global()
        .ingest_rejections
        .register(ApiError::CODES);
    Router::new()
        .route("/v1/metrics", post(metrics::post_metrics))
        .route(
            crate::cluster::peers::INTERNAL_SAMPLES,
            post(metrics::post_internal_samples),
        )
        .route("/v1/cluster", get(cluster::get_cluster))
        .route("/v1/streams/{*path}", get(streams::get_stream))
        .route("/v1/stats", get(stats::get_stats))
        .route("/metrics", get(prometheus::get_metrics))
        .route("/metrics/ports", get(ports::get_port_metrics))
        .route("/v1/insights/recent", get(recent::insights))
        .route("/v1/alerts/recent", get(recent::alerts))
        .route("/v1/digest", get(digest::list))
        .route("/v1/incidents", get(incidents::list))
        .route(
            "/v1/maintenance",
            get(maintenance::list).post(maintenance::create),
        )
        .route("/v1/maintenance/{id}", delete(maintenance::end))
        .route("/v1/alerts/{*path}", post(recent::triage))
        .route("/v1/fabric", get(fabric::get_fabric))
        .route("/v1/ai/health", get(fabric::get_ai_health))
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // The ingest handler enforces its own limit so it can answer 413 in JSON.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serve on an already-bound listener until `shutdown` resolves: TLS when `tls` is given,
/// plain HTTP otherwise.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config)?, router(state))
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
