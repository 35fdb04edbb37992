//! Operators' verdicts on raised alerts, appended to the internal `#triage` stream (one writer
//! at a time, so its seqs stay contiguous). They feed `ibsight_alert_triage_total{verdict}`,
//! the critical false-positive rate that is a rollback trigger (docs/OPERATIONS.md).

use crate::events::codec::EventRecord;
use crate::events::types::{AlertTriagedV1, Verdict};
use crate::events::writer::Writer;
use crate::events::Origin;
use crate::events::{NewEvent, StoreError, StreamEvent, WriteOp};

/// The log stream of triage verdicts (`#` never appears in a client's stream id).
pub const TRIAGE_STREAM: &str = "#triage";

pub struct Triage {
    writer: Writer,
    lock: tokio::sync::Mutex<()>,
}

impl Triage {
    /// Counts the verdicts already in the log into the metrics.
    pub fn start(writer: Writer) -> Result<Triage, StoreError> {
        let store = writer.store().clone();
        let mut from = 1;
        loop {
            let page = store.read_stream(TRIAGE_STREAM, from, 1000)?;
            let Some(last) = page.last().map(|e| e.record.seq) else {
                break;
            };
            for e in &page {
                if let Ok(StreamEvent::AlertTriaged(t)) = e.record.decode_event() {
                    count(t.verdict);
                }
            }
            from = last + 1;
        }
        Ok(Triage {
            writer,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Record a verdict durably; returns its seq in `#triage`.
    pub async fn record(
        &self,
        alert_id: &str,
        verdict: Verdict,
        risk_score: u8,
    ) -> Result<u64, StoreError> {
        let _one_at_a_time = self.lock.lock().await;
        let seq = self.writer.store().stream_head(TRIAGE_STREAM)? + 1;
        let now = crate::clock::now_ms();
        let event = StreamEvent::AlertTriaged(AlertTriagedV1 {
            alert_id: alert_id.to_string(),
            verdict,
            risk_score,
            at_ms: now,
        });
        let origin = Origin {
            correlation_id: None,
            trace: crate::telemetry::context::current(),
        };
        let record = EventRecord::of(TRIAGE_STREAM, seq, now, &event, &origin);
        self.writer
            .write(vec![WriteOp::Append(NewEvent::new(&record))])
            .await?;
        count(verdict);
        Ok(seq)
    }
}

fn count(verdict: Verdict) {
    crate::metrics::global().alert_triage.inc(verdict.name(), 1);
}
