//! Parsers of infiniband-diags' machine-readable outputs (pure: text in, records out):
//! `iblinkinfo --line` (every port of every node: state, width, speed, peer), `ibswitches`
//! (which nodes are switches), `ibnetdiscover` (node GUIDs of CA ports) and `ibqueryerrors`
//! (data and error counters of every linked port). A line that does not parse is skipped and counted, never fatal: one odd port must
//! not drop the sweep.

use crate::sample::port::{parse_guid, LinkState, PhysState, Speed, Width};
use crate::sample::Counter;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A port of the fabric: (node GUID, port number).
pub type PortKey = (u64, u8);
/// The counters of one port.
pub type PortCounters = BTreeMap<Counter, u64>;
/// Counters by port.
pub type ByPort = HashMap<PortKey, PortCounters>;

/// One port as `iblinkinfo --line` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkLine {
    pub node_guid: u64,
    pub node_desc: String,
    pub lid: u16,
    pub port_num: u8,
    pub width: Option<Width>,
    pub speed: Option<Speed>,
    pub state: Option<LinkState>,
    pub phys_state: Option<PhysState>,
    pub peer: Option<PeerLine>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerLine {
    pub node_guid: u64,
    pub lid: u16,
    pub port_num: u8,
    pub node_desc: String,
}

/// Parse `iblinkinfo --line`; returns the ports and the number of lines skipped.
pub fn iblinkinfo(text: &str) -> (Vec<LinkLine>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match link_line(line) {
            Some(l) => out.push(l),
            None => skipped += 1,
        }
    }
    (out, skipped)
}

fn link_line(line: &str) -> Option<LinkLine> {
    let line = line.trim();
    let (guid, rest) = line.split_once(char::is_whitespace)?;
    let node_guid = parse_guid(guid)?;
    let (node_desc, rest) = quoted(rest)?;
    let (local, rest) = rest.split_once("==(")?;
    let (link, peer) = rest.split_once(")==>")?;
    let mut local = local.split_whitespace();
    let lid = local.next()?.parse().ok()?;
    let port_num = leading_number(local.next()?)?;
    let (left, phys) = link.split_once('/')?;
    let mut words: Vec<&str> = left.split_whitespace().collect();
    let state = LinkState::parse(words.pop()?);
    let (width, speed) = match words.as_slice() {
        [w, gbps, unit] if unit.eq_ignore_ascii_case("gbps") => (
            Width::parse(w),
            gbps.parse::<f64>().ok().and_then(speed_of_lane_signal),
        ),
        _ => (None, None),
    };
    let phys_state = phys_state(phys.trim());
    Some(LinkLine {
        node_guid,
        node_desc: node_desc.trim().to_string(),
        lid,
        port_num,
        width,
        speed,
        state,
        phys_state,
        peer: peer_line(peer),
    })
}

fn peer_line(text: &str) -> Option<PeerLine> {
    let text = text.trim();
    let (guid, rest) = text.split_once(char::is_whitespace)?;
    let node_guid = parse_guid(guid)?;
    let (before_desc, after) = rest.split_once('"')?;
    let mut words = before_desc.split_whitespace();
    let lid = words.next()?.parse().ok()?;
    let port_num = leading_number(words.next()?)?;
    let node_desc = &after[..after.find('"')?];
    Some(PeerLine {
        node_guid,
        lid,
        port_num,
        node_desc: node_desc.trim().to_string(),
    })
}

/// The text between the first pair of double quotes, and what follows.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let start = s.find('"')? + 1;
    let len = s[start..].find('"')?;
    Some((&s[start..start + len], &s[start + len + 1..]))
}

