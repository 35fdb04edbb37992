//! Validation of a sample's port identity, peer, link and physical-layer health: every bad
//! field is reported with its name (`peer.node_guid`, `link.width`, …) and value.

use super::{describe, quote, Report};
use super::{Json, Object};
use crate::sample::port::{
    parse_guid, FabricCheck, FecMode, LinkInfo, LinkNorm, LinkState, Mismatch, MismatchKind,
    NodeType, PeerPort, PhyHealth, PhysState, PortIdentity, Speed, Width,
};

/// The top-level fields this module reads.
pub const FIELDS: [&str; 14] = [
    "norm",
    "topology",
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
    Some(peer_port(inner, "peer", report))
}

fn peer_port(inner: &Object, prefix: &str, report: &mut Report) -> PeerPort {
    known(
        inner,
        prefix,
        &["node_guid", "port_num", "node_desc"],
        report,
    );
    PeerPort {
        node_guid: guid(inner, "node_guid", &format!("{prefix}.node_guid"), report),
        port_num: port_num(inner, "port_num", &format!("{prefix}.port_num"), report),
        node_desc: desc(inner, "node_desc", &format!("{prefix}.node_desc"), report),
    }
}

/// `norm` {group, width, speed, links, at_norm} and `topology` [{kind, expected}].
pub fn fabric(obj: &Object, report: &mut Report) -> FabricCheck {
    let norm = object(obj, "norm", report).and_then(|inner| {
        known(
            inner,
            "norm",
            &["group", "width", "speed", "links", "at_norm"],
            report,
        );
        let group = desc(inner, "group", "norm.group", report);
        let width = named(
            inner,
            "width",
            "norm.width",
            Width::parse,
            Width::names,
            report,
        );
        let speed = named(
            inner,
            "speed",
            "norm.speed",
            Speed::parse,
            Speed::names,
            report,
        );
        let links = count(inner, "links", "norm.links", report);
        let at_norm = count(inner, "at_norm", "norm.at_norm", report);
        match (group, width, speed, links, at_norm) {
            (Some(group), Some(width), Some(speed), Some(links), Some(at_norm)) => Some(LinkNorm {
                group,
                width,
                speed,
                links,
                at_norm,
            }),
            _ => {
                // A bad field is reported where it is read; a missing one here.
                for key in ["group", "width", "speed", "links", "at_norm"] {
                    if !inner.contains_key(key) {
                        report.add(&format!("norm.{key}"), format!("norm.{key} is required"));
                    }
                }
                None
            }
        }
    });
    let topology = match obj.get("topology") {
        None => None,
        Some(Json::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| mismatch(item, &format!("topology[{i}]"), report))
                .collect(),
        ),
        Some(other) => {
            report.add(
                "topology",
                format!("topology must be an array, got {}", describe(other)),
            );
            None
        }
    };
    FabricCheck { norm, topology }
}

fn mismatch(item: &Json, field: &str, report: &mut Report) -> Option<Mismatch> {
    let Json::Object(inner) = item else {
        report.add(
            field,
            format!("{field} must be an object, got {}", describe(item)),
        );
        return None;
    };
    known(inner, field, &["kind", "expected"], report);
    let kind_field = format!("{field}.kind");
    let Some(kind) = named(
        inner,
        "kind",
        &kind_field,
        MismatchKind::parse,
        MismatchKind::names,
        report,
    ) else {
        if !inner.contains_key("kind") {
            report.add(&kind_field, format!("{kind_field} is required"));
        }
        return None;
    };
    let expected_field = format!("{field}.expected");
    let expected = match inner.get("expected") {
        None => None,
        Some(Json::Object(e)) => Some(peer_port(e, &expected_field, report)),
        Some(other) => {
            report.add(
                &expected_field,
                format!(
                    "{expected_field} must be an object, got {}",
                    describe(other)
                ),
            );
            None
        }
    };
    Some(Mismatch { kind, expected })
}

fn count(obj: &Object, key: &str, field: &str, report: &mut Report) -> Option<u32> {
    let v = obj.get(key)?;
    match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
        Some(n) => Some(n),
        None => {
            report.add(
                field,
                format!("{field} {} must be a whole number", describe(v)),
            );
            None
        }
    }
}

/// A list of names (`link.width_enabled` and the like); each bad item is reported.
fn list<T>(
    obj: &Object,
    key: &str,
    field: &str,
    parse: fn(&str) -> Option<T>,
    names: fn() -> String,
    report: &mut Report,
) -> Vec<T> {
    match obj.get(key) {
        None => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|v| match v.as_str().and_then(parse) {
                Some(t) => Some(t),
                None => {
                    report.add(
                        field,
                        format!("{field} item {} is not one of {}", describe(v), names()),
                    );
                    None
                }
            })
            .collect(),
        Some(other) => {
            report.add(
                field,
                format!("{field} must be an array of names, got {}", describe(other)),
            );
            Vec::new()
        }
    }
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
            "width_supported",
            "speed",
            "speed_enabled",
            "speed_supported",
            "rate_gbps",
        ],
        report,
    );
    let widths = |key: &str, report: &mut Report| {
        let field = format!("link.{key}");
        list(inner, key, &field, Width::parse, Width::names, report)
    };
    let width_enabled = widths("width_enabled", report);
    let width_supported = widths("width_supported", report);
    let speeds = |key: &str, report: &mut Report| {
        let field = format!("link.{key}");
        list(inner, key, &field, Speed::parse, Speed::names, report)
    };
    let speed_enabled = speeds("speed_enabled", report);
    let speed_supported = speeds("speed_supported", report);
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
        width_supported,
        speed_enabled,
        speed_supported,
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
