//! The correlator: a projection that writes events. It tails the log for anomalies, groups
//! them (`group`), and appends the incident events to `#incidents` together with its
//! checkpoint, so each grouping decision happens exactly once. An incident that asks for
//! analysis is submitted to the analyst pool once it has settled (no change for `settle_ms`),
//! so the ports of one event join first; the answers come back through an inbox and are
//! appended to `#incidents` as `InsightGenerated` (anomaly_seq: the incident event that asked).
//! Pending analyses are rebuilt from `#incidents` on restore, so a crash delays an insight and
//! never loses it.
//!
//! It also folds `#maintenance`: each incident event names the windows that cover every one of
//! its ports (`maintenance`). An incident in maintenance is answered by the rules at once
//! (reason `maintenance`, no model call, so no alert); one that leaves maintenance while open
//! (a port outside the windows joined, or its windows are over: checked while idle, and
//! written as an `IncidentEscalated` naming no window) is asked again.

use super::group::{self, Detected, IncidentBook};
use super::{IncidentsConfig, INCIDENT_STREAM};
use crate::analyst::cost::DAY_MS;
use crate::analyst::job::{AnomalyJob, Reading};
use crate::analyst::pool::AnalystPool;
use crate::analyst::service::InsightOutcome;
use crate::events::codec::EventRecord;
use crate::events::projection::{Projection, ProjectionError};
use crate::events::types::{AnomalyDetectedV2, IncidentMemberV1, IncidentV2, MemberAnomalyV1};
use crate::events::{EventStore, NewEvent, Origin, StoredEvent, StreamEvent, WriteOp};
use crate::maintenance::window::MaintenanceBook;
use crate::maintenance::MAINTENANCE_STREAM;
use crate::vocab::{InsightSource, MAINTENANCE_REASON};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Analyst answers waiting to be recorded.
pub type Inbox = Arc<Mutex<Vec<(AnomalyJob, InsightOutcome)>>>;

#[derive(Debug, Clone)]
struct Pending {
    /// Seq of the incident event that asked.
    seq: u64,
    incident: IncidentV2,
    origin: Origin,
    /// Wall time of the incident's last change; analysed `settle_ms` after it.
    changed_ms: i64,
    submitted: bool,
}

pub struct Correlator {
    cfg: IncidentsConfig,
    book: IncidentBook,
    head: u64,
    pending: BTreeMap<String, Pending>,
    inbox: Inbox,
    pool: Option<AnalystPool>,
    /// Incidents waiting for their analysis (so `eval` knows when all is said).
    waiting: Arc<AtomicU64>,
    /// Every maintenance window, from `#maintenance`.
    maintenance: MaintenanceBook,
    /// Open incidents whose last change was in maintenance.
    in_maintenance: BTreeSet<String>,
}

impl Correlator {
    pub fn new(cfg: IncidentsConfig, pool: Option<AnalystPool>, inbox: Inbox) -> Correlator {
        Correlator {
            cfg,
            book: IncidentBook::default(),
            head: 0,
            pending: BTreeMap::new(),
            inbox,
            pool,
            waiting: Arc::default(),
            maintenance: MaintenanceBook::default(),
            in_maintenance: BTreeSet::new(),
        }
    }

    /// Name the windows an incident change falls in (at `at_ms`, held by the log at `offset`).
    /// An open incident that leaves maintenance is asked again.
    fn with_windows(&mut self, mut event: StreamEvent, at_ms: i64, offset: u64) -> StreamEvent {
        let Some(inc) = event.incident_mut() else {
            return event;
        };
        let was_in = self.in_maintenance.contains(&inc.incident_id);
        if self.maintenance.mark(inc, was_in, at_ms, offset) {
            self.in_maintenance.insert(inc.incident_id.clone());
        } else {
            self.in_maintenance.remove(&inc.incident_id);
        }
        event
    }

