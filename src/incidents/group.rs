//! Grouping anomalies into incidents: pure decisions over the open incidents.
//!
//! - A port already in an open incident adds its anomaly there (escalating on a worse one).
//! - Otherwise it joins a switch/node incident of its own node, or of its peer's node when the
//!   anomaly says the link is gone (down, flapping, silent): a node seen only through its peers'
//!   ports going down.
//! - Otherwise it joins the incident of the other end of its cable: a link incident.
//! - Otherwise it opens a port incident.
//! - After each batch: when the links of one node with a bad end reach `node_min_links`, a
//!   switch (or node) incident opens and absorbs the incidents involved (they resolve,
//!   `merged_into` it); the node seen through the most live neighbours goes first (a switch
//!   that died is seen through its neighbours' ports going down; they are alive), then the
//!   node with the most bad links.
//! - A member clears when all its anomalies resolve; the incident resolves when all members
//!   have cleared.
//!
//! Each change is an event carrying the whole incident; `analyse` marks the changes that ask
//! the analyst again (opened, wider scope, higher severity).

use crate::detect::rules::{Rule, Severity};
use crate::events::types::{
    AnomalyDetectedV2, IncidentMemberV1, IncidentNodeV1, IncidentScope, IncidentV1, MemberAnomalyV1,
};
use crate::events::StreamEvent;
use crate::sample::port::NodeType;
use std::collections::{BTreeMap, BTreeSet};

/// An anomaly event as the correlator reads it from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub stream_id: String,
    pub seq: u64,
    /// Global log offset: makes incident ids deterministic.
    pub offset: u64,
    pub at_ms: i64,
    pub anomaly: AnomalyDetectedV2,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentBook {
    pub open: BTreeMap<String, IncidentV1>,
}

/// Rules saying the link itself is gone: they tie a port to its peer's node.
pub fn link_gone(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::LinkDown | Rule::Stale | Rule::LinkFlapping | Rule::LinkDowned
    )
}

type PortKey = (u64, u8);

fn port_key(m: &IncidentMemberV1) -> Option<PortKey> {
    Some((m.port.node_guid?, m.port.port_num?))
}

fn peer_key(m: &IncidentMemberV1) -> Option<PortKey> {
    let p = m.peer.as_ref()?;
    Some((p.node_guid?, p.port_num?))
}

fn member_link_gone(m: &IncidentMemberV1) -> bool {
    m.anomalies.iter().any(|a| link_gone(a.rule))
}

/// Nodes a member ties into: its own, and its peer's when its link is gone.
fn nodes_of(m: &IncidentMemberV1) -> Vec<u64> {
    let mut out: Vec<u64> = m.port.node_guid.into_iter().collect();
    if member_link_gone(m) {
        out.extend(m.peer.as_ref().and_then(|p| p.node_guid));
    }
    out
}

fn member_of(d: &Detected) -> IncidentMemberV1 {
    IncidentMemberV1 {
        stream_id: d.stream_id.clone(),
        port: d.anomaly.port.clone(),
        peer: d.anomaly.peer.clone(),
        anomalies: vec![evidence(d)],
        cleared: false,
    }
}

fn evidence(d: &Detected) -> MemberAnomalyV1 {
    let a = &d.anomaly;
    MemberAnomalyV1 {
        anomaly_id: a.anomaly_id.clone(),
        anomaly_seq: d.seq,
        rule: a.rule,
        metric: a.metric.clone(),
        value: a.value,
        threshold: a.threshold,
        severity: a.severity,
        detected_at_ms: a.window_end_ms,
    }
}

/// Whether two members are the two ends of one cable.
fn cable(a: &IncidentMemberV1, b: &IncidentMemberV1) -> bool {
    let (pa, pb) = (port_key(a), port_key(b));
    (pa.is_some() && pa == peer_key(b)) || (pb.is_some() && pb == peer_key(a))
}

fn scope_of(members: &[IncidentMemberV1]) -> IncidentScope {
    match members {
        [a, b] if cable(a, b) => IncidentScope::Link,
        _ => IncidentScope::Port,
    }
}

impl IncidentBook {
    fn incident_of(&self, stream_id: &str) -> Option<String> {
        self.open
            .values()
            .find(|i| i.members.iter().any(|m| m.stream_id == stream_id))
            .map(|i| i.incident_id.clone())
    }

