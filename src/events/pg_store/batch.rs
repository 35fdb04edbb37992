//! Raw samples in batches: a group commit's packable samples go in as one row per partition
//! (`PARTS`, by a stable hash of the stream id), in the embedded engine's segment encoding
//! (`segment::pack`: columns of residuals, compressed), instead of one row per sample. Every
//! other event (anomalies, incidents, insights, a sample that cannot be packed) stays a row of
//! `events`. Reads merge the two, by offset or by seq.
//!
//! This file is the pure part: which partition a stream is in, how a write's appends split into
//! batches and rows, the epochs of a batch's events, and which of a window's events a read
//! returns.

use crate::events::segment::{self, Segment};
use crate::events::store::{decode_stored, merge_sorted, NewEvent, StoreError, StoredEvent};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Partitions of the batches: a stream's history is read from its partition only. Fixed with
/// the data: a store's batches were written under it (8 partitions, against 16: 56 bytes per
/// sample on disk instead of 59–61 in `scripts/bench-cluster`, batches twice as large).
pub const PARTS: u64 = 8;
const PART_SEED: &[u8] = b"ibsight-part:";

pub fn part_of(stream_id: &str) -> i16 {
    (crate::hash::fnv1a64(PART_SEED.iter().copied().chain(stream_id.bytes())) % PARTS) as i16
}

/// One batch row, ready to insert.
#[derive(Debug)]
pub struct BatchRow {
    pub part: i16,
    pub first_off: i64,
    pub last_off: i64,
    pub data: Vec<u8>,
    /// The lease epoch of each event, as runs: `[epoch, count, epoch, count, …]`.
    pub epochs: Vec<i64>,
}

/// How a write's appends are stored.
#[derive(Debug, Default)]
pub struct Split {
    pub batches: Vec<BatchRow>,
    /// Indexes (into the appends) of the events that stay rows.
    pub rows: Vec<usize>,
    /// Each stream with a packed event, and the first offset packed for it here.
    pub packed: Vec<(String, u64)>,
}

/// One append with the offset it took and the epoch it is written under.
pub struct Placed<'a> {
    pub event: &'a NewEvent,
    pub offset: u64,
    pub epoch: i64,
}

/// Split `appends` (in offset order) into one batch per partition of their packable samples,
/// and the rest.
pub fn split(appends: &[Placed<'_>]) -> Result<Split, StoreError> {
    let mut by_part: Vec<Vec<StoredEvent>> = vec![Vec::new(); PARTS as usize];
    let mut epoch_of: rustc_hash::FxHashMap<u64, i64> = rustc_hash::FxHashMap::default();
    for a in appends {
        by_part[part_of(&a.event.stream_id) as usize]
            .push(decode_stored(a.offset, &a.event.frame)?);
        epoch_of.insert(a.offset, a.epoch);
    }
    let mut out = Split::default();
    let mut packed_offsets = rustc_hash::FxHashSet::default();
    for (part, events) in by_part.iter().enumerate() {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            continue;
        };
        // A batch that would not give back exactly what was packed stays rows.
        let packed = match segment::pack_with(
            first.offset,
            last.offset,
            events,
            segment::Effort::Inline,
        ) {
            Ok(Some(packed)) => packed,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, part, "a batch could not be packed; its events stay rows");
                continue;
            }
        };
        let mut epochs = Runs::default();
        let mut seen = rustc_hash::FxHashSet::default();
        for (offset, stream, _) in &packed.events {
            epochs.push(epoch_of[offset]);
            packed_offsets.insert(*offset);
            if seen.insert(stream.as_str()) {
                out.packed.push((stream.clone(), *offset));
            }
        }
        out.batches.push(BatchRow {
            part: part as i16,
            first_off: packed.events.first().map(|e| e.0).unwrap_or_default() as i64,
            last_off: packed.events.last().map(|e| e.0).unwrap_or_default() as i64,
            data: packed.bytes,
            epochs: epochs.0,
        });
    }
    out.rows = (0..appends.len())
        .filter(|i| !packed_offsets.contains(&appends[*i].offset))
        .collect();
    Ok(out)
}

/// Epochs as runs, `[epoch, count, …]`.
#[derive(Debug, Default)]
pub struct Runs(pub Vec<i64>);

impl Runs {
    pub fn push(&mut self, epoch: i64) {
        match self.0.len() {
            n if n >= 2 && self.0[n - 2] == epoch => self.0[n - 1] += 1,
            _ => self.0.extend([epoch, 1]),
        }
    }

    /// The epoch of each event, in order.
    pub fn expand(runs: &[i64]) -> Vec<i64> {
        runs.chunks(2)
            .flat_map(|r| std::iter::repeat_n(r[0], r.get(1).copied().unwrap_or(0) as usize))
            .collect()
    }
}

