use super::*;
use serde_json::{json, Value};

/// The body as a client sends it: `v` serialised, then parsed as the server parses it.
fn parse_batch(v: &Value, limits: &Limits) -> Result<Vec<Sample>, BatchError> {
    let text = serde_json::to_vec(v).expect("serialise");
    let body = Json::from_slice(&text).expect("valid JSON");
    super::parse_batch(&body, limits)
}

const NOW: i64 = 1_750_000_000_000;

fn limits() -> Limits {
    Limits {
        max_samples: 10_000,
        max_future_ms: 300_000,
        now_ms: NOW,
    }
}

fn good() -> Value {
    json!({
        "stream_id": "sw01/p1",
        "timestamp": NOW,
        "latency_p99": 4.2,
        "utilization": 55.0,
        "error_rate": 0.001,
        "bandwidth_gbps": 190.0,
        "qp_errors": 0,
        "counters": {"SymbolErrorCounter": 3, "PortXmitData": 123456789012u64},
        "labels": {"switch": "leaf-01"}
    })
}

fn with(field: &str, value: Value) -> Value {
    let mut v = good();
    v[field] = value;
    v
}

/// The single error for a one-sample body, as (field, message).
fn one_error(body: Value) -> (String, String) {
    match parse_batch(&body, &limits()) {
        Err(BatchError::Invalid(errors)) => {
            assert_eq!(errors.len(), 1, "expected one error, got {errors:?}");
            (errors[0].field.clone(), errors[0].message.clone())
        }
        other => panic!("expected invalid batch, got {other:?}"),
    }
}

#[test]
fn a_full_sample_parses() {
    let samples = parse_batch(&good(), &limits()).expect("valid");
    let s = &samples[0];
    assert_eq!(s.stream_id, "sw01/p1");
    assert_eq!(s.timestamp_ms, NOW);
    assert_eq!(s.utilization_pct, Some(55.0));
    assert_eq!(s.counters[&Counter::SymbolErrorCounter], 3);
    assert_eq!(s.labels["switch"], "leaf-01");
}

#[test]
fn batch_and_rfc3339_timestamps() {
    let body = json!({"samples": [
        {"stream_id": "a", "timestamp": "2025-06-15T15:06:40Z", "utilization": 10},
        {"stream_id": "b", "timestamp": "2025-06-15T17:06:40.5+02:00", "latency_p99": 3}
    ]});
    let samples = parse_batch(&body, &limits()).expect("valid");
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].timestamp_ms, 1_750_000_000_000);
    assert_eq!(samples[1].timestamp_ms, 1_750_000_000_500);
}

#[test]
fn stream_id_rules() {
    assert!(is_valid_stream_id("sw-01.rack_3:port/7"));
    assert!(!is_valid_stream_id(""));
    assert!(!is_valid_stream_id("has space"));
    assert!(!is_valid_stream_id(&"x".repeat(129)));
    assert!(is_valid_stream_id(&"x".repeat(128)));
    let (field, msg) = one_error(with("stream_id", json!("bad id!")));
    assert_eq!(field, "stream_id");
    assert!(msg.contains("\"bad id!\""), "{msg}");
    let (field, _) = one_error(with("stream_id", json!(12)));
    assert_eq!(field, "stream_id");
}

#[test]
fn missing_required_fields_are_named() {
    let mut v = good();
    v.as_object_mut().expect("object").remove("timestamp");
    assert_eq!(one_error(v).0, "timestamp");
    let mut v = good();
    v.as_object_mut().expect("object").remove("stream_id");
    assert_eq!(one_error(v).0, "stream_id");
}

#[test]
fn timestamps_in_the_future_or_malformed_are_rejected() {
    let (field, msg) = one_error(with("timestamp", json!(NOW + 301_000)));
    assert_eq!(field, "timestamp");
    assert!(msg.contains("future"), "{msg}");
    assert!(parse_batch(&with("timestamp", json!(NOW + 299_000)), &limits()).is_ok());
    let (_, msg) = one_error(with("timestamp", json!("yesterday")));
    assert!(msg.contains("\"yesterday\""), "{msg}");
    assert_eq!(one_error(with("timestamp", json!(-5))).0, "timestamp");
    assert_eq!(one_error(with("timestamp", json!(1.5))).0, "timestamp");
}

