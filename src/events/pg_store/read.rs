//! Reads: how far the log is final, the log by offset, and one stream by seq. Each merges the
//! rows of `events` with the batches' packed samples (`batch`).
//!
//! - By offset: a window of offsets at a time. The batches it needs are found by their first
//!   offset, which is at most `meta.max_span` below any of their events.
//! - One stream: its rows by index; its packed events in its partition's batches, from the
//!   latest offset known to be below them (where its packed events start, its snapshot's
//!   tail, its last row before, or what this store wrote), forwards. Its head: backwards
//!   from the partition's end to the first batch that has it.

use super::preload::PART_PAGE_SQL;
use super::{as_i64, batch, db_err, decode_rows, pg_text, pool_err, PgStore, READ_OWN_WRITES};
use crate::events::store::{head_of, merge_sorted, Snapshot, StoreError, StoredEvent, StreamLoad};
use std::sync::atomic::Ordering;
use tokio_postgres::types::ToSql;

const WINDOW_ROWS_SQL: &str =
    "SELECT off, frame FROM events WHERE off >= $1 AND off <= $2 ORDER BY off LIMIT $3";
const WINDOW_BATCHES_SQL: &str = "SELECT first_off, data FROM batches \
     WHERE first_off <= $2 AND first_off >= $1 - (SELECT max_span FROM meta WHERE id = 1) \
       AND last_off >= $1";
/// The first offset after `$1` a row or a batch starts at.
const NEXT_SQL: &str = "SELECT least((SELECT min(off) FROM events WHERE off > $1), \
     (SELECT min(first_off) FROM batches WHERE first_off > $1))";
const STREAM_ROWS_SQL: &str = "SELECT off, frame FROM events WHERE stream_id = $1 AND seq >= $2 \
     ORDER BY seq LIMIT $3";
/// Where a stream's packed events of seq ≥ `$2` start: (packed_from, snapshot seq, its tail,
/// the offset of its last row before).
const STREAM_START_SQL: &str = "SELECT d.packed_from, s.seq, s.tail_off, \
       (SELECT max(off) FROM events e WHERE e.stream_id = $1 AND e.seq < $2) \
     FROM streams d LEFT JOIN snapshots s ON s.stream_id = d.stream_id WHERE d.stream_id = $1";
const HEAD_SQL: &str = "SELECT (SELECT max(seq) FROM events WHERE stream_id = $1), \
       s.seq, s.tail_off, d.packed_from \
     FROM (SELECT 1) one LEFT JOIN streams d ON d.stream_id = $1 \
     LEFT JOIN snapshots s ON s.stream_id = $1";
/// A page of a partition's batches backwards: below offset `$2`, down to `$3`.
const PART_PAGE_DESC_SQL: &str = "SELECT last_off, data FROM batches \
     WHERE part = $1 AND last_off < $2 AND last_off >= $3 ORDER BY last_off DESC LIMIT $4";
const PAGE: i64 = 32;

