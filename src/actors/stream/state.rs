//! A stream's state and the two pure functions over it.
//!
//! `decide(state, sample)` says what happened (events); `apply(state, event)` folds an event
//! in and holds no business logic beyond bookkeeping. Recovery is `apply` over the snapshot's
//! tail, so a restarted actor lands in exactly the state it had.

use crate::analyst::job::{AnomalyJob, Reading};
use crate::detect::detector::{self, DetectorState};
use crate::detect::hysteresis::{OpenAnomaly, Transition};
use crate::detect::rules::{anomaly_key, Finding, Severity};
use crate::detect::DetectConfig;
use crate::events::codec;
use crate::events::types::{AnomalyDetectedV2, AnomalyResolvedV1, MetricObservedV3};
use crate::events::Origin;
use crate::events::{EventStore, StoreError, StreamEvent};
use crate::sample::port::{PeerPort, PortIdentity};
use crate::sample::{Metric, Sample};
use serde::{Deserialize, Serialize};

/// The layout version of `StreamState` in snapshots. Bump it with any change to the struct
/// (or to a struct inside it): a snapshot of another version is not decoded, the stream is
/// rebuilt from its log instead. `tests::snapshot_layout_is_pinned` fails until you do.
pub const STATE_VERSION: u16 = 7;

/// How many recent samples a stream remembers (timestamp and content digest) to tell a
/// retried sample from late data. A repeat of a sample older than these is stored again as
/// late data: counted, never fed to detection.
pub const RECENT_SAMPLES: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    pub stream_id: String,
    /// Seq of the last event applied (0 before the first).
    pub last_seq: u64,
    pub detector: DetectorState,
    /// Shared with the port table (`metrics::ports`), which exports it without a copy.
    pub last_sample: Option<std::sync::Arc<Sample>>,
    /// Seqs of `AnomalyDetected` events with no `InsightGenerated` in this stream. Filled only
    /// by logs written before incidents (the analyst answered per anomaly then); today the
    /// correlator asks per incident and keeps its pending asks in `#incidents`.
    pub awaiting_insight: std::collections::BTreeSet<u64>,
    /// (timestamp, content digest) of the last `RECENT_SAMPLES` samples recorded, oldest first.
    pub recent: std::collections::VecDeque<(i64, u64)>,
}

/// What a sample means for the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The same stream, timestamp and content as a recent sample: already stored,
    /// acknowledged, not stored again (a retry).
    Duplicate,
    /// At or before the stream's last timestamp with other content: stored (its
    /// `MetricObserved`), counted as late, never fed to the baselines or the rules.
    Late(Vec<StreamEvent>),
    Record(Vec<StreamEvent>),
}

impl StreamState {
    pub fn new(stream_id: &str) -> StreamState {
        StreamState {
            stream_id: stream_id.to_string(),
            ..StreamState::default()
        }
    }
}

/// Where a sample stands against the stream's time line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Fresh,
    Late,
    Duplicate,
}

fn admit(state: &StreamState, sample: &Sample) -> Admission {
    admit_digested(state, sample, || digest(sample))
}

/// `admit`, with the sample's digest computed only when needed (at or before the last
/// timestamp) or already known.
fn admit_digested(state: &StreamState, sample: &Sample, digest: impl FnOnce() -> u64) -> Admission {
    match state.detector.last_timestamp_ms {
        Some(last) if sample.timestamp_ms <= last => {
            let digest = digest();
            if state
                .recent
                .iter()
                .any(|&(ts, d)| ts == sample.timestamp_ms && d == digest)
            {
                Admission::Duplicate
            } else {
                Admission::Late
            }
        }
        _ => Admission::Fresh,
    }
}

/// A stable digest of a sample's content (its bincode bytes, the form the log stores).
pub fn digest(sample: &Sample) -> u64 {
    codec::digest(sample)
}

fn remember(state: &mut StreamState, sample: &Sample) {
    remember_digest(state, sample.timestamp_ms, digest(sample));
}

