use super::*;
use crate::analyst::job::Reading;
use crate::events::types::AnomalyDetectedV2;

pub fn job(rule: Rule, metric: &str, value: f64, severity: Severity) -> AnomalyJob {
    AnomalyJob {
        incident: None,
        stream_id: "leaf01/p07".into(),
        anomaly_seq: 12,
        anomaly: AnomalyDetectedV2 {
            anomaly_id: "a".into(),
            rule,
            metric: metric.into(),
            value,
            baseline: Some(50.0),
            delta_pct: Some(84.0),
            threshold: 80.0,
            severity,
            escalated_from: None,
            window_start_ms: 0,
            window_end_ms: 1000,
            port: Default::default(),
            peer: None,
        },
        readings: vec![Reading {
            metric: "latency_p99",
            value: 4.5,
            baseline: Some(4.0),
        }],
        origin: Default::default(),
    }
}

#[test]
fn every_rule_maps_to_a_prediction_with_two_to_four_specific_steps() {
    for rule in Rule::ALL {
        let i = insight(&job(rule, "utilization", 92.0, Severity::Major));
        assert!((2..=4).contains(&i.recommendations.len()), "{rule:?}");
        assert!(
            i.recommendations.iter().any(|r| r.contains("leaf01/p07")),
            "{rule:?}: recommendations name the port"
        );
        assert!(i.risk_score <= 100);
    }
}

#[test]
fn the_explanation_quotes_the_numbers() {
    let i = insight(&job(
        Rule::UtilizationHigh,
        "utilization",
        92.0,
        Severity::Major,
    ));
    assert_eq!(i.prediction_type, PredictionType::ResourceSaturation);
    assert!(i.explanation.contains("92"), "{}", i.explanation);
    assert!(i.explanation.contains("80"), "{}", i.explanation);
    assert!(i.explanation.contains("+84.0 %"), "{}", i.explanation);
    assert!(
        i.explanation.contains("latency_p99 4.50"),
        "{}",
        i.explanation
    );
}

#[test]
fn link_problems_point_at_the_cable() {
    let i = insight(&job(
        Rule::SymbolErrors,
        "SymbolErrorCounter",
        300.0,
        Severity::Major,
    ));
    assert_eq!(i.prediction_type, PredictionType::ConnectionInstability);
    assert!(i.recommendations[0].starts_with("Reseat or replace the cable on leaf01/p07"));
    let down = insight(&job(
        Rule::LinkDowned,
        "LinkDownedCounter",
        1.0,
        Severity::Critical,
    ));
    assert!(down.risk_score >= 80, "a flapping link is critical");
    let busy = insight(&job(
        Rule::UtilizationHigh,
        "utilization",
        99.0,
        Severity::Warning,
    ));
    assert!(busy.risk_score < 50, "a busy, healthy link is low risk");
}

#[test]
fn risk_follows_severity() {
    let r = |s| insight(&job(Rule::LatencySpike, "latency_p99", 20.0, s)).risk_score;
    assert!(r(Severity::Warning) < r(Severity::Major));
    assert!(r(Severity::Major) < r(Severity::Critical));
    assert!(r(Severity::Critical) >= 80);
}