/// A batch again without the events at `removed`: `None` when none is left.
pub fn without(
    data: &[u8],
    epochs: &[i64],
    removed: &rustc_hash::FxHashSet<u64>,
) -> Result<Option<BatchRow>, StoreError> {
    let seg = unpack(data)?;
    let all = Runs::expand(epochs);
    let mut kept = Vec::new();
    let mut runs = Runs::default();
    for (i, e) in seg.events.iter().enumerate() {
        if !removed.contains(&e.offset) {
            runs.push(all.get(i).copied().unwrap_or(0));
            kept.push(e.clone());
        }
    }
    let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
        return Ok(None);
    };
    let (first, last) = (first.offset, last.offset);
    let packed = segment::pack_with(first, last, &kept, segment::Effort::Inline)
        .map_err(|e| StoreError::Engine(format!("postgres: packing a batch again: {e}")))?
        .filter(|p| p.events.len() == kept.len())
        .ok_or_else(|| {
            StoreError::Engine(format!(
                "postgres: the batch {first}..={last} could not be packed again"
            ))
        })?;
    let part = part_of(&kept[0].record.stream_id);
    Ok(Some(BatchRow {
        part,
        first_off: first as i64,
        last_off: last as i64,
        data: packed.bytes,
        epochs: runs.0,
    }))
}

pub fn unpack(data: &[u8]) -> Result<Segment, StoreError> {
    segment::unpack(data).map_err(|e| StoreError::Engine(format!("postgres: a batch: {e}")))
}

pub fn unpack_stream(data: &[u8], stream_id: &str) -> Result<Segment, StoreError> {
    segment::unpack_stream(data, stream_id)
        .map_err(|e| StoreError::Engine(format!("postgres: a batch: {e}")))
}

/// The events a read of offsets `from..=to` returns, at most `limit`: `rows` (in offset order,
/// cut at `limit` by the query) merged with the batches' events in the window.
pub fn window(
    rows: Vec<StoredEvent>,
    batches: &[Arc<Segment>],
    from: u64,
    to: u64,
    limit: usize,
) -> Vec<StoredEvent> {
    let mut packed: Vec<StoredEvent> = batches
        .iter()
        .flat_map(|s| s.events.iter())
        .filter(|e| (from..=to).contains(&e.offset))
        .cloned()
        .collect();
    packed.sort_by_key(|e| e.offset);
    merge_sorted(rows, packed, |e| e.offset, limit)
}

/// The first offset after `to` some batch of the window still holds.
pub fn next_after(batches: &[Arc<Segment>], to: u64) -> Option<u64> {
    batches
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.offset))
        .filter(|o| *o > to)
        .min()
}

/// Batches decoded lately (a tailer's pages go through the same ones), by first offset and
/// checksum: a batch rewritten by retention is decoded again.
#[derive(Default)]
pub struct Decoded(Mutex<VecDeque<(DecodedKey, Arc<Segment>)>>);

/// A batch's first offset and checksum.
type DecodedKey = (i64, u32);

const DECODED_KEPT: usize = 64;

impl Decoded {
    pub fn get(&self, first_off: i64, data: &[u8]) -> Result<Arc<Segment>, StoreError> {
        let key = (first_off, checksum(data));
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, seg)) = kept.iter().find(|(k, _)| *k == key) {
            return Ok(seg.clone());
        }
        let seg = Arc::new(unpack(data)?);
        if kept.len() >= DECODED_KEPT {
            kept.pop_front();
        }
        kept.push_back((key, seg.clone()));
        Ok(seg)
    }
}

