//! The digest as a projection: once a period is over, it sums up that period's events of
//! `#incidents` and `#alerts` (read from the store, after the last digest's cursors) and
//! appends an `InsightDigest` to `#digest`, in the same atomic write as its checkpoint. A
//! period is over when the log shows an event recorded after it, or, on a quiet log, when the
//! wall clock is a grace past its end. On restore, the last digest gives the next period and
//! the cursors, and `#incidents` gives each incident's latest insight. The first digest ever
//! covers the current period: older history is not summed up.

use super::runner::{Projection, ProjectionError};
use crate::alerts::digest::{period_of, DigestBuilder, Known};
use crate::alerts::{ALERT_STREAM, DIGEST_STREAM};
use crate::events::codec::EventRecord;
use crate::events::{EventStore, NewEvent, StoredEvent, StreamEvent, WriteOp};
use crate::incidents::INCIDENT_STREAM;

pub struct DigestProjection {
    period_ms: i64,
    /// The period being gathered: `[start, end)`; `None` until the first event.
    current: Option<(i64, i64)>,
    incidents_seq: u64,
    alerts_seq: u64,
    known: Known,
    /// Seq of the last digest.
    head: u64,
}

impl DigestProjection {
    pub fn new(period_s: u64) -> DigestProjection {
        DigestProjection {
            period_ms: period_s.max(1) as i64 * 1000,
            current: None,
            incidents_seq: 0,
            alerts_seq: 0,
            known: Known::default(),
            head: 0,
        }
    }

    /// The first digest ever: it covers the period holding `now_ms`. What the log held before
    /// it (a node upgraded with months of history) is skipped, not summed up hour by hour, but
    /// its incidents' insights are learnt, so a later resolution is counted by its type.
    fn start(&mut self, store: &dyn EventStore, now_ms: i64) -> Result<(), ProjectionError> {
        let (start, end) = period_of(now_ms, self.period_ms);
        self.current = Some((start, end));
        let mut skipped = DigestBuilder::new(0, start);
        self.incidents_seq = self.read(store, INCIDENT_STREAM, 0, start, &mut skipped)?;
        self.alerts_seq = self.read(store, ALERT_STREAM, 0, start, &mut skipped)?;
        // Resolutions before the first period are not counted; forget those incidents.
        let _ = skipped.finish(&mut self.known, 0, 0);
        Ok(())
    }

    /// How long past a period's end a quiet log waits for late writes before closing it.
    fn grace_ms(&self) -> i64 {
        (self.period_ms / 10).clamp(1000, 60_000)
    }

    /// The digests of every period over by `clock_ms`.
    fn close_until(
        &mut self,
        store: &dyn EventStore,
        clock_ms: i64,
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut ops = Vec::new();
        while let Some((start, end)) = self.current.filter(|(_, end)| clock_ms >= *end) {
            let mut builder = DigestBuilder::new(start, end);
            self.incidents_seq = self.read(
                store,
                INCIDENT_STREAM,
                self.incidents_seq,
                end,
                &mut builder,
            )?;
            self.alerts_seq = self.read(store, ALERT_STREAM, self.alerts_seq, end, &mut builder)?;
            let digest = builder.finish(&mut self.known, self.incidents_seq, self.alerts_seq);
            self.head += 1;
            ops.push(WriteOp::Append(NewEvent::new(&EventRecord::of(
                DIGEST_STREAM,
                self.head,
                end,
                &StreamEvent::InsightDigest(digest),
                &Default::default(),
            ))));
            self.current = Some((end, end + self.period_ms));
        }
        Ok(ops)
    }

    /// Feed `builder` the events of `stream` after `after_seq` recorded before `end_ms`;
    /// the last seq read.
    fn read(
        &mut self,
        store: &dyn EventStore,
        stream: &str,
        after_seq: u64,
        end_ms: i64,
        builder: &mut DigestBuilder,
    ) -> Result<u64, ProjectionError> {
        let mut seq = after_seq;
        loop {
            let page = store.read_stream(stream, seq + 1, 1000)?;
            if page.is_empty() {
                return Ok(seq);
            }
            for e in &page {
                if e.record.recorded_at_ms >= end_ms {
                    return Ok(seq);
                }
                seq = e.record.seq;
                if let Ok(event) = e.record.decode_event() {
                    builder.add(&event, &mut self.known);
                }
            }
        }
    }
}

