//! The insight contract: what an analyst (the model or the rules) says about an anomaly.

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

/// A validated insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insight {
    pub prediction_type: PredictionType,
    /// 0 to 100; 80 and above is critical.
    pub risk_score: u8,
    pub explanation: String,
    /// 2 to 4 actionable steps.
    pub recommendations: Vec<String>,
    /// 0 to 1.
    pub confidence: f64,
    /// What validation changed (clamped values, unknown types), empty when nothing.
    pub notes: Vec<String>,
}

/// Risk at or above this is critical (alerts go to EventBridge).
pub const CRITICAL_RISK: u8 = 80;
