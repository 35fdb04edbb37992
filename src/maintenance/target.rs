//! What a window names, and whether a port is one of them: its node (by description pattern
//! or GUID), the port itself (by stream id or `GUID/port`), or the far end of its cable (a
//! host's port on a switch that is recabled is in that switch's window too).

use crate::sample::port::{PeerPort, PortIdentity};

/// A node, by GUID or by description (`*` matches any run of characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeTarget {
    Guid(u64),
    Desc(String),
}

/// A port, by stream id or by node GUID and port number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortTarget {
    Stream(String),
    GuidPort(u64, u8),
}

fn guid(text: &str) -> Option<u64> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    u64::from_str_radix(hex, 16).ok()
}

impl NodeTarget {
    /// `0x…` is a GUID; anything else a description pattern.
    pub fn parse(text: &str) -> Result<NodeTarget, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a node is a description or a GUID (0x…), not empty".into());
        }
        if text.starts_with("0x") || text.starts_with("0X") {
            return guid(text)
                .map(NodeTarget::Guid)
                .ok_or_else(|| format!("{text:?} is not a GUID (0x and up to 16 hex digits)"));
        }
        Ok(NodeTarget::Desc(text.to_string()))
    }

    fn matches(&self, node_guid: Option<u64>, node_desc: Option<&str>) -> bool {
        match self {
            NodeTarget::Guid(g) => node_guid == Some(*g),
            NodeTarget::Desc(pattern) => node_desc.is_some_and(|d| glob(pattern, d)),
        }
    }
}

impl PortTarget {
    /// `0x…/N` is a node GUID and port number; anything else a stream id.
    pub fn parse(text: &str) -> Result<PortTarget, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a port is a stream id or GUID/port (0x…/3), not empty".into());
        }
        if text.starts_with("0x") || text.starts_with("0X") {
            let parsed = text
                .split_once('/')
                .and_then(|(g, p)| Some((guid(g)?, p.parse::<u8>().ok()?)));
            return parsed
                .map(|(g, p)| PortTarget::GuidPort(g, p))
                .ok_or_else(|| format!("{text:?} is not GUID/port (0x…/3)"));
        }
        Ok(PortTarget::Stream(text.to_string()))
    }
}

/// The targets of one window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub nodes: Vec<NodeTarget>,
    pub ports: Vec<PortTarget>,
}

impl Targets {
    /// The port itself is named, or its node is.
    pub fn names_port(&self, stream_id: &str, port: &PortIdentity) -> bool {
        self.nodes
            .iter()
            .any(|n| n.matches(port.node_guid, port.node_desc.as_deref()))
            || self.ports.iter().any(|p| match p {
                PortTarget::Stream(s) => s == stream_id,
                PortTarget::GuidPort(g, n) => {
                    port.node_guid == Some(*g) && port.port_num == Some(*n)
                }
            })
    }

    /// The far end of the cable is named (its node or that port).
    pub fn names_peer(&self, peer: &PeerPort) -> bool {
        self.nodes
            .iter()
            .any(|n| n.matches(peer.node_guid, peer.node_desc.as_deref()))
            || self.ports.iter().any(|p| match p {
                PortTarget::Stream(_) => false,
                PortTarget::GuidPort(g, n) => {
                    peer.node_guid == Some(*g) && peer.port_num == Some(*n)
                }
            })
    }

    /// The node itself is named.
    pub fn names_node(&self, node_guid: u64, node_desc: Option<&str>) -> bool {
        self.nodes
            .iter()
            .any(|n| n.matches(Some(node_guid), node_desc))
    }
}

/// `pattern` matches all of `text`, `*` standing for any run of characters (none included).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}
