//! Windows in the log: appended to `#maintenance` one writer at a time (so its seqs stay
//! contiguous, and a window's id is its seq), and read back as a book.

use super::request::WindowRequest;
use super::window::{MaintenanceBook, Window};
use super::MAINTENANCE_STREAM;
use crate::events::codec::EventRecord;
use crate::events::types::{MaintenanceEndedV1, MaintenanceScheduledV1};
use crate::events::writer::Writer;
use crate::events::{NewEvent, Origin, StoreError, StreamEvent, WriteOp};

pub struct MaintenanceLog {
    writer: Writer,
    lock: tokio::sync::Mutex<()>,
}

/// What ending a window did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Now(Window),
    /// It had ended already (early or at its `until`); nothing was written.
    Already(Window),
    Unknown,
}

impl MaintenanceLog {
    pub fn new(writer: Writer) -> MaintenanceLog {
        MaintenanceLog {
            writer,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Every window in the log.
    pub fn book(&self) -> Result<MaintenanceBook, StoreError> {
        let store = self.writer.store();
        let mut book = MaintenanceBook::default();
        let mut from = 1;
        loop {
            let page = store.read_stream(MAINTENANCE_STREAM, from, 1000)?;
            let Some(last) = page.last().map(|e| e.record.seq) else {
                break;
            };
            for e in &page {
                if let Ok(event) = e.record.decode_event() {
                    book.apply(&event, e.offset);
                }
            }
            from = last + 1;
        }
        Ok(book)
    }

    async fn append(&self, seq: u64, now: i64, event: &StreamEvent) -> Result<(), StoreError> {
        let origin = Origin {
            correlation_id: None,
            trace: crate::telemetry::context::current(),
        };
        let record = EventRecord::of(MAINTENANCE_STREAM, seq, now, event, &origin);
        self.writer
            .write(vec![WriteOp::Append(NewEvent::new(&record))])
            .await
            .map(|_| ())
    }

    /// Record a window durably.
    pub async fn schedule(
        &self,
        req: WindowRequest,
        created_by: &str,
    ) -> Result<MaintenanceScheduledV1, StoreError> {
        let _one_at_a_time = self.lock.lock().await;
        let seq = self.writer.store().stream_head(MAINTENANCE_STREAM)? + 1;
        let now = crate::clock::now_ms();
        let scheduled = MaintenanceScheduledV1 {
            window_id: format!("mw-{seq}"),
            nodes: req.nodes,
            ports: req.ports,
            from_ms: req.from_ms,
            until_ms: req.until_ms,
            reason: req.reason,
            created_by: created_by.to_string(),
            at_ms: now,
        };
        self.append(
            seq,
            now,
            &StreamEvent::MaintenanceScheduled(scheduled.clone()),
        )
        .await?;
        Ok(scheduled)
    }

    /// End a window now.
    pub async fn end(&self, window_id: &str) -> Result<Ended, StoreError> {
        let _one_at_a_time = self.lock.lock().await;
        let book = self.book()?;
        let Some(window) = book.windows.get(window_id).cloned() else {
            return Ok(Ended::Unknown);
        };
        let now = crate::clock::now_ms();
        if window.ended.is_some() || window.end_ms() <= now {
            return Ok(Ended::Already(window));
        }
        let seq = self.writer.store().stream_head(MAINTENANCE_STREAM)? + 1;
        let event = StreamEvent::MaintenanceEnded(MaintenanceEndedV1 {
            window_id: window_id.to_string(),
            at_ms: now,
        });
        self.append(seq, now, &event).await?;
        let mut window = window;
        window.ended = Some((u64::MAX, now));
        Ok(Ended::Now(window))
    }
}
