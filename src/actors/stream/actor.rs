//! Ractor glue for a stream: decide and apply, append durably, then answer.
//!
//! Events are applied before the append completes, so no per-batch copy of the state is
//! needed. If the append fails, the in-memory state is ahead of the log: the actor answers
//! the error and stops without a snapshot, and the next request gets a fresh actor rebuilt
//! from the log. Nothing unacknowledged is ever kept.

use super::messages::{
    BaselineView, CounterView, ObserveOutcome, StreamError, StreamMsg, StreamView,
};
use super::state::{self, Stepped, StreamState};
use crate::detect::DetectConfig;
use crate::events::codec::{self, EventRecord};
use crate::events::writer::Writer;
use crate::events::{NewEvent, Origin, Snapshot, StreamEvent, WriteOp};
use crate::metrics::ports::{PortRow, PortTable};
use crate::sample::Sample;
use crate::telemetry::context;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use tracing::Instrument;

/// What every stream actor shares.
pub struct StreamContext {
    pub writer: Writer,
    pub detect: DetectConfig,
    /// Write a snapshot after this many events.
    pub snapshot_every: u64,
    /// Where each stream's last fresh sample is shown for the per-port exposition.
    pub ports: Arc<PortTable>,
}

pub struct StreamArgs {
    pub stream_id: String,
    pub ctx: Arc<StreamContext>,
}

pub struct StreamActor;

pub struct StreamActorState {
    stream: StreamState,
    ctx: Arc<StreamContext>,
    since_snapshot: u64,
    /// Set when the state ran ahead of a failed append; such a state is never snapshotted.
    ahead_of_log: bool,
}

impl Actor for StreamActor {
    type Msg = StreamMsg;
    type State = StreamActorState;
    type Arguments = StreamArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<StreamMsg>,
        args: StreamArgs,
    ) -> Result<StreamActorState, ActorProcessingErr> {
        let store = args.ctx.writer.store().clone();
        let stream = state::recover(store.as_ref(), &args.stream_id, &args.ctx.detect)?;
        tracing::debug!(stream_id = %args.stream_id, last_seq = stream.last_seq, "stream actor started");
        Ok(StreamActorState {
            stream,
            ctx: args.ctx,
            since_snapshot: 0,
            ahead_of_log: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<StreamMsg>,
        msg: StreamMsg,
        st: &mut StreamActorState,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed: ractor keeps each actor's message loop, and so this future, inside the
        // actor's task for as long as the actor lives. Inline, its size (the writes, spans and
        // samples it holds across awaits) was paid by every live stream; boxed, it is paid only
        // while a message is being handled.
        Box::pin(handle(myself, msg, st)).await
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StreamMsg>,
        st: &mut StreamActorState,
    ) -> Result<(), ActorProcessingErr> {
        // Passivation: leave a snapshot so re-activation replays nothing.
        if st.since_snapshot > 0 && !st.ahead_of_log {
            snapshot(st);
        }
        Ok(())
    }
}

async fn handle(
    myself: ActorRef<StreamMsg>,
    msg: StreamMsg,
    st: &mut StreamActorState,
) -> Result<(), ActorProcessingErr> {
    match msg {
        StreamMsg::ObserveBatch {
            samples,
            origin,
            reply,
        } => {
            let span = context::span_under(
                origin.trace.as_ref(),
                || tracing::info_span!(parent: None, "stream.observe", stream_id = %st.stream.stream_id, samples = samples.len() as i64),
            );
            let result = observe(st, &samples, origin).instrument(span).await;
            if let Err(e) = &result {
                st.ahead_of_log = true;
                myself.stop(Some(format!("append failed: {e}")));
            }
            let _ = reply.send(result);
        }
        StreamMsg::GetView(reply) => {
            let _ = reply.send(view(&st.stream));
        }
        StreamMsg::MarkStale {
            interval_ms,
            now_ms,
            reply,
        } => {
            let result = mark_stale(st, interval_ms, now_ms).await;
            if let Err(e) = &result {
                st.ahead_of_log = true;
                myself.stop(Some(format!("append failed: {e}")));
            }
            let _ = reply.send(result);
        }
        #[cfg(any(test, feature = "test-hooks"))]
        StreamMsg::Panic => panic!("injected panic in stream {}", st.stream.stream_id),
    }
    Ok(())
}

async fn observe(
    st: &mut StreamActorState,
    samples: &[Sample],
    origin: Origin,
) -> Result<ObserveOutcome, StreamError> {
    // The events point at this actor's span, so the analyst and the sinks continue from it.
    let origin = Origin {
        trace: context::current().or(origin.trace),
        ..origin
    };
    let next = &mut st.stream;
    let mut outcome = ObserveOutcome::default();
    let mut ops = Vec::new();
    let mut anomalies = Vec::new();
    let now_ms = crate::clock::now_ms();
    let record = |stream_id: &str, seq, event_type: &'static str, schema_version, payload| {
        let kind = (event_type, schema_version);
        WriteOp::Append(NewEvent::new(&EventRecord::encoded(
            stream_id, seq, now_ms, kind, payload, &origin,
        )))
    };
    for sample in samples {
        // One encoding of the sample: its payload, and its digest from the payload's bytes.
        let payload = codec::encode_sample_payload(sample);
        let digest = state::digest_of_payload(&payload);
        let events = match state::step_digested(next, sample, digest, &st.ctx.detect) {
            Stepped::Duplicate => {
                outcome.duplicates += 1;
                continue;
            }
            Stepped::Late => {
                outcome.late += 1;
                Vec::new()
            }
            Stepped::Fresh(events) => {
                outcome.accepted += 1;
                events
            }
        };
        let observed_seq = next.last_seq - events.len() as u64;
        let (event_type, version) = codec::METRIC_OBSERVED;
        ops.push(record(
            &next.stream_id,
            observed_seq,
            event_type,
            version,
            payload,
        ));
        for (i, event) in events.iter().enumerate() {
            let seq = observed_seq + 1 + i as u64;
            if let StreamEvent::AnomalyDetected(a) = event {
                outcome.anomalies += 1;
                anomalies.push((seq, a.clone()));
            }
            ops.push(record(
                &next.stream_id,
                seq,
                event.event_type(),
                event.schema_version(),
                codec::encode_payload(event),
            ));
        }
    }
    if ops.is_empty() {
        return Ok(outcome);
    }
    let appended = ops.len() as u64;
    let append = context::child(|| tracing::info_span!("store.append", events = appended as i64));
    st.ctx.writer.write(ops).instrument(append).await?;
    st.since_snapshot += appended;
    if st.since_snapshot >= st.ctx.snapshot_every {
        snapshot(st);
    }
    if outcome.accepted > 0 {
        if let Some(sample) = &st.stream.last_sample {
            st.ctx.ports.put(PortRow {
                sample: sample.clone(),
                rates: st.stream.detector.rates,
            });
        }
    }
    // Only durable anomalies are counted; the correlator reads them from the log.
    let metrics = crate::metrics::global();
    for (_, a) in &anomalies {
        metrics.anomalies.inc(a.rule.name(), 1);
    }
    Ok(outcome)
}

