//! Switch and node incidents: when enough links of one node go bad together, one incident for
//! the node, absorbing the incidents of those links.
//!
//! They are formed after each batch of anomalies, so on whatever part of an event the batch
//! holds. A batch can split an event badly: a flapping leaf's uplinks alone tie as many links
//! into a spine as into the leaf, and an unrelated bad link on the spine tips the count. So a
//! node incident is not final: when a later batch shows that another node explains more of
//! the bad links, that node takes over the links it shares, and the first node's incident
//! keeps the rest, or dissolves (its other members grouped again) when too few are left. The
//! grouping a burst ends with does not depend on how its anomalies were split into batches.

use super::{nodes_of, peer_key, place, port_key, worst, IncidentBook};
use crate::detect::rules::Rule;
use crate::events::types::{IncidentMemberV1, IncidentNodeV1, IncidentScope, IncidentV2};
use crate::events::StreamEvent;
use crate::sample::port::NodeType;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// One link: both ends of a cable, or a port without identity on its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LinkKey<'a> {
    Cable(super::PortKey, super::PortKey),
    Stream(&'a str),
}

fn link_key(m: &IncidentMemberV1) -> LinkKey<'_> {
    match (port_key(m), peer_key(m)) {
        (Some(a), Some(b)) => LinkKey::Cable(a.min(b), a.max(b)),
        _ => LinkKey::Stream(&m.stream_id),
    }
}

/// The bad links that tie into one node.
#[derive(Default)]
struct NodeLinks<'a> {
    links: BTreeSet<LinkKey<'a>>,
    /// Links whose other end, alive, reports the link down: evidence that this node is the
    /// one that failed (a switch that died is seen through its neighbours).
    seen_by_peers: BTreeSet<LinkKey<'a>>,
    /// The incidents those links are in.
    incidents: BTreeSet<&'a str>,
}

