//! The set of streams the log holds, as the `streams` view: one entry per stream, written by
//! the writer in the same batch as the stream's first event, so it is exact across crashes.
//! Ingest counts it against `ingest.max_streams`. Stores from before this view get it
//! rebuilt once from the log at start.

use super::store::{EventStore, StoreError, WriteOp};
use std::collections::HashSet;

pub const STREAMS_VIEW: &str = "streams";

/// The view entry recording a new stream (internal streams, `#…`, are not counted).
pub fn entry_for(stream_id: &str) -> Option<WriteOp> {
    (!stream_id.starts_with('#')).then(|| WriteOp::PutView {
        view: STREAMS_VIEW.into(),
        key: stream_id.as_bytes().to_vec(),
        value: Vec::new(),
    })
}

/// How many streams the view holds.
pub fn count(store: &dyn EventStore) -> Result<u64, StoreError> {
    let mut n = 0;
    let mut from: Vec<u8> = Vec::new();
    loop {
        let page = store.scan_view(STREAMS_VIEW, &from, 10_000)?;
        let Some((last, _)) = page.last() else {
            return Ok(n);
        };
        n += page.len() as u64;
        from = last.clone();
        from.push(0);
    }
}

/// Rebuild the view from the log when it is missing (a store written before it existed);
/// returns the number of streams.
pub fn ensure(store: &dyn EventStore) -> Result<u64, StoreError> {
    let n = count(store)?;
    if n > 0 || store.last_offset() == 0 {
        return Ok(n);
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut from = 1;
    loop {
        let page = store.read_from(from, 10_000)?;
        let Some(last) = page.last() else { break };
        from = last.offset + 1;
        for e in page {
            if !seen.contains(&e.record.stream_id) {
                seen.insert(e.record.stream_id);
            }
        }
    }
    let ops: Vec<WriteOp> = seen.iter().filter_map(|s| entry_for(s)).collect();
    let n = ops.len() as u64;
    for chunk in ops.chunks(10_000) {
        store.write(chunk)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::store::test_append;
    use crate::events::{open_store, Engine};

    #[tokio::test]
    async fn the_writer_records_each_new_stream_once_and_old_stores_are_backfilled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(Engine::Fjall, dir.path()).expect("open");
        // An old store: events, no view.
        store
            .write(&[
                test_append("a", 1),
                test_append("b", 1),
                test_append("a", 2),
                test_append("#alerts", 1),
            ])
            .expect("write");
        assert_eq!(count(store.as_ref()).expect("count"), 0);
        assert_eq!(ensure(store.as_ref()).expect("ensure"), 2);
        // From now on the writer keeps it.
        let writer = crate::events::writer::Writer::spawn(store.clone(), 100);
        writer
            .write(vec![test_append("a", 3), test_append("c", 1)])
            .await
            .expect("write");
        assert_eq!(count(store.as_ref()).expect("count"), 3);
    }
}
