//! The alert actor as a projection: it reads `InsightGenerated` events from the log, decides
//! (raise, suppress, ignore) and appends `AlertRaised` / `AlertSuppressed` to the alert stream
//! in the same atomic write as its checkpoint, so every alert decision happens exactly once,
//! across restarts too. Its dedup book is rebuilt from the alert stream on restore.

use super::runner::{Projection, ProjectionError};
use crate::alerts::decide::{self, AlertBook, InsightFacts};
use crate::alerts::{AlertsConfig, ALERT_STREAM};
use crate::events::codec::{self, EventRecord};
use crate::events::{EventStore, NewEvent, StoredEvent, StreamEvent, WriteOp};

pub struct AlertProjection {
    cfg: AlertsConfig,
    book: AlertBook,
    /// Seq of the last event in the alert stream.
    head: u64,
}

impl AlertProjection {
    pub fn new(cfg: AlertsConfig) -> AlertProjection {
        AlertProjection {
            cfg,
            book: AlertBook::default(),
            head: 0,
        }
    }
}

impl Projection for AlertProjection {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn restore(&mut self, store: &dyn EventStore) -> Result<(), ProjectionError> {
        self.book = AlertBook::default();
        self.head = 0;
        loop {
            let page = store.read_stream(ALERT_STREAM, self.head + 1, 1000)?;
            let Some(last) = page.last() else { break };
            self.head = last.record.seq;
            for e in &page {
                if let Ok(event) = e.record.decode_event() {
                    decide::apply(&mut self.book, &event);
                }
            }
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        _store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut ops = Vec::new();
        for e in events {
            if e.record.event_type != "InsightGenerated" {
                continue;
            }
            let Ok(StreamEvent::InsightGenerated(insight)) = e.record.decode_event() else {
                continue;
            };
            // Moved from another member, which already made its alert decisions.
            if e.record
                .correlation_id
                .as_deref()
                .is_some_and(|c| c.starts_with(crate::cluster::moves::MOVED_FROM))
            {
                continue;
            }
            let facts = InsightFacts {
                stream_id: e.record.stream_id.clone(),
                insight_seq: e.record.seq,
                anomaly_seq: insight.anomaly_seq,
                prediction_type: insight.prediction_type,
                risk_score: insight.risk_score,
                explanation: insight.explanation,
                at_ms: e.record.recorded_at_ms,
            };
            decide::prune(&mut self.book, facts.at_ms, &self.cfg);
            let Some(alert) = decide::decide(&self.book, &facts, &self.cfg) else {
                continue;
            };
            decide::apply(&mut self.book, &alert);
            let outcome = match alert {
                StreamEvent::AlertRaised(_) => "raised",
                _ => "suppressed",
            };
            crate::metrics::global().alerts.inc(outcome, 1);
            self.head += 1;
            ops.push(WriteOp::Append(NewEvent::new(&EventRecord {
                stream_id: ALERT_STREAM.to_string(),
                seq: self.head,
                recorded_at_ms: facts.at_ms,
                event_type: alert.event_type().into(),
                schema_version: alert.schema_version(),
                correlation_id: e.record.correlation_id.clone(),
                payload: codec::encode_payload(&alert),
                trace: e.record.trace,
            })));
        }
        Ok(ops)
    }
}
