//! The read-model items, one shape for every sink: the embedded views, DynamoDB and the API.
//! Fields follow the seed's DynamoDB schema (entity_id, timestamp, entity_type,
//! prediction_type, risk_score, explanation, recommendations, model_used, confidence,
//! related_entity, ttl) plus the source and the anomaly's evidence.

use crate::events::types::{AlertRaisedV2, AnomalyDetectedV2, IncidentV2, InsightGeneratedV2};
use crate::events::{EventStore, StoreError, StoredEvent, StreamEvent};
use crate::incidents::correlator::job_for;
use crate::incidents::INCIDENT_STREAM;
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

pub fn ttl(at_ms: i64) -> i64 {
    at_ms / 1000 + TTL_DAYS * 86_400
}

pub fn insight_item(
    stream_id: &str,
    seq: u64,
    at_ms: i64,
    i: &InsightGeneratedV2,
    anomaly: Option<&AnomalyDetectedV2>,
    incident: Option<&IncidentV2>,
) -> Value {
    let mut item = json!({
        "entity_id": insight_entity_id(stream_id, seq),
        "timestamp": crate::clock::rfc3339(at_ms),
        "entity_type": "insight",
        "prediction_type": i.prediction_type,
        "risk_score": i.risk_score,
        "explanation": i.explanation,
        "recommendations": i.recommendations,
        "model_used": i.model_id.clone().unwrap_or_else(|| "rules".into()),
        "confidence": i.confidence,
        "low_confidence": i.low_confidence,
        "rules_risk": i.rules_risk,
        "prompt_tier": i.prompt_tier,
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
    });
    if let Some(inc) = incident {
        item["incident_id"] = inc.incident_id.clone().into();
        item["scope"] = inc.scope.name().into();
        item["ports"] = inc
            .members
            .iter()
            .map(|m| Value::from(m.stream_id.clone()))
            .collect::<Vec<_>>()
            .into();
    }
    item
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
        "incident_id": a.incident_id,
        "ports": a.ports,
        "insight_entity_id": insight_entity_id(
            if a.incident_id.is_some() { INCIDENT_STREAM } else { &a.stream_id },
            a.insight_seq,
        ),
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
            let asked = store
                .read_event(&r.stream_id, i.anomaly_seq)?
                .and_then(|a| a.record.decode_event().ok());
            // An incident's insight: its evidence is the lead anomaly the analyst was given,
            // and it is about the lead port.
            let (anomaly, incident, related) = match asked {
                Some(StreamEvent::AnomalyDetected(a)) => (Some(a), None, r.stream_id.clone()),
                Some(e) => match e.incident() {
                    Some(inc) => {
                        let job = job_for(inc, i.anomaly_seq, Default::default());
                        (Some(job.anomaly), Some(inc.clone()), job.stream_id)
                    }
                    None => (None, None, r.stream_id.clone()),
                },
                None => (None, None, r.stream_id.clone()),
            };
            let entity_id = insight_entity_id(&r.stream_id, r.seq);
            let mut item = insight_item(
                &r.stream_id,
                r.seq,
                r.recorded_at_ms,
                &i,
                anomaly.as_ref(),
                incident.as_ref(),
            );
            item["related_entity"] = related.into();
            Some(ItemChange::Insight {
                key: newest_first_key(r.recorded_at_ms, &entity_id),
                item,
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
