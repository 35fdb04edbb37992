//! A two-tier fat tree: nodes with one HCA port each, leaf switches with 18 ports down (to
//! nodes) and 18 up (to spines), and spines. Every port is a stream, named like `leaf03/p17`,
//! `spine01/p05` or `node042/mlx5_0/p1`, labelled with its switch or node and its peer.

use crate::sample::port::{
    LinkInfo, LinkState, NodeType, PeerPort, PhysState, PortIdentity, Speed, Width,
};
use std::collections::BTreeMap;

pub const DOWN_PORTS: usize = 18;
pub const SWITCH_PORTS: usize = 36;

#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub stream_id: String,
    /// The switch or node the port belongs to (`leaf03`, `node042`).
    pub device: String,
    pub peer: String,
    pub labels: BTreeMap<String, String>,
    /// What a collector would report of the port: GUID, port number, description, type.
    pub identity: PortIdentity,
    /// The other end of the cable.
    pub peer_port: PeerPort,
}

/// A device's GUID: a Mellanox-style OUI prefix and a stable hash of its name.
pub fn guid_of(device: &str) -> u64 {
    0x0002_c903_0000_0000 | (crate::hash::fnv1a64(device.bytes()) & 0xffff_ffff)
}

/// `leaf03/p06` → ("leaf03", "leaf03", Some(6)); `node042/mlx5_0/p1` → ("node042",
/// "node042 mlx5_0", Some(1)); `leaf02` → ("leaf02", "leaf02", None).
fn split_port(id: &str) -> (String, String, Option<u8>) {
    let mut parts: Vec<&str> = id.split('/').collect();
    let port = parts
        .last()
        .and_then(|p| p.strip_prefix('p'))
        .and_then(|n| n.parse::<u8>().ok());
    if port.is_some() {
        parts.pop();
    }
    (parts[0].to_string(), parts.join(" "), port)
}

/// The healthy link every simulated port has: 4x HDR, active.
pub fn healthy_link() -> LinkInfo {
    LinkInfo {
        state: Some(LinkState::Active),
        phys_state: Some(PhysState::LinkUp),
        width: Some(Width::X4),
        width_enabled: vec![Width::X1, Width::X4],
        speed: Some(Speed::Hdr),
        rate_gbps: Some(200.0),
        ..LinkInfo::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fabric {
    pub nodes: usize,
    pub leaves: usize,
    pub spines: usize,
    pub ports: Vec<Port>,
}

fn port(stream_id: String, device: &str, peer: String, kind: &str) -> Port {
    let mut labels = BTreeMap::new();
    labels.insert(kind.to_string(), device.to_string());
    labels.insert("peer".to_string(), peer.clone());
    let (_, desc, port_num) = split_port(&stream_id);
    let (peer_device, peer_desc, peer_num) = split_port(&peer);
    Port {
        identity: PortIdentity {
            node_guid: Some(guid_of(device)),
            port_num,
            node_desc: Some(desc),
            node_type: Some(if kind == "switch" {
                NodeType::Switch
            } else {
                NodeType::Ca
            }),
            lid: None,
        },
        peer_port: PeerPort {
            node_guid: Some(guid_of(&peer_device)),
            port_num: peer_num,
            node_desc: Some(peer_desc),
        },
        stream_id,
        device: device.to_string(),
        peer,
        labels,
    }
}

impl Fabric {
    pub fn new(nodes: usize) -> Fabric {
        let nodes = nodes.max(1);
        let leaves = nodes.div_ceil(DOWN_PORTS);
        let spines = leaves.div_ceil(2).max(1);
        let mut ports = Vec::new();
        for n in 0..nodes {
            let node = format!("node{:03}", n + 1);
            let (leaf, lp) = (n / DOWN_PORTS + 1, n % DOWN_PORTS + 1);
            ports.push(port(
                format!("{node}/mlx5_0/p1"),
                &node,
                format!("leaf{leaf:02}/p{lp:02}"),
                "node",
            ));
        }
        for l in 1..=leaves {
            let leaf = format!("leaf{l:02}");
            for p in 1..=SWITCH_PORTS {
                let peer = if p <= DOWN_PORTS {
                    let n = (l - 1) * DOWN_PORTS + p;
                    if n > nodes {
                        continue; // an unused down port carries no stream
                    }
                    format!("node{n:03}/mlx5_0/p1")
                } else {
                    // Uplink u (over the whole fabric) goes to spine u % spines, port
                    // u / spines: every cable has one port at each end.
                    let u = (l - 1) * DOWN_PORTS + (p - DOWN_PORTS - 1);
                    format!("spine{:02}/p{:02}", u % spines + 1, u / spines + 1)
                };
                ports.push(port(format!("{leaf}/p{p:02}"), &leaf, peer, "switch"));
            }
        }
        for s in 1..=spines {
            let spine = format!("spine{s:02}");
            for p in 1..=SWITCH_PORTS {
                let u = (p - 1) * spines + (s - 1);
                if u >= leaves * DOWN_PORTS {
                    continue; // not cabled
                }
                let (leaf, up) = (u / DOWN_PORTS + 1, u % DOWN_PORTS);
                ports.push(port(
                    format!("{spine}/p{p:02}"),
                    &spine,
                    format!("leaf{leaf:02}/p{:02}", DOWN_PORTS + 1 + up),
                    "switch",
                ));
            }
        }
        Fabric {
            nodes,
            leaves,
            spines,
            ports,
        }
    }

    /// Streams a fault target names: one stream id, or every port of a device.
    /// The port at the other end of port `i`'s cable.
    pub fn peer_of(&self, i: usize) -> Option<usize> {
        let peer = &self.ports[i].peer;
        self.ports.iter().position(|p| &p.stream_id == peer)
    }

    pub fn resolve(&self, target: &str) -> Vec<usize> {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.stream_id == target || p.device == target)
            .map(|(i, _)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::validate::is_valid_stream_id;

    #[test]
    fn sixty_four_nodes() {
        let f = Fabric::new(64);
        assert_eq!((f.leaves, f.spines), (4, 2));
        assert_eq!(f.ports.len(), 64 + (3 * 36 + 10 + 18) + 2 * 36);
        assert!(f.ports.iter().all(|p| is_valid_stream_id(&p.stream_id)));
        assert_eq!(f.resolve("leaf03").len(), 36);
        assert_eq!(f.resolve("leaf03/p17").len(), 1);
        let node = &f.ports[41];
        assert_eq!(node.stream_id, "node042/mlx5_0/p1");
        assert_eq!(node.peer, "leaf03/p06");
        assert_eq!(node.identity.node_desc.as_deref(), Some("node042 mlx5_0"));
        assert_eq!(node.identity.port_num, Some(1));
        assert_eq!(node.peer_port.node_desc.as_deref(), Some("leaf03"));
        assert_eq!(node.peer_port.port_num, Some(6));
        assert_eq!(node.peer_port.node_guid, Some(guid_of("leaf03")));
        let ids: std::collections::BTreeSet<_> = f.ports.iter().map(|p| &p.stream_id).collect();
        assert_eq!(ids.len(), f.ports.len(), "stream ids are unique");
        // Every cable has a port at each end, and each end names the other.
        for i in 0..f.ports.len() {
            let j = f.peer_of(i).expect("cabled");
            assert_eq!(f.peer_of(j), Some(i), "{}", f.ports[i].stream_id);
        }
    }
}
