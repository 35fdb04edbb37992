use super::*;
use crate::detect::rules::{Rule, Severity};
use crate::events::types::{
    AnomalyResolvedV1, IncidentMemberV1, IncidentNodeV1, IncidentScope, MemberAnomalyV1,
};
use crate::sample::port::PortIdentity;
use crate::vocab::PredictionType;

fn alert(id: &str, port: &str, incident: Option<&str>, risk: u8) -> AlertRaisedV2 {
    AlertRaisedV2 {
        alert_id: id.into(),
        stream_id: port.into(),
        incident_id: incident.map(String::from),
        ports: vec![port.into()],
        prediction_type: PredictionType::ConnectionInstability,
        risk_score: risk,
        tier: 1,
        escalated_from_tier: None,
        explanation: "LinkDownedCounter went up".into(),
        insight_seq: 4,
        anomaly_seq: 3,
        raised_at_ms: 1_000,
    }
}

fn incident(id: &str, scope: IncidentScope, switch: Option<&str>, lead: &str) -> IncidentV2 {
    IncidentV2 {
        incident_id: id.into(),
        scope,
        node: switch.map(|s| IncidentNodeV1 {
            node_guid: 7,
            node_desc: Some(s.into()),
            node_type: None,
        }),
        members: vec![IncidentMemberV1 {
            stream_id: lead.into(),
            port: PortIdentity::default(),
            peer: None,
            anomalies: vec![MemberAnomalyV1 {
                anomaly_id: "a1".into(),
                anomaly_seq: 3,
                rule: Rule::LinkDowned,
                metric: "LinkDownedCounter".into(),
                value: 1.0,
                threshold: 0.0,
                severity: Severity::Critical,
                detected_at_ms: 900,
            }],
            cleared: false,
        }],
        severity: Severity::Critical,
        opened_at_ms: 900,
        resolved_at_ms: None,
        at_ms: 900,
        merged_into: None,
        analyse: true,
        maintenance: Vec::new(),
    }
}

fn resolved(mut inc: IncidentV2, at: i64) -> IncidentV2 {
    inc.resolved_at_ms = Some(at);
    inc.at_ms = at;
    inc
}

fn no_recs(_: &AlertRaisedV2) -> Vec<String> {
    vec!["reseat the cable".into()]
}

#[test]
fn given_a_switch_incident_when_its_alert_is_raised_then_the_labels_name_the_switch() {
    let mut n = Notices::default();
    let inc = incident("inc-1", IncidentScope::Switch, Some("leaf07"), "leaf07/p3");
    assert!(n
        .observe("#incidents", &StreamEvent::IncidentOpened(inc), no_recs)
        .is_empty());
    let out = n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-1", "leaf07/p3", Some("inc-1"), 92)),
        no_recs,
    );
    assert_eq!(out.len(), 1);
    let l = &out[0].labels;
    assert_eq!(l["alertname"], "IbConnectionInstability");
    assert_eq!(l["severity"], "critical");
    assert_eq!(l["prediction_type"], "connection_instability");
    assert_eq!(l["incident_id"], "inc-1");
    assert_eq!(l["scope"], "switch");
    assert_eq!(l["node"], "leaf07");
    assert_eq!(l["port"], "leaf07/p3");
    assert_eq!(out[0].status, Status::Firing);
    assert_eq!(out[0].id, "al-1:firing");
    assert_eq!(out[0].recommendations, vec!["reseat the cable".to_string()]);
}

#[test]
fn given_a_port_alert_without_an_incident_then_scope_is_port_and_node_comes_from_the_stream() {
    let a = alert("al-1", "node009/mlx5_0/p1", None, 85);
    let l = labels(&a, None);
    assert_eq!(l["scope"], "port");
    assert_eq!(l["node"], "node009");
    assert_eq!(l["incident_id"], "al-1");
}

#[test]
fn given_risks_then_the_severity_follows_the_seeds_bands() {
    assert_eq!(severity(100), "critical");
    assert_eq!(severity(80), "critical");
    assert_eq!(severity(79), "warning");
    assert_eq!(severity(60), "warning");
    assert_eq!(severity(59), "info");
    assert_eq!(alertname("qp_error_rate_high"), "IbQpErrorRateHigh");
}

