//! The sled engine: the design card's engine, kept behind the same trait. A write is one
//! multi-tree transaction followed by `flush` (fsync), so it is atomic and durable.

use super::store::{
    decode_stored, head_of, keys, EventStore, Snapshot, StoreError, StoredEvent, ViewEntry, WriteOp,
};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Db, Transactional, Tree};
use std::path::Path;
use std::sync::Mutex;

pub struct SledStore {
    db: Db,
    records: Tree,
    index: Tree,
    snapshots: Tree,
    checkpoints: Tree,
    views: Tree,
    last_offset: Mutex<u64>,
}

fn engine_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let path = dir.join("sled");
        let db = sled::open(&path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(engine_err);
        let records = tree("records")?;
        let index = tree("stream_index")?;
        let snapshots = tree("snapshots")?;
        let checkpoints = tree("checkpoints")?;
        let views = tree("views")?;
        let last = match records.last().map_err(engine_err)? {
            Some((k, _)) => {
                keys::parse_u64(&k).ok_or_else(|| engine_err("record key is not 8 bytes"))?
            }
            None => 0,
        };
        let recorded = checkpoints.get(keys::LAST_OFFSET).map_err(engine_err)?;
        let last = last.max(recorded.and_then(|v| keys::parse_u64(&v)).unwrap_or(0));
        Ok(SledStore {
            db,
            records,
            index,
            snapshots,
            checkpoints,
            views,
            last_offset: Mutex::new(last),
        })
    }
}

impl EventStore for SledStore {
    fn write(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut last = self.last_offset.lock().expect("offset lock poisoned");
        let mut offsets = Vec::new();
        let mut next = *last;
        for op in ops {
            if matches!(op, WriteOp::Append(_)) {
                next += 1;
                offsets.push(next);
            }
        }
        let result: Result<(), TransactionError<()>> = (
            &self.records,
            &self.index,
            &self.snapshots,
            &self.checkpoints,
            &self.views,
        )
            .transaction(|(records, index, snapshots, checkpoints, views)| {
                let mut appended = offsets.iter();
                for op in ops {
                    match op {
                        WriteOp::Append(e) => {
                            let offset = *appended
                                .next()
                                .ok_or(ConflictableTransactionError::Abort(()))?;
                            records.insert(&keys::offset(offset), e.frame.as_slice())?;
                            index.insert(
                                keys::stream_seq(&e.stream_id, e.seq),
                                &keys::offset(offset),
                            )?;
                        }
                        WriteOp::Snapshot(s) => {
                            snapshots.insert(
                                s.stream_id.as_bytes(),
                                keys::snapshot_value(s.seq, &s.state),
                            )?;
                        }
                        WriteOp::Checkpoint { name, offset } => {
                            checkpoints.insert(name.as_bytes(), &keys::offset(*offset))?;
                        }
                        WriteOp::Remove {
                            offset,
                            stream_id,
                            seq,
                        } => {
                            records.remove(&keys::offset(*offset))?;
                            index.remove(keys::stream_seq(stream_id, *seq))?;
                        }
                        WriteOp::PutView { view, key, value } => {
                            views.insert(keys::view_key(view, key), value.as_slice())?;
                        }
                    }
                }
                if let Some(last) = offsets.last() {
                    checkpoints.insert(keys::LAST_OFFSET, &keys::offset(*last))?;
                }
                Ok(())
            });
        result.map_err(|e| engine_err(format!("{e:?}")))?;
        self.db.flush().map_err(engine_err)?;
        *last = next;
        Ok(offsets)
    }

    fn read_stream(
        &self,
        stream_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let start = keys::stream_seq(stream_id, from_seq);
        let end = keys::stream_seq(stream_id, u64::MAX);
        let mut out = Vec::new();
        for item in self.index.range(start..=end) {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item.map_err(engine_err)?;
            let offset =
                keys::parse_u64(&v).ok_or_else(|| engine_err("index value is not 8 bytes"))?;
            if let Some(frame) = self.records.get(keys::offset(offset)).map_err(engine_err)? {
                out.push(decode_stored(offset, &frame)?);
            }
        }
        Ok(out)
    }

    fn read_from(&self, from_offset: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::new();
        for item in self.records.range(keys::offset(from_offset)..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(engine_err)?;
            let offset =
                keys::parse_u64(&k).ok_or_else(|| engine_err("record key is not 8 bytes"))?;
            out.push(decode_stored(offset, &v)?);
        }
        Ok(out)
    }

    fn stream_head(&self, stream_id: &str) -> Result<u64, StoreError> {
        let index_head = match self
            .index
            .scan_prefix(keys::stream_prefix(stream_id))
            .next_back()
        {
            Some(item) => {
                let (k, _) = item.map_err(engine_err)?;
                let seq = k.get(k.len().saturating_sub(8)..).and_then(keys::parse_u64);
                Some(seq.ok_or_else(|| engine_err("index key too short"))?)
            }
            None => None,
        };
        Ok(head_of(index_head, self.snapshot(stream_id)?.as_ref()))
    }

    fn last_offset(&self) -> u64 {
        *self.last_offset.lock().expect("offset lock poisoned")
    }

    fn snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let v = self
            .snapshots
            .get(stream_id.as_bytes())
            .map_err(engine_err)?;
        Ok(v.and_then(|v| keys::parse_snapshot(stream_id, &v)))
    }

    fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let v = self.checkpoints.get(name.as_bytes()).map_err(engine_err)?;
        Ok(v.and_then(|v| keys::parse_u64(&v)))
    }

    fn scan_view(
        &self,
        view: &str,
        from_key: &[u8],
        limit: usize,
    ) -> Result<Vec<ViewEntry>, StoreError> {
        let prefix = keys::view_key(view, &[]);
        let start = keys::view_key(view, from_key);
        let mut out = Vec::new();
        for item in self.views.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(engine_err)?;
            let Some(key) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            out.push((key.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn engine(&self) -> &'static str {
        "sled"
    }
}
