//! Reads that take more than one query: how far the log is final, and a stream's load.

use super::{db_err, pg_text, pool_err, PgStore, READ_OWN_WRITES};
use crate::events::store::{decode_stored, head_of, Snapshot, StoreError, StreamLoad};
use std::sync::atomic::Ordering;

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

    pub(super) fn load_one(&self, stream_id: &str, limit: usize) -> Result<StreamLoad, StoreError> {
        let rows = self.query(
            "SELECT 0, s.seq, s.state, 0::bigint FROM snapshots s WHERE s.stream_id = $1 \
             UNION ALL \
             (SELECT 1, e.seq, e.frame, e.off FROM events e WHERE e.stream_id = $1 \
                AND e.seq > coalesce((SELECT seq FROM snapshots WHERE stream_id = $1), 0) \
                ORDER BY e.seq LIMIT $2) \
             UNION ALL \
             SELECT 2, coalesce(max(seq), 0), NULL::bytea, 0::bigint FROM events WHERE stream_id = $1",
            vec![Box::new(pg_text(stream_id)), Box::new(limit as i64)],
        )?;
        let mut load = StreamLoad {
            snapshot: None,
            events: Vec::new(),
            head: 0,
        };
        for r in &rows {
            let seq = r.get::<_, i64>(1) as u64;
            match r.get::<_, i32>(0) {
                0 => {
                    load.snapshot = Some(Snapshot {
                        stream_id: stream_id.to_string(),
                        seq,
                        state: r.get(2),
                    })
                }
                1 => load
                    .events
                    .push(decode_stored(r.get::<_, i64>(3) as u64, r.get(2))?),
                _ => load.head = seq,
            }
        }
        load.events.sort_by_key(|e| e.record.seq);
        load.head = head_of(Some(load.head), load.snapshot.as_ref());
        Ok(load)
    }
}