/// "12[  ]" → 12.
fn leading_number(s: &str) -> Option<u8> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// iblinkinfo prints the signalling rate of one lane.
fn speed_of_lane_signal(gbps: f64) -> Option<Speed> {
    let table = [
        (2.5, Speed::Sdr),
        (5.0, Speed::Ddr),
        (10.0, Speed::Qdr),
        (10.3125, Speed::Fdr10),
        (14.0625, Speed::Fdr),
        (25.78125, Speed::Edr),
        (53.125, Speed::Hdr),
        (106.25, Speed::Ndr),
        (212.5, Speed::Xdr),
    ];
    table
        .iter()
        .find(|(g, _)| (g - gbps).abs() < 0.01)
        .map(|(_, s)| *s)
}

fn phys_state(s: &str) -> Option<PhysState> {
    match s {
        "Sleep" => Some(PhysState::Sleep),
        "Polling" => Some(PhysState::Polling),
        "Disabled" => Some(PhysState::Disabled),
        "PortConfigurationTraining" | "Training" => Some(PhysState::Training),
        "LinkUp" => Some(PhysState::LinkUp),
        "LinkErrorRecovery" => Some(PhysState::ErrorRecovery),
        "PhyTest" | "Phy Test" => Some(PhysState::PhyTest),
        _ => None,
    }
}

/// Port GUID → node GUID, from `ibnetdiscover`. `iblinkinfo` names a port by its port GUID,
/// which for a CA differs from the node's GUID (`node_guid` is the node's, as `ibqueryerrors`
/// and every tool's node listing use). Switch ports share their switch's GUID.
pub fn ibnetdiscover_port_guids(text: &str) -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    let mut node: Option<u64> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("Switch") || t.starts_with("Ca") || t.starts_with("Rt") {
            node = quoted(t).and_then(|(id, _)| prefixed_guid(id));
            continue;
        }
        // "[1](100007) \t\"S-0000000000200002\"[1]" on a CA; on a switch, the remote CA's
        // "\"H-0000000000100006\"[1](100007)".
        if let (Some(n), Some(rest)) = (node, t.strip_prefix('[')) {
            if let Some(pg) = paren_hex(rest.split_once(']').map_or("", |(_, r)| r)) {
                out.insert(pg, n);
            }
        }
        if let Some((id, after)) = quoted(t) {
            if let (Some(remote), Some(pg)) = (
                prefixed_guid(id),
                paren_hex(after.split_once(']').map_or("", |(_, r)| r)),
            ) {
                out.insert(pg, remote);
            }
        }
    }
    out
}

/// "H-0000000000100006" → 0x100006.
fn prefixed_guid(id: &str) -> Option<u64> {
    let hex = id.get(2..)?;
    (id.len() == 18 && id.as_bytes()[1] == b'-')
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// "(100007) …" → 0x100007.
fn paren_hex(s: &str) -> Option<u64> {
    let inner = s.strip_prefix('(')?.split_once(')')?.0;
    u64::from_str_radix(inner, 16).ok()
}

/// The switches' GUIDs from `ibswitches`.
pub fn ibswitches(text: &str) -> HashSet<u64> {
    text.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(':')?;
            parse_guid(rest.split_whitespace().next()?)
        })
        .collect()
}

/// The error counters `ibqueryerrors` is asked to report: with every threshold at 0 it
/// prints each of them that is not zero, for every port it checked.
pub const ERROR_COUNTERS: [Counter; 13] = [
    Counter::SymbolErrorCounter,
    Counter::LinkErrorRecoveryCounter,
    Counter::LinkDownedCounter,
    Counter::PortRcvErrors,
    Counter::PortRcvRemotePhysicalErrors,
    Counter::PortRcvSwitchRelayErrors,
    Counter::PortXmitDiscards,
    Counter::PortXmitConstraintErrors,
    Counter::PortRcvConstraintErrors,
    Counter::LocalLinkIntegrityErrors,
    Counter::ExcessiveBufferOverrunErrors,
    Counter::VL15Dropped,
    Counter::PortXmitWait,
];

/// The threshold file that makes `ibqueryerrors` report every non-zero error counter.
pub fn zero_thresholds() -> String {
    ERROR_COUNTERS
        .iter()
        .map(|c| format!("{}=0\n", c.name()))
        .collect()
}