    /// An open incident the new member should join.
    fn target_for(&self, m: &IncidentMemberV1) -> Option<String> {
        let nodes = nodes_of(m);
        let node_incident = self.open.values().find(|i| {
            i.node
                .as_ref()
                .is_some_and(|n| nodes.contains(&n.node_guid))
        });
        let link_incident = || {
            self.open
                .values()
                .find(|i| i.node.is_none() && i.members.iter().any(|other| cable(other, m)))
        };
        node_incident
            .or_else(link_incident)
            .map(|i| i.incident_id.clone())
    }

    /// Distinct links (member port and its peer) with a bad end that tie into `node`, over
    /// every open incident that is not a node incident already; how many of them see `node`
    /// only as the peer (their own node is alive and reporting); and the incidents involved.
    fn links_of(&self, node: u64) -> NodeLinks {
        let mut links = BTreeSet::new();
        let mut remote = BTreeSet::new();
        let mut incidents = BTreeSet::new();
        for i in self.open.values().filter(|i| i.node.is_none()) {
            for m in i.members.iter().filter(|m| !m.cleared) {
                if nodes_of(m).contains(&node) {
                    // Both ends of one cable are one link; a port without identity is its own.
                    let key = match (port_key(m), peer_key(m)) {
                        (Some(a), Some(b)) => format!("{:?}", (a.min(b), a.max(b))),
                        _ => m.stream_id.clone(),
                    };
                    // A neighbour that reports the link down is alive and sees this node go;
                    // a silent one is no evidence either way (it may be the dead one).
                    let reports_down = m
                        .anomalies
                        .iter()
                        .any(|a| link_gone(a.rule) && a.rule != Rule::Stale);
                    if m.port.node_guid != Some(node) && reports_down {
                        remote.insert(key.clone());
                    }
                    links.insert(key);
                    incidents.insert(i.incident_id.clone());
                }
            }
        }
        NodeLinks {
            links: links.len(),
            seen_by_peers: remote.len(),
            incidents,
        }
    }
}

/// The bad links that tie into one node.
struct NodeLinks {
    links: usize,
    /// Links whose other end, alive, reports the link down: evidence that this node is the
    /// one that failed (a switch that died is seen through its neighbours).
    seen_by_peers: usize,
    incidents: BTreeSet<String>,
}

/// Severity of an incident: its worst open member anomaly.
fn worst(members: &[IncidentMemberV1]) -> Severity {
    members
        .iter()
        .flat_map(|m| m.anomalies.iter().map(|a| a.severity))
        .max()
        .unwrap_or(Severity::Warning)
}

/// Decide what an anomaly does to the incidents; the returned events are already applied.
pub fn on_detected(book: &mut IncidentBook, d: &Detected) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    if let Some(id) = book.incident_of(&d.stream_id) {
        let Some(inc) = book.open.get_mut(&id) else {
            return out;
        };
        let before = inc.severity;
        if let Some(m) = inc.members.iter_mut().find(|m| m.stream_id == d.stream_id) {
            m.anomalies.retain(|a| a.anomaly_id != d.anomaly.anomaly_id);
            m.anomalies.push(evidence(d));
            m.cleared = false;
            if d.anomaly.peer.is_some() {
                m.peer = d.anomaly.peer.clone();
            }
        }
        inc.severity = before.max(d.anomaly.severity);
        inc.at_ms = d.at_ms;
        inc.analyse = inc.severity > before;
        out.push(if inc.analyse {
            StreamEvent::IncidentEscalated(inc.clone())
        } else {
            StreamEvent::IncidentGrown(inc.clone())
        });
    } else {
        let member = member_of(d);
        match book.target_for(&member) {
            Some(id) => {
                let Some(inc) = book.open.get_mut(&id) else {
                    return out;
                };
                inc.members.push(member);
                let (scope, severity) = if inc.node.is_some() {
                    (inc.scope, worst(&inc.members))
                } else {
                    (scope_of(&inc.members), worst(&inc.members))
                };
                inc.analyse = scope != inc.scope || severity > inc.severity;
                inc.scope = scope;
                inc.severity = severity;
                inc.at_ms = d.at_ms;
                out.push(StreamEvent::IncidentGrown(inc.clone()));
            }
            None => {
                let inc = IncidentV1 {
                    incident_id: format!("inc-{}", d.offset),
                    scope: IncidentScope::Port,
                    node: None,
                    severity: d.anomaly.severity,
                    members: vec![member],
                    opened_at_ms: d.at_ms,
                    resolved_at_ms: None,
                    at_ms: d.at_ms,
                    merged_into: None,
                    analyse: true,
                };
                book.open.insert(inc.incident_id.clone(), inc.clone());
                out.push(StreamEvent::IncidentOpened(inc));
            }
        }
    }
    out
}

