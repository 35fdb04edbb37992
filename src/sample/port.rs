//! What a sample says about the port itself: its identity in the fabric, the port at the other
//! end of its cable, the link's state, width and speed, and physical-layer health. All optional:
//! a collector that knows nothing of the fabric still posts valid samples.
//!
//! JSON names follow the IBA and infiniband-diags: `node_guid` ("0x" + 16 hex digits),
//! `port_num`, `node_desc`, `node_type` (`switch` | `ca` | `router`), `lid`, `peer` {`node_guid`,
//! `port_num`, `node_desc`}, `link` {`state`, `phys_state`, `width`, `width_enabled`,
//! `width_supported`, `speed`, `speed_enabled`, `speed_supported`, `rate_gbps`}, and `raw_ber`,
//! `effective_ber`, `symbol_ber`, `fec_mode`, `temperature_c`. What a collector found by
//! holding the port against the rest of the fabric: `norm` (what the port's peers of the same
//! kind run at) and `topology` (how it differs from the expected topology).

use serde::{Deserialize, Serialize};

/// A string enum with its JSON names; `parse` is case-insensitive.
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(s))
            }

            /// The accepted names, for error messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

named_enum!(
    /// IBA NodeInfo.NodeType.
    NodeType { Ca => "ca", Switch => "switch", Router => "router" }
);

named_enum!(
    /// IBA PortInfo.PortState.
    LinkState { Down => "down", Init => "init", Armed => "armed", Active => "active" }
);

named_enum!(
    /// IBA PortInfo.PortPhysicalState.
    PhysState {
        Sleep => "sleep",
        Polling => "polling",
        Disabled => "disabled",
        Training => "training",
        LinkUp => "linkup",
        ErrorRecovery => "error_recovery",
        PhyTest => "phy_test",
    }
);

named_enum!(
    /// Link width (PortInfo.LinkWidthActive / Enabled).
    Width { X1 => "1x", X2 => "2x", X4 => "4x", X8 => "8x", X12 => "12x" }
);

named_enum!(
    /// Link speed (PortInfo.LinkSpeedActive and the extended speeds).
    Speed {
        Sdr => "SDR",
        Ddr => "DDR",
        Qdr => "QDR",
        Fdr10 => "FDR10",
        Fdr => "FDR",
        Edr => "EDR",
        Hdr => "HDR",
        Ndr => "NDR",
        Xdr => "XDR",
    }
);

named_enum!(
    /// Forward error correction on the link.
    FecMode { None => "none", FireCode => "firecode", Rs528 => "rs_528", Rs544 => "rs_544", Rs => "rs" }
);

impl Width {
    /// Lanes.
    pub fn lanes(self) -> u32 {
        match self {
            Width::X1 => 1,
            Width::X2 => 2,
            Width::X4 => 4,
            Width::X8 => 8,
            Width::X12 => 12,
        }
    }
}

impl Speed {
    /// Data rate of one lane in Gb/s (after line encoding), as iblinkinfo reports per lane.
    pub fn lane_gbps(self) -> f64 {
        match self {
            Speed::Sdr => 2.0,
            Speed::Ddr => 4.0,
            Speed::Qdr => 8.0,
            Speed::Fdr10 => 10.0,
            Speed::Fdr => 13.64,
            Speed::Edr => 25.0,
            Speed::Hdr => 50.0,
            Speed::Ndr => 100.0,
            Speed::Xdr => 200.0,
        }
    }
}

/// Which port this is, in the fabric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortIdentity {
    pub node_guid: Option<u64>,
    pub port_num: Option<u8>,
    pub node_desc: Option<String>,
    pub node_type: Option<NodeType>,
    pub lid: Option<u16>,
}

impl PortIdentity {
    pub fn is_empty(&self) -> bool {
        *self == PortIdentity::default()
    }
}

/// The port at the other end of the cable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerPort {
    pub node_guid: Option<u64>,
    pub port_num: Option<u8>,
    pub node_desc: Option<String>,
}

/// The link as the port sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub state: Option<LinkState>,
    pub phys_state: Option<PhysState>,
    pub width: Option<Width>,
    /// The widths the port may use (not what it supports: ibsim, for one, always claims 12x).
    pub width_enabled: Vec<Width>,
    pub speed: Option<Speed>,
    /// The link's data rate, Gb/s.
    pub rate_gbps: Option<f64>,
    // Appended in `MetricObserved` v3.
    /// What the port could do (never a fault: ibsim, for one, claims 12x on every port).
    pub width_supported: Vec<Width>,
    /// The speeds the port may use, and what it supports, extended speeds included.
    pub speed_enabled: Vec<Speed>,
    pub speed_supported: Vec<Speed>,
}