/// Counters by (node GUID, port) from `ibqueryerrors` (with `--counters`: the data counters
/// of every port checked; with the zero thresholds: its non-zero error counters). Lines look
/// like `   GUID 0x200001 port 1: [SymbolErrorCounter == 5] [PortXmitData == 1512 (5.906KB)]`;
/// the `port ALL` sums are skipped.
pub fn ibqueryerrors(text: &str) -> ByPort {
    let mut out: ByPort = HashMap::new();
    for (key, counters) in text.lines().filter_map(ibqueryerrors_line) {
        out.entry(key).or_default().extend(counters);
    }
    out
}

/// One port's line of `ibqueryerrors`: its (GUID as printed, port) and counters.
pub fn ibqueryerrors_line(line: &str) -> Option<((u64, u8), BTreeMap<Counter, u64>)> {
    let rest = line.trim_start().strip_prefix("GUID ")?;
    let (guid, rest) = rest.split_once(" port ")?;
    let guid = guid
        .trim()
        .strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())?;
    let (port, items) = rest.split_once(':')?;
    let port = port.trim().parse::<u8>().ok()?; // not "ALL"
    let mut counters = BTreeMap::new();
    for item in items.split('[').skip(1) {
        let Some((name, value)) = item.split_once("==") else {
            continue;
        };
        let value = value.split_whitespace().next().unwrap_or("");
        if let (Some(c), Ok(v)) = (
            Counter::from_name(name.trim()),
            value.trim_end_matches(']').parse(),
        ) {
            counters.insert(c, v);
        }
    }
    Some(((guid, port), counters))
}

/// What `ibnetdiscover` says of the nodes: the switches' GUIDs, and whether any router is in
/// the fabric (routers need their own counter query).
pub fn ibnetdiscover_nodes(text: &str) -> (HashSet<u64>, bool) {
    let mut switches = HashSet::new();
    let mut routers = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("Switch") {
            if let Some(g) = quoted(t).and_then(|(id, _)| prefixed_guid(id)) {
                switches.insert(g);
            }
        } else if t.starts_with("Rt") {
            routers = true;
        }
    }
    (switches, routers)
}