#[test]
fn out_of_range_values_name_field_and_value() {
    for (field, value) in [
        ("utilization", json!(100.5)),
        ("utilization", json!(-1)),
        ("error_rate", json!(1.01)),
        ("latency_p99", json!(-0.1)),
        ("bandwidth_gbps", json!(-3)),
        // Garbage that would poison a baseline for a very long time.
        ("latency_p99", json!(1e300)),
        ("bandwidth_gbps", json!(1e9)),
        ("qp_errors", json!(u64::MAX)),
    ] {
        let (f, msg) = one_error(with(field, value.clone()));
        assert_eq!(f, field);
        assert!(msg.contains(&value.to_string()), "{field}: {msg}");
    }
}

#[test]
fn wrong_types_and_non_finite_are_rejected() {
    for (field, value) in [
        ("utilization", json!("55")),
        ("latency_p99", json!("NaN")),
        ("bandwidth_gbps", json!("Infinity")),
        ("error_rate", json!(null)),
        ("qp_errors", json!(-1)),
        ("qp_errors", json!(1.5)),
        ("counters", json!([1, 2])),
        ("labels", json!("rack=1")),
    ] {
        let (f, msg) = one_error(with(field, value));
        assert_eq!(f, field, "{msg}");
    }
}

#[test]
fn unknown_fields_and_counters_are_rejected() {
    let (f, msg) = one_error(with("utilisation", json!(5)));
    assert_eq!(f, "utilisation");
    assert!(msg.contains("unknown field"), "{msg}");
    let (f, msg) = one_error(with("counters", json!({"SymbolErrors": 1})));
    assert_eq!(f, "counters.SymbolErrors");
    assert!(msg.contains("unknown counter"), "{msg}");
}

#[test]
fn a_counter_past_its_basic_width_is_the_extended_counter_never_refused() {
    // A sweep that reads 64-bit counters (PortCountersExtended, ibdiagnet) must not be refused
    // whole because one port's SymbolErrorCounter passed 65535.
    for (name, value) in [
        ("SymbolErrorCounter", json!(70_000)),
        ("LinkDownedCounter", json!(256)),
        ("PortRcvData", json!(u64::MAX)),
        ("PortRcvSwitchRelayErrors", json!(3)),
        ("PortUnicastXmitPkts", json!(1u64 << 40)),
        ("PortNeighborMTUDiscards", json!(1)),
    ] {
        let s = parse_batch(&with("counters", json!({ name: value })), &limits())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let c = Counter::from_name(name).expect("an IBA counter");
        assert_eq!(Some(s[0].counters[&c]), value.as_u64());
    }
    assert_eq!(
        one_error(with("counters", json!({"PortXmitWait": -1}))).0,
        "counters.PortXmitWait"
    );
}

#[test]
fn every_iba_counter_is_known_by_its_name() {
    for c in Counter::ALL {
        assert_eq!(Counter::from_name(c.name()), Some(*c));
    }
    // 32 IBA counters and 12 RDMA transport counters (sysfs hw_counters).
    assert_eq!(Counter::ALL.len(), 44);
}

