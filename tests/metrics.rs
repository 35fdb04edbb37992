//! `GET /metrics`: valid OpenMetrics text (parsed with a Prometheus parser) whose counters move
//! with ingest, rejections, detection, insights and group commits.

mod common;

use common::{eventually, now_ms, InProcess};
use ibsight::config::Config;
use prometheus_parse::{Scrape, Value};
use serde_json::json;
use std::time::Duration;

async fn scrape(srv: &InProcess) -> Scrape {
    let resp = srv
        .client
        .get(format!("{}/metrics", srv.url))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_string();
    assert!(
        ct.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ct}"
    );
    let text = resp.text().await.expect("text");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text")
}

/// The value of `name` with `label=value` (or unlabelled), 0 when absent.
fn value(s: &Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    s.samples
        .iter()
        .filter(|m| m.metric == name)
        .filter(|m| label.is_none_or(|(k, v)| m.labels.get(k) == Some(v)))
        .map(|m| match &m.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_ingest_and_analysis() {
    let srv = InProcess::start(Config::default()).await;
    let before = scrape(&srv).await;
    let t = now_ms() - 10_000;
    let body = json!({ "samples": common::spike("m/1", t) });
    assert_eq!(srv.post(&body).await.0, 202);
    assert_eq!(
        srv.post(&json!({"stream_id": "bad id", "timestamp": t, "utilization": 1}))
            .await
            .0,
        400
    );
    let recorded = eventually(Duration::from_secs(10), || async {
        let s = scrape(&srv).await;
        value(
            &s,
            "ibsight_insights_by_source_total",
            Some(("source", "rules")),
        ) > value(
            &before,
            "ibsight_insights_by_source_total",
            Some(("source", "rules")),
        )
    })
    .await;
    assert!(recorded, "no insight counted");
    let after = scrape(&srv).await;
    let grew = |name: &str, label: Option<(&str, &str)>, by: f64| {
        let (b, a) = (value(&before, name, label), value(&after, name, label));
        assert!(a - b >= by, "{name} {label:?}: {b} -> {a}");
    };
    grew(
        "ibsight_ingest_samples_total",
        Some(("outcome", "accepted")),
        2.0,
    );
    grew("ibsight_ingest_batches_total", None, 1.0);
    grew(
        "ibsight_ingest_rejections_total",
        Some(("reason", "invalid_batch")),
        1.0,
    );
    grew(
        "ibsight_anomalies_total",
        Some(("rule", "utilization_high")),
        1.0,
    );
    grew(
        "ibsight_insights_by_type_total",
        Some(("prediction_type", "resource_saturation")),
        1.0,
    );
    grew(
        "ibsight_analyst_outcomes_total",
        Some(("source", "rules")),
        1.0,
    );
    grew(
        "ibsight_incident_events_total",
        Some(("kind", "opened")),
        1.0,
    );
    grew("ibsight_group_commit_seconds", None, 1.0);
    grew("ibsight_ingest_request_seconds", None, 1.0);
    grew("ibsight_log_offset", None, 3.0);
    assert!(value(&after, "ibsight_stream_actors", None) >= 1.0);
    srv.stop().await;
}