#[test]
fn given_an_open_alert_when_its_incident_resolves_then_it_resolves_with_the_same_labels() {
    let mut n = Notices::default();
    let inc = incident("inc-1", IncidentScope::Link, None, "leaf07/p3");
    n.observe(
        "#incidents",
        &StreamEvent::IncidentOpened(inc.clone()),
        no_recs,
    );
    let fired = n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-1", "leaf07/p3", Some("inc-1"), 92)),
        no_recs,
    );
    let out = n.observe(
        "#incidents",
        &StreamEvent::IncidentResolved(resolved(inc, 5_000)),
        no_recs,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, Status::Resolved);
    assert_eq!(out[0].id, "al-1:resolved");
    assert_eq!(out[0].labels, fired[0].labels);
    assert_eq!(out[0].ends_at_ms, Some(5_000));
    assert_eq!(n.open().count(), 0);
}

#[test]
fn given_a_second_alert_for_the_same_incident_then_one_stays_open() {
    let mut n = Notices::default();
    n.observe(
        "#incidents",
        &StreamEvent::IncidentOpened(incident("inc-1", IncidentScope::Link, None, "s/p1")),
        no_recs,
    );
    n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-1", "s/p1", Some("inc-1"), 85)),
        no_recs,
    );
    let out = n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-2", "s/p1", Some("inc-1"), 90)),
        no_recs,
    );
    // Same labels (both critical): Alertmanager sees one alert, updated.
    assert_eq!(out.len(), 1);
    assert_eq!(n.open().count(), 1);
    assert_eq!(n.open().next().map(|o| o.alert_id.as_str()), Some("al-2"));
}

#[test]
fn given_an_escalation_to_other_labels_then_the_old_alert_is_resolved() {
    let mut n = Notices::default();
    n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-1", "s/p1", None, 70)),
        no_recs,
    );
    let out = n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-2", "s/p1", None, 95)),
        no_recs,
    );
    let got: Vec<(&str, Status)> = out
        .iter()
        .map(|o| (o.alert_id.as_str(), o.status))
        .collect();
    assert_eq!(
        got,
        vec![("al-1", Status::Resolved), ("al-2", Status::Firing)]
    );
}

#[test]
fn given_a_single_port_alert_when_its_anomaly_resolves_then_it_resolves_and_others_do_not() {
    let mut n = Notices::default();
    n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-1", "s/p1", None, 90)),
        no_recs,
    );
    n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-2", "s/p2", None, 90)),
        no_recs,
    );
    let r = AnomalyResolvedV1 {
        anomaly_id: "a1".into(),
        rule: Rule::LinkDowned,
        metric: "LinkDownedCounter".into(),
        opened_at_ms: 900,
        resolved_at_ms: 7_000,
        last_value: 0.0,
    };
    let out = n.observe("s/p1", &StreamEvent::AnomalyResolved(r), no_recs);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].alert_id, "al-1");
    assert_eq!(n.open().count(), 1);
}

#[test]
fn given_an_alert_after_its_incident_resolved_then_it_fires_and_resolves_at_once() {
    let mut n = Notices::default();
    let inc = incident("inc-1", IncidentScope::Link, None, "s/p1");
    n.observe(
        "#incidents",
        &StreamEvent::IncidentOpened(inc.clone()),
        no_recs,
    );
    n.observe(
        "#incidents",
        &StreamEvent::IncidentResolved(resolved(inc, 2_000)),
        no_recs,
    );
    let out = n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-1", "s/p1", Some("inc-1"), 90)),
        no_recs,
    );
    let got: Vec<Status> = out.iter().map(|o| o.status).collect();
    assert_eq!(got, vec![Status::Firing, Status::Resolved]);
    assert_eq!(n.open().count(), 0);
}

#[test]
fn given_state_when_it_round_trips_through_json_then_nothing_changes() {
    let mut n = Notices::default();
    n.observe(
        "#incidents",
        &StreamEvent::IncidentOpened(incident("inc-1", IncidentScope::Link, None, "s/p1")),
        no_recs,
    );
    n.observe(
        "#alerts",
        &StreamEvent::AlertRaised(alert("al-1", "s/p1", Some("inc-1"), 90)),
        no_recs,
    );
    let back: Notices = serde_json::from_slice(&serde_json::to_vec(&n).unwrap()).unwrap();
    assert_eq!(back, n);
}
