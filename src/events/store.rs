//! The `EventStore` trait: what every storage engine provides, and nothing engine-specific.
//!
//! Layout (both engines): one keyspace of records keyed by big-endian global offset, one
//! index `(stream_id, 0x00, seq BE) → offset`, one keyspace of snapshots and one of
//! checkpoints. Never a tree per stream. Stream ids never contain 0x00, so the separator
//! keeps one stream's keys from running into another's.

use super::codec::{self, CodecError, EventRecord};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("corrupt record at offset {offset}: {source}")]
    Corrupt { offset: u64, source: CodecError },
    #[error("stream {stream_id}: expected seq {expected}, got {got} (another writer appended)")]
    SeqConflict {
        stream_id: String,
        expected: u64,
        got: u64,
    },
    #[error("event writer stopped")]
    WriterStopped,
    /// A write needed a lease this node no longer holds (another node took the shard).
    #[error("fenced: lease {lease}: {reason}")]
    Fenced { lease: String, reason: String },
    #[error("cannot open store at {path}: {reason}")]
    Open { path: String, reason: String },
}

/// A new event ready to append: its record, already framed, plus the keys the index needs.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub stream_id: String,
    pub seq: u64,
    pub frame: Vec<u8>,
}

impl NewEvent {
    pub fn new(record: &EventRecord) -> NewEvent {
        NewEvent {
            stream_id: record.stream_id.clone(),
            seq: record.seq,
            frame: codec::encode_frame(record),
        }
    }
}

/// An actor's state at `seq`, so recovery replays only the tail after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub stream_id: String,
    pub seq: u64,
    pub state: Vec<u8>,
}

/// One operation of an atomic, durable write.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Append(NewEvent),
    Snapshot(Snapshot),
    Checkpoint {
        name: String,
        offset: u64,
    },
    /// Retention: drop an event and its index entry.
    Remove {
        offset: u64,
        stream_id: String,
        seq: u64,
    },
    /// Put an entry of an embedded read view (written with its projection's checkpoint).
    PutView {
        view: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Remove an entry of an embedded read view (its time to live ended).
    RemoveView {
        view: String,
        key: Vec<u8>,
    },
}

/// A view entry: (key, value).
pub type ViewEntry = (Vec<u8>, Vec<u8>);

/// An event read back, with its global offset.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub offset: u64,
    pub record: EventRecord,
}

