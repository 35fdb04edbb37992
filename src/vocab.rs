//! The shared vocabulary: names every layer uses and none owns. The event log stores them,
//! the analyst and the rules produce them, metrics and the API show them. Their serde names
//! are for JSON only: bincode encodes variants by index, so they may be appended, never
//! reordered.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    PerformanceDegradation,
    AnomalyDetected,
    ResourceSaturation,
    ConnectionInstability,
    PacketLossDetected,
    LatencySpike,
    BandwidthThrottling,
    QpErrorRateHigh,
    MemoryRegistrationFailure,
    RdmaTimeout,
}

impl PredictionType {
    pub const ALL: [PredictionType; 10] = [
        PredictionType::PerformanceDegradation,
        PredictionType::AnomalyDetected,
        PredictionType::ResourceSaturation,
        PredictionType::ConnectionInstability,
        PredictionType::PacketLossDetected,
        PredictionType::LatencySpike,
        PredictionType::BandwidthThrottling,
        PredictionType::QpErrorRateHigh,
        PredictionType::MemoryRegistrationFailure,
        PredictionType::RdmaTimeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PredictionType::PerformanceDegradation => "performance_degradation",
            PredictionType::AnomalyDetected => "anomaly_detected",
            PredictionType::ResourceSaturation => "resource_saturation",
            PredictionType::ConnectionInstability => "connection_instability",
            PredictionType::PacketLossDetected => "packet_loss_detected",
            PredictionType::LatencySpike => "latency_spike",
            PredictionType::BandwidthThrottling => "bandwidth_throttling",
            PredictionType::QpErrorRateHigh => "qp_error_rate_high",
            PredictionType::MemoryRegistrationFailure => "memory_registration_failure",
            PredictionType::RdmaTimeout => "rdma_timeout",
        }
    }

    pub fn from_name(name: &str) -> Option<PredictionType> {
        PredictionType::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Where an insight came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsightSource {
    /// The model answered.
    Ai,
    /// The rules backend answered by choice (AI off, or this anomaly not sampled).
    Rules,
    /// The rules backend answered because the model could not (see the reason).
    Fallback,
    /// A recent insight for the same stream, class and severity was reused.
    Cache,
}

/// An operator's verdict on a raised alert (`POST /v1/alerts/{alert_id}/triage`), kept in the
/// internal `#triage` stream: the source of the critical false-positive rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    FalsePositive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::FalsePositive => "false_positive",
        }
    }
}

/// What observing a batch of samples did: counted by the stream actors, summed by ingest,
/// and carried back from a peer that observed them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ObserveOutcome {
    /// New samples stored (and detected on).
    pub accepted: u64,
    /// Exact repeats of recent samples: acknowledged, not stored again.
    pub duplicates: u64,
    /// Samples at or before the stream's last timestamp with other content: stored as late
    /// data, not fed to the baselines.
    pub late: u64,
    pub anomalies: u64,
}

impl std::ops::AddAssign for ObserveOutcome {
    fn add_assign(&mut self, o: ObserveOutcome) {
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.late += o.late;
        self.anomalies += o.anomalies;
    }
}

/// The reason an insight names when the rules answered because every port of its incident was
/// in a maintenance window (no model call, no alert).
pub const MAINTENANCE_REASON: &str = "maintenance";
