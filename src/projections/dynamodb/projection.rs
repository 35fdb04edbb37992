//! The DynamoDB projection: insight and alert items written in log order through the sink,
//! items DynamoDB refuses for good set aside as dead letters, an outage stopped at the first
//! write not done.

use super::{is_rejection, DynamoSink, MAX_BATCH};
use crate::aws::attr;
use crate::events::{EventStore, StoredEvent, WriteOp};
use crate::projections::items::{self, ItemChange};
use crate::projections::runner::{dead_letter, Projection, ProjectionError};
use crate::telemetry::context;
use serde_json::Value;
use tracing::Instrument;

/// Projects insight and alert items into the table.
pub struct DynamoProjection {
    pub sink: DynamoSink,
}

impl Projection for DynamoProjection {
    fn name(&self) -> &'static str {
        "dynamodb"
    }

    async fn handle(
        &mut self,
        store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut writes = Vec::new();
        let mut traces = Vec::new();
        for e in events {
            // Incidents: the item as of each incident event (insights and alerts have their
            // own items, which name the incident).
            if e.record.stream_id == crate::incidents::INCIDENT_STREAM
                && e.record.event_type.starts_with("Incident")
            {
                if let Some(inc) = e
                    .record
                    .decode_event()
                    .ok()
                    .and_then(|ev| ev.incident().cloned())
                {
                    writes.push((
                        e.offset,
                        Write::Put(crate::projections::incidents::incident_item(&inc)),
                    ));
                    traces.extend(e.record.trace);
                }
                continue;
            }
            match items::change_for(store, e)? {
                Some(ItemChange::Insight { item, .. }) | Some(ItemChange::Alert { item, .. }) => {
                    writes.push((e.offset, Write::Put(item)));
                    traces.extend(e.record.trace);
                }
                Some(ItemChange::Suppressed {
                    entity_id,
                    timestamp,
                    count,
                    ..
                }) => writes.push((e.offset, Write::Suppress(entity_id, timestamp, count))),
                None => {}
            }
        }
        let span = context::span_for(&traces, || {
            tracing::info_span!(
                parent: None,
                "dynamodb.BatchWriteItem",
                otel.kind = "client",
                projection = "dynamodb",
                db.system.name = "aws.dynamodb",
                db.operation.name = "BatchWriteItem",
                aws.dynamodb.table_names = %self.sink.table,
                items = writes.len() as i64,
            )
        });
        self.deliver(writes).instrument(span).await
    }
}

/// One write of the projection, in log order.
enum Write {
    Put(Value),
    Suppress(String, String, u32),
}

impl DynamoProjection {
    /// Write in log order: runs of puts as batches of 25, a suppression after the puts before
    /// it (it may update an alert item of the same page). An item DynamoDB refuses for good
    /// becomes a dead letter; an outage stops at the first write not done (`Partial`).
    async fn deliver(&self, writes: Vec<(u64, Write)>) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut ops = Vec::new();
        let mut run: Vec<(u64, Value)> = Vec::new();
        let mut writes = writes.into_iter().peekable();
        loop {
            let next = writes.next();
            if let Some((offset, Write::Put(item))) = next {
                run.push((offset, item));
                let more_puts = matches!(writes.peek(), Some((_, Write::Put(_))));
                if run.len() < MAX_BATCH && more_puts {
                    continue;
                }
                let batch = std::mem::take(&mut run);
                self.put_run(batch, &mut ops)
                    .await
                    .map_err(|(first, error)| {
                        ProjectionError::partial(first, std::mem::take(&mut ops), error)
                    })?;
                continue;
            }
            let Some((offset, Write::Suppress(entity_id, timestamp, count))) = next else {
                return Ok(ops);
            };
            match self
                .sink
                .set_suppressed(&entity_id, &timestamp, count)
                .await
            {
                Ok(()) => {}
                Err(e) if is_rejection(&e) => {
                    let item = serde_json::json!({"entity_id": entity_id, "suppressed": count});
                    ops.push(dead_letter("dynamodb", offset, &e.to_string(), item));
                }
                Err(e) => return Err(ProjectionError::partial(offset, ops, e)),
            }
        }
    }

    /// Put one batch; if DynamoDB refuses the batch, put its items one by one so that only
    /// the bad item is set aside. On an outage: the offset of the first item not written.
    async fn put_run(
        &self,
        run: Vec<(u64, Value)>,
        ops: &mut Vec<WriteOp>,
    ) -> Result<(), (u64, ProjectionError)> {
        let first = run.first().map_or(u64::MAX, |(o, _)| *o);
        let items = run.iter().map(|(_, v)| attr::to_item(v)).collect();
        match self.sink.put_batch(items).await {
            Ok(()) => Ok(()),
            Err((_, e)) if is_rejection(&e) => {
                for (offset, value) in run {
                    match self.sink.put_one(attr::to_item(&value)).await {
                        Ok(()) => {}
                        Err(e) if is_rejection(&e) => {
                            ops.push(dead_letter("dynamodb", offset, &e.to_string(), value))
                        }
                        Err(e) => return Err((offset, e)),
                    }
                }
                Ok(())
            }
            Err((left, e)) => {
                // The earliest item not known to be written.
                let left: Vec<Value> = left.iter().map(attr::from_item).collect();
                let offset = run
                    .iter()
                    .find(|(_, v)| left.contains(v))
                    .map_or(first, |(o, _)| *o);
                Err((offset, e))
            }
        }
    }
}
