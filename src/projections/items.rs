//! The read-model items, one shape for every sink: the embedded views, DynamoDB and the API.
//! Fields follow the seed's DynamoDB schema (entity_id, timestamp, entity_type,
//! prediction_type, risk_score, explanation, recommendations, model_used, confidence,
//! related_entity, ttl) plus the source and the anomaly's evidence.

use crate::events::types::{AlertRaisedV2, AnomalyDetectedV2, InsightGeneratedV1};
use crate::events::{EventStore, StoreError, StoredEvent, StreamEvent};
use serde_json::{json, Value};

/// Items expire from DynamoDB after this long.
pub const TTL_DAYS: i64 = 30;

/// Deterministic, so a re-delivered write leaves one item.
pub fn insight_entity_id(stream_id: &str, seq: u64) -> String {
    format!("insight#{stream_id}#{seq}")
}

pub fn alert_entity_id(alert_id: &str) -> String {
    format!("alert#{alert_id}")
}

/// The view key that lists newest first: inverted time, then the id.
pub fn newest_first_key(at_ms: i64, entity_id: &str) -> Vec<u8> {
    let mut k = (u64::MAX - at_ms.max(0) as u64).to_be_bytes().to_vec();
    k.extend_from_slice(entity_id.as_bytes());
    k
}

fn ttl(at_ms: i64) -> i64 {
    at_ms / 1000 + TTL_DAYS * 86_400
}

pub fn insight_item(
    stream_id: &str,
    seq: u64,
    at_ms: i64,
    i: &InsightGeneratedV1,
    anomaly: Option<&AnomalyDetectedV2>,
) -> Value {
    json!({
        "entity_id": insight_entity_id(stream_id, seq),
        "timestamp": crate::clock::rfc3339(at_ms),
        "entity_type": "insight",
        "prediction_type": i.prediction_type,
        "risk_score": i.risk_score,
        "explanation": i.explanation,
        "recommendations": i.recommendations,
        "model_used": i.model_id.clone().unwrap_or_else(|| "rules".into()),
        "confidence": i.confidence,
        "related_entity": stream_id,
        "ttl": ttl(at_ms),
        "source": i.source,
        "reason": i.reason,
        "anomaly_seq": i.anomaly_seq,
        "evidence": anomaly.map(|a| json!({
            "rule": a.rule,
            "metric": a.metric,
            "value": a.value,
            "baseline": a.baseline,
            "delta_pct": a.delta_pct,
            "threshold": a.threshold,
            "severity": a.severity,
            "window_start": crate::clock::rfc3339(a.window_start_ms),
            "window_end": crate::clock::rfc3339(a.window_end_ms),
        })),
    })
}

pub fn alert_item(a: &AlertRaisedV2, suppressed: u32) -> Value {
    json!({
        "entity_id": alert_entity_id(&a.alert_id),
        "timestamp": crate::clock::rfc3339(a.raised_at_ms),
        "entity_type": "alert",
        "alert_id": a.alert_id,
        "prediction_type": a.prediction_type,
        "risk_score": a.risk_score,
        "tier": a.tier,
        "escalated_from_tier": a.escalated_from_tier,
        "explanation": a.explanation,
        "related_entity": a.stream_id,
        "insight_entity_id": insight_entity_id(&a.stream_id, a.insight_seq),
        "suppressed": suppressed,
        "ttl": ttl(a.raised_at_ms),
    })
}

/// What one event changes in the read models.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemChange {
    Insight {
        key: Vec<u8>,
        item: Value,
    },
    Alert {
        alert_id: String,
        key: Vec<u8>,
        item: Value,
    },
    /// A repeat folded into a raised alert: its item's `suppressed` count becomes `count`.
    Suppressed {
        alert_id: String,
        key: Vec<u8>,
        entity_id: String,
        timestamp: String,
        count: u32,
    },
}

/// The read-model change an event causes, if any. Insights carry their anomaly's evidence,
/// read back from the log.
pub fn change_for(
    store: &dyn EventStore,
    e: &StoredEvent,
) -> Result<Option<ItemChange>, StoreError> {
    let r = &e.record;
    if !matches!(
        &*r.event_type,
        "InsightGenerated" | "AlertRaised" | "AlertSuppressed"
    ) {
        return Ok(None);
    }
    let Ok(event) = r.decode_event() else {
        return Ok(None);
    };
    Ok(match event {
        StreamEvent::InsightGenerated(i) => {
            let anomaly = store
                .read_event(&r.stream_id, i.anomaly_seq)?
                .and_then(|a| match a.record.decode_event() {
                    Ok(StreamEvent::AnomalyDetected(a)) => Some(a),
                    _ => None,
                });
            let entity_id = insight_entity_id(&r.stream_id, r.seq);
            Some(ItemChange::Insight {
                key: newest_first_key(r.recorded_at_ms, &entity_id),
                item: insight_item(&r.stream_id, r.seq, r.recorded_at_ms, &i, anomaly.as_ref()),
            })
        }
        StreamEvent::AlertRaised(a) => Some(ItemChange::Alert {
            alert_id: a.alert_id.clone(),
            key: newest_first_key(a.raised_at_ms, &alert_entity_id(&a.alert_id)),
            item: alert_item(&a, 0),
        }),
        StreamEvent::AlertSuppressed(s) => {
            let entity_id = alert_entity_id(&s.alert_id);
            Some(ItemChange::Suppressed {
                alert_id: s.alert_id.clone(),
                key: newest_first_key(s.alert_raised_at_ms, &entity_id),
                entity_id,
                timestamp: crate::clock::rfc3339(s.alert_raised_at_ms),
                count: s.suppressed_count,
            })
        }
        _ => None,
    })
}