pub trait EventStore: Send + Sync + 'static {
    /// Apply `ops` atomically and durably (fsync before returning). Returns the global offsets
    /// assigned to the appends, in order. Offsets start at 1 and have no gaps.
    fn write(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError>;

    /// Whether this node may write `ops` at all (a cluster node: holds the leases they need).
    /// The writer asks before batching a request, so one refused request does not fail the
    /// others of its group commit; `write` checks again, in its transaction.
    fn admit(&self, _ops: &[WriteOp]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Events of one stream with seq ≥ `from_seq`, in seq order.
    fn read_stream(
        &self,
        stream_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Events of all streams with offset ≥ `from_offset`, in offset order (tailing).
    fn read_from(&self, from_offset: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The highest seq a stream ever had, 0 when it never had an event. Retention may have
    /// removed that event, but only up to the stream's snapshot, so the head is the later of
    /// the index's last seq and the snapshot's seq (`head_of`): a stream idle past retention
    /// goes on at the seq it had, never at one its actor already used.
    fn stream_head(&self, stream_id: &str) -> Result<u64, StoreError>;

    /// What rebuilding a stream needs, at once: its snapshot, up to `limit` events after it,
    /// and its head. Engines with a round trip per read (PostgreSQL) answer in one.
    fn load_stream(&self, stream_id: &str, limit: usize) -> Result<StreamLoad, StoreError> {
        let snapshot = self.snapshot(stream_id)?;
        let from = snapshot.as_ref().map_or(0, |s| s.seq) + 1;
        Ok(StreamLoad {
            events: self.read_stream(stream_id, from, limit)?,
            head: self.stream_head(stream_id)?,
            snapshot,
        })
    }

    /// The event at exactly `seq`, `None` when it is not (or no longer) in the log.
    fn read_event(&self, stream_id: &str, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self
            .read_stream(stream_id, seq, 1)?
            .pop()
            .filter(|e| e.record.seq == seq))
    }

    /// The highest offset ever assigned, 0 for an empty store.
    fn last_offset(&self) -> u64;

    fn snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError>;

    fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError>;

    /// Entries of an embedded view in key order, up to `limit`, starting at `from_key`
    /// (inclusive; empty = the start). Returns (key, value) pairs.
    fn scan_view(
        &self,
        view: &str,
        from_key: &[u8],
        limit: usize,
    ) -> Result<Vec<ViewEntry>, StoreError>;

    /// Bytes the store uses on disk.
    fn disk_bytes(&self) -> u64;

    /// Bytes on disk by part (keyspace, journal), for benchmarks; empty when the engine does
    /// not tell.
    fn disk_usage(&self) -> Vec<DiskPart> {
        Vec::new()
    }

    /// Pack the raw samples recorded before `recorded_before_ms` into compressed segments, a
    /// whole segment at a time; returns how many samples it packed. Reads return packed
    /// samples as they were written. Engines without packing do nothing.
    fn archive(&self, _recorded_before_ms: i64) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Compact the store now (packing every raw sample it can), as it would eventually on its own (benchmarks measure the
    /// settled size). Engines without an explicit compaction do nothing.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Engine name, for logs and benchmarks.
    fn engine(&self) -> &'static str;
}

/// One part of a store's disk usage.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskPart {
    pub name: &'static str,
    pub kind: DiskKind,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DiskKind {
    /// The events themselves and their indexes: grows with what is retained.
    Log,
    /// Per-stream and per-projection state (snapshots, checkpoints, views).
    State,
    /// The write-ahead journal: bounded, whatever is retained.
    Journal,
}

/// A stream's snapshot, the first events after it, and its head (`EventStore::load_stream`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamLoad {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<StoredEvent>,
    pub head: u64,
}

/// Whether a snapshot of an event's stream covers it (its seq is at or below the snapshot's),
/// each stream's snapshot looked up once. Retention removes, and packing packs, only what is
/// covered: a stream rebuilds from its snapshot and the events after it.
pub struct SnapshotCover<'a> {
    store: &'a dyn EventStore,
    seqs: rustc_hash::FxHashMap<String, u64>,
}

impl<'a> SnapshotCover<'a> {
    pub fn new(store: &'a dyn EventStore) -> SnapshotCover<'a> {
        SnapshotCover {
            store,
            seqs: Default::default(),
        }
    }

    pub fn covers(&mut self, stream_id: &str, seq: u64) -> Result<bool, StoreError> {
        let covered = match self.seqs.get(stream_id) {
            Some(covered) => *covered,
            None => {
                let covered = self.store.snapshot(stream_id)?.map_or(0, |s| s.seq);
                self.seqs.insert(stream_id.to_string(), covered);
                covered
            }
        };
        Ok(seq <= covered)
    }
}

/// An engine's own error, as the store reports it.
pub fn engine_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

/// A stream's head from its index's last seq and its snapshot (see `EventStore::stream_head`).
pub fn head_of(index_head: Option<u64>, snapshot: Option<&Snapshot>) -> u64 {
    index_head.unwrap_or(0).max(snapshot.map_or(0, |s| s.seq))
}

/// Key helpers shared by the engines.
pub mod keys {
    /// Checkpoint key holding the highest offset ever assigned, so that retention removing
    /// the newest records can never make an offset be handed out twice.
    pub const LAST_OFFSET: &[u8] = b"\0last_offset";

    pub fn offset(offset: u64) -> [u8; 8] {
        offset.to_be_bytes()
    }

    pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }

    pub fn stream_prefix(stream_id: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(stream_id.len() + 9);
        k.extend_from_slice(stream_id.as_bytes());
        k.push(0);
        k
    }

    pub fn stream_seq(stream_id: &str, seq: u64) -> Vec<u8> {
        let mut k = stream_prefix(stream_id);
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    /// A view entry's key: view name, 0x00, then the entry's own key.
    pub fn view_key(view: &str, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(view.len() + 1 + key.len());
        k.extend_from_slice(view.as_bytes());
        k.push(0);
        k.extend_from_slice(key);
        k
    }

    pub fn snapshot_value(seq: u64, state: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + state.len());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(state);
        v
    }

    /// Up to `limit` entries of `view` from an ordered iterator over the views keyspace that
    /// starts at `view_key(view, from_key)`, each key without the view's prefix; the iterator
    /// is read no further than needed. Both embedded engines scan views through this.
    pub fn view_entries<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        view: &str,
        items: impl Iterator<Item = Result<(K, V), super::StoreError>>,
        limit: usize,
    ) -> Result<Vec<super::ViewEntry>, super::StoreError> {
        let prefix = view_key(view, &[]);
        let mut out = Vec::new();
        for item in items {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let Some(key) = k.as_ref().strip_prefix(prefix.as_slice()) else {
                break;
            };
            out.push((key.to_vec(), v.as_ref().to_vec()));
        }
        Ok(out)
    }

    /// The seq an index key (stream prefix, then the seq) ends with.
    pub fn index_seq(key: &[u8]) -> Option<u64> {
        key.get(key.len().checked_sub(8)?..).and_then(parse_u64)
    }

    /// A stream's snapshot from the value an engine read for it, if any.
    pub fn snapshot_of<V: AsRef<[u8]>>(stream_id: &str, v: Option<V>) -> Option<super::Snapshot> {
        v.and_then(|v| parse_snapshot(stream_id, v.as_ref()))
    }

    /// A checkpoint from the value an engine read for it, if any.
    pub fn checkpoint_of<V: AsRef<[u8]>>(v: Option<V>) -> Option<u64> {
        v.and_then(|v| parse_u64(v.as_ref()))
    }

    pub fn parse_snapshot(stream_id: &str, v: &[u8]) -> Option<super::Snapshot> {
        let seq = parse_u64(v.get(..8)?)?;
        Some(super::Snapshot {
            stream_id: stream_id.to_string(),
            seq,
            state: v[8..].to_vec(),
        })
    }
}