#[test]
fn the_port_identity_peer_and_link_are_read_and_kept() {
    let mut v = good();
    v["node_guid"] = json!("0x0002c90300a1b2c3");
    v["port_num"] = json!(7);
    v["node_desc"] = json!("leaf01");
    v["node_type"] = json!("switch");
    v["lid"] = json!(12);
    v["peer"] =
        json!({"node_guid": "0x0002c90300ff0001", "port_num": 1, "node_desc": "node042 mlx5_0"});
    v["link"] = json!({"state": "active", "phys_state": "linkup", "width": "4x",
        "width_enabled": ["1x", "4x"], "speed": "HDR", "rate_gbps": 200.0});
    v["temperature_c"] = json!(47.5);
    v["fec_mode"] = json!("rs_544");
    let s = parse_batch(&v, &limits()).expect("valid");
    let s = &s[0];
    assert_eq!(s.port.node_guid, Some(0x0002_c903_00a1_b2c3));
    assert_eq!(
        s.port.node_type,
        Some(crate::sample::port::NodeType::Switch)
    );
    assert_eq!(s.peer.as_ref().and_then(|p| p.port_num), Some(1));
    let link = s.link.as_ref().expect("link");
    assert_eq!(link.width, Some(crate::sample::port::Width::X4));
    assert_eq!(link.width_enabled.len(), 2);
    assert_eq!(s.phy.temperature_c, Some(47.5));
    // And the JSON form round-trips.
    let again = parse_batch(&s.to_json(), &limits()).expect("round trip");
    assert_eq!(&again[0], s);
}

#[test]
fn supported_caps_the_norm_and_topology_mismatches_are_read_and_round_trip() {
    let mut v = good();
    v["link"] = json!({"state": "active", "width": "1x", "width_enabled": ["1x"],
        "width_supported": ["1x", "4x", "12x"], "speed": "HDR",
        "speed_enabled": ["EDR", "HDR"], "speed_supported": ["SDR", "HDR", "NDR"]});
    v["norm"] = json!({"group": "CA links of leaf01", "width": "4x", "speed": "HDR",
        "links": 36, "at_norm": 35});
    v["topology"] = json!([{"kind": "miswired",
        "expected": {"node_guid": "0x0002c90300ff0002", "port_num": 3, "node_desc": "leaf01"}}]);
    let s = &parse_batch(&v, &limits()).expect("valid")[0];
    let link = s.link.as_ref().expect("link");
    assert_eq!(link.width_supported.len(), 3);
    assert_eq!(link.speed_enabled.len(), 2);
    let norm = s.fabric.norm.as_ref().expect("norm");
    assert_eq!((norm.links, norm.at_norm), (36, 35));
    let topo = s.fabric.topology.as_ref().expect("topology");
    assert_eq!(topo[0].kind, crate::sample::port::MismatchKind::Miswired);
    assert_eq!(topo[0].expected.as_ref().and_then(|e| e.port_num), Some(3));
    let again = parse_batch(&s.to_json(), &limits()).expect("round trip");
    assert_eq!(&again[0], s);
    // An empty list is a check that found nothing, not "unchecked".
    v["topology"] = json!([]);
    let s = &parse_batch(&v, &limits()).expect("valid")[0];
    assert_eq!(s.fabric.topology, Some(Vec::new()));
}

#[test]
fn a_link_alone_is_a_valid_sample() {
    // A port that is down has no traffic to report, only its state.
    let body = json!({"stream_id": "leaf01/p3", "timestamp": NOW,
        "link": {"state": "down", "phys_state": "polling"}});
    assert!(parse_batch(&body, &limits()).is_ok());
}

