//! Packed segments: the raw samples (`MetricObserved` v3; format 1 held v2) of one range of
//! offsets, stored as columns of numbers instead of one record each, so the log keeps every
//! sample in a few bytes per value.
//!
//! Every number is first turned into a small residual against what the same stream had
//! before (a timestamp or counter into its delta-of-delta, a gauge into "same as before" or
//! the new value, a seq into its gap), then each column is compressed with pco, which packs
//! numbers in as many bits as their spread needs. What is not a number (port identity, peer,
//! link, labels, correlation id, trace) is kept once per stream while it stays the same.
//!
//! A segment is lossless: unpacking gives back the very records packed (`pack` checks this
//! before it returns, and an event it cannot rebuild exactly stays a record). Frame:
//! `[version u8][crc32 LE of body][body]`, body = bincode of `Body`.

mod columns;
#[cfg(test)]
mod tests;

use super::codec::{self, CodecError, EventRecord};
use super::store::StoredEvent;
use super::trace::TraceContext;
use super::types::StreamEvent;
use crate::sample::{Counter, Sample};
use columns::{Reader, Writer};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

const SEGMENT_VERSION: u8 = 2;
/// The `MetricObserved` schema version a segment holds. Fixed with the segment format: a newer
/// sample version would stay a record until the format learns it.
const SAMPLE_VERSION: u16 = 3;
/// Segments of format 1 hold `MetricObserved` v2 samples (their rests are `RestV1`), and read
/// back as the v2 records they were packed from.
const SEGMENT_V1: u8 = 1;
const SAMPLE_V2: u16 = 2;

/// One stream's events in a segment: its seqs from `first_seq` to `last_seq` (with gaps
/// where another event type or an unpackable sample sits).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpan {
    pub stream_id: String,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A packed segment, ready to store.
#[derive(Debug)]
pub struct Packed {
    pub bytes: Vec<u8>,
    /// The events packed, in offset order; the others of the range stay records.
    pub events: Vec<(u64, String, u64)>,
    pub streams: Vec<StreamSpan>,
}

/// A segment read back: its range and its events in offset order.
#[derive(Debug)]
pub struct Segment {
    pub first_offset: u64,
    pub last_offset: u64,
    pub events: Vec<StoredEvent>,
    /// Stream id → its code; the events of each code.
    codes: FxHashMap<String, u32>,
    by_code: Vec<Vec<u32>>,
}

impl Segment {
    /// The events of one stream, in seq order.
    pub fn stream_events<'a>(&'a self, stream_id: &str) -> impl Iterator<Item = &'a StoredEvent> {
        self.codes
            .get(stream_id)
            .into_iter()
            .flat_map(|code| &self.by_code[*code as usize])
            .map(|i| &self.events[*i as usize])
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct Body {
    first_offset: u64,
    last_offset: u64,
    count: u64,
    /// Stream ids in order of first appearance, front-coded: (bytes shared with the previous
    /// id, the rest).
    streams: Vec<(u32, String)>,
    /// The counters some sample of the segment has, each with its own columns.
    counters: Vec<Counter>,
    columns: Vec<Blob>,
    /// The non-numeric parts of the samples, each distinct one once.
    rests: Vec<Blob>,
}

