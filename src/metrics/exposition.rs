//! The per-port exposition: every port of the port table in the Prometheus text format
//! (0.0.4), under the names and labels of treydock/infiniband_exporter, so that its users'
//! dashboards and recording rules work unchanged, and ibsight's own per-port series beside
//! them. Pure: rows and verdicts in, text out in chunks, so a scrape of a million series is
//! written as it is made and never held whole.
//!
//! - A port's IB counters are `infiniband_switch_port_…_total` or `infiniband_hca_port_…_total`
//!   (by its node type) with `guid` (the node GUID, `0x` and 16 hex digits) and `port`; the
//!   data counters in bytes (PortXmitData and PortRcvData count 4-octet words).
//! - Per node: `…_info{guid, switch|hca, lid}`, `…_rate_bytes_per_second{guid}`; per cabled
//!   port: `…_uplink_info{guid, port, switch|hca, uplink, uplink_guid, uplink_type,
//!   uplink_port, uplink_lid}`.
//! - A counter without a treydock name, or of a port without a GUID and number, is
//!   `ibsight_port_counter_total{stream, …, counter}`.
//! - ibsight's own series are `ibsight_port_…{stream, guid, port}`: link state, width and
//!   rate, the derived rates and utilization, bit error ratios, temperature, QP errors, the
//!   last sample's time, and the open incidents and worst open risk.

use super::ports::PortRow;
use crate::sample::port::{format_guid, LinkState, NodeType};
use crate::sample::Counter;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A chunk is handed on once it holds about this many bytes.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// What the open incidents say about one port.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Verdict {
    pub open_incidents: u32,
    /// The highest risk among its open incidents that have an insight.
    pub worst_risk: Option<f64>,
}

/// The treydock name of a counter (after `infiniband_{switch,hca}_`), and the factor that
/// turns its unit into the exported one.
pub fn treydock_name(counter: Counter) -> Option<(&'static str, u128)> {
    use Counter::*;
    Some(match counter {
        PortXmitData => ("port_transmit_data_bytes_total", 4),
        PortRcvData => ("port_receive_data_bytes_total", 4),
        PortXmitPkts => ("port_transmit_packets_total", 1),
        PortRcvPkts => ("port_receive_packets_total", 1),
        PortUnicastXmitPkts => ("port_unicast_transmit_packets_total", 1),
        PortUnicastRcvPkts => ("port_unicast_receive_packets_total", 1),
        PortMulticastXmitPkts => ("port_multicast_transmit_packets_total", 1),
        PortMulticastRcvPkts => ("port_multicast_receive_packets_total", 1),
        SymbolErrorCounter => ("port_symbol_error_total", 1),
        LinkErrorRecoveryCounter => ("port_link_error_recovery_total", 1),
        LinkDownedCounter => ("port_link_downed_total", 1),
        PortRcvErrors => ("port_receive_errors_total", 1),
        PortRcvRemotePhysicalErrors => ("port_receive_remote_physical_errors_total", 1),
        PortRcvSwitchRelayErrors => ("port_receive_switch_relay_errors_total", 1),
        PortXmitDiscards => ("port_transmit_discards_total", 1),
        PortXmitConstraintErrors => ("port_transmit_constraint_errors_total", 1),
        PortRcvConstraintErrors => ("port_receive_constraint_errors_total", 1),
        LocalLinkIntegrityErrors => ("port_local_link_integrity_errors_total", 1),
        ExcessiveBufferOverrunErrors => ("port_excessive_buffer_overrun_errors_total", 1),
        VL15Dropped => ("port_vl15_dropped_total", 1),
        PortXmitWait => ("port_transmit_wait_total", 1),
        QP1Dropped => ("port_qp1_dropped_total", 1),
        PortLocalPhysicalErrors => ("port_local_physical_errors_total", 1),
        PortMalformedPacketErrors => ("port_malformed_packet_errors_total", 1),
        PortBufferOverrunErrors => ("port_buffer_overrun_errors_total", 1),
        PortDLIDMappingErrors => ("port_dli_mapping_errors_total", 1),
        PortVLMappingErrors => ("port_vl_mapping_errors_total", 1),
        PortLoopingErrors => ("port_looping_errors_total", 1),
        _ => return None,
    })
}

/// treydock's name part for a node type; routers have none.
fn kind(t: Option<NodeType>) -> Option<&'static str> {
    match t? {
        NodeType::Switch => Some("switch"),
        NodeType::Ca => Some("hca"),
        NodeType::Router => None,
    }
}

