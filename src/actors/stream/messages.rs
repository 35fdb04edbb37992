//! Messages a stream actor handles and the answers it gives.

use crate::detect::hysteresis::OpenAnomaly;
use crate::events::{Origin, StoreError};
use crate::sample::Sample;
use ractor::RpcReplyPort;
use serde::Serialize;
use std::sync::Arc;

pub enum StreamMsg {
    /// Record these samples (all of one stream, in request order). Answered once durable.
    ObserveBatch {
        samples: Arc<[Sample]>,
        /// The request's correlation id and, when it is traced, its span.
        origin: Origin,
        reply: RpcReplyPort<Result<ObserveOutcome, StreamError>>,
    },
    /// The stream's current state, for the API.
    GetView(RpcReplyPort<StreamView>),
    /// The stream has been silent while the fabric moved on to `now_ms`: record its `stale`
    /// anomaly unless it is not stale or already is. `Ok(true)` once one is durable.
    MarkStale {
        interval_ms: i64,
        now_ms: i64,
        reply: RpcReplyPort<Result<bool, StreamError>>,
    },
    /// Panics inside the handler, to exercise supervision. Reachable only through
    /// `StreamRouter::inject_panic`, built for tests only.
    #[cfg(any(test, feature = "test-hooks"))]
    Panic,
}

pub use crate::vocab::ObserveOutcome;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineView {
    pub mean: f64,
    pub stddev: f64,
    pub samples: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CounterView {
    pub value: u64,
    pub timestamp_ms: i64,
    pub width_bits: u32,
    /// Stuck at its maximum: new errors are invisible until the counter is cleared.
    pub saturated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    pub stream_id: String,
    pub last_seq: u64,
    pub last_timestamp_ms: Option<i64>,
    pub metrics: std::collections::BTreeMap<&'static str, BaselineView>,
    pub counters: std::collections::BTreeMap<&'static str, CounterView>,
    pub last_sample: Option<serde_json::Value>,
    /// The port's identity (node_guid, port_num, node_desc, node_type, lid), its peer and its
    /// link, as the last sample gave them.
    pub port: Option<serde_json::Value>,
    pub peer: Option<serde_json::Value>,
    pub link: Option<serde_json::Value>,
    /// What detection derived from the last sample's counters: bandwidth and utilization per
    /// direction (`tx_gbps`, `rx_gbps`, `tx_utilization`, `rx_utilization`, over `over_ms`)
    /// and `qp_errors`; `None` when it gave none (a first sample, a reset, no link rate).
    pub rates: Option<crate::detect::gauges::Rates>,
    pub open_anomalies: Vec<OpenAnomaly>,
    /// Anomalies of a log written before incidents whose insight was not recorded (by
    /// `AnomalyDetected` seq); empty for today's logs, where incidents are analysed.
    pub awaiting_insight: Vec<u64>,
}