#[derive(Serialize, Deserialize)]
struct Blob(#[serde(with = "super::codec::fields::bytes")] Vec<u8>);

/// The part of a sample that is not a number: the sample with its numbers cleared, and the
/// record's correlation id and trace.
#[derive(Serialize, Deserialize, PartialEq)]
struct Rest {
    sample: Sample,
    correlation_id: Option<String>,
    trace: Option<TraceContext>,
}

/// `Rest` of segment format 1. Frozen.
#[derive(Serialize, Deserialize)]
struct RestV1 {
    sample: crate::sample::SampleV2,
    correlation_id: Option<String>,
    trace: Option<TraceContext>,
}

/// The sample an event carries, when the event can be packed: a `MetricObserved` of the
/// version segments hold, whose record is rebuilt exactly from the sample.
fn packable(event: &StoredEvent) -> Option<Sample> {
    let r = &event.record;
    if !StreamEvent::is_raw_sample(&r.event_type) || r.schema_version != SAMPLE_VERSION {
        return None;
    }
    let Ok(StreamEvent::MetricObserved(m)) = r.decode_event() else {
        return None;
    };
    let rebuilt = record_of(
        &r.stream_id,
        r.seq,
        r.recorded_at_ms,
        r.correlation_id.clone(),
        r.trace,
        &m.sample,
        SAMPLE_VERSION,
    );
    (rebuilt == *r).then_some(m.sample)
}

fn record_of(
    stream_id: &str,
    seq: u64,
    recorded_at_ms: i64,
    correlation_id: Option<String>,
    trace: Option<TraceContext>,
    sample: &Sample,
    version: u16,
) -> EventRecord {
    let payload = if version == SAMPLE_V2 {
        codec::encode_old_payload(&crate::sample::SampleV2::from(sample))
    } else {
        codec::encode_sample_payload(sample)
    };
    EventRecord {
        stream_id: stream_id.to_string(),
        seq,
        recorded_at_ms,
        event_type: std::borrow::Cow::Borrowed(codec::METRIC_OBSERVED.0),
        schema_version: version,
        correlation_id,
        payload,
        trace,
    }
}

fn rest_of(sample: &Sample, record: &EventRecord) -> Vec<u8> {
    let rest = Rest {
        sample: Sample {
            labels: sample.labels.clone(),
            port: sample.port.clone(),
            peer: sample.peer.clone(),
            link: sample.link.clone(),
            phy: sample.phy.clone(),
            fabric: sample.fabric.clone(),
            ..Sample::default()
        },
        correlation_id: record.correlation_id.clone(),
        trace: record.trace,
    };
    bincode::serde::encode_to_vec(&rest, bincode::config::standard())
        .expect("in-memory bincode encoding of plain structs cannot fail")
}

fn gauges(s: &Sample) -> [Option<f64>; 4] {
    [
        s.latency_p99_us,
        s.utilization_pct,
        s.error_rate,
        s.bandwidth_gbps,
    ]
}

/// How hard `pack` works to make a segment small.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effort {
    /// pco's defaults: the archiver packs in the background.
    Archive,
    /// Less search, for a batch packed while its write waits (the PostgreSQL engine).
    Inline,
}

/// Pack the events of offsets `first_offset..=last_offset` (`events` in offset order; any
/// event that is not a packable raw sample is left out, to stay a record). `None` when none
/// can be packed.
pub fn pack(
    first_offset: u64,
    last_offset: u64,
    events: &[StoredEvent],
) -> Result<Option<Packed>, CodecError> {
    pack_with(first_offset, last_offset, events, Effort::Archive)
}