impl Projection for DigestProjection {
    fn name(&self) -> &'static str {
        "digest"
    }

    fn restore(&mut self, store: &dyn EventStore) -> Result<(), ProjectionError> {
        *self = DigestProjection::new((self.period_ms / 1000) as u64);
        let head = store.stream_head(DIGEST_STREAM)?;
        if head > 0 {
            let last = store
                .read_stream(DIGEST_STREAM, head, 1)?
                .into_iter()
                .next()
                .and_then(|e| e.record.decode_event().ok());
            if let Some(StreamEvent::InsightDigest(d)) = last {
                self.head = head;
                self.incidents_seq = d.incidents_seq;
                self.alerts_seq = d.alerts_seq;
                self.current = Some((d.period_end_ms, d.period_end_ms + self.period_ms));
            }
        }
        // Each incident's latest insight and ports, up to where the digests have read.
        let mut seq = 0;
        while seq < self.incidents_seq {
            let page = store.read_stream(INCIDENT_STREAM, seq + 1, 1000)?;
            let Some(last) = page.last() else { break };
            seq = last.record.seq;
            for e in page.iter().filter(|e| e.record.seq <= self.incidents_seq) {
                match e.record.decode_event() {
                    // Counted by an earlier digest already.
                    Ok(StreamEvent::IncidentResolved(inc)) => self.known.forget(&inc.incident_id),
                    Ok(event) => self.known.learn(&event),
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let Some(clock) = events.iter().map(|e| e.record.recorded_at_ms).max() else {
            return Ok(Vec::new());
        };
        if self.current.is_none() {
            self.start(store, crate::clock::now_ms().max(clock))?;
        }
        self.close_until(store, clock)
    }

    fn idle(&mut self, store: &dyn EventStore) -> Vec<WriteOp> {
        let clock = crate::clock::now_ms() - self.grace_ms();
        match self.close_until(store, clock) {
            Ok(ops) => ops,
            Err(e) => {
                tracing::warn!(error = %e, "digest: reading the period failed; tried again");
                // Nothing was written: gather the period again from the last digest.
                if let Err(e) = self.restore(store) {
                    tracing::warn!(error = %e, "digest: restore failed");
                }
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::codec::EventRecord;
    use crate::events::types::{test_incident, IncidentScope};
    use crate::events::{open_store, Engine, NewEvent};

    fn opened(id: &str, port: &str, at_ms: i64) -> EventRecord {
        let mut inc = test_incident(id, IncidentScope::Port, &[port]);
        inc.at_ms = at_ms;
        let seq = id.trim_start_matches("inc-").parse().expect("seq");
        EventRecord::of(
            INCIDENT_STREAM,
            seq,
            at_ms,
            &StreamEvent::IncidentOpened(inc),
            &Default::default(),
        )
    }

    fn append(store: &dyn EventStore, r: &EventRecord) -> Vec<StoredEvent> {
        let off = store
            .write(&[WriteOp::Append(NewEvent::new(r))])
            .expect("write")[0];
        store.read_from(off, 1).expect("read")
    }

    fn digests(store: &dyn EventStore) -> Vec<crate::events::types::InsightDigestV1> {
        store
            .read_stream(DIGEST_STREAM, 1, 100)
            .expect("read")
            .iter()
            .filter_map(|e| match e.record.decode_event() {
                Ok(StreamEvent::InsightDigest(d)) => Some(d),
                _ => None,
            })
            .collect()
    }

    /// Given a digest written and the projection restarted, when the next period closes, then
    /// it follows the last one and counts only what came after it.
    #[tokio::test]
    async fn a_restarted_digest_goes_on_from_the_last_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = open_store(Engine::Fjall, dir.path()).expect("store");
        let store = store.as_ref();
        let now = crate::clock::now_ms();
        let (start, end) = period_of(now, 10_000);

        let mut p = DigestProjection::new(10);
        p.restore(store).expect("restore");
        let page = append(store, &opened("inc-1", "leaf1/p1", now));
        let ops = p.handle(store, &page).await.expect("handle");
        assert!(ops.is_empty(), "the period is not over");
        // A later event closes the period.
        let page = append(store, &opened("inc-2", "leaf1/p2", end + 1));
        let ops = p.handle(store, &page).await.expect("handle");
        store.write(&ops).expect("write digest");
        let first = digests(store);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].period_start_ms, first[0].period_end_ms),
            (start, end)
        );
        assert_eq!(first[0].opened[0].count, 1, "{:?}", first[0]);
        assert_eq!(first[0].incidents_seq, 1);

        // Restarted: the next period starts at the last one's end, from its cursor.
        let mut again = DigestProjection::new(10);
        again.restore(store).expect("restore");
        let page = append(store, &opened("inc-3", "leaf1/p3", end + 10_001));
        let ops = again.handle(store, &page).await.expect("handle");
        store.write(&ops).expect("write digest");
        let all = digests(store);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[1].period_start_ms, end);
        assert_eq!(all[1].opened[0].count, 1, "only inc-2: {:?}", all[1]);
        assert_eq!(all[1].top_ports[0].stream_id, "leaf1/p2");
    }

    /// Given a log with history and no digest yet, then the first digest covers the current
    /// period only: the history is not summed up hour by hour.
    #[tokio::test]
    async fn the_first_digest_skips_older_history() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = open_store(Engine::Fjall, dir.path()).expect("store");
        let store = store.as_ref();
        let now = crate::clock::now_ms();
        let (_, end) = period_of(now, 10_000);
        let old = append(store, &opened("inc-1", "old/p1", now - 86_400_000));
        let mut p = DigestProjection::new(10);
        p.restore(store).expect("restore");
        assert!(p.handle(store, &old).await.expect("handle").is_empty());
        let page = append(store, &opened("inc-2", "new/p1", now));
        assert!(p.handle(store, &page).await.expect("handle").is_empty());
        let page = append(store, &opened("inc-3", "later/p1", end + 1));
        let ops = p.handle(store, &page).await.expect("handle");
        assert_eq!(
            ops.len(),
            1,
            "one digest, not one per period since yesterday"
        );
        store.write(&ops).expect("write");
        let d = &digests(store)[0];
        assert_eq!(d.opened[0].count, 1, "only inc-2: {d:?}");
        assert_eq!(d.top_ports[0].stream_id, "new/p1");
    }
}
