//! The incident read model: one item per incident (entity_type `incident`), newest first by
//! the time it opened. An incident event gives its scope, state, node and ports; its insight
//! (from `#incidents`) adds the prediction, risk, explanation and recommendations; an alert
//! marks it alerted. An incident absorbed into a switch incident leaves the list.

use super::items::{newest_first_key, ttl};
use crate::events::types::{IncidentScope, IncidentV2, InsightGeneratedV2};
use crate::events::{EventStore, StoreError, StreamEvent};
use crate::incidents::INCIDENT_STREAM;
use serde_json::{json, Value};

pub const INCIDENTS_VIEW: &str = "incidents";

pub fn incident_entity_id(incident_id: &str) -> String {
    format!("incident#{incident_id}")
}

pub fn key(inc: &IncidentV2) -> Vec<u8> {
    newest_first_key(inc.opened_at_ms, &incident_entity_id(&inc.incident_id))
}

/// The item's fields an incident event sets.
pub fn incident_item(inc: &IncidentV2) -> Value {
    let node = match inc.scope {
        IncidentScope::Switch | IncidentScope::Node | IncidentScope::Fabric => {
            inc.node.as_ref().map(|n| {
                json!({
                    "node_guid": crate::sample::port::format_guid(n.node_guid),
                    "node_desc": n.node_desc,
                    "node_type": n.node_type.map(|t| t.name()),
                })
            })
        }
        IncidentScope::Port | IncidentScope::Link => None,
    };
    let ports: Vec<Value> = inc
        .members
        .iter()
        .map(|m| {
            json!({
                "stream_id": m.stream_id,
                "node_guid": m.port.node_guid.map(crate::sample::port::format_guid),
                "port_num": m.port.port_num,
                "node_desc": m.port.node_desc,
                "cleared": m.cleared,
                "anomalies": m.anomalies.iter().map(|a| json!({
                    "rule": a.rule,
                    "metric": a.metric,
                    "value": a.value,
                    "threshold": a.threshold,
                    "severity": a.severity,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "entity_id": incident_entity_id(&inc.incident_id),
        "timestamp": crate::clock::rfc3339(inc.opened_at_ms),
        "entity_type": "incident",
        "id": inc.incident_id,
        "scope": inc.scope.name(),
        "state": if inc.resolved_at_ms.is_some() { "resolved" } else { "open" },
        // The windows every port is in now, and (kept from the first change) when it opened.
        "maintenance": inc.maintenance,
        "opened_in_maintenance": inc.maintenance,
        "severity": inc.severity,
        "opened_at": crate::clock::rfc3339(inc.opened_at_ms),
        "resolved_at": inc.resolved_at_ms.map(crate::clock::rfc3339),
        "merged_into": inc.merged_into,
        "node": node,
        "ports": ports,
        "ttl": ttl(inc.opened_at_ms),
    })
}

/// What an event changes in the incident read model.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentChange {
    /// The incident as of this event (its insight and alert fields are kept).
    Snapshot {
        key: Vec<u8>,
        item: Value,
    },
    /// Absorbed into a bigger incident: it leaves the list.
    Merged {
        key: Vec<u8>,
    },
    /// Its insight: these fields are set.
    Insight {
        key: Vec<u8>,
        incident: Box<IncidentV2>,
        insight: Box<InsightGeneratedV2>,
    },
    Alerted {
        key: Vec<u8>,
    },
}

/// The incident an incident event at `seq` of `#incidents` carries.
pub fn incident_at(store: &dyn EventStore, seq: u64) -> Result<Option<IncidentV2>, StoreError> {
    Ok(store
        .read_event(INCIDENT_STREAM, seq)?
        .and_then(|e| e.record.decode_event().ok())
        .and_then(|e| e.incident().cloned()))
}

fn insight_fields(i: &InsightGeneratedV2) -> Value {
    json!({
        "prediction_type": i.prediction_type,
        "risk_score": i.risk_score,
        "explanation": i.explanation,
        "recommendations": i.recommendations,
        "confidence": i.confidence,
        "low_confidence": i.low_confidence,
        "rules_risk": i.rules_risk,
        "source": i.source,
        "model_used": i.model_id.clone().unwrap_or_else(|| "rules".into()),
    })
}

/// The change `event` (at `stream_id`) makes to the incident read model, if any.
pub fn change_for(
    store: &dyn EventStore,
    stream_id: &str,
    event: &StreamEvent,
) -> Result<Option<IncidentChange>, StoreError> {
    if stream_id != INCIDENT_STREAM && !matches!(event, StreamEvent::AlertRaised(_)) {
        return Ok(None);
    }
    Ok(match event {
        StreamEvent::InsightGenerated(i) => {
            incident_at(store, i.anomaly_seq)?.map(|inc| IncidentChange::Insight {
                key: key(&inc),
                incident: Box::new(inc),
                insight: Box::new(i.clone()),
            })
        }
        StreamEvent::AlertRaised(a) if a.incident_id.is_some() => {
            let insight = store
                .read_event(INCIDENT_STREAM, a.insight_seq)?
                .and_then(|e| e.record.decode_event().ok());
            match insight {
                Some(StreamEvent::InsightGenerated(i)) => incident_at(store, i.anomaly_seq)?
                    .map(|inc| IncidentChange::Alerted { key: key(&inc) }),
                _ => None,
            }
        }
        e => match e.incident() {
            Some(inc) if inc.merged_into.is_some() => {
                Some(IncidentChange::Merged { key: key(inc) })
            }
            Some(inc) => Some(IncidentChange::Snapshot {
                key: key(inc),
                item: incident_item(inc),
            }),
            None => None,
        },
    })
}

/// Apply a change to the current item (if any): the new item, or `None` to remove it.
pub fn merge(current: Option<Value>, change: &IncidentChange) -> Option<Value> {
    let carried = [
        "prediction_type",
        "risk_score",
        "explanation",
        "recommendations",
        "confidence",
        "source",
        "model_used",
        "alerted",
        "opened_in_maintenance",
    ];
    match change {
        IncidentChange::Merged { .. } => None,
        IncidentChange::Snapshot { item, .. } => {
            let mut item = item.clone();
            for k in carried {
                if let Some(v) = current.as_ref().and_then(|c| c.get(k)) {
                    item[k] = v.clone();
                }
            }
            if item.get("alerted").is_none() {
                item["alerted"] = false.into();
            }
            Some(item)
        }
        IncidentChange::Insight { insight, .. } => {
            // An insight for an incident already gone from the list changes nothing.
            let mut item = current?;
            if let Some(map) = insight_fields(insight).as_object() {
                for (k, v) in map {
                    item[k] = v.clone();
                }
            }
            Some(item)
        }
        IncidentChange::Alerted { .. } => {
            let mut item = current?;
            item["alerted"] = true.into();
            Some(item)
        }
    }
}

impl IncidentChange {
    pub fn key(&self) -> &[u8] {
        match self {
            IncidentChange::Snapshot { key, .. }
            | IncidentChange::Merged { key }
            | IncidentChange::Insight { key, .. }
            | IncidentChange::Alerted { key } => key,
        }
    }
}
