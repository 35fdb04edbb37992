//! The periodic digest (the plan's hourly summary, risk 6 mitigation 4), as pure state: the
//! events of `#incidents` and `#alerts` of one period go in, in log order; the summary comes
//! out: incidents opened and resolved by type and scope, alerts raised and suppressed, the
//! ports that stood out, model calls and their cost. An incident's type and risk are its
//! latest insight's, which `Known` keeps across periods (an incident often resolves in a later
//! period than it was analysed).

use crate::analyst::insight::{InsightSource, PredictionType};
use crate::events::types::{DigestCountV1, DigestPortV1, IncidentScope, InsightDigestV1};
use crate::events::StreamEvent;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Ports listed in a digest.
pub const TOP_PORTS: usize = 10;

/// The period `[start, end)` holding `at_ms`, aligned to multiples of the period (so hourly
/// digests cover whole UTC hours).
pub fn period_of(at_ms: i64, period_ms: i64) -> (i64, i64) {
    let start = at_ms.div_euclid(period_ms) * period_ms;
    (start, start + period_ms)
}

/// Each incident's latest insight (its prediction type and the risk acted on) and its member
/// ports with their anomalies, kept until a digest has counted its resolution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    insights: HashMap<String, (PredictionType, u8)>,
    members: HashMap<String, Vec<(String, Vec<String>)>>,
}

impl Known {
    /// Note an incident event or an incident insight (in `#incidents`, an insight's
    /// `anomaly_id` is the incident id).
    pub fn learn(&mut self, event: &StreamEvent) {
        if let StreamEvent::InsightGenerated(i) = event {
            self.insights
                .insert(i.anomaly_id.clone(), (i.prediction_type, i.acted_risk()));
        } else if let Some(inc) = event.incident() {
            if inc.merged_into.is_some() {
                // The incident it merged into carries its ports from now on.
                self.members.remove(&inc.incident_id);
            } else {
                let ports = inc
                    .members
                    .iter()
                    .map(|m| {
                        let ids = m.anomalies.iter().map(|a| a.anomaly_id.clone()).collect();
                        (m.stream_id.clone(), ids)
                    })
                    .collect();
                self.members.insert(inc.incident_id.clone(), ports);
            }
        }
    }

    fn get(&self, incident_id: &str) -> Option<(PredictionType, u8)> {
        self.insights.get(incident_id).copied()
    }

    /// Drop a resolved incident (once a digest has counted it).
    pub fn forget(&mut self, incident_id: &str) {
        self.insights.remove(incident_id);
        self.members.remove(incident_id);
    }

    pub fn len(&self) -> usize {
        self.insights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insights.is_empty()
    }
}

#[derive(Debug, Default)]
struct PortTally {
    incidents: HashSet<String>,
    anomalies: HashSet<String>,
}

/// One period's digest, being summed up.
#[derive(Debug)]
pub struct DigestBuilder {
    start_ms: i64,
    end_ms: i64,
    opened: BTreeMap<String, IncidentScope>,
    resolved: BTreeMap<String, IncidentScope>,
    /// Incidents that changed or were analysed in the period: their ports are the candidates
    /// for the top ports.
    touched: HashSet<String>,
    alerts_raised: u32,
    alerts_suppressed: u32,
    model_calls: f64,
    ai: u32,
    rules: u32,
    fallback: u32,
    low_confidence: u32,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
}

impl DigestBuilder {
    pub fn new(start_ms: i64, end_ms: i64) -> DigestBuilder {
        DigestBuilder {
            start_ms,
            end_ms,
            opened: BTreeMap::new(),
            resolved: BTreeMap::new(),
            touched: HashSet::new(),
            alerts_raised: 0,
            alerts_suppressed: 0,
            model_calls: 0.0,
            ai: 0,
            rules: 0,
            fallback: 0,
            low_confidence: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
        }
    }

