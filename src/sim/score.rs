//! Scoring detection against a scenario's labels: recall per fault class, prediction-type
//! accuracy, time to detect, insights on fault-free streams, and critical-alert false
//! positives. Pure: observations in, a report out.

use super::generator::Label;
use crate::analyst::insight::PredictionType;
use serde::Serialize;
use std::collections::BTreeMap;

/// An anomaly with the insight it got (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub stream_id: String,
    /// Sample time the anomaly was detected at (its window end).
    pub at_ms: i64,
    pub prediction: Option<PredictionType>,
    pub risk: u8,
    pub alerted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub incidents: usize,
    pub detected: usize,
    pub recall: f64,
    pub type_correct: usize,
    pub ttd_median_samples: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub per_class: BTreeMap<String, ClassScore>,
    pub incidents: usize,
    pub recall: f64,
    pub type_accuracy: f64,
    pub ttd_median_samples: f64,
    pub ttd_p95_samples: f64,
    pub false_insights: usize,
    pub false_insights_per_1000_stream_hours: f64,
    pub critical_alerts: usize,
    pub critical_alert_false_positive_rate: f64,
    pub anomalies: usize,
}

/// Samples after a fault ends during which its anomalies still count (resolution lags).
const GRACE_SAMPLES: i64 = 3;

