//! A stream's recent samples against its baseline, for the dashboard's drill-down: each metric's
//! value with the baseline mean and standard deviation the detector held just before that
//! sample, plus the recorded anomalies. Baselines are recomputed by replaying the stream's
//! recent events with today's detection code, starting `WARMUP` samples before the window
//! (the EWMA forgets its start well within that: 0.9^100 < 0.01 % at α = 0.1).

use crate::actors::stream::state::{self, StreamState};
use crate::detect::DetectConfig;
use crate::events::{StoredEvent, StreamEvent};
use crate::sample::Metric;
use serde::Serialize;
use std::collections::BTreeMap;

/// Samples replayed before the window so the baselines are warm.
pub const WARMUP: usize = 100;
/// The band drawn around the mean, in standard deviations.
pub const BAND_K: f64 = 3.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricSeries {
    pub value: Vec<Option<f64>>,
    pub mean: Vec<Option<f64>>,
    pub stddev: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    pub t: i64,
    pub kind: &'static str,
    pub metric: String,
    pub rule: &'static str,
    pub severity: Option<&'static str>,
    pub anomaly_id: String,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub stream_id: String,
    pub band_k: f64,
    /// Sample times (epoch ms), oldest first.
    pub t: Vec<i64>,
    /// By metric field name; only metrics the stream reports.
    pub metrics: BTreeMap<&'static str, MetricSeries>,
    pub anomalies: Vec<Marker>,
}

/// The series of the last `points` samples among `events` (one stream's, in seq order).
pub fn series(
    stream_id: &str,
    events: &[StoredEvent],
    points: usize,
    detect: &DetectConfig,
) -> Series {
    let samples = events
        .iter()
        .filter(|e| e.record.event_type == "MetricObserved")
        .count();
    let skip = samples.saturating_sub(points);
    let mut st = StreamState::new(stream_id);
    let mut out = Series {
        stream_id: stream_id.to_string(),
        band_k: BAND_K,
        t: Vec::new(),
        metrics: BTreeMap::new(),
        anomalies: Vec::new(),
    };
    let mut seen = 0;
    let mut first_t = None;
    for e in events {
        let Ok(event) = e.record.decode_event() else {
            continue;
        };
        match event {
            StreamEvent::MetricObserved(m) => {
                seen += 1;
                if seen > skip {
                    let sample = &m.sample;
                    first_t.get_or_insert(sample.timestamp_ms);
                    let n = out.t.len();
                    out.t.push(sample.timestamp_ms);
                    for metric in Metric::ALL {
                        let value = sample.metric(metric);
                        let series = out.metrics.entry(metric.field());
                        if value.is_none()
                            && matches!(series, std::collections::btree_map::Entry::Vacant(_))
                        {
                            continue;
                        }
                        let s = series.or_insert_with(|| MetricSeries {
                            value: vec![None; n],
                            mean: vec![None; n],
                            stddev: vec![None; n],
                        });
                        let baseline = st.detector.baselines.get(&metric).filter(|b| b.count > 0);
                        s.value.push(value);
                        s.mean.push(baseline.map(|b| b.mean));
                        s.stddev.push(baseline.map(|b| b.stddev()));
                    }
                    // Metrics seen before but missing in this sample stay aligned.
                    for s in out.metrics.values_mut() {
                        for v in [&mut s.value, &mut s.mean, &mut s.stddev] {
                            v.resize(n + 1, None);
                        }
                    }
                }
                let _ = state::replay_sample(&mut st, m.sample, detect);
            }
            StreamEvent::AnomalyDetected(a) if first_t.is_some_and(|t| a.window_end_ms >= t) => {
                out.anomalies.push(Marker {
                    t: a.window_end_ms,
                    kind: "detected",
                    metric: a.metric,
                    rule: a.rule.name(),
                    severity: Some(a.severity.name()),
                    anomaly_id: a.anomaly_id,
                    seq: e.record.seq,
                });
            }
            StreamEvent::AnomalyResolved(r) if first_t.is_some_and(|t| r.resolved_at_ms >= t) => {
                out.anomalies.push(Marker {
                    t: r.resolved_at_ms,
                    kind: "resolved",
                    metric: r.metric,
                    rule: r.rule.name(),
                    severity: None,
                    anomaly_id: r.anomaly_id,
                    seq: e.record.seq,
                });
            }
            StreamEvent::AnomalyDetected(_) | StreamEvent::AnomalyResolved(_) => {}
            other => state::apply(&mut st, &other, detect),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::codec::EventRecord;
    use crate::events::Origin;
    use crate::sample::Sample;

    fn sample(ts: i64, utilization: f64) -> Sample {
        Sample {
            stream_id: "leaf1/p1".into(),
            timestamp_ms: ts,
            latency_p99_us: None,
            utilization_pct: Some(utilization),
            error_rate: None,
            bandwidth_gbps: None,
            qp_errors: None,
            counters: Default::default(),
            labels: Default::default(),
            ..Default::default()
        }
    }

    /// The stream's events as the stream actor would have logged them.
    fn log(values: &[f64]) -> Vec<StoredEvent> {
        let mut st = StreamState::new("leaf1/p1");
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let decision = state::step(
                &mut st,
                &sample(1000 * (i as i64 + 1), *v),
                &DetectConfig::default(),
            );
            let state::Decision::Record(events) = decision else {
                panic!("a fresh sample is recorded: {decision:?}");
            };
            for event in events {
                let seq = out.len() as u64 + 1;
                out.push(StoredEvent {
                    offset: seq,
                    record: EventRecord::of("leaf1/p1", seq, 0, &event, &Origin::default()),
                });
            }
        }
        out
    }

    #[test]
    fn the_window_shows_values_against_the_baseline_before_each_sample_and_the_anomalies() {
        let mut values = vec![50.0; 40];
        values.extend([97.0; 3]);
        values.extend([50.0; 7]);
        let events = log(&values);
        let s = series("leaf1/p1", &events, 20, &DetectConfig::default());
        assert_eq!(s.t.len(), 20);
        assert_eq!(s.t[0], 31_000, "the last 20 samples");
        let u = &s.metrics["utilization"];
        assert_eq!(u.value.len(), 20);
        assert_eq!(u.value[10], Some(97.0));
        // The baseline before the spike is the steady 50, with no spread.
        assert_eq!(u.mean[10], Some(50.0));
        assert_eq!(u.stddev[10], Some(0.0));
        assert!(
            !s.metrics.contains_key("latency_p99"),
            "only reported metrics"
        );
        let detected: Vec<&Marker> = s
            .anomalies
            .iter()
            .filter(|m| m.kind == "detected")
            .collect();
        assert_eq!(detected.len(), 1, "{:?}", s.anomalies);
        assert_eq!(detected[0].t, 43_000, "after persisting three samples");
        assert_eq!(detected[0].metric, "utilization");
        assert!(s.anomalies.iter().any(|m| m.kind == "resolved"));
    }
}
