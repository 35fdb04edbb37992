//! The EventBridge sink (`aws-sdk-eventbridge`): each raised alert becomes one PutEvents entry
//! (Source `iops.ai.lambda`, DetailType `Critical Insight`, on a configurable bus). Entries
//! counted in FailedEntryCount are retried, alone. The alert id is deterministic, so a consumer
//! can drop the rare duplicate left by a crash between sending and checkpointing.

use super::runner::{Projection, ProjectionError};
use crate::events::types::AlertRaisedV1;
use crate::events::{EventStore, StoredEvent, StreamEvent, WriteOp};
use crate::telemetry::context;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use tracing::Instrument;

/// PutEvents takes at most 10 entries.
const MAX_ENTRIES: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventBridgeConfig {
    pub enabled: bool,
    pub bus: String,
    pub source: String,
    pub detail_type: String,
}

impl Default for EventBridgeConfig {
    fn default() -> Self {
        EventBridgeConfig {
            enabled: false,
            bus: "default".into(),
            source: "iops.ai.lambda".into(),
            detail_type: "Critical Insight".into(),
        }
    }
}

/// The event's `detail`: what the EventBridge rule matches on (`risk_score`) and what an
/// e-mail or a consumer reads.
pub fn detail(a: &AlertRaisedV1) -> serde_json::Value {
    json!({
        "alert_id": a.alert_id,
        "risk_score": a.risk_score,
        "prediction_type": a.prediction_type,
        "explanation": a.explanation,
        "stream_id": a.stream_id,
        "timestamp": crate::clock::rfc3339(a.raised_at_ms),
    })
}

fn sink_err(reason: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Sink {
        name: "eventbridge".into(),
        reason: reason.to_string(),
    }
}

pub struct EventBridgeProjection {
    client: Client,
    cfg: EventBridgeConfig,
}

impl EventBridgeProjection {
    pub fn new(sdk: &aws_config::SdkConfig, cfg: EventBridgeConfig) -> EventBridgeProjection {
        let conf = aws_sdk_eventbridge::config::Builder::from(sdk)
            .timeout_config(
                aws_sdk_eventbridge::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build();
        EventBridgeProjection {
            client: Client::from_conf(conf),
            cfg,
        }
    }

    async fn send(&self, mut entries: Vec<PutEventsRequestEntry>) -> Result<(), ProjectionError> {
        let mut delay = Duration::from_millis(100);
        for attempt in 0.. {
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries.clone()))
                .send()
                .await
                .map_err(|e| sink_err(format!("put events: {e:?}")))?;
            if out.failed_entry_count() == 0 {
                return Ok(());
            }
            // Keep only the entries that failed (results are in request order).
            entries = entries
                .into_iter()
                .zip(out.entries())
                .filter(|(_, r)| r.error_code().is_some())
                .map(|(e, _)| e)
                .collect();
            if attempt >= 8 {
                return Err(sink_err(format!("{} entries kept failing", entries.len())));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Ok(())
    }
}

impl Projection for EventBridgeProjection {
    fn name(&self) -> &'static str {
        "eventbridge"
    }

    fn restore(&mut self, _store: &dyn EventStore) -> Result<(), ProjectionError> {
        Ok(())
    }

    async fn handle(
        &mut self,
        _store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut entries = Vec::new();
        let mut traces = Vec::new();
        for e in events {
            if e.record.event_type != "AlertRaised" {
                continue;
            }
            let Ok(StreamEvent::AlertRaised(a)) = e.record.decode_event() else {
                continue;
            };
            let detail = detail(&a);
            entries.push(
                PutEventsRequestEntry::builder()
                    .source(&self.cfg.source)
                    .detail_type(&self.cfg.detail_type)
                    .event_bus_name(&self.cfg.bus)
                    .detail(detail.to_string())
                    .build(),
            );
            traces.extend(e.record.trace);
        }
        let span = context::span_for(&traces, || {
            tracing::info_span!(
                parent: None,
                "events.PutEvents",
                otel.kind = "client",
                projection = "eventbridge",
                rpc.system = "aws-api",
                rpc.service = "EventBridge",
                rpc.method = "PutEvents",
                entries = entries.len() as i64,
            )
        });
        async {
            for chunk in entries.chunks(MAX_ENTRIES) {
                self.send(chunk.to_vec()).await?;
            }
            Ok::<_, ProjectionError>(())
        }
        .instrument(span)
        .await?;
        Ok(Vec::new())
    }
}
