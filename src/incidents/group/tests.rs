//! Given the open incidents, when an anomaly opens or resolves, then these incident events.

use super::*;
use crate::detect::rules::Rule;
use crate::sample::port::{NodeType, PeerPort, PortIdentity};

const SW: u64 = 0x100;
const SPINE: u64 = 0x200;

fn port(guid: u64, num: u8, node_type: NodeType) -> PortIdentity {
    PortIdentity {
        node_guid: Some(guid),
        port_num: Some(num),
        node_desc: Some(format!("node{guid:x}")),
        node_type: Some(node_type),
        lid: None,
    }
}

fn peer(guid: u64, num: u8) -> Option<PeerPort> {
    Some(PeerPort {
        node_guid: Some(guid),
        port_num: Some(num),
        node_desc: Some(format!("node{guid:x}")),
    })
}

fn stream(guid: u64, num: u8) -> String {
    format!("{guid:x}/p{num}")
}

/// Port `at` (cabled to `to`) raises `rule` at `severity`, as the `offset`-th log event.
fn detected(
    offset: u64,
    at: (u64, u8, NodeType),
    to: (u64, u8),
    rule: Rule,
    severity: Severity,
) -> Detected {
    Detected {
        stream_id: stream(at.0, at.1),
        seq: offset,
        offset,
        at_ms: offset as i64 * 1000,
        anomaly: AnomalyDetectedV2 {
            anomaly_id: format!("{}@{offset}", rule.name()),
            rule,
            metric: "m".into(),
            value: 1.0,
            baseline: None,
            delta_pct: None,
            threshold: 1.0,
            severity,
            escalated_from: None,
            window_start_ms: 0,
            window_end_ms: offset as i64 * 1000,
            port: port(at.0, at.1, at.2),
            peer: peer(to.0, to.1),
        },
    }
}

struct World {
    book: IncidentBook,
    offset: u64,
}

fn given() -> World {
    World {
        book: IncidentBook::default(),
        offset: 0,
    }
}

impl World {
    /// Port (guid, num) cabled to (peer_guid, peer_num) raises `rule` at `severity`.
    fn detect(
        &mut self,
        at: (u64, u8, NodeType),
        to: (u64, u8),
        rule: Rule,
        severity: Severity,
    ) -> Vec<String> {
        self.offset += 1;
        let d = detected(self.offset, at, to, rule, severity);
        let mut events = on_detected(&mut self.book, &d);
        events.extend(form_node_incidents(&mut self.book, 3, d.at_ms, d.offset));
        names(&events)
    }

    fn resolve(&mut self, at: (u64, u8), anomaly_id: &str) -> Vec<String> {
        names(&on_resolved(
            &mut self.book,
            &stream(at.0, at.1),
            anomaly_id,
            99_000,
        ))
    }

    fn only_open(&self) -> &IncidentV2 {
        assert_eq!(self.book.open.len(), 1, "{:?}", self.book.open.keys());
        self.book.open.values().next().expect("one")
    }
}

fn names(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let i = e.incident().expect("incident event");
            let analyse = if i.analyse { " analyse" } else { "" };
            format!("{} {}{analyse}", e.event_type(), i.scope.name())
        })
        .collect()
}

const CA: NodeType = NodeType::Ca;
const SWITCH: NodeType = NodeType::Switch;

#[test]
fn given_nothing_when_a_port_goes_bad_then_a_port_incident_opens() {
    let mut w = given();
    let e = w.detect((0xa, 1, CA), (SW, 1), Rule::SymbolErrors, Severity::Major);
    assert_eq!(e, vec!["IncidentOpened port analyse"]);
}

#[test]
fn given_one_end_bad_when_the_other_end_of_the_cable_goes_bad_then_one_link_incident() {
    let mut w = given();
    w.detect((0xa, 1, CA), (SW, 1), Rule::WidthDegraded, Severity::Major);
    let e = w.detect(
        (SW, 1, SWITCH),
        (0xa, 1),
        Rule::WidthDegraded,
        Severity::Major,
    );
    assert_eq!(e, vec!["IncidentGrown link analyse"]);
    let i = w.only_open();
    assert_eq!(i.members.len(), 2);
}

#[test]
fn given_a_link_incident_when_a_member_worsens_then_it_escalates() {
    let mut w = given();
    w.detect((0xa, 1, CA), (SW, 1), Rule::SymbolErrors, Severity::Warning);
    let e = w.detect(
        (0xa, 1, CA),
        (SW, 1),
        Rule::SymbolErrors,
        Severity::Critical,
    );
    assert_eq!(e, vec!["IncidentEscalated port analyse"]);
    // A new, no worse anomaly on a member is evidence, not a new analysis.
    let e = w.detect(
        (0xa, 1, CA),
        (SW, 1),
        Rule::LinkErrorRecovery,
        Severity::Major,
    );
    assert_eq!(e, vec!["IncidentGrown port"]);
}

