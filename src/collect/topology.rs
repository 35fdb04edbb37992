//! The expected topology and the node names (pure): `ibnetdiscover`'s own output saved after
//! commissioning (`ibnetdiscover > fabric.topo`), rdma-core's node-name-map, and each sweep
//! held against the topology, as ibdiagnet and UFM do.
//!
//! Nodes are matched by node GUID. For every port of the sweep:
//! - its node is not in the topology → `node_unexpected`;
//! - it links where the topology expects the same peer → as expected;
//! - it has no link where the topology expects one → `node_missing` when the expected peer's
//!   node is nowhere in the sweep, else `missing_link`;
//! - it links to a node the topology does not list → `node_unexpected`;
//! - it links elsewhere, or where nothing was expected → `miswired`.
//!
//! A node that vanished has no ports in the sweep: its neighbours' ports carry the finding.

use crate::sample::port::{Mismatch, MismatchKind, PeerPort};
use crate::sample::Sample;
use std::collections::{HashMap, HashSet};

/// A node of the expected topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub desc: String,
    pub switch: bool,
}

/// The expected topology: its nodes and every link, both ways, by (node GUID, port).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    pub nodes: HashMap<u64, Node>,
    pub links: HashMap<(u64, u8), (u64, u8)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TopologyError {
    #[error("{file}: line {line}: {message}: {text:?}")]
    Line {
        file: String,
        line: usize,
        message: String,
        text: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// "S-0000000000200002" → 0x200002.
fn prefixed_guid(id: &str) -> Option<u64> {
    let hex = id.get(2..)?;
    (id.len() == 18 && id.as_bytes()[1] == b'-')
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// The first `"..."` of `s`, and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let start = s.find('"')? + 1;
    let len = s[start..].find('"')?;
    Some((&s[start..start + len], &s[start + len + 1..]))
}

/// "[12]…" → 12 and what follows.
fn bracketed(s: &str) -> Option<(u8, &str)> {
    let (n, rest) = s.strip_prefix('[')?.split_once(']')?;
    Some((n.trim().parse().ok()?, rest))
}

/// Parse `ibnetdiscover` output. Node headers (`Switch`, `Ca`, `Rt`) carry the node's GUID
/// (`"S-…"`) and, after `#`, its description; each `[port]` line under one names the peer
/// (`"H-…"[port]`). Other lines (vendid=, comments) are skipped.
pub fn parse(file: &str, text: &str) -> Result<Topology, TopologyError> {
    let mut topo = Topology::default();
    let mut node: Option<u64> = None;
    let err = |line: usize, message: &str, text: &str| TopologyError::Line {
        file: file.to_string(),
        line,
        message: message.to_string(),
        text: text.to_string(),
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let kind = ["Switch", "Ca", "Rt"]
            .into_iter()
            .find(|k| line.starts_with(k) && line[k.len()..].starts_with([' ', '\t']));
        if let Some(kind) = kind {
            let (id, after) = quoted(line)
                .ok_or_else(|| err(i + 1, "a node without its \"S-<guid>\" id", raw))?;
            let guid = prefixed_guid(id)
                .ok_or_else(|| err(i + 1, "a node id that is not \"X-<16 hex digits>\"", raw))?;
            let desc = after
                .split_once('#')
                .and_then(|(_, c)| quoted(c))
                .map_or_else(|| id.to_string(), |(d, _)| d.to_string());
            topo.nodes.insert(
                guid,
                Node {
                    desc,
                    switch: kind == "Switch",
                },
            );
            node = Some(guid);
            continue;
        }
        if !line.starts_with('[') {
            continue;
        }
        let Some(local) = node else {
            return Err(err(i + 1, "a port line before any node", raw));
        };
        let (port, rest) =
            bracketed(line).ok_or_else(|| err(i + 1, "a port number that is not [1-254]", raw))?;
        let (id, after) = quoted(rest).ok_or_else(|| {
            err(
                i + 1,
                "a port line without its peer \"X-<guid>\"[port]",
                raw,
            )
        })?;
        let peer = prefixed_guid(id)
            .ok_or_else(|| err(i + 1, "a peer id that is not \"X-<16 hex digits>\"", raw))?;
        let (peer_port, _) = bracketed(after.trim_start())
            .ok_or_else(|| err(i + 1, "a peer without its [port]", raw))?;
        topo.links.insert((local, port), (peer, peer_port));
        topo.links.insert((peer, peer_port), (local, port));
    }
    if topo.nodes.is_empty() {
        return Err(TopologyError::File {
            file: file.to_string(),
            message: "no node in it: give the output of `ibnetdiscover`".into(),
        });
    }
    Ok(topo)
}

/// Parse rdma-core's node-name-map: `<node GUID> "<name>"` per line (the quotes may be left
/// out of a name without spaces), `#` comments and blank lines skipped.
pub fn parse_name_map(file: &str, text: &str) -> Result<HashMap<u64, String>, TopologyError> {
    let mut out = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: &str| TopologyError::Line {
            file: file.to_string(),
            line: i + 1,
            message: message.to_string(),
            text: raw.to_string(),
        };
        let (guid, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| err("a GUID without a name"))?;
        let hex = guid
            .strip_prefix("0x")
            .or_else(|| guid.strip_prefix("0X"))
            .unwrap_or(guid);
        let guid = u64::from_str_radix(hex, 16).map_err(|_| err("a GUID that is not hex"))?;
        let rest = rest.trim();
        let name = match quoted(rest) {
            Some((name, _)) if rest.starts_with('"') => name,
            _ => rest,
        };
        if name.is_empty() {
            return Err(err("an empty name"));
        }
        out.insert(guid, name.to_string());
    }
    Ok(out)
}

fn peer_of(topo: &Topology, (guid, port): (u64, u8)) -> PeerPort {
    PeerPort {
        node_guid: Some(guid),
        port_num: Some(port),
        node_desc: topo.nodes.get(&guid).map(|n| n.desc.clone()),
    }
}

/// Hold every sample of one sweep against the topology: each gets `fabric.topology`, the
/// list of its mismatches (empty when it is as expected).
pub fn check(topo: &Topology, samples: &mut [Sample]) {
    let found: HashSet<u64> = samples.iter().filter_map(|s| s.port.node_guid).collect();
    for s in samples.iter_mut() {
        let (Some(guid), Some(port)) = (s.port.node_guid, s.port.port_num) else {
            continue;
        };
        let linked = s
            .peer
            .as_ref()
            .and_then(|p| Some((p.node_guid?, p.port_num?)));
        let expected = topo.links.get(&(guid, port)).copied();
        let mismatch = |kind| Mismatch {
            kind,
            expected: expected.map(|e| peer_of(topo, e)),
        };
        let kind = if !topo.nodes.contains_key(&guid) {
            Some(MismatchKind::NodeUnexpected)
        } else {
            match (expected, linked) {
                (None, None) => None,
                (Some(e), Some(l)) if e == l => None,
                (Some(e), None) if !found.contains(&e.0) => Some(MismatchKind::NodeMissing),
                (Some(_), None) => Some(MismatchKind::MissingLink),
                (_, Some(l)) if !topo.nodes.contains_key(&l.0) => {
                    Some(MismatchKind::NodeUnexpected)
                }
                (_, Some(_)) => Some(MismatchKind::Miswired),
            }
        };
        s.fabric.topology = Some(kind.map(mismatch).into_iter().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::port::PortIdentity;

    const TOPO: &str = include_str!("../../tests/fixtures/ibnetdiscover-1x.topo");
    const LEAF: u64 = 0x200000;
    const H1: u64 = 0x100000;
    const H2: u64 = 0x100002;
    const H3: u64 = 0x100004;

    fn port(guid: u64, num: u8, peer: Option<(u64, u8)>) -> Sample {
        Sample {
            stream_id: format!("{guid:x}/p{num}"),
            port: PortIdentity {
                node_guid: Some(guid),
                port_num: Some(num),
                ..PortIdentity::default()
            },
            peer: peer.map(|(g, p)| PeerPort {
                node_guid: Some(g),
                port_num: Some(p),
                node_desc: None,
            }),
            ..Sample::default()
        }
    }

    /// The fabric as saved: leaf01 ports 1-3 to h1-h3, ports 4-6 free.
    fn as_saved() -> Vec<Sample> {
        vec![
            port(LEAF, 1, Some((H1, 1))),
            port(LEAF, 2, Some((H2, 1))),
            port(LEAF, 3, Some((H3, 1))),
            port(LEAF, 4, None),
            port(H1, 1, Some((LEAF, 1))),
            port(H2, 1, Some((LEAF, 2))),
            port(H3, 1, Some((LEAF, 3))),
        ]
    }

    fn kinds(samples: &[Sample]) -> Vec<(String, Vec<MismatchKind>)> {
        samples
            .iter()
            .map(|s| {
                let k = s.fabric.topology.iter().flatten().map(|m| m.kind).collect();
                (s.stream_id.clone(), k)
            })
            .filter(|(_, k): &(String, Vec<MismatchKind>)| !k.is_empty())
            .collect()
    }

    #[test]
    fn given_ibnetdiscover_output_then_nodes_and_links_are_read_both_ways() {
        let t = parse("fabric.topo", TOPO).expect("parses");
        assert_eq!(t.nodes.len(), 4);
        assert_eq!(t.nodes[&LEAF].desc, "leaf01");
        assert!(t.nodes[&LEAF].switch && !t.nodes[&H1].switch);
        assert_eq!(t.links[&(LEAF, 1)], (H1, 1));
        assert_eq!(t.links[&(H3, 1)], (LEAF, 3));
        assert_eq!(t.links.len(), 6);
    }

    #[test]
    fn given_the_fabric_as_saved_then_every_port_is_checked_and_none_differs() {
        let t = parse("fabric.topo", TOPO).unwrap();
        let mut s = as_saved();
        check(&t, &mut s);
        assert!(kinds(&s).is_empty());
        assert!(s.iter().all(|s| s.fabric.topology == Some(Vec::new())));
    }

    #[test]
    fn given_a_moved_cable_then_the_old_port_misses_it_and_both_new_ends_are_miswired() {
        let t = parse("fabric.topo", TOPO).unwrap();
        let mut s = as_saved();
        // h3 moved from leaf01[3] to leaf01[4].
        s[2] = port(LEAF, 3, None);
        s[3] = port(LEAF, 4, Some((H3, 1)));
        s[6] = port(H3, 1, Some((LEAF, 4)));
        check(&t, &mut s);
        assert_eq!(
            kinds(&s),
            vec![
                ("200000/p3".into(), vec![MismatchKind::MissingLink]),
                ("200000/p4".into(), vec![MismatchKind::Miswired]),
                ("100004/p1".into(), vec![MismatchKind::Miswired]),
            ]
        );
        let expected = s[6].fabric.topology.as_ref().unwrap()[0].expected.clone();
        assert_eq!(expected.and_then(|e| e.port_num), Some(3));
    }

    #[test]
    fn given_a_vanished_node_and_an_unknown_one_then_their_neighbours_say_so() {
        let t = parse("fabric.topo", TOPO).unwrap();
        let mut s = as_saved();
        // h2 is gone; an unknown HCA 0x999 sits on leaf01[4].
        s.retain(|p| p.port.node_guid != Some(H2));
        s[1] = port(LEAF, 2, None);
        s[3] = port(LEAF, 4, Some((0x999, 1)));
        s.push(port(0x999, 1, Some((LEAF, 4))));
        check(&t, &mut s);
        assert_eq!(
            kinds(&s),
            vec![
                ("200000/p2".into(), vec![MismatchKind::NodeMissing]),
                ("200000/p4".into(), vec![MismatchKind::NodeUnexpected]),
                ("999/p1".into(), vec![MismatchKind::NodeUnexpected]),
            ]
        );
    }

    #[test]
    fn given_bad_files_then_the_error_names_the_file_and_line() {
        let e = parse("t.topo", "vendid=0x0\n").unwrap_err().to_string();
        assert!(e.contains("t.topo") && e.contains("no node"), "{e}");
        let e = parse(
            "t.topo",
            "Switch 4 \"S-0000000000200000\"\n[x] \"H-0000000000100000\"[1]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2") && e.contains("port number"), "{e}");
        let e = parse_name_map("names", "0x10 a\nzz \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("names: line 2") && e.contains("not hex"), "{e}");
    }

    #[test]
    fn given_a_node_name_map_then_quoted_and_bare_names_are_read() {
        let m = parse_name_map(
            "names",
            "# site names\n0x0000000000100000 \"gpu a01\"\n0x100002 gpu-a02 # rack 1\n\n",
        )
        .unwrap();
        assert_eq!(m[&H1], "gpu a01");
        assert_eq!(m[&H2], "gpu-a02");
        assert_eq!(m.len(), 2);
    }
}