fn matches(l: &Label, o: &Observed, interval_ms: i64) -> bool {
    l.streams.contains(&o.stream_id)
        && o.at_ms >= l.start_ms
        && o.at_ms <= l.end_ms + GRACE_SAMPLES * interval_ms
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn score(
    labels: &[Label],
    observed: &[Observed],
    streams: usize,
    duration_ms: i64,
    interval_ms: i64,
) -> Report {
    let faults: Vec<&Label> = labels.iter().filter(|l| l.expected.is_some()).collect();
    let mut per_class: BTreeMap<String, ClassScore> = BTreeMap::new();
    let mut ttd = Vec::new();
    let (mut detected_total, mut incidents_total, mut typed, mut correct) = (0, 0, 0, 0);
    for l in &faults {
        let class = per_class
            .entry(l.kind.name().to_string())
            .or_insert(ClassScore {
                incidents: 0,
                detected: 0,
                recall: 0.0,
                type_correct: 0,
                ttd_median_samples: 0.0,
            });
        let mut class_ttd = Vec::new();
        for stream in &l.streams {
            class.incidents += 1;
            incidents_total += 1;
            let mine: Vec<&Observed> = observed
                .iter()
                .filter(|o| &o.stream_id == stream && matches(l, o, interval_ms))
                .collect();
            let Some(first) = mine.iter().map(|o| o.at_ms).min() else {
                continue;
            };
            class.detected += 1;
            detected_total += 1;
            let samples = ((first - l.start_ms) / interval_ms + 1) as f64;
            ttd.push(samples);
            class_ttd.push(samples);
            // What the operator sees first: the highest-risk insight, earliest on a tie.
            let top = mine
                .iter()
                .filter(|o| o.prediction.is_some())
                .max_by(|a, b| a.risk.cmp(&b.risk).then(b.at_ms.cmp(&a.at_ms)));
            if let Some(top) = top {
                typed += 1;
                if top.prediction == l.expected {
                    correct += 1;
                    class.type_correct += 1;
                }
            }
        }
        class.recall = class.detected as f64 / class.incidents.max(1) as f64;
        class_ttd.sort_by(|a, b| a.total_cmp(b));
        class.ttd_median_samples = percentile(&class_ttd, 0.5);
    }
    let is_true = |o: &Observed| faults.iter().any(|l| matches(l, o, interval_ms));
    let false_insights = observed
        .iter()
        .filter(|o| o.prediction.is_some() && !is_true(o))
        .count();
    let alerts: Vec<&Observed> = observed.iter().filter(|o| o.alerted).collect();
    let false_alerts = alerts.iter().filter(|o| !is_true(o)).count();
    ttd.sort_by(|a, b| a.total_cmp(b));
    let stream_hours = streams as f64 * duration_ms as f64 / 3_600_000.0;
    Report {
        per_class,
        incidents: incidents_total,
        recall: detected_total as f64 / incidents_total.max(1) as f64,
        type_accuracy: correct as f64 / typed.max(1) as f64,
        ttd_median_samples: percentile(&ttd, 0.5),
        ttd_p95_samples: percentile(&ttd, 0.95),
        false_insights,
        false_insights_per_1000_stream_hours: false_insights as f64 / stream_hours.max(1e-9)
            * 1000.0,
        critical_alerts: alerts.len(),
        critical_alert_false_positive_rate: false_alerts as f64 / alerts.len().max(1) as f64,
        anomalies: observed.len(),
    }
}

/// The report as an aligned text table.
pub fn table(r: &Report) -> String {
    let mut out = String::from(
        "fault class              incidents  detected  recall  type ok  ttd (samples)\n",
    );
    for (name, c) in &r.per_class {
        out.push_str(&format!(
            "{name:<24} {:>9} {:>9} {:>6.1}% {:>8} {:>14}\n",
            c.incidents,
            c.detected,
            c.recall * 100.0,
            c.type_correct,
            c.ttd_median_samples
        ));
    }
    if r.incidents == 0 {
        out.push_str("(no faults in this scenario: recall and type accuracy do not apply)\n");
    }
    out.push_str(&format!(
        "\nrecall {:.1}%  type accuracy {:.1}%  time to detect median {} / p95 {} samples\n\
         insights on fault-free streams: {} ({:.1} per 1,000 stream-hours)\n\
         critical alerts: {}, false-positive rate {:.1}%\n",
        r.recall * 100.0,
        r.type_accuracy * 100.0,
        r.ttd_median_samples,
        r.ttd_p95_samples,
        r.false_insights,
        r.false_insights_per_1000_stream_hours,
        r.critical_alerts,
        r.critical_alert_false_positive_rate * 100.0
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::faults::FaultKind;

    fn label(kind: FaultKind, stream: &str) -> Label {
        Label {
            kind,
            streams: vec![stream.into()],
            start_ms: 10_000,
            end_ms: 20_000,
            expected: kind.expected(),
        }
    }

    fn obs(stream: &str, at_s: i64, p: PredictionType, risk: u8, alerted: bool) -> Observed {
        Observed {
            stream_id: stream.into(),
            at_ms: at_s * 1000,
            prediction: Some(p),
            risk,
            alerted,
        }
    }

    #[test]
    fn scores_recall_type_ttd_and_false_positives() {
        let labels = [
            label(FaultKind::LatencySpike, "a"),
            label(FaultKind::LinkFlapping, "b"),
            label(FaultKind::CounterReset, "c"),
        ];
        let observed = [
            obs("a", 11, PredictionType::LatencySpike, 65, false),
            obs("a", 12, PredictionType::PerformanceDegradation, 45, false),
            // b is missed; c's benign event and a healthy stream d produce false insights.
            obs("c", 12, PredictionType::AnomalyDetected, 45, false),
            obs("d", 50, PredictionType::ResourceSaturation, 85, true),
        ];
        let r = score(&labels, &observed, 10, 3_600_000, 1000);
        assert_eq!(r.recall, 0.5);
        assert_eq!(r.type_accuracy, 1.0);
        assert_eq!(r.ttd_median_samples, 2.0);
        assert_eq!(r.false_insights, 2);
        assert_eq!(r.false_insights_per_1000_stream_hours, 200.0);
        assert_eq!(
            (r.critical_alerts, r.critical_alert_false_positive_rate),
            (1, 1.0)
        );
        assert_eq!(r.per_class["link_flapping"].detected, 0);
        assert!(table(&r).contains("latency_spike"));
    }
}
