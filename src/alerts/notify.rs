//! What an operator's own alerting tools are told (Alertmanager, webhooks): every raised alert
//! fires once, and its resolution (the incident's, or for a single-port alert its anomaly's)
//! resolves it. Pure: the sinks feed `Notices` the log in order and send what comes out.
//!
//! The labels are the alert's identity in Alertmanager (its fingerprint), so a resolution
//! carries exactly the labels its firing had.

use crate::events::types::{AlertRaisedV2, IncidentV2};
use crate::events::StreamEvent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One thing to tell the operator's tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Deterministic: the alert id and the status, so a receiver drops a re-delivery.
    pub id: String,
    pub alert_id: String,
    /// The incident it is about; `None` for a single-port alert (its anomaly resolves it).
    pub incident_id: Option<String>,
    pub status: Status,
    /// alertname, severity, prediction_type, incident_id, scope, node, port.
    pub labels: BTreeMap<String, String>,
    pub risk_score: u8,
    pub explanation: String,
    pub recommendations: Vec<String>,
    /// The incident's ports (lead first).
    pub ports: Vec<String>,
    pub starts_at_ms: i64,
    /// Set on a resolution.
    pub ends_at_ms: Option<i64>,
}

impl Notice {
    /// The port the alert was raised on (its incident's lead, or the single port).
    pub fn alert_port(&self) -> &str {
        self.labels.get("port").map_or("", String::as_str)
    }

    /// The same alert, resolved at `at_ms`.
    pub fn resolved(&self, at_ms: i64) -> Notice {
        Notice {
            id: format!("{}:resolved", self.alert_id),
            status: Status::Resolved,
            ends_at_ms: Some(at_ms.max(self.starts_at_ms)),
            ..self.clone()
        }
    }
}

/// The severity label Alertmanager routes on, from the risk score (the seed's bands).
pub fn severity(risk: u8) -> &'static str {
    match risk {
        80.. => "critical",
        60..=79 => "warning",
        _ => "info",
    }
}

/// `IbConnectionInstability` from `connection_instability`: one alertname per prediction type.
pub fn alertname(prediction_type: &str) -> String {
    let mut out = String::from("Ib");
    for word in prediction_type.split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// What an alert's labels need from its incident.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IncidentFacts {
    pub scope: String,
    /// The switch or node the incident is about, or its lead port's node.
    pub node: Option<String>,
}

impl IncidentFacts {
    pub fn of(inc: &IncidentV2) -> IncidentFacts {
        let lead_node = crate::incidents::correlator::lead(inc)
            .and_then(|(m, _)| m.port.node_desc.clone().or_else(|| node_of(&m.stream_id)));
        IncidentFacts {
            scope: inc.scope.name().to_string(),
            node: inc
                .node
                .as_ref()
                .and_then(|n| n.node_desc.clone())
                .or(lead_node),
        }
    }
}

/// A port's node from its stream id (`leaf07/p3` → `leaf07`), when nothing better is known.
fn node_of(stream_id: &str) -> Option<String> {
    stream_id
        .split_once('/')
        .map(|(node, _)| node.to_string())
        .filter(|n| !n.is_empty())
}

/// The labels of an alert: its identity in Alertmanager.
pub fn labels(alert: &AlertRaisedV2, incident: Option<&IncidentFacts>) -> BTreeMap<String, String> {
    let kind = alert.prediction_type.name();
    let mut l = BTreeMap::new();
    l.insert("alertname".into(), alertname(kind));
    l.insert("severity".into(), severity(alert.risk_score).into());
    l.insert("prediction_type".into(), kind.into());
    l.insert(
        "incident_id".into(),
        alert
            .incident_id
            .clone()
            .unwrap_or_else(|| alert.alert_id.clone()),
    );
    l.insert(
        "scope".into(),
        incident.map_or_else(|| "port".into(), |i| i.scope.clone()),
    );
    let node = incident
        .and_then(|i| i.node.clone())
        .or_else(|| node_of(&alert.stream_id))
        .unwrap_or_else(|| alert.stream_id.clone());
    l.insert("node".into(), node);
    l.insert("port".into(), alert.stream_id.clone());
    l
}

/// Resolved incidents remembered (an alert can follow its incident's resolution).
const KEEP_RESOLVED: usize = 1_000;

