use super::*;
use crate::detect::gauges::Rates;
use crate::sample::port::{LinkInfo, PeerPort, PhysState, PortIdentity, Speed, Width};
use crate::sample::Sample;
use std::sync::Arc;

const SW: u64 = 0x0002_c903_0000_1000;
const HCA: u64 = 0x0002_c903_0000_2000;

fn sample(stream: &str, guid: Option<u64>, port: u8, t: NodeType, desc: &str) -> Sample {
    Sample {
        stream_id: stream.into(),
        timestamp_ms: 1_700_000_000_000,
        port: PortIdentity {
            node_guid: guid,
            port_num: guid.map(|_| port),
            node_desc: Some(desc.into()),
            node_type: Some(t),
            lid: Some(u16::from(port) + if t == NodeType::Switch { 0 } else { 40 }),
        },
        link: Some(LinkInfo {
            state: Some(LinkState::Active),
            phys_state: Some(PhysState::LinkUp),
            width: Some(Width::X4),
            speed: Some(Speed::Edr),
            rate_gbps: Some(100.0),
            ..LinkInfo::default()
        }),
        ..Sample::default()
    }
}

fn row(s: Sample, rates: Rates) -> PortRow {
    PortRow {
        sample: Arc::new(s),
        rates,
    }
}

fn text(rows: &[PortRow], verdicts: &HashMap<String, Verdict>) -> String {
    let mut chunks = Vec::new();
    render(rows, verdicts, |c| {
        chunks.push(c);
        true
    });
    chunks.concat()
}

/// Both ends of one cable: leaf01 port 3 and node001's HCA port 1.
fn cable() -> Vec<PortRow> {
    let mut sw = sample("leaf01/p3", Some(SW), 3, NodeType::Switch, "leaf01");
    sw.counters.insert(Counter::PortXmitData, 1000);
    sw.counters.insert(Counter::SymbolErrorCounter, 7);
    sw.peer = Some(PeerPort {
        node_guid: Some(HCA),
        port_num: Some(1),
        node_desc: Some("node001 mlx5_0".into()),
    });
    let mut hca = sample("node001/p1", Some(HCA), 1, NodeType::Ca, "node001 mlx5_0");
    hca.counters.insert(Counter::PortRcvData, 1000);
    hca.counters.insert(Counter::LinkDownedCounter, 2);
    hca.counters.insert(Counter::OutOfSequence, 5);
    hca.peer = Some(PeerPort {
        node_guid: Some(SW),
        port_num: Some(3),
        node_desc: Some("leaf01".into()),
    });
    let rates = Rates {
        tx_gbps: Some(8.0),
        tx_utilization: Some(8.0),
        ..Rates::default()
    };
    vec![row(sw, rates), row(hca, Rates::default())]
}

#[test]
fn both_ends_of_a_cable_come_out_under_treydocks_names_and_labels() {
    // Given a switch port and the HCA port at the other end of its cable,
    let out = text(&cable(), &HashMap::new());
    // when they are rendered, each counter is under its node type's treydock name, with the
    // node GUID and port number, and the data counters are in bytes (words × 4);
    let sw = "guid=\"0x0002c90300001000\",port=\"3\"";
    let hca = "guid=\"0x0002c90300002000\",port=\"1\"";
    for line in [
        format!("infiniband_switch_port_transmit_data_bytes_total{{{sw}}} 4000"),
        format!("infiniband_switch_port_symbol_error_total{{{sw}}} 7"),
        format!("infiniband_hca_port_receive_data_bytes_total{{{hca}}} 4000"),
        format!("infiniband_hca_port_link_downed_total{{{hca}}} 2"),
        "infiniband_switch_info{guid=\"0x0002c90300001000\",switch=\"leaf01\",lid=\"3\"} 1"
            .to_string(),
        "infiniband_hca_info{guid=\"0x0002c90300002000\",hca=\"node001 mlx5_0\",lid=\"41\"} 1"
            .to_string(),
        "infiniband_switch_rate_bytes_per_second{guid=\"0x0002c90300001000\"} 12500000000"
            .to_string(),
        // then each end names the other as its uplink, with the other's type and LID.
        format!(
            "infiniband_switch_uplink_info{{{sw},switch=\"leaf01\",uplink=\"node001 mlx5_0\",\
             uplink_guid=\"0x0002c90300002000\",uplink_type=\"CA\",uplink_port=\"1\",uplink_lid=\"41\"}} 1"
        ),
        format!(
            "infiniband_hca_uplink_info{{{hca},hca=\"node001 mlx5_0\",uplink=\"leaf01\",\
             uplink_guid=\"0x0002c90300001000\",uplink_type=\"SW\",uplink_port=\"3\",uplink_lid=\"3\"}} 1"
        ),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
    }
    // Neither end's counters leak into the other kind's families.
    assert!(!out.contains("infiniband_hca_port_symbol_error_total"));
    assert!(!out.contains("infiniband_switch_port_link_downed_total"));
}

