//! The sled engine: the design card's engine, kept behind the same trait. A write is one
//! multi-tree transaction followed by `flush` (fsync), so it is atomic and durable.
//!
//! A failed flush leaves a committed transaction visible but not durable. Its offsets stay
//! used (the next write never reuses them), and the store is poisoned: every read and write
//! fails until a flush succeeds, so nothing is read back, or acknowledged as a duplicate,
//! before it is durable.

use super::store::{
    decode_stored, engine_err, keys, EventStore, Snapshot, StoreError, StoredEvent, ViewEntry,
    WriteOp,
};
use super::tree;
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
    /// Set by a failed flush, cleared by the next one that succeeds.
    poisoned: Mutex<Option<String>>,
    /// Fault injection for the unit tests: the next flush fails.
    #[cfg(test)]
    fail_next_flush: std::sync::atomic::AtomicBool,
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let path = dir.join("sled");
        let db = open_waiting_for_lock(&path).map_err(|e| StoreError::Open {
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
            poisoned: Mutex::new(None),
            #[cfg(test)]
            fail_next_flush: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        #[cfg(test)]
        if self
            .fail_next_flush
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(engine_err("injected flush failure"));
        }
        self.db.flush().map(|_| ()).map_err(engine_err)
    }

    /// Fail while the store holds data that is visible but not durable; a successful flush
    /// makes it durable and clears the poison.
    fn check(&self) -> Result<(), StoreError> {
        let mut poisoned = self.poisoned.lock().expect("poison lock poisoned");
        if let Some(reason) = poisoned.as_ref() {
            self.flush().map_err(|e| {
                engine_err(format!(
                    "store poisoned by a failed flush ({reason}); flush again: {e}"
                ))
            })?;
            *poisoned = None;
        }
        Ok(())
    }
}

impl EventStore for SledStore {
    fn write(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError> {
        if ops.is_empty() {
            return self.check().map(|_| Vec::new());
        }
        let mut last = self.last_offset.lock().expect("offset lock poisoned");
        self.check()?;
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
                        WriteOp::RemoveView { view, key } => {
                            views.remove(keys::view_key(view, key))?;
                        }
                    }
                }
                if let Some(last) = offsets.last() {
                    checkpoints.insert(keys::LAST_OFFSET, &keys::offset(*last))?;
                }
                Ok(())
            });
        result.map_err(|e| engine_err(format!("{e:?}")))?;
        // Committed: these offsets are taken, durable or not.
        *last = next;
        if let Err(e) = self.flush() {
            *self.poisoned.lock().expect("poison lock poisoned") = Some(e.to_string());
            return Err(e);
        }
        Ok(offsets)
    }

    fn read_stream(
        &self,
        stream_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.check()?;
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
        self.check()?;
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
        self.check()?;
        tree::stream_head(&self.index, &self.snapshots, stream_id, None)
    }

    fn last_offset(&self) -> u64 {
        *self.last_offset.lock().expect("offset lock poisoned")
    }

    fn snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.check()?;
        tree::snapshot(&self.snapshots, stream_id)
    }

    fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.check()?;
        tree::checkpoint(&self.checkpoints, name)
    }

    fn scan_view(
        &self,
        view: &str,
        from_key: &[u8],
        limit: usize,
    ) -> Result<Vec<ViewEntry>, StoreError> {
        self.check()?;
        tree::scan_view(&self.views, view, from_key, limit)
    }

    fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn engine(&self) -> &'static str {
        "sled"
    }
}

/// `sled::open`, waiting a while for the lock of a database just closed: sled's flusher
/// thread keeps it until its next tick (up to `flush_every_ms`, 500 ms by default) after the
/// last handle is dropped, so a store reopened at once (a quick restart) would find it taken.
fn open_waiting_for_lock(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            // sled reports the taken lock as an `Other` I/O error with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::store::test_append;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_failed_flush_never_reuses_offsets_and_nothing_reads_back_until_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        assert_eq!(store.write(&[test_append("s", 1)]).expect("write"), vec![1]);
        // Given a write whose flush fails,
        store.fail_next_flush.store(true, Ordering::SeqCst);
        assert!(store.write(&[test_append("s", 2)]).is_err());
        // when the disk still fails, nothing is read back (a retry must not see seq 2 as
        // stored) and nothing is written;
        store.fail_next_flush.store(true, Ordering::SeqCst);
        assert!(store.read_stream("s", 1, 10).is_err());
        // then once a flush succeeds, seq 2 is durable at its own offset and the next write
        // takes the next one instead of overwriting it.
        assert_eq!(store.write(&[test_append("s", 3)]).expect("write"), vec![3]);
        let seqs: Vec<(u64, u64)> = store
            .read_from(1, 10)
            .expect("read")
            .iter()
            .map(|e| (e.offset, e.record.seq))
            .collect();
        assert_eq!(seqs, vec![(1, 1), (2, 2), (3, 3)]);
    }

    #[test]
    fn a_checkpoint_and_a_view_entry_whose_flush_failed_are_not_read_back_until_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        // Given a projection's checkpoint and view entry in a batch whose flush fails,
        let batch = [
            WriteOp::Checkpoint {
                name: "p".into(),
                offset: 7,
            },
            WriteOp::PutView {
                view: "v".into(),
                key: b"k".to_vec(),
                value: b"x".to_vec(),
            },
        ];
        store.fail_next_flush.store(true, Ordering::SeqCst);
        assert!(store.write(&batch).is_err());
        // when the disk still fails, neither reads back (the projection would resume past
        // what is durable);
        store.fail_next_flush.store(true, Ordering::SeqCst);
        assert!(store.checkpoint("p").is_err());
        store.fail_next_flush.store(true, Ordering::SeqCst);
        assert!(store.scan_view("v", b"", 10).is_err());
        // then once a flush succeeds, both are there.
        assert_eq!(store.checkpoint("p").expect("checkpoint"), Some(7));
        let entries = store.scan_view("v", b"", 10).expect("scan");
        assert_eq!(entries, vec![(b"k".to_vec(), b"x".to_vec())]);
    }
}