    /// Open incidents whose windows are all over by `now_ms` are asked again: an
    /// `IncidentEscalated` that names no window (out of planned work, the fault is live).
    fn lapse_windows(&mut self, now_ms: i64) -> Vec<WriteOp> {
        let mut ops = Vec::new();
        let ids: Vec<String> = self.in_maintenance.iter().cloned().collect();
        for id in ids {
            let Some(inc) = self.book.open.get(&id) else {
                self.in_maintenance.remove(&id);
                continue;
            };
            let Some(out) = self.maintenance.lapsed(inc, now_ms) else {
                continue;
            };
            self.in_maintenance.remove(&id);
            let event = StreamEvent::IncidentEscalated(out);
            group::apply(&mut self.book, &event);
            let origin = Origin::default();
            ops.push(self.append(&event, now_ms, &origin));
            let seq = self.head;
            self.track(&event, seq, &origin, now_ms);
            count(&event);
        }
        ops
    }

    /// How many incidents wait for their analysis.
    pub fn waiting(&self) -> Arc<AtomicU64> {
        self.waiting.clone()
    }

    fn append(&mut self, event: &StreamEvent, at_ms: i64, origin: &Origin) -> WriteOp {
        self.head += 1;
        WriteOp::Append(NewEvent::new(&EventRecord::of(
            INCIDENT_STREAM,
            self.head,
            at_ms,
            event,
            origin,
        )))
    }

    /// Track what an incident event means for its analysis.
    fn track(&mut self, event: &StreamEvent, seq: u64, origin: &Origin, now_ms: i64) {
        let Some(inc) = event.incident() else { return };
        let id = &inc.incident_id;
        if inc.merged_into.is_some() {
            // Absorbed into a bigger incident, which is analysed instead.
            self.pending.remove(id);
        } else if inc.analyse {
            self.pending.insert(
                id.clone(),
                Pending {
                    seq,
                    incident: inc.clone(),
                    origin: origin.clone(),
                    changed_ms: now_ms,
                    submitted: false,
                },
            );
        } else if let Some(p) = self.pending.get_mut(id) {
            p.incident = with_evidence(&p.incident, inc);
            if !p.submitted {
                p.changed_ms = now_ms;
            }
        }
    }

    /// Record the answers that came back.
    fn drain_inbox(&mut self) -> Vec<WriteOp> {
        let answers = std::mem::take(&mut *self.inbox.lock().unwrap_or_else(|p| p.into_inner()));
        let mut ops = Vec::new();
        for (job, outcome) in answers {
            let Some(inc) = job.incident.as_ref() else {
                continue;
            };
            let id = inc.incident_id.clone();
            match self.pending.get(&id) {
                Some(p) if p.seq == job.anomaly_seq => {
                    self.pending.remove(&id);
                }
                // An answer to an earlier ask of an incident asked again since: recorded, and
                // the newer ask stays pending.
                Some(p) if p.seq > job.anomaly_seq => {}
                _ => {
                    tracing::debug!(incident = %id, "duplicate incident insight ignored");
                    continue;
                }
            }
            let insight = outcome.into_event(job.anomaly_seq, id);
            let m = crate::metrics::global();
            m.insights_by_type.inc(insight.prediction_type.name(), 1);
            m.insights_by_source
                .inc(&format!("{:?}", insight.source).to_lowercase(), 1);
            let event = StreamEvent::InsightGenerated(insight);
            ops.push(self.append(&event, crate::clock::now_ms(), &job.origin));
        }
        ops
    }

    /// Submit the incidents that have settled.
    fn submit_due(&mut self, now_ms: i64) {
        let settle = self.cfg.settle_ms as i64;
        for p in self.pending.values_mut() {
            if p.submitted || now_ms - p.changed_ms < settle {
                continue;
            }
            if let Some(pool) = &self.pool {
                let job = job_for(&p.incident, p.seq, p.origin.clone());
                if p.incident.maintenance.is_empty() {
                    pool.submit(job);
                } else {
                    // Planned work: the rules answer, no model call (and so no alert).
                    let outcome =
                        pool.analyst
                            .rules_outcome(&job, InsightSource::Rules, MAINTENANCE_REASON);
                    self.inbox
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((job, outcome));
                }
                p.submitted = true;
            }
        }
        self.waiting
            .store(self.pending.len() as u64, Ordering::Relaxed);
    }
}

