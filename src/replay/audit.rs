//! The audit: reads the whole log in offset order, reports corrupt records by offset and seq
//! breaks by stream, and replays every stream's `MetricObserved` events through the current
//! `decide`/`apply` to check that the recorded `AnomalyDetected`/`AnomalyResolved` events are
//! exactly what today's code derives. Read-only.

use crate::actors::stream::state::{self, StreamState};
use crate::detect::DetectConfig;
use crate::events::{EventStore, StoreError, StoredEvent, StreamEvent};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    pub stream_id: String,
    pub seq: u64,
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditReport {
    pub events: u64,
    pub streams: usize,
    pub recorded_anomaly_events: u64,
    pub matched: u64,
    pub corrupt: Vec<Corrupt>,
    pub divergences: Vec<Divergence>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Corrupt {
    pub offset: u64,
    pub reason: String,
}

#[derive(Default)]
struct StreamAudit {
    state: StreamState,
    next_seq: u64,
    /// Anomaly events today's code derived and the log has not shown yet.
    expected: VecDeque<(u64, StreamEvent)>,
}

/// A comparable summary of an anomaly event (what must match).
fn key(e: &StreamEvent) -> Option<String> {
    match e {
        StreamEvent::AnomalyDetected(a) => Some(format!(
            "detected {} {} {:?} value={} id={}",
            a.rule.name(),
            a.metric,
            a.severity,
            a.value,
            a.anomaly_id
        )),
        StreamEvent::AnomalyResolved(r) => Some(format!(
            "resolved {} {} id={}",
            r.rule.name(),
            r.metric,
            r.anomaly_id
        )),
        _ => None,
    }
}

/// Audit the whole log (or one stream) with `detect` as today's detection config.
pub fn audit(
    store: &dyn EventStore,
    detect: &DetectConfig,
    only_stream: Option<&str>,
    mut progress: impl FnMut(u64),
) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    let mut streams: HashMap<String, StreamAudit> = HashMap::new();
    let mut from = 1;
    let last = store.last_offset();
    const PAGE: u64 = 1000;
    while from <= last {
        let page = match store.read_from(from, PAGE as usize) {
            Ok(page) => {
                from = page.last().map_or(last + 1, |e| e.offset + 1);
                page
            }
            Err(_) => {
                // A corrupt record in this stretch: read it record by record, noting each.
                let page = read_one_by_one(store, from, PAGE, &mut report)?;
                from += PAGE;
                page
            }
        };
        for e in &page {
            report.events += 1;
            if only_stream.is_some_and(|s| s != e.record.stream_id) {
                continue;
            }
            check(e, detect, &mut streams, &mut report);
        }
        progress(report.events);
    }
    for (stream_id, s) in &streams {
        for (seq, e) in &s.expected {
            report.divergences.push(Divergence {
                stream_id: stream_id.clone(),
                seq: *seq,
                kind: "missing",
                detail: format!(
                    "today's code derives `{}`, the log has nothing",
                    key(e).unwrap_or_default()
                ),
            });
        }
    }
    report.streams = streams.len();
    report
        .divergences
        .sort_by(|a, b| (&a.stream_id, a.seq).cmp(&(&b.stream_id, b.seq)));
    Ok(report)
}

/// After a page failed to decode: read record by record, noting each corrupt one.
fn read_one_by_one(
    store: &dyn EventStore,
    from: u64,
    count: u64,
    report: &mut AuditReport,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut out = Vec::new();
    for offset in from..from + count {
        match store.read_from(offset, 1) {
            Ok(mut one) => {
                if let Some(e) = one.pop() {
                    if e.offset == offset {
                        out.push(e);
                    }
                }
            }
            Err(StoreError::Corrupt { offset, source }) => report.corrupt.push(Corrupt {
                offset,
                reason: source.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn check(
    e: &StoredEvent,
    detect: &DetectConfig,
    streams: &mut HashMap<String, StreamAudit>,
    report: &mut AuditReport,
) {
    let r = &e.record;
    let s = streams
        .entry(r.stream_id.clone())
        .or_insert_with(|| StreamAudit {
            state: StreamState::new(&r.stream_id),
            next_seq: r.seq,
            expected: VecDeque::new(),
        });
    let diverge = |kind, detail: String| Divergence {
        stream_id: r.stream_id.clone(),
        seq: r.seq,
        kind,
        detail,
    };
    if r.seq != s.next_seq {
        report.divergences.push(diverge(
            "seq_break",
            format!("expected seq {}, found {}", s.next_seq, r.seq),
        ));
    }
    s.next_seq = r.seq + 1;
    let event = match r.decode_event() {
        Ok(event) => event,
        Err(err) => {
            report
                .divergences
                .push(diverge("undecodable", err.to_string()));
            return;
        }
    };
    match &event {
        StreamEvent::MetricObserved(m) => {
            if let Some(derived) = state::step(&mut s.state, &m.sample, detect) {
                let first = r.seq;
                for (i, d) in derived.into_iter().enumerate().skip(1) {
                    s.expected.push_back((first + i as u64, d));
                }
            }
        }
        StreamEvent::AnomalyDetected(_) | StreamEvent::AnomalyResolved(_) => {
            report.recorded_anomaly_events += 1;
            let recorded = key(&event).unwrap_or_default();
            match s.expected.pop_front() {
                Some((_, derived)) if key(&derived).as_deref() == Some(recorded.as_str()) => {
                    report.matched += 1;
                }
                Some((_, derived)) => report.divergences.push(diverge(
                    "different",
                    format!(
                        "log has `{recorded}`, today's code derives `{}`",
                        key(&derived).unwrap_or_default()
                    ),
                )),
                None => report.divergences.push(diverge(
                    "unexpected",
                    format!("log has `{recorded}`, today's code derives nothing"),
                )),
            }
        }
        other => state::apply(&mut s.state, other, detect),
    }
}
