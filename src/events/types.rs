//! Events of a stream. A persisted struct never changes: a new shape is a new version with an
//! upcast in `codec`. Golden bytes for every (type, version) are checked in `golden`.

use crate::detect::rules::{Rule, Severity};
use crate::sample::port::{NodeType, PeerPort, PortIdentity};
use crate::sample::{Sample, SampleV1, SampleV2};
use crate::vocab::{InsightSource, PredictionType};
use serde::{Deserialize, Serialize};

mod digest;
mod incident;
mod insight;

pub use digest::{DigestCountV1, DigestPortV1, InsightDigestV1};
#[cfg(test)]
pub use incident::test_incident;
pub use incident::{
    IncidentMemberV1, IncidentNodeV1, IncidentScope, IncidentV1, IncidentV2, MemberAnomalyV1,
};
pub use insight::{InsightGeneratedV1, InsightGeneratedV2};

/// A sample was accepted into the stream (v1: before the port's identity, peer and link).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricObservedV1 {
    pub sample: SampleV1,
}

/// v2: with the port's identity, its peer, the link and physical-layer health. Frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricObservedV2 {
    pub sample: SampleV2,
}

/// A sample was accepted into the stream. Carries the whole validated sample, with the port's
/// identity, its peer, the link (supported and enabled widths and speeds too), physical-layer
/// health, and what the collector found against the rest of the fabric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricObservedV3 {
    pub sample: Sample,
}

impl From<MetricObservedV1> for MetricObservedV3 {
    fn from(v: MetricObservedV1) -> MetricObservedV3 {
        MetricObservedV3 {
            sample: v.sample.into(),
        }
    }
}

impl From<MetricObservedV2> for MetricObservedV3 {
    fn from(v: MetricObservedV2) -> MetricObservedV3 {
        MetricObservedV3 {
            sample: v.sample.into(),
        }
    }
}

/// A rule fired and opened (or escalated) an anomaly. Carries its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyDetectedV1 {
    pub anomaly_id: String,
    pub rule: Rule,
    pub metric: String,
    pub value: f64,
    pub baseline: Option<f64>,
    pub delta_pct: Option<f64>,
    pub threshold: f64,
    pub severity: Severity,
    /// Set when this raises the severity of an anomaly that was already open.
    pub escalated_from: Option<Severity>,
    /// The sample-time window of the evidence: previous sample (or counter reading) to this one.
    pub window_start_ms: i64,
    pub window_end_ms: i64,
}

/// A rule fired and opened (or escalated) an anomaly: its evidence, and where the port sits in
/// the fabric (so incidents can be grouped without reading samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyDetectedV2 {
    pub anomaly_id: String,
    pub rule: Rule,
    pub metric: String,
    pub value: f64,
    pub baseline: Option<f64>,
    pub delta_pct: Option<f64>,
    pub threshold: f64,
    pub severity: Severity,
    pub escalated_from: Option<Severity>,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// The port, as of its last sample.
    pub port: PortIdentity,
    /// The port's peer as last reported (a port that is down reports none).
    pub peer: Option<PeerPort>,
}

impl From<AnomalyDetectedV1> for AnomalyDetectedV2 {
    fn from(v: AnomalyDetectedV1) -> AnomalyDetectedV2 {
        AnomalyDetectedV2 {
            anomaly_id: v.anomaly_id,
            rule: v.rule,
            metric: v.metric,
            value: v.value,
            baseline: v.baseline,
            delta_pct: v.delta_pct,
            threshold: v.threshold,
            severity: v.severity,
            escalated_from: v.escalated_from,
            window_start_ms: v.window_start_ms,
            window_end_ms: v.window_end_ms,
            port: PortIdentity::default(),
            peer: None,
        }
    }
}

/// An open anomaly's condition stayed clear long enough; it is closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyResolvedV1 {
    pub anomaly_id: String,
    pub rule: Rule,
    pub metric: String,
    pub opened_at_ms: i64,
    pub resolved_at_ms: i64,
    pub last_value: f64,
}

