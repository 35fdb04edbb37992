//! A host's own ports from sysfs (`/sys/class/infiniband/<device>/ports/<n>/`), the source
//! node_exporter's infiniband collector reads, for `ibsight agent` on hosts that are not the
//! SM's. Quirks it knows:
//! - `node_guid` is four colon-separated groups (`0002:c903:00a1:b2c3`);
//! - `state`, `phys_state` and `node_type` read `"<number>: <NAME>"` (`4: ACTIVE`);
//! - `rate` reads `"100 Gb/sec (4X EDR)"`: the width and speed are in the parentheses;
//! - error counters are the basic PortCounters (16, 8 or 4 bits: they saturate), and the data
//!   counters (`port_xmit_data`, `port_rcv_data`) count 4-octet words, as the IBA defines them
//!   (kept as they are: the same unit perfquery reports);
//! - `hw_counters/` holds the RDMA transport's error counters (`out_of_sequence`,
//!   `local_ack_timeout_err`, `rnr_nak_retry_err`, `req_cqe_error`, …): 64-bit, by the
//!   kernel's names; their increments become the sample's `qp_errors` downstream (`gauges`);
//! - a counter file can be missing or unreadable on some drivers: that counter is skipped and
//!   counted, the sample still goes out.

use super::assemble::sanitize;
use crate::sample::port::{LinkInfo, LinkState, NodeType, PhysState, PortIdentity, Speed, Width};
use crate::sample::{Counter, Sample};
use std::collections::BTreeMap;
use std::path::Path;

/// sysfs counter file → IBA counter.
const COUNTER_FILES: &[(&str, Counter)] = &[
    ("symbol_error", Counter::SymbolErrorCounter),
    ("link_error_recovery", Counter::LinkErrorRecoveryCounter),
    ("link_downed", Counter::LinkDownedCounter),
    ("port_rcv_errors", Counter::PortRcvErrors),
    (
        "port_rcv_remote_physical_errors",
        Counter::PortRcvRemotePhysicalErrors,
    ),
    (
        "port_rcv_switch_relay_errors",
        Counter::PortRcvSwitchRelayErrors,
    ),
    ("port_xmit_discards", Counter::PortXmitDiscards),
    (
        "port_xmit_constraint_errors",
        Counter::PortXmitConstraintErrors,
    ),
    (
        "port_rcv_constraint_errors",
        Counter::PortRcvConstraintErrors,
    ),
    (
        "local_link_integrity_errors",
        Counter::LocalLinkIntegrityErrors,
    ),
    (
        "excessive_buffer_overrun_errors",
        Counter::ExcessiveBufferOverrunErrors,
    ),
    ("VL15_dropped", Counter::VL15Dropped),
    ("port_xmit_data", Counter::PortXmitData),
    ("port_rcv_data", Counter::PortRcvData),
    ("port_xmit_packets", Counter::PortXmitPkts),
    ("port_rcv_packets", Counter::PortRcvPkts),
    ("port_xmit_wait", Counter::PortXmitWait),
    ("unicast_xmit_packets", Counter::PortUnicastXmitPkts),
    ("unicast_rcv_packets", Counter::PortUnicastRcvPkts),
    ("multicast_xmit_packets", Counter::PortMulticastXmitPkts),
    ("multicast_rcv_packets", Counter::PortMulticastRcvPkts),
];

/// sysfs `hw_counters` file (the kernel's RDMA transport counters of the port) → counter.
const HW_COUNTER_FILES: &[(&str, Counter)] = &[
    ("out_of_sequence", Counter::OutOfSequence),
    ("packet_seq_err", Counter::PacketSeqErr),
    ("duplicate_request", Counter::DuplicateRequest),
    ("implied_nak_seq_err", Counter::ImpliedNakSeqErr),
    ("local_ack_timeout_err", Counter::LocalAckTimeoutErr),
    ("rnr_nak_retry_err", Counter::RnrNakRetryErr),
    ("req_cqe_error", Counter::ReqCqeError),
    ("resp_cqe_error", Counter::RespCqeError),
    ("req_remote_access_errors", Counter::ReqRemoteAccessErrors),
    (
        "req_remote_invalid_request",
        Counter::ReqRemoteInvalidRequest,
    ),
    ("resp_local_length_error", Counter::RespLocalLengthError),
    ("resp_remote_access_errors", Counter::RespRemoteAccessErrors),
];

/// What one read of sysfs gave.
#[derive(Debug, Default)]
pub struct Read {
    pub samples: Vec<Sample>,
    /// Files that were expected and could not be read or parsed.
    pub unreadable: usize,
}

fn text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `0002:c903:00a1:b2c3` → the GUID.
pub fn parse_sysfs_guid(s: &str) -> Option<u64> {
    let hex: String = s.trim().split(':').collect();
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&hex, 16).ok()
}

/// `4: ACTIVE` → the name after the colon.
fn after_number(s: &str) -> &str {
    s.split_once(':').map_or(s, |(_, name)| name).trim()
}