/// `new`, keeping the evidence `old` had of anomalies that have resolved since: the analyst
/// is told what happened, even when the incident has calmed down before it is asked.
fn with_evidence(old: &IncidentV2, new: &IncidentV2) -> IncidentV2 {
    let mut out = new.clone();
    for m in &mut out.members {
        let Some(before) = old.members.iter().find(|o| o.stream_id == m.stream_id) else {
            continue;
        };
        for a in &before.anomalies {
            if !m.anomalies.iter().any(|x| x.anomaly_id == a.anomaly_id) {
                m.anomalies.push(a.clone());
            }
        }
    }
    out
}

/// Which anomaly leads an incident's analysis, on a tie of severity: a link that went down
/// explains more than traffic, and traffic more than a stream that merely fell silent.
fn lead_rank(rule: crate::detect::rules::Rule) -> u8 {
    use crate::detect::rules::Rule;
    match rule {
        Rule::Stale | Rule::CounterSaturated => 0,
        r if group::link_gone(r) => 2,
        _ => 1,
    }
}

/// The member an incident's analysis starts from, with its lead (worst, earliest) anomaly;
/// the first member when none has an open anomaly. `None` only for an incident without members.
pub fn lead(inc: &IncidentV2) -> Option<(&IncidentMemberV1, Option<&MemberAnomalyV1>)> {
    let worst = inc
        .members
        .iter()
        .flat_map(|m| m.anomalies.iter().map(move |a| (m, a)))
        .max_by(|(_, a), (_, b)| {
            (a.severity, lead_rank(a.rule), -a.detected_at_ms).cmp(&(
                b.severity,
                lead_rank(b.rule),
                -b.detected_at_ms,
            ))
        });
    match worst {
        Some((m, a)) => Some((m, Some(a))),
        None => inc.members.first().map(|m| (m, None)),
    }
}

/// The analyst's job for an incident: its lead (worst, earliest) anomaly, with every member's
/// evidence in the incident itself.
pub fn job_for(inc: &IncidentV2, seq: u64, origin: Origin) -> AnomalyJob {
    let (member, anomaly) = lead(inc).expect("an incident always has a member");
    let readings = inc
        .members
        .iter()
        .flat_map(|m| m.anomalies.iter())
        .map(|a| Reading {
            metric: crate::analyst::job::known_metric(&a.metric),
            value: a.value,
            baseline: None,
        })
        .take(16)
        .collect();
    AnomalyJob {
        stream_id: member.stream_id.clone(),
        anomaly_seq: seq,
        anomaly: AnomalyDetectedV2 {
            anomaly_id: inc.incident_id.clone(),
            rule: anomaly.map_or(crate::detect::rules::Rule::Stale, |a| a.rule),
            metric: anomaly.map_or_else(|| "stale".into(), |a| a.metric.clone()),
            value: anomaly.map_or(0.0, |a| a.value),
            baseline: None,
            delta_pct: None,
            threshold: anomaly.map_or(0.0, |a| a.threshold),
            severity: inc.severity,
            escalated_from: None,
            window_start_ms: inc.opened_at_ms,
            window_end_ms: inc.at_ms,
            port: member.port.clone(),
            peer: member.peer.clone(),
        },
        readings,
        origin,
        incident: Some(inc.clone()),
    }
}

