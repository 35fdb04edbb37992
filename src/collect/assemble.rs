//! From what the tools reported to samples (pure): one sample per port, with the port's
//! identity, its peer, its link and its counters, under a stream id operators recognise.
//!
//! Stream ids are `<node_desc>/p<port_num>`, characters outside the id charset replaced by `_`
//! (HCA "node042 mlx5_0" port 1 → `node042_mlx5_0/p1`). Nodes that share a description
//! (unconfigured switches often do) get their GUID appended (`switch_0x0002c903…/p1`), and an id
//! once given to a GUID is kept for the life of the collector, so a stream never changes name
//! when another node with the same description appears.

use super::ibnd_cache::PortCaps;
use super::parse::LinkLine;
use crate::sample::port::{format_guid, LinkInfo, NodeType, PeerPort, PortIdentity};
use crate::sample::Sample;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The stream id prefix given to each node, remembered across sweeps, with the last topology
/// read (which nodes are switches, the node GUID of each CA port), used when a sweep cannot
/// read it: a CA keyed by its port GUID for one sweep would get another stream.
#[derive(Debug, Default)]
pub struct Naming {
    by_guid: HashMap<u64, String>,
    /// Names from the node-name map, which win over node descriptions.
    pub names: HashMap<u64, String>,
    pub switches: HashSet<u64>,
    /// Whether the fabric has routers (their counters need a query of their own).
    pub routers: bool,
    pub node_of_port: HashMap<u64, u64>,
}

/// Replace characters outside the stream id charset (`[A-Za-z0-9._:-]`; `/` separates the
/// port) with `_`.
pub fn sanitize(desc: &str) -> String {
    let s: String = desc
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "node".into()
    } else {
        s
    }
}

impl Naming {
    /// Names for every node of a sweep (`guid → description`).
    pub fn assign(&mut self, nodes: &BTreeMap<u64, String>) {
        let mut count: HashMap<String, usize> = HashMap::new();
        let name_of =
            |guid: &u64, desc: &'_ str| sanitize(self.names.get(guid).map_or(desc, String::as_str));
        for (guid, desc) in nodes {
            *count.entry(name_of(guid, desc)).or_default() += 1;
        }
        // Names already in use by other GUIDs must not be taken twice.
        let mut taken: HashSet<String> = self.by_guid.values().cloned().collect();
        for (guid, desc) in nodes {
            if self.by_guid.contains_key(guid) {
                continue;
            }
            let base = name_of(guid, desc);
            let name = if count[&base] > 1 || taken.contains(&base) {
                format!("{base}_{}", format_guid(*guid))
            } else {
                base
            };
            taken.insert(name.clone());
            self.by_guid.insert(*guid, name);
        }
    }

    pub fn stream_id(&self, guid: u64, port: u8) -> Option<String> {
        self.by_guid.get(&guid).map(|n| format!("{n}/p{port}"))
    }
}

/// What one sweep read.
#[derive(Debug, Default)]
pub struct SweepReadings {
    pub ports: Vec<LinkLine>,
    pub switches: HashSet<u64>,
    /// Counters by (node GUID, port number).
    pub counters: super::parse::ByPort,
    /// When each port's counters were read (epoch ms), by (node GUID, port number).
    pub times: HashMap<(u64, u8), i64>,
    /// Port GUID → node GUID (iblinkinfo names CA ports by their port GUID).
    pub node_of_port: HashMap<u64, u64>,
}

impl SweepReadings {
    /// The node GUID of a port iblinkinfo named by `guid`.
    pub fn node_guid(&self, guid: u64) -> u64 {
        self.node_of_port.get(&guid).copied().unwrap_or(guid)
    }
}

