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
        i.explanation.contains("latency_p99 4.5 µs (baseline 4 µs)"),
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

/// A typical finding of each rule: metric, value, threshold (as detection reports them).
fn typical(rule: Rule) -> (&'static str, f64, f64) {
    match rule {
        Rule::UtilizationHigh => ("utilization", 92.5, 80.0),
        Rule::LatencySpike => ("latency_p99", 12.3, 4.1),
        Rule::ErrorRateHigh => ("error_rate", 0.072, 0.05),
        Rule::BaselineDeviation => ("bandwidth_gbps", 41.7, 20.0),
        Rule::SymbolErrors => ("SymbolErrorCounter", 3.4e-11, 1e-12),
        Rule::LinkErrorRecovery => ("LinkErrorRecoveryCounter", 14.0, 12.0),
        Rule::LinkDowned => ("LinkDownedCounter", 4.0, 3.0),
        Rule::LinkIntegrity => ("LocalLinkIntegrityErrors", 0.25, 0.1),
        Rule::PortRcvErrors => ("PortRcvErrors", 75.5, 60.0),
        Rule::XmitDiscards => ("PortXmitDiscards", 812.0, 600.0),
        Rule::BufferOverrun => ("ExcessiveBufferOverrunErrors", 0.5, 0.0),
        Rule::Vl15Dropped => ("VL15Dropped", 51.0, 50.0),
        Rule::RemotePhysical => ("PortRcvRemotePhysicalErrors", 640.0, 600.0),
        Rule::ConstraintErrors => ("PortXmitConstraintErrors", 700.0, 600.0),
        Rule::Congestion => ("PortXmitWait", 0.137, 0.1),
        Rule::QpErrorsHigh => ("qp_errors", 2.5, 1.0),
        Rule::LinkDown => ("link_state", 3.0, 3.0),
        Rule::LinkFlapping => ("link_state", 6.0, 4.0),
        Rule::WidthDegraded => ("link_width", 1.0, 4.0),
        Rule::SpeedDegraded => ("link_speed", 25.78125, 53.125),
        Rule::NonOptimalLink => ("link_rate", 50.0, 200.0),
        Rule::TopologyMismatch => ("topology_miswired", 1.0, 0.0),
        Rule::CounterSaturated => ("SymbolErrorCounter", 65535.0, 65535.0),
        Rule::Stale => ("stale", 45.0, 30.0),
    }
}

#[test]
fn every_rules_explanation_prints_its_numbers_so_an_operator_can_read_them() {
    for rule in Rule::ALL {
        let (metric, value, threshold) = typical(rule);
        let mut j = job(rule, metric, value, Severity::Major);
        j.anomaly.threshold = threshold;
        j.anomaly.baseline = (rule == Rule::BaselineDeviation).then_some(29.8);
        j.anomaly.delta_pct = j.anomaly.baseline.map(|b| (value - b) / b * 100.0);
        let text = insight(&j).explanation;
        for bad in ["0.0000", "NaN", "inf", "unknown"] {
            assert!(!text.contains(bad), "{rule:?}: {bad} in {text}");
        }
        // Every number printed stands for a value that is not 0, unless the value is 0.
        for word in text.split(|c: char| c.is_whitespace() || c == '(' || c == ',') {
            let word = word.trim_end_matches(['.', ')', ';']);
            if word.parse::<f64>().is_ok_and(|n| n == 0.0) {
                assert!(
                    value == 0.0 || threshold == 0.0,
                    "{rule:?}: a 0 printed for a value that is not 0: {text}"
                );
            }
        }
    }
    let mut ber = job(
        Rule::SymbolErrors,
        "SymbolErrorCounter",
        3.4e-11,
        Severity::Major,
    );
    ber.anomaly.threshold = 1e-12;
    let text = insight(&ber).explanation;
    assert!(
        text.contains("is 3.4e-11 (bit error rate)") && text.contains("1.0e-12"),
        "{text}"
    );
    let mut stall = job(Rule::Congestion, "PortXmitWait", 0.137, Severity::Major);
    stall.anomaly.threshold = 0.1;
    let text = insight(&stall).explanation;
    assert!(
        text.contains("13.7 % of the time stalled") && text.contains("10 % of the time"),
        "{text}"
    );
}
