//! The alert actor as a projection: it reads `InsightGenerated` events from the log, decides
//! (raise, suppress, ignore) and appends `AlertRaised` / `AlertSuppressed` to the alert stream
//! in the same atomic write as its checkpoint, so every alert decision happens exactly once,
//! across restarts too. Its dedup book is rebuilt from the alert stream on restore.

use super::runner::{Projection, ProjectionError};
use crate::alerts::decide::{self, AlertBook, InsightFacts};
use crate::alerts::{AlertsConfig, ALERT_STREAM};
use crate::events::codec::EventRecord;
use crate::events::Origin;
use crate::events::{EventStore, NewEvent, StoredEvent, StreamEvent, WriteOp};
use crate::incidents::INCIDENT_STREAM;
use std::collections::HashMap;

pub struct AlertProjection {
    cfg: AlertsConfig,
    book: AlertBook,
    /// Open incidents' ports (lead first), from the incident events: an incident's alert
    /// names them.
    incidents: HashMap<String, Vec<String>>,
    /// Resolved incidents, oldest first: kept (their insight may still come) up to a bound.
    resolved: std::collections::VecDeque<String>,
    /// Seq of the last event in the alert stream.
    head: u64,
}

impl AlertProjection {
    pub fn new(cfg: AlertsConfig) -> AlertProjection {
        AlertProjection {
            cfg,
            book: AlertBook::default(),
            incidents: HashMap::new(),
            resolved: Default::default(),
            head: 0,
        }
    }
}

/// Resolved incidents whose ports are remembered.
const KEEP_RESOLVED: usize = 10_000;

impl AlertProjection {
    /// Keep each incident's ports, the lead member first. A resolved incident is kept: its
    /// insight can arrive after it resolved (the analyst answers after the incident settles).
    fn track(&mut self, event: &StreamEvent) {
        if let Some(inc) = event.incident() {
            let Some((lead, _)) = crate::incidents::correlator::lead(inc) else {
                return;
            };
            let lead = lead.stream_id.clone();
            let mut ports: Vec<String> = vec![lead.clone()];
            ports.extend(
                inc.members
                    .iter()
                    .map(|m| m.stream_id.clone())
                    .filter(|s| *s != lead),
            );
            self.incidents.insert(inc.incident_id.clone(), ports);
            if matches!(event, StreamEvent::IncidentResolved(_)) {
                self.resolved.push_back(inc.incident_id.clone());
                if self.resolved.len() > KEEP_RESOLVED {
                    if let Some(old) = self.resolved.pop_front() {
                        self.incidents.remove(&old);
                    }
                }
            }
        }
    }
}

impl Projection for AlertProjection {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn restore(&mut self, store: &dyn EventStore) -> Result<(), ProjectionError> {
        self.book = AlertBook::default();
        self.incidents.clear();
        self.resolved.clear();
        self.head = 0;
        // Incidents still open when the checkpoint was written (their alerts may come later).
        let mut seq = 0;
        loop {
            let page = store.read_stream(INCIDENT_STREAM, seq + 1, 1000)?;
            let Some(last) = page.last() else { break };
            seq = last.record.seq;
            for e in &page {
                if let Ok(event) = e.record.decode_event() {
                    self.track(&event);
                }
            }
        }
        loop {
            let page = store.read_stream(ALERT_STREAM, self.head + 1, 1000)?;
            let Some(last) = page.last() else { break };
            self.head = last.record.seq;
            for e in &page {
                if let Ok(event) = e.record.decode_event() {
                    decide::apply(&mut self.book, &event);
                }
            }
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        _store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut ops = Vec::new();
        for e in events {
            if e.record.stream_id == INCIDENT_STREAM && e.record.event_type.starts_with("Incident")
            {
                if let Ok(event) = e.record.decode_event() {
                    self.track(&event);
                }
                continue;
            }
            if e.record.event_type != "InsightGenerated" {
                continue;
            }
            let Ok(StreamEvent::InsightGenerated(insight)) = e.record.decode_event() else {
                continue;
            };
            // Moved from another member, which already made its alert decisions.
            if e.record
                .correlation_id
                .as_deref()
                .is_some_and(|c| c.starts_with(crate::cluster::MOVED_FROM))
            {
                continue;
            }
            let (incident_id, ports) = if e.record.stream_id == INCIDENT_STREAM {
                let ports = self
                    .incidents
                    .get(&insight.anomaly_id)
                    .cloned()
                    .unwrap_or_default();
                (Some(insight.anomaly_id.clone()), ports)
            } else {
                (None, vec![e.record.stream_id.clone()])
            };
            let facts = InsightFacts {
                stream_id: ports
                    .first()
                    .cloned()
                    .unwrap_or_else(|| e.record.stream_id.clone()),
                incident_id,
                ports,
                insight_seq: e.record.seq,
                anomaly_seq: insight.anomaly_seq,
                prediction_type: insight.prediction_type,
                risk_score: insight.risk_score,
                in_maintenance: insight.reason.as_deref() == Some(crate::vocab::MAINTENANCE_REASON),
                low_confidence_rules_risk: insight.rules_risk.filter(|_| insight.low_confidence),
                explanation: insight.explanation,
                at_ms: e.record.recorded_at_ms,
            };
            decide::prune(&mut self.book, facts.at_ms, &self.cfg);
            let Some(alert) = decide::decide(&self.book, &facts, &self.cfg) else {
                continue;
            };
            decide::apply(&mut self.book, &alert);
            let outcome = match alert {
                StreamEvent::AlertRaised(_) => "raised",
                _ => "suppressed",
            };
            crate::metrics::global().alerts.inc(outcome, 1);
            self.head += 1;
            let origin = Origin {
                correlation_id: e.record.correlation_id.clone(),
                trace: e.record.trace,
            };
            ops.push(WriteOp::Append(NewEvent::new(&EventRecord::of(
                ALERT_STREAM,
                self.head,
                facts.at_ms,
                &alert,
                &origin,
            ))));
        }
        Ok(ops)
    }
}