pub fn parse_state(s: &str) -> Option<LinkState> {
    match after_number(s) {
        "DOWN" => Some(LinkState::Down),
        "INIT" => Some(LinkState::Init),
        "ARMED" => Some(LinkState::Armed),
        "ACTIVE" | "ACTIVE_DEFER" => Some(LinkState::Active),
        _ => None,
    }
}

pub fn parse_phys_state(s: &str) -> Option<PhysState> {
    match after_number(s) {
        "Sleep" => Some(PhysState::Sleep),
        "Polling" => Some(PhysState::Polling),
        "Disabled" => Some(PhysState::Disabled),
        "PortConfigurationTraining" => Some(PhysState::Training),
        "LinkUp" => Some(PhysState::LinkUp),
        "LinkErrorRecovery" => Some(PhysState::ErrorRecovery),
        "Phy Test" | "PhyTest" => Some(PhysState::PhyTest),
        _ => None,
    }
}

/// `100 Gb/sec (4X EDR)` → (rate, width, speed).
pub fn parse_rate(s: &str) -> (Option<f64>, Option<Width>, Option<Speed>) {
    let rate = s
        .split_whitespace()
        .next()
        .and_then(|r| r.parse::<f64>().ok());
    let inside = s
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(i, _)| i);
    let mut words = inside.unwrap_or("").split_whitespace();
    let width = words.next().and_then(Width::parse);
    let speed = words.next().and_then(Speed::parse);
    (rate, width, speed)
}

fn node_type(s: &str) -> Option<NodeType> {
    match after_number(s) {
        "CA" => Some(NodeType::Ca),
        "switch" | "SWITCH" => Some(NodeType::Switch),
        "router" | "ROUTER" => Some(NodeType::Router),
        _ => None,
    }
}