#[test]
fn given_unrelated_ports_then_they_stay_apart() {
    let mut w = given();
    w.detect((0xa, 1, CA), (SW, 1), Rule::SymbolErrors, Severity::Major);
    w.detect((0xb, 1, CA), (SW, 2), Rule::SymbolErrors, Severity::Major);
    assert_eq!(w.book.open.len(), 2);
}

#[test]
fn given_a_switch_gone_when_its_peers_go_down_then_one_switch_incident_grows() {
    let mut w = given();
    // Hosts' ports go silent and the spine's port to the switch goes down: the switch is
    // seen only through its peers.
    w.detect((0xa, 1, CA), (SW, 1), Rule::Stale, Severity::Major);
    w.detect((0xb, 1, CA), (SW, 2), Rule::Stale, Severity::Major);
    let e = w.detect(
        (SPINE, 5, SWITCH),
        (SW, 30),
        Rule::LinkDown,
        Severity::Major,
    );
    assert_eq!(
        e,
        vec![
            "IncidentOpened port analyse",
            "IncidentResolved port",
            "IncidentResolved port",
            "IncidentResolved port",
            "IncidentOpened switch analyse"
        ]
    );
    let i = w.only_open();
    assert_eq!(i.node.as_ref().map(|n| n.node_guid), Some(SW));
    assert_eq!(i.members.len(), 3);
    // More ports join the switch incident, with no new analysis.
    let e = w.detect((0xc, 1, CA), (SW, 3), Rule::Stale, Severity::Major);
    assert_eq!(e, vec!["IncidentGrown switch"]);
    // The switch's own ports (silent) join it too.
    let e = w.detect((SW, 1, SWITCH), (0xa, 1), Rule::Stale, Severity::Major);
    assert_eq!(e, vec!["IncidentGrown switch"]);
    assert_eq!(w.only_open().members.len(), 5);
}

#[test]
fn given_traffic_anomalies_on_hosts_then_their_switch_is_not_blamed() {
    let mut w = given();
    for h in 0..4 {
        w.detect(
            (0xa + h, 1, CA),
            (SW, h as u8 + 1),
            Rule::LatencySpike,
            Severity::Major,
        );
    }
    assert_eq!(
        w.book.open.len(),
        4,
        "latency on hosts is not the switch going down"
    );
}

#[test]
fn given_many_ports_of_one_switch_bad_together_then_one_switch_incident() {
    let mut w = given();
    for p in 1..=3 {
        w.detect(
            (SW, p, SWITCH),
            (0xa + p as u64, 1),
            Rule::SymbolErrors,
            Severity::Major,
        );
    }
    assert_eq!(w.only_open().scope, IncidentScope::Switch);
}

#[test]
fn given_a_burst_when_a_leaf_and_its_spines_both_see_three_links_then_the_leaf_is_blamed() {
    let mut w = given();
    const LEAF: u64 = 0x300;
    // In one batch: three spine ports see the leaf flap, and the leaf's host links flap too.
    let mut batch = Vec::new();
    for p in 1..=3u8 {
        batch.push(((SPINE, p, SWITCH), (LEAF, 18 + p)));
    }
    for p in 1..=4u8 {
        batch.push(((LEAF, p, SWITCH), (0xa0 + p as u64, 1)));
    }
    let mut events = Vec::new();
    for (at, to) in batch {
        w.offset += 1;
        let d = detected(w.offset, at, to, Rule::LinkFlapping, Severity::Major);
        events.extend(on_detected(&mut w.book, &d));
    }
    events.extend(form_node_incidents(&mut w.book, 3, 0, w.offset));
    let i = w.only_open();
    assert_eq!(i.node.as_ref().map(|n| n.node_guid), Some(LEAF));
    assert_eq!(i.members.len(), 7);
}

#[test]
fn given_a_dead_leaf_seen_by_one_spine_at_a_time_then_the_leaf_is_blamed_not_the_spine() {
    let mut w = given();
    const LEAF: u64 = 0x300;
    // A batch with only spine01's ports to the leaf going down: spine01 reports them (alive),
    // the leaf is seen only through them.
    for p in 1..=3u8 {
        w.detect(
            (SPINE, p, SWITCH),
            (LEAF, 18 + p),
            Rule::LinkDown,
            Severity::Major,
        );
    }
    let i = w.only_open();
    assert_eq!(i.node.as_ref().map(|n| n.node_guid), Some(LEAF));
    // The other spine's ports to it join the same incident.
    w.detect(
        (SPINE + 1, 1, SWITCH),
        (LEAF, 30),
        Rule::LinkDown,
        Severity::Major,
    );
    assert_eq!(w.only_open().members.len(), 4);
}

