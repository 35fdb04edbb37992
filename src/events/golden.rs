//! Golden bytes: every (event_type, schema_version) has a checked-in encoding in
//! `tests/golden/`. A change that alters how a persisted version encodes fails here; the fix
//! is a new version plus an upcast, never new golden bytes for an old version.
//! `IBSIGHT_BLESS_GOLDEN=1 cargo test golden` writes missing fixtures (never overwrites).

use super::codec::{self, EventRecord};
use super::trace::TraceContext;
use super::types::{
    AlertRaisedV1, AlertRaisedV2, AlertSuppressedV1, AlertTriagedV1, AnomalyDetectedV1,
    AnomalyDetectedV2, AnomalyResolvedV1, DigestCountV1, DigestPortV1, IncidentMemberV1,
    IncidentNodeV1, IncidentScope, IncidentV1, IncidentV2, InsightDigestV1, InsightGeneratedV1,
    InsightGeneratedV2, MaintenanceEndedV1, MaintenanceScheduledV1, MemberAnomalyV1,
    MetricObservedV1, MetricObservedV2, MetricObservedV3, StreamEvent, Verdict,
};
use crate::detect::rules::{Rule, Severity};
use crate::sample::port::{
    FabricCheck, FecMode, LinkInfoV1, LinkNorm, LinkState, Mismatch, MismatchKind, NodeType,
    PeerPort, PhyHealth, PhysState, PortIdentity, Speed, Width,
};
use crate::sample::{Counter, Sample};
use crate::sample::{SampleV1, SampleV2};
use crate::vocab::{InsightSource, PredictionType};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.hex"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("golden file is hex"))
        .collect()
}

fn read_golden(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixture_path(name)).expect("golden fixture exists");
    unhex(&text)
}