/// The open alerts and the open incidents they belong to, from the log in order. Small (what
/// is open now), so a sink keeps it as one view entry written with its checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notices {
    /// Firing notices by alert id.
    open: BTreeMap<String, Notice>,
    /// Open incidents.
    incidents: HashMap<String, IncidentFacts>,
    /// Incidents resolved lately, oldest first, with when.
    resolved: VecDeque<(String, i64)>,
}

impl Notices {
    /// The alerts firing now.
    pub fn open(&self) -> impl Iterator<Item = &Notice> {
        self.open.values()
    }

    /// Take one event of `stream_id` (`recommendations` fetches the alert's insight's, only
    /// for a raised alert) and return what to tell the tools.
    pub fn observe(
        &mut self,
        stream_id: &str,
        event: &StreamEvent,
        recommendations: impl FnOnce(&AlertRaisedV2) -> Vec<String>,
    ) -> Vec<Notice> {
        match event {
            StreamEvent::IncidentOpened(inc)
            | StreamEvent::IncidentGrown(inc)
            | StreamEvent::IncidentEscalated(inc) => {
                self.incidents
                    .insert(inc.incident_id.clone(), IncidentFacts::of(inc));
                Vec::new()
            }
            StreamEvent::IncidentResolved(inc) => {
                let at = inc.resolved_at_ms.unwrap_or(inc.at_ms);
                self.incidents.remove(&inc.incident_id);
                self.resolved.push_back((inc.incident_id.clone(), at));
                if self.resolved.len() > KEEP_RESOLVED {
                    self.resolved.pop_front();
                }
                self.resolve(|n| n.incident_id.as_ref() == Some(&inc.incident_id), at)
            }
            StreamEvent::AnomalyResolved(r) => self.resolve(
                |n| n.incident_id.is_none() && n.alert_port() == stream_id,
                r.resolved_at_ms,
            ),
            StreamEvent::AlertRaised(a) => self.raise(a, recommendations(a)),
            _ => Vec::new(),
        }
    }

    fn raise(&mut self, a: &AlertRaisedV2, recommendations: Vec<String>) -> Vec<Notice> {
        let facts = a.incident_id.as_ref().and_then(|i| self.incidents.get(i));
        let notice = Notice {
            id: format!("{}:firing", a.alert_id),
            alert_id: a.alert_id.clone(),
            incident_id: a.incident_id.clone(),
            status: Status::Firing,
            labels: labels(a, facts),
            risk_score: a.risk_score,
            explanation: a.explanation.clone(),
            recommendations,
            ports: a.ports.clone(),
            starts_at_ms: a.raised_at_ms,
            ends_at_ms: None,
        };
        // An alert raised after its incident resolved fires and resolves at once.
        let resolved_at = a.incident_id.as_ref().and_then(|i| {
            self.resolved
                .iter()
                .rev()
                .find(|(r, _)| r == i)
                .map(|(_, at)| *at)
        });
        // A later alert for the same incident (or port) replaces the open one: one alert per
        // incident. With other labels (an escalation) the old one is resolved, so it does not
        // linger until Alertmanager's resolve timeout.
        let same: Vec<String> = self
            .open
            .values()
            .filter(|n| {
                n.incident_id == notice.incident_id
                    && (n.incident_id.is_some() || n.alert_port() == a.stream_id)
            })
            .map(|n| n.alert_id.clone())
            .collect();
        let mut out: Vec<Notice> = same
            .iter()
            .filter_map(|id| self.open.remove(id))
            .filter(|old| old.labels != notice.labels)
            .map(|old| old.resolved(notice.starts_at_ms))
            .collect();
        out.push(notice.clone());
        match resolved_at {
            Some(at) => out.push(notice.resolved(at)),
            None => {
                self.open.insert(a.alert_id.clone(), notice);
            }
        }
        out
    }

    fn resolve(&mut self, which: impl Fn(&Notice) -> bool, at_ms: i64) -> Vec<Notice> {
        let ids: Vec<String> = self
            .open
            .values()
            .filter(|n| which(n))
            .map(|n| n.alert_id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| self.open.remove(id))
            .map(|n| n.resolved(at_ms))
            .collect()
    }
}

#[cfg(test)]
mod tests;