/// The segment frame's checksum (bytes 1..5), or the length when it is too short to have one.
fn checksum(data: &[u8]) -> u32 {
    data.get(1..5)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(data.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::codec::EventRecord;

    const PINNED_PARTS: [i16; 4] = [6, 4, 5, 7];

    fn sample(stream: &str, seq: u64) -> NewEvent {
        let s = crate::sample::Sample {
            stream_id: stream.into(),
            timestamp_ms: seq as i64 * 1000,
            utilization_pct: Some(seq as f64),
            ..Default::default()
        };
        NewEvent::new(&EventRecord {
            stream_id: stream.into(),
            seq,
            recorded_at_ms: 5,
            event_type: "MetricObserved".into(),
            schema_version: crate::events::codec::METRIC_OBSERVED.1,
            correlation_id: None,
            payload: crate::events::codec::encode_payload(
                &crate::events::StreamEvent::MetricObserved(
                    crate::events::types::MetricObservedV3 { sample: s },
                ),
            ),
            trace: None,
        })
    }

    fn other(stream: &str, seq: u64) -> NewEvent {
        NewEvent::new(&EventRecord {
            stream_id: stream.into(),
            seq,
            recorded_at_ms: 5,
            event_type: "AnomalyDetected".into(),
            schema_version: 1,
            correlation_id: None,
            payload: vec![1, 2, 3],
            trace: None,
        })
    }

    fn placed(events: &[NewEvent]) -> Vec<Placed<'_>> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| Placed {
                event: e,
                offset: 10 + i as u64 * 2,
                epoch: if i < 3 { 4 } else { 5 },
            })
            .collect()
    }

    fn all_back(split: &Split, events: &[NewEvent], placed: &[Placed<'_>]) -> Vec<StoredEvent> {
        let mut back: Vec<StoredEvent> = split
            .batches
            .iter()
            .flat_map(|b| unpack(&b.data).expect("unpack").events)
            .collect();
        back.extend(
            split
                .rows
                .iter()
                .map(|i| decode_stored(placed[*i].offset, &events[*i].frame).expect("row")),
        );
        back.sort_by_key(|e| e.offset);
        back
    }

    #[test]
    fn given_samples_and_other_events_when_split_then_samples_are_batched_per_partition_and_read_back_as_written(
    ) {
        let events: Vec<NewEvent> = (0..40)
            .map(|i| {
                let stream = format!("port/{}", i % 20);
                if i == 7 {
                    other(&stream, 1 + i / 20)
                } else {
                    sample(&stream, 1 + i / 20)
                }
            })
            .collect();
        let placed = placed(&events);
        let split = split(&placed).expect("split");
        assert_eq!(split.rows, vec![7], "only the anomaly stays a row");
        assert!(split.batches.len() > 1 && split.batches.len() <= PARTS as usize);
        for b in &split.batches {
            let seg = unpack(&b.data).expect("unpack");
            assert!(seg
                .events
                .iter()
                .all(|e| part_of(&e.record.stream_id) == b.part));
            assert_eq!(
                seg.events.first().map(|e| e.offset as i64),
                Some(b.first_off)
            );
            assert_eq!(seg.events.last().map(|e| e.offset as i64), Some(b.last_off));
            assert_eq!(Runs::expand(&b.epochs).len(), seg.events.len());
        }
        let back = all_back(&split, &events, &placed);
        for (b, (p, e)) in back.iter().zip(placed.iter().zip(&events)) {
            assert_eq!(b.offset, p.offset);
            assert_eq!(b, &decode_stored(p.offset, &e.frame).expect("decode"));
        }
        let firsts: std::collections::BTreeMap<_, _> = split.packed.iter().cloned().collect();
        assert_eq!(firsts.get("port/3"), Some(&16), "its first sample's offset");
    }

    #[test]
    fn a_streams_partition_never_changes() {
        // The batches on disk were written under these: a change here loses every stream's
        // packed history to its reads.
        let got: Vec<i16> = ["sw0001/p01", "sw0162/p07", "host-a/mlx5_0/1", ""]
            .iter()
            .map(|s| part_of(s))
            .collect();
        assert_eq!(got, PINNED_PARTS);
    }

    #[test]
    fn given_a_batch_when_events_are_removed_then_the_rest_and_their_epochs_stay() {
        let events: Vec<NewEvent> = (1..=6).map(|seq| sample("a", seq)).collect();
        let placed = placed(&events);
        let split = split(&placed).expect("split");
        let b = &split.batches[0];
        assert_eq!(Runs::expand(&b.epochs), vec![4, 4, 4, 5, 5, 5]);
        let removed = [10u64, 12, 18].into_iter().collect();
        let again = without(&b.data, &b.epochs, &removed)
            .expect("repack")
            .expect("some left");
        let seg = unpack(&again.data).expect("unpack");
        let offsets: Vec<u64> = seg.events.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, vec![14, 16, 20]);
        assert_eq!((again.first_off, again.last_off), (14, 20));
        assert_eq!(Runs::expand(&again.epochs), vec![4, 5, 5]);
        let all = (10..=20).collect();
        assert!(without(&b.data, &b.epochs, &all).expect("repack").is_none());
    }

    #[test]
    fn given_a_window_then_rows_and_batch_events_in_it_merge_in_offset_order() {
        let events: Vec<NewEvent> = (1..=5).map(|seq| sample("a", seq)).collect();
        let placed = placed(&events); // offsets 10, 12, 14, 16, 18
        let split = split(&placed).expect("split");
        let seg = Arc::new(unpack(&split.batches[0].data).expect("unpack"));
        let row = decode_stored(13, &other("b", 1).frame).expect("row");
        let got = window(vec![row], std::slice::from_ref(&seg), 12, 16, 10);
        let offsets: Vec<u64> = got.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, vec![12, 13, 14, 16]);
        assert_eq!(next_after(std::slice::from_ref(&seg), 16), Some(18));
        assert_eq!(next_after(&[seg], 18), None);
    }
}
