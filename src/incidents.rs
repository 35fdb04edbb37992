//! Incidents: operators act on incidents, not on ports. The correlator tails the log (a
//! process manager: a projection that writes events) and groups anomalies by topology, from
//! the `port` and `peer` each anomaly carries:
//!
//! - `group`: the pure grouping decisions (join, grow, absorb into a switch, resolve);
//! - `correlator`: the projection that feeds them from the log, appends the incident events to
//!   the `#incidents` stream, asks the analyst once per incident (after the incident settles),
//!   and records its answers there.

pub mod correlator;
pub mod group;

use serde::{Deserialize, Serialize};

/// The log stream of incident events and incident insights. `#` never starts a port's id.
pub const INCIDENT_STREAM: &str = "#incidents";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// An incident is analysed once it has not changed for this long (ms), so the ports of one
    /// event (a switch going down) join before the analyst is asked.
    pub settle_ms: u64,
    /// Links of one node with a bad end that make a switch (or node) incident.
    pub node_min_links: usize,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            settle_ms: 3000,
            node_min_links: 3,
        }
    }
}

impl IncidentsConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.node_min_links < 2 {
            return Err((
                "incidents.node_min_links".into(),
                format!("{} must be at least 2", self.node_min_links),
            ));
        }
        Ok(())
    }
}