/// A late sample's `MetricObserved`: counted in the seq, remembered, never detected on.
fn stored_late(state: &mut StreamState, timestamp_ms: i64, digest: u64) {
    remember_digest(state, timestamp_ms, digest);
    state.last_seq += 1;
}

fn remember_digest(state: &mut StreamState, timestamp_ms: i64, digest: u64) {
    if state.recent.len() >= RECENT_SAMPLES {
        state.recent.pop_front();
    }
    state.recent.push_back((timestamp_ms, digest));
}

/// The digest of a sample from its stored `MetricObserved` payload (v3), without encoding the
/// sample again: the payload is the sample's encoding (a one-field struct adds no bytes).
pub fn digest_of_payload(payload: &[u8]) -> u64 {
    crate::hash::fnv1a64(payload.iter().copied())
}

pub fn decide(state: &StreamState, sample: &Sample, cfg: &DetectConfig) -> Decision {
    match admit(state, sample) {
        Admission::Duplicate => Decision::Duplicate,
        Admission::Late => Decision::Late(vec![observed(sample)]),
        Admission::Fresh => {
            let eval = detector::evaluate(&state.detector, sample, cfg);
            let mut events = vec![observed(sample)];
            let peer = sample
                .peer
                .as_ref()
                .or(state.detector.link.last_peer.as_ref());
            events.extend(transitions(
                state,
                &sample.port,
                peer,
                sample.timestamp_ms,
                eval,
            ));
            Decision::Record(events)
        }
    }
}

/// `decide` then `apply` of every decided event, evaluating the rules once instead of twice.
pub fn step(state: &mut StreamState, sample: &Sample, cfg: &DetectConfig) -> Decision {
    match step_digested(state, sample, digest(sample), cfg) {
        Stepped::Duplicate => Decision::Duplicate,
        Stepped::Late => Decision::Late(vec![observed(sample)]),
        Stepped::Fresh(anomalies) => {
            let mut events = Vec::with_capacity(1 + anomalies.len());
            events.push(observed(sample));
            events.extend(anomalies);
            Decision::Record(events)
        }
    }
}

/// What `step` decided, less the sample's own `MetricObserved` event.
#[derive(Debug, Clone, PartialEq)]
pub enum Stepped {
    Duplicate,
    /// Stored as late data; nothing else follows.
    Late,
    /// Recorded; these anomaly events follow its `MetricObserved`.
    Fresh(Vec<StreamEvent>),
}

/// `step` for the ingest hot path: the caller encodes the sample's payload once and passes
/// its digest (`digest_of_payload`), and builds the `MetricObserved` record from that payload.
/// The state moves exactly as `step` moves it: `step` is this function.
pub fn step_digested(
    state: &mut StreamState,
    sample: &Sample,
    digest: u64,
    cfg: &DetectConfig,
) -> Stepped {
    match admit_digested(state, sample, || digest) {
        Admission::Duplicate => Stepped::Duplicate,
        Admission::Late => {
            stored_late(state, sample.timestamp_ms, digest);
            Stepped::Late
        }
        Admission::Fresh => Stepped::Fresh(replay_digested(state, sample.clone(), digest, cfg)),
    }
}

/// What `step` does for a sample already in the log: the anomaly transitions it causes
/// (applied, as `step` applies them), without the `MetricObserved` event and without copying
/// the sample. A sample in the log at or before the last timestamp was stored as late data:
/// it is remembered and causes nothing. Replays use it.
pub fn replay_sample(
    state: &mut StreamState,
    sample: Sample,
    cfg: &DetectConfig,
) -> Vec<StreamEvent> {
    let digest = digest(&sample);
    replay_digested(state, sample, digest, cfg)
}

/// `replay_sample` with the sample's digest already known (`digest_of_payload`).
pub fn replay_digested(
    state: &mut StreamState,
    sample: Sample,
    digest: u64,
    cfg: &DetectConfig,
) -> Vec<StreamEvent> {
    if admit_digested(state, &sample, || digest) != Admission::Fresh {
        stored_late(state, sample.timestamp_ms, digest);
        return Vec::new();
    }
    let eval = detector::evaluate(&state.detector, &sample, cfg);
    detector::absorb(&mut state.detector, &sample, &eval, cfg);
    let events = transitions(
        state,
        &sample.port,
        state.detector.link.last_peer.as_ref(),
        sample.timestamp_ms,
        eval,
    );
    remember_digest(state, sample.timestamp_ms, digest);
    state.last_sample = Some(std::sync::Arc::new(sample));
    state.last_seq += 1;
    // The anomaly events carry no sample, so `apply` is exact (and cheap) for them.
    for event in &events {
        apply(state, event, cfg);
    }
    events
}

