//! The IB PortCounters that ibsight understands, with their widths from the IBA spec.
//!
//! Basic PortCounters saturate: they stop at their all-ones value until cleared. The data and
//! wait counters also exist as 64-bit PortCountersExtended; a reading above the basic width
//! tells us the collector reads the extended counter.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Counter {
    SymbolErrorCounter,
    LinkErrorRecoveryCounter,
    LinkDownedCounter,
    PortRcvErrors,
    PortRcvRemotePhysicalErrors,
    PortXmitDiscards,
    PortXmitWait,
    ExcessiveBufferOverrunErrors,
    LocalLinkIntegrityErrors,
    VL15Dropped,
    PortXmitData,
    PortRcvData,
}

impl Counter {
    pub const ALL: [Counter; 12] = [
        Counter::SymbolErrorCounter,
        Counter::LinkErrorRecoveryCounter,
        Counter::LinkDownedCounter,
        Counter::PortRcvErrors,
        Counter::PortRcvRemotePhysicalErrors,
        Counter::PortXmitDiscards,
        Counter::PortXmitWait,
        Counter::ExcessiveBufferOverrunErrors,
        Counter::LocalLinkIntegrityErrors,
        Counter::VL15Dropped,
        Counter::PortXmitData,
        Counter::PortRcvData,
    ];

    /// The perfquery name.
    pub fn name(self) -> &'static str {
        match self {
            Counter::SymbolErrorCounter => "SymbolErrorCounter",
            Counter::LinkErrorRecoveryCounter => "LinkErrorRecoveryCounter",
            Counter::LinkDownedCounter => "LinkDownedCounter",
            Counter::PortRcvErrors => "PortRcvErrors",
            Counter::PortRcvRemotePhysicalErrors => "PortRcvRemotePhysicalErrors",
            Counter::PortXmitDiscards => "PortXmitDiscards",
            Counter::PortXmitWait => "PortXmitWait",
            Counter::ExcessiveBufferOverrunErrors => "ExcessiveBufferOverrunErrors",
            Counter::LocalLinkIntegrityErrors => "LocalLinkIntegrityErrors",
            Counter::VL15Dropped => "VL15Dropped",
            Counter::PortXmitData => "PortXmitData",
            Counter::PortRcvData => "PortRcvData",
        }
    }

    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Width in bits of the basic PortCounters field (IBA vol. 1, PortCounters attribute).
    pub fn basic_width_bits(self) -> u32 {
        match self {
            Counter::SymbolErrorCounter
            | Counter::PortRcvErrors
            | Counter::PortRcvRemotePhysicalErrors
            | Counter::PortXmitDiscards
            | Counter::VL15Dropped => 16,
            Counter::LinkErrorRecoveryCounter | Counter::LinkDownedCounter => 8,
            Counter::ExcessiveBufferOverrunErrors | Counter::LocalLinkIntegrityErrors => 4,
            Counter::PortXmitWait | Counter::PortXmitData | Counter::PortRcvData => 32,
        }
    }

    /// Whether a 64-bit extended form exists, so readings above the basic width are valid.
    pub fn has_extended(self) -> bool {
        matches!(
            self,
            Counter::PortXmitWait | Counter::PortXmitData | Counter::PortRcvData
        )
    }

    /// The largest value a reading may take.
    pub fn max_value(self) -> u64 {
        if self.has_extended() {
            u64::MAX
        } else {
            max_for_width(self.basic_width_bits())
        }
    }
}

/// The all-ones value of a counter `bits` wide.
pub fn max_for_width(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}
