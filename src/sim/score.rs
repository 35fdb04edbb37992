//! Scoring detection against a scenario's labels: recall per fault class, prediction-type
//! accuracy, time to detect, insights on fault-free streams, and critical-alert false
//! positives. Pure: observations in, a report out.

use super::generator::Label;
use crate::events::types::IncidentScope;
use crate::vocab::PredictionType;
use serde::Serialize;
use std::collections::BTreeMap;

/// An anomaly with the insight its (final) incident got, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub stream_id: String,
    /// Sample time the anomaly was detected at (its window end).
    pub at_ms: i64,
    pub prediction: Option<PredictionType>,
    pub risk: u8,
    pub alerted: bool,
    pub incident: Option<String>,
    pub scope: Option<IncidentScope>,
}

/// An analysed incident: what an operator is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentObserved {
    pub incident_id: String,
    /// (stream, sample time) of each member anomaly.
    pub anomalies: Vec<(String, i64)>,
    pub prediction: PredictionType,
    pub risk: u8,
    pub alerted: bool,
}

/// The run being scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    pub streams: usize,
    pub duration_ms: i64,
    pub interval_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    /// Faults of the class, and the ports they touched (each should be detected).
    pub faults: usize,
    pub incidents: usize,
    pub detected: usize,
    pub recall: f64,
    pub type_correct: usize,
    /// Faults whose anomalies form the expected incident (one link incident for a cable, one
    /// switch incident for a switch).
    pub scope_correct: usize,
    pub ttd_median_samples: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub per_class: BTreeMap<String, ClassScore>,
    pub incidents: usize,
    pub recall: f64,
    pub type_accuracy: f64,
    pub scope_accuracy: f64,
    /// Mean absolute difference between the risk the operator sees first and the label's.
    pub risk_mae: f64,
    /// The share of those within the plan's ±10 points.
    pub risk_within_10: f64,
    pub ttd_median_samples: f64,
    pub ttd_p95_samples: f64,
    pub stream_hours: f64,
    /// Analysed incidents none of whose anomalies is on a faulty port during its fault.
    pub false_insights: usize,
    pub false_insights_per_10k_stream_hours: f64,
    /// Incidents that raised a critical alert.
    pub critical_alerts: usize,
    pub critical_alert_false_positive_rate: f64,
    /// Alerted incidents per switch fault (the target is 1).
    pub alerts_per_switch_event: f64,
    pub anomalies: usize,
}

/// Samples after a fault ends during which its anomalies still count (resolution lags).
const GRACE_SAMPLES: i64 = 3;

fn in_window(l: &Label, stream: &str, at_ms: i64, interval_ms: i64) -> bool {
    l.streams.iter().any(|s| s == stream)
        && at_ms >= l.start_ms
        && at_ms <= l.end_ms + GRACE_SAMPLES * interval_ms
}

