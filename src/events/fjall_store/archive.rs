//! Packing old raw samples into segments (`super::super::segment`), and reading them back.
//!
//! The archiver takes the offsets after the last it packed, a segment's worth at a time, once
//! the newest of them is old enough, and packs the raw samples a snapshot of their stream
//! covers (a stream recovering reads only what follows its snapshot, one record at a time). In one atomic batch it stores the segment, indexes it per
//! stream, and removes the records and index entries it replaces. Events it cannot pack (other
//! types, older versions) stay records, so reads merge the two. Readers hold `layout` (the
//! directory of segments) shared while they read both, and a batch that moves events holds it
//! exclusive, so a read never sees an event in both places or in neither.

use super::FjallStore;
use crate::events::segment::{self, Segment};
use crate::events::store::engine_err;
use crate::events::store::{keys, EventStore, SnapshotCover, StoreError, StoredEvent, WriteOp};
use fjall::{OwnedWriteBatch, PersistMode};
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Checkpoint key: offsets up to this one have been through the archiver.
pub(super) const ARCHIVED_UNTIL: &[u8] = b"\0archived_until";
/// Raw samples per segment: 65,536 keeps a decoded segment near 16 MB, and gives each of
/// 10,000 streams six or seven samples to delta-code in it.
pub const SEGMENT_EVENTS: u64 = 65_536;

pub(super) struct State {
    pub(super) segment_events: u64,
    pub(super) enabled: bool,
    until: AtomicU64,
    /// One archiver at a time.
    archiving: Mutex<()>,
    /// Held by a write that removes events, and by the archiver while it commits.
    commit: Mutex<()>,
    /// Bumped by every write that removes events: an archiver that read its records before
    /// such a write packs them again.
    removals: AtomicU64,
    /// The segments, first offset → last offset. Readers hold it shared while they read
    /// records and segments; a batch that moves events between them holds it exclusive.
    pub(super) layout: RwLock<Directory>,
    /// The last segment decoded (reads go through a segment in order).
    decoded: Mutex<Option<Arc<Segment>>>,
}

/// Each segment's first offset → its last.
pub(super) type Directory = std::collections::BTreeMap<u64, u64>;

impl State {
    pub(super) fn new(until: u64, directory: Directory) -> State {
        State {
            segment_events: SEGMENT_EVENTS,
            enabled: true,
            until: AtomicU64::new(until),
            archiving: Mutex::new(()),
            commit: Mutex::new(()),
            removals: AtomicU64::new(0),
            layout: RwLock::new(directory),
            decoded: Mutex::new(None),
        }
    }

    /// Taken by a write with removals, for the whole write.
    pub(super) fn removing(&self) -> MutexGuard<'_, ()> {
        let guard = self.commit.lock().expect("archive commit lock poisoned");
        self.removals.fetch_add(1, Ordering::AcqRel);
        guard
    }

    pub(super) fn forget_decoded(&self) {
        *self.decoded.lock().expect("segment cache poisoned") = None;
    }

    fn until(&self) -> u64 {
        self.until.load(Ordering::Acquire)
    }
}

/// The first offset of the segment holding `offset`, if one does.
fn holding(directory: &Directory, offset: u64) -> Option<u64> {
    directory
        .range(..=offset)
        .next_back()
        .filter(|(_, last)| **last >= offset)
        .map(|(first, _)| *first)
}

/// A segment index entry's value: the segment's first offset and the stream's last seq in it,
/// as two LEB128 varints (an entry per stream per segment, so every byte counts).
fn index_value(first_offset: u64, last_seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(20);
    for mut n in [first_offset, last_seq] {
        while n >= 0x80 {
            v.push(n as u8 | 0x80);
            n >>= 7;
        }
        v.push(n as u8);
    }
    v
}

