//! The fjall engine, packing raw samples into segments after every write.

use crate::events::codec::EventRecord;
use crate::events::fjall_store::FjallStore;
use crate::events::store::{EventStore, Snapshot, StoreError, StoredEvent, ViewEntry, WriteOp};
use std::path::Path;
use std::sync::Arc;

struct Packing(FjallStore);

fn packing(dir: &Path) -> Packing {
    let store = FjallStore::open(dir, 8).expect("open fjall");
    Packing(store.with_segment_events(3))
}

pub(super) fn open(dir: &Path) -> Arc<dyn EventStore> {
    Arc::new(packing(dir))
}

impl EventStore for Packing {
    fn write(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError> {
        let offsets = self.0.write(ops)?;
        self.0.archive(i64::MAX)?;
        Ok(offsets)
    }
    fn read_stream(
        &self,
        s: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.read_stream(s, from, limit)
    }
    fn read_from(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.read_from(from, limit)
    }
    fn stream_head(&self, s: &str) -> Result<u64, StoreError> {
        self.0.stream_head(s)
    }
    fn last_offset(&self) -> u64 {
        self.0.last_offset()
    }
    fn snapshot(&self, s: &str) -> Result<Option<Snapshot>, StoreError> {
        self.0.snapshot(s)
    }
    fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.0.checkpoint(name)
    }
    fn scan_view(&self, v: &str, from: &[u8], limit: usize) -> Result<Vec<ViewEntry>, StoreError> {
        self.0.scan_view(v, from, limit)
    }
    fn disk_bytes(&self) -> u64 {
        self.0.disk_bytes()
    }
    fn engine(&self) -> &'static str {
        "fjall-packed"
    }
}

/// Raw samples written, packed, and read back by offset and by stream are the records written;
/// an anomaly among them stays a record.
#[test]
fn packed_samples_read_back_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = packing(dir.path());
    let mut written: Vec<EventRecord> = Vec::new();
    for seq in 1..=7 {
        for stream in ["a", "b"] {
            written.push(super::record(stream, seq, "MetricObserved", 1000));
        }
        if seq == 4 {
            written.push(super::record("a", 100, "AnomalyDetected", 1000));
        }
    }
    // Snapshots cover the samples (only covered ones are packed), but not b's last.
    let snapshot = |stream: &str, seq| {
        WriteOp::Snapshot(Snapshot {
            stream_id: stream.into(),
            seq,
            state: vec![],
        })
    };
    store
        .write(&[snapshot("a", 100), snapshot("b", 6)])
        .expect("snapshots");
    let ops: Vec<WriteOp> = written
        .iter()
        .map(|r| WriteOp::Append(crate::events::NewEvent::new(r)))
        .collect();
    for chunk in ops.chunks(4) {
        store.write(chunk).expect("write");
    }
    // Five segments of three offsets: thirteen samples packed; the anomaly and b#7 (after
    // b's snapshot) stay records.
    assert_eq!(store.0.packed_events().expect("count"), 13);
    let all = store.read_from(1, 100).expect("read");
    let offsets: Vec<u64> = all.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, (1..=15).collect::<Vec<_>>());
    let records: Vec<EventRecord> = all.into_iter().map(|e| e.record).collect();
    assert_eq!(records, written);
    let from_middle = store.read_from(5, 4).expect("read");
    let offsets: Vec<u64> = from_middle.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, vec![5, 6, 7, 8]);
    let b = store.read_stream("b", 3, 3).expect("read");
    let seqs: Vec<u64> = b.iter().map(|e| e.record.seq).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert_eq!(store.stream_head("b").expect("head"), 7);
    assert_eq!(store.stream_head("a").expect("head"), 100);
    let a = store.read_stream("a", 4, 3).expect("read");
    let seqs: Vec<u64> = a.iter().map(|e| e.record.seq).collect();
    assert_eq!(seqs, vec![4, 5, 6]);
}

/// With packing off, nothing is packed, not even by `compact`.
#[test]
fn packing_off_keeps_every_sample_a_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(dir.path(), 8)
        .expect("open fjall")
        .with_segment_events(3)
        .with_packing(false);
    let mut ops = vec![WriteOp::Snapshot(Snapshot {
        stream_id: "a".into(),
        seq: 10,
        state: vec![],
    })];
    for seq in 1..=7 {
        ops.push(WriteOp::Append(crate::events::NewEvent::new(
            &super::record("a", seq, "MetricObserved", 1000),
        )));
    }
    store.write(&ops).expect("write");
    assert_eq!(store.archive(i64::MAX).expect("archive"), 0);
    store.compact().expect("compact");
    assert_eq!(store.packed_events().expect("count"), 0);
    assert_eq!(store.read_from(1, 100).expect("read").len(), 7);
}
