//! Encoding of events and records.
//!
//! A payload is bincode (pinned 2.0.1, standard config) of the versioned struct, decoded by
//! (event_type, schema_version). A record frame is `[frame version u8][crc32 LE u32][body]`,
//! body = bincode of `EventRecord`; the CRC covers the body, so a torn or flipped record is
//! detected on read instead of being decoded into nonsense. Frame version 2 added the trace
//! context; version 1 frames still decode (with no trace).

use super::trace::TraceContext;
use super::types::{
    AlertRaisedV1, AlertRaisedV2, AlertSuppressedV1, AlertTriagedV1, AnomalyDetectedV1,
    AnomalyDetectedV2, AnomalyResolvedV1, IncidentV1, IncidentV2, InsightDigestV1,
    InsightGeneratedV1, InsightGeneratedV2, MaintenanceEndedV1, MaintenanceScheduledV1,
    MetricObservedV1, MetricObservedV2, MetricObservedV3, StreamEvent,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub(crate) mod fields;
pub use fields::event_type::KNOWN as EVENT_TYPES;

const FRAME_VERSION: u8 = 2;
const FRAME_V1: u8 = 1;
const HEADER_LEN: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    #[error("unknown event type {event_type:?} version {version}")]
    UnknownType { event_type: String, version: u16 },
    #[error("payload of {event_type} v{version} does not decode: {reason}")]
    Payload {
        event_type: String,
        version: u16,
        reason: String,
    },
    #[error("record frame: {0}")]
    Frame(String),
}

/// The stored form of one event, without its global offset (the offset is the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub stream_id: String,
    pub seq: u64,
    pub recorded_at_ms: i64,
    #[serde(with = "fields::event_type")]
    pub event_type: std::borrow::Cow<'static, str>,
    pub schema_version: u16,
    pub correlation_id: Option<String>,
    #[serde(with = "fields::bytes")]
    pub payload: Vec<u8>,
    /// The span that wrote the event, when its request was traced.
    pub trace: Option<TraceContext>,
}

/// The record as frame version 1 stored it (before the trace context).
#[derive(Deserialize)]
struct EventRecordV1 {
    stream_id: String,
    seq: u64,
    recorded_at_ms: i64,
    #[serde(with = "fields::event_type")]
    event_type: std::borrow::Cow<'static, str>,
    schema_version: u16,
    correlation_id: Option<String>,
    #[serde(with = "fields::bytes")]
    payload: Vec<u8>,
}

impl From<EventRecordV1> for EventRecord {
    fn from(r: EventRecordV1) -> EventRecord {
        EventRecord {
            stream_id: r.stream_id,
            seq: r.seq,
            recorded_at_ms: r.recorded_at_ms,
            event_type: r.event_type,
            schema_version: r.schema_version,
            correlation_id: r.correlation_id,
            payload: r.payload,
            trace: None,
        }
    }
}

impl EventRecord {
    /// The record of `event` as `seq` of `stream_id`, recorded at `recorded_at_ms` on behalf
    /// of `origin` (its correlation id and trace).
    pub fn of(
        stream_id: &str,
        seq: u64,
        recorded_at_ms: i64,
        event: &StreamEvent,
        origin: &super::trace::Origin,
    ) -> EventRecord {
        let kind = (event.event_type(), event.schema_version());
        EventRecord::encoded(
            stream_id,
            seq,
            recorded_at_ms,
            kind,
            encode_payload(event),
            origin,
        )
    }

    /// `of` for a payload already encoded (a sample's, encoded once for its digest too).
    pub fn encoded(
        stream_id: &str,
        seq: u64,
        recorded_at_ms: i64,
        (event_type, schema_version): (&'static str, u16),
        payload: Vec<u8>,
        origin: &super::trace::Origin,
    ) -> EventRecord {
        EventRecord {
            stream_id: stream_id.to_string(),
            seq,
            recorded_at_ms,
            event_type: event_type.into(),
            schema_version,
            correlation_id: origin.correlation_id.clone(),
            payload,
            trace: origin.trace,
        }
    }

    /// Deterministic, so that a projection writing it twice writes one item.
    pub fn event_id(&self) -> String {
        format!("{}#{}", self.stream_id, self.seq)
    }

    pub fn decode_event(&self) -> Result<StreamEvent, CodecError> {
        decode_payload(&self.event_type, self.schema_version, &self.payload)
    }
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    append_bytes(value, &mut out);
    out
}

/// Encode onto the end of `out` (one buffer, no intermediate copies).
fn append_bytes<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    bincode::serde::encode_into_std_write(value, out, config())
        .expect("in-memory bincode encoding of plain structs cannot fail");
}