fn observed(sample: &Sample) -> StreamEvent {
    StreamEvent::MetricObserved(MetricObservedV3 {
        sample: sample.clone(),
    })
}

/// The anomaly events of a sample at `ts` from `port`: opened, escalated, resolved.
fn transitions(
    state: &StreamState,
    port: &PortIdentity,
    peer: Option<&PeerPort>,
    ts: i64,
    eval: detector::Evaluation,
) -> Vec<StreamEvent> {
    let mut events = Vec::with_capacity(eval.transitions.len());
    let detected = |f, id, from| detected(f, id, from, ts, port, peer);
    for t in eval.transitions {
        events.push(match t {
            Transition::Opened(f) => {
                let id = format!("{}@{ts}", f.key());
                detected(f, id, None)
            }
            Transition::Escalated { finding, from } => {
                let id = state
                    .detector
                    .open
                    .get(&finding.key())
                    .map(|a| a.anomaly_id.clone())
                    .unwrap_or_else(|| format!("{}@{ts}", finding.key()));
                detected(finding, id, Some(from))
            }
            Transition::Resolved(a) => StreamEvent::AnomalyResolved(AnomalyResolvedV1 {
                anomaly_id: a.anomaly_id,
                rule: a.rule,
                metric: a.metric,
                opened_at_ms: a.opened_at_ms,
                resolved_at_ms: ts,
                last_value: a.last_value,
            }),
        });
    }
    events
}

/// A stream silent for `stale_intervals` of its interval at fabric time `now_ms`: its stale
/// anomaly, applied; `None` when it is not stale or already is.
pub fn mark_stale(
    state: &mut StreamState,
    interval_ms: i64,
    now_ms: i64,
    cfg: &DetectConfig,
) -> Option<StreamEvent> {
    let f = detector::stale_finding(&state.detector, interval_ms, now_ms, cfg)?;
    let port = state
        .last_sample
        .as_ref()
        .map(|s| s.port.clone())
        .unwrap_or_default();
    let id = format!("{}@{now_ms}", f.key());
    let peer = state.detector.link.last_peer.clone();
    let event = detected(f, id, None, now_ms, &port, peer.as_ref());
    apply(state, &event, cfg);
    Some(event)
}

fn detected(
    f: Finding,
    anomaly_id: String,
    from: Option<Severity>,
    ts: i64,
    port: &PortIdentity,
    peer: Option<&PeerPort>,
) -> StreamEvent {
    StreamEvent::AnomalyDetected(AnomalyDetectedV2 {
        anomaly_id,
        rule: f.rule,
        metric: f.metric.to_string(),
        value: f.value,
        baseline: f.baseline,
        delta_pct: f.delta_pct,
        threshold: f.threshold,
        severity: f.severity,
        escalated_from: from,
        window_start_ms: f.window_start_ms,
        window_end_ms: ts,
        port: port.clone(),
        peer: peer.cloned(),
    })
}

