//! Moving streams between members when the member list changes (an operator action, with the
//! nodes concerned stopped): `export` writes the events of the streams a node loses to a file,
//! `import` appends them on their new owner with their original seqs (the stream actor then
//! rebuilds its baselines by replaying them when it first starts), `drop` removes them from the
//! old owner. A move file is `IBSIGHT-MOVE-1\n` then length-prefixed record frames, each with
//! its CRC. Imported records keep their payload and trace, and carry `moved-from:<node>` as
//! their correlation id, so the new owner's alert projection does not raise again what the old
//! owner already raised.

use super::placement;
use crate::events::codec::{self, EventRecord};
use crate::events::writer::Writer;
use crate::events::{EventStore, NewEvent, StoreError, WriteOp};
use std::collections::BTreeMap;
use std::io::{Read, Write};

const MAGIC: &[u8] = b"IBSIGHT-MOVE-1\n";
/// Correlation id prefix of imported records.
pub const MOVED_FROM: &str = "moved-from:";

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("move file: {0}")]
    File(String),
    #[error("{0}")]
    Refused(String),
}

/// The streams of `store` that `node` owns under `before` and another member owns under
/// `after`, with their new owner.
pub fn leaving(
    store: &dyn EventStore,
    node: &str,
    before: &[String],
    after: &[String],
    shards: u32,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut out = BTreeMap::new();
    let last = store.last_offset();
    let mut from = 1;
    while from <= last {
        let page = store.read_from(from, 5000)?;
        let Some(end) = page.last().map(|e| e.offset) else {
            break;
        };
        from = end + 1;
        for e in page {
            let id = &e.record.stream_id;
            if id.starts_with('#') || out.contains_key(id) {
                continue;
            }
            let shard = placement::shard_of(id, shards);
            let (was, will) = (
                placement::owner_of(shard, before),
                placement::owner_of(shard, after),
            );
            if was == Some(node) && will.is_some_and(|w| w != node) {
                out.insert(id.clone(), will.unwrap_or_default().to_string());
            }
        }
    }
    Ok(out)
}

/// Write every event of `streams` to `out`; returns the number of records.
pub fn export(
    store: &dyn EventStore,
    streams: impl IntoIterator<Item = String>,
    out: &mut impl Write,
) -> Result<u64, MoveError> {
    let io = |e: std::io::Error| MoveError::File(e.to_string());
    out.write_all(MAGIC).map_err(io)?;
    let mut n = 0;
    for stream in streams {
        let mut from = 1;
        loop {
            let page = store.read_stream(&stream, from, 1000)?;
            let Some(last) = page.last().map(|e| e.record.seq) else {
                break;
            };
            for e in &page {
                let frame = codec::encode_frame(&e.record);
                out.write_all(&(frame.len() as u32).to_le_bytes())
                    .map_err(io)?;
                out.write_all(&frame).map_err(io)?;
                n += 1;
            }
            from = last + 1;
        }
    }
    out.flush().map_err(io)?;
    Ok(n)
}

/// Read a move file back (every frame's CRC checked).
pub fn read(input: &mut impl Read) -> Result<Vec<EventRecord>, MoveError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| MoveError::File(e.to_string()))?;
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| MoveError::File("not an ibsight move file (bad header)".into()))?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < rest.len() {
        let len_bytes: [u8; 4] = rest
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| MoveError::File(format!("truncated at byte {}", MAGIC.len() + at)))?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        let frame = rest
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| MoveError::File(format!("truncated at byte {}", MAGIC.len() + at)))?;
        let record = codec::decode_frame(frame).map_err(|e| {
            MoveError::File(format!(
                "record {} (byte {}): {e}",
                out.len() + 1,
                MAGIC.len() + at
            ))
        })?;
        out.push(record);
        at += 4 + len;
    }
    Ok(out)
}

/// Append the records of the streams `node` owns under `members` (others are skipped), each
/// stream's seqs unchanged. Refuses, writing nothing, a stream that already has events here or
/// whose exported log does not start at seq 1. Returns (streams, records) imported.
pub async fn import(
    writer: &Writer,
    records: Vec<EventRecord>,
    node: &str,
    from_node: &str,
    members: &[String],
    shards: u32,
) -> Result<(usize, u64), MoveError> {
    let store = writer.store().clone();
    let mut by_stream: BTreeMap<String, Vec<EventRecord>> = BTreeMap::new();
    for r in records {
        let owner = placement::owner_of(placement::shard_of(&r.stream_id, shards), members);
        if owner == Some(node) {
            by_stream.entry(r.stream_id.clone()).or_default().push(r);
        }
    }
    for (stream, records) in &by_stream {
        if store.stream_head(stream)? > 0 {
            return Err(MoveError::Refused(format!(
                "stream {stream} already has events on this node; nothing was imported"
            )));
        }
        let seqs_ok = records
            .iter()
            .enumerate()
            .all(|(i, r)| r.seq == i as u64 + 1);
        if !seqs_ok {
            return Err(MoveError::Refused(format!(
                "stream {stream}: its exported log does not run from seq 1 without gaps (raw \
                 samples compacted by retention); nothing was imported"
            )));
        }
    }
    let mut count = 0;
    for records in by_stream.values() {
        let ops: Vec<WriteOp> = records
            .iter()
            .map(|r| {
                WriteOp::Append(NewEvent::new(&EventRecord {
                    correlation_id: Some(format!("{MOVED_FROM}{from_node}")),
                    ..r.clone()
                }))
            })
            .collect();
        count += ops.len() as u64;
        writer.write(ops).await?;
    }
    Ok((by_stream.len(), count))
}

/// Remove every event of `streams` from this node's log. Returns the records removed.
pub async fn drop_streams(
    writer: &Writer,
    streams: impl IntoIterator<Item = String>,
) -> Result<u64, MoveError> {
    let store = writer.store().clone();
    let mut n = 0;
    for stream in streams {
        let events = store.read_stream(&stream, 1, usize::MAX)?;
        let ops: Vec<WriteOp> = events
            .iter()
            .map(|e| WriteOp::Remove {
                offset: e.offset,
                stream_id: stream.clone(),
                seq: e.record.seq,
            })
            .collect();
        n += ops.len() as u64;
        if !ops.is_empty() {
            writer.write(ops).await?;
        }
    }
    Ok(n)
}
