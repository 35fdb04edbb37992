//! The digest as a projection: once a period is over, it sums up that period's events of
//! `#incidents` and `#alerts` (read from the store, after the last digest's cursors) and
//! appends an `InsightDigest` to `#digest`, in the same atomic write as its checkpoint. A
//! period is over when the log shows an event recorded after it, or, on a quiet log, when the
//! wall clock is a grace past its end. On restore, the last digest gives the next period and
//! the cursors, and `#incidents` gives each incident's latest insight.

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
        // Each incident's latest insight, up to where the digests have read.
        let mut seq = 0;
        while seq < self.incidents_seq {
            let page = store.read_stream(INCIDENT_STREAM, seq + 1, 1000)?;
            let Some(last) = page.last() else { break };
            seq = last.record.seq;
            for e in page.iter().filter(|e| e.record.seq <= self.incidents_seq) {
                match &*e.record.event_type {
                    "InsightGenerated" | "IncidentResolved" => {}
                    _ => continue,
                }
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
            let first = events
                .iter()
                .map(|e| e.record.recorded_at_ms)
                .min()
                .unwrap_or(clock);
            self.current = Some(period_of(first, self.period_ms));
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