impl PgStore {
    /// The offset up to which the log is final: observe the sequence, then take a
    /// transaction id, and let the watermark decide (`watermark`). Reads its own writes: looks
    /// again (for up to `READ_OWN_WRITES`) while an offset this store wrote is not final yet,
    /// that is while a transaction that began before it (any, on the server) is still open.
    pub(super) fn final_offset(&self) -> Result<u64, StoreError> {
        let own = self.written.load(Ordering::Relaxed);
        let started = std::time::Instant::now();
        loop {
            let taken = self.run(|pool| async move {
                let client = pool.get().await.map_err(pool_err)?;
                let taken = client
                    .prepare_cached(
                        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_offsets",
                    )
                    .await
                    .map_err(db_err)?;
                let row = client.query_one(&taken, &[]).await.map_err(db_err)?;
                Ok::<_, StoreError>(row.get::<_, i64>(0).max(0) as u64)
            })?;
            let safe = self
                .watermark
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .safe();
            // Nothing new was handed out: no transaction id is spent (an idle tailer polls).
            if taken <= safe {
                return Ok(safe);
            }
            // A transaction id of its own, taken after the sequence was read: above every id
            // taken before it. Nothing waits for its commit record to reach the disk.
            let (xid, xmin) = self.run(|pool| async move {
                let client = pool.get().await.map_err(pool_err)?;
                let look = client
                    .prepare_cached(
                        "SELECT set_config('synchronous_commit', 'off', true), \
                         pg_current_xact_id()::text::bigint, \
                         pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                    )
                    .await
                    .map_err(db_err)?;
                let row = client.query_one(&look, &[]).await.map_err(db_err)?;
                Ok::<_, StoreError>((
                    row.get::<_, i64>(1).max(0) as u64,
                    row.get::<_, i64>(2).max(0) as u64,
                ))
            })?;
            let upto = self
                .watermark
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .observe(taken, xmin, xid);
            if upto >= own || started.elapsed() >= READ_OWN_WRITES {
                return Ok(upto);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// `read_from`: events of offsets ≥ `from` up to the final offset, a window of `limit`
    /// offsets at a time (an empty window moves on to the next offset held).
    pub(super) fn read_offsets(
        &self,
        mut from: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let upto = self.final_offset()?;
        let width = limit.max(1) as u64;
        loop {
            if from > upto {
                return Ok(Vec::new());
            }
            let to = upto.min(from.saturating_add(width - 1));
            let (f, t, l) = (from as i64, to as i64, limit as i64);
            let (rows, batches, next) = self.run(move |pool| async move {
                let client = pool.get().await.map_err(pool_err)?;
                let rows_q = client
                    .prepare_cached(WINDOW_ROWS_SQL)
                    .await
                    .map_err(db_err)?;
                let batches_q = client
                    .prepare_cached(WINDOW_BATCHES_SQL)
                    .await
                    .map_err(db_err)?;
                let next_q = client.prepare_cached(NEXT_SQL).await.map_err(db_err)?;
                let rows_p: [&(dyn ToSql + Sync); 3] = [&f, &t, &l];
                let batches_p: [&(dyn ToSql + Sync); 2] = [&f, &t];
                let next_p: [&(dyn ToSql + Sync); 1] = [&t];
                tokio::try_join!(
                    client.query(&rows_q, &rows_p),
                    client.query(&batches_q, &batches_p),
                    client.query_one(&next_q, &next_p),
                )
                .map_err(db_err)
            })?;
            let rows = decode_rows(&rows)?;
            let mut segments = Vec::with_capacity(batches.len());
            for b in &batches {
                segments.push(self.decoded.get(b.get(0), b.get(1))?);
            }
            let events = batch::window(rows, &segments, from, to, limit);
            if !events.is_empty() || to >= upto {
                return Ok(events);
            }
            let next = next.get::<_, Option<i64>>(0).map(|n| n as u64);
            match next
                .into_iter()
                .chain(batch::next_after(&segments, to))
                .min()
            {
                Some(n) => from = n,
                None => return Ok(Vec::new()),
            }
        }
    }

    /// `read_stream`: the stream's rows, merged with its packed events.
    pub(super) fn read_stream_seq(
        &self,
        stream_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let id = pg_text(stream_id);
        let (f, l) = (as_i64(from_seq), limit as i64);
        let own = self
            .preloaded()
            .last_written(stream_id)
            .filter(|(seq, _)| *seq < from_seq)
            .map(|(_, off)| off + 1);
        let (rows, start) = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            let rows_q = client
                .prepare_cached(STREAM_ROWS_SQL)
                .await
                .map_err(db_err)?;
            let start_q = client
                .prepare_cached(STREAM_START_SQL)
                .await
                .map_err(db_err)?;
            let (rows_p, start_p): ([&(dyn ToSql + Sync); 3], [&(dyn ToSql + Sync); 2]) =
                ([&id, &f, &l], [&id, &f]);
            tokio::try_join!(
                client.query(&rows_q, &rows_p),
                client.query_opt(&start_q, &start_p),
            )
            .map_err(db_err)
        })?;
        let rows = decode_rows(&rows)?;
        let Some(start) = start else { return Ok(rows) };
        let Some(packed_from) = start.get::<_, Option<i64>>(0) else {
            return Ok(rows);
        };
        let snapshot_tail = match (
            start.get::<_, Option<i64>>(1),
            start.get::<_, Option<i64>>(2),
        ) {
            (Some(seq), Some(tail)) if (seq as u64) < from_seq => tail,
            _ => 0,
        };
        let row_before = start.get::<_, Option<i64>>(3).unwrap_or(0);
        let from_off = [
            packed_from,
            snapshot_tail,
            row_before,
            own.map_or(0, as_i64),
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as u64;
        let packed = self.packed_of(stream_id, from_off, from_seq, limit)?;
        Ok(merge_sorted(rows, packed, |e| e.record.seq, limit))
    }

    /// The stream's packed events of seq ≥ `from_seq` (at least `limit` of them when there
    /// are), from its partition's batches of offsets ≥ `from_off`, in seq order.
    fn packed_of(
        &self,
        stream_id: &str,
        mut from_off: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let part = batch::part_of(stream_id);
        let mut out = Vec::new();
        loop {
            let f = as_i64(from_off);
            let rows = self.run(move |pool| async move {
                let client = pool.get().await.map_err(pool_err)?;
                let q = client.prepare_cached(PART_PAGE_SQL).await.map_err(db_err)?;
                let params: [&(dyn ToSql + Sync); 3] = [&part, &f, &PAGE];
                client.query(&q, &params).await.map_err(db_err)
            })?;
            for r in &rows {
                let seg = batch::unpack_stream(r.get(1), stream_id)?;
                out.extend(
                    seg.stream_events(stream_id)
                        .filter(|e| e.record.seq >= from_seq)
                        .cloned(),
                );
            }
            match rows.last() {
                Some(r) if out.len() < limit && rows.len() as i64 == PAGE => {
                    from_off = r.get::<_, i64>(0) as u64 + 1
                }
                _ => return Ok(out),
            }
        }
    }

    /// `stream_head` when nothing preloaded answers: its rows' head, its snapshot, and its
    /// last packed event (the latest batch of its partition that has it).
    pub(super) fn head_of_stream(&self, stream_id: &str) -> Result<u64, StoreError> {
        let id = pg_text(stream_id);
        let row = self
            .query(HEAD_SQL, vec![Box::new(id)])?
            .into_iter()
            .next()
            .ok_or_else(|| super::pg_err("no row"))?;
        let index: Option<i64> = row.get(0);
        let snapshot = row.get::<_, Option<i64>>(1).map(|seq| Snapshot {
            stream_id: stream_id.to_string(),
            seq: seq as u64,
            state: Vec::new(),
        });
        let mut head = head_of(index.map(|s| s as u64), snapshot.as_ref());
        let Some(packed_from) = row.get::<_, Option<i64>>(3) else {
            return Ok(head);
        };
        let own = self.preloaded().last_written(stream_id);
        let floor = [
            packed_from,
            row.get::<_, Option<i64>>(2).unwrap_or(0),
            own.map_or(0, |(_, off)| as_i64(off)),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        head = head.max(own.map_or(0, |(seq, _)| seq));
        let part = batch::part_of(stream_id);
        let mut below = i64::MAX;
        loop {
            let rows = self.run(move |pool| async move {
                let client = pool.get().await.map_err(pool_err)?;
                let q = client
                    .prepare_cached(PART_PAGE_DESC_SQL)
                    .await
                    .map_err(db_err)?;
                let params: [&(dyn ToSql + Sync); 4] = [&part, &below, &floor, &PAGE];
                client.query(&q, &params).await.map_err(db_err)
            })?;
            for r in &rows {
                let seg = batch::unpack_stream(r.get(1), stream_id)?;
                if let Some(last) = seg.stream_events(stream_id).map(|e| e.record.seq).max() {
                    return Ok(head.max(last));
                }
            }
            match rows.last() {
                Some(r) if rows.len() as i64 == PAGE => below = r.get(0),
                _ => return Ok(head),
            }
        }
    }

    /// A stream's load when nothing preloaded answers: its snapshot, the events after it, and
    /// its head (known from those events when they are all there).
    pub(super) fn load_one(&self, stream_id: &str, limit: usize) -> Result<StreamLoad, StoreError> {
        use crate::events::store::EventStore;
        let snapshot = self.snapshot(stream_id)?;
        let from = snapshot.as_ref().map_or(0, |s| s.seq) + 1;
        let events = self.read_stream_seq(stream_id, from, limit)?;
        let head = match events.last() {
            Some(last) if events.len() < limit => last.record.seq,
            None => head_of(None, snapshot.as_ref()),
            Some(_) => self.head_of_stream(stream_id)?,
        };
        Ok(StreamLoad {
            snapshot,
            events,
            head,
        })
    }
}

impl PgStore {
    /// For audits: every stored event of `streams` as (stream, seq, the epoch of the lease it
    /// was written under), in stream and seq order. Reads the streams' partitions whole.
    pub fn lease_epochs(&self, streams: &[String]) -> Result<Vec<(String, u64, i64)>, StoreError> {
        let wanted: rustc_hash::FxHashSet<String> = streams.iter().cloned().collect();
        let mut parts: Vec<i16> = streams.iter().map(|s| batch::part_of(s)).collect();
        parts.sort_unstable();
        parts.dedup();
        let ids: Vec<String> = streams.iter().map(|s| pg_text(s)).collect();
        let rows = self.query(
            "SELECT stream_id, seq, epoch FROM events WHERE stream_id = ANY($1)",
            vec![Box::new(ids)],
        )?;
        let mut out: Vec<(String, u64, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64, r.get(2)))
            .collect();
        let batches = self.query(
            "SELECT epochs, data FROM batches WHERE part = ANY($1)",
            vec![Box::new(parts)],
        )?;
        for b in &batches {
            let seg = batch::unpack(b.get(1))?;
            let epochs = batch::Runs::expand(&b.get::<_, Vec<i64>>(0));
            for (e, epoch) in seg.events.iter().zip(epochs) {
                if wanted.contains(&e.record.stream_id) {
                    out.push((e.record.stream_id.clone(), e.record.seq, epoch));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