/// ibnetdiscover's two-letter type, treydock's `uplink_type`.
fn short_type(t: Option<NodeType>) -> &'static str {
    match t {
        Some(NodeType::Switch) => "SW",
        Some(NodeType::Ca) => "CA",
        Some(NodeType::Router) => "RT",
        None => "",
    }
}

/// A label value, escaped as the text format wants it.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One port, with its label sets written once.
struct Port<'a> {
    row: &'a PortRow,
    /// `guid="…",port="…"` when the port has both, and a node type treydock names.
    treydock: Option<(&'static str, String)>,
    /// `stream="…"`, then guid and port when known.
    own: String,
}

/// One node, from its ports.
#[derive(Default)]
struct Node {
    kind: &'static str,
    name: String,
    lid: Option<(u8, u16)>,
    rate_gbps: f64,
}

/// The whole scrape, chunk by chunk: `emit` gets each chunk as it fills (about
/// `CHUNK_BYTES`), and the last one. An `emit` that answers `false` (the scraper went away)
/// stops the rendering.
pub fn render(
    rows: &[PortRow],
    verdicts: &HashMap<String, Verdict>,
    mut emit: impl FnMut(String) -> bool,
) {
    let ports: Vec<Port> = rows.iter().map(|r| port(r)).collect();
    let mut out = Out {
        buf: String::with_capacity(CHUNK_BYTES + 4096),
        emit: &mut emit,
        stopped: false,
    };
    treydock_counters(&mut out, &ports);
    treydock_nodes(&mut out, &ports);
    own::series(&mut out, &ports, verdicts);
    let last = std::mem::take(&mut out.buf);
    if !last.is_empty() && !out.stopped {
        emit(last);
    }
}

struct Out<'e, E: FnMut(String) -> bool> {
    buf: String,
    emit: &'e mut E,
    stopped: bool,
}

impl<E: FnMut(String) -> bool> Out<'_, E> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.buf, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn line(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if self.stopped {
            return;
        }
        let _ = writeln!(self.buf, "{name}{{{labels}}} {value}");
        if self.buf.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK_BYTES + 4096));
            self.stopped = !(self.emit)(full);
        }
    }

    /// A gauge family over every port that has a value for it.
    fn gauge(
        &mut self,
        ports: &[Port],
        name: &str,
        help: &str,
        value: impl Fn(&PortRow) -> Option<f64>,
    ) {
        let values: Vec<(&str, f64)> = ports
            .iter()
            .filter_map(|p| Some((p.own.as_str(), value(p.row).filter(|v| v.is_finite())?)))
            .collect();
        if values.is_empty() {
            return;
        }
        self.head(name, "gauge", help);
        for (labels, v) in values {
            self.line(name, labels, v);
        }
    }
}

fn port(row: &PortRow) -> Port<'_> {
    let s = &row.sample;
    let id = &s.port;
    let known = id.node_guid.zip(id.port_num);
    let treydock = known.and_then(|(guid, num)| {
        let kind = kind(id.node_type)?;
        Some((
            kind,
            format!("guid=\"{}\",port=\"{num}\"", format_guid(guid)),
        ))
    });
    let mut own = format!("stream=\"{}\"", escape(&s.stream_id));
    if let Some((guid, num)) = known {
        let _ = write!(own, ",guid=\"{}\",port=\"{num}\"", format_guid(guid));
    }
    Port { row, treydock, own }
}

fn treydock_counters<E: FnMut(String) -> bool>(out: &mut Out<E>, ports: &[Port]) {
    for kind in ["switch", "hca"] {
        let title = if kind == "switch" { "switch" } else { "HCA" };
        for &counter in Counter::ALL {
            let Some((suffix, factor)) = treydock_name(counter) else {
                continue;
            };
            let name = format!("infiniband_{kind}_{suffix}");
            let mut head = false;
            for p in ports {
                let Some((k, labels)) = &p.treydock else {
                    continue;
                };
                let Some(&v) = p.row.sample.counters.get(&counter).filter(|_| *k == kind) else {
                    continue;
                };
                if !head {
                    let help = format!("Infiniband {title} port {}", counter.name());
                    out.head(&name, "counter", &help);
                    head = true;
                }
                out.line(&name, labels, u128::from(v) * factor);
            }
        }
    }
    // Everything else: counters without a treydock name, and ports treydock could not name.
    let name = "ibsight_port_counter_total";
    let mut head = false;
    for p in ports {
        for (&counter, &v) in &p.row.sample.counters {
            if p.treydock.is_some() && treydock_name(counter).is_some() {
                continue;
            }
            if !head {
                out.head(
                    name,
                    "counter",
                    "A port counter by its IBA (or sysfs hw_counters) name, in its own unit",
                );
                head = true;
            }
            let labels = format!("{},counter=\"{}\"", p.own, counter.name());
            out.line(name, &labels, v);
        }
    }
}