/// A `MetricObserved` append of `stream` at `seq` with a placeholder payload (unit tests).
#[cfg(test)]
pub(crate) fn test_append(stream: &str, seq: u64) -> WriteOp {
    WriteOp::Append(NewEvent::new(&EventRecord {
        stream_id: stream.into(),
        seq,
        recorded_at_ms: 0,
        event_type: "MetricObserved".into(),
        schema_version: 1,
        correlation_id: None,
        payload: vec![seq as u8],
        trace: None,
    }))
}

/// Merge two lists sorted by `key` (no key in both), keeping the first `limit`.
pub fn merge_sorted(
    a: Vec<StoredEvent>,
    b: Vec<StoredEvent>,
    key: impl Fn(&StoredEvent) -> u64,
    limit: usize,
) -> Vec<StoredEvent> {
    if b.is_empty() || a.is_empty() {
        let mut only = if b.is_empty() { a } else { b };
        only.truncate(limit);
        return only;
    }
    let mut out = Vec::with_capacity((a.len() + b.len()).min(limit));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while out.len() < limit {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if key(x) <= key(y) => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(e) => out.push(e),
            None => break,
        }
    }
    out
}

/// Decode a stored frame, naming its offset if it is corrupt.
pub fn decode_stored(offset: u64, frame: &[u8]) -> Result<StoredEvent, StoreError> {
    codec::decode_frame(frame)
        .map(|record| StoredEvent { offset, record })
        .map_err(|source| StoreError::Corrupt { offset, source })
}