/// `LinkInfo` as `MetricObserved` v2 stored it (before supported widths and speeds). Frozen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkInfoV1 {
    pub state: Option<LinkState>,
    pub phys_state: Option<PhysState>,
    pub width: Option<Width>,
    pub width_enabled: Vec<Width>,
    pub speed: Option<Speed>,
    pub rate_gbps: Option<f64>,
}

impl From<LinkInfoV1> for LinkInfo {
    fn from(v: LinkInfoV1) -> LinkInfo {
        LinkInfo {
            state: v.state,
            phys_state: v.phys_state,
            width: v.width,
            width_enabled: v.width_enabled,
            speed: v.speed,
            rate_gbps: v.rate_gbps,
            ..LinkInfo::default()
        }
    }
}

impl From<&LinkInfo> for LinkInfoV1 {
    /// Only for records that never had the newer fields (old segments read back).
    fn from(v: &LinkInfo) -> LinkInfoV1 {
        LinkInfoV1 {
            state: v.state,
            phys_state: v.phys_state,
            width: v.width,
            width_enabled: v.width_enabled.clone(),
            speed: v.speed,
            rate_gbps: v.rate_gbps,
        }
    }
}

named_enum!(
    /// How a port differs from the expected topology. `missing_link`: a link expected here is
    /// gone and the node at its far end is still in the fabric; `miswired`: the port links to
    /// another port than expected, or links where nothing was expected; `node_missing`: the
    /// node expected at the far end is not in the fabric at all; `node_unexpected`: the port's
    /// node, or the node at its far end, is not in the expected topology.
    MismatchKind {
        MissingLink => "missing_link",
        Miswired => "miswired",
        NodeMissing => "node_missing",
        NodeUnexpected => "node_unexpected",
    }
);

/// What the collector found when it held the port against the rest of the fabric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FabricCheck {
    /// What the links of the port's kind run at (its group), when most of them agree.
    pub norm: Option<LinkNorm>,
    /// `None`: not checked against an expected topology; `Some(empty)`: checked, as expected.
    pub topology: Option<Vec<Mismatch>>,
}

impl FabricCheck {
    pub fn is_empty(&self) -> bool {
        *self == FabricCheck::default()
    }
}

/// The width and speed most links of one group run at: the CA links of one switch, the
/// switch links of one switch, or (for small groups) one tier of the fabric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkNorm {
    pub group: String,
    pub width: Width,
    pub speed: Speed,
    /// Active links in the group, and how many of them run at the norm.
    pub links: u32,
    pub at_norm: u32,
}

/// One difference from the expected topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub kind: MismatchKind,
    /// The port the topology expected at the far end, if any.
    pub expected: Option<PeerPort>,
}

/// Physical-layer health, when the source has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhyHealth {
    pub raw_ber: Option<f64>,
    pub effective_ber: Option<f64>,
    pub symbol_ber: Option<f64>,
    pub fec_mode: Option<FecMode>,
    pub temperature_c: Option<f64>,
}

impl PhyHealth {
    pub fn is_empty(&self) -> bool {
        *self == PhyHealth::default()
    }
}

/// "0x" + 16 hex digits, as ibnetdiscover prints GUIDs.
pub fn format_guid(guid: u64) -> String {
    format!("0x{guid:016x}")
}