fn check(name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = fixture_path(name);
    if !path.exists() && std::env::var("IBSIGHT_BLESS_GOLDEN").is_ok() {
        std::fs::write(&path, hex(bytes) + "\n").expect("write golden");
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden fixture {}", path.display()));
    assert_eq!(hex(bytes), golden.trim(), "encoding of {name} changed");
    unhex(&golden)
}

mod fixtures;
use fixtures::*;

#[test]
fn every_event_type_is_one_the_record_decodes_without_allocating() {
    for (_, e) in examples() {
        assert!(
            super::codec::EVENT_TYPES.contains(&e.event_type()),
            "{}",
            e.event_type()
        );
    }
}

#[test]
fn every_event_type_and_version_matches_its_golden_bytes() {
    for (name, event) in examples() {
        let bytes = codec::encode_payload(&event);
        let golden = check(name, &bytes);
        let decoded = codec::decode_payload(event.event_type(), event.schema_version(), &golden)
            .expect("golden bytes decode");
        assert_eq!(decoded, event, "{name}");
    }
}

fn record(trace: Option<TraceContext>) -> EventRecord {
    EventRecord {
        stream_id: "sw0001/p07".into(),
        seq: 42,
        recorded_at_ms: 1_750_000_000_999,
        event_type: "MetricObserved".into(),
        schema_version: 1,
        correlation_id: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        payload: vec![1, 2, 3, 4],
        trace,
    }
}

#[test]
fn the_record_frame_matches_its_golden_bytes() {
    let record = record(TraceContext::parse_traceparent(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ));
    let golden = check("record_frame_v2", &codec::encode_frame(&record));
    assert_eq!(codec::decode_frame(&golden).expect("decode"), record);
}

/// Samples written before the port's identity, peer and link still read, upcast to v2 with
/// those fields empty.
#[test]
fn a_version_1_sample_still_decodes() {
    let golden = read_golden("MetricObserved_v1");
    let v1 = MetricObservedV1 {
        sample: sample_v1(),
    };
    assert_eq!(hex(&codec::encode_old_for_tests(&v1)), hex(&golden));
    let decoded = codec::decode_payload("MetricObserved", 1, &golden).expect("decode");
    let StreamEvent::MetricObserved(m) = decoded else {
        panic!("not a sample");
    };
    assert_eq!(m.sample, Sample::from(sample_v1()));
    assert!(m.sample.port.is_empty() && m.sample.link.is_none());
}

/// Samples written before supported widths and speeds and the fabric check still read, upcast
/// to v3 with those fields empty.
#[test]
fn a_version_2_sample_still_decodes() {
    let golden = read_golden("MetricObserved_v2");
    let v2 = MetricObservedV2 {
        sample: sample_v2(),
    };
    assert_eq!(hex(&codec::encode_old_for_tests(&v2)), hex(&golden));
    let decoded = codec::decode_payload("MetricObserved", 2, &golden).expect("decode");
    let StreamEvent::MetricObserved(m) = decoded else {
        panic!("not a sample");
    };
    assert_eq!(m.sample, Sample::from(sample_v2()));
    assert!(m.sample.fabric.is_empty());
    assert!(m.sample.link.is_some_and(|l| l.speed_supported.is_empty()));
}

/// Anomalies and alerts written before incidents still read, upcast with empty topology.
#[test]
fn version_1_anomalies_and_alerts_still_decode() {
    let golden = read_golden("AnomalyDetected_v1");
    assert_eq!(
        hex(&codec::encode_old_for_tests(&anomaly_v1())),
        hex(&golden)
    );
    let decoded = codec::decode_payload("AnomalyDetected", 1, &golden).expect("decode");
    assert_eq!(decoded, StreamEvent::AnomalyDetected(anomaly_v1().into()));
    let golden = read_golden("AlertRaised_v1");
    assert_eq!(hex(&codec::encode_old_for_tests(&alert_v1())), hex(&golden));
    let decoded = codec::decode_payload("AlertRaised", 1, &golden).expect("decode");
    let StreamEvent::AlertRaised(a) = decoded else {
        panic!("not an alert")
    };
    assert_eq!(
        (a.incident_id, a.ports),
        (None, vec!["sw0001/p07".to_string()])
    );
}

/// Incidents written before maintenance windows still read, upcast with no window.
#[test]
fn version_1_incidents_still_decode() {
    for (name, inc) in [
        ("IncidentOpened", incident()),
        ("IncidentGrown", incident()),
        ("IncidentEscalated", incident()),
        ("IncidentResolved", resolved_incident()),
    ] {
        let golden = read_golden(&format!("{name}_v1"));
        assert_eq!(
            hex(&codec::encode_old_for_tests(&inc)),
            hex(&golden),
            "{name}"
        );
        let decoded = codec::decode_payload(name, 1, &golden).expect("decode");
        let got = decoded.incident().expect("an incident").clone();
        assert_eq!(got, IncidentV2::from(inc), "{name}");
        assert!(got.maintenance.is_empty());
    }
}

/// Insights written before the low-confidence mark still read, upcast as confident, with no
/// tier and no answer form.
#[test]
fn version_1_insights_still_decode() {
    let golden = read_golden("InsightGenerated_v1");
    assert_eq!(
        hex(&codec::encode_old_for_tests(&insight_v1())),
        hex(&golden)
    );
    let decoded = codec::decode_payload("InsightGenerated", 1, &golden).expect("decode");
    let StreamEvent::InsightGenerated(i) = decoded else {
        panic!("not an insight")
    };
    assert_eq!(i, InsightGeneratedV2::from(insight_v1()));
    assert!(!i.low_confidence);
    assert_eq!((i.rules_risk, i.risk_score), (None, 85));
}

/// Logs written before the trace context still read: a version 1 frame decodes with no trace.
#[test]
fn a_version_1_frame_still_decodes() {
    let golden = read_golden("record_frame_v1");
    assert_eq!(codec::decode_frame(&golden).expect("decode"), record(None));
}
