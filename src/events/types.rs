//! Events of a stream. A persisted struct never changes: a new shape is a new version with an
//! upcast in `codec`. Golden bytes for every (type, version) are checked in `golden`.

use crate::detect::rules::{Rule, Severity};
use crate::sample::port::{NodeType, PeerPort, PortIdentity};
use crate::sample::{Sample, SampleV1, SampleV2};
use crate::vocab::{InsightSource, PredictionType};
use serde::{Deserialize, Serialize};

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

/// The analyst's answer to one anomaly. An LLM answer is recorded, never recomputed: replay
/// reads it back as it was. The fields repeat `analyst::Insight` and its provenance on
/// purpose: a persisted struct is frozen, while the analyst's own types may evolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightGeneratedV1 {
    /// Seq of the `AnomalyDetected` event this insight answers.
    pub anomaly_seq: u64,
    pub anomaly_id: String,
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub explanation: String,
    pub recommendations: Vec<String>,
    pub confidence: f64,
    /// What validation changed in the model's answer.
    pub notes: Vec<String>,
    pub source: InsightSource,
    /// Why the rules answered, or why the model was not asked.
    pub reason: Option<String>,
    pub model_id: Option<String>,
    pub prompt_version: String,
    pub prompt_hash: Option<String>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub attempts: u32,
    pub batch_size: u32,
}

/// The analyst's answer to one anomaly or incident, with how the model's answer was read.
/// v2 (after v1): the low-confidence mark with the rules' risk that alerting then follows,
/// the prompt tier, and whether the answer came as the schema-forced tool call or as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightGeneratedV2 {
    /// Seq of the `AnomalyDetected` (or incident) event this insight answers.
    pub anomaly_seq: u64,
    pub anomaly_id: String,
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub explanation: String,
    pub recommendations: Vec<String>,
    pub confidence: f64,
    /// What validation changed in the model's answer.
    pub notes: Vec<String>,
    pub source: InsightSource,
    /// Why the rules answered, or why the model was not asked.
    pub reason: Option<String>,
    pub model_id: Option<String>,
    pub prompt_version: String,
    pub prompt_hash: Option<String>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub attempts: u32,
    pub batch_size: u32,
    /// A model's answer below `analyst.min_confidence`: kept, but its risk alone never
    /// raises a critical alert.
    pub low_confidence: bool,
    /// The rules backend's risk for the same incident, recorded with a low-confidence answer:
    /// alerting follows it then.
    pub rules_risk: Option<u8>,
    /// `critical`, `high` or `medium`: the prompt the model was asked with.
    pub prompt_tier: Option<String>,
    /// `tool` (the schema-forced call) or `text` (the fallback parse), for a model answer.
    pub answer_form: Option<String>,
}

/// An incident for tests: `scope`, one member a port, each with one open critical
/// LinkDowned anomaly (`{port}:a`), opened at 1000 ms.
#[cfg(test)]
pub fn test_incident(id: &str, scope: IncidentScope, ports: &[&str]) -> IncidentV2 {
    IncidentV2 {
        incident_id: id.into(),
        scope,
        node: None,
        members: ports
            .iter()
            .map(|p| IncidentMemberV1 {
                stream_id: p.to_string(),
                port: Default::default(),
                peer: None,
                anomalies: vec![MemberAnomalyV1 {
                    anomaly_id: format!("{p}:a"),
                    anomaly_seq: 2,
                    rule: Rule::LinkDowned,
                    metric: "LinkDownedCounter".into(),
                    value: 3.0,
                    threshold: 1.0,
                    severity: Severity::Critical,
                    detected_at_ms: 1000,
                }],
                cleared: false,
            })
            .collect(),
        severity: Severity::Critical,
        opened_at_ms: 1000,
        resolved_at_ms: None,
        at_ms: 1000,
        merged_into: None,
        analyse: true,
        maintenance: vec![],
    }
}

impl InsightGeneratedV2 {
    /// The risk an operator's tools act on (alerts, the fabric's colours): the rules' for a
    /// low-confidence model answer, the answer's own otherwise.
    pub fn acted_risk(&self) -> u8 {
        match (self.low_confidence, self.rules_risk) {
            (true, Some(rules)) => rules,
            _ => self.risk_score,
        }
    }
}

impl From<InsightGeneratedV1> for InsightGeneratedV2 {
    fn from(v: InsightGeneratedV1) -> InsightGeneratedV2 {
        InsightGeneratedV2 {
            anomaly_seq: v.anomaly_seq,
            anomaly_id: v.anomaly_id,
            prediction_type: v.prediction_type,
            risk_score: v.risk_score,
            explanation: v.explanation,
            recommendations: v.recommendations,
            confidence: v.confidence,
            notes: v.notes,
            source: v.source,
            reason: v.reason,
            model_id: v.model_id,
            prompt_version: v.prompt_version,
            prompt_hash: v.prompt_hash,
            input_tokens: v.input_tokens,
            output_tokens: v.output_tokens,
            cost_usd: v.cost_usd,
            latency_ms: v.latency_ms,
            attempts: v.attempts,
            batch_size: v.batch_size,
            low_confidence: false,
            rules_risk: None,
            prompt_tier: None,
            answer_form: None,
        }
    }
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

/// How far an incident reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentScope {
    Port,
    Link,
    Switch,
    Node,
    Fabric,
}