/// Read every port of every device under `root` (normally `/sys/class/infiniband`).
pub fn read(root: &Path, timestamp_ms: i64) -> std::io::Result<Read> {
    let mut out = Read::default();
    let mut devices: Vec<_> = std::fs::read_dir(root)?.filter_map(Result::ok).collect();
    devices.sort_by_key(|d| d.file_name());
    for dev in devices {
        let dev_path = dev.path();
        let dev_name = dev.file_name().to_string_lossy().into_owned();
        let node_desc = text(&dev_path.join("node_desc")).filter(|d| !d.is_empty());
        let node_guid = text(&dev_path.join("node_guid")).and_then(|g| parse_sysfs_guid(&g));
        let node_type = text(&dev_path.join("node_type")).and_then(|t| node_type(&t));
        let Ok(ports) = std::fs::read_dir(dev_path.join("ports")) else {
            out.unreadable += 1;
            continue;
        };
        let mut ports: Vec<_> = ports.filter_map(Result::ok).collect();
        ports.sort_by_key(|p| p.file_name());
        for port in ports {
            let Ok(port_num) = port.file_name().to_string_lossy().parse::<u8>() else {
                continue;
            };
            let p = port.path();
            let (rate_gbps, width, speed) = text(&p.join("rate"))
                .map(|r| parse_rate(&r))
                .unwrap_or((None, None, None));
            let mut counters = BTreeMap::new();
            let files = COUNTER_FILES
                .iter()
                .map(|(f, c)| (p.join("counters").join(f), c))
                .chain(
                    HW_COUNTER_FILES
                        .iter()
                        .map(|(f, c)| (p.join("hw_counters").join(f), c)),
                );
            for (path, counter) in files {
                if !path.exists() {
                    continue;
                }
                match text(&path).and_then(|v| v.parse::<u64>().ok()) {
                    Some(v) => {
                        counters.insert(*counter, v);
                    }
                    None => out.unreadable += 1,
                }
            }
            let lid = text(&p.join("lid"))
                .and_then(|l| u16::from_str_radix(l.trim_start_matches("0x"), 16).ok());
            let desc = node_desc.clone().unwrap_or_else(|| dev_name.clone());
            out.samples.push(Sample {
                stream_id: format!("{}/p{port_num}", sanitize(&desc)),
                timestamp_ms,
                counters,
                port: PortIdentity {
                    node_guid,
                    port_num: Some(port_num),
                    node_desc: Some(desc.chars().take(64).collect()),
                    node_type,
                    lid,
                },
                link: Some(LinkInfo {
                    state: text(&p.join("state")).and_then(|s| parse_state(&s)),
                    phys_state: text(&p.join("phys_state")).and_then(|s| parse_phys_state(&s)),
                    width,
                    width_enabled: Vec::new(),
                    speed,
                    rate_gbps,
                    ..LinkInfo::default()
                }),
                ..Sample::default()
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs tree like a ConnectX host's, in a temporary directory.
    fn tree(ports: &[(u8, &str, &str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = dir.path().join("mlx5_0");
        std::fs::create_dir_all(&dev).expect("dev");
        std::fs::write(dev.join("node_guid"), "0002:c903:00a1:b2c3\n").expect("guid");
        std::fs::write(dev.join("node_desc"), "node042 mlx5_0\n").expect("desc");
        std::fs::write(dev.join("node_type"), "1: CA\n").expect("type");
        for (n, state, phys, rate) in ports {
            let p = dev.join("ports").join(n.to_string());
            std::fs::create_dir_all(p.join("counters")).expect("port");
            std::fs::write(p.join("state"), format!("{state}\n")).expect("state");
            std::fs::write(p.join("phys_state"), format!("{phys}\n")).expect("phys");
            std::fs::write(p.join("rate"), format!("{rate}\n")).expect("rate");
            std::fs::write(p.join("lid"), "0x1a\n").expect("lid");
            for (file, v) in [
                ("symbol_error", "65535"),
                ("link_downed", "3"),
                ("port_xmit_data", "123456789012"),
            ] {
                std::fs::write(p.join("counters").join(file), format!("{v}\n")).expect("counter");
            }
        }
        dir
    }

    #[test]
    fn a_port_reads_with_its_identity_link_and_counters() {
        let dir = tree(&[(1, "4: ACTIVE", "5: LinkUp", "200 Gb/sec (4X HDR)")]);
        let read = read(dir.path(), 1000).expect("read");
        assert_eq!(read.unreadable, 0);
        let s = &read.samples[0];
        assert_eq!(s.stream_id, "node042_mlx5_0/p1");
        assert_eq!(s.port.node_guid, Some(0x0002_c903_00a1_b2c3));
        assert_eq!(s.port.node_type, Some(NodeType::Ca));
        assert_eq!(s.port.lid, Some(0x1a));
        let link = s.link.as_ref().expect("link");
        assert_eq!(link.state, Some(LinkState::Active));
        assert_eq!(link.phys_state, Some(PhysState::LinkUp));
        assert_eq!(
            (link.width, link.speed, link.rate_gbps),
            (Some(Width::X4), Some(Speed::Hdr), Some(200.0))
        );
        // Basic-width error counters as read (a saturated 16-bit one stays 65535); data in words.
        assert_eq!(s.counters[&Counter::SymbolErrorCounter], 65_535);
        assert_eq!(s.counters[&Counter::PortXmitData], 123_456_789_012);
    }

    #[test]
    fn the_guid_is_four_colon_separated_groups() {
        assert_eq!(
            parse_sysfs_guid("0002:c903:00a1:b2c3"),
            Some(0x0002_c903_00a1_b2c3)
        );
        assert_eq!(parse_sysfs_guid("0x0002c90300a1b2c3"), None);
        assert_eq!(parse_sysfs_guid("0002:c903"), None);
    }

    #[test]
    fn states_carry_a_number_before_their_name() {
        assert_eq!(parse_state("1: DOWN"), Some(LinkState::Down));
        assert_eq!(parse_state("4: ACTIVE"), Some(LinkState::Active));
        assert_eq!(parse_phys_state("2: Polling"), Some(PhysState::Polling));
        assert_eq!(
            parse_phys_state("4: PortConfigurationTraining"),
            Some(PhysState::Training)
        );
        assert_eq!(parse_state("garbage"), None);
    }

    #[test]
    fn the_rate_names_width_and_speed_in_parentheses() {
        assert_eq!(
            parse_rate("100 Gb/sec (4X EDR)"),
            (Some(100.0), Some(Width::X4), Some(Speed::Edr))
        );
        assert_eq!(
            parse_rate("2.5 Gb/sec (1X SDR)"),
            (Some(2.5), Some(Width::X1), Some(Speed::Sdr))
        );
        assert_eq!(parse_rate("400 Gb/sec (4X NDR)").1, Some(Width::X4));
        // A down port may report a rate with no width/speed.
        assert_eq!(parse_rate("10 Gb/sec"), (Some(10.0), None, None));
    }

    #[test]
    fn an_unreadable_counter_is_skipped_and_counted_the_sample_still_goes_out() {
        let dir = tree(&[(1, "1: DOWN", "3: Disabled", "10 Gb/sec (4X SDR)")]);
        let bad = dir.path().join("mlx5_0/ports/1/counters/port_rcv_errors");
        std::fs::write(&bad, "EINVAL\n").expect("write");
        let read = read(dir.path(), 1000).expect("read");
        assert_eq!(read.unreadable, 1);
        assert_eq!(read.samples.len(), 1);
        assert!(!read.samples[0]
            .counters
            .contains_key(&Counter::PortRcvErrors));
        assert_eq!(
            read.samples[0].link.as_ref().and_then(|l| l.state),
            Some(LinkState::Down)
        );
    }

    #[test]
    fn every_port_of_every_device_is_read() {
        let dir = tree(&[
            (1, "4: ACTIVE", "5: LinkUp", "100 Gb/sec (4X EDR)"),
            (2, "1: DOWN", "2: Polling", "10 Gb/sec (4X SDR)"),
        ]);
        let read = read(dir.path(), 1000).expect("read");
        let ids: Vec<&str> = read.samples.iter().map(|s| s.stream_id.as_str()).collect();
        assert_eq!(ids, vec!["node042_mlx5_0/p1", "node042_mlx5_0/p2"]);
    }
}
