//! Retention: raw samples (`MetricObserved`) older than the raw horizon are removed once a
//! snapshot of their stream covers them; other events (anomalies, later insights and alerts)
//! follow their own, longer horizon (or are kept forever). Engine-agnostic: it plans `Remove`
//! ops from the trait's reads and hands them to the writer.

use super::store::{EventStore, SnapshotCover, StoreError, WriteOp};
use super::types::StreamEvent;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionPolicy {
    pub raw_max_age_ms: i64,
    /// `None` keeps non-raw events forever.
    pub events_max_age_ms: Option<i64>,
}

/// The removals due at `now_ms`, at most `max_ops` of them.
pub fn plan(
    store: &dyn EventStore,
    policy: RetentionPolicy,
    now_ms: i64,
    max_ops: usize,
) -> Result<Vec<WriteOp>, StoreError> {
    let raw_cutoff = now_ms - policy.raw_max_age_ms;
    let events_cutoff = policy.events_max_age_ms.map(|age| now_ms - age);
    let scan_until = raw_cutoff.max(events_cutoff.unwrap_or(i64::MIN));
    let mut covered = SnapshotCover::new(store);
    let mut ops = Vec::new();
    let mut from = 1;
    'scan: loop {
        let page = store.read_from(from, 1000)?;
        let Some(last) = page.last() else { break };
        from = last.offset + 1;
        for e in page {
            let r = &e.record;
            if r.recorded_at_ms >= scan_until {
                break 'scan;
            }
            let due = if StreamEvent::is_raw_sample(&r.event_type) {
                r.recorded_at_ms < raw_cutoff
            } else {
                events_cutoff.is_some_and(|c| r.recorded_at_ms < c)
            };
            if !due {
                continue;
            }
            if covered.covers(&r.stream_id, r.seq)? {
                ops.push(WriteOp::Remove {
                    offset: e.offset,
                    stream_id: r.stream_id.clone(),
                    seq: r.seq,
                });
                if ops.len() >= max_ops {
                    break 'scan;
                }
            }
        }
    }
    Ok(ops)
}
