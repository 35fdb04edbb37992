//! What the analyst is asked: one anomaly of one stream, with the stream's numbers.
//! Only numbers and validated ids are carried, never client free text (labels), so nothing a
//! collector sends can end up in a prompt.

use crate::detect::rules::Severity;
use crate::events::types::{AnomalyDetectedV2, IncidentV2};
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
    pub anomaly: AnomalyDetectedV2,
    pub readings: Vec<Reading>,
    /// Where the anomaly came from; the insight keeps it.
    pub origin: Origin,
    /// The incident this job asks about: every member's evidence and the node's role. The
    /// anomaly above is its lead (worst) member anomaly. `None` only for a lone anomaly
    /// replayed from a log written before incidents.
    pub incident: Option<IncidentV2>,
}

impl AnomalyJob {
    pub fn severity(&self) -> Severity {
        self.anomaly.severity
    }
}

/// The fixed name of a metric, counter or link field (`other` for anything else), so a
/// reading never carries free text into a prompt.
pub fn known_metric(name: &str) -> &'static str {
    use crate::sample::{Counter, Metric};
    const LINK: [&str; 5] = [
        "link_state",
        "link_state_changes",
        "link_width",
        "link_speed",
        "stale",
    ];
    Metric::ALL
        .into_iter()
        .map(Metric::field)
        .chain(Counter::ALL.iter().map(|c| c.name()))
        .chain(LINK)
        .find(|m| *m == name)
        .unwrap_or("other")
}