/// Encode a frozen older payload (old segments read back as the records they packed).
pub fn encode_old_payload<T: Serialize>(e: &T) -> Vec<u8> {
    to_bytes(e)
}

/// Encode a frozen older event version (the golden tests check old bytes still mean the same).
#[cfg(test)]
pub fn encode_old_for_tests<T: Serialize>(e: &T) -> Vec<u8> {
    to_bytes(e)
}

/// A stable 64-bit digest (FNV-1a) of a value's encoded bytes, hashed as they are encoded.
pub fn digest<T: Serialize>(value: &T) -> u64 {
    let mut h = crate::hash::Fnv1a::default();
    bincode::serde::encode_into_std_write(value, &mut h, config())
        .expect("hashing plain structs cannot fail");
    h.0
}

fn from_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    event_type: &str,
    version: u16,
) -> Result<T, CodecError> {
    match bincode::serde::decode_from_slice::<T, _>(bytes, config()) {
        Ok((value, read)) if read == bytes.len() => Ok(value),
        Ok((_, read)) => Err(CodecError::Payload {
            event_type: event_type.into(),
            version,
            reason: format!("{} trailing bytes", bytes.len() - read),
        }),
        Err(e) => Err(CodecError::Payload {
            event_type: event_type.into(),
            version,
            reason: e.to_string(),
        }),
    }
}

pub fn encode_payload(event: &StreamEvent) -> Vec<u8> {
    match event {
        StreamEvent::MetricObserved(e) => to_bytes(e),
        StreamEvent::AnomalyDetected(e) => to_bytes(e),
        StreamEvent::AnomalyResolved(e) => to_bytes(e),
        StreamEvent::InsightGenerated(e) => to_bytes(e),
        StreamEvent::AlertRaised(e) => to_bytes(e),
        StreamEvent::AlertSuppressed(e) => to_bytes(e),
        StreamEvent::AlertTriaged(e) => to_bytes(e),
        StreamEvent::IncidentOpened(e)
        | StreamEvent::IncidentGrown(e)
        | StreamEvent::IncidentEscalated(e)
        | StreamEvent::IncidentResolved(e) => to_bytes(e),
        StreamEvent::MaintenanceScheduled(e) => to_bytes(e),
        StreamEvent::MaintenanceEnded(e) => to_bytes(e),
        StreamEvent::InsightDigest(e) => to_bytes(e),
    }
}

/// `(event_type, schema_version)` of the `MetricObserved` records written today.
pub const METRIC_OBSERVED: (&str, u16) = ("MetricObserved", 3);

/// The `MetricObserved` payload of `sample`, without building the event (and so without a
/// copy of the sample): a one-field struct encodes as its field.
pub fn encode_sample_payload(sample: &crate::sample::Sample) -> Vec<u8> {
    to_bytes(sample)
}

