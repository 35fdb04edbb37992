//! Events of a stream. A persisted struct never changes: a new shape is a new version with an
//! upcast in `codec`. Golden bytes for every (type, version) are checked in `golden`.

use crate::detect::rules::{Rule, Severity};
use crate::sample::Sample;
use serde::{Deserialize, Serialize};

/// A sample was accepted into the stream. Carries the whole validated sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricObservedV1 {
    pub sample: Sample,
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

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    MetricObserved(MetricObservedV1),
    AnomalyDetected(AnomalyDetectedV1),
    AnomalyResolved(AnomalyResolvedV1),
}

impl StreamEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            StreamEvent::MetricObserved(_) => "MetricObserved",
            StreamEvent::AnomalyDetected(_) => "AnomalyDetected",
            StreamEvent::AnomalyResolved(_) => "AnomalyResolved",
        }
    }

    /// The schema version new events of this type are written with.
    pub fn schema_version(&self) -> u16 {
        1
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
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}
