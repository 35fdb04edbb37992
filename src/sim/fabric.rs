//! A two-tier fat tree: nodes with one HCA port each, leaf switches with 18 ports down (to
//! nodes) and 18 up (to spines), and spines. Every port is a stream, named like `leaf03/p17`,
//! `spine01/p05` or `node042/mlx5_0/p1`, labelled with its switch or node and its peer.

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
    Port {
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
                    let up = p - DOWN_PORTS - 1;
                    format!(
                        "spine{:02}/p{:02}",
                        up % spines + 1,
                        ((l - 1) * DOWN_PORTS + up) % SWITCH_PORTS + 1
                    )
                };
                ports.push(port(format!("{leaf}/p{p:02}"), &leaf, peer, "switch"));
            }
        }
        for s in 1..=spines {
            let spine = format!("spine{s:02}");
            for p in 1..=SWITCH_PORTS {
                ports.push(port(
                    format!("{spine}/p{p:02}"),
                    &spine,
                    format!("leaf{:02}", (p - 1) % leaves + 1),
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
        let ids: std::collections::BTreeSet<_> = f.ports.iter().map(|p| &p.stream_id).collect();
        assert_eq!(ids.len(), f.ports.len(), "stream ids are unique");
    }
}
