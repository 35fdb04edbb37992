//! Validation of a sample's port identity, peer, link and physical-layer health: every bad
//! field is reported with its name (`peer.node_guid`, `link.width`, …) and value.

use super::{describe, quote, Report};
use super::{Json, Object};
use crate::sample::port::{
    parse_guid, FecMode, LinkInfo, LinkState, NodeType, PeerPort, PhyHealth, PhysState,
    PortIdentity, Speed, Width,
};

/// The top-level fields this module reads.
pub const FIELDS: [&str; 12] = [
    "node_guid",
    "port_num",
    "node_desc",
    "node_type",
    "lid",
    "peer",
    "link",
    "raw_ber",
    "effective_ber",
    "symbol_ber",
    "fec_mode",
    "temperature_c",
];

/// Node descriptions are at most 64 bytes (NodeDescription).
const MAX_DESC_LEN: usize = 64;

pub fn identity(obj: &Object, report: &mut Report) -> PortIdentity {
    PortIdentity {
        node_guid: guid(obj, "node_guid", "node_guid", report),
        port_num: port_num(obj, "port_num", "port_num", report),
        node_desc: desc(obj, "node_desc", "node_desc", report),
        node_type: named(
            obj,
            "node_type",
            "node_type",
            NodeType::parse,
            NodeType::names,
            report,
        ),
        lid: lid(obj, report),
    }
}

pub fn peer(obj: &Object, report: &mut Report) -> Option<PeerPort> {
    let inner = object(obj, "peer", report)?;
    known(
        inner,
        "peer",
        &["node_guid", "port_num", "node_desc"],
        report,
    );
    Some(PeerPort {
        node_guid: guid(inner, "node_guid", "peer.node_guid", report),
        port_num: port_num(inner, "port_num", "peer.port_num", report),
        node_desc: desc(inner, "node_desc", "peer.node_desc", report),
    })
}

pub fn link(obj: &Object, report: &mut Report) -> Option<LinkInfo> {
    let inner = object(obj, "link", report)?;
    known(
        inner,
        "link",
        &[
            "state",
            "phys_state",
            "width",
            "width_enabled",
            "speed",
            "rate_gbps",
        ],
        report,
    );
    let width_enabled = match inner.get("width_enabled") {
        None => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|v| match v.as_str().and_then(Width::parse) {
                Some(w) => Some(w),
                None => {
                    report.add(
                        "link.width_enabled",
                        format!("width {} is not one of {}", describe(v), Width::names()),
                    );
                    None
                }
            })
            .collect(),
        Some(other) => {
            report.add(
                "link.width_enabled",
                format!(
                    "link.width_enabled must be an array of widths, got {}",
                    describe(other)
                ),
            );
            Vec::new()
        }
    };
    Some(LinkInfo {
        state: named(
            inner,
            "state",
            "link.state",
            LinkState::parse,
            LinkState::names,
            report,
        ),
        phys_state: named(
            inner,
            "phys_state",
            "link.phys_state",
            PhysState::parse,
            PhysState::names,
            report,
        ),
        width: named(
            inner,
            "width",
            "link.width",
            Width::parse,
            Width::names,
            report,
        ),
        width_enabled,
        speed: named(
            inner,
            "speed",
            "link.speed",
            Speed::parse,
            Speed::names,
            report,
        ),
        rate_gbps: number(inner, "rate_gbps", "link.rate_gbps", 0.0, 10_000.0, report),
    })
}

pub fn phy(obj: &Object, report: &mut Report) -> PhyHealth {
    PhyHealth {
        raw_ber: number(obj, "raw_ber", "raw_ber", 0.0, 1.0, report),
        effective_ber: number(obj, "effective_ber", "effective_ber", 0.0, 1.0, report),
        symbol_ber: number(obj, "symbol_ber", "symbol_ber", 0.0, 1.0, report),
        fec_mode: named(
            obj,
            "fec_mode",
            "fec_mode",
            FecMode::parse,
            FecMode::names,
            report,
        ),
        temperature_c: number(obj, "temperature_c", "temperature_c", -60.0, 200.0, report),
    }
}

fn object<'a>(obj: &'a Object<'a>, key: &str, report: &mut Report) -> Option<&'a Object<'a>> {
    match obj.get(key)? {
        Json::Object(inner) => Some(inner),
        other => {
            report.add(
                key,
                format!("{key} must be an object, got {}", describe(other)),
            );
            None
        }
    }
}

fn known(inner: &Object, prefix: &str, allowed: &[&str], report: &mut Report) {
    for k in inner.keys() {
        if !allowed.contains(&k) {
            report.add(
                &format!("{prefix}.{k}"),
                format!("unknown field `{prefix}.{}`", quote(k)),
            );
        }
    }
}

fn guid(obj: &Object, key: &str, field: &str, report: &mut Report) -> Option<u64> {
    let v = obj.get(key)?;
    match v.as_str().and_then(parse_guid) {
        Some(g) => Some(g),
        None => {
            report.add(
                field,
                format!("{field} {} must be \"0x\" and 16 hex digits", describe(v)),
            );
            None
        }
    }
}

fn port_num(obj: &Object, key: &str, field: &str, report: &mut Report) -> Option<u8> {
    let v = obj.get(key)?;
    match v.as_u64() {
        Some(n) if n <= 254 => Some(n as u8),
        _ => {
            report.add(
                field,
                format!("{field} {} must be an integer 0 to 254", describe(v)),
            );
            None
        }
    }
}

fn lid(obj: &Object, report: &mut Report) -> Option<u16> {
    let v = obj.get("lid")?;
    match v.as_u64() {
        // 0 is "no LID yet"; 0xffff is the permissive LID, never a port's.
        Some(n) if n < 0xffff => Some(n as u16),
        _ => {
            report.add(
                "lid",
                format!("lid {} must be an integer 0 to 65534", describe(v)),
            );
            None
        }
    }
}

fn desc(obj: &Object, key: &str, field: &str, report: &mut Report) -> Option<String> {
    let v = obj.get(key)?;
    match v.as_str() {
        Some(s) if s.len() <= MAX_DESC_LEN && !s.chars().any(char::is_control) => {
            Some(s.to_string())
        }
        _ => {
            report.add(
                field,
                format!(
                    "{field} {} must be text of at most {MAX_DESC_LEN} bytes without control characters",
                    describe(v)
                ),
            );
            None
        }
    }
}

fn named<T>(
    obj: &Object,
    key: &str,
    field: &str,
    parse: fn(&str) -> Option<T>,
    names: fn() -> String,
    report: &mut Report,
) -> Option<T> {
    let v = obj.get(key)?;
    match v.as_str().and_then(parse) {
        Some(t) => Some(t),
        None => {
            report.add(
                field,
                format!("{field} {} is not one of {}", describe(v), names()),
            );
            None
        }
    }
}

fn number(
    obj: &Object,
    key: &str,
    field: &str,
    min: f64,
    max: f64,
    report: &mut Report,
) -> Option<f64> {
    let v = obj.get(key)?;
    match v.as_f64() {
        Some(n) if n.is_finite() && (min..=max).contains(&n) => Some(n),
        _ => {
            report.add(
                field,
                format!(
                    "{field} {} must be a number from {min} to {max}",
                    describe(v)
                ),
            );
            None
        }
    }
}