/// A critical insight raised an alert (or escalated one to a higher risk tier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRaisedV1 {
    /// Deterministic: the insight's stream and seq.
    pub alert_id: String,
    pub stream_id: String,
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub tier: u8,
    pub escalated_from_tier: Option<u8>,
    pub explanation: String,
    pub insight_seq: u64,
    pub anomaly_seq: u64,
    pub raised_at_ms: i64,
}

/// A critical incident insight raised an alert (or escalated one to a higher risk tier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRaisedV2 {
    /// Deterministic: the insight's stream and seq.
    pub alert_id: String,
    /// The incident's lead port (the one its analysis starts from).
    pub stream_id: String,
    pub incident_id: Option<String>,
    /// Every port of the incident.
    pub ports: Vec<String>,
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub tier: u8,
    pub escalated_from_tier: Option<u8>,
    pub explanation: String,
    pub insight_seq: u64,
    pub anomaly_seq: u64,
    pub raised_at_ms: i64,
}

impl From<AlertRaisedV1> for AlertRaisedV2 {
    fn from(v: AlertRaisedV1) -> AlertRaisedV2 {
        AlertRaisedV2 {
            ports: vec![v.stream_id.clone()],
            alert_id: v.alert_id,
            stream_id: v.stream_id,
            incident_id: None,
            prediction_type: v.prediction_type,
            risk_score: v.risk_score,
            tier: v.tier,
            escalated_from_tier: v.escalated_from_tier,
            explanation: v.explanation,
            insight_seq: v.insight_seq,
            anomaly_seq: v.anomaly_seq,
            raised_at_ms: v.raised_at_ms,
        }
    }
}

/// A repeat of a raised alert inside the dedup window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSuppressedV1 {
    /// The alert this repeat was folded into.
    pub alert_id: String,
    pub stream_id: String,
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub insight_seq: u64,
    /// Repeats suppressed into the alert so far, this one included.
    pub suppressed_count: u32,
    pub alert_raised_at_ms: i64,
    pub at_ms: i64,
}

pub use crate::vocab::Verdict;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertTriagedV1 {
    pub alert_id: String,
    pub verdict: Verdict,
    /// The alert's risk when it was raised (to tell critical false positives apart).
    pub risk_score: u8,
    pub at_ms: i64,
}

/// Planned work: anomalies on these ports from `from_ms` until `until_ms` are recorded, but
/// open no alert and make no model call. Appended to `#maintenance` by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceScheduledV1 {
    /// Deterministic: `mw-` and the event's seq in `#maintenance`.
    pub window_id: String,
    /// Nodes by description (`*` matches any run of characters) or GUID (`0x…`).
    pub nodes: Vec<String>,
    /// Ports by stream id (`leaf07/p3`) or `GUID/port` (`0x…/3`).
    pub ports: Vec<String>,
    pub from_ms: i64,
    pub until_ms: i64,
    pub reason: String,
    /// Who asked (the token's role), and when.
    pub created_by: String,
    pub at_ms: i64,
}

/// A maintenance window ended before its `until` (`DELETE /v1/maintenance/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceEndedV1 {
    pub window_id: String,
    pub at_ms: i64,
}

// Samples are nearly every event and the largest; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    MetricObserved(MetricObservedV3),
    AnomalyDetected(AnomalyDetectedV2),
    AnomalyResolved(AnomalyResolvedV1),
    InsightGenerated(InsightGeneratedV2),
    AlertRaised(AlertRaisedV2),
    AlertSuppressed(AlertSuppressedV1),
    AlertTriaged(AlertTriagedV1),
    IncidentOpened(IncidentV2),
    IncidentGrown(IncidentV2),
    IncidentEscalated(IncidentV2),
    IncidentResolved(IncidentV2),
    MaintenanceScheduled(MaintenanceScheduledV1),
    MaintenanceEnded(MaintenanceEndedV1),
    InsightDigest(InsightDigestV1),
}