#[test]
fn given_an_incident_when_every_member_clears_then_it_resolves() {
    let mut w = given();
    w.detect((0xa, 1, CA), (SW, 1), Rule::WidthDegraded, Severity::Major);
    w.detect(
        (SW, 1, SWITCH),
        (0xa, 1),
        Rule::WidthDegraded,
        Severity::Major,
    );
    let e = w.resolve((0xa, 1), "width_degraded@1");
    assert_eq!(e, vec!["IncidentGrown link"]);
    assert!(w.only_open().members[0].cleared);
    let e = w.resolve((SW, 1), "width_degraded@2");
    assert_eq!(e, vec!["IncidentResolved link"]);
    assert!(w.book.open.is_empty());
    // An unknown anomaly resolving changes nothing.
    assert!(w.resolve((SW, 1), "nope").is_empty());
}

#[test]
fn given_the_events_when_applied_to_a_fresh_book_then_it_is_rebuilt() {
    let mut w = given();
    let mut events = Vec::new();
    let mut d = |w: &mut World, at: (u64, u8), to: (u64, u8), rule: Rule| {
        w.offset += 1;
        let det = detected(w.offset, (at.0, at.1, CA), to, rule, Severity::Major);
        events.extend(on_detected(&mut w.book, &det));
        events.extend(form_node_incidents(&mut w.book, 3, 0, w.offset));
    };
    d(&mut w, (0xa, 1), (SW, 1), Rule::Stale);
    d(&mut w, (0xb, 1), (SW, 2), Rule::Stale);
    d(&mut w, (0xc, 1), (SW, 3), Rule::LinkDown);
    d(&mut w, (0xd, 1), (SW, 9), Rule::SymbolErrors);
    let mut rebuilt = IncidentBook::default();
    for e in &events {
        apply(&mut rebuilt, e);
    }
    assert_eq!(rebuilt, w.book);
}

#[test]
fn given_a_dead_leaf_with_both_spines_and_its_hosts_in_one_batch_then_one_leaf_incident() {
    const LEAF: u64 = 0x300;
    const SPINE2: u64 = SPINE + 1;
    let mut w = given();
    let mut events = Vec::new();
    let mut add = |w: &mut World, at: (u64, u8, NodeType), to: (u64, u8), rule: Rule| {
        w.offset += 1;
        let d = detected(w.offset, at, to, rule, Severity::Major);
        events.extend(on_detected(&mut w.book, &d));
    };
    for u in 0..6u8 {
        let spine = if u % 2 == 0 { SPINE } else { SPINE2 };
        // The spine's port reports the link down; the leaf's uplink falls silent.
        add(
            &mut w,
            (spine, u + 1, SWITCH),
            (LEAF, 19 + u),
            Rule::LinkDown,
        );
        add(&mut w, (LEAF, 19 + u, SWITCH), (spine, u + 1), Rule::Stale);
    }
    for h in 0..4u8 {
        add(
            &mut w,
            (LEAF, h + 1, SWITCH),
            (0xa0 + h as u64, 1),
            Rule::Stale,
        );
        add(&mut w, (0xa0 + h as u64, 1, CA), (LEAF, h + 1), Rule::Stale);
    }
    events.extend(form_node_incidents(&mut w.book, 3, 0, w.offset));
    let i = w.only_open();
    assert_eq!(i.node.as_ref().map(|n| n.node_guid), Some(LEAF));
    assert_eq!(i.members.len(), 20);
}

#[test]
fn given_one_spines_cables_to_a_dead_leaf_alone_in_a_batch_then_the_leaf_is_blamed() {
    // Both ends of each cable are bad: the spine's ports report the links down (alive), the
    // leaf's uplinks are silent. The spine has the smaller GUID; the evidence still wins.
    const LEAF: u64 = 0x300;
    let mut w = given();
    let mut events = Vec::new();
    for u in 0..3u8 {
        for (at, to, rule) in [
            ((SPINE, u + 1, SWITCH), (LEAF, 19 + u), Rule::LinkDown),
            ((LEAF, 19 + u, SWITCH), (SPINE, u + 1), Rule::Stale),
        ] {
            w.offset += 1;
            let d = detected(w.offset, at, to, rule, Severity::Major);
            events.extend(on_detected(&mut w.book, &d));
        }
    }
    events.extend(form_node_incidents(&mut w.book, 3, 0, w.offset));
    assert_eq!(w.only_open().node.as_ref().map(|n| n.node_guid), Some(LEAF));
}

mod bursts;
