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
//!   node with the most bad links. A later batch may show that another node explains more of
//!   the bad links: it takes them over (`nodes`), so a burst split across batches ends grouped
//!   as if it had come in one.
//! - A member clears when all its anomalies resolve; the incident resolves when all members
//!   have cleared.
//!
//! Each change is an event carrying the whole incident; `analyse` marks the changes that ask
//! the analyst again (opened, wider scope, higher severity).

use crate::detect::rules::Severity;
use crate::events::types::{
    AnomalyDetectedV2, IncidentMemberV1, IncidentScope, IncidentV2, MemberAnomalyV1,
};
use crate::events::StreamEvent;
use std::collections::BTreeMap;

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
    pub open: BTreeMap<String, IncidentV2>,
}

pub use crate::detect::rules::link_gone;

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
}

/// Severity of an incident: its worst open member anomaly.
fn worst(members: &[IncidentMemberV1]) -> Severity {
    members
        .iter()
        .flat_map(|m| m.anomalies.iter().map(|a| a.severity))
        .max()
        .unwrap_or(Severity::Warning)
}

/// Put a member that is in no open incident where it belongs: into the incident it should
/// join (`target_for`), or into a new port incident `new_id`.
fn place(
    book: &mut IncidentBook,
    member: IncidentMemberV1,
    new_id: String,
    at_ms: i64,
) -> StreamEvent {
    if let Some(inc) = book
        .target_for(&member)
        .and_then(|id| book.open.get_mut(&id))
    {
        inc.members.push(member);
        let scope = match inc.node {
            Some(_) => inc.scope,
            None => scope_of(&inc.members),
        };
        let severity = worst(&inc.members);
        inc.analyse = scope != inc.scope || severity > inc.severity;
        inc.scope = scope;
        inc.severity = severity;
        inc.at_ms = at_ms;
        return StreamEvent::IncidentGrown(inc.clone());
    }
    let inc = IncidentV2 {
        incident_id: new_id,
        scope: IncidentScope::Port,
        node: None,
        severity: worst(std::slice::from_ref(&member)),
        members: vec![member],
        opened_at_ms: at_ms,
        resolved_at_ms: None,
        at_ms,
        merged_into: None,
        analyse: true,
        maintenance: Vec::new(),
    };
    book.open.insert(inc.incident_id.clone(), inc.clone());
    StreamEvent::IncidentOpened(inc)
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
        out.push(place(
            book,
            member_of(d),
            format!("inc-{}", d.offset),
            d.at_ms,
        ));
    }
    out
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

mod nodes;
pub use nodes::form_node_incidents;

#[cfg(test)]
mod tests;
