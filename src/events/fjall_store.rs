//! The fjall engine (default): an LSM tree with atomic cross-keyspace batches.
//! A batch is committed with `PersistMode::SyncAll`, so `write` returns only once durable.

mod archive;

pub use archive::SEGMENT_EVENTS;

use super::store::{
    decode_stored, engine_err, keys, DiskKind, DiskPart, EventStore, Snapshot, StoreError,
    StoredEvent, ViewEntry, WriteOp,
};
use super::tree;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;
use std::sync::Mutex;

const MIB: u64 = 1024 * 1024;
/// Level-0 tables of the stream index merged into level 1 at once (fjall's default is 4).
const INDEX_L0_TABLES: u8 = 16;
/// The index's memtable, as a multiple of the records keyspace's (see `open`).
const INDEX_MEMTABLE_FACTOR: u64 = 4;

pub struct FjallStore {
    db: Database,
    records: Keyspace,
    index: Keyspace,
    snapshots: Keyspace,
    checkpoints: Keyspace,
    views: Keyspace,
    /// Packed segments of raw samples, by their first offset (see `archive`).
    segments: Keyspace,
    /// `(stream, 0x00, first seq)` → the segment holding the stream's events from that seq.
    segment_index: Keyspace,
    /// First offset → last offset of each segment (kept in memory as `archive.layout`).
    segment_dir: Keyspace,
    /// Highest offset assigned; the lock also serialises writers.
    last_offset: Mutex<u64>,
    archive: archive::State,
}