fn treydock_nodes<E: FnMut(String) -> bool>(out: &mut Out<E>, ports: &[Port]) {
    let mut nodes: BTreeMap<(&'static str, u64), Node> = BTreeMap::new();
    for p in ports {
        let Some((kind, _)) = p.treydock else {
            continue;
        };
        let id = &p.row.sample.port;
        let (Some(guid), Some(num)) = (id.node_guid, id.port_num) else {
            continue;
        };
        let node = nodes.entry((kind, guid)).or_default();
        node.kind = kind;
        if let Some(desc) = &id.node_desc {
            node.name = desc.clone();
        }
        if let Some(lid) = id.lid.filter(|l| *l != 0) {
            if node.lid.is_none_or(|(n, _)| num < n) {
                node.lid = Some((num, lid));
            }
        }
        let link = p.row.sample.link.as_ref();
        let active = link.and_then(|l| l.state) == Some(LinkState::Active);
        if let Some(rate) = link.and_then(|l| l.rate_gbps).filter(|_| active) {
            node.rate_gbps = node.rate_gbps.max(rate);
        }
    }
    // The peer's type and LID, from its own row when this node owns it.
    let by_port: HashMap<(u64, u8), &PortRow> = ports
        .iter()
        .filter_map(|p| {
            let id = &p.row.sample.port;
            Some(((id.node_guid?, id.port_num?), p.row))
        })
        .collect();
    for kind in ["switch", "hca"] {
        let title = if kind == "switch" { "switch" } else { "HCA" };
        let of_kind: Vec<(&u64, &Node)> = nodes
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, g), n)| (g, n))
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        let name = format!("infiniband_{kind}_info");
        out.head(&name, "gauge", &format!("Infiniband {title} information"));
        for (guid, node) in &of_kind {
            let lid = node.lid.map(|(_, l)| l.to_string()).unwrap_or_default();
            let labels = format!(
                "guid=\"{}\",{kind}=\"{}\",lid=\"{lid}\"",
                format_guid(**guid),
                escape(&node.name)
            );
            out.line(&name, &labels, 1);
        }
        let name = format!("infiniband_{kind}_rate_bytes_per_second");
        out.head(&name, "gauge", &format!("Infiniband {title} rate"));
        for (guid, node) in &of_kind {
            let labels = format!("guid=\"{}\"", format_guid(**guid));
            out.line(&name, &labels, node.rate_gbps * 1e9 / 8.0);
        }
        let name = format!("infiniband_{kind}_uplink_info");
        let mut head = false;
        for p in ports {
            let Some((k, labels)) = &p.treydock else {
                continue;
            };
            let sample = &p.row.sample;
            let Some(peer) = sample.peer.as_ref().filter(|_| *k == kind) else {
                continue;
            };
            if !head {
                let help = format!("Infiniband {title} uplink information");
                out.head(&name, "gauge", &help);
                head = true;
            }
            let far = peer
                .node_guid
                .zip(peer.port_num)
                .and_then(|k| by_port.get(&k));
            let far_id = far.map(|r| &r.sample.port);
            let node = sample.port.node_guid.and_then(|g| nodes.get(&(kind, g)));
            let labels = format!(
                "{labels},{kind}=\"{}\",uplink=\"{}\",uplink_guid=\"{}\",uplink_type=\"{}\",uplink_port=\"{}\",uplink_lid=\"{}\"",
                escape(node.map_or("", |n| n.name.as_str())),
                escape(peer.node_desc.as_deref().unwrap_or("")),
                peer.node_guid.map(format_guid).unwrap_or_default(),
                short_type(far_id.and_then(|i| i.node_type)),
                peer.port_num.map(|n| n.to_string()).unwrap_or_default(),
                far_id.and_then(|i| i.lid).map(|l| l.to_string()).unwrap_or_default(),
            );
            out.line(&name, &labels, 1);
        }
    }
}

mod own;
#[cfg(test)]
mod tests;