/// `pack`, with the effort given.
pub fn pack_with(
    first_offset: u64,
    last_offset: u64,
    events: &[StoredEvent],
    effort: Effort,
) -> Result<Option<Packed>, CodecError> {
    let chosen: Vec<(&StoredEvent, Sample)> = events
        .iter()
        .filter(|e| (first_offset..=last_offset).contains(&e.offset))
        .filter_map(|e| packable(e).map(|s| (e, s)))
        .collect();
    if chosen.is_empty() {
        return Ok(None);
    }
    let mut counters: Vec<Counter> = chosen
        .iter()
        .flat_map(|(_, s)| s.counters.keys().copied())
        .collect();
    counters.sort_unstable();
    counters.dedup();
    let mut w = Writer::new(counters.len());
    let mut streams: Vec<StreamSpan> = Vec::new();
    let mut codes: FxHashMap<&str, u32> = FxHashMap::default();
    let mut prev_offset = first_offset - 1;
    for (e, sample) in &chosen {
        let r = &e.record;
        let code = *codes.entry(r.stream_id.as_str()).or_insert_with(|| {
            streams.push(StreamSpan {
                stream_id: r.stream_id.clone(),
                first_seq: r.seq,
                last_seq: r.seq,
            });
            streams.len() as u32 - 1
        });
        streams[code as usize].last_seq = r.seq;
        w.event(code, e.offset - prev_offset - 1, r.seq, r.recorded_at_ms);
        prev_offset = e.offset;
        w.timestamp(code, sample.timestamp_ms);
        for (i, g) in gauges(sample).into_iter().enumerate() {
            w.gauge(code, i, g);
        }
        w.qp_errors(code, sample.qp_errors);
        for (i, c) in counters.iter().enumerate() {
            w.counter(code, i, sample.counters.get(c).copied());
        }
        w.rest(code, rest_of(sample, r));
    }
    let (columns, rests) = w.finish(effort)?;
    let body = Body {
        first_offset,
        last_offset,
        count: chosen.len() as u64,
        streams: front_code(streams.iter().map(|s| s.stream_id.as_str())),
        counters,
        columns: columns.into_iter().map(Blob).collect(),
        rests: rests.into_iter().map(Blob).collect(),
    };
    let bytes = frame(&body);
    // Lossless or nothing: the segment must give back exactly the records it replaces.
    let back = unpack(&bytes)?;
    let same = back.events.len() == chosen.len()
        && back
            .events
            .iter()
            .zip(&chosen)
            .all(|(b, (e, _))| b.offset == e.offset && b.record == e.record);
    if !same {
        return Err(CodecError::Frame(format!(
            "segment {first_offset}..={last_offset} does not give back the records packed"
        )));
    }
    Ok(Some(Packed {
        bytes,
        events: chosen
            .iter()
            .map(|(e, _)| (e.offset, e.record.stream_id.clone(), e.record.seq))
            .collect(),
        streams,
    }))
}

/// Read a segment back into its records.
pub fn unpack(bytes: &[u8]) -> Result<Segment, CodecError> {
    decode(bytes, None)
}

/// Read back only the records of one stream: the columns are still walked (each value is a
/// residual of the one before), but no other stream's sample is rebuilt, which is most of the
/// work of `unpack`.
pub fn unpack_stream(bytes: &[u8], stream_id: &str) -> Result<Segment, CodecError> {
    decode(bytes, Some(stream_id))
}

