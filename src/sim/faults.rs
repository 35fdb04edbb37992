//! Fault injectors: what each does to a port's telemetry, the prediction type a good analyst
//! should name and the incident scope it should get. A counter reset is benign: no anomaly
//! expected. A saturated error counter is its own (low-risk) finding: reset it.

use crate::events::types::IncidentScope;
use crate::vocab::PredictionType;
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
    /// A 16-bit error counter sits at its maximum: errors are no longer counted.
    CounterSaturation,
    /// Both ends of a cable retrain at 1X.
    WidthDegraded,
    /// A link that came up at 1X (4X enabled) and stays there: a non-optimal link.
    WidthDegradedFromStart,
    /// Both ends retrain at a lower speed.
    SpeedDegraded,
    /// A cable goes down: a switch end reports Down, a host end falls silent.
    LinkDown,
    /// A whole switch goes down: its ports fall silent, its peers' links go down.
    SwitchDown,
    /// A port stops reporting.
    StalePort,
}

impl FaultKind {
    pub const ALL: [FaultKind; 17] = [
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
        FaultKind::WidthDegraded,
        FaultKind::WidthDegradedFromStart,
        FaultKind::SpeedDegraded,
        FaultKind::LinkDown,
        FaultKind::SwitchDown,
        FaultKind::StalePort,
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
            FaultKind::WidthDegraded => "width_degraded",
            FaultKind::WidthDegradedFromStart => "width_degraded_from_start",
            FaultKind::SpeedDegraded => "speed_degraded",
            FaultKind::LinkDown => "link_down",
            FaultKind::SwitchDown => "switch_down",
            FaultKind::StalePort => "stale_port",
        }
    }

    /// The prediction type an analyst should give; `None` for benign events.
    pub fn expected(self) -> Option<PredictionType> {
        Some(match self {
            FaultKind::ResourceSaturation | FaultKind::Congestion => {
                PredictionType::ResourceSaturation
            }
            FaultKind::LatencySpike => PredictionType::LatencySpike,
            FaultKind::GradualDegradation => PredictionType::PerformanceDegradation,
            FaultKind::LinkFlapping
            | FaultKind::SymbolErrors
            | FaultKind::SwitchEvent
            | FaultKind::LinkDown
            | FaultKind::SwitchDown => PredictionType::ConnectionInstability,
            FaultKind::PacketLoss => PredictionType::PacketLossDetected,
            FaultKind::QpErrorStorm => PredictionType::QpErrorRateHigh,
            FaultKind::WidthDegraded
            | FaultKind::WidthDegradedFromStart
            | FaultKind::SpeedDegraded => PredictionType::BandwidthThrottling,
            FaultKind::CounterSaturation | FaultKind::StalePort => PredictionType::AnomalyDetected,
            FaultKind::CounterReset => return None,
        })
    }

    /// The risk an operator would put on the fault (the label the analyst's risk is scored
    /// against, within the plan's ±10 points): a dead switch or a cable going down needs
    /// action now, a degraded or erroring link within the hour, load and stuck counters are
    /// watched. `None` for a benign event.
    pub fn expected_risk(self) -> Option<u8> {
        Some(match self {
            FaultKind::SwitchEvent | FaultKind::SwitchDown => 95,
            FaultKind::LinkFlapping | FaultKind::LinkDown => 85,
            FaultKind::PacketLoss | FaultKind::QpErrorStorm | FaultKind::WidthDegraded => 75,
            FaultKind::SymbolErrors | FaultKind::SpeedDegraded => 70,
            FaultKind::LatencySpike | FaultKind::Congestion | FaultKind::WidthDegradedFromStart => {
                65
            }
            FaultKind::GradualDegradation => 60,
            FaultKind::ResourceSaturation | FaultKind::CounterSaturation | FaultKind::StalePort => {
                50
            }
            FaultKind::CounterReset => return None,
        })
    }

    /// Faults of a cable: injected on the target port and its peer.
    pub fn is_link(self) -> bool {
        matches!(
            self,
            FaultKind::LinkFlapping
                | FaultKind::WidthDegraded
                | FaultKind::WidthDegradedFromStart
                | FaultKind::SpeedDegraded
                | FaultKind::LinkDown
        )
    }

    /// Faults of a whole switch: its ports and their peers.
    pub fn is_switch(self) -> bool {
        matches!(self, FaultKind::SwitchEvent | FaultKind::SwitchDown)
    }

    /// The incident scope a good correlator gives the fault.
    pub fn expected_scope(self) -> Option<IncidentScope> {
        if self.expected().is_none() {
            None
        } else if self.is_switch() {
            Some(IncidentScope::Switch)
        } else if self.is_link() {
            Some(IncidentScope::Link)
        } else {
            Some(IncidentScope::Port)
        }
    }
}
