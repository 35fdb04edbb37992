//! How two fields of a record decode without per-byte or per-record work. Neither changes the
//! stored bytes (the golden tests check): bincode writes a byte sequence and a `&[u8]` the same
//! way (a varint length, then the raw bytes), and a string is a string.

use serde::de::{Deserializer, Error, SeqAccess, Visitor};
use serde::Serializer;
use std::borrow::Cow;
use std::fmt;

/// `payload`: read as one slice copied at once, not byte by byte through a sequence.
pub mod bytes {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// `event_type`: a known type's name is the static string, so decoding allocates nothing.
pub mod event_type {
    use super::*;

    /// Every name `StreamEvent::event_type` gives (the golden tests check the list).
    pub const KNOWN: [&str; 14] = [
        "MetricObserved",
        "AnomalyDetected",
        "AnomalyResolved",
        "InsightGenerated",
        "AlertRaised",
        "AlertSuppressed",
        "AlertTriaged",
        "IncidentOpened",
        "IncidentGrown",
        "IncidentEscalated",
        "IncidentResolved",
        "MaintenanceScheduled",
        "MaintenanceEnded",
        "InsightDigest",
    ];

    pub fn serialize<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'static, str>, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Cow<'static, str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event type")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Cow<'static, str>, E> {
                Ok(match KNOWN.iter().find(|k| **k == v) {
                    Some(k) => Cow::Borrowed(k),
                    None => Cow::Owned(v.to_string()),
                })
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_frame, encode_frame, EventRecord};
    use std::borrow::Cow;

    fn record(event_type: &str, payload: Vec<u8>) -> EventRecord {
        EventRecord {
            stream_id: "sw1/p1".into(),
            seq: 7,
            recorded_at_ms: 1_700_000_000_000,
            event_type: Cow::Owned(event_type.into()),
            schema_version: 2,
            correlation_id: None,
            payload,
            trace: None,
        }
    }

    #[test]
    fn a_known_type_decodes_to_its_static_name_and_an_unknown_one_is_kept() {
        let known = decode_frame(&encode_frame(&record("MetricObserved", vec![1, 2]))).unwrap();
        assert!(matches!(known.event_type, Cow::Borrowed("MetricObserved")));
        let other = decode_frame(&encode_frame(&record("FromTheFuture", vec![]))).unwrap();
        assert_eq!(other.event_type, "FromTheFuture");
    }

    #[test]
    fn the_payload_round_trips_whatever_its_length() {
        for len in [0usize, 1, 250, 251, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let back = decode_frame(&encode_frame(&record("MetricObserved", payload.clone())));
            assert_eq!(back.unwrap().payload, payload, "{len} bytes");
        }
    }
}