impl Projection for Correlator {
    fn name(&self) -> &'static str {
        "incidents"
    }

    fn restore(&mut self, store: &dyn EventStore) -> Result<(), ProjectionError> {
        self.book = IncidentBook::default();
        self.head = 0;
        self.pending.clear();
        self.in_maintenance.clear();
        self.maintenance = MaintenanceBook::default();
        let mut seq = 0;
        loop {
            let page = store.read_stream(MAINTENANCE_STREAM, seq + 1, 1000)?;
            let Some(last) = page.last() else { break };
            seq = last.record.seq;
            for e in &page {
                if let Ok(event) = e.record.decode_event() {
                    self.maintenance.apply(&event, e.offset);
                }
            }
        }
        let now = crate::clock::now_ms();
        let today = now.div_euclid(DAY_MS);
        let mut spent_today = 0.0;
        loop {
            let page = store.read_stream(INCIDENT_STREAM, self.head + 1, 1000)?;
            let Some(last) = page.last() else { break };
            self.head = last.record.seq;
            for e in &page {
                let Ok(event) = e.record.decode_event() else {
                    continue;
                };
                let origin = Origin {
                    correlation_id: e.record.correlation_id.clone(),
                    trace: e.record.trace,
                };
                match &event {
                    StreamEvent::InsightGenerated(i) => {
                        if e.record.recorded_at_ms.div_euclid(DAY_MS) == today {
                            spent_today += i.cost_usd;
                        }
                        if self
                            .pending
                            .get(&i.anomaly_id)
                            .is_some_and(|p| p.seq == i.anomaly_seq)
                        {
                            self.pending.remove(&i.anomaly_id);
                        }
                    }
                    other => {
                        group::apply(&mut self.book, other);
                        self.track(other, e.record.seq, &origin, now);
                        if let Some(inc) = other.incident() {
                            let open = inc.resolved_at_ms.is_none() && inc.merged_into.is_none();
                            if open && !inc.maintenance.is_empty() {
                                self.in_maintenance.insert(inc.incident_id.clone());
                            } else {
                                self.in_maintenance.remove(&inc.incident_id);
                            }
                        }
                    }
                }
            }
        }
        // The day's Bedrock spend is in the log: the budget holds across restarts and when
        // another node of a cluster takes over the analyst.
        if let Some(pool) = &self.pool {
            pool.analyst.restore_spent_today(spent_today);
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        _store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut ops = self.drain_inbox();
        let now = crate::clock::now_ms();
        let mut last: Option<(u64, i64)> = None;
        let mut last_origin = Origin::default();
        for e in events {
            let r = &e.record;
            // Anomalies moved from another member were grouped (and analysed) there.
            if r.stream_id == MAINTENANCE_STREAM {
                if let Ok(event) = r.decode_event() {
                    self.maintenance.apply(&event, e.offset);
                }
                continue;
            }
            let moved = r
                .correlation_id
                .as_deref()
                .is_some_and(|c| c.starts_with(crate::cluster::MOVED_FROM));
            if moved
                || r.stream_id.starts_with('#')
                || !matches!(&*r.event_type, "AnomalyDetected" | "AnomalyResolved")
            {
                continue;
            }
            let Ok(event) = r.decode_event() else {
                continue;
            };
            let decided = match event {
                StreamEvent::AnomalyDetected(anomaly) => {
                    let d = Detected {
                        stream_id: r.stream_id.clone(),
                        seq: r.seq,
                        offset: e.offset,
                        at_ms: r.recorded_at_ms,
                        anomaly,
                    };
                    last = Some((e.offset, r.recorded_at_ms));
                    group::on_detected(&mut self.book, &d)
                }
                StreamEvent::AnomalyResolved(a) => group::on_resolved(
                    &mut self.book,
                    &r.stream_id,
                    &a.anomaly_id,
                    r.recorded_at_ms,
                ),
                _ => Vec::new(),
            };
            let origin = Origin {
                correlation_id: r.correlation_id.clone(),
                trace: r.trace,
            };
            last_origin = origin.clone();
            for event in decided {
                let event = self.with_windows(event, r.recorded_at_ms, e.offset);
                ops.push(self.append(&event, r.recorded_at_ms, &origin));
                let seq = self.head;
                self.track(&event, seq, &origin, now);
                count(&event);
            }
        }
        // The page's anomalies counted together: switches and nodes that lost many links.
        if let Some((offset, at_ms)) = last {
            let formed =
                group::form_node_incidents(&mut self.book, self.cfg.node_min_links, at_ms, offset);
            for event in formed {
                let event = self.with_windows(event, at_ms, offset);
                ops.push(self.append(&event, at_ms, &last_origin));
                let seq = self.head;
                self.track(&event, seq, &last_origin, now);
                count(&event);
            }
        }
        self.submit_due(now);
        Ok(ops)
    }

    fn idle(&mut self, _store: &dyn EventStore) -> Vec<WriteOp> {
        let now = crate::clock::now_ms();
        let mut ops = self.drain_inbox();
        ops.extend(self.lapse_windows(now));
        self.submit_due(now);
        ops
    }
}

fn count(event: &StreamEvent) {
    let m = crate::metrics::global();
    let kind = match event {
        StreamEvent::IncidentOpened(_) => "opened",
        StreamEvent::IncidentGrown(_) => "grown",
        StreamEvent::IncidentEscalated(_) => "escalated",
        StreamEvent::IncidentResolved(_) => "resolved",
        _ => return,
    };
    m.incidents.inc(kind, 1);
}
