use super::*;
use serde_json::json;

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
fn counter_values_respect_their_width() {
    let (f, msg) = one_error(with("counters", json!({"LinkDownedCounter": 256})));
    assert_eq!(f, "counters.LinkDownedCounter");
    assert!(msg.contains("256") && msg.contains("255"), "{msg}");
    assert!(parse_batch(
        &with("counters", json!({"LinkDownedCounter": 255})),
        &limits()
    )
    .is_ok());
    // Extended 64-bit data counters take any u64.
    assert!(parse_batch(
        &with("counters", json!({"PortRcvData": u64::MAX})),
        &limits()
    )
    .is_ok());
    assert_eq!(
        one_error(with("counters", json!({"PortXmitWait": -1}))).0,
        "counters.PortXmitWait"
    );
}

#[test]
fn label_limits() {
    let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
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
