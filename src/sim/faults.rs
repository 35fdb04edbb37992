//! Fault injectors: what each does to a port's telemetry, and the prediction type a good
//! analyst should name. Counter resets and saturation are benign events: no anomaly expected.

use crate::analyst::insight::PredictionType;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    ResourceSaturation,
    LatencySpike,
    GradualDegradation,
    LinkFlapping,
    SymbolErrors,
    PacketLoss,
    QpErrorStorm,
    Congestion,
    /// Every port of a switch flaps at once: the fault storm.
    SwitchEvent,
    /// Benign: an operator clears the counters.
    CounterReset,
    /// Benign: a 16-bit error counter sits at its maximum.
    CounterSaturation,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::ResourceSaturation,
        FaultKind::LatencySpike,
        FaultKind::GradualDegradation,
        FaultKind::LinkFlapping,
        FaultKind::SymbolErrors,
        FaultKind::PacketLoss,
        FaultKind::QpErrorStorm,
        FaultKind::Congestion,
        FaultKind::SwitchEvent,
        FaultKind::CounterReset,
        FaultKind::CounterSaturation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ResourceSaturation => "resource_saturation",
            FaultKind::LatencySpike => "latency_spike",
            FaultKind::GradualDegradation => "gradual_degradation",
            FaultKind::LinkFlapping => "link_flapping",
            FaultKind::SymbolErrors => "symbol_errors",
            FaultKind::PacketLoss => "packet_loss",
            FaultKind::QpErrorStorm => "qp_error_storm",
            FaultKind::Congestion => "congestion",
            FaultKind::SwitchEvent => "switch_event",
            FaultKind::CounterReset => "counter_reset",
            FaultKind::CounterSaturation => "counter_saturation",
        }
    }

    /// The prediction type an analyst should give; `None` for benign events.
    pub fn expected(self) -> Option<PredictionType> {
        Some(match self {
            FaultKind::ResourceSaturation => PredictionType::ResourceSaturation,
            FaultKind::LatencySpike => PredictionType::LatencySpike,
            FaultKind::GradualDegradation => PredictionType::PerformanceDegradation,
            FaultKind::LinkFlapping | FaultKind::SymbolErrors | FaultKind::SwitchEvent => {
                PredictionType::ConnectionInstability
            }
            FaultKind::PacketLoss => PredictionType::PacketLossDetected,
            FaultKind::QpErrorStorm => PredictionType::QpErrorRateHigh,
            FaultKind::Congestion => PredictionType::BandwidthThrottling,
            FaultKind::CounterReset | FaultKind::CounterSaturation => return None,
        })
    }
}