/// The bad links of every node, over the open incidents' members that have not cleared: only
/// the incidents that are not node incidents already, or all of them.
fn tally(book: &IncidentBook, with_node_incidents: bool) -> BTreeMap<u64, NodeLinks<'_>> {
    let mut out: BTreeMap<u64, NodeLinks> = BTreeMap::new();
    for i in book
        .open
        .values()
        .filter(|i| with_node_incidents || i.node.is_none())
    {
        for m in i.members.iter().filter(|m| !m.cleared) {
            let key = link_key(m);
            // A neighbour that reports the link down is alive and sees this node go; a silent
            // one is no evidence either way (it may be the dead one).
            let reports_down = m
                .anomalies
                .iter()
                .any(|a| super::link_gone(a.rule) && a.rule != Rule::Stale);
            for node in nodes_of(m) {
                let n = out.entry(node).or_default();
                if m.port.node_guid != Some(node) && reports_down {
                    n.seen_by_peers.insert(key.clone());
                }
                n.links.insert(key.clone());
                n.incidents.insert(&i.incident_id);
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

fn node_of(i: &IncidentV2) -> Option<u64> {
    i.node.as_ref().map(|n| n.node_guid)
}

/// The node whose bad links, outside node incidents, reach `node_min_links`: the one seen
/// through the most live neighbours first (a switch that died), then the one with the most.
fn next_node(book: &IncidentBook, node_min_links: usize) -> Option<(u64, Vec<String>)> {
    tally(book, false)
        .into_iter()
        .filter(|(_, l)| l.links.len() >= node_min_links)
        .max_by_key(|(n, l)| (l.seen_by_peers.len(), l.links.len(), Reverse(*n)))
        .map(|(n, l)| (n, l.incidents.into_iter().map(String::from).collect()))
}

/// A node incident that another node explains better: (its id, the other node). The other
/// node ties into some of its members and has more bad links over every open incident.
fn next_takeover(book: &IncidentBook, node_min_links: usize) -> Option<(String, u64)> {
    let all = tally(book, true);
    let links = |n: u64| all.get(&n).map_or(0, |l| l.links.len());
    book.open
        .values()
        .filter_map(|i| Some((i, node_of(i)?)))
        .flat_map(|(i, own)| {
            i.members
                .iter()
                .filter(|m| !m.cleared)
                .flat_map(nodes_of)
                .filter(move |&n| n != own && links(n) >= node_min_links && links(n) > links(own))
                .map(move |n| (links(n), Reverse(n), i.incident_id.clone()))
        })
        .max()
        .map(|(_, Reverse(n), id)| (id, n))
}

/// The node incident of `node`: the open one, or a new one `id`. It absorbs the incidents
/// `absorb` whole and the `members` (of an incident opened at `since_ms`); the events say what
/// changed.
fn gather(
    book: &mut IncidentBook,
    node: u64,
    id: String,
    absorb: &[String],
    (mut members, since_ms): (Vec<IncidentMemberV1>, i64),
    at_ms: i64,
) -> (String, Vec<StreamEvent>) {
    let existing = book
        .open
        .values()
        .find(|i| node_of(i) == Some(node))
        .map(|i| i.incident_id.clone());
    let id = existing.clone().unwrap_or(id);
    let mut out = Vec::new();
    let mut opened_at = since_ms.min(at_ms);
    for old_id in absorb.iter().filter(|old| **old != id) {
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
    if let Some(inc) = existing.and_then(|id| book.open.get_mut(&id)) {
        inc.members.extend(members);
        inc.opened_at_ms = inc.opened_at_ms.min(opened_at);
        let severity = worst(&inc.members);
        inc.analyse = severity > inc.severity;
        inc.severity = severity;
        inc.at_ms = at_ms;
        out.push(StreamEvent::IncidentGrown(inc.clone()));
        return (id, out);
    }
    let facts = node_facts(&members, node);
    let scope = match facts.node_type {
        Some(NodeType::Switch) => IncidentScope::Switch,
        _ => IncidentScope::Node,
    };
    let inc = IncidentV2 {
        incident_id: id.clone(),
        scope,
        node: Some(facts),
        severity: worst(&members),
        opened_at_ms: opened_at,
        members,
        resolved_at_ms: None,
        at_ms,
        merged_into: None,
        analyse: true,
        maintenance: Vec::new(),
    };
    book.open.insert(id.clone(), inc.clone());
    out.push(StreamEvent::IncidentOpened(inc));
    (id, out)
}

/// `node` takes over the members of node incident `from_id` that tie into it. `from` keeps the
/// rest while they still reach `node_min_links` links of its own node; otherwise it resolves,
/// merged into the taker, and its remaining members are grouped again.
fn take_over(
    book: &mut IncidentBook,
    from_id: &str,
    node: u64,
    node_min_links: usize,
    at_ms: i64,
    seed: u64,
) -> Vec<StreamEvent> {
    let Some(mut from) = book.open.remove(from_id) else {
        return Vec::new();
    };
    let own = node_of(&from);
    let (moving, staying): (Vec<_>, Vec<_>) = std::mem::take(&mut from.members)
        .into_iter()
        .partition(|m| !m.cleared && nodes_of(m).contains(&node));
    let absorb: Vec<String> = tally(book, false)
        .remove(&node)
        .map(|l| l.incidents.into_iter().map(String::from).collect())
        .unwrap_or_default();
    // The moved links date from their first anomaly, not from the incident they leave.
    let since_ms = moving
        .iter()
        .flat_map(|m| m.anomalies.iter().map(|a| a.detected_at_ms))
        .min()
        .unwrap_or(at_ms);
    let (taker, mut out) = gather(
        book,
        node,
        format!("inc-{seed}-{node:016x}"),
        &absorb,
        (moving, since_ms),
        at_ms,
    );
    from.members = staying;
    from.at_ms = at_ms;
    from.analyse = false;
    let kept: BTreeSet<LinkKey> = from
        .members
        .iter()
        .filter(|m| !m.cleared && own.is_some_and(|o| nodes_of(m).contains(&o)))
        .map(link_key)
        .collect();
    if kept.len() >= node_min_links {
        out.push(StreamEvent::IncidentGrown(from.clone()));
        book.open.insert(from.incident_id.clone(), from);
        return out;
    }
    from.resolved_at_ms = Some(at_ms);
    from.merged_into = Some(taker);
    let regroup: Vec<IncidentMemberV1> = from
        .members
        .iter()
        .filter(|m| !m.cleared)
        .cloned()
        .collect();
    out.push(StreamEvent::IncidentResolved(from));
    for m in regroup {
        let id = format!(
            "inc-{seed}-{:016x}",
            crate::hash::fnv1a64(m.stream_id.bytes())
        );
        out.push(place(book, m, id, at_ms));
    }
    out
}

/// Open switch/node incidents where enough links of one node have gone bad together, and hand
/// links to the node that explains them best. Run after each batch of anomalies, so the links
/// of one event are counted together. `seed` makes ids unique.
pub fn form_node_incidents(
    book: &mut IncidentBook,
    node_min_links: usize,
    at_ms: i64,
    seed: u64,
) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    // Each step either absorbs non-node incidents into a node incident, or moves members to a
    // node with strictly more bad links (a count that moving does not change): it ends.
    loop {
        if let Some((node, incidents)) = next_node(book, node_min_links) {
            let id = format!("inc-{seed}-{node:016x}");
            out.extend(gather(book, node, id, &incidents, (Vec::new(), at_ms), at_ms).1);
        } else if let Some((from, node)) = next_takeover(book, node_min_links) {
            out.extend(take_over(book, &from, node, node_min_links, at_ms, seed));
        } else {
            return out;
        }
    }
}