/// Counters keyed by whichever GUID a tool printed, re-keyed by node GUID (`node_of_port`
/// maps a CA's port GUIDs to its node GUID; a switch's ports share its GUID). Counters of one
/// port reported under both GUIDs are merged.
pub fn by_node_guid(counters: ByPort, node_of_port: &HashMap<u64, u64>) -> ByPort {
    let mut out: ByPort = HashMap::with_capacity(counters.len());
    for ((guid, port), c) in counters {
        let node = node_of_port.get(&guid).copied().unwrap_or(guid);
        out.entry((node, port)).or_default().extend(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read_to_string(path).expect("fixture")
    }

    #[test]
    fn iblinkinfo_lines_give_every_port_with_its_link_and_peer() {
        let (ports, skipped) = iblinkinfo(&fixture("iblinkinfo-line.txt"));
        assert_eq!(skipped, 0);
        assert_eq!(ports.len(), 20, "2 switches × 8 ports + 4 HCAs");
        let hca4 = &ports[0];
        assert_eq!(hca4.node_guid, 0x10000a);
        assert_eq!(hca4.node_desc, "Hca4");
        assert_eq!((hca4.lid, hca4.port_num), (6, 1));
        assert_eq!(hca4.width, Some(Width::X4));
        assert_eq!(hca4.speed, Some(Speed::Sdr));
        assert_eq!(hca4.state, Some(LinkState::Active));
        assert_eq!(hca4.phys_state, Some(PhysState::LinkUp));
        let peer = hca4.peer.as_ref().expect("peer");
        assert_eq!((peer.node_guid, peer.lid, peer.port_num), (0x200001, 3, 2));
        assert_eq!(peer.node_desc, "Switch2");
        let down = ports
            .iter()
            .find(|p| p.node_desc == "Switch2" && p.port_num == 4)
            .expect("a down port");
        assert_eq!(down.state, Some(LinkState::Down));
        assert_eq!(down.phys_state, Some(PhysState::Polling));
        assert_eq!(
            (down.width, down.speed, down.peer.clone()),
            (None, None, None)
        );
    }

    #[test]
    fn a_garbled_line_is_skipped_not_fatal() {
        let text = format!("{}\nnot a port line\n", fixture("iblinkinfo-line.txt"));
        let (ports, skipped) = iblinkinfo(&text);
        assert_eq!((ports.len(), skipped), (20, 1));
    }

    #[test]
    fn switches_are_known_by_guid() {
        let s = ibswitches(&fixture("ibswitches.txt"));
        assert_eq!(s, HashSet::from([0x200000, 0x200001]));
        // ibnetdiscover names the same switches, so one discovery serves both.
        let (from_discovery, routers) = ibnetdiscover_nodes(&fixture("ibnetdiscover.txt"));
        assert!(!routers);
        assert!(from_discovery.contains(&0x200002), "{from_discovery:?}");
        assert!(!from_discovery.contains(&0x100006), "a CA is no switch");
    }

    #[test]
    fn ibqueryerrors_gives_every_checked_ports_data_and_its_non_zero_errors() {
        let data = ibqueryerrors(&fixture("ibqueryerrors-counters.txt"));
        assert_eq!(data.len(), 8, "every linked port: {data:?}");
        assert_eq!(data[&(0x200001, 4)][&Counter::PortXmitData], 14976);
        assert!(data[&(0x100000, 1)].contains_key(&Counter::PortMulticastRcvPkts));
        let errors = ibqueryerrors(&fixture("ibqueryerrors-errors.txt"));
        assert_eq!(errors.len(), 2, "the ALL sum is not a port");
        assert_eq!(errors[&(0x200001, 1)][&Counter::SymbolErrorCounter], 5);
        assert_eq!(errors[&(0x100003, 1)][&Counter::PortXmitWait], 77);
        assert!(zero_thresholds().contains("PortXmitWait=0"));
    }

    #[test]
    fn given_a_ca_error_reported_under_its_port_guid_when_rekeyed_then_it_is_the_nodes() {
        // Given ibqueryerrors' report of an HCA's error under its port GUID (0x100001 on the
        // node 0x100000) and a switch port's under the switch GUID,
        let text =
            "Errors for \"node001 mlx5_0\"\n   GUID 0x100001 port 1: [SymbolErrorCounter == 500]\n\
                    Errors for \"leaf01\"\n   GUID 0x200000 port 3: [PortRcvErrors == 7]\n";
        let node_of_port = HashMap::from([(0x100001, 0x100000)]);
        // when re-keyed by node GUID,
        let errors = by_node_guid(ibqueryerrors(text), &node_of_port);
        // then both are found where the sweep looks for them.
        assert_eq!(errors[&(0x100000, 1)][&Counter::SymbolErrorCounter], 500);
        assert_eq!(errors[&(0x200000, 3)][&Counter::PortRcvErrors], 7);
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn ca_port_guids_map_to_their_node_guid() {
        let map = ibnetdiscover_port_guids(&fixture("ibnetdiscover.txt"));
        assert_eq!(map.get(&0x100007), Some(&0x100006), "node00003's port 1");
        assert_eq!(map.get(&0x100001), Some(&0x100000), "smhost's port 1");
        assert!(
            !map.contains_key(&0x200002),
            "switch ports are their switch's GUID"
        );
        // Every CA port iblinkinfo names is known.
        let (ports, _) = iblinkinfo(&fixture("iblinkinfo-fattree.txt"));
        let data = ibqueryerrors(&fixture("ibqueryerrors-fattree.txt"));
        for p in ports.iter().filter(|p| p.peer.is_some()) {
            let node = map.get(&p.node_guid).copied().unwrap_or(p.node_guid);
            assert!(
                data.contains_key(&(node, p.port_num)),
                "{} p{}",
                p.node_desc,
                p.port_num
            );
        }
    }
}
