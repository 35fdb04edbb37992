//! Alerts: critical insights (risk at or above the threshold) raise an alert, deduplicated by
//! fingerprint (stream, prediction type) within a window. Decisions are pure (`decide`,
//! `apply`); the alert projection feeds them insights from the log and appends the resulting
//! `AlertRaised` / `AlertSuppressed` events to the log's alert stream.

pub mod decide;
pub mod digest;
pub mod notify;
pub mod triage;

use serde::{Deserialize, Serialize};

/// The log stream that holds alert events. `#` is not allowed in client stream ids, so it can
/// never collide with a port.
pub const ALERT_STREAM: &str = "#alerts";

/// The log stream of the periodic digests.
pub const DIGEST_STREAM: &str = "#digest";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Insights with risk at or above this raise an alert.
    pub threshold: u8,
    /// A repeat of the same (stream, prediction type) within this window is suppressed.
    pub dedup_window_s: u64,
    /// The digest's period (the plan's hourly summary); 0: no digest.
    pub digest_period_s: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            threshold: 80,
            dedup_window_s: 300,
            digest_period_s: 3600,
        }
    }
}
