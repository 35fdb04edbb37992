use super::*;
use crate::events::types::MetricObservedV3;
use crate::sample::Counter;
use crate::sim;
use proptest::prelude::*;
use std::borrow::Cow;

fn observed(offset: u64, seq: u64, recorded_at_ms: i64, sample: Sample) -> StoredEvent {
    StoredEvent {
        offset,
        record: EventRecord {
            stream_id: sample.stream_id.clone(),
            seq,
            recorded_at_ms,
            event_type: Cow::Borrowed("MetricObserved"),
            schema_version: SAMPLE_VERSION,
            correlation_id: None,
            payload: codec::encode_payload(&StreamEvent::MetricObserved(MetricObservedV3 {
                sample,
            })),
            trace: None,
        },
    }
}

/// `streams` streams, `per_stream` samples each, round-robin as the bench writes them.
fn bench_events(streams: usize, per_stream: u64) -> Vec<StoredEvent> {
    let mut rng = sim::Rng::new(7);
    let mut out = Vec::new();
    for k in 0..per_stream {
        for s in 0..streams {
            let sample = sim::steady_sample(&mut rng, s, k, 1_700_000_000_000);
            let offset = out.len() as u64 + 1;
            out.push(observed(
                offset,
                k + 1,
                1_700_000_000_000 + offset as i64 / 7,
                sample,
            ));
        }
    }
    out
}

fn round_trip(events: &[StoredEvent]) -> (Packed, Segment) {
    let first = events.first().map_or(1, |e| e.offset);
    let last = events.last().map_or(1, |e| e.offset);
    let packed = pack(first, last, events)
        .expect("pack")
        .expect("something to pack");
    let back = unpack(&packed.bytes).expect("unpack");
    (packed, back)
}

#[test]
fn given_bench_samples_when_packed_then_they_come_back_exactly_in_a_few_bytes_per_value() {
    let events = bench_events(200, 50);
    let (packed, back) = round_trip(&events);
    assert_eq!(back.events, events);
    // Eight values a sample (four gauges, qp_errors, three counters). Four of the gauges are
    // random full-precision doubles, about 3.2 bytes a value of entropy on their own.
    let per_value = packed.bytes.len() as f64 / (events.len() * 8) as f64;
    assert!(per_value < 4.0, "{per_value:.2} bytes per value");
    assert_eq!(packed.streams.len(), 200);
    assert_eq!(
        packed.streams[3],
        StreamSpan {
            stream_id: sim::stream_id(3),
            first_seq: 1,
            last_seq: 50
        }
    );
}

#[test]
fn given_other_events_in_the_range_when_packed_then_only_current_raw_samples_are_taken() {
    let mut events = bench_events(3, 2);
    // An anomaly, a v1 sample and a sample whose payload is not canonical stay records.
    events[1].record.event_type = Cow::Borrowed("AnomalyDetected");
    events[2].record.schema_version = 1;
    events[4].record.payload.push(0);
    let (packed, back) = round_trip(&events);
    let kept: Vec<u64> = packed.events.iter().map(|(o, _, _)| *o).collect();
    assert_eq!(kept, vec![1, 4, 6]);
    assert_eq!(
        back.events,
        vec![events[0].clone(), events[3].clone(), events[5].clone()]
    );
    assert_eq!(back.stream_events(&sim::stream_id(0)).count(), 2);
    assert_eq!(back.stream_events("nope").count(), 0);
}

#[test]
fn given_a_segment_when_one_stream_is_read_then_it_is_that_streams_part_of_the_whole() {
    let events = bench_events(30, 4);
    let (packed, whole) = round_trip(&events);
    let id = sim::stream_id(7);
    let one = unpack_stream(&packed.bytes, &id).expect("unpack one stream");
    let expected: Vec<&StoredEvent> = whole.stream_events(&id).collect();
    assert_eq!(one.events.iter().collect::<Vec<_>>(), expected);
    assert_eq!(one.stream_events(&id).count(), 4);
    assert!(unpack_stream(&packed.bytes, "nope")
        .expect("unpack")
        .is_empty());
}

#[test]
fn given_no_raw_sample_when_packed_then_there_is_no_segment() {
    let mut events = bench_events(2, 1);
    for e in &mut events {
        e.record.event_type = Cow::Borrowed("AlertRaised");
    }
    assert!(pack(1, 2, &events).expect("pack").is_none());
}

#[test]
fn given_a_segment_when_any_byte_flips_then_unpacking_fails() {
    let (packed, _) = round_trip(&bench_events(4, 3));
    for i in 0..packed.bytes.len() {
        let mut bytes = packed.bytes.clone();
        bytes[i] ^= 0x10;
        assert!(unpack(&bytes).is_err(), "byte {i} flipped went unnoticed");
    }
    assert!(unpack(&packed.bytes[..packed.bytes.len() - 1]).is_err());
}