pub fn decode_payload(
    event_type: &str,
    version: u16,
    bytes: &[u8],
) -> Result<StreamEvent, CodecError> {
    match (event_type, version) {
        ("MetricObserved", 1) => from_bytes::<MetricObservedV1>(bytes, event_type, version)
            .map(|v| StreamEvent::MetricObserved(v.into())),
        ("MetricObserved", 2) => from_bytes::<MetricObservedV2>(bytes, event_type, version)
            .map(|v| StreamEvent::MetricObserved(v.into())),
        ("MetricObserved", 3) => from_bytes::<MetricObservedV3>(bytes, event_type, version)
            .map(StreamEvent::MetricObserved),
        ("AnomalyDetected", 1) => from_bytes::<AnomalyDetectedV1>(bytes, event_type, version)
            .map(|v| StreamEvent::AnomalyDetected(v.into())),
        ("AnomalyDetected", 2) => from_bytes::<AnomalyDetectedV2>(bytes, event_type, version)
            .map(StreamEvent::AnomalyDetected),
        ("AnomalyResolved", 1) => from_bytes::<AnomalyResolvedV1>(bytes, event_type, version)
            .map(StreamEvent::AnomalyResolved),
        ("InsightGenerated", 1) => from_bytes::<InsightGeneratedV1>(bytes, event_type, version)
            .map(|e| StreamEvent::InsightGenerated(e.into())),
        ("InsightGenerated", 2) => from_bytes::<InsightGeneratedV2>(bytes, event_type, version)
            .map(StreamEvent::InsightGenerated),
        ("AlertRaised", 2) => {
            from_bytes::<AlertRaisedV2>(bytes, event_type, version).map(StreamEvent::AlertRaised)
        }
        ("IncidentOpened", 1) => from_bytes::<IncidentV1>(bytes, event_type, version)
            .map(|v| StreamEvent::IncidentOpened(v.into())),
        ("IncidentOpened", 2) => {
            from_bytes::<IncidentV2>(bytes, event_type, version).map(StreamEvent::IncidentOpened)
        }
        ("IncidentGrown", 1) => from_bytes::<IncidentV1>(bytes, event_type, version)
            .map(|v| StreamEvent::IncidentGrown(v.into())),
        ("IncidentGrown", 2) => {
            from_bytes::<IncidentV2>(bytes, event_type, version).map(StreamEvent::IncidentGrown)
        }
        ("IncidentEscalated", 1) => from_bytes::<IncidentV1>(bytes, event_type, version)
            .map(|v| StreamEvent::IncidentEscalated(v.into())),
        ("IncidentEscalated", 2) => {
            from_bytes::<IncidentV2>(bytes, event_type, version).map(StreamEvent::IncidentEscalated)
        }
        ("IncidentResolved", 1) => from_bytes::<IncidentV1>(bytes, event_type, version)
            .map(|v| StreamEvent::IncidentResolved(v.into())),
        ("IncidentResolved", 2) => {
            from_bytes::<IncidentV2>(bytes, event_type, version).map(StreamEvent::IncidentResolved)
        }
        ("AlertRaised", 1) => from_bytes::<AlertRaisedV1>(bytes, event_type, version)
            .map(|v| StreamEvent::AlertRaised(v.into())),
        ("AlertSuppressed", 1) => from_bytes::<AlertSuppressedV1>(bytes, event_type, version)
            .map(StreamEvent::AlertSuppressed),
        ("AlertTriaged", 1) => {
            from_bytes::<AlertTriagedV1>(bytes, event_type, version).map(StreamEvent::AlertTriaged)
        }
        ("MaintenanceScheduled", 1) => {
            from_bytes::<MaintenanceScheduledV1>(bytes, event_type, version)
                .map(StreamEvent::MaintenanceScheduled)
        }
        ("MaintenanceEnded", 1) => from_bytes::<MaintenanceEndedV1>(bytes, event_type, version)
            .map(StreamEvent::MaintenanceEnded),
        ("InsightDigest", 1) => from_bytes::<InsightDigestV1>(bytes, event_type, version)
            .map(StreamEvent::InsightDigest),
        _ => Err(CodecError::UnknownType {
            event_type: event_type.into(),
            version,
        }),
    }
}

pub fn encode_frame(record: &EventRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 64 + record.payload.len());
    out.extend_from_slice(&[FRAME_VERSION, 0, 0, 0, 0]);
    append_bytes(record, &mut out);
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[1..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode_frame(bytes: &[u8]) -> Result<EventRecord, CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Frame(format!(
            "{} bytes is too short",
            bytes.len()
        )));
    }
    if bytes[0] != FRAME_VERSION && bytes[0] != FRAME_V1 {
        return Err(CodecError::Frame(format!(
            "unknown frame version {}",
            bytes[0]
        )));
    }
    let stored = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let body = &bytes[HEADER_LEN..];
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(CodecError::Frame(format!(
            "crc mismatch: stored {stored:08x}, computed {actual:08x}"
        )));
    }
    if bytes[0] == FRAME_V1 {
        return from_bytes::<EventRecordV1>(body, "record", u16::from(FRAME_V1)).map(Into::into);
    }
    from_bytes(body, "record", u16::from(FRAME_VERSION))
}

