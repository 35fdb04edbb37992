use super::*;
use crate::events::types::{
    test_incident as incident, AlertRaisedV2, AlertSuppressedV1, InsightGeneratedV1,
};

fn insight(incident: &str, p: PredictionType, risk: u8, source: InsightSource) -> StreamEvent {
    let mut i: crate::events::types::InsightGeneratedV2 = InsightGeneratedV1 {
        anomaly_seq: 1,
        anomaly_id: incident.into(),
        prediction_type: p,
        risk_score: risk,
        explanation: String::new(),
        recommendations: vec![],
        confidence: 0.9,
        notes: vec![],
        source,
        reason: None,
        model_id: None,
        prompt_version: "v".into(),
        prompt_hash: None,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        latency_ms: 0,
        attempts: 0,
        batch_size: 1,
    }
    .into();
    if source == InsightSource::Ai {
        i.attempts = 1;
        i.batch_size = 2;
        i.input_tokens = 1000;
        i.output_tokens = 200;
        i.cost_usd = 0.0016;
    }
    StreamEvent::InsightGenerated(i)
}

fn raised() -> StreamEvent {
    StreamEvent::AlertRaised(AlertRaisedV2 {
        alert_id: "#incidents#3".into(),
        stream_id: "leaf1/p1".into(),
        incident_id: Some("inc-1".into()),
        ports: vec![],
        prediction_type: PredictionType::ConnectionInstability,
        risk_score: 95,
        tier: 9,
        escalated_from_tier: None,
        explanation: String::new(),
        insight_seq: 3,
        anomaly_seq: 1,
        raised_at_ms: 1000,
    })
}

fn suppressed() -> StreamEvent {
    StreamEvent::AlertSuppressed(AlertSuppressedV1 {
        alert_id: "#incidents#3".into(),
        stream_id: "leaf1/p1".into(),
        prediction_type: PredictionType::ConnectionInstability,
        risk_score: 95,
        insight_seq: 5,
        suppressed_count: 1,
        alert_raised_at_ms: 1000,
        at_ms: 2000,
    })
}

#[test]
fn given_any_time_then_the_period_is_the_aligned_hour_holding_it() {
    let hour = 3_600_000;
    assert_eq!(
        period_of(1_750_000_123_456, hour),
        (1_749_999_600_000, 1_750_003_200_000)
    );
    assert_eq!(
        period_of(7_200_000, hour),
        (7_200_000, 10_800_000),
        "a boundary starts a period"
    );
    assert_eq!(period_of(-1, hour), (-hour, 0));
}