pub fn apply(state: &mut StreamState, event: &StreamEvent, cfg: &DetectConfig) {
    state.last_seq += 1;
    match event {
        StreamEvent::MetricObserved(e) => {
            // Late data (at or before the last timestamp) is remembered, never detected on.
            if admit(state, &e.sample) == Admission::Fresh {
                let eval = detector::evaluate(&state.detector, &e.sample, cfg);
                detector::absorb(&mut state.detector, &e.sample, &eval, cfg);
                state.last_sample = Some(std::sync::Arc::new(e.sample.clone()));
            }
            remember(state, &e.sample);
        }
        StreamEvent::AnomalyDetected(e) => {
            let key = anomaly_key(e.rule, &e.metric);
            let entry = state
                .detector
                .open
                .entry(key)
                .or_insert_with(|| OpenAnomaly {
                    anomaly_id: e.anomaly_id.clone(),
                    rule: e.rule,
                    metric: e.metric.clone(),
                    severity: e.severity,
                    opened_at_ms: e.window_end_ms,
                    last_value: e.value,
                    clear_streak: 0,
                });
            entry.severity = entry.severity.max(e.severity);
            entry.last_value = e.value;
        }
        StreamEvent::AnomalyResolved(e) => {
            state.detector.open.remove(&anomaly_key(e.rule, &e.metric));
        }
        StreamEvent::InsightGenerated(e) => {
            state.awaiting_insight.remove(&e.anomaly_seq);
        }
        // Alerts live in the alert stream, never in a port's.
        // Incidents live in the incident stream, windows in the maintenance stream.
        StreamEvent::AlertRaised(_)
        | StreamEvent::AlertSuppressed(_)
        | StreamEvent::AlertTriaged(_)
        | StreamEvent::IncidentOpened(_)
        | StreamEvent::IncidentGrown(_)
        | StreamEvent::IncidentEscalated(_)
        | StreamEvent::IncidentResolved(_)
        | StreamEvent::MaintenanceScheduled(_)
        | StreamEvent::MaintenanceEnded(_)
        | StreamEvent::InsightDigest(_) => {}
    }
}

/// The analyst's job for an anomaly: its evidence plus the stream's numbers (no labels).
pub fn job_for(
    stream: &StreamState,
    anomaly_seq: u64,
    anomaly: AnomalyDetectedV2,
    origin: Origin,
) -> AnomalyJob {
    let mut readings = Vec::new();
    if let Some(sample) = &stream.last_sample {
        for metric in Metric::ALL {
            // With the gauges derived from its counters, as detection judged it.
            if let Some(value) =
                crate::detect::gauges::metric(sample, &stream.detector.rates, metric)
            {
                readings.push(Reading {
                    metric: metric.field(),
                    value,
                    baseline: stream.detector.baselines.get(&metric).map(|b| b.mean),
                });
            }
        }
    }
    AnomalyJob {
        incident: None,
        stream_id: stream.stream_id.clone(),
        anomaly_seq,
        anomaly,
        readings,
        origin,
    }
}

/// Rebuild a stream's state from its latest snapshot plus the log tail after it.
pub fn recover(
    store: &dyn EventStore,
    stream_id: &str,
    cfg: &DetectConfig,
) -> Result<StreamState, StoreError> {
    const PAGE: usize = 1000;
    let load = store.load_stream(stream_id, PAGE)?;
    let mut state = match &load.snapshot {
        Some(snap) => match codec::decode_state::<StreamState>(STATE_VERSION, &snap.state) {
            Ok(s) if s.last_seq == snap.seq && s.stream_id == stream_id => s,
            Ok(_) | Err(_) => {
                tracing::warn!(stream_id, "snapshot unreadable; replaying the whole stream");
                StreamState::new(stream_id)
            }
        },
        None => StreamState::new(stream_id),
    };
    // The first page came with the snapshot; an unreadable snapshot replays from the start.
    let mut page = match (&load.snapshot, state.last_seq) {
        (Some(snap), last) if last == snap.seq => load.events,
        (None, _) => load.events,
        _ => store.read_stream(stream_id, state.last_seq + 1, PAGE)?,
    };
    loop {
        let full = page.len() >= PAGE;
        for stored in page {
            let event = stored
                .record
                .decode_event()
                .map_err(|source| StoreError::Corrupt {
                    offset: stored.offset,
                    source,
                })?;
            apply(&mut state, &event, cfg);
            state.last_seq = stored.record.seq;
        }
        if !full {
            break;
        }
        page = store.read_stream(stream_id, state.last_seq + 1, PAGE)?;
    }
    // Rebuilt without a usable snapshot after retention removed the stream's first events:
    // the baselines start again, but the seq goes on where the log is.
    state.last_seq = state.last_seq.max(load.head);
    Ok(state)
}