/// Parse "0x" + exactly 16 hex digits, as the tools print GUIDs.
pub fn parse_guid(s: &str) -> Option<u64> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The JSON of an identity, peer, link and health (only the fields that are set).
pub fn to_json(
    port: &PortIdentity,
    peer: Option<&PeerPort>,
    link: Option<&LinkInfo>,
    phy: &PhyHealth,
    obj: &mut serde_json::Map<String, serde_json::Value>,
) {
    use serde_json::json;
    if let Some(g) = port.node_guid {
        obj.insert("node_guid".into(), json!(format_guid(g)));
    }
    if let Some(p) = port.port_num {
        obj.insert("port_num".into(), json!(p));
    }
    if let Some(d) = &port.node_desc {
        obj.insert("node_desc".into(), json!(d));
    }
    if let Some(t) = port.node_type {
        obj.insert("node_type".into(), json!(t.name()));
    }
    if let Some(l) = port.lid {
        obj.insert("lid".into(), json!(l));
    }
    if let Some(p) = peer {
        obj.insert("peer".into(), peer_json(p));
    }
    if let Some(l) = link {
        let mut o = serde_json::Map::new();
        if let Some(s) = l.state {
            o.insert("state".into(), json!(s.name()));
        }
        if let Some(s) = l.phys_state {
            o.insert("phys_state".into(), json!(s.name()));
        }
        if let Some(w) = l.width {
            o.insert("width".into(), json!(w.name()));
        }
        for (key, widths) in [
            ("width_enabled", &l.width_enabled),
            ("width_supported", &l.width_supported),
        ] {
            if !widths.is_empty() {
                let names: Vec<&str> = widths.iter().map(|w| w.name()).collect();
                o.insert(key.into(), json!(names));
            }
        }
        if let Some(s) = l.speed {
            o.insert("speed".into(), json!(s.name()));
        }
        for (key, speeds) in [
            ("speed_enabled", &l.speed_enabled),
            ("speed_supported", &l.speed_supported),
        ] {
            if !speeds.is_empty() {
                let names: Vec<&str> = speeds.iter().map(|s| s.name()).collect();
                o.insert(key.into(), json!(names));
            }
        }
        if let Some(r) = l.rate_gbps {
            o.insert("rate_gbps".into(), json!(r));
        }
        obj.insert("link".into(), o.into());
    }
    for (name, v) in [
        ("raw_ber", phy.raw_ber),
        ("effective_ber", phy.effective_ber),
        ("symbol_ber", phy.symbol_ber),
        ("temperature_c", phy.temperature_c),
    ] {
        if let Some(v) = v {
            obj.insert(name.into(), json!(v));
        }
    }
    if let Some(f) = phy.fec_mode {
        obj.insert("fec_mode".into(), json!(f.name()));
    }
}

fn peer_json(p: &PeerPort) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    if let Some(g) = p.node_guid {
        o.insert("node_guid".into(), format_guid(g).into());
    }
    if let Some(n) = p.port_num {
        o.insert("port_num".into(), n.into());
    }
    if let Some(d) = &p.node_desc {
        o.insert("node_desc".into(), d.clone().into());
    }
    o.into()
}

/// The JSON of a fabric check: `norm` {`group`, `width`, `speed`, `links`, `at_norm`} and
/// `topology` [{`kind`, `expected`}] (only what is set).
pub fn fabric_to_json(check: &FabricCheck, obj: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::json;
    if let Some(n) = &check.norm {
        obj.insert(
            "norm".into(),
            json!({
                "group": n.group,
                "width": n.width.name(),
                "speed": n.speed.name(),
                "links": n.links,
                "at_norm": n.at_norm,
            }),
        );
    }
    if let Some(list) = &check.topology {
        let items: Vec<serde_json::Value> = list
            .iter()
            .map(|m| {
                let mut o = serde_json::Map::new();
                o.insert("kind".into(), m.kind.name().into());
                if let Some(e) = &m.expected {
                    o.insert("expected".into(), peer_json(e));
                }
                serde_json::Value::Object(o)
            })
            .collect();
        obj.insert("topology".into(), items.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip_and_bad_ones_are_refused() {
        assert_eq!(
            parse_guid("0x0002c90300a1b2c3"),
            Some(0x0002_c903_00a1_b2c3)
        );
        assert_eq!(format_guid(0x0002_c903_00a1_b2c3), "0x0002c90300a1b2c3");
        for bad in [
            "",
            "0x",
            "0x12345",
            "2c90300a1b2c3",
            "0x0002c90300a1b2c3ff",
            "0xZZ",
            "0x12 34",
        ] {
            assert_eq!(parse_guid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_parse_case_insensitively_and_nothing_else() {
        assert_eq!(Width::parse("4X"), Some(Width::X4));
        assert_eq!(Speed::parse("ndr"), Some(Speed::Ndr));
        assert_eq!(LinkState::parse("Active"), Some(LinkState::Active));
        assert_eq!(PhysState::parse("LinkUp"), Some(PhysState::LinkUp));
        assert_eq!(Width::parse("3x"), None);
        assert_eq!(LinkState::parse("up"), None);
    }
}
