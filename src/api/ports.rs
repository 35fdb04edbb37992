//! `GET /metrics/ports`: every port this node owns in the Prometheus text format, under
//! treydock/infiniband_exporter's names (`metrics::exposition`), with the open incidents'
//! verdicts per port. Written as it is rendered, on a blocking thread, so a scrape of a
//! million series never sits whole in memory nor holds an async worker.

use super::recent::SCAN_MAX;
use super::{auth, ApiError, AppState};
use crate::metrics::exposition::{self, Verdict};
use crate::projections::incidents::INCIDENTS_VIEW;
use crate::projections::views;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;

/// Chunks rendered ahead of the scraper.
const AHEAD: usize = 4;

pub async fn get_port_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    let store = state.ingestor.router().store().clone();
    let open = tokio::task::spawn_blocking(move || {
        views::recent(
            store.as_ref(),
            INCIDENTS_VIEW,
            usize::MAX,
            SCAN_MAX,
            |item| item.get("state").and_then(Value::as_str) == Some("open"),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let verdicts = verdicts(&open);
    let ports = state.ports.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let rows = ports.rows();
        exposition::render(&rows, &verdicts, |chunk| tx.blocking_send(chunk).is_ok());
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// Per port (stream id), the open incidents it is a member of and the worst risk among those
/// with an insight, from the incident view's open items.
pub fn verdicts(open: &[Value]) -> HashMap<String, Verdict> {
    let mut out: HashMap<String, Verdict> = HashMap::new();
    for item in open {
        let risk = item.get("risk_score").and_then(Value::as_f64);
        let ports = item.get("ports").and_then(Value::as_array);
        for stream in ports.into_iter().flatten() {
            let Some(id) = stream.get("stream_id").and_then(Value::as_str) else {
                continue;
            };
            let v = out.entry(id.to_string()).or_default();
            v.open_incidents += 1;
            v.worst_risk = match (v.worst_risk, risk) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_port_in_two_open_incidents_counts_both_and_takes_the_worse_known_risk() {
        // Given a link incident of risk 85 and a switch incident not yet analysed, both
        // holding leaf01/p3,
        let open = [
            json!({"state": "open", "risk_score": 85.0,
                   "ports": [{"stream_id": "leaf01/p3"}, {"stream_id": "node001/p1"}]}),
            json!({"state": "open", "risk_score": null,
                   "ports": [{"stream_id": "leaf01/p3"}]}),
        ];
        // when the verdicts are drawn,
        let v = verdicts(&open);
        // then leaf01/p3 is in two with risk 85, node001/p1 in one with risk 85.
        assert_eq!(
            v["leaf01/p3"],
            Verdict {
                open_incidents: 2,
                worst_risk: Some(85.0)
            }
        );
        assert_eq!(v["node001/p1"].open_incidents, 1);
        // A port only in an incident without an insight has a count and no risk.
        let v = verdicts(&open[1..]);
        assert_eq!(v["leaf01/p3"].worst_risk, None);
    }
}
