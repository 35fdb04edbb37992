//! The EventBridge sink (`aws-sdk-eventbridge`): each raised alert becomes one PutEvents entry
//! (Source `iops.ai.lambda`, DetailType `Critical Insight`, on a configurable bus), and each
//! periodic digest one `Insight Digest` entry. Entries
//! counted in FailedEntryCount are retried, alone. The alert id is deterministic, so a consumer
//! can drop the rare duplicate left by a crash between sending and checkpointing.

use super::runner::{dead_letter, Projection, ProjectionError};
use crate::events::types::AlertRaisedV2;
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
    /// The DetailType of the periodic digest.
    pub digest_detail_type: String,
}

impl Default for EventBridgeConfig {
    fn default() -> Self {
        EventBridgeConfig {
            enabled: false,
            bus: "default".into(),
            source: "iops.ai.lambda".into(),
            detail_type: "Critical Insight".into(),
            digest_detail_type: "Insight Digest".into(),
        }
    }
}

/// The event's `detail`: what the EventBridge rule matches on (`risk_score`) and what an
/// e-mail or a consumer reads.
pub fn detail(a: &AlertRaisedV2) -> serde_json::Value {
    json!({
        "alert_id": a.alert_id,
        "risk_score": a.risk_score,
        "prediction_type": a.prediction_type,
        "explanation": a.explanation,
        "stream_id": a.stream_id,
        "incident_id": a.incident_id,
        "ports": a.ports,
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

    /// Send one chunk. Entries rejected for good come back with their error code; the others
    /// are retried alone with backoff. On an outage (a failed request, or entries still
    /// failing after the attempts) the error comes with the offset of the earliest entry not
    /// yet accepted, so the runner checkpoints only what was delivered.
    async fn send(
        &self,
        mut pending: Vec<Pending>,
    ) -> Result<Vec<(Pending, String)>, (u64, ProjectionError)> {
        let mut rejected = Vec::new();
        let mut delay = Duration::from_millis(100);
        for attempt in 0.. {
            let first = pending.first().map_or(u64::MAX, |p| p.offset);
            let out = self
                .client
                .put_events()
                .set_entries(Some(pending.iter().map(|p| p.entry.clone()).collect()))
                .send()
                .await
                .map_err(|e| (first, sink_err(format!("put events: {e:?}"))))?;
            if out.failed_entry_count() == 0 {
                break;
            }
            // Results are in request order: keep the failed entries, set aside the hopeless.
            let mut retry = Vec::new();
            for (p, r) in pending.into_iter().zip(out.entries()) {
                match r.error_code() {
                    None => {}
                    Some(code) if is_permanent(code) => {
                        let reason = format!("{code}: {}", r.error_message().unwrap_or(""));
                        rejected.push((p, reason));
                    }
                    Some(_) => retry.push(p),
                }
            }
            pending = retry;
            if pending.is_empty() {
                break;
            }
            if attempt >= 8 {
                let first = pending[0].offset;
                return Err((
                    first,
                    sink_err(format!("{} entries kept failing", pending.len())),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Ok(rejected)
    }
}

/// One alert's entry and where it is in the log.
#[derive(Clone)]
struct Pending {
    offset: u64,
    entry: PutEventsRequestEntry,
    detail: serde_json::Value,
}

/// Per-entry error codes no retry will fix (the entry itself is bad). Throttling, internal
/// errors and anything unknown are treated as an outage: retried, never dropped.
pub fn is_permanent(code: &str) -> bool {
    matches!(
        code,
        "MalformedDetail" | "InvalidArgument" | "ValidationException" | "MalformedEvent"
    )
}

impl Projection for EventBridgeProjection {
    fn name(&self) -> &'static str {
        "eventbridge"
    }

    async fn handle(
        &mut self,
        _store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut entries: Vec<Pending> = Vec::new();
        let mut traces = Vec::new();
        for e in events {
            if !matches!(&*e.record.event_type, "AlertRaised" | "InsightDigest") {
                continue;
            }
            let (detail, detail_type) = match e.record.decode_event() {
                Ok(StreamEvent::AlertRaised(a)) => (detail(&a), &self.cfg.detail_type),
                Ok(StreamEvent::InsightDigest(d)) => (
                    crate::alerts::digest::detail(&d),
                    &self.cfg.digest_detail_type,
                ),
                _ => continue,
            };
            entries.push(Pending {
                offset: e.offset,
                entry: PutEventsRequestEntry::builder()
                    .source(&self.cfg.source)
                    .detail_type(detail_type)
                    .event_bus_name(&self.cfg.bus)
                    .detail(detail.to_string())
                    .build(),
                detail,
            });
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
            let mut ops = Vec::new();
            for chunk in entries.chunks(MAX_ENTRIES) {
                match self.send(chunk.to_vec()).await {
                    Ok(rejected) => {
                        for (p, reason) in rejected {
                            ops.push(dead_letter(self.name(), p.offset, &reason, p.detail));
                        }
                    }
                    Err((first_unsent, error)) => {
                        return Err(ProjectionError::partial(first_unsent, ops, error))
                    }
                }
            }
            Ok(ops)
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_bad_entry_is_permanent_an_outage_never_is() {
        for code in ["MalformedDetail", "InvalidArgument", "ValidationException"] {
            assert!(super::is_permanent(code), "{code}");
        }
        for code in [
            "ThrottlingException",
            "InternalFailure",
            "InternalException",
            "Whatever",
        ] {
            assert!(!super::is_permanent(code), "{code}");
        }
    }
}