fn any_gauge() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        Just(Some(f64::NAN)),
        Just(Some(-0.0)),
        Just(Some(f64::INFINITY)),
        Just(Some(4.5)),
        any::<f64>().prop_map(Some),
    ]
}

fn any_sample() -> impl Strategy<Value = Sample> {
    (
        0usize..4,
        any::<i64>(),
        prop::array::uniform4(any_gauge()),
        prop::option::of(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]),
        prop::collection::btree_map(
            prop::sample::select(Counter::ALL),
            prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
            0..4,
        ),
        prop::option::of("[a-zé]{0,3}"),
    )
        .prop_map(|(stream, ts, [a, b, c, d], qp, counters, label)| Sample {
            stream_id: ["sw1/p1", "sw1/p2", "sw10/p1", "é/x"][stream].to_string(),
            timestamp_ms: ts,
            latency_p99_us: a,
            utilization_pct: b,
            error_rate: c,
            bandwidth_gbps: d,
            qp_errors: qp,
            counters,
            labels: label.into_iter().map(|l| ("rack".to_string(), l)).collect(),
            ..Sample::default()
        })
}

proptest! {
    #[test]
    fn any_samples_with_any_gaps_round_trip(
        samples in prop::collection::vec((any_sample(), 1u64..3, 0u64..3, any::<i64>(), any::<bool>()), 1..40),
    ) {
        let mut seqs: FxHashMap<String, u64> = FxHashMap::default();
        let mut offset = 10;
        let mut events = Vec::new();
        for (sample, seq_gap, offset_gap, recorded, traced) in samples {
            let seq = seqs.entry(sample.stream_id.clone()).or_insert(0);
            *seq += seq_gap;
            offset += offset_gap + 1;
            let mut e = observed(offset, *seq, recorded, sample);
            if traced {
                e.record.trace = Some(TraceContext { trace_id: [offset as u8; 16], span_id: [1; 8], flags: 1 });
                e.record.correlation_id = Some(format!("c{offset}"));
            }
            events.push(e);
        }
        let last = offset + 2;
        let packed = pack(10, last, &events).expect("pack").expect("packed");
        let back = unpack(&packed.bytes).expect("unpack");
        prop_assert_eq!(back.events.len(), events.len());
        for (b, e) in back.events.iter().zip(&events) {
            prop_assert_eq!(b.offset, e.offset);
            // NaN payloads compare by their bytes.
            prop_assert_eq!(&b.record.payload, &e.record.payload);
            prop_assert_eq!(
                (&b.record.stream_id, b.record.seq, b.record.recorded_at_ms, &b.record.trace),
                (&e.record.stream_id, e.record.seq, e.record.recorded_at_ms, &e.record.trace)
            );
        }
        prop_assert_eq!((back.first_offset, back.last_offset), (10, last));
    }
}

/// A segment of format 1 as the previous release wrote it: the same body, its rests in the
/// frozen `RestV1` form (v2 samples).
fn as_format_1(bytes: &[u8]) -> Vec<u8> {
    let (_, mut body) = unframe(bytes).expect("a segment");
    for blob in &mut body.rests {
        let config = bincode::config::standard();
        let (rest, _): (Rest, _) = bincode::serde::decode_from_slice(&blob.0, config).unwrap();
        let old = RestV1 {
            sample: crate::sample::SampleV2::from(&rest.sample),
            correlation_id: rest.correlation_id,
            trace: rest.trace,
        };
        blob.0 = bincode::serde::encode_to_vec(&old, config).unwrap();
    }
    let mut out = frame(&body);
    out[0] = SEGMENT_V1;
    let crc = crc32fast::hash(&out[5..]);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn given_a_format_1_segment_then_it_reads_back_as_the_v2_records_it_packed() {
    // Given samples without the v3 fields, packed by the previous format,
    let events = bench_events(3, 20);
    let packed = pack(1, events.len() as u64, &events)
        .expect("pack")
        .expect("something to pack");
    let old = as_format_1(&packed.bytes);
    // when read back,
    let seg = unpack(&old).expect("a format 1 segment unpacks");
    // then each event is a v2 record whose sample is the one written.
    assert_eq!(seg.events.len(), events.len());
    for (got, want) in seg.events.iter().zip(&events) {
        assert_eq!(got.record.schema_version, SAMPLE_V2);
        assert_eq!(got.offset, want.offset);
        let (StreamEvent::MetricObserved(a), StreamEvent::MetricObserved(b)) = (
            got.record.decode_event().unwrap(),
            want.record.decode_event().unwrap(),
        ) else {
            panic!("samples");
        };
        assert_eq!(a.sample, b.sample);
    }
}
