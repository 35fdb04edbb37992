//! The fabric view: every stream with its open anomalies and their risk, so the dashboard can
//! colour switches and ports by their worst open risk. Kept by the views projection; pure
//! bookkeeping here.

use crate::detect::rules::Severity;
use crate::events::{StoredEvent, StreamEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

pub const FABRIC_VIEW: &str = "fabric";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAnomaly {
    pub rule: String,
    pub metric: String,
    pub severity: Severity,
    /// The insight's risk once it has one.
    pub risk: Option<u8>,
    pub prediction_type: Option<String>,
    pub opened_at_ms: i64,
}

impl OpenAnomaly {
    /// The insight's risk, or (until the insight arrives) the severity's floor of the tier.
    pub fn effective_risk(&self) -> u8 {
        self.risk.unwrap_or(match self.severity {
            Severity::Critical => 80,
            Severity::Major => 60,
            Severity::Warning => 40,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortEntry {
    pub stream_id: String,
    pub switch: String,
    pub port: String,
    /// By anomaly id.
    pub open: BTreeMap<String, OpenAnomaly>,
    pub last_insight_risk: Option<u8>,
    pub last_insight_at_ms: Option<i64>,
}

impl PortEntry {
    pub fn new(stream_id: &str) -> PortEntry {
        let (switch, port) = split(stream_id);
        PortEntry {
            stream_id: stream_id.into(),
            switch,
            port,
            ..PortEntry::default()
        }
    }

    /// 0 when nothing is open.
    pub fn worst_open_risk(&self) -> u8 {
        self.open
            .values()
            .map(OpenAnomaly::effective_risk)
            .max()
            .unwrap_or(0)
    }
}

/// `leaf01/p07` → (`leaf01`, `p07`); an id without `/` is its own switch's only port.
pub fn split(stream_id: &str) -> (String, String) {
    match stream_id.rsplit_once('/') {
        Some((switch, port)) => (switch.to_string(), port.to_string()),
        None => (stream_id.to_string(), String::new()),
    }
}

/// The fabric's entries, and which changed since the last `take_changed`.
#[derive(Debug, Default)]
pub struct Fabric {
    pub ports: HashMap<String, PortEntry>,
    changed: HashSet<String>,
}

impl Fabric {
    pub fn from_entries(entries: impl IntoIterator<Item = PortEntry>) -> Fabric {
        Fabric {
            ports: entries
                .into_iter()
                .map(|e| (e.stream_id.clone(), e))
                .collect(),
            changed: HashSet::new(),
        }
    }

    fn entry(&mut self, stream_id: &str) -> &mut PortEntry {
        if !self.ports.contains_key(stream_id) {
            self.ports
                .insert(stream_id.to_string(), PortEntry::new(stream_id));
            self.changed.insert(stream_id.to_string());
        }
        self.ports.get_mut(stream_id).expect("inserted above")
    }

    /// Account for one event of the log.
    pub fn apply(&mut self, e: &StoredEvent) {
        let r = &e.record;
        if r.stream_id.starts_with('#') {
            return;
        }
        if r.event_type == "MetricObserved" {
            // Only a stream's first sample changes its entry; decoding is not needed.
            self.entry(&r.stream_id);
            return;
        }
        let Ok(event) = r.decode_event() else {
            return;
        };
        let stream_id = r.stream_id.as_str();
        match event {
            StreamEvent::AnomalyDetected(a) => {
                let entry = self.entry(stream_id);
                let prior = entry.open.get(&a.anomaly_id);
                let open = OpenAnomaly {
                    rule: a.rule.name().to_string(),
                    metric: a.metric.clone(),
                    severity: a.severity,
                    risk: prior.and_then(|p| p.risk),
                    prediction_type: prior.and_then(|p| p.prediction_type.clone()),
                    opened_at_ms: prior.map_or(a.window_end_ms, |p| p.opened_at_ms),
                };
                entry.open.insert(a.anomaly_id, open);
            }
            StreamEvent::AnomalyResolved(res) => {
                self.entry(stream_id).open.remove(&res.anomaly_id);
            }
            StreamEvent::InsightGenerated(i) => {
                let entry = self.entry(stream_id);
                entry.last_insight_risk = Some(i.acted_risk());
                entry.last_insight_at_ms = Some(r.recorded_at_ms);
                if let Some(open) = entry.open.get_mut(&i.anomaly_id) {
                    open.risk = Some(i.acted_risk());
                    open.prediction_type = Some(i.prediction_type.name().to_string());
                }
            }
            _ => return,
        }
        self.changed.insert(stream_id.to_string());
    }

    /// An incident's insight: every member anomaly the analyst was asked about takes its risk
    /// (the rules' when the model was unsure) and prediction type.
    pub fn apply_incident_insight(
        &mut self,
        incident: &crate::events::types::IncidentV2,
        insight: &crate::events::types::InsightGeneratedV2,
        at_ms: i64,
    ) {
        for m in &incident.members {
            let entry = self.entry(&m.stream_id);
            entry.last_insight_risk = Some(insight.acted_risk());
            entry.last_insight_at_ms = Some(at_ms);
            for a in &m.anomalies {
                if let Some(open) = entry.open.get_mut(&a.anomaly_id) {
                    open.risk = Some(insight.acted_risk());
                    open.prediction_type = Some(insight.prediction_type.name().to_string());
                }
            }
            self.changed.insert(m.stream_id.clone());
        }
    }

    /// The entries changed since the last call (to be written to the view).
    pub fn take_changed(&mut self) -> Vec<&PortEntry> {
        let changed = std::mem::take(&mut self.changed);
        let mut out: Vec<&PortEntry> = changed.iter().filter_map(|id| self.ports.get(id)).collect();
        out.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        out
    }
}

/// One switch of the fabric view, as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchSummary {
    pub switch: String,
    pub ports: usize,
    pub ports_with_open_anomalies: usize,
    pub open_anomalies: usize,
    pub worst_risk: u8,
    /// The ports with open anomalies, worst first (at most `max_ports_listed`).
    pub at_risk: Vec<PortSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortSummary {
    pub stream_id: String,
    pub port: String,
    pub worst_risk: u8,
    pub open_anomalies: usize,
    pub prediction_types: Vec<String>,
}

/// Switches with their worst open risk, worst first, then by name.
pub fn summarize<'a>(
    entries: impl IntoIterator<Item = &'a PortEntry>,
    max_ports_listed: usize,
) -> Vec<SwitchSummary> {
    let mut by_switch: BTreeMap<&str, Vec<&PortEntry>> = BTreeMap::new();
    for e in entries {
        by_switch.entry(e.switch.as_str()).or_default().push(e);
    }
    let mut out: Vec<SwitchSummary> = by_switch
        .into_iter()
        .map(|(switch, ports)| {
            let mut at_risk: Vec<PortSummary> = ports
                .iter()
                .filter(|p| !p.open.is_empty())
                .map(|p| {
                    let mut types: Vec<String> = p
                        .open
                        .values()
                        .filter_map(|o| o.prediction_type.clone())
                        .collect();
                    types.sort();
                    types.dedup();
                    PortSummary {
                        stream_id: p.stream_id.clone(),
                        port: p.port.clone(),
                        worst_risk: p.worst_open_risk(),
                        open_anomalies: p.open.len(),
                        prediction_types: types,
                    }
                })
                .collect();
            at_risk.sort_by(|a, b| {
                b.worst_risk
                    .cmp(&a.worst_risk)
                    .then_with(|| a.stream_id.cmp(&b.stream_id))
            });
            let ports_with_open_anomalies = at_risk.len();
            let open_anomalies = at_risk.iter().map(|p| p.open_anomalies).sum();
            let worst_risk = at_risk.first().map_or(0, |p| p.worst_risk);
            at_risk.truncate(max_ports_listed);
            SwitchSummary {
                switch: switch.to_string(),
                ports: ports.len(),
                ports_with_open_anomalies,
                open_anomalies,
                worst_risk,
                at_risk,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.worst_risk
            .cmp(&a.worst_risk)
            .then_with(|| a.switch.cmp(&b.switch))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyst::insight::{InsightSource, PredictionType};
    use crate::detect::rules::Rule;
    use crate::events::codec::{self, EventRecord};
    use crate::events::types::{AnomalyDetectedV2, AnomalyResolvedV1, InsightGeneratedV2};

    fn stored(stream: &str, seq: u64, event: StreamEvent) -> StoredEvent {
        StoredEvent {
            offset: seq,
            record: EventRecord {
                stream_id: stream.into(),
                seq,
                recorded_at_ms: 1000 * seq as i64,
                event_type: event.event_type().into(),
                schema_version: event.schema_version(),
                correlation_id: None,
                payload: codec::encode_payload(&event),
                trace: None,
            },
        }
    }

    fn detected(id: &str, severity: Severity) -> StreamEvent {
        StreamEvent::AnomalyDetected(AnomalyDetectedV2 {
            anomaly_id: id.into(),
            rule: Rule::LinkDowned,
            metric: "LinkDownedCounter".into(),
            value: 3.0,
            baseline: None,
            delta_pct: None,
            threshold: 0.0,
            severity,
            escalated_from: None,
            window_start_ms: 0,
            window_end_ms: 5,
            port: Default::default(),
            peer: None,
        })
    }

    fn insight(anomaly_id: &str, risk: u8) -> StreamEvent {
        StreamEvent::InsightGenerated(InsightGeneratedV2 {
            anomaly_seq: 2,
            anomaly_id: anomaly_id.into(),
            prediction_type: PredictionType::ConnectionInstability,
            risk_score: risk,
            explanation: String::new(),
            recommendations: vec![],
            confidence: 0.9,
            notes: vec![],
            source: InsightSource::Rules,
            reason: None,
            model_id: None,
            prompt_version: "v1".into(),
            prompt_hash: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            latency_ms: 0,
            attempts: 0,
            batch_size: 1,
            low_confidence: false,
            rules_risk: None,
            prompt_tier: None,
            answer_form: None,
        })
    }

    fn resolved(id: &str) -> StreamEvent {
        StreamEvent::AnomalyResolved(AnomalyResolvedV1 {
            anomaly_id: id.into(),
            rule: Rule::LinkDowned,
            metric: "LinkDownedCounter".into(),
            opened_at_ms: 5,
            resolved_at_ms: 9,
            last_value: 0.0,
        })
    }

    #[test]
    fn a_port_is_as_risky_as_its_worst_open_anomaly_until_it_resolves() {
        let mut f = Fabric::default();
        f.apply(&stored("leaf1/p1", 2, detected("a", Severity::Major)));
        assert_eq!(
            f.ports["leaf1/p1"].worst_open_risk(),
            60,
            "severity floor until the insight"
        );
        f.apply(&stored("leaf1/p1", 3, insight("a", 91)));
        assert_eq!(f.ports["leaf1/p1"].worst_open_risk(), 91);
        // An escalation keeps the insight's risk and type.
        f.apply(&stored("leaf1/p1", 4, detected("a", Severity::Critical)));
        assert_eq!(f.ports["leaf1/p1"].worst_open_risk(), 91);
        assert_eq!(f.take_changed().len(), 1);
        f.apply(&stored("leaf1/p1", 5, resolved("a")));
        assert_eq!(f.ports["leaf1/p1"].worst_open_risk(), 0);
        assert_eq!(f.ports["leaf1/p1"].last_insight_risk, Some(91));
    }

    #[test]
    fn given_a_low_confidence_insight_then_the_port_takes_the_rules_risk() {
        let mut f = Fabric::default();
        f.apply(&stored("leaf1/p1", 2, detected("a", Severity::Warning)));
        let StreamEvent::InsightGenerated(mut unsure) = insight("a", 95) else {
            unreachable!()
        };
        unsure.low_confidence = true;
        unsure.rules_risk = Some(35);
        f.apply(&stored(
            "leaf1/p1",
            3,
            StreamEvent::InsightGenerated(unsure),
        ));
        assert_eq!(f.ports["leaf1/p1"].worst_open_risk(), 35);
        assert_eq!(f.ports["leaf1/p1"].last_insight_risk, Some(35));
    }

    #[test]
    fn switches_sort_by_worst_risk_and_list_only_ports_at_risk() {
        let mut f = Fabric::default();
        for p in 1..=4 {
            f.apply(&stored(
                &format!("spine1/p{p}"),
                1,
                detected("x", Severity::Critical),
            ));
        }
        f.apply(&stored("leaf2/p1", 1, detected("y", Severity::Warning)));
        f.ports
            .insert("leaf2/p2".into(), PortEntry::new("leaf2/p2"));
        f.ports
            .insert("leaf3/p1".into(), PortEntry::new("leaf3/p1"));
        let s = summarize(f.ports.values(), 2);
        let order: Vec<(&str, u8, usize, usize)> = s
            .iter()
            .map(|s| {
                (
                    s.switch.as_str(),
                    s.worst_risk,
                    s.ports,
                    s.ports_with_open_anomalies,
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![
                ("spine1", 80, 4, 4),
                ("leaf2", 40, 2, 1),
                ("leaf3", 0, 1, 0)
            ]
        );
        assert_eq!(s[0].at_risk.len(), 2, "listing capped");
        assert_eq!(split("a/b/c"), ("a/b".to_string(), "c".to_string()));
        assert_eq!(split("solo"), ("solo".to_string(), String::new()));
    }
}
