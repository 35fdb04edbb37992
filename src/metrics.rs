//! Prometheus metrics, on the Prometheus project's own client (`prometheus-client`): counters,
//! gauges and histograms that the components update, exposed at `GET /metrics` in the
//! OpenMetrics text format. Names follow the conventions: `ibsight_…_total` for counters, base
//! units (`_seconds`, `_bytes`).
//!
//! Nothing that counts takes a lock: a labelled counter resolves its known label values to
//! atomic counters when it is made (a label value nobody declared falls back to the client's
//! family, which does lock: only `dead_letters`' projection names come that way, off the ingest
//! path), and the histograms are plain atomics.

pub mod exposition;
pub mod ports;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// One label's name and value, the label set of every labelled family here.
pub type Label = [(&'static str, String); 1];

/// A counter family keyed by one label, whose declared values count without a lock.
#[derive(Debug)]
pub struct LabelledCounter {
    label: &'static str,
    family: Family<Label, Counter>,
    known: Box<[(&'static str, Counter)]>,
}

impl LabelledCounter {
    /// `known`: the label values to count lock-free (they are shown from the start, at 0).
    pub fn new(label: &'static str, known: &[&'static str]) -> LabelledCounter {
        let family = Family::<Label, Counter>::default();
        let known = known
            .iter()
            .map(|v| (*v, family.get_or_create(&[(label, v.to_string())]).clone()))
            .collect();
        LabelledCounter {
            label,
            family,
            known,
        }
    }

    pub fn inc(&self, value: &str, n: u64) {
        match self.known.iter().find(|(k, _)| *k == value) {
            Some((_, c)) => {
                c.inc_by(n);
            }
            None => {
                self.family
                    .get_or_create(&[(self.label, value.to_string())])
                    .inc_by(n);
            }
        }
    }

    /// Show these label values from now on, at 0 until counted (for values a layer above
    /// owns, such as the API's error codes).
    pub fn register(&self, values: &[&str]) {
        for v in values {
            let _ = self.family.get_or_create(&[(self.label, v.to_string())]);
        }
    }

    pub fn get(&self, value: &str) -> u64 {
        match self.known.iter().find(|(k, _)| *k == value) {
            Some((_, c)) => c.get(),
            None => self
                .family
                .get(&[(self.label, value.to_string())])
                .map_or(0, |c| c.get()),
        }
    }
}

/// A histogram with fixed upper bounds (seconds or counts), all atomics.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last one is +Inf.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// Sum in millionths, so it adds up exactly with integers.
    sum_micro: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram(Arc::new(HistogramInner {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, v: f64) {
        let h = &self.0;
        let i = h.bounds.partition_point(|b| *b < v);
        h.buckets[i].fetch_add(1, Ordering::Relaxed);
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        let buckets: Vec<(f64, u64)> = h
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(h.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        // The count is the buckets' sum, so a scrape racing an observation stays consistent.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = h.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Finer at the low end: the ingest target is a p99 under 10 ms.
const REQUEST_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BOUNDS: &[f64] = &[1.0, 10.0, 100.0, 1000.0, 10_000.0, 50_000.0];

/// Everything `/metrics` shows that is counted as it happens.
#[derive(Debug)]
pub struct Metrics {
    pub ingest_samples: LabelledCounter,
    pub ingest_batches: Counter,
    pub ingest_rejections: LabelledCounter,
    pub anomalies: LabelledCounter,
    pub insights_by_type: LabelledCounter,
    pub insights_by_source: LabelledCounter,
    pub alerts: LabelledCounter,
    pub incidents: LabelledCounter,
    pub alert_triage: LabelledCounter,
    /// Items a sink rejected for good, by projection.
    pub dead_letters: LabelledCounter,
    pub bedrock_latency: Histogram,
    pub commit_seconds: Histogram,
    /// From a `POST /v1/metrics` handler's start to its answer, whatever the answer.
    pub ingest_request_seconds: Histogram,
    pub commit_ops: Histogram,
    /// Leases this node held that another node took (it was paused or cut off past its lease).
    pub cluster_leases_lost: Counter,
    /// Raw samples the packer moved into compressed segments.
    pub store_packed_samples: Counter,
    /// TLS handshakes that failed or timed out (`serve` with `[server.tls]`).
    pub tls_handshake_failures: Counter,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    pub fn new() -> Metrics {
        let rules: Vec<&'static str> = crate::detect::rules::Rule::ALL
            .iter()
            .map(|r| r.name())
            .collect();
        let types: Vec<&'static str> = crate::vocab::PredictionType::ALL
            .iter()
            .map(|p| p.name())
            .collect();
        Metrics {
            ingest_samples: LabelledCounter::new(
                "outcome",
                &["accepted", "duplicate", "late", "too_many_streams"],
            ),
            ingest_batches: Counter::default(),
            // The API registers its error codes (`api::router`).
            ingest_rejections: LabelledCounter::new("reason", &[]),
            anomalies: LabelledCounter::new("rule", &rules),
            insights_by_type: LabelledCounter::new("prediction_type", &types),
            // As the correlator names them: the source's variant in lower case.
            insights_by_source: LabelledCounter::new(
                "source",
                &["ai", "rules", "fallback", "cache"],
            ),
            alerts: LabelledCounter::new("outcome", &["raised", "suppressed"]),
            incidents: LabelledCounter::new("kind", &["opened", "grown", "escalated", "resolved"]),
            alert_triage: LabelledCounter::new("verdict", &["confirmed", "false_positive"]),
            dead_letters: LabelledCounter::new("projection", &[]),
            bedrock_latency: Histogram::new(LATENCY_BOUNDS),
            commit_seconds: Histogram::new(LATENCY_BOUNDS),
            ingest_request_seconds: Histogram::new(REQUEST_BOUNDS),
            commit_ops: Histogram::new(BATCH_BOUNDS),
            cluster_leases_lost: Counter::default(),
            tls_handshake_failures: Counter::default(),
            store_packed_samples: Counter::default(),
        }
    }

    /// Registers the counted metrics (shared handles: the registry reads the same atomics).
    pub fn register(&self, r: &mut Registry) {
        let family = |r: &mut Registry, name: &str, help: &str, c: &LabelledCounter| {
            r.register(name, help, c.family.clone())
        };
        family(
            r,
            "ibsight_ingest_samples",
            "Samples received, by outcome",
            &self.ingest_samples,
        );
        r.register(
            "ibsight_ingest_batches",
            "Ingest requests that were recorded",
            self.ingest_batches.clone(),
        );
        family(
            r,
            "ibsight_ingest_rejections",
            "Ingest requests refused, by reason",
            &self.ingest_rejections,
        );
        family(
            r,
            "ibsight_anomalies",
            "Anomalies opened or escalated, by rule",
            &self.anomalies,
        );
        family(
            r,
            "ibsight_insights_by_type",
            "Insights recorded, by prediction type",
            &self.insights_by_type,
        );
        family(
            r,
            "ibsight_insights_by_source",
            "Insights recorded, by source",
            &self.insights_by_source,
        );
        family(
            r,
            "ibsight_alerts",
            "Alert decisions, by outcome",
            &self.alerts,
        );
        family(
            r,
            "ibsight_incident_events",
            "Incident events, by kind (opened, grown, escalated, resolved)",
            &self.incidents,
        );
        family(
            r,
            "ibsight_alert_triage",
            "Operators' verdicts on raised alerts (confirmed, false_positive)",
            &self.alert_triage,
        );
        family(
            r,
            "ibsight_projection_dead_letters",
            "Items a sink rejected for good (kept in the dead_letters view), by projection",
            &self.dead_letters,
        );
        r.register(
            "ibsight_bedrock_call_seconds",
            "Bedrock call latency, retries included",
            self.bedrock_latency.clone(),
        );
        r.register(
            "ibsight_group_commit_seconds",
            "Time to write and fsync one group commit",
            self.commit_seconds.clone(),
        );
        r.register(
            "ibsight_ingest_request_seconds",
            "Time from a POST /v1/metrics request's start to its answer (the server's share)",
            self.ingest_request_seconds.clone(),
        );
        r.register(
            "ibsight_group_commit_ops",
            "Operations per group commit",
            self.commit_ops.clone(),
        );
        r.register(
            "ibsight_store_packed_samples",
            "Raw samples packed into compressed segments",
            self.store_packed_samples.clone(),
        );
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The OpenMetrics text of a registry.
pub fn render(r: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, r)
        .expect("encoding into a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_text_with_every_declared_label() {
        // Given counts of a few kinds
        let m = Metrics::new();
        m.ingest_batches.inc_by(2);
        m.ingest_samples.inc("accepted", 5);
        m.anomalies.inc("utilization_high", 1);
        m.dead_letters.inc("dynamodb", 3);
        m.commit_seconds.observe(0.003);
        m.commit_seconds.observe(0.005);
        // When rendered
        let mut r = Registry::default();
        m.register(&mut r);
        let text = render(&r);
        // Then each shows with its name and labels, declared values from 0
        for line in [
            "ibsight_ingest_samples_total{outcome=\"accepted\"} 5",
            "ibsight_ingest_samples_total{outcome=\"late\"} 0",
            "ibsight_ingest_batches_total 2",
            "ibsight_anomalies_total{rule=\"utilization_high\"} 1",
            "ibsight_projection_dead_letters_total{projection=\"dynamodb\"} 3",
            "ibsight_group_commit_seconds_bucket{le=\"0.001\"} 0",
            "ibsight_group_commit_seconds_bucket{le=\"0.005\"} 2",
            "ibsight_group_commit_seconds_bucket{le=\"+Inf\"} 2",
            "ibsight_group_commit_seconds_count 2",
            "# TYPE ibsight_ingest_samples counter",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(m.ingest_samples.get("accepted"), 5);
        // The declared sources and verdicts are the names the counting code gives them
        use crate::vocab::InsightSource;
        use crate::vocab::Verdict;
        for source in [
            InsightSource::Ai,
            InsightSource::Rules,
            InsightSource::Fallback,
            InsightSource::Cache,
        ] {
            let name = format!("{source:?}").to_lowercase();
            assert!(m.insights_by_source.known.iter().any(|(k, _)| *k == name));
        }
        for verdict in [Verdict::Confirmed, Verdict::FalsePositive] {
            assert!(m
                .alert_triage
                .known
                .iter()
                .any(|(k, _)| *k == verdict.name()));
        }
        assert_eq!(m.dead_letters.get("dynamodb"), 3);
        assert_eq!(m.dead_letters.get("views"), 0);
    }

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 1.5, 10.0, 11.0] {
            h.observe(v);
        }
        let per_bucket: Vec<u64> =
            h.0.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
        assert_eq!(per_bucket, [2, 2, 1]);
    }
}
