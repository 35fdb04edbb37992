//! Prometheus metrics: one registry of counters, gauges and histograms that the components
//! update, rendered in the Prometheus text format (0.0.4) at `GET /metrics`. Names follow the
//! conventions: `ibsight_…_total` for counters, base units (`_seconds`, `_bytes`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// A counter family keyed by one label value.
#[derive(Default)]
pub struct LabelledCounter {
    values: Mutex<BTreeMap<String, u64>>,
}

impl LabelledCounter {
    pub fn inc(&self, label: &str, n: u64) {
        let mut v = self.values.lock().expect("metrics lock poisoned");
        match v.get_mut(label) {
            Some(c) => *c += n,
            None => {
                v.insert(label.to_string(), n);
            }
        }
    }

    pub fn get(&self, label: &str) -> u64 {
        self.values
            .lock()
            .expect("metrics lock poisoned")
            .get(label)
            .copied()
            .unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        let v = self.values.lock().expect("metrics lock poisoned");
        v.iter().map(|(k, n)| (k.clone(), *n)).collect()
    }
}

/// A histogram with fixed upper bounds (seconds or counts).
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths, so it adds up exactly with integers.
    sum_micro: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        for (b, bucket) in self.bounds.iter().zip(&self.buckets) {
            if v <= *b {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BATCH_BOUNDS: &[f64] = &[1.0, 10.0, 100.0, 1000.0, 10_000.0, 50_000.0];

/// Everything `/metrics` shows that is counted as it happens.
pub struct Metrics {
    pub ingest_samples: LabelledCounter,
    pub ingest_batches: AtomicU64,
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
    pub commit_ops: Histogram,
    /// Leases this node held that another node took (it was paused or cut off past its lease).
    pub cluster_leases_lost: AtomicU64,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            ingest_samples: LabelledCounter::default(),
            ingest_batches: AtomicU64::new(0),
            ingest_rejections: LabelledCounter::default(),
            anomalies: LabelledCounter::default(),
            insights_by_type: LabelledCounter::default(),
            insights_by_source: LabelledCounter::default(),
            alerts: LabelledCounter::default(),
            incidents: LabelledCounter::default(),
            alert_triage: LabelledCounter::default(),
            dead_letters: LabelledCounter::default(),
            bedrock_latency: Histogram::new(LATENCY_BOUNDS),
            commit_seconds: Histogram::new(LATENCY_BOUNDS),
            commit_ops: Histogram::new(BATCH_BOUNDS),
            cluster_leases_lost: AtomicU64::new(0),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Builds the exposition text.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn value(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.head(name, kind, help);
        let _ = writeln!(self.out, "{name} {v}");
    }

    pub fn labelled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: &[(String, f64)],
    ) {
        self.head(name, kind, help);
        for (l, v) in values {
            let escaped = l.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(self.out, "{name}{{{label}=\"{escaped}\"}} {v}");
        }
    }

    fn counter_family(&mut self, name: &str, help: &str, label: &str, c: &LabelledCounter) {
        let values: Vec<(String, f64)> = c
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k, v as f64))
            .collect();
        self.labelled(name, "counter", help, label, &values);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.head(name, "histogram", help);
        for (b, bucket) in h.bounds.iter().zip(&h.buckets) {
            let _ = writeln!(
                self.out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            self.out,
            "{name}_sum {}",
            h.sum_micro.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(self.out, "{name}_count {count}");
    }

    /// The globally counted metrics.
    pub fn counted(&mut self, m: &Metrics) {
        self.counter_family(
            "ibsight_ingest_samples_total",
            "Samples received, by outcome.",
            "outcome",
            &m.ingest_samples,
        );
        self.value(
            "ibsight_ingest_batches_total",
            "counter",
            "Ingest requests that were recorded.",
            m.ingest_batches.load(Ordering::Relaxed) as f64,
        );
        self.counter_family(
            "ibsight_ingest_rejections_total",
            "Ingest requests refused, by reason.",
            "reason",
            &m.ingest_rejections,
        );
        self.counter_family(
            "ibsight_anomalies_total",
            "Anomalies opened or escalated, by rule.",
            "rule",
            &m.anomalies,
        );
        self.counter_family(
            "ibsight_insights_by_type_total",
            "Insights recorded, by prediction type.",
            "prediction_type",
            &m.insights_by_type,
        );
        self.counter_family(
            "ibsight_insights_by_source_total",
            "Insights recorded, by source.",
            "source",
            &m.insights_by_source,
        );
        self.counter_family(
            "ibsight_alerts_total",
            "Alert decisions, by outcome.",
            "outcome",
            &m.alerts,
        );
        self.counter_family(
            "ibsight_incident_events_total",
            "Incident events, by kind (opened, grown, escalated, resolved).",
            "kind",
            &m.incidents,
        );
        self.counter_family(
            "ibsight_alert_triage_total",
            "Operators' verdicts on raised alerts (confirmed, false_positive).",
            "verdict",
            &m.alert_triage,
        );
        self.counter_family(
            "ibsight_projection_dead_letters_total",
            "Items a sink rejected for good (kept in the dead_letters view), by projection.",
            "projection",
            &m.dead_letters,
        );
        self.histogram(
            "ibsight_bedrock_call_seconds",
            "Bedrock call latency, retries included.",
            &m.bedrock_latency,
        );
        self.histogram(
            "ibsight_group_commit_seconds",
            "Time to write and fsync one group commit.",
            &m.commit_seconds,
        );
        self.histogram(
            "ibsight_group_commit_ops",
            "Operations per group commit.",
            &m.commit_ops,
        );
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.ingest_batches.fetch_add(2, Ordering::Relaxed);
        m.ingest_samples.inc("accepted", 5);
        m.anomalies.inc("utilization_high", 1);
        m.commit_seconds.observe(0.003);
        let mut e = Exposition::default();
        e.counted(&m);
        let text = e.finish();
        assert!(
            text.contains("ibsight_ingest_samples_total{outcome=\"accepted\"} 5"),
            "{text}"
        );
        assert!(text.contains("ibsight_ingest_batches_total 2"));
        assert!(text.contains("ibsight_group_commit_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("ibsight_group_commit_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("ibsight_group_commit_seconds_count 1"));
    }
}