#[test]
fn given_an_hour_of_incidents_and_alerts_then_the_digest_counts_them_by_type_and_scope() {
    let mut known = Known::default();
    let mut d = DigestBuilder::new(0, 3_600_000);
    // A switch dies (analysed by the model, pages once, repeats held back), a cable errs
    // (answered by the rules), and a port opens but is not analysed by the end of the hour.
    let switch = incident(
        "inc-1",
        IncidentScope::Switch,
        &["leaf1/p1", "leaf1/p2", "node7/p1"],
    );
    d.add(&StreamEvent::IncidentOpened(switch.clone()), &mut known);
    d.add(
        &insight(
            "inc-1",
            PredictionType::ConnectionInstability,
            95,
            InsightSource::Ai,
        ),
        &mut known,
    );
    d.add(&raised(), &mut known);
    d.add(&suppressed(), &mut known);
    d.add(&suppressed(), &mut known);
    let cable = incident("inc-2", IncidentScope::Link, &["leaf2/p3", "node9/p1"]);
    d.add(&StreamEvent::IncidentOpened(cable.clone()), &mut known);
    d.add(
        &insight(
            "inc-2",
            PredictionType::PacketLossDetected,
            70,
            InsightSource::Rules,
        ),
        &mut known,
    );
    d.add(&StreamEvent::IncidentResolved(cable), &mut known);
    d.add(
        &StreamEvent::IncidentOpened(incident("inc-3", IncidentScope::Port, &["leaf3/p4"])),
        &mut known,
    );
    let out = d.finish(&mut known, 41, 7);

    let counts = |v: &[DigestCountV1]| {
        v.iter()
            .map(|c| (c.prediction_type.map(|p| p.name()), c.scope.name(), c.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(&out.opened),
        vec![
            (None, "port", 1),
            (Some("connection_instability"), "switch", 1),
            (Some("packet_loss_detected"), "link", 1),
        ]
    );
    assert_eq!(
        counts(&out.resolved),
        vec![(Some("packet_loss_detected"), "link", 1)]
    );
    assert_eq!((out.alerts_raised, out.alerts_suppressed), (1, 2));
    assert_eq!(
        (out.ai_insights, out.rules_insights, out.fallback_insights),
        (1, 1, 0)
    );
    assert_eq!(
        out.model_calls, 1,
        "half of a batch of two rounds to one call"
    );
    assert_eq!((out.input_tokens, out.output_tokens), (1000, 200));
    assert!((out.cost_usd - 0.0016).abs() < 1e-12);
    assert_eq!((out.incidents_seq, out.alerts_seq), (41, 7));
    // The switch's ports lead (risk 95), then the cable's (70), then the unanalysed port.
    let top: Vec<(&str, u8)> = out
        .top_ports
        .iter()
        .map(|p| (p.stream_id.as_str(), p.worst_risk))
        .collect();
    assert_eq!(
        top,
        vec![
            ("leaf1/p1", 95),
            ("leaf1/p2", 95),
            ("node7/p1", 95),
            ("leaf2/p3", 70),
            ("node9/p1", 70),
            ("leaf3/p4", 0)
        ]
    );
    // The resolved cable is forgotten; the open switch is remembered for a later hour.
    assert_eq!(known.len(), 1);
}

#[test]
fn given_an_incident_analysed_last_hour_when_it_resolves_now_then_its_type_is_known() {
    let mut known = Known::default();
    let mut first = DigestBuilder::new(0, 10);
    let cable = incident("inc-9", IncidentScope::Link, &["a/p1", "b/p1"]);
    first.add(&StreamEvent::IncidentOpened(cable.clone()), &mut known);
    first.add(
        &insight(
            "inc-9",
            PredictionType::BandwidthThrottling,
            75,
            InsightSource::Ai,
        ),
        &mut known,
    );
    let _ = first.finish(&mut known, 2, 0);
    let mut second = DigestBuilder::new(10, 20);
    second.add(&StreamEvent::IncidentResolved(cable), &mut known);
    let out = second.finish(&mut known, 3, 0);
    assert!(out.opened.is_empty());
    assert_eq!(
        out.resolved[0].prediction_type,
        Some(PredictionType::BandwidthThrottling)
    );
    assert_eq!(out.model_calls, 0);
    assert!(known.is_empty());
}

#[test]
fn given_a_quiet_hour_then_the_digest_is_empty_but_written() {
    let mut known = Known::default();
    let out = DigestBuilder::new(0, 3_600_000).finish(&mut known, 0, 0);
    assert!(out.opened.is_empty() && out.resolved.is_empty() && out.top_ports.is_empty());
    assert_eq!(
        (out.alerts_raised, out.model_calls, out.cost_usd),
        (0, 0, 0.0)
    );
}

#[test]
fn given_an_incident_analysed_in_the_next_period_then_that_period_lists_its_ports_at_its_risk() {
    let mut known = Known::default();
    let mut first = DigestBuilder::new(0, 10);
    let cable = incident("inc-5", IncidentScope::Link, &["leaf4/p2", "node3/p1"]);
    first.add(&StreamEvent::IncidentOpened(cable), &mut known);
    let before = first.finish(&mut known, 1, 0);
    assert!(
        before.top_ports.iter().all(|p| p.worst_risk == 0),
        "not analysed yet"
    );
    let mut second = DigestBuilder::new(10, 20);
    second.add(
        &insight(
            "inc-5",
            PredictionType::PacketLossDetected,
            88,
            InsightSource::Ai,
        ),
        &mut known,
    );
    let after = second.finish(&mut known, 2, 0);
    let top: Vec<(&str, u8)> = after
        .top_ports
        .iter()
        .map(|p| (p.stream_id.as_str(), p.worst_risk))
        .collect();
    assert_eq!(top, vec![("leaf4/p2", 88), ("node3/p1", 88)]);
    assert!(after.opened.is_empty(), "opened in the first period only");
}