    /// Add one event of `#incidents` or `#alerts` recorded in the period.
    pub fn add(&mut self, event: &StreamEvent, known: &mut Known) {
        known.learn(event);
        match event {
            StreamEvent::InsightGenerated(i) => {
                self.touched.insert(i.anomaly_id.clone());
                match i.source {
                    InsightSource::Ai | InsightSource::Cache => self.ai += 1,
                    InsightSource::Rules => self.rules += 1,
                    InsightSource::Fallback => self.fallback += 1,
                }
                self.low_confidence += u32::from(i.low_confidence);
                if i.attempts > 0 {
                    // Every insight of a batch carries the call; each counts its share.
                    self.model_calls += 1.0 / f64::from(i.batch_size.max(1));
                }
                self.input_tokens += u64::from(i.input_tokens);
                self.output_tokens += u64::from(i.output_tokens);
                self.cost_usd += i.cost_usd;
            }
            StreamEvent::AlertRaised(_) => self.alerts_raised += 1,
            StreamEvent::AlertSuppressed(_) => self.alerts_suppressed += 1,
            other => {
                let Some(inc) = other.incident() else { return };
                match other {
                    StreamEvent::IncidentOpened(_) => {
                        self.opened.insert(inc.incident_id.clone(), inc.scope);
                    }
                    StreamEvent::IncidentResolved(_) => {
                        self.resolved.insert(inc.incident_id.clone(), inc.scope);
                    }
                    _ => {}
                }
                self.touched.insert(inc.incident_id.clone());
            }
        }
    }

    /// The digest, having read `#incidents` up to `incidents_seq` and `#alerts` up to
    /// `alerts_seq`. Incidents resolved in the period are forgotten by `known` afterwards.
    pub fn finish(self, known: &mut Known, incidents_seq: u64, alerts_seq: u64) -> InsightDigestV1 {
        let count = |ids: &BTreeMap<String, IncidentScope>| {
            let mut by: BTreeMap<(Option<&'static str>, &'static str), DigestCountV1> =
                BTreeMap::new();
            for (id, scope) in ids {
                let p = known.get(id).map(|(p, _)| p);
                by.entry((p.map(|p| p.name()), scope.name()))
                    .or_insert(DigestCountV1 {
                        prediction_type: p,
                        scope: *scope,
                        count: 0,
                    })
                    .count += 1;
            }
            by.into_values().collect::<Vec<_>>()
        };
        let opened = count(&self.opened);
        let resolved = count(&self.resolved);
        let mut ports: HashMap<String, PortTally> = HashMap::new();
        for id in &self.touched {
            for (stream, anomalies) in known.members.get(id).into_iter().flatten() {
                let t = ports.entry(stream.clone()).or_default();
                t.incidents.insert(id.clone());
                t.anomalies.extend(anomalies.iter().cloned());
            }
        }
        let mut top_ports: Vec<DigestPortV1> = ports
            .into_iter()
            .map(|(stream_id, t)| DigestPortV1 {
                worst_risk: t
                    .incidents
                    .iter()
                    .filter_map(|id| known.get(id).map(|(_, r)| r))
                    .max()
                    .unwrap_or(0),
                incidents: t.incidents.len() as u32,
                anomalies: t.anomalies.len() as u32,
                stream_id,
            })
            .collect();
        top_ports.sort_by(|a, b| {
            (b.worst_risk, b.anomalies, b.incidents)
                .cmp(&(a.worst_risk, a.anomalies, a.incidents))
                .then_with(|| a.stream_id.cmp(&b.stream_id))
        });
        top_ports.truncate(TOP_PORTS);
        for id in self.resolved.keys() {
            known.forget(id);
        }
        InsightDigestV1 {
            period_start_ms: self.start_ms,
            period_end_ms: self.end_ms,
            opened,
            resolved,
            alerts_raised: self.alerts_raised,
            alerts_suppressed: self.alerts_suppressed,
            top_ports,
            model_calls: self.model_calls.round() as u32,
            ai_insights: self.ai,
            rules_insights: self.rules,
            fallback_insights: self.fallback,
            low_confidence: self.low_confidence,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost_usd,
            incidents_seq,
            alerts_seq,
        }
    }
}

/// The digest as the API, the dashboard and EventBridge's `Insight Digest` show it: the event's
/// fields with the period's times in RFC 3339 and the cost rounded to micro-dollars.
pub fn detail(d: &InsightDigestV1) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    v["period_start"] = crate::clock::rfc3339(d.period_start_ms).into();
    v["period_end"] = crate::clock::rfc3339(d.period_end_ms).into();
    v["cost_usd"] = ((d.cost_usd * 1e6).round() / 1e6).into();
    v["incidents_opened"] = d.opened.iter().map(|c| c.count).sum::<u32>().into();
    v["incidents_resolved"] = d.resolved.iter().map(|c| c.count).sum::<u32>().into();
    v
}

#[cfg(test)]
mod tests;