/// What is known of a node from the members that tie into it.
fn node_facts(members: &[IncidentMemberV1], node: u64) -> IncidentNodeV1 {
    let own = members.iter().find(|m| m.port.node_guid == Some(node));
    let via_peer = members
        .iter()
        .filter_map(|m| m.peer.as_ref())
        .find(|p| p.node_guid == Some(node));
    IncidentNodeV1 {
        node_guid: node,
        node_desc: own
            .and_then(|m| m.port.node_desc.clone())
            .or_else(|| via_peer.and_then(|p| p.node_desc.clone())),
        // A node seen only through its peers is a switch when hosts' ports point at it; an
        // unknown type defaults to switch, the common case of many links on one node.
        node_type: own
            .and_then(|m| m.port.node_type)
            .or(Some(NodeType::Switch)),
    }
}

/// Open switch/node incidents where enough links of one node have gone bad together: the
/// node with the most such links first (a switch that fails takes more links with it than any
/// of its neighbours), each absorbing the incidents of its links. Run after each batch of
/// anomalies, so the links of one event are counted together. `seed` makes ids unique.
pub fn form_node_incidents(
    book: &mut IncidentBook,
    node_min_links: usize,
    at_ms: i64,
    seed: u64,
) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    loop {
        let nodes: BTreeSet<u64> = book
            .open
            .values()
            .filter(|i| i.node.is_none())
            .flat_map(|i| i.members.iter().filter(|m| !m.cleared).flat_map(nodes_of))
            .collect();
        let best = nodes
            .into_iter()
            .map(|n| (book.links_of(n), n))
            .filter(|(l, _)| l.links >= node_min_links)
            .max_by_key(|(l, n)| (l.seen_by_peers, l.links, std::cmp::Reverse(*n)));
        let Some((NodeLinks { incidents, .. }, node)) = best else {
            return out;
        };
        let id = format!("inc-{seed}-{node:016x}");
        let mut members: Vec<IncidentMemberV1> = Vec::new();
        let mut opened_at = at_ms;
        for old_id in &incidents {
            if let Some(mut old) = book.open.remove(old_id) {
                opened_at = opened_at.min(old.opened_at_ms);
                members.extend(old.members.iter().cloned());
                old.resolved_at_ms = Some(at_ms);
                old.at_ms = at_ms;
                old.merged_into = Some(id.clone());
                old.analyse = false;
                out.push(StreamEvent::IncidentResolved(old));
            }
        }
        let facts = node_facts(&members, node);
        let scope = match facts.node_type {
            Some(NodeType::Switch) => IncidentScope::Switch,
            _ => IncidentScope::Node,
        };
        let inc = IncidentV1 {
            incident_id: id,
            scope,
            node: Some(facts),
            severity: worst(&members),
            members,
            opened_at_ms: opened_at,
            resolved_at_ms: None,
            at_ms,
            merged_into: None,
            analyse: true,
        };
        book.open.insert(inc.incident_id.clone(), inc.clone());
        out.push(StreamEvent::IncidentOpened(inc));
    }
}

/// An anomaly of `stream_id` resolved: its member may clear, the incident may resolve.
pub fn on_resolved(
    book: &mut IncidentBook,
    stream_id: &str,
    anomaly_id: &str,
    at_ms: i64,
) -> Vec<StreamEvent> {
    let Some(id) = book.incident_of(stream_id) else {
        return Vec::new();
    };
    let Some(inc) = book.open.get_mut(&id) else {
        return Vec::new();
    };
    let Some(m) = inc.members.iter_mut().find(|m| m.stream_id == stream_id) else {
        return Vec::new();
    };
    let before = m.anomalies.len();
    m.anomalies.retain(|a| a.anomaly_id != anomaly_id);
    if m.anomalies.len() == before {
        return Vec::new();
    }
    m.cleared = m.anomalies.is_empty();
    inc.at_ms = at_ms;
    inc.analyse = false;
    if inc.members.iter().all(|m| m.cleared) {
        inc.resolved_at_ms = Some(at_ms);
        let done = inc.clone();
        book.open.remove(&id);
        return vec![StreamEvent::IncidentResolved(done)];
    }
    vec![StreamEvent::IncidentGrown(inc.clone())]
}

/// Fold an incident event back into the book (restore from the log).
pub fn apply(book: &mut IncidentBook, event: &StreamEvent) {
    match event {
        StreamEvent::IncidentResolved(i) => {
            book.open.remove(&i.incident_id);
        }
        e => {
            if let Some(i) = e.incident() {
                book.open.insert(i.incident_id.clone(), i.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