/// Snapshot states start with this tag and their struct's version, so a state written by a
/// build with another layout is refused instead of misdecoded (bincode has no field names).
const STATE_TAG: &[u8; 4] = b"ibS\x01";

/// Encode a snapshot's state (`version`: the state struct's layout version) with the log's
/// bincode configuration.
pub fn encode_state<T: Serialize>(version: u16, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(STATE_TAG);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&to_bytes(value));
    out
}

/// Decode a snapshot's state written by `encode_state` with the same `version`; any other
/// version (or an untagged state from before versioning) is an error, never a guess.
pub fn decode_state<T: DeserializeOwned>(version: u16, bytes: &[u8]) -> Result<T, CodecError> {
    let Some(body) = bytes.strip_prefix(STATE_TAG.as_slice()) else {
        return Err(CodecError::UnknownType {
            event_type: "snapshot (untagged)".into(),
            version: 0,
        });
    };
    let found = body
        .get(..2)
        .map(|v| u16::from_le_bytes([v[0], v[1]]))
        .unwrap_or(0);
    if found != version {
        return Err(CodecError::UnknownType {
            event_type: "snapshot".into(),
            version: found,
        });
    }
    from_bytes(&body[2..], "snapshot", version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EventRecord {
        EventRecord {
            stream_id: "sw1/p1".into(),
            seq: 7,
            recorded_at_ms: 1_700_000_000_000,
            event_type: "MetricObserved".into(),
            schema_version: 1,
            correlation_id: Some("abc".into()),
            payload: vec![1, 2, 3],
            trace: Some(TraceContext {
                trace_id: [7; 16],
                span_id: [9; 8],
                flags: 1,
            }),
        }
    }

    #[test]
    fn frame_round_trips() {
        let r = record();
        assert_eq!(decode_frame(&encode_frame(&r)), Ok(r));
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let frame = encode_frame(&record());
        for i in 1..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_frame(&bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let frame = encode_frame(&record());
        assert!(decode_frame(&frame[..frame.len() - 1]).is_err());
        assert!(decode_frame(&frame[..3]).is_err());
    }

    #[test]
    fn given_a_sample_when_its_payload_is_encoded_alone_then_it_is_the_events_payload() {
        let sample = crate::sample::Sample {
            stream_id: "sw1/p1".into(),
            timestamp_ms: 1_700_000_000_000,
            utilization_pct: Some(42.5),
            labels: [("rack".to_string(), "r1".to_string())].into(),
            ..Default::default()
        };
        let event = StreamEvent::MetricObserved(crate::events::types::MetricObservedV3 {
            sample: sample.clone(),
        });
        assert_eq!(encode_sample_payload(&sample), encode_payload(&event));
        assert_eq!(
            METRIC_OBSERVED,
            (event.event_type(), event.schema_version())
        );
        assert_eq!(
            digest(&sample),
            crate::hash::fnv1a64(encode_payload(&event))
        );
    }

    #[test]
    fn unknown_type_or_version_is_an_error() {
        assert!(matches!(
            decode_payload("MetricObserved", 99, &[]),
            Err(CodecError::UnknownType { .. })
        ));
        assert!(matches!(
            decode_payload("Nope", 1, &[]),
            Err(CodecError::UnknownType { .. })
        ));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_record_round_trips_and_any_corruption_is_caught(
            stream_id in "[A-Za-z0-9._:/-]{1,128}",
            seq in 1u64..u64::MAX,
            recorded_at_ms in any::<i64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<usize>(),
        ) {
            let record = EventRecord {
                stream_id,
                seq,
                recorded_at_ms,
                event_type: "MetricObserved".into(),
                schema_version: 1,
                correlation_id: None,
                payload,
                trace: None,
            };
            let frame = encode_frame(&record);
            prop_assert_eq!(decode_frame(&frame), Ok(record));
            let mut bad = frame.clone();
            let i = 1 + flip % (bad.len() - 1);
            bad[i] ^= 0x01;
            prop_assert!(decode_frame(&bad).is_err());
        }
    }
}