fn matches(l: &Label, o: &Observed, interval_ms: i64) -> bool {
    in_window(l, &o.stream_id, o.at_ms, interval_ms)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Whether a fault's anomalies form the incident it should: one incident, of its scope (a
/// port fault may show as a port or link incident).
fn scope_ok(l: &Label, mine: &[&Observed]) -> bool {
    let ids: std::collections::BTreeSet<&str> =
        mine.iter().filter_map(|o| o.incident.as_deref()).collect();
    let scope = mine.iter().find_map(|o| o.scope);
    ids.len() == 1
        && match (l.scope, scope) {
            (Some(IncidentScope::Port), Some(IncidentScope::Port | IncidentScope::Link)) => true,
            (Some(want), Some(got)) => want == got,
            _ => false,
        }
}

pub fn score(
    labels: &[Label],
    observed: &[Observed],
    incidents: &[IncidentObserved],
    run: &Run,
) -> Report {
    let interval_ms = run.interval_ms;
    let faults: Vec<&Label> = labels.iter().filter(|l| l.expected.is_some()).collect();
    let mut per_class: BTreeMap<String, ClassScore> = BTreeMap::new();
    let mut ttd = Vec::new();
    let (mut detected_total, mut incidents_total, mut typed, mut correct) = (0, 0, 0, 0);
    let (mut scoped, mut scope_correct) = (0, 0);
    let mut risk_errors: Vec<u8> = Vec::new();
    for l in &faults {
        let class = per_class
            .entry(l.kind.name().to_string())
            .or_insert(ClassScore {
                faults: 0,
                incidents: 0,
                detected: 0,
                recall: 0.0,
                type_correct: 0,
                scope_correct: 0,
                ttd_median_samples: 0.0,
            });
        class.faults += 1;
        let all: Vec<&Observed> = observed
            .iter()
            .filter(|o| matches(l, o, interval_ms))
            .collect();
        if !all.is_empty() {
            scoped += 1;
            if scope_ok(l, &all) {
                scope_correct += 1;
                class.scope_correct += 1;
            }
        }
        let mut class_ttd = Vec::new();
        for stream in &l.streams {
            class.incidents += 1;
            incidents_total += 1;
            let mine: Vec<&Observed> = all
                .iter()
                .copied()
                .filter(|o| &o.stream_id == stream)
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
                if let Some(want) = l.kind.expected_risk() {
                    risk_errors.push(top.risk.abs_diff(want));
                }
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
    let is_true = |i: &IncidentObserved| {
        i.anomalies.iter().any(|(stream, at)| {
            faults
                .iter()
                .any(|l| in_window(l, stream, *at, interval_ms))
        })
    };
    let false_insights = incidents.iter().filter(|i| !is_true(i)).count();
    let alerts: Vec<&IncidentObserved> = incidents.iter().filter(|i| i.alerted).collect();
    let false_alerts = alerts.iter().filter(|i| !is_true(i)).count();
    let switch_faults: Vec<&&Label> = faults.iter().filter(|l| l.kind.is_switch()).collect();
    let switch_alerts: usize = switch_faults
        .iter()
        .map(|l| {
            alerts
                .iter()
                .filter(|i| {
                    i.anomalies
                        .iter()
                        .any(|(s, at)| in_window(l, s, *at, interval_ms))
                })
                .count()
        })
        .sum();
    ttd.sort_by(|a, b| a.total_cmp(b));
    let stream_hours = run.streams as f64 * run.duration_ms as f64 / 3_600_000.0;
    Report {
        per_class,
        incidents: incidents_total,
        recall: detected_total as f64 / incidents_total.max(1) as f64,
        type_accuracy: correct as f64 / typed.max(1) as f64,
        scope_accuracy: scope_correct as f64 / scoped.max(1) as f64,
        risk_mae: risk_errors.iter().map(|&e| f64::from(e)).sum::<f64>()
            / risk_errors.len().max(1) as f64,
        risk_within_10: risk_errors.iter().filter(|&&e| e <= 10).count() as f64
            / risk_errors.len().max(1) as f64,
        ttd_median_samples: percentile(&ttd, 0.5),
        ttd_p95_samples: percentile(&ttd, 0.95),
        stream_hours,
        false_insights,
        false_insights_per_10k_stream_hours: false_insights as f64 / stream_hours.max(1e-9)
            * 10_000.0,
        critical_alerts: alerts.len(),
        critical_alert_false_positive_rate: false_alerts as f64 / alerts.len().max(1) as f64,
        alerts_per_switch_event: switch_alerts as f64 / switch_faults.len().max(1) as f64,
        anomalies: observed.len(),
    }
}

/// The report as an aligned text table.
pub fn table(r: &Report) -> String {
    let mut out = String::from(
        "fault class                faults  ports  detected  recall  type ok  scope ok  ttd (samples)\n",
    );
    for (name, c) in &r.per_class {
        out.push_str(&format!(
            "{name:<26} {:>6} {:>6} {:>9} {:>6.1}% {:>8} {:>9} {:>14}\n",
            c.faults,
            c.incidents,
            c.detected,
            c.recall * 100.0,
            c.type_correct,
            c.scope_correct,
            c.ttd_median_samples
        ));
    }
    if r.incidents == 0 {
        out.push_str(
            "(no faults in this scenario: recall, type and scope accuracy do not apply)\n",
        );
    }
    out.push_str(&format!(
        "\nrecall {:.1}%  type accuracy {:.1}%  scope accuracy {:.1}%  time to detect median {} / p95 {} samples\n\
         risk against the labels: mean error {:.1} points, {:.1}% within ±10\n\
         insights on fault-free ports: {} in {:.0} stream-hours ({:.2} per 10,000 stream-hours)\n\
         critical alerts: {} incidents, false-positive rate {:.1}%, {:.1} per switch event\n",
        r.recall * 100.0,
        r.type_accuracy * 100.0,
        r.scope_accuracy * 100.0,
        r.ttd_median_samples,
        r.ttd_p95_samples,
        r.risk_mae,
        r.risk_within_10 * 100.0,
        r.false_insights,
        r.stream_hours,
        r.false_insights_per_10k_stream_hours,
        r.critical_alerts,
        r.critical_alert_false_positive_rate * 100.0,
        r.alerts_per_switch_event
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::faults::FaultKind;

    fn label(kind: FaultKind, streams: &[&str]) -> Label {
        Label {
            kind,
            streams: streams.iter().map(|s| s.to_string()).collect(),
            start_ms: 10_000,
            end_ms: 20_000,
            expected: kind.expected(),
            scope: kind.expected_scope(),
        }
    }

    fn obs(
        stream: &str,
        at_s: i64,
        p: PredictionType,
        incident: &str,
        scope: IncidentScope,
    ) -> Observed {
        Observed {
            stream_id: stream.into(),
            at_ms: at_s * 1000,
            prediction: Some(p),
            risk: 60,
            alerted: false,
            incident: Some(incident.into()),
            scope: Some(scope),
        }
    }

    fn incident(id: &str, at: &[(&str, i64)], alerted: bool) -> IncidentObserved {
        IncidentObserved {
            incident_id: id.into(),
            anomalies: at.iter().map(|(s, t)| (s.to_string(), t * 1000)).collect(),
            prediction: PredictionType::AnomalyDetected,
            risk: if alerted { 85 } else { 40 },
            alerted,
        }
    }

    #[test]
    fn given_faults_and_observations_then_recall_type_scope_and_false_insights() {
        use IncidentScope::*;
        let labels = [
            label(FaultKind::LatencySpike, &["a"]),
            label(FaultKind::WidthDegraded, &["b1", "b2"]),
            label(FaultKind::SwitchDown, &["s1", "s2", "s3"]),
            label(FaultKind::CounterReset, &["c"]),
        ];
        let observed = [
            obs("a", 11, PredictionType::LatencySpike, "i1", Port),
            // The cable's two ends in one link incident.
            obs("b1", 12, PredictionType::BandwidthThrottling, "i2", Link),
            obs("b2", 12, PredictionType::BandwidthThrottling, "i2", Link),
            // The switch split over two incidents: scope wrong; s3 missed.
            obs(
                "s1",
                13,
                PredictionType::ConnectionInstability,
                "i3",
                Switch,
            ),
            obs("s2", 13, PredictionType::ConnectionInstability, "i4", Port),
            // A healthy port.
            obs("d", 50, PredictionType::ResourceSaturation, "i5", Port),
        ];
        let incidents = [
            incident("i1", &[("a", 11)], false),
            incident("i2", &[("b1", 12), ("b2", 12)], false),
            incident("i3", &[("s1", 13)], true),
            incident("i4", &[("s2", 13)], true),
            incident("i5", &[("d", 50)], true),
        ];
        let run = Run {
            streams: 10,
            duration_ms: 3_600_000,
            interval_ms: 1000,
        };
        let r = score(&labels, &observed, &incidents, &run);
        assert_eq!(r.incidents, 6);
        assert!((r.recall - 5.0 / 6.0).abs() < 1e-9, "{}", r.recall);
        assert_eq!(r.type_accuracy, 1.0);
        assert!((r.scope_accuracy - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.false_insights, 1);
        assert_eq!(r.false_insights_per_10k_stream_hours, 1000.0);
        assert_eq!(r.critical_alerts, 3);
        assert!((r.critical_alert_false_positive_rate - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.alerts_per_switch_event, 2.0);
        // Risk 60 seen on each detected port against the labels 65, 75, 75, 95, 95.
        assert_eq!(r.risk_mae, 21.0);
        assert!(
            (r.risk_within_10 - 0.2).abs() < 1e-9,
            "{}",
            r.risk_within_10
        );
        assert!(table(&r).contains("width_degraded"));
        assert!(table(&r).contains("mean error 21.0 points, 20.0% within ±10"));
    }
}