fn decode(bytes: &[u8], only: Option<&str>) -> Result<Segment, CodecError> {
    let (format, body) = unframe(bytes)?;
    let version = if format == SEGMENT_V1 {
        SAMPLE_V2
    } else {
        SAMPLE_VERSION
    };
    let ids = front_decode(&body.streams)?;
    let n = usize::try_from(body.count).map_err(|_| bad("count out of range"))?;
    let mut r = Reader::new(
        body.columns.into_iter().map(|b| b.0).collect(),
        body.counters.len(),
        n,
    )?;
    let rests = body
        .rests
        .iter()
        .map(|blob| {
            let config = bincode::config::standard();
            let rest = if format == SEGMENT_V1 {
                bincode::serde::decode_from_slice::<RestV1, _>(&blob.0, config).map(|(r, _)| Rest {
                    sample: r.sample.into(),
                    correlation_id: r.correlation_id,
                    trace: r.trace,
                })
            } else {
                bincode::serde::decode_from_slice::<Rest, _>(&blob.0, config).map(|(r, _)| r)
            };
            rest.map_err(|e| bad(&format!("rest: {e}")))
        })
        .collect::<Result<Vec<Rest>, CodecError>>()?;
    let wanted = |code: u32| only.is_none_or(|s| ids[code as usize] == s);
    let mut events = Vec::with_capacity(if only.is_some() { 0 } else { n });
    let mut by_code: Vec<Vec<u32>> = vec![Vec::new(); ids.len()];
    let mut offset = body.first_offset - 1;
    let mut counters = Vec::with_capacity(body.counters.len());
    for _ in 0..n {
        let (code, gap, seq, recorded_at_ms) = r.event(ids.len())?;
        offset += gap + 1;
        let rest = &rests[r.rest(code, rests.len())?];
        let timestamp_ms = r.timestamp(code)?;
        let [a, b, c, d] = [0, 1, 2, 3].map(|g| r.gauge(code, g));
        let gauges = [a?, b?, c?, d?];
        let qp_errors = r.qp_errors(code)?;
        counters.clear();
        for (k, counter) in body.counters.iter().enumerate() {
            if let Some(v) = r.counter(code, k)? {
                counters.push((*counter, v));
            }
        }
        if !wanted(code) {
            continue;
        }
        let stream_id = &ids[code as usize];
        let mut s = rest.sample.clone();
        s.stream_id = stream_id.clone();
        s.timestamp_ms = timestamp_ms;
        [
            s.latency_p99_us,
            s.utilization_pct,
            s.error_rate,
            s.bandwidth_gbps,
        ] = gauges;
        s.qp_errors = qp_errors;
        s.counters.extend(counters.iter().copied());
        let corr = rest.correlation_id.clone();
        let record = record_of(
            stream_id,
            seq,
            recorded_at_ms,
            corr,
            rest.trace,
            &s,
            version,
        );
        by_code[code as usize].push(events.len() as u32);
        events.push(StoredEvent { offset, record });
    }
    if offset > body.last_offset {
        return Err(bad("an offset past the segment's range"));
    }
    Ok(Segment {
        first_offset: body.first_offset,
        last_offset: body.last_offset,
        events,
        codes: ids.into_iter().zip(0..).collect(),
        by_code,
    })
}

fn bad(what: &str) -> CodecError {
    CodecError::Frame(format!("segment: {what}"))
}

fn frame(body: &Body) -> Vec<u8> {
    let mut out = vec![SEGMENT_VERSION, 0, 0, 0, 0];
    bincode::serde::encode_into_std_write(body, &mut out, bincode::config::standard())
        .expect("in-memory bincode encoding of plain structs cannot fail");
    let crc = crc32fast::hash(&out[5..]);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The segment's format and body.
fn unframe(bytes: &[u8]) -> Result<(u8, Body), CodecError> {
    if bytes.len() < 5 {
        return Err(bad(&format!(
            "{} bytes is shorter than its header",
            bytes.len()
        )));
    }
    if bytes[0] != SEGMENT_VERSION && bytes[0] != SEGMENT_V1 {
        return Err(bad(&format!("unknown version {}", bytes[0])));
    }
    let crc = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[5..]) != crc {
        return Err(bad("checksum mismatch"));
    }
    match bincode::serde::decode_from_slice::<Body, _>(&bytes[5..], bincode::config::standard()) {
        Ok((body, read)) if read == bytes.len() - 5 => Ok((bytes[0], body)),
        Ok(_) => Err(bad("trailing bytes")),
        Err(e) => Err(bad(&e.to_string())),
    }
}

/// Each id as the bytes it shares with the previous one and the rest (ids of one switch
/// share most of their name).
fn front_code<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<(u32, String)> {
    let mut prev = "";
    ids.map(|id| {
        let mut shared = prev
            .bytes()
            .zip(id.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        while !id.is_char_boundary(shared) {
            shared -= 1;
        }
        prev = id;
        (shared as u32, id[shared..].to_string())
    })
    .collect()
}

fn front_decode(coded: &[(u32, String)]) -> Result<Vec<String>, CodecError> {
    let mut out: Vec<String> = Vec::with_capacity(coded.len());
    for (shared, rest) in coded {
        let prev = out.last().map_or("", String::as_str);
        let head = prev
            .get(..*shared as usize)
            .ok_or_else(|| bad("a stream id shares more than its predecessor has"))?;
        out.push(format!("{head}{rest}"));
    }
    Ok(out)
}