/// Record the stream's `stale` anomaly if it is stale at `now_ms`; `Ok(false)` if not.
async fn mark_stale(
    st: &mut StreamActorState,
    interval_ms: i64,
    now_ms: i64,
) -> Result<bool, StreamError> {
    let Some(event) = state::mark_stale(&mut st.stream, interval_ms, now_ms, &st.ctx.detect) else {
        return Ok(false);
    };
    let origin = Origin {
        correlation_id: None,
        trace: context::current(),
    };
    let record = EventRecord::of(
        &st.stream.stream_id,
        st.stream.last_seq,
        crate::clock::now_ms(),
        &event,
        &origin,
    );
    st.ctx
        .writer
        .write(vec![WriteOp::Append(NewEvent::new(&record))])
        .await?;
    st.since_snapshot += 1;
    crate::metrics::global().anomalies.inc("stale", 1);
    Ok(true)
}

fn snapshot(st: &mut StreamActorState) {
    st.ctx
        .writer
        .write_detached(vec![WriteOp::Snapshot(Snapshot {
            stream_id: st.stream.stream_id.clone(),
            seq: st.stream.last_seq,
            state: codec::encode_state(state::STATE_VERSION, &st.stream),
        })]);
    st.since_snapshot = 0;
}

fn view(s: &StreamState) -> StreamView {
    let last_sample = s.last_sample.as_deref().map(Sample::to_json);
    StreamView {
        stream_id: s.stream_id.clone(),
        last_seq: s.last_seq,
        last_timestamp_ms: s.detector.last_timestamp_ms,
        metrics: s
            .detector
            .baselines
            .iter()
            .map(|(m, b)| {
                (
                    m.field(),
                    BaselineView {
                        mean: b.mean,
                        stddev: b.stddev(),
                        samples: b.count,
                    },
                )
            })
            .collect(),
        counters: s
            .detector
            .counters
            .iter()
            .map(|(c, r)| {
                (
                    c.name(),
                    CounterView {
                        value: r.value,
                        timestamp_ms: r.timestamp_ms,
                        width_bits: r.width_bits,
                        saturated: r.width_bits < 64
                            && r.value == crate::sample::counter_max_for_width(r.width_bits),
                    },
                )
            })
            .collect(),
        last_sample: last_sample.clone(),
        port: last_sample.as_ref().and_then(|j| {
            let ids: serde_json::Map<_, _> =
                ["node_guid", "port_num", "node_desc", "node_type", "lid"]
                    .iter()
                    .filter_map(|k| j.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
            (!ids.is_empty()).then(|| ids.into())
        }),
        peer: last_sample.as_ref().and_then(|j| j.get("peer").cloned()),
        link: last_sample.as_ref().and_then(|j| j.get("link").cloned()),
        rates: (!s.detector.rates.is_empty()).then_some(s.detector.rates),
        open_anomalies: s.detector.open.values().cloned().collect(),
        awaiting_insight: s.awaiting_insight.iter().copied().collect(),
    }
}