impl IncidentScope {
    pub fn name(self) -> &'static str {
        match self {
            IncidentScope::Port => "port",
            IncidentScope::Link => "link",
            IncidentScope::Switch => "switch",
            IncidentScope::Node => "node",
            IncidentScope::Fabric => "fabric",
        }
    }
}

/// One open (or cleared) anomaly of an incident's member port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberAnomalyV1 {
    pub anomaly_id: String,
    /// Seq of its latest `AnomalyDetected` in the member's stream.
    pub anomaly_seq: u64,
    pub rule: Rule,
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub severity: Severity,
    pub detected_at_ms: i64,
}

/// A port in an incident, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentMemberV1 {
    pub stream_id: String,
    pub port: PortIdentity,
    pub peer: Option<PeerPort>,
    /// Its anomalies that are still open.
    pub anomalies: Vec<MemberAnomalyV1>,
    /// Every anomaly it had in this incident resolved.
    pub cleared: bool,
}

/// The node a switch or node incident is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentNodeV1 {
    pub node_guid: u64,
    pub node_desc: Option<String>,
    pub node_type: Option<NodeType>,
}

/// An incident as of one change (each incident event carries the whole incident, so any one
/// of them is enough to show it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentV1 {
    pub incident_id: String,
    pub scope: IncidentScope,
    pub node: Option<IncidentNodeV1>,
    pub members: Vec<IncidentMemberV1>,
    /// The worst severity of any member anomaly so far.
    pub severity: Severity,
    pub opened_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    /// When this change happened (the log time of the anomaly event that caused it).
    pub at_ms: i64,
    /// Set on the resolution of an incident absorbed into a bigger one.
    pub merged_into: Option<String>,
    /// Whether this change asks the analyst again (opened, scope or severity up).
    pub analyse: bool,
}

/// An incident as of one change, with the maintenance windows it falls in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentV2 {
    pub incident_id: String,
    pub scope: IncidentScope,
    pub node: Option<IncidentNodeV1>,
    pub members: Vec<IncidentMemberV1>,
    pub severity: Severity,
    pub opened_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub at_ms: i64,
    pub merged_into: Option<String>,
    pub analyse: bool,
    /// The maintenance windows that cover every member at this change (empty: none does).
    /// An incident in maintenance is recorded and analysed by the rules, and alerts no one.
    pub maintenance: Vec<String>,
}

impl From<IncidentV1> for IncidentV2 {
    fn from(v: IncidentV1) -> IncidentV2 {
        IncidentV2 {
            incident_id: v.incident_id,
            scope: v.scope,
            node: v.node,
            members: v.members,
            severity: v.severity,
            opened_at_ms: v.opened_at_ms,
            resolved_at_ms: v.resolved_at_ms,
            at_ms: v.at_ms,
            merged_into: v.merged_into,
            analyse: v.analyse,
            maintenance: Vec::new(),
        }
    }
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

/// Incidents of one kind in a digest: by the prediction type of their latest insight (`None`:
/// not analysed by the end of the period) and scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestCountV1 {
    pub prediction_type: Option<PredictionType>,
    pub scope: IncidentScope,
    pub count: u32,
}

/// A port that stood out in a digest's period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestPortV1 {
    pub stream_id: String,
    /// Incidents it was a member of.
    pub incidents: u32,
    /// Member anomalies it brought to them.
    pub anomalies: u32,
    /// The highest risk of those incidents' insights (the risk acted on).
    pub worst_risk: u8,
}

/// The summary of one period (an hour by default, `alerts.digest_period_s`): what opened and
/// resolved, what paged and what was held back, the ports that stood out, and what the model
/// cost. Written to `#digest` once its period is over, and sent to EventBridge as
/// `Insight Digest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightDigestV1 {
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub opened: Vec<DigestCountV1>,
    pub resolved: Vec<DigestCountV1>,
    pub alerts_raised: u32,
    pub alerts_suppressed: u32,
    pub top_ports: Vec<DigestPortV1>,
    /// Model calls (a batch is one call), and the insights by source.
    pub model_calls: u32,
    pub ai_insights: u32,
    pub rules_insights: u32,
    pub fallback_insights: u32,
    pub low_confidence: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// The last seq of `#incidents` and of `#alerts` the digest read: the next one starts
    /// after them.
    pub incidents_seq: u64,
    pub alerts_seq: u64,
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