/// One sample per port of the sweep, stamped with the time its counters were read, or
/// `links_at` (when the links were read) for a port without counters. Switch port 0 (the
/// management port) has no link and is left out.
pub fn samples(
    readings: &SweepReadings,
    caps: &HashMap<(u64, u8), PortCaps>,
    naming: &mut Naming,
    links_at: i64,
) -> Vec<Sample> {
    let nodes: BTreeMap<u64, String> = readings
        .ports
        .iter()
        .map(|p| (readings.node_guid(p.node_guid), p.node_desc.clone()))
        .collect();
    naming.assign(&nodes);
    let mut out = Vec::with_capacity(readings.ports.len());
    for p in &readings.ports {
        if p.port_num == 0 {
            continue;
        }
        let node_guid = readings.node_guid(p.node_guid);
        let Some(stream_id) = naming.stream_id(node_guid, p.port_num) else {
            continue;
        };
        let node_type = if readings.switches.contains(&node_guid) {
            NodeType::Switch
        } else {
            NodeType::Ca
        };
        let rate_gbps = match (p.width, p.speed) {
            (Some(w), Some(s)) => Some(f64::from(w.lanes()) * s.lane_gbps()),
            _ => None,
        };
        let key = (node_guid, p.port_num);
        let cap = caps.get(&key).cloned().unwrap_or_default();
        out.push(Sample {
            stream_id,
            timestamp_ms: readings.times.get(&key).copied().unwrap_or(links_at),
            counters: readings.counters.get(&key).cloned().unwrap_or_default(),
            port: PortIdentity {
                node_guid: Some(node_guid),
                port_num: Some(p.port_num),
                node_desc: Some(p.node_desc.chars().take(64).collect()),
                node_type: Some(node_type),
                lid: Some(p.lid),
            },
            peer: p.peer.as_ref().map(|q| PeerPort {
                node_guid: Some(readings.node_guid(q.node_guid)),
                port_num: Some(q.port_num),
                node_desc: Some(q.node_desc.chars().take(64).collect()),
            }),
            link: Some(LinkInfo {
                state: p.state,
                phys_state: p.phys_state,
                width: p.width,
                width_enabled: cap.width_enabled,
                speed: p.speed,
                rate_gbps,
                width_supported: cap.width_supported,
                speed_enabled: cap.speed_enabled,
                speed_supported: cap.speed_supported,
            }),
            ..Sample::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(list: &[(u64, &str)]) -> BTreeMap<u64, String> {
        list.iter().map(|(g, d)| (*g, d.to_string())).collect()
    }

    #[test]
    fn ids_read_like_the_node_descriptions_operators_know() {
        let mut n = Naming::default();
        n.assign(&nodes(&[(1, "node042 mlx5_0"), (2, "leaf01")]));
        assert_eq!(n.stream_id(1, 1).as_deref(), Some("node042_mlx5_0/p1"));
        assert_eq!(n.stream_id(2, 17).as_deref(), Some("leaf01/p17"));
    }

    #[test]
    fn given_a_node_name_map_then_its_names_win_over_descriptions() {
        let mut n = Naming {
            names: HashMap::from([(1, "gpu-a01".to_string())]),
            ..Naming::default()
        };
        n.assign(&nodes(&[(1, "node001 mlx5_0"), (2, "leaf01")]));
        assert_eq!(n.stream_id(1, 1).as_deref(), Some("gpu-a01/p1"));
        assert_eq!(n.stream_id(2, 3).as_deref(), Some("leaf01/p3"));
    }

    #[test]
    fn nodes_sharing_a_description_never_share_a_stream_and_keep_their_ids() {
        // Given two unconfigured switches with the same description,
        let mut n = Naming::default();
        n.assign(&nodes(&[(0xa, "MF0;switch"), (0xb, "MF0;switch")]));
        let a = n.stream_id(0xa, 1).expect("a");
        let b = n.stream_id(0xb, 1).expect("b");
        assert_ne!(a, b);
        assert_eq!(a, "MF0_switch_0x000000000000000a/p1");
        // when a third appears and one leaves, the others keep their ids;
        n.assign(&nodes(&[(0xa, "MF0;switch"), (0xc, "MF0;switch")]));
        assert_eq!(n.stream_id(0xa, 1).as_deref(), Some(a.as_str()));
        // and a node whose description is unique but already taken gets its GUID too.
        let mut n = Naming::default();
        n.assign(&nodes(&[(0xa, "spine")]));
        n.assign(&nodes(&[(0xa, "spine"), (0xb, "spine")]));
        assert_ne!(n.stream_id(0xb, 1), n.stream_id(0xa, 1));
    }
}