impl FjallStore {
    /// `memtable_mib`: the records keyspace's memtable; the index gets four times as much
    /// (`INDEX_MEMTABLE_FACTOR`). fjall keeps up to four sealed memtables per keyspace while
    /// flushing, so this bounds most of its memory.
    pub fn open(dir: &Path, memtable_mib: u64) -> Result<FjallStore, StoreError> {
        let path = dir.join("fjall");
        // Bounded memory: a 16 MiB block cache and small memtables (fjall's 64 MiB default per
        // keyspace would dominate the node's RSS).
        let db = Database::builder(&path)
            .cache_size(16 * MIB)
            .max_journaling_size(64 * MIB)
            .open()
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let ks = |name: &str, memtable: u64| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable)
            })
            .map_err(engine_err)
        };
        let records = ks("records", memtable_mib.max(1) * MIB)?;
        // The index's keys are (stream, seq): every flush spans all streams, so each merge of
        // level 0 into level 1 rewrites the whole of level 1, which grows with the log: the
        // work per sample grows as the run goes on. Two knobs cut the number of merges:
        // - merging 16 level-0 tables at a time instead of fjall's 4: 6 M-sample runs kept
        //   107,000 samples/s instead of 83,000 (fjall stalls writes at 20 level-0 tables, so
        //   16 still leaves room);
        // - a larger memtable, so each level-0 table holds more: with 32 MiB instead of 4,
        //   10 M-sample runs kept 177,000-222,000 samples/s (5 runs) instead of
        //   154,000-160,000 (the rate no longer falls over the run), for about 25 MB more
        //   peak RSS.
        let index = db
            .keyspace("stream_index", || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable_mib.max(1) * INDEX_MEMTABLE_FACTOR * MIB)
                    .compaction_strategy(std::sync::Arc::new(
                        fjall::compaction::Leveled::default().with_l0_threshold(INDEX_L0_TABLES),
                    ))
            })
            .map_err(engine_err)?;
        let snapshots = ks("snapshots", 4 * MIB)?;
        let checkpoints = ks("checkpoints", MIB)?;
        let views = ks("views", 4 * MIB)?;
        let segments = ks("segments", 4 * MIB)?;
        let segment_index = ks("segment_index", 4 * MIB)?;
        let segment_dir = ks("segment_dir", MIB)?;
        let mut directory = archive::Directory::new();
        for guard in segment_dir.iter() {
            let (k, v) = guard.into_inner().map_err(engine_err)?;
            let pair = keys::parse_u64(&k).zip(keys::parse_u64(&v));
            let (first, last) = pair.ok_or_else(|| engine_err("segment directory entry"))?;
            directory.insert(first, last);
        }
        let last = match records.last_key_value() {
            Some(guard) => {
                let key = guard.key().map_err(engine_err)?;
                keys::parse_u64(&key).ok_or_else(|| engine_err("record key is not 8 bytes"))?
            }
            None => 0,
        };
        let recorded = checkpoints.get(keys::LAST_OFFSET).map_err(engine_err)?;
        let last = last.max(recorded.and_then(|v| keys::parse_u64(&v)).unwrap_or(0));
        let archived = checkpoints
            .get(archive::ARCHIVED_UNTIL)
            .map_err(engine_err)?;
        let archived = archived.and_then(|v| keys::parse_u64(&v)).unwrap_or(0);
        Ok(FjallStore {
            db,
            records,
            index,
            snapshots,
            checkpoints,
            views,
            segments,
            segment_index,
            segment_dir,
            last_offset: Mutex::new(last),
            archive: archive::State::new(archived, directory),
        })
    }

    fn keyspaces(&self) -> [(&'static str, DiskKind, &Keyspace); 8] {
        use DiskKind::{Log, State};
        [
            ("records", Log, &self.records),
            ("stream_index", Log, &self.index),
            ("segments", Log, &self.segments),
            ("segment_index", Log, &self.segment_index),
            ("segment_dir", Log, &self.segment_dir),
            ("snapshots", State, &self.snapshots),
            ("checkpoints", State, &self.checkpoints),
            ("views", State, &self.views),
        ]
    }

    /// Whether raw samples are packed at all (`store.pack`); off, `archive` and `compact`
    /// leave every sample a record.
    pub fn with_packing(mut self, on: bool) -> FjallStore {
        self.archive.enabled = on;
        self
    }

    /// Raw samples per packed segment (keep it several times the number of ports).
    pub fn with_segment_events(mut self, events: u64) -> FjallStore {
        self.archive.segment_events = events.max(1);
        self
    }

    fn get_record(&self, offset: u64) -> Result<Option<StoredEvent>, StoreError> {
        match self.records.get(keys::offset(offset)).map_err(engine_err)? {
            Some(frame) => decode_stored(offset, &frame).map(Some),
            None => Ok(None),
        }
    }

    /// A stream's events still kept as records, seqs `from_seq..=to_seq`, in seq order.
    fn read_indexed(
        &self,
        stream_id: &str,
        from_seq: u64,
        to_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let start = keys::stream_seq(stream_id, from_seq);
        let end = keys::stream_seq(stream_id, to_seq);
        let mut out = Vec::new();
        for guard in self.index.range(start..=end) {
            if out.len() >= limit {
                break;
            }
            let value = guard.value().map_err(engine_err)?;
            let offset =
                keys::parse_u64(&value).ok_or_else(|| engine_err("index value is not 8 bytes"))?;
            if let Some(e) = self.get_record(offset)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Records of offsets `from..=to`, at most `limit`, in offset order.
    fn read_records(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::new();
        for guard in self.records.range(keys::offset(from)..=keys::offset(to)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = guard.into_inner().map_err(engine_err)?;
            let offset =
                keys::parse_u64(&k).ok_or_else(|| engine_err("record key is not 8 bytes"))?;
            out.push(decode_stored(offset, &v)?);
        }
        Ok(out)
    }
}

impl EventStore for FjallStore {
    fn write(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError> {
        // Removals may reach into packed segments: they wait for an archiver's commit, and an
        // archiver that packed meanwhile packs again.
        let removing = ops.iter().any(|op| matches!(op, WriteOp::Remove { .. }));
        let _archive = removing.then(|| self.archive.removing());
        let mut last = self.last_offset.lock().expect("offset lock poisoned");
        let mut next = *last;
        let mut offsets = Vec::new();
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        for op in ops {
            match op {
                WriteOp::Append(e) => {
                    next += 1;
                    batch.insert(&self.records, keys::offset(next), e.frame.as_slice());
                    batch.insert(
                        &self.index,
                        keys::stream_seq(&e.stream_id, e.seq),
                        keys::offset(next),
                    );
                    offsets.push(next);
                }
                WriteOp::Snapshot(s) => batch.insert(
                    &self.snapshots,
                    s.stream_id.as_bytes(),
                    keys::snapshot_value(s.seq, &s.state),
                ),
                WriteOp::Checkpoint { name, offset } => {
                    batch.insert(&self.checkpoints, name.as_bytes(), keys::offset(*offset))
                }
                WriteOp::Remove {
                    offset,
                    stream_id,
                    seq,
                } => {
                    batch.remove(&self.records, keys::offset(*offset));
                    batch.remove(&self.index, keys::stream_seq(stream_id, *seq));
                }
                WriteOp::PutView { view, key, value } => {
                    batch.insert(&self.views, keys::view_key(view, key), value.as_slice())
                }
                WriteOp::RemoveView { view, key } => {
                    batch.remove(&self.views, keys::view_key(view, key))
                }
            }
        }
        if ops.is_empty() {
            return Ok(offsets);
        }
        if next > *last {
            batch.insert(&self.checkpoints, keys::LAST_OFFSET, keys::offset(next));
        }
        if let Some(emptied) = removing
            .then(|| self.remove_packed(&mut batch, ops))
            .transpose()?
            .flatten()
        {
            let mut directory = self.archive.layout.write().expect("layout lock poisoned");
            batch.commit().map_err(engine_err)?;
            for first in emptied {
                directory.remove(&first);
            }
            self.archive.forget_decoded();
        } else {
            batch.commit().map_err(engine_err)?;
        }
        *last = next;
        Ok(offsets)
    }

    fn read_stream(
        &self,
        stream_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let _layout = self.archive.layout.read().expect("layout lock poisoned");
        let packed = self.read_stream_packed(stream_id, from_seq, limit)?;
        let to = match packed.last() {
            Some(e) if packed.len() >= limit => e.record.seq,
            _ => u64::MAX,
        };
        let records = self.read_indexed(stream_id, from_seq, to, limit)?;
        Ok(super::store::merge_sorted(
            records,
            packed,
            |e| e.record.seq,
            limit,
        ))
    }

    fn read_from(&self, from_offset: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let directory = self.archive.layout.read().expect("layout lock poisoned");
        let packed = self.read_packed_from(&directory, from_offset, limit)?;
        // A full page of packed events bounds the records worth reading to its span.
        let to = match packed.last() {
            Some(e) if packed.len() >= limit => e.offset,
            _ => u64::MAX,
        };
        let records = self.read_records(from_offset, to, limit)?;
        Ok(super::store::merge_sorted(
            records,
            packed,
            |e| e.offset,
            limit,
        ))
    }

    fn stream_head(&self, stream_id: &str) -> Result<u64, StoreError> {
        let _layout = self.archive.layout.read().expect("layout lock poisoned");
        let packed = self.packed_head(stream_id)?;
        tree::stream_head(&self.index, &self.snapshots, stream_id, packed)
    }

    fn last_offset(&self) -> u64 {
        *self.last_offset.lock().expect("offset lock poisoned")
    }

    fn snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        tree::snapshot(&self.snapshots, stream_id)
    }

    fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        tree::checkpoint(&self.checkpoints, name)
    }

    fn scan_view(
        &self,
        view: &str,
        from_key: &[u8],
        limit: usize,
    ) -> Result<Vec<ViewEntry>, StoreError> {
        tree::scan_view(&self.views, view, from_key, limit)
    }

    fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    fn archive(&self, recorded_before_ms: i64) -> Result<u64, StoreError> {
        self.archive_until(Some(recorded_before_ms))
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.archive_until(None)?;
        // Flush every memtable first, so the settled size is on disk and not in the journal.
        for (_, _, ks) in self.keyspaces() {
            ks.rotate_memtable_and_wait().map_err(engine_err)?;
            // A rotation already under way makes the call above return before its flush.
            while ks.sealed_memtable_count() > 0 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            ks.major_compact().map_err(engine_err)?;
        }
        Ok(())
    }

    fn disk_usage(&self) -> Vec<DiskPart> {
        let mut parts: Vec<_> = self
            .keyspaces()
            .into_iter()
            .map(|(name, kind, ks)| DiskPart {
                name,
                kind,
                bytes: ks.disk_space(),
            })
            .collect();
        parts.push(DiskPart {
            name: "journal",
            kind: DiskKind::Journal,
            bytes: self.db.journal_disk_space().unwrap_or(0),
        });
        parts
    }

    fn engine(&self) -> &'static str {
        "fjall"
    }
}
