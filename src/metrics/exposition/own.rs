//! ibsight's own per-port series (`ibsight_port_…`): link state, width, speed and rate, the
//! derived rates and utilization, bit error ratios, temperature, QP errors, the last sample's
//! time, and the open incidents' verdicts.

use super::{escape, Out, Port, Verdict};
use crate::metrics::ports::PortRow;
use crate::sample::port::{LinkInfo, LinkState, PhysState};
use std::collections::HashMap;

/// IBA's PortState code.
fn state_code(s: LinkState) -> u8 {
    match s {
        LinkState::Down => 1,
        LinkState::Init => 2,
        LinkState::Armed => 3,
        LinkState::Active => 4,
    }
}

/// IBA's PortPhysicalState code.
fn phys_code(s: PhysState) -> u8 {
    match s {
        PhysState::Sleep => 1,
        PhysState::Polling => 2,
        PhysState::Disabled => 3,
        PhysState::Training => 4,
        PhysState::LinkUp => 5,
        PhysState::ErrorRecovery => 6,
        PhysState::PhyTest => 7,
    }
}

fn link(r: &PortRow) -> Option<&LinkInfo> {
    r.sample.link.as_ref()
}

pub(super) fn series<E: FnMut(String) -> bool>(
    out: &mut Out<E>,
    ports: &[Port],
    verdicts: &HashMap<String, Verdict>,
) {
    let name = "ibsight_port_info";
    out.head(name, "gauge", "A port's node, type and LID");
    for p in ports {
        let id = &p.row.sample.port;
        let labels = format!(
            "{},node=\"{}\",node_type=\"{}\",lid=\"{}\"",
            p.own,
            escape(id.node_desc.as_deref().unwrap_or("")),
            id.node_type.map_or("", |t| t.name()),
            id.lid.map(|l| l.to_string()).unwrap_or_default(),
        );
        out.line(name, &labels, 1);
    }
    out.gauge(
        ports,
        "ibsight_port_link_state",
        "IBA PortState: 1 down, 2 init, 3 armed, 4 active",
        |r| Some(f64::from(state_code(link(r)?.state?))),
    );
    out.gauge(
        ports,
        "ibsight_port_link_physical_state",
        "IBA PortPhysicalState: 1 sleep, 2 polling, 3 disabled, 4 training, 5 linkup, 6 error recovery, 7 phy test",
        |r| Some(f64::from(phys_code(link(r)?.phys_state?))),
    );
    out.gauge(
        ports,
        "ibsight_port_link_width_lanes",
        "Active link width, in lanes",
        |r| Some(f64::from(link(r)?.width?.lanes())),
    );
    out.gauge(
        ports,
        "ibsight_port_link_speed_lane_gbps",
        "Active link speed: the data rate of one lane, Gb/s",
        |r| Some(link(r)?.speed?.lane_gbps()),
    );
    out.gauge(
        ports,
        "ibsight_port_link_rate_bytes_per_second",
        "Active link data rate",
        |r| Some(link(r)?.rate_gbps? * 1e9 / 8.0),
    );
    let bytes = |g: Option<f64>| g.map(|g| g * 1e9 / 8.0);
    out.gauge(
        ports,
        "ibsight_port_transmit_bytes_per_second",
        "Transmit rate over the last sample interval (PortXmitData)",
        |r| bytes(r.rates.tx_gbps),
    );
    out.gauge(
        ports,
        "ibsight_port_receive_bytes_per_second",
        "Receive rate over the last sample interval (PortRcvData)",
        |r| bytes(r.rates.rx_gbps),
    );
    let ratio = |p: Option<f64>| p.map(|p| p / 100.0);
    out.gauge(
        ports,
        "ibsight_port_transmit_utilization_ratio",
        "Transmit rate over the link's data rate",
        |r| ratio(r.rates.tx_utilization),
    );
    out.gauge(
        ports,
        "ibsight_port_receive_utilization_ratio",
        "Receive rate over the link's data rate",
        |r| ratio(r.rates.rx_utilization),
    );
    out.gauge(
        ports,
        "ibsight_port_utilization_ratio",
        "The busier direction's utilization (as posted, or derived)",
        |r| ratio(r.sample.utilization_pct.or(r.rates.utilization())),
    );
    out.gauge(
        ports,
        "ibsight_port_bit_error_ratio",
        "Bit error ratio of the last sample interval",
        |r| r.sample.error_rate,
    );
    out.gauge(
        ports,
        "ibsight_port_raw_ber",
        "Raw (pre-FEC) bit error ratio the PHY reports",
        |r| r.sample.phy.raw_ber,
    );
    out.gauge(
        ports,
        "ibsight_port_effective_ber",
        "Effective (post-FEC) bit error ratio the PHY reports",
        |r| r.sample.phy.effective_ber,
    );
    out.gauge(
        ports,
        "ibsight_port_symbol_ber",
        "Symbol bit error ratio the PHY reports",
        |r| r.sample.phy.symbol_ber,
    );
    out.gauge(
        ports,
        "ibsight_port_temperature_celsius",
        "Module temperature",
        |r| r.sample.phy.temperature_c,
    );
    out.gauge(
        ports,
        "ibsight_port_qp_errors",
        "QP (transport) errors counted over the last sample interval",
        |r| r.sample.qp_errors.or(r.rates.qp_errors).map(|v| v as f64),
    );
    out.gauge(
        ports,
        "ibsight_port_last_sample_timestamp_seconds",
        "When the port's last sample was taken",
        |r| Some(r.sample.timestamp_ms as f64 / 1000.0),
    );
    let verdict = |r: &PortRow| {
        verdicts
            .get(&r.sample.stream_id)
            .copied()
            .unwrap_or_default()
    };
    out.gauge(
        ports,
        "ibsight_port_open_incidents",
        "Open incidents the port is a member of",
        |r| Some(f64::from(verdict(r).open_incidents)),
    );
    out.gauge(
        ports,
        "ibsight_port_risk_score",
        "The worst risk (0-100) among the port's open incidents with an insight",
        |r| verdict(r).worst_risk,
    );
}