impl StreamEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            StreamEvent::MetricObserved(_) => "MetricObserved",
            StreamEvent::AnomalyDetected(_) => "AnomalyDetected",
            StreamEvent::AnomalyResolved(_) => "AnomalyResolved",
            StreamEvent::InsightGenerated(_) => "InsightGenerated",
            StreamEvent::AlertRaised(_) => "AlertRaised",
            StreamEvent::AlertSuppressed(_) => "AlertSuppressed",
            StreamEvent::AlertTriaged(_) => "AlertTriaged",
            StreamEvent::IncidentOpened(_) => "IncidentOpened",
            StreamEvent::IncidentGrown(_) => "IncidentGrown",
            StreamEvent::IncidentEscalated(_) => "IncidentEscalated",
            StreamEvent::IncidentResolved(_) => "IncidentResolved",
            StreamEvent::MaintenanceScheduled(_) => "MaintenanceScheduled",
            StreamEvent::MaintenanceEnded(_) => "MaintenanceEnded",
            StreamEvent::InsightDigest(_) => "InsightDigest",
        }
    }

    /// The incident an incident event carries.
    pub fn incident(&self) -> Option<&IncidentV2> {
        match self {
            StreamEvent::IncidentOpened(i)
            | StreamEvent::IncidentGrown(i)
            | StreamEvent::IncidentEscalated(i)
            | StreamEvent::IncidentResolved(i) => Some(i),
            _ => None,
        }
    }

    /// The incident an incident event carries, to change before it is written.
    pub fn incident_mut(&mut self) -> Option<&mut IncidentV2> {
        match self {
            StreamEvent::IncidentOpened(i)
            | StreamEvent::IncidentGrown(i)
            | StreamEvent::IncidentEscalated(i)
            | StreamEvent::IncidentResolved(i) => Some(i),
            _ => None,
        }
    }

    /// The schema version new events of this type are written with.
    pub fn schema_version(&self) -> u16 {
        match self {
            StreamEvent::MetricObserved(_) => 3,
            StreamEvent::AnomalyDetected(_)
            | StreamEvent::InsightGenerated(_)
            | StreamEvent::AlertRaised(_)
            | StreamEvent::IncidentOpened(_)
            | StreamEvent::IncidentGrown(_)
            | StreamEvent::IncidentEscalated(_)
            | StreamEvent::IncidentResolved(_) => 2,
            _ => 1,
        }
    }

    /// Raw samples are compacted by age once a snapshot covers them; other events are kept.
    pub fn is_raw_sample(event_type: &str) -> bool {
        event_type == "MetricObserved"
    }

    /// The payload as JSON, for the API and `ibsight events`.
    pub fn payload_json(&self) -> serde_json::Value {
        let v = match self {
            StreamEvent::MetricObserved(e) => serde_json::to_value(e),
            StreamEvent::AnomalyDetected(e) => serde_json::to_value(e),
            StreamEvent::AnomalyResolved(e) => serde_json::to_value(e),
            StreamEvent::InsightGenerated(e) => serde_json::to_value(e),
            StreamEvent::AlertRaised(e) => serde_json::to_value(e),
            StreamEvent::AlertSuppressed(e) => serde_json::to_value(e),
            StreamEvent::AlertTriaged(e) => serde_json::to_value(e),
            StreamEvent::IncidentOpened(e)
            | StreamEvent::IncidentGrown(e)
            | StreamEvent::IncidentEscalated(e)
            | StreamEvent::IncidentResolved(e) => serde_json::to_value(e),
            StreamEvent::MaintenanceScheduled(e) => serde_json::to_value(e),
            StreamEvent::MaintenanceEnded(e) => serde_json::to_value(e),
            StreamEvent::InsightDigest(e) => serde_json::to_value(e),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}