#[test]
fn counters_treydock_has_no_name_for_and_ports_without_a_guid_come_out_under_ibsights_name() {
    // Given an HCA port with a transport counter treydock does not export, and a posted
    // stream with no GUID or port number,
    let mut rows = cable();
    let mut bare = sample("custom-1", None, 0, NodeType::Ca, "x");
    bare.counters.insert(Counter::SymbolErrorCounter, 9);
    rows.push(row(bare, Rates::default()));
    // when rendered,
    let out = text(&rows, &HashMap::new());
    // then both are in ibsight_port_counter_total, by the counter's own name.
    let lines = [
        "ibsight_port_counter_total{stream=\"node001/p1\",guid=\"0x0002c90300002000\",port=\"1\",counter=\"OutOfSequence\"} 5",
        "ibsight_port_counter_total{stream=\"custom-1\",counter=\"SymbolErrorCounter\"} 9",
    ];
    for line in lines {
        assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
    }
    assert!(!out.contains("counter=\"LinkDownedCounter\""));
}

#[test]
fn ibsights_own_series_carry_the_derived_rates_and_the_open_verdicts() {
    // Given a switch port at 8 Gb/s of a 100 Gb/s link, in two open incidents, one of risk 85,
    let verdicts = HashMap::from([(
        "leaf01/p3".to_string(),
        Verdict {
            open_incidents: 2,
            worst_risk: Some(85.0),
        },
    )]);
    // when rendered,
    let out = text(&cable(), &verdicts);
    let sw = "stream=\"leaf01/p3\",guid=\"0x0002c90300001000\",port=\"3\"";
    let hca = "stream=\"node001/p1\",guid=\"0x0002c90300002000\",port=\"1\"";
    // then its rates are in bytes per second and ratios, and the verdicts are there;
    for line in [
        format!("ibsight_port_transmit_bytes_per_second{{{sw}}} 1000000000"),
        format!("ibsight_port_transmit_utilization_ratio{{{sw}}} 0.08"),
        format!("ibsight_port_link_state{{{sw}}} 4"),
        format!("ibsight_port_link_width_lanes{{{sw}}} 4"),
        format!("ibsight_port_open_incidents{{{sw}}} 2"),
        format!("ibsight_port_risk_score{{{sw}}} 85"),
        format!("ibsight_port_open_incidents{{{hca}}} 0"),
        format!("ibsight_port_info{{{hca},node=\"node001 mlx5_0\",node_type=\"ca\",lid=\"41\"}} 1"),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
    }
    // and a port with no incident with an insight has no risk series.
    assert!(!out.contains(&format!("ibsight_port_risk_score{{{hca}}}")));
}

#[test]
fn label_values_are_escaped() {
    // Given a node description with a quote, a backslash and a newline,
    let s = sample("q", Some(SW), 1, NodeType::Switch, "a\"b\\c\nd");
    // when rendered, then the info line escapes all three.
    let out = text(&[row(s, Rates::default())], &HashMap::new());
    assert!(out.contains("switch=\"a\\\"b\\\\c\\nd\""), "{out}");
}

#[test]
fn a_large_scrape_comes_in_chunks_of_whole_lines_and_parses_with_each_family_once() {
    // Given 2,000 switch ports with counters,
    let rows: Vec<PortRow> = (0..2000u64)
        .map(|i| {
            let mut s = sample(
                &format!("sw{}/p{}", i / 36, i % 36 + 1),
                Some(SW + i / 36),
                (i % 36 + 1) as u8,
                NodeType::Switch,
                &format!("sw{}", i / 36),
            );
            s.counters.insert(Counter::PortXmitData, i);
            s.counters.insert(Counter::PortXmitWait, i * 3);
            row(s, Rates::default())
        })
        .collect();
    // when rendered,
    let mut chunks = Vec::new();
    render(&rows, &HashMap::new(), |c| {
        chunks.push(c);
        true
    });
    // then it comes in several chunks, none much past the chunk size, each of whole lines;
    assert!(chunks.len() > 3, "{} chunks", chunks.len());
    for c in &chunks {
        assert!(c.len() < CHUNK_BYTES + 1024, "a chunk of {} bytes", c.len());
        assert!(c.ends_with('\n'));
    }
    // and the whole is valid text format with every family declared once.
    let out = chunks.concat();
    let mut types = std::collections::HashSet::new();
    for l in out.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(types.insert(l.to_string()), "declared twice: {l}");
    }
    let parsed =
        prometheus_parse::Scrape::parse(out.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let data = parsed
        .samples
        .iter()
        .filter(|s| s.metric == "infiniband_switch_port_transmit_data_bytes_total")
        .count();
    assert_eq!(data, 2000);
}

#[test]
fn rendering_stops_when_the_scraper_goes_away() {
    // Given a scrape of many chunks whose reader leaves after the first,
    let rows: Vec<PortRow> = (0..2000u64)
        .map(|i| {
            row(
                sample(&format!("s{i}"), Some(SW + i), 1, NodeType::Switch, "sw"),
                Rates::default(),
            )
        })
        .collect();
    let mut calls = 0;
    // when rendered, then nothing more is handed on.
    render(&rows, &HashMap::new(), |_| {
        calls += 1;
        false
    });
    assert_eq!(calls, 1);
}