#[test]
fn bad_identity_and_link_fields_name_the_field_and_value() {
    for (field, body, named) in [
        ("node_guid", with("node_guid", json!("0x12345")), "0x12345"),
        (
            "node_guid",
            with("node_guid", json!("2c90300a1b2c3")),
            "2c90300a1b2c3",
        ),
        ("node_type", with("node_type", json!("hub")), "hub"),
        ("port_num", with("port_num", json!(300)), "300"),
        ("lid", with("lid", json!(65535)), "65535"),
        ("link.width", with("link", json!({"width": "3x"})), "3x"),
        ("link.state", with("link", json!({"state": "up"})), "up"),
        (
            "link.phys_state",
            with("link", json!({"phys_state": "on"})),
            "on",
        ),
        ("link.speed", with("link", json!({"speed": "ZDR"})), "ZDR"),
        (
            "link.width_enabled",
            with("link", json!({"width_enabled": ["5x"]})),
            "5x",
        ),
        ("link.bogus", with("link", json!({"bogus": 1})), "bogus"),
        (
            "peer.node_guid",
            with("peer", json!({"node_guid": "guid"})),
            "guid",
        ),
        ("peer", with("peer", json!("leaf02")), "leaf02"),
        ("fec_mode", with("fec_mode", json!("magic")), "magic"),
        ("raw_ber", with("raw_ber", json!(2.0)), "2"),
        (
            "link.speed_supported",
            with("link", json!({"speed_supported": ["HDR", "WDR"]})),
            "WDR",
        ),
        (
            "norm.width",
            with(
                "norm",
                json!({"group": "g", "width": "3x", "speed": "HDR", "links": 4, "at_norm": 3}),
            ),
            "3x",
        ),
        (
            "norm.at_norm",
            with(
                "norm",
                json!({"group": "g", "width": "4x", "speed": "HDR", "links": 4}),
            ),
            "required",
        ),
        (
            "topology[0].kind",
            with("topology", json!([{"kind": "crossed"}])),
            "crossed",
        ),
        (
            "topology[1].expected.port_num",
            with(
                "topology",
                json!([{"kind": "miswired"}, {"kind": "miswired", "expected": {"port_num": 999}}]),
            ),
            "999",
        ),
        ("topology", with("topology", json!("miswired")), "miswired"),
    ] {
        let (f, msg) = one_error(body);
        assert_eq!(f, field, "{msg}");
        assert!(msg.contains(named), "{field}: {msg}");
    }
}

#[test]
fn label_limits() {
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_eq!(one_error(with("labels", Value::Object(many))).0, "labels");
    assert_eq!(
        one_error(with("labels", json!({"k": "v".repeat(65)}))).0,
        "labels.k"
    );
    assert_eq!(one_error(with("labels", json!({"k": 5}))).0, "labels.k");
    let long_key = "k".repeat(65);
    assert_eq!(
        one_error(with("labels", json!({ long_key.clone(): "v" }))).0,
        format!("labels.{long_key}")
    );
}

#[test]
fn a_sample_needs_a_metric() {
    let body = json!({"stream_id": "a", "timestamp": NOW});
    let (f, msg) = one_error(body);
    assert_eq!(f, "");
    assert!(msg.contains("no metric"), "{msg}");
    let body = json!({"stream_id": "a", "timestamp": NOW, "counters": {}, "labels": {"a": "b"}});
    assert!(one_error(body).1.contains("no metric"));
}

#[test]
fn every_bad_sample_is_listed_with_its_index() {
    let body = json!({"samples": [
        good(),
        with("utilization", json!(200)),
        good(),
        with("error_rate", json!(-1)),
    ]});
    match parse_batch(&body, &limits()) {
        Err(BatchError::Invalid(errors)) => {
            let found: Vec<_> = errors.iter().map(|e| (e.index, e.field.as_str())).collect();
            assert_eq!(found, vec![(1, "utilization"), (3, "error_rate")]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn at_most_100_errors_are_reported() {
    let items: Vec<Value> = (0..150).map(|_| with("utilization", json!(101))).collect();
    match parse_batch(&json!({ "samples": items }), &limits()) {
        Err(BatchError::Invalid(errors)) => assert_eq!(errors.len(), MAX_REPORTED),
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_many_samples_and_bad_shapes() {
    let small = Limits {
        max_samples: 2,
        ..limits()
    };
    let body = json!({"samples": [good(), good(), good()]});
    assert_eq!(
        parse_batch(&body, &small),
        Err(BatchError::TooMany { count: 3, max: 2 })
    );
    assert!(matches!(
        parse_batch(&json!([1]), &limits()),
        Err(BatchError::Shape(_))
    ));
    assert!(matches!(
        parse_batch(&json!({"samples": []}), &limits()),
        Err(BatchError::Shape(_))
    ));
    assert!(matches!(
        parse_batch(&json!({"samples": [], "extra": 1}), &limits()),
        Err(BatchError::Shape(_))
    ));
}