fn parse_index_value(v: &[u8]) -> Result<(u64, u64), StoreError> {
    let bad = || engine_err(format!("segment index value {v:02x?} is not two varints"));
    let mut out = [0u64; 2];
    let mut bytes = v.iter();
    for n in &mut out {
        let mut shift = 0;
        loop {
            let b = *bytes.next().ok_or_else(bad)?;
            if shift > 63 {
                return Err(bad());
            }
            *n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
    }
    match bytes.next() {
        None => Ok((out[0], out[1])),
        Some(_) => Err(bad()),
    }
}

impl FjallStore {
    /// Pack whole segments of offsets whose newest event was recorded before
    /// `recorded_before_ms`; with `None`, pack everything there is, the last segment partly.
    pub(super) fn archive_until(&self, recorded_before_ms: Option<i64>) -> Result<u64, StoreError> {
        let _one = self
            .archive
            .archiving
            .lock()
            .expect("archiver lock poisoned");
        let mut packed_total = 0;
        if !self.archive.enabled {
            return Ok(0);
        }
        loop {
            let first = self.archive.until() + 1;
            let head = self.last_offset();
            let full = first + self.archive.segment_events - 1;
            let last = match (full <= head, recorded_before_ms) {
                (true, _) => full,
                (false, None) if first <= head => head,
                (false, _) => break,
            };
            let removals = self.archive.removals.load(Ordering::Acquire);
            let events = self.read_records(first, last, usize::MAX)?;
            if let (Some(cut), Some(newest)) = (recorded_before_ms, events.last()) {
                if newest.record.recorded_at_ms >= cut {
                    break;
                }
            }
            let events = self.covered_by_snapshots(events)?;
            let packed = segment::pack(first, last, &events).unwrap_or_else(|e| {
                tracing::warn!(error = %e, first, last, "segment not packed; its samples stay records");
                None
            });
            let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
            if let Some(p) = &packed {
                self.put_segment(&mut batch, first, p);
                for (offset, stream_id, seq) in &p.events {
                    batch.remove(&self.records, keys::offset(*offset));
                    batch.remove(&self.index, keys::stream_seq(stream_id, *seq));
                }
            }
            if packed.is_some() {
                batch.insert(&self.segment_dir, keys::offset(first), keys::offset(last));
            }
            batch.insert(&self.checkpoints, ARCHIVED_UNTIL, keys::offset(last));
            let _commit = self
                .archive
                .commit
                .lock()
                .expect("archive commit lock poisoned");
            if self.archive.removals.load(Ordering::Acquire) != removals {
                continue; // retention removed events meanwhile: read them again
            }
            let mut directory = self.archive.layout.write().expect("layout lock poisoned");
            batch.commit().map_err(engine_err)?;
            if packed.is_some() {
                directory.insert(first, last);
            }
            self.archive.until.store(last, Ordering::Release);
            packed_total += packed.map_or(0, |p| p.events.len() as u64);
        }
        Ok(packed_total)
    }

    /// Add a segment starting at `first`, and its entry per stream, to `batch`.
    fn put_segment(&self, batch: &mut OwnedWriteBatch, first: u64, p: &segment::Packed) {
        batch.insert(&self.segments, keys::offset(first), p.bytes.as_slice());
        for span in &p.streams {
            batch.insert(
                &self.segment_index,
                keys::stream_seq(&span.stream_id, span.first_seq),
                index_value(first, span.last_seq),
            );
        }
    }

    /// The events a snapshot of their stream covers. Only those are packed: a stream
    /// recovering reads the events after its snapshot, and those must stay cheap to read (one
    /// record each, not a segment decoded per stream). The others stay records.
    fn covered_by_snapshots(
        &self,
        events: Vec<StoredEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut cover = SnapshotCover::new(self);
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            if cover.covers(&e.record.stream_id, e.record.seq)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The decoded segment kept, when it is the one starting at `first_offset`.
    fn kept_segment(&self, first_offset: u64) -> Option<Arc<Segment>> {
        let decoded = self.archive.decoded.lock().expect("segment cache poisoned");
        decoded
            .as_ref()
            .filter(|s| s.first_offset == first_offset)
            .cloned()
    }

    /// Decode the segment starting at `first_offset`, or with `only`, that stream's part of it.
    fn decode_segment(
        &self,
        first_offset: u64,
        only: Option<&str>,
    ) -> Result<Option<Segment>, StoreError> {
        let Some(bytes) = self
            .segments
            .get(keys::offset(first_offset))
            .map_err(engine_err)?
        else {
            return Ok(None);
        };
        let decoded = match only {
            Some(stream_id) => segment::unpack_stream(&bytes, stream_id),
            None => segment::unpack(&bytes),
        };
        decoded.map(Some).map_err(|source| StoreError::Corrupt {
            offset: first_offset,
            source,
        })
    }

    /// One stream's part of the segment starting at `first_offset`: from the decoded segment
    /// kept, else decoded for that stream alone (not kept: a stream's history spans many
    /// segments, and each is read once).
    fn stream_segment(
        &self,
        first_offset: u64,
        stream_id: &str,
    ) -> Result<Option<Arc<Segment>>, StoreError> {
        if let Some(kept) = self.kept_segment(first_offset) {
            return Ok(Some(kept));
        }
        Ok(self
            .decode_segment(first_offset, Some(stream_id))?
            .map(Arc::new))
    }

    /// The segment starting at `first_offset`, decoded (the last one is kept).
    fn segment_at(&self, first_offset: u64) -> Result<Option<Arc<Segment>>, StoreError> {
        if let Some(kept) = self.kept_segment(first_offset) {
            return Ok(Some(kept));
        }
        let Some(segment) = self.decode_segment(first_offset, None)? else {
            return Ok(None);
        };
        let segment = Arc::new(segment);
        *self.archive.decoded.lock().expect("segment cache poisoned") = Some(segment.clone());
        Ok(Some(segment))
    }

    /// Packed events with offset ≥ `from`, at most `limit`, in offset order.
    pub(super) fn read_packed_from(
        &self,
        directory: &Directory,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::new();
        let start = holding(directory, from).unwrap_or(from);
        for (first, _) in directory.range(start..) {
            let Some(segment) = self.segment_at(*first)? else {
                continue;
            };
            let at = segment.events.partition_point(|e| e.offset < from);
            let take = (limit - out.len()).min(segment.events.len() - at);
            out.extend_from_slice(&segment.events[at..at + take]);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A stream's packed events with seq ≥ `from_seq`, at most `limit`, in seq order.
    pub(super) fn read_stream_packed(
        &self,
        stream_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut firsts = Vec::new();
        let prefix = keys::stream_prefix(stream_id);
        let at = keys::stream_seq(stream_id, from_seq);
        if let Some(guard) = self.segment_index.range(prefix..=at).next_back() {
            firsts.push(guard.value().map_err(engine_err)?);
        }
        if from_seq < u64::MAX {
            let after = keys::stream_seq(stream_id, from_seq + 1);
            let end = keys::stream_seq(stream_id, u64::MAX);
            for guard in self.segment_index.range(after..=end) {
                firsts.push(guard.value().map_err(engine_err)?);
            }
        }
        let mut out = Vec::new();
        for value in firsts {
            let (first, last_seq) = parse_index_value(&value)?;
            if last_seq < from_seq {
                continue;
            }
            let Some(segment) = self.stream_segment(first, stream_id)? else {
                continue;
            };
            for e in segment.stream_events(stream_id) {
                if out.len() >= limit {
                    return Ok(out);
                }
                if e.record.seq >= from_seq {
                    out.push(e.clone());
                }
            }
        }
        Ok(out)
    }

    /// The last seq of a stream's packed events.
    pub(super) fn packed_head(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        match self
            .segment_index
            .prefix(keys::stream_prefix(stream_id))
            .next_back()
        {
            Some(guard) => Ok(Some(
                parse_index_value(&guard.value().map_err(engine_err)?)?.1,
            )),
            None => Ok(None),
        }
    }

    /// Add to `batch` the rewrite of every segment a `Remove` of `ops` reaches into (the
    /// records' removal is already in it). The segments it changed, and of those the ones it
    /// emptied; `None` when it changed none.
    pub(super) fn remove_packed(
        &self,
        batch: &mut OwnedWriteBatch,
        ops: &[WriteOp],
    ) -> Result<Option<Vec<u64>>, StoreError> {
        let mut by_segment: FxHashMap<u64, FxHashSet<u64>> = FxHashMap::default();
        {
            let directory = self.archive.layout.read().expect("layout lock poisoned");
            for op in ops {
                if let WriteOp::Remove { offset, .. } = op {
                    if let Some(first) = holding(&directory, *offset) {
                        by_segment.entry(first).or_default().insert(*offset);
                    }
                }
            }
        }
        let mut changed = false;
        let mut emptied = Vec::new();
        for (first, removed) in by_segment {
            let Some(segment) = self.segment_at(first)? else {
                continue;
            };
            if !segment.events.iter().any(|e| removed.contains(&e.offset)) {
                continue;
            }
            changed = true;
            let mut old_spans: FxHashMap<&str, u64> = FxHashMap::default();
            for e in &segment.events {
                old_spans
                    .entry(e.record.stream_id.as_str())
                    .or_insert(e.record.seq);
            }
            for (stream_id, first_seq) in old_spans {
                batch.remove(&self.segment_index, keys::stream_seq(stream_id, first_seq));
            }
            let kept: Vec<StoredEvent> = segment
                .events
                .iter()
                .filter(|e| !removed.contains(&e.offset))
                .cloned()
                .collect();
            let repacked = segment::pack(segment.first_offset, segment.last_offset, &kept)
                .map_err(|source| StoreError::Corrupt {
                    offset: first,
                    source,
                })?;
            match repacked {
                Some(p) if p.events.len() == kept.len() => self.put_segment(batch, first, &p),
                None if kept.is_empty() => {
                    batch.remove(&self.segments, keys::offset(first));
                    batch.remove(&self.segment_dir, keys::offset(first));
                    emptied.push(first);
                }
                _ => {
                    return Err(engine_err(format!(
                        "segment {first}: repacking after a removal would drop samples"
                    )))
                }
            }
        }
        Ok(changed.then_some(emptied))
    }
}

#[cfg(test)]
impl FjallStore {
    /// How many events the segments hold.
    pub(crate) fn packed_events(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for guard in self.segments.iter() {
            let (_, bytes) = guard.into_inner().map_err(engine_err)?;
            n += segment::unpack(&bytes).map_err(engine_err)?.events.len();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_value_round_trips_and_a_bad_one_is_an_error() {
        for (a, b) in [
            (0, 0),
            (1, 127),
            (128, 16_384),
            (u64::MAX, 3),
            (65_537, u64::MAX),
        ] {
            assert_eq!(parse_index_value(&index_value(a, b)).unwrap(), (a, b));
        }
        assert!(parse_index_value(&[0x80]).is_err());
        assert!(parse_index_value(&[1, 2, 3]).is_err());
        assert!(parse_index_value(&[0xff; 11]).is_err());
    }
}
