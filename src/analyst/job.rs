//! What the analyst is asked: one anomaly of one stream, with the stream's numbers.
//! Only numbers and validated ids are carried, never client free text (labels), so nothing a
//! collector sends can end up in a prompt.

use crate::detect::rules::Severity;
use crate::events::types::AnomalyDetectedV1;
use crate::events::Origin;

/// A metric's current value against its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// A metric field or counter name from ibsight's fixed set.
    pub metric: &'static str,
    pub value: f64,
    pub baseline: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyJob {
    /// Validated: `[A-Za-z0-9._:/-]{1,128}`.
    pub stream_id: String,
    /// Seq of the `AnomalyDetected` event this job answers.
    pub anomaly_seq: u64,
    pub anomaly: AnomalyDetectedV1,
    pub readings: Vec<Reading>,
    /// Where the anomaly came from; the insight keeps it.
    pub origin: Origin,
}

impl AnomalyJob {
    pub fn severity(&self) -> Severity {
        self.anomaly.severity
    }
}
