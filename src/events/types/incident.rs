//! Incidents: anomalies grouped by topology (a port, both ends of a cable, a switch or node).

use super::*;

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
